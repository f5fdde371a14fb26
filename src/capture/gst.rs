//! Network cameras and camera pipelines through GStreamer (the `gstreamer` feature): an RTSP
//! camera (`rtspsrc`, then whatever decoder GStreamer ranks first for the stream, so a
//! Jetson's hardware decoder where one is installed) or a pipeline of the operator's own (a
//! Jetson's CSI camera through `nvarguscamerasrc`, a USB camera through `v4l2src`). Both end
//! in an appsink that hands 8-bit RGB frames to the daemon's capture loop, which reopens a
//! failed source with the same back-off as a V4L2 camera's.
//!
//! The appsink keeps no queue of its own: each sample lands in a one-frame slot, and a frame
//! the capture loop has not taken when the next arrives is dropped and counted (the daemon's
//! frame queue drops and counts the same way), so a stream that decodes faster than the
//! pipeline infers never grows memory.
//!
//! A frame's time is its buffer's presentation time on the pipeline's clock, which is the
//! system's wall clock: for RTSP that is when the frame reached the device as the RTP
//! timestamps pace it (the jitter buffer maps them onto arrival times), for a live camera
//! element when the frame was captured. The journal's `first_seen_ms` therefore means the same
//! for every source: when the frame was captured or received, not when inference took it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::frame::{CaptureError, Frame, Source};
use super::rtsp::{RtspCamera, Transport};
use crate::clock::now_ms;

/// How long a source may go without a frame before it counts as lost and is reopened.
const STALL: Duration = Duration::from_secs(5);
/// How long opening may take to the first frame (an RTSP handshake, a decoder starting).
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// A frame time further than this from the wall clock is not believed (a stream whose
/// timestamps jumped): the frame is stamped with its arrival instead.
const TIME_TOLERANCE_MS: i64 = 10_000;

/// The latest sample from the appsink's streaming thread, and whether the stream ended.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    /// Frames replaced in the slot before the capture loop took them, since it last asked.
    dropped: AtomicU64,
}

#[derive(Default)]
struct SlotState {
    sample: Option<gst::Sample>,
    ended: bool,
}

pub struct GstSource {
    name: String,
    /// What the messages call the source: the RTSP URL as shown (no credentials, no query)
    /// or "pipeline".
    what: String,
    pipeline: gst::Pipeline,
    slot: Arc<Slot>,
    seq: u64,
}

impl GstSource {
    /// An RTSP camera: its URL, transport, jitter-buffer latency and credentials.
    pub fn rtsp(camera: &RtspCamera) -> Result<GstSource, CaptureError> {
        let what = camera.shown_url().to_string();
        let unavailable = |message: String| CaptureError::Unavailable {
            device: format!("{} ({what})", camera.name),
            message,
        };
        init().map_err(&unavailable)?;
        let password = camera.password().map_err(|message| CaptureError::Config {
            source_name: camera.name.clone(),
            message,
        })?;
        let src = element("rtspsrc").map_err(&unavailable)?;
        src.set_property("location", &camera.url);
        src.set_property_from_str(
            "protocols",
            match camera.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
            },
        );
        src.set_property("latency", camera.latency_ms);
        // A camera that accepts the connection and then says nothing is given up on; the
        // capture loop reconnects with back-off.
        src.set_property("tcp-timeout", STALL.as_micros() as u64);
        if let (Some(user), Some(password)) = (&camera.username, &password) {
            src.set_property("user-id", user);
            src.set_property("user-pw", password);
        }
        let decode = element("decodebin").map_err(&unavailable)?;
        let pipeline = gst::Pipeline::new();
        pipeline.add_many([&src, &decode]).map_err(|e| unavailable(e.to_string()))?;
        let decoder_sink = decode.static_pad("sink").expect("decodebin has a sink pad");
        src.connect_pad_added(move |_, pad| {
            // One stream is decoded, the first video one: a camera's audio track (often
            // announced first) is left unlinked, which rtspsrc allows.
            let media = pad
                .current_caps()
                .and_then(|c| c.structure(0).and_then(|s| s.get::<String>("media").ok()));
            if media.as_deref() == Some("video") && !decoder_sink.is_linked() {
                let _ = pad.link(&decoder_sink);
            }
        });
        let (tail_in, slot) = tail(&pipeline, camera.width, camera.height).map_err(&unavailable)?;
        let tail_sink = tail_in.static_pad("sink").expect("the converter has a sink pad");
        decode.connect_pad_added(move |_, pad| {
            let video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")));
            if video.unwrap_or(false) && !tail_sink.is_linked() {
                let _ = pad.link(&tail_sink);
            }
        });
        GstSource::start(&camera.name, what, pipeline, slot)
    }

    /// A pipeline of the operator's (`gst-launch-1.0` syntax) that yields raw video; the
    /// conversion to RGB and the appsink are added after it.
    pub fn pipeline(name: &str, description: &str) -> Result<GstSource, CaptureError> {
        let what = "pipeline".to_string();
        let unavailable = |message: String| CaptureError::Unavailable {
            device: format!("{name} ({what})"),
            message,
        };
        init().map_err(&unavailable)?;
        let head = gst::parse::bin_from_description(description, true).map_err(|e| {
            CaptureError::Config {
                source_name: name.to_string(),
                message: format!(
                    "pipeline does not parse ({e}); check it with gst-launch-1.0 and that its elements' plugins are installed"
                ),
            }
        })?;
        let pipeline = gst::Pipeline::new();
        pipeline.add(&head).map_err(|e| unavailable(e.to_string()))?;
        let (tail_in, slot) = tail(&pipeline, 0, 0).map_err(&unavailable)?;
        head.link(&tail_in).map_err(|_| CaptureError::Config {
            source_name: name.to_string(),
            message: "pipeline has no free video output to take frames from; end it with the last element before `appsink` (edgeid adds the conversion and the sink)".into(),
        })?;
        GstSource::start(name, what, pipeline, slot)
    }

    /// Plays the pipeline on the wall clock and waits for its first frame, so that a camera
    /// that cannot be reached, refuses the credentials or sends nothing fails here, once,
    /// with the reason GStreamer gave.
    fn start(
        name: &str,
        what: String,
        pipeline: gst::Pipeline,
        slot: Arc<Slot>,
    ) -> Result<GstSource, CaptureError> {
        let wall: gst::Clock = gst::glib::Object::builder::<gst::SystemClock>()
            .property("clock-type", gst::ClockType::Realtime)
            .build()
            .upcast();
        pipeline.use_clock(Some(&wall));
        let source = GstSource { name: name.to_string(), what, pipeline, slot, seq: 0 };
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(source.failure("it did not start"));
        }
        source.wait_for_sample(FIRST_FRAME)?;
        Ok(source)
    }

    /// Waits until the slot holds a sample (left there), or fails with what the bus says.
    fn wait_for_sample(&self, limit: Duration) -> Result<(), CaptureError> {
        let deadline = Instant::now() + limit;
        let mut state = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.sample.is_some() {
                return Ok(());
            }
            if state.ended {
                drop(state);
                return Err(self.failure("the stream ended"));
            }
            if let Some(error) = self.bus_error() {
                drop(state);
                return Err(self.unavailable(error));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                return Err(self.failure(&format!("no frame for {} s", limit.as_secs())));
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            state = self.slot.ready.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The first error the pipeline posted, as one sentence with its fix.
    fn bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        let gst::MessageView::Error(err) = msg.view() else { return None };
        let error = err.error();
        let hint = if error.matches(gst::ResourceError::NotAuthorized) {
            "the camera refused the credentials; check username and password_file"
        } else if error.matches(gst::ResourceError::OpenRead)
            || error.matches(gst::ResourceError::OpenReadWrite)
            || error.matches(gst::ResourceError::Read)
            || error.matches(gst::ResourceError::NotFound)
        {
            "check the URL, that the camera is on and reachable from here, and its port"
        } else if error.matches(gst::CoreError::MissingPlugin)
            || error.matches(gst::StreamError::CodecNotFound)
        {
            "no decoder for the stream is installed; install gstreamer1.0-libav (or the board's decoder plugins)"
        } else {
            "check the camera and its settings"
        };
        Some(format!("{}; {hint}", error.message().trim_end_matches('.')))
    }

    /// `Unavailable` with the bus's error where there is one, else `fallback`.
    fn failure(&self, fallback: &str) -> CaptureError {
        self.unavailable(self.bus_error().unwrap_or_else(|| fallback.to_string()))
    }

    fn unavailable(&self, message: String) -> CaptureError {
        CaptureError::Unavailable { device: format!("{} ({})", self.name, self.what), message }
    }

    /// The sample's presentation time as Unix milliseconds, when it has one that is believable.
    fn capture_ms(&self, sample: &gst::Sample, buffer: &gst::BufferRef) -> Option<i64> {
        let pts = buffer.pts()?;
        let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
        let running = segment.to_running_time(pts)?;
        let base = self.pipeline.base_time()?;
        let ms = (base + running).mseconds() as i64;
        ((now_ms() - ms).abs() <= TIME_TOLERANCE_MS).then_some(ms)
    }
}

impl Source for GstSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        self.wait_for_sample(STALL)?;
        let sample = {
            let mut state = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
            state.sample.take().expect("waited for a sample")
        };
        let bad = |message: String| CaptureError::BadFrame {
            device: format!("{} ({})", self.name, self.what),
            message,
        };
        let buffer = sample.buffer().ok_or_else(|| bad("a sample without a buffer".into()))?;
        let (width, height) = sample
            .caps()
            .and_then(|c| c.structure(0))
            .and_then(|s| Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?)))
            .ok_or_else(|| bad("a frame without its size".into()))?;
        let map = buffer.map_readable().map_err(|e| bad(e.to_string()))?;
        let image = rgb_image(map.as_slice(), width as u32, height as u32).map_err(bad)?;
        let timestamp_ms = self.capture_ms(&sample, buffer).unwrap_or_else(now_ms);
        let frame = Frame { image, source: self.name.clone(), seq: self.seq, timestamp_ms };
        self.seq += 1;
        Ok(Some(frame))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn take_dropped(&mut self) -> u64 {
        self.slot.dropped.swap(0, Ordering::Relaxed)
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// GStreamer's one-time set-up (repeats are free).
fn init() -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer cannot start ({e}); check its installation"))
}

fn element(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        format!("GStreamer has no `{factory}` element; install gstreamer1.0-plugins-base and gstreamer1.0-plugins-good")
    })
}

/// The conversion to RGB (at `width`×`height` where not 0) and the appsink, added to
/// `pipeline`; returns the first element, for the source to link to, and the sink's slot.
fn tail(
    pipeline: &gst::Pipeline,
    width: u32,
    height: u32,
) -> Result<(gst::Element, Arc<Slot>), String> {
    let mut chain = Vec::new();
    // A Jetson's decoders and CSI cameras hand frames in NVMM (device) memory, which only
    // nvvidconv copies out; where it is installed it goes first (it passes system memory
    // through).
    if gst::ElementFactory::find("nvvidconv").is_some() {
        chain.push(element("nvvidconv")?);
    }
    chain.push(element("videoconvert")?);
    chain.push(element("videoscale")?);
    let mut caps = gst::Caps::builder("video/x-raw").field("format", "RGB");
    if width > 0 && height > 0 {
        caps = caps.field("width", width as i32).field("height", height as i32);
    }
    let slot = Arc::new(Slot::default());
    let (on_sample, on_eos) = (slot.clone(), slot.clone());
    let sink = gst_app::AppSink::builder()
        .caps(&caps.build())
        .max_buffers(1)
        .drop(true)
        .sync(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut state = on_sample.state.lock().unwrap_or_else(|e| e.into_inner());
                    if state.sample.replace(sample).is_some() {
                        on_sample.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(state);
                    on_sample.ready.notify_one();
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| {
                    on_eos.state.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
                    on_eos.ready.notify_one();
                })
                .build(),
        )
        .build();
    let sink: gst::Element = sink.upcast();
    chain.push(sink);
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain)
        .map_err(|e| format!("cannot link the conversion to RGB: {e}"))?;
    Ok((chain.remove(0), slot))
}

/// An RGB image from GStreamer's rows, each padded to a multiple of 4 bytes.
fn rgb_image(data: &[u8], width: u32, height: u32) -> Result<image::RgbImage, String> {
    let row = width as usize * 3;
    let stride = row.next_multiple_of(4);
    if width == 0 || height == 0 || data.len() < stride * (height as usize - 1) + row {
        return Err(format!("{} bytes for a {width}×{height} RGB frame", data.len()));
    }
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    image::RgbImage::from_raw(width, height, pixels).ok_or_else(|| "short frame".to_string())
}

#[cfg(test)]
mod tests {
    use super::rgb_image;

    /// Rows padded to 4 bytes (a 3-pixel row is 9 bytes, stored in 12) come out unpadded.
    #[test]
    fn padded_rows_are_unpadded() {
        let mut data = Vec::new();
        for y in 0..2u8 {
            data.extend((0..9).map(|i| y * 100 + i));
            data.extend([0xEE; 3]);
        }
        let img = rgb_image(&data, 3, 2).unwrap();
        assert_eq!(img.get_pixel(2, 1).0, [106, 107, 108]);
        assert!(rgb_image(&data[..20], 3, 2).is_err());
        assert!(rgb_image(&[], 0, 0).is_err());
    }
}
