/* SPDX-License-Identifier: MIT */
/*
 * gs_server.c - the KServe v2 gRPC front end on gRPC's core C API.
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
 * Locks: gs__lock guards the live-call count (shutdown waits on it); a
 * stream's own mutex guards its queue and counters.  The model table's
 * read lock is held from lookup to sched_submit (see models.h).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include <ferry/errors.h>

#include "config.h"
#include "broker/frontends/grpc/gs_server.h"
#include "broker/frontends/grpc/gs_infer.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "broker/core/log.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"
#include "proto/kserve.pb-c.h"

#define GS_PENDING 8            /* calls requested per thread */
#define GS_MAX_THREADS 64

enum gs_method {
	GS_M_LIVE, GS_M_READY, GS_M_MODEL_READY, GS_M_SERVER_META, GS_M_MODEL_META,
	GS_M_INFER, GS_M_STREAM, GS_M_CONFIG, GS_M_STATS, GS_M_REPO_INDEX, GS_M_LOAD,
	GS_M_UNLOAD, GS_M_SHM_STATUS, GS_M_SHM_REG, GS_M_SHM_UNREG, GS_M_CUDA_STATUS,
	GS_M_CUDA_REG, GS_M_CUDA_UNREG, GS_M__COUNT
};

static const char *const gs__method_names[GS_M__COUNT] = {
	"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
	"ModelInfer", "ModelStreamInfer", "ModelConfig", "ModelStatistics",
	"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	"SystemSharedMemoryStatus", "SystemSharedMemoryRegister",
	"SystemSharedMemoryUnregister", "CudaSharedMemoryStatus",
	"CudaSharedMemoryRegister", "CudaSharedMemoryUnregister",
};

enum gs_tag_kind { GS_T_NEW, GS_T_RECV, GS_T_FINISH, GS_T_SRECV, GS_T_SSEND, GS_T_SHUTDOWN };

struct gs_call;
struct gs_tag {
	struct gs_call *c;
	enum gs_tag_kind kind;
};

struct gs_thread {
	pthread_t th;
	grpc_completion_queue *cq;
	int index;
};

struct gs_out {                 /* a queued stream response */
	grpc_byte_buffer *bb;
	struct gs_out *next;
};

struct gs_call {
	struct gs_tag t_new, t_recv, t_finish, t_ssend;
	struct gs_thread *th;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md_in;
	grpc_byte_buffer *recv_buf;
	grpc_byte_buffer *send_buf;
	grpc_slice status_details;
	bool has_details;
	int cancelled;
	int method;                     /* enum gs_method, or -1 */
	/* Streams only; lock guards the rest. */
	pthread_mutex_t lock;
	struct gs_out *q_head, *q_tail;
	bool sending, read_done, finishing;
	int pending;                    /* requests in the scheduler */
};

/* A ModelInfer request in the scheduler. */
struct gs_req {
	struct gs_infer inf;            /* first: inf.req is what done() gets */
	struct gs_call *c;
	Inference__ModelInferRequest *msg;
	struct models_entry *model;           /* the record outlives us (models.h) */
	bool stream;
};

static struct {
	grpc_server *server;
	struct gs_thread threads[GS_MAX_THREADS];
	int nthreads;
	grpc_completion_queue *shutdown_cq;
	struct gs_tag shutdown_tag;
	_Atomic bool stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long live;                      /* gs_call structs alive; lock */
	bool running;
} gs__s = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

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

static void gs__live(long d)
{
	pthread_mutex_lock(&gs__s.lock);
	gs__s.live += d;
	if (gs__s.live == 0)
		pthread_cond_broadcast(&gs__s.cond);
	pthread_mutex_unlock(&gs__s.lock);
}

static void gs__call_free(struct gs_call *c)
{
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
	while (c->q_head) {
		struct gs_out *n = c->q_head->next;
		grpc_byte_buffer_destroy(c->q_head->bb);
		free(c->q_head);
		c->q_head = n;
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
	gs__live(-1);
}

/* Ask for one more incoming call on th's queue. */
static void gs__request(struct gs_thread *th)
{
	if (atomic_load(&gs__s.stopping))
		return;
	struct gs_call *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("gRPC: out of memory; one fewer call slot on thread %d", th->index);
		return;
	}
	c->th = th;
	c->method = -1;
	c->t_new = (struct gs_tag){ c, GS_T_NEW };
	c->t_recv = (struct gs_tag){ c, GS_T_RECV };
	c->t_finish = (struct gs_tag){ c, GS_T_FINISH };
	c->t_ssend = (struct gs_tag){ c, GS_T_SSEND };
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

static grpc_byte_buffer *gs__bb_take(uint8_t *buf, size_t len)
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

/* The last batch of a call: status (and message) out, then FINISH. */
static void gs__finish(struct gs_call *c, grpc_status_code code, const char *msg,
		       grpc_byte_buffer *resp, bool send_md)
{
	grpc_op ops[4];
	int n = 0;

	memset(ops, 0, sizeof(ops));
	if (send_md) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	if (resp && code == GRPC_STATUS_OK) {
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
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.status_details = &c->status_details;
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

static void gs__finish_err(struct gs_call *c, int ferr, const char *msg)
{
	log_debug("gRPC %s: %s", c->method >= 0 ? gs__method_names[c->method] : "?", msg);
	gs__finish(c, gs__code(ferr), msg, NULL, true);
}

static void gs__finish_ok(struct gs_call *c, const ProtobufCMessage *m)
{
	grpc_byte_buffer *bb = gs__bb_pack(m);
	if (!bb) {
		gs__finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, true);
		return;
	}
	gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
}

/* Decode the received message with desc; NULL (and the call answered)
 * when it is malformed. */
static ProtobufCMessage *gs__decode(struct gs_call *c, const ProtobufCMessageDescriptor *desc)
{
	grpc_byte_buffer_reader rd;
	ProtobufCMessage *m = NULL;

	if (!c->recv_buf) {
		gs__finish_err(c, FERRY_EINVAL, "no request message");
		return NULL;
	}
	if (!grpc_byte_buffer_reader_init(&rd, c->recv_buf)) {
		gs__finish_err(c, FERRY_EINVAL, "unreadable request message");
		return NULL;
	}
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	grpc_byte_buffer_destroy(c->recv_buf);
	c->recv_buf = NULL;
	if (!m)
		gs__finish_err(c, FERRY_EINVAL, "malformed request message");
	return m;
}

/* "" = latest (-1); digits = that version; else -2. */
static int64_t gs__version(const char *v)
{
	if (!v || !*v)
		return -1;
	int64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9' || n > (INT64_MAX - 9) / 10)
			return -2;
		n = n * 10 + (*p - '0');
	}
	return n;
}

/*
 * Find a READY model version; read lock held by the caller.  On failure
 * returns NULL with *code and msg set the way Triton words them.
 */
static struct models_entry *gs__model(const char *name, const char *version, int *code,
				char *msg, size_t msglen)
{
	int64_t v = gs__version(version);
	name = name ? name : "";
	if (v == -2) {
		*code = FERRY_EINVAL;
		snprintf(msg, msglen, "invalid model version '%s' for model '%s'", version, name);
		return NULL;
	}
	struct models_entry *m = models_find(name, v);
	if (!m) {
		*code = FERRY_ENOENT;
		if (v >= 0 && models_find(name, -1))
			snprintf(msg, msglen, "Request for unknown model: '%s' version %" PRId64
				 " is not found", name, v);
		else
			snprintf(msg, msglen, "Request for unknown model: '%s' is not found", name);
		return NULL;
	}
	if (m->state != MODELS_READY || !m->sm || !m->cfg) {
		*code = FERRY_UNAVAILABLE;
		if (v >= 0)
			snprintf(msg, msglen, "Request for unknown model: '%s' version %" PRId64
				 " is not at ready state%s%s", name, v, m->reason[0] ? ": " : "",
				 m->reason);
		else
			snprintf(msg, msglen, "Request for unknown model: '%s' has no available "
				 "versions%s%s", name, m->reason[0] ? ": " : "", m->reason);
		return NULL;
	}
	return m;
}

/* ---------------------------------------------------------------------- */
/* Health and metadata                                                     */

static void gs__server_live(struct gs_call *c)
{
	Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
	r.live = 1;
	gs__finish_ok(c, &r.base);
}

static void gs__server_ready(struct gs_call *c)
{
	Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
	r.ready = !atomic_load(&gs__s.stopping);
	gs__finish_ok(c, &r.base);
}

static void gs__model_ready(struct gs_call *c)
{
	Inference__ModelReadyRequest *q = (Inference__ModelReadyRequest *)
		gs__decode(c, &inference__model_ready_request__descriptor);
	if (!q)
		return;
	Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
	char msg[256];
	int code;
	models_rdlock();
	r.ready = gs__model(q->name, q->version, &code, msg, sizeof(msg)) != NULL;
	models_unlock();
	inference__model_ready_request__free_unpacked(q, NULL);
	gs__finish_ok(c, &r.base);
}

static void gs__server_meta(struct gs_call *c)
{
	Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
	char *ext[8];
	size_t n = 0;
	ext[n++] = "model_repository";
	ext[n++] = "model_configuration";
	ext[n++] = "schedule_policy";
	ext[n++] = "system_shared_memory";
	ext[n++] = "statistics";
	ext[n++] = "parameters";
	if (gs_cuda_available())
		ext[n++] = "cuda_shared_memory";
	r.name = "ferry";
	r.version = PACKAGE_VERSION;
	r.n_extensions = n;
	r.extensions = ext;
	gs__finish_ok(c, &r.base);
}

/* The shape a client sees: the batch dimension (-1) first when the model
 * batches. */
static int64_t *gs__meta_shape(const struct model_config *cfg, const struct modelcfg_tensor *t,
			       size_t *n, int64_t *buf)
{
	size_t k = 0;
	if (cfg->max_batch_size > 0)
		buf[k++] = -1;
	for (int d = 0; d < t->ndims; d++)
		buf[k++] = t->dims[d];
	*n = k;
	return buf;
}

static void gs__model_meta(struct gs_call *c)
{
	Inference__ModelMetadataRequest *q = (Inference__ModelMetadataRequest *)
		gs__decode(c, &inference__model_metadata_request__descriptor);
	if (!q)
		return;
	char msg[1400];
	int code;
	models_rdlock();
	struct models_entry *m = gs__model(q->name, q->version, &code, msg, sizeof(msg));
	if (!m) {
		models_unlock();
		inference__model_metadata_request__free_unpacked(q, NULL);
		gs__finish_err(c, code, msg);
		return;
	}
	const struct model_config *cfg = m->cfg;
	int nt = cfg->ninputs + cfg->noutputs, nv = 0;
	Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
	Inference__ModelMetadataResponse__TensorMetadata *tm = calloc((size_t)nt + 1, sizeof(*tm));
	Inference__ModelMetadataResponse__TensorMetadata **tp = calloc((size_t)nt + 1, sizeof(*tp));
	int64_t (*shapes)[MODELCFG_MAX_DIMS + 1] = calloc((size_t)nt + 1, sizeof(*shapes));
	char (*vers)[24] = calloc(MODELS_MAX_MODELS, sizeof(*vers));
	char **vp = calloc(MODELS_MAX_MODELS, sizeof(*vp));
	if (!tm || !tp || !shapes || !vers || !vp) {
		models_unlock();
		gs__finish_err(c, FERRY_ENOMEM, "out of memory");
		goto out;
	}
	r.name = m->name;
	r.platform = cfg->platform[0] ? cfg->platform : cfg->backend;
	if (gs__version(q->version) >= 0) {
		snprintf(vers[0], sizeof(vers[0]), "%" PRId64, m->version);
		vp[nv++] = vers[0];
	} else {
		for (struct models_entry *o = models_next(NULL); o && nv < MODELS_MAX_MODELS; o = models_next(o)) {
			if (strcmp(o->name, m->name) || o->state != MODELS_READY || o->version < 0)
				continue;
			snprintf(vers[nv], sizeof(vers[nv]), "%" PRId64, o->version);
			vp[nv] = vers[nv];
			nv++;
		}
	}
	r.n_versions = (size_t)nv;
	r.versions = vp;
	for (int i = 0; i < nt; i++) {
		const struct modelcfg_tensor *t = i < cfg->ninputs ? &cfg->inputs[i]
							     : &cfg->outputs[i - cfg->ninputs];
		inference__model_metadata_response__tensor_metadata__init(&tm[i]);
		tm[i].name = t->name;
		tm[i].datatype = (char *)ferry_dtype_name(t->dtype);
		tm[i].shape = gs__meta_shape(cfg, t, &tm[i].n_shape, shapes[i]);
		tp[i] = &tm[i];
	}
	r.n_inputs = (size_t)cfg->ninputs;
	r.inputs = tp;
	r.n_outputs = (size_t)cfg->noutputs;
	r.outputs = tp + cfg->ninputs;
	grpc_byte_buffer *bb = gs__bb_pack(&r.base);
	models_unlock();
	if (bb)
		gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
	else
		gs__finish_err(c, FERRY_ENOMEM, "out of memory");
out:
	free(tm);
	free(tp);
	free(shapes);
	free(vers);
	free(vp);
	inference__model_metadata_request__free_unpacked(q, NULL);
}

/* ---------------------------------------------------------------------- */
/* ModelConfig: ferry's model_config in Triton's message layout            */

struct gs_cfgbuf {
	Inference__ModelConfig mc;
	Inference__ModelVersionPolicy vp;
	Inference__ModelVersionPolicy__Latest vl;
	Inference__ModelVersionPolicy__All va;
	Inference__ModelVersionPolicy__Specific vs;
	Inference__ModelInput *in, **inp;
	Inference__ModelOutput *out, **outp;
	Inference__ModelTensorReshape *rs;
	Inference__ModelInstanceGroup *ig, **igp;
	Inference__ModelDynamicBatching db;
	int32_t *pref;
	Inference__ModelQueuePolicy dqp, *pqp;
	Inference__ModelDynamicBatching__PriorityQueuePolicyEntry *pqe, **pqep;
	Inference__ModelConfig__ParametersEntry *pe, **pep;
	Inference__ModelParameter *pv;
};

static void gs__cfgbuf_free(struct gs_cfgbuf *b)
{
	free(b->in); free(b->inp); free(b->out); free(b->outp); free(b->rs);
	free(b->ig); free(b->igp); free(b->pref); free(b->pqp); free(b->pqe);
	free(b->pqep); free(b->pe); free(b->pep); free(b->pv);
}

static void gs__queue_policy(Inference__ModelQueuePolicy *q, const struct modelcfg_queue_policy *p)
{
	inference__model_queue_policy__init(q);
	q->timeout_action = p->timeout_action == MODELCFG_TIMEOUT_DELAY ?
		INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__DELAY :
		INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__REJECT;
	q->default_timeout_microseconds = p->default_timeout_us;
	q->allow_timeout_override = p->allow_timeout_override;
	q->max_queue_size = p->max_queue_size;
}

static int gs__cfg_fill(struct gs_cfgbuf *b, const struct model_config *cfg)
{
	const int ni = cfg->ninputs, no = cfg->noutputs, ng = cfg->ngroups;
	const struct modelcfg_dynbatch *d = &cfg->dynbatch;

	memset(b, 0, sizeof(*b));
	inference__model_config__init(&b->mc);
	b->mc.name = cfg->name;
	b->mc.platform = cfg->platform;
	b->mc.backend = cfg->backend;
	b->mc.max_batch_size = cfg->max_batch_size;

	inference__model_version_policy__init(&b->vp);
	switch (cfg->version_policy.kind) {
	case MODELCFG_VP_ALL:
		inference__model_version_policy__all__init(&b->va);
		b->vp.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL;
		b->vp.all = &b->va;
		break;
	case MODELCFG_VP_SPECIFIC:
		inference__model_version_policy__specific__init(&b->vs);
		b->vs.n_versions = (size_t)cfg->version_policy.nversions;
		b->vs.versions = cfg->version_policy.versions;
		b->vp.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC;
		b->vp.specific = &b->vs;
		break;
	default:
		inference__model_version_policy__latest__init(&b->vl);
		b->vl.num_versions = cfg->version_policy.latest_num;
		b->vp.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST;
		b->vp.latest = &b->vl;
		break;
	}
	b->mc.version_policy = &b->vp;

	b->in = calloc((size_t)ni + 1, sizeof(*b->in));
	b->inp = calloc((size_t)ni + 1, sizeof(*b->inp));
	b->out = calloc((size_t)no + 1, sizeof(*b->out));
	b->outp = calloc((size_t)no + 1, sizeof(*b->outp));
	b->rs = calloc((size_t)(ni + no) + 1, sizeof(*b->rs));
	b->ig = calloc((size_t)ng + 1, sizeof(*b->ig));
	b->igp = calloc((size_t)ng + 1, sizeof(*b->igp));
	b->pref = calloc((size_t)d->npreferred + 1, sizeof(*b->pref));
	b->pqp = calloc((size_t)d->nprio_policies + 1, sizeof(*b->pqp));
	b->pqe = calloc((size_t)d->nprio_policies + 1, sizeof(*b->pqe));
	b->pqep = calloc((size_t)d->nprio_policies + 1, sizeof(*b->pqep));
	b->pe = calloc((size_t)cfg->nparams + 1, sizeof(*b->pe));
	b->pep = calloc((size_t)cfg->nparams + 1, sizeof(*b->pep));
	b->pv = calloc((size_t)cfg->nparams + 1, sizeof(*b->pv));
	if (!b->in || !b->inp || !b->out || !b->outp || !b->rs || !b->ig || !b->igp ||
	    !b->pref || !b->pqp || !b->pqe || !b->pqep || !b->pe || !b->pep || !b->pv)
		return FERRY_ENOMEM;

	for (int i = 0; i < ni; i++) {
		const struct modelcfg_tensor *t = &cfg->inputs[i];
		inference__model_input__init(&b->in[i]);
		b->in[i].name = t->name;
		b->in[i].data_type = (Inference__DataType)t->dtype;
		b->in[i].n_dims = (size_t)t->ndims;
		b->in[i].dims = (int64_t *)t->dims;
		b->in[i].optional = t->optional;
		if (t->has_reshape) {
			inference__model_tensor_reshape__init(&b->rs[i]);
			b->rs[i].n_shape = (size_t)t->reshape_ndims;
			b->rs[i].shape = (int64_t *)t->reshape;
			b->in[i].reshape = &b->rs[i];
		}
		b->inp[i] = &b->in[i];
	}
	for (int i = 0; i < no; i++) {
		const struct modelcfg_tensor *t = &cfg->outputs[i];
		inference__model_output__init(&b->out[i]);
		b->out[i].name = t->name;
		b->out[i].data_type = (Inference__DataType)t->dtype;
		b->out[i].n_dims = (size_t)t->ndims;
		b->out[i].dims = (int64_t *)t->dims;
		if (t->has_reshape) {
			inference__model_tensor_reshape__init(&b->rs[ni + i]);
			b->rs[ni + i].n_shape = (size_t)t->reshape_ndims;
			b->rs[ni + i].shape = (int64_t *)t->reshape;
			b->out[i].reshape = &b->rs[ni + i];
		}
		b->outp[i] = &b->out[i];
	}
	b->mc.n_input = (size_t)ni;
	b->mc.input = b->inp;
	b->mc.n_output = (size_t)no;
	b->mc.output = b->outp;

	for (int g = 0; g < ng; g++) {
		const struct modelcfg_instance_group *ig = &cfg->groups[g];
		inference__model_instance_group__init(&b->ig[g]);
		b->ig[g].name = ig->name;
		b->ig[g].count = ig->count;
		b->ig[g].kind = (Inference__ModelInstanceGroup__Kind)ig->kind;
		b->ig[g].n_gpus = (size_t)ig->ngpus;
		b->ig[g].gpus = (int32_t *)ig->gpus;
		b->igp[g] = &b->ig[g];
	}
	b->mc.n_instance_group = (size_t)ng;
	b->mc.instance_group = b->igp;

	if (d->enabled) {
		inference__model_dynamic_batching__init(&b->db);
		for (int i = 0; i < d->npreferred; i++)
			b->pref[i] = d->preferred[i];
		b->db.n_preferred_batch_size = (size_t)d->npreferred;
		b->db.preferred_batch_size = b->pref;
		b->db.max_queue_delay_microseconds = d->max_queue_delay_us;
		b->db.preserve_ordering = d->preserve_ordering;
		b->db.priority_levels = d->priority_levels;
		b->db.default_priority_level = d->default_priority_level;
		gs__queue_policy(&b->dqp, &d->default_policy);
		b->db.default_queue_policy = &b->dqp;
		for (int i = 0; i < d->nprio_policies; i++) {
			inference__model_dynamic_batching__priority_queue_policy_entry__init(&b->pqe[i]);
			b->pqe[i].key = d->prio_policies[i].level;
			gs__queue_policy(&b->pqp[i], &d->prio_policies[i].policy);
			b->pqe[i].value = &b->pqp[i];
			b->pqep[i] = &b->pqe[i];
		}
		b->db.n_priority_queue_policy = (size_t)d->nprio_policies;
		b->db.priority_queue_policy = b->pqep;
		b->mc.scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING;
		b->mc.dynamic_batching = &b->db;
	}
	for (int i = 0; i < cfg->nparams; i++) {
		inference__model_config__parameters_entry__init(&b->pe[i]);
		inference__model_parameter__init(&b->pv[i]);
		b->pv[i].string_value = cfg->params[i].value;
		b->pe[i].key = cfg->params[i].key;
		b->pe[i].value = &b->pv[i];
		b->pep[i] = &b->pe[i];
	}
	b->mc.n_parameters = (size_t)cfg->nparams;
	b->mc.parameters = b->pep;
	return 0;
}

static void gs__model_config(struct gs_call *c)
{
	Inference__ModelConfigRequest *q = (Inference__ModelConfigRequest *)
		gs__decode(c, &inference__model_config_request__descriptor);
	if (!q)
		return;
	char msg[1400];
	int code;
	struct gs_cfgbuf b;
	grpc_byte_buffer *bb = NULL;

	models_rdlock();
	struct models_entry *m = gs__model(q->name, q->version, &code, msg, sizeof(msg));
	if (m) {
		Inference__ModelConfigResponse r = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
		if (gs__cfg_fill(&b, m->cfg) == 0) {
			r.config = &b.mc;
			bb = gs__bb_pack(&r.base);
		}
		gs__cfgbuf_free(&b);
		if (!bb) {
			code = FERRY_ENOMEM;
			snprintf(msg, sizeof(msg), "out of memory");
		}
	}
	models_unlock();
	inference__model_config_request__free_unpacked(q, NULL);
	if (bb)
		gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
	else
		gs__finish_err(c, code, msg);
}

/* ---------------------------------------------------------------------- */
/* Statistics and repository                                               */

static void gs__stats(struct gs_call *c)
{
	Inference__ModelStatisticsRequest *q = (Inference__ModelStatisticsRequest *)
		gs__decode(c, &inference__model_statistics_request__descriptor);
	if (!q)
		return;
	const char *name = q->name ? q->name : "";
	int64_t v = gs__version(q->version);
	Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
	struct gs_stat {
		Inference__ModelStatistics ms;
		Inference__InferStatistics is;
		Inference__StatisticDuration d[6];
		Inference__InferBatchStatistics bs[65];
		Inference__InferBatchStatistics *bsp[65];
		Inference__StatisticDuration bd[65];
		char ver[24];
	} *st = NULL;
	Inference__ModelStatistics **msp = NULL;
	size_t n = 0, cap = 0;
	bool known = false;
	int code = 0;
	char msg[512];
	grpc_byte_buffer *bb = NULL;

	if (v == -2) {
		code = FERRY_EINVAL;
		snprintf(msg, sizeof(msg), "invalid model version '%s'", q->version);
		goto done;
	}
	models_rdlock();
	for (struct models_entry *m = models_next(NULL); m; m = models_next(m)) {
		if (*name && strcmp(m->name, name))
			continue;
		if (v >= 0 && m->version != v)
			continue;
		known = true;
		if (m->state != MODELS_READY || !m->sm)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			void *a = realloc(st, nc * sizeof(*st));
			if (!a)
				break;
			st = a;
			a = realloc(msp, nc * sizeof(*msp));
			if (!a)
				break;
			msp = a;
			cap = nc;
		}
		struct gs_stat *s = &st[n];
		struct sched_stats ss;
		sched_model_stats(m->sm, &ss);
		memset(s, 0, sizeof(*s));
		inference__model_statistics__init(&s->ms);
		inference__infer_statistics__init(&s->is);
		for (int k = 0; k < 6; k++)
			inference__statistic_duration__init(&s->d[k]);
		snprintf(s->ver, sizeof(s->ver), "%" PRId64, m->version);
		s->ms.name = m->name;
		s->ms.version = s->ver;
		s->ms.last_inference = atomic_load(&m->last_infer_ms);
		s->ms.inference_count = ss.inference_count;
		s->ms.execution_count = ss.execution_count;
		s->d[0].count = ss.success;
		s->d[0].ns = ss.queue_ns + ss.compute_input_ns + ss.compute_infer_ns +
			     ss.compute_output_ns;
		s->d[1].count = ss.failure;
		s->d[2].count = ss.success;
		s->d[2].ns = ss.queue_ns;
		s->d[3].count = ss.success;
		s->d[3].ns = ss.compute_input_ns;
		s->d[4].count = ss.success;
		s->d[4].ns = ss.compute_infer_ns;
		s->d[5].count = ss.success;
		s->d[5].ns = ss.compute_output_ns;
		s->is.success = &s->d[0];
		s->is.fail = &s->d[1];
		s->is.queue = &s->d[2];
		s->is.compute_input = &s->d[3];
		s->is.compute_infer = &s->d[4];
		s->is.compute_output = &s->d[5];
		s->ms.inference_stats = &s->is;
		size_t nb = 0;
		for (int b = 1; b <= 64; b++) {
			if (!ss.batch_execs[b])
				continue;
			inference__infer_batch_statistics__init(&s->bs[nb]);
			inference__statistic_duration__init(&s->bd[nb]);
			s->bs[nb].batch_size = (uint64_t)b;
			s->bd[nb].count = ss.batch_execs[b];
			s->bs[nb].compute_infer = &s->bd[nb];
			nb++;
		}
		s->ms.n_batch_stats = nb;
		s->ms.batch_stats = s->bsp;
		n++;
	}
	/* Pointers into st only now: realloc may have moved it. */
	for (size_t i = 0; i < n; i++) {
		struct gs_stat *s = &st[i];
		s->ms.version = s->ver;
		s->is.success = &s->d[0];
		s->is.fail = &s->d[1];
		s->is.queue = &s->d[2];
		s->is.compute_input = &s->d[3];
		s->is.compute_infer = &s->d[4];
		s->is.compute_output = &s->d[5];
		s->ms.inference_stats = &s->is;
		for (size_t b = 0; b < s->ms.n_batch_stats; b++) {
			s->bs[b].compute_infer = &s->bd[b];
			s->bsp[b] = &s->bs[b];
		}
		s->ms.batch_stats = s->bsp;
		msp[i] = &s->ms;
	}
	if (*name && !known) {
		code = FERRY_ENOENT;
		if (v >= 0)
			snprintf(msg, sizeof(msg), "requested model '%s' version %" PRId64
				 " is not found", name, v);
		else
			snprintf(msg, sizeof(msg), "requested model '%s' is not found", name);
	} else {
		r.n_model_stats = n;
		r.model_stats = msp;
		bb = gs__bb_pack(&r.base);
		if (!bb) {
			code = FERRY_ENOMEM;
			snprintf(msg, sizeof(msg), "out of memory");
		}
	}
	models_unlock();
done:
	free(st);
	free(msp);
	inference__model_statistics_request__free_unpacked(q, NULL);
	if (bb)
		gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
	else
		gs__finish_err(c, code, msg);
}

static void gs__repo_index(struct gs_call *c)
{
	Inference__RepositoryIndexRequest *q = (Inference__RepositoryIndexRequest *)
		gs__decode(c, &inference__repository_index_request__descriptor);
	if (!q)
		return;
	Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
	struct gs_ix {
		Inference__RepositoryIndexResponse__ModelIndex mi;
		char ver[24];
	} *ix = calloc(MODELS_MAX_MODELS, sizeof(*ix));
	Inference__RepositoryIndexResponse__ModelIndex **ixp = calloc(MODELS_MAX_MODELS, sizeof(*ixp));
	size_t n = 0;
	grpc_byte_buffer *bb = NULL;

	if (ix && ixp) {
		models_rdlock();
		for (struct models_entry *m = models_next(NULL); m && n < MODELS_MAX_MODELS; m = models_next(m)) {
			if (q->ready && m->state != MODELS_READY)
				continue;
			inference__repository_index_response__model_index__init(&ix[n].mi);
			ix[n].mi.name = m->name;
			if (m->version >= 0)
				snprintf(ix[n].ver, sizeof(ix[n].ver), "%" PRId64, m->version);
			ix[n].mi.version = ix[n].ver;
			ix[n].mi.state = (char *)models_state_name(m->state);
			ix[n].mi.reason = m->reason;
			ixp[n] = &ix[n].mi;
			n++;
		}
		r.n_models = n;
		r.models = ixp;
		bb = gs__bb_pack(&r.base);
		models_unlock();
	}
	free(ix);
	free(ixp);
	inference__repository_index_request__free_unpacked(q, NULL);
	if (bb)
		gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
	else
		gs__finish_err(c, FERRY_ENOMEM, "out of memory");
}

static void gs__repo_load(struct gs_call *c, bool load)
{
	/* Load and unload requests have the same layout up to field 2. */
	Inference__RepositoryModelLoadRequest *q = (Inference__RepositoryModelLoadRequest *)
		gs__decode(c, &inference__repository_model_load_request__descriptor);
	if (!q)
		return;
	char msg[1200];
	int ret;
	if (load && q->n_parameters) {
		ret = FERRY_ENOTSUP;
		snprintf(msg, sizeof(msg), "load parameters (config override, files) are not "
			 "supported by ferry");
	} else if (load) {
		ret = models_load_model(q->model_name, msg, sizeof(msg));
	} else {
		ret = models_unload_model(q->model_name, msg, sizeof(msg));
	}
	inference__repository_model_load_request__free_unpacked(q, NULL);
	if (ret) {
		gs__finish_err(c, ret == FERRY_CONFIG ? FERRY_EINVAL : ret, msg);
		return;
	}
	if (load) {
		Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
		gs__finish_ok(c, &r.base);
	} else {
		Inference__RepositoryModelUnloadResponse r = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
		gs__finish_ok(c, &r.base);
	}
}

/* ---------------------------------------------------------------------- */
/* Shared memory                                                           */

struct gs_shm_list {
	Inference__SystemSharedMemoryStatusResponse__RegionsEntry *e;
	Inference__SystemSharedMemoryStatusResponse__RegionsEntry **ep;
	Inference__SystemSharedMemoryStatusResponse__RegionStatus *s;
	char (*names)[256];
	char (*keys)[256];
	size_t n, cap;
};

static void gs__shm_add(void *arg, const char *name, const char *key, uint64_t off,
			uint64_t size)
{
	struct gs_shm_list *l = arg;
	if (l->n >= l->cap)
		return;
	size_t i = l->n++;
	snprintf(l->names[i], sizeof(l->names[i]), "%s", name);
	snprintf(l->keys[i], sizeof(l->keys[i]), "%s", key);
	inference__system_shared_memory_status_response__region_status__init(&l->s[i]);
	l->s[i].name = l->names[i];
	l->s[i].key = l->keys[i];
	l->s[i].offset = off;
	l->s[i].byte_size = size;
	inference__system_shared_memory_status_response__regions_entry__init(&l->e[i]);
	l->e[i].key = l->names[i];
	l->e[i].value = &l->s[i];
	l->ep[i] = &l->e[i];
}

static void gs__shm_status(struct gs_call *c)
{
	Inference__SystemSharedMemoryStatusRequest *q = (Inference__SystemSharedMemoryStatusRequest *)
		gs__decode(c, &inference__system_shared_memory_status_request__descriptor);
	if (!q)
		return;
	struct gs_shm_list l = { .cap = 4096 };
	char msg[512];
	int ret = FERRY_ENOMEM;
	grpc_byte_buffer *bb = NULL;
	snprintf(msg, sizeof(msg), "out of memory");
	l.e = calloc(l.cap, sizeof(*l.e));
	l.ep = calloc(l.cap, sizeof(*l.ep));
	l.s = calloc(l.cap, sizeof(*l.s));
	l.names = calloc(l.cap, sizeof(*l.names));
	l.keys = calloc(l.cap, sizeof(*l.keys));
	if (l.e && l.ep && l.s && l.names && l.keys) {
		ret = gs_shm_status(q->name, gs__shm_add, &l, msg, sizeof(msg));
		if (!ret) {
			Inference__SystemSharedMemoryStatusResponse r =
				INFERENCE__SYSTEM_SHARED_MEMORY_STATUS_RESPONSE__INIT;
			r.n_regions = l.n;
			r.regions = l.ep;
			bb = gs__bb_pack(&r.base);
		}
	}
	free(l.e); free(l.ep); free(l.s); free(l.names); free(l.keys);
	inference__system_shared_memory_status_request__free_unpacked(q, NULL);
	if (bb)
		gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
	else
		gs__finish_err(c, ret ? ret : FERRY_ENOMEM, msg);
}

static void gs__shm_register(struct gs_call *c)
{
	Inference__SystemSharedMemoryRegisterRequest *q = (Inference__SystemSharedMemoryRegisterRequest *)
		gs__decode(c, &inference__system_shared_memory_register_request__descriptor);
	if (!q)
		return;
	char msg[768];
	int ret = gs_shm_register(q->name, q->key, q->offset, q->byte_size, msg, sizeof(msg));
	inference__system_shared_memory_register_request__free_unpacked(q, NULL);
	if (ret) {
		gs__finish_err(c, ret, msg);
		return;
	}
	Inference__SystemSharedMemoryRegisterResponse r =
		INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_RESPONSE__INIT;
	gs__finish_ok(c, &r.base);
}

static void gs__shm_unregister(struct gs_call *c)
{
	Inference__SystemSharedMemoryUnregisterRequest *q = (Inference__SystemSharedMemoryUnregisterRequest *)
		gs__decode(c, &inference__system_shared_memory_unregister_request__descriptor);
	if (!q)
		return;
	gs_shm_unregister(q->name);
	inference__system_shared_memory_unregister_request__free_unpacked(q, NULL);
	Inference__SystemSharedMemoryUnregisterResponse r =
		INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_RESPONSE__INIT;
	gs__finish_ok(c, &r.base);
}

struct gs_cuda_list {
	Inference__CudaSharedMemoryStatusResponse__RegionsEntry e[256], *ep[256];
	Inference__CudaSharedMemoryStatusResponse__RegionStatus s[256];
	char names[256][256];
	size_t n;
};

static void gs__cuda_add(void *arg, const char *name, int64_t dev, uint64_t size)
{
	struct gs_cuda_list *l = arg;
	if (l->n >= 256)
		return;
	size_t i = l->n++;
	snprintf(l->names[i], sizeof(l->names[i]), "%s", name);
	inference__cuda_shared_memory_status_response__region_status__init(&l->s[i]);
	l->s[i].name = l->names[i];
	l->s[i].device_id = (uint64_t)dev;
	l->s[i].byte_size = size;
	inference__cuda_shared_memory_status_response__regions_entry__init(&l->e[i]);
	l->e[i].key = l->names[i];
	l->e[i].value = &l->s[i];
	l->ep[i] = &l->e[i];
}

static void gs__cuda_status(struct gs_call *c)
{
	Inference__CudaSharedMemoryStatusRequest *q = (Inference__CudaSharedMemoryStatusRequest *)
		gs__decode(c, &inference__cuda_shared_memory_status_request__descriptor);
	if (!q)
		return;
	char msg[512];
	int ret;
	grpc_byte_buffer *bb = NULL;
	struct gs_cuda_list *l = calloc(1, sizeof(*l));
	if (!gs_cuda_available()) {
		ret = FERRY_UNAVAILABLE;
		snprintf(msg, sizeof(msg), "CUDA shared memory is not available: this ferryd "
			 "has no CUDA device");
	} else if (!l) {
		ret = FERRY_ENOMEM;
		snprintf(msg, sizeof(msg), "out of memory");
	} else if (!(ret = gs_cuda_status(q->name, gs__cuda_add, l, msg, sizeof(msg)))) {
		Inference__CudaSharedMemoryStatusResponse r =
			INFERENCE__CUDA_SHARED_MEMORY_STATUS_RESPONSE__INIT;
		r.n_regions = l->n;
		r.regions = l->ep;
		bb = gs__bb_pack(&r.base);
	}
	free(l);
	inference__cuda_shared_memory_status_request__free_unpacked(q, NULL);
	if (bb)
		gs__finish(c, GRPC_STATUS_OK, NULL, bb, true);
	else
		gs__finish_err(c, ret ? ret : FERRY_ENOMEM, ret ? msg : "out of memory");
}

static void gs__cuda_register(struct gs_call *c)
{
	Inference__CudaSharedMemoryRegisterRequest *q = (Inference__CudaSharedMemoryRegisterRequest *)
		gs__decode(c, &inference__cuda_shared_memory_register_request__descriptor);
	if (!q)
		return;
	char msg[512];
	int ret = gs_cuda_register(q->name, q->raw_handle.data, q->raw_handle.len, q->device_id,
				   q->byte_size, msg, sizeof(msg));
	inference__cuda_shared_memory_register_request__free_unpacked(q, NULL);
	if (ret) {
		gs__finish_err(c, ret, msg);
		return;
	}
	Inference__CudaSharedMemoryRegisterResponse r =
		INFERENCE__CUDA_SHARED_MEMORY_REGISTER_RESPONSE__INIT;
	gs__finish_ok(c, &r.base);
}

static void gs__cuda_unregister(struct gs_call *c)
{
	Inference__CudaSharedMemoryUnregisterRequest *q = (Inference__CudaSharedMemoryUnregisterRequest *)
		gs__decode(c, &inference__cuda_shared_memory_unregister_request__descriptor);
	if (!q)
		return;
	/* Succeeds without CUDA too: perf_analyzer calls it on every run. */
	gs_cuda_unregister(q->name);
	inference__cuda_shared_memory_unregister_request__free_unpacked(q, NULL);
	Inference__CudaSharedMemoryUnregisterResponse r =
		INFERENCE__CUDA_SHARED_MEMORY_UNREGISTER_RESPONSE__INIT;
	gs__finish_ok(c, &r.base);
}

/* ---------------------------------------------------------------------- */
/* ModelInfer and ModelStreamInfer                                         */

static void gs__stream_push(struct gs_call *c, grpc_byte_buffer *bb);

static uint64_t gs__realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ModelStreamInferResponse by hand: field 1 (error_message) or field 2
 * (infer_response, already packed), both length-delimited. */
static grpc_byte_buffer *gs__stream_msg(int field, const uint8_t *body, size_t len)
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

static void gs__req_free(struct gs_req *r)
{
	gs_infer_fini(&r->inf);
	if (r->msg)
		inference__model_infer_request__free_unpacked(r->msg, NULL);
	free(r);
}

/* sched_req.done: any thread, once. */
static void gs__infer_done(struct sched_req *sr, int status, const char *msg)
{
	struct gs_req *r = (struct gs_req *)sr;
	struct gs_call *c = r->c;
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
		if (status)
			gs__finish_err(c, status, emsg);
		else
			gs__finish(c, GRPC_STATUS_OK, NULL, gs__bb_take(buf, len), true);
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

/* Decode, validate and submit one ModelInfer request.  Returns 0 when the
 * scheduler took it (done() answers), else a ferry code with msg. */
static int gs__infer_submit(struct gs_call *c, bool stream, char *msg, size_t msglen)
{
	grpc_byte_buffer_reader rd;
	int code;

	struct gs_req *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(msg, msglen, "out of memory");
		return FERRY_ENOMEM;
	}
	r->c = c;
	r->stream = stream;
	if (!c->recv_buf || !grpc_byte_buffer_reader_init(&rd, c->recv_buf)) {
		free(r);
		snprintf(msg, msglen, "unreadable request message");
		return FERRY_EINVAL;
	}
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	grpc_byte_buffer_destroy(c->recv_buf);
	c->recv_buf = NULL;
	r->msg = inference__model_infer_request__unpack(NULL, GRPC_SLICE_LENGTH(s),
							GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	if (!r->msg) {
		free(r);
		snprintf(msg, msglen, "malformed ModelInferRequest");
		return FERRY_EINVAL;
	}

	models_rdlock();
	struct models_entry *m = gs__model(r->msg->model_name, r->msg->model_version, &code, msg, msglen);
	if (!m)
		goto fail;
	r->model = m;
	code = gs_infer_prepare(&r->inf, r->msg, m->cfg, msg, msglen);
	if (code)
		goto fail;
	/* The client's deadline bounds the time in the queue too, where the
	 * model's policy lets a request override its timeout. */
	gpr_timespec dl = gpr_convert_clock_type(c->details.deadline, GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) < 0 && !stream) {
		gpr_timespec left = gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC));
		int64_t us = (int64_t)left.tv_sec * 1000000 + left.tv_nsec / 1000;
		if (us <= 0) {
			code = FERRY_ETIMEDOUT;
			snprintf(msg, msglen, "Deadline Exceeded");
			goto fail;
		}
		if (!r->inf.req.timeout_us || (uint64_t)us < r->inf.req.timeout_us)
			r->inf.req.timeout_us = (uint64_t)us;
	}
	r->inf.req.done = gs__infer_done;
	r->inf.req.owner = r;
	code = sched_submit(m->sm, &r->inf.req, msg, msglen);
	if (code)
		goto fail;
	models_unlock();
	return 0;
fail:
	models_unlock();
	gs__req_free(r);
	return code;
}

static void gs__infer(struct gs_call *c)
{
	char msg[1024];
	int ret = gs__infer_submit(c, false, msg, sizeof(msg));
	if (ret)
		gs__finish_err(c, ret, msg);
}

/* Streams: lock held.  Start sending the head of the queue, or finish
 * when there is nothing left to do. */
static void gs__stream_kick_locked(struct gs_call *c, bool *finish)
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

static void gs__stream_finish(struct gs_call *c)
{
	gs__finish(c, GRPC_STATUS_OK, NULL, NULL, false);
}

static void gs__stream_push(struct gs_call *c, grpc_byte_buffer *bb)
{
	bool finish;
	pthread_mutex_lock(&c->lock);
	c->pending--;
	if (bb) {
		struct gs_out *o = calloc(1, sizeof(*o));
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

static void gs__stream_recv_next(struct gs_call *c, bool send_md)
{
	grpc_op ops[2];
	int n = 0;
	memset(ops, 0, sizeof(ops));
	if (send_md)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &c->recv_buf;
	n++;
	if (grpc_call_start_batch(c->call, ops, (size_t)n, &c->t_recv, NULL) != GRPC_CALL_OK) {
		bool finish;
		pthread_mutex_lock(&c->lock);
		c->read_done = true;
		gs__stream_kick_locked(c, &finish);
		pthread_mutex_unlock(&c->lock);
		if (finish)
			gs__stream_finish(c);
	}
}

/* A stream received a message (or its end). */
static void gs__stream_recv(struct gs_call *c, bool ok)
{
	bool finish = false;
	if (!ok || !c->recv_buf) {
		pthread_mutex_lock(&c->lock);
		c->read_done = true;
		gs__stream_kick_locked(c, &finish);
		pthread_mutex_unlock(&c->lock);
		if (finish)
			gs__stream_finish(c);
		return;
	}
	char msg[1024];
	pthread_mutex_lock(&c->lock);
	c->pending++;
	pthread_mutex_unlock(&c->lock);
	int ret = gs__infer_submit(c, true, msg, sizeof(msg));
	if (ret) {
		/* Errors of one request travel in the stream; it goes on. */
		gs__stream_push(c, gs__stream_msg(1, (const uint8_t *)msg, strlen(msg)));
	}
	gs__stream_recv_next(c, false);
}

static void gs__stream_sent(struct gs_call *c)
{
	bool finish;
	pthread_mutex_lock(&c->lock);
	struct gs_out *o = c->q_head;
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

static int gs__method(const grpc_slice *m)
{
	static const char prefix[] = "/inference.GRPCInferenceService/";
	size_t len = GRPC_SLICE_LENGTH(*m), pl = sizeof(prefix) - 1;
	const char *s = (const char *)GRPC_SLICE_START_PTR(*m);
	if (len <= pl || memcmp(s, prefix, pl))
		return -1;
	for (int i = 0; i < GS_M__COUNT; i++) {
		size_t nl = strlen(gs__method_names[i]);
		if (len - pl == nl && !memcmp(s + pl, gs__method_names[i], nl))
			return i;
	}
	return -1;
}

static void gs__on_new(struct gs_call *c)
{
	gs__request(c->th);     /* keep GS_PENDING calls requested */
	c->method = gs__method(&c->details.method);
	if (c->method < 0) {
		char msg[300];
		int l = (int)GRPC_SLICE_LENGTH(c->details.method);
		snprintf(msg, sizeof(msg), "unknown method %.*s", l > 200 ? 200 : l,
			 (const char *)GRPC_SLICE_START_PTR(c->details.method));
		gs__finish(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL, true);
		return;
	}
	if (c->method == GS_M_STREAM) {
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

static void gs__on_recv(struct gs_call *c, bool ok)
{
	if (c->method == GS_M_STREAM) {
		gs__stream_recv(c, ok);
		return;
	}
	if (!ok || !c->recv_buf) {
		gs__finish(c, GRPC_STATUS_CANCELLED, "no request message", NULL, true);
		return;
	}
	switch (c->method) {
	case GS_M_LIVE: gs__server_live(c); break;
	case GS_M_READY: gs__server_ready(c); break;
	case GS_M_MODEL_READY: gs__model_ready(c); break;
	case GS_M_SERVER_META: gs__server_meta(c); break;
	case GS_M_MODEL_META: gs__model_meta(c); break;
	case GS_M_INFER: gs__infer(c); break;
	case GS_M_CONFIG: gs__model_config(c); break;
	case GS_M_STATS: gs__stats(c); break;
	case GS_M_REPO_INDEX: gs__repo_index(c); break;
	case GS_M_LOAD: gs__repo_load(c, true); break;
	case GS_M_UNLOAD: gs__repo_load(c, false); break;
	case GS_M_SHM_STATUS: gs__shm_status(c); break;
	case GS_M_SHM_REG: gs__shm_register(c); break;
	case GS_M_SHM_UNREG: gs__shm_unregister(c); break;
	case GS_M_CUDA_STATUS: gs__cuda_status(c); break;
	case GS_M_CUDA_REG: gs__cuda_register(c); break;
	case GS_M_CUDA_UNREG: gs__cuda_unregister(c); break;
	default: gs__finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL, true); break;
	}
}

static void *gs__thread(void *arg)
{
	struct gs_thread *th = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(th->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		struct gs_tag *t = ev.tag;
		struct gs_call *c = t->c;
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

int gs_start(const struct gs_options *o)
{
	char addr[300];
	int ret;

	if (o->port <= 0)
		return 0;
	gs_shm_enable(o->allow_client_shm);
	grpc_init();
	int64_t max = o->max_message_bytes > 0 && o->max_message_bytes <= INT32_MAX ?
		      o->max_message_bytes : INT32_MAX;
	grpc_arg args[3];
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
	grpc_channel_args ca = { .num_args = 3, .args = args };

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
	int port = grpc_server_add_http2_port(gs__s.server, addr, cr);
	grpc_server_credentials_release(cr);
	if (port <= 0) {
		log_error("gRPC: cannot listen on %s (address in use or not local?)", addr);
		ret = FERRY_EBUSY;
		goto fail;
	}
	grpc_server_start(gs__s.server);
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

void gs_stop(void)
{
	if (!gs__s.running)
		return;
	gs__s.running = false;
	atomic_store(&gs__s.stopping, true);
	gs__s.shutdown_tag = (struct gs_tag){ NULL, GS_T_SHUTDOWN };
	grpc_server_shutdown_and_notify(gs__s.server, gs__s.shutdown_cq, &gs__s.shutdown_tag);
	grpc_server_cancel_all_calls(gs__s.server);
	grpc_completion_queue_pluck(gs__s.shutdown_cq, &gs__s.shutdown_tag,
				    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	/*
	 * Requests still in a model's queue answer (into cancelled calls)
	 * when they complete; their calls go away after that.  Inline models
	 * run on this (the loop) thread, which no longer polls them: run
	 * what is ready for a moment, then stop the models, which flushes
	 * every queue without waiting out batching delays.  ferryd stops
	 * them next anyway; sched_model_stop is idempotent.
	 */
	uint64_t t0 = sched_now_ns();
	bool flushed = false;
	pthread_mutex_lock(&gs__s.lock);
	while (gs__s.live > 0) {
		pthread_mutex_unlock(&gs__s.lock);
		uint64_t now = sched_now_ns(), dl = UINT64_MAX;
		if (!flushed && now - t0 > 200000000ULL) {
			log_info("gRPC: finishing queued requests");
			models_stop_all();
			flushed = true;
		} else if (!flushed) {
			models_run_inline(now, &dl);
		}
		pthread_mutex_lock(&gs__s.lock);
		if (gs__s.live == 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&gs__s.cond, &gs__s.lock, &ts);
	}
	pthread_mutex_unlock(&gs__s.lock);
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
	gs_shm_fini();
	grpc_shutdown();
	log_info("gRPC: stopped");
}
