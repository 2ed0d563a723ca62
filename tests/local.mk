# tests/: Criterion unit and integration tests.  Each program is one suite;
# scripts/test-summary.sh adds up their results.
#
# Criterion is needed by `make check` only: configure goes on without it,
# the build makes everything else, and `make check` says what to install.
CRITERION_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
CRITERION_TEST_LIBS = $(CRITERION_LIBS)
# One line per test in each suite's log ([PASS], [FAIL], and [SKIP] with
# its reason): scripts/test-summary.sh counts the skipped tests from them.
AM_TESTS_ENVIRONMENT += export CRITERION_VERBOSITY_LEVEL=1 ;

if HAVE_CRITERION
check_PROGRAMS += tests/test_errors
TESTS += tests/test_errors
tests_test_errors_SOURCES = tests/test_errors.c
tests_test_errors_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_errors_LDADD = shm/libfshm.la $(CRITERION_TEST_LIBS)
include tests/config.mk
include tests/integ.mk
include tests/shm.mk
include tests/onnx.mk
include tests/onnxruntime.mk
include tests/sched.mk
include tests/grpc.mk
include tests/http.mk
include tests/fuzz.mk
include tests/gpu.mk
else
check-local: tests-need-criterion
tests-need-criterion:
	@echo "make check: the test suites need Criterion, which configure did not find:" >&2
	@echo "  install the Debian package 'libcriterion-dev' (or run scripts/setup-debian.sh)," >&2
	@echo "  then run configure again" >&2
	@exit 1
endif
# The soak client and `make fuzz` / `make soak` need no Criterion.
include tests/soak.mk
# deploy/: the proxies, the Kubernetes manifests, the pool in namespaces.
include tests/deploy.mk
