# SPDX-License-Identifier: MIT
"""Asynchronous calls: concurrent.futures futures, asyncio (64 requests in
flight at once, proven by the broker running them as one batch of 64),
timeouts, cancellation, the queue depth."""
import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest

import ferry


def simple_request(m, k):
    r = m.request()
    r.set_input("INPUT0", np.full((1, 16), k, np.int32))
    r.set_input("INPUT1", np.arange(16, dtype=np.int32).reshape(1, 16))
    return r


def test_futures(client):
    m = client.model("simple")
    reqs = [simple_request(m, k) for k in range(20)]
    futs = [r.submit(timeout=10) for r in reqs]
    done, _ = concurrent.futures.wait(futs, timeout=20)
    assert len(done) == 20
    for k, (r, f) in enumerate(zip(reqs, futs)):
        assert f.result() is r
        np.testing.assert_array_equal(r.output("OUTPUT0")[0], k + np.arange(16))
        r.release()


def test_future_error_is_ferry_error(client):
    with client.model("simple").request() as r:
        r.set_input("INPUT0", np.ones((1, 16), np.float32))
        r.set_input("INPUT1", np.ones((1, 16), np.float32))
        e = r.submit(timeout=10).exception(timeout=10)
        assert isinstance(e, ferry.Error) and e.code == "FERRY_DTYPE"
        assert "INPUT0" in e.message


def test_asyncio_64_in_flight(client):
    # batch64 runs only once 64 requests are queued together (else after
    # 20 s): one execution of batch 64, in well under 20 s, means all 64
    # were in flight at once.
    m = client.model("batch64")
    before = m.statistics()["batch_executions"].get(64, 0)
    reqs = []
    for k in range(64):
        r = m.request()
        r.set_input("IN", np.full((1, 4), k, np.float32))
        reqs.append(r)

    async def main():
        t0 = time.monotonic()
        got = await asyncio.gather(*(r.infer_async(timeout=30) for r in reqs))
        return got, time.monotonic() - t0

    got, took = asyncio.run(main())
    assert took < 10, took
    assert m.statistics()["batch_executions"].get(64, 0) == before + 1
    for k, r in enumerate(reqs):
        assert got[k] is r
        np.testing.assert_array_equal(r.output("OUT"), np.full((1, 4), k))
        r.release()


def test_asyncio_64_in_flight_lazy_doorbell(broker):
    # The same through a client that wakes the broker once per burst.
    with ferry.Client(broker.sock, lazy_doorbell=True) as c:
        m = c.model("simple")

        async def main():
            outs = await asyncio.gather(*(
                c.infer_async(m, {"INPUT0": np.full((1, 16), k, np.int32),
                                  "INPUT1": np.ones((1, 16), np.int32)}, timeout=30)
                for k in range(64)))
            return outs

        outs = asyncio.run(main())
        for k, o in enumerate(outs):
            np.testing.assert_array_equal(o["OUTPUT0"], np.full((1, 16), k + 1))


def test_client_infer_async_on_a_request(client):
    async def main():
        with simple_request(client.model("simple"), 5) as r:
            assert await client.infer_async(r) is r
            return r.output("OUTPUT1").copy()
    np.testing.assert_array_equal(asyncio.run(main())[0], 5 - np.arange(16))


def test_asyncio_timeout_leaves_request_in_flight(client):
    async def main():
        r = client.model("slow").request()
        r.set_input("IN", np.ones((1, 4), np.float32))
        r.set_timeout(30)  # the broker's queue keeps it; only the wait times out
        t0 = time.monotonic()
        with pytest.raises(ferry.Error) as e:
            await r.infer_async(timeout=0.2)
        took = time.monotonic() - t0
        return r, e.value, took

    r, err, took = asyncio.run(main())
    assert err.code == "FERRY_ETIMEDOUT", err
    assert 0.15 < took < 2.5, took  # the broker answers at 3 s
    assert not r.done()
    r.wait(timeout=10)               # its completion still comes
    np.testing.assert_array_equal(r.output("OUT"), np.ones((1, 4)))
    r.release()


def test_future_timeout(client):
    with client.model("slow").request() as r:
        r.set_input("IN", np.ones((1, 4), np.float32))
        r.set_timeout(30)
        e = r.submit(timeout=0.2).exception(timeout=5)
        assert isinstance(e, ferry.Error) and e.code == "FERRY_ETIMEDOUT"
    # Released in flight: freed by libferry when its completion comes.


def test_cancelled_task_and_release_in_flight(client):
    async def main():
        r = client.model("slow").request()
        r.set_input("IN", np.ones((1, 4), np.float32))
        task = asyncio.ensure_future(r.infer_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r.release()   # still in flight: freed when the broker answers
    asyncio.run(main())
    # The client goes on serving.
    with simple_request(client.model("simple"), 1) as r:
        r.infer(timeout=10)


def test_release_in_flight_fails_the_future(client):
    r = client.model("slow").request()
    r.set_input("IN", np.ones((1, 4), np.float32))
    f = r.submit()
    r.release()
    e = f.exception(timeout=5)
    assert isinstance(e, ferry.Error) and e.code == "FERRY_ECANCELED"


def test_queue_depth_is_eagain(broker):
    with ferry.Client(broker.sock, queue_depth=4) as c:
        m = c.model("slow")
        reqs = [m.request() for _ in range(5)]
        for r in reqs:
            r.set_input("IN", np.ones((1, 4), np.float32))
        futs = [r.submit() for r in reqs[:4]]
        with pytest.raises(ferry.Error) as e:
            reqs[4].submit()
        assert e.value.code == "FERRY_EAGAIN"
        for r in reqs:
            r.release()
        for f in futs:
            assert f.exception(timeout=5).code == "FERRY_ECANCELED"


def test_sync_and_async_from_threads_together(client):
    # Completions reaped by whichever thread waits reach their futures.
    m = client.model("simple")
    errors = []

    def worker(base):
        try:
            for k in range(50):
                with simple_request(m, base + k) as r:
                    if k % 2:
                        r.infer(timeout=10)
                    else:
                        r.submit(timeout=10).result(timeout=10)
                    np.testing.assert_array_equal(r.output("OUTPUT0")[0],
                                                  base + k + np.arange(16))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(1000 * i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
