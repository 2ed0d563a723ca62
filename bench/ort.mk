# bench/ort.mk: ferry-ort-bench, ONNX models through ferryd's onnxruntime
# backend (shared memory, inline, gRPC) against ONNX Runtime in-process,
# and the native executor beside onnxruntime on saturate's MLPs (included
# by bench/local.mk).  FERRY_SRCDIR lets it find the venv and generators.
if HAVE_ORT_BACKEND
bin_PROGRAMS += ferry-ort-bench
ferry_ort_bench_SOURCES = bench/ort_bench.c
ferry_ort_bench_CPPFLAGS = $(AM_CPPFLAGS) $(ORT_CPPFLAGS)
ferry_ort_bench_CFLAGS = $(AM_CFLAGS) -DFERRY_SRCDIR='"$(abs_top_srcdir)"'
ferry_ort_bench_LDADD = broker/backends/onnxruntime/libfortlib.la bench/libbenchutil.la \
	libclient/libferry.la shm/libfshm.la -lm
endif
