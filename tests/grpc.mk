# tests/grpc.mk: the gRPC front end.  test_grpc drives a real ferryd
# through libferry's remote transport; tests/grpc/run_python.sh runs the
# tritonclient suite (skipped, exit 77, when the venv lacks tritonclient).
check_PROGRAMS += tests/test_grpc
TESTS += tests/test_grpc tests/grpc/run_python.sh
tests_test_grpc_SOURCES = tests/grpc/test_grpc.c
tests_test_grpc_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_grpc_LDADD = tests/libharness.la libclient/libferry.la $(CRITERION_TEST_LIBS)
EXTRA_DIST += tests/grpc/run_python.sh tests/grpc/test_tritonclient.py tests/grpc/check_proto.py

# Mutual TLS on the gRPC endpoint, with certificates made by openssl.
TESTS += tests/grpc/test_tls.sh
EXTRA_DIST += tests/grpc/test_tls.sh tests/grpc/tls_check.py

# Triton's CUDA shared-memory extension end to end (device memory, a raw
# CUDA IPC handle, ModelInfer reading and writing it); skips without a GPU.
check_PROGRAMS += tests/test_cuda_shm
TESTS += tests/test_cuda_shm
tests_test_cuda_shm_SOURCES = tests/grpc/test_cuda_shm.c
tests_test_cuda_shm_CFLAGS = $(CRITERION_TEST_CFLAGS) $(PROTOBUF_C_CFLAGS) $(GRPC_CFLAGS)
tests_test_cuda_shm_LDADD = tests/libharness.la bench/libbenchutil.la \
	$(CRITERION_TEST_LIBS)
$(tests_test_cuda_shm_OBJECTS): proto/kserve.pb-c.h
if HAVE_CUDA
tests_test_cuda_shm_CFLAGS += $(CUDA_CFLAGS)
tests_test_cuda_shm_LDADD += $(CUDART_LIBS)
endif

# proto/rpc.c, the one unary-call helper: the ferry-code trailer and the
# status mapping (the end-to-end check is test_grpc's one-code test).
check_PROGRAMS += tests/test_rpc
TESTS += tests/test_rpc
tests_test_rpc_SOURCES = tests/grpc/test_rpc.c
tests_test_rpc_CFLAGS = $(CRITERION_TEST_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_rpc_LDADD = proto/libfrpc.la $(CRITERION_TEST_LIBS)

# The front end as the wire shows it (proto/rpc.c's raw calls): the
# ferry-code trailer, the region limit and status list, a second ferryd
# on a taken port.
check_PROGRAMS += tests/test_grpc_wire
TESTS += tests/test_grpc_wire
tests_test_grpc_wire_SOURCES = tests/grpc/test_grpc_wire.c
tests_test_grpc_wire_CFLAGS = $(CRITERION_TEST_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_grpc_wire_LDADD = tests/libharness.la proto/libfrpc.la proto/libfkserve.la \
	$(GRPC_LIBS) $(PROTOBUF_C_LIBS) $(CRITERION_TEST_LIBS)
$(tests_test_grpc_wire_OBJECTS): proto/kserve.pb-c.h

# The region table (gs_shm.c) on its own: its limit and its status walk.
check_PROGRAMS += tests/test_shm_regions
TESTS += tests/test_shm_regions
tests_test_shm_regions_SOURCES = tests/grpc/test_shm_regions.c \
	broker/frontends/grpc/gs_shm.c broker/core/log.c
tests_test_shm_regions_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_shm_regions_LDADD = broker/gpu/libfgpu.la shm/libfshm.la $(CRITERION_TEST_LIBS)

# ferryd's gRPC and HTTP ports under each attack of ferry-h2attack
# (bench/h2attack.c: stream floods, rapid reset, slowloris, oversized
# metadata and headers, many connections, a PING flood), briefly: good
# clients served during and after each, fds back (issue 19).
TESTS += tests/grpc/test_abuse.sh
EXTRA_DIST += tests/grpc/test_abuse.sh
