//! The fleet's signed channel: what gallery changes and config offers share. A message is
//! `{"body": "<json>", "signature": "<hex>"}`, the body signed with ed25519 over a context
//! string of its kind (a change's signature does not make an offer); the keys it is sealed and
//! signed with; the versions taken under a lock; and publishing retained on the broker.

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::broker::Session;
use super::error::FleetError;
use crate::config::fleet::FleetConfig;
use crate::gallery::Key;
use crate::util::hex;

/// The message as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub body: String,
    pub signature: String,
}

/// `body` signed with `secret` over `context` and the body's bytes.
pub fn sign(context: &[u8], body: String, secret: &SigningKey) -> Message {
    let signature = secret.sign(&[context, body.as_bytes()].concat());
    Message { body, signature: hex(&signature.to_bytes()) }
}

/// The body of a received message (`what` it should be) whose signature holds with `public`
/// over `context`; `Err` says why it is refused.
pub fn verified_body(
    bytes: &[u8],
    context: &[u8],
    what: &str,
    public: &VerifyingKey,
) -> Result<String, String> {
    let m: Message = serde_json::from_slice(bytes).map_err(|e| format!("not {what} ({e})"))?;
    let signature: [u8; 64] = crate::util::unhex(&m.signature)
        .and_then(|b| b.try_into().ok())
        .ok_or("its signature is not 128 hex digits")?;
    public
        .verify(&[context, m.body.as_bytes()].concat(), &Signature::from_bytes(&signature))
        .map_err(|_| "its signature does not verify with fleet.public_key: forged, altered, or signed with another key".to_string())?;
    Ok(m.body)
}

/// The transport key of `fleet.transport_key`, created (0600) if missing and `create`.
pub fn transport_key(cfg: &FleetConfig, create: bool) -> Result<Key, FleetError> {
    let path = cfg.transport_key.as_deref().ok_or_else(|| FleetError::Key {
        what: "transport_key".into(),
        why: "not set; name the key file gallery changes are sealed under in [fleet]".into(),
    })?;
    let key = if create { Key::load_or_create(path) } else { Key::load(path) };
    key.map_err(|e| FleetError::Key { what: "transport_key".into(), why: e.to_string() })
}

/// The device's transport key (never created there: it must be the publisher's).
pub fn device_key(cfg: &FleetConfig) -> Result<Key, FleetError> {
    transport_key(cfg, false)
}

/// The transport key and the signing key a publisher seals and signs with.
pub fn publisher_keys(cfg: &FleetConfig, secret: &Path) -> Result<(Key, SigningKey), FleetError> {
    // Made by `fleet migrate`, never here: a key made now would not be the devices' one.
    let key = transport_key(cfg, false).map_err(|e| match e {
        // Said once: the inner error already names `fleet transport_key`.
        FleetError::Key { what, why } => FleetError::Key {
            what,
            why: format!("{why}; `edgeid fleet migrate` creates it, then copy it to every device"),
        },
        other => other,
    })?;
    Ok((key, signer(cfg, secret)?))
}

/// The next version of `table` (`gallery_changes` or `config_offers`), taken under a lock
/// held until the transaction ends, so two publishers never take the same one.
pub fn next_version(tx: &mut postgres::Transaction, table: &str) -> Result<i64, FleetError> {
    tx.execute(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"), &[])
        .map_err(FleetError::db("publishing (taking the lock)"))?;
    Ok(tx
        .query_one(&format!("SELECT coalesce(max(version), 0) + 1 FROM {table}"), &[])
        .map_err(FleetError::db("publishing"))?
        .get(0))
}

/// The secret key at `secret`, refused unless its public key is `fleet.public_key` (the
/// devices would refuse what it signs).
pub fn signer(cfg: &FleetConfig, secret: &Path) -> Result<SigningKey, FleetError> {
    let signer = crate::trust::signing_key(secret)
        .map_err(|e| FleetError::Key { what: "signing key".into(), why: e.to_string() })?;
    let public = hex(signer.verifying_key().as_bytes());
    if !cfg.public_key.is_empty() && cfg.public_key != public {
        return Err(FleetError::Key {
            what: format!("signing key {}", secret.display()),
            why: format!("its public key is {public}, but fleet.public_key is {}: devices would refuse what it signs; use the key that matches", cfg.public_key),
        });
    }
    Ok(signer)
}

/// Publishes each (topic, message) retained, waiting for every acknowledgement.
pub fn retain(cfg: &FleetConfig, messages: &[(String, String)]) -> Result<(), FleetError> {
    if cfg.broker.is_empty() {
        return Err(FleetError::Broker {
            broker: String::new(),
            why: "fleet.broker is not set: devices hear of changes through it".into(),
        });
    }
    let timeout = Duration::from_secs(10);
    let id = format!("edgeid-publisher-{}", std::process::id());
    let mut session = Session::connect(&cfg.broker, &cfg.broker_access()?, &id, timeout)?;
    for (topic, text) in messages {
        session.publish(topic, text.as_bytes(), true, timeout)?;
    }
    session.disconnect();
    Ok(())
}
