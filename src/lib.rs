//! edgeid: an edge biometric runtime.
//!
//! A frame flows through one module per stage — `capture` (frames from files or cameras),
//! `detect` (faces and landmarks), `align` (crops on the encoder's template), `encode`
//! (embeddings), `gallery` (enrolled identities, 1:N search), `track` (faces linked across
//! frames), `decide` (one access decision per person), `journal` (every decision, in SQLite) —
//! with plain values between them, so each stage can be tested, benchmarked and swapped alone.
//! Models are data: `manifest` describes each ONNX file and `infer` runs it on a backend.
//! `config` is the settings of every stage as data; `pipeline` builds the stages from it; `app`
//! holds the commands the binary exposes and `daemon` the camera service.
//!
//! The modules are declared below by layer, bottom first; [`layers`] holds the table and the
//! test that no module uses one above its layer and that no circle of uses exists.

// The modules by layer, bottom first (the table and its test: `layers`).
pub mod layers;

// Utilities.
pub mod clock;
pub mod plot;
pub mod resize;
pub mod util;
// Models and inference.
pub mod infer;
pub mod manifest;
// Vision stages.
pub mod align;
pub mod augment;
pub mod capture;
pub mod detect;
pub mod encode;
pub mod heads;
pub mod morph;
pub mod tag;
pub mod track;
// Identities, decisions and their record.
pub mod decide;
pub mod fleet;
pub mod gallery;
pub mod journal;
pub mod outputs;
pub mod trust;
// Configuration (data only).
pub mod config;
// Assembly: the stages built from a config.
pub mod pipeline;
pub mod runtime;
// Evaluation and reports.
pub mod audit;
pub mod bench;
pub mod eval;
// Commands and the daemon.
pub mod app;
pub mod daemon;
