# broker/frontends/: what renders ferryd to the outside: the KServe v2
# gRPC front end (grpc/, a convenience library), the KServe v2 HTTP/REST
# front end (http/, its own fragment) and the Prometheus / KServe health
# endpoint (metrics.c, compiled into ferryd).
noinst_LTLIBRARIES += broker/frontends/grpc/libfgrpc.la
broker_frontends_grpc_libfgrpc_la_SOURCES = \
	broker/frontends/grpc/gs_server.c broker/frontends/grpc/gs_server.h \
	broker/frontends/grpc/gs_int.h broker/frontends/grpc/gs_admin.c \
	broker/frontends/grpc/gs_submit.c \
	broker/frontends/grpc/gs_infer.c broker/frontends/grpc/gs_infer.h \
	broker/frontends/grpc/gs_shm.c broker/frontends/grpc/gs_shm.h \
	broker/frontends/grpc/gs_shm_rpc.c \
	broker/frontends/grpc/gs_guard.c broker/frontends/grpc/gs_guard.h
# CUDA shared-memory regions go through broker/gpu (libfgpu.la, in ferryd)
broker_frontends_grpc_libfgrpc_la_CFLAGS = $(AM_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS)
broker_frontends_grpc_libfgrpc_la_LIBADD = proto/libfkserve.la $(GRPC_LIBS) $(PROTOBUF_C_LIBS)
FERRYD_FRONTENDS_SOURCES = \
	broker/frontends/metrics.c broker/frontends/metrics.h
include broker/frontends/http/http.mk
