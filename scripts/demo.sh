#!/usr/bin/env bash
# The README's main job: install what is missing, build, start ferryd on
# the bundled example models, and drive it with clients: Triton's "simple"
# example through ferry, then the latency and throughput benchmarks.
# One line per step as it starts; exit 0 when every step worked, and the
# temporary directory is removed either way.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

echo "== setup: Debian packages (scripts/setup-debian.sh)"
scripts/setup-debian.sh --no-venv
scripts/build.sh                  # prints its configure and build steps
b="$top/build"

run=$(mktemp -d /tmp/ferry-demo-XXXXXX)
pid=
# Runs on every exit: stop ferryd if it still runs, remove the directory,
# and keep the script's own exit status (a failed kill of a ferryd that
# already exited must not turn success into failure).
cleanup() {
	local rc=$?
	set +e
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$run"
	exit $rc
}
trap cleanup EXIT

echo "== start: ferryd on examples/models (socket $run/ferryd.sock)"
"$b/broker/ferryd" --model-repository "$top/examples/models" --socket "$run/ferryd.sock" \
	2> >(sed 's/^/   ferryd: /' >&2) &
pid=$!
for _ in $(seq 100); do [ -S "$run/ferryd.sock" ] && break; sleep 0.1; done
[ -S "$run/ferryd.sock" ] || { echo "demo: ferryd did not start (its log is above)"; exit 1; }

echo "== clients: examples/simple_client, Triton's simple example over shared memory"
"$b/examples/simple_client" "$run/ferryd.sock" | sed -n '1,4p;$p'

kill "$pid"
wait "$pid" || true
pid=
echo "== benchmarks: ferry-bench latency (its own ferryd per wait policy, beside the floors)"
"$b/ferry-bench" latency --samples 20000
echo "== benchmarks: ferry-bench throughput (2 client processes x 64 requests in flight)"
"$b/ferry-bench" throughput --seconds 2
echo "== demo done"
