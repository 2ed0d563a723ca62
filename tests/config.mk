# tests/config/: the protobuf text parser, config.pbtxt and the model
# repository scan (broker/config/libfconfig.la).  Included by tests/local.mk.
CONFIG_TEST_LIBS = broker/config/libfconfig.la shm/libfshm.la $(CRITERION_TEST_LIBS)

check_PROGRAMS += tests/config/test_pbtxt tests/config/test_modelcfg \
	tests/config/test_repo_scan
TESTS += tests/config/test_pbtxt tests/config/test_modelcfg \
	tests/config/test_repo_scan

tests_config_test_pbtxt_SOURCES = tests/config/test_pbtxt.c
tests_config_test_pbtxt_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_config_test_pbtxt_LDADD = $(CONFIG_TEST_LIBS)

tests_config_test_modelcfg_SOURCES = tests/config/test_modelcfg.c
tests_config_test_modelcfg_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_config_test_modelcfg_LDADD = $(CONFIG_TEST_LIBS)

tests_config_test_repo_scan_SOURCES = tests/config/test_repo_scan.c
tests_config_test_repo_scan_CFLAGS = $(CRITERION_TEST_CFLAGS)
tests_config_test_repo_scan_LDADD = $(CONFIG_TEST_LIBS)

EXTRA_DIST += examples/models
