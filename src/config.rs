//! The configuration file (TOML). Unknown keys and out-of-range values are refused with a
//! message that names the file, the key and what is allowed: a typo in a threshold must not
//! silently fall back to a default on an access-control device.
//!
//! Relative paths in the file are resolved against the file's own folder, so a config works
//! wherever the daemon is started from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::MtcnnParams;
use crate::infer::BackendKind;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path} cannot be read: {source}; pass an existing file with --config")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("config {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config {path}: {key} = {value} is out of range ({allowed}); fix the value or remove the key to use the default")]
    OutOfRange { path: PathBuf, key: String, value: String, allowed: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Inference runtime for every model.
    #[serde(default)]
    pub backend: BackendKind,
    pub detector: DetectorConfig,
    pub encoder: EncoderConfig,
    pub recognition: RecognitionConfig,
    #[serde(default)]
    pub gallery: GalleryConfig,
    /// The file this was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Manifests of the three MTCNN stages.
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
    /// Smallest face side searched for, in pixels (≥ 12; smaller means a slower, deeper pyramid).
    #[serde(default = "default_min_face_px")]
    pub min_face_px: f32,
    /// Ratio between pyramid levels (0.5..0.9).
    #[serde(default = "default_scale_factor")]
    pub scale_factor: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    #[serde(default = "default_stage_thresholds")]
    pub stage_thresholds: [f32; 3],
    /// NMS overlaps: within a pyramid level, across levels, after R-Net, after O-Net.
    #[serde(default = "default_nms")]
    pub nms: [f32; 4],
    /// Average O-Net's landmarks over each face crop and its mirror image (one more O-Net
    /// pass; steadier alignment on tilted faces).
    #[serde(default = "default_true")]
    pub mirror_landmarks: bool,
    /// Place the landmarks with a second O-Net pass on a crop centred on the final box (one
    /// more O-Net pass over the faces found; steadier alignment when the box moved a lot).
    #[serde(default = "default_true")]
    pub refine_landmarks: bool,
    /// Faces below this final score are not reported.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    pub manifest: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognitionConfig {
    /// Cosine similarity at or above which a face is the enrolled identity.
    pub match_threshold: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryConfig {
    /// Gallery database used when a command gets no --gallery.
    #[serde(default = "default_gallery_path")]
    pub path: PathBuf,
}

impl Default for GalleryConfig {
    fn default() -> Self {
        GalleryConfig { path: default_gallery_path() }
    }
}

fn default_min_face_px() -> f32 {
    20.0
}
fn default_scale_factor() -> f32 {
    0.709
}
fn default_stage_thresholds() -> [f32; 3] {
    [0.6, 0.7, 0.7]
}
fn default_nms() -> [f32; 4] {
    [0.5, 0.7, 0.7, 0.7]
}
fn default_true() -> bool {
    true
}
fn default_min_score() -> f32 {
    0.9
}
fn default_gallery_path() -> PathBuf {
    PathBuf::from("gallery.db")
}

impl Config {
    /// Reads, parses, validates and resolves a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Unreadable { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Parses config text as if read from `path` (which anchors relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: toml_error(text, &e),
        })?;
        cfg.path = path.to_path_buf();
        cfg.validate()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.detector.pnet,
            &mut cfg.detector.rnet,
            &mut cfg.detector.onet,
            &mut cfg.encoder.manifest,
            &mut cfg.gallery.path,
        ] {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.detector;
        let unit = "between 0 and 1, exclusive";
        self.check(
            "detector.min_face_px",
            d.min_face_px,
            |v| (12.0..=4096.0).contains(&v),
            "12 to 4096 pixels",
        )?;
        self.check(
            "detector.scale_factor",
            d.scale_factor,
            |v| (0.5..=0.9).contains(&v),
            "0.5 to 0.9",
        )?;
        for (i, t) in d.stage_thresholds.iter().enumerate() {
            self.check(
                &format!("detector.stage_thresholds[{i}]"),
                *t,
                |v| v > 0.0 && v < 1.0,
                unit,
            )?;
        }
        for (i, t) in d.nms.iter().enumerate() {
            self.check(&format!("detector.nms[{i}]"), *t, |v| v > 0.0 && v < 1.0, unit)?;
        }
        self.check("detector.min_score", d.min_score, |v| v > 0.0 && v < 1.0, unit)?;
        self.check(
            "recognition.match_threshold",
            self.recognition.match_threshold,
            |v| v > -1.0 && v < 1.0,
            "a cosine similarity between -1 and 1, exclusive",
        )?;
        Ok(())
    }

    fn check(
        &self,
        key: &str,
        value: f32,
        ok: impl Fn(f32) -> bool,
        allowed: &str,
    ) -> Result<(), ConfigError> {
        if value.is_finite() && ok(value) {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange {
                path: self.path.clone(),
                key: key.to_string(),
                value: value.to_string(),
                allowed: allowed.to_string(),
            })
        }
    }

    pub fn mtcnn_params(&self) -> MtcnnParams {
        let d = &self.detector;
        MtcnnParams {
            min_face_px: d.min_face_px,
            scale_factor: d.scale_factor,
            thresholds: d.stage_thresholds,
            nms: d.nms,
            mirror_landmarks: d.mirror_landmarks,
            refine_landmarks: d.refine_landmarks,
        }
    }
}

/// toml's error as one line with its line number (its Display spans several lines with a
/// source excerpt, which reads badly in a log).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("{message} (line {line}: `{source}`)")
        }
        None => message,
    }
}
