# libclient/remote.mk: libferry's remote transport (KServe v2 over gRPC).
libclient_libferry_la_SOURCES += libclient/remote.c libclient/remote.h
libclient_libferry_la_CFLAGS += $(GRPC_CFLAGS)
libclient_libferry_la_LIBADD += proto/libfkserve.la $(GRPC_LIBS)
