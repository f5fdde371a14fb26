//! The `edgeid` command line: parses arguments, calls the library, prints reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use edgeid::app;
use edgeid::config::Config;
use edgeid::daemon;
use edgeid::journal::Journal;

#[derive(Parser)]
#[command(
    name = "edgeid",
    version,
    about = "Edge biometric runtime: detect, align, encode and identify faces on ONNX models"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Machine-readable output: one JSON object per line on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol the largest face of each image under a name.
    Enroll {
        /// Gallery database (default: the config's gallery.path).
        #[arg(long)]
        gallery: Option<PathBuf>,
        #[arg(long)]
        name: String,
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
        /// Also write a Markdown report with SVG charts (DET curve, score histograms) here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Set recognition.match_threshold in the config file to the threshold that reaches a target
    /// FMR on a labelled folder (laid out as for eval).
    Calibrate {
        #[arg(long)]
        dataset: PathBuf,
        #[arg(long, default_value_t = 1e-3)]
        target_fmr: f32,
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
    /// Manage enrolled identities.
    Gallery {
        #[arg(long, global = true)]
        gallery: Option<PathBuf>,
        #[command(subcommand)]
        action: GalleryAction,
    },
}

#[derive(Subcommand)]
enum JournalAction {
    /// The last decisions.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Every decision since a time: RFC 3339 (2026-11-23T08:00:00Z), Unix seconds, or a
    /// duration ago (90m, 2h, 7days).
    Export {
        #[arg(long)]
        since: String,
    },
    /// Check the hash chain of every decision and audit record; report the first broken link
    /// (exit 1) or each table's head hash, to be noted elsewhere.
    Verify,
}

#[derive(Subcommand)]
enum ModelsAction {
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
enum PrototypesAction {
    /// Build a bank from DIR/<label>/*.jpg|png (each image embedded whole).
    Build {
        dir: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum GalleryAction {
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
        file: PathBuf,
    },
    /// Encode every identity again under the config's encoder, from the face crops kept at
    /// enrolment (gallery.keep_crops), in one transaction: all templates move or none. For a
    /// change of encoder; the photos are not needed.
    Reencode,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { max_frames } => return run_daemon(&cli.config, max_frames, cli.json),
        Command::Models { action } => return models(action, cli.json),
        _ => {}
    }
    let cfg = Config::load_verified(&cli.config)?;
    let gallery_or_default = |g: Option<PathBuf>| g.unwrap_or_else(|| cfg.gallery.path.clone());
    match cli.command {
        Command::Enroll { gallery, name, images } => {
            let report = app::enroll(&cfg, &gallery_or_default(gallery), &name, &images)?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for t in &report.templates {
                    let others = t.faces_in_image.saturating_sub(1);
                    let note = if others > 0 {
                        format!(" ({others} smaller faces ignored)")
                    } else {
                        String::new()
                    };
                    println!(
                        "{}: enrolled face {} score {:.3}{note}",
                        t.image,
                        fmt_box(&t.face.bbox),
                        t.face.score
                    );
                }
                println!(
                    "{} enrolled with {} template(s) in {}",
                    report.name,
                    report.templates.len(),
                    report.gallery.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Identify { gallery, crops, tags, images } => {
            let mut identifier = app::Identifier::new(&cfg, &gallery_or_default(gallery), crops)?;
            if tags {
                identifier = identifier.with_tags(&cfg)?;
            }
            let mut failed = 0;
            for path in &images {
                // One bad image does not hide the results of the others; the exit code says.
                match identifier.identify(path) {
                    Ok(report) if cli.json => println!("{}", serde_json::to_string(&report)?),
                    Ok(report) => print_report(&report),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        failed += 1;
                    }
                }
            }
            Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Eval { dataset, report } => {
            let r = edgeid::eval::dataset::evaluate(&cfg, &dataset, !cli.json)?;
            if let Some(path) = &report {
                let files = edgeid::eval::report::write(&r, path)?;
                if !cli.json {
                    print_written(&files);
                }
            }
            if cli.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_eval(&r);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { encoder, baseline, report, no_journal } => {
            let journal = if no_journal { None } else { Some(Journal::open(&cfg.daemon.journal)?) };
            let req = edgeid::audit::Request { encoder, baseline, progress: !cli.json };
            let r = edgeid::audit::run(&cfg, &req, journal.as_ref())?;
            if cli.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_audit(&r);
            }
            if let Some(path) = &report {
                // Records an older edgeid wrote in another shape are left out of the history.
                let mut history: Vec<edgeid::audit::AuditReport> = match &journal {
                    Some(j) => {
                        j.audits()?.iter().filter_map(|s| serde_json::from_str(s).ok()).collect()
                    }
                    None => Vec::new(),
                };
                if history.last().is_none_or(|h| h.time_ms != r.time_ms) {
                    history.push(r.clone());
                }
                let files = edgeid::audit::report::write(&history, path)?;
                if !cli.json {
                    print_written(&files);
                }
            }
            let drifted = r.drift.as_ref().is_some_and(|d| d.alert);
            Ok(if r.alert || drifted { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Calibrate { dataset, target_fmr } => {
            let c = edgeid::eval::calibrate(&cfg, &cli.config, &dataset, target_fmr, !cli.json)?;
            if cli.json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                println!(
                    "{}: recognition.match_threshold {} -> {:.4} (FMR {:.2e}, FNMR {:.4} on {} impostor and {} genuine pairs)",
                    c.config.display(),
                    c.previous_threshold,
                    c.point.threshold,
                    c.point.false_accept,
                    c.point.false_reject,
                    c.point.comparisons,
                    c.genuine
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tag { images } => {
            let mut tagger = edgeid::pipeline::tagger(&cfg)?;
            let mut failed = 0;
            for path in &images {
                let report = edgeid::capture::load_image(path)
                    .map_err(anyhow::Error::from)
                    .and_then(|f| tagger.tag(&f.image));
                match report {
                    Ok(r) if cli.json => println!(
                        "{}",
                        serde_json::json!({ "image": path.display().to_string(), "tags": r })
                    ),
                    Ok(r) => println!("{}: {}", path.display(), fmt_tags(&r.tags)),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        failed += 1;
                    }
                }
            }
            Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Prototypes { action: PrototypesAction::Build { dir, output } } => {
            let bank = app::build_prototypes(&cfg, &dir, &output)?;
            if cli.json {
                println!("{}", serde_json::to_string(&bank)?);
            } else {
                for p in &bank.prototypes {
                    println!("{}: {} example(s)", p.label, p.examples);
                }
                println!("wrote {} (encoder {})", output.display(), bank.encoder);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { image, backends, models, runs, gallery, report } => {
            let mut kinds = Vec::new();
            for b in &backends {
                if b == "all" {
                    kinds.extend(edgeid::bench::loadable(
                        &edgeid::infer::BackendKind::built(),
                        &cfg.encoder.manifest,
                    )?);
                } else {
                    kinds.push(b.parse().map_err(|e: String| anyhow::anyhow!("--backend: {e}"))?);
                }
            }
            anyhow::ensure!(runs >= 1, "--runs must be at least 1");
            let opts = edgeid::bench::Options { image, runs, backends: kinds, models, gallery };
            let r = edgeid::bench::run(&cfg, &opts, !cli.json)?;
            if let Some(path) = &report {
                let files = edgeid::bench::report::write(&r, path)?;
                if !cli.json {
                    print_written(&files);
                }
            }
            if cli.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", edgeid::bench::report::markdown(&r, None));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Morph { a, b, output, alpha } => {
            let r = app::make_morph(&cfg, &a, &b, &output, alpha)?;
            if cli.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: morph of {} face {} and {} face {}, alpha {}",
                    r.output.display(),
                    a.display(),
                    fmt_box(&r.face_a.bbox),
                    b.display(),
                    fmt_box(&r.face_b.bbox),
                    r.alpha
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { .. } | Command::Models { .. } => unreachable!("handled above"),
        Command::Journal { journal, action } => {
            let path = journal.unwrap_or_else(|| cfg.daemon.journal.clone());
            let journal = Journal::open_existing(&path)?;
            let entries = match action {
                JournalAction::Tail { lines } => journal.tail(lines)?,
                JournalAction::Export { since } => journal.since(parse_since(&since)?)?,
                JournalAction::Verify => return verify_journal(&journal, &path, cli.json),
            };
            for e in &entries {
                if cli.json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    println!("{}", fmt_entry(e));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gallery { gallery, action } => {
            let gallery = gallery_or_default(gallery);
            match action {
                GalleryAction::List => {
                    let ids = app::gallery_list(&cfg, &gallery)?;
                    if cli.json {
                        for id in &ids {
                            println!("{}", serde_json::to_string(id)?);
                        }
                    } else if ids.is_empty() {
                        println!("{}: nobody enrolled", gallery.display());
                    } else {
                        for id in &ids {
                            println!(
                                "{}\t{} template(s)\tsince {}",
                                id.name,
                                id.templates,
                                fmt_time(id.enrolled_at)
                            );
                        }
                    }
                }
                GalleryAction::Export { key, output } => {
                    let (ids, templates) = app::gallery_export(&cfg, &gallery, &key, &output)?;
                    report_transfer(cli.json, "exported", ids, templates, &output);
                }
                GalleryAction::Import { key, file } => {
                    let (ids, templates) = app::gallery_import(&cfg, &gallery, &key, &file)
                        .with_context(|| format!("importing into {}", gallery.display()))?;
                    report_transfer(cli.json, "imported", ids, templates, &gallery);
                }
                GalleryAction::Reencode => {
                    let r = app::gallery_reencode(&cfg, &gallery)
                        .with_context(|| format!("re-encoding {}", gallery.display()))?;
                    if cli.json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else if r.templates == 0 && r.from == r.to {
                        println!("{}: already encoded with {}", r.gallery.display(), r.to);
                    } else {
                        println!(
                            "{}: {} template(s) of {} identities re-encoded from {} to {}",
                            r.gallery.display(),
                            r.templates,
                            r.identities,
                            r.from,
                            r.to
                        );
                    }
                }
                GalleryAction::Remove { name } => {
                    app::gallery_remove(&cfg, &gallery, &name)
                        .with_context(|| format!("removing `{name}`"))?;
                    if cli.json {
                        println!("{}", serde_json::json!({ "removed": name }));
                    } else {
                        println!("removed {name} from {}", gallery.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the daemon with SIGINT/SIGTERM stopping it and SIGHUP reloading it.
fn run_daemon(
    config: &std::path::Path,
    max_frames: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let control = daemon::Control::default();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, control.stop.clone())
            .context("installing signal handlers")?;
    }
    let reload = control.reload.clone();
    // signal-hook sets a flag; this thread turns each SIGHUP into a reload request.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    let stop = control.stop.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if hup.swap(false, Ordering::SeqCst) {
                reload.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    let summary = daemon::run(config, &daemon::RunOptions { max_frames }, &control)?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for c in &summary.cameras {
            println!(
                "{}: {} frames in, {} processed, {} dropped, {} undecodable",
                c.camera, c.frames_in, c.frames_processed, c.frames_dropped, c.frames_bad
            );
        }
        println!("{} decision(s) journaled in {:.1} s", summary.decisions, summary.seconds);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: RFC 3339, Unix seconds, or a duration ago; Unix milliseconds.
fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs * 1000);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(edgeid::capture::now_ms() - d.as_millis() as i64);
    }
    anyhow::bail!("--since {s:?} is not a time: give RFC 3339 (2026-11-23T08:00:00Z), Unix seconds, or a duration ago (90m, 2h)")
}

fn models(action: ModelsAction, json: bool) -> anyhow::Result<ExitCode> {
    let (public_key, what) = match action {
        ModelsAction::Keygen { secret } => {
            (edgeid::trust::keygen(&secret)?, format!("secret key {}", secret.display()))
        }
        ModelsAction::Sign { secret, output, manifests } => (
            edgeid::trust::SignedSet::sign(&output, &manifests, &secret)?,
            format!("{} manifest(s) signed into {}", manifests.len(), output.display()),
        ),
    };
    if json {
        println!("{}", serde_json::json!({ "public_key": public_key }));
    } else {
        println!("{what}\npublic key (trust.public_key): {public_key}");
    }
    Ok(ExitCode::SUCCESS)
}

fn report_transfer(json: bool, what: &str, identities: usize, templates: usize, file: &Path) {
    if json {
        println!(
            "{}",
            serde_json::json!({ what: identities, "templates": templates, "file": file })
        );
    } else {
        println!("{what} {identities} identities ({templates} templates): {}", file.display());
    }
}

fn verify_journal(journal: &Journal, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let tables = journal.verify()?;
    if json {
        println!("{}", serde_json::to_string(&tables)?);
    }
    for t in &tables {
        if let Some(b) = &t.broken {
            anyhow::bail!(
                "journal {}: {} record {}: {}. Keep this file as evidence and start a new \
                 journal (daemon.journal)",
                path.display(),
                t.table,
                b.id,
                b.reason
            );
        }
        if !json {
            println!("{}: {} record(s), chain intact, head {}", t.table, t.records, t.head);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_entry(e: &edgeid::journal::Entry) -> String {
    let d = &e.decision;
    let time = d["time_ms"].as_i64().unwrap_or(0);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(time.max(0) as u64);
    let reasons: Vec<&str> =
        d["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
    let who = match d["identity"].as_str() {
        Some(name) if reasons.is_empty() => name.to_string(),
        Some(name) => format!("{name}, {}", reasons.join(", ")),
        None => reasons.join(", "),
    };
    let live = d["live"].as_f64().map(|l| format!(" live {l:.3}")).unwrap_or_default();
    let bona_fide =
        d["bona_fide"].as_f64().map(|b| format!(" bona fide {b:.3}")).unwrap_or_default();
    let sim = d["similarity"].as_f64().map(|s| format!(" similarity {s:.3}")).unwrap_or_default();
    format!(
        "#{} {} {} track {} {} {}{}{}{} ({} frames)",
        e.id,
        humantime::format_rfc3339_millis(t),
        d["camera"].as_str().unwrap_or(""),
        d["track_id"],
        d["outcome"].as_str().unwrap_or(""),
        who,
        sim,
        live,
        bona_fide,
        d["frames_used"]
    )
}

/// Names the files a `--report` wrote, on stderr.
fn print_written(files: &[PathBuf]) {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    eprintln!("report written: {}", names.join(", "));
}

fn fmt_box(b: &[f32; 4]) -> String {
    format!("[{:.0}, {:.0}, {:.0}, {:.0}]", b[0], b[1], b[2], b[3])
}

fn fmt_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_eval(r: &edgeid::eval::dataset::EvalReport) {
    let c = &r.counts;
    println!(
        "{}: {} identities, {} images; failure to acquire {:.1}% ({}), to enrol {:.1}% ({})",
        r.dataset.display(),
        c.identities,
        c.images,
        100.0 * c.fta_rate,
        c.not_acquired.len(),
        100.0 * c.fte_rate,
        c.not_enrolled.len()
    );
    let v = &r.verification;
    println!(
        "verification: {} genuine, {} impostor pairs; at {}: FMR {:.4}, FNMR {:.4}; EER {:.4} at {:.3}",
        v.genuine, v.impostor, v.threshold, v.fmr, v.fnmr, v.eer, v.eer_threshold
    );
    for p in &v.at_fmr {
        let note = if p.supported { "" } else { " (too few impostor pairs to show this rate)" };
        println!(
            "  FNMR at FMR {:e}: {:.4} (threshold {:.3}, {} impostor pairs){note}",
            p.target, p.false_reject, p.threshold, p.comparisons
        );
    }
    let i = &r.identification;
    println!(
        "identification: {} enrolled, {} mated and {} non-mated searches; at {}: FNIR {:.4}, FPIR {:.4}",
        i.enrolled, i.mated_searches, i.non_mated_searches, i.threshold, i.fnir, i.fpir
    );
    if let Some(p) = &r.pad {
        let a = &p.at_threshold;
        println!(
            "PAD at {}: BPCER {:.4} over {} bona fide; APCER {:?}; ACER {:.4}",
            a.threshold, a.bpcer, p.bona_fide, a.apcer, a.acer
        );
        for o in &p.at_apcer {
            println!("  BPCER at APCER {}: {:.4}", o.target, o.false_reject);
        }
    }
    if let Some(m) = &r.morphs {
        println!(
            "morphs: {}, MMPMR {:.4}; D-EER {} ({} bona fide, {} morph pairs)",
            m.morphs,
            m.mmpmr,
            m.dmad_eer.map(|e| format!("{e:.4}")).unwrap_or_else(|| "n/a".into()),
            m.dmad_bona_fide_pairs,
            m.dmad_morph_pairs
        );
    }
}

fn print_audit(r: &edgeid::audit::AuditReport) {
    println!(
        "audit of {} against {} on {} images ({} per class to train), {:.1} s{}",
        r.encoder.model.id,
        r.baseline.model.id,
        r.images,
        r.encoder.shots,
        r.seconds,
        if r.baseline_cached { "; baseline scores from the journal" } else { "" }
    );
    println!("  task        encoder (NCM)    baseline (NCM)   pixels  retention (NCM)");
    for t in &r.retention {
        println!(
            "  {:<10}  {:.3} ({:.3})    {:.3} ({:.3})    {:.3}   {:5.1}% ({:5.1}%){}",
            t.task,
            t.encoder,
            t.encoder_ncm,
            t.baseline,
            t.baseline_ncm,
            t.pixels,
            100.0 * t.retention,
            100.0 * t.retention_ncm,
            if t.alert { "  ALERT" } else { "" }
        );
    }
    for t in r.encoder.tasks.iter().filter(|t| t.zero_shot.is_some()) {
        println!("  zero-shot {:<10} {:.3}", t.task, t.zero_shot.unwrap_or_default());
    }
    println!(
        "  overall retention {:.1}% (linear probe; alert below {:.0}% on any task, either probe){}",
        100.0 * r.overall_retention,
        100.0 * r.min_retention,
        if r.alert { ": ALERT" } else { "" }
    );
    match &r.drift {
        None => println!("  drift: not enough decisions journaled yet"),
        Some(d) => {
            for m in &d.metrics {
                let median = |m: Option<f32>| m.map_or_else(|| "-".into(), |m| format!("{m:.3}"));
                println!(
                    "  drift {:<15} PSI {:.3} (median {} then, {} now){}",
                    m.metric,
                    m.psi,
                    median(m.reference_median),
                    median(m.current_median),
                    if m.psi >= d.alert_psi { "  ALERT" } else { "" }
                );
            }
        }
    }
}

fn fmt_tags(tags: &[edgeid::tag::Tag]) -> String {
    if tags.is_empty() {
        return "no tags".into();
    }
    tags.iter().map(|t| format!("{} {:.2}", t.label, t.score)).collect::<Vec<_>>().join(", ")
}

fn print_report(r: &app::ImageReport) {
    println!("{} ({}×{}): {} face(s)", r.image, r.width, r.height, r.faces.len());
    if let Some(t) = &r.tags {
        println!("  tags: {}", fmt_tags(&t.tags));
    }
    for (i, f) in r.faces.iter().enumerate() {
        let mut who = match (&f.identity, f.similarity, &f.nearest) {
            (Some(name), Some(s), _) => format!("{name} (similarity {s:.3})"),
            (None, Some(s), Some(nearest)) => {
                format!("unknown (nearest {nearest}, similarity {s:.3})")
            }
            _ => "unknown (gallery empty)".to_string(),
        };
        if let Some(live) = f.live {
            who.push_str(&format!("  live {live:.3}"));
        }
        if let Some(b) = f.bona_fide {
            who.push_str(&format!("  bona fide {b:.3}"));
        }
        who.push_str(&format!("  → {}", f.decision.as_str()));
        if !f.reasons.is_empty() {
            who.push_str(&format!(" ({})", f.reasons.join(", ")));
        }
        let marks: Vec<String> =
            f.face.landmarks.iter().map(|p| format!("({:.0},{:.0})", p[0], p[1])).collect();
        println!(
            "  #{:<2} {} score {:.3}  {}  landmarks {}",
            i + 1,
            fmt_box(&f.face.bbox),
            f.face.score,
            who,
            marks.join(" ")
        );
    }
}
