//! Sources of frames. A frame is a decoded RGB image with where it came from; every later
//! stage takes a `&Frame` and never touches files or cameras.

pub mod convert;
mod replay;
mod v4l2;

pub use replay::parse_list;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use image::{ImageDecoder, ImageReader, RgbImage};

pub use replay::ReplaySource;
pub use v4l2::{PixelFormat, V4l2Source};

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

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
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
}

impl Frame {
    /// A frame captured now.
    pub fn new(image: RgbImage, source: impl Into<String>) -> Frame {
        Frame { image, source: source.into(), seq: 0, timestamp_ms: now_ms() }
    }

    pub fn width(&self) -> u32 {
        self.image.width()
    }
    pub fn height(&self) -> u32 {
        self.image.height()
    }
}

/// Why an image could not become a frame. `Undecodable` covers truncated and non-image files.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {path} does not exist; check the path")]
    Missing { path: PathBuf },
    #[error("image {path} cannot be read: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "image {path} cannot be decoded ({reason}); give a complete JPEG, PNG, WebP or BMP file"
    )]
    Undecodable { path: PathBuf, reason: String },
}

/// Decodes an image file into a frame, applying its EXIF orientation so that a phone photo
/// taken sideways is upright, as a person looking at it would expect.
pub fn load_image(path: &Path) -> Result<Frame, ImageError> {
    let undecodable = |reason: String| ImageError::Undecodable { path: path.to_path_buf(), reason };
    if !path.exists() {
        return Err(ImageError::Missing { path: path.to_path_buf() });
    }
    let bytes = std::fs::read(path)
        .map_err(|source| ImageError::Unreadable { path: path.to_path_buf(), source })?;
    let image = decode(&bytes).map_err(undecodable)?;
    Ok(Frame::new(image, path.display().to_string()))
}

/// Largest side of a decoded image, in pixels (a 48-megapixel phone photo is 8000 × 6000).
pub const MAX_SIDE: u32 = 10_000;

/// What a decoder may allocate: a few bytes of header cannot make a device reserve gigabytes
/// (a kiosk has little memory, and an image file is untrusted input).
fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 << 20);
    limits
}

/// Decodes encoded image bytes (JPEG, PNG, WebP, BMP) into RGB.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    let format = image::guess_format(bytes).map_err(|_| "not a known image format".to_string())?;
    // A JPEG cut short still decodes into a grey-filled picture; a face engine must not
    // enrol that, so require the end-of-image marker.
    if format == image::ImageFormat::Jpeg && !bytes.ends_with(&[0xFF, 0xD9]) {
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err("the JPEG data is truncated: it has no end-of-image marker".into());
        }
    }
    let why = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => {
            format!("it is over {MAX_SIDE} pixels a side or 512 MiB decoded; scale it down")
        }
        e => e.to_string(),
    };
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(decode_limits());
    let mut decoder = reader.into_decoder().map_err(why)?;
    let orientation = decoder.orientation().map_err(why)?;
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(why)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("the image is empty".into());
    }
    Ok(image.to_rgb8())
}
