# bench/shm.mk: micro-benchmarks of the shared-memory library (included by
# bench/local.mk).
bin_PROGRAMS += ferry-ring-bench
ferry_ring_bench_SOURCES = bench/ring_pingpong.c
ferry_ring_bench_LDADD = shm/libfshm.la
