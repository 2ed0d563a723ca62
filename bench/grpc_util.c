/* SPDX-License-Identifier: MIT */
/*
 * grpc_util.c - raw KServe v2 gRPC calls and system shared memory for the
 * benchmarks (see grpc_util.h).  The unary call itself is proto/rpc.c's,
 * the one libferry's remote transport makes.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "bench/grpc_util.h"
#include "proto/kserve.pb-c.h"
#include "proto/rpc.h"

#define GU_METHOD(m) RPC_KSERVE(m)
#define GU_MAXT 32

struct gu_chan {
	grpc_channel *ch;
	grpc_completion_queue *cq;      /* asynchronous calls (gu_next) */
};

struct gu_infer {
	grpc_slice msg;                 /* the packed ModelInferRequest */
	grpc_completion_queue *pluck;   /* blocking calls of this request */
	struct rpc_call k;              /* the call in flight (one at a time) */
	void *tag;
};

static _Thread_local char gu__err[512];

const char *gu_error(void)
{
	return gu__err;
}

static int gu__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int gu__fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(gu__err, sizeof(gu__err), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* One call, on proto/rpc.c                                                */

/* Start q's call: the packed message is sent by reference, not copied. */
static int gu__call_start(struct gu_infer *q, grpc_channel *ch, grpc_completion_queue *cq,
			  const char *method, int64_t timeout_ns, void *tag)
{
	struct rpc_result res;

	if (rpc_call_start(&q->k, ch, cq, method, rpc_deadline(timeout_ns),
			   grpc_raw_byte_buffer_create(&q->msg, 1), tag, &res))
		return gu__fail("%s: %s", method, res.msg);
	return 0;
}

/* The call finished: its status, everything it held released. */
static int gu__call_end(struct gu_infer *q, const ProtobufCMessageDescriptor *rdesc)
{
	struct rpc_result res;

	if (rpc_call_end(&q->k, rdesc, NULL, &res)) {
		if (res.status != GRPC_STATUS_OK)
			return gu__fail("status %d: %s", (int)res.status, res.msg);
		return gu__fail("%s", res.msg);
	}
	return 0;
}

static _Thread_local int gu__status;

int gu_status(void)
{
	return gu__status;
}

int gu_call(struct gu_chan *c, const char *method, const ProtobufCMessage *req,
	    const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
	    int64_t timeout_ns)
{
	struct rpc_result res;

	if (rpc_unary(c->ch, method, req, rdesc, resp, timeout_ns, &res)) {
		gu__status = (int)res.status;
		if (res.status != GRPC_STATUS_OK)
			return gu__fail("%s: status %d: %s", method, (int)res.status, res.msg);
		return gu__fail("%s: %s", method, res.msg);
	}
	gu__status = GRPC_STATUS_OK;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Channels                                                                */

struct gu_chan *gu_open(const char *target)
{
	struct gu_chan *c = calloc(1, sizeof(*c));
	grpc_channel_credentials *cr;
	Inference__ServerLiveRequest live = INFERENCE__SERVER_LIVE_REQUEST__INIT;

	if (!c) {
		gu__fail("out of memory");
		return NULL;
	}
	if (!strncmp(target, "grpc://", 7))
		target += 7;
	grpc_init();
	cr = grpc_insecure_credentials_create();
	c->ch = rpc_channel(target, cr);
	grpc_channel_credentials_release(cr);
	c->cq = grpc_completion_queue_create_for_next(NULL);
	/* gRPC connects lazily: ask whether anyone is there. */
	if (gu_call(c, GU_METHOD("ServerLive"), &live.base,
		    &inference__server_live_response__descriptor, NULL, 5000000000LL)) {
		char why[512];

		snprintf(why, sizeof(why), "%s", gu_error());
		gu_close(c);
		gu__fail("cannot reach the gRPC server at %s: %s", target, why);
		return NULL;
	}
	return c;
}

void gu_close(struct gu_chan *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->ch);
	grpc_completion_queue_shutdown(c->cq);
	while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c->cq);
	free(c);
	grpc_shutdown();
}

/* ---------------------------------------------------------------------- */
/* System shared memory                                                    */

int gu_region_create(struct gu_region *r, const char *name, size_t bytes)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->base = MAP_FAILED;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->key, sizeof(r->key), "/ferry_gu_%d_%s", (int)getpid(), name);
	r->bytes = bytes ? bytes : 1;
	r->fd = shm_open(r->key, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (r->fd < 0)
		return gu__fail("shm_open %s: %s", r->key, strerror(errno));
	if (ftruncate(r->fd, (off_t)r->bytes) ||
	    (r->base = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0)) ==
	    MAP_FAILED) {
		int e = errno;

		gu_region_destroy(r);
		return gu__fail("region %s of %zu bytes: %s", name, bytes, strerror(e));
	}
	return 0;
}

void gu_region_destroy(struct gu_region *r)
{
	if (r->base && r->base != MAP_FAILED)
		munmap(r->base, r->bytes);
	if (r->fd >= 0) {
		close(r->fd);
		shm_unlink(r->key);
	}
	r->base = NULL;
	r->fd = -1;
}

int gu_region_register(struct gu_chan *c, const struct gu_region *r)
{
	Inference__SystemSharedMemoryRegisterRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_REQUEST__INIT;

	q.name = (char *)r->name;
	q.key = (char *)r->key;
	q.offset = 0;
	q.byte_size = r->bytes;
	return gu_call(c, GU_METHOD("SystemSharedMemoryRegister"), &q.base,
			 &inference__system_shared_memory_register_response__descriptor, NULL,
			 10000000000LL);
}

int gu_region_unregister(struct gu_chan *c, const char *name)
{
	Inference__SystemSharedMemoryUnregisterRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;

	q.name = name ? (char *)name : (char *)"";
	return gu_call(c, GU_METHOD("SystemSharedMemoryUnregister"), &q.base,
			 &inference__system_shared_memory_unregister_response__descriptor, NULL,
			 10000000000LL);
}

/* ---------------------------------------------------------------------- */
/* ModelInfer                                                              */

/* The three parameters that put a tensor in a region. */
struct gu__shmp {
	Inference__InferParameter v[3];
	Inference__ModelInferRequest__InferInputTensor__ParametersEntry ie[3];
	Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry oe[3];
	void *p[3];
};

static size_t gu__shm_params(struct gu__shmp *s, const struct gu_tensor *t, int input)
{
	static const char *const keys[3] = { "shared_memory_region", "shared_memory_offset",
					      "shared_memory_byte_size" };

	if (!t->region)
		return 0;
	for (int k = 0; k < 3; k++) {
		inference__infer_parameter__init(&s->v[k]);
		if (input) {
			inference__model_infer_request__infer_input_tensor__parameters_entry__init(
				&s->ie[k]);
			s->ie[k].key = (char *)keys[k];
			s->ie[k].value = &s->v[k];
			s->p[k] = &s->ie[k];
		} else {
			inference__model_infer_request__infer_requested_output_tensor__parameters_entry__init(
				&s->oe[k]);
			s->oe[k].key = (char *)keys[k];
			s->oe[k].value = &s->v[k];
			s->p[k] = &s->oe[k];
		}
	}
	s->v[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
	s->v[0].string_param = (char *)t->region;
	s->v[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	s->v[1].int64_param = (int64_t)t->offset;
	s->v[2].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	s->v[2].int64_param = (int64_t)t->bytes;
	return 3;
}

struct gu_infer *gu_infer_new(const char *model, const struct gu_tensor *in, int nin,
			      const struct gu_tensor *out, int nout)
{
	struct gu__shmp sp[2 * GU_MAXT];
	Inference__ModelInferRequest__InferInputTensor it[GU_MAXT], *itp[GU_MAXT];
	Inference__ModelInferRequest__InferRequestedOutputTensor ot[GU_MAXT], *otp[GU_MAXT];
	ProtobufCBinaryData raw[GU_MAXT];
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	struct gu_infer *q;
	size_t nraw = 0, len;
	uint8_t *buf;

	if (nin > GU_MAXT || nout > GU_MAXT) {
		gu__fail("more than %d inputs or outputs", GU_MAXT);
		return NULL;
	}
	for (int i = 0; i < nin; i++) {
		inference__model_infer_request__infer_input_tensor__init(&it[i]);
		it[i].name = (char *)in[i].name;
		it[i].datatype = (char *)in[i].datatype;
		it[i].n_shape = (size_t)in[i].ndims;
		it[i].shape = (int64_t *)in[i].shape;
		it[i].n_parameters = gu__shm_params(&sp[i], &in[i], 1);
		it[i].parameters = (Inference__ModelInferRequest__InferInputTensor__ParametersEntry **)
			sp[i].p;
		itp[i] = &it[i];
		if (!in[i].region) {
			/* raw contents go all or none: every input without a region */
			raw[nraw].data = (uint8_t *)in[i].data;
			raw[nraw++].len = in[i].bytes;
		}
	}
	if (nraw && nraw != (size_t)nin) {
		gu__fail("mixing inputs in regions and raw contents is not supported");
		return NULL;
	}
	for (int o = 0; o < nout; o++) {
		inference__model_infer_request__infer_requested_output_tensor__init(&ot[o]);
		ot[o].name = (char *)out[o].name;
		ot[o].n_parameters = gu__shm_params(&sp[GU_MAXT + o], &out[o], 0);
		ot[o].parameters =
			(Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry **)
			sp[GU_MAXT + o].p;
		otp[o] = &ot[o];
	}
	m.model_name = (char *)model;
	m.n_inputs = (size_t)nin;
	m.inputs = itp;
	m.n_outputs = (size_t)nout;
	m.outputs = otp;
	m.n_raw_input_contents = nraw;
	m.raw_input_contents = raw;

	q = calloc(1, sizeof(*q));
	len = protobuf_c_message_get_packed_size(&m.base);
	buf = malloc(len ? len : 1);
	if (!q || !buf) {
		free(q);
		free(buf);
		gu__fail("out of memory");
		return NULL;
	}
	protobuf_c_message_pack(&m.base, buf);
	q->msg = grpc_slice_new(buf, len, free);
	return q;
}

void gu_infer_free(struct gu_infer *q)
{
	if (!q)
		return;
	grpc_slice_unref(q->msg);
	if (q->pluck) {
		grpc_completion_queue_shutdown(q->pluck);
		grpc_completion_queue_destroy(q->pluck);
	}
	free(q);
}

int gu_infer(struct gu_chan *c, struct gu_infer *q)
{
	if (!q->pluck)
		q->pluck = grpc_completion_queue_create_for_pluck(NULL);
	if (gu__call_start(q, c->ch, q->pluck, GU_METHOD("ModelInfer"), -1, q))
		return -1;
	grpc_completion_queue_pluck(q->pluck, q, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	return gu__call_end(q, &inference__model_infer_response__descriptor);
}

int gu_infer_start(struct gu_chan *c, struct gu_infer *q, void *tag)
{
	q->tag = tag;
	return gu__call_start(q, c->ch, c->cq, GU_METHOD("ModelInfer"), -1, q);
}

int gu_next(struct gu_chan *c, int64_t timeout_ns, void **tag, int *status)
{
	grpc_event ev = grpc_completion_queue_next(c->cq, rpc_deadline(timeout_ns), NULL);
	struct gu_infer *q;

	if (ev.type != GRPC_OP_COMPLETE)
		return 0;
	q = ev.tag;
	*tag = q->tag;
	*status = gu__call_end(q, &inference__model_infer_response__descriptor);
	return 1;
}

/* ---------------------------------------------------------------------- */
/* The floor: a bare unary echo on gRPC's core API                         */

#define GU_ECHO_PENDING 8       /* calls requested per thread, as ferryd */

struct gu__echo_call {
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv;
	grpc_byte_buffer *send;
	int cancelled;
	int state;                      /* 0 new, 1 received, 2 finished */
	grpc_completion_queue *cq;
};

static grpc_server *gu__echo_server;
/* The replies by method (name NULL: any other method); set before the
 * threads start, read-only afterwards. */
static struct {
	const char *method;
	grpc_slice reply;
} gu__echo_replies[GU_ECHO_MAX_REPLIES];
static int gu__echo_nreplies;

/* The reply for the call's method: the path's last component. */
static grpc_slice *gu__echo_reply(const grpc_slice *path)
{
	const char *p = (const char *)GRPC_SLICE_START_PTR(*path);
	size_t len = GRPC_SLICE_LENGTH(*path), k = len;
	while (k > 0 && p[k - 1] != '/')
		k--;
	int any = -1;
	for (int i = 0; i < gu__echo_nreplies; i++) {
		const char *m = gu__echo_replies[i].method;
		if (!m)
			any = i;
		else if (strlen(m) == len - k && !memcmp(m, p + k, len - k))
			return &gu__echo_replies[i].reply;
	}
	return any >= 0 ? &gu__echo_replies[any].reply : NULL;
}

static void gu__echo_request(grpc_completion_queue *cq)
{
	struct gu__echo_call *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->cq = cq;
	grpc_call_details_init(&e->details);
	grpc_metadata_array_init(&e->md);
	if (grpc_server_request_call(gu__echo_server, &e->call, &e->details, &e->md, cq, cq, e) !=
	    GRPC_CALL_OK)
		free(e);
}

static void gu__echo_free(struct gu__echo_call *e)
{
	if (e->call)
		grpc_call_unref(e->call);
	grpc_call_details_destroy(&e->details);
	grpc_metadata_array_destroy(&e->md);
	if (e->recv)
		grpc_byte_buffer_destroy(e->recv);
	if (e->send)
		grpc_byte_buffer_destroy(e->send);
	free(e);
}

static void *gu__echo_thread(void *arg)
{
	grpc_completion_queue *cq = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		struct gu__echo_call *e = ev.tag;
		grpc_op ops[4];
		memset(ops, 0, sizeof(ops));
		if (!ev.success || e->state == 2) {
			gu__echo_free(e);
			continue;
		}
		if (e->state == 0) {
			gu__echo_request(cq);   /* keep the pending calls, as ferryd */
			e->state = 1;
			ops[0].op = GRPC_OP_RECV_MESSAGE;
			ops[0].data.recv_message.recv_message = &e->recv;
			if (grpc_call_start_batch(e->call, ops, 1, e, NULL) != GRPC_CALL_OK)
				gu__echo_free(e);
			continue;
		}
		/* The request is in: answer at once, nothing decoded (a
		 * method without a reply: UNIMPLEMENTED). */
		e->state = 2;
		grpc_slice *reply = gu__echo_reply(&e->details.method);
		int n = 0;
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		if (reply) {
			e->send = grpc_raw_byte_buffer_create(reply, 1);
			ops[n].op = GRPC_OP_SEND_MESSAGE;
			ops[n++].data.send_message.send_message = e->send;
		}
		ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[n++].data.send_status_from_server.status =
			reply ? GRPC_STATUS_OK : GRPC_STATUS_UNIMPLEMENTED;
		ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
		ops[n++].data.recv_close_on_server.cancelled = &e->cancelled;
		if (grpc_call_start_batch(e->call, ops, (size_t)n, e, NULL) != GRPC_CALL_OK)
			gu__echo_free(e);
	}
	return NULL;
}

int gu_echo_serve(int port, int threads, const void *reply, size_t len)
{
	struct gu_echo_reply r = { NULL, reply, len };
	return gu_echo_serve_methods(port, threads, &r, 1);
}

int gu_echo_serve_methods(int port, int threads, const struct gu_echo_reply *replies, int n)
{
	char addr[64];
	pthread_t th[64];
	grpc_completion_queue *cq[64];

	if (threads < 1 || threads > 64)
		return gu__fail("threads: 1 to 64");
	if (n < 1 || n > GU_ECHO_MAX_REPLIES)
		return gu__fail("replies: 1 to %d", GU_ECHO_MAX_REPLIES);
	grpc_init();
	for (int i = 0; i < n; i++) {
		gu__echo_replies[i].method = replies[i].method;
		gu__echo_replies[i].reply = grpc_slice_from_copied_buffer(replies[i].bytes,
									  replies[i].len);
	}
	gu__echo_nreplies = n;
	gu__echo_server = grpc_server_create(NULL, NULL);
	for (int i = 0; i < threads; i++) {
		cq[i] = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(gu__echo_server, cq[i], NULL);
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	grpc_server_credentials *cr = grpc_insecure_server_credentials_create();
	int ok = grpc_server_add_http2_port(gu__echo_server, addr, cr);
	grpc_server_credentials_release(cr);
	if (ok <= 0)
		return gu__fail("echo: cannot listen on %s", addr);
	grpc_server_start(gu__echo_server);
	for (int i = 0; i < threads; i++) {
		for (int k = 0; k < GU_ECHO_PENDING; k++)
			gu__echo_request(cq[i]);
		if (pthread_create(&th[i], NULL, gu__echo_thread, cq[i]))
			return gu__fail("pthread_create");
	}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return 0;
}

int gu_infer_response_bytes(const char *model, const char *output, const char *datatype,
			    const int64_t *shape, int ndims, const void *data, size_t bytes,
			    uint8_t **out, size_t *len)
{
	Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
	Inference__ModelInferResponse__InferOutputTensor t =
		INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
	Inference__ModelInferResponse__InferOutputTensor *tp = &t;
	ProtobufCBinaryData raw = { bytes, (uint8_t *)data };

	r.model_name = (char *)model;
	r.model_version = "1";
	t.name = (char *)output;
	t.datatype = (char *)datatype;
	t.shape = (int64_t *)shape;
	t.n_shape = (size_t)ndims;
	r.n_outputs = 1;
	r.outputs = &tp;
	r.n_raw_output_contents = 1;
	r.raw_output_contents = &raw;
	*len = inference__model_infer_response__get_packed_size(&r);
	if (!(*out = malloc(*len ? *len : 1)))
		return gu__fail("out of memory");
	inference__model_infer_response__pack(&r, *out);
	return 0;
}
