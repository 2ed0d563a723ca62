# onnx part of broker/ (included by the top Makefile.am)
#
# broker/onnx/libfonnx.la: the native ONNX executor on the CPU (OpenBLAS).
# The ONNX schema is the system's onnx.proto ($(ONNX_PROTO_DIR), Debian's
# libonnx-dev); protoc-c turns it into onnx/onnx.pb-c.[ch] in the BUILD
# directory at build time, so VPATH builds (make distcheck) work and no
# generated file is ever committed or distributed.
ONNX_PB_C = onnx/onnx.pb-c.c onnx/onnx.pb-c.h
BUILT_SOURCES += $(ONNX_PB_C)
CLEANFILES += $(ONNX_PB_C)

onnx/onnx.pb-c.c: $(ONNX_PROTO_DIR)/onnx/onnx.proto
	$(AM_V_GEN)$(MKDIR_P) onnx && \
	$(PROTOC_C) --proto_path=$(ONNX_PROTO_DIR) --c_out=. onnx/onnx.proto
# one protoc-c run writes both files; the header follows the source
onnx/onnx.pb-c.h: onnx/onnx.pb-c.c
	@test -f $@ || { rm -f onnx/onnx.pb-c.c; \
		$(MAKE) $(AM_MAKEFLAGS) onnx/onnx.pb-c.c; }

noinst_LTLIBRARIES += broker/onnx/libfonnx.la
broker_onnx_libfonnx_la_SOURCES = \
	broker/onnx/onnx_exec.h \
	broker/onnx/onnx_int.h \
	broker/onnx/onnx_load.c \
	broker/onnx/onnx_run.c
nodist_broker_onnx_libfonnx_la_SOURCES = $(ONNX_PB_C)
# -ftree-vectorize: the element-wise kernels are plain loops; at -O2 GCC 12
# would leave them scalar (an explicit -f flag wins over the -O level).
broker_onnx_libfonnx_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) \
	$(OPENBLAS_CFLAGS) -ftree-vectorize
broker_onnx_libfonnx_la_LIBADD = $(PROTOBUF_C_LIBS) $(OPENBLAS_LIBS) -lm
# BUILT_SOURCES covers `make all` and `make check`; this covers a build of
# the library alone (make broker/onnx/libfonnx.la) in a fresh tree.
$(broker_onnx_libfonnx_la_OBJECTS): onnx/onnx.pb-c.h
