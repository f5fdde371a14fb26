//! The access decision for one tracked person: fuse the usable frames of the track into one
//! embedding (weighted by detector score and face size, as Frigate does) and one live score,
//! search the gallery, and grant only when every requirement of the policy holds. A denial
//! names every requirement that failed.

use serde::{Deserialize, Serialize};

use crate::encode::Embedding;
use crate::gallery::{Gallery, Match};
use crate::heads::mad::Dmad;
use crate::tag::{merge_tags, Tag};
use crate::track::TrackerConfig;
use crate::track::{is_usable, Track};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Granted,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Denied => "denied",
        }
    }
}

/// One decision, as journaled, and as read back from the journal (fields recorded only by later
/// versions read as empty from older records).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// The device that decided (`daemon.device`, else its host name); stamped by the daemon's
    /// journal writer, "" in records written before it was kept.
    #[serde(default)]
    pub device: String,
    /// Unix milliseconds of the last frame decided on.
    pub time_ms: i64,
    /// Capture time of the person's first frame, and the time the decision was taken (Unix
    /// ms): from the first to the second is what the person waited. 0 in records written
    /// before they were kept.
    #[serde(default)]
    pub first_seen_ms: i64,
    #[serde(default)]
    pub decided_ms: i64,
    pub camera: String,
    pub track_id: u64,
    pub outcome: Outcome,
    /// Why access was denied, every failed requirement: `low_quality` (too few usable frames),
    /// `presentation_attack` (live score below the PAD threshold), `morph_suspected` (the
    /// matched reference and the live face look like a morph and its contributor), `unknown`
    /// (no enrolled match). Empty when granted.
    #[serde(default)]
    pub reasons: Vec<String>,
    pub identity: Option<String>,
    /// Cosine similarity of the fused embedding to the nearest enrolled identity.
    pub similarity: Option<f32>,
    pub nearest: Option<String>,
    /// Usable frames fused, and frames the track was seen in.
    pub frames_used: usize,
    #[serde(default)]
    pub frames_seen: usize,
    /// Mean live score of the usable frames, when PAD runs.
    pub live: Option<f32>,
    /// Each usable frame's live score, in order (what `live` is the mean of); empty in
    /// records written before they were kept, and without PAD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_frames: Vec<f32>,
    pub pad_threshold: Option<f32>,
    /// D-MAD bona fide score of the nearest identity's reference against the fused face, when
    /// a D-MAD head is loaded.
    pub bona_fide: Option<f32>,
    pub mad_threshold: Option<f32>,
    /// What else was in the person's frames (best score per label), when the daemon tags
    /// frames. Never part of the decision.
    pub tags: Option<Vec<Tag>>,
    /// Mean detector score and largest face width (pixels) over the usable frames.
    #[serde(default)]
    pub detector_score: f32,
    #[serde(default)]
    pub face_px: f32,
    #[serde(default)]
    pub match_threshold: f32,
    #[serde(default)]
    pub encoder: String,
    #[serde(default)]
    pub detector: String,
    /// The sharpest usable aligned crop, PNG, when crops are stored (never in the JSON record).
    #[serde(skip)]
    pub crop_png: Option<Vec<u8>>,
}

/// Where a face is looked for: the enrolled gallery (or, in the bench, synthetic templates).
pub trait Identities {
    /// The nearest identity to `probe`, whatever its similarity; `None` when there is none.
    fn best_match(&self, probe: &Embedding) -> Option<Match>;
}

impl Identities for Gallery {
    fn best_match(&self, probe: &Embedding) -> Option<Match> {
        Gallery::best_match(self, probe)
    }
}

/// Models and thresholds a decision is taken with, recorded beside it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub match_threshold: f32,
    pub require_match: bool,
    /// PAD threshold when liveness is required.
    pub require_live: Option<f32>,
    /// MAD threshold when a bona fide (not morphed) reference is required.
    pub require_bona_fide: Option<f32>,
    /// The D-MAD head scoring reference against probe, when loaded.
    pub dmad: Option<Dmad>,
    pub tracker: TrackerConfig,
    pub encoder: String,
    pub detector: String,
}

/// What the heads said about one face (or fused track).
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence {
    /// False when there was not enough good material to judge.
    pub usable: bool,
    /// Similarity to the nearest enrolled identity.
    pub similarity: Option<f32>,
    pub live: Option<f32>,
    /// D-MAD bona fide score of the nearest identity's reference against this face.
    pub bona_fide: Option<f32>,
}

impl Policy {
    /// The D-MAD score of a match's reference against the probe, when a head is loaded. A head
    /// that fails gives no score, which fails the requirement (fail closed).
    pub fn bona_fide(&self, reference: &[f32], probe: &[f32]) -> Option<f32> {
        let head = self.dmad.as_ref()?;
        match head.score(reference, probe) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("D-MAD head {}: {e:#}", head.id());
                None
            }
        }
    }
}

/// The policy's verdict: every requirement checked, each failure named. A morph check only
/// applies to a face that matched someone (there is no reference to compare it with otherwise);
/// a missing score fails its requirement (fail closed).
pub fn judge(e: Evidence, policy: &Policy) -> (Outcome, Vec<String>) {
    let mut reasons = Vec::new();
    if !e.usable {
        reasons.push("low_quality".to_string());
    }
    let matched = e.similarity.is_some_and(|s| s >= policy.match_threshold);
    if let Some(threshold) = policy.require_live {
        if e.usable && e.live.is_none_or(|l| l < threshold) {
            reasons.push("presentation_attack".to_string());
        }
    }
    if let Some(threshold) = policy.require_bona_fide {
        if e.usable && matched && e.bona_fide.is_none_or(|b| b < threshold) {
            reasons.push("morph_suspected".to_string());
        }
    }
    if policy.require_match && e.usable && !matched {
        reasons.push("unknown".to_string());
    }
    let outcome = if reasons.is_empty() { Outcome::Granted } else { Outcome::Denied };
    (outcome, reasons)
}

/// Decides on a track against the gallery.
pub fn decide(track: &Track, camera: &str, who: &dyn Identities, policy: &Policy) -> Decision {
    let usable: Vec<_> = track.sightings.iter().filter(|s| is_usable(s, &policy.tracker)).collect();
    let time_ms = track.sightings.last().map(|s| s.timestamp_ms).unwrap_or(0);
    let enough = !usable.is_empty() && usable.len() >= policy.tracker.min_frames;
    let mut d = Decision {
        device: String::new(),
        time_ms,
        first_seen_ms: track.first_ms,
        decided_ms: crate::clock::now_ms(),
        camera: camera.to_string(),
        track_id: track.id,
        outcome: Outcome::Denied,
        reasons: Vec::new(),
        identity: None,
        similarity: None,
        nearest: None,
        frames_used: usable.len(),
        frames_seen: track.frames_seen,
        live: None,
        live_frames: Vec::new(),
        pad_threshold: policy.require_live,
        bona_fide: None,
        mad_threshold: policy.require_bona_fide,
        tags: track
            .sightings
            .iter()
            .any(|s| s.tags.is_some())
            .then(|| merge_tags(track.sightings.iter().filter_map(|s| s.tags.as_deref()))),
        detector_score: 0.0,
        face_px: usable.iter().map(|s| s.face.width()).fold(0.0, f32::max),
        match_threshold: policy.match_threshold,
        encoder: policy.encoder.clone(),
        detector: policy.detector.clone(),
        crop_png: None,
    };
    if enough {
        d.detector_score = usable.iter().map(|s| s.face.score).sum::<f32>() / usable.len() as f32;
        // The mean of the frames' live scores: over tracks of 5 development captures it
        // separated attacks better than the median, the minimum or the mean log-odds
        // (docs/evaluation.md).
        d.live_frames = crate::track::live_scores(&track.sightings, &policy.tracker);
        if !d.live_frames.is_empty() {
            d.live = Some(d.live_frames.iter().sum::<f32>() / d.live_frames.len() as f32);
        }
        let dim = usable[0].embedding.0.len();
        let mut fused = vec![0.0f32; dim];
        for s in &usable {
            let w = s.face.score * s.face.area();
            fused.iter_mut().zip(&s.embedding.0).for_each(|(f, e)| *f += w * e);
        }
        let norm = fused.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            fused.iter_mut().for_each(|x| *x /= norm);
        }
        if let Some(m) = who.best_match(&Embedding(fused.clone())) {
            d.similarity = Some(m.similarity);
            d.bona_fide = policy.bona_fide(&m.reference, &fused);
            if m.similarity >= policy.match_threshold {
                d.identity = Some(m.name.clone());
            }
            d.nearest = Some(m.name);
        }
    }
    let evidence =
        Evidence { usable: enough, similarity: d.similarity, live: d.live, bona_fide: d.bona_fide };
    (d.outcome, d.reasons) = judge(evidence, policy);
    d.crop_png = usable
        .iter()
        .filter_map(|s| s.crop.as_ref().map(|c| (s.sharpness, c)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .and_then(|(_, crop)| {
            let mut png = Vec::new();
            crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .ok()
                .map(|_| png)
        });
    d
}
