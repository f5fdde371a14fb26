//! Morphing attacks made from the real faces, and the two checks against them: the gallery
//! check at enrolment and the D-MAD head at verification. Every score is printed
//! (`cargo test --release --test it -- morph:: --nocapture`).
//!
//! The people: alice is the largest face of sample2 and appears again in sample1 (centred near
//! 621,360); bob is the largest face of sample3 and appears again in sample1 (near 1052,213).

use crate::common;

use std::path::Path;

use common::{data, frame, legacy_config, legacy_pipeline};
use edgeid::app::{enroll, make_morph, open_gallery, EnrollError, Identifier};
use edgeid::augment::Change;
use edgeid::decide::Outcome;

/// The morph of alice (sample2) and bob (sample3), written into `dir`.
fn alice_bob_morph(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("alice_bob.jpg");
    let r = make_morph(&legacy_config(), &data("sample2.jpg"), &data("sample3.jpg"), &out, 0.5)
        .unwrap();
    assert_eq!(r.alpha, 0.5);
    out
}

fn near(face: &edgeid::detect::Face, x: f32, y: f32) -> bool {
    let c = ((face.bbox[0] + face.bbox[2]) / 2.0, (face.bbox[1] + face.bbox[3]) / 2.0);
    (c.0 - x).abs() < 20.0 && (c.1 - y).abs() < 20.0
}

/// Regression: the check ran one way only. A morph enrolled first, then its two contributors,
/// were all accepted, so the morph's holder would pass as either. Each contributor now matches
/// the enrolled morph and is refused, naming it, and the gallery keeps only the morph.
#[test]
fn regression_contributors_after_their_morph_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g.db");
    let cfg = legacy_config();
    let morph = alice_bob_morph(dir.path());
    enroll(&cfg, &gallery, "mallory", std::slice::from_ref(&morph)).unwrap();
    for (name, photo) in [("alice", "sample2.jpg"), ("bob", "sample3.jpg")] {
        let err = enroll(&cfg, &gallery, name, &[data(photo)]).unwrap_err();
        assert!(
            matches!(err.downcast_ref::<EnrollError>(), Some(EnrollError::EnrolledAsOther { who, .. }) if who.contains("mallory")),
            "{name}: {err:#}"
        );
    }
    let names: Vec<String> =
        open_gallery(&cfg, &gallery).unwrap().list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["mallory"]);
}

/// The morph matches both contributors, so the gallery check refuses to enrol it once both are
/// enrolled, and the gallery is left as it was.
#[test]
fn a_morph_of_two_enrolled_people_is_refused_at_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g.db");
    let cfg = legacy_config();
    enroll(&cfg, &gallery, "alice", &[data("sample2.jpg")]).unwrap();
    enroll(&cfg, &gallery, "bob", &[data("sample3.jpg")]).unwrap();
    let morph = alice_bob_morph(dir.path());

    let observed =
        legacy_pipeline().observe(&edgeid::capture::load_image(&morph).unwrap()).unwrap();
    assert_eq!(observed.len(), 1, "one face on the morph");
    let g = open_gallery(&cfg, &gallery).unwrap();
    let scores = g.identities_matching(&observed[0].embedding, -1.0);
    println!(
        "morph vs contributors: {:?}",
        scores.iter().map(|m| (&m.name, m.similarity)).collect::<Vec<_>>()
    );
    assert_eq!(scores.len(), 2);
    assert!(scores.iter().all(|m| m.similarity >= cfg.recognition.match_threshold));

    let before = g.list().unwrap();
    let err = enroll(&cfg, &gallery, "mallory", std::slice::from_ref(&morph)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(matches!(err.downcast_ref::<EnrollError>(), Some(EnrollError::MorphSuspected { .. })));
    assert!(msg.contains("alice") && msg.contains("bob") && msg.contains("morph"), "{msg}");
    assert_eq!(open_gallery(&cfg, &gallery).unwrap().list().unwrap(), before);

    // With MAD off the identity check still refuses it: it already matches alice and bob.
    let mut off = cfg.clone();
    off.mad.enabled = false;
    let err = enroll(&off, &gallery, "mallory", std::slice::from_ref(&morph)).unwrap_err();
    assert!(
        matches!(err.downcast_ref::<EnrollError>(), Some(EnrollError::EnrolledAsOther { .. })),
        "{err:#}"
    );
    // Only forced is it enrolled (what the attack wants).
    edgeid::app::enroll_with(&off, &gallery, "mallory", &[morph], true).unwrap();
    assert_eq!(open_gallery(&cfg, &gallery).unwrap().len(), 3);
}

/// A morph enrolled where the gallery check cannot see it (an empty gallery) lets both
/// contributors in; requiring the D-MAD score denies both with `morph_suspected`. The live
/// faces are the contributors' own photos under an everyday change (the kind of probe the
/// baseline was trained on). Measured beside it: the same morph against the contributors'
/// faces in another photo (sample1), and the baseline's score for alice's genuine photo
/// against her face in sample1, which it rejects: the reason the default config keeps
/// `require_bona_fide` off.
#[test]
fn a_morph_reference_is_caught_by_dmad_at_verification() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = legacy_config();
    let morph = alice_bob_morph(dir.path());
    let attacked = dir.path().join("attacked.db");
    enroll(&cfg, &attacked, "alice", &[morph]).unwrap();
    let mut live = Vec::new();
    for (photo, change) in [("sample2.jpg", Change::Jpeg(35)), ("sample3.jpg", Change::Flip)] {
        let path = dir.path().join(format!("live_{photo}.png"));
        change.apply(&frame(photo).image).save(&path).unwrap();
        live.push(path);
    }
    let largest = |cfg: &edgeid::config::Config, path: &Path| {
        let faces = Identifier::new(cfg, &attacked, None).unwrap().identify(path).unwrap().faces;
        faces.into_iter().max_by(|a, b| a.face.area().total_cmp(&b.face.area())).unwrap()
    };

    let mut strict = cfg.clone();
    strict.policy.require_bona_fide = true;
    for path in &live {
        let open = largest(&cfg, path);
        println!(
            "{}: similarity to the morph {:.3}, live {:.3}, D-MAD bona fide {:.3}, {:?}",
            path.file_name().unwrap().to_string_lossy(),
            open.similarity.unwrap(),
            open.live.unwrap(),
            open.bona_fide.unwrap(),
            open.reasons
        );
        assert_eq!(open.identity.as_deref(), Some("alice"), "the morph matches the contributor");
        assert_eq!(open.decision, Outcome::Granted, "the attack works without D-MAD");
        let guarded = largest(&strict, path);
        assert!(guarded.bona_fide.unwrap() < strict.mad.threshold);
        assert_eq!(guarded.decision, Outcome::Denied);
        assert_eq!(guarded.reasons, ["morph_suspected"]);
    }

    // The contributors in another photo: recorded, and never granted under the strict policy.
    let faces = Identifier::new(&strict, &attacked, None)
        .unwrap()
        .identify(&data("sample1.jpg"))
        .unwrap()
        .faces;
    for f in faces.iter().filter(|f| near(&f.face, 621.0, 360.0) || near(&f.face, 1052.0, 213.0)) {
        println!(
            "sample1 contributor at {:?}: similarity to the morph {:.3}, D-MAD {:.3}, {:?}",
            f.face.bbox.map(|v| v.round()),
            f.similarity.unwrap(),
            f.bona_fide.unwrap(),
            f.reasons
        );
        assert_eq!(f.decision, Outcome::Denied);
    }

    // The genuine reference: alice's own photo against her face in sample1.
    let genuine = dir.path().join("genuine.db");
    enroll(&cfg, &genuine, "alice", &[data("sample2.jpg")]).unwrap();
    let faces = Identifier::new(&strict, &genuine, None)
        .unwrap()
        .identify(&data("sample1.jpg"))
        .unwrap()
        .faces;
    let alice = faces.iter().find(|f| near(&f.face, 621.0, 360.0)).unwrap();
    let b = alice.bona_fide.unwrap();
    println!(
        "genuine alice (sample2 reference, sample1 live): similarity {:.3}, D-MAD bona fide {b:.3}",
        alice.similarity.unwrap()
    );
    assert_eq!(alice.identity.as_deref(), Some("alice"));
    assert!(b < strict.mad.threshold, "the baseline's known false rejection changed: {b}");
    assert_eq!(alice.reasons, ["morph_suspected"]);
}

/// `edgeid morph` on the command line, and its bad input.
#[test]
fn morph_command_writes_a_face_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.png");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .args(args)
            .current_dir(common::root())
            .output()
            .unwrap()
    };
    let (a, b) = (data("sample2.jpg"), data("sample3.jpg"));
    let o = run(&[
        "morph",
        &a.display().to_string(),
        &b.display().to_string(),
        "-o",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (240, 300));
    assert_eq!(legacy_pipeline().detect(&frame_of(&out)).unwrap().len(), 1);

    let o = run(&["morph", &a.display().to_string(), &b.display().to_string(), "-o", "m.gif"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("name the output .jpg or .png"));
    let o = run(&[
        "morph",
        &a.display().to_string(),
        &b.display().to_string(),
        "-o",
        &out.display().to_string(),
        "--alpha",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("alpha = 2 is outside 0..1"));
}

fn frame_of(p: &Path) -> edgeid::capture::Frame {
    edgeid::capture::load_image(p).unwrap()
}

/// The same head exported as ONNX (the format a D-MAD head from elsewhere comes in) gives the
/// linear head's scores through the ONNX path, at both ends of the scale.
#[test]
fn the_onnx_dmad_head_scores_like_the_linear_one() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g.db");
    let cfg = legacy_config();
    enroll(&cfg, &gallery, "alice", &[data("sample2.jpg")]).unwrap();
    let mut onnx = cfg.clone();
    onnx.mad.dmad = Some(common::root().join("models/dmad-baseline-onnx.toml"));
    let scores = |cfg: &edgeid::config::Config, photo: &str| -> Vec<f32> {
        let mut id = Identifier::new(cfg, &gallery, None).unwrap();
        id.identify(&data(photo)).unwrap().faces.iter().map(|f| f.bona_fide.unwrap()).collect()
    };
    let mut compared = Vec::new();
    for photo in ["sample2.jpg", "sample1.jpg", "sample3.jpg"] {
        let (a, b) = (scores(&cfg, photo), scores(&onnx, photo));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{photo}: linear {x}, onnx {y}");
        }
        compared.extend(a);
    }
    println!("linear and ONNX D-MAD agree on {} faces: {compared:?}", compared.len());
    // The enrolled photo itself is bona fide; strangers are far from it.
    assert!(compared[0] > 0.99);
    assert!(compared.iter().any(|s| *s < 0.01));
}

/// S-MAD heads run on each reference at enrolment and refuse one scoring below mad.threshold.
/// No S-MAD model exists on any registry, so the antispoof crop model stands in (its manifest
/// given role `smad`): this checks the path a real S-MAD model takes, not morph detection.
#[test]
fn smad_heads_screen_references_at_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let models = common::root().join("models");
    std::fs::copy(models.join("antispoof.onnx"), dir.path().join("antispoof.onnx")).unwrap();
    let text = std::fs::read_to_string(models.join("antispoof.toml"))
        .unwrap()
        .replace("role = \"pad\"", "role = \"smad\"");
    let manifest = dir.path().join("smad.toml");
    std::fs::write(&manifest, text).unwrap();
    let mut cfg = legacy_config();
    cfg.mad.smad = vec![manifest];
    let report = enroll(&cfg, &dir.path().join("a.db"), "alice", &[data("sample2.jpg")]).unwrap();
    let smad = &report.templates[0].smad;
    assert_eq!(smad.len(), 1);
    let score = smad[0].1;
    println!("S-MAD stand-in score of sample2's face: {score:.3}");
    assert!(score >= cfg.mad.threshold);

    cfg.mad.threshold = (score + 0.01).min(1.0);
    let gallery = dir.path().join("b.db");
    let err = enroll(&cfg, &gallery, "alice", &[data("sample2.jpg")]).unwrap_err();
    assert!(matches!(err.downcast_ref::<EnrollError>(), Some(EnrollError::MorphSuspected { .. })));
    assert!(format!("{err:#}").contains("S-MAD head antispoof"), "{err:#}");
    assert!(!gallery.exists(), "a refused first enrolment creates no gallery");
}
