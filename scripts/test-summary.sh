#!/usr/bin/env bash
# Add up the tests of every suite that `make check` ran in the build dirs
# given (default build), one line per suite, and last the total:
# "N passed, N failed, N skipped".  Every test counts once, whether it ran
# or not: a test that did not run is a skip, and its reason is shown.
#
# What a suite's log may hold (scripts/test.sh also sources this file and
# calls suite_count on each suite as it finishes):
# * Criterion, run with CRITERION_VERBOSITY_LEVEL=1 (tests/local.mk): the
#   "Synthesis:" line counts what ran (passed, failed, crashed); each
#   "[SKIP] suite::test: reason" line is a test that did not run.
# * Python's unittest: "Ran N tests" and "OK (skipped=S)" / "FAILED
#   (failures=F, errors=E, skipped=S)"; "test ... skipped 'reason'".
# * Any other program or script: one line per test, "PASS: name",
#   "FAIL: name: why" or "SKIP: name: reason".
# A suite that counts nothing is one test (its automake result); a suite
# whose process failed but whose tests all passed (a leak, a sanitizer
# report, a crash after the last test) counts one failure more.

# suite_count RESULT LOG: sets sc_pass, sc_fail, sc_skip and sc_why (the
# skip reasons, "; "-separated) for one suite.  RESULT is automake's
# (PASS, FAIL, SKIP, XFAIL, XPASS, ERROR).
suite_count() {
	local res=$1 log=$2 line p f c s n ran=0
	sc_pass=0 sc_fail=0 sc_skip=0 sc_why=
	[ -f "$log" ] || log=/dev/null
	# Criterion
	while IFS= read -r line; do
		p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
		f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
		c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
		sc_pass=$((sc_pass + p)) sc_fail=$((sc_fail + f + c)) ran=1
	done < <(grep -a 'Synthesis: Tested:' "$log")
	s=$(grep -ac '^\[SKIP\] [^ ]*::[^ ]*: ' "$log")
	if [ "$s" -gt 0 ]; then
		sc_skip=$((sc_skip + s)) ran=1
		suite__why "$(grep -a '^\[SKIP\] [^ ]*::[^ ]*: ' "$log" | sed -E 's/^\[SKIP\] [^ ]*: //')"
	fi
	# Python unittest
	n=$(grep -aE '^Ran [0-9]+ tests? in ' "$log" | tail -1 | sed -E 's/^Ran ([0-9]+).*/\1/')
	if [ -n "$n" ]; then
		line=$(grep -aE '^(OK|FAILED)( \(.*\))?$' "$log" | tail -1)
		f=$(grep -oE 'failures=[0-9]+' <<<"$line" | cut -d= -f2)
		c=$(grep -oE 'errors=[0-9]+' <<<"$line" | cut -d= -f2)
		s=$(grep -oE 'skipped=[0-9]+' <<<"$line" | cut -d= -f2)
		f=$((${f:-0} + ${c:-0})) s=${s:-0}
		[ -n "$line" ] || f=$((f + 1))   # no verdict: the run died
		sc_pass=$((sc_pass + n - f - s)) sc_fail=$((sc_fail + f)) sc_skip=$((sc_skip + s)) ran=1
		[ "$s" = 0 ] || suite__why "$(grep -aoE "\.\.\. skipped '.*'$" "$log" |
			sed -E "s/^\.\.\. skipped '(.*)'$/\1/")"
	fi
	# One line per test
	p=$(grep -acE '^PASS: ' "$log")
	f=$(grep -acE '^FAIL: ' "$log")
	s=$(grep -acE '^SKIP: ' "$log")
	if [ $((p + f + s)) -gt 0 ]; then
		sc_pass=$((sc_pass + p)) sc_fail=$((sc_fail + f)) sc_skip=$((sc_skip + s)) ran=1
		[ "$s" = 0 ] || suite__why "$(grep -aE '^SKIP: ' "$log" | sed -E 's/^SKIP: //')"
	fi
	if [ $ran = 0 ]; then
		case $res in
		PASS|XFAIL) sc_pass=1 ;;
		SKIP) sc_skip=1; suite__why "$(grep -av '^SKIP .* (exit status: 77)$' "$log" | tail -1)" ;;
		*) sc_fail=1 ;;
		esac
	elif [ "$res" != PASS ] && [ "$res" != SKIP ] && [ "$res" != XFAIL ] && [ $sc_fail = 0 ]; then
		sc_fail=1
	fi
}

# Add reasons (one per line in $1) to sc_why, each once, with a count.
suite__why() {
	local r
	while IFS= read -r r; do
		[ -n "$r" ] || continue
		sc_why="${sc_why:+$sc_why; }$r"
	done < <(sort <<<"$1" | uniq -c | sed -E 's/^ *1 //; s/^ *([0-9]+) (.*)/\2 (x\1)/')
}

# suite_line NAME RESULT: one line for a suite, from suite_count's results.
suite_line() {
	printf '%-5s %-36s %3d passed, %d failed, %d skipped%s\n' "$2:" "$1" \
		"$sc_pass" "$sc_fail" "$sc_skip" "${sc_why:+ (skipped: $sc_why)}"
}

summary_main() {
	local dir trs log res pass=0 fail=0 skip=0
	[ $# -gt 0 ] || set -- build
	for dir in "$@"; do
		[ -d "$dir" ] || continue
		while IFS= read -r trs; do
			log=${trs%.trs}.log
			res=$(sed -n 's/^:test-result: //p' "$trs" | head -1)
			suite_count "$res" "$log"
			suite_line "${trs%.trs}" "$res" | sed 's/^/  /'
			pass=$((pass + sc_pass)) fail=$((fail + sc_fail)) skip=$((skip + sc_skip))
		done < <(find "$dir" -name '*.trs' | sort)
	done
	echo "$pass passed, $fail failed, $skip skipped"
}

# Run, unless sourced (scripts/test.sh sources it for suite_count).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	summary_main "$@"
fi
