//! The fleet's state on a device, read by `/metrics` and `fleet status`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The fleet's state on a device, read by `/metrics`.
#[derive(Debug, Default)]
pub struct FleetStatus {
    /// Records shipped since the start.
    pub shipped: AtomicU64,
    /// The last decision id the central copy was seen to hold (0 until a round has read it).
    pub central: AtomicI64,
    /// The journal's last record id, shared with the journal's writer: the lag is read against
    /// it, so it grows while shipping fails (it read 0 with hundreds of records unshipped when
    /// only a successful round set it).
    pub journal_head: Arc<AtomicI64>,
    /// The version of the gallery changes the device holds.
    pub gallery_version: AtomicI64,
    pub changes_applied: AtomicU64,
    /// Changes refused: badly signed, unreadable, or not newer than what is held.
    pub changes_refused: AtomicU64,
    /// The config offer the device runs (0: none).
    pub config_version: AtomicI64,
    /// Config offers refused: badly signed, not newer than the one run, or failing their checks
    /// or their audit.
    pub offers_refused: AtomicU64,
    /// The config offer being checked now (0: none), and its stage: 1 staged and read over the
    /// device's config, 2 its models loaded, 3 its audit running.
    pub offer_checking: AtomicI64,
    pub offer_stage: AtomicI64,
    /// Why the latest shipping attempt failed, while it has not succeeded since.
    pub failing: Mutex<Option<String>>,
}

impl FleetStatus {
    pub fn new(journal_head: Arc<AtomicI64>) -> FleetStatus {
        FleetStatus { journal_head, ..FleetStatus::default() }
    }

    /// Decisions in the journal that the central copy is not known to hold, now.
    pub fn lag(&self) -> i64 {
        (self.journal_head.load(Ordering::Relaxed) - self.central.load(Ordering::Relaxed)).max(0)
    }

    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}
