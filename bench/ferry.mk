# bench/ferry.mk: ferry-bench, the end-to-end benchmark (included by
# bench/local.mk), and the helpers the benchmarks share.
noinst_LTLIBRARIES += bench/libbenchutil.la
bench_libbenchutil_la_SOURCES = bench/bench_util.c bench/bench_util.h

bin_PROGRAMS += ferry-bench
ferry_bench_SOURCES = bench/ferry_bench.c
ferry_bench_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la
