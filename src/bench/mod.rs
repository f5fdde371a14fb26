//! `edgeid bench`: what the runtime costs on this device, measured the way the daemon spends
//! it. Per backend: the time to load every model, then per stage of a frame (detect, align,
//! encode, PAD, 1:N search, the whole frame) the 50th/95th/99th percentile over repeated runs on
//! a real photo, frames per second and the peak resident memory. Per model (the config's and any
//! extra manifest, e.g. an int8 variant): load time and latency on each backend, on the model's
//! timing input (batch 1, fixed sides, 160 for a free side).
//!
//! Percentiles, not means: a kiosk's user waits for the slow frames. Compare figures as ratios
//! within one report: absolute times move with everything else the machine runs.

pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::align::align;
use crate::capture::load_image;
use crate::config::Config;
use crate::decide::Identities;
use crate::encode::Embedding;
use crate::gallery::search::Matrix;
use crate::gallery::Match;
use crate::infer::auto::{self, Choice};
use crate::infer::device::Device;
use crate::infer::{self, BackendKind};
use crate::manifest::Manifest;
use crate::pipeline::{FramePath, Pipeline};

pub struct Options {
    /// A photo with faces: every stage runs on it.
    pub image: PathBuf,
    /// Timed runs per stage and model (after a warm-up run).
    pub runs: usize,
    /// Backends to measure; empty: the config's.
    pub backends: Vec<BackendKind>,
    /// More manifests to time per model (another precision, another encoder).
    pub models: Vec<PathBuf>,
    /// Synthetic templates searched by the search stage.
    pub gallery: usize,
    /// Camera counts to measure throughput at (one pipeline and thread per camera, each
    /// replaying the photo, as the daemon runs one worker per source); empty: none.
    pub streams: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub edgeid: String,
    pub device: Device,
    pub image: String,
    pub width: u32,
    pub height: u32,
    /// Faces found in the photo (by the first backend).
    pub faces: usize,
    pub runs: usize,
    pub gallery: usize,
    pub backends: Vec<BackendRun>,
    pub models: Vec<ModelRun>,
    /// The per-model choices of backend `auto`, when measured.
    pub auto: Vec<Choice>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendRun {
    pub backend: BackendKind,
    /// Loading every model of the config (reading, hash check, parsing, first plan).
    pub load_ms: f64,
    /// The first whole frame after load: what the first person at the door waits for
    /// (cold caches, and on a GPU any shape the warm-up did not cover).
    pub first_frame_ms: f64,
    /// Its parts, each the first run of that stage after load: detection, alignment, the
    /// encoder's batch, the PAD heads (absent when PAD is off). Where the first frame is slow
    /// (a GPU provider's lazy set-up), this names the stage that pays.
    pub first_detect_ms: f64,
    pub first_align_ms: f64,
    pub first_encode_ms: f64,
    pub first_pad_ms: Option<f64>,
    /// The frame after it: whatever the first frame still set up shows as the gap between them.
    pub second_frame_ms: f64,
    pub stages: Vec<Stage>,
    /// 1000 / the whole frame's median.
    pub fps: f64,
    /// Frames per second of all cameras together, per camera count asked for.
    pub throughput: Vec<Throughput>,
    /// GPU memory this process holds with one pipeline loaded (MiB, from `nvidia-smi`), where
    /// an NVIDIA GPU is in use.
    pub gpu_mib: Option<f64>,
    /// The process's peak resident memory while this backend loaded and ran (MiB), when the
    /// kernel tells it (`/proc/self/status`); the peak is reset between backends.
    pub peak_rss_mib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub streams: usize,
    /// Whole frames per second, all streams together.
    pub fps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub stage: String,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelRun {
    pub model: String,
    pub file: String,
    pub precision: &'static str,
    /// The model it was derived from (the manifest's `derived_from`).
    pub derived_from: Option<String>,
    pub backend: BackendKind,
    pub input: Vec<usize>,
    pub load_ms: f64,
    /// The first run after load (after the load's own warm-up on a GPU).
    pub first_run_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Percentile `q` (0..1) of sorted milliseconds, nearest rank.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Times `f` `runs` times after one warm-up run.
fn time<T>(
    stage: &str,
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<Stage> {
    f().with_context(|| format!("bench stage {stage}"))?;
    let mut ms: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            // black_box: the result is dropped unread; the work must not be optimised away.
            f().map(|r| {
                std::hint::black_box(r);
                t.elapsed().as_secs_f64() * 1e3
            })
        })
        .collect::<anyhow::Result<_>>()?;
    ms.sort_by(f64::total_cmp);
    Ok(Stage {
        stage: stage.into(),
        p50_ms: percentile(&ms, 0.5),
        p95_ms: percentile(&ms, 0.95),
        p99_ms: percentile(&ms, 0.99),
    })
}

/// Peak resident memory in MiB (`VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak to the current resident memory (Linux `clear_refs` 5), so that each
/// backend's peak is its own; false where the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// GPU memory held by this process (MiB), as `nvidia-smi` lists it; `None` without an NVIDIA
/// GPU or driver, or when the process holds none.
fn gpu_mib() -> Option<f64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let me = std::process::id();
    let text = String::from_utf8_lossy(&out.stdout);
    let used: f64 = text
        .lines()
        .filter_map(|l| {
            let (pid, mib) = l.split_once(',')?;
            (pid.trim().parse::<u32>().ok()? == me).then(|| mib.trim().parse::<f64>().ok())?
        })
        .sum();
    (used > 0.0).then_some(used)
}

/// Whole frames per second with `streams` frame paths, each on its own thread running `runs`
/// frames of the photo; the models are loaded first, outside the timing.
fn throughput(
    cfg: &Config,
    frame: &crate::capture::Frame,
    streams: usize,
    runs: usize,
    templates: usize,
) -> anyhow::Result<Throughput> {
    let mut paths = (0..streams)
        .map(|_| Pipeline::load(cfg).map(|p| FramePath::new(cfg, p, None)))
        .collect::<Result<Vec<_>, _>>()?;
    // Each stream's faces searched among the bench's synthetic templates.
    let who = Synthetic(synthetic_gallery(paths[0].pipeline.encoder.dim(), templates));
    for p in &mut paths {
        p.step(frame, None, &who)?;
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        let who = &who;
        let workers: Vec<_> = paths
            .iter_mut()
            .map(|p| {
                s.spawn(move || (0..runs).try_for_each(|_| p.step(frame, None, who).map(drop)))
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().expect("a bench stream panicked"))
    })?;
    let fps = (streams * runs) as f64 / t.elapsed().as_secs_f64();
    Ok(Throughput { streams, fps })
}

/// Unit vectors for the search stage: a fixed xorshift sequence, the same every run.
/// Synthetic templates as the identities a bench frame's faces are searched among.
struct Synthetic(Matrix);

impl Identities for Synthetic {
    fn best_match(&self, probe: &Embedding) -> Option<Match> {
        let (i, similarity) = self.0.best(&probe.0)?;
        Some(Match {
            name: format!("synthetic-{i}"),
            similarity,
            reference: self.0.row(i).to_vec(),
        })
    }
}

fn synthetic_gallery(dim: usize, n: usize) -> Matrix {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut m = Matrix::new(dim);
    let mut v = vec![0f32; dim];
    for _ in 0..n {
        for x in v.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *x = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        m.push(&v);
    }
    m
}

/// The manifests the config runs (detector stages, encoder, PAD and S-MAD heads, the object
/// tagger), then `extra`, without repeats.
fn manifests(cfg: &Config, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = cfg.detector.manifests().into_iter().cloned().collect();
    all.push(cfg.encoder.manifest.clone());
    if cfg.pad.enabled {
        all.extend(cfg.pad.models.iter().cloned());
    }
    if cfg.mad.enabled {
        all.extend(cfg.mad.smad.iter().cloned());
    }
    if cfg.tagger.enabled {
        all.extend(cfg.tagger.model.iter().cloned());
    }
    all.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| seen.insert(p.clone()));
    all
}

/// Measures every stage and model on each backend. `progress` prints a line per step on
/// stderr.
pub fn run(cfg: &Config, opts: &Options, progress: bool) -> anyhow::Result<BenchReport> {
    let started = Instant::now();
    let say = |s: String| {
        if progress {
            eprintln!("{s}");
        }
    };
    let frame = load_image(&opts.image)?;
    let backends = if opts.backends.is_empty() { vec![cfg.backend] } else { opts.backends.clone() };
    let mut runs = Vec::new();
    let mut faces_found = None;
    for &backend in &backends {
        say(format!("bench: {} — loading the models", backend.name()));
        let mut cfg = cfg.clone();
        cfg.backend = backend;
        reset_peak_rss();
        let t = Instant::now();
        let mut p = Pipeline::load(&cfg).with_context(|| format!("backend {}", backend.name()))?;
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        // The first frame, stage by stage as `Pipeline::encode_faces` runs them.
        let spec = p.encoder.alignment().clone();
        let mut lap = Instant::now();
        let mut split =
            || std::mem::replace(&mut lap, Instant::now()).elapsed().as_secs_f64() * 1e3;
        let first = p.detect(&frame).context("the first frame")?;
        let first_detect_ms = split();
        // The faces that align go on, as in `encode_faces`.
        let (first, aligned): (Vec<_>, Vec<_>) = first
            .into_iter()
            .filter_map(|f| align(&frame.image, &f, &spec).map(|a| (f, a)))
            .unzip();
        let first_align_ms = split();
        p.encoder
            .encode(&aligned.iter().map(|a| &a.image).collect::<Vec<_>>())
            .context("the first frame")?;
        let first_encode_ms = split();
        let first_pad_ms = match p.pad.as_mut() {
            Some(pad) => {
                pad.score(&frame.image, &first).context("the first frame")?;
                Some(split())
            }
            None => None,
        };
        let first_frame_ms =
            first_detect_ms + first_align_ms + first_encode_ms + first_pad_ms.unwrap_or(0.0);
        let t = Instant::now();
        p.observe(&frame).context("the second frame")?;
        let second_frame_ms = t.elapsed().as_secs_f64() * 1e3;
        let faces = p.detect(&frame)?;
        anyhow::ensure!(
            !faces.is_empty(),
            "{}: no face found; bench needs a photo with at least one face",
            opts.image.display()
        );
        faces_found.get_or_insert(faces.len());
        let crops: Vec<_> =
            faces.iter().filter_map(|f| align(&frame.image, f, &spec)).map(|a| a.image).collect();
        let crop_refs: Vec<_> = crops.iter().collect();
        let gallery = synthetic_gallery(p.encoder.dim(), opts.gallery);
        let probes = p.encoder.encode(&crop_refs)?;
        let n = opts.runs;
        say(format!("bench: {} — {} face(s), {n} runs per stage", backend.name(), faces.len()));
        let mut stages = vec![
            time("detect", n, || p.detect(&frame))?,
            time("align", n, || {
                Ok(faces.iter().filter_map(|f| align(&frame.image, f, &spec)).count())
            })?,
            time("encode", n, || p.encoder.encode(&crop_refs))?,
        ];
        if let Some(pad) = p.pad.as_mut() {
            stages.push(time("pad", n, || pad.score(&frame.image, &faces))?);
        }
        stages.push(time("search", n, || {
            Ok(probes.iter().map(|e| gallery.best(&e.0)).collect::<Vec<_>>())
        })?);
        // The whole frame as the daemon and `identify` run it: the frame path, each face
        // searched among the synthetic templates.
        let mut path = FramePath::new(&cfg, p, None);
        let synthetic = Synthetic(gallery);
        let frame_stage = time("frame", n, || path.step(&frame, None, &synthetic))?;
        let fps = 1e3 / frame_stage.p50_ms;
        stages.push(frame_stage);
        let gpu_mib = gpu_mib();
        drop(path);
        let mut through = Vec::new();
        for &k in &opts.streams {
            say(format!("bench: {} — {k} stream(s)", backend.name()));
            through.push(throughput(&cfg, &frame, k, n, opts.gallery)?);
        }
        runs.push(BackendRun {
            backend,
            load_ms,
            first_frame_ms,
            first_detect_ms,
            first_align_ms,
            first_encode_ms,
            first_pad_ms,
            second_frame_ms,
            stages,
            fps,
            throughput: through,
            gpu_mib,
            peak_rss_mib: peak_rss_mib(),
        });
    }

    let mut models = Vec::new();
    for path in manifests(cfg, &opts.models) {
        let manifest = Manifest::load(&path)?;
        let input = auto::timing_input(&manifest)?;
        let purposes: Vec<&str> = manifest.outputs.keys().map(String::as_str).collect();
        for &backend in backends.iter().filter(|b| **b != BackendKind::Auto) {
            let t = Instant::now();
            let mut session = infer::load(backend, &manifest, &purposes)
                .with_context(|| format!("backend {}", backend.name()))?;
            let load_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            session
                .run(input.clone())
                .with_context(|| format!("{} on its first run", manifest.id))?;
            let first_run_ms = t.elapsed().as_secs_f64() * 1e3;
            let s = time(&manifest.id, opts.runs, || session.run(input.clone()))?;
            say(format!("bench: {} on {}: {:.2} ms (p50)", manifest.id, backend.name(), s.p50_ms));
            models.push(ModelRun {
                model: manifest.id.clone(),
                file: manifest.file.display().to_string(),
                precision: manifest.precision.name(),
                derived_from: manifest.derived_from.clone(),
                backend,
                input: input.shape.clone(),
                load_ms,
                first_run_ms,
                p50_ms: s.p50_ms,
                p95_ms: s.p95_ms,
                p99_ms: s.p99_ms,
            });
        }
    }
    Ok(BenchReport {
        edgeid: env!("CARGO_PKG_VERSION").into(),
        device: Device::probe(),
        image: opts.image.display().to_string(),
        width: frame.image.width(),
        height: frame.image.height(),
        faces: faces_found.unwrap_or(0),
        runs: opts.runs,
        gallery: opts.gallery,
        backends: runs,
        models,
        auto: auto::choices(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Keeps the backends of `wanted` that can load a model here (`--backend all`), naming the
/// ones left out and why.
pub fn loadable(wanted: &[BackendKind], probe: &Path) -> anyhow::Result<Vec<BackendKind>> {
    let manifest = Manifest::load(probe)?;
    let purposes: Vec<&str> = manifest.outputs.keys().map(String::as_str).collect();
    Ok(wanted
        .iter()
        .copied()
        .filter(|&b| match infer::load(b, &manifest, &purposes) {
            Ok(_) => true,
            Err(e) => {
                log::warn!("bench: backend {} left out: {e}", b.name());
                false
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&ms, 0.5), 50.0);
        assert_eq!(percentile(&ms, 0.95), 95.0);
        assert_eq!(percentile(&ms, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn synthetic_templates_are_unit_vectors() {
        let m = synthetic_gallery(8, 3);
        assert_eq!(m.len(), 3);
        for i in 0..3 {
            let n: f32 = m.row(i).iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
    }
}
