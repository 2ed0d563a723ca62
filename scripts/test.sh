#!/usr/bin/env bash
# The README's test command: install what is missing, build with -Werror,
# run every suite (make check), print the total.  Extra arguments go to
# configure (scripts/test.sh --enable-sanitizers builds a fresh sanitized
# tree in build/).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/setup-debian.sh || exit 1
scripts/build.sh "$@" || exit 1
cd build
make -j"$(nproc)" check >check.out 2>&1
rc=$?
grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):' check.out
if [ $rc -ne 0 ]; then
	for f in $(grep -lE '^(FAIL|ERROR)' $(find . -name '*.trs') 2>/dev/null); do
		echo "---- ${f%.trs}.log (last 40 lines)"
		tail -40 "${f%.trs}.log"
	done
fi
../scripts/test-summary.sh . | tail -1
exit $rc
