#!/bin/sh
# SPDX-License-Identifier: MIT
#
# soak.sh - ferryd under a long mixed load: 64 client processes, mixed
# models and payload sizes, every result verified (tests/soak/soak_client.c).
#
#   scripts/soak.sh [MINUTES]          default 10
#
# Environment:
#   FERRY_BUILDDIR   the configured build tree (default: ./build); ferryd
#                    and tests/soak/soak_client are built there if missing
#   SOAK_CLIENTS     client processes (64)
#   SOAK_TRANSPORTS  "shm" (default), or any of "shm grpc http": clients are
#                    dealt out over the listed transports in turn.  grpc
#                    starts ferryd with --grpc-port $SOAK_GRPC_PORT (18001)
#                    and hands those clients grpc://127.0.0.1:PORT (libferry's
#                    remote transport); http with --http-port $SOAK_HTTP_PORT
#                    (18000), and its clients speak KServe v2 HTTP with
#                    binary tensor data themselves
#   SOAK_RESTART_SECS  restart ferryd every this many seconds (0: never; a
#                    multiple of 60), alternately with SIGTERM (as systemctl
#                    restart does) and SIGKILL, on the same socket and ports
#   SOAK_RESTART_LOSS_OK=1  requests lost at restarts do not fail the run
#   SOAK_FERRYD      the ferryd to run ($FERRY_BUILDDIR/broker/ferryd): a copy
#                    keeps a long run from picking up a rebuild at a restart
#   SOAK_KEEP=1      keep the temporary directory (logs, repository)
#   SOAK_RSS_GROWTH_KIB  the RSS bound: KiB per minute ferryd's RSS may grow
#                    under the steady load (1024)
#
# Passes (exit 0) when every client's every request came back right (no
# lost, duplicated or corrupted result), ferryd is still up at the end, its
# fd count is back to where it was before the clients came, and its RSS is
# flat: from the first minute's sample (every session open, every pool
# warm) to the last one under load it grows by at most SOAK_RSS_GROWTH_KIB
# per minute, and once the clients have left it is no higher than under
# load.  A run shorter than 2 minutes has no second sample: the RSS check
# is then skipped, and says so.  RSS and fd count are printed at the start,
# every minute and at the end.
#
# With restarts, each broker lifetime gets its own line (RSS and fds at
# its start, after its first minute and at its end) and the RSS bound
# holds within each lifetime.  Requests a restart took down are counted
# apart, per transport ("lost at restarts"): a client whose request failed
# because the broker went away connects again and carries on.  They fail
# the run unless SOAK_RESTART_LOSS_OK=1 (for a libferry that does not ride
# through restarts by itself); lost, duplicated and corrupted results
# always fail it.  HTTP clients send such a request again to the next
# broker within its deadline, as libferry does for its transports
# ("sent again").
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
minutes=${1:-10}
B=${FERRY_BUILDDIR:-$top/build}
nclients=${SOAK_CLIENTS:-64}
transports=${SOAK_TRANSPORTS:-shm}
grpc_port=${SOAK_GRPC_PORT:-18001}
http_port=${SOAK_HTTP_PORT:-18000}
restart=${SOAK_RESTART_SECS:-0}
secs=$(awk "BEGIN { printf \"%d\", $minutes * 60 }")

[ -x "$B/broker/ferryd" ] && [ -x "$B/tests/soak/soak_client" ] ||
	make -C "$B" broker/ferryd tests/soak/soak_client >/dev/null || {
		echo "soak.sh: cannot build ferryd and soak_client in $B" >&2; exit 1; }
ferryd=${SOAK_FERRYD:-$B/broker/ferryd}
case $restart in
''|*[!0-9]*) echo "soak.sh: SOAK_RESTART_SECS must be a number of seconds" >&2; exit 2 ;;
esac
[ $((restart % 60)) -eq 0 ] ||
	{ echo "soak.sh: SOAK_RESTART_SECS must be a multiple of 60" >&2; exit 2; }

tmp=$(mktemp -d /tmp/ferry-soak.XXXXXX)
fpid=
cleanup() {
	[ -z "$fpid" ] || kill "$fpid" 2>/dev/null
	[ -n "${SOAK_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# The repository: the examples, plus a dynamically batched identity with a
# variable dimension (payloads from 8 bytes to 128 KiB batch together).
repo=$tmp/models
mkdir -p "$repo"
cp -r "$top/examples/models/identity" "$top/examples/models/identity_bytes" \
	"$top/examples/models/simple" "$repo/"
mkdir -p "$repo/identity_dyn/1"
cat > "$repo/identity_dyn/config.pbtxt" <<'CFG'
name: "identity_dyn"
backend: "identity"
max_batch_size: 32
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 200 preferred_batch_size: [ 8, 16 ] }
CFG

sock=$tmp/ferryd.sock
grpc_opt="--grpc-port 0"
http_opt="--http-port 0"
case " $transports " in *" grpc "*) grpc_opt="--grpc-port $grpc_port" ;; esac
case " $transports " in *" http "*) http_opt="--http-port $http_port" ;; esac

lifetime=0
start_ferryd() {
	lifetime=$((lifetime + 1))
	# A killed ferryd leaves its socket: wait for the new one's.
	rm -f "$sock"
	# shellcheck disable=SC2086
	"$ferryd" -m "$repo" -s "$sock" $grpc_opt $http_opt --metrics-port 0 \
		--log-level warn --wait block >> "$tmp/ferryd.log" 2>&1 &
	fpid=$!
	for _ in $(seq 200); do
		[ -S "$sock" ] && break
		sleep 0.1
	done
	[ -S "$sock" ] || { echo "soak.sh: ferryd did not start:" >&2; tail "$tmp/ferryd.log" >&2; exit 1; }
}

sample() {
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$fpid/status" 2>/dev/null)
	fds=$(ls "/proc/$fpid/fd" 2>/dev/null | wc -l)
	printf '%-8s ferryd RSS %6s KiB, %4s fds\n' "$1" "${rss:-?}" "$fds"
}

# One line per broker lifetime, and the RSS bound within it.
growth=${SOAK_RSS_GROWTH_KIB:-1024}
lt_status=0
lifetime_begin() {
	lt_t0=$1 lt_rss0=$rss lt_fds0=$fds lt_rss1= lt_fds1= lt_t1=
}
lifetime_end() {
	printf 'lifetime %d: pid %s, %s s to %s s: RSS %s KiB at its start, %s KiB after its first minute, %s KiB at its end; fds %s, %s, %s\n' \
		"$lifetime" "$fpid" "$lt_t0" "$1" "$lt_rss0" "${lt_rss1:-?}" "$rss" \
		"$lt_fds0" "${lt_fds1:-?}" "$fds"
	if [ -n "$lt_rss1" ] && [ "$1" -gt "$lt_t1" ]; then
		allowed=$((growth * ($1 - lt_t1) / 60))
		[ $((rss - lt_rss1)) -le "$allowed" ] || {
			echo "soak.sh: lifetime $lifetime: RSS grew $((rss - lt_rss1)) KiB under load, more than $allowed" >&2
			lt_status=1; }
	fi
}

start_ferryd
echo "soak: $nclients clients x $secs s, transports: $transports, ferryd pid $fpid," \
	"restart every $restart s (0: never)"
sample start
rss0=$rss
fds0=$fds
lifetime_begin 0

i=0
set -- $transports
ntr=$#
while [ $i -lt "$nclients" ]; do
	# Deal the clients out over the transports in turn.
	eval "tr=\${$((i % ntr + 1))}"
	case $tr in
	grpc) addr=grpc://127.0.0.1:$grpc_port ;;
	http) addr=http://127.0.0.1:$http_port ;;
	*) addr=$sock ;;
	esac
	echo "$tr" > "$tmp/client.$i.transport"
	"$B/tests/soak/soak_client" "$addr" "$i" "$secs" \
		> "$tmp/client.$i.out" 2> "$tmp/client.$i.err" &
	i=$((i + 1))
done

# Sample every minute while the clients run; restart ferryd every
# $restart seconds, alternately with SIGTERM and SIGKILL.
t=0
rss_warm= t_warm=
nrestart=0
while [ $t -lt "$secs" ]; do
	step=$((secs - t < 60 ? secs - t : 60))
	sleep "$step"
	t=$((t + step))
	if [ $t -lt "$secs" ]; then
		sample "${t}s"
		[ -n "$rss_warm" ] || { rss_warm=$rss; t_warm=$t; }
		[ -n "$lt_rss1" ] || { lt_rss1=$rss; lt_fds1=$fds; lt_t1=$t; }
		if [ "$restart" -gt 0 ] && [ $((t % restart)) -eq 0 ]; then
			lifetime_end "$t"
			nrestart=$((nrestart + 1))
			sig=TERM
			[ $((nrestart % 2)) -eq 0 ] && sig=KILL
			echo "soak: restarting ferryd (SIG$sig to pid $fpid) at ${t}s"
			kill -s "$sig" "$fpid"
			for _ in $(seq 300); do
				kill -0 "$fpid" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$fpid" 2>/dev/null; then
				echo "soak.sh: ferryd did not stop on SIG$sig in 30 s" >&2
				kill -9 "$fpid"
				lt_status=1
			fi
			wait "$fpid" 2>/dev/null
			start_ferryd
			sample restart
			lifetime_begin "$t"
			# The RSS bound counts from the new lifetime's first minute.
			rss_warm= t_warm=
		fi
	fi
done
sample "${secs}s"
rss_load=$rss
lifetime_end "$secs"
wait_start=$(date +%s)
# Clients finish their last request, then exit.
while [ "$(jobs -p | grep -vx "$fpid" | wc -l)" -gt 0 ]; do
	sleep 1
	if [ $(($(date +%s) - wait_start)) -gt 120 ]; then
		echo "soak.sh: clients still running 120 s after the end" >&2
		break
	fi
done
sleep 1
sample end
alive=yes
kill -0 "$fpid" 2>/dev/null || alive=no

sent=0 ok=0 bad=0 dup=0 lost=0 rlost=0 missing=0
i=0
while [ $i -lt "$nclients" ]; do
	line=$(grep '^soak_client ' "$tmp/client.$i.out" | tail -1)
	tr=$(cat "$tmp/client.$i.transport")
	if [ -z "$line" ]; then
		missing=$((missing + 1))
		echo "soak.sh: client $i printed no counts:" >&2
		tail -3 "$tmp/client.$i.err" >&2
	else
		set -- $line
		sent=$((sent + $4)) ok=$((ok + $6)) bad=$((bad + $8))
		dup=$((dup + ${10})) lost=$((lost + ${12})) rlost=$((rlost + ${14}))
		echo "$tr $4 $6 $8 ${10} ${12} ${14} ${16} ${18:-0}" >> "$tmp/by_transport"
	fi
	i=$((i + 1))
done

echo "soak: requests sent $sent, ok $ok, corrupted $bad, duplicated $dup, lost $lost," \
	"lost at restarts $rlost ($nrestart restarts), clients without counts $missing"
[ -f "$tmp/by_transport" ] && awk '
	{ s[$1] += $2; o[$1] += $3; b[$1] += $4; d[$1] += $5; l[$1] += $6; r[$1] += $7; c[$1] += $8; a[$1] += $9; n[$1]++ }
	END { for (t in s) printf "soak: %-4s %3d clients: sent %d, ok %d, corrupted %d, duplicated %d, lost %d, lost at restarts %d, reconnects %d, sent again %d\n", t, n[t], s[t], o[t], b[t], d[t], l[t], r[t], c[t], a[t] }' \
	"$tmp/by_transport"
echo "soak: ferryd RSS $rss0 KiB -> $rss KiB, fds $fds0 -> $fds, alive at the end: $alive"
grep -v '^$' "$tmp/ferryd.log" | tail -5 | sed 's/^/ferryd: /'

status=$lt_status
[ "$sent" -gt 0 ] && [ "$bad" -eq 0 ] && [ "$dup" -eq 0 ] && [ "$lost" -eq 0 ] &&
	[ $((ok + rlost)) -eq "$sent" ] && [ "$missing" -eq 0 ] || status=1
[ "$rlost" -eq 0 ] || [ -n "${SOAK_RESTART_LOSS_OK:-}" ] ||
	{ echo "soak.sh: $rlost requests lost at restarts" >&2; status=1; }
[ "$alive" = yes ] || status=1
# Every session's fds (socket, memfd, eventfds) must be gone again: back
# to what the first ferryd held before any client came (a restarted one
# starts with the same).
[ "$fds" = "$fds0" ] || { echo "soak.sh: fd count changed ($fds0 -> $fds)" >&2; status=1; }
# RSS flat under load, and no higher once the clients have left.
if [ -n "$rss_warm" ] && [ -n "$rss_load" ] && [ "$secs" -gt "$t_warm" ]; then
	allowed=$((growth * (secs - t_warm) / 60))
	echo "soak: RSS under load $rss_warm KiB at ${t_warm}s -> $rss_load KiB at ${secs}s" \
		"(bound: +$growth KiB a minute, +$allowed KiB)"
	[ $((rss_load - rss_warm)) -le "$allowed" ] ||
		{ echo "soak.sh: RSS grew $((rss_load - rss_warm)) KiB, more than $allowed" >&2; status=1; }
	[ "${rss:-0}" -le "$rss_load" ] ||
		{ echo "soak.sh: RSS after the clients left ($rss KiB) above that under load" >&2; status=1; }
else
	echo "soak: SKIP RSS check: a run of $secs s has no second sample under load (2 minutes or more)"
fi
kill "$fpid" 2>/dev/null
wait "$fpid" 2>/dev/null
fpid=
[ ! -e "$sock" ] || echo "soak.sh: ferryd left its socket behind" >&2
[ $status -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit $status
