# Sourced by cross/build.sh and cross/test.sh: `. cross/env.sh aarch64|armv7`.
# Sets $triple, $gnu (the Debian toolchain prefix) and $qemu, installs what is missing (Debian's
# cross toolchain and qemu-user, as root), adds the Rust target, and exports what cargo needs to
# link with Debian's cross gcc and run with qemu-user.
case "${1:-}" in
  aarch64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; deb=arm64; qemu=qemu-aarch64 ;;
  armv7) triple=armv7-unknown-linux-gnueabihf; gnu=arm-linux-gnueabihf; deb=armhf; qemu=qemu-arm ;;
  *) echo "usage: $0 aarch64|armv7 ..." >&2; exit 2 ;;
esac

need="gcc-$gnu libc6-dev-$deb-cross linux-libc-dev-$deb-cross qemu-user libclang-dev"
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "$0: install first (as root): apt-get install $(echo $missing)" >&2
    exit 1
  fi
  apt-get update && apt-get install -y $missing
fi
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"

upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
# Test binaries run under qemu-user with the target's libraries from Debian's cross packages.
export "CARGO_TARGET_${upper}_RUNNER=$qemu -L /usr/$gnu"
export "CC_${triple//-/_}=$gnu-gcc"
# bindgen (V4L2 headers) must parse the target's headers, not the host's. The target's own
# variable: the generic one would also reach the native build and rebuild its V4L2 bindings.
export "BINDGEN_EXTRA_CLANG_ARGS_${triple//-/_}=--target=$triple -I/usr/$gnu/include"
# How to run one of the target's programs here.
run_emulated() { "$qemu" -L "/usr/$gnu" "$@"; }

# compare_with_native BIN: enrols $people (name:photo, photos from tests/data) and identifies
# $photos with the native release binary and with the target's BIN under qemu, in fresh
# galleries, and fails unless both say the same (cross/compare.py).
compare_with_native() {
  # The native binary as `cargo test --release` builds it (a plain `cargo build` resolves the
  # dependencies' features without the dev-dependencies and would rebuild part of tract).
  cargo test --release --no-run --test it
  local dir label p
  dir=$(mktemp -d)
  for label in native emulated; do
    local run=(target/release/edgeid)
    [ "$label" = emulated ] && run=(run_emulated "$1")
    for p in "${people[@]}"; do
      "${run[@]}" enroll --gallery "$dir/$label.db" --name "${p%%:*}" "tests/data/${p#*:}.jpg" >/dev/null
    done
    "${run[@]}" identify --json --gallery "$dir/$label.db" "${photos[@]}" >"$dir/$label.jsonl"
  done
  python3 cross/compare.py "$dir/native.jsonl" "$dir/emulated.jsonl" || { rm -rf "$dir"; return 1; }
  rm -rf "$dir"
}
