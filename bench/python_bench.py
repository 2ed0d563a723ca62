#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""python_bench.py - Python round trips to one ferryd, all in one run.

For an identity model (FP32, dims [-1], no batching: run on the broker's
polling thread, as `ferry-bench latency` does) and a 1 KiB and a 1 MiB
tensor, the p50 and p99 of a synchronous round trip made from Python:

  ferry (shm)            ferry's package over shared memory: copy the data
                         into the request's arena array, infer, read the
                         output array (a view; its first element is read)
  ferry (shm) ctypes     the same through libferry's calls alone (ctypes,
                         none of the package's Python): what the package
                         itself costs is the difference
  ferry (gRPC)           ferry's package to the broker's gRPC endpoint
  tritonclient gRPC      tritonclient.grpc: set_data_from_numpy, infer,
                         as_numpy
  tritonclient gRPC+shm  the same with the input and the output in two
                         registered system shared-memory regions
                         (set_shared_memory_region, get_contents_as_numpy)

The client is pinned to one CPU and ferryd to another (--cpus), each run
is repeated (--repeat) and the table gives the median of the runs' p50s
with their spread (min-max), and the ratio of tritonclient's gRPC p50 to
ferry's (the goal of issue 16: at least 20x at 1 KiB).

    FERRY_TOP_BUILDDIR=build PYTHONPATH=python .venv/bin/python bench/python_bench.py
    [--ferryd PATH] [--cpus 0,1] [--samples N] [--repeat R] [--wait hybrid] [--csv FILE]
"""
import argparse
import ctypes
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "python"))
import ferry  # noqa: E402
from ferry._lib import lib  # noqa: E402

SIZES = [("1 KiB", 1 << 10), ("1 MiB", 1 << 20)]


def find_ferryd(given):
    for p in ([given] if given else []) + [
            os.path.join(os.environ.get("FERRY_TOP_BUILDDIR", os.path.join(TOP, "build")),
                         "broker", "ferryd"),
            shutil.which("ferryd") or ""]:
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("python_bench: no ferryd: build ferry or give --ferryd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Broker:
    def __init__(self, ferryd, cpu, wait):
        self.dir = tempfile.mkdtemp(prefix="ferry-pybench-")
        repo = os.path.join(self.dir, "models")
        os.makedirs(os.path.join(repo, "ident", "1"))
        with open(os.path.join(repo, "ident", "config.pbtxt"), "w") as f:
            f.write('name: "ident" backend: "identity" max_batch_size: 0\n'
                    'input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
                    'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]\n')
        self.sock = os.path.join(self.dir, "ferryd.sock")
        self.port = free_port()
        cmd = [ferryd, "-m", repo, "-s", self.sock, "--grpc-port", str(self.port),
               "--metrics-port", "0", "--allow-client-shm", "--wait", wait,
               "--grpc-max-message-bytes", str(64 << 20), "--log-level", "warn"]
        pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.proc = subprocess.Popen(cmd, preexec_fn=pre)
        deadline = time.time() + 30
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), 0.2)
                s.close()
                if os.path.exists(self.sock):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("python_bench: ferryd did not start")
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(step, n, warm):
    for _ in range(warm):
        step()
    t = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        step()
        t[i] = clock() - t0
    return float(np.percentile(t, 50)), float(np.percentile(t, 99))


def ferry_pkg(c, nbytes):
    src = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)
    r = c.model("ident").request()
    x = r.input("IN", np.float32, src.shape)
    copyto = np.copyto

    def step():
        copyto(x, src)
        r.infer()
        y = r.output("OUT")
        if y[0] != src[0]:
            raise SystemExit("python_bench: wrong result")
    return step, r.release


def ferry_ctypes(c, nbytes):
    """libferry's calls alone: one ctypes call to infer, one for the output."""
    src = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)
    r = c.model("ident").request()
    x = r.input("IN", np.float32, src.shape)
    cc, rr = c._c, r._r
    lib.ferry_request_want_output(rr, b"OUT", nbytes)   # dims [-1]: its size is ours to say
    infer, output = lib.ferry_infer, lib.ferry_request_output
    data = ctypes.c_void_p()
    pdata = ctypes.addressof(data)
    copyto = np.copyto

    def step():
        copyto(x, src)
        if infer(cc, rr, -1) or output(rr, b"OUT", None, None, None, pdata, None):
            raise SystemExit("python_bench: %s" % lib.ferry_last_error())
    return step, r.release


def triton_grpc(tc, nbytes):
    import tritonclient.grpc as tg
    src = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)

    def step():
        i = tg.InferInput("IN", [src.size], "FP32")
        i.set_data_from_numpy(src)
        y = tc.infer("ident", [i]).as_numpy("OUT")
        if y[0] != src[0]:
            raise SystemExit("python_bench: wrong result")
    return step, lambda: None


def triton_shm(tc, nbytes):
    import tritonclient.grpc as tg
    import tritonclient.utils.shared_memory as shm
    src = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)
    tag = "%d_%d" % (os.getpid(), nbytes)
    hi = shm.create_shared_memory_region("in" + tag, "/ferry_pyb_in" + tag, nbytes)
    ho = shm.create_shared_memory_region("out" + tag, "/ferry_pyb_out" + tag, nbytes)
    tc.register_system_shared_memory("in" + tag, "/ferry_pyb_in" + tag, nbytes)
    tc.register_system_shared_memory("out" + tag, "/ferry_pyb_out" + tag, nbytes)
    i = tg.InferInput("IN", [src.size], "FP32")
    i.set_shared_memory("in" + tag, nbytes)
    o = tg.InferRequestedOutput("OUT")
    o.set_shared_memory("out" + tag, nbytes)

    def step():
        shm.set_shared_memory_region(hi, [src])
        tc.infer("ident", [i], outputs=[o])
        y = shm.get_contents_as_numpy(ho, np.float32, [src.size])
        if y[0] != src[0]:
            raise SystemExit("python_bench: wrong result")

    def done():
        tc.unregister_system_shared_memory("in" + tag)
        tc.unregister_system_shared_memory("out" + tag)
        shm.destroy_shared_memory_region(hi)
        shm.destroy_shared_memory_region(ho)
    return step, done


def main():
    ap = argparse.ArgumentParser(description="Python round trips to one ferryd")
    ap.add_argument("--ferryd")
    ap.add_argument("--cpus", default="0,1", help="client CPU,ferryd CPU ('' : no pinning)")
    ap.add_argument("--samples", type=int, default=20000,
                    help="ferry's samples at 1 KiB (gRPC rows and 1 MiB: a tenth)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--wait", default="hybrid", help="ferryd's and the client's wait policy")
    ap.add_argument("--no-triton", action="store_true")
    ap.add_argument("--csv")
    a = ap.parse_args()

    cpus = [int(x) for x in a.cpus.split(",")] if a.cpus else [None, None]
    if cpus[0] is not None:
        os.sched_setaffinity(0, {cpus[0]})
    b = Broker(find_ferryd(a.ferryd), cpus[1], a.wait)
    print("# %s, python %s, numpy %s, libferry %s (%s), load average %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), platform.python_version(),
        np.__version__, ferry.version(), ferry.library_path,
        " ".join("%.2f" % x for x in os.getloadavg())))
    print("# client on CPU %s, ferryd on CPU %s, wait %s, %d runs" % (
        cpus[0], cpus[1], a.wait, a.repeat))
    rows = []
    try:
        c = ferry.Client(b.sock, wait=a.wait, arena_bytes=16 << 20)
        cg = ferry.Client("grpc://127.0.0.1:%d" % b.port)
        tc = None
        if not a.no_triton:
            try:
                import tritonclient.grpc as tg
                tc = tg.InferenceServerClient("127.0.0.1:%d" % b.port)
            except ImportError:
                print("# tritonclient not installed: its rows are left out")
        modes = [("ferry (shm)", lambda n: ferry_pkg(c, n), 1),
                 ("ferry (shm) ctypes calls only", lambda n: ferry_ctypes(c, n), 1),
                 ("ferry (gRPC)", lambda n: ferry_pkg(cg, n), 10)]
        if tc is not None:
            modes += [("tritonclient gRPC", lambda n: triton_grpc(tc, n), 10),
                      ("tritonclient gRPC + system shm", lambda n: triton_shm(tc, n), 10)]
        for label, nbytes in SIZES:
            for name, make, div in modes:
                n = max(200, a.samples // div // (10 if nbytes > 4096 else 1))
                p50s, p99s = [], []
                for _ in range(a.repeat):
                    step, done = make(nbytes)
                    try:
                        p50, p99 = timed(step, n, max(50, n // 10))
                    finally:
                        done()
                    p50s.append(p50)
                    p99s.append(p99)
                rows.append((name, label, n, p50s, p99s))
        cg.close()
        c.close()
        if tc is not None:
            tc.close()
    finally:
        b.stop()

    med = {(r[0], r[1]): statistics.median(r[3]) for r in rows}
    print()
    print("| what | size | samples x runs | p50 us (median of runs) | p50 spread us | "
          "p99 us (median) | tritonclient gRPC p50 / this |")
    print("|---|---|---|---|---|---|---|")
    for name, label, n, p50s, p99s in rows:
        base = med.get(("tritonclient gRPC", label))
        print("| %s | %s | %d x %d | %.1f | %.1f-%.1f | %.1f | %s |" % (
            name, label, n, len(p50s), statistics.median(p50s) / 1e3, min(p50s) / 1e3,
            max(p50s) / 1e3, statistics.median(p99s) / 1e3,
            "%.1fx" % (base / statistics.median(p50s)) if base else "-"))
    base = med.get(("tritonclient gRPC", "1 KiB"))
    if base:
        ratio = base / med[("ferry (shm)", "1 KiB")]
        worst = min(base / r[3][i] for r in rows for i in range(len(r[3]))
                    if r[0] == "ferry (shm)" and r[1] == "1 KiB")
        print("\n1 KiB: tritonclient over gRPC / ferry over shm, p50: %.1fx (the least of the "
              "runs: %.1fx); goal >= 20x: %s" % (ratio, worst, "met" if ratio >= 20 else "NOT met"))
    print("# load average at the end %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    if a.csv:
        new = not os.path.exists(a.csv)
        with open(a.csv, "a") as f:
            if new:
                f.write("what,size,samples,run,p50_ns,p99_ns\n")
            for name, label, n, p50s, p99s in rows:
                for i, (p50, p99) in enumerate(zip(p50s, p99s)):
                    f.write("%s,%s,%d,%d,%.0f,%.0f\n" % (name, label, n, i, p50, p99))


if __name__ == "__main__":
    main()
