# tests/gpu.mk: broker/gpu without a GPU (what a CPU-only node answers and
# maps, module lookup, the IPC cache, NUMA).  The GPU itself is exercised by
# tests/onnx (test_onnx_gpu, test_cuda_ipc) and tests/grpc (test_cuda_shm).
check_PROGRAMS += tests/test_gpu
TESTS += tests/test_gpu
tests_test_gpu_SOURCES = tests/gpu/test_gpu.c
tests_test_gpu_CFLAGS = $(CRITERION_TEST_CFLAGS)
# where this build tree was configured (a copy elsewhere, as on the GPU
# machine, cannot rely on the compiled-in module directory)
tests_test_gpu_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_GPU_BUILDDIR='"$(abs_top_builddir)"'
tests_test_gpu_LDADD = broker/gpu/libfgpu.la shm/libfshm.la $(NUMA_LIBS) -lpthread \
	$(CRITERION_TEST_LIBS)
