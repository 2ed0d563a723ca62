# broker/sched/: the scheduler (queues, dynamic batcher, instance threads)
# and the host side of the backend ABI (registry, plugin loading, the
# accessors of include/ferry/backend.h), as a convenience library linked
# into ferryd and the tests.
#
# Whatever links libfsched.la and loads plugins must export the ABI's
# accessors to them: link that program with -export-dynamic (libtool) or
# -Wl,--export-dynamic.
noinst_LTLIBRARIES += broker/sched/libfsched.la
broker_sched_libfsched_la_SOURCES = \
	broker/sched/be_host.h \
	broker/sched/be_host.c \
	broker/sched/sched.h \
	broker/sched/sched_int.h \
	broker/sched/sched_queue.c \
	broker/sched/sched_fair.c \
	broker/sched/sched_batch.c \
	broker/sched/sched_model.c \
	broker/sched/be_request.c
# the scheduler counts devices for KIND_GPU groups (broker/gpu)
broker_sched_libfsched_la_LIBADD = broker/gpu/libfgpu.la -ldl
pkginclude_HEADERS += include/ferry/backend.h
