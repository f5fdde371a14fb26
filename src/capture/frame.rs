//! A frame, and what yields frames: a source (camera, recording) and why it could not.

use std::path::PathBuf;

use image::RgbImage;

/// One decoded frame, 8-bit RGB, row-major.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// The file path, or camera name, the frame came from (for messages and the journal).
    pub source: String,
    /// Frame number within its source, from 0.
    pub seq: u64,
    /// Capture time, Unix milliseconds.
    pub timestamp_ms: i64,
}

/// Why a source could not deliver a frame. A daemon retries `Unavailable` with back-off.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("camera {device}: {message}")]
    Unavailable { device: String, message: String },
    #[error("camera {device} delivered a frame that cannot be decoded: {message}")]
    BadFrame { device: String, message: String },
    #[error("replay source {path}: {message}")]
    Replay { path: PathBuf, message: String },
    /// The source's settings are wrong (or this build cannot open it): retrying cannot help.
    #[error("camera {source_name}: {message}")]
    Config { source_name: String, message: String },
}

/// Something that yields frames: a camera, or recorded images.
pub trait Source: Send {
    /// The next frame; `None` when the source has ended (a replay that does not loop).
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
    /// A short name for logs, metrics and the journal.
    fn name(&self) -> &str;
    /// Whether frames come at the source's own pace (a camera, a paced replay) and must be
    /// dropped when inference falls behind; otherwise the source waits for the pipeline.
    fn is_live(&self) -> bool {
        true
    }
    /// Frames the source itself dropped since the last call (a network stream decoded faster
    /// than they are taken), for the daemon to count with its own.
    fn take_dropped(&mut self) -> u64 {
        0
    }
}

impl Frame {
    /// A frame captured now.
    pub fn new(image: RgbImage, source: impl Into<String>) -> Frame {
        Frame { image, source: source.into(), seq: 0, timestamp_ms: crate::clock::now_ms() }
    }

    pub fn width(&self) -> u32 {
        self.image.width()
    }
    pub fn height(&self) -> u32 {
        self.image.height()
    }
}
