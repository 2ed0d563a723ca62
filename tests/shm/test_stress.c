/* SPDX-License-Identifier: MIT */
/*
 * Cross-process ring stress: a forked producer (the "client", which
 * attaches the segment through its fd like a real client) streams 10
 * million entries to the parent (the "broker"), which checks every one:
 * sequence number, derived words and checksum.  One test per wait policy.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "tests/shm/stress.h"

#define STRESS_N shm_test_stress_n(SHM_TEST_SANITIZED ? 1000000ull : 10000000ull)

static void run_processes(enum fshm_wait_policy policy, uint32_t entries,
			  uint64_t n)
{
	struct fshm_seg_params p = shm_test_params(entries, 2, 4096);
	struct fshm_seg seg;
	struct stress_side cons;
	int cons_efd, prod_efd, status, ret;
	pid_t pid;

	cr_assert_eq(fshm_seg_create(&p, &seg), 0);
	cons_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	prod_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert(cons_efd >= 0 && prod_efd >= 0);

	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct fshm_seg mine;
		struct stress_side prod;

		shm_test_child_guard(90);
		/* A second, independent mapping, as the client would have. */
		if (fshm_seg_attach(dup(seg.fd), &mine))
			_exit(10);
		stress_bind(&prod, mine.base, &mine.sq, true, cons_efd,
			    prod_efd, policy, n);
		ret = stress_produce(&prod);
		_exit(ret ? 11 : 0);
	}

	stress_bind(&cons, seg.base, &seg.sq, false, cons_efd, prod_efd,
		    policy, n);
	ret = stress_consume(&cons);
	if (ret)
		kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(ret, 0, "%s: consumer failed: %s (first bad seq %llu)",
		     fshm_wait_policy_name(policy), strerror(-ret),
		     (unsigned long long)cons.bad_seq);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "%s: producer failed (status %#x)",
		  fshm_wait_policy_name(policy), status);
	close(cons_efd);
	close(prod_efd);
	fshm_seg_close(&seg);
}

TestSuite(stress_proc, .timeout = 120);

Test(stress_proc, ten_million_entries_spin)
{
	run_processes(FSHM_WAIT_SPIN, 1u << 14, STRESS_N);
}

Test(stress_proc, ten_million_entries_hybrid)
{
	run_processes(FSHM_WAIT_HYBRID, 1u << 14, STRESS_N);
}

Test(stress_proc, ten_million_entries_block)
{
	run_processes(FSHM_WAIT_BLOCK, 1u << 14, STRESS_N);
}

/* A tiny ring: the producer hits "full" constantly, so the space doorbell
 * (consumer -> producer) is exercised as much as the data one.  A wake-up
 * per <= 8 entries costs ~10 us here, hence a tenth of the entries. */
Test(stress_proc, small_ring_block_both_directions)
{
	run_processes(FSHM_WAIT_BLOCK, 8, STRESS_N / 10);
}
