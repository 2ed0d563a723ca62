# SPDX-License-Identifier: MIT
"""tune_search - which candidates ferry-tune measures.

quick (the default): coordinate descent with early stopping, in the spirit
of Model Analyzer's quick search, once per backend variant.  The backend
changes what the other coordinates are worth (a model run inline on the
polling thread wants other batching than one handed to instance threads),
so each available variant starts from the config the repository serves
now (the default, measured first) with the variant swapped in, and
descends on its own; the best of all wins.  Each pass of a descent visits
the other coordinates in tune_space.DIMS order:

  * an ordinal coordinate (instances, max_batch_size, delay, threads,
    GPU set): a line search from the current value, one step at a time in
    one direction while each step beats the best so far by more than
    --min-gain, then the other direction if the first step up did not; the
    first step that does not gain ends the line (early stopping);
  * preferred batch size (none / max): both.

The point moves to the best candidate of a coordinate when it beats the
current one by more than --min-gain (measurement noise must not move it);
passes repeat until one moves nothing; the whole search stops when the
budget of candidates or time runs out.  A variant whose first candidate does not load (an
execution provider that is not there, an operator the native executor
lacks) is dropped from the space.

exhaustive: every candidate of the space, for small spaces and for
measuring how close quick comes (--compare-exhaustive runs quick first,
then the rest of the space, reusing quick's measurements).
"""

import time

from . import tune_space as sp
from .tune_measure import FAILED, better, gain


class Budget(Exception):
    """The budget of candidates or of time is spent."""


class Search:
    """evaluate(cand) -> result dict (status, score, ...): measures one
    candidate.  Results are cached by the candidate's key."""

    def __init__(self, space, evaluate, min_gain=0.05, max_candidates=None, deadline=None,
                 log=None):
        self.space = space
        self.evaluate = evaluate
        self.min_gain = min_gain
        self.max_candidates = max_candidates
        self.deadline = deadline
        self.log = log or (lambda *a: None)
        self.results = {}        # key -> result
        self.order = []          # keys in the order measured
        self.tried_variants = set()
        self.trace = []          # (candidate number, key of the current point)

    def measure(self, cand):
        cand = self.space.normalize(cand)
        k = sp.key(cand)
        if k in self.results:
            return self.results[k]
        if cand["variant"] in self.space.unavailable:
            return {"cand": cand, "status": "skipped", "score": FAILED}
        if self.max_candidates is not None and len(self.order) >= self.max_candidates:
            raise Budget("%d candidates measured" % len(self.order))
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Budget("time limit reached")
        first = cand["variant"] not in self.tried_variants
        self.tried_variants.add(cand["variant"])
        r = self.evaluate(cand)
        r["cand"] = cand
        self.results[k] = r
        self.order.append(k)
        if first and r["status"] == "load-failed":
            self.space.unavailable[cand["variant"]] = r.get("reason", "")
            self.log("  variant %s is not available here: %s" % (cand["variant"],
                                                                 r.get("reason", "")))
        return r

    def best(self, keys=None):
        keys = self.order if keys is None else keys
        rs = [self.results[k] for k in keys if k in self.results]
        return max(rs, key=lambda r: r["score"]) if rs else None

    # -- quick: coordinate descent --------------------------------------

    def _line(self, cur, dim):
        """The best candidate along ordinal `dim` from `cur` (a result)."""
        vals = self.space.options(dim, cur["cand"])
        here = cur["cand"][dim]
        if here not in vals:
            return cur
        i0 = vals.index(here)
        best = cur
        for step in (+1, -1):
            j = i0 + step
            moved = False
            while 0 <= j < len(vals):
                r = self.measure(dict(cur["cand"], **{dim: vals[j]}))
                if not better(r["score"], best["score"], self.min_gain):
                    break           # early stop: this step did not gain
                best, moved = r, True
                j += step
            if moved:
                break               # improving upwards: no need to look down
        return best

    def _every(self, cur, dim):
        best = cur
        for v in self.space.options(dim, cur["cand"]):
            if v == cur["cand"][dim]:
                continue
            r = self.measure(dict(cur["cand"], **{dim: v}))
            if better(r["score"], best["score"], self.min_gain):
                best = r
        return best

    def _descend(self, cur, max_passes):
        """Coordinate descent over every coordinate but the variant, from
        result `cur`; returns where it stopped."""
        for npass in range(max_passes):
            moved = False
            for dim in sp.DIMS[1:]:
                if not sp.applies(dim, cur["cand"]) or \
                        len(self.space.options(dim, cur["cand"])) < 2:
                    continue
                nxt = self._line(cur, dim) if dim in sp.ORDINAL else self._every(cur, dim)
                if nxt is not cur and better(nxt["score"], cur["score"], self.min_gain):
                    self.log("  %s, pass %d, %s: move to %s (%.2fx)" %
                             (cur["cand"]["variant"], npass + 1, dim, sp.label(nxt["cand"]),
                              gain(nxt["score"], cur["score"])))
                    cur, moved = nxt, True
                    self.trace.append((len(self.order), sp.key(cur["cand"])))
            if not moved:
                break
        return cur

    def quick(self, start, max_passes=4):
        """For each backend variant, the start's coordinates with that
        variant and a coordinate descent from there; returns the best
        result measured."""
        first = self.measure(start)
        try:
            variants = [start["variant"]] + [v for v in self.space.options("variant", start)
                                             if v != start["variant"]]
            for v in variants:
                if v in self.space.unavailable:
                    continue
                r = first if v == start["variant"] else self.measure(dict(start, variant=v))
                if r["score"][0] < 0:
                    continue        # did not load or failed: nothing to descend from
                self._descend(r, max_passes)
        except Budget as e:
            self.log("  search stopped: %s" % e)
        return self.best()

    # -- exhaustive ------------------------------------------------------

    def exhaustive(self):
        try:
            for c in self.space.all_points():
                self.measure(c)
        except Budget as e:
            self.log("  exhaustive search stopped: %s" % e)
        return self.best()
