//! Any text as a model manifest: a manifest or one error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = edgeid::manifest::Manifest::parse(text, std::path::Path::new("models/m.toml"));
});
