#!/usr/bin/env python3
"""The GPU check's summary (tools/gpu-check.sh): ort-cuda (or argv[2]) against ort on the CPU per photo, the
first frame against the median, throughput and memory, and cuDNN's search modes.

Exits 1 when ort-cuda's whole frame is not at least 5x ort's, or its first frame over 2x its
median."""
import json
import os
import sys


def stage(run, name):
    return next(s for s in run["stages"] if s["stage"] == name)["p50_ms"]


def first_parts(run):
    """The first frame's stages (bench reports from before they were split have detect only)."""
    names = ("detect", "align", "encode", "pad")
    return ", ".join(f"{n} {run[f'first_{n}_ms']:.1f}" for n in names
                     if run.get(f"first_{n}_ms") is not None) + " ms"


def main(out, backend):
    failed = False
    print("| photo | backend | detect | encode | pad | frame p50 | first frame | cameras 1/2/4 (fps) | GPU MiB | RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for photo in ("sample1", "kiosk640"):
        with open(os.path.join(out, f"bench-{photo}.json")) as f:
            r = json.load(f)
        runs = {b["backend"]: b for b in r["backends"]}
        for name, b in runs.items():
            fps = "/".join(f"{t['fps']:.0f}" for t in b["throughput"])
            gpu = f"{b['gpu_mib']:.0f}" if b["gpu_mib"] else "-"
            print(f"| {photo} {r['width']}x{r['height']} | {name} | {stage(b, 'detect'):.2f} | "
                  f"{stage(b, 'encode'):.2f} | {stage(b, 'pad'):.2f} | {stage(b, 'frame'):.2f} | "
                  f"{b['first_frame_ms']:.1f} | {fps} | {gpu} | {b['peak_rss_mib']:.0f} |")
        cpu, gpu = runs["ort"], runs[backend]
        speedup = stage(cpu, "frame") / stage(gpu, "frame")
        first = gpu["first_frame_ms"] / stage(gpu, "frame")
        print(f"{photo}: {backend} {speedup:.1f}x ort's whole frame (bar 5x); first frame "
              f"{first:.2f}x the median (bar 2x; {first_parts(gpu)}, second "
              f"frame {gpu['second_frame_ms']:.1f} ms); device {', '.join(r['device']['gpus'])}")
        firsts = [f"{m['model']} {m['first_run_ms']:.1f} ms (p50 {m['p50_ms']:.2f})"
                  for m in r["models"] if m["backend"] == backend and "first_run_ms" in m]
        if firsts:
            print(f"{photo}: {backend} first run of each model after load: {', '.join(firsts)}")
        failed |= speedup < 5 or first > 2
    variants = [f"cudnn-{s}" for s in ("exhaustive", "heuristic", "default")]
    variants += ["nhwc-sample1", "nhwc-kiosk640"]
    for variant in variants:
        path = os.path.join(out, f"{variant}.json")
        if os.path.exists(path):
            with open(path) as f:
                b = json.load(f)["backends"][0]
            print(f"{variant}: load {b['load_ms']:.0f} ms, first frame "
                  f"{b['first_frame_ms']:.1f} ms ({first_parts(b)}), second "
                  f"{b['second_frame_ms']:.1f} ms, frame p50 {stage(b, 'frame'):.2f} ms, "
                  f"detect {stage(b, 'detect'):.2f}, encode {stage(b, 'encode'):.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ort-cuda"))
