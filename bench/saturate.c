/* SPDX-License-Identifier: MIT */
/*
 * saturate.c - ferry-bench-saturate: the portability study.  Does a broker
 * running beside CPU-saturating jobs cost them throughput?
 *
 *   ferry-bench-saturate [--jobs N] [--work-us W] [--batch B] [--seconds S]
 *                        [--reps R] [--modes LIST] [--instances K]
 *                        [--delay-us D] [--ferryd-wait spin|hybrid|block]
 *                        [--spin-us N] [--client-wait spin|hybrid|block]
 *                        [--models DIR] [--ferryd PATH] [--backend-dir DIR]
 *                        [--csv FILE]
 *
 * N jobs (default: the CPUs this process may use), each a process running
 * a synthetic event loop: W microseconds of deterministic CPU work per
 * event (a xorshift chain calibrated in this process first; it stands for
 * reconstruction) and then one inference of the MLP of
 * tests/onnx/gen_models.py on B rows (the event's candidates).
 *
 * Modes, each run R times, interleaved (the order alternates from one
 * repetition to the next), each run S seconds with all N jobs at once:
 *   direct       the executor in each job's process, no broker running
 *   broker-idle  ferryd running with the model loaded, jobs infer in-process
 *   broker-shm   jobs infer through ferryd over libferry shared memory
 *   broker-grpc  the same through grpc://127.0.0.1:PORT
 *
 * ferryd serves the MLP with K KIND_CPU instances (default 1: the jobs
 * already fill the cores) and, when D >= 0, dynamic batching with
 * max_queue_delay_microseconds D.  The default is no dynamic batching
 * (D = -1): an event's 64 rows already amortise the executor's per-call
 * cost, and measured with D = 0 the batcher merged only ~1.4 requests per
 * execution while the compute per request rose (see BENCHMARKS.md).
 * ferryd waits with --wait block by default: spin and hybrid take CPU
 * from the saturating jobs.
 *
 * Printed: events/s per mode (mean and half-range of the R runs), the
 * ratio to direct (mean and half-range of the per-repetition ratios, each
 * against the direct run of the same repetition), the fraction of an
 * event's wall time spent waiting for inference, ferryd's CPU time, and
 * the batch sizes the batcher formed (ferry_model_statistics deltas).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "broker/onnx/onnx_exec.h"

#define SEC 1000000000LL
#define MAXJOBS 64
#define MAXREPS 16
#define IN_ROW 16
#define OUT_ROW 5

enum mode { M_DIRECT, M_IDLE, M_SHM, M_GRPC, NMODES };
static const char *const MODE_NAME[NMODES] = {
	"direct", "broker-idle", "broker-shm", "broker-grpc"
};

static struct {
	int jobs, batch, reps, instances, delay_us, spin_us, inline_run;
	double work_us, seconds;
	const char *models, *ferryd, *backend_dir, *csv, *fwait, *cwait;
	int modes[NMODES];
} opt = {
	.batch = 64, .reps = 3, .instances = 1, .delay_us = -1, .spin_us = -1,
	.work_us = 100, .seconds = 3, .fwait = "block", .cwait = "block",
};

/* shared between the parent and the jobs */
struct job_res {
	long events;
	double wall_s, infer_s, work_s;
	int failed;
	char err[200];
};
struct shared {
	atomic_int ready;
	double t_end;
	struct job_res res[MAXJOBS];
};

static struct shared *sh;
static double iters_per_us;
static char tmpdir[256], sock[512], grpc_addr[64];
static pid_t broker;
static volatile uint64_t sink;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ferry-bench-saturate: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ------------------------------------------------------------------ */
/* the event: deterministic work, then the inputs of one inference      */

static uint64_t work(uint64_t iters, uint64_t x)
{
	double acc = 0;

	x |= 1;
	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		acc += (double)(x & 0xffff) * 1e-5;
	}
	return x ^ (uint64_t)acc;
}

static void calibrate(void)
{
	const uint64_t n = 2000000;
	double best = 1e9;

	for (int i = 0; i < 7; i++) {
		double t0 = bu_now(), t;

		sink ^= work(n, (uint64_t)i + 1);
		t = bu_now() - t0;
		if (t < best)
			best = t;
	}
	iters_per_us = (double)n / (best * 1e6);
}

static void fill(float *x, int rows, uint64_t h)
{
	for (int i = 0; i < rows * IN_ROW; i++) {
		h ^= h << 13;
		h ^= h >> 7;
		h ^= h << 17;
		x[i] = (float)(h & 0xff) / 128.0f - 1.0f;
	}
}

/* ------------------------------------------------------------------ */
/* one job                                                              */

struct infer {
	/* direct / idle */
	struct ox_ctx *ctx;
	float *x, *y;
	/* broker */
	ferry_client *c;
	ferry_request *r;
};

static void job_setup(enum mode m, struct infer *in, struct ox_model **om)
{
	char path[PATH_MAX + 16], err[512];
	int64_t dims[2] = { opt.batch, IN_ROW };

	if (m == M_DIRECT || m == M_IDLE) {
		FILE *f;
		long n;
		void *buf;

		snprintf(path, sizeof(path), "%s/mlp.onnx", opt.models);
		if (!(f = fopen(path, "rb")))
			die("%s: %s", path, strerror(errno));
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		buf = malloc((size_t)n);
		if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
			die("cannot read %s", path);
		fclose(f);
		if (ox_model_load(buf, (size_t)n, om, err, sizeof(err)))
			die("%s: %s", path, err);
		free(buf);
		if (ox_ctx_create(*om, opt.batch, &in->ctx))
			die("ox_ctx_create");
		in->x = calloc((size_t)opt.batch * IN_ROW, sizeof(float));
		in->y = calloc((size_t)opt.batch * OUT_ROW, sizeof(float));
		if (!in->x || !in->y)
			die("out of memory");
		return;
	}
	ferry_options o = { .struct_size = sizeof(o), .client_name = "saturate" };
	ferry_model *fm;
	void *x;

	if (!strcmp(opt.cwait, "spin"))
		o.wait = FERRY_WAIT_SPIN;
	else if (!strcmp(opt.cwait, "hybrid"))
		o.wait = FERRY_WAIT_HYBRID;
	else
		o.wait = FERRY_WAIT_BLOCK;
	if (ferry_connect(&in->c, m == M_GRPC ? grpc_addr : sock, &o))
		die("connect: %s", ferry_last_error());
	if (ferry_model_get(in->c, "mlp", FERRY_LATEST, &fm) || ferry_request_new(fm, &in->r) ||
	    ferry_request_input(in->r, "x", FERRY_TYPE_FP32, dims, 2, &x))
		die("request: %s", ferry_last_error());
	in->x = x;
}

static int infer_once(enum mode m, struct infer *in, float *y0)
{
	if (m == M_DIRECT || m == M_IDLE) {
		const float *i[1] = { in->x };
		float *o[1] = { in->y };

		if (ox_run(in->ctx, opt.batch, i, o))
			return -1;
		*y0 = in->y[0];
		return 0;
	}
	const void *y;
	int rc;

	if ((rc = ferry_infer(in->c, in->r, 30 * SEC)))
		return rc;
	if (ferry_request_output(in->r, "y", NULL, NULL, NULL, &y, NULL))
		return -1;
	*y0 = *(const float *)y;
	/* inputs keep their buffers: refilled in place on the next event */
	return ferry_request_reset(in->r);
}

static void job(int id, enum mode m, int go_fd)
{
	struct infer in = { 0 };
	struct ox_model *om = NULL;
	struct job_res *res = &sh->res[id];
	uint64_t iters = (uint64_t)(opt.work_us * iters_per_us + 0.5);
	uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
	double t_inf = 0, t_work = 0, t0, t_end;
	float acc = 0, y0;
	char c;
	long ev = 0;

	job_setup(m, &in, &om);
	atomic_fetch_add(&sh->ready, 1);
	/* the parent closes the pipe's write end: everyone starts at once */
	(void)!read(go_fd, &c, 1);
	t_end = sh->t_end;
	t0 = bu_now();
	for (;;) {
		double a = bu_now(), b, e;
		int rc;

		h = work(iters, h);
		fill(in.x, opt.batch, h);
		b = bu_now();
		rc = infer_once(m, &in, &y0);
		e = bu_now();
		if (rc) {
			res->failed = 1;
			snprintf(res->err, sizeof(res->err), "%s: inference failed: %d %s",
				 MODE_NAME[m], rc, ferry_last_error());
			break;
		}
		acc += y0;
		t_work += b - a;
		t_inf += e - b;
		ev++;
		if (e >= t_end)
			break;
	}
	res->events = ev;
	res->wall_s = bu_now() - t0;
	res->infer_s = t_inf;
	res->work_s = t_work;
	sink ^= (uint64_t)acc;
	if (in.c)
		ferry_close(in.c);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* the broker                                                           */

static void write_repo(void)
{
	char path[PATH_MAX], cmd[3 * PATH_MAX], cfg[1024], db[128] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/repo/mlp/1", tmpdir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/mlp.onnx' '%s/model.onnx'", path,
		 opt.models, path);
	if (system(cmd))
		die("%s failed", cmd);
	if (opt.delay_us >= 0)
		snprintf(db, sizeof(db), "dynamic_batching { max_queue_delay_microseconds: %d }\n",
			 opt.delay_us);
	snprintf(cfg, sizeof(cfg),
		 "platform: \"onnxruntime_onnx\"\nmax_batch_size: %d\n"
		 "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ %d ] } ]\n"
		 "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ %d ] } ]\n"
		 "instance_group [ { count: %d kind: KIND_CPU } ]\n%s%s",
		 opt.batch * opt.jobs, IN_ROW, OUT_ROW, opt.instances, db,
		 opt.inline_run ? "parameters [ { key: \"ferry_inline\" value: { string_value: \"true\" } } ]\n" : "");
	snprintf(path, sizeof(path), "%s/repo/mlp/config.pbtxt", tmpdir);
	if (!(f = fopen(path, "w")) || fputs(cfg, f) < 0 || fclose(f))
		die("cannot write %s", path);
}

static void broker_on(int on)
{
	char repo[PATH_MAX], logf[PATH_MAX], port[16], spin[16];
	static char portbuf[16];

	if (!on) {
		bu_ferryd_stop(broker);
		broker = 0;
		return;
	}
	if (broker)
		return;
	snprintf(repo, sizeof(repo), "%s/repo", tmpdir);
	snprintf(logf, sizeof(logf), "%s/ferryd.log", tmpdir);
	snprintf(port, sizeof(port), "%d", bu_free_port());
	snprintf(grpc_addr, sizeof(grpc_addr), "grpc://127.0.0.1:%s", port);
	memcpy(portbuf, port, sizeof(port));
	snprintf(spin, sizeof(spin), "%d", opt.spin_us < 0 ? 50 : opt.spin_us);
	const char *av[] = {
		"--model-repository", repo, "--backend-directory", opt.backend_dir,
		"--log-level", "warn", "--wait", opt.fwait, "--spin-us", spin,
		"--grpc-port", portbuf, "--metrics-port", "0", NULL
	};
	broker = bu_ferryd_start(opt.ferryd, sock, logf, av);
}

struct bstats {
	uint64_t exec, infer, success, queue_ns, infer_ns;
	uint64_t hist[65];
};

static void stats_cb(void *arg, const ferry_model_stats *s)
{
	struct bstats *b = arg;

	b->exec += s->execution_count;
	b->infer += s->inference_count;
	b->success += s->success;
	b->queue_ns += s->queue_ns;
	b->infer_ns += s->compute_infer_ns;
	for (int i = 0; i < 65; i++)
		b->hist[i] += s->batch_executions[i];
}

static void read_stats(struct bstats *b)
{
	ferry_client *c;

	memset(b, 0, sizeof(*b));
	if (!broker)
		return;
	if (ferry_connect(&c, sock, NULL))
		die("stats connect: %s", ferry_last_error());
	if (ferry_model_statistics(c, "mlp", FERRY_LATEST, stats_cb, b) < 0)
		die("statistics: %s", ferry_last_error());
	ferry_close(c);
}

/* ------------------------------------------------------------------ */
/* one run: all jobs in one mode                                        */

struct run {
	double ev_s, infer_frac, work_us, infer_us, ferryd_cpu_s, wall_s;
	struct bstats st;
};

static struct run run_mode(enum mode m)
{
	struct run r = { 0 };
	struct bstats b0, b1;
	pid_t pids[MAXJOBS];
	int pfd[2];
	double c0 = 0, c1 = 0, t0;
	long ev = 0;
	double inf = 0, wk = 0, wall = 0;

	broker_on(m != M_DIRECT);
	memset(sh, 0, sizeof(*sh));
	if (pipe(pfd))
		die("pipe");
	for (int j = 0; j < opt.jobs; j++) {
		pids[j] = fork();
		if (pids[j] < 0)
			die("fork");
		if (pids[j] == 0) {
			close(pfd[1]);
			job(j, m, pfd[0]);
		}
	}
	close(pfd[0]);
	while (atomic_load(&sh->ready) < opt.jobs) {
		int st;

		for (int j = 0; j < opt.jobs; j++)
			if (waitpid(pids[j], &st, WNOHANG) == pids[j])
				die("job %d exited during set-up", j);
		usleep(1000);
	}
	if (m == M_SHM || m == M_GRPC)
		read_stats(&b0);
	if (broker)
		c0 = bu_proc_cpu_s(broker);
	t0 = bu_now();
	sh->t_end = t0 + opt.seconds;
	close(pfd[1]);	/* go */
	for (int j = 0; j < opt.jobs; j++) {
		int st;

		if (waitpid(pids[j], &st, 0) != pids[j] || !WIFEXITED(st) || WEXITSTATUS(st))
			die("job %d failed", j);
		if (sh->res[j].failed)
			die("job %d: %s", j, sh->res[j].err);
	}
	r.wall_s = bu_now() - t0;
	if (broker)
		c1 = bu_proc_cpu_s(broker);
	if (m == M_SHM || m == M_GRPC) {
		read_stats(&b1);
		r.st.exec = b1.exec - b0.exec;
		r.st.infer = b1.infer - b0.infer;
		r.st.success = b1.success - b0.success;
		r.st.queue_ns = b1.queue_ns - b0.queue_ns;
		r.st.infer_ns = b1.infer_ns - b0.infer_ns;
		for (int i = 0; i < 65; i++)
			r.st.hist[i] = b1.hist[i] - b0.hist[i];
	}
	for (int j = 0; j < opt.jobs; j++) {
		const struct job_res *jr = &sh->res[j];

		ev += jr->events;
		inf += jr->infer_s;
		wk += jr->work_s;
		wall += jr->wall_s;
		r.ev_s += (double)jr->events / jr->wall_s;
	}
	r.infer_frac = inf / wall;
	r.work_us = 1e6 * wk / (double)ev;
	r.infer_us = 1e6 * inf / (double)ev;
	r.ferryd_cpu_s = broker ? c1 - c0 : 0;
	return r;
}

/* ------------------------------------------------------------------ */

static void defaults(void)
{
	static char ferryd[PATH_MAX + 32], bdir[PATH_MAX + 32], mdir[PATH_MAX];
	const char *build = bu_build_dir();

	if (!opt.ferryd) {
		snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", build);
		opt.ferryd = ferryd;
	}
	if (!opt.backend_dir) {
		snprintf(bdir, sizeof(bdir), "%s/tests/onnx/.libs", build);
		opt.backend_dir = bdir;
	}
	if (!opt.models) {
		const char *src = getenv("FERRY_TOP_SRCDIR");
		char cmd[3 * PATH_MAX];

		if (!src)
			src = FERRY_SRCDIR;
		snprintf(mdir, sizeof(mdir), "%s/models", tmpdir);
		snprintf(cmd, sizeof(cmd), "'%s/.venv/bin/python' '%s/tests/onnx/gen_models.py' "
			 "'%s' >/dev/null", src, src, mdir);
		if (system(cmd))
			die("generating the models failed (%s); pass --models DIR", cmd);
		opt.models = mdir;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ferry-bench-saturate [--jobs N] [--work-us W] [--batch B] [--seconds S]\n"
		"         [--reps R] [--modes direct,broker-idle,broker-shm,broker-grpc]\n"
		"         [--instances K] [--delay-us D (-1: no dynamic batching)]\n"
		"         [--inline (ferryd runs the model on its polling thread)]\n"
		"         [--ferryd-wait spin|hybrid|block] [--spin-us N]\n"
		"         [--client-wait spin|hybrid|block] [--models DIR] [--ferryd PATH]\n"
		"         [--backend-dir DIR] [--csv FILE]\n");
	exit(2);
}

static void parse_modes(const char *s)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	memset(opt.modes, 0, sizeof(opt.modes));
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int k;

		for (k = 0; k < NMODES; k++)
			if (!strcmp(t, MODE_NAME[k]) || !strcmp(t, MODE_NAME[k] + (k ? 7 : 0)))
				break;
		if (k == NMODES)
			die("unknown mode %s", t);
		opt.modes[k] = 1;
	}
}

static void meanspread(const double *v, int n, double *mean, double *half)
{
	double s = 0, lo = INFINITY, hi = -INFINITY;

	for (int i = 0; i < n; i++) {
		s += v[i];
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	*mean = s / n;
	*half = (hi - lo) / 2;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "work-us", required_argument, NULL, 'w' },
		{ "batch", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "modes", required_argument, NULL, 'M' },
		{ "instances", required_argument, NULL, 'i' },
		{ "inline", no_argument, NULL, 'I' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ "ferryd-wait", required_argument, NULL, 'W' },
		{ "spin-us", required_argument, NULL, 'S' },
		{ "client-wait", required_argument, NULL, 'C' },
		{ "models", required_argument, NULL, 'm' },
		{ "ferryd", required_argument, NULL, 'F' },
		{ "backend-dir", required_argument, NULL, 'B' },
		{ "csv", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct run runs[NMODES][MAXREPS];
	cpu_set_t cs;
	FILE *csv = NULL;
	char cmd[400], la[128] = "?";
	int ch;

	for (int k = 0; k < NMODES; k++)
		opt.modes[k] = 1;
	if (!sched_getaffinity(0, sizeof(cs), &cs))
		opt.jobs = CPU_COUNT(&cs);
	while ((ch = getopt_long(argc, argv, "f:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'j': opt.jobs = atoi(optarg); break;
		case 'w': opt.work_us = atof(optarg); break;
		case 'b': opt.batch = atoi(optarg); break;
		case 's': opt.seconds = atof(optarg); break;
		case 'r': opt.reps = atoi(optarg); break;
		case 'M': parse_modes(optarg); break;
		case 'i': opt.instances = atoi(optarg); break;
		case 'I': opt.inline_run = 1; break;
		case 'd': opt.delay_us = atoi(optarg); break;
		case 'W': opt.fwait = optarg; break;
		case 'S': opt.spin_us = atoi(optarg); break;
		case 'C': opt.cwait = optarg; break;
		case 'm': opt.models = optarg; break;
		case 'F': opt.ferryd = optarg; break;
		case 'B': opt.backend_dir = optarg; break;
		case 'f': opt.csv = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || opt.jobs < 1 || opt.jobs > MAXJOBS || opt.batch < 1 ||
	    opt.reps < 1 || opt.reps > MAXREPS || opt.seconds <= 0 || opt.work_us < 0 ||
	    opt.instances < 1)
		usage();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-saturate-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", tmpdir);
	defaults();
	write_repo();
	if (opt.csv && !(csv = fopen(opt.csv, "w")))
		die("cannot write %s", opt.csv);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap");
	signal(SIGPIPE, SIG_IGN);
	calibrate();
	{
		FILE *f = fopen("/proc/loadavg", "r");

		if (f) {
			if (fgets(la, sizeof(la), f))
				la[strcspn(la, "\n")] = 0;
			fclose(f);
		}
	}
	printf("ferry-bench-saturate: %d jobs, %.0f us of work (%.0f iterations, calibrated) + "
	       "one MLP inference of %d rows per event; %d x %.1f s per mode, interleaved\n",
	       opt.jobs, opt.work_us, opt.work_us * iters_per_us, opt.batch, opt.reps,
	       opt.seconds);
	printf("ferryd: %d KIND_CPU instance(s), %s, --wait %s; jobs' libferry wait: %s; "
	       "loadavg at start: %s\n", opt.instances,
	       opt.delay_us < 0 ? "no dynamic batching" : "dynamic batching", opt.fwait,
	       opt.cwait, la);
	if (opt.delay_us >= 0)
		printf("dynamic batching: max_queue_delay_microseconds %d\n", opt.delay_us);
	fflush(stdout);

	for (int rep = 0; rep < opt.reps; rep++) {
		for (int i = 0; i < NMODES; i++) {
			/* odd repetitions go backwards, so no mode always runs first */
			enum mode m = (enum mode)(rep % 2 ? NMODES - 1 - i : i);

			if (!opt.modes[m])
				continue;
			runs[m][rep] = run_mode(m);
			fprintf(stderr, "%s[rep %d/%d] %-12s %10.0f events/s   ",
				isatty(2) ? "\r" : "", rep + 1, opt.reps, MODE_NAME[m],
				runs[m][rep].ev_s);
			if (!isatty(2))
				fputc('\n', stderr);
		}
	}
	broker_on(0);
	if (isatty(2))
		fprintf(stderr, "\r%60s\r", "");

	if (csv)
		fprintf(csv, "kind,mode,rep,events_s,infer_frac,work_us,infer_us,ferryd_cpu_s,"
			"wall_s,ratio,ratio_half,events_s_half|batch_rows,executions\n");
	printf("\n%-12s %12s %9s %8s %8s %9s %9s %9s %11s\n", "mode", "events/s", "+-",
	       "ratio", "+-", "work us", "infer us", "infer %", "ferryd cpu");
	for (int m = 0; m < NMODES; m++) {
		double ev[MAXREPS], ra[MAXREPS], em, eh, rm = 1, rh = 0, f = 0, wu = 0, iu = 0,
		       cpu = 0, wall = 0;

		if (!opt.modes[m])
			continue;
		for (int r = 0; r < opt.reps; r++) {
			ev[r] = runs[m][r].ev_s;
			if (opt.modes[M_DIRECT])
				ra[r] = runs[m][r].ev_s / runs[M_DIRECT][r].ev_s;
			f += runs[m][r].infer_frac / opt.reps;
			wu += runs[m][r].work_us / opt.reps;
			iu += runs[m][r].infer_us / opt.reps;
			cpu += runs[m][r].ferryd_cpu_s;
			wall += runs[m][r].wall_s;
		}
		if (csv)
			for (int r = 0; r < opt.reps; r++)
				fprintf(csv, "run,%s,%d,%.1f,%.4f,%.2f,%.2f,%.3f,%.3f,%.4f,,,\n",
					MODE_NAME[m], r, ev[r], runs[m][r].infer_frac,
					runs[m][r].work_us, runs[m][r].infer_us,
					runs[m][r].ferryd_cpu_s, runs[m][r].wall_s,
					opt.modes[M_DIRECT] ? ra[r] : 1.0);
		meanspread(ev, opt.reps, &em, &eh);
		if (opt.modes[M_DIRECT])
			meanspread(ra, opt.reps, &rm, &rh);
		printf("%-12s %12.0f %9.0f %8.3f %8.3f %9.1f %9.1f %8.1f%% %10.1f%%\n",
		       MODE_NAME[m], em, eh, rm, rh, wu, iu, 100 * f,
		       m == M_DIRECT ? 0 : 100 * cpu / wall);
		if (csv)
			fprintf(csv, "mean,%s,,%.1f,%.4f,%.2f,%.2f,%.3f,%.3f,%.4f,%.4f,%.1f,\n",
				MODE_NAME[m], em, f, wu, iu, cpu / opt.reps, wall / opt.reps, rm,
				rh, eh);
	}
	printf("(+-: half the range of the %d runs; ratio: against the direct run of the same "
	       "repetition; ferryd cpu: its CPU time over the runs' wall time, %% of one core)\n",
	       opt.reps);
	if (opt.modes[M_DIRECT]) {
		double f = 0;

		for (int r = 0; r < opt.reps; r++)
			f += runs[M_DIRECT][r].infer_frac / opt.reps;
		printf("Amdahl: inference is %.1f%% of a direct event; free inference would give "
		       "at most %.2fx events/s\n", 100 * f, 1 / (1 - f));
	}
	for (int m = M_SHM; m <= M_GRPC; m++) {
		struct bstats t = { 0 };
		int shown = 0;

		if (!opt.modes[m])
			continue;
		for (int r = 0; r < opt.reps; r++) {
			t.exec += runs[m][r].st.exec;
			t.infer += runs[m][r].st.infer;
			t.queue_ns += runs[m][r].st.queue_ns;
			t.infer_ns += runs[m][r].st.infer_ns;
			t.success += runs[m][r].st.success;
			for (int i = 0; i < 65; i++)
				t.hist[i] += runs[m][r].st.hist[i];
		}
		if (!t.exec)
			continue;
		printf("%s batches: %llu executions, %.2f requests (%.1f rows) each; queue %.1f us, "
		       "infer %.1f us per request; sizes (rows: share):", MODE_NAME[m],
		       (unsigned long long)t.exec, (double)t.infer / opt.batch / (double)t.exec,
		       (double)t.infer / (double)t.exec, t.queue_ns / 1e3 / (double)t.success,
		       t.infer_ns / 1e3 / (double)t.success);
		for (int i = 1; i < 65 && shown < 6; i++)
			if (t.hist[i] * 100 >= t.exec) {
				printf(" %d%s: %.0f%%", i, i == 64 ? "+" : "",
				       100.0 * (double)t.hist[i] / (double)t.exec);
				shown++;
			}
		printf("\n");
		if (csv) {
			for (int i = 1; i < 65; i++)
				if (t.hist[i])
					fprintf(csv, "batch,%s,,,,,,,,,,%d,%llu\n", MODE_NAME[m],
						i, (unsigned long long)t.hist[i]);
		}
	}
	{
		FILE *f = fopen("/proc/loadavg", "r");

		if (f) {
			if (fgets(la, sizeof(la), f))
				la[strcspn(la, "\n")] = 0;
			fclose(f);
		}
		printf("loadavg at end: %s\n", la);
	}
	if (csv)
		fclose(csv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
	return 0;
}
