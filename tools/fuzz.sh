#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each (default 30), starting from
# the committed corpus (fuzz/corpus/<target>, only read) and writing new inputs to
# fuzz/target/corpus/<target>. A crash stops the run with the input under fuzz/artifacts/.
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed
# from crates.io if missing).
# FUZZ_BUILD=--dev builds the targets unoptimised: about half the build time (every dependency,
# tract included, is instrumented), ~15x fewer executions per second (image: ~150/s against
# ~2,300/s). CI takes that for its smoke run; fuzz in earnest with the default (-O).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
build="${FUZZ_BUILD:--O}"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "tools/fuzz.sh: no nightly toolchain; install it with \`rustup toolchain install nightly\`" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in image config manifest replay_list; do
  mkdir -p "fuzz/target/corpus/$target"
  echo "== fuzz $target for ${seconds}s"
  log="fuzz/target/$target.log"
  if ! cargo +nightly fuzz run "$build" "$target" "fuzz/target/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "tools/fuzz.sh: $target failed; the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$log" || true
done
