/* SPDX-License-Identifier: MIT */
/*
 * gs_server.c - the KServe v2 gRPC front end on gRPC's core C API: the
 * call machinery, the method table and its dispatch, threads, TLS, start
 * and stop.  The handlers live in gs_admin.c, gs_shm_rpc.c and
 * gs_submit.c (see gs_int.h).
 *
 * Each server thread owns one completion queue and keeps GS_PENDING calls
 * requested on it (grpc_server_request_call); a call's later events come
 * back on the same queue.  A call is a small state machine:
 *
 *   unary:  NEW -> batch{RECV_MESSAGE} -> RECV: decode, handle
 *           -> batch{SEND_INITIAL_METADATA, SEND_MESSAGE, SEND_STATUS,
 *                    RECV_CLOSE_ON_SERVER} -> FINISH: free
 *           ModelInfer sends the last batch from done(), on whichever
 *           thread completed the request.
 *   stream: NEW -> batch{SEND_INITIAL_METADATA, RECV_MESSAGE} -> SRECV:
 *           submit, post the next RECV_MESSAGE ... until the client
 *           half-closes; responses are sent one at a time (SSEND) from a
 *           queue; when reading is over and nothing is in flight or
 *           queued: batch{SEND_STATUS, RECV_CLOSE_ON_SERVER} -> FINISH.
 *
 * Locks: gs__s.lock guards the live-call count (shutdown waits on it); a
 * stream's own mutex guards its queue and counters.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include <ferry/errors.h>

#include "config.h"
#include "broker/frontends/grpc/gs_int.h"
#include "broker/frontends/grpc/gs_guard.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "broker/core/log.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"
#include "proto/kserve.pb-c.h"
#include "proto/rpc.h"

#define GS_PENDING 8            /* calls requested per thread */
#define GS_MAX_THREADS 64

#define GS_PATH(name) "/inference.GRPCInferenceService/" name
#define GS_PATH_PREFIX_LEN (sizeof(GS_PATH("")) - 1)

/*
 * The service: every method, its request and reply messages and its
 * handler.  Dispatch, names in logs and decoding all come from here.
 */
static const struct gs__method gs__methods[] = {
	{ GS_PATH("ServerLive"), &inference__server_live_request__descriptor,
	  &inference__server_live_response__descriptor, gs__server_live, false },
	{ GS_PATH("ServerReady"), &inference__server_ready_request__descriptor,
	  &inference__server_ready_response__descriptor, gs__server_ready, false },
	{ GS_PATH("ModelReady"), &inference__model_ready_request__descriptor,
	  &inference__model_ready_response__descriptor, gs__model_ready, false },
	{ GS_PATH("ServerMetadata"), &inference__server_metadata_request__descriptor,
	  &inference__server_metadata_response__descriptor, gs__server_meta, false },
	{ GS_PATH("ModelMetadata"), &inference__model_metadata_request__descriptor,
	  &inference__model_metadata_response__descriptor, gs__model_meta, false },
	/* The reply is packed by gs_infer_response() when the request is done. */
	{ GS_PATH("ModelInfer"), &inference__model_infer_request__descriptor,
	  NULL, gs__infer, false },
	{ GS_PATH("ModelStreamInfer"), &inference__model_infer_request__descriptor,
	  NULL, gs__infer, true },
	{ GS_PATH("ModelConfig"), &inference__model_config_request__descriptor,
	  &inference__model_config_response__descriptor, gs__model_config, false },
	{ GS_PATH("ModelStatistics"), &inference__model_statistics_request__descriptor,
	  &inference__model_statistics_response__descriptor, gs__stats, false },
	{ GS_PATH("RepositoryIndex"), &inference__repository_index_request__descriptor,
	  &inference__repository_index_response__descriptor, gs__repo_index, false },
	{ GS_PATH("RepositoryModelLoad"), &inference__repository_model_load_request__descriptor,
	  &inference__repository_model_load_response__descriptor, gs__repo_load, false },
	{ GS_PATH("RepositoryModelUnload"), &inference__repository_model_unload_request__descriptor,
	  &inference__repository_model_unload_response__descriptor, gs__repo_unload, false },
	{ GS_PATH("SystemSharedMemoryStatus"),
	  &inference__system_shared_memory_status_request__descriptor,
	  &inference__system_shared_memory_status_response__descriptor, gs__shm_status, false },
	{ GS_PATH("SystemSharedMemoryRegister"),
	  &inference__system_shared_memory_register_request__descriptor,
	  &inference__system_shared_memory_register_response__descriptor, gs__shm_register, false },
	{ GS_PATH("SystemSharedMemoryUnregister"),
	  &inference__system_shared_memory_unregister_request__descriptor,
	  &inference__system_shared_memory_unregister_response__descriptor, gs__shm_unregister,
	  false },
	{ GS_PATH("CudaSharedMemoryStatus"),
	  &inference__cuda_shared_memory_status_request__descriptor,
	  &inference__cuda_shared_memory_status_response__descriptor, gs__cuda_status, false },
	{ GS_PATH("CudaSharedMemoryRegister"),
	  &inference__cuda_shared_memory_register_request__descriptor,
	  &inference__cuda_shared_memory_register_response__descriptor, gs__cuda_register, false },
	{ GS_PATH("CudaSharedMemoryUnregister"),
	  &inference__cuda_shared_memory_unregister_request__descriptor,
	  &inference__cuda_shared_memory_unregister_response__descriptor, gs__cuda_unregister,
	  false },
};

static struct {
	grpc_server *server;
	struct gs__thread threads[GS_MAX_THREADS];
	int nthreads;
	grpc_completion_queue *shutdown_cq;
	struct gs__tag shutdown_tag;
	_Atomic bool stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long live;                      /* gs__call structs alive; lock */
	bool running;
} gs__s = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ---------------------------------------------------------------------- */
/* A handler's context: memory that lives until the reply is packed        */

struct gs__blk {
	struct gs__blk *next;
	void (*fn)(void *);             /* a deferred call, or NULL */
	void *arg;
	max_align_t data[];             /* gs__alloc's memory */
};

void *gs__alloc(struct gs__ctx *x, size_t n, size_t size)
{
	if (size && n > (SIZE_MAX - sizeof(struct gs__blk)) / size)
		return NULL;
	struct gs__blk *b = calloc(1, sizeof(*b) + n * size);
	if (!b)
		return NULL;
	b->next = x->own;
	x->own = b;
	return b->data;
}

int gs__defer(struct gs__ctx *x, void (*fn)(void *), void *arg)
{
	struct gs__blk *b = calloc(1, sizeof(*b));
	if (!b) {
		fn(arg);
		return FERRY_ENOMEM;
	}
	b->fn = fn;
	b->arg = arg;
	b->next = x->own;
	x->own = b;
	return 0;
}

/* Newest first: what was deferred last may point into older memory. */
static void gs__release(struct gs__ctx *x)
{
	while (x->own) {
		struct gs__blk *b = x->own;
		x->own = b->next;
		if (b->fn)
			b->fn(b->arg);
		free(b);
	}
}

int gs__fail(struct gs__ctx *x, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
	return code;
}

const char *gs__method_name(const struct gs__method *m)
{
	return m ? m->path + GS_PATH_PREFIX_LEN : "?";
}

bool gs__stopping(void)
{
	return atomic_load(&gs__s.stopping);
}

/* ---------------------------------------------------------------------- */
/* Calls                                                                   */

static grpc_status_code gs__code(int ferr)
{
	switch (ferr) {
	case 0: return GRPC_STATUS_OK;
	case FERRY_EINVAL: case FERRY_DTYPE: case FERRY_SHAPE: case FERRY_E2BIG:
	case FERRY_EPROTO: case FERRY_EBADMSG: case FERRY_CONFIG:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case FERRY_ENOENT: return GRPC_STATUS_NOT_FOUND;
	case FERRY_UNAVAILABLE: case FERRY_EPIPE: case FERRY_ECONNREFUSED:
		return GRPC_STATUS_UNAVAILABLE;
	case FERRY_ENOSPC: case FERRY_ENOMEM: case FERRY_EAGAIN:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case FERRY_ETIMEDOUT: case FERRY_REJECTED: return GRPC_STATUS_DEADLINE_EXCEEDED;
	case FERRY_EPERM: return GRPC_STATUS_PERMISSION_DENIED;
	case FERRY_EBUSY: return GRPC_STATUS_ALREADY_EXISTS;
	case FERRY_ENOTSUP: return GRPC_STATUS_UNIMPLEMENTED;
	case FERRY_ECANCELED: return GRPC_STATUS_CANCELLED;
	default: return GRPC_STATUS_INTERNAL;
	}
}

void gs__live(long d)
{
	pthread_mutex_lock(&gs__s.lock);
	gs__s.live += d;
	if (gs__s.live == 0)
		pthread_cond_broadcast(&gs__s.cond);
	pthread_mutex_unlock(&gs__s.lock);
}

static void gs__call_free(struct gs__call *c)
{
	/* A call that never got its finishing batch counts as cancelled. */
	gs_guard_call_end(c->guard, c->cancelled || !c->has_details);
	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md_in);
	if (c->recv_buf)
		grpc_byte_buffer_destroy(c->recv_buf);
	if (c->send_buf)
		grpc_byte_buffer_destroy(c->send_buf);
	if (c->has_details)
		grpc_slice_unref(c->status_details);
	if (c->has_trailer)
		grpc_slice_unref(c->trailer.value);
	while (c->q_head) {
		struct gs__out *n = c->q_head->next;
		grpc_byte_buffer_destroy(c->q_head->bb);
		free(c->q_head);
		c->q_head = n;
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
	gs__live(-1);
}

/* Ask for one more incoming call on th's queue. */
static void gs__request(struct gs__thread *th)
{
	if (atomic_load(&gs__s.stopping))
		return;
	struct gs__call *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("gRPC: out of memory; one fewer call slot on thread %d", th->index);
		return;
	}
	c->th = th;
	c->t_new = (struct gs__tag){ c, GS_T_NEW };
	c->t_recv = (struct gs__tag){ c, GS_T_RECV };
	c->t_finish = (struct gs__tag){ c, GS_T_FINISH };
	c->t_ssend = (struct gs__tag){ c, GS_T_SSEND };
	pthread_mutex_init(&c->lock, NULL);
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md_in);
	gs__live(1);
	grpc_call_error e = grpc_server_request_call(gs__s.server, &c->call, &c->details,
						     &c->md_in, th->cq, th->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		c->call = NULL;
		gs__call_free(c);
	}
}

grpc_byte_buffer *gs__bb_take(uint8_t *buf, size_t len)
{
	grpc_slice s = grpc_slice_new(buf, len, free);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* Pack a protobuf-c message into a byte buffer (NULL: out of memory). */
static grpc_byte_buffer *gs__bb_pack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	protobuf_c_message_pack(m, buf);
	return gs__bb_take(buf, len);
}

void gs__finish(struct gs__call *c, int ferr, const char *msg, grpc_byte_buffer *resp,
		bool send_md)
{
	grpc_op ops[4];
	int n = 0;

	if (ferr)
		log_debug("gRPC %s: %s (%s)", gs__method_name(c->method), msg ? msg : "",
			  ferry_errname(ferr));
	memset(ops, 0, sizeof(ops));
	if (send_md) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	if (resp && ferr == 0) {
		c->send_buf = resp;
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = resp;
		n++;
	} else if (resp) {
		grpc_byte_buffer_destroy(resp);
	}
	c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
	c->has_details = true;
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = gs__code(ferr);
	ops[n].data.send_status_from_server.status_details = &c->status_details;
	if (ferr) {
		/* The ferry code beside the gRPC status: several codes share
		 * one status (FERRY_DTYPE, FERRY_SHAPE and FERRY_EINVAL are
		 * all INVALID_ARGUMENT), and a client should see the code the
		 * shared-memory transport gives for the same mistake. */
		char v[24];
		snprintf(v, sizeof(v), "%d", ferr);
		memset(&c->trailer, 0, sizeof(c->trailer));
		c->trailer.key = grpc_slice_from_static_string(RPC_FERRY_CODE_KEY);
		c->trailer.value = grpc_slice_from_copied_string(v);
		c->has_trailer = true;
		ops[n].data.send_status_from_server.trailing_metadata_count = 1;
		ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
	}
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
	n++;
	grpc_call_error e = grpc_call_start_batch(c->call, ops, (size_t)n, &c->t_finish, NULL);
	if (e != GRPC_CALL_OK) {
		log_warn("gRPC: cannot finish a call (%d)", (int)e);
		gs__call_free(c);
	}
}

/* Decode the message in *bb (taken and freed) with desc: NULL when it is
 * missing or malformed. */
static ProtobufCMessage *gs__decode(grpc_byte_buffer **bb, const ProtobufCMessageDescriptor *desc)
{
	grpc_byte_buffer_reader rd;
	ProtobufCMessage *m = NULL;

	if (!*bb)
		return NULL;
	if (grpc_byte_buffer_reader_init(&rd, *bb)) {
		grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s),
					      GRPC_SLICE_START_PTR(s));
		grpc_slice_unref(s);
	}
	grpc_byte_buffer_destroy(*bb);
	*bb = NULL;
	return m;
}

/*
 * Decode the call's message and run its handler (see gs_int.h, HANDLERS).
 * Returns GS_LATER when the handler took the call and the message; else
 * 0 with *reply packed into *bb, or a ferry code with x->err.
 */
static int gs__handle(struct gs__call *c, struct gs__ctx *x, grpc_byte_buffer **bb)
{
	const struct gs__method *m = c->method;
	ProtobufCMessage *req = gs__decode(&c->recv_buf, m->req);
	ProtobufCMessage *reply = NULL;
	int ret;

	*bb = NULL;
	if (!req)
		return gs__fail(x, FERRY_EINVAL, "malformed %s", m->req->short_name);
	if (m->reply && !(reply = gs__alloc(x, 1, m->reply->sizeof_message))) {
		ret = gs__fail(x, FERRY_ENOMEM, "out of memory");
	} else {
		if (reply)
			m->reply->message_init(reply);
		ret = m->handle(x, req, reply);
	}
	if (ret == GS_LATER)
		return ret;
	if (ret == 0 && !reply)
		ret = gs__fail(x, FERRY_EPROTO, "%s answered nothing", gs__method_name(m));
	if (ret == 0 && !(*bb = gs__bb_pack(reply)))
		ret = gs__fail(x, FERRY_ENOMEM, "out of memory");
	protobuf_c_message_free_unpacked(req, NULL);
	return ret;
}

int gs_call_local(const char *method, const ProtobufCMessage *req,
		  int (*emit)(void *arg, const ProtobufCMessage *reply), void *arg,
		  char *err, size_t errlen)
{
	const struct gs__method *m = NULL;
	for (size_t i = 0; i < sizeof(gs__methods) / sizeof(gs__methods[0]) && !m; i++)
		if (!strcmp(gs__method_name(&gs__methods[i]), method))
			m = &gs__methods[i];
	if (!m || !m->reply || m->stream || req->descriptor != m->req) {
		snprintf(err, errlen, "no unary method %s for this request", method);
		return FERRY_ENOTSUP;
	}
	struct gs__ctx x = { .c = NULL };
	ProtobufCMessage *reply = gs__alloc(&x, 1, m->reply->sizeof_message);
	int ret;
	if (!reply) {
		ret = gs__fail(&x, FERRY_ENOMEM, "out of memory");
	} else {
		m->reply->message_init(reply);
		/* Handlers only read their request. */
		ret = m->handle(&x, (ProtobufCMessage *)req, reply);
		if (ret == 0)
			ret = emit(arg, reply);
	}
	if (ret)
		snprintf(err, errlen, "%s", x.err[0] ? x.err : ferry_strerror(ret));
	gs__release(&x);
	return ret;
}

static void gs__unary(struct gs__call *c)
{
	struct gs__ctx x = { .c = c };
	grpc_byte_buffer *bb;
	int ret = gs__handle(c, &x, &bb);

	/* After GS_LATER the call may be gone already (done() ran). */
	gs__release(&x);
	if (ret != GS_LATER)
		gs__finish(c, ret, ret ? x.err : NULL, bb, true);
}

/* ---------------------------------------------------------------------- */
/* Streams                                                                 */

grpc_byte_buffer *gs__stream_msg(int field, const uint8_t *body, size_t len)
{
	uint8_t *buf = malloc(len + 11);
	if (!buf)
		return NULL;
	size_t o = 0;
	buf[o++] = (uint8_t)(field << 3 | 2);
	uint64_t v = len;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		buf[o++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	if (len)
		memcpy(buf + o, body, len);
	return gs__bb_take(buf, o + len);
}

/* Lock held.  Start sending the head of the queue, or finish when there
 * is nothing left to do. */
static void gs__stream_kick_locked(struct gs__call *c, bool *finish)
{
	*finish = false;
	if (c->sending || c->finishing)
		return;
	if (c->q_head) {
		grpc_op op;
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_SEND_MESSAGE;
		op.data.send_message.send_message = c->q_head->bb;
		c->sending = true;
		if (grpc_call_start_batch(c->call, &op, 1, &c->t_ssend, NULL) != GRPC_CALL_OK) {
			c->sending = false;
			log_warn("gRPC stream: cannot send a response");
		}
		return;
	}
	if (c->read_done && c->pending == 0) {
		c->finishing = true;
		*finish = true;
	}
}

static void gs__stream_finish(struct gs__call *c)
{
	gs__finish(c, 0, NULL, NULL, false);
}

void gs__stream_push(struct gs__call *c, grpc_byte_buffer *bb)
{
	bool finish;
	pthread_mutex_lock(&c->lock);
	c->pending--;
	if (bb) {
		struct gs__out *o = calloc(1, sizeof(*o));
		if (o) {
			o->bb = bb;
			if (c->q_tail)
				c->q_tail->next = o;
			else
				c->q_head = o;
			c->q_tail = o;
		} else {
			grpc_byte_buffer_destroy(bb);
		}
	}
	gs__stream_kick_locked(c, &finish);
	pthread_mutex_unlock(&c->lock);
	if (finish)
		gs__stream_finish(c);
}

/* Reading is over (the client half-closed, or the call broke). */
static void gs__stream_read_done(struct gs__call *c)
{
	bool finish;
	pthread_mutex_lock(&c->lock);
	c->read_done = true;
	gs__stream_kick_locked(c, &finish);
	pthread_mutex_unlock(&c->lock);
	if (finish)
		gs__stream_finish(c);
}

static void gs__stream_recv_next(struct gs__call *c, bool send_md)
{
	grpc_op ops[2];
	int n = 0;
	memset(ops, 0, sizeof(ops));
	if (send_md)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &c->recv_buf;
	n++;
	if (grpc_call_start_batch(c->call, ops, (size_t)n, &c->t_recv, NULL) != GRPC_CALL_OK)
		gs__stream_read_done(c);
}

/* A stream received a message (or its end). */
static void gs__stream_recv(struct gs__call *c, bool ok)
{
	if (!ok || !c->recv_buf) {
		gs__stream_read_done(c);
		return;
	}
	pthread_mutex_lock(&c->lock);
	c->pending++;
	pthread_mutex_unlock(&c->lock);
	struct gs__ctx x = { .c = c, .stream = true };
	grpc_byte_buffer *bb;
	int ret = gs__handle(c, &x, &bb);
	gs__release(&x);
	if (ret != GS_LATER) {
		/* Errors of one request travel in the stream; it goes on. */
		if (bb)
			grpc_byte_buffer_destroy(bb);
		gs__stream_push(c, gs__stream_msg(1, (const uint8_t *)x.err, strlen(x.err)));
	}
	gs__stream_recv_next(c, false);
}

static void gs__stream_sent(struct gs__call *c)
{
	bool finish;
	pthread_mutex_lock(&c->lock);
	struct gs__out *o = c->q_head;
	c->q_head = o->next;
	if (!c->q_head)
		c->q_tail = NULL;
	c->sending = false;
	gs__stream_kick_locked(c, &finish);
	pthread_mutex_unlock(&c->lock);
	grpc_byte_buffer_destroy(o->bb);
	free(o);
	if (finish)
		gs__stream_finish(c);
}

/* ---------------------------------------------------------------------- */
/* Dispatch                                                                */

static const struct gs__method *gs__lookup(const grpc_slice *path)
{
	size_t len = GRPC_SLICE_LENGTH(*path);
	const char *s = (const char *)GRPC_SLICE_START_PTR(*path);
	for (size_t i = 0; i < sizeof(gs__methods) / sizeof(gs__methods[0]); i++) {
		const struct gs__method *m = &gs__methods[i];
		if (strlen(m->path) == len && !memcmp(s, m->path, len))
			return m;
	}
	return NULL;
}

static void gs__on_new(struct gs__call *c)
{
	gs__request(c->th);     /* keep GS_PENDING calls requested */
	c->guard = gs_guard_call_start(c->call);
	c->method = gs__lookup(&c->details.method);
	if (!c->method) {
		char msg[300];
		int l = (int)GRPC_SLICE_LENGTH(c->details.method);
		snprintf(msg, sizeof(msg), "unknown method %.*s", l > 200 ? 200 : l,
			 (const char *)GRPC_SLICE_START_PTR(c->details.method));
		gs__finish(c, FERRY_ENOTSUP, msg, NULL, true);
		return;
	}
	if (c->method->stream) {
		gs__stream_recv_next(c, true);
		return;
	}
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv_buf;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
		gs__call_free(c);
}

static void gs__on_recv(struct gs__call *c, bool ok)
{
	if (c->method->stream) {
		gs__stream_recv(c, ok);
		return;
	}
	if (!ok || !c->recv_buf) {
		gs__finish(c, FERRY_ECANCELED, "no request message", NULL, true);
		return;
	}
	gs__unary(c);
}

static void *gs__thread(void *arg)
{
	struct gs__thread *th = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(th->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		struct gs__tag *t = ev.tag;
		struct gs__call *c = t->c;
		switch (t->kind) {
		case GS_T_NEW:
			if (!ev.success) {      /* the server is shutting down */
				gs__call_free(c);
				break;
			}
			gs__on_new(c);
			break;
		case GS_T_RECV:
			gs__on_recv(c, ev.success);
			break;
		case GS_T_SSEND:
			gs__stream_sent(c);
			break;
		case GS_T_FINISH:
			gs__call_free(c);
			break;
		default:
			break;
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* gRPC core's own log                                                     */

/*
 * gRPC core writes its errors to stderr in its own format ("E1203 08:37:37
 * ... chttp2_server.cc:1045] UNKNOWN:No address added ...").  They go to
 * ferry's log instead, in ferry's format:
 *   - while gs_start binds (gs__binding, on its own thread), at debug
 *     level: a port that cannot be bound is ferry's to explain, and gRPC's
 *     raw error before that clear message only confuses;
 *   - afterwards, at info level: what only gRPC sees, such as why a TLS
 *     handshake was refused ("certificate verify failed", "wrong version
 *     number"), is the operator's one clue;
 *   - gRPC's INFO and DEBUG lines at trace level.
 */
static _Thread_local bool gs__binding;

static void gs__grpc_log(gpr_log_func_args *a)
{
	if (a->severity != GPR_LOG_SEVERITY_ERROR)
		log_trace("gRPC core %s:%d: %s", a->file, a->line, a->message);
	else if (gs__binding)
		log_debug("gRPC core %s:%d: %s", a->file, a->line, a->message);
	else
		log_info("gRPC core: %s", a->message);
}

/* Before grpc_init(): it only sets the verbosity from $GRPC_VERBOSITY
 * when none was set. */
static void gs__grpc_log_init(void)
{
	gpr_set_log_function(gs__grpc_log);
	gpr_set_log_verbosity(log_threshold >= LOG_TRACE ? GPR_LOG_SEVERITY_DEBUG
							 : GPR_LOG_SEVERITY_ERROR);
}

/* ---------------------------------------------------------------------- */
/* Start / stop                                                            */

/* Read a whole PEM file (small: certificates and keys). */
static char *gs__read_pem(const char *what, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		log_error("gRPC TLS: %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	char *buf = calloc(1, 1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (!buf || n == 0 || !strstr(buf, "-----BEGIN")) {
		log_error("gRPC TLS: %s %s: not a PEM file", what, path);
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * TLS with --grpc-tls-cert and --grpc-tls-key; with --grpc-tls-ca too,
 * mutual TLS: a client without a certificate signed by that CA is refused
 * during the handshake.
 */
static int gs__tls_credentials(const struct gs_options *o, grpc_server_credentials **out)
{
	if (!o->tls_cert || !o->tls_key) {
		log_error("gRPC TLS needs both --grpc-tls-cert and --grpc-tls-key");
		return FERRY_CONFIG;
	}
	char *cert = gs__read_pem("certificate", o->tls_cert);
	char *key = cert ? gs__read_pem("key", o->tls_key) : NULL;
	char *ca = key && o->tls_ca ? gs__read_pem("CA", o->tls_ca) : NULL;
	if (!cert || !key || (o->tls_ca && !ca)) {
		free(cert);
		free(key);
		free(ca);
		return FERRY_CONFIG;
	}
	grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };
	*out = grpc_ssl_server_credentials_create_ex(
		ca, &pair, 1,
		ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
		   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
		NULL);
	/* gRPC copied what it needs. */
	free(cert);
	free(key);
	free(ca);
	if (!*out) {
		log_error("gRPC TLS: the certificate or key was refused");
		return FERRY_CONFIG;
	}
	log_info("gRPC: TLS on (%s)", o->tls_ca ? "mutual: clients need a certificate from "
		 "--grpc-tls-ca" : "server certificate only");
	return 0;
}

/*
 * What a hostile peer on the gRPC port meets (SECURITY.md, "HTTP/2 on the
 * network ports"), as gRPC core channel arguments; --grpc-arg NAME=VALUE
 * replaces any of them.  gRPC's own defaults are unlimited streams per
 * connection and idle connections kept for ever.
 */
static const struct gs__default_arg {
	const char *key;
	int value;
} gs__hardening[] = {
	/* Streams one connection may have open: a stream flood (or a rapid
	 * reset one) works through at most this many at once; a client past
	 * it waits in its own library, it gets no error. */
	{ GRPC_ARG_MAX_CONCURRENT_STREAMS, 256 },
	/* The request headers (metadata) of one call; larger: the call is
	 * refused (RESOURCE_EXHAUSTED) and nothing of it kept. */
	{ GRPC_ARG_MAX_METADATA_SIZE, 16384 },
	/* A connection must finish its handshake (TLS; for plaintext the
	 * HTTP/2 preface) in this time: half-open slowloris connections go. */
	{ GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000 },
	/* A connection with no call for this long is closed with GOAWAY (a
	 * client reconnects when it next calls): thousands of idle
	 * connections do not stay. */
	{ GRPC_ARG_MAX_CONNECTION_IDLE_MS, 300000 },
	/* Keepalive enforcement: pings without data closer than this are
	 * strikes; more than max_ping_strikes of them end the connection
	 * (GOAWAY too_many_pings).  libferry sends none. */
	{ GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 60000 },
	{ GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2 },
};

int gs_arg_check(const char *s, char *err, size_t errlen)
{
	const char *eq = s ? strchr(s, '=') : NULL;
	if (!eq || eq - s < 6 || strncmp(s, "grpc.", 5) || !eq[1]) {
		snprintf(err, errlen, "'%s': NAME=VALUE with a gRPC channel argument "
			 "name (grpc.max_concurrent_streams=100)", s ? s : "");
		return FERRY_EINVAL;
	}
	for (const char *p = s; p < eq; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_')) {
			snprintf(err, errlen, "'%s': the name has a '%c'", s, *p);
			return FERRY_EINVAL;
		}
	}
	return 0;
}

/* An argument's value: an int when it reads as one, else the text. */
static void gs__arg_set(grpc_arg *a, char *key, char *value)
{
	char *end;
	errno = 0;
	long v = strtol(value, &end, 0);
	a->key = key;
	if (!errno && end != value && !*end && v >= INT32_MIN && v <= INT32_MAX) {
		a->type = GRPC_ARG_INTEGER;
		a->value.integer = (int)v;
	} else {
		a->type = GRPC_ARG_STRING;
		a->value.string = value;
	}
}

/* The integer channel argument key of args, or def. */
static int gs__arg_int(const grpc_arg *args, int n, const char *key, int def)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(args[i].key, key) && args[i].type == GRPC_ARG_INTEGER)
			return args[i].value.integer;
	return def;
}

int gs_start(const struct gs_options *o)
{
	char addr[300];
	int ret;
	enum { NDEF = sizeof(gs__hardening) / sizeof(gs__hardening[0]) };
	char kv[GS_MAX_ARGS][256];

	if (o->port <= 0)
		return 0;
	gs_shm_enable(o->allow_client_shm);
	gs__grpc_log_init();
	grpc_init();
	int64_t max = o->max_message_bytes > 0 && o->max_message_bytes <= INT32_MAX ?
		      o->max_message_bytes : INT32_MAX;
	grpc_arg args[3 + NDEF + GS_MAX_ARGS];
	int nargs = 3;
	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = (int)max;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = (int)max;
	/* gRPC sets SO_REUSEPORT by default: a second ferryd would then
	 * share the port silently instead of failing to bind. */
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
	args[2].value.integer = 0;
	for (int i = 0; i < NDEF; i++) {
		args[nargs].type = GRPC_ARG_INTEGER;
		args[nargs].key = (char *)gs__hardening[i].key;
		args[nargs++].value.integer = gs__hardening[i].value;
	}
	/* --grpc-arg: a name given twice takes its last value, one of the
	 * defaults above is replaced. */
	for (int i = 0; i < o->nargs && i < GS_MAX_ARGS; i++) {
		snprintf(kv[i], sizeof(kv[i]), "%s", o->args[i]);
		char *eq = strchr(kv[i], '=');
		if (!eq)
			continue;
		*eq = 0;
		int k = 0;
		while (k < nargs && strcmp(args[k].key, kv[i]))
			k++;
		if (k == nargs)
			nargs++;
		gs__arg_set(&args[k], kv[i], eq + 1);
		log_info("gRPC: channel argument %s=%s", kv[i], eq + 1);
	}
	grpc_channel_args ca = { .num_args = (size_t)nargs, .args = args };

	gs__s.server = grpc_server_create(&ca, NULL);
	gs__s.nthreads = o->threads > 0 ? (o->threads > GS_MAX_THREADS ? GS_MAX_THREADS : o->threads) : 4;
	for (int i = 0; i < gs__s.nthreads; i++) {
		gs__s.threads[i].cq = grpc_completion_queue_create_for_next(NULL);
		gs__s.threads[i].index = i;
		grpc_server_register_completion_queue(gs__s.server, gs__s.threads[i].cq, NULL);
	}
	gs__s.shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_register_completion_queue(gs__s.server, gs__s.shutdown_cq, NULL);

	const char *host = o->address && *o->address ? o->address : "127.0.0.1";
	if (strchr(host, ':') && host[0] != '[')
		snprintf(addr, sizeof(addr), "[%s]:%d", host, o->port);
	else
		snprintf(addr, sizeof(addr), "%s:%d", host, o->port);
	grpc_server_credentials *cr = NULL;
	if (o->tls_cert || o->tls_key || o->tls_ca) {
		ret = gs__tls_credentials(o, &cr);
		if (ret)
			goto fail;
	} else {
		cr = grpc_insecure_server_credentials_create();
	}
	/* Plaintext: ferryd's own listener and connection guard (gs_guard.h);
	 * gRPC 1.51 takes a socket from outside only without TLS. */
	bool guard = !(o->tls_cert || o->tls_key || o->tls_ca);
	if (guard) {
		ret = gs_guard_listen(host, o->port, &(struct gs_guard_limits){
			.max_conns = o->max_connections > 0 ? o->max_connections : GS_MAX_CONNECTIONS,
			.max_conns_per_ip = o->max_connections_per_ip,
			.max_inflight = 2 * gs__arg_int(args, nargs, GRPC_ARG_MAX_CONCURRENT_STREAMS, 256),
			.max_cancels_per_s = o->max_cancels_per_s > 0 ? o->max_cancels_per_s
								      : GS_MAX_CANCELS,
			.preface_ms = gs__arg_int(args, nargs, GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
						  10000) }, addr);
		grpc_server_credentials_release(cr);
		if (ret)
			goto fail;
	} else {
		gs__binding = true;
		int port = grpc_server_add_http2_port(gs__s.server, addr, cr);
		gs__binding = false;
		grpc_server_credentials_release(cr);
		if (port <= 0) {
			log_error("gRPC: cannot listen on %s (address in use or not local?)", addr);
			ret = FERRY_EBUSY;
			goto fail;
		}
	}
	grpc_server_start(gs__s.server);
	if (guard && (ret = gs_guard_run(gs__s.server))) {
		gs__s.running = true;
		gs_stop();
		return ret;
	}
	atomic_store(&gs__s.stopping, false);
	for (int i = 0; i < gs__s.nthreads; i++) {
		for (int k = 0; k < GS_PENDING; k++)
			gs__request(&gs__s.threads[i]);
		if (pthread_create(&gs__s.threads[i].th, NULL, gs__thread, &gs__s.threads[i])) {
			log_error("gRPC: cannot start thread %d", i);
			gs__s.nthreads = i;
			gs__s.running = true;
			gs_stop();
			return FERRY_ENOMEM;
		}
	}
	gs__s.running = true;
	log_info("gRPC: KServe v2 endpoint on %s (%d threads, messages up to %lld bytes, "
		 "system shared memory %s)", addr, gs__s.nthreads, (long long)max,
		 o->allow_client_shm ? "allowed" : "off");
	return 0;
fail:
	grpc_server_destroy(gs__s.server);
	gs__s.server = NULL;
	for (int i = 0; i < gs__s.nthreads; i++) {
		grpc_completion_queue_shutdown(gs__s.threads[i].cq);
		while (grpc_completion_queue_next(gs__s.threads[i].cq,
						  gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
		       GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(gs__s.threads[i].cq);
	}
	grpc_completion_queue_shutdown(gs__s.shutdown_cq);
	grpc_completion_queue_destroy(gs__s.shutdown_cq);
	gs__s.nthreads = 0;
	grpc_shutdown();
	return ret;
}

void gs_drain(pthread_mutex_t *lock, pthread_cond_t *cond, const long *count, const char *who)
{
	/*
	 * Inline models run on the loop thread (this one), which no longer
	 * polls them: run what is ready for a moment, then stop the models,
	 * which flushes every queue without waiting out batching delays.
	 * ferryd stops them next anyway; sched_model_stop is idempotent.
	 */
	uint64_t t0 = sched_now_ns();
	bool flushed = false;
	pthread_mutex_lock(lock);
	while (*count > 0) {
		pthread_mutex_unlock(lock);
		uint64_t now = sched_now_ns(), dl = UINT64_MAX;
		if (!flushed && now - t0 > 200000000ULL) {
			log_info("%s: finishing queued requests", who);
			models_stop_all();
			flushed = true;
		} else if (!flushed) {
			models_run_inline(now, &dl);
		}
		pthread_mutex_lock(lock);
		if (*count == 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(cond, lock, &ts);
	}
	pthread_mutex_unlock(lock);
}

void gs_stop(void)
{
	if (!gs__s.running)
		return;
	gs__s.running = false;
	atomic_store(&gs__s.stopping, true);
	gs_guard_stop();
	gs__s.shutdown_tag = (struct gs__tag){ NULL, GS_T_SHUTDOWN };
	grpc_server_shutdown_and_notify(gs__s.server, gs__s.shutdown_cq, &gs__s.shutdown_tag);
	grpc_server_cancel_all_calls(gs__s.server);
	grpc_completion_queue_pluck(gs__s.shutdown_cq, &gs__s.shutdown_tag,
				    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	/*
	 * Requests still in a model's queue answer (into cancelled calls)
	 * when they complete; their calls go away after that.
	 */
	gs_drain(&gs__s.lock, &gs__s.cond, &gs__s.live, "gRPC");
	for (int i = 0; i < gs__s.nthreads; i++)
		grpc_completion_queue_shutdown(gs__s.threads[i].cq);
	for (int i = 0; i < gs__s.nthreads; i++) {
		pthread_join(gs__s.threads[i].th, NULL);
		grpc_completion_queue_destroy(gs__s.threads[i].cq);
	}
	grpc_server_destroy(gs__s.server);
	gs__s.server = NULL;
	grpc_completion_queue_shutdown(gs__s.shutdown_cq);
	grpc_completion_queue_destroy(gs__s.shutdown_cq);
	gs__s.nthreads = 0;
	gs_guard_free();
	gs_shm_fini();
	grpc_shutdown();
	log_info("gRPC: stopped");
}
