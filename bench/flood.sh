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
# gRPC's floor in the same rounds: ferry-grpc-echo (bench/grpc_echo.c), a
# bare unary server on gRPC core with ferryd's thread layout and no ferry
# in it, answers ServerLive and ModelInfer with the very bytes ferryd
# answers (nothing decoded).  Its ModelInfer / ServerLive ratio is what
# any server on gRPC core reaches with this client on this machine, and
# its ModelInfer rate bounds ferryd's.  It takes the gRPC floods only.
#
# Environment: C (16 connections), M (32 streams each), SECONDS_EACH (4),
# ROUNDS (3), PY (.venv/bin/python), OUT (bench/out/flood), TRITON_IDENTITY,
# VENV, TARGETS (grpc-live grpc-infer http-live http-infer), ECHO (1; 0:
# no floor), GRPC_THREADS (4: ferryd's --grpc-threads and the echo's).
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
TARGETS=${TARGETS:-grpc-live grpc-infer http-live http-infer}
ECHO=${ECHO:-1}
GRPC_THREADS=${GRPC_THREADS:-4}
[ -x "$ferryd" ] || { echo "flood.sh: $ferryd not built" >&2; exit 2; }
command -v h2load >/dev/null || { echo "flood.sh: h2load not found (Debian package nghttp2-client)" >&2; exit 77; }
"$PY" -c 'import tritonclient.grpc' 2>/dev/null || { echo "flood.sh: $PY has no tritonclient[grpc]" >&2; exit 77; }
mkdir -p "$OUT"

tmp=$(mktemp -d /tmp/ferry-flood-XXXXXX)
pid=
tpid=
epid=
# (A server that died already makes kill fail: errexit must not stop the
# cleanup there.)
cleanup() {
	local p
	for p in $pid $epid $tpid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	cp "$tmp"/*.log "$OUT/" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# The model and the request bodies (bench/flood_bodies.py: the identity
# repository, the framed ModelInfer and ServerLive, the HTTP body).
"$PY" "$top/bench/flood_bodies.py" "$tmp"

pick_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
gport=$(pick_port)
hport=$(pick_port)
"$ferryd" --model-repository "$tmp/repo" --socket "$tmp/ferryd.sock" --grpc-port "$gport" \
	--grpc-threads "$GRPC_THREADS" --http-port "$hport" --metrics-port 0 --log-level warn \
	2>"$tmp/ferryd.log" &
pid=$!
for _ in $(seq 100); do
	curl -sf "127.0.0.1:$hport/v2/health/ready" >/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/ferryd.log" >&2; exit 1; }
	sleep 0.1
done

servers=ferryd
if [ "$ECHO" = 1 ]; then
	[ -x "$build/ferry-grpc-echo" ] || { echo "flood.sh: $build/ferry-grpc-echo not built" >&2; exit 2; }
	eport=$(pick_port)
	"$build/ferry-grpc-echo" "$eport" "$GRPC_THREADS" 2>"$tmp/echo.log" &
	epid=$!
	servers="$servers echo"
fi
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
	servers="$servers triton"
fi

# success SERVER: the identity model's success count.
success() {
	local p=$hport
	[ "$1" = ferryd ] || p=$thport
	curl -sf "127.0.0.1:$p/v2/models/identity/stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["success"]["count"])'
}

# usage PID: the CPU time of every thread of PID in clock ticks, and the
# context switches of its threads now alive.
usage() {
	local t=0 c=0 v
	t=$(awk '{print $14 + $15}' "/proc/$1/stat")
	for v in $(cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {print $2}'); do
		c=$((c + v))
	done
	echo "$t $c"
}

# run SERVER NAME: one flood; prints "SERVER-NAME req/s succeeded
# server-CPU-us/request context-switches/request".  The server's CPU
# and switches are read over the middle of the flood, W seconds from
# 0.2 s after the warm-up to 0.2 s before the end, and divided by the
# requests h2load saw in that time at its rate: the CPU per request
# is steadier on a shared machine than the rate, which moves with
# whatever else runs.
run() {
	local srv=$1 name=$2 args log=$tmp/h2load-$1-$2.log gport=$gport hport=$hport
	[ "$srv" != triton ] || { gport=$tgport; hport=$thport; }
	[ "$srv" != echo ] || gport=$eport
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
	local before=0 after=0 count=0
	[[ $name != *-infer || $srv = echo ]] || { count=1; before=$(success "$srv"); }
	local spid=$pid
	[ "$srv" != triton ] || spid=$tpid
	[ "$srv" != echo ] || spid=$epid
	( sleep 1.2; usage "$spid"; sleep "$(echo "$SECONDS_EACH - 0.4" | bc)"; usage "$spid" ) \
		>"$tmp/usage" 2>/dev/null &
	local upid=$!
	h2load -D "$SECONDS_EACH" --warm-up-time=1 "${args[@]}" >"$log" 2>&1 || true
	wait "$upid" || true
	# Triton 2.51 has crashed (SIGSEGV in its gRPC server) under these
	# floods here: say so and go on without it.
	if [ "$srv" = triton ] && ! kill -0 "$tpid" 2>/dev/null; then
		echo "flood.sh: Triton died during $name (tritonserver.log); the rest without it" >&2
		return 3
	fi
	[ "$count" = 0 ] || after=$(success "$srv")
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
	if [ "$count" = 1 ] && [ $((after - before)) -lt "$ok" ]; then
		echo "flood.sh: $srv $name: h2load counted $ok successes, $srv $((after - before))" >&2
		exit 1
	fi
	local hz per
	hz=$(getconf CLK_TCK)
	per=$(awk -v rps="$rps" -v w="$SECONDS_EACH" -v hz="$hz" \
		'NR == 1 {t = $1; c = $2} NR == 2 {n = rps * (w - 0.4);
		 if (n > 0) printf "%.1f %.2f", ($1 - t) * 1e6 / hz / n, ($2 - c) / n}' "$tmp/usage")
	echo "$srv-$name $rps $ok ${per:-0 0}"
}

echo "flood.sh: $(date -u +%FT%TZ), $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg)," \
	"h2load $(h2load --version | head -1 | awk '{print $2}'), $C connections x $M streams" \
	"(HTTP/1.1: $((C * M)) connections), ${SECONDS_EACH}s each after 1s warm-up, $ROUNDS rounds," \
	"$GRPC_THREADS gRPC threads; servers: $servers"
: >"$tmp/results"
for r in $(seq "$ROUNDS"); do
	for t in $TARGETS; do
		for srv in $servers; do
			[[ $srv != echo || $t == grpc-* ]] || continue
			[[ $srv != triton || -n $tpid ]] || continue
			rc=0
			run "$srv" "$t" >"$tmp/one" || rc=$?
			[ "$rc" != 3 ] || { tpid=; continue; }
			[ "$rc" = 0 ] || exit "$rc"
			tee -a "$tmp/results" <"$tmp/one"
		done
	done
done
echo "flood.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg)"
cp "$tmp/results" "$OUT/results.txt"
python3 - "$tmp/results" <<'EOF'
import sys, statistics
r, cpu, ctx = {}, {}, {}
for line in open(sys.argv[1]):
    n, rps, _, us, cs = line.split()
    r.setdefault(n, []).append(float(rps))
    cpu.setdefault(n, []).append(float(us))
    ctx.setdefault(n, []).append(float(cs))
med = {n: statistics.median(v) for n, v in r.items()}
mcpu = {n: statistics.median(v) for n, v in cpu.items()}
mctx = {n: statistics.median(v) for n, v in ctx.items()}
servers = [s for s in ("ferryd", "echo", "triton") if any(k.startswith(s + "-") for k in r)]
targets = [t for t in ("grpc-live", "grpc-infer", "http-live", "http-infer")
           if any(s + "-" + t in r for s in servers)]
names = {"ferryd": "ferryd", "echo": "bare gRPC echo (floor)", "triton": "Triton"}
def table(what, cell):
    print()
    print("| target | " + " | ".join(f"{names[s]} {what}" for s in servers) + " |")
    print("|---" * (len(servers) + 1) + "|")
    for t in targets:
        print(f"| {t} | " + " | ".join(cell(s + "-" + t) if s + "-" + t in r else "-"
                                       for s in servers) + " |")
    print()
table("requests/s, median (min-max)",
      lambda k: f"{med[k]:,.0f} ({min(r[k]):,.0f}-{max(r[k]):,.0f})")
print("Server CPU per request (all its threads), median (min-max), and context switches per request:")
table("us/req, switches/req",
      lambda k: f"{mcpu[k]:.1f} ({min(cpu[k]):.1f}-{max(cpu[k]):.1f}), {mctx[k]:.2f}")
def ratio(a, b):
    if a not in r or b not in r:
        return None
    return (f"{med[a] / med[b]:.2f} (per round: "
            f"{', '.join(f'{x / y:.2f}' for x, y in zip(r[a], r[b]))})")
for s in servers:
    cr = None
    if s + "-grpc-infer" in r and s + "-grpc-live" in r:
        cr = f"{mcpu[s + '-grpc-live'] / mcpu[s + '-grpc-infer']:.2f}"
    parts = [("gRPC ModelInfer / ServerLive", ratio(s + "-grpc-infer", s + "-grpc-live")),
             ("the same by CPU per request (live us / infer us)", cr),
             ("HTTP infer / live", ratio(s + "-http-infer", s + "-http-live")),
             ("HTTP infer / gRPC ModelInfer", ratio(s + "-http-infer", s + "-grpc-infer"))]
    parts = [f"{n} {v}" for n, v in parts if v]
    if parts:
        print(f"{names[s]}: " + "; ".join(parts))
for a, b in (("ferryd", "echo"), ("triton", "echo"), ("ferryd", "triton")):
    if a in servers and b in servers:
        for t in targets:
            v = ratio(a + "-" + t, b + "-" + t)
            if v:
                print(f"{names[a]} / {names[b]}, {t}: {v}")
EOF
