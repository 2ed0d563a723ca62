/* SPDX-License-Identifier: MIT */
/*
 * Batching, queueing and instances, observed through the recording plugin
 * (libferry_rec.so, loaded with dlopen from a temporary backend directory,
 * which also covers the plugin loader and its version check).
 *
 * Timing assertions are lower bounds with generous upper bounds: the
 * machines running this are shared and slow.
 */
#include "config.h"

#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "rec.h"

#define GATE      1000000    /* execute blocks until the test opens the gate */
#define SLEEP_MS  2000000    /* id - SLEEP_MS: execute sleeps that many ms */
#define BAD_REQ   (-1)       /* per-request error */
#define BAD_BATCH (-2)       /* the whole execute fails */

struct rec_batch {
	uint32_t inst, n, total;
	int32_t ids[16];
	uint64_t start_ns;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rec_batch log[512];
	int nlog;
	int cur, maxcur;
	bool gate_open;
	int want_concurrent;
	uint64_t inst_mask;
} R = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static bool wait_until(bool (*pred)(void), uint64_t ms)
{
	/* R.mu held */
	uint64_t limit = sched_now_ns() + ms * 1000000;
	while (!pred()) {
		if (sched_now_ns() >= limit)
			return false;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 5000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&R.cv, &R.mu, &ts);
	}
	return true;
}

static bool gate_is_open(void) { return R.gate_open; }
static bool enough_concurrent(void) { return R.cur >= R.want_concurrent; }

FERRY_BE_EXPORT ferry_be_error *ferry_test_rec_execute(ferry_be_instance *inst,
						       ferry_be_request **reqs, uint32_t count)
{
	int32_t ids[16] = { 0 };
	uint32_t total = 0;
	bool gate = false, bad_batch = false;
	int sleep_ms = 0;

	for (uint32_t k = 0; k < count; k++) {
		const void *d;
		ferry_be_request_input(reqs[k], 0, NULL, NULL, NULL, NULL, &d, NULL);
		memcpy(&ids[k < 16 ? k : 15], d, 4);
		total += ferry_be_request_batch_size(reqs[k]);
		gate |= ids[k] == GATE;
		bad_batch |= ids[k] == BAD_BATCH;
		if (ids[k] > SLEEP_MS)
			sleep_ms = ids[k] - SLEEP_MS;
	}

	pthread_mutex_lock(&R.mu);
	R.cur++;
	if (R.cur > R.maxcur)
		R.maxcur = R.cur;
	R.inst_mask |= 1ull << (ferry_be_instance_index(inst) & 63);
	if (R.nlog < 512) {
		struct rec_batch *b = &R.log[R.nlog++];
		b->inst = ferry_be_instance_index(inst);
		b->n = count;
		b->total = total;
		memcpy(b->ids, ids, sizeof(ids));
		b->start_ns = sched_now_ns();
	}
	pthread_cond_broadcast(&R.cv);
	if (gate)
		wait_until(gate_is_open, 10000);
	if (R.want_concurrent)
		wait_until(enough_concurrent, 3000);
	pthread_mutex_unlock(&R.mu);

	if (sleep_ms)
		t_sleep_us((uint64_t)sleep_ms * 1000);

	for (uint32_t k = 0; k < count; k++) {
		const void *src;
		const int64_t *shape;
		int nd;
		uint64_t bytes, cap;
		void *dst;
		ferry_be_error *e;

		ferry_be_request_input(reqs[k], 0, NULL, NULL, &shape, &nd, &src, &bytes);
		if (ids[k < 16 ? k : 15] == BAD_REQ && k < 16) {
			ferry_be_request_set_error(reqs[k], ferry_be_error_new(FERRY_EINVAL,
						   "request %u is bad", k));
			continue;
		}
		if (!ferry_be_request_output_requested(reqs[k], 0))
			continue;
		e = ferry_be_request_output_buffer(reqs[k], 0, shape, nd, &dst, &cap);
		if (e) {
			ferry_be_request_set_error(reqs[k], e);
			continue;
		}
		memcpy(dst, src, bytes);
	}

	pthread_mutex_lock(&R.mu);
	R.cur--;
	pthread_cond_broadcast(&R.cv);
	pthread_mutex_unlock(&R.mu);
	return bad_batch ? ferry_be_error_new(FERRY_BACKEND, "batch refused") : NULL;
}

static void gate_open(void)
{
	pthread_mutex_lock(&R.mu);
	R.gate_open = true;
	pthread_cond_broadcast(&R.cv);
	pthread_mutex_unlock(&R.mu);
}

static int exec_count(void)
{
	pthread_mutex_lock(&R.mu);
	int n = R.nlog;
	pthread_mutex_unlock(&R.mu);
	return n;
}

/* Wait until n executions have started (the gate request is running). */
static void wait_execs(int n)
{
	uint64_t limit = sched_now_ns() + 10000000000ull;
	while (exec_count() < n) {
		cr_assert_lt(sched_now_ns(), limit, "execute never started");
		t_sleep_us(1000);
	}
}

/* ------------------------------------------------------------------ */
/* Fixture: a temporary backend directory holding the test plugins.      */

static char bedir[256];
static struct be_registry *reg;

static void link_plugin(const char *name, bool subdir)
{
	const char *top = getenv("FERRY_TOP_BUILDDIR");
	char src[512], dst[512];

	snprintf(src, sizeof(src), "%s/tests/sched/.libs/libferry_%s.so", top, name);
	if (subdir) {
		snprintf(dst, sizeof(dst), "%s/%s", bedir, name);
		cr_assert_eq(mkdir(dst, 0700), 0);
		snprintf(dst, sizeof(dst), "%s/%s/libferry_%s.so", bedir, name, name);
	} else {
		snprintf(dst, sizeof(dst), "%s/libferry_%s.so", bedir, name);
	}
	cr_assert_eq(symlink(src, dst), 0, "symlink %s", dst);
}

static void setup(void)
{
	if (!getenv("FERRY_TOP_BUILDDIR"))
		cr_skip_test("FERRY_TOP_BUILDDIR is not set (run through make check)");
	snprintf(bedir, sizeof(bedir), "/tmp/ferry-sched-XXXXXX");
	cr_assert_not_null(mkdtemp(bedir));
	link_plugin("rec", true);          /* <dir>/<name>/libferry_<name>.so */
	link_plugin("noexec", true);
	link_plugin("badmajor", false);    /* <dir>/libferry_<name>.so */
	char dirs[600];
	snprintf(dirs, sizeof(dirs), "/nonexistent:%s", bedir);
	char err[256];
	cr_assert_eq(be_registry_create(dirs, &reg), 0);
	cr_assert_eq(builtin_register(reg, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	char p[512];
	be_registry_destroy(reg);
	reg = NULL;
	if (!*bedir)
		return;
	snprintf(p, sizeof(p), "%s/rec/libferry_rec.so", bedir); unlink(p);
	snprintf(p, sizeof(p), "%s/rec", bedir); rmdir(p);
	snprintf(p, sizeof(p), "%s/noexec/libferry_noexec.so", bedir); unlink(p);
	snprintf(p, sizeof(p), "%s/noexec", bedir); rmdir(p);
	snprintf(p, sizeof(p), "%s/libferry_badmajor.so", bedir); unlink(p);
	rmdir(bedir);
}

TestSuite(sched, .init = setup, .fini = teardown, .timeout = 60);

static void rec_cfg(struct tcfg *t, int mbs)
{
	tcfg_init(t, "rec_model", "rec", mbs);
	tcfg_tensor(t, false, "INPUT0", FERRY_TYPE_INT32, 1, D(4));
	tcfg_tensor(t, true, "OUTPUT0", FERRY_TYPE_INT32, 1, D(4));
}

static void dyn(struct tcfg *t, uint64_t delay_us)
{
	t->cfg.dynbatch.enabled = true;
	t->cfg.dynbatch.max_queue_delay_us = delay_us;
}

static struct sched_model *load(struct tcfg *t)
{
	struct sched_model *m = NULL;
	char err[512] = "";
	int rc = sched_model_create(&t->cfg, NULL, 1, reg, &m, err, sizeof(err));
	cr_assert_eq(rc, 0, "load failed: %d %s", rc, err);
	return m;
}

static void unload(struct sched_model *m)
{
	sched_model_stop(m);
	sched_model_destroy(m);
}

/* A request whose every element is its id (batched models: batch rows). */
struct rreq {
	struct treq t;
	int32_t in[16 * 4], out[16 * 4];
	int batch;
};

static void rreq_init(struct rreq *q, const struct sched_model *m, int32_t id, int batch)
{
	bool batched = sched_model_config(m)->max_batch_size > 0;
	treq_init(&q->t);
	q->batch = batch;
	for (int i = 0; i < batch * 4; i++)
		q->in[i] = id;
	if (batched)
		treq_in(&q->t, 0, FERRY_TYPE_INT32, q->in, (uint64_t)batch * 16, 2, D(batch, 4));
	else
		treq_in(&q->t, 0, FERRY_TYPE_INT32, q->in, 16, 1, D(4));
	memset(q->out, 0, sizeof(q->out));
	treq_out(&q->t, 0, q->out, sizeof(q->out));
}

static void submit_ok(struct sched_model *m, struct rreq *q)
{
	char msg[256] = "";
	int rc = sched_submit(m, &q->t.r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "submit: %d %s", rc, msg);
}

static void check_ok(struct sched_model *m, struct rreq *q)
{
	treq_wait(m, &q->t);
	cr_assert_eq(q->t.status, 0, "status %d: %s", q->t.status, q->t.msg);
	cr_assert_eq(memcmp(q->in, q->out, (size_t)q->batch * 16), 0, "cross-talk");
}

/* ------------------------------------------------------------------ */

Test(sched, plugin_loads_through_dlopen)
{
	struct tcfg t;
	rec_cfg(&t, 0);
	struct sched_model *m = load(&t);
	cr_assert_not(sched_is_inline(m));
	cr_assert_eq(sched_model_instance_count(m), 1);
	struct rreq q;
	rreq_init(&q, m, 42, 1);
	submit_ok(m, &q);
	check_ok(m, &q);
	unload(m);
}

Test(sched, plugin_missing_required_symbol_is_refused)
{
	struct tcfg t;
	rec_cfg(&t, 0);
	t.cfg.backend = (char *)"noexec";
	struct sched_model *m;
	char err[512] = "";
	int rc = sched_model_create(&t.cfg, NULL, 1, reg, &m, err, sizeof(err));
	cr_assert_eq(rc, FERRY_BACKEND, "%d %s", rc, err);
	cr_assert(strstr(err, "ferry_backend_instance_execute"), "%s", err);
	cr_assert(strstr(err, "noexec/libferry_noexec.so"), "%s", err);
}

Test(sched, plugin_wrong_major_is_refused)
{
	struct tcfg t;
	rec_cfg(&t, 0);
	t.cfg.backend = (char *)"badmajor";
	struct sched_model *m;
	char err[512] = "";
	int rc = sched_model_create(&t.cfg, NULL, 1, reg, &m, err, sizeof(err));
	cr_assert_eq(rc, FERRY_VERSION, "%d %s", rc, err);
	char want[64];
	snprintf(want, sizeof(want), "needs backend API %d.0", FERRY_BACKEND_API_VERSION_MAJOR + 1);
	cr_assert(strstr(err, want), "%s", err);
	uint32_t maj, min;
	cr_assert_null(ferry_backend_api_version(&maj, &min));
	cr_assert_eq(maj, FERRY_BACKEND_API_VERSION_MAJOR);
}

Test(sched, preferred_batch_size_is_formed)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	dyn(&t, 300000);                        /* 300 ms */
	t.cfg.dynbatch.npreferred = 1;
	t.cfg.dynbatch.preferred[0] = 4;
	struct sched_model *m = load(&t);
	struct rreq q[6];
	uint64_t t0 = sched_now_ns();
	for (int i = 0; i < 6; i++) {
		rreq_init(&q[i], m, i, 1);
		submit_ok(m, &q[i]);
	}
	for (int i = 0; i < 6; i++)
		check_ok(m, &q[i]);
	cr_assert_eq(R.nlog, 2);
	cr_assert_eq(R.log[0].total, 4);
	cr_assert_eq(R.log[1].total, 2);
	/* The preferred batch went at once; the rest waited for the delay. */
	cr_assert_lt(R.log[0].start_ns - t0, 250000000ull);
	cr_assert_geq(R.log[1].start_ns - q[4].t.r.t_queued_ns, 290000000ull);
	unload(m);
}

Test(sched, max_queue_delay_is_honoured)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	dyn(&t, 100000);                        /* 100 ms */
	struct sched_model *m = load(&t);
	struct rreq q;
	rreq_init(&q, m, 1, 2);
	submit_ok(m, &q);
	check_ok(m, &q);
	uint64_t waited = q.t.r.t_exec_start_ns - q.t.r.t_queued_ns;
	cr_assert_geq(waited, 95000000ull, "waited only %llu ns", (unsigned long long)waited);
	cr_assert_lt(waited, 5000000000ull);
	cr_assert_eq(q.t.r.batch, 2);
	unload(m);
}

struct submitter {
	struct sched_model *m;
	int tid, n;
	struct rreq *q;
};

static void *submit_many(void *arg)
{
	struct submitter *s = arg;
	for (int i = 0; i < s->n; i++) {
		struct rreq *q = &s->q[i];
		/* Unique payload: thread and index, batch 1..3. */
		rreq_init(q, s->m, s->tid * 100000 + i + 1, 1 + (i + s->tid) % 3);
		for (int k = 0; k < q->batch * 4; k++)
			q->in[k] += k * 7919;
		char msg[256];
		int rc;
		while ((rc = sched_submit(s->m, &q->t.r, msg, sizeof(msg))) == FERRY_ENOSPC)
			t_sleep_us(100);
		if (rc)
			return (void *)(intptr_t)rc;
	}
	return NULL;
}

static void run_submitters(struct sched_model *m, int nthreads, int per)
{
	pthread_t th[8];
	struct submitter s[8];
	for (int i = 0; i < nthreads; i++) {
		s[i] = (struct submitter){ m, i, per, calloc((size_t)per, sizeof(struct rreq)) };
		cr_assert_eq(pthread_create(&th[i], NULL, submit_many, &s[i]), 0);
	}
	for (int i = 0; i < nthreads; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		cr_assert_null(ret, "submit failed: %d", (int)(intptr_t)ret);
	}
	for (int i = 0; i < nthreads; i++) {
		for (int j = 0; j < per; j++) {
			check_ok(m, &s[i].q[j]);
			treq_fini(&s[i].q[j].t);
		}
		free(s[i].q);
	}
	struct sched_stats st;
	sched_model_stats(m, &st);
	cr_assert_eq(st.success, (uint64_t)nthreads * per);
	cr_assert_eq(st.failure, 0);
}

Test(sched, max_batch_size_never_exceeded_and_no_cross_talk)
{
	struct tcfg t;
	rec_cfg(&t, 4);
	dyn(&t, 2000);
	tcfg_group(&t, 2, MODELCFG_KIND_CPU);
	struct sched_model *m = load(&t);
	run_submitters(m, 4, 150);
	uint64_t inferred = 0;
	for (int i = 0; i < R.nlog; i++) {
		cr_assert_leq(R.log[i].total, 4, "batch of %u", R.log[i].total);
		inferred += R.log[i].total;
	}
	struct sched_stats st;
	sched_model_stats(m, &st);
	if (R.nlog < 512)
		cr_assert_eq(st.inference_count, inferred);
	uint64_t execs = 0;
	for (int i = 0; i < 65; i++)
		execs += st.batch_execs[i];
	cr_assert_eq(execs, st.execution_count);
	cr_assert_eq(st.batch_execs[5], 0);
	unload(m);
}

Test(sched, many_submitters_inline_no_cross_talk)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	dyn(&t, 500);
	tcfg_param(&t, "light", "1");
	tcfg_group(&t, 2, MODELCFG_KIND_CPU);
	struct sched_model *m = load(&t);
	cr_assert(sched_is_inline(m));
	/* treq_wait polls inline, from this thread; submitters only submit. */
	run_submitters(m, 3, 100);
	unload(m);
}

static atomic_int done_seq;

static void order_done(struct sched_req *r, int status, const char *msg)
{
	struct treq *t = r->owner;
	t->order = atomic_fetch_add(&done_seq, 1);
	treq_done(r, status, msg);
}

Test(sched, preserve_ordering)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.preserve_ordering = true;
	tcfg_group(&t, 3, MODELCFG_KIND_CPU);
	struct sched_model *m = load(&t);
	struct rreq q[9];
	for (int i = 0; i < 9; i++) {
		/* Earlier requests run longer: without ordering they would
		 * complete last. */
		rreq_init(&q[i], m, SLEEP_MS + (i % 3 == 0 ? 60 : 1), 1);
		q[i].t.r.done = order_done;
		submit_ok(m, &q[i]);
	}
	for (int i = 0; i < 9; i++)
		check_ok(m, &q[i]);
	for (int i = 0; i < 9; i++)
		cr_assert_eq(q[i].t.order, i, "request %d completed %d-th", i, q[i].t.order);
	cr_assert_gt(R.maxcur, 1, "instances never overlapped");
	unload(m);
}

Test(sched, high_priority_overtakes_queued_low)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.priority_levels = 3;
	t.cfg.dynbatch.default_priority_level = 3;
	struct sched_model *m = load(&t);
	struct rreq g, low[3], high, mid;
	rreq_init(&g, m, GATE, 1);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 3; i++) {
		rreq_init(&low[i], m, 10 + i, 1);   /* priority 0: default level 3 */
		submit_ok(m, &low[i]);
	}
	rreq_init(&mid, m, 20, 1);
	mid.t.r.priority = 2;
	submit_ok(m, &mid);
	rreq_init(&high, m, 30, 1);
	high.t.r.priority = 1;
	submit_ok(m, &high);
	struct rreq bad;
	rreq_init(&bad, m, 40, 1);
	bad.t.r.priority = 4;
	char msg[256];
	cr_assert_eq(sched_submit(m, &bad.t.r, msg, sizeof(msg)), FERRY_EINVAL);
	gate_open();
	check_ok(m, &g);
	check_ok(m, &high);
	check_ok(m, &mid);
	for (int i = 0; i < 3; i++)
		check_ok(m, &low[i]);
	static const int32_t want[] = { GATE, 30, 20, 10, 11, 12 };
	cr_assert_eq(R.nlog, 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(R.log[i].ids[0], want[i], "exec %d ran %d", i, R.log[i].ids[0]);
	unload(m);
}

Test(sched, max_queue_size_rejects)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.default_policy.max_queue_size = 2;
	struct sched_model *m = load(&t);
	struct rreq g, q[3];
	rreq_init(&g, m, GATE, 1);
	submit_ok(m, &g);
	wait_execs(1);
	rreq_init(&q[0], m, 1, 1);
	rreq_init(&q[1], m, 2, 1);
	rreq_init(&q[2], m, 3, 1);
	submit_ok(m, &q[0]);
	submit_ok(m, &q[1]);
	char msg[256] = "";
	cr_assert_eq(sched_submit(m, &q[2].t.r, msg, sizeof(msg)), FERRY_ENOSPC);
	cr_assert(strstr(msg, "queue full"), "%s", msg);
	gate_open();
	check_ok(m, &g);
	check_ok(m, &q[0]);
	check_ok(m, &q[1]);
	cr_assert_eq(treq_ndone(&q[2].t), 0);
	unload(m);
}

Test(sched, timeout_reject)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.default_policy.default_timeout_us = 20000;
	t.cfg.dynbatch.default_policy.timeout_action = MODELCFG_TIMEOUT_REJECT;
	struct sched_model *m = load(&t);
	struct rreq g, q;
	rreq_init(&g, m, GATE, 1);
	submit_ok(m, &g);
	wait_execs(1);
	rreq_init(&q, m, 5, 1);
	submit_ok(m, &q);
	t_sleep_us(60000);
	gate_open();
	check_ok(m, &g);
	treq_wait(m, &q.t);
	cr_assert_eq(q.t.status, FERRY_ETIMEDOUT, "%d %s", q.t.status, q.t.msg);
	cr_assert(strstr(q.t.msg, "timed out"), "%s", q.t.msg);
	cr_assert_eq(R.nlog, 1, "the timed-out request ran");
	struct sched_stats st;
	sched_model_stats(m, &st);
	cr_assert_eq(st.failure, 1);
	cr_assert_eq(st.success, 1);
	unload(m);
}

Test(sched, timeout_delay_lets_others_go_first)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.default_policy.default_timeout_us = 20000;
	t.cfg.dynbatch.default_policy.timeout_action = MODELCFG_TIMEOUT_DELAY;
	struct sched_model *m = load(&t);
	struct rreq g, a, b;
	rreq_init(&g, m, GATE, 1);
	submit_ok(m, &g);
	wait_execs(1);
	rreq_init(&a, m, 1, 1);
	submit_ok(m, &a);
	t_sleep_us(60000);                 /* a's timeout passes */
	rreq_init(&b, m, 2, 1);
	submit_ok(m, &b);
	gate_open();
	check_ok(m, &g);
	check_ok(m, &a);                   /* delayed, not rejected */
	check_ok(m, &b);
	cr_assert_eq(R.nlog, 3);
	cr_assert_eq(R.log[1].ids[0], 2, "the fresh request should run first");
	cr_assert_eq(R.log[2].ids[0], 1);
	unload(m);
}

static void timeout_override_case(bool allow)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.default_policy.allow_timeout_override = allow;
	struct sched_model *m = load(&t);
	struct rreq g, a, b;
	rreq_init(&g, m, GATE, 1);
	submit_ok(m, &g);
	wait_execs(1);
	rreq_init(&a, m, 1, 1);
	a.t.r.timeout_us = 20000;
	submit_ok(m, &a);
	rreq_init(&b, m, 2, 1);
	submit_ok(m, &b);
	t_sleep_us(60000);
	gate_open();
	check_ok(m, &g);
	treq_wait(m, &a.t);
	cr_assert_eq(a.t.status, allow ? FERRY_ETIMEDOUT : 0, "%d %s", a.t.status, a.t.msg);
	check_ok(m, &b);
	unload(m);
}

Test(sched, per_request_timeout_override) { timeout_override_case(true); }
Test(sched, per_request_timeout_ignored_without_override) { timeout_override_case(false); }

Test(sched, no_dynamic_batching_runs_one_at_a_time_in_order)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	struct sched_model *m = load(&t);
	struct rreq g, q[10];
	rreq_init(&g, m, GATE, 1);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 10; i++) {
		rreq_init(&q[i], m, i + 1, 1 + i % 3);
		submit_ok(m, &q[i]);
	}
	gate_open();
	for (int i = 0; i < 10; i++)
		check_ok(m, &q[i]);
	cr_assert_eq(R.nlog, 11);
	for (int i = 1; i < 11; i++) {
		cr_assert_eq(R.log[i].n, 1);
		cr_assert_eq(R.log[i].ids[0], i);
		cr_assert_eq(R.log[i].total, 1 + (i - 1) % 3);
	}
	cr_assert_eq(R.maxcur, 1);
	unload(m);
}

Test(sched, instance_count_gives_concurrent_executions)
{
	struct tcfg t;
	rec_cfg(&t, 0);
	tcfg_group(&t, 2, MODELCFG_KIND_CPU);
	tcfg_group(&t, 1, MODELCFG_KIND_AUTO);
	struct sched_model *m = load(&t);
	cr_assert_eq(sched_model_instance_count(m), 3);
	R.want_concurrent = 3;
	struct rreq q[3];
	for (int i = 0; i < 3; i++) {
		rreq_init(&q[i], m, i + 1, 1);
		submit_ok(m, &q[i]);
	}
	for (int i = 0; i < 3; i++)
		check_ok(m, &q[i]);
	cr_assert_eq(R.maxcur, 3);
	cr_assert_eq(R.inst_mask, 7);
	unload(m);
}

Test(sched, per_request_error_fails_only_that_request)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	dyn(&t, 1000000);
	t.cfg.dynbatch.npreferred = 1;
	t.cfg.dynbatch.preferred[0] = 3;
	struct sched_model *m = load(&t);
	struct rreq q[3];
	rreq_init(&q[0], m, 1, 1);
	rreq_init(&q[1], m, BAD_REQ, 1);
	rreq_init(&q[2], m, 3, 1);
	for (int i = 0; i < 3; i++)
		submit_ok(m, &q[i]);
	check_ok(m, &q[0]);
	check_ok(m, &q[2]);
	treq_wait(m, &q[1].t);
	cr_assert_eq(q[1].t.status, FERRY_EINVAL);
	cr_assert_str_eq(q[1].t.msg, "request 1 is bad");
	cr_assert_eq(R.nlog, 1);
	struct sched_stats st;
	sched_model_stats(m, &st);
	cr_assert_eq(st.success, 2);
	cr_assert_eq(st.failure, 1);
	cr_assert_eq(st.batch_execs[3], 1);
	unload(m);
}

Test(sched, execute_error_fails_the_batch)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	dyn(&t, 1000000);
	t.cfg.dynbatch.npreferred = 1;
	t.cfg.dynbatch.preferred[0] = 2;
	struct sched_model *m = load(&t);
	struct rreq q[2];
	rreq_init(&q[0], m, 1, 1);
	rreq_init(&q[1], m, BAD_BATCH, 1);
	for (int i = 0; i < 2; i++)
		submit_ok(m, &q[i]);
	for (int i = 0; i < 2; i++) {
		treq_wait(m, &q[i].t);
		cr_assert_eq(q[i].t.status, FERRY_BACKEND);
		cr_assert_str_eq(q[i].t.msg, "batch refused");
	}
	unload(m);
}

static void *open_gate_later(void *arg)
{
	t_sleep_us(50000);
	gate_open();
	return NULL;
}

Test(sched, stop_drains_queued_work)
{
	struct tcfg t;
	rec_cfg(&t, 4);
	dyn(&t, 10000000);                 /* 10 s: only the stop releases them */
	struct sched_model *m = load(&t);
	struct rreq g, q[5];
	rreq_init(&g, m, GATE, 4);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 5; i++) {
		rreq_init(&q[i], m, i + 1, 1);
		submit_ok(m, &q[i]);
	}
	pthread_t th;
	pthread_create(&th, NULL, open_gate_later, NULL);
	uint64_t t0 = sched_now_ns();
	sched_model_stop(m);
	cr_assert_lt(sched_now_ns() - t0, 5000000000ull, "stop waited for the delay");
	pthread_join(th, NULL);
	check_ok(m, &g);
	for (int i = 0; i < 5; i++)
		check_ok(m, &q[i]);
	struct rreq late;
	rreq_init(&late, m, 9, 1);
	char msg[256];
	cr_assert_eq(sched_submit(m, &late.t.r, msg, sizeof(msg)), FERRY_UNAVAILABLE);
	sched_model_destroy(m);
}

static atomic_int kicks;
static void kick(void *arg)
{
	atomic_fetch_add(&kicks, 1);
}

Test(sched, inline_runs_with_deadlines)
{
	struct tcfg t;
	rec_cfg(&t, 4);
	dyn(&t, 50000);                    /* 50 ms */
	tcfg_param(&t, "light", "1");
	struct sched_model *m = load(&t);
	cr_assert(sched_is_inline(m));
	sched_set_kick(m, kick, NULL);

	struct rreq a;
	rreq_init(&a, m, 1, 1);
	submit_ok(m, &a);
	cr_assert_eq(atomic_load(&kicks), 1);
	uint64_t now = sched_now_ns(), next;
	cr_assert_eq(sched_run_inline(m, now, &next), 0);
	cr_assert_eq(next, a.t.r.t_queued_ns + 50000000ull);
	cr_assert_eq(sched_run_inline(m, next - 1, &next), 0);
	cr_assert_eq(sched_run_inline(m, next, &next), 1);
	cr_assert_eq(next, UINT64_MAX);
	check_ok(m, &a);

	/* A full batch is ready at once. */
	struct rreq b[4];
	for (int i = 0; i < 4; i++) {
		rreq_init(&b[i], m, 10 + i, 1);
		submit_ok(m, &b[i]);
	}
	cr_assert_eq(sched_run_inline(m, sched_now_ns(), &next), 4);
	cr_assert_eq(next, UINT64_MAX);
	for (int i = 0; i < 4; i++)
		check_ok(m, &b[i]);
	cr_assert_eq(R.log[1].n, 4);

	/* Stop runs what is left in the caller. */
	struct rreq c;
	rreq_init(&c, m, 20, 1);
	submit_ok(m, &c);
	sched_model_stop(m);
	check_ok(m, &c);
	sched_model_destroy(m);
}

/* ------------------------------------------------------------------ */
/* Fair share between the clients (owners) of one model                 */

/* done() for a request whose owner is a client key: the treq is the
 * request itself (its first member), and treq_done finds it by owner. */
static void fair_done(struct sched_req *r, int status, const char *msg)
{
	r->owner = r;
	treq_done(r, status, msg);
}

static void fair_req(struct rreq *q, const struct sched_model *m, int32_t id, int batch,
		     uintptr_t client)
{
	rreq_init(q, m, id, batch);
	q->t.r.owner = (void *)client;
	q->t.r.done = fair_done;
}

/* Execution `first`..: the ids in order (one request an execution). */
static void expect_order(int first, const int32_t *want, int n)
{
	cr_assert_eq(R.nlog, first + n, "%d executions, want %d", R.nlog, first + n);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(R.log[first + i].n, 1);
		cr_assert_eq(R.log[first + i].ids[0], want[i], "execution %d ran %d, want %d",
			     first + i, R.log[first + i].ids[0], want[i]);
	}
}

/*
 * A floods the model with 12 requests, then B queues 3 and C 1, while
 * the one instance is busy: they take turns, A's first, B's, C's, A's
 * second, B's second ..., and A has the rest.  Not A's 12 and then the
 * others, as one FIFO would run them.
 */
Test(sched, fair_share_interleaves_the_clients_of_a_model)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	struct sched_model *m = load(&t);
	struct rreq g, a[12], b[3], c;
	fair_req(&g, m, GATE, 1, 9);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 12; i++) {
		fair_req(&a[i], m, 100 + i, 1, 1);
		submit_ok(m, &a[i]);
	}
	for (int i = 0; i < 3; i++) {
		fair_req(&b[i], m, 200 + i, 1, 2);
		submit_ok(m, &b[i]);
	}
	fair_req(&c, m, 300, 1, 3);
	submit_ok(m, &c);
	gate_open();
	for (int i = 0; i < 12; i++)
		check_ok(m, &a[i]);
	for (int i = 0; i < 3; i++)
		check_ok(m, &b[i]);
	check_ok(m, &c);
	static const int32_t want[] = { 100, 200, 300, 101, 201, 102, 202,
					103, 104, 105, 106, 107, 108, 109, 110, 111 };
	expect_order(1, want, 16);
	unload(m);
}

/* Shares count rows: A's requests of batch 4 take four of B's turns of
 * batch 1 each. */
Test(sched, fair_share_counts_rows_not_requests)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	struct sched_model *m = load(&t);
	struct rreq g, a[3], b[6];
	fair_req(&g, m, GATE, 1, 9);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 3; i++) {
		fair_req(&a[i], m, 100 + i, 4, 1);
		submit_ok(m, &a[i]);
	}
	for (int i = 0; i < 6; i++) {
		fair_req(&b[i], m, 200 + i, 1, 2);
		submit_ok(m, &b[i]);
	}
	gate_open();
	for (int i = 0; i < 3; i++)
		check_ok(m, &a[i]);
	for (int i = 0; i < 6; i++)
		check_ok(m, &b[i]);
	static const int32_t want[] = { 100, 200, 201, 202, 203, 101, 204, 205, 102 };
	expect_order(1, want, 9);
	unload(m);
}

/* Priority levels come first; inside a level the clients share. */
Test(sched, fair_share_inside_priority_levels)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.priority_levels = 2;
	t.cfg.dynbatch.default_priority_level = 2;
	struct sched_model *m = load(&t);
	struct rreq g, a[4], b, h[2];
	fair_req(&g, m, GATE, 1, 9);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 4; i++) {
		fair_req(&a[i], m, 100 + i, 1, 1);       /* low priority, a backlog */
		submit_ok(m, &a[i]);
	}
	fair_req(&b, m, 200, 1, 2);                      /* low priority, one */
	submit_ok(m, &b);
	for (int i = 0; i < 2; i++) {
		fair_req(&h[i], m, 300 + i, 1, 1);       /* A again, high priority */
		h[i].t.r.priority = 1;
		submit_ok(m, &h[i]);
	}
	gate_open();
	for (int i = 0; i < 4; i++)
		check_ok(m, &a[i]);
	check_ok(m, &b);
	for (int i = 0; i < 2; i++)
		check_ok(m, &h[i]);
	static const int32_t want[] = { 300, 301, 100, 200, 101, 102, 103 };
	expect_order(1, want, 7);
	unload(m);
}

/* The dynamic batcher fills each batch in fair order. */
Test(sched, fair_share_fills_dynamic_batches_in_turn)
{
	struct tcfg t;
	rec_cfg(&t, 4);
	dyn(&t, 0);
	struct sched_model *m = load(&t);
	struct rreq g, a[8], b[2];
	fair_req(&g, m, GATE, 1, 9);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 8; i++) {
		fair_req(&a[i], m, 100 + i, 1, 1);
		submit_ok(m, &a[i]);
	}
	for (int i = 0; i < 2; i++) {
		fair_req(&b[i], m, 200 + i, 1, 2);
		submit_ok(m, &b[i]);
	}
	gate_open();
	for (int i = 0; i < 8; i++)
		check_ok(m, &a[i]);
	for (int i = 0; i < 2; i++)
		check_ok(m, &b[i]);
	static const int32_t want[3][4] = { { 100, 200, 101, 201 }, { 102, 103, 104, 105 },
					    { 106, 107 } };
	static const uint32_t n[3] = { 4, 4, 2 };
	cr_assert_eq(R.nlog, 4);
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(R.log[1 + k].n, n[k], "batch %d of %u", k, R.log[1 + k].n);
		for (uint32_t i = 0; i < n[k]; i++)
			cr_assert_eq(R.log[1 + k].ids[i], want[k][i], "batch %d [%u]: %d", k, i,
				     R.log[1 + k].ids[i]);
	}
	unload(m);
}

/* A batch waiting out its queue delay puts back what it scanned: the
 * order after the wait is the same fair order. */
Test(sched, fair_share_survives_a_batch_that_waits_for_its_delay)
{
	struct tcfg t;
	rec_cfg(&t, 8);
	dyn(&t, 50000);                 /* 50 ms, preferred 4 */
	t.cfg.dynbatch.npreferred = 1;
	t.cfg.dynbatch.preferred[0] = 4;
	struct sched_model *m = load(&t);
	struct rreq a[2], b[1];
	fair_req(&a[0], m, 100, 1, 1);
	submit_ok(m, &a[0]);
	fair_req(&a[1], m, 101, 1, 1);
	submit_ok(m, &a[1]);
	fair_req(&b[0], m, 200, 1, 2);
	submit_ok(m, &b[0]);
	for (int i = 0; i < 2; i++)
		check_ok(m, &a[i]);
	check_ok(m, &b[0]);
	cr_assert_eq(R.nlog, 1, "one batch after the delay");
	cr_assert_eq(R.log[0].n, 3);
	static const int32_t want[] = { 100, 200, 101 };
	for (int i = 0; i < 3; i++)
		cr_assert_eq(R.log[0].ids[i], want[i], "[%d]: %d", i, R.log[0].ids[i]);
	unload(m);
}

/* preserve_ordering answers in arrival order: such a model keeps one
 * FIFO, whoever the clients are. */
Test(sched, preserve_ordering_keeps_arrival_order_across_clients)
{
	struct tcfg t;
	rec_cfg(&t, 1);
	dyn(&t, 0);
	t.cfg.dynbatch.preserve_ordering = true;
	struct sched_model *m = load(&t);
	struct rreq g, a[4], b;
	fair_req(&g, m, GATE, 1, 9);
	submit_ok(m, &g);
	wait_execs(1);
	for (int i = 0; i < 4; i++) {
		fair_req(&a[i], m, 100 + i, 1, 1);
		submit_ok(m, &a[i]);
	}
	fair_req(&b, m, 200, 1, 2);
	submit_ok(m, &b);
	gate_open();
	for (int i = 0; i < 4; i++)
		check_ok(m, &a[i]);
	check_ok(m, &b);
	static const int32_t want[] = { 100, 101, 102, 103, 200 };
	expect_order(1, want, 5);
	unload(m);
}

/* Hundreds of clients (the flow table grows, flows are reused from the
 * pool): one request each runs in arrival order; two each, every
 * client's first before anyone's second. */
Test(sched, fair_share_with_many_clients)
{
	enum { NC = 150 };       /* R.log holds 512 executions */
	struct tcfg t;
	rec_cfg(&t, 8);
	struct sched_model *m = load(&t);
	static struct rreq q[2 * NC];
	struct rreq g;
	for (int round = 0; round < 2; round++) {
		int base = R.nlog;
		fair_req(&g, m, GATE, 1, 100000);
		R.gate_open = false;
		submit_ok(m, &g);
		wait_execs(base + 1);
		int per = round + 1, n = 0;
		for (int c = 0; c < NC; c++)
			for (int k = 0; k < per; k++, n++) {
				fair_req(&q[n], m, c * 10 + k, 1, (uintptr_t)(1000 + c));
				submit_ok(m, &q[n]);
			}
		gate_open();
		check_ok(m, &g);
		for (int i = 0; i < n; i++)
			check_ok(m, &q[i]);
		cr_assert_eq(R.nlog, base + 1 + n);
		for (int i = 0; i < n; i++) {
			/* Round 1: c*10 in c order; round 2: every c*10 + 0,
			 * then every c*10 + 1. */
			int want = per == 1 ? i * 10 : (i % NC) * 10 + i / NC;
			cr_assert_eq(R.log[base + 1 + i].ids[0], want, "round %d, execution %d: %d",
				     round, i, R.log[base + 1 + i].ids[0]);
		}
	}
	unload(m);
}
