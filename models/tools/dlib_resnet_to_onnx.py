#!/usr/bin/env python3
"""Writes dlib's ResNet-29 face descriptor (dlib_face_recognition_resnet_model_v1, released into
the public domain by Davis King) as ONNX, from face-api.js's port of its weights.

    python3 dlib_resnet_to_onnx.py WEIGHTS_MANIFEST.json OUT.onnx [SHARD.bin]

WEIGHTS_MANIFEST.json is a TensorFlow.js weights manifest (npm `@vladmandic/face-api@1.7.15`,
`model/face_recognition_model-weights_manifest.json`, MIT) whose `paths` name the binary shard
beside it. The shard holds 117 tensors one after the other in the manifest's order: float32, or
uint8 with a per-tensor `scale` and `min` (value = q · scale + min, as tfjs dequantises them).
SHARD.bin: the shard under another name (../shared names it faceapi_dlib_resnet29.bin).

The topology is not in those files; it is dlib's network as face-api.js runs it:
    150×150 RGB, (x − [122.782, 117.001, 104.298]) / 256        (in the manifest, not the graph)
    conv 7×7/2 valid 32 → scale → relu → max-pool 3×3/2 valid
    residual 32 ×3; residual-down 64 + residual 64 ×3; down 128 + 128 ×2; down 256 + 256 ×2;
    down 256 (out) → mean over space → matmul 256×128 (no bias)
A residual is conv3×3 same → scale → relu → conv3×3 same → scale, + input, relu. A residual-down
is conv3×3/2 valid → scale → relu → conv3×3 same → scale, + the input average-pooled 2×2/2
(valid) with its channels doubled by zeros; where the convolution's map is one row and column
smaller than the pooled one (8→3 against 4, 4→1 against 2), it is padded with zeros at the bottom
and right first, as dlib's add_prev adds maps of unequal size. Each `scale` (dlib's affine layer,
its batch norm frozen) is folded into the convolution before it: W·s, b·s + β.

Input `input` [N, 3, 150, 150] NCHW; output `descriptor` [N, 128], not normalised (dlib compares
Euclidean distances of these; edgeid L2-normalises and compares cosines, the same order).
Deterministic: the same weights give the same bytes. Needs only numpy and onnx (PyPI).
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def load_weights(manifest_path, shard=None):
    """Every tensor of a tfjs weights manifest, dequantised to float32, by name."""
    with open(manifest_path) as f:
        groups = json.load(f)
    folder = os.path.dirname(os.path.abspath(manifest_path))
    tensors = {}
    for group in groups:
        paths = [shard] if shard else [os.path.join(folder, p) for p in group["paths"]]
        data = b"".join(open(p, "rb").read() for p in paths)
        at = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"], dtype=np.int64))
            q = w.get("quantization")
            if q is None:
                if w["dtype"] != "float32":
                    sys.exit(f"{manifest_path}: {w['name']} is {w['dtype']}, not float32")
                v = np.frombuffer(data, "<f4", n, at)
                at += 4 * n
            else:
                if q["dtype"] != "uint8":
                    sys.exit(f"{manifest_path}: {w['name']} is quantised as {q['dtype']}, not uint8")
                v = np.frombuffer(data, np.uint8, n, at).astype(np.float64) * q["scale"] + q["min"]
                at += n
            tensors[w["name"]] = np.asarray(v, np.float32).reshape(w["shape"])
        if at != len(data):
            sys.exit(f"{manifest_path}: the shards hold {len(data)} bytes, the manifest {at}")
    return tensors


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.used = set()
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, what):
        self.count += 1
        return f"{what}_{self.count}"

    def const(self, what, array):
        n = self.name(what)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def take(self, key):
        self.used.add(key)
        return self.w[key]

    def conv(self, x, prefix, stride, same, relu):
        """conv + bias, then the folded scale layer; tfjs filters are [kh, kw, in, out]."""
        f = self.take(f"{prefix}/conv/filters")
        b = self.take(f"{prefix}/conv/bias")
        s = self.take(f"{prefix}/scale/weights")
        beta = self.take(f"{prefix}/scale/biases")
        kernel = np.transpose(f, (3, 2, 0, 1)) * s[:, None, None, None]
        bias = b * s + beta
        k = f.shape[0]
        pads = [k // 2] * 4 if same else [0] * 4
        out = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.const("w", kernel.astype(np.float32)), self.const("b", bias.astype(np.float32))],
                [out],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=pads,
            )
        )
        return self.relu(out) if relu else out

    def op(self, kind, inputs, **attrs):
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def relu(self, x):
        return self.op("Relu", [x])

    def residual(self, x, prefix):
        out = self.conv(x, f"{prefix}/conv1", 1, True, True)
        out = self.conv(out, f"{prefix}/conv2", 1, True, False)
        return self.relu(self.op("Add", [out, x]))

    def residual_down(self, x, prefix, size, channels_in, channels_out):
        """`size`: the input map's side, to know the two branches' sides (fixed input)."""
        out = self.conv(x, f"{prefix}/conv1", 2, False, True)
        out = self.conv(out, f"{prefix}/conv2", 1, True, False)
        conv_side = (size - 3) // 2 + 1
        pool_side = (size - 2) // 2 + 1
        pooled = self.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
        if conv_side != pool_side:
            grow = pool_side - conv_side
            out = self.op(
                "Pad", [out, self.const("pads", np.array([0, 0, 0, 0, 0, 0, grow, grow], np.int64))]
            )
        if channels_out != channels_in:
            extra = channels_out - channels_in
            pooled = self.op(
                "Pad", [pooled, self.const("pads", np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64))]
            )
        return self.relu(self.op("Add", [pooled, out])), pool_side


def build(weights):
    g = Graph(weights)
    x = g.conv("input", "conv32_down", 2, False, True)
    side = (150 - 7) // 2 + 1
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    side = (side - 3) // 2 + 1
    for i in (1, 2, 3):
        x = g.residual(x, f"conv32_{i}")
    channels = 32
    for width, repeats, down in ((64, 3, "conv64_down"), (128, 2, "conv128_down"), (256, 2, "conv256_down")):
        x, side = g.residual_down(x, down, side, channels, width)
        channels = width
        for i in range(1, repeats + 1):
            x = g.residual(x, f"conv{width}_{i}")
    x, side = g.residual_down(x, "conv256_down_out", side, channels, 256)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    out = "descriptor"
    g.nodes.append(helper.make_node("MatMul", [x, g.const("fc", g.take("fc"))], [out]))
    unused = set(weights) - g.used
    if unused:
        sys.exit(f"tensors the graph does not use: {sorted(unused)}")
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 150, 150])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 128])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgeid dlib_resnet_to_onnx.py"
    )
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    model = build(load_weights(sys.argv[1], sys.argv[3] if len(sys.argv) == 4 else None))
    onnx.save(model, sys.argv[2])
    print(f"wrote {sys.argv[2]}: {sum(np.prod(i.dims) for i in model.graph.initializer):,} parameters")


if __name__ == "__main__":
    main()
