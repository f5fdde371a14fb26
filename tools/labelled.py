#!/usr/bin/env python3
"""Builds the hand-labelled development set that thresholds and encoder choices are made on.

    python3 tools/labelled.py [OUT]        (default: var/labelled; needs Pillow)

OUT/<identity>/<photo>.png|jpg, the layout `edgeid eval` and `edgeid calibrate` read. Labels are
people's judgement, never an encoder's:
  * the bundled group photos (tests/data, MIT, from npm @vladmandic/face-api): each face cut out
    with room around it, named by tests/data/labels.csv (judged by eye);
  * the labelled portraits of the `face_recognition` 1.3.0 sdist on PyPI (MIT, Adam Geitgey):
    obama.jpg, obama2.jpg, obama3.jpg (three sittings of one person) and biden.jpg, named by the
    package's own file names. Its other images are left out: obama_partial_face*.jpg are cuts
    of obama.jpg and 32bit.png is obama2.jpg again, so their "genuine" pairs would be one photo
    against itself. The sdist is fetched with pip (PyPI only) and checked by its sha256.
Licences are copied to OUT/LICENSES.txt.
"""
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDIST = "face_recognition-1.3.0.tar.gz"
SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
PORTRAITS = {"obama.jpg": "obama", "obama2.jpg": "obama", "obama3.jpg": "obama", "biden.jpg": "biden"}
# Room around a hand-drawn face box on each side, as a share of its width and height: the
# detector under test must find the face itself.
MARGIN = 0.6


def bundled(out):
    rows = [r for r in csv.DictReader(l for l in open(os.path.join(ROOT, "tests/data/labels.csv")) if not l.startswith("#"))]
    for n, r in enumerate(rows):
        img = Image.open(os.path.join(ROOT, "tests/data", r["photo"])).convert("RGB")
        x1, y1, x2, y2 = (float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        w, h = x2 - x1, y2 - y1
        box = (max(0, int(x1 - MARGIN * w)), max(0, int(y1 - MARGIN * h)),
               min(img.width, int(x2 + MARGIN * w)), min(img.height, int(y2 + MARGIN * h)))
        d = os.path.join(out, r["identity"])
        os.makedirs(d, exist_ok=True)
        img.crop(box).save(os.path.join(d, f"{r['photo'][:-4]}_{n:02}.png"))
    return len(rows)


def sdist(cache):
    path = os.path.join(cache, SDIST)
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "-d", cache, "face_recognition==1.3.0"], check=True)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"{path}: sha256 {digest}, expected {SDIST_SHA256}; delete it and run again")
    return path


def portraits(out, cache):
    with tarfile.open(sdist(cache)) as t:
        for name, identity in PORTRAITS.items():
            data = t.extractfile(f"face_recognition-1.3.0/tests/test_images/{name}").read()
            d = os.path.join(out, identity)
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, name), "wb").write(data)
        licence = t.extractfile("face_recognition-1.3.0/LICENSE").read().decode()
    return len(PORTRAITS), licence


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "var/labelled"))
    cache = os.path.join(ROOT, "var/cache")
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(out) or ".")
    try:
        faces = bundled(tmp)
        n, licence = portraits(tmp, cache)
        with open(os.path.join(tmp, "LICENSES.txt"), "w") as f:
            f.write("Bundled photos (tests/data): MIT, from npm @vladmandic/face-api; labels: tests/data/labels.csv\n\n")
            f.write("obama/, biden/: tests/test_images of the face_recognition 1.3.0 sdist (PyPI):\n\n" + licence)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ids = sorted(e for e in os.listdir(out) if os.path.isdir(os.path.join(out, e)))
    print(f"{out}: {faces} bundled faces and {n} portraits, {len(ids)} identities")


if __name__ == "__main__":
    main()
