/* SPDX-License-Identifier: MIT */
/*
 * be_request.c - the host side of the backend ABI for requests: the
 * ferry_be_request_* accessors of include/ferry/backend.h over the
 * scheduler's requests (see be_host.c for backends, models and instances).
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/backend.h>
#include <ferry/errors.h>

#include "broker/sched/be_host.h"
#include "broker/sched/sched.h"
#include "broker/sched/sched_int.h"

/* ------------------------------------------------------------------ */
/* Request accessors (backend ABI)                                     */

FERRY_BE_EXPORT uint32_t ferry_be_request_input_count(const ferry_be_request *r)
{
	return (uint32_t)r->cfg->ninputs;
}

FERRY_BE_EXPORT uint32_t ferry_be_request_output_count(const ferry_be_request *r)
{
	return (uint32_t)r->cfg->noutputs;
}

FERRY_BE_EXPORT uint32_t ferry_be_request_batch_size(const ferry_be_request *r)
{
	return r->r->batch;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input(const ferry_be_request *r, uint32_t index,
						       const char **name, ferry_dtype *dtype,
						       const int64_t **shape, int *ndims,
						       const void **data, uint64_t *bytes)
{
	if (index >= (uint32_t)r->cfg->ninputs)
		return ferry_be_error_new(FERRY_ENOENT, "input index %u out of range (%d)",
					  index, r->cfg->ninputs);
	const struct sched_tensor *x = &r->r->in[index];
	if (!x->present)
		return ferry_be_error_new(FERRY_ENOENT, "optional input '%s' was not given",
					  r->cfg->inputs[index].name);
	if (name)
		*name = r->cfg->inputs[index].name;
	if (dtype)
		*dtype = x->dtype;
	if (shape)
		*shape = x->dims;
	if (ndims)
		*ndims = x->ndims;
	if (data)
		*data = x->data;
	if (bytes)
		*bytes = x->bytes;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input_by_name(const ferry_be_request *r,
							       const char *name, ferry_dtype *dtype,
							       const int64_t **shape, int *ndims,
							       const void **data, uint64_t *bytes)
{
	for (int i = 0; i < r->cfg->ninputs; i++)
		if (strcmp(r->cfg->inputs[i].name, name) == 0)
			return ferry_be_request_input(r, (uint32_t)i, NULL, dtype, shape, ndims,
						      data, bytes);
	return ferry_be_error_new(FERRY_ENOENT, "model has no input '%s'", name);
}

static ferry_be_error *sched__memory(const struct sched_tensor *x, ferry_be_memory *type,
				    int *device)
{
	if (!x->present)
		return ferry_be_error_new(FERRY_ENOENT, "the tensor is absent");
	if (type)
		*type = x->cuda ? FERRY_BE_MEMORY_GPU : FERRY_BE_MEMORY_CPU;
	if (device)
		*device = x->cuda ? x->device : -1;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input_memory(const ferry_be_request *r,
							      uint32_t index,
							      ferry_be_memory *type,
							      int *device)
{
	if (index >= (uint32_t)r->cfg->ninputs)
		return ferry_be_error_new(FERRY_ENOENT, "input index %u out of range (%d)",
					  index, r->cfg->ninputs);
	return sched__memory(&r->r->in[index], type, device);
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_memory(const ferry_be_request *r,
							       uint32_t index,
							       ferry_be_memory *type,
							       int *device)
{
	if (index >= (uint32_t)r->cfg->noutputs)
		return ferry_be_error_new(FERRY_ENOENT, "output index %u out of range (%d)",
					  index, r->cfg->noutputs);
	return sched__memory(&r->r->out[index], type, device);
}

FERRY_BE_EXPORT bool ferry_be_request_output_requested(const ferry_be_request *r, uint32_t index)
{
	return index < (uint32_t)r->cfg->noutputs && r->r->out[index].present;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_buffer(ferry_be_request *r, uint32_t index,
							       const int64_t *shape, int ndims,
							       void **data, uint64_t *capacity)
{
	const struct model_config *cfg = r->cfg;
	const int bd = cfg->max_batch_size > 0 ? 1 : 0;
	char s1[128];

	if (!ferry_be_request_output_requested(r, index))
		return ferry_be_error_new(FERRY_ENOENT, "output %u was not requested", index);
	const struct modelcfg_tensor *t = &cfg->outputs[index];
	struct sched_tensor *y = &r->r->out[index];
	if (ndims != t->ndims + bd)
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': %d dimensions, the model "
					  "has %d", t->name, ndims, t->ndims + bd);
	if (bd && shape[0] != r->r->batch)
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': batch dimension %" PRId64
					  ", the request's batch is %u", t->name, shape[0],
					  r->r->batch);
	for (int d = 0; d < t->ndims; d++) {
		int64_t g = shape[d + bd], want = t->dims[d];
		if (g < 0 || (want >= 0 && g != want))
			return ferry_be_error_new(FERRY_SHAPE, "output '%s': shape %s does not "
						  "match the model's dims", t->name,
						  sched__shape_str(s1, sizeof(s1), shape, ndims));
	}
	uint64_t el;
	size_t es = ferry_dtype_size(t->dtype);
	if (sched__elements(shape, ndims, &el) || (es && el > UINT64_MAX / es))
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': shape %s is too large",
					  t->name, sched__shape_str(s1, sizeof(s1), shape, ndims));
	if (es && el * es > y->bytes)
		return ferry_be_error_new(FERRY_E2BIG, "output '%s': shape %s needs %" PRIu64
					  " bytes, the client's buffer holds %" PRIu64, t->name,
					  sched__shape_str(s1, sizeof(s1), shape, ndims),
					  el * es, y->bytes);
	/* The submitter does not look at its request until done(): the
	 * shape can go straight into it. */
	y->ndims = ndims;
	memcpy(y->dims, shape, (size_t)ndims * sizeof(int64_t));
	r->out_bytes[index] = es ? el * es : 0;
	if (data)
		*data = y->data;
	if (capacity)
		*capacity = y->bytes;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_set_bytes(ferry_be_request *r,
								  uint32_t index, uint64_t bytes)
{
	if (!ferry_be_request_output_requested(r, index) || r->out_bytes[index] == UINT64_MAX)
		return ferry_be_error_new(FERRY_EINVAL, "output %u: set_bytes before "
					  "output_buffer", index);
	const struct modelcfg_tensor *t = &r->cfg->outputs[index];
	if (ferry_dtype_size(t->dtype)) {
		if (bytes != r->out_bytes[index])
			return ferry_be_error_new(FERRY_EINVAL, "output '%s': %" PRIu64 " bytes, "
						  "the shape needs %" PRIu64, t->name, bytes,
						  r->out_bytes[index]);
		return NULL;
	}
	if (bytes > r->r->out[index].bytes)
		return ferry_be_error_new(FERRY_E2BIG, "output '%s': %" PRIu64 " bytes written "
					  "into a buffer of %" PRIu64, t->name, bytes,
					  r->r->out[index].bytes);
	r->out_bytes[index] = bytes;
	return NULL;
}

FERRY_BE_EXPORT void ferry_be_request_set_error(ferry_be_request *r, ferry_be_error *err)
{
	ferry_be_error_delete(r->err);
	r->err = err;
}
