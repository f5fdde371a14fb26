#!/usr/bin/env bash
# Cross-compiles edgeid for an ARM device without a container engine: Debian's cross
# toolchains link, qemu-user runs the result.
#
#   cross/build.sh aarch64             # the `device` profile for aarch64-unknown-linux-gnu (Jetson, Pi 4/5)
#   cross/build.sh armv7               # the same for armv7-unknown-linux-gnueabihf (tract only)
#   cross/build.sh aarch64 identify    # build, then enrol and identify a sample photo under qemu, compared with native
#   cross/build.sh armv7 check         # type-check only (CI)
#   FEATURES=ort cross/build.sh aarch64   # with the onnxruntime backends (Jetson)
#   PROFILE=release cross/build.sh armv7   # the release profile: no LTO, builds minutes sooner
#
# Needs root for apt-get the first time (or the packages in cross/env.sh already installed),
# and `rustup target add` (rustup's own download). The binary lands in
# target/<triple>/<profile>/edgeid; install it with models/ and a config (README: Installing on a
# device).
set -euo pipefail
cd "$(dirname "$0")/.."
. cross/env.sh "${1:-}"

profile="${PROFILE:-device}"
if [ "${2:-}" = check ]; then
  # Type-check only (what CI does for armv7): the target's own code paths compile (32-bit
  # widths, its tract kernels' build), in a minute and a half instead of a build and a run.
  cargo check --release --target "$triple" --bin edgeid ${FEATURES:+--features "$FEATURES"}
  exit 0
fi
cargo build --profile "$profile" --target "$triple" --bin edgeid ${FEATURES:+--features "$FEATURES"}
bin="target/$triple/$profile/edgeid"
echo "$bin: $(stat -c %s "$bin") bytes"

if [ "${2:-}" = identify ]; then
  # alice enrolled from sample2, then sample1 (three faces, one of them hers) identified by
  # this build under qemu and by the native one: the same faces, names and scores.
  people=(alice:sample2) photos=(tests/data/sample1.jpg)
  compare_with_native "$bin"
fi
