//! The onnxruntime backend (cargo feature `ort`): the CPU execution provider everywhere, CUDA
//! or TensorRT on Jetson-class GPUs.
//!
//! The library is loaded at run time (`load-dynamic`): nothing is downloaded at build time,
//! and one binary runs against the `libonnxruntime.so` of the device (on x86-64, the one in the
//! `onnxruntime` wheel; on Jetson, JetPack's onnxruntime-gpu), named by `ORT_DYLIB_PATH`.
//! One intra-op thread per session by default (`[cpu] ort_threads`): parallelism comes from
//! one worker per camera, as with tract, and timings compare like with like. A GPU session
//! keeps one: its CPU work is feeding the GPU.

use std::sync::OnceLock;

use anyhow::Context;
use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session as OrtSessionInner;
use ort::value::TensorRef;

use ort::ep::cuda::ConvAlgorithmSearch;

use super::gpu::{self, CudnnSearch, GpuOptions};
use super::session::{check_input, concrete_shape, probe, BackendKind, Session, Tensor};
use crate::manifest::{Dim, Manifest, ModelError};

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

fn cuda(o: &GpuOptions) -> ExecutionProviderDispatch {
    let search = match o.cudnn_search {
        CudnnSearch::Exhaustive => ConvAlgorithmSearch::Exhaustive,
        CudnnSearch::Heuristic => ConvAlgorithmSearch::Heuristic,
        CudnnSearch::Default => ConvAlgorithmSearch::Default,
    };
    ep::CUDA::default()
        .with_device_id(o.device)
        .with_conv_algorithm_search(search)
        .with_prefer_nhwc(o.prefer_nhwc)
        .build()
        .error_on_failure()
}

/// The execution providers of a backend; `engines`: TensorRT's engine folder for this model.
fn providers(
    kind: BackendKind,
    o: &GpuOptions,
    engines: Option<&std::path::Path>,
) -> Vec<ExecutionProviderDispatch> {
    match kind {
        BackendKind::OrtCuda => vec![cuda(o)],
        BackendKind::OrtTensorrt => {
            let mut trt =
                ep::TensorRT::default().with_device_id(o.device).with_fp16(o.tensorrt_fp16);
            if let Some(dir) = engines {
                let dir = dir.to_string_lossy();
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(&dir)
                    .with_timing_cache(true)
                    .with_timing_cache_path(&dir);
            }
            vec![trt.build().error_on_failure(), cuda(o)]
        }
        // With its arena: `ep::CPU::default()` turns the arena off, and every run then
        // allocated its intermediate tensors afresh (a 4.3 MiB block per BlazeFace frame,
        // mapped and unmapped: 1400 page faults a frame, 30% of the daemon's CPU in the kernel).
        _ => vec![ep::CPU::default().with_arena_allocator(true).build()],
    }
}

/// The TensorRT engine folder of a model, created; says so when the engine is still to be
/// built (minutes on a Jetson), so that a first start that seems to hang explains itself.
fn engine_dir(manifest: &Manifest, o: &GpuOptions) -> Option<std::path::PathBuf> {
    let device = crate::infer::device::Device::probe();
    let gpu = device.gpus.first().map_or("gpu", String::as_str);
    let library = device.onnxruntime.as_deref().unwrap_or("onnxruntime");
    let library = std::path::Path::new(library).file_name()?.to_string_lossy().into_owned();
    let dir = o.engine_dir(&manifest.sha256, gpu, &library)?;
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log::warn!(
            "TensorRT engine cache {}: {e}; the engine is built at every start",
            dir.display()
        );
        return None;
    }
    let empty = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
    if empty {
        log::info!(
            "TensorRT: building the engine of {} for {gpu} (first start with this model, GPU and library; can take minutes), kept in {}",
            manifest.id,
            dir.display()
        );
    }
    Some(dir)
}

pub struct OrtSession {
    manifest: Manifest,
    session: OrtSessionInner,
    input: String,
    outputs: Vec<String>,
    /// On a GPU, for a model with a free batch dimension: the sizes batches are padded to.
    batches: Option<GpuOptions>,
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
        let gpu = matches!(kind, BackendKind::OrtCuda | BackendKind::OrtTensorrt);
        let options = gpu::options();
        let engines =
            (kind == BackendKind::OrtTensorrt).then(|| engine_dir(manifest, &options)).flatten();
        let builder = OrtSessionInner::builder(env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_intra_threads(if gpu { 1 } else { super::cpu::options().ort_threads })?))
            // Idle pool threads sleep: spinning ones took the cores that capture and the other
            // cameras need (2 threads on 2 cores: 32.9 frames/s spinning, 74.6 not).
            .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
            .and_then(|b| Ok(b.with_execution_providers(providers(kind, &options, engines.as_deref()))?))
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
        check_input(manifest, input.name(), &dims)?;
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
        let free_batch = matches!(manifest.input()?.shape.first(), Some(Dim::Free(_)));
        let batches = (gpu && free_batch).then(|| options.clone());
        let mut s = OrtSession { manifest: manifest.clone(), session, input, outputs, batches };
        probe(&mut s, purposes)?;
        if gpu && options.warm_up {
            s.warm_up().map_err(|e| backend(format!("warm-up: {e:#}")))?;
        }
        Ok(s)
    }

    /// Runs every shape this session will see once (each batch size; fixed-shape models at
    /// their one shape), so that the CUDA provider's allocations and cuDNN's algorithm search
    /// happen at load, not on the first frame. A free side other than the batch (MTCNN's
    /// P-Net) cannot be known in advance: such a model warms at its probe shape only.
    fn warm_up(&mut self) -> anyhow::Result<()> {
        let input = self.manifest.input()?.clone();
        if input.shape.iter().skip(1).any(|d| matches!(d, Dim::Free(_))) {
            return Ok(());
        }
        let sizes = self.batches.as_ref().map_or(vec![1], |o| o.batch_sizes.clone());
        for b in sizes {
            let mut shape = concrete_shape(&input, 0);
            shape[0] = b;
            // Twice: the first run of a shape pays for the search, the second runs as frames will.
            for _ in 0..2 {
                self.run(Tensor::zeros(shape.clone()))?;
            }
        }
        Ok(())
    }
}

impl Session for OrtSession {
    fn run(&mut self, mut input: Tensor) -> anyhow::Result<Vec<Tensor>> {
        // On a GPU: pad the batch to a size it has run before; the padding's rows are dropped
        // from every output below.
        let n = input.shape.first().copied().unwrap_or(1);
        let padded = self.batches.as_ref().map_or(n, |o| o.bucket(n));
        gpu::pad_batch(&mut input, padded);
        let value = TensorRef::from_array_view((input.shape.clone(), &input.data[..]))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => value])
            .with_context(|| format!("running {}", self.manifest.file.display()))?;
        self.outputs
            .iter()
            .map(|name| {
                let (shape, data) = outputs[name.as_str()].try_extract_tensor::<f32>()?;
                let shape = shape.iter().map(|&d| d as usize).collect();
                let mut out = Tensor { shape, data: data.to_vec() };
                gpu::unpad_batch(&mut out, n, padded);
                Ok(out)
            })
            .collect()
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A model whose manifest fixes the batch (InsightFace's `w600k_mbf` exports batch 1 as its
    /// output's first dimension) takes that many inputs a run; otherwise any number on the CPU.
    fn max_batch(&self) -> usize {
        match self.manifest.input().ok().and_then(|i| i.shape.first()) {
            Some(Dim::Fixed(n)) => (*n).max(1),
            _ => self.batches.as_ref().map_or(usize::MAX, GpuOptions::max_batch),
        }
    }
}
