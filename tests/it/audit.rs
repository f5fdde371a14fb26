//! Generalization audits on the bundled audit set (models/audit-set): the bundled encoder
//! against the NanoDet backbone, reproducibility, a damaged encoder flagged, drift of the
//! journal's scores flagged. The probe and PSI arithmetic is checked by hand in src/audit/.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{data, decision, root, Setup};
use edgeid::audit::AuditReport;
use edgeid::journal::Journal;

fn audit(setup: &Setup, args: &[&str]) -> (Output, Option<AuditReport>) {
    let out = setup.spawn(&[&["--json", "audit"], args].concat()).wait_with_output().unwrap();
    let report = serde_json::from_slice(&out.stdout).ok();
    (out, report)
}

fn table(r: &AuditReport) {
    println!(
        "audit of {} against {} ({:.1} s)",
        r.encoder.model.id, r.baseline.model.id, r.seconds
    );
    for t in &r.retention {
        println!(
            "  {:<9} encoder {:.3} ({:.3})  baseline {:.3} ({:.3})  pixels {:.3}  retention {:.3} ({:.3})",
            t.task, t.encoder, t.encoder_ncm, t.baseline, t.baseline_ncm, t.pixels, t.retention, t.retention_ncm
        );
    }
}

/// The shipped configuration: MobileFace against the NanoDet backbone's features. The figures
/// are the README's; a second audit reuses the baseline's journaled scores and gives the same
/// encoder accuracies to the last digit.
#[test]
fn the_bundled_encoder_against_the_nanodet_backbone() {
    let setup = Setup::legacy(&data("replay.txt").display().to_string(), 0.0, false, "");
    let report = setup.journal().with_file_name("audit.md");
    let report_arg = report.display().to_string();
    let (out, r) = audit(&setup, &["--report", &report_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = r.unwrap();
    table(&r);
    assert_eq!(r.images, 720);
    assert!(!r.baseline_cached);
    assert_eq!(r.baseline.model.id, "nanodet-m-backbone-512@4d6155ed");
    let by = |task: &str| r.retention.iter().find(|t| t.task == task).unwrap().clone();
    // The face encoder is the better probe on faces vs non-faces and digits, the general
    // backbone on scenes and textures: specialisation, as the papers describe.
    let (digits, faces, scenes, textures) =
        (by("digits"), by("faces"), by("scenes"), by("textures"));
    assert!((digits.encoder - 0.900).abs() < 0.03 && (digits.baseline - 0.875).abs() < 0.03);
    assert!(faces.encoder > 0.97 && faces.retention > 1.0);
    assert!((scenes.encoder - 0.775).abs() < 0.04 && scenes.baseline > 0.93);
    assert!(scenes.retention < 0.85 && textures.retention < 0.9);
    assert!(r.retention.iter().all(|t| t.retention > 0.7 && t.retention_ncm > 0.7), "no alert");
    // Every model beats the raw pixels on faces vs non-faces; pixels are a real floor.
    assert!(faces.pixels < faces.encoder && faces.pixels < faces.baseline);
    assert!(r.drift.is_none(), "an empty journal has no drift to measure");

    let (out, again) = audit(&setup, &["--report", &report_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = again.unwrap();
    assert!(again.baseline_cached);
    assert_eq!(again.encoder, r.encoder, "same model, same set: same accuracies");
    assert_eq!(again.baseline, r.baseline);

    let md = std::fs::read_to_string(&report).unwrap();
    println!("{md}");
    assert!(md.contains("| digits | 10 | 200 |"), "{md}");
    assert_eq!(
        md.matches("| `mobileface-256@80c1c6f0` | `nanodet-m-backbone-512@4d6155ed` |").count(),
        2
    );
    for chart in ["accuracy", "retention"] {
        let svg =
            std::fs::read_to_string(report.with_file_name(format!("audit-{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("digits"), "{chart}");
    }
    let journal = Journal::open_existing(&setup.journal()).unwrap();
    assert_eq!(journal.audits().unwrap().len(), 2);
}

/// Prunes 95% of every weight tensor of MobileFace (the smallest magnitudes to zero), the kind of
/// damage a broken compression step does, and writes the model and its manifest to `dir`.
fn damaged_encoder(dir: &Path) -> std::path::PathBuf {
    use prost::Message;
    use tract_onnx::pb;
    let bytes = std::fs::read(root().join("models/mobileface.onnx")).unwrap();
    let mut model = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let mut pruned = 0;
    for t in &mut graph.initializer {
        if t.data_type != pb::tensor_proto::DataType::Float as i32 {
            continue;
        }
        let mut w: Vec<f32> = if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        };
        if w.len() <= 16 {
            continue;
        }
        let mut mags: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        mags.sort_by(f32::total_cmp);
        let cut = mags[mags.len() * 95 / 100];
        w.iter_mut().filter(|v| v.abs() < cut).for_each(|v| *v = 0.0);
        if t.raw_data.is_empty() {
            t.float_data = w;
        } else {
            t.raw_data = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
        pruned += 1;
    }
    assert!(pruned > 10, "only {pruned} weight tensors found");
    let out = model.encode_to_vec();
    std::fs::write(dir.join("damaged.onnx"), &out).unwrap();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&out).iter().map(|b| format!("{b:02x}")).collect()
    };
    let manifest = std::fs::read_to_string(root().join("models/mobileface.toml")).unwrap();
    let manifest = manifest
        .replace("id = \"mobileface-256@80c1c6f0\"", "id = \"mobileface-pruned-95\"")
        .replace("file = \"mobileface.onnx\"", "file = \"damaged.onnx\"")
        .replace("80c1c6f0f6657c3c1abec80ec0f3f3e17ca2bac5559d36980852bb7c4b7eb717", &sha);
    let path = dir.join("damaged.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// The previous encoder as the baseline: against itself it keeps exactly 100%; a damaged
/// update is flagged (exit status 2, a warning, the journal's alert flag).
#[test]
fn a_damaged_encoder_is_flagged_by_the_retention_alert() {
    let setup = Setup::legacy(&data("replay.txt").display().to_string(), 0.0, false, "");
    let previous = root().join("models/mobileface.toml").display().to_string();
    let (out, same) = audit(&setup, &["--baseline", &previous]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let same = same.unwrap();
    assert!(same.retention.iter().all(|t| t.retention == 1.0 && t.retention_ncm == 1.0));
    assert!(!same.alert);

    let dir = tempfile::tempdir().unwrap();
    let damaged = damaged_encoder(dir.path()).display().to_string();
    let (out, r) = audit(&setup, &["--baseline", &previous, "--encoder", &damaged]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let r = r.unwrap();
    table(&r);
    assert!(r.alert && r.baseline_cached);
    let digits = r.retention.iter().find(|t| t.task == "digits").unwrap();
    assert!(digits.alert && digits.retention < 0.65, "{digits:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("below audit.min_retention 0.7"), "{stderr}");
    let journal = Journal::open_existing(&setup.journal()).unwrap();
    let audits = journal.audits().unwrap();
    assert_eq!(audits.len(), 2);
    let last: AuditReport = serde_json::from_str(&audits[1]).unwrap();
    assert_eq!(last.encoder.model.id, "mobileface-pruned-95");
    assert!(last.alert);
}

/// Decisions journaled at a door whose camera was moved back after the first 40: faces shrink
/// from about 120 to about 60 pixels, match scores stay. The audit flags face size only.
#[test]
fn drift_of_the_journal_is_measured_and_flagged() {
    let setup = Setup::legacy(&data("replay.txt").display().to_string(), 0.0, false, "");
    let text = std::fs::read_to_string(setup.config()).unwrap();
    std::fs::write(setup.config(), text.replace("drift_window = 200", "drift_window = 20"))
        .unwrap();
    {
        let journal = Journal::open(&setup.journal()).unwrap();
        for i in 0..80i64 {
            let px = if i < 40 { 120.0 } else { 60.0 } + (i % 9) as f32;
            let sim = 0.55 + (i % 10) as f32 * 0.02;
            journal.append(&decision(1_700_000_000_000 + i * 60_000, sim, px)).unwrap();
        }
    }
    let report = setup.journal().with_file_name("drift.md");
    let (out, r) =
        audit(&setup, &["--baseline", "pixels", "--report", &report.display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let d = r.unwrap().drift.unwrap();
    let psi = |m: &str| d.metrics.iter().find(|x| x.metric == m).unwrap().psi;
    println!("PSI: face_px {:.2}, similarity {:.3}", psi("face_px"), psi("similarity"));
    assert!(d.alert && psi("face_px") > 1.0);
    assert!(psi("similarity") < 0.1);
    assert_eq!(d.history.len(), 3, "windows 2, 3 and 4 against the first");
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| face_px |") && md.contains("**alert**"), "{md}");
    assert!(report.with_file_name("drift-drift.svg").exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`face_px` drifted"));
}

/// Zero-shot: a prototype bank built from other photos (faces and background of the bundled
/// group photos, `edgeid prototypes build`, labels named as the task's classes) scores the
/// faces task without fitting anything on the audit set; tasks without prototypes get none.
#[test]
fn zero_shot_with_a_prototype_bank() {
    let setup = Setup::legacy(&data("replay.txt").display().to_string(), 0.0, false, "");
    let dir = tempfile::tempdir().unwrap();
    let (faces, background) = (dir.path().join("face"), dir.path().join("non-face"));
    std::fs::create_dir_all(&faces).unwrap();
    std::fs::create_dir_all(&background).unwrap();
    let names =
        ["sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg"];
    let n = common::face_and_background_crops(&names, &faces, &background);
    let bank = dir.path().join("bank.json");
    let out = setup
        .spawn(&[
            "prototypes",
            "build",
            &dir.path().display().to_string(),
            "-o",
            &bank.display().to_string(),
        ])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(setup.config()).unwrap();
    let text = text.replace(
        "shots = 10\n",
        &format!("shots = 10\nprototypes = {:?}\n", bank.display().to_string()),
    );
    std::fs::write(setup.config(), text).unwrap();
    let (out, r) = audit(&setup, &["--baseline", "pixels"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = r.unwrap();
    let zero: Vec<(String, Option<f32>)> =
        r.encoder.tasks.iter().map(|t| (t.task.clone(), t.zero_shot)).collect();
    println!("zero-shot from {n:?} face/background crops: {zero:?}");
    let faces_task = r.encoder.tasks.iter().find(|t| t.task == "faces").unwrap();
    // Colour crops of group photos transfer poorly to LFW's 25×25 grey patches: above chance
    // (0.5 over 180 test images) but far below the 10-shot probe's 0.994. Recorded, not tuned.
    let z = faces_task.zero_shot.unwrap();
    assert!((z - 0.594).abs() < 0.05 && z > 0.55, "{zero:?}");
    assert!(r.encoder.tasks.iter().filter(|t| t.task != "faces").all(|t| t.zero_shot.is_none()));
    assert!(r.baseline.tasks.iter().all(|t| t.zero_shot.is_none()), "the bank is the encoder's");
}
