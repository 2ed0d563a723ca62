# bench/onnx.mk: ferry-onnx-bench, ONNX models through ferryd against the
# executor in-process and (with a GPU) a raw cuBLAS loop (included by
# bench/local.mk).  FERRY_SRCDIR lets it find the venv and gen_models.py.
bin_PROGRAMS += ferry-onnx-bench
ferry_onnx_bench_SOURCES = bench/onnx_bench.c
ferry_onnx_bench_CFLAGS = $(AM_CFLAGS) -DFERRY_SRCDIR='"$(abs_top_srcdir)"'
ferry_onnx_bench_LDADD = $(ONNX_BE_LIBS) broker/sched/libfsched.la broker/config/libfconfig.la \
	libclient/libferry.la shm/libfshm.la -lm
$(ferry_onnx_bench_OBJECTS): onnx/onnx.pb-c.h
# With CUDA it also times a raw cuBLAS loop and copies through the
# runtime itself; the executor's GPU half is the module ox_cuda.so.
if HAVE_CUDA
ferry_onnx_bench_CFLAGS += $(CUDA_CFLAGS)
ferry_onnx_bench_LDADD += $(CUDA_LIBS)
endif
