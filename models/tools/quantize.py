#!/usr/bin/env python3
"""Static int8 (QDQ) quantization of an encoder, calibrated on real aligned face crops.

    python3 models/tools/quantize.py models/mobileface.onnx models/mobileface-int8.onnx \
        tests/fixtures/crops/sample4_*.png tests/fixtures/crops/sample5_*.png \
        tests/fixtures/crops/sample6_*.png
    python3 models/tools/quantize.py --mean 127.5 --scale 0.0078125 \
        models/mobilefacenet.onnx /tmp/mobilefacenet-int8.onnx tests/fixtures/crops/sample[456]_*.png

--mean/--scale: the manifest's input normalisation, (pixel - mean) * scale, applied to the
crops before calibration (MobileFace takes raw pixels: 0 and 1). --full-range: 8-bit weights,
for CPUs with int8 dot-product instructions (VNNI, Arm asimddp) that do not saturate.
MobileFaceNet-192 quantized so is not bundled: measured in docs/benchmarks.md, it gained 1.2x on
onnxruntime and lost on tract, at the edge of cosine 0.99 (the value_info the pre-processing
adds names the batch "N" where tract wants it free: strip it before tract loads the model).

Each crop (already aligned to the encoder's 112x112 template: `edgeid identify --crops`) and its
mirror image is one calibration input, fed as the manifest says (NHWC, RGB, raw 0..255 pixels
for MobileFace). Weights int8 per output channel, activations uint8 (onnxruntime's fast path on
x86-64 and ARM) with reduce_range (7-bit weights: x86 CPUs without VNNI saturate the u8 x s8
products otherwise; measured here, full 8-bit gave cosines down to 0.42), min/max calibration.

Only the pointwise and dense convolutions are quantized: the first convolution (raw pixel range)
and the depthwise ones stay fp32. With every convolution int8, the embedding's cosine to fp32 fell
to 0.983 on the 20 test crops (no single layer dominates the error); with those left fp32 the
lowest is 0.9937, median 0.9962. The crops of samples 1-3 are left out of the calibration
so that the accuracy test (tests/int8.rs) also sees faces the calibration never saw.
Needs `pip install onnxruntime==1.32.0 onnx pillow numpy`.
"""
import argparse

import numpy as np
from PIL import Image
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Crops(CalibrationDataReader):
    def __init__(self, input_name, paths, mean, scale):
        batches = []
        for p in paths:
            x = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) - mean) * scale
            batches += [x[None], x[:, ::-1][None].copy()]
        self.it = iter({input_name: b} for b in batches)

    def get_next(self):
        return next(self.it, None)


def main():
    ap = argparse.ArgumentParser(description="Static int8 (QDQ) quantization of an encoder.")
    ap.add_argument("--mean", type=float, default=0.0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--full-range", action="store_true")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("crops", nargs="+")
    a = ap.parse_args()
    src, dst, crops = a.src, a.dst, a.crops
    pre = dst + ".pre.onnx"
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    import onnx
    graph = onnx.load(pre).graph
    input_name = graph.input[0].name
    convs = [n for n in graph.node if n.op_type == "Conv"]
    depthwise = [n for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    keep_fp32 = [convs[0].name] + [n.name for n in depthwise if n is not convs[0]]
    quantize_static(pre, dst, Crops(input_name, crops, a.mean, a.scale), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=not a.full_range, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=["Conv"], nodes_to_exclude=keep_fp32)
    import os
    os.remove(pre)
    print(f"{dst}: int8 QDQ, calibrated on {len(crops)} crops and their mirror images; "
          f"kept fp32: {', '.join(keep_fp32)}")


if __name__ == "__main__":
    main()
