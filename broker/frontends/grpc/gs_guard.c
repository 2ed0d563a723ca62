/* SPDX-License-Identifier: MIT */
/*
 * gs_guard.c - the connection guard of the plaintext gRPC port: ferryd's
 * own listener, connection limits, and per-connection limits on calls in
 * flight and on cancelled calls (rapid reset).  See gs_guard.h.
 *
 * THREADS AND LOCKS
 *
 * One thread (gs__guard_main) accepts, waits for each connection's HTTP/2
 * preface, hands connections to gRPC and notices their end; gs__guard.lock
 * guards the slot table's structure (afd, gfd, cut, free list, counts).
 * gRPC's server threads call gs_guard_call_start / _end without the lock:
 * a slot's counters are atomics and its generation (gen) says whether a
 * handle still names the connection it was taken on; only cutting a
 * connection takes the lock.
 *
 * A slot's descriptors: afd is the socket as accepted, the guard's own
 * (epoll watches it for the connection's end; cutting shuts it down);
 * gfd is a dup of it handed to gRPC, which closes it when it is done.
 * gRPC names the connection "fd:<gfd>", and fd_slot maps that number back
 * to the slot while the guard holds the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <ferry/errors.h>

#include "broker/core/log.h"
#include "broker/frontends/grpc/gs_guard.h"

#define GS_GUARD_MAX_LISTEN 8
#define GS_GUARD_SWEEP_MS 100
#define GS_GUARD_FD_MAX (1 << 20)       /* fd_slot entries at most */

static const char gs__guard_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define GS_GUARD_PREFACE_LEN (sizeof(gs__guard_preface) - 1)

/* One connection; see THREADS AND LOCKS for what guards what. */
struct gs__guard_conn {
	int afd;                        /* -1: the slot is free; lock */
	_Atomic int gfd;                /* gRPC's; -1 until handed; lock to write */
	_Atomic uint32_t gen;           /* bumped when the slot is freed */
	bool cut;                       /* shut down by the guard; lock */
	bool handed;                    /* given to gRPC; lock */
	dev_t dev;                      /* the socket, to tell gfd still is it */
	ino_t ino;
	uint64_t deadline_ms;           /* the preface's, until handed; lock */
	unsigned char ip[16];           /* the client's address; lock */
	int next_free;                  /* lock */
	_Atomic int inflight;           /* calls in flight */
	_Atomic uint64_t t_active_ms;   /* the last call start or end */
	/* cancelled calls: second << 32 | previous second's << 16 | this one's */
	_Atomic uint64_t cancels;
};

static struct {
	pthread_mutex_t lock;
	struct gs_guard_limits lim;
	int lfd[GS_GUARD_MAX_LISTEN];
	int nlisten;
	int ep, wake;
	pthread_t th;
	bool running;
	grpc_server *server;
	grpc_server_credentials *creds;
	struct gs__guard_conn *conns;   /* nslots */
	int nslots, free_head, nlive;   /* nlive: used and not cut; lock */
	_Atomic int *fd_slot;           /* gfd -> slot + 1; nfd entries */
	int nfd;
	/* what the guard did, logged once a second at most; lock */
	unsigned long refused, evicted, late, cut_inflight, cut_cancels, bad;
	uint64_t logged_ms;
} gs__guard = { .lock = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .wake = -1 };

static uint64_t gs__guard_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------- */
/* Listening                                                               */

static int gs__guard_bind(const struct sockaddr *sa, socklen_t len, bool dual)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &zero : &one, sizeof(int));
	if (bind(fd, sa, len) || listen(fd, SOMAXCONN)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int gs_guard_listen(const char *host, int port, const struct gs_guard_limits *l,
		    const char *addr)
{
	char h[256], p[16];
	size_t n = strlen(host);

	gs__guard.lim = *l;
	gs__guard.nlisten = 0;
	/* "[::1]" is gRPC's spelling of an IPv6 address with a port. */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
		snprintf(h, sizeof(h), "%.*s", (int)(n - 2), host + 1);
	else
		snprintf(h, sizeof(h), "%s", host);
	snprintf(p, sizeof(p), "%d", port);
	/* A wildcard is every interface, IPv6 and IPv4 on one socket when the
	 * host has IPv6 (as gRPC binds it), else IPv4 only. */
	if (!strcmp(h, "0.0.0.0") || !strcmp(h, "::")) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
					   .sin6_addr = IN6ADDR_ANY_INIT };
		struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					  .sin_addr.s_addr = htonl(INADDR_ANY) };
		int fd = gs__guard_bind((struct sockaddr *)&s6, sizeof(s6), true);
		if (fd < 0 && errno != EADDRINUSE && !strcmp(h, "0.0.0.0"))
			fd = gs__guard_bind((struct sockaddr *)&s4, sizeof(s4), false);
		if (fd >= 0)
			gs__guard.lfd[gs__guard.nlisten++] = fd;
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
					  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
		int e = getaddrinfo(h, p, &hints, &res);
		if (e) {
			log_error("gRPC: cannot resolve %s: %s", addr, gai_strerror(e));
			return FERRY_EBUSY;
		}
		for (struct addrinfo *a = res; a && gs__guard.nlisten < GS_GUARD_MAX_LISTEN;
		     a = a->ai_next) {
			int fd = gs__guard_bind(a->ai_addr, a->ai_addrlen, false);
			if (fd >= 0)
				gs__guard.lfd[gs__guard.nlisten++] = fd;
			else
				log_debug("gRPC: bind %s (family %d): %s", addr, a->ai_family,
					  strerror(errno));
		}
		freeaddrinfo(res);
	}
	if (gs__guard.nlisten == 0) {
		log_error("gRPC: cannot listen on %s (address in use or not local?)", addr);
		return FERRY_EBUSY;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Slots                                                                   */

static void gs__guard_free_slot(int i)
{
	struct gs__guard_conn *c = &gs__guard.conns[i];
	epoll_ctl(gs__guard.ep, EPOLL_CTL_DEL, c->afd, NULL);
	close(c->afd);
	int g = atomic_load(&c->gfd);
	if (g >= 0 && g < gs__guard.nfd) {
		int want = i + 1;
		atomic_compare_exchange_strong(&gs__guard.fd_slot[g], &want, 0);
	}
	atomic_fetch_add(&c->gen, 1);
	atomic_store(&c->gfd, -1);
	c->afd = -1;
	if (!c->cut)
		gs__guard.nlive--;
	c->next_free = gs__guard.free_head;
	gs__guard.free_head = i;
}

static void gs__guard_cut_locked(struct gs__guard_conn *c)
{
	if (c->afd < 0 || c->cut)
		return;
	shutdown(c->afd, SHUT_RDWR);
	c->cut = true;
	gs__guard.nlive--;
}

/* Cut the connection of slot i if it is still generation gen. */
static void gs__guard_cut(int i, uint32_t gen, bool inflight)
{
	pthread_mutex_lock(&gs__guard.lock);
	struct gs__guard_conn *c = &gs__guard.conns[i];
	if (atomic_load(&c->gen) == gen && c->afd >= 0 && !c->cut) {
		gs__guard_cut_locked(c);
		if (inflight)
			gs__guard.cut_inflight++;
		else
			gs__guard.cut_cancels++;
	}
	pthread_mutex_unlock(&gs__guard.lock);
}

static void gs__guard_ip(const struct sockaddr_storage *ss, unsigned char ip[16])
{
	memset(ip, 0, 16);
	if (ss->ss_family == AF_INET) {
		/* As an IPv4-mapped IPv6 address: one client, one key. */
		ip[10] = ip[11] = 0xff;
		memcpy(ip + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(ip, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	}
}

/*
 * A new connection: refused over the per-address limit; at the maximum,
 * it takes the slot of the connection idle longest (none in flight), or
 * is refused when all are busy: an attacker holding idle connections
 * cannot lock new clients out.  Lock held.
 */
static void gs__guard_admit_locked(int fd, const struct sockaddr_storage *ss)
{
	unsigned char ip[16];
	gs__guard_ip(ss, ip);
	if (gs__guard.lim.max_conns_per_ip > 0) {
		int same = 0;
		for (int i = 0; i < gs__guard.nslots; i++) {
			struct gs__guard_conn *c = &gs__guard.conns[i];
			if (c->afd >= 0 && !c->cut && !memcmp(c->ip, ip, 16))
				same++;
		}
		if (same >= gs__guard.lim.max_conns_per_ip) {
			gs__guard.refused++;
			close(fd);
			return;
		}
	}
	if (gs__guard.nlive >= gs__guard.lim.max_conns) {
		int lru = -1;
		uint64_t t = UINT64_MAX;
		for (int i = 0; i < gs__guard.nslots; i++) {
			struct gs__guard_conn *c = &gs__guard.conns[i];
			uint64_t a = atomic_load(&c->t_active_ms);
			if (c->afd >= 0 && !c->cut && atomic_load(&c->inflight) <= 0 && a < t) {
				t = a;
				lru = i;
			}
		}
		if (lru < 0) {
			gs__guard.refused++;
			close(fd);
			return;
		}
		gs__guard.evicted++;
		if (gs__guard.conns[lru].handed)
			gs__guard_cut_locked(&gs__guard.conns[lru]);
		else
			gs__guard_free_slot(lru);
	}
	int i = gs__guard.free_head;
	if (i < 0) {                    /* cut connections gRPC still has */
		gs__guard.refused++;
		close(fd);
		return;
	}
	struct gs__guard_conn *c = &gs__guard.conns[i];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)i };
	if (epoll_ctl(gs__guard.ep, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		return;
	}
	gs__guard.free_head = c->next_free;
	uint64_t now = gs__guard_now_ms();
	c->afd = fd;
	atomic_store(&c->gfd, -1);
	c->cut = false;
	c->handed = false;
	c->deadline_ms = now + (uint64_t)gs__guard.lim.preface_ms;
	memcpy(c->ip, ip, 16);
	atomic_store(&c->inflight, 0);
	atomic_store(&c->t_active_ms, now);
	atomic_store(&c->cancels, 0);
	gs__guard.nlive++;
}

/* Slot i (waiting for its preface) is readable: hand it to gRPC once the
 * whole preface is there; close it when it is not HTTP/2.  Lock held;
 * returns gRPC's descriptor to hand (after unlocking), or -1. */
static int gs__guard_preface_locked(int i)
{
	struct gs__guard_conn *c = &gs__guard.conns[i];
	char b[GS_GUARD_PREFACE_LEN];
	ssize_t n = recv(c->afd, b, sizeof(b), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n > 0 && (size_t)n < sizeof(b) && !memcmp(b, gs__guard_preface, (size_t)n))
		return -1;              /* part of it; epoll says when more came */
	if (n != (ssize_t)sizeof(b) || memcmp(b, gs__guard_preface, sizeof(b))) {
		if (n != 0)
			gs__guard.bad++;
		gs__guard_free_slot(i);
		return -1;
	}
	struct stat st;
	int g = fcntl(c->afd, F_DUPFD_CLOEXEC, 0);
	if (g < 0 || g >= gs__guard.nfd || fstat(c->afd, &st)) {
		if (g >= 0)
			close(g);
		gs__guard.refused++;
		gs__guard_free_slot(i);
		return -1;
	}
	int one = 1;
	setsockopt(c->afd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->handed = true;
	atomic_store(&c->gfd, g);
	atomic_store(&gs__guard.fd_slot[g], i + 1);
	/* From now on only the connection's end matters here. */
	struct epoll_event ev = { .events = EPOLLRDHUP, .data.u64 = (uint64_t)i };
	epoll_ctl(gs__guard.ep, EPOLL_CTL_MOD, c->afd, &ev);
	return g;
}

/* Late prefaces, and connections gRPC has closed (its descriptor gone or
 * another file now), lest their slots stay counted.  Lock held. */
static void gs__guard_sweep_locked(uint64_t now)
{
	for (int i = 0; i < gs__guard.nslots; i++) {
		struct gs__guard_conn *c = &gs__guard.conns[i];
		if (c->afd < 0)
			continue;
		if (!c->handed) {
			if (now > c->deadline_ms) {
				gs__guard.late++;
				gs__guard_free_slot(i);
			}
			continue;
		}
		struct stat st;
		int g = atomic_load(&c->gfd);
		if (fstat(g, &st) || st.st_dev != c->dev || st.st_ino != c->ino)
			gs__guard_free_slot(i);
	}
	if (now - gs__guard.logged_ms >= 1000 &&
	    (gs__guard.refused || gs__guard.evicted || gs__guard.late || gs__guard.cut_inflight ||
	     gs__guard.cut_cancels || gs__guard.bad)) {
		log_warn("gRPC guard: %lu connections refused, %lu idle ones closed for new ones, "
			 "%lu without an HTTP/2 preface in %d ms, %lu not HTTP/2; cut: %lu over %d "
			 "calls in flight, %lu over %d cancelled calls a second (%d connections)",
			 gs__guard.refused, gs__guard.evicted, gs__guard.late, gs__guard.lim.preface_ms,
			 gs__guard.bad, gs__guard.cut_inflight, gs__guard.lim.max_inflight,
			 gs__guard.cut_cancels, gs__guard.lim.max_cancels_per_s, gs__guard.nlive);
		gs__guard.refused = gs__guard.evicted = gs__guard.late = 0;
		gs__guard.cut_inflight = gs__guard.cut_cancels = gs__guard.bad = 0;
		gs__guard.logged_ms = now;
	}
}

#define GS_GUARD_WAKE UINT64_MAX
#define GS_GUARD_LISTEN (UINT64_MAX - GS_GUARD_MAX_LISTEN)

static void *gs__guard_main(void *arg)
{
	struct epoll_event evs[64];
	uint64_t swept = 0;
	(void)arg;
	for (;;) {
		int n = epoll_wait(gs__guard.ep, evs, 64, GS_GUARD_SWEEP_MS);
		for (int k = 0; k < n; k++) {
			uint64_t t = evs[k].data.u64;
			if (t == GS_GUARD_WAKE)
				return NULL;
			if (t >= GS_GUARD_LISTEN) {
				int l = gs__guard.lfd[t - GS_GUARD_LISTEN];
				for (int m = 0; m < 64; m++) {
					struct sockaddr_storage ss;
					socklen_t sl = sizeof(ss);
					int fd = accept4(l, (struct sockaddr *)&ss, &sl,
							 SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0) {
						/* EMFILE: the backlog waits; the sweep frees fds */
						break;
					}
					pthread_mutex_lock(&gs__guard.lock);
					gs__guard_admit_locked(fd, &ss);
					pthread_mutex_unlock(&gs__guard.lock);
				}
				continue;
			}
			int i = (int)t, g = -1;
			pthread_mutex_lock(&gs__guard.lock);
			struct gs__guard_conn *c = &gs__guard.conns[i];
			if (c->afd >= 0 && !c->handed)
				g = gs__guard_preface_locked(i);
			else if (c->afd >= 0 && (evs[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				gs__guard_free_slot(i);         /* over; gRPC closes its own */
			pthread_mutex_unlock(&gs__guard.lock);
			/* The connection is counted already; gRPC reads the
			 * preface and what follows itself.  gRPC closes g when
			 * it cannot take it (and logs why). */
			if (g >= 0)
				grpc_server_add_channel_from_fd(gs__guard.server, g, gs__guard.creds);
		}
		uint64_t now = gs__guard_now_ms();
		if (now - swept >= GS_GUARD_SWEEP_MS) {
			pthread_mutex_lock(&gs__guard.lock);
			gs__guard_sweep_locked(now);
			pthread_mutex_unlock(&gs__guard.lock);
			swept = now;
		}
	}
}

int gs_guard_run(grpc_server *server)
{
	struct rlimit rl;
	int n = gs__guard.lim.max_conns;

	gs__guard.server = server;
	/* Cut connections stay in their slot until gRPC lets go of them. */
	gs__guard.nslots = 2 * n + 16;
	gs__guard.conns = calloc((size_t)gs__guard.nslots, sizeof(*gs__guard.conns));
	gs__guard.nfd = getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > GS_GUARD_FD_MAX ?
			GS_GUARD_FD_MAX : (int)rl.rlim_cur;
	/* Pages of it are touched only as descriptors that high are used. */
	gs__guard.fd_slot = calloc((size_t)gs__guard.nfd, sizeof(*gs__guard.fd_slot));
	gs__guard.ep = epoll_create1(EPOLL_CLOEXEC);
	gs__guard.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	gs__guard.creds = grpc_insecure_server_credentials_create();
	if (!gs__guard.conns || !gs__guard.fd_slot || gs__guard.ep < 0 || gs__guard.wake < 0)
		goto fail;
	for (int i = 0; i < gs__guard.nslots; i++) {
		gs__guard.conns[i].afd = -1;
		atomic_init(&gs__guard.conns[i].gfd, -1);
		atomic_init(&gs__guard.conns[i].gen, 1);
		gs__guard.conns[i].next_free = i + 1 < gs__guard.nslots ? i + 1 : -1;
	}
	gs__guard.free_head = 0;
	gs__guard.nlive = 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = GS_GUARD_WAKE };
	if (epoll_ctl(gs__guard.ep, EPOLL_CTL_ADD, gs__guard.wake, &ev))
		goto fail;
	for (int i = 0; i < gs__guard.nlisten; i++) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = GS_GUARD_LISTEN + (uint64_t)i };
		if (epoll_ctl(gs__guard.ep, EPOLL_CTL_ADD, gs__guard.lfd[i], &ev))
			goto fail;
	}
	if (pthread_create(&gs__guard.th, NULL, gs__guard_main, NULL))
		goto fail;
	gs__guard.running = true;
	return 0;
fail:
	log_error("gRPC: cannot start the connection guard: %s", strerror(errno));
	gs_guard_stop();
	gs_guard_free();
	return FERRY_ENOMEM;
}

void gs_guard_stop(void)
{
	if (gs__guard.running) {
		uint64_t one = 1;
		if (write(gs__guard.wake, &one, sizeof(one)) < 0)
			log_warn("gRPC guard: cannot wake its thread: %s", strerror(errno));
		pthread_join(gs__guard.th, NULL);
		gs__guard.running = false;
	}
	for (int i = 0; i < gs__guard.nlisten; i++)
		close(gs__guard.lfd[i]);
	gs__guard.nlisten = 0;
	pthread_mutex_lock(&gs__guard.lock);
	/* gRPC's server shutdown ends the connections it has. */
	for (int i = 0; gs__guard.conns && i < gs__guard.nslots; i++)
		if (gs__guard.conns[i].afd >= 0)
			gs__guard_free_slot(i);
	pthread_mutex_unlock(&gs__guard.lock);
}

void gs_guard_free(void)
{
	if (gs__guard.ep >= 0)
		close(gs__guard.ep);
	if (gs__guard.wake >= 0)
		close(gs__guard.wake);
	gs__guard.ep = gs__guard.wake = -1;
	if (gs__guard.creds)
		grpc_server_credentials_release(gs__guard.creds);
	gs__guard.creds = NULL;
	free(gs__guard.conns);
	free(gs__guard.fd_slot);
	gs__guard.conns = NULL;
	gs__guard.fd_slot = NULL;
	gs__guard.nslots = gs__guard.nfd = 0;
}

/* ---------------------------------------------------------------------- */
/* Calls                                                                   */

uint64_t gs_guard_call_start(grpc_call *call)
{
	if (!gs__guard.fd_slot)
		return 0;
	char *peer = grpc_call_get_peer(call);
	int fd = -1;
	if (peer && !strncmp(peer, "fd:", 3)) {
		char *end;
		long v = strtol(peer + 3, &end, 10);
		if (end != peer + 3 && !*end && v >= 0 && v < gs__guard.nfd)
			fd = (int)v;
	}
	gpr_free(peer);
	int s = fd >= 0 ? atomic_load(&gs__guard.fd_slot[fd]) - 1 : -1;
	if (s < 0)
		return 0;
	struct gs__guard_conn *c = &gs__guard.conns[s];
	uint32_t gen = atomic_load(&c->gen);
	if (atomic_load(&c->gfd) != fd)
		return 0;
	atomic_store_explicit(&c->t_active_ms, gs__guard_now_ms(), memory_order_relaxed);
	/* A client past the MAX_CONCURRENT_STREAMS ferryd advertised, which
	 * gRPC 1.51 does not hold it to (stream flood). */
	if (atomic_fetch_add(&c->inflight, 1) + 1 > gs__guard.lim.max_inflight)
		gs__guard_cut(s, gen, true);
	return (uint64_t)gen << 32 | (uint64_t)(s + 1);
}

void gs_guard_call_end(uint64_t h, bool cancelled)
{
	if (!h || !gs__guard.conns)
		return;
	int s = (int)(h & 0xffffffffu) - 1;
	uint32_t gen = (uint32_t)(h >> 32);
	struct gs__guard_conn *c = &gs__guard.conns[s];
	if (atomic_load(&c->gen) != gen)
		return;                 /* the connection is gone */
	atomic_fetch_sub(&c->inflight, 1);
	uint64_t now = gs__guard_now_ms();
	atomic_store_explicit(&c->t_active_ms, now, memory_order_relaxed);
	if (!cancelled)
		return;
	/* Cancelled calls in a sliding second: this second's count plus the
	 * share of the previous second's still inside the window. */
	uint64_t sec = now / 1000, old = atomic_load(&c->cancels), nw;
	uint32_t prev, cur;
	do {
		uint64_t osec = old >> 32;
		prev = (uint32_t)(old >> 16) & 0xffff;
		cur = (uint32_t)old & 0xffff;
		if (sec == osec + 1) {
			prev = cur;
			cur = 0;
		} else if (sec != osec) {
			prev = cur = 0;
		}
		if (cur < 0xffff)
			cur++;
		nw = sec << 32 | (uint64_t)prev << 16 | cur;
	} while (!atomic_compare_exchange_weak(&c->cancels, &old, nw));
	uint64_t rate = cur + (uint64_t)prev * (1000 - now % 1000) / 1000;
	if (rate > (uint64_t)gs__guard.lim.max_cancels_per_s)
		gs__guard_cut(s, gen, false);
}
