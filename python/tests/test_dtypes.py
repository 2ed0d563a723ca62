# SPDX-License-Identifier: MIT
"""Every ferry dtype through an identity model of that dtype (id_<NAME>,
dims [2, 3], batches 1 to 4, as tests/integ/test_local.c's
identity_every_dtype_and_shape), written in place and copied in; BYTES as
lists of bytes and of str."""
import numpy as np
import pytest

import ferry
from ferry import _dtypes

from conftest import FIXED_DTYPES


def sample(npdt, shape, seed):
    """Values of npdt that use its whole range (every bit pattern for the
    integers; signs, fractions, inf and nan for the floats)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if npdt == np.bool_:
        return rng.integers(0, 2, n).astype(np.bool_).reshape(shape)
    raw = rng.integers(0, 256, n * npdt.itemsize, dtype=np.uint8)
    a = raw.view(npdt).reshape(shape).copy()
    if npdt.kind == "f" or npdt.name == "bfloat16":
        a.flat[0] = np.inf
        a.flat[-1] = -0.0
    return a


@pytest.mark.parametrize("name", FIXED_DTYPES)
def test_identity_every_dtype_and_batch(client, name):
    m = client.model("id_" + name)
    spec = m.inputs[0]
    assert spec.datatype == name
    npdt = _dtypes.NUMPY[_dtypes.code(name)]
    assert spec.dtype == npdt
    for batch in range(1, 5):
        want = sample(npdt, (batch, 2, 3), batch)
        with m.request() as r:
            if batch % 2:
                x = r.input("IN", name, (batch, 2, 3))    # in place
                assert x.dtype == npdt
                x[...] = want
            else:
                r.set_input("IN", want)                   # copied in
            r.infer(timeout=10)
            out = r.output("OUT")
            assert out.dtype == npdt
            assert out.shape == (batch, 2, 3)
            # Bit for bit (nan and -0.0 included).
            assert out.tobytes() == want.tobytes(), (name, batch)


def test_dtype_spellings(client):
    m = client.model("id_FP32")
    for dt in (np.float32, np.dtype("float32"), "FP32", "fp32", "TYPE_FP32", 11):
        with m.request() as r:
            r.input("IN", dt, (1, 2, 3))[...] = 1.5
            r.infer(timeout=10)
            assert r.output("OUT").sum() == 9.0


def test_bf16_is_bfloat16(client):
    pytest.importorskip("ml_dtypes")
    import ml_dtypes
    with client.model("id_BF16").request() as r:
        v = np.array([[[1.5, -2.0, 0.25], [3.0, 65280.0, -0.0]]], dtype=ml_dtypes.bfloat16)
        r.set_input("IN", v)
        r.infer(timeout=10)
        out = r.output("OUT")
        assert out.dtype == ml_dtypes.bfloat16
        assert out.astype(np.float32).tolist() == v.astype(np.float32).tolist()


WORDS = [b"", b"a", b"ferry", b"inference broker", b"\x00\xff\x00 binary", "Grüße".encode()]


def test_bytes_lists_of_bytes(client):
    with client.model("id_BYTES").request() as r:
        r.set_input("IN", [WORDS, WORDS[::-1]])       # batch 2 x 6 elements
        r.infer(timeout=10)
        assert r.output("OUT") == [WORDS, WORDS[::-1]]


def test_bytes_lists_of_str_and_decode(client):
    words = ["", "a", "ferry", "Grüße", "推論"]
    with client.model("id_BYTES").request() as r:
        r.set_input("IN", [words], "BYTES")
        r.infer(timeout=10)
        assert r.output("OUT", decode=True) == [words]
        assert r.output("OUT") == [[w.encode() for w in words]]


def test_bytes_from_numpy_arrays(client):
    for arr in (np.array([[b"x", b"yy", b"zzz"]], dtype=object),
                np.array([[b"x", b"yy", b"zzz"]]),            # dtype S3
                np.array([["x", "yy", "zzz"]])):              # dtype <U3
        with client.model("id_BYTES").request() as r:
            r.set_input("IN", arr)
            r.infer(timeout=10)
            assert r.output("OUT") == [[b"x", b"yy", b"zzz"]]


def test_bytes_output_capacity_is_sized_for_big_inputs(client):
    # Outputs whose size depends on the data get room from the inputs'
    # size (twice it), so a large BYTES tensor comes back whole.
    big = [bytes([i % 251]) * 1000 for i in range(300)]  # ~300 kB
    with client.model("id_BYTES").request() as r:
        r.set_input("IN", [big])
        r.infer(timeout=10)
        assert r.output("OUT") == [big]


def test_bytes_output_too_small_capacity_is_an_error(client):
    with client.model("id_BYTES").request() as r:
        r.set_input("IN", [[b"x" * 1000]])
        r.want_output("OUT", 16)
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=10)
        assert e.value.code in ("FERRY_E2BIG", "FERRY_BACKEND", "FERRY_ENOSPC"), e.value
