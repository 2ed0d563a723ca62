# broker/backends/: the backends ferryd carries.  identity and add_sub and
# the table of built-ins (builtin.c) make libfbuiltin.la, with the native
# ONNX executor (onnx/) linked in.
include broker/backends/onnx/onnx.mk
include broker/backends/onnxruntime/onnxruntime.mk

noinst_LTLIBRARIES += broker/backends/libfbuiltin.la
broker_backends_libfbuiltin_la_SOURCES = \
	broker/backends/builtin.h broker/backends/builtin.c \
	broker/backends/identity.c \
	broker/backends/addsub.c
broker_backends_libfbuiltin_la_LIBADD = broker/backends/onnx/libfonnxbe.la
$(broker_backends_libfbuiltin_la_OBJECTS): onnx/onnx.pb-c.h
# What a program linking the built-ins adds to its LDADD.
BUILTIN_BE_LIBS = broker/backends/libfbuiltin.la
