# SPDX-License-Identifier: MIT
"""tune_report - what ferry-tune leaves in its output directory.

  config.pbtxt        the recommended config, named as the model
  measurements.csv    one row per measurement: each concurrency level of
                      each candidate (and each jobs run), the confirmation
                      runs too, with the candidate's coordinates, the
                      client-side latencies, ferryd's breakdown, the load
                      average when it ran, and why a candidate failed
  pareto.png          throughput against p99 latency of every measurement,
                      the Pareto front, the default and the chosen point
                      (jobs: the jobs' events/s ratio against their wait)
  search.png          each candidate's score in the order measured, and
                      the best so far
  report.html         one page: the choice, the confirmation, both plots
                      and the table of every candidate
  summary.json        the same facts for programs (the tests read it)
"""

import csv
import html
import json
import os

from . import tune_space as sp
from .tune_measure import JOBS_FIELDS, LEVEL_FIELDS

CSV_HEAD = ("phase", "candidate", "model_name", "label", "variant", "backend", "kind", "gpus",
            "instances", "max_batch_size", "delay_us", "preferred", "threads", "status",
            "reason", "load_s", "gpu_mem_bytes", "loadavg", "stalls") + LEVEL_FIELDS + \
    JOBS_FIELDS + ("score_class", "score")


def _cand_cols(r):
    c = r["cand"]
    v = sp.VARIANTS[c["variant"]]
    return {"candidate": r.get("n", ""), "model_name": r.get("name", ""), "label": sp.label(c),
            "variant": c["variant"], "backend": v["backend"], "kind": v["kind"],
            "gpus": " ".join(map(str, c["gpus"])) if c["gpus"] is not None else "",
            "instances": c["instances"], "max_batch_size": c["max_batch_size"],
            "delay_us": c["delay_us"], "preferred": c["preferred"],
            "threads": "" if c["threads"] is None else c["threads"],
            "status": r["status"], "reason": r.get("reason", ""),
            "load_s": "%.3f" % r["load_s"] if r.get("load_s") is not None else "",
            "gpu_mem_bytes": r.get("gpu_mem_bytes", ""), "loadavg": r.get("loadavg", ""),
            "stalls": " ".join("c=%d" % c for c in r.get("stalls") or ()),
            "score_class": r["score"][0], "score": "%.6g" % r["score"][1]}


def write_csv(path, results):
    """results: (phase, result) pairs in the order measured."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_HEAD, extrasaction="ignore")
        w.writeheader()
        for phase, r in results:
            base = dict(_cand_cols(r), phase=phase)
            if r.get("jobs"):
                w.writerow(dict(base, **r["jobs"]))
            elif r.get("levels"):
                for lv in r["levels"]:
                    w.writerow(dict(base, **lv))
            else:
                w.writerow(base)


def pareto_front(points):
    """The points (p99, throughput) no other point beats on both: sorted
    by p99."""
    front, best = [], -1.0
    for p99, thr in sorted(points, key=lambda p: (p[0], -p[1])):
        if thr > best:
            front.append((p99, thr))
            best = thr
    return front


def plots(outdir, results, objective, chosen, default, budget_us):
    """Draw pareto.png and search.png; returns their names, or [] with
    the reason where matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return [], "matplotlib is not installed (%s): no plots" % e
    names = []
    ok = [r for r in results if r["status"] == "ok"]
    colours = {}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]

    def colour(v):
        return colours.setdefault(v, palette[len(colours) % len(palette)])

    fig, ax = plt.subplots(figsize=(8, 5.5))
    if objective == "jobs":
        for r in ok:
            j = r["jobs"]
            ax.scatter(j["jobs_infer_us"], j["jobs_ratio"], color=colour(r["cand"]["variant"]),
                       label=r["cand"]["variant"], s=22, alpha=0.8)
        for r, mark, name in ((default, "s", "default"), (chosen, "*", "chosen")):
            if r and r.get("jobs"):
                ax.scatter(r["jobs"]["jobs_infer_us"], r["jobs"]["jobs_ratio"], marker=mark,
                           s=220, facecolor="none", edgecolor="black", linewidth=1.5,
                           label=name + ": " + sp.label(r["cand"]))
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("inference wait per event in the jobs (us)")
        ax.set_ylabel("jobs' events/s, broker-shm / direct")
        ax.set_title("CPU jobs saturating the cores: every candidate")
    else:
        pts = []
        for r in ok:
            xs = [lv["p99_us"] for lv in r["levels"] if lv["infer_per_s"] > 0]
            ys = [lv["infer_per_s"] for lv in r["levels"] if lv["infer_per_s"] > 0]
            pts += list(zip(xs, ys))
            ax.plot(xs, ys, "-o", color=colour(r["cand"]["variant"]), markersize=3,
                    linewidth=0.6, alpha=0.6, label=r["cand"]["variant"])
        front = pareto_front(pts)
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black",
                    linewidth=1.2, label="Pareto front")
        for r, mark, name in ((default, "s", "default"), (chosen, "*", "chosen")):
            lv = r and r.get("best_level")
            if lv:
                ax.scatter(lv["p99_us"], lv["infer_per_s"], marker=mark, s=220,
                           facecolor="none", edgecolor="black", linewidth=1.5, zorder=5,
                           label="%s: %s (c=%d)" % (name, sp.label(r["cand"]),
                                                    lv["concurrency"]))
        if budget_us:
            ax.axvline(budget_us, color="red", linestyle="--", linewidth=1,
                       label="p99 budget %g us" % budget_us)
        ax.set_xscale("log")
        ax.set_xlabel("p99 latency (us, client side)")
        ax.set_ylabel("throughput (inferences/s)")
        ax.set_title("Every candidate over the concurrency sweep")
    h, lab = ax.get_legend_handles_labels()
    seen = {}
    for hh, ll in zip(h, lab):
        seen.setdefault(ll, hh)
    ax.legend(seen.values(), seen.keys(), fontsize=7, loc="best", markerscale=0.5)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "pareto.png"), dpi=110)
    plt.close(fig)
    names.append("pareto.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    measured = [r for r in results if r["status"] in ("ok", "load-failed", "error",
                                                      "over-gpu-memory")]
    xs = list(range(len(measured)))
    ys = [_plot_value(r, objective) for r in measured]
    ax.bar(xs, ys, color=[colour(r["cand"]["variant"]) for r in measured])
    run, best = [], None
    for y in ys:
        best = y if best is None or (y is not None and y > best) else best
        run.append(best)
    ax.plot(xs, run, color="black", linewidth=1, label="best so far")
    ax.set_xlabel("candidate, in the order measured")
    ax.set_ylabel({"throughput": "infer/s within budget", "latency": "1e6 / p99 us",
                   "jobs": "jobs' ratio to direct"}[objective])
    ax.set_title("The search")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "search.png"), dpi=110)
    plt.close(fig)
    names.append("search.png")
    return names, None


def _plot_value(r, objective):
    cls, v = r["score"]
    if cls < 1:
        return 0.0
    if objective == "latency":
        return 1e6 / -v if v < 0 else 0.0
    return v


def write_html(path, s, results, pngs, note):
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>ferry-tune %s</title>"
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
           "padding:2px 6px;text-align:right}td.l{text-align:left}pre{background:#f4f4f4;"
           "padding:8px}.chosen{background:#dfd}.default{background:#eef}</style></head><body>"
           % e(s["model"])]
    out.append("<h1>ferry-tune: %s</h1>" % e(s["model"]))
    out.append("<p>Objective <b>%s</b>%s; search <b>%s</b> (%s); %d candidates measured in "
               "%.0f s; broker %s; loadavg %s at the start, %s at the end, on %d CPUs.</p>" % (
                   e(s["objective"]),
                   ", p99 budget %g us" % s["budget_us"] if s["budget_us"] else "",
                   e(s["search"]), e(s["search_what"]), s["measured"], s["seconds"],
                   e(s["broker"]), e(s["loadavg_start"]), e(s["loadavg_end"]), s["cpus"]))
    out.append("<h2>Choice</h2><p>Default: %s, score %s.<br>Chosen: %s, score %s.</p>" % (
        e(s["default"]["label"]), e(s["default"]["score_text"]), e(s["chosen"]["label"]),
        e(s["chosen"]["score_text"])))
    if s.get("confirm"):
        c = s["confirm"]
        out.append("<p>Confirmation (default and chosen measured again, alternately, %d "
                   "times each): median %s against %s: <b>%.2fx</b>. %s</p>" % (
                       c["rounds"], e(c["chosen_text"]), e(c["default_text"]), c["ratio"],
                       e(c["verdict"])))
    if s.get("exhaustive"):
        x = s["exhaustive"]
        out.append("<h2>Quick search against the whole space</h2><p>The space has %d "
                   "candidates; quick search measured %d.  Its choice scores %s, the best of "
                   "the whole space %s (%s): quick reaches <b>%.1f%%</b> of it, and its "
                   "choice ranks %d of %d.</p>" % (
                       x["space"], x["quick_measured"], e(x["quick_text"]), e(x["best_text"]),
                       e(x["best_label"]), 100 * x["fraction"], x["rank"], x["space"]))
        if x.get("confirmed_ratio"):
            out.append("<p>The two measured again, alternately: %s; quick reaches <b>%.1f%%"
                       "</b> of the space's best.</p>" % (e(x["confirmed_text"]),
                                                         100 / x["confirmed_ratio"]))
    if note:
        out.append("<p><i>%s</i></p>" % e(note))
    out.append("<h2>Recommended config.pbtxt</h2><pre>%s</pre>" % e(s["config"]))
    for p in pngs:
        out.append("<p><img src='%s' style='max-width:100%%'></p>" % e(p))
    out.append("<h2>Every candidate</h2><table><tr><th>#</th><th>candidate</th>"
               "<th>status</th><th>score</th><th>best level</th><th>infer/s</th>"
               "<th>p99 us</th><th>queue us</th><th>infer us</th><th>rows/exec</th>"
               "<th>load s</th></tr>")
    for phase, r in results:
        if phase != "search":
            continue
        lv = r.get("best_level") or {}
        j = r.get("jobs") or {}
        cls = "chosen" if r["label"] == s["chosen"]["label"] else \
            "default" if r["label"] == s["default"]["label"] else ""
        out.append("<tr class='%s'><td>%s</td><td class='l'>%s</td><td class='l'>%s</td>"
                   "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td>%s</td><td>%s</td></tr>" % (
                       cls, r.get("n", ""), e(r["label"]),
                       e(r["status"] + (": " + r["reason"] if r.get("reason") else "")),
                       e(r["score_text"]),
                       "c=%d" % lv["concurrency"] if lv else ("jobs" if j else ""),
                       "%.0f" % lv["infer_per_s"] if lv else
                       ("%.0f ev/s" % j["jobs_events_s"] if j else ""),
                       "%.1f" % lv["p99_us"] if lv else "",
                       "%.1f" % lv["queue_us"] if lv else "",
                       "%.1f" % lv["compute_infer_us"] if lv else
                       ("%.1f" % j["jobs_infer_us"] if j else ""),
                       "%.1f" % lv["rows_per_exec"] if lv else "",
                       "%.2f" % r["load_s"] if r.get("load_s") is not None else ""))
    out.append("</table><p>Measurements: <a href='measurements.csv'>measurements.csv</a>."
               "</p></body></html>\n")
    with open(path, "w") as f:
        f.write("\n".join(out))


def write_json(path, s):
    with open(path, "w") as f:
        json.dump(s, f, indent=1, default=str)
        f.write("\n")
