#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test_unit.sh - tests/tune/test_tune_unit.py (ferry-tune), with unittest in
# verbose mode: scripts/test-summary.sh counts its "Ran N tests" and each
# "skipped 'reason'".  Uses $FERRY_PYTHON, else the project's venv (made by
# scripts/setup-debian.sh); exit 77 (skipped) without a Python that has
# numpy.
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import numpy' 2>/dev/null; then
	echo "SKIP: tests/tune/test_unit: no Python with numpy ($py); run scripts/setup-debian.sh"
	exit 77
fi
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE
exec "$py" "$top/tests/tune/test_tune_unit.py"
