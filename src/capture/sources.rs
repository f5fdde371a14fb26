//! The `[[sources]]` of a config: cameras and recordings, each opened (and opened again after a
//! failure) by the daemon. Network cameras (`rtsp`) and camera pipelines (`gstreamer`) need
//! the `gstreamer` build; the base build refuses them in the config check, by name.

use std::path::PathBuf;

use serde::Deserialize;

use super::frame::{CaptureError, Source};
use super::replay::ReplaySource;
use super::v4l2::{PixelFormat, V4l2Source};

/// One frame source of the daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// A V4L2 camera.
    V4l2 {
        /// Camera name in logs, metrics and the journal.
        name: String,
        device: PathBuf,
        #[serde(default = "default_width")]
        width: u32,
        #[serde(default = "default_height")]
        height: u32,
        /// Frames per second asked of the driver (0: the driver's default).
        #[serde(default)]
        fps: u32,
        /// `MJPEG` or `YUYV`.
        format: PixelFormat,
    },
    /// Recorded images: a folder (sorted by name) or a list file.
    Replay {
        name: String,
        path: PathBuf,
        /// Frames per second; 0 plays as fast as possible.
        #[serde(default)]
        fps: f32,
        /// Start again at the end instead of stopping.
        #[serde(default, rename = "loop")]
        looping: bool,
    },
    /// A network camera's RTSP stream.
    Rtsp(RtspCamera),
    /// A GStreamer pipeline yielding raw video (a Jetson's CSI camera, a board's own decoder).
    Gstreamer {
        name: String,
        /// `gst-launch-1.0` syntax, without the sink: edgeid adds the conversion to RGB and
        /// the appsink.
        pipeline: String,
    },
}

/// An RTSP camera. Its credentials are never part of the URL (which logs and metrics show):
/// the user is `username` and the password is read from `password_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtspCamera {
    pub name: String,
    /// `rtsp://host[:port]/path` (or `rtsps://`).
    pub url: String,
    #[serde(default)]
    pub transport: Transport,
    /// How long the jitter buffer waits for late packets, ms: the latency a frame gains.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: u32,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (one line), readable by the daemon's user only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Frame size handed to the pipeline; 0 keeps the stream's own.
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

/// How RTP reaches the device: interleaved in the RTSP connection (through firewalls and NAT,
/// no loss) or as UDP datagrams (less delay on a clean network, lost packets are lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

impl RtspCamera {
    /// What is wrong with the camera's settings, as the fix to make; `None` when sound.
    pub fn problem(&self) -> Option<String> {
        let Some(rest) =
            self.url.strip_prefix("rtsp://").or_else(|| self.url.strip_prefix("rtsps://"))
        else {
            return Some(format!("url = {:?} is not an rtsp:// or rtsps:// URL", self.url));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Some("url holds credentials, which would show in logs and metrics; remove them from the URL and set username and password_file".into());
        }
        if authority.is_empty() {
            return Some(format!("url = {:?} names no host", self.url));
        }
        if self.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Some("url holds spaces or control characters; percent-encode them".into());
        }
        if self.username.is_some() != self.password_file.is_some() {
            return Some("set both username and password_file, or neither".into());
        }
        if self.latency_ms > 10_000 {
            return Some(format!("latency_ms = {}: give 0 to 10000", self.latency_ms));
        }
        if (self.width == 0) != (self.height == 0) {
            return Some("set both width and height, or neither (the stream's own size)".into());
        }
        None
    }

    /// The password from `password_file`, refused where other users can read the file.
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else { return Ok(None) };
        if let Some(mode) = crate::util::exposed(path, 0o077) {
            return Err(format!(
                "password_file {} can be read by other users (mode {mode:04o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("password_file {} cannot be read ({e})", path.display()))?;
        let password = text.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(format!("password_file {} is empty", path.display()));
        }
        Ok(Some(password.to_string()))
    }
}

fn default_latency_ms() -> u32 {
    200
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::V4l2 { name, .. }
            | SourceConfig::Replay { name, .. }
            | SourceConfig::Gstreamer { name, .. }
            | SourceConfig::Rtsp(RtspCamera { name, .. }) => name,
        }
    }

    /// Opens the source (again, after a failure).
    pub fn open(&self) -> Result<Box<dyn Source>, CaptureError> {
        Ok(match self {
            SourceConfig::V4l2 { name, device, width, height, fps, format } => {
                Box::new(V4l2Source::open(name, device, *width, *height, *fps, *format)?)
            }
            SourceConfig::Replay { name, path, fps, looping } => {
                Box::new(ReplaySource::open(name, path, *fps, *looping)?)
            }
            #[cfg(feature = "gstreamer")]
            SourceConfig::Rtsp(camera) => Box::new(super::gst::GstSource::rtsp(camera)?),
            #[cfg(feature = "gstreamer")]
            SourceConfig::Gstreamer { name, pipeline } => {
                Box::new(super::gst::GstSource::pipeline(name, pipeline)?)
            }
            #[cfg(not(feature = "gstreamer"))]
            SourceConfig::Rtsp(_) | SourceConfig::Gstreamer { .. } => {
                return Err(CaptureError::Config {
                    source_name: self.name().to_string(),
                    message: self.unbuilt().expect("a GStreamer source").into(),
                })
            }
        })
    }

    /// Why this build cannot open the source: `rtsp` and `gstreamer` need the `gstreamer`
    /// feature. `None` where it can.
    pub fn unbuilt(&self) -> Option<&'static str> {
        let needs_gstreamer =
            matches!(self, SourceConfig::Rtsp(_) | SourceConfig::Gstreamer { .. });
        (needs_gstreamer && !cfg!(feature = "gstreamer")).then_some(
            "this edgeid was built without GStreamer, which rtsp and gstreamer sources need; build it with `cargo build --release --features gstreamer` (README.md, \"Network cameras\")",
        )
    }
}

fn default_width() -> u32 {
    1280
}

fn default_height() -> u32 {
    720
}
