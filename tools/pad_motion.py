#!/usr/bin/env python3
"""Measures a cue only video has, for presentation-attack detection: rigid motion.

    python3 tools/pad_motion.py DATASET [--edgeid target/release/edgeid] [--config configs/default.toml]

A printed or displayed face moves with its paper or screen: the ring of pixels just around the
face box moves as the face does. A live face moves against its surroundings: the ring (the
room) stays still. For each two consecutive captures of one sequence (files of one folder whose
names differ only in their final number, in natural order) of full frames (webcam captures; the
tight NUAA crops have no surroundings and are left out), it takes the largest face's box from
`edgeid identify --json`, the face's displacement, and the ring's displacement by phase
correlation (a ring from --inner to --outer times the box); rigidity = |face - ring| / |face|,
near 0 when the ring moved with the face (an attack), near 1 when it stayed (live). Pairs where
the face moved by less than 5% of its size carry no evidence and are counted apart. Prints the
rigidity's equal error rate as a live score, with the pairs behind it (docs/evaluation.md has
what it gave on ../shared/data/pad-dev: no better than chance, so the daemon does not use it).
Needs numpy and Pillow.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image


def natural(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def ring(shape, box, inner, outer):
    h, w = shape
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1])
    yy, xx = np.mgrid[0:h, 0:w]
    within = lambda k: (abs(xx - cx) <= side * k / 2) & (abs(yy - cy) <= side * k / 2)
    return within(outer) & ~within(inner)


def displacement(a, b, mask):
    """The translation of b against a over the mask, by phase correlation."""
    fa = np.fft.fft2((a - a[mask].mean()) * mask)
    fb = np.fft.fft2((b - b[mask].mean()) * mask)
    cross = fa.conj() * fb
    peak = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(peak), peak.shape)
    h, w = peak.shape
    return np.array([dx - w if dx > w // 2 else dx, dy - h if dy > h // 2 else dy], float)


def eer(bona_fide, attacks):
    best = (1.0, 0.0)
    for t in np.unique(np.concatenate([bona_fide, attacks])):
        apcer, bpcer = np.mean(attacks >= t), np.mean(bona_fide < t)
        if abs(apcer - bpcer) < best[0]:
            best = (abs(apcer - bpcer), (apcer + bpcer) / 2)
    return best[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--edgeid", default="target/release/edgeid")
    ap.add_argument("--config", default="configs/default.toml")
    ap.add_argument("--inner", type=float, default=1.3)
    ap.add_argument("--outer", type=float, default=2.2)
    a = ap.parse_args()
    sequences = collections.defaultdict(list)
    for root, _dirs, files in os.walk(a.dataset):
        for name in files:
            if name.lower().endswith((".jpg", ".png")) and not name.startswith("nuaa_"):
                kind = "attack" if os.sep + "attacks" + os.sep in os.path.join(root, "") else "bona_fide"
                sequences[(kind, root, re.sub(r"\d+$", "", os.path.splitext(name)[0]))].append(os.path.join(root, name))
    paths = sorted(p for ps in sequences.values() for p in ps)
    if not paths:
        sys.exit(f"{a.dataset}: no full-frame captures (eval's layout, not nuaa_ crops)")
    # A throwaway gallery: identify needs one; the boxes are what is read.
    gallery = "/tmp/pad_motion_gallery.db"
    for suffix in ("", ".key"):
        if os.path.exists(gallery + suffix):
            os.remove(gallery + suffix)
    subprocess.run([a.edgeid, "--config", a.config, "enroll", "--gallery", gallery, "--name", "x", paths[0]],
                   check=True, capture_output=True)
    out = subprocess.run([a.edgeid, "--config", a.config, "identify", "--json", "--gallery", gallery, *paths],
                         capture_output=True, text=True)
    boxes = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        if r.get("faces"):
            boxes[r["image"]] = max((f["box"] for f in r["faces"]), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    scores = {"bona_fide": [], "attack": []}
    still = 0
    for (kind, _root, _prefix), ps in sorted(sequences.items()):
        ps = sorted(ps, key=lambda p: natural(os.path.basename(p)))
        for p, q in zip(ps, ps[1:]):
            if p not in boxes or q not in boxes:
                continue
            ga = np.asarray(Image.open(p).convert("L"), np.float32)
            gb = np.asarray(Image.open(q).convert("L"), np.float32)
            if ga.shape != gb.shape:
                continue
            b, c = np.array(boxes[p]), np.array(boxes[q])
            face = (c[:2] + c[2:]) / 2 - (b[:2] + b[2:]) / 2
            if np.linalg.norm(face) < 0.05 * max(b[2] - b[0], b[3] - b[1]):
                still += 1
                continue
            around = displacement(ga, gb, ring(ga.shape, b, a.inner, a.outer))
            scores[kind].append(np.linalg.norm(face - around) / np.linalg.norm(face))
    bf, at = np.array(scores["bona_fide"]), np.array(scores["attack"])
    if len(bf) == 0 or len(at) == 0:
        sys.exit("too few moving pairs of both kinds to measure")
    print(f"ring {a.inner}-{a.outer}x the box: rigidity as a live score, EER {100 * eer(bf, at):.1f}% "
          f"({len(bf)} bona fide and {len(at)} attack pairs where the face moved; {still} pairs where it did not)")


if __name__ == "__main__":
    main()
