//! Recognition on the real photos: the same face under everyday changes stays above the
//! match threshold, different people stay below it, and enrolment/identification name the
//! right face. Scores are printed (`cargo test -- --nocapture`) to keep the threshold honest.

use crate::common;

use common::{frame, legacy_config, legacy_pipeline, SAMPLES};
use edgeid::capture::Frame;
use edgeid::detect::{iou, Face};
use edgeid::encode::Embedding;
use image::{imageops, RgbImage};

/// The observation in `faces` that matches `expected` (a box in the same frame) best.
fn matching(faces: &[(Face, Embedding)], expected: &[f32; 4]) -> Option<(f32, Embedding)> {
    faces
        .iter()
        .map(|(f, e)| (iou(&f.bbox, expected), e.clone()))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(overlap, _)| *overlap >= 0.5)
}

fn observe(f: &Frame) -> Vec<(Face, Embedding)> {
    legacy_pipeline().observe(f).unwrap().into_iter().map(|o| (o.face, o.embedding)).collect()
}

fn with_image(source: &str, image: RgbImage) -> Frame {
    Frame::new(image, source)
}

fn jpeg(img: &RgbImage, quality: u8) -> RgbImage {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .encode_image(img)
        .unwrap();
    edgeid::capture::decode(&buf).unwrap()
}

fn brightness(img: &RgbImage, factor: f32) -> RgbImage {
    let mut out = img.clone();
    out.pixels_mut()
        .for_each(|p| p.0 = p.0.map(|v| (v as f32 * factor).round().clamp(0.0, 255.0) as u8));
    out
}

/// Maps a face box of the original photo into a changed copy of it.
type BoxMap = Box<dyn Fn(&[f32; 4]) -> [f32; 4]>;

/// Every face of every photo under scale, crop, brightness, JPEG and flip: its embedding must
/// stay at or above the match threshold against the original.
#[test]
fn the_same_face_under_everyday_changes_stays_above_the_threshold() {
    let threshold = legacy_config().recognition.match_threshold;
    let mut worst: Vec<(String, f32)> = Vec::new();
    let mut all = Vec::new();
    for name in SAMPLES {
        let f = frame(name);
        let originals = observe(&f);
        let (w, h) = f.image.dimensions();
        let variants: Vec<(&str, RgbImage, BoxMap)> = vec![
            (
                "scale 0.6",
                imageops::resize(&f.image, w * 3 / 5, h * 3 / 5, imageops::FilterType::Triangle),
                Box::new(|b: &[f32; 4]| b.map(|v| v * 0.6)),
            ),
            ("brightness +40%", brightness(&f.image, 1.4), Box::new(|b: &[f32; 4]| *b)),
            ("brightness -40%", brightness(&f.image, 0.6), Box::new(|b: &[f32; 4]| *b)),
            ("jpeg q30", jpeg(&f.image, 30), Box::new(|b: &[f32; 4]| *b)),
            (
                "flip",
                imageops::flip_horizontal(&f.image),
                Box::new(move |b: &[f32; 4]| [w as f32 - b[2], b[1], w as f32 - b[0], b[3]]),
            ),
        ];
        for (label, img, map_box) in &variants {
            let found = observe(&with_image(name, img.clone()));
            for (i, (face, emb)) in originals.iter().enumerate() {
                let (_, e) = matching(&found, &map_box(&face.bbox))
                    .unwrap_or_else(|| panic!("{name} face {i}: not found again after {label}"));
                let s = emb.cosine(&e);
                all.push(s);
                worst.push((format!("{name} face {i} {label}"), s));
            }
        }
        // Crop: a region of twice the face's size around each face, alone in its image.
        for (i, (face, emb)) in originals.iter().enumerate() {
            let b = face.bbox;
            let (fw, fh) = (b[2] - b[0], b[3] - b[1]);
            let x0 = (b[0] - fw * 0.5).max(0.0) as u32;
            let y0 = (b[1] - fh * 0.5).max(0.0) as u32;
            let x1 = ((b[2] + fw * 0.5) as u32).min(w);
            let y1 = ((b[3] + fh * 0.5) as u32).min(h);
            let crop = imageops::crop_imm(&f.image, x0, y0, x1 - x0, y1 - y0).to_image();
            let found = observe(&with_image(name, crop));
            let shifted = [b[0] - x0 as f32, b[1] - y0 as f32, b[2] - x0 as f32, b[3] - y0 as f32];
            let (_, e) = matching(&found, &shifted)
                .unwrap_or_else(|| panic!("{name} face {i}: not found in its crop"));
            let s = emb.cosine(&e);
            all.push(s);
            worst.push((format!("{name} face {i} crop"), s));
        }
    }
    worst.sort_by(|a, b| a.1.total_cmp(&b.1));
    all.sort_by(f32::total_cmp);
    println!(
        "genuine (augmented) pairs: {} , min {:.3}, median {:.3}, max {:.3}; lowest: {:?}",
        all.len(),
        all[0],
        all[all.len() / 2],
        all[all.len() - 1],
        &worst[..5]
    );
    assert_eq!(all.len(), 20 * 6, "every face under every change");
    for (what, s) in &worst {
        assert!(*s >= threshold, "{what}: similarity {s:.3} fell below the threshold {threshold}");
    }
}

/// Faces of different people stay below the threshold. Within one photo every face is a
/// different person; across photos, the pairs listed in `SAME_PERSON` are the same person.
#[test]
fn different_people_stay_below_the_threshold() {
    let threshold = legacy_config().recognition.match_threshold;
    let mut faces: Vec<(String, Embedding)> = Vec::new();
    for name in SAMPLES {
        for (f, e) in observe(&frame(name)) {
            let centre = ((f.bbox[0] + f.bbox[2]) / 2.0, (f.bbox[1] + f.bbox[3]) / 2.0);
            faces.push((format!("{name}@{:.0},{:.0}", centre.0, centre.1), e));
        }
    }
    assert_eq!(faces.len(), 20);
    let mut impostor = Vec::new();
    let mut genuine = Vec::new();
    for a in 0..faces.len() {
        for b in a + 1..faces.len() {
            let s = faces[a].1.cosine(&faces[b].1);
            let pair = (faces[a].0.as_str(), faces[b].0.as_str());
            if same_person(pair.0, pair.1) {
                genuine.push((pair, s));
            } else {
                impostor.push((pair, s));
            }
        }
    }
    impostor.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mean = impostor.iter().map(|p| p.1).sum::<f32>() / impostor.len() as f32;
    println!("impostor pairs: {}, mean {mean:.3}, highest {:?}", impostor.len(), &impostor[..3]);
    println!("same person across photos: {genuine:?}");
    assert_eq!(impostor.len(), 190 - SAME_PERSON.len());
    for (pair, s) in &impostor {
        assert!(
            *s < threshold,
            "{pair:?}: different people score {s:.3}, at or above the threshold {threshold}"
        );
    }
    for (pair, s) in &genuine {
        assert!(
            *s >= threshold,
            "{pair:?}: the same person scores {s:.3}, below the threshold {threshold}"
        );
    }
}

/// Faces that show the same person in two photos, judged by eye (the only two such pairs in
/// the set), given as photo and approximate face centre.
const SAME_PERSON: [(FaceAt, FaceAt); 2] = [
    (("sample1.jpg", 621.0, 360.0), ("sample2.jpg", 1031.0, 188.0)),
    (("sample1.jpg", 1052.0, 213.0), ("sample3.jpg", 781.0, 241.0)),
];

/// A face given by its photo and approximate centre.
type FaceAt = (&'static str, f32, f32);

/// Whether two face labels (`photo@x,y`) are one of the `SAME_PERSON` pairs.
fn same_person(a: &str, b: &str) -> bool {
    let near = |label: &str, (photo, x, y): (&str, f32, f32)| {
        let (p, c) = label.split_once('@').unwrap();
        let (cx, cy) = c.split_once(',').unwrap();
        p == photo
            && (cx.parse::<f32>().unwrap() - x).abs() < 20.0
            && (cy.parse::<f32>().unwrap() - y).abs() < 20.0
    };
    SAME_PERSON.iter().any(|&(m, n)| (near(a, m) && near(b, n)) || (near(a, n) && near(b, m)))
}

/// edgeid's MobileFace embeddings equal onnxruntime's on the same aligned crops (reference
/// made once with Python onnxruntime 1.32 by tools/make_fixtures.py).
#[test]
fn embeddings_match_onnxruntime() {
    #[derive(serde::Deserialize)]
    struct Parity {
        embeddings: std::collections::BTreeMap<String, Vec<f32>>,
    }
    let root = common::root().join("tests/fixtures");
    let parity: Parity = serde_json::from_str(
        &std::fs::read_to_string(root.join("mobileface_parity.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(parity.embeddings.len(), 20);
    let mut p = legacy_pipeline();
    let mut worst = 1.0f32;
    for (file, reference) in &parity.embeddings {
        let crop = image::open(root.join("crops").join(file)).unwrap().to_rgb8();
        let e = p.encoder.encode(&[&crop]).unwrap().remove(0);
        let s = edgeid::encode::cosine(&e.0, reference);
        worst = worst.min(s);
        assert!(s >= 0.9999, "{file}: cosine to onnxruntime {s}");
    }
    println!(
        "parity with onnxruntime: worst cosine {worst:.6} over {} crops",
        parity.embeddings.len()
    );
}

/// Enrolling the face of sample2 and identifying sample1 names exactly one face, the one
/// showing the same person; the others are unknown.
#[test]
fn enrol_sample2_identify_sample1_names_one_face() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("gallery.db");
    let cfg = legacy_config();
    let report =
        edgeid::app::enroll(&cfg, &gallery, "alice", &[common::data("sample2.jpg")]).unwrap();
    assert_eq!(report.templates.len(), 1);
    let mut id = edgeid::app::Identifier::new(&cfg, &gallery, None).unwrap();
    let r = id.identify(&common::data("sample1.jpg")).unwrap();
    assert_eq!(r.faces.len(), 3);
    let named: Vec<_> = r.faces.iter().filter(|f| f.identity.is_some()).collect();
    assert_eq!(named.len(), 1, "{:?}", r.faces);
    let f = named[0];
    assert_eq!(f.identity.as_deref(), Some("alice"));
    // The face of the same person in sample1, centred near (621, 360).
    let centre = ((f.face.bbox[0] + f.face.bbox[2]) / 2.0, (f.face.bbox[1] + f.face.bbox[3]) / 2.0);
    assert!((centre.0 - 621.0).abs() < 20.0 && (centre.1 - 360.0).abs() < 20.0, "{centre:?}");
    assert!(f.similarity.unwrap() >= cfg.recognition.match_threshold);
    for other in r.faces.iter().filter(|f| f.identity.is_none()) {
        assert!(other.similarity.unwrap() < cfg.recognition.match_threshold);
    }
}
