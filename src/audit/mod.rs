//! Generalization audits: how much general visual ability the deployed encoder keeps.
//!
//! Fine-tuning a foundation model for faces costs it general ability (CLIP fine-tuned for face
//! recognition fell from 69.84% to 51.63% on ImageNetV2), so a device measures its own encoder on
//! general tasks (digits, faces vs non-faces, scenes, textures) with the papers' probes, compares
//! it with a baseline (a general model, the previous encoder, or raw pixels as the floor) task by
//! task, journals the result with the models' hashes, and raises an alert when a task's retention
//! (encoder accuracy / baseline accuracy) falls below the configured floor. Drift of live scores
//! is measured from the decision journal beside it.
//!
//! Audits run beside the cameras, never in their path: `edgeid audit`, or the daemon's own
//! thread every `audit.every_hours`.

pub mod drift;
pub mod extract;
pub mod probe;
pub mod report;
pub mod set;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{AuditConfig, Config};
use crate::decide::Decision;
use crate::journal::Journal;
use crate::manifest::Manifest;
use crate::tag::PrototypeBank;

pub use extract::{Extractor, ModelRef};
pub use set::{AuditError, AuditSet};

/// One task's accuracies for one model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskScore {
    pub task: String,
    pub classes: usize,
    pub train: usize,
    pub test: usize,
    /// Few-shot logistic-regression probe accuracy on the test images.
    pub linear: f32,
    /// Nearest-class-mean accuracy on the test images.
    pub ncm: f32,
    /// Zero-shot accuracy on the test images: the nearest of the prototype bank's vectors for
    /// the task's classes (when the bank has them all).
    #[serde(default)]
    pub zero_shot: Option<f32>,
}

/// A model's accuracies on every task of a set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    pub model: ModelRef,
    pub set_sha256: String,
    pub shots: usize,
    pub tasks: Vec<TaskScore>,
}

impl Scores {
    pub fn mean_linear(&self) -> f32 {
        self.tasks.iter().map(|t| t.linear).sum::<f32>() / self.tasks.len().max(1) as f32
    }
    fn task(&self, name: &str) -> Option<&TaskScore> {
        self.tasks.iter().find(|t| t.task == name)
    }
}

/// Retention of one task: encoder accuracy over baseline accuracy, by both probes. They fail
/// differently: a standardised linear probe recovers from features squeezed into a few
/// directions (weights binarised: linear accuracy unchanged, NCM at chance), nearest class mean
/// does not; so an alert is raised when either falls below the floor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retention {
    pub task: String,
    /// Linear-probe accuracies and their ratio.
    pub encoder: f32,
    pub baseline: f32,
    pub pixels: f32,
    pub retention: f32,
    /// Nearest-class-mean accuracies and their ratio.
    pub encoder_ncm: f32,
    pub baseline_ncm: f32,
    pub retention_ncm: f32,
    pub alert: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub time_ms: i64,
    pub set: PathBuf,
    pub images: usize,
    pub encoder: Scores,
    pub baseline: Scores,
    /// The raw-pixel floor (the baseline itself when it is pixels).
    pub pixels: Scores,
    pub retention: Vec<Retention>,
    /// Mean encoder accuracy over mean baseline accuracy.
    pub overall_retention: f32,
    pub min_retention: f32,
    /// A task's retention is below `min_retention`.
    pub alert: bool,
    /// Whether the baseline's scores came from the journal (same model hash, set and shots).
    pub baseline_cached: bool,
    pub seconds: f32,
    pub drift: Option<drift::DriftReport>,
}

/// Measures one model on every task of the set.
pub fn measure(
    extractor: &mut Extractor,
    set: &AuditSet,
    shots: usize,
    prototypes: Option<&PrototypeBank>,
    bar: &ProgressBar,
) -> anyhow::Result<Scores> {
    let mut tasks = Vec::new();
    for task in &set.tasks {
        let mut x = Vec::with_capacity(task.images.len());
        let mut labels = Vec::with_capacity(task.images.len());
        for (class, image) in &task.images {
            x.push(extractor.features(image)?);
            labels.push(*class);
            bar.inc(1);
        }
        let (train, test) = probe::split(&labels, shots);
        let zero_shot =
            prototypes.and_then(|bank| probe::zero_shot(bank, &task.classes, &x, &labels, &test));
        tasks.push(TaskScore {
            task: task.name.clone(),
            classes: task.classes.len(),
            train: train.len(),
            test: test.len(),
            linear: probe::linear(&x, &labels, &train, &test)?,
            ncm: probe::nearest_class_mean(&x, &labels, &train, &test),
            zero_shot,
        });
    }
    Ok(Scores { model: extractor.model(), set_sha256: set.sha256.clone(), shots, tasks })
}

fn cache_key(model: &ModelRef, set: &AuditSet, shots: usize) -> String {
    format!("{}@{}|{}|{shots}", model.id, model.sha256, set.sha256)
}

/// What to audit: the encoder and baseline manifests (None: as the config says).
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub encoder: Option<PathBuf>,
    /// A manifest, or "pixels".
    pub baseline: Option<PathBuf>,
    pub progress: bool,
}

fn load_extractor(cfg: &Config, what: &Path) -> anyhow::Result<Extractor> {
    if what.as_os_str() == "pixels" {
        return Ok(Extractor::Pixels);
    }
    crate::runtime::check_trusted(cfg, what)?;
    Ok(Extractor::load(cfg.backend, &Manifest::load(what)?)?)
}

/// Runs an audit and, with a journal, records it there (and reuses the baseline's scores the
/// journal already holds for the same model file, set and shots).
pub fn run(cfg: &Config, req: &Request, journal: Option<&Journal>) -> anyhow::Result<AuditReport> {
    let acfg: &AuditConfig =
        cfg.audit.as_ref().ok_or_else(|| AuditError::NotConfigured(cfg.path.clone()))?;
    let started = Instant::now();
    let set = AuditSet::load(&acfg.set, acfg.shots)?;
    let encoder_path = req.encoder.clone().unwrap_or_else(|| cfg.encoder.manifest.clone());
    let baseline_path = req.baseline.clone().unwrap_or_else(|| acfg.baseline.clone());
    let mut encoder = load_extractor(cfg, &encoder_path)?;
    let bank = match &acfg.prototypes {
        Some(p) => Some(PrototypeBank::load(p, &encoder.model().id)?),
        None => None,
    };
    let mut baseline = load_extractor(cfg, &baseline_path)?;

    let cached = match journal {
        Some(j) => j
            .cached_scores(&cache_key(&baseline.model(), &set, acfg.shots))?
            .and_then(|s| serde_json::from_str::<Scores>(&s).ok()),
        None => None,
    };
    let baseline_is_pixels = matches!(baseline, Extractor::Pixels);
    let passes = 1 + usize::from(cached.is_none()) + usize::from(!baseline_is_pixels);
    let bar = if req.progress {
        ProgressBar::new((set.images() * passes) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {eta} left")
            .expect("a valid template"),
    );
    let encoder_scores = measure(&mut encoder, &set, acfg.shots, bank.as_ref(), &bar)?;
    let baseline_cached = cached.is_some();
    let baseline_scores = match cached {
        Some(s) => s,
        None => {
            let s = measure(&mut baseline, &set, acfg.shots, None, &bar)?;
            if let Some(j) = journal {
                j.cache_scores(
                    &cache_key(&s.model, &set, acfg.shots),
                    &serde_json::to_string(&s)?,
                )?;
            }
            s
        }
    };
    let pixels = if baseline_is_pixels {
        baseline_scores.clone()
    } else {
        measure(&mut Extractor::Pixels, &set, acfg.shots, None, &bar)?
    };
    bar.finish_and_clear();

    let retention: Vec<Retention> = encoder_scores
        .tasks
        .iter()
        .map(|t| {
            let b = baseline_scores.task(&t.task);
            let p = pixels.task(&t.task).map_or(f32::NAN, |p| p.linear);
            let (bl, bn) = b.map_or((f32::NAN, f32::NAN), |b| (b.linear, b.ncm));
            let (r, rn) = (t.linear / bl, t.ncm / bn);
            Retention {
                task: t.task.clone(),
                encoder: t.linear,
                baseline: bl,
                pixels: p,
                retention: r,
                encoder_ncm: t.ncm,
                baseline_ncm: bn,
                retention_ncm: rn,
                // NaN (a task the baseline lacks) alerts too.
                alert: !(r >= acfg.min_retention && rn >= acfg.min_retention),
            }
        })
        .collect();
    let alert = retention.iter().any(|r| r.alert);
    let drift = match journal {
        Some(j) => {
            let decisions: Vec<Decision> =
                j.since(i64::MIN)?.into_iter().map(|e| e.decision).collect();
            drift::measure(&decisions, acfg.drift_window, acfg.drift_alert_psi)
        }
        None => None,
    };
    let report = AuditReport {
        time_ms: crate::clock::now_ms(),
        set: acfg.set.clone(),
        images: set.images(),
        overall_retention: encoder_scores.mean_linear() / baseline_scores.mean_linear(),
        encoder: encoder_scores,
        baseline: baseline_scores,
        pixels,
        retention,
        min_retention: acfg.min_retention,
        alert,
        baseline_cached,
        seconds: started.elapsed().as_secs_f32(),
        drift,
    };
    for r in report.retention.iter().filter(|r| r.alert) {
        log::warn!(
            "audit: {} keeps {:.0}% (linear probe) and {:.0}% (nearest class mean) of {} on `{}`, below audit.min_retention {}",
            report.encoder.model.id,
            100.0 * r.retention,
            100.0 * r.retention_ncm,
            report.baseline.model.id,
            r.task,
            report.min_retention
        );
    }
    if let Some(d) = report.drift.as_ref().filter(|d| d.alert) {
        for m in d.metrics.iter().filter(|m| m.psi >= d.alert_psi) {
            log::warn!(
                "audit: `{}` drifted (PSI {:.2}): median {:?} then, {:?} now",
                m.metric,
                m.psi,
                m.reference_median,
                m.current_median
            );
        }
    }
    if let Some(j) = journal {
        j.append_audit(
            report.time_ms,
            &report.encoder.model.id,
            report.alert || report.drift.as_ref().is_some_and(|d| d.alert),
            &serde_json::to_string(&report)?,
        )?;
    }
    Ok(report)
}
