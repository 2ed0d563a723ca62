# dist/: what a node-local installation needs besides the binaries: the
# systemd units, man pages and the example repository.
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = dist/systemd/ferryd.service dist/systemd/ferryd.socket
EXTRA_DIST += dist/systemd/ferryd.service.in dist/systemd/ferryd.socket
CLEANFILES += dist/systemd/ferryd.service
dist/systemd/ferryd.service: dist/systemd/ferryd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) dist/systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/dist/systemd/ferryd.service.in > $@

dist_man_MANS = dist/man/ferryd.8 dist/man/ferryctl.1 dist/man/ferry-bench.1 dist/man/libferry.3 \
	dist/man/ferry-tune.1

# The example repository, as the quick start uses it.
nobase_dist_pkgdata_DATA = \
	examples/models/README.md \
	examples/models/simple/config.pbtxt examples/models/simple/1/.gitkeep \
	examples/models/identity/config.pbtxt examples/models/identity/1/.gitkeep \
	examples/models/identity_bytes/config.pbtxt examples/models/identity_bytes/1/.gitkeep
