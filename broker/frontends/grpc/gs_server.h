/* SPDX-License-Identifier: MIT */
/*
 * gs_server.h - ferryd's KServe v2 / Triton gRPC front end
 * (inference.GRPCInferenceService) on gRPC's core C API.  Prefix gs_.
 *
 * THREADS
 *
 * gs_start() and gs_stop() are called by the main thread.  The server runs
 * `threads` threads, each draining its own completion queue; a ModelInfer
 * request is decoded on one of them, submitted to the model's scheduler
 * queue (the same queues as shared-memory sessions), and answered from the
 * thread that completes it (done()).  Repository load / unload run on a
 * server thread and block it while a model drains.
 */
#ifndef FERRY_GS_SERVER_H
#define FERRY_GS_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct gs_options {
	const char *address;            /* "127.0.0.1" (loopback) by default */
	int port;                       /* 0 = no server */
	int threads;                    /* completion-queue threads; 0 = 4 */
	int64_t max_message_bytes;      /* larger messages: RESOURCE_EXHAUSTED */
	bool allow_client_shm;          /* system shared memory extension */
	const char *tls_cert;           /* PEM server certificate chain: TLS on */
	const char *tls_key;            /* PEM private key of tls_cert */
	const char *tls_ca;             /* PEM CA: clients must present a
					 * certificate it signed (mutual TLS) */
};

/* Bind and start serving.  0, or a negative ferry code (FERRY_EBUSY when
 * the address cannot be bound) after logging why. */
int gs_start(const struct gs_options *o);

/* Stop accepting calls, cancel open ones, wait for requests still in the
 * scheduler to complete, join the threads.  On the loop thread, before
 * models_stop_all(): it runs inline models meanwhile, and calls models_stop_all()
 * itself when requests are still queued after 200 ms. */
void gs_stop(void);

#endif
