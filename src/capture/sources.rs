//! The `[[sources]]` of a config: cameras and recordings, each opened (and opened again after a
//! failure) by the daemon.

use std::path::PathBuf;

use serde::Deserialize;

use super::frame::{CaptureError, Source};
use super::replay::ReplaySource;
use super::v4l2::{PixelFormat, V4l2Source};

/// One frame source of the daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// A V4L2 camera.
    V4l2 {
        /// Camera name in logs, metrics and the journal.
        name: String,
        device: PathBuf,
        #[serde(default = "default_width")]
        width: u32,
        #[serde(default = "default_height")]
        height: u32,
        /// Frames per second asked of the driver (0: the driver's default).
        #[serde(default)]
        fps: u32,
        /// `MJPEG` or `YUYV`.
        format: PixelFormat,
    },
    /// Recorded images: a folder (sorted by name) or a list file.
    Replay {
        name: String,
        path: PathBuf,
        /// Frames per second; 0 plays as fast as possible.
        #[serde(default)]
        fps: f32,
        /// Start again at the end instead of stopping.
        #[serde(default, rename = "loop")]
        looping: bool,
    },
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::V4l2 { name, .. } | SourceConfig::Replay { name, .. } => name,
        }
    }

    /// Opens the source (again, after a failure).
    pub fn open(&self) -> Result<Box<dyn Source>, CaptureError> {
        Ok(match self {
            SourceConfig::V4l2 { name, device, width, height, fps, format } => {
                Box::new(V4l2Source::open(name, device, *width, *height, *fps, *format)?)
            }
            SourceConfig::Replay { name, path, fps, looping } => {
                Box::new(ReplaySource::open(name, path, *fps, *looping)?)
            }
        })
    }
}

fn default_width() -> u32 {
    1280
}

fn default_height() -> u32 {
    720
}
