/* SPDX-License-Identifier: MIT */
/*
 * gs_submit.c - ModelInfer and ModelStreamInfer: a decoded request is
 * converted (gs_infer.c), submitted to the model's scheduler queue (the
 * same queues as shared-memory sessions), and answered from done(), on
 * whichever thread completed it.
 *
 * The model table's read lock is held from the lookup to the end of
 * sched_submit_here (see models.h): this is the one handler that needs a
 * live scheduler model rather than a snapshot.  An inline model is run by
 * sched_submit_here on this thread, so the call may be answered before
 * gs__infer returns.
 *
 * Answers wait for the instance: while an inline model runs here this
 * thread holds its instance, and whatever completes meanwhile (this
 * call, and other threads' calls that queued behind it) is answered
 * once sched_submit_here has returned and the instance is free again
 * (gs__later).  Answering is most of a call's cost (the response's
 * packing, gRPC's batch, the write to the socket); done inside the
 * holder's loop it kept the instance busy so long that the other
 * completion-queue threads nearly always found it taken, queued their
 * request, and went to sleep until the holder answered it, and then
 * each call's completion had to wake its own thread (under an h2load
 * flood on 4 threads: 1.1-1.5 context switches and twice ServerLive's
 * CPU per ModelInfer; bench/flood.sh).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_infer.h"
#include "broker/frontends/grpc/gs_int.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"
#include "proto/kserve.pb-c.h"

/* A ModelInfer request in the scheduler. */
struct gs__req {
	struct gs_infer inf;            /* first: inf.req is what done() gets */
	struct gs__call *c;
	Inference__ModelInferRequest *msg;
	struct models_entry *model;     /* the record outlives us (models.h) */
	bool stream;
	struct gs__req *later;          /* gs__later's list */
};

/*
 * The requests completed on this thread inside gs__infer's call of
 * sched_submit_here, answered after it returns, oldest first (tail NULL:
 * not inside it; answer at once).  Only successes of unary calls wait
 * here: an error's message lives only as long as done(), a stream's
 * responses must keep their order across threads, and so must those of
 * a preserve_ordering model.
 */
static _Thread_local struct gs__req *gs__later_head, **gs__later_tail;

static uint64_t gs__realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void gs__req_free(struct gs__req *r)
{
	gs_infer_fini(&r->inf);
	if (r->msg)
		inference__model_infer_request__free_unpacked(r->msg, NULL);
	free(r);
}

struct models_entry *gs_request_model(const char *name, const char *version, int *code,
				      char *err, size_t errlen)
{
	name = name ? name : "";
	int64_t v = gs__version(version);
	if (v == -2) {
		snprintf(err, errlen, "invalid model version '%s' for model '%s'", version, name);
		*code = FERRY_EINVAL;
		return NULL;
	}
	struct models_entry *m = models_find(name, v);
	if (!m || m->state != MODELS_READY || !m->sm || !m->cfg) {
		*code = gs__unservable(name, v, m != NULL, !m && v >= 0 && models_find(name, -1),
				       m ? m->reason : NULL, err, errlen);
		return NULL;
	}
	*code = 0;
	return m;
}

/*
 * The scheduler shares a model fairly between its clients (sched_req.owner):
 * for gRPC, a client is a connection, named by its peer address and port
 * ("ipv4:127.0.0.1:40112").  The key is a hash of it, odd so that it never
 * equals the aligned pointer of a shared-memory session or an HTTP
 * connection.  Computed once per call (a stream's messages share it).
 */
static void *gs__owner(struct gs__call *c)
{
	if (!c->owner) {
		char *peer = grpc_call_get_peer(c->call);
		uint64_t h = 1469598103934665603ULL;    /* FNV-1a */
		for (const char *p = peer; p && *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
		gpr_free(peer);
		c->owner = (void *)(uintptr_t)(h | 1);
	}
	return c->owner;
}

/* Pack r's response (or its error) and finish its call; frees r. */
static void gs__answer(struct gs__req *r, int status, const char *msg)
{
	struct gs__call *c = r->c;
	char err[1024];
	uint8_t *buf = NULL;
	size_t len = 0;

	if (status == 0) {
		status = gs_infer_response(&r->inf, r->model->name, r->model->version, &buf, &len,
					   err, sizeof(err));
		msg = err;
		if (status == 0)
			atomic_store(&r->model->last_infer_ms, gs__realtime_ms());
	}
	if (status && !msg)
		msg = ferry_strerror(status);
	bool stream = r->stream;
	char emsg[1024];
	if (status)
		snprintf(emsg, sizeof(emsg), "%s", msg);
	gs__req_free(r);

	if (!stream) {
		gs__finish(c, status, status ? emsg : NULL, status ? NULL : gs__bb_take(buf, len),
			   true);
		return;
	}
	grpc_byte_buffer *bb;
	if (status) {
		bb = gs__stream_msg(1, (const uint8_t *)emsg, strlen(emsg));
	} else {
		bb = gs__stream_msg(2, buf, len);
		free(buf);
	}
	gs__stream_push(c, bb);
}

/* sched_req.done: any thread, once. */
static void gs__infer_done(struct sched_req *sr, int status, const char *msg)
{
	struct gs__req *r = (struct gs__req *)sr;

	if (gs__later_tail && status == 0 && !r->stream &&
	    !r->inf.cfg->dynbatch.preserve_ordering) {
		r->later = NULL;
		*gs__later_tail = r;
		gs__later_tail = &r->later;
		return;
	}
	gs__answer(r, status, msg);
}

int gs__infer(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	struct gs__call *c = x->c;
	int code;

	struct gs__req *r = calloc(1, sizeof(*r));
	if (!r)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	r->c = c;
	r->stream = x->stream;
	r->msg = (Inference__ModelInferRequest *)req;

	models_rdlock();
	struct models_entry *m = gs_request_model(r->msg->model_name, r->msg->model_version, &code,
						  x->err, sizeof(x->err));
	if (!m)
		goto fail;
	r->model = m;
	code = gs_infer_prepare(&r->inf, r->msg, m->cfg, x->err, sizeof(x->err));
	if (code)
		goto fail;
	/* The client's deadline bounds the time in the queue too, where the
	 * model's policy lets a request override its timeout. */
	gpr_timespec dl = gpr_convert_clock_type(c->details.deadline, GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) < 0 && !r->stream) {
		gpr_timespec left = gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC));
		int64_t us = (int64_t)left.tv_sec * 1000000 + left.tv_nsec / 1000;
		if (us <= 0) {
			code = gs__fail(x, FERRY_ETIMEDOUT, "Deadline Exceeded");
			goto fail;
		}
		if (!r->inf.req.timeout_us || (uint64_t)us < r->inf.req.timeout_us)
			r->inf.req.timeout_us = (uint64_t)us;
	}
	r->inf.req.done = gs__infer_done;
	r->inf.req.owner = gs__owner(c);
	/* An inline model (identity, add_sub, a tiny ONNX graph) runs here,
	 * on the completion-queue thread that took the call, and done()
	 * answers it from this thread: no hop to a poller and back. */
	gs__later_head = NULL;
	gs__later_tail = &gs__later_head;
	code = sched_submit_here(m->sm, &r->inf.req, x->err, sizeof(x->err));
	gs__later_tail = NULL;
	models_unlock();
	/* The instance is free again: answer what completed meanwhile (r
	 * itself may be among them, and gone afterwards). */
	for (struct gs__req *d = gs__later_head, *next; d; d = next) {
		next = d->later;
		gs__answer(d, 0, NULL);
	}
	gs__later_head = NULL;
	if (code)
		goto fail_unlocked;
	return GS_LATER;
fail:
	models_unlock();
fail_unlocked:
	/* The message goes back to the caller, who frees it. */
	r->msg = NULL;
	gs__req_free(r);
	return code;
}
