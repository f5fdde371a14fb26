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

#[test]
fn mjpeg_corpus() {
    use edgeid::capture::convert::mjpeg_to_rgb;
    for (_, bytes) in corpus("mjpeg") {
        let _ = mjpeg_to_rgb(&bytes);
    }
    // A frame without Huffman tables (as UVC cameras send) decodes as the full JPEG does.
    let read = |name: &str| std::fs::read(root().join("fuzz/corpus/mjpeg").join(name)).unwrap();
    let (full, stripped) = (read("tiny.jpg"), read("tiny-no-dht.jpg"));
    assert!(stripped.len() < full.len());
    let (a, b) = (mjpeg_to_rgb(&full).unwrap(), mjpeg_to_rgb(&stripped).unwrap());
    assert_eq!(a.dimensions(), (16, 16));
    assert_eq!(a, b);
}

#[test]
fn yuyv_corpus() {
    use edgeid::capture::convert::yuyv_to_rgb;
    let mut decoded = Vec::new();
    for (path, bytes) in corpus("yuyv") {
        let (w, h) = (
            u16::from_le_bytes([bytes[0], bytes[1]]) as u32,
            u16::from_le_bytes([bytes[2], bytes[3]]) as u32,
        );
        if let Ok(img) = yuyv_to_rgb(&bytes[4..], w, h) {
            assert_eq!(img.dimensions(), (w, h));
            decoded.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert_eq!(decoded, ["4x2"], "the odd width is refused");
}

#[test]
fn transfer_corpus() {
    use edgeid::gallery::key::Key;
    use edgeid::gallery::transfer::{Bundle, MAGIC};
    let dir = tempfile::tempdir().unwrap();
    let key = Key::load_or_create(&dir.path().join("transfer.key")).unwrap();
    let open = |data: &[u8]| {
        let (&mode, rest) = data.split_first().unwrap();
        let file = if mode == 0 { rest.to_vec() } else { [MAGIC, &key.seal(rest, MAGIC)].concat() };
        Bundle::from_bytes(&file, &key, Path::new("fuzz.export"))
    };
    for (_, bytes) in corpus("transfer") {
        if let Ok(b) = open(&bytes) {
            let _ = b.problem("mobilefacenet-192@d730d00e", 192);
        }
    }
    let seed = std::fs::read(root().join("fuzz/corpus/transfer/bundle.json")).unwrap();
    let bundle = open(&seed).unwrap();
    assert_eq!(bundle.problem("mobilefacenet-192@d730d00e", 2), None);
    assert!(bundle.problem("mobilefacenet-192@d730d00e", 192).unwrap().contains("(192)"));
    // JSON has no NaN, but a value past f32's range becomes infinite: refused before import.
    let huge = String::from_utf8(seed).unwrap().replace("0.8", "1e39");
    let inf = open(huge.as_bytes()).unwrap();
    assert!(inf.problem("mobilefacenet-192@d730d00e", 2).unwrap().contains("not finite"));
    assert!(open(&std::fs::read(root().join("fuzz/corpus/transfer/raw-file")).unwrap()).is_err());
}

#[test]
fn signed_set_corpus() {
    use edgeid::trust::SignedSet;
    // The key in fuzz/fuzz_targets/signed_set.rs.
    let key = "0463ad2683f642a45aa621657418d2e70f1bc9cb7ab40823f3a8329dddc90c57";
    let n = parsed("signed_set", |t| {
        SignedSet::parse(t, Path::new("/etc/edgeid/set.sig"), key).map(drop)
    });
    assert_eq!(n, 1, "the signed seed verifies, the other does not");
    let seed = std::fs::read_to_string(root().join("fuzz/corpus/signed_set/set.sig")).unwrap();
    let altered = seed.replace("liveness.toml", "liveness.tom1");
    assert!(SignedSet::parse(&altered, Path::new("/etc/edgeid/set.sig"), key).is_err());
}

#[test]
fn dmad_weights_corpus() {
    use edgeid::heads::mad::LinearWeights;
    let mut ok = 0;
    for (_, bytes) in corpus("dmad_weights") {
        if let Ok(w) = LinearWeights::parse(&bytes, 256) {
            assert!(w.weights.iter().all(|x| x.is_finite()));
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "the bundled head parses, the two-weight one is refused for 256 values");
    assert!(LinearWeights::parse(br#"{"weights":[1e39,0],"bias":0}"#, 2).is_err());
}
