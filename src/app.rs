//! The commands of the `edgeid` binary, as library functions returning plain reports; the
//! binary only parses arguments and prints these.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use image::ImageFormat;

use crate::capture::{load_image, Frame};
use crate::config::Config;
use crate::decide::Outcome;
use crate::detect::Face;
use crate::encode::Encoder;
use crate::gallery::{alignment_key, Crop, Gallery, Identity, Template};
use crate::manifest::Manifest;
use crate::morph::{morph, MorphOptions};
use crate::pipeline::{FramePath, Pipeline};
use crate::runtime::{self, Open};
use crate::tag::{embed_whole, PrototypeBank, TagReport};

/// Why enrolment refused an image, for callers that branch on it.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("no face found in {path} (faces scoring at least {min_score}); use a photo where the face is visible, frontal and at least 40 px wide")]
    NoFace { path: PathBuf, min_score: f32 },
    #[error("the name {name:?} is not valid ({reason}); give 1 to {max} printable characters", max = crate::gallery::MAX_NAME_CHARS)]
    BadName { name: String, reason: String },
    #[error("morph suspected: the face in {path} {why}; enrol a genuine, unedited photo of the person (or turn mad.enabled off to skip morph checks)")]
    MorphSuspected { path: PathBuf, why: String },
    #[error("the face in {path} is already enrolled as {who}; enrolling it as `{name}` too would let either name in for it. Nothing was enrolled; if they are one person under two names on purpose, add --force")]
    EnrolledAsOther { path: PathBuf, name: String, who: String },
    #[error("the face in {path} does not match {what} (similarity {similarity:.3}, below the match threshold {threshold}); a different person under one name would let both in. Nothing was enrolled; check the photo, or if it is the same person looking very different, add --force")]
    NotTheSamePerson { path: PathBuf, what: String, similarity: f32, threshold: f32 },
}

/// What enrolment stored.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollReport {
    pub gallery: PathBuf,
    pub name: String,
    pub model_id: String,
    /// One entry per image: the face that was enrolled.
    pub templates: Vec<EnrolledFace>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrolledFace {
    pub image: String,
    #[serde(flatten)]
    pub face: Face,
    /// Faces in the image; only the largest is enrolled.
    pub faces_in_image: usize,
    /// S-MAD heads' bona fide scores of this reference, by model id (empty without S-MAD).
    pub smad: Vec<(String, f32)>,
}

/// One face in an identification report.
#[derive(Debug, Clone, Serialize)]
pub struct IdentifiedFace {
    #[serde(flatten)]
    pub face: Face,
    /// The best identity at or above the match threshold, or `None`.
    pub identity: Option<String>,
    /// Cosine similarity to the closest enrolled identity (even below the threshold), or
    /// `None` for an empty gallery.
    pub similarity: Option<f32>,
    /// The closest identity whatever its score, to help set thresholds.
    pub nearest: Option<String>,
    /// PAD: the fused live score and each head's, when PAD is enabled.
    pub live: Option<f32>,
    pub pad: Option<Vec<(String, f32)>>,
    /// D-MAD bona fide score of the nearest identity's reference against this face, when a
    /// D-MAD head is loaded.
    pub bona_fide: Option<f32>,
    /// The access policy's verdict on this face alone, and every failed requirement.
    pub decision: Outcome,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<IdentifiedFace>,
    /// What else is in the image (`--tags`): descriptive only, never part of the decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagReport>,
}

/// Builds a prototype bank from `dir/<label>/*.{jpg,png}` with the configured encoder and
/// writes it (JSON) to `out`.
pub fn build_prototypes(cfg: &Config, dir: &Path, out: &Path) -> anyhow::Result<PrototypeBank> {
    let mut encoder = Encoder::load(cfg.backend, &Manifest::load(&cfg.encoder.manifest)?)?;
    let mut examples = Vec::new();
    let mut labels: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the examples folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    labels.sort();
    for label_dir in labels {
        let label = label_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&label_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
            })
            .collect();
        files.sort();
        for f in files {
            let frame = load_image(&f)?;
            examples.push((label.clone(), embed_whole(&mut encoder, &frame.image)?));
        }
    }
    let bank = PrototypeBank::build(encoder.model_id(), &examples)
        .with_context(|| format!("building prototypes from {}", dir.display()))?;
    std::fs::write(out, serde_json::to_string_pretty(&bank)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(bank)
}

/// The encoder's model id and embedding size, read from its manifest without loading the model.
pub fn encoder_identity(cfg: &Config) -> anyhow::Result<(String, usize)> {
    Ok(runtime::encoder_identity(cfg)?)
}

/// Enrols the largest face of each image under `name`. Every image is processed before the
/// gallery is touched, so a bad image leaves the gallery exactly as it was (and a gallery that
/// did not exist is not created).
pub fn enroll(
    cfg: &Config,
    gallery: &Path,
    name: &str,
    images: &[PathBuf],
) -> anyhow::Result<EnrollReport> {
    enroll_with(cfg, gallery, name, images, false)
}

/// [`enroll`], with `force`: enrol even a face that matches another identity, or that does
/// not match the name's templates (or the other images given), which is otherwise refused.
pub fn enroll_with(
    cfg: &Config,
    gallery: &Path,
    name: &str,
    images: &[PathBuf],
    force: bool,
) -> anyhow::Result<EnrollReport> {
    let checked = crate::gallery::normalise_name(name)
        .map_err(|reason| EnrollError::BadName { name: name.to_string(), reason })?;
    if images.is_empty() {
        bail!("no image given; pass one or more photos of {checked}");
    }
    // Refuse a foreign gallery before the slow part.
    if gallery.exists() {
        open_gallery(cfg, gallery)?;
    }
    let mut pipeline = Pipeline::load(cfg)?;
    let frames = images.iter().map(|p| load_image(p).map_err(anyhow::Error::from));
    enroll_frames(cfg, &mut pipeline, gallery, name, frames, force)
}

/// Enrols the largest face of each frame under `name` with a loaded pipeline (the daemon's
/// operator API holds one): the same checks as [`enroll_with`], and every frame is processed
/// before the gallery is touched. A frame's `source` names it in errors.
pub fn enroll_frames(
    cfg: &Config,
    pipeline: &mut Pipeline,
    gallery: &Path,
    name: &str,
    frames: impl IntoIterator<Item = anyhow::Result<Frame>>,
    force: bool,
) -> anyhow::Result<EnrollReport> {
    let name = crate::gallery::normalise_name(name)
        .map_err(|reason| EnrollError::BadName { name: name.to_string(), reason })?;
    let name = name.as_str();
    let (model_id, _) = encoder_identity(cfg)?;
    let existing = if gallery.exists() { Some(open_gallery(cfg, gallery)?) } else { None };
    let (embeddings, templates) =
        enrolment_templates(cfg, pipeline, name, frames, existing.as_ref(), force)?;
    let mut gallery = match existing {
        Some(g) => g,
        None => runtime::gallery(cfg, gallery, Open::CreateIfMissing)?,
    };
    gallery.enroll_templates(name, &embeddings)?;
    Ok(EnrollReport {
        gallery: gallery.path().to_path_buf(),
        name: name.to_string(),
        model_id,
        templates,
    })
}

/// The templates of the largest face of each frame, checked as enrolment checks them (a
/// morph, a face of someone else in `existing`, frames of different people unless `force`).
fn enrolment_templates(
    cfg: &Config,
    pipeline: &mut Pipeline,
    name: &str,
    frames: impl IntoIterator<Item = anyhow::Result<Frame>>,
    existing: Option<&Gallery>,
    force: bool,
) -> anyhow::Result<(Vec<Template>, Vec<EnrolledFace>)> {
    let mut templates = Vec::new();
    let mut embeddings: Vec<Template> = Vec::new();
    for frame in frames {
        let frame = frame?;
        let path = PathBuf::from(&frame.source);
        let (frame, face, count) = largest_face(cfg, pipeline, frame)?;
        let path = &path;
        let smad = match &mut pipeline.mad {
            Some(mad) => mad.smad_scores(&frame.image, &face)?,
            None => Vec::new(),
        };
        if let Some((id, s)) = smad.iter().find(|(_, s)| *s < cfg.mad.threshold) {
            bail!(EnrollError::MorphSuspected {
                path: path.clone(),
                why: format!(
                    "scores {s:.3} on the S-MAD head {id}, below mad.threshold {}",
                    cfg.mad.threshold
                ),
            });
        }
        let obs = pipeline.encode_faces(&frame, vec![face])?;
        let obs = obs
            .into_iter()
            .next()
            .with_context(|| format!("the face in {} cannot be aligned", path.display()))?;
        let first = embeddings.first().map(|t| (&t.embedding, t.source.as_str()));
        check_template(cfg, name, path, &obs.embedding, existing, first, force)?;
        let crop = if cfg.gallery.keep_crops {
            let mut png = Vec::new();
            obs.aligned
                .image
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .context("encoding the enrolment crop as PNG")?;
            Some(Crop { png, alignment: alignment_key(pipeline.encoder.alignment()) })
        } else {
            None
        };
        embeddings.push(Template { embedding: obs.embedding, source: frame.source.clone(), crop });
        templates.push(EnrolledFace {
            image: frame.source,
            face: obs.face,
            faces_in_image: count,
            smad,
        });
    }
    if embeddings.is_empty() {
        bail!("no image given; pass one or more photos of {name}");
    }
    Ok((embeddings, templates))
}

/// The checks every template that joins a gallery passes, whether a face enrolled from a photo
/// or a template imported from another device: a morph (it matches two or more other enrolled
/// people), unless `force`: someone else's face, a face unlike NAME's enrolled templates, or
/// unlike the first template of this same enrolment (`first`: its embedding and where it came
/// from). `path` names where the template came from in the error.
fn check_template(
    cfg: &Config,
    name: &str,
    path: &Path,
    embedding: &crate::encode::Embedding,
    existing: Option<&Gallery>,
    first: Option<(&crate::encode::Embedding, &str)>,
    force: bool,
) -> anyhow::Result<()> {
    let threshold = cfg.recognition.match_threshold;
    if let (true, Some(g)) = (cfg.mad.enabled && cfg.mad.gallery_check, existing) {
        let others: Vec<_> = g
            .identities_matching(embedding, threshold)
            .into_iter()
            .filter(|m| m.name != name)
            .collect();
        if others.len() >= 2 {
            let who: Vec<String> =
                others.iter().map(|m| format!("{} ({:.3})", m.name, m.similarity)).collect();
            bail!(EnrollError::MorphSuspected {
                path: path.to_path_buf(),
                why: format!(
                    "matches {} enrolled people at or above the match threshold: {}",
                    others.len(),
                    who.join(", ")
                ),
            });
        }
    }
    if let (false, Some(g)) = (force, existing) {
        let all = g.identities_matching(embedding, -1.0);
        let others: Vec<String> = all
            .iter()
            .filter(|m| m.name != name && m.similarity >= threshold)
            .map(|m| format!("`{}` (similarity {:.3})", m.name, m.similarity))
            .collect();
        if !others.is_empty() {
            bail!(EnrollError::EnrolledAsOther {
                path: path.to_path_buf(),
                name: name.to_string(),
                who: others.join(", "),
            });
        }
        if let Some(same) = all.iter().find(|m| m.name == name) {
            if same.similarity < threshold {
                bail!(EnrollError::NotTheSamePerson {
                    path: path.to_path_buf(),
                    what: format!("`{name}` as enrolled"),
                    similarity: same.similarity,
                    threshold,
                });
            }
        }
    }
    if let (false, Some((first, source))) = (force, first) {
        let similarity = first.cosine(embedding);
        if similarity < threshold {
            bail!(EnrollError::NotTheSamePerson {
                path: path.to_path_buf(),
                what: format!("the face in {source}"),
                similarity,
                threshold,
            });
        }
    }
    Ok(())
}

/// `edgeid fleet enroll`: the largest face of each image, checked as enrolment checks it,
/// published to the fleet as a signed change adding `name` (replacing their templates on
/// every device), signed with the secret key at `secret`.
pub fn fleet_enroll(
    cfg: &Config,
    name: &str,
    images: &[PathBuf],
    secret: &Path,
) -> anyhow::Result<crate::fleet::change::Published> {
    let fleet = fleet_config(cfg)?;
    let checked = crate::gallery::normalise_name(name)
        .map_err(|reason| EnrollError::BadName { name: name.to_string(), reason })?;
    if images.is_empty() {
        bail!("no image given; pass one or more photos of {checked}");
    }
    // A wrong key is refused before the models run.
    crate::fleet::channel::signer(fleet, secret)?;
    let (model_id, dim) = encoder_identity(cfg)?;
    let mut pipeline = Pipeline::load(cfg)?;
    let frames = images.iter().map(|p| load_image(p).map_err(anyhow::Error::from));
    let (templates, _) = enrolment_templates(cfg, &mut pipeline, &checked, frames, None, false)?;
    let change = crate::fleet::change::Change {
        op: crate::fleet::change::Op::Add,
        name: checked,
        model_id,
        dim,
        templates: templates.into_iter().map(|t| t.embedding.0).collect(),
    };
    Ok(crate::fleet::change::publish(fleet, secret, &publisher(), &change)?)
}

/// `edgeid fleet offer`: the configuration in `dir` offered to every device, after checking
/// it here as a device will (over this config: its keys, `[trust]`, floors, every model
/// loaded), so that a mistake is found before it reaches the fleet.
pub fn fleet_offer(
    cfg: &Config,
    dir: &Path,
    secret: &Path,
) -> anyhow::Result<crate::fleet::offer::Published> {
    let fleet = fleet_config(cfg)?;
    let files = crate::fleet::offer::read_folder(dir)
        .map_err(|why| anyhow::anyhow!("offer folder {}: {why}", dir.display()))?;
    crate::fleet::channel::signer(fleet, secret)?;
    let offered = runtime::load_config_with_offer(&cfg.path, dir, 0)?;
    Pipeline::load(&offered)
        .with_context(|| format!("offer folder {}: its models", dir.display()))?;
    Ok(crate::fleet::offer::publish(fleet, secret, &publisher(), &files)?)
}

/// `edgeid fleet remove`: a signed change removing `name` from every device.
pub fn fleet_remove(
    cfg: &Config,
    name: &str,
    secret: &Path,
) -> anyhow::Result<crate::fleet::change::Published> {
    let fleet = fleet_config(cfg)?;
    let name = crate::gallery::normalise_name(name)
        .map_err(|reason| EnrollError::BadName { name: name.to_string(), reason })?;
    let change = crate::fleet::change::Change {
        op: crate::fleet::change::Op::Remove,
        name,
        model_id: String::new(),
        dim: 0,
        templates: Vec::new(),
    };
    Ok(crate::fleet::change::publish(fleet, secret, &publisher(), &change)?)
}

/// The config's `[fleet]`, or the error that says to add it.
pub fn fleet_config(cfg: &Config) -> anyhow::Result<&crate::fleet::FleetConfig> {
    cfg.fleet.as_ref().with_context(|| {
        format!(
            "{} has no [fleet] section; add one with the central database (fleet.database) and, to publish gallery changes, the broker, public_key and transport_key (docs/fleet.md)",
            cfg.path.display()
        )
    })
}

/// Who publishes: the user and host, recorded with each change.
fn publisher() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// The largest face of a frame, with the frame and the number of faces found.
fn largest_face(
    cfg: &Config,
    pipeline: &mut Pipeline,
    frame: Frame,
) -> anyhow::Result<(Frame, Face, usize)> {
    let faces = pipeline.detect(&frame)?;
    let count = faces.len();
    let largest =
        faces.into_iter().max_by(|a, b| a.area().total_cmp(&b.area())).ok_or_else(|| {
            EnrollError::NoFace {
                path: PathBuf::from(&frame.source),
                min_score: cfg.detector.min_score(),
            }
        })?;
    Ok((frame, largest, count))
}

/// What `edgeid morph` made.
#[derive(Debug, Clone, Serialize)]
pub struct MorphReport {
    pub output: PathBuf,
    pub alpha: f32,
    /// The face used from each photo.
    pub face_a: Face,
    pub face_b: Face,
}

/// Makes a landmark-aligned morph of the largest face of `a` and of `b` (see [`crate::morph`])
/// and writes it to `output` (JPEG at quality 95, or PNG, by extension).
pub fn make_morph(
    cfg: &Config,
    a: &Path,
    b: &Path,
    output: &Path,
    alpha: f32,
) -> anyhow::Result<MorphReport> {
    let format = match output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
        Some(e) if e == "jpg" || e == "jpeg" => ImageFormat::Jpeg,
        Some(e) if e == "png" => ImageFormat::Png,
        _ => bail!("cannot write {}: name the output .jpg or .png", output.display()),
    };
    let mut pipeline = Pipeline::load(cfg)?;
    let (frame_a, face_a, _) = largest_face(cfg, &mut pipeline, load_image(a)?)?;
    let (frame_b, face_b, _) = largest_face(cfg, &mut pipeline, load_image(b)?)?;
    let spec = pipeline.encoder.alignment().clone();
    let opts = MorphOptions { alpha, ..Default::default() };
    let image =
        morph(&frame_a.image, &face_a, &frame_b.image, &face_b, &spec.template, spec.size, opts)
            .with_context(|| format!("morphing {} with {}", a.display(), b.display()))?;
    let mut bytes = Vec::new();
    match format {
        ImageFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .encode_image(&image)?,
        _ => image.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)?,
    }
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    Ok(MorphReport { output: output.to_path_buf(), alpha, face_a, face_b })
}

/// Loads the models and the gallery once for a series of identifications.
pub struct Identifier {
    path: FramePath,
    gallery: Gallery,
    /// To open the gallery's path again when it names another file (a restored backup).
    cfg: Config,
    /// Where to write each face's aligned crop (PNG), to inspect alignment.
    crops_dir: Option<PathBuf>,
}

impl Identifier {
    pub fn new(
        cfg: &Config,
        gallery: &Path,
        crops_dir: Option<PathBuf>,
    ) -> anyhow::Result<Identifier> {
        let build = runtime::Build { tags: false, gallery: Some((gallery.into(), Open::Existing)) };
        let runtime::Runtime { path, gallery } = runtime::Runtime::build(cfg, &build)?;
        let gallery = gallery.expect("built with its gallery");
        if let Some(dir) = &crops_dir {
            // Face images are personal data: the folder and each crop owner-only.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating the crops folder {}", dir.display()))?;
        }
        Ok(Identifier { path, gallery, cfg: cfg.clone(), crops_dir })
    }

    /// Enrols the largest face of each frame under `name` with this identifier's pipeline
    /// (see [`enroll_frames`]).
    pub fn enroll(
        &mut self,
        cfg: &Config,
        name: &str,
        frames: Vec<Frame>,
        force: bool,
    ) -> anyhow::Result<EnrollReport> {
        let path = self.gallery.path().to_path_buf();
        let frames = frames.into_iter().map(Ok);
        enroll_frames(cfg, &mut self.path.pipeline, &path, name, frames, force)
    }

    /// Also tag every image (the configured taggers).
    pub fn with_tags(mut self, cfg: &Config) -> anyhow::Result<Identifier> {
        self.path.tagger = Some(crate::pipeline::tagger(cfg)?);
        Ok(self)
    }

    /// Every face of one image, each with its best identity.
    pub fn identify(&mut self, path: &Path) -> anyhow::Result<ImageReport> {
        self.identify_frame(load_image(path)?)
    }

    /// Every face of a decoded frame (an upload to the operator API), each with its best
    /// identity in the gallery as it is on disk now: the frame path without a tracker, each
    /// face judged alone.
    pub fn identify_frame(&mut self, frame: Frame) -> anyhow::Result<ImageReport> {
        if self.gallery.replaced_on_disk() {
            let path = self.gallery.path().to_path_buf();
            self.gallery = runtime::gallery(&self.cfg, &path, Open::Existing)?;
        } else if self.gallery.changed_on_disk()? {
            self.gallery.reload()?;
        }
        let seen = self.path.step(&frame, None, &self.gallery)?;
        if let Some(dir) = &self.crops_dir {
            let stem = Path::new(&frame.source)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for (i, o) in seen.faces.iter().enumerate() {
                let out = dir.join(format!("{stem}_face{}.png", i + 1));
                let write = || -> anyhow::Result<()> {
                    let _ = std::fs::remove_file(&out);
                    let file = crate::util::create_private(&out)?;
                    let mut w = std::io::BufWriter::new(file);
                    o.aligned.image.write_to(&mut w, image::ImageFormat::Png)?;
                    Ok(())
                };
                write().with_context(|| format!("writing {}", out.display()))?;
            }
        }
        let faces = seen
            .faces
            .into_iter()
            .zip(seen.verdicts)
            .map(|(o, v)| IdentifiedFace {
                face: o.face,
                identity: v.identity,
                similarity: v.best.as_ref().map(|m| m.similarity),
                nearest: v.best.map(|m| m.name),
                live: o.pad.as_ref().map(|p| p.live),
                pad: o.pad.map(|p| p.heads),
                bona_fide: v.bona_fide,
                decision: v.decision,
                reasons: v.reasons,
            })
            .collect();
        Ok(ImageReport {
            image: frame.source,
            width: frame.image.width(),
            height: frame.image.height(),
            faces,
            tags: seen.tags,
        })
    }
}

/// Opens an existing gallery for management commands (no model is loaded).
pub fn open_gallery(cfg: &Config, gallery: &Path) -> anyhow::Result<Gallery> {
    runtime::gallery(cfg, gallery, Open::Existing)
}

pub fn gallery_list(cfg: &Config, gallery: &Path) -> anyhow::Result<Vec<Identity>> {
    Ok(open_gallery(cfg, gallery)?.list()?)
}

/// Writes every identity of the gallery, sealed under the transfer key (created if missing),
/// to a new file; returns the number of identities and templates.
pub fn gallery_export(
    cfg: &Config,
    gallery: &Path,
    key: &Path,
    out: &Path,
) -> anyhow::Result<(usize, usize)> {
    let bundle = open_gallery(cfg, gallery)?.export()?;
    bundle.write(out, key)?;
    let templates = bundle.identities.iter().map(|i| i.templates.len()).sum();
    Ok((bundle.identities.len(), templates))
}

/// Adds every identity of an export to the gallery (created if missing), sealed under the
/// gallery's own key; returns the number of identities and templates.
pub fn gallery_import(
    cfg: &Config,
    gallery: &Path,
    key: &Path,
    file: &Path,
    force: bool,
) -> anyhow::Result<(usize, usize)> {
    let bundle = crate::gallery::Bundle::read(file, key)?;
    let mut g = runtime::gallery(cfg, gallery, Open::CreateIfMissing)?;
    // Every imported template passes enrolment's checks against the gallery as it is and
    // against the identities imported before it from the same file: an import is an enrolment
    // from templates, and a face already enrolled under another name is refused here too.
    if bundle.model_id == g.model_id() {
        let mut seen: Vec<(String, crate::encode::Embedding)> = Vec::new();
        for ident in &bundle.identities {
            let name = crate::gallery::normalise_name(&ident.name)
                .map_err(|reason| EnrollError::BadName { name: ident.name.clone(), reason })?;
            let first = ident.templates.first().map(|t| crate::encode::Embedding(t.vector.clone()));
            for (k, t) in ident.templates.iter().enumerate() {
                let e = crate::encode::Embedding(t.vector.clone());
                let at = PathBuf::from(format!(
                    "{} (identity `{name}`, template {})",
                    file.display(),
                    k + 1
                ));
                let first = first.as_ref().filter(|_| k > 0).map(|f| (f, "its first template"));
                check_template(cfg, &name, &at, &e, Some(&g), first, force)?;
                if !force {
                    let threshold = cfg.recognition.match_threshold;
                    if let Some((other, s)) = seen
                        .iter()
                        .filter(|(n, _)| *n != name)
                        .map(|(n, o)| (n, o.cosine(&e)))
                        .find(|(_, s)| *s >= threshold)
                    {
                        bail!(EnrollError::EnrolledAsOther {
                            path: at,
                            name: name.clone(),
                            who: format!("`{other}` of the same file (similarity {s:.3})"),
                        });
                    }
                }
                seen.push((name.clone(), e));
            }
        }
        if force {
            log::warn!(
                "gallery {}: {} imported with --force: enrolment's duplicate and mismatch checks were not applied",
                gallery.display(),
                file.display()
            );
        }
    }
    let templates = g.import(&bundle)?;
    Ok((bundle.identities.len(), templates))
}

/// What `edgeid gallery reencode` did.
#[derive(Debug, Clone, Serialize)]
pub struct ReencodeReport {
    pub gallery: PathBuf,
    pub from: String,
    pub to: String,
    pub identities: usize,
    pub templates: usize,
}

/// Encodes every template of a gallery again, from its kept enrolment crops, under the
/// config's encoder, in one transaction (all or nothing).
pub fn gallery_reencode(cfg: &Config, gallery: &Path) -> anyhow::Result<ReencodeReport> {
    let manifest = Manifest::load(&cfg.encoder.manifest)?;
    let (to, dim) = (manifest.id.clone(), manifest.embedding_dim()?);
    let (from, _) = Gallery::stored_encoder(gallery)?;
    let mut g = runtime::gallery(cfg, gallery, Open::AsStored)?;
    let identities = g.list()?.len();
    let templates = if from == to {
        0
    } else {
        let mut encoder = Encoder::load(cfg.backend, &manifest)?.with_flip(cfg.encoder.flip);
        let alignment = alignment_key(encoder.alignment());
        g.reencode(&to, dim, &alignment, |crop| {
            encoder.encode(&[crop])?.pop().context("the encoder returned no embedding")
        })?
    };
    Ok(ReencodeReport { gallery: gallery.into(), from, to, identities, templates })
}

/// `gallery seal`: seals a gallery of plain templates (schema 1) in place; returns how many
/// templates were sealed (0 for a gallery sealed already).
pub fn gallery_seal(cfg: &Config, gallery: &Path) -> anyhow::Result<usize> {
    let (model_id, dim) = encoder_identity(cfg)?;
    Ok(Gallery::seal_plain(gallery, &cfg.gallery.key_for(gallery), &model_id, dim)?.1)
}

/// Removes `name` as enrolment stores it (NFC: an NFD `José` removes the NFC one).
pub fn gallery_remove(cfg: &Config, gallery: &Path, name: &str) -> anyhow::Result<()> {
    let name = crate::gallery::normalise_name(name)
        .map_err(|reason| EnrollError::BadName { name: name.to_string(), reason })?;
    Ok(open_gallery(cfg, gallery)?.remove(&name)?)
}
