#!/usr/bin/env python3
"""Builds models/audit-set/: the general images `edgeid audit` probes an encoder with.

Every image comes from data bundled inside registry packages (no download beyond PyPI):
    pip install scikit-learn==1.9.1 scikit-image==0.26.0 pillow
    python3 tools/make_audit_set.py models/audit-set

Deterministic: the crops come from a fixed seed, so rerunning gives the same files.
Layout: <set>/<task>/<class>/<nnn>.png|jpg; provenance in <set>/README.md.
"""

import os
import shutil
import sys

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image
from skimage import data

PER_DIGIT = 30
CROPS_PER_SCENE = 20
CROPS_PER_TEXTURE = 20


def save(img, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".jpg"):
        Image.fromarray(img).save(path, quality=90)
    else:
        Image.fromarray(img).save(path, optimize=True)


def crops(img, n, out_size, rng):
    """n square crops of 35-70% of the shorter side at random places, resized to out_size."""
    h, w = img.shape[:2]
    for _ in range(n):
        side = int(min(h, w) * rng.uniform(0.35, 0.70))
        y = rng.randint(0, h - side + 1)
        x = rng.randint(0, w - side + 1)
        c = Image.fromarray(img[y : y + side, x : x + side])
        yield np.asarray(c.resize((out_size, out_size), Image.Resampling.BILINEAR))


def main(out):
    if os.path.exists(out):
        for entry in os.listdir(out):
            p = os.path.join(out, entry)
            if os.path.isdir(p):
                shutil.rmtree(p)
    rng = np.random.RandomState(0)

    # digits: 8x8 handwritten digits, 0..16 grey levels, scaled to 0..255.
    d = load_digits()
    counts = {}
    for img, label in zip(d.images, d.target):
        k = counts.get(label, 0)
        if k >= PER_DIGIT:
            continue
        counts[label] = k + 1
        px = (255 - img * (255.0 / 16.0)).round().astype(np.uint8)  # dark ink on white
        save(px, f"{out}/digits/{label}/{k:03d}.png")

    # faces: LFW subset, 100 faces then 100 non-faces, 25x25 grey.
    lfw = data.lfw_subset()
    for i, img in enumerate(lfw):
        label = "face" if i < 100 else "non-face"
        px = (img * 255).round().astype(np.uint8) if img.dtype != np.uint8 else img
        save(px, f"{out}/faces/{label}/{i % 100:03d}.png")

    # scenes: which photo a crop comes from (8 photos, 96x96 crops).
    scenes = {
        "astronaut": data.astronaut(),
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "galaxies": data.hubble_deep_field(),
        "cameraman": np.stack([data.camera()] * 3, axis=-1),
        "temple": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
    }
    for label, img in scenes.items():
        for i, c in enumerate(crops(img, CROPS_PER_SCENE, 96, rng)):
            save(c, f"{out}/scenes/{label}/{i:03d}.jpg")

    # textures: brick, grass, gravel (64x64 grey crops).
    for label, img in {"brick": data.brick(), "grass": data.grass(), "gravel": data.gravel()}.items():
        for i, c in enumerate(crops(img, CROPS_PER_TEXTURE, 64, rng)):
            save(c, f"{out}/textures/{label}/{i:03d}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/audit-set")
