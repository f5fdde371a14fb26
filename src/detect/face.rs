//! What a detector gives (faces with their boxes and landmarks) and what every detector and its
//! settings can do.

use std::path::PathBuf;

use serde::Serialize;

use crate::capture::Frame;
use crate::infer::BackendKind;
use crate::manifest::ModelError;
use crate::util::OutOfRange;

/// A face detector: a frame in, its faces out, best first.
pub trait FaceDetector: Send {
    /// Finds the faces in a frame, best first (before the config's `min_score` filter).
    fn detect(&mut self, frame: &Frame) -> anyhow::Result<Vec<Face>>;
    /// The model id(s) of the detector, journaled with every decision.
    fn model_id(&self) -> &str;
}

/// What every detector kind's settings (its `[detector]` table, in the detector's own file)
/// provide; [`DetectorConfig`] hands each call to the configured kind.
pub trait DetectorSettings {
    /// Faces below this final score are not reported.
    fn min_score(&self) -> f32;
    /// Refuses values outside what the detector can run with, naming the key.
    fn check(&self) -> Result<(), OutOfRange>;
    /// Its manifests, to verify.
    fn manifests(&self) -> Vec<&PathBuf>;
    /// The same, to resolve against the config's folder.
    fn manifests_mut(&mut self) -> Vec<&mut PathBuf>;
    /// Builds the detector, checking every manifest it uses.
    fn load(&self, backend: BackendKind) -> Result<Box<dyn FaceDetector>, ModelError>;
}

/// Which points [`Face::landmarks`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LandmarkSet {
    /// Left eye, right eye, nose, left and right mouth corners (MTCNN, RetinaFace).
    #[default]
    Five,
    /// Left eye, right eye, nose and the centre of the mouth, which stands in both mouth slots
    /// (BlazeFace places no mouth corners).
    MouthCentre,
}

/// A detected face in frame pixel coordinates (0-based, `x2`/`y2` exclusive).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Face {
    /// `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Detector confidence, 0..1.
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corners, as `[x, y]` ("left" as the
    /// image shows it); see `points` for detectors that place fewer.
    pub landmarks: [[f32; 2]; 5],
    /// Which points `landmarks` holds.
    pub points: LandmarkSet,
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

    /// The measured landmarks paired with where they belong on a five-point template (eyes,
    /// nose, mouth corners): all five, or for a mouth centre the mean of the two corners, so
    /// that each measured point weighs once in the fit.
    pub fn correspondences(&self, template: &[[f32; 2]]) -> (Vec<[f32; 2]>, Vec<[f32; 2]>) {
        match self.points {
            LandmarkSet::Five => (self.landmarks.to_vec(), template.to_vec()),
            LandmarkSet::MouthCentre => {
                let mouth = [
                    (template[3][0] + template[4][0]) / 2.0,
                    (template[3][1] + template[4][1]) / 2.0,
                ];
                (self.landmarks[..4].to_vec(), vec![template[0], template[1], template[2], mouth])
            }
        }
    }
}
