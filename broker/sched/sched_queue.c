/* SPDX-License-Identifier: MIT */
/*
 * sched_queue.c - the scheduler's queues: validation of each request
 * against its model's config, submission into the priority levels, and
 * the model's read-only accessors and statistics.
 *
 * QUEUES
 *
 * One level per priority (1 when priorities are off).  Each level keeps its
 * requests in one FIFO per client (owner), served by fair share
 * (sched_fair.c), and an intrusive FIFO list `delayed`, where a request
 * whose timeout passed under the DELAY action goes.  Batches are formed by
 * scanning level 0 in fair-share order, level 0 delayed, level 1, ... (as
 * Triton's priority queue does, with arrival order inside a level where
 * there is one client), so a batch is always a prefix of that scan order.
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
#include "broker/sched/sched_int.h"

uint64_t sched_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


void sched__msg(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Print a shape as "[2,16]" into buf. */
const char *sched__shape_str(char *buf, size_t len, const int64_t *d, int nd)
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

void sched__list_push(struct sched__list *l, struct sched_req *r)
{
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

struct sched_req *sched__list_pop(struct sched__list *l)
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

/* ------------------------------------------------------------------ */
/* Validation                                                          */

int sched__elements(const int64_t *dims, int nd, uint64_t *out)
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

int sched_check_input(const struct model_config *cfg, int index, ferry_dtype dtype, int ndims,
		      const int64_t *dims, uint64_t *elements, char *msg, size_t msglen)
{
	const struct modelcfg_tensor *t = &cfg->inputs[index];
	const int mbs = cfg->max_batch_size;
	const int bd = mbs > 0 ? 1 : 0;
	char s1[128];
	uint64_t el;

	if (dtype != t->dtype) {
		const char *g = ferry_dtype_name(dtype);
		sched__msg(msg, msglen, "input '%s': data type %s does not match the "
			  "model's %s", t->name, g ? g : "(invalid)",
			  ferry_dtype_name(t->dtype));
		return FERRY_DTYPE;
	}
	if (ndims != t->ndims + bd || ndims > SCHED_MAX_DIMS) {
		sched__msg(msg, msglen, "input '%s': %d dimensions given, the model "
			  "expects %d%s", t->name, ndims, t->ndims + bd,
			  bd ? " (batch dimension first)" : "");
		return FERRY_SHAPE;
	}
	if (bd && (dims[0] < 1 || dims[0] > mbs)) {
		sched__msg(msg, msglen, "input '%s': batch size %" PRId64 " is "
			  "outside 1..%d (max_batch_size)", t->name, dims[0], mbs);
		return FERRY_SHAPE;
	}
	for (int d = 0; d < t->ndims; d++) {
		int64_t g = dims[d + bd], want = t->dims[d];
		if (g < 0 || (want >= 0 && g != want)) {
			/* The model's shape, with -1 for the batch. */
			int64_t e[SCHED_MAX_DIMS];
			char s2[128];
			e[0] = -1;
			memcpy(e + bd, t->dims, (size_t)t->ndims * sizeof(int64_t));
			sched__msg(msg, msglen, "input '%s': shape %s does not match the "
				  "model's %s", t->name,
				  sched__shape_str(s1, sizeof(s1), dims, ndims),
				  sched__shape_str(s2, sizeof(s2), e, t->ndims + bd));
			return FERRY_SHAPE;
		}
	}
	if (sched__elements(dims, ndims, &el)) {
		sched__msg(msg, msglen, "input '%s': shape %s is too large", t->name,
			  sched__shape_str(s1, sizeof(s1), dims, ndims));
		return FERRY_SHAPE;
	}
	if (elements)
		*elements = el;
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
		if ((rc = sched_check_input(cfg, i, x->dtype, x->ndims, x->dims, &el, msg, msglen)))
			return rc;
		if (bd) {
			if (batch_from && x->dims[0] != batch) {
				sched__msg(msg, msglen, "input '%s': batch size %" PRId64
					  " differs from input '%s''s %" PRId64, t->name,
					  x->dims[0], batch_from, batch);
				return FERRY_SHAPE;
			}
			batch = x->dims[0];
			batch_from = t->name;
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

/* Enqueue r; an inline model's poller is kicked only when `kick_inline`
 * (sched_submit_here runs the model itself first). */
static int sched__submit(struct sched_model *m, struct sched_req *r, bool kick_inline,
			 char *msg, size_t msglen)
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
	if (sched__fair_push(m, lv, li, r)) {
		pthread_mutex_unlock(&m->lock);
		sched__msg(msg, msglen, "model '%s': out of memory for the queue of one more "
			  "client", m->cfg->name);
		return FERRY_ENOMEM;
	}
	lv->count++;
	m->queued++;
	if (m->inline_mode) {
		if (kick_inline) {
			kick = m->kick;
			kick_arg = m->kick_arg;
		}
	} else {
		pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	if (kick)
		kick(kick_arg);
	return 0;
}

int sched_submit(struct sched_model *m, struct sched_req *r, char *msg, size_t msglen)
{
	return sched__submit(m, r, true, msg, msglen);
}

int sched_submit_here(struct sched_model *m, struct sched_req *r, char *msg, size_t msglen)
{
	int rc = sched__submit(m, r, !m->inline_mode, msg, msglen);
	if (rc || !m->inline_mode)
		return rc;
	/* r may be completed (and gone) from here on. */
	uint64_t next, now = sched_now_ns();
	sched_run_inline(m, now, &next);
	/* Nothing left, or every instance is held by another thread, which
	 * forms batches until nothing is ready (it saw r: r was queued under
	 * the lock before that thread's last look): nobody to wake.  A
	 * poller spinning up for nothing would take a core from the threads
	 * doing the work. */
	if (next == UINT64_MAX || next <= now)
		return 0;
	/* A batch waits out its queue delay: the pollers keep the time. */
	pthread_mutex_lock(&m->lock);
	void (*kick)(void *) = m->kick;
	void *kick_arg = m->kick_arg;
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

const char *sched_model_backend_name(const struct sched_model *m)
{
	return m->bm.backend->name;
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

