# bench/study.mk: ferry-bench-saturate (the portability study, and with
# --modes broker-gpu the offload study that bench/offload.sh runs on a GPU
# machine) and ferry-bench-load (perf_analyzer's sweeps for both
# transports) (included by bench/local.mk).  Both are installed: ferry-tune
# (tools/) runs them to measure each candidate config.
bin_PROGRAMS += ferry-bench-saturate
ferry_bench_saturate_SOURCES = bench/saturate.c
ferry_bench_saturate_CFLAGS = $(AM_CFLAGS) -DFERRY_SRCDIR='"$(abs_top_srcdir)"'
ferry_bench_saturate_LDADD = bench/libbenchutil.la $(ONNX_BE_LIBS) broker/sched/libfsched.la \
	broker/config/libfconfig.la libclient/libferry.la shm/libfshm.la -lm
$(ferry_bench_saturate_OBJECTS): onnx/onnx.pb-c.h
# --backend onnxruntime: direct and broker-idle call ONNX Runtime in the
# jobs' own processes, as ferryd's backend does (ort_lib opens the library)
if HAVE_ORT_BACKEND
ferry_bench_saturate_CPPFLAGS = $(AM_CPPFLAGS) $(ORT_CPPFLAGS) -DSATURATE_ORT=1
ferry_bench_saturate_LDADD += broker/backends/onnxruntime/libfortlib.la
endif

bin_PROGRAMS += ferry-bench-load
ferry_bench_load_SOURCES = bench/load.c
ferry_bench_load_CFLAGS = $(AM_CFLAGS) -DFERRY_SRCDIR='"$(abs_top_srcdir)"'
ferry_bench_load_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la -lpthread -lm

noinst_PROGRAMS += ferry-bench-clients
ferry_bench_clients_SOURCES = bench/clients.c
ferry_bench_clients_CFLAGS = $(AM_CFLAGS) -DFERRY_SRCDIR='"$(abs_top_srcdir)"'
ferry_bench_clients_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la -lm
