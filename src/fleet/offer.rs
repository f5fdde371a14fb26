//! Config offers: a new configuration (its decision settings and the models they name) for
//! every device of the fleet, over the channel gallery changes take.
//!
//! An offer is a folder: `edgeid.toml`, holding only the tables an offer may set
//! ([`OFFERED_TABLES`]: models and thresholds, never a device's own cameras, files or keys),
//! and the files it names (manifests, ONNX models), by paths relative to it. Published, it is
//! one message like a gallery change: a body (its version, when it was published, and the
//! folder's files sealed under the transport key, bound to the version) signed with ed25519.
//! It is kept in PostgreSQL (`config_offers`) and retained on `<prefix>/fleet/config`: an offer
//! is the whole of what it sets, so only the latest one matters.
//!
//! A device that takes offers (`fleet.updates`, a folder of its own) stages each one newer than
//! what it holds in `<updates>/<version>/`; the daemon then checks it whole (the config with it,
//! every model loaded, the gallery's encoder, the generalization audit) and either applies it
//! (the version recorded in `<updates>/state.json`; every later load of the device's config
//! reads it over the device's file) or keeps what it runs and records why it refused it.

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::central;
use super::channel::{next_version, publisher_keys, retain, sign, verified_body, Message};
use super::error::FleetError;
use crate::config::fleet::FleetConfig;
use crate::config::{Config, ConfigError};
use crate::gallery::Key;

/// What a signature covers, before the body.
const CONTEXT: &[u8] = b"edgeid fleet config offer v1\n";

/// The offer's config file, in its folder.
pub const CONFIG_FILE: &str = "edgeid.toml";

/// The tables an offer may set, each replacing the device's own whole: what the device decides
/// with. Cameras, outputs, the gallery, the journal, keys, `[fleet]` itself and the audit's
/// policy stay the device's.
pub const OFFERED_TABLES: &[&str] =
    &["detector", "encoder", "recognition", "pad", "mad", "policy", "tagger", "tracker"];

/// The most an offer's files may weigh together: the message is a third larger, and brokers
/// and clients hold it whole.
pub const MAX_BYTES: usize = 40 << 20;

/// A file of an offer.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// An offer whose signature and seal held.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub version: i64,
    pub published_ms: i64,
    pub files: Vec<OfferedFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Body {
    version: i64,
    published_ms: i64,
    sealed: String,
}

/// The sealed part's header; the files' bytes follow it, in its order, after a newline.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    files: Vec<(String, usize)>,
}

fn aad(version: i64) -> Vec<u8> {
    [CONTEXT, &version.to_le_bytes()].concat()
}

/// The topic the latest offer is retained on.
pub fn topic(prefix: &str) -> String {
    format!("{prefix}/fleet/config")
}

/// Refuses a file name that is not a plain name in the offer's folder.
fn check_name(name: &str) -> Result<(), String> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if name.is_empty() || name.len() > 100 || name.starts_with('.') || !plain {
        return Err(format!(
            "file name {name:?}: an offer's files are plain names (letters, digits, `.`, `_`, `-`; not starting with `.`) in one folder"
        ));
    }
    Ok(())
}

/// Checks an offer's files: plain, distinct names, `edgeid.toml` among them, within
/// [`MAX_BYTES`].
pub fn check_files(files: &[OfferedFile]) -> Result<(), String> {
    for (i, f) in files.iter().enumerate() {
        check_name(&f.name)?;
        if files[..i].iter().any(|g| g.name == f.name) {
            return Err(format!("file {:?} is there twice", f.name));
        }
    }
    if !files.iter().any(|f| f.name == CONFIG_FILE) {
        return Err(format!("it has no {CONFIG_FILE}"));
    }
    let total: usize = files.iter().map(|f| f.bytes.len()).sum();
    if total > MAX_BYTES {
        return Err(format!(
            "its files weigh {total} bytes, over the {MAX_BYTES} an offer may carry"
        ));
    }
    Ok(())
}

/// Reads an offer's folder: every file in it (no subfolders), checked as [`check_files`] does.
pub fn read_folder(dir: &Path) -> Result<Vec<OfferedFile>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot be read ({e})"))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot be read ({e})"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_file() {
            return Err(format!(
                "{name:?} is not a file: an offer is one folder of files, without subfolders"
            ));
        }
        let bytes =
            std::fs::read(&path).map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
        files.push(OfferedFile { name, bytes });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    check_files(&files)?;
    Ok(files)
}

/// Seals `files` as offer `version` and signs it.
pub fn seal(
    version: i64,
    published_ms: i64,
    files: &[OfferedFile],
    key: &Key,
    secret: &SigningKey,
) -> Message {
    let header = Header { files: files.iter().map(|f| (f.name.clone(), f.bytes.len())).collect() };
    let mut clear = serde_json::to_vec(&header).expect("a header serialises");
    clear.push(b'\n');
    for f in files {
        clear.extend_from_slice(&f.bytes);
    }
    let sealed = base64::engine::general_purpose::STANDARD.encode(key.seal(&clear, &aad(version)));
    let body =
        serde_json::to_string(&Body { version, published_ms, sealed }).expect("a body serialises");
    sign(CONTEXT, body, secret)
}

/// Checks a received offer's signature with `public`, then opens its files with `key`; `Err`
/// says why it is refused.
pub fn open(bytes: &[u8], key: &Key, public: &VerifyingKey) -> Result<Offer, String> {
    let body = verified_body(bytes, CONTEXT, "a config offer", public)?;
    let body: Body =
        serde_json::from_str(&body).map_err(|e| format!("its body is not an offer ({e})"))?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&body.sealed)
        .map_err(|_| "its sealed files are not base64")?;
    let clear = key.open(&sealed, &aad(body.version)).ok_or_else(|| {
        format!("it does not open with fleet.transport_key {}: the publisher sealed it under another key", key.path().display())
    })?;
    let newline = clear.iter().position(|&b| b == b'\n').ok_or("its files have no header")?;
    let header: Header = serde_json::from_slice(&clear[..newline])
        .map_err(|e| format!("its files' header does not parse ({e})"))?;
    let mut rest = &clear[newline + 1..];
    let mut files = Vec::new();
    for (name, len) in header.files {
        if len > rest.len() {
            return Err(format!("its file {name:?} is cut short"));
        }
        let (bytes, after) = rest.split_at(len);
        files.push(OfferedFile { name, bytes: bytes.to_vec() });
        rest = after;
    }
    if !rest.is_empty() {
        return Err("its files are followed by bytes no header names".into());
    }
    check_files(&files)?;
    Ok(Offer { version: body.version, published_ms: body.published_ms, files })
}

/// What `publish` did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub version: i64,
    pub files: Vec<String>,
    pub bytes: usize,
    pub topic: String,
}

/// Publishes `files` as the next offer: stored in the database (the version taken under a
/// lock), then retained on the broker in place of the one before.
pub fn publish(
    cfg: &FleetConfig,
    secret: &Path,
    by: &str,
    files: &[OfferedFile],
) -> Result<Published, FleetError> {
    check_files(files).map_err(|why| FleetError::Key { what: "offer".into(), why })?;
    let (key, signer) = publisher_keys(cfg, secret)?;
    let mut db = central::connect(cfg)?;
    central::require_schema(&mut db)?;
    let mut tx = db.transaction().map_err(FleetError::db("publishing"))?;
    let version = next_version(&mut tx, "config_offers")?;
    let message = seal(version, crate::clock::now_ms(), files, &key, &signer);
    let text = serde_json::to_string(&message).expect("a message serialises");
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
    tx.execute(
        "INSERT INTO config_offers (version, files, bytes, published_by, message) VALUES ($1, $2, $3, $4, $5)",
        &[&version, &names.join(" "), &(bytes as i64), &by, &text],
    )
    .map_err(FleetError::db("publishing"))?;
    tx.commit().map_err(FleetError::db("publishing"))?;
    let topic = topic(&cfg.topic_prefix);
    retain(cfg, &[(topic.clone(), text)]).map_err(|e| FleetError::Broker {
        broker: cfg.broker.clone(),
        why: format!("offer {version} is stored in the database but was not published ({e}); run `edgeid fleet republish` once the broker is back"),
    })?;
    Ok(Published { version, files: names, bytes, topic })
}

/// The latest stored offer, as published: (version, topic, message); none if none was.
pub fn latest(
    cfg: &FleetConfig,
    db: &mut postgres::Client,
) -> Result<Option<(i64, String, String)>, FleetError> {
    let row = db
        .query_opt("SELECT version, message FROM config_offers ORDER BY version DESC LIMIT 1", &[])
        .map_err(FleetError::db("reading the config offers"))?;
    Ok(row.map(|r| (r.get(0), topic(&cfg.topic_prefix), r.get(1))))
}

/// What a device holds of the fleet's offers (`<updates>/state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The offer the device runs (0: its own config alone).
    pub applied: i64,
    /// The latest offer refused, and why.
    #[serde(default)]
    pub refused: Option<Refusal>,
    /// The offer being checked now, and how far its checks are (a check with its audit takes
    /// minutes): reported to the fleet while it lasts.
    #[serde(default)]
    pub checking: Option<Checking>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checking {
    pub version: i64,
    pub stage: String,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub version: i64,
    pub why: String,
    pub at_ms: i64,
}

impl State {
    fn path(updates: &Path) -> PathBuf {
        updates.join("state.json")
    }

    /// The state in `updates` (the default when the device has taken no offer yet).
    pub fn read(updates: &Path) -> Result<State, String> {
        let path = State::path(updates);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("{} does not parse ({e}); remove it to run the device's own config, the offers taken so far forgotten", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("{} cannot be read ({e})", path.display())),
        }
    }

    /// Writes the state whole or not at all (a new file renamed over the old, synced).
    pub fn write(&self, updates: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("a state serialises");
        crate::util::write_atomically(&State::path(updates), &text)
    }

    /// The folder of the offer applied, if one is.
    pub fn applied_dir(&self, updates: &Path) -> Option<PathBuf> {
        (self.applied > 0).then(|| offer_dir(updates, self.applied))
    }
}

/// Where offer `version` is staged.
pub fn offer_dir(updates: &Path, version: i64) -> PathBuf {
    updates.join(version.to_string())
}

/// Writes an offer's files into `<updates>/<version>/` (a partial folder renamed into place, so
/// a folder of that name is always whole); returns the folder.
pub fn stage(updates: &Path, offer: &Offer) -> std::io::Result<PathBuf> {
    check_files(&offer.files).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(updates)?;
    let dir = offer_dir(updates, offer.version);
    let partial = updates.join(format!("{}.partial", offer.version));
    for d in [&dir, &partial] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
    }
    std::fs::create_dir(&partial)?;
    for f in &offer.files {
        crate::util::write_atomically(&partial.join(&f.name), &f.bytes)?;
    }
    std::fs::rename(&partial, &dir)?;
    Ok(dir)
}

/// Removes every staged offer but `keep`.
pub fn prune(updates: &Path, keep: &[i64]) {
    let Ok(entries) = std::fs::read_dir(updates) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let version = name.trim_end_matches(".partial").parse::<i64>();
        if version.is_ok_and(|v| !keep.contains(&v) || name.ends_with(".partial")) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The config a device runs: its file, with the config offer it applied (its `fleet.updates`
/// folder's state) read over it. Every command and the daemon read it through
/// [`crate::runtime::load_config`].
pub fn applied_config(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::Unreadable { path: path.to_path_buf(), error })?;
    let cfg = Config::parse(&text, path)?;
    let Some(updates) = cfg.fleet.as_ref().and_then(|f| f.updates.clone()) else {
        return Ok(cfg);
    };
    let state = State::read(&updates).map_err(|why| ConfigError::Offer {
        path: path.to_path_buf(),
        offer: updates.clone(),
        why,
    })?;
    match state.applied_dir(&updates) {
        Some(dir) => config_with_offer(&text, path, &dir, state.applied),
        None => Ok(cfg),
    }
}

/// Parses config text as [`Config::parse`] does, with the offer staged in `dir` over it:
/// each table the offer sets replaces the text's, its relative paths resolved against
/// `dir`. An offer that sets anything else is refused.
pub fn config_with_offer(
    text: &str,
    path: &Path,
    dir: &Path,
    version: i64,
) -> Result<Config, ConfigError> {
    // The device's own file must stand alone (and its errors name it).
    Config::parse(text, path)?;
    let offer_path = dir.join(CONFIG_FILE);
    let err = |why: String| ConfigError::Offer {
        path: path.to_path_buf(),
        offer: offer_path.clone(),
        why,
    };
    let offer_text = std::fs::read_to_string(&offer_path)
        .map_err(|e| {
            err(format!("cannot be read ({e}); offer it again, or set `applied` to 0 in the updates folder's state.json to run the device's own config"))
        })?;
    let offered: toml::Table =
        toml::from_str(&offer_text).map_err(|e| err(crate::util::toml_error(&offer_text, &e)))?;
    let mut offered = offered;
    let offered_set = match offered.remove("trust") {
        None => None,
        Some(toml::Value::Table(t))
            if t.len() == 1 && t.get("signed_set").is_some_and(|v| v.is_str()) =>
        {
            t.get("signed_set").and_then(|v| v.as_str()).map(PathBuf::from)
        }
        Some(_) => {
            return Err(err(
                "its [trust] may hold `signed_set` alone (a set adding the offer's manifests, signed with the device's trust.public_key)".into(),
            ))
        }
    };
    if let Some(k) = offered.keys().find(|k| !OFFERED_TABLES.contains(&k.as_str())) {
        return Err(err(format!(
            "it sets `{k}`, which an offer may not (only {}, and [trust] signed_set; the rest is the device's own)",
            OFFERED_TABLES.join(", ")
        )));
    }
    let mut merged: toml::Table = toml::from_str(text)
        .map_err(|e| err(format!("the device's file: {}", crate::util::toml_error(text, &e))))?;
    merged.extend(offered.clone());
    let mut cfg = Config::from_table(merged, path, err)?;
    let dir = dir.canonicalize().map_err(|e| err(format!("its folder: {e}")))?;
    let tables: Vec<&str> = offered.keys().map(String::as_str).collect();
    cfg.resolve_tables(&dir, &tables);
    // Without [trust] the device checks manifests by their sha256 alone, as always.
    if let Some(t) = &mut cfg.trust {
        t.offered_set = offered_set.map(|s| dir.join(s));
    }
    cfg.offer = Some(version);
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<OfferedFile> {
        vec![
            OfferedFile {
                name: CONFIG_FILE.into(),
                bytes: b"[recognition]\nmatch_threshold = 0.6\n".to_vec(),
            },
            OfferedFile {
                name: "model.onnx".into(),
                bytes: (0..=255u8).cycle().take(5000).collect(),
            },
        ]
    }

    /// An offer opens only as it was signed and sealed, its files byte for byte; another
    /// signer, a moved version or another transport key are refused, and names that could
    /// leave the offer's folder are refused before anything is written.
    #[test]
    fn an_offer_opens_only_as_signed_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::load_or_create(&dir.path().join("transport.key")).unwrap();
        let signer = SigningKey::from_bytes(&[7u8; 32]);
        let public = signer.verifying_key();
        let m = seal(3, 1_000, &files(), &key, &signer);
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("match_threshold"), "sealed");
        let o = open(&bytes, &key, &public).unwrap();
        assert_eq!((o.version, o.published_ms, &o.files), (3, 1_000, &files()));

        let forged = seal(3, 1_000, &files(), &key, &SigningKey::from_bytes(&[8u8; 32]));
        let forged = serde_json::to_vec(&forged).unwrap();
        assert!(open(&forged, &key, &public).unwrap_err().contains("signature"));
        let mut moved = m.clone();
        moved.body = moved.body.replace("\"version\":3", "\"version\":4");
        let moved = serde_json::to_vec(&moved).unwrap();
        assert!(open(&moved, &key, &public).unwrap_err().contains("signature"));
        let other = Key::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(open(&bytes, &other, &public).unwrap_err().contains("transport_key"));
        // A gallery change's signature does not make an offer.
        let change =
            super::super::channel::sign(b"edgeid fleet gallery change v1\n", m.body, &signer);
        assert!(open(&serde_json::to_vec(&change).unwrap(), &key, &public).is_err());

        for bad in ["../edgeid.toml", "a/b.onnx", ".hidden", ""] {
            let mut f = files();
            f[1].name = bad.into();
            assert!(check_files(&f).is_err(), "{bad:?}");
        }
        assert!(check_files(&files()[1..]).unwrap_err().contains("edgeid.toml"));

        let updates = dir.path().join("updates");
        let staged = stage(&updates, &o).unwrap();
        assert_eq!(std::fs::read(staged.join("model.onnx")).unwrap(), files()[1].bytes);
        let state = State { applied: 3, refused: None, checking: None };
        state.write(&updates).unwrap();
        assert_eq!(State::read(&updates).unwrap(), state);
        assert_eq!(state.applied_dir(&updates), Some(staged));
    }
}
