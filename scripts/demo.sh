#!/usr/bin/env bash
# The demo on the bundled models and photos: enrol two people from one photo each, then
# identify every face in the other photos. Uses a fresh gallery in var/demo.db.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
edgeid=target/release/edgeid
gallery=var/demo.db
rm -f "$gallery" "$gallery-wal" "$gallery-shm"

echo "== enrol: the largest face of sample2.jpg as alice, of sample3.jpg as beth"
$edgeid enroll --gallery "$gallery" --name alice tests/data/sample2.jpg
$edgeid enroll --gallery "$gallery" --name beth tests/data/sample3.jpg
echo
echo "== gallery"
$edgeid gallery list --gallery "$gallery"
echo
echo "== identify: sample1.jpg shows both of them among others; sample5.jpg shows neither"
$edgeid identify --gallery "$gallery" tests/data/sample1.jpg tests/data/sample5.jpg
echo
echo "== morph attack: a morph of alice and beth (var/morph.jpg) matches both, so enrolling it is refused"
$edgeid morph tests/data/sample2.jpg tests/data/sample3.jpg -o var/morph.jpg
if $edgeid enroll --gallery "$gallery" --name mallory var/morph.jpg; then
    echo "unexpected: the morph was enrolled" >&2
    exit 1
fi
echo
echo "== tags: what else is in the pictures (never part of the decision)"
$edgeid tag tests/data/sample1.jpg tests/data/sample3.jpg
