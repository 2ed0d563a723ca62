#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run.sh - the pytest suite of the `ferry` Python package (python/ferry)
# against real ferryds of the build tree (make check; by hand:
# FERRY_TOP_BUILDDIR=build python/tests/run.sh [pytest arguments]).
#
# Uses $FERRY_PYTHON, else the project's venv ($FERRY_TOP_SRCDIR/.venv,
# made by scripts/setup-debian.sh).  Exit 77 (skipped) when there is no
# Python with numpy and pytest.  The package is imported from the
# checkout (python/ on PYTHONPATH), so libferry is the build tree's.  Each
# test prints one line at the end, "PASS: name", "FAIL: name: why" or
# "SKIP: name: reason" (python/tests/conftest.py), which
# scripts/test-summary.sh counts.
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import numpy, pytest' 2>/dev/null; then
	echo "SKIP: python/tests: no Python with numpy and pytest ($py); run scripts/setup-debian.sh"
	exit 77
fi
PYTHONPATH="$top/python${PYTHONPATH:+:$PYTHONPATH}"
PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH PYTHONDONTWRITEBYTECODE
# No cache directory in the source tree; -rs: each skip's reason.
exec "$py" -m pytest -p no:cacheprovider -v -rs "$top/python/tests" "$@"
