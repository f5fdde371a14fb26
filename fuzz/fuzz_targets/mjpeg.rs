//! Any bytes as one MJPEG camera frame: the segment walker that puts back missing Huffman
//! tables, then the decoder. An image or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgeid::capture::convert::mjpeg_to_rgb(data);
});
