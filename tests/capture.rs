//! The camera path's pixel-format conversion on real frames: YUYV as a UVC camera sends it
//! (made from a real photo with the BT.601 equations) and MJPEG (a real JPEG with its Huffman
//! tables removed, as UVC cameras send it), converted by the same code the V4L2 source runs.

mod common;

use common::{data, frame, pipeline};
use edgeid::capture::convert::{rgb_to_yuyv, strip_dht};
use edgeid::capture::{Frame, PixelFormat};

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[test]
fn yuyv_frames_convert_to_the_photo_and_its_faces() {
    let original = frame("sample1.jpg");
    let (w, h) = original.image.dimensions();
    let buf = rgb_to_yuyv(&original.image);
    assert_eq!(buf.len(), (w * h * 2) as usize);
    let rgb = PixelFormat::Yuyv.to_rgb(&buf, w, h).unwrap();
    let diff = mean_abs_diff(&original.image, &rgb);
    println!("YUYV round trip: mean absolute difference {diff:.2} levels");
    // Chroma is shared by pixel pairs, so colour edges blur a little; no more than that.
    assert!(diff < 3.0, "{diff}");
    let faces = pipeline().detect(&Frame::new(rgb, "yuyv")).unwrap();
    assert_eq!(faces.len(), 3, "the three faces of sample1 survive the camera format");
    // A short buffer is a clear error, not a panic.
    let err = PixelFormat::Yuyv.to_rgb(&buf[..buf.len() / 2], w, h).unwrap_err();
    assert!(err.contains("needs"), "{err}");
}

#[test]
fn mjpeg_frames_without_huffman_tables_decode() {
    let jpeg = std::fs::read(data("sample1.jpg")).unwrap();
    let stripped = strip_dht(&jpeg);
    assert!(stripped.len() < jpeg.len(), "sample1.jpg carries Huffman tables to strip");
    assert!(!stripped.windows(2).any(|w| w == [0xFF, 0xC4]), "no DHT marker left");
    let reference = PixelFormat::Mjpeg.to_rgb(&jpeg, 0, 0).unwrap();
    let decoded = PixelFormat::Mjpeg.to_rgb(&stripped, 0, 0);
    match decoded {
        Ok(img) => {
            let diff = mean_abs_diff(&reference, &img);
            println!("MJPEG without DHT: mean absolute difference {diff:.3} to the full JPEG");
            // The photo was encoded with the standard tables: identical pixels.
            assert!(diff < 0.01, "{diff}");
        }
        Err(e) => panic!("MJPEG frame without DHT did not decode: {e}"),
    }
    // A cut frame (USB hiccup) is an error naming what is wrong, not a panic.
    let err = PixelFormat::Mjpeg.to_rgb(&jpeg[..jpeg.len() / 3], 0, 0).unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    assert!(PixelFormat::Mjpeg.to_rgb(b"garbage", 0, 0).is_err());
}
