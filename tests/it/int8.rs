//! The int8 encoder (models/mobileface-int8.toml, built by models/tools/quantize.py) against
//! the fp32 one it was quantized from, on tract: embeddings of real aligned face crops stay
//! within cosine 0.99, and identification of the sample photos names the same people.

use crate::common;

use common::{data, legacy_config, root, SAMPLES};
use edgeid::config::Config;
use edgeid::encode::{cosine, Encoder};
use edgeid::infer::BackendKind;
use edgeid::manifest::{Manifest, Precision};

fn encoder(name: &str) -> Encoder {
    let manifest = Manifest::load(&root().join("models").join(name)).unwrap();
    Encoder::load(BackendKind::Tract, &manifest).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn int8_embeddings_stay_within_cosine_0_99_of_fp32() {
    let mut fp32 = encoder("mobileface.toml");
    let mut int8 = encoder("mobileface-int8.toml");
    let manifest = |name: &str| Manifest::load(&root().join("models").join(name)).unwrap();
    assert_eq!(manifest("mobileface.toml").precision, Precision::Fp32);
    assert_eq!(manifest("mobileface-int8.toml").precision, Precision::Int8);
    assert_ne!(fp32.model_id(), int8.model_id(), "int8 embeddings must not meet fp32 ones");
    let crops = root().join("tests/fixtures/crops");
    let mut files: Vec<_> =
        std::fs::read_dir(&crops).unwrap().map(|e| e.unwrap().file_name()).collect();
    files.sort();
    assert_eq!(files.len(), 20);
    let mut scores = Vec::new();
    for f in &files {
        let crop = image::open(crops.join(f)).unwrap().to_rgb8();
        let a = fp32.encode(&[&crop]).unwrap().remove(0);
        let b = int8.encode(&[&crop]).unwrap().remove(0);
        let s = cosine(&a.0, &b.0);
        // Samples 1-3 were left out of the calibration: they must hold as well as the others.
        assert!(s >= 0.99, "{f:?}: cosine int8 to fp32 {s}");
        scores.push(s);
    }
    scores.sort_by(f32::total_cmp);
    println!("int8 vs fp32 on 20 crops: lowest cosine {:.4}, median {:.4}", scores[0], scores[10]);
}

/// Enrols the largest face of each sample photo, then identifies every face of every photo:
/// the int8 encoder must name the same faces as the fp32 one.
fn identities(cfg: &Config) -> Vec<(Option<String>, Option<String>, f32)> {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("gallery.db");
    for (i, name) in SAMPLES.iter().enumerate() {
        // Forced: the largest faces of sample1 and sample2 are one person, enrolled under two
        // names here on purpose (the test compares how each encoder names faces).
        let person = format!("person{}", i + 1);
        edgeid::app::enroll_with(cfg, &gallery, &person, &[data(name)], true).unwrap();
    }
    let mut id = edgeid::app::Identifier::new(cfg, &gallery, None).unwrap();
    let mut out = Vec::new();
    for name in SAMPLES {
        for f in id.identify(&data(name)).unwrap().faces {
            out.push((f.identity, f.nearest, f.similarity.unwrap()));
        }
    }
    out
}

#[test]
fn int8_names_the_same_faces_as_fp32() {
    let mut fp32 = legacy_config();
    // The D-MAD head reads fp32 MobileFace embeddings only; leave it out of both runs.
    fp32.mad.enabled = false;
    let mut int8 = fp32.clone();
    int8.encoder.manifest = root().join("models/mobileface-int8.toml");
    let a = identities(&fp32);
    let b = identities(&int8);
    assert_eq!(a.len(), 20);
    assert_eq!(b.len(), a.len());
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(&b) {
        // The identity, not the nearest impostor: among unknown faces the nearest one is
        // noise (impostor scores 0.18 and 0.19 swap places).
        assert_eq!(x.0, y.0, "fp32 {x:?} vs int8 {y:?}");
        if x.0.is_some() {
            assert_eq!(x.1, y.1);
        }
        worst = worst.max((x.2 - y.2).abs());
    }
    let named = a.iter().filter(|x| x.0.is_some()).count();
    // Each enrolled face finds itself, and a face of sample1 is the person enrolled from
    // sample3 (similarity 0.464).
    assert_eq!(named, 7, "{a:?}");
    assert!(worst < 0.05, "a similarity moved by {worst}");
    println!(
        "int8 vs fp32: the same {named} of 20 faces named; largest similarity change {worst:.4}"
    );
}
