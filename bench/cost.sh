#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/cost.sh - where ferryd's CPU goes per request (issue 14): the
# saturate study's jobs (ferry-bench-saturate, synchronous by default; the MLP
# of 64 rows, run inline by ferryd) with ferryd under `perf record -e
# cpu-clock` (a software clock: it works in VMs without hardware
# counters), and its samples sorted into
#
#   model    the model's own compute: OpenBLAS, libm, the native
#            executor's ox_* functions
#   ferry    the rest of ferryd: rings, sessions, scheduler, pollers
#   libc     libc and the vDSO (memcpy of the tensors, locks, clocks)
#   kernel   system calls, wake-ups and context switches
#
# each as microseconds of ferryd CPU per request (samples / frequency /
# executions from ferryd's statistics), beside the model's time in the
# jobs' own process (direct mode, same run).  With OLD_FERRYD=path the same
# for that ferryd (e.g. one built at 81f6f39, before the pollers), so
# before and after come from one run.
#
#   bench/cost.sh [BUILD_DIR]
# Environment: SECONDS_PER (5), FREQ (4999), OUT (bench/out/cost),
# OLD_FERRYD, JOBS (sync: single-thread jobs, one event in flight; async:
# the CMSSW-like jobs, whose requests keep ferryd's pollers busy), EXTRA
# (more ferry-bench-saturate options)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
sat=$build/ferry-bench-saturate
SECS=${SECONDS_PER:-5}
FREQ=${FREQ:-4999}
OUT=${OUT:-$top/bench/out/cost}
mkdir -p "$OUT"
case ${JOBS:-sync} in
sync) shape=--sync ;;
async) shape= ;;
*) echo "cost.sh: JOBS is sync or async" >&2; exit 2 ;;
esac
[ -x "$sat" ] || { echo "cost.sh: $sat not built (make ferry-bench-saturate)" >&2; exit 2; }
command -v perf >/dev/null || { echo "cost.sh: perf not found (Debian: linux-perf)" >&2; exit 77; }

# ferry-bench-saturate starts ferryd through this wrapper: perf record
# runs ferryd (so every thread it makes is sampled), and the SIGTERM that
# stops it is passed on to ferryd.
wrap=$OUT/ferryd-perf.sh
cat > "$wrap" <<'EOF'
#!/usr/bin/env bash
perf record -q -e cpu-clock -F "$COST_FREQ" -o "$COST_DATA" -- "$COST_FERRYD" "$@" 2>/dev/null &
rec=$!
pid=
stop() {
	[ -n "$pid" ] || pid=$(pgrep -P $rec | head -1)
	kill -TERM "$pid"
}
trap stop TERM INT
for _ in $(seq 100); do
	pid=$(pgrep -P $rec | head -1)
	[ -n "$pid" ] && break
	sleep 0.05
done
wait $rec || wait $rec || true
EOF
chmod +x "$wrap"

one() {	# name ferryd
	local name=$1 ferryd=$2
	COST_FERRYD=$ferryd COST_FREQ=$FREQ COST_DATA=$OUT/$name.data \
		"$sat" --modes direct,broker-shm $shape --inline --instances "$(nproc)" \
		--reps 1 --seconds "$SECS" --ferryd "$wrap" ${EXTRA:-} 2>/dev/null > "$OUT/$name.txt"
	local execs direct
	execs=$(sed -n 's/^broker-shm batches: \([0-9]*\) executions.*/\1/p' "$OUT/$name.txt")
	direct=$(awk '$1 == "direct" { print $7 }' "$OUT/$name.txt")
	local samples
	samples=$(perf report -i "$OUT/$name.data" --stdio --sort dso 2>/dev/null |
		sed -n 's/^# Samples: \([0-9.]*\)\(K*\).*/\1 \2/p' | awk '{ print $2 == "K" ? $1 * 1000 : $1 }')
	perf report -i "$OUT/$name.data" --stdio --no-children --sort dso,sym -q -g none \
		--percent-limit 0 2>/dev/null |
	awk -v n="$execs" -v f="$FREQ" -v s="$samples" -v name="$name" -v direct="$direct" '
	/%/ {
		p = $1; sub(/%/, "", p); dso = $2; sym = $NF
		if (dso ~ /kernel/) k += p
		else if (dso ~ /openblas|libm\.so|libgomp/ || sym ~ /^ox_/) m += p
		else if (dso ~ /ferryd/) fe += p
		else l += p
	}
	END {
		us = s / f * 1e6 / n	# ferryd CPU per request, us
		printf "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", name, n, us,
			us * m / 100, us * fe / 100, us * l / 100, us * k / 100, direct,
			us - us * m / 100
	}'
}

echo "cost.sh: ${JOBS:-sync} jobs, $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg), perf cpu-clock at $FREQ Hz, $SECS s"
echo "| ferryd | requests | CPU us/request | model | ferry | libc | kernel | model in the job (direct, us) | ferryd beyond its model |"
echo "|---|---|---|---|---|---|---|---|---|"
one after "$build/broker/ferryd"
[ -n "${OLD_FERRYD:-}" ] && one before "$OLD_FERRYD"
echo "cost.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg); perf data and runs in $OUT"
