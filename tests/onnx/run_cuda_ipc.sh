#!/bin/sh
# SPDX-License-Identifier: MIT
# CUDA IPC tensors through libferry and a real ferryd (test_cuda_ipc), on
# the models run_onnx_tests.sh generates.  The "cuda_gpu" tests skip where
# CUDA finds no device; exit 77 where the venv lacks onnx.
FERRY_ONNX_PROGRAM=test_cuda_ipc
export FERRY_ONNX_PROGRAM
exec "$(dirname "$0")/run_onnx_tests.sh" "$@"
