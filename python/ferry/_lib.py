# SPDX-License-Identifier: MIT
"""libferry through ctypes: finding the library, its prototypes, its structs.

Why ctypes (and not cffi, nor a compiled module): ctypes ships with
Python, so the package installs anywhere with no compiler and no extra
dependency, and libferry's API is small, stable C (opaque handles, ints,
pointers).  cffi's ABI mode would cost about the same per call.  The hot
path is a handful of calls per request; python/README.md has the
measurements.

Which library is loaded, first found wins:
  1. $FERRY_LIBRARY, a path to libferry.so (alone: an error if it fails);
  2. the build tree named by $FERRY_TOP_BUILDDIR (make check sets it);
  3. the build tree of the checkout this package runs from or was
     installed from (<checkout>/build/libclient/.libs);
  4. the installed libferry.so.0, by its soname through the dynamic
     loader ($LD_LIBRARY_PATH, ld.so.cache);
  5. ctypes.util.find_library("ferry");
  6. pkg-config's libdir of ferry.pc (a `make install` to a prefix the
     loader does not search, with $PKG_CONFIG_PATH naming it).
"""
import ctypes
import ctypes.util
import os
import subprocess

SONAME = "libferry.so.0"

# ctypes' types for libferry's handles: plain void pointers (a Python int
# or None on the Python side).
vp = ctypes.c_void_p
c_int = ctypes.c_int
c_int64 = ctypes.c_int64
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64
c_size_t = ctypes.c_size_t
c_char_p = ctypes.c_char_p
P_int64 = ctypes.POINTER(c_int64)


class Options(ctypes.Structure):
    """ferry_options (ferry.h)."""
    _fields_ = [
        ("struct_size", c_uint32),
        ("queue_depth", c_uint32),
        ("arena_bytes", c_uint64),
        ("wait", c_int),
        ("client_name", c_char_p),
        ("flags", c_uint32),
        # Since 0.2; an older libferry reads struct_size bytes of it only.
        ("max_retries", c_uint32),
        ("reconnect_ms", c_uint64),
    ]


class ModelInfo(ctypes.Structure):
    """ferry_model_info."""
    _fields_ = [
        ("name", c_char_p),
        ("version", c_int64),
        ("state", c_char_p),
        ("reason", c_char_p),
        ("backend", c_char_p),
        ("max_batch_size", c_int),
    ]


class ModelStats(ctypes.Structure):
    """ferry_model_stats."""
    _fields_ = [
        ("name", c_char_p),
        ("version", c_int64),
        ("success", c_uint64), ("failure", c_uint64),
        ("inference_count", c_uint64),
        ("execution_count", c_uint64),
        ("queue_ns", c_uint64), ("compute_input_ns", c_uint64),
        ("compute_infer_ns", c_uint64), ("compute_output_ns", c_uint64),
        ("batch_executions", c_uint64 * 65),
    ]


class ServerStatus(ctypes.Structure):
    """ferry_server_status."""
    _fields_ = [
        ("name", c_char_p),
        ("version", c_char_p),
        ("address", c_char_p),
        ("transport", c_char_p),
        ("uptime_ns", c_int64),
        ("cpu_ns", c_int64),
        ("event_loop", c_char_p),
        ("wait_policy", c_int),
        ("sessions", c_int), ("max_sessions", c_int),
        ("gpus", c_int),
        ("nextensions", c_int),
        ("extensions", ctypes.POINTER(c_char_p)),
    ]


class SessionInfo(ctypes.Structure):
    """ferry_session_info."""
    _fields_ = [
        ("id", c_uint64),
        ("pid", c_uint32), ("uid", c_uint32),
        ("name", c_char_p),
        ("arena_bytes", c_uint64),
        ("depth", c_uint32),
        ("inflight", c_uint32),
        ("completed", c_uint64), ("failed", c_uint64),
    ]


CALLBACK = ctypes.CFUNCTYPE(None, vp, c_int, vp)
LIST_FN = ctypes.CFUNCTYPE(None, vp, ctypes.POINTER(ModelInfo))
STATS_FN = ctypes.CFUNCTYPE(None, vp, ctypes.POINTER(ModelStats))
SESSION_FN = ctypes.CFUNCTYPE(None, vp, ctypes.POINTER(SessionInfo))

# name: (restype, argtypes, may block).  A call that may block (socket
# I/O, waiting for a completion, a lock that may be held across socket
# I/O, as a reconnect holds the transport's) goes through CDLL, which
# releases the GIL; the short ones go through PyDLL, which keeps it and
# saves the release and the re-acquisition (a few hundred ns a call on the
# hot path).  A PyDLL call can never deadlock with a completion callback,
# which needs the GIL: libferry runs callbacks with none of its locks held
# (libclient/client_int.h), so whatever lock such a call waits for is held
# by C code that does not need the GIL.
PROTOS = {
    "ferry_version": (c_char_p, [], False),
    "ferry_strerror": (c_char_p, [c_int], False),
    "ferry_errname": (c_char_p, [c_int], False),
    "ferry_last_error": (c_char_p, [], False),
    "ferry_connect": (c_int, [ctypes.POINTER(vp), c_char_p, ctypes.POINTER(Options)], True),
    "ferry_connect_wait": (c_int, [ctypes.POINTER(vp), c_char_p, ctypes.POINTER(Options),
                                   c_int64], True),
    "ferry_connect_list": (c_int, [ctypes.POINTER(vp), ctypes.POINTER(c_char_p), c_int,
                                   ctypes.POINTER(Options)], True),
    "ferry_close": (None, [vp], True),
    "ferry_client_arena": (c_int, [vp, ctypes.POINTER(vp), ctypes.POINTER(c_size_t)], False),
    "ferry_model_get": (c_int, [vp, c_char_p, c_int64, ctypes.POINTER(vp)], True),
    "ferry_model_list_info": (c_int, [vp, LIST_FN, vp], True),
    "ferry_model_statistics": (c_int, [vp, c_char_p, c_int64, STATS_FN, vp], True),
    "ferry_model_load": (c_int, [vp, c_char_p], True),
    "ferry_model_unload": (c_int, [vp, c_char_p], True),
    "ferry_server_status_get": (c_int, [vp, ctypes.POINTER(ctypes.POINTER(ServerStatus))], True),
    "ferry_server_status_free": (None, [ctypes.POINTER(ServerStatus)], False),
    "ferry_session_list": (c_int, [vp, SESSION_FN, vp], True),
    "ferry_model_name": (c_char_p, [vp], False),
    "ferry_model_version": (c_int64, [vp], False),
    "ferry_model_max_batch_size": (c_int, [vp], False),
    "ferry_model_ninputs": (c_int, [vp], False),
    "ferry_model_noutputs": (c_int, [vp], False),
    "ferry_model_input": (c_int, [vp, c_int, ctypes.POINTER(c_char_p), ctypes.POINTER(c_int),
                                  ctypes.POINTER(P_int64), ctypes.POINTER(c_int)], False),
    "ferry_model_output": (c_int, [vp, c_int, ctypes.POINTER(c_char_p), ctypes.POINTER(c_int),
                                   ctypes.POINTER(P_int64), ctypes.POINTER(c_int)], False),
    "ferry_request_new": (c_int, [vp, ctypes.POINTER(vp)], False),
    # The out-parameters of the calls made per request are plain
    # addresses (vp, given as c_void_p objects): ctypes passes those at
    # half the cost of checking a byref() against a POINTER type.
    "ferry_request_input": (c_int, [vp, c_char_p, c_int, vp, c_int, vp], False),
    "ferry_request_input_bytes": (c_int, [vp, c_char_p, c_int, vp, c_int, c_size_t, vp],
                                  False),
    "ferry_request_want_output": (c_int, [vp, c_char_p, c_size_t], False),
    "ferry_request_set_priority": (c_int, [vp, c_uint32], False),
    "ferry_request_set_timeout_us": (c_int, [vp, c_uint64], False),
    "ferry_request_free": (None, [vp], False),
    "ferry_request_done": (c_int, [vp], False),
    "ferry_request_status": (c_int, [vp], False),
    "ferry_request_output": (c_int, [vp, c_char_p, vp, vp, vp, vp, vp], False),
    "ferry_infer": (c_int, [vp, vp, c_int64], True),
    # Submission may wait for a reconnect (the transport's lock), and a
    # gRPC client packs its tensors into the message there.
    "ferry_infer_async": (c_int, [vp, vp, CALLBACK, vp], True),
    "ferry_flush": (c_int, [vp], False),
    "ferry_poll": (c_int, [vp, c_int, c_int64], True),
    "ferry_request_wait": (c_int, [vp, c_int64], True),
    "ferry_cuda_register": (c_int, [vp, vp, c_size_t, ctypes.POINTER(vp)], True),
    "ferry_cuda_release": (c_int, [vp], True),
    "ferry_request_input_cuda": (c_int, [vp, c_char_p, c_int, vp, c_int, vp, c_size_t], False),
    "ferry_request_output_cuda": (c_int, [vp, c_char_p, vp, c_size_t, c_size_t], False),
}

# Calls a libferry older than this package may lack: their absence only
# disables what needs them (ferry_client_arena: Client.arena();
# ferry_connect_list: Client([address, ...])).
OPTIONAL = {"ferry_client_arena", "ferry_connect_list"}


def _checkout_roots():
    """Source trees this package belongs to: the one it runs from in place
    (python/ferry/ inside a checkout) and the one pip installed it from."""
    here = os.path.dirname(os.path.abspath(__file__))
    roots = [os.path.dirname(os.path.dirname(here))]
    try:
        from . import _origin  # written by setup.py when built from a checkout
        roots.append(_origin.CHECKOUT)
    except ImportError:
        pass
    return [r for r in roots if os.path.isfile(os.path.join(r, "libclient", "libferry.map"))]


def _pkg_config_libdir():
    try:
        out = subprocess.run(["pkg-config", "--variable=libdir", "ferry"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    d = out.stdout.strip()
    if out.returncode != 0 or not d:
        return None
    # A DESTDIR install seen through PKG_CONFIG_SYSROOT_DIR (pkg-config
    # prefixes -L flags with it, not --variable).
    root = os.environ.get("PKG_CONFIG_SYSROOT_DIR")
    if root and not d.startswith(root):
        d = root.rstrip("/") + d
    return d


def candidates():
    """The paths or names to try, in order (see the module's comment)."""
    env = os.environ.get("FERRY_LIBRARY")
    if env:
        return [env]
    out = []
    bd = os.environ.get("FERRY_TOP_BUILDDIR")
    if bd:
        out.append(os.path.join(bd, "libclient", ".libs", SONAME))
    for root in _checkout_roots():
        out.append(os.path.join(root, "build", "libclient", ".libs", SONAME))
    out.append(SONAME)
    found = ctypes.util.find_library("ferry")
    if found:
        out.append(found)
    return out


class _Lib:
    """The loaded library: each prototype as an attribute (ferry_infer ...)."""

    def __init__(self):
        tried = []
        self.path = None
        for cand in candidates():
            if os.sep in cand and not os.path.exists(cand):
                tried.append("%s (not there)" % cand)
                continue
            try:
                cdll = ctypes.CDLL(cand)
            except OSError as e:
                tried.append("%s (%s)" % (cand, e))
                continue
            self.path = cand
            break
        else:
            libdir = None if os.environ.get("FERRY_LIBRARY") else _pkg_config_libdir()
            cand = os.path.join(libdir, SONAME) if libdir else None
            try:
                if not cand:
                    raise OSError("pkg-config does not know ferry")
                cdll = ctypes.CDLL(cand)
                self.path = cand
            except OSError as e:
                tried.append("pkg-config's libdir (%s)" % e)
                raise ImportError(
                    "ferry: cannot load libferry; tried " + "; ".join(tried) +
                    ".  Build ferry (the library is build/libclient/.libs/libferry.so.0), "
                    "`make install` it, or set $FERRY_LIBRARY to its path") from None
        pydll = ctypes.PyDLL(self.path)
        self.missing = set()
        for name, (res, args, blocks) in PROTOS.items():
            try:
                fn = getattr(cdll if blocks else pydll, name)
            except AttributeError:
                if name in OPTIONAL:
                    self.missing.add(name)
                    setattr(self, name, None)
                    continue
                raise ImportError("ferry: %s lacks %s: it is older than this package; "
                                  "rebuild ferry or set $FERRY_LIBRARY" % (self.path, name))
            fn.restype = res
            fn.argtypes = args
            setattr(self, name, fn)


lib = _Lib()
