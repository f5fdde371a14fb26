#!/usr/bin/env bash
# The daemon's sustained rate on a 640×480 one-person replay (tests/data/kiosk640.jpg), as a
# kiosk camera would feed it: runs the daemon on 150 and on 300 frames (not paced: the source
# waits for the pipeline) and reports what the extra 150 frames cost, so model loading and
# start-up do not count. Medians of 3 runs each.
#   tools/kiosk-rate.sh [EDGEID_BINARY] [CONFIG]   (defaults: target/release/edgeid, configs/default.toml)
# Extra settings for the config can be given as sed expressions in $EDITS, e.g.
#   EDITS='s/^reencode_every_frames = 10/reencode_every_frames = 0/' tools/kiosk-rate.sh
set -euo pipefail
. "$(dirname "$0")/kiosk-common.sh"
measure() { # frames -> "wall user sys faults" medians
    local n=$1
    for _ in $(seq "$n"); do echo "$root/tests/data/kiosk640.jpg"; done > "$tmp/k$n.txt"
    kiosk_config "$tmp/k$n.txt" "$tmp/c$n.toml"
    for _ in 1 2 3; do
        rm -f "$tmp"/journal.db*
        /usr/bin/time -f "%e %U %S %R" -o "$tmp/t" "$bin" --config "$tmp/c$n.toml" run > /dev/null 2>&1
        cat "$tmp/t"
    done | sort -n | sed -n 2p
}
read -r w1 u1 s1 f1 <<< "$(measure 150)"
read -r w2 u2 s2 f2 <<< "$(measure 300)"
awk -v w1="$w1" -v w2="$w2" -v u1="$u1" -v u2="$u2" -v s1="$s1" -v s2="$s2" -v f1="$f1" -v f2="$f2" 'BEGIN {
    fps = 150 / (w2 - w1); sys = (s2 - s1) / ((u2 - u1) + (s2 - s1)); faults = (f2 - f1) / 150
    printf "150 frames: %.2f s; 300 frames: %.2f s -> %.1f frames/s; system time %.1f%% of CPU; %.0f page faults per frame\n", w1, w2, fps, 100 * sys, faults
}'
