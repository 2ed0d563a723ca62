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

#include <pthread.h>
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
	/* gRPC core channel arguments "NAME=VALUE" (ferryd --grpc-arg, each
	 * checked by gs_arg_check): they replace the hardening defaults
	 * gs_server.c sets under the same name, or add to them. */
	const char *const *args;
	int nargs;
	/* The connection guard of a plaintext port (gs_guard.h): connections
	 * at once (0: GS_MAX_CONNECTIONS), per client address (0: no limit),
	 * cancelled calls a second on one connection (0: GS_MAX_CANCELS). */
	int max_connections;
	int max_connections_per_ip;
	int max_cancels_per_s;
};

#define GS_MAX_CONNECTIONS 1024
#define GS_MAX_CANCELS 1000

/* The most --grpc-arg a server takes. */
#define GS_MAX_ARGS 32

/*
 * gs_arg_check - is s "NAME=VALUE" with NAME a gRPC core channel argument
 * ("grpc." and letters, digits, '.' and '_') and VALUE an integer (or,
 * for the few string arguments, any text)?  0, or FERRY_EINVAL with err
 * saying why.
 */
int gs_arg_check(const char *s, char *err, size_t errlen);

struct models_entry;
struct ProtobufCMessage;

/*
 * gs_request_model - the READY version `version` ("" or NULL: the latest)
 * of model `name` that an inference request names.  The caller holds
 * models_rdlock() from this lookup to its last use of the record's sm.
 * NULL, with *code (FERRY_EINVAL for a bad version string, FERRY_ENOENT,
 * FERRY_UNAVAILABLE) and err in Triton's words, when it cannot serve.
 */
struct models_entry *gs_request_model(const char *name, const char *version, int *code,
				      char *err, size_t errlen);

/*
 * gs_call_local - run the handler of unary method `method` (its short
 * name: "ModelConfig") on req, a message of that method's request type,
 * as a call from the network would be run, and hand the reply to
 * emit(arg, reply), which renders it; the reply and everything it points
 * to are freed when emit returns.  For the other front ends (HTTP): every
 * protocol answers from the same handlers and the same snapshot.  Needs
 * no running gRPC server.  Returns the handler's code (err filled), or
 * emit's; FERRY_ENOTSUP for no such unary method.  Not for ModelInfer.
 */
int gs_call_local(const char *method, const struct ProtobufCMessage *req,
		  int (*emit)(void *arg, const struct ProtobufCMessage *reply), void *arg,
		  char *err, size_t errlen);

/* Bind and start serving.  0, or a negative ferry code (FERRY_EBUSY when
 * the address cannot be bound) after logging why. */
int gs_start(const struct gs_options *o);

/* Stop accepting calls, cancel open ones, wait for requests still in the
 * scheduler to complete, join the threads.  On the loop thread, before
 * models_stop_all(): it runs inline models meanwhile, and calls models_stop_all()
 * itself when requests are still queued after 200 ms. */
void gs_stop(void);

/*
 * gs_drain - at shutdown, on the loop thread: wait until *count (guarded
 * by lock; whoever brings it to 0 broadcasts cond) is 0, running inline
 * models meanwhile, and after 200 ms stop every model (models_stop_all),
 * which completes what is queued without waiting out batching delays.
 * For the front ends' requests still in the scheduler (gRPC, HTTP); who
 * names the front end in the log.
 */
void gs_drain(pthread_mutex_t *lock, pthread_cond_t *cond, const long *count, const char *who);

#endif
