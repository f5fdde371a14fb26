//! Image resizing shared by the stages (pyramid levels, detector crops, tagger inputs).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// Resizes an RGB image. Shrinking averages every source pixel (box filter, like OpenCV's
/// INTER_AREA that the detectors were trained with); enlarging interpolates bilinearly.
pub fn resize_rgb(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = src.dimensions();
    if (sw, sh) == (width, height) {
        return src.clone();
    }
    let filter = if width < sw && height < sh { FilterType::Box } else { FilterType::Bilinear };
    // Both buffers are tightly packed u8x3 and sized from their own dimensions, so the
    // constructors and the resize cannot fail.
    let src_ref = ImageRef::new(sw, sh, src.as_raw(), PixelType::U8x3).expect("packed RGB buffer");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src_ref,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)),
        )
        .expect("same pixel type");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer sized by width × height")
}
