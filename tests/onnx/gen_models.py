#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate ONNX test models and onnxruntime reference outputs.

    gen_models.py OUTDIR

Writes into OUTDIR one .onnx file per model, raw little-endian float32
input and output files for batch sizes 1 and 7, and MANIFEST, a text file
read by tests/onnx/test_onnx.c.  Its lines are

    case NAME MODEL BATCH NIN IN... NOUT OUT...
    fail NAME MODEL CODE WORD...

"case": run MODEL on the inputs at BATCH and compare with the outputs.
"fail": loading MODEL must fail with ferry error CODE (EBADMSG, ENOTSUP)
and a message containing every WORD.

mlp_wide.onnx, the offload benchmark's network, has no reference files
and no MANIFEST line.

Everything is drawn from fixed seeds, so the files are the same on every
run.  The batch dimension is symbolic ("N") in every model.
"""
import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

BATCHES = (1, 7)
OPSET = min(onnx.defs.onnx_opset_version(), 28)

out_dir = None
manifest = []


def rng(seed):
    return np.random.default_rng(seed)


def vinfo(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def init(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def weights(r, shape, scale=0.5):
    return (r.standard_normal(shape) * scale).astype(np.float32)


def save(name, nodes, inputs, outputs, inits=(), opset=OPSET, low=-1.0,
         high=1.0, seed=None, case=True):
    """Build, save, run with onnxruntime and record a model.

    inputs: list of (name, shape with "N" as the batch dimension).
    outputs: list of (name, shape) for the graph's declared outputs.
    case: False writes the model alone (no reference files, no MANIFEST
    line), for a model the benchmarks use and the test suites do not.
    """
    graph = helper.make_graph(
        nodes, name, [vinfo(n, s) for n, s in inputs],
        [vinfo(n, s) for n, s in outputs], list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)],
        producer_name="ferry-tests")
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    fname = name + ".onnx"
    data = model.SerializeToString()
    with open(os.path.join(out_dir, fname), "wb") as f:
        f.write(data)
    if not case:
        return
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    r = rng(seed if seed is not None else zlib.crc32(name.encode()))
    for b in BATCHES:
        feeds = {}
        files_in = []
        for i, (n, s) in enumerate(inputs):
            shape = [b if d == "N" else d for d in s]
            x = r.uniform(low, high, size=shape).astype(np.float32)
            feeds[n] = x
            fn = "%s.b%d.in%d.bin" % (name, b, i)
            x.tofile(os.path.join(out_dir, fn))
            files_in.append(fn)
        res = sess.run(None, feeds)
        files_out = []
        for i, y in enumerate(res):
            want = [b if d == "N" else d for d in outputs[i][1]]
            if list(y.shape) != want:
                raise SystemExit("%s: output %d has shape %s, declared %s"
                                 % (name, i, y.shape, want))
            fn = "%s.b%d.out%d.bin" % (name, b, i)
            np.ascontiguousarray(y, dtype=np.float32).tofile(
                os.path.join(out_dir, fn))
            files_out.append(fn)
        manifest.append("case %s %s %d %d %s %d %s" % (
            name, fname, b, len(files_in), " ".join(files_in),
            len(files_out), " ".join(files_out)))


def save_fail(name, model_or_bytes, code, *words):
    if isinstance(model_or_bytes, bytes):
        data = model_or_bytes
    else:
        data = model_or_bytes.SerializeToString()
    fname = name + ".onnx"
    with open(os.path.join(out_dir, fname), "wb") as f:
        f.write(data)
    manifest.append("fail %s %s %s %s" % (name, fname, code, " ".join(words)))


def raw_model(nodes, inputs, outputs, inits=(), opset=OPSET):
    graph = helper.make_graph(nodes, "neg", inputs, outputs, list(inits))
    m = helper.make_model(graph,
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 10)
    return m


# ---------------------------------------------------------------------------
# networks

def mlp(name="mlp", opset=OPSET):
    """Jet tagging: 16 -> 64 -> 32 -> 32 -> 5, Gemm + BatchNorm + Relu."""
    r = rng(1)
    inits = [
        init("w1", weights(r, (16, 64))), init("b1", weights(r, (64,))),
        init("bn_s", r.uniform(0.5, 1.5, 64)), init("bn_b", weights(r, (64,))),
        init("bn_m", weights(r, (64,), 0.1)), init("bn_v", r.uniform(0.5, 2, 64)),
        init("w2", weights(r, (32, 64))), init("b2", weights(r, (32,))),
        init("w3", weights(r, (32, 32))), init("b3", weights(r, (32,))),
        init("w4", weights(r, (32, 5))), init("b4", weights(r, (5,))),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1"),
        helper.make_node("BatchNormalization",
                         ["h1", "bn_s", "bn_b", "bn_m", "bn_v"], ["h1n"],
                         name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["h1n"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2",
                         transB=1),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["h3"], name="fc3"),
        helper.make_node("Relu", ["h3"], ["a3"], name="relu3"),
        helper.make_node("Gemm", ["a3", "w4", "b4"], ["h4"], name="fc4"),
        helper.make_node("Softmax", ["h4"], ["y"], name="softmax"),
    ]
    save(name, nodes, [("x", ["N", 16])], [("y", ["N", 5])], inits,
         opset=opset)


def mlp_wide(name="mlp_wide", hidden=512, layers=3):
    """The offload study's network (bench/saturate.c --model mlp_wide):
    the MLP's interface, 16 -> 512 -> 512 -> 512 -> 5 (Gemm + Relu,
    Softmax), about 0.54 M multiply-adds per row, so that inference is a
    large share of an event.  Saved without a MANIFEST case, so the test
    suites' cases stay as they are (checked once against onnxruntime at
    batch 1 and 7 with test_onnx's reference test: within its 1e-4)."""
    r = rng(11)
    sizes = [16] + [hidden] * layers + [5]
    inits, nodes, x = [], [], "x"
    for i in range(len(sizes) - 1):
        # scaled by 1/sqrt(fan-in), so activations stay of order one
        w = weights(r, (sizes[i], sizes[i + 1]), 1 / np.sqrt(sizes[i]))
        inits += [init("w%d" % i, w),
                  init("b%d" % i, weights(r, (sizes[i + 1],), 0.1))]
        h = "h%d" % i
        nodes.append(helper.make_node("Gemm", [x, "w%d" % i, "b%d" % i], [h],
                                      name="fc%d" % i))
        if i < len(sizes) - 2:
            x = "a%d" % i
            nodes.append(helper.make_node("Relu", [h], [x], name="relu%d" % i))
    nodes.append(helper.make_node("Softmax", [h], ["y"], name="softmax"))
    save(name, nodes, [("x", ["N", 16])], [("y", ["N", 5])], inits, case=False)


def conv1d():
    r = rng(2)
    inits = [init("w", weights(r, (8, 4, 3))), init("b", weights(r, (8,))),
             init("fw", weights(r, (8 * 16, 10), 0.2)),
             init("fb", weights(r, (10,)))]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2],
                         strides=[2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"]),
    ]
    save("conv1d", nodes, [("x", ["N", 4, 32])], [("y", ["N", 10])], inits)


def conv2d(name="conv2d", opset=OPSET):
    r = rng(3)
    inits = [
        init("w1", weights(r, (8, 3, 3, 3))), init("b1", weights(r, (8,))),
        init("s", r.uniform(0.5, 1.5, 8)), init("bb", weights(r, (8,))),
        init("m", weights(r, (8,), 0.1)), init("v", r.uniform(0.5, 2, 8)),
        init("w2", weights(r, (8, 4, 3, 3))), init("b2", weights(r, (8,))),
        init("w3", weights(r, (16, 8, 1, 1))), init("b3", weights(r, (16,))),
        init("fw", weights(r, (16, 10))), init("fb", weights(r, (10,))),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"],
                         ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], group=2,
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["l"]),
        helper.make_node("Softmax", ["l"], ["y"]),
    ]
    save(name, nodes, [("x", ["N", 3, 16, 16])], [("y", ["N", 10])], inits,
         opset=opset)


# ---------------------------------------------------------------------------
# one small model per operator

def one(name, op, inputs, out_shape, inits=(), extra_nodes=(), low=-1.0,
        high=1.0, opset=OPSET, **attrs):
    """Single node 'op' reading the graph inputs then the initializers."""
    names = [n for n, _ in inputs] + [t.name for t in inits]
    node = helper.make_node(op, names, ["y"], name=name + "_node", **attrs)
    save(name, list(extra_nodes) + [node], inputs, [("y", out_shape)],
         inits, low=low, high=high, opset=opset)


def ops():
    r = rng(10)
    # Gemm
    one("gemm_plain", "Gemm", [("x", ["N", 6])], ["N", 4],
        [init("w", weights(r, (6, 4)))])
    one("gemm_transB_bias", "Gemm", [("x", ["N", 6])], ["N", 4],
        [init("w", weights(r, (4, 6))), init("c", weights(r, (4,)))],
        transB=1, alpha=0.5, beta=2.0)
    one("gemm_c_row", "Gemm", [("x", ["N", 6])], ["N", 4],
        [init("w", weights(r, (6, 4))), init("c", weights(r, (1, 4)))],
        beta=-1.5)
    one("gemm_c_scalar", "Gemm", [("x", ["N", 6])], ["N", 4],
        [init("w", weights(r, (6, 4))), init("c", weights(r, (1,)))])
    save("gemm_c_input", [helper.make_node("Gemm", ["x", "w", "c"], ["y"],
                                           alpha=2.0, beta=0.25)],
         [("x", ["N", 6]), ("c", ["N", 4])], [("y", ["N", 4])],
         [init("w", weights(r, (6, 4)))])
    save("gemm_c_col", [helper.make_node("Gemm", ["x", "w", "c"], ["y"])],
         [("x", ["N", 6]), ("c", ["N", 1])], [("y", ["N", 4])],
         [init("w", weights(r, (6, 4)))])
    save("gemm_transA", [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
        helper.make_node("Gemm", ["xt", "w"], ["y"], transA=1, transB=1)],
        [("x", ["N", 6])], [("y", ["N", 3])],
        [init("w", weights(r, (3, 6)))])
    # MatMul
    one("matmul_2d", "MatMul", [("x", ["N", 8])], ["N", 4],
        [init("w", weights(r, (8, 4)))])
    one("matmul_3d", "MatMul", [("x", ["N", 3, 8])], ["N", 3, 4],
        [init("w", weights(r, (8, 4)))])
    one("matmul_bcast", "MatMul", [("x", ["N", 2, 3, 4])], ["N", 2, 3, 5],
        [init("w", weights(r, (2, 4, 5)))])
    one("matmul_vec", "MatMul", [("x", ["N", 8])], ["N"],
        [init("w", weights(r, (8,)))])
    one("matmul_two_inputs", "MatMul", [("a", ["N", 3, 4]), ("b", ["N", 4, 2])],
        ["N", 3, 2])
    save("matmul_lhs_const", [helper.make_node("MatMul", ["w", "x"], ["y"])],
         [("x", ["N", 4, 3])], [("y", ["N", 2, 3])],
         [init("w", weights(r, (2, 4)))])
    # broadcasting binary ops
    one("add_bias", "Add", [("x", ["N", 3, 4])], ["N", 3, 4],
        [init("c", weights(r, (4,)))])
    one("add_two", "Add", [("a", ["N", 3, 4]), ("b", ["N", 3, 4])],
        ["N", 3, 4])
    one("add_col", "Add", [("a", ["N", 4]), ("b", ["N", 1])], ["N", 4])
    one("sub_mid", "Sub", [("x", ["N", 3, 4])], ["N", 3, 4],
        [init("c", weights(r, (3, 1)))])
    save("sub_rev", [helper.make_node("Sub", ["c", "x"], ["y"])],
         [("x", ["N", 2, 5])], [("y", ["N", 2, 5])],
         [init("c", weights(r, (2, 1, 5)).reshape(2, 5))])
    one("mul_scalar", "Mul", [("x", ["N", 3, 4])], ["N", 3, 4],
        [init("c", np.float32(1.7))])
    one("mul_outer", "Mul", [("x", ["N", 1, 4])], ["N", 3, 4],
        [init("c", weights(r, (3, 1)))])
    one("div_bcast", "Div", [("x", ["N", 3, 4])], ["N", 3, 4],
        [init("c", r.uniform(0.5, 1.5, (1, 3, 1)))])
    save("div_inputs", [helper.make_node("Div", ["a", "b"], ["y"])],
         [("a", ["N", 6]), ("b", ["N", 6])], [("y", ["N", 6])],
         low=0.5, high=2.0)
    # activations
    one("relu", "Relu", [("x", ["N", 10])], ["N", 10])
    one("leakyrelu", "LeakyRelu", [("x", ["N", 10])], ["N", 10], alpha=0.2)
    one("leakyrelu_default", "LeakyRelu", [("x", ["N", 10])], ["N", 10])
    one("elu", "Elu", [("x", ["N", 10])], ["N", 10], low=-4, high=4)
    one("elu_alpha", "Elu", [("x", ["N", 10])], ["N", 10], alpha=0.5,
        low=-4, high=4)
    one("sigmoid", "Sigmoid", [("x", ["N", 10])], ["N", 10], low=-30, high=30)
    one("tanh", "Tanh", [("x", ["N", 10])], ["N", 10], low=-5, high=5)
    # softmax family
    one("softmax_last", "Softmax", [("x", ["N", 3, 4])], ["N", 3, 4],
        low=-10, high=10)
    one("softmax_axis1", "Softmax", [("x", ["N", 3, 4])], ["N", 3, 4], axis=1)
    one("softmax_axis0", "Softmax", [("x", ["N", 5])], ["N", 5], axis=0)
    one("logsoftmax_last", "LogSoftmax", [("x", ["N", 6])], ["N", 6],
        low=-10, high=10)
    one("logsoftmax_neg2", "LogSoftmax", [("x", ["N", 3, 4])], ["N", 3, 4],
        axis=-2)
    # shape ops
    one("flatten_default", "Flatten", [("x", ["N", 2, 3, 4])], ["N", 24])
    save("flatten_axis2", [
        helper.make_node("Flatten", ["x"], ["f"], axis=2),
        helper.make_node("Reshape", ["f", "s"], ["y"])],
        [("x", ["N", 2, 3, 4])], [("y", ["N", 24])],
        [init("s", [-1, 24], np.int64)])
    one("flatten_neg", "Flatten", [("x", ["N", 2, 3])], ["N", 6], axis=-2)
    one("reshape_zero", "Reshape", [("x", ["N", 12])], ["N", 3, 4],
        [init("s", [0, 3, 4], np.int64)])
    one("reshape_neg", "Reshape", [("x", ["N", 3, 4])], ["N", 12],
        [init("s", [-1, 12], np.int64)])
    one("reshape_zero_neg", "Reshape", [("x", ["N", 2, 6])], ["N", 12],
        [init("s", [0, -1], np.int64)])
    one("reshape_allowzero", "Reshape", [("x", ["N", 12])], ["N", 4, 3],
        [init("s", [-1, 4, 3], np.int64)], allowzero=1)
    save("reshape_fold_batch", [
        helper.make_node("Reshape", ["x", "s1"], ["f"]),
        helper.make_node("Relu", ["f"], ["r"]),
        helper.make_node("Reshape", ["r", "s2"], ["y"])],
        [("x", ["N", 3, 4])], [("y", ["N", 3, 4])],
        [init("s1", [-1, 4], np.int64), init("s2", [-1, 3, 4], np.int64)])
    save("reshape_constant_node", [
        helper.make_node("Constant", [], ["s"],
                         value=init("sv", [0, 2, -1], np.int64)),
        helper.make_node("Reshape", ["x", "s"], ["y"])],
        [("x", ["N", 8])], [("y", ["N", 2, 4])])
    one("transpose_021", "Transpose", [("x", ["N", 3, 4])], ["N", 4, 3],
        perm=[0, 2, 1])
    one("transpose_0312", "Transpose", [("x", ["N", 2, 3, 4])],
        ["N", 4, 2, 3], perm=[0, 3, 1, 2])
    save("transpose_default", [
        helper.make_node("Transpose", ["x"], ["t"]),
        helper.make_node("Relu", ["t"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"])],
        [("x", ["N", 3, 4])], [("y", ["N", 3, 4])])
    one("concat_axis1", "Concat", [("a", ["N", 3]), ("b", ["N", 5])], ["N", 8],
        axis=1)
    save("concat_last3", [helper.make_node("Concat", ["a", "b", "c"], ["y"],
                                           axis=-1)],
         [("a", ["N", 2, 3]), ("b", ["N", 2, 1]), ("c", ["N", 2, 2])],
         [("y", ["N", 2, 6])])
    save("concat_axis0", [
        helper.make_node("Concat", ["a", "b"], ["c"], axis=0),
        helper.make_node("Reshape", ["c", "s"], ["y"])],
        [("a", ["N", 4]), ("b", ["N", 4])], [("y", ["N", 8])],
        [init("s", [-1, 8], np.int64)])
    one("squeeze_axes", "Squeeze", [("x", ["N", 1, 4, 1])], ["N", 4],
        [init("ax", [1, -1], np.int64)])
    one("unsqueeze_1", "Unsqueeze", [("x", ["N", 4])], ["N", 1, 4],
        [init("ax", [1], np.int64)])
    one("unsqueeze_multi", "Unsqueeze", [("x", ["N", 4])], ["N", 1, 4, 1],
        [init("ax", [-1, 1], np.int64)])
    save("unsqueeze_squeeze_const", [
        helper.make_node("Constant", [], ["ax"], value_ints=[2]),
        helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax"], ["y"])],
        [("x", ["N", 3, 4])], [("y", ["N", 3, 4])])
    one("identity", "Identity", [("x", ["N", 3, 4])], ["N", 3, 4])
    save("constant_value", [
        helper.make_node("Constant", [], ["c"],
                         value=init("cv", weights(r, (4,)))),
        helper.make_node("Constant", [], ["s"], value_float=0.5),
        helper.make_node("Constant", [], ["v"], value_floats=[1.0, 2.0, 3.0, 4.0]),
        helper.make_node("Add", ["x", "c"], ["t1"]),
        helper.make_node("Mul", ["t1", "s"], ["t2"]),
        helper.make_node("Sub", ["t2", "v"], ["y"])],
        [("x", ["N", 4])], [("y", ["N", 4])])
    save("two_outputs", [
        helper.make_node("Relu", ["x"], ["y1"]),
        helper.make_node("Sigmoid", ["y1"], ["y2"]),
        helper.make_node("Identity", ["x"], ["y3"])],
        [("x", ["N", 5])], [("y1", ["N", 5]), ("y2", ["N", 5]),
                            ("y3", ["N", 5])])
    # BatchNormalization
    for nm, shape in (("bn_2d", ["N", 6]), ("bn_4d", ["N", 3, 5, 5]),
                      ("bn_3d", ["N", 4, 7])):
        c = shape[1]
        one(nm, "BatchNormalization", [("x", shape)], shape,
            [init("s", r.uniform(0.5, 1.5, c)), init("b", weights(r, (c,))),
             init("m", weights(r, (c,), 0.2)), init("v", r.uniform(0.2, 2, c))],
            epsilon=1e-4)
    # Conv 2-D
    def conv(name, xs, ws, out, bias=True, **a):
        inits = [init("w", weights(r, ws))]
        if bias:
            inits.append(init("b", weights(r, (ws[0],))))
        one(name, "Conv", [("x", ["N"] + xs)], ["N"] + out, inits, **a)
    conv("conv_k3_p1", [3, 8, 8], (4, 3, 3, 3), [4, 8, 8], pads=[1, 1, 1, 1])
    conv("conv_k3_s2", [3, 9, 9], (4, 3, 3, 3), [4, 4, 4], strides=[2, 2])
    conv("conv_group3", [6, 7, 7], (6, 2, 3, 3), [6, 7, 7], group=3,
         pads=[1, 1, 1, 1])
    conv("conv_depthwise", [4, 6, 6], (4, 1, 3, 3), [4, 4, 4], group=4)
    conv("conv_dil2", [2, 9, 9], (3, 2, 3, 3), [3, 5, 5], dilations=[2, 2])
    conv("conv_same_upper", [2, 7, 7], (3, 2, 3, 3), [3, 4, 4],
         auto_pad="SAME_UPPER", strides=[2, 2])
    conv("conv_same_lower", [2, 6, 6], (3, 2, 2, 2), [3, 6, 6],
         auto_pad="SAME_LOWER")
    conv("conv_valid", [2, 6, 6], (3, 2, 3, 3), [3, 4, 4], auto_pad="VALID")
    conv("conv_nobias", [3, 5, 5], (2, 3, 3, 3), [2, 3, 3], bias=False)
    conv("conv_asym_pads", [2, 6, 6], (3, 2, 3, 2), [3, 5, 8],
         pads=[0, 1, 1, 2])
    conv("conv_1x1", [5, 4, 4], (7, 5, 1, 1), [7, 4, 4])
    conv("conv_1x1_s2", [5, 4, 4], (7, 5, 1, 1), [7, 2, 2], strides=[2, 2])
    conv("conv_rect_stride", [2, 10, 7], (4, 2, 3, 2), [4, 4, 3],
         strides=[2, 3], pads=[0, 1, 0, 1], kernel_shape=[3, 2])
    # Conv 1-D
    conv("conv1d_k3", [3, 16], (5, 3, 3), [5, 14])
    conv("conv1d_s2_p2_d2", [4, 20], (6, 2, 3), [6, 10], strides=[2],
         pads=[2, 2], dilations=[2], group=2)
    conv("conv1d_same", [3, 11], (2, 3, 4), [2, 11], auto_pad="SAME_UPPER")
    # pools
    def pool(name, op, xs, out, **a):
        one(name, op, [("x", ["N"] + xs)], ["N"] + out, **a)
    pool("maxpool_k2s2", "MaxPool", [3, 8, 8], [3, 4, 4], kernel_shape=[2, 2],
         strides=[2, 2])
    pool("maxpool_k3p1", "MaxPool", [2, 7, 7], [2, 7, 7], kernel_shape=[3, 3],
         pads=[1, 1, 1, 1])
    pool("maxpool_ceil", "MaxPool", [2, 8, 8], [2, 4, 4], kernel_shape=[3, 3],
         strides=[2, 2], ceil_mode=1)
    pool("maxpool_ceil_pad", "MaxPool", [2, 7, 7], [2, 4, 4],
         kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    pool("maxpool_dil", "MaxPool", [2, 9, 9], [2, 5, 5], kernel_shape=[3, 3],
         dilations=[2, 2])
    pool("maxpool_asym", "MaxPool", [2, 6, 6], [2, 6, 3], kernel_shape=[2, 3],
         strides=[1, 2], pads=[1, 0, 0, 1])
    pool("maxpool_same", "MaxPool", [2, 7, 7], [2, 4, 4], kernel_shape=[3, 3],
         strides=[2, 2], auto_pad="SAME_UPPER")
    pool("maxpool1d", "MaxPool", [3, 15], [3, 7], kernel_shape=[3],
         strides=[2])
    pool("maxpool1d_pad", "MaxPool", [3, 10], [3, 11], kernel_shape=[2],
         pads=[1, 1])
    pool("avgpool_k2s2", "AveragePool", [3, 8, 8], [3, 4, 4],
         kernel_shape=[2, 2], strides=[2, 2])
    pool("avgpool_pad_excl", "AveragePool", [2, 7, 7], [2, 7, 7],
         kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    pool("avgpool_pad_incl", "AveragePool", [2, 7, 7], [2, 7, 7],
         kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    pool("avgpool_ceil", "AveragePool", [2, 8, 8], [2, 4, 4],
         kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    pool("avgpool_ceil_pad_incl", "AveragePool", [2, 7, 7], [2, 4, 4],
         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
         count_include_pad=1)
    pool("avgpool_asym", "AveragePool", [2, 6, 6], [2, 6, 3],
         kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 1])
    pool("avgpool1d", "AveragePool", [3, 15], [3, 5], kernel_shape=[3],
         strides=[3])
    pool("avgpool1d_pad_incl", "AveragePool", [3, 10], [3, 5],
         kernel_shape=[3], strides=[2], pads=[1, 1], count_include_pad=1)
    pool("gap_2d", "GlobalAveragePool", [4, 5, 6], [4, 1, 1])
    pool("gap_1d", "GlobalAveragePool", [4, 9], [4, 1])
    # the oldest supported opset
    one("relu_op13", "Relu", [("x", ["N", 10])], ["N", 10], opset=13)
    one("reshape_op13", "Reshape", [("x", ["N", 12])], ["N", 3, 4],
        [init("s", [0, 3, 4], np.int64)], opset=13)
    one("squeeze_op13", "Squeeze", [("x", ["N", 1, 4])], ["N", 4],
        [init("ax", [1], np.int64)], opset=13)
    one("bn_op13", "BatchNormalization", [("x", ["N", 3, 4])], ["N", 3, 4],
        [init("s", r.uniform(0.5, 1.5, 3)), init("b", weights(r, (3,))),
         init("m", weights(r, (3,), 0.2)), init("v", r.uniform(0.2, 2, 3))],
        opset=13)


# ---------------------------------------------------------------------------
# models that must not load

def negatives():
    r = rng(20)
    x = vinfo("x", ["N", 4])
    y = vinfo("y", ["N", 4])
    # two unsupported operators: both must be named
    m = raw_model([
        helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
        helper.make_node("LSTM", ["a", "W", "R"], ["b"], name="lstm_1",
                         hidden_size=4),
        helper.make_node("Hardmax", ["b"], ["y"], name="hardmax_7")],
        [x], [y], [init("W", weights(r, (1, 16, 4))),
                   init("R", weights(r, (1, 16, 4)))])
    save_fail("neg_unsupported_ops", m, "ENOTSUP", "lstm_1", "LSTM",
              "hardmax_7", "Hardmax")
    m = raw_model([helper.make_node("Relu", ["x"], ["y"], name="r",
                                    domain="com.example")], [x], [y])
    save_fail("neg_foreign_domain", m, "ENOTSUP", "com.example")
    m = raw_model([helper.make_node("Relu", ["xi"], ["y"])],
                  [helper.make_tensor_value_info("xi", TensorProto.INT32,
                                                 ["N", 4])], [y])
    save_fail("neg_int_input", m, "ENOTSUP", "xi", "int32", "float32", "Relu")
    m = raw_model([helper.make_node("Relu", ["x"], ["y"], name="relu_dyn")],
                  [vinfo("x", ["N", "M"])], [vinfo("y", ["N", "M"])])
    save_fail("neg_dynamic_dim", m, "ENOTSUP", "'x'", "dynamic", "relu_dyn")
    m = raw_model([helper.make_node("Add", ["x", "h"], ["y"], name="add_h")],
                  [x], [y], [init("h", np.ones(4), np.float16)])
    save_fail("neg_f16_initializer", m, "ENOTSUP", "add_h", "float32")
    m = raw_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y],
                  opset=11)
    save_fail("neg_old_opset", m, "ENOTSUP", "opset 11")
    m = raw_model([helper.make_node("Reshape", ["x", "s"], ["y"],
                                    name="reshape_dyn")],
                  [x, helper.make_tensor_value_info("s", TensorProto.INT64,
                                                    [2])], [y])
    save_fail("neg_dynamic_shape_input", m, "ENOTSUP", "int64", "reshape_dyn")
    bad = init("w", np.ones((4, 4)))
    bad.raw_data = b"\0" * 12
    m = raw_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y],
                  [bad])
    save_fail("neg_short_raw_data", m, "EBADMSG", "'w'", "raw data")
    ext = init("w", np.ones((4, 4)))
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="w.bin")
    m = raw_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y],
                  [ext])
    save_fail("neg_external_data", m, "ENOTSUP", "external")
    m = raw_model([helper.make_node("Relu", ["b"], ["a"], name="n1"),
                   helper.make_node("Relu", ["a"], ["b"], name="n2"),
                   helper.make_node("Add", ["x", "b"], ["y"])], [x], [y])
    save_fail("neg_cycle", m, "EBADMSG", "cycle")
    m = raw_model([helper.make_node("Relu", ["nothere"], ["y"], name="r9")],
                  [x], [y])
    save_fail("neg_undefined_input", m, "EBADMSG", "r9", "nothere")
    m = raw_model([helper.make_node("Gemm", ["x", "w"], ["y"], name="g")],
                  [x], [y], [init("w", weights(r, (5, 4)))])
    save_fail("neg_gemm_mismatch", m, "EBADMSG", "'g'", "Gemm")
    m = raw_model([helper.make_node("Reshape", ["x", "s"], ["y"],
                                    name="fixes_batch")],
                  [x], [vinfo("y", [2, 8])], [init("s", [2, 8], np.int64)])
    save_fail("neg_reshape_fixed_batch", m, "ENOTSUP", "fixes_batch")
    m = raw_model([helper.make_node("MaxPool", ["x4"], ["y", "idx"],
                                    kernel_shape=[2, 2], name="mp_idx")],
                  [vinfo("x4", ["N", 1, 4, 4])], [vinfo("y", ["N", 1, 2, 2])])
    save_fail("neg_maxpool_indices", m, "ENOTSUP", "mp_idx")
    save_fail("neg_garbage", bytes(r.integers(0, 256, 200, dtype=np.uint8)),
              "EBADMSG", "ONNX")
    save_fail("neg_empty", b"", "EBADMSG", "graph")


def main():
    global out_dir
    if len(sys.argv) != 2:
        sys.exit("usage: gen_models.py OUTDIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    mlp()
    mlp("mlp_op13", opset=13)
    conv1d()
    conv2d()
    conv2d("conv2d_op13", opset=13)
    mlp_wide()
    ops()
    negatives()
    with open(os.path.join(out_dir, "MANIFEST"), "w") as f:
        f.write("# generated by tests/onnx/gen_models.py, onnx %s, "
                "onnxruntime %s, opset %d\n" % (onnx.__version__,
                                                ort.__version__, OPSET))
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
