/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <liburing.h>

#include "broker/core/log.h"
#include "broker/core/loop.h"

/* One watched descriptor.  A handle is (gen << 32 | index): completions
 * that arrive for an entry deleted since (older gen) are ignored. */
struct loop__ent {
	int fd;
	uint32_t gen;
	bool active;
	loop_cb cb;
	void *arg;
};

struct loop {
	bool uring;
	struct io_uring ring;
	int epfd;
	struct loop__ent *ents;
	int nents, cap;
	int *free_idx;
	int nfree;
};

#define LOOP__CANCEL_TAG 0xffffffffffffffffULL

static uint64_t loop__ud(const struct loop *l, int idx)
{
	return (uint64_t)l->ents[idx].gen << 32 | (uint32_t)idx;
}

static int loop__arm(struct loop *l, int idx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
		if (!sqe)
			return -EBUSY;
	}
	/* Single-shot poll, re-armed after each event: level-triggered like
	 * epoll, and works on every kernel with io_uring poll support. */
	io_uring_prep_poll_add(sqe, l->ents[idx].fd, POLLIN);
	io_uring_sqe_set_data64(sqe, loop__ud(l, idx));
	return 0;
}

int loop_create(struct loop **out, bool force_epoll)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = -1;
	if (!force_epoll) {
		int ret = io_uring_queue_init(256, &l->ring, 0);
		if (ret == 0) {
			l->uring = true;
		} else {
			log_warn("io_uring unavailable (%s): using epoll", strerror(-ret));
		}
	}
	if (!l->uring) {
		l->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (l->epfd < 0) {
			int err = -errno;
			free(l);
			return err;
		}
	}
	*out = l;
	return 0;
}

void loop_destroy(struct loop *l)
{
	if (!l)
		return;
	if (l->uring)
		io_uring_queue_exit(&l->ring);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->ents);
	free(l->free_idx);
	free(l);
}

const char *loop_engine(const struct loop *l)
{
	return l->uring ? "io_uring" : "epoll";
}

int loop_add(struct loop *l, int fd, loop_cb cb, void *arg)
{
	int idx;

	if (l->nfree > 0) {
		idx = l->free_idx[--l->nfree];
	} else {
		if (l->nents == l->cap) {
			int cap = l->cap ? l->cap * 2 : 64;
			struct loop__ent *ne = realloc(l->ents, (size_t)cap * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			l->ents = ne;
			int *nf = realloc(l->free_idx, (size_t)cap * sizeof(*nf));
			if (!nf)
				return -ENOMEM;
			l->free_idx = nf;
			l->cap = cap;
		}
		idx = l->nents++;
		l->ents[idx].gen = 0;
	}
	struct loop__ent *e = &l->ents[idx];
	e->fd = fd;
	e->gen++;
	e->active = true;
	e->cb = cb;
	e->arg = arg;

	int ret;
	if (l->uring) {
		ret = loop__arm(l, idx);
	} else {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = loop__ud(l, idx) };
		ret = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
	}
	if (ret) {
		e->active = false;
		l->free_idx[l->nfree++] = idx;
		return ret;
	}
	return idx;
}

void loop_del(struct loop *l, int handle)
{
	if (handle < 0 || handle >= l->nents || !l->ents[handle].active)
		return;
	struct loop__ent *e = &l->ents[handle];
	if (l->uring) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
		if (!sqe) {
			io_uring_submit(&l->ring);
			sqe = io_uring_get_sqe(&l->ring);
		}
		if (sqe) {
			io_uring_prep_poll_remove(sqe, loop__ud(l, handle));
			io_uring_sqe_set_data64(sqe, LOOP__CANCEL_TAG);
		}
		/* Submit now: the caller closes the fd next, and a poll left
		 * armed on a closed fd would pin the file until it fires. */
		io_uring_submit(&l->ring);
	} else {
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, NULL);
	}
	e->active = false;
	e->gen++; /* stale completions no longer match */
	l->free_idx[l->nfree++] = handle;
}

static int loop__dispatch(struct loop *l, uint64_t ud, uint32_t events)
{
	if (ud == LOOP__CANCEL_TAG)
		return 0;
	int idx = (int)(uint32_t)ud;
	uint32_t gen = (uint32_t)(ud >> 32);
	if (idx < 0 || idx >= l->nents)
		return 0;
	struct loop__ent *e = &l->ents[idx];
	if (!e->active || e->gen != gen)
		return 0;
	e->cb(e->arg, events);
	/* The callback may have deleted this entry, re-used its slot, or
	 * grown the table (loop_add reallocs: e may dangle): look again and
	 * re-arm only if it is still the same registration. */
	e = &l->ents[idx];
	if (l->uring && e->active && e->gen == gen)
		loop__arm(l, idx);
	return 1;
}

int loop_wait(struct loop *l, int64_t timeout_ns)
{
	int ran = 0;

	if (!l->uring) {
		struct epoll_event evs[64];
		int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
		int n = epoll_wait(l->epfd, evs, 64, ms);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		for (int i = 0; i < n; i++) {
			uint32_t ev = 0;
			if (evs[i].events & EPOLLIN) ev |= POLLIN;
			if (evs[i].events & EPOLLHUP) ev |= POLLHUP;
			if (evs[i].events & EPOLLERR) ev |= POLLERR;
			ran += loop__dispatch(l, evs[i].data.u64, ev);
		}
		return ran;
	}

	struct io_uring_cqe *cqe;
	int ret;
	if (timeout_ns == 0) {
		io_uring_submit(&l->ring);
		ret = io_uring_peek_cqe(&l->ring, &cqe);
	} else if (timeout_ns < 0) {
		ret = io_uring_submit_and_wait(&l->ring, 1);
		if (ret >= 0)
			ret = io_uring_peek_cqe(&l->ring, &cqe);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ns / 1000000000,
			.tv_nsec = timeout_ns % 1000000000,
		};
		ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	}
	if (ret == -EAGAIN || ret == -ETIME || ret == -EINTR)
		return 0;
	if (ret < 0)
		return ret;
	/* Drain everything that is ready; callbacks may queue new SQEs, which
	 * the next wait submits. */
	for (int budget = 0; budget < 1024; budget++) {
		if (io_uring_peek_cqe(&l->ring, &cqe) != 0)
			break;
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&l->ring, cqe);
		if (res < 0) {
			/* -ECANCELED after poll_remove, -EBADF after close: the
			 * gen check drops them; anything else re-arms. */
			if (ud != LOOP__CANCEL_TAG && res != -ECANCELED && res != -ENOENT) {
				int idx = (int)(uint32_t)ud;
				if (idx >= 0 && idx < l->nents && l->ents[idx].active &&
				    l->ents[idx].gen == (uint32_t)(ud >> 32))
					ran += loop__dispatch(l, ud, POLLERR);
			}
			continue;
		}
		ran += loop__dispatch(l, ud, (uint32_t)res);
	}
	return ran;
}
