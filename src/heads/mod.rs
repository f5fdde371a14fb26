//! Heads: models that read a face (its crop or its embedding) and give one score, each with
//! its own threshold: the presentation-attack (PAD) heads that score the face crop, fused into
//! one live score as the config says; the morphing-attack heads in [`mad`].

pub mod mad;

use std::collections::BTreeMap;

use anyhow::ensure;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Face;
use crate::infer::input::{batch_shape, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{Activation, CropMode, Dim, HeadSpec, Manifest, ModelError, Role};
use crate::resize::{resize_region, resize_rgb};

/// A model that scores a square crop around the face box.
pub struct CropHead {
    session: Box<dyn Session>,
    spec: HeadSpec,
    id: String,
}

impl CropHead {
    /// Loads a head of the given role (`pad`…); its manifest needs a `[head]` table and a
    /// `score` output whose fixed last dimension holds `score_index`.
    pub fn load(
        backend: BackendKind,
        manifest: &Manifest,
        role: Role,
    ) -> Result<CropHead, ModelError> {
        manifest.expect_role(role)?;
        let invalid =
            |message: String| ModelError::ManifestInvalid { path: manifest.path.clone(), message };
        let spec = manifest
            .head
            .clone()
            .ok_or_else(|| invalid("a head manifest needs a [head] table".into()))?;
        let width = match manifest.output("score")?.shape.last() {
            Some(Dim::Fixed(n)) => *n,
            _ => 0,
        };
        if spec.score_index >= width {
            return Err(invalid(format!(
                "head.score_index = {} is outside outputs.score",
                spec.score_index
            )));
        }
        if !(spec.crop_scale.is_finite() && spec.crop_scale > 0.0) {
            return Err(invalid("head.crop_scale must be positive".into()));
        }
        if manifest.input()?.fixed_hw().is_none() {
            return Err(invalid("a head's input needs a fixed size".into()));
        }
        let session = infer::load(backend, manifest, &["score"])?;
        Ok(CropHead { session, spec, id: manifest.id.clone() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// One score per face.
    pub fn score(&mut self, frame: &RgbImage, faces: &[Face]) -> anyhow::Result<Vec<f32>> {
        // In batches as large as the backend runs well (tract: one at a time).
        let mut scores = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.session.max_batch().max(1)) {
            scores.extend(self.score_batch(frame, chunk)?);
        }
        Ok(scores)
    }

    fn score_batch(&mut self, frame: &RgbImage, faces: &[Face]) -> anyhow::Result<Vec<f32>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.session.manifest().input()?.clone();
        let (h, w) = input.fixed_hw().expect("checked at load");
        let mut data = Vec::with_capacity(faces.len() * w * h * 3);
        for face in faces {
            push_image(
                &input,
                &head_crop(frame, &face.bbox, &self.spec, w as u32, h as u32),
                &mut data,
            );
        }
        let out = self.session.run(Tensor::new(batch_shape(&input, faces.len(), w, h), data))?;
        let out = &out[0];
        ensure!(out.shape.first() == Some(&faces.len()), "head output has shape {:?}", out.shape);
        let per = out.data.len() / faces.len();
        Ok(out.data.chunks(per).map(|row| activate(row, &self.spec)).collect())
    }
}

/// The head's score from its output row, as its manifest says: a probability, or 0 (an
/// attack, for a PAD head) where the model gave no finite number, so that a broken output
/// fails closed.
fn activate(row: &[f32], spec: &HeadSpec) -> f32 {
    let i = spec.score_index;
    let p = match spec.activation {
        Activation::None => row[i],
        Activation::Sigmoid => 1.0 / (1.0 + (-row[i]).exp()),
        Activation::Softmax => {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            (row[i] - max).exp() / sum
        }
    };
    if p.is_finite() {
        p
    } else {
        0.0
    }
}

/// A head's input: its crop of the whole frame (`crop` and `crop_scale` of its manifest),
/// resized to `width` × `height`.
pub fn head_crop(
    frame: &RgbImage,
    bbox: &[f32; 4],
    spec: &HeadSpec,
    width: u32,
    height: u32,
) -> RgbImage {
    let bbox = match spec.box_aspect {
        Some(aspect) => reshape(bbox, aspect),
        None => *bbox,
    };
    match spec.crop {
        CropMode::Square => resize_rgb(&square_crop(frame, &bbox, spec.crop_scale), width, height),
        CropMode::Shift | CropMode::Clip => {
            resize_region(frame, box_region(frame, &bbox, spec), width, height)
        }
    }
}

/// The box with width / height `aspect`, around the same centre, of the same area.
fn reshape(bbox: &[f32; 4], aspect: f32) -> [f32; 4] {
    let (w, h) = ((bbox[2] - bbox[0]).max(0.0), (bbox[3] - bbox[1]).max(0.0));
    let side = (w * h).sqrt();
    let (nw, nh) = (side * aspect.sqrt() / 2.0, side / aspect.sqrt() / 2.0);
    let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    [cx - nw, cy - nh, cx + nw, cy + nh]
}

/// The region `[x, y, width, height]` of the frame a `shift` or `clip` crop spans, at least
/// one pixel inside the frame.
fn box_region(frame: &RgbImage, bbox: &[f32; 4], spec: &HeadSpec) -> [u32; 4] {
    let (fw, fh) = (frame.width() as f32, frame.height() as f32);
    let (bw, bh) = ((bbox[2] - bbox[0]).max(1.0), (bbox[3] - bbox[1]).max(1.0));
    let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    let (l, t, r, b) = if spec.crop == CropMode::Shift {
        // Silent-Face-Anti-Spoofing's CropImage: the scale lowered until the box fits, then
        // the box moved back inside the frame; pixel columns l..=r, rows t..=b.
        let scale = spec.crop_scale.min((fh - 1.0) / bh).min((fw - 1.0) / bw).max(0.0);
        let (nw, nh) = (bw * scale, bh * scale);
        let (mut l, mut t) = (cx - nw / 2.0, cy - nh / 2.0);
        let (mut r, mut b) = (cx + nw / 2.0, cy + nh / 2.0);
        if l < 0.0 {
            (r, l) = (r - l, 0.0);
        }
        if t < 0.0 {
            (b, t) = (b - t, 0.0);
        }
        if r > fw - 1.0 {
            (l, r) = (l - (r - fw + 1.0), fw - 1.0);
        }
        if b > fh - 1.0 {
            (t, b) = (t - (b - fh + 1.0), fh - 1.0);
        }
        (l, t, r + 1.0, b + 1.0)
    } else {
        let (nw, nh) = (bw * spec.crop_scale / 2.0, bh * spec.crop_scale / 2.0);
        ((cx - nw).max(0.0), (cy - nh).max(0.0), (cx + nw).min(fw), (cy + nh).min(fh))
    };
    // Truncated as the reference does (`int()`), then kept inside the frame whatever the box.
    let clamp = |v: f32, max: f32| if v.is_finite() { v.clamp(0.0, max) } else { 0.0 };
    let (x0, y0) = (clamp(l, fw - 1.0) as u32, clamp(t, fh - 1.0) as u32);
    let (x1, y1) = (clamp(r, fw) as u32, clamp(b, fh) as u32);
    [x0, y0, x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1)]
}

/// Largest side a head's square is cut at, before its resize to the head's input (a few
/// hundred pixels): a face filling a 10 000-pixel photo at `crop_scale` 2.7 is a 27 000-pixel
/// square (2 GB of pixels); a larger square is cut at this side, at a lower resolution.
const MAX_CROP_SIDE: i64 = 2048;

/// A square of the box's longer side × `scale` around its centre, black outside the frame; at
/// most `MAX_CROP_SIDE` pixels a side (a larger square comes shrunk to that side).
pub fn square_crop(img: &RgbImage, bbox: &[f32; 4], scale: f32) -> RgbImage {
    let side = ((bbox[2] - bbox[0]).max(bbox[3] - bbox[1]) * scale).round().max(1.0) as i64;
    let cx = (bbox[0] + bbox[2]) / 2.0;
    let cy = (bbox[1] + bbox[3]) / 2.0;
    let (x0, y0) =
        ((cx - side as f32 / 2.0).round() as i64, (cy - side as f32 / 2.0).round() as i64);
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    if side > MAX_CROP_SIDE {
        // The part inside the frame, shrunk into its place on a black square.
        let out_side = MAX_CROP_SIDE as u32;
        let mut out = RgbImage::new(out_side, out_side);
        let (ix0, iy0, ix1, iy1) = (x0.max(0), y0.max(0), (x0 + side).min(iw), (y0 + side).min(ih));
        if ix1 > ix0 && iy1 > iy0 {
            let k = MAX_CROP_SIDE as f64 / side as f64;
            let at = |v: i64| ((v as f64 * k).round() as u32).min(out_side - 1);
            let (dx, dy) = (at(ix0 - x0), at(iy0 - y0));
            let (dw, dh) =
                (at(ix1 - ix0).max(1).min(out_side - dx), at(iy1 - iy0).max(1).min(out_side - dy));
            let region = [ix0 as u32, iy0 as u32, (ix1 - ix0) as u32, (iy1 - iy0) as u32];
            image::imageops::replace(
                &mut out,
                &resize_region(img, region, dw, dh),
                dx.into(),
                dy.into(),
            );
        }
        return out;
    }
    // The part inside the frame, row by row (one copy per row, not per pixel).
    let mut out = RgbImage::new(side as u32, side as u32);
    let (ix0, ix1) = (x0.max(0), (x0 + side).min(iw));
    if ix1 > ix0 {
        let (src, dst) = (img.as_raw(), &mut *out);
        let (len, row, src_row) = ((ix1 - ix0) as usize * 3, side as usize * 3, iw as usize * 3);
        for y in y0.max(0)..(y0 + side).min(ih) {
            let s = y as usize * src_row + ix0 as usize * 3;
            let d = (y - y0) as usize * row + (ix0 - x0) as usize * 3;
            dst[d..d + len].copy_from_slice(&src[s..s + len]);
        }
    }
    out
}

/// How several PAD scores become one live score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// The mean of the heads' scores.
    #[default]
    Mean,
    /// The lowest: any head that suspects an attack decides.
    Min,
    /// A logistic rule fitted on labelled captures (`edgeid calibrate --pad --fit-fusion`):
    /// sigmoid(bias + Σ weight × score), with `pad.fusion_bias` and `pad.fusion_weights`.
    Logistic,
}

impl Fusion {
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Mean => "mean",
            Fusion::Min => "min",
            Fusion::Logistic => "logistic",
        }
    }
}

/// A fitted logistic fusion: the bias and one weight per head, by the head's model id (so
/// that a fusion fitted for other heads, or other versions of them, is refused).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct LogisticFusion {
    pub bias: f32,
    pub weights: BTreeMap<String, f32>,
}

impl LogisticFusion {
    /// The fused live probability of one face from its heads' scores (by model id).
    pub fn fuse(&self, scores: &[(String, f32)]) -> f32 {
        let z = self.bias
            + scores
                .iter()
                .map(|(id, s)| self.weights.get(id).copied().unwrap_or(0.0) * s)
                .sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// PAD scores of one face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PadScore {
    /// The fused live score, 0..1 (higher: more likely bona fide).
    pub live: f32,
    /// Each head's score by model id.
    pub heads: Vec<(String, f32)>,
}

/// The presentation-attack detector: every configured head, fused.
pub struct Pad {
    heads: Vec<CropHead>,
    fusion: Fusion,
    logistic: LogisticFusion,
}

impl Pad {
    /// Loads the heads; a logistic fusion must weigh exactly these heads (by model id).
    pub fn load(
        backend: BackendKind,
        manifests: &[Manifest],
        fusion: Fusion,
        logistic: &LogisticFusion,
    ) -> Result<Pad, ModelError> {
        if fusion == Fusion::Logistic {
            let ids: Vec<&str> = manifests.iter().map(|m| m.id.as_str()).collect();
            let missing: Vec<&str> =
                ids.iter().copied().filter(|id| !logistic.weights.contains_key(*id)).collect();
            let extra: Vec<&str> = logistic
                .weights
                .keys()
                .map(String::as_str)
                .filter(|id| !ids.contains(id))
                .collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(ModelError::FusionMismatch {
                    message: format!(
                        "weigh other heads than pad.models: no weight for {missing:?}, a weight for {extra:?} which is not loaded"
                    ),
                });
            }
            if !logistic.bias.is_finite() || logistic.weights.values().any(|w| !w.is_finite()) {
                return Err(ModelError::FusionMismatch {
                    message: "must be finite numbers".into(),
                });
            }
        }
        let heads = manifests
            .iter()
            .map(|m| CropHead::load(backend, m, Role::Pad))
            .collect::<Result<_, _>>()?;
        Ok(Pad { heads, fusion, logistic: logistic.clone() })
    }

    /// The heads' model ids, in the order their scores come.
    pub fn head_ids(&self) -> Vec<String> {
        self.heads.iter().map(|h| h.id().to_string()).collect()
    }

    pub fn score(&mut self, frame: &RgbImage, faces: &[Face]) -> anyhow::Result<Vec<PadScore>> {
        let mut per_head = Vec::new();
        for head in &mut self.heads {
            per_head.push((head.id().to_string(), head.score(frame, faces)?));
        }
        Ok((0..faces.len())
            .map(|i| {
                let heads: Vec<(String, f32)> =
                    per_head.iter().map(|(id, s)| (id.clone(), s[i])).collect();
                let live = self.fuse(&heads);
                PadScore { live, heads }
            })
            .collect())
    }

    /// One live score from the heads' scores of a face, by the configured fusion.
    pub fn fuse(&self, heads: &[(String, f32)]) -> f32 {
        let values = heads.iter().map(|h| h.1);
        match self.fusion {
            Fusion::Mean => values.sum::<f32>() / heads.len().max(1) as f32,
            Fusion::Min => values.fold(f32::INFINITY, f32::min),
            Fusion::Logistic => self.logistic.fuse(heads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_crop_centres_on_the_box_and_pads_with_black() {
        let mut img = RgbImage::new(10, 10);
        img.put_pixel(1, 1, image::Rgb([255, 0, 0]));
        // A 4×2 box at (0,0): square of side 4 centred on (2,1) → starts at (0,-1).
        let c = square_crop(&img, &[0.0, 0.0, 4.0, 2.0], 1.0);
        assert_eq!(c.dimensions(), (4, 4));
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(1, 2).0, [255, 0, 0]);
    }

    /// A face filling a big photo: its 2.5× square (10 000 px, 300 MB at full resolution) is
    /// cut at 2048 px a side, with the frame in its place and black around it.
    #[test]
    fn a_huge_square_is_cut_at_a_bounded_side() {
        let mut img = RgbImage::new(4000, 3000);
        for y in 1000..1100 {
            for x in 2000..2100 {
                img.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        // Side 4000 × 2.5 = 10 000, from (-3000, -3500): the frame is x 3000..7000, y 3500..6500
        // of the square; scale 2048 / 10 000.
        let c = square_crop(&img, &[0.0, 0.0, 4000.0, 3000.0], 2.5);
        assert_eq!(c.dimensions(), (2048, 2048));
        let k = 2048.0 / 10_000.0;
        let at = |v: f64| (v * k) as u32;
        assert_eq!(c.get_pixel(at(3000.0 + 2050.0), at(3500.0 + 1050.0)).0, [255, 0, 0]);
        assert_eq!(c.get_pixel(at(3000.0 + 1000.0), at(3500.0 + 1000.0)).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(at(1000.0), at(1000.0)).0, [0, 0, 0], "outside the frame");
        assert_eq!(c.get_pixel(at(7100.0), at(6600.0)).0, [0, 0, 0], "outside the frame");
    }
}
