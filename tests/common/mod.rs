//! Shared set-up for the integration tests: the repository's own models, config and photos.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use edgeid::capture::{load_image, Frame};
use edgeid::config::Config;
use edgeid::pipeline::Pipeline;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

pub fn config() -> Config {
    Config::load(&root().join("configs/default.toml")).expect("default config loads")
}

pub fn frame(name: &str) -> Frame {
    load_image(&data(name)).expect("sample photo decodes")
}

/// One pipeline per test binary: loading and planning the models is the slow part.
pub fn pipeline() -> std::sync::MutexGuard<'static, Pipeline> {
    static P: OnceLock<Mutex<Pipeline>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(Pipeline::load(&config()).expect("bundled models load")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

pub const SAMPLES: [&str; 6] =
    ["sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg"];
