#!/usr/bin/env python3
"""Rewrite a model's graph into an equivalent one that tract runs faster.

    python3 models/tools/tune.py models/mtcnn-pnet.onnx models/mtcnn-pnet-tuned.onnx

Measured with tract 0.23.9 (per-node timings on a 2-core AMD EPYC), the converted graphs spend
much of their time in ops that tract runs as several passes over memory:

- Softmax over 2 classes: tract's Softmax over a last axis of length 2 took 18.6 of 57 ms of
  P-Net on a 600x400 image (one short row at a time). softmax(x0, x1) = (sigmoid(x0 - x1),
  sigmoid(x1 - x0)), so when the logits come straight from a Conv or a MatMul + Add with two
  outputs, the differences are folded into its weights and bias and the Softmax becomes a
  Sigmoid: exact in real arithmetic, no extra op.
- PRelu: tract lowers it to a comparison, a multiplication and a select (three passes and a
  boolean tensor). max(x, 0) + alpha * min(x, 0) is the same function and tract fuses it into
  two chained element-wise passes (as it already does for MobileFace, exported that way).

A Softmax whose logits come from elsewhere is left as it is. Nothing else changes: inputs,
outputs, their names, shapes and meaning stay those of the source, so when a manifest sits beside
the source it is copied beside the output with only the file, sha256, id and description changed
and `derived_from` naming the source. Needs `pip install onnx numpy`.
"""
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def consumers(graph, name):
    return [n for n in graph.node if name in n.input]


def producer(graph, name):
    return next((n for n in graph.node if name in n.output), None)


def initializer(graph, name):
    return next((i for i in graph.initializer if i.name == name), None)


def set_initializer(graph, name, array):
    old = initializer(graph, name)
    old.CopyFrom(numpy_helper.from_array(array.astype(numpy_helper.to_array(old).dtype), name))


def only_consumer(graph, name):
    return len(consumers(graph, name)) == 1 and name not in [o.name for o in graph.output]


def fold_softmax2(graph):
    """Softmax over two logits made by a Conv or MatMul + Add → those weights differenced, Sigmoid."""
    folded = 0
    for sm in [n for n in graph.node if n.op_type == "Softmax"]:
        src = sm.input[0]
        node = producer(graph, src)
        axis_of = {a.name: helper.get_attribute_value(a) for a in sm.attribute}.get("axis", -1)
        if node is not None and node.op_type == "Transpose" and only_consumer(graph, src):
            perm = helper.get_attribute_value(node.attribute[0])
            axis_of = perm[axis_of]  # the class axis, seen before the transpose
            src = node.input[0]
            node = producer(graph, src)
        if node is None or not only_consumer(graph, src):
            continue
        if node.op_type == "Conv" and len(node.input) == 3:
            w, b = initializer(graph, node.input[1]), initializer(graph, node.input[2])
            axis = 0  # Conv weights are [out, in, kh, kw]; its classes are axis 1 of NCHW
            if axis_of != 1:
                continue
        elif node.op_type == "Add":
            mm = producer(graph, node.input[0])
            if mm is None or mm.op_type != "MatMul" or not only_consumer(graph, node.input[0]):
                continue
            w, b = initializer(graph, mm.input[1]), initializer(graph, node.input[1])
            axis = 1  # MatMul weights are [in, out]; its classes are the last axis
            if axis_of not in (-1, 1):
                continue
        else:
            continue
        if w is None or b is None or len(consumers(graph, w.name)) != 1:
            continue
        wa, ba = numpy_helper.to_array(w), numpy_helper.to_array(b)
        if wa.shape[axis] != 2 or ba.size != 2:
            continue
        wa = wa.astype(np.float64)
        ba = ba.astype(np.float64).reshape(2)
        d = np.take(wa, [0], axis=axis) - np.take(wa, [1], axis=axis)
        set_initializer(graph, w.name, np.concatenate([d, -d], axis=axis))
        set_initializer(graph, b.name, np.array([ba[0] - ba[1], ba[1] - ba[0]]).reshape(
            numpy_helper.to_array(b).shape))
        sm.op_type = "Sigmoid"
        del sm.attribute[:]
        folded += 1
    return folded


def expand_prelu(graph):
    """PRelu(x, a) → Add(Max(x, 0), Mul(Min(x, 0), a))."""
    zero = "tune/zero"
    nodes, count = [], 0
    for n in graph.node:
        if n.op_type != "PRelu":
            nodes.append(n)
            continue
        x, a, y = n.input[0], n.input[1], n.output[0]
        nodes += [
            helper.make_node("Max", [x, zero], [y + "/pos"], name=n.name + "/pos"),
            helper.make_node("Min", [x, zero], [y + "/neg"], name=n.name + "/neg"),
            helper.make_node("Mul", [y + "/neg", a], [y + "/scaled"], name=n.name + "/scaled"),
            helper.make_node("Add", [y + "/pos", y + "/scaled"], [y], name=n.name),
        ]
        count += 1
    if count:
        graph.initializer.append(numpy_helper.from_array(np.array(0, np.float32), zero))
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tune.py MODEL.onnx OUT.onnx")
    src, dst = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    softmax = fold_softmax2(model.graph)
    prelu = expand_prelu(model.graph)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(f"{dst}: {softmax} two-class Softmax folded into Sigmoid, {prelu} PRelu expanded")
    manifest = os.path.splitext(src)[0] + ".toml"
    if os.path.exists(manifest):
        write_manifest(manifest, dst, f"{softmax} two-class Softmax folded into Sigmoid, "
                       f"{prelu} PRelu expanded")


def write_manifest(src_manifest, dst, what):
    """The source's manifest with this file's name, hash and id, and `derived_from` the source."""
    with open(dst, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    lines = open(src_manifest).read().splitlines()
    out = ["# Rewritten for tract by models/tools/tune.py from the model it is derived_from",
           f"# ({what}): the same function, to float rounding."]
    for line in lines:
        key = line.split("=")[0].strip()
        if key == "id":
            source_id = line.split('"')[1]
            out.append(f'id = "{source_id.split("@")[0]}-tuned@{sha[:8]}"')
            out.append(f'derived_from = "{source_id}"')
        elif key == "file":
            out.append(f'file = "{os.path.basename(dst)}"')
        elif key == "sha256":
            out.append(f'sha256 = "{sha}"')
        elif key == "description":
            out.append(line[:-1] + ', rewritten for tract by models/tools/tune.py"')
        else:
            out.append(line)
    path = os.path.splitext(dst)[0] + ".toml"
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"{path}: its manifest")


if __name__ == "__main__":
    main()
