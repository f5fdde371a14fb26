//! The command line's arguments (clap): every command, its options and their help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "edgeid",
    version,
    about = "Edge biometric runtime: detect, align, encode and identify faces on ONNX models"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Machine-readable output: one JSON object per line on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (default: edgeid's info, dependencies' warnings; -v edgeid's
    /// debug; -vv everything's debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Enrol the largest face of each image under a name.
    Enroll {
        /// Gallery database (default: the config's gallery.path).
        #[arg(long)]
        gallery: Option<PathBuf>,
        #[arg(long)]
        name: String,
        /// Enrol even a face that matches another identity, or that does not match the
        /// name's templates or the other images (refused otherwise).
        #[arg(long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Find every face in each image and name it against the gallery.
    Identify {
        #[arg(long)]
        gallery: Option<PathBuf>,
        /// Write each face's aligned encoder input as DIR/<image>_face<N>.png.
        #[arg(long, value_name = "DIR")]
        crops: Option<PathBuf>,
        /// Also tag each image with the configured taggers (never part of the decision).
        #[arg(long)]
        tags: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Record frames of a configured source (camera or replay) into eval's layout: bona fide
    /// into OUT/<subject>/, attacks into OUT/attacks/<label>/, for `eval` and `calibrate --pad`.
    Capture {
        /// The `[[sources]]` name to record from.
        #[arg(long)]
        source: String,
        /// `bona_fide`, or the attack kind (`print`, `screen`, `mask`…).
        #[arg(long)]
        label: String,
        /// Who is presented (the live person, or whose face the attack shows).
        #[arg(long)]
        subject: String,
        /// Frames to keep.
        #[arg(long, default_value_t = 20)]
        frames: usize,
        /// Keep at most one frame per this many milliseconds (0: every frame).
        #[arg(long, default_value_t = 0)]
        every_ms: u64,
        /// The dataset folder to write into (made if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Tag each image: objects (and prototype labels, with a bank), with scores.
    Tag {
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Sign the manifests a device may run (config `[trust]`); needs no config.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Prototype banks for tagging in the encoder's embedding space.
    Prototypes {
        #[command(subcommand)]
        action: PrototypesAction,
    },
    /// Error rates on a labelled folder: DIR/<identity>/*.jpg, optional DIR/attacks/<kind>/ and
    /// DIR/morphs/<A>+<B>[~note].jpg.
    Eval {
        #[arg(long)]
        dataset: PathBuf,
        /// LFW's protocol instead of every pair: a pairs file in LFW's `pairs.txt` format (folds
        /// of matched and mismatched pairs; images DATASET/<name>/<name>_NNNN.jpg). Reports
        /// 10-fold accuracy beside FMR/FNMR at the configured threshold.
        #[arg(long, conflicts_with_all = ["report", "track_frames"])]
        pairs: Option<PathBuf>,
        /// Also write a Markdown report with SVG charts (DET curve, score histograms) here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// PAD on tracks of this many consecutive captures of one sequence (their mean score,
        /// as the daemon decides) instead of each capture alone.
        #[arg(long, default_value_t = 1)]
        track_frames: usize,
    },
    /// Set recognition.match_threshold in the config file to the threshold that reaches a target
    /// FMR on a labelled folder (laid out as for eval); with --pad, pad.threshold for a target
    /// BPCER or APCER on its bona fide and attack captures.
    Calibrate {
        #[arg(long)]
        dataset: PathBuf,
        #[arg(long, default_value_t = 1e-3, conflicts_with = "pad")]
        target_fmr: f32,
        /// Calibrate pad.threshold instead (give --target-bpcer or --target-apcer).
        #[arg(long)]
        pad: bool,
        /// The highest PAD threshold that rejects at most this share of bona fide presentations.
        #[arg(long, requires = "pad", conflicts_with = "target_apcer")]
        target_bpcer: Option<f32>,
        /// The lowest PAD threshold at which every attack kind passes at most this share.
        #[arg(long, requires = "pad")]
        target_apcer: Option<f32>,
        /// Decide on tracks of this many consecutive captures (as the daemon does), not each alone.
        #[arg(long, requires = "pad", default_value_t = 1)]
        track_frames: usize,
        /// First fit a logistic fusion of the PAD heads on the captures, and write it too.
        #[arg(long, requires = "pad")]
        fit_fusion: bool,
    },
    /// Generalization audit: how much general visual ability the encoder keeps, per task of
    /// the audit set, against a baseline; drift of the journal's live scores. Recorded in the
    /// journal. Exit status 2 when an alert is raised.
    Audit {
        /// Encoder manifest to audit (default: the config's encoder).
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Baseline manifest, or "pixels" (default: audit.baseline).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Also write a Markdown report with SVG charts, with the journal's audit history.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Neither read nor write the journal (no cached baseline, no drift, no record).
        #[arg(long)]
        no_journal: bool,
    },
    /// Make a landmark-aligned morph of the largest face of A and of B (as morphing attacks
    /// are made), to test the morph checks.
    Morph {
        a: PathBuf,
        b: PathBuf,
        /// Output image, .jpg or .png.
        #[arg(short, long)]
        output: PathBuf,
        /// Share of B in the morph, 0..1.
        #[arg(long, default_value_t = 0.5)]
        alpha: f32,
    },
    /// Measure the runtime on this device: per backend, model load time and per-stage latency
    /// (p50/p95/p99: detect, align, encode, PAD, search, the whole frame), frames per second,
    /// peak memory; per model, latency on each backend (add variants with --model).
    Bench {
        /// A photo with at least one face.
        image: PathBuf,
        /// Backend to measure (repeatable): tract, ort, ort-cuda, ort-tensorrt, auto, or all
        /// (every one this build can load here). Default: the config's.
        #[arg(long = "backend", value_name = "BACKEND")]
        backends: Vec<String>,
        /// Another model manifest to time (repeatable), e.g. models/mobileface-int8.toml.
        #[arg(long = "model", value_name = "MANIFEST")]
        models: Vec<PathBuf>,
        /// Timed runs per figure.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Synthetic templates for the search stage.
        #[arg(long, default_value_t = 10_000)]
        gallery: usize,
        /// Also measure throughput with this many cameras (comma-separated, e.g. 1,2,4): one
        /// pipeline and thread per camera, each replaying the photo.
        #[arg(long, value_delimiter = ',', value_name = "N,...")]
        streams: Vec<usize>,
        /// Also write the report as Markdown with SVG charts beside it.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Run the daemon on the configured sources until SIGINT/SIGTERM (or the sources end).
    Run {
        /// Stop each source after N frames.
        #[arg(long, value_name = "N")]
        max_frames: Option<u64>,
    },
    /// Read the decision journal.
    Journal {
        /// Journal database (default: the config's daemon.journal).
        #[arg(long, global = true)]
        journal: Option<PathBuf>,
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Manage the operator API's bearer tokens (the `[api]` tokens file).
    Token {
        /// Tokens file (default: the config's api.tokens).
        #[arg(long, global = true)]
        tokens: Option<PathBuf>,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Ship the journal's records to the central database ([fleet] database) from where
    /// its copy ends, and report this device: until interrupted, or once. The daemon does the
    /// same while it runs; this is for a device whose daemon is stopped, or a backlog.
    Ship {
        /// One round (everything pending), then exit: 1 if the journal's own verification or
        /// the central copy's chain found a problem (it is reported to the database too).
        #[arg(long)]
        once: bool,
    },
    /// The fleet: the central database's schema, its devices, and gallery changes published
    /// to every device (signed with an ed25519 secret key, `edgeid models keygen`).
    Fleet {
        #[command(subcommand)]
        action: FleetAction,
    },
    /// Manage enrolled identities.
    Gallery {
        #[arg(long, global = true)]
        gallery: Option<PathBuf>,
        #[command(subcommand)]
        action: GalleryAction,
    },
}

#[derive(Subcommand)]
pub enum JournalAction {
    /// The last decisions.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Decisions, oldest first: since a time, or after a record id (each record's `id`; to
    /// ship a journal piece by piece: ids, unlike times, are never shared or reused).
    Export {
        /// RFC 3339 (2026-11-23T08:00:00Z), Unix seconds, or a duration ago (90m, 2h, 7days).
        #[arg(long, required_unless_present = "after_id", conflicts_with = "after_id")]
        since: Option<String>,
        /// Every decision with an id above this one.
        #[arg(long, value_name = "ID")]
        after_id: Option<i64>,
        /// Then keep printing decisions as they are journaled, until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Check the hash chain of every decision and audit record; report the first broken link
    /// (exit 1) or each table's head hash, to be noted elsewhere.
    Verify,
    /// Accept a journal that has no head anchor (`<journal>.head`; an edgeid from before
    /// 2026-12-07 kept none) as it stands: its chains are verified, then its heads anchored.
    /// Without an anchor edgeid refuses to write to a journal that holds records.
    Anchor,
    /// Decisions operators marked wrong (operator API), with who marked them, their note and
    /// who it really was: labelled cases for calibration.
    Marks,
}

#[derive(Subcommand)]
pub enum FleetAction {
    /// Create or upgrade the central database's schema (tables, views), as its owner.
    Migrate,
    /// Print the SQL that makes a door's own database role with exactly the rights shipping
    /// needs (`| psql` as the schema's owner, then set its password with `\password`).
    DoorRole {
        /// The door's `daemon.device` name.
        device: String,
    },
    /// Each device: last contact, gallery version held, records held centrally, lag, and
    /// every problem its chains show (a record edited or removed on the device, the end of
    /// its journal included); exit 1 when there is one.
    Status,
    /// Publish an identity to every device: the largest face of each image, encoded here
    /// with the config's encoder, as the next signed gallery change.
    Enroll {
        #[arg(long)]
        name: String,
        /// The ed25519 secret key whose public key is the devices' fleet.public_key.
        #[arg(long)]
        signing_key: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Remove an identity from every device, as the next signed gallery change.
    Remove {
        name: String,
        #[arg(long)]
        signing_key: PathBuf,
    },
    /// Offer every device a new configuration: DIR holds `edgeid.toml` (only the tables an
    /// offer may set: detector, encoder, recognition, pad, mad, policy, tagger, tracker) and
    /// the files it names. Checked here (over this config) first; each device then checks it
    /// whole, runs its audit on it, and applies it or keeps what it runs.
    Offer {
        dir: PathBuf,
        #[arg(long)]
        signing_key: PathBuf,
    },
    /// Publish every stored gallery change and the latest config offer to the broker again
    /// (retained), e.g. after the broker lost its store or was down during a publish.
    Republish,
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Make a token and print it (the only time it is shown; the file keeps its hash).
    Add {
        name: String,
        /// read: see decisions, the gallery, outputs, identify a photo; enrol: also enrol and
        /// remove people, mark decisions wrong; admin: also reload the configuration.
        #[arg(long, value_parser = ["read", "enrol", "admin"])]
        scope: String,
    },
    /// The tokens' names and scopes.
    List,
    /// Remove a token: it stops working at once, in a running daemon too.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum ModelsAction {
    /// Every model the config runs (or every manifest in DIR): id, role, file, sha256, licence
    /// and source; whether its licence is known to allow selling a device that ships it.
    List {
        /// A folder of manifests to list instead of the config's models.
        dir: Option<PathBuf>,
    },
    /// Write a new ed25519 secret key (mode 0600) and print its public key for
    /// `trust.public_key`. Keep the secret key off the devices.
    Keygen {
        #[arg(long)]
        secret: PathBuf,
    },
    /// Write a signed set of manifests (their sha256, named relative to the set's folder)
    /// for `trust.signed_set`; prints the public key to check it with.
    Sign {
        #[arg(long)]
        secret: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum PrototypesAction {
    /// Build a bank from DIR/<label>/*.jpg|png (each image embedded whole).
    Build {
        dir: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum GalleryAction {
    /// List enrolled identities.
    List,
    /// Remove an identity and all its templates.
    Remove { name: String },
    /// Write every identity and template to a new file, sealed under a transfer key (created,
    /// mode 0600, if it does not exist), to move them to another device or key.
    Export {
        /// Transfer key file; carry it to the other device apart from the export.
        #[arg(long)]
        key: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Add every identity of an export (none if one is already enrolled here), sealed under
    /// this gallery's own key.
    Import {
        #[arg(long)]
        key: PathBuf,
        /// Import templates that fail enrolment's checks (a face enrolled under another name,
        /// templates of one identity unlike each other); logged. A morph is refused regardless.
        #[arg(long)]
        force: bool,
        file: PathBuf,
    },
    /// Encode every identity again under the config's encoder, from the face crops kept at
    /// enrolment (gallery.keep_crops), in one transaction: all templates move or none. For a
    /// change of encoder; the photos are not needed.
    Reencode,
    /// Seal a gallery of plain templates (written before templates were sealed, schema 1) in
    /// place under its key (created 0600 if there is none). Opening such a gallery is refused
    /// otherwise: whoever can write the file could have planted a plain template.
    Seal,
}
