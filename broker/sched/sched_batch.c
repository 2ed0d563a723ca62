/* SPDX-License-Identifier: MIT */
/*
 * sched_batch.c - forming batches (Triton's default and dynamic batchers,
 * preferred sizes, priority levels and queue policies), running them on an
 * instance, completing requests (in order for preserve_ordering), the
 * instance threads and the inline runs of light models, and stopping.
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

/* ------------------------------------------------------------------ */
/* Batch formation (m->lock held)                                      */

static bool sched__preferred(const struct sched_model *m, uint64_t size)
{
	return size < 128 && (m->preferred_mask[size / 64] >> (size % 64) & 1);
}

/* A request of level lv whose timeout passed (m->lock held): behind
 * everything at its level under DELAY, else onto *expired. */
static void sched__expire(struct sched_model *m, struct sched__level *lv, struct sched_req *r,
			  struct sched_req **expired)
{
	sched__fair_removed(r);
	r->deadline_ns = 0;
	if (lv->pol.timeout_action == MODELCFG_TIMEOUT_DELAY) {
		/* It loses its deadline. */
		sched__list_push(&lv->delayed, r);
		return;
	}
	lv->count--;
	m->queued--;
	m->stats.failure++;
	r->next = *expired;
	*expired = r;
}

/* Put back a request the scan popped but the batch does not take. */
static void sched__unpop(struct sched_model *m, struct sched_req *r)
{
	struct sched__level *lv = &m->levels[r->level];

	if (r->flow) {
		sched__fair_unpop(lv, r);
	} else {
		/* From the head of delayed: back there. */
		r->next = lv->delayed.head;
		lv->delayed.head = r;
		if (!lv->delayed.tail)
			lv->delayed.tail = r;
	}
}

/*
 * Take the next ready batch into batch[] (returns its length), or return 0
 * and set *wake to the time to look again (UINT64_MAX: queue empty).
 * Requests whose timeout passed under REJECT are unlinked onto *expired
 * (caller completes them without the lock).  drain: a stopping model runs
 * what it has without waiting for the delay.
 *
 * The scan pops requests in the order they are due (each level's clients
 * in fair-share order, then its delayed list, then the next level) until
 * the batch is full; the requests beyond the batch it decides on are put
 * back, the last popped first, so the queues end as they were without
 * them.
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
			for (;;) {
				struct sched_req *r = which ? sched__list_pop(&lv->delayed)
							    : sched__fair_pop(m, lv);
				if (!r)
					break;
				if (r->deadline_ns && now >= r->deadline_ns) {
					if (which)
						r->flow = NULL;
					sched__expire(m, lv, r, expired);
					continue;
				}
				if (which)
					r->flow = NULL;
				if (total + r->batch > m->cap) {
					sched__unpop(m, r);
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
				if (total == m->cap || !m->dynamic) {
					full = true;
					break;
				}
			}
		}
	}

	uint32_t take = 0;
	bool exceeded = drain || !m->dynamic || now >= oldest + m->delay_ns;
	if (!n)
		take = 0;
	else if (best && !exceeded)
		take = best;            /* the largest preferred size available */
	else if (full || exceeded || m->delay_ns == 0)
		take = n;
	else {
		*wake = oldest + m->delay_ns;
		if (min_deadline < *wake)
			*wake = min_deadline;
	}
	/* Put back what the batch does not take, the last popped first. */
	for (uint32_t i = n; i > take; i--)
		sched__unpop(m, batch[i - 1]);
	for (uint32_t i = 0; i < take; i++) {
		struct sched__level *lv = &m->levels[batch[i]->level];
		sched__fair_taken(lv, batch[i]);
		lv->count--;
	}
	sched__fair_tidy(m);
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

void *sched__inst_main(void *arg)
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

