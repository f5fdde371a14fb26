//! The `edgeid` command line: parses arguments, calls the library, prints reports.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use edgeid::app;
use edgeid::config::Config;

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
        #[arg(required = true)]
        images: Vec<PathBuf>,
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
enum GalleryAction {
    /// List enrolled identities.
    List,
    /// Remove an identity and all its templates.
    Remove { name: String },
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
    let cfg = Config::load(&cli.config)?;
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
        Command::Identify { gallery, crops, images } => {
            let mut identifier = app::Identifier::new(&cfg, &gallery_or_default(gallery), crops)?;
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

fn fmt_box(b: &[f32; 4]) -> String {
    format!("[{:.0}, {:.0}, {:.0}, {:.0}]", b[0], b[1], b[2], b[3])
}

fn fmt_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_report(r: &app::ImageReport) {
    println!("{} ({}×{}): {} face(s)", r.image, r.width, r.height, r.faces.len());
    for (i, f) in r.faces.iter().enumerate() {
        let who = match (&f.identity, f.similarity, &f.nearest) {
            (Some(name), Some(s), _) => format!("{name} (similarity {s:.3})"),
            (None, Some(s), Some(nearest)) => {
                format!("unknown (nearest {nearest}, similarity {s:.3})")
            }
            _ => "unknown (gallery empty)".to_string(),
        };
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
