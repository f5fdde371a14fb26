#!/usr/bin/env bash
# The GPU check (issue: the GPU path), for a person with an NVIDIA GPU; CI has none.
#
# Needs: an edgeid built with `cargo build --release --features ort` (or EDGEID=path), the
# onnxruntime-gpu library (`pip install onnxruntime-gpu==1.31.1`, CUDA 13 build) named by
# ORT_DYLIB_PATH, and CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH (the system's, or the nvidia-*
# wheels PyTorch installs). Writes into OUT (default var/gpu-check):
#   decisions.txt  every face of the six bundled photos, tract against ort-cuda: the same
#                  names and decisions, the largest similarity and box differences;
#   bench-*.md/json `edgeid bench` on sample1 (1280×853) and kiosk640 (640×480): ort on the CPU
#                  and ort-cuda in one run, 1/2/4 cameras, first frame, GPU memory;
#   cudnn-*.json   ort-cuda with each cuDNN algorithm search (SEARCHES, default all three);
#   nhwc-*.json    ort-cuda with NHWC convolutions (gpu.prefer_nhwc) on both photos.
# Exit status 1 when a decision differs or ort-cuda is not at least 5× ort's whole frame.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
edgeid="${EDGEID:-$root/target/release/edgeid}"
out="${OUT:-$root/var/gpu-check}"
runs="${RUNS:-50}"
backend="${BACKEND:-ort-cuda}"   # or ort-tensorrt where TensorRT is installed
searches="${SEARCHES:-exhaustive heuristic default}"
mkdir -p "$out"
rm -f "$out"/decisions.txt "$out"/bench-* "$out"/cudnn-* "$out"/nhwc-* "$out"/tensorrt.txt
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: "${ORT_DYLIB_PATH:?set ORT_DYLIB_PATH to the onnxruntime-gpu library (libonnxruntime.so.1.*)}"

# A copy of the default config on another backend / cuDNN search / NHWC setting, its model
# paths absolute.
config() { # backend search [prefer_nhwc]
  local nhwc="${3:-false}"
  sed -e "s|\"\\.\\./|\"$root/|g" -e "s|^backend = .*|backend = \"$1\"|" \
      -e "s|^cudnn_search = .*|cudnn_search = \"$2\"|" \
      -e "s|^prefer_nhwc = .*|prefer_nhwc = $nhwc|" "$root/configs/default.toml" \
      > "$work/$1-$2-$nhwc.toml"
  echo "$work/$1-$2-$nhwc.toml"
}
tract="$(config tract exhaustive)"
cuda="$(config "$backend" exhaustive)"
export EDGEID_BACKEND_CACHE="$work/backends.json"

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$edgeid" --version

echo "== decisions: tract against $backend on the six bundled photos"
g="$work/gallery.db"
"$edgeid" --config "$tract" enroll --gallery "$g" --name alice "$root/tests/data/sample3.jpg" >/dev/null
"$edgeid" --config "$tract" enroll --gallery "$g" --name beth "$root/tests/data/sample6.jpg" >/dev/null
photos=("$root"/tests/data/sample{1,2,3,4,5,6}.jpg "$root/tests/data/kiosk640.jpg")
"$edgeid" --config "$tract" --json identify --gallery "$g" "${photos[@]}" > "$work/tract.jsonl"
"$edgeid" --config "$cuda" --json identify --gallery "$g" "${photos[@]}" > "$work/cuda.jsonl"
python3 "$root/tools/compare_decisions.py" "$work/tract.jsonl" "$work/cuda.jsonl" | tee "$out/decisions.txt"

echo "== bench: ort (CPU) and $backend in one run"
for photo in sample1 kiosk640; do
  "$edgeid" --config "$cuda" --json bench "$root/tests/data/$photo.jpg" --backend ort \
    --backend "$backend" --runs "$runs" --streams 1,2,4 --report "$out/bench-$photo.md" \
    > "$out/bench-$photo.json"
done

echo "== cuDNN algorithm search ($backend, sample1)"
for search in $searches; do
  "$edgeid" --config "$(config "$backend" $search)" --json bench "$root/tests/data/sample1.jpg" \
    --backend "$backend" --runs "$runs" > "$out/cudnn-$search.json"
done

echo "== NHWC convolutions ($backend)"
for photo in sample1 kiosk640; do
  "$edgeid" --config "$(config "$backend" exhaustive true)" --json bench \
    "$root/tests/data/$photo.jpg" --backend "$backend" --runs "$runs" > "$out/nhwc-$photo.json"
done

echo "== TensorRT"
"$edgeid" --config "$(config ort-tensorrt exhaustive)" identify --gallery "$g" \
  "$root/tests/data/sample1.jpg" > "$out/tensorrt.txt" 2>&1 || echo "(refused: $(tail -1 "$out/tensorrt.txt"))"

python3 "$root/tools/gpu_summary.py" "$out" "$backend"
