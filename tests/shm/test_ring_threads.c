/* SPDX-License-Identifier: MIT */
/*
 * Threaded ring stress: the same producer and consumer loops as
 * test_stress.c, as two threads of one process over one mapping, so that
 * ThreadSanitizer (which sees threads, not processes) checks the rings'
 * acquire / release edges.  Both copy and zero-copy paths, every policy.
 */
#include <pthread.h>
#include <sys/eventfd.h>

#include <criterion/criterion.h>

#include "tests/shm/stress.h"

#define THREADS_N (SHM_TEST_SANITIZED ? 300000ull : 2000000ull)

static void *producer_main(void *arg)
{
	struct stress_side *s = arg;

	return (void *)(intptr_t)stress_produce(s);
}

static void run_threads(enum fshm_wait_policy policy, uint32_t entries,
			bool zero_copy)
{
	struct fshm_seg_params p = shm_test_params(entries, 2, 4096);
	struct fshm_seg seg;
	struct stress_side prod, cons;
	pthread_t t;
	void *pret;
	int cons_efd, prod_efd, ret;

	cr_assert_eq(fshm_seg_create(&p, &seg), 0);
	cons_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	prod_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert(cons_efd >= 0 && prod_efd >= 0);
	/* One mapping for both: TSan must see the same addresses. */
	stress_bind(&prod, seg.base, &seg.sq, true, cons_efd, prod_efd,
		    policy, THREADS_N);
	stress_bind(&cons, seg.base, &seg.sq, false, cons_efd, prod_efd,
		    policy, THREADS_N);
	prod.zero_copy = cons.zero_copy = zero_copy;

	cr_assert_eq(pthread_create(&t, NULL, producer_main, &prod), 0);
	ret = stress_consume(&cons);
	/* A failed consumer leaves the producer stuck until its wait times
	 * out (STRESS_WAIT_NS), then it returns: join is bounded. */
	pthread_join(t, &pret);
	cr_assert_eq(ret, 0, "%s: consumer failed: %s (first bad seq %llu)",
		     fshm_wait_policy_name(policy), strerror(-ret),
		     (unsigned long long)cons.bad_seq);
	cr_assert_eq((intptr_t)pret, 0, "producer failed: %d",
		     (int)(intptr_t)pret);
	close(cons_efd);
	close(prod_efd);
	fshm_seg_close(&seg);
}

TestSuite(stress_threads, .timeout = 120);

Test(stress_threads, copy_spin)       { run_threads(FSHM_WAIT_SPIN, 1024, false); }
Test(stress_threads, copy_hybrid)     { run_threads(FSHM_WAIT_HYBRID, 1024, false); }
Test(stress_threads, copy_block)      { run_threads(FSHM_WAIT_BLOCK, 1024, false); }
Test(stress_threads, zero_copy_spin)  { run_threads(FSHM_WAIT_SPIN, 1024, true); }
Test(stress_threads, zero_copy_block) { run_threads(FSHM_WAIT_BLOCK, 16, true); }
