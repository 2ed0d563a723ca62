/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of the local path: a real ferryd, real client
 * processes and threads, libferry over shared memory.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "shm/fshm.h"
#include "tests/integ/harness.h"

#define SEC 1000000000LL

static struct th_broker B;

static const char *IDENT_BATCH =
	"name: \"ident_batch\"\nbackend: \"identity\"\nmax_batch_size: 32\n"
	"input [ { name: \"IN\" data_type: TYPE_INT64 dims: [ 4 ] } ]\n"
	"output [ { name: \"OUT\" data_type: TYPE_INT64 dims: [ 4 ] } ]\n"
	"dynamic_batching { max_queue_delay_microseconds: 200 preferred_batch_size: [ 8, 16 ] }\n";

static const char *const DTYPES[] = {
	"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
	"INT32", "INT64", "FP16", "FP32", "FP64", "BF16",
};

/* One identity model per dtype (id_FP32 ...) and one for BYTES. */
static void dtype_models(void)
{
	char name[32], cfg[512];
	for (size_t i = 0; i < sizeof(DTYPES) / sizeof(DTYPES[0]); i++) {
		snprintf(name, sizeof(name), "id_%s", DTYPES[i]);
		snprintf(cfg, sizeof(cfg),
			 "name: \"%s\" backend: \"identity\" max_batch_size: 4\n"
			 "input [ { name: \"IN\" data_type: TYPE_%s dims: [ 2, 3 ] } ]\n"
			 "output [ { name: \"OUT\" data_type: TYPE_%s dims: [ 2, 3 ] } ]\n",
			 name, DTYPES[i], DTYPES[i]);
		th_model(&B, name, cfg);
	}
	th_model(&B, "id_BYTES",
		 "name: \"id_BYTES\" backend: \"identity\" max_batch_size: 4\n"
		 "input [ { name: \"IN\" data_type: TYPE_STRING dims: [ -1 ] } ]\n"
		 "output [ { name: \"OUT\" data_type: TYPE_STRING dims: [ -1 ] } ]\n");
}

static void start_default(void)
{
	th_init(&B);
	th_examples(&B);
	th_model(&B, "ident_batch", IDENT_BATCH);
	th_model(&B, "slow_batch",
		 "name: \"slow_batch\"\nbackend: \"identity\"\nmax_batch_size: 32\n"
		 "input [ { name: \"IN\" data_type: TYPE_INT64 dims: [ 4 ] } ]\n"
		 "output [ { name: \"OUT\" data_type: TYPE_INT64 dims: [ 4 ] } ]\n"
		 "dynamic_batching { max_queue_delay_microseconds: 10000000 preferred_batch_size: [ 32 ] }\n");
	dtype_models();
	th_start(&B, "--log-level", "info", NULL);
}

static void stop_default(void)
{
	int st = th_stop(&B);
	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

static ferry_client *conn(void)
{
	ferry_client *c;
	int ret = ferry_connect(&c, B.sock, NULL);
	cr_assert_eq(ret, 0, "connect: %s", ferry_last_error());
	return c;
}

/* One add_sub request with a+b, a-b checked; returns 0 or the error. */
TestSuite(local, .init = start_default, .fini = stop_default, .timeout = 120);

Test(local, model_metadata)
{
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0, "%s", ferry_last_error());
	cr_assert_str_eq(ferry_model_name(m), "simple");
	cr_assert_eq(ferry_model_version(m), 1);
	cr_assert_eq(ferry_model_max_batch_size(m), 8);
	cr_assert_eq(ferry_model_ninputs(m), 2);
	cr_assert_eq(ferry_model_noutputs(m), 2);
	const char *name;
	ferry_dtype dt;
	const int64_t *dims;
	int nd;
	cr_assert_eq(ferry_model_output(m, 1, &name, &dt, &dims, &nd), 0);
	cr_assert_str_eq(name, "OUTPUT1");
	cr_assert_eq(dt, FERRY_TYPE_INT32);
	cr_assert_eq(nd, 1);
	cr_assert_eq(dims[0], 16);
	ferry_model *again;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &again), 0);
	cr_assert_eq(again, m, "the same model object is returned twice");
	ferry_close(c);
}

Test(local, unknown_model_and_version)
{
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "nope", FERRY_LATEST, &m), FERRY_ENOENT);
	cr_assert(strstr(ferry_last_error(), "nope"), "message names the model: %s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", 7, &m), FERRY_ENOENT);
	cr_assert(strstr(ferry_last_error(), "version 7"), "%s", ferry_last_error());
	ferry_close(c);
}

Test(local, add_sub_int32)
{
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(th_simple_once(c, m, i * 7), 0, "%s", ferry_last_error());
	ferry_close(c);
}

Test(local, wrong_dtype_is_refused_with_a_message)
{
	ferry_client *c = conn();
	ferry_model *m;
	ferry_request *r;
	float *a;
	int32_t *b;
	int64_t dims[2] = { 1, 16 };
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, dims, 2, (void **)&a), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b), 0);
	int ret = ferry_infer(c, r, 10 * SEC);
	cr_assert_lt(ret, 0);
	cr_assert(strstr(ferry_last_error(), "INPUT0"), "message names the input: %s", ferry_last_error());
	ferry_request_free(r);
	/* The session still works. */
	cr_assert_eq(th_simple_once(c, m, 3), 0);
	ferry_close(c);
}

Test(local, wrong_shape_is_refused)
{
	ferry_client *c = conn();
	ferry_model *m;
	ferry_request *r;
	int32_t *a, *b;
	int64_t dims[2] = { 1, 15 };
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b), 0);
	cr_assert_lt(ferry_infer(c, r, 10 * SEC), 0);
	ferry_request_free(r);
	int64_t big[2] = { 9, 16 }; /* over max_batch_size 8 */
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, big, 2, (void **)&a), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, big, 2, (void **)&b), 0);
	cr_assert_lt(ferry_infer(c, r, 10 * SEC), 0);
	ferry_request_free(r);
	ferry_close(c);
}

Test(local, identity_fp32_batch_of_64)
{
	ferry_client *c = conn();
	ferry_model *m;
	ferry_request *r;
	float *in;
	int64_t dims[2] = { 64, 256 };
	cr_assert_eq(ferry_model_get(c, "identity", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, dims, 2, (void **)&in), 0);
	for (int i = 0; i < 64 * 256; i++)
		in[i] = (float)i * 0.5f;
	cr_assert_eq(ferry_infer(c, r, 10 * SEC), 0, "%s", ferry_last_error());
	const float *out;
	const int64_t *od;
	int nd;
	size_t bytes;
	ferry_dtype dt;
	cr_assert_eq(ferry_request_output(r, "OUTPUT0", &dt, &od, &nd, (const void **)&out, &bytes), 0);
	cr_assert_eq(dt, FERRY_TYPE_FP32);
	cr_assert_eq(nd, 2);
	cr_assert_eq(od[0], 64);
	cr_assert_eq(od[1], 256);
	cr_assert_eq(bytes, 64 * 256 * 4);
	cr_assert_eq(memcmp(in, out, bytes), 0);
	ferry_request_free(r);
	ferry_close(c);
}

struct async_ctx {
	int completed;
	int errors;
};

static void on_done(ferry_request *r, int status, void *arg)
{
	struct async_ctx *a = arg;
	a->completed++;
	if (status)
		a->errors++;
}

Test(local, async_64_in_flight_with_callbacks)
{
	ferry_client *c = conn();
	ferry_model *m;
	ferry_request *rs[64];
	struct async_ctx ctx = { 0 };
	int64_t dims[2] = { 1, 4 };
	cr_assert_eq(ferry_model_get(c, "ident_batch", FERRY_LATEST, &m), 0);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 64; i++) {
			int64_t *in;
			if (round == 0)
				cr_assert_eq(ferry_request_new(m, &rs[i]), 0);
			else
				cr_assert_eq(ferry_request_reset(rs[i]), 0);
			cr_assert_eq(ferry_request_input(rs[i], "IN", FERRY_TYPE_INT64, dims, 2, (void **)&in), 0);
			for (int k = 0; k < 4; k++)
				in[k] = (int64_t)round << 32 | (int64_t)i << 8 | k;
			cr_assert_eq(ferry_infer_async(c, rs[i], on_done, &ctx), 0, "%s", ferry_last_error());
		}
		int want = (round + 1) * 64;
		while (ctx.completed < want) {
			int n = ferry_poll(c, 1, 10 * SEC);
			cr_assert_gt(n, 0, "poll: %s", ferry_last_error());
		}
		for (int i = 0; i < 64; i++) {
			const int64_t *out;
			cr_assert_eq(ferry_request_output(rs[i], "OUT", NULL, NULL, NULL, (const void **)&out, NULL), 0);
			for (int k = 0; k < 4; k++)
				cr_assert_eq(out[k], (int64_t)round << 32 | (int64_t)i << 8 | k);
		}
	}
	cr_assert_eq(ctx.errors, 0);
	for (int i = 0; i < 64; i++)
		ferry_request_free(rs[i]);
	ferry_close(c);
}

struct thr_arg {
	ferry_client *c;
	ferry_model *m;
	int id;
	int bad;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;
	int64_t dims[2] = { 1, 4 };
	ferry_request *r;
	if (ferry_request_new(a->m, &r))
		return (void *)1;
	for (int i = 0; i < 2000; i++) {
		int64_t *in;
		const int64_t *out;
		ferry_request_reset(r);
		if (ferry_request_input(r, "IN", FERRY_TYPE_INT64, dims, 2, (void **)&in)) {
			a->bad++;
			continue;
		}
		for (int k = 0; k < 4; k++)
			in[k] = (int64_t)a->id << 40 | (int64_t)i << 4 | k;
		if (ferry_infer(a->c, r, 10 * SEC) ||
		    ferry_request_output(r, "OUT", NULL, NULL, NULL, (const void **)&out, NULL)) {
			a->bad++;
			continue;
		}
		for (int k = 0; k < 4; k++)
			if (out[k] != ((int64_t)a->id << 40 | (int64_t)i << 4 | k))
				a->bad++;
	}
	ferry_request_free(r);
	return NULL;
}

Test(local, one_client_many_threads)
{
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "ident_batch", FERRY_LATEST, &m), 0);
	pthread_t t[8];
	struct thr_arg a[8];
	for (int i = 0; i < 8; i++) {
		a[i] = (struct thr_arg){ c, m, i, 0 };
		pthread_create(&t[i], NULL, thr_main, &a[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(a[i].bad, 0, "thread %d saw %d bad results", i, a[i].bad);
	}
	ferry_close(c);
}

/* A client process: n requests of unique payloads on ident_batch, each
 * checked; exits 0 if every one was right. */
static int client_proc(int id, int n, int depth)
{
	ferry_client *c;
	ferry_model *m;
	ferry_options o = { .struct_size = sizeof(o), .queue_depth = (uint32_t)depth,
			    .arena_bytes = 4 << 20, .wait = FERRY_WAIT_HYBRID };
	if (ferry_connect(&c, B.sock, &o) || ferry_model_get(c, "ident_batch", FERRY_LATEST, &m)) {
		fprintf(stderr, "client %d: %s\n", id, ferry_last_error());
		return 10;
	}
	ferry_request **rs = calloc((size_t)depth, sizeof(*rs));
	int64_t dims[2] = { 1, 4 };
	int sent = 0, bad = 0;
	for (int i = 0; i < depth; i++)
		if (ferry_request_new(m, &rs[i]))
			return 11;
	while (sent < n) {
		int batch = n - sent < depth ? n - sent : depth;
		for (int i = 0; i < batch; i++) {
			int64_t *in;
			ferry_request_reset(rs[i]);
			if (ferry_request_input(rs[i], "IN", FERRY_TYPE_INT64, dims, 2, (void **)&in))
				return 12;
			for (int k = 0; k < 4; k++)
				in[k] = (int64_t)id << 48 | (int64_t)(sent + i) << 8 | k;
			if (ferry_infer_async(c, rs[i], NULL, NULL))
				return 13;
		}
		for (int i = 0; i < batch; i++) {
			const int64_t *out;
			if (ferry_request_wait(rs[i], 30 * SEC) ||
			    ferry_request_output(rs[i], "OUT", NULL, NULL, NULL, (const void **)&out, NULL)) {
				bad++;
				continue;
			}
			for (int k = 0; k < 4; k++)
				if (out[k] != ((int64_t)id << 48 | (int64_t)(sent + i) << 8 | k))
					bad++;
		}
		sent += batch;
	}
	for (int i = 0; i < depth; i++)
		ferry_request_free(rs[i]);
	free(rs);
	ferry_close(c);
	return bad ? 1 : 0;
}

Test(local, sixty_four_processes_ten_thousand_requests_each, .timeout = 300)
{
	pid_t pids[64];
	for (int p = 0; p < 64; p++) {
		pids[p] = fork();
		cr_assert_geq(pids[p], 0);
		if (pids[p] == 0)
			_exit(client_proc(p + 1, 10000, 16));
	}
	int failed = 0;
	for (int p = 0; p < 64; p++) {
		int st;
		waitpid(pids[p], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			failed++;
			fprintf(stderr, "client %d: status 0x%x\n", p + 1, st);
		}
	}
	if (failed) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "tail -20 %s >&2", B.log);
		(void)!system(cmd);
	}
	cr_assert_eq(failed, 0, "%d of 64 clients saw lost, duplicated or corrupted results", failed);
	cr_assert(th_alive(B.pid));
}

Test(local, clients_killed_in_flight_leave_nothing_behind, .timeout = 1200)
{
	/* Warm up: the first session maps code and allocates what stays. */
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(th_simple_once(c, m, 1), 0);
	/* the count below sees a session's segment (and only those:
	 * a sanitizer's allocator maps memory of its own) */
	cr_assert_geq(th_maps_count(B.pid, "ferry-seg"), 1, "no ferry-seg mapping seen");
	ferry_close(c);
	usleep(100000);
	int fd0 = th_fd_count(B.pid);
	long rss0 = th_rss_kb(B.pid);
	int maps0 = th_maps_count(B.pid, "ferry-seg");
	/* 100 in make check; FERRY_KILL_ROUNDS=1000 for the long run. */
	const char *env = getenv("FERRY_KILL_ROUNDS");
	int rounds = env ? atoi(env) : 100;

	for (int i = 0; i < rounds; i++) {
		int sync[2];
		cr_assert_eq(pipe(sync), 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(sync[0]);
			ferry_client *cc;
			ferry_model *mm;
			if (ferry_connect(&cc, B.sock, NULL) ||
			    ferry_model_get(cc, "ident_batch", FERRY_LATEST, &mm))
				_exit(1);
			int64_t dims[2] = { 1, 4 };
			for (int k = 0; k < 64; k++) {
				ferry_request *r;
				int64_t *in;
				ferry_request_new(mm, &r);
				ferry_request_input(r, "IN", FERRY_TYPE_INT64, dims, 2, (void **)&in);
				ferry_infer_async(cc, r, NULL, NULL);
			}
			(void)!write(sync[1], "x", 1);
			for (;;)
				ferry_poll(cc, 1, 1000000);
		}
		close(sync[1]);
		char x;
		(void)!read(sync[0], &x, 1);
		close(sync[0]);
		usleep((useconds_t)(rand() % 2000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	c = conn();
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(th_simple_once(c, m, 5), 0, "the broker still serves");
	ferry_close(c);
	/* Let the loop notice the last hang-ups. */
	int fd1 = -1;
	long rss1 = -1;
	for (int i = 0; i < 100; i++) {
		usleep(20000);
		fd1 = th_fd_count(B.pid);
		rss1 = th_rss_kb(B.pid);
		if (fd1 == fd0)
			break;
	}
	int maps1 = th_maps_count(B.pid, "ferry-seg");
	fprintf(stderr, "killed %d clients in flight: fds %d -> %d, segment mappings %d -> %d, "
		"RSS %ld -> %ld kB\n", rounds, fd0, fd1, maps0, maps1, rss0, rss1);
	cr_assert_eq(fd1, fd0, "fd count %d after, %d before", fd1, fd0);
	cr_assert_eq(maps1, maps0, "mappings %d after, %d before: a segment stayed mapped",
		     maps1, maps0);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan keeps freed memory in quarantine: RSS says nothing there (the
	 * leak checker at exit does). */
	(void)rss0;
	(void)rss1;
#else
	cr_assert_leq(rss1, rss0 + 2048, "RSS %ld kB after, %ld kB before", rss1, rss0);
#endif
}

Test(local, refused_peer_is_refused)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to connect as another uid");
	/* A second broker that allows only uid 4242 (its own uid, root, is
	 * always allowed); a client running as nobody is refused. */
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--allow-uid", "4242", "--log-level", "warn", NULL);
	chmod(b2.dir, 0755);
	chmod(b2.sock, 0666);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(3);
		ferry_client *c;
		int ret = ferry_connect(&c, b2.sock, NULL);
		_exit(ret == FERRY_EPERM ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nobody was not refused (0x%x)", st);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "grep -q 'refused pid' %s", b2.log);
	cr_assert_eq(system(cmd), 0, "the refusal is logged");
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

Test(local, sigterm_removes_the_socket)
{
	cr_assert_eq(access(B.sock, F_OK), 0);
	cr_assert_eq(th_stop(&B), 0);
	cr_assert_neq(access(B.sock, F_OK), 0, "socket removed at exit");
	/* .fini stops nothing more: start another so fini finds one. */
	th_start(&B, "--log-level", "warn", NULL);
}

Test(local, epoll_fallback_serves)
{
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--event-loop", "epoll", "--wait", "block", NULL);
	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(th_simple_once(c, m, i), 0);
	ferry_close(c);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "grep -q 'event loop: epoll' %s", b2.log);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

Test(local, no_broker_gives_econnrefused)
{
	ferry_client *c;
	char path[400];
	snprintf(path, sizeof(path), "%s/none.sock", B.dir);
	cr_assert_eq(ferry_connect(&c, path, NULL), FERRY_ECONNREFUSED);
	cr_assert(strstr(ferry_last_error(), "none.sock"), "%s", ferry_last_error());
}

/* The broker's death as the kernel reports it: when waitpid() reaps it. */
struct reaper {
	pid_t pid;
	uint64_t reaped_ns;
};

static void *reap_broker(void *arg)
{
	struct reaper *rp = arg;
	waitpid(rp->pid, NULL, 0);
	rp->reaped_ns = fshm_now_ns();
	return NULL;
}

/*
 * A request waiting in a queue (10 s batching delay) when the broker is
 * killed: the waiter fails with EPIPE as soon as the broker is gone, not
 * at a timeout.  The yardsticks are measured in the same run, so that a
 * busy machine moves both sides: how long the kernel took to tear the
 * broker down (a thread reaps it with waitpid), and a round trip to the
 * live broker.  A waiter looks at its socket once per 20 ms sleep slice
 * (libclient/client_request.c): the bound is twice the teardown plus
 * 50 ms, one slice and as much again for its wake-up.  (An absolute
 * 100 ms once failed here at 201 ms under load.)
 */
Test(local, broker_death_fails_waiters_with_epipe)
{
	/* A client that does not reconnect (tests/integ/test_failover.c
	 * covers those that do). */
	ferry_options o = { .struct_size = sizeof(o), .wait = FERRY_WAIT_DEFAULT,
			    .flags = FERRY_F_NO_RECONNECT };
	ferry_client *c;
	cr_assert_eq(ferry_connect(&c, B.sock, &o), 0, "%s", ferry_last_error());
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	uint64_t rt = fshm_now_ns();
	cr_assert_eq(th_simple_once(c, m, 1), 0);
	rt = fshm_now_ns() - rt;
	ferry_model *slow;
	ferry_request *r;
	int64_t *in;
	int64_t dims[2] = { 1, 4 };
	cr_assert_eq(ferry_model_get(c, "slow_batch", FERRY_LATEST, &slow), 0);
	cr_assert_eq(ferry_request_new(slow, &r), 0);
	cr_assert_eq(ferry_request_input(r, "IN", FERRY_TYPE_INT64, dims, 2, (void **)&in), 0);
	cr_assert_eq(ferry_infer_async(c, r, NULL, NULL), 0);
	usleep(50000);
	struct reaper rp = { .pid = B.pid };
	pthread_t reaper;
	uint64_t t0 = fshm_now_ns();
	kill(B.pid, SIGKILL);
	cr_assert_eq(pthread_create(&reaper, NULL, reap_broker, &rp), 0);
	int ret = ferry_request_wait(r, 5 * SEC);
	uint64_t waited = fshm_now_ns() - t0;
	pthread_join(reaper, NULL);
	B.pid = 0;
	uint64_t died = rp.reaped_ns - t0;
	cr_log_info("broker killed: reaped after %.1f ms, the waiter failed after %.1f ms",
		    (double)died / 1e6, (double)waited / 1e6);
	cr_assert_eq(ret, FERRY_EPIPE, "got %d (%s)", ret, ferry_last_error());
	cr_assert_lt(waited, 2 * died + 50000000ULL, "the waiter learnt after %.1f ms, the kernel "
		     "reaped the broker after %.1f ms", (double)waited / 1e6, (double)died / 1e6);
	ferry_request_free(r);
	/* And a new call on the dead session fails at once too: no longer
	 * than a few round trips to the live broker took, not a timeout. */
	t0 = fshm_now_ns();
	ret = th_simple_once(c, m, 2);
	uint64_t dead = fshm_now_ns() - t0;
	cr_assert_eq(ret, FERRY_EPIPE, "got %d (%s)", ret, ferry_last_error());
	cr_assert_lt(dead, 20 * rt + 50000000ULL, "a call on the dead session took %.1f ms, a "
		     "round trip to the live broker %.3f ms", (double)dead / 1e6, (double)rt / 1e6);
	ferry_close(c);
	th_start(&B, "--log-level", "warn", NULL);
}

Test(local, identity_every_dtype_and_shape)
{
	ferry_client *c = conn();
	for (size_t d = 0; d < sizeof(DTYPES) / sizeof(DTYPES[0]); d++) {
		char name[32];
		ferry_model *m;
		ferry_dtype dt;
		snprintf(name, sizeof(name), "id_%s", DTYPES[d]);
		cr_assert_eq(ferry_model_get(c, name, FERRY_LATEST, &m), 0, "%s: %s", name,
			     ferry_last_error());
		cr_assert_eq(ferry_model_input(m, 0, NULL, &dt, NULL, NULL), 0);
		cr_assert_str_eq(ferry_dtype_name(dt), DTYPES[d]);
		size_t esz = ferry_dtype_size(dt);
		for (int64_t batch = 1; batch <= 4; batch++) {
			ferry_request *r;
			uint8_t *in;
			int64_t dims[3] = { batch, 2, 3 };
			cr_assert_eq(ferry_request_new(m, &r), 0);
			cr_assert_eq(ferry_request_input(r, "IN", dt, dims, 3, (void **)&in), 0);
			size_t bytes = (size_t)batch * 6 * esz;
			for (size_t i = 0; i < bytes; i++)
				in[i] = (uint8_t)(i * 31 + d + (size_t)batch);
			cr_assert_eq(ferry_infer(c, r, 10 * SEC), 0, "%s batch %lld: %s", name,
				     (long long)batch, ferry_last_error());
			const uint8_t *out;
			const int64_t *od;
			int nd;
			size_t ob;
			ferry_dtype odt;
			cr_assert_eq(ferry_request_output(r, "OUT", &odt, &od, &nd, (const void **)&out, &ob), 0);
			cr_assert_eq(odt, dt);
			cr_assert_eq(nd, 3);
			cr_assert_eq(od[0], batch);
			cr_assert_eq(ob, bytes);
			cr_assert_eq(memcmp(in, out, bytes), 0, "%s batch %lld", name, (long long)batch);
			ferry_request_free(r);
		}
	}
	ferry_close(c);
}

Test(local, identity_bytes_tensors)
{
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "id_BYTES", FERRY_LATEST, &m), 0, "%s", ferry_last_error());
	static const char *const words[] = { "", "a", "ferry", "inference broker" };
	/* batch 2 x 4 elements, each a 4-byte length then the bytes */
	uint8_t buf[256];
	size_t n = 0;
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 4; i++) {
			uint32_t len = (uint32_t)strlen(words[i]);
			memcpy(buf + n, &len, 4);
			memcpy(buf + n + 4, words[i], len);
			n += 4 + len;
		}
	ferry_request *r;
	void *in;
	int64_t dims[2] = { 2, 4 };
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input_bytes(r, "IN", FERRY_TYPE_BYTES, dims, 2, n, &in), 0);
	memcpy(in, buf, n);
	/* The output's size depends on the data: without a capacity the
	 * request is refused before it is sent. */
	cr_assert_eq(ferry_infer(c, r, 10 * SEC), FERRY_EINVAL);
	cr_assert_eq(ferry_request_want_output(r, "OUT", 256), 0);
	cr_assert_eq(ferry_infer(c, r, 10 * SEC), 0, "%s", ferry_last_error());
	const void *out;
	size_t ob;
	ferry_dtype dt;
	cr_assert_eq(ferry_request_output(r, "OUT", &dt, NULL, NULL, &out, &ob), 0);
	cr_assert_eq(dt, FERRY_TYPE_BYTES);
	cr_assert_eq(ob, n);
	cr_assert_eq(memcmp(out, buf, n), 0);
	ferry_request_free(r);

	/* A malformed BYTES tensor (length past the end) is refused. */
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input_bytes(r, "IN", FERRY_TYPE_BYTES, dims, 2, 8, &in), 0);
	uint32_t bad[2] = { 1000, 0 };
	memcpy(in, bad, 8);
	cr_assert_eq(ferry_request_want_output(r, "OUT", 256), 0);
	cr_assert_lt(ferry_infer(c, r, 10 * SEC), 0);
	ferry_request_free(r);
	ferry_close(c);
}

static int run_ferryd_until_exit(struct th_broker *b, const char *extra)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "timeout 10 %s/broker/ferryd --model-repository %s --socket %s %s 2>>%s",
		 getenv("FERRY_TOP_BUILDDIR"), b->repo, b->sock, extra, b->log);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(local, a_bad_model_stops_start_up_unless_lenient)
{
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	th_model(&b2, "broken", "name: \"broken\"\nbackend: \"identity\"\nmax_batch_size: oops\n");
	th_model(&b2, "nobackend", "name: \"nobackend\" backend: \"no_such_backend\"\n"
		 "input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n"
		 "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n");
	cr_assert_neq(run_ferryd_until_exit(&b2, ""), 0, "strict by default: exits non-zero");
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "grep -q 'config.pbtxt:3:' %s && grep -q no_such_backend %s",
		 b2.log, b2.log);
	cr_assert_eq(system(cmd), 0, "each failure is logged with its reason and location");

	th_start(&b2, "--exit-on-error=false", NULL);
	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0);
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0, "the good models serve");
	cr_assert_eq(ferry_model_get(c, "nobackend", FERRY_LATEST, &m), FERRY_UNAVAILABLE);
	cr_assert(strstr(ferry_last_error(), "no_such_backend"), "%s", ferry_last_error());
	ferry_close(c);
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

/* ferryd once read --strict-model-config=false as "serve the models that
 * load" (Triton's --exit-on-error=false); that spelling still does so,
 * and says what to write instead.  =true turns auto-complete off: a model
 * directory without config.pbtxt is then refused. */
Test(local, strict_model_config_old_and_triton_meanings)
{
	struct th_broker b2;
	char cmd[1200];
	th_init(&b2);
	th_examples(&b2);
	th_model(&b2, "nobackend", "name: \"nobackend\" backend: \"no_such_backend\"\n"
		 "input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n"
		 "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n");
	th_start(&b2, "--strict-model-config=false", NULL);
	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0);
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0, "the good models serve");
	ferry_close(c);
	cr_assert_eq(th_stop(&b2), 0);
	snprintf(cmd, sizeof(cmd), "grep -q -- '--strict-model-config=false: .*write "
		 "--exit-on-error=false' %s", b2.log);
	cr_assert_eq(system(cmd), 0, "no deprecation warning in the log");
	snprintf(cmd, sizeof(cmd), "rm -rf %s/nobackend && mkdir -p %s/bare/1", b2.repo, b2.repo);
	cr_assert_eq(system(cmd), 0);
	cr_assert_neq(run_ferryd_until_exit(&b2, "--strict-model-config=true"), 0);
	snprintf(cmd, sizeof(cmd), "grep -q 'bare/config.pbtxt: no config.pbtxt' %s", b2.log);
	cr_assert_eq(system(cmd), 0, "a strict config needs config.pbtxt");
	th_cleanup(&b2);
}

Test(local, session_limits_are_enforced)
{
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--max-sessions", "2", "--max-arena-bytes", "8M", NULL);
	ferry_client *c1, *c2, *c3;
	ferry_options big = { .struct_size = sizeof(big), .arena_bytes = 64 << 20 };
	cr_assert_eq(ferry_connect(&c1, b2.sock, &big), FERRY_E2BIG, "%s", ferry_last_error());
	ferry_options small = { .struct_size = sizeof(small), .arena_bytes = 1 << 20 };
	cr_assert_eq(ferry_connect(&c1, b2.sock, &small), 0);
	cr_assert_eq(ferry_connect(&c2, b2.sock, &small), 0);
	cr_assert_eq(ferry_connect(&c3, b2.sock, &small), FERRY_ENOSPC);
	cr_assert(strstr(ferry_last_error(), "session limit"), "%s", ferry_last_error());
	ferry_close(c2);
	usleep(100000);
	cr_assert_eq(ferry_connect(&c3, b2.sock, &small), 0, "a freed session slot is reused");
	/* A request larger than the arena fails cleanly on the client. */
	ferry_model *m;
	ferry_request *r;
	void *p;
	int64_t dims[2] = { 64, 256 };
	cr_assert_eq(ferry_model_get(c3, "identity", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	int64_t huge[2] = { 64, 1 << 20 };
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, huge, 2, &p), FERRY_ENOMEM);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, dims, 2, &p), 0);
	ferry_request_free(r);
	ferry_close(c1);
	ferry_close(c3);
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

/* ferryctl --socket sock args: its exit status, stdout and stderr in out. */
static int ferryctl_at(const char *sock, const char *args, char *out, size_t outlen)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "%s/tools/ferryctl --socket %s %s 2>&1",
		 getenv("FERRY_TOP_BUILDDIR"), sock, args);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int ferryctl(const char *args, char *out, size_t outlen)
{
	return ferryctl_at(B.sock, args, out, outlen);
}

Test(local, ferryctl_status_and_stats_add_up)
{
	static char out[65536];
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	for (int i = 0; i < 37; i++)
		cr_assert_eq(th_simple_once(c, m, i), 0);
	cr_assert_eq(ferryctl("--json stats simple", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "\"success\":37,"), "%s", out);
	cr_assert(strstr(out, "\"inference_count\":37,"), "%s", out);
	cr_assert(strstr(out, "\"batches\":{\"1\":37}"), "%s", out);
	cr_assert_eq(ferryctl("status", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "sessions: 1 of"), "%s", out);
	cr_assert(strstr(out, "ident_batch"), "%s", out);
	cr_assert_eq(ferryctl("--json sessions", out, sizeof(out)), 0);
	cr_assert(strstr(out, "\"completed\":37"), "%s", out);
	cr_assert_eq(ferryctl("stats nope", out, sizeof(out)), 1, "unknown model: exit 1");
	cr_assert_eq(ferryctl("frobnicate", out, sizeof(out)), 2, "bad usage: exit 2");
	ferry_close(c);
	cr_assert_eq(th_stop(&B), 0);
	cr_assert_eq(ferryctl("status", out, sizeof(out)), 3, "no broker: exit 3");
	cr_assert(strstr(out, "no broker at"), "%s", out);
	cr_assert(strstr(out, "--socket PATH") && strstr(out, "$FERRY_SOCKET"),
		  "says how to point ferryctl at another broker: %s", out);
	th_start(&B, "--log-level", "warn", NULL);
}

/* A path that exists but is no socket says so, through libferry and so
 * through ferryctl (it used to be "Connection refused"). */
Test(local, a_socket_path_that_is_not_a_socket_says_so)
{
	static char out[4096];
	char file[400];
	ferry_client *c;
	snprintf(file, sizeof(file), "%s/not-a-socket", B.dir);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(ferry_connect(&c, B.dir, NULL), FERRY_EINVAL);
	cr_assert(strstr(ferry_last_error(), "is a directory, not a socket"), "%s",
		  ferry_last_error());
	cr_assert_eq(ferry_connect(&c, file, NULL), FERRY_EINVAL);
	cr_assert(strstr(ferry_last_error(), "is a regular file, not a socket"), "%s",
		  ferry_last_error());
	cr_assert_eq(ferry_connect_admin(&c, file), FERRY_EINVAL);
	cr_assert_eq(ferryctl_at(B.dir, "status", out, sizeof(out)), 3, "%s", out);
	cr_assert(strstr(out, "is a directory, not a socket"), "%s", out);
	unlink(file);
}

/*
 * ferry_connect(path) as a user who may not open it: as root, in a child
 * that became nobody; otherwise here (the owner is denied by a mode 0).
 * The code, and the message in msg.
 */
static int connect_denied(const char *path, char *msg, size_t len)
{
	ferry_client *c;
	if (geteuid() != 0) {
		int ret = ferry_connect(&c, path, NULL);
		snprintf(msg, len, "%s", ferry_last_error());
		if (!ret)
			ferry_close(c);
		return ret;
	}
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(99);
		int ret = ferry_connect(&c, path, NULL);
		(void)!write(fds[1], ferry_last_error(), strlen(ferry_last_error()));
		_exit(ret == FERRY_EPERM ? 0 : ret == 0 ? 98 : 97);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], msg, len - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 99, "the child could not become nobody");
	return WEXITSTATUS(st) == 0 ? FERRY_EPERM : -WEXITSTATUS(st);
}

Test(local, permission_denied_says_what_is_wrong)
{
	char dir[] = "/tmp/ferry-perm.XXXXXX", path[64], msg[512];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ferryd.sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 4), 0);
	cr_assert_eq(chmod(path, 0), 0);
	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(connect_denied(path, msg, sizeof(msg)), FERRY_EPERM, "%s", msg);
	cr_assert(strstr(msg, "permission denied on") && strstr(msg, "mode 0000"), "%s", msg);
	cr_assert(strstr(msg, "group"), "says whose socket it is: %s", msg);
	cr_assert_eq(chmod(dir, 0), 0);
	cr_assert_eq(connect_denied(path, msg, sizeof(msg)), FERRY_EPERM, "%s", msg);
	cr_assert(strstr(msg, "not searchable"), "%s", msg);
	chmod(dir, 0700);
	close(fd);
	unlink(path);
	rmdir(dir);
}

/* GET a path from 127.0.0.1:port; returns the HTTP status, body in out. */
static int http_get(int port, const char *path, char *out, size_t outlen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	(void)!write(fd, req, (size_t)n);
	size_t len = 0;
	ssize_t r;
	while (len < outlen - 1 && (r = read(fd, out + len, outlen - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(fd);
	int code = -1;
	sscanf(out, "HTTP/1.%*d %d", &code);
	return code;
}

/* The value of the sample line that starts with line_prefix (not the
 * HELP / TYPE lines, which name the metric too). */
static uint64_t metric(const char *text, const char *line_prefix)
{
	char pat[256];
	snprintf(pat, sizeof(pat), "\n%s", line_prefix);
	const char *p = strstr(text, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

struct scrape_arg {
	int port;
	_Atomic bool stop;
	int scrapes;
	int bad;
};

static void *scraper(void *p)
{
	struct scrape_arg *a = p;
	static char body[1 << 16];
	while (!atomic_load(&a->stop)) {
		if (http_get(a->port, "/metrics", body, sizeof(body)) != 200 ||
		    !strstr(body, "nv_inference_request_success{model=\"simple\",version=\"1\"}"))
			a->bad++;
		a->scrapes++;
		usleep(2000);
	}
	return NULL;
}

Test(local, metrics_add_up_during_a_load)
{
	static char body[1 << 16];
	struct th_broker b2;
	char port[16];
	int p = 20000 + (int)(getpid() % 20000);
	snprintf(port, sizeof(port), "%d", p);
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--metrics-port", port, "--grpc-port", "0", NULL);
	cr_assert_eq(http_get(p, "/v2/health/live", body, sizeof(body)), 200);
	cr_assert_eq(http_get(p, "/v2/health/ready", body, sizeof(body)), 200);
	cr_assert_eq(http_get(p, "/nope", body, sizeof(body)), 404);

	/* Scrape continuously while 4 processes send 500 requests each. */
	struct scrape_arg sa = { .port = p };
	pthread_t t;
	pthread_create(&t, NULL, scraper, &sa);
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			ferry_client *c;
			ferry_model *m;
			if (ferry_connect(&c, b2.sock, NULL) ||
			    ferry_model_get(c, "simple", FERRY_LATEST, &m))
				_exit(1);
			for (int k = 0; k < 500; k++)
				if (th_simple_once(c, m, k))
					_exit(1);
			ferry_close(c);
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* One failure too: a shape the model refuses. */
	ferry_client *c;
	ferry_model *m;
	ferry_request *r;
	int32_t *a;
	int64_t dims[2] = { 1, 15 };
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0);
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a);
	ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&a);
	cr_assert_lt(ferry_infer(c, r, 10 * SEC), 0);
	ferry_request_free(r);
	usleep(250000); /* let the loop publish its gauges */
	cr_assert_eq(http_get(p, "/metrics", body, sizeof(body)), 200);
	atomic_store(&sa.stop, true);
	pthread_join(t, NULL);
	cr_assert_gt(sa.scrapes, 0);
	cr_assert_eq(sa.bad, 0, "%d of %d scrapes failed during the load", sa.bad, sa.scrapes);
	cr_assert_eq(metric(body, "nv_inference_request_success{model=\"simple\",version=\"1\"} "), 2000, "%s", body);
	cr_assert_eq(metric(body, "nv_inference_count{model=\"simple\",version=\"1\"} "), 2000);
	cr_assert_eq(metric(body, "nv_inference_exec_count{model=\"simple\",version=\"1\"} "), 2000);
	cr_assert_eq(metric(body, "ferry_batch_executions_total{model=\"simple\",version=\"1\",batch_size=\"1\"} "), 2000);
	cr_assert_eq(metric(body, "ferry_sessions "), 1, "the one session still open: %llu", (unsigned long long)metric(body, "ferry_sessions "));
	cr_assert_eq(metric(body, "ferry_requests_inflight{transport=\"shm\"} "), 0);
	cr_assert_neq(metric(body, "ferry_broker_cpu_seconds_total "), UINT64_MAX);
	ferry_close(c);
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

Test(local, systemd_socket_activation_and_readiness)
{
	/* What systemd does: bind and listen, pass the socket as fd 3 with
	 * LISTEN_PID / LISTEN_FDS, and wait for READY=1 on NOTIFY_SOCKET. */
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	char notify[400];
	snprintf(notify, sizeof(notify), "%s/notify", b2.dir);
	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un na = { .sun_family = AF_UNIX };
	strcpy(na.sun_path, notify);
	cr_assert_eq(bind(nfd, (struct sockaddr *)&na, sizeof(na)), 0);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un la = { .sun_family = AF_UNIX };
	strcpy(la.sun_path, b2.sock);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&la, sizeof(la)), 0);
	cr_assert_eq(listen(lfd, 16), 0);

	pid_t pid = fork();
	if (pid == 0) {
		char fdsv[8], pidv[16];
		dup2(lfd, 3);
		snprintf(pidv, sizeof(pidv), "%d", (int)getpid());
		snprintf(fdsv, sizeof(fdsv), "1");
		setenv("LISTEN_PID", pidv, 1);
		setenv("LISTEN_FDS", fdsv, 1);
		setenv("NOTIFY_SOCKET", notify, 1);
		char ferryd[512];
		snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", getenv("FERRY_TOP_BUILDDIR"));
		int fd = open(b2.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 2);
		execl(ferryd, ferryd, "--model-repository", b2.repo, "--socket", "/nonexistent/x.sock",
		      "--grpc-port", "0", "--metrics-port", "0", (char *)NULL);
		_exit(127);
	}
	close(lfd);
	char msg[128] = "";
	struct pollfd pf = { .fd = nfd, .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 10000), 1, "READY=1 within 10 s");
	ssize_t n = recv(nfd, msg, sizeof(msg) - 1, 0);
	cr_assert_gt(n, 0);
	msg[n] = '\0';
	cr_assert_str_eq(msg, "READY=1");

	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(th_simple_once(c, m, 3), 0);
	ferry_close(c);
	kill(pid, SIGTERM);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(access(b2.sock, F_OK), 0, "systemd's socket is not unlinked by ferryd");
	close(nfd);
	th_cleanup(&b2);
}

/* Poll until ferry_model_get(name) returns want (a fresh client each
 * time: a client caches the models it found). */
static int wait_model(const char *sock, const char *name, int want)
{
	int ret = 1;
	for (int i = 0; i < 500; i++) {
		ferry_client *c;
		ferry_model *m;
		if (ferry_connect(&c, sock, NULL))
			return -1000;
		ret = ferry_model_get(c, name, FERRY_LATEST, &m);
		int mbs = ret ? -1 : ferry_model_max_batch_size(m);
		ferry_close(c);
		if (ret == want && (want != 0 || mbs >= 0))
			return ret;
		usleep(10000);
	}
	return ret;
}

Test(local, sighup_rescans_the_repository)
{
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--grpc-port", "0", "--metrics-port", "0", NULL);
	cr_assert_eq(wait_model(b2.sock, "newcomer", FERRY_ENOENT), FERRY_ENOENT);

	/* A new model, a changed one (max_batch_size 8 -> 4), a removed one. */
	th_model(&b2, "newcomer", IDENT_BATCH);
	char path[600], cmd[2000];
	snprintf(path, sizeof(path), "%s/newcomer/config.pbtxt", b2.repo);
	snprintf(cmd, sizeof(cmd), "sed -i 's/ident_batch/newcomer/' %s && "
		 "sed -i 's/max_batch_size: 8/max_batch_size: 4/' %s/simple/config.pbtxt && "
		 "rm -rf %s/identity", path, b2.repo, b2.repo);
	cr_assert_eq(system(cmd), 0);
	kill(b2.pid, SIGHUP);
	cr_assert_eq(wait_model(b2.sock, "newcomer", 0), 0, "the new model loads");
	cr_assert_eq(wait_model(b2.sock, "identity", FERRY_UNAVAILABLE), FERRY_UNAVAILABLE,
		     "the removed model unloads");
	ferry_client *c;
	ferry_model *m;
	int mbs = -1;
	for (int i = 0; i < 500 && mbs != 4; i++) {
		cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0);
		if (ferry_model_get(c, "simple", FERRY_LATEST, &m) == 0)
			mbs = ferry_model_max_batch_size(m);
		if (mbs == 4)
			cr_assert_eq(th_simple_once(c, m, 9), 0, "the reloaded model serves");
		ferry_close(c);
		usleep(10000);
	}
	cr_assert_eq(mbs, 4, "the changed model reloads");
	snprintf(cmd, sizeof(cmd), "grep -q 'rescan: done: 2 loaded or reloaded, 1 unloaded, 0 failed' %s", b2.log);
	cr_assert_eq(system(cmd), 0, "the rescan is logged");
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

Test(local, autostart_starts_one_private_broker_that_leaves_when_idle)
{
	/* No broker at $FERRY_SOCKET; $FERRY_AUTOSTART names a repository:
	 * four jobs connecting at once start one broker between them. */
	char dir[] = "/tmp/ferry-auto-XXXXXX", sock[300], cmd[1200];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/run/ferryd.sock", dir);
	char ferryd[512], repo[512];
	snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", getenv("FERRY_TOP_BUILDDIR"));
	snprintf(repo, sizeof(repo), "%s/examples/models", getenv("FERRY_TOP_SRCDIR"));
	setenv("FERRY_SOCKET", sock, 1);
	setenv("FERRY_AUTOSTART", repo, 1);
	setenv("FERRY_AUTOSTART_IDLE", "1", 1);
	setenv("FERRY_FERRYD", ferryd, 1);
	unsetenv("FERRY_SERVER");
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			ferry_client *c;
			ferry_model *m;
			if (ferry_connect(&c, NULL, NULL)) {
				fprintf(stderr, "autostart: %s\n", ferry_last_error());
				_exit(1);
			}
			if (ferry_model_get(c, "simple", FERRY_LATEST, &m) || th_simple_once(c, m, 1))
				_exit(2);
			ferry_close(c);
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "job %d: 0x%x", i, st);
	}
	snprintf(cmd, sizeof(cmd), "test $(grep -c 'ready: listening' %s.log) = 1", sock);
	cr_assert_eq(system(cmd), 0, "exactly one broker started");
	/* Idle for a second with no session: it leaves, and its socket too. */
	int gone = 0;
	for (int i = 0; i < 300 && !gone; i++) {
		usleep(20000);
		gone = access(sock, F_OK) != 0;
	}
	cr_assert(gone, "the private broker went away when idle");
	unsetenv("FERRY_SOCKET");
	unsetenv("FERRY_AUTOSTART");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

Test(local, ferryctl_load_unload_reload)
{
	static char out[65536];
	cr_assert_eq(ferryctl("unload simple", out, sizeof(out)), 0, "%s", out);
	ferry_client *c = conn();
	ferry_model *m;
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), FERRY_UNAVAILABLE);
	ferry_close(c);
	cr_assert_eq(ferryctl("load simple", out, sizeof(out)), 0, "%s", out);
	c = conn();
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0, "%s", ferry_last_error());
	cr_assert_eq(th_simple_once(c, m, 4), 0);
	ferry_close(c);
	cr_assert_eq(ferryctl("--json reload simple", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "\"reload\":true"), "%s", out);
	cr_assert_eq(ferryctl("load no_such_model", out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "no_such_model"), "%s", out);
	cr_assert_eq(ferryctl("unload", out, sizeof(out)), 2, "a name is needed");
}

struct stats_seen {
	int versions;
	ferry_model_stats st;
	char name[64];
};

static void on_stats(void *arg, const ferry_model_stats *s)
{
	struct stats_seen *x = arg;
	x->versions++;
	x->st = *s;
	snprintf(x->name, sizeof(x->name), "%s", s->name); /* valid only here */
	x->st.name = x->name;
}

Test(local, libferry_statistics_locally_and_over_grpc)
{
	struct th_broker b2;
	char port[16], addr[64];
	int p = 20000 + (int)((getpid() + 7919) % 20000);
	snprintf(port, sizeof(port), "%d", p);
	snprintf(addr, sizeof(addr), "grpc://127.0.0.1:%d", p);
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--grpc-port", port, "--metrics-port", "0", NULL);
	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0);
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	for (int i = 0; i < 25; i++)
		cr_assert_eq(th_simple_once(c, m, i), 0);
	struct stats_seen x = { 0 };
	cr_assert_eq(ferry_model_statistics(c, "simple", FERRY_LATEST, on_stats, &x), 1,
		     "%s", ferry_last_error());
	cr_assert_str_eq(x.st.name, "simple");
	cr_assert_eq(x.st.success, 25);
	cr_assert_eq(x.st.inference_count, 25);
	cr_assert_eq(x.st.batch_executions[1], 25);
	cr_assert_gt(x.st.compute_infer_ns, 0);
	cr_assert_lt(ferry_model_statistics(c, "nope", FERRY_LATEST, on_stats, &x), 0);
	ferry_close(c);

	cr_assert_eq(ferry_connect(&c, addr, NULL), 0, "%s", ferry_last_error());
	struct stats_seen y = { 0 };
	cr_assert_eq(ferry_model_statistics(c, "simple", 1, on_stats, &y), 1, "%s",
		     ferry_last_error());
	cr_assert_eq(y.st.version, 1);
	cr_assert_eq(y.st.success, 25, "the same numbers over gRPC");
	cr_assert_eq(y.st.execution_count, 25);
	/* Unload and load again, over gRPC, then over the local socket. */
	cr_assert_eq(ferry_model_unload(c, "simple"), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_unload(c, "no_such"), FERRY_ENOENT);
	cr_assert_eq(ferry_model_load(c, "simple"), 0, "%s", ferry_last_error());
	ferry_close(c);
	cr_assert_eq(ferry_connect(&c, b2.sock, NULL), 0);
	cr_assert_eq(ferry_model_unload(c, "simple"), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), FERRY_UNAVAILABLE);
	cr_assert_eq(ferry_model_load(c, "simple"), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(th_simple_once(c, m, 2), 0);
	ferry_close(c);
	/* ferryctl against the remote endpoint. */
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "%s/tools/ferryctl --server %s --json stats simple | grep -q '\"success\":1,'",
		 getenv("FERRY_TOP_BUILDDIR"), addr);
	cr_assert_eq(system(cmd), 0, "ferryctl --server stats (the reloaded model served once)");
	cr_assert_eq(th_stop(&b2), 0);
	th_cleanup(&b2);
}

Test(local, requests_freed_after_their_client_closed)
{
	/* Allowed by ferry.h: ferry_request_free() after ferry_close(), for
	 * requests idle, completed and still in flight (the ASan build is
	 * what proves nothing freed is touched). */
	ferry_client *c = conn();
	ferry_model *m;
	ferry_request *idle, *done, *flying;
	int32_t *a;
	int64_t dims[2] = { 1, 16 };
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &idle), 0);
	cr_assert_eq(ferry_request_new(m, &done), 0);
	cr_assert_eq(ferry_request_new(m, &flying), 0);
	ferry_request *rs[2] = { done, flying };
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(ferry_request_input(rs[i], "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a), 0);
		cr_assert_eq(ferry_request_input(rs[i], "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&a), 0);
	}
	cr_assert_eq(ferry_infer(c, done, 10 * SEC), 0);
	cr_assert_eq(ferry_infer_async(c, flying, NULL, NULL), 0);
	ferry_close(c);
	const void *out;
	cr_assert_eq(ferry_request_output(done, "OUTPUT0", NULL, NULL, NULL, &out, NULL), FERRY_EPIPE);
	ferry_request_free(idle);
	ferry_request_free(done);
	ferry_request_free(flying);
}

Test(local, per_user_session_quota_and_socket_group)
{
	struct th_broker b2;
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--max-sessions-per-uid", "2", "--socket-group", "nogroup",
		 "--grpc-port", "0", "--metrics-port", "0", NULL);
	struct stat st;
	cr_assert_eq(stat(b2.sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
	struct group *g = getgrnam("nogroup");
	cr_assert_not_null(g);
	cr_assert_eq(st.st_gid, g->gr_gid, "the socket belongs to --socket-group");
	ferry_client *c1, *c2, *c3;
	cr_assert_eq(ferry_connect(&c1, b2.sock, NULL), 0);
	cr_assert_eq(ferry_connect(&c2, b2.sock, NULL), 0);
	cr_assert_eq(ferry_connect(&c3, b2.sock, NULL), FERRY_ENOSPC);
	cr_assert(strstr(ferry_last_error(), "per-user"), "%s", ferry_last_error());
	ferry_close(c1);
	ferry_close(c2);
	cr_assert_eq(th_stop(&b2), 0);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "grep -q 'sessions of this user' %s", b2.log);
	cr_assert_eq(system(cmd), 0, "the refusal is logged");
	th_cleanup(&b2);
}

Test(local, clients_reconnect_to_a_restarted_broker_and_carry_on)
{
	/* A job keeps sending; the broker is killed and a new one started on
	 * the same socket; the job sees FERRY_EPIPE, reconnects with
	 * ferry_connect_wait and carries on, every result right. */
	int sync[2];
	cr_assert_eq(pipe(sync), 0);
	pid_t job = fork();
	if (job == 0) {
		close(sync[0]);
		ferry_client *c;
		ferry_model *m;
		int ok = 0, epipe = 0, reconnects = 0;
		/* It reconnects by hand (libferry would do it by itself). */
		ferry_options o = { .struct_size = sizeof(o), .wait = FERRY_WAIT_DEFAULT,
				    .flags = FERRY_F_NO_RECONNECT };
		if (ferry_connect(&c, B.sock, &o) || ferry_model_get(c, "simple", FERRY_LATEST, &m))
			_exit(10);
		while (ok < 3000) {
			int ret = th_simple_once(c, m, ok);
			if (ret == 0) {
				if (++ok == 1000)
					(void)!write(sync[1], "k", 1); /* time to kill */
				continue;
			}
			if (ret != FERRY_EPIPE)
				_exit(11);
			epipe++;
			ferry_close(c);
			if (ferry_connect_wait(&c, B.sock, &o, 20 * SEC) ||
			    ferry_model_get(c, "simple", FERRY_LATEST, &m))
				_exit(12);
			reconnects++;
		}
		ferry_close(c);
		_exit(reconnects >= 1 && epipe >= 1 ? 0 : 13);
	}
	close(sync[1]);
	char k;
	cr_assert_eq(read(sync[0], &k, 1), 1);
	close(sync[0]);
	kill(B.pid, SIGKILL);
	waitpid(B.pid, NULL, 0);
	B.pid = 0;
	usleep(200000); /* the job is now retrying */
	th_start(&B, "--log-level", "warn", NULL);
	int st;
	waitpid(job, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "job status 0x%x", st);
}
