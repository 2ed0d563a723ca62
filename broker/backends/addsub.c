/* SPDX-License-Identifier: MIT */
/*
 * addsub.c - the built-in "add_sub" backend, Triton's "simple" model:
 * INPUT0 and INPUT1 (INT32 or FP32, same shape) give OUTPUT0 = INPUT0 +
 * INPUT1 and OUTPUT1 = INPUT0 - INPUT1.  Light.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <ferry/backend.h>

#include "broker/sched/be_host.h"

/* Config order of the four tensors, found by name at model init. */
struct addsub__model {
	uint32_t in0, in1, out0, out1;
	ferry_dtype dtype;
};

static ferry_be_error *addsub__find(const ferry_be_model *m, bool output, const char *want,
				   uint32_t *idx, ferry_dtype *dt, const int64_t **dims, int *nd)
{
	uint32_t n = output ? ferry_be_model_output_count(m) : ferry_be_model_input_count(m);

	for (uint32_t i = 0; i < n; i++) {
		const char *name;
		if (output)
			ferry_be_model_output(m, i, &name, dt, dims, nd);
		else
			ferry_be_model_input(m, i, &name, dt, dims, nd);
		if (strcmp(name, want) == 0) {
			*idx = i;
			return NULL;
		}
	}
	return ferry_be_error_new(FERRY_CONFIG, "add_sub model '%s' needs an %s named '%s'",
				  ferry_be_model_name(m), output ? "output" : "input", want);
}

static ferry_be_error *addsub__model_init(ferry_be_model *m)
{
	static const char *const names[4] = { "INPUT0", "INPUT1", "OUTPUT0", "OUTPUT1" };
	struct addsub__model am;
	uint32_t *idx[4] = { &am.in0, &am.in1, &am.out0, &am.out1 };
	ferry_dtype dt[4];
	const int64_t *dims[4];
	int nd[4];
	ferry_be_error *e;

	if (ferry_be_model_input_count(m) != 2 || ferry_be_model_output_count(m) != 2)
		return ferry_be_error_new(FERRY_CONFIG, "add_sub model '%s' needs exactly inputs "
					  "INPUT0, INPUT1 and outputs OUTPUT0, OUTPUT1 (has %u "
					  "inputs, %u outputs)", ferry_be_model_name(m),
					  ferry_be_model_input_count(m),
					  ferry_be_model_output_count(m));
	for (int t = 0; t < 4; t++) {
		e = addsub__find(m, t >= 2, names[t], idx[t], &dt[t], &dims[t], &nd[t]);
		if (e)
			return e;
	}
	if (dt[0] != FERRY_TYPE_INT32 && dt[0] != FERRY_TYPE_FP32)
		return ferry_be_error_new(FERRY_CONFIG, "add_sub model '%s': INPUT0 is %s, "
					  "expected INT32 or FP32", ferry_be_model_name(m),
					  ferry_dtype_name(dt[0]));
	for (int t = 1; t < 4; t++) {
		if (dt[t] != dt[0])
			return ferry_be_error_new(FERRY_CONFIG, "add_sub model '%s': %s is %s "
						  "but INPUT0 is %s", ferry_be_model_name(m),
						  names[t], ferry_dtype_name(dt[t]),
						  ferry_dtype_name(dt[0]));
		if (nd[t] != nd[0] || memcmp(dims[t], dims[0], (size_t)nd[0] * sizeof(int64_t)))
			return ferry_be_error_new(FERRY_CONFIG, "add_sub model '%s': %s has "
						  "other dims than INPUT0", ferry_be_model_name(m),
						  names[t]);
	}
	am.dtype = dt[0];
	struct addsub__model *st = malloc(sizeof(*st));
	if (!st)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	*st = am;
	ferry_be_model_set_state(m, st);
	e = ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_LIGHT, 1);
	if (e) {
		ferry_be_model_set_state(m, NULL);
		free(st);
	}
	return e;
}

static ferry_be_error *addsub__model_fini(ferry_be_model *m)
{
	free(ferry_be_model_state(m));
	ferry_be_model_set_state(m, NULL);
	return NULL;
}

static ferry_be_error *addsub__instance_init(ferry_be_instance *i)
{
	return NULL;
}

static ferry_be_error *addsub__one(const struct addsub__model *am, ferry_be_request *r)
{
	const int64_t *s0, *s1;
	int n0, n1;
	const void *a, *b;
	uint64_t bytes0, bytes1;
	ferry_be_error *e;

	if ((e = ferry_be_request_input(r, am->in0, NULL, NULL, &s0, &n0, &a, &bytes0)) ||
	    (e = ferry_be_request_input(r, am->in1, NULL, NULL, &s1, &n1, &b, &bytes1)))
		return e;
	if (n0 != n1 || memcmp(s0, s1, (size_t)n0 * sizeof(int64_t)) || bytes0 != bytes1)
		return ferry_be_error_new(FERRY_SHAPE, "INPUT0 and INPUT1 must have the same "
					  "shape");
	size_t n = bytes0 / 4;
	for (int o = 0; o < 2; o++) {
		uint32_t idx = o == 0 ? am->out0 : am->out1;
		void *dst;
		uint64_t cap;
		if (!ferry_be_request_output_requested(r, idx))
			continue;
		if ((e = ferry_be_request_output_buffer(r, idx, s0, n0, &dst, &cap)))
			return e;
		if (am->dtype == FERRY_TYPE_INT32) {
			/* Wrap like Triton's int32 add instead of signed
			 * overflow, which C leaves undefined. */
			const int32_t *x = a, *y = b;
			int32_t *z = dst;
			for (size_t i = 0; i < n; i++) {
				uint32_t u = o == 0 ? (uint32_t)x[i] + (uint32_t)y[i]
						    : (uint32_t)x[i] - (uint32_t)y[i];
				memcpy(&z[i], &u, sizeof(u));
			}
		} else {
			const float *x = a, *y = b;
			float *z = dst;
			for (size_t i = 0; i < n; i++)
				z[i] = o == 0 ? x[i] + y[i] : x[i] - y[i];
		}
	}
	return NULL;
}

static ferry_be_error *addsub__execute(ferry_be_instance *inst, ferry_be_request **reqs,
				      uint32_t count)
{
	const struct addsub__model *am = ferry_be_model_state(ferry_be_instance_model(inst));

	for (uint32_t k = 0; k < count; k++) {
		ferry_be_error *e = addsub__one(am, reqs[k]);
		if (e)
			ferry_be_request_set_error(reqs[k], e);
	}
	return NULL;
}

const struct be_ops addsub_be_ops = {
	.model_initialize = addsub__model_init,
	.model_finalize = addsub__model_fini,
	.instance_initialize = addsub__instance_init,
	.instance_execute = addsub__execute,
};
