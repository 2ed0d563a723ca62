/* SPDX-License-Identifier: MIT */
/*
 * saturate.c - ferry-bench-saturate: the portability study.  Does a broker
 * running beside CPU-saturating jobs cost them throughput?
 *
 *   ferry-bench-saturate [--jobs N | --jobs-list N1,N2,...] [--work-us W]
 *                        [--threads T] [--streams S] [--sync] [--rows A-B]
 *                        [--session thread|job] [--eager-doorbell] [--pollers P]
 *                        [--batch B] [--seconds S] [--reps R] [--modes LIST]
 *                        [--model NAME] [--instances K] [--delay-us D]
 *                        [--inline] [--gpu-instances G] [--gpu-delay-us E]
 *                        [--require-gpu] [--max-seconds T]
 *                        [--ferryd-wait spin|hybrid|block] [--spin-us N]
 *                        [--client-wait spin|hybrid|block] [--models DIR]
 *                        [--ferryd PATH] [--backend-dir DIR] [--csv FILE]
 *                        [--broker SOCKET [--broker-model NAME]]
 *
 * N jobs, each a process of T threads (default: T = min(CPUs, 4) and N =
 * CPUs / T, so N x T fills the cores), running a synthetic event loop: W
 * microseconds of deterministic CPU work per event (a xorshift chain
 * calibrated in this process first; it stands for reconstruction) and then
 * one inference on B rows (the event's candidates; --rows A-B: a random
 * count from A to B, as a per-jet or per-event tagger infers) of model NAME
 * of tests/onnx/gen_models.py (default "mlp",
 * 16-64-32-32-5; "mlp_wide", 16-512-512-512-5, is the offload study's:
 * about 125x the multiply-adds, so inference is a large share of an
 * event).  Any model with one batched input "x" and one batched output "y"
 * of one dimension each will do.  Each job runs one untimed event before
 * the start (first-call costs: page faults, a GPU's first launch).
 *
 * The jobs are shaped like CMSSW's: in the broker modes each job keeps S
 * events in flight (streams, default 2T, spread over its threads), and
 * submits each event's inference asynchronously, as ExternalWork does: the
 * thread runs another stream's work meanwhile and blocks only when every
 * one of its streams waits.  Each thread holds its own session (--session
 * job: one per job), and its libferry client uses the lazy doorbell
 * (FERRY_F_LAZY_DOORBELL; --eager-doorbell turns it off), so one wake-up
 * of ferryd carries all the requests a thread submitted since it last
 * waited.  --sync runs today's synchronous single-thread jobs instead (T =
 * 1, one event in flight, jobs = CPUs).  direct and broker-idle run each
 * event's inference in the thread itself.
 *
 * Modes, each run R times, interleaved (the order alternates from one
 * repetition to the next), each run S seconds with all N jobs at once:
 *   direct       the executor in each job's process, no broker running
 *   broker-idle  ferryd running with the model loaded, jobs infer in-process
 *   broker-shm   jobs infer through ferryd over libferry shared memory
 *   broker-grpc  the same through grpc://127.0.0.1:PORT
 *   broker-gpu   the offload study: jobs infer through shared memory with a
 *                ferryd of its own serving the model on G KIND_GPU
 *                instances on GPU 0 (default 1) with dynamic batching,
 *                max_queue_delay_microseconds E (default 0: whatever has
 *                queued while the GPU was busy; -1: no dynamic batching),
 *                so the GPU runs many jobs' requests at once
 * The default is the first four; broker-gpu runs only when named.  Before
 * measuring anything, broker-gpu starts that ferryd once
 * (--exit-on-error=false) and asks for the model: where it did not
 * load (ferryd built without CUDA, no driver or no device) it prints
 * "broker-gpu: skipped: no GPU" with ferryd's reason and the other modes
 * run alone, or, with --require-gpu, the program exits 77 (automake's
 * "skipped") at once.  No number is ever printed for a skipped mode.
 *
 * --jobs-list runs the whole comparison once per job count, in the order
 * given (e.g. 1,2,4,8,16,32: how many CPU jobs one GPU serves before the
 * gain stops rising), and ends with a table of the sweep.  --max-seconds
 * T stops a sweep before a job count that would end past T seconds from
 * the start (estimated from the count before it), so a caller with a time
 * limit gets the counts that fit; the CSV is written as each count ends.
 *
 * --broker SOCKET measures a ferryd that is already running instead of
 * starting one (modes direct, broker-idle and broker-shm; the default
 * drops broker-grpc): broker-idle and broker-shm use it as it is, serving
 * --broker-model NAME (default --model) with whatever config it loaded
 * (its max_batch_size must hold an event's rows), and the options below
 * that shape ferryd's model do not apply; direct still runs --model's file
 * of --models in the jobs.  ferry-tune's `jobs` objective measures each
 * candidate config so, loaded into one ferryd under a name of its own.
 * Its CPU time is read from ferry_server_status (cpu_ns).
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
 * For broker-gpu also, per job count: the measured gain (its ratio to
 * direct) beside the gain Amdahl's law predicts from the inference
 * fraction f measured in direct, 1 / (1 - f) (an infinitely fast
 * coprocessor and free transport), and the fraction of each broker-gpu
 * event still spent waiting for inference.  The CSV (--csv) has one "run"
 * row per run, one "mean" row per mode and one "batch" row per batch size,
 * each with the job count; a broker-gpu "mean" row carries Amdahl's gain.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "bench/grpc_util.h"
#include "broker/backends/onnx/ox_exec.h"
#ifdef SATURATE_ORT
#include "broker/backends/onnxruntime/ort_lib.h"
#endif

#define SEC 1000000000LL
#define MAXJOBS 256
#define MAXREPS 16
#define MAXCOUNTS 32	/* job counts in a --jobs-list */
#define MAXTHREADS 64	/* threads of one job */
#define MAXSTREAMS 64	/* streams (events in flight) of one thread */

enum mode { M_DIRECT, M_IDLE, M_SHM, M_GRPC, M_GPU, NMODES };
static const char *const MODE_NAME[NMODES] = {
	"direct", "broker-idle", "broker-shm", "broker-grpc", "broker-gpu"
};
/* which ferryd a mode needs: none, the KIND_CPU one or the KIND_GPU one */
enum bkind { BK_NONE, BK_CPU, BK_GPU };
static const enum bkind MODE_BROKER[NMODES] = { BK_NONE, BK_CPU, BK_CPU, BK_CPU, BK_GPU };

static struct {
	int jobs, batch, reps, instances, delay_us, spin_us, inline_run;
	int threads, streams, sync, rows_min, rows_max, pollers, session_per_thread, eager;
	int gpu_instances, gpu_delay_us, require_gpu, ncounts;
	int counts[MAXCOUNTS];
	double work_us, seconds, max_seconds;
	const char *models, *model, *ferryd, *backend_dir, *csv, *fwait, *cwait, *backend;
	const char *ext_sock, *ext_model;	/* --broker, --broker-model */
	int modes[NMODES];
} opt = {
	.batch = 64, .reps = 3, .instances = 1, .delay_us = -1, .spin_us = -1,
	.gpu_instances = 1, .gpu_delay_us = 0, .work_us = 100, .seconds = 3,
	.fwait = "block", .cwait = "block", .model = "mlp", .pollers = -1, .backend = "onnx",
	.session_per_thread = 1,
};
/* the model's row sizes (the input's and the output's one dimension) */
static int in_row, out_row;

/* shared between the parent and the jobs */
struct job_res {
	int threads;
	long events;
	double wall_s, infer_s, work_s;
	int failed;
	char err[200];
};
struct shared {
	atomic_int ready;
	double t_end;
	struct job_res res[MAXJOBS];
	/* broker-grpc's floor (grpc_floor): CPU seconds per call of a bare
	 * gRPC echo, client and server; 0 when not measured */
	double floor_client_s, floor_server_s;
	char floor_err[200];
};

static struct shared *sh;
static double iters_per_us;
static char tmpdir[256], sock[512], grpc_addr[64];
static pid_t broker;
static enum bkind broker_kind;
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
/* the event: deterministic work (bu_work), then the inputs of one       */
/* inference                                                             */

static void fill(float *x, int rows, uint64_t h)
{
	for (int i = 0; i < rows * in_row; i++) {
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
#ifdef SATURATE_ORT
	OrtSession *ort;        /* --backend onnxruntime */
	OrtMemoryInfo *mem;
#endif
	/* broker */
	ferry_client *c;
	ferry_request *r;
	int rows;               /* of the input set last */
};

/* The name ferryd serves the model under: --broker-model, else --model. */
static const char *served(void)
{
	return opt.ext_sock && opt.ext_model ? opt.ext_model : opt.model;
}

/* Rows of an event's inference: --batch, or uniform in [rows_min, rows_max]. */
static int event_rows(uint64_t *h)
{
	if (opt.rows_max <= 0)
		return opt.batch;
	*h ^= *h << 13;
	*h ^= *h >> 7;
	*h ^= *h << 17;
	return opt.rows_min + (int)(*h % (uint64_t)(opt.rows_max - opt.rows_min + 1));
}

/* Load opt.model from opt.models; free with ox_model_free(). */
static struct ox_model *load_model(void)
{
	char path[PATH_MAX + 16], err[512];
	struct ox_model *om;
	FILE *f;
	long n;
	void *buf;

	snprintf(path, sizeof(path), "%s/%s.onnx", opt.models, opt.model);
	if (!(f = fopen(path, "rb")))
		die("%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read %s", path);
	fclose(f);
	if (ox_model_load(buf, (size_t)n, &om, err, sizeof(err)))
		die("%s: %s", path, err);
	free(buf);
	return om;
}

/* The row sizes, from the model; it must be x [N, in_row] -> y [N, out_row]. */
static void model_shape(void)
{
	struct ox_model *om = load_model();
	struct ox_tensor_info i, o;

	if (ox_model_num_inputs(om) != 1 || ox_model_num_outputs(om) != 1 ||
	    ox_model_input(om, 0, &i) || ox_model_output(om, 0, &o) || strcmp(i.name, "x") ||
	    strcmp(o.name, "y") || !i.batched || !o.batched || i.rank != 2 || o.rank != 2)
		die("model %s: want one input x [N, n] and one output y [N, m]", opt.model);
	in_row = (int)i.dims[1];
	out_row = (int)o.dims[1];
	ox_model_free(om);
}

static int max_rows(void)
{
	return opt.rows_max > 0 ? opt.rows_max : opt.batch;
}

/* The job's connection to its broker (broker modes), shared by its threads. */
static ferry_client *job_connect(enum mode m)
{
	ferry_options o = { .struct_size = sizeof(o), .client_name = "saturate" };
	ferry_client *c;

	if (!strcmp(opt.cwait, "spin"))
		o.wait = FERRY_WAIT_SPIN;
	else if (!strcmp(opt.cwait, "hybrid"))
		o.wait = FERRY_WAIT_HYBRID;
	else
		o.wait = FERRY_WAIT_BLOCK;
	/* every stream of every thread in flight at once */
	o.queue_depth = (uint32_t)(opt.streams > 64 ? opt.streams : 64);
	/* asynchronous jobs wake the broker once per wait, not per request */
	if (!opt.sync && !opt.eager)
		o.flags |= FERRY_F_LAZY_DOORBELL;
	if (ferry_connect(&c, m == M_GRPC ? grpc_addr : sock, &o))
		die("connect: %s", ferry_last_error());
	return c;
}

/* Set the input for @rows rows (a request's buffer is reused while the
 * shape stays). */
static void set_rows(struct infer *in, int rows)
{
	int64_t dims[2] = { rows, in_row };
	void *x;

	if (in->rows == rows)
		return;
	if (ferry_request_input(in->r, "x", FERRY_TYPE_FP32, dims, 2, &x))
		die("request input: %s", ferry_last_error());
	in->x = x;
	in->rows = rows;
}

#ifdef SATURATE_ORT
static struct ort_lib ort;
static OrtEnv *ort_env;

static void ort_check(OrtStatus *st, const char *what)
{
	if (st)
		die("onnxruntime: %s: %s", what, ort.api->GetErrorMessage(st));
}

/* ONNX Runtime in the job, with the settings of ferryd's backend: one
 * intra-op and one inter-op thread, no spinning, every graph optimisation. */
static void ort_setup(struct infer *in)
{
	const OrtApi *api;
	OrtSessionOptions *so;
	char path[PATH_MAX + 16], err[512];

	if (!ort.api && ort_lib_open(NULL, &ort, err, sizeof(err)))
		die("%s", err);
	api = ort.api;
	if (!ort_env)
		ort_check(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "saturate", &ort_env), "env");
	snprintf(path, sizeof(path), "%s/%s.onnx", opt.models, opt.model);
	ort_check(api->CreateSessionOptions(&so), "session options");
	ort_check(api->SetIntraOpNumThreads(so, 1), "intra");
	ort_check(api->SetInterOpNumThreads(so, 1), "inter");
	ort_check(api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "level");
	ort_check(api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"), "spin");
	ort_check(api->AddSessionConfigEntry(so, "session.inter_op.allow_spinning", "0"), "spin");
	ort_check(api->CreateSession(ort_env, path, so, &in->ort), path);
	api->ReleaseSessionOptions(so);
	ort_check(api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &in->mem), "mem");
}

/* One inference, as the backend runs a lone request: OrtValues over the
 * input and output buffers, Run, release. */
static int ort_run(struct infer *in, int rows)
{
	const OrtApi *api = ort.api;
	int64_t xd[2] = { rows, in_row }, yd[2] = { rows, out_row };
	const char *xn[1] = { "x" }, *yn[1] = { "y" };
	OrtValue *x, *y;
	OrtStatus *st;

	ort_check(api->CreateTensorWithDataAsOrtValue(in->mem, in->x, sizeof(float) * rows * in_row,
						     xd, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &x),
		  "input");
	ort_check(api->CreateTensorWithDataAsOrtValue(in->mem, in->y, sizeof(float) * rows * out_row,
						     yd, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &y),
		  "output");
	st = api->Run(in->ort, NULL, xn, (const OrtValue *const *)&x, 1, yn, 1, &y);
	api->ReleaseValue(x);
	api->ReleaseValue(y);
	if (st) {
		api->ReleaseStatus(st);
		return -1;
	}
	return 0;
}
#endif

/* Whether direct and broker-idle run ONNX Runtime instead of the native
 * executor. */
static bool direct_ort(void)
{
	return !strcmp(opt.backend, "onnxruntime");
}

static void job_setup(enum mode m, ferry_client *c, struct infer *in, struct ox_model **om)
{
	if ((m == M_DIRECT || m == M_IDLE) && direct_ort()) {
#ifdef SATURATE_ORT
		in->x = calloc((size_t)max_rows() * in_row, sizeof(float));
		in->y = calloc((size_t)max_rows() * out_row, sizeof(float));
		if (!in->x || !in->y)
			die("out of memory");
		ort_setup(in);
		return;
#else
		die("--backend onnxruntime: built without ONNX Runtime (configure --with-onnxruntime)");
#endif
	}
	if (m == M_DIRECT || m == M_IDLE) {
		*om = load_model();
		if (ox_ctx_create(*om, max_rows(), &in->ctx))
			die("ox_ctx_create");
		in->x = calloc((size_t)max_rows() * in_row, sizeof(float));
		in->y = calloc((size_t)max_rows() * out_row, sizeof(float));
		if (!in->x || !in->y)
			die("out of memory");
		return;
	}
	ferry_model *fm;

	in->c = c;
	if (ferry_model_get(in->c, served(), FERRY_LATEST, &fm) || ferry_request_new(fm, &in->r))
		die("request: %s", ferry_last_error());
	set_rows(in, opt.batch);
}

/* Read a completed request's first output value and make it reusable. */
static int infer_finish(struct infer *in, float *y0)
{
	const void *y;
	int rc = ferry_request_status(in->r);

	if (rc)
		return rc;
	if (ferry_request_output(in->r, "y", NULL, NULL, NULL, &y, NULL))
		return -1;
	*y0 = *(const float *)y;
	/* inputs keep their buffers: refilled in place on the next event */
	return ferry_request_reset(in->r);
}

static int infer_once(enum mode m, struct infer *in, int rows, float *y0)
{
	if (m == M_DIRECT || m == M_IDLE) {
		const float *i[1] = { in->x };
		float *o[1] = { in->y };

#ifdef SATURATE_ORT
		if (in->ort) {
			if (ort_run(in, rows))
				return -1;
			*y0 = in->y[0];
			return 0;
		}
#endif
		if (ox_run(in->ctx, rows, i, o))
			return -1;
		*y0 = in->y[0];
		return 0;
	}
	int rc;

	if ((rc = ferry_infer(in->c, in->r, 30 * SEC)))
		return rc;
	return infer_finish(in, y0);
}

/* One thread of a job: its share of the job's streams (events in flight). */
struct jthread {
	int id;                 /* job id * MAXTHREADS + thread */
	enum mode m;
	ferry_client *c;        /* the job's (broker modes) */
	int nstreams;
	struct infer in[MAXSTREAMS];
	pthread_t thr;
	/* results */
	long events;
	double wall_s, wait_s, work_s;
	float acc;
	int failed;
	char err[200];
};

/* The event's own work (reconstruction) and the rows of its inference. */
static int event_work(struct infer *in, uint64_t iters, uint64_t *h)
{
	int rows = event_rows(h);

	*h = bu_work(iters, *h);
	if (in->r)
		set_rows(in, rows);
	fill(in->x, rows, *h);
	return rows;
}

static void jt_fail(struct jthread *t, const char *what, int rc)
{
	t->failed = 1;
	snprintf(t->err, sizeof(t->err), "%s: %s failed: %d %s", MODE_NAME[t->m], what, rc,
		 ferry_last_error());
}

/*
 * Synchronous events (direct, broker-idle, --sync): work, then one
 * inference that the thread waits for.  Asynchronous (the broker modes):
 * each stream runs work, submits its inference and is put aside, on the
 * model of CMSSW's ExternalWork; the thread meanwhile runs the other
 * streams' work and blocks only when every one of its streams waits.
 */
static void *jthread_main(void *arg)
{
	struct jthread *t = arg;
	uint64_t iters = (uint64_t)(opt.work_us * iters_per_us + 0.5);
	uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(t->id + 1);
	bool async = !opt.sync && t->m != M_DIRECT && t->m != M_IDLE;
	double t_end = sh->t_end, t0 = bu_now();
	bool waiting[MAXSTREAMS] = { false };
	float y0;
	int rc;

	for (;;) {
		if (!async) {
			double a = bu_now(), b, e;
			int rows = event_work(&t->in[0], iters, &h);

			b = bu_now();
			if ((rc = infer_once(t->m, &t->in[0], rows, &y0))) {
				jt_fail(t, "inference", rc);
				break;
			}
			e = bu_now();
			t->acc += y0;
			t->work_s += b - a;
			t->wait_s += e - b;
			t->events++;
			if (e >= t_end)
				break;
			continue;
		}
		bool progressed = false, done = false;

		for (int k = 0; k < t->nstreams; k++) {
			struct infer *in = &t->in[k];

			if (waiting[k]) {
				if (!ferry_request_done(in->r))
					continue;
				if ((rc = infer_finish(in, &y0))) {
					jt_fail(t, "inference", rc);
					return NULL;
				}
				waiting[k] = false;
				t->acc += y0;
				t->events++;
				progressed = true;
			}
			if (bu_now() >= t_end) {
				done = true;
				continue;
			}
			double a = bu_now();
			event_work(in, iters, &h);
			t->work_s += bu_now() - a;
			if ((rc = ferry_infer_async(t->c, in->r, NULL, NULL))) {
				jt_fail(t, "submit", rc);
				return NULL;
			}
			waiting[k] = true;
			progressed = true;
		}
		bool any = false;
		for (int k = 0; k < t->nstreams; k++)
			any |= waiting[k];
		if (done && !any)
			break;
		/* Reap what completed; block only when every stream waits. */
		double a = bu_now();
		if ((rc = ferry_poll(t->c, progressed ? 0 : 1, progressed ? 0 : 30 * SEC)) < 0) {
			jt_fail(t, "poll", rc);
			return NULL;
		}
		if (!progressed)
			t->wait_s += bu_now() - a;
	}
	t->wall_s = bu_now() - t0;
	return NULL;
}

static void job(int id, enum mode m, int go_fd)
{
	static struct jthread th[MAXTHREADS];
	struct ox_model *om = NULL;
	struct job_res *res = &sh->res[id];
	bool async = !opt.sync && m != M_DIRECT && m != M_IDLE;
	int per = async ? opt.streams / opt.threads : 1;
	ferry_client *c = NULL;
	char ch;

	/* One session per job, or per thread (--session thread: each thread
	 * its own rings, served on its own core) */
	if (m != M_DIRECT && m != M_IDLE && !opt.session_per_thread)
		c = job_connect(m);
	for (int i = 0; i < opt.threads; i++) {
		if (m != M_DIRECT && m != M_IDLE && opt.session_per_thread)
			c = job_connect(m);
		struct jthread *t = &th[i];
		uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
		float y0;
		int rc0;

		t->id = id * MAXTHREADS + i;
		t->m = m;
		t->c = c;
		/* the job's streams, spread over its threads */
		t->nstreams = per + (async && i < opt.streams % opt.threads);
		for (int k = 0; k < t->nstreams; k++) {
			job_setup(m, c, &t->in[k], &om);
			/* one untimed event: first-call costs stay out of the
			 * measurement */
			int rows = event_work(&t->in[k], 0, &h);
			if ((rc0 = infer_once(m, &t->in[k], rows, &y0))) {
				res->failed = 1;
				snprintf(res->err, sizeof(res->err),
					 "%s: first inference failed: %d %s", MODE_NAME[m], rc0,
					 ferry_last_error());
				_exit(1);
			}
		}
	}
	atomic_fetch_add(&sh->ready, 1);
	/* the parent closes the pipe's write end: everyone starts at once */
	(void)!read(go_fd, &ch, 1);
	for (int i = 0; i < opt.threads; i++)
		if (pthread_create(&th[i].thr, NULL, jthread_main, &th[i]))
			die("pthread_create");
	for (int i = 0; i < opt.threads; i++) {
		struct jthread *t = &th[i];

		pthread_join(t->thr, NULL);
		if (t->failed && !res->failed) {
			res->failed = 1;
			snprintf(res->err, sizeof(res->err), "%s", t->err);
		}
		res->events += t->events;
		/* the job's wall time: its slowest thread's */
		if (t->wall_s > res->wall_s)
			res->wall_s = t->wall_s;
		res->infer_s += t->wait_s;
		res->work_s += t->work_s;
		sink ^= (uint64_t)t->acc;
		if (t->c && opt.session_per_thread)
			ferry_close(t->c);
	}
	res->threads = opt.threads;
	if (c && !opt.session_per_thread)
		ferry_close(c);
	_exit(res->failed);
}

/* ------------------------------------------------------------------ */
/* the broker                                                           */

/* One model directory, repo/NAME/{1/model.onnx,config.pbtxt}; max_batch_size
 * holds every job's rows at once. */
static void write_model(const char *repo, const char *group, int delay_us, const char *extra)
{
	char path[PATH_MAX], cmd[3 * PATH_MAX], cfg[1024], db[128] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s/1", tmpdir, repo, opt.model);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/%s.onnx' '%s/model.onnx'", path,
		 opt.models, opt.model, path);
	if (system(cmd))
		die("%s failed", cmd);
	if (delay_us >= 0)
		snprintf(db, sizeof(db), "dynamic_batching { max_queue_delay_microseconds: %d }\n",
			 delay_us);
	snprintf(cfg, sizeof(cfg),
		 "backend: \"%s\"\nmax_batch_size: %d\n"
		 "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ %d ] } ]\n"
		 "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ %d ] } ]\n"
		 "instance_group [ %s ]\n%s%s",
		 opt.backend, max_rows() * opt.jobs * (opt.sync ? 1 : opt.streams), in_row, out_row,
		 group, db,
		 extra);
	snprintf(path, sizeof(path), "%s/%s/%s/config.pbtxt", tmpdir, repo, opt.model);
	if (!(f = fopen(path, "w")) || fputs(cfg, f) < 0 || fclose(f))
		die("cannot write %s", path);
}

/* repo/ for the KIND_CPU ferryd, repo-gpu/ for broker-gpu's; rewritten for
 * each job count (max_batch_size follows it) */
static void write_repo(void)
{
	char group[128];

	snprintf(group, sizeof(group), "{ count: %d kind: KIND_CPU }", opt.instances);
	write_model("repo", group, opt.delay_us, opt.inline_run ?
		    "parameters [ { key: \"ferry_inline\" value: { string_value: \"true\" } } ]\n" :
		    "");
	snprintf(group, sizeof(group), "{ count: %d kind: KIND_GPU gpus: [ 0 ] }",
		 opt.gpu_instances);
	write_model("repo-gpu", group, opt.gpu_delay_us, "");
}

/* Have the ferryd of @kind running (BK_NONE: none); a ferryd of another
 * kind is stopped first.  The KIND_GPU one starts with
 * --exit-on-error=false, so that a model that cannot load on a GPU
 * leaves it running without the model (gpu_probe() asks) instead of
 * stopping it. */
static void broker_on(enum bkind kind)
{
	char repo[PATH_MAX], logf[PATH_MAX], port[16], spin[16];
	static char portbuf[16];

	if (opt.ext_sock) {
		/* --broker: it runs already, and stays */
		broker_kind = kind;
		return;
	}
	if (broker && broker_kind == kind)
		return;
	if (broker) {
		bu_ferryd_stop(broker);
		broker = 0;
	}
	broker_kind = kind;
	if (kind == BK_NONE)
		return;
	snprintf(repo, sizeof(repo), "%s/%s", tmpdir, kind == BK_GPU ? "repo-gpu" : "repo");
	snprintf(logf, sizeof(logf), "%s/ferryd.log", tmpdir);
	snprintf(port, sizeof(port), "%d", bu_free_port());
	snprintf(grpc_addr, sizeof(grpc_addr), "grpc://127.0.0.1:%s", port);
	memcpy(portbuf, port, sizeof(port));
	static char pollers[16];
	snprintf(spin, sizeof(spin), "%d", opt.spin_us < 0 ? 50 : opt.spin_us);
	snprintf(pollers, sizeof(pollers), "%d", opt.pollers);
	const char *av[24] = {
		"--model-repository", repo,
		"--log-level", "warn", "--wait", opt.fwait, "--spin-us", spin,
		"--grpc-port", portbuf, "--metrics-port", "0",
	};
	int n = 12;
	/* ferryd's own default directories find the plugins it installs */
	if (opt.backend_dir) {
		av[n++] = "--backend-directory";
		av[n++] = opt.backend_dir;
	}
	if (kind == BK_GPU)
		av[n++] = "--exit-on-error=false";
	/* --pollers only when asked: a ferryd built before them (--ferryd)
	 * still runs */
	if (opt.pollers >= 0) {
		av[n++] = "--pollers";
		av[n++] = pollers;
	}
	av[n] = NULL;
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

/* ferryd's CPU time so far, in seconds: from /proc for the one we started,
 * from its status (ferry_server_status's cpu_ns) for --broker's. */
static double broker_cpu_s(void)
{
	ferry_server_status *st;
	ferry_client *c;
	double s = 0;

	if (broker)
		return bu_proc_cpu_s(broker);
	if (ferry_connect_admin(&c, sock))
		die("status connect: %s", ferry_last_error());
	if (ferry_server_status_get(c, &st))
		die("status: %s", ferry_last_error());
	if (st->cpu_ns > 0)
		s = (double)st->cpu_ns / 1e9;
	ferry_server_status_free(st);
	ferry_close(c);
	return s;
}

static void read_stats(struct bstats *b)
{
	ferry_client *c;

	memset(b, 0, sizeof(*b));
	if (!broker && !opt.ext_sock)
		return;
	if (ferry_connect(&c, sock, NULL))
		die("stats connect: %s", ferry_last_error());
	if (ferry_model_statistics(c, served(), FERRY_LATEST, stats_cb, b) < 0)
		die("statistics: %s", ferry_last_error());
	ferry_close(c);
}

/*
 * gpu_probe - can broker-gpu run here?  Starts the KIND_GPU ferryd (for the
 * job count of the repository written last) and asks it for the model.
 * Returns 1 when it serves it; else 0 with @why set to ferry's error (and
 * ferryd's log lines about the GPU when that error does not say).  Stops
 * that ferryd either way.
 */
static int gpu_probe(char *why, size_t len)
{
	char logf[PATH_MAX], line[512];
	ferry_client *c;
	ferry_model *fm;
	size_t n;
	int ok;
	FILE *f;

	broker_on(BK_GPU);
	if (ferry_connect(&c, sock, NULL))
		die("probe connect: %s", ferry_last_error());
	ok = ferry_model_get(c, opt.model, FERRY_LATEST, &fm) == 0;
	n = (size_t)snprintf(why, len, "%s", ok ? "" : ferry_last_error());
	ferry_close(c);
	broker_on(BK_NONE);
	if (ok)
		return 1;
	snprintf(logf, sizeof(logf), "%s/ferryd.log", tmpdir);
	/* ferry's message names the reason when the model failed to load; if
	 * it does not, ferryd's log lines about the GPU do */
	if (strstr(why, "GPU") || strstr(why, "CUDA") || !(f = fopen(logf, "r")))
		return 0;
	while (fgets(line, sizeof(line), f) && n + 8 < len) {
		line[strcspn(line, "\n")] = 0;
		if (strstr(line, "GPU") || strstr(line, "CUDA") || strstr(line, "cuda"))
			n += (size_t)snprintf(why + n, len - n, "\n    ferryd: %s", line);
	}
	fclose(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* broker-grpc's floor                                                  */

/*
 * grpc_floor - the CPU a gRPC call costs with no ferry in it: a bare
 * echo server on gRPC core (bench/grpc_util.c's gu_echo_serve, ferryd's
 * thread layout, answering with a pre-packed response of the model's
 * output) and a client making the event's ModelInfer request (the same
 * bytes on the wire), each in a process of its own (gRPC does not cross
 * fork).  Its client and server CPU per call bound what any gRPC server
 * can give these jobs: at best (W + I) / (W + I + client + server) of
 * direct, with W and I the work and inference of a direct event.
 */
static double floor_client_s, floor_server_s;

static void grpc_floor(void)
{
	enum { WARM = 200, CALLS = 3000 };
	int rows = max_rows(), port = bu_free_port();
	int64_t xs[2] = { rows, in_row }, ys[2] = { rows, out_row };
	float *x = calloc((size_t)rows * in_row, sizeof(float));
	float *y = calloc((size_t)rows * out_row, sizeof(float));
	uint8_t *reply;
	size_t rlen;
	pid_t srv, cli;
	int st;

	if (!x || !y || gu_infer_response_bytes(opt.model, "y", "FP32", ys, 2, y,
						sizeof(float) * rows * out_row, &reply, &rlen))
		die("grpc floor: cannot pack the reply");
	if ((srv = fork()) < 0)
		die("fork");
	if (srv == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		gu_echo_serve(port, 4, reply, rlen);
		_exit(1);
	}
	if ((cli = fork()) < 0)
		die("fork");
	if (cli == 0) {
		char target[64];
		struct gu_tensor in = { .name = "x", .datatype = "FP32", .shape = xs, .ndims = 2,
					.data = x, .bytes = sizeof(float) * rows * in_row };
		struct gu_tensor out = { .name = "y" };
		struct gu_chan *c;
		struct gu_infer *q;
		struct rusage r0, r1;
		double s0, s1;

		snprintf(target, sizeof(target), "127.0.0.1:%d", port);
		if (!(c = gu_open(target)) || !(q = gu_infer_new(opt.model, &in, 1, &out, 1))) {
			snprintf(sh->floor_err, sizeof(sh->floor_err), "%s", gu_error());
			_exit(1);
		}
		for (int i = 0; i < WARM; i++)
			if (gu_infer(c, q))
				goto fail;
		getrusage(RUSAGE_SELF, &r0);
		s0 = bu_proc_cpu_s(srv);
		for (int i = 0; i < CALLS; i++)
			if (gu_infer(c, q))
				goto fail;
		getrusage(RUSAGE_SELF, &r1);
		s1 = bu_proc_cpu_s(srv);
		sh->floor_client_s = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec +
				      r1.ru_stime.tv_sec - r0.ru_stime.tv_sec +
				      (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec +
				       r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6) / CALLS;
		sh->floor_server_s = (s1 - s0) / CALLS;
		_exit(0);
fail:
		snprintf(sh->floor_err, sizeof(sh->floor_err), "call: %s", gu_error());
		_exit(1);
	}
	waitpid(cli, &st, 0);
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		printf("broker-grpc floor: not measured (%s)\n",
		       sh->floor_err[0] ? sh->floor_err : "the client failed");
	/* the runs reuse sh */
	floor_client_s = sh->floor_client_s;
	floor_server_s = sh->floor_server_s;
	free(x);
	free(y);
	free(reply);
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

	broker_on(MODE_BROKER[m]);
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
				die("job %d exited during set-up%s%s", j,
				    sh->res[j].failed ? ": " : "", sh->res[j].err);
		usleep(1000);
	}
	if (m == M_SHM || m == M_GRPC || m == M_GPU)
		read_stats(&b0);
	if (broker || opt.ext_sock)
		c0 = broker_cpu_s();
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
	if (broker || opt.ext_sock)
		c1 = broker_cpu_s();
	if (m == M_SHM || m == M_GRPC || m == M_GPU) {
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
		/* thread-seconds: waits and work are summed over threads */
		wall += jr->wall_s * jr->threads;
		r.ev_s += (double)jr->events / jr->wall_s;
	}
	r.infer_frac = inf / wall;
	r.work_us = 1e6 * wk / (double)ev;
	r.infer_us = 1e6 * inf / (double)ev;
	r.ferryd_cpu_s = broker || opt.ext_sock ? c1 - c0 : 0;
	return r;
}

/* ------------------------------------------------------------------ */

static void defaults(void)
{
	static char ferryd[PATH_MAX + 32], mdir[PATH_MAX];
	const char *build = bu_build_dir();

	if (!opt.ferryd) {
		snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", build);
		opt.ferryd = ferryd;
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
		"usage: ferry-bench-saturate [--jobs N | --jobs-list N1,N2,...] [--work-us W]\n"
		"         [--batch B] [--seconds S] [--reps R]\n"
		"         [--modes direct,broker-idle,broker-shm,broker-grpc,broker-gpu]\n"
		"         [--model NAME (default mlp; mlp_wide for the offload study)]\n"
		"         [--instances K] [--delay-us D (-1: no dynamic batching)]\n"
		"         [--inline (ferryd runs the model on its polling thread)]\n"
		"         [--gpu-instances G] [--gpu-delay-us E (broker-gpu; -1: no batching)]\n"
		"         [--require-gpu (exit 77 when broker-gpu cannot run)]\n"
		"         [--max-seconds T (stop a sweep before a count that ends past T)]\n"
		"         [--ferryd-wait spin|hybrid|block] [--spin-us N]\n"
		"         [--client-wait spin|hybrid|block] [--models DIR] [--ferryd PATH]\n"
		"         [--backend-dir DIR] [--csv FILE]\n"
		"         [--threads T] [--streams S] [--sync] [--rows A-B]\n"
		"         [--session thread|job] [--eager-doorbell] [--pollers P (ferryd's)]\n"
		"         [--backend onnx|onnxruntime (ferryd's; default onnx, the native executor)]\n"
		"         [--broker SOCKET (a running ferryd) [--broker-model NAME]]\n");
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

static void parse_counts(const char *s)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	opt.ncounts = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int n = atoi(t);

		if (n < 1 || n > MAXJOBS || opt.ncounts == MAXCOUNTS)
			die("--jobs-list: %s: want 1 to %d counts of 1 to %d jobs", s, MAXCOUNTS,
			    MAXJOBS);
		opt.counts[opt.ncounts++] = n;
	}
	if (!opt.ncounts)
		die("--jobs-list: empty");
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

static void loadavg(char *la, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(la, len, "?");
	if (f) {
		if (fgets(la, (int)len, f))
			la[strcspn(la, "\n")] = 0;
		fclose(f);
	}
}

/* one job count's means, for the sweep's table */
struct summary {
	int jobs;
	double ev[NMODES], ev_half[NMODES], ratio[NMODES], ratio_half[NMODES];
	double frac[NMODES], cpu[NMODES], req_exec[NMODES];
};

static struct run runs[NMODES][MAXREPS];

/* Print (and write to csv) the table of one job count's runs. */
static void report(FILE *csv, struct summary *sum)
{
	double f_direct = 0;

	memset(sum, 0, sizeof(*sum));
	sum->jobs = opt.jobs;
	if (opt.modes[M_DIRECT])
		for (int r = 0; r < opt.reps; r++)
			f_direct += runs[M_DIRECT][r].infer_frac / opt.reps;
	printf("\n%d jobs:\n%-12s %12s %9s %8s %8s %9s %9s %9s %11s\n", opt.jobs, "mode",
	       "events/s", "+-", "ratio", "+-", "work us", "infer us", "infer %", "ferryd cpu");
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
				fprintf(csv, "run,%s,%d,%.1f,%.4f,%.2f,%.2f,%.3f,%.3f,%.4f,,,,%d,\n",
					MODE_NAME[m], r, ev[r], runs[m][r].infer_frac,
					runs[m][r].work_us, runs[m][r].infer_us,
					runs[m][r].ferryd_cpu_s, runs[m][r].wall_s,
					opt.modes[M_DIRECT] ? ra[r] : 1.0, opt.jobs);
		meanspread(ev, opt.reps, &em, &eh);
		if (opt.modes[M_DIRECT])
			meanspread(ra, opt.reps, &rm, &rh);
		printf("%-12s %12.0f %9.0f %8.3f %8.3f %9.1f %9.1f %8.1f%% %10.1f%%\n",
		       MODE_NAME[m], em, eh, rm, rh, wu, iu, 100 * f,
		       m == M_DIRECT ? 0 : 100 * cpu / wall);
		if (csv) {
			fprintf(csv, "mean,%s,,%.1f,%.4f,%.2f,%.2f,%.3f,%.3f,%.4f,%.4f,%.1f,,%d,",
				MODE_NAME[m], em, f, wu, iu, cpu / opt.reps, wall / opt.reps, rm,
				rh, eh, opt.jobs);
			if (m == M_GPU && opt.modes[M_DIRECT])
				fprintf(csv, "%.4f", 1 / (1 - f_direct));
			fputc('\n', csv);
		}
		sum->ev[m] = em;
		sum->ev_half[m] = eh;
		sum->ratio[m] = rm;
		sum->ratio_half[m] = rh;
		sum->frac[m] = f;
		sum->cpu[m] = wall > 0 ? cpu / wall : 0;
	}
	printf("(+-: half the range of the %d runs; ratio: against the direct run of the same "
	       "repetition; ferryd cpu: its CPU time over the runs' wall time, %% of one core)\n",
	       opt.reps);
	if (opt.modes[M_DIRECT])
		printf("Amdahl: inference is %.1f%% of a direct event; free inference would give "
		       "at most %.2fx events/s\n", 100 * f_direct, 1 / (1 - f_direct));
	if (opt.modes[M_GRPC] && opt.modes[M_DIRECT] && floor_client_s > 0) {
		double w = 0, i = 0;

		for (int r = 0; r < opt.reps; r++) {
			w += runs[M_DIRECT][r].work_us / opt.reps;
			i += runs[M_DIRECT][r].infer_us / opt.reps;
		}
		double c = 1e6 * floor_client_s, v = 1e6 * floor_server_s;
		printf("broker-grpc floor: a bare gRPC echo (gRPC core, no ferry) of this event's "
		       "request costs %.1f us of client CPU + %.1f us of server CPU per call; no "
		       "gRPC server can give these jobs more than (W + I) / (W + I + %.1f) = %.3f "
		       "of direct (W %.1f us, I %.1f us from direct)\n", c, v, c + v,
		       (w + i) / (w + i + c + v), w, i);
	}
	if (opt.modes[M_GPU] && opt.modes[M_DIRECT])
		printf("broker-gpu: gain %.2fx +- %.2f measured against direct, %.2fx predicted by "
		       "Amdahl (1 / (1 - f), f = %.1f%% in direct); %.1f%% of a broker-gpu event "
		       "still waits on inference\n", sum->ratio[M_GPU], sum->ratio_half[M_GPU],
		       1 / (1 - f_direct), 100 * f_direct, 100 * sum->frac[M_GPU]);
	for (int m = M_SHM; m < NMODES; m++) {
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
		sum->req_exec[m] = (double)t.success / (double)t.exec;
		printf("%s batches: %llu executions, %.2f requests (%.1f rows) each; queue %.1f us, "
		       "infer %.1f us per request; sizes (rows: share):", MODE_NAME[m],
		       (unsigned long long)t.exec, sum->req_exec[m],
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
					fprintf(csv, "batch,%s,,,,,,,,,,%d,%llu,%d,\n",
						MODE_NAME[m], i, (unsigned long long)t.hist[i],
						opt.jobs);
		}
	}
	if (csv)
		fflush(csv);
	fflush(stdout);
}

/* The sweep's table: one line per job count. */
static void report_sweep(const struct summary *sum, int n)
{
	int best = 0;

	printf("\nsweep: events/s of all jobs (ratio to direct at the same job count)\n%6s",
	       "jobs");
	for (int m = 0; m < NMODES; m++)
		if (opt.modes[m])
			printf(" %20s", MODE_NAME[m]);
	printf("\n");
	for (int k = 0; k < n; k++) {
		printf("%6d", sum[k].jobs);
		for (int m = 0; m < NMODES; m++)
			if (opt.modes[m])
				printf(" %11.0f (%5.2fx)", sum[k].ev[m], sum[k].ratio[m]);
		printf("\n");
	}
	if (!opt.modes[M_GPU] || !opt.modes[M_DIRECT])
		return;
	printf("\noffload: broker-gpu against direct at each job count\n"
	       "%6s %12s %12s %8s %6s %8s %10s %10s %11s %9s\n", "jobs", "direct ev/s",
	       "gpu ev/s", "gain", "+-", "Amdahl", "f direct", "gpu wait", "ferryd cpu",
	       "req/exec");
	for (int k = 0; k < n; k++) {
		const struct summary *s = &sum[k];

		printf("%6d %12.0f %12.0f %7.2fx %6.2f %7.2fx %9.1f%% %9.1f%% %10.1f%% %9.2f\n",
		       s->jobs, s->ev[M_DIRECT], s->ev[M_GPU], s->ratio[M_GPU],
		       s->ratio_half[M_GPU], 1 / (1 - s->frac[M_DIRECT]), 100 * s->frac[M_DIRECT],
		       100 * s->frac[M_GPU], 100 * s->cpu[M_GPU], s->req_exec[M_GPU]);
		if (s->ev[M_GPU] > sum[best].ev[M_GPU])
			best = k;
	}
	printf("(gain: broker-gpu events/s / direct events/s, per repetition; Amdahl: "
	       "1 / (1 - f) with f the inference fraction of direct; gpu wait: the fraction "
	       "of a broker-gpu event spent waiting on inference)\n");
	printf("broker-gpu's events/s peak at %d jobs: %.0f events/s, %.2fx direct at that "
	       "count\n", sum[best].jobs, sum[best].ev[M_GPU], sum[best].ratio[M_GPU]);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "jobs-list", required_argument, NULL, 'L' },
		{ "work-us", required_argument, NULL, 'w' },
		{ "batch", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "modes", required_argument, NULL, 'M' },
		{ "model", required_argument, NULL, 'N' },
		{ "instances", required_argument, NULL, 'i' },
		{ "inline", no_argument, NULL, 'I' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ "gpu-instances", required_argument, NULL, 'g' },
		{ "gpu-delay-us", required_argument, NULL, 'D' },
		{ "require-gpu", no_argument, NULL, 'R' },
		{ "max-seconds", required_argument, NULL, 'T' },
		{ "ferryd-wait", required_argument, NULL, 'W' },
		{ "spin-us", required_argument, NULL, 'S' },
		{ "client-wait", required_argument, NULL, 'C' },
		{ "models", required_argument, NULL, 'm' },
		{ "ferryd", required_argument, NULL, 'F' },
		{ "backend-dir", required_argument, NULL, 'B' },
		{ "csv", required_argument, NULL, 'f' },
		{ "threads", required_argument, NULL, 't' },
		{ "streams", required_argument, NULL, 'e' },
		{ "sync", no_argument, NULL, 'y' },
		{ "rows", required_argument, NULL, 'o' },
		{ "pollers", required_argument, NULL, 'P' },
		{ "backend", required_argument, NULL, 'k' },
		{ "session", required_argument, NULL, 'x' },
		{ "eager-doorbell", no_argument, NULL, 'E' },
		{ "broker", required_argument, NULL, 'U' },
		{ "broker-model", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct summary sum[MAXCOUNTS];
	cpu_set_t cs;
	FILE *csv = NULL;
	char cmd[400], la[128], why[2048];
	double t_start = bu_now(), t_count = 0;
	int ch, ndone = 0, maxjobs = 0;

	int cores = 1, jobs_given = 0, modes_given = 0;

	for (int k = 0; k < NMODES; k++)
		opt.modes[k] = k != M_GPU;
	if (!sched_getaffinity(0, sizeof(cs), &cs))
		cores = CPU_COUNT(&cs);
	while ((ch = getopt_long(argc, argv, "f:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'j': opt.jobs = atoi(optarg); jobs_given = 1; break;
		case 'L': parse_counts(optarg); break;
		case 'w': opt.work_us = atof(optarg); break;
		case 'b': opt.batch = atoi(optarg); break;
		case 's': opt.seconds = atof(optarg); break;
		case 'r': opt.reps = atoi(optarg); break;
		case 'M': parse_modes(optarg); modes_given = 1; break;
		case 'N': opt.model = optarg; break;
		case 'i': opt.instances = atoi(optarg); break;
		case 'I': opt.inline_run = 1; break;
		case 'd': opt.delay_us = atoi(optarg); break;
		case 'g': opt.gpu_instances = atoi(optarg); break;
		case 'D': opt.gpu_delay_us = atoi(optarg); break;
		case 'R': opt.require_gpu = 1; break;
		case 'T': opt.max_seconds = atof(optarg); break;
		case 'W': opt.fwait = optarg; break;
		case 'S': opt.spin_us = atoi(optarg); break;
		case 'C': opt.cwait = optarg; break;
		case 'm': opt.models = optarg; break;
		case 'F': opt.ferryd = optarg; break;
		case 'B': opt.backend_dir = optarg; break;
		case 'f': opt.csv = optarg; break;
		case 't': opt.threads = atoi(optarg); break;
		case 'e': opt.streams = atoi(optarg); break;
		case 'y': opt.sync = 1; break;
		case 'o':
			if (sscanf(optarg, "%d-%d", &opt.rows_min, &opt.rows_max) != 2)
				opt.rows_max = opt.rows_min = atoi(optarg);
			break;
		case 'P': opt.pollers = atoi(optarg); break;
		case 'k': opt.backend = optarg; break;
		case 'E': opt.eager = 1; break;
		case 'U': opt.ext_sock = optarg; break;
		case 'G': opt.ext_model = optarg; break;
		case 'x':
			if (strcmp(optarg, "thread") && strcmp(optarg, "job"))
				usage();
			opt.session_per_thread = !strcmp(optarg, "thread");
			break;
		default: usage();
		}
	}
	/* The defaults fill every core: jobs x threads = cores. */
	if (opt.sync) {
		opt.threads = 1;
		opt.streams = 1;
	}
	if (opt.threads <= 0)
		opt.threads = jobs_given ? (cores / opt.jobs > 0 ? cores / opt.jobs : 1)
					 : (cores < 4 ? cores : 4);
	if (!jobs_given)
		opt.jobs = cores / opt.threads > 0 ? cores / opt.threads : 1;
	if (opt.streams <= 0)
		opt.streams = 2 * opt.threads;
	if (opt.threads > MAXTHREADS || opt.streams < opt.threads ||
	    opt.streams > opt.threads * MAXSTREAMS ||
	    (opt.rows_max > 0 && (opt.rows_min < 1 || opt.rows_min > opt.rows_max)))
		usage();
	if (!opt.ncounts) {
		opt.counts[0] = opt.jobs;
		opt.ncounts = 1;
	}
	for (int k = 0; k < opt.ncounts; k++)
		maxjobs = opt.counts[k] > maxjobs ? opt.counts[k] : maxjobs;
	if (optind != argc || maxjobs < 1 || maxjobs > MAXJOBS || opt.batch < 1 ||
	    opt.reps < 1 || opt.reps > MAXREPS || opt.seconds <= 0 || opt.work_us < 0 ||
	    opt.instances < 1 || opt.gpu_instances < 1 || opt.max_seconds < 0 ||
	    strchr(opt.model, '/') || strchr(opt.model, '\''))
		usage();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-saturate-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", tmpdir);
	if (opt.ext_sock) {
		if (!modes_given)
			opt.modes[M_GRPC] = 0;
		if (opt.modes[M_GRPC] || opt.modes[M_GPU])
			die("--broker: measure direct, broker-idle and broker-shm only");
		if (strlen(opt.ext_sock) >= sizeof(sock))
			die("--broker: socket path too long");
		snprintf(sock, sizeof(sock), "%s", opt.ext_sock);
	}
	defaults();
	model_shape();
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap");
	signal(SIGPIPE, SIG_IGN);
	if (opt.modes[M_GPU]) {
		/* before any measurement: a skip costs nothing and fakes nothing */
		opt.jobs = maxjobs;
		write_repo();
		if (!gpu_probe(why, sizeof(why))) {
			printf("broker-gpu: skipped: no GPU (ferryd could not serve %s on a "
			       "KIND_GPU instance)\n    %s\n", opt.model, why);
			if (opt.require_gpu) {
				snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
				(void)!system(cmd);
				return 77;
			}
			opt.modes[M_GPU] = 0;
		}
	} else if (opt.require_gpu) {
		die("--require-gpu: broker-gpu is not among the modes");
	}
	{
		int any = 0;

		for (int m = 0; m < NMODES; m++)
			any |= opt.modes[m];
		if (!any) {
			printf("ferry-bench-saturate: no mode left to run\n");
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
			(void)!system(cmd);
			return 77;
		}
	}
	if (opt.csv && !(csv = fopen(opt.csv, "w")))
		die("cannot write %s", opt.csv);
	iters_per_us = bu_work_calibrate();
	loadavg(la, sizeof(la));
	printf("ferry-bench-saturate: ");
	for (int k = 0; k < opt.ncounts; k++)
		printf("%s%d", k ? "," : "", opt.counts[k]);
	printf(" jobs%s, %.0f us of work (%.0f iterations, calibrated) + one %s inference "
	       "(%d -> %d) of ", opt.ncounts > 1 ? " (a sweep)" : "", opt.work_us,
	       opt.work_us * iters_per_us, opt.model, in_row, out_row);
	if (opt.rows_max > 0)
		printf("%d to %d", opt.rows_min, opt.rows_max);
	else
		printf("%d", opt.batch);
	printf(" rows per event; %d x %.1f s per mode, interleaved\n", opt.reps, opt.seconds);
	if (opt.sync)
		printf("jobs: synchronous, one thread and one event in flight each\n");
	else
		printf("jobs: %d thread(s), %d stream(s) each job; broker modes asynchronous "
		       "(ExternalWork), a session per %s, %s doorbell\n", opt.threads, opt.streams,
		       opt.session_per_thread ? "thread" : "job", opt.eager ? "eager" : "lazy");
	printf("loadavg at start: %s\n", la);
	if (opt.ext_sock && (opt.modes[M_IDLE] || opt.modes[M_SHM]))
		printf("ferryd: the running one at %s, serving %s as it loaded it; jobs' libferry "
		       "wait: %s\n", opt.ext_sock, served(), opt.cwait);
	else if (opt.modes[M_IDLE] || opt.modes[M_SHM] || opt.modes[M_GRPC])
		printf("ferryd: %d KIND_CPU instance(s), %s, --wait %s; jobs' libferry wait: %s\n",
		       opt.instances, opt.delay_us < 0 ? "no dynamic batching" : "dynamic batching",
		       opt.fwait, opt.cwait);
	if (opt.delay_us >= 0 && !opt.ext_sock && (opt.modes[M_SHM] || opt.modes[M_GRPC]))
		printf("dynamic batching: max_queue_delay_microseconds %d\n", opt.delay_us);
	if (opt.modes[M_GPU]) {
		printf("ferryd for broker-gpu: %d KIND_GPU instance(s) on GPU 0, ", opt.gpu_instances);
		if (opt.gpu_delay_us < 0)
			printf("no dynamic batching");
		else
			printf("dynamic batching (max_queue_delay_microseconds %d)", opt.gpu_delay_us);
		printf(", --wait %s; jobs' libferry wait: %s\n", opt.fwait, opt.cwait);
	}
	fflush(stdout);
	if (csv)
		fprintf(csv, "kind,mode,rep,events_s,infer_frac,work_us,infer_us,ferryd_cpu_s,"
			"wall_s,ratio,ratio_half,events_s_half|batch_rows,executions,jobs,"
			"amdahl_gain\n");

	if (opt.modes[M_GRPC] && opt.modes[M_DIRECT])
		grpc_floor();
	for (int k = 0; k < opt.ncounts; k++) {
		double t0 = bu_now();

		if (k && opt.max_seconds > 0) {
			/* a larger count takes a little longer: set-up per job */
			double est = t_count * (opt.counts[k] > opt.counts[k - 1] ? 1.15 : 1.0);

			if (t0 - t_start + est > opt.max_seconds) {
				printf("\nsweep stopped before %d jobs: about %.1f s more would pass "
				       "--max-seconds %g (%.1f s used)\n", opt.counts[k], est,
				       opt.max_seconds, t0 - t_start);
				break;
			}
		}
		opt.jobs = opt.counts[k];
		broker_on(BK_NONE);
		write_repo();
		for (int rep = 0; rep < opt.reps; rep++) {
			for (int i = 0; i < NMODES; i++) {
				/* odd repetitions go backwards, so no mode always runs first */
				enum mode m = (enum mode)(rep % 2 ? NMODES - 1 - i : i);

				if (!opt.modes[m])
					continue;
				runs[m][rep] = run_mode(m);
				fprintf(stderr, "%s[%d jobs, rep %d/%d] %-12s %10.0f events/s   ",
					isatty(2) ? "\r" : "", opt.jobs, rep + 1, opt.reps,
					MODE_NAME[m], runs[m][rep].ev_s);
				if (!isatty(2))
					fputc('\n', stderr);
			}
		}
		broker_on(BK_NONE);
		if (isatty(2))
			fprintf(stderr, "\r%70s\r", "");
		report(csv, &sum[ndone++]);
		t_count = bu_now() - t0;
	}
	if (ndone > 1 || opt.modes[M_GPU])
		report_sweep(sum, ndone);
	loadavg(la, sizeof(la));
	printf("loadavg at end: %s\n", la);
	if (csv)
		fclose(csv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
	return 0;
}
