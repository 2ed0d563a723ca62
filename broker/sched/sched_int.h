/* SPDX-License-Identifier: MIT */
/*
 * sched_int.h - what the scheduler's files share and nothing outside
 * broker/sched/ may use: the model and instance structs, the queue lists,
 * and the helpers named sched__ that more than one of its files calls.
 *
 *   sched_queue.c   queues, validation, submit, statistics
 *   sched_fair.c    fair share between the clients of a priority level
 *   sched_batch.c   batch formation, running batches, completion, instance
 *                   threads and inline runs, stop
 *   sched_model.c   creating and destroying a model's scheduler
 *   be_request.c    the backend ABI's request accessors
 *
 * The locking rules are in sched.h.
 */
#ifndef FERRY_SCHED_INT_H
#define FERRY_SCHED_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ferry/backend.h>

#include "broker/sched/be_host.h"
#include "broker/sched/sched.h"

struct sched__list {
	struct sched_req *head, *tail;
};

/* One client's requests at one priority level (sched_fair.c). */
struct sched__flow {                     /* guarded by sched_model.lock */
	void *owner;                    /* sched_req.owner */
	uint32_t level;
	struct sched__list q;           /* its requests, in arrival order */
	uint32_t count;                 /* in q */
	uint32_t heap_idx;              /* in its level's heap; UINT32_MAX: out */
	uint64_t last_tag;              /* finish: its newest tag + its rows */
	struct sched__flow *hnext;      /* hash chain, or the free pool */
	struct sched__flow *tnext;      /* the list of flows to tidy */
	bool tidy;                      /* on that list */
};

struct sched__level {                    /* guarded by sched_model.lock */
	/* The requests in arrival order, one flow per client, served by
	 * fair share (sched_fair.c): the flows with requests, a min-heap by
	 * their head's tag. */
	struct sched__flow **heap;
	uint32_t nheap, heap_cap;
	uint64_t vtime;                 /* the tag of the latest request taken */
	struct sched__list delayed;     /* timed out under DELAY, in order */
	uint32_t count;                 /* the flows' requests and delayed */
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
	bool fair;                              /* share between owners */
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
	/* Fair share (sched_fair.c), all under lock: the flows by (owner,
	 * level) in a chained hash table, the pool of unused ones, the
	 * flows emptied since the last tidy, the arrival counter. */
	struct sched__flow **flow_tab;
	uint32_t flow_mask, nflows;
	struct sched__flow *flow_pool, *flow_tidy;
	uint64_t next_arrival;

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

/* vsnprintf into buf; a NULL buf or a zero len is a no-op. */
void sched__msg(char *buf, size_t len, const char *fmt, ...) FERRY__BE_PRINTF(3, 4);
/* Print a shape as "[2,16]" into buf. */
const char *sched__shape_str(char *buf, size_t len, const int64_t *d, int nd);

/* The product of nd dims in *out; -1 for a negative dim or overflow. */
int sched__elements(const int64_t *dims, int nd, uint64_t *out);

/* The intrusive FIFO lists (m->lock held). */
void sched__list_push(struct sched__list *l, struct sched_req *r);
struct sched_req *sched__list_pop(struct sched__list *l);

/*
 * Fair share inside a level (sched_fair.c), m->lock held.
 * sched__fair_push: queue r at level index `level` (lv is its level), in
 *   its owner's flow; 0 or FERRY_ENOMEM (nothing queued).
 * sched__fair_pop: take the request due next (smallest tag), or NULL.
 * sched__fair_unpop: put back a request just popped, the latest first.
 * sched__fair_taken: r leaves for a batch: the level's virtual time moves.
 * sched__fair_removed: r leaves otherwise (timed out).
 * sched__fair_tidy: return flows left empty to the pool (after a scan).
 * sched__fair_fini: free it all (model destroyed).
 */
int sched__fair_push(struct sched_model *m, struct sched__level *lv, uint32_t level,
		     struct sched_req *r);
struct sched_req *sched__fair_pop(struct sched_model *m, struct sched__level *lv);
void sched__fair_unpop(struct sched__level *lv, struct sched_req *r);
void sched__fair_taken(struct sched__level *lv, struct sched_req *r);
void sched__fair_removed(struct sched_req *r);
void sched__fair_tidy(struct sched_model *m);
void sched__fair_fini(struct sched_model *m);
/* sched_set_fair_share's setting, for sched_model_create. */
bool sched__fair_share(void);

/* An instance thread's body (sched_batch.c; started by sched_model.c). */
void *sched__inst_main(void *arg);

#endif /* FERRY_SCHED_INT_H */
