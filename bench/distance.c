/* SPDX-License-Identifier: MIT */
/*
 * distance.c - ferry-bench-distance: does an asynchronous client hide the
 * distance to the broker?  Run by bench/distance.sh across two network
 * namespaces; it has two roles.
 *
 *   ferry-bench-distance run -u grpc://HOST:PORT [-m MODEL] [--work-us W]
 *                        [--seconds S] [--window K] [--mode sync|async|cpu]
 *                        [--announce]
 *   ferry-bench-distance proxy --listen IP:PORT --to IP:PORT --delay-us D
 *
 * run: a synthetic event loop, W microseconds of deterministic CPU work
 * (a xorshift chain calibrated first, as ferry-bench-saturate's) plus one
 * inference of MODEL (default identity, FP32 [1, 256] from its metadata)
 * per event.  sync: work, ferry_infer(), next event.  async: work for
 * event k, ferry_infer_async() of event k, and only when K requests are in
 * flight wait for the oldest (ferry_request_wait), so event k's round trip
 * overlaps the work of events k+1 .. k+K-1.  cpu: the work alone (the
 * ideal: what an event costs with no inference at all).  Each identity
 * output is checked against its input.  Prints one line:
 *   mode=M work_us=W window=K events=N seconds=S events_per_s=E
 *   mean_infer_us=L errors=0
 * where mean_infer_us is the mean submit-to-completion time seen by the
 * client (in async mode it includes the time a completed request waited
 * for the client to come back to it).  --announce: after its warm-up it
 * says "ferry-bench-distance: running" on stderr.
 *
 * proxy: a TCP relay that holds every chunk it reads for D/2 microseconds
 * in each direction before writing it on, so a request-response round
 * trip through it gains D.  It stands in for `tc netem` where the kernel
 * has no sch_netem (bench/distance.sh tries netem first).  Two threads per
 * direction per connection (a reader stamping chunks, a writer sleeping
 * until each chunk's release time), TCP_NODELAY on both legs.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"

#define SEC 1000000000LL
#define MAXWINDOW 256

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ferry-bench-distance: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* run: the event loop                                                  */

static volatile uint64_t sink;
static double iters_per_us;

struct slot {
	ferry_request *r;
	float *in;		/* the input, in the request's buffer */
	size_t n;		/* its elements */
	int64_t t_submit;
	int busy;
};

static struct slot make_slot(ferry_model *m)
{
	struct slot s = { 0 };
	const char *name;
	const int64_t *dims;
	ferry_dtype dt;
	int nd, k = 0;
	int64_t d[FERRY_MAX_DIMS];

	if (ferry_request_new(m, &s.r))
		die("request: %s", ferry_last_error());
	if (ferry_model_ninputs(m) != 1)
		die("model %s: one FP32 input expected", ferry_model_name(m));
	ferry_model_input(m, 0, &name, &dt, &dims, &nd);
	if (dt != FERRY_TYPE_FP32)
		die("model %s: input %s is not FP32", ferry_model_name(m), name);
	if (ferry_model_max_batch_size(m) > 0)
		d[k++] = 1;
	for (int j = 0; j < nd && k < FERRY_MAX_DIMS; j++)
		d[k++] = dims[j] < 0 ? 256 : dims[j];
	s.n = 1;
	for (int j = 0; j < k; j++)
		s.n *= (size_t)d[j];
	if (ferry_request_input(s.r, name, dt, d, k, (void **)&s.in))
		die("input %s: %s", name, ferry_last_error());
	return s;
}

/* Fill the input from the event's hash: the work feeds the inference. */
static void fill(struct slot *s, uint64_t h)
{
	for (size_t i = 0; i < s->n; i++)
		s->in[i] = (float)((h >> (i & 31)) & 0xff);
}

/* 0 when output 0 equals the input (identity), 1 otherwise. */
static int check(struct slot *s)
{
	const void *out;
	size_t bytes;

	if (ferry_request_status(s->r))
		return 1;
	if (ferry_request_output(s->r, "OUTPUT0", NULL, NULL, NULL, &out, &bytes))
		return 1;
	return bytes != s->n * sizeof(float) || memcmp(out, s->in, bytes) != 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "model", required_argument, NULL, 'm' },
		{ "work-us", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 's' },
		{ "window", required_argument, NULL, 'k' },
		{ "mode", required_argument, NULL, 'M' },
		{ "announce", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *model = "identity", *mode = "sync";
	double work_us = 500, seconds = 5;
	int window = 32, ch, sync, cpu_only, announce = 0;
	uint64_t events = 0, errors = 0, iters, h = 88172645463325252ull, nlat = 0;
	double lat_sum = 0;
	int64_t t0, t_end;
	ferry_client *c = NULL;
	ferry_model *m = NULL;
	struct slot slots[MAXWINDOW];

	while ((ch = getopt_long(argc, argv, "u:m:", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 'm': model = optarg; break;
		case 'w': work_us = atof(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'k': window = atoi(optarg); break;
		case 'M': mode = optarg; break;
		case 'A': announce = 1; break;
		default: return 2;
		}
	}
	sync = !strcmp(mode, "sync");
	cpu_only = !strcmp(mode, "cpu");
	if (!sync && !cpu_only && strcmp(mode, "async"))
		die("--mode sync|async|cpu");
	if (sync || cpu_only)
		window = 1;
	if (window < 1 || window > MAXWINDOW || work_us < 0 || seconds <= 0)
		die("bad --window, --work-us or --seconds");
	if (!cpu_only && !url)
		die("-u grpc://HOST:PORT is required");
	iters_per_us = bu_work_calibrate();
	iters = (uint64_t)(work_us * iters_per_us + 0.5);
	if (!cpu_only) {
		ferry_options o = { .struct_size = sizeof(o), .queue_depth = MAXWINDOW,
				    .client_name = "ferry-bench-distance" };

		if (ferry_connect(&c, url, &o))
			die("connect %s: %s", url, ferry_last_error());
		if (ferry_model_get(c, model, FERRY_LATEST, &m))
			die("model %s: %s", model, ferry_last_error());
		for (int i = 0; i < window; i++)
			slots[i] = make_slot(m);
		/* warm-up: the channel, the server's first request */
		for (int i = 0; i < 20; i++) {
			fill(&slots[0], (uint64_t)i);
			if (ferry_infer(c, slots[0].r, 10 * SEC))
				die("warm-up: %s", ferry_last_error());
		}
		/* bench/pool.sh kills a broker only once every client runs */
		if (announce)
			fprintf(stderr, "ferry-bench-distance: running\n");
	}

	t0 = now_ns();
	t_end = t0 + (int64_t)(seconds * 1e9);
	for (uint64_t k = 0;; k++) {
		struct slot *s = &slots[k % (uint64_t)window];
		int64_t t;

		/* the slot to reuse holds event k - window: collect it first */
		if (!cpu_only && s->busy) {
			if (ferry_request_wait(s->r, 30 * SEC) == FERRY_ETIMEDOUT)
				die("wait: %s", ferry_last_error());
			lat_sum += (double)(now_ns() - s->t_submit);
			nlat++;
			errors += (uint64_t)check(s);
			s->busy = 0;
			events++;
		}
		if ((t = now_ns()) >= t_end)
			break;
		h = bu_work(iters, h + k);
		if (cpu_only) {
			events++;
			sink ^= h;
			continue;
		}
		ferry_request_reset(s->r);
		fill(s, h);
		s->t_submit = now_ns();
		if (sync) {
			if (ferry_infer(c, s->r, 30 * SEC))
				errors++;
			else
				errors += (uint64_t)check(s);
			lat_sum += (double)(now_ns() - s->t_submit);
			nlat++;
			events++;
		} else {
			if (ferry_infer_async(c, s->r, NULL, NULL))
				die("submit: %s", ferry_last_error());
			s->busy = 1;
		}
	}
	/* events still in flight at the end are drained, not counted */
	for (int i = 0; i < window && !cpu_only; i++)
		if (slots[i].busy)
			ferry_request_wait(slots[i].r, 30 * SEC);
	{
		double secs = (double)(now_ns() - t0) / 1e9;

		printf("mode=%s work_us=%.0f window=%d events=%llu seconds=%.3f events_per_s=%.1f "
		       "mean_infer_us=%.1f errors=%llu\n", mode, work_us, window,
		       (unsigned long long)events, secs, (double)events / secs,
		       nlat ? lat_sum / (double)nlat / 1e3 : 0.0, (unsigned long long)errors);
	}
	for (int i = 0; i < window && !cpu_only; i++)
		ferry_request_free(slots[i].r);
	if (c)
		ferry_close(c);
	return errors ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* proxy: a TCP relay with a fixed delay per direction                  */

struct chunk {
	struct chunk *next;
	int64_t release;	/* CLOCK_MONOTONIC ns */
	size_t len;		/* 0: end of stream */
	char data[];
};

/* One direction of one connection: the reader appends, the writer pops.
 * Guarded by mu. */
struct pipe_dir {
	int from, to;
	int64_t delay_ns;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk *head, *tail;
};

static void *dir_reader(void *arg)
{
	struct pipe_dir *p = arg;
	char buf[65536];

	for (;;) {
		ssize_t n = read(p->from, buf, sizeof(buf));
		struct chunk *c;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			n = 0;
		if (!(c = malloc(sizeof(*c) + (size_t)n)))
			abort();
		c->next = NULL;
		c->len = (size_t)n;
		c->release = now_ns() + p->delay_ns;
		memcpy(c->data, buf, (size_t)n);
		pthread_mutex_lock(&p->mu);
		if (p->tail)
			p->tail->next = c;
		else
			p->head = c;
		p->tail = c;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (!n)
			return NULL;
	}
}

static void *dir_writer(void *arg)
{
	struct pipe_dir *p = arg;

	for (;;) {
		struct chunk *c;
		struct timespec ts;

		pthread_mutex_lock(&p->mu);
		while (!p->head)
			pthread_cond_wait(&p->cv, &p->mu);
		c = p->head;
		p->head = c->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		ts.tv_sec = c->release / SEC;
		ts.tv_nsec = c->release % SEC;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (!c->len) {
			shutdown(p->to, SHUT_WR);
			free(c);
			return NULL;
		}
		for (size_t off = 0; off < c->len;) {
			ssize_t n = write(p->to, c->data + off, c->len - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* the peer is gone: drop the rest, keep reading
				 * so the other side sees its end */
				break;
			}
			off += (size_t)n;
		}
		free(c);
	}
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void start_dir(int from, int to, int64_t delay_ns)
{
	struct pipe_dir *p = calloc(1, sizeof(*p));
	pthread_t t;

	if (!p)
		abort();
	p->from = from;
	p->to = to;
	p->delay_ns = delay_ns;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&t, NULL, dir_reader, p) || pthread_detach(t) ||
	    pthread_create(&t, NULL, dir_writer, p) || pthread_detach(t))
		die("pthread_create");
	/* p lives as long as the process: a benchmark's few connections */
}

static int cmd_proxy(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "to", required_argument, NULL, 't' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_in la, ta;
	const char *listen_s = NULL, *to_s = NULL;
	double delay_us = 0;
	int ch, ls, one = 1;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'l': listen_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'd': delay_us = atof(optarg); break;
		default: return 2;
		}
	}
	if (!listen_s || !to_s || parse_addr(listen_s, &la) || parse_addr(to_s, &ta) ||
	    delay_us < 0)
		die("proxy --listen IP:PORT --to IP:PORT --delay-us D");
	signal(SIGPIPE, SIG_IGN);
	if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket: %s", strerror(errno));
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&la, sizeof(la)) || listen(ls, 64))
		die("listen %s: %s", listen_s, strerror(errno));
	fprintf(stderr, "ferry-bench-distance proxy: %s -> %s, %.0f us each way\n", listen_s,
		to_s, delay_us / 2);
	for (;;) {
		int a = accept(ls, NULL, NULL), b;

		if (a < 0) {
			if (errno == EINTR)
				continue;
			die("accept: %s", strerror(errno));
		}
		if ((b = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(b, (struct sockaddr *)&ta, sizeof(ta))) {
			fprintf(stderr, "proxy: connect %s: %s\n", to_s, strerror(errno));
			close(a);
			if (b >= 0)
				close(b);
			continue;
		}
		setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* half the round trip each way; the fds stay open for the
		 * process's life (a benchmark's few connections) */
		start_dir(a, b, (int64_t)(delay_us * 500.0));
		start_dir(b, a, (int64_t)(delay_us * 500.0));
	}
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "proxy"))
		return cmd_proxy(argc - 1, argv + 1);
	fprintf(stderr,
		"usage: ferry-bench-distance run -u grpc://HOST:PORT [-m MODEL] [--work-us W]\n"
		"                            [--seconds S] [--window K] [--mode sync|async|cpu]\n"
		"       ferry-bench-distance proxy --listen IP:PORT --to IP:PORT --delay-us D\n"
		"  (bench/distance.sh runs both across two network namespaces)\n");
	return 2;
}
