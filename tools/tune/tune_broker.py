# SPDX-License-Identifier: MIT
"""tune_broker - the running ferryd ferry-tune works with, through the
`ferry` Python package (libferry): model list, metadata, status, and the
repository API (ferry_model_load / ferry_model_unload), which loads a
model directory written into the repository while the broker runs.

Broker.start() starts a private ferryd on the repository when the user
names none; Broker.stop() stops only that one.
"""

import os
import shutil
import signal
import subprocess
import time

import ferry


class BrokerError(RuntimeError):
    pass


class Broker:
    """A connection to a ferryd (a socket path or grpc://host:port)."""

    def __init__(self, address, proc=None, log_path=None):
        self.address = address
        self.proc = proc            # the private ferryd, when we started it
        self.log_path = log_path
        # A small arena: this session only loads, unloads and asks; the
        # load generators open their own.
        self.client = ferry.Client(address, arena_bytes=1 << 20, name="ferry-tune",
                                   connect_timeout=None if proc is None else 15)

    @classmethod
    def start(cls, ferryd, repository, workdir, extra_args=()):
        """Start a private ferryd serving `repository`; its socket and log
        go to `workdir`.  No gRPC, HTTP or metrics port: nothing but this
        process and its children talk to it."""
        sock = os.path.join(workdir, "ferryd.sock")
        log_path = os.path.join(workdir, "ferryd.log")
        argv = [ferryd, "--model-repository", repository, "--socket", sock,
                "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0",
                "--log-level", "warn", "--exit-on-error=false"] + list(extra_args)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                raise BrokerError("ferryd did not start (%s):\n%s" %
                                  (" ".join(argv), _tail(log_path)))
            time.sleep(0.05)
        try:
            return cls(sock, proc, log_path)
        except ferry.Error as e:
            proc.kill()
            proc.wait()
            raise BrokerError("cannot connect to the ferryd started at %s: %s\n%s" %
                              (sock, e, _tail(log_path))) from None

    def stop(self):
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def local(self):
        return not self.address.startswith(("grpc://", "grpcs://"))

    def status(self):
        return self.client.status()

    def info(self, name):
        """ferry_model_info of model `name`'s newest version: a dict with
        state, reason, backend and max_batch_size (None if unknown)."""
        best = None
        for m in self.client.models():
            if m["name"] == name and (best is None or m["version"] > best["version"]):
                best = m
        return best

    def metadata(self, name):
        """(KServe metadata, version, max_batch_size) of model `name`: the
        model's own handle knows max_batch_size over gRPC too, where
        ferry_model_info does not."""
        m = self.client.model(name)
        return m.metadata, m.version, m.max_batch_size

    def load(self, name):
        """Load model directory `name` of the repository; returns the
        seconds it took.  Raises ferry.Error with the broker's reason."""
        t0 = time.monotonic()
        self.client.load_model(name)
        # the broker reports a model that failed to load as UNAVAILABLE
        info = self.info(name)
        if info is None or info["state"] != "READY":
            raise ferry.Error(-1, info["reason"] if info else "model %s not listed" % name)
        return time.monotonic() - t0

    def unload(self, name):
        try:
            self.client.unload_model(name)
        except ferry.Error:
            pass

    def infer(self, name, inputs):
        """One real request: a dict of input arrays -> a dict of outputs."""
        return self.client.model(name).infer(inputs, timeout=30)

    def log_tail(self):
        return _tail(self.log_path) if self.log_path else ""


def _tail(path, n=20):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def gpu_memory_used():
    """Bytes of memory in use on each GPU (nvidia-smi), or None where
    nvidia-smi is not there: a candidate's footprint is the difference
    across its load."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=index,memory.used", "--format=csv,noheader,"
                              "nounits"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                used[int(parts[0])] = int(float(parts[1])) << 20  # MiB
            except ValueError:
                pass
    return used or None
