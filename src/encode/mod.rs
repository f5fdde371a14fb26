//! Encoding: aligned face crops to embeddings in the encoder's space.

use anyhow::ensure;
use image::RgbImage;
use serde::Serialize;

use crate::infer::input::{batch_shape, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{AlignmentSpec, Manifest, ModelError};

/// An embedding; L2-normalised when the manifest says so, so cosine is a dot product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    /// Cosine similarity (vectors of different length compare as 0: they are not comparable).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        cosine(&self.0, &other.0)
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

pub struct Encoder {
    session: Box<dyn Session>,
    manifest: Manifest,
    alignment: AlignmentSpec,
    dim: usize,
    l2: bool,
    /// Test-time flip: each crop and its mirror image encoded, their embeddings averaged.
    flip: bool,
}

impl Encoder {
    /// Loads an `encoder` model; its manifest must describe the embedding and the alignment.
    pub fn load(backend: BackendKind, manifest: &Manifest) -> Result<Encoder, ModelError> {
        manifest.expect_role(crate::manifest::Role::Encoder)?;
        let missing = |what: &str| ModelError::ManifestInvalid {
            path: manifest.path.clone(),
            message: format!("an encoder manifest needs an [{what}] table"),
        };
        let embedding = manifest.embedding.clone().ok_or_else(|| missing("embedding"))?;
        let alignment = manifest.alignment.clone().ok_or_else(|| missing("alignment"))?;
        let session = infer::load(backend, manifest, &["embedding"])?;
        Ok(Encoder {
            session,
            manifest: manifest.clone(),
            alignment,
            dim: embedding.dim,
            l2: embedding.normalize == crate::manifest::Normalize::L2,
            flip: false,
        })
    }

    /// With `flip`, every crop is encoded with its mirror image and the two embeddings averaged
    /// (`encoder.flip`): a face's two halves count alike, at twice the encoder's time.
    pub fn with_flip(mut self, flip: bool) -> Encoder {
        self.flip = flip;
        self
    }

    /// The model id stored beside every embedding this encoder makes.
    pub fn model_id(&self) -> &str {
        &self.manifest.id
    }

    /// sha256 of the model file (checked at load).
    pub fn sha256(&self) -> &str {
        &self.manifest.sha256
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn alignment(&self) -> &AlignmentSpec {
        &self.alignment
    }

    /// Encodes aligned crops (already of the input size), in batches as large as the backend
    /// runs well (tract: one at a time; a batch of 3 MobileFaceNet crops took 2.1× the time of
    /// three single runs there, onnxruntime gains from batching).
    pub fn encode(&mut self, crops: &[&RgbImage]) -> anyhow::Result<Vec<Embedding>> {
        let mut out = self.encode_each(crops)?;
        if self.flip {
            let mirrored: Vec<RgbImage> =
                crops.iter().map(|c| image::imageops::flip_horizontal(*c)).collect();
            let mirrored: Vec<&RgbImage> = mirrored.iter().collect();
            for (e, m) in out.iter_mut().zip(self.encode_each(&mirrored)?) {
                e.0.iter_mut().zip(&m.0).for_each(|(a, b)| *a = (*a + b) / 2.0);
                if self.l2 {
                    let norm = e.0.iter().map(|x| x * x).sum::<f32>().sqrt();
                    if norm > 0.0 {
                        e.0.iter_mut().for_each(|x| *x /= norm);
                    }
                }
            }
        }
        Ok(out)
    }

    fn encode_each(&mut self, crops: &[&RgbImage]) -> anyhow::Result<Vec<Embedding>> {
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(self.session.max_batch().max(1)) {
            out.extend(self.encode_batch(chunk)?);
        }
        Ok(out)
    }

    fn encode_batch(&mut self, crops: &[&RgbImage]) -> anyhow::Result<Vec<Embedding>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let [w, h] = self.alignment.size;
        let spec = self.manifest.input()?;
        let mut data = Vec::with_capacity(crops.len() * w * h * 3);
        for crop in crops {
            ensure!(
                crop.dimensions() == (w as u32, h as u32),
                "encoder input must be {w}×{h}, got {:?}",
                crop.dimensions()
            );
            push_image(spec, crop, &mut data);
        }
        let out = self.session.run(Tensor::new(batch_shape(spec, crops.len(), w, h), data))?;
        let out = &out[0];
        ensure!(
            out.shape == [crops.len(), self.dim],
            "encoder output has shape {:?}, the manifest says [N, {}]",
            out.shape,
            self.dim
        );
        // A NaN would sort above every score in the 1:N search and hide the real best match.
        ensure!(
            out.data.iter().all(|x| x.is_finite()),
            "encoder {} produced a non-finite embedding (NaN or infinity); the model or its backend is broken",
            self.manifest.id
        );
        Ok(out
            .data
            .chunks(self.dim)
            .map(|v| {
                let mut v = v.to_vec();
                if self.l2 {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    if norm > 0.0 {
                        v.iter_mut().for_each(|x| *x /= norm);
                    }
                }
                Embedding(v)
            })
            .collect())
    }
}
