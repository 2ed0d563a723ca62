# SPDX-License-Identifier: MIT
"""ferry-tune - find the best batch size, instances, batching delay, backend
and coprocessor for one model, by measurement, in a running ferryd.

    ferry-tune MODEL --repository DIR [--broker SOCKET|URL]
               [--objective throughput|latency|jobs] [--p99-budget-us N]
               [--concurrency LIST] [--gpu-memory-budget BYTES] [options]

Each candidate config is written into the repository as a model directory
of its own, MODEL__tune_K (config.pbtxt, and the model's files linked from
MODEL's newest version), loaded into the running ferryd through the
repository API (ferry_model_load: no restart), measured, unloaded and
removed.  Without --broker, ferry-tune starts a private ferryd on the
repository and stops it at the end.  See docs/TUNING.md.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import ferry
from . import tune_pbtxt as pb
from . import tune_space as sp
from . import tune_measure as tm
from . import tune_report as rp
from .tune_broker import Broker, BrokerError, gpu_memory_used
from .tune_search import Search


def _ints(s):
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers: %r" % s)


def _strs(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="ferry-tune", description="Find the best serving config of a model by "
        "measurement, in a running ferryd (no restart).",
        epilog="Search: coordinate descent with early stopping from the config the "
        "repository serves now (docs/TUNING.md).")
    p.add_argument("model", metavar="MODEL", help="the model to tune (a directory of the "
                   "repository, served by the broker)")
    p.add_argument("--repository", required=True, metavar="DIR",
                   help="the broker's model repository (candidates are written into it)")
    p.add_argument("--broker", metavar="SOCKET|URL",
                   help="a running ferryd: its socket, or grpc://HOST:PORT (default: start a "
                   "private ferryd on the repository)")
    p.add_argument("--objective", choices=("throughput", "latency", "jobs"),
                   default="throughput",
                   help="throughput: inferences/s within the p99 budget; latency: the lowest "
                   "p99; jobs: the events/s of CPU jobs that saturate the cores beside ferryd "
                   "(ferry-bench-saturate's broker-shm / direct)")
    p.add_argument("--p99-budget-us", type=float, metavar="N",
                   help="client-side p99 latency a measurement must stay within")
    p.add_argument("--min-throughput", type=float, metavar="N",
                   help="latency objective: inferences/s a measurement must reach")
    p.add_argument("--concurrency", type=_ints, default=[1, 4, 16], metavar="LIST",
                   help="requests in flight, the sweep of each candidate (default 1,4,16)")
    p.add_argument("--gpu-memory-budget", type=int, metavar="BYTES",
                   help="GPU memory a candidate may take (onnxruntime's gpu_mem_limit, and "
                   "nvidia-smi's count across its load)")
    p.add_argument("--rows", type=int, metavar="N",
                   help="rows (batch dimension) per request (default 1; jobs: min(16, the "
                   "default's max_batch_size))")
    p.add_argument("--output", metavar="DIR", help="where the report goes (default "
                   "ferry-tune-MODEL)")
    p.add_argument("--search", choices=("quick", "exhaustive"), default="quick")
    p.add_argument("--compare-exhaustive", action="store_true",
                   help="after the quick search, measure the rest of the space and say how "
                   "close quick came")
    p.add_argument("--min-gain", type=float, default=5.0, metavar="PCT",
                   help="a move must gain this much (default 5%%): less is noise")
    p.add_argument("--max-candidates", type=int, metavar="N")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop searching after this long (the report is still written)")
    p.add_argument("--confirm", type=int, default=3, metavar="N",
                   help="measure the default and the choice again, alternately, N times "
                   "each, and compare the medians (default 3; 0: no)")
    g = p.add_argument_group("the search space (comma-separated lists)")
    g.add_argument("--backends", type=_strs, metavar="LIST",
                   help="variants: %s (default: every one the broker can run)" %
                   ", ".join(sp.VARIANTS))
    g.add_argument("--instances", type=_ints, metavar="LIST",
                   help="instances per device (default 1..min(4, CPUs); 1..4 with GPUs)")
    g.add_argument("--max-batch-sizes", type=_ints, metavar="LIST",
                   help="default: powers of two from --rows to 128")
    g.add_argument("--delays", type=_ints, metavar="LIST",
                   help="max_queue_delay_microseconds; -1: no dynamic batching "
                   "(default -1,0,100,500,2000)")
    g.add_argument("--preferred", type=_strs, default=["none", "max"], metavar="LIST",
                   help="none, max (preferred_batch_size: [ max_batch_size ])")
    g.add_argument("--threads", type=_ints, metavar="LIST",
                   help="onnxruntime's intra_op_thread_count (default 1,2,4.. up to the CPUs)")
    g.add_argument("--gpus", type=_ints, metavar="LIST",
                   help="GPU ids to use (default: every GPU the broker reports); KIND_GPU "
                   "candidates use the first 1, 2, .. of them")
    m = p.add_argument_group("measurement")
    m.add_argument("--window-ms", type=int, default=300,
                   help="ferry-bench-load's window (default 300)")
    m.add_argument("--stability", type=float, default=10, metavar="PCT",
                   help="ferry-bench-load's stability percentage (default 10)")
    m.add_argument("--max-windows", type=int, default=8, help="default 8")
    m.add_argument("--jobs-seconds", type=float, default=2.0,
                   help="jobs: seconds per ferry-bench-saturate run (default 2)")
    m.add_argument("--jobs-reps", type=int, default=2, help="jobs: repetitions (default 2)")
    m.add_argument("--saturate-args", default="", metavar="ARGS",
                   help="more ferry-bench-saturate options for jobs (e.g. '--jobs 2 "
                   "--threads 1 --work-us 200')")
    t = p.add_argument_group("programs")
    t.add_argument("--ferryd", metavar="PATH", help="the ferryd to start (no --broker)")
    t.add_argument("--ferryd-args", default="", metavar="ARGS",
                   help="more options for that ferryd")
    t.add_argument("--bin-dir", metavar="DIR",
                   help="where ferry-bench-load and ferry-bench-saturate are")
    p.add_argument("--keep", action="store_true",
                   help="leave the candidates' model directories in the repository")
    p.add_argument("--no-verify", action="store_true",
                   help="do not load and query the recommended config at the end")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if "/" in a.model or a.model in (".", ".."):
        p.error("MODEL is a model name, not a path")
    if a.objective == "jobs" and a.broker and a.broker.startswith(("grpc://", "grpcs://")):
        p.error("--objective jobs: CPU jobs use the broker's socket (shared memory)")
    if a.backends:
        bad = [b for b in a.backends if b not in sp.VARIANTS]
        if bad:
            p.error("--backends: unknown %s (%s)" % (", ".join(bad), ", ".join(sp.VARIANTS)))
    if a.rows is not None and a.rows < 1:
        p.error("--rows must be at least 1")
    if not a.concurrency or min(a.concurrency) < 1:
        p.error("--concurrency: counts of 1 or more")
    return a


class Tuner:
    def __init__(self, a, tools, search_dirs):
        self.a = a
        self.tools = tools
        self.log = (lambda *x: None) if a.quiet else (lambda s: print(s, flush=True))
        self.repo = os.path.abspath(a.repository)
        self.results = []       # (phase, result) in the order measured
        self.made = []          # model directories we wrote (removed at the end)
        self.k = 0
        self.broker = None
        self.work = tempfile.mkdtemp(prefix="ferry-tune-")

    # -- set-up -----------------------------------------------------------

    def connect(self):
        a = self.a
        if a.broker:
            try:
                self.broker = Broker(a.broker)
            except ferry.Error as e:
                raise SystemExit("ferry-tune: cannot connect to %s: %s" % (a.broker, e))
        else:
            if not self.tools["ferryd"]:
                raise SystemExit("ferry-tune: no ferryd found: give --ferryd or --broker")
            try:
                self.broker = Broker.start(self.tools["ferryd"], self.repo, self.work,
                                           a.ferryd_args.split())
            except BrokerError as e:
                raise SystemExit("ferry-tune: %s" % e)
        self.status = self.broker.status()

    def base(self):
        """The model as the repository serves it now."""
        a = self.a
        info = self.broker.info(a.model)
        if info is None:
            try:
                self.broker.load(a.model)
            except ferry.Error as e:
                raise SystemExit("ferry-tune: the broker does not serve %s: %s" % (a.model, e))
            info = self.broker.info(a.model)
        if info["state"] != "READY":
            raise SystemExit("ferry-tune: %s is %s: %s" % (a.model, info["state"],
                                                           info["reason"]))
        self.meta, self.version, mbs = self.broker.metadata(a.model)
        if info.get("max_batch_size") is None or info["max_batch_size"] < 0:
            info = dict(info, max_batch_size=mbs)       # unknown over gRPC
        if not info.get("backend"):
            info["backend"] = None
        self.info = info
        self.batched = (info.get("max_batch_size") or 0) > 0
        mdir = os.path.join(self.repo, a.model)
        self.vdir = os.path.join(mdir, str(self.version))
        if not os.path.isdir(self.vdir):
            raise SystemExit("ferry-tune: %s is not in %s (is it the broker's repository?)" %
                             (self.vdir, self.repo))
        cfg = os.path.join(mdir, "config.pbtxt")
        self.base_cfg = []
        if os.path.exists(cfg):
            try:
                with open(cfg) as f:
                    self.base_cfg = pb.parse(f.read())
            except (pb.ParseError, OSError, UnicodeDecodeError) as e:
                raise SystemExit("ferry-tune: %s: %s" % (cfg, e))

    def build_space(self):
        a = self.a
        cpus = len(os.sched_getaffinity(0))
        self.cpus = cpus
        gpus = self.status.get("gpus") or 0
        if gpus < 0:
            gpus = 0
        gpu_ids = [g for g in (a.gpus if a.gpus is not None else range(gpus))]
        self.default = sp.default_point(self.base_cfg, self.info, gpus)
        dm = self.default["max_batch_size"]
        if a.rows is None:
            a.rows = max(1, min(16, dm)) if a.objective == "jobs" and dm > 0 else 1
        if self.batched:
            mbs = a.max_batch_sizes or [1 << i for i in range(8) if (1 << i) >= a.rows]
            mbs = [m for m in mbs if m >= a.rows] or [a.rows]
        else:
            mbs = [0]
        variants = a.backends or list(sp.CPU_VARIANTS) + (list(sp.GPU_VARIANTS) if gpu_ids
                                                          else [])
        self.skipped_gpu = None
        if not gpu_ids:
            dropped = [v for v in variants if sp.is_gpu(v)]
            variants = [v for v in variants if not sp.is_gpu(v)]
            self.skipped_gpu = "the broker reports no GPU: KIND_GPU candidates (%s) skipped" % \
                ", ".join(dropped or sp.GPU_VARIANTS)
            self.log("ferry-tune: " + self.skipped_gpu)
        if not variants:
            raise SystemExit("ferry-tune: no backend variant left to try")
        inst = a.instances or list(range(1, max(1, min(4, cpus)) + 1))
        if gpu_ids and not a.instances:
            inst = sorted(set(inst) | {1, 2, 3, 4})
        threads = a.threads or [t for t in (1, 2, 4, 8, 16) if t <= max(cpus, 1)]
        delays = a.delays if a.delays is not None else [-1, 0, 100, 500, 2000]
        if not self.batched:
            delays = [-1]
        gpu_sets = [tuple(gpu_ids[:i]) for i in range(1, len(gpu_ids) + 1)]
        self.space = sp.Space(variants, inst, mbs, delays, a.preferred, threads, gpu_sets)
        # the default is a point of the space, whatever the lists say
        if self.default["variant"] not in self.space.values["variant"]:
            self.space.values["variant"].insert(0, self.default["variant"])
        self.default = self.space.normalize(self.default)
        self.space.add_point(self.default)

    # -- one candidate ----------------------------------------------------

    def _new_name(self):
        while True:
            self.k += 1
            name = "%s__tune_%d" % (self.a.model, self.k)
            if not os.path.exists(os.path.join(self.repo, name)):
                return name

    def _model_dir(self, name):
        """repo/name/1/ holding the model's files (links to the newest
        version's, copies where links fail)."""
        d = os.path.join(self.repo, name)
        os.makedirs(os.path.join(d, "1"))
        self.made.append(d)
        for f in os.listdir(self.vdir):
            src = os.path.join(self.vdir, f)
            dst = os.path.join(d, "1", f)
            try:
                os.symlink(src, dst)
            except OSError:
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, dst)
        return d

    def write_model(self, name, cand):
        d = self._model_dir(name)
        text = pb.dump(sp.candidate_config(self.base_cfg, name, cand, self.meta, self.batched,
                                           self.a.gpu_memory_budget))
        with open(os.path.join(d, "config.pbtxt"), "w") as f:
            f.write(text)
        return text

    def remove_model(self, name):
        self.broker.unload(name)
        d = os.path.join(self.repo, name)
        if not self.a.keep and d in self.made:
            shutil.rmtree(d, ignore_errors=True)
            self.made.remove(d)

    def evaluate(self, cand, phase="search", concurrency=None):
        a = self.a
        name = self._new_name()
        r = {"name": name, "cand": cand, "status": "ok", "loadavg": tm.loadavg(),
             "stalls": []}
        self.log("[%d] %s  (%s)" % (len(self.results), sp.label(cand), name))
        self.write_model(name, cand)
        try:
            before = gpu_memory_used() if sp.is_gpu(cand["variant"]) else None
            try:
                r["load_s"] = self.broker.load(name)
            except ferry.Error as e:
                r.update(status="load-failed", reason=str(e).replace("\n", " "))
                self.log("    did not load: %s" % r["reason"])
                return self._done(r, phase)
            if before is not None:
                after = gpu_memory_used() or {}
                r["gpu_mem_bytes"] = sum(max(0, after.get(g, 0) - before.get(g, 0))
                                         for g in cand["gpus"] or ())
                if a.gpu_memory_budget and r["gpu_mem_bytes"] > a.gpu_memory_budget:
                    r.update(status="over-gpu-memory", reason="%d bytes of GPU memory > "
                             "budget %d" % (r["gpu_mem_bytes"], a.gpu_memory_budget))
                    self.log("    " + r["reason"])
                    return self._done(r, phase)
            try:
                if a.objective == "jobs":
                    r["jobs"] = tm.jobs_run(self.tools["saturate"], self.broker.address, name,
                                            self.jobs_models, self.jobs_stem, a.rows,
                                            a.jobs_seconds, a.jobs_reps,
                                            a.saturate_args.split())
                    j = r["jobs"]
                    self.log("    jobs: %.0f events/s through ferryd, %.0f direct: %.3fx; "
                             "%.1f us waiting per event" % (j["jobs_events_s"],
                                                            j["direct_events_s"],
                                                            j["jobs_ratio"],
                                                            j["jobs_infer_us"]))
                else:
                    r["levels"] = tm.load_sweep(self.tools["load"], self.broker.address, name,
                                                concurrency or a.concurrency, a.rows,
                                                a.window_ms,
                                                a.stability, a.max_windows, a.p99_budget_us,
                                                self.log, r["stalls"])
            except tm.MeasureError as e:
                r.update(status="error", reason=str(e))
                self.log("    " + r["reason"])
        finally:
            self.remove_model(name)
        return self._done(r, phase)

    def _done(self, r, phase):
        r["score"], r["best_level"] = tm.score(r, self.a.objective, self.a.p99_budget_us,
                                               self.a.min_throughput)
        r["label"] = sp.label(r["cand"])
        r["score_text"] = self.score_text(r["score"])
        r["phase"] = phase
        r["n"] = len(self.results)      # the measurement's number, as logged
        self.results.append((phase, r))
        return r

    def score_text(self, s):
        cls, v = s
        if cls < 0:
            return "failed"
        if self.a.objective == "jobs":
            t = "%.3fx direct" % v
        elif v < 0:
            t = "p99 %.1f us" % -v
        else:
            t = "%.0f infer/s" % v
        return t if cls == 1 else t + " (misses the budget)"

    # -- the run ----------------------------------------------------------

    def setup_jobs(self):
        """ferry-bench-saturate's direct mode runs the model file in the
        jobs: one .onnx file named as the model, in a folder of its own."""
        files = [f for f in os.listdir(self.vdir) if f.endswith(".onnx")]
        if not files:
            raise SystemExit("ferry-tune: --objective jobs needs an ONNX model file in %s" %
                             self.vdir)
        self.jobs_models = os.path.join(self.work, "models")
        os.makedirs(self.jobs_models, exist_ok=True)
        self.jobs_stem = "model"
        os.symlink(os.path.join(self.vdir, "model.onnx" if "model.onnx" in files
                                else files[0]),
                   os.path.join(self.jobs_models, "model.onnx"))
        if not self.broker.local:
            raise SystemExit("ferry-tune: --objective jobs needs a local broker (a socket)")

    def confirm(self, chosen, default, phase="confirm"):
        """Measure default and chosen again, alternately; medians.  Only up
        to the highest concurrency where either scored: the levels above it
        cannot raise a score, those below it are where a score falls back
        when the best level misses the budget this time."""
        a = self.a
        sd, sc = [], []
        top = max([r["best_level"]["concurrency"] for r in (chosen, default)
                   if r.get("best_level")] or [max(a.concurrency)])
        levels = [c for c in a.concurrency if c <= top]
        for i in range(a.confirm):
            for r, out in ((default, sd), (chosen, sc)) if i % 2 == 0 else \
                    ((chosen, sc), (default, sd)):
                out.append(self.evaluate(r["cand"], phase, levels)["score"])
        med_d, med_c = _median(sd), _median(sc)
        ratio = tm.gain(med_c, med_d)
        return {"rounds": a.confirm, "default": med_d, "chosen": med_c, "ratio": ratio,
                "default_text": self.score_text(med_d), "chosen_text": self.score_text(med_c)}

    def verify(self, text):
        """Load the recommended config under a name of its own and send it
        one real request; compare its outputs with the model's own."""
        name = self._new_name()
        d = self._model_dir(name)
        with open(os.path.join(d, "config.pbtxt"), "w") as f:
            f.write(text.replace('name: "%s"' % self.a.model, 'name: "%s"' % name, 1))
        try:
            self.broker.load(name)
            inputs = {}
            rng = np.random.default_rng(0)
            for t in self.meta["inputs"]:
                shape = [self.a.rows if (i == 0 and self.batched) else (x if x > 0 else 1)
                         for i, x in enumerate(t["shape"])]
                npdt = _NP.get(t["datatype"])
                if npdt is None:
                    return {"ok": None, "why": "input %s of type %s: not checked" %
                            (t["name"], t["datatype"])}
                inputs[t["name"]] = (rng.standard_normal(shape) * 0.5).astype(npdt)
            got = self.broker.infer(name, inputs)
            want = self.broker.infer(self.a.model, inputs)
            for k, v in want.items():
                if not np.allclose(np.asarray(got[k], dtype=np.float64),
                                   np.asarray(v, dtype=np.float64), rtol=1e-3, atol=1e-4):
                    return {"ok": False, "why": "output %s differs from %s's" %
                            (k, self.a.model)}
            return {"ok": True, "why": "%d output(s) match %s's on a request of %d row(s)" %
                    (len(want), self.a.model, self.a.rows)}
        except ferry.Error as e:
            return {"ok": False, "why": str(e)}
        finally:
            self.remove_model(name)

    def run(self):
        a = self.a
        t0 = time.monotonic()
        la0 = tm.loadavg()
        self.connect()
        self.base()
        self.build_space()
        if a.objective == "jobs":
            self.setup_jobs()
        deadline = t0 + a.time_limit if a.time_limit else None
        what = "coordinate descent with early stopping, min gain %g%%" % a.min_gain \
            if a.search == "quick" else "every candidate of the space"
        self.log("ferry-tune: %s on %s (%s), objective %s%s, %d row(s) per request%s; "
                 "search: %s; space: %s" % (
                     a.model, self.broker.address, "private ferryd" if self.broker.proc
                     else "running ferryd", a.objective,
                     ", p99 budget %g us" % a.p99_budget_us if a.p99_budget_us else "",
                     a.rows, ", concurrency %s" % ",".join(map(str, a.concurrency))
                     if a.objective != "jobs" else "", what,
                     "; ".join("%s %s" % (d, ",".join(map(str, v)))
                               for d, v in self.space.values.items() if v)))
        self.log("default: %s" % sp.label(self.default))
        search = Search(self.space, self.evaluate, a.min_gain / 100, a.max_candidates,
                        deadline, self.log)
        if a.search == "quick":
            best = search.quick(self.default)
        else:
            search.measure(self.default)
            best = search.exhaustive()
        default_r = search.results[sp.key(self.default)]
        if default_r["status"] == "load-failed":
            raise SystemExit("ferry-tune: the default config, as the tuner writes it, did not "
                             "load: %s" % default_r["reason"])
        quick_keys = list(search.order)
        exhaustive = None
        if a.compare_exhaustive and a.search == "quick":
            self.log("ferry-tune: measuring the rest of the space")
            search.max_candidates = None
            search.deadline = None
            allb = search.exhaustive()
            ranked = sorted((search.results[k] for k in search.order),
                            key=lambda r: r["score"], reverse=True)
            space_n = len(search.order)
            exhaustive = {
                "space": space_n, "quick_measured": len(quick_keys),
                "quick_text": best["score_text"], "best_text": allb["score_text"],
                "best_label": allb["label"],
                "fraction": 1.0 / tm.gain(allb["score"], best["score"])
                if tm.gain(allb["score"], best["score"]) not in (0.0, float("inf")) else
                (1.0 if allb is best else 0.0),
                "rank": 1 + next(i for i, r in enumerate(ranked) if r is best),
            }
            if a.confirm > 0 and allb is not best:
                # the best of many noisy measurements is flattered by the
                # noise: measure both again, alternately, before comparing
                self.log("ferry-tune: measuring quick's choice and the space's best again, "
                         "alternately, %d times each" % a.confirm)
                c = self.confirm(allb, best, "compare")
                exhaustive["confirmed_ratio"] = c["ratio"]
                exhaustive["confirmed_text"] = "%s (space's best) against %s (quick's)" % (
                    c["chosen_text"], c["default_text"])
                self.log("ferry-tune: measured again: %s: quick reaches %.1f%%" % (
                    exhaustive["confirmed_text"], 100 / c["ratio"] if c["ratio"] else 0))
            self.log("ferry-tune: quick search's choice scores %s, the whole space's best %s "
                     "(%s): %.1f%%, rank %d of %d" % (
                         best["score_text"], allb["score_text"], allb["label"],
                         100 * exhaustive["fraction"], exhaustive["rank"], space_n))
        chosen = best
        confirm = None
        recommended = chosen
        if a.confirm > 0 and sp.key(chosen["cand"]) != sp.key(self.default) and \
                chosen["score"][0] >= 0:
            self.log("ferry-tune: confirming: default and choice, alternately, %d times each"
                     % a.confirm)
            confirm = self.confirm(chosen, default_r)
            if confirm["ratio"] > 1.0 and confirm["chosen"][0] == 1:
                confirm["verdict"] = "The choice is confirmed."
            elif confirm["ratio"] > 1.0:
                confirm["verdict"] = "Not confirmed: measured again, the choice missed the " \
                    "budget; the default is kept as the recommendation."
                recommended = default_r
            else:
                confirm["verdict"] = "Not confirmed: the default is kept as the " \
                    "recommendation (the search's gain was within the noise)."
                recommended = default_r
            self.log("ferry-tune: confirmed %.2fx: %s (chosen) against %s (default)" % (
                confirm["ratio"], confirm["chosen_text"], confirm["default_text"]))
        text = pb.dump(sp.candidate_config(self.base_cfg, a.model, recommended["cand"],
                                           self.meta, self.batched, a.gpu_memory_budget))
        verified = None if a.no_verify else self.verify(text)
        text = "# ferry-tune %s (%s): %s, %s%s\n" % (
            time.strftime("%Y-%m-%d"), a.objective, recommended["label"],
            recommended["score_text"], "; %.2fx the default, confirmed" % confirm["ratio"]
            if confirm and recommended is chosen else "") + text
        if verified:
            self.log("ferry-tune: the recommended config %s: %s" % (
                "serves" if verified["ok"] else "FAILED" if verified["ok"] is False else "loads",
                verified["why"]))
        la1 = tm.loadavg()
        out = a.output or "ferry-tune-%s" % a.model
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.pbtxt"), "w") as f:
            f.write(text)
        rp.write_csv(os.path.join(out, "measurements.csv"), self.results)
        searched = [r for ph, r in self.results if ph == "search"]
        pngs, note = rp.plots(out, searched, a.objective, recommended, default_r,
                              a.p99_budget_us)
        stalls = sum(len(r.get("stalls") or ()) for _, r in self.results)
        notes = [n for n in (note, self.skipped_gpu) if n]
        if stalls:
            notes.append("%d measurement(s) saw no request complete at all (a stall of ferryd "
                         "or the client) and were measured again: see the CSV's stalls column"
                         % stalls)
            self.log("ferry-tune: " + notes[-1])
        unavailable = dict(self.space.unavailable)
        if unavailable:
            notes.append("not available here: " + "; ".join(
                "%s (%s)" % kv for kv in unavailable.items()))
        s = {
            "model": a.model, "objective": a.objective, "budget_us": a.p99_budget_us,
            "rows": a.rows, "concurrency": a.concurrency, "search": a.search,
            "search_what": what, "measured": len(quick_keys) if a.search == "quick"
            else len(search.order), "seconds": time.monotonic() - t0,
            "broker": ("private ferryd " if self.broker.proc else "") + self.broker.address,
            "loadavg_start": la0, "loadavg_end": la1, "cpus": self.cpus,
            "gpus": self.status.get("gpus"), "gpu_skipped": self.skipped_gpu,
            "unavailable": unavailable, "stalls": stalls,
            "default": {"label": default_r["label"], "score": default_r["score"],
                        "score_text": default_r["score_text"], "cand": default_r["cand"]},
            "chosen": {"label": recommended["label"], "score": recommended["score"],
                       "score_text": recommended["score_text"], "cand": recommended["cand"]},
            "search_best": {"label": chosen["label"], "score": chosen["score"]},
            "confirm": confirm, "exhaustive": exhaustive, "verify": verified,
            "config": text, "plots": pngs, "space": self.space.values,
        }
        rp.write_html(os.path.join(out, "report.html"), s, self.results, pngs, " ".join(notes))
        rp.write_json(os.path.join(out, "summary.json"), s)
        self.log("ferry-tune: default %s: %s; recommended %s: %s" % (
            default_r["label"], default_r["score_text"], recommended["label"],
            recommended["score_text"]))
        self.log("ferry-tune: wrote %s/{config.pbtxt,measurements.csv,report.html%s}" % (
            out, "," + ",".join(pngs) if pngs else ""))
        return 0 if verified is None or verified["ok"] is not False else 1

    def close(self):
        if self.broker is not None:
            for d in list(self.made):
                self.broker.unload(os.path.basename(d))
            if self.broker.proc is not None:
                self.broker.stop()
        if not self.a.keep:
            for d in self.made:
                shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


_NP = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT8": np.int8,
       "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
       "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64, "BOOL": np.bool_}


def _median(scores):
    """The median score: class first (the worst class of the majority), then value."""
    s = sorted(scores)
    return s[(len(s) - 1) // 2] if s else tm.FAILED


def main(argv=None, dirs=()):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    bindirs = [a.bin_dir] + list(dirs)
    tools = {"load": tm.find_tool("ferry-bench-load", bindirs),
             "saturate": tm.find_tool("ferry-bench-saturate", bindirs),
             "ferryd": a.ferryd or tm.find_tool("ferryd", [os.path.join(d, "broker")
                                                           for d in bindirs if d] + bindirs)}
    need = "saturate" if a.objective == "jobs" else "load"
    if not tools[need]:
        raise SystemExit("ferry-tune: %s not found (give --bin-dir)" %
                         ("ferry-bench-saturate" if need == "saturate" else "ferry-bench-load"))
    if not os.path.isdir(a.repository):
        raise SystemExit("ferry-tune: no repository %s" % a.repository)
    tuner = Tuner(a, tools, bindirs)
    try:
        return tuner.run()
    except KeyboardInterrupt:
        print("ferry-tune: interrupted; the candidates' model directories are removed",
              file=sys.stderr)
        return 130
    finally:
        tuner.close()
