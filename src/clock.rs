//! The wall clock in Unix milliseconds: the time of every frame, decision, record and delivery
//! (capture, decide, journal, outputs, fleet, audits), from one place at the bottom of the
//! layers, so that none of them depends on another for the time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 on a clock set before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
