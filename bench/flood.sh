#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/flood.sh - ferryd under a flood from an efficient client: h2load
# (Debian's nghttp2-client) sending one pre-serialized request over and
# over, as fast as the server answers.
#
#   bench/flood.sh [BUILD_DIR]             # default build dir: build
#
# Targets, each ROUNDS times, interleaved (a burst of other load on this
# shared machine then falls on all of them):
#   grpc-live    gRPC ServerLive                 (HTTP/2, the gRPC framing)
#   grpc-infer   gRPC ModelInfer of the identity model
#   http-live    GET /v2/health/live             (HTTP/1.1, keep-alive)
#   http-infer   POST /v2/models/identity/infer  (HTTP/1.1, binary tensor data)
# The model is bench/triton/run.sh's identity: INPUT0 FP32 [16] -> OUTPUT0,
# max_batch_size 256, dynamic batching with no queue delay, one CPU
# instance; each request carries a batch of 1.  The ModelInfer bytes are
# packed by tritonclient's own protobuf classes (the project's .venv).
#
# h2load counts a gRPC error as a success (its HTTP status is 200): the
# script reads the model's success count from ferryd's statistics before
# and after each infer flood and fails when it does not match h2load's.
#
# libmicrohttpd speaks HTTP/1.1 only (no HTTP/2), so the HTTP floods are
# h2load --h1; HTTP/1.1 has one request in flight per connection, so they
# use C x M connections where gRPC uses C connections x M streams.
#
# Triton side by side: with TRITON_IDENTITY=DIR (a backend directory
# holding identity/libtriton_identity.so, made by
# bench/triton/build-identity.sh) and the tritonserver of nvidia-pytriton
# in $VENV (.venv-triton, as bench/triton/run.sh installs it), the same
# floods run against Triton 2.51 with the same model config, its C++
# identity backend, in the same rounds.
#
# Environment: C (16 connections), M (32 streams each), SECONDS_EACH (4),
# ROUNDS (3), PY (.venv/bin/python), OUT (bench/out/flood), TRITON_IDENTITY,
# VENV.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
build=$(cd "$build" && pwd)
ferryd=$build/broker/ferryd
C=${C:-16}
M=${M:-32}
SECONDS_EACH=${SECONDS_EACH:-4}
ROUNDS=${ROUNDS:-3}
PY=${PY:-$top/.venv/bin/python}
OUT=${OUT:-$top/bench/out/flood}
[ -x "$ferryd" ] || { echo "flood.sh: $ferryd not built" >&2; exit 2; }
command -v h2load >/dev/null || { echo "flood.sh: h2load not found (Debian package nghttp2-client)" >&2; exit 77; }
"$PY" -c 'import tritonclient.grpc' 2>/dev/null || { echo "flood.sh: $PY has no tritonclient[grpc]" >&2; exit 77; }
mkdir -p "$OUT"

tmp=$(mktemp -d /tmp/ferry-flood-XXXXXX)
pid=
tpid=
cleanup() {
	[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	[ -z "$tpid" ] || { kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null; }
	cp "$tmp"/*.log "$OUT/" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/repo/identity/1"
cat >"$tmp/repo/identity/config.pbtxt" <<'EOF'
name: "identity"
backend: "identity"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
max_batch_size: 256
dynamic_batching { max_queue_delay_microseconds: 0 }
instance_group [ { kind: KIND_CPU count: 1 } ]
EOF

# The request bodies: gRPC messages with their 5-byte gRPC frame, and the
# HTTP body with its JSON header length.
"$PY" - "$tmp" <<'EOF'
import json, struct, sys
import numpy as np
from tritonclient.grpc import service_pb2
d = sys.argv[1]
def frame(m):
    b = m.SerializeToString()
    return b"\0" + struct.pack(">I", len(b)) + b
x = np.arange(16, dtype=np.float32).reshape(1, 16)
q = service_pb2.ModelInferRequest(model_name="identity")
q.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 16])
q.raw_input_contents.append(x.tobytes())
open(d + "/grpc-infer.bin", "wb").write(frame(q))
open(d + "/grpc-live.bin", "wb").write(frame(service_pb2.ServerLiveRequest()))
h = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
                            "parameters": {"binary_data_size": 64}}],
                "parameters": {"binary_data_output": True}}).encode()
open(d + "/http-infer.bin", "wb").write(h + x.tobytes())
open(d + "/http-infer.len", "w").write(str(len(h)))
EOF

pick_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
gport=$(pick_port)
hport=$(pick_port)
"$ferryd" --model-repository "$tmp/repo" --socket "$tmp/ferryd.sock" --grpc-port "$gport" \
	--http-port "$hport" --metrics-port 0 --log-level warn 2>"$tmp/ferryd.log" &
pid=$!
for _ in $(seq 100); do
	curl -sf "127.0.0.1:$hport/v2/health/ready" >/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/ferryd.log" >&2; exit 1; }
	sleep 0.1
done

servers=ferryd
VENV=${VENV:-$top/.venv-triton}
if [ -n "${TRITON_IDENTITY:-}" ]; then
	site=$("$VENV/bin/python" -c 'import pytriton, os; print(os.path.dirname(os.path.dirname(pytriton.__file__)))')
	dist=$site/pytriton/tritonserver
	[ -f "$TRITON_IDENTITY/identity/libtriton_identity.so" ] ||
		{ echo "flood.sh: no identity/libtriton_identity.so in $TRITON_IDENTITY" >&2; exit 1; }
	mkdir -p "$tmp/trepo"
	cp -r "$tmp/repo/identity" "$tmp/trepo/"
	tgport=$(pick_port)
	thport=$(pick_port)
	LD_LIBRARY_PATH="$site/nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	"$dist/bin/tritonserver" --model-repository "$tmp/trepo" --backend-directory "$TRITON_IDENTITY" \
		--grpc-address 127.0.0.1 --grpc-port "$tgport" --http-address 127.0.0.1 \
		--http-port "$thport" --allow-metrics false --allow-gpu-metrics false \
		--strict-readiness true --exit-on-error true --log-verbose 0 >"$tmp/tritonserver.log" 2>&1 &
	tpid=$!
	for _ in $(seq 120); do
		curl -sf "127.0.0.1:$thport/v2/health/ready" >/dev/null && break
		kill -0 "$tpid" 2>/dev/null || { cat "$tmp/tritonserver.log" >&2; exit 1; }
		sleep 0.5
	done
	tver=$(curl -sf "127.0.0.1:$thport/v2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
	echo "flood.sh: Triton $tver (C++ identity backend) on gRPC $tgport, HTTP $thport"
	servers="ferryd triton"
fi

# success SERVER: the identity model's success count.
success() {
	local p=$hport
	[ "$1" = ferryd ] || p=$thport
	curl -sf "127.0.0.1:$p/v2/models/identity/stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["success"]["count"])'
}

# run SERVER NAME: one flood; prints "SERVER-NAME req/s succeeded".
run() {
	local srv=$1 name=$2 args log=$tmp/h2load-$1-$2.log gport=$gport hport=$hport
	[ "$srv" = ferryd ] || { gport=$tgport; hport=$thport; }
	case $name in
	grpc-*)
		local m=ModelInfer
		[ "$name" = grpc-live ] && m=ServerLive
		args=(-c "$C" -m "$M" -d "$tmp/$name.bin" -H 'content-type: application/grpc'
		      -H 'te: trailers' "http://127.0.0.1:$gport/inference.GRPCInferenceService/$m")
		;;
	http-live)
		args=(--h1 -c $((C * M)) -m 1 "http://127.0.0.1:$hport/v2/health/live") ;;
	http-infer)
		args=(--h1 -c $((C * M)) -m 1 -d "$tmp/http-infer.bin"
		      -H "Inference-Header-Content-Length: $(cat "$tmp/http-infer.len")"
		      -H 'content-type: application/octet-stream'
		      "http://127.0.0.1:$hport/v2/models/identity/infer") ;;
	esac
	local before=0 after=0
	[[ $name != *-infer ]] || before=$(success "$srv")
	h2load -D "$SECONDS_EACH" --warm-up-time=1 "${args[@]}" >"$log" 2>&1 || true
	[[ $name != *-infer ]] || after=$(success "$srv")
	local rps ok
	rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$log")
	ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$log")
	if [ -z "$rps" ] || [ -z "$ok" ]; then
		echo "flood.sh: $srv $name: h2load said:" >&2
		cat "$log" >&2
		exit 1
	fi
	# Every request h2load counted must be a success in ferryd (the
	# warm-up's requests too, so at least as many).
	if [[ $name == *-infer ]] && [ $((after - before)) -lt "$ok" ]; then
		echo "flood.sh: $srv $name: h2load counted $ok successes, $srv $((after - before))" >&2
		exit 1
	fi
	echo "$srv-$name $rps $ok"
}

echo "flood.sh: $(date -u +%FT%TZ), $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg)," \
	"h2load $(h2load --version | head -1 | awk '{print $2}'), $C connections x $M streams" \
	"(HTTP/1.1: $((C * M)) connections), ${SECONDS_EACH}s each after 1s warm-up, $ROUNDS rounds"
: >"$tmp/results"
for r in $(seq "$ROUNDS"); do
	for t in grpc-live grpc-infer http-live http-infer; do
		for srv in $servers; do
			run "$srv" "$t" | tee -a "$tmp/results"
		done
	done
done
echo "flood.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg)"
cp "$tmp/results" "$OUT/results.txt"
python3 - "$tmp/results" <<'EOF'
import sys, statistics
r = {}
for line in open(sys.argv[1]):
    n, rps, _ = line.split()
    r.setdefault(n, []).append(float(rps))
med = {n: statistics.median(v) for n, v in r.items()}
servers = [s for s in ("ferryd", "triton") if s + "-grpc-live" in r]
print()
print("| target | " + " | ".join(f"{s} requests/s, median (min-max)" for s in servers) + " |")
print("|---" * (len(servers) + 1) + "|")
for t in ("grpc-live", "grpc-infer", "http-live", "http-infer"):
    cells = []
    for s in servers:
        v = r[s + "-" + t]
        cells.append(f"{med[s + '-' + t]:,.0f} ({min(v):,.0f}-{max(v):,.0f})")
    print(f"| {t} | " + " | ".join(cells) + " |")
print()
for s in servers:
    gi, gl = r[s + "-grpc-infer"], r[s + "-grpc-live"]
    print(f"{s}: gRPC ModelInfer / ServerLive {med[s + '-grpc-infer'] / med[s + '-grpc-live']:.2f} "
          f"(per round: {', '.join(f'{a / b:.2f}' for a, b in zip(gi, gl))}); "
          f"HTTP infer / live {med[s + '-http-infer'] / med[s + '-http-live']:.2f}; "
          f"HTTP infer / gRPC ModelInfer {med[s + '-http-infer'] / med[s + '-grpc-infer']:.2f}")
if "triton" in servers:
    for t in ("grpc-infer", "http-infer", "grpc-live", "http-live"):
        a, b = r["ferryd-" + t], r["triton-" + t]
        print(f"ferryd / Triton, {t}: {med['ferryd-' + t] / med['triton-' + t]:.2f} "
              f"(per round: {', '.join(f'{x / y:.2f}' for x, y in zip(a, b))})")
EOF
