# broker/core/: ferryd itself: main, the event loop, sessions, the control
# socket, systemd integration and the log.  It links the other parts.
sbin_PROGRAMS += broker/ferryd
broker_ferryd_SOURCES = \
	broker/core/broker.h \
	broker/core/ferryd.c \
	broker/core/control.c \
	broker/core/log.c broker/core/log.h \
	broker/core/loop.c broker/core/loop.h \
	broker/core/poller.c broker/core/poller.h \
	broker/core/session.c broker/core/session.h \
	broker/core/systemd.c broker/core/systemd.h \
	$(FERRYD_MODELS_SOURCES) $(FERRYD_FRONTENDS_SOURCES)
broker_ferryd_CFLAGS = $(AM_CFLAGS) $(URING_CFLAGS) $(PROTOBUF_C_CFLAGS) $(MHD_CFLAGS)
# ferryd's default --backend-directory: the installed plugins, then this
# build tree's (so a ferryd run from the build tree finds onnxruntime).
broker_ferryd_CFLAGS += \
	-DFERRY_BACKEND_DIRS='"$(pkglibdir)/backends:$(abs_top_builddir)/broker/backends/onnxruntime/.libs"'
# --export-dynamic: backend plugins call the accessors ferryd exports
# (include/ferry/backend.h), resolved when they are dlopen()ed.
broker_ferryd_LDFLAGS = $(AM_LDFLAGS) -Wl,--export-dynamic
broker_ferryd_LDADD = broker/frontends/http/libfhttp.la \
	broker/frontends/grpc/libfgrpc.la $(BUILTIN_BE_LIBS) \
	broker/sched/libfsched.la broker/config/libfconfig.la proto/libfproto.la \
	broker/gpu/libfgpu.la shm/libfshm.la $(URING_LIBS) $(PROTOBUF_C_LIBS) $(MHD_LIBS) \
	$(NUMA_LIBS)
