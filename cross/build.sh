#!/usr/bin/env bash
# Cross-compiles edgeid for an ARM device without a container engine: Debian's cross
# toolchains link, qemu-user runs the result.
#
#   cross/build.sh aarch64             # release build for aarch64-unknown-linux-gnu (Jetson, Pi 4/5)
#   cross/build.sh armv7               # release build for armv7-unknown-linux-gnueabihf
#   cross/build.sh aarch64 identify    # build, then run `edgeid identify` on a sample photo under qemu
#
# Needs root for apt-get the first time (or the packages below already installed), and
# `rustup target add` (rustup's own download). The binary lands in
# target/<triple>/release/edgeid; copy it with models/ and a config (README: Running as a service).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  aarch64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; deb=arm64; qemu=qemu-aarch64 ;;
  armv7) triple=armv7-unknown-linux-gnueabihf; gnu=arm-linux-gnueabihf; deb=armhf; qemu=qemu-arm ;;
  *) echo "usage: cross/build.sh aarch64|armv7 [identify]" >&2; exit 2 ;;
esac

need="gcc-$gnu libc6-dev-$deb-cross linux-libc-dev-$deb-cross qemu-user libclang-dev"
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "install first (as root): apt-get install $missing" >&2; exit 1; fi
  apt-get update && apt-get install -y $missing
fi
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"

upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
export "CARGO_TARGET_${upper}_RUNNER=$qemu -L /usr/$gnu"
export "CC_${triple//-/_}=$gnu-gcc"
# bindgen (V4L2 headers) must parse the target's headers, not the host's.
export BINDGEN_EXTRA_CLANG_ARGS="--target=$triple -I/usr/$gnu/include"

cargo build --release --target "$triple"
ls -l "target/$triple/release/edgeid"

if [ "${2:-}" = identify ]; then
  gallery=$(mktemp -d)/gallery.db
  run="$qemu -L /usr/$gnu target/$triple/release/edgeid"
  $run enroll --gallery "$gallery" --name alice tests/data/sample2.jpg
  $run identify --gallery "$gallery" tests/data/sample1.jpg
fi
