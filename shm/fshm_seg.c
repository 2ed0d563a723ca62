/* SPDX-License-Identifier: MIT */
/*
 * fshm_seg.c - session segments: create (broker), attach (client),
 * validate (both), close.
 *
 * Layout written by fshm_seg_create() (see fshm_wire.h for the header):
 *
 *   0                     header page (FSHM_HDR_SIZE)
 *   sq.offset    = 4096   SQ ring area, bytes = fshm_ring_area_bytes(sq)
 *   cq.offset             CQ ring area, bytes = fshm_ring_area_bytes(cq)
 *   arena.offset          arena, bytes = params->arena_bytes rounded up
 *   seg_size     = arena.offset + arena.bytes
 *
 * A ring area's size is defined as round_up(128 + entries * entry_size,
 * FSHM_PAGE): the control block, the slots, and page padding so that the
 * next area starts on a page.  fshm_seg_validate() insists on exactly that
 * size, so a peer cannot make a ring's slots run into the next area.
 *
 * Errors of fshm_seg_attach(), so that a caller can say what was wrong:
 *   -EBADF    fd < 0 or not open
 *   -ENOTSUP  fd is not a sealable memfd (a plain file, a pipe ...)
 *   -EPERM    a required seal is missing (the peer could still resize it)
 *   -E2BIG    the file is larger than FSHM_SEG_MAX_BYTES
 *   -EBADMSG  the file is too small, or the header does not validate
 *   -EPROTO   the header's ABI major differs from ours
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <numa.h>
#include <numaif.h>

#include "shm/fshm.h"

#define FSHM__SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
/* Header page plus two minimal ring areas: nothing smaller can be valid. */
#define FSHM__SEG_MIN_BYTES (FSHM_HDR_SIZE + 2 * FSHM_PAGE)

uint64_t fshm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool fshm__is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* round_up(x, FSHM_PAGE); false on overflow. */
static bool fshm__page_round(uint64_t x, uint64_t *out)
{
	if (x > UINT64_MAX - (FSHM_PAGE - 1))
		return false;
	*out = (x + FSHM_PAGE - 1) & ~(uint64_t)(FSHM_PAGE - 1);
	return true;
}

int fshm_ring_area_bytes(uint32_t entries, uint32_t entry_size,
			 uint64_t *bytes)
{
	/* entries, entry_size < 2^32: the product fits in 64 bits. */
	uint64_t raw = sizeof(struct fshm_ring_ctl) +
		       (uint64_t)entries * entry_size;

	if (!fshm__page_round(raw, bytes))
		return -EBADMSG;
	return 0;
}

static bool fshm__ring_entries_ok(uint32_t entries)
{
	return entries >= 2 && entries <= FSHM_RING_MAX_ENTRIES &&
	       fshm__is_pow2(entries);
}

/*
 * Check one ring area against the segment: entries, entry size, exact byte
 * count, page aligned start, and the area inside [lo, size).  On success
 * *end is the first byte after it.
 */
static int fshm__check_ring(const struct fshm_area *a, uint32_t want_esize,
			    uint64_t lo, uint64_t size, uint64_t *end)
{
	uint64_t want;

	if (!fshm__ring_entries_ok(a->entries) || a->entry_size != want_esize)
		return -EBADMSG;
	if (fshm_ring_area_bytes(a->entries, a->entry_size, &want) ||
	    a->bytes != want)
		return -EBADMSG;
	if (a->offset % FSHM_PAGE || a->offset < lo)
		return -EBADMSG;
	if (__builtin_add_overflow(a->offset, a->bytes, end) || *end > size)
		return -EBADMSG;
	return 0;
}

int fshm_seg_validate(const void *base, size_t size, struct fshm_area *sq,
		      struct fshm_area *cq, struct fshm_area *arena,
		      uint64_t *features)
{
	struct fshm_hdr h;
	uint64_t end;

	if (!base || size < FSHM__SEG_MIN_BYTES || size > FSHM_SEG_MAX_BYTES)
		return -EBADMSG;
	/*
	 * One copy into private memory, then every check reads the copy:
	 * the peer may rewrite the shared header at any moment, and a value
	 * checked then re-read is a value not checked (TOCTOU).
	 */
	memcpy(&h, base, sizeof(h));

	if (h.magic != FSHM_MAGIC)
		return -EBADMSG;
	if (h.abi_version >> 16 != FSHM_ABI_MAJOR)
		return -EPROTO;
	if (h.hdr_size != FSHM_HDR_SIZE)
		return -EBADMSG;
	if (h.features & ~FSHM_F_ALL)
		return -EBADMSG;
	if (h.seg_size != size)
		return -EBADMSG;

	/* Order is fixed: header, SQ, CQ, arena; each starts after the last
	 * ends, which rules out overlap as well. */
	if (fshm__check_ring(&h.sq, sizeof(struct fshm_sqe), FSHM_HDR_SIZE,
			     size, &end))
		return -EBADMSG;
	if (fshm__check_ring(&h.cq, sizeof(struct fshm_cqe), end, size, &end))
		return -EBADMSG;

	/* The arena: entries 0, entry_size its alignment, whole pages. */
	if (h.arena.entries != 0 || h.arena.entry_size < 8 ||
	    h.arena.entry_size > FSHM_PAGE ||
	    !fshm__is_pow2(h.arena.entry_size))
		return -EBADMSG;
	if (h.arena.offset % FSHM_PAGE || h.arena.bytes % FSHM_PAGE ||
	    h.arena.offset < end)
		return -EBADMSG;
	if (__builtin_add_overflow(h.arena.offset, h.arena.bytes, &end) ||
	    end > size)
		return -EBADMSG;

	if (sq)
		*sq = h.sq;
	if (cq)
		*cq = h.cq;
	if (arena)
		*arena = h.arena;
	if (features)
		*features = h.features;
	return 0;
}

/* Bind the whole mapping to one node before anything touches it. */
static int fshm__numa_bind(void *base, size_t size, int node)
{
	unsigned long mask[16] = { 0 };
	const unsigned long bits = 8 * sizeof(unsigned long);

	if (numa_available() < 0)
		return -ENOTSUP;
	if (node > numa_max_node() || (unsigned)node >= 16 * bits)
		return -EINVAL;
	mask[node / bits] = 1ul << (node % bits);
	/*
	 * On a shmem (memfd) mapping mbind sets the file's shared policy, so
	 * the pages are placed on `node` whoever faults them first.
	 * MPOL_MF_STRICT is pointless here: nothing is resident yet.
	 */
	if (mbind(base, size, MPOL_BIND, mask, 16 * bits, 0))
		return -errno;
	return 0;
}

static void fshm__prefault(void *base, size_t size)
{
	volatile char *p = base;

	for (size_t off = 0; off < size; off += FSHM_PAGE)
		p[off] = 0;
}

static void fshm__seg_reset(struct fshm_seg *seg)
{
	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
}

int fshm_seg_create(const struct fshm_seg_params *params, struct fshm_seg *seg)
{
	struct fshm_hdr *h;
	struct fshm_area sq, cq, arena;
	uint32_t align;
	uint64_t size;
	void *base = MAP_FAILED;
	int fd = -1, ret;

	if (!params || !seg || params->flags & ~FSHM_SEG__ALL)
		return -EINVAL;
	if (!fshm__ring_entries_ok(params->sq_entries) ||
	    !fshm__ring_entries_ok(params->cq_entries))
		return -EINVAL;
	align = params->arena_align ? params->arena_align : 64;
	if (align < 8 || align > FSHM_PAGE || !fshm__is_pow2(align))
		return -EINVAL;
	if (params->numa_node < -1)
		return -EINVAL;

	memset(&sq, 0, sizeof(sq));
	memset(&cq, 0, sizeof(cq));
	memset(&arena, 0, sizeof(arena));
	sq.offset = FSHM_HDR_SIZE;
	sq.entries = params->sq_entries;
	sq.entry_size = sizeof(struct fshm_sqe);
	fshm_ring_area_bytes(sq.entries, sq.entry_size, &sq.bytes);
	cq.offset = sq.offset + sq.bytes;
	cq.entries = params->cq_entries;
	cq.entry_size = sizeof(struct fshm_cqe);
	fshm_ring_area_bytes(cq.entries, cq.entry_size, &cq.bytes);
	arena.offset = cq.offset + cq.bytes;
	arena.entry_size = align;
	if (!fshm__page_round(params->arena_bytes, &arena.bytes) ||
	    __builtin_add_overflow(arena.offset, arena.bytes, &size) ||
	    size > FSHM_SEG_MAX_BYTES || size > SIZE_MAX)
		return -E2BIG;

	fd = memfd_create("ferry-seg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		ret = -errno;
		goto err;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		goto err;
	}
	if (params->numa_node >= 0) {
		ret = fshm__numa_bind(base, size, params->numa_node);
		if (ret)
			goto err;
	}
	if (params->flags & FSHM_SEG_PREFAULT)
		fshm__prefault(base, size);

	/* The file is fresh and zero: only non-zero fields need writing.
	 * Ring indices start at 0 and the wake flags clear. */
	h = base;
	h->magic = FSHM_MAGIC;
	h->abi_version = FSHM_ABI_VERSION;
	h->hdr_size = FSHM_HDR_SIZE;
	h->features = params->numa_node >= 0 ? FSHM_F_NUMA_BOUND : 0;
	h->seg_size = size;
	h->epoch = params->epoch;
	h->session_id = params->session_id;
	h->sq = sq;
	h->cq = cq;
	h->arena = arena;

	if (fcntl(fd, F_ADD_SEALS, FSHM__SEALS)) {
		ret = -errno;
		goto err;
	}

	seg->fd = fd;
	seg->base = base;
	seg->size = size;
	seg->hdr = h;
	seg->sq = sq;
	seg->cq = cq;
	seg->arena = arena;
	seg->features = h->features;
	return 0;

err:
	if (base != MAP_FAILED)
		munmap(base, size);
	close(fd);
	return ret;
}

int fshm_seg_attach(int fd, struct fshm_seg *seg)
{
	struct fshm_area sq, cq, arena;
	uint64_t features;
	struct stat st;
	void *base;
	int seals, ret;

	if (!seg)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return errno == EINVAL ? -ENOTSUP : -errno;
	if ((seals & FSHM__SEALS) != FSHM__SEALS)
		return -EPERM;
	if (fstat(fd, &st))
		return -errno;
	if (st.st_size < FSHM__SEG_MIN_BYTES)
		return -EBADMSG;
	if ((uint64_t)st.st_size > FSHM_SEG_MAX_BYTES ||
	    (uint64_t)st.st_size > SIZE_MAX)
		return -E2BIG;

	/* The size is sealed: the mapping cannot be cut short under us
	 * (no SIGBUS), so it is safe to read all of it. */
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	ret = fshm_seg_validate(base, (size_t)st.st_size, &sq, &cq, &arena,
				&features);
	if (ret) {
		munmap(base, (size_t)st.st_size);
		return ret;
	}

	seg->fd = fd;
	seg->base = base;
	seg->size = (size_t)st.st_size;
	seg->hdr = base;
	seg->sq = sq;
	seg->cq = cq;
	seg->arena = arena;
	seg->features = features;
	return 0;
}

int fshm_seg_adopt(int fd, uint32_t max_entries, uint64_t max_arena, uint64_t epoch,
		   uint64_t session_id, struct fshm_seg *seg)
{
	struct fshm_seg s;
	int ret;

	if (!seg)
		return -EINVAL;
	/* Larger than any segment within the limits: refused before it is
	 * mapped.  (The seals, checked next, keep the size from changing.) */
	uint64_t sqb, cqb;
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && max_entries <= FSHM_RING_MAX_ENTRIES &&
	    !fshm_ring_area_bytes(max_entries, sizeof(struct fshm_sqe), &sqb) &&
	    !fshm_ring_area_bytes(max_entries, sizeof(struct fshm_cqe), &cqb) &&
	    max_arena <= FSHM_SEG_MAX_BYTES &&
	    (uint64_t)st.st_size > FSHM_HDR_SIZE + sqb + cqb + max_arena + FSHM_PAGE)
		return -E2BIG;
	/* Every check a peer's segment gets (seals, size, header), and the
	 * layout from one private copy of the header. */
	ret = fshm_seg_attach(fd, &s);
	if (ret)
		return ret;
	if (s.sq.entries != s.cq.entries) {
		ret = -EBADMSG;
		goto err;
	}
	if (s.sq.entries > max_entries || s.arena.bytes > max_arena) {
		ret = -E2BIG;
		goto err;
	}
	/*
	 * What the broker owns is written afresh from the validated layout:
	 * the header (whatever the client left in it, reserved words
	 * included), both rings' indices, the wake lines.  Nothing of the
	 * old header is read again.  The arena's bytes are the client's
	 * tensors: kept.  The client waits for the Welcome and touches none
	 * of this meanwhile; if it does, it only breaks its own session.
	 */
	struct fshm_hdr *h = s.hdr;
	memset(h, 0, sizeof(*h));
	h->magic = FSHM_MAGIC;
	h->abi_version = FSHM_ABI_VERSION;
	h->hdr_size = FSHM_HDR_SIZE;
	h->features = 0;  /* its pages are placed already: no NUMA binding */
	h->seg_size = s.size;
	h->epoch = epoch;
	h->session_id = session_id;
	h->sq = s.sq;
	h->cq = s.cq;
	h->arena = s.arena;
	memset((char *)s.base + s.sq.offset, 0, sizeof(struct fshm_ring_ctl));
	memset((char *)s.base + s.cq.offset, 0, sizeof(struct fshm_ring_ctl));
	s.features = 0;
	*seg = s;
	return 0;
err:
	/* attach took fd; the caller keeps it on failure: give it back. */
	s.fd = -1;
	fshm_seg_close(&s);
	return ret;
}

void fshm_seg_close(struct fshm_seg *seg)
{
	/* base marks a live segment: a zeroed struct has fd 0, which is
	 * somebody else's descriptor (stdin), not ours to close. */
	if (!seg || !seg->base)
		return;
	munmap(seg->base, seg->size);
	if (seg->fd >= 0)
		close(seg->fd);
	fshm__seg_reset(seg);
}
