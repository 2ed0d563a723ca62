# SPDX-License-Identifier: MIT
"""CUDA tensors.  Everywhere: how objects are recognised (the CUDA array
interface, DLPack), DLPack capsules read correctly, and clear errors
where there is no GPU.  With a GPU (ferryd reports one and the CUDA
runtime finds a device): device memory given as an input and an output of
an ONNX model on a KIND_GPU instance, through CUDA IPC, checked against
NumPy; skipped with the reason elsewhere."""
import ctypes
import os

import numpy as np
import pytest

import ferry
from ferry import _cuda

from conftest import Broker, write_model


class HostDLPack:
    """A host tensor known only through DLPack (as a framework's CPU
    tensor would be)."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, stream=None):
        return self.a.__dlpack__()

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


class FakeCudaDLPack(HostDLPack):
    """Says it is on a CUDA device, but its capsule says otherwise."""

    def __dlpack_device__(self):
        return (2, 0)


class CudaArray:
    """Memory at ptr with the CUDA array interface (what CuPy and PyTorch
    expose)."""

    def __init__(self, ptr, shape, dtype):
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": tuple(shape),
                                         "typestr": np.dtype(dtype).str, "strides": None,
                                         "version": 3}


def test_dlpack_capsule_is_read_right():
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)[1]
    ptr, shape, strides, dt, dev = _cuda.dlpack_tensor(a.__dlpack__())
    assert ptr == a.__array_interface__["data"][0]
    assert shape == (3, 4) and dt == np.int16 and dev == 1   # kDLCPU
    assert strides in (None, (4, 1))


def test_device_objects_are_recognised():
    assert _cuda.is_device(CudaArray(0x1000, (4,), np.float32))
    assert _cuda.is_device(FakeCudaDLPack(np.zeros(3)))
    assert not _cuda.is_device(HostDLPack(np.zeros(3)))
    assert not _cuda.is_device(np.zeros(3))
    assert not _cuda.is_device([1, 2, 3])


def test_host_dlpack_tensor_is_copied_in(client):
    with client.model("id_INT64").request() as r:
        r.set_input("IN", HostDLPack(np.arange(6, dtype=np.int64).reshape(1, 2, 3)))
        r.infer(timeout=10)
        np.testing.assert_array_equal(r.output("OUT"), np.arange(6).reshape(1, 2, 3))


def test_dlpack_claiming_cuda_with_host_memory_is_einval(client):
    with client.model("id_FP32").request() as r:
        with pytest.raises(ferry.Error) as e:
            r.set_input("IN", FakeCudaDLPack(np.zeros((1, 2, 3), np.float32)))
        assert e.value.code == "FERRY_EINVAL" and "not in CUDA memory" in e.value.message


def test_host_pointer_as_cuda_array_is_a_clear_error(client):
    # Host memory posing as device memory: without a CUDA driver,
    # FERRY_UNAVAILABLE; with one, the driver says it is not device memory.
    host = np.zeros((1, 2, 3), np.float32)
    fake = CudaArray(host.__array_interface__["data"][0], host.shape, host.dtype)
    with client.model("id_FP32").request() as r:
        with pytest.raises(ferry.Error) as e:
            r.set_input("IN", fake)
        assert e.value.code in ("FERRY_UNAVAILABLE", "FERRY_EINVAL"), e.value
        with pytest.raises(ferry.Error) as e2:
            r.output_to("OUT", fake)
        assert e2.value.code == e.value.code


# -- with a GPU ---------------------------------------------------------------

def cudart():
    """The CUDA runtime and a device, or the reason there is none."""
    for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12"):
        try:
            rt = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return None, "no CUDA runtime (libcudart.so)"
    n = ctypes.c_int()
    if rt.cudaGetDeviceCount(ctypes.byref(n)) != 0 or n.value == 0:
        return None, "no GPU: the CUDA runtime finds no device"
    rt.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
    rt.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    rt.cudaFree.argtypes = [ctypes.c_void_p]
    return rt, None


def relu_model(repo):
    """relu: y = max(x, 0) over [N, 16] float32, on a KIND_GPU instance."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    write_model(repo, "relu_gpu",
                'name: "relu_gpu"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 64\n'
                'input [ { name: "x" data_type: TYPE_FP32 dims: [ 16 ] } ]\n'
                'output [ { name: "y" data_type: TYPE_FP32 dims: [ 16 ] } ]\n'
                'instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]\n')
    onnx.save(m, os.path.join(repo, "relu_gpu", "1", "model.onnx"))


def test_cuda_ipc_input_and_output(client):
    if client.status()["gpus"] <= 0:
        pytest.skip("no GPU: ferryd sees no CUDA device")
    rt, why = cudart()
    if rt is None:
        pytest.skip(why)
    b = Broker(grpc=False, models=relu_model, args=("--exit-on-error=false",))
    buf = ctypes.c_void_p()
    try:
        with ferry.Client(b.sock) as c:
            assert rt.cudaMalloc(ctypes.byref(buf), 1 << 20) == 0
            x = np.linspace(-4, 4, 8 * 16, dtype=np.float32).reshape(8, 16)
            assert rt.cudaMemcpy(buf, x.ctypes.data, x.nbytes, 1) == 0      # host to device
            # Input at the start of the allocation, output 64 KiB in: one
            # region, two offsets.
            xin = CudaArray(buf.value, x.shape, np.float32)
            yout = CudaArray(buf.value + (64 << 10), x.shape, np.float32)
            with c.model("relu_gpu").request() as r:
                r.set_input("x", xin)
                r.output_to("y", yout)
                r.infer(timeout=30)
                assert r.output("y") is yout
            y = np.empty_like(x)
            assert rt.cudaMemcpy(y.ctypes.data, buf.value + (64 << 10), y.nbytes, 2) == 0
            np.testing.assert_array_equal(y, np.maximum(x, 0))
            assert len(c._regions) == 1
    finally:
        if buf.value:
            rt.cudaFree(buf)
        b.stop()
