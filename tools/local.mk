# tools/: ferryctl, the administration tool, on libferry's public API alone
# (the local control socket without a session, or gRPC with --server).
bin_PROGRAMS += tools/ferryctl
tools_ferryctl_SOURCES = tools/ferryctl.c
tools_ferryctl_LDADD = libclient/libferry.la
