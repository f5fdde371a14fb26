//! A device's side of gallery distribution: every change on the broker, verified, applied in
//! version order, each in one transaction with the gallery's version.
//!
//! On connecting, the broker sends every retained change; a live one comes as it is
//! published. A change ahead of the next version waits for the ones before it. One not newer
//! than what the gallery holds is never applied: retained ones are the history the device
//! has already applied, passed over quietly; a live one is a replay (or a rollback) and is
//! refused and counted, as is a change whose signature or seal does not hold. The version
//! held is retained on `<prefix>/fleet/devices/<device>/gallery_version` and reported to the
//! central database by the shipper.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use rumqttc::Packet;

use super::broker::Session;
use super::change::{self, Op, Opened};
use super::error::FleetError;
use super::health::FleetStatus;
use super::offer::{self, Offer};
use crate::config::fleet::FleetConfig;
use crate::encode::Embedding;
use crate::gallery::{Gallery, GalleryError, Key, Template};

pub struct Subscriber {
    cfg: FleetConfig,
    device: String,
    gallery: Gallery,
    key: Key,
    public: VerifyingKey,
    access: super::broker::Access,
    model_id: String,
    /// Changes that arrived ahead of the next version, by version.
    pending: BTreeMap<i64, Opened>,
    /// The wait before the next connection attempt (doubling to 30 s while the broker cannot
    /// be reached, back to 1 s once it is), and whether the failure was logged.
    retry: Duration,
    failing: bool,
    /// Where verified config offers newer than the one run go (with `fleet.updates`), and the
    /// newest sent there.
    offers: Option<std::sync::mpsc::Sender<Offer>>,
    offered: i64,
}

impl Subscriber {
    /// A subscriber applying changes to `gallery` (opened for the device's encoder,
    /// `model_id`).
    pub fn new(
        cfg: &FleetConfig,
        device: &str,
        gallery: Gallery,
        model_id: &str,
    ) -> Result<Subscriber, FleetError> {
        let public = crate::trust::verifying_key(&cfg.public_key)
            .map_err(|e| FleetError::Key { what: "public_key".into(), why: e.to_string() })?;
        Ok(Subscriber {
            cfg: cfg.clone(),
            device: device.to_string(),
            key: super::channel::device_key(cfg)?,
            access: cfg.broker_access()?,
            gallery,
            public,
            model_id: model_id.to_string(),
            pending: BTreeMap::new(),
            retry: Duration::from_secs(1),
            failing: false,
            offers: None,
            offered: 0,
        })
    }

    /// Also listens for config offers (with `fleet.updates`): each one verified and newer than
    /// the one the device runs and the last it refused goes to `offers`, for the daemon to
    /// check whole and apply or refuse.
    pub fn with_offers(mut self, offers: std::sync::mpsc::Sender<Offer>) -> Subscriber {
        self.offers = Some(offers);
        self
    }

    fn version_topic(&self) -> String {
        let device = self.device.replace(['/', '#', '+'], "_");
        format!("{}/fleet/devices/{device}/gallery_version", self.cfg.topic_prefix)
    }

    /// Listens until `stop` is set, reconnecting with back-off (up to 30 s) when the broker
    /// is lost.
    pub fn run(mut self, status: &FleetStatus, stop: &AtomicBool) {
        match self.gallery.fleet_version() {
            Ok(v) => status.gallery_version.store(v, Ordering::Relaxed),
            Err(e) => log::error!("fleet: {e}"),
        }
        while !stop.load(Ordering::SeqCst) {
            match self.session(status, stop) {
                Ok(()) => return,
                Err(e) => {
                    if !self.failing {
                        log::warn!("fleet: {e}; reconnecting");
                    }
                    self.failing = true;
                    let until = Instant::now() + self.retry;
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    self.retry = (self.retry * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// One connection: subscribe, then take changes until `stop` (Ok) or the broker is lost.
    fn session(&mut self, status: &FleetStatus, stop: &AtomicBool) -> Result<(), FleetError> {
        let timeout = Duration::from_secs(10);
        let id = format!("edgeid-{}-fleet-{}", self.device, std::process::id());
        let mut s = Session::connect(&self.cfg.broker, &self.access, &id, timeout)?;
        let filter = change::topic_filter(&self.cfg.topic_prefix);
        s.subscribe(&filter, timeout)?;
        log::info!("fleet: listening for gallery changes on {} ({filter})", self.cfg.broker);
        let offers = offer::topic(&self.cfg.topic_prefix);
        if self.offers.is_some() {
            s.subscribe(&offers, timeout)?;
            log::info!("fleet: listening for config offers on {} ({offers})", self.cfg.broker);
        }
        (self.retry, self.failing) = (Duration::from_secs(1), false);
        self.report(&mut s, status);
        for p in std::mem::take(&mut s.held) {
            self.take_any(&p, &offers, status);
        }
        self.apply_ready(&mut s, status);
        while !stop.load(Ordering::SeqCst) {
            if let Some(Packet::Publish(p)) = s.next(Duration::from_millis(100))? {
                self.take_any(&p, &offers, status);
                self.apply_ready(&mut s, status);
            }
        }
        s.disconnect();
        Ok(())
    }

    fn take_any(&mut self, p: &rumqttc::Publish, offers: &str, status: &FleetStatus) {
        if p.topic == offers {
            self.take_offer(&p.payload, p.retain, status);
        } else {
            self.take(&p.payload, p.retain, status);
        }
    }

    /// Verifies a received config offer and passes it on, or refuses it.
    fn take_offer(&mut self, payload: &[u8], retained: bool, status: &FleetStatus) {
        let (Some(to), Some(updates)) = (&self.offers, &self.cfg.updates) else { return };
        let refuse = |why: String| {
            status.offers_refused.fetch_add(1, Ordering::Relaxed);
            log::warn!("fleet: config offer refused: {why}");
        };
        if payload.is_empty() {
            return; // a retained offer cleared
        }
        let o = match offer::open(payload, &self.key, &self.public) {
            Ok(o) => o,
            Err(why) => return refuse(why),
        };
        let state = match offer::State::read(updates) {
            Ok(s) => s,
            Err(why) => return refuse(why),
        };
        if o.version <= state.applied {
            if !retained {
                refuse(format!(
                    "version {} is not newer than the one this device runs, {}: a replayed or rolled-back offer is never applied",
                    o.version, state.applied
                ));
            }
            return;
        }
        let refused_before = state.refused.is_some_and(|r| r.version == o.version);
        if refused_before || o.version <= self.offered {
            return; // refused already, or being checked
        }
        self.offered = o.version;
        log::info!("fleet: config offer {} received ({} files)", o.version, o.files.len());
        let _ = to.send(o);
    }

    /// Verifies a received change and files it as pending, or refuses it.
    fn take(&mut self, payload: &[u8], retained: bool, status: &FleetStatus) {
        let refuse = |why: String| {
            status.changes_refused.fetch_add(1, Ordering::Relaxed);
            log::warn!("fleet: gallery change refused: {why}");
        };
        let opened = match change::open(payload, &self.key, &self.public) {
            Ok(o) => o,
            Err(why) => return refuse(why),
        };
        let held = status.gallery_version.load(Ordering::Relaxed);
        if opened.version <= held {
            if !retained {
                refuse(format!(
                    "version {} is not newer than the version held, {held}: a replayed or rolled-back change is never applied",
                    opened.version
                ));
            }
            return;
        }
        self.pending.insert(opened.version, opened);
    }

    /// Applies every pending change that is next in order.
    fn apply_ready(&mut self, s: &mut Session, status: &FleetStatus) {
        let mut applied = false;
        loop {
            let next = status.gallery_version.load(Ordering::Relaxed) + 1;
            let Some(o) = self.pending.remove(&next) else { break };
            match self.apply(&o) {
                Ok(()) => {
                    status.changes_applied.fetch_add(1, Ordering::Relaxed);
                    log::info!(
                        "fleet: gallery change {} applied: {} `{}`",
                        o.version,
                        o.change.op.as_str(),
                        o.change.name
                    );
                }
                Err(GalleryError::Stale { held, .. }) => {
                    // Applied by another process (or an earlier run): catch up with the file.
                    status.gallery_version.store(held, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    // Skipping is safer than stopping: a later removal must still reach
                    // this device.
                    log::error!(
                        "fleet: gallery change {} cannot be applied here and is passed over: {e}",
                        o.version
                    );
                    status.changes_refused.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self.gallery.apply_versioned(o.version, "", None) {
                        log::error!("fleet: {e}");
                        break;
                    }
                }
            }
            status.gallery_version.store(o.version, Ordering::Relaxed);
            applied = true;
        }
        self.pending.retain(|&v, _| v > status.gallery_version.load(Ordering::Relaxed));
        if applied {
            self.report(s, status);
        }
    }

    fn apply(&mut self, o: &Opened) -> Result<(), GalleryError> {
        let c = &o.change;
        let refused = |reason: String| GalleryError::Refused {
            path: self.gallery.path().to_path_buf(),
            reason,
        };
        let name = crate::gallery::normalise_name(&c.name).map_err(|why| {
            refused(format!("the change's name {:?} is not valid ({why})", c.name))
        })?;
        match c.op {
            Op::Remove => self.gallery.apply_versioned(o.version, &name, None),
            Op::Add => {
                if c.model_id != self.model_id {
                    return Err(refused(format!(
                        "its templates are of encoder `{}`, this device runs `{}`; publish the identity again from a config with this device's encoder",
                        c.model_id, self.model_id
                    )));
                }
                let source = format!("fleet change {}", o.version);
                let templates: Vec<Template> = c
                    .templates
                    .iter()
                    .map(|v| Template {
                        embedding: Embedding(v.clone()),
                        source: source.clone(),
                        crop: None,
                    })
                    .collect();
                self.gallery.apply_versioned(o.version, &name, Some(&templates))
            }
        }
    }

    fn report(&self, s: &mut Session, status: &FleetStatus) {
        let v = status.gallery_version.load(Ordering::Relaxed).to_string();
        s.publish_nowait(&self.version_topic(), v.as_bytes(), true);
    }
}
