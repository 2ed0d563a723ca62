/* SPDX-License-Identifier: MIT */
/*
 * fshm_arena.c - the arena allocator: a TLSF (two-level segregated fit)
 * allocator over offsets, with its bookkeeping in private memory.
 *
 * Why TLSF: allocation and free are O(1) in the worst case, not just
 * amortised: a size maps to a (first level, second level) class with a
 * couple of bit operations, two bitmaps find the first non-empty class
 * that is large enough with ffs, and free coalesces with the physical
 * neighbours through boundary tags.  Second-level classes (16 per power of
 * two) keep the internal waste of a "good fit" below 1/16.
 *
 * Units.  Everything is counted in granules of G bytes, G a power of two:
 * max(alignment, 64), raised further for arenas above 1 GiB so that the
 * tag table stays at most 2^24 entries (a 16 GiB arena gets G = 1 KiB).
 * Every block starts on a granule, so every offset handed out is aligned
 * to G and thus to the requested alignment.
 *
 * Boundary tags, privately.  The tags live in a private table indexed by
 * granule (tags[g] describes the block starting at granule g, if any), not
 * in headers inside the arena: the broker maps the arena read-write and a
 * header it scribbled on would corrupt the client's allocator.  The table
 * is an anonymous MAP_NORESERVE mapping: 16 bytes per granule of address
 * space (1/4 of the arena at G = 64), but only the pages holding tags of
 * actual block starts are ever touched, so large blocks cost almost no
 * memory.  A tag keeps the block's size and the size of the block before
 * it, which gives O(1) access to both neighbours.
 *
 * Thread safety: one pthread mutex per arena guards every field below; it
 * is held for O(1) work per call, so contention stays short.  Several
 * threads of the client may allocate and free at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shm/fshm.h"

#define FSHM__SL_LOG2   4
#define FSHM__SL_COUNT  (1u << FSHM__SL_LOG2)
#define FSHM__FL_COUNT  28          /* sizes below 2^31 granules */
#define FSHM__NIL       UINT32_MAX
#define FSHM__FREE      (1u << 31)  /* in tag.size: the block is free */
#define FSHM__MAX_GRAN  (1u << 31)
#define FSHM__TBL_LOG2  24          /* tag table entries, at most 2^24 */

/* Private; meaningful only where a block starts (size != 0). */
struct fshm__tag {
	uint32_t size;      /* granules, | FSHM__FREE; 0: no block here */
	uint32_t prev;      /* size of the block before; 0 for the first */
	uint32_t next_free; /* free list links (granule indices, or NIL) */
	uint32_t prev_free;
};

/* Owned by the client process; `lock` guards every other field. */
struct fshm_arena {
	pthread_mutex_t lock;
	void *base;                 /* arena start, for the owner's use */
	unsigned gshift;            /* G = 1 << gshift */
	uint32_t ngran;             /* granules in the arena */
	_Atomic uint64_t used;      /* bytes in allocated blocks; written
				     * under lock, read without it */
	struct fshm__tag *tags;     /* ngran entries */
	size_t tags_bytes;
	uint32_t fl_map;            /* bit f: some sl list of f non-empty */
	uint32_t sl_map[FSHM__FL_COUNT];
	uint32_t heads[FSHM__FL_COUNT][FSHM__SL_COUNT];
};

static inline unsigned fshm__log2(uint64_t x)
{
	return 63u - (unsigned)__builtin_clzll(x);
}

static inline uint32_t fshm__size(const struct fshm__tag *t)
{
	return t->size & ~FSHM__FREE;
}

/* The class a free block of s granules is filed under. */
static inline void fshm__mapping_insert(uint32_t s, unsigned *fl, unsigned *sl)
{
	unsigned f;

	if (s < FSHM__SL_COUNT) {
		*fl = 0;
		*sl = s;
		return;
	}
	f = fshm__log2(s);
	*fl = f - (FSHM__SL_LOG2 - 1);
	*sl = (s >> (f - FSHM__SL_LOG2)) - FSHM__SL_COUNT;
}

/*
 * The first class whose every block holds s granules: round s up to the
 * next class boundary.  False when no class can (s too large).
 */
static inline bool fshm__mapping_search(uint32_t s, unsigned *fl, unsigned *sl)
{
	uint64_t r = s;

	if (s >= FSHM__SL_COUNT)
		r += (1ull << (fshm__log2(s) - FSHM__SL_LOG2)) - 1;
	if (r >= FSHM__MAX_GRAN)
		return false;
	fshm__mapping_insert((uint32_t)r, fl, sl);
	return true;
}

static void fshm__insert(struct fshm_arena *a, uint32_t g)
{
	struct fshm__tag *t = &a->tags[g];
	unsigned fl, sl;
	uint32_t head;

	fshm__mapping_insert(fshm__size(t), &fl, &sl);
	head = a->heads[fl][sl];
	t->size |= FSHM__FREE;
	t->prev_free = FSHM__NIL;
	t->next_free = head;
	if (head != FSHM__NIL)
		a->tags[head].prev_free = g;
	a->heads[fl][sl] = g;
	a->sl_map[fl] |= 1u << sl;
	a->fl_map |= 1u << fl;
}

static void fshm__remove(struct fshm_arena *a, uint32_t g)
{
	struct fshm__tag *t = &a->tags[g];
	unsigned fl, sl;

	fshm__mapping_insert(fshm__size(t), &fl, &sl);
	if (t->prev_free != FSHM__NIL)
		a->tags[t->prev_free].next_free = t->next_free;
	else
		a->heads[fl][sl] = t->next_free;
	if (t->next_free != FSHM__NIL)
		a->tags[t->next_free].prev_free = t->prev_free;
	if (a->heads[fl][sl] == FSHM__NIL) {
		a->sl_map[fl] &= ~(1u << sl);
		if (!a->sl_map[fl])
			a->fl_map &= ~(1u << fl);
	}
	t->size &= ~FSHM__FREE;
}

/* Head of the first non-empty list at class (fl, sl) or above, or NIL. */
static uint32_t fshm__find(struct fshm_arena *a, unsigned fl, unsigned sl)
{
	uint32_t map = a->sl_map[fl] & (~0u << sl);

	if (!map) {
		map = fl + 1 < FSHM__FL_COUNT ? a->fl_map & (~0u << (fl + 1))
					      : 0;
		if (!map)
			return FSHM__NIL;
		fl = (unsigned)__builtin_ctz(map);
		map = a->sl_map[fl];
	}
	sl = (unsigned)__builtin_ctz(map);
	return a->heads[fl][sl];
}

int fshm_arena_create(struct fshm_arena **out, void *base, uint64_t bytes,
		      uint32_t align)
{
	struct fshm_arena *a;
	unsigned gshift;
	uint64_t ngran;

	if (!out)
		return -EINVAL;
	if (!align)
		align = 64;
	if (align & (align - 1) || (uintptr_t)base & (align - 1))
		return -EINVAL;
	gshift = fshm__log2(align);
	if (gshift < 6)
		gshift = 6;
	while ((bytes >> gshift) > (1ull << FSHM__TBL_LOG2) && gshift < 40)
		gshift++;
	ngran = bytes >> gshift;
	if (!ngran)
		return -EINVAL;
	if (ngran >= FSHM__MAX_GRAN)
		return -E2BIG;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->tags_bytes = (size_t)ngran * sizeof(struct fshm__tag);
	a->tags = mmap(NULL, a->tags_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->tags == MAP_FAILED) {
		free(a);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&a->lock, NULL)) {
		munmap(a->tags, a->tags_bytes);
		free(a);
		return -ENOMEM;
	}
	a->base = base;
	a->gshift = gshift;
	a->ngran = (uint32_t)ngran;
	memset(a->heads, 0xff, sizeof(a->heads)); /* all NIL */
	a->tags[0].size = (uint32_t)ngran;
	a->tags[0].prev = 0;
	fshm__insert(a, 0);
	*out = a;
	return 0;
}

void fshm_arena_destroy(struct fshm_arena *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	munmap(a->tags, a->tags_bytes);
	free(a);
}

int fshm_arena_alloc(struct fshm_arena *a, uint64_t bytes, uint64_t *off)
{
	uint64_t gbytes = 1ull << a->gshift;
	uint32_t s, g, size, rest;
	unsigned fl, sl;

	/* Zero bytes still gets its own granule: a unique, valid offset (a
	 * tensor with a zero dimension has one too). */
	if (bytes > (uint64_t)a->ngran << a->gshift)
		return -ENOMEM;
	s = bytes ? (uint32_t)((bytes + gbytes - 1) >> a->gshift) : 1;
	if (!fshm__mapping_search(s, &fl, &sl))
		return -ENOMEM;

	pthread_mutex_lock(&a->lock);
	g = fshm__find(a, fl, sl);
	if (g == FSHM__NIL) {
		pthread_mutex_unlock(&a->lock);
		return -ENOMEM;
	}
	fshm__remove(a, g);
	size = fshm__size(&a->tags[g]);
	rest = size - s;
	if (rest) {
		/* Split: the tail becomes a free block of its own. */
		uint32_t r = g + s, n = g + size;

		a->tags[g].size = s;
		a->tags[r].size = rest;
		a->tags[r].prev = s;
		if (n < a->ngran)
			a->tags[n].prev = rest;
		fshm__insert(a, r);
	}
	atomic_store_explicit(&a->used,
			      atomic_load_explicit(&a->used,
						   memory_order_relaxed) +
			      ((uint64_t)s << a->gshift),
			      memory_order_relaxed);
	pthread_mutex_unlock(&a->lock);
	*off = (uint64_t)g << a->gshift;
	return 0;
}

void fshm_arena_free(struct fshm_arena *a, uint64_t off)
{
	uint32_t g, n, size;
	struct fshm__tag *t;

	pthread_mutex_lock(&a->lock);
	g = (uint32_t)(off >> a->gshift);
	t = &a->tags[g];
	/*
	 * A bad offset (not from fshm_arena_alloc, or freed twice) would
	 * corrupt the free lists silently: stop here instead, as malloc
	 * does on a double free.
	 */
	if (off & ((1ull << a->gshift) - 1) || off >> a->gshift >= a->ngran ||
	    !t->size || t->size & FSHM__FREE) {
		fprintf(stderr, "fshm_arena_free: bad offset %llu\n",
			(unsigned long long)off);
		abort();
	}
	size = t->size;
	atomic_store_explicit(&a->used,
			      atomic_load_explicit(&a->used,
						   memory_order_relaxed) -
			      ((uint64_t)size << a->gshift),
			      memory_order_relaxed);

	/* Coalesce with the next block... */
	n = g + size;
	if (n < a->ngran && a->tags[n].size & FSHM__FREE) {
		fshm__remove(a, n);
		size += a->tags[n].size;
		a->tags[n].size = 0;
	}
	/* ...and with the previous one. */
	if (t->prev && a->tags[g - t->prev].size & FSHM__FREE) {
		uint32_t p = g - t->prev;

		fshm__remove(a, p);
		size += a->tags[p].size;
		t->size = 0;
		g = p;
		t = &a->tags[g];
	}
	t->size = size;
	n = g + size;
	if (n < a->ngran)
		a->tags[n].prev = size;
	fshm__insert(a, g);
	pthread_mutex_unlock(&a->lock);
}

uint64_t fshm_arena_used(const struct fshm_arena *a)
{
	/* Relaxed: a statistic; exact only when no call is in flight. */
	return atomic_load_explicit(&a->used, memory_order_relaxed);
}

uint64_t fshm_arena_granule(const struct fshm_arena *a)
{
	return 1ull << a->gshift;
}
