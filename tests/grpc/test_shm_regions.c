/* SPDX-License-Identifier: MIT */
/*
 * test_shm_regions.c - the gRPC front end's region table (gs_shm.c) on its
 * own: it holds at most GS_SHM_MAX_REGIONS regions, refuses the next one
 * with a clear error, and its status walk lists every region it holds
 * (the front end once cut CUDA status lists at 256).  System shared
 * memory stands in for both kinds: CUDA regions count against the same
 * limit and are listed by the same kind of walk, but need a GPU.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_shm.h"

static char KEY[64];

/* One 4 KiB object that every region maps. */
static void setup(void)
{
	struct rlimit rl;

	/* Each system region keeps a descriptor open. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < GS_SHM_MAX_REGIONS + 64)
		cr_skip_test("RLIMIT_NOFILE hard limit %llu is below the %d regions tested",
			     (unsigned long long)rl.rlim_max, GS_SHM_MAX_REGIONS);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "%s", strerror(errno));
	snprintf(KEY, sizeof(KEY), "/ferry_test_regions_%d", (int)getpid());
	int fd = shm_open(KEY, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "shm_open %s: %s", KEY, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);
	gs_shm_enable(true);
}

static void teardown(void)
{
	gs_shm_unregister(NULL);
	if (KEY[0])
		shm_unlink(KEY);
}

TestSuite(shm_regions, .init = setup, .fini = teardown, .timeout = 60);

struct walk {
	int n, stop_at;
	unsigned char *seen;            /* by region number */
};

static int count(void *arg, const char *name, const char *key, uint64_t off, uint64_t size)
{
	struct walk *w = arg;
	int i;
	w->n++;
	if (sscanf(name, "r%d", &i) == 1 && i >= 0 && i < GS_SHM_MAX_REGIONS)
		w->seen[i]++;
	cr_expect_str_eq(key, KEY);
	cr_expect_eq(size, 64);
	return w->stop_at && w->n == w->stop_at ? FERRY_ENOMEM : 0;
}

static void fill(void)
{
	char name[32], err[512];
	for (int i = 0; i < GS_SHM_MAX_REGIONS; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		int ret = gs_shm_register(name, KEY, (uint64_t)(i % 64) * 64, 64, err, sizeof(err));
		cr_assert_eq(ret, 0, "region %d: %d %s", i, ret, err);
	}
}

Test(shm_regions, the_limit_refuses_the_next_region_clearly)
{
	char err[512] = "";
	fill();
	int ret = gs_shm_register("one_more", KEY, 0, 64, err, sizeof(err));
	cr_assert_eq(ret, FERRY_ENOSPC, "got %d: %s", ret, err);
	cr_assert(strstr(err, "one_more") && strstr(err, "4096") && strstr(err, "unregister"),
		  "%s", err);
	/* Room again once one goes. */
	gs_shm_unregister("r7");
	ret = gs_shm_register("one_more", KEY, 0, 64, err, sizeof(err));
	cr_assert_eq(ret, 0, "%d %s", ret, err);
}

Test(shm_regions, status_lists_every_region)
{
	unsigned char seen[GS_SHM_MAX_REGIONS] = { 0 };
	struct walk w = { .seen = seen };
	char err[512];
	fill();
	cr_assert_eq(gs_shm_status(NULL, count, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(w.n, GS_SHM_MAX_REGIONS);
	for (int i = 0; i < GS_SHM_MAX_REGIONS; i++)
		cr_assert_eq(seen[i], 1, "region r%d listed %d times", i, seen[i]);
	/* One by name. */
	memset(&w, 0, sizeof(w));
	w.seen = seen;
	cr_assert_eq(gs_shm_status("r4095", count, &w, err, sizeof(err)), 0);
	cr_assert_eq(w.n, 1);
	cr_assert_eq(gs_shm_status("nope", count, &w, err, sizeof(err)), FERRY_ENOENT);
	cr_assert(strstr(err, "nope"), "%s", err);
}

Test(shm_regions, a_walk_that_fails_says_so_instead_of_a_short_list)
{
	unsigned char seen[GS_SHM_MAX_REGIONS] = { 0 };
	struct walk w = { .seen = seen, .stop_at = 10 };
	char err[512];
	fill();
	cr_assert_eq(gs_shm_status(NULL, count, &w, err, sizeof(err)), FERRY_ENOMEM);
	cr_assert_eq(w.n, 10, "the walk went on after the error");
}

Test(shm_regions, unregistering_everything_empties_the_table)
{
	unsigned char seen[GS_SHM_MAX_REGIONS] = { 0 };
	struct walk w = { .seen = seen };
	char err[512];
	fill();
	gs_shm_unregister("");
	cr_assert_eq(gs_shm_status(NULL, count, &w, err, sizeof(err)), 0);
	cr_assert_eq(w.n, 0);
	/* A whole table's worth fits again. */
	fill();
}

Test(shm_regions, cuda_regions_need_a_device)
{
	char err[512] = "";
	unsigned char raw[64] = { 0 };
	if (gs_cuda_available())
		cr_skip_test("a CUDA device is present: tests/test_cuda_shm covers it");
	int ret = gs_cuda_register("c0", raw, sizeof(raw), 0, 64, err, sizeof(err));
	cr_assert_eq(ret, FERRY_UNAVAILABLE, "%d %s", ret, err);
	/* Refused registrations take no room. */
	fill();
}

/*
 * The client shrinks its object after registering it: a copy out of the
 * region (an input) or into it (an output) fails its request with a
 * message instead of a SIGBUS that would end the broker, and the region
 * is marked bad until it is registered again.
 */
Test(shm_regions, a_truncated_object_fails_the_copy_and_marks_the_region_bad)
{
	struct gs_shm_region *r;
	char err[512] = "";
	uint8_t buf[4096];
	int fd = shm_open(KEY, O_RDWR, 0);
	cr_assert_geq(fd, 0);
	memset(buf, 0x5a, sizeof(buf));
	cr_assert_eq(gs_shm_register("t", KEY, 0, 4096, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gs_shm_get("t", 0, 4096, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gs_shm_copy(r, 0, buf, 4096, true, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gs_shm_copy(r, 64, buf, 64, false, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(buf[0], 0x5a);
	cr_assert_eq(gs_shm_copy(r, 4000, buf, 200, false, err, sizeof(err)), FERRY_EINVAL,
		     "a range past the region");

	cr_assert_eq(ftruncate(fd, 0), 0);
	int ret = gs_shm_copy(r, 0, buf, 4096, false, err, sizeof(err));
	cr_assert_eq(ret, FERRY_EINVAL, "%d %s", ret, err);
	cr_assert(strstr(err, "'t'") && strstr(err, "truncated") && strstr(err, "register it again"),
		  "%s", err);
	/* Bad now, even where the object has its bytes back. */
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(gs_shm_copy(r, 0, buf, 64, true, err, sizeof(err)), FERRY_EINVAL);
	gs_shm_put(r);
	cr_assert_eq(gs_shm_get("t", 0, 64, &r, err, sizeof(err)), FERRY_EINVAL);
	cr_assert(strstr(err, "truncated"), "%s", err);

	/* Registered again, it serves. */
	gs_shm_unregister("t");
	cr_assert_eq(gs_shm_register("t", KEY, 0, 4096, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gs_shm_get("t", 0, 4096, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gs_shm_copy(r, 0, buf, 4096, false, err, sizeof(err)), 0, "%s", err);
	gs_shm_put(r);

	/* An output written while the object is gone fails the same way. */
	cr_assert_eq(gs_shm_get("t", 0, 4096, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(gs_shm_copy(r, 2048, buf, 1024, true, err, sizeof(err)), FERRY_EINVAL);
	cr_assert(strstr(err, "truncated"), "%s", err);
	gs_shm_put(r);
	close(fd);
}
