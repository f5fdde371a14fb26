//! Tampering is detected and fails closed: a flipped byte in a journal record or a removed
//! record (`edgeid journal verify`); a flipped byte in a sealed template, a template moved to
//! another name, a wrong or missing key, and key or gallery files others can read.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{data, decision, root};
use edgeid::journal::Journal;

fn edgeid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .arg("--config")
        .arg(root().join("configs/mtcnn-mobileface.toml"))
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
    // Regression: `--json verify` wrote one object per line; it is one array, a table each.
    let json = edgeid(&["--json", "journal", "--journal", &path_arg, "verify"]);
    let tables: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(tables[0]["table"], "decisions");
    assert_eq!(tables[0]["records"], 10);
    assert_eq!(tables[1]["records"], 1);
    assert!(tables[0]["broken"].is_null() && tables.as_array().unwrap().len() == 2, "{tables}");

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

    // A column added by a later version (NULL in the records before it) leaves their links
    // valid; a value nulled out does not.
    let fresh = dir.path().join("fresh.db");
    let j = Journal::open(&fresh).unwrap();
    j.append(&decision(1_700_000_000_000, 0.6, 100.0)).unwrap();
    let conn = rusqlite::Connection::open(&fresh).unwrap();
    conn.execute("ALTER TABLE decisions ADD COLUMN note TEXT", []).unwrap();
    assert!(j.verify().unwrap()[0].broken.is_none());
    conn.execute("UPDATE decisions SET identity = NULL", []).unwrap();
    assert!(j.verify().unwrap()[0].broken.as_ref().unwrap().reason.contains("edited"));
}

/// alice enrolled from sample2 into a new gallery in `dir`; the gallery and key paths.
fn alice_gallery(dir: &Path) -> (String, std::path::PathBuf) {
    let g = dir.join("gallery.db");
    let o = edgeid(&["enroll", "--gallery", &s(&g), "--name", "alice", &s(&data("sample2.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    (s(&g), dir.join("gallery.db.key"))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Identities named in `identify --json` on sample1 (alice is one of its three faces).
fn identified(g: &str) -> Output {
    edgeid(&["identify", "--gallery", g, "--json", &s(&data("sample1.jpg"))])
}

fn names(o: &Output) -> Vec<String> {
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    r["faces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["identity"].as_str())
        .map(String::from)
        .collect()
}

fn assert_refused(o: &Output, fragment: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let err = stderr(o);
    println!("{err}");
    assert!(err.contains(fragment), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Nothing identified: with --json, stdout holds only the error, as JSON.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().all(|l| l.starts_with("{\"error\":")), "nothing identified: {out}");
}

#[test]
fn gallery_templates_are_sealed_and_tampering_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (g, key) = alice_gallery(dir.path());
    assert_eq!((mode(Path::new(&g)), mode(&key)), (0o600, 0o600));
    let ok = identified(&g);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(names(&ok), ["alice"]);

    // The template on disk is nonce + sealed 256 floats + tag, and no float of it is in clear.
    let conn = rusqlite::Connection::open(&g).unwrap();
    let blob: Vec<u8> = conn.query_row("SELECT vector FROM templates", [], |r| r.get(0)).unwrap();
    drop(conn);
    assert_eq!(blob.len(), 12 + 256 * 4 + 16);

    // A flipped byte of the sealed template, in the file itself.
    let mut file = std::fs::read(&g).unwrap();
    let at = file.windows(32).position(|w| w == &blob[100..132]).expect("the template in the file");
    file[at + 7] ^= 0x01;
    let saved = std::fs::read(&g).unwrap();
    std::fs::write(&g, &file).unwrap();
    assert_refused(&identified(&g), "a template of `alice` fails its authentication check");
    std::fs::write(&g, &saved).unwrap();
    assert_eq!(names(&identified(&g)), ["alice"]);

    // The template moved to another name: bound to alice, it does not open as bob's.
    let conn = rusqlite::Connection::open(&g).unwrap();
    conn.execute("UPDATE identities SET name = 'bob'", []).unwrap();
    drop(conn);
    assert_refused(&identified(&g), "a template of `bob` fails its authentication check");
    let conn = rusqlite::Connection::open(&g).unwrap();
    conn.execute("UPDATE identities SET name = 'alice'", []).unwrap();
    drop(conn);

    // Another key (another gallery's, 0600): nothing opens, nobody is identified or let in.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = alice_gallery(other.path());
    let real_key = std::fs::read(&key).unwrap();
    std::fs::copy(&other_key, &key).unwrap();
    assert_refused(&identified(&g), "was not sealed with key");
    let setup = common::Setup::legacy(&s(&data("replay.txt")), 0.0, false, "");
    std::fs::copy(&g, setup.gallery()).unwrap();
    std::fs::copy(&key, setup.gallery().with_extension("db.key")).unwrap();
    let run = setup.spawn(&["run"]).wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("was not sealed with key"), "{}", stderr(&run));
    assert!(
        !setup.journal().exists()
            || Journal::open_existing(&setup.journal()).unwrap().count().unwrap() == 0
    );

    // The right key, readable by others: refused until chmod 600; the gallery too.
    std::fs::write(&key, &real_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_refused(&identified(&g), "can be read by other users (mode 0644)");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o604)).unwrap();
    assert_refused(&identified(&g), "other users can access it (mode 0604)");
    std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&key).unwrap();
    assert_refused(&identified(&g), "gallery.db.key does not exist");
    std::fs::write(&key, &real_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(names(&identified(&g)), ["alice"], "nothing stored was lost");
}

#[test]
fn gallery_export_moves_identities_under_a_transfer_key() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (g, _) = alice_gallery(a.path());
    let similarity = |o: &Output| {
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let faces = r["faces"].as_array().unwrap().clone();
        faces
            .into_iter()
            .find_map(|f| f["similarity"].as_f64().filter(|_| f["identity"] == "alice"))
    };
    let before = similarity(&identified(&g)).unwrap();
    let (export, transfer) = (a.path().join("alice.export"), a.path().join("transfer.key"));
    let o =
        edgeid(&["gallery", "export", "--gallery", &g, "--key", &s(&transfer), "-o", &s(&export)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!((mode(&export), mode(&transfer)), (0o600, 0o600));
    let bytes = std::fs::read(&export).unwrap();
    assert!(!bytes.windows(5).any(|w| w == b"alice"), "names are sealed too");
    // Never over an existing file.
    let o =
        edgeid(&["gallery", "export", "--gallery", &g, "--key", &s(&transfer), "-o", &s(&export)]);
    assert_refused(&o, "an export is never overwritten");
    assert_eq!(std::fs::read(&export).unwrap(), bytes);

    // Into a new gallery on "another device" (its own key): alice matches with the same score.
    let g2 = s(&b.path().join("gallery.db"));
    let import = |key: &Path, file: &Path| {
        edgeid(&["gallery", "import", "--gallery", &g2, "--key", &s(key), &s(file)])
    };
    let o = import(&transfer, &export);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported 1 identities (1 templates)"));
    assert_ne!(
        std::fs::read(b.path().join("gallery.db.key")).unwrap(),
        std::fs::read(a.path().join("gallery.db.key")).unwrap()
    );
    assert_eq!(similarity(&identified(&g2)), Some(before));
    let list = |g: &str| edgeid(&["gallery", "list", "--gallery", g, "--json"]).stdout;
    let listed = list(&g2);

    // Refused as a whole, the gallery unchanged: alice again; a flipped byte; another key.
    assert_refused(&import(&transfer, &export), "already has [\"alice\"]");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 40;
    flipped[last] ^= 0x20;
    let bad = b.path().join("flipped.export");
    std::fs::write(&bad, &flipped).unwrap();
    assert_refused(&import(&transfer, &bad), "does not open with key");
    assert_refused(&import(&a.path().join("gallery.db.key"), &export), "does not open with key");
    assert_refused(&import(&transfer, &data("sample1.jpg")), "is not an edgeid gallery export");
    assert_eq!(list(&g2), listed);
}

/// Regression: a gallery whose schema was set back to 1 had its plain templates sealed on the
/// next open, so anyone who could write the file could plant a template. Now a gallery of
/// plain templates (written before templates were sealed) is refused until `edgeid gallery
/// seal` seals it in place, under a new key; it then identifies the same person. A sealed
/// gallery set back to schema 1 with a planted template is refused by both.
#[test]
fn regression_a_plain_gallery_is_sealed_only_by_command() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = alice_gallery(dir.path());
    let (export, transfer) = (dir.path().join("x"), dir.path().join("t.key"));
    assert!(edgeid(&[
        "gallery",
        "export",
        "--gallery",
        &g,
        "--key",
        &s(&transfer),
        "-o",
        &s(&export)
    ])
    .status
    .success());
    let bundle = edgeid::gallery::Bundle::read(&export, &transfer).unwrap();
    let plain: Vec<u8> =
        bundle.identities[0].templates[0].vector.iter().flat_map(|x| x.to_le_bytes()).collect();

    let old = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE identities (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
         CREATE TABLE templates (id INTEGER PRIMARY KEY,
             identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
             model_id TEXT NOT NULL, vector BLOB NOT NULL, source TEXT NOT NULL, created_at INTEGER NOT NULL);
         INSERT INTO identities VALUES (1, 'alice', 1700000000);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO meta VALUES ('schema', '1'), ('model_id', ?1), ('dim', '256')",
        [&bundle.model_id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO templates VALUES (1, 1, ?1, ?2, 'sample2.jpg', 1700000000)",
        rusqlite::params![bundle.model_id, plain],
    )
    .unwrap();
    drop(conn);
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();

    let before = std::fs::read(&old).unwrap();
    assert_refused(&identified(&s(&old)), "holds plain, unsealed templates (schema 1)");
    assert!(std::fs::read(&old).unwrap() == before, "nothing written");
    assert!(!dir.path().join("old.db.key").exists());
    let sealed = edgeid(&["gallery", "seal", "--gallery", &s(&old)]);
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    assert!(String::from_utf8_lossy(&sealed.stdout).contains("1 plain template(s) sealed"));
    assert_eq!(names(&identified(&s(&old))), ["alice"]);
    assert_eq!(mode(&dir.path().join("old.db.key")), 0o600);
    let conn = rusqlite::Connection::open(&old).unwrap();
    let (schema, blob): (String, Vec<u8>) = conn
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'schema'), vector FROM templates",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((schema.as_str(), blob.len()), ("2", 12 + 1024 + 16));
    drop(conn);
    let file = std::fs::read(&old).unwrap();
    assert!(!file.windows(16).any(|w| w == &plain[..16]), "no plain template left in the file");

    // The attack: the sealed gallery set back to schema 1, with mallory's plain template.
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(
        "UPDATE meta SET value = '1' WHERE key = 'schema';
         INSERT INTO identities VALUES (2, 'mallory', 1700000000);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO templates (identity_id, model_id, vector, source, created_at) VALUES (2, ?1, ?2, 'x.jpg', 1700000000)",
        rusqlite::params![bundle.model_id, plain],
    )
    .unwrap();
    drop(conn);
    assert_refused(&identified(&s(&old)), "set back to schema 1 by someone who could write");
    let o = edgeid(&["gallery", "seal", "--gallery", &s(&old)]);
    // Refused before any template is read: the key records that it sealed this gallery.
    assert_refused(&o, "has sealed it before");

    // #37, 3 (regression): the same with alice's sealed template taken out, so that only the
    // planted plain one remains: `gallery seal`, as the error suggests, sealed it under the
    // gallery's own key and mallory was granted as herself. The key now records that it sealed
    // this gallery, so a gallery set back is refused by `gallery seal` too, and nothing changes.
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch("DELETE FROM templates WHERE identity_id = 1;").unwrap();
    drop(conn);
    let key_text = std::fs::read_to_string(dir.path().join("old.db.key")).unwrap();
    assert!(key_text.lines().nth(1) == Some("sealed"), "the key records the sealing: {key_text}");
    let before = std::fs::read(&old).unwrap();
    let o = edgeid(&["gallery", "seal", "--gallery", &s(&old)]);
    assert_refused(&o, "has sealed it before");
    assert!(std::fs::read(&old).unwrap() == before, "nothing sealed");
    assert_refused(&identified(&s(&old)), "set back to schema 1 by someone who could write");
}

/// Regression: a 0-byte gallery was taken for a new, empty one (and a new key made), so a
/// lost gallery let nobody in without saying why, and enrolling into it hid the loss.
#[test]
fn regression_an_empty_gallery_file_is_refused_not_taken_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.db");
    std::fs::write(&g, b"").unwrap();
    assert_refused(&identified(&s(&g)), "the file is empty (0 bytes)");
    let o = edgeid(&["enroll", "--gallery", &s(&g), "--name", "bob", &s(&data("sample2.jpg"))]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("restore the gallery from a backup"), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&g).unwrap().len(), 0, "left as it was");
    assert!(!dir.path().join("gallery.db.key").exists(), "no new key made");
}

/// Regression: a NaN in a template sorted above every score in the 1:N search (`total_cmp`)
/// and became everyone's nearest identity. Non-finite templates are refused before storing.
#[test]
fn regression_a_non_finite_template_is_refused_and_nothing_stored() {
    use edgeid::encode::Embedding;
    use edgeid::gallery::{Gallery, GalleryOptions, Template};
    let dir = tempfile::tempdir().unwrap();
    let (g, key) = (dir.path().join("g.db"), dir.path().join("g.key"));
    let mut gallery = Gallery::open(
        &g,
        &GalleryOptions { key: key.clone(), encoder: "enc@1".into(), dim: 4, create: true },
    )
    .unwrap();
    let good = Template {
        embedding: Embedding(vec![0.5, 0.5, 0.5, 0.5]),
        source: "a.jpg".into(),
        crop: None,
    };
    let nan = Template { embedding: Embedding(vec![f32::NAN, 0.0, 0.0, 1.0]), ..good.clone() };
    let err = gallery.enroll_templates("eve", &[good.clone(), nan]).unwrap_err().to_string();
    assert!(err.contains("non-finite value") && err.contains("nothing was enrolled"), "{err}");
    assert_eq!(gallery.len(), 0);
    gallery.enroll_templates("ann", &[good]).unwrap();
    let probe = Embedding(vec![0.5, 0.5, 0.5, 0.5]);
    let m = gallery.best_match(&probe).unwrap();
    assert_eq!(m.name, "ann");
    assert!((m.similarity - 1.0).abs() < 1e-6);
}

/// Regression: a name with a newline or a terminal escape was enrolled as given, and then
/// forged lines in the log and in `journal tail`. Refused, with the name shown escaped, and
/// nothing stored.
#[test]
fn regression_names_that_forge_log_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.db");
    let photo = s(&data("sample2.jpg"));
    for bad in ["eve\n2026-12-01 granted alice", "\u{1b}[2Jeve"] {
        let o = edgeid(&["enroll", "--gallery", &s(&g), "--name", bad, &photo]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("is not valid") && err.contains("control"), "{err}");
        assert_eq!(err.lines().count(), 1, "the message itself is one line: {err}");
    }
    assert!(!g.exists(), "no gallery created");
}

/// Regression: the journal and the `identify --crops` folder and files were created with the
/// umask's modes (0644/0755): anyone on the device could read who came when, and their faces.
#[test]
fn regression_the_journal_and_face_crops_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = alice_gallery(dir.path());
    let crops = dir.path().join("crops/sub");
    let o = edgeid(&["identify", "--gallery", &g, "--crops", &s(&crops), &s(&data("sample1.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&crops), 0o700);
    let files: Vec<_> = std::fs::read_dir(&crops).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|f| mode(f) == 0o600), "{files:?}");
    let j = dir.path().join("journal/j.db");
    Journal::open(&j).unwrap();
    assert_eq!(mode(&j), 0o600);
}

/// Regression: `journal verify` opened the journal for writing and chained any table found
/// without chain columns, so dropping those columns after editing a record made `verify`
/// seal the edit and report the chain intact. Verifying now only reads.
#[test]
fn regression_verify_does_not_rechain_a_journal_whose_chain_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let j = Journal::open(&path).unwrap();
        for i in 0..3i64 {
            j.append(&decision(1_700_000_000_000 + i * 60_000, 0.6, 100.0)).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE decisions SET identity = 'mallory' WHERE id = 2;
         ALTER TABLE decisions DROP COLUMN hash; ALTER TABLE decisions DROP COLUMN prev_hash;",
    )
    .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let o = edgeid(&["journal", "--journal", &s(&path), "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no chain columns"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&path).unwrap(), before, "verify wrote nothing");
    let columns: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM pragma_table_info('decisions') WHERE name = 'hash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 0);
}

/// Regressions: the daemon appended to a journal that failed `journal verify`, and removing
/// the newest records left no trace (the next decision took a removed one's id). The journal
/// keeps its chain head: `verify` names the cut, nothing appends to it (no id is reused), and
/// the daemon refuses to start on it, leaving the file as it was for the operator.
#[test]
fn regression_a_journal_cut_at_the_end_is_reported_and_never_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let j = Journal::open(&path).unwrap();
        for i in 0..5i64 {
            j.append(&decision(1_700_000_000_000 + i * 60_000, 0.6, 100.0)).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM decisions WHERE id > 3", []).unwrap();
    drop(conn);
    let o = edgeid(&["journal", "--journal", &s(&path), "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("decisions record 4: the journal wrote records up to id 5 but its last is 3: records 4..=5 were removed from the end"),
        "{}",
        stderr(&o)
    );
    let e = Journal::open(&path)
        .and_then(|j| j.append(&decision(1_700_000_900_000, 0.6, 100.0)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fails verification") && e.contains("move the file aside"), "{e}");
    assert_eq!(Journal::open_existing(&path).unwrap().count().unwrap(), 3, "id 4 not reused");

    let setup = common::Setup::new(&data("replay.txt").display().to_string(), 0.0, false, "");
    std::fs::copy(&path, setup.journal()).unwrap();
    let anchor = edgeid::journal::anchor::path_for;
    std::fs::copy(anchor(&path), anchor(&setup.journal())).unwrap();
    let before = std::fs::read(setup.journal()).unwrap();
    let run = setup.spawn(&["run", "--max-frames", "2"]).wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("fails verification: decisions record 4")
            && err.contains("records 4..=5 were removed"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
    assert_eq!(std::fs::read(setup.journal()).unwrap(), before, "the journal is left as it was");

    // A journal that keeps chain heads, with its chain columns dropped: opening it for writing
    // (the daemon) refuses it instead of chaining the table again as it stands.
    let fresh = dir.path().join("fresh.db");
    {
        let j = Journal::open(&fresh).unwrap();
        j.append(&decision(1_700_000_000_000, 0.6, 100.0)).unwrap();
    }
    rusqlite::Connection::open(&fresh)
        .unwrap()
        .execute_batch(
            "ALTER TABLE decisions DROP COLUMN hash; ALTER TABLE decisions DROP COLUMN prev_hash;",
        )
        .unwrap();
    let e = Journal::open(&fresh).err().expect("refused").to_string();
    assert!(e.contains("no chain columns"), "{e}");
}

/// Regression: one person could be enrolled under a second name, and another person added to
/// an existing name, silently ("enrolled with 1 template(s)"): either way a name let in a face
/// it should not. Both are refused, naming who matched, unless `--force`.
#[test]
fn regression_a_face_is_enrolled_under_one_name_and_a_name_holds_one_face() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = alice_gallery(dir.path());
    let list = || edgeid(&["gallery", "list", "--gallery", &g, "--json"]).stdout;
    let before = list();
    let enrol = |name: &str, photos: &[&str], force: bool| {
        let mut args = vec!["enroll", "--gallery", &g, "--name", name];
        if force {
            args.push("--force");
        }
        let photos: Vec<String> = photos.iter().map(|p| s(&data(p))).collect();
        args.extend(photos.iter().map(String::as_str));
        edgeid(&args)
    };
    // alice's face (sample1's largest) under another name.
    let o = enrol("bob", &["sample1.jpg"], false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("already enrolled as `alice`"), "{}", stderr(&o));
    // Someone else (sample5's largest face) under alice's name.
    let o = enrol("alice", &["sample5.jpg"], false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not match `alice` as enrolled"), "{}", stderr(&o));
    // Two people in one enrolment under a new name.
    let o = enrol("carol", &["sample5.jpg", "sample3.jpg"], false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not match the face in"), "{}", stderr(&o));
    assert_eq!(list(), before, "nothing enrolled");
    // Asked for explicitly, it is done.
    let o = enrol("bob", &["sample1.jpg"], true);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Runs `edgeid` on the default config: its exit code, stderr and peak memory (MiB).
fn peak_of(args: &[&str]) -> (Option<i32>, String, f64) {
    let m = common::measured(
        Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .args(["--config", "configs/default.toml"])
            .args(args)
            .current_dir(root()),
    );
    (m.code, m.stderr.clone(), m.peak_mib())
}

/// A PNG file of a black `side` × `side` RGB image, with an iCCP chunk whose profile inflates
/// to `profile_mib` MiB of zeros (a decompression bomb) when that is not 0.
fn black_png(path: &Path, side: u32, profile_mib: usize) {
    use flate2::{write::ZlibEncoder, Compression};
    use std::io::Write;
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, side, side);
    enc.set_color(png::ColorType::Rgb);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().unwrap();
    if profile_mib > 0 {
        let mut z = ZlibEncoder::new(b"bomb\0\0".to_vec(), Compression::best());
        let mib = vec![0u8; 1 << 20];
        (0..profile_mib).for_each(|_| z.write_all(&mib).unwrap());
        writer.write_chunk(png::chunk::iCCP, &z.finish().unwrap()).unwrap();
    }
    let mut rows = writer.stream_writer().unwrap();
    let row = vec![0u8; side as usize * 3];
    (0..side).for_each(|_| rows.write_all(&row).unwrap());
    rows.finish().unwrap();
}

/// Regression: a 64 × 64 PNG carrying a 1 MB colour profile (inflating to 512 MiB) cost 600 MB
/// to read (the decoder inflated the profile, that nothing uses, up to its memory limit), and a
/// black 9999 × 9999 PNG cost 655 MB (the detector copied the whole frame before shrinking
/// it). Now the profile is never inflated and the frame is shrunk in place: the bomb costs
/// what a small photo does, the big frame little more than its own 286 MiB of pixels.
#[test]
fn regression_image_bombs_cost_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let g = s(&dir.path().join("g.db"));
    let (bomb, big) = (dir.path().join("bomb.png"), dir.path().join("big.png"));
    black_png(&bomb, 64, 512);
    black_png(&big, 9999, 0);
    let bomb_bytes = std::fs::metadata(&bomb).unwrap().len();
    assert!((400_000..2_000_000).contains(&bomb_bytes), "{bomb_bytes} bytes");
    let photo = s(&data("sample5.jpg"));
    let (code, err, small) = peak_of(&["enroll", "--gallery", &g, "--name", "x", &photo]);
    assert_eq!(code, Some(0), "{err}");
    for (image, limit_mib) in [(&bomb, small + 40.0), (&big, 286.0 + small + 60.0)] {
        let (code, err, peak) = peak_of(&["enroll", "--gallery", &g, "--name", "y", &s(image)]);
        println!("{}: peak {peak:.0} MiB (a 1 MB photo: {small:.0} MiB)", image.display());
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("no face found"), "{err}");
        assert!(peak < limit_mib, "{}: peak {peak:.0} MiB, over {limit_mib:.0}", image.display());
    }
}

/// `text` with the first line that sets `key` set to `value` instead.
fn set_first(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    let out: String = text
        .lines()
        .map(|l| {
            if !done && l.starts_with(&format!("{key} = ")) {
                done = true;
                format!("{key} = {value}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(done, "no `{key}` line");
    out
}

/// A temporary copy of the default config (models from the repository), with `edit` applied.
fn default_config_with(dir: &Path, edit: impl FnOnce(String) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("configs/default.toml"))
        .unwrap()
        .replace("../models/", &format!("{}/", root().join("models").display()))
        .replace("../tests/", &format!("{}/", root().join("tests").display()))
        .replace("../var/", &format!("{}/", dir.display()));
    let path = dir.join("edgeid.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// #37, 1: `policy.require_match = false` granted every unknown face; it arrived by the file, by
/// SIGHUP and by a signed fleet offer. Refused in each (one check, in the config's validation,
/// which every way a config arrives goes through), unless `policy.grant_unmatched` says so, which
/// is then logged.
#[test]
fn regression_a_policy_that_grants_strangers_is_refused_however_it_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let off = |t: String| t.replace("require_match = true", "require_match = false");
    let cfg = default_config_with(tmp.path(), off);
    let photo = s(&data("sample2.jpg"));
    let run = |cfg: &Path| {
        Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .arg("--config")
            .arg(cfg)
            .args(["identify", "--gallery", &s(&tmp.path().join("g.db")), &photo])
            .output()
            .unwrap()
    };
    let o = run(&cfg);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("policy.require_match = false grants every face"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("policy.grant_unmatched = true"), "{}", stderr(&o));
    // The same text as a fleet offer's [policy] over a good config: refused by the device's check.
    let good = default_config_with(tmp.path(), |t| t);
    let staged = tmp.path().join("offer");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(
        staged.join(edgeid::fleet::offer::CONFIG_FILE),
        "[policy]\nrequire_match = false\nrequire_live = true\n",
    )
    .unwrap();
    let e = edgeid::runtime::load_config_with_offer(&good, &staged, 1).unwrap_err();
    assert!(format!("{e}").contains("policy.require_match = false grants every face"), "{e}");
    // With the override, it runs, and says so.
    let cfg = default_config_with(tmp.path(), |t| {
        off(t).replace("require_match = false", "require_match = false\ngrant_unmatched = true")
    });
    let g = s(&tmp.path().join("g.db"));
    let enrol = Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .arg("--config")
        .arg(&cfg)
        .args(["enroll", "--gallery", &g, "--name", "alice", &s(&data("sample3.jpg"))])
        .output()
        .unwrap();
    assert!(enrol.status.success(), "{}", stderr(&enrol));
    let o = run(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("faces that match no one are granted"), "{}", stderr(&o));
}

/// #37, 2: an encoder manifest copied without its `match_floor` let `match_threshold = 0` and
/// `-0.5` through (4 of 4 strangers granted). Thresholds outside (0, 1] are refused whatever the
/// override says; a manifest without a floor is refused unless the override says so (logged).
#[test]
fn regression_a_threshold_is_refused_when_the_floor_line_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    for f in ["mobilefacenet.toml", "mobilefacenet.onnx"] {
        std::fs::copy(root().join("models").join(f), models.join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(models.join("mobilefacenet.toml")).unwrap();
    let floorless: String = manifest
        .lines()
        .filter(|l| !l.starts_with("match_floor"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(floorless, manifest);
    std::fs::write(models.join("mobilefacenet.toml"), floorless).unwrap();
    let photo = s(&data("sample2.jpg"));
    let g = s(&tmp.path().join("g.db"));
    let enrol = |threshold: &str, allow: bool| {
        let cfg = default_config_with(tmp.path(), |t| {
            let t = t.replace(
                &format!("{}/mobilefacenet.toml", root().join("models").display()),
                &s(&models.join("mobilefacenet.toml")),
            );
            // The first of each is [recognition]'s.
            let t = set_first(&t, "match_threshold", threshold);
            set_first(&t, "allow_below_floor", &allow.to_string())
        });
        Command::new(env!("CARGO_BIN_EXE_edgeid"))
            .arg("--config")
            .arg(&cfg)
            .args(["enroll", "--gallery", &g, "--name", "alice", &photo])
            .output()
            .unwrap()
    };
    for (threshold, allow) in [("0", false), ("-0.5", false), ("0", true), ("1.5", false)] {
        let o = enrol(threshold, allow);
        assert_eq!(o.status.code(), Some(1), "{threshold} {allow}: {}", stderr(&o));
        assert!(stderr(&o).contains("recognition.match_threshold"), "{}", stderr(&o));
        assert!(stderr(&o).contains("above 0 and at most 1"), "{}", stderr(&o));
    }
    let o = enrol("0.58", false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no `match_floor`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("recognition.allow_below_floor = true"), "{}", stderr(&o));
    assert!(!Path::new(&g).exists(), "nothing enrolled");
    let o = enrol("0.58", true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("running because recognition.allow_below_floor = true"),
        "{}",
        stderr(&o)
    );
}

/// #37, 9: `edgeid run | head -c 0` panicked (exit 101) writing its summary to the closed stdout.
/// Now a closed stdout ends the output quietly, as for every other command, and the run's exit
/// status is its own.
#[test]
fn regression_run_with_a_closed_stdout_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("one.txt");
    std::fs::write(&list, format!("{}\n", data("sample2.jpg").display())).unwrap();
    let setup = common::Setup::new(&s(&list), 0.0, false, "");
    setup.enrol("alice", "sample3.jpg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeid"))
        .arg("--config")
        .arg(setup.config())
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// #37, 4: `gallery import` of a face already enrolled under another name succeeded, and
/// `identify` then granted the new name. An import passes enrolment's checks (the gallery's
/// faces, and the file's own identities against each other); `--force` imports anyway, logged.
#[test]
fn regression_an_import_passes_the_checks_an_enrolment_does() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (g, _) = alice_gallery(a.path());
    // Elsewhere, alice's face enrolled as mallory, and exported.
    let g2 = s(&b.path().join("gallery.db"));
    let o = edgeid(&["enroll", "--gallery", &g2, "--name", "mallory", &s(&data("sample2.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (export, transfer) = (b.path().join("m.export"), b.path().join("transfer.key"));
    let o =
        edgeid(&["gallery", "export", "--gallery", &g2, "--key", &s(&transfer), "-o", &s(&export)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = |g: &str| edgeid(&["gallery", "list", "--gallery", g, "--json"]).stdout;
    let before = list(&g);
    let import = |extra: &[&str]| {
        let mut args = vec!["gallery", "import", "--gallery", &g, "--key"];
        let key = s(&transfer);
        let file = s(&export);
        args.push(&key);
        args.extend_from_slice(extra);
        args.push(&file);
        edgeid(&args)
    };
    let o = import(&[]);
    assert_refused(&o, "is already enrolled as `alice`");
    assert_eq!(list(&g), before, "nothing imported");
    let o = import(&["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("imported with --force"), "{}", stderr(&o));
}

/// #37, 6: names that render as other names (soft hyphen, Arabic letter mark, separators, tag
/// characters, blank fillers) were enrolled; an NFD `José` did not remove the NFC one. Refused by
/// Unicode category now, and removal takes the name as enrolment stores it.
#[test]
fn regression_names_that_render_as_other_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = s(&dir.path().join("g.db"));
    let photo = s(&data("sample2.jpg"));
    for bad in
        ["al\u{AD}ice", "ali\u{61C}ce", "al\u{2028}ice", "alice\u{E0041}", "\u{3164}\u{3164}"]
    {
        let o = edgeid(&["enroll", "--gallery", &g, "--name", bad, &photo]);
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("shows as nothing or as something else"), "{}", stderr(&o));
    }
    assert!(!Path::new(&g).exists(), "no gallery created");
    let o = edgeid(&["enroll", "--gallery", &g, "--name", "José", &photo]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = edgeid(&["gallery", "remove", "--gallery", &g, "Jose\u{301}"]);
    assert!(o.status.success(), "the NFD spelling removes the NFC name: {}", stderr(&o));
    let list = edgeid(&["gallery", "list", "--gallery", &g, "--json"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("Jos"), "removed");
}

// The API stalled by one client (#37, 10 to 15): a daemon with the operator API, driven over
// raw connections on 127.0.0.1 where a client must misbehave.

mod api_limits {
    use super::*;
    use crate::api::{agent, call, kiosk_with_api, token};
    use crate::daemon::{free_port, wait_for};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    /// What came back on a raw connection.
    #[derive(Debug, PartialEq)]
    enum Answer {
        /// A status line (its code) and what followed, up to the end of the body.
        Status(u16, String),
        /// Closed (or reset) without an answer.
        Closed,
        /// Nothing yet.
        Waiting,
    }

    /// A connection that has sent `head` (request line and headers, no blank line) and `body`.
    fn sent(port: u16, head: &str, body: &[u8]) -> std::io::Result<TcpStream> {
        let mut c = TcpStream::connect(("127.0.0.1", port))?;
        c.write_all(format!("{head}\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
        c.write_all(body)?;
        Ok(c)
    }

    /// The answer on `c` within `wait`: its head, and its body when it declares a length.
    fn answer(c: &mut TcpStream, wait: Duration) -> Answer {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut closed = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            c.set_read_timeout(Some(left)).unwrap();
            match c.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end].lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_none_or(|n| got.len() >= end + 4 + n) {
                    break;
                }
            }
        }
        if got.is_empty() {
            return if closed { Answer::Closed } else { Answer::Waiting };
        }
        let text = String::from_utf8_lossy(&got).to_string();
        let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        Answer::Status(code, text)
    }

    /// The JSON body of an answer's text.
    fn json_of(text: &str) -> serde_json::Value {
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// A line of /proc/PID/status in MiB (VmRSS, VmHWM).
    fn proc_mib(pid: &str, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
    }

    /// A daemon with the API on a free port, up; its port and an admin token.
    fn api_daemon(tmp: &Path) -> (crate::common::Setup, crate::common::Daemon, u16, String) {
        let port = free_port();
        let s = kiosk_with_api(tmp, port, "");
        let admin = token(&s, "admin", "admin");
        let daemon = s.daemon(&[]);
        let agent = agent();
        wait_for("the API", Duration::from_secs(120), || {
            agent.get(&format!("http://127.0.0.1:{port}/api/status")).call().is_ok()
        });
        (s, daemon, port, admin)
    }

    /// Regression (#37, 10 and 11): bodies were read before the token was looked at (64
    /// unauthenticated 19 MiB uploads took the daemon from 155 MB to 1.40 GB), with no deadline
    /// (64 connections trickling a byte every 4 s locked every client out, admin included).
    /// Now a body without a valid token is refused before a byte of it is read, one client has
    /// at most two uploads in progress and a quarter of the connections, and a body must
    /// arrive by its deadline.
    #[test]
    fn regression_api_bodies_are_authenticated_before_they_are_read_and_held_to_a_deadline() {
        let tmp = tempfile::tempdir().unwrap();
        let (s, daemon, port, admin) = api_daemon(tmp.path());
        let ops = token(&s, "ops", "enrol");
        let big = 19 << 20;

        // No token, a 19 MiB body announced and not sent: refused at once, not waited for.
        let head = format!("POST /api/identify HTTP/1.1\r\nContent-Length: {big}");
        let mut c = sent(port, &head, b"").unwrap();
        match answer(&mut c, Duration::from_secs(5)) {
            Answer::Status(401, text) => assert!(json_of(&text)["error"].is_string(), "{text}"),
            other => {
                panic!("an unauthenticated body was not refused before it was read: {other:?}")
            }
        }
        // 64 of them sent whole, at once: the daemon does not hold them.
        let before = proc_mib(&daemon.pid(), "VmHWM");
        let body = vec![b'x'; big];
        std::thread::scope(|scope| {
            for _ in 0..64 {
                scope.spawn(|| {
                    if let Ok(mut c) = sent(port, &head, &body) {
                        answer(&mut c, Duration::from_secs(10));
                    }
                });
            }
        });
        let grown = proc_mib(&daemon.pid(), "VmHWM") - before;
        println!("64 unauthenticated 19 MiB uploads: peak resident grew {grown:.0} MiB");
        assert!(grown < 64.0, "peak resident grew {grown:.0} MiB");

        // 64 connections from one client trickling a body with a valid token: two uploads in
        // progress, the rest refused (429) or closed at once; admin is still answered.
        let head = format!(
            "POST /api/identify HTTP/1.1\r\nAuthorization: Bearer {ops}\r\nContent-Length: {big}"
        );
        let mut trickling: Vec<TcpStream> =
            (0..64).filter_map(|_| sent(port, &head, b"x").ok()).collect();
        std::thread::sleep(Duration::from_secs(1));
        let (status, body) = admin_status(port, &admin);
        assert_eq!(status, 200, "admin was locked out: {body}");
        let answers: Vec<Answer> =
            trickling.iter_mut().map(|c| answer(c, Duration::from_millis(500))).collect();
        let waiting = answers.iter().filter(|a| **a == Answer::Waiting).count();
        let too_many = answers.iter().filter(|a| matches!(a, Answer::Status(429, _))).count();
        println!("64 trickling uploads: {waiting} read, {too_many} answered 429, the rest closed");
        assert_eq!(waiting, 2, "{answers:?}");
        assert!(too_many >= 1, "{answers:?}");
        drop(trickling);

        // A body that stops short is answered 408 after its deadline (10 s for 1,000 bytes).
        let head = format!(
            "POST /api/identify HTTP/1.1\r\nAuthorization: Bearer {ops}\r\nContent-Length: 1000"
        );
        let mut answered = Answer::Waiting;
        wait_for("an upload slot again", Duration::from_secs(30), || {
            let mut c = sent(port, &head, b"0123456789").unwrap();
            answered = answer(&mut c, Duration::from_secs(30));
            !matches!(answered, Answer::Status(429, _))
        });
        match answered {
            Answer::Status(408, text) => {
                let error = json_of(&text)["error"].as_str().unwrap().to_string();
                assert!(error.contains("did not arrive within 10 s"), "{error}");
            }
            other => panic!("a stalled body was not cut off: {other:?}"),
        }
    }

    /// A lossless WebP of a black `side` × `side` picture: a few kB that decode to side² RGBA.
    fn webp_bomb(path: &Path, side: u32) {
        let pixels = vec![0u8; side as usize * side as usize * 4];
        let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        image::codecs::webp::WebPEncoder::new_lossless(file)
            .encode(&pixels, side, side, image::ExtendedColorType::Rgba8)
            .unwrap();
    }

    /// Regression (#37, 12): a 3.9 KB lossless WebP decoding to 9999 × 9999 cost ~750 MB in the
    /// CLI (400 MB of RGBA, then 300 MB of RGB beside it, above the documented 512 MiB) and 16
    /// of them posted at once peaked at 5.38 GB. Now an image whose decoding would hold more
    /// than 512 MiB at its peak is refused before it is decoded, and the API decodes one photo
    /// at a time, with at most two uploads per client.
    #[test]
    fn regression_api_image_bombs_are_refused_before_decoding_and_decoded_one_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let bomb = tmp.path().join("bomb.webp");
        webp_bomb(&bomb, 9999);
        let bytes = std::fs::read(&bomb).unwrap();
        println!("9999 x 9999 lossless WebP: {} bytes", bytes.len());
        assert!(bytes.len() < 100_000, "{} bytes", bytes.len());
        let g = s(&tmp.path().join("g.db"));
        let (_, _, small) =
            peak_of(&["enroll", "--gallery", &g, "--name", "x", &s(&data("sample5.jpg"))]);
        let (code, err, peak) = peak_of(&["enroll", "--gallery", &g, "--name", "y", &s(&bomb)]);
        println!("CLI: peak {peak:.0} MiB (a 1 MB photo: {small:.0} MiB)");
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("512 MiB decoded"), "{err}");
        assert!(peak < small + 40.0, "peak {peak:.0} MiB");

        let (s, daemon, port, _) = api_daemon(tmp.path());
        let viewer = token(&s, "wall", "read");
        let before = proc_mib(&daemon.pid(), "VmHWM");
        let url = format!("http://127.0.0.1:{port}/api/identify");
        let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|scope| {
            let posts: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| call(&agent(), "POST", &url, Some(&viewer), Some(bytes.clone())))
                })
                .collect();
            posts.into_iter().map(|p| p.join().unwrap()).collect()
        });
        let grown = proc_mib(&daemon.pid(), "VmHWM") - before;
        println!("16 bombs posted at once: peak resident grew {grown:.0} MiB");
        for (status, body) in &answers {
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                (*status == 400 && error.contains("512 MiB decoded")) || *status == 429,
                "{status} {body}"
            );
        }
        assert!(answers.iter().any(|(status, _)| *status == 400), "{answers:?}");
        assert!(grown < 64.0, "peak resident grew {grown:.0} MiB");
    }

    /// `GET /api/status` with the admin token: whether admin is still answered.
    fn admin_status(port: u16, admin: &str) -> (u16, serde_json::Value) {
        call(&agent(), "GET", &format!("http://127.0.0.1:{port}/api/status"), Some(admin), None)
    }

    /// Opens an event stream with `token`; its status.
    fn stream(port: u16, token: &str) -> (TcpStream, u16) {
        let head = format!("GET /api/events HTTP/1.1\r\nAuthorization: Bearer {token}");
        let mut c = sent(port, &head, b"").unwrap();
        match answer(&mut c, Duration::from_secs(10)) {
            Answer::Status(code, _) => (c, code),
            other => panic!("no answer to an event stream request: {other:?}"),
        }
    }

    /// Regression (#37, 13 and 14): 64 event streams from one read token starved every other
    /// request, and removing a token left its streams delivering. Now a token holds at most 4
    /// streams, all tokens at most 8 with the last kept for admin, and a removed token's
    /// streams end within a second or two with an `end` event.
    #[test]
    fn regression_api_event_streams_are_capped_per_token_and_end_with_their_token() {
        let tmp = tempfile::tempdir().unwrap();
        let (s, _daemon, port, admin) = api_daemon(tmp.path());
        let (a, b) = (token(&s, "wall-a", "read"), token(&s, "wall-b", "read"));
        let mut held = Vec::new();
        let mut codes = Vec::new();
        for t in [&a, &a, &a, &a, &a, &b, &b, &b, &b, &admin, &admin] {
            let (c, code) = stream(port, t);
            codes.push(code);
            held.push(c);
        }
        // a: 4 of 5; b: 3 of 4 (7 streams in all, the 8th kept for admin); admin: the 8th.
        assert_eq!(codes, [200, 200, 200, 200, 429, 200, 200, 200, 429, 200, 429], "{codes:?}");
        let (status, body) = admin_status(port, &admin);
        assert_eq!(status, 200, "{body}");

        // wall-a removed: its four streams end with an `end` event; wall-b's go on.
        let o = s.spawn(&["token", "remove", "wall-a"]).wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for c in &mut held[..4] {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = String::new();
            while !seen.contains("event: end") && Instant::now() < deadline {
                let mut chunk = [0u8; 4096];
                c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                if let Ok(n) = c.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }
            assert!(seen.contains("event: end"), "a removed token's stream goes on: {seen}");
        }
        // Their slots are free again: another read token opens a stream.
        let (_c, code) = stream(port, &b);
        assert_eq!(code, 200);
    }

    /// Regression (#37, 15): the page could be framed by any site and allowed inline scripts;
    /// a malformed query, path or method and an oversized body were answered in plain text.
    #[test]
    fn regression_api_page_cannot_be_framed_and_every_error_is_json() {
        let tmp = tempfile::tempdir().unwrap();
        let (_s, _daemon, port, admin) = api_daemon(tmp.path());
        let base = format!("http://127.0.0.1:{port}");
        let agent = agent();
        let page = agent.get(&format!("{base}/")).call().unwrap();
        let header = |name: &str| {
            page.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header("x-frame-options"), "DENY");
        let icon = agent.get(&format!("{base}/favicon.ico")).call().unwrap();
        assert_eq!(
            (icon.status().as_u16(), &icon.headers()["content-type"]),
            (200, &"image/svg+xml".parse::<ureq::http::HeaderValue>().unwrap())
        );
        let script = agent.get(&format!("{base}/page.js")).call().unwrap();
        assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");

        let get = |path: &str| call(&agent, "GET", &format!("{base}{path}"), Some(&admin), None);
        for (path, status) in [
            ("/api/decisions?limit=many", 400),
            ("/api/decisions/first/crop", 400),
            ("/api/nothing-here", 404),
        ] {
            let (code, body) = get(path);
            assert_eq!(code, status, "{path}: {body}");
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
        }
        let (code, body) = call(&agent, "PUT", &format!("{base}/api/status"), Some(&admin), None);
        assert_eq!(code, 405, "{body}");
        assert!(body["error"].as_str().unwrap().contains("PUT"), "{body}");
        // Over api.max_upload_mib (20): refused on its declared length, before it is sent.
        let head = format!(
            "POST /api/identify HTTP/1.1\r\nAuthorization: Bearer {admin}\r\nContent-Length: {}",
            21 << 20
        );
        match answer(&mut sent(port, &head, b"").unwrap(), Duration::from_secs(10)) {
            Answer::Status(413, text) => {
                assert!(json_of(&text)["error"].as_str().unwrap().contains("max_upload_mib"))
            }
            other => panic!("an oversized body was not refused as JSON: {other:?}"),
        }
    }
}

/// Regression (#37, 7): deleting the journal's tail rows and its `chain_heads` row (daemon
/// running or not) had the writer append with the removed ids, and `journal verify` said
/// intact; dropping the chain columns and table had an edited journal chained again as it stood.
/// The heads are now anchored in a file beside the journal, written after every append: a
/// writer refuses a journal behind its anchor, and one with records and no anchor.
#[test]
fn regression_journal_ids_are_not_reused_when_the_tail_and_its_chain_head_are_deleted() {
    use edgeid::journal::anchor;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let cut = |sql: &str| rusqlite::Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    let tail_and_head = "DELETE FROM decisions WHERE id > 3; DELETE FROM chain_heads;";
    let when = |i: i64| decision(1_700_000_000_000 + i * 60_000, 0.6, 100.0);

    // While a writer holds it (the daemon running): its next append is refused.
    let writer = Journal::open(&path).unwrap();
    for i in 0..5 {
        writer.append(&when(i)).unwrap();
    }
    cut(tail_and_head);
    let e = writer.append(&when(5)).unwrap_err().to_string();
    assert!(
        e.contains("records 4..=5 were removed from the end") && e.contains("head anchor"),
        "{e}"
    );
    drop(writer);
    // At the next open (the daemon started again), and for `journal verify`.
    let e = Journal::open(&path).err().expect("refused").to_string();
    assert!(e.contains("records 4..=5 were removed from the end"), "{e}");
    let o = edgeid(&["journal", "--journal", &s(&path), "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("decisions record 4: its head anchor"), "{}", stderr(&o));
    assert_eq!(Journal::open_existing(&path).unwrap().last_id().unwrap(), 3, "no id reused");

    // The chain columns and heads table dropped: refused, never chained again.
    cut("ALTER TABLE decisions DROP COLUMN hash; ALTER TABLE decisions DROP COLUMN prev_hash; DROP TABLE chain_heads;");
    let e = Journal::open(&path).err().expect("refused").to_string();
    assert!(e.contains("no chain columns"), "{e}");

    // The anchor removed as well: a journal with records and no anchor is refused; accepting
    // it (`journal anchor`, for journals written before anchors) verifies its chains first.
    let other = dir.path().join("other.db");
    {
        let j = Journal::open(&other).unwrap();
        for i in 0..3 {
            j.append(&when(i)).unwrap();
        }
    }
    std::fs::remove_file(anchor::path_for(&other)).unwrap();
    let e = Journal::open(&other).err().expect("refused").to_string();
    assert!(e.contains("holds records but no head anchor"), "{e}");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute("UPDATE decisions SET identity = 'mallory' WHERE id = 2", [])
        .unwrap();
    let o = edgeid(&["journal", "--journal", &s(&other), "anchor"]);
    assert_eq!(o.status.code(), Some(1), "an edited journal was anchored: {}", stderr(&o));
    assert!(stderr(&o).contains("fails verification: decisions record 2"), "{}", stderr(&o));
    assert!(!anchor::path_for(&other).exists());
}

/// Regression (#37, 8): `rm` of the journal and its WAL under a running daemon left `/healthz`
/// ok and `edgeid_journal_writable 1`, the decisions after it existed nowhere, and the next
/// start began a new journal at id 1 silently. Now the daemon sees the file gone (its path no
/// longer names the file it holds) within a second and takes no decision, unhealthy; a start
/// that finds the journal's anchor and no journal refuses, saying so.
#[test]
fn regression_a_journal_removed_under_the_daemon_makes_it_unhealthy_and_the_next_start_says_so() {
    use crate::daemon::{free_port, http_get, journal_count, metric, replay_list, wait_for};
    use std::time::Duration;
    let port = free_port();
    let setup = common::Setup::legacy(&replay_list(), 0.0, true, &format!("127.0.0.1:{port}"));
    setup.enrol("alice", "sample2.jpg");
    let mut daemon = setup.daemon(&[]);
    wait_for("2 decisions", Duration::from_secs(120), || journal_count(&setup.journal()) >= 2);
    let journal = setup.journal();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = journal.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
    wait_for("health to say the journal is gone", Duration::from_secs(30), || {
        http_get(port, "/healthz").contains("503")
    });
    let health = http_get(port, "/healthz");
    assert!(health.contains("was removed while edgeid held it open"), "{health}");
    assert_eq!(metric(port, "edgeid_journal_writable"), 0.0);
    daemon.kill();
    assert!(!journal.exists(), "a journal was made again");

    let run = setup.spawn(&["run", "--max-frames", "2"]).wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("is missing, but its head anchor") && err.contains("removed or moved"),
        "{err}"
    );
    assert!(!journal.exists(), "the refused start made a new journal");
}

/// Regression (#42, 7): stored face crops were kept forever (~20 KB a decision), and removing
/// one broke the record's hash (the chain covered the crop's bytes). Now a crop's record
/// carries its digest, the chain covers the digest, and crops go after `keep_crops_days` and
/// past `max_crops_mib` (oldest first): at the daemon's start and every minute, the records and
/// their chain intact.
#[test]
fn regression_face_crops_are_pruned_by_age_and_size_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let now = edgeid::clock::now_ms();
    let day = 86_400_000;
    {
        let j = Journal::open(&path).unwrap();
        for i in 0..10i64 {
            let mut d = decision(if i < 5 { now - 40 * day } else { now - day } + i, 0.6, 100.0);
            d.crop_png = Some(vec![i as u8; 1000]);
            j.append(&d).unwrap();
        }
        // 30 days, 3,000 bytes: the 5 older than 30 days, then the 2 oldest of the rest.
        assert_eq!(j.prune_crops(now - 30 * day, 3000).unwrap(), (7, 7000));
        let kept: Vec<i64> = (1..=10).filter(|&id| j.crop(id).unwrap().is_some()).collect();
        assert_eq!(kept, [8, 9, 10]);
        assert!(j.verify().unwrap().iter().all(|t| t.broken.is_none()), "{:?}", j.verify());
        assert_eq!(j.count().unwrap(), 10, "every record stays");
    }
    let o = edgeid(&["journal", "--journal", &s(&path), "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The digest is what the chain covers: editing it is found.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE decisions SET crop_sha256 = 'ff' || substr(crop_sha256, 3) WHERE id = 9",
            [],
        )
        .unwrap();
    let o = edgeid(&["journal", "--journal", &s(&path), "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("decisions record 9"), "{}", stderr(&o));

    // The daemon prunes at its start: a journal of old crops, a run of two frames.
    let setup = common::Setup::new(&data("replay.txt").display().to_string(), 0.0, false, "");
    {
        let j = Journal::open(&setup.journal()).unwrap();
        for i in 0..3 {
            let mut d = decision(now - 40 * day + i, 0.6, 100.0);
            d.crop_png = Some(vec![7; 500]);
            j.append(&d).unwrap();
        }
    }
    setup.enrol("alice", "sample2.jpg");
    let cfg = std::fs::read_to_string(setup.config()).unwrap();
    std::fs::write(setup.config(), cfg.replace("store_crops = false", "store_crops = true"))
        .unwrap();
    let run = setup.spawn(&["run", "--max-frames", "2"]).wait_with_output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("3 face crop(s) past daemon.keep_crops_days"),
        "{}",
        stderr(&run)
    );
    let j = Journal::open_existing(&setup.journal()).unwrap();
    assert!((1..=3).all(|id| j.crop(id).unwrap().is_none()));
    assert!(j.verify().unwrap().iter().all(|t| t.broken.is_none()));
}
