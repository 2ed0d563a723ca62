# broker/grpc.mk: ferryd's KServe v2 gRPC front end (grpc_server.c and
# its gs_* parts), a convenience library linked into ferryd.
noinst_LTLIBRARIES += broker/libfgrpc.la
broker_libfgrpc_la_SOURCES = \
	broker/grpc_server.c broker/grpc_server.h \
	broker/gs_infer.c broker/gs_infer.h \
	broker/gs_shm.c broker/gs_shm.h
broker_libfgrpc_la_CFLAGS = $(AM_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS) $(CUDA_CFLAGS)
broker_libfgrpc_la_LIBADD = proto/libfkserve.la $(GRPC_LIBS) $(PROTOBUF_C_LIBS)
if HAVE_CUDA
broker_libfgrpc_la_LIBADD += $(CUDA_LIBS)
endif
