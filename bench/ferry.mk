# bench/ferry.mk: ferry-bench, the end-to-end benchmark (included by
# bench/local.mk), and the helpers the benchmarks share: bench_util (pinning,
# percentiles, floors, ferryd) and grpc_util (raw KServe v2 gRPC calls and
# system shared memory, on gRPC core and proto/rpc.c's unary call, the one
# libferry makes, and gRPC's floor, a bare echo server; it brings the KServe
# messages and gRPC into every program that links the library) and
# http_util (a small HTTP/1.1 keep-alive client for KServe v2 over HTTP).
noinst_LTLIBRARIES += bench/libbenchutil.la
bench_libbenchutil_la_SOURCES = bench/bench_util.c bench/bench_util.h \
	bench/grpc_util.c bench/grpc_util.h bench/http_util.c bench/http_util.h
bench_libbenchutil_la_CFLAGS = $(AM_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS) $(JSONC_CFLAGS)
bench_libbenchutil_la_LIBADD = proto/libfkserve.la proto/libfrpc.la $(GRPC_LIBS) $(PROTOBUF_C_LIBS) \
	$(JSONC_LIBS)

bin_PROGRAMS += ferry-bench
ferry_bench_SOURCES = bench/ferry_bench.c
ferry_bench_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la
