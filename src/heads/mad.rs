//! Morphing-attack detection (MAD). A morph is a reference photo blended from two people, so
//! that both match it; it is caught either from the reference alone (S-MAD: an ONNX crop head
//! of role `smad`, run at enrolment) or by comparing the enrolled reference with the live face
//! at verification (D-MAD).
//!
//! The D-MAD head here is a small learned layer over the encoder's embeddings: a logistic
//! regression on the per-dimension squared difference between the reference and the probe
//! embedding. Its weights live in a file described by a model manifest of role `dmad` whose
//! `[dmad]` table names the encoder it was trained for, so it is never applied to another
//! embedding space.

use std::path::Path;

use serde::{Deserialize, Serialize};

use image::RgbImage;

use super::CropHead;
use crate::detect::Face;
use std::sync::{Arc, Mutex};

use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{
    ColorOrder, Dim, DmadKind, InputSpec, Layout, Manifest, ModelError, OutputSpec, PerChannel,
    Role,
};

/// The weights file: the score is `sigmoid(bias + weights · features)`, the probability that
/// the pair is bona fide (not a morph).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearWeights {
    pub weights: Vec<f32>,
    pub bias: f32,
}

/// Why a linear head's weights file was refused.
#[derive(Debug)]
pub enum WeightsError {
    /// Not the JSON of a linear head.
    Json(String),
    /// Not one finite weight per embedding value (or a bias that is not finite).
    Shape(String),
}

impl LinearWeights {
    /// Parses a linear head's JSON for an encoder of `dim` values.
    pub fn parse(bytes: &[u8], dim: usize) -> Result<LinearWeights, WeightsError> {
        let w: LinearWeights =
            serde_json::from_slice(bytes).map_err(|e| WeightsError::Json(e.to_string()))?;
        if w.weights.len() != dim || !w.weights.iter().all(|x| x.is_finite()) || !w.bias.is_finite()
        {
            return Err(WeightsError::Shape(format!(
                "it holds {} weights and a bias, which must be finite; the encoder's embedding has {dim} dimensions",
                w.weights.len()
            )));
        }
        Ok(w)
    }
}

/// A differential morph detector over the embeddings of a reference and a probe.
#[derive(Clone)]
pub struct Dmad {
    id: String,
    kind: DmadKindLoaded,
}

impl std::fmt::Debug for Dmad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dmad").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum DmadKindLoaded {
    Linear(LinearWeights),
    /// Shared by the clones a policy makes of the head; one score at a time.
    Onnx(Arc<Mutex<Box<dyn Session>>>),
}

impl Dmad {
    /// Loads the D-MAD head of the manifest at `path` (role `dmad`), refusing one trained for
    /// another encoder than `encoder_id` or one whose file does not match the manifest's hash
    /// or the embedding size.
    pub fn load(
        backend: BackendKind,
        path: &Path,
        encoder_id: &str,
        dim: usize,
    ) -> Result<Dmad, ModelError> {
        let m = Manifest::load(path)?;
        m.expect_role(Role::Dmad)?;
        let invalid =
            |message: String| ModelError::ManifestInvalid { path: path.to_path_buf(), message };
        let spec = m.dmad.clone().ok_or_else(|| invalid("it needs a [dmad] table".into()))?;
        if spec.encoder != encoder_id {
            return Err(invalid(format!(
                "it was trained for encoder `{}`, but the config's encoder is `{encoder_id}`; retrain it for this encoder (examples/train_dmad.rs) or turn mad off",
                spec.encoder
            )));
        }
        match (spec.kind, spec.input, spec.output) {
            (DmadKind::Linear, _, _) => {
                let bytes = m.verify_file()?;
                let file = m.model_path();
                let weights = LinearWeights::parse(&bytes, dim).map_err(|e| match e {
                    WeightsError::Json(message) => {
                        ModelError::Unloadable { path: file.clone(), message }
                    }
                    WeightsError::Shape(message) => {
                        ModelError::ShapeMismatch { path: file.clone(), message }
                    }
                })?;
                Ok(Dmad { id: m.id, kind: DmadKindLoaded::Linear(weights) })
            }
            (DmadKind::Onnx, Some(input), Some(output)) => {
                // The pair model through the same backends as every other model: the manifest
                // with its embedding-pair input and bona fide output spelled out as tensors (the
                // pixel fields of the input are never read: it is not an image).
                let mut manifest = m.clone();
                manifest.image = Some(InputSpec {
                    name: input,
                    shape: vec![Dim::Free("N".into()), Dim::Fixed(2 * dim)],
                    layout: Layout::NHWC,
                    color: ColorOrder::RGB,
                    mean: PerChannel::All(0.0),
                    scale: PerChannel::All(1.0),
                });
                manifest.outputs = [(
                    "score".to_string(),
                    OutputSpec { name: output, shape: vec![Dim::Free("N".into()), Dim::Fixed(1)] },
                )]
                .into();
                let session = infer::load(backend, &manifest, &["score"])?;
                Ok(Dmad { id: m.id, kind: DmadKindLoaded::Onnx(Arc::new(Mutex::new(session))) })
            }
            (DmadKind::Onnx, _, _) => {
                Err(invalid("an ONNX D-MAD head needs dmad.input and dmad.output".into()))
            }
        }
    }

    /// A head from trained weights (used by the trainer to evaluate what it is about to save).
    pub fn from_weights(id: &str, weights: LinearWeights) -> Dmad {
        Dmad { id: id.to_string(), kind: DmadKindLoaded::Linear(weights) }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Probability that `reference` and `probe` (unit embeddings) are a bona fide pair rather
    /// than a morphed reference and one of its contributors.
    pub fn score(&self, reference: &[f32], probe: &[f32]) -> anyhow::Result<f32> {
        let (reference, probe) = (unit(reference), unit(probe));
        match &self.kind {
            DmadKindLoaded::Linear(w) => {
                let z = w.bias
                    + pair_features(&reference, &probe)
                        .iter()
                        .zip(&w.weights)
                        .map(|(f, w)| f * w)
                        .sum::<f32>();
                Ok(1.0 / (1.0 + (-z).exp()))
            }
            DmadKindLoaded::Onnx(session) => {
                let mut data = reference;
                data.extend(probe);
                let input = Tensor::new(vec![1, data.len()], data);
                let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
                let out = session.run(input)?;
                out.first()
                    .and_then(|t| t.data.first().copied())
                    .ok_or_else(|| anyhow::anyhow!("D-MAD head {} gave no score", self.id))
            }
        }
    }
}

/// The features the head reads: `dim · (reference − probe)²` per dimension (their sum is
/// `dim · (2 − 2·cosine)` for unit vectors, so the head can learn at least a cosine cut and,
/// beyond it, which dimensions a morph moves).
pub fn pair_features(reference: &[f32], probe: &[f32]) -> Vec<f32> {
    let dim = reference.len() as f32;
    reference.iter().zip(probe).map(|(r, p)| dim * (r - p) * (r - p)).collect()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| if norm > 0.0 { x / norm } else { 0.0 }).collect()
}

/// Every morph head the config names: S-MAD heads for references at enrolment, the D-MAD head
/// for verification.
pub struct Mad {
    pub smad: Vec<CropHead>,
    pub dmad: Option<Dmad>,
}

impl Mad {
    pub fn load(
        backend: BackendKind,
        smad: &[Manifest],
        dmad: Option<&Path>,
        encoder_id: &str,
        dim: usize,
    ) -> Result<Mad, ModelError> {
        let smad = smad
            .iter()
            .map(|m| CropHead::load(backend, m, Role::Smad))
            .collect::<Result<_, _>>()?;
        let dmad = dmad.map(|p| Dmad::load(backend, p, encoder_id, dim)).transpose()?;
        Ok(Mad { smad, dmad })
    }

    /// Each S-MAD head's bona fide score for a reference face, by model id.
    pub fn smad_scores(
        &mut self,
        frame: &RgbImage,
        face: &Face,
    ) -> anyhow::Result<Vec<(String, f32)>> {
        let mut out = Vec::new();
        for head in &mut self.smad {
            let s = head.score(frame, std::slice::from_ref(face))?;
            out.push((head.id().to_string(), s[0]));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_embeddings_score_the_bias() {
        let head = Dmad::from_weights("t", LinearWeights { weights: vec![-1.0; 4], bias: 2.0 });
        let e = [0.5f32; 4];
        let s = head.score(&e, &e).unwrap();
        assert!((s - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        // Far apart: lower.
        assert!(head.score(&e, &[-0.5; 4]).unwrap() < s);
    }
}
