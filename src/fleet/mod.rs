//! The fleet: many devices as one system, on engines that already exist.
//!
//! - **The central record** ([`ship`]): every device ships its journal's chained records
//!   (decisions and audits) to one PostgreSQL database, keyed by device and record id, each
//!   with its chain hash. A device resumes from the central copy's last record, and takes only
//!   records that continue that copy's chain unchanged; it reports its own chain heads and
//!   what its own verification found. So the central copy shows that no shipped record was
//!   edited or removed on the device, the end of the journal included ([`status`]).
//! - **Gallery changes** ([`change`], [`subscribe`]): an identity is published once, as a
//!   versioned change (add with its templates, or remove) sealed for transport under a key the
//!   devices share and signed with ed25519. Each change is kept in PostgreSQL and retained on
//!   the MQTT broker under its own version's topic, so a device that connects gets every
//!   change, and a live one gets a new change at once. A device applies changes in version
//!   order, each in one transaction, refuses a badly signed one and any change not newer than
//!   what it holds (an old change replayed cannot bring back someone removed), and reports the
//!   version it holds.
//!
//! The schema is versioned in `src/fleet/migrations/`, applied by `edgeid fleet migrate`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Mutex;

use serde::Deserialize;

use crate::util::OutOfRange;

mod broker;
pub mod central;
pub mod change;
pub mod channel;
pub mod offer;
pub mod republish;
pub mod ship;
pub mod status;
pub mod subscribe;

/// `[fleet]`: where the device ships its journal and hears of gallery changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The central PostgreSQL database, as libpq takes it: `"host=db.example port=5432
    /// user=edgeid dbname=edgeid"` or `"postgresql://edgeid@db.example/edgeid"`. Empty: the
    /// journal is not shipped.
    #[serde(default)]
    pub database: String,
    /// A file holding the database password (mode 0600; trailing newline dropped).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the database server's certificate must chain to: turns TLS on
    /// (required, verified; rustls).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How often the device ships what is new and reports its heads, seconds.
    #[serde(default = "default_ship_every_s")]
    pub ship_every_s: f32,
    /// How often the device verifies its whole journal and reports what it found, seconds.
    #[serde(default = "default_verify_every_s")]
    pub verify_every_s: f32,
    /// Records per transaction when shipping.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// The MQTT broker (`host:port`) the gallery changes come through. Empty: none.
    #[serde(default)]
    pub broker: String,
    /// CA certificates (PEM) the broker's certificate must chain to: turns TLS on.
    #[serde(default)]
    pub broker_ca_file: Option<PathBuf>,
    /// The user name the broker asks for (with `broker_password_file`).
    #[serde(default)]
    pub broker_username: String,
    /// A file holding the broker password (mode 0600; trailing newline dropped).
    #[serde(default)]
    pub broker_password_file: Option<PathBuf>,
    /// The first level of the fleet's topics (`<prefix>/fleet/gallery/<version>`).
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// The ed25519 public key (64 hex digits) that gallery changes must be signed with.
    #[serde(default)]
    pub public_key: String,
    /// The key (64 hex digits in a 0600 file) that gallery changes' contents are sealed under
    /// for transport; every device of the fleet and the publisher share it.
    #[serde(default)]
    pub transport_key: Option<PathBuf>,
    /// A folder of the device's own where config offers are staged and the one it runs is
    /// recorded (`state.json`): set, the device takes the fleet's config offers (with the
    /// broker); unset, it refuses them all.
    #[serde(default)]
    pub updates: Option<PathBuf>,
}

fn default_ship_every_s() -> f32 {
    1.0
}
fn default_verify_every_s() -> f32 {
    300.0
}
fn default_batch() -> usize {
    1000
}
fn default_topic_prefix() -> String {
    "edgeid".into()
}

impl FleetConfig {
    /// Refuses a setting the fleet cannot run with, naming the key.
    pub fn check(&self) -> Result<(), OutOfRange> {
        let bad = |key: &str, value: String, allowed: &str| OutOfRange {
            key: format!("fleet.{key}"),
            value,
            allowed: allowed.into(),
        };
        if self.database.is_empty() && self.broker.is_empty() {
            return Err(bad(
                "database",
                "\"\"".into(),
                "a PostgreSQL database to ship to, a broker to hear gallery changes from, or both",
            ));
        }
        if !self.database.is_empty() {
            if let Err(e) = self.database.parse::<postgres::Config>() {
                return Err(bad(
                    "database",
                    format!("{:?}", self.database),
                    &format!(
                        "libpq's form, e.g. \"host=127.0.0.1 user=edgeid dbname=edgeid\" ({e})"
                    ),
                ));
            }
        }
        if !self.broker.is_empty() {
            if broker::split(&self.broker).is_none() {
                return Err(bad(
                    "broker",
                    format!("{:?}", self.broker),
                    "host:port of an MQTT broker, e.g. \"127.0.0.1:1883\"",
                ));
            }
            if crate::trust::verifying_key(&self.public_key).is_err() {
                return Err(bad("public_key", format!("{:?}", self.public_key), "the ed25519 public key gallery changes are signed with (64 hex digits, as `edgeid models keygen` prints it)"));
            }
            if self.broker_username.is_empty() != self.broker_password_file.is_none() {
                return Err(bad(
                    "broker_username",
                    format!("{:?}", self.broker_username),
                    "a user name and a broker_password_file together, or neither",
                ));
            }
            if self.transport_key.is_none() {
                return Err(bad("transport_key", "none".into(), "the key file gallery changes are sealed under (the publisher's `edgeid fleet` commands create it)"));
            }
        }
        if self.updates.is_some() && self.broker.is_empty() {
            return Err(bad(
                "updates",
                "set".into(),
                "with a broker: config offers come through it (set fleet.broker, or leave updates out)",
            ));
        }
        if self.topic_prefix.is_empty()
            || self.topic_prefix.contains(['#', '+'])
            || self.topic_prefix.ends_with('/')
        {
            return Err(bad(
                "topic_prefix",
                format!("{:?}", self.topic_prefix),
                "a topic level without wildcards or a trailing /",
            ));
        }
        for (key, v) in
            [("ship_every_s", self.ship_every_s), ("verify_every_s", self.verify_every_s)]
        {
            if !(v.is_finite() && (0.05..=86_400.0).contains(&v)) {
                return Err(bad(key, v.to_string(), "seconds, 0.05 to 86400"));
            }
        }
        if !(1..=100_000).contains(&self.batch) {
            return Err(bad("batch", self.batch.to_string(), "1 to 100000 records"));
        }
        Ok(())
    }
}

impl FleetConfig {
    /// The secret in `path` (the setting `key`), refused if others can read it.
    fn secret(&self, key: &str, path: &std::path::Path) -> Result<String, FleetError> {
        let err = |why: String| FleetError::Key { what: format!("{key} {}", path.display()), why };
        if let Some(mode) = crate::util::exposed(path, 0o077) {
            return Err(err(format!(
                "other users can read it (mode {mode:04o}); run `chmod 600 {}` and change the password if others could read it",
                path.display()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot be read ({e})")))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }

    /// How to reach the broker: its user name and password, and TLS.
    fn broker_access(&self) -> Result<broker::Access, FleetError> {
        let credentials = match &self.broker_password_file {
            Some(path) => {
                Some((self.broker_username.clone(), self.secret("broker_password_file", path)?))
            }
            None => None,
        };
        let tls = match &self.broker_ca_file {
            Some(path) => Some(crate::util::tls_client_trusting(path).map_err(|why| {
                FleetError::Key { what: format!("broker_ca_file {}", path.display()), why }
            })?),
            None => None,
        };
        Ok(broker::Access { credentials, tls })
    }
}

/// Why the fleet's work failed; each names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet database {what}: {why}; check fleet.database and that the server runs and takes this device's connections (nothing is lost: the device ships from where the database's copy ends once it is back)")]
    Database { what: String, why: String },
    #[error("fleet database {what}: {why}")]
    Setup { what: String, why: String },
    #[error("fleet database holds schema version {held}, this edgeid needs {needed}; run `edgeid fleet migrate` with the database owner's config")]
    Schema { held: i32, needed: i32 },
    #[error("fleet broker {broker}: {why}")]
    Broker { broker: String, why: String },
    #[error("fleet {what}: {why}")]
    Key { what: String, why: String },
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Gallery(#[from] crate::gallery::GalleryError),
}

impl FleetError {
    fn db(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> FleetError {
        let what = what.into();
        move |e| FleetError::Database { what, why: postgres_why(&e) }
    }
}

/// A PostgreSQL error in one line: the server's message, or the client's error and its causes
/// (a refused connection, a certificate that does not verify).
fn postgres_why(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    why
}

/// The fleet's state on a device, read by `/metrics`.
#[derive(Debug, Default)]
pub struct FleetStatus {
    /// Records shipped since the start.
    pub shipped: AtomicU64,
    /// Decisions in the journal that the central copy does not hold yet.
    pub lag: AtomicI64,
    /// The version of the gallery changes the device holds.
    pub gallery_version: AtomicI64,
    pub changes_applied: AtomicU64,
    /// Changes refused: badly signed, unreadable, or not newer than what is held.
    pub changes_refused: AtomicU64,
    /// The config offer the device runs (0: none).
    pub config_version: AtomicI64,
    /// Config offers refused: badly signed, not newer than the one run, or failing their checks
    /// or their audit.
    pub offers_refused: AtomicU64,
    /// Why the latest shipping attempt failed, while it has not succeeded since.
    pub failing: Mutex<Option<String>>,
}

impl FleetStatus {
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(text: &str) -> FleetConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn settings_the_fleet_cannot_run_with_are_refused_by_key() {
        let key = |t: &str| fleet(t).check().unwrap_err().key;
        assert_eq!(key(""), "fleet.database");
        assert_eq!(key("database = \"host=db port=eighty\""), "fleet.database");
        assert_eq!(key("broker = \"127.0.0.1:1883\""), "fleet.public_key");
        let public = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737";
        assert_eq!(
            key(&format!("broker = \"127.0.0.1:1883\"\npublic_key = \"{public}\"")),
            "fleet.transport_key"
        );
        assert_eq!(key("database = \"host=db\"\nship_every_s = 0"), "fleet.ship_every_s");
        assert_eq!(key("database = \"host=db\"\nbatch = 0"), "fleet.batch");
        assert_eq!(key("database = \"host=db\"\ntopic_prefix = \"a/#\""), "fleet.topic_prefix");
        fleet(&format!(
            "database = \"host=db user=edgeid\"\nbroker = \"db:1883\"\npublic_key = \"{public}\"\ntransport_key = \"k\""
        ))
        .check()
        .unwrap();
    }
}
