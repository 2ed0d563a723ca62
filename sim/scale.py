#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The scale model: 10,000 CPU jobs offloading to 100 T4-class GPUs, as
the CMS study ran them (issue 18), simulated with ferrysim.

    sim/scale.py [--quick] [--pool-csv bench/out/pool.csv] [--out DIR]

Prints the parameters with their sources, the sweep over jobs per GPU
(gain over running the inference in the jobs, GPU utilisation, rows per
GPU execution) for jobs that wait for each result (1 event in flight) and
jobs that work on while a request travels (2), the study's own point
simulated whole (10,000 jobs, 100 GPUs), and, given bench/pool.sh's CSV,
the validation: the pool of CPU-only brokers measured on this machine
against the model's prediction from the costs measured in the same run.
Writes OUT/scale.csv and the plots bench/results/scale.png and
bench/results/scale_validation.png (when matplotlib is there).
--quick: fewer points and shorter runs (a smoke test).

Every number the model starts from is in PARAMS, with where it comes from.
"""
import csv
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrysim  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The model's inputs (microseconds).  "here": measured on the development
# VM (2 cores, AMD EPYC, KVM); "H100": BENCHMARKS.md's offload study on
# the device machine; "study": the CMS study's set-up as issue 18 gives it;
# "assumed": a stated assumption.
PARAMS = {
    "f": (0.115, "study: inference is the fraction f of a job's event such that "
                 "free inference gives 1 / (1 - f) = 1.13, the ~13% the study measured"),
    "rows": (64, "the offload study's event: one mlp_wide inference of 64 rows"),
    "infer_cpu_us": (800.0, "here: mlp_wide, 64 rows, on one core (BENCHMARKS.md, offload "
                            "study: ~0.8 ms); sets the job's other work to "
                            "800 * (1 - f) / f = 6157 us per event"),
    "gpu_fixed_us": (40.0, "H100: a GPU execution of mlp_wide costs ~40 us whatever its size "
                           "(45 us for 64 rows, 89 us for 764; BENCHMARKS.md); assumed the "
                           "same on a T4 (launch and graph overhead, not arithmetic)"),
    "gpu_row_us": (0.064 * 8.3, "H100: 0.064 us per row (the same two points), times 8.3, "
                                "the ratio of FP32 peaks (H100 SXM 67 TFLOPS, T4 8.1): "
                                "0.53 us per row on a T4-class GPU; assumed"),
    "max_rows": (1024, "assumed: ferryd's dynamic batcher takes up to 16 requests of 64 "
                       "rows into one GPU execution"),
    "server_cores": (8, "assumed: a GPU server of 8 cores per T4 for the broker's own work"),
    "broker_us": (150.0, "here: ferryd's CPU per gRPC request with no model work "
                         "(bench/pool.sh --scale: identity requests, ferryd's CPU over "
                         "them); the value of the pool's CSV when it is given"),
    "client_us": (150.0, "here: a lean gRPC client's CPU per request (bench/pool.sh "
                         "--scale: ferry-bench-distance, asynchronous, through libferry); "
                         "the value of the pool's CSV when it is given"),
    "proxy_us": (200.0, "here: HAProxy's CPU per request (bench/pool.sh --scale), taken as "
                        "latency: the proxies run on machines of their own"),
    "rtt_us": (1000.0, "assumed: 1 ms round trip between the jobs and the GPUs (one cloud "
                       "region; the study saw distance matter little within a few hundred "
                       "km, and bench/distance.sh hides 10 ms with 32 events in flight)"),
    "slots": (2, "assumed: a job works on its next event while a request travels "
                 "(CMSSW's asynchronous ExternalWork); 1 is shown too"),
    "jitter": (0.2, "assumed: each event's work varies uniformly by +-20%, so that jobs "
                    "do not run in step"),
}

# The node-local case: the GPU in the jobs' own node, reached through
# ferry's shared memory instead of gRPC (only what differs from PARAMS).
LOCAL = {
    "client_us": (5.0, "here: a shared-memory request costs the client a few us "
                       "(ferry-bench latency: 6.8 us p50 round trip, BENCHMARKS.md)"),
    "broker_us": (17.0, "here: ferryd's CPU per shared-memory request besides the model "
                        "(BENCHMARKS.md, saturate with 4 jobs: about 17 us per event)"),
    "proxy_us": (0.0, "no proxy"),
    "rtt_us": (0.0, "no network"),
}


def params(**over):
    p = {k: v[0] for k, v in PARAMS.items()}
    p.update(over)
    return p


def pool_costs(path):
    """Per-request costs and throughput from bench/pool.sh --scale's CSV:
    {(path, brokers): {...medians...}}."""
    rows = list(csv.DictReader(open(path)))
    out = {}
    for key in {(r["path"], int(r["brokers"])) for r in rows}:
        sel = [r for r in rows if (r["path"], int(r["brokers"])) == key]

        def per(col):
            return statistics.median(float(r[col]) / max(1, int(r["requests"])) * 1e6 for r in sel)
        thr = [int(r["requests"]) / float(r["seconds"]) for r in sel]
        rps = [float(r["infer_per_s"]) for r in sel]
        out[key] = {
            "ferryd_us": per("cpu_ferryd_s"), "instance_us": per("cpu_instance_s"),
            "haproxy_us": per("cpu_haproxy_s"), "client_us": per("cpu_client_s"),
            "infer_per_s": statistics.median(rps),
            "infer_per_s_range": (max(rps) - min(rps)) / 2,
            "requests_per_s_window": statistics.median(thr),
            "busy_cores": statistics.median(float(r["busy_cores"]) for r in sel),
            "reps": len(sel),
        }
    return out


def validate(costs, batch, conc, cores=2):
    """Predict the pool's requests/s for 1, 2, 3 brokers behind HAProxy and
    1 broker direct from the costs measured with one broker behind HAProxy
    (per request: client, HAProxy and ferryd CPU, the instance thread's
    share, and the hand-off between executions)."""
    res = []
    base = costs[("haproxy", 1)]
    broker_us = base["ferryd_us"] - base["instance_us"]
    # One broker is bound by its instance thread (its queue is never
    # empty): what an execution takes beyond its CPU is the hand-off
    # between executions, measured as 1 / throughput less the CPU.
    cycle = 1e6 * batch / base["infer_per_s"]
    gap = max(0.0, cycle - base["instance_us"])
    for path, n in (("haproxy", 1), ("haproxy", 2), ("haproxy", 3), ("direct", 1)):
        if (path, n) not in costs:
            continue
        pred = ferrysim.closed_loop_pool(
            cores, n, conc, client_us=base["client_us"],
            proxy_us=base["haproxy_us"] if path == "haproxy" else 0.0,
            broker_us=broker_us, compute_us=base["instance_us"], gap_us=gap,
            seconds=2.0)
        meas = costs[(path, n)]["infer_per_s"] / batch
        res.append({"path": path, "brokers": n, "measured": meas,
                    "measured_range": costs[(path, n)]["infer_per_s_range"] / batch,
                    "predicted": pred["requests_per_s"], "pred_busy": pred["busy_cores"],
                    "meas_busy": costs[(path, n)]["busy_cores"]})
    return res, broker_us, gap


def main():
    quick = "--quick" in sys.argv
    pool_csv = sys.argv[sys.argv.index("--pool-csv") + 1] if "--pool-csv" in sys.argv else None
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else os.path.join(TOP, "bench", "out")
    os.makedirs(out, exist_ok=True)
    over = {}
    val = None
    if pool_csv:
        costs = pool_costs(pool_csv)
        batch = int(os.environ.get("BATCH", "64"))
        conc = int(os.environ.get("CONC", "12"))
        val, broker_us, gap = validate(costs, batch, conc)
        over = {"broker_us": round(broker_us, 1),
                "client_us": round(costs[("haproxy", 1)]["client_us"], 1),
                "proxy_us": round(costs[("haproxy", 1)]["haproxy_us"], 1)}
        lean = pool_csv[:-4] + "-costs.csv"
        if os.path.exists(lean):
            r = list(csv.DictReader(open(lean)))
            over["client_us"] = round(statistics.median(
                float(x["client_cpu_s"]) / int(x["requests"]) * 1e6 for x in r), 1)
            over["broker_us"] = round(statistics.median(
                float(x["ferryd_cpu_s"]) / int(x["requests"]) * 1e6 for x in r), 1)
    p = params(**over)
    print("scale model: parameters (us)")
    for k in PARAMS:
        print("  %-13s %-9s %s" % (k, "%g" % p[k], PARAMS[k][1]))
    work = p["infer_cpu_us"] * (1 - p["f"]) / p["f"]
    for k, v in LOCAL.items():
        print("  node-local: %-9s %-6g %s" % (k, v[0], v[1]))
    print("  -> an event: %.0f us of other work + %.0f us of inference on the CPU; "
          "ideal gain 1/(1-f) = %.3f" % (work, p["infer_cpu_us"], 1 / (1 - p["f"])))

    gpus = 4                                # a slice of the 100: the balancer is per request
    jpg = [25, 50, 75, 100, 125, 150, 200, 300] if not quick else [50, 100, 300]
    secs, warm = (0.5, 0.2) if not quick else (0.2, 0.1)
    local = {k: v[0] for k, v in LOCAL.items()}
    rows = []
    t0 = time.time()
    for case, slots, extra in (("gRPC", 1, {}), ("gRPC", 2, {}), ("shm", 2, local)):
        for j in jpg:
            r = ferrysim.study(params(**dict(over, slots=slots, **extra)), j * gpus, gpus, secs, warm)
            r.update(case=case, slots=slots, jobs_per_gpu=j, scope="slice of 4 GPUs")
            rows.append(r)
    # the study's point, whole
    if not quick:
        r = ferrysim.study(p, 10000, 100, 0.3, 0.2)
        r.update(case="gRPC", slots=p["slots"], jobs_per_gpu=100, scope="10,000 jobs, 100 GPUs")
        rows.append(r)
    print("\nsimulated in %.0f s" % (time.time() - t0))
    print("\n| transport | jobs per GPU | events in flight per job | simulated | gain over CPU inference | "
          "of the ideal's %.0f%% | GPU busy | GPU capacity used | rows per GPU execution |"
          % (100 * p["f"] / (1 - p["f"])))
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %d | %s | %.3f | %.0f%% | %.0f%% | %.0f%% | %.0f |" % (
            r["case"], r["jobs_per_gpu"], r["slots"], r["scope"], r["gain"],
            100 * (r["gain"] - 1) / (r["ideal"] - 1), 100 * r["gpu_util"],
            100 * r["gpu_capacity"], r["rows_per_exec"]))
    with open(os.path.join(out, "scale.csv"), "w") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    if val:
        b = pool_costs(pool_csv)[("haproxy", 1)]
        print("\nvalidation: bench/pool.sh --scale (mlp_wide, batch %s, %s in flight, 2 cores), "
              "measured against predicted from the costs measured with one broker behind "
              "HAProxy: per request %.0f us client, %.0f us HAProxy, %.0f us ferryd besides "
              "the model, %.0f us on the instance thread, then %.0f us of hand-off" %
              (os.environ.get("BATCH", "64"), os.environ.get("CONC", "12"), b["client_us"],
               b["haproxy_us"], broker_us, b["instance_us"], gap))
        print("\n| path | brokers | measured requests/s | predicted | predicted / measured | "
              "busy cores measured | predicted |")
        print("|---|---|---|---|---|---|---|")
        for v in val:
            print("| %s | %d | %.0f +- %.0f | %.0f | %.2f | %.2f | %.2f |" % (
                v["path"], v["brokers"], v["measured"], v["measured_range"], v["predicted"],
                v["predicted"] / v["measured"], v["meas_busy"], v["pred_busy"]))
    plot(rows, val, p)
    return 0


def plot(rows, val, p):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no plots (pip install matplotlib)")
        return
    res = os.path.join(TOP, "bench", "results")
    os.makedirs(res, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for case, slots, style in (("gRPC", 1, "o--"), ("gRPC", 2, "o-"), ("shm", 2, "s-")):
        sel = [r for r in rows if r["slots"] == slots and r["case"] == case
               and r["scope"].startswith("slice")]
        lab = ("remote over gRPC, " + ("waits for each result" if slots == 1 else "2 events in flight")
               if case == "gRPC" else "node-local over shared memory, 2 in flight")
        a.plot([r["jobs_per_gpu"] for r in sel], [r["gain"] for r in sel], style, label=lab)
        if case == "gRPC" and slots == 2:
            b.plot([r["jobs_per_gpu"] for r in sel], [100 * r["gpu_util"] for r in sel], "o-",
                   label="busy (time executing)")
            b.plot([r["jobs_per_gpu"] for r in sel], [100 * r["gpu_capacity"] for r in sel], "s--",
                   label="capacity used (rows against full executions)")
    whole = [r for r in rows if not r["scope"].startswith("slice")]
    for r in whole:
        a.plot([r["jobs_per_gpu"]], [r["gain"]], "k*", ms=12, label="10,000 jobs, 100 GPUs, simulated whole")
        b.plot([r["jobs_per_gpu"]], [100 * r["gpu_util"]], "k*", ms=12)
    a.axhline(1 / (1 - p["f"]), color="grey", ls=":", label="ideal 1/(1-f) = %.2f" % (1 / (1 - p["f"])))
    a.axhline(1.0, color="grey", lw=0.5)
    a.set_xlabel("CPU jobs per T4-class GPU")
    a.set_ylabel("events/s, offloaded / inference in the jobs")
    a.set_title("gain")
    a.legend(fontsize=8)
    b.set_xlabel("CPU jobs per T4-class GPU")
    b.set_ylabel("GPU busy, %")
    b.set_ylim(0, 105)
    b.set_title("GPU utilisation (gRPC, 2 in flight)")
    b.legend(fontsize=8)
    fig.suptitle("scale model: jobs offloading mlp_wide (64 rows, f = %.3f) to T4-class GPUs; "
                 "gRPC: RTT %.0f ms" % (p["f"], p["rtt_us"] / 1000), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(res, "scale.png"), dpi=100)
    plt.close(fig)
    if val:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        xs = range(len(val))
        ax.bar([x - 0.2 for x in xs], [v["measured"] for v in val], 0.4,
               yerr=[v["measured_range"] for v in val], label="measured (bench/pool.sh)")
        ax.bar([x + 0.2 for x in xs], [v["predicted"] for v in val], 0.4,
               label="model (the costs of 1 broker behind HAProxy)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(["%s\n%d broker%s" % ("HAProxy" if v["path"] == "haproxy" else "direct",
                                                 v["brokers"], "s" if v["brokers"] > 1 else "")
                            for v in val])
        ax.set_ylabel("requests/s (64 rows each)")
        ax.set_title("CPU-only pool on 2 cores: model against measurement", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(res, "scale_validation.png"), dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
