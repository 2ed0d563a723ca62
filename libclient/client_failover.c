/* SPDX-License-Identifier: MIT */
/*
 * client_failover.c - libferry's endpoint list, and recovery when the
 * endpoint in use goes away.
 *
 * Endpoints.  A client has a list of endpoints in order of preference
 * ("local,grpc://a:8001,grpc://b:8001"): it connects to the first that
 * answers (a local socket: connect and Hello; a remote one: ServerLive,
 * and for a list ServerReady, KServe's health checks), then, when none
 * does and $FERRY_AUTOSTART names a repository, to a private broker it
 * starts (the last resort).  A remote endpoint is one gRPC channel with
 * the round_robin policy, so a DNS name of several brokers is balanced by
 * gRPC itself.
 *
 * Recovery.  When the endpoint in use goes away (the local broker's
 * socket closes; a remote call ends UNAVAILABLE without a ferry code),
 * the transport marks its instance down and hands each request it had in
 * flight to client__request_lost, which parks it on the client's pending
 * list; requests submitted meanwhile are parked too.  Whichever thread
 * waits next (it holds reap_lock) runs client__recover: it fails the
 * pending requests whose deadline passed with FERRY_ETIMEDOUT (those
 * without a deadline after the reconnect window, with FERRY_EPIPE), tries
 * the endpoints again in order (with a back-off of 10 to 200 ms between
 * rounds), and once one serves, installs it, resolves the client's models
 * there again (the ids change) and resubmits the pending requests, each
 * at most retry.max times after being lost, within its deadline.
 * Inference is idempotent, so a request the old broker may have run is
 * simply run again.
 *
 * Reloads.  A local broker that reloads a model retires the versions it
 * replaced: a request sent on such a version's id is refused, not run,
 * with FSHM_CQE_F_STALE (broker/models/models.h).  The transport hands it
 * to client__request_stale, which parks it and marks its model stale;
 * the reaper at once resolves the stale models again, as they were asked
 * for (FERRY_LATEST: the newest version now), and resubmits.  A model
 * that cannot be resolved again (its version is gone, its tensors
 * changed) fails those requests with the broker's message.  Over gRPC a
 * model asked for as FERRY_LATEST is requested without a version, so the
 * server's newest serves it (client_grpc.c).
 *
 * Tensors.  The session's segment is the client's (struct client__seg):
 * a local broker that takes over hands the same memfd back to the next
 * one in its Hello (adopt_segment), which re-initialises header and rings
 * and keeps the arena, so the descriptors and tensors of the requests in
 * flight, and every pointer the application holds into the arena, stay
 * valid.  A remote endpoint reads the same arena when the client fails
 * over from a local broker; a request made on the heap (the client had
 * no local broker yet) is copied into the arena when it is sent over
 * shared memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"

#define CLIENT__MAX_EPS 16
#define CLIENT__SUN_PATH sizeof(((struct sockaddr_un *)0)->sun_path)

/* Where a local socket's path came from, for what a message suggests. */
enum client__origin { CLIENT__GIVEN, CLIENT__ENV, CLIENT__DEFAULT };

/* Back-off between rounds of reconnect attempts, and the time a client
 * that does not use the autostarted broker waits before starting one
 * (a node's broker restarted by systemd must find its socket free). */
#define CLIENT__BACKOFF_MIN_NS 10000000ULL
#define CLIENT__BACKOFF_MAX_NS 200000000ULL
#define CLIENT__AUTOSTART_GRACE_NS 5000000000ULL
/* A health check while recovering: a dead endpoint must not hold the
 * requests of the live ones up for long. */
#define CLIENT__PROBE_NS 1000000000LL

/* ---------------------------------------------------------------------- */
/* The endpoint list                                                       */

static bool client__is_grpc(const char *a)
{
	return !strncmp(a, "grpc://", 7) || !strncmp(a, "grpcs://", 8);
}

static int client__ep_local(struct client__ep *ep, const char *path, int origin)
{
	if (strlen(path) >= CLIENT__SUN_PATH)
		return client__fail(FERRY_EINVAL, "socket path longer than %zu bytes: %s",
				    CLIENT__SUN_PATH - 1, path);
	ep->ops = &client__local_ops;
	snprintf(ep->address, sizeof(ep->address), "%s", path);
	ep->origin = origin;
	return 0;
}

/* The node's socket: $FERRY_SOCKET, else the default path. */
static int client__ep_node(struct client__ep *ep)
{
	char path[CLIENT__SUN_PATH];
	const char *env = getenv("FERRY_SOCKET");
	if (frame_default_socket_path(path, sizeof(path)))
		return client__fail(FERRY_EINVAL, "the broker's socket path is longer than %zu "
				    "bytes", sizeof(path) - 1);
	return client__ep_local(ep, path, env && *env ? CLIENT__ENV : CLIENT__DEFAULT);
}

/*
 * One endpoint of a list, a[0..len): "local" (the node's socket),
 * "grpc://host:port" / "grpcs://host:port" (any gRPC target: a DNS name,
 * "ipv4:a:p"), "unix:PATH" or a path; a bare string is a socket path in an
 * address and a gRPC "host:port" in $FERRY_SERVER (server).  1: empty,
 * skipped.
 */
static int client__ep_parse(const char *a, size_t len, bool server, struct client__ep *ep)
{
	char buf[512];

	while (len && (*a == ' ' || *a == '\t')) {
		a++;
		len--;
	}
	while (len && (a[len - 1] == ' ' || a[len - 1] == '\t'))
		len--;
	if (!len)
		return 1;
	if (len >= sizeof(buf) || len >= sizeof(ep->address))
		return client__fail(FERRY_EINVAL, "endpoint longer than %zu bytes: %.*s",
				    sizeof(ep->address) - 1, (int)len, a);
	memcpy(buf, a, len);
	buf[len] = '\0';
	memset(ep, 0, sizeof(*ep));
	if (!strcmp(buf, "local"))
		return client__ep_node(ep);
	if (client__is_grpc(buf) || (server && buf[0] != '/' && strncmp(buf, "unix:", 5))) {
		ep->ops = &client__grpc_ops;
		memcpy(ep->address, buf, len + 1);     /* len < sizeof(address) */
		return 0;
	}
	return client__ep_local(ep, !strncmp(buf, "unix:", 5) ? buf + 5 : buf, CLIENT__GIVEN);
}

/* The comma-separated list s appended to c->eps. */
static int client__ep_split(ferry_client *c, const char *s, bool server)
{
	for (const char *p = s;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (c->neps == CLIENT__MAX_EPS)
			return client__fail(FERRY_EINVAL, "more than %d endpoints", CLIENT__MAX_EPS);
		int ret = client__ep_parse(p, len, server, &c->eps[c->neps]);
		if (ret < 0)
			return ret;
		if (ret == 0)
			c->neps++;
		if (!e)
			return 0;
		p = e + 1;
	}
}

int client__endpoints(ferry_client *c, const char *address, bool admin)
{
	int ret;

	c->eps = calloc(CLIENT__MAX_EPS, sizeof(*c->eps));
	if (!c->eps)
		return client__fail(FERRY_ENOMEM, "out of memory");
	if (address && *address) {
		/* Given: used alone, no $FERRY_SERVER, no autostart. */
		if ((ret = client__ep_split(c, address, false)))
			return ret;
		if (!c->neps)
			return client__fail(FERRY_EINVAL, "no endpoint in '%s'", address);
		return 0;
	}
	/* Discovery: the node's socket, then $FERRY_SERVER's endpoints; a
	 * $FERRY_SERVER that names "local" (or another socket) is taken
	 * in its own order. */
	const char *srv = admin ? NULL : getenv("FERRY_SERVER");
	if (srv && *srv && (ret = client__ep_split(c, srv, true)))
		return ret;
	bool has_local = false;
	for (int i = 0; i < c->neps; i++)
		has_local |= c->eps[i].ops == &client__local_ops;
	if (!has_local) {
		if (c->neps == CLIENT__MAX_EPS)
			return client__fail(FERRY_EINVAL, "more than %d endpoints", CLIENT__MAX_EPS);
		memmove(&c->eps[1], &c->eps[0], (size_t)c->neps * sizeof(c->eps[0]));
		c->neps++;
		if ((ret = client__ep_node(&c->eps[0])))
			return ret;
	}
	const char *repo = admin ? NULL : getenv("FERRY_AUTOSTART");
	if (repo && *repo) {
		if (frame_default_socket_path(c->retry.autostart_path,
					      sizeof(c->retry.autostart_path)))
			return client__fail(FERRY_EINVAL, "the broker's socket path is too long");
		if (!(c->retry.autostart = strdup(repo)))
			return client__fail(FERRY_ENOMEM, "out of memory");
	}
	return 0;
}

int client__endpoints_list(ferry_client *c, const char *const *addr, int n)
{
	if (n > CLIENT__MAX_EPS)
		return client__fail(FERRY_EINVAL, "more than %d endpoints", CLIENT__MAX_EPS);
	c->eps = calloc(CLIENT__MAX_EPS, sizeof(*c->eps));
	if (!c->eps)
		return client__fail(FERRY_ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		/* One address each, commas and all ("grpc://ipv4:a:1,b:2"). */
		int ret = addr[i] ? client__ep_parse(addr[i], strlen(addr[i]), false,
						     &c->eps[c->neps]) : 1;
		if (ret < 0)
			return ret;
		if (ret == 0)
			c->neps++;
	}
	if (!c->neps)
		return client__fail(FERRY_EINVAL, "ferry_connect_list: no endpoint");
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connecting                                                              */

/* An instance of ep, health-checked (check: ServerReady where the
 * transport has it). */
static int client__try(ferry_client *c, const struct client__ep *ep, bool check,
		       struct client__tp **out)
{
	int ret = ep->ops->open(c, ep->address, &c->opts, out);
	if (ret)
		return ret;
	if (check && (*out)->ops->check && (ret = (*out)->ops->check(*out))) {
		(*out)->ops->close(*out, false);
		*out = NULL;
	}
	return ret;
}

/* The client starts using t (tp_lock held for writing, or the client not
 * shared yet): a segment t made becomes the client's. */
static void client__use(ferry_client *c, struct client__tp *t, int idx)
{
	if (t->seg_made) {
		/* Release: pairs with the acquires of the buffer allocator. */
		atomic_store_explicit(&c->seg, t->seg_made, memory_order_release);
		t->seg_made = NULL;
	}
	c->tp = t;
	c->cur = idx;
}

/* What to do about "no broker at PATH", by where the path came from. */
static void client__no_broker_hint(int origin, bool admin)
{
	if (origin == CLIENT__DEFAULT)
		client__fail_more("; is ferryd running?  For a broker on another socket, set "
				  "$FERRY_SOCKET to its path%s", admin ? "" : " (or $FERRY_AUTOSTART "
				  "to a model repository, to start a private one)");
	else if (origin == CLIENT__ENV)
		client__fail_more(" (named by $FERRY_SOCKET); is ferryd running with that "
				  "--socket?");
}

/* The autostarted broker, opened (the last resort). */
static int client__autostarted(ferry_client *c, struct client__tp **out)
{
	int ret = client__autostart(c->retry.autostart_path, c->retry.autostart);
	if (ret)
		return ret;
	return client__local_ops.open(c, c->retry.autostart_path, &c->opts, out);
}

int client__connect_first(ferry_client *c)
{
	char why[1024] = "";
	size_t wl = 0;
	int code = 0, ret = 0;
	struct client__tp *t;

	for (int i = 0; i < c->neps; i++) {
		ret = client__try(c, &c->eps[i], c->neps > 1, &t);
		if (!ret) {
			client__use(c, t, i);
			return 0;
		}
		/* The first reason that is not "nobody there" says most. */
		if (!code || (code == FERRY_ECONNREFUSED && ret != FERRY_ECONNREFUSED))
			code = ret;
		if (wl < sizeof(why))
			wl += (size_t)snprintf(why + wl, sizeof(why) - wl, "%s%s", wl ? "; " : "",
					       ferry_last_error());
	}
	if (c->retry.autostart) {
		if ((ret = client__autostarted(c, &t)))
			return ret;
		client__use(c, t, -1);
		return 0;
	}
	if (c->neps == 1) {
		/* ferry_last_error() is the one endpoint's reason. */
		if (ret == FERRY_ECONNREFUSED && c->eps[0].ops == &client__local_ops)
			client__no_broker_hint(c->eps[0].origin, c->admin);
		return ret;
	}
	return client__fail(code, "no endpoint answered: %s", why);
}

/* ---------------------------------------------------------------------- */
/* The pending list (sq_lock)                                              */

static void client__park(ferry_client *c, ferry_request *r)
{
	r->pnext = NULL;
	*c->pending_tail = r;
	c->pending_tail = &r->pnext;
	/* Release: the reaper's acquire load then finds the list's state. */
	atomic_fetch_add_explicit(&c->npending, 1, memory_order_release);
}

static ferry_request *client__pending_pop(ferry_client *c)
{
	ferry_request *r = c->pending;
	if (!r)
		return NULL;
	c->pending = r->pnext;
	if (!c->pending)
		c->pending_tail = &c->pending;
	atomic_fetch_sub_explicit(&c->npending, 1, memory_order_relaxed);
	return r;
}

static void client__pending_push_front(ferry_client *c, ferry_request *r)
{
	r->pnext = c->pending;
	c->pending = r;
	if (!r->pnext)
		c->pending_tail = &r->pnext;
	atomic_fetch_add_explicit(&c->npending, 1, memory_order_release);
}

bool client__request_lost(ferry_request *r, int status, const char *msg)
{
	ferry_client *c = r->client;
	if (!c || !c->retry.on) {
		client__request_complete(r, status, msg);
		return false;
	}
	/* Why it was lost: its error should it not be sent again. */
	r->attempts++;
	r->status = status;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg ? msg : ferry_strerror(status));
	if (!r->deadline_ns && !r->lost_ns)
		r->lost_ns = fshm_now_ns();
	client__park(c, r);
	return true;
}

/* Times one request is sent again because reloads replaced its model's
 * version; a model reloaded faster than its requests can go through
 * fails them after that. */
#define CLIENT__MAX_RELOADS 8

bool client__request_stale(ferry_request *r, uint32_t sent_id, int status, const char *msg)
{
	ferry_client *c = r->client;
	if (!c || !c->retry.on || r->reloads >= CLIENT__MAX_RELOADS) {
		client__request_complete(r, status, msg);
		return false;
	}
	r->reloads++;
	r->stale = true;
	r->sent_id = sent_id;
	r->status = status;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg ? msg : ferry_strerror(status));
	/* It waits as a lost one would (client__expire); reset when it goes. */
	if (!r->deadline_ns && !r->lost_ns)
		r->lost_ns = fshm_now_ns();
	/* The first such refusal for this id: resolve the model again (a
	 * later one finds the id changed already and is only resubmitted). */
	if (r->model->id == sent_id) {
		r->model->stale = true;
		c->stale = true;
	}
	client__park(c, r);
	return true;
}

int client__submit(ferry_client *c, struct client__tp *t, ferry_request *r)
{
	/* Acquire: pairs with the release of whoever marked it down. */
	if (atomic_load_explicit(&t->down, memory_order_acquire)) {
		if (!c->retry.on)
			return client__fail(FERRY_EPIPE, "disconnected from the broker");
		/* Waits for the next endpoint, or its deadline. */
		pthread_mutex_lock(&c->sq_lock);
		atomic_store_explicit(&r->state, CLIENT__INFLIGHT, memory_order_relaxed);
		if (!r->deadline_ns)
			r->lost_ns = fshm_now_ns();
		client__park(c, r);
		pthread_mutex_unlock(&c->sq_lock);
		return 0;
	}
	if (r->model->lost)
		return client__fail(r->model->lost, "model '%s' is not served by %s, where this "
				    "client reconnected (%s): get it again", r->model->name,
				    t->address, ferry_strerror(r->model->lost));
	return t->ops->submit(t, r);
}

void client__pending_close(ferry_client *c)
{
	ferry_request *r;
	while ((r = client__pending_pop(c))) {
		r->client = NULL;
		if (r->freed)
			client__request_destroy(r);
		else
			client__request_complete(r, FERRY_EPIPE, "the client closed its session "
						 "while the request waited for a broker");
	}
}

/* ---------------------------------------------------------------------- */
/* Recovery (reap_lock held)                                               */

/* Pending requests past their deadline (or the reconnect window), and
 * those freed meanwhile, complete into done[]. */
static int client__expire(ferry_client *c, uint64_t now, ferry_request **done, int max)
{
	int n = 0;
	pthread_mutex_lock(&c->sq_lock);
	for (ferry_request **pp = &c->pending, *r; (r = *pp) && n < max;) {
		int code = 0;
		if (r->freed)
			code = FERRY_ECANCELED;
		else if (r->deadline_ns && now >= r->deadline_ns)
			code = FERRY_ETIMEDOUT;
		else if (!r->deadline_ns && now - r->lost_ns >= c->retry.window_ns)
			code = FERRY_EPIPE;
		if (!code) {
			pp = &r->pnext;
			continue;
		}
		*pp = r->pnext;
		if (c->pending_tail == &r->pnext)
			c->pending_tail = pp;
		atomic_fetch_sub_explicit(&c->npending, 1, memory_order_relaxed);
		if (code == FERRY_ETIMEDOUT)
			client__request_complete(r, code, "the request's deadline passed while "
						 "no broker served it (its broker went away)");
		else
			client__request_complete(r, code, code == FERRY_EPIPE ?
						 "disconnected from the broker: none answered "
						 "again within the reconnect window "
						 "($FERRY_RECONNECT_MS)" : "freed");
		done[n++] = r;
	}
	pthread_mutex_unlock(&c->sq_lock);
	return n;
}

static bool client__same_io(const ferry_model *a, const ferry_model *b)
{
	if (a->nin != b->nin || a->nout != b->nout)
		return false;
	for (int i = 0; i < a->nin + a->nout; i++)
		if (strcmp(a->t[i].name, b->t[i].name) || a->t[i].dtype != b->t[i].dtype)
			return false;
	return true;
}

/* An error that says the endpoint itself cannot serve (rather than that
 * it does not have a model). */
static bool client__endpoint_error(int ret)
{
	return ret == FERRY_EPIPE || ret == FERRY_ECONNREFUSED || ret == FERRY_ETIMEDOUT ||
	       ret == FERRY_EPROTO || ret == FERRY_ENOMEM;
}

/*
 * The client's models at t (tp_lock held for writing, ctl_lock held):
 * their ids and versions there, or for a model t does not serve (or
 * serves with other tensors) the error its requests get.  Fails when t
 * itself does not answer.
 */
static int client__resolve(ferry_client *c, struct client__tp *t)
{
	struct client__res { uint32_t id; int64_t version; int lost; } *res;
	int n = 0, k = 0;

	for (ferry_model *m = c->models; m; m = m->next)
		n++;
	if (!(res = calloc((size_t)n + 1, sizeof(*res))))
		return client__fail(FERRY_ENOMEM, "out of memory");
	for (ferry_model *m = c->models; m; m = m->next, k++) {
		ferry_model *nm = NULL;
		int ret = t->ops->model_get(t, m->name, m->asked_latest ? -1 : m->version, &nm);
		if (ret && client__endpoint_error(ret)) {
			free(res);
			return ret;
		}
		if (!ret && !client__same_io(m, nm))
			ret = FERRY_EINVAL;
		res[k].lost = ret;
		if (!ret) {
			res[k].id = nm->id;
			res[k].version = nm->version;
		}
		if (nm)
			client__model_free(nm);
	}
	k = 0;
	for (ferry_model *m = c->models; m; m = m->next, k++) {
		m->lost = res[k].lost;
		if (!m->lost) {
			m->id = res[k].id;
			m->version = res[k].version;
		}
	}
	free(res);
	return 0;
}

/* Use nt (an instance of eps[idx]; idx -1: the autostarted broker), or
 * the current instance again when it answers its health check.  The old
 * instance's requests still in flight join the pending list. */
static int client__install(ferry_client *c, struct client__tp *nt, int idx)
{
	struct client__tp *old = c->tp;
	int ret = 0;

	pthread_rwlock_wrlock(&c->tp_lock);
	if (nt != old) {
		pthread_mutex_lock(&c->ctl_lock);
		ret = client__resolve(c, nt);
		/* The CUDA regions were the old session's: register again. */
		if (!ret)
			client__cuda_detach(c);
		pthread_mutex_unlock(&c->ctl_lock);
		if (!ret)
			client__use(c, nt, idx);
	}
	if (!ret)
		/* Release: submitters that find it up see the new models. */
		atomic_store_explicit(&nt->down, false, memory_order_release);
	pthread_rwlock_unlock(&c->tp_lock);
	if (!ret && nt != old) {
		old->ops->close(old, true);
		atomic_fetch_add_explicit(&c->reconnects, 1, memory_order_relaxed);
	}
	return ret;
}

/* One round over the endpoints, in order of preference, then the
 * autostarted broker: 0 once one is in use. */
static int client__reconnect(ferry_client *c, uint64_t now)
{
	struct client__tp *nt;
	int64_t probe = c->probe_ns;
	int ret = FERRY_ECONNREFUSED;

	c->probe_ns = CLIENT__PROBE_NS;
	for (int i = 0; i < c->neps; i++) {
		if (i == c->cur && c->tp->ops->check) {
			/* A remote endpoint revives in place: its channel
			 * reconnects by itself (or balances to the brokers of
			 * its pool that are up). */
			if (!c->tp->ops->check(c->tp) && !client__install(c, c->tp, i))
				goto out;
			continue;
		}
		if (client__try(c, &c->eps[i], true, &nt))
			continue;
		if (!client__install(c, nt, i))
			goto out;
		nt->ops->close(nt, false);
	}
	/* The last resort; a node's broker gets time to come back first. */
	if (c->retry.autostart &&
	    (c->cur == -1 || now - c->down_ns >= CLIENT__AUTOSTART_GRACE_NS) &&
	    !client__autostarted(c, &nt)) {
		if (!client__install(c, nt, -1))
			goto out;
		nt->ops->close(nt, false);
	}
	c->probe_ns = probe;
	return ret;
out:
	c->probe_ns = probe;
	return 0;
}

static bool client__uses_cuda(const ferry_request *r)
{
	for (uint32_t i = 0; i < r->ntensors; i++)
		if (r->t[i].set && r->t[i].cuda_id)
			return true;
	return false;
}

/* Send r again on t (tp_lock held for reading): 0, FERRY_EAGAIN (the
 * queue is full: it stays pending), or the error it completed with. */
static int client__resubmit_one(ferry_client *c, struct client__tp *t, ferry_request *r)
{
	char msg[512];  /* cut to the request's errmsg when it completes */
	int code = 0;

	msg[0] = '\0';
	if (r->freed) {
		code = FERRY_ECANCELED;
	} else if (r->attempts > c->retry.max) {
		code = r->status ? r->status : FERRY_EPIPE;
		snprintf(msg, sizeof(msg), "%.160s (lost with its broker %u times; "
			 "FERRY_RETRIES is %u)", r->errmsg, r->attempts, c->retry.max);
	} else if (r->model->lost) {
		code = r->model->lost;
		snprintf(msg, sizeof(msg), "model '%.64s' is not served by %.64s, where this "
			 "client reconnected (%s)", r->model->name, t->address,
			 ferry_strerror(code));
	} else if (r->stale && r->model->id == r->sent_id) {
		/* Not resolved again (client__refresh): the broker's reason. */
		code = r->status ? r->status : FERRY_UNAVAILABLE;
		snprintf(msg, sizeof(msg), "%.200s (getting model '%.64s' again: %s)", r->errmsg,
			 r->model->name, ferry_strerror(r->model->refresh_err));
	} else if (client__uses_cuda(r)) {
		code = FERRY_UNAVAILABLE;
		snprintf(msg, sizeof(msg), "its CUDA region belonged to the broker session that "
			 "went away: register it again");
	} else {
		if (r->deadline_ns) {
			uint64_t now = fshm_now_ns();
			if (now >= r->deadline_ns) {
				code = FERRY_ETIMEDOUT;
				snprintf(msg, sizeof(msg), "the request's deadline passed while no "
					 "broker served it (its broker went away)");
				goto fail;
			}
			/* What is left of its deadline, no more. */
			r->wire_timeout_us = (r->deadline_ns - now + 999) / 1000;
		}
		r->status = 0;
		r->errmsg[0] = '\0';
		code = t->ops->submit(t, r);
		if (code == FERRY_EAGAIN || !code) {
			if (!code && r->stale) {
				/* A reload's, not a lost broker's: the reconnect
				 * window starts afresh should it be lost later
				 * (attempts: it was lost before, keep that start). */
				r->stale = false;
				if (!r->attempts)
					r->lost_ns = 0;
			} else if (!code) {
				atomic_fetch_add_explicit(&c->resubmits, 1, memory_order_relaxed);
			}
			return code;
		}
		snprintf(msg, sizeof(msg), "%s", ferry_last_error());
	}
fail:
	pthread_mutex_lock(&c->sq_lock);
	client__request_complete(r, code, msg[0] ? msg : ferry_strerror(code));
	pthread_mutex_unlock(&c->sq_lock);
	return code;
}

/* The pending requests, sent again while the endpoint serves and has
 * room; those that may not be sent go to done[]. */
static int client__resubmit(ferry_client *c, ferry_request **done, int max)
{
	int n = 0;
	struct client__tp *t = client__tp_get(c);
	while (n < max && !atomic_load_explicit(&t->down, memory_order_acquire)) {
		pthread_mutex_lock(&c->sq_lock);
		ferry_request *r = client__pending_pop(c);
		pthread_mutex_unlock(&c->sq_lock);
		if (!r)
			break;
		int ret = client__resubmit_one(c, t, r);
		if (ret == FERRY_EAGAIN) {
			pthread_mutex_lock(&c->sq_lock);
			client__pending_push_front(c, r);
			pthread_mutex_unlock(&c->sq_lock);
			break;
		}
		if (ret)
			done[n++] = r;
	}
	client__tp_put(c);
	return n;
}

/*
 * The models a reload made stale, resolved again at c->tp as they were
 * asked for: their new ids and versions, or in refresh_err why not (their
 * requests then fail, client__resubmit_one).  reap_lock held; takes
 * tp_lock for writing (submitters read the ids under it) and ctl_lock.
 */
static void client__refresh(ferry_client *c)
{
	struct client__tp *t = c->tp;

	c->stale = false;
	pthread_rwlock_wrlock(&c->tp_lock);
	pthread_mutex_lock(&c->ctl_lock);
	for (ferry_model *m = c->models; m; m = m->next) {
		if (!m->stale)
			continue;
		m->stale = false;
		ferry_model *nm = NULL;
		int ret = t->ops->model_get(t, m->name, m->asked_latest ? -1 : m->version, &nm);
		if (!ret && !client__same_io(m, nm))
			ret = FERRY_EINVAL;     /* its tensors changed: get it again */
		m->refresh_err = ret;
		if (!ret) {
			m->id = nm->id;
			m->version = nm->version;
		}
		if (nm)
			client__model_free(nm);
	}
	pthread_mutex_unlock(&c->ctl_lock);
	pthread_rwlock_unlock(&c->tp_lock);
}

int client__recover(ferry_client *c, ferry_request **done, int max)
{
	/* c->tp changes only with reap_lock held, which we hold. */
	struct client__tp *t = c->tp;

	if (!c->retry.on)
		return 0;
	bool down = atomic_load_explicit(&t->down, memory_order_acquire);
	if (!down && !atomic_load_explicit(&c->npending, memory_order_acquire))
		return 0;
	uint64_t now = fshm_now_ns();
	int n = client__expire(c, now, done, max);
	if (down) {
		if (!c->down_ns) {
			c->down_ns = now;
			c->backoff_ns = 0;
			c->next_try_ns = now;
			/* Submitters that found it up are out of it before a
			 * new broker rewrites the segment's header and rings:
			 * any later one finds it down and parks its request. */
			pthread_rwlock_wrlock(&c->tp_lock);
			pthread_rwlock_unlock(&c->tp_lock);
		}
		if (now < c->next_try_ns)
			return n;
		if (client__reconnect(c, now)) {
			c->backoff_ns = c->backoff_ns ? 2 * c->backoff_ns : CLIENT__BACKOFF_MIN_NS;
			if (c->backoff_ns > CLIENT__BACKOFF_MAX_NS)
				c->backoff_ns = CLIENT__BACKOFF_MAX_NS;
			c->next_try_ns = fshm_now_ns() + c->backoff_ns;
			return n;
		}
		c->down_ns = 0;
	}
	if (c->stale)
		client__refresh(c);
	if (n < max)
		n += client__resubmit(c, done + n, max - n);
	return n;
}
