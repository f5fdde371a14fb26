#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each (default 30), starting from
# the committed corpus (fuzz/corpus/<target>, only read) and writing new inputs to
# fuzz/target/corpus/<target>. A crash stops the run with the input under fuzz/artifacts/.
#
#   tools/fuzz.sh [SECONDS]   # build every target, then fuzz them FUZZ_JOBS at a time (default 2)
#   tools/fuzz.sh build       # only build them
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed
# from crates.io if missing). Each fuzzer is one process on one core, so two run side by side on
# a two-core machine in the time of one.
# FUZZ_BUILD=--dev builds the targets unoptimised: about half the build time (every dependency,
# tract included, is instrumented), ~15x fewer executions per second (image: ~150/s against
# ~2,300/s). Fuzz in earnest with the default (-O); CI does not fuzz (it replays the corpus:
# tests/it/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
build="${FUZZ_BUILD:--O}"
jobs="${FUZZ_JOBS:-2}"
targets=(image config manifest replay_list mjpeg yuyv transfer signed_set dmad_weights)
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "tools/fuzz.sh: no nightly toolchain; install it with \`rustup toolchain install nightly\`" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build "$build"
[ "$seconds" = build ] && exit 0

run_one() {
  local target=$1 log="fuzz/target/$1.log"
  mkdir -p "fuzz/target/corpus/$target"
  cargo +nightly fuzz run "$build" "$target" "fuzz/target/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
}
failed=()
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  batch=("${targets[@]:i:jobs}")
  echo "== fuzz ${batch[*]} for ${seconds}s"
  pids=()
  for target in "${batch[@]}"; do
    run_one "$target" &
    pids+=($!)
  done
  for j in "${!pids[@]}"; do
    target=${batch[$j]}
    if wait "${pids[$j]}"; then
      echo "-- $target"
      grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ +DONE' "fuzz/target/$target.log" || true
    else
      tail -n 60 "fuzz/target/$target.log"
      failed+=("$target")
    fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tools/fuzz.sh: ${failed[*]} failed; the inputs are under fuzz/artifacts/<target>/" >&2
  exit 1
fi
