/* SPDX-License-Identifier: MIT */
/*
 * clients.c - ferry-bench-clients: how many clients one broker serves.
 *
 *   ferry-bench-clients [--clients LIST] [--seconds S] [--transports LIST]
 *                       [--client-wait spin|hybrid|block] [--ferryd PATH]
 *                       [--models DIR] [--csv FILE]
 *
 * For each transport (shm: the local socket; grpc: grpc://127.0.0.1:PORT)
 * and each N of LIST (default 1,10,100,1000): a fresh ferryd on the
 * example repository (--max-sessions above N), then N client processes
 * forked at once.  Each connects (1 MiB arena, queue depth 4), prepares
 * one request of `simple` (add_sub, INT32 [1,16]), counts itself in at a
 * barrier in shared memory and waits there (on a pipe the parent closes).
 * Then S seconds of synchronous requests, one in flight per process,
 * every result checked; latencies are sampled into shared memory (up to
 * SAMP per process: all of them, then every 2nd, 4th, ... as it fills).
 *
 * --idle LIST (e.g. 0,1000) runs another study instead: the cost of
 * sessions that are connected but idle.  For each M of LIST, a fresh
 * ferryd, one process holding M idle sessions (64 KiB arenas, nothing
 * submitted), and one active client as above over shared memory; the
 * counts run interleaved --reps times (the order alternates), and each
 * p50 is reported beside the p50 with no idle session of the same
 * repetition: ferryd's pollers walk only the sessions that are active, so
 * the ratio should stay near 1.
 *
 * Reported per (transport, N): clients that connected and the slowest
 * connect, requests/s completed in the window, p50 / p99 latency, ferryd's
 * CPU seconds over the window (utime + stime of every thread), its VmRSS
 * idle (before the clients) and at the end of the window, the difference
 * per session, the machine's context switches per request over the
 * window (/proc/stat ctxt), and errors (failed connects, failed or wrong
 * requests).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"

#define SEC 1000000000LL
#define MAXN 4096
#define MAXPTS 16
#define SAMP 1024
#define ELEMS 16

enum xport { X_SHM, X_GRPC, NX };
static const char *const XNAME[NX] = { "shm", "grpc" };

static struct {
	int n[MAXPTS], npts, x[NX];
	int idle[MAXPTS], nidle, reps;
	double seconds;
	const char *ferryd, *models, *csv, *cwait;
} opt = { .seconds = 3, .cwait = "block", .x = { 1, 1 }, .reps = 3 };

struct proc_res {
	long reqs;            /* completed before t_end */
	long errs;            /* failed or wrong requests */
	int connected;        /* 1 ok, -1 failed */
	double connect_s;     /* fork to connected */
	unsigned nsamp, stride;
	char err[160];
};

struct shared {
	atomic_int ready;
	atomic_int idle_ready;
	double t_fork, t_end;
	struct proc_res res[MAXN];
};

static struct shared *sh;
static uint64_t *samples;  /* MAXN x SAMP */
static char tmpdir[256], sock[512], grpc_addr[64];

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ferry-bench-clients: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ------------------------------------------------------------------ */
/* one client process                                                   */

static void sample(int id, uint64_t ns, unsigned long k)
{
	struct proc_res *r = &sh->res[id];
	uint64_t *s = samples + (size_t)id * SAMP;

	if (k % r->stride)
		return;
	if (r->nsamp == SAMP) {	/* full: keep every 2nd, take half as many */
		for (unsigned i = 0; i < SAMP / 2; i++)
			s[i] = s[2 * i];
		r->nsamp = SAMP / 2;
		r->stride *= 2;
		if (k % r->stride)
			return;
	}
	s[r->nsamp++] = ns;
}

static void client(int id, enum xport x, int go_fd)
{
	struct proc_res *r = &sh->res[id];
	ferry_options o = {
		.struct_size = sizeof(o), .client_name = "bench-clients",
		.arena_bytes = 1 << 20, .queue_depth = 4,
	};
	int64_t dims[2] = { 1, ELEMS };
	ferry_client *c;
	ferry_model *m;
	ferry_request *rq;
	int32_t *in0, *in1;
	unsigned long k = 0;
	double t_end;
	char ch;

	r->stride = 1;
	if (!strcmp(opt.cwait, "spin"))
		o.wait = FERRY_WAIT_SPIN;
	else if (!strcmp(opt.cwait, "hybrid"))
		o.wait = FERRY_WAIT_HYBRID;
	else
		o.wait = FERRY_WAIT_BLOCK;
	if (ferry_connect(&c, x == X_GRPC ? grpc_addr : sock, &o)) {
		r->connected = -1;
		r->connect_s = bu_now() - sh->t_fork;
		snprintf(r->err, sizeof(r->err), "connect: %s", ferry_last_error());
		atomic_fetch_add(&sh->ready, 1);
		_exit(0);
	}
	r->connect_s = bu_now() - sh->t_fork;
	if (ferry_model_get(c, "simple", FERRY_LATEST, &m) || ferry_request_new(m, &rq) ||
	    ferry_request_input(rq, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&in0) ||
	    ferry_request_input(rq, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&in1)) {
		r->connected = -1;
		snprintf(r->err, sizeof(r->err), "set-up: %s", ferry_last_error());
		atomic_fetch_add(&sh->ready, 1);
		_exit(0);
	}
	r->connected = 1;
	atomic_fetch_add(&sh->ready, 1);
	(void)!read(go_fd, &ch, 1);	/* the parent closes the write end: go */
	t_end = sh->t_end;
	for (;;) {
		const int32_t *o0, *o1;
		double a, b;
		int rc, bad = 0;

		for (int i = 0; i < ELEMS; i++) {
			in0[i] = (int32_t)(k + (unsigned long)i + (unsigned long)id);
			in1[i] = i;
		}
		a = bu_now();
		rc = ferry_infer(c, rq, 30 * SEC);
		b = bu_now();
		if (!rc && (ferry_request_output(rq, "OUTPUT0", NULL, NULL, NULL,
						 (const void **)&o0, NULL) ||
			    ferry_request_output(rq, "OUTPUT1", NULL, NULL, NULL,
						 (const void **)&o1, NULL)))
			rc = -1;
		for (int i = 0; !rc && i < ELEMS; i++)
			if (o0[i] != in0[i] + in1[i] || o1[i] != in0[i] - in1[i])
				bad = 1;
		if (rc || bad) {
			if (!r->errs++)
				snprintf(r->err, sizeof(r->err), "request: %d %s", rc,
					 rc ? ferry_last_error() : "wrong result");
			if (rc)
				break;	/* the request may still be in flight */
		}
		if (b > t_end)
			break;
		if (!bad) {
			r->reqs++;
			sample(id, (uint64_t)((b - a) * 1e9), k);
		}
		k++;
		if (ferry_request_reset(rq)) {
			r->errs++;
			break;
		}
	}
	ferry_close(c);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* the broker                                                           */

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			v = atol(line + 6);
			break;
		}
	fclose(f);
	return v;
}

/* Context switches of the whole machine so far (/proc/stat ctxt). */
static unsigned long long ctxt(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "ctxt ", 5)) {
			v = strtoull(line + 5, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void wait_port(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 1000; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

		if (fd < 0)
			die("socket: %s", strerror(errno));
		ok = !connect(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
		if (ok)
			return;
		usleep(10000);
	}
	die("ferryd's gRPC port %d did not open within 10 s", port);
}

static pid_t broker_start(int n)
{
	char logf[PATH_MAX], maxs[16];
	static char port[16];
	int p = bu_free_port();

	snprintf(logf, sizeof(logf), "%s/ferryd.log", tmpdir);
	snprintf(port, sizeof(port), "%d", p);
	snprintf(maxs, sizeof(maxs), "%d", n + 64 > 1024 ? n + 64 : 1024);
	snprintf(grpc_addr, sizeof(grpc_addr), "grpc://127.0.0.1:%d", p);
	const char *av[] = {
		"--model-repository", opt.models, "--log-level", "warn",
		"--grpc-port", port, "--metrics-port", "0", "--max-sessions", maxs, NULL
	};
	pid_t pid = bu_ferryd_start(opt.ferryd, sock, logf, av);

	wait_port(p);
	return pid;
}

/* ------------------------------------------------------------------ */
/* one point: N clients on one transport                                */

struct point {
	int ok, failed;
	long reqs, errs;
	double rps, cpu_s, connect_max_s, cs_per_req;
	long rss0, rss1;
	struct bu_lat lat;
	char err[160];
};

/* A process holding m idle sessions until the pipe's write end closes. */
static pid_t idler(int m, const int go[2], atomic_int *ready)
{
	pid_t pid = fork();
	int go_fd = go[0];

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid > 0)
		return pid;
	close(go[1]);
	ferry_options o = {
		.struct_size = sizeof(o), .client_name = "bench-idle",
		.arena_bytes = 64 << 10, .queue_depth = 2, .wait = FERRY_WAIT_BLOCK,
	};
	struct rlimit rl;
	ferry_client **c = calloc((size_t)m + 1, sizeof(*c));
	char ch;

	/* four descriptors a session */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < m; i++)
		if (ferry_connect(&c[i], sock, &o)) {
			fprintf(stderr, "ferry-bench-clients: idle session %d: %s\n", i,
				ferry_last_error());
			_exit(1);
		}
	atomic_store(ready, 1);
	(void)!read(go_fd, &ch, 1);
	for (int i = 0; i < m; i++)
		ferry_close(c[i]);
	_exit(0);
}

static struct point run_point(enum xport x, int n, int idle)
{
	static pid_t pids[MAXN];
	struct point pt = { 0 };
	pid_t broker = broker_start(n + idle), idl = 0;
	int ifd[2];
	double t0, c0, c1, deadline;
	unsigned long long x0, x1;
	size_t ns = 0;
	int pfd[2];

	usleep(200000);
	pt.rss0 = rss_kib(broker);
	memset(sh, 0, sizeof(*sh));
	if (idle) {
		atomic_int *ready = &sh->idle_ready;

		if (pipe(ifd))
			die("pipe");
		idl = idler(idle, ifd, ready);
		close(ifd[0]);
		deadline = bu_now() + 300;
		while (!atomic_load(ready)) {
			int st;

			if (waitpid(idl, &st, WNOHANG) == idl)
				die("the idle sessions' process failed");
			if (bu_now() > deadline)
				die("%d idle sessions not open after 300 s", idle);
			usleep(2000);
		}
	}
	if (pipe(pfd))
		die("pipe");
	sh->t_fork = bu_now();
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork %d: %s", i, strerror(errno));
		if (pids[i] == 0) {
			close(pfd[1]);
			client(i, x, pfd[0]);
		}
	}
	close(pfd[0]);
	deadline = bu_now() + 300;
	while (atomic_load(&sh->ready) < n) {
		if (bu_now() > deadline)
			die("%s N=%d: only %d of %d clients ready after 300 s", XNAME[x], n,
			    atomic_load(&sh->ready), n);
		usleep(2000);
	}
	c0 = bu_proc_cpu_s(broker);
	x0 = ctxt();
	t0 = bu_now();
	sh->t_end = t0 + opt.seconds;
	close(pfd[1]);	/* go */
	usleep((useconds_t)(opt.seconds * 1e6));
	while (bu_now() < sh->t_end)
		usleep(1000);
	c1 = bu_proc_cpu_s(broker);
	x1 = ctxt();
	pt.rss1 = rss_kib(broker);
	for (int i = 0; i < n; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
			die("client %d died", i);
	}
	if (idle) {
		int st;

		close(ifd[1]);
		waitpid(idl, &st, 0);
	}
	bu_ferryd_stop(broker);
	for (int i = 0; i < n; i++) {
		struct proc_res *r = &sh->res[i];

		if (r->connected == 1)
			pt.ok++;
		else
			pt.failed++;
		if (r->connect_s > pt.connect_max_s)
			pt.connect_max_s = r->connect_s;
		pt.reqs += r->reqs;
		pt.errs += r->errs;
		if (r->err[0] && !pt.err[0])
			memcpy(pt.err, r->err, sizeof(pt.err));
		/* weight each process's samples equally per request: stride */
		memmove(samples + ns, samples + (size_t)i * SAMP, r->nsamp * sizeof(uint64_t));
		ns += r->nsamp;
	}
	pt.rps = (double)pt.reqs / opt.seconds;
	pt.cpu_s = c1 - c0;
	pt.cs_per_req = pt.reqs ? (double)(x1 - x0) / (double)pt.reqs : 0;
	if (ns)
		pt.lat = bu_lat_of(samples, ns);
	return pt;
}

/* ------------------------------------------------------------------ */

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(buf, len, "?");
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ferry-bench-clients [--clients LIST (1,10,100,1000)] [--seconds S]\n"
		"         [--transports shm,grpc] [--client-wait spin|hybrid|block]\n"
		"         [--ferryd PATH] [--models DIR] [--csv FILE]\n"
		"       ferry-bench-clients --idle LIST (e.g. 0,1000) [--reps R] [--seconds S] ...\n");
	exit(2);
}

static void parse_idle(const char *s)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	opt.nidle = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (opt.nidle == MAXPTS)
			die("at most %d idle counts", MAXPTS);
		opt.idle[opt.nidle] = atoi(t);
		if (opt.idle[opt.nidle] < 0 || opt.idle[opt.nidle] > MAXN)
			die("idle count %s: 0 to %d", t, MAXN);
		opt.nidle++;
	}
}

/* --idle: one active client's p50 beside M idle sessions, interleaved. */
static void idle_study(FILE *csv)
{
	static struct point pts[MAXPTS][MAXPTS];	/* [rep][count] */
	int base = -1;

	for (int k = 0; k < opt.nidle; k++)
		if (opt.idle[k] == 0)
			base = k;
	printf("idle sessions: one active client (simple, sync, %.1f s) beside M idle "
	       "sessions, %d repetitions interleaved\n", opt.seconds, opt.reps);
	for (int r = 0; r < opt.reps; r++)
		for (int i = 0; i < opt.nidle; i++) {
			int k = r % 2 ? opt.nidle - 1 - i : i;

			pts[r][k] = run_point(X_SHM, 1, opt.idle[k]);
			if (pts[r][k].errs || pts[r][k].failed)
				die("M=%d: %s", opt.idle[k], pts[r][k].err);
		}
	printf("%8s %10s %9s %9s %12s %8s %8s\n", "M idle", "req/s", "p50 us", "p99 us",
	       "p50 / M=0", "+-", "cpu s");
	if (csv)
		fprintf(csv, "idle,rep,req_per_s,p50_us,p99_us,p50_ratio,ferryd_cpu_s\n");
	for (int k = 0; k < opt.nidle; k++) {
		double rps = 0, p50 = 0, p99 = 0, cpu = 0, lo = INFINITY, hi = -INFINITY;

		for (int r = 0; r < opt.reps; r++) {
			const struct point *p = &pts[r][k];
			double ratio = base >= 0 ? p->lat.p50 / pts[r][base].lat.p50 : NAN;

			rps += p->rps / opt.reps;
			p50 += p->lat.p50 / 1e3 / opt.reps;
			p99 += p->lat.p99 / 1e3 / opt.reps;
			cpu += p->cpu_s / opt.reps;
			lo = ratio < lo ? ratio : lo;
			hi = ratio > hi ? ratio : hi;
			if (csv)
				fprintf(csv, "%d,%d,%.1f,%.2f,%.2f,%.4f,%.3f\n", opt.idle[k], r,
					p->rps, p->lat.p50 / 1e3, p->lat.p99 / 1e3, ratio, p->cpu_s);
		}
		printf("%8d %10.0f %9.2f %9.2f %12.3f %8.3f %8.2f\n", opt.idle[k], rps, p50, p99,
		       (lo + hi) / 2, (hi - lo) / 2, cpu);
	}
	printf("(p50 / M=0: per repetition, against the run with no idle session; the middle "
	       "and half the range of the repetitions)\n");
}

static void parse_list(const char *s, int xports)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	if (xports)
		memset(opt.x, 0, sizeof(opt.x));
	else
		opt.npts = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (xports) {
			int k;

			for (k = 0; k < NX && strcmp(t, XNAME[k]); k++)
				;
			if (k == NX)
				die("unknown transport %s", t);
			opt.x[k] = 1;
		} else {
			if (opt.npts == MAXPTS)
				die("at most %d client counts", MAXPTS);
			opt.n[opt.npts] = atoi(t);
			if (opt.n[opt.npts] < 1 || opt.n[opt.npts] > MAXN)
				die("client count %s: 1 to %d", t, MAXN);
			opt.npts++;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "clients", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "transports", required_argument, NULL, 'x' },
		{ "client-wait", required_argument, NULL, 'C' },
		{ "ferryd", required_argument, NULL, 'F' },
		{ "models", required_argument, NULL, 'm' },
		{ "csv", required_argument, NULL, 'f' },
		{ "idle", required_argument, NULL, 'i' },
		{ "reps", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char ferryd[PATH_MAX + 32], mdir[PATH_MAX + 32];
	FILE *csv = NULL;
	char la[128];
	int ch;

	parse_list("1,10,100,1000", 0);
	while ((ch = getopt_long(argc, argv, "f:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'n': parse_list(optarg, 0); break;
		case 's': opt.seconds = atof(optarg); break;
		case 'x': parse_list(optarg, 1); break;
		case 'C': opt.cwait = optarg; break;
		case 'F': opt.ferryd = optarg; break;
		case 'm': opt.models = optarg; break;
		case 'f': opt.csv = optarg; break;
		case 'i': parse_idle(optarg); break;
		case 'r': opt.reps = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || opt.seconds <= 0 || !opt.npts || opt.reps < 1 ||
	    opt.reps > MAXPTS)
		usage();
	if (!opt.ferryd) {
		snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", bu_build_dir());
		opt.ferryd = ferryd;
	}
	if (!opt.models) {
		const char *src = getenv("FERRY_TOP_SRCDIR");

		snprintf(mdir, sizeof(mdir), "%s/examples/models", src ? src : FERRY_SRCDIR);
		opt.models = mdir;
	}
	signal(SIGPIPE, SIG_IGN);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	samples = mmap(NULL, sizeof(uint64_t) * MAXN * SAMP, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sh == MAP_FAILED || samples == MAP_FAILED)
		die("mmap");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-clients-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", tmpdir);
	if (opt.csv && !(csv = fopen(opt.csv, "w")))
		die("cannot write %s", opt.csv);
	if (opt.nidle) {
		idle_study(csv);
		if (csv)
			fclose(csv);
		return 0;
	}
	if (csv)
		fprintf(csv, "transport,clients,connected,connect_failed,connect_max_s,req_per_s,"
			"p50_us,p99_us,ferryd_cpu_s,ferryd_cpu_pct,rss_idle_kib,rss_kib,"
			"kib_per_session,ctxsw_per_req,errors\n");
	loadavg(la, sizeof(la));
	printf("ferry-bench-clients: simple (add_sub INT32 [1,16]), sync, %.1f s per point, "
	       "client wait %s; loadavg %s\n", opt.seconds, opt.cwait, la);
	printf("%-5s %6s %6s %8s %10s %8s %8s %8s %6s %8s %8s %8s %6s %6s\n", "xport", "N",
	       "conn", "conn s", "req/s", "p50 us", "p99 us", "cpu s", "cpu%", "rss0 MiB",
	       "rss MiB", "KiB/ses", "cs/req", "errs");
	fflush(stdout);
	for (int x = 0; x < NX; x++) {
		if (!opt.x[x])
			continue;
		for (int i = 0; i < opt.npts; i++) {
			int n = opt.n[i];
			struct point p = run_point(x, n, 0);
			double kps = (double)(p.rss1 - p.rss0) / n;

			printf("%-5s %6d %6d %8.2f %10.0f %8.1f %8.1f %8.2f %6.0f %8.1f %8.1f "
			       "%8.1f %6.2f %6ld\n", XNAME[x], n, p.ok, p.connect_max_s, p.rps,
			       p.lat.p50 / 1e3, p.lat.p99 / 1e3, p.cpu_s,
			       100 * p.cpu_s / opt.seconds, p.rss0 / 1024.0, p.rss1 / 1024.0,
			       kps, p.cs_per_req, p.errs + p.failed);
			if (p.err[0])
				printf("      first error: %s\n", p.err);
			fflush(stdout);
			if (csv)
				fprintf(csv, "%s,%d,%d,%d,%.3f,%.1f,%.2f,%.2f,%.3f,%.1f,%ld,%ld,%.1f,%.3f,%ld\n",
					XNAME[x], n, p.ok, p.failed, p.connect_max_s, p.rps,
					p.lat.p50 / 1e3, p.lat.p99 / 1e3, p.cpu_s,
					100 * p.cpu_s / opt.seconds, p.rss0, p.rss1, kps,
					p.cs_per_req, p.errs + p.failed);
		}
	}
	loadavg(la, sizeof(la));
	printf("loadavg at the end: %s\n", la);
	if (csv)
		fclose(csv);
	return 0;
}
