#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""simple.py - what Triton's "simple" client example does, through ferry's
Python package: send two vectors of 16 INT32 to the "simple" model
(add_sub), print the sum and the difference and check them; then the same
64 times at once under asyncio, and the latency of a thousand more.

    python3 examples/python/simple.py [ADDRESS]

ADDRESS: the broker's socket or grpc://host:port (default: $FERRY_SOCKET
or the node's broker).  Needs the package (pip install ./python) or
PYTHONPATH=python from a checkout.
"""
import asyncio
import sys
import time

import numpy as np

import ferry


async def many(m, n):
    """n requests in flight at once; each result checked."""
    async def one(k):
        with m.request() as r:
            r.set_input("INPUT0", np.full((1, 16), k, np.int32))
            r.set_input("INPUT1", np.arange(16, dtype=np.int32).reshape(1, 16))
            await r.infer_async(timeout=10.0)
            return bool((r.output("OUTPUT0") == k + np.arange(16)).all())
    return all(await asyncio.gather(*(one(k) for k in range(n))))


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else None
    with ferry.Client(address) as c:
        m = c.model("simple")
        with m.request() as r:
            in0 = r.input("INPUT0", np.int32, (1, 16))    # shared memory: fill in place
            in0[:] = np.arange(16)
            in1 = r.set_input("INPUT1", np.ones((1, 16), np.int32))   # copied in
            r.infer(timeout=5.0)
            out0, out1 = r.output("OUTPUT0"), r.output("OUTPUT1")
            for a, b, s, d in zip(in0[0], in1[0], out0[0], out1[0]):
                print("%d + %d = %d" % (a, b, s))
                print("%d - %d = %d" % (a, b, d))
                if s != a + b or d != a - b:
                    sys.exit("simple.py: error: incorrect result")

            if not asyncio.run(many(m, 64)):
                sys.exit("simple.py: error: incorrect result under asyncio")

            # The same request again and again: its arrays stay where they are.
            lat = []
            for k in range(1000):
                t0 = time.perf_counter_ns()
                in0[0, 0] = k
                r.infer(timeout=5.0)
                y = r.output("OUTPUT0")
                lat.append(time.perf_counter_ns() - t0)
                if y[0, 0] != k + 1:
                    sys.exit("simple.py: error: incorrect result")
            lat.sort()
            print("simple: ok; 64 at once under asyncio; 1000 more requests: p50 %.1f us, "
                  "p99 %.1f us" % (lat[500] / 1e3, lat[990] / 1e3))


if __name__ == "__main__":
    try:
        main()
    except ferry.Error as e:
        sys.exit("simple.py: %s" % e)
