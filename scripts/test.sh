#!/usr/bin/env bash
# The README's test command: install what is missing, build with -Werror,
# run every suite (make check), the ThreadSanitizer check and a short run
# of each fuzz target, and print the total over every test.  Extra
# arguments go to configure (scripts/test.sh --enable-sanitizers builds a
# fresh sanitized tree in build/).
#
# One line per step as it starts, with where its log is; during make check
# one line per suite as it finishes (its passed / failed / skipped tests and
# why any was skipped) with the running total.  The last line is the total:
# "N passed, N failed, N skipped" (scripts/test-summary.sh).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# shellcheck source=scripts/test-summary.sh
. scripts/test-summary.sh

echo "== setup: Debian packages and .venv (scripts/setup-debian.sh)"
scripts/setup-debian.sh || exit 1
scripts/build.sh "$@" || exit 1

tot_p=0 tot_f=0 tot_s=0
# count RESULT NAME LOG: print the suite's line and the running total.
count() {
	suite_count "$1" "$3"
	tot_p=$((tot_p + sc_pass)) tot_f=$((tot_f + sc_fail)) tot_s=$((tot_s + sc_skip))
	printf '%s  [total %d passed, %d failed, %d skipped]\n' "$(suite_line "$2" "$1")" \
		"$tot_p" "$tot_f" "$tot_s"
}

echo "== tests: make check in build/ (log: build/check.out; each suite's log: build/<suite>.log)"
cd build
# lastpipe: the loop runs in this shell, so the totals outlive it.
shopt -s lastpipe
rm -f test-suite.log
make -j"$(nproc)" check 2>&1 | tee check.out | while IFS= read -r line; do
	case $line in
	PASS:\ *|FAIL:\ *|SKIP:\ *|XFAIL:\ *|XPASS:\ *|ERROR:\ *)
		name=${line#*: }
		count "${line%%:*}" "$name" "$name.log" ;;
	esac
done
rc=${PIPESTATUS[0]}
grep -qE '^# TOTAL: ' test-suite.log 2>/dev/null ||
	{ echo "make check did not run the suites (build/check.out):"; tail -30 check.out; }
if [ $rc -ne 0 ]; then
	for f in $(grep -lE '^:test-result: (FAIL|ERROR|XPASS)' $(find . -name '*.trs') 2>/dev/null); do
		echo "---- build/${f#./}: ${f%.trs}.log (last 40 lines)"
		tail -40 "${f%.trs}.log"
	done
fi

# ThreadSanitizer sees threads, not processes, and Criterion cannot start
# under it: the rings' memory ordering is checked by a plain program that
# runs producer and consumer as two threads over one segment.
cd "$top"
echo "== tsan: tests/shm/test_threads under ThreadSanitizer in build-tsan/ (logs: build-tsan/configure.out, make.out, tests/shm/test_threads.log)"
mkdir -p build-tsan/tests/shm
(
	cd build-tsan
	[ -f Makefile ] || ../configure --enable-tsan --with-cuda=no >configure.out 2>&1 ||
		{ tail -30 configure.out; exit 1; }
	make -j"$(nproc)" tests/shm/test_threads >make.out 2>&1 || { tail -30 make.out; exit 1; }
	TSAN_OPTIONS=halt_on_error=1 ./tests/shm/test_threads >tests/shm/test_threads.log 2>&1
)
t=$?
res=PASS
[ $t = 77 ] && res=SKIP
[ $t != 0 ] && [ $t != 77 ] && res=FAIL
printf ':test-result: %s\n' "$res" >build-tsan/tests/shm/test_threads.trs
count "$res" "tests/shm/test_threads (ThreadSanitizer build)" build-tsan/tests/shm/test_threads.log
[ "$res" != FAIL ] || { tail -30 build-tsan/tests/shm/test_threads.log; rc=1; }

# A short run of every libFuzzer target from its committed seeds (5 s
# each; a long run is `scripts/fuzz.sh 300` by hand): a crash fails it.
# Without clang the targets cannot run: that is a skip, counted.
mkdir -p build-fuzz
echo "== fuzz: each libFuzzer target for 5 s (scripts/fuzz.sh 5; log: build-fuzz/fuzz_smoke.log)"
if command -v clang >/dev/null 2>&1; then
	FUZZ_JOBS=2 scripts/fuzz.sh 5 >build-fuzz/fuzz_smoke.log 2>&1
	t=$?
else
	echo "SKIP: libFuzzer targets: clang not found (install the Debian packages clang and libclang-rt-14-dev)" \
		>build-fuzz/fuzz_smoke.log
	t=77
fi
res=PASS
[ $t = 77 ] && res=SKIP
[ $t != 0 ] && [ $t != 77 ] && res=FAIL
printf ':test-result: %s\n' "$res" >build-fuzz/fuzz_smoke.trs
count "$res" "libFuzzer targets, 5 s each" build-fuzz/fuzz_smoke.log
[ "$res" != FAIL ] || { tail -30 build-fuzz/fuzz_smoke.log; rc=1; }

summary_main build build-tsan build-fuzz | tail -1
exit $rc
