//! Biometric error rates, as ISO/IEC 19795-1 (verification, identification) and 30107-3
//! (presentation attacks) define them. Every function takes plain score lists where higher means
//! "more likely the same person / bona fide", and a decision accepts at `score ≥ threshold`.

use serde::Serialize;

/// False match rate: share of impostor comparisons accepted at `threshold`.
pub fn fmr(impostor: &[f32], threshold: f32) -> f32 {
    share(impostor, |s| s >= threshold)
}

/// False non-match rate: share of genuine comparisons rejected at `threshold`.
pub fn fnmr(genuine: &[f32], threshold: f32) -> f32 {
    share(genuine, |s| s < threshold)
}

fn share(scores: &[f32], f: impl Fn(f32) -> bool) -> f32 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|s| f(**s)).count() as f32 / scores.len() as f32
}

/// Equal error rate of genuine (or bona fide) against impostor (or attack) scores: the rate where
/// false accepts and false rejects are closest, their mean there, and the threshold. With finitely
/// many scores the two rates rarely meet exactly. One sort and one sweep: O(n log n), so it stays
/// quick on the ~10^7 pairs of a whole folder dataset.
pub fn equal_error_rate(genuine: &[f32], impostor: &[f32]) -> (f32, f32) {
    let (g, i) = (sorted(genuine), sorted(impostor));
    let mut best = (f32::INFINITY, 1.0f32, 0.0f32);
    sweep(&g, &i, |t, a, r| {
        if (a - r).abs() < best.0 {
            best = ((a - r).abs(), (a + r) / 2.0, t);
        }
    });
    (best.1, best.2)
}

/// The finite scores, ascending.
fn sorted(v: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = v.iter().copied().filter(|s| s.is_finite()).collect();
    v.sort_unstable_by(f32::total_cmp);
    v
}

/// Calls `f(threshold, fmr, fnmr)` at every candidate threshold (each distinct score, then one
/// above them all), ascending, from the two sorted score lists: two pointers, no search.
fn sweep(genuine: &[f32], impostor: &[f32], mut f: impl FnMut(f32, f32, f32)) {
    let (ng, ni) = (genuine.len().max(1) as f32, impostor.len().max(1) as f32);
    let (mut gi, mut ii) = (0usize, 0usize);
    loop {
        let t = match (genuine.get(gi), impostor.get(ii)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => f32::INFINITY,
        };
        // Scores below t are rejected, those at or above accepted.
        f(t, (impostor.len() - ii) as f32 / ni, gi as f32 / ng);
        if t == f32::INFINITY {
            break;
        }
        while genuine.get(gi).is_some_and(|s| *s <= t) {
            gi += 1;
        }
        while impostor.get(ii).is_some_and(|s| *s <= t) {
            ii += 1;
        }
    }
}

/// An operating point: the lowest threshold whose false accept rate is at most a target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// The false accept rate asked for (FMR or APCER).
    pub target: f32,
    pub threshold: f32,
    /// The false accept rate reached at that threshold.
    pub false_accept: f32,
    /// The false reject rate there (FNMR or BPCER).
    pub false_reject: f32,
    /// Impostor (attack) scores behind it; a rate below 1/count cannot be shown.
    pub comparisons: usize,
    /// Whether there are at least 1/target impostor comparisons, so that the target is at
    /// least resolvable (one error in 1/target). The rule of 3 needs 3/target for 95%.
    pub supported: bool,
}

/// The operating point at false accept rate ≤ `target`: the lowest candidate threshold (a score,
/// or one above them all) whose FMR is at most the target. Sorted, so it stays quick on millions
/// of pairs.
pub fn at_false_accept(genuine: &[f32], impostor: &[f32], target: f32) -> OperatingPoint {
    let (g, i) = (sorted(genuine), sorted(impostor));
    let mut threshold = f32::INFINITY;
    sweep(&g, &i, |t, a, _| {
        if a <= target && threshold == f32::INFINITY {
            threshold = t;
        }
    });
    OperatingPoint {
        target,
        threshold,
        false_accept: fmr(impostor, threshold),
        false_reject: fnmr(genuine, threshold),
        comparisons: impostor.len(),
        supported: impostor.len() as f32 * target >= 1.0 - 1e-6,
    }
}

/// One point of a DET curve: the error rates at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetPoint {
    pub threshold: f32,
    pub fmr: f32,
    pub fnmr: f32,
}

/// The DET curve: FMR and FNMR at every threshold where either changes, from accepting
/// everything to accepting nothing. Sorted sweeps, so it stays quick on millions of pairs.
pub fn det(genuine: &[f32], impostor: &[f32]) -> Vec<DetPoint> {
    let (g, i) = (sorted(genuine), sorted(impostor));
    let mut points: Vec<DetPoint> = Vec::new();
    sweep(&g, &i, |threshold, fmr, fnmr| {
        let p = DetPoint { threshold, fmr, fnmr };
        if points.last().is_none_or(|q| (q.fmr, q.fnmr) != (p.fmr, p.fnmr)) {
            points.push(p);
        }
    });
    points
}

/// One 1:N search: the best identity returned and its score, and whether the probe's identity
/// is enrolled (mated) and returned first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub mated: bool,
    /// Whether the best candidate is the probe's own identity (only for mated searches).
    pub correct: bool,
    pub score: f32,
}

/// False negative identification rate at `threshold`: share of mated searches whose own
/// identity is not returned first at or above the threshold.
pub fn fnir(searches: &[Search], threshold: f32) -> f32 {
    let mated: Vec<&Search> = searches.iter().filter(|s| s.mated).collect();
    if mated.is_empty() {
        return 0.0;
    }
    mated.iter().filter(|s| !(s.correct && s.score >= threshold)).count() as f32
        / mated.len() as f32
}

/// False positive identification rate at `threshold`: share of non-mated searches that return
/// anyone at or above the threshold.
pub fn fpir(searches: &[Search], threshold: f32) -> f32 {
    let non: Vec<&Search> = searches.iter().filter(|s| !s.mated).collect();
    if non.is_empty() {
        return 0.0;
    }
    non.iter().filter(|s| s.score >= threshold).count() as f32 / non.len() as f32
}

/// Presentation-attack error rates at a threshold (ISO/IEC 30107-3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PadRates {
    pub threshold: f32,
    /// Attack presentations classified bona fide, per attack kind.
    pub apcer: Vec<(String, f32)>,
    /// Bona fide presentations classified as attacks.
    pub bpcer: f32,
    /// (highest APCER + BPCER) / 2.
    pub acer: f32,
}

pub fn pad_rates(bona_fide: &[f32], attacks: &[(String, Vec<f32>)], threshold: f32) -> PadRates {
    let apcer: Vec<(String, f32)> =
        attacks.iter().map(|(kind, s)| (kind.clone(), fmr(s, threshold))).collect();
    let bpcer = fnmr(bona_fide, threshold);
    let worst = apcer.iter().map(|a| a.1).fold(0.0, f32::max);
    PadRates { threshold, apcer, bpcer, acer: (worst + bpcer) / 2.0 }
}

/// Mated morph presentation match rate: share of morphs that match every one of their
/// contributors at `threshold` (`contributor_scores[i]` holds morph i's scores against each
/// contributor).
pub fn mmpmr(contributor_scores: &[Vec<f32>], threshold: f32) -> f32 {
    if contributor_scores.is_empty() {
        return 0.0;
    }
    contributor_scores.iter().filter(|s| !s.is_empty() && s.iter().all(|v| *v >= threshold)).count()
        as f32
        / contributor_scores.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    // A hand-made score list: genuine 0.9 0.8 0.7 0.6 0.3, impostor 0.65 0.4 0.2 0.1 0.05.
    const G: [f32; 5] = [0.9, 0.8, 0.7, 0.6, 0.3];
    const I: [f32; 5] = [0.65, 0.4, 0.2, 0.1, 0.05];

    #[test]
    fn fmr_and_fnmr_count_by_hand() {
        // At 0.5: impostors ≥ 0.5: 0.65 → 1/5; genuine < 0.5: 0.3 → 1/5.
        assert_eq!(fmr(&I, 0.5), 0.2);
        assert_eq!(fnmr(&G, 0.5), 0.2);
        // At 0.65 the impostor 0.65 is still accepted (≥), the genuine 0.6 and 0.3 rejected.
        assert_eq!(fmr(&I, 0.65), 0.2);
        assert_eq!(fnmr(&G, 0.65), 0.4);
        assert_eq!(fmr(&I, 0.7), 0.0);
    }

    #[test]
    fn eer_by_hand() {
        // At 0.6: impostor 0.65 accepted (1/5), genuine 0.3 rejected (1/5): equal.
        assert_eq!(equal_error_rate(&G, &I), (0.2, 0.6));
        assert_eq!(equal_error_rate(&[0.9, 0.8], &[0.1, 0.2]).0, 0.0);
        let (eer, t) = equal_error_rate(&[0.9, 0.8, 0.6, 0.4], &[0.5, 0.3, 0.2, 0.1]);
        assert_eq!((eer, t), (0.25, 0.5));
    }

    #[test]
    fn operating_points_by_hand() {
        // FMR ≤ 0: above every impostor, 0.7: genuine 0.6 and 0.3 rejected.
        let p = at_false_accept(&G, &I, 0.0);
        assert_eq!((p.threshold, p.false_accept, p.false_reject), (0.7, 0.0, 0.4));
        // FMR ≤ 0.2: 0.6 is the lowest threshold with one impostor of five accepted (at 0.4
        // two are).
        let p = at_false_accept(&G, &I, 0.2);
        assert_eq!((p.threshold, p.false_accept, p.false_reject), (0.6, 0.2, 0.2));
        assert!(p.supported);
        assert!(!at_false_accept(&G, &I, 1e-3).supported, "5 impostors cannot show 1e-3");
    }

    #[test]
    fn sorted_sweeps_agree_with_the_definitions() {
        // Scores on a coarse grid (many ties), as a fixed pseudo-random sequence: the sweeps must
        // pick what trying every score as a threshold picks.
        let mut x = 12345u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % 200) as f32 / 200.0
        };
        let g: Vec<f32> = (0..300).map(|_| 0.3 + 0.7 * next()).collect();
        let i: Vec<f32> = (0..3000).map(|_| 0.8 * next()).collect();
        let mut every: Vec<f32> = g.iter().chain(&i).copied().collect();
        every.sort_by(f32::total_cmp);
        every.dedup();
        every.push(f32::INFINITY);
        for target in [0.0, 1e-3, 1e-2, 0.1, 0.5] {
            let t = *every.iter().find(|t| fmr(&i, **t) <= target).unwrap();
            assert_eq!(at_false_accept(&g, &i, target).threshold, t, "target {target}");
        }
        let mut best = (f32::INFINITY, 0.0, 0.0);
        for t in &every {
            let (a, r) = (fmr(&i, *t), fnmr(&g, *t));
            if (a - r).abs() < best.0 {
                best = ((a - r).abs(), (a + r) / 2.0, *t);
            }
        }
        assert_eq!(equal_error_rate(&g, &i), (best.1, best.2));
    }

    #[test]
    fn det_by_hand() {
        // Thresholds at every score: 0.05 accepts all (FMR 1, FNMR 0); 0.3 rejects 0.05, 0.1,
        // 0.2 (FMR 2/5) and no genuine; 0.4 rejects the genuine 0.3 (1/5) ... 0.7 accepts no
        // impostor, rejects 0.6 and 0.3; past 0.9 nothing is accepted.
        let d = det(&G, &I);
        let rates: Vec<(f32, f32, f32)> = d.iter().map(|p| (p.threshold, p.fmr, p.fnmr)).collect();
        assert_eq!(
            rates,
            vec![
                (0.05, 1.0, 0.0),
                (0.1, 0.8, 0.0),
                (0.2, 0.6, 0.0),
                (0.3, 0.4, 0.0),
                (0.4, 0.4, 0.2),
                (0.6, 0.2, 0.2),
                (0.65, 0.2, 0.4),
                (0.7, 0.0, 0.4),
                (0.8, 0.0, 0.6),
                (0.9, 0.0, 0.8),
                (f32::INFINITY, 0.0, 1.0),
            ]
        );
        // Every point agrees with the plain counts.
        for p in &d {
            assert_eq!((p.fmr, p.fnmr), (fmr(&I, p.threshold), fnmr(&G, p.threshold)));
        }
    }

    #[test]
    fn identification_rates_by_hand() {
        let s = |mated, correct, score| Search { mated, correct, score };
        let searches = [
            s(true, true, 0.9),
            s(true, false, 0.8),
            s(true, true, 0.3),
            s(false, false, 0.5),
            s(false, false, 0.2),
        ];
        // At 0.4: mated misses: wrong identity (0.8), too low (0.3) → 2/3; non-mated hits 0.5 → 1/2.
        assert!((fnir(&searches, 0.4) - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(fpir(&searches, 0.4), 0.5);
        assert_eq!(fpir(&searches, 0.6), 0.0);
    }

    #[test]
    fn pad_and_morph_rates_by_hand() {
        let attacks = vec![
            ("print".to_string(), vec![0.7, 0.2]),
            ("screen".to_string(), vec![0.1, 0.3, 0.2, 0.9]),
        ];
        let r = pad_rates(&[0.9, 0.8, 0.4, 0.95], &attacks, 0.5);
        assert_eq!(r.apcer, vec![("print".to_string(), 0.5), ("screen".to_string(), 0.25)]);
        assert_eq!(r.bpcer, 0.25);
        assert_eq!(r.acer, 0.375);
        assert_eq!(mmpmr(&[vec![0.5, 0.6], vec![0.5, 0.3], vec![0.45, 0.44]], 0.44), 2.0 / 3.0);
    }
}
