/* SPDX-License-Identifier: MIT */
/*
 * test_poller.c - ferryd's pollers (broker/core/poller.c): a session moves
 * to the poller pinned to the CPU its client submits from; requests keep
 * completing, with the right values, across the moves; sessions that
 * close while their poller sleeps are let go; many idle sessions do not
 * stop an active one from being served.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>
#include <ferry/ferry.h>

#include "libclient/client_int.h"   /* the session's segment header */
#include "tests/integ/harness.h"

#define SEC 1000000000LL

static struct th_broker B;
static int cpus[CPU_SETSIZE], ncpus;

static void setup(void)
{
	cpu_set_t set;

	ncpus = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				cpus[ncpus++] = c;
	th_init(&B);
	th_examples(&B);
}

static void teardown(void)
{
	if (B.pid > 0)
		cr_expect_eq(th_stop(&B), 0, "ferryd exit status");
	th_cleanup(&B);
}

static void pin(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0, "%s", strerror(errno));
}

/* Lines of ferryd's log holding both strings. */
static int log_lines(const char *a, const char *b)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(B.log, "r");

	cr_assert(f, "%s: %s", B.log, strerror(errno));
	while (fgets(line, sizeof(line), f))
		n += strstr(line, a) && (!b || strstr(line, b));
	fclose(f);
	return n;
}

TestSuite(poller, .init = setup, .fini = teardown, .timeout = 60);

Test(poller, session_follows_its_client_cpu)
{
	char to[64];
	ferry_client *c;
	ferry_model *m;

	if (ncpus < 2)
		cr_skip_test("needs 2 CPUs, this process may use %d", ncpus);
	/* A client that sleeps on its results: only a sleeping client frees
	 * its core, so only its hint moves the session. */
	ferry_options o = { .struct_size = sizeof(o), .wait = FERRY_WAIT_BLOCK };

	th_start(&B, "--pollers", "0", "--log-level", "debug", NULL);
	cr_assert_eq(log_lines("pollers: ", "one pinned per CPU"), 1,
		     "ferryd pins one poller per CPU when it may use several");
	cr_assert_eq(ferry_connect(&c, B.sock, &o), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	/* Submitting from each CPU in turn: the session follows, and every
	 * request completes with its values (th_simple_once checks them). */
	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < 2; k++) {
			pin(cpus[k]);
			for (int i = 0; i < 16; i++)
				cr_assert_eq(th_simple_once(c, m, round * 100 + k * 16 + i), 0,
					     "%s", ferry_last_error());
			snprintf(to, sizeof(to), "(its client runs on CPU %d)", cpus[k]);
			cr_assert_geq(log_lines("-> ", to), round + k,
				      "the session moved to CPU %d's poller (round %d)", cpus[k],
				      round);
			/* ... and says so in the segment, so that the client never
			 * spins on the core its poller needs */
			uint32_t served = atomic_load(&client__local_of(c)->seg.hdr->broker_wake.cpu);
			cr_assert_eq(served, (uint32_t)cpus[k] + 1, "broker_wake.cpu %u, CPU %d",
				     served, cpus[k]);
		}
	}
	ferry_close(c);
}

/* A client that spins while it waits keeps its core busy: its session
 * stays where it is. */
Test(poller, a_spinning_client_does_not_pull_its_session)
{
	ferry_options o = { .struct_size = sizeof(o), .wait = FERRY_WAIT_SPIN };
	ferry_client *c;
	ferry_model *m;

	if (ncpus < 2)
		cr_skip_test("needs 2 CPUs, this process may use %d", ncpus);
	th_start(&B, "--pollers", "0", "--log-level", "debug", NULL);
	cr_assert_eq(ferry_connect(&c, B.sock, &o), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	pin(cpus[1]);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(th_simple_once(c, m, i), 0, "%s", ferry_last_error());
	cr_assert_eq(log_lines("-> ", "its client runs on CPU"), 0,
		     "a spinning client's session moved");
	ferry_close(c);
}

Test(poller, one_poller_serves_every_session)
{
	ferry_client *c[4];
	ferry_model *m;

	th_start(&B, "--pollers", "1", NULL);
	cr_assert_eq(log_lines("pollers: 1", "not pinned"), 1);
	for (int k = 0; k < 4; k++) {
		cr_assert_eq(ferry_connect(&c[k], B.sock, NULL), 0, "%s", ferry_last_error());
		cr_assert_eq(ferry_model_get(c[k], "simple", FERRY_LATEST, &m), 0);
		for (int i = 0; i < 8; i++)
			cr_assert_eq(th_simple_once(c[k], m, k * 8 + i), 0, "%s", ferry_last_error());
	}
	for (int k = 0; k < 4; k++)
		ferry_close(c[k]);
}

/* Sessions closed while their poller sleeps leave nothing behind: the
 * poller lets each go, so its segment is unmapped. */
Test(poller, closed_sessions_are_let_go)
{
	ferry_client *c;
	ferry_model *m;

	th_start(&B, NULL);
	int base = th_maps_count(B.pid, "ferry-seg");
	for (int k = 0; k < 20; k++) {
		cr_assert_eq(ferry_connect(&c, B.sock, NULL), 0, "%s", ferry_last_error());
		cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
		cr_assert_eq(th_simple_once(c, m, k), 0, "%s", ferry_last_error());
		ferry_close(c);
	}
	int left = 0;
	for (int i = 0; i < 200; i++) {
		left = th_maps_count(B.pid, "ferry-seg") - base;
		if (left == 0)
			break;
		usleep(10000);
	}
	cr_assert_eq(left, 0, "%d session segments still mapped", left);
}

Test(poller, many_idle_sessions_and_one_active)
{
	enum { IDLE = 300 };
	static ferry_client *idle[IDLE];
	ferry_options small = { .struct_size = sizeof(small), .queue_depth = 4,
				.arena_bytes = 1 << 20 };
	struct rlimit rl;
	ferry_client *c;
	ferry_model *m;

	/* Each session holds a socket, two eventfds and a memfd here. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4 * IDLE + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < 4 * IDLE + 64)
			cr_skip_test("RLIMIT_NOFILE %llu is too low", (unsigned long long)rl.rlim_cur);
	}
	th_start(&B, "--max-sessions", "1000", NULL);
	for (int k = 0; k < IDLE; k++)
		cr_assert_eq(ferry_connect(&idle[k], B.sock, &small), 0, "session %d: %s", k,
			     ferry_last_error());
	cr_assert_eq(ferry_connect(&c, B.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), 0);
	for (int i = 0; i < 200; i++)
		cr_assert_eq(th_simple_once(c, m, i), 0, "%s", ferry_last_error());
	/* The idle ones still work after it. */
	for (int k = 0; k < IDLE; k += 37) {
		ferry_model *mk;
		cr_assert_eq(ferry_model_get(idle[k], "simple", FERRY_LATEST, &mk), 0);
		cr_assert_eq(th_simple_once(idle[k], mk, k), 0, "%s", ferry_last_error());
	}
	ferry_close(c);
	for (int k = 0; k < IDLE; k++)
		ferry_close(idle[k]);
}
