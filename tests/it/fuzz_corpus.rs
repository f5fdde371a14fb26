//! The fuzz corpus (fuzz/corpus/<target>/) replayed through the same entry points as the
//! cargo-fuzz targets in fuzz/fuzz_targets, on stable, so every input ever kept there (seeds,
//! and inputs that once crashed) stays handled: an answer or an error, never a panic. The
//! seeds are also checked to be what they claim (each decodes, parses, lists).

use crate::common;

use std::path::{Path, PathBuf};

use common::root;
use edgeid::capture::{decode, parse_list, MAX_SIDE};
use edgeid::config::Config;
use edgeid::manifest::Manifest;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// How many of a target's corpus files `parse` accepts (the refused ones are printed).
fn parsed<E: std::fmt::Display>(target: &str, parse: impl Fn(&str) -> Result<(), E>) -> usize {
    let mut n = 0;
    for (path, bytes) in corpus(target) {
        if let Some(t) = text(&bytes) {
            match parse(t) {
                Ok(()) => n += 1,
                Err(e) => println!("{}: {e}", path.display()),
            }
        }
    }
    n
}

#[test]
fn image_corpus() {
    let mut decoded = 0;
    for (path, bytes) in corpus("image") {
        if let Ok(image) = decode(&bytes) {
            assert!(image.width() <= MAX_SIDE && image.height() <= MAX_SIDE, "{}", path.display());
            decoded += 1;
        }
    }
    assert!(decoded >= 8, "the 8 seed images decode ({decoded})");
    // The orientation seed (EXIF 6, 24 × 16 stored) comes out upright: 16 × 24.
    let rotated =
        decode(&std::fs::read(root().join("fuzz/corpus/image/tiny-rotated.jpg")).unwrap());
    assert_eq!(rotated.map(|i| i.dimensions()), Ok((16, 24)));
}

/// A BMP header that claims 12000 × 12000 pixels (432 MB as RGB, under the image crate's own 512 MiB limit but over edgeid's side limit) is refused before anything
/// is allocated.
#[test]
fn image_limits_refuse_a_huge_header() {
    let mut bmp = std::fs::read(root().join("fuzz/corpus/image/tiny.bmp")).unwrap();
    // BITMAPINFOHEADER: width and height at bytes 18 and 22.
    bmp[18..22].copy_from_slice(&12_000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&12_000i32.to_le_bytes());
    let err = decode(&bmp).unwrap_err();
    println!("{err}");
    assert!(err.contains("over 10000 pixels a side"), "{err}");
}

#[test]
fn config_corpus() {
    let n = parsed("config", |t| Config::parse(t, Path::new("/etc/edgeid/edgeid.toml")).map(drop));
    assert!(n >= 3, "the shipped configs parse (one from before detectors had kinds)");
}

#[test]
fn manifest_corpus() {
    let n = parsed("manifest", |t| Manifest::parse(t, Path::new("models/m.toml")).map(drop));
    // The two D-MAD manifests have a format of their own (heads::mad) and are refused here.
    assert!(n >= 10, "the bundled model manifests parse");
}

#[test]
fn replay_list_corpus() {
    for (_, bytes) in corpus("replay_list") {
        if let Some(t) = text(&bytes) {
            assert!(parse_list(t, Path::new("/srv/replay")).len() <= t.lines().count());
        }
    }
    let mixed = std::fs::read_to_string(root().join("fuzz/corpus/replay_list/mixed.txt")).unwrap();
    let files = parse_list(&mixed, Path::new("/srv/replay"));
    let want = [
        "/srv/replay/sample1.jpg",
        "/srv/replay/sample2.jpg",
        "/abs/path.png",
        "/srv/replay/../up.bmp",
    ];
    assert_eq!(files, want.map(PathBuf::from));
}
