/* SPDX-License-Identifier: MIT */
/*
 * stress.h - the producer and consumer loops of the ring stress tests, run
 * either as two processes or as two threads over the same segment code.
 *
 * The producer streams n entries (shm_test_fill) into a ring in bursts of
 * varying size and rings the consumer's doorbell after each; when the ring
 * is full it waits on its own doorbell, which the consumer rings after each
 * dequeue: doorbells in both directions, so `block` and `hybrid` cannot
 * hang on a full ring any more than on an empty one.
 */
#ifndef FERRY_TESTS_SHM_STRESS_H
#define FERRY_TESTS_SHM_STRESS_H

#include <errno.h>
#include <stdio.h>

#include "tests/shm/shm_test.h"

#define STRESS_BURST 64
#define STRESS_WAIT_NS (20ll * 1000000000ll) /* a stall this long fails */

struct stress_side {
	struct fshm_ring ring;
	struct fshm_doorbell wake_peer; /* rung after each burst */
	struct fshm_doorbell wait_me;   /* waited on when stuck */
	enum fshm_wait_policy policy;
	uint64_t n;
	bool zero_copy;                 /* slot / commit / release path */
	uint64_t bad_seq;               /* consumer: first mismatch */
};

/* Burst sizes 1..STRESS_BURST, varying with the position. */
static inline unsigned stress_burst(uint64_t seq, uint64_t n)
{
	uint64_t k = 1 + (seq * 7 / 5) % STRESS_BURST;

	return (unsigned)(k < n - seq ? k : n - seq);
}

static inline int stress_wait(struct stress_side *s)
{
	return fshm_doorbell_wait(&s->wait_me, s->policy, fshm_ring_ready,
				  &s->ring, STRESS_WAIT_NS, 0);
}

static inline int stress_produce(struct stress_side *s)
{
	uint64_t buf[STRESS_BURST * 8];
	uint64_t seq = 0;
	int k, ret;

	while (seq < s->n) {
		unsigned want = stress_burst(seq, s->n);

		if (s->zero_copy) {
			k = fshm_ring_avail(&s->ring, want);
			for (int i = 0; i < k; i++)
				shm_test_fill(fshm_ring_slot(&s->ring, (unsigned)i),
					      seq + (uint64_t)i);
			if (k > 0 && fshm_ring_commit(&s->ring, (unsigned)k))
				return -EINVAL;
		} else {
			for (unsigned i = 0; i < want; i++)
				shm_test_fill(&buf[8 * i], seq + i);
			k = fshm_ring_enqueue_burst(&s->ring, buf, want);
		}
		if (k < 0)
			return k;
		if (k > 0) {
			seq += (uint64_t)k;
			ret = fshm_doorbell_ring(&s->wake_peer);
			if (ret < 0)
				return ret;
			continue;
		}
		ret = stress_wait(s);
		if (ret)
			return ret;
	}
	return 0;
}

static inline int stress_consume(struct stress_side *s)
{
	uint64_t buf[STRESS_BURST * 8];
	uint64_t seq = 0;
	int k, ret;

	while (seq < s->n) {
		unsigned want = stress_burst(seq, s->n);

		if (s->zero_copy) {
			k = fshm_ring_avail(&s->ring, want);
			for (int i = 0; i < k; i++)
				if (!shm_test_check(fshm_ring_slot(&s->ring,
								   (unsigned)i),
						    seq + (uint64_t)i)) {
					s->bad_seq = seq + (uint64_t)i;
					return -EBADMSG;
				}
			if (k > 0 && fshm_ring_release(&s->ring, (unsigned)k))
				return -EINVAL;
		} else {
			k = fshm_ring_dequeue_burst(&s->ring, buf, want);
			for (int i = 0; i < k; i++)
				if (!shm_test_check(&buf[8 * i],
						    seq + (uint64_t)i)) {
					s->bad_seq = seq + (uint64_t)i;
					return -EBADMSG;
				}
		}
		if (k < 0)
			return k;
		if (k > 0) {
			seq += (uint64_t)k;
			ret = fshm_doorbell_ring(&s->wake_peer);
			if (ret < 0)
				return ret;
			continue;
		}
		ret = stress_wait(s);
		if (ret)
			return ret;
	}
	/* Nothing beyond what was sent. */
	return fshm_ring_count(&s->ring) == 0 ? 0 : -EBADMSG;
}

/*
 * Bind one side to a mapping: `base` is this side's view of the segment,
 * `cons_efd` / `prod_efd` the two shared eventfds.  The consumer sleeps on
 * broker_wake (it plays the broker reading the SQ), the producer on
 * client_wake.
 */
static inline void stress_bind(struct stress_side *s, void *base,
			       const struct fshm_area *sq, bool producer,
			       int cons_efd, int prod_efd,
			       enum fshm_wait_policy policy, uint64_t n)
{
	struct fshm_hdr *h = base;
	_Atomic uint32_t *cons_flag = &h->broker_wake.sleeping;
	_Atomic uint32_t *prod_flag = &h->client_wake.sleeping;

	memset(s, 0, sizeof(*s));
	fshm_ring_init(&s->ring, base, sq, producer);
	if (producer) {
		fshm_doorbell_init(&s->wake_peer, cons_efd, cons_flag);
		fshm_doorbell_init(&s->wait_me, prod_efd, prod_flag);
	} else {
		fshm_doorbell_init(&s->wake_peer, prod_efd, prod_flag);
		fshm_doorbell_init(&s->wait_me, cons_efd, cons_flag);
	}
	s->policy = policy;
	s->n = n;
}

#endif /* FERRY_TESTS_SHM_STRESS_H */
