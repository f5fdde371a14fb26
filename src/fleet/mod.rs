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

pub use crate::config::fleet::FleetConfig;

mod broker;
pub mod central;
pub mod change;
pub mod channel;
pub mod error;
pub mod health;
pub mod offer;
pub mod republish;
mod secret;
pub mod ship;
pub mod status;
pub mod subscribe;

pub use error::FleetError;
pub use health::FleetStatus;

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
