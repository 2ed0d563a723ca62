/* SPDX-License-Identifier: MIT */
/*
 * sched.c - per-model-version queues, Triton's default and dynamic batchers,
 * priority levels with queue policies, instance threads (or inline runs for
 * light backends), preserve_ordering, statistics; and the request accessors
 * of the backend ABI.  The locking rules are in sched.h.
 *
 * QUEUES
 *
 * One level per priority (1 when priorities are off).  Each level keeps two
 * intrusive FIFO lists: `main` in arrival order and `delayed`, where a
 * request whose timeout passed under the DELAY action goes.  Batches are
 * formed by scanning level 0 main, level 0 delayed, level 1 main, ... (as
 * Triton's priority queue does), so a batch is always a prefix of that scan
 * order and is taken by popping list heads.
 *
 * Timeouts are applied as the scan meets a request (Triton does the same):
 * a request deep in a long queue is rejected when the batcher reaches it,
 * not at the instant its deadline passes.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/backend.h>
#include <ferry/errors.h>

#include "broker/sched/be_host.h"
#include "broker/sched/sched.h"

struct sched__list {
	struct sched_req *head, *tail;
};

struct sched__level {                    /* guarded by sched_model.lock */
	struct sched__list main, delayed;
	uint32_t count;                 /* both lists */
	struct modelcfg_queue_policy pol;
};

struct sched__inst {
	struct ferry_be_instance be;
	struct sched_model *m;
	bool be_init;                   /* instance_initialize succeeded */
	bool started;                   /* thread running */
	pthread_t thread;
	/* The batch, preallocated for m->cap requests; owned by whichever
	 * thread runs this instance (its own, or the inline poller that
	 * popped it from the free stack). */
	struct sched_req **batch;
	struct ferry_be_request *wraps;
	struct ferry_be_request **ptrs;
	uint64_t *out_bytes;            /* cap x noutputs */
	struct sched__inst *next_free;   /* inline free stack; m->lock */
};

struct sched_model {
	const struct model_config *cfg;         /* borrowed, read-only */
	struct ferry_be_model bm;
	bool bm_init;                           /* model_initialize succeeded */
	bool inline_mode;                       /* immutable after create */
	bool dynamic;
	bool preserve;
	uint32_t cap;                           /* batch size limit: max(mbs, 1) */
	uint64_t delay_ns;
	uint64_t preferred_mask[2];             /* bit b: batch size b preferred (b < 128) */
	uint32_t nlevels, default_level;        /* default_level: index */

	pthread_mutex_t lock;
	pthread_cond_t cond;                    /* instance threads wait for work */
	struct sched__level *levels;             /* lock */
	uint32_t queued;                        /* lock: requests in all levels */
	bool stopping;                          /* lock */
	void (*kick)(void *arg);                /* lock */
	void *kick_arg;                         /* lock */
	struct sched__inst *free_inst;           /* lock: inline models */
	uint64_t next_ticket;                   /* lock: preserve_ordering */
	struct sched_stats stats;               /* lock */

	uint32_t ninst;
	struct sched__inst *inst;

	/* preserve_ordering: completions wait in ring[ticket & mask] until
	 * every earlier ticket has completed. */
	pthread_mutex_t order_lock;
	pthread_cond_t order_cond;              /* a depositor waits for room */
	struct sched_req **ring;                /* order_lock */
	uint64_t ring_mask;
	uint64_t next_done;                     /* order_lock */
	bool flushing;                          /* order_lock: one thread calls done() */
};

uint64_t sched_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sched__msg(char *buf, size_t len, const char *fmt, ...) FERRY__BE_PRINTF(3, 4);
static void sched__msg(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Print a shape as "[2,16]" into buf. */
static const char *sched__shape_str(char *buf, size_t len, const int64_t *d, int nd)
{
	size_t used = 0;

	buf[0] = 0;
	used += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < nd && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%" PRId64, i ? "," : "", d[i]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
	return buf;
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */

static void sched__list_push(struct sched__list *l, struct sched_req *r)
{
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static struct sched_req *sched__list_pop(struct sched__list *l)
{
	struct sched_req *r = l->head;

	if (r) {
		l->head = r->next;
		if (!l->head)
			l->tail = NULL;
		r->next = NULL;
	}
	return r;
}

/* Unlink r, whose predecessor is prev (NULL at the head). */
static void sched__list_unlink(struct sched__list *l, struct sched_req *prev, struct sched_req *r)
{
	if (prev)
		prev->next = r->next;
	else
		l->head = r->next;
	if (l->tail == r)
		l->tail = prev;
	r->next = NULL;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */

static int sched__elements(const int64_t *dims, int nd, uint64_t *out)
{
	uint64_t n = 1;

	for (int i = 0; i < nd; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] && n > UINT64_MAX / (uint64_t)dims[i])
			return -1;
		n *= (uint64_t)dims[i];
	}
	*out = n;
	return 0;
}

/* BYTES: `elements` 4-byte little-endian length prefixes exactly cover. */
static int sched__check_bytes(const uint8_t *p, uint64_t bytes, uint64_t elements,
			     const char *name, char *msg, size_t msglen)
{
	uint64_t off = 0, n = 0;

	while (off < bytes) {
		if (bytes - off < 4) {
			sched__msg(msg, msglen, "input '%s': BYTES element %" PRIu64 " has a "
				  "truncated length prefix", name, n);
			return FERRY_EINVAL;
		}
		uint32_t len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 |
			       (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
		off += 4;
		if (len > bytes - off) {
			sched__msg(msg, msglen, "input '%s': BYTES element %" PRIu64 " claims "
				  "%u bytes, only %" PRIu64 " remain", name, n, len, bytes - off);
			return FERRY_EINVAL;
		}
		off += len;
		n++;
	}
	if (n != elements) {
		sched__msg(msg, msglen, "input '%s': %" PRIu64 " BYTES elements given, the "
			  "shape has %" PRIu64, name, n, elements);
		return FERRY_EINVAL;
	}
	return 0;
}

/* A tensor in CUDA device memory: only for backends that said they take
 * it, and never BYTES (validating one would read device memory). */
static int sched__check_cuda(const struct sched_model *m, const char *what,
			    const struct modelcfg_tensor *t, char *msg, size_t msglen)
{
	if (!m->bm.cuda_memory) {
		sched__msg(msg, msglen, "%s '%s' is in CUDA device memory; model '%s' "
			  "(backend '%s') takes host memory only", what, t->name,
			  m->cfg->name, m->cfg->backend[0] ? m->cfg->backend : "?");
		return FERRY_EINVAL;
	}
	if (!ferry_dtype_size(t->dtype)) {
		sched__msg(msg, msglen, "%s '%s': %s tensors cannot live in CUDA memory",
			  what, t->name, ferry_dtype_name(t->dtype));
		return FERRY_DTYPE;
	}
	return 0;
}

static int sched__validate(const struct sched_model *m, struct sched_req *r, char *msg,
			  size_t msglen)
{
	const struct model_config *cfg = m->cfg;
	const int mbs = cfg->max_batch_size;
	const int bd = mbs > 0 ? 1 : 0;
	int64_t batch = -1;
	const char *batch_from = NULL;
	char s1[128];
	int rc;

	if (!r->done) {
		sched__msg(msg, msglen, "request has no completion callback");
		return FERRY_EINVAL;
	}
	if ((cfg->ninputs && !r->in) || (cfg->noutputs && !r->out)) {
		sched__msg(msg, msglen, "request has no input or output table");
		return FERRY_EINVAL;
	}
	for (int i = 0; i < cfg->ninputs; i++) {
		const struct modelcfg_tensor *t = &cfg->inputs[i];
		const struct sched_tensor *x = &r->in[i];
		uint64_t el;

		if (!x->present) {
			if (t->optional)
				continue;
			sched__msg(msg, msglen, "input '%s' is required but missing", t->name);
			return FERRY_EINVAL;
		}
		if (x->cuda && (rc = sched__check_cuda(m, "input", t, msg, msglen)))
			return rc;
		if (x->dtype != t->dtype) {
			const char *g = ferry_dtype_name(x->dtype);
			sched__msg(msg, msglen, "input '%s': data type %s does not match the "
				  "model's %s", t->name, g ? g : "(invalid)",
				  ferry_dtype_name(t->dtype));
			return FERRY_DTYPE;
		}
		if (x->ndims != t->ndims + bd || x->ndims > SCHED_MAX_DIMS) {
			sched__msg(msg, msglen, "input '%s': %d dimensions given, the model "
				  "expects %d%s", t->name, x->ndims, t->ndims + bd,
				  bd ? " (batch dimension first)" : "");
			return FERRY_SHAPE;
		}
		if (bd) {
			if (x->dims[0] < 1 || x->dims[0] > mbs) {
				sched__msg(msg, msglen, "input '%s': batch size %" PRId64 " is "
					  "outside 1..%d (max_batch_size)", t->name,
					  x->dims[0], mbs);
				return FERRY_SHAPE;
			}
			if (batch_from && x->dims[0] != batch) {
				sched__msg(msg, msglen, "input '%s': batch size %" PRId64
					  " differs from input '%s''s %" PRId64, t->name,
					  x->dims[0], batch_from, batch);
				return FERRY_SHAPE;
			}
			batch = x->dims[0];
			batch_from = t->name;
		}
		for (int d = 0; d < t->ndims; d++) {
			int64_t g = x->dims[d + bd], want = t->dims[d];
			if (g < 0 || (want >= 0 && g != want)) {
				/* The model's shape, with -1 for the batch. */
				int64_t e[SCHED_MAX_DIMS];
				char s2[128];
				e[0] = -1;
				memcpy(e + bd, t->dims, (size_t)t->ndims * sizeof(int64_t));
				sched__msg(msg, msglen, "input '%s': shape %s does not match the "
					  "model's %s", t->name,
					  sched__shape_str(s1, sizeof(s1), x->dims, x->ndims),
					  sched__shape_str(s2, sizeof(s2), e, t->ndims + bd));
				return FERRY_SHAPE;
			}
		}
		if (sched__elements(x->dims, x->ndims, &el)) {
			sched__msg(msg, msglen, "input '%s': shape %s is too large", t->name,
				  sched__shape_str(s1, sizeof(s1), x->dims, x->ndims));
			return FERRY_SHAPE;
		}
		if (x->bytes && !x->data) {
			sched__msg(msg, msglen, "input '%s': no data", t->name);
			return FERRY_EINVAL;
		}
		size_t es = ferry_dtype_size(t->dtype);
		if (es) {
			if (el > UINT64_MAX / es || el * es != x->bytes) {
				sched__msg(msg, msglen, "input '%s': %" PRIu64 " bytes given, shape "
					  "%s of %s needs %" PRIu64, t->name, x->bytes,
					  sched__shape_str(s1, sizeof(s1), x->dims, x->ndims),
					  ferry_dtype_name(t->dtype), el * es);
				return FERRY_EINVAL;
			}
		} else if ((rc = sched__check_bytes(x->data, x->bytes, el, t->name, msg,
						   msglen))) {
			return rc;
		}
	}
	if (bd && batch < 0) {
		/* Every input optional and absent: nothing gives the batch. */
		sched__msg(msg, msglen, "request has no input to take the batch size from");
		return FERRY_EINVAL;
	}
	r->batch = bd ? (uint32_t)batch : 1;

	for (int o = 0; o < cfg->noutputs; o++) {
		const struct modelcfg_tensor *t = &cfg->outputs[o];
		const struct sched_tensor *y = &r->out[o];
		size_t es = ferry_dtype_size(t->dtype);
		uint64_t el = r->batch;
		bool fixed = es != 0;

		if (!y->present)
			continue;
		if (y->cuda && (rc = sched__check_cuda(m, "output", t, msg, msglen)))
			return rc;
		for (int d = 0; d < t->ndims && fixed; d++) {
			if (t->dims[d] < 0 || (t->dims[d] && el > UINT64_MAX / (uint64_t)t->dims[d]))
				fixed = false;
			else
				el *= (uint64_t)t->dims[d];
		}
		if (fixed && el > UINT64_MAX / es)
			fixed = false;
		if (fixed && y->bytes < el * es) {
			sched__msg(msg, msglen, "output '%s': buffer of %" PRIu64 " bytes, the "
				  "result needs %" PRIu64, t->name, y->bytes, el * es);
			return FERRY_E2BIG;
		}
		if (y->bytes && !y->data) {
			sched__msg(msg, msglen, "output '%s': no buffer", t->name);
			return FERRY_EINVAL;
		}
	}
	if (m->nlevels > 1 && r->priority > m->nlevels) {
		sched__msg(msg, msglen, "priority %u is outside 1..%u (priority_levels)",
			  r->priority, m->nlevels);
		return FERRY_EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Submit                                                              */

int sched_submit(struct sched_model *m, struct sched_req *r, char *msg, size_t msglen)
{
	int rc = sched__validate(m, r, msg, msglen);
	void (*kick)(void *) = NULL;
	void *kick_arg = NULL;

	if (rc)
		return rc;

	uint32_t li = m->default_level;
	if (m->nlevels > 1 && r->priority)
		li = r->priority - 1;

	pthread_mutex_lock(&m->lock);
	if (m->stopping) {
		pthread_mutex_unlock(&m->lock);
		sched__msg(msg, msglen, "model '%s' is not accepting requests (stopping)",
			  m->cfg->name);
		return FERRY_UNAVAILABLE;
	}
	struct sched__level *lv = &m->levels[li];
	if (lv->pol.max_queue_size && lv->count >= lv->pol.max_queue_size) {
		pthread_mutex_unlock(&m->lock);
		sched__msg(msg, msglen, "model '%s': queue full (%u requests at priority level "
			  "%u, max_queue_size)", m->cfg->name, lv->count, li + 1);
		return FERRY_ENOSPC;
	}
	uint64_t now = sched_now_ns();
	uint64_t to_us = lv->pol.default_timeout_us;
	if (r->timeout_us && lv->pol.allow_timeout_override)
		to_us = r->timeout_us;
	r->t_queued_ns = now;
	r->t_exec_start_ns = r->t_exec_end_ns = 0;
	r->deadline_ns = to_us ? now + to_us * 1000u : 0;
	r->level = li;
	r->status = 0;
	r->err = NULL;
	sched__list_push(&lv->main, r);
	lv->count++;
	m->queued++;
	if (m->inline_mode) {
		kick = m->kick;
		kick_arg = m->kick_arg;
	} else {
		pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	if (kick)
		kick(kick_arg);
	return 0;
}

void sched_set_kick(struct sched_model *m, void (*kick)(void *arg), void *arg)
{
	pthread_mutex_lock(&m->lock);
	m->kick = kick;
	m->kick_arg = arg;
	pthread_mutex_unlock(&m->lock);
}

bool sched_is_inline(const struct sched_model *m)
{
	return m->inline_mode;
}

const struct model_config *sched_model_config(const struct sched_model *m)
{
	return m->cfg;
}

uint32_t sched_model_instance_count(const struct sched_model *m)
{
	return m->ninst;
}

void sched_model_stats(const struct sched_model *m, struct sched_stats *out)
{
	/* The mutex is the only mutable part of a const model. */
	struct sched_model *mm = (struct sched_model *)m;

	pthread_mutex_lock(&mm->lock);
	*out = m->stats;
	pthread_mutex_unlock(&mm->lock);
}

/* ------------------------------------------------------------------ */
/* Batch formation (m->lock held)                                      */

static bool sched__preferred(const struct sched_model *m, uint64_t size)
{
	return size < 128 && (m->preferred_mask[size / 64] >> (size % 64) & 1);
}

/*
 * Take the next ready batch into batch[] (returns its length), or return 0
 * and set *wake to the time to look again (UINT64_MAX: queue empty).
 * Requests whose timeout passed under REJECT are unlinked onto *expired
 * (caller completes them without the lock).  drain: a stopping model runs
 * what it has without waiting for the delay.
 */
static uint32_t sched__form(struct sched_model *m, uint64_t now, struct sched_req **batch,
			   struct sched_req **expired, uint64_t *wake)
{
	const bool drain = m->stopping;
	uint64_t total = 0, oldest = UINT64_MAX, min_deadline = UINT64_MAX;
	uint32_t n = 0, best = 0;
	bool full = false;

	*wake = UINT64_MAX;
	if (!m->queued)
		return 0;

	for (uint32_t li = 0; li < m->nlevels && !full; li++) {
		struct sched__level *lv = &m->levels[li];
		for (int which = 0; which < 2 && !full; which++) {
			struct sched__list *l = which ? &lv->delayed : &lv->main;
			struct sched_req *prev = NULL, *r = l->head;
			while (r && !full) {
				struct sched_req *next = r->next;
				if (r->deadline_ns && now >= r->deadline_ns) {
					sched__list_unlink(l, prev, r);
					r->deadline_ns = 0;
					if (lv->pol.timeout_action == MODELCFG_TIMEOUT_DELAY) {
						/* Behind everything not timed out at
						 * this level; it loses its deadline. */
						sched__list_push(&lv->delayed, r);
					} else {
						lv->count--;
						m->queued--;
						m->stats.failure++;
						r->next = *expired;
						*expired = r;
					}
					r = next;
					continue;
				}
				if (total + r->batch > m->cap) {
					full = true;
					break;
				}
				batch[n++] = r;
				total += r->batch;
				if (r->t_queued_ns < oldest)
					oldest = r->t_queued_ns;
				if (r->deadline_ns && r->deadline_ns < min_deadline)
					min_deadline = r->deadline_ns;
				if (sched__preferred(m, total))
					best = n;
				/* The default scheduler runs requests one by one. */
				if (total == m->cap || !m->dynamic)
					full = true;
				prev = r;
				r = next;
			}
		}
	}
	if (!n)
		return 0;

	bool exceeded = drain || !m->dynamic || now >= oldest + m->delay_ns;
	uint32_t take;
	if (best && !exceeded)
		take = best;            /* the largest preferred size available */
	else if (full || exceeded || m->delay_ns == 0)
		take = n;
	else {
		*wake = oldest + m->delay_ns;
		if (min_deadline < *wake)
			*wake = min_deadline;
		return 0;
	}

	/* The batch is a prefix of the scan order: pop list heads. */
	uint32_t got = 0;
	for (uint32_t li = 0; li < m->nlevels && got < take; li++) {
		struct sched__level *lv = &m->levels[li];
		while (got < take && lv->main.head)
			batch[got++] = sched__list_pop(&lv->main), lv->count--;
		while (got < take && lv->delayed.head)
			batch[got++] = sched__list_pop(&lv->delayed), lv->count--;
	}
	m->queued -= take;
	if (m->preserve)
		for (uint32_t i = 0; i < take; i++)
			batch[i]->seq = m->next_ticket++;
	return take;
}

/* ------------------------------------------------------------------ */
/* Completion                                                          */

static void sched__done(struct sched_req *r)
{
	ferry_be_error *e = r->err;
	int status = r->status;

	r->err = NULL;
	/* After done() returns r is the submitter's again: read nothing. */
	r->done(r, status, status ? ferry_be_error_message(e) : NULL);
	ferry_be_error_delete(e);
}

/* preserve_ordering: complete r once every earlier ticket has. */
static void sched__done_ordered(struct sched_model *m, struct sched_req *r)
{
	pthread_mutex_lock(&m->order_lock);
	/* The ring holds every ticket between next_done and the newest; wait
	 * for room.  The holder of ticket next_done is never here waiting, so
	 * this always ends. */
	while (r->seq - m->next_done > m->ring_mask)
		pthread_cond_wait(&m->order_cond, &m->order_lock);
	m->ring[r->seq & m->ring_mask] = r;
	if (m->flushing) {
		/* The flusher re-checks the ring before it stops. */
		pthread_mutex_unlock(&m->order_lock);
		return;
	}
	m->flushing = true;
	for (;;) {
		struct sched_req *x = m->ring[m->next_done & m->ring_mask];
		if (!x)
			break;
		m->ring[m->next_done & m->ring_mask] = NULL;
		m->next_done++;
		pthread_cond_broadcast(&m->order_cond);
		/* Unlocked around done(): it may submit again.  Only the
		 * flusher calls done(), so the order holds. */
		pthread_mutex_unlock(&m->order_lock);
		sched__done(x);
		pthread_mutex_lock(&m->order_lock);
	}
	m->flushing = false;
	pthread_mutex_unlock(&m->order_lock);
}

static void sched__complete_expired(struct sched_model *m, struct sched_req *list)
{
	static struct ferry_be_error timed_out = {
		.code = FERRY_ETIMEDOUT, .refs = 1, .is_static = true,
		.msg = "request timed out in the queue",
	};

	while (list) {
		struct sched_req *r = list;
		list = r->next;
		r->next = NULL;
		r->status = FERRY_ETIMEDOUT;
		r->err = &timed_out;
		r->t_exec_start_ns = r->t_exec_end_ns = 0;
		sched__done(r);
	}
}

/* Run one batch on instance in (no lock held); returns requests completed. */
static uint32_t sched__run_batch(struct sched_model *m, struct sched__inst *in, uint32_t n)
{
	const struct model_config *cfg = m->cfg;
	const uint32_t nout = (uint32_t)cfg->noutputs;
	uint64_t total = 0;

	uint64_t t0 = sched_now_ns();
	for (uint32_t i = 0; i < n; i++) {
		struct ferry_be_request *w = &in->wraps[i];
		w->r = in->batch[i];
		w->cfg = cfg;
		w->err = NULL;
		w->out_bytes = in->out_bytes + (size_t)i * nout;
		for (uint32_t o = 0; o < nout; o++)
			w->out_bytes[o] = UINT64_MAX;
		w->r->t_exec_start_ns = t0;
		in->ptrs[i] = w;
		total += w->r->batch;
	}
	in->be.input_end_ns = in->be.infer_end_ns = 0;
	ferry_be_error *be = m->bm.backend->ops.instance_execute(&in->be, in->ptrs, n);
	uint64_t t1 = sched_now_ns();

	uint64_t c_in = 0, c_inf = t1 - t0, c_out = 0;
	if (in->be.input_end_ns >= t0 && in->be.infer_end_ns >= in->be.input_end_ns &&
	    in->be.infer_end_ns <= t1) {
		c_in = in->be.input_end_ns - t0;
		c_inf = in->be.infer_end_ns - in->be.input_end_ns;
		c_out = t1 - in->be.infer_end_ns;
	}

	uint64_t ok = 0, queue_ns = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct ferry_be_request *w = &in->wraps[i];
		struct sched_req *r = w->r;
		r->t_exec_end_ns = t1;
		if (be) {
			ferry_be_error_delete(w->err);
			r->err = be_error_ref(be);
		} else if (w->err) {
			r->err = w->err;
		} else {
			for (uint32_t o = 0; o < nout; o++) {
				if (!r->out[o].present)
					continue;
				if (w->out_bytes[o] == UINT64_MAX) {
					r->err = ferry_be_error_new(FERRY_BACKEND, "backend '%s' "
						"produced no output '%s'", m->bm.backend->name,
						cfg->outputs[o].name);
					break;
				}
				r->out[o].bytes = w->out_bytes[o];
				r->out[o].dtype = cfg->outputs[o].dtype;
			}
		}
		w->err = NULL;
		r->status = r->err ? ferry_be_error_code(r->err) : 0;
		if (!r->status) {
			ok++;
			queue_ns += t0 - r->t_queued_ns;
		}
	}
	ferry_be_error_delete(be);

	pthread_mutex_lock(&m->lock);
	m->stats.execution_count++;
	m->stats.inference_count += total;
	m->stats.batch_execs[total < 64 ? total : 64]++;
	m->stats.success += ok;
	m->stats.failure += n - ok;
	m->stats.queue_ns += queue_ns;
	m->stats.compute_input_ns += ok * c_in;
	m->stats.compute_infer_ns += ok * c_inf;
	m->stats.compute_output_ns += ok * c_out;
	pthread_mutex_unlock(&m->lock);

	for (uint32_t i = 0; i < n; i++) {
		struct sched_req *r = in->batch[i];
		in->batch[i] = NULL;
		in->wraps[i].r = NULL;
		if (m->preserve)
			sched__done_ordered(m, r);
		else
			sched__done(r);
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Instance threads and inline runs                                    */

static void sched__timedwait(struct sched_model *m, uint64_t wake)
{
	struct timespec ts = {
		.tv_sec = (time_t)(wake / 1000000000u),
		.tv_nsec = (long)(wake % 1000000000u),
	};

	pthread_cond_timedwait(&m->cond, &m->lock, &ts);
}

static void *sched__inst_main(void *arg)
{
	struct sched__inst *in = arg;
	struct sched_model *m = in->m;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct sched_req *expired = NULL;
		uint64_t wake;
		uint32_t n = sched__form(m, sched_now_ns(), in->batch, &expired, &wake);

		if (expired || n) {
			/* Others may find work in what is left. */
			if (m->queued)
				pthread_cond_signal(&m->cond);
			pthread_mutex_unlock(&m->lock);
			sched__complete_expired(m, expired);
			if (n)
				sched__run_batch(m, in, n);
			pthread_mutex_lock(&m->lock);
			continue;
		}
		if (m->stopping && !m->queued)
			break;
		if (wake == UINT64_MAX)
			pthread_cond_wait(&m->cond, &m->lock);
		else
			sched__timedwait(m, wake);
	}
	/* Pass the stop on: a sibling may be asleep on the condition. */
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int sched_run_inline(struct sched_model *m, uint64_t now_ns, uint64_t *next_deadline_ns)
{
	uint64_t wake = UINT64_MAX;
	int done = 0;

	if (!m->inline_mode) {
		*next_deadline_ns = UINT64_MAX;
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	struct sched__inst *in = m->free_inst;
	if (!in) {
		/* Every instance is in another poller, which loops until
		 * nothing is ready. */
		*next_deadline_ns = m->queued ? now_ns : UINT64_MAX;
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	m->free_inst = in->next_free;
	for (;;) {
		struct sched_req *expired = NULL;
		uint32_t n = sched__form(m, now_ns, in->batch, &expired, &wake);

		if (!expired && !n)
			break;
		pthread_mutex_unlock(&m->lock);
		for (struct sched_req *r = expired; r; r = r->next)
			done++;
		sched__complete_expired(m, expired);
		if (n)
			done += (int)sched__run_batch(m, in, n);
		pthread_mutex_lock(&m->lock);
	}
	in->next_free = m->free_inst;
	m->free_inst = in;
	pthread_mutex_unlock(&m->lock);
	*next_deadline_ns = wake;
	return done;
}

void sched_model_stop(struct sched_model *m)
{
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);

	if (m->inline_mode) {
		/* No threads: drain here.  Another poller may hold the
		 * instances for a moment; yield to it. */
		for (;;) {
			uint64_t next;
			pthread_mutex_lock(&m->lock);
			uint32_t left = m->queued;
			pthread_mutex_unlock(&m->lock);
			if (!left)
				break;
			if (!sched_run_inline(m, sched_now_ns(), &next)) {
				struct timespec ts = { 0, 100000 };
				nanosleep(&ts, NULL);
			}
		}
		return;
	}
	for (uint32_t i = 0; i < m->ninst; i++) {
		if (m->inst[i].started) {
			pthread_join(m->inst[i].thread, NULL);
			m->inst[i].started = false;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Create / destroy                                                    */

static void sched__be_error_msg(ferry_be_error *e, char *err, size_t errlen, const char *fmt,
			       const char *a, const char *b)
{
	char head[256];

	snprintf(head, sizeof(head), fmt, a, b);
	sched__msg(err, errlen, "%s: %s", head, ferry_be_error_message(e));
	ferry_be_error_delete(e);
}

void sched_model_destroy(struct sched_model *m)
{
	if (!m)
		return;
	/* Threads must be gone (sched_model_stop); a failed create may have
	 * started some. */
	if (!m->stopping)
		sched_model_stop(m);
	const struct be_ops *ops = m->bm.backend ? &m->bm.backend->ops : NULL;
	for (uint32_t i = 0; m->inst && i < m->ninst; i++) {
		struct sched__inst *in = &m->inst[i];
		if (in->be_init && ops->instance_finalize) {
			ferry_be_error *e = ops->instance_finalize(&in->be);
			if (e) {
				fprintf(stderr, "ferryd: model '%s' instance %u finalize: %s\n",
					m->cfg->name, i, ferry_be_error_message(e));
				ferry_be_error_delete(e);
			}
		}
		free(in->batch);
		free(in->wraps);
		free(in->ptrs);
		free(in->out_bytes);
	}
	if (m->bm_init && ops->model_finalize) {
		ferry_be_error *e = ops->model_finalize(&m->bm);
		if (e) {
			fprintf(stderr, "ferryd: model '%s' finalize: %s\n", m->cfg->name,
				ferry_be_error_message(e));
			ferry_be_error_delete(e);
		}
	}
	free(m->inst);
	free(m->levels);
	free(m->ring);
	free(m->bm.path);
	pthread_cond_destroy(&m->order_cond);
	pthread_mutex_destroy(&m->order_lock);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Check the parts of the config the scheduler relies on. */
static int sched__check_config(const struct model_config *cfg, char *err, size_t errlen)
{
	const struct modelcfg_dynbatch *db = &cfg->dynbatch;
	const int bd = cfg->max_batch_size > 0 ? 1 : 0;

	if (cfg->max_batch_size < 0) {
		sched__msg(err, errlen, "model '%s': max_batch_size %d is negative", cfg->name,
			  cfg->max_batch_size);
		return FERRY_CONFIG;
	}
	for (int io = 0; io < 2; io++) {
		const struct modelcfg_tensor *ts = io ? cfg->outputs : cfg->inputs;
		int n = io ? cfg->noutputs : cfg->ninputs;
		for (int i = 0; i < n; i++) {
			if (!ferry_dtype_name(ts[i].dtype)) {
				sched__msg(err, errlen, "model '%s': %s '%s' has no valid data type",
					  cfg->name, io ? "output" : "input", ts[i].name);
				return FERRY_CONFIG;
			}
			if (ts[i].ndims < 0 || ts[i].ndims + bd > SCHED_MAX_DIMS) {
				sched__msg(err, errlen, "model '%s': %s '%s' has %d dims; at most "
					  "%d%s", cfg->name, io ? "output" : "input",
					  ts[i].name, ts[i].ndims, SCHED_MAX_DIMS - bd,
					  bd ? " besides the batch dimension" : "");
				return FERRY_CONFIG;
			}
		}
	}
	if (!db->enabled)
		return 0;
	if (db->npreferred < 0 || db->npreferred > MODELCFG_MAX_PREFERRED)
		goto bad_pref;
	for (int i = 0; i < db->npreferred; i++) {
		int p = db->preferred[i];
		if (p < 1 || p > (cfg->max_batch_size > 0 ? cfg->max_batch_size : 1) || p >= 128) {
			sched__msg(err, errlen, "model '%s': preferred_batch_size %d is outside "
				  "1..max_batch_size (%d)", cfg->name, p, cfg->max_batch_size);
			return FERRY_CONFIG;
		}
	}
	if (db->priority_levels) {
		if (db->default_priority_level < 1 ||
		    db->default_priority_level > db->priority_levels) {
			sched__msg(err, errlen, "model '%s': default_priority_level %u is outside "
				  "1..priority_levels (%u)", cfg->name,
				  db->default_priority_level, db->priority_levels);
			return FERRY_CONFIG;
		}
		if (db->priority_levels > 1024) {
			sched__msg(err, errlen, "model '%s': %u priority levels; at most 1024",
				  cfg->name, db->priority_levels);
			return FERRY_CONFIG;
		}
	}
	for (int i = 0; i < db->nprio_policies; i++) {
		uint32_t l = db->prio_policies[i].level;
		if (l < 1 || l > db->priority_levels) {
			sched__msg(err, errlen, "model '%s': priority_queue_policy for level %u, "
				  "outside 1..priority_levels (%u)", cfg->name, l,
				  db->priority_levels);
			return FERRY_CONFIG;
		}
	}
	return 0;
bad_pref:
	sched__msg(err, errlen, "model '%s': bad preferred_batch_size list", cfg->name);
	return FERRY_CONFIG;
}

static uint64_t sched__pow2(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

int sched_model_create(const struct model_config *cfg, const char *model_dir, int64_t version,
		       struct be_registry *reg, struct sched_model **out, char *err, size_t errlen)
{
	const struct modelcfg_dynbatch *db = &cfg->dynbatch;
	struct sched_model *m = NULL;
	ferry_backend *backend;
	ferry_be_error *e;
	const char *bname;
	int rc;

	rc = sched__check_config(cfg, err, errlen);
	if (rc)
		return rc;
	bname = be_backend_name(cfg, err, errlen);
	if (!bname)
		return FERRY_CONFIG;
	rc = be_registry_get(reg, bname, &backend, err, errlen);
	if (rc)
		return rc;

	m = calloc(1, sizeof(*m));
	if (!m)
		return FERRY_ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->order_lock, NULL);
	pthread_cond_init(&m->order_cond, NULL);
	/* Deadlines are CLOCK_MONOTONIC: immune to wall-clock steps. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);

	m->cfg = cfg;
	m->bm.cfg = cfg;
	m->bm.version = version;
	m->bm.backend = backend;
	m->bm.path = strdup(model_dir ? model_dir : "");
	rc = FERRY_ENOMEM;
	if (!m->bm.path)
		goto fail;

	/* Scheduling parameters. */
	m->dynamic = db->enabled;
	m->preserve = db->enabled && db->preserve_ordering;
	m->cap = cfg->max_batch_size > 0 ? (uint32_t)cfg->max_batch_size : 1;
	m->delay_ns = db->enabled ? db->max_queue_delay_us * 1000u : 0;
	for (int i = 0; db->enabled && i < db->npreferred; i++)
		m->preferred_mask[db->preferred[i] / 64] |= 1ull << (db->preferred[i] % 64);
	m->nlevels = db->enabled && db->priority_levels ? db->priority_levels : 1;
	m->default_level = m->nlevels > 1 ? db->default_priority_level - 1 : 0;
	m->levels = calloc(m->nlevels, sizeof(*m->levels));
	if (!m->levels)
		goto fail;
	for (uint32_t li = 0; li < m->nlevels; li++)
		if (db->enabled)
			m->levels[li].pol = db->default_policy;
	for (int i = 0; db->enabled && m->nlevels > 1 && i < db->nprio_policies; i++)
		m->levels[db->prio_policies[i].level - 1].pol = db->prio_policies[i].policy;

	/* The backend's model. */
	e = backend->ops.model_initialize(&m->bm);
	m->bm.frozen = true;
	if (e) {
		rc = ferry_be_error_code(e);
		sched__be_error_msg(e, err, errlen, "backend '%s' refused model '%s'",
				   backend->name, cfg->name);
		goto fail;
	}
	m->bm_init = true;
	m->inline_mode = m->bm.light;

	/* Instances: the sum of the groups' counts (Triton's default: one). */
	uint64_t ninst = 0;
	int ndev = -1;
	for (int g = 0; g < cfg->ngroups; g++) {
		const struct modelcfg_instance_group *grp = &cfg->groups[g];
		uint64_t c = grp->count > 0 ? (uint64_t)grp->count : 1;
		rc = FERRY_CONFIG;
		if (grp->count < 0) {
			sched__msg(err, errlen, "model '%s': instance group '%s' has count %d",
				  cfg->name, grp->name ? grp->name : "", grp->count);
			goto fail;
		}
		if (grp->kind == MODELCFG_KIND_GPU) {
			if (ndev < 0)
				ndev = be_cuda_device_count();
			if (!ndev && !m->bm.accepts_gpu) {
				sched__msg(err, errlen, "model '%s': instance group '%s' asks for "
					  "KIND_GPU but no CUDA device is available (backend "
					  "'%s' does not run GPU instances without one); use "
					  "KIND_CPU", cfg->name, grp->name ? grp->name : "",
					  backend->name);
				goto fail;
			}
			for (int j = 0; j < grp->ngpus && !m->bm.accepts_gpu; j++) {
				if (grp->gpus[j] < 0 || grp->gpus[j] >= ndev) {
					sched__msg(err, errlen, "model '%s': instance group '%s' "
						  "names GPU %d; devices are 0..%d", cfg->name,
						  grp->name ? grp->name : "", grp->gpus[j],
						  ndev - 1);
					goto fail;
				}
			}
			/* Triton: count instances on each listed GPU (or on
			 * each visible one). */
			c *= grp->ngpus ? (uint64_t)grp->ngpus : (uint64_t)(ndev > 0 ? ndev : 1);
		}
		ninst += c;
	}
	if (!cfg->ngroups)
		ninst = 1;
	if (ninst > 4096) {
		rc = FERRY_CONFIG;
		sched__msg(err, errlen, "model '%s': %" PRIu64 " instances; at most 4096",
			  cfg->name, ninst);
		goto fail;
	}
	rc = FERRY_ENOMEM;
	m->inst = calloc(ninst, sizeof(*m->inst));
	if (!m->inst)
		goto fail;
	m->ninst = (uint32_t)ninst;
	uint32_t k = 0;
	for (int g = 0; g < (cfg->ngroups ? cfg->ngroups : 1); g++) {
		const struct modelcfg_instance_group *grp = cfg->ngroups ? &cfg->groups[g] : NULL;
		int c = grp && grp->count > 0 ? grp->count : 1;
		int ndevs = 1;
		if (grp && grp->kind == MODELCFG_KIND_GPU)
			ndevs = grp->ngpus ? grp->ngpus : (ndev > 0 ? ndev : 1);
		for (int d = 0; d < ndevs; d++) {
			for (int j = 0; j < c; j++, k++) {
				struct ferry_be_instance *bi = &m->inst[k].be;
				bi->model = &m->bm;
				bi->index = k;
				bi->group = grp && grp->name ? grp->name : "";
				bi->kind = FERRY_BE_INSTANCE_CPU;
				bi->device = -1;
				/* KIND_AUTO runs on CPU until placement lands. */
				if (grp && grp->kind == MODELCFG_KIND_MODEL)
					bi->kind = FERRY_BE_INSTANCE_MODEL;
				if (grp && grp->kind == MODELCFG_KIND_GPU) {
					bi->kind = FERRY_BE_INSTANCE_GPU;
					bi->device = grp->ngpus ? grp->gpus[d] : d;
				}
			}
		}
	}

	const uint32_t nout = (uint32_t)cfg->noutputs;
	for (uint32_t i = 0; i < m->ninst; i++) {
		struct sched__inst *in = &m->inst[i];
		in->m = m;
		in->batch = calloc(m->cap, sizeof(*in->batch));
		in->wraps = calloc(m->cap, sizeof(*in->wraps));
		in->ptrs = calloc(m->cap, sizeof(*in->ptrs));
		in->out_bytes = calloc((size_t)m->cap * (nout ? nout : 1), sizeof(uint64_t));
		if (!in->batch || !in->wraps || !in->ptrs || !in->out_bytes) {
			rc = FERRY_ENOMEM;
			goto fail;
		}
		e = backend->ops.instance_initialize(&in->be);
		if (e) {
			char idx[16];
			snprintf(idx, sizeof(idx), "%u", i);
			rc = ferry_be_error_code(e);
			sched__be_error_msg(e, err, errlen, "backend '%s' failed to initialize "
					   "instance %s", backend->name, idx);
			goto fail;
		}
		in->be_init = true;
		in->next_free = m->free_inst;
		m->free_inst = in;
	}

	if (m->preserve) {
		/* Room for every batch in flight twice over; a completion
		 * beyond it waits (sched__done_ordered). */
		uint64_t slots = sched__pow2(2ull * m->ninst * m->cap);
		rc = FERRY_ENOMEM;
		m->ring = calloc(slots, sizeof(*m->ring));
		if (!m->ring)
			goto fail;
		m->ring_mask = slots - 1;
	}

	if (!m->inline_mode) {
		for (uint32_t i = 0; i < m->ninst; i++) {
			int prc = pthread_create(&m->inst[i].thread, NULL, sched__inst_main,
						 &m->inst[i]);
			if (prc) {
				rc = -prc;
				sched__msg(err, errlen, "model '%s': cannot start instance thread: "
					  "%s", cfg->name, strerror(prc));
				goto fail;
			}
			m->inst[i].started = true;
		}
	}
	*out = m;
	return 0;

fail:
	if (rc >= 0)
		rc = FERRY_BACKEND;
	if (rc == FERRY_ENOMEM && err && errlen && !*err)
		sched__msg(err, errlen, "model '%s': out of memory", cfg->name);
	sched_model_destroy(m);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Request accessors (backend ABI)                                     */

FERRY_BE_EXPORT uint32_t ferry_be_request_input_count(const ferry_be_request *r)
{
	return (uint32_t)r->cfg->ninputs;
}

FERRY_BE_EXPORT uint32_t ferry_be_request_output_count(const ferry_be_request *r)
{
	return (uint32_t)r->cfg->noutputs;
}

FERRY_BE_EXPORT uint32_t ferry_be_request_batch_size(const ferry_be_request *r)
{
	return r->r->batch;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input(const ferry_be_request *r, uint32_t index,
						       const char **name, ferry_dtype *dtype,
						       const int64_t **shape, int *ndims,
						       const void **data, uint64_t *bytes)
{
	if (index >= (uint32_t)r->cfg->ninputs)
		return ferry_be_error_new(FERRY_ENOENT, "input index %u out of range (%d)",
					  index, r->cfg->ninputs);
	const struct sched_tensor *x = &r->r->in[index];
	if (!x->present)
		return ferry_be_error_new(FERRY_ENOENT, "optional input '%s' was not given",
					  r->cfg->inputs[index].name);
	if (name)
		*name = r->cfg->inputs[index].name;
	if (dtype)
		*dtype = x->dtype;
	if (shape)
		*shape = x->dims;
	if (ndims)
		*ndims = x->ndims;
	if (data)
		*data = x->data;
	if (bytes)
		*bytes = x->bytes;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input_by_name(const ferry_be_request *r,
							       const char *name, ferry_dtype *dtype,
							       const int64_t **shape, int *ndims,
							       const void **data, uint64_t *bytes)
{
	for (int i = 0; i < r->cfg->ninputs; i++)
		if (strcmp(r->cfg->inputs[i].name, name) == 0)
			return ferry_be_request_input(r, (uint32_t)i, NULL, dtype, shape, ndims,
						      data, bytes);
	return ferry_be_error_new(FERRY_ENOENT, "model has no input '%s'", name);
}

static ferry_be_error *sched__memory(const struct sched_tensor *x, ferry_be_memory *type,
				    int *device)
{
	if (!x->present)
		return ferry_be_error_new(FERRY_ENOENT, "the tensor is absent");
	if (type)
		*type = x->cuda ? FERRY_BE_MEMORY_GPU : FERRY_BE_MEMORY_CPU;
	if (device)
		*device = x->cuda ? x->device : -1;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input_memory(const ferry_be_request *r,
							      uint32_t index,
							      ferry_be_memory *type,
							      int *device)
{
	if (index >= (uint32_t)r->cfg->ninputs)
		return ferry_be_error_new(FERRY_ENOENT, "input index %u out of range (%d)",
					  index, r->cfg->ninputs);
	return sched__memory(&r->r->in[index], type, device);
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_memory(const ferry_be_request *r,
							       uint32_t index,
							       ferry_be_memory *type,
							       int *device)
{
	if (index >= (uint32_t)r->cfg->noutputs)
		return ferry_be_error_new(FERRY_ENOENT, "output index %u out of range (%d)",
					  index, r->cfg->noutputs);
	return sched__memory(&r->r->out[index], type, device);
}

FERRY_BE_EXPORT bool ferry_be_request_output_requested(const ferry_be_request *r, uint32_t index)
{
	return index < (uint32_t)r->cfg->noutputs && r->r->out[index].present;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_buffer(ferry_be_request *r, uint32_t index,
							       const int64_t *shape, int ndims,
							       void **data, uint64_t *capacity)
{
	const struct model_config *cfg = r->cfg;
	const int bd = cfg->max_batch_size > 0 ? 1 : 0;
	char s1[128];

	if (!ferry_be_request_output_requested(r, index))
		return ferry_be_error_new(FERRY_ENOENT, "output %u was not requested", index);
	const struct modelcfg_tensor *t = &cfg->outputs[index];
	struct sched_tensor *y = &r->r->out[index];
	if (ndims != t->ndims + bd)
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': %d dimensions, the model "
					  "has %d", t->name, ndims, t->ndims + bd);
	if (bd && shape[0] != r->r->batch)
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': batch dimension %" PRId64
					  ", the request's batch is %u", t->name, shape[0],
					  r->r->batch);
	for (int d = 0; d < t->ndims; d++) {
		int64_t g = shape[d + bd], want = t->dims[d];
		if (g < 0 || (want >= 0 && g != want))
			return ferry_be_error_new(FERRY_SHAPE, "output '%s': shape %s does not "
						  "match the model's dims", t->name,
						  sched__shape_str(s1, sizeof(s1), shape, ndims));
	}
	uint64_t el;
	size_t es = ferry_dtype_size(t->dtype);
	if (sched__elements(shape, ndims, &el) || (es && el > UINT64_MAX / es))
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': shape %s is too large",
					  t->name, sched__shape_str(s1, sizeof(s1), shape, ndims));
	if (es && el * es > y->bytes)
		return ferry_be_error_new(FERRY_E2BIG, "output '%s': shape %s needs %" PRIu64
					  " bytes, the client's buffer holds %" PRIu64, t->name,
					  sched__shape_str(s1, sizeof(s1), shape, ndims),
					  el * es, y->bytes);
	/* The submitter does not look at its request until done(): the
	 * shape can go straight into it. */
	y->ndims = ndims;
	memcpy(y->dims, shape, (size_t)ndims * sizeof(int64_t));
	r->out_bytes[index] = es ? el * es : 0;
	if (data)
		*data = y->data;
	if (capacity)
		*capacity = y->bytes;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_set_bytes(ferry_be_request *r,
								  uint32_t index, uint64_t bytes)
{
	if (!ferry_be_request_output_requested(r, index) || r->out_bytes[index] == UINT64_MAX)
		return ferry_be_error_new(FERRY_EINVAL, "output %u: set_bytes before "
					  "output_buffer", index);
	const struct modelcfg_tensor *t = &r->cfg->outputs[index];
	if (ferry_dtype_size(t->dtype)) {
		if (bytes != r->out_bytes[index])
			return ferry_be_error_new(FERRY_EINVAL, "output '%s': %" PRIu64 " bytes, "
						  "the shape needs %" PRIu64, t->name, bytes,
						  r->out_bytes[index]);
		return NULL;
	}
	if (bytes > r->r->out[index].bytes)
		return ferry_be_error_new(FERRY_E2BIG, "output '%s': %" PRIu64 " bytes written "
					  "into a buffer of %" PRIu64, t->name, bytes,
					  r->r->out[index].bytes);
	r->out_bytes[index] = bytes;
	return NULL;
}

FERRY_BE_EXPORT void ferry_be_request_set_error(ferry_be_request *r, ferry_be_error *err)
{
	ferry_be_error_delete(r->err);
	r->err = err;
}
