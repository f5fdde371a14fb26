//! A tag: a label and its score, what every tagger gives.

use serde::{Deserialize, Serialize};

/// One tag of an image: a label and its best score (detector confidence, or cosine similarity
/// to the label's prototype).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub label: String,
    pub score: f32,
}
