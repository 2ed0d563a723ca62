#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run_python.sh - the tritonclient.http suite against a real ferryd
# (make check).  Uses $FERRY_PYTHON, else the project's venv
# ($FERRY_TOP_SRCDIR/.venv, made by scripts/setup-debian.sh).  Exit 77
# (skipped) when there is no Python with tritonclient[http] and numpy;
# each unittest counts as one test (scripts/test-summary.sh reads "Ran N
# tests" and the verdict line).
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import tritonclient.http, tritonclient.grpc, tritonclient.utils.shared_memory, numpy' 2>/dev/null; then
	echo "SKIP: no Python with tritonclient[http] and numpy ($py); run scripts/setup-debian.sh"
	exit 77
fi
exec "$py" -W ignore "$top/tests/http/test_tritonclient_http.py" -v
