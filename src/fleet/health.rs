//! The fleet's state on a device, read by `/metrics` and `fleet status`.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Mutex;

/// The fleet's state on a device, read by `/metrics`.
#[derive(Debug, Default)]
pub struct FleetStatus {
    /// Records shipped since the start.
    pub shipped: AtomicU64,
    /// Decisions in the journal that the central copy does not hold yet.
    pub lag: AtomicI64,
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
    /// Why the latest shipping attempt failed, while it has not succeeded since.
    pub failing: Mutex<Option<String>>,
}

impl FleetStatus {
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}
