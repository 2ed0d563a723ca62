/* SPDX-License-Identifier: MIT */
/*
 * loop.h - ferryd's event loop: readiness of file descriptors (the
 * listening socket, control connections, doorbell eventfds, the signalfd,
 * the kick eventfd) and a timeout for the batcher's deadlines.
 *
 * Two engines behind one interface: io_uring (liburing; a single-shot
 * IORING_OP_POLL_ADD per descriptor, re-armed after each event so that it
 * is level-triggered like epoll; the wait itself is
 * io_uring_submit_and_wait_timeout) and, where io_uring cannot be set up
 * (old kernel, seccomp, io_uring_disabled), epoll.  Both report readiness;
 * the handlers then read / accept without blocking, so the two engines
 * behave the same.  The loop is single-threaded: only the thread that runs
 * loop_wait() may call the other functions.  Prefix loop_.
 */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/* Called with the poll events (POLLIN, POLLHUP, ...) that fired. */
typedef void (*loop_cb)(void *arg, uint32_t events);

/* force_epoll: skip io_uring (tests, --event-loop epoll). */
int loop_create(struct loop **out, bool force_epoll);
void loop_destroy(struct loop *l);
const char *loop_engine(const struct loop *l); /* "io_uring" or "epoll" */

/*
 * loop_add - watch fd for POLLIN (plus errors / hang-up); returns a
 * handle >= 0 for loop_del(), or a negative errno.  The callback runs on
 * the loop thread inside loop_wait().
 */
int loop_add(struct loop *l, int fd, loop_cb cb, void *arg);

/*
 * loop_del - stop watching.  The callback will not run again after this
 * returns, even for events already reaped in the current loop_wait().
 * The caller closes the fd afterwards.
 */
void loop_del(struct loop *l, int handle);

/* Wait up to timeout_ns (< 0 forever, 0 poll) and run the callbacks of
 * ready descriptors.  Returns the number of callbacks run or -errno. */
int loop_wait(struct loop *l, int64_t timeout_ns);

#endif
