//! Tagging: what is in a frame besides faces. Tags describe; they never grant access.
//!
//! Two taggers: an ONNX object detector (NanoDet class, [`objects`]) and a prototype bank
//! ([`prototypes`]): labels with mean embeddings in an encoder's space, so that a unified
//! encoder (CLIP/EVA-02 class) tags by similarity with no code change, only a bank file built
//! from example images.

pub mod objects;
pub mod prototypes;

use serde::Serialize;

pub use objects::{Detection, ObjectDetector, ObjectParams};
pub use prototypes::PrototypeBank;

/// One tag of an image: a label and its best score (detector confidence, or cosine similarity
/// to the label's prototype).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    pub label: String,
    pub score: f32,
}

/// The best score per label of a list of detections, best first.
pub fn tags_of(detections: &[Detection]) -> Vec<Tag> {
    let mut tags: Vec<Tag> = Vec::new();
    for d in detections {
        match tags.iter_mut().find(|t| t.label == d.label) {
            Some(t) => t.score = t.score.max(d.score),
            None => tags.push(Tag { label: d.label.clone(), score: d.score }),
        }
    }
    tags.sort_by(|a, b| b.score.total_cmp(&a.score));
    tags
}
