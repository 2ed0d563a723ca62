#!/bin/sh
# SPDX-License-Identifier: MIT
# The onnxruntime backend through tritonclient[grpc] (test_ort_grpc.py),
# against onnxruntime in the same Python.  Exit 77 (skipped) without a
# Python that has tritonclient, onnx and onnxruntime, without the plugin,
# or without an ONNX Runtime library (see run_ort_tests.sh).
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FERRY_TOP_BUILDDIR:-.}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import tritonclient.grpc, numpy, onnx, onnxruntime' 2>/dev/null; then
	echo "SKIP: no Python with tritonclient[grpc], onnx and onnxruntime ($py); run scripts/setup-debian.sh"
	exit 77
fi
if ! [ -f "$build/broker/backends/onnxruntime/.libs/libferry_onnxruntime.so" ]; then
	echo "SKIP: no onnxruntime backend plugin in this build"
	exit 77
fi
lib=$(sed -n 's/^#define FERRY_ORT_LIBRARY "\(.*\)"$/\1/p' "$build/config.h")
if [ -z "$lib" ] || ! [ -f "$lib" ]; then
	echo "SKIP: configure found no ONNX Runtime library"
	exit 77
fi
exec "$py" -W ignore "$top/tests/onnxruntime/test_ort_grpc.py" -v
