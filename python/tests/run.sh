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
# A sanitized build's libferry needs the sanitizer runtimes loaded first
# (Python is not built with them); the interpreter's own allocations are
# not ferry's to report, so leak checking is off for it.
build=${FERRY_TOP_BUILDDIR:-$top/build}
san=$(sed -n 's/^FERRY_LDFLAGS = //p' "$build/Makefile" 2>/dev/null)
case $san in
*-fsanitize=address*)
	for rt in libasan.so libubsan.so; do
		f=$(${CC:-cc} -print-file-name=$rt)
		[ -f "$f" ] && LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$f"
	done
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"   # the last setting wins
	export LD_PRELOAD ASAN_OPTIONS ;;
*-fsanitize=thread*)
	echo "SKIP: python/tests: a ThreadSanitizer build (the interpreter cannot load its libferry)"
	exit 77 ;;
esac
PYTHONPATH="$top/python${PYTHONPATH:+:$PYTHONPATH}"
PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH PYTHONDONTWRITEBYTECODE
# No cache directory in the source tree; -rs: each skip's reason.
exec "$py" -m pytest -p no:cacheprovider -v -rs "$top/python/tests" "$@"
