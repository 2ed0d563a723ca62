# tests/: Criterion unit and integration tests.  Each program is one suite;
# scripts/test-summary.sh adds up their results.
CRITERION_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
CRITERION_TEST_LIBS = $(CRITERION_LIBS)

check_PROGRAMS += tests/test_errors
TESTS += tests/test_errors
tests_test_errors_SOURCES = tests/test_errors.c
tests_test_errors_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_errors_LDADD = shm/libfshm.la $(CRITERION_TEST_LIBS)
include tests/config.mk
include tests/integ.mk
include tests/shm.mk
include tests/onnx.mk
include tests/sched.mk
include tests/grpc.mk
include tests/fuzz.mk
