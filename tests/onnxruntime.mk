# tests/onnxruntime/: the onnxruntime backend through a real ferryd, over
# shared memory and gRPC, on realistic models that gen_ort_models.py builds
# with onnx.helper (run_ort_tests.sh generates them with onnxruntime's
# reference outputs; it skips, exit 77, without the venv, the plugin or an
# ONNX Runtime library).
check_PROGRAMS += tests/onnxruntime/test_ort_broker
TESTS += tests/onnxruntime/run_ort_tests.sh
EXTRA_DIST += tests/onnxruntime/run_ort_tests.sh tests/onnxruntime/gen_ort_models.py
tests_onnxruntime_test_ort_broker_SOURCES = tests/onnxruntime/test_ort_broker.c
tests_onnxruntime_test_ort_broker_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_onnxruntime_test_ort_broker_LDADD = tests/libharness.la libclient/libferry.la \
	$(CRITERION_TEST_LIBS) -lm

# The same backend through Triton's own client (tritonclient[grpc]):
# ModelConfig of auto-completed models, answers against onnxruntime.
TESTS += tests/onnxruntime/run_ort_python.sh
EXTRA_DIST += tests/onnxruntime/run_ort_python.sh tests/onnxruntime/test_ort_grpc.py

# On a GPU (scripts/gpu-check.sh): the CUDA and TensorRT execution
# providers from the registered arena and CUDA IPC regions, against the CPU
# outputs; each test skips, saying why, without onnxruntime-gpu
# ($FERRY_ORT_GPU_LIBRARY) or a device.
check_PROGRAMS += tests/onnxruntime/test_ort_gpu
TESTS += tests/onnxruntime/run_ort_gpu.sh
EXTRA_DIST += tests/onnxruntime/run_ort_gpu.sh
tests_onnxruntime_test_ort_gpu_SOURCES = tests/onnxruntime/test_ort_gpu.c
tests_onnxruntime_test_ort_gpu_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_onnxruntime_test_ort_gpu_LDADD = tests/libharness.la libclient/libferry.la \
	$(CRITERION_TEST_LIBS) -lm
if HAVE_CUDA
tests_onnxruntime_test_ort_gpu_CFLAGS += $(CUDA_CFLAGS)
tests_onnxruntime_test_ort_gpu_LDADD += $(CUDART_LIBS)
endif
