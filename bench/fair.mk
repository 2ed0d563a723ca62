# bench/fair.mk: ferry-bench-fair, a well-behaved client beside a flooder on
# one model with ferryd's fair share on and off (issue 19; included by
# bench/local.mk).
noinst_PROGRAMS += ferry-bench-fair
ferry_bench_fair_SOURCES = bench/fair.c
ferry_bench_fair_CFLAGS = $(AM_CFLAGS) -DFERRY_SRCDIR='"$(abs_top_srcdir)"'
ferry_bench_fair_LDADD = bench/libbenchutil.la libclient/libferry.la shm/libfshm.la
