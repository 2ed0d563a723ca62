#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/triton/run.sh - ferryd against the real Triton Inference Server on
# the same machine (issue 6, "Against Triton, on the same machine").
#
#   bench/triton/run.sh [BUILD_DIR]        # default build dir: build
#
# 1. Installs nvidia-pytriton (PyPI; it carries a tritonserver binary, its
#    Python backend and one backend stub per Python version) into a virtual
#    environment, $VENV (default .venv-triton, gitignored).
# 2. Writes two model repositories with the same identity model: input
#    INPUT0 FP32 [16] (the shape of ferry-bench-load's MLP runs), output
#    OUTPUT0, max_batch_size 256, dynamic batching with no queue delay, one
#    CPU instance.  Triton runs it in its Python backend (model.py, numpy);
#    ferryd in its built-in identity backend.
# 3. Starts tritonserver, gRPC only (--http-port 0 does not turn HTTP off:
#    Triton then serves it on an ephemeral port, "Started HTTPService at
#    0.0.0.0:0", so --allow-http false --allow-metrics false) and ferryd (gRPC, with --allow-client-shm, and
#    its shared-memory socket).
# 4. Runs build/ferry-bench-load with the same options against each
#    target: Triton over gRPC and over gRPC with system shared memory,
#    ferryd over the same two, and ferryd over its own shared-memory
#    session.  ferry-bench-load's gRPC clients speak plain KServe v2, so
#    Triton is measured exactly as ferryd is.
#
# Environment: CONCURRENCY ("1 2 4 8"), WINDOW_MS (500), SHM_WINDOW_MS (20), VENV, PYTRITON_VERSION (0.7.0),
# OUT (bench/out/triton): CSVs and the servers' logs.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
build=$(cd "$build" && pwd)
load=$build/ferry-bench-load
ferryd=$build/broker/ferryd
for b in "$load" "$ferryd"; do
	[ -x "$b" ] || { echo "triton/run.sh: $b not built" >&2; exit 2; }
done
VENV=${VENV:-$top/.venv-triton}
PYTRITON_VERSION=${PYTRITON_VERSION:-0.7.0}
CONCURRENCY=${CONCURRENCY:-"1 2 4 8"}
WINDOW_MS=${WINDOW_MS:-500}
SHM_WINDOW_MS=${SHM_WINDOW_MS:-20}
OUT=${OUT:-$top/bench/out/triton}
mkdir -p "$OUT"

# ---- 1. tritonserver from PyPI ------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
	python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import pytriton" 2>/dev/null; then
	"$VENV/bin/pip" install -q "nvidia-pytriton==$PYTRITON_VERSION"
fi
site=$("$VENV/bin/python" -c 'import pytriton, os; print(os.path.dirname(os.path.dirname(pytriton.__file__)))')
dist=$site/pytriton/tritonserver
pyver=$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
stub=$dist/python_backend_stubs/$pyver/triton_python_backend_stub
[ -x "$dist/bin/tritonserver" ] || { echo "triton/run.sh: no tritonserver in $dist" >&2; exit 1; }
[ -x "$stub" ] || { echo "triton/run.sh: no Python backend stub for Python $pyver" >&2; exit 1; }
if ldd "$dist/bin/tritonserver" "$stub" | grep -q "not found"; then
	echo "triton/run.sh: tritonserver or its stub misses libraries:" >&2
	ldd "$dist/bin/tritonserver" "$stub" | grep "not found" >&2
	exit 1
fi
echo "triton/run.sh: nvidia-pytriton $("$VENV/bin/pip" show nvidia-pytriton | sed -n 's/^Version: //p'), Python $pyver," \
	"installed size $(du -sh "$site/pytriton" "$site/nvidia_pytriton.libs" | awk '{print $1}' | paste -sd+)"

tmp=$(mktemp -d /tmp/ferry-triton-XXXXXX)
triton_pid=
ferryd_pid=
cleanup() {
	set +e
	[ -n "$triton_pid" ] && kill "$triton_pid" 2>/dev/null
	[ -n "$ferryd_pid" ] && kill "$ferryd_pid" 2>/dev/null
	wait 2>/dev/null
	cp "$tmp"/*.log "$OUT/" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Triton finds a backend as <backend-directory>/<name>/libtriton_<name>.so;
# the Python backend runs each model instance in a stub process that it
# finds next to the library (what PyTriton does: copy the stub for this
# Python in).
mkdir -p "$tmp/backends/python"
ln -s "$dist/backends/python/libtriton_python.so" "$tmp/backends/python/"
ln -s "$dist/backends/python/triton_python_backend_utils.py" "$tmp/backends/python/"
cp "$stub" "$tmp/backends/python/triton_python_backend_stub"

# ---- 2. the identity model, twice -----------------------------------------
io='input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
max_batch_size: 256
dynamic_batching { max_queue_delay_microseconds: 0 }
instance_group [ { kind: KIND_CPU count: 1 } ]'
mkdir -p "$tmp/triton-repo/identity/1" "$tmp/ferry-repo/identity/1"
printf 'name: "identity"\nbackend: "python"\n%s\n' "$io" >"$tmp/triton-repo/identity/config.pbtxt"
printf 'name: "identity"\nbackend: "identity"\n%s\n' "$io" >"$tmp/ferry-repo/identity/config.pbtxt"
cat >"$tmp/triton-repo/identity/1/model.py" <<'EOF'
# Identity in Triton's Python backend: OUTPUT0 = INPUT0, per request of the
# (dynamically batched) list that execute() receives.
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
        return out
EOF

# ---- 3. the servers --------------------------------------------------------
pick_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
tport=$(pick_port)
fport=$(pick_port)
# The stub embeds the venv's Python (numpy comes from there); copied out of
# the wheel it loses the relative rpath to the wheel's bundled libraries
# (libcudart among them), so name their directory as PyTriton does.
LD_LIBRARY_PATH="$site/nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
PATH="$VENV/bin:$PATH" "$dist/bin/tritonserver" --model-repository "$tmp/triton-repo" \
	--backend-directory "$tmp/backends" --cache-directory "$dist/caches" \
	--grpc-address 127.0.0.1 --grpc-port "$tport" --allow-http false --allow-metrics false \
	--allow-gpu-metrics false --strict-readiness true --exit-on-error true \
	--log-verbose 0 >"$tmp/tritonserver.log" 2>&1 &
triton_pid=$!
"$ferryd" --model-repository "$tmp/ferry-repo" --socket "$tmp/ferryd.sock" \
	--grpc-port "$fport" --allow-client-shm --metrics-port 0 --log-level warn 2>"$tmp/ferryd.log" &
ferryd_pid=$!
for _ in $(seq 120); do
	grep -q "Started GRPCInferenceService" "$tmp/tritonserver.log" && break
	kill -0 "$triton_pid" 2>/dev/null || break
	sleep 0.5
done
if ! grep -q "Started GRPCInferenceService" "$tmp/tritonserver.log"; then
	echo "triton/run.sh: tritonserver did not start; its log:" >&2
	cat "$tmp/tritonserver.log" >&2
	exit 1
fi
for _ in $(seq 100); do [ -S "$tmp/ferryd.sock" ] && break; sleep 0.1; done
tver=$(sed -n 's/.*server_version *| *\([0-9.]*\).*/\1/p' "$tmp/tritonserver.log" | head -1)
echo "triton/run.sh: tritonserver ${tver:-?} on gRPC $tport, ferryd on gRPC $fport and $tmp/ferryd.sock"

# ---- 4. the same load against each --------------------------------------
# Interleaved: each concurrency level is measured on every target in turn,
# so a burst of other load on this shared machine falls on all of them.
# ferry-bench-load counts a window's completions from its latency ring
# (131072 per client process), which caps what one window can report at
# 131072 / window: 262 k/s for 500 ms, 2.6 M/s for 50 ms.  ferry's shared
# memory goes past both with the identity model, so its windows are
# SHM_WINDOW_MS (20 ms: 6.5 M/s).
targets="triton-grpc=grpc://127.0.0.1:$tport triton-grpc-shm=grpc-shm://127.0.0.1:$tport
ferryd-grpc=grpc://127.0.0.1:$fport ferryd-grpc-shm=grpc-shm://127.0.0.1:$fport
ferryd-shm=$tmp/ferryd.sock"
echo "triton/run.sh: $(date -u +%FT%TZ), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
csv=$OUT/triton.csv
rm -f "$csv"
for c in $CONCURRENCY; do
	for t in $targets; do
		name=${t%%=*}
		url=${t#*=}
		win=$WINDOW_MS
		[ "$name" = ferryd-shm ] && win=$SHM_WINDOW_MS
		"$load" -u "$url" -m identity -b 1 --concurrency-range "$c:$c:1" -p "$win" \
			-f "$tmp/one.csv" 2>/dev/null | sed -n '3p' | sed "s/^/$name  /"
		[ -f "$csv" ] || sed -n '1s/^/target,/p' "$tmp/one.csv" >"$csv"
		sed -n "2s/^/$name,/p" "$tmp/one.csv" >>"$csv"
	done
done
echo "triton/run.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg); CSV: $csv"

# one table: infer/s and p50 per target and concurrency
python3 - "$csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
names = ["triton-grpc", "triton-grpc-shm", "ferryd-grpc", "ferryd-grpc-shm", "ferryd-shm"]
d = {(r["target"], r["concurrency"]): r for r in rows}
levels = sorted({r["concurrency"] for r in rows}, key=float)
print()
print("| conc | " + " | ".join(f"{n} infer/s (p50 us)" for n in names) +
      " | ferryd / Triton, gRPC | ferryd / Triton, gRPC + shm |")
print("|---" * (len(names) + 3) + "|")
for c in levels:
    cells, thr = [], {}
    for n in names:
        r = d.get((n, c))
        if r:
            thr[n] = float(r["infer_per_s"])
            flag = "" if r["stable"] == "1" else " (unstable)"
            cells.append(f"{thr[n]:.0f} ({float(r['p50_us']):.0f}){flag}")
        else:
            cells.append("-")
    def ratio(a, b):
        return f"{thr[a] / thr[b]:.1f}x" if a in thr and b in thr and thr[b] else "-"
    print(f"| {float(c):g} | " + " | ".join(cells) +
          f" | {ratio('ferryd-grpc', 'triton-grpc')} | {ratio('ferryd-grpc-shm', 'triton-grpc-shm')} |")
EOF
