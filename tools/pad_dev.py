#!/usr/bin/env python3
"""Lays out presentation-attack captures for `edgeid eval`, with tight face crops given room.

    python3 tools/pad_dev.py SRC OUT [--margin 0.5]

SRC is in `edgeid eval`'s layout (bona fide `<subject>/*.jpg`, attacks `attacks/<kind>/*.jpg`),
such as ../shared/data/pad-dev. Full frames (640x480 webcam captures) are linked into OUT as
they are. Tight face crops (NUAA's, named `nuaa_*`: the face fills the image) are written with a
border of `margin` x their width on every side, made of their own edge pixels repeated: the
detector does not find a face that fills its whole input (226 of NUAA's 320 crops, unpadded),
and a black border reads as a screen's bezel to PAD heads that look at the face's surroundings
(MiniFASNet: NUAA's bona fide crops then score as attacks; docs/evaluation.md). OUT is made
anew; nothing is written into SRC. Needs Pillow and numpy.
"""

import argparse
import os
import shutil
import sys

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--margin", type=float, default=0.5)
    a = ap.parse_args()
    if not os.path.isdir(a.src):
        sys.exit(f"{a.src}: no such folder; give the captures' folder (e.g. ../shared/data/pad-dev)")
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    padded = linked = 0
    for root, _dirs, files in os.walk(a.src):
        rel = os.path.relpath(root, a.src)
        os.makedirs(os.path.join(a.out, rel), exist_ok=True)
        for name in sorted(files):
            if not name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            src = os.path.join(root, name)
            dst = os.path.join(a.out, rel, name)
            if name.startswith("nuaa_"):
                img = np.asarray(Image.open(src).convert("RGB"))
                m = int(round(img.shape[1] * a.margin))
                Image.fromarray(np.pad(img, ((m, m), (m, m), (0, 0)), mode="edge")).save(dst, quality=95)
                padded += 1
            else:
                os.symlink(os.path.abspath(src), dst)
                linked += 1
    print(f"{a.out}: {linked} captures linked, {padded} tight crops given a {a.margin:g}x border")


if __name__ == "__main__":
    main()
