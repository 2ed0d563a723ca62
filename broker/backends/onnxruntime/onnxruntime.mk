# broker/backends/onnxruntime/: the "onnxruntime" backend, a plugin
# (libferry_onnxruntime.so) over ONNX Runtime's C API.  It compiles against
# the vendored header (third_party/onnxruntime) and loads the library at
# run time (ort_lib.c): configure's --with-onnxruntime=DIR (default: the
# wheel in .venv) only names the default library.  Installed in
# $(pkglibdir)/backends, which ferryd searches by default together with
# this build tree's .libs (FERRY_BACKEND_DIRS, broker/core/core.mk).
#
# -isystem: the third-party header declares functions with empty parameter
# lists, which ferry's -Wstrict-prototypes -Werror would refuse; ferry's
# own files keep every warning.
ORT_CPPFLAGS = -isystem $(top_srcdir)/third_party/onnxruntime/include
EXTRA_DIST += third_party/onnxruntime/README.md third_party/onnxruntime/LICENSE \
	third_party/onnxruntime/include/onnxruntime_c_api.h

if HAVE_ORT_BACKEND
# The loader, shared with ferry-ort-bench.
noinst_LTLIBRARIES += broker/backends/onnxruntime/libfortlib.la
broker_backends_onnxruntime_libfortlib_la_SOURCES = \
	broker/backends/onnxruntime/ort_lib.h broker/backends/onnxruntime/ort_lib.c
broker_backends_onnxruntime_libfortlib_la_CPPFLAGS = $(AM_CPPFLAGS) $(ORT_CPPFLAGS)
broker_backends_onnxruntime_libfortlib_la_LIBADD = -ldl

ortbackenddir = $(pkglibdir)/backends
ortbackend_LTLIBRARIES = broker/backends/onnxruntime/libferry_onnxruntime.la
broker_backends_onnxruntime_libferry_onnxruntime_la_SOURCES = \
	broker/backends/onnxruntime/ort_int.h \
	broker/backends/onnxruntime/ort_backend.c \
	broker/backends/onnxruntime/ort_complete.c \
	broker/backends/onnxruntime/ort_exec.c
broker_backends_onnxruntime_libferry_onnxruntime_la_CPPFLAGS = $(AM_CPPFLAGS) $(ORT_CPPFLAGS)
# The ABI's accessors stay unresolved: ferryd exports them (backend.h).
broker_backends_onnxruntime_libferry_onnxruntime_la_LDFLAGS = $(AM_LDFLAGS) -module \
	-avoid-version -shared
broker_backends_onnxruntime_libferry_onnxruntime_la_LIBADD = \
	broker/backends/onnxruntime/libfortlib.la -lpthread
endif
