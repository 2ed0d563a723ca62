# tests/integ/: integration tests against a real ferryd (started by the
# test from the build tree) with real client processes.
check_LTLIBRARIES += tests/libharness.la
tests_libharness_la_SOURCES = tests/integ/harness.c tests/integ/harness.h
tests_libharness_la_CFLAGS = $(CRITERION_TEST_CFLAGS)
# th_simple_once makes a request through libferry
tests_libharness_la_LIBADD = libclient/libferry.la

check_PROGRAMS += tests/test_local
TESTS += tests/test_local
tests_test_local_SOURCES = tests/integ/test_local.c
tests_test_local_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_local_LDADD = tests/libharness.la libclient/libferry.la shm/libfshm.la $(CRITERION_TEST_LIBS)

check_PROGRAMS += tests/test_poller
TESTS += tests/test_poller
tests_test_poller_SOURCES = tests/integ/test_poller.c
tests_test_poller_CFLAGS = $(CRITERION_TEST_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_poller_LDADD = tests/libharness.la libclient/libferry.la $(CRITERION_TEST_LIBS)

check_PROGRAMS += tests/test_loop
TESTS += tests/test_loop
tests_test_loop_SOURCES = tests/integ/test_loop.c broker/core/loop.c broker/core/log.c
tests_test_loop_CFLAGS = $(CRITERION_TEST_CFLAGS) $(URING_CFLAGS)
tests_test_loop_LDADD = $(URING_LIBS) $(CRITERION_TEST_LIBS)

check_PROGRAMS += tests/test_hostile
TESTS += tests/test_hostile
tests_test_hostile_SOURCES = tests/integ/test_hostile.c
tests_test_hostile_CFLAGS = $(CRITERION_TEST_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_hostile_LDADD = tests/libharness.la libclient/libferry.la shm/libfshm.la $(CRITERION_TEST_LIBS)

# ferry.h compiles as C++ and links from C++.
check_PROGRAMS += tests/cxx_header
TESTS += tests/cxx_header
tests_cxx_header_SOURCES = tests/integ/cxx_header.cc
tests_cxx_header_CXXFLAGS = -Wall -Wextra -Werror
tests_cxx_header_LDADD = libclient/libferry.la

# make install, then programs built with pkg-config against the installed
# library, in C and C++, against the installed ferryd.
TESTS += tests/install/test_install.sh
EXTRA_DIST += tests/install/test_install.sh tests/install/prog.c tests/install/prog.cc

# Disk-less and memory-tight starts: missing repository, unreadable files,
# a full arena, a failed allocation.
check_PROGRAMS += tests/test_start
TESTS += tests/test_start
tests_test_start_SOURCES = tests/integ/test_start.c
tests_test_start_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_start_LDADD = tests/libharness.la libclient/libferry.la $(CRITERION_TEST_LIBS)

# Reconnect and failover with real brokers (issues 18 and 19): restarts
# by SIGKILL and SIGTERM, failover between endpoints, round-robin, the
# bounds on deadlines and resubmissions, the segment a client hands back.
check_PROGRAMS += tests/test_failover
TESTS += tests/test_failover
tests_test_failover_SOURCES = tests/integ/test_failover.c
tests_test_failover_CFLAGS = $(CRITERION_TEST_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_failover_LDADD = tests/libharness.la libclient/libferry.la proto/libfproto.la \
	shm/libfshm.la $(PROTOBUF_C_LIBS) $(CRITERION_TEST_LIBS)

# Clients that truncate their system shared-memory regions in a loop while
# they infer over gRPC and HTTP: their own requests fail with a message,
# ferryd and a neighbour live on (the SIGBUS guard, issue 19).
check_PROGRAMS += tests/test_shm_truncate
TESTS += tests/test_shm_truncate
tests_test_shm_truncate_SOURCES = tests/integ/test_shm_truncate.c
tests_test_shm_truncate_CFLAGS = $(CRITERION_TEST_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_test_shm_truncate_LDADD = tests/libharness.la proto/libfrpc.la proto/libfkserve.la \
	shm/libfshm.la $(GRPC_LIBS) $(PROTOBUF_C_LIBS) $(CRITERION_TEST_LIBS)
$(tests_test_shm_truncate_OBJECTS): proto/kserve.pb-c.h

# Reloads under load (issue 19): 64 shared-memory and 4 gRPC clients infer
# while a SIGHUP and a RepositoryModelLoad bring in new versions: no request
# fails, each answer comes from one version, the statistics show the switch.
check_PROGRAMS += tests/test_reload
TESTS += tests/test_reload
tests_test_reload_SOURCES = tests/integ/test_reload.c
tests_test_reload_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_test_reload_LDADD = tests/libharness.la libclient/libferry.la $(CRITERION_TEST_LIBS)
