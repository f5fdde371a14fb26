//! `edgeid fleet republish`: every stored gallery change and the latest config offer
//! published again, retained, for a broker that lost them or was down when they were published.

use super::error::FleetError;
use super::{central, change, channel, offer};
use crate::config::fleet::FleetConfig;

/// Publishes every stored change and the latest config offer again (retained), for a broker
/// that lost them or was down when one was published; returns how many changes, and the
/// offer's version.
pub fn republish(cfg: &FleetConfig) -> Result<(usize, Option<i64>), FleetError> {
    let mut db = central::connect(cfg)?;
    central::require_schema(&mut db)?;
    let rows = db
        .query("SELECT version, message FROM gallery_changes ORDER BY version", &[])
        .map_err(FleetError::db("reading the gallery changes"))?;
    let mut all: Vec<(String, String)> =
        rows.iter().map(|r| (change::topic(&cfg.topic_prefix, r.get(0)), r.get(1))).collect();
    let changes = all.len();
    let offer = offer::latest(cfg, &mut db)?;
    let version = offer.as_ref().map(|(v, _, _)| *v);
    all.extend(offer.map(|(_, topic, message)| (topic, message)));
    channel::retain(cfg, &all)?;
    Ok((changes, version))
}
