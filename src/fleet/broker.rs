//! The MQTT side of the fleet: a session with the broker that gallery changes go through
//! (rumqttc, QoS 1), for the publisher and for the devices.

use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, Publish, QoS};

use super::error::FleetError;
use crate::config::fleet::FleetConfig;

pub use crate::config::outputs::split_broker as split;
pub use crate::outputs::MqttAccess as Access;

/// A connected session.
pub struct Session {
    broker: String,
    client: Client,
    connection: Connection,
    /// Messages that arrived while waiting for an acknowledgement.
    pub held: Vec<Publish>,
}

impl Session {
    /// Connects as `id` (a clean session) and waits for the broker's CONNACK.
    pub fn connect(
        broker: &str,
        access: &Access,
        id: &str,
        timeout: Duration,
    ) -> Result<Session, FleetError> {
        let (host, port) = split(broker).ok_or_else(|| FleetError::Broker {
            broker: broker.into(),
            why: "not host:port".into(),
        })?;
        let mut options = MqttOptions::new(id, host, port);
        options.set_keep_alive(Duration::from_secs(15)).set_clean_session(true);
        // A change carries templates, an offer model files (up to offer::MAX_BYTES, a third more
        // in base64): far over rumqttc's 10 KiB default.
        options.set_max_packet_size(64 << 20, 64 << 20);
        if let Some((user, password)) = &access.credentials {
            options.set_credentials(user, password);
        }
        if let Some(tls) = &access.tls {
            let tls = rumqttc::TlsConfiguration::Rustls(tls.clone());
            options.set_transport(rumqttc::Transport::tls_with_config(tls));
        }
        let (client, connection) = Client::new(options, 64);
        let mut s = Session { broker: broker.to_string(), client, connection, held: Vec::new() };
        s.wait_for(timeout, |p| matches!(p, Packet::ConnAck(_)))?;
        Ok(s)
    }

    fn fail(&self, why: String) -> FleetError {
        FleetError::Broker { broker: self.broker.clone(), why }
    }

    /// Waits up to `timeout` for a packet `want` takes; messages meanwhile are held.
    fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<(), FleetError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now()))? {
                Some(Packet::Publish(p)) => self.held.push(p),
                Some(p) if want(&p) => return Ok(()),
                Some(_) => {}
                None => return Err(self.fail(format!("no answer within {timeout:.1?}"))),
            }
        }
    }

    /// The next packet from the broker within `timeout` (`None`: none came).
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Packet>, FleetError> {
        match self.connection.recv_timeout(timeout) {
            Ok(Ok(Event::Incoming(p))) => Ok(Some(p)),
            Ok(Ok(Event::Outgoing(_))) => Ok(Some(Packet::PingReq)),
            Ok(Err(e)) => Err(self.fail(e.to_string())),
            Err(_) => Ok(None),
        }
    }

    /// Publishes with QoS 1 and waits for the broker's PUBACK.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        timeout: Duration,
    ) -> Result<(), FleetError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .map_err(|e| self.fail(e.to_string()))?;
        self.wait_for(timeout, |p| matches!(p, Packet::PubAck(_)))
    }

    /// Publishes with QoS 1 without waiting (a report the device repeats anyway).
    pub fn publish_nowait(&mut self, topic: &str, payload: &[u8], retain: bool) {
        let _ = self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload.to_vec());
    }

    /// Subscribes to `filter` with QoS 1 and waits for the SUBACK.
    pub fn subscribe(&mut self, filter: &str, timeout: Duration) -> Result<(), FleetError> {
        self.client.subscribe(filter, QoS::AtLeastOnce).map_err(|e| self.fail(e.to_string()))?;
        self.wait_for(timeout, |p| matches!(p, Packet::SubAck(_)))
    }

    pub fn disconnect(self) {
        let _ = self.client.disconnect();
    }
}

impl FleetConfig {
    /// How to reach the broker: its user name and password, and TLS.
    pub(super) fn broker_access(&self) -> Result<Access, FleetError> {
        let credentials = match &self.broker_password_file {
            Some(path) => {
                Some((self.broker_username.clone(), self.secret("broker_password_file", path)?))
            }
            None => None,
        };
        let tls = match &self.broker_ca_file {
            Some(path) => Some(crate::util::tls_client_trusting(path).map_err(|why| {
                FleetError::Key { what: format!("broker_ca_file {}", path.display()), why }
            })?),
            None => None,
        };
        Ok(Access { credentials, tls })
    }
}
