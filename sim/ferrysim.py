# SPDX-License-Identifier: MIT
"""ferrysim: a small discrete-event simulator of CPU jobs offloading
inference to brokers with GPUs (issue 18, the scale model).

Plain Python (heapq), no dependency.  Time is in microseconds.  The parts:

  Sim        the clock and the event queue
  Cores      n CPU cores, first come first served; a burst holds one core
             for its duration (how a busy machine's threads share cores,
             to the first order)
  Batcher    one model instance: takes every queued request up to
             max_rows rows at once (dynamic batching with no queue delay,
             as ferryd's and Triton's), runs for exec_us(rows), on its own
             device (a GPU) or holding one core of a Cores (a KIND_CPU
             instance)
  Job        a CPU job on a core of its own: each event is `work` us of
             CPU, then one inference; `slots` events may be in flight at
             once (1: the job waits for each result; 2 or more: it works
             on the next event while a request travels, as CMSSW's
             asynchronous ExternalWork modules do)
  Pool       the GPU servers behind a per-request round-robin balancer:
             network delay each way, broker CPU per request on the
             server's cores, the GPU's batcher

study() runs the study's set-up and returns throughput, gain over
running the inference in the jobs, and GPU utilisation;
closed_loop_pool() is the validation case measured here (bench/pool.sh):
brokers, proxy and clients sharing one machine's cores.
"""
import heapq
import random


class Sim:
    """The clock (now, us) and the event queue."""

    def __init__(self):
        self.now = 0.0
        self._q = []
        self._n = 0

    def at(self, delay, fn, *args):
        heapq.heappush(self._q, (self.now + delay, self._n, fn, args))
        self._n += 1

    def run(self, until):
        q = self._q
        while q and q[0][0] <= until:
            t, _, fn, args = heapq.heappop(q)
            self.now = t
            fn(*args)
        self.now = until


class Cores:
    """n cores served first come, first served; busy time is counted."""

    def __init__(self, sim, n):
        self.sim, self.free, self.wait = sim, n, []
        self.busy_us = 0.0

    def run(self, us, then, *args):
        """Run a burst of `us` on a core, then call then(*args)."""
        if self.free:
            self.free -= 1
            self._start(us, then, args)
        else:
            self.wait.append((us, then, args))

    def _start(self, us, then, args):
        self.busy_us += us
        self.sim.at(us, self._done, then, args)

    def _done(self, then, args):
        if self.wait:
            us, t2, a2 = self.wait.pop(0)
            self._start(us, t2, a2)
        else:
            self.free += 1
        then(*args)


class Batcher:
    """One model instance with dynamic batching (no queue delay).  On
    cores, an execution holds one core for exec_us(rows), then the
    instance waits gap_us without a core before it takes the next (the
    hand-off between executions: answering, waking up again)."""

    def __init__(self, sim, exec_us, max_rows, cores=None, gap_us=0.0):
        self.sim, self.exec_us, self.max_rows, self.cores = sim, exec_us, max_rows, cores
        self.gap_us = gap_us
        self.queue, self.running = [], False
        self.busy_us = 0.0
        self.executions = 0
        self.requests = 0

    def submit(self, rows, then, *args):
        self.queue.append((rows, then, args))
        if not self.running:
            self._next()

    def _next(self):
        if not self.queue:
            self.running = False
            return
        self.running = True
        batch, rows = [], 0
        while self.queue and (not batch or rows + self.queue[0][0] <= self.max_rows):
            r = self.queue.pop(0)
            batch.append(r)
            rows += r[0]
        us = self.exec_us(rows)
        self.busy_us += us
        self.executions += 1
        self.requests += len(batch)
        if self.cores is not None:
            self.cores.run(us, self._finish, batch)
        else:
            self.sim.at(us, self._finish, batch)

    def _finish(self, batch):
        for _, then, args in batch:
            then(*args)
        if self.gap_us:
            self.sim.at(self.gap_us, self._next)
        else:
            self._next()


class Job:
    """A CPU job on a core of its own.  Event: `work` us of CPU (drawn
    uniformly within +-jitter of it, so that jobs do not run in step), then
    one inference of `rows` rows: in the job (`local_us` more CPU), or
    offloaded through `offload(rows, then)` at `client_us` of the job's CPU
    per request (half to send, half on the answer)."""

    def __init__(self, sim, rng, work, jitter, rows, slots, local_us=None,
                 offload=None, client_us=0.0):
        self.sim, self.rng = sim, rng
        self.work, self.jitter, self.rows, self.slots = work, jitter, rows, slots
        self.local_us, self.offload, self.client_us = local_us, offload, client_us
        self.cpu = Cores(sim, 1)
        self.events = 0
        self.counting = False
        for _ in range(slots):
            self._event()

    def _w(self):
        return self.work * (1 + self.jitter * (2 * self.rng.random() - 1))

    def _event(self):
        if self.offload is None:
            self.cpu.run(self._w() + self.local_us, self._done)
        else:
            self.cpu.run(self._w() + self.client_us / 2, self._send)

    def _send(self):
        self.offload(self.rows, self._answer)

    def _answer(self):
        self.cpu.run(self.client_us / 2, self._done)

    def _done(self):
        if self.counting:
            self.events += 1
        self._event()


class Pool:
    """GPU servers behind a per-request round-robin balancer.  A request
    crosses the network (one_way_us each way, plus proxy_us of latency for
    the balancer), costs broker_us of a server core (half on the way in,
    half on the way out) and waits for the server's GPU."""

    def __init__(self, sim, n_gpus, gpu_exec_us, max_rows, server_cores,
                 broker_us, one_way_us, proxy_us=0.0):
        self.sim = sim
        self.gpus = [Batcher(sim, gpu_exec_us, max_rows) for _ in range(n_gpus)]
        self.cpus = [Cores(sim, server_cores) for _ in range(n_gpus)]
        self.broker_us, self.one_way_us, self.proxy_us = broker_us, one_way_us, proxy_us
        self._rr = 0
        self.requests = 0

    def submit(self, rows, then):
        k = self._rr
        self._rr = (k + 1) % len(self.gpus)
        self.requests += 1
        self.sim.at(self.one_way_us + self.proxy_us / 2, self._arrive, k, rows, then)

    def _arrive(self, k, rows, then):
        self.cpus[k].run(self.broker_us / 2, self.gpus[k].submit, rows, self._computed, k, then)

    def _computed(self, k, then):
        self.cpus[k].run(self.broker_us / 2, self.sim.at, self.one_way_us + self.proxy_us / 2, then)


def study(p, jobs, gpus, seconds=1.0, warmup=0.3, seed=1):
    """The study's set-up with the parameters p (a dict, see scale.py's
    PARAMS): `jobs` CPU jobs, `gpus` GPU servers.  Returns a dict: events/s
    offloaded and direct, the gain, GPU utilisation (busy time, and rows
    done against what full executions would do: gpu_capacity), rows per
    GPU execution."""
    rng = random.Random(seed)
    work = p["infer_cpu_us"] * (1 - p["f"]) / p["f"]

    def gpu_us(rows):
        return p["gpu_fixed_us"] + p["gpu_row_us"] * rows

    # direct: the inference in the jobs, no sharing: analytic
    direct = jobs * 1e6 / (work + p["infer_cpu_us"])
    sim = Sim()
    pool = Pool(sim, gpus, gpu_us, p["max_rows"], p["server_cores"], p["broker_us"],
                p["rtt_us"] / 2, p.get("proxy_us", 0.0))
    js = [Job(sim, rng, work, p["jitter"], p["rows"], p["slots"], offload=pool.submit,
              client_us=p["client_us"]) for _ in range(jobs)]
    sim.run(warmup * 1e6)
    for j in js:
        j.counting = True
    busy0 = [g.busy_us for g in pool.gpus]
    ex0 = sum(g.executions for g in pool.gpus)
    rq0 = sum(g.requests for g in pool.gpus)
    sim.run((warmup + seconds) * 1e6)
    events = sum(j.events for j in js) / seconds
    util = sum(g.busy_us - b for g, b in zip(pool.gpus, busy0)) / (gpus * seconds * 1e6)
    ex = sum(g.executions for g in pool.gpus) - ex0
    rq = sum(g.requests for g in pool.gpus) - rq0
    # what the GPUs did against what they could do in full executions
    full_us = gpu_us(p["max_rows"])
    return {"jobs": jobs, "gpus": gpus, "events_per_s": events, "direct_per_s": direct,
            "gain": events / direct, "ideal": 1 / (1 - p["f"]), "gpu_util": util,
            "gpu_capacity": p["rows"] * rq * full_us / (p["max_rows"] * gpus * seconds * 1e6),
            "rows_per_exec": p["rows"] * rq / ex if ex else 0.0}


def closed_loop_pool(cores, brokers, conc, client_us, proxy_us, broker_us, compute_us,
                     seconds=2.0, warmup=0.3, gap_us=0.0):
    """The validation case (bench/pool.sh --scale): one machine's `cores`
    shared by everything; `conc` requests kept in flight; per request client_us of client CPU, proxy_us of
    proxy CPU (0: clients talk to one broker directly), broker_us of the
    broker's gRPC threads, and compute_us on the broker's single KIND_CPU
    instance thread (one request per execution: the requests of a batch
    of 64 rows are not merged), then gap_us before its next execution.
    Returns requests/s and the cores' use."""
    sim = Sim()
    cpu = Cores(sim, cores)
    inst = [Batcher(sim, lambda rows: compute_us, 1, cores=cpu, gap_us=gap_us)
            for _ in range(brokers)]
    st = {"n": 0, "rr": 0, "counting": False}
    # a request's path: CPU bursts on the machine's cores, and the instance
    # of the broker the round robin picks (None) in the middle
    path = [client_us / 2, proxy_us / 2, broker_us / 2, None,
            broker_us / 2, proxy_us / 2, client_us / 2]

    def step(i):
        if i == len(path):
            if st["counting"]:
                st["n"] += 1
            i = 0
        us = path[i]
        if us is None:
            k = st["rr"]
            st["rr"] = (k + 1) % brokers
            inst[k].submit(1, step, i + 1)
        elif us:
            cpu.run(us, step, i + 1)
        else:
            step(i + 1)

    for _ in range(conc):
        step(0)
    sim.run(warmup * 1e6)
    st["counting"] = True
    b0 = cpu.busy_us
    sim.run((warmup + seconds) * 1e6)
    return {"requests_per_s": st["n"] / seconds,
            "busy_cores": (cpu.busy_us - b0) / (seconds * 1e6)}
