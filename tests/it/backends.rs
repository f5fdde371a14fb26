//! The onnxruntime backend (cargo feature `ort`) against tract on the real models and photos:
//! the same faces, boxes, embeddings, live scores and object tags. Needs `ORT_DYLIB_PATH`
//! (the libonnxruntime.so of `pip install onnxruntime`; `.ci/run` sets it).

use crate::common;

use common::{config, frame, legacy_config, SAMPLES};
use edgeid::detect::iou;
use edgeid::infer::BackendKind;
use edgeid::pipeline::Pipeline;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Every face of the six photos through both backends with `tract_cfg`'s models: the same
/// faces (as many as `expected`), boxes, embeddings and live scores.
fn agree(tract_cfg: edgeid::config::Config, expected: usize) {
    let mut ort_cfg = tract_cfg.clone();
    ort_cfg.backend = BackendKind::Ort;
    let mut tract = Pipeline::load(&tract_cfg).unwrap();
    let mut ort = Pipeline::load(&ort_cfg).unwrap_or_else(|e| panic!("{e}"));
    let (mut faces, mut worst_cos, mut worst_iou, mut worst_live) = (0, 1.0f32, 1.0f32, 0.0f32);
    for name in SAMPLES {
        let f = frame(name);
        let a = tract.observe(&f).unwrap();
        let b = ort.observe(&f).unwrap();
        assert_eq!(a.len(), b.len(), "{name}: faces found");
        for (x, y) in a.iter().zip(&b) {
            worst_iou = worst_iou.min(iou(&x.face.bbox, &y.face.bbox));
            worst_cos = worst_cos.min(cosine(&x.embedding.0, &y.embedding.0));
            let live = |o: &edgeid::pipeline::Observation| o.pad.as_ref().unwrap().live;
            worst_live = worst_live.max((live(x) - live(y)).abs());
            faces += 1;
        }
    }
    println!(
        "{} / {}: {faces} faces: box IoU >= {worst_iou:.4}, embedding cosine >= {worst_cos:.6}, live score within {worst_live:.5}",
        tract.detector.model_id(),
        tract.encoder.model_id()
    );
    assert_eq!(faces, expected);
    assert!(worst_iou > 0.99, "box IoU {worst_iou}");
    assert!(worst_cos > 0.9999, "embedding cosine {worst_cos}");
    assert!(worst_live < 1e-3, "live score difference {worst_live}");
}

/// The defaults (BlazeFace, MobileFaceNet): 22 faces.
#[test]
fn onnxruntime_agrees_with_tract_on_every_face() {
    agree(config(), 22);
}

/// The previous default (MTCNN, MobileFace): 20 faces.
#[test]
fn onnxruntime_agrees_with_tract_on_the_previous_default() {
    agree(legacy_config(), 20);
}

#[test]
fn onnxruntime_tags_like_tract() {
    let tract_cfg = config();
    let mut ort_cfg = config();
    ort_cfg.backend = BackendKind::Ort;
    let f = frame("sample1.jpg");
    let tags = |cfg| edgeid::pipeline::tagger(cfg).unwrap().tag(&f.image).unwrap().tags;
    let (a, b) = (tags(&tract_cfg), tags(&ort_cfg));
    let labels = |t: &[edgeid::tag::Tag]| t.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
    println!("tract {a:?}\nort   {b:?}");
    assert!(!a.is_empty());
    assert_eq!(labels(&a), labels(&b));
    for (x, y) in a.iter().zip(&b) {
        assert!((x.score - y.score).abs() < 1e-3, "{}: {} vs {}", x.label, x.score, y.score);
    }
}

/// Regression: the onnxruntime sessions ran without their arena (`ep::CPU::default()` turns
/// it off), so every run allocated its intermediate tensors afresh: a 4.3 MiB block per
/// BlazeFace frame mapped and unmapped, about 1400 page faults a 640×480 frame and 30% of the
/// daemon's CPU in the kernel. With the arena, the faults of 60 more frames are a few per frame.
#[test]
fn regression_onnxruntime_reuses_its_memory_from_frame_to_frame() {
    let per_frame = crate::daemon::kiosk_loop_faults_per_frame("ort");
    assert!(per_frame < 300.0, "{per_frame:.0} page faults per frame");
}
