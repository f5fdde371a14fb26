//! Evaluation: the standard error rates of verification, identification, presentation-attack
//! and morph detection, computed from score lists.

pub mod dataset;
pub mod metrics;
pub mod report;

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

/// What `edgeid calibrate` chose and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub config: std::path::PathBuf,
    pub previous_threshold: f32,
    pub point: metrics::OperatingPoint,
    pub genuine: usize,
}

/// Sets `recognition.match_threshold` in the config file at `config_path` to the lowest
/// threshold whose FMR on the dataset is at most `target`, keeping the file's comments and
/// layout. Refuses a target the dataset's impostor pairs cannot resolve, leaving the file as
/// it was.
pub fn calibrate(
    cfg: &crate::config::Config,
    config_path: &Path,
    dataset: &Path,
    target: f32,
    progress: bool,
) -> anyhow::Result<Calibration> {
    if !(target > 0.0 && target < 1.0) {
        bail!("--target-fmr {target} is not a rate between 0 and 1 (e.g. 1e-3)");
    }
    let report = dataset::evaluate(cfg, dataset, progress)?;
    let v = &report.verification;
    let point = metrics::at_false_accept(&v.genuine_scores, &v.impostor_scores, target);
    if !point.supported {
        bail!(
            "{} impostor pairs cannot show an FMR of {target:e} (it needs at least {:.0}); add identities or images to {} or aim for a higher FMR",
            point.comparisons,
            (1.0 / target).ceil(),
            dataset.display()
        );
    }
    if !(point.threshold > -1.0 && point.threshold < 1.0) {
        bail!("no threshold below 1 reaches FMR {target:e} on {}", dataset.display());
    }
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let mut doc: toml_edit::DocumentMut =
        text.parse().with_context(|| format!("parsing {}", config_path.display()))?;
    // Rounded up, so that no impostor the exact threshold rejects is let in.
    let rounded = (point.threshold as f64 * 1e4).ceil() / 1e4;
    // Below the encoder's floor: written, the config would be refused at the next start.
    let mut calibrated = cfg.clone();
    calibrated.recognition.match_threshold = rounded as f32;
    calibrated.check_floors().with_context(|| {
        format!("the threshold calibrated on {} is not written", dataset.display())
    })?;
    doc["recognition"]["match_threshold"] = toml_edit::value(rounded);
    if let Some(item) = doc["recognition"].get_mut("match_threshold") {
        if let Some(value) = item.as_value_mut() {
            value.decor_mut().set_suffix(format!(
                "  # calibrated by `edgeid calibrate` on {}: FMR {:.2e}, FNMR {:.4} ({} impostor, {} genuine pairs)",
                dataset.display(),
                point.false_accept,
                point.false_reject,
                point.comparisons,
                v.genuine
            ));
        }
    }
    // The new file must still be a valid config before it replaces the old one.
    let new_text = doc.to_string();
    crate::config::Config::parse(&new_text, config_path)?;
    crate::util::write_atomically(config_path, new_text.as_bytes())
        .with_context(|| format!("replacing {}", config_path.display()))?;
    Ok(Calibration {
        config: config_path.to_path_buf(),
        previous_threshold: cfg.recognition.match_threshold,
        point,
        genuine: v.genuine,
    })
}
