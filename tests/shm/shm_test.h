/* SPDX-License-Identifier: MIT */
/*
 * shm_test.h - helpers shared by the shm test programs (header-only, each
 * program includes it once).
 */
#ifndef FERRY_TESTS_SHM_TEST_H
#define FERRY_TESTS_SHM_TEST_H

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "shm/fshm.h"

/* Sanitizers slow the hot loops 5-20x: the stress tests scale down. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SHM_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SHM_TEST_SANITIZED 1
#endif
#endif
#ifndef SHM_TEST_SANITIZED
#define SHM_TEST_SANITIZED 0
#endif

/*
 * Entry counts of the stress loops: `dflt`, unless FERRY_SHM_STRESS_N is
 * set (a valgrind or debugging run wants far fewer).
 */
static inline uint64_t shm_test_stress_n(uint64_t dflt)
{
	const char *e = getenv("FERRY_SHM_STRESS_N");
	unsigned long long v = e ? strtoull(e, NULL, 10) : 0;

	return v ? (uint64_t)v : dflt;
}

static inline struct fshm_seg_params shm_test_params(uint32_t sq, uint32_t cq,
						     uint64_t arena)
{
	struct fshm_seg_params p = {
		.sq_entries = sq,
		.cq_entries = cq,
		.arena_bytes = arena,
		.numa_node = -1,
		.epoch = 1234,
		.session_id = 42,
	};
	return p;
}

/*
 * A stress entry is 8 words: w[0] the sequence number, w[1..6] derived from
 * it, w[7] a checksum of w[0..6].  The consumer recomputes all of it, so a
 * lost, duplicated, reordered or torn entry cannot pass.
 */
static const uint64_t shm_test_k[7] = {
	1, 0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull, 0x94d049bb133111ebull,
	0xd6e8feb86659fd93ull, 0xa0761d6478bd642full, 0xe7037ed1a0b428dbull,
};

static inline uint64_t shm_test_sum(const uint64_t *w)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (int i = 0; i < 7; i++) {
		h ^= w[i];
		h = (h << 13 | h >> 51) * 0x100000001b3ull;
	}
	return h;
}

static inline void shm_test_fill(void *entry, uint64_t seq)
{
	uint64_t *w = entry;

	for (int i = 0; i < 7; i++)
		w[i] = seq * shm_test_k[i] + (uint64_t)i;
	w[7] = shm_test_sum(w);
}

static inline bool shm_test_check(const void *entry, uint64_t seq)
{
	const uint64_t *w = entry;

	for (int i = 0; i < 7; i++)
		if (w[i] != seq * shm_test_k[i] + (uint64_t)i)
			return false;
	return w[7] == shm_test_sum(w);
}

/*
 * For a forked peer: die with the parent (so a failed or timed-out test
 * leaves nothing behind) and never outlive `secs`.
 */
static inline void shm_test_child_guard(unsigned secs)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(secs);
}

#endif /* FERRY_TESTS_SHM_TEST_H */
