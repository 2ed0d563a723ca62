/* SPDX-License-Identifier: MIT */
/*
 * test_onnx.c - the ONNX executor against onnxruntime's outputs
 *
 * The models, inputs and reference outputs come from gen_models.py, run by
 * run_onnx_tests.sh into the directory in $FERRY_ONNX_MODELS; its MANIFEST
 * lists them.  Each "case" line becomes one test (load, run, compare); each
 * "fail" line one test that the load fails with the right code and a
 * message naming what is wrong.
 *
 * Tolerance: an output value a matches the reference b when
 *     |a - b| <= 1e-4 * max(1, |b|)
 * i.e. an absolute error of 1e-4 for values up to 1 in magnitude and a
 * relative error of 1e-4 above; NaN matches only NaN.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/backends/onnx/ox_exec.h"

#define TOL 1e-4

struct mline {
	char text[2048];
};

static const char *models_dir(void)
{
	return getenv("FERRY_ONNX_MODELS");
}

static void *read_file(const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	void *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", models_dir(), name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

/* Manifest lines starting with @kind, copied into Criterion's memory. */
static struct mline *manifest_lines(const char *kind, size_t *count)
{
	char path[4096], line[2048];
	struct mline *v;
	size_t n = 0, i = 0, kl = strlen(kind);
	FILE *f;

	*count = 0;
	if (!models_dir())
		return NULL;
	snprintf(path, sizeof(path), "%s/MANIFEST", models_dir());
	f = fopen(path, "r");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, kind, kl) == 0 && line[kl] == ' ')
			n++;
	v = cr_malloc(sizeof(*v) * (n ? n : 1));
	rewind(f);
	while (v && i < n && fgets(line, sizeof(line), f)) {
		if (strncmp(line, kind, kl) != 0 || line[kl] != ' ')
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(v[i++].text, sizeof(v[0].text), "%s", line);
	}
	fclose(f);
	*count = i;
	return v;
}

static void free_lines(struct criterion_test_params *p)
{
	cr_free(p->params);
}

/* Split @s in place on spaces. */
static int split(char *s, char **w, int max)
{
	int n = 0;

	for (char *t = strtok(s, " "); t && n < max; t = strtok(NULL, " "))
		w[n++] = t;
	return n;
}

static bool close_enough(float a, float b)
{
	if (isnan(b) || isnan(a))
		return isnan(a) && isnan(b);
	return fabs((double)a - (double)b) <= TOL * fmax(1.0, fabs((double)b));
}

/* A loaded model, or a failed test. */
static struct ox_model *load_model(const char *file)
{
	char err[1024];
	struct ox_model *m = NULL;
	size_t len;
	void *buf = read_file(file, &len);
	int rc;

	cr_assert(buf, "cannot read %s", file);
	rc = ox_model_load(buf, len, &m, err, sizeof(err));
	free(buf);
	cr_assert_eq(rc, 0, "%s: %s (%s)", file, ferry_errname(rc), err);
	return m;
}

/* ---------------------------------------------------------------------- */

ParameterizedTestParameters(onnx, reference)
{
	size_t n;
	struct mline *v = manifest_lines("case", &n);

	return cr_make_param_array(struct mline, v, n, free_lines);
}

ParameterizedTest(struct mline *p, onnx, reference)
{
	char buf[sizeof(p->text)], *w[64];
	int nw, batch, nin, nout, rc;
	struct ox_model *m;
	struct ox_ctx *ctx;
	const float *in[16];
	float *out[16], *ref[16];
	size_t outn[16];

	memcpy(buf, p->text, sizeof(buf));
	nw = split(buf, w, 64);
	cr_assert_geq(nw, 6);
	batch = atoi(w[3]);
	nin = atoi(w[4]);
	cr_assert(nin >= 0 && nin < 16 && 5 + nin < nw);
	nout = atoi(w[5 + nin]);
	cr_assert(nout > 0 && nout < 16 && 6 + nin + nout == nw);
	cr_log_info("%s at batch %d", w[1], batch);

	m = load_model(w[2]);
	cr_assert_eq(ox_model_num_inputs(m), nin);
	cr_assert_eq(ox_model_num_outputs(m), nout);
	/* a context for more than the batch: smaller batches must work */
	rc = ox_ctx_create(m, batch + 3, &ctx);
	cr_assert_eq(rc, 0, "ctx: %s", ferry_errname(rc));
	for (int i = 0; i < nin; i++) {
		struct ox_tensor_info ti;
		size_t len;

		cr_assert_eq(ox_model_input(m, i, &ti), 0);
		in[i] = read_file(w[5 + i], &len);
		cr_assert(in[i]);
		cr_assert_eq(len, ox_tensor_numel(&ti, batch) * sizeof(float),
			     "%s: input %d has %zu bytes", w[1], i, len);
	}
	for (int i = 0; i < nout; i++) {
		struct ox_tensor_info ti;
		size_t len;

		cr_assert_eq(ox_model_output(m, i, &ti), 0);
		ref[i] = read_file(w[6 + nin + i], &len);
		cr_assert(ref[i]);
		outn[i] = ox_tensor_numel(&ti, batch);
		cr_assert_eq(len, outn[i] * sizeof(float),
			     "%s: output %d ('%s') has %zu bytes, expected %zu",
			     w[1], i, ti.name, len, outn[i] * sizeof(float));
		out[i] = malloc(len);
		/* poison: every element must be written */
		for (size_t k = 0; k < outn[i]; k++)
			out[i][k] = NAN;
	}
	/* twice: the second run must not depend on the first's leftovers */
	for (int pass = 0; pass < 2; pass++) {
		rc = ox_run(ctx, batch, in, out);
		cr_assert_eq(rc, 0, "run: %s", ferry_errname(rc));
		for (int i = 0; i < nout; i++) {
			double worst = 0;
			size_t at = 0;
			bool ok = true;

			for (size_t k = 0; k < outn[i]; k++) {
				double e = fabs((double)out[i][k] - ref[i][k]) /
					   fmax(1.0, fabs((double)ref[i][k]));

				if (!close_enough(out[i][k], ref[i][k]) ||
				    e > worst) {
					if (!close_enough(out[i][k], ref[i][k]))
						ok = false;
					worst = isnan(e) ? INFINITY : e;
					at = k;
				}
			}
			cr_expect(ok, "%s b%d output %d: worst error %g at %zu (got %g, want %g)",
				  w[1], batch, i, worst, at, out[i][at],
				  ref[i][at]);
		}
	}
	for (int i = 0; i < nin; i++)
		free((void *)in[i]);
	for (int i = 0; i < nout; i++) {
		free(out[i]);
		free(ref[i]);
	}
	ox_ctx_free(ctx);
	ox_model_free(m);
}

ParameterizedTestParameters(onnx, rejects)
{
	size_t n;
	struct mline *v = manifest_lines("fail", &n);

	return cr_make_param_array(struct mline, v, n, free_lines);
}

ParameterizedTest(struct mline *p, onnx, rejects)
{
	char buf[sizeof(p->text)], *w[32], err[1024];
	struct ox_model *m = (struct ox_model *)1;
	int nw, rc, want;
	size_t len;
	void *data;

	memcpy(buf, p->text, sizeof(buf));
	nw = split(buf, w, 32);
	cr_assert_geq(nw, 4);
	data = read_file(w[2], &len);
	cr_assert(data || len == 0);
	want = strcmp(w[3], "ENOTSUP") == 0 ? FERRY_ENOTSUP : FERRY_EBADMSG;
	rc = ox_model_load(data, len, &m, err, sizeof(err));
	free(data);
	cr_assert_eq(rc, want, "%s: got %s (%s), want %s", w[1],
		     ferry_errname(rc), err, w[3]);
	cr_assert_null(m);
	cr_log_info("%s: %s", w[1], err);
	for (int i = 4; i < nw; i++)
		cr_expect(strstr(err, w[i]), "%s: message '%s' lacks '%s'",
			  w[1], err, w[i]);
}

/* ---------------------------------------------------------------------- */

Test(onnx, describes_inputs_and_outputs)
{
	struct ox_model *m = load_model("mlp.onnx");
	struct ox_tensor_info ti;

	cr_assert_eq(ox_model_num_inputs(m), 1);
	cr_assert_eq(ox_model_input(m, 0, &ti), 0);
	cr_expect_str_eq(ti.name, "x");
	cr_expect_eq(ti.dtype, OX_FLOAT32);
	cr_expect_eq(ti.rank, 2);
	cr_expect_eq(ti.batched, 1);
	cr_expect_eq(ti.dims[0], -1);
	cr_expect_eq(ti.dims[1], 16);
	cr_expect_eq(ox_tensor_numel(&ti, 7), 7 * 16);
	cr_assert_eq(ox_model_output(m, 0, &ti), 0);
	cr_expect_str_eq(ti.name, "y");
	cr_expect_eq(ti.dims[0], -1);
	cr_expect_eq(ti.dims[1], 5);
	cr_expect_eq(ox_model_input(m, 1, &ti), FERRY_EINVAL);
	cr_expect_eq(ox_model_output(m, -1, &ti), FERRY_EINVAL);
	cr_expect_geq(ox_model_opset(m), OX_MIN_OPSET);
	ox_model_free(m);
}

Test(onnx, run_checks_the_batch)
{
	struct ox_model *m = load_model("mlp.onnx");
	struct ox_ctx *ctx;
	float x[4 * 16] = { 0 }, y[4 * 5];
	const float *in[1] = { x };
	float *out[1] = { y };

	cr_assert_eq(ox_ctx_create(m, 4, &ctx), 0);
	cr_expect_eq(ox_run(ctx, 0, in, out), FERRY_EINVAL);
	cr_expect_eq(ox_run(ctx, 5, in, out), FERRY_EINVAL);
	cr_expect_eq(ox_run(ctx, 4, in, out), 0);
	cr_expect_eq(ox_run(ctx, 1, in, out), 0);
	cr_expect_eq(ox_ctx_create(m, 0, &(struct ox_ctx *){ NULL }),
		     FERRY_EINVAL);
	/* softmax rows of a zero input through the net still sum to 1 */
	float s = 0;

	for (int i = 0; i < 5; i++)
		s += y[i];
	cr_expect(fabsf(s - 1.0f) < 1e-5f);
	ox_ctx_free(ctx);
	ox_model_free(m);
}

Test(onnx, arena_is_smaller_than_all_tensors)
{
	struct ox_model *m = load_model("conv2d.onnx");
	struct ox_ctx *ctx;

	cr_assert_eq(ox_ctx_create(m, 64, &ctx), 0);
	/* conv2d: 8x16x16 + 8x16x16 + 8x16x16 + 8x8x8 ... floats per item;
	 * reuse keeps the arena near two of the largest tensors plus the
	 * im2col scratch */
	cr_log_info("conv2d arena at batch 64: %zu bytes",
		    ox_ctx_arena_bytes(ctx));
	cr_expect_lt(ox_ctx_arena_bytes(ctx),
		     (size_t)64 * 4 * (3 * 8 * 16 * 16) + 27 * 256 * 4 + 4096);
	ox_ctx_free(ctx);
	ox_model_free(m);
}

struct thr {
	const struct ox_model *m;
	const float *x;
	const float *ref;
	int ok;
};

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	struct ox_ctx *ctx;
	float y[7 * 5];
	const float *in[1] = { t->x };
	float *out[1] = { y };

	t->ok = 0;
	if (ox_ctx_create(t->m, 7, &ctx))
		return NULL;
	t->ok = 1;
	for (int it = 0; it < 200; it++) {
		if (ox_run(ctx, 7, in, out)) {
			t->ok = 0;
			break;
		}
		for (int i = 0; i < 7 * 5; i++)
			if (!close_enough(y[i], t->ref[i]))
				t->ok = 0;
	}
	ox_ctx_free(ctx);
	return NULL;
}

Test(onnx, one_model_many_threads)
{
	struct ox_model *m = load_model("mlp.onnx");
	size_t len;
	float *x = read_file("mlp.b7.in0.bin", &len);
	float *ref = read_file("mlp.b7.out0.bin", &len);
	pthread_t th[4];
	struct thr t[4];

	cr_assert(x && ref);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){ .m = m, .x = x, .ref = ref };
		cr_assert_eq(pthread_create(&th[i], NULL, thr_run, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_expect(t[i].ok, "thread %d", i);
	}
	free(x);
	free(ref);
	ox_model_free(m);
}

/* A model that loads after damage must also run without a fault. */
static void load_and_maybe_run(const void *buf, size_t len)
{
	char err[256];
	struct ox_model *m = NULL;
	struct ox_ctx *ctx;
	int rc = ox_model_load(buf, len, &m, err, sizeof(err));

	if (rc) {
		cr_assert_null(m);
		cr_assert(rc == FERRY_EBADMSG || rc == FERRY_ENOTSUP ||
			  rc == FERRY_E2BIG, "unexpected %s", ferry_errname(rc));
		cr_assert(err[0], "empty message for %s", ferry_errname(rc));
		return;
	}
	if (ox_ctx_create(m, 3, &ctx) == 0) {
		const float *in[64];
		float *out[64];
		int ni = ox_model_num_inputs(m), no = ox_model_num_outputs(m);

		if (ni <= 64 && no <= 64) {
			for (int i = 0; i < ni; i++) {
				struct ox_tensor_info ti;

				ox_model_input(m, i, &ti);
				in[i] = calloc(ox_tensor_numel(&ti, 3) + 1,
					       sizeof(float));
			}
			for (int i = 0; i < no; i++) {
				struct ox_tensor_info ti;

				ox_model_output(m, i, &ti);
				out[i] = calloc(ox_tensor_numel(&ti, 3) + 1,
						sizeof(float));
			}
			/* sizes small enough to allocate: run it */
			ox_run(ctx, 3, in, out);
			for (int i = 0; i < ni; i++)
				free((void *)in[i]);
			for (int i = 0; i < no; i++)
				free(out[i]);
		}
		ox_ctx_free(ctx);
	}
	ox_model_free(m);
}

Test(onnx, truncated_models_fail_cleanly)
{
	static const char *files[] = { "mlp.onnx", "conv2d.onnx",
				       "reshape_constant_node.onnx" };

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		unsigned char *buf = read_file(files[f], &len);
		size_t step = len > 1500 ? len / 1500 : 1;

		cr_assert(buf);
		for (size_t cut = 0; cut < len; cut += step) {
			/* a fresh copy of exactly @cut bytes, so ASan sees
			 * any read past the end */
			unsigned char *t = malloc(cut ? cut : 1);

			memcpy(t, buf, cut);
			load_and_maybe_run(t, cut);
			free(t);
		}
		free(buf);
	}
}

Test(onnx, corrupted_models_fail_cleanly)
{
	static const char *files[] = { "mlp.onnx", "conv2d.onnx",
				       "concat_axis0.onnx",
				       "unsqueeze_squeeze_const.onnx" };
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		unsigned char *buf = read_file(files[f], &len);

		cr_assert(buf && len);
		for (int it = 0; it < 400; it++) {
			unsigned char *t = malloc(len);
			int flips = 1 + it % 4;

			memcpy(t, buf, len);
			for (int k = 0; k < flips; k++) {
				/* xorshift: reproducible damage */
				s ^= s << 13;
				s ^= s >> 7;
				s ^= s << 17;
				t[s % len] ^= (unsigned char)(1u << (s >> 32) % 8);
			}
			load_and_maybe_run(t, len);
			free(t);
		}
		free(buf);
	}
}

Test(onnx, garbage_fails_cleanly)
{
	uint64_t s = 12345;
	unsigned char buf[512];

	for (int it = 0; it < 500; it++) {
		size_t len = 1 + it % sizeof(buf);

		for (size_t i = 0; i < len; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			buf[i] = (unsigned char)(s >> 56);
		}
		load_and_maybe_run(buf, len);
	}
	cr_expect_eq(ox_model_load(NULL, 0, &(struct ox_model *){ NULL },
				   NULL, 0), FERRY_EBADMSG);
	cr_expect_eq(ox_model_load(NULL, 4, &(struct ox_model *){ NULL },
				   NULL, 0), FERRY_EINVAL);
}
