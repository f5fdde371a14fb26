//! `edgeid run`: the daemon. Per camera, a capture thread feeds a bounded queue (drop-oldest)
//! and an inference worker runs detect → align → encode → track → decide on it; decisions go
//! to one journal writer. Start-up loads and checks everything (config, models, gallery,
//! journal, cameras) before the first frame, so a bad setup fails at once with one message;
//! once running, a camera that fails is retried with back-off instead of ending the daemon.
//!
//! Stop (SIGINT/SIGTERM): capture stops, the queued frames are processed, open tracks are
//! decided and journaled, then `run` returns. Reload (SIGHUP): the gallery and thresholds are
//! read again from the config file; a bad new config is logged and the old one kept.

pub mod api;
pub mod control;
pub mod http;
pub mod metrics;
pub mod queue;
mod update;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::capture::{CaptureError, Source};
use crate::config::{Config, SourceConfig};
use crate::decide::Decision;
use crate::gallery::Gallery;
use crate::journal::Journal;
use crate::outputs::Output;
use crate::pipeline::FramePath;
use crate::runtime::{self, Open, Runtime};
use crate::track::Tracker;

pub use self::control::Control;
use self::metrics::Metrics;

/// How long outputs go on delivering once the daemon stops.
const OUTPUT_DRAIN: Duration = Duration::from_secs(10);
/// How often stored face crops are checked against their retention.
const CROP_PRUNE_EVERY: Duration = Duration::from_secs(60);
use self::queue::{FrameQueue, Popped};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop each source after this many frames.
    pub max_frames: Option<u64>,
}

/// What a run did, per camera and in all.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub cameras: Vec<CameraSummary>,
    pub decisions: u64,
    /// From each person's first frame to their decision being journaled: what someone at the
    /// door waits. `None` when nothing was decided.
    pub decision_latency_ms: Option<Latency>,
    /// Peak resident memory of the process, KiB (Linux VmHWM).
    pub peak_rss_kib: Option<u64>,
    pub seconds: f64,
    /// The daemon stopped to start again on a config offer it applied.
    pub restart: bool,
}

/// Latencies of a run (decisions, or frames), milliseconds: the median of the latest
/// [`Latencies::KEPT`], the largest of all.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub count: u64,
    pub median: i64,
    pub max: i64,
}

/// The latencies the journal writer (or a capture thread) saw: a bounded window for the
/// median (a daemon runs for months), the count and the largest over the whole run.
#[derive(Default)]
struct Latencies {
    recent: std::collections::VecDeque<i64>,
    n: u64,
    max: i64,
}

impl Latencies {
    const KEPT: usize = 4096;

    fn add(&mut self, ms: i64) {
        if self.recent.len() == Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        self.n += 1;
        self.max = self.max.max(ms);
    }

    fn summary(&self) -> Option<Latency> {
        let mut v: Vec<i64> = self.recent.iter().copied().collect();
        v.sort_unstable();
        let median = *v.get(v.len() / 2)?;
        Some(Latency { count: self.n, median, max: self.max })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraSummary {
    pub camera: String,
    pub frames_in: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    pub frames_bad: u64,
    /// Faces encoded, and faces that continued a decided track unencoded
    /// (`tracker.reencode_every_frames`).
    pub faces_encoded: u64,
    pub faces_carried: u64,
    /// Most frames ever waiting in the queue (bounded by daemon.queue_capacity).
    pub queue_high_water: usize,
    /// From each frame's capture time (a network camera's: when it reached the device, as
    /// its RTP timestamps pace it) to its place in the queue: what the source's decoding
    /// adds before inference sees the frame.
    pub frame_age_ms: Option<Latency>,
}

/// Runs the daemon described by the config file until every source ends or `control.stop`.
pub fn run(
    config_path: &Path,
    options: &RunOptions,
    control: &Control,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    tune_allocator();
    let cfg = runtime::load_config(config_path)?;
    if cfg.sources.is_empty() {
        anyhow::bail!(
            "config {}: no [[sources]] configured; add a v4l2 camera or a replay folder (see configs/kiosk.toml)",
            config_path.display()
        );
    }
    // A scheduled audit that could never run is a start-up error, not a log line a day later:
    // check the set and the baseline's manifest now.
    if let Some(a) = cfg.audit.as_ref().filter(|a| a.every_hours > 0.0) {
        crate::audit::AuditSet::load(&a.set, a.shots)?;
        if !a.baseline_is_pixels() {
            crate::manifest::Manifest::load(&a.baseline)?;
        }
    }
    for warning in runtime::licence_warnings(&cfg) {
        log::warn!("{warning}");
    }
    let journal = Journal::open(&cfg.daemon.journal)?;
    // Never append to a journal whose chain is broken (an edited or removed record): the
    // operator must see it, and keep the file as it is as evidence.
    for t in journal.ensure_sound()? {
        log::info!(
            "journal {}: {} {} records verified",
            cfg.daemon.journal.display(),
            t.records,
            t.table
        );
    }
    // The journal's last record id, kept by the writer: outputs and the fleet read their lag
    // against it whenever asked.
    let journal_head = Arc::new(std::sync::atomic::AtomicI64::new(journal.last_id()?));
    // Outputs open now: a webhook's missing key stops the start, not the first decision.
    let device = cfg.daemon.device_id();
    let cameras: Vec<String> = cfg.sources.iter().map(|s| s.name().to_string()).collect();
    let outputs = cfg
        .outputs
        .iter()
        .map(|o| {
            let status =
                Arc::new(crate::outputs::OutputStatus::new(o.name(), journal_head.clone()));
            let output = Output::open(o, &status, &cfg.daemon.journal, &device, &cameras)?;
            Ok((output, status))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (encoder_id, _) = runtime::encoder_identity(&cfg)?;
    let fleet = cfg.fleet.as_ref();
    let hears_fleet = fleet.is_some_and(|f| !f.broker.is_empty());
    if let Some(f) = fleet.filter(|_| hears_fleet) {
        // Before any file is made: a door without the fleet's transport key cannot start.
        crate::fleet::channel::device_key(f)?;
    }
    if (cfg.api.is_some() || hears_fleet) && !cfg.gallery.path.exists() {
        // A new device is set up through the operator API or the fleet's gallery changes: it
        // starts with an empty gallery.
        let path = &cfg.gallery.path;
        runtime::gallery(&cfg, path, Open::CreateIfMissing)?;
        log::info!(
            "gallery {} created empty, for enrolment through the operator API or the fleet",
            path.display()
        );
    }
    // Every worker gets its own pipeline and gallery handle; load them all before any frame.
    let mut built = Vec::new();
    for _ in &cfg.sources {
        let build = runtime::Build {
            tags: cfg.tagger.enabled && cfg.tagger.in_daemon,
            gallery: Some((cfg.gallery.path.clone(), Open::Existing)),
        };
        let Runtime { path, gallery } = Runtime::build(&cfg, &build)?;
        built.push((path, gallery.expect("built with its gallery")));
    }
    // Then open each source once: a missing camera or replay folder is a start-up error. Opened
    // after every model is loaded, so that a network camera's first frames are not dropped
    // while the next camera's models load.
    let mut workers = Vec::new();
    for (source, (path, gallery)) in cfg.sources.iter().zip(built) {
        let opened = source.open().with_context(|| format!("source `{}`", source.name()))?;
        workers.push((source.clone(), opened, path, gallery));
    }
    // The fleet's parts open now too: a database URL that does not parse or a missing
    // transport key stops the start; a database or broker that is down does not.
    let fleet_status =
        fleet.map(|_| Arc::new(crate::fleet::FleetStatus::new(journal_head.clone())));
    let shipper = match fleet.filter(|f| !f.database.is_empty()) {
        Some(f) => Some(crate::fleet::ship::Shipper::new(
            f,
            &device,
            &cfg.daemon.journal,
            &cfg.gallery.path,
        )?),
        None => None,
    };
    let mut updater = None;
    let subscriber = match fleet.filter(|f| !f.broker.is_empty()) {
        Some(f) => {
            let gallery = runtime::gallery(&cfg, &cfg.gallery.path, Open::Existing)?;
            let sub = crate::fleet::subscribe::Subscriber::new(f, &device, gallery, &encoder_id)?;
            Some(match &f.updates {
                Some(updates) => {
                    let (tx, rx) = mpsc::channel();
                    updater = Some((updates.clone(), rx));
                    sub.with_offers(tx)
                }
                None => sub,
            })
        }
        None => None,
    };
    if let Some(v) = cfg.offer {
        log::info!(
            "config {}: running the fleet's config offer {v} over it",
            config_path.display()
        );
    }
    let names: Vec<String> = cfg.sources.iter().map(|s| s.name().to_string()).collect();
    let mut metrics = Metrics::new(&names);
    metrics.journal_head = journal_head.clone();
    metrics.outputs = outputs.iter().map(|(_, status)| status.clone()).collect();
    metrics.fleet = fleet_status.clone();
    if let Some(status) = &fleet_status {
        status.config_version.store(cfg.offer.unwrap_or(0), Ordering::Relaxed);
    }
    let metrics = Arc::new(metrics);
    let http = http::start(&cfg.daemon.http, metrics.clone(), control.stop.clone())?;
    let operator_api = match &cfg.api {
        // A failed start ends the endpoint started before it.
        Some(a) => Some(
            api::start(&cfg, a, metrics.clone(), control)
                .inspect_err(|_| control.stop.store(true, Ordering::SeqCst))?,
        ),
        None => None,
    };
    // Outputs and shipping stop when the journal is closed, not at the signal: the decisions
    // taken at stop (open tracks decided) are journaled after it, and must leave too.
    let journal_closed = Arc::new(AtomicBool::new(false));
    let output_threads: Vec<_> = outputs
        .into_iter()
        .map(|(output, status)| {
            let closed = journal_closed.clone();
            thread::spawn(move || output.run(&status, &closed, OUTPUT_DRAIN))
        })
        .collect();
    let fleet_threads: Vec<_> = [
        shipper.map(|sh| {
            let (status, closed) =
                (fleet_status.clone().expect("with [fleet]"), journal_closed.clone());
            thread::spawn(move || sh.run(&status, &closed))
        }),
        subscriber.map(|sub| {
            let (status, stop) =
                (fleet_status.clone().expect("with [fleet]"), control.stop.clone());
            thread::spawn(move || sub.run(&status, &stop))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Not waited for at the end, as an audit is not: checking an offer audits it (a minute on
    // a small CPU), and a stop must not wait for that. An offer checked halfway is taken again
    // at the next start (it stays retained on the broker).
    let _updater = updater.map(|(updates, offers)| {
        let status = fleet_status.clone().expect("with [fleet]");
        let (path, control) = (config_path.to_path_buf(), control.clone());
        thread::spawn(move || {
            lower_priority();
            update::updater_loop(&path, &updates, offers, &control, &status);
        })
    });
    log::info!(
        "edgeid running: {} source(s), journal {}; thresholds: match {}, live {}, bona fide {}",
        names.len(),
        cfg.daemon.journal.display(),
        cfg.recognition.match_threshold,
        if cfg.policy.require_live { cfg.pad.threshold.to_string() } else { "not required".into() },
        if cfg.policy.require_bona_fide {
            cfg.mad.threshold.to_string()
        } else {
            "not required".into()
        },
    );

    let (tx, rx) = mpsc::channel::<Decision>();
    let writer_metrics = metrics.clone();
    let writer_stop = control.stop.clone();
    let store_crops = cfg.daemon.store_crops;
    let retention = (
        Duration::from_secs_f32(cfg.daemon.keep_crops_days * 86_400.0),
        (cfg.daemon.max_crops_mib as f64 * 1024.0 * 1024.0) as u64,
    );
    let writer = thread::spawn(move || -> anyhow::Result<(u64, Latencies)> {
        let (mut n, mut latencies) = (0, Latencies::default());
        let mut pruned_at: Option<std::time::Instant> = None;
        loop {
            // Stored face crops past their retention go, the records and their chain staying:
            // at start (crops stored under an earlier config too), then every minute while
            // crops are stored.
            if pruned_at.is_none_or(|t| store_crops && t.elapsed() >= CROP_PRUNE_EVERY) {
                pruned_at = Some(std::time::Instant::now());
                let before = crate::clock::now_ms() - retention.0.as_millis() as i64;
                match journal.prune_crops(before, retention.1) {
                    Ok((0, _)) => {}
                    Ok((crops, bytes)) => log::info!(
                        "journal: {crops} face crop(s) past daemon.keep_crops_days or max_crops_mib removed ({} KiB)",
                        bytes / 1024
                    ),
                    Err(e) => log::warn!("journal: removing old face crops: {e:#}"),
                }
            }
            let mut d = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(d) => d,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                // While nobody passes: a journal removed or replaced under the daemon makes it
                // unhealthy now (and takes no decision), not at the next person.
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = journal.in_place() {
                        if writer_metrics.journal_failing().is_none() {
                            log::error!("{e}");
                        }
                        writer_metrics.set_journal_failing(Some(e.to_string()));
                    }
                    continue;
                }
            };
            d.device.clone_from(&device);
            let id = journal_until_written(&journal, &d, &writer_metrics, &writer_stop)?;
            let waited_ms = crate::clock::now_ms() - d.first_seen_ms;
            latencies.add(waited_ms);
            writer_metrics.observe("first_frame_to_journal", waited_ms as f64 / 1000.0);
            let reasons = d.reasons.join(",");
            writer_metrics.decision(d.outcome.as_str(), &reasons);
            writer_metrics.camera_decision(&d.camera, &d.reasons);
            // The system log is no record of who came and went (the journal is, under its own
            // access rules): at INFO the record's id and outcome, the name only at DEBUG.
            log::info!(
                "decision {id}: camera {} track {} {} {}",
                d.camera,
                d.track_id,
                d.outcome.as_str(),
                if reasons.is_empty() { "" } else { &reasons }
            );
            if let Some(who) = &d.identity {
                log::debug!("decision {id}: {who}");
            }
            n += 1;
        }
        Ok((n, latencies))
    });

    let auditor = match cfg.audit.as_ref().filter(|a| a.every_hours > 0.0) {
        Some(a) => {
            let every = Duration::from_secs_f64(a.every_hours as f64 * 3600.0);
            let (cfg, metrics, stop) = (cfg.clone(), metrics.clone(), control.stop.clone());
            Some(thread::spawn(move || audit_loop(&cfg, every, &metrics, &stop)))
        }
        None => None,
    };

    let mut handles = Vec::new();
    for (source_cfg, opened, frame_path, gallery) in workers {
        let source = source_cfg.name().to_string();
        metrics.beat(&source);
        let queue = Arc::new(FrameQueue::new(cfg.daemon.queue_capacity));
        let capture = {
            let (queue, metrics, control, options) =
                (queue.clone(), metrics.clone(), control.clone(), options.clone());
            let retry = (cfg.daemon.retry_initial_s, cfg.daemon.retry_max_s);
            thread::spawn(move || {
                capture_loop(source_cfg, opened, &queue, &metrics, &control, &options, retry)
            })
        };
        let worker = {
            let (queue, metrics, control, tx) =
                (queue.clone(), metrics.clone(), control.clone(), tx.clone());
            let cfg = cfg.clone();
            let path = config_path.to_path_buf();
            thread::spawn(move || {
                // A worker that panics (a bug: frame errors are skipped, not raised) stops
                // the daemon, so it exits non-zero and systemd restarts it, instead of
                // capture filling a queue nobody drains. Built with panic = "abort" (the
                // `device` profile) the process ends at once, to the same effect.
                let work = || {
                    let place = (source.as_str(), &*queue);
                    worker_loop(&path, cfg, frame_path, gallery, place, &metrics, &control, tx)
                };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                if outcome.is_err() {
                    control.stop.store(true, Ordering::SeqCst);
                }
                outcome
            })
        };
        handles.push((capture, worker, queue));
    }
    drop(tx);
    // systemd (Type=notify): ready once every camera's worker runs; the watchdog is fed while
    // each worker goes round its loop. Outside systemd (no NOTIFY_SOCKET) these do nothing.
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("running: {} source(s)", names.len())),
    ]);
    let watchdog = sd_notify::watchdog_enabled().map(|interval| {
        let (metrics, stop) = (metrics.clone(), control.stop.clone());
        thread::spawn(move || feed_watchdog(interval, &metrics, &stop))
    });

    let mut cameras = Vec::new();
    let mut failure = None;
    for ((capture, worker, queue), name) in handles.into_iter().zip(&names) {
        let ages = capture.join().unwrap_or_default();
        if let Err(e) = worker
            .join()
            .and_then(|outcome| outcome)
            .unwrap_or_else(|_| Err(anyhow::anyhow!("worker of {name} panicked")))
        {
            failure.get_or_insert(e);
        }
        let c = metrics.camera(name);
        cameras.push(CameraSummary {
            camera: name.clone(),
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_processed: c.frames_processed.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            frames_bad: c.frames_bad.load(Ordering::Relaxed),
            faces_encoded: c.faces_encoded.load(Ordering::Relaxed),
            faces_carried: c.faces_carried.load(Ordering::Relaxed),
            queue_high_water: queue.high_water(),
            frame_age_ms: ages.summary(),
        });
    }
    let written = writer.join().map_err(|_| anyhow::anyhow!("journal writer panicked"));
    control.stop.store(true, Ordering::SeqCst);
    journal_closed.store(true, Ordering::SeqCst);
    let (decisions, latencies) = written??;
    // Outputs finish what was journaled, for at most OUTPUT_DRAIN (the rest goes at the next
    // start: their cursors are in the journal).
    for t in output_threads.into_iter().chain(fleet_threads) {
        let _ = t.join();
    }
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    // An audit in progress is abandoned, not waited for (the first one with a new baseline
    // takes about a minute): it writes nothing until it completes.
    drop(auditor);
    for h in http.into_iter().chain(operator_api) {
        let _ = h.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(RunSummary {
        cameras,
        decisions,
        decision_latency_ms: latencies.summary(),
        peak_rss_kib: peak_rss_kib(),
        seconds: started.elapsed().as_secs_f64(),
        restart: control.restart.load(Ordering::SeqCst)
            && !control.terminate.load(Ordering::SeqCst),
    })
}

/// Feeds the systemd watchdog (`WatchdogSec=`) at half its interval while every camera's
/// worker went round its loop within the interval; a worker stuck longer (a model that hangs)
/// starves it, and systemd restarts the service. Says STOPPING=1 when the daemon stops.
fn feed_watchdog(interval: Duration, metrics: &Metrics, stop: &AtomicBool) {
    let mut starving = false;
    while !stop.load(Ordering::SeqCst) {
        let stalled = metrics.stalled(interval);
        if stalled.is_empty() {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            starving = false;
        } else if !starving {
            log::error!(
                "the worker of {} has not gone round its loop for over {:.0?}; not feeding the systemd watchdog (systemd restarts the service)",
                stalled.join(", "),
                interval
            );
            starving = true;
        }
        sleep_unless_stopped(interval / 2, stop);
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Writes one decision, retrying every second while the journal refuses it (a full disk, a
/// lock held by another program, an I/O error): meanwhile `/healthz` answers 503 and the
/// workers take no decision, so nothing is decided that is not journaled, and the decisions
/// already made wait here, in order, instead of being dropped. Gives up only when the daemon
/// is stopping, with an error that says the decision was not journaled (non-zero exit).
fn journal_until_written(
    journal: &Journal,
    d: &Decision,
    metrics: &Metrics,
    stop: &AtomicBool,
) -> anyhow::Result<i64> {
    let mut failures = 0u64;
    loop {
        match journal.append(d) {
            Ok(id) => {
                metrics.journal_head.fetch_max(id, Ordering::Relaxed);
                if failures > 0 {
                    log::warn!(
                        "journal writable again after {failures} failed attempt(s); deciding again"
                    );
                    metrics.set_journal_failing(None);
                }
                return Ok(id);
            }
            Err(e) => {
                failures += 1;
                metrics.journal_failures.fetch_add(1, Ordering::Relaxed);
                if failures == 1 {
                    log::error!(
                        "cannot write a decision to the journal ({e:#}); taking no decision until it can, retrying every second"
                    );
                }
                metrics.set_journal_failing(Some(format!("{e:#}")));
                if stop.load(Ordering::SeqCst) {
                    return Err(anyhow::Error::from(e).context(format!(
                        "stopping with a decision not journaled (camera {}, track {}, {})",
                        d.camera,
                        d.track_id,
                        d.outcome.as_str()
                    )));
                }
                thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Reads frames into the queue until the source ends, `max_frames`, or stop. A failing camera
/// is reopened with exponential back-off; an undecodable frame is counted and skipped. Every
/// source (V4L2, RTSP, a pipeline, a replay) goes through this one loop: one reconnect and
/// one drop policy. Returns each frame's age when queued.
fn capture_loop(
    source_cfg: SourceConfig,
    opened: Box<dyn Source>,
    queue: &FrameQueue,
    metrics: &Metrics,
    control: &Control,
    options: &RunOptions,
    (retry_initial, retry_max): (f32, f32),
) -> Latencies {
    let m = metrics.camera(source_cfg.name());
    let mut ages = Latencies::default();
    let mut source = Some(opened);
    let mut backoff = retry_initial;
    let mut count = 0u64;
    while !control.stop.load(Ordering::SeqCst) && options.max_frames.is_none_or(|max| count < max) {
        let Some(src) = source.as_mut() else {
            m.reconnects.fetch_add(1, Ordering::Relaxed);
            match source_cfg.open() {
                Ok(s) => {
                    log::info!("source {}: reopened", source_cfg.name());
                    source = Some(s);
                    backoff = retry_initial;
                }
                Err(e) => {
                    log::warn!("{e}; retrying in {backoff:.0} s");
                    sleep_unless_stopped(Duration::from_secs_f32(backoff), &control.stop);
                    backoff = (backoff * 2.0).min(retry_max);
                }
            }
            continue;
        };
        match src.next_frame() {
            Ok(Some(frame)) => {
                m.set_up(true);
                m.frames_in.fetch_add(1, Ordering::Relaxed);
                m.frames_dropped.fetch_add(src.take_dropped(), Ordering::Relaxed);
                count += 1;
                let age = (crate::clock::now_ms() - frame.timestamp_ms).max(0);
                ages.add(age);
                metrics.observe("capture_to_queue", age as f64 / 1000.0);
                if !src.is_live() {
                    if !queue.push_wait(frame) {
                        break;
                    }
                } else if queue.push(frame) {
                    m.frames_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(None) => break,
            Err(e @ (CaptureError::BadFrame { .. } | CaptureError::Replay { .. })) => {
                m.frames_bad.fetch_add(1, Ordering::Relaxed);
                count += 1;
                log::warn!("{e}; frame skipped");
            }
            Err(e) => {
                m.set_up(false);
                log::warn!("{e}; reopening in {backoff:.0} s");
                source = None;
                sleep_unless_stopped(Duration::from_secs_f32(backoff), &control.stop);
                backoff = (backoff * 2.0).min(retry_max);
            }
        }
    }
    m.set_up(false);
    queue.close();
    ages
}

/// Runs a generalization audit at start and every `every`, on a thread of lower priority than
/// the cameras' so that an audit never delays a decision. A failed audit is logged and retried
/// at the next interval: it must not take the door down.
fn audit_loop(cfg: &Config, every: Duration, metrics: &Metrics, stop: &AtomicBool) {
    lower_priority();
    while !stop.load(Ordering::SeqCst) {
        let outcome =
            Journal::open(&cfg.daemon.journal).map_err(anyhow::Error::from).and_then(|journal| {
                crate::audit::run(cfg, &crate::audit::Request::default(), Some(&journal))
            });
        match outcome {
            Ok(r) => {
                let alert = r.alert || r.drift.as_ref().is_some_and(|d| d.alert);
                metrics.audits.fetch_add(1, Ordering::Relaxed);
                metrics.audit_alert.store(alert as u64, Ordering::Relaxed);
                log::info!(
                    "audit: {} keeps {:.1}% of {} overall{}",
                    r.encoder.model.id,
                    100.0 * r.overall_retention,
                    r.baseline.model.id,
                    if alert { " (ALERT)" } else { "" }
                );
            }
            Err(e) => log::error!(
                "audit failed: {e:#}; next try in {}",
                humantime::format_duration(every)
            ),
        }
        sleep_unless_stopped(every, stop);
    }
}

/// Lowers the calling thread's priority (nice 10), so that its work (an audit, an offer's check)
/// never delays a camera's frames.
fn lower_priority() {
    // SAFETY: setpriority on the calling thread (Linux: a thread id is a process id for it).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// Runs every queued frame through the frame path with the camera's tracker, and sends the
/// decisions due to the journal writer.
#[allow(clippy::too_many_arguments)]
fn worker_loop(
    config_path: &Path,
    mut cfg: Config,
    mut path: FramePath,
    mut gallery: Gallery,
    (source, queue): (&str, &FrameQueue),
    metrics: &Metrics,
    control: &Control,
    tx: mpsc::Sender<Decision>,
) -> anyhow::Result<()> {
    let mut tracker = Tracker::new(cfg.tracker.clone()).with_early_deny(cfg.early_deny());
    let mut reload_seen = control.reload.load(Ordering::SeqCst);
    let mut camera = String::new();
    let send = |decisions: Vec<Decision>| {
        for d in decisions {
            // The writer only goes away when every worker has finished.
            let _ = tx.send(d);
        }
    };
    loop {
        metrics.beat(source);
        let generation = control.reload.load(Ordering::SeqCst);
        if generation != reload_seen {
            reload_seen = generation;
            match reload(config_path, &path) {
                Ok((new_cfg, new_gallery)) => {
                    for change in cfg.threshold_changes(&new_cfg) {
                        log::info!("reload: {change}");
                    }
                    if new_cfg.outputs != cfg.outputs {
                        log::warn!("reload: [[outputs]] changed; outputs keep running as they started: restart the daemon to apply the change");
                    }
                    if new_cfg.fleet != cfg.fleet {
                        log::warn!("reload: [fleet] changed; shipping and gallery changes keep running as they started: restart the daemon to apply the change");
                    }
                    cfg = new_cfg;
                    gallery = new_gallery;
                    path.set_config(&cfg);
                    tracker.set_params(cfg.tracker.clone(), cfg.early_deny());
                    log::info!("reloaded the gallery ({} templates) and thresholds", gallery.len());
                    metrics.set_stale(None);
                }
                Err(e) => {
                    log::warn!("reload refused, keeping the running configuration: {e:#}");
                    metrics.set_stale(Some(format!("{e:#}")));
                }
            }
        }
        // A person removed (or enrolled) while running counts from the next frame on, without
        // waiting for a SIGHUP: the check is one SQLite pragma.
        // A gallery that changed but cannot be read fails closed: its templates are dropped
        // (everyone is unknown, so denied) until it can be, and /healthz says why.
        let fail_closed = |gallery: &mut Gallery, e: &dyn std::fmt::Display| {
            if !gallery.is_empty() {
                log::error!(
                    "gallery {} changed but cannot be read; denying everyone until it can: {e:#}",
                    cfg.gallery.path.display()
                );
            }
            gallery.forget();
            metrics.set_stale(Some(format!(
                "gallery {} cannot be read, everyone denied: {e:#}",
                cfg.gallery.path.display()
            )));
        };
        let recovered = |metrics: &Metrics| {
            if metrics.stale().is_some_and(|s| s.starts_with("gallery ")) {
                metrics.set_stale(None);
            }
        };
        if gallery.replaced_on_disk() {
            // Restored from a backup by `mv`, or removed: the open connection still reads the
            // old file, so the path is opened again.
            match runtime::gallery(&cfg, &cfg.gallery.path, Open::Existing) {
                Ok(g) => {
                    gallery = g;
                    log::info!(
                        "gallery {} is another file now: {} templates",
                        cfg.gallery.path.display(),
                        gallery.len()
                    );
                    recovered(metrics);
                }
                Err(e) => fail_closed(&mut gallery, &e),
            }
        } else {
            match gallery.changed_on_disk() {
                Ok(false) => {}
                Ok(true) => match gallery.reload() {
                    Ok(()) => {
                        log::info!("gallery changed on disk: {} templates now", gallery.len());
                        recovered(metrics);
                    }
                    Err(e) => fail_closed(&mut gallery, &e),
                },
                Err(e) => fail_closed(&mut gallery, &e),
            }
        }
        // While the journal cannot be written, no decision is taken: frames wait in the
        // queue (a camera's drops the oldest, counted, as usual). Stopped meanwhile, the
        // worker closes the queue (so capture does not wait for room) and ends; the writer then
        // reports what it could not journal.
        if metrics.journal_failing().is_some() {
            if control.stop.load(Ordering::SeqCst) {
                queue.close();
                break;
            }
            thread::sleep(Duration::from_millis(200));
            continue;
        }
        let frame = match queue.pop(Duration::from_millis(200)) {
            Popped::Frame(f) => f,
            // A camera that went down ends the tracks it had open: they are decided on the
            // frames seen, now, rather than when (if) the camera comes back, minutes later.
            Popped::Empty if metrics.camera(source).up.load(Ordering::Relaxed) == 0 => {
                send(path.flush(&mut tracker, source, &gallery));
                continue;
            }
            Popped::Empty => continue,
            Popped::Closed => break,
        };
        camera.clone_from(&frame.source);
        // A frame the models fail on is counted and skipped: the worker must outlive it, or
        // a live camera would keep filling a queue nobody drains.
        let result = match path.step(&frame, Some(&mut tracker), &gallery) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("frame {} of {}: {e:#}; skipped", frame.seq, frame.source);
                metrics.camera(&frame.source).frames_bad.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let m = metrics.camera(&frame.source);
        m.faces_carried.fetch_add(result.carried as u64, Ordering::Relaxed);
        m.faces_encoded.fetch_add(result.faces.len() as u64, Ordering::Relaxed);
        m.frames_processed.fetch_add(1, Ordering::Relaxed);
        metrics.observe("detect", result.detect_s);
        metrics.observe("align_encode", result.encode_s);
        if result.tags.is_some() {
            metrics.observe("tag", result.tag_s);
        }
        metrics.observe("frame", result.detect_s + result.encode_s + result.tag_s);
        send(result.decisions);
    }
    send(path.flush(&mut tracker, &camera, &gallery));
    Ok(())
}

/// Re-reads the config and the gallery for SIGHUP. Models are not reloaded: a new encoder
/// needs a restart (and a new gallery).
fn reload(config_path: &Path, path: &FramePath) -> anyhow::Result<(Config, Gallery)> {
    let pipeline = &path.pipeline;
    let cfg = runtime::load_config(config_path)?;
    let has_dmad = pipeline.mad.as_ref().is_some_and(|m| m.dmad.is_some());
    anyhow::ensure!(
        (!cfg.policy.require_live || pipeline.pad.is_some())
            && (!cfg.policy.require_bona_fide || has_dmad),
        "the new config requires a head the running daemon did not load; restart the daemon to load new models"
    );
    let (encoder, _) = runtime::encoder_identity(&cfg)?;
    anyhow::ensure!(
        encoder == pipeline.encoder.model_id(),
        "the new config names the encoder {encoder}, the running daemon runs {}; restart the daemon to load it (and move the gallery with `edgeid gallery reencode`)",
        pipeline.encoder.model_id()
    );
    let gallery = runtime::gallery(&cfg, &cfg.gallery.path, Open::Existing)?;
    Ok((cfg, gallery))
}

/// The allocator tuned for a loop that allocates and frees the same few megabytes each frame
/// (the decoded frame, resized copies, the models' tensors). glibc's defaults raise the mmap
/// threshold each time a large block is freed, so multi-MB frame buffers (decoded by the
/// capture thread, freed by the worker) came from the heap arenas and fragmented them (+65 MB
/// over 60 frames of a 1280×932 camera); pinning the threshold at 128 KiB fixed that but made
/// every tensor of 128 KiB or more a fresh mmap, faulted in page by page and unmapped again:
/// 20 000 page faults per 640×480 frame, a third of the daemon's CPU time in the kernel. Now
/// blocks under 3 MiB (tensors, a 640×480 frame) come from the heap and up to 8 MiB of freed
/// heap is kept for the next frame instead of being trimmed, while larger frames are still
/// mapped and returned (at 2 MiB, on a CPU with AVX-512, tract's packed matrix for BlazeFace,
/// 2.25 MiB with those kernels, was mapped afresh at every frame: 1 200 page faults a frame
/// and 12% of the CPU time in the kernel; at 3 MiB, 1.4 a frame): 150 frames of the 640×480 kiosk replay took 25 700 page faults instead
/// of 3.03 million and 0.06 s of system time instead of 2.99 s (5.1 s instead of 8.2 s in
/// all); the 1280-pixel replay's peak stays at 116-121 MB over 24, 96 and 384 frames, and a
/// 10-minute soak is flat at 116.5-116.9 MiB. (At 32 MiB, 1280×932 frames dropped by a live
/// camera's queue fragmented the heap again: +73 MB over 4× the frames; keeping 64 MiB of free
/// heap made the resident size swing by 15 MiB.)
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 3 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

/// Peak resident set size of this process (Linux), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
