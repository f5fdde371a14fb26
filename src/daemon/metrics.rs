//! Counters and latency histograms of the daemon, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    n: u64,
}

/// Picks one counter out of a camera's counters.
type CounterOf = fn(&CameraMetrics) -> &AtomicU64;

/// Per-camera counters.
#[derive(Default)]
pub struct CameraMetrics {
    pub frames_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub frames_bad: AtomicU64,
    pub frames_processed: AtomicU64,
    /// Faces encoded (and PAD-checked), and faces that continued a decided track unencoded.
    pub faces_encoded: AtomicU64,
    pub faces_carried: AtomicU64,
    pub reconnects: AtomicU64,
    /// 1 while the camera delivers frames (set through [`CameraMetrics::set_up`]).
    pub up: AtomicU64,
    /// Unix ms since when the camera has delivered no frame (from the start, or since it
    /// was lost); 0 while it is up.
    pub down_since_ms: AtomicU64,
    /// Decisions journaled, and those denied as presentation attacks (`presentation_attack`
    /// among their reasons): a camera where attacks are tried shows here first.
    pub decisions: AtomicU64,
    pub presentation_attacks: AtomicU64,
    /// When the camera's worker last went round its loop (ms since the daemon started; it
    /// goes round at least every 200 ms when idle): what the systemd watchdog is fed from.
    pub worker_beat_ms: AtomicU64,
}

impl CameraMetrics {
    /// Marks the camera up or down; going down keeps the time it first went down.
    pub fn set_up(&self, up: bool) {
        if up {
            self.up.store(1, Ordering::Relaxed);
            self.down_since_ms.store(0, Ordering::Relaxed);
        } else {
            self.up.store(0, Ordering::Relaxed);
            let now = crate::clock::now_ms().max(1) as u64;
            let _ =
                self.down_since_ms.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Since when the camera has been down (Unix ms); `None` while it is up.
    pub fn down_since(&self) -> Option<i64> {
        let since = self.down_since_ms.load(Ordering::Relaxed);
        (self.up.load(Ordering::Relaxed) == 0 && since > 0).then_some(since as i64)
    }
}

pub struct Metrics {
    pub cameras: Vec<(String, CameraMetrics)>,
    /// Decisions by (outcome, reason).
    decisions: Mutex<Vec<((String, String), u64)>>,
    /// Latency by stage.
    stages: Mutex<Vec<(String, Histogram)>>,
    /// Generalization audits run, and 1 while the latest one raised an alert.
    pub audits: AtomicU64,
    pub audit_alert: AtomicU64,
    /// Why the latest reload (SIGHUP) was refused, while the daemon runs on the configuration
    /// and gallery from before it; `None` once a reload succeeds.
    stale: Mutex<Option<String>>,
    /// Why the journal cannot be written, while it cannot: no decision is taken meanwhile.
    journal_failing: Mutex<Option<String>>,
    /// Failed attempts to write a decision or audit to the journal.
    pub journal_failures: AtomicU64,
    /// The journal's last record id, kept by the writer (outputs and the fleet read their lag
    /// against it).
    pub journal_head: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Each output's deliveries, failures and lag.
    pub outputs: Vec<std::sync::Arc<crate::outputs::OutputStatus>>,
    /// The fleet's shipping and gallery changes, with `[fleet]`.
    pub fleet: Option<std::sync::Arc<crate::fleet::FleetStatus>>,
    started: std::time::Instant,
}

impl Metrics {
    pub fn new(cameras: &[String]) -> Metrics {
        Metrics {
            cameras: cameras
                .iter()
                .map(|c| {
                    let m = CameraMetrics::default();
                    m.set_up(false);
                    (c.clone(), m)
                })
                .collect(),
            decisions: Mutex::new(Vec::new()),
            stages: Mutex::new(Vec::new()),
            audits: AtomicU64::new(0),
            audit_alert: AtomicU64::new(0),
            stale: Mutex::new(None),
            journal_failing: Mutex::new(None),
            journal_failures: AtomicU64::new(0),
            journal_head: Default::default(),
            outputs: Vec::new(),
            fleet: None,
            started: std::time::Instant::now(),
        }
    }

    /// Records that `camera`'s worker is going round its loop.
    pub fn beat(&self, camera: &str) {
        let now = self.started.elapsed().as_millis() as u64;
        self.camera(camera).worker_beat_ms.store(now, Ordering::Relaxed);
    }

    /// The cameras whose worker has not gone round its loop for longer than `limit` (stuck in
    /// a model, say): while there is one, the systemd watchdog is not fed.
    pub fn stalled(&self, limit: std::time::Duration) -> Vec<String> {
        let now = self.started.elapsed().as_millis() as u64;
        self.cameras
            .iter()
            .filter(|(_, c)| {
                now.saturating_sub(c.worker_beat_ms.load(Ordering::Relaxed))
                    > limit.as_millis() as u64
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Records whether the journal can be written: `Some(why)` while it cannot.
    pub fn set_journal_failing(&self, why: Option<String>) {
        *self.journal_failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the journal cannot be written, if it cannot.
    pub fn journal_failing(&self) -> Option<String> {
        self.journal_failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the outcome of a reload: `Some(why)` when it was refused.
    pub fn set_stale(&self, why: Option<String>) {
        *self.stale.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the daemon runs on data older than asked for, if it does.
    pub fn stale(&self) -> Option<String> {
        self.stale.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn camera(&self, name: &str) -> &CameraMetrics {
        &self.cameras.iter().find(|(n, _)| n == name).expect("cameras are registered at start").1
    }

    pub fn observe(&self, stage: &str, seconds: f64) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let h = match stages.iter().position(|(s, _)| s == stage) {
            Some(i) => &mut stages[i].1,
            None => {
                stages.push((stage.to_string(), Histogram::default()));
                &mut stages.last_mut().expect("just pushed").1
            }
        };
        let i = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len() - 1);
        h.counts[i] += 1;
        h.sum += seconds;
        h.n += 1;
    }

    pub fn decision(&self, outcome: &str, reason: &str) {
        let mut d = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        let key = (outcome.to_string(), reason.to_string());
        match d.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => d.push((key, 1)),
        }
    }

    /// Counts a journaled decision against its camera (a name no camera has is not counted).
    pub fn camera_decision(&self, camera: &str, reasons: &[String]) {
        if let Some((_, c)) = self.cameras.iter().find(|(n, _)| n == camera) {
            c.decisions.fetch_add(1, Ordering::Relaxed);
            if reasons.iter().any(|r| r == "presentation_attack") {
                c.presentation_attacks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn decisions_total(&self) -> u64 {
        self.decisions.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, n)| n).sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, CounterOf); 11] = [
            ("edgeid_frames_in_total", "Frames captured.", |c| &c.frames_in),
            (
                "edgeid_frames_dropped_total",
                "Frames dropped because inference was behind (oldest first).",
                |c| &c.frames_dropped,
            ),
            ("edgeid_frames_bad_total", "Frames that could not be decoded.", |c| &c.frames_bad),
            ("edgeid_frames_processed_total", "Frames run through the pipeline.", |c| {
                &c.frames_processed
            }),
            ("edgeid_faces_encoded_total", "Faces encoded (and PAD-checked).", |c| {
                &c.faces_encoded
            }),
            (
                "edgeid_faces_carried_total",
                "Faces that continued a decided track without being encoded again.",
                |c| &c.faces_carried,
            ),
            ("edgeid_camera_reconnects_total", "Attempts to reopen a failed camera.", |c| {
                &c.reconnects
            }),
            ("edgeid_camera_up", "1 while the camera delivers frames.", |c| &c.up),
            (
                "edgeid_camera_down_since_ms",
                "Unix time (ms) since when the camera has delivered no frame; 0 while it is up.",
                |c| &c.down_since_ms,
            ),
            ("edgeid_camera_decisions_total", "Access decisions journaled.", |c| &c.decisions),
            (
                "edgeid_presentation_attacks_total",
                "Decisions denied as presentation attacks (live score below pad.threshold).",
                |c| &c.presentation_attacks,
            ),
        ];
        for (name, help, get) in counters {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (camera, c) in &self.cameras {
                let _ = writeln!(
                    out,
                    "{name}{{camera=\"{}\"}} {}",
                    escape(camera),
                    get(c).load(Ordering::Relaxed)
                );
            }
        }
        let _ =
            writeln!(out, "# HELP edgeid_decisions_total Access decisions by outcome and reason.");
        let _ = writeln!(out, "# TYPE edgeid_decisions_total counter");
        for ((outcome, reason), n) in
            self.decisions.lock().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "edgeid_decisions_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP edgeid_audits_total Generalization audits run.\n# TYPE edgeid_audits_total counter\nedgeid_audits_total {}",
            self.audits.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgeid_audit_alert 1 while the latest audit raised an alert (retention or drift).\n# TYPE edgeid_audit_alert gauge\nedgeid_audit_alert {}",
            self.audit_alert.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgeid_reload_refused 1 while the latest reload (SIGHUP) was refused and the daemon runs on the configuration and gallery from before it.\n# TYPE edgeid_reload_refused gauge\nedgeid_reload_refused {}",
            u8::from(self.stale().is_some())
        );
        let _ = writeln!(
            out,
            "# HELP edgeid_journal_writable 0 while the journal cannot be written (no decision is taken meanwhile).\n# TYPE edgeid_journal_writable gauge\nedgeid_journal_writable {}",
            u8::from(self.journal_failing().is_none())
        );
        let _ = writeln!(
            out,
            "# HELP edgeid_journal_failures_total Failed attempts to write to the journal.\n# TYPE edgeid_journal_failures_total counter\nedgeid_journal_failures_total {}",
            self.journal_failures.load(Ordering::Relaxed)
        );
        type OutputOf = fn(&crate::outputs::OutputStatus) -> i64;
        let outputs: [(&str, &str, OutputOf); 7] = [
            ("edgeid_output_delivered_total", "Events an output delivered.", |o| {
                o.delivered.load(Ordering::Relaxed) as i64
            }),
            ("edgeid_output_failures_total", "Failed delivery attempts (each retried).", |o| {
                o.failures.load(Ordering::Relaxed) as i64
            }),
            (
                "edgeid_output_lag_records",
                "Journal records an output has not dealt with yet.",
                |o| o.lag(),
            ),
            ("edgeid_output_up", "0 while an output's latest delivery failed.", |o| {
                i64::from(o.failing().is_none())
            }),
            (
                "edgeid_door_forced_open_total",
                "gpio: the door contact opened with no grant or exit request before it.",
                |o| o.door_forced.load(Ordering::Relaxed) as i64,
            ),
            ("edgeid_door_held_open_total", "gpio: the door stayed open over held_open_s.", |o| {
                o.door_held.load(Ordering::Relaxed) as i64
            }),
            ("edgeid_exit_requests_total", "gpio: request-to-exit button presses.", |o| {
                o.exit_requests.load(Ordering::Relaxed) as i64
            }),
        ];
        for (name, help, get) in outputs {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for o in &self.outputs {
                let _ = writeln!(out, "{name}{{output=\"{}\"}} {}", escape(&o.name), get(o));
            }
        }
        if let Some(f) = &self.fleet {
            type FleetOf = fn(&crate::fleet::FleetStatus) -> i64;
            let fleet: [(&str, &str, FleetOf); 10] = [
                ("edgeid_fleet_shipped_total", "Journal records shipped to the central database.", |f| {
                    f.shipped.load(Ordering::Relaxed) as i64
                }),
                ("edgeid_fleet_lag_records", "Decisions the central database does not hold yet.", |f| {
                    f.lag()
                }),
                ("edgeid_fleet_up", "0 while the latest shipping attempt failed.", |f| {
                    i64::from(f.failing().is_none())
                }),
                ("edgeid_fleet_gallery_version", "The version of the fleet's gallery changes held.", |f| {
                    f.gallery_version.load(Ordering::Relaxed)
                }),
                ("edgeid_fleet_changes_applied_total", "Gallery changes applied.", |f| {
                    f.changes_applied.load(Ordering::Relaxed) as i64
                }),
                ("edgeid_fleet_changes_refused_total", "Gallery changes refused: badly signed or sealed, not newer than the version held, or not applicable here.", |f| {
                    f.changes_refused.load(Ordering::Relaxed) as i64
                }),
                ("edgeid_fleet_config_version", "The fleet's config offer the device runs (0: its own config alone).", |f| {
                    f.config_version.load(Ordering::Relaxed)
                }),
                ("edgeid_fleet_config_offer_checking", "The config offer being checked now (0: none); an offer's checks and audit take minutes.", |f| {
                    f.offer_checking.load(Ordering::Relaxed)
                }),
                ("edgeid_fleet_config_offer_stage", "How far the offer being checked is: 0 none, 1 read over the device's config, 2 its models loading, 3 its audit running.", |f| {
                    f.offer_stage.load(Ordering::Relaxed)
                }),
                ("edgeid_fleet_config_offers_refused_total", "Config offers refused: badly signed or sealed, not newer than the one run, or failing their checks or their audit.", |f| {
                    f.offers_refused.load(Ordering::Relaxed) as i64
                }),
            ];
            for (name, help, get) in fleet {
                let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
                let _ =
                    writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", get(f));
            }
        }
        let _ = writeln!(out, "# HELP edgeid_stage_seconds Latency of each pipeline stage.");
        let _ = writeln!(out, "# TYPE edgeid_stage_seconds histogram");
        for (stage, h) in self.stages.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut cumulative = 0;
            for (b, c) in BUCKETS.iter().zip(h.counts) {
                cumulative += c;
                let le = if b.is_infinite() { "+Inf".to_string() } else { b.to_string() };
                let _ = writeln!(
                    out,
                    "edgeid_stage_seconds_bucket{{stage=\"{stage}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "edgeid_stage_seconds_sum{{stage=\"{stage}\"}} {}", h.sum);
            let _ = writeln!(out, "edgeid_stage_seconds_count{{stage=\"{stage}\"}} {}", h.n);
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
