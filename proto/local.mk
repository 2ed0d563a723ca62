# proto/: ferry's control protocol (control.proto) and its framing.  The
# generated *.pb-c.[ch] are build outputs in the build tree, never committed.
noinst_LTLIBRARIES += proto/libfproto.la
proto_libfproto_la_SOURCES = proto/frame.c proto/frame.h
nodist_proto_libfproto_la_SOURCES = proto/control.pb-c.c proto/control.pb-c.h
proto_libfproto_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
proto_libfproto_la_LIBADD = $(PROTOBUF_C_LIBS)
EXTRA_DIST += proto/control.proto
BUILT_SOURCES += proto/control.pb-c.c proto/control.pb-c.h
CLEANFILES += proto/control.pb-c.c proto/control.pb-c.h

proto/control.pb-c.c proto/control.pb-c.h: proto/control.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	$(PROTOC_C) --proto_path=$(srcdir) --c_out=$(builddir) $(srcdir)/proto/control.proto
include proto/kserve.mk
include proto/rpc.mk
