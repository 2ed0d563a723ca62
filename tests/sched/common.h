/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the scheduler tests: model configs built in C (the
 * config.pbtxt parser is another part), requests, and waiting for done().
 */
#ifndef FERRY_TESTS_SCHED_COMMON_H
#define FERRY_TESTS_SCHED_COMMON_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include <ferry/backend.h>
#include <ferry/errors.h>

#include "broker/backends/builtin.h"
#include "broker/sched/be_host.h"
#include "broker/config/modelcfg.h"
#include "broker/sched/sched.h"

#define T_MAX 8

struct tcfg {
	struct model_config cfg;
	struct modelcfg_tensor in[T_MAX], out[T_MAX];
	struct modelcfg_instance_group grp[4];
	struct modelcfg_param params[8];
	struct modelcfg_prio_policy prio[4];
};

static inline void tcfg_init(struct tcfg *t, const char *name, const char *backend, int mbs)
{
	memset(t, 0, sizeof(*t));
	t->cfg.name = (char *)name;
	t->cfg.backend = (char *)backend;
	t->cfg.platform = (char *)"";
	t->cfg.max_batch_size = mbs;
	t->cfg.inputs = t->in;
	t->cfg.outputs = t->out;
	t->cfg.groups = t->grp;
	t->cfg.params = t->params;
	t->cfg.dynbatch.prio_policies = t->prio;
}

/* dims: ndims values, -1 for variable; use D(...) for a literal list. */
#define D(...) ((const int64_t[]){ __VA_ARGS__ })
static inline void tcfg_tensor(struct tcfg *t, bool output, const char *name, ferry_dtype dt,
			       int ndims, const int64_t *dims)
{
	struct modelcfg_tensor *x = output ? &t->out[t->cfg.noutputs++] : &t->in[t->cfg.ninputs++];

	x->name = (char *)name;
	x->dtype = dt;
	x->ndims = ndims;
	memcpy(x->dims, dims, (size_t)ndims * sizeof(int64_t));
}

static inline void tcfg_group(struct tcfg *t, int count, enum modelcfg_kind kind)
{
	struct modelcfg_instance_group *g = &t->grp[t->cfg.ngroups++];
	g->name = (char *)"group";
	g->count = count;
	g->kind = kind;
}

static inline void tcfg_param(struct tcfg *t, const char *k, const char *v)
{
	t->params[t->cfg.nparams].key = (char *)k;
	t->params[t->cfg.nparams++].value = (char *)v;
}

/* A request with its own tensors and a completion flag. */
struct treq {
	struct sched_req r;
	struct sched_tensor in[T_MAX], out[T_MAX];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ndone;
	int status;
	char msg[512];
	uint64_t done_ns;
	int order;          /* completion order, when the test counts */
};

static inline void treq_done(struct sched_req *r, int status, const char *msg)
{
	struct treq *t = r->owner;

	pthread_mutex_lock(&t->mu);
	t->status = status;
	snprintf(t->msg, sizeof(t->msg), "%s", msg ? msg : "");
	t->done_ns = sched_now_ns();
	t->ndone++;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static inline void treq_init(struct treq *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->r.in = t->in;
	t->r.out = t->out;
	t->r.done = treq_done;
	t->r.owner = t;
	t->status = 1;
}

static inline void treq_in(struct treq *t, int i, ferry_dtype dt, void *data, uint64_t bytes,
			   int ndims, const int64_t *dims)
{
	t->in[i].present = true;
	t->in[i].dtype = dt;
	t->in[i].data = data;
	t->in[i].bytes = bytes;
	t->in[i].ndims = ndims;
	memcpy(t->in[i].dims, dims, (size_t)ndims * sizeof(int64_t));
}

static inline void treq_out(struct treq *t, int i, void *data, uint64_t cap)
{
	t->out[i].present = true;
	t->out[i].data = data;
	t->out[i].bytes = cap;
}

static inline int treq_ndone(struct treq *t)
{
	pthread_mutex_lock(&t->mu);
	int n = t->ndone;
	pthread_mutex_unlock(&t->mu);
	return n;
}

static inline void t_sleep_us(uint64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* Wait for done(), running the model inline when it has no threads.
 * Fails the test after 10 s. */
static inline void treq_wait(struct sched_model *m, struct treq *t)
{
	uint64_t limit = sched_now_ns() + 10000000000ull;

	while (!treq_ndone(t)) {
		cr_assert_lt(sched_now_ns(), limit, "request never completed");
		if (sched_is_inline(m)) {
			uint64_t next;
			sched_run_inline(m, sched_now_ns(), &next);
		}
		pthread_mutex_lock(&t->mu);
		if (!t->ndone && !sched_is_inline(m)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&t->cv, &t->mu, &ts);
		}
		pthread_mutex_unlock(&t->mu);
	}
	cr_assert_eq(treq_ndone(t), 1, "done() called %d times", treq_ndone(t));
}

static inline void treq_fini(struct treq *t)
{
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
}

#endif
