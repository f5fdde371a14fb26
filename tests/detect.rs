//! Detection on the real photos against the reference MTCNN implementation (Python, the code
//! the weights shipped with; fixture made by tools/make_fixtures.py).

mod common;

use common::{config, frame, SAMPLES};
use edgeid::detect::{iou, Face, Mtcnn};
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
    let cfg = config();
    let d = &cfg.detector;
    let (p, r, o) = (
        Manifest::load(&d.pnet).unwrap(),
        Manifest::load(&d.rnet).unwrap(),
        Manifest::load(&d.onet).unwrap(),
    );
    let mut params = cfg.mtcnn_params();
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

/// With the default refinements the faces and boxes are unchanged; landmarks move by at
/// most 10% of the face's width (they are placed from a better-centred crop).
#[test]
fn default_detector_finds_every_face_in_every_photo() {
    let mut det = detector(true, true);
    let min_score = config().detector.min_score;
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
    assert!(faces.iter().all(|f| f.score < config().detector.min_score), "{faces:?}");
}
