# libclient/: libferry.so, the client library, and its public header.
lib_LTLIBRARIES += libclient/libferry.la
libclient_libferry_la_SOURCES = \
	libclient/client.c libclient/client_int.h \
	libclient/client_request.c \
	libclient/client_cuda.c \
	libclient/client_autostart.c \
	libclient/client_failover.c \
	libclient/client_local.c \
	libclient/client_grpc.c \
	libclient/version.c
libclient_libferry_la_CPPFLAGS = $(AM_CPPFLAGS) -DFERRY_BUILDING_LIB -DFERRY_SBINDIR='"$(sbindir)"'
libclient_libferry_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) $(GRPC_CFLAGS)
# CUDA's headers only: client_cuda.c loads the runtime with dlopen when a job
# first shares a device buffer, so libferry never links it.
if HAVE_CUDA
libclient_libferry_la_CFLAGS += $(CUDA_CFLAGS)
endif
# Only the ferry_* symbols are exported (version script); the shm, proto
# and rpc code linked in stays private.
libclient_libferry_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(FERRY_LT_VERSION) \
	-Wl,--version-script=$(srcdir)/libclient/libferry.map
# client_grpc.c, the remote transport, speaks KServe v2 through proto/rpc.c.
libclient_libferry_la_LIBADD = proto/libfproto.la proto/libfkserve.la proto/libfrpc.la \
	shm/libfshm.la $(GRPC_LIBS) $(PROTOBUF_C_LIBS)
EXTRA_libclient_libferry_la_DEPENDENCIES = libclient/libferry.map
EXTRA_DIST += libclient/libferry.map
pkginclude_HEADERS += include/ferry/ferry.h
