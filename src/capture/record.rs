//! `edgeid capture`: frames of a configured source written into `edgeid eval`'s layout, so that
//! a site records bona fide captures and its own presentation attacks with the camera the door
//! uses, then measures and calibrates PAD on them (`edgeid eval`, `edgeid calibrate --pad`).
//!
//! Bona fide frames go to `OUT/<subject>/`, attacks to `OUT/attacks/<label>/`, each named
//! `<subject>_<capture ms>.jpg`: the frames of one recording form one sequence (their names
//! differ only in the final number), which `eval --track-frames` cuts into tracks as the daemon
//! would see them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::frame::Source;

/// What `record` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    pub source: String,
    /// The folder the frames went to.
    pub folder: PathBuf,
    pub label: String,
    pub subject: String,
    pub files: Vec<PathBuf>,
    /// Frames the source delivered that were not kept (between two kept `every_ms` apart).
    pub skipped: u64,
    pub seconds: f64,
}

/// Labels of presentations: `bona_fide`, or an attack kind (a folder of `attacks/`).
pub const BONA_FIDE: &str = "bona_fide";

/// A label or subject becomes a folder or file name: letters, digits, `-` and `_` only.
fn check_name(what: &str, value: &str) -> anyhow::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("{what} {value:?} must be 1 to 64 letters, digits, `-` or `_` (it names a folder or file)");
    }
    Ok(())
}

/// Records `frames` frames of `source`, one at least every `every_ms` (0: every frame), as
/// JPEG (quality 95) under `out` in eval's layout. Refuses to write over an existing file.
pub fn record(
    source: &mut dyn Source,
    out: &Path,
    label: &str,
    subject: &str,
    frames: usize,
    every_ms: u64,
) -> anyhow::Result<Recording> {
    check_name("--label", label)?;
    check_name("--subject", subject)?;
    if frames == 0 {
        bail!("--frames 0 records nothing; give the number of frames to keep");
    }
    let folder =
        if label == BONA_FIDE { out.join(subject) } else { out.join("attacks").join(label) };
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("making the capture folder {}", folder.display()))?;
    let started = Instant::now();
    let (mut files, mut skipped) = (Vec::new(), 0u64);
    let mut last_kept: Option<i64> = None;
    while files.len() < frames {
        let Some(frame) = source.next_frame().with_context(|| {
            format!("reading source `{}` ({} of {frames} frames kept)", source.name(), files.len())
        })?
        else {
            bail!(
                "source `{}` ended after {} of {frames} frames (kept in {}); record fewer frames or loop the replay",
                source.name(),
                files.len(),
                folder.display()
            );
        };
        if last_kept.is_some_and(|t| frame.timestamp_ms - t < every_ms as i64) {
            skipped += 1;
            continue;
        }
        let mut path = folder.join(format!("{subject}_{}.jpg", frame.timestamp_ms));
        let mut n = 1;
        while path.exists() {
            // Two frames in one millisecond (a fast replay): never write over a capture.
            path = folder.join(format!("{subject}_{}{n:03}.jpg", frame.timestamp_ms));
            n += 1;
        }
        let file = std::fs::File::create_new(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, 95)
            .encode_image(&frame.image)
            .with_context(|| format!("writing {}", path.display()))?;
        drop(writer);
        last_kept = Some(frame.timestamp_ms);
        files.push(path);
        if every_ms > 0 && !source.is_live() {
            // A replay delivers at once: pace it, so that `every_ms` means time as for a camera.
            std::thread::sleep(Duration::from_millis(every_ms));
        }
    }
    Ok(Recording {
        source: source.name().to_string(),
        folder,
        label: label.to_string(),
        subject: subject.to_string(),
        files,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}
