# tests/fuzz/: the libFuzzer targets and what make check keeps of them.
#
# The fuzzers themselves are built by scripts/fuzz.sh with clang
# (-fsanitize=fuzzer,address,undefined), outside this build: `make fuzz`
# runs each for FUZZ_SECONDS.  Here, in the normal build, the same target
# functions replay the committed seed corpora and every input that once
# crashed a target (tests/fuzz/test_regressions.c).  broker/core/session.c is
# linked with tests/fuzz/models_shim.c in place of models.c; the gRPC target
# takes gs_infer.c and gs_shm.c from the front end's library (an archive:
# only what they need is linked), the HTTP target hs_infer.c and hs_json.c
# from the HTTP front end's.
check_PROGRAMS += tests/test_fuzz_regressions
TESTS += tests/test_fuzz_regressions
tests_test_fuzz_regressions_SOURCES = tests/fuzz/test_regressions.c \
	tests/fuzz/fuzz.h tests/fuzz/fuzz_pbtxt.c tests/fuzz/fuzz_onnx.c \
	tests/fuzz/fuzz_ctl.c tests/fuzz/fuzz_submit.c tests/fuzz/fuzz_grpc.c \
	tests/fuzz/fuzz_http.c \
	tests/fuzz/models_shim.c \
	broker/core/session.c broker/core/log.c \
	broker/backends/identity.c broker/backends/addsub.c
tests_test_fuzz_regressions_CFLAGS = $(CRITERION_TEST_CFLAGS) $(PROTOBUF_C_CFLAGS) $(JSONC_CFLAGS) \
	-DFUZZ_TOP_SRCDIR=\"$(abs_top_srcdir)\"
tests_test_fuzz_regressions_LDADD = broker/frontends/http/libfhttp.la \
	broker/frontends/grpc/libfgrpc.la proto/libfkserve.la \
	broker/gpu/libfgpu.la broker/sched/libfsched.la broker/config/libfconfig.la \
	broker/backends/onnx/libfonnx.la proto/libfproto.la shm/libfshm.la \
	$(JSONC_LIBS) $(PROTOBUF_C_LIBS) $(NUMA_LIBS) $(CRITERION_TEST_LIBS)
$(tests_test_fuzz_regressions_OBJECTS): proto/control.pb-c.h proto/kserve.pb-c.h
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/regressions tests/fuzz/pbtxt.dict \
	tests/fuzz/onnx.dict tests/fuzz/http.dict tests/fuzz/gen_seeds.c tests/fuzz/gen_grpc_seeds.py FUZZING.md SECURITY.md

