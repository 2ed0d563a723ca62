#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench/pool.sh - a pool of ferryd behind a real gRPC load balancer
# (issue 18): three brokers in three network namespaces, HAProxy (and
# nginx) in a fourth with the clients, all with the shipped configurations
# of deploy/haproxy/haproxy.cfg and deploy/nginx/nginx.conf.
#
#   bench/pool.sh [--check | --scale] [BUILD_DIR]   # as root; default build dir: build
#
# --check (tests/deploy/test_pool.sh, in make check) runs the checks and
# prints one PASS: / FAIL: / SKIP: line each:
#   haproxy_spread    requests spread over the three brokers within +-10%
#                     of the mean (ferryd's own counters, /metrics)
#   haproxy_failover  a broker SIGKILLed mid-run costs clients that do not
#                     retry no failed or wrong request (HAProxy resends
#                     what the dead broker held: retry-on), and HAProxy
#                     marks it DOWN
#   haproxy_rejoin    the broker started again is marked UP by the
#                     ServerReady health check and gets requests again
#   haproxy_noretry_libferry, haproxy_noretry_tritonclient   the same
#                     kill with the proxy's resending off (retry-on none):
#                     clients that retry lose nothing (libferry's own
#                     failover; tritonclient with gRPC's retry policy)
#   nginx_spread      the spread through nginx (grpc_pass)
#   nginx_failover_libferry, nginx_failover_tritonclient   the kill
#                     through nginx, which cannot resend a gRPC request it
#                     has passed on: clients that retry lose nothing
#   libferry_roundrobin_spread, libferry_roundrobin_failover   no proxy:
#                     libferry's gRPC round_robin over one DNS name of the
#                     three brokers spreads within +-10%, and its failover
#                     loses nothing when one is killed
# Each kill behind a proxy counts only when it caught requests in flight
# (the proxy's own counters or log say so); else it is tried again, up to
# three times.
# Without --check it also prints what the kill costs clients that do not
# retry behind a proxy that does not resend (notes), and measures how the
# pool's throughput grows with the number of brokers (1, 2, 3; and one
# broker without the proxy) with the CPU each part used: a table, and a
# CSV ($CSV).  --scale measures the throughput alone.
#
# Clients: ferry-bench-distance run (libferry's gRPC transport,
# asynchronous, a window of 4 requests in flight, identity FP32 [1, 256],
# every output checked against its input), with FERRY_RETRIES=0 ("plain":
# a request lost with its broker fails) or libferry's failover; and
# tests/deploy/retry_client.py (tritonclient.grpc with gRPC's retry policy
# on UNAVAILABLE; skipped without the venv); three processes of each.  Throughput: ferry-bench-load (mlp_wide, batch $BATCH, $CONC
# requests in flight over 2 processes).  Brokers: one KIND_CPU instance of
# each model, --pollers 1 --wait block (no shared-memory client in a
# pool).  Topology: namespace lb (HAProxy or nginx on :8001, the clients)
# joined to broker k's namespace by a veth pair, 10.233.k.1 <-> 10.233.k.2.
#
# Environment: RUN_SECONDS (4.5: a failover run), REPS (3), BATCH (64),
# CONC (12), CSV (bench/out/pool.csv), KEEP_LOGS=1 keeps the temporary
# directory.  The namespaces, veths and every process started are removed
# on exit.  Exit 77 where namespaces cannot be made or a tool is missing.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
check_only=0 scale_only=0
if [ "${1:-}" = --check ]; then check_only=1; shift; fi
if [ "${1:-}" = --scale ]; then scale_only=1; shift; fi
build=${1:-$top/build}
skip() { echo "SKIP: pool: $*"; exit 77; }
[ -d "$build" ] || { echo "pool.sh: no build dir $build" >&2; exit 2; }
build=$(cd "$build" && pwd)
ferryd=$build/broker/ferryd
dist=$build/ferry-bench-distance
load=$build/ferry-bench-load
for b in "$ferryd" "$dist"; do
	[ -x "$b" ] || { echo "pool.sh: $b not built" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
for t in ip haproxy curl; do
	command -v $t >/dev/null || skip "no $t (scripts/setup-debian.sh installs it)"
done

py=${FERRY_PYTHON:-$top/.venv/bin/python}
have_py=1 no_py=
if ! [ -x "$py" ] || ! "$py" -c 'import tritonclient.grpc, numpy' 2>/dev/null; then
	have_py=0 no_py="no Python with tritonclient[grpc] ($py; scripts/setup-debian.sh makes it)"
fi

RUN_SECONDS=${RUN_SECONDS:-4.5}
REPS=${REPS:-3}
BATCH=${BATCH:-64}
CONC=${CONC:-12}
CSV=${CSV:-$top/bench/out/pool.csv}
NB=3
tmp=$(mktemp -d /tmp/ferry-pool-XXXXXX)
ns_lb=fpool-lb-$$
ns_b=()
for k in $(seq $NB); do ns_b[k]=fpool-b$k-$$; done
bpid=()
lbpid=
failed=0

cleanup() {
	set +e
	# (in braces: bash's "Killed" notices go to the group's stderr)
	{
		for n in "$ns_lb" "${ns_b[@]}"; do
			pids=$(ip netns pids "$n" 2>/dev/null)
			[ -n "$pids" ] && kill -9 $pids
		done
		wait
	} 2>/dev/null
	for n in "$ns_lb" "${ns_b[@]}"; do ip netns del "$n" 2>/dev/null; done
	rm -rf "/etc/netns/$ns_lb"
	if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "pool.sh: logs in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

L() { ip netns exec "$ns_lb" "$@"; }
bip() { echo "10.233.$1.2"; }

# ---- the namespaces -------------------------------------------------------
ip netns add "$ns_lb" 2>"$tmp/ns.err" || skip "cannot create a network namespace: $(cat "$tmp/ns.err")"
ip -n "$ns_lb" link set lo up
for k in $(seq $NB); do
	ip netns add "${ns_b[k]}"
	ip -n "${ns_b[k]}" link set lo up
	ip link add "fpl$k-$$" type veth peer name "fpb$k-$$" 2>"$tmp/ns.err" ||
		skip "cannot create a veth pair: $(cat "$tmp/ns.err")"
	ip link set "fpl$k-$$" netns "$ns_lb"
	ip link set "fpb$k-$$" netns "${ns_b[k]}"
	ip -n "$ns_lb" addr add "10.233.$k.1/24" dev "fpl$k-$$"
	ip -n "${ns_b[k]}" addr add "$(bip "$k")/24" dev "fpb$k-$$"
	ip -n "$ns_lb" link set "fpl$k-$$" up
	ip -n "${ns_b[k]}" link set "fpb$k-$$" up
done

# ---- the model repository --------------------------------------------------
repo=$tmp/repo
mkdir -p "$repo"
cp -r "$top/examples/models/identity" "$repo/"
if [ $check_only = 0 ]; then
	[ -x "$load" ] || { echo "pool.sh: $load not built" >&2; exit 2; }
	"$py" "$top/tests/onnx/gen_models.py" "$tmp/models" >/dev/null ||
		{ echo "pool.sh: generating mlp_wide failed ($py tests/onnx/gen_models.py)" >&2; exit 2; }
	mkdir -p "$repo/mlp_wide/1"
	cp "$tmp/models/mlp_wide.onnx" "$repo/mlp_wide/1/model.onnx"
	cat >"$repo/mlp_wide/config.pbtxt" <<-EOF
	backend: "onnx"
	max_batch_size: 256
	input [ { name: "x" data_type: TYPE_FP32 dims: [ 16 ] } ]
	output [ { name: "y" data_type: TYPE_FP32 dims: [ 5 ] } ]
	instance_group [ { count: 1 kind: KIND_CPU } ]
	EOF
fi

start_broker() {	# k
	local k=$1
	ip netns exec "${ns_b[k]}" "$ferryd" --model-repository "$repo" --socket "$tmp/b$k.sock" \
		--grpc-address 0.0.0.0 --grpc-port 8001 --metrics-address 0.0.0.0 --metrics-port 8002 \
		--http-port 0 --pollers 1 --wait block --log-level warn 2>>"$tmp/ferryd$k.log" &
	bpid[k]=$!
	for _ in $(seq 100); do [ -S "$tmp/b$k.sock" ] && return 0; sleep 0.1; done
	echo "pool.sh: broker $k did not start:" >&2
	cat "$tmp/ferryd$k.log" >&2
	exit 1
}
kill_broker() {	# k signal
	{ kill -"$2" "${bpid[$1]}"; wait "${bpid[$1]}"; } 2>/dev/null || true
	rm -f "$tmp/b$1.sock"
}
# Requests ferryd k has answered, all models (0 when it is down).
served() { metric "$1" nv_inference_request_success; }
metric() {	# k NAME: broker k's counter NAME, all models
	L curl -s --max-time 2 "http://$(bip "$1"):8002/metrics" 2>/dev/null |
		awk -v m="$2" 'index($1, m "{") == 1 { s += $2 } END { printf "%d\n", s }'
}
# brokers 1..N: requests, compute us, queue us (sums of their counters)
pool_counters() {
	local k r=0 c=0 q=0
	for k in $(seq "$1"); do
		r=$((r + $(served "$k")))
		c=$((c + $(metric "$k" nv_inference_compute_infer_duration_us)))
		q=$((q + $(metric "$k" nv_inference_queue_duration_us)))
	done
	echo "$r $c $q"
}
# threads_of pid...: "pid tid ticks" for every thread (utime + stime)
threads_of() {
	local p t
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			[ -r "$t/stat" ] && echo "$p ${t##*/} $(awk '{ print $14 + $15 }' "$t/stat")"
		done
	done
}
# instance_ticks BEFORE AFTER: the sum over processes of their busiest
# thread's ticks between the two threads_of snapshots (a broker's
# KIND_CPU instance thread, which computes)
instance_ticks() {
	awk 'NR == FNR { b[$1 " " $2] = $3; next }
	     { d = $3 - b[$1 " " $2]; if (d > m[$1]) m[$1] = d }
	     END { for (p in m) s += m[p]; print s + 0 }' "$1" "$2"
}
cpu_of() {	# pid...: utime + stime, clock ticks
	local s=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo $s
}

# ---- the proxies, from the shipped files ------------------------------------
# haproxy_cfg N [noretry]: deploy/haproxy/haproxy.cfg with its example
# servers replaced by brokers 1..N and the stats socket in $tmp; noretry
# also turns the proxy's own resending off.
haproxy_cfg() {
	local n=$1 out=$tmp/haproxy.cfg
	awk -v n="$n" -v retry="${2:-}" -v sock="$tmp/haproxy.sock" '
		/^[ \t]*server ferryd[0-9]+ / { next }
		/stats socket / { sub(/\/run\/haproxy-ferry\.sock/, sock) }
		retry == "noretry" && /^[ \t]*retry-on / { print "    retry-on none"; next }
		retry == "noretry" && /^[ \t]*retries / { print "    retries 0"; next }
		{ print }
		/# The brokers\./ { for (k = 1; k <= n; k++) printf "    server ferryd%d 10.233.%d.2:8001\n", k, k; found = 1 }
		END { if (!found) exit 1 }' "$top/deploy/haproxy/haproxy.cfg" >"$out" ||
		{ echo "pool.sh: deploy/haproxy/haproxy.cfg has no '# The brokers.' line" >&2; exit 1; }
	haproxy -c -q -f "$out" || { echo "pool.sh: haproxy -c refused $out" >&2; exit 1; }
	echo "$out"
}
nginx_cfg() {
	local out=$tmp/nginx.conf
	awk -v n="$NB" -v tmp="$tmp" '
		/^[ \t]*server 10\.0\.0\.[0-9]+:8001/ {
			if (!done) for (k = 1; k <= n; k++)
				printf "        server 10.233.%d.2:8001 max_fails=1 fail_timeout=5s;\n", k
			done = 1; next }
		/^pid / { print "pid " tmp "/nginx.pid;"; next }
		{ print }
		END { if (!done) exit 1 }' "$top/deploy/nginx/nginx.conf" >"$out" ||
		{ echo "pool.sh: deploy/nginx/nginx.conf has no 'server 10.0.0.x:8001' line" >&2; exit 1; }
	echo "$out"
}
start_haproxy() {	# N [noretry]
	local cfg
	cfg=$(haproxy_cfg "$@")
	ip netns exec "$ns_lb" haproxy -db -f "$cfg" >>"$tmp/haproxy.log" 2>&1 &
	lbpid=$!
	wait_up "$1"
}
stop_lb() {
	[ -n "$lbpid" ] || return 0
	kill "$lbpid" 2>/dev/null || true
	wait "$lbpid" 2>/dev/null || true
	lbpid=
}
# HAProxy's view of server ferryd$k: UP, DOWN, ... (from its stats CSV)
lb_status() {
	L curl -s --max-time 2 'http://127.0.0.1:8404/stats;csv' |
		awk -F, -v s="ferryd$1" '$1 == "ferryd_pool" && $2 == s { print $18 }'
}
lb_backend() {	# column name of the backend's row, e.g. wretr, wredis
	L curl -s --max-time 2 'http://127.0.0.1:8404/stats;csv' |
		awk -F, -v col="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col || $i == "# " col) c = i }
			$1 == "ferryd_pool" && $2 == "BACKEND" { print $c }'
}
wait_up() {	# N: brokers 1..N UP within 10 s
	local k ok
	for _ in $(seq 100); do
		ok=1
		for k in $(seq "$1"); do [ "$(lb_status "$k")" = UP ] || ok=0; done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	echo "pool.sh: HAProxy did not see brokers 1..$1 UP:" >&2
	tail -20 "$tmp/haproxy.log" >&2
	exit 1
}
wait_status() {	# k STATUS seconds
	for _ in $(seq $(($3 * 10))); do
		[ "$(lb_status "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- the clients ------------------------------------------------------------
# clients KIND SECONDS [KILL_AT KILL_BROKER]: 3 client processes against
# $url (the proxy, unless set otherwise); optionally SIGKILL one broker
# KILL_AT seconds in.  KIND: plain (ferry-bench-distance run: libferry's
# gRPC transport, async, window 4, no CPU work, FERRY_RETRIES=0: a request
# lost with its broker fails), libferry (the same with libferry's own
# failover: a lost request is sent again, up to FERRY_RETRIES = 3 times),
# retry (tests/deploy/retry_client.py: tritonclient.grpc, 3 threads,
# gRPC's retry policy on UNAVAILABLE).  Sets c_events, c_errors,
# c_clients_failed.
url=grpc://127.0.0.1:8001
clients() {
	local kind=$1 secs=$2 i out retries=3
	[ "$kind" = plain ] && retries=0
	for i in 1 2 3; do
		if [ "$kind" = retry ]; then
			L "$py" "$top/tests/deploy/retry_client.py" "$url" "$secs" 3 \
				>"$tmp/client$i.out" 2>"$tmp/client$i.err" &
		else
			L env FERRY_RETRIES=$retries GRPC_DNS_RESOLVER=native "$dist" run -u "$url" \
				--mode async --window 4 --work-us 0 --seconds "$secs" --announce \
				>"$tmp/client$i.out" 2>"$tmp/client$i.err" &
		fi
		eval "cpid$i=$!"
	done
	if [ $# -ge 4 ]; then
		# count from when every client has had its first answers (the
		# Python ones take a while to start)
		for _ in $(seq 300); do
			[ "$(cat "$tmp"/client[123].err 2>/dev/null |
				grep -c -e 'retry_client: sending' -e 'ferry-bench-distance: running')" -ge 3 ] && break
			sleep 0.1
		done
		sleep "$3"
		kill_broker "$4" KILL
	fi
	c_events=0 c_errors=0 c_clients_failed=0
	for i in 1 2 3; do
		eval "wait \$cpid$i" || true
		out=$(tail -1 "$tmp/client$i.out")
		case $out in
		*errors=*)
			c_events=$((c_events + $(sed -n 's/.* events=\([0-9]*\).*/\1/p' <<<"$out")))
			c_errors=$((c_errors + $(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$out"))) ;;
		"retry_client "*)
			read -r _ _ n _ _ _ f _ w <<<"$out"
			c_events=$((c_events + n)) c_errors=$((c_errors + f + w)) ;;
		*)
			c_clients_failed=$((c_clients_failed + 1))
			echo "pool.sh: client $i died: $(tail -2 "$tmp/client$i.err")" >&2 ;;
		esac
	done
}

result() {	# name ok message
	if [ "$2" = 1 ]; then echo "PASS: $1: $3"; else echo "FAIL: $1: $3"; failed=1; fi
}
clients_ok() { [ "$c_errors" = 0 ] && [ "$c_clients_failed" = 0 ] && [ "$c_events" -gt 0 ]; }

# spread NAME: plain clients for 3 s over brokers 1..NB; each broker's
# share of the requests within 10% of the mean.
spread() {
	local name=$1 k before=() n=() tot=0 ok=1 msg="" dev
	for k in $(seq $NB); do before[k]=$(served "$k"); done
	clients plain 3
	for k in $(seq $NB); do
		n[k]=$(( $(served "$k") - before[k] ))
		tot=$((tot + n[k]))
	done
	for k in $(seq $NB); do
		dev=$(awk -v a="${n[k]}" -v t="$tot" -v nb=$NB 'BEGIN { printf "%+.1f", t ? (a / (t / nb) - 1) * 100 : -100 }')
		msg="$msg broker$k ${n[k]} (${dev}%)"
		awk -v d="$dev" 'BEGIN { exit !(d <= 10 && d >= -10) }' || ok=0
	done
	clients_ok || ok=0
	result "$name" $ok "$tot requests:$msg; client errors $c_errors"
}

# failover KIND: KIND clients for RUN_SECONDS, broker 2 SIGKILLed a third
# of the way in; sets fo_msg.  restart: broker 2 up again and seen UP.
failover() {
	local at
	at=$(awk -v s="$RUN_SECONDS" 'BEGIN { printf "%.1f", s / 3 }')
	clients "$1" "$RUN_SECONDS" "$at" 2
	fo_msg="$1 clients, broker 2 SIGKILLed at ${at} s of ${RUN_SECONDS} s: $c_events requests, $c_errors failed, $c_clients_failed clients died"
}
restart2() {
	start_broker 2
	[ -z "$lbpid" ] || [ "$1" != haproxy ] || wait_status 2 UP 10 || true
}

echo "pool.sh: $(date -u +%FT%TZ), kernel $(uname -r), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg), $(haproxy -v | head -1 | cut -d' ' -f1-3)"

for k in $(seq $NB); do start_broker "$k"; done
for k in $(seq $NB); do
	for _ in $(seq 50); do L curl -s --max-time 1 -o /dev/null "http://$(bip "$k"):8002/v2/health/ready" && break; sleep 0.1; done
done

# failover_checked NAME KIND LB COUNTER: the failover run with KIND clients,
# again (up to 3 tries) until COUNTER (a function printing a count of
# requests broken at the broker, from the proxy's side) moved: a kill that
# caught no request in flight proves nothing.
haproxy_broken() { lb_backend eresp; }
nginx_broken() { grep -c 'while reading response header from upstream' "$tmp/nginx.log" || true; }
failover_checked() {
	local name=$1 kind=$2 lb=$3 counter=$4 try n0 n1 ok
	for try in 1 2 3; do
		n0=$($counter)
		failover "$kind"
		n1=$($counter)
		restart2 "$lb"
		if [ $((n1 - n0)) -gt 0 ] || ! clients_ok; then break; fi
		[ "$lb" = nginx ] && sleep 5	# fail_timeout: broker 2 back in nginx's rotation
	done
	ok=1
	clients_ok || ok=0
	[ $((n1 - n0)) -gt 0 ] || ok=0
	result "$name" $ok "$fo_msg; $((n1 - n0)) requests broken at the broker, resent by their clients (try $try)"
}

# ---- HAProxy ----------------------------------------------------------------
if [ $scale_only = 0 ]; then
start_haproxy $NB
spread haproxy_spread

# The shipped file resends what a dead broker held: clients that do not
# retry see nothing.  Up to 3 tries, until HAProxy had to resend or
# redirect something.
for try in 1 2 3; do
	r0=$(lb_backend wretr) d0=$(lb_backend wredis)
	failover plain
	st=$(lb_status 2)
	r1=$(lb_backend wretr) d1=$(lb_backend wredis)
	caught=$((r1 - r0 + d1 - d0))
	[ $caught -gt 0 ] || ! clients_ok || [ $try = 3 ] || { restart2 haproxy; continue; }
	break
done
ok=1
clients_ok || ok=0
[ $caught -gt 0 ] || ok=0
case $st in DOWN*) ;; *) ok=0 ;; esac
result haproxy_failover $ok "$fo_msg; HAProxy: broker 2 $st, $((r1 - r0)) retries, $((d1 - d0)) redispatches (try $try)"

start_broker 2
t0=$(date +%s.%N)
if wait_status 2 UP 10; then
	up_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	b2=$(served 2)
	clients plain 2
	n2=$(( $(served 2) - b2 ))
	ok=1
	[ "$n2" -gt 0 ] && clients_ok || ok=0
	result haproxy_rejoin $ok "broker 2 restarted: UP after ${up_s} s, then answered $n2 requests"
else
	result haproxy_rejoin 0 "broker 2 restarted but not UP after 10 s"
fi

# With the proxy's resending off (retry-on none), the clients retry.
stop_lb
start_haproxy $NB noretry
failover_checked haproxy_noretry_libferry libferry haproxy haproxy_broken
if [ $have_py = 1 ]; then
	failover_checked haproxy_noretry_tritonclient retry haproxy haproxy_broken
else
	echo "SKIP: haproxy_noretry_tritonclient: $no_py"
fi
if [ $check_only = 0 ]; then
	failover plain
	echo "note: HAProxy with retry-on none, $fo_msg (what a client that does not retry loses)"
	restart2 haproxy
fi
stop_lb

# ---- nginx ------------------------------------------------------------------
# nginx passes gRPC request bodies on as they come (no buffering), so it
# cannot resend a request a broker died under: the client retries.
if command -v nginx >/dev/null; then
	cfg=$(nginx_cfg)
	if nginx -t -q -c "$cfg" 2>"$tmp/nginx-t.err"; then
		ip netns exec "$ns_lb" nginx -c "$cfg" -g 'daemon off;' >>"$tmp/nginx.log" 2>&1 &
		lbpid=$!
		for _ in $(seq 50); do L curl -s --http2-prior-knowledge -o /dev/null http://127.0.0.1:8001/ && break; sleep 0.1; done
		spread nginx_spread
		failover_checked nginx_failover_libferry libferry nginx nginx_broken
		sleep 5
		if [ $have_py = 1 ]; then
			failover_checked nginx_failover_tritonclient retry nginx nginx_broken
			sleep 5
		else
			echo "SKIP: nginx_failover_tritonclient: $no_py"
		fi
		if [ $check_only = 0 ]; then
			failover plain
			echo "note: nginx, $fo_msg (what a client that does not retry loses)"
			restart2 nginx
		fi
		stop_lb
	else
		result nginx_spread 0 "nginx -t refused the configuration: $(cat "$tmp/nginx-t.err")"
	fi
else
	for c in nginx_spread nginx_failover_libferry nginx_failover_tritonclient; do
		echo "SKIP: $c: no nginx (scripts/setup-debian.sh installs it)"
	done
fi

# ---- libferry alone ----------------------------------------------------------
# No proxy: one DNS name for the three brokers (the namespace's own
# /etc/hosts, which `ip netns exec` puts in place), and libferry's gRPC
# channel balances over them with round_robin and fails over by itself.
mkdir -p "/etc/netns/$ns_lb"
for k in $(seq $NB); do echo "$(bip "$k") ferry-pool"; done >"/etc/netns/$ns_lb/hosts"
url=grpc://ferry-pool:8001
spread libferry_roundrobin_spread
failover libferry
ok=1
clients_ok || ok=0
result libferry_roundrobin_failover $ok "$fo_msg"
restart2 none
url=grpc://127.0.0.1:8001
fi	# scale_only
if [ $check_only = 1 ]; then
	exit $failed
fi

# ---- throughput against the number of brokers --------------------------------
# ferry-bench-load through HAProxy to brokers 1..n (n = 1, 2, 3, then 1
# directly without the proxy), repetitions outermost so that other load on
# the machine falls on every n; the CPU time each part used over the run.
mkdir -p "$(dirname "$CSV")"
echo "rep,brokers,path,infer_per_s,p50_us,requests,seconds,cpu_ferryd_s,cpu_haproxy_s,cpu_client_s,busy_cores,compute_us,queue_us,cpu_instance_s" >"$CSV"
tck=$(getconf CLK_TCK)
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
echo "pool.sh: throughput: mlp_wide, batch $BATCH, $CONC requests in flight (2 client processes), $REPS repetitions"
for rep in $(seq "$REPS"); do
	for n in 1 2 3 direct; do
		if [ $n = direct ]; then
			url=grpc://$(bip 1):8001 nb=1
		else
			start_haproxy "$n"
			url=grpc://127.0.0.1:8001 nb=$n
		fi
		read -r before cmp0 que0 < <(pool_counters $nb)
		c0=$(cpu_of "${bpid[@]:1:$nb}") h0=$(cpu_of $lbpid)
		threads_of "${bpid[@]:1:$nb}" >"$tmp/threads0"
		read -r b0 t0 < <(busy)
		s0=$(date +%s.%N)
		L /usr/bin/time -f '%U %S' -o "$tmp/time.out" "$load" -u "$url" -m mlp_wide -b "$BATCH" \
			--concurrency-range "$CONC:$CONC:1" --processes 2 -p 1000 -f "$tmp/load.csv" \
			>"$tmp/load.out" 2>&1 || { cat "$tmp/load.out" >&2; exit 1; }
		s1=$(date +%s.%N)
		read -r b1 t1 < <(busy)
		c1=$(cpu_of "${bpid[@]:1:$nb}") h1=$(cpu_of $lbpid)
		threads_of "${bpid[@]:1:$nb}" >"$tmp/threads1"
		it=$(instance_ticks "$tmp/threads0" "$tmp/threads1")
		read -r after cmp1 que1 < <(pool_counters $nb)
		read -r cu cs <"$tmp/time.out"
		row=$(tail -1 "$tmp/load.csv")
		thr=$(cut -d, -f3 <<<"$row") p50=$(cut -d, -f4 <<<"$row") errs=$(cut -d, -f16 <<<"$row")
		[ "$errs" = 0 ] || { echo "pool.sh: $errs errors in the run with $n brokers" >&2; exit 1; }
		path=haproxy
		[ $n = direct ] && path=direct
		line="$rep,$nb,$path,$thr,$p50,$((after - before)),$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f", b - a }')"
		line="$line,$(awk -v a=$((c1 - c0)) -v t="$tck" 'BEGIN { printf "%.3f", a / t }')"
		line="$line,$(awk -v a=$((h1 - h0)) -v t="$tck" 'BEGIN { printf "%.3f", a / t }')"
		line="$line,$(awk -v a="$cu" -v b="$cs" 'BEGIN { printf "%.3f", a + b }')"
		line="$line,$(awk -v a=$((b1 - b0)) -v t=$((t1 - t0)) -v n="$(nproc)" 'BEGIN { printf "%.2f", t ? a / t * n : 0 }')"
		line="$line,$(awk -v c=$((cmp1 - cmp0)) -v q=$((que1 - que0)) -v r=$((after - before)) 'BEGIN { printf "%.1f,%.1f", c / r, q / r }')"
		line="$line,$(awk -v a="$it" -v t="$tck" 'BEGIN { printf "%.3f", a / t }')"
		echo "$line" >>"$CSV"
		printf "  rep %d  %-6s brokers %d  %8.0f infer/s  p50 %7.0f us\n" "$rep" "$path" "$nb" "$thr" "$p50"
		[ $n = direct ] || stop_lb
	done
done
# What a lean gRPC client and ferryd's gRPC front end cost per request
# with no model work: ferry-bench-distance (async, window 8, identity FP32
# [1, 256]) against broker 1 directly, its CPU and ferryd's over the run.
# The scale model (sim/scale.py) starts from these.
costs=${CSV%.csv}-costs.csv
echo "rep,requests,client_cpu_s,ferryd_cpu_s" >"$costs"
for rep in $(seq "$REPS"); do
	c0=$(cpu_of "${bpid[1]}")
	L /usr/bin/time -f '%U %S' -o "$tmp/time.out" "$dist" run -u "grpc://$(bip 1):8001" --mode async \
		--window 8 --work-us 0 --seconds 3 >"$tmp/dist.out" 2>&1 || { cat "$tmp/dist.out" >&2; exit 1; }
	c1=$(cpu_of "${bpid[1]}")
	read -r cu cs <"$tmp/time.out"
	ev=$(sed -n 's/.* events=\([0-9]*\).*/\1/p' "$tmp/dist.out")
	echo "$rep,$ev,$(awk -v a="$cu" -v b="$cs" 'BEGIN { printf "%.3f", a + b }'),$(awk -v a=$((c1 - c0)) -v t="$tck" 'BEGIN { printf "%.3f", a / t }')" >>"$costs"
done
python3 -c 'import csv, statistics, sys
r = list(csv.DictReader(open(sys.argv[1])))
print("pool.sh: per gRPC request with no model work (identity, 1 KiB; median of %d): client %.0f us of CPU, ferryd %.0f us" % (len(r),
      statistics.median(float(x["client_cpu_s"]) / int(x["requests"]) * 1e6 for x in r),
      statistics.median(float(x["ferryd_cpu_s"]) / int(x["requests"]) * 1e6 for x in r)))' "$costs"
echo "pool.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg); CSV: $CSV, $costs"
python3 - "$CSV" "$BATCH" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(sel, k):
    v = [float(r[k]) for r in sel]
    return statistics.median(v), (max(v) - min(v)) / 2
batch = int(sys.argv[2])
print("\n| path | brokers | requests/s (median +- half-range) | rows/s | vs 1 broker | p50 us | ferryd CPU us/req | instance thread CPU us/req | compute (wall) us/req | queue us/req | HAProxy CPU us/req | client CPU us/req | busy cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
base = None
for path, n in (("haproxy", "1"), ("haproxy", "2"), ("haproxy", "3"), ("direct", "1")):
    sel = [r for r in rows if r["path"] == path and r["brokers"] == n]
    if not sel:
        continue
    t, th = med(sel, "infer_per_s")
    base = base or t
    per = lambda k: statistics.median(float(r[k]) / max(1, int(r["requests"])) * 1e6 for r in sel)
    print(f"| {path} | {n} | {t / batch:.0f} +- {th / batch:.0f} | {t:.0f} | {t / base:.2f} | {med(sel, 'p50_us')[0]:.0f} | "
          f"{per('cpu_ferryd_s'):.0f} | {per('cpu_instance_s'):.0f} | {med(sel, 'compute_us')[0]:.0f} | {med(sel, 'queue_us')[0]:.0f} | "
          f"{per('cpu_haproxy_s') if path == 'haproxy' else 0:.0f} | "
          f"{per('cpu_client_s'):.0f} | {med(sel, 'busy_cores')[0]:.2f} |")
EOF
exit $failed
