# SPDX-License-Identifier: MIT
"""The package's API against a real ferryd: the snippet of issue 16 as
written, models and metadata, synchronous calls, errors and timeouts."""
import os
import time

import numpy as np
import pytest

import ferry


def test_issue_snippet_as_written(broker, monkeypatch):
    # The shape of the API the issue fixes, word for word (the broker
    # found through $FERRY_SOCKET).
    monkeypatch.setenv("FERRY_SOCKET", broker.sock)
    with ferry.Client() as c:
        m = c.model("simple")
        with m.request() as r:
            x = r.input("INPUT0", np.int32, (1, 16))
            x[:] = np.arange(16)
            r.set_input("INPUT1", np.ones((1, 16), np.int32))
            r.infer(timeout=1.0)
            y = r.output("OUTPUT0")
            np.testing.assert_array_equal(y, np.arange(16).reshape(1, 16) + 1)
            np.testing.assert_array_equal(r.output("OUTPUT1"), np.arange(16).reshape(1, 16) - 1)
            assert y.dtype == np.int32 and y.shape == (1, 16)
            assert not y.flags.writeable
            assert x.flags.writeable


def test_client_socket_keyword_and_fixed_version(broker):
    with ferry.Client(socket=broker.sock) as c:
        m = c.model("simple", 1)
        assert (m.name, m.version, m.max_batch_size) == ("simple", 1, 8)
        assert c.model("simple", 1) is m
        latest = c.model("simple")
        assert latest.version == 1


def test_model_metadata(client):
    m = client.model("simple")
    assert [t.name for t in m.inputs] == ["INPUT0", "INPUT1"]
    assert [t.name for t in m.outputs] == ["OUTPUT0", "OUTPUT1"]
    assert m.inputs[0].datatype == "INT32" and m.inputs[0].dtype == np.int32
    assert m.inputs[0].shape == (16,)
    assert m.metadata == {
        "name": "simple", "versions": ["1"],
        "inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
                   {"name": "INPUT1", "datatype": "INT32", "shape": [-1, 16]}],
        "outputs": [{"name": "OUTPUT0", "datatype": "INT32", "shape": [-1, 16]},
                    {"name": "OUTPUT1", "datatype": "INT32", "shape": [-1, 16]}]}
    any_ = client.model("ident_any")
    assert any_.max_batch_size == 0 and any_.inputs[0].shape == (-1,)
    assert any_.metadata["inputs"][0]["shape"] == [-1]


def test_broker_admin_views(client):
    names = {(m["name"], m["version"], m["state"]) for m in client.models()}
    assert ("simple", 1, "READY") in names and ("id_BF16", 1, "READY") in names
    st = client.status()
    assert st["name"] == "ferryd" and st["transport"] == "local"
    assert st["version"] == ferry.version()
    mine = [s for s in client.sessions() if s["pid"] == os.getpid()]
    assert mine, client.sessions()


def test_model_statistics_count_requests(client):
    m = client.model("simple")
    before = m.statistics()["success"]
    for i in range(3):
        out = m.infer({"INPUT0": np.full((1, 16), i, np.int32),
                       "INPUT1": np.ones((1, 16), np.int32)})
        np.testing.assert_array_equal(out["OUTPUT0"], np.full((1, 16), i + 1))
    assert m.statistics()["success"] == before + 3


def test_one_shot_infer_returns_copies(client):
    out = client.infer("simple", {"INPUT0": np.arange(32, dtype=np.int32).reshape(2, 16),
                                  "INPUT1": np.ones((2, 16), np.int32)}, outputs=["OUTPUT1"])
    assert list(out) == ["OUTPUT1"]
    assert out["OUTPUT1"].flags.owndata and out["OUTPUT1"].flags.writeable
    np.testing.assert_array_equal(out["OUTPUT1"], np.arange(32).reshape(2, 16) - 1)


def test_request_reused_in_place(client):
    m = client.model("simple")
    with m.request() as r:
        a = r.input("INPUT0", np.int32, (1, 16))
        b = r.input("INPUT1", "INT32", (1, 16))
        for k in range(5):
            a[:] = k
            b[:] = np.arange(16)
            r.infer(timeout=5)
            np.testing.assert_array_equal(r.output("OUTPUT0")[0], k + np.arange(16))
        # The same name, dtype and shape: the same memory.
        assert r.input("INPUT0", np.int32, (1, 16)) is a


def test_set_input_casts_only_when_asked(client):
    m = client.model("simple")
    with m.request() as r:
        # The array's own dtype, INT64: the broker refuses it for INT32.
        r.set_input("INPUT0", np.ones((1, 16), np.int64))
        r.set_input("INPUT1", np.ones((1, 16), np.int32))
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=5)
        assert e.value.code == "FERRY_DTYPE"
    with m.request() as r:
        r.set_input("INPUT0", np.full((1, 16), 7.0), "INT32")   # asked: cast
        r.set_input("INPUT1", [[1] * 16], np.int32)              # a list
        r.infer(timeout=5)
        np.testing.assert_array_equal(r.output("OUTPUT0"), np.full((1, 16), 8))


# -- errors ---------------------------------------------------------------

def test_error_carries_code_name_and_broker_message(client):
    m = client.model("simple")
    with m.request() as r:
        r.set_input("INPUT0", np.ones((1, 16), np.float32))
        r.set_input("INPUT1", np.ones((1, 16), np.float32))
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=5)
    assert e.value.code == "FERRY_DTYPE"
    assert e.value.errno == ferry.CODES["FERRY_DTYPE"]
    assert "INPUT0" in e.value.message and "INT32" in e.value.message
    assert str(e.value).startswith("FERRY_DTYPE: ")


@pytest.mark.parametrize("call, code, words", [
    (lambda c: c.model("no_such_model"), "FERRY_ENOENT", ["no_such_model"]),
    (lambda c: c.model("simple", 7), "FERRY_ENOENT", ["simple"]),
    (lambda c: c.model("simple").request().input("NOPE", np.int32, (1, 16)),
     "FERRY_ENOENT", ["NOPE"]),
    (lambda c: c.model("simple").request().input("INPUT0", np.int32, (1, 2, 3, 4, 5, 6, 7, 8, 9)),
     "FERRY_SHAPE", ["dimensions"]),
    (lambda c: c.model("simple").request().input("INPUT0", np.int32, (1, -3)),
     "FERRY_SHAPE", ["dimension"]),
    (lambda c: c.model("simple").request().input("INPUT0", "BYTES", (1,)),
     "FERRY_DTYPE", ["set_input"]),
    (lambda c: c.model("simple").request().infer(timeout=1), "FERRY_EINVAL", ["not given"]),
    (lambda c: c.model("simple").request().output("OUTPUT0"), "FERRY_EBUSY", ["completed"]),
], ids=["no_model", "no_version", "no_input", "nine_dims", "negative_dim", "bytes_as_array",
        "input_missing", "output_before_infer"])
def test_errors(client, call, code, words):
    with pytest.raises(ferry.Error) as e:
        call(client)
    assert e.value.code == code, e.value
    for w in words:
        assert w in e.value.message, e.value


def test_wrong_shape_is_refused_by_the_broker(client):
    with client.model("simple").request() as r:
        r.set_input("INPUT0", np.ones((1, 15), np.int32))
        r.set_input("INPUT1", np.ones((1, 15), np.int32))
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=5)
    assert e.value.code == "FERRY_SHAPE", e.value


def test_no_broker_is_econnrefused(tmp_path):
    with pytest.raises(ferry.Error) as e:
        ferry.Client(str(tmp_path / "nobody.sock"))
    assert e.value.code == "FERRY_ECONNREFUSED"
    assert "nobody.sock" in e.value.message


def test_released_request_and_closed_client_raise(broker):
    c = ferry.Client(broker.sock)
    m = c.model("simple")
    r = m.request()
    r.release()
    with pytest.raises(ferry.Error, match="released"):
        r.input("INPUT0", np.int32, (1, 16))
    r.release()  # twice is harmless
    r2 = m.request()
    c.close()
    with pytest.raises(ferry.Error) as e:
        r2.input("INPUT0", np.int32, (1, 16))
    assert e.value.code == "FERRY_EPIPE"
    with pytest.raises(ferry.Error):
        c.model("simple")
    c.close()  # twice is harmless


def test_unknown_dtype_is_valueerror(client):
    with client.model("simple").request() as r:
        with pytest.raises(ValueError):
            r.input("INPUT0", np.complex64, (1, 16))
        with pytest.raises(ValueError):
            r.input("INPUT0", "FP8", (1, 16))


# -- timeouts -------------------------------------------------------------

def test_sync_timeout_leaves_request_in_flight(client):
    # "slow" holds a lone request 3 s for a batch: a 0.2 s wait times out,
    # the request stays in flight, and a later wait gets its result.
    with client.model("slow").request() as r:
        r.set_input("IN", np.arange(4, dtype=np.float32).reshape(1, 4))
        r.set_timeout(30)  # the broker's queue may hold it
        t0 = time.monotonic()
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=0.2)
        took = time.monotonic() - t0
        assert e.value.code == "FERRY_ETIMEDOUT"
        assert 0.15 < took < 2.5, took  # the broker answers at 3 s
        assert not r.done()
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=1)
        assert e.value.code == "FERRY_EBUSY"
        r.wait(timeout=10)
        np.testing.assert_array_equal(r.output("OUT"), np.arange(4).reshape(1, 4))


def test_queue_timeout_is_the_brokers_refusal(client):
    # Without set_timeout, infer(timeout) also bounds the time in the
    # broker's queue: the broker rejects the request when it runs out.
    with client.model("slow").request() as r:
        r.set_input("IN", np.zeros((1, 4), np.float32))
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=0.3)
        assert e.value.code in ("FERRY_ETIMEDOUT", "FERRY_REJECTED"), e.value
