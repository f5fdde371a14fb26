//! Face detection: from a frame to face boxes with landmarks.
//!
//! Every detector implements [`FaceDetector`]; the config's `[detector]` table names its kind,
//! and [`load`] builds it. Adding a detector is one file here (the model's code, and its
//! settings with [`DetectorSettings`]), its manifest, one variant of [`DetectorConfig`] with
//! its two arms in `settings`/`settings_mut` and its word in the table reader, and tests.

mod blazeface;
mod face;
mod mtcnn;
mod nms;

use std::path::PathBuf;

use crate::infer::BackendKind;
use crate::manifest::ModelError;
use crate::util::{check_range, table_error, OutOfRange};

pub use blazeface::{BlazeFace, BlazeFaceParams, BlazefaceConfig};
pub use face::{DetectorSettings, Face, FaceDetector, LandmarkSet};
pub use mtcnn::{Mtcnn, MtcnnConfig, MtcnnParams};
pub use nms::{iou, nms, weighted_nms, Overlap};

/// The face detector, by kind (`kind = "blazeface"` or `"mtcnn"`; each kind's settings live
/// in its file). A table without `kind` that names `pnet` is read as MTCNN, so configs
/// written before detectors had kinds still load.
#[derive(Debug, Clone)]
pub enum DetectorConfig {
    Mtcnn(MtcnnConfig),
    Blazeface(BlazefaceConfig),
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
