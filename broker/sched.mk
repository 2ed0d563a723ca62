# sched part of broker/ (included by the top Makefile.am): the backend
# registry and plugin ABI, the built-in backends and the scheduler, as a
# convenience library linked into ferryd and the tests.
#
# Whatever links libfsched.la and loads plugins must export the ABI's
# accessors to them: link that program with -export-dynamic (libtool) or
# -Wl,--export-dynamic.
noinst_LTLIBRARIES += broker/libfsched.la
broker_libfsched_la_SOURCES = \
	broker/backend.h \
	broker/backend.c \
	broker/be_identity.c \
	broker/be_addsub.c \
	broker/sched.h \
	broker/sched.c
broker_libfsched_la_LIBADD = -ldl
pkginclude_HEADERS += include/ferry/backend.h
