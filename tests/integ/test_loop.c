/* SPDX-License-Identifier: MIT */
/*
 * The event loop on both engines.  loop_grow_from_callback is the
 * reproducer of a bug: a callback that added descriptors grew the handle
 * table under the dispatcher, which then read the freed entry and never
 * re-armed the listening socket (clients past the 64th hung at connect).
 * The read of freed memory is certain to fail the ASan build; the plain
 * build fails only when realloc moves the table.
 */
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "broker/core/loop.h"

struct grow {
	struct loop *l;
	int efd;
	int fired;
	int extra[200];
	int nextra;
};

static void on_extra(void *arg, uint32_t ev)
{
	uint64_t v;
	(void)!read(*(int *)arg, &v, sizeof(v));
}

static void on_first(void *arg, uint32_t ev)
{
	struct grow *g = arg;
	uint64_t v;
	(void)!read(g->efd, &v, sizeof(v));
	g->fired++;
	/* Enough registrations to force the table to grow. */
	for (int i = 0; i < 100 && g->nextra < 200; i++) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		g->extra[g->nextra] = fd;
		cr_assert_geq(loop_add(g->l, fd, on_extra, &g->extra[g->nextra]), 0);
		g->nextra++;
	}
}

static void grow_test(bool epoll)
{
	struct grow g = { 0 };
	cr_assert_eq(loop_create(&g.l, epoll), 0);
	g.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(loop_add(g.l, g.efd, on_first, &g), 0);
	for (int round = 0; round < 2; round++) {
		uint64_t one = 1;
		cr_assert_eq(write(g.efd, &one, sizeof(one)), 8);
		for (int i = 0; i < 10 && g.fired == round; i++)
			loop_wait(g.l, 100000000);
		cr_assert_eq(g.fired, round + 1, "%s: the first fd still fires after the table grew",
			     loop_engine(g.l));
	}
	loop_destroy(g.l);
	for (int i = 0; i < g.nextra; i++)
		close(g.extra[i]);
	close(g.efd);
}

Test(loop, grow_from_callback_io_uring) { grow_test(false); }
Test(loop, grow_from_callback_epoll) { grow_test(true); }

static void on_count(void *arg, uint32_t ev)
{
	int *n = arg;
	(*n)++;
}

Test(loop, deleted_fd_never_fires)
{
	for (int e = 0; e < 2; e++) {
		struct loop *l;
		int n = 0;
		cr_assert_eq(loop_create(&l, e == 1), 0);
		int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC); /* readable */
		int h = loop_add(l, fd, on_count, &n);
		cr_assert_geq(h, 0);
		loop_wait(l, 100000000);
		cr_assert_geq(n, 1);
		loop_del(l, h);
		int before = n;
		for (int i = 0; i < 3; i++)
			loop_wait(l, 10000000);
		cr_assert_eq(n, before, "%s: no callback after loop_del", loop_engine(l));
		close(fd);
		loop_destroy(l);
	}
}

Test(loop, timeout_returns)
{
	struct loop *l;
	cr_assert_eq(loop_create(&l, false), 0);
	cr_assert_eq(loop_wait(l, 1000000), 0);
	loop_destroy(l);
}
