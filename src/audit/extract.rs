//! What an audit measures: an image in, a feature vector out. The deployed face encoder looks
//! at the whole image resized to its input (no alignment: a digit or a texture has no eyes);
//! a `features` model is pooled from its named output; "pixels" is the image itself.

use image::RgbImage;

use crate::encode::Encoder;
use crate::infer::input::{batch_shape, push_image};
use crate::infer::{self, BackendKind, Session, Tensor};
use crate::manifest::{Dim, Manifest, ModelError};
use crate::resize::resize_rgb;

/// Side of the grey thumbnail the pixel baseline uses: big enough to keep a digit or a
/// texture's grain, small enough that the probe is not starved of samples per dimension.
const PIXELS_SIDE: u32 = 16;

pub enum Extractor {
    Encoder(Encoder),
    Features { session: Box<dyn Session>, manifest: Manifest, size: (u32, u32), pool_mean: bool },
    Pixels,
}

/// Who made the features, written with every audit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelRef {
    pub id: String,
    /// sha256 of the model file ("" for pixels).
    pub sha256: String,
}

impl Extractor {
    /// Loads an `encoder` or a `features` manifest.
    pub fn load(backend: BackendKind, manifest: &Manifest) -> Result<Extractor, ModelError> {
        if manifest.role == crate::manifest::Role::Encoder {
            return Ok(Extractor::Encoder(Encoder::load(backend, manifest)?));
        }
        manifest.expect_role(crate::manifest::Role::Features)?;
        let spec = manifest.features.clone().ok_or_else(|| ModelError::ManifestInvalid {
            path: manifest.path.clone(),
            message: "a features manifest needs a [features] table (dim, pool)".into(),
        })?;
        let size = manifest.input()?.fixed_hw().ok_or_else(|| ModelError::ManifestInvalid {
            path: manifest.path.clone(),
            message: "a features model needs a fixed input height and width".into(),
        })?;
        if manifest.input()?.shape[0] != Dim::Fixed(1)
            && !matches!(manifest.input()?.shape[0], Dim::Free(_))
        {
            return Err(ModelError::ManifestInvalid {
                path: manifest.path.clone(),
                message: "a features model runs one image at a time (batch 1)".into(),
            });
        }
        let session = infer::load(backend, manifest, &["features"])?;
        Ok(Extractor::Features {
            session,
            manifest: manifest.clone(),
            size: (size.1 as u32, size.0 as u32),
            pool_mean: spec.pool == crate::manifest::Pool::Mean,
        })
    }

    pub fn model(&self) -> ModelRef {
        match self {
            Extractor::Encoder(e) => {
                ModelRef { id: e.model_id().to_string(), sha256: e.sha256().to_string() }
            }
            Extractor::Features { manifest, .. } => {
                ModelRef { id: manifest.id.clone(), sha256: manifest.sha256.to_lowercase() }
            }
            Extractor::Pixels => ModelRef {
                id: format!("pixels-{PIXELS_SIDE}x{PIXELS_SIDE}-grey"),
                sha256: String::new(),
            },
        }
    }

    /// One feature vector per image.
    pub fn features(&mut self, image: &RgbImage) -> anyhow::Result<Vec<f32>> {
        match self {
            Extractor::Encoder(e) => Ok(crate::tag::embed_whole(e, image)?.0),
            Extractor::Features { session, manifest, size, pool_mean } => {
                let input = resize_rgb(image, size.0, size.1);
                let mut data = Vec::new();
                push_image(manifest.input()?, &input, &mut data);
                let shape = batch_shape(manifest.input()?, 1, size.0 as usize, size.1 as usize);
                let out = session.run(Tensor::new(shape, data))?.remove(0);
                if *pool_mean {
                    anyhow::ensure!(
                        out.shape.len() == 4,
                        "features output has shape {:?}; `pool = \"mean\"` needs [N, C, H, W]",
                        out.shape
                    );
                    let (c, hw) = (out.shape[1], out.shape[2] * out.shape[3]);
                    Ok((0..c)
                        .map(|k| out.data[k * hw..(k + 1) * hw].iter().sum::<f32>() / hw as f32)
                        .collect())
                } else {
                    Ok(out.data)
                }
            }
            Extractor::Pixels => {
                let small = resize_rgb(image, PIXELS_SIDE, PIXELS_SIDE);
                Ok(small
                    .pixels()
                    .map(|p| (p[0] as f32 + p[1] as f32 + p[2] as f32) / (3.0 * 255.0))
                    .collect())
            }
        }
    }
}
