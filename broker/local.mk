# broker/: ferryd.  The parts with their own fragments (config.mk,
# sched.mk, onnx.mk) build convenience libraries linked here.
include broker/grpc.mk
sbin_PROGRAMS += broker/ferryd
broker_ferryd_SOURCES = \
	broker/broker.h \
	broker/ferryd.c \
	broker/ctl.c \
	broker/log.c broker/log.h \
	broker/loop.c broker/loop.h \
	broker/metrics.c broker/metrics.h \
	broker/models.c broker/models.h \
	broker/rescan.c broker/rescan.h \
	broker/service.c broker/service.h \
	broker/session.c broker/session.h
broker_ferryd_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS) $(PROTOBUF_C_CFLAGS) $(MHD_CFLAGS)
# --export-dynamic: backend plugins call the accessors ferryd exports
# (include/ferry/backend.h), resolved when they are dlopen()ed.
broker_ferryd_LDFLAGS = $(AM_LDFLAGS) -Wl,--export-dynamic
broker_ferryd_LDADD = broker/libfgrpc.la $(ONNX_BE_LIBS) broker/libfsched.la broker/libfconfig.la proto/libfproto.la \
	shm/libfshm.la $(URING_LIBS) $(PROTOBUF_C_LIBS) $(MHD_LIBS) $(NUMA_LIBS)
