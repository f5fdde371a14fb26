//! Inference backends behind one trait, so that a stage never knows which runtime runs it.
//!
//! A model goes through explicit steps, each with its own error: the manifest is read, the
//! file is checked against it, the backend parses the graph and checks its shapes against the
//! manifest, then plans are built (and cached) for the concrete input shapes the stage uses.

pub mod auto;
mod cache;
mod concrete;
pub mod cpu;
pub mod device;
pub mod gpu;
pub mod input;
#[cfg(feature = "ort")]
mod onnxruntime;
mod session;
mod tract;

use crate::manifest::{Manifest, ModelError};

#[cfg(feature = "ort")]
pub use self::onnxruntime::{OrtSession, LIBRARY_VAR};
pub use self::tract::TractSession;
pub use session::{concrete_shape, BackendKind, Session, Tensor};

/// Loads the model a manifest describes, checking the file's hash and the graph's shapes, and
/// selecting the outputs named by `purposes` (keys of the manifest's `outputs` table).
pub fn load(
    backend: BackendKind,
    manifest: &Manifest,
    purposes: &[&str],
) -> Result<Box<dyn Session>, ModelError> {
    let bytes = manifest.verify_file()?;
    match backend {
        BackendKind::Auto => {
            auto::load(manifest, &bytes, purposes, auto::default_cache().as_deref()).map(|l| l.0)
        }
        kind => concrete::load_bytes(kind, manifest, &bytes, purposes),
    }
}
