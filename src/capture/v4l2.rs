//! A V4L2 camera through the `v4l` crate: memory-mapped streaming, MJPEG or YUYV converted to
//! RGB. Opening checks that the driver accepted the asked format; a camera that stops
//! answering gives `Unavailable`, which the daemon retries with back-off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use super::convert::{mjpeg_to_rgb, yuyv_to_rgb};
use super::frame::{CaptureError, Frame, Source};
use crate::clock::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
}

impl PixelFormat {
    fn fourcc(self) -> FourCC {
        match self {
            PixelFormat::Mjpeg => FourCC::new(b"MJPG"),
            PixelFormat::Yuyv => FourCC::new(b"YUYV"),
        }
    }

    /// Converts one captured buffer to RGB.
    pub fn to_rgb(self, buf: &[u8], width: u32, height: u32) -> Result<image::RgbImage, String> {
        match self {
            PixelFormat::Mjpeg => mjpeg_to_rgb(buf),
            PixelFormat::Yuyv => yuyv_to_rgb(buf, width, height),
        }
    }
}

pub struct V4l2Source {
    name: String,
    device: PathBuf,
    format: PixelFormat,
    width: u32,
    height: u32,
    stream: Stream<'static>,
    seq: u64,
}

impl V4l2Source {
    pub fn open(
        name: &str,
        device: &Path,
        width: u32,
        height: u32,
        fps: u32,
        format: PixelFormat,
    ) -> Result<V4l2Source, CaptureError> {
        let unavailable = |message: String| CaptureError::Unavailable {
            device: device.display().to_string(),
            message,
        };
        let dev = Device::with_path(device).map_err(|e| {
            unavailable(format!("cannot open it ({e}); check that it is plugged in and readable"))
        })?;
        let mut fmt =
            dev.format().map_err(|e| unavailable(format!("cannot read its format: {e}")))?;
        fmt.width = width;
        fmt.height = height;
        fmt.fourcc = format.fourcc();
        let got =
            dev.set_format(&fmt).map_err(|e| unavailable(format!("cannot set the format: {e}")))?;
        if got.fourcc != format.fourcc() {
            return Err(unavailable(format!(
                "it does not deliver {format:?} (it offers {}); set format to the other pixel format",
                got.fourcc
            )));
        }
        if (got.width, got.height) != (width, height) {
            log::warn!(
                "camera {}: asked {width}×{height}, the driver gives {}×{}",
                device.display(),
                got.width,
                got.height
            );
        }
        if fps > 0 {
            dev.set_params(&v4l::video::capture::Parameters::with_fps(fps))
                .map_err(|e| unavailable(format!("cannot set {fps} fps: {e}")))?;
        }
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, 4)
            .map_err(|e| unavailable(format!("cannot start streaming: {e}")))?;
        // A camera that stalls must not hang the capture thread forever.
        stream.set_timeout(Duration::from_secs(5));
        Ok(V4l2Source {
            name: name.to_string(),
            device: device.to_path_buf(),
            format,
            width: got.width,
            height: got.height,
            stream,
            seq: 0,
        })
    }
}

impl Source for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let device = self.device.display().to_string();
        let (buf, meta) = self.stream.next().map_err(|e| CaptureError::Unavailable {
            device: device.clone(),
            message: format!("capture failed: {e}"),
        })?;
        let used = (meta.bytesused as usize).min(buf.len());
        let image = self
            .format
            .to_rgb(&buf[..used], self.width, self.height)
            .map_err(|message| CaptureError::BadFrame { device, message })?;
        let frame =
            Frame { image, source: self.name.clone(), seq: self.seq, timestamp_ms: now_ms() };
        self.seq += 1;
        Ok(Some(frame))
    }

    fn name(&self) -> &str {
        &self.name
    }
}
