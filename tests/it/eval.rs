//! `edgeid eval` on a dataset built from the repository's photos and their hand labels
//! (tests/data/labels.csv: who is who, judged by eye, never by the encoder under test): each
//! labelled face cut out with some room around it, plus everyday changes of that cut, one folder
//! per person; a background crop (a failure to acquire); an unreadable file (also one); morphs
//! of three pairs. The metric arithmetic itself is checked on hand-made score lists in
//! src/eval/metrics.rs. Also: the shipped threshold on the hand-labelled set, the default
//! models end to end, and galleries moved to them.

use crate::common;

use std::path::Path;

use common::{config, frame, labels, legacy_config};
use edgeid::augment::Change;
use edgeid::eval::dataset::evaluate;
use image::imageops;

/// Builds the dataset in `dir`; returns the number of bona fide images per identity.
fn build(dir: &Path) -> Vec<(String, usize)> {
    // (identity, crop) for every hand-labelled face.
    let mut faces: Vec<(String, image::RgbImage)> = Vec::new();
    for l in labels() {
        let f = frame(&l.photo);
        let (w, h) = f.image.dimensions();
        let b = l.bbox;
        let (fw, fh) = (b[2] - b[0], b[3] - b[1]);
        let x0 = (b[0] - fw * 0.6).max(0.0) as u32;
        let y0 = (b[1] - fh * 0.6).max(0.0) as u32;
        let x1 = ((b[2] + fw * 0.6) as u32).min(w);
        let y1 = ((b[3] + fh * 0.6) as u32).min(h);
        let crop = imageops::crop_imm(&f.image, x0, y0, x1 - x0, y1 - y0).to_image();
        faces.push((l.identity, crop));
    }
    for (k, (id, crop)) in faces.iter().enumerate() {
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
    // A file that is no image (a photo whose upload broke off): counted, not fatal.
    std::fs::write(dir.join(first).join("zz_broken.jpg"), b"\xFF\xD8\xFF\xE0 not a JPEG").unwrap();
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
    let mut per_id: Vec<(String, usize)> = Vec::new();
    for id in ids {
        per_id.push((id.clone(), faces.iter().filter(|f| &f.0 == id).count() * 4));
    }
    per_id
}

#[test]
fn eval_reports_every_rate_on_a_real_dataset() {
    // Built under target/ (not a temporary folder) so that the report names a folder a reader
    // can rebuild: target/tmp/eval-dataset.
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-dataset");
    let _ = std::fs::remove_dir_all(&data);
    let mut per_id = build(&data);
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

    assert_eq!(r.counts.identities, 20);
    assert_eq!(r.counts.images, 22 * 4 + 2 + 3);
    // Besides the background and the broken file, BlazeFace misses the profile face of sample2
    // once it is cut out of its photo (it finds it in the whole photo) with each of its
    // changes, and the mirror image of one face of sample4: measured, pinned here.
    let missed: Vec<&str> = r
        .counts
        .not_acquired
        .iter()
        .map(|p| p.strip_prefix(&format!("{}/", data.display())).unwrap_or(p))
        .collect();
    assert_eq!(
        missed,
        [
            "s1-left/zz_background.png",
            "s1-left/zz_broken.jpg",
            "s2-profile/04_a.png",
            "s2-profile/04_b0.png",
            "s2-profile/04_b1.png",
            "s2-profile/04_b2.png",
            "s4-d/12_b2.png"
        ]
    );
    for (id, k) in per_id.iter_mut() {
        match id.as_str() {
            "s2-profile" => *k = 0,
            "s4-d" => *k -= 1,
            _ => {}
        }
    }
    assert_eq!(r.counts.not_enrolled, ["s2-profile"]);

    let n: usize = per_id.iter().map(|p| p.1).sum();
    let genuine: usize = per_id.iter().map(|(_, k)| k * k.saturating_sub(1) / 2).sum();
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
    assert_eq!(i.enrolled, 10);
    assert_eq!(i.mated_searches + i.non_mated_searches + i.enrolled, n);

    let pad = r.pad.as_ref().unwrap();
    assert_eq!(pad.bona_fide, n);
    assert!(pad.attacks.is_empty(), "no attack images here");

    // The default config ships no D-MAD head (models/README.md): morphs are scored by the
    // gallery (MMPMR) only; the previous default's D-MAD head still scores them.
    let m = r.morphs.as_ref().unwrap();
    assert_eq!(m.morphs, 3);
    assert_eq!((m.dmad_morph_pairs, m.dmad_bona_fide_pairs), (0, 0));
    let legacy = evaluate(&legacy_config(), &data, false).unwrap();
    let lm = legacy.morphs.as_ref().unwrap();
    assert!(lm.dmad_morph_pairs > 0 && lm.dmad_bona_fide_pairs > 0);

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
        md.contains(&format!(
            "| failure to acquire (no face found) | {:.2}% (7 of {}) |",
            700.0 / r.counts.images as f32,
            r.counts.images
        )),
        "{md}"
    );
    assert!(md.contains("| 1e-4 | ") && md.contains("no: needs at least 10000"));
    assert!(md.contains(&format!("MMPMR at {:.4}", cfg.recognition.match_threshold)));
    assert!(!md.contains("report-dmad.svg"), "no D-MAD head, no D-MAD chart");
    for chart in ["det", "scores", "pad"] {
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
    // On this small set FMR 5e-2 sits below the encoder's measured floor: refused, unwritten,
    // until the config allows it.
    let out = run("5e-2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is not written") && err.contains("is below 0.4534"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg_path).unwrap(), text);
    // The first `allow_below_floor` is [recognition]'s.
    let allowed = text.replacen("allow_below_floor = false", "allow_below_floor = true", 1);
    let recognition =
        &allowed[allowed.find("[recognition]").unwrap()..allowed.find("[pad]").unwrap()];
    assert!(recognition.contains("allow_below_floor = true"), "{recognition}");
    std::fs::write(&cfg_path, &allowed).unwrap();
    let out = run("5e-2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = c["point"]["threshold"].as_f64().unwrap() as f32;
    assert!(c["point"]["false_accept"].as_f64().unwrap() <= 5e-2);
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
    println!("calibrated at FMR <= 5e-2: threshold {t}; {}", c["point"]);

    let out = run("1e-4");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("impostor pairs cannot show an FMR of 1e-4"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg_path).unwrap(), written);
}

/// The shipped threshold (configs/default.toml, set with `edgeid calibrate --target-fmr 1e-4` on
/// LFW photos) on the hand-labelled development set built by tools/labelled.py: one impostor
/// pair of 295 matches, the stage make-up face of sample1 against a woman of sample4 (0.579, the
/// least certain label: docs/models.md), and every genuine pair but one matches with a wide
/// margin. Both are written down in the config; the genuine miss is the same make-up face
/// against her plain photo in sample2.
#[test]
fn shipped_threshold_on_the_hand_labelled_set() {
    let cfg = config();
    let t = cfg.recognition.match_threshold;
    let r = evaluate(&cfg, &common::labelled_set(), false).unwrap();
    let v = &r.verification;
    let highest_impostor = v.impostor_scores.iter().copied().fold(f32::MIN, f32::max);
    let mut genuine = v.genuine_scores.clone();
    genuine.sort_by(f32::total_cmp);
    println!(
        "threshold {t}: {} genuine pairs {genuine:?}; {} impostor pairs, highest {highest_impostor:.4} (margin {:.4}); EER {:.4}; FNMR at FMR 1e-2 {:.3}",
        v.genuine,
        v.impostor,
        t - highest_impostor,
        v.eer,
        v.at_fmr[0].false_reject
    );
    assert_eq!((r.counts.identities, r.counts.images), (22, 26));
    assert_eq!((v.genuine, v.impostor), (5, 295));
    assert!(highest_impostor > t && highest_impostor < 0.58, "{highest_impostor}");
    assert_eq!(v.fmr, 1.0 / 295.0);
    let above: Vec<&f32> = v.impostor_scores.iter().filter(|s| **s >= t).collect();
    assert_eq!(above.len(), 1, "{above:?}");
    // The heavy make-up pair, below the threshold; the other four well above it.
    assert!(genuine[0] < t - 0.1, "{genuine:?}");
    assert!(genuine[1] >= t + 0.15, "{genuine:?}");
    assert_eq!(v.fnmr, 0.2);
}

/// Runs the binary from the repository root with `config` and `gallery`: (exit code, stdout,
/// stderr).
fn edgeid(config: &str, gallery: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .args(["--config", config])
        .args(args)
        .arg("--gallery")
        .arg(gallery)
        .current_dir(common::root())
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.code(), out.into_owned(), err.into_owned())
}

/// The default models end to end through the binary: the blonde woman enrolled from sample3
/// is named in sample1; the two others are not. Named, she is still denied there, as a
/// presentation attack: this web photo's PAD score (0.575) is below the default threshold
/// (tests/it/decisions.rs says why the bundled photos measure nothing about PAD).
#[test]
fn default_models_name_the_same_person_in_another_photo() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g.db");
    let default = "configs/default.toml";
    let (code, _, err) =
        edgeid(default, &gallery, &["enroll", "--name", "blonde", "tests/data/sample3.jpg"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = edgeid(default, &gallery, &["identify", "tests/data/sample1.jpg"]);
    assert_eq!(code, Some(0), "{err}");
    println!("{out}");
    assert_eq!(out.matches("blonde (similarity").count(), 1, "{out}");
    assert_eq!(out.matches("→ denied (presentation_attack)").count(), 1, "{out}");
    assert_eq!(out.matches("unknown (nearest").count(), 2, "{out}");

    // A gallery enrolled under the previous default (MobileFace-256) is refused by the new
    // one with one message that says what to do, and is left as it was: it still names alice
    // under the config it was made with.
    let old = dir.path().join("old.db");
    let legacy = "configs/mtcnn-mobileface.toml";
    let (code, _, err) =
        edgeid(legacy, &old, &["enroll", "--name", "alice", "tests/data/sample2.jpg"]);
    assert_eq!(code, Some(0), "{err}");
    let before = std::fs::read(&old).unwrap();
    let (code, _, err) = edgeid(default, &old, &["identify", "tests/data/sample1.jpg"]);
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for part in [
        "mobileface-256@80c1c6f0",
        "mobilefacenet-192@d730d00e",
        "edgeid gallery reencode",
        "left unchanged",
    ] {
        assert!(lines[0].contains(part), "`{part}` missing: {err}");
    }
    assert_eq!(std::fs::read(&old).unwrap(), before);
    let (_, out, _) = edgeid(legacy, &old, &["identify", "tests/data/sample1.jpg"]);
    assert!(out.contains("alice (similarity"), "{out}");
}

/// A gallery enrolled under MobileFace-256 (which keeps each enrolment's aligned crop, sealed)
/// moves to MobileFaceNet-192 with `edgeid gallery reencode` and still names the same people;
/// a gallery without crops, or with a crop that fails its seal, is refused whole and left as
/// it was.
#[test]
fn gallery_reencoded_to_the_new_encoder_names_the_same_people() {
    let dir = tempfile::tempdir().unwrap();
    let (legacy, default) = ("configs/mtcnn-mobileface.toml", "configs/default.toml");
    let g = dir.path().join("g.db");
    for (name, photo) in [("blonde", "tests/data/sample3.jpg"), ("s5", "tests/data/sample5.jpg")] {
        let (code, _, err) = edgeid(legacy, &g, &["enroll", "--name", name, photo]);
        assert_eq!(code, Some(0), "{err}");
    }
    // Under the new encoder it is refused, with the way out named.
    let (code, _, err) = edgeid(default, &g, &["identify", "tests/data/sample1.jpg"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("edgeid gallery reencode --gallery"), "{err}");

    // A copy whose second crop was altered: refused as a whole, nothing changed.
    let bad = dir.path().join("bad.db");
    std::fs::copy(&g, &bad).unwrap();
    std::fs::copy(dir.path().join("g.db.key"), dir.path().join("bad.db.key")).unwrap();
    {
        let c = rusqlite::Connection::open(&bad).unwrap();
        let mut crop: Vec<u8> =
            c.query_row("SELECT crop FROM templates WHERE id = 2", [], |r| r.get(0)).unwrap();
        crop[40] ^= 0x01;
        c.execute("UPDATE templates SET crop = ?1 WHERE id = 2", [crop]).unwrap();
    }
    let (code, _, err) = edgeid(default, &bad, &["gallery", "reencode"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a crop of `s5`") && err.contains("left unchanged"), "{err}");
    let (code, out, _) = edgeid(legacy, &bad, &["identify", "tests/data/sample1.jpg"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("blonde (similarity"), "still the old encoder's gallery: {out}");

    // The real one moves, all templates at once, and names the same person.
    let (code, out, err) = edgeid(default, &g, &["gallery", "reencode"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("2 template(s) of 2 identities re-encoded from mobileface-256@80c1c6f0 to mobilefacenet-192@d730d00e"),
        "{out}"
    );
    let (code, out, err) = edgeid(default, &g, &["identify", "tests/data/sample1.jpg"]);
    assert_eq!(code, Some(0), "{err}");
    println!("{out}");
    assert_eq!(out.matches("blonde (similarity").count(), 1, "{out}");
    assert_eq!(out.matches("→ denied (presentation_attack)").count(), 1, "as enrolled directly");
    let (code, out, _) = edgeid(default, &g, &["identify", "tests/data/sample5.jpg"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.matches("s5 (similarity").count(), 1, "{out}");
    // Again: nothing to do.
    let (_, out, _) = edgeid(default, &g, &["gallery", "reencode"]);
    assert!(out.contains("already encoded with mobilefacenet-192@d730d00e"), "{out}");

    // Enrolled without crops (gallery.keep_crops = false): refused, with what to do instead.
    let no_crops = dir.path().join("nocrops.toml");
    let text = std::fs::read_to_string(common::root().join(legacy))
        .unwrap()
        .replace("../models/", &format!("{}/", common::root().join("models").display()))
        .replace("[gallery]\n", "[gallery]\nkeep_crops = false\n");
    std::fs::write(&no_crops, text).unwrap();
    let g3 = dir.path().join("g3.db");
    let (code, _, err) = edgeid(
        no_crops.to_str().unwrap(),
        &g3,
        &["enroll", "--name", "x", "tests/data/sample3.jpg"],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = edgeid(default, &g3, &["identify", "tests/data/sample1.jpg"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("holds no face crops") && err.contains("re-enrol"), "{err}");
    assert!(err.contains("configs/mtcnn-mobileface.toml"), "{err}");
    let (code, _, err) = edgeid(default, &g3, &["gallery", "reencode"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("1 of its templates were enrolled without their face crop"), "{err}");
}

/// `eval --pairs`: LFW's protocol on a pairs file of the bundled photos' hand-labelled faces (each
/// face and three everyday changes of it, laid out as LFW's `<name>/<name>_NNNN.jpg`), 10 folds
/// of 2 matched and 2 mismatched pairs; the accuracy and the rates at the shipped threshold.
#[test]
fn lfw_pairs_protocol_on_the_bundled_photos() {
    let tmp = tempfile::tempdir().unwrap();
    let built = tmp.path().join("built");
    build(&built);
    let lfw = tmp.path().join("lfw");
    let mut ids: Vec<String> = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&built).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    for d in dirs {
        let id = d.file_name().unwrap().to_string_lossy().into_owned();
        // Not the morphs; not the profile face, which is never found once cut out.
        if id == "morphs" || id == "s2-profile" {
            continue;
        }
        let mut files: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("zz_"))
            .collect();
        files.sort();
        std::fs::create_dir_all(lfw.join(&id)).unwrap();
        for (k, f) in files.iter().enumerate() {
            let out = lfw.join(&id).join(format!("{id}_{:04}.jpg", k + 1));
            image::open(f).unwrap().to_rgb8().save(out).unwrap();
        }
        ids.push(id);
    }
    let n = ids.len();
    assert_eq!(n, 19);
    let mut text = String::from("10\t2\n");
    for k in 0..10 {
        text += &format!("{}\t1\t2\n", ids[k]);
        text += &format!("{}\t1\t{}\n", ids[(k + 10) % n], 3 + k % 2);
        text += &format!("{}\t1\t{}\t1\n", ids[k], ids[(k + 1) % n]);
        text += &format!("{}\t2\t{}\t4\n", ids[(k + 5) % n], ids[(k + 12) % n]);
    }
    let pairs = tmp.path().join("pairs.txt");
    std::fs::write(&pairs, &text).unwrap();

    let cfg = config();
    let r = edgeid::eval::pairs::evaluate(&cfg, &lfw, &pairs, false).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!((r.folds, r.matched, r.mismatched), (10, 20, 20));
    assert_eq!(r.fold_accuracy.len(), 10);
    // Every image the file names has a face found in it (measured; s4-d's fourth image, missed
    // in the folder evaluation above, is named by no pair here).
    assert!(r.not_acquired.is_empty(), "{:?}", r.not_acquired);
    let mean = r.fold_accuracy.iter().sum::<f32>() / 10.0;
    assert!((r.accuracy - mean).abs() < 1e-6);
    assert!(r.accuracy >= 0.9, "accuracy {}", r.accuracy);
    assert_eq!(r.fmr, 0.0, "no mismatched pair matches at the shipped threshold");
    assert!(r.fnmr <= 0.1, "FNMR {}", r.fnmr);

    // The command prints the same, and a pairs file naming a missing image is one clear error.
    let eval_pairs = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .args(["eval", "--dataset"])
            .arg(&lfw)
            .arg("--pairs")
            .arg(&pairs)
            .current_dir(common::root())
            .output()
            .unwrap()
    };
    let o = eval_pairs();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("20 matched and 20 mismatched pairs in 10 fold(s)"), "{out}");
    assert!(out.contains(&format!("accuracy {:.2}%", 100.0 * r.accuracy)), "{out}");
    std::fs::write(&pairs, text.replacen("\t1\t2\n", "\t1\t9\n", 1)).unwrap();
    let o = eval_pairs();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("line 2") && err.contains("_0009.jpg does not exist"), "{err}");
}
