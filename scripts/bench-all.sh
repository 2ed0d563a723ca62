#!/bin/sh
# SPDX-License-Identifier: MIT
# bench-all.sh - rerun every benchmark this machine can run (the GPU ones:
# scripts/gpu-check.sh on a GPU machine) and regenerate
# the CSVs, the terminal logs and the plots into bench/out/ (gitignored).
#
#   scripts/bench-all.sh [BUILD_DIR]      (default: build-bench)
#
# BUILD_DIR must be configured and built (../configure && make).  The
# plots need matplotlib: it is installed into the source tree's .venv when
# missing.  Copy the PNGs worth keeping to bench/results/ by hand.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
case $build in /*) ;; *) build=$top/$build ;; esac
out=$top/bench/out
mkdir -p "$out"
export FERRY_TOP_BUILDDIR=$build FERRY_TOP_SRCDIR=$top

run() {	# name, command...: log to $out/name.txt
	name=$1; shift
	echo "== $name: $*" >&2
	{ echo "# $*"; echo "# $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"; } \
		>"$out/$name.txt"
	"$@" >>"$out/$name.txt" 2>"$out/$name.err" || echo "   $name failed (see $out/$name.err)" >&2
	tail -n 30 "$out/$name.txt" >&2
}

run ring "$build/ferry-ring-bench" --csv "$out/ring.csv"
rm -f "$out/latency.csv" "$out/throughput.csv"
run latency "$build/ferry-bench" latency --csv "$out/latency.csv"
run throughput "$build/ferry-bench" throughput --csv "$out/throughput.csv"
run grpc "$build/ferry-grpc-bench" --csv "$out/grpc.csv"
run onnx "$build/ferry-onnx-bench" --csv "$out/onnx.csv"
run load "$build/ferry-bench-load" --concurrency-range 1:8:1 -f "$out/load.csv"
run load-rate "$build/ferry-bench-load" --request-rate-range 5000:25000:10000 \
	--request-distribution poisson -f "$out/load-rate.csv"
run saturate "$build/ferry-bench-saturate" --csv "$out/saturate.csv"
[ -x "$build/ferry-bench-clients" ] &&
	run clients "$build/ferry-bench-clients" --csv "$out/clients.csv"
# the distance study needs root (network namespaces); Triton, a 55 MB
# wheel from PyPI (FERRY_BENCH_TRITON=0 leaves it out)
if [ "$(id -u)" = 0 ]; then
	run distance "$top/bench/distance.sh" "$build"
else
	echo "== distance: skipped (needs root for network namespaces)" >&2
fi
[ "${FERRY_BENCH_TRITON:-1}" != 0 ] && run triton "$top/bench/triton/run.sh" "$build"

py=$top/.venv/bin/python
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
	"$top/.venv/bin/pip" install -q matplotlib || { echo "no matplotlib: no plots" >&2; exit 0; }
fi
"$py" "$top/bench/plot.py" "$out"
