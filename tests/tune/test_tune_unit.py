# SPDX-License-Identifier: MIT
"""ferry-tune's logic without a broker: the config.pbtxt tree, the config of
a candidate (CPU and KIND_GPU), the default's coordinates, the scores and
the search (quick against exhaustive on synthetic spaces).  Run by
tests/tune/run.sh (make check)."""
import math
import os
import sys
import unittest

TOP = os.path.realpath(os.environ.get("FERRY_TOP_SRCDIR",
                                      os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(TOP, "tools"))

from tune import tune_pbtxt as pb  # noqa: E402
from tune import tune_space as sp  # noqa: E402
from tune import tune_measure as tm  # noqa: E402
from tune import tune_report as rp  # noqa: E402
from tune.tune_search import Search  # noqa: E402

META = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 5]}]}

RICH = """
# a user's config: everything the tuner does not own must survive
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 16 ] reshape: { shape: [ 4, 4 ] } } ]
output [
  { name: "y", data_type: TYPE_FP32, dims: [ 5 ] }
]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching {
  max_queue_delay_microseconds: 250
  preferred_batch_size: [ 8 ]
  priority_levels: 2
  default_priority_level: 1
}
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
parameters { key: "session.use_env_allocators" value: { string_value: "1" } }
version_policy: { latest { num_versions: 2 } }
"""


def cand(**kw):
    c = {"variant": "onnxruntime", "instances": 1, "gpus": None, "max_batch_size": 8,
         "delay_us": 0, "preferred": "none", "threads": 1}
    c.update(kw)
    return c


class TestPbtxt(unittest.TestCase):
    def test_round_trip_keeps_every_field(self):
        msg = pb.parse(RICH)
        again = pb.parse(pb.dump(msg))
        self.assertEqual(msg, again)
        self.assertEqual(pb.unquote(pb.get(msg, "platform")), "onnxruntime_onnx")
        inp = pb.get_all(msg, "input")[0]
        self.assertEqual(pb.get_all(pb.get(inp, "reshape"), "shape"), ["4", "4"])

    def test_examples_parse(self):
        d = os.path.join(TOP, "examples", "models")
        n = 0
        for m in sorted(os.listdir(d)):
            f = os.path.join(d, m, "config.pbtxt")
            if os.path.exists(f):
                with open(f) as fh:
                    msg = pb.parse(fh.read())
                self.assertEqual(pb.parse(pb.dump(msg)), msg, m)
                n += 1
        self.assertGreater(n, 0)

    def test_error_names_line_and_column(self):
        with self.assertRaises(pb.ParseError) as e:
            pb.parse('name: "m"\nmax_batch_size 4\n')
        self.assertIn("line 2, column 16", str(e.exception))
        with self.assertRaises(pb.ParseError) as e:
            pb.parse('input [ { name: "x" }\n')
        self.assertIn("line 2", str(e.exception))

    def test_strings(self):
        msg = pb.parse('name: "a\\"b" name2: \'c\' "d"')
        self.assertEqual(pb.unquote(pb.get(msg, "name")), 'a"b')
        self.assertEqual(pb.unquote(pb.get(msg, "name2")), "cd")
        self.assertEqual(pb.unquote(pb.quote('x"y')), 'x"y')


class TestCandidateConfig(unittest.TestCase):
    def test_replaces_tuned_fields_keeps_the_rest(self):
        base = pb.parse(RICH)
        c = cand(variant="onnx", instances=3, max_batch_size=32, delay_us=100,
                 preferred="max", threads=None)
        msg = sp.candidate_config(base, "m__tune_1", c, META, True)
        text = pb.dump(msg)
        self.assertEqual(pb.parse(text), msg)
        self.assertEqual(pb.unquote(pb.get(msg, "name")), "m__tune_1")
        self.assertEqual(pb.unquote(pb.get(msg, "backend")), "onnx")
        self.assertIsNone(pb.get(msg, "platform"))
        self.assertIsNone(pb.get(msg, "version_policy"))
        self.assertEqual(pb.get(msg, "max_batch_size"), "32")
        g = pb.get_all(msg, "instance_group")
        self.assertEqual(len(g), 1)
        self.assertEqual((pb.get(g[0], "count"), pb.get(g[0], "kind")), ("3", "KIND_CPU"))
        db = pb.get(msg, "dynamic_batching")
        self.assertEqual(pb.get(db, "max_queue_delay_microseconds"), "100")
        self.assertEqual(pb.get_all(db, "preferred_batch_size"), ["32"])
        self.assertEqual(pb.get(db, "priority_levels"), "2")      # kept
        # the native executor: no thread parameter; the user's other one stays
        self.assertIsNone(sp.param(msg, "intra_op_thread_count"))
        self.assertEqual(sp.param(msg, "session.use_env_allocators"), "1")
        self.assertIn("reshape", text)

    def test_no_dynamic_batching_inline_and_threads(self):
        base = pb.parse(RICH)
        msg = sp.candidate_config(base, "t", cand(variant="onnx-inline", delay_us=-1,
                                                  threads=None), META, True)
        self.assertIsNone(pb.get(msg, "dynamic_batching"))
        self.assertEqual(sp.param(msg, "ferry_inline"), "true")
        msg = sp.candidate_config(base, "t", cand(threads=4), META, True)
        self.assertEqual(sp.param(msg, "intra_op_thread_count"), "4")
        self.assertEqual(len([p for p in pb.get_all(msg, "parameters")
                              if pb.unquote(pb.get(p, "key")) == "intra_op_thread_count"]), 1)

    def test_io_from_metadata_where_the_config_has_none(self):
        msg = sp.candidate_config([], "t", cand(variant="onnx", threads=None), META, True)
        ins = pb.get_all(msg, "input")
        self.assertEqual(pb.unquote(pb.get(ins[0], "name")), "x")
        self.assertEqual(pb.get(ins[0], "data_type"), "TYPE_FP32")
        self.assertEqual(pb.get_all(ins[0], "dims"), ["16"])       # batch dimension off
        msg = sp.candidate_config([], "t", cand(variant="onnx", threads=None,
                                                max_batch_size=0, delay_us=-1),
                                  {"inputs": [{"name": "x", "datatype": "INT64",
                                               "shape": [3, 2]}], "outputs": []}, False)
        self.assertEqual(pb.get_all(pb.get_all(msg, "input")[0], "dims"), ["3", "2"])

    def test_kind_gpu(self):
        base = pb.parse(RICH)
        c = cand(variant="onnxruntime-tensorrt", instances=2, gpus=(0, 1), threads=None)
        msg = sp.candidate_config(base, "g", c, META, True, gpu_mem_budget=8 << 30)
        g = pb.get_all(msg, "instance_group")[0]
        self.assertEqual(pb.get(g, "kind"), "KIND_GPU")
        self.assertEqual(pb.get_all(g, "gpus"), ["0", "1"])
        self.assertEqual(sp.param(msg, "gpu_mem_limit"), str(4 << 30))
        acc = pb.get(pb.get(pb.get(msg, "optimization"), "execution_accelerators"),
                     "gpu_execution_accelerator")
        self.assertEqual(pb.unquote(pb.get(acc, "name")), "tensorrt")
        msg = sp.candidate_config(base, "g", cand(variant="onnx-gpu", gpus=(1,), threads=None),
                                  META, True, gpu_mem_budget=1 << 30)
        self.assertEqual(pb.unquote(pb.get(msg, "backend")), "onnx")
        self.assertIsNone(sp.param(msg, "gpu_mem_limit"))       # onnxruntime's only
        self.assertEqual(pb.get_all(pb.get_all(msg, "instance_group")[0], "gpus"), ["1"])

    def test_default_point(self):
        # a directory with the model file only: ferryd completes it (onnxruntime,
        # max_batch_size 4 and dynamic batching on)
        d = sp.default_point([], {"backend": "onnxruntime", "max_batch_size": 4}, 0)
        self.assertEqual((d["variant"], d["instances"], d["max_batch_size"], d["delay_us"],
                          d["threads"]), ("onnxruntime", 1, 4, 0, 1))
        d = sp.default_point(pb.parse(RICH), {"backend": "onnxruntime", "max_batch_size": 8},
                             0)
        self.assertEqual((d["instances"], d["delay_us"], d["preferred"], d["threads"]),
                         (2, 250, "max", 2))
        d = sp.default_point(pb.parse('backend: "onnx" max_batch_size: 4 parameters { key: '
                                      '"ferry_inline" value: { string_value: "true" } }'),
                             {"backend": "onnx", "max_batch_size": 4}, 0)
        self.assertEqual((d["variant"], d["delay_us"], d["threads"]), ("onnx-inline", -1, None))
        d = sp.default_point(pb.parse('max_batch_size: 4 instance_group [ { count: 2 kind: '
                                      'KIND_GPU gpus: [ 0 ] } ]'),
                             {"backend": "onnxruntime", "max_batch_size": 4}, 1)
        self.assertEqual((d["variant"], d["gpus"], d["instances"]),
                         ("onnxruntime-cuda", (0,), 2))


class TestScore(unittest.TestCase):
    def lv(self, c, thr, p99, errors=0):
        return {"concurrency": c, "infer_per_s": thr, "p99_us": p99, "errors": errors}

    def test_throughput_within_budget(self):
        r = {"status": "ok", "levels": [self.lv(1, 100, 50), self.lv(4, 300, 90),
                                        self.lv(16, 500, 400)]}
        self.assertEqual(tm.score(r, "throughput")[0], (1, 500))
        s, lv = tm.score(r, "throughput", budget_us=100)
        self.assertEqual((s, lv["concurrency"]), ((1, 300), 4))
        s, _ = tm.score(r, "throughput", budget_us=10)
        self.assertEqual(s, (0, -50))           # misses: how close it came
        self.assertEqual(tm.score(r, "latency")[0], (1, -50))
        self.assertEqual(tm.score(r, "latency", min_throughput=250)[0], (1, -90))
        self.assertEqual(tm.score({"status": "load-failed"}, "throughput")[0], tm.FAILED)
        r["levels"] = [self.lv(1, 100, 50, errors=3)]
        self.assertEqual(tm.score(r, "throughput")[0], tm.FAILED)

    def test_gain(self):
        self.assertAlmostEqual(tm.gain((1, 200), (1, 100)), 2.0)
        self.assertAlmostEqual(tm.gain((1, -50), (1, -100)), 2.0)   # half the p99
        self.assertTrue(tm.better((1, 1.0), (0, -10)))
        self.assertFalse(tm.better((1, 104), (1, 100), 0.05))
        self.assertTrue(tm.better((1, 106), (1, 100), 0.05))
        self.assertFalse(tm.better(tm.FAILED, (0, -1e9)))

    def test_pareto_front(self):
        pts = [(100, 10), (200, 30), (150, 5), (300, 20), (400, 40)]
        self.assertEqual(rp.pareto_front(pts), [(100, 10), (200, 30), (400, 40)])


def synthetic_space():
    return sp.Space(["onnxruntime", "onnx", "onnx-inline"], [1, 2, 3, 4],
                    [1, 2, 4, 8, 16, 32, 64], [-1, 0, 100, 500], ["none", "max"], [1, 2, 4],
                    [])


def throughput(c):
    """A made-up response surface: a best batch size, a best instance count, a
    backend factor, a small delay that helps a little."""
    f = {"onnxruntime": 1.0, "onnx": 1.6, "onnx-inline": 1.3}[c["variant"]]
    f *= 1.0 - 0.15 * abs(math.log2(c["max_batch_size"]) - 4)
    f *= 1.0 - 0.2 * abs(c["instances"] - 2)
    f *= {-1: 0.7, 0: 1.0, 100: 1.1, 500: 0.9}[c["delay_us"]]
    f *= 1.02 if c["preferred"] == "max" else 1.0
    if c["threads"] is not None:
        f *= {1: 1.0, 2: 1.1, 4: 0.95}[c["threads"]]
    return max(f, 0.01) * 1000


def evaluator(fail=()):
    def ev(c):
        if c["variant"] in fail:
            return {"status": "load-failed", "reason": "no", "score": tm.FAILED}
        return {"status": "ok", "score": (1, throughput(c))}
    return ev


class TestSearch(unittest.TestCase):
    start = cand(variant="onnxruntime", instances=1, max_batch_size=4, delay_us=0, threads=1)

    def test_quick_finds_the_exhaustive_best_with_few_measurements(self):
        q = Search(synthetic_space(), evaluator(), 0.02)
        best = q.quick(self.start)
        x = Search(synthetic_space(), evaluator(), 0.02)
        allb = x.exhaustive()
        self.assertEqual(sp.key(best["cand"]), sp.key(allb["cand"]))
        self.assertLess(len(q.order), len(x.order) / 10)
        self.assertEqual(best["cand"]["variant"], "onnx")
        self.assertEqual(best["cand"]["max_batch_size"], 16)

    def test_each_variant_descends_on_its_own(self):
        # inline wins at the default's batch size, but the native executor
        # with instance threads wins once it batches: one descent that
        # picked the variant first would stop at inline
        def ev(c):
            f = {"onnxruntime": 50, "onnx-inline": 100, "onnx": 90}[c["variant"]]
            if c["variant"] == "onnx":
                f = {8: 110, 16: 150}.get(c["max_batch_size"], f)
            return {"status": "ok", "score": (1, float(f))}
        best = Search(synthetic_space(), ev, 0.02).quick(self.start)
        self.assertEqual((best["cand"]["variant"], best["cand"]["max_batch_size"]),
                         ("onnx", 16))

    def test_exhaustive_counts_each_distinct_candidate_once(self):
        s = synthetic_space()
        pts = s.all_points()
        self.assertEqual(len({sp.key(c) for c in pts}), len(pts))
        # onnxruntime: 4 x 7 x (1 + 3 x 2) x 3; onnx, onnx-inline: 4 x 7 x 7
        self.assertEqual(len(pts), 4 * 7 * 7 * 3 + 2 * 4 * 7 * 7)

    def test_a_variant_that_does_not_load_is_dropped(self):
        s = synthetic_space()
        q = Search(s, evaluator(fail=("onnx",)), 0.02)
        best = q.quick(self.start)
        self.assertIn("onnx", s.unavailable)
        self.assertEqual(best["cand"]["variant"], "onnx-inline")
        self.assertEqual(sum(1 for k in q.order if k[0] == "onnx"), 1)

    def test_budget_stops_and_keeps_the_best_so_far(self):
        q = Search(synthetic_space(), evaluator(), 0.02, max_candidates=5)
        best = q.quick(self.start)
        self.assertEqual(len(q.order), 5)
        self.assertEqual(best["score"], max(q.results[k]["score"] for k in q.order))

    def test_noise_below_min_gain_does_not_move(self):
        flat = lambda c: {"status": "ok", "score": (1, 1000 + (c["instances"] % 2))}  # noqa
        q = Search(synthetic_space(), flat, 0.05)
        q.quick(self.start)
        self.assertEqual(q.trace, [])     # no descent ever moved

    def test_gpu_coordinates(self):
        s = sp.Space(["onnx", "onnx-gpu"], [1, 2], [4, 8], [0], ["none"], [1], [(0,), (0, 1)])
        pts = s.all_points()
        self.assertTrue(all(c["gpus"] is None for c in pts if c["variant"] == "onnx"))
        self.assertEqual({c["gpus"] for c in pts if c["variant"] == "onnx-gpu"},
                         {(0,), (0, 1)})
        q = Search(s, lambda c: {"status": "ok", "score": (1, 10.0 * len(c["gpus"] or ()) +
                                                            c["instances"])}, 0.02)
        best = q.quick(cand(variant="onnx", max_batch_size=4, threads=None))
        self.assertEqual((best["cand"]["variant"], best["cand"]["gpus"]), ("onnx-gpu", (0, 1)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
