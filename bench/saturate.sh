#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/saturate.sh - the study of issue 14 in one run: does serving cost
# the jobs that saturate every core anything?  Each case is
# ferry-bench-saturate's comparison with direct (the model in each job's
# own process) in the same run, R repetitions interleaved:
#
#   async   CMSSW-like jobs (T threads, 2T events in flight, inference as
#           asynchronous external work), native executor inline in ferryd
#           (one instance per CPU: each poller runs its own requests)
#   async-ort, sync-ort  the same with onnxruntime, in the jobs (direct) and
#           in ferryd (where ferryd was built with it)
#   async-ort-batch  async-ort with dynamic batching (delay 0) across the
#           jobs' requests in ferryd: one Run for what is queued
#   sync    synchronous single-thread jobs, one event in flight
#   rows    1 to 4 rows per event of mlp_wide, dynamic batching across the
#           jobs' requests (per-jet / per-event taggers), 4T events in
#           flight per job so that a wake-up finds several to batch
#   grpc    asynchronous jobs over grpc://
#   idle    a resident idle broker (broker-idle)
#   sessions  one active client beside 1000 idle sessions
# and, with OLD_FERRYD=path (a ferryd built before the pollers, e.g. from
# commit 81f6f39), the sync and async cases again against it, so "before"
# and "after" come from the same run.
#
#   bench/saturate.sh [BUILD_DIR]          # default build
# Environment: REPS (3), SECONDS_PER (3), OUT (bench/out/saturate),
# CASES ("async sync rows grpc idle sessions"), OLD_FERRYD.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
sat=$build/ferry-bench-saturate
cli=$build/ferry-bench-clients
REPS=${REPS:-3}
SECS=${SECONDS_PER:-3}
OUT=${OUT:-$top/bench/out/saturate}
CASES=${CASES:-async sync async-ort async-ort-batch sync-ort rows grpc idle sessions}
n=$(nproc)
mkdir -p "$OUT"
for b in "$sat" "$cli"; do
	[ -x "$b" ] || { echo "saturate.sh: $b not built (make $(basename "$b"))" >&2; exit 2; }
done

run() {	# name, args...
	local name=$1
	shift
	echo "== $name: ferry-bench-saturate $*"
	"$sat" --reps "$REPS" --seconds "$SECS" --csv "$OUT/$name.csv" "$@" 2>/dev/null |
		tee "$OUT/$name.txt" | grep -vE '^\[' || true
}

echo "saturate.sh: $(nproc) CPUs, $(uname -r), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
for c in $CASES; do
	case $c in
	async)
		run async --modes direct,broker-shm --inline --instances "$n"
		[ -n "${OLD_FERRYD:-}" ] &&
			run async-before --modes direct,broker-shm --inline --instances "$n" \
				--ferryd "$OLD_FERRYD" ;;
	sync)
		run sync --modes direct,broker-shm --inline --instances "$n" --sync
		[ -n "${OLD_FERRYD:-}" ] &&
			run sync-before --modes direct,broker-shm --inline --instances "$n" --sync \
				--ferryd "$OLD_FERRYD" ;;
	async-ort|sync-ort|async-ort-batch)
		if [ ! -e "$build/broker/backends/onnxruntime/.libs/libferry_onnxruntime.so" ]; then
			echo "== $c: skipped: ferryd built without onnxruntime"
			continue
		fi
		extra=
		[ "$c" = sync-ort ] && extra=--sync
		[ "$c" = async-ort-batch ] && extra="--delay-us 0"
		run "$c" --modes direct,broker-shm --inline --instances "$n" --backend onnxruntime \
			$extra ;;
	rows)
		t=$(nproc); [ "$t" -gt 4 ] && t=4
		run rows --modes direct,broker-shm --inline --model mlp_wide --rows 1-4 \
			--delay-us 0 --instances "$(nproc)" --streams $((4 * t)) ;;
	grpc)
		run grpc --modes direct,broker-grpc ;;
	idle)
		run idle --modes direct,broker-idle ;;
	sessions)
		echo "== sessions: ferry-bench-clients --idle 0,1000"
		"$cli" --idle 0,1000 --reps "$REPS" --seconds "$SECS" --csv "$OUT/sessions.csv" \
			2>/dev/null | tee "$OUT/sessions.txt" ;;
	*)
		echo "saturate.sh: unknown case $c" >&2
		exit 2 ;;
	esac
done
py=$top/.venv/bin/python
[ -x "$py" ] && "$py" "$top/bench/plot.py" "$OUT" 2>/dev/null &&
	echo "saturate.sh: the cases' ratios plotted in $OUT/saturate_cases.png"
echo "saturate.sh: loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"
