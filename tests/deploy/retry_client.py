#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A client that retries: tritonclient.grpc with gRPC's own retry policy.

    retry_client.py URL SECONDS [THREADS] [--no-retry]

bench/pool.sh runs it against the proxy in front of the pool while it
kills a broker.  THREADS threads (default 4) share one InferenceServerClient
(one gRPC channel) and send synchronous `identity` requests (FP32 [1, 256],
fresh random values each) for SECONDS; every output is compared with its
input.  The channel carries a service config whose retryPolicy resends a
call that ends with UNAVAILABLE, what a proxy answers when the broker it
chose died under the request (HTTP 502/503 map to UNAVAILABLE), up to 5
attempts with backoff from 10 ms: what any gRPC client can be told to do,
with no code of its own.  --no-retry leaves the policy out.

Once every thread has had its first answer it prints "retry_client:
sending" on stderr (bench/pool.sh waits for it before it kills a broker).
Last line:  retry_client requests N ok N failed N wrong N
Exit status 0 only when every request came back right.
"""
import json
import sys
import threading
import time

import numpy as np
import tritonclient.grpc as grpcclient

RETRY = {
    "methodConfig": [{
        "name": [{"service": "inference.GRPCInferenceService"}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.01s",
            "maxBackoff": "0.2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    retry = "--no-retry" not in sys.argv
    if len(args) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    url = args[0].removeprefix("grpc://")
    seconds = float(args[1])
    threads = int(args[2]) if len(args) > 2 else 4
    chan = [("grpc.enable_retries", 1 if retry else 0)]
    if retry:
        chan.append(("grpc.service_config", json.dumps(RETRY)))
    client = grpcclient.InferenceServerClient(url, channel_args=chan)
    counts = {"requests": 0, "ok": 0, "failed": 0, "wrong": 0}
    lock = threading.Lock()
    errors = []
    end = time.monotonic() + seconds

    started = threading.Barrier(threads, action=lambda: print(
        "retry_client: sending", file=sys.stderr, flush=True))

    def run(seed):
        rng = np.random.default_rng(seed)
        first = True
        while time.monotonic() < end:
            x = rng.standard_normal((1, 256), dtype=np.float32)
            inp = grpcclient.InferInput("INPUT0", [1, 256], "FP32")
            inp.set_data_from_numpy(x)
            key = "ok"
            try:
                res = client.infer("identity", [inp], client_timeout=30)
                if not np.array_equal(res.as_numpy("OUTPUT0"), x):
                    key = "wrong"
            except Exception as e:          # an InferenceServerException
                key = "failed"
                if len(errors) < 3:
                    errors.append(str(e).splitlines()[0])
            with lock:
                counts["requests"] += 1
                counts[key] += 1
            if first:       # every thread has had an answer: say so once
                first = False
                try:
                    started.wait(timeout=max(0.0, end - time.monotonic()))
                except threading.BrokenBarrierError:
                    pass

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    client.close()
    for e in errors:
        print("retry_client: " + e, file=sys.stderr)
    print("retry_client " + " ".join("%s %d" % kv for kv in counts.items()))
    return 0 if counts["ok"] == counts["requests"] and counts["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
