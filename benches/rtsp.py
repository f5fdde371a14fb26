#!/usr/bin/env python3
"""An RTSP camera against the replay of the same frames, through the whole daemon.

    cargo build --release --features gstreamer && python3 benches/rtsp.py [--seconds 40] [--fps 15]

For each size (640x480, 1280x720): GStreamer's RTSP server (tests/support/rtsp_server.py, the
tests' server) streams the bundled photos as H.264 at --fps, looped, in the replay list's
order; `edgeid run` (configs/default.toml, liveness not required, one camera) reads it for
--seconds; then the same frames, as the server scaled them, are replayed at the same rate.
Printed per run: frames in and processed per second, the share dropped, the median time from
a frame's capture time to its place in the queue (what decoding adds), and the median time
from a person's first frame to their journaled decision. Compare the rows of one run: the
machine's load moves them all.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDGEID = os.path.join(ROOT, "target", "release", "edgeid")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frames(tmp):
    """The replay list's photos as numbered links, as the tests make them."""
    out = os.path.join(tmp, "frames")
    os.mkdir(out)
    listed = [
        l.split("#")[0].strip()
        for l in open(os.path.join(ROOT, "tests", "data", "replay.txt"))
    ]
    listed = [l for l in listed if l]
    for i, name in enumerate(listed):
        os.symlink(os.path.join(ROOT, "tests", "data", name), os.path.join(out, f"{i:03d}.jpg"))
    return os.path.join(out, "%03d.jpg"), len(listed)


def scaled(pattern, count, size, out):
    w, h = size.split("x")
    os.mkdir(out)
    subprocess.run(
        ["gst-launch-1.0", "-q"]
        + (
            f"multifilesrc location={pattern} stop-index={count - 1} caps=image/jpeg,framerate=2/1 "
            f"! jpegdec ! videoconvert ! videoscale ! video/x-raw,format=I420,width={w},height={h},"
            f"pixel-aspect-ratio=1/1,colorimetry=bt601 ! videoconvert ! pngenc ! multifilesink location={out}/%03d.png"
        ).split(),
        check=True,
    )


def config(tmp, name, source):
    text = open(os.path.join(ROOT, "configs", "default.toml")).read()
    text = text.replace("../models/", os.path.join(ROOT, "models") + "/").replace("../var/", "")
    text = text.replace("require_live = true\n", "require_live = false\n")
    text = text.replace('http = "127.0.0.1:9464"', 'http = ""')
    start = text.index("[[sources]]")
    end = text.index("\n", text.index("\nloop = ", start) + 1) + 1
    text = text[:start] + source + text[end:]
    d = os.path.join(tmp, name)
    os.mkdir(d)
    path = os.path.join(d, "edgeid.toml")
    open(path, "w").write(text)
    subprocess.run(
        [EDGEID, "--config", path, "enroll", "--name", "alice",
         os.path.join(ROOT, "tests", "data", "sample2.jpg")],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return path


def run(path, seconds):
    p = subprocess.Popen(
        [EDGEID, "--json", "--config", path, "run"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    time.sleep(seconds)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    cam = summary["cameras"][0]
    secs = summary["seconds"]
    age = cam.get("frame_age_ms") or {}
    waited = summary.get("decision_latency_ms") or {}
    return {
        "in_fps": cam["frames_in"] / secs,
        "processed_fps": cam["frames_processed"] / secs,
        "dropped": cam["frames_dropped"] / max(cam["frames_in"], 1),
        "age_ms": age.get("median"),
        "waited_ms": waited.get("median"),
        "decisions": summary["decisions"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--sizes", default="640x480,1280x720")
    args = ap.parse_args()
    if not os.path.exists(EDGEID):
        sys.exit("build first: cargo build --release --features gstreamer")
    tmp = tempfile.mkdtemp(prefix="edgeid-rtsp-bench-")
    try:
        pattern, count = frames(tmp)
        print(f"{os.cpu_count()} cores, {args.fps} fps offered, {args.seconds:.0f} s a run")
        print("| source | size | in fps | processed fps | dropped | capture→queue median ms | first frame→decision median ms | decisions |")
        print("|---|---|---|---|---|---|---|---|")
        for size in args.sizes.split(","):
            port = free_port()
            server = subprocess.Popen(
                ["/usr/bin/python3", os.path.join(ROOT, "tests", "support", "rtsp_server.py"),
                 "--port", str(port), "--frames", pattern, "--fps", str(args.fps), "--size", size],
                stdout=subprocess.PIPE, text=True,
            )
            assert server.stdout.readline().strip() == "ready"
            try:
                rtsp = config(tmp, f"rtsp-{size}", (
                    f'[[sources]]\nkind = "rtsp"\nname = "camera"\n'
                    f'url = "rtsp://127.0.0.1:{port}/cam"\n'))
                r = run(rtsp, args.seconds)
            finally:
                server.kill()
                server.wait()
            out = os.path.join(tmp, f"scaled-{size}")
            scaled(pattern, count, size, out)
            replay = config(tmp, f"replay-{size}", (
                f'[[sources]]\nkind = "replay"\nname = "camera"\npath = "{out}"\n'
                f"fps = {args.fps}\nloop = true\n"))
            p = run(replay, args.seconds)
            for name, m in (("rtsp (H.264)", r), ("replay (PNG)", p)):
                print(f"| {name} | {size} | {m['in_fps']:.1f} | {m['processed_fps']:.2f} | "
                      f"{m['dropped']:.0%} | {m['age_ms']} | {m['waited_ms']} | {m['decisions']} |")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
