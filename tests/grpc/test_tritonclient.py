#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ferryd's KServe v2 gRPC endpoint driven by the real tritonclient[grpc].

Starts one ferryd from the build tree ($FERRY_TOP_BUILDDIR) on a free
loopback port with a repository made of the examples plus test models, and
checks what Triton's clients rely on, every error with its status code.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np
import tritonclient.grpc as tg
import tritonclient.utils.shared_memory as shm
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

TOP = os.environ.get("FERRY_TOP_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
sys.path.insert(0, os.path.join(TOP, "tests"))
from tritonclient_util import DTYPES, free_port, ident_cfg, write_model  # noqa: E402
BUILD = os.environ.get("FERRY_TOP_BUILDDIR", TOP)
MAX_MSG = 4 << 20

S = {}


def setUpModule():
    d = tempfile.mkdtemp(prefix="ferry-tc-")
    repo = os.path.join(d, "repo")
    shutil.copytree(os.path.join(TOP, "examples", "models"), repo)
    for _, kname, cname in DTYPES:
        write_model(repo, "ident_" + kname, ident_cfg("ident_" + kname, cname))
    write_model(repo, "slow", ident_cfg("slow", "TYPE_FP32", "[ 4 ]",
                "dynamic_batching { max_queue_delay_microseconds: 3000000 preferred_batch_size: [ 8 ] }\n"))
    # Two priority levels (2 the default) and a queue policy that lets a
    # request's own timeout reject it; the batching delay keeps requests
    # queued for 0.3 s.
    write_model(repo, "prio", ident_cfg("prio", "TYPE_FP32", "[ 4 ]",
                "dynamic_batching { max_queue_delay_microseconds: 300000 preferred_batch_size: [ 8 ]\n"
                "  priority_levels: 2 default_priority_level: 2\n"
                "  default_queue_policy { timeout_action: REJECT allow_timeout_override: true } }\n"))
    write_model(repo, "qfull", ident_cfg("qfull", "TYPE_FP32", "[ 4 ]",
                "dynamic_batching { max_queue_delay_microseconds: 2000000 preferred_batch_size: [ 8 ]\n"
                "  default_queue_policy { max_queue_size: 1 } }\n"))
    port = free_port()
    log = open(os.path.join(d, "ferryd.log"), "w")
    # OpenBLAS's thread pool is up (with its default signal mask) when the
    # SIGTERM of tearDownModule arrives: ferryd must still stop cleanly
    # (exit 0), which tearDownModule checks.
    proc = subprocess.Popen(
        [os.path.join(BUILD, "broker", "ferryd"), "-m", repo, "-s", os.path.join(d, "ferryd.sock"),
         "--grpc-port", str(port), "--allow-client-shm", "--grpc-max-message-bytes", str(MAX_MSG),
         "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
    S.update(dir=d, repo=repo, proc=proc, url="127.0.0.1:%d" % port, log=log)
    c = tg.InferenceServerClient(S["url"])
    for _ in range(200):
        try:
            if c.is_server_live():
                break
        except InferenceServerException:
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


def simple_inputs(a, b):
    i0 = tg.InferInput("INPUT0", list(a.shape), "INT32")
    i0.set_data_from_numpy(a)
    i1 = tg.InferInput("INPUT1", list(b.shape), "INT32")
    i1.set_data_from_numpy(b)
    return [i0, i1]


class Base(unittest.TestCase):
    def assertStatus(self, code, fn, *args, **kw):
        with self.assertRaises(InferenceServerException) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.status(), "StatusCode." + code, cm.exception.message())
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
        self.assertEqual(md.name, "ferry")
        self.assertTrue(md.version)
        for ext in ("statistics", "system_shared_memory", "model_repository", "model_configuration"):
            self.assertIn(ext, md.extensions)


class Metadata(Base):
    def test_model_metadata(self):
        md = client().get_model_metadata("simple")
        self.assertEqual(md.name, "simple")
        self.assertEqual(list(md.versions), ["1"])
        self.assertEqual([t.name for t in md.inputs], ["INPUT0", "INPUT1"])
        self.assertEqual(md.inputs[0].datatype, "INT32")
        self.assertEqual(list(md.inputs[0].shape), [-1, 16])
        self.assertEqual([t.name for t in md.outputs], ["OUTPUT0", "OUTPUT1"])
        md = client().get_model_metadata("identity_bytes", "1", as_json=True)
        self.assertEqual(md["inputs"][0]["datatype"], "BYTES")

    def test_model_config(self):
        cfg = client().get_model_config("simple").config
        self.assertEqual(cfg.name, "simple")
        self.assertEqual(cfg.max_batch_size, 8)
        self.assertEqual(cfg.backend, "add_sub")
        self.assertEqual([i.name for i in cfg.input], ["INPUT0", "INPUT1"])
        self.assertEqual(list(cfg.input[0].dims), [16])
        self.assertEqual(cfg.input[0].data_type, 8)  # TYPE_INT32
        cfg = client().get_model_config("slow", as_json=True)["config"]
        self.assertEqual(cfg["dynamic_batching"]["max_queue_delay_microseconds"], "3000000")
        self.assertEqual(cfg["dynamic_batching"]["preferred_batch_size"], [8])

    def test_metadata_errors(self):
        self.assertStatus("NOT_FOUND", client().get_model_metadata, "no_such_model")
        self.assertStatus("NOT_FOUND", client().get_model_metadata, "simple", "7")
        self.assertStatus("NOT_FOUND", client().get_model_config, "no_such_model")
        self.assertStatus("INVALID_ARGUMENT", client().get_model_config, "simple", "x1")


class Infer(Base):
    def test_simple(self):
        a = np.arange(32, dtype=np.int32).reshape(2, 16)
        b = np.full((2, 16), 3, dtype=np.int32)
        r = client().infer("simple", simple_inputs(a, b), request_id="req-42")
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
        self.assertEqual(r.get_response().id, "req-42")
        self.assertEqual(r.get_response().model_name, "simple")
        self.assertEqual(r.get_response().model_version, "1")

    def test_requested_outputs(self):
        a = np.ones((1, 16), dtype=np.int32)
        r = client().infer("simple", simple_inputs(a, a), outputs=[tg.InferRequestedOutput("OUTPUT1")])
        self.assertIsNone(r.as_numpy("OUTPUT0"))
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), np.zeros((1, 16), np.int32))

    def test_identity_dtypes_and_shapes(self):
        rng = np.random.default_rng(7)
        for npdt, kname, _ in DTYPES:
            for shape in ([1, 1], [2, 5], [8, 100], [3, 0]):
                if npdt is np.object_:
                    x = np.array([str(rng.integers(1 << 30)).encode() * int(rng.integers(0, 4))
                                  for _ in range(int(np.prod(shape)))], dtype=np.object_).reshape(shape)
                elif npdt is np.bool_:
                    x = rng.integers(0, 2, size=shape).astype(np.bool_)
                else:
                    x = (rng.random(size=shape) * 100).astype(npdt)
                i = tg.InferInput("IN", shape, kname)
                i.set_data_from_numpy(x)
                r = client().infer("ident_" + kname, [i])
                y = r.as_numpy("OUT")
                self.assertEqual(list(y.shape), shape, kname)
                np.testing.assert_array_equal(y, x, kname)

    def test_identity_example_and_bytes(self):
        x = np.linspace(0, 1, 256 * 4, dtype=np.float32).reshape(4, 256)
        i = tg.InferInput("INPUT0", [4, 256], "FP32")
        i.set_data_from_numpy(x)
        np.testing.assert_array_equal(client().infer("identity", [i]).as_numpy("OUTPUT0"), x)
        s = np.array([[b"hello"], [b""], [b"x" * 5000]], dtype=np.object_)
        i = tg.InferInput("INPUT0", [3, 1], "BYTES")
        i.set_data_from_numpy(s)
        np.testing.assert_array_equal(client().infer("identity_bytes", [i]).as_numpy("OUTPUT0"), s)

    def test_typed_contents(self):
        # tritonclient always sends raw contents; a raw stub sends typed ones.
        ch = grpc.insecure_channel(S["url"])
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        req = service_pb2.ModelInferRequest(model_name="simple", id="typed")
        for name, vals in (("INPUT0", range(16)), ("INPUT1", [1] * 16)):
            t = req.inputs.add(name=name, datatype="INT32", shape=[1, 16])
            t.contents.int_contents.extend(vals)
        resp = stub.ModelInfer(req)
        self.assertEqual(resp.id, "typed")
        out0 = np.frombuffer(resp.raw_output_contents[0], dtype=np.int32)
        np.testing.assert_array_equal(out0, np.arange(16) + 1)
        req = service_pb2.ModelInferRequest(model_name="ident_BYTES")
        t = req.inputs.add(name="IN", datatype="BYTES", shape=[1, 2])
        t.contents.bytes_contents.extend([b"ab", b"cde"])
        resp = stub.ModelInfer(req)
        self.assertEqual(resp.raw_output_contents[0], b"\x02\x00\x00\x00ab\x03\x00\x00\x00cde")
        req = service_pb2.ModelInferRequest(model_name="ident_FP64")
        t = req.inputs.add(name="IN", datatype="FP64", shape=[1, 3])
        t.contents.fp64_contents.extend([1.5, -2.0])
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(req)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        ch.close()

    def test_parameters_priority_and_timeout(self):
        # "prio" has two priority levels and lets a request's timeout
        # reject it from the queue, where the batching delay holds it 0.3 s.
        x = np.arange(4, dtype=np.float32).reshape(1, 4)

        def inp():
            i = tg.InferInput("IN", [1, 4], "FP32")
            i.set_data_from_numpy(x)
            return [i]
        for prio in (0, 1, 2):   # 0: the model's default level
            r = client().infer("prio", inp(), priority=prio, timeout=10000000)
            np.testing.assert_array_equal(r.as_numpy("OUT"), x)
        e = self.assertStatus("INVALID_ARGUMENT", client().infer, "prio", inp(), priority=3)
        self.assertIn("priority", e.message())
        # 1 ms to live in a queue that holds it 300 ms: rejected, for its timeout.
        t0 = time.monotonic()
        e = self.assertStatus("DEADLINE_EXCEEDED", client().infer, "prio", inp(), priority=1, timeout=1000)
        self.assertIn("timed out in the queue", e.message())
        self.assertLess(time.monotonic() - t0, 0.3, "rejected at its timeout, not after the batching delay")

    def test_async_64_in_flight(self):
        done = []
        cv = threading.Condition()

        def cb(result, error):
            with cv:
                done.append((result, error))
                cv.notify()

        xs = []
        for k in range(64):
            x = np.full((1, 256), k, dtype=np.float32)
            i = tg.InferInput("INPUT0", [1, 256], "FP32")
            i.set_data_from_numpy(x)
            xs.append(x)
            client().async_infer("identity", [i], cb, request_id=str(k))
        with cv:
            cv.wait_for(lambda: len(done) == 64, timeout=30)
        self.assertEqual(len(done), 64)
        for result, error in done:
            self.assertIsNone(error)
            k = int(result.get_response().id)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), xs[k])

    def test_stream(self):
        results = []
        cv = threading.Condition()

        def cb(result, error):
            with cv:
                results.append((result, error))
                cv.notify()

        c = tg.InferenceServerClient(S["url"])
        c.start_stream(callback=cb)
        for k in range(10):
            a = np.full((1, 16), k, dtype=np.int32)
            c.async_stream_infer("simple", simple_inputs(a, a), request_id=str(k))
        c.async_stream_infer("no_such_model", simple_inputs(a, a), request_id="bad")
        with cv:
            cv.wait_for(lambda: len(results) == 11, timeout=30)
        c.stop_stream()
        c.close()
        self.assertEqual(len(results), 11)
        errors = [e for r, e in results if e is not None]
        self.assertEqual(len(errors), 1)
        self.assertIn("no_such_model", str(errors[0]))
        for r, e in results:
            if e is None:
                k = int(r.get_response().id)
                np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), np.full((1, 16), 2 * k))


class Errors(Base):
    def test_unknown_model_and_version(self):
        a = np.ones((1, 16), dtype=np.int32)
        self.assertStatus("NOT_FOUND", client().infer, "no_such_model", simple_inputs(a, a))
        self.assertStatus("NOT_FOUND", client().infer, "simple", simple_inputs(a, a), model_version="3")

    def test_invalid_arguments(self):
        a = np.ones((1, 16), dtype=np.int32)
        f = tg.InferInput("INPUT0", [1, 16], "FP32")
        f.set_data_from_numpy(np.ones((1, 16), np.float32))
        e = self.assertStatus("INVALID_ARGUMENT", client().infer, "simple", [f, simple_inputs(a, a)[1]])
        self.assertIn("INPUT0", e.message())
        b = np.ones((1, 15), dtype=np.int32)
        self.assertStatus("INVALID_ARGUMENT", client().infer, "simple", simple_inputs(b, b))
        big = np.ones((9, 16), dtype=np.int32)
        self.assertStatus("INVALID_ARGUMENT", client().infer, "simple", simple_inputs(big, big))
        x = tg.InferInput("NOPE", [1, 16], "INT32")
        x.set_data_from_numpy(a)
        self.assertStatus("INVALID_ARGUMENT", client().infer, "simple", simple_inputs(a, a) + [x])
        self.assertStatus("INVALID_ARGUMENT", client().infer, "simple", simple_inputs(a, a)[:1])
        self.assertStatus("INVALID_ARGUMENT", client().infer, "simple", simple_inputs(a, a),
                          outputs=[tg.InferRequestedOutput("NOPE")])

    def test_raw_size_mismatch(self):
        ch = grpc.insecure_channel(S["url"])
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        req = service_pb2.ModelInferRequest(model_name="simple")
        for name in ("INPUT0", "INPUT1"):
            req.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        req.raw_input_contents.extend([b"\0" * 64, b"\0" * 60])
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(req)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        req.raw_input_contents.pop()
        with self.assertRaises(grpc.RpcError) as cm:
            stub.ModelInfer(req)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        ch.close()

    def test_message_too_large(self):
        x = np.zeros((1, (MAX_MSG // 4) + 1024), dtype=np.float32)
        i = tg.InferInput("IN", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        self.assertStatus("RESOURCE_EXHAUSTED", client().infer, "ident_FP32", [i])

    def test_deadline(self):
        i = tg.InferInput("IN", [1, 4], "FP32")
        i.set_data_from_numpy(np.zeros((1, 4), np.float32))
        self.assertStatus("DEADLINE_EXCEEDED", client().infer, "slow", [i], client_timeout=0.2)

    def test_queue_full(self):
        errors = []
        cv = threading.Condition()

        def cb(result, error):
            with cv:
                errors.append(error)
                cv.notify()

        for _ in range(4):
            i = tg.InferInput("IN", [1, 4], "FP32")
            i.set_data_from_numpy(np.zeros((1, 4), np.float32))
            client().async_infer("qfull", [i], cb)
        with cv:
            cv.wait_for(lambda: len(errors) == 4, timeout=30)
        codes = sorted(e.status() for e in errors if e is not None)
        self.assertIn("StatusCode.RESOURCE_EXHAUSTED", codes)


class SharedMemory(Base):
    def test_system_shm_roundtrip(self):
        c = client()
        key = "/ferry_tc_%d" % os.getpid()
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
            self.assertEqual(len(st.regions), 1)
            self.assertEqual(st.regions["io"].key, key)
            self.assertEqual(st.regions["io"].byte_size, 4 * n)
            i0 = tg.InferInput("INPUT0", [4, 16], "INT32")
            i0.set_shared_memory("io", n, offset=0)
            i1 = tg.InferInput("INPUT1", [4, 16], "INT32")
            i1.set_shared_memory("io", n, offset=n)
            o0 = tg.InferRequestedOutput("OUTPUT0")
            o0.set_shared_memory("io", n, offset=2 * n)
            o1 = tg.InferRequestedOutput("OUTPUT1")
            r = c.infer("simple", [i0, i1], outputs=[o0, o1])
            # OUTPUT1 came back in the message, OUTPUT0 went to the region.
            np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
            self.assertEqual(len(r.get_response().raw_output_contents), 2)
            self.assertEqual(r.get_response().raw_output_contents[0], b"")
            out = shm.get_contents_as_numpy(h, np.int32, [4, 16], offset=2 * n)
            np.testing.assert_array_equal(out, a + b)
            # Every range is checked against the region.
            bad = tg.InferInput("INPUT0", [4, 16], "INT32")
            bad.set_shared_memory("io", n, offset=3 * n + 4)
            self.assertStatus("INVALID_ARGUMENT", c.infer, "simple", [bad, i1])
            unk = tg.InferInput("INPUT0", [4, 16], "INT32")
            unk.set_shared_memory("nope", n)
            self.assertStatus("NOT_FOUND", c.infer, "simple", [unk, i1])
            self.assertStatus("ALREADY_EXISTS", c.register_system_shared_memory, "io", key, 4 * n)
            self.assertStatus("INVALID_ARGUMENT", c.register_system_shared_memory, "big", key, 8 * n)
            self.assertStatus("INVALID_ARGUMENT", c.register_system_shared_memory, "x", "/ferry_no_such_key", 16)
            self.assertStatus("INVALID_ARGUMENT", c.register_system_shared_memory, "y", "../etc", 16)
            self.assertStatus("NOT_FOUND", c.get_system_shared_memory_status, "nope")
            c.unregister_system_shared_memory("io")
            self.assertEqual(len(c.get_system_shared_memory_status().regions), 0)
            self.assertStatus("NOT_FOUND", c.infer, "simple", [i0, i1])
        finally:
            c.unregister_system_shared_memory()
            shm.destroy_shared_memory_region(h)

    def test_cuda_shm_without_cuda(self):
        c = client()
        if "cuda_shared_memory" in c.get_server_metadata().extensions:
            self.skipTest("this ferryd has CUDA")
        self.assertStatus("UNAVAILABLE", c.register_cuda_shared_memory, "g", b"\0" * 64, 0, 1024)
        self.assertStatus("UNAVAILABLE", c.get_cuda_shared_memory_status)
        c.unregister_cuda_shared_memory()  # perf_analyzer calls it: must succeed


class Statistics(Base):
    def test_statistics(self):
        a = np.ones((2, 16), dtype=np.int32)
        before = client().get_inference_statistics("simple").model_stats[0]
        for _ in range(3):
            client().infer("simple", simple_inputs(a, a))
        st = client().get_inference_statistics("simple", "1").model_stats[0]
        self.assertEqual(st.name, "simple")
        self.assertEqual(st.version, "1")
        self.assertEqual(st.inference_stats.success.count, before.inference_stats.success.count + 3)
        self.assertEqual(st.inference_count, before.inference_count + 6)
        self.assertGreater(st.last_inference, 0)
        all_stats = client().get_inference_statistics().model_stats
        self.assertIn("simple", [s.name for s in all_stats])
        self.assertStatus("NOT_FOUND", client().get_inference_statistics, "no_such_model")


class Repository(Base):
    def test_index_unload_load(self):
        c = client()
        idx = {m.name: m for m in c.get_model_repository_index().models}
        self.assertEqual(idx["ident_INT8"].state, "READY")
        c.unload_model("ident_INT8")
        idx = {m.name: m for m in c.get_model_repository_index().models}
        self.assertEqual(idx["ident_INT8"].state, "UNAVAILABLE")
        self.assertFalse(c.is_model_ready("ident_INT8"))
        i = tg.InferInput("IN", [1, 3], "INT8")
        i.set_data_from_numpy(np.ones((1, 3), np.int8))
        self.assertStatus("UNAVAILABLE", c.infer, "ident_INT8", [i])
        c.load_model("ident_INT8")
        self.assertTrue(c.is_model_ready("ident_INT8"))
        np.testing.assert_array_equal(c.infer("ident_INT8", [i]).as_numpy("OUT"), np.ones((1, 3), np.int8))
        # Reload of a serving model keeps serving.
        c.load_model("ident_INT8")
        self.assertTrue(c.is_model_ready("ident_INT8"))
        self.assertStatus("NOT_FOUND", c.load_model, "no_such_model")
        self.assertStatus("NOT_FOUND", c.unload_model, "no_such_model")

    def test_load_new_and_broken(self):
        c = client()
        write_model(S["repo"], "late", ident_cfg("late", "TYPE_INT32"))
        c.load_model("late")
        i = tg.InferInput("IN", [1, 2], "INT32")
        i.set_data_from_numpy(np.array([[4, 5]], np.int32))
        np.testing.assert_array_equal(c.infer("late", [i]).as_numpy("OUT"), [[4, 5]])
        write_model(S["repo"], "broken", "name: \"broken\"\nbackend: \"identity\"\ninput [ { name: ")
        self.assertStatus("INVALID_ARGUMENT", c.load_model, "broken")
        idx = {m.name: m for m in c.get_model_repository_index().models}
        self.assertEqual(idx["broken"].state, "UNAVAILABLE")
        self.assertTrue(idx["broken"].reason)

    def test_unload_finishes_in_flight(self):
        c = client()
        write_model(S["repo"], "drain", ident_cfg("drain", "TYPE_FP32", "[ 4 ]",
                    "dynamic_batching { max_queue_delay_microseconds: 500000 preferred_batch_size: [ 8 ] }\n"))
        c.load_model("drain")
        res = []
        cv = threading.Condition()

        def cb(result, error):
            with cv:
                res.append((result, error))
                cv.notify()

        i = tg.InferInput("IN", [1, 4], "FP32")
        i.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
        c.async_infer("drain", [i], cb)
        time.sleep(0.1)
        c.unload_model("drain")
        with cv:
            cv.wait_for(lambda: len(res) == 1, timeout=10)
        self.assertIsNone(res[0][1])
        np.testing.assert_array_equal(res[0][0].as_numpy("OUT"), np.arange(4).reshape(1, 4))


if __name__ == "__main__":
    unittest.main()
