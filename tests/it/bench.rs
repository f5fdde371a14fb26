//! `edgeid bench` on the bundled models and a real photo: the JSON holds every stage and model
//! with ordered percentiles, the Markdown report and its charts are written, and bad input is
//! refused with one message. Figures are printed, never asserted against a clock.

use crate::common;

use std::process::{Command, Output};

use common::root;

fn edgeid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeid")).args(args).current_dir(root()).output().unwrap()
}

#[test]
fn bench_reports_every_stage_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bench/report.md");
    let out = edgeid(&[
        "bench",
        "tests/data/sample1.jpg",
        "--runs",
        "3",
        "--gallery",
        "2000",
        "--model",
        "models/mobileface-int8.toml",
        "--streams",
        "1,2",
        "--json",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["faces"], 3);
    assert_eq!(r["width"], 1280);
    assert_eq!(r["gallery"], 2000);
    assert!(r["device"]["cores"].as_u64().unwrap() >= 1);
    let backends = r["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 1);
    assert_eq!(backends[0]["backend"], "tract");
    let stages: Vec<&str> = backends[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["detect", "align", "encode", "pad", "search", "frame"]);
    for s in backends[0]["stages"].as_array().unwrap() {
        let (p50, p95, p99) = (
            s["p50_ms"].as_f64().unwrap(),
            s["p95_ms"].as_f64().unwrap(),
            s["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p95 && p95 <= p99, "{s}");
    }
    let frame = &backends[0]["stages"][5]["p50_ms"].as_f64().unwrap();
    assert!((backends[0]["fps"].as_f64().unwrap() - 1e3 / frame).abs() < 1e-9);
    if cfg!(target_os = "linux") {
        assert!(backends[0]["peak_rss_mib"].as_f64().unwrap() > 10.0);
    }
    // The first frame after load is its four stages, each timed; throughput per camera count;
    // no GPU memory on tract.
    let first = backends[0]["first_frame_ms"].as_f64().unwrap();
    let parts: Vec<f64> = ["first_detect_ms", "first_align_ms", "first_encode_ms", "first_pad_ms"]
        .iter()
        .map(|k| backends[0][k].as_f64().unwrap())
        .collect();
    assert!(parts.iter().all(|&ms| ms > 0.0), "{parts:?}");
    assert!((parts.iter().sum::<f64>() - first).abs() < 1e-6, "{parts:?} {first}");
    assert!(backends[0]["second_frame_ms"].as_f64().unwrap() > 0.0);
    let through = backends[0]["throughput"].as_array().unwrap();
    let cameras: Vec<u64> = through.iter().map(|t| t["streams"].as_u64().unwrap()).collect();
    assert_eq!(cameras, [1, 2]);
    assert!(through.iter().all(|t| t["fps"].as_f64().unwrap() > 0.0), "{through:?}");
    assert!(backends[0]["gpu_mib"].is_null());
    // The config's five models (BlazeFace, encoder, two PAD heads, the object tagger) and the
    // int8 encoder, which names its fp32 source.
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 6, "{models:?}");
    let int8 = models.iter().find(|m| m["precision"] == "int8").unwrap();
    assert_eq!(int8["derived_from"], "mobileface-256@80c1c6f0");
    assert_eq!(int8["input"], serde_json::json!([1, 112, 112, 3]));
    for m in models {
        assert!(m["first_run_ms"].as_f64().unwrap() > 0.0, "{m}");
        println!("{}: p50 {:.3} ms", m["model"], m["p50_ms"].as_f64().unwrap());
    }

    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| tract | detect |"), "{md}");
    assert!(md.contains("| tract | 2 |"), "throughput with two cameras: {md}");
    assert!(md.contains("| mobileface-256-int8@61c8f6d0 | int8 |"), "{md}");
    for chart in ["report-stages.svg", "report-models.svg"] {
        assert!(md.contains(chart));
        let svg = std::fs::read_to_string(dir.path().join("bench").join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{chart}");
    }
}

#[test]
fn bench_refuses_bad_input_by_name() {
    let out = edgeid(&["bench", "tests/data/sample1.jpg", "--backend", "cuda"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--backend: unknown backend `cuda`; one of tract, ort"), "{err}");

    // A photo without a face: one message naming the photo.
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(320, 240, image::Rgb([90, 120, 150])).save(&blank).unwrap();
    let out = edgeid(&["bench", blank.to_str().unwrap(), "--runs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("blank.png: no face found"), "{err}");

    let out = edgeid(&["bench", "tests/data/sample1.jpg", "--runs", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runs must be at least 1"));
    let out = edgeid(&["bench", "tests/data/sample1.jpg", "--streams", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--streams: each count from 1 to 64"));
}
