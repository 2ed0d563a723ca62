#!/bin/sh
# SPDX-License-Identifier: MIT
# gpu-check.sh - the ONE script to run on a GPU machine (the device tool):
# the ONNX GPU test, the broker-level ONNX test (whose KIND_GPU model then
# loads and serves), the CPU executor test, CUDA IPC tensors through
# libferry, Triton's CUDA shared memory over gRPC, ferry-onnx-bench and the
# offload study (bench/offload.sh), with
# every output under $OUT (default ./gpu-out).
#
# Prepare here, on the build machine (the GPU machine has no compiler, no
# venv and no Debian libraries):
#     make -j2 && make check TESTS=      # in BUILD_DIR (default build-onnx)
#     scripts/gpu-pack.sh BUILD_DIR      # fills devlibs/ (libs + models)
# then run, from the repository root, with carry
#     [devpack]   (gpu-pack.sh's archive of the build and devlibs, ~30 MiB)
#     tar xzf devpack/ferry-gpu.tgz && scripts/gpu-check.sh BUILD_DIR
#
# Exit status: 0 when every step passed, else the number of failed steps.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-onnx}
case $build in /*) ;; *) build=$top/$build ;; esac
out=${OUT:-$top/gpu-out}
mkdir -p "$out"
LD_LIBRARY_PATH=$top/devlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
FERRY_TOP_SRCDIR=$top
FERRY_TOP_BUILDDIR=$build
FERRY_ONNX_MODELS=$top/devlibs/models
# ferryd and the tests dlopen() the CUDA modules (gpu_cuda.so, ox_cuda.so)
# from the build tree: this copy of it may sit elsewhere than where it was
# configured, so name its module directories.
FERRY_MODULE_DIR=$build/broker/gpu/.libs:$build/broker/backends/onnx/.libs
export LD_LIBRARY_PATH FERRY_TOP_SRCDIR FERRY_TOP_BUILDDIR FERRY_ONNX_MODELS FERRY_MODULE_DIR
failed=0

real() {	# the ELF behind a libtool wrapper
	d=$(dirname "$1"); n=$(basename "$1")
	if [ -f "$d/.libs/$n" ]; then echo "$d/.libs/$n"; else echo "$1"; fi
}

step() {	# step NAME TIMEOUT COMMAND...: run, log, record
	name=$1; limit=$2; shift 2
	start=$(date +%s)
	timeout "$limit" "$@" > "$out/$name.txt" 2>&1
	rc=$?
	note=; [ $rc -eq 77 ] && note=" (skipped: no CUDA device seen)"
	echo "$name: exit $rc$note in $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
	[ $rc -eq 0 ] || [ $rc -eq 77 ] || failed=$((failed + 1))
	tail -n 5 "$out/$name.txt"
}

{
	date -u
	uname -a
	nvidia-smi 2>&1 || echo "nvidia-smi: not found"
	nproc
} > "$out/machine.txt" 2>&1
head -n 20 "$out/machine.txt"
: > "$out/summary.txt"
for p in "$build/broker/ferryd" "$(real "$build/tests/onnx/test_onnx_gpu")" \
	 "$(real "$build/ferry-onnx-bench")" "$build/broker/gpu/.libs/gpu_cuda.so" \
	 "$build/broker/backends/onnx/.libs/ox_cuda.so"; do
	[ -f "$p" ] || { echo "$p: missing" >> "$out/missing-libs.txt"; continue; }
	ldd "$p" | grep 'not found' >> "$out/missing-libs.txt"
done
[ -s "$out/missing-libs.txt" ] && { echo "missing libraries:"; cat "$out/missing-libs.txt"; }

# the GPU module's policy (IPC cache, module lookup, NUMA); then what an
# idle ferryd maps and holds on a GPU machine (logged, not checked there)
step test_gpu 60 "$(real "$build/tests/test_gpu")" --verbose
step test_start 120 "$(real "$build/tests/test_start")" --jobs 1 --verbose \
	--filter 'start/idle_*'
# correctness first: GPU executor vs CPU and onnxruntime, arenas, NUMA
step test_onnx_gpu 240 "$(real "$build/tests/onnx/test_onnx_gpu")"
# the backend through ferryd: KIND_GPU instances next to KIND_CPU ones
step test_onnx_broker 180 "$(real "$build/tests/onnx/test_onnx_broker")" --jobs 1
step test_onnx 120 "$(real "$build/tests/onnx/test_onnx")" --jobs 4
# CUDA IPC tensors through libferry from this (second) process, and
# Triton's CUDA shared memory over gRPC
step test_cuda_ipc 120 "$(real "$build/tests/onnx/test_cuda_ipc")" --jobs 1 --verbose
step test_cuda_shm 90 "$(real "$build/tests/test_cuda_shm")" --jobs 1 --verbose
# the onnxruntime backend on the GPU (CUDA and TensorRT execution
# providers, arena and CUDA IPC inputs, against the CPU outputs): needs
# onnxruntime-gpu's library, FERRY_ORT_GPU_LIBRARY=/path/libonnxruntime.so.1.x
# (the 256 MB wheel does not travel in devpack: install it on the GPU
# machine); without it every test skips, saying why
FERRY_ORT_MODELS=${FERRY_ORT_MODELS:-$top/devlibs/ort-models}
export FERRY_ORT_MODELS
step test_ort_gpu 300 "$(real "$build/tests/onnxruntime/test_ort_gpu")" --jobs 1 --verbose
# then the numbers (FERRY_GPU_QUICK=1: tests only)
[ -n "${FERRY_GPU_QUICK:-}" ] && { echo "gpu-check: $failed step(s) failed; results in $out"; exit $failed; }
step onnx_bench 240 "$(real "$build/ferry-onnx-bench")" --models "$FERRY_ONNX_MODELS" \
	--ferryd "$build/broker/ferryd" --backend-dir "$build/tests/onnx/.libs" \
	--csv "$out/onnx_bench.csv"
cat "$out/onnx_bench.txt"
# the offload study (issue 6): the saturating jobs with ferryd on the GPU
if [ -x "$top/bench/offload.sh" ]; then
	step offload 200 "$top/bench/offload.sh" "$build" "$out"
	cat "$out/offload.txt"
fi
echo "gpu-check: $failed step(s) failed; results in $out"
exit $failed
