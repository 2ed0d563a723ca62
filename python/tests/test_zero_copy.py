# SPDX-License-Identifier: MIT
"""Zero copy, proven: request arrays are views over the session's shared
arena (their addresses lie inside it, in a shared mapping of this
process), the broker reads what was written there in place, and a round
trip of a 16 MiB tensor allocates nothing near its size in Python."""
import tracemalloc

import numpy as np
import pytest

import ferry

MIB = 1 << 20


def addr_of(a):
    return a.__array_interface__["data"][0]


def assert_in_arena(client, a):
    base, size = client.arena()
    lo = addr_of(a)
    assert base <= lo and lo + a.nbytes <= base + size, \
        "array at 0x%x (+%d) outside the arena [0x%x, +%d)" % (lo, a.nbytes, base, size)


def mapping_of(addr):
    """The line of /proc/self/maps holding addr."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line
    return None


def test_arena_is_a_shared_mapping(client):
    assert not client.remote
    base, size = client.arena()
    assert size >= MIB
    line = mapping_of(base)
    assert line is not None
    perms = line.split()[1]
    assert perms.startswith("rw") and perms[3] == "s", line  # MAP_SHARED


def test_input_and_output_arrays_lie_in_the_arena(client):
    m = client.model("simple")
    with m.request() as r:
        x = r.input("INPUT0", np.int32, (1, 16))
        y_in = r.set_input("INPUT1", np.ones((1, 16), np.int32))
        assert_in_arena(client, x)
        assert_in_arena(client, y_in)
        # Views, not arrays of their own.
        assert not x.flags.owndata and not y_in.flags.owndata
        x[:] = np.arange(16)
        r.infer(timeout=5)
        for name in ("OUTPUT0", "OUTPUT1"):
            out = r.output(name)
            assert_in_arena(client, out)
            assert not out.flags.owndata and not out.flags.writeable
        # Asked again: the same view, no new array.
        assert r.output("OUTPUT0") is r.output("OUTPUT0")


def test_broker_reads_what_was_written_in_place(client):
    # Written through the view after input(), read by the broker from the
    # arena: the identity model returns exactly those bytes.
    with client.model("ident_any").request() as r:
        x = r.input("IN", np.float32, (1000,))
        x[:] = np.arange(1000, dtype=np.float32)
        x[500] = -1.5
        r.infer(timeout=5)
        out = r.output("OUT")
        assert out.tobytes() == x.tobytes()
        assert addr_of(out) != addr_of(x)  # the model's output buffer, also in the arena
        assert_in_arena(client, out)


def test_no_copy_on_the_path_16mib(client):
    n = 4 * MIB  # float32: 16 MiB each way
    with client.model("ident_any").request() as r:
        x = r.input("IN", np.float32, (n,))
        x[:] = 1.0
        r.infer(timeout=30)  # first round: the output's arena buffer is made
        tracemalloc.start()
        try:
            x = r.input("IN", np.float32, (n,))
            x[::1024] = np.arange(n // 1024, dtype=np.float32)
            r.infer(timeout=30)
            out = r.output("OUT")
            checksum = float(out[::1024].sum())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert checksum == float(np.arange(n // 1024, dtype=np.float32).sum())
        assert_in_arena(client, x)
        assert_in_arena(client, out)
        # A copy of either tensor would allocate 16 MiB (NumPy reports its
        # buffers to tracemalloc); the path allocates a few objects.
        assert peak < 256 << 10, "peak %d bytes traced for a 16 MiB round trip" % peak


def test_set_input_copies_once_into_the_arena(client):
    src = np.random.default_rng(1).random(4 * MIB, dtype=np.float32)
    with client.model("ident_any").request() as r:
        r.set_input("IN", src)
        tracemalloc.start()
        try:
            a = r.set_input("IN", src)   # copied straight into the arena
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 256 << 10, peak
        assert_in_arena(client, a)
        r.infer(timeout=30)
        np.testing.assert_array_equal(r.output("OUT"), src)


def test_views_keep_their_request_alive(client):
    m = client.model("simple")

    def make():
        r = m.request()
        r.set_input("INPUT0", np.full((1, 16), 3, np.int32))
        r.set_input("INPUT1", np.full((1, 16), 4, np.int32))
        r.infer(timeout=5)
        return r.output("OUTPUT0")   # the request object goes out of scope here

    y = make()
    import gc
    gc.collect()
    np.testing.assert_array_equal(y, np.full((1, 16), 7))
    assert_in_arena(client, y)


def test_grpc_client_has_no_arena(broker):
    with ferry.Client("grpc://" + broker.url) as c:
        assert c.remote
        with pytest.raises(ferry.Error) as e:
            c.arena()
        assert e.value.code == "FERRY_ENOTSUP"
