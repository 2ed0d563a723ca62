/* SPDX-License-Identifier: MIT */
/* SPSC rings: functional behaviour in one thread, and hostile indices. */
#include <errno.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "tests/shm/shm_test.h"

static struct fshm_seg seg;
static struct fshm_ring prod, cons;

/* A segment whose SQ ring holds `entries`; prod/cons bound to it with both
 * indices starting at `start`. */
static void ring_setup(uint32_t entries, uint32_t start)
{
	struct fshm_seg_params p = shm_test_params(entries, 2, 4096);
	struct fshm_ring_ctl *ctl;

	cr_assert_eq(fshm_seg_create(&p, &seg), 0);
	ctl = (struct fshm_ring_ctl *)((char *)seg.base + seg.sq.offset);
	atomic_store(&ctl->tail, start);
	atomic_store(&ctl->head, start);
	fshm_ring_init(&prod, seg.base, &seg.sq, true);
	fshm_ring_init(&cons, seg.base, &seg.sq, false);
}

static void ring_teardown(void)
{
	fshm_seg_close(&seg);
}

static struct fshm_ring_ctl *ctl(void)
{
	return prod.ctl;
}

static void push(uint64_t seq, unsigned n)
{
	uint64_t buf[64 * 8];

	cr_assert_leq(n, 64);
	for (unsigned i = 0; i < n; i++)
		shm_test_fill(&buf[8 * i], seq + i);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf, n), (int)n);
}

static void pop(uint64_t seq, unsigned n)
{
	uint64_t buf[64 * 8];

	cr_assert_leq(n, 64);
	cr_assert_eq(fshm_ring_dequeue_burst(&cons, buf, n), (int)n);
	for (unsigned i = 0; i < n; i++)
		cr_assert(shm_test_check(&buf[8 * i], seq + i),
			  "entry %llu corrupted", (unsigned long long)(seq + i));
}

TestSuite(ring, .fini = ring_teardown, .timeout = 10);

Test(ring, empty_ring_dequeues_nothing)
{
	uint64_t buf[8];

	ring_setup(8, 0);
	cr_assert_eq(fshm_ring_dequeue_burst(&cons, buf, 1), 0);
	cr_assert_eq(fshm_ring_count(&cons), 0);
	cr_assert_eq(fshm_ring_count(&prod), 8);
	cr_assert_not(fshm_ring_ready(&cons));
	cr_assert(fshm_ring_ready(&prod));
}

Test(ring, full_ring_enqueues_nothing)
{
	uint64_t buf[8] = { 0 };

	ring_setup(8, 0);
	push(0, 8);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf, 1), 0);
	cr_assert_eq(fshm_ring_count(&prod), 0);
	cr_assert_eq(fshm_ring_count(&cons), 8);
	cr_assert_not(fshm_ring_ready(&prod));
	pop(0, 1);
	push(8, 1);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf, 1), 0);
}

Test(ring, wraps_around_the_slots_in_order)
{
	uint64_t in = 0, out = 0;

	ring_setup(4, 0);
	/* Odd burst sizes so that bursts straddle the end of the slots. */
	for (int round = 0; round < 1000; round++) {
		unsigned n = 1 + (unsigned)round % 3;

		push(in, n);
		in += n;
		pop(out, n);
		out += n;
	}
	cr_assert_eq(fshm_ring_count(&cons), 0);
}

Test(ring, indices_wrap_past_2_pow_32)
{
	uint64_t in = 0, out = 0;

	ring_setup(8, UINT32_MAX - 5);
	cr_assert_eq(fshm_ring_count(&prod), 8);
	push(in, 8);
	in += 8;
	/* tail has crossed 2^32 and is now below head numerically. */
	cr_assert_lt(atomic_load(&ctl()->tail), atomic_load(&ctl()->head));
	cr_assert_eq(fshm_ring_count(&cons), 8);
	cr_assert_eq(fshm_ring_count(&prod), 0);
	for (int round = 0; round < 20; round++) {
		pop(out, 5);
		out += 5;
		push(in, 5);
		in += 5;
	}
	pop(out, 8);
	cr_assert_eq(fshm_ring_count(&cons), 0);
	cr_assert_eq(fshm_ring_count(&prod), 8);
}

Test(ring, burst_is_cut_to_what_fits)
{
	uint64_t buf[16 * 8];

	ring_setup(16, 0);
	for (unsigned i = 0; i < 16; i++)
		shm_test_fill(&buf[8 * i], i);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf, 10), 10);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf + 80, 16), 6);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(fshm_ring_dequeue_burst(&cons, buf, 4), 4);
	cr_assert_eq(fshm_ring_dequeue_burst(&cons, buf + 32, 16), 12);
	for (unsigned i = 0; i < 16; i++)
		cr_assert(shm_test_check(&buf[8 * i], i));
}

Test(ring, burst_publishes_with_one_tail_store)
{
	ring_setup(64, 0);
	push(0, 64);
	cr_assert_eq(atomic_load(&ctl()->tail), 64);
	pop(0, 64);
	cr_assert_eq(atomic_load(&ctl()->head), 64);
}

Test(ring, zero_copy_reserve_commit_release)
{
	ring_setup(8, UINT32_MAX - 2);
	cr_assert_eq(fshm_ring_avail(&prod, 5), 5);
	for (unsigned i = 0; i < 5; i++)
		shm_test_fill(fshm_ring_slot(&prod, i), 100 + i);
	cr_assert_eq(fshm_ring_avail(&cons, 8), 0); /* not committed yet */
	cr_assert_eq(fshm_ring_commit(&prod, 5), 0);
	cr_assert_eq(fshm_ring_avail(&cons, 8), 5);
	for (unsigned i = 0; i < 5; i++)
		cr_assert(shm_test_check(fshm_ring_slot(&cons, i), 100 + i));
	cr_assert_eq(fshm_ring_release(&cons, 5), 0);
	cr_assert_eq(fshm_ring_avail(&prod, 8), 8);
}

Test(ring, commit_beyond_avail_is_refused)
{
	ring_setup(8, 0);
	cr_assert_eq(fshm_ring_commit(&prod, 9), -EINVAL);
	cr_assert_eq(fshm_ring_release(&cons, 1), -EINVAL);
	cr_assert_eq(fshm_ring_release(&prod, 0), -EINVAL); /* wrong side */
	cr_assert_eq(fshm_ring_commit(&cons, 0), -EINVAL);
}

Test(ring, consumer_rejects_tail_beyond_capacity)
{
	uint64_t buf[8];

	ring_setup(8, 100);
	atomic_store(&ctl()->tail, 100 + 9);
	cr_assert_eq(fshm_ring_dequeue_burst(&cons, buf, 1), -EBADMSG);
	cr_assert_eq(fshm_ring_count(&cons), -EBADMSG);
	cr_assert(fshm_ring_ready(&cons)); /* so a waiter wakes to see it */
}

Test(ring, consumer_rejects_tail_behind_head)
{
	uint64_t buf[8];

	ring_setup(8, 100);
	atomic_store(&ctl()->tail, 99);
	cr_assert_eq(fshm_ring_dequeue_burst(&cons, buf, 1), -EBADMSG);
}

Test(ring, producer_rejects_head_ahead_of_tail)
{
	uint64_t buf[8] = { 0 };

	ring_setup(8, 100);
	push(0, 8); /* full: the producer must read head */
	atomic_store(&ctl()->head, 109);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf, 1), -EBADMSG);
	cr_assert_eq(fshm_ring_count(&prod), -EBADMSG);
}

Test(ring, producer_rejects_head_too_far_behind)
{
	uint64_t buf[8] = { 0 };

	ring_setup(8, 100);
	push(0, 8);
	atomic_store(&ctl()->head, 100 - 1);
	cr_assert_eq(fshm_ring_enqueue_burst(&prod, buf, 1), -EBADMSG);
}

Test(ring, hostile_index_does_not_move_own_index)
{
	ring_setup(8, 0);
	push(0, 3);
	/* The consumer's own head is private: scribbling on the shared copy
	 * changes nothing it reads next. */
	atomic_store(&ctl()->head, 2);
	pop(0, 3);
	cr_assert_eq(atomic_load(&ctl()->head), 3);
}
