//! Sources of frames. A frame is a decoded RGB image with where it came from; every later
//! stage takes a `&Frame` and never touches files or cameras.

use std::path::{Path, PathBuf};

use image::{ImageDecoder, ImageReader, RgbImage};

/// One decoded frame, 8-bit RGB, row-major.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// The file path, or camera name, the frame came from (for messages and the journal).
    pub source: String,
}

impl Frame {
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
    #[error("image {path} cannot be decoded ({reason}); give a complete JPEG, PNG or BMP file")]
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
    Ok(Frame { image, source: path.display().to_string() })
}

/// Decodes encoded image bytes (JPEG, PNG, BMP) into RGB.
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
    let reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("the image is empty".into());
    }
    Ok(image.to_rgb8())
}
