#!/usr/bin/env bash
# The README's main job: install what is missing, build, start ferryd on
# the bundled example models, and drive it with clients: Triton's "simple"
# example through ferry, then the latency and throughput benchmarks.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/setup-debian.sh --no-venv
scripts/build.sh
b="$top/build"
run=$(mktemp -d /tmp/ferry-demo-XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$run"' EXIT

echo "== ferryd on examples/models (socket $run/ferryd.sock)"
"$b/broker/ferryd" --model-repository "$top/examples/models" --socket "$run/ferryd.sock" \
	2> >(sed 's/^/   ferryd: /' >&2) &
pid=$!
for _ in $(seq 100); do [ -S "$run/ferryd.sock" ] && break; sleep 0.1; done
sleep 0.2

echo "== examples/simple_client: Triton's simple example over shared memory"
"$b/examples/simple_client" "$run/ferryd.sock" | sed -n '1,4p;$p'

kill $pid; wait $pid || true
echo "== ferry-bench latency (its own ferryd per wait policy, beside the floors)"
"$b/ferry-bench" latency --samples 20000
echo "== ferry-bench throughput (2 client processes x 64 requests in flight)"
"$b/ferry-bench" throughput --seconds 2
