/* SPDX-License-Identifier: MIT */
/*
 * gs_int.h - what the files of the gRPC front end share and nobody else
 * sees.  Prefix gs__ (module-private).
 *
 *   gs_server.c   the call machinery: completion-queue threads, the call
 *                 state machine, the method table and its dispatch,
 *                 finishing a call with a status, TLS, start and stop
 *   gs_admin.c    health, metadata, config, statistics and repository RPCs
 *                 (rendered from one snapshot of the model table)
 *   gs_shm_rpc.c  the shared-memory RPCs over the region table (gs_shm.c)
 *   gs_submit.c   ModelInfer and ModelStreamInfer: submit to the scheduler,
 *                 answer from done() (request conversion: gs_infer.c)
 *
 * HANDLERS
 *
 * One table (gs__methods, gs_server.c) names every method with its request
 * and reply message types and its handler.  The machinery decodes the
 * request, allocates and initialises the reply, calls the handler, then
 * packs the reply (or sends the error), frees the request and everything
 * the handler allocated from the context, and finishes the call.  A
 * handler only turns a decoded request into a reply:
 *
 *   0          reply filled; it may point into memory from gs__alloc() and
 *              into anything gs__defer() keeps alive until it is packed
 *   < 0        a ferry code, with the message in x->err
 *   GS_LATER   the handler took the call and the request message (it owns
 *              both now) and finishes the call itself (ModelInfer)
 *
 * Every error status carries the ferry code in the trailing metadata
 * `ferry-code` (RPC_FERRY_CODE_KEY of proto/rpc.h, the client side's
 * reader; decimal, e.g. "-2004"), so a client sees the code the
 * shared-memory transport gives for the same mistake.
 */
#ifndef FERRY_GS_INT_H
#define FERRY_GS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "broker/frontends/grpc/gs_server.h"

#define GS_LATER 1

enum gs__tag_kind { GS_T_NEW, GS_T_RECV, GS_T_FINISH, GS_T_SRECV, GS_T_SSEND, GS_T_SHUTDOWN };

struct gs__call;
struct gs__tag {
	struct gs__call *c;
	enum gs__tag_kind kind;
};

struct gs__thread {
	pthread_t th;
	grpc_completion_queue *cq;
	int index;
};

struct gs__out {                        /* a queued stream response */
	grpc_byte_buffer *bb;
	struct gs__out *next;
};

struct gs__method;

/*
 * One call, from grpc_server_request_call to its FINISH event.  The thread
 * that owns the event touches it; streams share it between the server
 * thread and done() callbacks under `lock`.
 */
struct gs__call {
	struct gs__tag t_new, t_recv, t_finish, t_ssend;
	struct gs__thread *th;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md_in;
	grpc_byte_buffer *recv_buf;
	grpc_byte_buffer *send_buf;
	grpc_slice status_details;
	bool has_details;
	grpc_metadata trailer;          /* ferry-code, on an error status */
	bool has_trailer;
	int cancelled;
	const struct gs__method *method;        /* NULL until known */
	void *owner;                    /* its connection's fair-share key
					 * (gs_submit.c); NULL until asked */
	uint64_t guard;                 /* gs_guard_call_start's handle; 0: none */
	/* Streams only; lock guards the rest. */
	pthread_mutex_t lock;
	struct gs__out *q_head, *q_tail;
	bool sending, read_done, finishing;
	int pending;                    /* requests in the scheduler */
};

/* What a handler gets besides its request and reply (see HANDLERS). */
struct gs__ctx {
	struct gs__call *c;
	bool stream;                    /* a message of ModelStreamInfer */
	char err[1400];                 /* the message of a < 0 return */
	struct gs__blk *own;            /* released after the reply is packed */
};

typedef int (*gs__handler)(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply);

struct gs__method {
	const char *path;               /* "/inference.GRPCInferenceService/Name" */
	const ProtobufCMessageDescriptor *req;
	const ProtobufCMessageDescriptor *reply;        /* NULL: GS_LATER only */
	gs__handler handle;
	bool stream;                    /* bidirectional stream of requests */
};

/* The method's short name ("ModelInfer") for logs. */
const char *gs__method_name(const struct gs__method *m);

/*
 * gs__alloc - n zeroed elements of size bytes that live until the reply is
 * packed (the context owns them).  NULL when out of memory.
 */
void *gs__alloc(struct gs__ctx *x, size_t n, size_t size);
/* Run fn(arg) once the reply is packed (or the call failed).  0, or
 * FERRY_ENOMEM after running fn(arg) at once. */
int gs__defer(struct gs__ctx *x, void (*fn)(void *), void *arg);
/* Fill x->err; returns code (for `return gs__fail(...)`). */
int gs__fail(struct gs__ctx *x, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * gs__finish - the last batch of a call: status (from the ferry code ferr:
 * 0 is OK) with msg, the ferry-code trailer on an error, and resp (taken;
 * sent only when ferr is 0); send_md when the initial metadata was not
 * sent yet.  The FINISH event frees the call.
 */
void gs__finish(struct gs__call *c, int ferr, const char *msg, grpc_byte_buffer *resp,
		bool send_md);
/* A byte buffer that owns buf (malloc'd); NULL when out of memory. */
grpc_byte_buffer *gs__bb_take(uint8_t *buf, size_t len);
/* Live calls: +1 / -1 (gs_stop waits for 0). */
void gs__live(long d);
/* True once gs_stop() began (ServerReady answers false). */
bool gs__stopping(void);

/* Parse a KServe version string: "" = latest (-1), digits = that
 * version, anything else -2. */
int64_t gs__version(const char *v);
/* The version a request names (gs__version), or FERRY_EINVAL with
 * x->err when it is no version. */
int gs__model_version(struct gs__ctx *x, const char *name, const char *version, int64_t *v);
/*
 * gs__unservable - Triton's words for a model version that cannot serve
 * a request: no such version (found false; other: the name has some
 * version), or not ready (with its reason).  Returns FERRY_ENOENT or
 * FERRY_UNAVAILABLE with msg filled.
 */
int gs__unservable(const char *name, int64_t version, bool found, bool other,
		   const char *reason, char *msg, size_t msglen);

/* Handlers (the table in gs_server.c names them). */
int gs__server_live(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__server_ready(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__model_ready(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__server_meta(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__model_meta(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__model_config(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__stats(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__repo_index(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__repo_load(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__repo_unload(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__shm_status(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__shm_register(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__shm_unregister(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__cuda_status(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__cuda_register(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
int gs__cuda_unregister(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);
/* ModelInfer, and each message of ModelStreamInfer (x->stream). */
int gs__infer(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *r);

/* Streams (gs_server.c): queue one response message (bb NULL: none, only
 * a request done) and send it when the previous one left. */
void gs__stream_push(struct gs__call *c, grpc_byte_buffer *bb);
/* A ModelStreamInferResponse: field 1 (error_message) or 2 (the packed
 * infer_response). */
grpc_byte_buffer *gs__stream_msg(int field, const uint8_t *body, size_t len);

#endif
