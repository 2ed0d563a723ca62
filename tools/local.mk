# tools/: ferryctl, the administration tool, on libferry's public API alone
# (the local control socket without a session, or gRPC with --server).
bin_PROGRAMS += tools/ferryctl
tools_ferryctl_SOURCES = tools/ferryctl.c
tools_ferryctl_LDADD = libclient/libferry.la

# ferry-tune (Python; docs/TUNING.md).  tools/ferry-tune.in is written
# twice: tools/ferry-tune in the build tree runs the checkout's modules
# (tools/tune/) and this tree's ferryd and load generators; the installed
# one (install-exec-local) runs $(pkgdatadir)/tune with the copy of the
# ferry package beside it (used when no `ferry` package is installed) and
# the installed programs.
noinst_SCRIPTS += tools/ferry-tune
CLEANFILES += tools/ferry-tune
TUNE_MODULES = tools/tune/__init__.py tools/tune/tune_main.py tools/tune/tune_space.py \
	tools/tune/tune_search.py tools/tune/tune_measure.py tools/tune/tune_broker.py \
	tools/tune/tune_report.py tools/tune/tune_pbtxt.py
EXTRA_DIST += tools/ferry-tune.in $(TUNE_MODULES)
tunedir = $(pkgdatadir)/tune
tune_DATA = $(TUNE_MODULES)
tunepydir = $(pkgdatadir)/python/ferry
tunepy_DATA = python/ferry/__init__.py python/ferry/_client.py python/ferry/_cuda.py \
	python/ferry/_dtypes.py python/ferry/_errors.py python/ferry/_lib.py

tools/ferry-tune: tools/ferry-tune.in Makefile
	$(AM_V_GEN)$(MKDIR_P) tools && \
	sed -e 's|@TUNE_SRCDIR[@]|$(abs_top_srcdir)|' -e 's|@TUNE_BUILDDIR[@]|$(abs_top_builddir)|' \
	    -e 's|@TUNE_PKGDATADIR[@]|$(pkgdatadir)|' -e 's|@TUNE_BINDIRS[@]|$(abs_top_builddir)|' \
	    $(srcdir)/tools/ferry-tune.in > $@.tmp && chmod +x $@.tmp && mv $@.tmp $@

install-exec-local:
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	sed -e 's|@TUNE_SRCDIR[@]||' -e 's|@TUNE_BUILDDIR[@]||' \
	    -e 's|@TUNE_PKGDATADIR[@]|$(pkgdatadir)|' -e 's|@TUNE_BINDIRS[@]|$(bindir):$(sbindir)|' \
	    $(srcdir)/tools/ferry-tune.in > '$(DESTDIR)$(bindir)/ferry-tune'
	chmod 755 '$(DESTDIR)$(bindir)/ferry-tune'

uninstall-local:
	rm -f '$(DESTDIR)$(bindir)/ferry-tune'

# Its tests: the logic alone (test_tune_unit.py), and short tunes against
# real ferryds of this build tree (test_tune_cpu.py; KIND_GPU where ferryd
# sees a GPU), in one suite.
TESTS += tests/tune/run.sh
EXTRA_DIST += tests/tune/run.sh tests/tune/test_tune_unit.py tests/tune/test_tune_cpu.py
