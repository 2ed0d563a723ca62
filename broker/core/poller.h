/* SPDX-License-Identifier: MIT */
/*
 * poller.h - the threads that serve the shared-memory sessions' rings.
 * Prefix poller_.
 *
 * ferryd runs one poller per CPU it may use (--pollers), each pinned to
 * its CPU.  A session belongs to one poller at a time: its doorbell
 * eventfd is in that poller's epoll set, and only that poller polls its
 * ring.  A client thread that blocks waiting for a result writes the CPU
 * it sleeps on into its segment (fshm_wake.cpu); when a session's hint
 * names another poller's CPU several submissions in a row, its owner
 * hands it over.  A synchronous client that blocks on its result thus
 * leaves its core to exactly the thread that runs its request (an inline
 * model runs on the poller that took it), and both wake-ups stay on one
 * core: measured on the 2-core VM, a same-core eventfd round trip costs a
 * few microseconds, a cross-core one tens (BENCHMARKS.md).  A client that
 * spins never sets the hint: its core is not free.
 *
 * Cost follows the active sessions, not the connected ones.  A poller
 * keeps a list of its active sessions, which it polls on every pass with
 * their wake flag down (clients then submit without a system call).
 * Before it sleeps it raises the flag of each active session, fences, and
 * re-checks them (the NEED_WAKEUP handshake); the list is then emptied,
 * and an idle session costs nothing until its client rings the eventfd,
 * which puts it back on the list.  A thousand idle sessions add nothing
 * to an active client's round trip.
 *
 * THREADS
 *
 * poller_start / poller_stop / poller_add / poller_remove: the loop
 * thread.  poller_kick: any thread.  Each poller's active list and epoll
 * set are its own; its adopt list is guarded by its lock.  A poller holds
 * one reference on every session it owns (session_ref), dropped when it
 * lets the session go (closing, or handed to another poller with the
 * reference).
 */
#ifndef FERRY_POLLER_H
#define FERRY_POLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/fshm.h"

struct broker;
struct session;

struct poller_options {
	int count;                      /* 0: one per CPU of the affinity mask */
	enum fshm_wait_policy wait;     /* spin / hybrid / block before sleeping */
	uint64_t spin_ns;               /* hybrid: spin this long when idle */
	/* A session whose ring the poller found corrupt: the loop thread
	 * must close it.  Called from a poller; must be thread-safe. */
	void (*corrupt)(struct session *s, void *arg);
	void *corrupt_arg;
};

/* Start the pollers.  0, or a negative errno with err filled. */
int poller_start(const struct poller_options *o, char *err, size_t errlen);

/* Stop and join every poller; the sessions they own are let go. */
void poller_stop(void);

/* Number of pollers, and whether they are pinned one per CPU. */
int poller_count(void);
bool poller_pinned(void);

/* Hand a new session to a poller (takes a reference). */
void poller_add(struct session *s);

/* The session is closing: its owner takes its doorbell out of its epoll
 * set and drops its reference (soon, not before this returns). */
void poller_remove(struct session *s);

/* Work for inline models was queued by a thread that is not a poller:
 * make sure a poller runs it (NEED_WAKEUP: wakes one only when all
 * sleep). */
void poller_kick(void);

/* Times pollers went to sleep (metrics). */
uint64_t poller_sleeps(void);

#endif /* FERRY_POLLER_H */
