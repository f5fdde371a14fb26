//! The camera path's pixel-format conversion on real frames: YUYV as a UVC camera sends it
//! (made from a real photo with the BT.601 equations) and MJPEG (a real JPEG with its Huffman
//! tables removed, as UVC cameras send it), converted by the same code the V4L2 source runs.

use crate::common;

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

/// The largest face of a frame, encoded.
fn largest_embedding(f: &Frame) -> Vec<f32> {
    let obs = pipeline().observe(f).unwrap();
    obs.into_iter().max_by(|a, b| a.face.area().total_cmp(&b.face.area())).unwrap().embedding.0
}

/// A JPEG whose pixels are stored turned a quarter to the left, with EXIF orientation 6 ("turn
/// 90° clockwise to show"), as a phone held sideways writes it.
fn sideways_jpeg(img: &image::RgbImage) -> Vec<u8> {
    let turned = image::imageops::rotate270(img);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&turned)
        .unwrap();
    // APP1 "Exif": a little-endian TIFF header and one IFD entry, Orientation (0x0112) = 6.
    let tiff: [u8; 26] = [
        b'I', b'I', 42, 0, 8, 0, 0, 0, // header, IFD at 8
        1, 0, // one entry
        0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, // Orientation, SHORT, 1 value: 6
        0, 0, 0, 0, // no next IFD
    ];
    let mut app1 = vec![0xFF, 0xE1];
    let len = (2 + 6 + tiff.len()) as u16;
    app1.extend(len.to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(tiff);
    [&jpeg[..2], &app1[..], &jpeg[2..]].concat()
}

/// A phone photo taken sideways is read upright (its EXIF orientation applied), so its face is
/// found and encoded as the upright photo's.
#[test]
fn exif_rotated_photo_is_read_upright() {
    let upright = frame("sample3.jpg");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sideways.jpg");
    std::fs::write(&path, sideways_jpeg(&upright.image)).unwrap();
    let read = edgeid::capture::load_image(&path).unwrap();
    assert_eq!(read.image.dimensions(), upright.image.dimensions(), "turned back upright");
    let sim = edgeid::encode::cosine(&largest_embedding(&read), &largest_embedding(&upright));
    println!("EXIF-rotated sample3: largest face similarity to the upright photo {sim:.3}");
    assert!(sim >= 0.9, "{sim}");
    // Without its orientation the same pixels are another picture: the check above is not
    // passed by accident.
    let raw = image::load_from_memory(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((raw.width(), raw.height()), (upright.height(), upright.width()));
}

/// A WebP photo (as browsers and phones send them) is read, pixel for pixel (lossless).
#[test]
fn webp_photo_is_read() {
    let original = frame("sample1.jpg");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample1.webp");
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(
            original.image.as_raw(),
            original.width(),
            original.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    std::fs::write(&path, webp).unwrap();
    let read = edgeid::capture::load_image(&path).unwrap();
    assert_eq!(read.image, original.image);
    assert_eq!(pipeline().detect(&read).unwrap().len(), 3);
}
