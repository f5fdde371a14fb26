//! Tagging: what is in a frame besides faces. Tags describe; they never grant access.
//!
//! Two taggers: an ONNX object detector (NanoDet class, [`objects`]) and a prototype bank
//! ([`prototypes`]): labels with mean embeddings in an encoder's space, so that a unified
//! encoder (CLIP/EVA-02 class) tags by similarity with no code change, only a bank file built
//! from example images.

pub mod labels;
pub mod objects;
pub mod prototypes;

use anyhow::bail;
use image::RgbImage;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use labels::Tag;
pub use objects::{Detection, ObjectDetector, ObjectParams};
pub use prototypes::PrototypeBank;

use crate::encode::{Embedding, Encoder};
use crate::infer::BackendKind;
use crate::manifest::Manifest;
use crate::resize::resize_rgb;

/// Tags of one image.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// The best score per label, from the object detector and the prototype bank.
    pub tags: Vec<Tag>,
    /// The object detector's detections.
    pub objects: Vec<Detection>,
    /// Every prototype's similarity to the whole image (empty without a bank).
    pub prototypes: Vec<Tag>,
}

/// Object tagging (`edgeid tag`, `identify --tags`). Tags never grant access.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggerConfig {
    /// Off: `edgeid tag` and `identify --tags` refuse to run.
    pub enabled: bool,
    /// Manifest of the object detector (role `objects`), or none.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Detections below this score are not tags.
    #[serde(default = "default_tag_score")]
    pub min_score: f32,
    /// Tiles per side run on top of the whole frame (0 or 1: the whole frame only).
    #[serde(default = "default_tiles")]
    pub tiles: u32,
    /// Share of a tile's side that overlaps its neighbour.
    #[serde(default = "default_tile_overlap")]
    pub overlap: f32,
    /// IoU above which two detections of one class are one object.
    #[serde(default = "default_tag_nms")]
    pub nms: f32,
    /// A prototype bank (`edgeid prototypes build`) in the encoder's space, or none.
    #[serde(default)]
    pub prototypes: Option<PathBuf>,
    /// Cosine similarity to a prototype at or above which its label is a tag.
    #[serde(default = "default_prototype_similarity")]
    pub prototype_min_similarity: f32,
    /// The daemon tags every frame in which it sees a face and journals, with each decision,
    /// the best score per label over the person's frames (one more detector pass per frame).
    #[serde(default)]
    pub in_daemon: bool,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        TaggerConfig {
            enabled: false,
            model: None,
            min_score: default_tag_score(),
            tiles: default_tiles(),
            overlap: default_tile_overlap(),
            nms: default_tag_nms(),
            prototypes: None,
            prototype_min_similarity: default_prototype_similarity(),
            in_daemon: false,
        }
    }
}

fn default_tag_score() -> f32 {
    0.3
}
fn default_tiles() -> u32 {
    2
}
fn default_tile_overlap() -> f32 {
    0.2
}
fn default_tag_nms() -> f32 {
    0.5
}
fn default_prototype_similarity() -> f32 {
    0.5
}

/// The configured taggers: the object detector and the prototype bank.
pub struct Tagger {
    objects: Option<ObjectDetector>,
    params: ObjectParams,
    bank: Option<(PrototypeBank, Encoder)>,
    min_similarity: f32,
}

impl Tagger {
    /// The taggers `t` asks for, on `backend`; the prototype bank runs in the space of the encoder
    /// of `encoder_manifest`; `config_file` names the config in errors.
    pub fn load(
        t: &TaggerConfig,
        backend: BackendKind,
        encoder_manifest: &Path,
        config_file: &Path,
    ) -> anyhow::Result<Tagger> {
        if !t.enabled {
            bail!(
                "tagging is off (tagger.enabled = false in {}); turn it on to tag images",
                config_file.display()
            );
        }
        let objects = match &t.model {
            Some(m) => Some(ObjectDetector::load(backend, &Manifest::load(m)?)?),
            None => None,
        };
        let bank = match &t.prototypes {
            Some(path) => {
                let encoder = Encoder::load(backend, &Manifest::load(encoder_manifest)?)?;
                Some((PrototypeBank::load(path, encoder.model_id())?, encoder))
            }
            None => None,
        };
        let params =
            ObjectParams { min_score: t.min_score, tiles: t.tiles, overlap: t.overlap, nms: t.nms };
        Ok(Tagger { objects, params, bank, min_similarity: t.prototype_min_similarity })
    }

    /// Tags of one frame.
    pub fn tag(&mut self, image: &RgbImage) -> anyhow::Result<TagReport> {
        let objects = match &mut self.objects {
            Some(d) => d.detect(image, &self.params)?,
            None => Vec::new(),
        };
        let mut tags = tags_of(&objects);
        let mut prototypes = Vec::new();
        if let Some((bank, encoder)) = &mut self.bank {
            prototypes = bank.scores(&embed_whole(encoder, image)?);
            tags.extend(prototypes.iter().filter(|p| p.score >= self.min_similarity).cloned());
            tags.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        Ok(TagReport { tags, objects, prototypes })
    }
}

/// An image's embedding as a whole: resized to the encoder's input, not aligned (how a unified
/// encoder looks at a scene or an object crop).
pub fn embed_whole(encoder: &mut Encoder, image: &RgbImage) -> anyhow::Result<Embedding> {
    let [w, h] = encoder.alignment().size;
    let input = resize_rgb(image, w as u32, h as u32);
    Ok(encoder.encode(&[&input])?.remove(0))
}

/// The best score per label of a list of detections, best first.
pub fn tags_of(detections: &[Detection]) -> Vec<Tag> {
    let mut tags: Vec<Tag> = Vec::new();
    for d in detections {
        match tags.iter_mut().find(|t| t.label == d.label) {
            Some(t) => t.score = t.score.max(d.score),
            None => tags.push(Tag { label: d.label.clone(), score: d.score }),
        }
    }
    tags.sort_by(|a, b| b.score.total_cmp(&a.score));
    tags
}

/// The best score per label over several lists of tags (a track's frames), best first.
pub fn merge_tags<'a>(lists: impl IntoIterator<Item = &'a [Tag]>) -> Vec<Tag> {
    let mut out: Vec<Tag> = Vec::new();
    for t in lists.into_iter().flatten() {
        match out.iter_mut().find(|o| o.label == t.label) {
            Some(o) => o.score = o.score.max(t.score),
            None => out.push(t.clone()),
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}
