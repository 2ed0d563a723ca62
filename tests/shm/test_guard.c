/* SPDX-License-Identifier: MIT */
/*
 * Guarded copies (shm/fshm_guard.c): a copy from or to a mapping whose
 * file shrank under it fails with -EFAULT and the process lives, again and
 * again and from many threads; a SIGBUS anywhere else still kills it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "shm/fshm.h"

static long page;
static int fd = -1;
static uint8_t *map;
static size_t len;

/* A memfd of npages pages, mapped shared, filled with a pattern. */
static void map_pages(int npages)
{
	page = sysconf(_SC_PAGESIZE);
	len = (size_t)npages * (size_t)page;
	fd = memfd_create("guard-test", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(map, MAP_FAILED);
	for (size_t i = 0; i < len; i++)
		map[i] = (uint8_t)(i * 7);
}

static void unmap(void)
{
	if (map && map != MAP_FAILED)
		munmap(map, len);
	if (fd >= 0)
		close(fd);
	map = NULL;
	fd = -1;
}

TestSuite(guard, .fini = unmap);

Test(guard, copies_within_the_object)
{
	map_pages(4);
	static uint8_t buf[1 << 16];
	cr_assert_eq(fshm_guard_copy(buf, map + 100, len - 200), 0);
	for (size_t i = 0; i < len - 200; i++)
		cr_assert_eq(buf[i], (uint8_t)((i + 100) * 7));
	memset(buf, 0xab, 64);
	cr_assert_eq(fshm_guard_copy(map + page, buf, 64), 0, "a write into the mapping");
	cr_assert_eq(map[page + 63], 0xab);
	cr_assert_eq(fshm_guard_copy(buf, map, 0), 0, "nothing to copy");
}

Test(guard, a_read_past_a_shrunk_object_fails_and_the_process_lives)
{
	map_pages(4);
	static uint8_t buf[1 << 16];
	uint64_t before = fshm_guard_caught();
	cr_assert_eq(ftruncate(fd, page), 0, "the owner shrinks it to one page");
	/* Many times: the handler must leave SIGBUS unblocked behind it. */
	for (int i = 0; i < 100; i++)
		cr_assert_eq(fshm_guard_copy(buf, map, len), -EFAULT, "round %d", i);
	cr_assert_eq(fshm_guard_caught() - before, 100);
	/* What is still inside the object copies as before. */
	cr_assert_eq(fshm_guard_copy(buf, map, (size_t)page), 0);
	cr_assert_eq(buf[5], 35);
	/* Grown again, the pages are back (zeros: the old ones are gone). */
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	cr_assert_eq(fshm_guard_copy(buf, map, len), 0);
	cr_assert_eq(buf[len - 1], 0);
}

Test(guard, a_write_past_a_shrunk_object_fails)
{
	map_pages(2);
	static uint8_t buf[8192 * 4];
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(fshm_guard_copy(map, buf, len), -EFAULT);
	cr_assert_eq(fshm_guard_copy(map + len - 8, buf, 8), -EFAULT);
}

/* A SIGBUS outside a guarded copy is not recovered: the process dies of
 * it, as it would without the guard (Criterion sees the signal). */
Test(guard, a_fault_outside_a_guarded_copy_still_kills, .signal = SIGBUS)
{
	map_pages(2);
	cr_assert_eq(fshm_guard_init(), 0);
	uint8_t b;
	cr_assert_eq(fshm_guard_copy(&b, map, 1), 0);
	cr_assert_eq(ftruncate(fd, 0), 0);
	volatile uint8_t *p = map;
	b = p[page + 1];        /* unguarded: SIGBUS, default action */
	cr_log_error("still alive after touching a truncated page (%d)", b);
}

/* A SIGBUS sent with kill() is raised again, not swallowed. */
Test(guard, a_signal_sent_with_kill_is_not_swallowed, .signal = SIGBUS)
{
	cr_assert_eq(fshm_guard_init(), 0);
	kill(getpid(), SIGBUS);
	usleep(100000);
	cr_log_error("SIGBUS from kill() was swallowed");
}

/* Threads copy a region while its owner shrinks and regrows it: every copy
 * either succeeds or fails with -EFAULT, and the process lives. */
static _Atomic bool stop;
static _Atomic uint64_t ok, faulted, odd;

static void *copier(void *arg)
{
	static _Thread_local uint8_t buf[8 * 4096];
	size_t n = len < sizeof(buf) ? len : sizeof(buf);
	bool write = (uintptr_t)arg & 1;
	while (!atomic_load(&stop)) {
		int r = write ? fshm_guard_copy(map, buf, n) : fshm_guard_copy(buf, map, n);
		if (r == 0)
			atomic_fetch_add(&ok, 1);
		else if (r == -EFAULT)
			atomic_fetch_add(&faulted, 1);
		else
			atomic_fetch_add(&odd, 1);
	}
	return NULL;
}

Test(guard, many_threads_while_the_owner_truncates_in_a_loop)
{
	map_pages(8);
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, copier, (void *)i);
	for (int i = 0; i < 2000; i++) {
		cr_assert_eq(ftruncate(fd, (off_t)(i % 2 ? len : (size_t)page * (size_t)(i % 7))), 0);
		if (i % 64 == 0)
			usleep(100);
	}
	/* Until both outcomes were seen (or 10 s on a very busy machine). */
	for (int i = 0; i < 10000 && (!atomic_load(&faulted) || !atomic_load(&ok)); i++) {
		cr_assert_eq(ftruncate(fd, (off_t)(i % 2 ? len : 0)), 0);
		usleep(1000);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_log_info("guarded copies: %llu whole, %llu faulted",
		    (unsigned long long)atomic_load(&ok), (unsigned long long)atomic_load(&faulted));
	cr_expect_eq(atomic_load(&odd), 0, "every copy returned 0 or -EFAULT");
	cr_expect_gt(atomic_load(&faulted), 0, "some copies met a truncated object");
	cr_expect_gt(atomic_load(&ok), 0, "some copies went through");
}
