# tools/: ferryctl, the administration tool over ferryd's control socket.
bin_PROGRAMS += tools/ferryctl
tools_ferryctl_SOURCES = tools/ferryctl.c
tools_ferryctl_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tools_ferryctl_LDADD = libclient/libferry.la proto/libfproto.la shm/libfshm.la $(PROTOBUF_C_LIBS)
