//! Camera pixel formats to RGB: YUYV 4:2:2 (BT.601, limited range, what UVC webcams send) and
//! MJPEG (a JPEG per frame, often without Huffman tables).

use std::sync::OnceLock;

use image::RgbImage;

/// YUYV (Y0 U Y1 V per two pixels) to RGB, BT.601 limited range.
pub fn yuyv_to_rgb(buf: &[u8], width: u32, height: u32) -> Result<RgbImage, String> {
    let need = width as usize * height as usize * 2;
    if !width.is_multiple_of(2) {
        return Err(format!("YUYV needs an even width, got {width}"));
    }
    if buf.len() < need {
        return Err(format!(
            "YUYV frame of {width}×{height} needs {need} bytes, got {}",
            buf.len()
        ));
    }
    let mut out = Vec::with_capacity(need / 2 * 3);
    for px in buf[..need].chunks_exact(4) {
        let (u, v) = (px[1] as f32 - 128.0, px[3] as f32 - 128.0);
        for y in [px[0], px[2]] {
            let c = 1.164 * (y as f32 - 16.0);
            out.push((c + 1.596 * v).round().clamp(0.0, 255.0) as u8);
            out.push((c - 0.392 * u - 0.813 * v).round().clamp(0.0, 255.0) as u8);
            out.push((c + 2.017 * u).round().clamp(0.0, 255.0) as u8);
        }
    }
    Ok(RgbImage::from_raw(width, height, out).expect("sized from width × height"))
}

/// RGB to YUYV, BT.601 limited range (chroma averaged over each pixel pair): what a camera
/// sends, used to replay recordings through the camera path and to test it.
pub fn rgb_to_yuyv(img: &RgbImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mut out = Vec::with_capacity((w / 2 * 2 * h * 2) as usize);
    for y in 0..h {
        for x in (0..w - w % 2).step_by(2) {
            let (a, b) = (img.get_pixel(x, y).0, img.get_pixel(x + 1, y).0);
            let luma =
                |p: [u8; 3]| 16.0 + 0.257 * p[0] as f32 + 0.504 * p[1] as f32 + 0.098 * p[2] as f32;
            let r = (a[0] as f32 + b[0] as f32) / 2.0;
            let g = (a[1] as f32 + b[1] as f32) / 2.0;
            let bl = (a[2] as f32 + b[2] as f32) / 2.0;
            let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * bl;
            let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * bl;
            for val in [luma(a), u, luma(b), v] {
                out.push(val.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// The standard JPEG Huffman tables (ITU T.81 Annex K) as DHT segments, taken from a JPEG the
/// `image` encoder writes (it uses exactly those tables), so no table is typed by hand.
fn standard_dht() -> &'static [u8] {
    static DHT: OnceLock<Vec<u8>> = OnceLock::new();
    DHT.get_or_init(|| {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&RgbImage::new(8, 8))
            .expect("encoding an 8×8 image in memory");
        let mut dht = Vec::new();
        for (marker, start, len) in segments(&jpeg) {
            if marker == 0xC4 {
                dht.extend_from_slice(&jpeg[start..start + len]);
            }
        }
        dht
    })
}

/// (marker, offset, length including the marker) of each segment before the scan data.
fn segments(jpeg: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 2; // after SOI
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize + 2;
        out.push((marker, i, len));
        if marker == 0xDA {
            break;
        }
        i += len;
    }
    out
}

/// Decodes one MJPEG frame. UVC cameras commonly leave out the Huffman tables (the format
/// says to use the standard ones), which a still-image decoder refuses; they are put back first.
pub fn mjpeg_to_rgb(buf: &[u8]) -> Result<RgbImage, String> {
    if buf.len() < 4 || buf[0] != 0xFF || buf[1] != 0xD8 {
        return Err("not a JPEG frame (no start-of-image marker)".into());
    }
    let segs = segments(buf);
    let has_dht = segs.iter().any(|s| s.0 == 0xC4);
    let sos =
        segs.iter().find(|s| s.0 == 0xDA).map(|s| s.1).ok_or("JPEG frame without scan data")?;
    if has_dht {
        return super::decode::decode(buf);
    }
    let mut fixed = Vec::with_capacity(buf.len() + 512);
    fixed.extend_from_slice(&buf[..sos]);
    fixed.extend_from_slice(standard_dht());
    fixed.extend_from_slice(&buf[sos..]);
    super::decode::decode(&fixed)
}

/// Removes the Huffman tables from a JPEG, as many UVC cameras send it.
pub fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let segs = segments(jpeg);
    let mut end = 2;
    for (marker, start, len) in segs {
        if marker == 0xDA {
            end = start;
            break;
        }
        if marker != 0xC4 {
            out.extend_from_slice(&jpeg[start..start + len]);
        }
    }
    out.extend_from_slice(&jpeg[end..]);
    out
}
