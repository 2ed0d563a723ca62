# shm/: the shared-memory library (segments, rings, doorbells, arena) and
# the wire structs.  Built as a convenience library linked into ferryd,
# libferry, the tests and the benchmarks.
noinst_LTLIBRARIES += shm/libfshm.la
shm_libfshm_la_SOURCES = \
	shm/fshm.h \
	shm/fshm_wire.h \
	shm/fshm_seg.c \
	shm/fshm_ring.c \
	shm/fshm_doorbell.c \
	shm/fshm_arena.c \
	shm/fshm_guard.c \
	shm/ferr.c
shm_libfshm_la_LIBADD = $(NUMA_LIBS)
pkginclude_HEADERS += include/ferry/errors.h include/ferry/dtype.h
