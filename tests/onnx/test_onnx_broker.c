/* SPDX-License-Identifier: MIT */
/*
 * test_onnx_broker.c - the "onnx" backend through a real ferryd
 *
 * run_onnx_broker.sh generates the models and onnxruntime's outputs
 * (gen_models.py) into $FERRY_ONNX_MODELS; each test copies some of them
 * into a Triton repository (config.pbtxt with platform "onnxruntime_onnx"
 * or backend "onnxruntime"), starts ferryd on it with
 * --exit-on-error=false and talks to it through libferry.  Outputs
 * must match onnxruntime's within
 *
 *     |a - b| <= 1e-4 * max(1, |b|)
 *
 * as in test_onnx.c.  ferryd gets --backend-directory pointing at the
 * plugin build of the backend, used only where ferryd lacks the built-in.
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
#define TOL 1e-4

static struct th_broker B;

/* model NAME (file NAME.onnx) with its config; "%s" is the name */
struct repo_model {
	const char *name, *file, *config;
};

#define MLP_CFG(head, extra)                                                   \
	"name: \"%s\"\n" head "\nmax_batch_size: 64\n"                         \
	"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"         \
	"output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n"         \
	"instance_group [ { count: 2 kind: KIND_CPU } ]\n"                    \
	"dynamic_batching { max_queue_delay_microseconds: 2000 }\n" extra

static const struct repo_model MODELS[] = {
	{ "mlp", "mlp.onnx", MLP_CFG("platform: \"onnxruntime_onnx\"", "") },
	{ "conv1d", "conv1d.onnx",
	  "name: \"%s\"\nbackend: \"onnxruntime\"\nmax_batch_size: 16\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4, 32 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 10 ] } ]\n"
	  "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
	  "dynamic_batching { max_queue_delay_microseconds: 1000 }\n" },
	{ "conv2d", "conv2d.onnx",
	  "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 32\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3, 16, 16 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 10 ] } ]\n"
	  "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
	  "dynamic_batching { max_queue_delay_microseconds: 2000 "
	  "preferred_batch_size: [ 8 ] }\n" },
	/* run by the polling thread (parameter ferry_inline) */
	{ "mlp_inline", "mlp.onnx",
	  MLP_CFG("platform: \"onnxruntime_onnx\"",
		  "parameters [ { key: \"ferry_inline\" value: { string_value: \"true\" } } ]\n") },
		/* max_batch_size 0: the batch is a fixed first dimension */
	{ "mlp_fixed7", "mlp.onnx",
	  "name: \"%s\"\nbackend: \"onnxruntime\"\nmax_batch_size: 0\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 7, 16 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 7, 5 ] } ]\n" },
	/* must fail: two unsupported operators */
	{ "unsupported", "neg_unsupported_ops.onnx",
	  "name: \"%s\"\nbackend: \"onnxruntime\"\nmax_batch_size: 8\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n" },
	/* must fail: the config disagrees with the file */
	{ "mlp_bad_dims", "mlp.onnx",
	  "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
	  "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 17 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n" },
	{ "mlp_bad_name", "mlp.onnx",
	  "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
	  "input [ { name: \"input\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n" },
	{ "mlp_int", "mlp.onnx",
	  "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
	  "input [ { name: \"x\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
	  "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n" },
	/* loads and runs on a machine with a GPU; elsewhere fails to load
	 * with a message about KIND_GPU */
	{ "mlp_gpu", "mlp.onnx",
	  MLP_CFG("platform: \"onnxruntime_onnx\"",
		  "instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]\n") },
};

static const char *models_dir(void)
{
	const char *d = getenv("FERRY_ONNX_MODELS");

	cr_assert_not_null(d, "FERRY_ONNX_MODELS is not set (run through run_onnx_broker.sh)");
	return d;
}

static float *load_floats(const char *model, int batch, const char *kind, size_t want)
{
	char path[1024];
	size_t len;
	float *p;

	snprintf(path, sizeof(path), "%s/%s.b%d.%s0.bin", models_dir(), model, batch, kind);
	p = th_slurp(path, &len);
	cr_assert_eq(len, want * sizeof(float), "%s: %zu bytes, expected %zu", path, len,
		     want * sizeof(float));
	return p;
}

static void start_broker(void)
{
	const char *build = getenv("FERRY_TOP_BUILDDIR");
	static char plugdir[1024];
	char cfg[2048], cmd[3000];

	cr_assert_not_null(build);
	snprintf(plugdir, sizeof(plugdir), "%s/tests/onnx/.libs", build);
	th_init(&B);
	for (size_t i = 0; i < sizeof(MODELS) / sizeof(MODELS[0]); i++) {
		snprintf(cfg, sizeof(cfg), MODELS[i].config, MODELS[i].name);
		th_model(&B, MODELS[i].name, cfg);
		snprintf(cmd, sizeof(cmd), "cp %s/%s %s/%s/1/model.onnx", models_dir(),
			 MODELS[i].file, B.repo, MODELS[i].name);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
	}
	th_start(&B, "--log-level", "info", "--exit-on-error=false",
		 "--backend-directory", plugdir, NULL);
}

static void stop_broker(void)
{
	int st = th_stop(&B);

	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

TestSuite(onnx_broker, .init = start_broker, .fini = stop_broker, .timeout = 60);

static ferry_client *conn(void)
{
	ferry_client *c;
	int ret = ferry_connect(&c, B.sock, NULL);

	cr_assert_eq(ret, 0, "connect: %s", ferry_last_error());
	return c;
}

static void check_close(const float *got, const float *want, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double tol = TOL * fmax(1.0, fabs(want[i]));

		cr_assert(fabs((double)got[i] - want[i]) <= tol,
			  "%s[%zu]: got %.8g, onnxruntime %.8g", what, i, got[i], want[i]);
	}
}

/* Run @rows rows of @in through @model, one request; compare with @ref. */
static void infer_rows(ferry_client *c, const char *model, const int64_t *dims, int nd,
		       const float *in, const float *ref, size_t in_row, size_t out_row,
		       int rows)
{
	ferry_model *m;
	ferry_request *r;
	float *x;
	const float *y;
	size_t bytes;
	int64_t d[8];

	memcpy(d, dims, (size_t)nd * sizeof(int64_t));
	d[0] = rows;
	cr_assert_eq(ferry_model_get(c, model, FERRY_LATEST, &m), 0, "%s: %s", model,
		     ferry_last_error());
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "x", FERRY_TYPE_FP32, d, nd, (void **)&x), 0,
		     "%s", ferry_last_error());
	memcpy(x, in, (size_t)rows * in_row * sizeof(float));
	cr_assert_eq(ferry_infer(c, r, 20 * SEC), 0, "%s: %s", model, ferry_last_error());
	cr_assert_eq(ferry_request_output(r, "y", NULL, NULL, NULL, (const void **)&y, &bytes),
		     0, "%s", ferry_last_error());
	cr_assert_eq(bytes, (size_t)rows * out_row * sizeof(float));
	check_close(y, ref, (size_t)rows * out_row, model);
	ferry_request_free(r);
}

struct net {
	const char *model;	/* repository name */
	const char *file;	/* gen_models.py name */
	int64_t dims[4];
	int nd;
	size_t in_row, out_row;
};

static const struct net MLP = { "mlp", "mlp", { 1, 16 }, 2, 16, 5 };
static const struct net CONV1D = { "conv1d", "conv1d", { 1, 4, 32 }, 3, 128, 10 };
static const struct net CONV2D = { "conv2d", "conv2d", { 1, 3, 16, 16 }, 4, 768, 10 };
static const struct net MLP_INLINE = { "mlp_inline", "mlp", { 1, 16 }, 2, 16, 5 };

static void net_batches(const struct net *n)
{
	ferry_client *c = conn();

	for (int b = 1; b <= 7; b += 6) {
		float *in = load_floats(n->file, b, "in", (size_t)b * n->in_row);
		float *ref = load_floats(n->file, b, "out", (size_t)b * n->out_row);

		infer_rows(c, n->model, n->dims, n->nd, in, ref, n->in_row, n->out_row, b);
		free(in);
		free(ref);
	}
	ferry_close(c);
}

Test(onnx_broker, mlp_batch_1_and_7) { net_batches(&MLP); }
Test(onnx_broker, conv1d_batch_1_and_7) { net_batches(&CONV1D); }
Test(onnx_broker, conv2d_batch_1_and_7) { net_batches(&CONV2D); }
Test(onnx_broker, mlp_inline_batch_1_and_7) { net_batches(&MLP_INLINE); }

Test(onnx_broker, fixed_batch_without_max_batch_size)
{
	ferry_client *c = conn();
	float *in = load_floats("mlp", 7, "in", 7 * 16);
	float *ref = load_floats("mlp", 7, "out", 7 * 5);
	int64_t dims[2] = { 7, 16 };

	infer_rows(c, "mlp_fixed7", dims, 2, in, ref, 16, 5, 7);
	free(in);
	free(ref);
	ferry_close(c);
}

/*
 * Several clients at once, each with many single-row and 7-row requests in
 * flight, so the dynamic batcher mixes rows of different clients and
 * sizes in one batch; every row must still come back to its own request.
 */
struct client_arg {
	const struct net *n;
	int id, rounds;
	const float *in1, *in7, *ref7;
	int failures;
	char msg[256];
};

#define INFLIGHT 8

static void *client_main(void *p)
{
	struct client_arg *a = p;
	const struct net *n = a->n;
	ferry_client *c;
	ferry_model *m;
	ferry_request *rs[INFLIGHT];
	int rows[INFLIGHT];

	if (ferry_connect(&c, B.sock, NULL) || ferry_model_get(c, n->model, FERRY_LATEST, &m)) {
		snprintf(a->msg, sizeof(a->msg), "connect: %s", ferry_last_error());
		a->failures++;
		return NULL;
	}
	for (int k = 0; k < INFLIGHT; k++)
		ferry_request_new(m, &rs[k]);
	for (int round = 0; round < a->rounds && !a->failures; round++) {
		for (int k = 0; k < INFLIGHT; k++) {
			/* one request in four carries the 7 rows, the others
			 * one row each, at rotating positions */
			int64_t d[4];
			float *x;
			int rowsel = (a->id + round + k) % 7;

			memcpy(d, n->dims, sizeof(d));
			rows[k] = (k % 4 == 3) ? 7 : 1;
			d[0] = rows[k];
			ferry_request_reset(rs[k]);
			if (ferry_request_input(rs[k], "x", FERRY_TYPE_FP32, d, n->nd,
						(void **)&x)) {
				snprintf(a->msg, sizeof(a->msg), "input: %s", ferry_last_error());
				a->failures++;
				break;
			}
			if (rows[k] == 7) {
				memcpy(x, a->in7, 7 * n->in_row * sizeof(float));
			} else {
				memcpy(x, a->in7 + (size_t)rowsel * n->in_row,
				       n->in_row * sizeof(float));
				rows[k] = -1 - rowsel;	/* remember the row */
			}
			if (ferry_infer_async(c, rs[k], NULL, NULL)) {
				snprintf(a->msg, sizeof(a->msg), "submit: %s", ferry_last_error());
				a->failures++;
				break;
			}
		}
		for (int k = 0; k < INFLIGHT && !a->failures; k++) {
			const float *y, *want;
			size_t cnt, bytes;

			if (ferry_request_wait(rs[k], 20 * SEC)) {
				snprintf(a->msg, sizeof(a->msg), "wait: %s", ferry_last_error());
				a->failures++;
				break;
			}
			ferry_request_output(rs[k], "y", NULL, NULL, NULL, (const void **)&y,
					     &bytes);
			want = rows[k] == 7 ? a->ref7 : a->ref7 + (size_t)(-1 - rows[k]) * n->out_row;
			cnt = rows[k] == 7 ? 7 * n->out_row : n->out_row;
			if (bytes != cnt * sizeof(float)) {
				snprintf(a->msg, sizeof(a->msg), "%zu output bytes", bytes);
				a->failures++;
				break;
			}
			for (size_t i = 0; i < cnt; i++) {
				if (fabs((double)y[i] - want[i]) > TOL * fmax(1.0, fabs(want[i]))) {
					snprintf(a->msg, sizeof(a->msg), "client %d round %d "
						 "request %d [%zu]: got %g, want %g", a->id,
						 round, k, i, y[i], want[i]);
					a->failures++;
					break;
				}
			}
		}
	}
	for (int k = 0; k < INFLIGHT; k++)
		ferry_request_free(rs[k]);
	ferry_close(c);
	return NULL;
}

static void add_stats(void *arg, const ferry_model_stats *s)
{
	uint64_t *acc = arg;
	acc[0] += s->success;
	acc[1] += s->execution_count;
}

/* The broker's request and execution counts of a model, so far. */
static void model_counts(const char *model, uint64_t *requests, uint64_t *executions)
{
	ferry_client *c = conn();
	uint64_t acc[2] = { 0, 0 };
	cr_assert_gt(ferry_model_statistics(c, model, FERRY_LATEST, add_stats, acc), 0, "%s",
		     ferry_last_error());
	ferry_close(c);
	*requests = acc[0];
	*executions = acc[1];
}

/* nclients threads, each with INFLIGHT requests in flight for rounds
 * rounds, every output checked.  batches: the broker must also have run
 * them in batches (fewer executions than requests, from its statistics). */
static void concurrent(const struct net *n, int nclients, int rounds, bool batches)
{
	pthread_t th[8];
	struct client_arg args[8];
	float *in7 = load_floats(n->file, 7, "in", 7 * n->in_row);
	float *ref7 = load_floats(n->file, 7, "out", 7 * n->out_row);
	uint64_t req0, exe0, req1, exe1;

	model_counts(n->model, &req0, &exe0);
	for (int i = 0; i < nclients; i++) {
		args[i] = (struct client_arg){ .n = n, .id = i, .rounds = rounds,
					       .in7 = in7, .ref7 = ref7 };
		cr_assert_eq(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
	}
	for (int i = 0; i < nclients; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < nclients; i++)
		cr_expect_eq(args[i].failures, 0, "%s", args[i].msg);
	free(in7);
	free(ref7);
	model_counts(n->model, &req1, &exe1);
	uint64_t sent = (uint64_t)nclients * (uint64_t)rounds * INFLIGHT;
	cr_log_info("%s: %llu requests in %llu executions", n->model,
		    (unsigned long long)(req1 - req0), (unsigned long long)(exe1 - exe0));
	cr_expect_eq(req1 - req0, sent, "%s: the broker counted %llu requests, %llu were sent",
		     n->model, (unsigned long long)(req1 - req0), (unsigned long long)sent);
	if (batches)
		cr_expect_lt(exe1 - exe0, req1 - req0, "%s: no batch formed: %llu requests in "
			     "%llu executions", n->model, (unsigned long long)(req1 - req0),
			     (unsigned long long)(exe1 - exe0));
}

Test(onnx_broker, mlp_four_clients_batches_form) { concurrent(&MLP, 4, 30, true); }
Test(onnx_broker, mlp_inline_four_clients) { concurrent(&MLP_INLINE, 4, 30, false); }
Test(onnx_broker, conv2d_three_clients_batches_form) { concurrent(&CONV2D, 3, 8, true); }
Test(onnx_broker, conv1d_three_clients_batches_form) { concurrent(&CONV1D, 3, 10, true); }

/* The model fails to load; the message names the model's problem, the
 * log names it too, and the other models serve. */
static void expect_unavailable(ferry_client *c, const char *model, const char *const *words)
{
	ferry_model *m;
	char cmd[1024];

	cr_assert_neq(ferry_model_get(c, model, FERRY_LATEST, &m), 0,
		      "model '%s' loaded but must not", model);
	for (int i = 0; words[i]; i++) {
		snprintf(cmd, sizeof(cmd), "grep -q -e \"%s\" %s", words[i], B.log);
		cr_expect_eq(system(cmd), 0, "ferryd's log does not mention '%s' for '%s'",
			     words[i], model);
	}
}

Test(onnx_broker, unsupported_ops_fail_to_load_others_serve)
{
	ferry_client *c = conn();
	static const char *const w[] = { "lstm_1", "LSTM", "hardmax_7", "Hardmax", NULL };

	expect_unavailable(c, "unsupported", w);
	ferry_close(c);
	net_batches(&MLP);
}

Test(onnx_broker, config_mismatches_fail_with_clear_messages)
{
	ferry_client *c = conn();
	static const char *const dims[] = { "'x' has dims \\[17\\]", "model.onnx has \\[16\\]",
					    NULL };
	static const char *const name[] = { "'input' is not an input of model.onnx", "'x'",
					    NULL };
	static const char *const dt[] = { "TYPE_FP32", "INT32", NULL };

	expect_unavailable(c, "mlp_bad_dims", dims);
	expect_unavailable(c, "mlp_bad_name", name);
	expect_unavailable(c, "mlp_int", dt);
	ferry_close(c);
}

/* Where ferryd sees a GPU this runs the MLP on it; elsewhere the model must
 * fail to load with a message about KIND_GPU while the CPU models serve. */
Test(onnx_broker, kind_gpu_serves_or_fails_cleanly)
{
	ferry_client *c = conn();
	ferry_model *m;
	char cmd[600];

	if (ferry_model_get(c, "mlp_gpu", FERRY_LATEST, &m) == 0) {
		struct net g = MLP;

		g.model = "mlp_gpu";
		ferry_close(c);
		net_batches(&g);
		concurrent(&g, 4, 20, true);
		return;
	}
	snprintf(cmd, sizeof(cmd), "grep -q 'mlp_gpu.*KIND_GPU' %s", B.log);
	cr_expect_eq(system(cmd), 0, "the log does not explain the KIND_GPU failure");
	ferry_close(c);
	net_batches(&MLP);
}
