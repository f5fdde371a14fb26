//! The `edgeid` binary on good and bad input: every bad input ends in one clear error line
//! naming the thing and the fix, a non-zero exit, and a gallery left exactly as it was.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{data, root};

/// Runs the binary; without `--config`, on the previous default (MTCNN and MobileFace-256,
/// configs/mtcnn-mobileface.toml), whose models and figures these tests are written against.
fn edgeid(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeid"));
    if !args.contains(&"--config") {
        cmd.args(["--config", "configs/mtcnn-mobileface.toml"]);
    }
    cmd.args(args).current_dir(root()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failure with exactly one `error:` line containing every fragment.
fn assert_fails_with(o: &Output, fragments: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    // Regression: a typed error that printed its I/O cause also chained it as its source, so
    // "(os error 2)" came twice in one line.
    assert!(lines[0].matches("(os error").count() <= 1, "the cause given twice: {}", lines[0]);
    for f in fragments {
        assert!(lines[0].contains(f), "`{f}` missing from: {}", lines[0]);
    }
}

/// A temporary copy of the models and a config pointing at them, to break one piece at a time.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        for entry in std::fs::read_dir(root().join("models")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "onnx" || e == "toml" || e == "json") {
                std::fs::copy(&p, dir.path().join("models").join(p.file_name().unwrap())).unwrap();
            }
        }
        let cfg = std::fs::read_to_string(root().join("configs/mtcnn-mobileface.toml")).unwrap();
        std::fs::write(dir.path().join("config.toml"), cfg.replace("../models/", "models/"))
            .unwrap();
        Sandbox { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn config(&self) -> String {
        self.path("config.toml").display().to_string()
    }
    fn edit(&self, rel: &str, f: impl FnOnce(String) -> String) {
        let p = self.path(rel);
        std::fs::write(&p, f(std::fs::read_to_string(&p).unwrap())).unwrap();
    }
}

/// Enrols sample5's largest face as bob into gallery `g` with the sandbox's config (not
/// alice's face, which the galleries of these tests hold: that would be refused).
fn enrol_bob(sb: &Sandbox, g: &str) -> Output {
    let photo = s(&data("sample5.jpg"));
    edgeid(&["--config", &sb.config(), "enroll", "--gallery", g, "--name", "bob", &photo])
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A gallery with one enrolled person, and what `gallery list --json` says of it.
fn enrolled_gallery(dir: &Path) -> (String, String) {
    let g = s(&dir.join("gallery.db"));
    let o = edgeid(&["enroll", "--gallery", &g, "--name", "alice", &s(&data("sample2.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = edgeid(&["gallery", "list", "--gallery", &g, "--json"]);
    assert!(list.status.success());
    (g, stdout(&list))
}

fn assert_gallery_unchanged(g: &str, before: &str) {
    let list = edgeid(&["gallery", "list", "--gallery", g, "--json"]);
    assert_eq!(stdout(&list), before, "the gallery changed");
}

#[test]
fn enrol_identify_list_remove_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (g, list) = enrolled_gallery(dir.path());
    let entry: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(entry["name"], "alice");
    assert_eq!(entry["templates"], 1);

    let o = edgeid(&[
        "identify",
        "--gallery",
        &g,
        "--json",
        &s(&data("sample1.jpg")),
        &s(&data("sample3.jpg")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reports: Vec<serde_json::Value> =
        stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 2);
    let faces = reports[0]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 3);
    let named: Vec<_> = faces.iter().filter(|f| f["identity"] == "alice").collect();
    assert_eq!(named.len(), 1);
    let sim = named[0]["similarity"].as_f64().unwrap();
    assert!(sim > 0.44 && sim < 0.6, "similarity {sim}");
    assert_eq!(named[0]["box"].as_array().unwrap().len(), 4);
    assert!(named[0]["score"].as_f64().unwrap() > 0.99);
    assert!(reports[1]["faces"].as_array().unwrap().iter().all(|f| f["identity"].is_null()));

    let o = edgeid(&["gallery", "remove", "--gallery", &g, "alice"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&edgeid(&["gallery", "list", "--gallery", &g, "--json"])), "");
    let o = edgeid(&["gallery", "remove", "--gallery", &g, "alice"]);
    assert_fails_with(&o, &["no identity named `alice`", "gallery list"]);
}

#[test]
fn bad_images_fail_clearly_and_leave_the_gallery_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (g, before) = enrolled_gallery(dir.path());
    // Not alice (enrolled from sample2; sample1's largest face is her too).
    let good = s(&data("sample5.jpg"));

    let missing = s(&dir.path().join("nope.jpg"));
    let truncated = dir.path().join("truncated.jpg");
    let bytes = std::fs::read(data("sample1.jpg")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "this is not an image\n").unwrap();
    // A real photo region without a face: the lower left of sample1.
    let no_face = dir.path().join("background.png");
    image::open(data("sample1.jpg")).unwrap().crop_imm(0, 600, 250, 253).save(&no_face).unwrap();

    let cases: Vec<(String, Vec<&str>)> = vec![
        (missing.clone(), vec!["nope.jpg", "does not exist"]),
        (
            s(&truncated),
            vec!["truncated.jpg", "truncated", "give a complete JPEG, PNG, WebP or BMP"],
        ),
        (s(&text), vec!["notes.jpg", "not a known image format"]),
        (s(&no_face), vec!["background.png", "no face found", "at least 40 px"]),
    ];
    for (bad, fragments) in &cases {
        // The good image first: the bad one must still abort the whole enrolment.
        let o = edgeid(&["enroll", "--gallery", &g, "--name", "bob", &good, bad]);
        assert_fails_with(&o, fragments);
        assert_gallery_unchanged(&g, &before);
    }
    // A failed first enrolment does not create a gallery.
    let fresh = dir.path().join("fresh.db");
    let o = edgeid(&["enroll", "--gallery", &s(&fresh), "--name", "bob", &missing]);
    assert_fails_with(&o, &["does not exist"]);
    assert!(!fresh.exists());

    // identify reports the good image, names the bad one, and exits non-zero.
    let o = edgeid(&["identify", "--gallery", &g, "--json", &good, &s(&truncated)]);
    assert_fails_with(&o, &["truncated.jpg"]);
    // The good image's report, then the bad one's error (as JSON too).
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(stdout(&o).lines().nth(1).unwrap().starts_with("{\"error\":"));
    // An image with no face is not an error for identify: it has zero faces.
    let o = edgeid(&["identify", "--gallery", &g, "--json", &s(&no_face)]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("\"faces\":[]"));
}

#[test]
fn broken_models_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, before) = enrolled_gallery(tmp.path());
    let run = |sb: &Sandbox| enrol_bob(sb, &g);

    let sb = Sandbox::new();
    std::fs::remove_file(sb.path("models/mtcnn-rnet-tuned.onnx")).unwrap();
    assert_fails_with(&run(&sb), &["mtcnn-rnet-tuned.onnx", "is missing", "mtcnn-rnet-tuned.toml"]);

    let sb = Sandbox::new();
    let mut bytes = std::fs::read(sb.path("models/mobileface.onnx")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(sb.path("models/mobileface.onnx"), &bytes).unwrap();
    assert_fails_with(&run(&sb), &["mobileface.onnx", "sha256", "restore the original file"]);

    // Garbage whose hash the manifest agrees with: refused when parsed.
    let sb = Sandbox::new();
    std::fs::write(sb.path("models/mtcnn-onet-tuned.onnx"), b"not a model at all").unwrap();
    let digest = sha256_hex(b"not a model at all");
    sb.edit("models/mtcnn-onet-tuned.toml", |t| replace_sha(&t, &digest));
    assert_fails_with(&run(&sb), &["mtcnn-onet-tuned.onnx", "not a loadable ONNX model"]);

    // The R-Net file behind the O-Net manifest: shapes disagree.
    let sb = Sandbox::new();
    std::fs::copy(sb.path("models/mtcnn-rnet-tuned.onnx"), sb.path("models/mtcnn-onet-tuned.onnx"))
        .unwrap();
    let digest = sha256_hex(&std::fs::read(sb.path("models/mtcnn-onet-tuned.onnx")).unwrap());
    sb.edit("models/mtcnn-onet-tuned.toml", |t| replace_sha(&t, &digest));
    assert_fails_with(
        &run(&sb),
        &["mtcnn-onet-tuned.onnx", "does not match its manifest", "input"],
    );

    let sb = Sandbox::new();
    sb.edit("models/mobileface.toml", |t| t.replace("dim = 256", "dim = \"big\""));
    assert_fails_with(&run(&sb), &["mobileface.toml", "is not valid"]);

    // A PAD head is not dropped silently: missing, it stops start-up…
    let sb = Sandbox::new();
    std::fs::remove_file(sb.path("models/minifasnet-v2-2.7.onnx")).unwrap();
    assert_fails_with(&run(&sb), &["minifasnet-v2-2.7.onnx", "is missing"]);
    assert_gallery_unchanged(&g, &before);
    // …unless the config turns PAD (and the requirement for it) off.
    sb.edit("config.toml", |t| {
        t.replace("enabled = true", "enabled = false")
            .replace("require_live = true", "require_live = false")
    });
    let o = run(&sb);
    assert!(o.status.success(), "{}", stderr(&o));
    // Requiring liveness with PAD off is a config error, not a silent pass.
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("enabled = true", "enabled = false"));
    assert_fails_with(&run(&sb), &["policy.require_live = true needs pad.enabled = true"]);

    let list = edgeid(&["gallery", "list", "--gallery", &g, "--json"]);
    assert!(stdout(&list).contains("\"bob\""), "the PAD-off run enrolled bob");

    // The D-MAD head likewise: its weights missing, tampered with, or trained for another
    // encoder stop start-up…
    let g2 = s(&tmp.path().join("g2.db"));
    let sb = Sandbox::new();
    std::fs::remove_file(sb.path("models/dmad-baseline.json")).unwrap();
    assert_fails_with(&enrol_bob(&sb, &g2), &["dmad-baseline.json", "is missing"]);
    let sb = Sandbox::new();
    sb.edit("models/dmad-baseline.json", |t| t.replacen('1', "2", 1));
    assert_fails_with(&enrol_bob(&sb, &g2), &["dmad-baseline.json", "sha256"]);
    let sb = Sandbox::new();
    sb.edit("models/dmad-baseline.toml", |t| {
        t.replace("encoder = \"mobileface-256@80c1c6f0\"", "encoder = \"other@1\"")
    });
    assert_fails_with(
        &enrol_bob(&sb, &g2),
        &["dmad-baseline.toml", "trained for encoder `other@1`"],
    );
    // …and requiring its score without it is a config error; with MAD off, it runs.
    sb.edit("config.toml", |t| {
        t.replace("[mad]\n# Morphing-attack detection (see models/README.md). Off turns every morph check off.\nenabled = true", "[mad]\nenabled = false")
            .replace("require_bona_fide = false", "require_bona_fide = true")
    });
    assert_fails_with(&enrol_bob(&sb, &g2), &["policy.require_bona_fide = true needs mad.enabled"]);
    sb.edit("config.toml", |t| t.replace("require_bona_fide = true", "require_bona_fide = false"));
    let o = enrol_bob(&sb, &g2);
    assert!(o.status.success(), "{}", stderr(&o));

    // The object tagger: a missing model stops `edgeid tag`; tagging turned off says so.
    let sb = Sandbox::new();
    std::fs::remove_file(sb.path("models/nanodet.onnx")).unwrap();
    let photo = s(&data("sample1.jpg"));
    let o = edgeid(&["--config", &sb.config(), "tag", &photo]);
    assert_fails_with(&o, &["nanodet.onnx", "is missing"]);
    sb.edit("config.toml", |t| {
        t.replace("# What else is in the picture (`edgeid tag`, `identify --tags`). Tags never grant access.\nenabled = true", "enabled = false")
    });
    let o = edgeid(&["--config", &sb.config(), "tag", &photo]);
    assert_fails_with(&o, &["tagging is off", "tagger.enabled = false"]);
}

/// Every shipped config parses and validates (they are documentation users copy).
#[test]
fn shipped_configs_are_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("configs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            edgeid::config::Config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 2);
}

/// The PAD keys of a config and a head's manifest, wrong, are refused by name before anything
/// is enrolled: a fusion fitted for other heads (by model id), a logistic fusion without weights,
/// weights that a mean fusion would ignore, an early denial bound above the threshold, a box
/// aspect that is not one.
#[test]
fn pad_settings_are_refused_by_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, before) = enrolled_gallery(tmp.path());
    let run = |sb: &Sandbox| enrol_bob(sb, &g);
    let weights = "\"minifasnet-v2-2.7@31a66de3\" = 3.8977";

    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace(weights, "\"liveness@bf518b03\" = 3.8977"));
    assert_fails_with(
        &run(&sb),
        &[
            "pad.fusion_weights",
            "no weight for [\"minifasnet-v2-2.7@31a66de3\"]",
            "liveness@bf518b03",
            "--fit-fusion",
        ],
    );
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| {
        t.lines().filter(|l| !l.starts_with("fusion_weights")).collect::<Vec<_>>().join("\n")
    });
    assert_fails_with(&run(&sb), &["pad.fusion = \"logistic\" needs pad.fusion_weights"]);
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("fusion = \"logistic\"", "fusion = \"mean\""));
    assert_fails_with(
        &run(&sb),
        &["pad.fusion_weights are set but pad.fusion = \"mean\" ignores them"],
    );
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| {
        t.replace("threshold = 0.6957", "threshold = 0.6957\ndeny_below = 0.8")
    });
    assert_fails_with(&run(&sb), &["pad.deny_below = 0.8", "out of range", "pad.threshold"]);
    let sb = Sandbox::new();
    sb.edit("models/minifasnet-v1se-4.0.toml", |t| t.replace("box_aspect = 0.8", "box_aspect = 0"));
    assert_fails_with(
        &run(&sb),
        &["minifasnet-v1se-4.0.toml", "head.box_aspect must be a width / height"],
    );
    let sb = Sandbox::new();
    sb.edit("models/minifasnet-v1se-4.0.toml", |t| {
        t.replace("crop = \"shift\"", "crop = \"zoom\"")
    });
    assert_fails_with(&run(&sb), &["minifasnet-v1se-4.0.toml", "crop", "shift"]);
    assert_gallery_unchanged(&g, &before);
}

#[test]
fn bad_configs_are_refused_by_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, before) = enrolled_gallery(tmp.path());
    let run = |sb: &Sandbox| enrol_bob(sb, &g);

    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("[encoder]", "[encoder]\nmanifets = \"x\""));
    assert_fails_with(&run(&sb), &["config.toml", "unknown field `manifets`"]);

    // An audit set that is not there, or a retention floor out of range.
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("models/audit-set", "models/no-such-set"));
    assert_fails_with(
        &edgeid(&["--config", &sb.config(), "audit", "--no-journal"]),
        &["audit set", "no-such-set", "is not a folder", "audit.set"],
    );
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("min_retention = 0.7", "min_retention = 7"));
    assert_fails_with(&run(&sb), &["audit.min_retention = 7", "out of range"]);

    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("scale_factor = 0.709", "scale_factor = 1.5"));
    assert_fails_with(
        &run(&sb),
        &["config.toml", "detector.scale_factor = 1.5", "out of range", "0.5 to 0.9"],
    );

    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("match_threshold = 0.44", "match_threshold = 2"));
    assert_fails_with(&run(&sb), &["recognition.match_threshold = 2", "out of range"]);

    // A carried face skips the encoder: carrying any face anywhere is refused.
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("carry_iou = 0.6", "carry_iou = 0"));
    assert_fails_with(&run(&sb), &["tracker.carry_iou = 0", "out of range", "above 0"]);

    // Regression: `match_threshold = 0.0` and `pad.threshold = 0.0` were taken, and then
    // everyone was granted. Below the floors the manifests measured, they are refused unless
    // the override key says so (then they run, with a warning).
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("match_threshold = 0.44", "match_threshold = 0.0"));
    assert_fails_with(&run(&sb), &["recognition.match_threshold = 0", "above 0 and at most 1"]);
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("match_threshold = 0.44", "match_threshold = 0.3"));
    assert_fails_with(
        &run(&sb),
        &[
            "recognition.match_threshold = 0.3 is below 0.4109",
            "mobileface-256@80c1c6f0",
            "recognition.allow_below_floor = true",
        ],
    );
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| {
        t.replace("match_threshold = 0.44", "match_threshold = 0.4\nallow_below_floor = true")
    });
    let o =
        edgeid(&["--config", &sb.config(), "identify", "--gallery", &g, &s(&data("sample2.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("recognition.match_threshold = 0.4 is below 0.4109, the floor of mobileface-256@80c1c6f0; running on it because recognition.allow_below_floor = true"),
        "{}",
        stderr(&o)
    );
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("threshold = 0.6957", "threshold = 0.0"));
    assert_fails_with(&run(&sb), &["pad.threshold = 0", "above 0 and at most 1"]);
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("threshold = 0.6957", "threshold = 0.3"));
    assert_fails_with(&run(&sb), &["pad.threshold = 0.3 is below 0.5", "pad.allow_below_floor"]);

    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("min_face_px = 20", "min_face_px = \"twenty\""));
    assert_fails_with(&run(&sb), &["config.toml", "is not valid", "min_face_px"]);

    // The GPU settings: batch sizes out of order, a search cuDNN does not have.
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| format!("{t}\n[gpu]\nbatch_sizes = [4, 2]\n"));
    assert_fails_with(&run(&sb), &["gpu.batch_sizes = [4, 2]", "out of range", "ascending"]);
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| format!("{t}\n[gpu]\ncudnn_search = \"fast\"\n"));
    assert_fails_with(&run(&sb), &["config.toml", "cudnn_search", "exhaustive"]);
    // Outputs: a webhook without a usable URL, two outputs sharing a cursor name.
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| {
        format!("{t}\n[[outputs]]\nname = \"hq\"\nkind = \"webhook\"\nurl = \"hq.example\"\n")
    });
    assert_fails_with(&run(&sb), &["outputs.hq.url = \"hq.example\"", "http:// or https://"]);
    let sb = Sandbox::new();
    let bridge = "[[outputs]]\nname = \"door\"\nkind = \"exec\"\ncommand = [\"true\"]\n";
    sb.edit("config.toml", |t| format!("{t}\n{bridge}\n{bridge}"));
    assert_fails_with(&run(&sb), &["outputs.name = \"door\"", "no other output has"]);
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| format!("{t}\n[cpu]\nort_threads = 0\n"));
    assert_fails_with(&run(&sb), &["cpu.ort_threads = 0", "out of range", "1 to 256"]);

    let o = edgeid(&["--config", "/nonexistent/edgeid.toml", "gallery", "list", "--gallery", &g]);
    assert_fails_with(&o, &["/nonexistent/edgeid.toml", "--config"]);

    assert_gallery_unchanged(&g, &before);
}

#[test]
fn foreign_and_broken_galleries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, before) = enrolled_gallery(tmp.path());
    let photo = s(&data("sample2.jpg"));

    // Regression: a gallery in a folder that does not exist had the folder made silently (by
    // whoever ran the command, so the daemon's user could not write there). Refused, saying how.
    let elsewhere = tmp.path().join("no-such-folder/g.db");
    let o = edgeid(&["enroll", "--gallery", &s(&elsewhere), "--name", "bob", &photo]);
    assert_fails_with(&o, &["no-such-folder does not exist; create it first", "install -d"]);
    assert!(!tmp.path().join("no-such-folder").exists());

    // Another encoder (same file, another model id) must not enrol into this gallery.
    let sb = Sandbox::new();
    sb.edit("models/mobileface.toml", |t| {
        t.replace("id = \"mobileface-256@80c1c6f0\"", "id = \"other-encoder\"")
    });
    let o = edgeid(&["--config", &sb.config(), "enroll", "--gallery", &g, "--name", "bob", &photo]);
    assert_fails_with(&o, &["built with encoder `mobileface-256@80c1c6f0`", "`other-encoder`"]);
    assert_gallery_unchanged(&g, &before);

    let not_db = tmp.path().join("notes.db");
    std::fs::write(&not_db, "hello, this is text, not SQLite\n".repeat(100)).unwrap();
    let o = edgeid(&["enroll", "--gallery", &s(&not_db), "--name", "bob", &photo]);
    assert_fails_with(&o, &["notes.db", "is not an edgeid gallery"]);
    assert_eq!(
        std::fs::read_to_string(&not_db).unwrap(),
        "hello, this is text, not SQLite\n".repeat(100)
    );

    let o = edgeid(&["identify", "--gallery", &s(&tmp.path().join("none.db")), &photo]);
    assert_fails_with(&o, &["none.db", "does not exist", "edgeid enroll"]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn replace_sha(manifest: &str, digest: &str) -> String {
    manifest
        .lines()
        .map(|l| {
            if l.starts_with("sha256 = ") {
                format!("sha256 = \"{digest}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Regression: the trust check read each manifest at start-up, then the loaders read it again,
/// so a manifest swapped on disk in between (naming another model, with that model's sha256)
/// was the one that ran. The checked bytes are now the ones parsed.
#[test]
fn regression_a_manifest_swapped_after_the_trust_check_does_not_run() {
    let sb = Sandbox::new();
    let secret = sb.path("secret.key");
    edgeid::trust::keygen(&secret).unwrap();
    let models = sb.path("models");
    let manifests: Vec<PathBuf> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    let set = models.join("manifests.sig");
    let public = edgeid::trust::SignedSet::sign(&set, &manifests, &secret).unwrap();
    sb.edit("config.toml", |t| {
        format!("{t}\n[trust]\npublic_key = \"{public}\"\nsigned_set = \"models/manifests.sig\"\n")
    });
    let cfg = edgeid::runtime::load_config(Path::new(&sb.config())).unwrap();
    let encoder = cfg.encoder.manifest.clone();
    assert!(encoder.ends_with("mobileface.toml"), "{encoder:?}");

    // After the check, the encoder's manifest becomes MobileFaceNet-192's (a valid manifest of
    // a model whose file matches it): the pipeline still runs the signed MobileFace-256.
    let swapped = std::fs::read_to_string(models.join("mobilefacenet.toml")).unwrap();
    std::fs::write(&encoder, swapped).unwrap();
    let m = edgeid::manifest::Manifest::load(&encoder).unwrap();
    assert!(m.id.starts_with("mobileface-256@"), "{}", m.id);
    let p = edgeid::pipeline::Pipeline::load(&cfg).unwrap();
    assert_eq!(p.encoder.dim(), 256);

    // A new start checks the file again and refuses it by name.
    assert_fails_with(
        &edgeid(&["--config", &sb.config(), "gallery", "list", "--gallery", "g.db"]),
        &["mobileface.toml", "changed since it was signed"],
    );
}

/// `[trust]`: only manifests in a set signed with the configured key run. An edited manifest,
/// an altered set, another key, or a manifest left out of the set stop every command.
#[test]
fn manifests_outside_the_signed_set_are_refused() {
    let sb = Sandbox::new();
    let keys = tempfile::tempdir().unwrap();
    let keygen = |name: &str| {
        let o = edgeid(&["--json", "models", "keygen", "--secret", &s(&keys.path().join(name))]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["public_key"].as_str().unwrap().to_string()
    };
    let (public, other) = (keygen("secret.key"), keygen("other.key"));
    assert_eq!(public.len(), 64);
    let secret = s(&keys.path().join("secret.key"));
    let mut manifests: Vec<String> = std::fs::read_dir(sb.path("models"))
        .unwrap()
        .map(|e| s(&e.unwrap().path()))
        .filter(|p| p.ends_with(".toml"))
        .collect();
    manifests.sort();
    let set_path = s(&sb.path("models/manifests.sig"));
    let sign = |list: &[String]| {
        let mut args = vec!["models", "sign", "--secret", &secret, "-o", &set_path];
        args.extend(list.iter().map(String::as_str));
        let o = edgeid(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    sign(&manifests);
    let set = std::fs::read_to_string(sb.path("models/manifests.sig")).unwrap();
    assert!(
        set.contains("  mobileface.toml\n") && set.lines().last().unwrap().starts_with("ed25519 "),
        "{set}"
    );
    sb.edit("config.toml", |t| {
        format!("{t}\n[trust]\npublic_key = \"{public}\"\nsigned_set = \"models/manifests.sig\"\n")
    });
    let g = s(&sb.path("g.db"));
    let photo = s(&data("sample2.jpg"));
    let enrol =
        || edgeid(&["--config", &sb.config(), "enroll", "--gallery", &g, "--name", "bob", &photo]);
    let o = enrol();
    assert!(o.status.success(), "signed manifests run: {}", stderr(&o));

    // One byte of a manifest (a comment): refused by name, though its model file is intact.
    let original = std::fs::read_to_string(sb.path("models/mobileface.toml")).unwrap();
    sb.edit("models/mobileface.toml", |t| format!("{t}#\n"));
    assert_fails_with(
        &enrol(),
        &["mobileface.toml changed since it was signed", "sign the new one"],
    );
    std::fs::write(sb.path("models/mobileface.toml"), &original).unwrap();

    // The set edited to match: its signature no longer holds.
    let digest = set.lines().find(|l| l.ends_with("  mobileface.toml")).unwrap()[..64].to_string();
    let new_digest = sha256_hex(format!("{original}#\n").as_bytes());
    std::fs::write(sb.path("models/manifests.sig"), set.replace(&digest, &new_digest)).unwrap();
    sb.edit("models/mobileface.toml", |t| format!("{t}#\n"));
    assert_fails_with(&enrol(), &["manifests.sig does not verify with trust.public_key"]);
    std::fs::write(sb.path("models/mobileface.toml"), &original).unwrap();
    std::fs::write(sb.path("models/manifests.sig"), &set).unwrap();

    // Another public key.
    sb.edit("config.toml", |t| t.replace(&public, &other));
    assert_fails_with(&enrol(), &["does not verify"]);
    sb.edit("config.toml", |t| t.replace(&other, &public));

    // A set without the encoder's manifest.
    sign(
        &manifests.iter().filter(|m| !m.ends_with("mobileface.toml")).cloned().collect::<Vec<_>>(),
    );
    assert_fails_with(
        &enrol(),
        &["mobileface.toml is not in the signed set", "edgeid models sign"],
    );

    // A secret key others can read is not used.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = edgeid(&[
        "models",
        "sign",
        "--secret",
        &secret,
        "-o",
        &s(&sb.path("x.sig")),
        &manifests[0],
    ]);
    assert_fails_with(&o, &["other users can read it (mode 0644)"]);
}

/// `backend = "ort"` in a build without the `ort` feature: one message naming the backend and
/// the fix (tests/it/backends.rs runs the backend itself, in a build with it).
#[cfg(not(feature = "ort"))]
#[test]
fn an_onnxruntime_backend_needs_the_feature() {
    let sb = Sandbox::new();
    sb.edit("config.toml", |t| t.replace("backend = \"tract\"", "backend = \"ort-cuda\""));
    let tmp = tempfile::tempdir().unwrap();
    let o = edgeid(&[
        "--config",
        &sb.config(),
        "enroll",
        "--gallery",
        &s(&tmp.path().join("g.db")),
        "--name",
        "bob",
        &s(&data("sample2.jpg")),
    ]);
    assert_fails_with(&o, &["backend `ort-cuda` cannot run", "--features ort"]);
    assert!(!tmp.path().join("g.db").exists());
}

/// Regression: `edgeid gallery list | head -0` (a reader that closes its end) panicked with a
/// backtrace on the first line written. The command now ends quietly, as `cat` does.
#[test]
fn regression_a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = enrolled_gallery(dir.path());
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .args(["--config", "configs/mtcnn-mobileface.toml", "gallery", "list", "--gallery", &g])
        .current_dir(root())
        .stdout(writer)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?} {err}", o.status);
}

/// Regression: with `--json`, a failed image (or a failed command) was only a text line on
/// stderr, so a program reading the JSON stream could not tell which image failed or why. Now
/// each failure is also a JSON object on stdout, in order; stderr keeps its one line each.
#[test]
fn regression_json_output_carries_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, _) = enrolled_gallery(tmp.path());
    let bad = root().join("Cargo.toml");
    let o = edgeid(&["--json", "identify", "--gallery", &g, &s(&bad), &s(&data("sample2.jpg"))]);
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<serde_json::Value> =
        stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&o));
    assert_eq!(lines[0]["image"], s(&bad));
    assert!(lines[0]["error"].as_str().unwrap().contains("cannot be decoded"), "{}", lines[0]);
    assert!(lines[1]["faces"].is_array(), "{}", lines[1]);
    assert_eq!(stderr(&o).lines().filter(|l| l.starts_with("error:")).count(), 1);

    let missing = s(&tmp.path().join("none.db"));
    let o = edgeid(&["--json", "gallery", "list", "--gallery", &missing]);
    assert_eq!(o.status.code(), Some(1));
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(e["error"].as_str().unwrap().contains("does not exist"), "{e}");
}

/// Regressions: two first enrolments into a new gallery at once failed with SQLite's words
/// (`table meta already exists`, an empty file); a full disk read "is not an edgeid gallery".
/// Now the second waits for the first to create the gallery, and a full disk (a 1 MiB tmpfs,
/// where the machine lets a test mount one) is named as such, with nothing stored lost.
#[test]
fn regression_concurrent_first_enrolments_and_a_full_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let g = s(&tmp.path().join("new.db"));
    let enrol = |name: &str, photo: &str| {
        let exe = env!("CARGO_BIN_EXE_edgeid");
        let config = root().join("configs/mtcnn-mobileface.toml");
        std::process::Command::new(exe)
            .args(["--config", &s(&config), "enroll", "--gallery", &g, "--name", name])
            .arg(data(photo))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Three at once: a second that found the file the first had just made (still at schema
    // 1) refused it as a planted gallery, until every enrolment took the lock.
    let people = [("alice", "sample2.jpg"), ("bob", "sample3.jpg"), ("carol", "sample5.jpg")];
    let children: Vec<_> = people.iter().map(|(name, photo)| enrol(name, photo)).collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let list = edgeid(&["--json", "gallery", "list", "--gallery", &g]);
    assert_eq!(stdout(&list).lines().count(), 3, "{}", stdout(&list));

    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("NOT RUN: the full-disk half needs to mount a tmpfs (root); this machine refused");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&disk);
    let small = s(&disk.join("g.db"));
    let o = edgeid(&["enroll", "--gallery", &small, "--name", "alice", &s(&data("sample2.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Fill what is left.
    let filler = disk.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let o = edgeid(&["enroll", "--gallery", &small, "--name", "bob", &s(&data("sample3.jpg"))]);
    assert_fails_with(&o, &["cannot be read or written", "the disk is full", "free space"]);
    std::fs::remove_file(&filler).unwrap();
    let list = edgeid(&["gallery", "list", "--gallery", &small]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(stdout(&list).starts_with("alice"), "{}", stdout(&list));
}
