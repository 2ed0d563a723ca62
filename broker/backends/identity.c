/* SPDX-License-Identifier: MIT */
/*
 * identity.c - the built-in "identity" backend: output i is a copy of
 * input i, same dtype and shape.  Every numeric dtype and BYTES.  Light: a
 * memcpy per tensor runs on the polling thread.
 */
#include "config.h"

#include <string.h>

#include <ferry/backend.h>

#include "broker/sched/be_host.h"

static ferry_be_error *identity__model_init(ferry_be_model *m)
{
	uint32_t ni = ferry_be_model_input_count(m), no = ferry_be_model_output_count(m);

	if (ni != no || ni == 0)
		return ferry_be_error_new(FERRY_CONFIG, "identity model '%s' needs as many "
					  "outputs as inputs (has %u inputs, %u outputs)",
					  ferry_be_model_name(m), ni, no);
	for (uint32_t i = 0; i < ni; i++) {
		const char *in, *out;
		ferry_dtype di, dout;
		ferry_be_model_input(m, i, &in, &di, NULL, NULL);
		ferry_be_model_output(m, i, &out, &dout, NULL, NULL);
		if (di != dout)
			return ferry_be_error_new(FERRY_CONFIG, "identity model '%s': input '%s' "
						  "is %s but output '%s' is %s",
						  ferry_be_model_name(m), in,
						  ferry_dtype_name(di), out,
						  ferry_dtype_name(dout));
	}
	return ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_LIGHT, 1);
}

static ferry_be_error *identity__instance_init(ferry_be_instance *i)
{
	return NULL;
}

static ferry_be_error *identity__one(ferry_be_request *r, uint32_t idx)
{
	const char *name;
	ferry_dtype dt;
	const int64_t *shape;
	int nd;
	const void *src;
	uint64_t bytes, cap;
	void *dst;
	ferry_be_error *e;

	e = ferry_be_request_input(r, idx, &name, &dt, &shape, &nd, &src, &bytes);
	if (e)
		return e;
	e = ferry_be_request_output_buffer(r, idx, shape, nd, &dst, &cap);
	if (e)
		return e;
	if (bytes > cap)        /* only BYTES can get here */
		return ferry_be_error_new(FERRY_E2BIG, "output %u: %llu bytes to write, the "
					  "buffer holds %llu", idx, (unsigned long long)bytes,
					  (unsigned long long)cap);
	/* memmove: both buffers lie where the client put them in its arena,
	 * and nothing stops it from overlapping them (found by fuzz_submit;
	 * memcpy on overlapping ranges is undefined). */
	if (bytes)
		memmove(dst, src, bytes);
	if (dt == FERRY_TYPE_BYTES)
		return ferry_be_request_output_set_bytes(r, idx, bytes);
	return NULL;
}

static ferry_be_error *identity__execute(ferry_be_instance *inst, ferry_be_request **reqs,
					uint32_t count)
{
	for (uint32_t k = 0; k < count; k++) {
		ferry_be_request *r = reqs[k];
		uint32_t no = ferry_be_request_output_count(r);
		for (uint32_t i = 0; i < no; i++) {
			if (!ferry_be_request_output_requested(r, i))
				continue;
			ferry_be_error *e = identity__one(r, i);
			if (e) {
				ferry_be_request_set_error(r, e);
				break;
			}
		}
	}
	return NULL;
}

const struct be_ops identity_be_ops = {
	.model_initialize = identity__model_init,
	.instance_initialize = identity__instance_init,
	.instance_execute = identity__execute,
};
