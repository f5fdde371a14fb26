//! Image files and bytes decoded into frames, within bounds a device can hold.

use std::path::{Path, PathBuf};

use image::{ImageDecoder, ImageReader, RgbImage};

use super::frame::Frame;

/// Why an image could not become a frame. `Undecodable` covers truncated and non-image files.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {path} does not exist; check the path")]
    Missing { path: PathBuf },
    #[error("image {path} cannot be read: {error}")]
    Unreadable { path: PathBuf, error: std::io::Error },
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
        .map_err(|error| ImageError::Unreadable { path: path.to_path_buf(), error })?;
    let image = decode(&bytes).map_err(undecodable)?;
    Ok(Frame::new(image, path.display().to_string()))
}

/// Largest side of a decoded image, in pixels (a 48-megapixel phone photo is 8000 × 6000).
pub const MAX_SIDE: u32 = 10_000;

/// Most a decoder may allocate, in bytes: a 10 000 × 10 000 RGB image is 300 MB.
const MAX_ALLOC: u64 = 512 << 20;

/// What a decoder may allocate: a few bytes of header cannot make a device reserve gigabytes
/// (a kiosk has little memory, and an image file is untrusted input).
fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

fn over_limits() -> String {
    format!("it is over {MAX_SIDE} pixels a side or {} MiB decoded; scale it down", MAX_ALLOC >> 20)
}

/// Refuses an image whose decoding would hold more than [`MAX_ALLOC`] at its peak: the decoded
/// pixels (`bytes_per_pixel` each), plus the RGB copy made when they are not RGB already, plus
/// the copy a quarter turn makes. The decoder's own limit saw only the first: a 3.9 KB lossless
/// WebP of 9999 × 9999 decoded to 400 MB of RGBA, then 300 MB of RGB beside it.
fn within_budget(
    (width, height): (u32, u32),
    bytes_per_pixel: u64,
    rgb: bool,
    turned: bool,
) -> Result<(), String> {
    let pixels = u64::from(width) * u64::from(height);
    let decoded = pixels * bytes_per_pixel;
    let converted = if rgb { 0 } else { pixels * 3 };
    let turn = if turned { decoded.max(pixels * 3) } else { 0 };
    if decoded + converted + turn > MAX_ALLOC {
        return Err(over_limits());
    }
    Ok(())
}

/// Whether applying `o` makes a new buffer (a quarter turn) rather than working in place.
fn turns(o: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation::*;
    matches!(o, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
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
    let image = if format == image::ImageFormat::Png {
        decode_png(bytes)?
    } else {
        let why = |e: image::ImageError| match e {
            image::ImageError::Limits(_) => over_limits(),
            e => e.to_string(),
        };
        let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
        reader.limits(decode_limits());
        let mut decoder = reader.into_decoder().map_err(why)?;
        let orientation = decoder.orientation().map_err(why)?;
        let color = decoder.color_type();
        within_budget(
            decoder.dimensions(),
            u64::from(color.bytes_per_pixel()),
            color == image::ColorType::Rgb8,
            turns(orientation),
        )?;
        let mut image = image::DynamicImage::from_decoder(decoder).map_err(why)?;
        image.apply_orientation(orientation);
        image
    };
    if image.width() == 0 || image.height() == 0 {
        return Err("the image is empty".into());
    }
    // `into_rgb8` keeps an RGB image's buffer where `to_rgb8` would copy it (300 MB at the
    // largest size).
    Ok(image.into_rgb8())
}

/// A PNG through the `png` crate with its colour profile and text chunks skipped: `image`
/// inflates an iCCP chunk up to its whole allocation limit before finding it too large (a 1 MB
/// chunk in a 64 × 64 PNG cost 600 MB), and neither is used here. Palette, grey and 16-bit
/// images come out as 8-bit grey or colour; an eXIf orientation is applied as for a JPEG.
fn decode_png(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    use image::{DynamicImage, ImageBuffer};
    let why = |e: png::DecodingError| match e {
        png::DecodingError::LimitsExceeded => over_limits(),
        e => e.to_string(),
    };
    let limits = png::Limits { bytes: MAX_ALLOC as usize };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_ignore_text_chunk(true);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(why)?;
    let (width, height) = reader.info().size();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(over_limits());
    }
    let size =
        reader.output_buffer_size().filter(|&n| n as u64 <= MAX_ALLOC).ok_or_else(over_limits)?;
    let (color, _) = reader.output_color_type();
    let exif = reader.info().exif_metadata.as_deref();
    let orientation = exif.and_then(image::metadata::Orientation::from_exif_chunk);
    within_budget(
        (width, height),
        color.samples() as u64,
        color == png::ColorType::Rgb,
        orientation.is_some_and(turns),
    )?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(why)?;
    buf.truncate(frame.buffer_size());
    let short = || "the PNG data is shorter than its header says".to_string();
    let mut image = match frame.color_type {
        png::ColorType::Grayscale => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(width, height, buf).ok_or_else(short)?)
        }
        png::ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA8(ImageBuffer::from_raw(width, height, buf).ok_or_else(short)?)
        }
        png::ColorType::Rgb => {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(width, height, buf).ok_or_else(short)?)
        }
        png::ColorType::Rgba => {
            DynamicImage::ImageRgba8(ImageBuffer::from_raw(width, height, buf).ok_or_else(short)?)
        }
        png::ColorType::Indexed => return Err("the PNG palette could not be expanded".into()),
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image)
}
