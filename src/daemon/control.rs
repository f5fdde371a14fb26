//! The flags that steer a running daemon, shared by the signal handlers (or a test), the
//! workers, the config-offer updater and the operator API: in a module of their own, so that
//! none of them reaches back into the daemon's start-up for them.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// Flags the caller (signal handlers, or a test) raises to steer a running daemon.
#[derive(Clone, Default)]
pub struct Control {
    pub stop: Arc<AtomicBool>,
    /// Incremented to ask the workers to reload the gallery and thresholds.
    pub reload: Arc<AtomicU64>,
    /// Raised with `stop` when the daemon is to start again (a config offer was applied): the
    /// caller runs it anew once it has stopped ([`super::RunSummary::restart`]).
    pub restart: Arc<AtomicBool>,
    /// Raised with `stop` by a stop asked from outside (SIGTERM, SIGINT): a restart the daemon
    /// asked for yields to it, so that `systemctl stop` stops.
    pub terminate: Arc<AtomicBool>,
}
