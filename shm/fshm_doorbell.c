/* SPDX-License-Identifier: MIT */
/*
 * fshm_doorbell.c - eventfd doorbells with io_uring's NEED_WAKEUP
 * handshake, and the three wait policies.
 *
 * The handshake is Dekker's: each side stores, then loads what the other
 * side stores.
 *
 *   waiter                              ringer
 *   W1 store flag = 1                   P1 publish (ring release store R1/R2)
 *   F1 full fence                       F2 full fence
 *   W2 load the ring index (ready())    P2 load flag; if set, write(efd)
 *
 * Release / acquire cannot order a store before a later load (StoreLoad);
 * x86 itself reorders exactly that through its store buffer.  Without F1
 * and F2 both sides could read the old values: the waiter sees no data and
 * sleeps, the ringer sees no flag and skips the write, and the wake-up is
 * lost.  With a sequentially consistent fence on both sides, F1 and F2 are
 * totally ordered: if F1 comes first, the ringer's P2 sees W1 and writes
 * the eventfd; if F2 comes first, the waiter's W2 sees P1 and does not
 * sleep.  The fences order only; the data itself still travels through the
 * ring's own acquire / release edges.
 *
 * Ownership: the waiter alone writes the flag; the ringer alone writes the
 * eventfd, the waiter alone reads it.  Each process has its own struct
 * fshm_doorbell per doorbell, used by one thread at a time.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "shm/fshm.h"

/* hybrid: default spin budget, and the floor the adaptation never goes
 * below (about one cross-core round trip plus a clock read or two). */
#define FSHM__SPIN_DEFAULT_NS 50000u
#define FSHM__SPIN_MIN_NS     1000u
/* spin / hybrid: polls before the clock is first read (see below). */
#define FSHM__QUICK_POLLS     64u

/*
 * F1 / F2: the full fence of the handshake.  ThreadSanitizer does not model
 * standalone fences and GCC warns about them under -fsanitize=thread
 * (-Wtsan); the fence only prevents a lost wake-up (liveness), never a data
 * race, so nothing TSan checks depends on it and the warning is silenced
 * here only.
 */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wtsan"
#endif
static inline void fshm__full_fence(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic pop
#endif

int fshm_doorbell_init(struct fshm_doorbell *db, int efd,
		       _Atomic uint32_t *flag)
{
	if (!db || !flag)
		return -EINVAL;
	if (efd < 0) {
		efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (efd < 0)
			return -errno;
	}
	memset(db, 0, sizeof(*db));
	db->efd = efd;
	db->flag = flag;
	return 0;
}

void fshm_doorbell_close(struct fshm_doorbell *db)
{
	if (db && db->flag && db->efd >= 0)
		close(db->efd);
	if (db) {
		db->efd = -1;
		db->flag = NULL;
	}
}

int fshm_doorbell_ring(struct fshm_doorbell *db)
{
	uint64_t one = 1;

	/* F2: orders the caller's publish (R1 / R2) before the load of the
	 * flag below; pairs with F1 in fshm_doorbell_arm(). */
	fshm__full_fence();
	/* Relaxed: the fence above gives the ordering; the flag carries no
	 * data. */
	if (!atomic_load_explicit(db->flag, memory_order_relaxed))
		return 0;
	if (write(db->efd, &one, sizeof(one)) != sizeof(one)) {
		/* EAGAIN: the counter is at its maximum, so the waiter is
		 * woken anyway. */
		if (errno != EAGAIN)
			return -errno;
	}
	/* Relaxed: a statistic; several threads may ring one doorbell (the
	 * broker's completion threads). */
	atomic_fetch_add_explicit(&db->rings, 1, memory_order_relaxed);
	return 1;
}

void fshm_doorbell_arm(struct fshm_doorbell *db)
{
	/* W1: relaxed store of the flag; F1 below orders it before the
	 * caller's re-check of the ring. */
	atomic_store_explicit(db->flag, 1, memory_order_relaxed);
	/* F1: pairs with F2 in fshm_doorbell_ring(). */
	fshm__full_fence();
}

void fshm_doorbell_disarm(struct fshm_doorbell *db)
{
	/* Relaxed: a ringer that still sees 1 only makes one spare eventfd
	 * write, which the next wait drains. */
	atomic_store_explicit(db->flag, 0, memory_order_relaxed);
}

void fshm_doorbell_drain(struct fshm_doorbell *db)
{
	uint64_t v;

	/* Non-blocking: EAGAIN just means nobody rang. */
	while (read(db->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void fshm__ts_from_ns(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

/*
 * Arm, re-check, sleep on the eventfd; until ready or the deadline
 * (0 = none).
 */
static int fshm__block(struct fshm_doorbell *db, bool (*ready)(void *),
		       void *arg, uint64_t deadline)
{
	struct pollfd pfd = { .fd = db->efd, .events = POLLIN };
	struct timespec ts;
	int ret = 0, n;

	/* The CPU this thread leaves idle while it sleeps: the broker runs the
	 * work it waits for there (its poller pinned to that CPU).  Relaxed:
	 * a hint, which the broker bounds; a spinning waiter never sets it,
	 * since its core is not free. */
	if (db->cpu) {
		int cpu = sched_getcpu();
		if (cpu >= 0)
			atomic_store_explicit(db->cpu, (uint32_t)cpu + 1, memory_order_relaxed);
	}
	for (;;) {
		fshm_doorbell_arm(db);
		/* W2: the re-check after F1 (see the top of this file). */
		if (ready(arg))
			break;
		if (deadline) {
			uint64_t now = fshm_now_ns();

			if (now >= deadline) {
				ret = -ETIMEDOUT;
				break;
			}
			fshm__ts_from_ns(&ts, deadline - now);
		}
		db->sleeps++;
		n = ppoll(&pfd, 1, deadline ? &ts : NULL, NULL);
		if (n < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
		if (n > 0)
			fshm_doorbell_drain(db);
	}
	fshm_doorbell_disarm(db);
	return ret;
}

/*
 * Spin until ready, the deadline (0 = none) or `budget` ns (0 = none).
 * Returns 0 when ready, -ETIMEDOUT at the deadline, -EAGAIN when the budget
 * ran out.  The clock is read every few polls: a vDSO clock_gettime costs
 * about as much as a poll, and the budget need not be exact.
 */
static int fshm__spin(bool (*ready)(void *), void *arg, uint64_t start,
		      uint64_t deadline, uint64_t budget, unsigned every)
{
	for (unsigned i = 1;; i++) {
		if (ready(arg))
			return 0;
		fshm_cpu_relax();
		if (i % every == 0 && (deadline || budget)) {
			uint64_t now = fshm_now_ns();

			if (deadline && now >= deadline)
				return -ETIMEDOUT;
			if (budget && now - start >= budget)
				return -EAGAIN;
		}
	}
}

/*
 * hybrid's adaptation.  A spin that wins costs only the wait itself, so a
 * budget only costs anything on waits it loses; the rule therefore shrinks
 * it only on evidence that spinning is wasted:
 *   - the spin won: keep the budget at least twice this wait;
 *   - blocked, and the whole wait was longer than max: the peer sleeps or
 *     is busy, spinning only stole CPU: halve the budget (down to the
 *     floor), so a long idle stretch costs geometrically less per wait;
 *   - blocked, but the wait was within max: a little more spin would have
 *     won and saved the wake-up: budget = twice this wait.
 */
uint64_t fshm_spin_adapt(uint64_t b, uint64_t t, uint64_t max, bool spin_won)
{
	if (spin_won)
		b = b > 2 * t ? b : 2 * t;
	else if (t > max)
		b /= 2;
	else
		b = 2 * t;
	if (b < FSHM__SPIN_MIN_NS)
		b = FSHM__SPIN_MIN_NS;
	if (b > max)
		b = max;
	return b;
}

static void fshm__adapt(struct fshm_doorbell *db, uint64_t t, uint64_t max, bool spin_won)
{
	db->spin_budget_ns = fshm_spin_adapt(db->spin_budget_ns, t, max, spin_won);
}

int fshm_doorbell_wait(struct fshm_doorbell *db, enum fshm_wait_policy policy,
		       bool (*ready)(void *arg), void *arg, int64_t timeout_ns,
		       uint64_t spin_ns)
{
	uint64_t start, deadline = 0;
	int ret;

	if (ready(arg))
		return 0;
	/* The peer that will ring runs on this very CPU (a pinned poller
	 * serving this session): spinning cannot see it finish, it only keeps
	 * it from running.  Relaxed: a hint the peer rewrites when it moves. */
	if (policy != FSHM_WAIT_BLOCK && db->peer_cpu) {
		uint32_t peer = atomic_load_explicit(db->peer_cpu, memory_order_relaxed);
		int cpu = peer ? sched_getcpu() : -1;
		if (cpu >= 0 && peer == (uint32_t)cpu + 1)
			policy = FSHM_WAIT_BLOCK;
	}
	/*
	 * spin / hybrid: a few polls before the first clock read.  Reading
	 * CLOCK_MONOTONIC costs ~25 ns, a sizeable part of a ~150 ns
	 * cross-core round trip, and most waits on a busy ring end within
	 * these polls.  A win here counts as a spin win (it would leave
	 * hybrid's budget as it is).
	 */
	if (policy != FSHM_WAIT_BLOCK && timeout_ns != 0) {
		for (unsigned i = 0; i < FSHM__QUICK_POLLS; i++) {
			fshm_cpu_relax();
			if (ready(arg))
				return 0;
		}
	}
	start = fshm_now_ns();
	if (timeout_ns >= 0)
		deadline = start + (uint64_t)timeout_ns + (timeout_ns == 0);

	switch (policy) {
	case FSHM_WAIT_SPIN:
		return fshm__spin(ready, arg, start, deadline, 0, 1024);
	case FSHM_WAIT_HYBRID:
		if (!spin_ns)
			spin_ns = FSHM__SPIN_DEFAULT_NS;
		if (!db->spin_budget_ns)
			db->spin_budget_ns = spin_ns;
		ret = fshm__spin(ready, arg, start, deadline,
				 db->spin_budget_ns < spin_ns ?
				 db->spin_budget_ns : spin_ns, 8);
		if (!ret) {
			fshm__adapt(db, fshm_now_ns() - start, spin_ns, true);
			return 0;
		}
		if (ret == -EAGAIN)
			ret = fshm__block(db, ready, arg, deadline);
		if (!ret)
			fshm__adapt(db, fshm_now_ns() - start, spin_ns, false);
		return ret;
	case FSHM_WAIT_BLOCK:
		return fshm__block(db, ready, arg, deadline);
	}
	return -EINVAL;
}

int fshm_wait_policy_parse(const char *s, enum fshm_wait_policy *out)
{
	static const enum fshm_wait_policy all[] = {
		FSHM_WAIT_SPIN, FSHM_WAIT_HYBRID, FSHM_WAIT_BLOCK,
	};

	if (!s || !out)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcasecmp(s, fshm_wait_policy_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

const char *fshm_wait_policy_name(enum fshm_wait_policy p)
{
	switch (p) {
	case FSHM_WAIT_SPIN:
		return "spin";
	case FSHM_WAIT_HYBRID:
		return "hybrid";
	case FSHM_WAIT_BLOCK:
		return "block";
	}
	return "unknown";
}
