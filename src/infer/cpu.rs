//! Settings of the CPU backends (config `[cpu]`), process-wide like [`super::gpu`]'s and for
//! the same reason: the backend a stage loads on is chosen far from the config.
//!
//! tract runs each model on the thread that calls it; onnxruntime can split one model's work
//! over several threads. One thread per session is the default: the daemon already runs one
//! worker per camera, so on a device with as many cameras as cores more threads only contend.
//! A single camera on a multi-core device is where more threads pay (docs/benchmarks.md).

use std::sync::RwLock;

use serde::Deserialize;

use crate::util::OutOfRange;

/// The config's `[cpu]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuOptions {
    /// onnxruntime's intra-op threads per session on the CPU (backend `ort`, or `auto` where
    /// it picks onnxruntime).
    pub ort_threads: usize,
}

impl Default for CpuOptions {
    fn default() -> CpuOptions {
        CpuOptions { ort_threads: 1 }
    }
}

impl CpuOptions {
    /// Refuses a thread count onnxruntime cannot use.
    pub fn check(&self) -> Result<(), OutOfRange> {
        if !(1..=256).contains(&self.ort_threads) {
            return Err(OutOfRange {
                key: "cpu.ort_threads".into(),
                value: self.ort_threads.to_string(),
                allowed: "1 to 256 threads (1: one per session, the daemon's worker)".into(),
            });
        }
        Ok(())
    }
}

static OPTIONS: RwLock<Option<CpuOptions>> = RwLock::new(None);

/// Sets the options every CPU session loaded from now on uses.
pub fn configure(options: &CpuOptions) {
    *OPTIONS.write().unwrap_or_else(|e| e.into_inner()) = Some(options.clone());
}

/// The options in force (the defaults until [`configure`] is called).
pub fn options() -> CpuOptions {
    OPTIONS.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}
