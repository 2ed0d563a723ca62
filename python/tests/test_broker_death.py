# SPDX-License-Identifier: MIT
"""A broker killed (SIGKILL) while a request waits in its queue: the wait
ends with ferry.Error FERRY_EPIPE within 100 ms, synchronously, through a
future and under asyncio; later calls fail at once."""
import asyncio
import os
import signal
import threading
import time

import numpy as np
import pytest

import ferry

from conftest import Broker

LIMIT_S = 0.100


@pytest.fixture
def doomed():
    b = Broker(grpc=False)
    yield b
    b.stop()


def kill_soon(broker, when, delay=0.3):
    """SIGKILL the broker after delay seconds; when[0] is the moment the
    signal was sent."""
    def run():
        time.sleep(delay)
        when.append(time.monotonic())
        os.kill(broker.proc.pid, signal.SIGKILL)
    t = threading.Thread(target=run)
    t.start()
    return t


def slow_request(c):
    r = c.model("slow").request()   # held 3 s in the broker's queue
    r.set_input("IN", np.ones((1, 4), np.float32))
    return r


def after_death(c):
    with pytest.raises(ferry.Error) as e:
        with slow_request(c) as r:
            r.infer(timeout=1)
    assert e.value.code == "FERRY_EPIPE", e.value


def test_sync_infer_raises_within_100ms(doomed):
    with ferry.Client(doomed.sock) as c:
        r = slow_request(c)
        when = []
        t = kill_soon(doomed, when)
        with pytest.raises(ferry.Error) as e:
            r.infer(timeout=10)
        raised = time.monotonic()
        t.join()
        assert e.value.code == "FERRY_EPIPE", e.value
        assert raised - when[0] < LIMIT_S, "%.1f ms after SIGKILL" % ((raised - when[0]) * 1e3)
        r.release()
        after_death(c)


def test_future_fails_within_100ms(doomed):
    with ferry.Client(doomed.sock) as c:
        r = slow_request(c)
        f = r.submit()
        when = []
        t = kill_soon(doomed, when)
        e = f.exception(timeout=10)
        failed = time.monotonic()
        t.join()
        assert isinstance(e, ferry.Error) and e.code == "FERRY_EPIPE", e
        assert failed - when[0] < LIMIT_S, "%.1f ms after SIGKILL" % ((failed - when[0]) * 1e3)
        r.release()
        after_death(c)


def test_asyncio_raises_within_100ms(doomed):
    with ferry.Client(doomed.sock) as c:
        reqs = [slow_request(c) for _ in range(4)]
        when = []

        async def main():
            t = kill_soon(doomed, when)
            res = await asyncio.gather(*(r.infer_async() for r in reqs), return_exceptions=True)
            done = time.monotonic()
            t.join()
            return res, done

        res, done = asyncio.run(main())
        for e in res:
            assert isinstance(e, ferry.Error) and e.code == "FERRY_EPIPE", e
        assert done - when[0] < LIMIT_S, "%.1f ms after SIGKILL" % ((done - when[0]) * 1e3)
        for r in reqs:
            r.release()
        after_death(c)
