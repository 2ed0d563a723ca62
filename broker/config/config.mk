# broker/config/: the protobuf text-format parser, Triton's config.pbtxt
# reader and the model repository scan.  A convenience library that
# ferryd and the tests link.
noinst_LTLIBRARIES += broker/config/libfconfig.la
broker_config_libfconfig_la_SOURCES = \
	broker/config/pbtxt.h \
	broker/config/pbtxt.c \
	broker/config/modelcfg.h \
	broker/config/modelcfg.c \
	broker/config/repo.h \
	broker/config/repo.c
