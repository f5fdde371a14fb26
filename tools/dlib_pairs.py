#!/usr/bin/env python3
"""A second opinion on the hand labels of the bundled photos from an encoder edgeid does not
ship: dlib's ResNet through `face_recognition` (distance; its own threshold is 0.6).

    python3 -m venv /tmp/dl && /tmp/dl/bin/pip install dlib-bin==20.0.1.post1 numpy pillow \
        && /tmp/dl/bin/pip install --no-deps face_recognition==1.3.0 face_recognition_models==0.3.0 \
        && /tmp/dl/bin/python tools/dlib_pairs.py

(`dlib-bin` is dlib prebuilt; `--no-deps` keeps pip from building dlib from source.) Prints
the labelled genuine pairs, each face's nearest other faces, and how many impostor pairs fall
inside 0.6. It never writes a label: docs/models.md says what it showed and why the labels
stayed as judged by eye.
"""
import csv
import itertools
from pathlib import Path

import face_recognition as fr
import numpy as np

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def faces():
    rows = [r for r in csv.reader(l for l in open(DATA / "labels.csv") if not l.startswith("#"))]
    for photo, x1, y1, x2, y2, who in rows[1:]:
        img = fr.load_image_file(DATA / photo)
        x1, y1, x2, y2 = map(int, (x1, y1, x2, y2))
        # dlib's landmark model fits best on dlib's own box: take its detection that overlaps
        # the hand-drawn box most, else the hand-drawn box.
        loc, best = (y1, x2, y2, x1), 0.3
        for t, r, b, l in fr.face_locations(img, number_of_times_to_upsample=1):
            ix, iy = max(0, min(r, x2) - max(l, x1)), max(0, min(b, y2) - max(t, y1))
            iou = ix * iy / ((r - l) * (b - t) + (x2 - x1) * (y2 - y1) - ix * iy)
            if iou > best:
                loc, best = (t, r, b, l), iou
        yield f"{photo}:{who}", who, fr.face_encodings(img, [loc], num_jitters=10, model="large")[0]


def main():
    seen = list(faces())
    pairs = sorted(
        (float(np.linalg.norm(a[2] - b[2])), a[0], b[0], a[1] == b[1])
        for a, b in itertools.combinations(seen, 2)
    )
    impostors = [p for p in pairs if not p[3]]
    print(f"{len(seen)} faces, {len(pairs) - len(impostors)} genuine / {len(impostors)} impostor pairs")
    for d, a, b, _ in (p for p in pairs if p[3]):
        print(f"genuine {d:.3f}  {a} | {b}")
    inside = sum(d < 0.6 for d, *_ in impostors)
    print(f"impostor pairs inside 0.6: {inside} of {len(impostors)}; lowest {impostors[0][0]:.3f}")
    for name, *_ in seen:
        near = sorted((d, b if a == name else a) for d, a, b, _ in pairs if name in (a, b))[:3]
        print(f"nearest to {name}: " + ", ".join(f"{o} {d:.3f}" for d, o in near))


if __name__ == "__main__":
    main()
