# bench/grpc.mk: ferry-grpc-bench, identity over shared memory, gRPC and
# gRPC with system shared memory, in one run (included by bench/local.mk).
noinst_PROGRAMS += ferry-grpc-bench
ferry_grpc_bench_SOURCES = bench/grpc_bench.c
ferry_grpc_bench_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la
