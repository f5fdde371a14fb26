//! edgeid's integration tests, one module per capability, in one test binary: each test binary
//! links the whole library and tract, and linking them one by one was most of CI's build time.
//!
//! Run one module with `cargo test --release --test it -- detect::`, one test with
//! `-- --exact detect::blazeface_finds_every_labelled_face`.

#![allow(dead_code)]

mod common;

mod api;
mod audit;
mod auto;
#[cfg(feature = "ort")]
mod backends;
mod bench;
mod capture;
mod cli;
mod daemon;
mod decisions;
mod detect;
mod eval;
mod fleet;
mod frame_path;
mod fuzz_corpus;
mod int8;
mod licences;
mod morph;
// The RTSP and GStreamer sources: only in the `gstreamer` build (`--features gstreamer`).
#[cfg(feature = "gstreamer")]
mod network_cameras;
mod outputs;
mod pad;
mod properties;
mod recognition;
mod security;
mod tags;
