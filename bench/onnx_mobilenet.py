"""The peer of `siamese bench backbone`: MobileNetV2's feature extractor as an ONNX graph built
from the folded weights our binary wrote (layout.json + weights.bin), run by ONNX Runtime on the
same input batch with the same thread count; checks its features against ours, then times it.

    python onnx_mobilenet.py DIR THREADS WARMUP ROUNDS

Prints one line `BENCH_JSON {...}`.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

work, threads, warmup, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
layout = json.load(open(os.path.join(work, "layout.json")))
blob = np.fromfile(os.path.join(work, "weights.bin"), dtype="<f4")
images = np.load(os.path.join(work, "input.npy")).astype(np.float32)
ours = np.load(os.path.join(work, "ours.npy"))
batch = images.shape[0]

nodes, inits = [], []
inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"))
inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), "six"))
count = [0]


def conv(x, c):
    count[0] += 1
    i = count[0]
    n = int(np.prod(c["shape"]))
    w = blob[c["weight_offset"]:c["weight_offset"] + n].reshape(c["shape"])
    b = blob[c["bias_offset"]:c["bias_offset"] + c["shape"][0]]
    inits.append(numpy_helper.from_array(w, f"w{i}"))
    inits.append(numpy_helper.from_array(b, f"b{i}"))
    k, p, s = c["shape"][2], c["padding"], c["stride"]
    nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"conv{i}"], kernel_shape=[k, k],
                                  pads=[p, p, p, p], strides=[s, s], group=c["groups"]))
    return f"conv{i}"


def relu6(x):
    nodes.append(helper.make_node("Clip", [x, "zero", "six"], [x + "_relu6"]))
    return x + "_relu6"


x = relu6(conv("images", layout["stem"]))
for j, block in enumerate(layout["blocks"]):
    h = x
    if block["expand"] is not None:
        h = relu6(conv(h, block["expand"]))
    h = relu6(conv(h, block["depthwise"]))
    h = conv(h, block["project"])
    if block["residual"]:
        nodes.append(helper.make_node("Add", [h, x], [f"sum{j}"]))
        h = f"sum{j}"
    x = h
x = relu6(conv(x, layout["head"]))
nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
graph = helper.make_graph(
    nodes, "mobilenet_v2_features",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 3, 224, 224])],
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 1280])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
onnx.checker.check_model(model)

options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(model.SerializeToString(), options,
                               providers=["CPUExecutionProvider"])
features = session.run(["features"], {"images": images})[0]
max_abs_diff = float(np.abs(features - ours).max())
for _ in range(warmup):
    session.run(["features"], {"images": images})
seconds = []
for _ in range(rounds):
    start = time.perf_counter()
    session.run(["features"], {"images": images})
    seconds.append(time.perf_counter() - start)
median = statistics.median(seconds)
print("BENCH_JSON " + json.dumps({
    "version": ort.__version__,
    "img_per_s": batch / median,
    "round_seconds": seconds,
    "max_abs_diff_vs_ours": max_abs_diff,
    "max_abs_feature": float(np.abs(ours).max()),
    "nodes": len(nodes),
}))
