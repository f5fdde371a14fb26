//! `edgeid eval` on a dataset built from the repository's photos: each face cropped with some
//! room around it, plus everyday changes of that crop, one folder per person; a background crop
//! (a failure to acquire); morphs of three pairs. The metric arithmetic itself is checked on
//! hand-made score lists in src/eval/metrics.rs.

mod common;

use std::path::Path;

use common::{config, frame, pipeline, SAMPLES};
use edgeid::augment::Change;
use edgeid::encode::cosine;
use edgeid::eval::dataset::evaluate;
use image::imageops;

/// Builds the dataset in `dir`; returns the number of bona fide images per identity.
fn build(dir: &Path) -> Vec<usize> {
    let threshold = config().recognition.match_threshold;
    // (identity, crop) for every face; faces of two photos that match are one person.
    let mut faces: Vec<(String, Vec<f32>, image::RgbImage)> = Vec::new();
    for name in SAMPLES {
        let f = frame(name);
        let (w, h) = f.image.dimensions();
        for (i, o) in pipeline().observe(&f).unwrap().into_iter().enumerate() {
            let b = o.face.bbox;
            let (fw, fh) = (b[2] - b[0], b[3] - b[1]);
            let x0 = (b[0] - fw * 0.6).max(0.0) as u32;
            let y0 = (b[1] - fh * 0.6).max(0.0) as u32;
            let x1 = ((b[2] + fw * 0.6) as u32).min(w);
            let y1 = ((b[3] + fh * 0.6) as u32).min(h);
            let crop = imageops::crop_imm(&f.image, x0, y0, x1 - x0, y1 - y0).to_image();
            let same = faces.iter().find(|(_, e, _)| cosine(e, &o.embedding.0) >= threshold);
            let id = match same {
                Some((id, _, _)) => id.clone(),
                None => format!("{}_{i}", name.trim_end_matches(".jpg")),
            };
            faces.push((id, o.embedding.0, crop));
        }
    }
    for (k, (id, _, crop)) in faces.iter().enumerate() {
        let d = dir.join(id);
        std::fs::create_dir_all(&d).unwrap();
        crop.save(d.join(format!("{k:02}_a.png"))).unwrap();
        for (j, c) in [Change::Brightness(1.3), Change::Jpeg(35), Change::Flip].iter().enumerate() {
            c.apply(crop).save(d.join(format!("{k:02}_b{j}.png"))).unwrap();
        }
    }
    // A failure to acquire: a corner of sample1 without a face, in the first identity's folder
    // (after its first image, so the identity still enrols).
    let first = &faces[0].0;
    imageops::crop_imm(&frame("sample1.jpg").image, 0, 0, 120, 120)
        .to_image()
        .save(dir.join(first).join("zz_background.png"))
        .unwrap();
    let morphs = dir.join("morphs");
    std::fs::create_dir_all(&morphs).unwrap();
    let ids: Vec<&String> = {
        let mut v: Vec<&String> = faces.iter().map(|f| &f.0).collect();
        v.sort();
        v.dedup();
        v
    };
    for (a, b) in [(0, 1), (2, 5), (3, 7)] {
        let (pa, pb) = (dir.join(ids[a]), dir.join(ids[b]));
        let first_png = |p: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
            v.sort();
            v[0].clone()
        };
        let out = morphs.join(format!("{}+{}.png", ids[a], ids[b]));
        edgeid::app::make_morph(&config(), &first_png(&pa), &first_png(&pb), &out, 0.5).unwrap();
    }
    let mut per_id: Vec<usize> = Vec::new();
    for id in ids {
        per_id.push(faces.iter().filter(|f| &f.0 == id).count() * 4);
    }
    per_id
}

#[test]
fn eval_reports_every_rate_on_a_real_dataset() {
    // Built under target/ (not a temporary folder) so that the report names a folder a reader
    // can rebuild: target/tmp/eval-dataset.
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-dataset");
    let _ = std::fs::remove_dir_all(&data);
    let per_id = build(&data);
    let cfg = config();
    let r = evaluate(&cfg, &data, false).unwrap();
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "counts": r.counts, "verification": {
            "genuine": r.verification.genuine, "impostor": r.verification.impostor,
            "fmr": r.verification.fmr, "fnmr": r.verification.fnmr, "eer": r.verification.eer,
            "at_fmr": r.verification.at_fmr }, "identification": r.identification,
        "pad": r.pad, "morphs": r.morphs }))
    .unwrap();
    println!("{json}");

    assert_eq!(r.counts.identities, 18);
    assert_eq!(r.counts.images, 20 * 4 + 1 + 3);
    assert_eq!(r.counts.not_acquired.len(), 1, "{:?}", r.counts.not_acquired);
    assert!(r.counts.not_acquired[0].ends_with("zz_background.png"));
    assert!(r.counts.not_enrolled.is_empty());

    let n: usize = per_id.iter().sum();
    let genuine: usize = per_id.iter().map(|k| k * (k - 1) / 2).sum();
    assert_eq!(r.verification.genuine, genuine);
    assert_eq!(r.verification.impostor, n * (n - 1) / 2 - genuine);
    let v = &r.verification;
    assert_eq!(
        v.fmr,
        edgeid::eval::metrics::fmr(&v.impostor_scores, cfg.recognition.match_threshold)
    );
    assert_eq!(
        v.fnmr,
        edgeid::eval::metrics::fnmr(&v.genuine_scores, cfg.recognition.match_threshold)
    );
    assert!(v.eer < 0.1, "EER {}", v.eer);
    // 1e-2 is resolvable with these thousands of impostor pairs; 1e-4 is not.
    assert!(v.at_fmr[0].supported && !v.at_fmr[2].supported);

    let i = &r.identification;
    assert_eq!(i.enrolled, 9);
    assert_eq!(i.mated_searches + i.non_mated_searches + i.enrolled, n);

    let pad = r.pad.as_ref().unwrap();
    assert_eq!(pad.bona_fide, n);
    assert!(pad.attacks.is_empty(), "no attack images here");

    let m = r.morphs.as_ref().unwrap();
    assert_eq!(m.morphs, 3);
    assert!(m.dmad_morph_pairs > 0 && m.dmad_bona_fide_pairs > 0);

    // The command line gives the same figures, and writes the report (kept under target/ so it
    // can be read after the run: target/tmp/eval-report/report.md).
    let report_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-report");
    let _ = std::fs::remove_dir_all(&report_dir);
    let report = report_dir.join("report.md");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .args(["eval", "--json", "--dataset"])
        .arg(data.strip_prefix(common::root()).unwrap_or(&data))
        .arg("--report")
        .arg(&report)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["verification"]["genuine"], genuine);
    assert_eq!(j["verification"]["eer"].as_f64().unwrap() as f32, v.eer);

    // The report states the same numbers and draws them.
    let md = std::fs::read_to_string(&report).unwrap();
    println!("{md}");
    assert!(md.contains(&format!("Equal error rate: **{:.2}%**", 100.0 * v.eer)), "{md}");
    assert!(
        md.contains(&format!("| failure to acquire (no face found) | 1.19% (1 of {}) |", n + 4))
    );
    assert!(md.contains("| 1e-4 | ") && md.contains("no: needs at least 10000"));
    assert!(md.contains(&format!("MMPMR at {:.4}", cfg.recognition.match_threshold)));
    for chart in ["det", "scores", "pad", "dmad"] {
        assert!(md.contains(&format!("](report-{chart}.svg)")), "{chart} not linked");
        let svg = std::fs::read_to_string(report_dir.join(format!("report-{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{chart}");
    }
    // The DET curve is drawn through every point of the computed curve.
    let det_svg = std::fs::read_to_string(report_dir.join("report-det.svg")).unwrap();
    let curve = edgeid::eval::metrics::det(&v.genuine_scores, &v.impostor_scores);
    let drawn = det_svg
        .split("<polyline")
        .skip(1)
        .map(|p| p.split("points=\"").nth(1).unwrap().split('"').next().unwrap())
        .map(|pts| pts.split_whitespace().count())
        .max()
        .unwrap();
    assert_eq!(drawn, curve.len(), "DET polyline points vs computed curve");
    assert!(det_svg.contains("false non-match rate (FNMR)"));
}

/// `edgeid calibrate` writes the threshold for a target FMR into the config, keeping its
/// comments; a target the dataset cannot resolve is refused and the file left alone.
#[test]
fn calibrate_writes_the_threshold_for_a_target_fmr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    build(&data);
    let models = common::root().join("models");
    let text = std::fs::read_to_string(common::root().join("configs/default.toml"))
        .unwrap()
        .replace("../models/", &format!("{}/", models.display()));
    let cfg_path = dir.path().join("edgeid.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let run = |target: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .args([
                "--config",
                &cfg_path.display().to_string(),
                "--json",
                "calibrate",
                "--target-fmr",
                target,
                "--dataset",
            ])
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = run("1e-2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = c["point"]["threshold"].as_f64().unwrap() as f32;
    assert!(c["point"]["false_accept"].as_f64().unwrap() <= 1e-2);
    let cfg = edgeid::config::Config::load(&cfg_path).unwrap();
    assert!(
        (cfg.recognition.match_threshold - t).abs() < 1e-4,
        "{} vs {t}",
        cfg.recognition.match_threshold
    );
    let written = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(written.contains("# calibrated by `edgeid calibrate`"));
    assert!(
        written.contains("# Cosine similarity at or above which a face is the enrolled person.")
    );
    println!("calibrated at FMR <= 1e-2: threshold {t}; {}", c["point"]);

    let out = run("1e-4");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("impostor pairs cannot show an FMR of 1e-4"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg_path).unwrap(), written);
}
