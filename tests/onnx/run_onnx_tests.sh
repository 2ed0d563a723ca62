#!/bin/sh
# SPDX-License-Identifier: MIT
# Test driver of the ONNX executor (make check): generate the models and
# onnxruntime's reference outputs into a temporary directory, then run the
# Criterion suite on them.  Exit 77 (skipped) where the virtual environment
# (scripts/setup-debian.sh) lacks numpy, onnx or onnxruntime.
#
# Arguments go to the Criterion program (e.g. --filter 'onnx/reference*').
# FERRY_ONNX_RUNNER, when set, prefixes the program (e.g. "valgrind -q").
# FERRY_ONNX_PROGRAM names the program under tests/onnx (default test_onnx;
# run_onnx_broker.sh and run_onnx_gpu.sh set it).
top_src=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
top_build=${FERRY_TOP_BUILDDIR:-.}
py=$top_src/.venv/bin/python

if ! [ -x "$py" ] || ! "$py" -c 'import numpy, onnx, onnxruntime' 2>/dev/null; then
	echo "SKIP: $py cannot import numpy, onnx and onnxruntime (run scripts/setup-debian.sh)"
	exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-onnx.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT INT TERM
if ! "$py" "$top_src/tests/onnx/gen_models.py" "$dir" >"$dir/gen.log" 2>&1; then
	cat "$dir/gen.log"
	echo "ERROR: gen_models.py failed"
	exit 99
fi
FERRY_ONNX_MODELS=$dir
export FERRY_ONNX_MODELS
$FERRY_ONNX_RUNNER "$top_build/tests/onnx/${FERRY_ONNX_PROGRAM:-test_onnx}" "$@"
