//! General object detection (NanoDet class: one stage, per-stride class scores and
//! distribution-focal box sides), run on the whole frame and on overlapping tiles.
//!
//! The model sees 416×416: at that size a wine glass across a table is a few cells and scores
//! 0.14. Tiling runs the model again on an n×n grid of overlapping parts of the frame, each
//! enlarged to the model's input, so small objects get the resolution they need; detections
//! from the whole frame and every tile are merged per class by NMS.

use anyhow::ensure;
use image::RgbImage;
use serde::Serialize;

use crate::detect::{nms, Overlap};
use crate::infer::input::{batch_shape, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{Dim, Manifest, ModelError, ObjectsSpec};
use crate::resize::resize_region;

/// One detected object in frame pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub label: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// How the detector is run.
#[derive(Debug, Clone, Copy)]
pub struct ObjectParams {
    /// Detections below this score are dropped.
    pub min_score: f32,
    /// Tiles per side on top of the whole-frame pass (0 or 1: the whole frame only).
    pub tiles: u32,
    /// Share of a tile's side that overlaps its neighbour.
    pub overlap: f32,
    /// IoU above which two detections of one class are the same object.
    pub nms: f32,
}

pub struct ObjectDetector {
    session: Box<dyn Session>,
    spec: ObjectsSpec,
    id: String,
    purposes: Vec<String>,
}

impl ObjectDetector {
    pub fn load(backend: BackendKind, manifest: &Manifest) -> Result<ObjectDetector, ModelError> {
        manifest.expect_role(crate::manifest::Role::Objects)?;
        let invalid =
            |message: String| ModelError::ManifestInvalid { path: manifest.path.clone(), message };
        let spec = manifest.objects.clone().ok_or_else(|| {
            invalid("an object detector manifest needs an [objects] table".into())
        })?;
        if spec.strides.is_empty() || spec.labels.is_empty() {
            return Err(invalid("objects.strides and objects.labels must not be empty".into()));
        }
        if manifest.input()?.fixed_hw().is_none() {
            return Err(invalid("an object detector's input needs a fixed size".into()));
        }
        let mut purposes = Vec::new();
        for s in &spec.strides {
            for (kind, width) in [("scores", spec.labels.len()), ("boxes", 4 * (spec.reg_max + 1))]
            {
                let purpose = format!("{kind}_{s}");
                let out = manifest.output(&purpose)?;
                if out.shape.last() != Some(&Dim::Fixed(width)) {
                    return Err(invalid(format!(
                        "outputs.{purpose} must end in {width} (labels / 4 × (reg_max + 1))"
                    )));
                }
                purposes.push(purpose);
            }
        }
        let names: Vec<&str> = purposes.iter().map(String::as_str).collect();
        let session = infer::load(backend, manifest, &names)?;
        Ok(ObjectDetector { session, spec, id: manifest.id.clone(), purposes })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every object of the frame, best first.
    pub fn detect(
        &mut self,
        frame: &RgbImage,
        params: &ObjectParams,
    ) -> anyhow::Result<Vec<Detection>> {
        let (w, h) = frame.dimensions();
        let mut found = self.detect_region(frame, [0, 0, w, h], params.min_score)?;
        if params.tiles > 1 {
            let n = params.tiles;
            // Tile side so that n tiles with the given overlap span the frame.
            let side = |len: u32| {
                ((len as f32) / (n as f32 - (n - 1) as f32 * params.overlap)).ceil() as u32
            };
            let (tw, th) = (side(w).min(w), side(h).min(h));
            for j in 0..n {
                for i in 0..n {
                    let x = ((w - tw) as f32 * i as f32 / (n - 1) as f32).round() as u32;
                    let y = ((h - th) as f32 * j as f32 / (n - 1) as f32).round() as u32;
                    found.extend(self.detect_region(frame, [x, y, tw, th], params.min_score)?);
                }
            }
        }
        let mut kept = Vec::new();
        let mut labels: Vec<&str> = found.iter().map(|d| d.label.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        for label in labels {
            let same: Vec<&Detection> = found.iter().filter(|d| d.label == label).collect();
            let boxes: Vec<[f32; 4]> = same.iter().map(|d| d.bbox).collect();
            let scores: Vec<f32> = same.iter().map(|d| d.score).collect();
            kept.extend(
                nms(&boxes, &scores, params.nms, Overlap::Union)
                    .into_iter()
                    .map(|k| same[k].clone()),
            );
        }
        kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(kept)
    }

    /// Detections in one region `[x, y, width, height]` of the frame, in frame pixels.
    fn detect_region(
        &mut self,
        frame: &RgbImage,
        region: [u32; 4],
        min_score: f32,
    ) -> anyhow::Result<Vec<Detection>> {
        let input = self.session.manifest().input()?.clone();
        let (ih, iw) = input.fixed_hw().expect("checked at load");
        let [rx, ry, rw, rh] = region;
        let mut data = Vec::with_capacity(iw * ih * 3);
        let part = resize_region(frame, [rx, ry, rw, rh], iw as u32, ih as u32);
        push_image(&input, &part, &mut data);
        let outputs = self.session.run(Tensor::new(batch_shape(&input, 1, iw, ih), data))?;
        let (sx, sy) = (rw as f32 / iw as f32, rh as f32 / ih as f32);
        let bins = self.spec.reg_max + 1;
        let classes = self.spec.labels.len();
        let mut out = Vec::new();
        for (k, stride) in self.spec.strides.iter().enumerate() {
            let (scores, boxes) = (&outputs[2 * k], &outputs[2 * k + 1]);
            let cols = iw / stride;
            let cells = scores.data.len() / classes;
            ensure!(
                boxes.data.len() == cells * 4 * bins && cells == cols * (ih / stride),
                "{}: outputs of stride {stride} have shapes {:?} and {:?}",
                self.purposes[2 * k],
                scores.shape,
                boxes.shape
            );
            for cell in 0..cells {
                let row = &scores.data[cell * classes..(cell + 1) * classes];
                let (class, &score) =
                    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("classes > 0");
                if score < min_score {
                    continue;
                }
                let cx = ((cell % cols) as f32 + self.spec.center_offset) * *stride as f32;
                let cy = ((cell / cols) as f32 + self.spec.center_offset) * *stride as f32;
                let sides: Vec<f32> = (0..4)
                    .map(|s| {
                        let at = (cell * 4 + s) * bins;
                        expected_bin(&boxes.data[at..at + bins]) * *stride as f32
                    })
                    .collect();
                let b = [cx - sides[0], cy - sides[1], cx + sides[2], cy + sides[3]];
                out.push(Detection {
                    label: self.spec.labels[class].clone(),
                    score,
                    bbox: [
                        (rx as f32 + b[0].max(0.0) * sx).min(frame.width() as f32),
                        (ry as f32 + b[1].max(0.0) * sy).min(frame.height() as f32),
                        (rx as f32 + b[2].min(iw as f32) * sx).min(frame.width() as f32),
                        (ry as f32 + b[3].min(ih as f32) * sy).min(frame.height() as f32),
                    ],
                });
            }
        }
        Ok(out)
    }
}

/// The mean bin of a softmax over `logits`: a box side in strides.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_bin_is_the_softmax_mean() {
        assert!((expected_bin(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
        assert!((expected_bin(&[-50.0, -50.0, 50.0]) - 2.0).abs() < 1e-4);
    }
}
