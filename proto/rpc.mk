# proto/rpc.mk: one unary gRPC call (rpc.c), a convenience library shared
# by libferry's remote transport and the benchmarks' raw KServe calls
# (bench/grpc_util.c); private inside libferry, which exports only ferry_*.
noinst_LTLIBRARIES += proto/libfrpc.la
proto_libfrpc_la_SOURCES = proto/rpc.c proto/rpc.h
proto_libfrpc_la_CFLAGS = $(AM_CFLAGS) $(GRPC_CFLAGS) $(PROTOBUF_C_CFLAGS)
proto_libfrpc_la_LIBADD = $(GRPC_LIBS) $(PROTOBUF_C_LIBS)
