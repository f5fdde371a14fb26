//! The MTCNN cascade (Zhang et al. 2016): P-Net proposes boxes over an image pyramid, R-Net
//! rejects most of them on 24×24 crops, O-Net scores the rest on 48×48 crops and places five
//! landmarks. The box arithmetic follows the reference implementation the weights came with
//! (MATLAB heritage: boxes are 1-based and inclusive until the very end), because the box
//! regressions were trained against exactly that arithmetic.

use std::path::PathBuf;

use serde::Deserialize;

use anyhow::{ensure, Context};
use image::RgbImage;

use super::face::{DetectorSettings, Face, FaceDetector, LandmarkSet};
use super::nms::{nms, Overlap};
use crate::capture::Frame;
use crate::infer::input::{batch_shape, map_at, map_size, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{Dim, Manifest, ModelError, Stage as ManifestStage};
use crate::resize::resize_rgb;
use crate::util::{check_range, OutOfRange};

/// Largest R-Net/O-Net batch run at once (fewer where the backend prefers it); batches are
/// padded to a power of two so that only a handful of plans are ever built.
const MAX_BATCH: usize = 128;

/// The MTCNN cascade (`kind = "mtcnn"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtcnnConfig {
    /// Manifests of the three MTCNN stages.
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
    /// Smallest face side searched for, in pixels (≥ 12; smaller means a slower, deeper pyramid).
    #[serde(default = "default_min_face_px")]
    pub min_face_px: f32,
    /// Ratio between pyramid levels (0.5..0.9).
    #[serde(default = "default_scale_factor")]
    pub scale_factor: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    #[serde(default = "default_stage_thresholds")]
    pub stage_thresholds: [f32; 3],
    /// NMS overlaps: within a pyramid level, across levels, after R-Net, after O-Net.
    #[serde(default = "default_nms")]
    pub nms: [f32; 4],
    /// Average O-Net's landmarks over each face crop and its mirror image (one more O-Net
    /// pass; steadier alignment on tilted faces).
    #[serde(default = "yes")]
    pub mirror_landmarks: bool,
    /// Place the landmarks with a second O-Net pass on a crop centred on the final box (one
    /// more O-Net pass over the faces found; steadier alignment when the box moved a lot).
    #[serde(default = "yes")]
    pub refine_landmarks: bool,
    /// Faces below this final score are not reported.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
}

impl MtcnnConfig {
    pub fn params(&self) -> MtcnnParams {
        MtcnnParams {
            min_face_px: self.min_face_px,
            scale_factor: self.scale_factor,
            thresholds: self.stage_thresholds,
            nms: self.nms,
            mirror_landmarks: self.mirror_landmarks,
            refine_landmarks: self.refine_landmarks,
        }
    }
}

impl DetectorSettings for MtcnnConfig {
    fn min_score(&self) -> f32 {
        self.min_score
    }

    /// Refuses values outside what the cascade can run with.
    fn check(&self) -> Result<(), OutOfRange> {
        let unit = "between 0 and 1, exclusive";
        check_range(
            "detector.min_face_px",
            self.min_face_px,
            |v| (12.0..=4096.0).contains(&v),
            "12 to 4096 pixels",
        )?;
        check_range(
            "detector.scale_factor",
            self.scale_factor,
            |v| (0.5..=0.9).contains(&v),
            "0.5 to 0.9",
        )?;
        for (i, t) in self.stage_thresholds.iter().enumerate() {
            check_range(
                &format!("detector.stage_thresholds[{i}]"),
                *t,
                |v| v > 0.0 && v < 1.0,
                unit,
            )?;
        }
        for (i, t) in self.nms.iter().enumerate() {
            check_range(&format!("detector.nms[{i}]"), *t, |v| v > 0.0 && v < 1.0, unit)?;
        }
        Ok(())
    }

    fn manifests(&self) -> Vec<&PathBuf> {
        vec![&self.pnet, &self.rnet, &self.onet]
    }

    fn manifests_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.pnet, &mut self.rnet, &mut self.onet]
    }

    fn load(&self, backend: BackendKind) -> Result<Box<dyn FaceDetector>, ModelError> {
        let (p, r, o) =
            (Manifest::load(&self.pnet)?, Manifest::load(&self.rnet)?, Manifest::load(&self.onet)?);
        Ok(Box::new(Mtcnn::load(backend, [&p, &r, &o], self.params())?))
    }
}

fn default_min_face_px() -> f32 {
    20.0
}
fn default_scale_factor() -> f32 {
    0.709
}
fn default_stage_thresholds() -> [f32; 3] {
    [0.6, 0.7, 0.7]
}
fn default_nms() -> [f32; 4] {
    [0.5, 0.7, 0.7, 0.7]
}
fn default_min_score() -> f32 {
    0.9
}
fn yes() -> bool {
    true
}

/// The longest side of the largest pyramid level P-Net runs on.
pub const MAX_LEVEL_SIDE: f32 = 2048.0;

/// The pyramid scales: the first maps `min_face_px` onto P-Net's `cell`, the last keeps the
/// shorter side at least one cell.
///
/// No level is larger than [`MAX_LEVEL_SIDE`] on its longer side: on a huge image the
/// smallest faces searched for grow with it (a 9999-pixel square took minutes and gigabytes at
/// 20 px; a face that small in such a picture is no use at a door anyway).
fn pyramid_scales(cell: f32, min_face_px: f32, factor: f32, width: u32, height: u32) -> Vec<f32> {
    let wanted = cell / min_face_px;
    let cap = MAX_LEVEL_SIDE / width.max(height).max(1) as f32;
    let m = wanted.min(cap);
    if m < wanted {
        log::warn!(
            "{width}×{height} image: faces smaller than {:.0} px are not searched for (detector.min_face_px = {min_face_px}; pyramid levels are capped at {MAX_LEVEL_SIDE:.0} px)",
            cell / m
        );
    }
    let mut min_layer = width.min(height) as f32 * m;
    let mut scales = Vec::new();
    let mut s = m;
    while min_layer >= cell {
        scales.push(s);
        s *= factor;
        min_layer *= factor;
    }
    scales
}

/// Tunable detection parameters (from the config; the model facts come from the manifests).
#[derive(Debug, Clone)]
pub struct MtcnnParams {
    /// Smallest face side searched for, in frame pixels.
    pub min_face_px: f32,
    /// Ratio between pyramid levels.
    pub scale_factor: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// NMS overlap thresholds: within a pyramid level, across levels, after R-Net, after O-Net.
    pub nms: [f32; 4],
    /// Average O-Net's landmarks over the crop and its mirror image.
    pub mirror_landmarks: bool,
    /// Place the landmarks with a second O-Net pass centred on the final box.
    pub refine_landmarks: bool,
}

struct Stage {
    session: Box<dyn Session>,
    face_class: usize,
}

pub struct Mtcnn {
    pnet: Stage,
    rnet: Stage,
    onet: Stage,
    stride: f32,
    cell: f32,
    params: MtcnnParams,
    /// The three stages' model ids, for the journal.
    id: String,
}

/// A candidate box carried between stages: `[x1, y1, x2, y2]` 1-based inclusive, its score and
/// the regression offsets the stage predicted for it.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
}

impl FaceDetector for Mtcnn {
    /// Finds the faces in a frame, best first.
    fn detect(&mut self, frame: &Frame) -> anyhow::Result<Vec<Face>> {
        let img = &frame.image;
        let proposals = self.propose(img).context("P-Net")?;
        let refined = self.refine(img, proposals).context("R-Net")?;
        self.output(img, refined).context("O-Net")
    }

    /// The model ids of the three stages, joined by `+`.
    fn model_id(&self) -> &str {
        &self.id
    }
}

impl Mtcnn {
    /// Loads the three networks; each manifest must be a `detector` of the right stage whose
    /// outputs have the widths the cascade reads (checked before any model is parsed).
    pub fn load(
        backend: BackendKind,
        manifests: [&Manifest; 3],
        params: MtcnnParams,
    ) -> Result<Mtcnn, ModelError> {
        let mut specs = Vec::new();
        for (m, stage) in
            manifests.iter().zip([ManifestStage::Pnet, ManifestStage::Rnet, ManifestStage::Onet])
        {
            let invalid =
                |message: String| ModelError::ManifestInvalid { path: m.path.clone(), message };
            m.expect_role(crate::manifest::Role::Detector)?;
            let spec = m.detector.as_ref().filter(|d| d.stage == stage).ok_or_else(|| {
                invalid(format!("it needs a [detector] table with stage = \"{}\"", stage.name()))
            })?;
            let last = |purpose: &str| -> Result<Option<usize>, ModelError> {
                Ok(match m.output(purpose)?.shape.last() {
                    Some(Dim::Fixed(n)) => Some(*n),
                    _ => None,
                })
            };
            if last("scores")?.is_none_or(|n| spec.face_class >= n) {
                return Err(invalid(format!(
                    "detector.face_class = {} must index the fixed last dimension of outputs.scores",
                    spec.face_class
                )));
            }
            if last("boxes")? != Some(4) {
                return Err(invalid("outputs.boxes must end in a fixed dimension of 4".into()));
            }
            if stage == ManifestStage::Onet && last("landmarks")? != Some(10) {
                return Err(invalid(
                    "outputs.landmarks must end in a fixed dimension of 10".into(),
                ));
            }
            if stage != ManifestStage::Pnet && m.input()?.fixed_hw().is_none() {
                return Err(invalid("R-Net and O-Net inputs need a fixed size".into()));
            }
            specs.push(spec.clone());
        }
        let (stride, cell) = match (specs[0].stride, specs[0].cell) {
            (Some(s), Some(c)) if s > 0 && c > 0 => (s as f32, c as f32),
            _ => {
                return Err(ModelError::ManifestInvalid {
                    path: manifests[0].path.clone(),
                    message: "the P-Net manifest needs detector.stride and detector.cell".into(),
                })
            }
        };
        let stage = |i: usize, purposes: &[&str]| -> Result<Stage, ModelError> {
            let session = infer::load(backend, manifests[i], purposes)?;
            Ok(Stage { session, face_class: specs[i].face_class })
        };
        let pnet = stage(0, &["boxes", "scores"])?;
        let rnet = stage(1, &["boxes", "scores"])?;
        let onet = stage(2, &["boxes", "landmarks", "scores"])?;
        let id = manifests.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join("+");
        Ok(Mtcnn { pnet, rnet, onet, stride, cell, params, id })
    }

    fn scales(&self, width: u32, height: u32) -> Vec<f32> {
        pyramid_scales(self.cell, self.params.min_face_px, self.params.scale_factor, width, height)
    }

    /// Stage 1: P-Net over the pyramid, NMS within and across levels, regression, squaring.
    fn propose(&mut self, img: &RgbImage) -> anyhow::Result<Vec<[f32; 4]>> {
        let spec = self.pnet.session.manifest().input()?.clone();
        let mut all: Vec<Candidate> = Vec::new();
        for scale in self.scales(img.width(), img.height()) {
            let sw = (img.width() as f32 * scale).ceil() as u32;
            let sh = (img.height() as f32 * scale).ceil() as u32;
            let level = resize_rgb(img, sw, sh);
            let mut data = Vec::new();
            push_image(&spec, &level, &mut data);
            let input = Tensor::new(batch_shape(&spec, 1, sw as usize, sh as usize), data);
            let out = self.pnet.session.run(input)?;
            let (reg, prob) = (&out[0], &out[1]);
            ensure!(reg.shape.len() == 4 && prob.shape.len() == 4, "P-Net maps must be 4-D");
            let (rows, cols) = map_size(spec.layout, &prob.shape);
            let mut level_cands = Vec::new();
            for row in 0..rows {
                for col in 0..cols {
                    let score = map_at(
                        spec.layout,
                        &prob.shape,
                        &prob.data,
                        row,
                        col,
                        self.pnet.face_class,
                    );
                    if score < self.params.thresholds[0] {
                        continue;
                    }
                    let r = |c| map_at(spec.layout, &reg.shape, &reg.data, row, col, c);
                    let (x, y) = (col as f32 * self.stride, row as f32 * self.stride);
                    level_cands.push(Candidate {
                        b: [
                            ((x + 1.0) / scale).trunc(),
                            ((y + 1.0) / scale).trunc(),
                            ((x + self.cell) / scale).trunc(),
                            ((y + self.cell) / scale).trunc(),
                        ],
                        score,
                        reg: [r(0), r(1), r(2), r(3)],
                    });
                }
            }
            all.extend(suppress(level_cands, self.params.nms[0], Overlap::Union));
        }
        let kept = suppress(all, self.params.nms[1], Overlap::Union);
        Ok(kept
            .iter()
            .map(|c| {
                // P-Net's regression is relative to the box side without the +1.
                let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                let b = [
                    c.b[0] + c.reg[0] * w,
                    c.b[1] + c.reg[1] * h,
                    c.b[2] + c.reg[2] * w,
                    c.b[3] + c.reg[3] * h,
                ];
                square(b).map(f32::trunc)
            })
            .collect())
    }

    /// Stage 2: R-Net on 24×24 crops of the proposals.
    fn refine(&mut self, img: &RgbImage, boxes: Vec<[f32; 4]>) -> anyhow::Result<Vec<[f32; 4]>> {
        let (boxes, crops) = crops_for(self.rnet.session.as_ref(), img, boxes)?;
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let outs = run_batches(&mut self.rnet.session, &crops)?;
        let (reg, prob) = (&outs[0], &outs[1]);
        let classes = prob.shape[1];
        let cands: Vec<Candidate> = boxes
            .iter()
            .enumerate()
            .filter_map(|(k, b)| {
                let score = prob.data[k * classes + self.rnet.face_class];
                (score > self.params.thresholds[1]).then(|| Candidate {
                    b: *b,
                    score,
                    reg: [
                        reg.data[k * 4],
                        reg.data[k * 4 + 1],
                        reg.data[k * 4 + 2],
                        reg.data[k * 4 + 3],
                    ],
                })
            })
            .collect();
        let kept = suppress(cands, self.params.nms[2], Overlap::Union);
        Ok(kept.iter().map(|c| square(regress(c))).collect())
    }

    /// Stage 3: O-Net on 48×48 crops: final scores, boxes and landmarks.
    fn output(&mut self, img: &RgbImage, boxes: Vec<[f32; 4]>) -> anyhow::Result<Vec<Face>> {
        let boxes: Vec<[f32; 4]> = boxes.into_iter().map(|b| b.map(f32::trunc)).collect();
        let OnetOutput { boxes, scores, regs, points } = self.onet_pass(img, boxes)?;
        let mut cands = Vec::new();
        let mut kept_points = Vec::new();
        for k in 0..boxes.len() {
            if scores[k] <= self.params.thresholds[2] {
                continue;
            }
            let c = Candidate { b: boxes[k], score: scores[k], reg: regs[k] };
            cands.push(Candidate { b: regress(&c), ..c });
            kept_points.push(points[k]);
        }
        let keep = suppress_indices(&cands, self.params.nms[3], Overlap::Min);
        let mut faces: Vec<Face> = keep
            .into_iter()
            .map(|i| {
                let b = cands[i].b;
                // 1-based inclusive → 0-based half-open.
                Face {
                    bbox: [b[0] - 1.0, b[1] - 1.0, b[2], b[3]],
                    score: cands[i].score,
                    landmarks: kept_points[i],
                    points: LandmarkSet::Five,
                }
            })
            .collect();
        if self.params.refine_landmarks && !faces.is_empty() {
            // Landmarks again, on a crop centred on the final box: O-Net's landmarks follow its
            // crop, and the crop R-Net handed over can sit far off a tilted face.
            let finals: Vec<[f32; 4]> = faces
                .iter()
                .map(|f| {
                    square([f.bbox[0] + 1.0, f.bbox[1] + 1.0, f.bbox[2], f.bbox[3]]).map(f32::trunc)
                })
                .collect();
            let refined = self.onet_pass(img, finals.clone())?;
            if refined.boxes.len() == finals.len() {
                for (f, p) in faces.iter_mut().zip(refined.points) {
                    f.landmarks = p;
                }
            }
        }
        Ok(faces)
    }

    /// Runs O-Net on crops of 1-based inclusive `boxes`: for each box that could be cropped,
    /// its face score, box regression and landmarks (0-based frame pixels).
    ///
    /// With `mirror_landmarks`, O-Net also sees each crop mirrored and the landmarks are the
    /// mean of both passes (the mirrored one flipped back, left and right swapped), which
    /// makes them steadier and a flipped photo align to the mirror of the same crop.
    fn onet_pass(&mut self, img: &RgbImage, boxes: Vec<[f32; 4]>) -> anyhow::Result<OnetOutput> {
        let (boxes, mut crops) = crops_for(self.onet.session.as_ref(), img, boxes)?;
        let n = boxes.len();
        if n == 0 {
            return Ok(OnetOutput::default());
        }
        let mirror = self.params.mirror_landmarks;
        if mirror {
            let mirrored: Vec<RgbImage> =
                crops.iter().map(image::imageops::flip_horizontal).collect();
            crops.extend(mirrored);
        }
        let outs = run_batches(&mut self.onet.session, &crops)?;
        let (reg, marks, prob) = (&outs[0], &outs[1], &outs[2]);
        let classes = prob.shape[1];
        ensure!(marks.shape.get(1) == Some(&10), "O-Net landmarks must have 10 values per face");
        let scores = (0..n).map(|k| prob.data[k * classes + self.onet.face_class]).collect();
        let regs = (0..n).map(|k| std::array::from_fn(|i| reg.data[k * 4 + i])).collect();
        let points = boxes
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
                let m = &marks.data[k * 10..k * 10 + 10];
                // Relative to the box (5 x, then 5 y); -1 makes them 0-based.
                let mut lm: [[f32; 2]; 5] =
                    std::array::from_fn(|i| [w * m[i] + b[0] - 1.0, h * m[5 + i] + b[1] - 1.0]);
                if mirror {
                    let mm = &marks.data[(n + k) * 10..(n + k) * 10 + 10];
                    // Left/right swap: eyes 0↔1, nose stays, mouth corners 3↔4.
                    const SWAP: [usize; 5] = [1, 0, 2, 4, 3];
                    for (i, p) in lm.iter_mut().enumerate() {
                        let j = SWAP[i];
                        let x = w - w * mm[j] + b[0] - 1.0;
                        let y = h * mm[5 + j] + b[1] - 1.0;
                        *p = [(p[0] + x) * 0.5, (p[1] + y) * 0.5];
                    }
                }
                lm
            })
            .collect();
        Ok(OnetOutput { boxes, scores, regs, points })
    }
}

/// O-Net's verdict on the boxes that could be cropped, one entry per box.
#[derive(Default)]
struct OnetOutput {
    boxes: Vec<[f32; 4]>,
    scores: Vec<f32>,
    regs: Vec<[f32; 4]>,
    points: Vec<[[f32; 2]; 5]>,
}

/// NMS over candidates: indices of the survivors in score order.
fn suppress_indices(cands: &[Candidate], threshold: f32, kind: Overlap) -> Vec<usize> {
    let boxes: Vec<[f32; 4]> = cands.iter().map(|c| c.b).collect();
    let scores: Vec<f32> = cands.iter().map(|c| c.score).collect();
    nms(&boxes, &scores, threshold, kind)
}

/// NMS over candidates, keeping the survivors in score order.
fn suppress(cands: Vec<Candidate>, threshold: f32, kind: Overlap) -> Vec<Candidate> {
    suppress_indices(&cands, threshold, kind).into_iter().map(|i| cands[i]).collect()
}

/// Applies a refinement stage's regression; offsets are relative to the inclusive box side.
fn regress(c: &Candidate) -> [f32; 4] {
    let (w, h) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
    [c.b[0] + c.reg[0] * w, c.b[1] + c.reg[1] * h, c.b[2] + c.reg[2] * w, c.b[3] + c.reg[3] * h]
}

/// Grows a box to a square around its centre (the next stage's input is square).
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let side = w.max(h);
    let x1 = b[0] + w * 0.5 - side * 0.5;
    let y1 = b[1] + h * 0.5 - side * 0.5;
    [x1, y1, x1 + side, y1 + side]
}

/// Cuts the 1-based inclusive box out of the image, zero-filling what lies outside it.
fn crop_padded(img: &RgbImage, b: &[f32; 4]) -> Option<RgbImage> {
    let (x1, y1, x2, y2) = (b[0] as i64, b[1] as i64, b[2] as i64, b[3] as i64);
    let (w, h) = (x2 - x1 + 1, y2 - y1 + 1);
    // A box many times the frame is a regression gone wrong, not a face.
    let limit = 4 * (img.width().max(img.height()) as i64);
    if w <= 0 || h <= 0 || w > limit || h > limit {
        return None;
    }
    let mut out = RgbImage::new(w as u32, h as u32);
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    // Source pixel (0-based) of crop pixel (0,0) is (x1 - 1, y1 - 1).
    let (sx0, sy0) = (x1 - 1, y1 - 1);
    let ys = sy0.max(0)..(sy0 + h).min(ih);
    let xs = sx0.max(0)..(sx0 + w).min(iw);
    if xs.is_empty() {
        return Some(out);
    }
    let row_len = ((xs.end - xs.start) * 3) as usize;
    for sy in ys {
        let src_start = ((sy * iw + xs.start) * 3) as usize;
        let dst_start = (((sy - sy0) * w + (xs.start - sx0)) * 3) as usize;
        out.as_mut()[dst_start..dst_start + row_len]
            .copy_from_slice(&img.as_raw()[src_start..src_start + row_len]);
    }
    Some(out)
}

/// Crops `boxes` out of the image at a stage's fixed input size. Returns the boxes that could
/// be cropped and their crops.
fn crops_for(
    session: &dyn Session,
    img: &RgbImage,
    boxes: Vec<[f32; 4]>,
) -> anyhow::Result<(Vec<[f32; 4]>, Vec<RgbImage>)> {
    let (h, w) =
        session.manifest().input()?.fixed_hw().context("stage input must have a fixed size")?;
    let mut kept = Vec::new();
    let mut crops = Vec::new();
    for b in boxes {
        if let Some(crop) = crop_padded(img, &b) {
            crops.push(resize_rgb(&crop, w as u32, h as u32));
            kept.push(b);
        }
    }
    Ok((kept, crops))
}

/// Runs a fixed-size stage on crops in power-of-two batches; outputs are concatenated over
/// the crops (no outputs at all for no crops).
fn run_batches(session: &mut Box<dyn Session>, crops: &[RgbImage]) -> anyhow::Result<Vec<Tensor>> {
    let spec = session.manifest().input()?.clone();
    let mut merged: Vec<Tensor> = Vec::new();
    for chunk in crops.chunks(MAX_BATCH.min(session.max_batch()).max(1)) {
        let (w, h) = (chunk[0].width() as usize, chunk[0].height() as usize);
        let n = chunk.len().next_power_of_two();
        let mut data = Vec::with_capacity(n * w * h * 3);
        for crop in chunk {
            push_image(&spec, crop, &mut data);
        }
        data.resize(n * w * h * 3, 0.0);
        let outs = session.run(Tensor::new(batch_shape(&spec, n, w, h), data))?;
        if merged.is_empty() {
            merged = outs.iter().map(|o| Tensor::new(vec![0, o.shape[1]], Vec::new())).collect();
        }
        for (m, o) in merged.iter_mut().zip(outs) {
            let per = o.shape[1..].iter().product::<usize>();
            m.data.extend_from_slice(&o.data[..chunk.len() * per]);
            m.shape[0] += chunk.len();
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a 9999-pixel square ran P-Net on a 6000-pixel first level (minutes and
    /// gigabytes); levels are now capped, small images keep their pyramid.
    #[test]
    fn regression_pyramid_levels_are_capped_on_huge_images() {
        let huge = pyramid_scales(12.0, 20.0, 0.709, 9999, 9999);
        assert!(9999.0 * huge[0] <= MAX_LEVEL_SIDE + 0.5, "{}", huge[0]);
        assert!(huge.windows(2).all(|w| w[1] < w[0]));
        let small = pyramid_scales(12.0, 20.0, 0.709, 640, 480);
        assert_eq!(small[0], 0.6, "min_face_px onto the cell, as before");
        assert!(480.0 * small.last().unwrap() >= 12.0);
    }

    #[test]
    fn crop_padded_fills_outside_with_zero() {
        let mut img = RgbImage::new(4, 3);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(10 * x + y) as u8 + 1, 0, 0]);
        }
        // 1-based inclusive box (0,0)-(2,2): one pixel of padding above and left.
        let c = crop_padded(&img, &[0.0, 0.0, 2.0, 2.0]).unwrap();
        assert_eq!(c.dimensions(), (3, 3));
        assert_eq!(c.get_pixel(0, 0).0[0], 0);
        assert_eq!(c.get_pixel(1, 1).0[0], 1); // source (0,0)
        assert_eq!(c.get_pixel(2, 2).0[0], 12); // source (1,1)
        assert!(crop_padded(&img, &[5.0, 5.0, 4.0, 9.0]).is_none());
    }

    #[test]
    fn square_keeps_the_centre() {
        assert_eq!(square([0.0, 0.0, 10.0, 20.0]), [-5.0, 0.0, 15.0, 20.0]);
    }
}
