# tests/sched/: the backend ABI, the built-in backends and the scheduler.
# Test plugins are built as modules and loaded from a temporary backend
# directory; test_batching is linked with -export-dynamic so that they bind
# to the accessors (and to the test's hook) it exports, as ferryd must.
SCHED_TEST_PLUGIN_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -rpath /nowhere

check_LTLIBRARIES += tests/sched/libferry_rec.la tests/sched/libferry_noexec.la \
	tests/sched/libferry_badmajor.la
tests_sched_libferry_rec_la_SOURCES = tests/sched/be_rec.c tests/sched/rec.h
tests_sched_libferry_rec_la_LDFLAGS = $(SCHED_TEST_PLUGIN_LDFLAGS)
tests_sched_libferry_noexec_la_SOURCES = tests/sched/be_noexec.c
tests_sched_libferry_noexec_la_LDFLAGS = $(SCHED_TEST_PLUGIN_LDFLAGS)
tests_sched_libferry_badmajor_la_SOURCES = tests/sched/be_badmajor.c
tests_sched_libferry_badmajor_la_LDFLAGS = $(SCHED_TEST_PLUGIN_LDFLAGS)

check_PROGRAMS += tests/sched/test_builtin tests/sched/test_batching
TESTS += tests/sched/test_builtin tests/sched/test_batching
tests_sched_test_builtin_SOURCES = tests/sched/test_builtin.c tests/sched/common.h
tests_sched_test_builtin_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_sched_test_builtin_LDADD = $(BUILTIN_BE_LIBS) broker/sched/libfsched.la shm/libfshm.la $(CRITERION_TEST_LIBS)
tests_sched_test_batching_SOURCES = tests/sched/test_batching.c tests/sched/common.h \
	tests/sched/rec.h
tests_sched_test_batching_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_sched_test_batching_LDFLAGS = $(AM_LDFLAGS) -export-dynamic
tests_sched_test_batching_LDADD = $(BUILTIN_BE_LIBS) broker/sched/libfsched.la shm/libfshm.la $(CRITERION_TEST_LIBS)
