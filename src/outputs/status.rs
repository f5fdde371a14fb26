//! An output's state, read by `/metrics` and `/healthz`.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Mutex;

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

    pub(super) fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}
