#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test_cpu.sh - tests/tune/test_tune_cpu.py (ferry-tune), with unittest in
# verbose mode: scripts/test-summary.sh counts its "Ran N tests" and each
# "skipped 'reason'".  Uses $FERRY_PYTHON, else the project's venv (made by
# scripts/setup-debian.sh); exit 77 (skipped) without a Python that has
# numpy and onnxruntime.
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import numpy, onnx, onnxruntime' 2>/dev/null; then
	echo "SKIP: tests/tune/test_cpu: no Python with numpy, onnx and onnxruntime ($py); run scripts/setup-debian.sh"
	exit 77
fi
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE
exec "$py" "$top/tests/tune/test_tune_cpu.py"
