# broker/frontends/http/: the KServe v2 HTTP/REST front end on
# libmicrohttpd (a convenience library linked into ferryd; the fuzz
# regression test links it too).  It answers the admin calls through the
# gRPC front end's handlers (libfgrpc.la) and reads JSON with json-c.
noinst_LTLIBRARIES += broker/frontends/http/libfhttp.la
broker_frontends_http_libfhttp_la_SOURCES = \
	broker/frontends/http/hs_server.c broker/frontends/http/hs_server.h \
	broker/frontends/http/hs_int.h broker/frontends/http/hs_admin.c \
	broker/frontends/http/hs_submit.c \
	broker/frontends/http/hs_infer.c broker/frontends/http/hs_infer.h \
	broker/frontends/http/hs_json.c broker/frontends/http/hs_json.h
broker_frontends_http_libfhttp_la_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JSONC_CFLAGS) \
	$(ZLIB_CFLAGS) $(GNUTLS_CFLAGS) $(PROTOBUF_C_CFLAGS)
broker_frontends_http_libfhttp_la_LIBADD = broker/frontends/grpc/libfgrpc.la $(MHD_LIBS) \
	$(JSONC_LIBS) $(ZLIB_LIBS) $(GNUTLS_LIBS) $(PROTOBUF_C_LIBS)
$(broker_frontends_http_libfhttp_la_OBJECTS): proto/kserve.pb-c.h
