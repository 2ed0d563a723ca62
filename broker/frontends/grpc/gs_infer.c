/* SPDX-License-Identifier: MIT */
/*
 * gs_infer.c - ModelInferRequest -> sched_req -> ModelInferResponse.
 *
 * Everything in the request is hostile: names are looked up in the
 * config, shapes are bounded and their element counts computed without
 * overflow, byte counts are matched against the shapes, raw contents are
 * counted against the inputs, shared-memory ranges are checked against
 * their regions, and nothing is allocated before the sizes it depends on
 * were checked.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_infer.h"
#include "broker/frontends/grpc/gs_shm.h"

/* No output buffer beyond this: a gRPC message cannot carry it anyway. */
#define GS_OUT_MAX_BYTES (1ULL << 31)
/* Element counts beyond this are refused before any multiplication by a
 * dtype size can overflow. */
#define GS_MAX_ELEMENTS (1ULL << 40)

ferry_dtype gs_dtype_parse(const char *name)
{
	for (int d = 1; d < FERRY_TYPE__COUNT; d++)
		if (name && !strcmp(ferry_dtype_name(d), name))
			return (ferry_dtype)d;
	return FERRY_TYPE_INVALID;
}

static int gs__fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int gs__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* Every generated map<string, InferParameter> entry has this layout:
 * base, key, value. */
static const Inference__InferParameter *gs__param(size_t n, void *const *entries,
						    const char *key)
{
	for (size_t i = 0; i < n; i++) {
		const Inference__ModelInferRequest__ParametersEntry *e = entries[i];
		if (e && e->key && !strcmp(e->key, key))
			return e->value;
	}
	return NULL;
}

/* An integer parameter: 0, 1 when absent, or FERRY_EINVAL. */
static int gs__param_u64(const Inference__InferParameter *p, uint64_t *v)
{
	if (!p)
		return 1;
	switch (p->parameter_choice_case) {
	case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
		if (p->int64_param < 0)
			return FERRY_EINVAL;
		*v = (uint64_t)p->int64_param;
		return 0;
	case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
		*v = p->uint64_param;
		return 0;
	default:
		return FERRY_EINVAL;
	}
}

static void *gs__own(struct gs_infer *inf, size_t bytes)
{
	if (inf->nowned == inf->owned_cap) {
		int cap = inf->owned_cap ? inf->owned_cap * 2 : 8;
		void **o = realloc(inf->owned, (size_t)cap * sizeof(*o));
		if (!o)
			return NULL;
		inf->owned = o;
		inf->owned_cap = cap;
	}
	void *p = malloc(bytes ? bytes : 1);
	if (p)
		inf->owned[inf->nowned++] = p;
	return p;
}

static int gs__keep_region(struct gs_infer *inf, struct gs_shm_region *r)
{
	if (inf->nregions == inf->regions_cap) {
		int cap = inf->regions_cap ? inf->regions_cap * 2 : 4;
		struct gs_shm_region **o = realloc(inf->regions, (size_t)cap * sizeof(*o));
		if (!o) {
			gs_shm_put(r);
			return FERRY_ENOMEM;
		}
		inf->regions = o;
		inf->regions_cap = cap;
	}
	inf->regions[inf->nregions++] = r;
	return 0;
}

/* The shared-memory parameters of a tensor: 1 when it names no region, 0
 * with region/offset/size filled, or an error. */
static int gs__shm_params(size_t n, void *const *params, const char *what, const char *name,
			  const char **region, uint64_t *off, uint64_t *size,
			  char *err, size_t errlen)
{
	const Inference__InferParameter *p = gs__param(n, params, "shared_memory_region");
	if (!p)
		return 1;
	if (p->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM ||
	    !p->string_param || !*p->string_param)
		return gs__fail(err, errlen, FERRY_EINVAL,
				"%s '%s': shared_memory_region must be a non-empty string", what, name);
	*region = p->string_param;
	int r = gs__param_u64(gs__param(n, params, "shared_memory_byte_size"), size);
	if (r)
		return gs__fail(err, errlen, FERRY_EINVAL,
				"%s '%s': shared_memory_byte_size must be given as a non-negative "
				"integer", what, name);
	*off = 0;
	r = gs__param_u64(gs__param(n, params, "shared_memory_offset"), off);
	if (r < 0)
		return gs__fail(err, errlen, FERRY_EINVAL,
				"%s '%s': shared_memory_offset must be a non-negative integer",
				what, name);
	return 0;
}

/* Typed contents -> the tensor's raw little-endian layout. */
static int gs__convert(struct gs_infer *inf, const Inference__InferTensorContents *c,
		       ferry_dtype dt, uint64_t el, const char *name,
		       void **data, uint64_t *bytes, char *err, size_t errlen)
{
	size_t es = ferry_dtype_size(dt), have;
	uint8_t *p;

#define GS_HAVE(field) (have = c->n_##field)
	switch (dt) {
	case FERRY_TYPE_BOOL: GS_HAVE(bool_contents); break;
	case FERRY_TYPE_INT8: case FERRY_TYPE_INT16: case FERRY_TYPE_INT32:
		GS_HAVE(int_contents); break;
	case FERRY_TYPE_INT64: GS_HAVE(int64_contents); break;
	case FERRY_TYPE_UINT8: case FERRY_TYPE_UINT16: case FERRY_TYPE_UINT32:
		GS_HAVE(uint_contents); break;
	case FERRY_TYPE_UINT64: GS_HAVE(uint64_contents); break;
	case FERRY_TYPE_FP32: GS_HAVE(fp32_contents); break;
	case FERRY_TYPE_FP64: GS_HAVE(fp64_contents); break;
	case FERRY_TYPE_BYTES: GS_HAVE(bytes_contents); break;
	default:
		return gs__fail(err, errlen, FERRY_EINVAL,
				"input '%s': %s data must be sent in raw_input_contents", name,
				ferry_dtype_name(dt) ? ferry_dtype_name(dt) : "this datatype's");
	}
#undef GS_HAVE
	if (have != el)
		return gs__fail(err, errlen, FERRY_EINVAL,
				"unexpected number of %s contents for input '%s', expected %" PRIu64
				", got %zu", ferry_dtype_name(dt), name, el, have);
	if (dt == FERRY_TYPE_BYTES) {
		uint64_t total = 0;
		for (size_t i = 0; i < have; i++) {
			if (c->bytes_contents[i].len > UINT32_MAX)
				return gs__fail(err, errlen, FERRY_EINVAL,
						"input '%s': element %zu is longer than 4 GiB", name, i);
			total += 4 + c->bytes_contents[i].len;
		}
		if (!(p = gs__own(inf, total)))
			return gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
		uint8_t *w = p;
		for (size_t i = 0; i < have; i++) {
			uint32_t n = (uint32_t)c->bytes_contents[i].len;
			memcpy(w, &n, 4);  /* little-endian hosts only (x86-64, aarch64) */
			if (n)
				memcpy(w + 4, c->bytes_contents[i].data, n);
			w += 4 + n;
		}
		*data = p;
		*bytes = total;
		return 0;
	}
	if (!(p = gs__own(inf, el * es)))
		return gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < el; i++) {
		uint8_t *w = p + i * es;
		switch (dt) {
		case FERRY_TYPE_BOOL: *w = c->bool_contents[i] ? 1 : 0; break;
		case FERRY_TYPE_INT8: { int8_t v = (int8_t)c->int_contents[i]; memcpy(w, &v, 1); break; }
		case FERRY_TYPE_INT16: { int16_t v = (int16_t)c->int_contents[i]; memcpy(w, &v, 2); break; }
		case FERRY_TYPE_INT32: memcpy(w, &c->int_contents[i], 4); break;
		case FERRY_TYPE_INT64: memcpy(w, &c->int64_contents[i], 8); break;
		case FERRY_TYPE_UINT8: *w = (uint8_t)c->uint_contents[i]; break;
		case FERRY_TYPE_UINT16: { uint16_t v = (uint16_t)c->uint_contents[i]; memcpy(w, &v, 2); break; }
		case FERRY_TYPE_UINT32: memcpy(w, &c->uint_contents[i], 4); break;
		case FERRY_TYPE_UINT64: memcpy(w, &c->uint64_contents[i], 8); break;
		case FERRY_TYPE_FP32: memcpy(w, &c->fp32_contents[i], 4); break;
		case FERRY_TYPE_FP64: memcpy(w, &c->fp64_contents[i], 8); break;
		default: break;
		}
	}
	*data = p;
	*bytes = el * es;
	return 0;
}

static const char *gs__shape_str(char *buf, size_t n, const int64_t *d, size_t nd)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (size_t i = 0; i < nd && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, i ? "," : "", d[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
	return buf;
}

/*
 * Resolve a shared-memory range for an input (read) or output (write).
 * The backend never sees the client's region: an input is copied out of
 * it here into memory of ours (a POSIX region can shrink or change under
 * a running backend), an output gets a buffer of ours that
 * gs_infer_copy_out copies into the region once the request is done.
 * *sys: the reference held on a system region for an output.
 */
static int gs__shm_bind(struct gs_infer *inf, const char *region, uint64_t off,
			uint64_t size, bool input, bool *cuda, struct gs_shm_region **sys,
			void **data, char *err, size_t errlen)
{
	struct gs_shm_region *r;
	int ret = gs_shm_get(region, off, size, &r, err, errlen);
	*cuda = false;
	*sys = NULL;
	if (ret == FERRY_ENOENT && gs_cuda_available())
		*cuda = true;
	else if (ret)
		return ret;
	if (size > GS_OUT_MAX_BYTES) {
		if (!*cuda)
			gs_shm_put(r);
		return gs__fail(err, errlen, FERRY_E2BIG, "%s '%s': %llu bytes of shared memory, "
				"at most %llu", input ? "input region" : "output region", region,
				(unsigned long long)size, (unsigned long long)GS_OUT_MAX_BYTES);
	}
	void *h = gs__own(inf, size);
	if (!h) {
		if (!*cuda)
			gs_shm_put(r);
		return gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	}
	if (*cuda) {
		/* A CUDA region: stage through host memory. */
		if (input && (ret = gs_cuda_copy(region, off, h, size, false, err, errlen)))
			return ret;
		if (!input) {
			char e2[256];
			/* Check the range now rather than after the run. */
			uint8_t probe;
			if (size && (ret = gs_cuda_copy(region, off + size - 1, &probe, 1, false,
						       e2, sizeof(e2))))
				return gs__fail(err, errlen, ret, "%s", e2);
		}
	} else if (input) {
		ret = gs_shm_copy(r, off, h, size, false, err, errlen);
		gs_shm_put(r);
		if (ret)
			return ret;
	} else {
		if ((ret = gs__keep_region(inf, r)))
			return gs__fail(err, errlen, ret, "out of memory");
		*sys = r;
	}
	*data = h;
	return 0;
}

int gs_infer_copy_out(struct gs_infer *inf, char *err, size_t errlen)
{
	const int nin = inf->cfg->ninputs;
	int ret;

	for (int k = 0; k < inf->nout; k++) {
		int o = inf->out_order[k];
		const struct sched_tensor *y = &inf->t[nin + o];
		const struct gs_out_shm *os = &inf->out_shm[o];
		if (!os->used || !y->bytes)
			continue;
		if (os->cuda)
			ret = gs_cuda_copy(os->region, os->offset, y->data, y->bytes, true, err,
					   errlen);
		else
			ret = gs_shm_copy(os->sys, os->offset, y->data, y->bytes, true, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int gs_infer_prepare(struct gs_infer *inf, const Inference__ModelInferRequest *msg,
		     const struct model_config *cfg, char *err, size_t errlen)
{
	const int nin = cfg->ninputs, nout = cfg->noutputs;
	const char *mname = cfg->name ? cfg->name : "";
	char s1[160];
	size_t ri = 0;
	uint64_t total_in = 0;
	int ret;

	inf->cfg = cfg;
	inf->id = msg->id;
	/* One block for the three arrays (one allocation per request
	 * instead of three): t, then out_shm, then out_order, each aligned;
	 * gs_infer_fini frees t. */
	size_t a = _Alignof(max_align_t);
	size_t o_shm = ((size_t)(nin + nout + 1) * sizeof(*inf->t) + a - 1) / a * a;
	size_t o_ord = o_shm + ((size_t)(nout + 1) * sizeof(*inf->out_shm) + a - 1) / a * a;
	char *blk = calloc(1, o_ord + (size_t)(nout + 1) * sizeof(*inf->out_order));
	if (!blk)
		return gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	inf->t = (struct sched_tensor *)(void *)blk;
	inf->out_shm = (struct gs_out_shm *)(void *)(blk + o_shm);
	inf->out_order = (int *)(void *)(blk + o_ord);
	inf->req.in = inf->t;
	inf->req.out = inf->t + nin;

	if (msg->n_raw_input_contents > msg->n_inputs)
		return gs__fail(err, errlen, FERRY_EINVAL,
				"%zu raw input contents for %zu inputs",
				msg->n_raw_input_contents, msg->n_inputs);

	for (size_t i = 0; i < msg->n_inputs; i++) {
		const Inference__ModelInferRequest__InferInputTensor *in = msg->inputs[i];
		const char *name = in->name ? in->name : "";
		int idx = modelcfg_input_index(cfg, name);
		if (idx < 0)
			return gs__fail(err, errlen, FERRY_EINVAL,
					"unexpected inference input '%s' for model '%s'", name, mname);
		struct sched_tensor *st = &inf->t[idx];
		if (st->present)
			return gs__fail(err, errlen, FERRY_EINVAL, "input '%s' given twice", name);
		ferry_dtype dt = gs_dtype_parse(in->datatype);
		/* FERRY_DTYPE, as an invalid dtype on the shared-memory path. */
		if (dt == FERRY_TYPE_INVALID)
			return gs__fail(err, errlen, FERRY_DTYPE,
					"input '%s': invalid datatype '%s'", name,
					in->datatype ? in->datatype : "");
		if (in->n_shape > SCHED_MAX_DIMS)
			return gs__fail(err, errlen, FERRY_SHAPE,
					"input '%s': %zu dimensions, at most %d", name,
					in->n_shape, SCHED_MAX_DIMS);
		uint64_t el = 1;
		for (size_t k = 0; k < in->n_shape; k++) {
			int64_t d = in->shape[k];
			if (d < 0 || (uint64_t)d > GS_MAX_ELEMENTS ||
			    (d && el > GS_MAX_ELEMENTS / (uint64_t)d))
				return gs__fail(err, errlen, FERRY_SHAPE,
						"input '%s': invalid shape %s", name,
						gs__shape_str(s1, sizeof(s1), in->shape, in->n_shape));
			el *= (uint64_t)d;
		}
		/* Against the model before the data: the scheduler's own check,
		 * so each mistake gets the code the shared-memory path gives. */
		if ((ret = sched_check_input(cfg, idx, dt, (int)in->n_shape, in->shape, NULL, err,
					     errlen)))
			return ret;
		st->dtype = dt;
		st->ndims = (int)in->n_shape;
		for (size_t k = 0; k < in->n_shape; k++)
			st->dims[k] = in->shape[k];

		const char *region;
		uint64_t off, size;
		void *data = NULL;
		uint64_t bytes = 0;
		ret = gs__shm_params(in->n_parameters, (void *const *)in->parameters, "input",
				     name, &region, &off, &size, err, errlen);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			bool cuda;
			if (in->contents)
				return gs__fail(err, errlen, FERRY_EINVAL,
						"input '%s': data both in contents and in shared memory",
						name);
			struct gs_shm_region *sys;
			size_t es = ferry_dtype_size(dt);
			/* The size against the shape before anything is copied. */
			if (es && size != el * es)
				return gs__fail(err, errlen, FERRY_EINVAL,
						"input '%s': %" PRIu64 " bytes of shared memory, its "
						"shape %s of %s needs %" PRIu64, name, size,
						gs__shape_str(s1, sizeof(s1), in->shape, in->n_shape),
						ferry_dtype_name(dt), el * es);
			/* A copy of ours: the length prefixes of BYTES, like every
			 * value, cannot change under the checks or the backend. */
			if ((ret = gs__shm_bind(inf, region, off, size, true, &cuda, &sys, &data,
						err, errlen)))
				return ret;
			bytes = size;
		} else if (msg->n_raw_input_contents) {
			if (in->contents)
				return gs__fail(err, errlen, FERRY_EINVAL,
						"contents field must not be specified when using "
						"raw_input_contents for '%s' for model '%s'", name, mname);
			if (ri >= msg->n_raw_input_contents)
				return gs__fail(err, errlen, FERRY_EINVAL,
						"expected %zu raw input contents, got %zu",
						ri + 1, msg->n_raw_input_contents);
			data = msg->raw_input_contents[ri].data;
			bytes = msg->raw_input_contents[ri].len;
			ri++;
		} else if (in->contents) {
			if ((ret = gs__convert(inf, in->contents, dt, el, name, &data, &bytes, err,
					       errlen)))
				return ret;
		} else {
			return gs__fail(err, errlen, FERRY_EINVAL,
					"input '%s' has no data: neither raw_input_contents, "
					"contents nor shared memory", name);
		}
		size_t es = ferry_dtype_size(dt);
		if (es && bytes != el * es)
			return gs__fail(err, errlen, FERRY_EINVAL,
					"input '%s': %" PRIu64 " bytes of data, its shape %s of %s "
					"needs %" PRIu64, name, bytes,
					gs__shape_str(s1, sizeof(s1), in->shape, in->n_shape),
					ferry_dtype_name(dt), el * es);
		st->data = data ? data : (void *)"";
		st->bytes = bytes;
		st->present = true;
		total_in += bytes;
	}
	if (msg->n_raw_input_contents && ri != msg->n_raw_input_contents)
		return gs__fail(err, errlen, FERRY_EINVAL,
				"expected %zu raw input contents (one per input not in shared "
				"memory), got %zu", ri, msg->n_raw_input_contents);

	/* Batch size, to size output buffers: sched_check_input kept every
	 * input's within 1..max_batch_size; the scheduler checks they agree. */
	uint64_t batch = 1;
	if (cfg->max_batch_size > 0) {
		for (int i = 0; i < nin; i++) {
			if (inf->t[i].present) {
				batch = (uint64_t)inf->t[i].dims[0];
				break;
			}
		}
	}

	/* Outputs: the ones asked for, in the order asked, or all of them. */
	if (msg->n_outputs == 0) {
		for (int o = 0; o < nout; o++)
			inf->out_order[inf->nout++] = o;
	}
	for (size_t i = 0; i < msg->n_outputs; i++) {
		const Inference__ModelInferRequest__InferRequestedOutputTensor *ro = msg->outputs[i];
		const char *name = ro->name ? ro->name : "";
		int idx = modelcfg_output_index(cfg, name);
		if (idx < 0)
			return gs__fail(err, errlen, FERRY_EINVAL,
					"unexpected inference output '%s' for model '%s'", name, mname);
		for (int k = 0; k < inf->nout; k++)
			if (inf->out_order[k] == idx)
				return gs__fail(err, errlen, FERRY_EINVAL,
						"output '%s' requested twice", name);
		inf->out_order[inf->nout++] = idx;
		const char *region;
		uint64_t off, size;
		ret = gs__shm_params(ro->n_parameters, (void *const *)ro->parameters, "output",
				     name, &region, &off, &size, err, errlen);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			struct gs_out_shm *os = &inf->out_shm[idx];
			struct gs_shm_region *sys;
			void *data;
			bool cuda;
			if ((ret = gs__shm_bind(inf, region, off, size, false, &cuda, &sys, &data,
						err, errlen)))
				return ret;
			os->used = true;
			os->cuda = cuda;
			os->sys = sys;
			os->region = (char *)region;
			os->offset = off;
			os->byte_size = size;
			inf->t[nin + idx].data = data;
			inf->t[nin + idx].bytes = size;
		}
	}
	for (int k = 0; k < inf->nout; k++) {
		int o = inf->out_order[k];
		struct sched_tensor *y = &inf->t[nin + o];
		y->present = true;
		if (inf->out_shm[o].used)
			continue;
		/* Size from the config when it is fixed; otherwise (BYTES,
		 * variable dims) as much as the inputs hold, which is what
		 * identity-like models return. */
		const struct modelcfg_tensor *mt = &cfg->outputs[o];
		size_t es = ferry_dtype_size(mt->dtype);
		bool fixed = es != 0;
		uint64_t cap = batch * es;
		for (int d = 0; d < mt->ndims && fixed; d++) {
			if (mt->dims[d] < 0 ||
			    (mt->dims[d] && cap > GS_OUT_MAX_BYTES / (uint64_t)mt->dims[d]))
				fixed = false;
			else
				cap *= (uint64_t)mt->dims[d];
		}
		if (!fixed)
			cap = total_in > 64 ? total_in : 64;
		if (cap > GS_OUT_MAX_BYTES)
			return gs__fail(err, errlen, FERRY_E2BIG,
					"output '%s': %" PRIu64 " bytes is more than a response carries",
					mt->name, cap);
		if (!(y->data = gs__own(inf, cap)))
			return gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
		y->bytes = cap;
	}

	uint64_t v;
	ret = gs__param_u64(gs__param(msg->n_parameters, (void *const *)msg->parameters, "priority"), &v);
	if (ret < 0 || (ret == 0 && v > UINT32_MAX))
		return gs__fail(err, errlen, FERRY_EINVAL, "parameter 'priority' must be an "
				"integer from 0 to %u", UINT32_MAX);
	if (ret == 0)
		inf->req.priority = (uint32_t)v;
	ret = gs__param_u64(gs__param(msg->n_parameters, (void *const *)msg->parameters, "timeout"), &v);
	if (ret < 0)
		return gs__fail(err, errlen, FERRY_EINVAL, "parameter 'timeout' must be a "
				"non-negative number of microseconds");
	if (ret == 0)
		inf->req.timeout_us = v;
	return 0;
}

int gs_infer_response(struct gs_infer *inf, const char *model_name, int64_t version,
		      uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	const struct model_config *cfg = inf->cfg;
	const int nin = cfg->ninputs;
	Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
	/* Up to GS_OUT_STACK outputs are described on the stack. */
	enum { GS_OUT_STACK = 8 };
	Inference__ModelInferResponse__InferOutputTensor ot_s[GS_OUT_STACK], *otp_s[GS_OUT_STACK];
	ProtobufCBinaryData raw_s[GS_OUT_STACK];
	Inference__ModelInferResponse__InferOutputTensor *ot = ot_s, **otp = otp_s;
	ProtobufCBinaryData *raw = raw_s;
	bool heap = inf->nout > GS_OUT_STACK;
	char ver[24], *v = ver + sizeof(ver);
	int ret = 0;

	/* The version in decimal (snprintf was a tenth of this function). */
	uint64_t u = version < 0 ? 0 - (uint64_t)version : (uint64_t)version;
	*--v = 0;
	do {
		*--v = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (version < 0)
		*--v = '-';
	resp.model_name = (char *)model_name;
	resp.model_version = v;
	resp.id = (char *)(inf->id ? inf->id : "");
	if ((ret = gs_infer_copy_out(inf, err, errlen)))
		return ret;
	if (heap) {
		ot = calloc((size_t)inf->nout, sizeof(*ot));
		otp = calloc((size_t)inf->nout, sizeof(*otp));
		raw = calloc((size_t)inf->nout, sizeof(*raw));
		if (!ot || !otp || !raw) {
			ret = gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (int k = 0; k < inf->nout; k++) {
		int o = inf->out_order[k];
		const struct sched_tensor *y = &inf->t[nin + o];
		const struct gs_out_shm *os = &inf->out_shm[o];
		inference__model_infer_response__infer_output_tensor__init(&ot[k]);
		ot[k].name = cfg->outputs[o].name;
		ferry_dtype dt = y->dtype ? y->dtype : cfg->outputs[o].dtype;
		ot[k].datatype = (char *)(ferry_dtype_name(dt) ? ferry_dtype_name(dt) : "");
		ot[k].n_shape = (size_t)(y->ndims > 0 && y->ndims <= SCHED_MAX_DIMS ? y->ndims : 0);
		ot[k].shape = (int64_t *)y->dims;
		otp[k] = &ot[k];
		raw[k] = (ProtobufCBinaryData){ 0, NULL };
		if (os->used) {
			/* Empty, but present: Triton's clients index
			 * raw_output_contents by output position. */
			continue;
		}
		raw[k].data = y->data;
		raw[k].len = y->bytes;
	}
	resp.n_outputs = (size_t)inf->nout;
	resp.outputs = otp;
	resp.n_raw_output_contents = (size_t)inf->nout;
	resp.raw_output_contents = raw;
	*len = inference__model_infer_response__get_packed_size(&resp);
	*buf = malloc(*len ? *len : 1);
	if (!*buf) {
		ret = gs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
		goto out;
	}
	inference__model_infer_response__pack(&resp, *buf);
out:
	if (heap) {
		free(ot);
		free(otp);
		free(raw);
	}
	return ret;
}

void gs_infer_fini(struct gs_infer *inf)
{
	for (int i = 0; i < inf->nowned; i++)
		free(inf->owned[i]);
	free(inf->owned);
	for (int i = 0; i < inf->nregions; i++)
		gs_shm_put(inf->regions[i]);
	free(inf->regions);
	free(inf->t);           /* out_shm and out_order too (gs_infer_prepare) */
	memset(inf, 0, sizeof(*inf));
}
