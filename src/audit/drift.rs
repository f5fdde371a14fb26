//! Drift of live traffic: the journal's scores of the latest decisions against those of the
//! first ones (the site as it was set up and calibrated), by the population stability index.
//! A camera knocked out of place shows in face size and detector score, new lighting in the
//! live and match scores, a new population in the match scores.

use serde::{Deserialize, Serialize};

use crate::decide::Decision;

/// The scores a decision records that drift is measured on.
pub const METRICS: [&str; 4] = ["similarity", "live", "detector_score", "face_px"];

/// Metric `METRICS[i]` of a decision, if it recorded one.
fn metric(d: &Decision, i: usize) -> Option<f32> {
    match i {
        0 => d.similarity,
        1 => d.live,
        2 => Some(d.detector_score),
        _ => Some(d.face_px),
    }
}

/// Population stability index of `current` against `reference`: Σ (c − r) · ln(c / r) over
/// ten bins at the reference's deciles; empty bins count as 1e-4 so that the sum stays finite.
pub fn psi(reference: &[f32], current: &[f32]) -> f32 {
    if reference.is_empty() || current.is_empty() {
        return 0.0;
    }
    let mut sorted = reference.to_vec();
    sorted.sort_by(f32::total_cmp);
    let edges: Vec<f32> = (1..10).map(|k| sorted[k * sorted.len() / 10]).collect();
    let share = |values: &[f32]| {
        let mut bins = [0f32; 10];
        for v in values {
            bins[edges.partition_point(|e| e <= v)] += 1.0;
        }
        bins.map(|b| (b / values.len() as f32).max(1e-4))
    };
    let (r, c) = (share(reference), share(current));
    r.iter().zip(&c).map(|(r, c)| (c - r) * (c / r).ln()).sum()
}

/// One metric's drift.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricDrift {
    pub metric: String,
    pub psi: f32,
    /// None where the window holds no such score (no PAD head: no live score).
    pub reference_median: Option<f32>,
    pub current_median: Option<f32>,
    /// Decisions that carried the metric in each window.
    pub reference_n: usize,
    pub current_n: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftReport {
    pub window: usize,
    pub decisions: usize,
    /// The reference window's first and last decision time, and the current window's.
    pub reference_ms: (i64, i64),
    pub current_ms: (i64, i64),
    pub metrics: Vec<MetricDrift>,
    pub alert_psi: f32,
    pub alert: bool,
    /// PSI per metric of each successive window against the reference, for the drift chart:
    /// (last decision time of the window, PSI per metric in `METRICS` order).
    pub history: Vec<(i64, Vec<f32>)>,
}

fn values(decisions: &[Decision], i: usize) -> Vec<f32> {
    decisions.iter().filter_map(|d| metric(d, i)).collect()
}

fn median(v: &[f32]) -> Option<f32> {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s.get(s.len() / 2).copied()
}

/// Drift of the journal's decisions (oldest first). None until there are two full windows.
pub fn measure(decisions: &[Decision], window: usize, alert_psi: f32) -> Option<DriftReport> {
    if window == 0 || decisions.len() < 2 * window {
        return None;
    }
    let reference = &decisions[..window];
    let current = &decisions[decisions.len() - window..];
    let metrics: Vec<MetricDrift> = METRICS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (r, c) = (values(reference, i), values(current, i));
            MetricDrift {
                metric: m.to_string(),
                psi: psi(&r, &c),
                reference_median: median(&r),
                current_median: median(&c),
                reference_n: r.len(),
                current_n: c.len(),
            }
        })
        .collect();
    let history = decisions[window..]
        .chunks(window)
        .filter(|w| w.len() == window)
        .map(|w| {
            let t = w[w.len() - 1].time_ms;
            (t, (0..METRICS.len()).map(|i| psi(&values(reference, i), &values(w, i))).collect())
        })
        .collect();
    let alert = metrics.iter().any(|m| m.psi >= alert_psi);
    Some(DriftReport {
        window,
        decisions: decisions.len(),
        reference_ms: (reference[0].time_ms, reference[window - 1].time_ms),
        current_ms: (current[0].time_ms, current[window - 1].time_ms),
        metrics,
        alert_psi,
        alert,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_by_hand() {
        // Reference 0..100: deciles at 10, 20, … 90, ten equal bins of 0.1.
        let reference: Vec<f32> = (0..100).map(|v| v as f32).collect();
        assert!(psi(&reference, &reference).abs() < 1e-6);
        // Everything in the top bin: 9 bins at 1e-4 instead of 0.1 and one at 1.0.
        let shifted = vec![95.0f32; 50];
        let expected = 9.0 * (1e-4f32 - 0.1) * (1e-4f32 / 0.1).ln() + (1.0f32 - 0.1) * 10f32.ln();
        assert!(
            (psi(&reference, &shifted) - expected).abs() < 1e-3,
            "{}",
            psi(&reference, &shifted)
        );
    }

    #[test]
    fn drift_needs_two_windows_and_flags_a_shift() {
        let d = |s: f32, px: f32| -> Decision {
            serde_json::from_value(serde_json::json!({"time_ms": 1, "camera": "door",
                "track_id": 1, "outcome": "granted", "frames_used": 5,
                "similarity": s, "face_px": px, "detector_score": 0.99}))
            .unwrap()
        };
        let mut v: Vec<Decision> =
            (0..30).map(|i| d(0.5 + (i % 10) as f32 * 0.01, 120.0 + (i % 7) as f32)).collect();
        assert!(measure(&v, 20, 0.25).is_none());
        // The camera moved back: faces half the size, scores as before.
        v.extend((0..20).map(|i| d(0.5 + (i % 10) as f32 * 0.01, 60.0 + (i % 7) as f32)));
        let r = measure(&v, 20, 0.25).unwrap();
        let by = |m: &str| r.metrics.iter().find(|x| x.metric == m).unwrap().psi;
        assert!(by("face_px") > 1.0, "{}", by("face_px"));
        assert!(by("similarity") < 0.1, "{}", by("similarity"));
        assert!(r.alert);
        assert_eq!(r.metrics.iter().find(|x| x.metric == "live").unwrap().current_n, 0);
    }
}
