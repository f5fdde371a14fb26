//! An output's state, read by `/metrics` and `/healthz`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An output's state, read by `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct OutputStatus {
    pub name: String,
    pub delivered: AtomicU64,
    pub failures: AtomicU64,
    /// The last journal record the output dealt with.
    pub cursor: AtomicI64,
    /// The journal's last record id, shared with the journal's writer: the lag is read against
    /// it when asked, so it grows while a delivery is being retried (it froze there when the
    /// output itself stored it between deliveries).
    pub journal_head: Arc<AtomicI64>,
    /// Why the latest attempt failed, while it has not succeeded since.
    pub failing: Mutex<Option<String>>,
    /// gpio: a door opened with no grant or exit request before it; open too long; exit
    /// button presses.
    pub door_forced: AtomicU64,
    pub door_held: AtomicU64,
    pub exit_requests: AtomicU64,
}

impl OutputStatus {
    pub fn new(name: &str, journal_head: Arc<AtomicI64>) -> OutputStatus {
        OutputStatus { name: name.to_string(), journal_head, ..OutputStatus::default() }
    }

    /// Journal records the output has not dealt with yet, now.
    pub fn lag(&self) -> i64 {
        (self.journal_head.load(Ordering::Relaxed) - self.cursor.load(Ordering::Relaxed)).max(0)
    }

    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}
