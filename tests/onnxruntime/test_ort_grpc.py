#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The onnxruntime backend seen by Triton's own client (tritonclient[grpc]).

Starts a ferryd from the build tree on a repository of model directories
that hold only 1/model.onnx (the models of gen_ort_models.py), checks the
configs ModelConfig returns (auto-completed, as Triton completes them) and
compares each model's answers with onnxruntime run in this process
(rtol 1e-4, atol 1e-5; integers and bools exactly).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gen_ort_models as gm  # noqa: E402
from tritonclient_util import free_port  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

TOP = os.environ.get("FERRY_TOP_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.environ.get("FERRY_TOP_BUILDDIR", TOP)
S = {}
NP = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}


def rowsum():
    """x [N, 4] -> y [N]: a scalar per row, which Triton's configs spell
    dims [1] with reshape { shape: [] }."""
    n = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    return gm.model("rowsum", [n], [gm.vi("x", TensorProto.FLOAT, ["N", 4])],
                    [gm.vi("y", TensorProto.FLOAT, ["N"])],
                    [gm.init("axes", np.array([1], np.int64))])


def setUpModule():
    d = tempfile.mkdtemp(prefix="ferry-ort-")
    repo = os.path.join(d, "repo")
    S["models"] = {}
    for make in (gm.transformer, gm.topk_gather, gm.gru, gm.cnn, gm.intbool, rowsum):
        m = make()
        S["models"][m.graph.name] = m
        os.makedirs(os.path.join(repo, m.graph.name, "1"))
        with open(os.path.join(repo, m.graph.name, "1", "model.onnx"), "wb") as f:
            f.write(m.SerializeToString())
    port = free_port()
    log = open(os.path.join(d, "ferryd.log"), "w")
    proc = subprocess.Popen(
        [os.path.join(BUILD, "broker", "ferryd"), "-m", repo, "-s", os.path.join(d, "ferryd.sock"),
         "--grpc-port", str(port), "--metrics-port", "0", "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT)
    S.update(dir=d, proc=proc, log=log, client=tg.InferenceServerClient("127.0.0.1:%d" % port))
    for _ in range(400):
        try:
            if S["client"].is_server_ready():
                break
        except InferenceServerException:
            pass
        if proc.poll() is not None:
            raise RuntimeError("ferryd exited: " + open(os.path.join(d, "ferryd.log")).read())
        time.sleep(0.05)


def tearDownModule():
    S["client"].close()
    S["proc"].terminate()
    rc = S["proc"].wait(timeout=30)
    S["log"].close()
    if rc != 0:
        sys.stderr.write(open(os.path.join(S["dir"], "ferryd.log")).read())
    shutil.rmtree(S["dir"], ignore_errors=True)
    assert rc == 0, "ferryd exit status %d" % rc


class AutoComplete(unittest.TestCase):
    def test_model_config_is_completed(self):
        cfg = S["client"].get_model_config("transformer", as_json=True)["config"]
        self.assertEqual(cfg["platform"], "onnxruntime_onnx")
        self.assertEqual(cfg["backend"], "onnxruntime")
        self.assertEqual(int(cfg["max_batch_size"]), 4)     # Triton's default
        self.assertEqual([(t["name"], t["data_type"], [int(x) for x in t["dims"]]) for t in cfg["input"]],
                         [("x", "TYPE_FP32", [8, 32])])
        self.assertEqual([(t["name"], t["data_type"], [int(x) for x in t["dims"]]) for t in cfg["output"]],
                         [("y", "TYPE_FP32", [8, 32])])

    def test_types_of_every_tensor(self):
        cfg = S["client"].get_model_config("intbool", as_json=True)["config"]
        self.assertEqual({t["name"]: t["data_type"] for t in cfg["input"]},
                         {"ids": "TYPE_INT64", "mask": "TYPE_BOOL", "feats": "TYPE_FP32"})
        self.assertEqual({t["name"]: t["data_type"] for t in cfg["output"]},
                         {"logits": "TYPE_FP32", "positive": "TYPE_BOOL", "masked_ids": "TYPE_INT64"})
        md = S["client"].get_model_metadata("topk_gather", as_json=True)
        self.assertEqual({t["name"]: t["datatype"] for t in md["outputs"]},
                         {"values": "FP32", "indices": "INT64", "emb": "FP32"})


    def test_scalar_per_row_is_dims_1_reshaped(self):
        cfg = S["client"].get_model_config("rowsum", as_json=True)["config"]
        y = cfg["output"][0]
        self.assertEqual([int(d) for d in y["dims"]], [1])
        self.assertEqual(y["reshape"].get("shape", []), [])
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        t = tg.InferInput("x", [3, 4], "FP32")
        t.set_data_from_numpy(x)
        got = S["client"].infer("rowsum", [t]).as_numpy("y")
        np.testing.assert_allclose(got, x.sum(axis=1).reshape(3, 1), rtol=1e-6)


class AgainstOnnxRuntime(unittest.TestCase):
    def check(self, name, batch):
        m = S["models"][name]
        feeds = gm.inputs_for(m, batch, 4242 + batch)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        want = dict(zip([o.name for o in m.graph.output], sess.run(None, feeds)))
        inputs = []
        for k, v in feeds.items():
            t = tg.InferInput(k, list(v.shape), {np.float32: "FP32", np.int64: "INT64",
                                                 np.bool_: "BOOL"}[v.dtype.type])
            t.set_data_from_numpy(v)
            inputs.append(t)
        res = S["client"].infer(name, inputs, outputs=[tg.InferRequestedOutput(k) for k in want])
        for k, w in want.items():
            got = res.as_numpy(k)
            self.assertEqual(got.shape, w.shape, k)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-5, err_msg="%s %s" % (name, k))
            else:
                np.testing.assert_array_equal(got, w, err_msg="%s %s" % (name, k))

    def test_transformer(self):
        for b in (1, 4):
            self.check("transformer", b)

    def test_topk_gather_expand(self):
        for b in (1, 3):
            self.check("topk_gather", b)

    def test_gru(self):
        self.check("gru", 2)

    def test_cnn(self):
        self.check("cnn", 4)

    def test_int64_and_bool(self):
        self.check("intbool", 3)

    def test_batch_over_the_completed_max_batch_size(self):
        # batch 5 is over the completed max_batch_size: ferry refuses it
        # before the backend, with the reason
        x = np.zeros((5, 8, 32), np.float32)
        t = tg.InferInput("x", list(x.shape), "FP32")
        t.set_data_from_numpy(x)
        with self.assertRaises(InferenceServerException) as cm:
            S["client"].infer("transformer", [t])
        self.assertIn("max_batch_size", cm.exception.message())


if __name__ == "__main__":
    unittest.main()
