//! Evaluation: the standard error rates of verification, identification, presentation-attack
//! and morph detection, computed from score lists.

pub mod dataset;
pub mod metrics;
pub mod pad;
pub mod pairs;
pub mod report;

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

/// What `edgeid calibrate` chose and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub config: std::path::PathBuf,
    pub previous_threshold: f32,
    /// What was written: the operating point's threshold rounded up to 4 decimals.
    pub threshold: f64,
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
    crate::runtime::check_floors(&calibrated).with_context(|| {
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
        threshold: rounded,
        point,
        genuine: v.genuine,
    })
}

/// What `edgeid calibrate --pad` chose and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PadCalibration {
    pub config: std::path::PathBuf,
    pub target: pad::PadTarget,
    pub previous_threshold: f32,
    pub threshold: f32,
    /// The rates reached at the new threshold, on the presentations it was chosen on.
    pub rates: pad::Pad,
    /// The fusion fitted (`--fit-fusion`) and written with it.
    pub fusion: Option<crate::heads::LogisticFusion>,
}

/// Sets `pad.threshold` in the config file at `config_path` for `target` on the labelled
/// captures of `dataset` (tracks of `track_frames` consecutive captures, as the daemon decides
/// on several frames), keeping the file's comments and layout. With `fit_fusion`, first fits a
/// logistic fusion of the heads on the single captures and writes it too (`pad.fusion =
/// "logistic"`, `fusion_bias`, `fusion_weights`), the threshold then being on its scale.
pub fn calibrate_pad(
    cfg: &crate::config::Config,
    config_path: &Path,
    dataset: &Path,
    target: pad::PadTarget,
    track_frames: usize,
    fit_fusion: bool,
    progress: bool,
) -> anyhow::Result<PadCalibration> {
    let (pad::PadTarget::Bpcer(x) | pad::PadTarget::Apcer(x)) = target;
    if !(0.0..1.0).contains(&x) {
        bail!("the target {x} is not a rate from 0 to 1 (e.g. 0.05)");
    }
    if !cfg.pad.enabled {
        bail!(
            "config {}: pad.enabled is false; enable PAD (pad.models) before calibrating it",
            config_path.display()
        );
    }
    let options = dataset::EvalOptions { track_frames };
    let report = dataset::evaluate_with(cfg, dataset, &options, progress)?;
    let mut captures = report.pad_captures;
    let fusion = if fit_fusion {
        let f = pad::fit_fusion(&captures, 1.0)
            .with_context(|| format!("fitting the fusion on {}", dataset.display()))?;
        captures.iter_mut().for_each(|c| c.live = f.fuse(&c.heads));
        Some(f)
    } else {
        None
    };
    let threshold = pad::threshold_for(&captures, track_frames, target)
        .with_context(|| format!("calibrating pad.threshold on {}", dataset.display()))?;
    let rates = pad::report(&captures, threshold, track_frames)
        .with_context(|| format!("{} has no bona fide capture", dataset.display()))?;
    let mut calibrated = cfg.clone();
    calibrated.pad.threshold = threshold;
    crate::runtime::check_floors(&calibrated).with_context(|| {
        format!("the PAD threshold calibrated on {} is not written", dataset.display())
    })?;

    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let mut doc: toml_edit::DocumentMut =
        text.parse().with_context(|| format!("parsing {}", config_path.display()))?;
    let apcer: Vec<String> = rates
        .at_threshold
        .apcer
        .iter()
        .zip(&rates.attacks)
        .map(|((kind, r), (_, n))| format!("{kind} {:.2}% of {n}", 100.0 * r))
        .collect();
    let unit = if track_frames > 1 {
        format!("tracks of {track_frames} captures")
    } else {
        "captures".into()
    };
    let set = |doc: &mut toml_edit::DocumentMut, key: &str, item: toml_edit::Item, note: String| {
        doc["pad"][key] = item;
        if let Some(v) = doc["pad"].get_mut(key).and_then(|i| i.as_value_mut()) {
            v.decor_mut().set_suffix(note);
        }
    };
    set(
        &mut doc,
        "threshold",
        toml_edit::value(round4(threshold)),
        format!(
            "  # calibrated by `edgeid calibrate --pad` for {target} on {} ({unit}): BPCER {:.2}% of {}, APCER {}",
            dataset.display(),
            100.0 * rates.at_threshold.bpcer,
            rates.bona_fide,
            apcer.join(", ")
        ),
    );
    if let Some(f) = &fusion {
        let bona_fide = captures.iter().filter(|c| c.attack.is_none()).count();
        let note = format!(
            "  # fitted by `edgeid calibrate --pad --fit-fusion` on {}: logistic regression (L2, alpha 1) of {} bona fide against {} attack captures",
            dataset.display(),
            bona_fide,
            captures.len() - bona_fide
        );
        set(&mut doc, "fusion", toml_edit::value("logistic"), note);
        set(&mut doc, "fusion_bias", toml_edit::value(round4(f.bias)), String::new());
        let mut weights = toml_edit::InlineTable::new();
        for (id, w) in &f.weights {
            weights.insert(id, round4(*w).into());
        }
        set(&mut doc, "fusion_weights", toml_edit::value(weights), String::new());
    }
    // The new file must still be a valid config before it replaces the old one.
    let new_text = doc.to_string();
    crate::config::Config::parse(&new_text, config_path)?;
    crate::util::write_atomically(config_path, new_text.as_bytes())
        .with_context(|| format!("replacing {}", config_path.display()))?;
    Ok(PadCalibration {
        config: config_path.to_path_buf(),
        target,
        previous_threshold: cfg.pad.threshold,
        threshold,
        rates,
        fusion,
    })
}

fn round4(v: f32) -> f64 {
    (v as f64 * 1e4).round() / 1e4
}
