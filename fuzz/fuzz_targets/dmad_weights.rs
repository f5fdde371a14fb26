//! Any bytes as a linear D-MAD head's weights file (models/dmad-baseline.json's format) for a
//! 256-value encoder: weights of that length, all finite, or an error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = edgeid::heads::mad::LinearWeights::parse(data, 256) {
        assert!(w.weights.len() == 256 && w.weights.iter().all(|x| x.is_finite()));
    }
});
