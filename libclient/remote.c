/* SPDX-License-Identifier: MIT */
/*
 * remote.c - libferry over gRPC (KServe v2), on gRPC's core C API.
 *
 * Locks (as in client.c): ctl_lock guards the model list; sq_lock the
 * in-flight count and each request's state; reap_lock lets one thread at
 * a time drain the completion queue; wait_lock + wait_cond wake the other
 * waiters after each reap.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <ferry/ferry.h>

#include "libclient/client.h"
#include "libclient/remote.h"
#include "proto/kserve.pb-c.h"

#define FR_METHOD(m) "/inference.GRPCInferenceService/" m
#define FR_CTL_TIMEOUT_MS 10000
#define FR_NONE UINT64_MAX

struct fr_client {
	grpc_channel *ch;
	grpc_completion_queue *cq;      /* async infers */
	char target[256];
	uint32_t depth, inflight;       /* sq_lock */
	struct fr_call *calls;          /* in flight; sq_lock */
};

struct fr_call {
	grpc_call *call;
	ferry_request *r;
	grpc_metadata_array md_init, md_trail;
	grpc_byte_buffer *send, *recv;
	grpc_status_code status;
	grpc_slice details;
	struct fr_call *prev, *next;    /* fr_client.calls */
};

static int fr__code(grpc_status_code s, const char *details)
{
	switch (s) {
	case GRPC_STATUS_OK: return 0;
	case GRPC_STATUS_NOT_FOUND: return FERRY_ENOENT;
	case GRPC_STATUS_INVALID_ARGUMENT: return FERRY_EINVAL;
	case GRPC_STATUS_UNAVAILABLE: return FERRY_UNAVAILABLE;
	case GRPC_STATUS_DEADLINE_EXCEEDED: return FERRY_ETIMEDOUT;
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
		return details && strstr(details, "larger than max") ? FERRY_E2BIG : FERRY_ENOSPC;
	case GRPC_STATUS_UNIMPLEMENTED: return FERRY_ENOTSUP;
	case GRPC_STATUS_PERMISSION_DENIED: return FERRY_EPERM;
	case GRPC_STATUS_ALREADY_EXISTS: return FERRY_EBUSY;
	case GRPC_STATUS_CANCELLED: return FERRY_ECANCELED;
	default: return FERRY_EPROTO;
	}
}

static gpr_timespec fr__deadline_ms(int64_t ms)
{
	if (ms < 0)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_byte_buffer *fr__pack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	protobuf_c_message_pack(m, buf);
	grpc_slice s = grpc_slice_new(buf, len, free);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

static ProtobufCMessage *fr__unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
	grpc_byte_buffer_reader rd;
	if (!bb || !grpc_byte_buffer_reader_init(&rd, bb))
		return NULL;
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s),
							GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	return m;
}

/* One blocking unary call on a private queue.  0 with *resp (free it with
 * protobuf_c_message_free_unpacked), or a ferry code with the message in
 * ferry_last_error(). */
static int fr__unary(struct fr_client *rc, const char *method, const ProtobufCMessage *req,
		     const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
		     int64_t timeout_ms)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice ms = grpc_slice_from_static_string(method);
	grpc_call *call = grpc_channel_create_call(rc->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, ms,
						   NULL, fr__deadline_ms(timeout_ms), NULL);
	grpc_metadata_array mi, mt;
	grpc_byte_buffer *send = fr__pack(req), *recv = NULL;
	grpc_status_code st = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	int ret;

	*resp = NULL;
	grpc_metadata_array_init(&mi);
	grpc_metadata_array_init(&mt);
	if (!send) {
		ret = fc_fail(FERRY_ENOMEM, "out of memory");
		goto out;
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &mi;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &mt;
	ops[5].data.recv_status_on_client.status = &st;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
		ret = fc_fail(FERRY_EPROTO, "gRPC: cannot start a call");
		goto out;
	}
	grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (st != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(details);
		ret = fr__code(st, d);
		if (st == GRPC_STATUS_UNAVAILABLE && !strcmp(method, FR_METHOD("ServerLive")))
			ret = FERRY_ECONNREFUSED;
		fc_fail(ret, "%s (gRPC status %d from %s)", d, (int)st, rc->target);
		gpr_free(d);
		goto out;
	}
	*resp = fr__unpack(recv, rdesc);
	ret = *resp ? 0 : fc_fail(FERRY_EPROTO, "malformed response from %s", rc->target);
out:
	if (send)
		grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&mi);
	grpc_metadata_array_destroy(&mt);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Connect / close                                                         */

#define FR_PEM_MAX (1 << 20)

/* The PEM file named by environment variable @var, NUL-terminated, in
 * *pem (free() it); NULL when the variable is unset or empty.  0, or
 * FERRY_EINVAL with the reason. */
static int fr__read_pem(const char *var, char **pem)
{
	const char *path = getenv(var);
	*pem = NULL;
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return fc_fail(FERRY_EINVAL, "%s: cannot read %s: %s", var, path, strerror(errno));
	char *buf = malloc(FR_PEM_MAX + 1);
	size_t n = buf ? fread(buf, 1, FR_PEM_MAX + 1, f) : 0;
	int err = ferror(f);
	fclose(f);
	if (!buf)
		return fc_fail(FERRY_ENOMEM, "out of memory");
	if (err || n == 0 || n > FR_PEM_MAX) {
		free(buf);
		return fc_fail(FERRY_EINVAL, "%s: %s is %s", var, path,
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
static int fr__credentials(bool tls, grpc_channel_credentials **out)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	int ret;

	*out = NULL;
	if (!tls) {
		*out = grpc_insecure_credentials_create();
		return 0;
	}
	if ((ret = fr__read_pem("FERRY_GRPC_TLS_CA", &ca)) ||
	    (ret = fr__read_pem("FERRY_GRPC_TLS_CERT", &cert)) ||
	    (ret = fr__read_pem("FERRY_GRPC_TLS_KEY", &key)))
		goto out;
	if (!cert != !key) {
		ret = fc_fail(FERRY_EINVAL, "mutual TLS needs both FERRY_GRPC_TLS_CERT and "
			      "FERRY_GRPC_TLS_KEY (only %s is set)",
			      cert ? "FERRY_GRPC_TLS_CERT" : "FERRY_GRPC_TLS_KEY");
		goto out;
	}
	grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };
	*out = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
	ret = *out ? 0 : fc_fail(FERRY_EINVAL, "gRPC refused the TLS credentials");
out:
	free(ca);
	free(cert);
	if (key) /* gRPC keeps its own copy; leave none of the key behind */
		explicit_bzero(key, strlen(key));
	free(key);
	return ret;
}

int fr_connect(ferry_client **out, const char *address, const ferry_options *o)
{
	ferry_client *c;
	struct fr_client *rc;
	grpc_channel_credentials *cr;
	bool tls = false;
	int ret;

	if (!strncmp(address, "grpc://", 7)) {
		address += 7;
	} else if (!strncmp(address, "grpcs://", 8)) {
		address += 8;
		tls = true;
	}
	if (!*address || strlen(address) >= sizeof(rc->target))
		return fc_fail(FERRY_EINVAL, "bad gRPC server address '%s'", address);
	grpc_init();
	if ((ret = fr__credentials(tls, &cr))) {
		grpc_shutdown();
		return ret;
	}
	c = calloc(1, sizeof(*c));
	rc = calloc(1, sizeof(*rc));
	if (!c || !rc) {
		free(c);
		free(rc);
		grpc_channel_credentials_release(cr);
		grpc_shutdown();
		return fc_fail(FERRY_ENOMEM, "out of memory");
	}
	c->remote = rc;
	c->sock = -1;
	c->db_broker.efd = c->db_client.efd = -1;
	c->seg.fd = -1;
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->sq_lock, NULL);
	pthread_mutex_init(&c->reap_lock, NULL);
	pthread_mutex_init(&c->wait_lock, NULL);
	pthread_cond_init(&c->wait_cond, NULL);
	snprintf(rc->target, sizeof(rc->target), "%s", address);
	rc->depth = o && o->queue_depth ? o->queue_depth : 256;

	grpc_arg args[2];
	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = INT32_MAX;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = INT32_MAX;
	grpc_channel_args ca = { .num_args = 2, .args = args };
	rc->ch = grpc_channel_create(rc->target, cr, &ca);
	grpc_channel_credentials_release(cr);
	rc->cq = grpc_completion_queue_create_for_next(NULL);

	/* Is anyone there?  gRPC connects lazily: ask, with a deadline. */
	Inference__ServerLiveRequest q = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	ProtobufCMessage *resp;
	ret = fr__unary(rc, FR_METHOD("ServerLive"), &q.base, &inference__server_live_response__descriptor,
			&resp, 5000);
	if (ret) {
		char why[400];
		snprintf(why, sizeof(why), "%s", ferry_last_error());
		fr_close(c);
		if (ret == FERRY_ETIMEDOUT)
			ret = FERRY_ECONNREFUSED;
		return fc_fail(ret, "cannot reach the gRPC server at %s%s: %s", address,
			       tls ? " over TLS" : "", why);
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	*out = c;
	return 0;
}

void fr_close(ferry_client *c)
{
	struct fr_client *rc = c->remote;

	/* Requests in flight are cancelled; their completions are drained
	 * here so that nothing refers to the client afterwards. */
	pthread_mutex_lock(&c->sq_lock);
	for (struct fr_call *k = rc->calls; k; k = k->next)
		grpc_call_cancel(k->call, NULL);
	pthread_mutex_unlock(&c->sq_lock);
	pthread_mutex_lock(&c->reap_lock);
	while (rc->calls) {
		grpc_event ev = grpc_completion_queue_next(rc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		struct fr_call *k = ev.tag;
		pthread_mutex_lock(&c->sq_lock);
		if (k->prev)
			k->prev->next = k->next;
		else
			rc->calls = k->next;
		if (k->next)
			k->next->prev = k->prev;
		ferry_request *r = k->r;
		r->client = NULL;
		if (r->freed)
			fc_request_destroy(r);
		else
			fc_request_complete(r, FERRY_EPIPE, "the client closed its session");
		pthread_mutex_unlock(&c->sq_lock);
		grpc_call_unref(k->call);
		grpc_metadata_array_destroy(&k->md_init);
		grpc_metadata_array_destroy(&k->md_trail);
		if (k->send)
			grpc_byte_buffer_destroy(k->send);
		if (k->recv)
			grpc_byte_buffer_destroy(k->recv);
		grpc_slice_unref(k->details);
		free(k);
	}
	pthread_mutex_unlock(&c->reap_lock);
	grpc_completion_queue_shutdown(rc->cq);
	while (grpc_completion_queue_next(rc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(rc->cq);
	grpc_channel_destroy(rc->ch);
	ferry_model *m = c->models;
	while (m) {
		ferry_model *n = m->next;
		fc_model_free(m);
		m = n;
	}
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->sq_lock);
	pthread_mutex_destroy(&c->reap_lock);
	pthread_mutex_destroy(&c->wait_lock);
	pthread_cond_destroy(&c->wait_cond);
	free(rc);
	free(c);
	grpc_shutdown();
}

/* ---------------------------------------------------------------------- */
/* Models                                                                  */

static int64_t fr__parse_version(const char *v)
{
	if (!v || !*v)
		return -1;
	char *end;
	long long n = strtoll(v, &end, 10);
	return *end || n < 0 ? -1 : (int64_t)n;
}

int fr_model_get(ferry_client *c, const char *name, int64_t version, ferry_model **out)
{
	struct fr_client *rc = c->remote;
	char ver[24] = "";
	Inference__ModelMetadataResponse *md = NULL;
	Inference__ModelConfigResponse *cf = NULL;
	ferry_model *m = NULL;
	int ret;

	pthread_mutex_lock(&c->ctl_lock);
	for (ferry_model *k = c->models; k; k = k->next) {
		if (!strcmp(k->name, name) && (version < 0 ? k->asked_latest : k->version == version)) {
			*out = k;
			pthread_mutex_unlock(&c->ctl_lock);
			return 0;
		}
	}
	if (version >= 0)
		snprintf(ver, sizeof(ver), "%" PRId64, version);
	Inference__ModelMetadataRequest mq = INFERENCE__MODEL_METADATA_REQUEST__INIT;
	mq.name = (char *)name;
	mq.version = ver;
	ret = fr__unary(rc, FR_METHOD("ModelMetadata"), &mq.base,
			&inference__model_metadata_response__descriptor, (ProtobufCMessage **)&md,
			FR_CTL_TIMEOUT_MS);
	if (ret)
		goto out;
	Inference__ModelConfigRequest cq = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
	cq.name = (char *)name;
	cq.version = ver;
	ret = fr__unary(rc, FR_METHOD("ModelConfig"), &cq.base,
			&inference__model_config_response__descriptor, (ProtobufCMessage **)&cf,
			FR_CTL_TIMEOUT_MS);
	if (ret)
		goto out;
	const Inference__ModelConfig *mc = cf->config;
	if (!mc || mc->n_input + mc->n_output > 4096) {
		ret = fc_fail(FERRY_EPROTO, "%s sent no usable config for '%s'", rc->target, name);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m || !(m->name = strdup(name)) ||
	    !(m->t = calloc(mc->n_input + mc->n_output + 1, sizeof(*m->t)))) {
		ret = fc_fail(FERRY_ENOMEM, "out of memory");
		goto out;
	}
	m->client = c;
	m->version = version;
	if (version < 0) {
		/* The latest of the versions the server lists. */
		for (size_t i = 0; i < md->n_versions; i++) {
			int64_t v = fr__parse_version(md->versions[i]);
			if (v > m->version)
				m->version = v;
		}
	}
	m->max_batch = mc->max_batch_size;
	m->nin = (int)mc->n_input;
	m->nout = (int)mc->n_output;
	for (int i = 0; i < m->nin + m->nout; i++) {
		struct fc_tmeta *t = &m->t[i];
		const char *tn;
		int dt;
		size_t nd;
		const int64_t *dims;
		if (i < m->nin) {
			tn = mc->input[i]->name;
			dt = mc->input[i]->data_type;
			nd = mc->input[i]->n_dims;
			dims = mc->input[i]->dims;
		} else {
			tn = mc->output[i - m->nin]->name;
			dt = mc->output[i - m->nin]->data_type;
			nd = mc->output[i - m->nin]->n_dims;
			dims = mc->output[i - m->nin]->dims;
		}
		if (nd > FERRY_MAX_DIMS - 1 || !ferry_dtype_name(dt)) {
			ret = fc_fail(FERRY_EPROTO, "%s: model '%s' has a tensor ferry cannot "
				      "describe ('%s')", rc->target, name, tn ? tn : "");
			goto out;
		}
		if (!(t->name = strdup(tn ? tn : ""))) {
			ret = fc_fail(FERRY_ENOMEM, "out of memory");
			goto out;
		}
		t->dtype = (ferry_dtype)dt;
		t->ndims = (int)nd;
		memcpy(t->dims, dims, nd * sizeof(int64_t));
	}
	m->asked_latest = version < 0;
	m->next = c->models;
	c->models = m;
	*out = m;
	m = NULL;
out:
	pthread_mutex_unlock(&c->ctl_lock);
	if (m) {
		if (!m->t)
			m->nin = m->nout = 0;
		fc_model_free(m);
	}
	if (md)
		protobuf_c_message_free_unpacked(&md->base, NULL);
	if (cf)
		protobuf_c_message_free_unpacked(&cf->base, NULL);
	return ret;
}

int fr_model_list(ferry_client *c,
		  void (*fn)(void *arg, const char *name, int64_t version, const char *state),
		  void *arg)
{
	Inference__RepositoryIndexRequest q = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
	Inference__RepositoryIndexResponse *r;
	int ret = fr__unary(c->remote, FR_METHOD("RepositoryIndex"), &q.base,
			    &inference__repository_index_response__descriptor,
			    (ProtobufCMessage **)&r, FR_CTL_TIMEOUT_MS);
	if (ret)
		return ret;
	for (size_t i = 0; i < r->n_models; i++)
		fn(arg, r->models[i]->name, fr__parse_version(r->models[i]->version),
		   r->models[i]->state);
	ret = (int)r->n_models;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ret;
}

int fr_model_admin(ferry_client *c, const char *name, bool unload)
{
	ProtobufCMessage *r = NULL;
	int ret;
	if (unload) {
		Inference__RepositoryModelUnloadRequest q = INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
		q.model_name = (char *)name;
		ret = fr__unary(c->remote, FR_METHOD("RepositoryModelUnload"), &q.base,
				&inference__repository_model_unload_response__descriptor, &r,
				120000);
	} else {
		Inference__RepositoryModelLoadRequest q = INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
		q.model_name = (char *)name;
		ret = fr__unary(c->remote, FR_METHOD("RepositoryModelLoad"), &q.base,
				&inference__repository_model_load_response__descriptor, &r, 120000);
	}
	if (r)
		protobuf_c_message_free_unpacked(r, NULL);
	return ret;
}

int fr_model_statistics(ferry_client *c, const char *name, int64_t version,
			void (*fn)(void *arg, const ferry_model_stats *s), void *arg)
{
	char vbuf[32] = "";
	Inference__ModelStatisticsRequest q = INFERENCE__MODEL_STATISTICS_REQUEST__INIT;
	Inference__ModelStatisticsResponse *r;
	if (version >= 0)
		snprintf(vbuf, sizeof(vbuf), "%lld", (long long)version);
	q.name = (char *)(name ? name : "");
	q.version = vbuf;
	int ret = fr__unary(c->remote, FR_METHOD("ModelStatistics"), &q.base,
			    &inference__model_statistics_response__descriptor,
			    (ProtobufCMessage **)&r, FR_CTL_TIMEOUT_MS);
	if (ret)
		return ret;
	for (size_t i = 0; i < r->n_model_stats; i++) {
		const Inference__ModelStatistics *x = r->model_stats[i];
		const Inference__InferStatistics *is = x->inference_stats;
		ferry_model_stats st = {
			.name = x->name, .version = fr__parse_version(x->version),
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

/* ---------------------------------------------------------------------- */
/* Inference                                                               */

static int fr__find(const ferry_model *m, const char *name)
{
	for (int i = 0; i < m->nout; i++)
		if (name && !strcmp(m->t[m->nin + i].name, name))
			return i;
	return -1;
}

int fr_infer_async(ferry_client *c, ferry_request *r, ferry_callback cb, void *arg)
{
	struct fr_client *rc = c->remote;
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
		return fc_fail(FERRY_E2BIG, "model '%s': more than 64 inputs or outputs", m->name);
	for (int i = 0; i < m->nin; i++) {
		const struct fc_tensor *t = &r->t[i];
		if (!t->set)
			continue;
		inference__model_infer_request__infer_input_tensor__init(&in[ni]);
		in[ni].name = m->t[i].name;
		in[ni].datatype = (char *)ferry_dtype_name(t->dtype);
		if (!in[ni].datatype)
			return fc_fail(FERRY_DTYPE, "input '%s': invalid dtype %d", m->t[i].name,
				       (int)t->dtype);
		in[ni].n_shape = (size_t)t->ndims;
		in[ni].shape = (int64_t *)t->dims;
		raw[ni].data = fc_tensor_ptr(c, t->off);
		raw[ni].len = t->bytes;
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
	if (m->version >= 0)
		snprintf(ver, sizeof(ver), "%" PRId64, m->version);
	q.model_name = m->name;
	q.model_version = ver;
	q.n_inputs = ni;
	q.inputs = inp;
	q.n_raw_input_contents = ni;
	q.raw_input_contents = raw;
	q.n_outputs = no;
	q.outputs = outp;
	if (r->priority) {
		inference__model_infer_request__parameters_entry__init(&pe[np]);
		inference__infer_parameter__init(&pv[np]);
		pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
		pv[np].uint64_param = r->priority;
		pe[np].key = "priority";
		pe[np].value = &pv[np];
		pep[np] = &pe[np];
		np++;
	}
	if (r->timeout_us) {
		inference__model_infer_request__parameters_entry__init(&pe[np]);
		inference__infer_parameter__init(&pv[np]);
		pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
		pv[np].uint64_param = r->timeout_us;
		pe[np].key = "timeout";
		pe[np].value = &pv[np];
		pep[np] = &pe[np];
		np++;
	}
	q.n_parameters = np;
	q.parameters = pep;

	struct fr_call *k = calloc(1, sizeof(*k));
	if (!k)
		return fc_fail(FERRY_ENOMEM, "out of memory");
	k->send = fr__pack(&q.base);
	if (!k->send) {
		free(k);
		return fc_fail(FERRY_ENOMEM, "out of memory");
	}
	k->r = r;
	k->details = grpc_empty_slice();
	grpc_metadata_array_init(&k->md_init);
	grpc_metadata_array_init(&k->md_trail);

	pthread_mutex_lock(&c->sq_lock);
	if (rc->inflight >= rc->depth) {
		pthread_mutex_unlock(&c->sq_lock);
		grpc_byte_buffer_destroy(k->send);
		grpc_metadata_array_destroy(&k->md_init);
		grpc_metadata_array_destroy(&k->md_trail);
		free(k);
		return fc_fail(FERRY_EAGAIN, "%u requests in flight: the queue depth", rc->depth);
	}
	/* The request's timeout doubles as the call's deadline. */
	gpr_timespec dl = r->timeout_us ?
		gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			     gpr_time_from_micros((int64_t)r->timeout_us, GPR_TIMESPAN)) :
		gpr_inf_future(GPR_CLOCK_MONOTONIC);
	k->call = grpc_channel_create_call(rc->ch, NULL, GRPC_PROPAGATE_DEFAULTS, rc->cq,
					   grpc_slice_from_static_string(FR_METHOD("ModelInfer")),
					   NULL, dl, NULL);
	r->cb = cb;
	r->cb_arg = arg;
	r->status = 0;
	r->errmsg[0] = '\0';
	atomic_store_explicit(&r->state, FC_INFLIGHT, memory_order_relaxed);
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = k->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &k->md_init;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &k->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &k->md_trail;
	ops[5].data.recv_status_on_client.status = &k->status;
	ops[5].data.recv_status_on_client.status_details = &k->details;
	if (grpc_call_start_batch(k->call, ops, 6, k, NULL) != GRPC_CALL_OK) {
		atomic_store_explicit(&r->state, FC_IDLE, memory_order_relaxed);
		pthread_mutex_unlock(&c->sq_lock);
		grpc_call_unref(k->call);
		grpc_byte_buffer_destroy(k->send);
		grpc_metadata_array_destroy(&k->md_init);
		grpc_metadata_array_destroy(&k->md_trail);
		free(k);
		return fc_fail(FERRY_EPROTO, "gRPC: cannot start the call");
	}
	k->next = rc->calls;
	if (rc->calls)
		rc->calls->prev = k;
	rc->calls = k;
	rc->inflight++;
	pthread_mutex_unlock(&c->sq_lock);
	return 0;
}

/* Outputs from a response into the request (the reaper owns r now). */
static int fr__outputs(ferry_request *r, const Inference__ModelInferResponse *resp,
		       char *msg, size_t msglen)
{
	ferry_model *m = r->model;
	for (size_t i = 0; i < resp->n_outputs; i++) {
		const Inference__ModelInferResponse__InferOutputTensor *ot = resp->outputs[i];
		int o = fr__find(m, ot->name);
		if (o < 0)
			continue;   /* not one we know: ignore, like extra fields */
		struct fc_tensor *t = &r->t[m->nin + o];
		if (i >= resp->n_raw_output_contents || ot->n_shape > FERRY_MAX_DIMS ||
		    !ot->datatype) {
			snprintf(msg, msglen, "output '%s': the server sent no raw contents or a "
				 "bad shape", ot->name);
			return FERRY_EPROTO;
		}
		size_t len = resp->raw_output_contents[i].len;
		if (t->off == FR_NONE || t->cap < len) {
			if (t->off != FR_NONE)
				free((void *)(uintptr_t)t->off);
			void *p = malloc(len ? len : 1);
			if (!p) {
				t->off = FR_NONE;
				snprintf(msg, msglen, "out of memory");
				return FERRY_ENOMEM;
			}
			t->off = (uint64_t)(uintptr_t)p;
			t->cap = len;
		}
		if (len)
			memcpy((void *)(uintptr_t)t->off, resp->raw_output_contents[i].data, len);
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

/* One completion: the call's result into its request; sq_lock taken
 * here.  Returns the request. */
static ferry_request *fr__complete(ferry_client *c, struct fr_call *k)
{
	struct fr_client *rc = c->remote;
	ferry_request *r = k->r;
	char msg[FSHM_ERRMSG_LEN];
	int status;

	msg[0] = '\0';
	if (k->status != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(k->details);
		status = fr__code(k->status, d);
		snprintf(msg, sizeof(msg), "%s", d);
		gpr_free(d);
	} else {
		Inference__ModelInferResponse *resp = (Inference__ModelInferResponse *)
			fr__unpack(k->recv, &inference__model_infer_response__descriptor);
		if (!resp) {
			status = FERRY_EPROTO;
			snprintf(msg, sizeof(msg), "malformed ModelInferResponse from %.100s", rc->target);
		} else {
			status = r->freed ? 0 : fr__outputs(r, resp, msg, sizeof(msg));
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	}
	pthread_mutex_lock(&c->sq_lock);
	if (k->prev)
		k->prev->next = k->next;
	else
		rc->calls = k->next;
	if (k->next)
		k->next->prev = k->prev;
	rc->inflight--;
	fc_request_complete(r, status, msg);
	pthread_mutex_unlock(&c->sq_lock);
	grpc_call_unref(k->call);
	grpc_metadata_array_destroy(&k->md_init);
	grpc_metadata_array_destroy(&k->md_trail);
	grpc_byte_buffer_destroy(k->send);
	if (k->recv)
		grpc_byte_buffer_destroy(k->recv);
	grpc_slice_unref(k->details);
	free(k);
	return r;
}

/* Drain completions, waiting up to wait_ns for the first; reap_lock held. */
static int fr__reap(ferry_client *c, ferry_request **done, int max, int64_t wait_ns)
{
	int n = 0;
	/* A wait of 0 must not block: gRPC rounds "now + 0" up to the next
	 * millisecond, which made ferry_poll(c, 0, 0) wait for a completion
	 * (found by ferry-bench-load's request-rate mode) */
	gpr_timespec dl = wait_ns <= 0 ? gpr_inf_past(GPR_CLOCK_MONOTONIC)
				       : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						      gpr_time_from_nanos(wait_ns, GPR_TIMESPAN));
	while (n < max) {
		grpc_event ev = grpc_completion_queue_next(c->remote->cq, dl, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		done[n++] = fr__complete(c, ev.tag);
		dl = gpr_time_0(GPR_CLOCK_MONOTONIC);   /* the rest without waiting */
	}
	return n;
}

static int fr__wait(ferry_client *c, bool (*pred)(void *), void *arg, int64_t timeout_ns,
		    int *reaped)
{
	uint64_t start = fshm_now_ns();
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
	ferry_request *done[64];

	for (;;) {
		if (pred(arg))
			return 0;
		uint64_t now = fshm_now_ns();
		if (now >= deadline)
			return FERRY_ETIMEDOUT;
		uint64_t slice = deadline - now;
		if (slice > 50000000)
			slice = 50000000;
		if (pthread_mutex_trylock(&c->reap_lock) == 0) {
			int n = fr__reap(c, done, 64, (int64_t)slice);
			pthread_mutex_unlock(&c->reap_lock);
			if (reaped)
				*reaped += n;
			fc_run_callbacks(c, done, n);
		} else {
			fc_wait_reaper(c, pred, arg, slice);
		}
	}
}

int fr_wait(ferry_client *c, bool (*pred)(void *), void *arg, int64_t timeout_ns)
{
	return fr__wait(c, pred, arg, timeout_ns, NULL);
}

struct fr__poll_arg {
	int *reaped;
	int min;
};

static bool fr__poll_pred(void *arg)
{
	struct fr__poll_arg *p = arg;
	return *p->reaped >= p->min;
}

int fr_poll(ferry_client *c, int min_complete, int64_t timeout_ns)
{
	int reaped = 0;
	ferry_request *done[64];

	if (pthread_mutex_trylock(&c->reap_lock) == 0) {
		int n = fr__reap(c, done, 64, 0);
		pthread_mutex_unlock(&c->reap_lock);
		reaped += n;
		fc_run_callbacks(c, done, n);
	}
	if (reaped >= min_complete || timeout_ns == 0)
		return reaped;
	struct fr__poll_arg pa = { &reaped, min_complete };
	int ret = fr__wait(c, fr__poll_pred, &pa, timeout_ns, &reaped);
	if (ret && reaped == 0)
		return fc_fail(ret, "no completion before the timeout");
	return reaped;
}
