//! `edgeid fleet status`: each device as the central database sees it, its chains checked.
//!
//! For each device and chained table: the central copy's own chain (each record links to the
//! one before, ids without a gap), and the device's last report against it: a head below
//! the central copy's last record means records were removed from the end of the device's
//! journal; a head whose hash is not the central copy's for that id means the journal was
//! rewritten. What the device's own verification found is shown as it reported it.

use serde::Serialize;

use super::central;
use super::error::FleetError;
use crate::config::fleet::FleetConfig;
use crate::journal::chain::GENESIS;

/// One device.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub device: String,
    pub edgeid_version: String,
    /// Seconds since the device last reported.
    pub since_contact_s: f64,
    pub gallery_version: i64,
    /// The config offer the device runs (0: its own config alone).
    pub config_version: i64,
    /// The latest offer it refused and why, as it reported it.
    pub config_refused: Option<String>,
    /// The offer it is checking now and how far, as it last reported it.
    pub config_checking: Option<String>,
    /// Decisions and audits held centrally.
    pub decisions: i64,
    pub audits: i64,
    /// Decisions on the device the central copy lacks (as of its last report).
    pub lag: i64,
    /// Every problem found; empty when the chains hold.
    pub problems: Vec<String>,
}

/// The fleet.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub gallery_published: i64,
    pub config_published: i64,
    pub devices: Vec<Device>,
}

impl Fleet {
    pub fn problems(&self) -> usize {
        self.devices.iter().map(|d| d.problems.len()).sum()
    }
}

pub fn report(cfg: &FleetConfig) -> Result<Fleet, FleetError> {
    let mut db = central::connect(cfg)?;
    central::require_schema(&mut db)?;
    let q = FleetError::db("reading the fleet");
    let published = db
        .query_one(
            "SELECT (SELECT coalesce(max(version), 0) FROM gallery_changes),
                    (SELECT coalesce(max(version), 0) FROM config_offers)",
            &[],
        )
        .map_err(q)?;
    let rows = db
        .query(
            "SELECT device, edgeid_version, extract(epoch FROM now() - last_contact)::float8,
                    gallery_version, decisions_head_id, decisions_head, audits_head_id,
                    audits_head, local_problem, config_version, config_refused_version,
                    config_refused, config_checking
             FROM devices ORDER BY device",
            &[],
        )
        .map_err(FleetError::db("reading the devices"))?;
    let mut devices = Vec::new();
    for r in rows {
        let device: String = r.get(0);
        let mut d = Device {
            device: device.clone(),
            edgeid_version: r.get(1),
            since_contact_s: r.get(2),
            gallery_version: r.get(3),
            config_version: r.get(9),
            config_refused: r.get::<_, Option<i64>>(10).map(|v| {
                format!("offer {v}: {}", r.get::<_, Option<String>>(11).unwrap_or_default())
            }),
            config_checking: r.get(12),
            decisions: 0,
            audits: 0,
            lag: 0,
            problems: Vec::new(),
        };
        if let Some(p) = r.get::<_, Option<String>>(8) {
            d.problems.push(format!("the device's journal: {p}"));
        }
        for (table, head_id, head) in [
            ("decisions", r.get::<_, i64>(4), r.get::<_, String>(5)),
            ("audits", r.get::<_, i64>(6), r.get::<_, String>(7)),
        ] {
            let (count, max_id) =
                check_table(&mut db, &device, table, head_id, &head, &mut d.problems)?;
            match table {
                "decisions" => {
                    d.decisions = count;
                    d.lag = (head_id - max_id).max(0);
                }
                _ => d.audits = count,
            }
        }
        devices.push(d);
    }
    Ok(Fleet { gallery_published: published.get(0), config_published: published.get(1), devices })
}

/// Checks the central copy of `device`'s `table` and the device's reported head against it;
/// returns (records held, last id).
fn check_table(
    db: &mut postgres::Client,
    device: &str,
    table: &str,
    head_id: i64,
    head: &str,
    problems: &mut Vec<String>,
) -> Result<(i64, i64), FleetError> {
    let q = || FleetError::db(format!("checking {device}'s {table}"));
    let row = db
        .query_one(
            "SELECT count(*), coalesce(max(id), 0) FROM journal_records WHERE device = $1 AND tbl = $2",
            &[&device, &table],
        )
        .map_err(q())?;
    let (count, max_id): (i64, i64) = (row.get(0), row.get(1));
    // The central copy's own links: the first record starts the chain, each next one links
    // to the one before it and follows it by id.
    let broken = db
        .query_opt(
            "SELECT id, coalesce(before_id, 0), prev_hash = coalesce(before_hash, $3) FROM (
                 SELECT id, prev_hash,
                        lag(id) OVER (ORDER BY id) AS before_id,
                        lag(hash) OVER (ORDER BY id) AS before_hash
                 FROM journal_records WHERE device = $1 AND tbl = $2) c
             WHERE prev_hash <> coalesce(before_hash, $3)
                OR (before_id IS NOT NULL AND id <> before_id + 1)
             ORDER BY id LIMIT 1",
            &[&device, &table, &GENESIS],
        )
        .map_err(q())?;
    if let Some(b) = broken {
        let (id, before, linked): (i64, i64, bool) = (b.get(0), b.get(1), b.get(2));
        problems.push(if linked {
            format!("the central copy of {table}: records {}..={} are missing", before + 1, id - 1)
        } else {
            format!("the central copy of {table}: record {id} does not link to the record before it (edited in the database)")
        });
    }
    if head_id < max_id {
        problems.push(format!(
            "{table}: the device's journal ends at record {head_id}, but records up to {max_id} were shipped: records {}..={max_id} were removed from the end of the device's journal",
            head_id + 1
        ));
    } else if head_id > 0 && head_id <= max_id {
        let central: Option<String> = db
            .query_opt(
                "SELECT hash FROM journal_records WHERE device = $1 AND tbl = $2 AND id = $3",
                &[&device, &table, &head_id],
            )
            .map_err(q())?
            .map(|r| r.get(0));
        if central.as_deref().is_some_and(|c| c != head) {
            problems.push(format!(
                "{table}: the device's record {head_id} is not the one shipped (hash {head}, central {}): the device's journal was rewritten",
                central.unwrap_or_default()
            ));
        }
    }
    Ok((count, max_id))
}
