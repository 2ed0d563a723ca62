/* SPDX-License-Identifier: MIT */
/* The arena allocator: exhaustion, coalescing, alignment, threads. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "tests/shm/shm_test.h"

TestSuite(arena, .timeout = 20);

#define MIB (1ull << 20)

static struct fshm_arena *mk(uint64_t bytes, uint32_t align)
{
	struct fshm_arena *a;

	cr_assert_eq(fshm_arena_create(&a, NULL, bytes, align), 0);
	return a;
}

/* Tiny deterministic PRNG so failures reproduce. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void shuffle(uint64_t *v, size_t n, uint64_t seed)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd(&seed) % (i + 1);
		uint64_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

Test(arena, fills_to_exhaustion_without_overlap)
{
	struct fshm_arena *a = mk(MIB, 64);
	static uint64_t off[256];
	uint64_t extra;

	for (int i = 0; i < 256; i++) {
		cr_assert_eq(fshm_arena_alloc(a, 4096, &off[i]), 0, "block %d", i);
		cr_assert_eq(off[i] % 4096, 0);
		cr_assert_lt(off[i], MIB);
		for (int j = 0; j < i; j++)
			cr_assert_neq(off[i], off[j]);
	}
	cr_assert_eq(fshm_arena_used(a), MIB);
	cr_assert_eq(fshm_arena_alloc(a, 1, &extra), -ENOMEM);
	fshm_arena_destroy(a);
}

Test(arena, too_large_is_enomem)
{
	struct fshm_arena *a = mk(MIB, 64);
	uint64_t off;

	cr_assert_eq(fshm_arena_alloc(a, MIB + 1, &off), -ENOMEM);
	cr_assert_eq(fshm_arena_alloc(a, UINT64_MAX, &off), -ENOMEM);
	cr_assert_eq(fshm_arena_alloc(a, MIB, &off), 0);
	cr_assert_eq(off, 0);
	cr_assert_eq(fshm_arena_alloc(a, 64, &off), -ENOMEM);
	fshm_arena_destroy(a);
}

Test(arena, free_in_random_order_coalesces_fully)
{
	struct fshm_arena *a = mk(MIB, 64);
	static uint64_t off[4096];
	size_t n = 0;
	uint64_t big, seed = 12345;

	/* Mixed sizes until full. */
	while (n < 4096 &&
	       !fshm_arena_alloc(a, 64 + rnd(&seed) % 2000, &off[n]))
		n++;
	cr_assert_gt(n, 500);
	shuffle(off, n, 777);
	for (size_t i = 0; i < n; i++)
		fshm_arena_free(a, off[i]);
	cr_assert_eq(fshm_arena_used(a), 0);
	/* Only a fully coalesced arena has one block of the whole size. */
	cr_assert_eq(fshm_arena_alloc(a, MIB, &big), 0);
	fshm_arena_destroy(a);
}

Test(arena, fragmentation_then_coalescing_reuse)
{
	struct fshm_arena *a = mk(MIB, 64);
	static uint64_t off[256];
	uint64_t o, hole;

	for (int i = 0; i < 256; i++)
		cr_assert_eq(fshm_arena_alloc(a, 4096, &off[i]), 0);
	/* Free every other block: half the arena is free, but in holes. */
	for (int i = 0; i < 256; i += 2)
		fshm_arena_free(a, off[i]);
	cr_assert_eq(fshm_arena_used(a), MIB / 2);
	cr_assert_eq(fshm_arena_alloc(a, 8192, &o), -ENOMEM);
	/* A hole of the right size is reused. */
	cr_assert_eq(fshm_arena_alloc(a, 4096, &hole), 0);
	cr_assert_eq(hole % 8192, 0); /* one of the even-numbered blocks */
	fshm_arena_free(a, hole);
	/* Freeing a neighbour merges three blocks into one of 12 KiB. */
	fshm_arena_free(a, off[101]);
	cr_assert_eq(fshm_arena_alloc(a, 3 * 4096, &o), 0);
	cr_assert_eq(o, off[100]);
	fshm_arena_free(a, o);
	for (int i = 1; i < 256; i += 2)
		if (i != 101)
			fshm_arena_free(a, off[i]);
	cr_assert_eq(fshm_arena_alloc(a, MIB, &o), 0);
	fshm_arena_destroy(a);
}

static void check_alignment(uint32_t align)
{
	struct fshm_arena *a = mk(16 * MIB, align);
	uint64_t off[200], seed = align;
	uint64_t g = fshm_arena_granule(a);

	cr_assert_geq(g, align);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(fshm_arena_alloc(a, 1 + rnd(&seed) % 5000,
					      &off[i]), 0);
		cr_assert_eq(off[i] % align, 0, "align %u off %llu", align,
			     (unsigned long long)off[i]);
	}
	for (int i = 0; i < 200; i += 3)
		fshm_arena_free(a, off[i]);
	for (int i = 0; i < 200; i += 3) {
		cr_assert_eq(fshm_arena_alloc(a, 1 + rnd(&seed) % 300,
					      &off[i]), 0);
		cr_assert_eq(off[i] % align, 0);
	}
	fshm_arena_destroy(a);
}

Test(arena, honours_alignment_8)    { check_alignment(8); }
Test(arena, honours_alignment_64)   { check_alignment(64); }
Test(arena, honours_alignment_256)  { check_alignment(256); }
Test(arena, honours_alignment_4096) { check_alignment(4096); }
Test(arena, honours_alignment_64k)  { check_alignment(65536); }

Test(arena, rejects_bad_create_args)
{
	struct fshm_arena *a;

	cr_assert_eq(fshm_arena_create(&a, NULL, MIB, 48), -EINVAL);
	cr_assert_eq(fshm_arena_create(&a, NULL, 32, 64), -EINVAL);
	cr_assert_eq(fshm_arena_create(&a, (void *)0x1010, MIB, 64), -EINVAL);
}

Test(arena, zero_bytes_gets_a_unique_offset)
{
	struct fshm_arena *a = mk(MIB, 64);
	uint64_t x, y;

	cr_assert_eq(fshm_arena_alloc(a, 0, &x), 0);
	cr_assert_eq(fshm_arena_alloc(a, 0, &y), 0);
	cr_assert_neq(x, y);
	fshm_arena_free(a, x);
	fshm_arena_free(a, y);
	fshm_arena_destroy(a);
}

Test(arena, huge_arena_keeps_bookkeeping_bounded)
{
	struct fshm_arena *a = mk(64ull << 30, 64); /* address space only */
	uint64_t off;

	cr_assert_eq(fshm_arena_granule(a), 4096); /* 64 GiB / 2^24 */
	cr_assert_eq(fshm_arena_alloc(a, 10ull << 30, &off), 0);
	fshm_arena_free(a, off);
	fshm_arena_destroy(a);
}

Test(arena, double_free_aborts, .signal = SIGABRT)
{
	struct fshm_arena *a = mk(MIB, 64);
	uint64_t off, other;

	cr_assert_eq(fshm_arena_alloc(a, 100, &off), 0);
	cr_assert_eq(fshm_arena_alloc(a, 100, &other), 0);
	fshm_arena_free(a, off);
	fshm_arena_free(a, off);
}

Test(arena, free_of_unknown_offset_aborts, .signal = SIGABRT)
{
	struct fshm_arena *a = mk(MIB, 64);
	uint64_t off;

	cr_assert_eq(fshm_arena_alloc(a, 1000, &off), 0);
	fshm_arena_free(a, off + 64);
}

/* Random alloc / free against a byte map of who owns what. */
Test(arena, random_workload_never_overlaps)
{
	enum { N = 512 };
	struct fshm_arena *a = mk(MIB, 64);
	static uint8_t owner[MIB / 64];
	uint64_t off[N], len[N], seed = 99;
	bool live[N] = { false };

	for (int step = 0; step < 200000; step++) {
		int i = (int)(rnd(&seed) % N);

		if (live[i]) {
			for (uint64_t g = off[i] / 64; g < (off[i] + len[i] + 63) / 64; g++)
				owner[g] = 0;
			fshm_arena_free(a, off[i]);
			live[i] = false;
			continue;
		}
		len[i] = 1 + rnd(&seed) % 8000;
		if (fshm_arena_alloc(a, len[i], &off[i]))
			continue; /* full right now: fine */
		cr_assert_leq(off[i] + len[i], MIB);
		for (uint64_t g = off[i] / 64; g < (off[i] + len[i] + 63) / 64; g++) {
			cr_assert_eq(owner[g], 0, "overlap at granule %llu",
				     (unsigned long long)g);
			owner[g] = 1;
		}
		live[i] = true;
	}
	for (int i = 0; i < N; i++)
		if (live[i])
			fshm_arena_free(a, off[i]);
	cr_assert_eq(fshm_arena_used(a), 0);
	cr_assert_eq(fshm_arena_alloc(a, MIB, &off[0]), 0);
	fshm_arena_destroy(a);
}

/* ---- four threads on one arena, writing into real memory -------------- */

struct worker {
	struct fshm_arena *a;
	uint8_t *mem;
	int id;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t off[32], len[32], seed = 1000 + (uint64_t)w->id;
	bool live[32] = { false };

	for (int step = 0; step < 50000; step++) {
		int i = (int)(rnd(&seed) % 32);

		if (live[i]) {
			/* Nobody else wrote into our block. */
			for (uint64_t b = 0; b < len[i]; b++)
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

Test(arena, four_threads_share_one_arena)
{
	struct fshm_seg_params p = shm_test_params(2, 2, 2 * MIB);
	struct fshm_seg s;
	struct worker w[4];
	pthread_t t[4];
	struct fshm_arena *a;
	uint64_t off;

	cr_assert_eq(fshm_seg_create(&p, &s), 0);
	cr_assert_eq(fshm_arena_create(&a, fshm_seg_arena(&s), s.arena.bytes,
				       s.arena.entry_size), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .a = a, .mem = fshm_seg_arena(&s),
					.id = 16 * i };
		cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].failures, 0, "thread %d saw foreign bytes", i);
	}
	cr_assert_eq(fshm_arena_used(a), 0);
	cr_assert_eq(fshm_arena_alloc(a, s.arena.bytes, &off), 0);
	fshm_arena_destroy(a);
	fshm_seg_close(&s);
}
