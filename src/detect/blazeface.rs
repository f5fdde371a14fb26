//! BlazeFace (MediaPipe's face detector): one pass of a small single-shot network over the
//! whole frame, letterboxed to its square input, with a box and six keypoints per anchor.
//!
//! Why it is the default: on the bundled photos it finds every face MTCNN finds plus two MTCNN
//! misses, in one fixed-shape pass (MTCNN runs a pyramid of P-Net shapes and one R-Net/O-Net
//! crop after another: ~15× the time on a CPU, and shapes a GPU handles badly). Its keypoints
//! hold no mouth corners; alignment maps its mouth centre onto the middle of the template's
//! mouth ([`Face::correspondences`]).
//!
//! The decoding follows MediaPipe's `TensorsToDetectionsCalculator` with the anchors its
//! `SsdAnchorsCalculator` computes (every anchor of size 1, so offsets are in input pixels):
//! box centre = anchor + (dx, dy) / side, box = (w, h) / side, keypoint k = anchor + (kx, ky) /
//! side; score = sigmoid(clip(logit)); overlapping boxes merged by weighted NMS.

use std::path::PathBuf;

use anyhow::ensure;
use image::RgbImage;
use serde::Deserialize;

use super::face::{DetectorSettings, Face, FaceDetector, LandmarkSet};
use super::nms::weighted_nms;
use crate::capture::Frame;
use crate::infer::input::{batch_shape, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{Manifest, ModelError, SsdSpec};
use crate::resize::resize_region;
use crate::util::{check_range, OutOfRange};

/// BlazeFace, MediaPipe's single-shot detector (`kind = "blazeface"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlazefaceConfig {
    /// Its manifest (role `detector`, `stage = "ssd"`).
    pub model: PathBuf,
    /// Faces below this score are not reported (MediaPipe uses 0.5).
    #[serde(default = "default_blazeface_score")]
    pub min_score: f32,
    /// IoU above which two boxes are one face (weighted NMS; MediaPipe uses 0.3).
    #[serde(default = "default_blazeface_nms")]
    pub nms: f32,
    /// Besides the whole frame, run on tiles × tiles overlapping squares (0 or 1: the whole
    /// frame only; each tile is one more pass) for faces too small at full-frame scale.
    #[serde(default)]
    pub tiles: u32,
    /// Share of a tile's side that overlaps its neighbour.
    #[serde(default = "default_tile_overlap")]
    pub tile_overlap: f32,
}

impl BlazefaceConfig {
    pub fn params(&self) -> BlazeFaceParams {
        BlazeFaceParams {
            score_threshold: self.min_score,
            nms: self.nms,
            tiles: self.tiles,
            tile_overlap: self.tile_overlap,
        }
    }
}

impl DetectorSettings for BlazefaceConfig {
    fn min_score(&self) -> f32 {
        self.min_score
    }

    /// Refuses values outside what the decoding can run with.
    fn check(&self) -> Result<(), OutOfRange> {
        check_range(
            "detector.nms",
            self.nms,
            |v| v > 0.0 && v < 1.0,
            "between 0 and 1, exclusive",
        )?;
        check_range("detector.tiles", self.tiles as f32, |v| v <= 8.0, "0 to 8 tiles per side")?;
        check_range(
            "detector.tile_overlap",
            self.tile_overlap,
            |v| (0.0..0.9).contains(&v),
            "0 to 0.9",
        )
    }

    fn manifests(&self) -> Vec<&PathBuf> {
        vec![&self.model]
    }

    fn manifests_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.model]
    }

    fn load(&self, backend: BackendKind) -> Result<Box<dyn FaceDetector>, ModelError> {
        Ok(Box::new(BlazeFace::load(backend, &Manifest::load(&self.model)?, self.params())?))
    }
}

fn default_blazeface_score() -> f32 {
    0.5
}
fn default_blazeface_nms() -> f32 {
    0.3
}
fn default_tile_overlap() -> f32 {
    0.2
}

/// Tunable parameters (from the config; the model facts come from the manifest).
#[derive(Debug, Clone)]
pub struct BlazeFaceParams {
    /// Anchors scoring below this are dropped before NMS.
    pub score_threshold: f32,
    /// IoU above which two boxes are one face (weighted NMS).
    pub nms: f32,
    /// Besides the whole frame, run on `tiles` × `tiles` overlapping squares of it (0 or 1:
    /// the whole frame only), for faces too small for the model's input at full-frame scale.
    pub tiles: u32,
    /// Share of a tile's side that overlaps its neighbour.
    pub tile_overlap: f32,
}

pub struct BlazeFace {
    session: Box<dyn Session>,
    ssd: SsdSpec,
    /// Anchor centres, normalised to the input square.
    anchors: Vec<[f32; 2]>,
    side: usize,
    params: BlazeFaceParams,
    id: String,
}

/// One decoded anchor in frame pixels: box, score and the keypoints (all of them).
#[derive(Debug, Clone)]
struct Raw {
    bbox: [f32; 4],
    score: f32,
    keypoints: Vec<[f32; 2]>,
}

impl BlazeFace {
    /// Loads the model; the manifest must be a square-input `detector` with `stage = "ssd"`
    /// whose outputs hold one row per computed anchor.
    pub fn load(
        backend: BackendKind,
        manifest: &Manifest,
        params: BlazeFaceParams,
    ) -> Result<BlazeFace, ModelError> {
        let invalid =
            |message: String| ModelError::ManifestInvalid { path: manifest.path.clone(), message };
        manifest.expect_role(crate::manifest::Role::Detector)?;
        let ssd = manifest
            .detector
            .as_ref()
            .filter(|d| d.stage == crate::manifest::Stage::Ssd)
            .and_then(|d| d.ssd.clone())
            .ok_or_else(|| {
                invalid(
                    "it needs a [detector] table with stage = \"ssd\" and [detector.ssd]".into(),
                )
            })?;
        let side = match manifest.input()?.fixed_hw() {
            Some((h, w)) if h == w => h,
            _ => return Err(invalid("a BlazeFace input must be a fixed square".into())),
        };
        if ssd.strides.is_empty() || ssd.strides.contains(&0) || ssd.anchors_per_layer == 0 {
            return Err(invalid(
                "detector.ssd.strides and anchors_per_layer must be positive".into(),
            ));
        }
        if ssd.eyes_nose_mouth.iter().any(|&k| k >= ssd.keypoints) {
            return Err(invalid(format!(
                "detector.ssd.eyes_nose_mouth {:?} must index the {} keypoints",
                ssd.eyes_nose_mouth, ssd.keypoints
            )));
        }
        let anchors = ssd.anchors(side);
        let rows = |purpose: &str, width: usize| -> Result<(), ModelError> {
            let shape = &manifest.output(purpose)?.shape;
            let fixed: Vec<Option<usize>> = shape
                .iter()
                .map(|d| match d {
                    crate::manifest::Dim::Fixed(n) => Some(*n),
                    crate::manifest::Dim::Free(_) => None,
                })
                .collect();
            if fixed.len() != 3 || fixed[1] != Some(anchors.len()) || fixed[2] != Some(width) {
                return Err(invalid(format!(
                    "outputs.{purpose} must be [1, {}, {width}] (one row per anchor computed from detector.ssd)",
                    anchors.len()
                )));
            }
            Ok(())
        };
        rows("boxes", 4 + 2 * ssd.keypoints)?;
        rows("scores", 1)?;
        let session = infer::load(backend, manifest, &["boxes", "scores"])?;
        Ok(BlazeFace { session, ssd, anchors, side, params, id: manifest.id.clone() })
    }

    /// The squares `[x, y, side]` the detector looks at: the whole frame, then the tiles.
    fn regions(&self, width: u32, height: u32) -> Vec<[f32; 3]> {
        let (w, h) = (width as f32, height as f32);
        let mut regions = vec![[0.0, 0.0, w.max(h)]];
        let n = self.params.tiles;
        if n >= 2 {
            // n tiles of side t overlapping by `overlap · t` cover the longer side.
            let long = w.max(h);
            let t = long / (n as f32 - (n as f32 - 1.0) * self.params.tile_overlap);
            let step = t * (1.0 - self.params.tile_overlap);
            let count = |len: f32| ((len - t) / step).ceil().max(0.0) as u32 + 1;
            for j in 0..count(h) {
                for i in 0..count(w) {
                    let x = (i as f32 * step).min((w - t).max(0.0));
                    let y = (j as f32 * step).min((h - t).max(0.0));
                    regions.push([x, y, t]);
                }
            }
        }
        regions
    }

    /// Runs the model on the square `[x, y, side]` of the frame (letterboxed: the part outside
    /// the frame is black; centred for the whole frame, as MediaPipe does) and decodes the
    /// anchors above the score threshold.
    fn detect_region(
        &mut self,
        img: &RgbImage,
        region: [f32; 3],
        centred: bool,
    ) -> anyhow::Result<Vec<Raw>> {
        let [rx, ry, rs] = region;
        let side = self.side as u32;
        let scale = side as f32 / rs;
        // The part of the frame inside the square, resized to the model's scale…
        let (x0, y0) = (rx.max(0.0) as u32, ry.max(0.0) as u32);
        let x1 = ((rx + rs).ceil() as u32).min(img.width());
        let y1 = ((ry + rs).ceil() as u32).min(img.height());
        let (cw, ch) = (x1 - x0, y1 - y0);
        let pw = ((cw as f32 * scale).round() as u32).clamp(1, side);
        let ph = ((ch as f32 * scale).round() as u32).clamp(1, side);
        let part = resize_region(img, [x0, y0, cw, ch], pw, ph);
        // …on a black square.
        let (ox, oy) = if centred { ((side - pw) / 2, (side - ph) / 2) } else { (0, 0) };
        let mut input = RgbImage::new(side, side);
        image::imageops::replace(&mut input, &part, ox as i64, oy as i64);
        let spec = self.session.manifest().input()?.clone();
        let mut data = Vec::with_capacity(self.side * self.side * 3);
        push_image(&spec, &input, &mut data);
        let out =
            self.session.run(Tensor::new(batch_shape(&spec, 1, self.side, self.side), data))?;
        let (reg, logits) = (&out[0], &out[1]);
        let width = 4 + 2 * self.ssd.keypoints;
        ensure!(
            reg.data.len() == self.anchors.len() * width && logits.data.len() == self.anchors.len(),
            "BlazeFace outputs {:?} and {:?} do not hold one row per anchor ({})",
            reg.shape,
            logits.shape,
            self.anchors.len()
        );
        // Input pixels → frame pixels.
        let n = self.side as f32;
        let to_frame = |p: [f32; 2]| {
            [(p[0] * n - ox as f32) / scale + x0 as f32, (p[1] * n - oy as f32) / scale + y0 as f32]
        };
        let clip = self.ssd.logit_clip;
        let mut found = Vec::new();
        for (a, anchor) in self.anchors.iter().enumerate() {
            let score = 1.0 / (1.0 + (-logits.data[a].clamp(-clip, clip)).exp());
            if score < self.params.score_threshold {
                continue;
            }
            let r = &reg.data[a * width..(a + 1) * width];
            let c = [anchor[0] + r[0] / n, anchor[1] + r[1] / n];
            let (hw, hh) = (r[2] / n / 2.0, r[3] / n / 2.0);
            let tl = to_frame([c[0] - hw, c[1] - hh]);
            let br = to_frame([c[0] + hw, c[1] + hh]);
            let keypoints = (0..self.ssd.keypoints)
                .map(|k| to_frame([anchor[0] + r[4 + 2 * k] / n, anchor[1] + r[5 + 2 * k] / n]))
                .collect();
            found.push(Raw { bbox: [tl[0], tl[1], br[0], br[1]], score, keypoints });
        }
        Ok(found)
    }
}

impl FaceDetector for BlazeFace {
    fn detect(&mut self, frame: &Frame) -> anyhow::Result<Vec<Face>> {
        let img = &frame.image;
        let mut raw = Vec::new();
        for (i, region) in self.regions(img.width(), img.height()).into_iter().enumerate() {
            raw.extend(self.detect_region(img, region, i == 0)?);
        }
        let boxes: Vec<[f32; 4]> = raw.iter().map(|r| r.bbox).collect();
        let scores: Vec<f32> = raw.iter().map(|r| r.score).collect();
        let (w, h) = (img.width() as f32, img.height() as f32);
        let [le, re, nose, mouth] = self.ssd.eyes_nose_mouth;
        let faces = weighted_nms(&boxes, &scores, self.params.nms)
            .into_iter()
            .map(|cluster| {
                // The cluster's score-weighted mean box and keypoints; the best one's score.
                let total: f32 = cluster.iter().map(|&i| raw[i].score).sum();
                let mean = |f: &dyn Fn(&Raw) -> f32| {
                    cluster.iter().map(|&i| f(&raw[i]) * raw[i].score).sum::<f32>() / total
                };
                let bbox: [f32; 4] = std::array::from_fn(|k| mean(&|r| r.bbox[k]));
                let point = |k: usize| [mean(&|r| r.keypoints[k][0]), mean(&|r| r.keypoints[k][1])];
                let m = point(mouth);
                Face {
                    bbox: [bbox[0].max(0.0), bbox[1].max(0.0), bbox[2].min(w), bbox[3].min(h)],
                    score: raw[cluster[0]].score,
                    landmarks: [point(le), point(re), point(nose), m, m],
                    points: LandmarkSet::MouthCentre,
                }
            })
            .filter(|f| f.width() > 0.0 && f.height() > 0.0)
            .collect();
        Ok(faces)
    }

    fn model_id(&self) -> &str {
        &self.id
    }
}
