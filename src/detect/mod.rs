//! Face detection: from a frame to face boxes with landmarks.
//!
//! Every detector implements [`FaceDetector`]; the config's `[detector]` table names its kind,
//! and [`load`] builds it. Adding a detector is one file here (the model's code, and its
//! settings with [`DetectorSettings`]), its manifest, one variant of [`DetectorConfig`] with
//! its two arms in `settings`/`settings_mut` and its word in the table reader, and tests.

mod blazeface;
mod mtcnn;
mod nms;

use std::path::PathBuf;

use serde::Serialize;

use crate::capture::Frame;
use crate::infer::BackendKind;
use crate::manifest::ModelError;
use crate::util::{check_range, table_error, OutOfRange};

pub use blazeface::{BlazeFace, BlazeFaceParams, BlazefaceConfig};
pub use mtcnn::{Mtcnn, MtcnnConfig, MtcnnParams};
pub use nms::{iou, nms, weighted_nms, Overlap};

/// A face detector: a frame in, its faces out, best first.
pub trait FaceDetector: Send {
    /// Finds the faces in a frame, best first (before the config's `min_score` filter).
    fn detect(&mut self, frame: &Frame) -> anyhow::Result<Vec<Face>>;
    /// The model id(s) of the detector, journaled with every decision.
    fn model_id(&self) -> &str;
}

/// The face detector, by kind (`kind = "blazeface"` or `"mtcnn"`; each kind's settings live
/// in its file). A table without `kind` that names `pnet` is read as MTCNN, so configs
/// written before detectors had kinds still load.
#[derive(Debug, Clone)]
pub enum DetectorConfig {
    Mtcnn(MtcnnConfig),
    Blazeface(BlazefaceConfig),
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

impl DetectorConfig {
    /// The configured kind's settings: the one place that lists the kinds besides the reader
    /// below.
    pub fn settings(&self) -> &dyn DetectorSettings {
        match self {
            DetectorConfig::Mtcnn(c) => c,
            DetectorConfig::Blazeface(c) => c,
        }
    }

    fn settings_mut(&mut self) -> &mut dyn DetectorSettings {
        match self {
            DetectorConfig::Mtcnn(c) => c,
            DetectorConfig::Blazeface(c) => c,
        }
    }

    /// Faces below this final score are not reported.
    pub fn min_score(&self) -> f32 {
        self.settings().min_score()
    }

    /// Refuses settings out of range (the config names its file around the error).
    pub fn check(&self) -> Result<(), OutOfRange> {
        self.settings().check()?;
        check_range(
            "detector.min_score",
            self.min_score(),
            |v| v > 0.0 && v < 1.0,
            "between 0 and 1, exclusive",
        )
    }

    /// The detector's manifests.
    pub fn manifests(&self) -> Vec<&PathBuf> {
        self.settings().manifests()
    }

    /// The same, to resolve them against the config's folder.
    pub fn manifests_mut(&mut self) -> Vec<&mut PathBuf> {
        self.settings_mut().manifests_mut()
    }
}

/// Reads the `[detector]` table by its `kind`, taking a table without `kind` that names `pnet`
/// as `kind = "mtcnn"` (configs written before detectors had kinds). The kind's own table is
/// then read as a plain struct, so that a bad key is named in the error (serde's tagged enums
/// lose the key of an error inside them).
impl<'de> serde::Deserialize<'de> for DetectorConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DetectorConfig, D::Error> {
        use serde::de::Error;
        let mut table = <toml::Table as serde::Deserialize>::deserialize(d)?;
        let kinds = "\"blazeface\" or \"mtcnn\"";
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(other) => {
                return Err(D::Error::custom(format!("detector.kind = {other} must be {kinds}")))
            }
            None if table.contains_key("pnet") => "mtcnn".into(),
            None => {
                return Err(D::Error::custom(format!("the [detector] table needs `kind`: {kinds}")))
            }
        };
        let text = toml::to_string(&table).map_err(D::Error::custom)?;
        fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
            toml::from_str(text).map_err(|e| table_error("detector", text, &e))
        }
        match kind.as_str() {
            "mtcnn" => parse(&text).map(DetectorConfig::Mtcnn),
            "blazeface" => parse(&text).map(DetectorConfig::Blazeface),
            other => {
                Err(format!("detector.kind = \"{other}\" is not a detector kind; use {kinds}"))
            }
        }
        .map_err(D::Error::custom)
    }
}

/// Builds the detector the config names, checking every manifest it uses.
pub fn load(
    backend: BackendKind,
    cfg: &DetectorConfig,
) -> Result<Box<dyn FaceDetector>, ModelError> {
    cfg.settings().load(backend)
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
