#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run_python.sh - the tritonclient suite against a real ferryd (make check).
#
# Uses $FERRY_PYTHON, else the project's venv ($FERRY_TOP_SRCDIR/.venv,
# made by scripts/setup-debian.sh).  Exit 77 (skipped) when there is no
# Python with tritonclient[grpc] and numpy.  First checks that
# proto/kserve.proto agrees with the descriptors tritonclient ships (a
# test of its own: "PASS:", or "SKIP:" with the reason when protoc is
# missing, never a silent pass); then each unittest counts as one test
# (scripts/test-summary.sh reads "Ran N tests" and the verdict line).
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${FERRY_PYTHON:-$top/.venv/bin/python}
if ! [ -x "$py" ] || ! "$py" -c 'import tritonclient.grpc, tritonclient.utils.shared_memory, numpy' 2>/dev/null; then
	echo "SKIP: no Python with tritonclient[grpc] and numpy ($py); run scripts/setup-debian.sh"
	exit 77
fi
check="kserve.proto against tritonclient's descriptors"
fail=0
if command -v protoc >/dev/null 2>&1; then
	tmp=$(mktemp -d) || exit 1
	trap 'rm -rf "$tmp"' EXIT
	if protoc --proto_path="$top" --descriptor_set_out="$tmp/kserve.pb" "$top/proto/kserve.proto" &&
	   "$py" -W ignore "$top/tests/grpc/check_proto.py" "$tmp/kserve.pb"; then
		echo "PASS: $check"
	else
		echo "FAIL: $check"
		fail=1
	fi
else
	echo "SKIP: $check: protoc not found (install the Debian package protobuf-compiler)"
fi
"$py" -W ignore "$top/tests/grpc/test_tritonclient.py" -v || fail=1
exit $fail
