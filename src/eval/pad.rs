//! Presentation-attack detection measured on labelled captures (ISO/IEC 30107-3 names): per
//! head and fused, per attack kind, on single captures or on tracks of several, as the daemon
//! decides; and the fitting of a logistic fusion of the heads.
//!
//! A track here is a window of `track_frames` consecutive captures of one capture sequence:
//! the files of one folder whose names differ only in their final number (`edgeid capture`
//! writes `<subject>_<time>.jpg`; NUAA's `..._01_152.jpg` frames), in natural order. Its score
//! is the mean of its captures' live scores, as the daemon's decision is (`decide`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::Serialize;

use super::metrics::{self, OperatingPoint, PadRates};
use crate::heads::LogisticFusion;

/// One capture's PAD scores.
#[derive(Debug, Clone, Serialize)]
pub struct PadCapture {
    pub path: PathBuf,
    /// The attack kind (`attacks/<kind>/`), or `None` for a bona fide capture.
    pub attack: Option<String>,
    /// Each head's score, by model id.
    pub heads: Vec<(String, f32)>,
    /// The fused live score.
    pub live: f32,
}

/// The error rates of one score (a head's, or the fused one) on the captures.
#[derive(Debug, Clone, Serialize)]
pub struct PadMeasure {
    /// `fused`, or the head's model id.
    pub name: String,
    pub at_threshold: PadRates,
    /// Equal error rate of bona fide against all attacks pooled.
    pub eer: f32,
    /// BPCER where every attack kind's APCER is at most 5% and 10% (ISO/IEC 30107-3 takes the
    /// worst kind as the system's APCER).
    pub at_apcer: Vec<OperatingPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pad {
    /// Captures per decision: 1, or tracks of this many consecutive captures.
    pub track_frames: usize,
    /// Bona fide presentations (captures or tracks) and attacks per kind.
    pub bona_fide: usize,
    pub attacks: Vec<(String, usize)>,
    /// At the configured PAD threshold (the fused score).
    pub at_threshold: PadRates,
    /// BPCER at APCER 5% and 10% of the worst attack kind (fused).
    pub at_apcer: Vec<OperatingPoint>,
    pub eer: f32,
    /// The same for each head alone, at the same threshold.
    pub heads: Vec<PadMeasure>,
    /// The fused scores, for plots and re-analysis.
    pub bona_fide_scores: Vec<f32>,
    pub attack_scores: Vec<(String, Vec<f32>)>,
}

/// One presentation scored: a capture, or a track of captures (mean scores).
struct Presentation {
    attack: Option<String>,
    live: f32,
    heads: Vec<f32>,
}

/// The captures grouped into presentations of `track_frames` consecutive captures of one
/// sequence (a shorter rest of a sequence is a shorter track, as a person who leaves early is
/// decided on the frames there are).
fn presentations(captures: &[PadCapture], track_frames: usize) -> Vec<Presentation> {
    let n = track_frames.max(1);
    let mut order: Vec<&PadCapture> = captures.iter().collect();
    order.sort_by_cached_key(|c| sequence_key(c));
    let mut out: Vec<Presentation> = Vec::new();
    let mut run: Vec<&PadCapture> = Vec::new();
    let mut flush = |run: &mut Vec<&PadCapture>| {
        if run.is_empty() {
            return;
        }
        let k = run.len() as f32;
        let heads = (0..run[0].heads.len())
            .map(|h| run.iter().map(|c| c.heads.get(h).map_or(0.0, |s| s.1)).sum::<f32>() / k)
            .collect();
        out.push(Presentation {
            attack: run[0].attack.clone(),
            live: run.iter().map(|c| c.live).sum::<f32>() / k,
            heads,
        });
        run.clear();
    };
    for c in order {
        let same = run.last().is_some_and(|l| sequence_key(l).0 == sequence_key(c).0);
        if !same || run.len() == n {
            flush(&mut run);
        }
        run.push(c);
    }
    flush(&mut run);
    out
}

/// (folder and name without its final number, then the name's parts in natural order).
type SequenceKey = ((PathBuf, String), Vec<NamePart>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NamePart {
    Number(u128),
    Text(String),
}

fn sequence_key(c: &PadCapture) -> SequenceKey {
    let dir = c.path.parent().map(PathBuf::from).unwrap_or_default();
    let stem = c.path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let prefix = stem.trim_end_matches(|ch: char| ch.is_ascii_digit()).to_string();
    let mut parts = Vec::new();
    let mut rest = stem.as_str();
    while !rest.is_empty() {
        let digits = rest.chars().next().is_some_and(|ch| ch.is_ascii_digit());
        let end = rest.find(|ch: char| ch.is_ascii_digit() != digits).unwrap_or(rest.len());
        let (part, tail) = rest.split_at(end);
        parts.push(match part.parse::<u128>() {
            Ok(v) if digits => NamePart::Number(v),
            _ => NamePart::Text(part.to_string()),
        });
        rest = tail;
    }
    ((dir, prefix), parts)
}

/// The attack kinds in order of first appearance, with their presentations' scores.
fn by_kind(ps: &[Presentation], score: impl Fn(&Presentation) -> f32) -> Vec<(String, Vec<f32>)> {
    let mut kinds: Vec<(String, Vec<f32>)> = Vec::new();
    for p in ps {
        let Some(kind) = &p.attack else { continue };
        match kinds.iter_mut().find(|k| &k.0 == kind) {
            Some(k) => k.1.push(score(p)),
            None => kinds.push((kind.clone(), vec![score(p)])),
        }
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    kinds
}

/// The operating point where every kind's APCER is at most `target`: the lowest threshold
/// that holds every kind to it.
pub fn at_worst_apcer(
    bona_fide: &[f32],
    attacks: &[(String, Vec<f32>)],
    target: f32,
) -> OperatingPoint {
    let points: Vec<OperatingPoint> =
        attacks.iter().map(|(_, s)| metrics::at_false_accept(bona_fide, s, target)).collect();
    let threshold = points.iter().map(|p| p.threshold).fold(f32::NEG_INFINITY, f32::max);
    let worst = attacks.iter().map(|(_, s)| metrics::fmr(s, threshold)).fold(0.0, f32::max);
    OperatingPoint {
        target,
        threshold,
        false_accept: worst,
        false_reject: metrics::fnmr(bona_fide, threshold),
        comparisons: attacks.iter().map(|(_, s)| s.len()).min().unwrap_or(0),
        supported: points.iter().all(|p| p.supported),
    }
}

fn measure(
    name: &str,
    ps: &[Presentation],
    threshold: f32,
    score: impl Fn(&Presentation) -> f32 + Copy,
) -> PadMeasure {
    let bona_fide: Vec<f32> = ps.iter().filter(|p| p.attack.is_none()).map(score).collect();
    let attacks = by_kind(ps, score);
    let pooled: Vec<f32> = attacks.iter().flat_map(|a| a.1.iter().copied()).collect();
    PadMeasure {
        name: name.to_string(),
        at_threshold: metrics::pad_rates(&bona_fide, &attacks, threshold),
        eer: if pooled.is_empty() { 0.0 } else { metrics::equal_error_rate(&bona_fide, &pooled).0 },
        at_apcer: if attacks.is_empty() {
            Vec::new()
        } else {
            [0.05, 0.10].iter().map(|t| at_worst_apcer(&bona_fide, &attacks, *t)).collect()
        },
    }
}

/// The PAD report of the captures at `threshold`, on single captures (`track_frames` 1) or
/// tracks. `None` without a bona fide capture.
pub fn report(captures: &[PadCapture], threshold: f32, track_frames: usize) -> Option<Pad> {
    let ps = presentations(captures, track_frames);
    let bona_fide: Vec<f32> = ps.iter().filter(|p| p.attack.is_none()).map(|p| p.live).collect();
    if bona_fide.is_empty() {
        return None;
    }
    let fused = measure("fused", &ps, threshold, |p| p.live);
    let names: Vec<String> =
        captures.first().map(|c| c.heads.iter().map(|h| h.0.clone()).collect()).unwrap_or_default();
    let heads = names
        .iter()
        .enumerate()
        .map(|(i, name)| measure(name, &ps, threshold, |p| p.heads.get(i).copied().unwrap_or(0.0)))
        .collect();
    let attack_scores = by_kind(&ps, |p| p.live);
    Some(Pad {
        track_frames: track_frames.max(1),
        bona_fide: bona_fide.len(),
        attacks: attack_scores.iter().map(|(k, s)| (k.clone(), s.len())).collect(),
        at_threshold: fused.at_threshold,
        at_apcer: fused.at_apcer,
        eer: fused.eer,
        heads,
        bona_fide_scores: bona_fide,
        attack_scores,
    })
}

/// What a PAD threshold is calibrated for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PadTarget {
    /// The highest threshold that rejects at most this share of bona fide presentations: as
    /// many attacks refused as the users' patience allows.
    Bpcer(f32),
    /// The lowest threshold at which every attack kind passes at most this share: as few live
    /// people refused as the security target allows.
    Apcer(f32),
}

impl std::fmt::Display for PadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PadTarget::Bpcer(x) => write!(f, "BPCER at most {x}"),
            PadTarget::Apcer(x) => write!(f, "APCER at most {x} for every attack kind"),
        }
    }
}

/// The threshold on the fused score that meets `target` on the captures (grouped into tracks
/// of `track_frames`), rounded to 4 decimals on the side that keeps the target.
pub fn threshold_for(
    captures: &[PadCapture],
    track_frames: usize,
    target: PadTarget,
) -> anyhow::Result<f32> {
    let ps = presentations(captures, track_frames);
    let mut bona_fide: Vec<f32> =
        ps.iter().filter(|p| p.attack.is_none()).map(|p| p.live).collect();
    let attacks = by_kind(&ps, |p| p.live);
    bona_fide.sort_by(f32::total_cmp);
    let t = match target {
        PadTarget::Bpcer(x) => {
            if bona_fide.is_empty() {
                bail!("no bona fide capture to calibrate a BPCER on");
            }
            // BPCER(t) = share of bona fide below t: at the k-th lowest score, at most k/n.
            let k = ((x as f64 * bona_fide.len() as f64).floor() as usize).min(bona_fide.len() - 1);
            (bona_fide[k] as f64 * 1e4).floor() / 1e4
        }
        PadTarget::Apcer(x) => {
            if attacks.is_empty() {
                bail!("no attack capture (`attacks/<kind>/`) to calibrate an APCER on");
            }
            let point = at_worst_apcer(&bona_fide, &attacks, x);
            if !point.supported {
                bail!(
                    "{} captures of the smallest attack kind cannot show an APCER of {x}; record more attacks (`edgeid capture`) or aim higher",
                    point.comparisons
                );
            }
            (point.threshold as f64 * 1e4).ceil() / 1e4
        }
    };
    if !(0.0..=1.0).contains(&t) {
        bail!("no live score from 0 to 1 meets {target:?} on these captures");
    }
    Ok(t as f32)
}

/// A logistic fusion of the heads fitted on the captures (bona fide against every attack,
/// each capture one example, the heads' scores as features; L2 penalty `alpha`), and what it
/// was fitted on.
pub fn fit_fusion(captures: &[PadCapture], alpha: f64) -> anyhow::Result<LogisticFusion> {
    let ids: Vec<String> =
        captures.first().map(|c| c.heads.iter().map(|h| h.0.clone()).collect()).unwrap_or_default();
    let bona_fide = captures.iter().filter(|c| c.attack.is_none()).count();
    if ids.is_empty() || bona_fide == 0 || bona_fide == captures.len() {
        bail!("fitting a fusion needs PAD heads and both bona fide captures and attacks (`attacks/<kind>/`)");
    }
    let x: Vec<f64> = captures.iter().flat_map(|c| c.heads.iter().map(|h| h.1 as f64)).collect();
    let x = Array2::from_shape_vec((captures.len(), ids.len()), x).context("one score per head")?;
    let y = Array1::from_iter(captures.iter().map(|c| c.attack.is_none()));
    let fit = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(1000)
        .fit(&Dataset::new(x, y))
        .context("fitting the logistic fusion")?;
    let mut fusion = LogisticFusion {
        bias: fit.intercept() as f32,
        weights: ids.iter().cloned().zip(fit.params().iter().map(|w| *w as f32)).collect(),
    };
    // linfa makes the rarer class the positive one: make the score the bona fide probability.
    let mean = |bf: bool| {
        let s: Vec<f32> = captures
            .iter()
            .filter(|c| c.attack.is_none() == bf)
            .map(|c| fusion.fuse(&c.heads))
            .collect();
        s.iter().sum::<f32>() / s.len() as f32
    };
    if mean(true) < mean(false) {
        fusion.bias = -fusion.bias;
        fusion.weights.values_mut().for_each(|w| *w = -*w);
    }
    Ok(fusion)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(path: &str, attack: Option<&str>, live: f32) -> PadCapture {
        PadCapture {
            path: PathBuf::from(path),
            attack: attack.map(String::from),
            heads: vec![("a".into(), live), ("b".into(), 1.0 - live)],
            live,
        }
    }

    /// Tracks are windows of one sequence in natural order (`_9` before `_10`), never across
    /// two sequences or folders; a short rest is a short track.
    #[test]
    fn tracks_are_windows_of_one_sequence_in_natural_order() {
        let c = vec![
            capture("d/s_10.jpg", None, 0.9),
            capture("d/s_9.jpg", None, 0.1),
            capture("d/s_11.jpg", None, 0.5),
            capture("d/t_1.jpg", None, 0.3),
            capture("e/s_1.jpg", Some("print"), 0.2),
        ];
        let ps = presentations(&c, 2);
        let lives: Vec<f32> = ps.iter().map(|p| p.live).collect();
        // d/s: 9 (0.1), 10 (0.9) | 11 (0.5); d/t: 0.3; e/s: 0.2.
        assert_eq!(lives, [0.5, 0.5, 0.3, 0.2]);
        assert_eq!(ps.iter().filter(|p| p.attack.is_some()).count(), 1);
        assert_eq!(presentations(&c, 1).len(), 5);
    }

    /// BPCER at APCER holds the worst kind to the target: here print needs a higher threshold
    /// than screen, and the point is at print's.
    #[test]
    fn the_operating_point_holds_every_kind_to_the_target() {
        let bona_fide = [0.9, 0.8, 0.7, 0.6, 0.5];
        let attacks = vec![
            ("print".to_string(), vec![0.75, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
            ("screen".to_string(), vec![0.2; 10]),
        ];
        let p = at_worst_apcer(&bona_fide, &attacks, 0.0);
        assert!(p.threshold > 0.75 && p.threshold <= 0.8, "{}", p.threshold);
        assert_eq!(p.false_reject, 0.6, "0.7, 0.6 and 0.5 rejected");
        assert_eq!(p.false_accept, 0.0);
        let p = at_worst_apcer(&bona_fide, &attacks, 0.1);
        assert!(p.threshold > 0.2 && p.threshold <= 0.5, "{}", p.threshold);
        assert_eq!(p.false_reject, 0.0);
        assert_eq!(p.false_accept, 0.1);
    }

    /// The fitted fusion scores bona fide captures higher, whichever class linfa takes for
    /// positive, and weighs the head that separates them.
    #[test]
    fn a_fitted_fusion_scores_bona_fide_higher() {
        let mut c = Vec::new();
        for i in 0..20 {
            let v = i as f32 / 20.0;
            c.push(PadCapture {
                path: PathBuf::from(format!("bf/{i}.jpg")),
                attack: None,
                heads: vec![("good".into(), 0.6 + 0.4 * v), ("noise".into(), v)],
                live: 0.0,
            });
            c.push(PadCapture {
                path: PathBuf::from(format!("attacks/print/{i}.jpg")),
                attack: Some("print".into()),
                heads: vec![("good".into(), 0.4 * v), ("noise".into(), 1.0 - v)],
                live: 0.0,
            });
        }
        let f = fit_fusion(&c, 0.01).unwrap();
        assert!(f.weights["good"] > 0.0 && f.weights["good"] > f.weights["noise"].abs(), "{f:?}");
        for x in &c {
            let p = f.fuse(&x.heads);
            assert_eq!(p >= 0.5, x.attack.is_none(), "{:?} {p}", x.path);
        }
        assert!(fit_fusion(&c[..1], 0.01).is_err(), "one class only");
    }
}
