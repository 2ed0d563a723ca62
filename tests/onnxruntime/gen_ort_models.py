#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Realistic ONNX models for the onnxruntime backend, with onnxruntime's
reference outputs.

    gen_ort_models.py OUTDIR

Writes into OUTDIR, from fixed seeds (the same files on every run):

  NAME.onnx                 the model (see MODELS below)
  NAME.bB.TENSOR.bin        inputs and onnxruntime's outputs at batch B
                            (1, 7 and 64): raw little-endian elements;
                            BYTES tensors in ferry's wire form (a 4-byte
                            little-endian length before each element)
  broken.onnx               bytes that are not a model
  unknown_op.onnx           a model whose operator no runtime has
  MANIFEST                  one line per model and per tensor:
      model NAME
      tensor NAME BATCH in|out TENSOR DTYPE NDIMS DIM...
    (DTYPE is the KServe name: FP32, INT64, BYTES ...)

The models are what users bring (issue 13): a transformer encoder layer
(LayerNormalization, Erf-based GELU, multi-head attention); a graph with
TopK, Gather and Expand; a GRU tagger; a convolutional residual block; a
model mixing int64 indices and bool masks with floats; and "dtypes", an
Identity per data type KServe v2 and ONNX share.  Every model batches on a
symbolic first dimension "N".

Also importable: tests/onnxruntime/test_ort_grpc.py builds the same models
and compares tritonclient's answers with onnxruntime in the same process.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
BATCHES = (1, 7, 64)

# KServe name, numpy dtype, ONNX element type
DTYPES = [
    ("BOOL", np.bool_, TensorProto.BOOL),
    ("UINT8", np.uint8, TensorProto.UINT8),
    ("UINT16", np.uint16, TensorProto.UINT16),
    ("UINT32", np.uint32, TensorProto.UINT32),
    ("UINT64", np.uint64, TensorProto.UINT64),
    ("INT8", np.int8, TensorProto.INT8),
    ("INT16", np.int16, TensorProto.INT16),
    ("INT32", np.int32, TensorProto.INT32),
    ("INT64", np.int64, TensorProto.INT64),
    ("FP16", np.float16, TensorProto.FLOAT16),
    ("FP32", np.float32, TensorProto.FLOAT),
    ("FP64", np.float64, TensorProto.DOUBLE),
    ("BYTES", np.object_, TensorProto.STRING),
    ("BF16", None, TensorProto.BFLOAT16),   # numpy has none: raw uint16
]
KSERVE = {t: k for k, _, t in DTYPES}


def f32(a):
    return np.asarray(a, dtype=np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def vi(name, etype, shape):
    return helper.make_tensor_value_info(name, etype, shape)


def model(name, nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="ferry-tests")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m


def transformer(seed=11, S=8, D=32, H=4, F=64):
    """One encoder layer: pre-LN multi-head self-attention and a GELU MLP."""
    r = np.random.default_rng(seed)
    Dh = D // H
    w = lambda *s: f32(r.standard_normal(s) / np.sqrt(s[0]))
    inits = [init("ln1_s", f32(1 + 0.1 * r.standard_normal(D))), init("ln1_b", f32(0.1 * r.standard_normal(D))),
             init("ln2_s", f32(1 + 0.1 * r.standard_normal(D))), init("ln2_b", f32(0.1 * r.standard_normal(D))),
             init("wq", w(D, D)), init("wk", w(D, D)), init("wv", w(D, D)), init("wo", w(D, D)),
             init("w1", w(D, F)), init("b1", f32(0.1 * r.standard_normal(F))),
             init("w2", w(F, D)), init("b2", f32(0.1 * r.standard_normal(D))),
             init("heads", np.array([0, S, H, Dh], np.int64)), init("merge", np.array([0, S, D], np.int64)),
             init("scale", f32(1.0 / np.sqrt(Dh))), init("half", f32(0.5)), init("one", f32(1.0)),
             init("rsqrt2", f32(1.0 / np.sqrt(2.0)))]
    n = helper.make_node
    nodes = [
        n("LayerNormalization", ["x", "ln1_s", "ln1_b"], ["h1"], axis=-1, epsilon=1e-5),
        n("MatMul", ["h1", "wq"], ["q0"]), n("MatMul", ["h1", "wk"], ["k0"]), n("MatMul", ["h1", "wv"], ["v0"]),
        n("Reshape", ["q0", "heads"], ["q1"]), n("Reshape", ["k0", "heads"], ["k1"]), n("Reshape", ["v0", "heads"], ["v1"]),
        n("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3]), n("Transpose", ["k1"], ["kt"], perm=[0, 2, 3, 1]),
        n("Transpose", ["v1"], ["v"], perm=[0, 2, 1, 3]),
        n("MatMul", ["q", "kt"], ["s0"]), n("Mul", ["s0", "scale"], ["s1"]), n("Softmax", ["s1"], ["p"], axis=-1),
        n("MatMul", ["p", "v"], ["a0"]), n("Transpose", ["a0"], ["a1"], perm=[0, 2, 1, 3]),
        n("Reshape", ["a1", "merge"], ["a2"]), n("MatMul", ["a2", "wo"], ["a3"]), n("Add", ["x", "a3"], ["r1"]),
        n("LayerNormalization", ["r1", "ln2_s", "ln2_b"], ["h2"], axis=-1, epsilon=1e-5),
        n("MatMul", ["h2", "w1"], ["f0"]), n("Add", ["f0", "b1"], ["f1"]),
        # GELU, the exact form exporters write: 0.5 x (1 + erf(x / sqrt 2))
        n("Mul", ["f1", "rsqrt2"], ["g0"]), n("Erf", ["g0"], ["g1"]), n("Add", ["g1", "one"], ["g2"]),
        n("Mul", ["f1", "g2"], ["g3"]), n("Mul", ["g3", "half"], ["g4"]),
        n("MatMul", ["g4", "w2"], ["f2"]), n("Add", ["f2", "b2"], ["f3"]), n("Add", ["r1", "f3"], ["y"]),
    ]
    return model("transformer", nodes, [vi("x", TensorProto.FLOAT, ["N", S, D])],
                 [vi("y", TensorProto.FLOAT, ["N", S, D])], inits)


def topk_gather(seed=12, V=16, K=4, E=8):
    """Scores -> top-k indices -> embedding rows, plus a bias broadcast
    with Expand to the gathered shape."""
    r = np.random.default_rng(seed)
    inits = [init("table", f32(r.standard_normal((V, E)))), init("k", np.array([K], np.int64)),
             init("bias", f32(r.standard_normal((1, 1, E))))]
    n = helper.make_node
    nodes = [
        n("TopK", ["scores", "k"], ["values", "indices"], axis=-1, largest=1, sorted=1),
        n("Gather", ["table", "indices"], ["rows"], axis=0),
        n("Shape", ["rows"], ["rows_shape"]),
        n("Expand", ["bias", "rows_shape"], ["bias_full"]),
        n("Add", ["rows", "bias_full"], ["emb"]),
    ]
    return model("topk_gather", nodes, [vi("scores", TensorProto.FLOAT, ["N", V])],
                 [vi("values", TensorProto.FLOAT, ["N", K]), vi("indices", TensorProto.INT64, ["N", K]),
                  vi("emb", TensorProto.FLOAT, ["N", K, E])], inits)


def gru(seed=13, T=10, F=6, Hd=12, C=5):
    """A GRU tagger: a tag per time step and the last hidden state."""
    r = np.random.default_rng(seed)
    s = 1 / np.sqrt(Hd)
    inits = [init("W", f32(s * r.standard_normal((1, 3 * Hd, F)))), init("R", f32(s * r.standard_normal((1, 3 * Hd, Hd)))),
             init("B", f32(0.1 * r.standard_normal((1, 6 * Hd)))), init("wt", f32(s * r.standard_normal((Hd, C)))),
             init("bt", f32(0.1 * r.standard_normal(C))), init("ax0", np.array([0], np.int64)),
             init("ax1", np.array([1], np.int64))]
    n = helper.make_node
    nodes = [
        n("Transpose", ["seq"], ["seq_t"], perm=[1, 0, 2]),
        n("GRU", ["seq_t", "W", "R", "B"], ["Y", "Y_h"], hidden_size=Hd, linear_before_reset=1),
        n("Squeeze", ["Y", "ax1"], ["Y2"]), n("Transpose", ["Y2"], ["Y3"], perm=[1, 0, 2]),
        n("MatMul", ["Y3", "wt"], ["t0"]), n("Add", ["t0", "bt"], ["tags"]),
        n("Squeeze", ["Y_h", "ax0"], ["last"]),
    ]
    return model("gru", nodes, [vi("seq", TensorProto.FLOAT, ["N", T, F])],
                 [vi("tags", TensorProto.FLOAT, ["N", T, C]), vi("last", TensorProto.FLOAT, ["N", Hd])], inits)


def cnn(seed=14, Cin=3, C=8, HW=16, K=10):
    """A residual block (two 3x3 convolutions with batch norm, a 1x1
    projection on the skip path), global pooling and a classifier."""
    r = np.random.default_rng(seed)
    inits = []

    def conv(name, cin, cout, k):
        inits.append(init(name + "_w", f32(r.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k))))
        inits.append(init(name + "_b", f32(0.1 * r.standard_normal(cout))))

    def bn(name, c):
        inits.extend([init(name + "_s", f32(1 + 0.1 * r.standard_normal(c))), init(name + "_b", f32(0.1 * r.standard_normal(c))),
                      init(name + "_m", f32(0.1 * r.standard_normal(c))), init(name + "_v", f32(1 + 0.1 * np.abs(r.standard_normal(c))))])

    conv("c1", Cin, C, 3), bn("n1", C), conv("c2", C, C, 3), bn("n2", C), conv("cp", Cin, C, 1)
    inits += [init("fc_w", f32(r.standard_normal((C, K)) / np.sqrt(C))), init("fc_b", f32(0.1 * r.standard_normal(K)))]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "c1_w", "c1_b"], ["a0"], pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["a0", "n1_s", "n1_b", "n1_m", "n1_v"], ["a1"]),
        n("Relu", ["a1"], ["a2"]),
        n("Conv", ["a2", "c2_w", "c2_b"], ["a3"], pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["a3", "n2_s", "n2_b", "n2_m", "n2_v"], ["a4"]),
        n("Conv", ["x", "cp_w", "cp_b"], ["skip"]),
        n("Add", ["a4", "skip"], ["a5"]), n("Relu", ["a5"], ["a6"]),
        n("GlobalAveragePool", ["a6"], ["p0"]), n("Flatten", ["p0"], ["p1"], axis=1),
        n("Gemm", ["p1", "fc_w", "fc_b"], ["logits"]),
    ]
    return model("cnn", nodes, [vi("x", TensorProto.FLOAT, ["N", Cin, HW, HW])],
                 [vi("logits", TensorProto.FLOAT, ["N", K])], inits)


def intbool(seed=15, L=6, V=50, E=8, Fd=4, K=3):
    """Embedding indices (int64) with a bool mask beside dense features:
    masked mean of the embeddings, concatenated, a dense layer; outputs
    of three types."""
    r = np.random.default_rng(seed)
    inits = [init("emb", f32(r.standard_normal((V, E)))), init("w", f32(r.standard_normal((E + Fd, K)) / 3)),
             init("b", f32(0.1 * r.standard_normal(K))), init("ax1", np.array([1], np.int64)),
             init("ax2", np.array([2], np.int64)), init("eps", f32(1.0)), init("neg1", np.array(-1, np.int64)),
             init("zero", f32(0.0))]
    n = helper.make_node
    nodes = [
        n("Gather", ["emb", "ids"], ["e0"], axis=0),
        n("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["mf", "ax2"], ["mf3"]), n("Mul", ["e0", "mf3"], ["e1"]),
        n("ReduceSum", ["e1", "ax1"], ["s0"], keepdims=0), n("ReduceSum", ["mf", "ax1"], ["cnt0"], keepdims=1),
        n("Max", ["cnt0", "eps"], ["cnt"]), n("Div", ["s0", "cnt"], ["mean"]),
        n("Concat", ["mean", "feats"], ["h"], axis=1),
        n("Gemm", ["h", "w", "b"], ["logits"]),
        n("Greater", ["logits", "zero"], ["positive"]),
        n("Where", ["mask", "ids", "neg1"], ["masked_ids"]),
    ]
    return model("intbool", nodes,
                 [vi("ids", TensorProto.INT64, ["N", L]), vi("mask", TensorProto.BOOL, ["N", L]),
                  vi("feats", TensorProto.FLOAT, ["N", Fd])],
                 [vi("logits", TensorProto.FLOAT, ["N", K]), vi("positive", TensorProto.BOOL, ["N", K]),
                  vi("masked_ids", TensorProto.INT64, ["N", L])], inits)


def dtypes(W=5):
    """in_T -> Identity -> out_T for every data type KServe and ONNX share."""
    nodes, ins, outs = [], [], []
    for k, _, t in DTYPES:
        nodes.append(helper.make_node("Identity", ["in_" + k], ["out_" + k]))
        ins.append(vi("in_" + k, t, ["N", W]))
        outs.append(vi("out_" + k, t, ["N", W]))
    return model("dtypes", nodes, ins, outs)


def mlp(seed=16, I=16, Hd=32, O=5):
    """A small dense network the native executor also runs (the fallback
    test: ONNX Runtime missing, Triton's names still serve it)."""
    r = np.random.default_rng(seed)
    inits = [init("w1", f32(r.standard_normal((I, Hd)) / 4)), init("b1", f32(0.1 * r.standard_normal(Hd))),
             init("w2", f32(r.standard_normal((Hd, O)) / 6)), init("b2", f32(0.1 * r.standard_normal(O)))]
    n = helper.make_node
    nodes = [n("Gemm", ["x", "w1", "b1"], ["h0"]), n("Relu", ["h0"], ["h1"]),
             n("Gemm", ["h1", "w2", "b2"], ["y"])]
    return model("mlp", nodes, [vi("x", TensorProto.FLOAT, ["N", I])],
                 [vi("y", TensorProto.FLOAT, ["N", O])], inits)


def unknown_op():
    n = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example.nowhere")
    g = helper.make_graph([n], "unknown_op", [vi("x", TensorProto.FLOAT, ["N", 4])],
                         [vi("y", TensorProto.FLOAT, ["N", 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET),
                                            helper.make_opsetid("com.example.nowhere", 1)])
    m.ir_version = IR_VERSION
    return m


MODELS = [transformer, topk_gather, gru, cnn, intbool, dtypes, mlp]


def inputs_for(m, batch, seed):
    """Inputs for every graph input of m at this batch, from a seed."""
    r = np.random.default_rng(seed)
    feeds = {}
    for i in m.graph.input:
        t = i.type.tensor_type
        shape = [batch] + [d.dim_value for d in t.shape.dim[1:]]
        et = t.elem_type
        if i.name == "ids":
            a = r.integers(0, 50, size=shape, dtype=np.int64)
        elif et == TensorProto.BOOL:
            a = r.random(shape) < 0.6
        elif et == TensorProto.STRING:
            # UTF-8 text (what onnxruntime's Python API round-trips), with
            # NULs, multi-byte characters and empty strings
            alphabet = ["a", "Z", "0", " ", "\x00", "\u00e9", "\u20ac", "\U0001f600", "\n"]
            a = np.array(["".join(alphabet[int(c)] for c in r.integers(0, len(alphabet),
                                                                      size=int(r.integers(0, 9))))
                          for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)
        elif et == TensorProto.BFLOAT16:
            a = r.integers(0, 1 << 16, size=shape, dtype=np.uint16)
            a[(a & 0x7f80) == 0x7f80] &= 0x3fff       # no NaN or infinity
        elif et in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            a = r.standard_normal(shape).astype(helper.tensor_dtype_to_np_dtype(et))
        else:
            dt = helper.tensor_dtype_to_np_dtype(et)
            info = np.iinfo(dt)
            a = r.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
        feeds[i.name] = a
    return feeds


def run(m, feeds):
    """onnxruntime's outputs, by name."""
    import onnxruntime as ort
    if m.graph.name == "dtypes":
        return run_dtypes(feeds)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in m.graph.output]
    return dict(zip(names, sess.run(names, feeds)))


def run_dtypes(feeds):
    """The dtypes model one type at a time: onnxruntime's Python API takes
    bfloat16 only as an OrtValue over raw uint16 (numpy has no bfloat16),
    and strings only as numpy arrays."""
    import onnxruntime as ort
    outs = {}
    for k, _, t in DTYPES:
        one = model("dtype_" + k, [helper.make_node("Identity", ["in_" + k], ["out_" + k])],
                    [vi("in_" + k, t, ["N", 5])], [vi("out_" + k, t, ["N", 5])])
        sess = ort.InferenceSession(one.SerializeToString(), providers=["CPUExecutionProvider"])
        x = feeds["in_" + k]
        if t != TensorProto.BFLOAT16:
            outs["out_" + k] = sess.run(None, {"in_" + k: x})[0]
            continue
        # the output written by onnxruntime into a uint16 buffer of ours
        y = np.zeros_like(x)
        io = sess.io_binding()
        io.bind_ortvalue_input("in_" + k, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(x, t))
        io.bind_ortvalue_output("out_" + k, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(y, t))
        sess.run_with_iobinding(io)
        outs["out_" + k] = y
    return outs


def wire(a, et):
    if et == TensorProto.STRING:
        b = bytearray()
        for s in a.reshape(-1):
            s = s.encode("utf-8") if isinstance(s, str) else bytes(s)
            b += len(s).to_bytes(4, "little") + s
        return bytes(b)
    return np.ascontiguousarray(a).tobytes()


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    for make in MODELS:
        m = make()
        name = m.graph.name
        with open(os.path.join(out_dir, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
        manifest.append("model %s" % name)
        types = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)}
        for b in BATCHES:
            feeds = inputs_for(m, b, 1000 + 17 * b + len(name))
            outs = run(m, feeds)
            for kind, d in (("in", feeds), ("out", outs)):
                for t, a in d.items():
                    et = types[t]
                    with open(os.path.join(out_dir, "%s.b%d.%s.bin" % (name, b, t)), "wb") as f:
                        f.write(wire(a, et))
                    manifest.append("tensor %s %d %s %s %s %d %s" % (
                        name, b, kind, t, KSERVE[et], a.ndim, " ".join(str(x) for x in a.shape)))
    with open(os.path.join(out_dir, "broken.onnx"), "wb") as f:
        f.write(b"\x08\x07this is not an ONNX model \xff\xfe" * 8)
    with open(os.path.join(out_dir, "unknown_op.onnx"), "wb") as f:
        f.write(unknown_op().SerializeToString())
    with open(os.path.join(out_dir, "MANIFEST"), "w") as f:
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
