#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ferrysim's parts against what can be worked out by hand (make check).

Each test sets up a case whose answer follows from the arithmetic alone
(a queue of bursts on n cores, a batcher fed while busy, Amdahl's bound
with free inference, a saturated GPU, a synchronous job that pays every
round trip, a closed loop limited by one instance or by the cores) and
checks the simulator gets it.  Plain python3, no dependency.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrysim  # noqa: E402


class Parts(unittest.TestCase):
    def test_cores_fifo(self):
        """4 bursts of 10 us on 2 cores: two finish at 10, two at 20."""
        sim = ferrysim.Sim()
        cpu = ferrysim.Cores(sim, 2)
        done = []
        for i in range(4):
            cpu.run(10, lambda i=i: done.append((i, sim.now)))
        sim.run(100)
        self.assertEqual(done, [(0, 10), (1, 10), (2, 20), (3, 20)])
        self.assertEqual(cpu.busy_us, 40)

    def test_batcher_takes_what_queued(self):
        """Requests that arrive while the instance runs go together into
        its next execution, up to max_rows."""
        sim = ferrysim.Sim()
        b = ferrysim.Batcher(sim, lambda rows: 100 + rows, max_rows=3)
        ends = []
        for i in range(5):
            b.submit(1, lambda i=i: ends.append((i, sim.now)))
        sim.run(1000)
        # 1 alone (101), then 3 of the 4 waiting (103 more), then the last (101)
        self.assertEqual(ends, [(0, 101), (1, 204), (2, 204), (3, 204), (4, 305)])
        self.assertEqual((b.executions, b.requests), (3, 5))


def base(**over):
    p = {"f": 0.115, "rows": 64, "infer_cpu_us": 800.0, "gpu_fixed_us": 0.0,
         "gpu_row_us": 0.0, "max_rows": 1024, "server_cores": 8, "broker_us": 0.0,
         "client_us": 0.0, "proxy_us": 0.0, "rtt_us": 0.0, "slots": 2, "jitter": 0.2}
    p.update(over)
    return p


class Study(unittest.TestCase):
    def test_free_inference_gives_amdahl(self):
        """Inference that costs nothing anywhere: the gain is 1 / (1 - f)."""
        r = ferrysim.study(base(), jobs=50, gpus=2, seconds=0.5, warmup=0.1)
        self.assertAlmostEqual(r["gain"], 1 / (1 - 0.115), delta=0.01)
        self.assertEqual(r["gpu_util"], 0.0)

    def test_client_cost_comes_off_the_gain(self):
        """c us of client CPU per event, latency hidden: events take
        work + c instead of work."""
        p = base(client_us=300.0, rtt_us=500.0)
        r = ferrysim.study(p, jobs=50, gpus=2, seconds=0.5, warmup=0.1)
        work = 800 * (1 - 0.115) / 0.115
        self.assertAlmostEqual(r["gain"], (work + 800) / (work + 300), delta=0.01)

    def test_sync_job_pays_the_round_trip(self):
        """One event in flight: every event waits the whole round trip."""
        p = base(slots=1, rtt_us=2000.0, jitter=0.0)
        r = ferrysim.study(p, jobs=10, gpus=1, seconds=0.5, warmup=0.1)
        work = 800 * (1 - 0.115) / 0.115
        self.assertAlmostEqual(r["events_per_s"], 10 * 1e6 / (work + 2000), delta=0.01 * r["events_per_s"])

    def test_saturated_gpu_bounds_the_jobs(self):
        """A GPU slower than the jobs' demand: busy all the time, every
        execution full, and the events are what it can do."""
        p = base(gpu_fixed_us=0.0, gpu_row_us=10.0, max_rows=640)
        r = ferrysim.study(p, jobs=400, gpus=1, seconds=0.5, warmup=0.2)
        self.assertGreater(r["gpu_util"], 0.99)
        self.assertGreater(r["gpu_capacity"], 0.99)
        self.assertAlmostEqual(r["rows_per_exec"], 640, delta=1)
        # 640 rows in 6.4 ms: 10 events of 64 rows per 6.4 ms
        self.assertAlmostEqual(r["events_per_s"], 1e6 / 640, delta=0.02 * 1e6 / 640)


class Pool(unittest.TestCase):
    def test_one_instance_bounds_one_broker(self):
        """Costs that leave a core free: one broker does 1 / compute."""
        r = ferrysim.closed_loop_pool(cores=2, brokers=1, conc=8, client_us=10, proxy_us=10,
                                      broker_us=10, compute_us=1000, seconds=1.0)
        self.assertAlmostEqual(r["requests_per_s"], 1000, delta=10)

    def test_hand_off_between_executions(self):
        """An instance that waits 250 us between executions of 1000: one
        broker does 1 / 1250 us, using its core 80% of the time."""
        r = ferrysim.closed_loop_pool(cores=2, brokers=1, conc=8, client_us=0, proxy_us=0,
                                      broker_us=0, compute_us=1000, seconds=1.0, gap_us=250)
        self.assertAlmostEqual(r["requests_per_s"], 800, delta=5)
        self.assertAlmostEqual(r["busy_cores"], 0.8, delta=0.01)

    def test_the_cores_bound_many_brokers(self):
        """Three brokers on two cores: 2 cores / the CPU of a request."""
        r = ferrysim.closed_loop_pool(cores=2, brokers=3, conc=12, client_us=200, proxy_us=200,
                                      broker_us=200, compute_us=1400, seconds=1.0)
        self.assertAlmostEqual(r["requests_per_s"], 2e6 / 2000, delta=15)
        self.assertGreater(r["busy_cores"], 1.98)


if __name__ == "__main__":
    unittest.main(verbosity=2)
