# bench/grpc.mk: ferry-grpc-bench, identity over shared memory, gRPC and
# gRPC with system shared memory, in one run (included by bench/local.mk).
noinst_PROGRAMS += ferry-grpc-bench
ferry_grpc_bench_SOURCES = bench/grpc_bench.c
ferry_grpc_bench_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la

# ferry-grpc-echo: gRPC's floor as a server of its own (bench/flood.sh).
noinst_PROGRAMS += ferry-grpc-echo
ferry_grpc_echo_SOURCES = bench/grpc_echo.c
ferry_grpc_echo_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
ferry_grpc_echo_LDADD = bench/libbenchutil.la
