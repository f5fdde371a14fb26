//! Morphing-attack detection (MAD). A morph is a reference photo blended from two people, so
//! that both match it; it is caught either from the reference alone (S-MAD: an ONNX crop head
//! of role `smad`, run at enrolment) or by comparing the enrolled reference with the live face
//! at verification (D-MAD).
//!
//! The D-MAD head here is a small learned layer over the encoder's embeddings: a logistic
//! regression on the per-dimension squared difference between the reference and the probe
//! embedding. Its weights live in a file described by a TOML manifest (role `dmad`) that names
//! the encoder it was trained for, so it is never applied to another embedding space.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use image::RgbImage;

use super::CropHead;
use crate::detect::Face;
use std::sync::{Arc, Mutex};

use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{ColorOrder, Dim, InputSpec, Layout, Manifest, ModelError, OutputSpec};

/// The manifest of a learned layer over embeddings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearHeadManifest {
    pub id: String,
    pub role: String,
    /// `linear`: a logistic regression over `features`, weights in a JSON file; `onnx`: an
    /// ONNX model reading `features`.
    pub kind: String,
    /// The weights file (JSON) or the ONNX model, relative to this manifest.
    pub file: PathBuf,
    pub sha256: String,
    /// Model id of the encoder whose embeddings the head reads.
    pub encoder: String,
    /// `squared_difference` (linear): `dim · (reference − probe)²`, per dimension.
    /// `embedding_pair` (onnx): input [N, 2·dim], the unit reference embedding then the unit
    /// probe embedding; output [N, 1], the bona fide probability.
    pub features: String,
    /// ONNX only: names of the input and of the output.
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(skip)]
    pub path: PathBuf,
}

/// The weights file: the score is `sigmoid(bias + weights · features)`, the probability that
/// the pair is bona fide (not a morph).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearWeights {
    pub weights: Vec<f32>,
    pub bias: f32,
}

/// A differential morph detector over the embeddings of a reference and a probe.
#[derive(Clone)]
pub struct Dmad {
    id: String,
    kind: DmadKind,
}

impl std::fmt::Debug for Dmad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dmad").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum DmadKind {
    Linear(LinearWeights),
    /// Shared by the clones a policy makes of the head; one score at a time.
    Onnx(Arc<Mutex<Box<dyn Session>>>),
}

impl Dmad {
    /// Loads a D-MAD head, refusing one trained for another encoder than `encoder_id` or one
    /// whose file does not match the manifest's hash or the embedding size.
    pub fn load(
        backend: BackendKind,
        path: &Path,
        encoder_id: &str,
        dim: usize,
    ) -> Result<Dmad, ModelError> {
        let invalid =
            |message: String| ModelError::ManifestInvalid { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|source| {
            ModelError::ManifestUnreadable { path: path.to_path_buf(), source }
        })?;
        let mut m: LinearHeadManifest =
            toml::from_str(&text).map_err(|e| invalid(crate::util::toml_error(&text, &e)))?;
        m.path = path.to_path_buf();
        if m.role != "dmad" {
            return Err(ModelError::WrongRole {
                path: m.path,
                expected: "dmad".into(),
                actual: m.role,
            });
        }
        if m.encoder != encoder_id {
            return Err(invalid(format!(
                "it was trained for encoder `{}`, but the config's encoder is `{encoder_id}`; retrain it for this encoder (examples/train_dmad.rs) or turn mad off",
                m.encoder
            )));
        }
        match (m.kind.as_str(), m.features.as_str(), &m.input, &m.output) {
            ("linear", "squared_difference", None, None) => {
                let (file, bytes) = verified(&m)?;
                let weights: LinearWeights = serde_json::from_slice(&bytes).map_err(|e| {
                    ModelError::Unloadable { path: file.clone(), message: e.to_string() }
                })?;
                if weights.weights.len() != dim || !weights.weights.iter().all(|w| w.is_finite())
                {
                    return Err(ModelError::ShapeMismatch {
                        path: file,
                        message: format!(
                            "it holds {} finite weights, the encoder's embedding has {dim} dimensions",
                            weights.weights.len()
                        ),
                    });
                }
                Ok(Dmad { id: m.id, kind: DmadKind::Linear(weights) })
            }
            ("onnx", "embedding_pair", Some(input), Some(output)) => {
                // The pair model through the same backends as every other model: a manifest
                // with a rank-2 input. Its pixel fields are never read (the input is not an
                // image).
                let manifest = Manifest {
                    id: m.id.clone(),
                    role: m.role.clone(),
                    file: m.file.clone(),
                    sha256: m.sha256.clone(),
                    precision: Default::default(),
                    derived_from: None,
                    description: m.description.clone(),
                    input: InputSpec {
                        name: input.clone(),
                        shape: vec![Dim::Free("N".into()), Dim::Fixed(2 * dim)],
                        layout: Layout::NHWC,
                        color: ColorOrder::RGB,
                        mean: 0.0,
                        scale: 1.0,
                    },
                    outputs: [(
                        "score".to_string(),
                        OutputSpec {
                            name: output.clone(),
                            shape: vec![Dim::Free("N".into()), Dim::Fixed(1)],
                        },
                    )]
                    .into(),
                    embedding: None,
                    alignment: None,
                    detector: None,
                    head: None,
                    objects: None,
                    features: None,
                    path: m.path.clone(),
                };
                let session = infer::load(backend, &manifest, &["score"])?;
                Ok(Dmad { id: m.id, kind: DmadKind::Onnx(Arc::new(Mutex::new(session))) })
            }
            _ => Err(invalid(format!(
                "kind `{}` with features `{}` is not known; edgeid reads kind = \"linear\" with features = \"squared_difference\", or kind = \"onnx\" with features = \"embedding_pair\" and `input`/`output` names",
                m.kind, m.features
            ))),
        }
    }

    /// A head from trained weights (used by the trainer to evaluate what it is about to save).
    pub fn from_weights(id: &str, weights: LinearWeights) -> Dmad {
        Dmad { id: id.to_string(), kind: DmadKind::Linear(weights) }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Probability that `reference` and `probe` (unit embeddings) are a bona fide pair rather
    /// than a morphed reference and one of its contributors.
    pub fn score(&self, reference: &[f32], probe: &[f32]) -> anyhow::Result<f32> {
        let (reference, probe) = (unit(reference), unit(probe));
        match &self.kind {
            DmadKind::Linear(w) => {
                let z = w.bias
                    + pair_features(&reference, &probe)
                        .iter()
                        .zip(&w.weights)
                        .map(|(f, w)| f * w)
                        .sum::<f32>();
                Ok(1.0 / (1.0 + (-z).exp()))
            }
            DmadKind::Onnx(session) => {
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

/// The manifest's file, checked against its sha256: (path, bytes).
fn verified(m: &LinearHeadManifest) -> Result<(PathBuf, Vec<u8>), ModelError> {
    let file = m.path.parent().unwrap_or(Path::new(".")).join(&m.file);
    if !file.exists() {
        return Err(ModelError::FileMissing { path: file, manifest: m.path.clone() });
    }
    let bytes = std::fs::read(&file)
        .map_err(|source| ModelError::FileUnreadable { path: file.clone(), source })?;
    let actual = crate::util::hex(&Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(&m.sha256) {
        return Err(ModelError::HashMismatch {
            path: file,
            expected: m.sha256.to_lowercase(),
            actual,
        });
    }
    Ok((file, bytes))
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
        let smad =
            smad.iter().map(|m| CropHead::load(backend, m, "smad")).collect::<Result<_, _>>()?;
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
