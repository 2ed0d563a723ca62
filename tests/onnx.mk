# tests/onnx: the native ONNX executor against onnxruntime.
# run_onnx_tests.sh generates the models (gen_models.py, in the .venv) into
# a temporary directory, then runs test_onnx on them.  onnx_bench is a
# small throughput probe, built by `make check` but never run by it.
check_PROGRAMS += tests/onnx/test_onnx tests/onnx/onnx_bench
TESTS += tests/onnx/run_onnx_tests.sh
EXTRA_DIST += tests/onnx/run_onnx_tests.sh tests/onnx/gen_models.py
tests_onnx_test_onnx_SOURCES = tests/onnx/test_onnx.c
tests_onnx_test_onnx_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_onnx_test_onnx_LDADD = broker/onnx/libfonnx.la shm/libfshm.la \
	$(CRITERION_TEST_LIBS) -lm
tests_onnx_onnx_bench_SOURCES = tests/onnx/onnx_bench.c
tests_onnx_onnx_bench_LDADD = broker/onnx/libfonnx.la shm/libfshm.la -lm
