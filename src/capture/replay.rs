//! Replay: recorded images played back as a camera, at a given rate or as fast as possible.
//! Integrators replay recorded sessions with it, and the tests drive the daemon with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::decode::load_image;
use super::frame::{CaptureError, Frame, Source};
use crate::clock::now_ms;

const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "JPG"];

pub struct ReplaySource {
    name: String,
    path: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    seq: u64,
    /// Time between frames; `None` for as fast as possible.
    interval: Option<Duration>,
    looping: bool,
    due: Option<Instant>,
}

/// The images of a list file: one path per line, relative to `dir`; `#` starts a comment.
pub fn parse_list(text: &str, dir: &Path) -> Vec<PathBuf> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| dir.join(l))
        .collect()
}

impl ReplaySource {
    /// A folder (its images, sorted by name) or a list file (one path per line, relative to
    /// the list's folder; `#` starts a comment; a path may repeat to hold a scene longer).
    pub fn open(
        name: &str,
        path: &Path,
        fps: f32,
        looping: bool,
    ) -> Result<ReplaySource, CaptureError> {
        let err = |message: String| CaptureError::Replay { path: path.to_path_buf(), message };
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| err(format!("cannot list the folder: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| IMAGE_EXTENSIONS.iter().any(|e| x == *e)))
                .collect();
            files.sort();
            files
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(format!("cannot read it ({e}); give a folder of images or a list file"))
            })?;
            parse_list(&text, path.parent().unwrap_or(Path::new(".")))
        };
        if files.is_empty() {
            return Err(err("it holds no image (jpg, png, bmp)".into()));
        }
        if !(fps.is_finite() && fps >= 0.0) {
            return Err(err(format!(
                "fps = {fps}: give 0 (as fast as possible) or a positive rate"
            )));
        }
        let interval = (fps > 0.0).then(|| Duration::from_secs_f32(1.0 / fps));
        Ok(ReplaySource {
            name: name.to_string(),
            path: path.to_path_buf(),
            files,
            next: 0,
            seq: 0,
            interval,
            looping,
            due: None,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl Source for ReplaySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.next == self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        if let (Some(interval), Some(due)) = (self.interval, self.due) {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            self.due = Some(due.max(now) + interval);
        } else if let Some(interval) = self.interval {
            self.due = Some(Instant::now() + interval);
        }
        let file = &self.files[self.next];
        self.next += 1;
        let mut frame = load_image(file).map_err(|e| CaptureError::Replay {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        frame.source = self.name.clone();
        frame.seq = self.seq;
        frame.timestamp_ms = now_ms();
        self.seq += 1;
        Ok(Some(frame))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn is_live(&self) -> bool {
        self.interval.is_some()
    }
}
