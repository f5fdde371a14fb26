//! Any text as a replay list: its listed paths, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let files = edgeid::capture::parse_list(text, std::path::Path::new("/srv/replay"));
    assert!(files.len() <= text.lines().count());
});
