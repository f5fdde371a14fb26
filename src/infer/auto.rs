//! Backend `auto`: each model runs on whichever backend is fastest for it on this device.
//!
//! Which runtime wins depends on the model and the machine (onnxruntime's CPU provider ran the
//! bundled models 1.6-2.8× faster than tract on one x86-64 machine; on a GPU, the copies to and
//! from the device may outweigh the gain for the tiny heads), so it is measured, not assumed: at
//! load, every backend this build and device can load runs the model on its timing input and
//! the one with the lowest median is kept. The choice is cached per model file (sha256) and
//! device (see [`Device::fingerprint`]), so later starts load one backend only; it is logged,
//! kept for `edgeid bench` ([`choices`]), and measured again when the model, the device, the
//! onnxruntime library or edgeid changes. A cache that cannot be read is measured again and
//! rewritten; one that cannot be written only costs the measurement at the next start.

use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use super::cache::default_cache;
use super::device::Device;
use super::session::{concrete_shape, BackendKind, Session, Tensor};
use crate::manifest::{Manifest, ModelError};

/// Timed runs per backend after two warm-up runs.
const RUNS: usize = 7;

/// The cache file's format version; another version is measured again.
const VERSION: u32 = 1;

/// One backend's time on a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    pub backend: BackendKind,
    pub median_ms: f64,
}

/// What `auto` chose for one model, and from what.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    /// The manifest's model id.
    pub model: String,
    pub sha256: String,
    pub backend: BackendKind,
    /// Every backend that loaded, fastest first.
    pub timings: Vec<Timing>,
    /// Taken from the cache (measured at an earlier start) rather than measured now.
    pub cached: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    version: u32,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    sha256: String,
    device: String,
    backend: BackendKind,
    timings: Vec<Timing>,
}

/// The input a model is timed on: its fixed dimensions, batch 1, and 160 for a free side
/// (a middle P-Net pyramid level for a 640×480 camera).
pub fn timing_input(manifest: &Manifest) -> Result<Tensor, ModelError> {
    let shape = concrete_shape(manifest.input()?, 160);
    // Mid-grey rather than zeros, so that no kernel takes a shortcut on zeros.
    let n = shape.iter().product();
    Ok(Tensor::new(shape, vec![0.5; n]))
}

/// Median milliseconds of `runs` runs on `input`, after two warm-up runs (plans built,
/// caches filled).
pub fn median_ms(session: &mut dyn Session, input: &Tensor, runs: usize) -> anyhow::Result<f64> {
    for _ in 0..2 {
        session.run(input.clone())?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        session.run(input.clone())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// This device's fingerprint, read once per process (every model's load asks for it).
fn fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| Device::probe().fingerprint())
}

fn registry() -> &'static Mutex<Vec<Choice>> {
    static CHOICES: Mutex<Vec<Choice>> = Mutex::new(Vec::new());
    &CHOICES
}

/// The choices `auto` made in this process, in load order.
pub fn choices() -> Vec<Choice> {
    registry().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Loads the model on the fastest backend, from the cache at `cache` when it holds this model
/// on this device.
pub fn load(
    manifest: &Manifest,
    bytes: &[u8],
    purposes: &[&str],
    cache: Option<&Path>,
) -> Result<(Box<dyn Session>, Choice), ModelError> {
    let device = fingerprint().to_string();
    let mut stored = cache.map(read_cache).unwrap_or_default();
    let hit = stored
        .entries
        .iter()
        .find(|e| {
            e.sha256 == manifest.sha256
                && e.device == device
                && BackendKind::built().contains(&e.backend)
        })
        .cloned();
    if let Some(e) = hit {
        match super::concrete::load_bytes(e.backend, manifest, bytes, purposes) {
            Ok(session) => {
                let choice = Choice {
                    model: manifest.id.clone(),
                    sha256: manifest.sha256.clone(),
                    backend: e.backend,
                    timings: e.timings,
                    cached: true,
                };
                log::info!("backend auto: {} on {} (cached)", manifest.id, e.backend.name());
                record(&choice);
                return Ok((session, choice));
            }
            Err(err) => log::warn!(
                "backend auto: the cached choice {} for {} no longer loads ({err}); measuring again",
                e.backend.name(),
                manifest.id
            ),
        }
    }

    let input = timing_input(manifest)?;
    let mut best: Option<(f64, Box<dyn Session>)> = None;
    let mut timings = Vec::new();
    let mut first_error = None;
    for kind in BackendKind::built() {
        let mut session = match super::concrete::load_bytes(kind, manifest, bytes, purposes) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("backend auto: {} cannot run {}: {e}", kind.name(), manifest.id);
                first_error.get_or_insert(e);
                continue;
            }
        };
        match median_ms(session.as_mut(), &input, RUNS) {
            Ok(ms) => {
                // Whole microseconds: finer is noise, and the value then reads back from the
                // cache's JSON exactly as it was measured.
                let ms = (ms * 1e3).round() / 1e3;
                timings.push(Timing { backend: kind, median_ms: ms });
                if best.as_ref().is_none_or(|(b, _)| ms < *b) {
                    best = Some((ms, session));
                }
            }
            Err(e) => log::debug!("backend auto: {} failed on {}: {e:#}", kind.name(), manifest.id),
        }
    }
    let Some((_, session)) = best else {
        return Err(first_error.unwrap_or_else(|| ModelError::Backend {
            backend: "auto".into(),
            path: manifest.model_path(),
            message: "no backend of this build could run it".into(),
        }));
    };
    timings.sort_by(|a, b| a.median_ms.total_cmp(&b.median_ms));
    let backend = timings[0].backend;
    log::info!(
        "backend auto: {} on {} ({})",
        manifest.id,
        backend.name(),
        timings
            .iter()
            .map(|t| format!("{} {:.2} ms", t.backend.name(), t.median_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let choice = Choice {
        model: manifest.id.clone(),
        sha256: manifest.sha256.clone(),
        backend,
        timings: timings.clone(),
        cached: false,
    };
    if let Some(path) = cache {
        stored.entries.retain(|e| !(e.sha256 == manifest.sha256 && e.device == device));
        stored.entries.push(Entry { sha256: manifest.sha256.clone(), device, backend, timings });
        if let Err(e) = write_cache(path, &stored) {
            log::warn!(
                "backend auto: cannot write the choice cache {} ({e:#}); it will be measured again at the next start",
                path.display()
            );
        }
    }
    record(&choice);
    Ok((session, choice))
}

fn record(choice: &Choice) {
    registry().lock().unwrap_or_else(|e| e.into_inner()).push(choice.clone());
}

fn read_cache(path: &Path) -> Cache {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cache::default(),
        Err(e) => {
            log::warn!("backend auto: cannot read {} ({e}); measuring again", path.display());
            return Cache::default();
        }
    };
    match serde_json::from_str::<Cache>(&text) {
        Ok(c) if c.version == VERSION => c,
        Ok(_) => Cache::default(),
        Err(e) => {
            log::warn!(
                "backend auto: {} is not a choice cache ({e}); measuring again and rewriting it",
                path.display()
            );
            Cache::default()
        }
    }
}

/// Writes the whole cache to a temporary file beside it, then renames it over the old one, so
/// that a crash never leaves half a file.
fn write_cache(path: &Path, cache: &Cache) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let cache = Cache { version: VERSION, entries: cache.entries.clone() };
    crate::util::write_atomically(path, serde_json::to_string_pretty(&cache)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
