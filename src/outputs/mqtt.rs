//! The `mqtt` output: each event published with QoS 1 on `<prefix>/<device>/<camera>/decision`
//! and delivered once the broker acknowledged it (PUBACK). While connected, `<prefix>/<device>/
//! availability` holds `online` (retained); the broker's last will turns it `offline` when the
//! device drops off, and a clean stop says so itself. With a discovery prefix (Home
//! Assistant's `homeassistant`), each camera is announced once per connection as a sensor whose
//! state is its last decision's outcome (retained on `<prefix>/<device>/<camera>/state`) and
//! whose attributes are the rest of the event, and as an event entity that fires on every
//! decision, so a door and its decisions appear in Home Assistant by themselves.
//!
//! Any error drops the connection; the next attempt connects afresh (clean session), so no
//! half-sent state is carried over a broker restart: the record is simply published again.

use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Packet, QoS};

use super::event::{DeliveryError, Event as Decision, Sink};

/// How the output reaches the broker beyond plain MQTT on TCP.
#[derive(Default)]
pub struct Access {
    /// The user name and password the broker asks for.
    pub credentials: Option<(String, String)>,
    /// TLS, trusting the CA certificates given (PEM file `ca_file`).
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

pub struct Mqtt {
    host: String,
    port: u16,
    access: Access,
    prefix: String,
    device: String,
    discovery: String,
    cameras: Vec<String>,
    timeout: Duration,
    session: Option<(Client, Connection)>,
}

impl Mqtt {
    pub fn new(
        broker: &str,
        prefix: &str,
        discovery: &str,
        device: &str,
        cameras: &[String],
        timeout: Duration,
        access: Access,
    ) -> Mqtt {
        let (host, port) =
            crate::config::outputs::split_broker(broker).expect("checked with the config");
        Mqtt {
            host,
            port,
            access,
            prefix: prefix.to_string(),
            discovery: discovery.to_string(),
            cameras: cameras.iter().map(|c| level(c)).collect(),
            device: level(device),
            timeout,
            session: None,
        }
    }

    fn availability(&self) -> String {
        format!("{}/{}/availability", self.prefix, self.device)
    }

    fn fail(&mut self, what: String) -> DeliveryError {
        self.session = None;
        DeliveryError(format!("MQTT broker {}:{}: {what}", self.host, self.port))
    }

    /// Waits for the next acknowledgement of `kind` (ConnAck or PubAck), up to the timeout.
    fn wait_for(&mut self, kind: &str) -> Result<(), DeliveryError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((_, connection)) = self.session.as_mut() else {
                return Err(self.fail("not connected".into()));
            };
            match connection.recv_timeout(left) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) if kind == "CONNACK" => return Ok(()),
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) if kind == "PUBACK" => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.fail(e.to_string())),
                Err(_) => return Err(self.fail(format!("no {kind} within {:.1?}", self.timeout))),
            }
        }
    }

    fn connect(&mut self) -> Result<(), DeliveryError> {
        let id = format!("edgeid-{}-{}", self.device, std::process::id());
        let mut options = MqttOptions::new(id, &self.host, self.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_last_will(LastWill::new(self.availability(), "offline", QoS::AtLeastOnce, true));
        if let Some((user, password)) = &self.access.credentials {
            options.set_credentials(user, password);
        }
        if let Some(tls) = &self.access.tls {
            let tls = rumqttc::TlsConfiguration::Rustls(tls.clone());
            options.set_transport(rumqttc::Transport::tls_with_config(tls));
        }
        self.session = Some(Client::new(options, 16));
        self.wait_for("CONNACK")?;
        self.publish(&self.availability(), b"online", true)?;
        if !self.discovery.is_empty() {
            for camera in self.cameras.clone() {
                for (topic, config) in self.announcements(&camera) {
                    self.publish(&topic, config.as_bytes(), true)?;
                }
            }
        }
        Ok(())
    }

    /// Home Assistant's MQTT discovery messages for `camera` (retained): a sensor whose state
    /// is the camera's last outcome (from the retained state topic, so it survives a Home
    /// Assistant restart; its attributes are the last decision), and an event entity that
    /// fires on every decision, the same outcome twice included (a sensor's unchanged state
    /// fires no trigger). Field names as in Home Assistant's MQTT sensor and event docs.
    fn announcements(&self, camera: &str) -> [(String, String); 2] {
        let id = format!("edgeid_{}_{camera}", self.device)
            .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'), "_");
        let decision = format!("{}/{}/{camera}/decision", self.prefix, self.device);
        let device = serde_json::json!({
            "identifiers": [format!("edgeid_{}", self.device)],
            "name": format!("edgeid {}", self.device),
            "manufacturer": "edgeid",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        let origin =
            serde_json::json!({ "name": "edgeid", "sw_version": env!("CARGO_PKG_VERSION") });
        let sensor = serde_json::json!({
            "name": format!("{camera} last decision"),
            "unique_id": format!("{id}_decision"),
            "state_topic": self.state_topic(camera),
            "value_template": "{{ value_json.outcome }}",
            "json_attributes_topic": decision,
            "availability_topic": self.availability(),
            "icon": "mdi:door",
            "device": device,
            "origin": origin,
        });
        let event = serde_json::json!({
            "name": format!("{camera} decision"),
            "unique_id": format!("{id}_event"),
            "state_topic": decision,
            "event_types": ["granted", "denied"],
            "value_template": "{{ {'event_type': value_json.outcome, 'id': value_json.id, 'reasons': value_json.reasons, 'identity': value_json.identity} | to_json }}",
            "availability_topic": self.availability(),
            "icon": "mdi:door",
            "device": device,
            "origin": origin,
        });
        [
            (format!("{}/sensor/{id}/config", self.discovery), sensor.to_string()),
            (format!("{}/event/{id}/config", self.discovery), event.to_string()),
        ]
    }

    /// `camera`'s retained state: its last outcome, with the record's id and time, no name (a
    /// retained message is handed to every later subscriber).
    fn state_topic(&self, camera: &str) -> String {
        format!("{}/{}/{camera}/state", self.prefix, self.device)
    }

    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> Result<(), DeliveryError> {
        let Some((client, _)) = self.session.as_ref() else {
            return Err(self.fail("not connected".into()));
        };
        if let Err(e) = client.publish(topic, QoS::AtLeastOnce, retain, payload.to_vec()) {
            return Err(self.fail(e.to_string()));
        }
        self.wait_for("PUBACK")
    }
}

/// `name` as one topic level: no separators or wildcards.
fn level(name: &str) -> String {
    name.replace(['/', '#', '+'], "_")
}

impl Sink for Mqtt {
    fn deliver(&mut self, event: &Decision<'_>, body: &[u8]) -> Result<(), DeliveryError> {
        if self.session.is_none() {
            self.connect()?;
        }
        let camera = level(&event.entry.decision.camera);
        let topic = format!("{}/{}/{camera}/decision", self.prefix, self.device);
        self.publish(&topic, body, false)?;
        let state = serde_json::json!({
            "outcome": event.entry.decision.outcome.as_str(),
            "id": event.entry.id,
            "time_ms": event.entry.decision.time_ms,
        });
        self.publish(&self.state_topic(&camera), state.to_string().as_bytes(), true)
    }
}

impl Drop for Mqtt {
    /// A clean stop marks the device offline itself (the last will is only for a lost one).
    fn drop(&mut self) {
        if self.session.is_some() {
            let topic = self.availability();
            let _ = self.publish(&topic, b"offline", true);
            // DISCONNECT sent before the socket closes: else the broker fires the last will,
            // and `offline` arrives twice.
            if let Some((client, connection)) = self.session.as_mut() {
                if client.disconnect().is_ok() {
                    let deadline = Instant::now() + self.timeout;
                    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                        match connection.recv_timeout(left) {
                            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)))
                            | Ok(Err(_))
                            | Err(_) => break,
                            Ok(Ok(_)) => {}
                        }
                    }
                }
            }
        }
    }
}
