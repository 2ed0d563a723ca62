#!/bin/sh
# SPDX-License-Identifier: MIT
# The ONNX executor on CUDA (test_onnx_gpu) against the CPU executor and
# onnxruntime.  Exit 77 where the venv lacks onnx or no CUDA device exists.
FERRY_ONNX_PROGRAM=test_onnx_gpu
export FERRY_ONNX_PROGRAM
exec "$(dirname "$0")/run_onnx_tests.sh" "$@"
