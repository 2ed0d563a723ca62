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

# ThreadSanitizer sees threads, not processes, and Criterion cannot start
# under it: the rings' memory ordering is checked by a plain program that
# runs producer and consumer as two threads over one segment.
cd "$top"
mkdir -p build-tsan
(
	cd build-tsan
	[ -f Makefile ] || ../configure --enable-tsan --with-cuda=no >configure.out 2>&1 || exit 1
	make -j"$(nproc)" tests/shm/test_threads >make.out 2>&1 || { tail -30 make.out; exit 1; }
	mkdir -p tests/shm
	TSAN_OPTIONS=halt_on_error=1 ./tests/shm/test_threads >tests/shm/test_threads.log 2>&1
	t=$?
	res=PASS
	[ $t = 77 ] && res=SKIP
	[ $t != 0 ] && [ $t != 77 ] && res=FAIL
	printf ':test-result: %s\n' "$res" >tests/shm/test_threads.trs
	echo "$res: tests/shm/test_threads (ThreadSanitizer build)"
	[ "$res" != FAIL ]
) || { tail -30 build-tsan/tests/shm/test_threads.log 2>/dev/null; rc=1; }

# A short run of every libFuzzer target from its committed seeds (5 s
# each; a long run is `scripts/fuzz.sh 300` by hand): a crash fails it.
if command -v clang >/dev/null 2>&1; then
	mkdir -p build-fuzz
	FUZZ_JOBS=2 scripts/fuzz.sh 5 >build-fuzz/fuzz_smoke.log 2>&1
	t=$?
	res=PASS
	[ $t != 0 ] && res=FAIL
	printf ':test-result: %s\n' "$res" >build-fuzz/fuzz_smoke.trs
	echo "$res: libFuzzer targets, 5 s each (scripts/fuzz.sh 5)"
	[ "$res" = PASS ] || { tail -30 build-fuzz/fuzz_smoke.log; rc=1; }
fi

scripts/test-summary.sh build build-tsan build-fuzz | tail -1
exit $rc
