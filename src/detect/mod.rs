//! Face detection: from a frame to face boxes with five landmarks.

mod mtcnn;
mod nms;

use serde::Serialize;

pub use mtcnn::{Mtcnn, MtcnnParams};
pub use nms::{iou, nms, Overlap};

/// A detected face in frame pixel coordinates (0-based, `x2`/`y2` exclusive).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Face {
    /// `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Detector confidence, 0..1.
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corners, as `[x, y]`.
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
}
