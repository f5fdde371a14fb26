//! Any bytes given as an image file: decoded or refused with a message, never a panic, and
//! never bigger than the decoder limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = edgeid::capture::decode(data) {
        assert!(image.width() <= edgeid::capture::MAX_SIDE);
        assert!(image.height() <= edgeid::capture::MAX_SIDE);
    }
});
