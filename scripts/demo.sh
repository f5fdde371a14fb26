#!/usr/bin/env bash
# The demo on the bundled models and photos: enrol two people from one photo each, then
# identify every face in other photos, then a morph of the two, then what each model may be
# used for. `scripts/demo.sh [CONFIG]`: configs/default.toml unless another config is given
# (configs/licence-clean.toml: only models a device may ship). Uses a fresh gallery in
# var/demo.db (var/demo-<config name>.db for another config).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/default.toml}
cargo build --release --quiet
edgeid="target/release/edgeid --config $config"
mkdir -p var
gallery=var/demo.db
if [ "$config" != configs/default.toml ]; then
  gallery="var/demo-$(basename "$config" .toml).db"
fi
rm -f "$gallery" "$gallery-wal" "$gallery-shm"

echo "== enrol: the largest face of sample3.jpg as alice, of sample6.jpg as beth"
$edgeid enroll --gallery "$gallery" --name alice tests/data/sample3.jpg
$edgeid enroll --gallery "$gallery" --name beth tests/data/sample6.jpg
echo
echo "== gallery"
$edgeid gallery list --gallery "$gallery"
echo
echo "== identify: sample1.jpg shows alice among others; sample5.jpg shows neither"
$edgeid identify --gallery "$gallery" tests/data/sample1.jpg tests/data/sample5.jpg
echo
echo "== morph attack: a morph of alice and beth (var/morph.jpg), identified against the gallery"
echo "   (no morph check of this config catches it: docs/evaluation.md, \"Morphing attacks\")"
$edgeid morph tests/data/sample3.jpg tests/data/sample6.jpg -o var/morph.jpg
$edgeid identify --gallery "$gallery" var/morph.jpg
echo
echo "== tags: what else is in the pictures (never part of the decision)"
$edgeid tag tests/data/sample1.jpg tests/data/sample3.jpg
echo
echo "== models: what each may be used for (a device sold with a research-only model may breach its terms)"
$edgeid models list | grep -v '^    '
