/* SPDX-License-Identifier: MIT */
/*
 * client.c - libferry's local transport: a shared-memory session with the
 * node's ferryd.
 *
 * Locks (each guards only what is listed; never two at once except
 * reap_lock -> wait_lock):
 *   ctl_lock   the control socket: one request / response at a time
 *   sq_lock    the SQ producer handle and the in-flight slot table
 *   reap_lock  the CQ consumer handle; whoever holds it reaps for everyone
 *   wait_lock  + wait_cond: threads waiting while another one reaps
 * The arena has its own internal lock (fshm_arena).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "libclient/client.h"
#include "libclient/remote.h"
#include "proto/control.pb-c.h"
#include "proto/frame.h"

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

static __thread char fc__errbuf[512];

FERRY_API const char *ferry_last_error(void)
{
	return fc__errbuf;
}

int fc_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fc__errbuf, sizeof(fc__errbuf), fmt, ap);
	va_end(ap);
	return code;
}

/* ---------------------------------------------------------------------- */
/* Control socket                                                          */

static int64_t fc__ms_left(uint64_t deadline)
{
	uint64_t now = fshm_now_ns();
	return now >= deadline ? 0 : (int64_t)((deadline - now) / 1000000 + 1);
}

/* Send req and wait for its response (ctl_lock held).  fds received with
 * it are returned in fds[] (up to FRAME_MAX_FDS), the caller owns them. */
static int fc__call_t(ferry_client *c, Ferry__Control__Request *req,
		    Ferry__Control__Response **resp, int *fds, int *nfds, int timeout_s)
{
	uint64_t deadline = fshm_now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	int ret;

	req->seq = ++c->seq;
	ret = frame_send(c->sock, &req->base, NULL, 0, 0);
	if (ret) {
		/* A broker that refuses a peer sends an Error and closes at
		 * once: read it rather than report a bare EPIPE. */
		if (frame_read(c->sock, &c->rd) == 1)
			goto have_frame;
		return fc_fail(ret == -EPIPE ? FERRY_EPIPE : ret,
			       "cannot talk to the broker: %s", strerror(-ret));
	}
	for (;;) {
		ret = frame_read(c->sock, &c->rd);
		if (ret == 1)
			break;
		if (ret < 0)
			return fc_fail(ret == -EPIPE ? FERRY_EPIPE : ret,
				       "broker connection: %s",
				       ret == -EPIPE ? "closed by the broker" : strerror(-ret));
		struct pollfd p = { .fd = c->sock, .events = POLLIN };
		int64_t ms = fc__ms_left(deadline);
		if (ms == 0)
			return fc_fail(FERRY_ETIMEDOUT, "the broker did not answer in %d s", timeout_s);
		poll(&p, 1, (int)ms);
	}
have_frame:
	*resp = ferry__control__response__unpack(NULL, frame_payload_len(&c->rd),
						  frame_payload(&c->rd));
	if (fds && nfds) {
		*nfds = c->rd.nfds;
		for (int i = 0; i < c->rd.nfds; i++)
			fds[i] = c->rd.fds[i];
		c->rd.nfds = 0; /* ours now: frame_reader_next must not close them */
	}
	frame_reader_next(&c->rd);
	if (!*resp)
		return fc_fail(FERRY_EPROTO, "malformed response from the broker");
	/* seq 0 is the broker speaking first: an Error about the whole
	 * connection (a refused peer, a session limit). */
	if ((*resp)->seq != req->seq &&
	    !((*resp)->seq == 0 && (*resp)->body_case == FERRY__CONTROL__RESPONSE__BODY_ERROR)) {
		ferry__control__response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return fc_fail(FERRY_EPROTO, "response out of order");
	}
	if ((*resp)->body_case == FERRY__CONTROL__RESPONSE__BODY_ERROR) {
		Ferry__Control__Error *e = (*resp)->error;
		int code = e->code < 0 ? e->code : FERRY_EPROTO;
		fc_fail(code, "%s", e->message ? e->message : ferry_strerror(code));
		ferry__control__response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return code;
	}
	return 0;
}

/* Control calls answer at once; 10 s means the broker is stuck. */
static int fc__call(ferry_client *c, Ferry__Control__Request *req,
		    Ferry__Control__Response **resp, int *fds, int *nfds)
{
	return fc__call_t(c, req, resp, fds, nfds, 10);
}

int fc_call(ferry_client *c, Ferry__Control__Request *req,
	    Ferry__Control__Response **resp)
{
	return fc__call(c, req, resp, NULL, NULL);
}

/* ---------------------------------------------------------------------- */
/* Connect / close                                                         */

static void fc__free(ferry_client *c)
{
	ferry_model *m = c->models;
	while (m) {
		ferry_model *n = m->next;
		fc_model_free(m);
		m = n;
	}
	if (c->arena)
		fshm_arena_destroy(c->arena);
	fshm_seg_close(&c->seg);
	if (c->db_broker.efd >= 0)
		close(c->db_broker.efd);
	if (c->db_client.efd >= 0)
		close(c->db_client.efd);
	if (c->sock >= 0)
		close(c->sock);
	frame_reader_fini(&c->rd);
	free(c->slots);
	free(c->free_slots);
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->sq_lock);
	pthread_mutex_destroy(&c->reap_lock);
	pthread_mutex_destroy(&c->wait_lock);
	pthread_cond_destroy(&c->wait_cond);
	free(c);
}

static const char *fc__progname(void)
{
	extern char *program_invocation_short_name;
	return program_invocation_short_name;
}

FERRY_API int ferry_connect(ferry_client **out, const char *address,
			    const ferry_options *opts)
{
	ferry_options o = { 0 };
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	Ferry__Control__Response *resp = NULL;
	int fds[FRAME_MAX_FDS], nfds = 0;
	ferry_client *c;
	int ret;

	if (!out)
		return fc_fail(FERRY_EINVAL, "ferry_connect: out is NULL");
	*out = NULL;
	if (opts) {
		size_t n = opts->struct_size ? opts->struct_size : sizeof(o);
		memcpy(&o, opts, n < sizeof(o) ? n : sizeof(o));
	} else {
		o.wait = FERRY_WAIT_DEFAULT;
	}
	if (o.wait == FERRY_WAIT_DEFAULT) {
		enum fshm_wait_policy p;
		const char *env = getenv("FERRY_WAIT");
		o.wait = (env && !fshm_wait_policy_parse(env, &p)) ? (ferry_wait)p
								  : FERRY_WAIT_HYBRID;
	}
	if (o.wait < FERRY_WAIT_SPIN || o.wait > FERRY_WAIT_BLOCK)
		return fc_fail(FERRY_EINVAL, "unknown wait policy %d", (int)o.wait);

	if (!address || !*address) {
		if (frame_default_socket_path(path, sizeof(path)))
			return fc_fail(FERRY_EINVAL, "socket path too long");
	} else {
		if (!strncmp(address, "grpc://", 7) || !strncmp(address, "grpcs://", 8))
			return fr_connect(out, address, &o);
		if (!strncmp(address, "unix:", 5))
			address += 5;
		if (strlen(address) >= sizeof(path))
			return fc_fail(FERRY_EINVAL, "socket path too long: %s", address);
		strcpy(path, address);
	}

	bool autostarted = false;
again:
	c = calloc(1, sizeof(*c));
	if (!c)
		return fc_fail(FERRY_ENOMEM, "out of memory");
	c->sock = -1;
	c->db_broker.efd = c->db_client.efd = -1;
	c->seg.fd = -1;
	c->wait = (enum fshm_wait_policy)o.wait;
	c->spin_ns = 20000;
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->sq_lock, NULL);
	pthread_mutex_init(&c->reap_lock, NULL);
	pthread_mutex_init(&c->wait_lock, NULL);
	pthread_cond_init(&c->wait_cond, NULL);
	frame_reader_init(&c->rd);

	c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		ret = fc_fail(-errno, "socket: %s", strerror(errno));
		goto fail;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	if (connect(c->sock, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;
		ret = fc_fail(e == ENOENT || e == ECONNREFUSED ? FERRY_ECONNREFUSED :
			      e == EACCES ? FERRY_EPERM : -e,
			      "cannot connect to the broker at %s: %s", path, strerror(e));
		goto fail;
	}

	Ferry__Control__Hello h = FERRY__CONTROL__HELLO__INIT;
	h.proto_major = FRAME_PROTO_MAJOR;
	h.proto_minor = FRAME_PROTO_MINOR;
	h.client_name = (char *)(o.client_name ? o.client_name : fc__progname());
	h.arena_bytes = o.arena_bytes;
	h.queue_depth = o.queue_depth;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_HELLO;
	req.hello = &h;
	ret = fc__call(c, &req, &resp, fds, &nfds);
	if (ret)
		goto fail;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_WELCOME || nfds != 3) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		ret = fc_fail(FERRY_EPROTO, "unexpected answer to hello (%d fds)", nfds);
		goto fail;
	}
	c->session_id = resp->welcome->session_id;
	c->db_broker.efd = fds[1];
	c->db_client.efd = fds[2];
	ret = fshm_seg_attach(fds[0], &c->seg);
	if (ret) {
		close(fds[0]);
		ret = fc_fail(ret, "the broker's segment is not acceptable: %s",
			      ferry_strerror(ret));
		goto fail;
	}
	c->db_broker.flag = &c->seg.hdr->broker_wake.sleeping;
	c->db_client.flag = &c->seg.hdr->client_wake.sleeping;
	fshm_ring_init(&c->sq, c->seg.base, &c->seg.sq, true);
	fshm_ring_init(&c->cq, c->seg.base, &c->seg.cq, false);
	c->arena_base = fshm_seg_arena(&c->seg);
	c->arena_bytes = c->seg.arena.bytes;
	ret = fshm_arena_create(&c->arena, c->arena_base, c->arena_bytes,
				c->seg.arena.entry_size ? c->seg.arena.entry_size : 64);
	if (ret) {
		ret = fc_fail(ret, "arena: %s", ferry_strerror(ret));
		goto fail;
	}
	/* As many requests in flight as the CQ holds: the broker admits no
	 * more than that anyway. */
	c->depth = c->seg.cq.entries;
	c->slots = calloc(c->depth, sizeof(*c->slots));
	c->free_slots = calloc(c->depth, sizeof(*c->free_slots));
	if (!c->slots || !c->free_slots) {
		ret = fc_fail(FERRY_ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < c->depth; i++)
		c->free_slots[i] = c->depth - 1 - i;
	c->nfree = c->depth;
	ferry__control__response__free_unpacked(resp, NULL);
	*out = c;
	return 0;
fail:
	if (resp)
		ferry__control__response__free_unpacked(resp, NULL);
	fc__free(c);
	if ((address && *address) || ret != FERRY_ECONNREFUSED || autostarted)
		return ret;
	/* Discovery found no local broker: a remote one if $FERRY_SERVER
	 * names it, else a private one if $FERRY_AUTOSTART names a model
	 * repository (SONIC's fallback server). */
	const char *srv = getenv("FERRY_SERVER");
	if (srv && *srv)
		return fr_connect(out, srv, &o);
	const char *repo = getenv("FERRY_AUTOSTART");
	if (repo && *repo) {
		ret = fc_autostart(path, repo);
		if (ret)
			return ret;
		autostarted = true;
		goto again;
	}
	return ret;
}

FERRY_API void ferry_close(ferry_client *c)
{
	if (!c)
		return;
	/* Requests that are not in flight outlive the client: detach them,
	 * so that a later ferry_request_free() only frees their own memory
	 * (the arena and the models go with the client).  In-flight ones are
	 * completed or freed below. */
	pthread_mutex_lock(&c->sq_lock);
	for (ferry_request *r = c->reqs, *n; r; r = n) {
		n = r->next;
		r->next = r->prev = NULL;
		if (atomic_load_explicit(&r->state, memory_order_acquire) == FC_INFLIGHT)
			continue;
		if (!r->remote)
			for (uint32_t i = 0; i < r->ntensors; i++)
				r->t[i].off = UINT64_MAX;
		r->desc_off = r->remote ? r->desc_off : UINT64_MAX;
		r->client = NULL;
		r->model = NULL;
	}
	c->reqs = NULL;
	pthread_mutex_unlock(&c->sq_lock);
	pthread_mutex_lock(&c->ctl_lock);
	fc_cuda_detach(c);
	pthread_mutex_unlock(&c->ctl_lock);
	if (c->remote) {
		fr_close(c);
		return;
	}
	/* Requests still in flight: the broker drops their results when the
	 * socket closes.  Mark them so ferry_request_free() can release
	 * them without waiting. */
	pthread_mutex_lock(&c->sq_lock);
	for (uint32_t i = 0; i < c->depth; i++) {
		ferry_request *r = c->slots[i].r;
		if (!r)
			continue;
		r->client = NULL;
		if (r->freed)
			fc_request_destroy(r);
		else
			fc_request_complete(r, FERRY_EPIPE, "the client closed its session");
	}
	pthread_mutex_unlock(&c->sq_lock);
	fc__free(c);
}

/* ---------------------------------------------------------------------- */
/* Models                                                                  */

void fc_model_free(ferry_model *m)
{
	for (int i = 0; i < m->nin + m->nout; i++)
		free(m->t[i].name);
	free(m->t);
	free(m->name);
	free(m);
}

static int fc__model_from_meta(ferry_client *c, const Ferry__Control__ModelMeta *mm,
			       ferry_model **out)
{
	ferry_model *m = calloc(1, sizeof(*m));
	if (!m)
		return fc_fail(FERRY_ENOMEM, "out of memory");
	m->client = c;
	m->name = strdup(mm->name ? mm->name : "");
	m->version = mm->version;
	m->id = mm->model_id;
	m->max_batch = mm->max_batch_size;
	m->nin = (int)mm->n_inputs;
	m->nout = (int)mm->n_outputs;
	if (mm->n_inputs + mm->n_outputs > FSHM_MAX_TENSORS)
		goto bad;
	m->t = calloc((size_t)(m->nin + m->nout) + 1, sizeof(*m->t));
	if (!m->name || !m->t) {
		fc_model_free(m);
		return fc_fail(FERRY_ENOMEM, "out of memory");
	}
	for (int i = 0; i < m->nin + m->nout; i++) {
		const Ferry__Control__TensorMeta *tm =
			i < m->nin ? mm->inputs[i] : mm->outputs[i - m->nin];
		struct fc_tmeta *t = &m->t[i];
		if (tm->n_dims > FERRY_MAX_DIMS - 1 || !ferry_dtype_name((int)tm->dtype))
			goto bad;
		t->name = strdup(tm->name ? tm->name : "");
		if (!t->name)
			goto bad;
		t->dtype = (ferry_dtype)tm->dtype;
		t->ndims = (int)tm->n_dims;
		memcpy(t->dims, tm->dims, tm->n_dims * sizeof(int64_t));
	}
	*out = m;
	return 0;
bad:
	fc_model_free(m);
	return fc_fail(FERRY_EPROTO, "the broker sent malformed metadata for '%s'",
		       mm->name ? mm->name : "");
}

FERRY_API int ferry_model_get(ferry_client *c, const char *name, int64_t version,
			      ferry_model **out)
{
	Ferry__Control__Response *resp = NULL;
	int ret;

	if (!c || !name || !out)
		return fc_fail(FERRY_EINVAL, "ferry_model_get: NULL argument");
	if (c->remote)
		return fr_model_get(c, name, version, out);
	pthread_mutex_lock(&c->ctl_lock);
	for (ferry_model *m = c->models; m; m = m->next) {
		if (!strcmp(m->name, name) && (version < 0 ? m->asked_latest : m->version == version)) {
			*out = m;
			pthread_mutex_unlock(&c->ctl_lock);
			return 0;
		}
	}
	Ferry__Control__GetModel g = FERRY__CONTROL__GET_MODEL__INIT;
	g.name = (char *)name;
	g.version = version < 0 ? -1 : version;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_MODEL;
	req.get_model = &g;
	ret = fc__call(c, &req, &resp, NULL, NULL);
	if (ret)
		goto out;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_MODEL) {
		ret = fc_fail(FERRY_EPROTO, "unexpected answer to get_model");
		goto out;
	}
	if (resp->model->state && strcmp(resp->model->state, "READY")) {
		ret = fc_fail(FERRY_UNAVAILABLE, "model '%s' is %s%s%s", name,
			      resp->model->state,
			      resp->model->reason && *resp->model->reason ? ": " : "",
			      resp->model->reason ? resp->model->reason : "");
		goto out;
	}
	ferry_model *m = NULL;
	ret = fc__model_from_meta(c, resp->model, &m);
	if (ret)
		goto out;
	m->asked_latest = version < 0;
	m->next = c->models;
	c->models = m;
	*out = m;
out:
	pthread_mutex_unlock(&c->ctl_lock);
	if (resp)
		ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

FERRY_API int ferry_model_list(ferry_client *c,
			       void (*fn)(void *arg, const char *name,
					  int64_t version, const char *state),
			       void *arg)
{
	Ferry__Control__Response *resp = NULL;
	int ret;

	if (!c || !fn)
		return fc_fail(FERRY_EINVAL, "ferry_model_list: NULL argument");
	if (c->remote)
		return fr_model_list(c, fn, arg);
	Ferry__Control__ListModels lm = FERRY__CONTROL__LIST_MODELS__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_LIST_MODELS;
	req.list_models = &lm;
	pthread_mutex_lock(&c->ctl_lock);
	ret = fc__call(c, &req, &resp, NULL, NULL);
	pthread_mutex_unlock(&c->ctl_lock);
	if (ret)
		return ret;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_MODEL_LIST) {
		ferry__control__response__free_unpacked(resp, NULL);
		return fc_fail(FERRY_EPROTO, "unexpected answer to list_models");
	}
	for (size_t i = 0; i < resp->model_list->n_models; i++) {
		const Ferry__Control__ModelMeta *mm = resp->model_list->models[i];
		fn(arg, mm->name, mm->version, mm->state);
	}
	ret = (int)resp->model_list->n_models;
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

FERRY_API const char *ferry_model_name(const ferry_model *m) { return m->name; }
FERRY_API int64_t ferry_model_version(const ferry_model *m) { return m->version; }
FERRY_API int ferry_model_max_batch_size(const ferry_model *m) { return m->max_batch; }
FERRY_API int ferry_model_ninputs(const ferry_model *m) { return m->nin; }
FERRY_API int ferry_model_noutputs(const ferry_model *m) { return m->nout; }

static int fc__meta(const struct fc_tmeta *t, const char **name, ferry_dtype *dtype,
		    const int64_t **dims, int *ndims)
{
	if (name) *name = t->name;
	if (dtype) *dtype = t->dtype;
	if (dims) *dims = t->dims;
	if (ndims) *ndims = t->ndims;
	return 0;
}

FERRY_API int ferry_model_input(const ferry_model *m, int i, const char **name,
				ferry_dtype *dtype, const int64_t **dims, int *ndims)
{
	if (!m || i < 0 || i >= m->nin)
		return fc_fail(FERRY_ENOENT, "no input %d", i);
	return fc__meta(&m->t[i], name, dtype, dims, ndims);
}

FERRY_API int ferry_model_output(const ferry_model *m, int i, const char **name,
				 ferry_dtype *dtype, const int64_t **dims, int *ndims)
{
	if (!m || i < 0 || i >= m->nout)
		return fc_fail(FERRY_ENOENT, "no output %d", i);
	return fc__meta(&m->t[m->nin + i], name, dtype, dims, ndims);
}

FERRY_API int ferry_model_statistics(ferry_client *c, const char *name, int64_t version,
				     void (*fn)(void *arg, const ferry_model_stats *s),
				     void *arg)
{
	Ferry__Control__Response *resp = NULL;
	int ret;

	if (!c || !fn)
		return fc_fail(FERRY_EINVAL, "ferry_model_statistics: NULL argument");
	if (c->remote)
		return fr_model_statistics(c, name, version, fn, arg);
	Ferry__Control__GetStats g = FERRY__CONTROL__GET_STATS__INIT;
	g.name = (char *)(name ? name : "");
	g.version = version < 0 ? -1 : version;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATS;
	req.get_stats = &g;
	pthread_mutex_lock(&c->ctl_lock);
	ret = fc__call(c, &req, &resp, NULL, NULL);
	pthread_mutex_unlock(&c->ctl_lock);
	if (ret)
		return ret;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_STATS) {
		ferry__control__response__free_unpacked(resp, NULL);
		return fc_fail(FERRY_EPROTO, "unexpected answer to get_stats");
	}
	for (size_t i = 0; i < resp->stats->n_stats; i++) {
		const Ferry__Control__ModelStats *x = resp->stats->stats[i];
		ferry_model_stats st = {
			.name = x->name, .version = x->version,
			.success = x->success, .failure = x->failure,
			.inference_count = x->inference_count,
			.execution_count = x->execution_count,
			.queue_ns = x->queue_ns, .compute_input_ns = x->compute_input_ns,
			.compute_infer_ns = x->compute_infer_ns,
			.compute_output_ns = x->compute_output_ns,
		};
		for (size_t k = 0; k < x->n_batches; k++) {
			uint32_t bs = x->batches[k]->batch_size;
			st.batch_executions[bs < 64 ? bs : 64] += x->batches[k]->count;
		}
		fn(arg, &st);
	}
	ret = (int)resp->stats->n_stats;
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

static int fc__model_admin(ferry_client *c, const char *name, bool unload)
{
	Ferry__Control__Response *resp = NULL;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__LoadModel l = FERRY__CONTROL__LOAD_MODEL__INIT;
	Ferry__Control__UnloadModel u = FERRY__CONTROL__UNLOAD_MODEL__INIT;
	int ret;

	if (!c || !name || !*name)
		return fc_fail(FERRY_EINVAL, "a model name is needed");
	if (c->remote)
		return fr_model_admin(c, name, unload);
	if (unload) {
		u.name = (char *)name;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_UNLOAD_MODEL;
		req.unload_model = &u;
	} else {
		l.name = (char *)name;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_LOAD_MODEL;
		req.load_model = &l;
	}
	/* A load answers when the model has loaded: give it time. */
	pthread_mutex_lock(&c->ctl_lock);
	ret = fc__call_t(c, &req, &resp, NULL, NULL, 300);
	pthread_mutex_unlock(&c->ctl_lock);
	if (ret)
		return ret;
	ferry__control__response__free_unpacked(resp, NULL);
	return 0;
}

FERRY_API int ferry_model_load(ferry_client *c, const char *name)
{
	return fc__model_admin(c, name, false);
}

FERRY_API int ferry_model_unload(ferry_client *c, const char *name)
{
	return fc__model_admin(c, name, true);
}

FERRY_API int ferry_connect_wait(ferry_client **out, const char *address,
				 const ferry_options *opts, int64_t timeout_ns)
{
	uint64_t end = timeout_ns < 0 ? UINT64_MAX : fshm_now_ns() + (uint64_t)timeout_ns;
	uint64_t pause_ms = 10;
	for (;;) {
		int ret = ferry_connect(out, address, opts);
		/* Only "nobody there yet" is worth waiting out. */
		if (ret != FERRY_ECONNREFUSED && ret != FERRY_EPIPE)
			return ret;
		uint64_t now = fshm_now_ns();
		if (now >= end)
			return ret;
		uint64_t left_ms = (end - now) / 1000000;
		struct timespec ts = { 0, (long)((pause_ms < left_ms ? pause_ms : left_ms) * 1000000) };
		nanosleep(&ts, NULL);
		if (pause_ms < 200)
			pause_ms *= 2; /* back off, up to 5 tries a second */
	}
}
