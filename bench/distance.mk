# bench/distance.mk: ferry-bench-distance, synchronous against asynchronous
# clients at a distance from the broker, and the delaying TCP relay that
# bench/distance.sh uses where the kernel has no netem (included by
# bench/local.mk).
noinst_PROGRAMS += ferry-bench-distance
ferry_bench_distance_SOURCES = bench/distance.c
ferry_bench_distance_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la -lpthread -lm
