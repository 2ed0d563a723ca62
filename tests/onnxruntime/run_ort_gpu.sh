#!/bin/sh
# SPDX-License-Identifier: MIT
# The onnxruntime backend on a GPU (test_ort_gpu): see run_ort_tests.sh;
# the tests skip, saying why, without $FERRY_ORT_GPU_LIBRARY or a device.
FERRY_ORT_PROGRAM=test_ort_gpu
export FERRY_ORT_PROGRAM
exec "$(dirname "$0")/run_ort_tests.sh" "$@"
