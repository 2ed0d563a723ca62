# tests/onnx: the native ONNX executor against onnxruntime.
# run_onnx_tests.sh generates the models (gen_models.py, in the .venv) into
# a temporary directory, then runs test_onnx on them.  onnx_bench is a
# small throughput probe, built by `make check` but never run by it.
check_PROGRAMS += tests/onnx/test_onnx tests/onnx/onnx_bench
TESTS += tests/onnx/run_onnx_tests.sh
EXTRA_DIST += tests/onnx/run_onnx_tests.sh tests/onnx/gen_models.py
tests_onnx_test_onnx_SOURCES = tests/onnx/test_onnx.c
tests_onnx_test_onnx_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_onnx_test_onnx_LDADD = broker/backends/onnx/libfonnx.la shm/libfshm.la \
	$(CRITERION_TEST_LIBS) -lm
tests_onnx_onnx_bench_SOURCES = tests/onnx/onnx_bench.c
tests_onnx_onnx_bench_LDADD = broker/backends/onnx/libfonnx.la shm/libfshm.la -lm

# The "onnx" backend through a real ferryd (test_onnx_broker, via
# run_onnx_broker.sh), loaded as a plugin from tests/onnx/.libs where
# ferryd lacks the built-in.  -rpath makes libtool build a shared module.
check_LTLIBRARIES += tests/onnx/libferry_onnx.la
tests_onnx_libferry_onnx_la_SOURCES = tests/onnx/onnx_plugin.c
tests_onnx_libferry_onnx_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version \
	-shared -rpath $(abs_builddir)/tests/onnx
tests_onnx_libferry_onnx_la_LIBADD = $(ONNX_BE_LIBS) shm/libfshm.la
$(tests_onnx_libferry_onnx_la_OBJECTS): onnx/onnx.pb-c.h

check_PROGRAMS += tests/onnx/test_onnx_broker
TESTS += tests/onnx/run_onnx_broker.sh
EXTRA_DIST += tests/onnx/run_onnx_broker.sh
tests_onnx_test_onnx_broker_SOURCES = tests/onnx/test_onnx_broker.c
tests_onnx_test_onnx_broker_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_onnx_test_onnx_broker_LDADD = tests/libharness.la libclient/libferry.la \
	$(CRITERION_TEST_LIBS) -lm
# (make check builds ferryd with `all` and the plugin as a check library
# before any test runs.)

# The executor on CUDA against the CPU and onnxruntime (exits 77 without
# CUDA or a device): built everywhere, so CI keeps it compiling.
check_PROGRAMS += tests/onnx/test_onnx_gpu
TESTS += tests/onnx/run_onnx_gpu.sh
EXTRA_DIST += tests/onnx/run_onnx_gpu.sh
tests_onnx_test_onnx_gpu_SOURCES = tests/onnx/test_onnx_gpu.c
tests_onnx_test_onnx_gpu_LDADD = $(ONNX_BE_LIBS) broker/sched/libfsched.la \
	broker/config/libfconfig.la shm/libfshm.la $(NUMA_LIBS) -lpthread -lm
$(tests_onnx_test_onnx_gpu_OBJECTS): onnx/onnx.pb-c.h

# CUDA IPC tensors through libferry (test_cuda_ipc, via run_cuda_ipc.sh):
# refusals everywhere, device buffers end to end where a GPU exists.
check_PROGRAMS += tests/onnx/test_cuda_ipc
TESTS += tests/onnx/run_cuda_ipc.sh
EXTRA_DIST += tests/onnx/run_cuda_ipc.sh
tests_onnx_test_cuda_ipc_SOURCES = tests/onnx/test_cuda_ipc.c
tests_onnx_test_cuda_ipc_CFLAGS = $(CRITERION_TEST_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_onnx_test_cuda_ipc_LDADD = tests/libharness.la libclient/libferry.la \
	$(CRITERION_TEST_LIBS) -lm
if HAVE_CUDA
tests_onnx_test_cuda_ipc_CFLAGS += $(CUDA_CFLAGS)
tests_onnx_test_cuda_ipc_LDADD += $(CUDART_LIBS)
endif
