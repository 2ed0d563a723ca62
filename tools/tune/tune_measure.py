# SPDX-License-Identifier: MIT
"""tune_measure - measure one candidate with ferry's load generators, and
score it for an objective.

throughput / latency: ferry-bench-load as pseudo clients, one concurrency
level at a time (its stability windows: a level is stable when the last
three windows' throughputs and mean latencies lie within the stability
percentage of their mean), with the server-side breakdown (queue, compute
input / infer / output, rows per execution) from ferry_model_statistics
deltas.  A sweep stops early where going on cannot help: once p99 passes
the budget (more requests in flight only queue longer), or once
throughput falls below 95% of the best level so far (saturated).

jobs: ferry-bench-saturate --broker, with direct and broker-shm
interleaved: CPU jobs fill every core, each event does its work and one
inference, either in the job (direct) or through the candidate in ferryd
(broker-shm); the score is broker-shm's events/s over direct's, each
repetition against the direct run of the same repetition.
"""

import csv
import os
import subprocess
import tempfile

LEVEL_FIELDS = ("concurrency", "infer_per_s", "p50_us", "p90_us", "p95_us", "p99_us",
                "mean_us", "queue_us", "compute_input_us", "compute_infer_us",
                "compute_output_us", "rows_per_exec", "windows", "stable", "errors")
JOBS_FIELDS = ("jobs_events_s", "direct_events_s", "jobs_ratio", "jobs_ratio_half",
               "jobs_infer_us", "ferryd_cpu_s")


class MeasureError(RuntimeError):
    pass


def _num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return 0.0


def load_level(tool, address, name, conc, rows, window_ms, stability, max_windows,
               transport_addr=None):
    """One concurrency level of ferry-bench-load: a dict of LEVEL_FIELDS."""
    argv = [tool, "-u", transport_addr or address, "-m", name, "-b", str(rows),
            "--concurrency-range", "%d:%d" % (conc, conc), "-p", str(window_ms),
            "-s", str(stability), "-r", str(max_windows)]
    limit = 60 + max_windows * window_ms / 1000.0 * 3
    recs = _run_csv(argv, "-f", limit)
    if not recs:
        raise MeasureError("ferry-bench-load wrote no CSV row")
    rec = recs[0]
    return {
        "concurrency": conc,
        "infer_per_s": _num(rec["infer_per_s"]),
        "p50_us": _num(rec["p50_us"]), "p90_us": _num(rec["p90_us"]),
        "p95_us": _num(rec["p95_us"]), "p99_us": _num(rec["p99_us"]),
        "mean_us": _num(rec["mean_us"]), "queue_us": _num(rec["queue_us"]),
        "compute_input_us": _num(rec["compute_input_us"]),
        "compute_infer_us": _num(rec["compute_infer_us"]),
        "compute_output_us": _num(rec["compute_output_us"]),
        "rows_per_exec": _num(rec["rows_per_exec"]),
        "windows": int(_num(rec["windows"])), "stable": int(_num(rec["stable"])),
        "errors": int(_num(rec["errors"])),
    }


def load_sweep(tool, address, name, concurrencies, rows, window_ms, stability, max_windows,
               budget_us=None, log=None, stalls=None):
    """The levels of a concurrency sweep, stopping early (module comment).
    A level in which no request completed at all is a stall of ferryd or
    of the client, not a property of the candidate: it is measured once
    more (and counted in `stalls`, a list), and a second one fails the
    candidate."""
    levels, best = [], 0.0
    for c in concurrencies:
        lv = load_level(tool, address, name, c, rows, window_ms, stability, max_windows)
        if lv["infer_per_s"] <= 0 and not lv["errors"]:
            if stalls is not None:
                stalls.append(c)
            if log:
                log("    c=%-4d no request completed in %d windows (a stall): measuring again"
                    % (c, lv["windows"]))
            lv = load_level(tool, address, name, c, rows, window_ms, stability, max_windows)
            if lv["infer_per_s"] <= 0 and not lv["errors"]:
                if stalls is not None:
                    stalls.append(c)
                raise MeasureError("no request completed at concurrency %d, twice: ferryd or "
                                   "the client stalled" % c)
        levels.append(lv)
        if log:
            log("    c=%-4d %10.0f infer/s  p99 %9.1f us  queue %7.1f  infer %7.1f us  "
                "%4.1f rows/exec%s%s" % (c, lv["infer_per_s"], lv["p99_us"], lv["queue_us"],
                                         lv["compute_infer_us"], lv["rows_per_exec"],
                                         "" if lv["stable"] else "  (unstable)",
                                         "  %d errors" % lv["errors"] if lv["errors"] else ""))
        if lv["errors"] or lv["infer_per_s"] <= 0:
            break
        if budget_us is not None and lv["p99_us"] > budget_us:
            break
        if len(levels) >= 2 and lv["infer_per_s"] < 0.95 * best:
            break
        best = max(best, lv["infer_per_s"])
    return levels


def _run_csv(argv, flag, limit, raw=False):
    """Run a load generator that writes its CSV to the file after `flag`;
    its rows (dicts by the header, or lists with raw).  The table it
    prints is dropped; its last line of stderr says why it failed."""
    tool = os.path.basename(argv[0])
    with tempfile.NamedTemporaryFile("r", prefix="ferry-tune-", suffix=".csv") as f:
        try:
            p = subprocess.run(argv + [flag, f.name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise MeasureError("%s took longer than %.0f s" % (tool, limit)) from None
        if p.returncode != 0:
            why = [ln for ln in p.stderr.strip().splitlines() if "window" not in ln]
            raise MeasureError("%s failed (exit %d): %s" % (tool, p.returncode,
                                                            (why or ["?"])[-1].strip()))
        f.seek(0)
        return list(csv.reader(f)) if raw else list(csv.DictReader(f))


def jobs_run(tool, socket, name, model_dir, model_stem, rows, seconds, reps, extra=()):
    """ferry-bench-saturate --broker: a dict of JOBS_FIELDS."""
    argv = [tool, "--broker", socket, "--broker-model", name, "--model", model_stem,
            "--models", model_dir, "--batch", str(rows), "--seconds", str(seconds),
            "--reps", str(reps), "--modes", "direct,broker-shm"] + list(extra)
    limit = 120 + 2 * reps * (seconds + 5)
    mean = {}
    for rec in _run_csv(argv, "--csv", limit, raw=True):
        if len(rec) >= 12 and rec[0] == "mean":
            mean[rec[1]] = rec
    if "broker-shm" not in mean or "direct" not in mean:
        raise MeasureError("ferry-bench-saturate wrote no mean rows")
    s, d = mean["broker-shm"], mean["direct"]
    # mean,mode,,events_s,infer_frac,work_us,infer_us,ferryd_cpu_s,wall_s,ratio,ratio_half,..
    return {"jobs_events_s": _num(s[3]), "direct_events_s": _num(d[3]),
            "jobs_ratio": _num(s[9]), "jobs_ratio_half": _num(s[10]),
            "jobs_infer_us": _num(s[6]), "ferryd_cpu_s": _num(s[7])}


# ---------------------------------------------------------------------------
# Scores.  A score is (class, value), compared as a tuple: class 1 meets
# every constraint, 0 measured but misses one (value: how close it came),
# -1 did not load or failed.  Higher is better in both places.

FAILED = (-1, 0.0)


def score(result, objective, budget_us=None, min_throughput=None):
    """(score, best level) of a measured candidate."""
    if result.get("status") != "ok":
        return FAILED, None
    if objective == "jobs":
        j = result.get("jobs")
        if not j or j["jobs_ratio"] <= 0:
            return FAILED, None
        return (1, j["jobs_ratio"]), None
    ok = [lv for lv in result["levels"] if not lv["errors"] and lv["infer_per_s"] > 0]
    if not ok:
        return FAILED, None
    feas = [lv for lv in ok if (budget_us is None or lv["p99_us"] <= budget_us) and
            (min_throughput is None or lv["infer_per_s"] >= min_throughput)]
    if objective == "latency":
        if feas:
            lv = min(feas, key=lambda x: x["p99_us"])
            return (1, -lv["p99_us"]), lv
        lv = min(ok, key=lambda x: x["p99_us"])
        return (0, -lv["p99_us"]), lv
    if feas:
        lv = max(feas, key=lambda x: x["infer_per_s"])
        return (1, lv["infer_per_s"]), lv
    # none meets the budget: the closest to it
    lv = min(ok, key=lambda x: x["p99_us"])
    return (0, -lv["p99_us"]), lv


def gain(a, b):
    """How much better score a is than score b, as a ratio (> 1: better);
    inf / 0 across classes."""
    if a[0] != b[0]:
        return float("inf") if a[0] > b[0] else 0.0
    va, vb = a[1], b[1]
    if va >= 0 and vb > 0:
        return va / vb
    if va < 0 and vb < 0:
        return vb / va      # -p99: the smaller p99 wins
    return 1.0 if va == vb else (float("inf") if va > vb else 0.0)


def better(a, b, min_gain=0.0):
    """Is score a better than b by more than min_gain (0.05: 5%)?"""
    return gain(a, b) > 1.0 + min_gain


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def find_tool(name, dirs):
    """The first executable `name` in dirs, else on PATH."""
    for d in dirs:
        if d:
            p = os.path.join(d, name)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    from shutil import which
    return which(name)
