//! Any text as a config file: a config or one error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = edgeid::config::Config::parse(text, std::path::Path::new("/etc/edgeid/edgeid.toml"));
});
