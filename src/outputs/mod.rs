//! Outputs: what a decision does beyond its journal record. Each configured output (`[[outputs]]`:
//! run a program, POST to a webhook) reads the journal through its own cursor, the id of the
//! last record it has dealt with, kept in the journal file itself. So an output delivers every
//! decision its filter matches at least once and in order, across a receiver that is down, a
//! restart or a SIGKILL: a record delivered but not yet marked is delivered again, never
//! skipped. An output that falls behind is visible: its lag and failures on `/metrics`, and
//! `/healthz` names it while its latest attempt failed.
//!
//! An output never slows the decisions: the journal writer does not wait for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::config::outputs::{
    ExecOutput, Filter, GpioOutput, MqttOutput, OutputConfig, WebhookOutput,
};
use crate::journal::Journal;

mod event;
mod exec;
mod gpio;
mod mqtt;
mod status;
mod webhook;

use event::Sink;
pub use event::{DeliveryError, Event};
pub use status::OutputStatus;

pub use mqtt::Access as MqttAccess;

/// Why an output cannot start (its secret file, say): the daemon refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output {name}: {key} {path} cannot be read ({error}); write the secret into it (for a webhook key, e.g. `head -c 32 /dev/urandom | base64 > {path}`), mode 0600")]
    Secret { name: String, key: &'static str, path: PathBuf, error: std::io::Error },
    #[error("output {name}: {key} {path} is empty; write the secret into it")]
    EmptySecret { name: String, key: &'static str, path: PathBuf },
    /// Whoever can read a webhook key can sign events the receiver will believe; whoever can
    /// read a broker's password can publish as the device.
    #[error("output {name}: {key} {path} can be read by other users (mode {mode:04o}); run `chmod 600 {path}` and change the secret if others could read it")]
    ExposedSecret { name: String, key: &'static str, path: PathBuf, mode: u32 },
    #[error("output {name}: ca_file {path}: {why}; give the PEM certificate of the CA that signed the receiver's certificate")]
    BadCa { name: String, path: PathBuf, why: String },
    /// A GPIO chip or line that cannot be had.
    #[error("{0}")]
    Gpio(String),
}

fn sink(
    cfg: &OutputConfig,
    status: &Arc<OutputStatus>,
    device: &str,
    cameras: &[String],
) -> Result<Box<dyn Sink>, OutputError> {
    let timeout = Duration::from_secs_f32(cfg.common().timeout_s);
    Ok(match cfg {
        OutputConfig::Exec(o) => Box::new(exec::Exec { command: o.command.clone(), timeout }),
        OutputConfig::Webhook(o) => {
            let key = match &o.secret_file {
                None => None,
                Some(path) => Some(secret(&o.name, "secret_file", path)?),
            };
            let roots = o.ca_file.as_ref().map(|p| ca_certs(&o.name, p)).transpose()?;
            Box::new(webhook::Webhook::new(&o.url, key, timeout, roots))
        }
        OutputConfig::Mqtt(o) => Box::new(mqtt::Mqtt::new(
            &o.broker,
            &o.topic_prefix,
            &o.discovery_prefix,
            device,
            cameras,
            timeout,
            mqtt_access(o)?,
        )),
        OutputConfig::Gpio(o) => Box::new(gpio::Gpio::open(o, status).map_err(OutputError::Gpio)?),
    })
}

/// The bytes of a secret file (trailing newlines dropped): refused if missing, empty, or
/// readable by other users.
fn secret(name: &str, key: &'static str, path: &Path) -> Result<Vec<u8>, OutputError> {
    let (name, path) = (name.to_string(), path.to_path_buf());
    let mut bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(error) => return Err(OutputError::Secret { name, key, path, error }),
    };
    if let Some(mode) = crate::util::exposed(&path, 0o077) {
        return Err(OutputError::ExposedSecret { name, key, path, mode });
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(OutputError::EmptySecret { name, key, path });
    }
    Ok(bytes)
}

/// The CA certificates (DER) of a PEM file.
fn ca_certs(name: &str, path: &Path) -> Result<Vec<Vec<u8>>, OutputError> {
    let certs = crate::util::pem_certs(path).map_err(|why| OutputError::BadCa {
        name: name.to_string(),
        path: path.into(),
        why,
    })?;
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// An mqtt output's credentials and TLS.
fn mqtt_access(o: &MqttOutput) -> Result<mqtt::Access, OutputError> {
    let credentials = match &o.password_file {
        Some(path) => {
            let password =
                String::from_utf8_lossy(&secret(&o.name, "password_file", path)?).into_owned();
            Some((o.username.clone(), password))
        }
        None => None,
    };
    let tls =
        match &o.ca_file {
            Some(path) => Some(crate::util::tls_client_trusting(path).map_err(|why| {
                OutputError::BadCa { name: o.name.clone(), path: path.clone(), why }
            })?),
            None => None,
        };
    Ok(mqtt::Access { credentials, tls })
}

/// A ready output: its sink built (secret read) and its cursor opened.
pub struct Output {
    cfg: OutputConfig,
    sink: Box<dyn Sink>,
    journal: Journal,
    cursor: i64,
}

impl Output {
    /// Opens `cfg`'s output on the journal at `journal`, for device `device` and its
    /// `cameras` (the sources' names). A new output starts at the journal's end: it delivers
    /// what is decided from now on, not the history.
    pub fn open(
        cfg: &OutputConfig,
        status: &Arc<OutputStatus>,
        journal: &Path,
        device: &str,
        cameras: &[String],
    ) -> anyhow::Result<Output> {
        use anyhow::Context;
        let sink = sink(cfg, status, device, cameras)?;
        let journal = Journal::open_side(journal)?;
        let name = cfg.name();
        let cursor = match journal.cursor(name)? {
            Some(c) => c,
            None => {
                let end = journal.last_id()?;
                journal.set_cursor(name, end).with_context(|| format!("output {name}"))?;
                end
            }
        };
        Ok(Output { cfg: cfg.clone(), sink, journal, cursor })
    }

    pub fn name(&self) -> &str {
        self.cfg.name()
    }

    /// Delivers until `stop` is set; then goes on until it has caught up with the journal as
    /// it stood, or `drain` has passed (what is left goes at the next start).
    pub fn run(mut self, status: &OutputStatus, stop: &AtomicBool, drain: Duration) {
        let time_up = Drain { stop, drain, until: std::cell::Cell::new(None) };
        let mut end = None;
        loop {
            if end.is_none() && stop.load(Ordering::SeqCst) {
                end = Some(self.journal.last_id().unwrap_or(self.cursor));
            }
            if let Some(end) = end {
                if self.cursor >= end || time_up.over() {
                    if self.cursor < end {
                        log::warn!(
                            "output {}: stopping with {} record(s) not dealt with (ids {}..={end}); they go at the next start",
                            self.cfg.name(),
                            end - self.cursor,
                            self.cursor + 1
                        );
                    }
                    return;
                }
            }
            match self.step(status, &time_up) {
                Ok(0) => std::thread::sleep(Duration::from_millis(100)),
                Ok(_) => {}
                Err(e) => {
                    log::warn!("output {}: {e:#}", self.cfg.name());
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Deals with the next records after the cursor: each one the filter takes is delivered,
    /// retried with back-off until it is (or the daemon stops and its drain time is up), then the cursor moves past it.
    /// Returns how many records it dealt with.
    fn step(&mut self, status: &OutputStatus, time_up: &Drain) -> anyhow::Result<usize> {
        let entries = self.journal.after(self.cursor, 64)?;
        status.cursor.store(self.cursor, Ordering::Relaxed);
        // A journal written by another process too (`edgeid` commands) may be ahead of the
        // daemon's own count.
        status.journal_head.fetch_max(self.journal.last_id()?, Ordering::Relaxed);
        if entries.is_empty() {
            return Ok(0);
        }
        let mut dealt = 0;
        for e in &entries {
            if self.cfg.common().filter.matches(&e.decision) {
                let mut wait = Duration::from_secs(1);
                loop {
                    let event = Event::new(&self.cfg, e, crate::clock::now_ms());
                    let body = serde_json::to_vec(&event).expect("an event serialises");
                    match self.sink.deliver(&event, &body) {
                        Ok(()) => {
                            status.delivered.fetch_add(1, Ordering::Relaxed);
                            if status.failing().is_some() {
                                log::info!("output {}: delivering again", self.cfg.name());
                            }
                            status.set_failing(None);
                            break;
                        }
                        Err(err) => {
                            status.failures.fetch_add(1, Ordering::Relaxed);
                            if status.failing().is_none() {
                                log::warn!(
                                    "output {}: record {}: {err}; retrying",
                                    self.cfg.name(),
                                    e.id
                                );
                            }
                            status.set_failing(Some(err.to_string()));
                            let until = Instant::now() + wait;
                            while Instant::now() < until {
                                if time_up.over() {
                                    return Ok(dealt);
                                }
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            wait = (wait * 2)
                                .min(Duration::from_secs_f32(self.cfg.common().retry_max_s));
                        }
                    }
                }
            }
            self.cursor = e.id;
            self.journal.set_cursor(self.cfg.name(), e.id)?;
            status.cursor.store(e.id, Ordering::Relaxed);
            dealt += 1;
        }
        Ok(dealt)
    }
}

/// The time an output has to finish once the daemon stops.
struct Drain<'a> {
    stop: &'a AtomicBool,
    drain: Duration,
    until: std::cell::Cell<Option<Instant>>,
}

impl Drain<'_> {
    /// Whether the daemon stopped and the drain time since has passed.
    fn over(&self) -> bool {
        if !self.stop.load(Ordering::SeqCst) {
            return false;
        }
        let until = self.until.get().unwrap_or_else(|| Instant::now() + self.drain);
        self.until.set(Some(until));
        Instant::now() >= until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Decision, Outcome};
    use crate::journal::Entry;

    fn output(toml_text: &str) -> OutputConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn entry(outcome: Outcome, reasons: &[&str], identity: Option<&str>, decided_ms: i64) -> Entry {
        let mut d: Decision = serde_json::from_value(serde_json::json!({
            "time_ms": decided_ms - 30, "camera": "door", "track_id": 1, "outcome": "denied",
            "identity": null, "similarity": 0.3, "nearest": "bob", "frames_used": 5,
            "live": null, "pad_threshold": null, "bona_fide": null, "mad_threshold": null,
            "tags": null}))
        .unwrap();
        d.outcome = outcome;
        d.reasons = reasons.iter().map(|r| r.to_string()).collect();
        d.identity = identity.map(str::to_string);
        d.decided_ms = decided_ms;
        Entry { id: 7, decision: d }
    }

    /// A grant is actuated only within max_age_s of its decision; a denial never; a late
    /// grant is still an event.
    #[test]
    fn a_late_grant_is_reported_but_not_actuated() {
        let o = output("name = \"door\"\nkind = \"exec\"\ncommand = [\"true\"]\nmax_age_s = 10");
        let granted = entry(Outcome::Granted, &[], Some("alice"), 1_000_000);
        assert!(Event::new(&o, &granted, 1_000_000 + 9_999).actuate);
        assert!(!Event::new(&o, &granted, 1_000_000 + 10_001).actuate);
        let denied = entry(Outcome::Denied, &["unknown"], None, 1_000_000);
        assert!(!Event::new(&o, &denied, 1_000_001).actuate);
        let json = serde_json::to_value(Event::new(&o, &granted, 1_000_000 + 60_000)).unwrap();
        assert_eq!((json["id"].as_i64(), json["actuate"].as_bool()), (Some(7), Some(false)));
        assert_eq!(
            (json["output"].as_str(), json["identity"].as_str()),
            (Some("door"), Some("alice"))
        );
    }

    #[test]
    fn filters_take_what_they_name_and_anything_when_empty() {
        let granted = entry(Outcome::Granted, &[], Some("alice"), 1);
        let attack = entry(Outcome::Denied, &["presentation_attack", "unknown"], None, 1);
        let all = Filter::default();
        assert!(all.matches(&granted.decision) && all.matches(&attack.decision));
        let grants = Filter { outcomes: vec!["granted".into()], ..Filter::default() };
        assert!(grants.matches(&granted.decision) && !grants.matches(&attack.decision));
        let attacks = Filter { reasons: vec!["presentation_attack".into()], ..Filter::default() };
        assert!(!attacks.matches(&granted.decision) && attacks.matches(&attack.decision));
        let bob = Filter { identities: vec!["bob".into()], ..Filter::default() };
        assert!(!bob.matches(&granted.decision) && !bob.matches(&attack.decision));
        let lobby = Filter { cameras: vec!["lobby".into()], ..Filter::default() };
        assert!(!lobby.matches(&granted.decision));
    }
}
