#!/bin/sh
# SPDX-License-Identifier: MIT
# offload.sh - the offload study of issue 6, run on the GPU machine:
# CPU-saturating jobs with their inference in-process (direct) against the
# same jobs inferring through ferryd on the GPU (broker-gpu), over a sweep
# of job counts up to twice the cores.
#
#   bench/offload.sh BUILD_DIR OUT_DIR
#
# Prints ferry-bench-saturate's tables (one per job count, then the
# sweep: events/s, the measured gain beside Amdahl's 1 / (1 - f), the
# fraction of a broker-gpu event still waiting on inference) and writes
# OUT_DIR/offload.csv.  Runs in under 150 s on a 16-core machine: 7 job
# counts x 2 modes x 2 repetitions x 2 s of measurement, about 60 s, plus
# one ferryd start per job count; --max-seconds stops the sweep before a
# count that would end past 125 s, and `timeout` kills it at 145 s.
#
# Exit status: 0, 77 when broker-gpu cannot run here (ferryd built without
# CUDA, or no driver or device: ferryd could not load the model on a
# KIND_GPU instance), else 1.
#
# The GPU machine has no compiler and no venv: the caller (scripts/
# gpu-check.sh) sets LD_LIBRARY_PATH and exports FERRY_ONNX_MODELS (gen_
# models.py's output, made on the build machine; it must hold
# mlp_wide.onnx), FERRY_TOP_SRCDIR and FERRY_TOP_BUILDDIR.  Without
# FERRY_ONNX_MODELS the models are generated with the source tree's venv.
#
# Knobs (environment): FERRY_OFFLOAD_JOBS (a comma list; default 1, 2, 4,
# ... up to the cores, then 1.5x and 2x the cores), FERRY_OFFLOAD_WORK_US
# (CPU work per event, default 300: with mlp_wide's ~0.8 ms inference on
# one core, inference is ~70% of a direct event, Amdahl's bound ~3.5x),
# FERRY_OFFLOAD_SECONDS (2), FERRY_OFFLOAD_REPS (2), FERRY_OFFLOAD_MODEL
# (mlp_wide), FERRY_OFFLOAD_GPU_DELAY_US (ferryd's max_queue_delay for
# the GPU model, default 0).
set -u
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR OUT_DIR" >&2; exit 1; }
build=$1
out=$2
mkdir -p "$out" || exit 1

bench=$build/ferry-bench-saturate
[ -f "$build/.libs/ferry-bench-saturate" ] && bench=$build/.libs/ferry-bench-saturate
for f in "$bench" "$build/broker/ferryd"; do
	[ -x "$f" ] || { echo "offload: $f is missing: build it first" >&2; exit 1; }
done

# the build's libferry after the caller's libraries (the ELF in .libs
# finds it through the libtool wrapper only)
LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$build/libclient/.libs
export LD_LIBRARY_PATH

cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
jobs=${FERRY_OFFLOAD_JOBS:-}
if [ -z "$jobs" ]; then
	jobs=1
	n=2
	while [ "$n" -lt "$cores" ]; do
		jobs="$jobs,$n"
		n=$((n * 2))
	done
	[ "$cores" -gt 1 ] && jobs="$jobs,$cores"
	[ "$cores" -ge 4 ] && jobs="$jobs,$((cores * 3 / 2))"
	jobs="$jobs,$((cores * 2))"
fi

model=${FERRY_OFFLOAD_MODEL:-mlp_wide}
if [ -n "${FERRY_ONNX_MODELS:-}" ] && [ ! -f "$FERRY_ONNX_MODELS/$model.onnx" ]; then
	echo "offload: $FERRY_ONNX_MODELS has no $model.onnx: regenerate it with" \
	     "tests/onnx/gen_models.py (scripts/gpu-pack.sh does)" >&2
	exit 1
fi

set -- --modes direct,broker-gpu --require-gpu --jobs-list "$jobs" \
	--model "$model" \
	--work-us "${FERRY_OFFLOAD_WORK_US:-300}" \
	--seconds "${FERRY_OFFLOAD_SECONDS:-2}" --reps "${FERRY_OFFLOAD_REPS:-2}" \
	--gpu-delay-us "${FERRY_OFFLOAD_GPU_DELAY_US:-0}" --max-seconds 125 \
	--ferryd "$build/broker/ferryd" --backend-dir "$build/tests/onnx/.libs" \
	--csv "$out/offload.csv"
[ -n "${FERRY_ONNX_MODELS:-}" ] && set -- "$@" --models "$FERRY_ONNX_MODELS"

echo "offload: $(date -u '+%Y-%m-%d %H:%M UTC'), $cores cores, jobs $jobs"
if command -v nvidia-smi > /dev/null 2>&1; then
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
		2>/dev/null | sed 's/^/offload: GPU: /'
fi
echo "offload: $bench $*"
if command -v timeout > /dev/null 2>&1; then
	timeout 145 "$bench" "$@" 2>"$out/offload.stderr"
else
	"$bench" "$@" 2>"$out/offload.stderr"
fi
rc=$?
case $rc in
0)	echo "offload: CSV in $out/offload.csv" ;;
77)	echo "offload: skipped: no GPU (ferryd cannot run the model on a KIND_GPU instance here)"
	rm -f "$out/offload.csv" ;;
124)	echo "offload: stopped by the 145 s limit; partial CSV in $out/offload.csv"
	tail -n 5 "$out/offload.stderr"
	rc=1 ;;
*)	echo "offload: ferry-bench-saturate failed (exit $rc):"
	tail -n 20 "$out/offload.stderr"
	rc=1 ;;
esac
exit $rc
