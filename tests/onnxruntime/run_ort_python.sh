#!/bin/sh
# SPDX-License-Identifier: MIT
# The onnxruntime backend through tritonclient[grpc] (test_ort_grpc.py),
# against onnxruntime in the same Python: see run_ort_tests.sh (it skips,
# exit 77, for the same reasons, and without tritonclient).
FERRY_ORT_PROGRAM=test_ort_grpc.py
export FERRY_ORT_PROGRAM
exec "$(dirname "$0")/run_ort_tests.sh" "$@"
