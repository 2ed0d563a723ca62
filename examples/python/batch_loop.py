#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""batch_loop.py - a NumPy batch loop through ferry: push a data set
through a model in batches, writing each batch straight into shared
memory and reading each result in place, with two requests in turn so
that one batch is being filled while the broker runs the other.

    python3 examples/python/batch_loop.py [ADDRESS] [--rows N] [--batch B]

The model is the example repository's "identity" (FP32 [256], batches up
to 64): the loop checks that what comes back is what went in.  ADDRESS:
the broker's socket or grpc://host:port (default: the node's broker).
"""
import argparse
import sys
import time

import numpy as np

import ferry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("address", nargs="?")
    ap.add_argument("--model", default="identity")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()

    with ferry.Client(a.address) as c:
        m = c.model(a.model)
        spec_in, spec_out = m.inputs[0], m.outputs[0]
        width = spec_in.shape[0]
        rng = np.random.default_rng(0)
        data = rng.standard_normal((a.rows, width)).astype(spec_in.dtype)
        result = np.empty_like(data)

        # Two requests and their input arrays, made once: each batch is
        # written into the one that is not in flight.
        reqs = [m.request(), m.request()]
        full = [r.input(spec_in.name, spec_in.dtype, (a.batch, width)) for r in reqs]
        inflight = [None, None]    # (future, first row, rows) per request

        def collect(i):
            fut, lo, n = inflight[i]
            fut.result(timeout=30)
            result[lo:lo + n] = reqs[i].output(spec_out.name)[:n]
            inflight[i] = None

        t0 = time.perf_counter()
        for k, lo in enumerate(range(0, a.rows, a.batch)):
            i = k % 2
            if inflight[i] is not None:
                collect(i)
            n = min(a.batch, a.rows - lo)
            if n == a.batch:
                x = full[i]
            else:       # the last, short batch: a smaller tensor, same memory
                x = reqs[i].input(spec_in.name, spec_in.dtype, (n, width))
            x[:] = data[lo:lo + n]
            inflight[i] = (reqs[i].submit(timeout=30), lo, n)
        for i in (0, 1):
            if inflight[i] is not None:
                collect(i)
        took = time.perf_counter() - t0
        for r in reqs:
            r.release()

    if not np.array_equal(result, data):
        sys.exit("batch_loop.py: error: the results differ from the inputs")
    print("batch_loop: ok; %d rows of %d %s in batches of %d: %.3f s, %.0f rows/s, %.1f MB/s"
          % (a.rows, width, spec_in.datatype, a.batch, took, a.rows / took,
             2 * data.nbytes / took / 1e6))


if __name__ == "__main__":
    try:
        main()
    except ferry.Error as e:
        sys.exit("batch_loop.py: %s" % e)
