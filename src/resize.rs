//! Image resizing shared by the stages (pyramid levels, detector crops, tagger inputs).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// Resizes an RGB image. Shrinking averages every source pixel (box filter, like OpenCV's
/// INTER_AREA that the detectors were trained with); enlarging interpolates bilinearly.
pub fn resize_rgb(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_region(src, [0, 0, src.width(), src.height()], width, height)
}

/// Resizes the part `[x, y, width, height]` of an RGB image (clipped to the image), as
/// `resize_rgb` of that part, without copying it out first: a detector's region can be the
/// whole of a 10 000-pixel photo, and a copy of it was 300 MB more at the peak.
pub fn resize_region(src: &RgbImage, region: [u32; 4], width: u32, height: u32) -> RgbImage {
    let (sw, sh) = src.dimensions();
    let (x, y) = (region[0].min(sw), region[1].min(sh));
    let (rw, rh) = (region[2].min(sw - x), region[3].min(sh - y));
    let whole = (x, y, rw, rh) == (0, 0, sw, sh);
    let shrink = width < rw && height < rh;
    if (rw, rh) == (width, height) || !(shrink || whole) {
        // An enlarged part is small; it is copied so that the bilinear filter does not reach
        // pixels outside it.
        let part = image::imageops::crop_imm(src, x, y, rw, rh).to_image();
        return if (rw, rh) == (width, height) { part } else { resize_rgb(&part, width, height) };
    }
    let filter = if shrink { FilterType::Box } else { FilterType::Bilinear };
    // Both buffers are tightly packed u8x3 and sized from their own dimensions, and the crop box
    // lies inside the source, so the constructors and the resize cannot fail.
    let src_ref = ImageRef::new(sw, sh, src.as_raw(), PixelType::U8x3).expect("packed RGB buffer");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter))
        .crop(x as f64, y as f64, rw as f64, rh as f64);
    Resizer::new().resize(&src_ref, &mut dst, &options).expect("same pixel type, box inside");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer sized by width × height")
}
