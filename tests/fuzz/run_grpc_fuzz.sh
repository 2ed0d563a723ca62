#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run_grpc_fuzz.sh - build the ModelInferRequest fuzz target with clang
# (libFuzzer, ASan, UBSan) and run it for a set time.  Not part of make
# check.
#
#   tests/fuzz/run_grpc_fuzz.sh [SECONDS]      (default 60)
#
# Builds into ${FUZZ_BUILD_DIR:-build-fuzz-grpc}/ straight from the
# sources (no configure): protoc-c generates kserve.pb-c.[ch] there.  A
# crash leaves crash-* in that directory.  The sources are what
# gs_infer_prepare reaches: the conversion (gs_infer.c), the region table
# (gs_shm.c, with broker/gpu for CUDA regions) and the scheduler's input
# check (sched_queue.c's sched_check_input).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
out=${FUZZ_BUILD_DIR:-$top/build-fuzz-grpc}
CC=${CLANG:-clang}
mkdir -p "$out/proto" "$out/corpus"
protoc-c --proto_path="$top" --c_out="$out" "$top/proto/kserve.proto"
cat > "$out/config.h" <<EOC
#define _GNU_SOURCE 1
#define PACKAGE_VERSION "fuzz"
EOC
# A seed: a well-formed "simple" request (two raw INT32 [1,16] inputs).
python3 - "$out/corpus/seed-simple" <<'EOP' || true
import struct, sys
def v(n):
    b = b""
    while True:
        x = n & 0x7f; n >>= 7
        b += bytes([x | (0x80 if n else 0)])
        if not n: return b
def f(num, wt, payload):
    return v(num << 3 | wt) + (v(len(payload)) + payload if wt == 2 else payload)
def inp(name):
    return f(1, 2, name) + f(2, 2, b"INT32") + f(3, 2, v(1) + v(16))
m = f(1, 2, b"simple") + f(5, 2, inp(b"INPUT0")) + f(5, 2, inp(b"INPUT1"))
m += f(7, 2, b"\1" * 64) + f(7, 2, b"\2" * 64)
open(sys.argv[1], "wb").write(m)
EOP
$CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-include "$out/config.h" -I"$top/include" -I"$top" -I"$out" -I"$out/proto" \
	$(pkg-config --cflags libprotobuf-c) \
	"$top/tests/fuzz/fuzz_grpc_infer.c" "$top/broker/frontends/grpc/gs_infer.c" "$top/broker/frontends/grpc/gs_shm.c" \
	"$top/broker/sched/sched_queue.c" "$top/broker/gpu/gpu.c" "$top/shm/ferr.c" \
	"$top/broker/config/modelcfg.c" "$top/broker/config/pbtxt.c" "$top/broker/core/log.c" \
	"$out/proto/kserve.pb-c.c" \
	$(pkg-config --libs libprotobuf-c) -lnuma -ldl -lpthread -o "$out/fuzz_grpc_infer"
cd "$out"
exec ./fuzz_grpc_infer -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 corpus
