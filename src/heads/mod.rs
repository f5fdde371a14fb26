//! Heads: models that read a face (its crop or its embedding) and give one score, each with
//! its own threshold: the presentation-attack (PAD) heads that score the face crop, fused into
//! one live score as the config says; the morphing-attack heads in [`mad`].

pub mod mad;

use anyhow::ensure;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Face;
use crate::infer::input::{batch_shape, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{Dim, HeadSpec, Manifest, ModelError, Role};
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
            let crop = square_crop(frame, &face.bbox, self.spec.crop_scale);
            push_image(&input, &resize_rgb(&crop, w as u32, h as u32), &mut data);
        }
        let out = self.session.run(Tensor::new(batch_shape(&input, faces.len(), w, h), data))?;
        let out = &out[0];
        ensure!(out.shape.first() == Some(&faces.len()), "head output has shape {:?}", out.shape);
        let per = out.data.len() / faces.len();
        Ok((0..faces.len()).map(|i| out.data[i * per + self.spec.score_index]).collect())
    }
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
}

impl Pad {
    pub fn load(
        backend: BackendKind,
        manifests: &[Manifest],
        fusion: Fusion,
    ) -> Result<Pad, ModelError> {
        let heads = manifests
            .iter()
            .map(|m| CropHead::load(backend, m, Role::Pad))
            .collect::<Result<_, _>>()?;
        Ok(Pad { heads, fusion })
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
                let values = heads.iter().map(|h| h.1);
                let live = match self.fusion {
                    Fusion::Mean => values.sum::<f32>() / heads.len().max(1) as f32,
                    Fusion::Min => values.fold(f32::INFINITY, f32::min),
                };
                PadScore { live, heads }
            })
            .collect())
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
