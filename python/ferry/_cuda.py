# SPDX-License-Identifier: MIT
"""CUDA tensors: objects with __cuda_array_interface__ (CuPy, PyTorch,
Numba) or DLPack (__dlpack__ on a CUDA device) as request inputs and
outputs, through libferry's CUDA IPC regions (ferry_cuda_register).

CUDA IPC shares whole allocations, and frameworks hand out pointers into
pooled ones, so the allocation around a tensor is found with the CUDA
driver (cuPointerGetAttribute: its start, size and buffer id), shared once
per client, and the tensor named by its offset there.  The driver is
loaded only when a CUDA tensor is first used: CPU-only jobs never need it.
"""
import ctypes

import numpy as np

from . import _dtypes
from ._errors import CODES, Error

# cuPointerGetAttribute's attributes (cuda.h, CUpointer_attribute)
_ATTR_MEMORY_TYPE = 2
_ATTR_BUFFER_ID = 7
_ATTR_RANGE_START = 11
_ATTR_RANGE_SIZE = 12
_MEMORYTYPE_DEVICE = 2
_KDLCUDA = 2          # DLPack's device type of CUDA memory
_CU_STREAM_LEGACY = 1  # the legacy default stream's handle (and DLPack's name for it)

_driver = None


def _cu():
    """The CUDA driver, initialised; ferry.Error FERRY_UNAVAILABLE without one."""
    global _driver
    if _driver is None:
        try:
            d = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            raise Error(CODES["FERRY_UNAVAILABLE"],
                        "CUDA tensors need the CUDA driver (libcuda.so.1): %s" % e) from None
        d.cuInit.argtypes = [ctypes.c_uint]
        d.cuPointerGetAttribute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
        d.cuStreamSynchronize.argtypes = [ctypes.c_void_p]
        rc = d.cuInit(0)
        if rc != 0:
            raise Error(CODES["FERRY_UNAVAILABLE"],
                        "the CUDA driver finds no usable device (cuInit: error %d)" % rc)
        _driver = d
    return _driver


def _attr(d, attr, ptr, ctype):
    v = ctype()
    rc = d.cuPointerGetAttribute(ctypes.byref(v), attr, ptr)
    if rc != 0:
        raise Error(CODES["FERRY_EINVAL"],
                    "0x%x is not CUDA device memory (cuPointerGetAttribute: error %d)" % (ptr, rc))
    return v.value


def allocation(ptr):
    """(start, size, buffer id) of the device allocation holding ptr."""
    d = _cu()
    if _attr(d, _ATTR_MEMORY_TYPE, ptr, ctypes.c_uint) != _MEMORYTYPE_DEVICE:
        raise Error(CODES["FERRY_EINVAL"], "0x%x is not CUDA device memory" % ptr)
    return (_attr(d, _ATTR_RANGE_START, ptr, ctypes.c_uint64),
            _attr(d, _ATTR_RANGE_SIZE, ptr, ctypes.c_size_t),
            _attr(d, _ATTR_BUFFER_ID, ptr, ctypes.c_uint64))


def is_device(obj):
    """True for an object whose memory is on a CUDA device."""
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None or isinstance(obj, np.ndarray):
        return False
    try:
        return dev()[0] == _KDLCUDA
    except Exception:  # noqa: BLE001 - not ours to judge: not a CUDA tensor
        return False


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_capsule_ptr = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_ptr.restype = ctypes.c_void_p
_capsule_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
# DLPack's type codes: int, uint, float, bfloat, bool
_DL_KIND = {0: "i", 1: "u", 2: "f", 4: "bf", 6: "b"}


def dlpack_tensor(capsule):
    """(pointer, shape, strides or None, NumPy dtype or "BF16", device type)
    of a "dltensor" capsule.  The capsule stays the owner: keep it alive
    while the memory is used (its destructor frees the tensor)."""
    p = _capsule_ptr(capsule, b"dltensor")
    t = _DLTensor.from_address(p)  # DLManagedTensor starts with its DLTensor
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = tuple(t.strides[i] for i in range(t.ndim)) if t.strides else None
    kind = _DL_KIND.get(t.dtype.code)
    if kind is None or t.dtype.lanes != 1:
        raise Error(CODES["FERRY_DTYPE"], "DLPack dtype code %d x%d lanes has no ferry dtype"
                    % (t.dtype.code, t.dtype.lanes))
    if kind == "bf":
        dt = "BF16"
    elif kind == "b":
        dt = np.dtype(np.bool_)
    else:
        dt = np.dtype("<%s%d" % (kind, t.dtype.bits // 8))
    return (t.data or 0) + t.byte_offset, shape, strides, dt, t.device.device_type


def _contiguous(shape, strides, itemsize):
    if strides is None:
        return True
    want = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != want:
            return False
        want *= n
    return True


class DeviceTensor:
    """What a request needs of a CUDA tensor: its device pointer, shape,
    ferry dtype and bytes; `keep` holds what must outlive its use."""
    __slots__ = ("ptr", "shape", "dtype", "nbytes", "keep")

    def __init__(self, obj):
        cai = getattr(obj, "__cuda_array_interface__", None)
        if cai is not None:
            ptr = cai["data"][0]
            shape = tuple(cai["shape"])
            dt = np.dtype(cai["typestr"])
            strides = cai.get("strides")
            itemsize = dt.itemsize
            stream = cai.get("stream")
            if stream:
                # v3: the producer's work on that stream must be done
                # before the broker, another process, reads the memory.
                _cu().cuStreamSynchronize(stream)
            self.keep = obj
        else:
            cap = obj.__dlpack__(stream=_CU_STREAM_LEGACY)
            ptr, shape, strides, dt, dev = dlpack_tensor(cap)
            if dev != _KDLCUDA:
                raise Error(CODES["FERRY_EINVAL"], "the DLPack tensor is not in CUDA memory "
                            "(device type %d)" % dev)
            # The producer ordered its work before the legacy stream's:
            # wait for that stream, as the broker reads from another process.
            _cu().cuStreamSynchronize(_CU_STREAM_LEGACY)
            itemsize = 2 if dt == "BF16" else dt.itemsize
            strides = tuple(s * itemsize for s in strides) if strides else None
            self.keep = (obj, cap)
        if not _contiguous(shape, strides, itemsize):
            raise Error(CODES["FERRY_EINVAL"], "CUDA tensors must be C-contiguous")
        self.ptr = ptr
        self.shape = shape
        self.dtype = _dtypes.BF16 if dt == "BF16" else _dtypes.code(dt)
        n = itemsize
        for d in shape:
            n *= d
        self.nbytes = n
