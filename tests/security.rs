//! Tampering is detected: a flipped byte in a journal record, a removed record; the journal
//! verifies through the binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{decision, root};
use edgeid::journal::Journal;

fn edgeid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .arg("--config")
        .arg(root().join("configs/default.toml"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Flips the last bit of the only occurrence of `needle` in the file.
fn flip_in_file(path: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{} occurrences of {:?}",
        hits.len(),
        String::from_utf8_lossy(needle)
    );
    bytes[hits[0] + needle.len() - 1] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn journal_chain_finds_an_edited_and_a_removed_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let path_arg = path.display().to_string();
    {
        let j = Journal::open(&path).unwrap();
        for i in 0..10i64 {
            j.append(&decision(1_700_000_000_000 + i * 60_000, 0.6, 100.0)).unwrap();
        }
        j.append_audit(1_700_000_900_000, "mobileface", false, "{}").unwrap();
        let v = j.verify().unwrap();
        assert_eq!(
            v.iter().map(|t| (t.records, t.broken.is_none())).collect::<Vec<_>>(),
            [(10, true), (1, true)]
        );
    }
    let ok = edgeid(&["journal", "--journal", &path_arg, "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("decisions: 10 record(s), chain intact"), "{text}");

    // One byte of decision 5's JSON on disk (its time, 1_700_000_240_000, ends in 1 instead of
    // 0). SQLite keeps no checksum of its own, so only the chain can tell.
    flip_in_file(&path, b"\"time_ms\":1700000240000");
    let bad = edgeid(&["journal", "--journal", &path_arg, "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    println!("{err}");
    assert!(err.contains("decisions record 5: its content does not match its hash"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        Journal::open_existing(&path).unwrap().tail(20).unwrap().len(),
        10,
        "verify only reads"
    );

    // Restored, then a record from the middle deleted: the next one's link breaks.
    flip_in_file(&path, b"\"time_ms\":1700000240001");
    let j = Journal::open_existing(&path).unwrap();
    assert!(j.verify().unwrap()[0].broken.is_none());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM decisions WHERE id = 3", []).unwrap();
    let b = j.verify().unwrap()[0].broken.clone().unwrap();
    assert_eq!(b.id, 4);
    assert!(b.reason.contains("removed"), "{}", b.reason);
}
