//! Non-maximum suppression over scored boxes.

/// How the overlap of two boxes is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Intersection over union.
    Union,
    /// Intersection over the smaller box: removes a small box nested in a big one, which the
    /// last MTCNN stage needs.
    Min,
}

/// Overlap of two `[x1, y1, x2, y2]` boxes under MTCNN's inclusive-pixel convention (+1).
fn overlap(a: &[f32; 4], b: &[f32; 4], kind: Overlap) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = w * h;
    match kind {
        Overlap::Union => inter / (area(a) + area(b) - inter),
        Overlap::Min => inter / area(a).min(area(b)),
    }
}

/// Intersection over union of two half-open `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy NMS: indices of the kept boxes, highest score first. A box is dropped when it
/// overlaps an already kept one by more than `threshold`.
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], threshold: f32, kind: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.iter().all(|&k| overlap(&boxes[k], &boxes[i], kind) <= threshold) {
            keep.push(i);
        }
    }
    keep
}

/// Weighted NMS (MediaPipe's `WEIGHTED` suppression): the best remaining box and every box that
/// overlaps it by more than `threshold` (IoU of half-open boxes) form one cluster, removed
/// together. Returns the clusters, best first, each led by its best box; the caller averages
/// each cluster by score, which steadies the box and keypoints of an anchor-based detector
/// whose neighbouring anchors all fire on one face.
pub fn weighted_nms(boxes: &[[f32; 4]], scores: &[f32], threshold: f32) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut clusters = Vec::new();
    while let Some(&best) = order.first() {
        let (cluster, rest): (Vec<usize>, Vec<usize>) =
            order.iter().partition(|&&i| i == best || iou(&boxes[best], &boxes[i]) > threshold);
        clusters.push(cluster);
        order = rest;
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() {
        let boxes = [[0., 0., 9., 9.], [1., 1., 10., 10.], [50., 50., 59., 59.], [2., 2., 6., 6.]];
        let scores = [0.8, 0.9, 0.7, 0.95];
        // 0 and 1 overlap by 81/119 = 0.68 > 0.5; 3 sits inside 1 (IoU 25/100 = 0.25).
        assert_eq!(nms(&boxes, &scores, 0.5, Overlap::Union), vec![3, 1, 2]);
        // Measured against the smaller box, 3 is fully inside 1 and goes.
        assert_eq!(nms(&boxes, &scores, 0.7, Overlap::Min), vec![3, 2]);
    }

    #[test]
    fn weighted_nms_clusters_overlapping_boxes_behind_the_best() {
        let boxes =
            [[0., 0., 10., 10.], [1., 0., 11., 10.], [30., 30., 40., 40.], [0., 5., 10., 15.]];
        let scores = [0.6, 0.9, 0.8, 0.7];
        // 0 and 1 overlap by 9/11 = 0.82; 3 overlaps 1 by 45/155 = 0.29, below 0.3.
        assert_eq!(weighted_nms(&boxes, &scores, 0.3), vec![vec![1, 0], vec![2], vec![3]]);
        // At 0.2, 3 joins 1's cluster too.
        assert_eq!(weighted_nms(&boxes, &scores, 0.2), vec![vec![1, 3, 0], vec![2]]);
    }

    #[test]
    fn iou_of_half_open_boxes() {
        assert_eq!(iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]), 50.0 / 150.0);
        assert_eq!(iou(&[0., 0., 10., 10.], &[20., 20., 30., 30.]), 0.0);
    }
}
