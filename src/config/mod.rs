//! The configuration file (TOML). Unknown keys and out-of-range values are refused with a
//! message that names the file, the key and what is allowed: a typo in a threshold must not
//! silently fall back to a default on an access-control device.
//!
//! Relative paths in the file are resolved against the file's own folder, so a config works
//! wherever the daemon is started from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::capture::SourceConfig;
pub use crate::detect::{BlazefaceConfig, DetectorConfig, MtcnnConfig};
use crate::heads::Fusion;
use crate::infer::cpu::CpuOptions;
use crate::infer::gpu::GpuOptions;
use crate::infer::BackendKind;
pub use crate::tag::TaggerConfig;
pub use crate::track::TrackerConfig;
use crate::util::{check_range, OutOfRange};

pub mod fleet;
pub mod outputs;

pub use self::outputs::OutputConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path} cannot be read: {error}; pass an existing file with --config")]
    Unreadable { path: PathBuf, error: std::io::Error },
    #[error("config {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config {path}: {key} = {value} is out of range ({allowed}); fix the value or remove the key to use the default")]
    OutOfRange { path: PathBuf, key: String, value: String, allowed: String },
    /// The fleet's config offer that the device runs (or checks) cannot be read over it.
    #[error("config {path} with the fleet's offer {offer}: {why}")]
    Offer { path: PathBuf, offer: PathBuf, why: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Inference runtime for every model.
    #[serde(default)]
    pub backend: BackendKind,
    pub detector: DetectorConfig,
    pub encoder: EncoderConfig,
    pub recognition: RecognitionConfig,
    #[serde(default)]
    pub pad: PadConfig,
    #[serde(default)]
    pub mad: MadConfig,
    #[serde(default)]
    pub tagger: TaggerConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub gallery: GalleryConfig,
    /// Frame sources of the daemon (`edgeid run`).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub tracker: TrackerConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Generalization audits; absent: `edgeid audit` refuses and the daemon runs none.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// Signed manifests; absent: every manifest's model file is still checked by its sha256.
    #[serde(default)]
    pub trust: Option<TrustConfig>,
    /// The GPU backends' settings (batch sizes, warm-up, cuDNN search, TensorRT engines).
    #[serde(default)]
    pub gpu: GpuOptions,
    /// The CPU backends' settings (onnxruntime's threads).
    #[serde(default)]
    pub cpu: CpuOptions,
    /// What a decision sets off besides its journal record (`[[outputs]]`).
    #[serde(default)]
    pub outputs: Vec<OutputConfig>,
    /// The operator API and page (`[api]`); absent, there is none.
    #[serde(default)]
    pub api: Option<ApiConfig>,
    /// `[fleet]`: shipping the journal to a central PostgreSQL database and gallery changes
    /// from the fleet's broker; absent, the device stands alone.
    #[serde(default)]
    pub fleet: Option<self::fleet::FleetConfig>,
    /// The file this was read from.
    #[serde(skip)]
    pub path: PathBuf,
    /// The fleet's config offer read over the file (`fleet.updates`), if one is.
    #[serde(skip)]
    pub offer: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    pub manifest: PathBuf,
    /// Test-time flip: each face encoded with its mirror image, the two averaged (twice the
    /// encoder's time). Thresholds are calibrated with or without it: recalibrate on change.
    #[serde(default)]
    pub flip: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognitionConfig {
    /// Cosine similarity at or above which a face is the enrolled identity.
    pub match_threshold: f32,
    /// Lets `match_threshold` go below the encoder's measured floor (`[embedding] match_floor`
    /// of its manifest): for a population calibrated with `edgeid calibrate`, never by default.
    #[serde(default)]
    pub allow_below_floor: bool,
}

/// Presentation-attack detection: heads on the face crop, fused into one live score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PadConfig {
    /// Off: no PAD model is loaded and no live score is produced.
    pub enabled: bool,
    /// Manifests of the PAD heads (role `pad`).
    #[serde(default)]
    pub models: Vec<PathBuf>,
    /// `mean` or `min` of the heads' scores, or `logistic` (fitted: `fusion_bias`,
    /// `fusion_weights`).
    #[serde(default)]
    pub fusion: Fusion,
    /// The fitted logistic fusion's bias, and its weight per head model id.
    #[serde(default)]
    pub fusion_bias: f32,
    #[serde(default)]
    pub fusion_weights: std::collections::BTreeMap<String, f32>,
    /// Live score at or above which a face is taken as bona fide.
    #[serde(default = "default_pad_threshold")]
    pub threshold: f32,
    /// Lets `threshold` go below the highest floor of the heads (`[head] floor`).
    #[serde(default)]
    pub allow_below_floor: bool,
    /// A track is denied as a presentation attack as soon as this many of its usable frames
    /// have a mean live score below `deny_below`, without waiting for
    /// `tracker.decide_after_frames` (0: never early).
    #[serde(default = "default_deny_after_frames")]
    pub deny_after_frames: usize,
    #[serde(default = "default_deny_below")]
    pub deny_below: f32,
}

impl Default for PadConfig {
    fn default() -> Self {
        PadConfig {
            enabled: false,
            models: Vec::new(),
            fusion: Fusion::Mean,
            fusion_bias: 0.0,
            fusion_weights: Default::default(),
            threshold: default_pad_threshold(),
            allow_below_floor: false,
            deny_after_frames: default_deny_after_frames(),
            deny_below: default_deny_below(),
        }
    }
}

impl PadConfig {
    /// The fitted logistic fusion the config names (empty unless `fusion = "logistic"`).
    pub fn logistic(&self) -> crate::heads::LogisticFusion {
        crate::heads::LogisticFusion {
            bias: self.fusion_bias,
            weights: self.fusion_weights.clone(),
        }
    }
}

fn default_deny_after_frames() -> usize {
    2
}

fn default_deny_below() -> f32 {
    0.2
}

fn default_pad_threshold() -> f32 {
    0.5
}

/// Morphing-attack detection: S-MAD heads on the reference at enrolment, a D-MAD head on the
/// enrolled reference against the live face, and a gallery check at enrolment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MadConfig {
    /// Off: no MAD head is loaded and no bona fide score is produced.
    pub enabled: bool,
    /// Manifest of the differential head (role `dmad`), or none.
    #[serde(default)]
    pub dmad: Option<PathBuf>,
    /// Manifests of single-image ONNX heads (role `smad`) run on each reference at enrolment.
    #[serde(default)]
    pub smad: Vec<PathBuf>,
    /// Bona fide score at or above which a reference (S-MAD) or a reference/probe pair (D-MAD)
    /// is taken as not morphed.
    #[serde(default = "default_mad_threshold")]
    pub threshold: f32,
    /// Refuse to enrol a reference that matches two or more enrolled identities at or above
    /// recognition.match_threshold: a morph of enrolled people matches each of them.
    #[serde(default = "default_true")]
    pub gallery_check: bool,
}

impl Default for MadConfig {
    fn default() -> Self {
        MadConfig {
            enabled: false,
            dmad: None,
            smad: Vec::new(),
            threshold: default_mad_threshold(),
            gallery_check: true,
        }
    }
}

fn default_mad_threshold() -> f32 {
    0.5
}

/// Which requirements an access grant needs; each can be turned off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The face matches an enrolled identity at or above recognition.match_threshold.
    pub require_match: bool,
    /// The live score is at or above pad.threshold (needs pad.enabled).
    pub require_live: bool,
    /// The D-MAD bona fide score of the matched reference against the live face is at or
    /// above mad.threshold (needs mad.enabled and mad.dmad).
    pub require_bona_fide: bool,
    /// The override that lets `require_match = false` run: without a match requirement every
    /// face that passes the other checks is granted, strangers included (a "live person" door).
    /// Refused without it, however the config arrives (file, SIGHUP, fleet offer); logged at
    /// every load with it.
    pub grant_unmatched: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            require_match: true,
            require_live: false,
            require_bona_fide: false,
            grant_unmatched: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryConfig {
    /// Gallery database used when a command gets no --gallery.
    #[serde(default = "default_gallery_path")]
    pub path: PathBuf,
    /// The key file that seals the gallery's templates (created with the gallery, mode 0600).
    /// Unset: beside the gallery, `<gallery>.key`. Keep it apart from the gallery's backups.
    pub key: Option<PathBuf>,
    /// Keep each enrolment's aligned face crop (112×112 PNG), sealed like the templates, so
    /// that `edgeid gallery reencode` can move the gallery to another encoder without the
    /// original photos. Off: only templates are kept (less personal data; an encoder change
    /// then means enrolling everyone again).
    #[serde(default = "default_true")]
    pub keep_crops: bool,
}

impl GalleryConfig {
    /// The key of the gallery at `gallery` (the configured one, or one given on the command
    /// line).
    pub fn key_for(&self, gallery: &Path) -> PathBuf {
        self.key.clone().unwrap_or_else(|| {
            let mut name = gallery.as_os_str().to_owned();
            name.push(".key");
            PathBuf::from(name)
        })
    }
}

impl Default for GalleryConfig {
    fn default() -> Self {
        GalleryConfig { path: default_gallery_path(), key: None, keep_crops: true }
    }
}

/// Only manifests in a set signed with this key run (see [`crate::trust`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// ed25519 public key, 64 hex digits (`edgeid models keygen` prints it).
    pub public_key: String,
    /// The signed set (`edgeid models sign`).
    pub signed_set: PathBuf,
    /// A signed set that came with the fleet's config offer the config runs: checked with the
    /// same key, it adds the offer's manifests to the device's set.
    #[serde(skip)]
    pub offered_set: Option<PathBuf>,
}

/// Generalization audits: how much general visual ability the deployed encoder keeps, probed on
/// a set of general images, compared with a baseline, and drift of live scores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The audit set, laid out `<set>/<task>/<class>/*.png|jpg`.
    pub set: PathBuf,
    /// What the encoder is compared with: a manifest (another encoder, the previous one, or a
    /// `features` model), or "pixels" (the images themselves, the floor).
    pub baseline: PathBuf,
    /// Training images per class of the linear probe; the rest of each class is the test.
    #[serde(default = "default_shots")]
    pub shots: usize,
    /// A prototype bank in the encoder's space (`edgeid prototypes build`), or none: every task
    /// whose class names all have a prototype is also scored zero-shot (nearest prototype,
    /// nothing fitted on the audit set).
    #[serde(default)]
    pub prototypes: Option<PathBuf>,
    /// A task whose retention (encoder accuracy / baseline accuracy) falls below this raises
    /// an alert: a warning in the log, a journal flag, the `edgeid_audit_alert` metric.
    #[serde(default = "default_min_retention")]
    pub min_retention: f32,
    /// Hours between the daemon's audits (run beside the cameras, never in their path);
    /// 0: the daemon runs none.
    #[serde(default)]
    pub every_hours: f32,
    /// Decisions per drift window: the first ones journaled (the reference, from when the site
    /// was set up) against the latest ones.
    #[serde(default = "default_drift_window")]
    pub drift_window: usize,
    /// Population stability index at or above which a score's drift raises an alert (0.1:
    /// moderate shift, 0.25: a large one, by the usual rule of thumb).
    #[serde(default = "default_drift_psi")]
    pub drift_alert_psi: f32,
}

impl AuditConfig {
    /// The baseline is the images themselves.
    pub fn baseline_is_pixels(&self) -> bool {
        self.baseline.as_os_str() == "pixels"
    }
}

fn default_shots() -> usize {
    10
}
fn default_min_retention() -> f32 {
    0.8
}
fn default_drift_window() -> usize {
    200
}
fn default_drift_psi() -> f32 {
    0.25
}

/// `[api]`: the operator API. Absent, there is none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Where to listen. Loopback by default; any other address needs `tls_cert` and `tls_key`.
    pub listen: String,
    /// The tokens file (`edgeid token add` writes it): names, scopes and SHA-256 hashes.
    pub tokens: PathBuf,
    /// PEM certificate chain and private key; with them the API speaks only HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest photo an upload may carry, in MiB.
    pub max_upload_mib: f32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8480".into(),
            tokens: PathBuf::from("api-tokens"),
            tls_cert: None,
            tls_key: None,
            max_upload_mib: 20.0,
        }
    }
}

impl ApiConfig {
    /// Refuses settings the API cannot run with: an address that does not parse, a
    /// non-loopback address without TLS, half a TLS pair.
    pub fn check(&self) -> Result<(), String> {
        let addr: std::net::SocketAddr = self.listen.parse().map_err(|_| {
            format!("api.listen = {:?} is not an address like 127.0.0.1:8480", self.listen)
        })?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(
                "api.tls_cert and api.tls_key go together: set both (PEM files) or neither".into(),
            );
        }
        if !addr.ip().is_loopback() && self.tls_cert.is_none() {
            return Err(format!(
                "api.listen = {:?} is not a loopback address: the API would send faces, names and tokens over the network in clear. Set api.tls_cert and api.tls_key (PEM), or listen on 127.0.0.1",
                self.listen
            ));
        }
        if !(self.max_upload_mib > 0.0 && self.max_upload_mib <= 200.0) {
            return Err(format!(
                "api.max_upload_mib = {} is out of range: more than 0, at most 200",
                self.max_upload_mib
            ));
        }
        Ok(())
    }

    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }
}

/// The daemon's plumbing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Decision journal (SQLite, WAL).
    pub journal: PathBuf,
    /// Frames waiting between a camera and its inference worker. When full, the oldest frame
    /// is dropped (and counted): inference never blocks capture, and a person at the door is
    /// judged on the freshest frames.
    pub queue_capacity: usize,
    /// Address of /healthz and /metrics; loopback by default; "" turns the endpoint off.
    pub http: String,
    /// Seconds between attempts to reopen a camera that failed, doubling up to `retry_max_s`.
    pub retry_initial_s: f32,
    pub retry_max_s: f32,
    /// Store the sharpest aligned face crop (112×112 PNG) with each decision. Off by default:
    /// a face image is personal data, and the journal needs none to be useful.
    pub store_crops: bool,
    /// Days a stored face crop is kept; older ones are removed from the journal (the record
    /// stays, and its chain: a crop's hash covers its digest, not its bytes).
    pub keep_crops_days: f32,
    /// The most the stored crops may take together, in MiB; past it the oldest go first.
    pub max_crops_mib: f32,
    /// This device's name in every journal record and event (a fleet tells its doors apart by
    /// it); "" (the default) takes the machine's host name.
    pub device: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            journal: PathBuf::from("journal.db"),
            queue_capacity: 4,
            http: "127.0.0.1:9464".into(),
            retry_initial_s: 1.0,
            retry_max_s: 30.0,
            store_crops: false,
            keep_crops_days: 30.0,
            max_crops_mib: 100.0,
            device: String::new(),
        }
    }
}

impl DaemonConfig {
    /// The device id records are stamped with: `device`, else the host name, else "edgeid".
    pub fn device_id(&self) -> String {
        if !self.device.trim().is_empty() {
            return self.device.trim().to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "edgeid".to_string())
    }
}

fn default_true() -> bool {
    true
}
fn default_gallery_path() -> PathBuf {
    PathBuf::from("gallery.db")
}

impl Config {
    /// The early denial of a track on its PAD evidence: only where liveness is required (a
    /// track decided early without it would be decided on fewer frames for nothing) and
    /// `pad.deny_after_frames` is not 0.
    pub fn early_deny(&self) -> Option<crate::track::EarlyDeny> {
        let p = &self.pad;
        (p.enabled && self.policy.require_live && p.deny_after_frames > 0)
            .then_some(crate::track::EarlyDeny { frames: p.deny_after_frames, below: p.deny_below })
    }

    /// The decision thresholds that differ between two configs, as `key old -> new` (logged at
    /// every reload, so the device's own log says when its thresholds moved).
    pub fn threshold_changes(&self, new: &Config) -> Vec<String> {
        let pairs = [
            (
                "recognition.match_threshold",
                self.recognition.match_threshold,
                new.recognition.match_threshold,
            ),
            ("pad.threshold", self.pad.threshold, new.pad.threshold),
            ("mad.threshold", self.mad.threshold, new.mad.threshold),
        ];
        pairs
            .into_iter()
            .filter(|(_, old, new)| old != new)
            .map(|(key, old, new)| format!("{key} {old} -> {new}"))
            .collect()
    }

    /// Reads, parses, validates and resolves a config file. Data only: no model, manifest or
    /// other file is read (so a config can be parsed, tested and fuzzed alone). What a device
    /// runs on is [`crate::runtime::load_config`]: this file, the fleet's config offer it
    /// applied read over it, then trust and floors verified.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Unreadable { path: path.to_path_buf(), error })?;
        Config::parse(&text, path)
    }

    /// A config from a TOML table as if read from `path` (a device's file with an offer's
    /// tables over it): parsed, validated and resolved as [`Config::parse`] does; `err` turns
    /// what is wrong into the caller's error.
    pub fn from_table(
        table: toml::Table,
        path: &Path,
        err: impl Fn(String) -> ConfigError,
    ) -> Result<Config, ConfigError> {
        let mut cfg: Config =
            table.try_into().map_err(|e: toml::de::Error| err(e.message().to_string()))?;
        cfg.path = path.to_path_buf();
        cfg.validate().map_err(|e| err(e.to_string()))?;
        Ok(cfg)
    }

    /// Resolves the relative paths of the named tables (`detector`, `encoder`, `pad`, `mad`,
    /// `tagger`) against `dir`, then the rest against the config file's folder.
    pub fn resolve_tables(&mut self, dir: &Path, tables: &[&str]) {
        let set = |table: &str| tables.contains(&table);
        let mut paths: Vec<&mut PathBuf> = Vec::new();
        if set("detector") {
            paths.extend(self.detector.manifests_mut());
        }
        if set("encoder") {
            paths.push(&mut self.encoder.manifest);
        }
        if set("pad") {
            paths.extend(self.pad.models.iter_mut());
        }
        if set("mad") {
            paths.extend(self.mad.smad.iter_mut().chain(self.mad.dmad.iter_mut()));
        }
        if set("tagger") {
            paths.extend(self.tagger.model.iter_mut().chain(self.tagger.prototypes.iter_mut()));
        }
        for p in paths.into_iter().filter(|p| p.is_relative()) {
            *p = dir.join(&*p);
        }
        let own = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.resolve(&own);
    }

    /// Parses config text as if read from `path` (which anchors relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: crate::util::toml_error(text, &e),
        })?;
        cfg.path = path.to_path_buf();
        cfg.validate()?;
        cfg.resolve(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Resolves every relative path against `dir`, the config file's folder.
    fn resolve(&mut self, dir: &Path) {
        let cfg = self;
        for p in cfg
            .detector
            .manifests_mut()
            .into_iter()
            .chain([&mut cfg.encoder.manifest, &mut cfg.gallery.path, &mut cfg.daemon.journal])
            .chain(cfg.pad.models.iter_mut())
            .chain(cfg.mad.smad.iter_mut())
            .chain(cfg.mad.dmad.iter_mut())
            .chain(cfg.gallery.key.iter_mut())
            .chain(cfg.trust.iter_mut().map(|t| &mut t.signed_set))
            .chain(cfg.tagger.model.iter_mut())
            .chain(cfg.tagger.prototypes.iter_mut())
            .chain(cfg.gpu.tensorrt_cache.iter_mut())
            .chain(cfg.outputs.iter_mut().flat_map(|o| o.paths_mut()))
            .chain(cfg.api.iter_mut().flat_map(|a| {
                [Some(&mut a.tokens), a.tls_cert.as_mut(), a.tls_key.as_mut()].into_iter().flatten()
            }))
            .chain(cfg.fleet.iter_mut().flat_map(|f| {
                [
                    f.password_file.as_mut(),
                    f.ca_file.as_mut(),
                    f.transport_key.as_mut(),
                    f.broker_ca_file.as_mut(),
                    f.broker_password_file.as_mut(),
                    f.updates.as_mut(),
                ]
                .into_iter()
                .flatten()
            }))
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let Some(a) = &mut cfg.audit {
            let pixels = a.baseline_is_pixels();
            for p in [&mut a.set]
                .into_iter()
                .chain((!pixels).then_some(&mut a.baseline))
                .chain(a.prototypes.iter_mut())
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        for source in &mut cfg.sources {
            let p = match source {
                SourceConfig::V4l2 { device, .. } => device,
                SourceConfig::Replay { path, .. } => path,
                SourceConfig::Rtsp(crate::capture::RtspCamera {
                    password_file: Some(path),
                    ..
                }) => path,
                SourceConfig::Rtsp(_) | SourceConfig::Gstreamer { .. } => continue,
            };
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Every manifest this config runs.
    pub fn manifests(&self) -> Vec<PathBuf> {
        let baseline = self.audit.as_ref().filter(|a| !a.baseline_is_pixels()).map(|a| &a.baseline);
        self.detector
            .manifests()
            .into_iter()
            .chain([&self.encoder.manifest])
            .chain(&self.pad.models)
            .chain(&self.mad.smad)
            .chain(&self.mad.dmad)
            .chain(&self.tagger.model)
            .chain(baseline)
            .cloned()
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let unit = "between 0 and 1, exclusive";
        self.detector.check().map_err(|e| self.out_of_range(e))?;
        self.gpu.check().map_err(|e| self.out_of_range(e))?;
        self.cpu.check().map_err(|e| self.out_of_range(e))?;
        for (i, o) in self.outputs.iter().enumerate() {
            o.check().map_err(|e| self.out_of_range(e))?;
            if self.outputs[..i].iter().any(|p| p.name() == o.name()) {
                return Err(self.out_of_range(OutOfRange {
                    key: "outputs.name".into(),
                    value: format!("{:?}", o.name()),
                    allowed: "a name no other output has (each keeps its own cursor)".into(),
                }));
            }
        }
        // Never 0 or below, whatever the override keys say: a cosine of 0 is what unrelated
        // faces score, so such a threshold matches strangers.
        self.check(
            "recognition.match_threshold",
            self.recognition.match_threshold,
            |v| v > 0.0 && v <= 1.0,
            "a cosine similarity above 0 and at most 1 (0 or below matches strangers)",
        )?;
        self.check(
            "pad.threshold",
            self.pad.threshold,
            |v| v > 0.0 && v <= 1.0,
            "a score above 0 and at most 1 (0 takes every attack for a live person)",
        )?;
        if !self.policy.require_match && !self.policy.grant_unmatched {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "policy.require_match = false grants every face that passes the other checks, strangers included; set require_match = true, or, for a door that is meant to open for anyone, policy.grant_unmatched = true as well (logged at every start)".into(),
            });
        }
        self.check(
            "pad.deny_below",
            self.pad.deny_below,
            |v| (0.0..=1.0).contains(&v),
            "a score from 0 to 1",
        )?;
        if self.pad.fusion == Fusion::Logistic && self.pad.fusion_weights.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "pad.fusion = \"logistic\" needs pad.fusion_weights (one per head model id) and pad.fusion_bias; fit them with `edgeid calibrate --pad --fit-fusion` or use fusion = \"mean\"".into(),
            });
        }
        if self.pad.fusion != Fusion::Logistic && !self.pad.fusion_weights.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: format!("pad.fusion_weights are set but pad.fusion = \"{}\" ignores them; set fusion = \"logistic\" or remove the weights", self.pad.fusion.name()),
            });
        }
        if self.pad.enabled && self.pad.models.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "pad.enabled = true but pad.models is empty; list the PAD manifests or set enabled = false".into(),
            });
        }
        if self.policy.require_live && !self.pad.enabled {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "policy.require_live = true needs pad.enabled = true; enable PAD or stop requiring it".into(),
            });
        }
        self.check(
            "mad.threshold",
            self.mad.threshold,
            |v| (0.0..=1.0).contains(&v),
            "a score from 0 to 1",
        )?;
        if self.mad.enabled
            && self.mad.dmad.is_none()
            && self.mad.smad.is_empty()
            && !self.mad.gallery_check
        {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "mad.enabled = true but no morph check is on (no mad.dmad, no mad.smad, gallery_check = false); name a head, turn gallery_check on, or set enabled = false".into(),
            });
        }
        if self.policy.require_bona_fide && !(self.mad.enabled && self.mad.dmad.is_some()) {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "policy.require_bona_fide = true needs mad.enabled = true and a mad.dmad head; enable D-MAD or stop requiring it".into(),
            });
        }
        let tg = &self.tagger;
        self.check("tagger.min_score", tg.min_score, |v| v > 0.0 && v < 1.0, unit)?;
        self.check("tagger.tiles", tg.tiles as f32, |v| v <= 8.0, "0 to 8 tiles per side")?;
        self.check("tagger.overlap", tg.overlap, |v| (0.0..0.9).contains(&v), "0 to 0.9")?;
        self.check("tagger.nms", tg.nms, |v| v > 0.0 && v < 1.0, unit)?;
        self.check(
            "tagger.prototype_min_similarity",
            tg.prototype_min_similarity,
            |v| v > -1.0 && v < 1.0,
            "between -1 and 1",
        )?;
        if tg.enabled && tg.model.is_none() && tg.prototypes.is_none() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: "tagger.enabled = true but neither tagger.model nor tagger.prototypes is set; name one or set enabled = false".into(),
            });
        }
        let t = &self.tracker;
        self.check("tracker.iou_min", t.iou_min, |v| v > 0.0 && v < 1.0, unit)?;
        self.check(
            "tracker.link_similarity",
            t.link_similarity,
            |v| v > -1.0 && v < 1.0,
            "between -1 and 1",
        )?;
        self.check(
            "tracker.relink_similarity",
            t.relink_similarity,
            |v| v > -1.0 && v < 1.0,
            "between -1 and 1",
        )?;
        self.check(
            "tracker.max_missed_frames",
            t.max_missed_frames as f32,
            |v| v >= 1.0,
            "1 or more",
        )?;
        self.check(
            "tracker.decide_after_frames",
            t.decide_after_frames as f32,
            |v| v >= 1.0,
            "1 or more",
        )?;
        self.check(
            "tracker.min_frames",
            t.min_frames as f32,
            |v| v >= 1.0 && v <= t.decide_after_frames as f32,
            "1 to tracker.decide_after_frames",
        )?;
        self.check("tracker.min_face_px", t.min_face_px, |v| v >= 0.0, "0 or more pixels")?;
        self.check("tracker.min_sharpness", t.min_sharpness, |v| v >= 0.0, "0 or more")?;
        // A carried face skips the encoder: it must overlap and look like the face last
        // encoded (0 would carry any face anywhere).
        self.check(
            "tracker.carry_iou",
            t.carry_iou,
            |v| v > 0.0 && v <= 1.0,
            "above 0, at most 1",
        )?;
        self.check(
            "tracker.carry_glance",
            t.carry_glance,
            |v| v > 0.0 && v <= 1.0,
            "above 0, at most 1",
        )?;
        let dm = &self.daemon;
        self.check(
            "daemon.queue_capacity",
            dm.queue_capacity as f32,
            |v| (1.0..=1024.0).contains(&v),
            "1 to 1024 frames",
        )?;
        // Upper bounds too: a duration beyond what the clock types hold panicked at the first
        // camera failure or audit instead of being refused here.
        self.check(
            "daemon.retry_initial_s",
            dm.retry_initial_s,
            |v| v > 0.0 && v <= 3600.0,
            "more than 0, at most 3600 seconds",
        )?;
        self.check(
            "daemon.retry_max_s",
            dm.retry_max_s,
            |v| v >= dm.retry_initial_s && v <= 86_400.0,
            "at least daemon.retry_initial_s, at most 86400 seconds (a day)",
        )?;
        self.check(
            "daemon.keep_crops_days",
            dm.keep_crops_days,
            |v| v > 0.0 && v <= 3650.0,
            "more than 0, at most 3650 days",
        )?;
        self.check(
            "daemon.max_crops_mib",
            dm.max_crops_mib,
            |v| v > 0.0 && v <= 1_000_000.0,
            "more than 0 MiB",
        )?;
        if !dm.http.is_empty() && dm.http.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                message: format!("daemon.http = \"{}\" is not an address like 127.0.0.1:9464 (\"\" turns it off)", dm.http),
            });
        }
        if let Some(f) = &self.fleet {
            f.check().map_err(|e| self.out_of_range(e))?;
        }
        if let Some(api) = &self.api {
            api.check()
                .map_err(|message| ConfigError::Invalid { path: self.path.clone(), message })?;
        }
        if let Some(a) = &self.audit {
            self.check(
                "audit.shots",
                a.shots as f32,
                |v| (1.0..=1000.0).contains(&v),
                "1 to 1000 images per class",
            )?;
            self.check(
                "audit.min_retention",
                a.min_retention,
                |v| (0.0..=2.0).contains(&v),
                "0 to 2 (1: as good as the baseline)",
            )?;
            self.check(
                "audit.every_hours",
                a.every_hours,
                |v| (0.0..=8760.0).contains(&v),
                "0 (never) to 8760 hours (a year)",
            )?;
            self.check(
                "audit.drift_window",
                a.drift_window as f32,
                |v| v >= 20.0,
                "20 or more decisions",
            )?;
            self.check("audit.drift_alert_psi", a.drift_alert_psi, |v| v > 0.0, "more than 0")?;
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            match s {
                SourceConfig::Replay { fps, .. } => self.check(
                    "sources.fps",
                    *fps,
                    |v| v == 0.0 || (0.01..=1000.0).contains(&v),
                    "0 (as fast as frames are taken) or 0.01 to 1000 frames per second",
                )?,
                SourceConfig::V4l2 { fps, .. } => self.check(
                    "sources.fps",
                    *fps as f32,
                    |v| (1.0..=1000.0).contains(&v),
                    "1 to 1000 frames per second",
                )?,
                SourceConfig::Rtsp(_) | SourceConfig::Gstreamer { .. } => {}
            }
            let problem = match s {
                SourceConfig::Rtsp(camera) => camera.problem(),
                SourceConfig::Gstreamer { pipeline, .. } if pipeline.trim().is_empty() => {
                    Some("pipeline is empty; give the elements up to the raw video, as gst-launch-1.0 takes them".into())
                }
                _ => None,
            };
            if let Some(message) = problem.or(s.unbuilt().map(String::from)) {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    message: format!("source `{}`: {message}", s.name()),
                });
            }
            if !names.insert(s.name()) {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    message: format!(
                        "two sources are named `{}`; give each source its own name",
                        s.name()
                    ),
                });
            }
        }
        Ok(())
    }

    fn check(
        &self,
        key: &str,
        value: f32,
        ok: impl Fn(f32) -> bool,
        allowed: &str,
    ) -> Result<(), ConfigError> {
        check_range(key, value, ok, allowed).map_err(|e| self.out_of_range(e))
    }

    fn out_of_range(&self, e: OutOfRange) -> ConfigError {
        let OutOfRange { key, value, allowed } = e;
        ConfigError::OutOfRange { path: self.path.clone(), key, value, allowed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REST: &str = "[encoder]\nmanifest = \"e.toml\"\n[recognition]\nmatch_threshold = 0.5\n";

    fn parse(detector: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("[detector]\n{detector}\n{REST}"), Path::new("/etc/edgeid/c.toml"))
    }

    #[test]
    fn detector_kinds_and_the_table_from_before_kinds() {
        // Written before detectors had kinds: still MTCNN.
        let c = parse("pnet = \"p.toml\"\nrnet = \"r.toml\"\nonet = \"o.toml\"").unwrap();
        let DetectorConfig::Mtcnn(m) = &c.detector else { panic!("{:?}", c.detector) };
        assert_eq!(m.pnet, Path::new("/etc/edgeid/p.toml"));
        assert_eq!(c.detector.min_score(), 0.9);
        let c = parse("kind = \"blazeface\"\nmodel = \"b.toml\"\ntiles = 2").unwrap();
        let DetectorConfig::Blazeface(b) = &c.detector else { panic!("{:?}", c.detector) };
        assert_eq!(
            (b.model.as_path(), b.tiles, b.min_score),
            (Path::new("/etc/edgeid/b.toml"), 2, 0.5)
        );
        assert_eq!(c.manifests()[0], Path::new("/etc/edgeid/b.toml"));
    }

    #[test]
    fn a_bad_detector_key_is_named() {
        let err = |d: &str| parse(d).unwrap_err().to_string();
        let e = err("kind = \"blazeface\"\nmodel = \"b.toml\"\nnms = \"high\"");
        assert!(e.contains("`detector.nms = \"high\"`"), "{e}");
        let e = err("kind = \"blazeface\"\nmodel = \"b.toml\"\npnet = \"p.toml\"");
        assert!(e.contains("unknown field `pnet`"), "{e}");
        let e = err("kind = \"retina\"\nmodel = \"b.toml\"");
        assert!(e.contains("detector.kind = \"retina\" is not a detector kind"), "{e}");
        let e = err("model = \"b.toml\"");
        assert!(e.contains("needs `kind`"), "{e}");
        let e = err("kind = \"blazeface\"\nmodel = \"b.toml\"\nnms = 1.5");
        assert!(e.contains("detector.nms = 1.5 is out of range"), "{e}");
    }

    /// Regression: durations beyond what `Duration` holds (a huge `retry_max_s` or
    /// `audit.every_hours`, a replay `fps` near 0) were accepted and panicked in the daemon.
    #[test]
    fn regression_durations_the_daemon_cannot_hold_are_refused() {
        let with = |extra: &str| {
            let text =
                format!("[detector]\nkind = \"blazeface\"\nmodel = \"b.toml\"\n{REST}{extra}");
            Config::parse(&text, Path::new("/etc/edgeid/c.toml"))
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let e = with("[daemon]\nretry_max_s = 1e30\n").unwrap_err();
        assert!(
            e.contains("daemon.retry_max_s = 1000000000000000000000000000000 is out of range"),
            "{e}"
        );
        let e =
            with("[audit]\nset = \"s\"\nbaseline = \"pixels\"\nevery_hours = 1e12\n").unwrap_err();
        assert!(e.contains("audit.every_hours") && e.contains("8760"), "{e}");
        let replay = |fps: &str| {
            with(&format!(
                "[[sources]]\nkind = \"replay\"\nname = \"r\"\npath = \"d\"\nfps = {fps}\n"
            ))
        };
        let e = replay("1e-30").unwrap_err();
        assert!(e.contains("sources.fps") && e.contains("0.01 to 1000"), "{e}");
        assert!(replay("0").is_ok() && replay("4").is_ok());
        assert!(with("[daemon]\nretry_max_s = 60\n").is_ok());
    }
}
