//! Sources of frames. A frame is a decoded RGB image with where it came from; every later
//! stage takes a `&Frame` and never touches files or cameras.

pub mod convert;
mod decode;
mod frame;
#[cfg(feature = "gstreamer")]
mod gst;
pub mod record;
mod replay;
mod rtsp;
mod sources;
mod v4l2;

pub use decode::{decode, load_image, ImageError, MAX_SIDE};
pub use frame::{CaptureError, Frame, Source};
pub use replay::{parse_list, ReplaySource};
pub use rtsp::{RtspCamera, Transport};
pub use sources::SourceConfig;
pub use v4l2::{PixelFormat, V4l2Source};

#[cfg(test)]
mod tests {
    use super::decode::*;

    /// A PNG of `pixels` (packed samples of `color` at `depth`), with an optional eXIf chunk.
    fn png(
        (w, h): (u32, u32),
        color: png::ColorType,
        depth: png::BitDepth,
        pixels: &[u8],
        palette: Option<Vec<u8>>,
        exif: Option<Vec<u8>>,
    ) -> Vec<u8> {
        let mut info = png::Info::with_size(w, h);
        (info.color_type, info.bit_depth) = (color, depth);
        info.palette = palette.map(Into::into);
        info.exif_metadata = exif.map(Into::into);
        let mut out = Vec::new();
        let mut writer = png::Encoder::with_info(&mut out, info).unwrap().write_header().unwrap();
        writer.write_image_data(pixels).unwrap();
        writer.finish().unwrap();
        out
    }

    /// Each PNG colour type comes out as the `image` crate's own decoder gave it (16-bit
    /// samples within one step: the high byte, where `image` rounds).
    #[test]
    fn png_colour_types_decode_as_image_did() {
        use png::{BitDepth::*, ColorType::*};
        let cases: Vec<Vec<u8>> = vec![
            png((3, 2), Rgb, Eight, &(0..18).map(|i| i * 13).collect::<Vec<u8>>(), None, None),
            png((3, 2), Rgba, Eight, &(0..24).map(|i| i * 10).collect::<Vec<u8>>(), None, None),
            png((3, 2), Grayscale, Eight, &[0, 40, 80, 120, 160, 255], None, None),
            png(
                (3, 2),
                GrayscaleAlpha,
                Eight,
                &[9, 255, 50, 0, 90, 128, 1, 2, 3, 4, 5, 6],
                None,
                None,
            ),
            png((3, 2), Rgb, Sixteen, &(0..36).map(|i| i * 7).collect::<Vec<u8>>(), None, None),
            png(
                (3, 2),
                Indexed,
                Eight,
                &[0, 1, 2, 2, 1, 0],
                Some(vec![255, 0, 0, 0, 9, 0, 1, 2, 250]),
                None,
            ),
        ];
        for bytes in cases {
            let ours = decode(&bytes).unwrap();
            let theirs = image::load_from_memory(&bytes).unwrap().into_rgb8();
            assert_eq!(ours.dimensions(), theirs.dimensions());
            for (a, b) in ours.as_raw().iter().zip(theirs.as_raw()) {
                assert!(a.abs_diff(*b) <= 1, "{:?} vs {:?}", ours.as_raw(), theirs.as_raw());
            }
        }
    }

    /// A PNG's eXIf orientation is applied, as for a JPEG: "rotate 90° clockwise" turns a
    /// 2 × 1 image into 1 × 2 with its left pixel on top.
    #[test]
    fn png_exif_orientation_is_applied() {
        // Big-endian TIFF: one IFD entry, tag 0x0112 (orientation), SHORT, count 1, value 6.
        let exif = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0,
            0,
        ];
        let bytes = png(
            (2, 1),
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[200, 0, 0, 0, 0, 90],
            None,
            Some(exif.to_vec()),
        );
        let img = decode(&bytes).unwrap();
        assert_eq!(img.dimensions(), (1, 2));
        assert_eq!(img.get_pixel(0, 0).0, [200, 0, 0]);
        assert_eq!(img.get_pixel(0, 1).0, [0, 0, 90]);
    }
}
