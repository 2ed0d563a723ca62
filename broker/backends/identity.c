/* SPDX-License-Identifier: MIT */
/*
 * identity.c - the built-in "identity" backend: output i is a copy of
 * input i, same dtype and shape.  Every numeric dtype and BYTES.  Light: a
 * memcpy per tensor runs on the polling thread.
 *
 * Like Triton's identity backend, it takes the model parameter
 * execute_delay_ms (and ferry's finer execute_delay_us): each execution
 * then sleeps that long before it copies, a stand-in for a model that
 * takes time (benchmarks of queueing and fair share, tests of deadlines).
 * A delayed model is not light: it runs on instance threads, so the sleep
 * never holds a polling thread.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	/* The delay in microseconds, kept as the model's state (a number,
	 * not a pointer: nothing to free). */
	static const char *const keys[2] = { "execute_delay_ms", "execute_delay_us" };
	uint64_t delay_us = 0;
	for (int k = 0; k < 2; k++) {
		const char *v = ferry_be_model_parameter_by_name(m, keys[k]);
		if (!v)
			continue;
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (errno || end == v || *end || *v == '-' || n > (k ? 60000000ULL : 60000ULL))
			return ferry_be_error_new(FERRY_CONFIG, "identity model '%s': %s '%s' is "
						  "not a number of %s up to a minute",
						  ferry_be_model_name(m), keys[k], v,
						  k ? "microseconds" : "milliseconds");
		delay_us += k ? n : n * 1000;
	}
	if (delay_us) {
		ferry_be_model_set_state(m, (void *)(uintptr_t)delay_us);
		return NULL;
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
	uint64_t delay_us = (uintptr_t)ferry_be_model_state(ferry_be_instance_model(inst));
	if (delay_us) {
		struct timespec ts = { (time_t)(delay_us / 1000000), (long)(delay_us % 1000000) * 1000 };
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
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
