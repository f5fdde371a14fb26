//! Gallery changes: what is published, how it is sealed and signed, and publishing it.
//!
//! A change travels as `{"body": "<json>", "signature": "<hex>"}`: the body (its version,
//! when it was published, and the change itself sealed under the transport key, bound to
//! the version) signed with ed25519 over a context string and the body's bytes. Only the
//! version is readable on the broker; who is enrolled is not.

use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::central;
use super::channel::{next_version, publisher_keys, retain, sign, verified_body, Message};
use super::error::FleetError;
use crate::config::fleet::FleetConfig;
use crate::gallery::Key;
use crate::util::hex;

/// What a signature covers, before the body.
const CONTEXT: &[u8] = b"edgeid fleet gallery change v1\n";

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The identity, with these templates, replacing any it had.
    Add,
    /// The identity removed.
    Remove,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
        }
    }
}

/// A change in clear (only ever in memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub op: Op,
    pub name: String,
    /// The encoder the templates are of, and their length (an add only).
    #[serde(default)]
    pub model_id: String,
    #[serde(default)]
    pub dim: usize,
    #[serde(default)]
    pub templates: Vec<Vec<f32>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Body {
    version: i64,
    published_ms: i64,
    sealed: String,
}

/// A change whose signature and seal held.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub version: i64,
    pub published_ms: i64,
    pub change: Change,
}

fn aad(version: i64) -> Vec<u8> {
    [CONTEXT, &version.to_le_bytes()].concat()
}

/// The topic a change of `version` is retained under.
pub fn topic(prefix: &str, version: i64) -> String {
    format!("{prefix}/fleet/gallery/{version}")
}

/// The topic filter that takes every change.
pub fn topic_filter(prefix: &str) -> String {
    format!("{prefix}/fleet/gallery/+")
}

/// Seals `change` as version `version` and signs it.
pub fn seal(
    version: i64,
    published_ms: i64,
    change: &Change,
    key: &Key,
    secret: &SigningKey,
) -> Message {
    let clear = serde_json::to_vec(change).expect("a change serialises");
    let body = serde_json::to_string(&Body {
        version,
        published_ms,
        sealed: hex(&key.seal(&clear, &aad(version))),
    })
    .expect("a body serialises");
    sign(CONTEXT, body, secret)
}

/// Checks a received message's signature with `public`, then opens its change with `key`;
/// `Err` says why it is refused.
pub fn open(bytes: &[u8], key: &Key, public: &VerifyingKey) -> Result<Opened, String> {
    let body = verified_body(bytes, CONTEXT, "a gallery change", public)?;
    let body: Body =
        serde_json::from_str(&body).map_err(|e| format!("its body is not a change ({e})"))?;
    let sealed = crate::util::unhex(&body.sealed).ok_or("its sealed change is not hex")?;
    let clear = key.open(&sealed, &aad(body.version)).ok_or_else(|| {
        format!("it does not open with fleet.transport_key {}: the publisher sealed it under another key", key.path().display())
    })?;
    let change: Change =
        serde_json::from_slice(&clear).map_err(|e| format!("its change does not parse ({e})"))?;
    Ok(Opened { version: body.version, published_ms: body.published_ms, change })
}

/// What `publish` did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub version: i64,
    pub op: Op,
    pub name: String,
    pub topic: String,
}

/// Publishes `change` as the next version: stored in the database (the version taken under
/// a lock, so two publishers never take the same one), then retained on the broker.
pub fn publish(
    cfg: &FleetConfig,
    secret: &Path,
    by: &str,
    change: &Change,
) -> Result<Published, FleetError> {
    let (key, signer) = publisher_keys(cfg, secret)?;
    let mut db = central::connect(cfg)?;
    central::require_schema(&mut db)?;
    let mut tx = db.transaction().map_err(FleetError::db("publishing"))?;
    let version = next_version(&mut tx, "gallery_changes")?;
    if change.op == Op::Remove {
        // A removal of a name the fleet does not hold (a typo, or one removed already) would be
        // published, signed and applied as a success that revoked no one.
        let last: Option<String> = tx
            .query_opt(
                "SELECT op FROM gallery_changes WHERE name = $1 ORDER BY version DESC LIMIT 1",
                &[&change.name],
            )
            .map_err(FleetError::db("publishing"))?
            .map(|r| r.get(0));
        if last.as_deref() != Some(Op::Add.as_str()) {
            let enrolled: Vec<String> = tx
                .query(
                    "SELECT name FROM gallery_changes c WHERE version = (SELECT max(version) FROM gallery_changes WHERE name = c.name) AND op = $1 ORDER BY name LIMIT 20",
                    &[&Op::Add.as_str()],
                )
                .map_err(FleetError::db("publishing"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            return Err(FleetError::NotEnrolled {
                name: change.name.clone(),
                why: match last {
                    Some(_) => "it was removed already".into(),
                    None => "no change ever enrolled it".into(),
                },
                enrolled: enrolled.join(", "),
            });
        }
    }
    let message = seal(version, crate::clock::now_ms(), change, &key, &signer);
    let text = serde_json::to_string(&message).expect("a message serialises");
    tx.execute(
        "INSERT INTO gallery_changes (version, op, name, published_by, message) VALUES ($1, $2, $3, $4, $5)",
        &[&version, &change.op.as_str(), &change.name, &by, &text],
    )
    .map_err(FleetError::db("publishing"))?;
    tx.commit().map_err(FleetError::db("publishing"))?;
    let topic = topic(&cfg.topic_prefix, version);
    retain(cfg, &[(topic.clone(), text)]).map_err(|e| FleetError::Broker {
        broker: cfg.broker.clone(),
        why: format!("change {version} is stored in the database but was not published ({e}); run `edgeid fleet republish` once the broker is back"),
    })?;
    Ok(Published { version, op: change.op, name: change.name.clone(), topic })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path) -> (Key, SigningKey) {
        let key = Key::load_or_create(&dir.join("transport.key")).unwrap();
        (key, SigningKey::from_bytes(&[7u8; 32]))
    }

    fn add() -> Change {
        Change {
            op: Op::Add,
            name: "Zoë".into(),
            model_id: "enc@1".into(),
            dim: 3,
            templates: vec![vec![0.1, 0.2, 0.3]],
        }
    }

    /// A change opens only as it was signed and sealed: another signer, an edited body (the
    /// version moved), or another transport key are each refused, and the name is not
    /// readable in the message.
    #[test]
    fn a_change_opens_only_as_signed_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let (key, signer) = keys(dir.path());
        let public = signer.verifying_key();
        let m = seal(4, 1_000, &add(), &key, &signer);
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("Zo"), "the name travels sealed");
        let o = open(&bytes, &key, &public).unwrap();
        assert_eq!((o.version, o.published_ms, &o.change), (4, 1_000, &add()));

        let other = SigningKey::from_bytes(&[8u8; 32]);
        let forged = serde_json::to_vec(&seal(4, 1_000, &add(), &key, &other)).unwrap();
        assert!(open(&forged, &key, &public).unwrap_err().contains("signature"));

        let mut moved = m.clone();
        moved.body = moved.body.replace("\"version\":4", "\"version\":5");
        let moved = serde_json::to_vec(&moved).unwrap();
        assert!(open(&moved, &key, &public).unwrap_err().contains("signature"));

        let other_key = Key::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(open(&bytes, &other_key, &public).unwrap_err().contains("transport_key"));
        assert!(open(b"{}", &key, &public).is_err());
    }
}
