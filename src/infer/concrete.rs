//! Loading on one concrete backend (tract, or onnxruntime on the CPU or a GPU): what `load`
//! does for every backend but `auto`, and what `auto` does for each backend it tries.

#[cfg(feature = "ort")]
use super::onnxruntime::OrtSession;
use super::session::{BackendKind, Session};
use super::tract::TractSession;
use crate::manifest::{Manifest, ModelError};

/// Loads a model's (already checked) bytes on one backend.
pub(super) fn load_bytes(
    backend: BackendKind,
    manifest: &Manifest,
    bytes: &[u8],
    purposes: &[&str],
) -> Result<Box<dyn Session>, ModelError> {
    match backend {
        BackendKind::Auto => unreachable!("auto picks among the concrete backends"),
        BackendKind::Tract => Ok(Box::new(TractSession::load(manifest, bytes, purposes)?)),
        #[cfg(feature = "ort")]
        ort => Ok(Box::new(OrtSession::load(ort, manifest, bytes, purposes)?)),
        #[cfg(not(feature = "ort"))]
        ort => Err(ModelError::Backend {
            backend: ort.name().into(),
            path: manifest.model_path(),
            message: "this edgeid was built without the `ort` feature; rebuild with `cargo build --release --features ort`, or set backend = \"tract\"".into(),
        }),
    }
}
