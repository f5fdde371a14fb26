//! Model manifests: a model is an ONNX file plus a TOML file that says what it is.
//!
//! Every number the pipeline needs about a model (input name, shape, layout, value range,
//! output names, embedding size, alignment template, detector stride…) lives in the manifest,
//! never in code, so that swapping MobileFace for another encoder is a configuration change.
//! Loading checks the file against the manifest (existence, sha256) before any byte of it is
//! parsed as a model, and the backend then checks the graph's shapes against the manifest.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a model was refused. Callers branch on these (e.g. a daemon keeps running on the old
/// model when a new one fails to load), so they are typed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model manifest {path} cannot be read: {error}; check the path in the config")]
    ManifestUnreadable { path: PathBuf, error: std::io::Error },
    #[error(
        "model manifest {path} is not valid: {message}; fix the manifest (see models/README.md)"
    )]
    ManifestInvalid { path: PathBuf, message: String },
    #[error("model file {path} is missing; copy it beside its manifest {manifest} or fix `file` in the manifest{}", source_hint(.origin))]
    FileMissing { path: PathBuf, manifest: PathBuf, origin: Option<String> },
    #[error("model file {path} cannot be read: {error}")]
    FileUnreadable { path: PathBuf, error: std::io::Error },
    #[error("model file {path} does not match its manifest: sha256 is {actual}, the manifest says {expected}; the file is corrupt or was swapped: restore the original file")]
    HashMismatch { path: PathBuf, expected: String, actual: String },
    #[error(
        "model file {path} is not a loadable ONNX model: {message}; restore the original file"
    )]
    Unloadable { path: PathBuf, message: String },
    #[error("backend `{backend}` cannot run {path}: {message}")]
    Backend { backend: String, path: PathBuf, message: String },
    #[error("model file {path} does not match its manifest: {message}")]
    ShapeMismatch { path: PathBuf, message: String },
    #[error("model {path} has role `{actual}` but is used as `{expected}`; point the config at a {expected} manifest")]
    WrongRole { path: PathBuf, expected: String, actual: String },
    /// A fitted fusion of PAD heads that names other heads than those loaded.
    #[error("pad.fusion_weights {message}; fit the fusion again for these heads (`edgeid calibrate --pad --fit-fusion`) or set pad.fusion = \"mean\"")]
    FusionMismatch { message: String },
}

/// Where a missing model file comes from, as its manifest says (`models/tools/fetch_….sh` for
/// weights edgeid may not ship).
fn source_hint(source: &Option<String>) -> String {
    source.as_ref().map(|s| format!(" (it comes from: {s})")).unwrap_or_default()
}

/// One dimension of a tensor shape: a fixed size, or a named free size (batch, image side).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(usize),
    Free(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Free(s) => write!(f, "{s}"),
        }
    }
}

/// What a model is for. A manifest names one; a loader refuses a model of another role, and a
/// role that is not one of these is a parse error naming the `role` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A face detector, or one stage of a cascade (`[detector]` table).
    Detector,
    /// A face encoder: crops to embeddings (`[embedding]`, `[alignment]`).
    Encoder,
    /// A presentation-attack head on a face crop (`[head]`).
    Pad,
    /// A single-image morphing-attack head on the reference crop (`[head]`).
    Smad,
    /// A differential morphing-attack head over a reference and a probe embedding (`[dmad]`).
    Dmad,
    /// An object detector for tagging (`[objects]`).
    Objects,
    /// A general feature extractor, the baseline of generalization audits (`[features]`).
    Features,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Detector => "detector",
            Role::Encoder => "encoder",
            Role::Pad => "pad",
            Role::Smad => "smad",
            Role::Dmad => "dmad",
            Role::Objects => "objects",
            Role::Features => "features",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which stage of a detector a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// MTCNN's proposal network (fully convolutional, any input size).
    Pnet,
    /// MTCNN's refinement network (fixed-size crops).
    Rnet,
    /// MTCNN's output network (boxes, scores, five landmarks).
    Onet,
    /// A single-shot detector with SSD anchors (BlazeFace; `[detector.ssd]`).
    Ssd,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pnet => "pnet",
            Stage::Rnet => "rnet",
            Stage::Onet => "onet",
            Stage::Ssd => "ssd",
        }
    }
}

/// How an encoder's raw output becomes the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// L2-normalised, so cosine similarity is a dot product.
    L2,
    None,
}

/// How a feature map becomes a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// A [N, C, H, W] map averaged over H and W.
    Mean,
    /// The output is already [N, dim].
    None,
}

/// Formats a shape as `[N, 112, 112, 3]` for messages.
pub fn shape_to_string(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Memory layout of an image input. `NWHC` is NHWC with width and height swapped: the MTCNN
/// weights come from Caffe/MATLAB and were trained on transposed images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    NHWC,
    NWHC,
    NCHW,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ColorOrder {
    RGB,
    BGR,
}

/// The image input of a model and how pixels become input values: `(pixel - mean) * scale`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<Dim>,
    pub layout: Layout,
    pub color: ColorOrder,
    pub mean: PerChannel,
    pub scale: PerChannel,
}

/// A normalisation value: one number for all three channels (`mean = 127.5`), or one per channel
/// in the model's colour order (`mean = [122.782, 117.001, 104.298]`, as dlib's and ImageNet's
/// models were trained), so a model's own normalisation is written down rather than approximated.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PerChannel {
    All(f32),
    Each([f32; 3]),
}

impl PerChannel {
    /// The value for channel `c` (0..3) of the model's input.
    pub fn of(self, c: usize) -> f32 {
        match self {
            PerChannel::All(v) => v,
            PerChannel::Each(v) => v[c],
        }
    }

    fn values(self) -> [f32; 3] {
        [self.of(0), self.of(1), self.of(2)]
    }
}

impl InputSpec {
    /// Fixed (height, width) of the image input, if the manifest fixes them.
    pub fn fixed_hw(&self) -> Option<(usize, usize)> {
        let (h, w) = match self.layout {
            Layout::NHWC => (&self.shape[1], &self.shape[2]),
            Layout::NWHC => (&self.shape[2], &self.shape[1]),
            Layout::NCHW => (&self.shape[2], &self.shape[3]),
        };
        match (h, w) {
            (Dim::Fixed(h), Dim::Fixed(w)) => Some((*h, *w)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<Dim>,
}

/// What an encoder's embedding is and how it is compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    pub dim: usize,
    pub normalize: Normalize,
    /// The lowest `recognition.match_threshold` a config may run this encoder at without
    /// `recognition.allow_below_floor`: a similarity that the encoder's impostor pairs were
    /// measured to reach (the manifest says on which hand-labelled data). A threshold of 0, or
    /// one typed wrong, would let nearly everyone in; the floor makes that a refused config.
    #[serde(default)]
    pub match_floor: Option<f32>,
}

/// Where the face landmarks must land in the encoder's input crop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignmentSpec {
    /// Crop size, [width, height].
    pub size: [usize; 2],
    /// Target positions of left eye, right eye, nose, left and right mouth corners.
    pub template: Vec<[f32; 2]>,
}

/// Cascade-detector facts for one stage of MTCNN-like detectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    pub stage: Stage,
    /// Index of the face class in the score output.
    pub face_class: usize,
    /// P-Net only: output stride and receptive cell of the fully-convolutional proposal map.
    pub stride: Option<usize>,
    pub cell: Option<usize>,
    /// Single-shot detectors (`stage = "ssd"`): their anchors and keypoints.
    pub ssd: Option<SsdSpec>,
}

/// A single-shot detector with MediaPipe-style SSD anchors (BlazeFace): one score and one
/// regression row per anchor, the anchors computed from the strides, not stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdSpec {
    /// One entry per anchor layer; consecutive layers of the same stride share one grid.
    pub strides: Vec<usize>,
    /// Anchors each layer places on every cell of its grid.
    pub anchors_per_layer: usize,
    /// Anchor centres at `(cell + anchor_offset) / grid side`.
    pub anchor_offset: f32,
    /// Keypoints per face in each regression row, after the box (`[dx, dy, w, h]`).
    pub keypoints: usize,
    /// Which keypoints are the eye on the image's left, the eye on its right, the nose tip and
    /// the centre of the mouth.
    pub eyes_nose_mouth: [usize; 4],
    /// Logits are clipped to ±this before the sigmoid.
    pub logit_clip: f32,
}

impl SsdSpec {
    /// The anchor centres, normalised to the input square, in the model's output order.
    pub fn anchors(&self, side: usize) -> Vec<[f32; 2]> {
        let mut anchors = Vec::new();
        let mut layer = 0;
        while layer < self.strides.len() {
            let stride = self.strides[layer];
            let same = self.strides[layer..].iter().take_while(|&&s| s == stride).count();
            let grid = side.div_ceil(stride);
            for y in 0..grid {
                for x in 0..grid {
                    let c = [
                        (x as f32 + self.anchor_offset) / grid as f32,
                        (y as f32 + self.anchor_offset) / grid as f32,
                    ];
                    anchors.extend(std::iter::repeat_n(c, same * self.anchors_per_layer));
                }
            }
            layer += same;
        }
        anchors
    }
}

/// A head that scores a face crop (PAD, S-MAD…): which part of the frame it sees, and what
/// its output means. A head sees what it was trained on only if these say how it was trained:
/// the same model on a black-padded square instead of its own shifted box measured an EER of
/// 18% instead of 0% on the webcam replays of docs/evaluation.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// Which value of the `score` output is the score (e.g. the live class of a softmax),
    /// after `activation`.
    pub score_index: usize,
    /// How many times the face box the crop spans (see `crop`).
    pub crop_scale: f32,
    /// How the crop is cut from the whole frame.
    #[serde(default)]
    pub crop: CropMode,
    /// Width / height of the face boxes the head was trained on (its detector's convention):
    /// any detector's box is first reshaped to it around its centre, keeping its area. Absent:
    /// the detector's box as it is. (MiniFASNet trained on RetinaFace's boxes, about 0.8; on
    /// BlazeFace's square ones unchanged its EER was higher: docs/evaluation.md.)
    #[serde(default)]
    pub box_aspect: Option<f32>,
    /// What turns the `score` output's row into probabilities.
    #[serde(default)]
    pub activation: Activation,
    /// The lowest threshold on this head's score a config may use without
    /// `pad.allow_below_floor` (the manifest says why this value).
    #[serde(default)]
    pub floor: Option<f32>,
}

/// How a head's crop is cut from the frame around the face box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// A square of the box's longer side × `crop_scale` around its centre, black where it
    /// leaves the frame.
    #[default]
    Square,
    /// The box × `crop_scale` (its own aspect kept), the scale lowered until it fits the frame
    /// and the box then shifted inside it: no pixel outside the frame, as
    /// Silent-Face-Anti-Spoofing's `CropImage` cuts its training patches.
    Shift,
    /// The box × `crop_scale` around its centre, cut off at the frame's edges.
    Clip,
}

/// What a head's raw output row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Already probabilities (the graph ends in a softmax or sigmoid).
    #[default]
    None,
    /// Logits of mutually exclusive classes.
    Softmax,
    /// One logit per value.
    Sigmoid,
}

/// Facts of a one-stage object detector with distribution-focal box regression (NanoDet).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsSpec {
    /// Output strides; each has outputs `scores_<stride>` [1, cells, classes] and
    /// `boxes_<stride>` [1, cells, 4 × (reg_max + 1)].
    pub strides: Vec<usize>,
    /// Box sides are distributions over `reg_max + 1` bins, in units of the stride.
    pub reg_max: usize,
    /// Cell centres at `(column + center_offset) × stride`.
    pub center_offset: f32,
    /// Class names in output order.
    pub labels: Vec<String>,
}

/// A general feature extractor (role `features`): one output of a model, often an intermediate
/// one, pooled to a vector. Generalization audits compare the encoder with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSpec {
    pub dim: usize,
    pub pool: Pool,
}

/// A differential morphing-attack head (role `dmad`): it reads the embeddings of a reference
/// and a probe from one encoder, never pixels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmadSpec {
    /// Model id of the encoder whose embeddings the head reads: it is never applied to another
    /// embedding space.
    pub encoder: String,
    pub kind: DmadKind,
    /// ONNX only: the names of its input ([N, 2·dim]: the unit reference embedding, then the
    /// unit probe embedding) and of its output ([N, 1], the bona fide probability).
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
}

/// What a D-MAD head's file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmadKind {
    /// A logistic regression over `dim · (reference − probe)²` per dimension, its weights and
    /// bias in a JSON file.
    Linear,
    /// An ONNX model over the embedding pair.
    Onnx,
}

/// A parsed model manifest; `dir` is where relative paths in it are resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable identifier written next to every embedding, so that embeddings of different
    /// encoders are never compared.
    pub id: String,
    pub role: Role,
    pub file: PathBuf,
    pub sha256: String,
    #[serde(default)]
    pub description: String,
    /// The numeric precision of the weights and activations, as the file was built (shown by
    /// `edgeid bench`; the runtime feeds f32 either way: a QDQ model quantizes inside).
    #[serde(default)]
    pub precision: Precision,
    /// The id of the model this one was derived from (quantized, pruned), so that a benchmark
    /// sets the two side by side.
    #[serde(default)]
    pub derived_from: Option<String>,
    /// What the weights may be used for: an SPDX licence id or expression (`Apache-2.0`,
    /// `MIT OR Apache-2.0`, `CC0-1.0`), `LicenseRef-public-domain`, or `research-only` /
    /// `unknown` (then `licence_note` says what is known). Absent: `unknown`.
    #[serde(default)]
    pub licence: Option<String>,
    #[serde(default)]
    pub licence_note: Option<String>,
    /// Where the weights came from (registry package and path, repository and commit).
    #[serde(default)]
    pub source: Option<String>,
    /// The image input; every role but `dmad` (which reads embeddings) has one: see
    /// [`Manifest::input`].
    #[serde(rename = "input")]
    pub image: Option<InputSpec>,
    /// Outputs by purpose (`embedding`, `boxes`, `scores`, `landmarks`…).
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputSpec>,
    pub embedding: Option<EmbeddingSpec>,
    pub alignment: Option<AlignmentSpec>,
    pub detector: Option<DetectorSpec>,
    pub head: Option<HeadSpec>,
    pub objects: Option<ObjectsSpec>,
    pub features: Option<FeaturesSpec>,
    pub dmad: Option<DmadSpec>,
    #[serde(skip)]
    pub path: PathBuf,
}

/// How a model file stores its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    /// Static int8 quantization (QuantizeLinear/DequantizeLinear pairs around int8 weights).
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

/// Manifest texts verified at start-up (against a signed set), by canonical path.
static VERIFIED: std::sync::RwLock<BTreeMap<PathBuf, String>> =
    std::sync::RwLock::new(BTreeMap::new());

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Records the bytes of a manifest as verified: from now on [`Manifest::load`] parses these
/// bytes rather than reading the file again, so a manifest swapped on disk after the start-up
/// check (pointing at another model, with that model's sha256) is never the one that runs.
/// A reload (SIGHUP) verifies and records again. Bytes that are not UTF-8 are not recorded
/// (the manifest is then refused when read, as before).
pub fn record_verified(path: &Path, bytes: Vec<u8>) {
    if let Ok(text) = String::from_utf8(bytes) {
        VERIFIED.write().unwrap_or_else(|e| e.into_inner()).insert(canonical(path), text);
    }
}

impl Manifest {
    /// Reads and validates a manifest (not the model file: see [`Manifest::verify_file`]);
    /// a manifest verified at start-up ([`record_verified`]) is parsed from the verified bytes.
    pub fn load(path: &Path) -> Result<Manifest, ModelError> {
        let verified =
            VERIFIED.read().unwrap_or_else(|e| e.into_inner()).get(&canonical(path)).cloned();
        let text = match verified {
            Some(text) => text,
            None => std::fs::read_to_string(path).map_err(|error| {
                ModelError::ManifestUnreadable { path: path.to_path_buf(), error }
            })?,
        };
        Manifest::parse(&text, path)
    }

    /// Parses and validates manifest text as if read from `path` (which anchors the model
    /// file's path).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ModelError> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| ModelError::ManifestInvalid {
            path: path.to_path_buf(),
            message: crate::util::toml_error(text, &e),
        })?;
        m.path = path.to_path_buf();
        m.validate()?;
        Ok(m)
    }

    fn invalid(&self, message: impl Into<String>) -> ModelError {
        ModelError::ManifestInvalid { path: self.path.clone(), message: message.into() }
    }

    fn validate(&self) -> Result<(), ModelError> {
        // The model lies in the manifest's folder or below it: a manifest must not make the
        // runtime read (and, through error messages, describe) any other file on the device.
        let inside = self
            .file
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if !inside || self.file.as_os_str().is_empty() {
            return Err(self.invalid(format!(
                "`file = {:?}` must name the model relative to the manifest's folder, without `..` or a leading `/`; put the model beside its manifest",
                self.file
            )));
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.invalid("`sha256` must be 64 hexadecimal digits"));
        }
        if let Some(l) = &self.licence {
            // An SPDX expression: licence ids (`Apache-2.0`, `LicenseRef-…`: a capital first,
            // letters, digits, `.-+`) joined by OR, AND or WITH, parentheses allowed; or one
            // of the two words for weights without a licence.
            let id = |t: &str| {
                let t = t.trim_matches(|c| c == '(' || c == ')');
                t.starts_with(|c: char| c.is_ascii_uppercase())
                    && t.chars().all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
            };
            let spdx = l.split_whitespace().enumerate().all(|(k, t)| {
                if k % 2 == 1 {
                    matches!(t, "OR" | "AND" | "WITH")
                } else {
                    id(t)
                }
            }) && l.split_whitespace().count() % 2 == 1;
            if !(spdx || matches!(l.as_str(), "research-only" | "unknown")) {
                return Err(self.invalid(format!("`licence = {l:?}` must be an SPDX id or expression (e.g. \"Apache-2.0\"), `research-only` or `unknown`")));
            }
            if matches!(l.as_str(), "research-only" | "unknown") && self.licence_note.is_none() {
                return Err(self.invalid(format!("`licence = \"{l}\"` needs a `licence_note` saying what is known of the weights' terms")));
            }
        }
        match (self.role, &self.image, &self.dmad) {
            (Role::Dmad, None, Some(d)) => {
                if d.kind == DmadKind::Onnx && (d.input.is_none() || d.output.is_none()) {
                    return Err(self.invalid("an ONNX D-MAD head needs dmad.input and dmad.output (the names of its input and output)"));
                }
                return Ok(());
            }
            (Role::Dmad, Some(_), _) => {
                return Err(self.invalid(
                    "a `dmad` head reads embeddings, not an image: remove its [input] table",
                ))
            }
            (Role::Dmad, None, None) => {
                return Err(self.invalid("a `dmad` head needs a [dmad] table (encoder, kind)"))
            }
            (role, _, Some(_)) => {
                return Err(
                    self.invalid(format!("a [dmad] table belongs to role `dmad`, not `{role}`"))
                )
            }
            (role, None, None) => {
                return Err(self.invalid(format!("a `{role}` model needs an [input] table")))
            }
            (_, Some(_), None) => {}
        }
        let input = self.input()?;
        if input.shape.len() != 4 {
            return Err(self.invalid(format!(
                "input shape {} must have 4 dimensions (batch, two sides, channels)",
                shape_to_string(&input.shape)
            )));
        }
        if !(input.scale.values().iter().all(|s| s.is_finite() && *s != 0.0)
            && input.mean.values().iter().all(|m| m.is_finite()))
        {
            return Err(self.invalid(
                "input `scale` must be finite and non-zero, `mean` finite (one number, or three in the model's colour order)",
            ));
        }
        if let Some(e) = &self.embedding {
            if e.dim == 0 {
                return Err(self.invalid("embedding.dim must be positive"));
            }
            if e.match_floor.is_some_and(|f| !(f > -1.0 && f < 1.0)) {
                return Err(self.invalid(
                    "embedding.match_floor must be a cosine similarity between -1 and 1, exclusive",
                ));
            }
        }
        if self.head.as_ref().and_then(|h| h.floor).is_some_and(|f| !(0.0..=1.0).contains(&f)) {
            return Err(self.invalid("head.floor must be a score from 0 to 1"));
        }
        if self.head.as_ref().and_then(|h| h.box_aspect).is_some_and(|a| !(a > 0.1 && a < 10.0)) {
            return Err(self.invalid("head.box_aspect must be a width / height from 0.1 to 10"));
        }
        if let Some(f) = &self.features {
            if f.dim == 0 {
                return Err(self.invalid("features.dim must be positive"));
            }
        }
        if let Some(a) = &self.alignment {
            if a.template.len() != 5 {
                return Err(self.invalid("alignment.template must hold 5 points"));
            }
            if input.fixed_hw() != Some((a.size[1], a.size[0])) {
                return Err(self.invalid(format!(
                    "alignment.size {:?} (width, height) disagrees with the input shape {}",
                    a.size,
                    shape_to_string(&input.shape)
                )));
            }
        }
        Ok(())
    }

    /// The licence the manifest names (`unknown` when it names none).
    pub fn licence(&self) -> &str {
        self.licence.as_deref().unwrap_or("unknown")
    }

    /// Whether the licence is one known to allow selling a device that ships the weights: a
    /// permissive licence (MIT, Apache-2.0, BSD, ISC, Zlib, BSL-1.0, CC0-1.0, Unlicense,
    /// public domain), or an `OR` expression with one among its choices. `research-only`,
    /// `unknown`, a non-commercial or copyleft licence: not as far as edgeid can tell.
    pub fn commercial_use(&self) -> bool {
        const PERMISSIVE: &[&str] = &[
            "MIT",
            "Apache-2.0",
            "BSD-2-Clause",
            "BSD-3-Clause",
            "ISC",
            "Zlib",
            "BSL-1.0",
            "CC0-1.0",
            "Unlicense",
            "LicenseRef-public-domain",
        ];
        self.licence()
            .split(" OR ")
            .any(|choice| PERMISSIVE.contains(&choice.trim().trim_matches(['(', ')'])))
    }

    /// The model file, resolved against the manifest's folder.
    pub fn model_path(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(&self.file)
    }

    /// Refuses a manifest whose role is not the one the caller needs.
    pub fn expect_role(&self, role: Role) -> Result<(), ModelError> {
        if self.role == role {
            Ok(())
        } else {
            Err(ModelError::WrongRole {
                path: self.path.clone(),
                expected: role.to_string(),
                actual: self.role.to_string(),
            })
        }
    }

    /// The image input (every role but `dmad` has one: checked when the manifest is parsed).
    pub fn input(&self) -> Result<&InputSpec, ModelError> {
        self.image.as_ref().ok_or_else(|| self.invalid("it has no [input] table"))
    }

    /// The embedding size of an encoder manifest.
    pub fn embedding_dim(&self) -> Result<usize, ModelError> {
        self.embedding
            .as_ref()
            .map(|e| e.dim)
            .ok_or_else(|| self.invalid("an encoder manifest needs an [embedding] table"))
    }

    /// Named output, or an error naming the manifest and the missing purpose.
    pub fn output(&self, purpose: &str) -> Result<&OutputSpec, ModelError> {
        self.outputs
            .get(purpose)
            .ok_or_else(|| self.invalid(format!("it has no `outputs.{purpose}` entry")))
    }

    /// Reads the model file and checks its sha256 against the manifest; returns the bytes so
    /// the file is read once.
    pub fn verify_file(&self) -> Result<Vec<u8>, ModelError> {
        let path = self.model_path();
        if !path.exists() {
            return Err(ModelError::FileMissing {
                path,
                manifest: self.path.clone(),
                origin: self.source.clone(),
            });
        }
        let bytes = std::fs::read(&path)
            .map_err(|error| ModelError::FileUnreadable { path: path.clone(), error })?;
        let actual = crate::util::hex(&Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&self.sha256) {
            return Err(ModelError::HashMismatch {
                path,
                expected: self.sha256.to_lowercase(),
                actual,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("/m/x.toml")).map_err(|e| e.to_string())
    }

    const SHA: &str = "4c3a8d1ca669f5a426ef0838c7d79b45a0ac423f14fa787a141518385cb4fab1";

    fn with_role(role: &str, tables: &str) -> String {
        format!("id = \"x@1\"\nrole = \"{role}\"\nfile = \"x.onnx\"\nsha256 = \"{SHA}\"\n{tables}")
    }

    const INPUT: &str = "[input]\nname = \"data\"\nshape = [\"N\", 112, 112, 3]\nlayout = \"NHWC\"\ncolor = \"RGB\"\nmean = 0.0\nscale = 1.0\n";

    #[test]
    fn every_model_is_one_manifest_type_with_its_role() {
        let m = parse(&with_role("encoder", INPUT)).unwrap();
        assert_eq!((m.role, m.input().unwrap().name.as_str()), (Role::Encoder, "data"));
        let d =
            parse(&with_role("dmad", "[dmad]\nencoder = \"e@1\"\nkind = \"linear\"\n")).unwrap();
        assert_eq!(d.role, Role::Dmad);
        assert_eq!(d.dmad.as_ref().unwrap().kind, DmadKind::Linear);
        assert!(d.input().is_err(), "a D-MAD head has no image input");
    }

    #[test]
    fn floors_must_be_scores_their_thresholds_can_take() {
        let enc = |floor: &str| {
            let t =
                format!("{INPUT}[embedding]\ndim = 4\nnormalize = \"l2\"\nmatch_floor = {floor}\n");
            parse(&with_role("encoder", &t))
        };
        assert_eq!(enc("0.4871").unwrap().embedding.unwrap().match_floor, Some(0.4871));
        assert!(enc("1.5").unwrap_err().contains("embedding.match_floor must be a cosine"));
        let head = |floor: &str| {
            let t = format!("{INPUT}[head]\nscore_index = 0\ncrop_scale = 1.0\nfloor = {floor}\n");
            parse(&with_role("pad", &t))
        };
        assert_eq!(head("0.5").unwrap().head.unwrap().floor, Some(0.5));
        assert!(head("-0.1").unwrap_err().contains("head.floor must be a score from 0 to 1"));
    }

    #[test]
    fn a_wrong_role_stage_or_table_is_refused_naming_it() {
        let e = parse(&with_role("detectr", INPUT)).unwrap_err();
        assert!(e.contains("unknown variant `detectr`") && e.contains("role = \"detectr\""), "{e}");
        let e = parse(&with_role(
            "detector",
            &format!("{INPUT}[detector]\nstage = \"qnet\"\nface_class = 1\n"),
        ))
        .unwrap_err();
        assert!(e.contains("unknown variant `qnet`"), "{e}");
        let e = parse(&with_role("encoder", "")).unwrap_err();
        assert!(e.contains("a `encoder` model needs an [input] table"), "{e}");
        let e = parse(&with_role("dmad", INPUT)).unwrap_err();
        assert!(e.contains("remove its [input] table"), "{e}");
        let e = parse(&with_role(
            "pad",
            &format!("{INPUT}[dmad]\nencoder = \"e@1\"\nkind = \"linear\"\n"),
        ))
        .unwrap_err();
        assert!(e.contains("belongs to role `dmad`, not `pad`"), "{e}");
        let e =
            parse(&with_role("dmad", "[dmad]\nencoder = \"e@1\"\nkind = \"onnx\"\n")).unwrap_err();
        assert!(e.contains("needs dmad.input and dmad.output"), "{e}");
        let e = parse(&with_role(
            "encoder",
            &format!("{INPUT}[embedding]\ndim = 4\nnormalize = \"l3\"\n"),
        ))
        .unwrap_err();
        assert!(e.contains("unknown variant `l3`"), "{e}");
    }

    /// Regression: `file = "../../etc/passwd"` was read (and hashed) as a model.
    #[test]
    fn regression_a_model_file_outside_the_manifest_folder_is_refused() {
        for bad in ["../../etc/passwd", "/etc/passwd", "models/../../x.onnx", ""] {
            let text = with_role("encoder", INPUT)
                .replace("file = \"x.onnx\"", &format!("file = {bad:?}"));
            let e = parse(&text).unwrap_err();
            assert!(e.contains("relative to the manifest's folder, without `..`"), "{bad}: {e}");
        }
        let inside = with_role("encoder", INPUT).replace("x.onnx", "sub/./x.onnx");
        assert_eq!(parse(&inside).unwrap().model_path(), Path::new("/m/sub/./x.onnx"));
    }
}
