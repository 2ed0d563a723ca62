# config part of broker/ (included by the top Makefile.am): the protobuf
# text-format parser, Triton's config.pbtxt reader and the model repository
# scan.  A convenience library that ferryd and the tests link.
noinst_LTLIBRARIES += broker/libfconfig.la
broker_libfconfig_la_SOURCES = \
	broker/pbtxt.h \
	broker/pbtxt.c \
	broker/modelcfg.h \
	broker/modelcfg.c \
	broker/repo_scan.h \
	broker/repo_scan.c
