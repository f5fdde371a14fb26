//! edgeid: an edge biometric runtime.
//!
//! A frame flows through one module per stage — `capture` (frames from files or cameras),
//! `detect` (faces and landmarks), `align` (crops on the encoder's template), `encode`
//! (embeddings), `gallery` (enrolled identities, 1:N search), `track` (faces linked across
//! frames), `decide` (one access decision per person), `journal` (every decision, in SQLite) —
//! with plain values between them, so each stage can be tested, benchmarked and swapped alone.
//! `daemon` wires them into the camera service. Models are data: `manifest`
//! describes each ONNX file and `infer` runs it on a backend. `app` holds the commands the
//! binary exposes.

pub mod align;
pub mod app;
pub mod audit;
pub mod augment;
pub mod bench;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod detect;
pub mod encode;
pub mod eval;
pub mod gallery;
pub mod heads;
pub mod infer;
pub mod journal;
pub mod manifest;
pub mod morph;
pub mod pipeline;
pub mod plot;
pub mod resize;
pub mod tag;
pub mod track;
pub mod trust;
