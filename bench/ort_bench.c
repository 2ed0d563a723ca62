/* SPDX-License-Identifier: MIT */
/*
 * ort_bench.c - ferry-ort-bench: ONNX models through ferryd's onnxruntime
 * backend against ONNX Runtime called in this process, in the same run
 *
 *   ferry-ort-bench [--models DIR] [--mlp-models DIR] [--ferryd PATH]
 *                   [--seconds S] [--only NAME] [--no-grpc] [--csv FILE]
 *
 * For each model of tests/onnxruntime/gen_ort_models.py (a transformer
 * layer, TopK/Gather/Expand, a GRU tagger, a residual CNN, int64 and bool
 * inputs) at batch 1 and 64, one request in flight at a time (a closed
 * loop: each figure is a latency, not a queue), rows:
 *
 *   in-process ORT   ONNX Runtime's C API in this process, with the
 *                    backend's settings (one intra-op and one inter-op
 *                    thread, spinning off, ORT_ENABLE_ALL) and its work per
 *                    request: OrtValues over the input buffers, outputs
 *                    pre-allocated over the output buffers, Run, release
 *   ferryd shm       a ferryd with one KIND_CPU instance of the
 *                    onnxruntime backend (no dynamic batching: each
 *                    request runs as sent), through libferry's shared
 *                    memory; "+us" is what the broker adds at p50
 *   ferryd shm inline  the same model with ferry_inline: run by the
 *                    broker's polling thread, no hand-off to an instance
 *   ferryd gRPC      the same over KServe v2 gRPC (loopback)
 *
 * and first, as the floor of every ferryd row, the round trip of the
 * built-in identity backend (16 floats per row, on the polling thread):
 * rings, validation and completion with no model behind them.
 *
 * and, on the MLPs of bench/saturate.c (tests/onnx/gen_models.py's mlp,
 * 16-64-32-32-5, and mlp_wide, 16-512-512-512-5), the native executor
 * (backend "onnx") beside onnxruntime through ferryd, threaded and inline.
 *
 * --models / --mlp-models: directories the generators wrote; without them
 * the models are generated into a temporary directory with the source
 * tree's .venv.  The machine's load average is printed before and after:
 * wall time on a busy machine is noise, compare rows of one run.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "broker/backends/onnxruntime/ort_lib.h"

#define SEC 1000000000LL
#define MAXT 8

struct tensor {
	char name[64];
	ferry_dtype dt;
	int nd;
	int64_t dims[8];
	void *data;
	size_t bytes;
};

struct bcase {                  /* one model at one batch size */
	char model[64];
	int batch;
	int nin, nout;
	struct tensor in[MAXT], out[MAXT];
};

static struct {
	const char *models, *mlp_models, *ferryd, *only, *csv;
	double seconds;
	int grpc;
} opt = { .seconds = 1.0, .grpc = 1 };

static FILE *csv;
static struct ort_lib lib;
static OrtEnv *env;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ferry-ort-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void *slurp(const char *path, size_t *len)
{
	void *p = bu_slurp(path, len);

	if (!p)
		die("cannot read %s: %s", path, strerror(errno));
	return p;
}

static ferry_dtype dtype_of(const char *name)
{
	for (int d = 1; d < FERRY_TYPE__COUNT; d++)
		if (!strcmp(ferry_dtype_name(d), name))
			return (ferry_dtype)d;
	die("unknown dtype %s", name);
}

/* Model `model` at `batch`, from the generator's MANIFEST and files. */
static void load_case(struct bcase *c, const char *dir, const char *model, int batch)
{
	char path[4200], line[512], m[64], kind[8], name[64], dt[16];
	int b, nd, used;

	memset(c, 0, sizeof(*c));
	snprintf(c->model, sizeof(c->model), "%s", model);
	c->batch = batch;
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot open %s", path);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "tensor %63s %d %7s %63s %15s %d%n", m, &b, kind, name, dt, &nd,
			   &used) != 6 || strcmp(m, model) || b != batch)
			continue;
		int out = !strcmp(kind, "out");
		int *n = out ? &c->nout : &c->nin;
		if (*n >= MAXT || nd > 8)
			die("%s: too many tensors", model);
		struct tensor *t = out ? &c->out[(*n)++] : &c->in[(*n)++];
		snprintf(t->name, sizeof(t->name), "%s", name);
		t->dt = dtype_of(dt);
		t->nd = nd;
		for (int d = 0; d < nd; d++) {
			long long v;
			int k;
			sscanf(line + used, "%lld%n", &v, &k);
			t->dims[d] = v;
			used += k;
		}
		snprintf(path, sizeof(path), "%s/%s.b%d.%s.bin", dir, model, batch, name);
		t->data = slurp(path, &t->bytes);
	}
	fclose(f);
	if (!c->nin || !c->nout)
		die("%s has no batch %d in %s/MANIFEST", model, batch, dir);
}

/* An MLP of gen_models.py: x [batch, 16] -> y [batch, 5], random inputs. */
static void mlp_case(struct bcase *c, const char *model, int batch)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->model, sizeof(c->model), "%s", model);
	c->batch = batch;
	c->nin = c->nout = 1;
	struct tensor *x = &c->in[0], *y = &c->out[0];
	snprintf(x->name, sizeof(x->name), "x");
	snprintf(y->name, sizeof(y->name), "y");
	x->dt = y->dt = FERRY_TYPE_FP32;
	x->nd = y->nd = 2;
	x->dims[0] = y->dims[0] = batch;
	x->dims[1] = 16;
	y->dims[1] = 5;
	x->bytes = (size_t)batch * 16 * 4;
	y->bytes = (size_t)batch * 5 * 4;
	x->data = malloc(x->bytes);
	y->data = malloc(y->bytes);
	for (int i = 0; i < batch * 16; i++)
		((float *)x->data)[i] = (float)((i * 37) % 19) / 10.0f - 0.9f;
}

static void free_case(struct bcase *c)
{
	for (int i = 0; i < c->nin; i++)
		free(c->in[i].data);
	for (int i = 0; i < c->nout; i++)
		free(c->out[i].data);
}

/* ------------------------------------------------------------------ */
/* Timing                                                              */

struct result {
	double p50, p99, items_s;       /* us, us, items per second */
	long n;
};

static void report(const struct bcase *c, const char *path, const struct result *r,
		   const struct result *base)
{
	char add[32] = "";

	if (base && base != r)
		snprintf(add, sizeof(add), "%+8.1f", r->p50 - base->p50);
	printf("%-14s %5d  %-22s %9.1f %9.1f %12.0f %9s\n", c->model, c->batch, path, r->p50,
	       r->p99, r->items_s, add);
	if (csv)
		fprintf(csv, "%s,%d,%s,%.2f,%.2f,%.0f,%ld\n", c->model, c->batch, path, r->p50,
			r->p99, r->items_s, r->n);
	fflush(stdout);
}

/* Run once() for opt.seconds after a warm-up; latency quantiles. */
static struct result measure(int (*once)(void *arg), void *arg, int batch)
{
	size_t cap = 1 << 20, n = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	struct result r = { 0 };

	for (int i = 0; i < 50; i++)
		if (once(arg))
			die("warm-up run failed");
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(opt.seconds * 1e9);
	for (;;) {
		uint64_t a = now_ns();
		if ((a >= end && n >= 100) || n == cap)
			break;
		if (once(arg))
			die("run failed");
		lat[n++] = now_ns() - a;
	}
	uint64_t t1 = now_ns();
	struct bu_lat q = bu_lat_of(lat, n);
	r.p50 = q.p50 / 1e3;
	r.p99 = q.p99 / 1e3;
	r.items_s = (double)n * batch / ((double)(t1 - t0) / 1e9);
	r.n = (long)n;
	free(lat);
	return r;
}

/* ------------------------------------------------------------------ */
/* In-process ONNX Runtime                                             */

struct inproc {
	const struct bcase *c;
	OrtSession *s;
	OrtMemoryInfo *mem;
	OrtAllocator *alloc;
	const char *in_names[MAXT], *out_names[MAXT];
	OrtValue *in[MAXT], *out[MAXT];
};

static void ort_check(OrtStatus *st, const char *what)
{
	if (st)
		die("%s: %s", what, lib.api->GetErrorMessage(st));
}

/* The backend's work for one lone request (ort_exec.c), in this process. */
static int inproc_once(void *arg)
{
	struct inproc *p = arg;
	const OrtApi *api = lib.api;
	const struct bcase *c = p->c;
	int rc = 0;

	for (int i = 0; i < c->nin; i++) {
		const struct tensor *t = &c->in[i];
		if (t->dt == FERRY_TYPE_BYTES)
			die("BYTES inputs are not benchmarked");
		ort_check(api->CreateTensorWithDataAsOrtValue(p->mem, t->data, t->bytes, t->dims,
							     (size_t)t->nd, ort_dtype_to_onnx(t->dt),
							     &p->in[i]), "input");
	}
	for (int i = 0; i < c->nout; i++) {
		const struct tensor *t = &c->out[i];
		ort_check(api->CreateTensorWithDataAsOrtValue(p->mem, t->data, t->bytes, t->dims,
							     (size_t)t->nd, ort_dtype_to_onnx(t->dt),
							     &p->out[i]), "output");
	}
	OrtStatus *st = api->Run(p->s, NULL, p->in_names, (const OrtValue *const *)p->in,
				 (size_t)c->nin, p->out_names, (size_t)c->nout, p->out);
	if (st) {
		fprintf(stderr, "Run: %s\n", api->GetErrorMessage(st));
		api->ReleaseStatus(st);
		rc = -1;
	}
	for (int i = 0; i < c->nin; i++)
		api->ReleaseValue(p->in[i]);
	for (int i = 0; i < c->nout; i++)
		api->ReleaseValue(p->out[i]);
	return rc;
}

static struct result run_inproc(const struct bcase *c, const char *onnx_path)
{
	const OrtApi *api = lib.api;
	OrtSessionOptions *so;
	struct inproc p = { .c = c };

	ort_check(api->CreateSessionOptions(&so), "session options");
	ort_check(api->SetIntraOpNumThreads(so, 1), "intra");
	ort_check(api->SetInterOpNumThreads(so, 1), "inter");
	ort_check(api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "level");
	ort_check(api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"), "spin");
	ort_check(api->AddSessionConfigEntry(so, "session.inter_op.allow_spinning", "0"), "spin");
	ort_check(api->CreateSession(env, onnx_path, so, &p.s), onnx_path);
	api->ReleaseSessionOptions(so);
	ort_check(api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &p.mem), "mem");
	for (int i = 0; i < c->nin; i++)
		p.in_names[i] = c->in[i].name;
	for (int i = 0; i < c->nout; i++)
		p.out_names[i] = c->out[i].name;
	struct result r = measure(inproc_once, &p, c->batch);
	api->ReleaseMemoryInfo(p.mem);
	api->ReleaseSession(p.s);
	return r;
}

/* ------------------------------------------------------------------ */
/* Through ferryd                                                      */

struct remote {
	const struct bcase *c;
	ferry_client *cl;
	ferry_request *r;
	void *in[MAXT];
};

static int remote_once(void *arg)
{
	struct remote *p = arg;
	int rc = ferry_infer(p->cl, p->r, 60 * SEC);

	if (rc)
		fprintf(stderr, "infer: %s\n", ferry_last_error());
	return rc;
}

static struct result run_ferryd(const struct bcase *c, const char *addr, const char *model)
{
	struct remote p = { .c = c };
	ferry_model *m;

	if (ferry_connect(&p.cl, addr, NULL))
		die("connect %s: %s", addr, ferry_last_error());
	if (ferry_model_get(p.cl, model, FERRY_LATEST, &m))
		die("model %s: %s", model, ferry_last_error());
	if (ferry_request_new(m, &p.r))
		die("request: %s", ferry_last_error());
	/* inputs written once, in the arena (over gRPC: copied per call) */
	for (int i = 0; i < c->nin; i++) {
		const struct tensor *t = &c->in[i];
		if (ferry_request_input_bytes(p.r, t->name, t->dt, t->dims, t->nd, t->bytes,
					      &p.in[i]))
			die("input %s: %s", t->name, ferry_last_error());
		memcpy(p.in[i], t->data, t->bytes);
	}
	struct result r = measure(remote_once, &p, c->batch);
	ferry_request_free(p.r);
	ferry_close(p.cl);
	return r;
}

/* ------------------------------------------------------------------ */
/* The repository and the broker                                       */

static void put(const char *repo, const char *name, const char *onnx, const char *config)
{
	char cmd[9000], path[4200];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s/1' && cp '%s' '%s/%s/1/model.onnx'", repo,
		 name, onnx, repo, name);
	if (system(cmd))
		die("%s failed", cmd);
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", repo, name);
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fputs(config, f);
	fclose(f);
}

/* max_batch_size 64, one CPU instance, each request as sent; the tensors
 * come from auto-complete. */
static void put_ort(const char *repo, const char *name, const char *onnx, bool inl)
{
	char cfg[1024];

	snprintf(cfg, sizeof(cfg), "backend: \"onnxruntime\"\nmax_batch_size: 64\n"
		 "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
		 "parameters [ { key: \"intra_op_thread_count\" value: { string_value: \"1\" } }%s ]\n",
		 inl ? ", { key: \"ferry_inline\" value: { string_value: \"true\" } }" : "");
	put(repo, name, onnx, cfg);
}

/* The floor: identity, 16 floats a row, run by the polling thread. */
static void put_identity(const char *repo)
{
	char cmd[600], path[400];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/identity/1'", repo);
	if (system(cmd))
		die("%s failed", cmd);
	snprintf(path, sizeof(path), "%s/identity/config.pbtxt", repo);
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fputs("backend: \"identity\"\nmax_batch_size: 64\n"
	      "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
	      "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n", f);
	fclose(f);
}

static void put_native(const char *repo, const char *name, const char *onnx, bool inl)
{
	char cfg[1024];

	snprintf(cfg, sizeof(cfg), "backend: \"onnx\"\nmax_batch_size: 64\n"
		 "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
		 "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n"
		 "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
		 "parameters [ { key: \"intra_op_thread_count\" value: { string_value: \"1\" } }%s ]\n",
		 inl ? ", { key: \"ferry_inline\" value: { string_value: \"true\" } }" : "");
	put(repo, name, onnx, cfg);
}

static void loadavg(const char *when)
{
	char buf[128] = "?";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	printf("load average %s: %s (%ld CPUs online)\n", when, buf, sysconf(_SC_NPROCESSORS_ONLN));
}

/* Generate into a temporary directory with the source tree's venv. */
static const char *generate(const char *script, const char *tmpl)
{
	static char dirs[2][256];
	static int k;
	char cmd[2048];
	char *d = dirs[k++ & 1];

	snprintf(d, 256, "%s", tmpl);
	if (!mkdtemp(d))
		die("mkdtemp: %s", strerror(errno));
	snprintf(cmd, sizeof(cmd), "'%s/.venv/bin/python' '%s/%s' '%s' >/dev/null", FERRY_SRCDIR,
		 FERRY_SRCDIR, script, d);
	if (system(cmd))
		die("%s failed (run scripts/setup-debian.sh for the venv, or give --models)", cmd);
	return d;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ferry-ort-bench [--models DIR] [--mlp-models DIR] [--ferryd PATH]\n"
		"                       [--seconds S] [--only NAME] [--no-grpc] [--csv FILE]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "models", required_argument, NULL, 'm' },
		{ "mlp-models", required_argument, NULL, 'M' },
		{ "ferryd", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' },
		{ "no-grpc", no_argument, NULL, 'G' },
		{ "csv", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static const char *const models[] = { "transformer", "topk_gather", "gru", "cnn", "intbool" };
	static const char *const mlps[] = { "mlp", "mlp_wide" };
	char ferryd[4200], repo[64], sock[300], logf[300], port[16], path[4200], err[1024];
	int ch;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': opt.models = optarg; break;
		case 'M': opt.mlp_models = optarg; break;
		case 'f': opt.ferryd = optarg; break;
		case 's': opt.seconds = atof(optarg); break;
		case 'o': opt.only = optarg; break;
		case 'G': opt.grpc = 0; break;
		case 'c': opt.csv = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (opt.seconds <= 0)
		die("--seconds must be positive");
	if (ort_lib_open(NULL, &lib, err, sizeof(err)))
		die("%s", err);
	ort_check(lib.api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "ferry-ort-bench", &env), "env");
	if (!opt.models)
		opt.models = generate("tests/onnxruntime/gen_ort_models.py", "/tmp/ferry-ortb-XXXXXX");
	if (!opt.mlp_models)
		opt.mlp_models = generate("tests/onnx/gen_models.py", "/tmp/ferry-ortm-XXXXXX");
	if (opt.ferryd)
		snprintf(ferryd, sizeof(ferryd), "%s", opt.ferryd);
	else
		snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", bu_build_dir());
	if (opt.csv && !(csv = fopen(opt.csv, "w")))
		die("cannot write %s", opt.csv);
	if (csv)
		fprintf(csv, "model,batch,path,p50_us,p99_us,items_per_s,samples\n");

	/* The repository: each model threaded and inline; the MLPs on both
	 * backends. */
	snprintf(repo, sizeof(repo), "/tmp/ferry-ortr-XXXXXX");
	if (!mkdtemp(repo))
		die("mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", repo);
	snprintf(logf, sizeof(logf), "%s/ferryd.log", repo);
	char models_dir[300];
	snprintf(models_dir, sizeof(models_dir), "%s/models", repo);
	for (size_t i = 0; i < 5; i++) {
		char n[80];
		snprintf(path, sizeof(path), "%s/%s.onnx", opt.models, models[i]);
		put_ort(models_dir, models[i], path, false);
		snprintf(n, sizeof(n), "%s_inline", models[i]);
		put_ort(models_dir, n, path, true);
	}
	for (size_t i = 0; i < 2; i++) {
		char n[80];
		snprintf(path, sizeof(path), "%s/%s.onnx", opt.mlp_models, mlps[i]);
		put_ort(models_dir, mlps[i], path, false);
		snprintf(n, sizeof(n), "%s_inline", mlps[i]);
		put_ort(models_dir, n, path, true);
		snprintf(n, sizeof(n), "%s_native", mlps[i]);
		put_native(models_dir, n, path, false);
		snprintf(n, sizeof(n), "%s_native_inline", mlps[i]);
		put_native(models_dir, n, path, true);
	}
	put_identity(models_dir);
	int gport = bu_free_port();
	snprintf(port, sizeof(port), "%d", gport);
	const char *args[] = { "--model-repository", models_dir, "--grpc-port", port,
			       "--metrics-port", "0", NULL };
	pid_t pid = bu_ferryd_start(ferryd, sock, logf, args);
	char gaddr[64];
	snprintf(gaddr, sizeof(gaddr), "grpc://127.0.0.1:%d", gport);

	printf("ferry-ort-bench: ONNX Runtime %s (%s), C API %d; %.1f s per row, one "
	       "request in flight\n", lib.version, lib.path, ORT_LIB_API_VERSION, opt.seconds);
	loadavg("before");
	printf("%-14s %5s  %-22s %9s %9s %12s %9s\n", "model", "batch", "path", "p50 us", "p99 us",
	       "items/s", "+p50 us");
	for (int b = 1; b <= 64; b += 63) {
		struct bcase c;
		mlp_case(&c, "identity", b);
		c.out[0].dims[1] = 16;
		struct result r = run_ferryd(&c, sock, "identity");
		report(&c, "ferryd shm (floor)", &r, NULL);
		free_case(&c);
	}
	for (size_t i = 0; i < 5 + 2; i++) {
		bool mlp = i >= 5;
		const char *name = mlp ? mlps[i - 5] : models[i];
		if (opt.only && strcmp(opt.only, name))
			continue;
		for (int bi = 0; bi < 2; bi++) {
			int b = bi ? 64 : 1;
			struct bcase c;
			char n[96];
			if (mlp)
				mlp_case(&c, name, b);
			else
				load_case(&c, opt.models, name, b);
			snprintf(path, sizeof(path), "%s/%s.onnx", mlp ? opt.mlp_models : opt.models,
				 name);
			struct result base = run_inproc(&c, path);
			report(&c, "in-process ORT", &base, NULL);
			struct result r = run_ferryd(&c, sock, name);
			report(&c, "ferryd shm", &r, &base);
			snprintf(n, sizeof(n), "%s_inline", name);
			r = run_ferryd(&c, sock, n);
			report(&c, "ferryd shm inline", &r, &base);
			if (opt.grpc) {
				r = run_ferryd(&c, gaddr, name);
				report(&c, "ferryd gRPC", &r, &base);
			}
			if (mlp) {
				snprintf(n, sizeof(n), "%s_native", name);
				r = run_ferryd(&c, sock, n);
				report(&c, "ferryd shm native", &r, &base);
				snprintf(n, sizeof(n), "%s_native_inline", name);
				r = run_ferryd(&c, sock, n);
				report(&c, "ferryd shm native inl.", &r, &base);
			}
			free_case(&c);
		}
	}
	loadavg("after");
	bu_ferryd_stop(pid);
	snprintf(path, sizeof(path), "rm -rf '%s'", repo);
	if (system(path))
		fprintf(stderr, "ferry-ort-bench: could not remove %s\n", repo);
	if (csv)
		fclose(csv);
	return 0;
}
