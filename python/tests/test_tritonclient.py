# SPDX-License-Identifier: MIT
"""The same results as tritonclient against the same ferryd: ferry's
package over shared memory and over gRPC, and tritonclient[grpc] on the
broker's KServe v2 endpoint, for the same requests."""
import numpy as np
import pytest

import ferry

from conftest import FIXED_DTYPES
from test_dtypes import sample

tg = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def triton(broker):
    c = tg.InferenceServerClient(broker.url)
    yield c
    c.close()


@pytest.fixture(scope="module", params=["shm", "grpc"])
def fc(request, broker):
    """ferry's client over shared memory, then over gRPC."""
    c = ferry.Client(broker.sock if request.param == "shm" else "grpc://" + broker.url)
    yield c
    c.close()


def triton_infer(triton, model, inputs, datatypes=None):
    ins = []
    for name, arr in inputs.items():
        dt = (datatypes or {}).get(name) or ferry.DTYPES[ferry._dtypes.code(arr.dtype)]
        i = tg.InferInput(name, list(arr.shape), dt)
        i.set_data_from_numpy(arr)
        ins.append(i)
    return triton.infer(model, ins)


def test_simple_same_outputs(fc, triton):
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), -3, np.int32)
    res = triton_infer(triton, "simple", {"INPUT0": a, "INPUT1": b})
    with fc.model("simple").request() as r:
        r.set_input("INPUT0", a)
        r.set_input("INPUT1", b)
        r.infer(timeout=10)
        for name in ("OUTPUT0", "OUTPUT1"):
            t = res.as_numpy(name)
            f = r.output(name)
            assert f.dtype == t.dtype and f.shape == t.shape
            np.testing.assert_array_equal(f, t)


@pytest.mark.parametrize("name", [d for d in FIXED_DTYPES if d != "BF16"])
def test_every_dtype_same_bytes(fc, triton, name):
    npdt = ferry._dtypes.NUMPY[ferry._dtypes.code(name)]
    x = sample(npdt, (3, 2, 3), 7)
    res = triton_infer(triton, "id_" + name, {"IN": x})
    t = res.as_numpy("OUT")
    with fc.model("id_" + name).request() as r:
        r.set_input("IN", x)
        r.infer(timeout=10)
        f = r.output("OUT")
        assert f.dtype == t.dtype and f.shape == t.shape
        assert f.tobytes() == t.tobytes() == x.tobytes()


def test_bytes_same_elements(fc, triton):
    words = np.array([[b"", b"ferry", b"\x00\x01binary", "Grüße".encode()]], dtype=object)
    res = triton_infer(triton, "id_BYTES", {"IN": words}, {"IN": "BYTES"})
    with fc.model("id_BYTES").request() as r:
        r.set_input("IN", words)
        r.infer(timeout=10)
        assert r.output("OUT") == res.as_numpy("OUT").tolist() == words.tolist()


def test_same_metadata(fc, triton):
    for model in ("simple", "id_FP16", "id_BYTES", "ident_any"):
        md = triton.get_model_metadata(model, as_json=True)
        want = {"name": md["name"], "versions": md["versions"],
                "inputs": [{"name": t["name"], "datatype": t["datatype"],
                            "shape": [int(s) for s in t["shape"]]} for t in md["inputs"]],
                "outputs": [{"name": t["name"], "datatype": t["datatype"],
                             "shape": [int(s) for s in t["shape"]]} for t in md["outputs"]]}
        assert fc.model(model).metadata == want


def test_same_refusal(fc, triton):
    bad = np.ones((1, 16), np.float32)
    with pytest.raises(InferenceServerException) as te:
        triton_infer(triton, "simple", {"INPUT0": bad, "INPUT1": bad})
    assert te.value.status() == "StatusCode.INVALID_ARGUMENT"
    with fc.model("simple").request() as r:
        r.set_input("INPUT0", bad)
        r.set_input("INPUT1", bad)
        with pytest.raises(ferry.Error) as fe:
            r.infer(timeout=10)
    assert fe.value.code == "FERRY_DTYPE"
    # The broker's reason, word for word, on both paths.
    assert fe.value.message in te.value.message(), (fe.value.message, te.value.message())
