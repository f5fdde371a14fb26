//! The `edgeid` command line, a thin layer over the library: arguments (`args`), what is printed
//! (`render`: JSON or text for every report), the daemon's signals (`signals`); this file only
//! calls the library for each command and hands the report to the renderer.

mod args;
mod logging;
mod render;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use args::{
    Cli, Command, FleetAction, GalleryAction, JournalAction, ModelsAction, PrototypesAction,
    TokenAction,
};
use edgeid::app;
use edgeid::config::Config;
use edgeid::journal::Journal;
use render::Out;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out { json: cli.json };
    // edgeid's own INFO (start, reloads, decisions' context) by default, its dependencies'
    // WARN: tract alone writes tens of thousands of debug lines. RUST_LOG overrides.
    let level = match cli.verbose {
        0 => "warn,edgeid=info",
        1 => "warn,edgeid=debug",
        _ => "debug",
    };
    logging::init(level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            out.error(None, &e);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = Out { json: cli.json };
    match cli.command {
        Command::Run { max_frames } => {
            let control = signals::control()?;
            let options = edgeid::daemon::RunOptions { max_frames };
            let summary = edgeid::daemon::run(&cli.config, &options, &control)?;
            out.emit(&summary)?;
            if summary.restart {
                return Err(restart());
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Models { action: ModelsAction::List { dir } } => {
            signals::quiet_on_closed_stdout();
            let list = match dir {
                Some(dir) => models_in(&dir)?,
                None => {
                    edgeid::runtime::model_licences(&edgeid::runtime::load_config(&cli.config)?)
                }
            };
            out.emit(&render::ModelList(list))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Models { action } => {
            signals::quiet_on_closed_stdout();
            out.emit(&models(action)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => signals::quiet_on_closed_stdout(),
    }
    let cfg = edgeid::runtime::load_config(&cli.config)?;
    let gallery_or_default = |g: Option<PathBuf>| g.unwrap_or_else(|| cfg.gallery.path.clone());
    match cli.command {
        Command::Enroll { gallery, name, force, images } => {
            let gallery = gallery_or_default(gallery);
            out.emit(&app::enroll_with(&cfg, &gallery, &name, &images, force)?)?;
        }
        Command::Identify { gallery, crops, tags, images } => {
            let mut identifier = app::Identifier::new(&cfg, &gallery_or_default(gallery), crops)?;
            if tags {
                identifier = identifier.with_tags(&cfg)?;
            }
            return each_image(out, &images, |path| out.emit(&identifier.identify(path)?));
        }
        Command::Eval { dataset, pairs: Some(pairs), .. } => {
            out.emit(&edgeid::eval::pairs::evaluate(&cfg, &dataset, &pairs, !cli.json)?)?;
        }
        Command::Eval { dataset, report, track_frames, pairs: None } => {
            let options = edgeid::eval::dataset::EvalOptions { track_frames };
            let r = edgeid::eval::dataset::evaluate_with(&cfg, &dataset, &options, !cli.json)?;
            if let Some(path) = &report {
                out.written(&edgeid::eval::report::write(&r, path)?);
            }
            out.emit(&r)?;
        }
        Command::Audit { encoder, baseline, report, no_journal } => {
            let journal = if no_journal { None } else { Some(Journal::open(&cfg.daemon.journal)?) };
            let req = edgeid::audit::Request { encoder, baseline, progress: !cli.json };
            let r = edgeid::audit::run(&cfg, &req, journal.as_ref())?;
            out.emit(&r)?;
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
                out.written(&edgeid::audit::report::write(&history, path)?);
            }
            let drifted = r.drift.as_ref().is_some_and(|d| d.alert);
            return Ok(if r.alert || drifted { ExitCode::from(2) } else { ExitCode::SUCCESS });
        }
        Command::Calibrate {
            dataset,
            pad: true,
            target_bpcer,
            target_apcer,
            track_frames,
            fit_fusion,
            ..
        } => {
            use edgeid::eval::pad::PadTarget;
            let target = match (target_bpcer, target_apcer) {
                (Some(b), None) => PadTarget::Bpcer(b),
                (None, Some(a)) => PadTarget::Apcer(a),
                _ => anyhow::bail!("calibrate --pad needs --target-bpcer RATE or --target-apcer RATE (e.g. --target-bpcer 0.05)"),
            };
            out.emit(&edgeid::eval::calibrate_pad(
                &cfg,
                &cli.config,
                &dataset,
                target,
                track_frames,
                fit_fusion,
                !cli.json,
            )?)?;
        }
        Command::Calibrate { dataset, target_fmr, .. } => {
            out.emit(&edgeid::eval::calibrate(
                &cfg,
                &cli.config,
                &dataset,
                target_fmr,
                !cli.json,
            )?)?;
        }
        Command::Ship { once } => {
            let fleet = app::fleet_config(&cfg)?;
            let mut shipper = edgeid::fleet::ship::Shipper::new(
                fleet,
                &cfg.daemon.device_id(),
                &cfg.daemon.journal,
                &cfg.gallery.path,
            )?;
            if once {
                let round = shipper.round(None)?;
                out.emit(&round)?;
                return Ok(if round.problem.is_some() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
            let control = signals::control()?;
            let status = edgeid::fleet::FleetStatus::default();
            shipper.run(&status, &control.stop);
        }
        Command::Fleet { action } => return fleet(out, &cfg, action),
        Command::Capture { source, label, subject, frames, every_ms, out: folder } => {
            let Some(config) = cfg.sources.iter().find(|s| s.name() == source) else {
                let names: Vec<&str> = cfg.sources.iter().map(|s| s.name()).collect();
                anyhow::bail!(
                    "config {}: no [[sources]] named `{source}` (there are: {}); name one of them with --source",
                    cli.config.display(),
                    names.join(", ")
                );
            };
            let mut opened = config.open().with_context(|| format!("source `{source}`"))?;
            let recording = edgeid::capture::record::record(
                opened.as_mut(),
                &folder,
                &label,
                &subject,
                frames,
                every_ms,
            )?;
            out.emit(&recording)?;
        }
        Command::Tag { images } => {
            let mut tagger = edgeid::pipeline::tagger(&cfg)?;
            return each_image(out, &images, |path| {
                let frame = edgeid::capture::load_image(path)?;
                let tags = tagger.tag(&frame.image)?;
                out.emit(&render::Tagged { image: path.display().to_string(), tags: &tags })
            });
        }
        Command::Prototypes { action: PrototypesAction::Build { dir, output } } => {
            let bank = app::build_prototypes(&cfg, &dir, &output)?;
            out.emit(&render::BankWritten { bank: &bank, file: &output })?;
        }
        Command::Bench { image, backends, models, runs, gallery, streams, report } => {
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
            anyhow::ensure!(
                streams.iter().all(|&k| (1..=64).contains(&k)),
                "--streams: each count from 1 to 64 cameras"
            );
            let opts =
                edgeid::bench::Options { image, runs, backends: kinds, models, gallery, streams };
            let r = edgeid::bench::run(&cfg, &opts, !cli.json)?;
            if let Some(path) = &report {
                out.written(&edgeid::bench::report::write(&r, path)?);
            }
            out.emit(&r)?;
        }
        Command::Morph { a, b, output, alpha } => {
            let report = app::make_morph(&cfg, &a, &b, &output, alpha)?;
            out.emit(&render::Morphed { report: &report, a: &a, b: &b })?;
        }
        Command::Run { .. } | Command::Models { .. } => unreachable!("handled above"),
        Command::Journal { journal, action } => {
            let path = journal.unwrap_or_else(|| cfg.daemon.journal.clone());
            if let JournalAction::Anchor = action {
                let (_, tables) = Journal::accept_unanchored(&path)?;
                for t in &tables {
                    println!(
                        "{}: {} record(s), chain intact, head {} anchored",
                        t.table, t.records, t.head
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let journal = Journal::open_existing(&path)?;
            let (entries, follow) = match action {
                JournalAction::Tail { lines } => (journal.tail(lines)?, false),
                JournalAction::Export { since: Some(since), follow, .. } => {
                    (journal.since(parse_since(&since)?)?, follow)
                }
                JournalAction::Export { after_id, follow, .. } => {
                    (journal.after(after_id.unwrap_or(0), usize::MAX)?, follow)
                }
                JournalAction::Verify => return verify_journal(&journal, &path, out),
                JournalAction::Anchor => unreachable!("handled above"),
                JournalAction::Marks => {
                    for mark in journal.wrong_marks(0, i64::MAX)? {
                        out.emit(&mark)?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            for e in &entries {
                out.emit(e)?;
            }
            if follow {
                let last = entries.last().map_or_else(|| journal.last_id(), |e| Ok(e.id))?;
                follow_journal(&journal, last, out)?;
            }
        }
        Command::Token { tokens, action } => {
            use edgeid::daemon::api::tokens::{self, Scope};
            let path = match (tokens, &cfg.api) {
                (Some(p), _) => p,
                (None, Some(api)) => api.tokens.clone(),
                (None, None) => anyhow::bail!(
                    "config {} has no [api] section; add one (see configs/kiosk.toml) or pass --tokens FILE",
                    cli.config.display()
                ),
            };
            match action {
                TokenAction::Add { name, scope } => {
                    let scope = Scope::parse(&scope).expect("clap checked the scope");
                    let token = tokens::add(&path, &name, scope)?;
                    if !cli.json {
                        eprintln!(
                            "token `{name}` ({}) added to {}; it is shown only now (on stdout), keep it",
                            scope.as_str(),
                            path.display()
                        );
                    }
                    out.emit(&render::NewToken { name: &name, scope, token: &token })?;
                }
                TokenAction::List => {
                    for t in tokens::list(&path)? {
                        out.emit(&t)?;
                    }
                }
                TokenAction::Remove { name } => {
                    if !tokens::remove(&path, &name)? {
                        anyhow::bail!("no token named `{name}` in {}", path.display());
                    }
                    out.emit(&render::Removed { removed: &name, gallery: &path })?;
                }
            }
        }
        Command::Gallery { gallery, action } => {
            let gallery = gallery_or_default(gallery);
            match action {
                GalleryAction::List => {
                    let ids = app::gallery_list(&cfg, &gallery)?;
                    if ids.is_empty() && !cli.json {
                        println!("{}: nobody enrolled", gallery.display());
                    }
                    for id in &ids {
                        out.emit(id)?;
                    }
                }
                GalleryAction::Export { key, output } => {
                    let (identities, templates) =
                        app::gallery_export(&cfg, &gallery, &key, &output)?;
                    let what = "exported";
                    out.emit(&render::Transfer { what, identities, templates, file: &output })?;
                }
                GalleryAction::Import { key, file, force } => {
                    let (identities, templates) =
                        app::gallery_import(&cfg, &gallery, &key, &file, force)
                            .with_context(|| format!("importing into {}", gallery.display()))?;
                    let what = "imported";
                    out.emit(&render::Transfer { what, identities, templates, file: &gallery })?;
                }
                GalleryAction::Reencode => {
                    out.emit(
                        &app::gallery_reencode(&cfg, &gallery)
                            .with_context(|| format!("re-encoding {}", gallery.display()))?,
                    )?;
                }
                GalleryAction::Seal => {
                    let sealed = app::gallery_seal(&cfg, &gallery)?;
                    out.emit(&render::Sealed { sealed, gallery: &gallery })?;
                }
                GalleryAction::Remove { name } => {
                    app::gallery_remove(&cfg, &gallery, &name)
                        .with_context(|| format!("removing `{name}`"))?;
                    out.emit(&render::Removed { removed: &name, gallery: &gallery })?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `each` on every image; one bad image does not hide the results of the others (it is
/// reported on stderr) and the exit code says whether any failed.
fn each_image(
    out: Out,
    images: &[PathBuf],
    mut each: impl FnMut(&std::path::Path) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for path in images {
        if let Err(e) = each(path) {
            out.error(Some(path), &e);
            failed += 1;
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
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
        return Ok(edgeid::clock::now_ms() - d.as_millis() as i64);
    }
    anyhow::bail!("--since {s:?} is not a time: give RFC 3339 (2026-11-23T08:00:00Z), Unix seconds, or a duration ago (90m, 2h)")
}

/// Every manifest (`*.toml` of a model) in a folder, with its licence; a file that is not a
/// manifest is named and refused.
fn models_in(dir: &std::path::Path) -> anyhow::Result<Vec<edgeid::runtime::ModelLicence>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the models folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| Ok(edgeid::runtime::ModelLicence::of(&edgeid::manifest::Manifest::load(p)?)))
        .collect()
}

fn models(action: ModelsAction) -> anyhow::Result<render::PublicKey> {
    Ok(match action {
        ModelsAction::List { .. } => unreachable!("listed before"),
        ModelsAction::Keygen { secret } => render::PublicKey {
            public_key: edgeid::trust::keygen(&secret)?,
            what: format!("secret key {}", secret.display()),
        },
        ModelsAction::Sign { secret, output, manifests } => render::PublicKey {
            public_key: edgeid::trust::SignedSet::sign(&output, &manifests, &secret)?,
            what: format!("{} manifest(s) signed into {}", manifests.len(), output.display()),
        },
    })
}

/// `journal export --follow`: prints each decision journaled after record `last` as it comes
/// (the journal is read again every 250 ms; WAL lets it read while the daemon writes), until
/// interrupted or until whoever reads the output closes it.
fn follow_journal(journal: &Journal, mut last: i64, out: Out) -> anyhow::Result<()> {
    use render::Text;
    use std::io::Write;
    let mut stdout = std::io::stdout();
    loop {
        for e in journal.after(last, 1000)? {
            let line = if out.json { serde_json::to_string(&e)? } else { e.text() };
            if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
                return Ok(());
            }
            last = e.id;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn verify_journal(journal: &Journal, path: &std::path::Path, out: Out) -> anyhow::Result<ExitCode> {
    let tables = journal.verify()?;
    let anchor = edgeid::journal::anchor::path_for(path);
    if !anchor.exists() && tables.iter().any(|t| t.records > 0) {
        log::warn!(
            "journal {}: no head anchor {} beside it, so records removed from the end would not show here; compare the heads below with a copy noted elsewhere (the fleet's)",
            path.display(),
            anchor.display()
        );
    }
    if out.json {
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
        if !out.json {
            println!("{}: {} record(s), chain intact, head {}", t.table, t.records, t.head);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts this process again with the same arguments, in place (the same process id, so a
/// service manager sees no exit); returns only if that failed.
fn restart() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return anyhow::anyhow!("restarting on the applied config offer: this program's path is unknown ({e}); start edgeid again"),
    };
    let e = std::process::Command::new(&exe).args(std::env::args_os().skip(1)).exec();
    anyhow::anyhow!(
        "restarting on the applied config offer: {} cannot be run ({e}); start edgeid again",
        exe.display()
    )
}

fn fleet(out: Out, cfg: &Config, action: FleetAction) -> anyhow::Result<ExitCode> {
    use edgeid::fleet::{central, status};
    if let FleetAction::DoorRole { device } = &action {
        if device.trim().is_empty() {
            anyhow::bail!("fleet door-role: give the door's name (its daemon.device)");
        }
        print!("{}", central::door_role_sql(device));
        return Ok(ExitCode::SUCCESS);
    }
    let fleet = app::fleet_config(cfg)?;
    match action {
        FleetAction::DoorRole { .. } => unreachable!("handled above"),
        FleetAction::Migrate => {
            let mut db = central::connect(fleet)?;
            let applied = central::migrate(&mut db)?;
            // The publisher's side is set up here too: the key changes are sealed under,
            // to be copied to every device.
            let transport_key = match &fleet.transport_key {
                Some(_) => {
                    Some(edgeid::fleet::channel::transport_key(fleet, true)?.path().to_path_buf())
                }
                None => None,
            };
            out.emit(&render::Migrated {
                applied,
                schema: central::schema_version(),
                transport_key,
            })?;
        }
        FleetAction::Status => {
            let report = status::report(fleet)?;
            out.emit(&report)?;
            if report.problems() > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        FleetAction::Enroll { name, signing_key, images } => {
            out.emit(&app::fleet_enroll(cfg, &name, &images, &signing_key)?)?;
        }
        FleetAction::Remove { name, signing_key } => {
            out.emit(&app::fleet_remove(cfg, &name, &signing_key)?)?;
        }
        FleetAction::Offer { dir, signing_key } => {
            out.emit(&app::fleet_offer(cfg, &dir, &signing_key)?)?;
        }
        FleetAction::Republish => {
            let (changes, config_offer) = edgeid::fleet::republish::republish(fleet)?;
            out.emit(&render::Republished { changes, config_offer })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
