#!/usr/bin/env python3
"""Soak run: the daemon on the looping replay of the sample photos for a long time, sampling
its resident memory and counters; fails (exit 1) if memory grows.

    cargo build --release && python3 tools/soak.py --minutes 30 [--fps 10] [--out soak.csv]

Every sample (each --every seconds) prints elapsed time, RSS, frames in / processed / dropped
and decisions, from /proc/<pid>/status and the daemon's /metrics. The first --warmup minutes
(plans built, caches filled) are left out; RSS swings by tens of MiB with the frames and faces
in flight, so memory is flat when the median RSS of the last third of the remaining samples
is within --tolerance of the median of the first third (no trend); the least-squares slope is
reported too. Needs only Python's standard library and a
release build (target/release/edgeid); runs in a temporary folder, touches nothing else.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp, fps, port):
    text = open(os.path.join(ROOT, "configs/default.toml")).read()
    models = os.path.join(ROOT, "models") + "/"
    replay = os.path.join(ROOT, "tests/data/replay.txt")
    for old, new in [
        ("../models/", models),
        ('path = "../tests/data/replay.txt"', f'path = "{replay}"'),
        ("fps = 0\n", f"fps = {fps}\n"),
        ("loop = false", "loop = true"),
        ('http = "127.0.0.1:9464"', f'http = "127.0.0.1:{port}"'),
        ("../var/", tmp + "/"),
    ]:
        assert old in text, f"configs/default.toml no longer has {old!r}"
        text = text.replace(old, new)
    path = os.path.join(tmp, "edgeid.toml")
    open(path, "w").write(text)
    return path


def rss_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = {}
    for line in text.splitlines():
        m = re.match(r"(edgeid_\w+?)(\{.*\})? ([0-9.e+-]+)$", line)
        if m and not line.startswith("#"):
            total[m.group(1)] = total.get(m.group(1), 0) + float(m.group(3))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--fps", type=float, default=10, help="replay rate (a camera's frames/s)")
    ap.add_argument("--every", type=float, default=30, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=2, help="minutes before the reference")
    ap.add_argument("--tolerance", type=float, default=0.10, help="allowed RSS growth")
    ap.add_argument("--out", help="also write the samples as CSV")
    args = ap.parse_args()

    binary = os.path.join(ROOT, "target/release/edgeid")
    if not os.access(binary, os.X_OK):
        sys.exit(f"error: {binary} is missing; run `cargo build --release` first")
    tmp = tempfile.mkdtemp(prefix="edgeid-soak-")
    port = free_port()
    cfg = config(tmp, args.fps, port)
    for name, photo in [("alice", "sample2.jpg"), ("bob", "sample3.jpg")]:
        subprocess.run(
            [binary, "--config", cfg, "enroll", "--name", name, os.path.join(ROOT, "tests/data", photo)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    daemon = subprocess.Popen([binary, "--config", cfg, "run"], stderr=subprocess.DEVNULL)
    rows, start = [], time.time()
    try:
        for _ in range(100):
            try:
                metrics(port)
                break
            except OSError:
                time.sleep(0.5)
        print("   min   RSS MiB  frames in  processed  dropped  decisions")
        while True:
            elapsed = time.time() - start
            if daemon.poll() is not None:
                sys.exit(f"error: the daemon exited early with status {daemon.returncode}")
            m = metrics(port)
            row = (
                elapsed / 60,
                rss_mib(daemon.pid),
                int(m.get("edgeid_frames_in_total", 0)),
                int(m.get("edgeid_frames_processed_total", 0)),
                int(m.get("edgeid_frames_dropped_total", 0)),
                int(m.get("edgeid_decisions_total", 0)),
            )
            rows.append(row)
            print("%6.1f  %8.1f  %9d  %9d  %7d  %9d" % row, flush=True)
            if elapsed >= args.minutes * 60:
                break
            time.sleep(min(args.every, max(0.0, args.minutes * 60 - elapsed)))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        if args.out:
            with open(args.out, "w") as f:
                f.write("minutes,rss_mib,frames_in,processed,dropped,decisions\n")
                for r in rows:
                    f.write("%.2f,%.1f,%d,%d,%d,%d\n" % r)
        shutil.rmtree(tmp, ignore_errors=True)

    after = [r for r in rows if r[0] >= args.warmup]
    if len(after) < 6:
        sys.exit("error: fewer than 6 samples after the warm-up; give more --minutes or a smaller --every")
    verdict = summarise(after, rows[-1], args.tolerance)
    sys.exit(0 if verdict else 1)


def summarise(after, end, tolerance):
    """Prints the run's figures; True when memory is flat."""
    third = len(after) // 3
    first = statistics.median(r[1] for r in after[:third])
    last = statistics.median(r[1] for r in after[-third:])
    xs, ys = [r[0] for r in after], [r[1] for r in after]
    slope = statistics.linear_regression(xs, ys).slope * 60
    ref = after[0]
    seconds = (end[0] - ref[0]) * 60
    print(
        f"RSS median {first:.1f} MiB (first third after warm-up) -> {last:.1f} MiB (last third); "
        f"range {min(ys):.1f}-{max(ys):.1f}; trend {slope:+.1f} MiB/hour"
    )
    print(
        f"{end[5]} decisions ({(end[5] - ref[5]) / seconds:.2f}/s after warm-up); frames {end[2]} in, "
        f"{end[3]} processed ({(end[3] - ref[3]) / seconds:.2f}/s), {end[4]} dropped "
        f"({100 * end[4] / max(end[2], 1):.1f}%)"
    )
    if last > first * (1 + tolerance):
        print(f"FAIL: memory grew by more than {tolerance:.0%}")
        return False
    print("memory flat")
    return True


if __name__ == "__main__":
    main()
