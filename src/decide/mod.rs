//! The access decision for one tracked person: fuse the usable frames of the track into one
//! embedding (weighted by detector score and face size, as Frigate does), search the gallery,
//! and grant only a match at or above the threshold.

use serde::Serialize;

use crate::config::TrackerConfig;
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
    /// Why access was denied: `unknown` (no enrolled match) or `low_quality` (too few usable
    /// frames); `None` when granted.
    pub reason: Option<String>,
    pub identity: Option<String>,
    /// Cosine similarity of the fused embedding to the nearest enrolled identity.
    pub similarity: Option<f32>,
    pub nearest: Option<String>,
    /// Usable frames fused, and frames the track was seen in.
    pub frames_used: usize,
    pub frames_seen: usize,
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
    pub tracker: TrackerConfig,
    pub encoder: String,
    pub detector: String,
}

/// Decides on a track against the gallery.
pub fn decide(track: &Track, camera: &str, gallery: &Gallery, policy: &Policy) -> Decision {
    let usable: Vec<_> = track.sightings.iter().filter(|s| is_usable(s, &policy.tracker)).collect();
    let time_ms = track.sightings.last().map(|s| s.timestamp_ms).unwrap_or(0);
    let mut d = Decision {
        time_ms,
        camera: camera.to_string(),
        track_id: track.id,
        outcome: Outcome::Denied,
        reason: None,
        identity: None,
        similarity: None,
        nearest: None,
        frames_used: usable.len(),
        frames_seen: track.frames_seen,
        detector_score: 0.0,
        face_px: usable.iter().map(|s| s.face.width()).fold(0.0, f32::max),
        match_threshold: policy.match_threshold,
        encoder: policy.encoder.clone(),
        detector: policy.detector.clone(),
        crop_png: None,
    };
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
    if usable.is_empty() || usable.len() < policy.tracker.min_frames {
        d.reason = Some("low_quality".into());
        return d;
    }
    d.detector_score = usable.iter().map(|s| s.face.score).sum::<f32>() / usable.len() as f32;
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
    match gallery.best_match(&Embedding(fused)) {
        Some(m) => {
            d.similarity = Some(m.similarity);
            if m.similarity >= policy.match_threshold {
                d.identity = Some(m.name.clone());
                d.outcome = Outcome::Granted;
            } else {
                d.reason = Some("unknown".into());
            }
            d.nearest = Some(m.name);
        }
        None => d.reason = Some("unknown".into()),
    }
    d
}
