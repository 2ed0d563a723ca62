/* SPDX-License-Identifier: MIT */
/*
 * sched_int.h - what the scheduler's files share and nothing outside
 * broker/sched/ may use: the model and instance structs, the queue lists,
 * and the helpers named sched__ that more than one of its files calls.
 *
 *   sched_queue.c   queues, validation, submit, statistics
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

/* vsnprintf into buf; a NULL buf or a zero len is a no-op. */
void sched__msg(char *buf, size_t len, const char *fmt, ...) FERRY__BE_PRINTF(3, 4);
/* Print a shape as "[2,16]" into buf. */
const char *sched__shape_str(char *buf, size_t len, const int64_t *d, int nd);

/* The product of nd dims in *out; -1 for a negative dim or overflow. */
int sched__elements(const int64_t *dims, int nd, uint64_t *out);

/* The intrusive FIFO lists of a priority level (m->lock held). */
void sched__list_push(struct sched__list *l, struct sched_req *r);
struct sched_req *sched__list_pop(struct sched__list *l);
void sched__list_unlink(struct sched__list *l, struct sched_req *prev, struct sched_req *r);

/* An instance thread's body (sched_batch.c; started by sched_model.c). */
void *sched__inst_main(void *arg);

#endif /* FERRY_SCHED_INT_H */
