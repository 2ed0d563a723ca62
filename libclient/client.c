/* SPDX-License-Identifier: MIT */
/*
 * client.c - libferry's public entry points for connecting, models and
 * administration.  Each does the checks common to both transports, then
 * calls through the client's transport table once (client_int.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

static __thread char client__errbuf[512];

FERRY_API const char *ferry_last_error(void)
{
	return client__errbuf;
}

int client__fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(client__errbuf, sizeof(client__errbuf), fmt, ap);
	va_end(ap);
	return code;
}

void client__fail_more(const char *fmt, ...)
{
	size_t n = strlen(client__errbuf);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(client__errbuf + n, sizeof(client__errbuf) - n, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------- */
/* Connect / close                                                         */

static void client__free(ferry_client *c)
{
	ferry_model *m = c->models;
	while (m) {
		ferry_model *n = m->next;
		client__model_free(m);
		m = n;
	}
	struct client__seg *seg = atomic_load(&c->seg);
	if (seg)
		client__seg_free(seg);
	free(c->eps);
	free(c->retry.autostart);
	pthread_rwlock_destroy(&c->tp_lock);
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->sq_lock);
	pthread_mutex_destroy(&c->reap_lock);
	pthread_mutex_destroy(&c->wait_lock);
	pthread_cond_destroy(&c->wait_cond);
	free(c);
}

static ferry_client *client__alloc(void)
{
	ferry_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	/* Writers first: a reconnect must not wait behind a stream of
	 * submissions (no thread takes tp_lock twice, so this is safe). */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->tp_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->sq_lock, NULL);
	pthread_mutex_init(&c->reap_lock, NULL);
	pthread_mutex_init(&c->wait_lock, NULL);
	pthread_cond_init(&c->wait_cond, NULL);
	c->pending_tail = &c->pending;
	c->cur = -1;
	return c;
}

/* A number from the environment, or def when unset or not a number. */
static uint64_t client__env_u64(const char *var, uint64_t def)
{
	const char *v = getenv(var);
	char *end;
	if (!v || !*v)
		return def;
	unsigned long long n = strtoull(v, &end, 10);
	return *end ? def : (uint64_t)n;
}

static int client__options(const ferry_options *opts, ferry_client *c)
{
	ferry_options *o = &c->opts;
	memset(o, 0, sizeof(*o));
	if (opts) {
		size_t n = opts->struct_size ? opts->struct_size : sizeof(*o);
		memcpy(o, opts, n < sizeof(*o) ? n : sizeof(*o));
	} else {
		o->wait = FERRY_WAIT_DEFAULT;
	}
	o->struct_size = sizeof(*o);
	if (o->wait == FERRY_WAIT_DEFAULT) {
		enum fshm_wait_policy p;
		const char *env = getenv("FERRY_WAIT");
		o->wait = (env && !fshm_wait_policy_parse(env, &p)) ? (ferry_wait)p
								    : FERRY_WAIT_HYBRID;
	}
	if (o->wait < FERRY_WAIT_SPIN || o->wait > FERRY_WAIT_BLOCK)
		return client__fail(FERRY_EINVAL, "unknown wait policy %d", (int)o->wait);
	/* Reconnects use the options again: keep the name with the client. */
	if (o->client_name) {
		snprintf(c->name, sizeof(c->name), "%s", o->client_name);
		o->client_name = c->name;
	}
	c->retry.on = !(o->flags & FERRY_F_NO_RECONNECT) && !c->admin;
	c->retry.max = o->max_retries ? o->max_retries
				      : (uint32_t)client__env_u64("FERRY_RETRIES", 3);
	uint64_t ms = o->reconnect_ms ? o->reconnect_ms
				      : client__env_u64("FERRY_RECONNECT_MS", 30000);
	c->retry.window_ns = ms > UINT64_MAX / 1000000 ? UINT64_MAX : ms * 1000000;
	c->probe_ns = 5000000000LL;
	return 0;
}

/* ferry_connect, ferry_connect_list (addrs), and for admin (no session)
 * ferry_connect_admin, which only looks where it is told: no
 * $FERRY_SERVER, no autostart. */
static int client__connect(ferry_client **out, const char *address,
			   const char *const *addrs, int naddrs,
			   const ferry_options *opts, bool admin, const char *fn)
{
	int ret;

	if (!out)
		return client__fail(FERRY_EINVAL, "%s: out is NULL", fn);
	*out = NULL;
	ferry_client *c = client__alloc();
	if (!c)
		return client__fail(FERRY_ENOMEM, "out of memory");
	c->admin = admin;
	if ((ret = client__options(opts, c)) ||
	    (ret = addrs ? client__endpoints_list(c, addrs, naddrs)
			 : client__endpoints(c, address, admin)) ||
	    (ret = client__connect_first(c))) {
		client__free(c);
		return ret;
	}
	*out = c;
	return 0;
}

FERRY_API int ferry_connect(ferry_client **out, const char *address,
			    const ferry_options *opts)
{
	return client__connect(out, address, NULL, 0, opts, false, "ferry_connect");
}

FERRY_API int ferry_connect_list(ferry_client **out, const char *const *endpoints, int n,
				 const ferry_options *opts)
{
	if (!endpoints || n <= 0)
		return client__fail(FERRY_EINVAL, "ferry_connect_list: no endpoints");
	return client__connect(out, NULL, endpoints, n, opts, false, "ferry_connect_list");
}

FERRY_API int ferry_connect_admin(ferry_client **out, const char *address)
{
	return client__connect(out, address, NULL, 0, NULL, true, "ferry_connect_admin");
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

FERRY_API void ferry_close(ferry_client *c)
{
	if (!c)
		return;
	/* Requests that are not in flight outlive the client: detach them,
	 * so that a later ferry_request_free() only frees their own memory
	 * (arena memory goes with the client, heap memory stays theirs).
	 * The transport completes or frees those in flight; those waiting
	 * for a reconnect complete here. */
	pthread_mutex_lock(&c->sq_lock);
	for (ferry_request *r = c->reqs, *n; r; r = n) {
		n = r->next;
		r->next = r->prev = NULL;
		if (atomic_load_explicit(&r->state, memory_order_acquire) == CLIENT__INFLIGHT)
			continue;
		for (uint32_t i = 0; i < r->ntensors; i++) {
			if (!r->t[i].buf.heap)
				memset(&r->t[i].buf, 0, sizeof(r->t[i].buf));
			memset(&r->t[i].stage, 0, sizeof(r->t[i].stage));
		}
		if (!r->desc.heap)
			memset(&r->desc, 0, sizeof(r->desc));
		r->client = NULL;
		r->model = NULL;
	}
	c->reqs = NULL;
	client__pending_close(c);
	pthread_mutex_unlock(&c->sq_lock);
	pthread_mutex_lock(&c->ctl_lock);
	client__cuda_detach(c);
	pthread_mutex_unlock(&c->ctl_lock);
	pthread_mutex_lock(&c->reap_lock);
	c->tp->ops->close(c->tp, false);
	pthread_mutex_unlock(&c->reap_lock);
	client__free(c);
}

/* ---------------------------------------------------------------------- */
/* Models                                                                  */

ferry_model *client__model_new(ferry_client *c, const char *name, int nin, int nout)
{
	ferry_model *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->client = c;
	m->name = strdup(name ? name : "");
	m->t = calloc((size_t)(nin + nout) + 1, sizeof(*m->t));
	if (!m->name || !m->t) {
		free(m->name);
		free(m->t);
		free(m);
		return NULL;
	}
	m->nin = nin;
	m->nout = nout;
	return m;
}

void client__model_free(ferry_model *m)
{
	for (int i = 0; i < m->nin + m->nout; i++)
		free(m->t[i].name);
	free(m->t);
	free(m->name);
	free(m);
}

int client__find(const ferry_model *m, const char *name, bool input)
{
	int base = input ? 0 : m->nin, n = input ? m->nin : m->nout;
	for (int i = 0; name && i < n; i++)
		if (!strcmp(m->t[base + i].name, name))
			return i;
	return -1;
}

FERRY_API int ferry_model_get(ferry_client *c, const char *name, int64_t version,
			      ferry_model **out)
{
	int ret = 0;

	if (!c || !name || !out)
		return client__fail(FERRY_EINVAL, "ferry_model_get: NULL argument");
	struct client__tp *t = client__tp_get(c);
	pthread_mutex_lock(&c->ctl_lock);
	for (ferry_model *m = c->models; m; m = m->next) {
		/* One its broker stopped serving (after a reconnect) is
		 * looked up afresh.  A version asked for by number is not
		 * the FERRY_LATEST one, even while they are the same: that
		 * one follows reloads to the newest version. */
		if (!m->lost && !strcmp(m->name, name) &&
		    (version < 0 ? m->asked_latest
				 : !m->asked_latest && m->version == version)) {
			*out = m;
			goto out;
		}
	}
	ferry_model *m = NULL;
	ret = t->ops->model_get(t, name, version < 0 ? -1 : version, &m);
	if (ret)
		goto out;
	m->asked_latest = version < 0;
	m->next = c->models;
	c->models = m;
	*out = m;
out:
	pthread_mutex_unlock(&c->ctl_lock);
	client__tp_put(c);
	return ret;
}

struct client__list_arg {
	void (*fn)(void *arg, const char *name, int64_t version, const char *state);
	void *arg;
};

static void client__list_one(void *arg, const ferry_model_info *m)
{
	struct client__list_arg *a = arg;
	a->fn(a->arg, m->name, m->version, m->state);
}

FERRY_API int ferry_model_list(ferry_client *c,
			       void (*fn)(void *arg, const char *name,
					  int64_t version, const char *state),
			       void *arg)
{
	if (!c || !fn)
		return client__fail(FERRY_EINVAL, "ferry_model_list: NULL argument");
	struct client__list_arg a = { fn, arg };
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->model_list(t, client__list_one, &a);
	client__tp_put(c);
	return ret;
}

FERRY_API int ferry_model_list_info(ferry_client *c,
				    void (*fn)(void *arg, const ferry_model_info *m),
				    void *arg)
{
	if (!c || !fn)
		return client__fail(FERRY_EINVAL, "ferry_model_list_info: NULL argument");
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->model_list(t, fn, arg);
	client__tp_put(c);
	return ret;
}

FERRY_API const char *ferry_model_name(const ferry_model *m) { return m->name; }
FERRY_API int64_t ferry_model_version(const ferry_model *m) { return m->version; }
FERRY_API int ferry_model_max_batch_size(const ferry_model *m) { return m->max_batch; }
FERRY_API int ferry_model_ninputs(const ferry_model *m) { return m->nin; }
FERRY_API int ferry_model_noutputs(const ferry_model *m) { return m->nout; }

static int client__meta(const struct client__tmeta *t, const char **name, ferry_dtype *dtype,
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
		return client__fail(FERRY_ENOENT, "no input %d", i);
	return client__meta(&m->t[i], name, dtype, dims, ndims);
}

FERRY_API int ferry_model_output(const ferry_model *m, int i, const char **name,
				 ferry_dtype *dtype, const int64_t **dims, int *ndims)
{
	if (!m || i < 0 || i >= m->nout)
		return client__fail(FERRY_ENOENT, "no output %d", i);
	return client__meta(&m->t[m->nin + i], name, dtype, dims, ndims);
}

FERRY_API int ferry_model_statistics(ferry_client *c, const char *name, int64_t version,
				     void (*fn)(void *arg, const ferry_model_stats *s),
				     void *arg)
{
	if (!c || !fn)
		return client__fail(FERRY_EINVAL, "ferry_model_statistics: NULL argument");
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->statistics(t, name, version < 0 ? -1 : version, fn, arg);
	client__tp_put(c);
	return ret;
}

static int client__model_admin(ferry_client *c, const char *name, bool unload)
{
	if (!c || !name || !*name)
		return client__fail(FERRY_EINVAL, "a model name is needed");
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->model_admin(t, name, unload);
	client__tp_put(c);
	return ret;
}

FERRY_API int ferry_model_load(ferry_client *c, const char *name)
{
	return client__model_admin(c, name, false);
}

FERRY_API int ferry_model_unload(ferry_client *c, const char *name)
{
	return client__model_admin(c, name, true);
}

/* ---------------------------------------------------------------------- */
/* Administration                                                          */

/* One allocation: the status, the extensions' pointers, then its strings. */
struct client__status {
	ferry_server_status pub;        /* first: ferry_server_status_free */
	const char **ext;
	size_t used, cap;
	char pool[];
};

ferry_server_status *client__status_new(size_t strbytes, int nextensions)
{
	size_t extb = ((size_t)nextensions + 1) * sizeof(char *);
	/* and room for the address and the transport's name, added by
	 * ferry_server_status_get */
	strbytes += sizeof(((struct client__tp *)0)->address) + 16;
	struct client__status *s = calloc(1, sizeof(*s) + extb + strbytes);
	if (!s)
		return NULL;
	s->ext = (const char **)(void *)s->pool;
	s->used = extb;
	s->cap = extb + strbytes;
	s->pub.extensions = s->ext;
	s->pub.uptime_ns = s->pub.cpu_ns = -1;
	s->pub.wait_policy = s->pub.sessions = s->pub.max_sessions = s->pub.gpus = -1;
	return &s->pub;
}

const char *client__status_str(ferry_server_status *st, const char *str)
{
	struct client__status *s = (struct client__status *)st;
	size_t n = strlen(str ? str : "") + 1;
	if (n > s->cap - s->used)
		return NULL;
	char *p = s->pool + s->used;
	memcpy(p, str ? str : "", n);
	s->used += n;
	return p;
}

FERRY_API int ferry_server_status_get(ferry_client *c, ferry_server_status **out)
{
	if (!c || !out)
		return client__fail(FERRY_EINVAL, "ferry_server_status_get: NULL argument");
	*out = NULL;
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->server_status(t, out);
	if (!ret) {
		(*out)->address = client__status_str(*out, t->address);
		(*out)->transport = client__status_str(*out, t->ops->name);
	}
	client__tp_put(c);
	return ret;
}

FERRY_API void ferry_server_status_free(ferry_server_status *s)
{
	free(s);
}

FERRY_API int ferry_session_list(ferry_client *c,
				 void (*fn)(void *arg, const ferry_session_info *s),
				 void *arg)
{
	if (!c || !fn)
		return client__fail(FERRY_EINVAL, "ferry_session_list: NULL argument");
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->session_list ? t->ops->session_list(t, fn, arg)
		: client__fail(FERRY_ENOTSUP, "sessions are shown over the local socket "
			       "only (%s is a %s endpoint)", t->address, t->ops->name);
	client__tp_put(c);
	return ret;
}

FERRY_API int ferry_client_arena(ferry_client *c, void **base, size_t *bytes)
{
	if (!c || !base || !bytes)
		return client__fail(FERRY_EINVAL, "ferry_client_arena: NULL argument");
	/* The client's segment outlives its broker (a reconnect keeps it,
	 * and a failover to a remote endpoint still reads tensors there). */
	struct client__seg *seg = atomic_load_explicit(&c->seg, memory_order_acquire);
	if (c->admin || !seg)
		return client__fail(FERRY_ENOTSUP, "no shared arena: %s", c->admin ?
				    "the client was opened by ferry_connect_admin" :
				    "the client talks to a remote broker");
	*base = seg->base;
	*bytes = (size_t)seg->bytes;
	return 0;
}
