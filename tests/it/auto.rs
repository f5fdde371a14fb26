//! Backend `auto`: every backend this build can load is timed on the model, the fastest is
//! kept, and the choice is cached per model and device. Without the `ort` feature tract is the
//! only candidate; with it (and `ORT_DYLIB_PATH`, as `.ci/run` sets), onnxruntime's CPU
//! provider is timed too.

use crate::common;

use std::process::Command;

use common::{data, root};
use edgeid::encode::cosine;
use edgeid::infer::{self, auto, BackendKind};
use edgeid::manifest::Manifest;

fn embed(session: &mut dyn infer::Session, crop: &image::RgbImage) -> Vec<f32> {
    let data: Vec<f32> = crop.as_raw().iter().map(|&p| p as f32).collect();
    let out = session.run(infer::Tensor::new(vec![1, 112, 112, 3], data)).unwrap();
    out[0].data.clone()
}

#[test]
fn auto_times_every_backend_caches_the_choice_and_reuses_it() {
    let manifest = Manifest::load(&root().join("models/mobileface.toml")).unwrap();
    let bytes = manifest.verify_file().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/backends.json");

    let (mut session, first) = auto::load(&manifest, &bytes, &["embedding"], Some(&cache)).unwrap();
    assert!(!first.cached);
    let expected = if cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some() {
        vec![BackendKind::Ort, BackendKind::Tract]
    } else {
        vec![BackendKind::Tract]
    };
    let mut timed: Vec<BackendKind> = first.timings.iter().map(|t| t.backend).collect();
    timed.sort_by_key(|b| b.name());
    assert_eq!(timed, expected, "{first:?}");
    assert_eq!(first.backend, first.timings[0].backend, "the fastest is kept");
    assert!(first.timings.windows(2).all(|w| w[0].median_ms <= w[1].median_ms));
    assert!(first.timings.iter().all(|t| t.median_ms > 0.0));
    println!("auto on mobileface: {:?}", first.timings);

    // Whatever it chose computes the same embedding as tract.
    let crop = image::open(root().join("tests/fixtures/crops/sample1_face1.png")).unwrap();
    let crop = crop.to_rgb8();
    let mut tract = infer::load(BackendKind::Tract, &manifest, &["embedding"]).unwrap();
    let s = cosine(&embed(session.as_mut(), &crop), &embed(tract.as_mut(), &crop));
    assert!(s > 0.9999, "cosine {s}");

    // The next start takes the cached choice without measuring.
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains(&manifest.sha256), "{text}");
    let (_, second) = auto::load(&manifest, &bytes, &["embedding"], Some(&cache)).unwrap();
    assert!(second.cached);
    assert_eq!((second.backend, &second.timings), (first.backend, &first.timings));

    // Another model gets its own entry; the first one's stays.
    let pad = Manifest::load(&root().join("models/liveness.toml")).unwrap();
    let (_, other) =
        auto::load(&pad, &pad.verify_file().unwrap(), &["score"], Some(&cache)).unwrap();
    assert!(!other.cached);
    let (_, again) = auto::load(&manifest, &bytes, &["embedding"], Some(&cache)).unwrap();
    assert!(again.cached);

    // A damaged cache is measured again and rewritten, never fatal.
    std::fs::write(&cache, "{ not json").unwrap();
    let (_, remeasured) = auto::load(&manifest, &bytes, &["embedding"], Some(&cache)).unwrap();
    assert!(!remeasured.cached);
    let (_, fixed) = auto::load(&manifest, &bytes, &["embedding"], Some(&cache)).unwrap();
    assert!(fixed.cached);

    // Every choice of this process is kept for `edgeid bench`.
    let made = auto::choices();
    assert!(made.iter().filter(|c| c.model == manifest.id).count() >= 5);
}

/// `backend = "auto"` in a config: `edgeid identify` names the same faces as with tract, logs
/// each model's choice, and writes the cache where `EDGEID_BACKEND_CACHE` says.
#[test]
fn identify_with_backend_auto_logs_each_choice() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auto.toml");
    let text = std::fs::read_to_string(root().join("configs/mtcnn-mobileface.toml"))
        .unwrap()
        .replace("backend = \"tract\"", "backend = \"auto\"")
        .replace("../models/", &format!("{}/", root().join("models").display()))
        .replace("../var/", &format!("{}/", dir.path().display()));
    std::fs::write(&config, text).unwrap();
    let cache = dir.path().join("backends.json");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .env("EDGEID_BACKEND_CACHE", &cache)
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let sample2 = data("sample2.jpg");
    let sample1 = data("sample1.jpg");
    run(&["enroll", "--name", "alice", sample2.to_str().unwrap()]);
    let (stdout, stderr) = run(&["identify", sample1.to_str().unwrap()]);
    assert_eq!(stdout.matches("alice (similarity").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("unknown (nearest").count(), 2, "{stdout}");
    // P-Net, R-Net, O-Net, the encoder and the two PAD heads: each logged, at identify
    // from the cache the enrolment wrote.
    for id in ["mobileface", "mtcnn", "minifasnet-v2-2.7", "minifasnet-v1se-4.0"] {
        assert!(stderr.contains(&format!("backend auto: {id}")), "{id}: {stderr}");
    }
    assert!(stderr.contains("(cached)"), "{stderr}");
    assert!(std::fs::read_to_string(&cache).unwrap().contains("\"backend\""));
}
