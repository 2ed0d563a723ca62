/* SPDX-License-Identifier: MIT */
/*
 * sched.h - the model scheduler: one queue per model version, Triton's
 * default and dynamic batchers, priority levels and queue policies, and the
 * model instances (worker threads, or the caller's polling thread for light
 * backends).  Module prefix: sched_.
 *
 * THREADS AND LOCKS
 *
 * sched_submit(), sched_set_kick(), sched_model_stats() and
 * sched_run_inline() may be called from any thread, concurrently.
 * sched_model_create(), sched_model_stop() and sched_model_destroy() are
 * control-path calls: one thread, never concurrent with each other;
 * sched_submit() may race with sched_model_stop() (it then fails with
 * FERRY_UNAVAILABLE), but nothing may call into a model once
 * sched_model_destroy() has started.
 *
 * Inside the model (sched_*.c):
 *   - sched_model.lock guards the queues, the queue counters, the stopping
 *     flag, the kick callback, the free-instance stack and the statistics;
 *   - sched_model.order_lock guards the preserve_ordering completion ring
 *     and is never held while taking .lock;
 *   - sched_model.inline_lock serialises inline pollers with each other
 *     (taken before .lock);
 *   - each instance's request wrappers belong to the thread running that
 *     instance; no lock.
 * done() callbacks run with no scheduler lock held, except .order_lock for
 * preserve_ordering models (done() may submit again: that takes .lock,
 * which is allowed).
 *
 * REQUESTS
 *
 * The submitter owns each struct sched_req and its tensors' memory.  From
 * an accepted sched_submit() until done() returns, the scheduler may read
 * and write them (outputs in place, from whichever thread executes the
 * batch) and the submitter must not touch them.  done() is called exactly
 * once per accepted request; after it returns the scheduler never touches
 * the request again.  No memory is allocated per request: the queues are
 * intrusive lists through sched_req.next, each instance preallocates its
 * batch, and the fair-share queues of the clients (one per owner and
 * priority level with requests queued) come from a pool that grows to the
 * most ever queued at once.
 *
 * FAIR SHARE
 *
 * Inside a priority level, the owners (sched_req.owner) of a model share
 * it fairly by rows (batch sizes): a client with one request queued waits
 * for about one request of each other client, not for their whole
 * backlog, and each of n busy clients gets 1/n.  Priority levels come
 * first as before; models with preserve_ordering keep one FIFO.  See
 * sched_fair.c.
 *
 * TIME
 *
 * All times are CLOCK_MONOTONIC nanoseconds (sched_now_ns()).
 */
#ifndef FERRY_SCHED_H
#define FERRY_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/dtype.h>

#include "broker/config/modelcfg.h"

#define SCHED_MAX_DIMS 8

struct sched_tensor {
	void *data;          /* input: bytes to read; output: where to write */
	uint64_t bytes;      /* input: data bytes; output: capacity in, bytes written out */
	ferry_dtype dtype;   /* input: given; output: set on completion */
	int ndims;           /* batch dimension included when max_batch_size > 0 */
	int64_t dims[SCHED_MAX_DIMS]; /* output: set on completion */
	bool present;        /* input given / output requested */
	bool cuda;           /* data is CUDA device memory on `device` */
	int device;
};

struct sched_req {
	/* Set by the submitter before sched_submit().  in[] has cfg->ninputs
	 * entries in config order, out[] cfg->noutputs in config order. */
	struct sched_tensor *in, *out;
	uint32_t priority;          /* 0 = default level */
	uint64_t timeout_us;        /* 0 = the queue policy's default */
	/* status: 0 or a negative ferry code; msg: NULL on success, else a
	 * message valid only during the call. */
	void (*done)(struct sched_req *r, int status, const char *msg);
	/* The client it comes from: a session, a connection.  Requests of
	 * one owner share one fair-share queue in each priority level; the
	 * owners of a model share its instances fairly (sched_fair.c).  Only
	 * compared, never dereferenced; NULL is one owner like any other. */
	void *owner;
	/* Set by the scheduler; valid inside done(). */
	uint32_t batch;             /* the request's batch size (dims[0] or 1) */
	uint64_t t_queued_ns, t_exec_start_ns, t_exec_end_ns;
	/* Private to the scheduler. */
	struct sched_req *next;
	struct sched__flow *flow;   /* its client's queue while queued */
	uint64_t tag, arrival;      /* fair-share order (sched_fair.c) */
	uint64_t seq, deadline_ns;
	uint32_t level;             /* index of its priority level */
	int status;                 /* completion held back by preserve_ordering */
	struct ferry_be_error *err;  /* its message (reference held) */
};

struct be_registry;
struct sched_model;
struct sched__flow;

/* CLOCK_MONOTONIC now, in ns. */
uint64_t sched_now_ns(void);

/*
 * sched_set_fair_share - share each model fairly between its clients
 * (true, the default) or serve each priority level in arrival order
 * (false: one FIFO, as before issue 19; ferryd --fair-share=false).  Read
 * by sched_model_create: models created afterwards follow it.  Call before
 * the first model is created (ferryd's start).
 */
void sched_set_fair_share(bool on);

/*
 * sched_model_create - load one model version: resolve its backend in reg,
 * check the scheduling config, initialise the backend's model and instances
 * and start the instance threads.
 *
 * cfg is borrowed: it must stay valid and unchanged until
 * sched_model_destroy().  model_dir may be NULL ("").  On failure returns a
 * negative code (FERRY_CONFIG for a bad config, FERRY_ENOENT for an unknown
 * backend, FERRY_VERSION, FERRY_BACKEND for a backend that refused, ...)
 * with err filled, and leaves nothing behind.
 */
int sched_model_create(const struct model_config *cfg, const char *model_dir, int64_t version,
		       struct be_registry *reg, struct sched_model **out, char *err, size_t errlen);

/*
 * sched_submit - validate r against the model config, then enqueue it.
 *
 * Checks: presence of required inputs, dtypes, ndims/dims against the config
 * (variable -1 dims; the batch dimension 1..max_batch_size and equal across
 * inputs), bytes == elements * dtype size for fixed types, BYTES well-formed
 * (4-byte little-endian length prefixes exactly covering bytes, one per
 * element), every requested output's capacity large enough where it is
 * computable (fixed dims and dtype), the priority level.
 * Returns 0, or a negative code with msg filled (naming the input or output
 * and the problem) and done() NOT called: FERRY_EINVAL, FERRY_DTYPE,
 * FERRY_SHAPE, FERRY_E2BIG (output capacity); queue full: FERRY_ENOSPC;
 * stopped: FERRY_UNAVAILABLE.
 */
int sched_submit(struct sched_model *m, struct sched_req *r, char *msg, size_t msglen);

/*
 * sched_submit_here - sched_submit, and for an inline model (light
 * backend) execute what is ready on the calling thread at once, done()
 * included, instead of waking a poller to do it: a front end's thread
 * that took a call answers it itself, with no hop between threads.  A
 * poller is kicked only when a batch is left waiting out its queue delay
 * (a request that finds every instance busy is run by the thread that
 * holds it, which forms batches until nothing is ready).  Same returns as
 * sched_submit; after 0, done() may already have run.  The caller keeps
 * the model alive across the call (the model table's read lock).
 */
int sched_submit_here(struct sched_model *m, struct sched_req *r, char *msg, size_t msglen);

/*
 * sched_check_input - the part of sched_submit's checks that one input
 * tensor meets alone: is a tensor of dtype and shape (ndims dims) what
 * input `index` of cfg takes?  Its dtype (FERRY_DTYPE), then its number of
 * dimensions, the batch dimension within 1..max_batch_size when the model
 * batches, every fixed dimension and the element count (FERRY_SHAPE), with
 * msg filled.  0 with *elements (may be NULL) set when it fits.  A front
 * end that converts a request before submitting it calls this first, so a
 * mistake gets the same code on every transport.
 */
int sched_check_input(const struct model_config *cfg, int index, ferry_dtype dtype, int ndims,
		      const int64_t *dims, uint64_t *elements, char *msg, size_t msglen);

/* Light backend: the model has no threads; run it with sched_run_inline(). */
bool sched_is_inline(const struct sched_model *m);

/*
 * sched_run_inline - inline models: execute every batch that is ready at
 * now_ns in the calling thread (done() runs in it too).  *next_deadline_ns
 * gets the earliest time a pending batch becomes ready (UINT64_MAX if none
 * pending; <= now_ns when work is ready but every instance is busy in other
 * pollers, which will run it).  Returns the number of requests completed.
 * On a threaded model returns 0 and sets UINT64_MAX.
 */
int sched_run_inline(struct sched_model *m, uint64_t now_ns, uint64_t *next_deadline_ns);

/*
 * sched_set_kick - kick(arg) is called (from the submitting thread, no lock
 * held) whenever an inline model receives work, so a sleeping poller can be
 * woken.  NULL clears it.
 */
void sched_set_kick(struct sched_model *m, void (*kick)(void *arg), void *arg);

/* Stop accepting; run everything queued (delays no longer wait, queue
 * timeouts still apply) and complete it; join the instance threads.  For an
 * inline model the caller's thread runs what is queued.  Idempotent. */
void sched_model_stop(struct sched_model *m);

/* Finalise the instances and the backend model and free m.  After
 * sched_model_stop(); NULL is a no-op. */
void sched_model_destroy(struct sched_model *m);

const struct model_config *sched_model_config(const struct sched_model *m);
/* The backend that serves the model (after be_registry_resolve's
 * fallback); valid as long as the registry. */
const char *sched_model_backend_name(const struct sched_model *m);
/* Instances made for the model (sum of the instance groups' counts). */
uint32_t sched_model_instance_count(const struct sched_model *m);

/*
 * Statistics, as Triton reports them: success / failure count requests
 * (accepted ones; validation refusals are not counted), inference_count the
 * batch sizes inferred, execution_count the backend executions.  The *_ns
 * durations are sums over successful requests (each request of a batch
 * counts the batch's compute time, as in Triton).
 */
struct sched_stats {
	uint64_t success, failure, inference_count, execution_count,
		 queue_ns, compute_input_ns, compute_infer_ns, compute_output_ns;
	uint64_t batch_execs[65]; /* by batch size; [64] = 64 and above */
};
void sched_model_stats(const struct sched_model *m, struct sched_stats *out);

#endif /* FERRY_SCHED_H */
