# SPDX-License-Identifier: MIT
"""ferry's data types (include/ferry/dtype.h) and NumPy's.

Each ferry dtype has one NumPy dtype: BYTES is NumPy's object (elements
are bytes or str), BF16 is ml_dtypes.bfloat16 where ml_dtypes is
installed and otherwise uint16 holding the raw bits.  Every buffer is
little-endian, as on the machines ferry runs on.
"""
import numpy as np

try:  # optional: NumPy has no bfloat16 of its own
    import ml_dtypes
    _BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    _BF16 = np.dtype("<u2")

# ferry's number (Triton's model_config DataType), name, NumPy dtype
TABLE = [
    (1, "BOOL", np.dtype(np.bool_)),
    (2, "UINT8", np.dtype("<u1")),
    (3, "UINT16", np.dtype("<u2")),
    (4, "UINT32", np.dtype("<u4")),
    (5, "UINT64", np.dtype("<u8")),
    (6, "INT8", np.dtype("<i1")),
    (7, "INT16", np.dtype("<i2")),
    (8, "INT32", np.dtype("<i4")),
    (9, "INT64", np.dtype("<i8")),
    (10, "FP16", np.dtype("<f2")),
    (11, "FP32", np.dtype("<f4")),
    (12, "FP64", np.dtype("<f8")),
    (13, "BYTES", np.dtype(object)),
    (14, "BF16", _BF16),
]
BYTES = 13
BF16 = 14

NAME = {code: name for code, name, _ in TABLE}
NUMPY = {code: dt for code, _, dt in TABLE}
_BY_NAME = {name: code for code, name, _ in TABLE}
_BY_NAME.update({"TYPE_" + name: code for code, name, _ in TABLE})
_BY_NAME["TYPE_STRING"] = BYTES
_BY_NUMPY = {}
for _code, _name, _dt in TABLE:
    if _code != BF16 or _BF16 != np.dtype("<u2"):
        _BY_NUMPY.setdefault(_dt, _code)
_BY_NUMPY[np.dtype("S")] = BYTES
_BY_NUMPY[np.dtype("U")] = BYTES

# What code() has resolved, by the object it was given (a type, a dtype,
# a name): the hot path asks the same few again and again.
_cache = {}


def code(dtype):
    """ferry's dtype number for a NumPy dtype or type, a ferry name
    ("FP32", "TYPE_FP32", "BYTES") or a number; ValueError if none."""
    try:
        return _cache[dtype]
    except (KeyError, TypeError):
        pass
    c = _resolve(dtype)
    try:
        _cache[dtype] = c
    except TypeError:
        pass
    return c


def _resolve(dtype):
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        if dtype in NAME:
            return dtype
        raise ValueError("ferry has no dtype %d" % dtype)
    if isinstance(dtype, str) and dtype.upper() in _BY_NAME:
        return _BY_NAME[dtype.upper()]
    if dtype in (bytes, str):
        return BYTES
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError("not a dtype: %r" % (dtype,)) from None
    if dt.kind in "SUO":
        return BYTES
    c = _BY_NUMPY.get(dt.newbyteorder("<") if dt.byteorder == ">" else dt)
    if c is None:
        raise ValueError("ferry has no dtype for NumPy's %s" % dt)
    return c
