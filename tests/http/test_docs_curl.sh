#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_docs_curl.sh - the curl examples of docs/USING.md, run exactly as
# written against a real ferryd on examples/models (make check).
#
# The block after the "curl examples" marker in docs/USING.md is read line
# by line; each line is run with `bash -c`, with localhost:8000 pointed at
# this test's ferryd and curl made to fail on an HTTP error
# (--fail-with-body, through a wrapper first in PATH).  A line passes when
# it exits 0 and prints JSON (the health line prints its status, 200).
# One "PASS: example N" / "FAIL: ..." line each for
# scripts/test-summary.sh; exit 77 without curl or Python.
set -u
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FERRY_TOP_BUILDDIR:-$top/build}
doc=$top/docs/USING.md
real_curl=$(command -v curl) || { echo "SKIP: curl not found (Debian package curl)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }

tmp=$(mktemp -d) || exit 1
pid=
cleanup() {
	[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/broker/ferryd" -m "$top/examples/models" -s "$tmp/ferryd.sock" --grpc-port 0 \
	--metrics-port 0 --http-port "$port" --log-level warn >"$tmp/ferryd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	"$real_curl" -sf "127.0.0.1:$port/v2/health/ready" >/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/ferryd.log"; echo "FAIL: ferryd did not start"; exit 1; }
	sleep 0.1
done

mkdir "$tmp/bin"
cat >"$tmp/bin/curl" <<W
#!/bin/sh
exec "$real_curl" --fail-with-body "\$@"
W
chmod +x "$tmp/bin/curl"

# The fenced block after the marker.
awk '/<!-- curl examples:/ { m = 1; next } m && /^```sh/ { b = 1; next } b && /^```/ { exit } b' \
	"$doc" >"$tmp/examples"
n=$(grep -c '^curl ' "$tmp/examples")
if [ "$n" -lt 5 ]; then
	echo "FAIL: docs/USING.md: the curl examples block was not found ($n lines)"
	exit 1
fi
fail=0
k=0
while IFS= read -r line; do
	case $line in curl\ *) ;; *) continue ;; esac
	k=$((k + 1))
	cmd=${line//localhost:8000/127.0.0.1:$port}
	if out=$(PATH="$tmp/bin:$PATH" bash -c "$cmd" 2>&1) &&
	   printf '%s' "$out" | python3 -c 'import json, sys; json.loads(sys.stdin.read())' 2>/dev/null; then
		echo "PASS: example $k: ${line:0:70}"
	else
		echo "FAIL: example $k: $line"
		echo "  output: ${out:0:400}"
		fail=1
	fi
done <"$tmp/examples"
exit $fail
