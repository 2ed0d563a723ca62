/* SPDX-License-Identifier: MIT */
/*
 * Segments: creation, attach's seal and size checks, and the header
 * validation that refuses malformed segments.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/shm/shm_test.h"

#define ALL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

TestSuite(seg, .timeout = 10);

/* ---- create ----------------------------------------------------------- */

Test(seg, create_lays_out_page_aligned_areas)
{
	struct fshm_seg_params p = shm_test_params(256, 512, 100000);
	struct fshm_seg s;

	cr_assert_eq(fshm_seg_create(&p, &s), 0);
	cr_assert_eq(s.hdr->magic, FSHM_MAGIC);
	cr_assert_eq(s.hdr->abi_version, FSHM_ABI_VERSION);
	cr_assert_eq(s.hdr->seg_size, s.size);
	cr_assert_eq(s.hdr->epoch, 1234);
	cr_assert_eq(s.hdr->session_id, 42);
	cr_assert_eq(s.sq.offset, FSHM_HDR_SIZE);
	cr_assert_eq(s.sq.entries, 256);
	cr_assert_eq(s.sq.entry_size, 64);
	cr_assert_eq(s.cq.entry_size, 32);
	cr_assert_eq(s.cq.offset, s.sq.offset + s.sq.bytes);
	cr_assert_eq(s.arena.offset, s.cq.offset + s.cq.bytes);
	cr_assert_eq(s.arena.bytes, 102400); /* rounded up to a page */
	cr_assert_eq(s.arena.entry_size, 64);
	cr_assert_eq(s.sq.offset % FSHM_PAGE, 0);
	cr_assert_eq(s.cq.offset % FSHM_PAGE, 0);
	cr_assert_eq(s.arena.offset % FSHM_PAGE, 0);
	cr_assert_eq(s.size, s.arena.offset + s.arena.bytes);
	cr_assert_eq(fcntl(s.fd, F_GET_SEALS) & ALL_SEALS, ALL_SEALS);
	cr_assert_eq(fcntl(s.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	fshm_seg_close(&s);
	cr_assert_eq(s.fd, -1);
	fshm_seg_close(&s); /* twice is harmless */
}

Test(seg, create_rejects_bad_params)
{
	struct fshm_seg_params p;
	struct fshm_seg s;

	p = shm_test_params(256, 256, 4096);
	p.flags = 1u << 7;
	cr_assert_eq(fshm_seg_create(&p, &s), -EINVAL, "unknown flag");
	p = shm_test_params(100, 256, 4096);
	cr_assert_eq(fshm_seg_create(&p, &s), -EINVAL, "not a power of two");
	p = shm_test_params(256, 1, 4096);
	cr_assert_eq(fshm_seg_create(&p, &s), -EINVAL, "one entry");
	p = shm_test_params(FSHM_RING_MAX_ENTRIES * 2, 256, 4096);
	cr_assert_eq(fshm_seg_create(&p, &s), -EINVAL, "too many entries");
	p = shm_test_params(256, 256, 4096);
	p.arena_align = 48;
	cr_assert_eq(fshm_seg_create(&p, &s), -EINVAL, "alignment");
	p = shm_test_params(256, 256, FSHM_SEG_MAX_BYTES);
	cr_assert_eq(fshm_seg_create(&p, &s), -E2BIG, "too large");
	p = shm_test_params(256, 256, UINT64_MAX);
	cr_assert_eq(fshm_seg_create(&p, &s), -E2BIG, "overflow");
}

Test(seg, create_prefaults_on_request)
{
	struct fshm_seg_params p = shm_test_params(16, 16, 1 << 20);
	struct fshm_seg s;
	unsigned char vec[(1 << 20) / 4096];

	p.flags = FSHM_SEG_PREFAULT;
	cr_assert_eq(fshm_seg_create(&p, &s), 0);
	cr_assert_eq(mincore((char *)s.base + s.arena.offset, 1 << 20, vec), 0);
	for (size_t i = 0; i < sizeof(vec); i++)
		cr_assert(vec[i] & 1, "page %zu not resident", i);
	fshm_seg_close(&s);
}

Test(seg, create_binds_to_numa_node_0)
{
	struct fshm_seg_params p = shm_test_params(16, 16, 1 << 16);
	struct fshm_seg s;
	int ret;

	p.numa_node = 0;
	ret = fshm_seg_create(&p, &s);
	if (ret == -ENOTSUP || ret == -EPERM || ret == -ENOSYS)
		cr_skip("no NUMA policy here: %s", strerror(-ret));
	cr_assert_eq(ret, 0);
	cr_assert(s.features & FSHM_F_NUMA_BOUND);
	fshm_seg_close(&s);
	p.numa_node = 4096;
	cr_assert_eq(fshm_seg_create(&p, &s), -EINVAL);
}

Test(seg, attach_accepts_a_created_segment)
{
	struct fshm_seg_params p = shm_test_params(64, 128, 8192);
	struct fshm_seg s, c;

	cr_assert_eq(fshm_seg_create(&p, &s), 0);
	cr_assert_eq(fshm_seg_attach(dup(s.fd), &c), 0);
	cr_assert_neq(c.base, s.base);
	cr_assert_eq(c.size, s.size);
	cr_assert_eq(memcmp(&c.sq, &s.sq, sizeof(c.sq)), 0);
	cr_assert_eq(memcmp(&c.cq, &s.cq, sizeof(c.cq)), 0);
	cr_assert_eq(memcmp(&c.arena, &s.arena, sizeof(c.arena)), 0);
	/* Same memory, two mappings. */
	((char *)fshm_seg_arena(&s))[5] = 'x';
	cr_assert_eq(((char *)fshm_seg_arena(&c))[5], 'x');
	fshm_seg_close(&c);
	fshm_seg_close(&s);
}

/* ---- attach: seals and size ------------------------------------------- */

/* A memfd holding a copy of a valid segment of `size` bytes (the header
 * says so), grown or cut to `file_size`, with `seals` applied. */
static int make_memfd(size_t file_size, int seals, struct fshm_seg *ref)
{
	struct fshm_seg_params p = shm_test_params(16, 16, 4096);
	int fd;

	cr_assert_eq(fshm_seg_create(&p, ref), 0);
	fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)file_size), 0);
	cr_assert_eq(pwrite(fd, ref->base, ref->size < file_size ?
			    ref->size : file_size, 0),
		     (ssize_t)(ref->size < file_size ? ref->size : file_size));
	if (seals)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void expect_attach(int fd, int want)
{
	struct fshm_seg c;
	int ret = fshm_seg_attach(fd, &c);

	if (!ret)
		fshm_seg_close(&c); /* closes fd: attach took it */
	else
		close(fd);
	cr_assert_eq(ret, want, "attach: %d, want %d", ret, want);
}

Test(seg, attach_accepts_a_copy_with_all_seals)
{
	struct fshm_seg ref, c;
	int fd;

	fd = make_memfd(4 * 4096, ALL_SEALS, &ref);
	cr_assert_eq(ref.size, 4 * 4096);
	cr_assert_eq(fshm_seg_attach(fd, &c), 0);
	fshm_seg_close(&c);
	fshm_seg_close(&ref);
}

Test(seg, attach_refuses_unsealed_memfd)
{
	struct fshm_seg ref;

	expect_attach(make_memfd(4 * 4096, 0, &ref), -EPERM);
	fshm_seg_close(&ref);
}

Test(seg, attach_refuses_memfd_with_some_seals)
{
	struct fshm_seg ref;

	expect_attach(make_memfd(4 * 4096, F_SEAL_SHRINK | F_SEAL_GROW, &ref),
		      -EPERM);
	fshm_seg_close(&ref);
	expect_attach(make_memfd(4 * 4096, F_SEAL_SHRINK | F_SEAL_SEAL, &ref),
		      -EPERM);
	fshm_seg_close(&ref);
}

Test(seg, attach_refuses_wrong_size)
{
	struct fshm_seg ref;

	/* Sealed, but the file is larger than the header's seg_size. */
	expect_attach(make_memfd(8 * 4096, ALL_SEALS, &ref), -EBADMSG);
	fshm_seg_close(&ref);
	/* Sealed, but too small to hold even the rings. */
	expect_attach(make_memfd(4096, ALL_SEALS, &ref), -EBADMSG);
	fshm_seg_close(&ref);
}

Test(seg, attach_refuses_grown_file)
{
	struct fshm_seg ref;
	int fd;

	/* The sender forgot F_SEAL_GROW and grew the file after writing the
	 * header: refused on the missing seal before any mapping. */
	fd = make_memfd(4 * 4096, F_SEAL_SHRINK, &ref);
	cr_assert_eq(ftruncate(fd, 5 * 4096), 0);
	expect_attach(fd, -EPERM);
	fshm_seg_close(&ref);
}

Test(seg, attach_refuses_plain_tmpfile)
{
	struct fshm_seg_params p = shm_test_params(16, 16, 4096);
	struct fshm_seg ref, c;
	FILE *f = tmpfile();
	int fd;

	cr_assert_not_null(f);
	cr_assert_eq(fshm_seg_create(&p, &ref), 0);
	fd = fileno(f);
	cr_assert_eq(pwrite(fd, ref.base, ref.size, 0), (ssize_t)ref.size);
	cr_assert_eq(fshm_seg_attach(fd, &c), -ENOTSUP);
	fclose(f);
	fshm_seg_close(&ref);
}

Test(seg, attach_refuses_closed_fd)
{
	struct fshm_seg c;
	int fd = dup(0);

	close(fd);
	cr_assert_eq(fshm_seg_attach(fd, &c), -EBADF);
	cr_assert_eq(fshm_seg_attach(-1, &c), -EBADF);
}

Test(seg, attach_refuses_sealed_memfd_with_bad_header)
{
	struct fshm_seg ref, c;
	int fd = make_memfd(4 * 4096, 0, &ref);
	uint64_t bad = 0;

	cr_assert_eq(pwrite(fd, &bad, sizeof(bad), 0), (ssize_t)sizeof(bad));
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, ALL_SEALS), 0);
	cr_assert_eq(fshm_seg_attach(fd, &c), -EBADMSG);
	close(fd);
	fshm_seg_close(&ref);
}

/* ---- validate: malformed headers -------------------------------------- */

static struct fshm_seg vseg;
static void *copy;

/* A private copy of a valid segment to mutate. */
static void vsetup(void)
{
	/* 32 SQEs and 64 CQEs: both ring areas one page. */
	struct fshm_seg_params p = shm_test_params(32, 64, 8192);

	cr_assert_eq(fshm_seg_create(&p, &vseg), 0);
	copy = malloc(vseg.size);
	cr_assert_not_null(copy);
	memcpy(copy, vseg.base, vseg.size);
}

static void vteardown(void)
{
	free(copy);
	fshm_seg_close(&vseg);
}

static struct fshm_hdr *H(void)
{
	return copy;
}

static int validate(void)
{
	struct fshm_area sq, cq, arena;
	uint64_t f;

	return fshm_seg_validate(copy, vseg.size, &sq, &cq, &arena, &f);
}

TestSuite(validate, .init = vsetup, .fini = vteardown, .timeout = 10);

Test(validate, accepts_the_original)
{
	cr_assert_eq(validate(), 0);
}

Test(validate, accepts_newer_minor_and_nonzero_reserved)
{
	H()->abi_version = FSHM_ABI_MAJOR << 16 | 7;
	H()->reserved0[3] = 99;
	H()->reserved1[100] = 5;
	cr_assert_eq(validate(), 0);
}

Test(validate, refuses_bad_magic)
{
	H()->magic ^= 1;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_other_major_version)
{
	H()->abi_version = (FSHM_ABI_MAJOR + 1) << 16;
	cr_assert_eq(validate(), -EPROTO);
	H()->abi_version = 0;
	cr_assert_eq(validate(), -EPROTO);
}

Test(validate, refuses_bad_header_size)
{
	H()->hdr_size = 2048;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_unknown_features)
{
	H()->features |= 1ull << 40;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_seg_size_not_mapping_size)
{
	H()->seg_size += 4096;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_area_past_the_end)
{
	H()->arena.bytes += 4096;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_offset_out_of_range)
{
	H()->cq.offset = 1ull << 50;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_offset_plus_size_overflow)
{
	H()->arena.offset = UINT64_MAX - 4095;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_unaligned_offset)
{
	H()->arena.offset += 64;
	H()->arena.bytes -= 4096;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_area_inside_the_header)
{
	H()->sq.offset = 0;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_overlapping_areas)
{
	H()->cq.offset = H()->sq.offset;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_areas_out_of_order)
{
	struct fshm_area sq = H()->sq;

	/* Swap SQ and CQ positions (same sizes here): no overlap, but not
	 * the fixed order. */
	cr_assert_eq(H()->sq.bytes, H()->cq.bytes);
	H()->sq.offset = H()->cq.offset;
	H()->cq.offset = sq.offset;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_non_power_of_two_entries)
{
	H()->sq.entries = 48; /* same page count as 64 */
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_oversize_entries)
{
	uint64_t bytes;

	H()->sq.entries = FSHM_RING_MAX_ENTRIES * 2;
	fshm_ring_area_bytes(H()->sq.entries, 64, &bytes);
	H()->sq.bytes = bytes;
	cr_assert_eq(validate(), -EBADMSG);
	H()->sq.entries = 0x80000000u;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_too_few_entries)
{
	H()->cq.entries = 1;
	cr_assert_eq(validate(), -EBADMSG);
	H()->cq.entries = 0;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_wrong_entry_size)
{
	H()->sq.entry_size = 32;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_area_bytes_not_matching_entries)
{
	H()->sq.bytes += 4096;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_bad_arena_alignment)
{
	H()->arena.entry_size = 48;
	cr_assert_eq(validate(), -EBADMSG);
	H()->arena.entry_size = 4;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_arena_with_entries)
{
	H()->arena.entries = 1;
	cr_assert_eq(validate(), -EBADMSG);
}

Test(validate, refuses_too_small_mapping)
{
	cr_assert_eq(fshm_seg_validate(copy, 4096, NULL, NULL, NULL, NULL),
		     -EBADMSG);
}
