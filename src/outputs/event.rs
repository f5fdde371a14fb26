//! What an output is given: the event of one journal record, where it goes (a sink), and why a
//! delivery failed.

use serde::Serialize;

use crate::config::outputs::OutputConfig;
use crate::decide::Outcome;
use crate::journal::Entry;

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
        let c = output.common();
        let fresh = (now_ms - decided) as f64 <= c.max_age_s as f64 * 1000.0;
        Event { output: c.name, actuate: d.outcome == Outcome::Granted && fresh, entry }
    }
}

/// Why a delivery failed (it is retried).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Where events go.
pub trait Sink: Send {
    fn deliver(&mut self, event: &Event<'_>, body: &[u8]) -> Result<(), DeliveryError>;
}
