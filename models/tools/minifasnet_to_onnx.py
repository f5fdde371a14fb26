#!/usr/bin/env python3
"""Converts a Silent-Face-Anti-Spoofing MiniFASNet checkpoint (minivision-ai, Apache-2.0) to ONNX,
without torch.

    python3 minifasnet_to_onnx.py MODEL.pth OUT.onnx

The checkpoints are legacy torch pickles (torch < 1.6: a pickled magic number, protocol and
system info, the pickled state_dict whose tensors point at storages by key, then each storage's
raw bytes), so this reads them with Python's own pickle and numpy. The graph is written from the
module tree the state_dict's keys spell (MiniFASNetV1/V2/V1SE/V2SE: conv blocks, depth-wise
blocks with residuals, squeeze-excite on the last block of each residual stage), with every
BatchNorm folded into the convolution or matrix before it (eval mode; dropout is the identity).

Input `input` [N, 3, H, W] NCHW, **BGR, raw 0..255** (the original code feeds OpenCV's image
through a ToTensor that does not divide by 255); output `logits` [N, 3]: softmax it, class 1 is
a live face. The kernel of the last depth-wise convolution fixes H and W ((H + 15) // 16: 5×5
for the 80×80 models). Needs only numpy and onnx (PyPI).
"""

import collections
import pickle
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAGIC = 0x1950A86A20F9469CFC6C
EPS = 1e-5  # torch's BatchNorm default


def load_legacy_state_dict(path):
    """The state_dict of a legacy (pre-zip) torch checkpoint, as numpy arrays by name."""
    storages = {}
    layouts = []

    def rebuild_tensor(key, offset, size, stride, *_rest):
        layout = (key, offset, tuple(size), tuple(stride))
        layouts.append(layout)
        return layout

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild_tensor
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if module == "torch" and name.endswith("Storage"):
                return name
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in {path}")

        def persistent_load(self, pid):
            _kind, storage_type, key, _location, size, _view = pid
            storages.setdefault(key, [storage_type, size, None])
            return key

    with open(path, "rb") as f:
        if pickle.load(f) != MAGIC:
            sys.exit(f"{path}: not a legacy torch checkpoint (no magic number)")
        if pickle.load(f) != 1001:
            sys.exit(f"{path}: unknown legacy protocol")
        info = pickle.load(f)
        if not info.get("little_endian", False):
            sys.exit(f"{path}: big-endian checkpoints are not supported")
        state = Unpickler(f).load()
        for key in pickle.load(f):
            (count,) = struct.unpack("<q", f.read(8))
            dtype = {"FloatStorage": "<f4", "LongStorage": "<i8"}[storages[key][0]]
            storages[key][2] = np.frombuffer(f.read(count * np.dtype(dtype).itemsize), dtype)
        if f.read(1):
            sys.exit(f"{path}: bytes after the last storage")
    out = collections.OrderedDict()
    for name, (key, offset, size, stride) in state.items():
        data = storages[key][2]
        name = name.removeprefix("module.")  # saved from a DataParallel wrapper
        if not size:
            out[name] = data[offset].copy()
            continue
        view = np.lib.stride_tricks.as_strided(
            data[offset:], shape=size, strides=[s * data.itemsize for s in stride]
        )
        out[name] = np.array(view, dtype=np.float32)
    return out


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, hint, array):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def op(self, kind, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def bn_scale_shift(self, prefix):
        w = self.w
        scale = w[f"{prefix}.weight"] / np.sqrt(w[f"{prefix}.running_var"] + EPS)
        shift = w[f"{prefix}.bias"] - w[f"{prefix}.running_mean"] * scale
        return scale, shift

    def conv_bn(self, x, prefix, bn, stride, pad, groups):
        """Conv2d (no bias) followed by BatchNorm2d, folded into one Conv."""
        weight = self.w[f"{prefix}.weight"]
        scale, shift = self.bn_scale_shift(bn)
        k = weight.shape[2:]
        return self.op(
            "Conv",
            [x, self.const(f"{prefix}.w", weight * scale[:, None, None, None]),
             self.const(f"{prefix}.b", shift)],
            prefix,
            kernel_shape=list(k), strides=[stride, stride], pads=[pad, pad, pad, pad],
            group=groups,
        )

    def groups(self, prefix, in_channels):
        return in_channels // self.w[f"{prefix}.conv.weight"].shape[1]

    def conv_block(self, x, prefix, in_c, stride, pad, prelu=True):
        """Conv_block (conv, bn, prelu) or Linear_block (conv, bn); returns (out, channels)."""
        g = self.groups(prefix, in_c)
        y = self.conv_bn(x, f"{prefix}.conv", f"{prefix}.bn", stride, pad, g)
        if prelu:
            slope = self.w[f"{prefix}.prelu.weight"][:, None, None]
            y = self.op("PRelu", [y, self.const(f"{prefix}.prelu", slope)], prefix)
        return y, self.w[f"{prefix}.conv.weight"].shape[0]

    def depth_wise(self, x, prefix, in_c, stride, residual):
        y, c = self.conv_block(x, f"{prefix}.conv", in_c, 1, 0)
        y, c = self.conv_block(y, f"{prefix}.conv_dw", c, stride, 1)
        y, c = self.conv_block(y, f"{prefix}.project", c, 1, 0, prelu=False)
        if residual:
            if f"{prefix}.se_module.fc1.weight" in self.w:
                y = self.squeeze_excite(y, f"{prefix}.se_module")
            y = self.op("Add", [x, y], prefix)
        return y, c

    def squeeze_excite(self, x, prefix):
        s = self.op("GlobalAveragePool", [x], prefix)
        s = self.conv_bn(s, f"{prefix}.fc1", f"{prefix}.bn1", 1, 0, 1)
        s = self.op("Relu", [s], prefix)
        s = self.conv_bn(s, f"{prefix}.fc2", f"{prefix}.bn2", 1, 0, 1)
        s = self.op("Sigmoid", [s], prefix)
        return self.op("Mul", [x, s], prefix)

    def stage(self, x, prefix, in_c):
        i = 0
        while f"{prefix}.model.{i}.conv.conv.weight" in self.w:
            x, in_c = self.depth_wise(x, f"{prefix}.model.{i}", in_c, 1, residual=True)
            i += 1
        return x, in_c

    def dense_bn(self, x, linear, bn):
        """x @ linear.T followed by BatchNorm1d, folded into one Gemm."""
        weight = self.w[f"{linear}.weight"]
        scale, shift = self.bn_scale_shift(bn)
        return self.op(
            "Gemm",
            [x, self.const(f"{linear}.w", (weight * scale[:, None]).T), self.const(f"{linear}.b", shift)],
            linear,
        )


def build(weights):
    g = Graph(weights)
    x, c = g.conv_block("input", "conv1", 3, 2, 1)
    x, c = g.conv_block(x, "conv2_dw", c, 1, 1)
    x, c = g.depth_wise(x, "conv_23", c, 2, residual=False)
    x, c = g.stage(x, "conv_3", c)
    x, c = g.depth_wise(x, "conv_34", c, 2, residual=False)
    x, c = g.stage(x, "conv_4", c)
    x, c = g.depth_wise(x, "conv_45", c, 2, residual=False)
    x, c = g.stage(x, "conv_5", c)
    x, c = g.conv_block(x, "conv_6_sep", c, 1, 0)
    x, c = g.conv_block(x, "conv_6_dw", c, 1, 0, prelu=False)
    x = g.op("Flatten", [x], "flatten", axis=1)
    x = g.dense_bn(x, "linear", "bn")
    prob = weights["prob.weight"]
    g.nodes.append(
        helper.make_node("Gemm", [x, g.const("prob.w", prob.T)], ["logits"], name="prob")
    )
    kernel = weights["conv_6_dw.conv.weight"].shape[2]
    side = kernel * 16
    graph = helper.make_graph(
        g.nodes,
        "minifasnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", prob.shape[0]])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.producer_name = "edgeid models/tools/minifasnet_to_onnx.py"
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model = build(load_legacy_state_dict(sys.argv[1]))
    onnx.save(model, sys.argv[2])


if __name__ == "__main__":
    main()
