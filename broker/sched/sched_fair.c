/* SPDX-License-Identifier: MIT */
/*
 * sched_fair.c - fair share between the clients of one model, inside each
 * priority level.
 *
 * Every request names its client (sched_req.owner: a shared-memory
 * session, a gRPC or HTTP connection).  Inside a priority level the
 * requests of one client form a flow, a FIFO; the level serves its flows
 * by start-time fair queueing (Goyal, Vin and Cheng, 1996), with a
 * request's batch size (its rows) as its cost:
 *
 *   tag(r)    = max(finish of r's flow, the level's virtual time)
 *   finish    = tag(r) + rows(r), the flow's new finish
 *   serve     the queued request with the smallest tag (ties: first come)
 *   vtime     = the tag of the request served last
 *
 * A client that keeps a deep backlog pushes its own tags ahead of the
 * virtual time, one row at a time; a client that sends a request now and
 * then gets the virtual time as its tag and overtakes the backlog, so it
 * waits for about one request of each other busy client, however deep
 * their queues.  Each of n busy clients gets 1/n of the rows served, the
 * flooder included.  Requests of clients with nothing else queued all get
 * the virtual time, so they go in arrival order: with one client, or one
 * request per client, the order is the arrival order, as before.  A flow
 * that empties keeps its finish until the virtual time passes it (or its
 * level empties), so a client cannot win more than its share by sending
 * one large request at a time.
 *
 * Batches are still a prefix of the scan order (sched_batch.c): the
 * scanner pops requests from the level in tag order, and puts back the
 * ones the batch does not take (sched__fair_unpop, in the reverse order),
 * which leaves the level as it was.  The virtual time moves only when a
 * request is really taken (sched__fair_taken).
 *
 * STRUCTURES (all under sched_model.lock)
 *
 *   flows    one struct sched__flow per (owner, level) with requests
 *            queued, found through a chained hash table; a flow left empty
 *            goes back to a free pool (sched__fair_tidy), so the memory is
 *            that of the most flows ever queued at once, allocated once
 *   heap     per level, the flows with requests, a binary min-heap by
 *            their head request's (tag, arrival)
 *
 * Cost: O(log flows) per request pushed, popped or put back.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <ferry/errors.h>

#include "broker/sched/sched.h"
#include "broker/sched/sched_int.h"

#define SCHED__NO_HEAP UINT32_MAX

static uint32_t sched__fair_hash(const void *owner, uint32_t level)
{
	uint64_t x = (uint64_t)(uintptr_t)owner ^ ((uint64_t)level << 48);
	/* A 64-bit mix (murmur3's finaliser): pointers differ in few bits. */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb3fa10f9f3ebULL;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* Is a's head served before b's? */
static bool sched__fair_before(const struct sched__flow *a, const struct sched__flow *b)
{
	const struct sched_req *x = a->q.head, *y = b->q.head;
	return x->tag < y->tag || (x->tag == y->tag && x->arrival < y->arrival);
}

static void sched__heap_set(struct sched__level *lv, uint32_t i, struct sched__flow *f)
{
	lv->heap[i] = f;
	f->heap_idx = i;
}

static void sched__heap_up(struct sched__level *lv, uint32_t i)
{
	struct sched__flow *f = lv->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!sched__fair_before(f, lv->heap[p]))
			break;
		sched__heap_set(lv, i, lv->heap[p]);
		i = p;
	}
	sched__heap_set(lv, i, f);
}

static void sched__heap_down(struct sched__level *lv, uint32_t i)
{
	struct sched__flow *f = lv->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= lv->nheap)
			break;
		if (c + 1 < lv->nheap && sched__fair_before(lv->heap[c + 1], lv->heap[c]))
			c++;
		if (!sched__fair_before(lv->heap[c], f))
			break;
		sched__heap_set(lv, i, lv->heap[c]);
		i = c;
	}
	sched__heap_set(lv, i, f);
}

/* f (with a head) joins the heap: room was made by sched__fair_push. */
static void sched__heap_insert(struct sched__level *lv, struct sched__flow *f)
{
	lv->heap[lv->nheap] = f;
	f->heap_idx = lv->nheap++;
	sched__heap_up(lv, f->heap_idx);
}

static void sched__heap_remove(struct sched__level *lv, struct sched__flow *f)
{
	uint32_t i = f->heap_idx;
	struct sched__flow *last = lv->heap[--lv->nheap];
	f->heap_idx = SCHED__NO_HEAP;
	if (i == lv->nheap)
		return;
	sched__heap_set(lv, i, last);
	sched__heap_down(lv, i);
	sched__heap_up(lv, last->heap_idx);
}

/* The flow of (owner, level), made (from the pool) when it has none. */
static struct sched__flow *sched__flow_get(struct sched_model *m, void *owner, uint32_t level)
{
	uint32_t h = sched__fair_hash(owner, level);

	if (m->flow_tab) {
		for (struct sched__flow *f = m->flow_tab[h & m->flow_mask]; f; f = f->hnext)
			if (f->owner == owner && f->level == level)
				return f;
	}
	/* Grow the table past one flow a bucket. */
	if (m->nflows >= m->flow_mask + 1 || !m->flow_tab) {
		uint32_t size = m->flow_tab ? (m->flow_mask + 1) * 2 : 16;
		struct sched__flow **t = calloc(size, sizeof(*t));
		if (!t)
			return NULL;
		for (uint32_t b = 0; m->flow_tab && b <= m->flow_mask; b++) {
			for (struct sched__flow *f = m->flow_tab[b], *n; f; f = n) {
				n = f->hnext;
				uint32_t k = sched__fair_hash(f->owner, f->level) & (size - 1);
				f->hnext = t[k];
				t[k] = f;
			}
		}
		free(m->flow_tab);
		m->flow_tab = t;
		m->flow_mask = size - 1;
	}
	struct sched__flow *f = m->flow_pool;
	if (f)
		m->flow_pool = f->hnext;
	else if (!(f = calloc(1, sizeof(*f))))
		return NULL;
	f->owner = owner;
	f->level = level;
	f->q.head = f->q.tail = NULL;
	f->count = 0;
	f->last_tag = 0;
	f->heap_idx = SCHED__NO_HEAP;
	f->tidy = false;
	f->hnext = m->flow_tab[h & m->flow_mask];
	m->flow_tab[h & m->flow_mask] = f;
	m->nflows++;
	return f;
}

static _Atomic bool sched__fair_on = true;

void sched_set_fair_share(bool on)
{
	atomic_store(&sched__fair_on, on);
}

bool sched__fair_share(void)
{
	return atomic_load(&sched__fair_on);
}

int sched__fair_push(struct sched_model *m, struct sched__level *lv, uint32_t level,
		     struct sched_req *r)
{
	/* preserve_ordering answers in arrival order: serving out of it would
	 * only hold the early answers back, so those models keep one FIFO
	 * (as every model does with fair share turned off). */
	void *owner = m->fair ? r->owner : NULL;

	if (lv->nheap == lv->heap_cap) {
		/* Room for one more flow in the heap, before anything moves. */
		uint32_t cap = lv->heap_cap ? lv->heap_cap * 2 : 8;
		struct sched__flow **h = realloc(lv->heap, cap * sizeof(*h));
		if (!h)
			return FERRY_ENOMEM;
		lv->heap = h;
		lv->heap_cap = cap;
	}
	struct sched__flow *f = sched__flow_get(m, owner, level);
	if (!f)
		return FERRY_ENOMEM;
	r->tag = f->last_tag > lv->vtime ? f->last_tag : lv->vtime;
	r->arrival = m->next_arrival++;
	r->flow = f;
	f->last_tag = r->tag + r->batch;
	sched__list_push(&f->q, r);
	if (f->count++ == 0)
		sched__heap_insert(lv, f);
	return 0;
}

/* The flow emptied: release it at the next tidy unless refilled. */
static void sched__fair_note_empty(struct sched_model *m, struct sched__flow *f)
{
	if (!f->tidy) {
		f->tidy = true;
		f->tnext = m->flow_tidy;
		m->flow_tidy = f;
	}
}

struct sched_req *sched__fair_pop(struct sched_model *m, struct sched__level *lv)
{
	if (!lv->nheap)
		return NULL;
	struct sched__flow *f = lv->heap[0];
	struct sched_req *r = sched__list_pop(&f->q);
	if (--f->count) {
		sched__heap_down(lv, 0);
	} else {
		sched__heap_remove(lv, f);
		sched__fair_note_empty(m, f);
	}
	return r;
}

void sched__fair_unpop(struct sched__level *lv, struct sched_req *r)
{
	struct sched__flow *f = r->flow;

	/* Back at the head: its tag is no later than the one there now. */
	r->next = f->q.head;
	f->q.head = r;
	if (!f->q.tail)
		f->q.tail = r;
	if (f->count++ == 0)
		sched__heap_insert(lv, f);
	else
		sched__heap_up(lv, f->heap_idx);
}

void sched__fair_taken(struct sched__level *lv, struct sched_req *r)
{
	if (r->flow && r->tag > lv->vtime)
		lv->vtime = r->tag;
	r->flow = NULL;
}

void sched__fair_removed(struct sched_req *r)
{
	r->flow = NULL;
}

void sched__fair_tidy(struct sched_model *m)
{
	struct sched__flow *keep = NULL;

	while (m->flow_tidy) {
		struct sched__flow *f = m->flow_tidy;
		const struct sched__level *lv = &m->levels[f->level];
		m->flow_tidy = f->tnext;
		if (f->count) {
			f->tidy = false;
			continue;
		}
		if (f->last_tag > lv->vtime && lv->nheap) {
			/* Its finish still counts against the others. */
			f->tnext = keep;
			keep = f;
			continue;
		}
		f->tidy = false;
		/* Out of the table, into the pool. */
		struct sched__flow **pp = &m->flow_tab[sched__fair_hash(f->owner, f->level) &
						       m->flow_mask];
		while (*pp != f)
			pp = &(*pp)->hnext;
		*pp = f->hnext;
		m->nflows--;
		f->hnext = m->flow_pool;
		m->flow_pool = f;
	}
	m->flow_tidy = keep;
}

void sched__fair_fini(struct sched_model *m)
{
	for (uint32_t b = 0; m->flow_tab && b <= m->flow_mask; b++) {
		for (struct sched__flow *f = m->flow_tab[b], *n; f; f = n) {
			n = f->hnext;
			free(f);
		}
	}
	free(m->flow_tab);
	m->flow_tab = NULL;
	while (m->flow_pool) {
		struct sched__flow *f = m->flow_pool;
		m->flow_pool = f->hnext;
		free(f);
	}
	for (uint32_t li = 0; m->levels && li < m->nlevels; li++) {
		free(m->levels[li].heap);
		m->levels[li].heap = NULL;
	}
}
