# examples/: client programs and the example model repository.
noinst_PROGRAMS += examples/simple_client
examples_simple_client_SOURCES = examples/simple_client.c
examples_simple_client_LDADD = libclient/libferry.la
