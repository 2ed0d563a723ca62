/* SPDX-License-Identifier: MIT */
/*
 * control.c - the control socket: accept, peer credentials, the Hello /
 * Welcome handshake that hands a client its segment and doorbells, and
 * model metadata.  Everything here runs on the loop thread.
 *
 * A connection is one client process.  Its session (segment, rings) is
 * created at Hello and ends when the connection ends, for whatever reason:
 * the client closed it, crashed, or broke the protocol.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ferry/errors.h>

#include "broker/core/broker.h"
#include "broker/core/poller.h"
#include "broker/core/log.h"
#include "broker/frontends/metrics.h"
#include "broker/gpu/gpu.h"
#include "broker/core/systemd.h"
#include "broker/sched/be_host.h"
#include "broker/models/models.h"
#include "broker/models/snapshot.h"
#include "broker/sched/sched.h"
#include "proto/control.pb-c.h"
#include "proto/frame.h"

#ifndef PACKAGE_VERSION
#include "config.h"
#endif

struct control_conn {
	uint64_t id;                /* names it to the admin thread */
	int fd;
	int handle;
	struct frame_reader rd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct session *s;
	int adopt_fd;               /* the segment a Hello hands back; -1 */
	struct control_conn *next, *prev;
};

static struct control_conn *control__conns;
static uint64_t control__next_conn_id;

/*
 * Loading and unloading run on an admin thread: a load drains the models
 * it replaces, which the loop thread may have to run.  Requests go to the
 * thread through `todo`, results come back through `done` and the kick
 * eventfd; the loop thread answers the connection if it is still there.
 * Both lists are guarded by control__admin_lock.
 */
struct control_admin {
	uint64_t conn_id, seq;
	bool unload;
	char name[256];
	int code;
	char msg[1024];
	struct control_admin *next;
};
static pthread_mutex_t control__admin_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t control__admin_cond = PTHREAD_COND_INITIALIZER;
static struct control_admin *control__todo, *control__done;
static bool control__admin_started, control__admin_stop;
static pthread_t control__admin_thr;

static void control__unlink_conn(struct control_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		control__conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static void control__unlink_session(struct broker *b, struct session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		b->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	b->nsessions--;
	atomic_store(&metrics_gauges.sessions, b->nsessions);
}

static void control__close(struct broker *b, struct control_conn *c, const char *why)
{
	if (c->s) {
		log_info("session %llu (pid %d uid %d) closed: %s",
			 (unsigned long long)c->s->id, (int)c->pid, (int)c->uid, why);
		poller_remove(c->s);
		atomic_fetch_add(&metrics_gauges.closed_wakeups,
				 atomic_load(&c->s->db_client.rings));
		control__unlink_session(b, c->s);
		session_kill(c->s);
		c->s = NULL;
	} else {
		log_debug("connection from pid %d closed: %s", (int)c->pid, why);
	}
	loop_del(b->loop, c->handle);
	frame_reader_fini(&c->rd);
	close(c->fd);
	control__unlink_conn(c);
	free(c);
}

void control_session_close(struct broker *b, struct session *s, const char *why)
{
	for (struct control_conn *c = control__conns; c; c = c->next) {
		if (c->s == s) {
			control__close(b, c, why);
			return;
		}
	}
}

static int control__reply(struct control_conn *c, Ferry__Control__Response *resp,
		      const int *fds, int nfds)
{
	/* Non-blocking: a client that does not read its socket loses it. */
	return frame_send(c->fd, &resp->base, fds, nfds, MSG_DONTWAIT);
}

static int control__error(struct control_conn *c, uint64_t seq, int code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int control__error(struct control_conn *c, uint64_t seq, int code,
		      const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	Ferry__Control__Error err = FERRY__CONTROL__ERROR__INIT;
	err.code = code;
	err.message = msg;
	Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
	resp.seq = seq;
	resp.body_case = FERRY__CONTROL__RESPONSE__BODY_ERROR;
	resp.error = &err;
	return control__reply(c, &resp, NULL, 0);
}

static bool control__allowed(const struct broker *b, uid_t uid, gid_t gid)
{
	const struct broker_options *o = &b->opt;
	if (o->nallow_uid == 0 && o->nallow_gid == 0)
		return true; /* the socket's mode is the only gate */
	if (uid == geteuid())
		return true;
	for (int i = 0; i < o->nallow_uid; i++)
		if (o->allow_uid[i] == uid)
			return true;
	for (int i = 0; i < o->nallow_gid; i++)
		if (o->allow_gid[i] == gid)
			return true;
	return false;
}

static void control__hello(struct broker *b, struct control_conn *c, uint64_t seq,
			   const Ferry__Control__Request *req)
{
	const Ferry__Control__Hello *h = req->hello;
	char err[256];
	int ret;

	if (c->s) {
		control__error(c, seq, FERRY_EPROTO, "hello sent twice");
		return;
	}
	if (h->proto_major != FRAME_PROTO_MAJOR) {
		control__error(c, seq, FERRY_VERSION,
			   "client speaks control protocol %u.%u, ferryd speaks %u.%u",
			   h->proto_major, h->proto_minor, FRAME_PROTO_MAJOR, FRAME_PROTO_MINOR);
		return;
	}
	if (b->stopping) {
		control__error(c, seq, FERRY_UNAVAILABLE, "ferryd is shutting down");
		return;
	}
	if (b->opt.max_sessions_per_uid) {
		uint32_t mine = 0;
		for (struct session *o = b->sessions; o; o = o->next)
			mine += o->uid == c->uid;
		if (mine >= b->opt.max_sessions_per_uid) {
			log_warn("refused a session from pid %d uid %d: %u sessions of this user, "
				 "the limit", (int)c->pid, (int)c->uid, mine);
			control__error(c, seq, FERRY_ENOSPC, "per-user session limit (%u) reached",
				   b->opt.max_sessions_per_uid);
			return;
		}
	}
	if (b->nsessions >= b->opt.max_sessions) {
		log_warn("refused a session from pid %d uid %d: %u sessions, the limit",
			 (int)c->pid, (int)c->uid, b->nsessions);
		control__error(c, seq, FERRY_ENOSPC, "session limit (%u) reached",
			   b->opt.max_sessions);
		return;
	}
	struct session *s;
	bool adopted = false;
	if (h->adopt_segment) {
		/* A client whose broker went away hands its segment back: its
		 * tensors stay where they are.  Checked like any segment. */
		if (c->adopt_fd < 0) {
			control__error(c, seq, FERRY_EPROTO, "adopt_segment without a segment");
			return;
		}
		ret = session_adopt(&b->opt.limits, ++b->next_session_id, b->epoch, c->adopt_fd,
				    &s, err, sizeof(err));
		if (ret) {
			log_warn("refused the segment pid %d handed back: %s", (int)c->pid, err);
			control__error(c, seq, ret, "%s", err);
			return;
		}
		c->adopt_fd = -1;       /* the session's now */
		adopted = true;
	} else {
		ret = session_create(&b->opt.limits, ++b->next_session_id, b->epoch,
				     h->arena_bytes, h->queue_depth, &s, err, sizeof(err));
		if (ret) {
			control__error(c, seq, ret, "%s", err);
			return;
		}
	}
	s->pid = c->pid;
	s->uid = c->uid;
	s->gid = c->gid;
	snprintf(s->name, sizeof(s->name), "%s", h->client_name ? h->client_name : "");

	Ferry__Control__Welcome w = FERRY__CONTROL__WELCOME__INIT;
	w.proto_major = FRAME_PROTO_MAJOR;
	/* The lower of the two minors (ours is 1: adopt_segment). */
	w.proto_minor = FRAME_PROTO_MINOR;
	if (h->proto_minor + 0u < w.proto_minor)
		w.proto_minor = h->proto_minor;
	w.session_id = s->id;
	w.broker_epoch = b->epoch;
	w.server_version = (char *)PACKAGE_VERSION;
	w.wait_policy = (uint32_t)b->opt.wait;
	w.nfds = 3;
	w.segment_adopted = adopted;
	Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
	resp.seq = seq;
	resp.body_case = FERRY__CONTROL__RESPONSE__BODY_WELCOME;
	resp.welcome = &w;
	int fds[3] = { s->seg.fd, s->db_broker.efd, s->db_client.efd };

	ret = control__reply(c, &resp, fds, 3);
	if (ret) {
		session_kill(s);
		log_warn("pid %d: cannot send the welcome: %s", (int)c->pid, strerror(-ret));
		return;
	}
	c->s = s;
	/* A poller serves its ring from now on. */
	poller_add(s);
	s->prev = NULL;
	s->next = b->sessions;
	if (b->sessions)
		b->sessions->prev = s;
	b->sessions = s;
	b->nsessions++;
	atomic_store(&metrics_gauges.sessions, b->nsessions);
	log_info("session %llu %s: pid %d uid %d '%s', arena %llu bytes, depth %u",
		 (unsigned long long)s->id, adopted ? "taken over (the client's segment)" : "opened",
		 (int)c->pid, (int)c->uid, s->name, (unsigned long long)s->arena_bytes, s->nslots);
}

/* ModelMeta of m; strings point into m and its config (valid while the
 * snapshot m came from is). */
struct control__meta {
	Ferry__Control__ModelMeta mm;
	Ferry__Control__TensorMeta *tms;
	Ferry__Control__TensorMeta **tmp;
};

static int control__meta_fill(struct control__meta *x, const struct snapshot_model *m)
{
	const struct model_config *cfg = m->cfg;
	int n = cfg ? cfg->ninputs + cfg->noutputs : 0;

	ferry__control__model_meta__init(&x->mm);
	x->tms = NULL;
	x->tmp = NULL;
	x->mm.name = (char *)m->name;
	x->mm.version = m->version;
	x->mm.model_id = m->id;
	x->mm.state = (char *)models_state_name(m->state);
	x->mm.reason = (char *)m->reason;
	x->mm.backend = (char *)m->backend;
	if (!cfg)
		return 0;
	x->mm.max_batch_size = cfg->max_batch_size;
	x->tms = calloc((size_t)n + 1, sizeof(*x->tms));
	x->tmp = calloc((size_t)n + 1, sizeof(*x->tmp));
	if (!x->tms || !x->tmp)
		return FERRY_ENOMEM;
	for (int i = 0; i < n; i++) {
		const struct modelcfg_tensor *t = i < cfg->ninputs ? &cfg->inputs[i]
							     : &cfg->outputs[i - cfg->ninputs];
		Ferry__Control__TensorMeta *tm = &x->tms[i];
		ferry__control__tensor_meta__init(tm);
		tm->name = t->name;
		tm->dtype = (uint32_t)t->dtype;
		tm->n_dims = (size_t)t->ndims;
		tm->dims = (int64_t *)t->dims;
		tm->optional = t->optional;
		x->tmp[i] = tm;
	}
	x->mm.n_inputs = (size_t)cfg->ninputs;
	x->mm.inputs = x->tmp;
	x->mm.n_outputs = (size_t)cfg->noutputs;
	x->mm.outputs = x->tmp + cfg->ninputs;
	return 0;
}

static void control__meta_free(struct control__meta *x)
{
	free(x->tms);
	free(x->tmp);
}

static void control__get_model(struct broker *b, struct control_conn *c, uint64_t seq,
			       const Ferry__Control__Request *req)
{
	const Ferry__Control__GetModel *g = req->get_model;
	const char *name = g->name ? g->name : "";
	struct snapshot s;
	if (snapshot_take(&s, name, SNAPSHOT_ALL_VERSIONS, 0)) {
		control__error(c, seq, FERRY_ENOMEM, "out of memory");
		return;
	}
	const struct snapshot_model *m = snapshot_find(&s, name, g->version);
	if (!m) {
		if (g->version >= 0 && s.n > 0)
			control__error(c, seq, FERRY_ENOENT, "model '%s' has no version %lld",
				   name, (long long)g->version);
		else
			control__error(c, seq, FERRY_ENOENT, "unknown model '%s'", name);
		snapshot_free(&s);
		return;
	}
	struct control__meta x;
	if (control__meta_fill(&x, m)) {
		control__error(c, seq, FERRY_ENOMEM, "out of memory");
	} else {
		Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
		resp.seq = seq;
		resp.body_case = FERRY__CONTROL__RESPONSE__BODY_MODEL;
		resp.model = &x.mm;
		control__reply(c, &resp, NULL, 0);
	}
	control__meta_free(&x);
	snapshot_free(&s);
}

/* Every model version's metadata, from one snapshot of the table.  Free
 * with control__metas_free(); false when out of memory. */
struct control__metas {
	struct snapshot s;
	struct control__meta *xs;
	Ferry__Control__ModelMeta **mms;
	size_t n;
};

static bool control__metas_get(struct control__metas *ms)
{
	memset(ms, 0, sizeof(*ms));
	if (snapshot_take(&ms->s, NULL, SNAPSHOT_ALL_VERSIONS, 0))
		return false;
	ms->xs = calloc(ms->s.n + 1, sizeof(*ms->xs));
	ms->mms = calloc(ms->s.n + 1, sizeof(*ms->mms));
	if (!ms->xs || !ms->mms)
		return false;
	for (; ms->n < ms->s.n; ms->n++) {
		int ret = control__meta_fill(&ms->xs[ms->n], &ms->s.models[ms->n]);
		ms->mms[ms->n] = &ms->xs[ms->n].mm;
		if (ret) {
			ms->n++;
			return false;
		}
	}
	return true;
}

static void control__metas_free(struct control__metas *ms)
{
	for (size_t k = 0; ms->xs && k < ms->n; k++)
		control__meta_free(&ms->xs[k]);
	free(ms->xs);
	free(ms->mms);
	snapshot_free(&ms->s);
}

static void control__list_models(struct broker *b, struct control_conn *c, uint64_t seq,
				 const Ferry__Control__Request *req)
{
	struct control__metas ms;
	if (!control__metas_get(&ms)) {
		control__error(c, seq, FERRY_ENOMEM, "out of memory");
	} else {
		Ferry__Control__ModelList ml = FERRY__CONTROL__MODEL_LIST__INIT;
		ml.n_models = ms.n;
		ml.models = ms.mms;
		Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
		resp.seq = seq;
		resp.body_case = FERRY__CONTROL__RESPONSE__BODY_MODEL_LIST;
		resp.model_list = &ml;
		control__reply(c, &resp, NULL, 0);
	}
	control__metas_free(&ms);
}

static void control__status(struct broker *b, struct control_conn *c, uint64_t seq,
			    const Ferry__Control__Request *req)
{
	Ferry__Control__Status st = FERRY__CONTROL__STATUS__INIT;
	struct timespec now, cpu;
	size_t ns = 0;
	struct control__metas ms;

	clock_gettime(CLOCK_REALTIME, &now);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	st.version = (char *)PACKAGE_VERSION;
	st.uptime_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec - b->epoch;
	st.event_loop = (char *)loop_engine(b->loop);
	st.wait_policy = (uint32_t)b->opt.wait;
	st.nsessions = b->nsessions;
	st.max_sessions = b->opt.max_sessions;
	st.gpus = (uint32_t)gpu_device_count();
	st.cpu_ns = (uint64_t)cpu.tv_sec * 1000000000ULL + (uint64_t)cpu.tv_nsec;

	bool have = control__metas_get(&ms);
	Ferry__Control__SessionInfo *sis = calloc((size_t)b->nsessions + 1, sizeof(*sis));
	Ferry__Control__SessionInfo **sip = calloc((size_t)b->nsessions + 1, sizeof(*sip));
	if (!have || !sis || !sip) {
		control__error(c, seq, FERRY_ENOMEM, "out of memory");
		goto out;
	}
	st.n_models = ms.n;
	st.models = ms.mms;
	for (struct session *s = b->sessions; s && ns < b->nsessions; s = s->next, ns++) {
		Ferry__Control__SessionInfo *si = &sis[ns];
		ferry__control__session_info__init(si);
		si->id = s->id;
		si->pid = (uint32_t)s->pid;
		si->uid = (uint32_t)s->uid;
		si->name = s->name;
		si->arena_bytes = s->arena_bytes;
		si->depth = s->nslots;
		pthread_mutex_lock(&s->lock);
		si->inflight = s->inflight;
		si->completed = s->completed;
		si->failed = s->failed;
		pthread_mutex_unlock(&s->lock);
		sip[ns] = si;
	}
	st.n_sessions = ns;
	st.sessions = sip;
	Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
	resp.seq = seq;
	resp.body_case = FERRY__CONTROL__RESPONSE__BODY_STATUS;
	resp.status = &st;
	control__reply(c, &resp, NULL, 0);
out:
	control__metas_free(&ms);
	free(sis);
	free(sip);
}

static void control__stats(struct broker *b, struct control_conn *c, uint64_t seq,
			   const Ferry__Control__Request *req)
{
	const Ferry__Control__GetStats *g = req->get_stats;
	const char *name = g->name ? g->name : "";
	Ferry__Control__ModelStats *ms = NULL, **msp = NULL;
	Ferry__Control__BatchCount *bcs = NULL, **bcp = NULL;
	struct snapshot s;
	size_t nb = 0;

	if (snapshot_take(&s, name, g->version, SNAPSHOT_STATS)) {
		control__error(c, seq, FERRY_ENOMEM, "out of memory");
		return;
	}
	ms = calloc(s.n + 1, sizeof(*ms));
	msp = calloc(s.n + 1, sizeof(*msp));
	bcs = calloc(65 * (s.n + 1), sizeof(*bcs));
	bcp = calloc(65 * (s.n + 1), sizeof(*bcp));
	if (!ms || !msp || !bcs || !bcp) {
		control__error(c, seq, FERRY_ENOMEM, "out of memory");
		goto out;
	}
	if (s.n == 0 && *name) {
		control__error(c, seq, FERRY_ENOENT, "unknown model '%s'", name);
		goto out;
	}
	/* Every version asked for; one that does not run has zeros. */
	for (size_t i = 0; i < s.n; i++) {
		const struct snapshot_model *m = &s.models[i];
		const struct sched_stats *st = &m->stats;
		Ferry__Control__ModelStats *x = &ms[i];
		ferry__control__model_stats__init(x);
		x->name = (char *)m->name;
		x->version = m->version;
		x->success = st->success;
		x->failure = st->failure;
		x->inference_count = st->inference_count;
		x->execution_count = st->execution_count;
		x->queue_ns = st->queue_ns;
		x->compute_input_ns = st->compute_input_ns;
		x->compute_infer_ns = st->compute_infer_ns;
		x->compute_output_ns = st->compute_output_ns;
		size_t first = nb;
		for (size_t k = 1; k < 65; k++) {
			if (!st->batch_execs[k])
				continue;
			ferry__control__batch_count__init(&bcs[nb]);
			bcs[nb].batch_size = (uint32_t)k;
			bcs[nb].count = st->batch_execs[k];
			bcp[nb] = &bcs[nb];
			nb++;
		}
		x->n_batches = nb - first;
		x->batches = bcp + first;
		msp[i] = x;
	}
	Ferry__Control__StatsList sl = FERRY__CONTROL__STATS_LIST__INIT;
	sl.n_stats = s.n;
	sl.stats = msp;
	Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
	resp.seq = seq;
	resp.body_case = FERRY__CONTROL__RESPONSE__BODY_STATS;
	resp.stats = &sl;
	control__reply(c, &resp, NULL, 0);
out:
	free(ms);
	free(msp);
	free(bcs);
	free(bcp);
	snapshot_free(&s);
}

static void *control__admin_main(void *arg)
{
	struct broker *b = arg;
	pthread_mutex_lock(&control__admin_lock);
	for (;;) {
		while (!control__todo && !control__admin_stop)
			pthread_cond_wait(&control__admin_cond, &control__admin_lock);
		if (control__admin_stop)
			break;
		struct control_admin *a = control__todo;
		control__todo = a->next;
		pthread_mutex_unlock(&control__admin_lock);
		a->msg[0] = '\0';
		if (a->unload)
			a->code = models_unload_model(a->name, a->msg, sizeof(a->msg));
		else
			a->code = models_load_model(a->name, a->msg, sizeof(a->msg));
		log_info("control: %s '%s': %s%s%s", a->unload ? "unload" : "load", a->name,
			 a->code ? ferry_errname(a->code) : "done", a->msg[0] ? ": " : "", a->msg);
		pthread_mutex_lock(&control__admin_lock);
		a->next = control__done;
		control__done = a;
		uint64_t one = 1;
		ssize_t n = write(b->kick_fd, &one, sizeof(one));
		(void)n;
	}
	pthread_mutex_unlock(&control__admin_lock);
	return NULL;
}

static void control__admin(struct broker *b, struct control_conn *c, uint64_t seq, bool unload,
			   const char *name)
{
	struct control_admin *a = calloc(1, sizeof(*a));
	if (!a || !name || !*name || strlen(name) >= sizeof(a->name)) {
		free(a);
		control__error(c, seq, a ? FERRY_EINVAL : FERRY_ENOMEM, "a model name is needed");
		return;
	}
	a->conn_id = c->id;
	a->seq = seq;
	a->unload = unload;
	strcpy(a->name, name);
	pthread_mutex_lock(&control__admin_lock);
	if (!control__admin_started) {
		control__admin_started = pthread_create(&control__admin_thr, NULL, control__admin_main, b) == 0;
		if (!control__admin_started) {
			pthread_mutex_unlock(&control__admin_lock);
			free(a);
			control__error(c, seq, FERRY_ENOMEM, "cannot start the admin thread");
			return;
		}
	}
	struct control_admin **tail = &control__todo;
	while (*tail)
		tail = &(*tail)->next;
	*tail = a;
	pthread_cond_signal(&control__admin_cond);
	pthread_mutex_unlock(&control__admin_lock);
}

static void control__load(struct broker *b, struct control_conn *c, uint64_t seq,
			  const Ferry__Control__Request *req)
{
	control__admin(b, c, seq, false, req->load_model->name);
}

static void control__unload(struct broker *b, struct control_conn *c, uint64_t seq,
			    const Ferry__Control__Request *req)
{
	control__admin(b, c, seq, true, req->unload_model->name);
}

void control_admin_replies(struct broker *b)
{
	pthread_mutex_lock(&control__admin_lock);
	struct control_admin *list = control__done;
	control__done = NULL;
	pthread_mutex_unlock(&control__admin_lock);
	while (list) {
		struct control_admin *a = list;
		list = a->next;
		for (struct control_conn *c = control__conns; c; c = c->next) {
			if (c->id != a->conn_id)
				continue;
			if (a->code) {
				control__error(c, a->seq, a->code, "%s", a->msg[0] ? a->msg : ferry_strerror(a->code));
			} else {
				Ferry__Control__Done d = FERRY__CONTROL__DONE__INIT;
				d.message = a->msg;
				Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
				resp.seq = a->seq;
				resp.body_case = FERRY__CONTROL__RESPONSE__BODY_DONE;
				resp.done = &d;
				control__reply(c, &resp, NULL, 0);
			}
			break;
		}
		free(a);
	}
}

void control_admin_stop(void)
{
	pthread_mutex_lock(&control__admin_lock);
	control__admin_stop = true;
	pthread_cond_broadcast(&control__admin_cond);
	bool started = control__admin_started;
	pthread_mutex_unlock(&control__admin_lock);
	if (started)
		pthread_join(control__admin_thr, NULL);
	while (control__todo) {
		struct control_admin *a = control__todo;
		control__todo = a->next;
		free(a);
	}
	while (control__done) {
		struct control_admin *a = control__done;
		control__done = a->next;
		free(a);
	}
}

/* CUDA IPC regions: a session's, so Hello must have come first. */
static void control__cuda_register(struct broker *b, struct control_conn *c, uint64_t seq,
				   const Ferry__Control__Request *req)
{
	const Ferry__Control__CudaRegister *cr = req->cuda_register;
	char err[512] = "";
	uint32_t id = 0;
	int dev = -1, ret;

	if (!c->s) {
		control__error(c, seq, FERRY_EPROTO, "CudaRegister before Hello");
		return;
	}
	ret = session_cuda_register(c->s, cr->ipc_handle.data, cr->ipc_handle.len,
				 cr->pci_bus_id, cr->device, cr->byte_size, &id, &dev,
				 err, sizeof(err));
	if (ret) {
		log_info("pid %d: CUDA region of %llu bytes refused: %s", (int)c->pid,
			 (unsigned long long)cr->byte_size, err);
		control__error(c, seq, ret, "%s", err[0] ? err : ferry_strerror(ret));
		return;
	}
	Ferry__Control__CudaRegion r = FERRY__CONTROL__CUDA_REGION__INIT;
	r.region_id = id;
	r.device = dev;
	Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
	resp.seq = seq;
	resp.body_case = FERRY__CONTROL__RESPONSE__BODY_CUDA_REGION;
	resp.cuda_region = &r;
	control__reply(c, &resp, NULL, 0);
}

static void control__cuda_release(struct broker *b, struct control_conn *c, uint64_t seq,
				  const Ferry__Control__Request *req)
{
	const Ferry__Control__CudaRelease *cr = req->cuda_release;
	char err[256] = "";
	int ret;

	if (!c->s) {
		control__error(c, seq, FERRY_EPROTO, "CudaRelease before Hello");
		return;
	}
	/* The client submitted on its ring before it sent this: take those
	 * requests first, so they hold the region (found on the H100: the
	 * socket's event can come before the ring's). */
	while (session_poll(c->s) > 0)
		;
	if ((ret = session_cuda_release(c->s, cr->region_id, err, sizeof(err)))) {
		control__error(c, seq, ret, "%s", err);
		return;
	}
	Ferry__Control__Done d = FERRY__CONTROL__DONE__INIT;
	d.message = "";
	Ferry__Control__Response resp = FERRY__CONTROL__RESPONSE__INIT;
	resp.seq = seq;
	resp.body_case = FERRY__CONTROL__RESPONSE__BODY_DONE;
	resp.done = &d;
	control__reply(c, &resp, NULL, 0);
}

/* The control protocol: one handler per kind of request. */
static const struct control__handler {
	Ferry__Control__Request__BodyCase kind;
	void (*fn)(struct broker *b, struct control_conn *c, uint64_t seq,
		   const Ferry__Control__Request *req);
} control__handlers[] = {
	{ FERRY__CONTROL__REQUEST__BODY_HELLO, control__hello },
	{ FERRY__CONTROL__REQUEST__BODY_LIST_MODELS, control__list_models },
	{ FERRY__CONTROL__REQUEST__BODY_GET_MODEL, control__get_model },
	{ FERRY__CONTROL__REQUEST__BODY_GET_STATUS, control__status },
	{ FERRY__CONTROL__REQUEST__BODY_GET_STATS, control__stats },
	{ FERRY__CONTROL__REQUEST__BODY_LOAD_MODEL, control__load },
	{ FERRY__CONTROL__REQUEST__BODY_UNLOAD_MODEL, control__unload },
	{ FERRY__CONTROL__REQUEST__BODY_CUDA_REGISTER, control__cuda_register },
	{ FERRY__CONTROL__REQUEST__BODY_CUDA_RELEASE, control__cuda_release },
};

static const struct control__handler *control__find(Ferry__Control__Request__BodyCase kind)
{
	for (size_t i = 0; i < sizeof(control__handlers) / sizeof(control__handlers[0]); i++)
		if (control__handlers[i].kind == kind)
			return &control__handlers[i];
	return NULL;
}

static void control__on_conn(void *arg, uint32_t events)
{
	struct control_conn *c = arg;
	struct broker *b = &g_broker;

	/* A few frames per wake-up at most, so one chatty client cannot
	 * starve the rings. */
	for (int budget = 0; budget < 16; budget++) {
		int ret = frame_read(c->fd, &c->rd);
		if (ret == 0)
			return;
		if (ret < 0) {
			control__close(b, c, ret == -EPIPE ? "disconnected" : strerror(-ret));
			return;
		}
		Ferry__Control__Request *req = ferry__control__request__unpack(
			NULL, frame_payload_len(&c->rd), frame_payload(&c->rd));
		/* Descriptors are welcome only as the segment of a Hello that
		 * hands one back; any other is closed (frame_reader_next). */
		if (req && req->body_case == FERRY__CONTROL__REQUEST__BODY_HELLO &&
		    req->hello->adopt_segment && c->rd.nfds == 1) {
			c->adopt_fd = c->rd.fds[0];
			c->rd.nfds = 0;
		} else if (c->rd.nfds > 0) {
			log_warn("pid %d sent %d file descriptors: closed", (int)c->pid, c->rd.nfds);
		}
		frame_reader_next(&c->rd);
		if (!req) {
			control__error(c, 0, FERRY_EPROTO, "malformed control message");
			control__close(b, c, "malformed control message");
			return;
		}
		const struct control__handler *h = control__find(req->body_case);
		if (h)
			h->fn(b, c, req->seq, req);
		else
			control__error(c, req->seq, FERRY_ENOTSUP, "unknown control request");
		ferry__control__request__free_unpacked(req, NULL);
		if (c->adopt_fd >= 0) {         /* not taken: refused */
			close(c->adopt_fd);
			c->adopt_fd = -1;
		}
	}
}

static void control__on_accept(void *arg, uint32_t events)
{
	struct broker *b = arg;

	for (int budget = 0; budget < 64; budget++) {
		int fd = accept4(b->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen)) {
			log_warn("SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		if (!control__allowed(b, cr.uid, cr.gid)) {
			log_warn("refused pid %d uid %d gid %d: not on the allow-list",
				 (int)cr.pid, (int)cr.uid, (int)cr.gid);
			struct control_conn tmp = { .fd = fd };
			control__error(&tmp, 0, FERRY_EPERM,
				   "uid %d gid %d is not allowed to use this broker",
				   (int)cr.uid, (int)cr.gid);
			close(fd);
			continue;
		}
		struct control_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->id = ++control__next_conn_id;
		c->fd = fd;
		c->pid = cr.pid;
		c->uid = cr.uid;
		c->gid = cr.gid;
		c->adopt_fd = -1;
		frame_reader_init(&c->rd);
		c->handle = loop_add(b->loop, fd, control__on_conn, c);
		if (c->handle < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = control__conns;
		if (control__conns)
			control__conns->prev = c;
		control__conns = c;
	}
}

static int control__mkdirs(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(buf, sizeof(buf), "%s", path);
	char *slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return 0;
	*slash = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int control_listen(struct broker *b)
{
	const char *path = b->opt.socket_path;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	/* Socket activation: systemd made, bound and owns the socket (its
	 * mode and group come from ferryd.socket); we only accept on it and
	 * never unlink it. */
	fd = systemd_listen_fd();
	if (fd >= 0) {
		struct sockaddr_un got;
		socklen_t gl = sizeof(got);
		if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0 && got.sun_path[0])
			log_info("socket activation: accepting on %s", got.sun_path);
		b->listen_fd = fd;
		b->listen_handle = loop_add(b->loop, fd, control__on_accept, b);
		return b->listen_handle < 0 ? b->listen_handle : 0;
	}

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	ret = control__mkdirs(path);
	if (ret) {
		log_error("cannot create the directory of %s: %s", path, strerror(-ret));
		return ret;
	}
	/* A socket file left by a ferryd that died: remove it, unless a live
	 * broker still answers on it. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		log_error("another broker is listening on %s", path);
		return -EADDRINUSE;
	}
	close(fd);
	unlink(path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* 0660 from the start: bind under a umask so no other user can
	 * connect between bind() and chmod(). */
	mode_t old = umask(0117);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret) {
		ret = -errno;
		log_error("bind %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	b->socket_created = true;
	chmod(path, 0660);
	if (b->opt.socket_group) {
		struct group *g = getgrnam(b->opt.socket_group);
		if (!g || chown(path, (uid_t)-1, g->gr_gid)) {
			ret = g ? -errno : -ENOENT;
			log_error("--socket-group %s: %s", b->opt.socket_group,
				  g ? strerror(errno) : "no such group");
			close(fd);
			return ret;
		}
	}
	if (listen(fd, 512)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	b->listen_fd = fd;
	b->listen_handle = loop_add(b->loop, fd, control__on_accept, b);
	if (b->listen_handle < 0)
		return b->listen_handle;
	return 0;
}

void control_close_listener(struct broker *b)
{
	if (b->listen_fd >= 0) {
		loop_del(b->loop, b->listen_handle);
		close(b->listen_fd);
		b->listen_fd = -1;
	}
	if (b->socket_created) {
		unlink(b->opt.socket_path);
		b->socket_created = false;
	}
	while (control__conns)
		control__close(b, control__conns, "broker shutting down");
}
