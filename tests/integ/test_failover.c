/* SPDX-License-Identifier: MIT */
/*
 * Reconnect and failover with real processes (issues 18 and 19): jobs
 * riding through a SIGKILL and a SIGTERM restart of ferryd on the same
 * socket, failover between brokers (gRPC to gRPC, local to gRPC, gRPC to
 * local), round-robin over several brokers behind one gRPC target,
 * deadlines and the bound on resubmissions, the autostarted broker as the
 * last resort, and ferryd's checks of a segment a client hands back.
 *
 * No bound here is a tight time: waits are for events (a session's
 * requests in flight, a broker's statistics), and the deadline checks
 * allow seconds of slack on a loaded machine.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"   /* reconnect and resubmit counters */
#include "proto/control.pb-c.h"
#include "proto/frame.h"
#include "shm/fshm.h"
#include "tests/integ/harness.h"

#define SEC 1000000000LL
#define MS 1000000LL

/* An identity model that holds its requests delay_us in the queue
 * (a batch of 64 never fills). */
static void slow_model(struct th_broker *b, long delay_us)
{
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "name: \"slow\"\nbackend: \"identity\"\nmax_batch_size: 64\n"
		 "input [ { name: \"IN\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
		 "output [ { name: \"OUT\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
		 "dynamic_batching { max_queue_delay_microseconds: %ld "
		 "preferred_batch_size: [ 64 ] }\n", delay_us);
	th_model(b, "slow", cfg);
}

/* A broker with simple, identity and slow; grpc_port 0: no gRPC. */
static void broker(struct th_broker *b, long delay_us, int grpc_port)
{
	char port[16];
	th_init(b);
	th_examples(b);
	slow_model(b, delay_us);
	snprintf(port, sizeof(port), "%d", grpc_port);
	th_start(b, "--grpc-port", port, "--http-port", "0", "--metrics-port", "0",
		 "--log-level", "info", NULL);
}

/* The same broker again, on the same socket and port (a restart). */
static void restart(struct th_broker *b, long delay_us, int grpc_port)
{
	char port[16];
	slow_model(b, delay_us);
	snprintf(port, sizeof(port), "%d", grpc_port);
	th_start(b, "--grpc-port", port, "--http-port", "0", "--metrics-port", "0",
		 "--log-level", "info", NULL);
}

static void kill_broker(struct th_broker *b, int sig)
{
	kill(b->pid, sig);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

static bool log_has(const struct th_broker *b, const char *what)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "grep -q '%s' %s", what, b->log);
	return system(cmd) == 0;
}

/* One add_sub request: 0, its error, or 1 for a wrong result. */
static int simple_try(ferry_client *c, ferry_model *m, int32_t seed, int64_t timeout_ns)
{
	ferry_request *r;
	int32_t *a, *b;
	int64_t dims[2] = { 1, 16 };
	int ret;
	if ((ret = ferry_request_new(m, &r)))
		return ret;
	if ((ret = ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a)) ||
	    (ret = ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b)))
		goto out;
	for (int i = 0; i < 16; i++) {
		a[i] = seed + i;
		b[i] = 3 * i - seed;
	}
	if ((ret = ferry_infer(c, r, timeout_ns)))
		goto out;
	const int32_t *o0, *o1;
	if (ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&o0, NULL) ||
	    ferry_request_output(r, "OUTPUT1", NULL, NULL, NULL, (const void **)&o1, NULL)) {
		ret = 1;
		goto out;
	}
	for (int i = 0; i < 16; i++)
		if (o0[i] != 4 * i || o1[i] != 2 * seed - 2 * i)
			ret = 1;
out:
	ferry_request_free(r);
	return ret;
}

/* A thread that infers in a loop, counting; no assertion off the main
 * thread (criterion's are the main thread's). */
struct stream {
	ferry_client *c;
	ferry_model *m;
	_Atomic int ok, bad;
	_Atomic bool stop;
	int first_bad;
	char why[256];
	pthread_t thr;
};

static void *stream_main(void *arg)
{
	struct stream *s = arg;
	for (int32_t seed = 1; !atomic_load(&s->stop); seed++) {
		int ret = simple_try(s->c, s->m, seed, 20 * SEC);
		if (ret == 0) {
			atomic_fetch_add(&s->ok, 1);
		} else if (atomic_fetch_add(&s->bad, 1) == 0) {
			s->first_bad = ret;
			snprintf(s->why, sizeof(s->why), "%s", ret == 1 ? "wrong values"
								       : ferry_last_error());
		}
	}
	return NULL;
}

static void stream_start(struct stream *s, ferry_client *c, ferry_model *m)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->m = m;
	cr_assert_eq(pthread_create(&s->thr, NULL, stream_main, s), 0);
}

/* Wait until the stream has done n more requests (20 s at most). */
static void stream_more(struct stream *s, int n)
{
	int goal = atomic_load(&s->ok) + n;
	for (int i = 0; i < 2000 && atomic_load(&s->ok) < goal; i++)
		usleep(10000);
	cr_assert_geq(atomic_load(&s->ok), goal, "the stream stalled at %d ok, %d failed (%s)",
		      atomic_load(&s->ok), atomic_load(&s->bad), s->why);
}

static void stream_stop(struct stream *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thr, NULL);
	cr_assert_eq(atomic_load(&s->bad), 0, "%d requests failed, the first with %d: %s",
		     atomic_load(&s->bad), s->first_bad, s->why);
}

/* Requests on "slow", their inputs written in place: IN[k] = 1000 i + k. */
#define NREQ 48
struct batch {
	ferry_request *r[NREQ];
	int32_t *in[NREQ];
	int n;
};

static void batch_submit(struct batch *bt, ferry_model *m, int n, uint64_t timeout_us)
{
	int64_t dims[2] = { 1, 16 };
	bt->n = n;
	for (int i = 0; i < n; i++) {
		cr_assert_eq(ferry_request_new(m, &bt->r[i]), 0);
		cr_assert_eq(ferry_request_input(bt->r[i], "IN", FERRY_TYPE_INT32, dims, 2,
						 (void **)&bt->in[i]), 0);
		for (int k = 0; k < 16; k++)
			bt->in[i][k] = 1000 * i + k;
		if (timeout_us)
			ferry_request_set_timeout_us(bt->r[i], timeout_us);
		cr_assert_eq(ferry_infer_async(m->client, bt->r[i], NULL, NULL), 0, "%s",
			     ferry_last_error());
	}
}

/* Every request completes, right (the output is its input, the input
 * unchanged where it was written). */
static void batch_check(struct batch *bt, int64_t timeout_ns)
{
	for (int i = 0; i < bt->n; i++) {
		int ret = ferry_request_wait(bt->r[i], timeout_ns);
		cr_assert_eq(ret, 0, "request %d: %d (%s)", i, ret, ferry_last_error());
		const int32_t *out;
		size_t bytes;
		cr_assert_eq(ferry_request_output(bt->r[i], "OUT", NULL, NULL, NULL,
						  (const void **)&out, &bytes), 0);
		cr_assert_eq(bytes, 64);
		for (int k = 0; k < 16; k++) {
			cr_assert_eq(bt->in[i][k], 1000 * i + k, "request %d: its input changed", i);
			cr_assert_eq(out[k], 1000 * i + k, "request %d: output %d is %d", i, k,
				     out[k]);
		}
	}
}

static void batch_free(struct batch *bt)
{
	for (int i = 0; i < bt->n; i++)
		ferry_request_free(bt->r[i]);
	bt->n = 0;
}

static void count_inflight(void *arg, const ferry_session_info *s)
{
	*(int *)arg += (int)s->inflight;
}

/* Wait until the broker at sock holds n requests in flight or more
 * (10 s). */
static void wait_inflight(const char *sock, int n)
{
	ferry_client *a;
	int have = -1;
	cr_assert_eq(ferry_connect_admin(&a, sock), 0, "%s", ferry_last_error());
	for (int i = 0; i < 1000; i++) {
		have = 0;
		cr_assert_geq(ferry_session_list(a, count_inflight, &have), 0);
		if (have >= n)
			break;
		usleep(10000);
	}
	ferry_close(a);
	cr_assert_geq(have, n, "the broker holds %d requests, not %d", have, n);
}

static void add_success(void *arg, const ferry_model_stats *s)
{
	*(uint64_t *)arg += s->success;
}

/* Requests the broker at sock completed on model name. */
static uint64_t successes(const char *sock, const char *name)
{
	ferry_client *a;
	uint64_t n = 0;
	cr_assert_eq(ferry_connect_admin(&a, sock), 0, "%s", ferry_last_error());
	cr_assert_geq(ferry_model_statistics(a, name, FERRY_LATEST, add_success, &n), 0);
	ferry_close(a);
	return n;
}

static const char *transport_of(ferry_client *c)
{
	static char name[16];
	ferry_server_status *st;
	cr_assert_eq(ferry_server_status_get(c, &st), 0, "%s", ferry_last_error());
	snprintf(name, sizeof(name), "%s", st->transport);
	ferry_server_status_free(st);
	return name;
}

/* A client of address (opts may be NULL) with the models slow and
 * simple. */
static ferry_client *client_of(const char *address, const ferry_options *o,
			       ferry_model **slow, ferry_model **simple)
{
	ferry_client *c;
	cr_assert_eq(ferry_connect(&c, address, o), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "slow", FERRY_LATEST, slow), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, simple), 0, "%s",
		     ferry_last_error());
	return c;
}

/* The client still serves (a new request on an old model handle); then
 * it and the broker end cleanly. */
static void finish(ferry_client *c, ferry_model *simple, struct th_broker *b)
{
	cr_assert_eq(simple_try(c, simple, 7, 10 * SEC), 0, "%s", ferry_last_error());
	ferry_close(c);
	cr_assert_eq(th_stop(b), 0);
	th_cleanup(b);
}

/* ---------------------------------------------------------------------- */
/* A restart on the same socket                                            */

/*
 * Many requests in flight (queued in the broker), their inputs written in
 * place before the restart; ferryd SIGKILLed and started again: each
 * completes right, read where it was written (the new broker took the
 * client's segment over), while another thread's stream of requests
 * rides through without a failure.
 */
Test(failover, sigkill_restart_loses_no_request, .timeout = 120)
{
	struct th_broker b;
	broker(&b, 10000000, 0);
	ferry_model *slow, *simple;
	ferry_client *c = client_of(b.sock, NULL, &slow, &simple);
	void *abase;
	size_t abytes;
	cr_assert_eq(ferry_client_arena(c, &abase, &abytes), 0);
	struct stream s;
	stream_start(&s, c, simple);
	stream_more(&s, 100);
	struct batch bt;
	batch_submit(&bt, slow, NREQ, 30 * SEC / 1000);
	wait_inflight(b.sock, NREQ);

	kill_broker(&b, SIGKILL);
	usleep(100000);                 /* the stream now waits for a broker */
	restart(&b, 1000, 0);

	batch_check(&bt, 30 * SEC);
	stream_more(&s, 100);
	stream_stop(&s);
	for (int i = 0; i < NREQ; i++)
		cr_assert((char *)bt.in[i] >= (char *)abase &&
			  (char *)bt.in[i] < (char *)abase + abytes, "inputs stay in the arena");
	void *abase2;
	cr_assert_eq(ferry_client_arena(c, &abase2, &abytes), 0);
	cr_assert_eq(abase2, abase, "the same arena, at the same address");
	cr_assert(log_has(&b, "taken over"), "the new broker took the segment over");
	cr_assert_eq(atomic_load(&c->reconnects), 1);
	cr_assert_geq(atomic_load(&c->resubmits), NREQ, "every queued request sent again");
	cr_assert_eq(strcmp(transport_of(c), "local"), 0);
	batch_free(&bt);
	finish(c, simple, &b);
}

/*
 * The same through a SIGTERM restart (systemctl restart): ferryd finishes
 * what it has queued and leaves; requests submitted while it is gone wait
 * for the next one.
 */
Test(failover, sigterm_restart_loses_no_request, .timeout = 120)
{
	struct th_broker b;
	broker(&b, 300000, 0);
	ferry_model *slow, *simple;
	ferry_client *c = client_of(b.sock, NULL, &slow, &simple);
	struct stream s;
	stream_start(&s, c, simple);
	stream_more(&s, 100);
	struct batch bt, stopping, gone;
	batch_submit(&bt, slow, NREQ, 30 * SEC / 1000);
	wait_inflight(b.sock, NREQ);
	kill(b.pid, SIGTERM);
	/* Submitted while it stops (it may still take some), and after it
	 * left: they wait for its successor. */
	batch_submit(&stopping, slow, 16, 30 * SEC / 1000);
	waitpid(b.pid, NULL, 0);
	b.pid = 0;
	batch_submit(&gone, slow, 16, 30 * SEC / 1000);
	restart(&b, 1000, 0);
	batch_check(&bt, 30 * SEC);
	batch_check(&stopping, 30 * SEC);
	batch_check(&gone, 30 * SEC);
	stream_more(&s, 100);
	stream_stop(&s);
	cr_assert_eq(atomic_load(&c->reconnects), 1);
	cr_assert_geq(atomic_load(&c->resubmits), 16, "those submitted while it was gone "
		      "went to the next one");
	cr_assert(log_has(&b, "taken over"), "the new broker took the segment over");
	batch_free(&bt);
	batch_free(&stopping);
	batch_free(&gone);
	finish(c, simple, &b);
}

/* A broker that does not come back: each request fails after its
 * deadline with FERRY_ETIMEDOUT (none before), one without a deadline
 * with FERRY_EPIPE after the reconnect window. */
Test(failover, deadlines_when_no_broker_comes_back, .timeout = 60)
{
	struct th_broker b;
	broker(&b, 10000000, 0);
	ferry_options o = { .struct_size = sizeof(o), .wait = FERRY_WAIT_DEFAULT,
			    .reconnect_ms = 1500 };
	ferry_model *slow, *simple;
	ferry_client *c = client_of(b.sock, &o, &slow, &simple);
	struct batch dl, nodl;
	uint64_t t0 = fshm_now_ns();
	batch_submit(&dl, slow, 8, 1000000);        /* 1 s deadlines */
	batch_submit(&nodl, slow, 4, 0);            /* none */
	wait_inflight(b.sock, 12);
	kill_broker(&b, SIGKILL);
	uint64_t lost = fshm_now_ns();
	/* Submitted while no broker answers, with a deadline of 0.5 s. */
	uint64_t t1 = fshm_now_ns();
	int ret = simple_try(c, simple, 1, 500 * MS);
	uint64_t e1 = fshm_now_ns() - t1;
	cr_assert_eq(ret, FERRY_ETIMEDOUT, "got %d (%s)", ret, ferry_last_error());
	cr_assert_geq(e1, 500 * MS - 2 * MS);
	cr_assert_lt(e1, 500 * MS + 3 * SEC, "failed %.0f ms after its deadline", e1 / 1e6 - 500);
	for (int i = 0; i < dl.n; i++) {
		ret = ferry_request_wait(dl.r[i], 10 * SEC);
		uint64_t e = fshm_now_ns() - t0;
		cr_assert_eq(ret, FERRY_ETIMEDOUT, "got %d (%s)", ret, ferry_last_error());
		cr_assert_geq(e, 1000 * MS - 2 * MS, "failed at %.0f ms, before its deadline",
			      e / 1e6);
		cr_assert_lt(e, 1000 * MS + 4 * SEC);
	}
	for (int i = 0; i < nodl.n; i++) {
		ret = ferry_request_wait(nodl.r[i], 20 * SEC);
		uint64_t e = fshm_now_ns() - lost;
		cr_assert_eq(ret, FERRY_EPIPE, "got %d (%s)", ret, ferry_last_error());
		cr_assert_geq(e, 1500 * MS - 2 * MS, "failed %.0f ms after the broker left", e / 1e6);
		cr_assert_lt(e, 1500 * MS + 4 * SEC);
	}
	batch_free(&dl);
	batch_free(&nodl);
	ferry_close(c);
	th_cleanup(&b);
}

/* Each request is sent again at most max_retries times: lost twice with
 * max_retries 1, it fails with FERRY_EPIPE. */
Test(failover, resubmissions_are_bounded, .timeout = 90)
{
	struct th_broker b;
	broker(&b, 10000000, 0);
	ferry_options o = { .struct_size = sizeof(o), .wait = FERRY_WAIT_DEFAULT,
			    .max_retries = 1 };
	ferry_model *slow, *simple;
	ferry_client *c = client_of(b.sock, &o, &slow, &simple);
	struct batch bt;
	batch_submit(&bt, slow, 1, 0);
	wait_inflight(b.sock, 1);
	kill_broker(&b, SIGKILL);
	restart(&b, 10000000, 0);
	/* The client resubmits it while it waits. */
	for (int i = 0; i < 1000 && ferry_request_wait(bt.r[0], 10 * MS) == FERRY_ETIMEDOUT; i++) {
		ferry_client *a;
		int have = 0;
		if (ferry_connect_admin(&a, b.sock) == 0) {
			ferry_session_list(a, count_inflight, &have);
			ferry_close(a);
		}
		if (have == 1)
			break;
	}
	wait_inflight(b.sock, 1);
	kill_broker(&b, SIGKILL);
	restart(&b, 1000, 0);
	uint64_t t0 = fshm_now_ns();
	int ret = ferry_request_wait(bt.r[0], 20 * SEC);
	cr_assert_eq(ret, FERRY_EPIPE, "got %d (%s)", ret, ferry_last_error());
	cr_assert(strstr(ferry_last_error(), "FERRY_RETRIES"), "%s", ferry_last_error());
	cr_assert_lt(fshm_now_ns() - t0, 10 * SEC, "failed at once, not at a timeout");
	cr_assert_eq(bt.r[0]->attempts, 2);
	batch_free(&bt);
	finish(c, simple, &b);
}

/* ---------------------------------------------------------------------- */
/* Failover between brokers                                                */

/* Two brokers over gRPC; the first, serving (its slow model holding each
 * request delay_us in the queue), gets signo with 16 slow requests
 * queued and a stream of simple ones running, settle_us after they were
 * sent: nothing fails, and the second serves the rest. */
static void grpc_to_grpc(int signo, long delay_us, useconds_t settle_us)
{
	struct th_broker a, b;
	int pa = th_free_port();
	broker(&a, delay_us, pa);
	int pb = th_free_port();
	broker(&b, 1000, pb);
	char list[128];
	snprintf(list, sizeof(list), "grpc://127.0.0.1:%d,grpc://127.0.0.1:%d", pa, pb);
	ferry_model *slow, *simple;
	ferry_client *c = client_of(list, NULL, &slow, &simple);
	struct stream s;
	stream_start(&s, c, simple);
	stream_more(&s, 100);
	if (signo == SIGKILL)
		cr_assert_geq(successes(a.sock, "simple"), 100, "the first endpoint serves");
	struct batch bt;
	batch_submit(&bt, slow, 16, 30 * SEC / 1000);
	usleep(settle_us);
	kill_broker(&a, signo);
	batch_check(&bt, 30 * SEC);
	stream_more(&s, 200);
	stream_stop(&s);
	cr_assert_geq(successes(b.sock, "simple"), 200, "the second took over");
	/* A SIGKILLed broker finished none of the slow ones: all went over. */
	if (signo == SIGKILL)
		cr_assert_eq(successes(b.sock, "slow"), 16);
	batch_free(&bt);
	th_cleanup(&a);
	finish(c, simple, &b);
}

Test(failover, grpc_to_grpc, .timeout = 120)
{
	grpc_to_grpc(SIGKILL, 10000000, 200000);
}

/* The same with a SIGTERM: the stopping broker cancels its calls, and
 * its requests go to the other one. */
Test(failover, grpc_to_grpc_sigterm, .timeout = 120)
{
	grpc_to_grpc(SIGTERM, 300000, 100000);
}

/* The node's broker first, a remote one next: the local one killed, the
 * requests queued there go over gRPC, their tensors read from the arena
 * where they were written. */
Test(failover, local_then_grpc, .timeout = 120)
{
	struct th_broker a, b;
	broker(&a, 10000000, 0);
	int pb = th_free_port();
	broker(&b, 1000, pb);
	char list[512];
	snprintf(list, sizeof(list), "unix:%s,grpc://127.0.0.1:%d", a.sock, pb);
	ferry_model *slow, *simple;
	ferry_client *c = client_of(list, NULL, &slow, &simple);
	cr_assert_eq(strcmp(transport_of(c), "local"), 0, "shared memory first");
	struct stream s;
	stream_start(&s, c, simple);
	stream_more(&s, 100);
	struct batch bt;
	batch_submit(&bt, slow, NREQ, 30 * SEC / 1000);
	wait_inflight(a.sock, NREQ);
	kill_broker(&a, SIGKILL);
	batch_check(&bt, 30 * SEC);
	stream_more(&s, 200);
	stream_stop(&s);
	cr_assert_eq(strcmp(transport_of(c), "grpc"), 0);
	cr_assert_eq(successes(b.sock, "slow"), NREQ);
	void *base;
	size_t bytes;
	cr_assert_eq(ferry_client_arena(c, &base, &bytes), 0, "the arena outlives its broker");
	const void *out;
	cr_assert_eq(ferry_request_output(bt.r[0], "OUT", NULL, NULL, NULL, &out, NULL), 0);
	cr_assert((const char *)out >= (char *)base && (const char *)out < (char *)base + bytes);
	batch_free(&bt);
	th_cleanup(&a);
	finish(c, simple, &b);
}

/* A remote broker first, the node's next: requests made on the heap (no
 * arena yet) are copied into the new session's arena. */
Test(failover, grpc_then_local, .timeout = 120)
{
	struct th_broker a, b;
	int pa = th_free_port();
	broker(&a, 10000000, pa);
	broker(&b, 1000, 0);
	char list[512];
	snprintf(list, sizeof(list), "grpc://127.0.0.1:%d,%s", pa, b.sock);
	ferry_model *slow, *simple;
	ferry_client *c = client_of(list, NULL, &slow, &simple);
	cr_assert_eq(strcmp(transport_of(c), "grpc"), 0);
	struct batch bt;
	batch_submit(&bt, slow, 16, 30 * SEC / 1000);
	usleep(200000);
	kill_broker(&a, SIGKILL);
	batch_check(&bt, 30 * SEC);
	cr_assert_eq(strcmp(transport_of(c), "local"), 0);
	cr_assert_eq(successes(b.sock, "slow"), 16);
	/* And the same requests again, over shared memory now. */
	for (int i = 0; i < bt.n; i++) {
		cr_assert_eq(ferry_request_reset(bt.r[i]), 0);
		cr_assert_eq(ferry_infer(c, bt.r[i], 10 * SEC), 0, "%s", ferry_last_error());
	}
	batch_check(&bt, 10 * SEC);
	batch_free(&bt);
	th_cleanup(&a);
	finish(c, simple, &b);
}

/*
 * Three brokers behind one gRPC target that resolves to all three
 * ("ipv4:" lists them, as a DNS name of several addresses would): gRPC's
 * round_robin spreads the requests evenly; one broker killed mid-run
 * costs no request.
 */
Test(failover, round_robin_over_three_brokers, .timeout = 120)
{
	struct th_broker b[3];
	int port[3];
	char target[256];
	size_t tl = (size_t)snprintf(target, sizeof(target), "grpc://ipv4:");
	for (int i = 0; i < 3; i++) {
		port[i] = th_free_port();
		broker(&b[i], 1000, port[i]);
		tl += (size_t)snprintf(target + tl, sizeof(target) - tl, "%s127.0.0.1:%d",
				       i ? "," : "", port[i]);
	}
	const char *eps[1] = { target };
	ferry_client *c;
	ferry_model *simple;
	cr_assert_eq(ferry_connect_list(&c, eps, 1, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &simple), 0);
	/* Until every broker has had a request: all subchannels ready. */
	for (int k = 0; k < 3000; k++) {
		cr_assert_eq(simple_try(c, simple, k, 10 * SEC), 0, "%s", ferry_last_error());
		if (successes(b[0].sock, "simple") && successes(b[1].sock, "simple") &&
		    successes(b[2].sock, "simple"))
			break;
	}
	uint64_t before[3], after[3];
	for (int i = 0; i < 3; i++)
		before[i] = successes(b[i].sock, "simple");
	for (int k = 0; k < 300; k++)
		cr_assert_eq(simple_try(c, simple, k, 10 * SEC), 0, "%s", ferry_last_error());
	for (int i = 0; i < 3; i++) {
		after[i] = successes(b[i].sock, "simple") - before[i];
		cr_log_info("broker %d: %llu of 300 requests", i, (unsigned long long)after[i]);
		cr_assert(after[i] >= 90 && after[i] <= 110, "broker %d served %llu of 300", i,
			  (unsigned long long)after[i]);
	}
	struct stream s;
	stream_start(&s, c, simple);
	stream_more(&s, 100);
	kill_broker(&b[1], SIGKILL);
	stream_more(&s, 300);
	stream_stop(&s);
	ferry_close(c);
	for (int i = 0; i < 3; i++) {
		if (i != 1)
			cr_assert_eq(th_stop(&b[i]), 0);
		th_cleanup(&b[i]);
	}
}

/* The autostarted broker is the last resort, also when it is the one
 * that went away: the client starts another, which takes its segment. */
static pid_t ferryd_on(const char *sock)
{
	DIR *d = opendir("/proc");
	pid_t found = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		char path[300], buf[4096];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		bool is_ferryd = strstr(buf, "ferryd") != NULL;
		bool on = false;
		for (ssize_t k = 0; k < n; k += (ssize_t)strlen(buf + k) + 1)
			on |= !strcmp(buf + k, sock);
		if (is_ferryd && on)
			found = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

Test(failover, autostarted_broker_is_the_last_resort, .timeout = 120)
{
	char dir[] = "/tmp/ferry-fo-XXXXXX", sock[300], ferryd[512], repo[512], cmd[600];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", dir);
	snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", getenv("FERRY_TOP_BUILDDIR"));
	snprintf(repo, sizeof(repo), "%s/examples/models", getenv("FERRY_TOP_SRCDIR"));
	setenv("FERRY_SOCKET", sock, 1);
	setenv("FERRY_AUTOSTART", repo, 1);
	setenv("FERRY_AUTOSTART_IDLE", "1", 1);
	setenv("FERRY_FERRYD", ferryd, 1);
	unsetenv("FERRY_SERVER");
	ferry_client *c;
	ferry_model *simple;
	cr_assert_eq(ferry_connect(&c, NULL, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &simple), 0);
	cr_assert_eq(simple_try(c, simple, 1, 10 * SEC), 0, "%s", ferry_last_error());
	pid_t first = ferryd_on(sock);
	cr_assert_gt(first, 0, "the private broker runs");
	kill(first, SIGKILL);     /* not our child: init reaps it */
	uint64_t t0 = fshm_now_ns();
	cr_assert_eq(simple_try(c, simple, 2, 30 * SEC), 0, "%s", ferry_last_error());
	cr_log_info("the request rode through a new private broker in %.0f ms",
		    (fshm_now_ns() - t0) / 1e6);
	pid_t second = ferryd_on(sock);
	cr_assert(second > 0 && second != first, "another private broker took over");
	cr_assert_eq(atomic_load(&c->reconnects), 1);
	snprintf(cmd, sizeof(cmd), "grep -q 'taken over' %s.log", sock);
	cr_assert_eq(system(cmd), 0, "the new private broker took the segment over");
	ferry_close(c);
	/* Idle, it leaves by itself. */
	t0 = fshm_now_ns();
	for (int i = 0; i < 500 && kill(second, 0) == 0; i++)
		usleep(10000);
	cr_log_info("idle, it left after %.0f ms", (fshm_now_ns() - t0) / 1e6);
	cr_assert_neq(kill(second, 0), 0, "the private broker left when idle");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

/* $FERRY_SERVER as a list: the local socket first by default, or where
 * "local" stands; a list that cannot be reached says why for each. */
Test(failover, ferry_server_lists, .timeout = 60)
{
	struct th_broker b;
	int pb = th_free_port();
	broker(&b, 1000, pb);
	char srv[512];
	ferry_client *c;
	setenv("FERRY_SOCKET", b.sock, 1);
	snprintf(srv, sizeof(srv), "grpc://127.0.0.1:%d", pb);
	setenv("FERRY_SERVER", srv, 1);
	cr_assert_eq(ferry_connect(&c, NULL, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(strcmp(transport_of(c), "local"), 0, "the node's broker first");
	ferry_close(c);
	snprintf(srv, sizeof(srv), "grpc://127.0.0.1:%d, local", pb);
	setenv("FERRY_SERVER", srv, 1);
	cr_assert_eq(ferry_connect(&c, NULL, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(strcmp(transport_of(c), "grpc"), 0, "the list's order");
	ferry_close(c);
	int dead = th_free_port();
	snprintf(srv, sizeof(srv), "grpc://127.0.0.1:%d,local", dead);
	setenv("FERRY_SERVER", srv, 1);
	cr_assert_eq(ferry_connect(&c, NULL, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(strcmp(transport_of(c), "local"), 0, "the first that answers");
	ferry_close(c);
	snprintf(srv, sizeof(srv), "grpc://127.0.0.1:%d,%s/nothing.sock", dead, b.dir);
	int ret = ferry_connect(&c, srv, NULL);
	cr_assert_eq(ret, FERRY_ECONNREFUSED, "got %d", ret);
	cr_assert(strstr(ferry_last_error(), "no endpoint answered") &&
		  strstr(ferry_last_error(), "nothing.sock"), "%s", ferry_last_error());
	unsetenv("FERRY_SERVER");
	unsetenv("FERRY_SOCKET");
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}

/* ---------------------------------------------------------------------- */
/* The segment a client hands back is as hostile as any                    */

static int sealed_memfd(size_t size, bool seal)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	if (seal)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
	return fd;
}

Test(adopt, refuses_what_it_would_refuse_from_any_peer)
{
	struct fshm_seg s;
	/* Not a memfd. */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fshm_seg_adopt(p[0], 1024, 1 << 30, 1, 1, &s), -ENOTSUP);
	close(p[0]);
	close(p[1]);
	/* Unsealed: the client could still shrink it (SIGBUS). */
	int fd = sealed_memfd(1 << 20, false);
	cr_assert_eq(fshm_seg_adopt(fd, 1024, 1 << 30, 1, 1, &s), -EPERM);
	close(fd);
	/* Sealed, but no header. */
	fd = sealed_memfd(1 << 20, true);
	cr_assert_eq(fshm_seg_adopt(fd, 1024, 1 << 30, 1, 1, &s), -EBADMSG);
	close(fd);
	/* A real segment with rings of different sizes. */
	struct fshm_seg_params pr = { .sq_entries = 8, .cq_entries = 16, .arena_bytes = 1 << 16,
				      .numa_node = -1 };
	struct fshm_seg made;
	cr_assert_eq(fshm_seg_create(&pr, &made), 0);
	cr_assert_eq(fshm_seg_adopt(made.fd, 1024, 1 << 30, 1, 1, &s), -EBADMSG);
	fshm_seg_close(&made);
	/* Beyond the broker's limits: rings, arena. */
	pr.cq_entries = 8;
	cr_assert_eq(fshm_seg_create(&pr, &made), 0);
	cr_assert_eq(fshm_seg_adopt(made.fd, 4, 1 << 30, 1, 1, &s), -E2BIG);
	cr_assert_eq(fshm_seg_adopt(made.fd, 1024, 4096, 1, 1, &s), -E2BIG);
	/* The fd stays the caller's after a refusal. */
	cr_assert_eq(fcntl(made.fd, F_GETFD), FD_CLOEXEC);
	fshm_seg_close(&made);
}

Test(adopt, rewrites_what_the_broker_owns_and_keeps_the_arena)
{
	struct fshm_seg_params pr = { .sq_entries = 8, .cq_entries = 8, .arena_bytes = 1 << 16,
				      .numa_node = -1, .epoch = 5, .session_id = 6 };
	struct fshm_seg made, s;
	cr_assert_eq(fshm_seg_create(&pr, &made), 0);
	uint8_t *arena = fshm_seg_arena(&made);
	for (int i = 0; i < 1 << 16; i++)
		arena[i] = (uint8_t)(i * 7);
	/* What a hostile client could leave behind. */
	struct fshm_ring_ctl *sq = (void *)((char *)made.base + made.sq.offset);
	struct fshm_ring_ctl *cq = (void *)((char *)made.base + made.cq.offset);
	atomic_store(&sq->tail, 12345);
	atomic_store(&cq->head, 777);
	atomic_store(&made.hdr->client_wake.sleeping, 1);
	atomic_store(&made.hdr->broker_wake.cpu, 99);
	made.hdr->reserved1[3] = 42;
	int fd = dup(made.fd);
	cr_assert_eq(fshm_seg_adopt(fd, 1024, 1 << 30, 77, 88, &s), 0);
	cr_assert_eq(s.hdr->epoch, 77);
	cr_assert_eq(s.hdr->session_id, 88);
	cr_assert_eq(s.sq.entries, 8);
	cr_assert_eq(atomic_load(&sq->tail), 0);
	cr_assert_eq(atomic_load(&cq->head), 0);
	cr_assert_eq(atomic_load(&made.hdr->client_wake.sleeping), 0);
	cr_assert_eq(atomic_load(&made.hdr->broker_wake.cpu), 0);
	cr_assert_eq(made.hdr->reserved1[3], 0);
	cr_assert_eq(fshm_seg_validate(made.base, made.size, NULL, NULL, NULL, NULL), 0);
	for (int i = 0; i < 1 << 16; i++)
		cr_assert_eq(arena[i], (uint8_t)(i * 7), "arena byte %d", i);
	fshm_seg_close(&s);
	fshm_seg_close(&made);
}

/* One Hello over a raw connection, with fd as its segment (-1: none):
 * the broker's answer. */
static Ferry__Control__Response *raw_hello(const char *sock, int fd, bool adopt)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	Ferry__Control__Hello h = FERRY__CONTROL__HELLO__INIT;
	h.proto_major = FRAME_PROTO_MAJOR;
	h.proto_minor = FRAME_PROTO_MINOR;
	h.client_name = "hostile";
	h.adopt_segment = adopt;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	req.seq = 1;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_HELLO;
	req.hello = &h;
	cr_assert_eq(frame_send(s, &req.base, &fd, fd >= 0, 0), 0);
	struct frame_reader rd;
	frame_reader_init(&rd);
	int ret;
	for (int i = 0; i < 1000 && (ret = frame_read(s, &rd)) == 0; i++)
		usleep(10000);
	cr_assert_eq(ret, 1);
	Ferry__Control__Response *resp = ferry__control__response__unpack(
		NULL, frame_payload_len(&rd), frame_payload(&rd));
	frame_reader_fini(&rd);
	close(s);
	cr_assert_not_null(resp);
	return resp;
}

Test(adopt, ferryd_refuses_a_bad_segment_and_serves_on, .timeout = 60)
{
	struct th_broker b;
	broker(&b, 1000, 0);
	struct { int fd; bool adopt; int code; const char *why; } cases[] = {
		{ -1, true, FERRY_EPROTO, "without a segment" },
		{ sealed_memfd(1 << 20, false), true, FERRY_EINVAL, "seal" },
		{ sealed_memfd(1 << 20, true), true, FERRY_EINVAL, "header" },
		{ sealed_memfd(1ULL << 31, true), true, FERRY_E2BIG, "limits" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Ferry__Control__Response *r = raw_hello(b.sock, cases[i].fd, cases[i].adopt);
		cr_assert_eq(r->body_case, FERRY__CONTROL__RESPONSE__BODY_ERROR, "case %zu", i);
		cr_assert_eq(r->error->code, cases[i].code, "case %zu: %d %s", i, r->error->code,
			     r->error->message);
		cr_assert(strstr(r->error->message, cases[i].why), "case %zu: %s", i,
			  r->error->message);
		ferry__control__response__free_unpacked(r, NULL);
		if (cases[i].fd >= 0)
			close(cases[i].fd);
	}
	/* An fd with a Hello that does not ask: closed, a plain session. */
	int fd = sealed_memfd(1 << 20, true);
	Ferry__Control__Response *r = raw_hello(b.sock, fd, false);
	cr_assert_eq(r->body_case, FERRY__CONTROL__RESPONSE__BODY_WELCOME);
	cr_assert(!r->welcome->segment_adopted);
	ferry__control__response__free_unpacked(r, NULL);
	close(fd);
	cr_assert(th_alive(b.pid));
	ferry_client *c;
	ferry_model *simple;
	cr_assert_eq(ferry_connect(&c, b.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &simple), 0);
	finish(c, simple, &b);
}
