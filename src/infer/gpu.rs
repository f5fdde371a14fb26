//! Settings of the GPU execution providers (config `[gpu]`), shared by every session the
//! process loads afterwards.
//!
//! Why these exist: a GPU runs a tiny face model in well under a millisecond, but every input
//! shape it has not seen costs the CUDA provider a memory allocation and a cuDNN algorithm
//! search, tens of milliseconds each. So on a GPU the pipeline only ever runs a few shapes:
//! faces go to the encoder and the PAD heads in batches padded up to one of `batch_sizes`,
//! and every one of those shapes runs once at load (`warm_up`), so that the first person at
//! the door does not pay for it.
//!
//! The settings are process-wide because the backend a stage loads on is chosen far from the
//! config (every stage calls [`super::load`] with a [`super::BackendKind`]); the pipeline sets
//! them from its config before loading ([`configure`]).

use std::path::PathBuf;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::session::Tensor;
use crate::util::OutOfRange;

/// How cuDNN picks a convolution algorithm for each new input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CudnnSearch {
    /// Times every algorithm on the first run of a shape: the fastest kernels, the slowest
    /// first run (paid at load when `warm_up` is on).
    #[default]
    Exhaustive,
    /// cuDNN's heuristics pick without timing.
    Heuristic,
    /// cuDNN's default algorithm, no search.
    Default,
}

impl CudnnSearch {
    pub fn name(self) -> &'static str {
        match self {
            CudnnSearch::Exhaustive => "exhaustive",
            CudnnSearch::Heuristic => "heuristic",
            CudnnSearch::Default => "default",
        }
    }
}

/// The config's `[gpu]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuOptions {
    /// CUDA device index.
    #[serde(default)]
    pub device: i32,
    /// cuDNN's convolution algorithm search.
    #[serde(default)]
    pub cudnn_search: CudnnSearch,
    /// The batch sizes a model with a free batch dimension runs at on a GPU, ascending: n
    /// inputs run as the smallest size ≥ n (padded with zeros, the padding's outputs dropped),
    /// more than the largest as several batches.
    #[serde(default = "default_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// Lets the CUDA provider run convolutions in NHWC (the layout of the bundled TensorFlow
    /// models' inputs) instead of transposing around each one.
    #[serde(default)]
    pub prefer_nhwc: bool,
    /// Runs every batch size of every model once at load.
    #[serde(default = "default_true")]
    pub warm_up: bool,
    /// Where TensorRT engines are kept (`ort-tensorrt`), one folder per model sha256, GPU and
    /// onnxruntime library; default `tensorrt/` in the cache folder of the `auto` backend
    /// choices. Relative paths are resolved against the config's folder.
    #[serde(default)]
    pub tensorrt_cache: Option<PathBuf>,
    /// TensorRT engines in fp16. Turn on only where `edgeid bench` shows each model's output
    /// within cosine 0.999 of fp32.
    #[serde(default)]
    pub tensorrt_fp16: bool,
}

fn default_batch_sizes() -> Vec<usize> {
    vec![1, 2, 4, 8]
}

fn default_true() -> bool {
    true
}

impl Default for GpuOptions {
    fn default() -> GpuOptions {
        GpuOptions {
            device: 0,
            cudnn_search: CudnnSearch::default(),
            prefer_nhwc: false,
            batch_sizes: default_batch_sizes(),
            warm_up: true,
            tensorrt_cache: None,
            tensorrt_fp16: false,
        }
    }
}

impl GpuOptions {
    /// Refuses settings the providers cannot run with.
    pub fn check(&self) -> Result<(), OutOfRange> {
        let sizes = &self.batch_sizes;
        let ascending = sizes.windows(2).all(|w| w[0] < w[1]);
        if sizes.is_empty() || !ascending || sizes[0] == 0 || sizes[sizes.len() - 1] > 64 {
            return Err(OutOfRange {
                key: "gpu.batch_sizes".into(),
                value: format!("{sizes:?}"),
                allowed: "ascending sizes from 1 to 64, e.g. [1, 2, 4, 8]".into(),
            });
        }
        if self.device < 0 {
            return Err(OutOfRange {
                key: "gpu.device".into(),
                value: self.device.to_string(),
                allowed: "a CUDA device index, 0 or more".into(),
            });
        }
        Ok(())
    }

    /// The batch size `n` inputs run at: the smallest configured size ≥ n, else n itself
    /// (callers split at [`GpuOptions::max_batch`] first).
    pub fn bucket(&self, n: usize) -> usize {
        self.batch_sizes.iter().copied().find(|&b| b >= n).unwrap_or(n)
    }

    pub fn max_batch(&self) -> usize {
        self.batch_sizes.last().copied().unwrap_or(1)
    }

    /// The TensorRT engine folder of a model on this GPU and onnxruntime library.
    pub fn engine_dir(&self, sha256: &str, gpu: &str, library: &str) -> Option<PathBuf> {
        let root = self.tensorrt_cache.clone().or_else(|| {
            super::cache::default_cache().and_then(|f| f.parent().map(|d| d.join("tensorrt")))
        })?;
        let clean = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
        };
        let sha = &sha256[..sha256.len().min(16)];
        Some(root.join(format!("{sha}-{}-{}", clean(gpu), clean(library))))
    }
}

/// Pads a batch of `n` inputs with zero rows up to `size` (no-op when it already has them).
pub fn pad_batch(input: &mut Tensor, size: usize) {
    let n = input.shape.first().copied().unwrap_or(1);
    if size > n && n > 0 {
        let per = input.data.len() / n;
        input.data.resize(per * size, 0.0);
        input.shape[0] = size;
    }
}

/// Drops the padding's rows from an output of a batch padded from `n` up to `size`; outputs
/// without a batch dimension of `size` are left as they are.
pub fn unpad_batch(output: &mut Tensor, n: usize, size: usize) {
    if size > n && output.shape.first() == Some(&size) {
        output.data.truncate(output.data.len() / size * n);
        output.shape[0] = n;
    }
}

static OPTIONS: RwLock<Option<GpuOptions>> = RwLock::new(None);

/// Sets the options every GPU session loaded from now on uses.
pub fn configure(options: &GpuOptions) {
    *OPTIONS.write().unwrap_or_else(|e| e.into_inner()) = Some(options.clone());
}

/// The options in force (the defaults until [`configure`] is called).
pub fn options() -> GpuOptions {
    OPTIONS.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_run_at_the_smallest_batch_that_holds_them() {
        let o = GpuOptions::default();
        assert_eq!([1, 2, 3, 4, 5, 8].map(|n| o.bucket(n)), [1, 2, 4, 4, 8, 8]);
        assert_eq!(o.max_batch(), 8);
        assert_eq!(o.bucket(9), 9, "callers split above the largest size");
    }

    #[test]
    fn padding_rows_are_zero_and_dropped_from_outputs() {
        let mut t = Tensor::new(vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        pad_batch(&mut t, 4);
        assert_eq!(t.shape, [4, 2]);
        assert_eq!(t.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0]);
        let mut out = Tensor::new(vec![4, 1], vec![0.1, 0.2, 0.3, 0.9]);
        unpad_batch(&mut out, 3, 4);
        assert_eq!((out.shape, out.data), (vec![3, 1], vec![0.1, 0.2, 0.3]));
        // An output not batched (a fixed [1, k]) stays whole; a full batch is not touched.
        let mut fixed = Tensor::new(vec![1, 2], vec![7.0, 8.0]);
        unpad_batch(&mut fixed, 3, 4);
        assert_eq!(fixed.data, [7.0, 8.0]);
        let mut full = Tensor::new(vec![2, 1], vec![1.0, 2.0]);
        pad_batch(&mut full, 2);
        assert_eq!(full.shape, [2, 1]);
    }

    #[test]
    fn refuses_batch_sizes_out_of_order_or_range() {
        for bad in [vec![], vec![0, 1], vec![4, 2], vec![1, 128], vec![2, 2]] {
            let o = GpuOptions { batch_sizes: bad.clone(), ..GpuOptions::default() };
            let e = o.check().unwrap_err();
            assert_eq!(e.key, "gpu.batch_sizes", "{bad:?}");
        }
        assert!(GpuOptions::default().check().is_ok());
    }

    #[test]
    fn engines_are_kept_per_model_gpu_and_library() {
        let o = GpuOptions { tensorrt_cache: Some("/c".into()), ..GpuOptions::default() };
        let a = o.engine_dir("ab12cd34ef56ab78ffff", "NVIDIA H200", "libonnxruntime.so.1.31.1");
        assert_eq!(
            a.unwrap(),
            PathBuf::from("/c/ab12cd34ef56ab78-NVIDIA_H200-libonnxruntime_so_1_31_1")
        );
        let b = o.engine_dir("ab12cd34ef56ab78ffff", "Orin", "libonnxruntime.so.1.31.1");
        assert_ne!(b, o.engine_dir("ab12cd34ef56ab78ffff", "NVIDIA H200", "x"));
    }
}
