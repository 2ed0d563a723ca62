/* SPDX-License-Identifier: MIT */
/*
 * fshm.h - ferry's shared-memory library: segments, SPSC rings, doorbells,
 * the arena allocator.  Private to ferry (never installed); knows nothing of
 * models or sockets.  Every function returns 0 or a negative errno / ferry
 * error code unless it says otherwise.
 */
#ifndef FSHM_H
#define FSHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/fshm_wire.h"

/* ---------------------------------------------------------------------- */
/* Segments                                                                */

struct fshm_seg_params {
	uint32_t sq_entries;   /* power of two, 2 .. FSHM_RING_MAX_ENTRIES */
	uint32_t cq_entries;   /* power of two, 2 .. FSHM_RING_MAX_ENTRIES */
	uint64_t arena_bytes;  /* rounded up to a page */
	uint32_t arena_align;  /* power of two >= 8; 0 = 64 */
	int numa_node;         /* bind before first touch; -1 = no binding */
	unsigned flags;        /* FSHM_SEG_* */
	uint64_t epoch;        /* copied into the header */
	uint64_t session_id;   /* copied into the header */
};
#define FSHM_SEG_PREFAULT (1u << 0) /* touch every page at creation */
#define FSHM_SEG__ALL     FSHM_SEG_PREFAULT

/* A mapped segment, private to one process. */
struct fshm_seg {
	int fd;                 /* the memfd; -1 once closed */
	void *base;             /* the mapping */
	size_t size;            /* bytes mapped (== seg_size) */
	struct fshm_hdr *hdr;   /* == base */
	/* The layout as this process validated it: never re-read from hdr. */
	struct fshm_area sq, cq, arena;
	uint64_t features;
};

/*
 * fshm_seg_create - create, size, lay out, seal and map a new segment
 *
 * memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING), ftruncate, NUMA binding
 * (mbind) before first touch when params->numa_node >= 0, header written,
 * F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL applied.  Rejects unknown flags.
 * Release with fshm_seg_close().
 */
int fshm_seg_create(const struct fshm_seg_params *params, struct fshm_seg *seg);

/*
 * fshm_seg_attach - verify and map a segment received from a peer
 *
 * Checks, before mapping: the fd is a memfd carrying at least
 * F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, its fstat size is within
 * bounds; after mapping: the header passes fshm_seg_validate() and its
 * seg_size equals the file size.  Takes ownership of fd on success only.
 * Release with fshm_seg_close().  Errors: -EBADF (bad fd), -ENOTSUP (not a
 * sealable memfd), -EPERM (a seal missing), -E2BIG (file too large),
 * -EBADMSG (too small, or the header fails validation), -EPROTO (other
 * ABI major), or mmap's errno.
 */
int fshm_seg_attach(int fd, struct fshm_seg *seg);

/*
 * fshm_seg_validate - check a header against the mapping size
 *
 * Magic, ABI major, header size, feature bits, every area inside the segment,
 * page aligned, not overlapping, ring capacities powers of two within
 * bounds and entry sizes as the wire expects.  Fills *sq, *cq, *arena and
 * *features from a private copy of the header (read once).  -EBADMSG on any
 * failure (-EPROTO for a version mismatch).
 */
int fshm_seg_validate(const void *base, size_t size, struct fshm_area *sq,
		      struct fshm_area *cq, struct fshm_area *arena,
		      uint64_t *features);

/*
 * fshm_seg_adopt - the broker takes over a segment a client hands back:
 * the client had a session with a broker that went away (a restart) and
 * keeps the tensors of its arena where they are.
 *
 * The segment is checked as fshm_seg_attach() checks any peer's (a memfd
 * carrying the three seals, a size within bounds, a header that
 * validates), then its rings must have the same number of entries, at
 * most max_entries, and its arena at most max_arena bytes.  Then what the
 * broker owns is re-initialised from the validated layout: the header
 * (with epoch and session_id; features 0), both rings' control blocks
 * (indices 0) and the wake lines.  The arena's bytes are kept.  Takes
 * ownership of fd on success only.  Errors as fshm_seg_attach(), and
 * -E2BIG (rings or arena beyond the limits), -EBADMSG (rings of
 * different sizes).
 */
int fshm_seg_adopt(int fd, uint32_t max_entries, uint64_t max_arena, uint64_t epoch,
		   uint64_t session_id, struct fshm_seg *seg);

/* fshm_seg_close - unmap and close the fd; safe on a zeroed / closed seg. */
void fshm_seg_close(struct fshm_seg *seg);

/*
 * fshm_ring_area_bytes - the exact size of a ring area: the control block
 * and the slots, rounded up to a page.  fshm_seg_validate() requires it.
 */
int fshm_ring_area_bytes(uint32_t entries, uint32_t entry_size,
			 uint64_t *bytes);

/* Pointer to the arena's first byte, and its size. */
static inline void *fshm_seg_arena(const struct fshm_seg *seg)
{
	return (char *)seg->base + seg->arena.offset;
}

/* ---------------------------------------------------------------------- */
/* SPSC rings of fixed-size entries                                        */

/*
 * One side's private handle on a ring.  The shared part is the ring's
 * struct fshm_ring_ctl; everything here is private to the side that owns
 * the handle, so a hostile peer cannot change what this side believes its
 * own index is.
 */
struct fshm_ring {
	struct fshm_ring_ctl *ctl;
	uint8_t *slots;
	uint32_t mask;        /* entries - 1 */
	uint32_t entry_size;
	uint32_t local;       /* own index (producer: tail, consumer: head) */
	uint32_t cached;      /* last seen index of the other side */
	bool producer;        /* which side this handle is */
};

/*
 * Bind a handle to a ring area of a mapped segment (area as validated).
 * Reads both indices once from the control block, to start where the ring
 * stands; from then on this side's own index lives in the handle only.
 */
void fshm_ring_init(struct fshm_ring *r, void *seg_base,
		    const struct fshm_area *area, bool producer);

/*
 * Producer: copy up to n entries (n * entry_size bytes from src) into the
 * ring and publish them with one release store.  Returns the number
 * enqueued (0 when full), or -EBADMSG when the consumer's index is
 * impossible (more than the capacity behind, or ahead of the tail).
 */
int fshm_ring_enqueue_burst(struct fshm_ring *r, const void *src, unsigned n);

/*
 * Consumer: copy up to n entries into dst (private memory) and release the
 * slots with one store.  Returns the number dequeued (0 when empty), or
 * -EBADMSG when the producer's index claims more entries than the capacity.
 */
int fshm_ring_dequeue_burst(struct fshm_ring *r, void *dst, unsigned n);

/* Entries the consumer could read now (consumer side), or free slots
 * (producer side); -EBADMSG as above. */
int fshm_ring_count(struct fshm_ring *r);

/*
 * Zero-copy use, either side:
 *   k = fshm_ring_avail(r, n);        up to n entries / free slots (or <0)
 *   p = fshm_ring_slot(r, i);         i < k: the i-th of them, in the ring
 *   fshm_ring_commit(r, k);           producer: publish (one release store)
 *   fshm_ring_release(r, k);          consumer: give the slots back
 * fshm_ring_avail() reads the peer's index only when the cached one does
 * not already promise n.  A consumer that does not trust the producer must
 * copy each entry out of the slot once before validating it (the producer
 * can still write the slot).  commit / release return -EINVAL for more
 * than fshm_ring_avail() granted, or on the wrong side.
 */
int fshm_ring_avail(struct fshm_ring *r, unsigned n);
void *fshm_ring_slot(const struct fshm_ring *r, unsigned i);
int fshm_ring_commit(struct fshm_ring *r, unsigned n);
int fshm_ring_release(struct fshm_ring *r, unsigned n);

/*
 * A ready() callback for fshm_doorbell_wait(): arg is a struct fshm_ring *;
 * true when the consumer has an entry or the producer a free slot, and
 * also when the peer's index is malformed, so that the caller's next ring
 * call reports -EBADMSG instead of the wait sleeping on it forever.
 */
bool fshm_ring_ready(void *ring);

/* ---------------------------------------------------------------------- */
/* Doorbells and wait policies                                             */

enum fshm_wait_policy {
	FSHM_WAIT_SPIN   = 0, /* poll forever: lowest latency, burns a core */
	FSHM_WAIT_HYBRID = 1, /* bounded adaptive spin, then block */
	FSHM_WAIT_BLOCK  = 2, /* block at once */
};
int fshm_wait_policy_parse(const char *s, enum fshm_wait_policy *out);
const char *fshm_wait_policy_name(enum fshm_wait_policy p);

/*
 * A doorbell: an eventfd plus the waiter's "sleeping" flag in the segment.
 * The waiter owns `flag`; the ringer only reads it.  io_uring NEED_WAKEUP
 * handshake:
 *   waiter: store flag = 1; full fence; re-check the condition; block on efd
 *   ringer: publish (release); full fence; if flag: write(efd)
 * Either the waiter sees the published data on its re-check, or the ringer
 * sees the flag and writes the eventfd: no wake-up is lost.
 */
struct fshm_doorbell {
	int efd;                     /* eventfd (EFD_CLOEXEC | EFD_NONBLOCK) */
	_Atomic uint32_t *flag;      /* in the segment: the waiter's flag */
	_Atomic uint64_t rings;      /* eventfd writes made (statistics) */
	uint64_t spin_budget_ns;     /* waiter: hybrid's adapted spin budget */
	uint64_t sleeps;             /* waiter: times it blocked (statistics) */
	_Atomic uint32_t *cpu;       /* waiter: where to say which CPU it blocks
				      * on (fshm_wake.cpu), or NULL */
	_Atomic uint32_t *peer_cpu;  /* waiter: 1 + the CPU the ringer runs on
				      * (the other side's fshm_wake.cpu), or NULL:
				      * spinning there would only keep it off */
};

/*
 * fshm_doorbell_init - bind a doorbell to a wake flag in the segment
 *
 * efd >= 0: use it (the doorbell takes ownership); efd < 0: create a new
 * eventfd (EFD_CLOEXEC | EFD_NONBLOCK).  Each process keeps its own struct
 * for each doorbell; both ends of one doorbell share the eventfd and the
 * flag.  Release with fshm_doorbell_close().
 */
int fshm_doorbell_init(struct fshm_doorbell *db, int efd,
		       _Atomic uint32_t *flag);
void fshm_doorbell_close(struct fshm_doorbell *db);

/* Ringer: call after publishing.  Makes the syscall only if the waiter
 * sleeps.  Returns 1 if it wrote the eventfd, 0 if not, <0 on error. */
int fshm_doorbell_ring(struct fshm_doorbell *db);

/* Waiter side, for loops that block elsewhere (io_uring, epoll): */
void fshm_doorbell_arm(struct fshm_doorbell *db);    /* flag = 1; full fence */
void fshm_doorbell_disarm(struct fshm_doorbell *db); /* flag = 0 */
void fshm_doorbell_drain(struct fshm_doorbell *db);  /* read efd, nonblocking */

/*
 * fshm_spin_adapt - hybrid's spin budget after a wait of t ns that was won
 * by spinning (spin_won) or ended in a block, for budget b and ceiling
 * max: grows when a little more spin would have saved a wake-up, halves
 * when the peer was away longer than max.  For waiters that block
 * elsewhere (ferryd's pollers) as for fshm_doorbell_wait.
 */
uint64_t fshm_spin_adapt(uint64_t b, uint64_t t, uint64_t max, bool spin_won);

/*
 * fshm_doorbell_wait - wait until ready(arg) is true
 *
 * spin: poll ready(); hybrid: poll for up to spin_ns (0: 50 us), adapting
 * the budget between calls in db->spin_budget_ns, then block; block: arm
 * and block at once.
 * timeout_ns < 0 waits forever.  Returns 0 when ready, -ETIMEDOUT, or
 * -EINTR-free negative errors from poll().
 */
int fshm_doorbell_wait(struct fshm_doorbell *db, enum fshm_wait_policy policy,
		       bool (*ready)(void *arg), void *arg, int64_t timeout_ns,
		       uint64_t spin_ns);

/* ---------------------------------------------------------------------- */
/* Arena allocator                                                         */

/*
 * Allocates tensor buffers inside a segment's arena.  Offsets, not
 * pointers, relative to the arena's start.  O(1) allocation and free,
 * alignment a power of two (64 by default).  The allocator's bookkeeping is
 * private to the process that owns the arena (the client); the broker never
 * allocates.  Thread safety: every call takes the arena's own lock, so
 * several threads of the client may allocate and free concurrently.
 */
struct fshm_arena;

/*
 * fshm_arena_create - an allocator for [base, base + bytes)
 *
 * Never touches the arena's memory; base only has to be aligned to align
 * (0 = 64).  -EINVAL for a bad alignment or an arena smaller than one
 * granule.  Free with fshm_arena_destroy() (outstanding blocks die with it).
 */
int fshm_arena_create(struct fshm_arena **out, void *base, uint64_t bytes,
		      uint32_t align);
void fshm_arena_destroy(struct fshm_arena *a);
/* -ENOMEM when no free block is large enough; *off is aligned. */
int fshm_arena_alloc(struct fshm_arena *a, uint64_t bytes, uint64_t *off);
/* off must come from fshm_arena_alloc and not be freed yet: a bad or
 * double free aborts (as malloc does) rather than corrupt the lists. */
void fshm_arena_free(struct fshm_arena *a, uint64_t off);
/* Bytes in allocated blocks (rounded to granules); exact when idle. */
uint64_t fshm_arena_used(const struct fshm_arena *a);
/* The allocation unit: max(align, 64), larger for arenas above 1 GiB
 * (see fshm_arena.c).  Every offset and block size is a multiple of it. */
uint64_t fshm_arena_granule(const struct fshm_arena *a);

/* ---------------------------------------------------------------------- */
/* Guarded copies (fshm_guard.c)                                           */

/*
 * Memory that may shrink under the copier: a POSIX shm object a client
 * registered (Triton's system shared memory) cannot be sealed, and a page
 * past its new end raises SIGBUS.  fshm_guard_copy copies n bytes with a
 * thread-local recovery point: a SIGBUS whose address lies in [src, src+n)
 * or [dst, dst+n) while this thread copies makes it return -EFAULT instead
 * of killing the process (dst may then hold part of the bytes).  Any
 * other SIGBUS gets the disposition that was there before (the default:
 * the process dies, as it would have).  Any thread; not nested (-EBUSY).
 * Installs the process's SIGBUS handler on first use (fshm_guard_init
 * does it up front; 0 or a negative errno from sigaction).
 */
int fshm_guard_init(void);
int fshm_guard_copy(void *dst, const void *src, size_t n);
/* Faults recovered since the start (metrics, tests). */
uint64_t fshm_guard_caught(void);

/* ---------------------------------------------------------------------- */
/* Timing helpers shared by the tests and benchmarks                       */

uint64_t fshm_now_ns(void); /* CLOCK_MONOTONIC */
static inline void fshm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

#endif /* FSHM_H */
