/* SPDX-License-Identifier: MIT */
/*
 * client_local.c - libferry's local transport: a shared-memory session
 * with the node's ferryd.  Requests are laid out in the session's arena
 * and named on the submission ring; completions come back on the
 * completion ring; everything else (hello, models, statistics, loads,
 * CUDA regions) is a control call on the Unix socket (proto/control.proto).
 *
 * An admin client (ferry_connect_admin) opens the socket and says no
 * Hello: it has no session, and only the control calls work.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"

#define LOCAL(t) ((struct client__local *)(t))

/* ---------------------------------------------------------------------- */
/* Control calls                                                           */

static int64_t client__ms_left(uint64_t deadline)
{
	uint64_t now = fshm_now_ns();
	return now >= deadline ? 0 : (int64_t)((deadline - now) / 1000000 + 1);
}

/* Send req (with send_fd as SCM_RIGHTS when >= 0) and wait for its
 * response (ctl_lock held).  fds received with it are returned in fds[]
 * (up to FRAME_MAX_FDS), the caller owns them.  The caller frees *resp
 * (ferry__control__response__free_unpacked). */
static int client__call_t(struct client__local *l, Ferry__Control__Request *req,
			  Ferry__Control__Response **resp, int *fds, int *nfds, int timeout_s,
			  int send_fd)
{
	uint64_t deadline = fshm_now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	int ret;

	req->seq = ++l->seq;
	ret = frame_send(l->sock, &req->base, &send_fd, send_fd >= 0, 0);
	if (ret) {
		/* A broker that refuses a peer sends an Error and closes at
		 * once: read it rather than report a bare EPIPE. */
		if (frame_read(l->sock, &l->rd) == 1)
			goto have_frame;
		return client__fail(ret == -EPIPE ? FERRY_EPIPE : ret,
				    "cannot talk to the broker: %s", strerror(-ret));
	}
	for (;;) {
		ret = frame_read(l->sock, &l->rd);
		if (ret == 1)
			break;
		if (ret < 0)
			return client__fail(ret == -EPIPE ? FERRY_EPIPE : ret,
					    "broker connection: %s",
					    ret == -EPIPE ? "closed by the broker" : strerror(-ret));
		struct pollfd p = { .fd = l->sock, .events = POLLIN };
		int64_t ms = client__ms_left(deadline);
		if (ms == 0)
			return client__fail(FERRY_ETIMEDOUT, "the broker did not answer in %d s",
					    timeout_s);
		poll(&p, 1, (int)ms);
	}
have_frame:
	*resp = ferry__control__response__unpack(NULL, frame_payload_len(&l->rd),
						  frame_payload(&l->rd));
	if (fds && nfds) {
		*nfds = l->rd.nfds;
		for (int i = 0; i < l->rd.nfds; i++)
			fds[i] = l->rd.fds[i];
		l->rd.nfds = 0; /* ours now: frame_reader_next must not close them */
	}
	frame_reader_next(&l->rd);
	if (!*resp)
		return client__fail(FERRY_EPROTO, "malformed response from the broker");
	/* seq 0 is the broker speaking first: an Error about the whole
	 * connection (a refused peer, a session limit). */
	if ((*resp)->seq != req->seq &&
	    !((*resp)->seq == 0 && (*resp)->body_case == FERRY__CONTROL__RESPONSE__BODY_ERROR)) {
		ferry__control__response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return client__fail(FERRY_EPROTO, "response out of order");
	}
	if ((*resp)->body_case == FERRY__CONTROL__RESPONSE__BODY_ERROR) {
		Ferry__Control__Error *e = (*resp)->error;
		int code = e->code < 0 ? e->code : FERRY_EPROTO;
		client__fail(code, "%s", e->message ? e->message : ferry_strerror(code));
		ferry__control__response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return code;
	}
	return 0;
}

/*
 * One control call, ctl_lock taken here: 0 with *resp of the body
 * expected (the caller frees it), or the broker's error.  Control calls
 * answer at once (10 s means the broker is stuck), except loads, which
 * answer when the model has loaded.
 */
static int client__call(struct client__local *l, Ferry__Control__Request *req,
			Ferry__Control__Response__BodyCase want, const char *what,
			int timeout_s, Ferry__Control__Response **resp)
{
	ferry_client *c = l->tp.c;
	pthread_mutex_lock(&c->ctl_lock);
	int ret = client__call_t(l, req, resp, NULL, NULL, timeout_s, -1);
	pthread_mutex_unlock(&c->ctl_lock);
	if (!ret && (*resp)->body_case != want) {
		ferry__control__response__free_unpacked(*resp, NULL);
		*resp = NULL;
		ret = client__fail(FERRY_EPROTO, "unexpected answer to %s", what);
	}
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Open / close                                                            */

void client__seg_free(struct client__seg *s)
{
	if (s->arena)
		fshm_arena_destroy(s->arena);
	fshm_seg_close(&s->seg);
	free(s);
}

static void client__local_free(struct client__local *l)
{
	/* l->seg is a view of the client's segment: not ours to close,
	 * unless this instance made it and the client never took it. */
	if (l->tp.seg_made)
		client__seg_free(l->tp.seg_made);
	if (l->db_broker.efd >= 0)
		close(l->db_broker.efd);
	if (l->db_client.efd >= 0)
		close(l->db_client.efd);
	if (l->sock >= 0)
		close(l->sock);
	frame_reader_fini(&l->rd);
	free(l->slots);
	free(l->free_slots);
	free(l);
}

static const char *client__progname(void)
{
	extern char *program_invocation_short_name;
	return program_invocation_short_name;
}

static const char *client__file_type(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : S_ISREG(m) ? "a regular file" :
	       S_ISLNK(m) ? "a symbolic link" : S_ISFIFO(m) ? "a FIFO" :
	       S_ISCHR(m) || S_ISBLK(m) ? "a device" : "not a socket";
}

/*
 * Why connect(path) failed with errno e, in words that say what to do:
 * FERRY_ECONNREFUSED when no broker listens (nothing there, or a socket
 * nobody serves), FERRY_EINVAL when the path is not a socket at all,
 * FERRY_EPERM when this user may not use it.
 */
static int client__connect_error(const char *path, int e)
{
	struct stat st;
	int se = stat(path, &st) ? errno : 0;

	if (e == EACCES || e == EPERM) {
		if (se == EACCES)
			return client__fail(FERRY_EPERM, "permission denied on %s: a directory "
					    "above it is not searchable by this user", path);
		if (se)
			return client__fail(FERRY_EPERM, "permission denied on %s", path);
		struct group *g = getgrgid(st.st_gid);
		struct passwd *pw = getpwuid(st.st_uid);
		return client__fail(FERRY_EPERM, "permission denied on %s (mode %04o, owner "
				    "%s, group %s): the broker's socket needs write access; ask "
				    "for membership of its group (ferryd --socket-group), or "
				    "use a broker of your own", path,
				    (unsigned)(st.st_mode & 07777), pw ? pw->pw_name : "?",
				    g ? g->gr_name : "?");
	}
	if (se == 0 && !S_ISSOCK(st.st_mode))
		return client__fail(FERRY_EINVAL, "%s is %s, not a socket: name the broker's "
				    "socket (ferryd --socket)%s", path,
				    client__file_type(st.st_mode),
				    S_ISDIR(st.st_mode) ? ", e.g. a ferryd.sock in it" : "");
	if (e == ENOTDIR)
		return client__fail(FERRY_EINVAL, "%s: a component of the path is not a "
				    "directory", path);
	if (e == ENOENT)
		return client__fail(FERRY_ECONNREFUSED, "no broker at %s: no such socket", path);
	if (e == ECONNREFUSED)
		return client__fail(FERRY_ECONNREFUSED, "no broker at %s: the socket is there "
				    "but nobody listens on it (its broker exited)", path);
	return client__fail(-e, "cannot connect to the broker at %s: %s", path, strerror(e));
}

/* The segment a new broker took over (Welcome.segment_adopted; fd, its
 * copy of the memfd, closed here): the same file as ours, and a header
 * the broker rewrote with the same layout. */
static int client__adopted(struct client__local *l, struct client__seg *cs, int fd)
{
	struct stat a, b;
	struct fshm_area sq, cq, arena;
	int ret = fstat(fd, &a) || fstat(cs->seg.fd, &b) ? -errno : 0;
	close(fd);
	if (ret || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return client__fail(FERRY_EPROTO, "the broker at %s took over another segment "
				    "than this client's", l->tp.address);
	ret = fshm_seg_validate(cs->seg.base, cs->seg.size, &sq, &cq, &arena, NULL);
	if (ret || memcmp(&sq, &cs->seg.sq, sizeof(sq)) || memcmp(&cq, &cs->seg.cq, sizeof(cq)) ||
	    memcmp(&arena, &cs->seg.arena, sizeof(arena)))
		return client__fail(FERRY_EPROTO, "the broker at %s rewrote the segment it took "
				    "over with another layout", l->tp.address);
	l->adopted = true;
	return 0;
}

/* A new segment from the broker (fd, now ours): mapped, with its arena's
 * allocator; the client takes it when it uses this instance. */
static int client__seg_new(struct client__local *l, int fd)
{
	struct client__seg *cs = calloc(1, sizeof(*cs));
	if (!cs) {
		close(fd);
		return client__fail(FERRY_ENOMEM, "out of memory");
	}
	int ret = fshm_seg_attach(fd, &cs->seg);
	if (ret) {
		close(fd);
		free(cs);
		return client__fail(ret, "the broker's segment is not acceptable: %s",
				    ferry_strerror(ret));
	}
	cs->base = fshm_seg_arena(&cs->seg);
	cs->bytes = cs->seg.arena.bytes;
	ret = fshm_arena_create(&cs->arena, cs->base, cs->bytes,
				cs->seg.arena.entry_size ? cs->seg.arena.entry_size : 64);
	if (ret) {
		client__seg_free(cs);
		return client__fail(ret, "arena: %s", ferry_strerror(ret));
	}
	l->tp.seg_made = cs;
	return 0;
}

/*
 * Hello: the session's segment and doorbells, mapped.  A client that had
 * a session already (its broker went away) hands its segment back, so
 * that its tensors stay where they are; a broker that cannot take it
 * over is refused.
 */
static int client__hello(struct client__local *l, const ferry_options *o)
{
	Ferry__Control__Response *resp = NULL;
	int fds[FRAME_MAX_FDS], nfds = 0;
	int ret;
	/* Acquire: pairs with the release that published the segment. */
	struct client__seg *cs = atomic_load_explicit(&l->tp.c->seg, memory_order_acquire);

	Ferry__Control__Hello h = FERRY__CONTROL__HELLO__INIT;
	h.proto_major = FRAME_PROTO_MAJOR;
	h.proto_minor = FRAME_PROTO_MINOR;
	h.client_name = (char *)(o->client_name ? o->client_name : client__progname());
	h.arena_bytes = cs ? cs->bytes : o->arena_bytes;
	h.queue_depth = o->queue_depth;
	h.adopt_segment = cs != NULL;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_HELLO;
	req.hello = &h;
	ret = client__call_t(l, &req, &resp, fds, &nfds, 10, cs ? cs->seg.fd : -1);
	if (ret)
		return ret;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_WELCOME || nfds != 3) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		ret = client__fail(FERRY_EPROTO, "unexpected answer to hello (%d fds)", nfds);
		goto out;
	}
	l->session_id = resp->welcome->session_id;
	l->db_broker.efd = fds[1];
	l->db_client.efd = fds[2];
	if (cs && !resp->welcome->segment_adopted) {
		close(fds[0]);
		ret = client__fail(FERRY_ENOTSUP, "the broker at %s cannot take this client's "
				   "session over (control protocol 1.%u): the tensors in its arena "
				   "would be lost", l->tp.address, resp->welcome->proto_minor);
		goto out;
	}
	ret = cs ? client__adopted(l, cs, fds[0]) : client__seg_new(l, fds[0]);
	if (ret)
		goto out;
	if (!cs)
		cs = l->tp.seg_made;
	l->cs = cs;
	l->seg = cs->seg;               /* a view: see struct client__local */
	l->seg.fd = -1;
	l->db_broker.flag = &l->seg.hdr->broker_wake.sleeping;
	l->db_client.flag = &l->seg.hdr->client_wake.sleeping;
	/* A thread that sleeps on a result says on which CPU: ferryd's
	 * pollers then run the session's requests there (see poller.h). */
	l->db_client.cpu = &l->seg.hdr->client_wake.cpu;
	/* ... and never spins on the core of the poller that serves it. */
	l->db_client.peer_cpu = &l->seg.hdr->broker_wake.cpu;
	fshm_ring_init(&l->sq, l->seg.base, &l->seg.sq, true);
	fshm_ring_init(&l->cq, l->seg.base, &l->seg.cq, false);
	l->arena = cs->arena;
	l->arena_base = cs->base;
	l->arena_bytes = cs->bytes;
	/* As many requests in flight as the CQ holds: the broker admits no
	 * more than that anyway. */
	l->depth = l->seg.cq.entries;
	l->slots = calloc(l->depth, sizeof(*l->slots));
	l->free_slots = calloc(l->depth, sizeof(*l->free_slots));
	if (!l->slots || !l->free_slots) {
		ret = client__fail(FERRY_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < l->depth; i++)
		l->free_slots[i] = l->depth - 1 - i;
	l->nfree = l->depth;
out:
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

static int client__local_open(ferry_client *c, const char *path, const ferry_options *o,
			      struct client__tp **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct client__local *l = calloc(1, sizeof(*l));
	int ret;

	if (!l)
		return client__fail(FERRY_ENOMEM, "out of memory");
	l->tp.ops = &client__local_ops;
	l->tp.c = c;
	snprintf(l->tp.address, sizeof(l->tp.address), "%s", path);
	l->sock = -1;
	l->db_broker.efd = l->db_client.efd = -1;
	l->seg.fd = -1;
	l->wait = (enum fshm_wait_policy)o->wait;
	l->spin_ns = 20000;
	l->lazy = o->flags & FERRY_F_LAZY_DOORBELL;
	frame_reader_init(&l->rd);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		ret = client__fail(FERRY_EINVAL, "socket path too long: %s", path);
		goto fail;
	}
	strcpy(sa.sun_path, path);
	l->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->sock < 0) {
		ret = client__fail(-errno, "socket: %s", strerror(errno));
		goto fail;
	}
	if (connect(l->sock, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = client__connect_error(path, errno);
		goto fail;
	}
	if (!c->admin && (ret = client__hello(l, o)))
		goto fail;
	*out = &l->tp;
	return 0;
fail:
	client__local_free(l);
	return ret;
}

static void client__local_close(struct client__tp *t, bool requeue)
{
	struct client__local *l = LOCAL(t);
	ferry_client *c = t->c;

	/* Requests still in flight: the broker drops their results when the
	 * socket closes.  Requeued, they go to the client's next endpoint;
	 * else they are marked so that ferry_request_free() can release them
	 * without waiting. */
	pthread_mutex_lock(&c->sq_lock);
	for (uint32_t i = 0; i < l->depth; i++) {
		ferry_request *r = l->slots[i].r;
		if (!r)
			continue;
		l->slots[i].r = NULL;
		if (requeue && client__request_lost(r, FERRY_EPIPE, "the client left its broker"))
			continue;
		r->client = NULL;
		if (r->freed)
			client__request_destroy(r);
		else
			client__request_complete(r, FERRY_EPIPE, "the client closed its session");
	}
	pthread_mutex_unlock(&c->sq_lock);
	client__local_free(l);
}

/* ---------------------------------------------------------------------- */
/* Models and administration                                               */

static int client__model_from_meta(ferry_client *c, const Ferry__Control__ModelMeta *mm,
				   ferry_model **out)
{
	if (mm->n_inputs + mm->n_outputs > FSHM_MAX_TENSORS)
		goto bad;
	ferry_model *m = client__model_new(c, mm->name, (int)mm->n_inputs, (int)mm->n_outputs);
	if (!m)
		return client__fail(FERRY_ENOMEM, "out of memory");
	m->version = mm->version;
	m->id = mm->model_id;
	m->max_batch = mm->max_batch_size;
	for (int i = 0; i < m->nin + m->nout; i++) {
		const Ferry__Control__TensorMeta *tm =
			i < m->nin ? mm->inputs[i] : mm->outputs[i - m->nin];
		struct client__tmeta *t = &m->t[i];
		if (tm->n_dims > FERRY_MAX_DIMS - 1 || !ferry_dtype_name((int)tm->dtype)) {
			client__model_free(m);
			goto bad;
		}
		t->name = strdup(tm->name ? tm->name : "");
		if (!t->name) {
			client__model_free(m);
			return client__fail(FERRY_ENOMEM, "out of memory");
		}
		t->dtype = (ferry_dtype)tm->dtype;
		t->ndims = (int)tm->n_dims;
		memcpy(t->dims, tm->dims, tm->n_dims * sizeof(int64_t));
	}
	*out = m;
	return 0;
bad:
	return client__fail(FERRY_EPROTO, "the broker sent malformed metadata for '%s'",
			    mm->name ? mm->name : "");
}

/* ctl_lock held (client_int.h). */
static int client__local_model_get(struct client__tp *t, const char *name, int64_t version,
				   ferry_model **out)
{
	Ferry__Control__Response *resp = NULL;
	Ferry__Control__GetModel g = FERRY__CONTROL__GET_MODEL__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	int ret;

	g.name = (char *)name;
	g.version = version;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_MODEL;
	req.get_model = &g;
	ret = client__call_t(LOCAL(t), &req, &resp, NULL, NULL, 10, -1);
	if (ret)
		return ret;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_MODEL)
		ret = client__fail(FERRY_EPROTO, "unexpected answer to get_model");
	else if (resp->model->state && strcmp(resp->model->state, "READY"))
		ret = client__fail(FERRY_UNAVAILABLE, "model '%s' is %s%s%s", name,
				   resp->model->state,
				   resp->model->reason && *resp->model->reason ? ": " : "",
				   resp->model->reason ? resp->model->reason : "");
	else
		ret = client__model_from_meta(t->c, resp->model, out);
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

static void client__info_of(const Ferry__Control__ModelMeta *mm, ferry_model_info *mi)
{
	mi->name = mm->name ? mm->name : "";
	mi->version = mm->version;
	mi->state = mm->state ? mm->state : "";
	mi->reason = mm->reason ? mm->reason : "";
	mi->backend = mm->backend ? mm->backend : "";
	mi->max_batch_size = mm->max_batch_size;
}

static int client__local_model_list(struct client__tp *t,
				    void (*fn)(void *arg, const ferry_model_info *m), void *arg)
{
	Ferry__Control__Response *resp;
	Ferry__Control__ListModels lm = FERRY__CONTROL__LIST_MODELS__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_LIST_MODELS;
	req.list_models = &lm;
	int ret = client__call(LOCAL(t), &req, FERRY__CONTROL__RESPONSE__BODY_MODEL_LIST,
			       "list_models", 10, &resp);
	if (ret)
		return ret;
	for (size_t i = 0; i < resp->model_list->n_models; i++) {
		ferry_model_info mi;
		client__info_of(resp->model_list->models[i], &mi);
		fn(arg, &mi);
	}
	ret = (int)resp->model_list->n_models;
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

static int client__local_statistics(struct client__tp *t, const char *name, int64_t version,
				    void (*fn)(void *arg, const ferry_model_stats *s),
				    void *arg)
{
	Ferry__Control__Response *resp;
	Ferry__Control__GetStats g = FERRY__CONTROL__GET_STATS__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	g.name = (char *)(name ? name : "");
	g.version = version;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATS;
	req.get_stats = &g;
	int ret = client__call(LOCAL(t), &req, FERRY__CONTROL__RESPONSE__BODY_STATS,
			       "get_stats", 10, &resp);
	if (ret)
		return ret;
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

static int client__local_model_admin(struct client__tp *t, const char *name, bool unload)
{
	Ferry__Control__Response *resp;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__LoadModel lm = FERRY__CONTROL__LOAD_MODEL__INIT;
	Ferry__Control__UnloadModel um = FERRY__CONTROL__UNLOAD_MODEL__INIT;

	if (unload) {
		um.name = (char *)name;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_UNLOAD_MODEL;
		req.unload_model = &um;
	} else {
		lm.name = (char *)name;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_LOAD_MODEL;
		req.load_model = &lm;
	}
	/* A load answers when the model has loaded: give it time. */
	int ret = client__call(LOCAL(t), &req, FERRY__CONTROL__RESPONSE__BODY_DONE,
			       unload ? "unload_model" : "load_model", 300, &resp);
	if (!ret)
		ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

static int client__get_status(struct client__tp *t, Ferry__Control__Response **resp)
{
	Ferry__Control__GetStatus g = FERRY__CONTROL__GET_STATUS__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATUS;
	req.get_status = &g;
	return client__call(LOCAL(t), &req, FERRY__CONTROL__RESPONSE__BODY_STATUS,
			    "get_status", 10, resp);
}

static int client__local_server_status(struct client__tp *t, ferry_server_status **out)
{
	Ferry__Control__Response *resp;
	int ret = client__get_status(t, &resp);
	if (ret)
		return ret;
	const Ferry__Control__Status *st = resp->status;
	size_t sb = strlen(st->version ? st->version : "") +
		    strlen(st->event_loop ? st->event_loop : "") + 16;
	ferry_server_status *s = client__status_new(sb, 0);
	if (!s) {
		ferry__control__response__free_unpacked(resp, NULL);
		return client__fail(FERRY_ENOMEM, "out of memory");
	}
	s->name = client__status_str(s, "ferryd");
	s->version = client__status_str(s, st->version);
	s->event_loop = client__status_str(s, st->event_loop);
	s->uptime_ns = (int64_t)st->uptime_ns;
	s->cpu_ns = (int64_t)st->cpu_ns;
	s->wait_policy = (int)st->wait_policy;
	s->sessions = (int)st->nsessions;
	s->max_sessions = (int)st->max_sessions;
	s->gpus = (int)st->gpus;
	ferry__control__response__free_unpacked(resp, NULL);
	*out = s;
	return 0;
}

static int client__local_session_list(struct client__tp *t,
				      void (*fn)(void *arg, const ferry_session_info *s),
				      void *arg)
{
	Ferry__Control__Response *resp;
	int ret = client__get_status(t, &resp);
	if (ret)
		return ret;
	const Ferry__Control__Status *st = resp->status;
	for (size_t i = 0; i < st->n_sessions; i++) {
		const Ferry__Control__SessionInfo *x = st->sessions[i];
		ferry_session_info si = {
			.id = x->id, .pid = x->pid, .uid = x->uid,
			.name = x->name ? x->name : "", .arena_bytes = x->arena_bytes,
			.depth = x->depth, .inflight = x->inflight,
			.completed = x->completed, .failed = x->failed,
		};
		fn(arg, &si);
	}
	ret = (int)st->n_sessions;
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* CUDA regions                                                            */

/* ctl_lock held (client_int.h). */
static int client__local_cuda_register(struct client__tp *t, const void *handle, size_t len,
				       const char *pci_bus_id, int device, uint64_t bytes,
				       uint32_t *id, int *broker_device)
{
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__CudaRegister cr = FERRY__CONTROL__CUDA_REGISTER__INIT;
	Ferry__Control__Response *resp = NULL;

	cr.ipc_handle.data = (uint8_t *)handle;
	cr.ipc_handle.len = len;
	cr.pci_bus_id = (char *)(pci_bus_id ? pci_bus_id : "");
	cr.device = device;
	cr.byte_size = bytes;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_CUDA_REGISTER;
	req.cuda_register = &cr;
	int ret = client__call_t(LOCAL(t), &req, &resp, NULL, NULL, 10, -1);
	if (ret)
		return ret;
	if (resp->body_case != FERRY__CONTROL__RESPONSE__BODY_CUDA_REGION) {
		ret = client__fail(FERRY_EPROTO, "unexpected answer to CudaRegister");
	} else {
		*id = resp->cuda_region->region_id;
		*broker_device = resp->cuda_region->device;
	}
	ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

/* ctl_lock held (client_int.h). */
static int client__local_cuda_release(struct client__tp *t, uint32_t id)
{
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__CudaRelease cr = FERRY__CONTROL__CUDA_RELEASE__INIT;
	Ferry__Control__Response *resp = NULL;

	cr.region_id = id;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_CUDA_RELEASE;
	req.cuda_release = &cr;
	int ret = client__call_t(LOCAL(t), &req, &resp, NULL, NULL, 10, -1);
	if (!ret)
		ferry__control__response__free_unpacked(resp, NULL);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

/* Output capacity from the model's dims and the batch size, or 0 when it
 * cannot be computed (variable dims, BYTES). */
static uint64_t client__out_size(const ferry_model *m, int o, int64_t batch)
{
	const struct client__tmeta *t = &m->t[m->nin + o];
	uint64_t n = (uint64_t)batch, esz = ferry_dtype_size(t->dtype);
	if (!esz)
		return 0;
	for (int k = 0; k < t->ndims; k++) {
		if (t->dims[k] < 0)
			return 0;
		n *= (uint64_t)t->dims[k];
	}
	return n * esz;
}

/* Lay the request out in the arena: outputs sized, descriptor written. */
static int client__prepare(struct client__local *l, ferry_request *r)
{
	ferry_model *m = r->model;
	int64_t batch = 1;
	uint32_t nin = 0, nout = 0;
	int ret;

	for (int i = 0; i < m->nin; i++) {
		struct client__tensor *t = &r->t[i];
		if (!t->set)
			continue;
		nin++;
		if (m->max_batch > 0 && t->ndims > 0)
			batch = t->dims[0];
		/* Made while the client had no arena (it reached this broker
		 * by failing over from a remote one): a copy in the arena. */
		if (t->buf.heap) {
			if ((ret = client__buf_alloc(r, &t->stage, t->bytes)))
				return ret;
			memcpy(t->stage.ptr, t->buf.ptr, t->bytes);
		}
	}
	for (int o = 0; o < m->nout; o++) {
		struct client__tensor *t = &r->t[m->nin + o];
		if (r->want_all)
			t->set = true;
		if (!t->set)
			continue;
		nout++;
		uint64_t need = t->want_cap ? t->want_cap : client__out_size(m, o, batch);
		if (!need)
			return client__fail(FERRY_EINVAL,
					    "output '%s': its size depends on the data; give a "
					    "capacity with ferry_request_want_output",
					    m->t[m->nin + o].name);
		if (t->cuda_id) {
			if (need > t->cuda_size - t->cuda_off)
				return client__fail(FERRY_E2BIG, "output '%s': %llu bytes do not "
						    "fit at offset %llu of its CUDA region (%llu "
						    "bytes)", m->t[m->nin + o].name,
						    (unsigned long long)need,
						    (unsigned long long)t->cuda_off,
						    (unsigned long long)t->cuda_size);
			t->cuda_cap = need;
		} else {
			/* Outputs are handed out only once complete: one left
			 * on the heap by a remote endpoint moves to the arena. */
			if (t->buf.heap)
				client__buf_release(r, &t->buf);
			if ((ret = client__buf_alloc(r, &t->buf, need)))
				return ret;
		}
	}
	uint32_t nt = nin + nout;
	if (r->desc.heap)
		client__buf_release(r, &r->desc);
	if (!r->desc.ptr || r->desc_ntensors < nt) {
		if ((ret = client__buf_alloc(r, &r->desc, fshm_req_desc_bytes(nt))))
			return ret;
		r->desc_ntensors = nt;
	}
	struct fshm_req_desc *d = r->desc.ptr;
	d->ninputs = nin;
	d->noutputs = nout;
	d->status = 0;
	d->errmsg[0] = '\0';
	uint32_t k = 0;
	for (int i = 0; i < m->nin + m->nout; i++) {
		struct client__tensor *t = &r->t[i];
		if (!t->set)
			continue;
		struct fshm_tensor *w = &d->t[k++];
		memset(w, 0, sizeof(*w));
		w->index = (uint32_t)(i < m->nin ? i : i - m->nin);
		w->offset = t->cuda_id ? t->cuda_off : t->buf.heap ? t->stage.off : t->buf.off;
		w->flags = t->cuda_id ? FSHM_TENSOR_CUDA | t->cuda_id << FSHM_TENSOR_REGION_SHIFT : 0;
		if (i < m->nin) {
			w->dtype = (uint32_t)t->dtype;
			w->ndims = (uint32_t)t->ndims;
			memcpy(w->dims, t->dims, sizeof(int64_t) * (size_t)t->ndims);
			w->bytes = t->bytes;
		} else {
			w->bytes = t->cuda_id ? t->cuda_cap : t->buf.cap;
		}
	}
	return 0;
}

static int client__local_submit(struct client__tp *t, ferry_request *r)
{
	struct client__local *l = LOCAL(t);
	ferry_client *c = t->c;
	int ret;

	if ((ret = client__prepare(l, r)))
		return ret;
	pthread_mutex_lock(&c->sq_lock);
	if (l->nfree == 0) {
		pthread_mutex_unlock(&c->sq_lock);
		return client__fail(FERRY_EAGAIN, "%u requests in flight: the queue depth",
				    l->depth);
	}
	uint32_t slot = l->free_slots[--l->nfree];
	l->slots[slot].r = r;
	l->slots[slot].gen++;
	atomic_store_explicit(&r->state, CLIENT__INFLIGHT, memory_order_relaxed);
	r->sent_id = r->model->id;
	/* desc_bytes must match the tensors actually written. */
	const struct fshm_req_desc *d = r->desc.ptr;
	struct fshm_sqe sqe = {
		.user_data = (uint64_t)l->slots[slot].gen << 32 | slot,
		.opcode = FSHM_OP_INFER,
		.model_id = r->model->id,
		.desc_off = r->desc.off,
		.desc_bytes = (uint32_t)fshm_req_desc_bytes(d->ninputs + d->noutputs),
		.priority = r->priority,
		.timeout_us = r->wire_timeout_us,
	};
	/* The SQ is as deep as the slot table, so a free slot means room. */
	ret = fshm_ring_enqueue_burst(&l->sq, &sqe, 1);
	if (ret != 1) {
		l->slots[slot].r = NULL;
		l->free_slots[l->nfree++] = slot;
		atomic_store_explicit(&r->state, CLIENT__IDLE, memory_order_relaxed);
		pthread_mutex_unlock(&c->sq_lock);
		return client__fail(ret < 0 ? FERRY_EBADMSG : FERRY_EAGAIN,
				    "submission ring %s", ret < 0 ? "corrupt" : "full");
	}
	pthread_mutex_unlock(&c->sq_lock);
	if (l->lazy)
		/* Relaxed: the ring's release store published the request;
		 * whoever flushes only needs to see that one is pending. */
		atomic_store_explicit(&l->ring_pending, true, memory_order_relaxed);
	else
		fshm_doorbell_ring(&l->db_broker);
	return 0;
}

static void client__local_flush(struct client__tp *t)
{
	struct client__local *l = LOCAL(t);

	if (atomic_load_explicit(&l->ring_pending, memory_order_relaxed) &&
	    atomic_exchange_explicit(&l->ring_pending, false, memory_order_relaxed))
		fshm_doorbell_ring(&l->db_broker);
}

/* Read a completion's results out of the descriptor (trusting the broker,
 * but checking every size against what was allocated).  true: refused
 * for a reload and parked to go again (client__request_stale), not done. */
static bool client__finish(ferry_request *r, const struct fshm_cqe *cqe)
{
	ferry_model *m = r->model;
	const struct fshm_req_desc *d = r->desc.ptr;
	int status = cqe->status;
	char msg[FSHM_ERRMSG_LEN];

	msg[0] = '\0';
	if (status) {
		if (cqe->flags & FSHM_CQE_F_MSG) {
			memcpy(msg, d->errmsg, sizeof(msg));
			msg[sizeof(msg) - 1] = '\0';
		}
		if (!msg[0])
			snprintf(msg, sizeof(msg), "%s", ferry_strerror(status));
		if (cqe->flags & FSHM_CQE_F_STALE)
			return client__request_stale(r, r->sent_id, status, msg);
	} else {
		uint32_t k = d->ninputs;
		for (int o = 0; o < m->nout && k < r->desc_ntensors; o++) {
			struct client__tensor *t = &r->t[m->nin + o];
			if (!t->set)
				continue;
			const struct fshm_tensor *w = &d->t[k++];
			uint64_t cap = t->cuda_id ? t->cuda_cap : t->buf.cap;
			if (w->bytes > cap || w->ndims > FERRY_MAX_DIMS) {
				status = FERRY_EPROTO;
				snprintf(msg, sizeof(msg), "output '%s': the broker reported %llu "
					 "bytes in %llu", m->t[m->nin + o].name,
					 (unsigned long long)w->bytes, (unsigned long long)cap);
				break;
			}
			t->bytes = w->bytes;
			t->dtype = (ferry_dtype)w->dtype;
			t->ndims = (int)w->ndims;
			memcpy(t->dims, w->dims, sizeof(int64_t) * w->ndims);
		}
	}
	client__request_complete(r, status, msg);
	return false;
}

/* Every completion available, up to max (reap_lock held). */
static int client__reap_cq(struct client__local *l, ferry_request **done, int max)
{
	ferry_client *c = l->tp.c;
	struct fshm_cqe cqes[32];
	int total = 0;

	while (total < max) {
		int want = max - total < 32 ? max - total : 32;
		int n = fshm_ring_dequeue_burst(&l->cq, cqes, (unsigned)want);
		if (n <= 0)
			break;
		pthread_mutex_lock(&c->sq_lock);
		for (int i = 0; i < n; i++) {
			uint32_t slot = (uint32_t)cqes[i].user_data;
			uint32_t gen = (uint32_t)(cqes[i].user_data >> 32);
			if (slot >= l->depth || !l->slots[slot].r || l->slots[slot].gen != gen)
				continue; /* not ours: ignore rather than crash */
			ferry_request *r = l->slots[slot].r;
			l->slots[slot].r = NULL;
			l->free_slots[l->nfree++] = slot;
			if (!client__finish(r, &cqes[i]))
				done[total++] = r;
		}
		pthread_mutex_unlock(&c->sq_lock);
	}
	return total;
}

static bool client__cq_ready(void *arg)
{
	struct client__local *l = arg;
	return fshm_ring_count(&l->cq) != 0 ||
	       atomic_load_explicit(&l->tp.down, memory_order_relaxed);
}

/* Is the broker still there?  A closed control socket says no. */
static void client__check_alive(struct client__local *l)
{
	char b;
	ssize_t n = recv(l->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	l->checked_ns = fshm_now_ns();
	/* Release: pairs with the acquire of whoever finds it down. */
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		atomic_store_explicit(&l->tp.down, true, memory_order_release);
}

/* The broker went away: every request in flight is lost (reap_lock
 * held).  The client resubmits them when it reconnects; a client that
 * does not reconnect gets FERRY_EPIPE for each (those go to done[]). */
static int client__fail_all(struct client__local *l, ferry_request **done, int max)
{
	ferry_client *c = l->tp.c;
	int n = 0;
	pthread_mutex_lock(&c->sq_lock);
	for (uint32_t i = 0; i < l->depth && n < max; i++) {
		ferry_request *r = l->slots[i].r;
		if (!r)
			continue;
		l->slots[i].r = NULL;
		l->free_slots[l->nfree++] = i;
		if (!client__request_lost(r, FERRY_EPIPE, "disconnected from the broker"))
			done[n++] = r;
	}
	pthread_mutex_unlock(&c->sq_lock);
	return n;
}

/* Sleeps on the client's doorbell under the wait policy; a sleep that
 * ends with nothing makes sure the broker is still there. */
static int client__local_reap(struct client__tp *t, ferry_request **done, int max,
			      int64_t wait_ns)
{
	struct client__local *l = LOCAL(t);
	int n;
	if (wait_ns <= 0) {
		n = client__reap_cq(l, done, max);
		/* A client that only polls learns of a dead broker too, at
		 * the pace a waiter would (one look per wait slice). */
		if (n == 0 && fshm_now_ns() - l->checked_ns > 20000000)
			client__check_alive(l);
	} else {
		/* The caller just found the CQ empty; the doorbell looks
		 * again before it sleeps. */
		int w = fshm_doorbell_wait(&l->db_client, l->wait, client__cq_ready, l, wait_ns,
					   l->spin_ns);
		if (w == FERRY_ETIMEDOUT || w == -ETIMEDOUT)
			client__check_alive(l);
		n = client__reap_cq(l, done, max);
	}
	/* Acquire: pairs with check_alive's release. */
	if (n == 0 && atomic_load_explicit(&t->down, memory_order_acquire))
		n = client__fail_all(l, done, max);
	return n;
}

const struct client__tp_ops client__local_ops = {
	.name = "local",
	.open = client__local_open,
	.close = client__local_close,
	.model_get = client__local_model_get,
	.model_list = client__local_model_list,
	.statistics = client__local_statistics,
	.model_admin = client__local_model_admin,
	.server_status = client__local_server_status,
	.session_list = client__local_session_list,
	.submit = client__local_submit,
	.reap = client__local_reap,
	.flush = client__local_flush,
	.cuda_register = client__local_cuda_register,
	.cuda_release = client__local_cuda_release,
};
