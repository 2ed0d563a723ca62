/* SPDX-License-Identifier: MIT */
/*
 * poller.c - the threads that serve the session rings (see poller.h).
 *
 * A poller's pass:
 *   1. adopt the sessions handed to it (new ones, or moved from another
 *      poller): add each doorbell to the epoll set, put it on the active
 *      list with its wake flag down;
 *   2. poll every active session's SQ (session_poll: validate, submit);
 *      a session whose client keeps sleeping on another poller's CPU is
 *      handed over;
 *   3. run the inline models' ready batches (on this thread, this core);
 *   4. with nothing done: spin (policy), then the NEED_WAKEUP handshake
 *      over the active sessions and sleep in epoll_wait until a client
 *      rings, a kick comes or an inline batch's deadline passes.
 *
 * Doorbells are watched edge-triggered and never read: every write to an
 * eventfd wakes its watchers again whatever its counter holds, so the
 * read(2) a level-triggered watch needs is saved on every wake-up.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/core/log.h"
#include "broker/core/poller.h"
#include "broker/core/session.h"
#include "broker/frontends/metrics.h"
#include "broker/models/models.h"

/* Submissions in a row from another poller's CPU before a session moves
 * there: a synchronous client moves after a few requests, while the
 * threads of a multi-threaded job, whose hints alternate, rarely move it. */
#define POLLER__MIGRATE_RUNS 4

/* The longest a poller sleeps before it looks at every session it holds,
 * rung or not.  The NEED_WAKEUP handshake means none should need it; this
 * bounds what a doorbell lost anyway (a client that published without the
 * fence, a bug) costs to this, instead of a request that never completes,
 * and says so in the log.  Ten looks a second cost an idle broker nothing
 * measurable.  A lost one waits between one and two of these. */
#define POLLER__RESCAN_NS 100000000LL

static _Atomic uint64_t poller__rescued;  /* sessions the rescan found with work */

struct poller {
	int idx;
	int cpu;                        /* pinned to it; -1 when not pinned */
	pthread_t thr;
	bool started;
	int epfd;
	int kick_fd;                    /* in epfd with data.ptr NULL */
	_Atomic uint32_t sleeping;      /* (about to be) in epoll_wait */

	pthread_mutex_t lock;           /* guards adopt's list */
	struct session *adopt;          /* through session.pnext; written under
					 * lock, peeked at without (__atomic) */

	/* The poller's own thread only. */
	struct session *active;         /* through session.pnext */
	struct session **owned;         /* every session it holds a reference on */
	uint32_t nowned, capowned;
	_Atomic uint64_t sleeps;
};

static struct poller *poller__all;
static int poller__n;
static bool poller__pin;
static int *poller__by_cpu;             /* CPU -> poller index or -1 */
static int poller__ncpu;
static struct poller_options poller__opt;
static _Atomic bool poller__stopping;
static unsigned poller__rr;             /* loop thread: round robin for new sessions */

static void poller__kick_one(struct poller *p)
{
	uint64_t one = 1;
	ssize_t n = write(p->kick_fd, &one, sizeof(one));
	(void)n;                        /* EAGAIN: already pending */
}

static int poller__own(struct poller *p, struct session *s)
{
	if (p->nowned == p->capowned) {
		uint32_t cap = p->capowned ? p->capowned * 2 : 16;
		struct session **o = realloc(p->owned, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		p->owned = o;
		p->capowned = cap;
	}
	p->owned[p->nowned++] = s;
	return 0;
}

static void poller__disown(struct poller *p, struct session *s)
{
	for (uint32_t i = 0; i < p->nowned; i++)
		if (p->owned[i] == s) {
			p->owned[i] = p->owned[--p->nowned];
			return;
		}
}

/* Let s go: out of the epoll set and the owned set (the caller took it off
 * the active list).  Returns the reference to the caller. */
static void poller__detach(struct poller *p, struct session *s)
{
	epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->db_broker.efd, NULL);
	poller__disown(p, s);
	s->active = false;
}

static void poller__activate(struct poller *p, struct session *s)
{
	if (s->active)
		return;
	/* The client may submit without ringing while we poll. */
	session_disarm(s);
	s->active = true;
	s->pnext = p->active;
	p->active = s;
}

/* Sessions handed to this poller; returns how many. */
static int poller__adopt(struct poller *p)
{
	struct session *list;
	int n = 0;

	/* Relaxed peek: a push after it is seen on the next pass, or wakes
	 * us through the kick eventfd. */
	if (!__atomic_load_n(&p->adopt, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&p->lock);
	list = __atomic_exchange_n(&p->adopt, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
	while (list) {
		struct session *s = list;
		list = s->pnext;
		s->active = false;
		if (atomic_load(&s->closing)) {
			session_unref(s);
			continue;
		}
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = s };
		if (poller__own(p, s) || epoll_ctl(p->epfd, EPOLL_CTL_ADD, s->db_broker.efd, &ev)) {
			int e = errno;
			poller__disown(p, s);
			log_error("session %llu: poller %d cannot watch its doorbell: %s",
				  (unsigned long long)s->id, p->idx, strerror(e));
			poller__opt.corrupt(s, poller__opt.corrupt_arg);
			session_unref(s);
			continue;
		}
		/* Where the session is served now: its client does not spin on
		 * this CPU (fshm_wake.cpu).  Relaxed: a hint. */
		atomic_store_explicit(&s->seg.hdr->broker_wake.cpu,
				      p->cpu >= 0 ? (uint32_t)p->cpu + 1 : 0, memory_order_relaxed);
		poller__activate(p, s);
		n++;
	}
	return n;
}

static void poller__push(struct poller *p, struct session *s)
{
	pthread_mutex_lock(&p->lock);
	s->pnext = __atomic_load_n(&p->adopt, __ATOMIC_RELAXED);
	__atomic_store_n(&p->adopt, s, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
	poller__kick_one(p);
}

/* Whether s's client keeps sleeping on another poller's CPU; if so,
 * hand it there (the caller has taken it off the active list). */
static bool poller__should_move(struct poller *p, struct session *s, int *to)
{
	int cpu = session_client_cpu(s);
	int t = cpu >= 0 && cpu < poller__ncpu ? poller__by_cpu[cpu] : -1;

	if (t < 0 || t == p->idx) {
		s->hint_runs = 0;
		return false;
	}
	if (s->hint != (uint32_t)t) {
		s->hint = (uint32_t)t;
		s->hint_runs = 0;
	}
	if (++s->hint_runs < POLLER__MIGRATE_RUNS)
		return false;
	s->hint_runs = 0;
	*to = t;
	return true;
}

/* Poll the active sessions; returns the submissions taken. */
static int poller__poll(struct poller *p)
{
	struct session **pp = &p->active;
	int work = 0;

	while (*pp) {
		struct session *s = *pp;
		int to, n;

		if (atomic_load_explicit(&s->closing, memory_order_relaxed)) {
			*pp = s->pnext;
			poller__detach(p, s);
			session_unref(s);
			continue;
		}
		n = session_poll(s);
		if (n < 0) {
			log_warn("session %llu: corrupt ring indices; closing it",
				 (unsigned long long)s->id);
			*pp = s->pnext;
			poller__detach(p, s);
			poller__opt.corrupt(s, poller__opt.corrupt_arg);
			session_unref(s);
			continue;
		}
		work += n;
		if (n > 0 && poller__pin && poller__should_move(p, s, &to)) {
			*pp = s->pnext;
			poller__detach(p, s);
			log_debug("session %llu: poller %d -> %d (its client runs on CPU %d)",
				  (unsigned long long)s->id, p->idx, to, poller__all[to].cpu);
			poller__push(&poller__all[to], s);
			continue;
		}
		pp = &s->pnext;
	}
	return work;
}

/* Wait for doorbells and kicks (timeout_ns < 0: forever; 0: poll). */
static void poller__wait(struct poller *p, int64_t timeout_ns)
{
	struct epoll_event ev[64];
	struct timespec ts, *tsp = NULL;
	int n;

	if (timeout_ns >= 0) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000);
		ts.tv_nsec = (long)(timeout_ns % 1000000000);
		tsp = &ts;
	}
	/* epoll_pwait2: a batcher deadline in microseconds is not rounded
	 * up to a millisecond as epoll_wait's timeout would be. */
	n = epoll_pwait2(p->epfd, ev, 64, tsp, NULL);
	if (n < 0 && errno == ENOSYS) {
		int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
		n = epoll_wait(p->epfd, ev, 64, ms);
	}
	for (int i = 0; i < n; i++) {
		struct session *s = ev[i].data.ptr;
		if (!s) {
			uint64_t v;
			ssize_t r = read(p->kick_fd, &v, sizeof(v));
			(void)r;
			continue;
		}
		/* A closing session is let go by the next poll of the list. */
		poller__activate(p, s);
	}
}

/* Every POLLER__RESCAN_NS, asleep or busy: a session this poller holds
 * that sat off the active list with submissions waiting, its SQ head where
 * it was, from one look to the next, lost its wake-up: it goes back on the
 * active list.  One seen so at one look only is left alone: its client
 * may be between publishing and ringing, and its doorbell is on the way. */
static void poller__rescan(struct poller *p)
{
	for (uint32_t i = 0; i < p->nowned; i++) {
		struct session *s = p->owned[i];
		if (s->active || atomic_load_explicit(&s->closing, memory_order_relaxed) ||
		    !session_has_work(s)) {
			s->rescan_mark = false;
			continue;
		}
		if (!s->rescan_mark || s->rescan_head != s->sq.local) {
			s->rescan_mark = true;
			s->rescan_head = s->sq.local;
			continue;
		}
		s->rescan_mark = false;
		if (atomic_fetch_add_explicit(&poller__rescued, 1, memory_order_relaxed) == 0)
			log_warn("poller %d: session %llu had submissions waiting for %d ms that "
				 "its doorbell did not announce (a lost wake-up: please report it)",
				 p->idx, (unsigned long long)s->id,
				 (int)(POLLER__RESCAN_NS / 1000000));
		poller__activate(p, s);
	}
}

static void *poller__main(void *arg)
{
	struct poller *p = arg;
	const struct poller_options *o = &poller__opt;
	uint64_t idle_since = fshm_now_ns(), last_rescan = idle_since;
	/* hybrid: the spin budget, adapted as the clients' is (fshm_spin_adapt):
	 * beside saturated jobs, whose next request comes long after the spin
	 * would end, it falls to the floor, and the core goes back to them */
	uint64_t budget = o->spin_ns;
	bool idle = false;              /* nothing found since idle_since */
	unsigned iter = 0;
	char name[16];

	snprintf(name, sizeof(name), "ferry-poll%d", p->idx);
	pthread_setname_np(pthread_self(), name);

	while (!atomic_load_explicit(&poller__stopping, memory_order_relaxed)) {
		uint64_t deadline = UINT64_MAX, now;
		int work = poller__adopt(p);

		work += poller__poll(p);
		now = fshm_now_ns();
		if (now - last_rescan >= (uint64_t)POLLER__RESCAN_NS) {
			last_rescan = now;
			poller__rescan(p);
		}
		work += models_run_inline(now, &deadline);
		if (work) {
			if (idle && o->wait == FSHM_WAIT_HYBRID)
				budget = fshm_spin_adapt(budget, now - idle_since, o->spin_ns, true);
			idle = false;
			idle_since = now;
			/* Sessions that rang while we were busy. */
			if ((++iter & 63) == 0)
				poller__wait(p, 0);
			continue;
		}
		idle = true;
		if (o->wait == FSHM_WAIT_SPIN ||
		    (o->wait == FSHM_WAIT_HYBRID && now - idle_since < budget)) {
			if ((++iter & 63) == 0)
				poller__wait(p, 0);
			fshm_cpu_relax();
			continue;
		}

		/* Going to sleep: NEED_WAKEUP over the active sessions.  Raise
		 * every flag, one full fence, re-check every ring; a client that
		 * published before the fence is seen here, one that publishes
		 * after it sees its flag and rings the eventfd.  The same holds
		 * for poller_kick() and our sleeping flag. */
		atomic_store_explicit(&p->sleeping, 1, memory_order_relaxed);
		for (struct session *s = p->active; s; s = s->pnext)
			session_arm(s);
		atomic_thread_fence(memory_order_seq_cst);
		bool again = __atomic_load_n(&p->adopt, __ATOMIC_RELAXED) != NULL;
		for (struct session *s = p->active; s && !again; s = s->pnext)
			again = session_has_work(s);
		now = fshm_now_ns();
		if (!again && models_run_inline(now, &deadline) > 0)
			again = true;
		if (!again) {
			/* Every active session is armed: it leaves the list and
			 * costs nothing until its client rings. */
			for (struct session *s = p->active; s; s = s->pnext)
				s->active = false;
			p->active = NULL;
			atomic_fetch_add_explicit(&p->sleeps, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&metrics_gauges.loop_sleeps, 1, memory_order_relaxed);
			int64_t timeout = POLLER__RESCAN_NS;
			if (deadline != UINT64_MAX) {
				int64_t d = deadline > now ? (int64_t)(deadline - now) : 0;
				if (d < timeout)
					timeout = d;
			}
			poller__wait(p, timeout);
			if (o->wait == FSHM_WAIT_HYBRID)
				budget = fshm_spin_adapt(budget, fshm_now_ns() - idle_since,
							 o->spin_ns, false);
		} else {
			for (struct session *s = p->active; s; s = s->pnext)
				session_disarm(s);
		}
		atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
		idle = false;
		idle_since = fshm_now_ns();
	}
	return NULL;
}

static int poller__cpus(int **out)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	int *cpus = calloc(CPU_SETSIZE, sizeof(*cpus));
	if (!cpus)
		return -ENOMEM;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	*out = cpus;
	return n;
}

int poller_start(const struct poller_options *o, char *err, size_t errlen)
{
	int *cpus = NULL;
	int ncpu = poller__cpus(&cpus);
	int ret;

	if (ncpu <= 0) {
		snprintf(err, errlen, "sched_getaffinity: %s", strerror(ncpu ? -ncpu : ENOENT));
		return ncpu ? ncpu : -ENOENT;
	}
	poller__opt = *o;
	poller__n = o->count > 0 ? o->count : ncpu;
	/* One per CPU, pinned; more pollers than CPUs, or a single one,
	 * float where the kernel puts them. */
	poller__pin = poller__n > 1 && poller__n <= ncpu;
	poller__ncpu = cpus[ncpu - 1] + 1;
	poller__by_cpu = malloc((size_t)poller__ncpu * sizeof(*poller__by_cpu));
	poller__all = calloc((size_t)poller__n, sizeof(*poller__all));
	if (!poller__by_cpu || !poller__all) {
		free(cpus);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int c = 0; c < poller__ncpu; c++)
		poller__by_cpu[c] = -1;
	atomic_store(&poller__stopping, false);
	for (int i = 0; i < poller__n; i++) {
		struct poller *p = &poller__all[i];
		p->idx = i;
		p->cpu = poller__pin ? cpus[i] : -1;
		p->epfd = -1;
		p->kick_fd = -1;
		pthread_mutex_init(&p->lock, NULL);
		if (poller__pin)
			poller__by_cpu[cpus[i]] = i;
	}
	free(cpus);
	for (int i = 0; i < poller__n; i++) {
		struct poller *p = &poller__all[i];
		struct epoll_event ev = { .events = EPOLLIN };
		pthread_attr_t attr;

		p->epfd = epoll_create1(EPOLL_CLOEXEC);
		p->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->epfd < 0 || p->kick_fd < 0 ||
		    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->kick_fd, &ev)) {
			ret = -errno;
			snprintf(err, errlen, "poller %d: %s", i, strerror(errno));
			goto fail;
		}
		pthread_attr_init(&attr);
		if (p->cpu >= 0) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(p->cpu, &one);
			pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		}
		ret = -pthread_create(&p->thr, &attr, poller__main, p);
		pthread_attr_destroy(&attr);
		if (ret) {
			snprintf(err, errlen, "poller %d: pthread_create: %s", i, strerror(-ret));
			goto fail;
		}
		p->started = true;
	}
	return 0;
fail:
	poller_stop();
	return ret;
}

void poller_stop(void)
{
	atomic_store(&poller__stopping, true);
	for (int i = 0; i < poller__n; i++)
		if (poller__all[i].started)
			poller__kick_one(&poller__all[i]);
	for (int i = 0; i < poller__n; i++) {
		struct poller *p = &poller__all[i];
		if (p->started)
			pthread_join(p->thr, NULL);
		p->started = false;
		/* The sessions it owned, and those on their way to it. */
		for (uint32_t k = 0; k < p->nowned; k++)
			session_unref(p->owned[k]);
		while (p->adopt) {
			struct session *s = p->adopt;
			p->adopt = s->pnext;
			session_unref(s);
		}
		free(p->owned);
		if (p->epfd >= 0)
			close(p->epfd);
		if (p->kick_fd >= 0)
			close(p->kick_fd);
		pthread_mutex_destroy(&p->lock);
	}
	free(poller__all);
	free(poller__by_cpu);
	poller__all = NULL;
	poller__by_cpu = NULL;
	poller__n = 0;
}

int poller_count(void)
{
	return poller__n;
}

bool poller_pinned(void)
{
	return poller__pin;
}

void poller_add(struct session *s)
{
	struct poller *p = &poller__all[poller__rr++ % (unsigned)poller__n];

	session_ref(s);
	poller__push(p, s);
}

void poller_remove(struct session *s)
{
	uint64_t one = 1;

	atomic_store(&s->closing, true);
	/* Wakes the owner wherever the session is; one that is moving
	 * between pollers is seen closing when it is adopted. */
	ssize_t n = write(s->db_broker.efd, &one, sizeof(one));
	(void)n;
}

void poller_kick(void)
{
	/* Pairs with the fence after a poller raises its sleeping flag:
	 * either that poller's re-check sees the queued work, or we see its
	 * flag.  One awake poller is enough: it runs every inline model. */
	atomic_thread_fence(memory_order_seq_cst);
	for (int i = 0; i < poller__n; i++)
		if (!atomic_load_explicit(&poller__all[i].sleeping, memory_order_relaxed))
			return;
	int cpu = sched_getcpu();
	int i = poller__pin && cpu >= 0 && cpu < poller__ncpu && poller__by_cpu[cpu] >= 0
		? poller__by_cpu[cpu] : 0;
	poller__kick_one(&poller__all[i]);
}

uint64_t poller_sleeps(void)
{
	uint64_t n = 0;
	for (int i = 0; i < poller__n; i++)
		n += atomic_load_explicit(&poller__all[i].sleeps, memory_order_relaxed);
	return n;
}
