#!/bin/sh
# SPDX-License-Identifier: MIT
#
# fuzz.sh - build ferry's libFuzzer targets with clang and run each one.
#
#   scripts/fuzz.sh [SECONDS]      run every target SECONDS (default 60)
#   FUZZ_TARGETS="pbtxt ctl" scripts/fuzz.sh 10     only those targets
#   FUZZ_BUILD_ONLY=1 scripts/fuzz.sh               build, do not run
#   FUZZ_JOBS=2 scripts/fuzz.sh                     targets run at once
#   FUZZ_GEN_SEEDS=1 scripts/fuzz.sh                regenerate the binary seeds
#
# The targets are compiled straight from the sources into build-fuzz/
# (never through automake), so the normal gcc build is not disturbed and
# no configure run is needed: libFuzzer wants every object instrumented
# with -fsanitize=fuzzer-no-link, which a configure'd tree would only get
# by rebuilding everything with clang.
#
# Each run starts from the committed seeds in tests/fuzz/corpus/<target>/
# and keeps what it finds in build-fuzz/corpus/<target>/ (never in the
# source tree: the committed corpus stays small).  A crash leaves
# build-fuzz/crash-<target>-*; copy it into tests/fuzz/regressions/<target>/
# and make check replays it (tests/fuzz/test_regressions.c).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out=${FUZZ_BUILD_DIR:-$top/build-fuzz}
jobs=${FUZZ_JOBS:-1}
targets=${FUZZ_TARGETS:-"pbtxt onnx ctl submit grpc http"}
CC=${CLANG:-clang}
ONNX_PROTO_DIR=${ONNX_PROTO_DIR:-/usr/include}

command -v "$CC" >/dev/null || { echo "fuzz.sh: $CC not found" >&2; exit 77; }
command -v protoc-c >/dev/null || { echo "fuzz.sh: protoc-c not found" >&2; exit 77; }

mkdir -p "$out/gen/proto" "$out/obj" "$out/corpus"
# config.h's one job for these files: _GNU_SOURCE before any header.
printf '#define _GNU_SOURCE 1\n' > "$out/gen/config.h"
# Generated protobuf-c code, as the automake rules generate it.
[ "$out/gen/proto/control.pb-c.c" -nt "$top/proto/control.proto" ] ||
	protoc-c --proto_path="$top" --c_out="$out/gen" "$top/proto/control.proto"
[ "$out/gen/proto/kserve.pb-c.c" -nt "$top/proto/kserve.proto" ] ||
	protoc-c --proto_path="$top" --c_out="$out/gen" "$top/proto/kserve.proto"
[ -f "$out/gen/onnx/onnx.pb-c.c" ] ||
	protoc-c --proto_path="$ONNX_PROTO_DIR" --c_out="$out/gen" onnx/onnx.proto

# Regenerate the binary seeds (control frames, submissions) after a wire
# format change; they are committed.
if [ -n "${FUZZ_GEN_SEEDS:-}" ]; then
	$CC -std=gnu11 -g -include "$out/gen/config.h" -I"$top/include" -I"$top" \
		-I"$out/gen" "$top/tests/fuzz/gen_seeds.c" "$out/gen/proto/control.pb-c.c" \
		-lprotobuf-c -o "$out/gen_seeds"
	mkdir -p "$top/tests/fuzz/corpus/ctl" "$top/tests/fuzz/corpus/submit"
	"$out/gen_seeds" "$top/tests/fuzz/corpus"
	# The gRPC seeds are packed by tritonclient's own protobuf classes.
	"$top/.venv/bin/python" "$top/tests/fuzz/gen_grpc_seeds.py" "$top/tests/fuzz/corpus/grpc"
	echo "fuzz.sh: seeds written to tests/fuzz/corpus/{ctl,submit,grpc}"
	exit 0
fi

# -O1 -g: fast enough, readable stacks.  The generated protobuf code is
# instrumented too: its unpackers are part of what is fuzzed.
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -DFUZZ_LIBFUZZER \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
	-include $out/gen/config.h -I$top/include -I$top -I$out/gen -I$out/gen/proto \
	-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers"
LDFLAGS="-fsanitize=fuzzer,address,undefined"

pbtxt_src="broker/config/pbtxt.c broker/config/modelcfg.c shm/ferr.c tests/fuzz/fuzz_pbtxt.c"
onnx_src="broker/backends/onnx/ox_proto.c broker/backends/onnx/ox_ops.c
	broker/backends/onnx/ox_load.c broker/backends/onnx/ox_shape.c broker/backends/onnx/ox_run.c
	$out/gen/onnx/onnx.pb-c.c shm/ferr.c tests/fuzz/fuzz_onnx.c"
onnx_libs="-lprotobuf-c -lopenblas -lm -lpthread"
ctl_src="proto/frame.c $out/gen/proto/control.pb-c.c tests/fuzz/fuzz_ctl.c"
ctl_libs="-lprotobuf-c"
# The scheduler as the broker links it (queues, fair share, batching, the
# host side of the backend ABI): one list for every target that submits.
sched_src="broker/sched/sched_queue.c broker/sched/sched_fair.c broker/sched/sched_batch.c
	broker/sched/sched_model.c broker/sched/be_request.c broker/sched/be_host.c"
# The submission path end to end: the real session.c and scheduler with
# the built-in backends; tests/fuzz/models_shim.c stands in for models.c.
submit_src="broker/core/session.c $sched_src broker/backends/identity.c
	broker/backends/addsub.c broker/core/log.c broker/config/pbtxt.c broker/config/modelcfg.c
	broker/gpu/gpu.c
	shm/fshm_seg.c shm/fshm_ring.c shm/fshm_doorbell.c shm/fshm_arena.c shm/ferr.c
	tests/fuzz/models_shim.c tests/fuzz/fuzz_submit.c"
submit_libs="-ldl -lnuma -lpthread"
# A ModelInferRequest through the gRPC front end's decoding and checks
# (gs_infer.c, with gs_shm.c's region table and broker/gpu behind it, and
# the scheduler's input checks).
grpc_src="broker/frontends/grpc/gs_infer.c broker/frontends/grpc/gs_shm.c broker/gpu/gpu.c
	$sched_src
	broker/config/modelcfg.c broker/config/pbtxt.c broker/core/log.c shm/ferr.c shm/fshm_guard.c
	$out/gen/proto/kserve.pb-c.c tests/fuzz/fuzz_grpc.c"
grpc_libs="-lprotobuf-c -ldl -lnuma -lpthread"
# An inference request body through the HTTP front end's parser (json-c,
# the binary tensor data after the JSON) and gs_infer_prepare's checks,
# and its response.
http_src="broker/frontends/http/hs_infer.c broker/frontends/http/hs_json.c
	broker/frontends/grpc/gs_infer.c broker/frontends/grpc/gs_shm.c broker/gpu/gpu.c
	$sched_src
	broker/config/modelcfg.c broker/config/pbtxt.c broker/core/log.c shm/ferr.c shm/fshm_guard.c
	$out/gen/proto/kserve.pb-c.c tests/fuzz/fuzz_http.c"
http_libs="-ljson-c -lprotobuf-c -ldl -lnuma -lpthread"

build() {
	t=$1
	eval "srcs=\$${t}_src"
	eval "libs=\${${t}_libs:-}"
	objs=
	for s in $srcs; do
		case $s in /*) f=$s ;; *) f=$top/$s ;; esac
		o=$out/obj/$t-$(basename "$s" .c).o
		# Rebuilt when its source or any header of the tree is newer
		# (structs shared with the code under test change under us).
		if [ ! -f "$o" ] || [ "$f" -nt "$o" ] ||
		   [ -n "$(find "$top/include" "$top/broker" "$top/shm" "$top/proto" \
			"$top/tests/fuzz" "$out/gen" -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
			# shellcheck disable=SC2086
			$CC $CFLAGS -c "$f" -o "$o"
		fi
		objs="$objs $o"
	done
	# shellcheck disable=SC2086
	$CC $LDFLAGS -o "$out/fuzz_$t" $objs $libs
	echo "built $out/fuzz_$t"
}

for t in $targets; do
	build "$t"
done
[ -z "${FUZZ_BUILD_ONLY:-}" ] || exit 0

# allocator_may_return_null: a huge allocation a hostile input asks for
# must fail as ENOMEM in the code under test, which is what it handles.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run() {
	t=$1
	mkdir -p "$out/corpus/$t"
	dict=
	[ ! -f "$top/tests/fuzz/$t.dict" ] || dict="-dict=$top/tests/fuzz/$t.dict"
	case $t in
	onnx|grpc|http) maxlen=65536 ;;
	submit) maxlen=16384 ;;
	*) maxlen=4096 ;;
	esac
	echo "== fuzz_$t: $secs s"
	# -timeout: one input taking 10 s is a hang.  -rss_limit_mb: a
	# target that grows without bound is a leak or a missing cap.
	# shellcheck disable=SC2086
	(cd "$out" && ./fuzz_$t $dict -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=$maxlen -print_final_stats=1 \
		-artifact_prefix="$out/crash-$t-" \
		"$out/corpus/$t" "$top/tests/fuzz/corpus/$t") > "$out/fuzz_$t.log" 2>&1
	rc=$?
	grep -E '^stat::number_of_executed_units|^Done|ERROR|SUMMARY' "$out/fuzz_$t.log" | sed "s/^/fuzz_$t: /"
	echo "fuzz_$t: exit $rc, corpus $(ls "$out/corpus/$t" | wc -l) files (log: $out/fuzz_$t.log)"
	# One line per target for scripts/test-summary.sh.
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz_$t.log" | tail -1)
	if [ $rc = 0 ]; then
		echo "PASS: fuzz_$t: ${n:-?} inputs in $secs s, no finding"
	else
		echo "FAIL: fuzz_$t: exit $rc (log: $out/fuzz_$t.log)"
	fi
	return $rc
}

fail=0
set +e
pids=
for t in $targets; do
	run "$t" &
	pids="$pids $!"
	# At most $jobs fuzzers at once: wait for the oldest.
	set -- $pids
	if [ $# -ge "$jobs" ]; then
		wait "$1" || fail=1
		shift
		pids="$*"
	fi
done
for p in $pids; do
	wait "$p" || fail=1
done
exit $fail
