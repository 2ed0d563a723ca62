# tests/soak/: the soak client, driven by scripts/soak.sh (not a test: it
# runs for minutes), and `make fuzz` (scripts/fuzz.sh, clang) beside it.
# Included by tests/local.mk whether or not Criterion was found.
check_PROGRAMS += tests/soak/soak_client
tests_soak_soak_client_SOURCES = tests/soak/soak_client.c
tests_soak_soak_client_LDADD = libclient/libferry.la

FUZZ_SECONDS = 60
SOAK_MINUTES = 10
fuzz: ; FUZZ_BUILD_DIR=$(abs_top_builddir)/build-fuzz $(top_srcdir)/scripts/fuzz.sh $(FUZZ_SECONDS)
soak: tests/soak/soak_client broker/ferryd ; FERRY_BUILDDIR=$(abs_top_builddir) $(top_srcdir)/scripts/soak.sh $(SOAK_MINUTES)
.PHONY: fuzz soak
