//! Inference backends behind one trait, so that a stage never knows which runtime runs it.
//!
//! A model goes through explicit steps, each with its own error: the manifest is read, the
//! file is checked against it, the backend parses the graph and checks its shapes against the
//! manifest, then plans are built (and cached) for the concrete input shapes the stage uses.

pub mod input;
mod tract;

use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, ModelError};

pub use self::tract::TractSession;

/// A dense f32 tensor in row-major order: the plain value that crosses the backend boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor { shape, data: vec![0.0; n] }
    }
}

/// Which runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// tract: pure Rust, CPU, runs anywhere the binary runs.
    #[default]
    Tract,
}

/// A loaded model ready to run. Outputs come back in the order of the purposes asked for at
/// load time.
pub trait Session: Send {
    fn run(&mut self, input: Tensor) -> anyhow::Result<Vec<Tensor>>;
    /// The manifest this session was loaded from.
    fn manifest(&self) -> &Manifest;
}

/// Loads the model a manifest describes, checking the file's hash and the graph's shapes, and
/// selecting the outputs named by `purposes` (keys of the manifest's `outputs` table).
pub fn load(
    backend: BackendKind,
    manifest: &Manifest,
    purposes: &[&str],
) -> Result<Box<dyn Session>, ModelError> {
    let bytes = manifest.verify_file()?;
    match backend {
        BackendKind::Tract => Ok(Box::new(TractSession::load(manifest, &bytes, purposes)?)),
    }
}
