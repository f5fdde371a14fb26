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
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::decide::{Decision, Outcome};
use crate::journal::{Entry, Journal};
use crate::util::OutOfRange;

mod exec;
mod gpio;
mod mqtt;
mod webhook;

pub use mqtt::{split_broker, Access as MqttAccess};

/// What kind of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Runs `command` with the event as JSON on its standard input (a Wiegand or OSDP bridge,
    /// a door controller's CLI); exit status 0 is delivered.
    Exec,
    /// POSTs the event as JSON to `url`, signed with HMAC-SHA256 over the body when a
    /// `secret_file` is given; a 2xx answer is delivered.
    Webhook,
    /// Publishes the event (QoS 1) to the MQTT `broker` on
    /// `<topic_prefix>/<device>/<camera>/decision`; the broker's PUBACK is delivered.
    Mqtt,
    /// Pulses a door relay for `pulse_ms` on each fresh grant: GPIO `line` of `chip`, or a
    /// relay board's program (`command`, run with `on` then `off`); optionally watches a door
    /// contact (`door_line`) and a request-to-exit button (`exit_line`).
    Gpio,
}

/// Which decisions an output takes; an empty list takes any.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// "granted", "denied".
    pub outcomes: Vec<String>,
    /// Any of these reasons (`unknown`, `presentation_attack`, `morph_suspected`, `low_quality`).
    pub reasons: Vec<String>,
    pub identities: Vec<String>,
    pub cameras: Vec<String>,
}

impl Filter {
    pub fn matches(&self, d: &Decision) -> bool {
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any(&self.outcomes, d.outcome.as_str())
            && (self.reasons.is_empty() || d.reasons.iter().any(|r| self.reasons.contains(r)))
            && (self.identities.is_empty()
                || d.identity.as_ref().is_some_and(|i| any(&self.identities, i)))
            && any(&self.cameras, &d.camera)
    }
}

/// One `[[outputs]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Names the output in logs, metrics and its journal cursor: renaming one starts it afresh.
    pub name: String,
    pub kind: OutputKind,
    /// exec: the program and its arguments (no shell).
    #[serde(default)]
    pub command: Vec<String>,
    /// webhook: where to POST (http:// or https://).
    #[serde(default)]
    pub url: String,
    /// webhook: a file holding the HMAC-SHA256 key (its bytes, trailing newline dropped).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// mqtt: the broker, `host:port` (1883 when left out).
    #[serde(default)]
    pub broker: String,
    /// mqtt: the user name the broker asks for (with `password_file`).
    #[serde(default)]
    pub username: String,
    /// mqtt: a file holding the password (trailing newline dropped; mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// webhook, mqtt: CA certificates (PEM) the receiver's or broker's certificate must chain
    /// to. For mqtt it turns TLS on; for a webhook it replaces the public roots (https:// only).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// mqtt: the first level of every topic.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// mqtt: Home Assistant's discovery prefix, under which each camera is announced; ""
    /// announces nothing.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    #[serde(default)]
    pub filter: Filter,
    /// A grant decided longer ago than this (seconds) is still delivered, with `"actuate":
    /// false`: a door must not open for someone who left minutes ago.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: f32,
    /// gpio: the GPIO chip ("/dev/gpiochip0", or its name under /dev).
    #[serde(default = "default_chip")]
    pub chip: String,
    /// gpio: the relay's line (offset on the chip); without it, `command` switches the relay.
    #[serde(default)]
    pub line: Option<u32>,
    /// gpio: the relay's line is active low (a relay board that switches on a low level).
    #[serde(default)]
    pub active_low: bool,
    /// gpio: how long the relay is on for a grant, milliseconds.
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u32,
    /// gpio: a door contact input, active while the door is open ("forced open" and "held
    /// open" events).
    #[serde(default)]
    pub door_line: Option<u32>,
    /// gpio: a request-to-exit button input, active while pressed (pulses the relay).
    #[serde(default)]
    pub exit_line: Option<u32>,
    /// gpio: the inputs are active low (a contact that pulls the line to ground).
    #[serde(default)]
    pub inputs_active_low: bool,
    /// gpio: a door open longer than this is "held open", seconds.
    #[serde(default = "default_held_open_s")]
    pub held_open_s: f32,
    /// Time one delivery may take (the program's run, the HTTP exchange), seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f32,
    /// A failed delivery is retried after 1 s, doubling up to this (seconds).
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: f32,
}

fn default_topic_prefix() -> String {
    "edgeid".into()
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}
fn default_chip() -> String {
    "/dev/gpiochip0".into()
}
fn default_pulse_ms() -> u32 {
    3000
}
fn default_held_open_s() -> f32 {
    30.0
}
fn default_max_age_s() -> f32 {
    10.0
}
fn default_timeout_s() -> f32 {
    5.0
}
fn default_retry_max_s() -> f32 {
    60.0
}

impl OutputConfig {
    /// Whether the relay, door contact and exit button are on different lines.
    fn gpio_lines_distinct(&self) -> bool {
        let mut lines: Vec<u32> =
            [self.line, self.door_line, self.exit_line].into_iter().flatten().collect();
        let n = lines.len();
        lines.sort_unstable();
        lines.dedup();
        lines.len() == n
    }

    /// Refuses a setting the output cannot run with, naming the key.
    pub fn check(&self) -> Result<(), OutOfRange> {
        let bad = |key: &str, value: String, allowed: &str| OutOfRange {
            key: format!("outputs.{}.{key}", self.name),
            value,
            allowed: allowed.into(),
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.name.is_empty() || !self.name.chars().all(plain) {
            return Err(OutOfRange {
                key: "outputs.name".into(),
                value: format!("{:?}", self.name),
                allowed: "letters, digits, - and _ (it names the output's cursor and metrics)"
                    .into(),
            });
        }
        match self.kind {
            OutputKind::Exec if self.command.is_empty() => {
                return Err(bad("command", "[]".into(), "a program and its arguments, e.g. [\"/usr/local/bin/bridge\", \"--door\", \"1\"]"));
            }
            OutputKind::Webhook
                if !(self.url.starts_with("http://") || self.url.starts_with("https://")) =>
            {
                return Err(bad("url", format!("{:?}", self.url), "an http:// or https:// URL"));
            }
            OutputKind::Webhook if self.ca_file.is_some() && !self.url.starts_with("https://") => {
                return Err(bad(
                    "ca_file",
                    format!("{:?}", self.ca_file),
                    "only with an https:// url",
                ));
            }
            OutputKind::Mqtt if self.username.is_empty() != self.password_file.is_none() => {
                return Err(bad(
                    "username",
                    format!("{:?}", self.username),
                    "a user name and a password_file together, or neither",
                ));
            }
            OutputKind::Gpio if self.line.is_none() && self.command.is_empty() => {
                return Err(bad("line", "none".into(), "the relay's GPIO line (offset on outputs.chip), or a command that switches the relay (run with `on` and `off`)"));
            }
            OutputKind::Gpio if !(50..=60_000).contains(&self.pulse_ms) => {
                return Err(bad("pulse_ms", self.pulse_ms.to_string(), "50 to 60000 milliseconds"));
            }
            OutputKind::Gpio if !self.gpio_lines_distinct() => {
                return Err(bad(
                    "door_line",
                    format!("{:?}", self.door_line),
                    "a line the relay and the other input do not use",
                ));
            }
            OutputKind::Mqtt if mqtt::split_broker(&self.broker).is_none() => {
                return Err(bad(
                    "broker",
                    format!("{:?}", self.broker),
                    "host:port of an MQTT broker, e.g. \"127.0.0.1:1883\"",
                ));
            }
            OutputKind::Mqtt
                if self.topic_prefix.is_empty()
                    || self.topic_prefix.contains(['#', '+'])
                    || self.topic_prefix.ends_with('/') =>
            {
                return Err(bad(
                    "topic_prefix",
                    format!("{:?}", self.topic_prefix),
                    "a topic level without wildcards or a trailing /, e.g. \"edgeid\"",
                ));
            }
            _ => {}
        }
        for (key, v) in [
            ("max_age_s", self.max_age_s),
            ("timeout_s", self.timeout_s),
            ("retry_max_s", self.retry_max_s),
            ("held_open_s", self.held_open_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(bad(key, v.to_string(), "seconds, above 0 and at most a day"));
            }
        }
        Ok(())
    }
}

/// What is sent: the journal record (its id, the decision, the device) and whether a door may
/// act on it now.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub output: &'a str,
    /// True for a grant decided within `max_age_s`; false for a denial or a late grant.
    pub actuate: bool,
    #[serde(flatten)]
    pub entry: &'a Entry,
}

impl<'a> Event<'a> {
    pub fn new(output: &'a OutputConfig, entry: &'a Entry, now_ms: i64) -> Event<'a> {
        let d = &entry.decision;
        let decided = if d.decided_ms > 0 { d.decided_ms } else { d.time_ms };
        let fresh = (now_ms - decided) as f64 <= output.max_age_s as f64 * 1000.0;
        Event { output: &output.name, actuate: d.outcome == Outcome::Granted && fresh, entry }
    }
}

/// Why a delivery failed (it is retried).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Where events go.
trait Sink: Send {
    fn deliver(&mut self, event: &Event<'_>, body: &[u8]) -> Result<(), DeliveryError>;
}

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
    let timeout = Duration::from_secs_f32(cfg.timeout_s);
    Ok(match cfg.kind {
        OutputKind::Exec => Box::new(exec::Exec { command: cfg.command.clone(), timeout }),
        OutputKind::Webhook => {
            let key = match &cfg.secret_file {
                None => None,
                Some(path) => Some(secret(cfg, "secret_file", path)?),
            };
            let roots = cfg.ca_file.as_ref().map(|p| ca_certs(cfg, p)).transpose()?;
            Box::new(webhook::Webhook::new(&cfg.url, key, timeout, roots))
        }
        OutputKind::Mqtt => Box::new(mqtt::Mqtt::new(
            &cfg.broker,
            &cfg.topic_prefix,
            &cfg.discovery_prefix,
            device,
            cameras,
            timeout,
            mqtt_access(cfg)?,
        )),
        OutputKind::Gpio => Box::new(gpio::Gpio::open(cfg, status).map_err(OutputError::Gpio)?),
    })
}

/// The bytes of a secret file (trailing newlines dropped): refused if missing, empty, or
/// readable by other users.
fn secret(cfg: &OutputConfig, key: &'static str, path: &Path) -> Result<Vec<u8>, OutputError> {
    let (name, path) = (cfg.name.clone(), path.to_path_buf());
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
fn ca_certs(cfg: &OutputConfig, path: &Path) -> Result<Vec<Vec<u8>>, OutputError> {
    let certs = crate::util::pem_certs(path).map_err(|why| OutputError::BadCa {
        name: cfg.name.clone(),
        path: path.into(),
        why,
    })?;
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// An mqtt output's credentials and TLS.
fn mqtt_access(cfg: &OutputConfig) -> Result<mqtt::Access, OutputError> {
    let credentials = match &cfg.password_file {
        Some(path) => {
            let password =
                String::from_utf8_lossy(&secret(cfg, "password_file", path)?).into_owned();
            Some((cfg.username.clone(), password))
        }
        None => None,
    };
    let tls = match &cfg.ca_file {
        Some(path) => Some(crate::util::tls_client_trusting(path).map_err(|why| {
            OutputError::BadCa { name: cfg.name.clone(), path: path.clone(), why }
        })?),
        None => None,
    };
    Ok(mqtt::Access { credentials, tls })
}

/// An output's state, read by `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct OutputStatus {
    pub name: String,
    pub delivered: AtomicU64,
    pub failures: AtomicU64,
    /// Journal records not yet dealt with.
    pub lag: AtomicI64,
    /// Why the latest attempt failed, while it has not succeeded since.
    pub failing: Mutex<Option<String>>,
    /// gpio: a door opened with no grant or exit request before it; open too long; exit
    /// button presses.
    pub door_forced: AtomicU64,
    pub door_held: AtomicU64,
    pub exit_requests: AtomicU64,
}

impl OutputStatus {
    pub fn new(name: &str) -> OutputStatus {
        OutputStatus { name: name.to_string(), ..OutputStatus::default() }
    }

    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
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
        let cursor = match journal.cursor(&cfg.name)? {
            Some(c) => c,
            None => {
                let end = journal.last_id()?;
                journal
                    .set_cursor(&cfg.name, end)
                    .with_context(|| format!("output {}", cfg.name))?;
                end
            }
        };
        Ok(Output { cfg: cfg.clone(), sink, journal, cursor })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
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
                            "output {}: stopping with {} record(s) not dealt with; they go at the next start",
                            self.cfg.name,
                            end - self.cursor
                        );
                    }
                    return;
                }
            }
            match self.step(status, &time_up) {
                Ok(0) => std::thread::sleep(Duration::from_millis(100)),
                Ok(_) => {}
                Err(e) => {
                    log::warn!("output {}: {e:#}", self.cfg.name);
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
        status.lag.store(self.journal.last_id()? - self.cursor, Ordering::Relaxed);
        if entries.is_empty() {
            return Ok(0);
        }
        let mut dealt = 0;
        for e in &entries {
            if self.cfg.filter.matches(&e.decision) {
                let mut wait = Duration::from_secs(1);
                loop {
                    let event = Event::new(&self.cfg, e, crate::clock::now_ms());
                    let body = serde_json::to_vec(&event).expect("an event serialises");
                    match self.sink.deliver(&event, &body) {
                        Ok(()) => {
                            status.delivered.fetch_add(1, Ordering::Relaxed);
                            if status.failing().is_some() {
                                log::info!("output {}: delivering again", self.cfg.name);
                            }
                            status.set_failing(None);
                            break;
                        }
                        Err(err) => {
                            status.failures.fetch_add(1, Ordering::Relaxed);
                            if status.failing().is_none() {
                                log::warn!(
                                    "output {}: record {}: {err}; retrying",
                                    self.cfg.name,
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
                            wait = (wait * 2).min(Duration::from_secs_f32(self.cfg.retry_max_s));
                        }
                    }
                }
            }
            self.cursor = e.id;
            self.journal.set_cursor(&self.cfg.name, e.id)?;
            dealt += 1;
        }
        status.lag.store(self.journal.last_id()? - self.cursor, Ordering::Relaxed);
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

    #[test]
    fn settings_an_output_cannot_run_with_are_refused_by_key() {
        let err = |t: &str| output(t).check().unwrap_err().key;
        assert_eq!(err("name = \"a\"\nkind = \"exec\""), "outputs.a.command");
        assert_eq!(err("name = \"h\"\nkind = \"webhook\"\nurl = \"ftp://x\""), "outputs.h.url");
        assert_eq!(err("name = \"a b\"\nkind = \"exec\"\ncommand = [\"x\"]"), "outputs.name");
        assert_eq!(
            err("name = \"a\"\nkind = \"exec\"\ncommand = [\"x\"]\ntimeout_s = 0"),
            "outputs.a.timeout_s"
        );
        assert_eq!(err("name = \"d\"\nkind = \"gpio\""), "outputs.d.line");
        assert_eq!(
            err("name = \"d\"\nkind = \"gpio\"\nline = 3\npulse_ms = 10"),
            "outputs.d.pulse_ms"
        );
        assert_eq!(
            err("name = \"d\"\nkind = \"gpio\"\nline = 3\ndoor_line = 3"),
            "outputs.d.door_line"
        );
        output("name = \"d\"\nkind = \"gpio\"\nline = 3\ndoor_line = 4\nexit_line = 5")
            .check()
            .unwrap();
    }
}
