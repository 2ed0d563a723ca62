#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Plots of ferry's benchmark CSVs (written by scripts/bench-all.sh).

    plot.py DIR

Reads DIR/load.csv and DIR/load-rate.csv (ferry-bench-load),
DIR/latency.csv (ferry-bench latency), DIR/saturate.csv
(ferry-bench-saturate) and DIR/grpc.csv (ferry-grpc-bench) where present
and writes next to them:
  load_throughput.png  inferences/s against concurrency, per transport
  load_latency.png     p50 / p90 / p95 / p99 against concurrency, per transport
  load_rate.png        achieved against offered request rate, and p99, per
                       transport
  latency.png          p50 / p99 round trip per transport and floor, per
                       payload (ferry-bench latency)
  grpc_latency.png     p50 / p99 round trip per transport (ferry-grpc-bench)
  saturate.png         events/s per saturate mode, mean and range
  saturate_cases.png   bench/saturate.sh's cases (DIR/CASE.csv): each broker
                       mode's ratio to direct, runs as dots, goals as marks
"""
import csv
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def xport_order(r):
    """shm, grpc, grpc-shm first (the same colour in every plot), then the rest"""
    known = ["shm", "grpc", "grpc-shm"]
    ts = {x["transport"] for x in r}
    return [t for t in known if t in ts] + sorted(ts - set(known))


def load_plots(d):
    p = os.path.join(d, "load.csv")
    if not os.path.exists(p):
        return
    r = rows(p)
    key = "concurrency" if "concurrency" in r[0] else "request_rate"
    xports = xport_order(r)
    fig, ax = plt.subplots(figsize=(6, 4))
    for t in xports:
        s = [x for x in r if x["transport"] == t]
        ax.plot([float(x[key]) for x in s], [float(x["infer_per_s"]) for x in s],
                "o-", label=t)
    ax.set_xlabel(key)
    ax.set_ylabel("inferences / s")
    ax.set_yscale("log")
    ax.set_title("ferry-bench-load: MLP, batch 1, async clients")
    ax.grid(alpha=.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(d, "load_throughput.png"), dpi=110)

    fig, axs = plt.subplots(1, len(xports), figsize=(5 * len(xports), 4),
                            sharey=True, squeeze=False)
    for ax, t in zip(axs[0], xports):
        s = [x for x in r if x["transport"] == t]
        xs = [float(x[key]) for x in s]
        for q in ("p50", "p90", "p95", "p99"):
            ax.plot(xs, [float(x[q + "_us"]) for x in s], "o-", label=q)
        ax.set_title(t)
        ax.set_xlabel(key)
        ax.set_yscale("log")
        ax.grid(alpha=.3)
    axs[0][0].set_ylabel("client latency (us)")
    axs[0][0].legend()
    fig.suptitle("ferry-bench-load: latency percentiles per transport")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "load_latency.png"), dpi=110)


def rate_plot(d):
    p = os.path.join(d, "load-rate.csv")
    if not os.path.exists(p):
        return
    r = rows(p)
    xports = xport_order(r)
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    hi = max(float(x["request_rate"]) for x in r)
    axs[0].plot([0, hi], [0, hi], "k:", lw=1, label="offered")
    for t in xports:
        s = [x for x in r if x["transport"] == t]
        xs = [float(x["request_rate"]) for x in s]
        axs[0].plot(xs, [float(x["infer_per_s"]) for x in s], "o-", label=t)
        axs[1].plot(xs, [float(x["p99_us"]) for x in s], "o-", label=t)
    axs[0].set_xlabel("offered requests / s")
    axs[0].set_ylabel("achieved inferences / s")
    axs[1].set_xlabel("offered requests / s")
    axs[1].set_ylabel("p99 client latency (us)")
    axs[1].set_yscale("log")
    for ax in axs:
        ax.grid(alpha=.3)
        ax.legend()
    fig.suptitle("ferry-bench-load --request-rate-range: MLP, batch 1")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "load_rate.png"), dpi=110)


def latency_plot(d):
    """ferry-bench latency's CSV rows: latency,what,policy,bytes,p50,p90,p99,ratio"""
    p = os.path.join(d, "latency.csv")
    if not os.path.exists(p):
        return
    with open(p) as f:
        r = [x for x in csv.reader(f) if x and x[0] == "latency"]
    if not r:
        return
    sizes = sorted({int(x[3]) for x in r if int(x[3]) >= 1024})
    fig, axs = plt.subplots(1, len(sizes), figsize=(7 * len(sizes), 5), squeeze=False)
    for ax, b in zip(axs[0], sizes):
        # the rows of this payload, and the small-message floors
        s = [x for x in r if int(x[3]) == b or int(x[3]) < 1024]
        labels = [(x[1].replace(" round trip", "").replace(" (identity)", "")
                   .replace(" (floor)", "") + ("" if x[2] == "-" else " " + x[2]))
                  for x in s]
        ys = range(len(s))
        floor = ["floor" in x[1] or "memcpy" in x[1] or "echo" in x[1] for x in s]
        ax.barh([i - .2 for i in ys], [float(x[4]) / 1e3 for x in s], .4, label="p50",
                color=["0.6" if f else "C0" for f in floor])
        ax.barh([i + .2 for i in ys], [float(x[6]) / 1e3 for x in s], .4, label="p99",
                color=["0.8" if f else "C1" for f in floor])
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("round trip (us)")
        ax.set_title("identity, %s (grey: floors)" %
                     ("%d KiB" % (b // 1024) if b < (1 << 20) else "%d MiB" % (b >> 20)))
        ax.grid(alpha=.3, axis="x")
        ax.legend(handles=[Patch(color="C0", label="p50"), Patch(color="C1", label="p99")],
                  loc="lower right")
    fig.suptitle("ferry-bench latency: one request in flight, client and ferryd pinned")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "latency.png"), dpi=110)


def grpc_plot(d):
    p = os.path.join(d, "grpc.csv")
    if not os.path.exists(p):
        return
    r = rows(p)
    if not r or "bytes" not in r[0]:
        return  # bench/saturate.sh's grpc case, not ferry-grpc-bench's
    sizes = sorted({int(x["bytes"]) for x in r})
    modes = list(dict.fromkeys(x["mode"] for x in r))
    fig, axs = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for ax, b in zip(axs[0], sizes):
        s = {x["mode"]: x for x in r if int(x["bytes"]) == b}
        xs = range(len(modes))
        ax.bar([i - .2 for i in xs], [float(s[m]["p50_ns"]) / 1e3 for m in modes], .4,
               label="p50")
        ax.bar([i + .2 for i in xs], [float(s[m]["p99_ns"]) / 1e3 for m in modes], .4,
               label="p99")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(modes)
        ax.set_yscale("log")
        ax.set_title("identity, %d KiB" % (b // 1024))
        ax.set_ylabel("round trip (us)")
        ax.grid(alpha=.3, axis="y")
    axs[0][0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(d, "grpc_latency.png"), dpi=110)


def saturate_plot(d):
    p = os.path.join(d, "saturate.csv")
    if not os.path.exists(p):
        return
    r = rows(p)
    means = [x for x in r if x["kind"] == "mean"]
    runs = [x for x in r if x["kind"] == "run"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = [x["mode"] for x in means]
    for i, m in enumerate(means):
        ev = [float(x["events_s"]) for x in runs if x["mode"] == m["mode"]]
        ax.bar(i, float(m["events_s"]), .6, color="C%d" % i, alpha=.7)
        ax.plot([i] * len(ev), ev, "k.", ms=6)
        ax.text(i, float(m["events_s"]) * 1.02, "%.3f" % float(m["ratio"]),
                ha="center", va="bottom")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel("events / s (all jobs)")
    ax.set_title("ferry-bench-saturate: bars = mean, dots = runs,\n"
                 "labels = ratio to direct")
    ax.grid(alpha=.3, axis="y")
    ax.set_ylim(0, max(float(x["events_s"]) for x in runs) * 1.15)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "saturate.png"), dpi=110)


# issue 14's goals, by bench/saturate.sh case
SATURATE_GOALS = {"async": 1.0, "async-ort": 1.0, "async-ort-batch": 1.0, "sync": .95, "sync-ort": .95,
                  "rows": 1.2, "grpc": .9, "idle": .99}


def saturate_cases_plot(d):
    cases = [c for c in ("async", "async-before", "sync", "sync-before", "async-ort",
                         "async-ort-batch", "sync-ort", "rows", "grpc", "idle")
             if os.path.exists(os.path.join(d, c + ".csv"))]
    if not cases:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, c in enumerate(cases):
        r = rows(os.path.join(d, c + ".csv"))
        mean = [x for x in r if x["kind"] == "mean" and x["mode"] != "direct"]
        if not mean:
            continue
        mode = mean[0]["mode"]
        direct = {x["rep"]: float(x["events_s"]) for x in r
                  if x["kind"] == "run" and x["mode"] == "direct"}
        ratios = [float(x["events_s"]) / direct[x["rep"]] for x in r
                  if x["kind"] == "run" and x["mode"] == mode and direct.get(x["rep"])]
        before = c.endswith("-before")
        ax.bar(i, float(mean[0]["ratio"]), .6, color="C7" if before else "C0", alpha=.7)
        ax.plot([i] * len(ratios), ratios, "k.", ms=6)
        ax.text(i, float(mean[0]["ratio"]) + .03, "%.2f" % float(mean[0]["ratio"]),
                ha="center", va="bottom", fontsize=8)
        g = SATURATE_GOALS.get(c)
        if g:
            ax.plot([i - .35, i + .35], [g, g], "r-", lw=2)
    ax.axhline(1, color="k", lw=.6)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=20)
    ax.set_ylabel("jobs' events/s, ratio to direct")
    ax.set_title("bench/saturate.sh: bars = mean ratio, dots = repetitions, red = goal,\n"
                 "grey = the ferryd before the pollers (81f6f39)")
    ax.grid(alpha=.3, axis="y")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "saturate_cases.png"), dpi=110)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "bench/out"
    load_plots(d)
    rate_plot(d)
    latency_plot(d)
    grpc_plot(d)
    saturate_plot(d)
    saturate_cases_plot(d)


if __name__ == "__main__":
    main()
