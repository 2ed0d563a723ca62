# proto/kserve.mk: the KServe v2 / Triton gRPC protocol (kserve.proto),
# generated with protoc-c into the build tree and built as a convenience
# library shared by ferryd's gRPC server, libferry's remote transport, the
# gRPC benchmark and the fuzz target.
noinst_LTLIBRARIES += proto/libfkserve.la
nodist_proto_libfkserve_la_SOURCES = proto/kserve.pb-c.c proto/kserve.pb-c.h
proto_libfkserve_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
proto_libfkserve_la_LIBADD = $(PROTOBUF_C_LIBS)
EXTRA_DIST += proto/kserve.proto
BUILT_SOURCES += proto/kserve.pb-c.c proto/kserve.pb-c.h
CLEANFILES += proto/kserve.pb-c.c proto/kserve.pb-c.h

proto/kserve.pb-c.c proto/kserve.pb-c.h: proto/kserve.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	$(PROTOC_C) --proto_path=$(srcdir) --c_out=$(builddir) $(srcdir)/proto/kserve.proto
