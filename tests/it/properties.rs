//! Properties of the geometry and numeric kernels, on generated inputs (proptest): IoU and the
//! two NMS variants, the similarity fit that aligns faces, the gallery search, and the error
//! rates. Each property is what a caller relies on, whatever the boxes, points or scores.

use proptest::prelude::*;

use edgeid::align::Similarity;
use edgeid::detect::{iou, nms, weighted_nms, Overlap};
use edgeid::eval::metrics::{at_false_accept, equal_error_rate, fmr, fnmr};
use edgeid::gallery::search::Matrix;

/// A box with positive area inside a 1000-pixel frame.
fn a_box() -> impl Strategy<Value = [f32; 4]> {
    (0f32..900.0, 0f32..900.0, 1f32..300.0, 1f32..300.0)
        .prop_map(|(x, y, w, h)| [x, y, x + w, y + h])
}

fn boxes_and_scores() -> impl Strategy<Value = (Vec<[f32; 4]>, Vec<f32>)> {
    prop::collection::vec((a_box(), 0f32..1.0), 0..40).prop_map(|v| v.into_iter().unzip())
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / n).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn iou_is_symmetric_bounded_and_one_for_a_box_with_itself(a in a_box(), b in a_box(), dx in -50f32..50.0) {
        let (ab, ba) = (iou(&a, &b), iou(&b, &a));
        prop_assert!((ab - ba).abs() < 1e-6);
        prop_assert!((0.0..=1.0 + 1e-6).contains(&ab));
        prop_assert!((iou(&a, &a) - 1.0).abs() < 1e-5);
        // Moving both boxes together changes nothing.
        let shift = |r: [f32; 4]| [r[0] + dx, r[1], r[2] + dx, r[3]];
        prop_assert!((iou(&shift(a), &shift(b)) - ab).abs() < 1e-3);
    }

    #[test]
    fn nms_keeps_the_best_box_each_box_once_and_is_idempotent((boxes, scores) in boxes_and_scores(), t in 0.1f32..0.9) {
        let keep = nms(&boxes, &scores, t, Overlap::Union);
        let mut seen = keep.clone();
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), keep.len());
        if let Some(best) = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])) {
            prop_assert_eq!(scores[keep[0]], scores[best]);
        }
        prop_assert!(keep.windows(2).all(|w| scores[w[0]] >= scores[w[1]]));
        // What survived suppresses nothing more.
        let (kb, ks): (Vec<_>, Vec<_>) = keep.iter().map(|&i| (boxes[i], scores[i])).unzip();
        prop_assert_eq!(nms(&kb, &ks, t, Overlap::Union).len(), keep.len());
    }

    #[test]
    fn weighted_nms_partitions_the_boxes_led_by_their_best((boxes, scores) in boxes_and_scores(), t in 0.1f32..0.9) {
        let clusters = weighted_nms(&boxes, &scores, t);
        let mut all: Vec<usize> = clusters.iter().flatten().copied().collect();
        all.sort();
        prop_assert_eq!(all, (0..boxes.len()).collect::<Vec<_>>());
        for (k, c) in clusters.iter().enumerate() {
            let lead = c[0];
            prop_assert!(c.iter().all(|&i| scores[i] <= scores[lead]));
            // A later leader did not overlap an earlier one past the threshold.
            for earlier in &clusters[..k] {
                prop_assert!(iou(&boxes[earlier[0]], &boxes[lead]) <= t);
            }
        }
    }

    #[test]
    fn the_similarity_fit_recovers_a_known_similarity(
        angle in -3.1f64..3.1, scale in 0.2f64..5.0, tx in -500f64..500.0, ty in -500f64..500.0,
        pts in prop::collection::vec((0f32..200.0, 0f32..200.0), 5),
    ) {
        let src: Vec<[f32; 2]> = pts.iter().map(|&(x, y)| [x, y]).collect();
        let spread = src.iter().map(|p| (p[0] - src[0][0]).abs() + (p[1] - src[0][1]).abs()).fold(0f32, f32::max);
        prop_assume!(spread > 5.0);
        let t = Similarity { a: scale * angle.cos(), b: scale * angle.sin(), tx, ty };
        let dst: Vec<[f32; 2]> = src
            .iter()
            .map(|p| t.apply([p[0] as f64, p[1] as f64]))
            .map(|q| [q[0] as f32, q[1] as f32])
            .collect();
        let fit = Similarity::estimate(&src, &dst).unwrap();
        prop_assert!((fit.scale() - scale).abs() < 1e-3 * scale.max(1.0));
        for p in &src {
            let (got, want) = (fit.apply([p[0] as f64, p[1] as f64]), t.apply([p[0] as f64, p[1] as f64]));
            prop_assert!((got[0] - want[0]).abs() < 0.05 && (got[1] - want[1]).abs() < 0.05);
            // And back.
            let back = fit.inverse().apply(got);
            prop_assert!((back[0] - p[0] as f64).abs() < 0.05 && (back[1] - p[1] as f64).abs() < 0.05);
        }
    }

    #[test]
    fn search_finds_the_most_similar_template(
        rows in prop::collection::vec(prop::collection::vec(-1f32..1.0, 16), 1..60),
        probe in prop::collection::vec(-1f32..1.0, 16),
    ) {
        let mut m = Matrix::new(16);
        for r in &rows {
            m.push(&unit(r));
        }
        let probe = unit(&probe);
        let scores = m.scores(&probe);
        let (i, s) = m.best(&probe).unwrap();
        let max = scores.iter().copied().fold(f32::MIN, f32::max);
        prop_assert_eq!(s, scores[i]);
        prop_assert!((s - max).abs() < 1e-6);
        // The int8 pre-scan re-ranks exactly: what it returns is a real score, never above the best.
        let (j, s8) = m.best_int8(&probe).unwrap();
        prop_assert_eq!(s8, scores[j]);
        prop_assert!(s8 <= max + 1e-6);
        if rows.len() <= 32 {
            prop_assert!((s8 - max).abs() < 1e-6, "with at most 32 templates every one is re-scored");
        }
    }

    #[test]
    fn error_rates_move_the_right_way_and_the_operating_point_holds(
        genuine in prop::collection::vec(-1f32..1.0, 1..80),
        impostor in prop::collection::vec(-1f32..1.0, 1..80),
        t1 in -1f32..1.0, t2 in -1f32..1.0, target in 0.001f32..0.5,
    ) {
        let (lo, hi) = if t1 <= t2 { (t1, t2) } else { (t2, t1) };
        prop_assert!(fmr(&impostor, hi) <= fmr(&impostor, lo));
        prop_assert!(fnmr(&genuine, hi) >= fnmr(&genuine, lo));
        let (eer, _) = equal_error_rate(&genuine, &impostor);
        prop_assert!((0.0..=1.0).contains(&eer));
        let p = at_false_accept(&genuine, &impostor, target);
        prop_assert!(p.false_accept <= target);
        prop_assert_eq!(p.false_reject, fnmr(&genuine, p.threshold));
        prop_assert_eq!(p.comparisons, impostor.len());
    }
}
