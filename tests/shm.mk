# tests/shm.mk: the shared-memory library's tests (included by
# tests/local.mk).  One program per area; the stress programs are apart so
# that a sanitizer run can pick them: a TSan build runs
#   make check TESTS=tests/shm/test_threads
SHM_TEST_LDADD = shm/libfshm.la $(CRITERION_TEST_LIBS)
noinst_HEADERS += tests/shm/shm_test.h tests/shm/stress.h

check_PROGRAMS += tests/shm/test_ring tests/shm/test_seg \
	tests/shm/test_arena tests/shm/test_doorbell \
	tests/shm/test_stress tests/shm/test_threads tests/shm/test_guard
TESTS += tests/shm/test_ring tests/shm/test_seg \
	tests/shm/test_arena tests/shm/test_doorbell \
	tests/shm/test_stress tests/shm/test_threads tests/shm/test_guard

tests_shm_test_ring_SOURCES = tests/shm/test_ring.c
tests_shm_test_ring_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_shm_test_ring_LDADD = $(SHM_TEST_LDADD)

tests_shm_test_seg_SOURCES = tests/shm/test_seg.c
tests_shm_test_seg_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_shm_test_seg_LDADD = $(SHM_TEST_LDADD)

tests_shm_test_arena_SOURCES = tests/shm/test_arena.c
tests_shm_test_arena_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_shm_test_arena_LDADD = $(SHM_TEST_LDADD)

tests_shm_test_doorbell_SOURCES = tests/shm/test_doorbell.c
tests_shm_test_doorbell_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_shm_test_doorbell_LDADD = $(SHM_TEST_LDADD)

tests_shm_test_stress_SOURCES = tests/shm/test_stress.c
tests_shm_test_stress_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_shm_test_stress_LDADD = $(SHM_TEST_LDADD)

tests_shm_test_guard_SOURCES = tests/shm/test_guard.c
tests_shm_test_guard_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_shm_test_guard_LDADD = $(SHM_TEST_LDADD) -lpthread

# Not Criterion: Criterion cannot run under ThreadSanitizer (see the file).
tests_shm_test_threads_SOURCES = tests/shm/test_threads.c
tests_shm_test_threads_LDADD = shm/libfshm.la
