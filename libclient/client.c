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
#include <sys/un.h>
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
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->sq_lock);
	pthread_mutex_destroy(&c->reap_lock);
	pthread_mutex_destroy(&c->wait_lock);
	pthread_cond_destroy(&c->wait_cond);
	free(c);
}

/* A client of transport ops at address. */
static int client__open(const struct client__tp_ops *ops, const char *address,
			const ferry_options *o, bool admin, ferry_client **out)
{
	ferry_client *c = calloc(1, sizeof(*c));
	if (!c)
		return client__fail(FERRY_ENOMEM, "out of memory");
	c->admin = admin;
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->sq_lock, NULL);
	pthread_mutex_init(&c->reap_lock, NULL);
	pthread_mutex_init(&c->wait_lock, NULL);
	pthread_cond_init(&c->wait_cond, NULL);
	int ret = ops->open(c, address, o, &c->tp);
	if (ret) {
		client__free(c);
		return ret;
	}
	*out = c;
	return 0;
}

static bool client__is_grpc(const char *address)
{
	return !strncmp(address, "grpc://", 7) || !strncmp(address, "grpcs://", 8);
}

/* Where the local socket's path came from, for what a message suggests. */
enum client__origin { CLIENT__GIVEN, CLIENT__ENV, CLIENT__DEFAULT };

/*
 * The local socket's path: address (an explicit path, "unix:" prefix
 * optional), or for NULL the node's default ($FERRY_SOCKET, else the
 * default path).
 */
static int client__socket_path(const char *address, char *path, size_t len,
			       enum client__origin *origin)
{
	if (!address || !*address) {
		const char *env = getenv("FERRY_SOCKET");
		*origin = env && *env ? CLIENT__ENV : CLIENT__DEFAULT;
		if (frame_default_socket_path(path, len))
			return client__fail(FERRY_EINVAL, "the broker's socket path is longer "
					    "than %zu bytes", len - 1);
		return 0;
	}
	*origin = CLIENT__GIVEN;
	if (!strncmp(address, "unix:", 5))
		address += 5;
	if (strlen(address) >= len)
		return client__fail(FERRY_EINVAL, "socket path longer than %zu bytes: %s",
				    len - 1, address);
	strcpy(path, address);
	return 0;
}

/* What to do about "no broker at PATH", by where the path came from. */
static void client__no_broker_hint(enum client__origin origin, bool admin)
{
	if (origin == CLIENT__DEFAULT)
		client__fail_more("; is ferryd running?  For a broker on another socket, set "
				  "$FERRY_SOCKET to its path%s", admin ? "" : " (or $FERRY_AUTOSTART "
				  "to a model repository, to start a private one)");
	else if (origin == CLIENT__ENV)
		client__fail_more(" (named by $FERRY_SOCKET); is ferryd running with that "
				  "--socket?");
}

static int client__options(const ferry_options *opts, ferry_options *o)
{
	memset(o, 0, sizeof(*o));
	if (opts) {
		size_t n = opts->struct_size ? opts->struct_size : sizeof(*o);
		memcpy(o, opts, n < sizeof(*o) ? n : sizeof(*o));
	} else {
		o->wait = FERRY_WAIT_DEFAULT;
	}
	if (o->wait == FERRY_WAIT_DEFAULT) {
		enum fshm_wait_policy p;
		const char *env = getenv("FERRY_WAIT");
		o->wait = (env && !fshm_wait_policy_parse(env, &p)) ? (ferry_wait)p
								    : FERRY_WAIT_HYBRID;
	}
	if (o->wait < FERRY_WAIT_SPIN || o->wait > FERRY_WAIT_BLOCK)
		return client__fail(FERRY_EINVAL, "unknown wait policy %d", (int)o->wait);
	return 0;
}

/* ferry_connect, and for admin (no session) ferry_connect_admin, which
 * only looks where it is told: no $FERRY_SERVER, no autostart. */
static int client__connect(ferry_client **out, const char *address,
			   const ferry_options *opts, bool admin, const char *fn)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum client__origin origin;
	ferry_options o;
	int ret;

	if (!out)
		return client__fail(FERRY_EINVAL, "%s: out is NULL", fn);
	*out = NULL;
	if ((ret = client__options(opts, &o)))
		return ret;
	if (address && client__is_grpc(address))
		return client__open(&client__grpc_ops, address, &o, admin, out);
	if ((ret = client__socket_path(address, path, sizeof(path), &origin)))
		return ret;
	ret = client__open(&client__local_ops, path, &o, admin, out);
	if (ret != FERRY_ECONNREFUSED)
		return ret;
	/* Discovery found no local broker: a remote one if $FERRY_SERVER
	 * names it, else a private one if $FERRY_AUTOSTART names a model
	 * repository (SONIC's fallback server). */
	const char *srv = getenv("FERRY_SERVER");
	const char *repo = getenv("FERRY_AUTOSTART");
	if (admin || origin == CLIENT__GIVEN || ((!srv || !*srv) && (!repo || !*repo))) {
		client__no_broker_hint(origin, admin);
		return ret;
	}
	if (srv && *srv)
		return client__open(&client__grpc_ops, srv, &o, false, out);
	if ((ret = client__autostart(path, repo)))
		return ret;
	return client__open(&client__local_ops, path, &o, false, out);
}

FERRY_API int ferry_connect(ferry_client **out, const char *address,
			    const ferry_options *opts)
{
	return client__connect(out, address, opts, false, "ferry_connect");
}

FERRY_API int ferry_connect_admin(ferry_client **out, const char *address)
{
	return client__connect(out, address, NULL, true, "ferry_connect_admin");
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
	 * (transport memory goes with the client, heap memory stays theirs).
	 * The transport completes or frees those in flight. */
	pthread_mutex_lock(&c->sq_lock);
	for (ferry_request *r = c->reqs, *n; r; r = n) {
		n = r->next;
		r->next = r->prev = NULL;
		if (atomic_load_explicit(&r->state, memory_order_acquire) == CLIENT__INFLIGHT)
			continue;
		for (uint32_t i = 0; i < r->ntensors; i++)
			if (!r->t[i].buf.heap)
				memset(&r->t[i].buf, 0, sizeof(r->t[i].buf));
		if (!r->desc.heap)
			memset(&r->desc, 0, sizeof(r->desc));
		r->client = NULL;
		r->model = NULL;
	}
	c->reqs = NULL;
	pthread_mutex_unlock(&c->sq_lock);
	pthread_mutex_lock(&c->ctl_lock);
	client__cuda_detach(c);
	pthread_mutex_unlock(&c->ctl_lock);
	c->tp->ops->close(c->tp);
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
	pthread_mutex_lock(&c->ctl_lock);
	for (ferry_model *m = c->models; m; m = m->next) {
		if (!strcmp(m->name, name) && (version < 0 ? m->asked_latest : m->version == version)) {
			*out = m;
			goto out;
		}
	}
	ferry_model *m = NULL;
	ret = c->tp->ops->model_get(c->tp, name, version < 0 ? -1 : version, &m);
	if (ret)
		goto out;
	m->asked_latest = version < 0;
	m->next = c->models;
	c->models = m;
	*out = m;
out:
	pthread_mutex_unlock(&c->ctl_lock);
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
	return c->tp->ops->model_list(c->tp, client__list_one, &a);
}

FERRY_API int ferry_model_list_info(ferry_client *c,
				    void (*fn)(void *arg, const ferry_model_info *m),
				    void *arg)
{
	if (!c || !fn)
		return client__fail(FERRY_EINVAL, "ferry_model_list_info: NULL argument");
	return c->tp->ops->model_list(c->tp, fn, arg);
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
	return c->tp->ops->statistics(c->tp, name, version < 0 ? -1 : version, fn, arg);
}

static int client__model_admin(ferry_client *c, const char *name, bool unload)
{
	if (!c || !name || !*name)
		return client__fail(FERRY_EINVAL, "a model name is needed");
	return c->tp->ops->model_admin(c->tp, name, unload);
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
	int ret = c->tp->ops->server_status(c->tp, out);
	if (ret)
		return ret;
	(*out)->address = client__status_str(*out, c->tp->address);
	(*out)->transport = client__status_str(*out, c->tp->ops->name);
	return 0;
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
	if (!c->tp->ops->session_list)
		return client__fail(FERRY_ENOTSUP, "sessions are shown over the local socket "
				    "only (%s is a %s endpoint)", c->tp->address,
				    c->tp->ops->name);
	return c->tp->ops->session_list(c->tp, fn, arg);
}

FERRY_API int ferry_client_arena(ferry_client *c, void **base, size_t *bytes)
{
	if (!c || !base || !bytes)
		return client__fail(FERRY_EINVAL, "ferry_client_arena: NULL argument");
	if (c->admin || c->tp->ops != &client__local_ops)
		return client__fail(FERRY_ENOTSUP, "no shared arena: %s", c->admin ?
				    "the client was opened by ferry_connect_admin" :
				    "the client talks to a remote broker");
	struct client__local *l = client__local_of(c);
	*base = l->arena_base;
	*bytes = (size_t)l->arena_bytes;
	return 0;
}
