/* SPDX-License-Identifier: MIT */
/*
 * client_grpc.c - libferry's remote transport: the same ferry.h calls over
 * the KServe v2 gRPC protocol (ferryd's front end or any Triton-compatible
 * server), on gRPC's core C API through proto/rpc.h.
 *
 * Memory: a remote request's tensors live on the heap, or in the client's
 * arena when it has one (a client that failed over from a local broker);
 * inputs are copied once into the gRPC message, outputs once out of it.
 *
 * Threads: many requests fly over one channel; completions arrive on one
 * completion queue that whichever thread waits drains (reap_lock), like
 * the local transport's CQ.  sq_lock guards the in-flight count and list.
 *
 * Error codes: a ferry server sends the ferry code of each error in the
 * trailing metadata "ferry-code" (rpc.h), so that a mistake gets the same
 * code as over shared memory; other servers' statuses are mapped.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"
#include "proto/kserve.pb-c.h"
#include "proto/rpc.h"

#define GRPC_CTL_TIMEOUT_NS 10000000000LL          /* metadata, statistics */
#define GRPC_ADMIN_TIMEOUT_NS 120000000000LL       /* a model load */

struct client__call {
	struct rpc_call k;
	ferry_request *r;
	struct client__call *prev, *next;       /* client__grpc.calls */
};

struct client__grpc {
	struct client__tp tp;
	grpc_channel *ch;
	grpc_completion_queue *cq;      /* async infers; drained under reap_lock */
	uint32_t depth, inflight;       /* sq_lock */
	struct client__call *calls;     /* in flight; sq_lock */
};

#define GRPC(t) ((struct client__grpc *)(t))

/* One blocking unary call: 0 with *resp (free it with
 * protobuf_c_message_free_unpacked), or a ferry code with the message in
 * ferry_last_error(). */
static int client__unary(struct client__grpc *g, const char *method, const ProtobufCMessage *req,
			 const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
			 int64_t timeout_ns)
{
	struct rpc_result res;
	int ret = rpc_unary(g->ch, method, req, rdesc, resp, timeout_ns, &res);
	if (ret)
		client__fail(ret, "%s (gRPC status %d from %s)", res.msg, (int)res.status,
			     g->tp.address);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Open / close                                                            */

#define GRPC_PEM_MAX (1 << 20)

/* The PEM file named by environment variable @var, NUL-terminated, in
 * *pem (free() it); NULL when the variable is unset or empty.  0, or
 * FERRY_EINVAL with the reason. */
static int client__read_pem(const char *var, char **pem)
{
	const char *path = getenv(var);
	*pem = NULL;
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return client__fail(FERRY_EINVAL, "%s: cannot read %s: %s", var, path,
				    strerror(errno));
	char *buf = malloc(GRPC_PEM_MAX + 1);
	size_t n = buf ? fread(buf, 1, GRPC_PEM_MAX + 1, f) : 0;
	int err = ferror(f);
	fclose(f);
	if (!buf)
		return client__fail(FERRY_ENOMEM, "out of memory");
	if (err || n == 0 || n > GRPC_PEM_MAX) {
		free(buf);
		return client__fail(FERRY_EINVAL, "%s: %s is %s", var, path,
				    err ? "unreadable" : n ? "larger than 1 MiB" : "empty");
	}
	buf[n] = '\0';
	*pem = buf;
	return 0;
}

/* The channel's credentials: plaintext, or for grpcs:// TLS with the
 * roots of $FERRY_GRPC_TLS_CA (else gRPC's defaults) and, for mutual TLS,
 * the client certificate and key of $FERRY_GRPC_TLS_CERT and
 * $FERRY_GRPC_TLS_KEY.  0 with *out, or a ferry code. */
static int client__credentials(bool tls, grpc_channel_credentials **out)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	int ret;

	*out = NULL;
	if (!tls) {
		*out = grpc_insecure_credentials_create();
		return 0;
	}
	if ((ret = client__read_pem("FERRY_GRPC_TLS_CA", &ca)) ||
	    (ret = client__read_pem("FERRY_GRPC_TLS_CERT", &cert)) ||
	    (ret = client__read_pem("FERRY_GRPC_TLS_KEY", &key)))
		goto out;
	if (!cert != !key) {
		ret = client__fail(FERRY_EINVAL, "mutual TLS needs both FERRY_GRPC_TLS_CERT and "
				   "FERRY_GRPC_TLS_KEY (only %s is set)",
				   cert ? "FERRY_GRPC_TLS_CERT" : "FERRY_GRPC_TLS_KEY");
		goto out;
	}
	grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };
	*out = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
	ret = *out ? 0 : client__fail(FERRY_EINVAL, "gRPC refused the TLS credentials");
out:
	free(ca);
	free(cert);
	if (key) /* gRPC keeps its own copy; leave none of the key behind */
		explicit_bzero(key, strlen(key));
	free(key);
	return ret;
}

static void client__grpc_close(struct client__tp *t, bool requeue);

/* address: "grpc://host:port", "grpcs://host:port" or "host:port". */
static int client__grpc_open(ferry_client *c, const char *address, const ferry_options *o,
			     struct client__tp **out)
{
	struct client__grpc *g;
	grpc_channel_credentials *cr;
	bool tls = false;
	int ret;

	if (!strncmp(address, "grpc://", 7)) {
		address += 7;
	} else if (!strncmp(address, "grpcs://", 8)) {
		address += 8;
		tls = true;
	}
	if (!*address || strlen(address) >= sizeof(g->tp.address))
		return client__fail(FERRY_EINVAL, "bad gRPC server address '%s'", address);
	grpc_init();
	if ((ret = client__credentials(tls, &cr))) {
		grpc_shutdown();
		return ret;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		grpc_channel_credentials_release(cr);
		grpc_shutdown();
		return client__fail(FERRY_ENOMEM, "out of memory");
	}
	g->tp.ops = &client__grpc_ops;
	g->tp.c = c;
	snprintf(g->tp.address, sizeof(g->tp.address), "%s", address);
	g->depth = o && o->queue_depth ? o->queue_depth : 256;
	/* gRPC's own load balancing: a name that resolves to several
	 * brokers spreads calls over them, and skips those that are down. */
	g->ch = rpc_channel_balanced(g->tp.address, cr);
	grpc_channel_credentials_release(cr);
	g->cq = grpc_completion_queue_create_for_next(NULL);

	/* Is anyone there?  gRPC connects lazily: ask, with a deadline. */
	Inference__ServerLiveRequest q = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	ProtobufCMessage *resp;
	ret = client__unary(g, RPC_KSERVE("ServerLive"), &q.base,
			    &inference__server_live_response__descriptor, &resp, c->probe_ns);
	if (ret) {
		char why[400];
		snprintf(why, sizeof(why), "%s", ferry_last_error());
		client__grpc_close(&g->tp, false);
		if (ret == FERRY_ETIMEDOUT || ret == FERRY_UNAVAILABLE)
			ret = FERRY_ECONNREFUSED;
		return client__fail(ret, "cannot reach the gRPC server at %s%s: %s", address,
				    tls ? " over TLS" : "", why);
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	*out = &g->tp;
	return 0;
}

/* Ready to serve (ServerReady): the health check of the endpoint list. */
static int client__grpc_check(struct client__tp *t)
{
	struct client__grpc *g = GRPC(t);
	Inference__ServerReadyRequest q = INFERENCE__SERVER_READY_REQUEST__INIT;
	Inference__ServerReadyResponse *r;
	int ret = client__unary(g, RPC_KSERVE("ServerReady"), &q.base,
				&inference__server_ready_response__descriptor,
				(ProtobufCMessage **)&r, t->c->probe_ns);
	if (ret)
		return ret;
	bool ready = r->ready;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ready ? 0 : client__fail(FERRY_UNAVAILABLE, "%s is not ready (ServerReady)",
					t->address);
}

static void client__grpc_close(struct client__tp *t, bool requeue)
{
	struct client__grpc *g = GRPC(t);
	ferry_client *c = t->c;

	/* Requests in flight are cancelled; their completions are drained
	 * here (reap_lock held) so that nothing refers to the instance
	 * afterwards. */
	pthread_mutex_lock(&c->sq_lock);
	for (struct client__call *k = g->calls; k; k = k->next)
		grpc_call_cancel(k->k.call, NULL);
	pthread_mutex_unlock(&c->sq_lock);
	while (g->calls) {
		grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		struct client__call *k = ev.tag;
		pthread_mutex_lock(&c->sq_lock);
		if (k->prev)
			k->prev->next = k->next;
		else
			g->calls = k->next;
		if (k->next)
			k->next->prev = k->prev;
		ferry_request *r = k->r;
		if (!requeue || !client__request_lost(r, FERRY_UNAVAILABLE,
						      "the client left this endpoint")) {
			r->client = NULL;
			if (r->freed)
				client__request_destroy(r);
			else
				client__request_complete(r, FERRY_EPIPE,
							 "the client closed its session");
		}
		pthread_mutex_unlock(&c->sq_lock);
		rpc_call_end(&k->k, NULL, NULL, NULL);
		free(k);
	}
	grpc_completion_queue_shutdown(g->cq);
	while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(g->cq);
	grpc_channel_destroy(g->ch);
	free(g);
	grpc_shutdown();
}

/* ---------------------------------------------------------------------- */
/* Models and administration                                               */

static int64_t client__parse_version(const char *v)
{
	if (!v || !*v)
		return -1;
	char *end;
	long long n = strtoll(v, &end, 10);
	return *end || n < 0 ? -1 : (int64_t)n;
}

/* ModelMetadata (the versions) and ModelConfig (the tensors). */
static int client__grpc_model_get(struct client__tp *t, const char *name, int64_t version,
				  ferry_model **out)
{
	struct client__grpc *g = GRPC(t);
	char ver[24] = "";
	Inference__ModelMetadataResponse *md = NULL;
	Inference__ModelConfigResponse *cf = NULL;
	ferry_model *m = NULL;
	int ret;

	if (version >= 0)
		snprintf(ver, sizeof(ver), "%" PRId64, version);
	Inference__ModelMetadataRequest mq = INFERENCE__MODEL_METADATA_REQUEST__INIT;
	mq.name = (char *)name;
	mq.version = ver;
	ret = client__unary(g, RPC_KSERVE("ModelMetadata"), &mq.base,
			    &inference__model_metadata_response__descriptor,
			    (ProtobufCMessage **)&md, GRPC_CTL_TIMEOUT_NS);
	if (ret)
		goto out;
	Inference__ModelConfigRequest cq = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
	cq.name = (char *)name;
	cq.version = ver;
	ret = client__unary(g, RPC_KSERVE("ModelConfig"), &cq.base,
			    &inference__model_config_response__descriptor,
			    (ProtobufCMessage **)&cf, GRPC_CTL_TIMEOUT_NS);
	if (ret)
		goto out;
	const Inference__ModelConfig *mc = cf->config;
	if (!mc || mc->n_input + mc->n_output > 4096) {
		ret = client__fail(FERRY_EPROTO, "%s sent no usable config for '%s'",
				   g->tp.address, name);
		goto out;
	}
	m = client__model_new(t->c, name, (int)mc->n_input, (int)mc->n_output);
	if (!m) {
		ret = client__fail(FERRY_ENOMEM, "out of memory");
		goto out;
	}
	m->version = version;
	if (version < 0) {
		/* The latest of the versions the server lists. */
		for (size_t i = 0; i < md->n_versions; i++) {
			int64_t v = client__parse_version(md->versions[i]);
			if (v > m->version)
				m->version = v;
		}
	}
	m->max_batch = mc->max_batch_size;
	for (int i = 0; i < m->nin + m->nout; i++) {
		const Inference__ModelInput *mi = i < m->nin ? mc->input[i] : NULL;
		const Inference__ModelOutput *mo = i < m->nin ? NULL : mc->output[i - m->nin];
		const char *tn = mi ? mi->name : mo->name;
		int dt = mi ? mi->data_type : mo->data_type;
		size_t nd = mi ? mi->n_dims : mo->n_dims;
		const int64_t *dims = mi ? mi->dims : mo->dims;
		struct client__tmeta *tm = &m->t[i];
		if (nd > FERRY_MAX_DIMS - 1 || !ferry_dtype_name(dt)) {
			ret = client__fail(FERRY_EPROTO, "%s: model '%s' has a tensor ferry cannot "
					   "describe ('%s')", g->tp.address, name, tn ? tn : "");
			goto out;
		}
		if (!(tm->name = strdup(tn ? tn : ""))) {
			ret = client__fail(FERRY_ENOMEM, "out of memory");
			goto out;
		}
		tm->dtype = (ferry_dtype)dt;
		tm->ndims = (int)nd;
		memcpy(tm->dims, dims, nd * sizeof(int64_t));
	}
	*out = m;
	m = NULL;
out:
	if (m)
		client__model_free(m);
	if (md)
		protobuf_c_message_free_unpacked(&md->base, NULL);
	if (cf)
		protobuf_c_message_free_unpacked(&cf->base, NULL);
	return ret;
}

/* RepositoryIndex: no backend or batch size there (unknown). */
static int client__grpc_model_list(struct client__tp *t,
				   void (*fn)(void *arg, const ferry_model_info *m), void *arg)
{
	Inference__RepositoryIndexRequest q = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
	Inference__RepositoryIndexResponse *r;
	int ret = client__unary(GRPC(t), RPC_KSERVE("RepositoryIndex"), &q.base,
				&inference__repository_index_response__descriptor,
				(ProtobufCMessage **)&r, GRPC_CTL_TIMEOUT_NS);
	if (ret)
		return ret;
	for (size_t i = 0; i < r->n_models; i++) {
		const Inference__RepositoryIndexResponse__ModelIndex *x = r->models[i];
		ferry_model_info mi = {
			.name = x->name ? x->name : "",
			.version = client__parse_version(x->version),
			.state = x->state ? x->state : "",
			.reason = x->reason ? x->reason : "",
			.backend = NULL,
			.max_batch_size = -1,
		};
		fn(arg, &mi);
	}
	ret = (int)r->n_models;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ret;
}

/* RepositoryModelLoad / RepositoryModelUnload. */
static int client__grpc_model_admin(struct client__tp *t, const char *name, bool unload)
{
	ProtobufCMessage *r = NULL;
	int ret;
	if (unload) {
		Inference__RepositoryModelUnloadRequest q =
			INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
		q.model_name = (char *)name;
		ret = client__unary(GRPC(t), RPC_KSERVE("RepositoryModelUnload"), &q.base,
				    &inference__repository_model_unload_response__descriptor, &r,
				    GRPC_ADMIN_TIMEOUT_NS);
	} else {
		Inference__RepositoryModelLoadRequest q =
			INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
		q.model_name = (char *)name;
		ret = client__unary(GRPC(t), RPC_KSERVE("RepositoryModelLoad"), &q.base,
				    &inference__repository_model_load_response__descriptor, &r,
				    GRPC_ADMIN_TIMEOUT_NS);
	}
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);
	return ret;
}

/* ModelStatistics, reported as ferry_model_statistics does. */
static int client__grpc_statistics(struct client__tp *t, const char *name, int64_t version,
				   void (*fn)(void *arg, const ferry_model_stats *s), void *arg)
{
	char vbuf[32] = "";
	Inference__ModelStatisticsRequest q = INFERENCE__MODEL_STATISTICS_REQUEST__INIT;
	Inference__ModelStatisticsResponse *r;
	if (version >= 0)
		snprintf(vbuf, sizeof(vbuf), "%" PRId64, version);
	q.name = (char *)(name ? name : "");
	q.version = vbuf;
	int ret = client__unary(GRPC(t), RPC_KSERVE("ModelStatistics"), &q.base,
				&inference__model_statistics_response__descriptor,
				(ProtobufCMessage **)&r, GRPC_CTL_TIMEOUT_NS);
	if (ret)
		return ret;
	for (size_t i = 0; i < r->n_model_stats; i++) {
		const Inference__ModelStatistics *x = r->model_stats[i];
		const Inference__InferStatistics *is = x->inference_stats;
		ferry_model_stats st = {
			.name = x->name, .version = client__parse_version(x->version),
			.inference_count = x->inference_count,
			.execution_count = x->execution_count,
		};
		if (is) {
			st.success = is->success ? is->success->count : 0;
			st.failure = is->fail ? is->fail->count : 0;
			st.queue_ns = is->queue ? is->queue->ns : 0;
			st.compute_input_ns = is->compute_input ? is->compute_input->ns : 0;
			st.compute_infer_ns = is->compute_infer ? is->compute_infer->ns : 0;
			st.compute_output_ns = is->compute_output ? is->compute_output->ns : 0;
		}
		for (size_t k = 0; k < x->n_batch_stats; k++) {
			const Inference__InferBatchStatistics *b = x->batch_stats[k];
			uint64_t bs = b->batch_size;
			st.batch_executions[bs < 64 ? bs : 64] +=
				b->compute_infer ? b->compute_infer->count : 0;
		}
		fn(arg, &st);
	}
	ret = (int)r->n_model_stats;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ret;
}

/* ServerMetadata: name, version and extensions; the rest is unknown. */
static int client__grpc_server_status(struct client__tp *t, ferry_server_status **out)
{
	Inference__ServerMetadataRequest q = INFERENCE__SERVER_METADATA_REQUEST__INIT;
	Inference__ServerMetadataResponse *r;
	int ret = client__unary(GRPC(t), RPC_KSERVE("ServerMetadata"), &q.base,
				&inference__server_metadata_response__descriptor,
				(ProtobufCMessage **)&r, GRPC_CTL_TIMEOUT_NS);
	if (ret)
		return ret;
	size_t sb = strlen(r->name ? r->name : "") + strlen(r->version ? r->version : "") + 2;
	int next = r->n_extensions > 1024 ? 1024 : (int)r->n_extensions;
	for (int i = 0; i < next; i++)
		sb += strlen(r->extensions[i] ? r->extensions[i] : "") + 1;
	ferry_server_status *s = client__status_new(sb, next);
	if (!s) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return client__fail(FERRY_ENOMEM, "out of memory");
	}
	s->name = client__status_str(s, r->name);
	s->version = client__status_str(s, r->version);
	const char **ext = (const char **)s->extensions;
	for (int i = 0; i < next; i++)
		ext[i] = client__status_str(s, r->extensions[i]);
	s->nextensions = next;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Inference                                                               */

static int client__grpc_submit(struct client__tp *t, ferry_request *r)
{
	struct client__grpc *g = GRPC(t);
	ferry_client *c = t->c;
	ferry_model *m = r->model;
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest__InferInputTensor in[64], *inp[64];
	Inference__ModelInferRequest__InferRequestedOutputTensor out[64], *outp[64];
	ProtobufCBinaryData raw[64];
	Inference__ModelInferRequest__ParametersEntry pe[2], *pep[2];
	Inference__InferParameter pv[2];
	char ver[24] = "";
	size_t ni = 0, no = 0, np = 0;

	if (m->nin > 64 || m->nout > 64)
		return client__fail(FERRY_E2BIG, "model '%s': more than 64 inputs or outputs",
				    m->name);
	for (int i = 0; i < m->nin; i++) {
		const struct client__tensor *ti = &r->t[i];
		if (!ti->set)
			continue;
		inference__model_infer_request__infer_input_tensor__init(&in[ni]);
		in[ni].name = m->t[i].name;
		in[ni].datatype = (char *)ferry_dtype_name(ti->dtype);
		if (!in[ni].datatype)
			return client__fail(FERRY_DTYPE, "input '%s': invalid dtype %d",
					    m->t[i].name, (int)ti->dtype);
		in[ni].n_shape = (size_t)ti->ndims;
		in[ni].shape = (int64_t *)ti->dims;
		raw[ni].data = ti->buf.ptr;
		raw[ni].len = ti->bytes;
		inp[ni] = &in[ni];
		ni++;
	}
	for (int o = 0; o < m->nout && !r->want_all; o++) {
		if (!r->t[m->nin + o].set)
			continue;
		inference__model_infer_request__infer_requested_output_tensor__init(&out[no]);
		out[no].name = m->t[m->nin + o].name;
		outp[no] = &out[no];
		no++;
	}
	/* A model asked for as FERRY_LATEST: the server's newest version,
	 * whichever that is now (a reload may have replaced the one it was
	 * when the client got it). */
	if (m->version >= 0 && !m->asked_latest)
		snprintf(ver, sizeof(ver), "%" PRId64, m->version);
	q.model_name = m->name;
	q.model_version = ver;
	q.n_inputs = ni;
	q.inputs = inp;
	q.n_raw_input_contents = ni;
	q.raw_input_contents = raw;
	q.n_outputs = no;
	q.outputs = outp;
	static const char *const keys[2] = { "priority", "timeout" };
	const uint64_t vals[2] = { r->priority, r->wire_timeout_us };
	for (int k = 0; k < 2; k++) {
		if (!vals[k])
			continue;
		inference__model_infer_request__parameters_entry__init(&pe[np]);
		inference__infer_parameter__init(&pv[np]);
		pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
		pv[np].uint64_param = vals[k];
		pe[np].key = (char *)keys[k];
		pe[np].value = &pv[np];
		pep[np] = &pe[np];
		np++;
	}
	q.n_parameters = np;
	q.parameters = pep;

	struct client__call *k = calloc(1, sizeof(*k));
	grpc_byte_buffer *send = rpc_pack(&q.base);
	if (!k || !send) {
		free(k);
		if (send)
			grpc_byte_buffer_destroy(send);
		return client__fail(FERRY_ENOMEM, "out of memory");
	}
	k->r = r;

	pthread_mutex_lock(&c->sq_lock);
	if (g->inflight >= g->depth) {
		pthread_mutex_unlock(&c->sq_lock);
		grpc_byte_buffer_destroy(send);
		free(k);
		return client__fail(FERRY_EAGAIN, "%u requests in flight: the queue depth",
				    g->depth);
	}
	/* The request's timeout doubles as the call's deadline. */
	gpr_timespec dl = rpc_deadline(r->wire_timeout_us ? (int64_t)r->wire_timeout_us * 1000 : -1);
	atomic_store_explicit(&r->state, CLIENT__INFLIGHT, memory_order_relaxed);
	struct rpc_result res;
	if (rpc_call_start(&k->k, g->ch, g->cq, RPC_KSERVE("ModelInfer"), dl, send, k, &res)) {
		atomic_store_explicit(&r->state, CLIENT__IDLE, memory_order_relaxed);
		pthread_mutex_unlock(&c->sq_lock);
		free(k);
		return client__fail(res.code, "%s", res.msg);
	}
	k->next = g->calls;
	if (g->calls)
		g->calls->prev = k;
	g->calls = k;
	g->inflight++;
	pthread_mutex_unlock(&c->sq_lock);
	return 0;
}

/* Outputs from a response into the request (the reaper owns r now). */
static int client__outputs(ferry_request *r, const Inference__ModelInferResponse *resp,
			   char *msg, size_t msglen)
{
	ferry_model *m = r->model;
	for (size_t i = 0; i < resp->n_outputs; i++) {
		const Inference__ModelInferResponse__InferOutputTensor *ot = resp->outputs[i];
		int o = client__find(m, ot->name, false);
		if (o < 0)
			continue;   /* not one we know: ignore, like extra fields */
		struct client__tensor *t = &r->t[m->nin + o];
		if (i >= resp->n_raw_output_contents || ot->n_shape > FERRY_MAX_DIMS ||
		    !ot->datatype) {
			snprintf(msg, msglen, "output '%s': the server sent no raw contents or a "
				 "bad shape", ot->name);
			return FERRY_EPROTO;
		}
		size_t len = resp->raw_output_contents[i].len;
		if (client__buf_alloc(r, &t->buf, len)) {
			snprintf(msg, msglen, "%s", ferry_last_error());
			return FERRY_ENOMEM;
		}
		if (len)
			memcpy(t->buf.ptr, resp->raw_output_contents[i].data, len);
		t->bytes = len;
		t->set = true;
		int dt = 0;
		for (int d = 1; d < FERRY_TYPE__COUNT; d++)
			if (!strcmp(ferry_dtype_name(d), ot->datatype))
				dt = d;
		t->dtype = (ferry_dtype)dt;
		t->ndims = (int)ot->n_shape;
		memcpy(t->dims, ot->shape, ot->n_shape * sizeof(int64_t));
	}
	return 0;
}

/* One completion: the call's result into its request.  Returns it, or
 * NULL when it was lost with its server and waits to be sent again. */
static ferry_request *client__complete(struct client__grpc *g, struct client__call *k)
{
	ferry_client *c = g->tp.c;
	ferry_request *r = k->r;
	Inference__ModelInferResponse *resp = NULL;
	struct rpc_result res;
	char msg[FSHM_ERRMSG_LEN];

	/* The server went away (or never answered): UNAVAILABLE, or
	 * CANCELLED by a server shutting down (only close cancels a call
	 * here, and it does not come this way), with no ferry code.  A
	 * ferry server's own errors carry their code, and such a request is
	 * not sent again: its answer would be the same. */
	bool lost = (k->k.status == GRPC_STATUS_UNAVAILABLE ||
		     k->k.status == GRPC_STATUS_CANCELLED) && !rpc_trailer_code(&k->k.md_trail);
	int status = rpc_call_end(&k->k, &inference__model_infer_response__descriptor,
				  (ProtobufCMessage **)&resp, &res);
	snprintf(msg, sizeof(msg), "%.*s", (int)sizeof(msg) - 1, res.msg);
	if (status == FERRY_EPROTO && res.status == GRPC_STATUS_OK)
		snprintf(msg, sizeof(msg), "malformed ModelInferResponse from %.100s",
			 g->tp.address);
	if (resp) {
		status = r->freed ? 0 : client__outputs(r, resp, msg, sizeof(msg));
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	pthread_mutex_lock(&c->sq_lock);
	if (k->prev)
		k->prev->next = k->next;
	else
		g->calls = k->next;
	if (k->next)
		k->next->prev = k->prev;
	g->inflight--;
	if (lost) {
		/* Release: pairs with the acquire of whoever finds it down. */
		atomic_store_explicit(&g->tp.down, true, memory_order_release);
		if (client__request_lost(r, status, msg))
			r = NULL;
	} else {
		client__request_complete(r, status, msg);
	}
	pthread_mutex_unlock(&c->sq_lock);
	free(k);
	return r;
}

/* Drain the completion queue, waiting up to wait_ns for the first. */
static int client__grpc_reap(struct client__tp *t, ferry_request **done, int max,
			     int64_t wait_ns)
{
	struct client__grpc *g = GRPC(t);
	int n = 0;
	gpr_timespec dl = rpc_deadline(wait_ns <= 0 ? 0 : wait_ns);
	while (n < max) {
		grpc_event ev = grpc_completion_queue_next(g->cq, dl, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		ferry_request *r = client__complete(g, ev.tag);
		if (r)
			done[n++] = r;
		dl = rpc_deadline(0);   /* the rest without waiting */
	}
	return n;
}

const struct client__tp_ops client__grpc_ops = {
	.name = "grpc",
	.open = client__grpc_open,
	.close = client__grpc_close,
	.check = client__grpc_check,
	.model_get = client__grpc_model_get,
	.model_list = client__grpc_model_list,
	.statistics = client__grpc_statistics,
	.model_admin = client__grpc_model_admin,
	.server_status = client__grpc_server_status,
	.session_list = NULL,
	.submit = client__grpc_submit,
	.reap = client__grpc_reap,
	.cuda_register = NULL,
	.cuda_release = NULL,
};
