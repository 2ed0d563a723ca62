#!/bin/sh
# SPDX-License-Identifier: MIT
# The onnxruntime backend's tests (make check): generate the models and
# onnxruntime's reference outputs (gen_ort_models.py, in the venv) into a
# temporary directory, then run the program named by $FERRY_ORT_PROGRAM
# (default test_ort_broker; a name ending in .py is a Python test of this
# folder, run with the venv's Python, which builds its own models).  Exit
# 77 (skipped) where the venv lacks numpy, onnx or onnxruntime (and
# tritonclient, for a Python test), where configure built no onnxruntime
# plugin, or where it found no ONNX Runtime library (configure
# --with-onnxruntime=DIR).  Arguments go to the program.
top_src=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
top_build=${FERRY_TOP_BUILDDIR:-.}
py=${FERRY_PYTHON:-$top_src/.venv/bin/python}
prog=${FERRY_ORT_PROGRAM:-test_ort_broker}
mods='numpy, onnx, onnxruntime'
case $prog in *.py) mods="$mods, tritonclient.grpc" ;; esac

if ! [ -x "$py" ] || ! "$py" -c "import $mods" 2>/dev/null; then
	echo "SKIP: $py cannot import $mods (run scripts/setup-debian.sh)"
	exit 77
fi
if ! [ -f "$top_build/broker/backends/onnxruntime/.libs/libferry_onnxruntime.so" ]; then
	echo "SKIP: no onnxruntime backend plugin in this build (configure --without-onnxruntime?)"
	exit 77
fi
lib=$(sed -n 's/^#define FERRY_ORT_LIBRARY "\(.*\)"$/\1/p' "$top_build/config.h")
if [ -z "$lib" ] || ! [ -f "$lib" ]; then
	echo "SKIP: configure found no ONNX Runtime library (scripts/setup-debian.sh installs the wheel; or configure --with-onnxruntime=DIR)"
	exit 77
fi
case $prog in *.py) exec "$py" -W ignore "$top_src/tests/onnxruntime/$prog" -v "$@" ;; esac
dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-ort.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT INT TERM
if ! "$py" "$top_src/tests/onnxruntime/gen_ort_models.py" "$dir" >"$dir/gen.log" 2>&1; then
	cat "$dir/gen.log"
	echo "ERROR: gen_ort_models.py failed"
	exit 99
fi
FERRY_ORT_MODELS=$dir
FERRY_ORT_LIBRARY=$lib
export FERRY_ORT_MODELS FERRY_ORT_LIBRARY
$FERRY_ORT_RUNNER "$top_build/tests/onnxruntime/$prog" "$@"
