/* SPDX-License-Identifier: MIT */
/*
 * fshm_ring.c - single-producer single-consumer rings of fixed-size entries
 * in a shared segment.
 *
 * Indices run free over uint32 and wrap at 2^32; the slot of index i is
 * i & mask.  tail - head (mod 2^32) is the number of entries in the ring,
 * which is why the capacity must be a power of two <= 2^31 (ours are far
 * below).  Each side keeps its own index in its private handle and only
 * ever *stores* it to the shared control block; it never reads it back, so
 * a hostile peer cannot move it.  The other side's index is read from the
 * control block, cached, and checked before it is believed.
 *
 * Memory ordering.  Two synchronisation edges, one per direction:
 *
 *   R1  producer: release store of ctl->tail after writing the slots.
 *   A1  consumer: acquire load of ctl->tail before reading the slots.
 *       R1 -> A1: the slot contents written before R1 are visible to the
 *       consumer once A1 returns the new tail.
 *
 *   R2  consumer: release store of ctl->head after copying the slots out.
 *   A2  producer: acquire load of ctl->head before overwriting slots.
 *       R2 -> A2: the consumer's reads of the slots happen before the
 *       producer's writes that reuse them (no write-after-read hazard).
 *
 * Nothing else is shared.  On x86 both acquire and release compile to
 * plain moves; the labels still matter for the compiler and for other
 * architectures, and ThreadSanitizer checks them in the threaded tests.
 *
 * Thread ownership: a struct fshm_ring is owned by one thread at a time
 * (the producer's or the consumer's); a ring has exactly one of each.
 */
#include <errno.h>
#include <string.h>

#include "shm/fshm.h"

/* --- barrier helpers: every shared access goes through one of these. --- */

/* Acquire load of the peer's index (A1 / A2). */
static inline uint32_t fshm__load_acquire(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

/* Release store of our own index (R1 / R2). */
static inline void fshm__store_release(_Atomic uint32_t *p, uint32_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

/* Relaxed load, only at init: see fshm_ring_init(). */
static inline uint32_t fshm__load_relaxed(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static inline uint32_t fshm__cap(const struct fshm_ring *r)
{
	return r->mask + 1;
}

void fshm_ring_init(struct fshm_ring *r, void *seg_base,
		    const struct fshm_area *area, bool producer)
{
	struct fshm_ring_ctl *ctl =
		(struct fshm_ring_ctl *)((char *)seg_base + area->offset);

	r->ctl = ctl;
	r->slots = (uint8_t *)ctl + sizeof(*ctl);
	r->mask = area->entries - 1;
	r->entry_size = area->entry_size;
	r->producer = producer;
	/*
	 * The one time a side reads its own index from shared memory: to
	 * pick up where the ring stands (0 in a fresh segment).  Relaxed is
	 * enough: only this side ever stores it.  The peer's index is cached
	 * with a relaxed load too; it is only a hint until refreshed through
	 * A1 / A2, and it is validated then.
	 */
	if (producer) {
		r->local = fshm__load_relaxed(&ctl->tail);
		r->cached = fshm__load_relaxed(&ctl->head);
	} else {
		r->local = fshm__load_relaxed(&ctl->head);
		r->cached = fshm__load_relaxed(&ctl->tail);
	}
}

/*
 * Refresh the peer's index and return how many entries (consumer) or free
 * slots (producer) there are, or -EBADMSG if the peer's index is
 * impossible.  In both cases tail - head must lie within [0, capacity];
 * unsigned arithmetic folds "head ahead of tail" into a huge difference,
 * so one comparison covers both directions.
 */
static inline int fshm__refresh(struct fshm_ring *r)
{
	uint32_t cap = fshm__cap(r), peer;

	if (r->producer) {
		/* A2: acquire load of head, pairs with R2 in
		 * fshm_ring_dequeue_burst() / fshm_ring_release(). */
		peer = fshm__load_acquire(&r->ctl->head);
		if (r->local - peer > cap)
			return -EBADMSG;
		r->cached = peer;
		return (int)(cap - (r->local - peer));
	}
	/* A1: acquire load of tail, pairs with R1 in
	 * fshm_ring_enqueue_burst() / fshm_ring_commit(). */
	peer = fshm__load_acquire(&r->ctl->tail);
	if (peer - r->local > cap)
		return -EBADMSG;
	r->cached = peer;
	return (int)(peer - r->local);
}

/* What the cache promises without touching shared memory.  The cached
 * index was validated when loaded and our own index only moved within
 * what it allowed, so this cannot underflow. */
static inline uint32_t fshm__cached_avail(const struct fshm_ring *r)
{
	if (r->producer)
		return fshm__cap(r) - (r->local - r->cached);
	return r->cached - r->local;
}

int fshm_ring_avail(struct fshm_ring *r, unsigned n)
{
	uint32_t have = fshm__cached_avail(r);
	int ret;

	if (have >= n)
		return (int)n;
	ret = fshm__refresh(r);
	if (ret < 0)
		return ret;
	return (unsigned)ret < n ? ret : (int)n;
}

int fshm_ring_count(struct fshm_ring *r)
{
	return fshm__refresh(r);
}

void *fshm_ring_slot(const struct fshm_ring *r, unsigned i)
{
	return r->slots + (size_t)((r->local + i) & r->mask) * r->entry_size;
}

int fshm_ring_commit(struct fshm_ring *r, unsigned n)
{
	if (!r->producer || n > fshm__cached_avail(r))
		return -EINVAL;
	r->local += n;
	/* R1: release store of tail, pairs with A1 in fshm__refresh(): the
	 * slots filled through fshm_ring_slot() become visible. */
	fshm__store_release(&r->ctl->tail, r->local);
	return 0;
}

int fshm_ring_release(struct fshm_ring *r, unsigned n)
{
	if (r->producer || n > fshm__cached_avail(r))
		return -EINVAL;
	r->local += n;
	/* R2: release store of head, pairs with A2 in fshm__refresh(): the
	 * slots read through fshm_ring_slot() may be reused. */
	fshm__store_release(&r->ctl->head, r->local);
	return 0;
}

/* Copy n entries between private memory and the slots starting at our
 * index, in at most two pieces (before and after the wrap). */
static inline void fshm__copy(struct fshm_ring *r, void *priv, unsigned n,
			      bool to_ring)
{
	uint32_t idx = r->local & r->mask;
	uint32_t first = fshm__cap(r) - idx;
	size_t esz = r->entry_size;
	uint8_t *slot = r->slots + (size_t)idx * esz;
	uint8_t *p = priv;

	if (first > n)
		first = n;
	if (to_ring) {
		memcpy(slot, p, first * esz);
		memcpy(r->slots, p + first * esz, (n - first) * esz);
	} else {
		memcpy(p, slot, first * esz);
		memcpy(p + first * esz, r->slots, (n - first) * esz);
	}
}

int fshm_ring_enqueue_burst(struct fshm_ring *r, const void *src, unsigned n)
{
	int k = fshm_ring_avail(r, n);

	if (k <= 0)
		return k;
	fshm__copy(r, (void *)src, (unsigned)k, true);
	r->local += (uint32_t)k;
	/* R1: release store of tail, pairs with A1 in fshm__refresh(): the
	 * k entries copied above are published with this one store. */
	fshm__store_release(&r->ctl->tail, r->local);
	return k;
}

int fshm_ring_dequeue_burst(struct fshm_ring *r, void *dst, unsigned n)
{
	int k = fshm_ring_avail(r, n);

	if (k <= 0)
		return k;
	fshm__copy(r, dst, (unsigned)k, false);
	r->local += (uint32_t)k;
	/* R2: release store of head, pairs with A2 in fshm__refresh(): our
	 * copies out of the k slots are done before the producer reuses
	 * them. */
	fshm__store_release(&r->ctl->head, r->local);
	return k;
}

bool fshm_ring_ready(void *ring)
{
	return fshm_ring_avail(ring, 1) != 0;
}
