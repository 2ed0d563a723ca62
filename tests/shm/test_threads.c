/* SPDX-License-Identifier: MIT */
/*
 * Threaded variants, for ThreadSanitizer: the ring stress loops of
 * test_stress.c as two threads of one process over one mapping (TSan sees
 * threads, not processes, and only one mapping's addresses), in every wait
 * policy, copy and zero-copy; and four threads sharing one arena.
 *
 * A plain program, not a Criterion suite: Criterion cannot start under
 * ThreadSanitizer ("Could not initialize inheritable arena", Snaipe/
 * Criterion#274), and this is the program a TSan build must run.  Exit
 * codes follow automake: 0 pass, 1 fail.  An alarm fails a hang.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "tests/shm/stress.h"

#define THREADS_N shm_test_stress_n(SHM_TEST_SANITIZED ? 1000000ull : 10000000ull)
#define WATCHDOG_S 150

static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failures++;                                          \
			return;                                              \
		}                                                            \
	} while (0)

/* ---- ring: producer thread, consumer thread --------------------------- */

static void *producer_main(void *arg)
{
	return (void *)(intptr_t)stress_produce(arg);
}

static void ring_threads(enum fshm_wait_policy policy, uint32_t entries,
			 bool zero_copy, uint64_t n)
{
	struct fshm_seg_params p = shm_test_params(entries, 2, 4096);
	struct fshm_seg seg;
	struct stress_side prod, cons;
	pthread_t t;
	void *pret;
	int cons_efd, prod_efd, ret;
	uint64_t t0 = fshm_now_ns();

	CHECK(fshm_seg_create(&p, &seg) == 0, "fshm_seg_create");
	cons_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	prod_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(cons_efd >= 0 && prod_efd >= 0, "eventfd");
	/* One mapping for both: TSan must see the same addresses. */
	stress_bind(&prod, seg.base, &seg.sq, true, cons_efd, prod_efd,
		    policy, n);
	stress_bind(&cons, seg.base, &seg.sq, false, cons_efd, prod_efd,
		    policy, n);
	prod.zero_copy = cons.zero_copy = zero_copy;

	CHECK(pthread_create(&t, NULL, producer_main, &prod) == 0,
	      "pthread_create");
	ret = stress_consume(&cons);
	/* A failed consumer leaves the producer stuck until its wait times
	 * out (STRESS_WAIT_NS) and returns: the join is bounded. */
	pthread_join(t, &pret);
	close(cons_efd);
	close(prod_efd);
	fshm_seg_close(&seg);
	CHECK(ret == 0, "ring %s%s: consumer: %s (first bad seq %llu)",
	      zero_copy ? "zero-copy " : "", fshm_wait_policy_name(policy),
	      strerror(-ret), (unsigned long long)cons.bad_seq);
	CHECK((intptr_t)pret == 0, "ring %s: producer: %s",
	      fshm_wait_policy_name(policy), strerror(-(int)(intptr_t)pret));
	printf("PASS ring_threads %s%s, %u entries: %llu entries in %.2f s\n",
	       zero_copy ? "zero-copy " : "copy ",
	       fshm_wait_policy_name(policy), entries,
	       (unsigned long long)n,
	       (double)(fshm_now_ns() - t0) / 1e9);
}

/* ---- arena: four threads ------------------------------------------------ */

struct worker {
	struct fshm_arena *a;
	uint8_t *mem;
	int id;
	int failures;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *arena_worker(void *arg)
{
	struct worker *w = arg;
	uint64_t off[32], len[32], seed = 1000 + (uint64_t)w->id;
	bool live[32] = { false };
	int steps = SHM_TEST_SANITIZED ? 20000 : 100000;

	for (int step = 0; step < steps; step++) {
		int i = (int)(rnd(&seed) % 32);

		if (live[i]) {
			for (uint64_t b = 0; b < len[i]; b += 61)
				if (w->mem[off[i] + b] != (uint8_t)(w->id + i))
					w->failures++;
			fshm_arena_free(w->a, off[i]);
			live[i] = false;
			continue;
		}
		len[i] = 1 + rnd(&seed) % 3000;
		if (fshm_arena_alloc(w->a, len[i], &off[i]))
			continue;
		memset(w->mem + off[i], (uint8_t)(w->id + i), len[i]);
		live[i] = true;
	}
	for (int i = 0; i < 32; i++)
		if (live[i])
			fshm_arena_free(w->a, off[i]);
	return NULL;
}

static void arena_threads(void)
{
	struct fshm_seg_params p = shm_test_params(2, 2, 1 << 20);
	struct fshm_seg s;
	struct worker w[4];
	pthread_t t[4];
	struct fshm_arena *a;
	uint64_t off;
	int bad = 0;

	CHECK(fshm_seg_create(&p, &s) == 0, "fshm_seg_create");
	CHECK(fshm_arena_create(&a, fshm_seg_arena(&s), s.arena.bytes,
				s.arena.entry_size) == 0, "fshm_arena_create");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .a = a, .mem = fshm_seg_arena(&s),
					.id = 16 * i };
		if (pthread_create(&t[i], NULL, arena_worker, &w[i]))
			abort();
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].failures;
	}
	CHECK(bad == 0, "arena: %d foreign bytes seen", bad);
	CHECK(fshm_arena_used(a) == 0, "arena: used %llu after all frees",
	      (unsigned long long)fshm_arena_used(a));
	CHECK(fshm_arena_alloc(a, s.arena.bytes, &off) == 0,
	      "arena: not coalesced");
	fshm_arena_destroy(a);
	fshm_seg_close(&s);
	printf("PASS arena_threads\n");
}

int main(void)
{
	alarm(WATCHDOG_S); /* a hang dies of SIGALRM: FAIL, not stuck */
	ring_threads(FSHM_WAIT_SPIN, 1024, false, THREADS_N);
	ring_threads(FSHM_WAIT_HYBRID, 1024, false, THREADS_N);
	ring_threads(FSHM_WAIT_BLOCK, 1024, false, THREADS_N);
	ring_threads(FSHM_WAIT_SPIN, 1024, true, THREADS_N);
	/* A 16-entry ring sleeps every few entries: an eighth as many. */
	ring_threads(FSHM_WAIT_BLOCK, 16, true, THREADS_N / 8);
	arena_threads();
	printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
