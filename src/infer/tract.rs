//! The tract backend: pure Rust, CPU only.
//!
//! tract optimises a graph best when every shape is concrete, so the parsed model is kept and
//! an optimised plan is built per concrete input shape, then cached with its run state (the
//! plan's scratch and op states, kept between runs instead of set up again): a camera's frame
//! size never changes, so after the first frame every P-Net pyramid level and R-Net/O-Net batch
//! size reuses its plan.

use std::collections::HashMap;

use anyhow::Context;
use tract_onnx::prelude::{
    tract_ndarray, tvec, Datum, Framework, InferenceFact, InferenceModel, InferenceModelExt,
    IntoRunnable, IntoTValue, Tensor as TractTensor,
};
use tract_onnx::tract_core::model::TypedSimpleState;

use tract_onnx::tract_hir::infer::Factoid;

use super::session::{check_input, probe, Session, Tensor};
use crate::manifest::{Manifest, ModelError};

/// Plans kept per session; more shapes than this means the caller is not bucketing sizes.
const MAX_PLANS: usize = 256;

pub struct TractSession {
    manifest: Manifest,
    model: InferenceModel,
    /// One run state (its plan inside) per concrete input shape.
    states: HashMap<Vec<usize>, TypedSimpleState>,
}

impl TractSession {
    /// Parses `bytes` (already hash-checked), checks the input against the manifest, selects
    /// the outputs and builds one plan on a probe shape so that a graph that cannot run is
    /// refused at load, not on the first frame.
    pub fn load(
        manifest: &Manifest,
        bytes: &[u8],
        purposes: &[&str],
    ) -> Result<TractSession, ModelError> {
        let path = manifest.model_path();
        let mismatch = |message: String| ModelError::ShapeMismatch { path: path.clone(), message };
        let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).map_err(|e| {
            ModelError::Unloadable { path: path.clone(), message: format!("{e:#}") }
        })?;

        let input_outlet = model.input_outlets().map_err(|e| mismatch(e.to_string()))?[0];
        let input_name = model.node(input_outlet.node).name.clone();
        let fact = model.input_fact(0).map_err(|e| mismatch(e.to_string()))?;
        let model_dims: Vec<Option<i64>> =
            fact.shape.dims().map(|d| d.concretize().and_then(|d| d.as_i64())).collect();
        check_input(manifest, &input_name, &model_dims)?;

        let mut names = Vec::new();
        for p in purposes {
            names.push(manifest.output(p)?.name.clone());
        }
        model.select_outputs_by_name(&names).map_err(|_| {
            mismatch(format!(
                "it has no output named {}; the manifest's outputs do not belong to this model",
                names.join(" or ")
            ))
        })?;

        let mut session =
            TractSession { manifest: manifest.clone(), model, states: HashMap::new() };
        probe(&mut session, purposes)?;
        Ok(session)
    }

    /// The run state for `shape`, planned on first use.
    fn state(&mut self, shape: &[usize]) -> anyhow::Result<&mut TypedSimpleState> {
        if !self.states.contains_key(shape) {
            if self.states.len() >= MAX_PLANS {
                self.states.clear();
            }
            let state = self
                .model
                .clone()
                .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .and_then(|plan| plan.spawn())
                .with_context(|| {
                    format!("planning {} for input {shape:?}", self.manifest.file.display())
                })?;
            self.states.insert(shape.to_vec(), state);
        }
        Ok(self.states.get_mut(shape).expect("inserted above"))
    }
}

/// Runs `f` with denormal floats flushed to zero on this thread, restoring the mode after.
///
/// MobileFace carries weights and biases around 1e-24 (dead channels of the TF.js export); their
/// products are denormal, which x86 CPUs compute through slow microcode: one depthwise
/// convolution took 0.30 ms instead of 0.11 and the whole encoder 1.38 ms instead of 1.16 here.
/// Flushing changes those ~1e-45 values to 0, nothing a score can see. The other bundled models
/// run at the same speed either way.
#[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
fn without_denormals<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the mode is per thread and restored when `f` returns; within it only float
    // results below 1.2e-38 change (to zero), which tract's kernels and our code tolerate.
    unsafe { no_denormals::no_denormals(f) }
}

/// 32-bit ARM: NEON, which runs tract's kernels there, always flushes denormals.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn without_denormals<T>(f: impl FnOnce() -> T) -> T {
    f()
}

impl Session for TractSession {
    fn run(&mut self, input: Tensor) -> anyhow::Result<Vec<Tensor>> {
        let state = self.state(&input.shape)?;
        // The input's buffer becomes tract's tensor as it is, without a copy.
        let tensor: TractTensor =
            tract_ndarray::ArrayD::from_shape_vec(input.shape, input.data)?.into();
        let outputs = without_denormals(|| state.run(tvec!(tensor.into_tvalue())))?;
        outputs
            .iter()
            .map(|o| {
                let view = o.to_plain_array_view::<f32>()?;
                Ok(Tensor { shape: view.shape().to_vec(), data: view.iter().copied().collect() })
            })
            .collect()
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// One input at a time: tract 0.23 runs a batch as slowly as its inputs one by one or
    /// worse (R-Net on 128 crops 34 ms against 128 × 0.14 ms: with a batch it materialises the
    /// im2col matrix and no longer fuses the element-wise ops), and batch 1 also keeps the one
    /// plan per stage.
    fn max_batch(&self) -> usize {
        1
    }
}
