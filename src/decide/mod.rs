//! The access decision for one tracked person: fuse the usable frames of the track into one
//! embedding (weighted by detector score and face size, as Frigate does) and one live score,
//! search the gallery, and grant only when every requirement of the policy holds. A denial
//! names every requirement that failed.

use serde::Serialize;

use crate::config::{Config, TrackerConfig};
use crate::encode::Embedding;
use crate::gallery::Gallery;
use crate::track::{is_usable, Track};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// One decision, as journaled.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Unix milliseconds of the last frame decided on.
    pub time_ms: i64,
    pub camera: String,
    pub track_id: u64,
    pub outcome: Outcome,
    /// Why access was denied, every failed requirement: `low_quality` (too few usable frames),
    /// `presentation_attack` (live score below the PAD threshold), `unknown` (no enrolled
    /// match). Empty when granted.
    pub reasons: Vec<String>,
    pub identity: Option<String>,
    /// Cosine similarity of the fused embedding to the nearest enrolled identity.
    pub similarity: Option<f32>,
    pub nearest: Option<String>,
    /// Usable frames fused, and frames the track was seen in.
    pub frames_used: usize,
    pub frames_seen: usize,
    /// Mean live score of the usable frames, when PAD runs.
    pub live: Option<f32>,
    pub pad_threshold: Option<f32>,
    /// Mean detector score and largest face width (pixels) over the usable frames.
    pub detector_score: f32,
    pub face_px: f32,
    pub match_threshold: f32,
    pub encoder: String,
    pub detector: String,
    /// The sharpest usable aligned crop, PNG, when crops are stored (never in the JSON record).
    #[serde(skip)]
    pub crop_png: Option<Vec<u8>>,
}

/// Models and thresholds a decision is taken with, recorded beside it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub match_threshold: f32,
    pub require_match: bool,
    /// PAD threshold when liveness is required.
    pub require_live: Option<f32>,
    pub tracker: TrackerConfig,
    pub encoder: String,
    pub detector: String,
}

impl Policy {
    /// The policy a config asks for, with the ids of the models in use.
    pub fn from_config(cfg: &Config, encoder: &str, detector: &str) -> Policy {
        Policy {
            match_threshold: cfg.recognition.match_threshold,
            require_match: cfg.policy.require_match,
            require_live: cfg.policy.require_live.then_some(cfg.pad.threshold),
            tracker: cfg.tracker.clone(),
            encoder: encoder.to_string(),
            detector: detector.to_string(),
        }
    }
}

/// The policy's verdict on one face (or fused track): every requirement checked, each failure
/// named. `usable` is false when there was not enough good material to judge.
pub fn judge(
    usable: bool,
    similarity: Option<f32>,
    live: Option<f32>,
    policy: &Policy,
) -> (Outcome, Vec<String>) {
    let mut reasons = Vec::new();
    if !usable {
        reasons.push("low_quality".to_string());
    }
    if let Some(threshold) = policy.require_live {
        if usable && live.is_none_or(|l| l < threshold) {
            reasons.push("presentation_attack".to_string());
        }
    }
    if policy.require_match && usable && similarity.is_none_or(|s| s < policy.match_threshold) {
        reasons.push("unknown".to_string());
    }
    let outcome = if reasons.is_empty() { Outcome::Granted } else { Outcome::Denied };
    (outcome, reasons)
}

/// Decides on a track against the gallery.
pub fn decide(track: &Track, camera: &str, gallery: &Gallery, policy: &Policy) -> Decision {
    let usable: Vec<_> = track.sightings.iter().filter(|s| is_usable(s, &policy.tracker)).collect();
    let time_ms = track.sightings.last().map(|s| s.timestamp_ms).unwrap_or(0);
    let enough = !usable.is_empty() && usable.len() >= policy.tracker.min_frames;
    let mut d = Decision {
        time_ms,
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
        pad_threshold: policy.require_live,
        detector_score: 0.0,
        face_px: usable.iter().map(|s| s.face.width()).fold(0.0, f32::max),
        match_threshold: policy.match_threshold,
        encoder: policy.encoder.clone(),
        detector: policy.detector.clone(),
        crop_png: None,
    };
    if enough {
        d.detector_score = usable.iter().map(|s| s.face.score).sum::<f32>() / usable.len() as f32;
        let lives: Vec<f32> = usable.iter().filter_map(|s| s.live).collect();
        if !lives.is_empty() {
            d.live = Some(lives.iter().sum::<f32>() / lives.len() as f32);
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
        if let Some(m) = gallery.best_match(&Embedding(fused)) {
            d.similarity = Some(m.similarity);
            if m.similarity >= policy.match_threshold {
                d.identity = Some(m.name.clone());
            }
            d.nearest = Some(m.name);
        }
    }
    (d.outcome, d.reasons) = judge(enough, d.similarity, d.live, policy);
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
