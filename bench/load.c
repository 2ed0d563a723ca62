/* SPDX-License-Identifier: MIT */
/*
 * load.c - ferry-bench-load: what Triton's perf_analyzer does, for ferry's
 * shared-memory transport, for gRPC (plain KServe v2 through libferry's
 * remote transport), for gRPC with system shared memory (raw KServe v2
 * calls whose tensors live in POSIX shm regions the client registers,
 * bench/grpc_util.c) and for HTTP/REST (KServe v2 with binary tensor data,
 * bench/http_util.c: one keep-alive connection and one thread per request
 * in flight, as HTTP/1.1 allows, in --sync and --async alike); the gRPC
 * and HTTP transports can be pointed at any KServe v2 server, grpc-shm at
 * any that has the system shared-memory extension.
 *
 *   ferry-bench-load [-u ADDR]... [-m MODEL] [-b BATCH]
 *                    [--concurrency-range START:END:STEP]
 *                    [--request-rate-range START:END:STEP]
 *                    [--request-distribution constant|poisson]
 *                    [--sync | --async] [--processes N]
 *                    [-p WINDOW_MS] [-s STABILITY_%] [-r MAX_WINDOWS]
 *                    [-f FILE.csv] [--ferryd PATH] [--models DIR]
 *                    [--backend-dir DIR] [--transport LIST]
 *                    [--output-shm-size BYTES]
 *
 * Without -u it starts its own ferryd on a temporary repository holding
 * the MLP of tests/onnx/gen_models.py (one KIND_CPU instance, dynamic
 * batching with no queue delay; --allow-client-shm) and measures the
 * transports --transport lists (default shm,grpc,grpc-shm; http also):
 * the socket, grpc://127.0.0.1:PORT, grpc-shm://127.0.0.1:PORT and
 * http://127.0.0.1:PORT.  -u ADDR (repeatable) measures the given
 * addresses instead (a socket path, "grpc://host:port",
 * "grpc-shm://host:port" or "http://host:port"); -m names their model
 * (default mlp).  Inputs are built from the model's metadata: random
 * values, batch dimension -b.  grpc-shm gives each request slot its own
 * place in one input and one output region per client process; an output
 * whose size the metadata leaves open gets --output-shm-size bytes (100
 * KiB, as perf_analyzer's default).
 *
 * Load.  --concurrency-range (default 1:4:1, as perf_analyzer's:
 * additive step): C requests in flight, split over --processes client
 * processes (default 1).  --sync: one thread per request in flight, each
 * calling ferry_infer() in a loop; --async (default): one thread per
 * process keeping its share in flight with ferry_infer_async() and
 * ferry_poll().  --request-rate-range: requests per second sent on a
 * schedule (constant intervals or Poisson arrivals) whatever the
 * completions do, by a sender thread per process that sleeps until each
 * arrival and a reaper thread that completes (up to 1024 in flight per
 * process; an arrival that finds every slot busy is dropped and counted).
 *
 * Measurement.  Windows of -p ms (500); a level is stable when the last
 * three windows' throughputs and mean latencies are each within -s
 * percent (10) of their mean, as perf_analyzer's rule; at most -r
 * windows (10), else it is reported as unstable.  The reported figures
 * are those of the last three windows together: throughput (inferences
 * per second), p50 / p90 / p95 / p99 and mean client latency, and the
 * server-side breakdown per request (queue, compute input, compute
 * infer, compute output) from deltas of ferry_model_statistics.
 *
 * The parent never links a session itself: the clients and a statistics
 * reader are child processes (gRPC does not survive fork()).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "bench/grpc_util.h"
#include "bench/http_util.h"

#define SEC 1000000000LL
#define MAXSLOTS 512		/* client threads (sync) or processes (async) */
#define RING (1u << 17)		/* latencies kept per slot between two reads */
#define MAXINFLIGHT 1024
#define GU_MAXT 32		/* inputs or outputs of a grpc-shm request */

enum { T_SHM, T_GRPC, T_GRPC_SHM, T_HTTP };
static const char *const tnames[] = { "shm", "grpc", "grpc-shm", "http" };

struct ring {
	_Atomic uint64_t n;	/* completions written */
	_Atomic uint64_t errors;
	_Atomic uint64_t dropped;	/* rate mode: arrivals with every slot busy */
	uint64_t lat[RING];	/* ns, at n % RING */
};

struct ctl {
	atomic_int ready, stop, go;
	char err[256];
	/* the statistics reader's answer */
	uint64_t success, inferences, queue_ns, cin_ns, cinf_ns, cout_ns, execs;
};

static struct {
	const char *urls[8];
	int nurls;
	const char *model, *csv, *ferryd, *models, *backend_dir, *dist, *transports;
	size_t out_shm;
	int batch, processes, sync, window_ms, max_windows, rate_mode;
	double stability;
	double start, end, step;
} opt = {
	.model = "mlp", .batch = 1, .processes = 1, .window_ms = 500, .max_windows = 10,
	.stability = 10, .start = 1, .end = 4, .step = 1, .dist = "constant",
	.transports = "shm,grpc,grpc-shm", .out_shm = 102400,
};

static struct ctl *ctl;
static struct ring *rings;
static char tmpdir[256];

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ferry-bench-load: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void record(struct ring *r, uint64_t ns)
{
	uint64_t n = atomic_load_explicit(&r->n, memory_order_relaxed);

	r->lat[n % RING] = ns;
	atomic_store_explicit(&r->n, n + 1, memory_order_release);
}

/* ------------------------------------------------------------------ */
/* clients (child processes)                                            */

/* What one client process talks to: a libferry session (shared memory or
 * gRPC), or raw gRPC calls whose tensors live in system shared memory
 * regions this process registers with the server. */
struct conn {
	int kind;
	ferry_client *c;		/* T_SHM, T_GRPC */
	ferry_model *m;
	struct gu_chan *g;		/* T_GRPC_SHM */
	struct gu_region rin, rout;
};

/* One request slot: a request in flight at a time. */
struct aslot {
	ferry_request *r;		/* T_SHM, T_GRPC */
	struct gu_infer *q;		/* T_GRPC_SHM */
	struct hu_conn *h;		/* T_HTTP: its own connection */
	uint8_t *body;			/* T_HTTP: the request, JSON header and data */
	size_t blen;
	char hdr[80];			/* T_HTTP: Inference-Header-Content-Length */
	char path[300];
	uint64_t t0;
	/* Set by the thread that submits, cleared by the one that completes
	 * (the reaper in rate mode): release / acquire, so the submitter sees
	 * the request and the latency record as the completer left them. */
	atomic_int busy;
	struct ring *ring;
};

static atomic_int inflight;

static ferry_client *client_connect(const char *addr, ferry_model **m)
{
	ferry_options o = { .struct_size = sizeof(o), .client_name = "ferry-bench-load",
			    .queue_depth = MAXINFLIGHT, .wait = FERRY_WAIT_DEFAULT };
	ferry_client *c;

	if (ferry_connect(&c, addr, &o))
		die("connect %s: %s", addr, ferry_last_error());
	if (ferry_model_get(c, opt.model, FERRY_LATEST, m))
		die("model %s: %s", opt.model, ferry_last_error());
	return c;
}

/* Fill n elements of dtype dt at p with reproducible values. */
static void fill(void *p, ferry_dtype dt, size_t n, size_t es, unsigned *seed)
{
	if (dt == FERRY_TYPE_FP32) {
		float *f = p;

		for (size_t j = 0; j < n; j++)
			f[j] = (float)((rand_r(seed) % 2000) - 1000) / 1000.0f;
	} else {
		unsigned char *b = p;

		for (size_t j = 0; j < n * es; j++)
			b[j] = (unsigned char)(rand_r(seed) & 0x3f);
	}
}

/* The shape of tensor i (input, or output when out) with the batch
 * dimension -b; *elems its element count, -1 when a dimension is variable
 * (inputs: variable dimensions become 1). */
static int shape_of(ferry_model *m, int i, int out, int64_t *d, int64_t *elems)
{
	const int64_t *dims;
	int nd, k = 0;
	int64_t n = 1;

	if (out)
		ferry_model_output(m, i, NULL, NULL, &dims, &nd);
	else
		ferry_model_input(m, i, NULL, NULL, &dims, &nd);
	if (ferry_model_max_batch_size(m) > 0) {
		d[k++] = opt.batch;
		n = opt.batch;
	}
	for (int j = 0; j < nd && k < FERRY_MAX_DIMS; j++) {
		d[k] = dims[j] < 0 && !out ? 1 : dims[j];
		if (d[k] < 0)
			n = -1;
		else if (n >= 0)
			n *= d[k];
		k++;
	}
	*elems = n;
	return k;
}

static ferry_request *make_request(ferry_model *m, unsigned seed)
{
	ferry_request *r;

	if (ferry_request_new(m, &r))
		die("request: %s", ferry_last_error());
	for (int i = 0; i < ferry_model_ninputs(m); i++) {
		const char *name;
		ferry_dtype dt;
		int64_t d[FERRY_MAX_DIMS], n;
		int k;
		size_t es;
		void *p;

		ferry_model_input(m, i, &name, &dt, NULL, NULL);
		k = shape_of(m, i, 0, d, &n);
		if (!(es = ferry_dtype_size(dt)))
			die("input %s: BYTES inputs are not generated", name);
		if (ferry_request_input(r, name, dt, d, k, &p))
			die("input %s: %s", name, ferry_last_error());
		fill(p, dt, (size_t)n, es, &seed);
	}
	return r;
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

/* "http://host:port" -> host, port. */
static void http_addr(const char *addr, char *host, size_t hlen, int *port)
{
	const char *h = addr + strlen("http://"), *c = strrchr(h, ':');
	if (!c)
		die("%s: no port", addr);
	snprintf(host, hlen, "%.*s", (int)(c - h), h);
	*port = atoi(c + 1);
}

/*
 * HTTP/REST: the model's metadata over HTTP, then k slots, each with its
 * own keep-alive connection (HTTP/1.1 has one request in flight per
 * connection) and its own request, every input in binary form.
 */
static void http_open(const char *addr, struct aslot *s, int k, struct ring *ring, int seed0)
{
	enum { MAXT = 32 };
	struct hu_tensor in[MAXT], out[MAXT];
	int nin, nout, port;
	char host[128];

	http_addr(addr, host, sizeof(host), &port);
	struct hu_conn *mc = hu_open(host, port);
	if (!mc || hu_model_metadata(mc, opt.model, in, &nin, out, &nout, MAXT))
		die("http: %s", hu_error());
	hu_close(mc);
	for (int i = 0; i < k; i++) {
		unsigned seed = (unsigned)(seed0 + i + 1);
		const char *names[MAXT], *dts[MAXT];
		const int64_t *shp[MAXT];
		int nd[MAXT];
		void *data[MAXT];
		size_t bytes[MAXT];
		int64_t dims[MAXT][8];

		for (int j = 0; j < nin; j++) {
			ferry_dtype dt = FERRY_TYPE_INVALID;
			int64_t n = 1;

			for (int t = 1; t < FERRY_TYPE__COUNT; t++)
				if (ferry_dtype_name((ferry_dtype)t) &&
				    !strcmp(ferry_dtype_name((ferry_dtype)t), in[j].datatype))
					dt = (ferry_dtype)t;
			if (!ferry_dtype_size(dt))
				die("http: input %s: %s inputs are not generated", in[j].name,
				    in[j].datatype);
			for (int d = 0; d < in[j].ndims; d++) {
				/* the batch dimension: -b; another variable one: 1 */
				dims[j][d] = in[j].shape[d] >= 0 ? in[j].shape[d] : d == 0 ? opt.batch : 1;
				n *= dims[j][d];
			}
			names[j] = in[j].name;
			dts[j] = in[j].datatype;
			shp[j] = dims[j];
			nd[j] = in[j].ndims;
			bytes[j] = (size_t)n * ferry_dtype_size(dt);
			if (!(data[j] = malloc(bytes[j] ? bytes[j] : 1)))
				die("out of memory");
			fill(data[j], dt, (size_t)n, ferry_dtype_size(dt), &seed);
		}
		size_t jlen;
		s[i] = (struct aslot){ .ring = ring };
		atomic_init(&s[i].busy, 0);
		if (hu_infer_body(nin, names, dts, shp, nd, (const void *const *)data, bytes,
				  &s[i].body, &s[i].blen, &jlen))
			die("http: %s", hu_error());
		for (int j = 0; j < nin; j++)
			free(data[j]);
		snprintf(s[i].hdr, sizeof(s[i].hdr), "Inference-Header-Content-Length: %zu\r\n",
			 jlen);
		snprintf(s[i].path, sizeof(s[i].path), "/v2/models/%s/infer", opt.model);
		if (!(s[i].h = hu_open(host, port)))
			die("http: %s", hu_error());
	}
	(void)out;
	(void)nout;
}

/*
 * Connect and prepare k request slots.  grpc-shm: the model's metadata
 * comes over plain KServe v2 (libferry's gRPC transport, closed again);
 * each slot gets its own place in one input region and one output region
 * (an output of variable size gets --output-shm-size bytes), and its
 * ModelInfer request names them by region, offset and size.
 */
static void conn_open(struct conn *x, int kind, const char *addr, struct aslot *s, int k,
		      struct ring *ring, int seed0)
{
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	if (kind == T_HTTP) {
		http_open(addr, s, k, ring, seed0);
		return;
	}
	if (kind != T_GRPC_SHM) {
		x->c = client_connect(addr, &x->m);
		for (int i = 0; i < k; i++) {
			s[i] = (struct aslot){ .r = make_request(x->m, (unsigned)(seed0 + i + 1)),
					       .ring = ring };
			atomic_init(&s[i].busy, 0);
		}
		return;
	}

	char gaddr[300], rname[2][64];
	ferry_model *m;
	ferry_client *c;
	int nin, nout;
	size_t ioff[GU_MAXT], ooff[GU_MAXT], ib[GU_MAXT], ob[GU_MAXT], istride = 0, ostride = 0;
	int64_t shp[GU_MAXT][FERRY_MAX_DIMS];
	int nd[GU_MAXT];
	struct gu_tensor ti[GU_MAXT], to[GU_MAXT];

	snprintf(gaddr, sizeof(gaddr), "grpc://%s", addr + strlen("grpc-shm://"));
	c = client_connect(gaddr, &m);
	nin = ferry_model_ninputs(m);
	nout = ferry_model_noutputs(m);
	if (nin > GU_MAXT || nout > GU_MAXT)
		die("model %s: more than %d inputs or outputs", opt.model, GU_MAXT);
	for (int i = 0; i < nin; i++) {
		ferry_dtype dt;
		int64_t n;

		ferry_model_input(m, i, &ti[i].name, &dt, NULL, NULL);
		nd[i] = shape_of(m, i, 0, shp[i], &n);
		if (!ferry_dtype_size(dt))
			die("input %s: BYTES inputs are not generated", ti[i].name);
		ti[i].name = strdup(ti[i].name);
		ti[i].datatype = ferry_dtype_name(dt);
		ti[i].shape = shp[i];
		ti[i].ndims = nd[i];
		ib[i] = (size_t)n * ferry_dtype_size(dt);
		ioff[i] = istride;
		istride += ALIGN64(ib[i]);
	}
	for (int o = 0; o < nout; o++) {
		ferry_dtype dt;
		int64_t d[FERRY_MAX_DIMS], n;

		ferry_model_output(m, o, &to[o].name, &dt, NULL, NULL);
		shape_of(m, o, 1, d, &n);
		to[o].name = strdup(to[o].name);
		ob[o] = n >= 0 && ferry_dtype_size(dt) ? (size_t)n * ferry_dtype_size(dt)
						       : opt.out_shm;
		ooff[o] = ostride;
		ostride += ALIGN64(ob[o]);
	}
	ferry_close(c);

	if (!(x->g = gu_open(addr + strlen("grpc-shm://"))))
		die("%s", gu_error());
	snprintf(rname[0], sizeof(rname[0]), "ferry_load_in_%d", (int)getpid());
	snprintf(rname[1], sizeof(rname[1]), "ferry_load_out_%d", (int)getpid());
	if (gu_region_create(&x->rin, rname[0], istride * (size_t)k) ||
	    gu_region_create(&x->rout, rname[1], (ostride ? ostride : 64) * (size_t)k) ||
	    gu_region_register(x->g, &x->rin) || gu_region_register(x->g, &x->rout))
		die("grpc-shm: %s", gu_error());
	for (int i = 0; i < k; i++) {
		unsigned seed = (unsigned)(seed0 + i + 1);

		for (int j = 0; j < nin; j++) {
			ferry_dtype dt = FERRY_TYPE_FP32;

			for (int t = 1; t < FERRY_TYPE__COUNT; t++)
				if (!strcmp(ferry_dtype_name((ferry_dtype)t), ti[j].datatype))
					dt = (ferry_dtype)t;
			ti[j].region = rname[0];
			ti[j].offset = (uint64_t)i * istride + ioff[j];
			ti[j].bytes = ib[j];
			fill((char *)x->rin.base + ti[j].offset, dt, ib[j] / ferry_dtype_size(dt),
			     ferry_dtype_size(dt), &seed);
		}
		for (int o = 0; o < nout; o++) {
			to[o].region = rname[1];
			to[o].offset = (uint64_t)i * ostride + ooff[o];
			to[o].bytes = ob[o];
		}
		s[i] = (struct aslot){ .q = gu_infer_new(opt.model, ti, nin, to, nout),
				       .ring = ring };
		atomic_init(&s[i].busy, 0);
		if (!s[i].q)
			die("grpc-shm: %s", gu_error());
	}
	for (int i = 0; i < nin; i++)
		free((void *)ti[i].name);
	for (int o = 0; o < nout; o++)
		free((void *)to[o].name);
}

static void conn_close(struct conn *x, struct aslot *s, int k)
{
	for (int i = 0; i < k; i++) {
		if (s[i].r)
			ferry_request_free(s[i].r);
		gu_infer_free(s[i].q);
		hu_close(s[i].h);
		free(s[i].body);
	}
	if (x->c)
		ferry_close(x->c);
	if (x->g) {
		gu_region_unregister(x->g, x->rin.name);
		gu_region_unregister(x->g, x->rout.name);
		gu_close(x->g);
		gu_region_destroy(&x->rin);
		gu_region_destroy(&x->rout);
	}
}

static void wait_go(void)
{
	atomic_fetch_add(&ctl->ready, 1);
	while (!atomic_load(&ctl->go))
		usleep(200);
}

/* A request finished: its latency, and the slot free again. */
static void complete(struct aslot *s, int status)
{
	if (status) {
		/* the first failure of each client process says why */
		static atomic_int said;

		atomic_fetch_add(&s->ring->errors, 1);
		if (!atomic_exchange(&said, 1))
			fprintf(stderr, "ferry-bench-load: a request failed: %s\n",
				s->q ? gu_error() : ferry_strerror(status));
	} else {
		record(s->ring, now_ns() - s->t0);
	}
	atomic_fetch_sub_explicit(&inflight, 1, memory_order_relaxed);
	atomic_store_explicit(&s->busy, 0, memory_order_release);
}

static void on_done(ferry_request *r, int status, void *arg)
{
	(void)r;
	complete(arg, status);
}

static void submit(struct conn *x, struct aslot *s)
{
	int rc;

	atomic_store_explicit(&s->busy, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&inflight, 1, memory_order_relaxed);
	s->t0 = now_ns();
	if (x->kind == T_GRPC_SHM) {
		rc = gu_infer_start(x->g, s->q, s);
	} else {
		ferry_request_reset(s->r);
		rc = ferry_infer_async(x->c, s->r, on_done, s);
	}
	if (rc) {
		atomic_fetch_sub_explicit(&inflight, 1, memory_order_relaxed);
		atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
		atomic_fetch_add(&s->ring->errors, 1);
	}
}

/* Complete what has finished, waiting up to timeout_ns for the first. */
static void conn_poll(struct conn *x, int64_t timeout_ns)
{
	if (x->kind == T_GRPC_SHM) {
		void *tag;
		int st;

		for (int n = 0; n < 64 && gu_next(x->g, n ? 0 : timeout_ns, &tag, &st) == 1; n++)
			complete(tag, st);
		return;
	}
	int rc = ferry_poll(x->c, 1, timeout_ns);

	/* a poll that timed out is no failure */
	if (rc < 0 && rc != FERRY_ETIMEDOUT)
		die("poll: %s", ferry_last_error());
}

struct sync_arg {
	struct conn *x;
	struct aslot *s;
};

static void *sync_thread(void *p)
{
	struct sync_arg *a = p;
	struct aslot *s = a->s;

	wait_go();
	while (!atomic_load_explicit(&ctl->stop, memory_order_relaxed)) {
		uint64_t t0 = now_ns();
		int rc;

		if (a->x->kind == T_GRPC_SHM) {
			rc = gu_infer(a->x->g, s->q);
		} else if (a->x->kind == T_HTTP) {
			struct hu_resp r;
			rc = hu_request(s->h, "POST", s->path, s->hdr, s->body, s->blen, &r);
			if (!rc && r.status != 200) {
				static atomic_int said;
				if (!atomic_exchange(&said, 1))
					fprintf(stderr, "ferry-bench-load: HTTP status %d: %.*s\n",
						r.status, (int)(r.len < 300 ? r.len : 300),
						(const char *)r.body);
				rc = -1;
			}
		} else {
			rc = ferry_infer(a->x->c, s->r, 30 * SEC);
			ferry_request_reset(s->r);
		}
		if (rc)
			atomic_fetch_add(&s->ring->errors, 1);
		else
			record(s->ring, now_ns() - t0);
	}
	return NULL;
}

/* one process's share of a synchronous concurrency level: a thread (and
 * a ring) per request in flight */
static void run_sync(int kind, const char *addr, int first_slot, int n)
{
	pthread_t th[MAXSLOTS];
	struct sync_arg a[MAXSLOTS];
	static struct aslot s[MAXSLOTS];
	struct conn x;

	conn_open(&x, kind, addr, s, n, NULL, first_slot * 1000);
	for (int i = 0; i < n; i++) {
		s[i].ring = &rings[first_slot + i];
		a[i] = (struct sync_arg){ &x, &s[i] };
		if (pthread_create(&th[i], NULL, sync_thread, &a[i]))
			die("pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	conn_close(&x, s, n);
}

/* Pick the next arrival after t: constant or exponential gaps. */
static uint64_t next_arrival(uint64_t t, double rate, unsigned *seed)
{
	double gap = 1.0 / rate;

	if (!strcmp(opt.dist, "poisson"))
		gap = -log(((double)rand_r(seed) + 1.0) / ((double)RAND_MAX + 2.0)) / rate;
	return t + (uint64_t)(gap * 1e9);
}

struct reaper_arg {
	struct conn *x;
	atomic_int done;
};

/* Rate mode's second thread: completes requests as they finish, so the
 * sender never waits on a completion queue. */
static void *reaper(void *p)
{
	struct reaper_arg *a = p;
	uint64_t give_up = 0;

	for (;;) {
		if (atomic_load_explicit(&a->done, memory_order_acquire)) {
			if (atomic_load_explicit(&inflight, memory_order_relaxed) <= 0)
				break;
			if (!give_up)
				give_up = now_ns() + 10 * SEC;
			else if (now_ns() > give_up)
				break;
		}
		conn_poll(a->x, SEC / 50);
	}
	return NULL;
}

/*
 * One process: n requests in flight (concurrency), or rate requests/s on
 * a schedule.  Rate mode runs two threads: this one sleeps until each
 * arrival (clock_nanosleep with a 1 ns timer slack) and submits; a reaper
 * completes.  (One thread doing both stalled over gRPC: gRPC's timers
 * count whole milliseconds, so its "non-blocking" poll after each submit
 * waited for the completion of the request just sent, about 200 us, and
 * the rate stuck at one request in flight, 4.5 k/s; see BENCHMARKS.md.)
 */
static void run_async(int kind, const char *addr, int slot, int n, double rate)
{
	static struct aslot s[MAXINFLIGHT];
	struct conn x;
	unsigned seed = (unsigned)slot * 7919u + 1;
	int k = rate > 0 ? MAXINFLIGHT : n;

	conn_open(&x, kind, addr, s, k, &rings[slot], slot * 1000);
	wait_go();
	if (rate <= 0) {
		for (int i = 0; i < n; i++)
			submit(&x, &s[i]);
		while (!atomic_load_explicit(&ctl->stop, memory_order_relaxed)) {
			conn_poll(&x, SEC / 10);
			for (int i = 0; i < n; i++)
				if (!atomic_load_explicit(&s[i].busy, memory_order_acquire))
					submit(&x, &s[i]);
		}
	} else {
		struct reaper_arg ra = { .x = &x };
		pthread_t th;
		uint64_t next = next_arrival(now_ns(), rate, &seed);
		int free_hint = 0;

		prctl(PR_SET_TIMERSLACK, 1UL);
		atomic_init(&ra.done, 0);
		if (pthread_create(&th, NULL, reaper, &ra))
			die("pthread_create");
		while (!atomic_load_explicit(&ctl->stop, memory_order_relaxed)) {
			struct timespec ts = { (time_t)(next / SEC), (long)(next % SEC) };
			int i;

			if (now_ns() < next)
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			next = next_arrival(next, rate, &seed);
			for (i = 0; i < k; i++) {
				int j = (free_hint + i) % k;

				if (!atomic_load_explicit(&s[j].busy, memory_order_acquire)) {
					submit(&x, &s[j]);
					free_hint = j + 1;
					break;
				}
			}
			if (i == k)	/* every slot busy: the arrival is dropped */
				atomic_fetch_add(&rings[slot].dropped, 1);
		}
		atomic_store_explicit(&ra.done, 1, memory_order_release);
		pthread_join(th, NULL);
	}
	/* drain */
	for (int i = 0; i < k; i++)
		while (atomic_load_explicit(&s[i].busy, memory_order_acquire)) {
			uint64_t before = atomic_load(&s[i].ring->n) + atomic_load(&s[i].ring->errors);

			conn_poll(&x, SEC);
			if (atomic_load(&s[i].ring->n) + atomic_load(&s[i].ring->errors) == before)
				break;	/* nothing in a second: give up */
		}
	conn_close(&x, s, k);
}

/* the statistics reader: one line on `in`, the model's totals into ctl */
static void stats_cb(void *arg, const ferry_model_stats *s)
{
	(void)arg;
	ctl->success += s->success;
	ctl->inferences += s->inference_count;
	ctl->execs += s->execution_count;
	ctl->queue_ns += s->queue_ns;
	ctl->cin_ns += s->compute_input_ns;
	ctl->cinf_ns += s->compute_infer_ns;
	ctl->cout_ns += s->compute_output_ns;
}

static void stats_proc(const char *addr, int in, int out)
{
	ferry_client *c;
	char ch;

	if (!strncmp(addr, "http://", 7)) {
		char host[128];
		int port;
		http_addr(addr, host, sizeof(host), &port);
		struct hu_conn *h = hu_open(host, port);
		if (!h)
			die("stats: %s", hu_error());
		while (read(in, &ch, 1) == 1) {
			struct hu_stats st;
			if (hu_model_stats(h, opt.model, &st)) {
				ch = 'e';
				memset(&st, 0, sizeof(st));
			}
			ctl->success = st.success;
			ctl->inferences = st.inferences;
			ctl->execs = st.execs;
			ctl->queue_ns = st.queue_ns;
			ctl->cin_ns = st.cin_ns;
			ctl->cinf_ns = st.cinf_ns;
			ctl->cout_ns = st.cout_ns;
			if (write(out, &ch, 1) != 1)
				break;
		}
		hu_close(h);
		_exit(0);
	}

	if (ferry_connect(&c, addr, NULL))
		die("stats connect %s: %s", addr, ferry_last_error());
	while (read(in, &ch, 1) == 1) {
		ctl->success = ctl->inferences = ctl->execs = 0;
		ctl->queue_ns = ctl->cin_ns = ctl->cinf_ns = ctl->cout_ns = 0;
		if (ferry_model_statistics(c, opt.model, FERRY_LATEST, stats_cb, NULL) < 0)
			ch = 'e';
		if (write(out, &ch, 1) != 1)
			break;
	}
	ferry_close(c);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* the parent                                                           */

struct sstat {
	uint64_t success, inferences, execs, queue_ns, cin_ns, cinf_ns, cout_ns;
};

static int st_in = -1, st_out = -1;
static pid_t st_pid;

static void stats_start(const char *addr)
{
	int a[2], b[2];

	if (pipe(a) || pipe(b))
		die("pipe");
	st_pid = fork();
	if (st_pid == 0) {
		close(a[1]);
		close(b[0]);
		stats_proc(addr, a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	st_in = a[1];
	st_out = b[0];
}

static void stats_stop(void)
{
	close(st_in);
	close(st_out);
	waitpid(st_pid, NULL, 0);
}

static struct sstat stats_read(void)
{
	struct sstat s = { 0 };
	char ch = 'r';

	if (write(st_in, &ch, 1) != 1 || read(st_out, &ch, 1) != 1 || ch == 'e')
		return s;
	s = (struct sstat){ ctl->success, ctl->inferences, ctl->execs, ctl->queue_ns,
			    ctl->cin_ns, ctl->cinf_ns, ctl->cout_ns };
	return s;
}

struct result {
	double level, thr, p50, p90, p95, p99, mean;
	double q_us, cin_us, cinf_us, cout_us, batch;
	uint64_t errors, dropped;
	int windows, stable;
};

struct window {
	double thr, mean;
	uint64_t *lat;
	size_t n;
	struct sstat st;
};

static int within(const struct window *w, int k, double pct)
{
	double tm = 0, lm = 0;

	for (int i = k - 3; i < k; i++) {
		tm += w[i].thr / 3;
		lm += w[i].mean / 3;
	}
	for (int i = k - 3; i < k; i++)
		if (fabs(w[i].thr - tm) > tm * pct / 100 || fabs(w[i].mean - lm) > lm * pct / 100)
			return 0;
	return 1;
}

static struct result measure(int kind, const char *addr, double level)
{
	struct window w[64];
	struct result res = { .level = level };
	uint64_t last[MAXSLOTS] = { 0 }, end[MAXSLOTS], err1 = 0, drop1 = 0;
	const char *tname = tnames[kind];
	pid_t pids[MAXSLOTS];
	int nslots, nprocs = opt.processes, k;
	struct sstat s0;
	double t0;

	memset(ctl, 0, offsetof(struct ctl, success));
	/* spread the level over the processes: sync runs one thread (and
	 * ring) per request in flight, async and rate one per process */
	if (!opt.rate_mode && nprocs > (int)level)
		nprocs = (int)level;
	nslots = (opt.sync || kind == T_HTTP) && !opt.rate_mode ? (int)level : nprocs;
	if (nslots > MAXSLOTS)
		die("too many clients (%d > %d)", nslots, MAXSLOTS);
	for (int i = 0; i < nslots; i++)
		atomic_store(&rings[i].n, 0), atomic_store(&rings[i].errors, 0),
		atomic_store(&rings[i].dropped, 0);
	for (int p = 0, slot = 0; p < nprocs; p++) {
		/* process p's share: level / nprocs, the rest to the first ones */
		int share = (int)level / nprocs + (p < (int)level % nprocs);
		double rate = level / nprocs;

		pids[p] = fork();
		if (pids[p] < 0)
			die("fork");
		if (pids[p] == 0) {
			if (opt.rate_mode)
				run_async(kind, addr, p, 0, rate);
			else if (opt.sync || kind == T_HTTP)
				run_sync(kind, addr, slot, share);
			else
				run_async(kind, addr, p, share, 0);
			_exit(0);
		}
		slot += (opt.sync || kind == T_HTTP) && !opt.rate_mode ? share : 1;
	}
	while (atomic_load(&ctl->ready) < nslots) {
		for (int p = 0; p < nprocs; p++)
			if (waitpid(pids[p], NULL, WNOHANG) == pids[p])
				die("a client exited during set-up");
		usleep(1000);
	}
	atomic_store(&ctl->go, 1);
	s0 = stats_read();
	t0 = bu_now();
	for (k = 0; k < opt.max_windows && k < 64; k++) {
		size_t cap = 0, n = 0;
		uint64_t done = 0;	/* completions, also those the rings overwrote */
		double t1;

		usleep((useconds_t)opt.window_ms * 1000);
		t1 = bu_now();
		w[k].st = stats_read();
		/* one snapshot of each ring's count: it moves while we copy */
		for (int i = 0; i < nslots; i++) {
			end[i] = atomic_load_explicit(&rings[i].n, memory_order_acquire);
			cap += end[i] - last[i] > RING ? RING : end[i] - last[i];
		}
		w[k].lat = malloc((cap + 1) * sizeof(uint64_t));
		for (int i = 0; i < nslots; i++) {
			uint64_t e = end[i];
			uint64_t b = last[i];

			done += e - b;
			if (e - b > RING)
				b = e - RING;
			for (uint64_t j = b; j < e; j++)
				w[k].lat[n++] = rings[i].lat[j % RING];
			last[i] = e;
		}
		w[k].n = n;
		/* throughput from the counts: a ring keeps the latencies of its
		 * last RING completions only (a sample at high rates) */
		w[k].thr = (double)done * opt.batch / (t1 - t0);
		{
			double s = 0;

			for (size_t j = 0; j < n; j++)
				s += (double)w[k].lat[j];
			w[k].mean = n ? s / (double)n : 0;
		}
		t0 = t1;
		fprintf(stderr, "%s[%s %s %g] window %d: %.0f infer/s, mean %.1f us   %s",
			isatty(2) ? "\r" : "", tname, opt.rate_mode ? "rate" : "concurrency",
			level, k + 1, w[k].thr, w[k].mean / 1e3, isatty(2) ? "" : "\n");
		if (k >= 2 && within(w, k + 1, opt.stability)) {
			k++;
			res.stable = 1;
			break;
		}
	}
	atomic_store(&ctl->stop, 1);
	for (int p = 0; p < nprocs; p++)
		waitpid(pids[p], NULL, 0);
	for (int i = 0; i < nslots; i++) {
		err1 += atomic_load(&rings[i].errors);
		drop1 += atomic_load(&rings[i].dropped);
	}
	res.windows = k;
	res.errors = err1;
	res.dropped = drop1;
	/* the last three windows together */
	{
		int a = k >= 3 ? k - 3 : 0;
		size_t n = 0;
		uint64_t *all;
		double thr = 0, sum = 0;
		struct sstat sa = a ? w[a - 1].st : s0, sb = w[k - 1].st;
		double reqs;

		for (int i = a; i < k; i++)
			n += w[i].n;
		all = malloc((n + 1) * sizeof(uint64_t));
		n = 0;
		for (int i = a; i < k; i++) {
			memcpy(all + n, w[i].lat, w[i].n * sizeof(uint64_t));
			n += w[i].n;
			thr += w[i].thr / (k - a);
		}
		for (size_t j = 0; j < n; j++)
			sum += (double)all[j];
		res.thr = thr;
		res.mean = n ? sum / (double)n / 1e3 : 0;
		res.p50 = bu_pct(all, n, 0.50) / 1e3;
		res.p90 = bu_pct(all, n, 0.90) / 1e3;
		res.p95 = bu_pct(all, n, 0.95) / 1e3;
		res.p99 = bu_pct(all, n, 0.99) / 1e3;
		reqs = (double)(sb.success - sa.success);
		if (reqs > 0) {
			res.q_us = (double)(sb.queue_ns - sa.queue_ns) / reqs / 1e3;
			res.cin_us = (double)(sb.cin_ns - sa.cin_ns) / reqs / 1e3;
			res.cinf_us = (double)(sb.cinf_ns - sa.cinf_ns) / reqs / 1e3;
			res.cout_us = (double)(sb.cout_ns - sa.cout_ns) / reqs / 1e3;
			if (sb.execs > sa.execs)
				res.batch = (double)(sb.inferences - sa.inferences) /
					    (double)(sb.execs - sa.execs);
		}
		free(all);
	}
	for (int i = 0; i < k; i++)
		free(w[i].lat);
	if (isatty(2))
		fprintf(stderr, "\r%100s\r", "");
	return res;
}

/* ------------------------------------------------------------------ */

static void write_repo(const char *repo)
{
	char path[PATH_MAX + 64], cmd[4 * PATH_MAX], mdir[PATH_MAX];
	const char *src = getenv("FERRY_TOP_SRCDIR");
	FILE *f;

	if (!src)
		src = FERRY_SRCDIR;
	if (!opt.models) {
		snprintf(mdir, sizeof(mdir), "%s/models", tmpdir);
		snprintf(cmd, sizeof(cmd), "'%s/.venv/bin/python' '%s/tests/onnx/gen_models.py' "
			 "'%s' >/dev/null", src, src, mdir);
		if (system(cmd))
			die("generating the models failed (%s); pass --models DIR", cmd);
		opt.models = strdup(mdir);
	}
	snprintf(path, sizeof(path), "%s/mlp/1", repo);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/mlp.onnx' '%s/model.onnx'", path,
		 opt.models, path);
	if (system(cmd))
		die("%s failed", cmd);
	snprintf(path, sizeof(path), "%s/mlp/config.pbtxt", repo);
	if (!(f = fopen(path, "w")) ||
	    fputs("platform: \"onnxruntime_onnx\"\nmax_batch_size: 256\n"
		  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
		  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n"
		  "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
		  "dynamic_batching { max_queue_delay_microseconds: 0 }\n", f) < 0 ||
	    fclose(f))
		die("cannot write %s", path);
}

static void parse_range(const char *s)
{
	double a, b = -1, c = 1;
	int n = sscanf(s, "%lf:%lf:%lf", &a, &b, &c);

	if (n < 1 || a <= 0)
		die("bad range %s (START[:END[:STEP]])", s);
	opt.start = a;
	opt.end = n >= 2 ? b : a;
	opt.step = n >= 3 ? c : 1;
	if (opt.end < opt.start || opt.step <= 0)
		die("bad range %s", s);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ferry-bench-load [-u ADDR]... [-m MODEL] [-b BATCH]\n"
		"         [--concurrency-range START:END:STEP] [--request-rate-range START:END:STEP]\n"
		"         [--request-distribution constant|poisson] [--sync|--async]\n"
		"         [--processes N] [-p WINDOW_MS] [-s STABILITY_PCT] [-r MAX_WINDOWS]\n"
		"         [-f FILE.csv] [--ferryd PATH] [--models DIR] [--backend-dir DIR]\n"
		"         [--transport shm,grpc,grpc-shm,http] [--output-shm-size BYTES]\n"
		"  ADDR: a socket path (shm), grpc://HOST:PORT (KServe v2, tensors in the\n"
		"  messages) or grpc-shm://HOST:PORT (KServe v2 with system shared memory)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "model", required_argument, NULL, 'm' },
		{ "batch-size", required_argument, NULL, 'b' },
		{ "concurrency-range", required_argument, NULL, 'C' },
		{ "request-rate-range", required_argument, NULL, 'R' },
		{ "request-distribution", required_argument, NULL, 'D' },
		{ "sync", no_argument, NULL, 'S' },
		{ "async", no_argument, NULL, 'A' },
		{ "processes", required_argument, NULL, 'P' },
		{ "measurement-interval", required_argument, NULL, 'p' },
		{ "stability-percentage", required_argument, NULL, 's' },
		{ "max-trials", required_argument, NULL, 'r' },
		{ "ferryd", required_argument, NULL, 'F' },
		{ "models", required_argument, NULL, 'M' },
		{ "backend-dir", required_argument, NULL, 'B' },
		{ "transport", required_argument, NULL, 'T' },
		{ "output-shm-size", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char addr_shm[600], addr_grpc[64], addr_gshm[64], addr_http[64], ferryd[PATH_MAX + 32],
		bdir[PATH_MAX + 32];
	int kinds[8];
	FILE *csv = NULL;
	pid_t broker = 0;
	int ch, nlev = 0;
	char cmd[400];

	while ((ch = getopt_long(argc, argv, "u:m:b:p:s:r:f:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'u':
			if (opt.nurls < 8)
				opt.urls[opt.nurls++] = optarg;
			break;
		case 'm': opt.model = optarg; break;
		case 'b': opt.batch = atoi(optarg); break;
		case 'C': parse_range(optarg); opt.rate_mode = 0; break;
		case 'R': parse_range(optarg); opt.rate_mode = 1; break;
		case 'D': opt.dist = optarg; break;
		case 'S': opt.sync = 1; break;
		case 'A': opt.sync = 0; break;
		case 'P': opt.processes = atoi(optarg); break;
		case 'p': opt.window_ms = atoi(optarg); break;
		case 's': opt.stability = atof(optarg); break;
		case 'r': opt.max_windows = atoi(optarg); break;
		case 'f': opt.csv = optarg; break;
		case 'F': opt.ferryd = optarg; break;
		case 'M': opt.models = optarg; break;
		case 'B': opt.backend_dir = optarg; break;
		case 'T': opt.transports = optarg; break;
		case 'O': opt.out_shm = (size_t)strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (optind != argc || opt.batch < 1 || opt.processes < 1 || opt.processes > MAXSLOTS ||
	    opt.window_ms < 10 || opt.max_windows < 3 || opt.max_windows > 64 || !opt.out_shm ||
	    (strcmp(opt.dist, "constant") && strcmp(opt.dist, "poisson")))
		usage();
	signal(SIGPIPE, SIG_IGN);
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	rings = mmap(NULL, sizeof(struct ring) * MAXSLOTS, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ctl == MAP_FAILED || rings == MAP_FAILED)
		die("mmap");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-load-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	if (!opt.nurls) {
		char repo[PATH_MAX], logf[PATH_MAX];
		static char port[16], hport[16];
		const char *build = bu_build_dir();

		if (!opt.ferryd) {
			snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", build);
			opt.ferryd = ferryd;
		}
		if (!opt.backend_dir) {
			snprintf(bdir, sizeof(bdir), "%s/tests/onnx/.libs", build);
			opt.backend_dir = bdir;
		}
		snprintf(repo, sizeof(repo), "%s/repo", tmpdir);
		write_repo(repo);
		snprintf(addr_shm, sizeof(addr_shm), "%s/ferryd.sock", tmpdir);
		snprintf(logf, sizeof(logf), "%s/ferryd.log", tmpdir);
		snprintf(port, sizeof(port), "%d", bu_free_port());
		snprintf(addr_grpc, sizeof(addr_grpc), "grpc://127.0.0.1:%s", port);
		snprintf(addr_gshm, sizeof(addr_gshm), "grpc-shm://127.0.0.1:%s", port);
		snprintf(hport, sizeof(hport), "%d", bu_free_port());
		snprintf(addr_http, sizeof(addr_http), "http://127.0.0.1:%s", hport);
		const char *av[] = { "--model-repository", repo, "--backend-directory",
				     opt.backend_dir, "--log-level", "warn", "--grpc-port", port,
				     "--http-port", hport, "--metrics-port", "0",
				     "--allow-client-shm", NULL };
		broker = bu_ferryd_start(opt.ferryd, addr_shm, logf, av);
		{
			char list[128], *save = NULL;

			snprintf(list, sizeof(list), "%s", opt.transports);
			for (char *t = strtok_r(list, ",", &save); t && opt.nurls < 8;
			     t = strtok_r(NULL, ",", &save)) {
				if (!strcmp(t, "shm"))
					opt.urls[opt.nurls++] = addr_shm;
				else if (!strcmp(t, "grpc"))
					opt.urls[opt.nurls++] = addr_grpc;
				else if (!strcmp(t, "grpc-shm"))
					opt.urls[opt.nurls++] = addr_gshm;
				else if (!strcmp(t, "http"))
					opt.urls[opt.nurls++] = addr_http;
				else
					die("unknown transport '%s' (shm, grpc, grpc-shm, http)", t);
			}
		}
		opt.model = "mlp";
	}
	for (int i = 0; i < opt.nurls; i++) {
		kinds[i] = !strncmp(opt.urls[i], "grpc://", 7) ? T_GRPC :
			   !strncmp(opt.urls[i], "grpc-shm://", 11) ? T_GRPC_SHM :
			   !strncmp(opt.urls[i], "http://", 7) ? T_HTTP : T_SHM;
		if (kinds[i] == T_HTTP && opt.rate_mode)
			die("http: --request-rate-range is not supported over HTTP (one request "
			    "in flight per connection): use --concurrency-range");
	}
	if (opt.csv && !(csv = fopen(opt.csv, "w")))
		die("cannot write %s", opt.csv);
	if (csv)
		fprintf(csv, "transport,%s,infer_per_s,p50_us,p90_us,p95_us,p99_us,mean_us,"
			"queue_us,compute_input_us,compute_infer_us,compute_output_us,"
			"rows_per_exec,windows,stable,errors,dropped\n",
			opt.rate_mode ? "request_rate" : "concurrency");
	printf("ferry-bench-load: model %s, batch %d, %s%s, %d process(es), windows of %d ms, "
	       "stable when the last 3 are within %.0f%%\n", opt.model, opt.batch,
	       opt.rate_mode ? "request rate, " : (opt.sync ? "sync" : "async"),
	       opt.rate_mode ? opt.dist : "", opt.processes, opt.window_ms, opt.stability);
	printf("%-8s %8s %11s %9s %9s %9s %9s %9s | %8s %8s %8s %8s %6s %s\n", "xport",
	       opt.rate_mode ? "rate" : "conc", "infer/s", "p50 us", "p90 us", "p95 us",
	       "p99 us", "mean us", "queue", "c-in", "c-infer", "c-out", "rows/x", "");
	fflush(stdout);
	for (int u = 0; u < opt.nurls; u++) {
		const char *name = tnames[kinds[u]];
		char saddr[300];

		/* the statistics come over libferry: grpc-shm's server by gRPC */
		if (kinds[u] == T_GRPC_SHM)
			snprintf(saddr, sizeof(saddr), "grpc://%s", opt.urls[u] + 11);
		else
			snprintf(saddr, sizeof(saddr), "%s", opt.urls[u]);
		stats_start(saddr);
		for (double lv = opt.start; lv <= opt.end + 1e-9; lv += opt.step) {
			struct result r = measure(kinds[u], opt.urls[u], lv);

			printf("%-8s %8g %11.0f %9.1f %9.1f %9.1f %9.1f %9.1f | %8.1f %8.1f %8.1f "
			       "%8.1f %6.1f %s\n", name, lv, r.thr, r.p50, r.p90, r.p95, r.p99,
			       r.mean, r.q_us, r.cin_us, r.cinf_us, r.cout_us, r.batch,
			       r.stable ? "" : "(unstable)");
			if (r.errors)
				printf("      %llu errors\n", (unsigned long long)r.errors);
			if (r.dropped)
				printf("      %llu arrivals dropped: all %d slots of a process busy\n",
				       (unsigned long long)r.dropped, MAXINFLIGHT);
			fflush(stdout);
			if (csv)
				fprintf(csv, "%s,%g,%.1f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,"
					"%.2f,%.2f,%d,%d,%llu,%llu\n", name, lv, r.thr, r.p50, r.p90,
					r.p95, r.p99, r.mean, r.q_us, r.cin_us, r.cinf_us, r.cout_us,
					r.batch, r.windows, r.stable, (unsigned long long)r.errors,
					(unsigned long long)r.dropped);
			nlev++;
		}
		stats_stop();
	}
	printf("(latency: client-side, per request; queue / c-in / c-infer / c-out: ferryd's "
	       "statistics per request, us; rows/x: rows per model execution)\n");
	if (csv)
		fclose(csv);
	if (broker)
		bu_ferryd_stop(broker);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
	return nlev ? 0 : 1;
}
