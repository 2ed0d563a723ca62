#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/distance.sh - does an asynchronous client hide the distance to the
# broker?  (issue 6, "ferry-bench clients and distance")
#
#   bench/distance.sh [BUILD_DIR]          # as root; default build dir: build
#
# Creates two network namespaces joined by a veth pair (server 10.231.0.1,
# client 10.231.0.2), starts ferryd in the server namespace (gRPC on
# 0.0.0.0:8001, examples/models), and runs ferry-bench-distance in the
# client namespace over grpc:// across the veth: per event W us of CPU work
# plus one identity inference (FP32 [1,256]), synchronous (submit, wait)
# against asynchronous (a window of K events in flight), at round-trip
# delays of 0, 1, 5 and 10 ms, plus the work alone (the ideal).
#
# The delay: `tc netem`, half the round trip on each end of the veth,
# checked with ping.  Where the kernel has no sch_netem (tc says
# "Specified qdisc kind is unknown"), the script says so and falls back to
# `ferry-bench-distance proxy` in the server namespace: a TCP relay that
# holds every chunk half the round trip in each direction; the client then
# connects to the relay, still across the veth, and the delay is checked
# from the synchronous round trips (their increase over the 0 ms row).
#
# The client is pinned to CPU 0, ferryd (and the relay) to CPU 1.
# Environment: WORK_US (500), WINDOW (32), RUN_SECONDS (4), REPS (3),
# DELAYS_MS ("0 1 5 10"), CSV (bench/out/distance.csv).
# The namespaces, the veth and every process started are removed on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ -d "$build" ] || { echo "distance.sh: no build dir $build" >&2; exit 2; }
build=$(cd "$build" && pwd)
bench=$build/ferry-bench-distance
ferryd=$build/broker/ferryd
for b in "$bench" "$ferryd"; do
	[ -x "$b" ] || { echo "distance.sh: $b not built (make ferry-bench-distance)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "distance.sh: needs root (network namespaces)" >&2; exit 2; }
command -v ip >/dev/null && command -v tc >/dev/null ||
	{ echo "distance.sh: needs iproute2 (ip, tc)" >&2; exit 2; }

WORK_US=${WORK_US:-500}
WINDOW=${WINDOW:-32}
SECONDS_PER_RUN=${RUN_SECONDS:-4}
REPS=${REPS:-3}
DELAYS_MS=${DELAYS_MS:-"0 1 5 10"}
CSV=${CSV:-$top/bench/out/distance.csv}

ns_s=ferry-dist-srv-$$
ns_c=ferry-dist-cli-$$
ve_s=fdst$$
ve_c=fdcl$$
ip_s=10.231.0.1
ip_c=10.231.0.2
port=8001
rport=9001
tmp=$(mktemp -d /tmp/ferry-distance-XXXXXX)
ferryd_pid=
proxy_pid=

cleanup() {
	set +e
	# every process still inside our namespaces is one this script started
	for n in "$ns_c" "$ns_s"; do
		pids=$(ip netns pids "$n" 2>/dev/null)
		[ -n "$pids" ] && kill $pids 2>/dev/null
	done
	wait 2>/dev/null
	ip netns del "$ns_c" 2>/dev/null	# takes the veth pair with it
	ip netns del "$ns_s" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

S() { ip netns exec "$ns_s" "$@"; }
C() { ip netns exec "$ns_c" "$@"; }

ip netns add "$ns_s"
ip netns add "$ns_c"
ip link add "$ve_s" type veth peer name "$ve_c"
ip link set "$ve_s" netns "$ns_s"
ip link set "$ve_c" netns "$ns_c"
S ip addr add $ip_s/24 dev "$ve_s"
C ip addr add $ip_c/24 dev "$ve_c"
for n in "$ns_s" "$ns_c"; do ip -n "$n" link set lo up; done
S ip link set "$ve_s" up
C ip link set "$ve_c" up

# netem or the relay?
method=netem
if ! err=$(C tc qdisc add dev "$ve_c" root netem delay 0ms 2>&1); then
	method=relay
	why="tc qdisc add ... netem: ${err:-failed}"
	if [ -r /proc/config.gz ] && zcat /proc/config.gz | grep -q '^# CONFIG_NET_SCH_NETEM is not set'; then
		why="$why (kernel $(uname -r): CONFIG_NET_SCH_NETEM is not set)"
	fi
	echo "distance.sh: no netem here: $why; using the delaying TCP relay" >&2
else
	S tc qdisc add dev "$ve_s" root netem delay 0ms
fi

echo "distance.sh: $(date -u +%FT%TZ), kernel $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "distance.sh: delay by $method; work ${WORK_US} us/event, async window $WINDOW, ${SECONDS_PER_RUN} s x $REPS per point"

ip netns exec "$ns_s" taskset -c 1 "$ferryd" --model-repository "$top/examples/models" --socket "$tmp/ferryd.sock" \
	--grpc-address 0.0.0.0 --grpc-port $port --metrics-port 0 --log-level warn \
	2>"$tmp/ferryd.log" &
ferryd_pid=$!
for _ in $(seq 100); do [ -S "$tmp/ferryd.sock" ] && break; sleep 0.1; done
[ -S "$tmp/ferryd.sock" ] || { cat "$tmp/ferryd.log" >&2; exit 1; }
sleep 0.5

# ping: the veth's own round trip (and, with netem, the delay)
ping_rtt() {
	command -v ping >/dev/null || { echo "-"; return; }
	C ping -q -c 20 -i 0.05 $ip_s 2>/dev/null |
		awk -F'/' '/^rtt|^round-trip/ { printf "%.3f", $5 }'
}

set_delay() {	# $1: round trip in ms
	local half_us=$(($1 * 500))
	if [ $method = netem ]; then
		C tc qdisc change dev "$ve_c" root netem delay ${half_us}us
		S tc qdisc change dev "$ve_s" root netem delay ${half_us}us
		url=grpc://$ip_s:$port
	else
		if [ -n "$proxy_pid" ]; then
			kill "$proxy_pid" 2>/dev/null || true
			wait "$proxy_pid" 2>/dev/null || true
		fi
		# not through S(): `&` on a function would make $! a subshell's
		ip netns exec "$ns_s" taskset -c 1 "$bench" proxy --listen $ip_s:$rport --to 127.0.0.1:$port \
			--delay-us $(($1 * 1000)) 2>>"$tmp/proxy.log" &
		proxy_pid=$!
		sleep 0.3
		url=grpc://$ip_s:$rport
	fi
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

runone() {	# mode url -> "events_per_s mean_infer_us"
	local out
	out=$(C taskset -c 0 "$bench" run -u "$2" --mode "$1" --work-us "$WORK_US" \
		--window "$WINDOW" --seconds "$SECONDS_PER_RUN")
	echo "$(echo "$out" | field events_per_s) $(echo "$out" | field mean_infer_us)"
	[ "$(echo "$out" | field errors)" = 0 ] || { echo "distance.sh: errors: $out" >&2; exit 1; }
}

mkdir -p "$(dirname "$CSV")"
echo "method,delay_ms,rep,mode,events_per_s,mean_infer_us,ping_ms" >"$CSV"

ideal=$(C taskset -c 0 "$bench" run --mode cpu --work-us "$WORK_US" --seconds "$SECONDS_PER_RUN" | field events_per_s)
echo "$method,-,1,cpu,$ideal,0,-" >>"$CSV"

# a reference without the relay (the veth alone), relay method only
if [ $method = relay ]; then
	for r in $(seq "$REPS"); do
		for m in sync async; do
			out=$(runone $m grpc://$ip_s:$port)
			read -r e l <<<"$out"
			echo "direct,0,$r,$m,$e,$l,-" >>"$CSV"
		done
	done
fi
# repetitions outermost so that a burst of other load hits every delay
for r in $(seq "$REPS"); do
	for d in $DELAYS_MS; do
		set_delay "$d"
		p=$(ping_rtt)
		for m in sync async; do
			out=$(runone $m "$url")
			read -r e l <<<"$out"
			echo "$method,$d,$r,$m,$e,$l,$p" >>"$CSV"
			printf "  rep %d  delay %2d ms  %-5s %8.1f events/s  infer %8.1f us  ping %s ms\n" \
				"$r" "$d" "$m" "$e" "$l" "$p"
		done
	done
done

echo "distance.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg); CSV: $CSV"
echo
# the table: median over the repetitions
python3 - "$CSV" "$ideal" "$method" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ideal, method = float(sys.argv[2]), sys.argv[3]
print(f"ideal (work alone, no inference): {ideal:.0f} events/s\n")
print("| path | RTT added ms | sync events/s | async events/s | async / sync | sync / ideal | async / ideal | sync round trip us | ping ms |")
print("|---|---|---|---|---|---|---|---|---|")
base = None
for path in ("direct", method):
    for d in sorted({r["delay_ms"] for r in rows if r["method"] == path and r["mode"] != "cpu"}, key=float):
        sel = [r for r in rows if r["method"] == path and r["delay_ms"] == d]
        def med(mode, key):
            v = [float(r[key]) for r in sel if r["mode"] == mode]
            return statistics.median(v), (max(v) - min(v)) / 2
        s, sh = med("sync", "events_per_s")
        a, ah = med("async", "events_per_s")
        lat, _ = med("sync", "mean_infer_us")
        if path == method and base is None:
            base = lat
        added = f"{(lat - base) / 1e3:.2f}" if path == method else "-"
        name = "veth, no relay" if path == "direct" else (f"{path}, {d} ms")
        pings = sorted({r["ping_ms"] for r in sel})
        print(f"| {name} | {added} | {s:.0f} ± {sh:.0f} | {a:.0f} ± {ah:.0f} | {a / s:.2f} | "
              f"{s / ideal:.2f} | {a / ideal:.2f} | {lat:.0f} | {'/'.join(pings)} |")
EOF
