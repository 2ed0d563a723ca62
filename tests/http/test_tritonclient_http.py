#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ferryd's KServe v2 HTTP/REST endpoint driven by the real tritonclient[http].

The mirror of tests/grpc/test_tritonclient.py: one ferryd from the build tree
($FERRY_TOP_BUILDDIR) on free loopback ports (HTTP and gRPC) with the examples
plus test models, and every call Triton's HTTP clients make, JSON and binary
tensors, BYTES, shared memory, compression, 64 requests in flight, and every
error with its HTTP status.  Requests over HTTP and gRPC batch together.
"""
import base64
import gzip
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

import numpy as np
import tritonclient.grpc as tg
import tritonclient.http as th
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

TOP = os.environ.get("FERRY_TOP_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
sys.path.insert(0, os.path.join(TOP, "tests"))
from tritonclient_util import DTYPES, free_port, ident_cfg, write_model  # noqa: E402
BUILD = os.environ.get("FERRY_TOP_BUILDDIR", TOP)
MAX_BODY = 4 << 20

S = {}


def setUpModule():
    d = tempfile.mkdtemp(prefix="ferry-th-")
    repo = os.path.join(d, "repo")
    shutil.copytree(os.path.join(TOP, "examples", "models"), repo)
    for _, kname, cname in DTYPES:
        write_model(repo, "ident_" + kname, ident_cfg("ident_" + kname, cname))
    write_model(repo, "slow", ident_cfg("slow", "TYPE_FP32", "[ 4 ]",
                "dynamic_batching { max_queue_delay_microseconds: 3000000 preferred_batch_size: [ 8 ] }\n"))
    write_model(repo, "qfull", ident_cfg("qfull", "TYPE_FP32", "[ 4 ]",
                "dynamic_batching { max_queue_delay_microseconds: 2000000 preferred_batch_size: [ 8 ]\n"
                "  default_queue_policy { max_queue_size: 1 } }\n"))
    # Three requests, one batch: the queue waits up to 5 s for a batch of 3.
    write_model(repo, "gather", ident_cfg("gather", "TYPE_FP32", "[ 4 ]",
                "dynamic_batching { max_queue_delay_microseconds: 5000000 preferred_batch_size: [ 3 ] }\n"))
    hport, gport = free_port(), free_port()
    log = open(os.path.join(d, "ferryd.log"), "w")
    proc = subprocess.Popen(
        [os.path.join(BUILD, "broker", "ferryd"), "-m", repo, "-s", os.path.join(d, "ferryd.sock"),
         "--http-port", str(hport), "--grpc-port", str(gport), "--metrics-port", "0",
         "--allow-client-shm", "--http-max-body-bytes", str(MAX_BODY), "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT)
    S.update(dir=d, repo=repo, proc=proc, url="127.0.0.1:%d" % hport, port=hport,
             grpc="127.0.0.1:%d" % gport, log=log)
    c = th.InferenceServerClient(S["url"], concurrency=64)
    for _ in range(200):
        try:
            if c.is_server_live():
                break
        except Exception:
            pass
        if proc.poll() is not None:
            raise RuntimeError("ferryd exited: " + open(os.path.join(d, "ferryd.log")).read())
        time.sleep(0.05)
    S["client"] = c


def tearDownModule():
    S["client"].close()
    S["proc"].terminate()
    rc = S["proc"].wait(timeout=30)
    S["log"].close()
    if rc != 0:
        sys.stderr.write(open(os.path.join(S["dir"], "ferryd.log")).read())
    shutil.rmtree(S["dir"], ignore_errors=True)
    assert rc == 0, "ferryd exit status %d" % rc


def client():
    return S["client"]


def raw(method, path, body=None, headers=None):
    """One request with http.client: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", S["port"], timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, hdrs, data


def simple_inputs(a, b, binary=True):
    i0 = th.InferInput("INPUT0", list(a.shape), "INT32")
    i0.set_data_from_numpy(a, binary_data=binary)
    i1 = th.InferInput("INPUT1", list(b.shape), "INT32")
    i1.set_data_from_numpy(b, binary_data=binary)
    return [i0, i1]


class Base(unittest.TestCase):
    def assertStatus(self, code, fn, *args, **kw):
        with self.assertRaises(InferenceServerException) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.status(), str(code), cm.exception.message())
        return cm.exception


class Health(Base):
    def test_live_ready(self):
        self.assertTrue(client().is_server_live())
        self.assertTrue(client().is_server_ready())
        self.assertTrue(client().is_model_ready("simple"))
        self.assertTrue(client().is_model_ready("simple", "1"))
        self.assertFalse(client().is_model_ready("simple", "2"))
        self.assertFalse(client().is_model_ready("no_such_model"))

    def test_server_metadata(self):
        md = client().get_server_metadata()
        self.assertEqual(md["name"], "ferry")
        self.assertTrue(md["version"])
        for ext in ("statistics", "system_shared_memory", "model_repository", "model_configuration"):
            self.assertIn(ext, md["extensions"])

    def test_not_found_and_method(self):
        st, hdrs, body = raw("GET", "/v2/no/such/path")
        self.assertEqual(st, 404)
        self.assertIn("error", json.loads(body))
        st, _, body = raw("GET", "/v2/models/simple/infer")
        self.assertEqual(st, 405)
        self.assertIn("error", json.loads(body))


class Metadata(Base):
    def test_model_metadata(self):
        md = client().get_model_metadata("simple")
        self.assertEqual(md["name"], "simple")
        self.assertEqual(md["versions"], ["1"])
        self.assertEqual([t["name"] for t in md["inputs"]], ["INPUT0", "INPUT1"])
        self.assertEqual(md["inputs"][0]["datatype"], "INT32")
        self.assertEqual(md["inputs"][0]["shape"], [-1, 16])
        self.assertEqual([t["name"] for t in md["outputs"]], ["OUTPUT0", "OUTPUT1"])
        md = client().get_model_metadata("identity_bytes", "1")
        self.assertEqual(md["inputs"][0]["datatype"], "BYTES")

    def test_model_config(self):
        cfg = client().get_model_config("simple")
        self.assertEqual(cfg["name"], "simple")
        self.assertEqual(cfg["max_batch_size"], 8)
        self.assertEqual(cfg["backend"], "add_sub")
        self.assertEqual([i["name"] for i in cfg["input"]], ["INPUT0", "INPUT1"])
        self.assertEqual(cfg["input"][0]["dims"], [16])
        self.assertEqual(cfg["input"][0]["data_type"], "TYPE_INT32")
        cfg = client().get_model_config("slow")
        self.assertEqual(cfg["dynamic_batching"]["max_queue_delay_microseconds"], 3000000)
        self.assertEqual(cfg["dynamic_batching"]["preferred_batch_size"], [8])

    def test_metadata_errors(self):
        self.assertStatus(404, client().get_model_metadata, "no_such_model")
        self.assertStatus(404, client().get_model_metadata, "simple", "7")
        self.assertStatus(404, client().get_model_config, "no_such_model")
        self.assertStatus(400, client().get_model_config, "simple", "x1")

    def test_same_answers_as_grpc(self):
        g = tg.InferenceServerClient(S["grpc"])
        try:
            hm = client().get_model_metadata("simple")
            gm = g.get_model_metadata("simple", as_json=True)
            self.assertEqual(hm["inputs"][0]["name"], gm["inputs"][0]["name"])
            self.assertEqual(hm["inputs"][0]["shape"], [int(x) for x in gm["inputs"][0]["shape"]])
            hi = {m["name"]: m["state"] for m in client().get_model_repository_index()}
            gi = {m.name: m.state for m in g.get_model_repository_index().models}
            self.assertEqual(hi, gi)
        finally:
            g.close()


class Infer(Base):
    def test_simple_binary_and_json(self):
        a = np.arange(32, dtype=np.int32).reshape(2, 16)
        b = np.full((2, 16), 3, dtype=np.int32)
        for binary in (True, False):
            r = client().infer("simple", simple_inputs(a, b, binary), request_id="req-42")
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
            np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
            resp = r.get_response()
            self.assertEqual(resp["id"], "req-42")
            self.assertEqual(resp["model_name"], "simple")
            self.assertEqual(resp["model_version"], "1")

    def test_requested_outputs_json_and_binary(self):
        a = np.ones((1, 16), dtype=np.int32)
        outs = [th.InferRequestedOutput("OUTPUT1", binary_data=False)]
        r = client().infer("simple", simple_inputs(a, a), outputs=outs)
        self.assertIsNone(r.as_numpy("OUTPUT0"))
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), np.zeros((1, 16), np.int32))
        self.assertEqual(r.get_output("OUTPUT1")["data"], [0] * 16)
        outs = [th.InferRequestedOutput("OUTPUT0", binary_data=True),
                th.InferRequestedOutput("OUTPUT1", binary_data=False)]
        r = client().infer("simple", simple_inputs(a, a, binary=False), outputs=outs)
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + a)
        self.assertIn("binary_data_size", r.get_output("OUTPUT0")["parameters"])
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - a)

    def test_identity_dtypes_and_shapes(self):
        rng = np.random.default_rng(7)
        for npdt, kname, _ in DTYPES:
            for shape in ([1, 1], [2, 5], [8, 100], [3, 0]):
                for binary in (True, False):
                    if npdt is np.float16 and not binary:
                        continue  # FP16 travels as binary only (as in Triton)
                    if npdt is np.object_:
                        x = np.array([str(rng.integers(1 << 30)).encode() * int(rng.integers(0, 4))
                                      for _ in range(int(np.prod(shape)))], dtype=np.object_).reshape(shape)
                    elif npdt is np.bool_:
                        x = rng.integers(0, 2, size=shape).astype(np.bool_)
                    else:
                        x = (rng.random(size=shape) * 100).astype(npdt)
                    i = th.InferInput("IN", shape, kname)
                    i.set_data_from_numpy(x, binary_data=binary)
                    outs = [th.InferRequestedOutput("OUT", binary_data=binary or npdt is np.float16)]
                    r = client().infer("ident_" + kname, [i], outputs=outs)
                    y = r.as_numpy("OUT")
                    self.assertEqual(list(y.shape), shape, kname)
                    if npdt is np.object_ and not binary:
                        y = np.array([v.encode() if isinstance(v, str) else v for v in y.flat],
                                     dtype=np.object_).reshape(shape)
                    np.testing.assert_array_equal(y, x, "%s binary=%s" % (kname, binary))

    def test_json_extremes(self):
        # uint64 and int64 at their ends, floats that must round-trip.
        for kname, npdt, vals in (("UINT64", np.uint64, [0, 2**64 - 1, 2**63]),
                                  ("INT64", np.int64, [-2**63, 2**63 - 1, -1]),
                                  ("FP32", np.float32, [0.1, -3.5e38, 1e-38]),
                                  ("FP64", np.float64, [0.1, 1e308, -2.5e-308])):
            x = np.array([vals], dtype=npdt)
            i = th.InferInput("IN", [1, 3], kname)
            i.set_data_from_numpy(x, binary_data=False)
            r = client().infer("ident_" + kname, [i],
                               outputs=[th.InferRequestedOutput("OUT", binary_data=False)])
            np.testing.assert_array_equal(r.as_numpy("OUT"), x, kname)

    def test_identity_example_and_bytes(self):
        x = np.linspace(0, 1, 256 * 4, dtype=np.float32).reshape(4, 256)
        i = th.InferInput("INPUT0", [4, 256], "FP32")
        i.set_data_from_numpy(x)
        np.testing.assert_array_equal(client().infer("identity", [i]).as_numpy("OUTPUT0"), x)
        s = np.array([[b"hello"], [b""], [b"x" * 5000]], dtype=np.object_)
        i = th.InferInput("INPUT0", [3, 1], "BYTES")
        i.set_data_from_numpy(s)
        np.testing.assert_array_equal(client().infer("identity_bytes", [i]).as_numpy("OUTPUT0"), s)

    def test_compression(self):
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        for req in (None, "gzip", "deflate"):
            for resp in (None, "gzip", "deflate"):
                r = client().infer("simple", simple_inputs(a, a), request_compression_algorithm=req,
                                   response_compression_algorithm=resp)
                np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + a, "%s/%s" % (req, resp))
        # The server does compress: the raw bytes are gzip.
        body = json.dumps({"inputs": [{"name": "IN", "shape": [1, 1000], "datatype": "INT32",
                                       "data": [7] * 1000}]}).encode()
        st, hdrs, data = raw("POST", "/v2/models/ident_INT32/infer", gzip.compress(body),
                             {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
        self.assertEqual(st, 200, data)
        self.assertEqual(hdrs.get("content-encoding"), "gzip")
        self.assertLess(len(data), 1000)
        self.assertEqual(json.loads(gzip.decompress(data))["outputs"][0]["data"], [7] * 1000)
        st, _, data = raw("POST", "/v2/models/ident_INT32/infer", zlib.compress(body),
                          {"Content-Encoding": "deflate"})
        self.assertEqual(st, 200, data)
        st, _, data = raw("POST", "/v2/models/ident_INT32/infer", b"not gzip at all",
                          {"Content-Encoding": "gzip"})
        self.assertEqual(st, 400)
        self.assertIn("gzip", json.loads(data)["error"])
        # A small body that inflates past --http-max-body-bytes: refused.
        bomb = gzip.compress(b" " * (MAX_BODY + 4096))
        st, _, data = raw("POST", "/v2/models/ident_INT32/infer", bomb, {"Content-Encoding": "gzip"})
        self.assertEqual(st, 400)
        self.assertIn("larger than", json.loads(data)["error"])
        st, _, data = raw("POST", "/v2/models/ident_INT32/infer", body, {"Content-Encoding": "br"})
        self.assertEqual(st, 415)

    def test_parameters_priority_and_timeout(self):
        a = np.ones((1, 16), dtype=np.int32)
        r = client().infer("simple", simple_inputs(a, a), priority=0, timeout=1000000)
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + a)

    def test_async_64_in_flight(self):
        reqs = []
        for k in range(64):
            x = np.full((1, 256), k, dtype=np.float32)
            i = th.InferInput("INPUT0", [1, 256], "FP32")
            i.set_data_from_numpy(x)
            reqs.append((x, client().async_infer("identity", [i], request_id=str(k))))
        for x, q in reqs:
            r = q.get_result(timeout=30)
            k = int(r.get_response()["id"])
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
            self.assertEqual(x[0, 0], k)

    def test_batches_with_grpc(self):
        # One request over HTTP, two over gRPC, into a queue that waits for
        # a batch of three: one execution of batch size 3.
        before = client().get_inference_statistics("gather")["model_stats"][0]
        g = tg.InferenceServerClient(S["grpc"])
        done = []
        cv = threading.Condition()

        def cb(result, error):
            with cv:
                done.append(error)
                cv.notify()
        try:
            x = np.arange(4, dtype=np.float32).reshape(1, 4)
            hi = th.InferInput("IN", [1, 4], "FP32")
            hi.set_data_from_numpy(x)
            q = client().async_infer("gather", [hi])
            for _ in range(2):
                gi = tg.InferInput("IN", [1, 4], "FP32")
                gi.set_data_from_numpy(x)
                g.async_infer("gather", [gi], cb)
            np.testing.assert_array_equal(q.get_result(timeout=30).as_numpy("OUT"), x)
            with cv:
                cv.wait_for(lambda: len(done) == 2, timeout=30)
            self.assertEqual(done, [None, None])
        finally:
            g.close()
        after = client().get_inference_statistics("gather")["model_stats"][0]
        self.assertEqual(after["execution_count"] - before["execution_count"], 1)
        self.assertEqual(after["inference_count"] - before["inference_count"], 3)
        b3 = [b for b in after["batch_stats"] if b["batch_size"] == 3]
        self.assertEqual(len(b3), 1)


class Errors(Base):
    def test_unknown_model_and_version(self):
        a = np.ones((1, 16), dtype=np.int32)
        self.assertStatus(404, client().infer, "no_such_model", simple_inputs(a, a))
        self.assertStatus(404, client().infer, "simple", simple_inputs(a, a), model_version="3")

    def test_invalid_arguments(self):
        a = np.ones((1, 16), dtype=np.int32)
        f = th.InferInput("INPUT0", [1, 16], "FP32")
        f.set_data_from_numpy(np.ones((1, 16), np.float32))
        e = self.assertStatus(400, client().infer, "simple", [f, simple_inputs(a, a)[1]])
        self.assertIn("INPUT0", e.message())
        b = np.ones((1, 15), dtype=np.int32)
        self.assertStatus(400, client().infer, "simple", simple_inputs(b, b))
        big = np.ones((9, 16), dtype=np.int32)
        self.assertStatus(400, client().infer, "simple", simple_inputs(big, big))
        x = th.InferInput("NOPE", [1, 16], "INT32")
        x.set_data_from_numpy(a)
        self.assertStatus(400, client().infer, "simple", simple_inputs(a, a) + [x])
        self.assertStatus(400, client().infer, "simple", simple_inputs(a, a)[:1])
        self.assertStatus(400, client().infer, "simple", simple_inputs(a, a),
                          outputs=[th.InferRequestedOutput("NOPE")])

    def test_malformed_bodies(self):
        path = "/v2/models/simple/infer"
        good = {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [1] * 16}
        cases = [
            (b"", "parse"), (b"{", "ends early"), (b"[1,2]", "object"), (b"{\"inputs\": 3}", "inputs"),
            (b"{}", "inputs"), (b"{\"inputs\":[]} trailing", "unexpected"),
            (b"[" * 100000, "deeper"), (b"{\"inputs\":[" + b"[" * 40 + b"]" * 40 + b"]}", "deeper"),
            (json.dumps({"inputs": [dict(good, data=[1] * 15)]}).encode(), "elements"),
            (json.dumps({"inputs": [dict(good, data=[1] * 17)]}).encode(), "elements"),
            (json.dumps({"inputs": [dict(good, data=["x"] * 16)]}).encode(), "INT32"),
            (json.dumps({"inputs": [dict(good, data=[2**40] * 16)]}).encode(), "range"),
            (json.dumps({"inputs": [dict(good, shape=[-1, 16])]}).encode(), "shape"),
            (json.dumps({"inputs": [dict(good, shape=[2**40, 2**40])]}).encode(), "shape"),
            (json.dumps({"inputs": [dict(good, shape=[1] * 9)]}).encode(), "dimensions"),
            (json.dumps({"inputs": [dict(good, datatype="INT33")]}).encode(), "datatype"),
            (json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32"}]}).encode(),
             "exactly one"),
            (json.dumps({"inputs": [good] * 2000}).encode(), "at most"),
        ]
        for body, word in cases:
            st, hdrs, data = raw("POST", path, body, {"Content-Type": "application/json"})
            self.assertEqual(st, 400, (body[:60], data))
            self.assertIn(word, json.loads(data)["error"], body[:60])
        # Binary sizes that do not add up, and a header past the body.
        hdr = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
                                      "parameters": {"binary_data_size": 64}}]}).encode()
        for extra, word in ((b"\0" * 63, "past the end"), (b"\0" * 65, "add up")):
            st, _, data = raw("POST", path, hdr + extra,
                              {"Inference-Header-Content-Length": str(len(hdr))})
            self.assertEqual(st, 400, data)
            self.assertIn(word, json.loads(data)["error"])
        st, _, data = raw("POST", path, hdr, {"Inference-Header-Content-Length": str(len(hdr) + 1)})
        self.assertEqual(st, 400)
        st, _, data = raw("POST", path, hdr, {"Inference-Header-Content-Length": "12x"})
        self.assertEqual(st, 400)
        # The server still serves.
        self.assertTrue(client().is_server_live())

    def test_body_too_large(self):
        x = np.zeros((1, (MAX_BODY // 4) + 1024), dtype=np.float32)
        i = th.InferInput("IN", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        self.assertStatus(413, client().infer, "ident_FP32", [i])
        st, _, data = raw("POST", "/v2/models/ident_FP32/infer", None,
                          {"Content-Length": str(1 << 40)})
        self.assertEqual(st, 413)

    def test_huge_header(self):
        st, _, _ = raw("GET", "/v2/health/live", headers={"X-Big": "y" * (100 << 10)})
        self.assertIn(st, (413, 431))
        self.assertTrue(client().is_server_live())

    def test_queue_full(self):
        qs = []
        for _ in range(4):
            i = th.InferInput("IN", [1, 4], "FP32")
            i.set_data_from_numpy(np.zeros((1, 4), np.float32))
            qs.append(client().async_infer("qfull", [i]))
        codes = []
        for q in qs:
            try:
                q.get_result(timeout=30)
                codes.append(200)
            except InferenceServerException as e:
                codes.append(int(e.status()))
        self.assertIn(503, codes)


class SharedMemory(Base):
    def test_system_shm_roundtrip(self):
        c = client()
        key = "/ferry_th_%d" % os.getpid()
        n = 64 * 4
        h = shm.create_shared_memory_region("io", key, 4 * n)
        try:
            a = np.arange(64, dtype=np.int32).reshape(4, 16)
            b = np.full((4, 16), 5, dtype=np.int32)
            shm.set_shared_memory_region(h, [a])
            shm.set_shared_memory_region(h, [b], offset=n)
            c.unregister_system_shared_memory()
            c.register_system_shared_memory("io", key, 4 * n)
            st = c.get_system_shared_memory_status()
            self.assertEqual(len(st), 1)
            self.assertEqual(st[0]["name"], "io")
            self.assertEqual(st[0]["key"], key)
            self.assertEqual(st[0]["byte_size"], 4 * n)
            i0 = th.InferInput("INPUT0", [4, 16], "INT32")
            i0.set_shared_memory("io", n, offset=0)
            i1 = th.InferInput("INPUT1", [4, 16], "INT32")
            i1.set_shared_memory("io", n, offset=n)
            o0 = th.InferRequestedOutput("OUTPUT0", binary_data=False)
            o0.set_shared_memory("io", n, offset=2 * n)
            o1 = th.InferRequestedOutput("OUTPUT1")
            r = c.infer("simple", [i0, i1], outputs=[o0, o1])
            np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
            self.assertEqual(r.get_output("OUTPUT0")["parameters"]["shared_memory_region"], "io")
            out = shm.get_contents_as_numpy(h, np.int32, [4, 16], offset=2 * n)
            np.testing.assert_array_equal(out, a + b)
            # Registered over HTTP, seen over gRPC: one table.
            g = tg.InferenceServerClient(S["grpc"])
            self.assertIn("io", g.get_system_shared_memory_status().regions)
            g.close()
            bad = th.InferInput("INPUT0", [4, 16], "INT32")
            bad.set_shared_memory("io", n, offset=3 * n + 4)
            self.assertStatus(400, c.infer, "simple", [bad, i1])
            unk = th.InferInput("INPUT0", [4, 16], "INT32")
            unk.set_shared_memory("nope", n)
            self.assertStatus(404, c.infer, "simple", [unk, i1])
            self.assertStatus(400, c.register_system_shared_memory, "io", key, 4 * n)
            self.assertStatus(400, c.register_system_shared_memory, "big", key, 8 * n)
            self.assertStatus(400, c.register_system_shared_memory, "x", "/ferry_no_such_key", 16)
            self.assertStatus(400, c.register_system_shared_memory, "y", "../etc", 16)
            self.assertStatus(404, c.get_system_shared_memory_status, "nope")
            c.unregister_system_shared_memory("io")
            self.assertEqual(len(c.get_system_shared_memory_status()), 0)
            self.assertStatus(404, c.infer, "simple", [i0, i1])
        finally:
            c.unregister_system_shared_memory()
            shm.destroy_shared_memory_region(h)

    def test_cuda_shm_without_cuda(self):
        c = client()
        if "cuda_shared_memory" in c.get_server_metadata()["extensions"]:
            self.skipTest("this ferryd has CUDA")
        # tritonclient.http sends the handle as given: base64 (cudashm's form).
        handle = base64.b64encode(b"\0" * 64)
        self.assertStatus(503, c.register_cuda_shared_memory, "g", handle, 0, 1024)
        self.assertStatus(503, c.get_cuda_shared_memory_status)
        c.unregister_cuda_shared_memory()  # perf_analyzer calls it: must succeed


class Statistics(Base):
    def test_statistics(self):
        a = np.ones((2, 16), dtype=np.int32)
        before = client().get_inference_statistics("simple")["model_stats"][0]
        for _ in range(3):
            client().infer("simple", simple_inputs(a, a))
        st = client().get_inference_statistics("simple", "1")["model_stats"][0]
        self.assertEqual(st["name"], "simple")
        self.assertEqual(st["version"], "1")
        self.assertEqual(st["inference_stats"]["success"]["count"],
                         before["inference_stats"]["success"]["count"] + 3)
        self.assertEqual(st["inference_count"], before["inference_count"] + 6)
        self.assertGreater(st["last_inference"], 0)
        all_stats = client().get_inference_statistics()["model_stats"]
        self.assertIn("simple", [s["name"] for s in all_stats])
        self.assertStatus(404, client().get_inference_statistics, "no_such_model")


class Repository(Base):
    def test_index_unload_load(self):
        c = client()
        idx = {m["name"]: m for m in c.get_model_repository_index()}
        self.assertEqual(idx["ident_INT8"]["state"], "READY")
        c.unload_model("ident_INT8")
        idx = {m["name"]: m for m in c.get_model_repository_index()}
        self.assertEqual(idx["ident_INT8"]["state"], "UNAVAILABLE")
        self.assertFalse(c.is_model_ready("ident_INT8"))
        i = th.InferInput("IN", [1, 3], "INT8")
        i.set_data_from_numpy(np.ones((1, 3), np.int8))
        self.assertStatus(503, c.infer, "ident_INT8", [i])
        c.load_model("ident_INT8")
        self.assertTrue(c.is_model_ready("ident_INT8"))
        np.testing.assert_array_equal(c.infer("ident_INT8", [i]).as_numpy("OUT"), np.ones((1, 3), np.int8))
        self.assertStatus(404, c.load_model, "no_such_model")
        self.assertStatus(404, c.unload_model, "no_such_model")
        self.assertStatus(501, c.load_model, "ident_INT8", config='{"max_batch_size": 4}')

    def test_load_new_and_broken(self):
        c = client()
        write_model(S["repo"], "late", ident_cfg("late", "TYPE_INT32"))
        c.load_model("late")
        i = th.InferInput("IN", [1, 2], "INT32")
        i.set_data_from_numpy(np.array([[4, 5]], np.int32))
        np.testing.assert_array_equal(c.infer("late", [i]).as_numpy("OUT"), [[4, 5]])
        write_model(S["repo"], "broken", "name: \"broken\"\nbackend: \"identity\"\ninput [ { name: ")
        self.assertStatus(400, c.load_model, "broken")
        idx = {m["name"]: m for m in c.get_model_repository_index()}
        self.assertEqual(idx["broken"]["state"], "UNAVAILABLE")
        self.assertTrue(idx["broken"]["reason"])

    def test_unload_finishes_in_flight(self):
        c = client()
        write_model(S["repo"], "drain", ident_cfg("drain", "TYPE_FP32", "[ 4 ]",
                    "dynamic_batching { max_queue_delay_microseconds: 500000 preferred_batch_size: [ 8 ] }\n"))
        c.load_model("drain")
        i = th.InferInput("IN", [1, 4], "FP32")
        i.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
        q = c.async_infer("drain", [i])
        time.sleep(0.1)
        c2 = th.InferenceServerClient(S["url"])
        c2.unload_model("drain")
        c2.close()
        np.testing.assert_array_equal(q.get_result(timeout=10).as_numpy("OUT"), np.arange(4).reshape(1, 4))


class Settings(Base):
    def test_logging(self):
        s = client().get_log_settings()
        self.assertEqual(s["log_verbose_level"], 0)
        self.assertFalse(s["log_info"])  # started with --log-level warn
        s = client().update_log_settings({"log_verbose_level": 1})
        self.assertEqual(s["log_verbose_level"], 1)
        s = client().update_log_settings({"log_verbose_level": 0, "log_info": False})
        self.assertEqual(s["log_verbose_level"], 0)
        self.assertStatus(501, client().update_log_settings, {"log_file": "/tmp/x"})
        self.assertStatus(400, client().update_log_settings, {"no_such_setting": 1})

    def test_trace_not_supported(self):
        self.assertStatus(501, client().get_trace_settings)
        self.assertStatus(501, client().update_trace_settings, settings={"trace_level": ["TIMESTAMPS"]})


if __name__ == "__main__":
    unittest.main()
