#!/usr/bin/env bash
# What a person at a kiosk waits: from their first frame to their decision being journaled.
# Replays tests/data/kiosk640.jpg as a 30 frames/s camera would (paced), 10 arrivals: the person
# for 15 frames, then an empty scene for 5 (their track ends), and prints the run's median and
# largest wait (`run --json`: decision_latency_ms) with the rate it kept up with.
#   tools/kiosk-latency.sh [EDGEID_BINARY] [CONFIG]   (defaults: target/release/edgeid, configs/default.toml)
# Extra settings for the config as sed expressions in $EDITS (as tools/kiosk-rate.sh).
set -euo pipefail
. "$(dirname "$0")/kiosk-common.sh"
# An empty 640×480 grey scene (a BMP: no image tool needed).
python3 - "$tmp/empty.bmp" <<'PY'
import struct, sys
w, h = 640, 480
pixels = bytes([128]) * (w * h * 3)
header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
open(sys.argv[1], "wb").write(header + info + pixels)
PY
for _ in $(seq 10); do
    for _ in $(seq 15); do echo "$root/tests/data/kiosk640.jpg"; done
    for _ in $(seq 5); do echo "$tmp/empty.bmp"; done
done > "$tmp/arrivals.txt"
kiosk_config "$tmp/arrivals.txt" "$tmp/c.toml" 's#^fps = 0$#fps = 30#'
grep -q '^fps = 30$' "$tmp/c.toml" || { echo "the config has no 'fps = 0' line to pace" >&2; exit 1; }
"$bin" --config "$tmp/c.toml" --json run 2> /dev/null > "$tmp/run.json"
python3 - "$tmp/run.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c, l = s["cameras"][0], s["decision_latency_ms"]
print(f"{l['decisions']} arrivals at 30 frames/s: first frame to journaled decision median "
      f"{l['median']} ms, at most {l['max']} ms; {c['frames_processed']} of {c['frames_in']} "
      f"frames processed, {c['frames_dropped']} dropped")
PY
