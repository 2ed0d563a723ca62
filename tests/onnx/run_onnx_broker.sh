#!/bin/sh
# SPDX-License-Identifier: MIT
# The ONNX backend through a real ferryd (test_onnx_broker), on the models
# that run_onnx_tests.sh generates.  Exit 77 where the venv lacks onnx.
FERRY_ONNX_PROGRAM=test_onnx_broker
export FERRY_ONNX_PROGRAM
exec "$(dirname "$0")/run_onnx_tests.sh" "$@"
