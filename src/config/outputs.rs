//! `[[outputs]]`: one table per output, one variant per kind, each with only its own keys: a
//! key of another kind (`url` on an exec output) or a typo is refused by name instead of being
//! ignored. What every kind has (its name, filter, ages and times) is written once, by
//! `output_kind!`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::decide::Decision;
use crate::util::OutOfRange;

/// One `[[outputs]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OutputConfig {
    /// Runs `command` with the event as JSON on its standard input (a Wiegand or OSDP bridge,
    /// a door controller's CLI); exit status 0 is delivered.
    Exec(ExecOutput),
    /// POSTs the event as JSON to `url`, signed with HMAC-SHA256 over the body when a
    /// `secret_file` is given; a 2xx answer is delivered.
    Webhook(WebhookOutput),
    /// Publishes the event (QoS 1) to the MQTT `broker` on
    /// `<topic_prefix>/<device>/<camera>/decision`; the broker's PUBACK is delivered.
    Mqtt(MqttOutput),
    /// Pulses a door relay for `pulse_ms` on each fresh grant: GPIO `line` of `chip`, or a
    /// relay board's program (`command`, run with `on` then `off`); optionally watches a door
    /// contact (`door_line`) and a request-to-exit button (`exit_line`).
    Gpio(GpioOutput),
}

/// The settings every kind of output has, then the kind's own.
macro_rules! output_kind {
    ($(#[$meta:meta])* $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Names the output in logs, metrics and its journal cursor: renaming one starts it
            /// afresh.
            pub name: String,
            #[serde(default)]
            pub filter: Filter,
            /// A grant decided longer ago than this (seconds) is still delivered, with
            /// `"actuate": false`: a door must not open for someone who left minutes ago.
            #[serde(default = "default_max_age_s")]
            pub max_age_s: f32,
            /// Time one delivery may take (the program's run, the HTTP exchange), seconds.
            #[serde(default = "default_timeout_s")]
            pub timeout_s: f32,
            /// A failed delivery is retried after 1 s, doubling up to this (seconds).
            #[serde(default = "default_retry_max_s")]
            pub retry_max_s: f32,
            $($fields)*
        }
    };
}

output_kind!(ExecOutput {
    /// The program and its arguments (no shell).
    #[serde(default)]
    pub command: Vec<String>,
});

output_kind!(WebhookOutput {
    /// Where to POST (http:// or https://).
    #[serde(default)]
    pub url: String,
    /// A file holding the HMAC-SHA256 key (its bytes, trailing newline dropped).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// CA certificates (PEM) the receiver's certificate must chain to, instead of the public
    /// roots (https:// only).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
});

output_kind!(MqttOutput {
    /// The broker, `host:port` (1883 when left out).
    #[serde(default)]
    pub broker: String,
    /// The user name the broker asks for (with `password_file`).
    #[serde(default)]
    pub username: String,
    /// A file holding the password (trailing newline dropped; mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the broker's certificate must chain to: turns TLS on.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The first level of every topic.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix, under which each camera is announced; "" announces
    /// nothing.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
});

output_kind!(GpioOutput {
    /// The GPIO chip ("/dev/gpiochip0", or its name under /dev).
    #[serde(default = "default_chip")]
    pub chip: String,
    /// The relay's line (offset on the chip); without it, `command` switches the relay.
    #[serde(default)]
    pub line: Option<u32>,
    /// A relay board's program, run with `on` then `off` (instead of `line`).
    #[serde(default)]
    pub command: Vec<String>,
    /// The relay's line is active low (a relay board that switches on a low level).
    #[serde(default)]
    pub active_low: bool,
    /// How long the relay is on for a grant, milliseconds.
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u32,
    /// A door contact input, active while the door is open ("forced open" and "held open"
    /// events).
    #[serde(default)]
    pub door_line: Option<u32>,
    /// A request-to-exit button input, active while pressed (pulses the relay).
    #[serde(default)]
    pub exit_line: Option<u32>,
    /// The inputs are active low (a contact that pulls the line to ground).
    #[serde(default)]
    pub inputs_active_low: bool,
    /// A door open longer than this is "held open", seconds.
    #[serde(default = "default_held_open_s")]
    pub held_open_s: f32,
});

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

/// The settings every kind has.
pub struct Common<'a> {
    pub name: &'a str,
    pub filter: &'a Filter,
    pub max_age_s: f32,
    pub timeout_s: f32,
    pub retry_max_s: f32,
}

impl OutputConfig {
    /// The kind, as the config names it.
    pub fn kind(&self) -> &'static str {
        match self {
            OutputConfig::Exec(_) => "exec",
            OutputConfig::Webhook(_) => "webhook",
            OutputConfig::Mqtt(_) => "mqtt",
            OutputConfig::Gpio(_) => "gpio",
        }
    }

    pub fn common(&self) -> Common<'_> {
        macro_rules! common {
            ($o:expr) => {
                Common {
                    name: &$o.name,
                    filter: &$o.filter,
                    max_age_s: $o.max_age_s,
                    timeout_s: $o.timeout_s,
                    retry_max_s: $o.retry_max_s,
                }
            };
        }
        match self {
            OutputConfig::Exec(o) => common!(o),
            OutputConfig::Webhook(o) => common!(o),
            OutputConfig::Mqtt(o) => common!(o),
            OutputConfig::Gpio(o) => common!(o),
        }
    }

    pub fn name(&self) -> &str {
        self.common().name
    }

    /// The files the output reads (resolved against the config's folder).
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            OutputConfig::Webhook(o) => {
                o.secret_file.iter_mut().chain(o.ca_file.iter_mut()).collect()
            }
            OutputConfig::Mqtt(o) => {
                o.password_file.iter_mut().chain(o.ca_file.iter_mut()).collect()
            }
            OutputConfig::Exec(_) | OutputConfig::Gpio(_) => Vec::new(),
        }
    }

    /// Refuses a setting the output cannot run with, naming the key.
    pub fn check(&self) -> Result<(), OutOfRange> {
        let c = self.common();
        let bad = |key: &str, value: String, allowed: &str| OutOfRange {
            key: format!("outputs.{}.{key}", c.name),
            value,
            allowed: allowed.into(),
        };
        let plain = |ch: char| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_';
        if c.name.is_empty() || !c.name.chars().all(plain) {
            return Err(OutOfRange {
                key: "outputs.name".into(),
                value: format!("{:?}", c.name),
                allowed: "letters, digits, - and _ (it names the output's cursor and metrics)"
                    .into(),
            });
        }
        let mut seconds = vec![
            ("max_age_s", c.max_age_s),
            ("timeout_s", c.timeout_s),
            ("retry_max_s", c.retry_max_s),
        ];
        match self {
            OutputConfig::Exec(o) if o.command.is_empty() => {
                return Err(bad("command", "[]".into(), "a program and its arguments, e.g. [\"/usr/local/bin/bridge\", \"--door\", \"1\"]"));
            }
            OutputConfig::Exec(_) => {}
            OutputConfig::Webhook(o) => {
                if !(o.url.starts_with("http://") || o.url.starts_with("https://")) {
                    return Err(bad("url", format!("{:?}", o.url), "an http:// or https:// URL"));
                }
                if o.ca_file.is_some() && !o.url.starts_with("https://") {
                    return Err(bad(
                        "ca_file",
                        format!("{:?}", o.ca_file),
                        "only with an https:// url",
                    ));
                }
            }
            OutputConfig::Mqtt(o) => {
                if o.username.is_empty() != o.password_file.is_none() {
                    return Err(bad(
                        "username",
                        format!("{:?}", o.username),
                        "a user name and a password_file together, or neither",
                    ));
                }
                if split_broker(&o.broker).is_none() {
                    return Err(bad(
                        "broker",
                        format!("{:?}", o.broker),
                        "host:port of an MQTT broker, e.g. \"127.0.0.1:1883\"",
                    ));
                }
                if !topic_level(&o.topic_prefix) {
                    return Err(bad(
                        "topic_prefix",
                        format!("{:?}", o.topic_prefix),
                        "a topic level without wildcards or a trailing /, e.g. \"edgeid\"",
                    ));
                }
            }
            OutputConfig::Gpio(o) => {
                if o.line.is_none() && o.command.is_empty() {
                    return Err(bad("line", "none".into(), "the relay's GPIO line (offset on outputs.chip), or a command that switches the relay (run with `on` and `off`)"));
                }
                if !(50..=60_000).contains(&o.pulse_ms) {
                    return Err(bad(
                        "pulse_ms",
                        o.pulse_ms.to_string(),
                        "50 to 60000 milliseconds",
                    ));
                }
                let mut lines: Vec<u32> =
                    [o.line, o.door_line, o.exit_line].into_iter().flatten().collect();
                let n = lines.len();
                lines.sort_unstable();
                lines.dedup();
                if lines.len() != n {
                    return Err(bad(
                        "door_line",
                        format!("{:?}", o.door_line),
                        "a line the relay and the other input do not use",
                    ));
                }
                seconds.push(("held_open_s", o.held_open_s));
            }
        }
        for (key, v) in seconds {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(bad(key, v.to_string(), "seconds, above 0 and at most a day"));
            }
        }
        Ok(())
    }
}

/// Whether `prefix` can be a topic's first level: not empty, no wildcard, no trailing `/`.
pub fn topic_level(prefix: &str) -> bool {
    !(prefix.is_empty() || prefix.contains(['#', '+']) || prefix.ends_with('/'))
}

/// An MQTT broker's `host:port` (`mqtt://` allowed before it; 1883 when the port is left out).
pub fn split_broker(broker: &str) -> Option<(String, u16)> {
    let rest = broker.strip_prefix("mqtt://").unwrap_or(broker);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, 1883),
    };
    (!host.is_empty() && !host.contains('/')).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(text: &str) -> Result<OutputConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_an_output_cannot_run_with_are_refused_by_key() {
        let err = |t: &str| output(t).unwrap().check().unwrap_err().key;
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
            .unwrap()
            .check()
            .unwrap();
    }

    /// A key of another kind, or a typo, is refused by its name, not ignored: before each kind
    /// had its own keys, `url` on an exec output (or `secret_fle` on a webhook) was accepted
    /// and did nothing.
    #[test]
    fn keys_of_another_kind_and_typos_are_refused_by_name() {
        let e = output("name = \"a\"\nkind = \"exec\"\ncommand = [\"x\"]\nurl = \"http://x\"")
            .unwrap_err();
        assert!(e.contains("unknown field `url`"), "{e}");
        let e = output("name = \"h\"\nkind = \"webhook\"\nurl = \"https://x\"\nsecret_fle = \"k\"")
            .unwrap_err();
        assert!(e.contains("unknown field `secret_fle`"), "{e}");
        let e =
            output("name = \"m\"\nkind = \"mqtt\"\nbroker = \"h:1\"\npulse_ms = 5").unwrap_err();
        assert!(e.contains("unknown field `pulse_ms`"), "{e}");
        let e = output("name = \"x\"\nkind = \"telex\"").unwrap_err();
        assert!(e.contains("telex"), "{e}");
    }
}
