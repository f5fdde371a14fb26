//! `[fleet]`: where the device ships its journal, hears of gallery changes and takes config
//! offers (the fleet's work on it is in `crate::fleet`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::util::OutOfRange;

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
            if crate::config::outputs::split_broker(&self.broker).is_none() {
                return Err(bad(
                    "broker",
                    format!("{:?}", self.broker),
                    "host:port of an MQTT broker, e.g. \"127.0.0.1:1883\"",
                ));
            }
            if !public_key_valid(&self.public_key) {
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
        if !crate::config::outputs::topic_level(&self.topic_prefix) {
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

/// Whether `hex` is an ed25519 public key: 64 hex digits that are a point of the curve.
fn public_key_valid(hex: &str) -> bool {
    crate::util::unhex(hex)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
        .is_some()
}
