# SPDX-License-Identifier: MIT
"""Fixtures of the ferry package's tests: a real ferryd from the build tree
($FERRY_TOP_BUILDDIR, else build/) on a model repository made here, and
one line per test for scripts/test-summary.sh ("PASS: name", "FAIL: name:
why", "SKIP: name: reason") at the end of the run."""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

# make check gives them as $(abs_top_srcdir), which may read "build/..".
TOP = os.path.realpath(os.environ.get("FERRY_TOP_SRCDIR",
                                      os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.path.realpath(os.environ.get("FERRY_TOP_BUILDDIR", os.path.join(TOP, "build")))

# ferry's fixed-size dtypes (dtype.h): one identity model each, id_<NAME>,
# dims [2, 3] and batching, as tests/integ/test_local.c has them.
FIXED_DTYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64", "BF16"]


def ident_cfg(name, ctype, dims, max_batch=4, extra=""):
    return ('name: "%s" backend: "identity" max_batch_size: %d\n'
            'input [ { name: "IN" data_type: %s dims: %s } ]\n'
            'output [ { name: "OUT" data_type: %s dims: %s } ]\n%s'
            % (name, max_batch, ctype, dims, ctype, dims, extra))


def write_model(repo, name, text):
    os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(text)


def make_repo(repo):
    shutil.copytree(os.path.join(TOP, "examples", "models"), repo)
    for dt in FIXED_DTYPES:
        write_model(repo, "id_" + dt, ident_cfg("id_" + dt, "TYPE_" + dt, "[ 2, 3 ]"))
    write_model(repo, "id_BYTES", ident_cfg("id_BYTES", "TYPE_STRING", "[ -1 ]"))
    # Any size, no batching: run by the broker's polling thread.
    write_model(repo, "ident_any", ident_cfg("ident_any", "TYPE_FP32", "[ -1 ]", 0))
    # One request waits 3 s in the queue for a batch of 8: in flight long
    # enough to time out, or to lose its broker.
    write_model(repo, "slow", ident_cfg(
        "slow", "TYPE_FP32", "[ 4 ]", 8,
        "dynamic_batching { max_queue_delay_microseconds: 3000000 preferred_batch_size: [ 8 ] }\n"))
    # Runs when 64 requests are queued together (or after 20 s): one
    # execution of batch 64 proves 64 were in flight at once.
    write_model(repo, "batch64", ident_cfg(
        "batch64", "TYPE_FP32", "[ 4 ]", 64,
        "dynamic_batching { max_queue_delay_microseconds: 20000000 "
        "preferred_batch_size: [ 64 ] }\n"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _die_with_parent():
    # ferryd ends with the test process, even when it is killed.
    libc = ctypes.CDLL(None)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Broker:
    """A ferryd of the build tree: .sock (its socket), .url (host:port of
    its gRPC endpoint), .proc, .dir."""

    def __init__(self, grpc=True, models=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="ferry-py-")
        self.repo = os.path.join(self.dir, "models")
        make_repo(self.repo)
        if models:
            models(self.repo)
        self.sock = os.path.join(self.dir, "ferryd.sock")
        self.log_path = os.path.join(self.dir, "ferryd.log")
        self.port = free_port() if grpc else 0
        self.url = "127.0.0.1:%d" % self.port
        ferryd = os.path.join(BUILD, "broker", "ferryd")
        if not os.access(ferryd, os.X_OK):
            pytest.exit("no ferryd at %s: build ferry first (FERRY_TOP_BUILDDIR)" % ferryd, 1)
        self.log = open(self.log_path, "w")
        self.cmd = [ferryd, "-m", self.repo, "-s", self.sock, "--grpc-port", str(self.port),
                    "--metrics-port", "0", "--log-level", "warn", *args]
        self.start()

    def start(self):
        """Start ferryd (again, after it died: the same socket and models)."""
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError("ferryd exited: " + self.read_log())
            if time.monotonic() > deadline:
                raise RuntimeError("ferryd did not listen in 30 s: " + self.read_log())
            time.sleep(0.02)

    def _listening(self):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.sock)
        except OSError:
            return False
        finally:
            s.close()
        if not self.port:
            return True
        t = socket.socket()
        try:
            t.connect(("127.0.0.1", self.port))
            return True
        except OSError:
            return False
        finally:
            t.close()

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def broker():
    b = Broker()
    yield b
    b.stop()


@pytest.fixture
def client(broker):
    import ferry
    with ferry.Client(broker.sock) as c:
        yield c


# -- one line per test for scripts/test-summary.sh -------------------------

_outcome = {}


def pytest_runtest_logreport(report):
    prev = _outcome.get(report.nodeid)
    if report.failed:
        why = report.longrepr.reprcrash.message if hasattr(report.longrepr, "reprcrash") \
            and report.longrepr.reprcrash else str(report.longrepr).splitlines()[-1:]
        _outcome[report.nodeid] = ("FAIL", "%s %s" % (report.when, why))
    elif report.skipped and prev is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "skipped"
        _outcome[report.nodeid] = ("SKIP", reason.replace("Skipped: ", "", 1))
    elif report.passed and report.when == "call" and prev is None:
        _outcome[report.nodeid] = ("PASS", None)


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.section("ferry: one line per test")
    for nodeid, (what, why) in _outcome.items():
        line = "%s: python/tests/%s" % (what, nodeid.split("tests/", 1)[-1])
        if why:
            line += ": " + " ".join(str(why).split())[:300]
        tr.write_line(line)
