//! What each model's weights allow, as data: every bundled manifest names a licence and a source,
//! `edgeid models list` prints them, the daemon warns at start about every model not known to
//! allow commercial use, configs/licence-clean.toml runs only models that do, and a manifest that
//! names no usable licence is refused by name.

use crate::common;

use std::process::Command;

use common::{data, root, Setup};

fn edgeid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeid")).args(args).current_dir(root()).output().unwrap()
}

fn listed(args: &[&str]) -> Vec<serde_json::Value> {
    let o = edgeid(args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().expect("a list").clone()
}

#[test]
fn every_bundled_manifest_names_its_licence_and_source() {
    let manifests = std::fs::read_dir(root().join("models"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    let list = listed(&["--json", "models", "list", "models"]);
    assert_eq!(list.len(), manifests, "one line per manifest");
    for m in &list {
        for key in ["id", "role", "file", "sha256", "licence", "source"] {
            assert!(m[key].as_str().is_some_and(|s| !s.is_empty()), "{key} missing: {m}");
        }
        assert_eq!(m["sha256"].as_str().unwrap().len(), 64, "{m}");
    }
    let of = |id: &str| list.iter().find(|m| m["id"].as_str().unwrap().starts_with(id)).unwrap();
    // The default encoder's weights carry no licence that allows selling them, and say why.
    let default = of("mobilefacenet-192");
    assert_eq!(default["licence"], "research-only");
    assert_eq!(default["commercial_use"], false);
    assert!(default["licence_note"].as_str().unwrap().contains("MS-Celeb"));
    assert_eq!(of("dlib-resnet29")["licence"], "LicenseRef-public-domain");
    assert_eq!(of("dlib-resnet29")["commercial_use"], true);
    assert_eq!(of("minifasnet-v2-2.7")["licence"], "Apache-2.0");

    // The text form: one line a model with its id, role, file, sha256 and licence, its source
    // on the next.
    let o = edgeid(&["models", "list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().find(|l| l.starts_with("mobilefacenet-192@")).expect("listed");
    for part in ["encoder", "mobilefacenet.onnx", "sha256 d730d00e", "research-only", "NOT known"] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
}

#[test]
fn the_licence_clean_config_runs_only_models_that_allow_selling_the_device() {
    let default = listed(&["--json", "models", "list"]);
    assert!(default.iter().any(|m| m["commercial_use"] == false), "the default is not clean");
    let clean = listed(&["--json", "--config", "configs/licence-clean.toml", "models", "list"]);
    let roles: Vec<&str> = clean.iter().map(|m| m["role"].as_str().unwrap()).collect();
    for role in ["detector", "encoder", "pad", "objects"] {
        assert!(roles.contains(&role), "no {role} in {roles:?}");
    }
    for m in &clean {
        assert_eq!(m["commercial_use"], true, "{m}");
    }
}

#[test]
fn the_daemon_warns_at_start_about_each_research_only_model() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("one.txt");
    std::fs::write(&list, format!("{}\n", data("sample2.jpg").display())).unwrap();
    let s = Setup::new(&list.display().to_string(), 0.0, false, "");
    s.enrol("alice", "sample2.jpg");
    let mut d = s.daemon(&[]);
    assert!(d.wait().success(), "{}", d.log());
    let log = d.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("may breach its terms")).collect();
    assert_eq!(warnings.len(), 1, "one model of the default is research-only: {log}");
    assert!(warnings[0].contains("mobilefacenet-192@d730d00e"), "{}", warnings[0]);
    assert!(warnings[0].contains("research-only"), "{}", warnings[0]);
    assert!(warnings[0].contains("configs/licence-clean.toml"), "{}", warnings[0]);
}

#[test]
fn a_manifest_without_a_usable_licence_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(root().join("models/nanodet.toml")).unwrap();
    std::fs::copy(root().join("models/nanodet.onnx"), tmp.path().join("nanodet.onnx")).unwrap();
    let try_licence = |line: &str| {
        let text = original
            .lines()
            .map(|l| if l.starts_with("licence = ") { line } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(tmp.path().join("nanodet.toml"), text).unwrap();
        edgeid(&["models", "list", &tmp.path().display().to_string()])
    };
    assert!(try_licence("licence = \"Apache-2.0\"").status.success());
    for (line, says) in [
        ("licence = \"free for all\"", "must be an SPDX id"),
        ("licence = \"MIT OR\"", "must be an SPDX id"),
        ("licence = \"research-only\"", "needs a `licence_note`"),
        ("licence = \"unknown\"", "needs a `licence_note`"),
    ] {
        let o = try_licence(line);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{line}: {err}");
        assert!(err.contains("nanodet.toml") && err.contains(says), "{line}: {err}");
    }
}
