//! Any bytes as a YUYV camera frame: width and height (u16, little-endian) from the first four
//! bytes, the frame after them. An image of that size or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let w = u16::from_le_bytes([data[0], data[1]]) as u32;
    let h = u16::from_le_bytes([data[2], data[3]]) as u32;
    if let Ok(img) = edgeid::capture::convert::yuyv_to_rgb(&data[4..], w, h) {
        assert_eq!(img.dimensions(), (w, h));
    }
});
