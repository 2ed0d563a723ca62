/* SPDX-License-Identifier: MIT */
/*
 * test_ort_broker.c - the onnxruntime backend through a real ferryd, over
 * shared memory and over gRPC (libferry's two transports), on the models
 * gen_ort_models.py builds, against onnxruntime's own outputs:
 *
 *     |got - want| <= 1e-5 + 1e-4 * |want|      (integers, bools, BYTES: equal)
 *
 * The repository mixes full configs, partial ones and bare model
 * directories (auto-complete), a file onnxruntime cannot load and a model
 * whose operator no runtime has, each named by a suite below.  Run by
 * run_ort_tests.sh, which generates the models into $FERRY_ORT_MODELS and
 * skips (77) where the venv lacks onnx and onnxruntime or configure found
 * no ONNX Runtime library.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "tests/integ/harness.h"

#define SEC 1000000000LL
#define RTOL 1e-4
#define ATOL 1e-5

static struct th_broker B;
static int grpc_port;

/* ------------------------------------------------------------------ */
/* The models' files                                                   */

static const char *dir(void)
{
	const char *d = getenv("FERRY_ORT_MODELS");

	cr_assert_not_null(d, "FERRY_ORT_MODELS is not set (run through run_ort_tests.sh)");
	return d;
}

struct mtensor {                /* one MANIFEST "tensor" line */
	char model[64], name[64], dtype[16];
	int batch, out, nd;
	int64_t dims[8];
};

static struct mtensor *manifest(int *count)
{
	static struct mtensor t[512];
	static int n = -1;
	char path[1024], line[512], kind[8];

	if (n >= 0) {
		*count = n;
		return t;
	}
	snprintf(path, sizeof(path), "%s/MANIFEST", dir());
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	int k = 0;
	while (fgets(line, sizeof(line), f) && k < 512) {
		struct mtensor *m = &t[k];
		int used = 0;
		if (sscanf(line, "tensor %63s %d %7s %63s %15s %d%n", m->model, &m->batch, kind,
			   m->name, m->dtype, &m->nd, &used) != 6)
			continue;
		m->out = !strcmp(kind, "out");
		for (int d = 0; d < m->nd && d < 8; d++) {
			int w = 0;
			long long v;
			sscanf(line + used, "%lld%n", &v, &w);
			m->dims[d] = v;
			used += w;
		}
		k++;
	}
	fclose(f);
	/* Published once whole: a reader that finds n set finds every
	 * entry (the tests call this first from one thread; see
	 * dynamic_batching_across_clients). */
	n = k;
	*count = n;
	return t;
}

static ferry_dtype dtype_of(const char *name)
{
	for (int d = 1; d < FERRY_TYPE__COUNT; d++)
		if (!strcmp(ferry_dtype_name(d), name))
			return (ferry_dtype)d;
	cr_assert_fail("unknown dtype %s", name);
	return FERRY_TYPE_INVALID;
}

static void *tensor_file(const struct mtensor *t, size_t *len)
{
	char path[1200];

	snprintf(path, sizeof(path), "%.900s/%.63s.b%d.%.63s.bin", dir(), t->model, t->batch, t->name);
	return th_slurp(path, len);
}

/* ------------------------------------------------------------------ */
/* The repository                                                      */

struct entry {
	const char *name, *file;        /* repository name, gen_ort_models.py file */
	const char *config;             /* NULL: no config.pbtxt (auto-complete) */
};

static const struct entry REPO[] = {
	/* auto-complete from the file alone */
	{ "transformer", "transformer", NULL },
	/* a partial config: max_batch_size given, tensors from the file */
	{ "topk_gather", "topk_gather",
	  "platform: \"onnxruntime_onnx\"\nmax_batch_size: 16\n"
	  "dynamic_batching { max_queue_delay_microseconds: 500 }\n" },
	{ "gru", "gru",
	  "backend: \"onnxruntime\"\nmax_batch_size: 8\n"
	  "input [ { name: \"seq\" data_type: TYPE_FP32 dims: [ 10, 6 ] } ]\n"
	  "output [ { name: \"tags\" data_type: TYPE_FP32 dims: [ 10, 5 ] },\n"
	  "         { name: \"last\" data_type: TYPE_FP32 dims: [ 12 ] } ]\n"
	  "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
	  "dynamic_batching { max_queue_delay_microseconds: 1000 }\n" },
	{ "cnn", "cnn",
	  "platform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3, 16, 16 ] } ]\n"
	  "output [ { name: \"logits\" data_type: TYPE_FP32 dims: [ 10 ] } ]\n"
	  "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
	  "dynamic_batching { max_queue_delay_microseconds: 20000 preferred_batch_size: [ 8 ] }\n"
	  "parameters [ { key: \"intra_op_thread_count\" value: { string_value: \"1\" } } ]\n"
	  "optimization { graph { level: 1 } }\n" },
	/* the same on the broker's polling thread */
	{ "cnn_inline", "cnn",
	  "backend: \"onnxruntime\"\nmax_batch_size: 64\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3, 16, 16 ] } ]\n"
	  "output [ { name: \"logits\" data_type: TYPE_FP32 dims: [ 10 ] } ]\n"
	  "parameters [ { key: \"ferry_inline\" value: { string_value: \"true\" } } ]\n" },
	{ "intbool", "intbool",
	  "backend: \"onnxruntime\"\nmax_batch_size: 64\n"
	  "input [ { name: \"ids\" data_type: TYPE_INT64 dims: [ 6 ] },\n"
	  "        { name: \"mask\" data_type: TYPE_BOOL dims: [ 6 ] },\n"
	  "        { name: \"feats\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
	  "output [ { name: \"logits\" data_type: TYPE_FP32 dims: [ 3 ] },\n"
	  "         { name: \"positive\" data_type: TYPE_BOOL dims: [ 3 ] },\n"
	  "         { name: \"masked_ids\" data_type: TYPE_INT64 dims: [ 6 ] } ]\n" },
	/* tensors auto-completed, max_batch_size given */
	{ "dtypes", "dtypes", "max_batch_size: 64\n" },
	/* the sequence length variable in the config, fixed in the model:
	 * onnxruntime refuses other lengths at run time */
	{ "transformer_var", "transformer",
	  "platform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ -1, 32 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ -1, 32 ] } ]\n" },
	/* onnxruntime cannot load these */
	{ "broken", "broken",
	  "platform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n" },
	{ "unknown_op", "unknown_op", NULL },
};

static void put_model(const struct entry *e)
{
	char cmd[3000], path[1024];

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s/1 && cp %s/%s.onnx %s/%s/1/model.onnx",
		 B.repo, e->name, dir(), e->file, B.repo, e->name);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	if (!e->config)
		return;
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", B.repo, e->name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(e->config, f);
	fclose(f);
}

static void start(void)
{
	char port[16];

	th_init(&B);
	for (size_t i = 0; i < sizeof(REPO) / sizeof(REPO[0]); i++)
		put_model(&REPO[i]);
	grpc_port = th_free_port();
	snprintf(port, sizeof(port), "%d", grpc_port);
	th_start(&B, "--log-level", "info", "--exit-on-error=false", "--grpc-port", port,
		 "--metrics-port", "0", NULL);
}

static void stop(void)
{
	int st = th_stop(&B);

	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

TestSuite(ort, .init = start, .fini = stop, .timeout = 120);

static ferry_client *conn(bool grpc)
{
	ferry_client *c;
	char addr[64];

	snprintf(addr, sizeof(addr), "grpc://127.0.0.1:%d", grpc_port);
	/* th_start() waits for the local socket; gRPC listens a moment later */
	cr_assert_eq(ferry_connect_wait(&c, grpc ? addr : B.sock, NULL, 10 * SEC), 0,
		     "connect %s: %s", grpc ? addr : B.sock, ferry_last_error());
	return c;
}

/* ------------------------------------------------------------------ */
/* Requests from the reference files                                   */

static void expect_close(const struct mtensor *t, const void *got, size_t bytes,
			 const void *want, size_t wbytes, const char *where)
{
	ferry_dtype dt = dtype_of(t->dtype);

	cr_assert_eq(bytes, wbytes, "%s %s: %zu bytes, onnxruntime %zu", where, t->name, bytes,
		     wbytes);
	if (dt != FERRY_TYPE_FP32 && dt != FERRY_TYPE_FP64) {
		/* integers, bools, halves through Identity, strings: exact */
		cr_assert(!memcmp(got, want, bytes), "%s %s: differs from onnxruntime", where,
			  t->name);
		return;
	}
	size_t n = bytes / ferry_dtype_size(dt);
	for (size_t i = 0; i < n; i++) {
		double g = dt == FERRY_TYPE_FP32 ? ((const float *)got)[i] : ((const double *)got)[i];
		double w = dt == FERRY_TYPE_FP32 ? ((const float *)want)[i] : ((const double *)want)[i];
		cr_assert(fabs(g - w) <= ATOL + RTOL * fabs(w), "%s %s[%zu]: got %.9g, "
			  "onnxruntime %.9g", where, t->name, i, g, w);
	}
}

/* Fill r with model file's inputs at batch b; ask for every output with
 * room for onnxruntime's. */
static void fill(ferry_request *r, const char *file, int b)
{
	int n;
	struct mtensor *t = manifest(&n);

	for (int i = 0; i < n; i++) {
		if (strcmp(t[i].model, file) || t[i].batch != b)
			continue;
		size_t len;
		void *src = tensor_file(&t[i], &len), *dst;
		if (t[i].out) {
			cr_assert_eq(ferry_request_want_output(r, t[i].name, len), 0, "%s",
				     ferry_last_error());
		} else {
			cr_assert_eq(ferry_request_input_bytes(r, t[i].name, dtype_of(t[i].dtype),
							       t[i].dims, t[i].nd, len, &dst), 0,
				     "input %s: %s", t[i].name, ferry_last_error());
			memcpy(dst, src, len);
		}
		free(src);
	}
}

static void check(ferry_request *r, const char *file, int b, const char *where)
{
	int n;
	struct mtensor *t = manifest(&n);

	for (int i = 0; i < n; i++) {
		if (strcmp(t[i].model, file) || t[i].batch != b || !t[i].out)
			continue;
		size_t len, bytes;
		const void *got;
		const int64_t *dims;
		int nd;
		ferry_dtype dt;
		void *want = tensor_file(&t[i], &len);
		cr_assert_eq(ferry_request_output(r, t[i].name, &dt, &dims, &nd, &got, &bytes), 0,
			     "%s %s: %s", where, t[i].name, ferry_last_error());
		cr_assert_eq(dt, dtype_of(t[i].dtype), "%s %s: dtype %d", where, t[i].name, dt);
		cr_assert_eq(nd, t[i].nd, "%s %s: %d dims", where, t[i].name, nd);
		for (int d = 0; d < nd; d++)
			cr_assert_eq(dims[d], t[i].dims[d], "%s %s: dim %d is %lld", where,
				     t[i].name, d, (long long)dims[d]);
		expect_close(&t[i], got, bytes, want, len, where);
		free(want);
	}
}

/* Model `name` (file `file`) at every reference batch it takes. */
static void serve(const char *name, const char *file, bool grpc)
{
	ferry_client *c = conn(grpc);
	ferry_model *m;
	int done = 0;

	cr_assert_eq(ferry_model_get(c, name, FERRY_LATEST, &m), 0, "%s: %s", name,
		     ferry_last_error());
	for (int b = 1; b <= 64; b++) {
		char where[128];
		ferry_request *r;

		if ((b != 1 && b != 7 && b != 64) || b > ferry_model_max_batch_size(m))
			continue;
		snprintf(where, sizeof(where), "%s over %s, batch %d", name, grpc ? "gRPC" : "shm", b);
		cr_assert_eq(ferry_request_new(m, &r), 0);
		fill(r, file, b);
		cr_assert_eq(ferry_infer(c, r, 60 * SEC), 0, "%s: %s", where, ferry_last_error());
		check(r, file, b, where);
		ferry_request_free(r);
		done++;
	}
	cr_assert_gt(done, 0, "%s: no batch size fits", name);
	ferry_close(c);
}

Test(ort, transformer_autocompleted_shm) { serve("transformer", "transformer", false); }
Test(ort, transformer_autocompleted_grpc) { serve("transformer", "transformer", true); }
Test(ort, topk_gather_expand_shm) { serve("topk_gather", "topk_gather", false); }
Test(ort, topk_gather_expand_grpc) { serve("topk_gather", "topk_gather", true); }
Test(ort, gru_shm) { serve("gru", "gru", false); }
Test(ort, gru_grpc) { serve("gru", "gru", true); }
Test(ort, cnn_shm) { serve("cnn", "cnn", false); }
Test(ort, cnn_grpc) { serve("cnn", "cnn", true); }
Test(ort, cnn_inline_shm) { serve("cnn_inline", "cnn", false); }
Test(ort, intbool_shm) { serve("intbool", "intbool", false); }
Test(ort, intbool_grpc) { serve("intbool", "intbool", true); }
/* every dtype KServe v2 and ONNX share, BYTES as ONNX strings, through
 * Identity: bit for bit */
Test(ort, every_dtype_round_trip_shm) { serve("dtypes", "dtypes", false); }
Test(ort, every_dtype_round_trip_grpc) { serve("dtypes", "dtypes", true); }

/* ------------------------------------------------------------------ */
/* Auto-complete                                                       */

static void expect_tensor(ferry_model *m, bool out, int i, const char *name, ferry_dtype dt,
			  int nd, const int64_t *dims)
{
	const char *n;
	ferry_dtype d;
	const int64_t *dd;
	int k;

	cr_assert_eq(out ? ferry_model_output(m, i, &n, &d, &dd, &k)
			 : ferry_model_input(m, i, &n, &d, &dd, &k), 0);
	cr_assert_str_eq(n, name);
	cr_assert_eq(d, dt, "%s: dtype %d", name, d);
	cr_assert_eq(k, nd, "%s: %d dims", name, k);
	for (int j = 0; j < nd; j++)
		cr_assert_eq(dd[j], dims[j], "%s: dim %d is %lld", name, j, (long long)dd[j]);
}

static void autocompleted(bool grpc)
{
	ferry_client *c = conn(grpc);
	ferry_model *m;
	static const int64_t sd[] = { 8, 32 }, k4[] = { 4 }, k4e[] = { 4, 8 };

	/* no config.pbtxt: Triton's default max_batch_size 4, batch removed */
	cr_assert_eq(ferry_model_get(c, "transformer", FERRY_LATEST, &m), 0, "%s",
		     ferry_last_error());
	cr_assert_eq(ferry_model_max_batch_size(m), 4);
	cr_assert_eq(ferry_model_ninputs(m), 1);
	cr_assert_eq(ferry_model_noutputs(m), 1);
	expect_tensor(m, false, 0, "x", FERRY_TYPE_FP32, 2, sd);
	expect_tensor(m, true, 0, "y", FERRY_TYPE_FP32, 2, sd);
	/* max_batch_size from the config, three outputs of two types */
	cr_assert_eq(ferry_model_get(c, "topk_gather", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_model_max_batch_size(m), 16);
	cr_assert_eq(ferry_model_noutputs(m), 3);
	expect_tensor(m, true, 0, "values", FERRY_TYPE_FP32, 1, k4);
	expect_tensor(m, true, 1, "indices", FERRY_TYPE_INT64, 1, k4);
	expect_tensor(m, true, 2, "emb", FERRY_TYPE_FP32, 2, k4e);
	cr_assert_eq(ferry_model_get(c, "dtypes", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_model_ninputs(m), 14);
	ferry_close(c);
}

Test(ort, configs_autocompleted_shm) { autocompleted(false); }
Test(ort, configs_autocompleted_grpc) { autocompleted(true); }

/* ------------------------------------------------------------------ */
/* Dynamic batching across clients                                     */

struct client_arg {
	int id, failures;
	char msg[300];
};

static void *client_main(void *p)
{
	struct client_arg *a = p;
	ferry_client *c;
	ferry_model *m;
	enum { INFLIGHT = 8, ROUNDS = 6 };
	ferry_request *rs[INFLIGHT];
	int n;
	struct mtensor *t = manifest(&n), *in = NULL, *out = NULL;
	size_t inlen, outlen;

	for (int i = 0; i < n; i++)
		if (!strcmp(t[i].model, "cnn") && t[i].batch == 7)
			*(t[i].out ? &out : &in) = &t[i];
	float *x = tensor_file(in, &inlen), *y = tensor_file(out, &outlen);
	if (ferry_connect(&c, B.sock, NULL) || ferry_model_get(c, "cnn", FERRY_LATEST, &m)) {
		snprintf(a->msg, sizeof(a->msg), "connect: %s", ferry_last_error());
		a->failures++;
		goto out;
	}
	for (int k = 0; k < INFLIGHT; k++)
		ferry_request_new(m, &rs[k]);
	for (int round = 0; round < ROUNDS && !a->failures; round++) {
		for (int k = 0; k < INFLIGHT; k++) {
			int row = (a->id + round + k) % 7;
			int64_t d[4] = { 1, 3, 16, 16 };
			float *dst;
			ferry_request_reset(rs[k]);
			if (ferry_request_input(rs[k], "x", FERRY_TYPE_FP32, d, 4, (void **)&dst)) {
				snprintf(a->msg, sizeof(a->msg), "input: %s", ferry_last_error());
				a->failures++;
				break;
			}
			memcpy(dst, x + (size_t)row * 768, 768 * sizeof(float));
			if (ferry_infer_async(c, rs[k], NULL, NULL)) {
				snprintf(a->msg, sizeof(a->msg), "submit: %s", ferry_last_error());
				a->failures++;
				break;
			}
		}
		for (int k = 0; k < INFLIGHT && !a->failures; k++) {
			int row = (a->id + round + k) % 7;
			const float *got;
			size_t bytes;
			if (ferry_request_wait(rs[k], 30 * SEC) ||
			    ferry_request_output(rs[k], "logits", NULL, NULL, NULL,
						 (const void **)&got, &bytes)) {
				snprintf(a->msg, sizeof(a->msg), "wait: %s", ferry_last_error());
				a->failures++;
				break;
			}
			for (int j = 0; j < 10; j++) {
				float w = y[row * 10 + j];
				if (fabs(got[j] - w) > ATOL + RTOL * fabs(w)) {
					snprintf(a->msg, sizeof(a->msg), "client %d row %d [%d]: %g, "
						 "onnxruntime %g", a->id, row, j, got[j], w);
					a->failures++;
					break;
				}
			}
		}
	}
	for (int k = 0; k < INFLIGHT; k++)
		ferry_request_free(rs[k]);
	ferry_close(c);
out:
	free(x);
	free(y);
	return NULL;
}

static void add_batches(void *arg, const ferry_model_stats *s)
{
	uint64_t *multi = arg;

	for (int b = 2; b <= 64; b++)
		*multi += s->batch_executions[b];
}

/* Four clients, eight requests each in flight: the dynamic batcher forms
 * batches of several clients' rows, and each row comes back to its own
 * request. */
Test(ort, dynamic_batching_across_clients)
{
	pthread_t th[4];
	struct client_arg args[4];
	uint64_t multi = 0;
	int n;

	/* The manifest is read once, here, before the clients' threads look
	 * it up (it is a lazily filled static, not made for concurrent first
	 * calls: a client that found it half read crashed on a NULL tensor). */
	manifest(&n);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct client_arg){ .id = i };
		cr_assert_eq(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(args[i].failures, 0, "%s", args[i].msg);
	ferry_client *c = conn(false);
	cr_assert_geq(ferry_model_statistics(c, "cnn", FERRY_LATEST, add_batches, &multi), 1);
	cr_expect_gt(multi, 0, "no execution of the cnn batched several requests");
	ferry_close(c);
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

struct reason_arg {
	const char *model;
	char state[32], reason[1024];
};

static void find_reason(void *arg, const ferry_model_info *m)
{
	struct reason_arg *a = arg;

	if (!strcmp(m->name, a->model)) {
		snprintf(a->state, sizeof(a->state), "%s", m->state);
		snprintf(a->reason, sizeof(a->reason), "%s", m->reason);
	}
}

/* A model onnxruntime cannot load is UNAVAILABLE with onnxruntime's own
 * words, in the start-up table (the log) and over every admin surface;
 * the others serve. */
static void unloadable(const char *model, const char *words)
{
	char cmd[1024];

	for (int grpc = 0; grpc < 2; grpc++) {
		ferry_client *c = conn(grpc);
		ferry_model *m;
		struct reason_arg a = { .model = model };
		cr_assert_neq(ferry_model_get(c, model, FERRY_LATEST, &m), 0, "%s loaded", model);
		cr_assert_geq(ferry_model_list_info(c, find_reason, &a), 1, "%s",
			      ferry_last_error());
		cr_assert_str_eq(a.state, "UNAVAILABLE", "%s over %s", model, grpc ? "gRPC" : "shm");
		cr_assert(strstr(a.reason, words), "%s over %s: reason '%s' lacks '%s'", model,
			  grpc ? "gRPC" : "shm", a.reason, words);
		ferry_close(c);
	}
	snprintf(cmd, sizeof(cmd), "grep '%s' %s | grep -q '%s'", model, B.log, words);
	cr_expect_eq(system(cmd), 0, "the log has no line for %s with '%s'", model, words);
}

Test(ort, unloadable_models_report_onnxruntimes_message)
{
	unloadable("broken", "onnxruntime cannot load");
	unloadable("broken", "Protobuf parsing failed");
	unloadable("unknown_op", "Frobnicate");
	serve("cnn", "cnn", false);
}

/* A shape the config allows and onnxruntime refuses fails that request
 * with onnxruntime's message; the broker and the model carry on. */
Test(ort, shape_onnxruntime_refuses_fails_the_request_only)
{
	ferry_client *c = conn(false);
	ferry_model *m;
	ferry_request *r;
	int64_t d[3] = { 2, 5, 32 };
	float *x;

	cr_assert_eq(ferry_model_get(c, "transformer_var", FERRY_LATEST, &m), 0, "%s",
		     ferry_last_error());
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "x", FERRY_TYPE_FP32, d, 3, (void **)&x), 0);
	for (int i = 0; i < 2 * 5 * 32; i++)
		x[i] = (float)i / 100;
	cr_assert_eq(ferry_request_want_output(r, "y", 2 * 5 * 32 * sizeof(float)), 0);
	cr_assert_neq(ferry_infer(c, r, 30 * SEC), 0);
	cr_assert(strstr(ferry_last_error(), "onnxruntime"), "%s", ferry_last_error());
	cr_assert(strstr(ferry_last_error(), "dimensions"), "%s", ferry_last_error());
	ferry_request_free(r);
	ferry_close(c);
	/* the same model, a shape it takes */
	serve("transformer_var", "transformer", false);
	cr_assert(th_alive(B.pid));
}

/* ------------------------------------------------------------------ */
/* A node without ONNX Runtime                                         */

static void start_without_ort(void)
{
	static const struct entry repo[] = {
		{ "mlp", "mlp", "platform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
		  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
		  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n" },
		{ "transformer", "transformer", NULL },
	};

	th_init(&B);
	for (size_t i = 0; i < sizeof(repo) / sizeof(repo[0]); i++)
		put_model(&repo[i]);
	grpc_port = th_free_port();
	char port[16];
	snprintf(port, sizeof(port), "%d", grpc_port);
	th_start(&B, "--log-level", "info", "--exit-on-error=false", "--grpc-port", port,
		 "--metrics-port", "0",
		 "--backend-config=onnxruntime,library=/nonexistent/libonnxruntime.so.1", NULL);
}

TestSuite(ort_missing, .init = start_without_ort, .fini = stop, .timeout = 60);

/* The library cannot be loaded: ferryd says why, Triton's names fall back
 * to the native executor, which serves what it can; a model it cannot run
 * says both why and that onnxruntime is missing. */
Test(ort_missing, native_executor_serves_and_the_log_says_why)
{
	char cmd[1024];

	serve("mlp", "mlp", false);
	snprintf(cmd, sizeof(cmd), "grep -q \"model 'mlp': onnxruntime is not available "
		 "(.*/nonexistent/libonnxruntime.so.1.*); served by the native executor 'onnx'\" %s",
		 B.log);
	cr_expect_eq(system(cmd), 0, "the log does not say why onnxruntime is missing");
	ferry_client *c = conn(false);
	ferry_model *m;
	struct reason_arg a = { .model = "transformer" };
	cr_assert_neq(ferry_model_get(c, "transformer", FERRY_LATEST, &m), 0);
	cr_assert_geq(ferry_model_list_info(c, find_reason, &a), 1);
	cr_assert(strstr(a.reason, "onnxruntime is not available"), "%s", a.reason);
	ferry_close(c);
}
