//! The `[[sources]]` of a config: cameras and recordings, each opened (and opened again after a
//! failure) by the daemon. Network cameras (`rtsp`) and camera pipelines (`gstreamer`) need
//! the `gstreamer` build; the base build refuses them in the config check, by name.

use std::path::PathBuf;

use serde::Deserialize;

use super::frame::{CaptureError, Source};
use super::replay::ReplaySource;
use super::rtsp::RtspCamera;
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
            "this edgeid was built without GStreamer, which rtsp and gstreamer sources need; build it with `cargo build --release --features gstreamer` (docs/daemon.md, \"Cameras\")",
        )
    }
}

fn default_width() -> u32 {
    1280
}

fn default_height() -> u32 {
    720
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The base build names the feature a network camera needs, at the config check.
    #[test]
    fn a_build_without_gstreamer_says_so() {
        let src: SourceConfig =
            toml::from_str("kind = \"rtsp\"\nname = \"door\"\nurl = \"rtsp://cam\"").unwrap();
        assert_eq!(src.unbuilt().is_some(), !cfg!(feature = "gstreamer"));
        let replay: SourceConfig =
            toml::from_str("kind = \"replay\"\nname = \"r\"\npath = \"x\"").unwrap();
        assert_eq!(replay.unbuilt(), None);
    }
}
