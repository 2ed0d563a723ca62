# SPDX-License-Identifier: MIT
"""tune_space - the search space of ferry-tune and the config of a candidate.

A candidate is a point of the space: a dict of coordinates

    variant         the backend and where it runs (VARIANTS below)
    instances       instances per device (KIND_CPU: in all)
    gpus            the GPU device ids of a KIND_GPU group (a tuple)
    max_batch_size  0 where the model does not batch
    delay_us        dynamic batching's max_queue_delay_microseconds;
                    -1: no dynamic batching
    preferred       "none", or "max": preferred_batch_size [ max_batch_size ]
    threads         onnxruntime's intra_op_thread_count (KIND_CPU only)

A coordinate that does not apply to a candidate's variant is None (threads
for the native executor: its intra_op_thread_count sets OpenBLAS's threads
for the whole broker, so it is no per-model setting to try; gpus on a
KIND_CPU variant).  Its key (a tuple) names it in caches and reports.
"""

from . import tune_pbtxt as pb

# name -> backend, instance kind, parameters, execution accelerator
VARIANTS = {
    "onnxruntime": {"backend": "onnxruntime", "kind": "KIND_CPU", "params": {}},
    "onnx": {"backend": "onnx", "kind": "KIND_CPU", "params": {}},
    "onnx-inline": {"backend": "onnx", "kind": "KIND_CPU", "params": {"ferry_inline": "true"}},
    "onnxruntime-cuda": {"backend": "onnxruntime", "kind": "KIND_GPU", "params": {}},
    "onnxruntime-tensorrt": {"backend": "onnxruntime", "kind": "KIND_GPU", "params": {},
                             "accelerator": "tensorrt"},
    "onnx-gpu": {"backend": "onnx", "kind": "KIND_GPU", "params": {}},
}
CPU_VARIANTS = ("onnxruntime", "onnx", "onnx-inline")
GPU_VARIANTS = ("onnxruntime-cuda", "onnxruntime-tensorrt", "onnx-gpu")

# The coordinates in the order coordinate descent visits them: the backend
# first (it moves everything else most), then the knobs of the batcher.
DIMS = ("variant", "instances", "max_batch_size", "delay_us", "preferred", "threads", "gpus")
ORDINAL = {"instances", "max_batch_size", "delay_us", "threads", "gpus"}

# Parameters the tuner owns: a candidate sets them, the base config's go.
TUNED_PARAMS = ("ferry_inline", "intra_op_thread_count", "gpu_mem_limit")


def is_gpu(variant):
    return VARIANTS[variant]["kind"] == "KIND_GPU"


def applies(dim, cand):
    """Does coordinate `dim` mean anything for candidate `cand`?"""
    v = cand["variant"]
    if dim == "threads":
        return v == "onnxruntime"
    if dim == "gpus":
        return is_gpu(v)
    if dim in ("delay_us", "preferred"):
        return cand["max_batch_size"] > 0 and (dim == "delay_us" or cand["delay_us"] >= 0)
    if dim == "max_batch_size":
        return cand["max_batch_size"] > 0
    return True


def key(cand):
    return tuple(cand[d] for d in DIMS)


def label(cand):
    """A short human name: onnxruntime x2 b32 d100 pref t2 gpu[0]."""
    s = [cand["variant"], "x%d" % cand["instances"]]
    if cand["gpus"] is not None:
        s.append("gpu[%s]" % ",".join(map(str, cand["gpus"])))
    if cand["max_batch_size"] > 0:
        s.append("b%d" % cand["max_batch_size"])
        s.append("nodb" if cand["delay_us"] < 0 else "d%d" % cand["delay_us"])
        if cand["delay_us"] >= 0 and cand["preferred"] == "max":
            s.append("pref")
    if cand["threads"] is not None:
        s.append("t%d" % cand["threads"])
    return " ".join(s)


class Space:
    """The values each coordinate may take (ordinal ones in order)."""

    def __init__(self, variants, instances, max_batch_sizes, delays, preferred, threads,
                 gpu_sets):
        self.values = {
            "variant": list(variants),
            "instances": sorted(set(instances)),
            "max_batch_size": sorted(set(max_batch_sizes)),
            "delay_us": sorted(set(delays)),
            "preferred": list(preferred),
            "threads": sorted(set(threads)),
            "gpus": [tuple(g) for g in gpu_sets],
        }
        self.unavailable = {}   # variant -> why it could not load

    def options(self, dim, cand):
        """The values `dim` may take at `cand` (its applicable ones)."""
        vals = self.values[dim]
        if dim == "variant":
            return [v for v in vals if v not in self.unavailable]
        return vals

    def normalize(self, cand):
        """cand with the coordinates that do not apply set to None, and
        those that apply but are None set to their first value."""
        c = dict(cand)
        if not is_gpu(c["variant"]):
            c["gpus"] = None
        elif c["gpus"] is None:
            c["gpus"] = self.values["gpus"][0] if self.values["gpus"] else (0,)
        if c["variant"] != "onnxruntime":
            c["threads"] = None
        elif c["threads"] is None:
            c["threads"] = self.values["threads"][0] if self.values["threads"] else 1
        if c["max_batch_size"] <= 0:
            c["max_batch_size"], c["delay_us"], c["preferred"] = 0, -1, "none"
        if c["delay_us"] < 0:
            c["preferred"] = "none"
        return c

    def add_point(self, cand):
        """Make sure every coordinate of cand is among the values (the
        default config's own values join the space)."""
        for d in DIMS:
            v = cand[d]
            if v is None or v in self.values[d]:
                continue
            self.values[d].append(v)
            if d in ORDINAL:
                self.values[d].sort()

    def all_points(self):
        """Every distinct candidate of the space (for --search exhaustive)."""
        out, seen = [], set()

        def rec(i, c):
            if i == len(DIMS):
                n = self.normalize(c)
                if key(n) not in seen:
                    seen.add(key(n))
                    out.append(n)
                return
            d = DIMS[i]
            vals = self.options(d, c) or [None]
            for v in vals:
                rec(i + 1, dict(c, **{d: v}))
        start = {d: None for d in DIMS}
        start.update(max_batch_size=0, delay_us=-1, preferred="none")
        rec(0, start)
        # max_batch_size 0 (no batching) only where the space has it
        return [c for c in out if c["max_batch_size"] in self.values["max_batch_size"]]


# ---------------------------------------------------------------------------
# The base config and a candidate's config

def _param_entries(msg):
    """The parameters of a message as (key, value message) pairs."""
    out = []
    for p in pb.get_all(msg, "parameters"):
        if isinstance(p, list):
            out.append((pb.unquote(pb.get(p, "key", "")), p))
    return out


def param(msg, name):
    """The string value of parameter `name` in config `msg`, or None."""
    for k, p in _param_entries(msg):
        if k == name:
            v = pb.get(p, "value")
            if isinstance(v, list):
                return pb.unquote(pb.get(v, "string_value", '""'))
    return None


_DTYPE = {"BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16",
          "UINT32": "TYPE_UINT32", "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8",
          "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
          "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64",
          "BF16": "TYPE_BF16", "BYTES": "TYPE_STRING"}


def io_from_metadata(meta, batching):
    """input / output fields from KServe model metadata (a dict as
    ferry.Model.metadata gives it): for configs that left them to
    auto-complete, which the native executor does not do."""
    out = []
    for field, items in (("input", meta["inputs"]), ("output", meta["outputs"])):
        lst = pb.List()
        for t in items:
            shape = list(t["shape"])
            if batching and shape:
                shape = shape[1:]
            lst.append([("name", pb.quote(t["name"])),
                        ("data_type", pb.Scalar(_DTYPE.get(t["datatype"], "TYPE_" +
                                                           t["datatype"]))),
                        ("dims", pb.List(pb.Scalar(str(d)) for d in shape))])
        out.append((field, lst))
    return out


def default_point(base, info, gpus):
    """The coordinates of the config the repository serves now: `base` its
    config.pbtxt (a message; [] where there is none) and `info` the broker's
    ferry_model_info of it (backend, max_batch_size: as completed)."""
    backend = info.get("backend") or pb.unquote(pb.get(base, "backend", '""')) or "onnxruntime"
    if backend not in ("onnx", "onnxruntime"):
        backend = "onnxruntime"
    groups = [g for g in pb.get_all(base, "instance_group") if isinstance(g, list)]
    kind = str(pb.get(groups[0], "kind", "KIND_CPU")) if groups else "KIND_CPU"
    count = sum(int(pb.get(g, "count", "1")) for g in groups) if groups else 1
    gpu_ids = None
    if kind == "KIND_GPU":
        gpu_ids = tuple(int(x) for x in pb.get_all(groups[0], "gpus")) or \
            tuple(range(max(gpus, 1)))
        count = max(1, count // max(len(gpu_ids), 1))
    inline = (param(base, "ferry_inline") or "").lower() in ("true", "1")
    if kind == "KIND_GPU":
        variant = "onnx-gpu" if backend == "onnx" else "onnxruntime-cuda"
        if backend == "onnxruntime" and "tensorrt" in pb.dump(base):
            variant = "onnxruntime-tensorrt"
    else:
        variant = "onnx-inline" if backend == "onnx" and inline else backend
    mbs = info.get("max_batch_size")
    if mbs is None or mbs < 0:
        mbs = int(pb.get(base, "max_batch_size", "0"))
    db = pb.get(base, "dynamic_batching")
    if isinstance(db, list):
        delay = int(pb.get(db, "max_queue_delay_microseconds", "0"))
        pref = pb.get_all(db, "preferred_batch_size")
        preferred = "max" if pref and int(pref[-1]) == mbs else "none"
    elif pb.get(base, "max_batch_size") is None and mbs > 0:
        # auto-complete turned dynamic batching on with max_batch_size
        delay, preferred = 0, "none"
    else:
        delay, preferred = -1, "none"
    threads = param(base, "intra_op_thread_count")
    return {"variant": variant, "instances": count, "gpus": gpu_ids, "max_batch_size": mbs,
            "delay_us": delay, "preferred": preferred,
            "threads": int(threads) if threads and threads.isdigit() and int(threads) > 0
            else (1 if variant == "onnxruntime" else None)}


def candidate_config(base, name, cand, meta, batched, gpu_mem_budget=None):
    """The config message of `cand`, served as `name`: the base config with
    the tuned fields replaced and everything else kept.  meta: the served
    model's metadata; batched: whether its shapes lead with the batch
    dimension (the served max_batch_size > 0)."""
    v = VARIANTS[cand["variant"]]
    msg = pb.remove(base, "name", "backend", "platform", "max_batch_size", "instance_group",
                    "version_policy", "dynamic_batching")
    if v.get("accelerator"):
        msg = pb.remove(msg, "optimization")
    if not pb.get_all(msg, "input") and not pb.get_all(msg, "output"):
        msg += io_from_metadata(meta, batched)
    # parameters: the base's, less those the tuner sets
    params = [(k, p) for k, p in _param_entries(msg) if k not in TUNED_PARAMS]
    msg = pb.remove(msg, "parameters")
    want = dict(v["params"])
    if cand["threads"] is not None:
        want["intra_op_thread_count"] = str(cand["threads"])
    if is_gpu(cand["variant"]) and v["backend"] == "onnxruntime" and gpu_mem_budget:
        per = max(1, int(gpu_mem_budget) // max(cand["instances"], 1))
        want["gpu_mem_limit"] = str(per)
    for k, val in want.items():
        params.append((k, [("key", pb.quote(k)),
                           ("value", [("string_value", pb.quote(val))])]))
    head = [("name", pb.quote(name)), ("backend", pb.quote(v["backend"])),
            ("max_batch_size", pb.Scalar(str(cand["max_batch_size"])))]
    group = [("count", pb.Scalar(str(cand["instances"]))), ("kind", pb.Scalar(v["kind"]))]
    if cand["gpus"] is not None:
        group.append(("gpus", pb.List(pb.Scalar(str(g)) for g in cand["gpus"])))
    tail = [("instance_group", pb.List([group]))]
    if cand["max_batch_size"] > 0 and cand["delay_us"] >= 0:
        db = pb.get(base, "dynamic_batching")
        db = pb.remove(db if isinstance(db, list) else [], "max_queue_delay_microseconds",
                       "preferred_batch_size")
        if cand["preferred"] == "max":
            db = [("preferred_batch_size", pb.List([pb.Scalar(str(cand["max_batch_size"]))]))] \
                + db
        db = [("max_queue_delay_microseconds", pb.Scalar(str(cand["delay_us"])))] + db
        tail.append(("dynamic_batching", db))
    if params:
        tail.append(("parameters", pb.List(p for _, p in params)))
    if v.get("accelerator"):
        opt = pb.get(base, "optimization")
        opt = pb.remove(opt if isinstance(opt, list) else [], "execution_accelerators")
        opt.append(("execution_accelerators",
                    [("gpu_execution_accelerator",
                      pb.List([[("name", pb.quote(v["accelerator"]))]]))]))
        tail.append(("optimization", opt))
    return head + msg + tail
