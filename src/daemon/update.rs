//! Config offers on a device: each verified offer (from the fleet's subscriber) checked whole
//! beside the configuration that runs, then applied by restarting on it, or refused with the
//! running configuration kept.
//!
//! The checks are the ones a start would make, and the audit: the device's config file read
//! with the offer over it ([`crate::runtime::load_config_with_offer`]: every key in range, `[trust]`,
//! the thresholds' floors), every model of it loaded (files, hashes, shapes), the gallery opened
//! for its encoder (a gallery of another encoder is refused: fleet galleries carry no crops to
//! re-encode), and the device's generalization audit run on its encoder and journaled (a task
//! below `audit.min_retention` refuses it). Only then is the offer recorded as the one the
//! device runs, and the daemon restarts on it: every camera's open tracks decided, the
//! journal and outputs drained, the process started again with the same arguments.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::fleet::offer::{self, Checking, Offer, Refusal, State};
use crate::fleet::FleetStatus;
use crate::journal::Journal;
use crate::runtime::{Build, Open, Runtime};

use super::control::Control;

/// Takes offers until the daemon stops or one is applied (then asks for the restart).
pub(super) fn updater_loop(
    config_path: &Path,
    updates: &Path,
    offers: Receiver<Offer>,
    control: &Control,
    status: &FleetStatus,
) {
    while !control.stop.load(Ordering::SeqCst) {
        let o = match offers.recv_timeout(Duration::from_millis(200)) {
            Ok(o) => o,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut state = match State::read(updates) {
            Ok(s) => s,
            Err(why) => {
                log::error!("fleet: config offer {} not taken: {why}", o.version);
                continue;
            }
        };
        let running = match state.applied {
            0 => "the device's own config".to_string(),
            v => format!("offer {v}"),
        };
        // Each stage said in the log, on /metrics and (through state.json, which shipping
        // reports) in `fleet status`: an offer's audit takes minutes.
        let progress = |stage: i64, what: &str| {
            log::info!("fleet: config offer {}: {what}", o.version);
            status.offer_checking.store(if stage == 0 { 0 } else { o.version }, Ordering::Relaxed);
            status.offer_stage.store(stage, Ordering::Relaxed);
            let mut now = State::read(updates).unwrap_or_default();
            now.checking = (stage > 0).then(|| Checking {
                version: o.version,
                stage: what.to_string(),
                since_ms: crate::clock::now_ms(),
            });
            if let Err(e) = now.write(updates) {
                log::warn!(
                    "fleet: config offer {}: its progress cannot be recorded ({e})",
                    o.version
                );
            }
        };
        let checked = check(config_path, updates, &o, &progress);
        state.checking = None;
        status.offer_checking.store(0, Ordering::Relaxed);
        status.offer_stage.store(0, Ordering::Relaxed);
        match checked {
            Ok(_) if control.stop.load(Ordering::SeqCst) => {
                // Stopping meanwhile: not applied now; the offer, still retained, is checked
                // again at the next start.
                log::info!("fleet: config offer {} passed its checks as the daemon stops; it is taken again at the next start", o.version);
                let _ = state.write(updates);
                return;
            }
            Ok(audit) => {
                state.applied = o.version;
                if let Err(e) = state.write(updates) {
                    log::error!("fleet: config offer {} passed its checks but cannot be recorded ({e}); keeping {running}", o.version);
                    continue;
                }
                offer::prune(updates, &[o.version]);
                status.config_version.store(o.version, Ordering::Relaxed);
                log::info!("fleet: config offer {} applied ({audit}); restarting on it", o.version);
                control.restart.store(true, Ordering::SeqCst);
                control.stop.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                let why = format!("{e:#}");
                status.offers_refused.fetch_add(1, Ordering::Relaxed);
                log::error!("fleet: config offer {} refused, keeping {running}: {why}", o.version);
                state.refused =
                    Some(Refusal { version: o.version, why, at_ms: crate::clock::now_ms() });
                if let Err(e) = state.write(updates) {
                    log::error!(
                        "fleet: the refusal cannot be recorded in {} ({e})",
                        updates.display()
                    );
                }
                offer::prune(updates, &[state.applied]);
            }
        }
    }
}

/// Stages the offer and checks it as a start would, then audits it; `Ok` says what the audit
/// found.
fn check(
    config_path: &Path,
    updates: &Path,
    o: &Offer,
    progress: &dyn Fn(i64, &str),
) -> anyhow::Result<String> {
    use anyhow::Context;
    progress(1, "received; staging it and reading it over this device's config");
    let dir =
        offer::stage(updates, o).with_context(|| format!("staging it in {}", updates.display()))?;
    let cfg = crate::runtime::load_config_with_offer(config_path, &dir, o.version)?;
    progress(2, "loading its models and the gallery for its encoder");
    // As the daemon would start on it: every model, the taggers it runs, the gallery for its
    // encoder (fleet galleries carry no crops to re-encode).
    let build = Build {
        tags: cfg.tagger.enabled && cfg.tagger.in_daemon,
        gallery: Some((cfg.gallery.path.clone(), Open::Existing)),
    };
    Runtime::build(&cfg, &build).context(
        "starting on it (an encoder change needs the identities published again with it)",
    )?;
    anyhow::ensure!(
        cfg.audit.is_some(),
        "this device has no [audit]: an offer is applied only once the generalization audit has run on it (add [audit], see configs/kiosk.toml)"
    );
    let journal = Journal::open(&cfg.daemon.journal)?;
    progress(3, "running the generalization audit on its encoder (a minute or more)");
    let r = crate::audit::run(&cfg, &crate::audit::Request::default(), Some(&journal))
        .context("its audit")?;
    let below: Vec<String> = r
        .retention
        .iter()
        .filter(|t| t.alert)
        .map(|t| {
            format!("{} {:.3} (nearest class mean {:.3})", t.task, t.retention, t.retention_ncm)
        })
        .collect();
    anyhow::ensure!(
        !r.alert,
        "its audit: {} keeps less than audit.min_retention = {} of {} on {} (journaled as audit {})",
        r.encoder.model.id,
        r.min_retention,
        r.baseline.model.id,
        below.join(", "),
        journal.last_record("audits").map_or("?".into(), |(id, _)| id.to_string())
    );
    Ok(format!(
        "audit: {} keeps {:.1}% of {} overall, every task at or above {}",
        r.encoder.model.id,
        100.0 * r.overall_retention,
        r.baseline.model.id,
        r.min_retention
    ))
}
