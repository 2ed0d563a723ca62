/* SPDX-License-Identifier: MIT */
/*
 * fuzz_onnx - an ONNX ModelProto through the native executor's loader
 * (ox_model_load: protobuf-c unpacking, operator, type and shape checks,
 * planning) and, when it loads, one context and one run at batch 1, as the
 * onnx backend does with a model file from the repository.
 *
 * A loaded model is run only when its cost is small (the executor accepts
 * any tensor up to INT_MAX elements, which is correct for real models but
 * would make a fuzzer spend its time in big allocations and long
 * convolutions instead of finding bugs).  The estimate reads the planned
 * graph (ox_int.h): the harness may know the internals it tests.
 */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/backends/onnx/ox_int.h"
#include "tests/fuzz/fuzz.h"

/* Budget of one run at batch 1: elements per tensor, multiply-adds. */
#define FUZZ_ONNX_MAX_NUMEL (1 << 20)
#define FUZZ_ONNX_MAX_WORK  3e7

static bool fuzz_onnx__numel(const struct ox__tensor *t, double *out)
{
	double n = 1;

	for (int i = 0; i < t->rank; i++) {
		if (t->dims[i].c < 0)
			return false;
		n *= (double)t->dims[i].c;
	}
	*out = n;
	return n <= FUZZ_ONNX_MAX_NUMEL;
}

/* An upper bound on the multiply-adds of a run at batch 1, or a value
 * over the budget when some tensor is too large to allocate cheaply. */
static double fuzz_onnx__work(const struct ox_model *m)
{
	double work = 0, n, f;

	for (int i = 0; i < m->ntensors; i++)
		if (!fuzz_onnx__numel(&m->tensors[i], &n))
			return FUZZ_ONNX_MAX_WORK * 2;
	for (int i = 0; i < m->nsteps; i++) {
		const struct ox__step *s = &m->steps[i];
		if (!fuzz_onnx__numel(&m->tensors[s->out], &n))
			return FUZZ_ONNX_MAX_WORK * 2;
		f = 1 + s->nin;
		switch (s->op) {
		case OX__OP_GEMM:
		case OX__OP_MATMUL:
			/* K is one of the operands' dimensions. */
			for (int k = 0; k < s->nin && k < 2; k++) {
				const struct ox__tensor *t = &m->tensors[s->in[k]];
				for (int d = 0; d < t->rank; d++)
					if ((double)t->dims[d].c > f)
						f = (double)t->dims[d].c;
			}
			break;
		case OX__OP_CONV:
			/* C_in / group * kH * kW <= the weight's size. */
			if (s->nin > 1 && s->in[1] >= 0)
				fuzz_onnx__numel(&m->tensors[s->in[1]], &f);
			break;
		case OX__OP_MAXPOOL:
		case OX__OP_AVGPOOL:
			f = (double)s->win.k[0] * (double)s->win.k[1];
			break;
		case OX__OP_GLOBALAVGPOOL:
		case OX__OP_SOFTMAX:
		case OX__OP_LOGSOFTMAX:
		case OX__OP_CONCAT:
			if (s->in[0] >= 0)
				fuzz_onnx__numel(&m->tensors[s->in[0]], &f);
			break;
		default:
			break;
		}
		work += n * f;
	}
	return work;
}

static void fuzz_onnx__run(const struct ox_model *m)
{
	int nin = ox_model_num_inputs(m), nout = ox_model_num_outputs(m);
	const float **in = calloc((size_t)nin + 1, sizeof(*in));
	float **out = calloc((size_t)nout + 1, sizeof(*out));
	struct ox_tensor_info info;
	struct ox_ctx *ctx = NULL;
	int ret;

	FUZZ_CHECK(in && out);
	for (int i = 0; i < nin; i++) {
		FUZZ_CHECK(ox_model_input(m, i, &info) == 0);
		size_t n = ox_tensor_numel(&info, 1);
		float *p = malloc((n ? n : 1) * sizeof(float));
		FUZZ_CHECK(p);
		/* Values in [-1, 1): no overflow to inf from the inputs alone
		 * (UBSan would not flag float overflow anyway). */
		for (size_t k = 0; k < n; k++)
			p[k] = (float)((int)(k % 17) - 8) / 8.0f;
		in[i] = p;
	}
	for (int i = 0; i < nout; i++) {
		FUZZ_CHECK(ox_model_output(m, i, &info) == 0);
		size_t n = ox_tensor_numel(&info, 1);
		out[i] = malloc((n ? n : 1) * sizeof(float));
		FUZZ_CHECK(out[i]);
	}
	ret = ox_ctx_create(m, 1, &ctx);
	FUZZ_CHECK(ret == 0 || ret == FERRY_E2BIG || ret == FERRY_ENOMEM);
	if (ret == 0) {
		ret = ox_run(ctx, 1, in, out);
		FUZZ_CHECK(ret == 0);
		/* A batch beyond the context's is refused, never run. */
		FUZZ_CHECK(ox_run(ctx, 2, in, out) == FERRY_EINVAL);
		ox_ctx_free(ctx);
	}
	for (int i = 0; i < nin; i++)
		free((void *)in[i]);
	for (int i = 0; i < nout; i++)
		free(out[i]);
	free(in);
	free(out);
}

int fuzz_onnx(const uint8_t *data, size_t size)
{
	struct ox_model *m = NULL;
	struct ox_tensor_info info;
	char err[512];

	err[0] = '\0';
	int ret = ox_model_load(data, size, &m, err, sizeof(err));
	if (ret) {
		FUZZ_CHECK(ret == FERRY_EBADMSG || ret == FERRY_ENOTSUP ||
			   ret == FERRY_E2BIG || ret == FERRY_ENOMEM);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)));
		FUZZ_CHECK(m == NULL);
		return 0;
	}
	FUZZ_CHECK(m);
	/* What the onnx backend reads to check a model against its config. */
	for (int i = 0; i < ox_model_num_inputs(m); i++) {
		FUZZ_CHECK(ox_model_input(m, i, &info) == 0);
		FUZZ_CHECK(info.name && info.rank >= 0 && info.rank <= OX_MAX_RANK);
		(void)strlen(info.name);
	}
	for (int i = 0; i < ox_model_num_outputs(m); i++) {
		FUZZ_CHECK(ox_model_output(m, i, &info) == 0);
		FUZZ_CHECK(info.name && info.rank >= 0 && info.rank <= OX_MAX_RANK);
		(void)strlen(info.name);
	}
	FUZZ_CHECK(ox_model_input(m, -1, &info) != 0);
	FUZZ_CHECK(ox_model_output(m, ox_model_num_outputs(m), &info) != 0);
	if (fuzz_onnx__work(m) <= FUZZ_ONNX_MAX_WORK)
		fuzz_onnx__run(m);
	ox_model_free(m);
	return 0;
}

FUZZ_ENTRY(fuzz_onnx)
