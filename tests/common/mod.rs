//! Shared set-up for the integration tests: the repository's own models, config and photos.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A daemon config in a temporary folder: the repo's models, a replay source (`fps`, `loop`),
/// its own gallery and journal, and `http` as the metrics address ("" for none).
pub struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    pub fn new(replay: &str, fps: f32, looping: bool, http: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let models = root().join("models");
        let text = std::fs::read_to_string(root().join("configs/default.toml"))
            .unwrap()
            .replace("../models/", &format!("{}/", models.display()))
            .replace("path = \"../tests/data/replay.txt\"", &format!("path = {:?}", replay))
            .replace("fps = 0\n", &format!("fps = {fps}\n"))
            .replace("loop = false", &format!("loop = {looping}"))
            .replace("http = \"127.0.0.1:9464\"", &format!("http = {http:?}"))
            .replace("../var/", "");
        std::fs::write(dir.path().join("edgeid.toml"), text).unwrap();
        Setup { dir }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("edgeid.toml")
    }
    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.db")
    }
    pub fn gallery(&self) -> PathBuf {
        self.dir.path().join("gallery.db")
    }
    pub fn enrol(&self, name: &str, photo: &str) {
        let cfg = edgeid::config::Config::load(&self.config()).unwrap();
        edgeid::app::enroll(&cfg, &self.gallery(), name, &[data(photo)]).unwrap();
    }
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}
