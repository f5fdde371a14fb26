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
    check_floors(cfg)
}

/// Refuses a match threshold below the encoder's measured floor, or a live threshold below
/// the PAD heads' highest floor, unless the config's override key says so (then warns):
/// `match_threshold = 0` would grant everyone, also through a SIGHUP. A manifest that cannot
/// be read is left to the model loading that follows, which names what is wrong with it.
pub fn check_floors(cfg: &Config) -> Result<(), StartError> {
    let encoder = Manifest::load(&cfg.encoder.manifest).ok();
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
    let heads = cfg.pad.models.iter().filter_map(|p| Manifest::load(p).ok());
    let highest = heads
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
