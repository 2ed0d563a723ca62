#!/usr/bin/env bash
# Add up the results of every suite that `make check` ran in the build
# dirs given (default build):
# Criterion suites count their tests (from the "Synthesis:" line), other
# test programs count as one test each (from automake's .trs file).
# Prints one line per suite and, last, "N passed, N failed, N skipped".
set -u
[ $# -gt 0 ] || set -- build
pass=0 fail=0 skip=0
for dir in "$@"; do
[ -d "$dir" ] || continue
while IFS= read -r trs; do
	log=${trs%.trs}.log
	res=$(sed -n 's/^:test-result: //p' "$trs" | head -1)
	syn=$(grep -a 'Synthesis: Tested:' "$log" 2>/dev/null | tail -1)
	if [ -n "$syn" ]; then
		p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$syn")
		f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$syn")
		c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$syn")
		t=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$syn")
		s=$(grep -ac '\[SKIP\]' "$log" || true)
		f=$((f + c))
		# A suite whose process failed after its synthesis (a leak, a
		# sanitizer report) counts one more failure.
		if [ "$res" != PASS ] && [ "$res" != SKIP ] && [ "$f" = 0 ]; then f=1; fi
		pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
		printf '  %-40s %s (%s tests, %s failed)\n' "${trs#$dir/}" "$res" "$t" "$f"
	else
		case "$res" in
		PASS|XFAIL) pass=$((pass + 1)) ;;
		SKIP) skip=$((skip + 1)) ;;
		*) fail=$((fail + 1)) ;;
		esac
		printf '  %-40s %s\n' "${trs#$dir/}" "$res"
	fi
done < <(find "$dir" -name '*.trs' | sort)
done
echo "$pass passed, $fail failed, $skip skipped"
