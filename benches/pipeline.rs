//! Per-stage latency on a real photo with the default config's models: detection, alignment,
//! a PAD head's crop, encoding (and the int8 MobileFace variant), 1:N search, the whole frame.
//! Each figure is named with the model it ran (`detect 1280x853 (blazeface-full-range@…)`).
//! `cargo bench`; `edgeid bench` reports the same stages with percentiles on a device.
//!
//! Compare numbers as ratios within one run: these machines are shared and noisy.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use edgeid::align::align;
use edgeid::capture::load_image;
use edgeid::config::Config;
use edgeid::encode::{Embedding, Encoder};
use edgeid::gallery::search::Matrix;
use edgeid::gallery::{Gallery, GalleryOptions};
use edgeid::heads::square_crop;
use edgeid::manifest::Manifest;
use edgeid::pipeline::Pipeline;
use edgeid::resize::resize_rgb;

fn stages(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = Config::load(&root.join("configs/default.toml")).expect("config");
    let mut pipeline = Pipeline::load(&cfg).expect("models");
    let frame = load_image(&root.join("tests/data/sample1.jpg")).expect("photo");
    let faces = pipeline.detect(&frame).expect("detect");
    let face = faces[0].clone();
    let spec = pipeline.encoder.alignment().clone();
    let aligned = align(&frame.image, &face, &spec).expect("align");

    let (detector, encoder) =
        (pipeline.detector.model_id().to_string(), pipeline.encoder.model_id().to_string());
    let mut group = c.benchmark_group("stages");
    group.sample_size(10);
    group.bench_function(format!("detect 1280x853 ({detector})"), |b| {
        b.iter(|| pipeline.detect(&frame).unwrap())
    });
    group
        .bench_function("align 112x112", |b| b.iter(|| align(&frame.image, &face, &spec).unwrap()));
    // What a PAD head does to a face before its model runs: the square around the box, resized
    // to the antispoof head's 128×128 input.
    group.bench_function("PAD crop 1 face (square + resize to 128)", |b| {
        b.iter(|| resize_rgb(&square_crop(&frame.image, &face.bbox, 1.0), 128, 128))
    });
    group.bench_function(format!("encode 1 face ({encoder})"), |b| {
        b.iter(|| pipeline.encoder.encode(&[&aligned.image]).unwrap())
    });
    // The int8 variant of the encoder (static QDQ) on the same crop.
    let int8 = Manifest::load(&root.join("models/mobileface-int8.toml")).expect("int8 manifest");
    let mut int8 = Encoder::load(cfg.backend, &int8).expect("int8 encoder");
    group.bench_function("encode 1 face (mobileface int8)", |b| {
        b.iter(|| int8.encode(&[&aligned.image]).unwrap())
    });
    group.bench_function("frame: detect+align+encode 3 faces", |b| {
        b.iter(|| pipeline.observe(&frame).unwrap())
    });

    // 1:N search over 10,000 enrolled templates (random unit vectors, real probe).
    let probe = pipeline.encoder.encode(&[&aligned.image]).unwrap().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let options = GalleryOptions {
        key: dir.path().join("bench.key"),
        encoder: "bench".into(),
        dim: probe.0.len(),
        create: true,
    };
    let mut gallery = Gallery::open(&dir.path().join("bench.db"), &options).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let templates: Vec<(Embedding, String)> = (0..10_000)
        .map(|_| {
            let v: Vec<f32> = (0..probe.0.len()).map(|_| next()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (Embedding(v.iter().map(|x| x / n).collect()), "bench".to_string())
        })
        .collect();
    gallery.enroll("synthetic", &templates).unwrap();
    group.bench_function("search 10k templates", |b| b.iter(|| gallery.best_match(&probe)));
    group.finish();

    // The search alone at larger sizes: the f32 scan against the int8 pre-scan with exact
    // re-ranking (what Matrix::best picks from search::INT8_FROM templates on).
    let mut group = c.benchmark_group("search");
    group.sample_size(20);
    let dim = probe.0.len();
    let unit_probe: Vec<f32> = {
        let n = probe.0.iter().map(|x| x * x).sum::<f32>().sqrt();
        probe.0.iter().map(|x| x / n).collect()
    };
    let mut matrix = Matrix::new(dim);
    for size in [10_000usize, 100_000, 1_000_000] {
        while matrix.len() < size {
            let v: Vec<f32> = (0..dim).map(|_| next()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            matrix.push(&v.iter().map(|x| x / n).collect::<Vec<f32>>());
        }
        group.bench_function(format!("f32 scan {size}"), |b| {
            b.iter(|| {
                matrix
                    .scores(&unit_probe)
                    .into_iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            })
        });
        group.bench_function(format!("int8 scan + rerank {size}"), |b| {
            b.iter(|| matrix.best_int8(&unit_probe))
        });
    }
    group.finish();
}

/// The same stages on tract and on onnxruntime's CPU provider, one thread each (cargo feature
/// `ort`, `ORT_DYLIB_PATH` set): `cargo bench --features ort --bench pipeline -- backends`.
#[cfg(feature = "ort")]
fn backends(c: &mut Criterion) {
    use edgeid::infer::BackendKind;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let frame = load_image(&root.join("tests/data/sample1.jpg")).expect("photo");
    let mut group = c.benchmark_group("backends");
    group.sample_size(20);
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        let mut cfg = Config::load(&root.join("configs/default.toml")).expect("config");
        cfg.backend = backend;
        let mut pipeline = Pipeline::load(&cfg).expect("models");
        let faces = pipeline.detect(&frame).expect("detect");
        let spec = pipeline.encoder.alignment().clone();
        let aligned = align(&frame.image, &faces[0], &spec).expect("align");
        let crops = [&faces[..1], &faces[..]];
        let name = backend.name();
        let (detector, encoder) =
            (pipeline.detector.model_id().to_string(), pipeline.encoder.model_id().to_string());
        group.bench_function(format!("{name}: detect 1280x853 ({detector})"), |b| {
            b.iter(|| pipeline.detect(&frame).unwrap())
        });
        group.bench_function(format!("{name}: encode 1 face ({encoder})"), |b| {
            b.iter(|| pipeline.encoder.encode(&[&aligned.image]).unwrap())
        });
        if let Some(pad) = pipeline.pad.as_mut() {
            group.bench_function(format!("{name}: pad 1 face (2 heads)"), |b| {
                b.iter(|| pad.score(&frame.image, crops[0]).unwrap())
            });
        }
        group.bench_function(format!("{name}: frame, 3 faces"), |b| {
            b.iter(|| pipeline.observe(&frame).unwrap())
        });
    }
    group.finish();
}

#[cfg(feature = "ort")]
criterion_group!(benches, stages, backends);
#[cfg(not(feature = "ort"))]
criterion_group!(benches, stages);
criterion_main!(benches);
