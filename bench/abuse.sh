#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/abuse.sh - ferryd's network ports under attack (issue 19, "HTTP/2
# abuse"): a well-behaved client's latency alone and during each attack,
# and ferryd's RSS and fds during and after it.
#
#   bench/abuse.sh [BUILD_DIR]              # default build dir: build
#
# For each attack, a fresh ferryd of BUILD_DIR (ports of its own, the
# identity model of bench/flood.sh: INPUT0 FP32 [16], dynamic batching, one
# CPU instance) and:
#   alone    the good client: ferry-bench-load at one synchronous request in
#            flight, over gRPC (libferry) then over HTTP/1.1 (a keep-alive
#            connection), three windows of WINDOW_MS each: p50 and p99;
#   attack   the attack starts, after 1.5 s the same good client runs again
#            while it lasts; ferryd's VmRSS and fd count are sampled every
#            0.25 s from the attack's start to its end;
#   after    the attacker is gone: ferryd's RSS and fds once its fds are
#            back within 8 of their start (or after RECOVER_S seconds), and
#            how long that took.
# The attacks (h2load is Debian's nghttp2-client; ferry-h2attack is
# bench/h2attack.c):
#   grpc-h2load-streams   h2load, 64 connections x 256 streams of ModelInfer
#   grpc-h2load-conns     h2load, 1000 connections x 1 stream of ServerLive
#   grpc-streams          h2attack streams: 16 connections, streams opened
#                         with half a ModelInfer body and never ended
#   grpc-reset            h2attack reset: rapid reset (CVE-2023-44487),
#                         4 connections
#   grpc-slowloris        h2attack slowloris: 1000 connections, a header
#                         byte a second each
#   grpc-bigmeta          h2attack bigmeta: 1 MiB of metadata per request,
#                         8 connections
#   grpc-conns            h2attack conns: 5000 idle HTTP/2 connections
#   grpc-raw              h2attack raw: 2000 TCP connections that send nothing
#   grpc-ping             h2attack ping: a PING flood on 8 connections
#   http-h2load           h2load --h1, 512 connections of GET /v2/health/live
#   http-slowloris        h2attack h1-slowloris: 900 connections, a header
#                         byte a second each
#   http-slowloris-over   the same with 1100 connections: over the limit
#   http-bigheaders       h2attack h1-bigheaders: 100 KB headers, 8 connections
#   http-conns            h2attack h1-conns: 2000 connections that send nothing
# Each attack runs ATTACK_S seconds (default 12); ATTACKS="name ..." picks
# some.  ferry-h2attack connects from ATTACK_SRC (default 127.0.0.2, another
# loopback address: an attacker at another address than the good client,
# which per-address limits tell apart; h2load cannot, it comes from
# 127.0.0.1).  FERRYD=path runs another ferryd (an older build: before and
# after).  The measured part holds /tmp/ferry-heavy.lock (flock).  Results:
# a Markdown table on stdout, the raw CSVs and logs under OUT
# (bench/out/abuse).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
build=$(cd "$build" && pwd)
ferryd=${FERRYD:-$build/broker/ferryd}
load=$build/ferry-bench-load
attack=$build/ferry-h2attack
PY=${PY:-$top/.venv/bin/python}
OUT=${OUT:-$top/bench/out/abuse}
ATTACK_S=${ATTACK_S:-12}
WINDOW_MS=${WINDOW_MS:-1000}
RECOVER_S=${RECOVER_S:-60}
ATTACK_SRC=${ATTACK_SRC:-127.0.0.2}
ALL="grpc-h2load-streams grpc-h2load-conns grpc-streams grpc-reset grpc-slowloris grpc-bigmeta
grpc-conns grpc-raw grpc-ping http-h2load http-slowloris http-slowloris-over http-bigheaders
http-conns"
ATTACKS=${ATTACKS:-$ALL}
for p in "$ferryd" "$load" "$attack"; do
	[ -x "$p" ] || { echo "abuse.sh: $p not built" >&2; exit 2; }
done
command -v h2load >/dev/null || { echo "abuse.sh: h2load not found (Debian package nghttp2-client)" >&2; exit 77; }
"$PY" -c 'import tritonclient.grpc' 2>/dev/null || { echo "abuse.sh: $PY has no tritonclient[grpc]" >&2; exit 77; }
mkdir -p "$OUT"

tmp=$(mktemp -d /tmp/ferry-abuse-XXXXXX)
pid=
apid=
spid=
cleanup() {
	for p in $apid $spid $pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	cp "$tmp"/*.log "$tmp"/*.csv "$OUT/" 2>/dev/null || true
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

start_ferryd() {
	"$ferryd" --model-repository "$tmp/repo" --socket "$tmp/ferryd.sock" --grpc-port "$gport" \
		--http-port "$hport" --metrics-port 0 --log-level warn 2>>"$tmp/ferryd.log" &
	pid=$!
	for _ in $(seq 100); do
		curl -sf "127.0.0.1:$hport/v2/health/ready" >/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { cat "$tmp/ferryd.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "abuse.sh: ferryd not ready" >&2
	exit 1
}

stop_ferryd() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# good NAME: the good client over gRPC then HTTP; its CSV in $tmp/NAME.csv
# (empty when it could not run at all: counted as failed).
good() {
	timeout 120 "$load" -u "grpc://127.0.0.1:$gport" -u "http://127.0.0.1:$hport" -m identity \
		--concurrency-range 1:1:1 --sync -p "$WINDOW_MS" -s 100 -r 3 -f "$tmp/$1.csv" \
		>"$tmp/$1.load.log" 2>&1 || true
}

# The attacker of each attack, in the background; its pid in apid.
start_attack() {
	local a=$1 d=$ATTACK_S log=$tmp/$1.attack.log
	local grpc=(-H 'content-type: application/grpc' -H 'te: trailers')
	case $a in
	grpc-h2load-streams)
		h2load -D "$d" -c 64 -m 256 -d "$tmp/grpc-infer.bin" "${grpc[@]}" \
			"http://127.0.0.1:$gport/inference.GRPCInferenceService/ModelInfer" >"$log" 2>&1 & ;;
	grpc-h2load-conns)
		h2load -D "$d" -c 1000 -m 1 -d "$tmp/grpc-live.bin" "${grpc[@]}" \
			"http://127.0.0.1:$gport/inference.GRPCInferenceService/ServerLive" >"$log" 2>&1 & ;;
	grpc-streams)
		"$attack" streams -b "$ATTACK_SRC" -p "$gport" -c 16 -t "$d" -d "$tmp/grpc-infer.bin" >"$log" 2>&1 & ;;
	grpc-reset)
		"$attack" reset -b "$ATTACK_SRC" -p "$gport" -c 4 -t "$d" -d "$tmp/grpc-infer.bin" >"$log" 2>&1 & ;;
	grpc-slowloris)
		"$attack" slowloris -b "$ATTACK_SRC" -p "$gport" -c 1000 -i 1000 -t "$d" >"$log" 2>&1 & ;;
	grpc-bigmeta)
		"$attack" bigmeta -b "$ATTACK_SRC" -p "$gport" -c 8 -s 1048576 -t "$d" >"$log" 2>&1 & ;;
	grpc-conns)
		"$attack" conns -b "$ATTACK_SRC" -p "$gport" -c 5000 -t "$d" >"$log" 2>&1 & ;;
	grpc-raw)
		"$attack" raw -b "$ATTACK_SRC" -p "$gport" -c 2000 -t "$d" >"$log" 2>&1 & ;;
	grpc-ping)
		"$attack" ping -b "$ATTACK_SRC" -p "$gport" -c 8 -t "$d" >"$log" 2>&1 & ;;
	http-h2load)
		h2load --h1 -D "$d" -c 512 -m 1 "http://127.0.0.1:$hport/v2/health/live" >"$log" 2>&1 & ;;
	http-slowloris)
		"$attack" h1-slowloris -b "$ATTACK_SRC" -p "$hport" -c 900 -i 1000 -t "$d" >"$log" 2>&1 & ;;
	http-slowloris-over)
		"$attack" h1-slowloris -b "$ATTACK_SRC" -p "$hport" -c 1100 -i 1000 -t "$d" >"$log" 2>&1 & ;;
	http-bigheaders)
		"$attack" h1-bigheaders -b "$ATTACK_SRC" -p "$hport" -c 8 -s 100000 -t "$d" >"$log" 2>&1 & ;;
	http-conns)
		"$attack" h1-conns -b "$ATTACK_SRC" -p "$hport" -c 2000 -t "$d" >"$log" 2>&1 & ;;
	*)
		echo "abuse.sh: unknown attack $a" >&2
		exit 2 ;;
	esac
	apid=$!
}

exec 9>/tmp/ferry-heavy.lock
flock 9
echo "abuse.sh: $(date -u +%FT%TZ), $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg)," \
	"h2load $(h2load --version | head -1 | awk '{print $2}'), attacks of ${ATTACK_S}s," \
	"good client windows of ${WINDOW_MS} ms" | tee "$tmp/abuse.log"
: >"$tmp/results"
for a in $ATTACKS; do
	start_ferryd
	r0=$(rss)
	f0=$(fds)
	good "$a-alone"
	: >"$tmp/$a.samples"
	( while :; do echo "$(rss) $(fds)" >>"$tmp/$a.samples"; sleep 0.25; done ) &
	spid=$!
	start_attack "$a"
	sleep 1.5
	good "$a-attack"
	wait "$apid" || true
	apid=
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	spid=
	t0=$(date +%s.%N)
	while [ "$(fds)" -gt $((f0 + 8)) ] && awk -v t0="$t0" -v m="$RECOVER_S" -v now="$(date +%s.%N)" \
		'BEGIN { exit !(now - t0 < m) }'; do
		sleep 0.25
	done
	rec=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - t0 }')
	alive=yes
	kill -0 "$pid" 2>/dev/null || alive=no
	r1=$(rss)
	f1=$(fds)
	peak=$(awk 'BEGIN { r = 0; f = 0 } { if ($1 > r) r = $1; if ($2 > f) f = $2 } END { print r, f }' \
		"$tmp/$a.samples")
	echo "$a $r0 $f0 $peak $r1 $f1 $rec $alive" >>"$tmp/results"
	# ferry-h2attack's one line of counters, or h2load's request counts.
	echo "abuse.sh: $a: $( (grep -E '^(mode=|requests:)' "$tmp/$a.attack.log" || tail -1 "$tmp/$a.attack.log") |
		head -1 | cut -c1-300)" | tee -a "$tmp/abuse.log"
	stop_ferryd
done
echo "abuse.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$tmp/abuse.log"
cp "$tmp/results" "$OUT/results.txt"
python3 - "$tmp" <<'EOF'
import csv, os, sys
d = sys.argv[1]
def lat(name):
    out = {}
    try:
        for r in csv.DictReader(open(os.path.join(d, name + ".csv"))):
            out[r["transport"]] = r
    except FileNotFoundError:
        pass
    return out
def cell(a, b, t, k):
    x, y = a.get(t), b.get(t)
    fx = f"{float(x[k]):,.0f}" if x else "-"
    fy = f"{float(y[k]):,.0f}" if y and float(y["infer_per_s"]) > 0 else "failed"
    return f"{fx} / {fy}"
print()
print("| attack | gRPC p50 alone / attack | gRPC p99 alone / attack | HTTP p50 alone / attack "
      "| HTTP p99 alone / attack | good errors | RSS MiB start / peak / after | fds start / peak / after | back in s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in open(os.path.join(d, "results")):
    a, r0, f0, rp, fp, r1, f1, rec, alive = line.split()
    al, at = lat(a + "-alone"), lat(a + "-attack")
    errs = sum(int(r["errors"]) for r in at.values()) if at else "all"
    mib = lambda k: f"{int(k) / 1024:,.0f}"
    print(f"| {a} | {cell(al, at, 'grpc', 'p50_us')} | {cell(al, at, 'grpc', 'p99_us')} | "
          f"{cell(al, at, 'http', 'p50_us')} | {cell(al, at, 'http', 'p99_us')} | {errs} | "
          f"{mib(r0)} / {mib(rp)} / {mib(r1)} | {f0} / {fp} / {f1} | {rec}"
          f"{'' if alive == 'yes' else ' (ferryd died)'} |")
print()
print("(latency in microseconds, client side, one synchronous request in flight; "
      "'failed': the good client could not measure that transport during the attack)")
EOF
