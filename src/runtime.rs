//! The runtime assembled from a config: the one start-up, used by the daemon (its start, a
//! SIGHUP reload, a config offer's check), every command, the operator API and the bench.
//!
//! A config is plain data ([`Config::load`] reads no model). What a device runs on is the
//! config its file and its applied fleet offer give ([`load_config`]), verified: with
//! `[trust]`, every manifest it names in the signed set; every decision threshold at or above
//! the floor its model's manifest measured ([`verify`]). From it [`Runtime::build`] loads the
//! models (the frame path, [`crate::pipeline::FramePath`]) and opens the gallery for their
//! encoder ([`gallery`]: the one place a gallery is opened).

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::gallery::{Gallery, GalleryOptions};
use crate::manifest::Manifest;
use crate::trust::{SignedSet, TrustError};

/// Why a start (of a command, the daemon, a reload or an offer's check) was refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A manifest outside the signed set (`[trust]`); the message is the source's.
    #[error("config {path}")]
    Untrusted { path: PathBuf, source: TrustError },
    #[error("config {path}: {} = {} is below {}, the floor of {} ({}); raise it, or set {} = true if you calibrated it on your own population", .below.key, .below.value, .below.floor, .below.model, .below.what, .below.override_key)]
    BelowFloor { path: PathBuf, below: Floor },
}

/// What a command or the daemon runs on: the config file with the fleet's config offer it
/// applied read over it, verified (trust and floors).
pub fn load_config(path: &Path) -> Result<Config, StartError> {
    let cfg = crate::fleet::offer::applied_config(path)?;
    verify(&cfg)?;
    Ok(cfg)
}

/// [`load_config`] with the fleet's offer `version`, staged in `dir`, read over the file
/// instead of the one the device runs: what the device checks before it applies an offer.
pub fn load_config_with_offer(path: &Path, dir: &Path, version: i64) -> Result<Config, StartError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::Unreadable { path: path.to_path_buf(), error })?;
    let cfg = crate::fleet::offer::config_with_offer(&text, path, dir, version)?;
    verify(&cfg)?;
    Ok(cfg)
}

/// Trust, then the floors: what a config must pass before anything runs on it.
pub fn verify(cfg: &Config) -> Result<(), StartError> {
    verify_trust(cfg)?;
    check_floors(cfg)?;
    if !cfg.policy.require_match {
        log::warn!(
            "config {}: policy.require_match = false: faces that match no one are granted (policy.grant_unmatched = true)",
            cfg.path.display()
        );
    }
    Ok(())
}

/// Refuses a match threshold below the encoder's measured floor, or a live threshold below
/// the PAD heads' highest floor, unless the config's override key says so (then warns):
/// `match_threshold = 0` would grant everyone, also through a SIGHUP. A manifest that cannot
/// be read is left to the model loading that follows, which names what is wrong with it.
pub fn check_floors(cfg: &Config) -> Result<(), StartError> {
    let encoder = Manifest::load(&cfg.encoder.manifest).ok();
    // A manifest without a floor is not "no floor": the threshold cannot be checked against
    // anything measured, so it runs only where the override says so.
    if let Some(m) =
        encoder.as_ref().filter(|m| m.embedding.as_ref().is_some_and(|e| e.match_floor.is_none()))
    {
        unmeasured(
            cfg,
            "recognition",
            &m.id,
            &m.path,
            "match_floor",
            cfg.recognition.allow_below_floor,
        )?;
    }
    if let Some((floor, model)) =
        encoder.and_then(|m| Some((m.embedding.as_ref()?.match_floor?, m.id)))
    {
        check_floor(
            cfg,
            Floor {
                key: "recognition.match_threshold",
                value: cfg.recognition.match_threshold,
                floor,
                model,
                what: "a similarity its impostor pairs were measured to reach",
                override_key: "recognition.allow_below_floor",
            },
            cfg.recognition.allow_below_floor,
        )?;
    }
    if !cfg.pad.enabled {
        return Ok(());
    }
    let heads: Vec<Manifest> =
        cfg.pad.models.iter().filter_map(|p| Manifest::load(p).ok()).collect();
    if !heads.is_empty() && heads.iter().all(|m| m.head.as_ref().is_none_or(|h| h.floor.is_none()))
    {
        unmeasured(
            cfg,
            "pad",
            &heads[0].id,
            &heads[0].path,
            "head.floor",
            cfg.pad.allow_below_floor,
        )?;
    }
    let highest = heads
        .into_iter()
        .filter_map(|m| Some((m.head.as_ref()?.floor?, m.id)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((floor, model)) = highest {
        check_floor(
            cfg,
            Floor {
                key: "pad.threshold",
                value: cfg.pad.threshold,
                floor,
                model,
                what: "the score below which the head itself calls a face an attack",
                override_key: "pad.allow_below_floor",
            },
            cfg.pad.allow_below_floor,
        )?;
    }
    // After the threshold's own floor, so that a threshold set too low is what is named.
    if cfg.early_deny().is_some() && cfg.pad.deny_below > cfg.pad.threshold {
        return Err(StartError::Config(ConfigError::OutOfRange {
            path: cfg.path.clone(),
            key: "pad.deny_below".into(),
            value: cfg.pad.deny_below.to_string(),
            allowed: format!("at most pad.threshold ({}): the early denial is for clearer evidence of an attack than the threshold's; or set pad.deny_after_frames = 0", cfg.pad.threshold),
        }));
    }
    Ok(())
}

/// A decision-making model whose manifest gives no floor: refused unless `<section>.allow_below_floor`.
fn unmeasured(
    cfg: &Config,
    section: &str,
    model: &str,
    manifest: &Path,
    key: &str,
    allowed: bool,
) -> Result<(), StartError> {
    let what = format!(
        "{model} ({}) has no `{key}`, so {section}'s threshold cannot be checked against what the model was measured to do",
        manifest.display()
    );
    if allowed {
        log::warn!(
            "config {}: {what}; running because {section}.allow_below_floor = true",
            cfg.path.display()
        );
        return Ok(());
    }
    Err(StartError::Config(ConfigError::Invalid {
        path: cfg.path.clone(),
        message: format!("{what}: restore the manifest's `{key}` (measure it with `edgeid eval`), or set {section}.allow_below_floor = true to run without one"),
    }))
}

fn check_floor(cfg: &Config, f: Floor, allowed: bool) -> Result<(), StartError> {
    if f.value >= f.floor {
        return Ok(());
    }
    if allowed {
        log::warn!(
            "config {}: {} = {} is below {}, the floor of {}; running on it because {} = true",
            cfg.path.display(),
            f.key,
            f.value,
            f.floor,
            f.model,
            f.override_key
        );
        return Ok(());
    }
    Err(StartError::BelowFloor { path: cfg.path.clone(), below: f })
}

/// With `[trust]`, refuses the config unless every manifest it names is in the signed set as
/// it was signed, and records the bytes checked as the ones every later
/// [`Manifest::load`](crate::manifest::Manifest::load) of that manifest parses (the file
/// is not read again between the check and the loading).
pub fn verify_trust(cfg: &Config) -> Result<(), StartError> {
    let Some(sets) = signed_sets(cfg)? else { return Ok(()) };
    for m in cfg.manifests() {
        check_in(cfg, &sets, &m)?;
    }
    Ok(())
}

/// The signed sets manifests are checked against (`None` without `[trust]`): the device's,
/// and the one its config offer brought.
fn signed_sets(cfg: &Config) -> Result<Option<Vec<SignedSet>>, StartError> {
    let Some(t) = &cfg.trust else { return Ok(None) };
    let untrusted = |source| StartError::Untrusted { path: cfg.path.clone(), source };
    std::iter::once(&t.signed_set)
        .chain(&t.offered_set)
        .map(|path| SignedSet::load(path, &t.public_key).map_err(untrusted))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Checks `manifest` against the first set that lists it (the device's set's answer when
/// none does), and records the bytes checked as the ones its loading parses.
fn check_in(cfg: &Config, sets: &[SignedSet], manifest: &Path) -> Result<(), StartError> {
    let mut first = None;
    for set in sets {
        match set.check(manifest) {
            Ok(bytes) => {
                crate::manifest::record_verified(manifest, bytes);
                return Ok(());
            }
            Err(TrustError::Unlisted { .. }) if first.is_some() => {}
            Err(e @ TrustError::Unlisted { .. }) => first = Some(e),
            Err(e) => return Err(StartError::Untrusted { path: cfg.path.clone(), source: e }),
        }
    }
    let source = first.expect("the device's set is always among them");
    Err(StartError::Untrusted { path: cfg.path.clone(), source })
}

/// With `[trust]`, refuses a manifest that is not in the signed set as it was signed
/// (also for manifests given on the command line).
pub fn check_trusted(cfg: &Config, manifest: &Path) -> Result<(), StartError> {
    match signed_sets(cfg)? {
        Some(sets) => check_in(cfg, &sets, manifest),
        None => Ok(()),
    }
}

/// One threshold held against its model's floor (and, below it, what the error says).
#[derive(Debug)]
pub struct Floor {
    pub key: &'static str,
    pub value: f32,
    pub floor: f32,
    /// The model whose manifest sets the floor.
    pub model: String,
    /// What the floor is.
    pub what: &'static str,
    /// The key that lets the threshold go below it.
    pub override_key: &'static str,
}

/// How a gallery is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// It must exist (identification, the daemon's workers, management commands).
    Existing,
    /// Made (with its key) if it does not exist (enrolment, a new device's empty gallery).
    CreateIfMissing,
    /// It must exist, and is opened with the encoder it was made with, whatever the config's
    /// (to re-encode it for the config's).
    AsStored,
}

/// The encoder's model id and embedding size, read from its manifest without loading the model.
pub fn encoder_identity(cfg: &Config) -> Result<(String, usize), crate::manifest::ModelError> {
    let m = Manifest::load(&cfg.encoder.manifest)?;
    let dim = m.embedding_dim()?;
    Ok((m.id, dim))
}

/// The gallery at `path` for the config's encoder, under the config's key for it: the one
/// place edgeid opens a gallery.
pub fn gallery(cfg: &Config, path: &Path, open: Open) -> anyhow::Result<Gallery> {
    let (encoder, dim) = match open {
        Open::AsStored => Gallery::stored_encoder(path)?,
        Open::Existing | Open::CreateIfMissing => encoder_identity(cfg)?,
    };
    let options = GalleryOptions {
        key: cfg.gallery.key_for(path),
        encoder,
        dim,
        create: open == Open::CreateIfMissing,
    };
    Ok(Gallery::open(path, &options)?)
}

/// The frame path of a config: its models loaded (each checked against its manifest), and the
/// taggers when `tags` (the daemon's `tagger.in_daemon`, `identify --tags`).
pub fn frame_path(cfg: &Config, tags: bool) -> anyhow::Result<crate::pipeline::FramePath> {
    let pipeline = crate::pipeline::Pipeline::load(cfg)?;
    let tagger = if tags { Some(crate::pipeline::tagger(cfg)?) } else { None };
    Ok(crate::pipeline::FramePath::new(cfg, pipeline, tagger))
}

/// What a start builds besides the config's frame path.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// Load the taggers too (the daemon's `tagger.in_daemon`, `identify --tags`).
    pub tags: bool,
    /// Open this gallery, so (the config's own: `gallery.path`).
    pub gallery: Option<(PathBuf, Open)>,
}

/// A runtime built from a verified config: its frame path and its gallery.
pub struct Runtime {
    pub path: crate::pipeline::FramePath,
    pub gallery: Option<Gallery>,
}

impl Runtime {
    /// The one start-up: the config verified (trust, floors), its models loaded (each checked
    /// against its manifest) and its gallery opened for their encoder. The daemon builds one
    /// per camera and one to check a config offer; `identify` and the operator API one.
    pub fn build(cfg: &Config, build: &Build) -> anyhow::Result<Runtime> {
        verify(cfg)?;
        let gallery = match &build.gallery {
            Some((path, open)) => Some(gallery(cfg, path, *open)?),
            None => None,
        };
        Ok(Runtime { path: frame_path(cfg, build.tags)?, gallery })
    }
}

/// One model a config runs, and what its manifest says of its weights' terms.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelLicence {
    pub manifest: PathBuf,
    pub id: String,
    pub role: String,
    pub file: PathBuf,
    pub sha256: String,
    pub licence: String,
    pub licence_note: Option<String>,
    pub source: Option<String>,
    /// Whether the licence is one known to allow selling a device that ships the weights.
    pub commercial_use: bool,
}

/// `configs/../models/x.onnx` as `models/x.onnx`: a config's relative paths joined to its folder,
/// shown as a person would write them (lexically: no file system lookup).
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

impl ModelLicence {
    pub fn of(m: &Manifest) -> ModelLicence {
        ModelLicence {
            manifest: tidy(&m.path),
            id: m.id.clone(),
            role: m.role.name().to_string(),
            file: tidy(&m.model_path()),
            sha256: m.sha256.clone(),
            licence: m.licence().to_string(),
            licence_note: m.licence_note.clone(),
            source: m.source.clone(),
            commercial_use: m.commercial_use(),
        }
    }
}

/// Every model the config runs, with its licence (a manifest that cannot be read is left to
/// the loading that names what is wrong with it).
pub fn model_licences(cfg: &Config) -> Vec<ModelLicence> {
    let mut seen = Vec::new();
    cfg.manifests()
        .iter()
        .filter_map(|p| Manifest::load(p).ok())
        .filter(|m| {
            let new = !seen.contains(&m.id);
            seen.push(m.id.clone());
            new
        })
        .map(|m| ModelLicence::of(&m))
        .collect()
}

/// What a start says of the models it runs whose licence is not known to allow commercial use.
pub fn licence_warnings(cfg: &Config) -> Vec<String> {
    model_licences(cfg)
        .into_iter()
        .filter(|m| !m.commercial_use)
        .map(|m| {
            format!(
                "model {} ({}, {}): licence {}{}; a device sold with it may breach its terms (edgeid models list; configs/licence-clean.toml uses only models that allow it)",
                m.id,
                m.role,
                m.manifest.display(),
                m.licence,
                m.licence_note.map(|n| format!(": {n}")).unwrap_or_default()
            )
        })
        .collect()
}
