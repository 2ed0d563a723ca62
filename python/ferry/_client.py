# SPDX-License-Identifier: MIT
"""Client, Model and Request: libferry's session, models and requests.

Memory: a request's input arrays (Request.input) and output arrays
(Request.output) are NumPy views over the session's shared arena, where
the broker reads and writes them: nothing is copied on the way.  They are
valid until the request is released (Request.release, or the end of its
with-block) and change when it is submitted again.  Each view keeps its
request (and so its client) alive, but not its memory: a view used after
release() reads memory that may belong to another request by then, and
after Client.close() memory that is no longer mapped.

Threads: a Client may be shared by threads; a Request belongs to one
thread at a time.  Completions of asynchronous requests are reaped by one
background thread per client, started on the first submit() or
infer_async() and ended after half a second with nothing in flight; it
resolves concurrent.futures futures itself and asyncio ones through their
event loop (call_soon_threadsafe).
"""
import asyncio
import collections
import concurrent.futures
import ctypes
import heapq
import itertools
import struct
import sys
import threading
import time
from collections import namedtuple

import numpy as np

from . import _cuda, _dtypes
from ._errors import CODES, Error, last_error
from ._lib import (CALLBACK, LIST_FN, P_int64, SESSION_FN, STATS_FN, Options,
                   ServerStatus, c_int, c_size_t, lib, vp)

_EPIPE = CODES["FERRY_EPIPE"]
_ETIMEDOUT = CODES["FERRY_ETIMEDOUT"]
_ECANCELED = CODES["FERRY_ECANCELED"]
_ENOENT = CODES["FERRY_ENOENT"]
_EINVAL = CODES["FERRY_EINVAL"]
_DTYPE = CODES["FERRY_DTYPE"]
_EBADMSG = CODES["FERRY_EBADMSG"]
_ENOTSUP = CODES["FERRY_ENOTSUP"]

_BYTES = _dtypes.BYTES
_dtype_cache = _dtypes._cache
# The calls of a request's hot path, bound once.
_request_input = lib.ferry_request_input
_request_output = lib.ferry_request_output

_WAIT = {None: -1, "spin": 0, "hybrid": 1, "block": 2}
_F_LAZY_DOORBELL = 1
_F_NO_RECONNECT = 2

# How long the reaper thread sleeps in libferry at once (it looks at the
# timeouts of asynchronous requests in between), and how long it stays
# with nothing in flight before it ends.
_REAP_SLICE_S = 0.02
_REAPER_LINGER_S = 0.5
# Room given to an output whose size depends on the data (BYTES, variable
# dims) unless want_output() says otherwise: twice the request's input
# bytes, and at least this.
_MIN_UNSIZED_CAPACITY = 64 << 10
# CUDA allocations shared with the broker at once, per client; past it the
# oldest is released (the broker unmaps it once its requests complete).
_MAX_CUDA_REGIONS = 256

TensorSpec = namedtuple("TensorSpec", "name datatype dtype shape")
TensorSpec.__doc__ = """A model's input or output: name, ferry's dtype name
("FP32"), the NumPy dtype, and the shape without the batch dimension
(-1 where it varies)."""


def _ns(timeout):
    """A timeout in seconds (None: forever) as libferry takes it, in ns."""
    return -1 if timeout is None else int(timeout * 1e9)


def _closed():
    return Error(_EPIPE, "the client is closed")


def _array(addr, shape, npdt, readonly, owner):
    """A NumPy array of shape and dtype npdt over the memory at addr.  Its
    base, a ctypes array over the same memory, holds `owner` (the request),
    so the request outlives the array (np.frombuffer over ctypes is about
    twice as fast as an __array_interface__ object)."""
    n = npdt.itemsize
    for d in shape:
        n *= d
    buf = (ctypes.c_char * n).from_address(addr) if n else bytearray(0)
    if n:
        buf.owner = owner
    a = np.frombuffer(buf, npdt).reshape(shape)
    if readonly:
        a.flags.writeable = False
    return a


def _encode_bytes(data):
    """(shape, payload) of a BYTES tensor: each element a 4-byte
    little-endian length and its bytes (ferry's and Triton's layout)."""
    arr = data if isinstance(data, np.ndarray) else np.asarray(data, dtype=object)
    parts = []
    pack = struct.Struct("<I").pack
    for x in arr.flat:
        if isinstance(x, str):
            b = x.encode()
        elif isinstance(x, (bytes, bytearray, memoryview)):
            b = bytes(x)
        else:
            b = str(x).encode()
        parts.append(pack(len(b)))
        parts.append(b)
    return arr.shape, b"".join(parts)


def _decode_bytes(addr, nbytes, shape, decode):
    buf = ctypes.string_at(addr, nbytes) if nbytes else b""
    n = 1
    for d in shape:
        n *= d
    items, off = [], 0
    unpack = struct.Struct("<I").unpack_from
    for _ in range(n):
        if off + 4 > nbytes:
            raise Error(_EBADMSG, "BYTES output: %d of %d elements in %d bytes" %
                        (len(items), n, nbytes))
        (ln,) = unpack(buf, off)
        off += 4
        if off + ln > nbytes:
            raise Error(_EBADMSG, "BYTES output: element %d runs past the end" % len(items))
        b = buf[off:off + ln]
        items.append(b.decode() if decode else b)
        off += ln
    if not shape:
        return items[0]
    arr = np.empty(n, dtype=object)
    arr[:] = items
    return arr.reshape(shape).tolist()


class _Owned:
    """A libferry object ended by _end() (Client.close, Request.release):
    at the end of a with-block, or when Python frees it."""
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._end()

    def __del__(self):
        # At interpreter exit a client's reaper thread may be frozen inside
        # libferry: leave the session to the process's end (the broker
        # sees its socket close) rather than wait for it or pull the client
        # from under it.
        if sys.is_finalizing():
            return
        try:
            self._end()
        except Exception:  # noqa: BLE001 - nothing to tell from a finalizer
            pass


class Client(_Owned):
    """A session with a ferry broker.

    Client() finds the node's broker ($FERRY_SOCKET, else the default
    socket; then $FERRY_SERVER and $FERRY_AUTOSTART, as ferry_connect
    does); Client("/path/to/ferryd.sock") or Client(socket=...) names a
    local one, Client("grpc://host:8001") a remote one (tensors then travel
    in gRPC messages: copies, no arena); a list of addresses, in order of
    preference, fails over from one to the next (ferry_connect_list).

    queue_depth    requests in flight at once (0: libferry's 256)
    arena_bytes    the shared arena (0: the broker's default)
    wait           "spin", "hybrid" or "block" (None: $FERRY_WAIT, else hybrid)
    name           shown in the broker's logs and session list
    lazy_doorbell  submissions wake the broker at the next wait, together
                   (FERRY_F_LAZY_DOORBELL): for many requests in flight
    connect_timeout  seconds to retry until a broker answers (None: once)
    reconnect      when the broker goes away, find it (or the next address)
                   again and send the requests in flight again (libferry's
                   default); False: fail them and every later call with
                   FERRY_EPIPE at once (FERRY_F_NO_RECONNECT)
    max_retries    times one request is sent again (None: $FERRY_RETRIES,
                   else 3)
    reconnect_timeout  seconds a request without a timeout waits for a
                   broker to answer again (None: $FERRY_RECONNECT_MS, else 30)
    """

    def __init__(self, address=None, *, socket=None, queue_depth=0, arena_bytes=0, wait=None,
                 name=None, lazy_doorbell=False, connect_timeout=None, reconnect=True,
                 max_retries=None, reconnect_timeout=None):
        self._c = None
        if address is None:
            address = socket
        self.address = address
        o = Options()
        o.struct_size = ctypes.sizeof(Options)
        o.queue_depth = queue_depth
        o.arena_bytes = arena_bytes
        try:
            o.wait = _WAIT[wait]
        except KeyError:
            raise ValueError("wait: one of 'spin', 'hybrid', 'block' or None") from None
        o.client_name = name.encode() if name else None
        o.flags = (_F_LAZY_DOORBELL if lazy_doorbell else 0) | \
            (0 if reconnect else _F_NO_RECONNECT)
        o.max_retries = max_retries or 0
        o.reconnect_ms = int(reconnect_timeout * 1000) if reconnect_timeout else 0
        out = vp()
        if isinstance(address, (list, tuple)):
            if lib.ferry_connect_list is None:
                raise Error(_ENOTSUP, "libferry %s has no ferry_connect_list" % version())
            eps = (ctypes.c_char_p * len(address))(*(a.encode() for a in address))
            ret = lib.ferry_connect_list(ctypes.byref(out), eps, len(address), ctypes.byref(o))
        elif connect_timeout is None:
            ret = lib.ferry_connect(ctypes.byref(out), address.encode() if address else None,
                                    ctypes.byref(o))
        else:
            ret = lib.ferry_connect_wait(ctypes.byref(out), address.encode() if address else None,
                                         ctypes.byref(o), _ns(connect_timeout))
        if ret:
            raise last_error(ret)
        # Handles are kept as c_void_p objects: ctypes passes those to a
        # void * faster than it converts an int.
        self._c = out
        # Remote (gRPC, named or found through $FERRY_SERVER): no arena.
        if lib.ferry_client_arena is not None:
            base, n = vp(), c_size_t()
            self.remote = lib.ferry_client_arena(self._c, ctypes.byref(base), ctypes.byref(n)) != 0
        else:
            self.remote = isinstance(address, str) and address.startswith(("grpc://", "grpcs://"))
        self._models = {}
        # Asynchronous requests: id -> [request, future, loop, timeout];
        # their completions as the C callback records them; the timeouts.
        self._ids = itertools.count(1)
        self._pending = {}
        self._done = collections.deque()
        self._deadlines = []
        self._dl_lock = threading.Lock()
        self._cv = threading.Condition()
        self._reaper = None
        self._reaper_idle = False
        self._closing = False
        self._cb = CALLBACK(self._on_complete)
        self._regions = collections.OrderedDict()

    # -- session -------------------------------------------------------

    def close(self):
        """End the session.  Requests in flight are abandoned (their
        futures fail with FERRY_ECANCELED); requests and their arrays must
        not be used afterwards."""
        if self._c is None:
            return
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        t = self._reaper
        if t is not None and t is not threading.current_thread():
            t.join()  # within a poll slice (_REAP_SLICE_S)
        for entry in list(self._pending.values()):
            _resolve(entry, None, Error(_ECANCELED, "the client was closed"))
        self._pending.clear()
        for reg in self._regions.values():
            lib.ferry_cuda_release(reg)
        self._regions.clear()
        c, self._c = self._c, None
        lib.ferry_close(c)

    def __repr__(self):
        return "<ferry.Client %s%s>" % (self.address or "(node's broker)",
                                        "" if self._c else " closed")

    _end = close

    @property
    def closed(self):
        return self._c is None

    def arena(self):
        """(address, bytes) of the session's shared arena in this process:
        every input array and output array of its requests lies inside.
        FERRY_ENOTSUP over gRPC."""
        if self._c is None:
            raise _closed()
        if lib.ferry_client_arena is None:
            raise Error(_ENOTSUP, "libferry %s has no ferry_client_arena" % version())
        base, n = vp(), c_size_t()
        ret = lib.ferry_client_arena(self._c, ctypes.byref(base), ctypes.byref(n))
        if ret:
            raise last_error(ret)
        return base.value, n.value

    def flush(self):
        """Wake the broker for requests submitted with lazy_doorbell."""
        if self._c is None:
            raise _closed()
        lib.ferry_flush(self._c)

    # -- models and administration ---------------------------------------

    def model(self, name, version=None):
        """Model `name` at `version` (None: the latest ready one)."""
        if self._c is None:
            raise _closed()
        key = (name, version)
        m = self._models.get(key)
        if m is None:
            out = vp()
            ret = lib.ferry_model_get(self._c, name.encode(), -1 if version is None else version,
                                      ctypes.byref(out))
            if ret:
                raise last_error(ret)
            m = self._models[key] = Model(self, out.value)
        return m

    def models(self):
        """Every model version the broker knows: dicts with name, version,
        state, reason, backend (None: unknown) and max_batch_size."""
        out = []

        def one(_arg, p):
            i = p.contents
            out.append({"name": i.name.decode(), "version": i.version,
                        "state": (i.state or b"").decode(), "reason": (i.reason or b"").decode(),
                        "backend": i.backend.decode() if i.backend else None,
                        "max_batch_size": i.max_batch_size})
        self._admin(lib.ferry_model_list_info, LIST_FN(one), None)
        return out

    def status(self):
        """The broker's status (ferry_server_status) as a dict."""
        if self._c is None:
            raise _closed()
        p = ctypes.POINTER(ServerStatus)()
        ret = lib.ferry_server_status_get(self._c, ctypes.byref(p))
        if ret:
            raise last_error(ret)
        try:
            s = p.contents
            d = {}
            for f, _ in ServerStatus._fields_:
                if f in ("nextensions", "extensions"):
                    continue
                v = getattr(s, f)
                d[f] = v.decode() if isinstance(v, bytes) else v
            d["extensions"] = [s.extensions[i].decode() for i in range(s.nextensions)]
            return d
        finally:
            lib.ferry_server_status_free(p)

    def sessions(self):
        """The broker's client sessions (local broker only)."""
        out = []

        def one(_arg, p):
            s = p.contents
            out.append({"id": s.id, "pid": s.pid, "uid": s.uid,
                        "name": (s.name or b"").decode(), "arena_bytes": s.arena_bytes,
                        "depth": s.depth, "inflight": s.inflight,
                        "completed": s.completed, "failed": s.failed})
        self._admin(lib.ferry_session_list, SESSION_FN(one), None)
        return out

    def load_model(self, name):
        """Load (or reload) model `name` of the broker's repository."""
        self._admin(lib.ferry_model_load, name.encode())
        self._models = {k: v for k, v in self._models.items() if k[0] != name}

    def unload_model(self, name):
        self._admin(lib.ferry_model_unload, name.encode())
        self._models = {k: v for k, v in self._models.items() if k[0] != name}

    def _admin(self, fn, *args):
        if self._c is None:
            raise _closed()
        ret = fn(self._c, *args)
        if ret < 0:
            raise last_error(ret)
        return ret

    # -- inference -----------------------------------------------------

    def infer(self, request, inputs=None, *, outputs=None, timeout=None, version=None):
        """Run a request and wait for it.

        infer(request) runs a Request and returns it.  infer(model,
        inputs) with a model (a Model or its name) and a dict of input
        arrays runs a request of its own and returns the outputs as a dict
        of arrays (copies: that request is released before returning);
        outputs, a list of names, asks for those only."""
        if isinstance(request, Request):
            return request.infer(timeout)
        with self._one_shot(request, inputs, outputs, version) as r:
            r.infer(timeout)
            return r.outputs(copy=True)

    async def infer_async(self, request, inputs=None, *, outputs=None, timeout=None,
                          version=None):
        """The same as infer(), awaited: `await client.infer_async(r)`."""
        if isinstance(request, Request):
            return await request.infer_async(timeout)
        with self._one_shot(request, inputs, outputs, version) as r:
            await r.infer_async(timeout)
            return r.outputs(copy=True)

    def submit(self, request, timeout=None):
        """Submit a Request; a concurrent.futures.Future of it."""
        return request.submit(timeout)

    def _one_shot(self, model, inputs, outputs, version):
        m = model if isinstance(model, Model) else self.model(model, version)
        r = m.request()
        try:
            for k, v in (inputs or {}).items():
                r.set_input(k, v)
            for o in outputs or ():
                r.want_output(o)
        except BaseException:
            r.release()
            raise
        return r

    # -- asynchronous completions --------------------------------------

    def _submit(self, req, fut, loop, timeout):
        if self._c is None:
            raise _closed()
        rid = next(self._ids)
        entry = [req, fut, loop, timeout]
        # Recorded before submitting: the completion may come at once, on
        # another thread.
        self._pending[rid] = entry
        req._inflight = rid
        ret = lib.ferry_infer_async(self._c, req._r, self._cb, rid)
        if ret:
            del self._pending[rid]
            req._inflight = 0
            raise last_error(ret)
        if timeout is not None:
            with self._dl_lock:
                heapq.heappush(self._deadlines, (time.monotonic() + timeout, rid))
        # Read after the entry was added; the reaper sets it before it
        # looks at _pending, so one of the two sees the other.
        if self._reaper is None or self._reaper_idle:
            with self._cv:
                if self._reaper is None:
                    t = threading.Thread(target=self._reap_loop, name="ferry-reaper",
                                         daemon=True)
                    self._reaper = t
                    t.start()
                else:
                    self._cv.notify()

    def _on_complete(self, r, status, rid):
        # libferry's callback, on the thread that reaped the completion,
        # inside a libferry call: record only; the futures are resolved
        # after that call returns (_drain), so that their callbacks may use
        # the client freely.
        msg = None
        if status:
            # Its message, into this thread's ferry_last_error.
            lib.ferry_request_wait(r, 0)
            msg = lib.ferry_last_error()
        self._done.append((rid, status, msg))

    def _drain(self):
        done = self._done
        while done:
            try:
                rid, status, msg = done.popleft()
            except IndexError:
                break
            entry = self._pending.pop(rid, None)
            if entry is None:
                continue
            entry[0]._inflight = 0
            _resolve(entry, entry[0],
                     Error(status, msg.decode(errors="replace") if msg else None)
                     if status else None)

    def _expire(self):
        now = time.monotonic()
        expired = []
        with self._dl_lock:
            dl = self._deadlines
            while dl and dl[0][0] <= now:
                expired.append(heapq.heappop(dl)[1])
            nxt = dl[0][0] - now if dl else None
        for rid in expired:
            entry = self._pending.get(rid)
            if entry is not None:
                # Still in flight: the future fails, the request stays
                # busy until its completion comes (or it is released).
                _resolve(entry, None, Error(_ETIMEDOUT, "no completion within %g s; the "
                                            "request is still in flight" % entry[3]))
        return nxt

    def _reap_loop(self):
        slice_ns = int(_REAP_SLICE_S * 1e9)
        while True:
            with self._cv:
                self._reaper_idle = True
                if not self._pending and not self._closing:
                    self._cv.wait(_REAPER_LINGER_S)
                self._reaper_idle = False
                if self._closing or not self._pending:
                    self._reaper = None
                    return
            wait_ns = slice_ns
            if self._deadlines:
                nxt = self._expire()
                if nxt is not None:
                    wait_ns = max(100000, min(slice_ns, int(nxt * 1e9)))
            n = lib.ferry_poll(self._c, 1, wait_ns)
            if self._done:
                self._drain()
            if n == _EPIPE:
                # The broker is gone: whatever libferry did not complete
                # with FERRY_EPIPE fails the same way.
                msg = lib.ferry_last_error().decode(errors="replace")
                for rid in list(self._pending):
                    entry = self._pending.pop(rid, None)
                    if entry is not None:
                        entry[0]._inflight = 0
                        _resolve(entry, None, Error(_EPIPE, msg))

    # -- CUDA ----------------------------------------------------------

    def _cuda_region(self, ptr):
        """(region, offset) of device pointer ptr: its allocation, shared
        with the broker once (CUDA IPC)."""
        start, size, bid = _cuda.allocation(ptr)
        key = (start, bid)
        reg = self._regions.get(key)
        if reg is None:
            out = vp()
            ret = lib.ferry_cuda_register(self._c, start, size, ctypes.byref(out))
            if ret:
                raise last_error(ret)
            reg = self._regions[key] = out.value
            while len(self._regions) > _MAX_CUDA_REGIONS:
                lib.ferry_cuda_release(self._regions.popitem(last=False)[1])
        else:
            self._regions.move_to_end(key)
        return reg, ptr - start


def _resolve(entry, value, err):
    """Settle an asynchronous request's future (once: a future already done,
    by its timeout or cancelled, stays as it is)."""
    fut, loop = entry[1], entry[2]
    if loop is None:
        if fut.done():
            return
        try:
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result(value)
        except concurrent.futures.InvalidStateError:
            pass
    else:
        try:
            loop.call_soon_threadsafe(_set_async, fut, value, err)
        except RuntimeError:  # the loop was closed: nobody waits any more
            pass


def _set_async(fut, value, err):
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(value)


class Model:
    """A model version of the broker: its metadata, and requests."""

    def __init__(self, client, handle):
        self.client = client
        self._m = handle
        self.name = lib.ferry_model_name(handle).decode()
        self.version = lib.ferry_model_version(handle)
        self.max_batch_size = lib.ferry_model_max_batch_size(handle)
        self.inputs = tuple(self._spec(lib.ferry_model_input, i)
                            for i in range(lib.ferry_model_ninputs(handle)))
        self.outputs = tuple(self._spec(lib.ferry_model_output, i)
                             for i in range(lib.ferry_model_noutputs(handle)))
        # Names as libferry takes them, encoded once.
        self._names = {t.name: t.name.encode() for t in self.inputs + self.outputs}
        # Outputs whose size depends on the data: they need a capacity.
        self._unsized = tuple(t.name for t in self.outputs
                              if t.datatype == "BYTES" or any(d < 0 for d in t.shape))

    def _spec(self, fn, i):
        name, dt, dims, nd = ctypes.c_char_p(), c_int(), P_int64(), c_int()
        ret = fn(self._m, i, ctypes.byref(name), ctypes.byref(dt), ctypes.byref(dims),
                 ctypes.byref(nd))
        if ret:
            raise last_error(ret)
        return TensorSpec(name.value.decode(), _dtypes.NAME[dt.value], _dtypes.NUMPY[dt.value],
                          tuple(dims[k] for k in range(nd.value)))

    def __repr__(self):
        return "<ferry.Model %s version %d>" % (self.name, self.version)

    @property
    def metadata(self):
        """KServe v2's model metadata: name, versions, inputs and outputs
        with name, datatype and shape (batch dimension -1 first where the
        model batches)."""
        b = [-1] if self.max_batch_size > 0 else []

        def t(s):
            return {"name": s.name, "datatype": s.datatype, "shape": b + list(s.shape)}
        return {"name": self.name, "versions": [str(self.version)],
                "inputs": [t(s) for s in self.inputs], "outputs": [t(s) for s in self.outputs]}

    def request(self):
        """A new Request; use it in a with-block, or release() it."""
        return Request(self)

    def infer(self, inputs, *, outputs=None, timeout=None):
        """One request from a dict of input arrays: a dict of output arrays."""
        return self.client.infer(self, inputs, outputs=outputs, timeout=timeout)

    def statistics(self):
        """The broker's statistics of this version: a dict of
        ferry_model_stats' fields."""
        out = []

        def one(_arg, p):
            s = p.contents
            d = {f: getattr(s, f) for f, _ in s._fields_ if f not in ("name", "batch_executions")}
            d["name"] = s.name.decode()
            d["batch_executions"] = {n: v for n, v in enumerate(s.batch_executions) if v}
            out.append(d)
        self.client._admin(lib.ferry_model_statistics, self.name.encode(), self.version,
                           STATS_FN(one), None)
        if not out:
            raise Error(_ENOENT, "no statistics of %s version %d" % (self.name, self.version))
        return out[0]


class Request(_Owned):
    """An inference request of one model: its tensors live in the
    session's shared arena.  Use it in a with-block (or call release()):
    its arrays are valid until then."""

    __slots__ = ("client", "model", "_r", "_inflight", "_in_views", "_out_views", "_dims",
                 "_o_dt", "_o_dims", "_o_nd", "_o_data", "_o_bytes", "_b_args", "_b_data",
                 "_in_bytes", "_wanted", "_sized", "_resize", "_cuda_keep", "_cuda_out",
                 "_queue_timeout",
                 "__weakref__")

    def __init__(self, model):
        c = model.client
        if c._c is None:
            raise _closed()
        self.client = c
        self.model = model
        self._r = None
        self._inflight = 0
        out = vp()
        ret = lib.ferry_request_new(model._m, ctypes.byref(out))
        if ret:
            raise last_error(ret)
        self._r = out
        self._in_views = {}
        self._out_views = {}
        self._dims = (ctypes.c_int64 * 8)()
        # Out-parameters of ferry_request_input / _output, made once and
        # passed by address (_lib.py says why), as c_void_p objects.
        self._o_dt, self._o_dims, self._o_nd = c_int(), P_int64(), c_int()
        self._o_data, self._o_bytes = vp(), c_size_t()
        self._b_data = vp(ctypes.addressof(self._o_data))
        self._b_args = tuple(vp(ctypes.addressof(o)) for o in (
            self._o_dt, self._o_dims, self._o_nd, self._o_data, self._o_bytes, self._dims))
        self._in_bytes = {}
        self._wanted = False
        self._sized = 0
        # Outputs to size again before the next submission (_size_outputs).
        self._resize = bool(model._unsized)
        self._cuda_keep = None
        self._cuda_out = None
        self._queue_timeout = False

    # -- lifetime ------------------------------------------------------

    def release(self):
        """Free the request and its arena memory: its arrays must not be
        used afterwards.  A request in flight is freed when its completion
        comes; its future fails with FERRY_ECANCELED."""
        r, self._r = self._r, None
        if r is None:
            return
        if self._inflight:
            entry = self.client._pending.pop(self._inflight, None)
            self._inflight = 0
            if entry is not None:
                _resolve(entry, None, Error(_ECANCELED, "the request was released in flight"))
        self._in_views.clear()
        self._out_views.clear()
        lib.ferry_request_free(r)
        self._cuda_keep = self._cuda_out = None

    _end = release

    def _handle(self):
        if self._r is None:
            raise Error(_EINVAL, "the request was released")
        if self.client._c is None:
            raise _closed()
        return self._r

    # -- inputs ----------------------------------------------------------

    def _name(self, name):
        try:
            return self.model._names[name]
        except KeyError:
            return name.encode()

    def _set_dims(self, shape):
        dims = self._dims
        nd = len(shape)
        for i in range(min(nd, 8)):
            dims[i] = shape[i]
        return nd

    def input(self, name, dtype, shape):
        """A writable NumPy array of `shape` (the batch dimension included
        where the model batches) over the arena memory of input `name`:
        fill it in place.  Asking again for the same name, dtype and shape
        gives the same memory."""
        r = self._r
        if r is None or self.client._c is None:
            r = self._handle()  # raises
        try:
            dt = _dtype_cache[dtype]
        except (KeyError, TypeError):
            dt = _dtypes.code(dtype)
        if dt == _BYTES:
            raise Error(_DTYPE, "input '%s': BYTES tensors are given with set_input(name, "
                        "list of bytes or str)" % name)
        if type(shape) is not tuple:
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nd = len(shape)
        dims = self._dims
        if nd == 1:
            dims[0] = shape[0]
        elif nd == 2:
            dims[0] = shape[0]
            dims[1] = shape[1]
        else:
            for i in range(min(nd, 8)):
                dims[i] = shape[i]
        ret = _request_input(r, self.model._names.get(name) or name.encode(), dt,
                             self._b_args[5], nd, self._b_data)
        if ret:
            raise last_error(ret)
        addr = self._o_data.value
        v = self._in_views.get(name)
        if v is not None and v[0] == addr and v[1] == shape and v[2] == dt:
            return v[3]
        a = _array(addr, shape, _dtypes.NUMPY[dt], False, self)
        self._in_views[name] = (addr, shape, dt, a)
        if self.model._unsized and self._in_bytes.get(name) != a.nbytes:
            self._in_bytes[name] = a.nbytes
            self._resize = True
        return a

    def set_input(self, name, data, dtype=None):
        """Input `name` from an existing array (copied into the arena), a
        list of bytes or str (BYTES), anything NumPy makes an array of, a
        DLPack tensor, or a CUDA tensor (__cuda_array_interface__ or DLPack
        on a CUDA device: shared with the broker, not copied; it must stay
        unchanged until the request completes).  dtype: ferry's name
        ("FP32") or a NumPy dtype; default: the data's."""
        if not isinstance(data, np.ndarray):
            if _cuda.is_device(data):
                return self._set_cuda_input(name, data, dtype)
            if hasattr(data, "__dlpack__"):
                data = np.from_dlpack(data)
            elif dtype is not None and _dtypes.code(dtype) == _dtypes.BYTES:
                return self._set_bytes(name, data)
            else:
                arr = np.asarray(data, dtype=None if dtype is None
                                 else _dtypes.NUMPY[_dtypes.code(dtype)])
                if arr.dtype.kind in "SUO":
                    return self._set_bytes(name, data)
                data = arr
        dt = _dtypes.code(data.dtype if dtype is None else dtype)
        if dt == _dtypes.BYTES:
            return self._set_bytes(name, data)
        a = self.input(name, dt, data.shape)
        np.copyto(a, data, casting="unsafe" if dtype is not None else "equiv")
        return a

    def _set_bytes(self, name, data):
        r = self._handle()
        shape, payload = _encode_bytes(data)
        nd = self._set_dims(shape)
        ret = lib.ferry_request_input_bytes(r, self._name(name), _dtypes.BYTES, self._b_args[5], nd,
                                            len(payload), self._b_data)
        if ret:
            raise last_error(ret)
        ctypes.memmove(self._o_data.value, payload, len(payload))
        self._in_views.pop(name, None)
        self._in_bytes[name] = len(payload)
        self._resize = bool(self.model._unsized)

    def _set_cuda_input(self, name, obj, dtype):
        r = self._handle()
        t = _cuda.DeviceTensor(obj)
        if dtype is not None and _dtypes.code(dtype) != t.dtype:
            raise Error(_DTYPE, "input '%s': the CUDA tensor is %s, not %s" %
                        (name, _dtypes.NAME[t.dtype], _dtypes.NAME[_dtypes.code(dtype)]))
        reg, off = self.client._cuda_region(t.ptr)
        nd = self._set_dims(t.shape)
        ret = lib.ferry_request_input_cuda(r, self._name(name), t.dtype, self._b_args[5], nd,
                                           reg, off)
        if ret:
            raise last_error(ret)
        if self._cuda_keep is None:
            self._cuda_keep = {}
        self._cuda_keep[name] = t.keep
        self._in_views.pop(name, None)

    # -- outputs ---------------------------------------------------------

    def want_output(self, name, capacity=0):
        """Return output `name` (once called, only the outputs named so are
        returned), with `capacity` bytes of room (0: computed from the
        model; needed for BYTES and variable-size outputs)."""
        ret = lib.ferry_request_want_output(self._handle(), self._name(name), capacity)
        if ret:
            raise last_error(ret)
        self._wanted = True
        if self._cuda_out:
            self._cuda_out.pop(name, None)

    def output_to(self, name, obj):
        """Have the broker write output `name` into a CUDA tensor (a
        contiguous __cuda_array_interface__ or DLPack object of the
        output's size); output(name) then returns obj."""
        r = self._handle()
        t = _cuda.DeviceTensor(obj)
        reg, off = self.client._cuda_region(t.ptr)
        ret = lib.ferry_request_output_cuda(r, self._name(name), reg, off, t.nbytes)
        if ret:
            raise last_error(ret)
        self._wanted = True
        if self._cuda_out is None:
            self._cuda_out = {}
        self._cuda_out[name] = obj

    def _size_outputs(self):
        # Every output, and room for those whose size the model does not
        # fix (see _MIN_UNSIZED_CAPACITY).
        cap = max(_MIN_UNSIZED_CAPACITY, 2 * sum(self._in_bytes.values()))
        if cap == self._sized:
            self._resize = False
            return  # as the last time: libferry keeps it
        r = self._r
        for t in self.model.outputs:
            ret = lib.ferry_request_want_output(r, self.model._names[t.name],
                                                cap if t.name in self.model._unsized else 0)
            if ret:
                raise last_error(ret)
        self._sized = cap
        self._resize = False

    def output(self, name, *, decode=False):
        """Output `name` of the completed request: a read-only NumPy array
        over the arena memory the broker wrote (valid until the request is
        released or submitted again); for BYTES a (nested) list of bytes,
        of str with decode=True; for output_to(), the CUDA tensor."""
        # The hot path of a loop: few attribute look-ups, no helper calls.
        r = self._r
        if r is None or self.client._c is None:
            r = self._handle()  # raises
        nm = self.model._names.get(name) or name.encode()
        a = self._b_args
        ret = _request_output(r, nm, a[0], a[1], a[2], a[3], a[4])
        if ret:
            raise last_error(ret)
        if self._cuda_out is not None and name in self._cuda_out:
            return self._cuda_out[name]
        addr = self._o_data.value
        dt = self._o_dt.value
        dims = self._o_dims[:self._o_nd.value]
        if dt == _BYTES:
            return _decode_bytes(addr, self._o_bytes.value, tuple(dims), decode)
        v = self._out_views.get(name)
        if v is not None and v[0] == addr and v[1] == dims and v[2] == dt:
            return v[3]
        a = _array(addr, tuple(dims), _dtypes.NUMPY[dt], True, self)
        self._out_views[name] = (addr, dims, dt, a)
        return a

    def outputs(self, copy=False):
        """Every output returned, by name: output() of each (copies of the
        arrays with copy=True, which outlive the request)."""
        out = {}
        for t in self.model.outputs:
            try:
                v = self.output(t.name)
            except Error as e:
                if e.errno == _ENOENT:
                    continue  # not asked for
                raise
            out[t.name] = v.copy() if copy and isinstance(v, np.ndarray) else v
        return out

    # -- options ---------------------------------------------------------

    def set_priority(self, priority):
        """The request's priority level (0: the model's default)."""
        lib.ferry_request_set_priority(self._handle(), priority)

    def set_timeout(self, seconds):
        """How long the request may wait in the broker's queue (0: the
        model's default); infer(timeout) sets it too when unset."""
        lib.ferry_request_set_timeout_us(self._handle(), int(seconds * 1e6))
        self._queue_timeout = seconds > 0

    # -- inference -------------------------------------------------------

    def infer(self, timeout=None):
        """Submit the request and wait for it (timeout in seconds, None:
        forever; it also bounds the time in the broker's queue).  Returns
        the request.  FERRY_ETIMEDOUT leaves it in flight: wait() again or
        release it."""
        r = self._handle()
        if self._resize and not self._wanted:
            self._size_outputs()
        return self._waited(lib.ferry_infer(self.client._c, r, _ns(timeout)))

    def wait(self, timeout=None):
        """Wait for a submitted request (after a timeout, say)."""
        return self._waited(lib.ferry_request_wait(self._handle(), _ns(timeout)))

    def _waited(self, ret):
        # After a call that waited: its error (read first: it is this
        # thread's last one), and the completions of other requests that
        # this thread reaped meanwhile settled.
        err = last_error(ret) if ret else None
        if self.client._done:
            self.client._drain()
        if err is not None:
            raise err
        return self

    def done(self):
        """True once the submitted request completed."""
        return bool(lib.ferry_request_done(self._handle()))

    def _start(self, fut, loop, timeout):
        r = self._handle()
        if self._resize and not self._wanted:
            self._size_outputs()
        if timeout is not None and not self._queue_timeout:
            # As ferry_infer does: the wait bounds the time in the queue.
            lib.ferry_request_set_timeout_us(r, max(1, int(timeout * 1e6)))
        self.client._submit(self, fut, loop, timeout)

    def submit(self, timeout=None):
        """Submit and return at once: a concurrent.futures.Future that
        gives the request when it completes, or raises ferry.Error
        (FERRY_ETIMEDOUT after `timeout` seconds, the request still in
        flight)."""
        fut = concurrent.futures.Future()
        self._start(fut, None, timeout)
        return fut

    async def infer_async(self, timeout=None):
        """`await r.infer_async()`: the request, completed."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._start(fut, loop, timeout)
        return await fut


def version():
    """The version of the libferry loaded ("0.1.0")."""
    return lib.ferry_version().decode()


__all__ = ["Client", "Model", "Request", "TensorSpec", "Error", "version"]
