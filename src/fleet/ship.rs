//! Shipping the journal to the central database (`edgeid ship`, and the daemon's shipper).
//!
//! Each round, for each chained table, the shipper asks the database for the last record it
//! holds of this device (id and hash) and sends the journal's records after it, in order, in
//! transactions of `fleet.batch`, keyed by (device, table, id) so a record sent twice (a
//! commit whose answer was lost) is stored once. Only records that continue the central
//! copy's chain unchanged are sent: a record edited, or a journal rewritten after it was
//! shipped, stops shipping at that record and is reported. The device's chain heads, its
//! gallery version, and what its own verification found (every `fleet.verify_every_s`) are
//! reported each round, so the central copy can show a journal cut short at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::central;
use super::error::FleetError;
use super::health::FleetStatus;
use crate::config::fleet::FleetConfig;
use crate::journal::{chain::GENESIS, Journal, CHAINED_TABLES};

/// What one round did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Round {
    /// Records sent per table (decisions, audits).
    pub shipped: Vec<(String, usize)>,
    /// Decisions the central copy still lacks after the round.
    pub lag: i64,
    /// The last decision id the central copy holds after the round.
    pub central: i64,
    /// A record that stopped shipping, or the device's own verification's finding.
    pub problem: Option<String>,
}

pub struct Shipper {
    cfg: FleetConfig,
    device: String,
    journal: Journal,
    journal_path: PathBuf,
    gallery: PathBuf,
    db: Option<postgres::Client>,
    /// When the journal was last verified whole, and what that found.
    verified: Option<(Instant, Option<String>)>,
}

impl Shipper {
    /// A shipper of the journal at `journal` (read only) for `device`; `gallery` is the file
    /// whose fleet version is reported.
    pub fn new(
        cfg: &FleetConfig,
        device: &str,
        journal: &Path,
        gallery: &Path,
    ) -> Result<Shipper, FleetError> {
        Ok(Shipper {
            cfg: cfg.clone(),
            device: device.to_string(),
            journal: Journal::open_existing(journal)?,
            journal_path: journal.to_path_buf(),
            gallery: gallery.to_path_buf(),
            db: None,
            verified: None,
        })
    }

    /// Ships every `fleet.ship_every_s` until `stop` is set; a failure (the database down) is
    /// logged once, shown on `status`, and retried with back-off up to 30 s.
    pub fn run(mut self, status: &FleetStatus, stop: &AtomicBool) {
        let every = Duration::from_secs_f32(self.cfg.ship_every_s);
        let mut wait = every;
        while !stop.load(Ordering::SeqCst) {
            match self.round(Some(stop)) {
                Ok(round) => {
                    let n: usize = round.shipped.iter().map(|s| s.1).sum();
                    status.shipped.fetch_add(n as u64, Ordering::Relaxed);
                    status.central.store(round.central, Ordering::Relaxed);
                    status.journal_head.fetch_max(round.central + round.lag, Ordering::Relaxed);
                    if status.failing().is_some() {
                        log::info!("fleet: shipping again to {}", self.cfg.database);
                    }
                    status.set_failing(None);
                    wait = every;
                }
                Err(e) => {
                    if status.failing().is_none() {
                        log::warn!("fleet: {e}; retrying");
                    }
                    status.set_failing(Some(e.to_string()));
                    self.db = None;
                    wait = (wait * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                }
            }
            let until = Instant::now() + wait;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // What was journaled until the stop goes now if the database is there (else at the
        // next start).
        let left = match self.db.is_some().then(|| self.round(None)) {
            Some(Ok(round)) => {
                let n: usize = round.shipped.iter().map(|s| s.1).sum();
                status.shipped.fetch_add(n as u64, Ordering::Relaxed);
                status.central.store(round.central, Ordering::Relaxed);
                round.lag
            }
            _ => status.lag(),
        };
        if left > 0 {
            log::warn!(
                "fleet: stopping with {left} decision record(s) not shipped (the central copy holds up to id {}); they go at the next start",
                status.central.load(Ordering::Relaxed)
            );
        }
    }

    /// One round: everything new shipped (until caught up, or `stop`), the device reported.
    pub fn round(&mut self, stop: Option<&AtomicBool>) -> Result<Round, FleetError> {
        let mut db = match self.db.take() {
            Some(db) if !db.is_closed() => db,
            _ => {
                let mut db = central::connect(&self.cfg)?;
                central::require_schema(&mut db)?;
                db
            }
        };
        let round = self.round_on(&mut db, stop)?;
        self.db = Some(db);
        Ok(round)
    }

    fn round_on(
        &mut self,
        db: &mut postgres::Client,
        stop: Option<&AtomicBool>,
    ) -> Result<Round, FleetError> {
        let gallery_version = crate::gallery::Gallery::stored_fleet_version(&self.gallery)?;
        // What the device holds of config offers (an unreadable state is reported as such).
        let offers = match &self.cfg.updates {
            Some(updates) => {
                super::offer::State::read(updates).unwrap_or_else(|why| super::offer::State {
                    applied: 0,
                    refused: Some(super::offer::Refusal { version: 0, why, at_ms: 0 }),
                    checking: None,
                })
            }
            None => super::offer::State::default(),
        };
        let refused = offers.refused.as_ref();
        let checking = offers.checking.as_ref().map(|c| {
            let since = (crate::clock::now_ms() - c.since_ms).max(0) as u64 / 1000;
            format!("offer {}: {} (for {since} s)", c.version, c.stage)
        });
        db.execute(
            "INSERT INTO devices (device, edgeid_version, gallery_version, config_version,
                                  config_refused_version, config_refused, config_checking)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (device) DO UPDATE SET last_contact = now(), edgeid_version = $2,
                 gallery_version = $3, config_version = $4, config_refused_version = $5,
                 config_refused = $6, config_checking = $7",
            &[
                &self.device,
                &env!("CARGO_PKG_VERSION"),
                &gallery_version,
                &offers.applied,
                &refused.map(|r| r.version),
                &refused.map(|r| r.why.as_str()),
                &checking,
            ],
        )
        .map_err(FleetError::db("reporting the device"))?;
        let mut round = Round::default();
        let mut stopped_at = None;
        for table in CHAINED_TABLES {
            let (n, brk) = self.ship_table(db, table, stop)?;
            round.shipped.push((table.to_string(), n));
            if let (None, Some(b)) = (&stopped_at, brk) {
                stopped_at = Some(format!("{table} record {} was not shipped: {}", b.id, b.reason));
            }
        }
        let every = Duration::from_secs_f32(self.cfg.verify_every_s);
        if self.verified.as_ref().is_none_or(|(at, _)| at.elapsed() >= every) {
            let found = self.journal.verify()?.into_iter().find_map(|t| {
                t.broken.map(|b| format!("{} record {}: {}", t.table, b.id, b.reason))
            });
            if let Some(f) = &found {
                log::error!(
                    "fleet: journal {} fails verification: {f}",
                    self.journal_path.display()
                );
            }
            self.verified = Some((Instant::now(), found));
            db.execute("UPDATE devices SET verified_at = now() WHERE device = $1", &[&self.device])
                .map_err(FleetError::db("reporting the device"))?;
        }
        round.problem = match (stopped_at, self.verified.as_ref().and_then(|v| v.1.clone())) {
            (Some(a), Some(b)) => Some(format!("{b}; {a}")),
            (a, b) => a.or(b),
        };
        // The heads are read after shipping: records only grow, so every record shipped is at
        // or below them, and a head below the central copy's last record means a cut.
        let heads: Vec<(i64, String)> =
            CHAINED_TABLES.iter().map(|t| self.journal.last_record(t)).collect::<Result<_, _>>()?;
        db.execute(
            "UPDATE devices SET local_problem = $2, decisions_head_id = $3, decisions_head = $4,
                 audits_head_id = $5, audits_head = $6
             WHERE device = $1",
            &[&self.device, &round.problem, &heads[0].0, &heads[0].1, &heads[1].0, &heads[1].1],
        )
        .map_err(FleetError::db("reporting the device"))?;
        let central: i64 = db
            .query_one(
                "SELECT coalesce(max(id), 0) FROM journal_records WHERE device = $1 AND tbl = 'decisions'",
                &[&self.device],
            )
            .map_err(FleetError::db("reading the central copy"))?
            .get(0);
        round.lag = (heads[0].0 - central).max(0);
        round.central = central;
        Ok(round)
    }

    /// Ships `table`'s records after the central copy's last one; returns how many, and the
    /// record that stopped it, if one did.
    fn ship_table(
        &mut self,
        db: &mut postgres::Client,
        table: &str,
        stop: Option<&AtomicBool>,
    ) -> Result<(usize, Option<crate::journal::Break>), FleetError> {
        let last = db
            .query_opt(
                "SELECT id, hash FROM journal_records WHERE device = $1 AND tbl = $2
                 ORDER BY id DESC LIMIT 1",
                &[&self.device, &table],
            )
            .map_err(FleetError::db("reading the central copy"))?;
        let (mut after, mut prev): (i64, String) =
            last.map_or((0, GENESIS.to_string()), |r| (r.get(0), r.get(1)));
        let insert = db
            .prepare(
                "INSERT INTO journal_records (device, tbl, id, time_ms, prev_hash, hash, record)
                 SELECT $1, $2, r.id, r.time_ms, r.prev_hash, r.hash, r.record::jsonb
                 FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[])
                     AS r(id, time_ms, prev_hash, hash, record)
                 ON CONFLICT (device, tbl, id) DO NOTHING",
            )
            .map_err(FleetError::db("preparing the insert"))?;
        let mut shipped = 0;
        loop {
            let (records, brk) = self.journal.chained_after(table, after, &prev, self.cfg.batch)?;
            if !records.is_empty() {
                let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
                let times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
                let prevs: Vec<&str> = records.iter().map(|r| r.prev_hash.as_str()).collect();
                let hashes: Vec<&str> = records.iter().map(|r| r.hash.as_str()).collect();
                let bodies: Vec<&str> = records.iter().map(|r| r.record.as_str()).collect();
                let mut tx = db.transaction().map_err(FleetError::db("shipping"))?;
                tx.execute(
                    &insert,
                    &[&self.device, &table, &ids, &times, &prevs, &hashes, &bodies],
                )
                .map_err(FleetError::db(format!("shipping {table} after record {after}")))?;
                // The device's head moves with the records in the same transaction, so the
                // central copy never holds records beyond the head it reports (which would
                // read as records removed from the end of the device's journal).
                let end = records.last().expect("not empty");
                tx.execute(
                    &format!(
                        "UPDATE devices SET {table}_head_id = $2, {table}_head = $3
                         WHERE device = $1 AND {table}_head_id < $2"
                    ),
                    &[&self.device, &end.id, &end.hash],
                )
                .map_err(FleetError::db("reporting the device"))?;
                tx.commit()
                    .map_err(FleetError::db(format!("shipping {table} after record {after}")))?;
                shipped += records.len();
                (after, prev) = (end.id, end.hash.clone());
            }
            if brk.is_some() {
                return Ok((shipped, brk));
            }
            if records.len() < self.cfg.batch || stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Ok((shipped, None));
            }
        }
    }
}
