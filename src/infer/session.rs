//! What every backend is: a session that runs a model on tensors, the kinds of backend, and the
//! checks every backend makes of a model against its manifest when it loads it.

use serde::{Deserialize, Serialize};

use crate::manifest::{shape_to_string, Dim, InputSpec, Manifest, ModelError};

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
    /// onnxruntime, CPU execution provider (cargo feature `ort`; library from `ORT_DYLIB_PATH`).
    Ort,
    /// onnxruntime with the CUDA execution provider (Jetson, NVIDIA GPUs).
    #[serde(rename = "ort-cuda")]
    OrtCuda,
    /// onnxruntime with TensorRT, CUDA for what TensorRT does not take.
    #[serde(rename = "ort-tensorrt")]
    OrtTensorrt,
    /// Per model, the fastest of the backends above that this build and device can load,
    /// measured at load and cached ([`auto`]).
    Auto,
}

impl BackendKind {
    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
            BackendKind::OrtCuda => "ort-cuda",
            BackendKind::OrtTensorrt => "ort-tensorrt",
            BackendKind::Auto => "auto",
        }
    }
}

impl BackendKind {
    /// Every backend a config may name.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Tract,
        BackendKind::Ort,
        BackendKind::OrtCuda,
        BackendKind::OrtTensorrt,
        BackendKind::Auto,
    ];

    /// The runtimes this build has, the pure-Rust one (which always loads) first; whether
    /// each loads here depends on the device (library, GPU).
    pub fn built() -> Vec<BackendKind> {
        let mut b = vec![BackendKind::Tract];
        if cfg!(feature = "ort") {
            b.extend([BackendKind::Ort, BackendKind::OrtCuda, BackendKind::OrtTensorrt]);
        }
        b
    }
}

/// A loaded model ready to run. Outputs come back in the order of the purposes asked for at
/// load time.
pub trait Session: Send {
    fn run(&mut self, input: Tensor) -> anyhow::Result<Vec<Tensor>>;
    /// The manifest this session was loaded from.
    fn manifest(&self) -> &Manifest;
    /// The largest batch worth running at once on this backend: callers with many small
    /// inputs (R-Net/O-Net crops) split them into batches of at most this many.
    fn max_batch(&self) -> usize {
        usize::MAX
    }
}

/// Refuses a model whose input is not the one its manifest describes (`dims`: the file's
/// input dimensions, `None` where free).
pub(super) fn check_input(
    manifest: &Manifest,
    name: &str,
    dims: &[Option<i64>],
) -> Result<(), ModelError> {
    let mismatch =
        |message: String| ModelError::ShapeMismatch { path: manifest.model_path(), message };
    let input = manifest.input()?;
    if name != input.name {
        return Err(mismatch(format!(
            "its input is named `{name}`, the manifest says `{}`",
            input.name
        )));
    }
    let expected = &input.shape;
    if dims.len() != expected.len() {
        return Err(mismatch(format!(
            "its input `{name}` has {} dimensions, the manifest says {}",
            dims.len(),
            shape_to_string(expected)
        )));
    }
    for (i, (got, want)) in dims.iter().zip(expected).enumerate() {
        if let (Some(got), Dim::Fixed(want)) = (got, want) {
            if *got != *want as i64 {
                return Err(mismatch(format!(
                    "input `{name}` dimension {i} is {got} in the file, {want} in the manifest {}",
                    shape_to_string(expected)
                )));
            }
        }
    }
    Ok(())
}

/// The input's shape made concrete: its fixed dimensions, batch 1 for a free first dimension,
/// `side` for any other free one.
pub fn concrete_shape(input: &InputSpec, side: usize) -> Vec<usize> {
    input
        .shape
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Fixed(n) => *n,
            Dim::Free(_) if i == 0 => 1,
            Dim::Free(_) => side,
        })
        .collect()
}

/// Runs a freshly loaded session once (batch 1, free sides at a size every image model
/// accepts) and checks its outputs' shapes against the manifest, so that a graph that cannot
/// run is refused at load, not on the first frame.
pub(super) fn probe(session: &mut dyn Session, purposes: &[&str]) -> Result<(), ModelError> {
    let manifest = session.manifest().clone();
    let mismatch =
        |message: String| ModelError::ShapeMismatch { path: manifest.model_path(), message };
    let probe = concrete_shape(manifest.input()?, 48);
    let outputs = session
        .run(Tensor::zeros(probe.clone()))
        .map_err(|e| mismatch(format!("it does not run on input {probe:?}: {e:#}")))?;
    for (p, out) in purposes.iter().zip(&outputs) {
        let spec = manifest.output(p)?;
        let fits = spec.shape.len() == out.shape.len()
            && spec.shape.iter().zip(&out.shape).all(|(w, g)| match w {
                Dim::Fixed(n) => n == g,
                Dim::Free(_) => true,
            });
        if !fits {
            return Err(mismatch(format!(
                "output `{}` has shape {:?} on input {probe:?}, the manifest says {}",
                spec.name,
                out.shape,
                shape_to_string(&spec.shape)
            )));
        }
    }
    Ok(())
}
impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<BackendKind, String> {
        BackendKind::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = BackendKind::ALL.iter().map(|b| b.name()).collect();
            format!("unknown backend `{s}`; one of {}", names.join(", "))
        })
    }
}
