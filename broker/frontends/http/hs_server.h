/* SPDX-License-Identifier: MIT */
/*
 * hs_server.h - ferryd's KServe v2 HTTP/REST front end, with the Triton
 * extensions its clients call (binary tensor data, shared memory,
 * statistics, model repository, logging), on libmicrohttpd.  Prefix hs_.
 *
 * THREADS
 *
 * hs_start() and hs_stop() are called by the main thread.  libmicrohttpd
 * runs `threads` threads, each with its own epoll set over its share of
 * the connections.  A request is read and parsed on its connection's
 * thread; an inference request is submitted to the model's scheduler
 * queue (the queues of shared-memory sessions and gRPC), and an inline
 * model (identity, add_sub, ...) is run at once on that same thread.  A
 * request that waits in a queue suspends its connection, and done(), on
 * whichever thread completed it, builds the response and resumes it.
 */
#ifndef FERRY_HS_SERVER_H
#define FERRY_HS_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct hs_options {
	const char *address;            /* "127.0.0.1" (loopback) by default */
	int port;                       /* 0 = no server */
	int threads;                    /* connection threads; 0 = 2 */
	uint64_t max_body_bytes;        /* larger request bodies: 413 */
	bool allow_client_shm;          /* system shared memory extension */
	const char *tls_cert;           /* PEM server certificate chain: TLS on */
	const char *tls_key;            /* PEM private key of tls_cert */
	const char *tls_ca;             /* PEM CA: clients must present a
					 * certificate it signed (mutual TLS) */
	int max_connections_per_ip;     /* 0: no limit (of 1024 in all) */
};

/* ferryd's default for max_connections_per_ip: one client address can
 * hold a quarter of the connections, not all of them. */
#define HS_MAX_CONNECTIONS_PER_IP 256

/* Bind and start serving.  0, or a negative ferry code (FERRY_EBUSY when
 * the address cannot be bound, FERRY_CONFIG for bad TLS files) after
 * logging why. */
int hs_start(const struct hs_options *o);

/* Stop accepting, let requests in the scheduler complete (running inline
 * models meanwhile, as gs_stop does), close every connection, join the
 * threads.  On the loop thread, before gs_stop(). */
void hs_stop(void);

#endif
