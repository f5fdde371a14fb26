//! The onnxruntime backend (cargo feature `ort`): the CPU execution provider everywhere, CUDA
//! or TensorRT on Jetson-class GPUs.
//!
//! The library is loaded at run time (`load-dynamic`): nothing is downloaded at build time,
//! and one binary runs against the `libonnxruntime.so` of the device (on x86-64, the one in the
//! `onnxruntime` wheel; on Jetson, JetPack's onnxruntime-gpu), named by `ORT_DYLIB_PATH`.
//! One intra-op thread per session: parallelism comes from one worker per camera, as with
//! tract, and timings compare like with like.

use std::sync::OnceLock;

use anyhow::Context;
use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session as OrtSessionInner;
use ort::value::TensorRef;

use super::{BackendKind, Session, Tensor};
use crate::manifest::{Manifest, ModelError};

/// The environment variable that names the onnxruntime library.
pub const LIBRARY_VAR: &str = "ORT_DYLIB_PATH";

/// The process's one onnxruntime environment (the library can be loaded once).
fn environment() -> Result<&'static Environment, String> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os(LIBRARY_VAR).ok_or_else(|| {
            format!("{LIBRARY_VAR} is not set; point it at libonnxruntime.so (e.g. the one in `pip install onnxruntime`: onnxruntime/capi/libonnxruntime.so.*)")
        })?;
        let builder = ort::init_from(&path)
            .map_err(|e| format!("{LIBRARY_VAR}={}: {e}", path.to_string_lossy()))?;
        builder.with_name("edgeid").build().map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn providers(kind: BackendKind) -> Vec<ExecutionProviderDispatch> {
    match kind {
        BackendKind::OrtCuda => vec![ep::CUDA::default().build().error_on_failure()],
        BackendKind::OrtTensorrt => vec![
            ep::TensorRT::default().build().error_on_failure(),
            ep::CUDA::default().build().error_on_failure(),
        ],
        _ => vec![ep::CPU::default().build()],
    }
}

pub struct OrtSession {
    manifest: Manifest,
    session: OrtSessionInner,
    input: String,
    outputs: Vec<String>,
}

impl OrtSession {
    pub fn load(
        kind: BackendKind,
        manifest: &Manifest,
        bytes: &[u8],
        purposes: &[&str],
    ) -> Result<OrtSession, ModelError> {
        let path = manifest.model_path();
        let backend = |message: String| ModelError::Backend {
            backend: kind.name().into(),
            path: path.clone(),
            message,
        };
        let env = environment().map_err(backend)?;
        let builder = OrtSessionInner::builder(env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_intra_threads(1)?))
            .and_then(|b| Ok(b.with_execution_providers(providers(kind))?))
            .map_err(|e| backend(format!("{e}; use an onnxruntime build with this execution provider, or another backend")))?;
        let session = { builder }.commit_from_memory(bytes).map_err(|e| {
            ModelError::Unloadable { path: path.clone(), message: format!("onnxruntime: {e}") }
        })?;
        let input = session.inputs().first().ok_or_else(|| ModelError::Unloadable {
            path: path.clone(),
            message: "it has no input".into(),
        })?;
        let dims: Vec<Option<i64>> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().map(|&d| (d >= 0).then_some(d)).collect())
            .unwrap_or_default();
        super::check_input(manifest, input.name(), &dims)?;
        let input = input.name().to_string();
        let mut outputs = Vec::new();
        for p in purposes {
            let name = manifest.output(p)?.name.clone();
            if !session.outputs().iter().any(|o| o.name() == name) {
                return Err(ModelError::ShapeMismatch {
                    path: path.clone(),
                    message: format!(
                        "it has no output named {name}; the manifest's outputs do not belong to this model"
                    ),
                });
            }
            outputs.push(name);
        }
        let mut s = OrtSession { manifest: manifest.clone(), session, input, outputs };
        super::probe(&mut s, purposes)?;
        Ok(s)
    }
}

impl Session for OrtSession {
    fn run(&mut self, input: Tensor) -> anyhow::Result<Vec<Tensor>> {
        let value = TensorRef::from_array_view((input.shape.clone(), &input.data[..]))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => value])
            .with_context(|| format!("running {}", self.manifest.file.display()))?;
        self.outputs
            .iter()
            .map(|name| {
                let (shape, data) = outputs[name.as_str()].try_extract_tensor::<f32>()?;
                Ok(Tensor {
                    shape: shape.iter().map(|&d| d as usize).collect(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}
