#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run.sh - ferry-tune's tests (make check): test_tune_unit.py (the logic
# alone) and test_tune_cpu.py (short tunes against real ferryds of the
# build tree; skipped without onnx and onnxruntime), in one unittest run in
# verbose mode: scripts/test-summary.sh counts its "Ran N tests" and each
# "skipped 'reason'".  Uses $FERRY_PYTHON, else the project's venv (made by
# scripts/setup-debian.sh); exit 77 (skipped) without a Python with numpy.
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import numpy' 2>/dev/null; then
	echo "SKIP: tests/tune: no Python with numpy ($py); run scripts/setup-debian.sh"
	exit 77
fi
PYTHONDONTWRITEBYTECODE=1
PYTHONPATH="$top/tests/tune${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE PYTHONPATH
exec "$py" -m unittest -v test_tune_unit test_tune_cpu
