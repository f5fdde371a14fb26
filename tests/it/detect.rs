//! Detection on the real photos against the reference MTCNN implementation (Python, the code
//! the weights shipped with; fixture made by tools/make_fixtures.py).

use crate::common;

use common::{config, frame, labels, legacy_config, mtcnn, SAMPLES};
use edgeid::detect::{iou, Face, FaceDetector, Mtcnn};
use edgeid::manifest::Manifest;
use serde::Deserialize;

#[derive(Deserialize)]
struct RefFace {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
}

fn reference() -> std::collections::BTreeMap<String, Vec<RefFace>> {
    let text = std::fs::read_to_string(common::root().join("tests/fixtures/mtcnn_reference.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn detector(mirror: bool, refine: bool) -> Mtcnn {
    let cfg = legacy_config();
    let d = mtcnn(&cfg);
    let (p, r, o) = (
        Manifest::load(&d.pnet).unwrap(),
        Manifest::load(&d.rnet).unwrap(),
        Manifest::load(&d.onet).unwrap(),
    );
    let mut params = d.params();
    params.mirror_landmarks = mirror;
    params.refine_landmarks = refine;
    Mtcnn::load(cfg.backend, [&p, &r, &o], params).unwrap()
}

/// For each reference face, the detected face that overlaps it most, and that overlap.
fn pair_up<'a>(found: &'a [Face], expected: &'a [RefFace]) -> Vec<(&'a RefFace, &'a Face, f32)> {
    expected
        .iter()
        .map(|r| {
            let (f, o) = found
                .iter()
                .map(|f| (f, iou(&f.bbox, &r.bbox)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one face");
            (r, f, o)
        })
        .collect()
}

fn landmark_error(a: &[[f32; 2]; 5], b: &[[f32; 2]; 5]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1])).fold(0.0, f32::max)
}

/// The plain cascade (no landmark refinements) is the reference algorithm: the same faces,
/// boxes overlapping at IoU ≥ 0.9 and landmarks within 5% of the face's width (the two
/// differ only in how the pyramid and crops are resampled: OpenCV's INTER_AREA there).
#[test]
fn plain_cascade_finds_the_reference_faces() {
    let mut det = detector(false, false);
    let reference = reference();
    let (mut worst_iou, mut worst_lm) = (1.0f32, 0.0f32);
    for name in SAMPLES {
        let found = det.detect(&frame(name)).unwrap();
        let expected = &reference[name];
        assert_eq!(found.len(), expected.len(), "{name}: face count differs from the reference");
        for (r, f, overlap) in pair_up(&found, expected) {
            worst_iou = worst_iou.min(overlap);
            worst_lm = worst_lm.max(landmark_error(&r.landmarks, &f.landmarks) / f.width());
        }
    }
    println!("plain cascade vs reference: worst IoU {worst_iou:.3}, worst landmark error {:.1}% of the face width", worst_lm * 100.0);
    assert!(worst_iou >= 0.9, "worst IoU {worst_iou}");
    assert!(worst_lm <= 0.05, "worst landmark error {:.1}% of the face width", worst_lm * 100.0);
}

/// MTCNN with its default refinements: the faces and boxes are unchanged; landmarks move by at
/// most 10% of the face's width (they are placed from a better-centred crop).
#[test]
fn mtcnn_with_its_refinements_finds_every_face_in_every_photo() {
    let mut det = detector(true, true);
    let min_score = legacy_config().detector.min_score();
    let reference = reference();
    let mut total = 0;
    for name in SAMPLES {
        let found = det.detect(&frame(name)).unwrap();
        let expected = &reference[name];
        assert_eq!(found.len(), expected.len(), "{name}: face count");
        for (r, f, overlap) in pair_up(&found, expected) {
            assert!(overlap >= 0.9, "{name}: box {:?} vs reference {:?}", f.bbox, r.bbox);
            assert!(f.score >= min_score, "{name}: a real face scored {}", f.score);
            let err = landmark_error(&r.landmarks, &f.landmarks);
            assert!(
                err <= 0.1 * f.width(),
                "{name}: landmarks moved {err:.1} px on a {:.0} px face",
                f.width()
            );
        }
        total += found.len();
    }
    assert_eq!(total, 20);
}

/// A photo region without a face yields no face.
#[test]
fn background_has_no_face() {
    let mut det = detector(true, true);
    let f = frame("sample1.jpg");
    // The lower left of sample1 holds clothes and background, no face (checked by eye).
    let crop = image::imageops::crop_imm(&f.image, 0, 600, 250, 253).to_image();
    let faces = det.detect(&edgeid::capture::Frame::new(crop, "crop")).unwrap();
    assert!(faces.iter().all(|f| f.score < legacy_config().detector.min_score()), "{faces:?}");
}

/// The configs run the graphs models/tools/tune.py rewrote for tract; on every photo they find
/// what the graphs they were derived from find: the same faces, boxes and landmarks (to a
/// hundredth of a pixel) and scores (to 1e-5). The rewrites are exact in real arithmetic, so
/// only float rounding may differ.
#[test]
fn tuned_graphs_detect_as_their_sources() {
    let cfg = legacy_config();
    let d = mtcnn(&cfg);
    let tuned = [&d.pnet, &d.rnet, &d.onet].map(|p| Manifest::load(p).unwrap());
    let sources = tuned.clone().map(|m| {
        let source = m.derived_from.clone().expect("a tuned manifest names its source");
        let file = m.file.file_name().unwrap().to_str().unwrap().replace("-tuned", "");
        let path = common::root().join("models").join(file).with_extension("toml");
        let s = Manifest::load(&path).unwrap();
        assert_eq!(s.id, source, "{} is derived from {}", m.id, source);
        assert_ne!(s.id, m.id);
        s
    });
    let params = d.params();
    let mut a =
        Mtcnn::load(cfg.backend, [&tuned[0], &tuned[1], &tuned[2]], params.clone()).unwrap();
    let mut b = Mtcnn::load(cfg.backend, [&sources[0], &sources[1], &sources[2]], params).unwrap();
    let (mut faces, mut worst_px, mut worst_score) = (0, 0.0f32, 0.0f32);
    for name in SAMPLES {
        let f = frame(name);
        let (x, y) = (a.detect(&f).unwrap(), b.detect(&f).unwrap());
        assert_eq!(x.len(), y.len(), "{name}: face count");
        for (p, q) in x.iter().zip(&y) {
            let points = p
                .bbox
                .iter()
                .zip(&q.bbox)
                .chain(p.landmarks.iter().flatten().zip(q.landmarks.iter().flatten()));
            worst_px = points.fold(worst_px, |w, (u, v)| w.max((u - v).abs()));
            worst_score = worst_score.max((p.score - q.score).abs());
        }
        faces += x.len();
    }
    println!("tuned vs source graphs: {faces} faces, largest difference {worst_px:.2e} px, score {worst_score:.2e}");
    assert_eq!(faces, 20);
    assert!(worst_px <= 0.01, "{worst_px} px");
    assert!(worst_score <= 1e-5, "{worst_score}");
}

/// The default detector (BlazeFace full-range) on the bundled photos: every hand-labelled face
/// found (22, two of which MTCNN misses), nothing else, and every face of the MTCNN reference
/// found. BlazeFace's boxes are tighter than MTCNN's (no forehead), hence the lower IoU bar there.
#[test]
fn blazeface_finds_every_labelled_face_and_every_mtcnn_face() {
    let cfg = config();
    assert!(matches!(cfg.detector, edgeid::config::DetectorConfig::Blazeface(_)));
    let mut det = edgeid::detect::load(cfg.backend, &cfg.detector).unwrap();
    let (labels, reference) = (labels(), reference());
    let (mut found, mut worst_label, mut worst_ref) = (0, 1.0f32, 1.0f32);
    for name in SAMPLES {
        let faces: Vec<Face> = det
            .detect(&frame(name))
            .unwrap()
            .into_iter()
            .filter(|f| f.score >= cfg.detector.min_score())
            .collect();
        let mine: Vec<_> = labels.iter().filter(|l| l.photo == name).collect();
        assert_eq!(faces.len(), mine.len(), "{name}: {faces:?}");
        for l in &mine {
            let best = faces.iter().map(|f| iou(&f.bbox, &l.bbox)).fold(0.0, f32::max);
            worst_label = worst_label.min(best);
        }
        for (_, _, o) in pair_up(&faces, &reference[name]) {
            worst_ref = worst_ref.min(o);
        }
        // Every keypoint inside its face's box: the decoding maps them back to the frame.
        for f in &faces {
            for p in &f.landmarks {
                assert!(p[0] >= f.bbox[0] && p[0] <= f.bbox[2], "{name}: {f:?}");
                assert!(p[1] >= f.bbox[1] && p[1] <= f.bbox[3], "{name}: {f:?}");
            }
        }
        found += faces.len();
    }
    println!("BlazeFace: {found} faces; lowest IoU with a hand label {worst_label:.3}, with an MTCNN reference face {worst_ref:.3}");
    assert_eq!(found, 22);
    assert!(worst_label >= 0.7, "{worst_label}");
    assert!(worst_ref >= 0.4, "{worst_ref}");
}

/// Tiling adds passes over parts of the frame; the weighted NMS merges what the passes find
/// twice, so the bundled photos give the same 22 faces.
#[test]
fn blazeface_tiles_find_the_same_faces_once() {
    let mut cfg = config();
    let edgeid::config::DetectorConfig::Blazeface(b) = &mut cfg.detector else { panic!() };
    b.tiles = 2;
    let min_score = b.min_score;
    let mut det = edgeid::detect::load(cfg.backend, &cfg.detector).unwrap();
    let found: usize = SAMPLES
        .iter()
        .map(|n| det.detect(&frame(n)).unwrap().iter().filter(|f| f.score >= min_score).count())
        .sum();
    assert_eq!(found, 22);
}

/// A BlazeFace manifest that does not describe its file is refused at load, by name: anchors
/// that do not add up to the output's rows, and keypoint indices past the keypoints.
#[test]
fn blazeface_manifest_mismatches_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let models = common::root().join("models");
    std::fs::copy(
        models.join("blazeface-full-range.onnx"),
        dir.path().join("blazeface-full-range.onnx"),
    )
    .unwrap();
    let text = std::fs::read_to_string(models.join("blazeface-full-range.toml")).unwrap();
    let refuse = |edited: String| {
        let path = dir.path().join("b.toml");
        std::fs::write(&path, edited).unwrap();
        let m = Manifest::load(&path).unwrap();
        let params = edgeid::detect::BlazeFaceParams {
            score_threshold: 0.5,
            nms: 0.3,
            tiles: 0,
            tile_overlap: 0.2,
        };
        let err = match edgeid::detect::BlazeFace::load(config().backend, &m, params) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("b.toml"), "{err}");
        err
    };
    let err = refuse(text.replace("strides = [4]", "strides = [8]"));
    assert!(err.contains("outputs.boxes must be [1, 576, 16]"), "{err}");
    let err =
        refuse(text.replace("eyes_nose_mouth = [0, 1, 2, 3]", "eyes_nose_mouth = [0, 1, 2, 6]"));
    assert!(err.contains("must index the 6 keypoints"), "{err}");
    let err = refuse(text.replace("stage = \"ssd\"", "stage = \"pnet\""));
    assert!(err.contains("stage = \"ssd\""), "{err}");
}
