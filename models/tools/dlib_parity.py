#!/usr/bin/env python3
"""Parity of models/dlib-resnet29.onnx with dlib itself, on the same faces.

    python3 -m venv /tmp/dlibenv
    /tmp/dlibenv/bin/pip install dlib-bin==20.0.1 face-recognition-models==0.3.0 \
        numpy pillow onnxruntime==1.32.0
    /tmp/dlibenv/bin/python models/tools/dlib_parity.py ../shared/data/lfw-dev --faces 100 \
        [--edgeid target/release/edgeid --config configs/licence-clean.toml]

For a fixed sample of the folder's photos (seed 1), dlib finds the largest face (HOG detector),
fits its 5-point shape predictor and cuts its 150×150 chip (get_face_chip, padding 0.25), then
computes its own descriptor (compute_face_descriptor). Printed:

1. converter parity: the ONNX model on that same chip against dlib's descriptor (cosine);
2. with --edgeid: edgeid's own path (its detector, landmarks and the manifest's chip template,
   written by `identify --crops`) through the ONNX model, against dlib's descriptor: what a user
   gets, the converter and the alignment together.

Nothing is written but a temporary folder.
"""
import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import dlib
import face_recognition_models as frm
import numpy as np
import onnxruntime as ort
from PIL import Image

HERE = Path(__file__).resolve().parent
MEAN = np.array([122.782, 117.001, 104.298], np.float32)


def summary(name, c):
    c = np.array(c)
    print(f"{name}: {len(c)} faces, cosine min {c.min():.5f}, median {np.median(c):.5f}, "
          f"mean {c.mean():.5f}, share >= 0.99: {np.mean(c >= 0.99):.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", help="a folder of <person>/*.jpg")
    ap.add_argument("--faces", type=int, default=100)
    ap.add_argument("--model", default=str(HERE.parent / "dlib-resnet29.onnx"))
    ap.add_argument("--edgeid", help="the edgeid binary, to compare its own crops too")
    ap.add_argument("--config", default="configs/licence-clean.toml")
    a = ap.parse_args()

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    embed = lambda chip: sess.run(None, {"input": ((chip.astype(np.float32) - MEAN) / 256).transpose(2, 0, 1)[None]})[0][0]
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    files = sorted(Path(a.folder).glob("*/*.jpg"))
    random.seed(1)
    files = random.sample(files, min(len(files), a.faces))
    reference, converter = {}, []
    for f in files:
        img = np.array(Image.open(f).convert("RGB"))
        found = det(img, 1)
        if not found:
            continue
        r = max(found, key=lambda r: r.area())
        chip = dlib.get_face_chip(img, sp(img, r), 150, 0.25)
        d = np.array(rec.compute_face_descriptor(chip))
        reference[f] = (d, [r.left(), r.top(), r.right(), r.bottom()])
        converter.append(cos(d, embed(chip)))
    summary("ONNX on dlib's chip vs dlib", converter)
    if not a.edgeid:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gallery = tmp / "g.db"
        first = str(next(iter(reference)))
        run = lambda *args: subprocess.run([a.edgeid, "--config", a.config, *args], check=True,
                                           capture_output=True, text=True).stdout
        run("enroll", "--gallery", str(gallery), "--name", "parity", first)
        end_to_end = []
        for f, (d, box) in reference.items():
            crops = tmp / "crops"
            crops.mkdir(exist_ok=True)
            out = json.loads(run("--json", "identify", "--gallery", str(gallery), "--crops", str(crops), str(f)))
            def iou(b):
                x0, y0, x1, y1 = max(b[0], box[0]), max(b[1], box[1]), min(b[2], box[2]), min(b[3], box[3])
                inter = max(0, x1 - x0) * max(0, y1 - y0)
                return inter / ((b[2] - b[0]) * (b[3] - b[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter)
            if not out["faces"]:
                continue
            k = max(range(len(out["faces"])), key=lambda i: iou(out["faces"][i]["box"]))
            if iou(out["faces"][k]["box"]) < 0.3:
                continue
            crop = np.array(Image.open(crops / f"{f.stem}_face{k + 1}.png").convert("RGB"))
            end_to_end.append(cos(d, embed(crop)))
            for p in crops.iterdir():
                p.unlink()
        summary("edgeid's crop through the ONNX vs dlib", end_to_end)


if __name__ == "__main__":
    sys.exit(main())
