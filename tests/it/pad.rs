//! Presentation-attack detection on real captures: the development attacks and bona fide
//! captures of `../shared/data/pad-dev` (phone and screen replays held to webcams, printed
//! photos; live people in front of the same cameras) through the shipped config: `edgeid eval`
//! and `calibrate --pad` on them, and the daemon deciding on replays of them. The captures are
//! not the project's to ship: where `../shared` is absent the tests say so and pass.

use crate::common;

use std::path::{Path, PathBuf};

use common::{root, Setup};
use edgeid::daemon::{self, Control, RunOptions};
use edgeid::decide::{Decision, Outcome};
use edgeid::journal::Journal;

/// The development captures laid out for eval (tight NUAA crops given room by
/// tools/pad_dev.py) in `dir`, or `None`, said, where `../shared` is absent.
fn pad_dev(dir: &Path) -> Option<PathBuf> {
    let src = root().join("../shared/data/pad-dev");
    if !src.is_dir() {
        eprintln!("SKIPPED: {} is absent (development data, not shipped)", src.display());
        return None;
    }
    let out = dir.join("pad-dev");
    let status = std::process::Command::new("python3")
        .arg(root().join("tools/pad_dev.py"))
        .arg(&src)
        .arg(&out)
        .status()
        .expect("python3 runs tools/pad_dev.py");
    assert!(status.success(), "tools/pad_dev.py failed");
    Some(out)
}

/// The images of a folder in natural order (`_9` before `_10`), as a camera recorded them.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    let key = |p: &PathBuf| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let split = name.find(|c: char| c.is_ascii_digit()).unwrap_or(name.len());
        let digits: String = name[split..].chars().take_while(|c| c.is_ascii_digit()).collect();
        (name[..split].to_string(), digits.len(), digits, name)
    };
    files.sort_by_key(key);
    files
}

/// How one group's decisions came out.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    granted: usize,
    /// Denied as presentation attacks (whatever else failed too).
    attack: usize,
    /// Denied as unknown, live enough.
    unknown: usize,
    /// Denied for too few usable frames (a face seen once): PAD is not judged.
    low_quality: usize,
}

impl Tally {
    fn add(&mut self, d: &Decision) {
        let has = |r: &str| d.reasons.iter().any(|x| x == r);
        match d.outcome {
            Outcome::Granted => self.granted += 1,
            Outcome::Denied if has("presentation_attack") => self.attack += 1,
            Outcome::Denied if has("low_quality") => self.low_quality += 1,
            Outcome::Denied => self.unknown += 1,
        }
    }
    /// Decisions on enough frames to judge.
    fn judged(&self) -> usize {
        self.granted + self.attack + self.unknown
    }
    fn plus(self, o: Tally) -> Tally {
        Tally {
            granted: self.granted + o.granted,
            attack: self.attack + o.attack,
            unknown: self.unknown + o.unknown,
            low_quality: self.low_quality + o.low_quality,
        }
    }
}

/// The daemon of the shipped config (default.toml, its gallery) on `frames`, one arrival per 5
/// captures (each followed by 4 empty frames, past the tracker's 3 missed frames, as a person
/// steps away): the decisions it journaled, and the time it took.
fn replay(s: &Setup, dir: &Path, name: &str, frames: &[PathBuf]) -> Vec<Decision> {
    let empty = dir.join("empty.png");
    if !empty.exists() {
        common::empty_frame(&empty);
    }
    let mut list = String::new();
    for window in frames.chunks(5) {
        for f in window {
            list.push_str(&format!("{}\n", f.display()));
        }
        list.push_str(&format!("{}\n", empty.display()).repeat(4));
    }
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, list).unwrap();
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let mut text = String::new();
    for line in cfg.lines() {
        // The replay source's list, and a journal of its own per group.
        let line = match line.split_once(" = ") {
            Some(("path", v)) if v.ends_with(".txt\"") => format!("path = {:?}", path),
            Some(("journal", _)) => format!("journal = {:?}", dir.join(format!("{name}.db"))),
            _ => line.to_string(),
        };
        text.push_str(&line);
        text.push('\n');
    }
    // Beside the set-up's own config: its gallery's path is relative to that folder.
    let config = s.config().with_file_name(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    daemon::run(&config, &RunOptions::default(), &Control::default()).unwrap();
    let journal = Journal::open_existing(&dir.join(format!("{name}.db"))).unwrap();
    journal.since(0).unwrap().into_iter().map(|e| e.decision).collect()
}

/// The shipped config's decisions on replays of the development captures: every bona fide
/// subject enrolled from their first capture, then the rest of their captures and every attack
/// replayed through the daemon, five captures an arrival. Screen replays are all denied as
/// presentation attacks; printed photos (NUAA's tight crops, without the print's edges) nearly
/// all; the subjects are granted at nearly every arrival. The figures are pinned a little
/// below those measured (docs/evaluation.md), so that a regression in the heads' crops, the
/// fusion or the track's statistic fails here.
#[test]
fn the_daemon_denies_development_attacks_and_grants_the_enrolled() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dev) = pad_dev(tmp.path()) else { return };
    let s = Setup::new("unused.txt", 0.0, false, "");
    let cfg = edgeid::config::Config::load(&s.config()).unwrap();
    let mut subjects = Vec::new();
    for entry in std::fs::read_dir(&dev).unwrap() {
        let dir = entry.unwrap().path();
        if dir.is_dir() && dir.file_name().unwrap() != "attacks" {
            subjects.push(dir);
        }
    }
    subjects.sort();
    let mut bona_fide = Tally::default();
    for dir in &subjects {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let frames = captures(dir);
        if frames.len() < 1 + cfg.tracker.min_frames {
            println!("{name}: {} captures, too few to enrol and decide on", frames.len());
            continue;
        }
        edgeid::app::enroll(&cfg, &s.gallery(), &name, &frames[..1]).unwrap();
        let mut mine = Tally::default();
        for d in replay(&s, tmp.path(), &name, &frames[1..]) {
            // Other people in the frame (a second person behind ak-subject) are not counted.
            if d.nearest.as_deref() == Some(&name) {
                mine.add(&d);
            }
        }
        println!("{name}: {} captures after the first: {mine:?}", frames.len() - 1);
        assert!(mine.judged() > 0, "{name}: no decision about the subject");
        bona_fide = bona_fide.plus(mine);
    }
    let mut attacks = Vec::new();
    for kind in ["print", "screen"] {
        let mut tally = Tally::default();
        for d in replay(&s, tmp.path(), kind, &captures(&dev.join("attacks").join(kind))) {
            tally.add(&d);
        }
        println!("attacks/{kind}: {tally:?}");
        attacks.push(tally);
    }
    println!("bona fide: {bona_fide:?}");
    let [print, screen] = [attacks[0], attacks[1]];
    // No attack granted. Every screen replay and printed photo judged is denied as an attack
    // (measured: 23 and 33); the rest were seen in one frame only (the phone moved between
    // captures half a second apart) and denied as low quality, PAD unjudged.
    assert_eq!((screen.granted, screen.unknown), (0, 0), "{screen:?}");
    assert!(screen.attack >= 20, "{screen:?}");
    assert_eq!(print.granted, 0, "{print:?}");
    assert!(print.attack >= 30 && print.unknown <= 2, "{print:?}");
    // The subjects: at least 40 arrivals judged, at least 75% granted (measured 37 of 47: 6
    // denied as attacks, 4 of NUAA's subject 0008, and 4 not recognised).
    assert!(bona_fide.judged() >= 40, "{bona_fide:?}");
    assert!(bona_fide.granted * 4 >= bona_fide.judged() * 3, "{bona_fide:?}");
    assert!(bona_fide.attack * 10 <= bona_fide.judged() * 2, "{bona_fide:?}");
}

/// `edgeid calibrate --pad --fit-fusion` on the development captures gives the shipped
/// config's fusion and threshold (so the config's numbers are the tool's, reproducibly), and
/// `edgeid eval` there reports each head and the fusion with the counts behind each rate.
#[test]
fn the_shipped_pad_settings_are_what_calibration_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dev) = pad_dev(tmp.path()) else { return };
    let shipped = edgeid::config::Config::load(&root().join("configs/default.toml")).unwrap();
    let s = Setup::new("unused.txt", 0.0, false, "");
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    // The fusion as it was before fitting: the mean of the two heads.
    let mut text = String::new();
    for line in cfg.lines() {
        if line.starts_with("fusion_bias") || line.starts_with("fusion_weights") {
            continue;
        }
        text.push_str(if line == "fusion = \"logistic\"" { "fusion = \"mean\"" } else { line });
        text.push('\n');
    }
    std::fs::write(s.config(), text).unwrap();
    let run = |args: &[&str]| {
        let o = s.spawn(args).wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let dataset = dev.display().to_string();
    let c = run(&[
        "--json",
        "calibrate",
        "--pad",
        "--fit-fusion",
        "--target-bpcer",
        "0.10",
        "--track-frames",
        "5",
        "--dataset",
        &dataset,
    ]);
    let fitted = edgeid::config::Config::load(&s.config()).unwrap();
    assert_eq!(fitted.pad.fusion, edgeid::heads::Fusion::Logistic);
    assert!((fitted.pad.threshold - shipped.pad.threshold).abs() < 2e-4, "{c}");
    assert!((fitted.pad.fusion_bias - shipped.pad.fusion_bias).abs() < 2e-4, "{c}");
    for (id, w) in &shipped.pad.fusion_weights {
        assert!((fitted.pad.fusion_weights[id] - w).abs() < 2e-4, "{id}: {c}");
    }
    let rates = &c["rates"];
    assert_eq!((rates["bona_fide"].as_u64(), rates["track_frames"].as_u64()), (Some(51), Some(5)));
    assert!(rates["at_threshold"]["bpcer"].as_f64().unwrap() <= 0.10, "{c}");
    // The config's comment says how it was set.
    let written = std::fs::read_to_string(s.config()).unwrap();
    assert!(
        written.contains("calibrated by `edgeid calibrate --pad` for BPCER at most 0.1"),
        "{written}"
    );
    assert!(written.contains("threshold = 0.6897"), "{written}");

    // eval: per head and fused, single captures, with the counts.
    let e = run(&["--json", "eval", "--dataset", &dataset]);
    let pad = &e["pad"];
    assert_eq!(pad["bona_fide"], 215);
    assert_eq!(pad["attacks"], serde_json::json!([["print", 160], ["screen", 102]]));
    let heads: Vec<&str> =
        pad["heads"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(heads, ["minifasnet-v2-2.7@31a66de3", "minifasnet-v1se-4.0@eab180bb"]);
    let apcer = |kind: &str| {
        pad["at_threshold"]["apcer"].as_array().unwrap().iter().find(|a| a[0] == kind).unwrap()[1]
            .as_f64()
            .unwrap()
    };
    // Measured at 0.6897: BPCER 13.49%, APCER print 13.12%, screen 0%; EER 11.12%.
    assert_eq!(apcer("screen"), 0.0, "{pad}");
    assert!(
        apcer("print") < 0.16 && pad["at_threshold"]["bpcer"].as_f64().unwrap() < 0.16,
        "{pad}"
    );
    assert!(pad["eer"].as_f64().unwrap() < 0.13, "{pad}");
    // Each head alone: EER 11.12% (×2.7) and 12.58% (×4.0) measured.
    for h in pad["heads"].as_array().unwrap() {
        assert!(h["eer"].as_f64().unwrap() < 0.15, "{h}");
    }
}

/// `edgeid capture` records a configured source's frames into eval's layout (bona fide under
/// the subject, attacks under their kind), refuses names that are not one path component and a
/// source the config does not have, and says when the source ended first; what it wrote is a
/// dataset `edgeid eval` measures.
#[test]
fn capture_records_into_the_eval_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("replay.txt");
    let photo = common::data("sample2.jpg").display().to_string();
    std::fs::write(&list, format!("{photo}\n").repeat(3)).unwrap();
    let s = Setup::new(&list.display().to_string(), 0.0, false, "");
    let out = tmp.path().join("captures").display().to_string();
    let capture = |label: &str, subject: &str, frames: &str| {
        s.spawn(&[
            "--json",
            "capture",
            "--source",
            "replay",
            "--label",
            label,
            "--subject",
            subject,
            "--frames",
            frames,
            "--out",
            &out,
        ])
        .wait_with_output()
        .unwrap()
    };
    for (label, folder) in
        [("bona_fide", "alice".to_string()), ("print", "attacks/print".to_string())]
    {
        let o = capture(label, "alice", "3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let files = r["files"].as_array().unwrap();
        assert_eq!(files.len(), 3, "{r}");
        for f in files {
            let f = PathBuf::from(f.as_str().unwrap());
            assert!(f.starts_with(Path::new(&out).join(&folder)), "{f:?}");
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("alice_") && name.ends_with(".jpg"), "{name}");
            let img = image::open(&f).unwrap();
            assert_eq!((img.width(), img.height()), (1280, 911), "the frame as captured");
        }
    }
    let refused = |o: std::process::Output, what: &str| {
        assert!(!o.status.success());
        let err =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(what), "{what}: {err}");
    };
    refused(capture("print", "../alice", "1"), "--subject \"../alice\" must be 1 to 64 letters");
    refused(capture("pri/nt", "alice", "1"), "--label \"pri/nt\" must be");
    refused(capture("print", "bob", "5"), "source `replay` ended after 3 of 5 frames");
    let o = s
        .spawn(&[
            "capture",
            "--source",
            "door",
            "--label",
            "print",
            "--subject",
            "a",
            "--out",
            &out,
        ])
        .wait_with_output()
        .unwrap();
    refused(o, "no [[sources]] named `door` (there are: replay)");
    // eval reads it: one identity, its 3 captures bona fide, 3 print attacks (and bob's 3,
    // written before the replay ended: nothing is lost).
    let o = s.spawn(&["--json", "eval", "--dataset", &out]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["pad"]["bona_fide"], 3, "{e}");
    assert_eq!(e["pad"]["attacks"], serde_json::json!([["print", 6]]), "{e}");
}

/// A config made before this PAD naming the heads shipped before (liveness, antispoof), with
/// the mean fusion and no early-denial keys, loads and scores every face with both, by their
/// ids; a journal record written before `live_frames` was kept reads back without them.
#[test]
fn configs_and_journals_from_before_keep_working() {
    let text = std::fs::read_to_string(root().join("configs/default.toml")).unwrap();
    let i = text.find("[pad]\n").unwrap();
    let j = text.find("[mad]\n").unwrap();
    let old_pad = "[pad]\nenabled = true\nmodels = [\"../models/liveness.toml\", \"../models/antispoof.toml\"]\nfusion = \"mean\"\nthreshold = 0.65\nallow_below_floor = false\n\n";
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("old.toml");
    let models = format!("{}/", root().join("models").display());
    let old = format!("{}{old_pad}{}", &text[..i], &text[j..]).replace("../models/", &models);
    std::fs::write(&path, old).unwrap();
    let cfg = edgeid::config::Config::load(&path).unwrap();
    let mut pipeline = edgeid::pipeline::Pipeline::load(&cfg).unwrap();
    let observed = pipeline.observe(&common::frame("sample2.jpg")).unwrap();
    assert_eq!(observed.len(), 3);
    for o in observed {
        let pad = o.pad.unwrap();
        let ids: Vec<&str> = pad.heads.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(ids, ["liveness@bf518b03", "antispoof@d7221d00"]);
        assert!((pad.live - (pad.heads[0].1 + pad.heads[1].1) / 2.0).abs() < 1e-6);
    }
    let old = r#"{"time_ms":1,"camera":"door","track_id":1,"outcome":"denied","reasons":["presentation_attack"],"identity":null,"similarity":0.2,"nearest":"a","frames_used":5,"live":0.3,"pad_threshold":0.65,"bona_fide":null,"mad_threshold":null,"tags":null}"#;
    let d: Decision = serde_json::from_str(old).unwrap();
    assert!(d.live_frames.is_empty());
    assert_eq!(d.live, Some(0.3));
}
