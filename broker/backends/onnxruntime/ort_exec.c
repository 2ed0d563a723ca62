/* SPDX-License-Identifier: MIT */
/*
 * ort_exec.c - executing a batch of requests with ONNX Runtime.
 *
 * ZERO COPY, AND WHERE A COPY REMAINS
 *
 * A request that runs alone (batch of one, or the only one of its shape)
 * runs in place: each input is an OrtValue over the client's memory
 * (CreateTensorWithDataAsOrtValue on its shared arena, or on its CUDA IPC
 * region for a GPU instance: the CUDA execution provider reads it where it
 * lies), and each requested output whose shape the config fixes is an
 * OrtValue over the client's output buffer, handed to Run pre-allocated,
 * so ONNX Runtime writes the result into the arena (or device memory).
 * Copies remain where ONNX Runtime needs memory it owns or one block:
 *
 *   - several requests batched together: their inputs are gathered into
 *     one block (the clients' tensors lie in different arenas) and the
 *     outputs scattered back from one;
 *   - an output with a variable dimension: ONNX Runtime allocates it (its
 *     shape is known only after the run) and it is copied out;
 *   - BYTES (ONNX string) tensors: ONNX Runtime keeps std::string
 *     elements, so they are built from and serialised to the
 *     length-prefixed wire form;
 *   - on a GPU instance, host inputs are copied to the device by ONNX
 *     Runtime itself, at pinned speed from a registered arena.
 *
 * Requests of one batch whose shapes (past the batch dimension) differ
 * run separately, each its own Run.  A Run that fails fails its requests
 * with ONNX Runtime's message and nothing else.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/backend.h>

#include "broker/backends/onnxruntime/ort_int.h"

static uint64_t ort__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ort__elems(const int64_t *d, int n)
{
	uint64_t e = 1;

	for (int i = 0; i < n; i++)
		e *= d[i] > 0 ? (uint64_t)d[i] : 0;
	return e;
}

/*
 * Replace the one -1 of want[0..n) (if any) so that it holds `elems`
 * elements.  -1 when it cannot.
 */
static int ort__resolve(int64_t *want, int n, uint64_t elems)
{
	uint64_t known = 1;
	int var = -1;

	for (int d = 0; d < n; d++) {
		if (want[d] < 0) {
			if (var >= 0)
				return -1;
			var = d;
		} else {
			known *= (uint64_t)want[d];
		}
	}
	if (var < 0)
		return known == elems ? 0 : -1;
	if (!known || elems % known)
		return -1;
	want[var] = (int64_t)(elems / known);
	return 0;
}

/*
 * The shape the model takes for a tensor the client shaped `shape` (batch
 * first when the model batches), after the config's reshape.  0 or -1.
 */
static int ort__to_model(const struct ort_model *om, const struct ort_tensor *t,
			 const int64_t *shape, int nd, int64_t *out, int *ond)
{
	int bd = om->mbs > 0 ? 1 : 0;

	if (!t->reshape) {
		if (nd > ORT_MAX_DIMS)
			return -1;
		memcpy(out, shape, (size_t)nd * sizeof(int64_t));
		*ond = nd;
		return 0;
	}
	if (t->rndims + bd > ORT_MAX_DIMS || nd < bd)
		return -1;
	if (bd)
		out[0] = shape[0];
	memcpy(out + bd, t->rshape, (size_t)t->rndims * sizeof(int64_t));
	*ond = t->rndims + bd;
	return ort__resolve(out + bd, t->rndims, ort__elems(shape + bd, nd - bd));
}

/* The client's shape for a model output of shape `mshape` whose first
 * dimension is replaced by `rows` when the model batches. */
static int ort__to_client(const struct ort_model *om, const struct ort_tensor *t,
			  const int64_t *mshape, int mnd, int64_t rows, int64_t *out, int *ond)
{
	int bd = om->mbs > 0 ? 1 : 0;

	if (mnd < bd || mnd > ORT_MAX_DIMS)
		return -1;
	if (!t->reshape) {
		memcpy(out, mshape, (size_t)mnd * sizeof(int64_t));
		if (bd)
			out[0] = rows;
		*ond = mnd;
		return 0;
	}
	if (t->ndims + bd > ORT_MAX_DIMS)
		return -1;
	if (bd)
		out[0] = rows;
	memcpy(out + bd, t->dims, (size_t)t->ndims * sizeof(int64_t));
	*ond = t->ndims + bd;
	return ort__resolve(out + bd, t->ndims, ort__elems(mshape + bd, mnd - bd));
}

static ferry_be_error *ort__status(const OrtApi *api, OrtStatus *st)
{
	return ort_error(api, st, "onnxruntime");
}

/* ------------------------------------------------------------------ */
/* BYTES: ONNX string tensors                                          */

/* A string tensor of `count` elements from the wire form (4-byte
 * little-endian length, then the bytes), appended from several blocks. */
static ferry_be_error *ort__strings_fill(const OrtApi *api, OrtValue *v, size_t first,
					 size_t count, const uint8_t *p, uint64_t bytes,
					 const char *name)
{
	uint64_t off = 0;

	for (size_t k = 0; k < count; k++) {
		char *dst;
		uint32_t len;
		OrtStatus *st;

		if (bytes - off < 4)
			return ferry_be_error_new(FERRY_EINVAL, "input '%s': BYTES element %zu "
						  "is truncated", name, k);
		len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
		      (uint32_t)p[off + 3] << 24;
		off += 4;
		if (len > bytes - off)
			return ferry_be_error_new(FERRY_EINVAL, "input '%s': BYTES element %zu "
						  "overruns the tensor", name, k);
		if ((st = api->GetResizedStringTensorElementBuffer(v, first + k, len, &dst)))
			return ort__status(api, st);
		memcpy(dst, p + off, len);
		off += len;
	}
	return NULL;
}

/* Elements [first, first + count) of a string tensor into the client's
 * output buffer, in the wire form. */
static ferry_be_error *ort__strings_out(const OrtApi *api, ferry_be_request *r, uint32_t ci,
					const OrtValue *v, size_t first, size_t count,
					const int64_t *shape, int nd)
{
	void *data;
	uint64_t cap, at = 0;
	ferry_be_error *e = ferry_be_request_output_buffer(r, ci, shape, nd, &data, &cap);

	if (e)
		return e;
	for (size_t k = 0; k < count; k++) {
		size_t len;
		OrtStatus *st = api->GetStringTensorElementLength(v, first + k, &len);
		if (st)
			return ort__status(api, st);
		if (len > UINT32_MAX || cap - at < 4 || cap - at - 4 < len)
			return ferry_be_error_new(FERRY_E2BIG, "output %u: the strings need more "
						  "than the %llu bytes the client gave", ci,
						  (unsigned long long)cap);
		uint8_t *w = (uint8_t *)data + at;
		w[0] = (uint8_t)len;
		w[1] = (uint8_t)(len >> 8);
		w[2] = (uint8_t)(len >> 16);
		w[3] = (uint8_t)(len >> 24);
		if (len && (st = api->GetStringTensorElement(v, len, first + k, w + 4)))
			return ort__status(api, st);
		at += 4 + len;
	}
	return ferry_be_request_output_set_bytes(r, ci, at);
}

/* ------------------------------------------------------------------ */
/* Grouping                                                            */

/* Whether a request may join a gathered batch: host memory only. */
static bool ort__host_only(const struct ort_model *om, ferry_be_request *r)
{
	ferry_be_memory mt;

	for (uint32_t c = 0; c < om->nin + om->nout; c++) {
		bool input = c < om->nin;
		uint32_t k = input ? c : c - om->nin;
		if (!input && !ferry_be_request_output_requested(r, k))
			continue;
		/* an absent optional input has no memory: an error, dropped */
		ferry_be_error *e = input ? ferry_be_request_input_memory(r, k, &mt, NULL)
					  : ferry_be_request_output_memory(r, k, &mt, NULL);
		if (e)
			ferry_be_error_delete(e);
		else if (mt != FERRY_BE_MEMORY_CPU)
			return false;
	}
	return true;
}

/* Same inputs present with the same shapes past the batch dimension. */
static bool ort__same_shape(const struct ort_model *om, ferry_be_request *a,
			    ferry_be_request *b)
{
	for (uint32_t c = 0; c < om->nin; c++) {
		const int64_t *sa, *sb;
		int na, nb;
		ferry_be_error *ea = ferry_be_request_input(a, c, NULL, NULL, &sa, &na, NULL, NULL);
		ferry_be_error *eb = ferry_be_request_input(b, c, NULL, NULL, &sb, &nb, NULL, NULL);
		bool pa = !ea, pb = !eb;

		ferry_be_error_delete(ea);
		ferry_be_error_delete(eb);
		if (pa != pb)
			return false;
		if (pa && (na != nb || na < 1 ||
			   memcmp(sa + 1, sb + 1, (size_t)(na - 1) * sizeof(int64_t))))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* One Run                                                             */

static void ort__release(const OrtApi *api, OrtValue **v, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		if (v[k])
			api->ReleaseValue(v[k]);
		v[k] = NULL;
	}
}

/* Grow an instance staging buffer to hold `bytes`. */
static void *ort__grow(void **buf, size_t *cap, size_t bytes)
{
	if (bytes > *cap) {
		/* 64-byte aligned, as ONNX Runtime's own allocations are */
		size_t want = (bytes + 63) & ~(size_t)63;
		void *p = NULL;
		if (posix_memalign(&p, 64, want ? want : 64))
			return NULL;
		free(*buf);
		*buf = p;
		*cap = want;
	}
	return *buf;
}

/* The inputs of the group's requests as OrtValues (in->in_vals). */
static ferry_be_error *ort__inputs(struct ort_inst *in, ferry_be_request **reqs,
				   const uint32_t *g, uint32_t n, uint64_t total, uint32_t *nv)
{
	struct ort_model *om = in->om;
	const OrtApi *api = om->api;
	OrtStatus *st;

	*nv = 0;
	for (uint32_t c = 0; c < om->nin; c++) {
		const struct ort_tensor *t = &om->in[c];
		const int64_t *shape;
		const void *data;
		uint64_t bytes;
		int nd, ond;
		int64_t mshape[ORT_MAX_DIMS], cshape[ORT_MAX_DIMS];
		ferry_be_memory mt = FERRY_BE_MEMORY_CPU;
		ferry_be_error *e = ferry_be_request_input(reqs[g[0]], c, NULL, NULL, &shape, &nd,
							   &data, &bytes);
		if (e) {
			/* an optional input not given: ONNX Runtime uses its
			 * default, or says it is missing */
			ferry_be_error_delete(e);
			continue;
		}
		if (nd > ORT_MAX_DIMS)
			return ferry_be_error_new(FERRY_SHAPE, "input '%s': %d dimensions", t->name, nd);
		memcpy(cshape, shape, (size_t)nd * sizeof(int64_t));
		if (n > 1)
			cshape[0] = (int64_t)total;
		if (ort__to_model(om, t, cshape, nd, mshape, &ond))
			return ferry_be_error_new(FERRY_SHAPE, "input '%s': its shape does not "
						  "reshape to the model's", t->name);
		if ((e = ferry_be_request_input_memory(reqs[g[0]], c, &mt, NULL)))
			return e;
		if (mt == FERRY_BE_MEMORY_GPU && !in->gpu)
			return ferry_be_error_new(FERRY_EINVAL, "input '%s' is in CUDA memory and "
						  "this instance runs on the CPU: send it to a "
						  "model with KIND_GPU instances", t->name);
		OrtValue **v = &in->in_vals[*nv];
		if (!t->esize) {
			/* BYTES: one string tensor holding every request's */
			uint64_t el = ort__elems(mshape, ond), first = 0;
			if ((st = api->CreateTensorAsOrtValue(in->alloc, mshape, (size_t)ond,
							      t->type, v)))
				return ort__status(api, st);
			in->in_names[(*nv)++] = t->name;
			for (uint32_t k = 0; k < n; k++) {
				const int64_t *s;
				int snd;
				ferry_be_request_input(reqs[g[k]], c, NULL, NULL, &s, &snd, &data,
						       &bytes);
				uint64_t cnt = ort__elems(s, snd);
				if (first + cnt > el)
					return ferry_be_error_new(FERRY_SHAPE, "input '%s': more "
								  "strings than its shape", t->name);
				if ((e = ort__strings_fill(api, *v, first, cnt, data, bytes, t->name)))
					return e;
				first += cnt;
			}
			continue;
		}
		void *base = (void *)data;      /* ONNX Runtime only reads inputs */
		uint64_t len = bytes;
		if (n > 1) {
			/* gather the rows of every request into one block */
			len = 0;
			for (uint32_t k = 0; k < n; k++) {
				ferry_be_request_input(reqs[g[k]], c, NULL, NULL, NULL, NULL, NULL,
						       &bytes);
				len += bytes;
			}
			base = ort__grow(&in->gather[c], &in->gather_cap[c], len);
			if (!base)
				return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
			uint64_t at = 0;
			for (uint32_t k = 0; k < n; k++) {
				ferry_be_request_input(reqs[g[k]], c, NULL, NULL, NULL, NULL, &data,
						       &bytes);
				memcpy((char *)base + at, data, bytes);
				at += bytes;
			}
		}
		st = api->CreateTensorWithDataAsOrtValue(mt == FERRY_BE_MEMORY_GPU ? in->gpu_mem
										  : in->cpu_mem,
							 base, len, mshape, (size_t)ond, t->type, v);
		if (st)
			return ort__status(api, st);
		in->in_names[(*nv)++] = t->name;
	}
	return NULL;
}

/*
 * The outputs to ask Run for (in->out_names): every output a request of
 * the group wants.  Fixed-shape ones are pre-allocated: over the client's
 * buffer for a request alone, over an instance stage for a batch.
 */
static ferry_be_error *ort__outputs(struct ort_inst *in, ferry_be_request **reqs,
				    const uint32_t *g, uint32_t n, uint64_t total, uint32_t *no)
{
	struct ort_model *om = in->om;
	const OrtApi *api = om->api;
	int bd = om->mbs > 0 ? 1 : 0;

	*no = 0;
	for (uint32_t c = 0; c < om->nout; c++) {
		const struct ort_tensor *t = &om->out[c];
		bool want = false;

		for (uint32_t k = 0; k < n && !want; k++)
			want = ferry_be_request_output_requested(reqs[g[k]], c);
		if (!want)
			continue;
		uint32_t o = (*no)++;
		in->out_names[o] = t->name;
		in->out_idx[o] = (int)c;
		in->out_vals[o] = NULL;
		ferry_be_memory mt = FERRY_BE_MEMORY_CPU;
		if (n == 1) {
			ferry_be_error *e = ferry_be_request_output_memory(reqs[g[0]], c, &mt, NULL);
			if (e)
				return e;
			if (mt == FERRY_BE_MEMORY_GPU && (!in->gpu || !t->fixed))
				return ferry_be_error_new(FERRY_EINVAL, "output '%s' is in CUDA "
							  "memory: that needs a KIND_GPU instance "
							  "and an output of fixed dims", t->name);
		}
		if (!t->fixed)
			continue;       /* ONNX Runtime allocates; copied out */
		int64_t cshape[ORT_MAX_DIMS], mshape[ORT_MAX_DIMS];
		int cnd = t->ndims + bd, mnd;
		if (cnd > ORT_MAX_DIMS)
			return ferry_be_error_new(FERRY_SHAPE, "output '%s': too many dims", t->name);
		if (bd)
			cshape[0] = (int64_t)total;
		memcpy(cshape + bd, t->dims, (size_t)t->ndims * sizeof(int64_t));
		if (ort__to_model(om, t, cshape, cnd, mshape, &mnd))
			return ferry_be_error_new(FERRY_SHAPE, "output '%s': its dims do not "
						  "reshape to the model's", t->name);
		uint64_t bytes = ort__elems(cshape, cnd) * t->esize;
		void *data;
		if (n == 1) {
			uint64_t cap;
			ferry_be_error *e = ferry_be_request_output_buffer(reqs[g[0]], c, cshape,
									   cnd, &data, &cap);
			if (e)
				return e;
		} else {
			data = ort__grow(&in->stage[c], &in->stage_cap[c], bytes);
			if (!data)
				return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
		}
		OrtStatus *st = api->CreateTensorWithDataAsOrtValue(
			mt == FERRY_BE_MEMORY_GPU ? in->gpu_mem : in->cpu_mem, data, bytes, mshape,
			(size_t)mnd, t->type, &in->out_vals[o]);
		if (st)
			return ort__status(api, st);
	}
	return NULL;
}

/* Hand output o of a finished Run to request r, whose rows start at row0
 * (copies; the in-place outputs of a lone request are already there). */
static ferry_be_error *ort__deliver(struct ort_inst *in, ferry_be_request *r, uint32_t o,
				    uint64_t row0, uint64_t rows, uint64_t total, bool alone)
{
	struct ort_model *om = in->om;
	const OrtApi *api = om->api;
	uint32_t c = (uint32_t)in->out_idx[o];
	const struct ort_tensor *t = &om->out[c];
	OrtValue *v = in->out_vals[o];
	OrtTensorTypeAndShapeInfo *info = NULL;
	int64_t mshape[ORT_MAX_DIMS], cshape[ORT_MAX_DIMS];
	size_t mnd = 0;
	int cnd;
	int bd = om->mbs > 0 ? 1 : 0;
	OrtStatus *st;
	void *src;

	if (!ferry_be_request_output_requested(r, c))
		return NULL;
	if (alone && t->fixed)
		return NULL;    /* written in place */
	if ((st = api->GetTensorTypeAndShape(v, &info)) ||
	    (st = api->GetDimensionsCount(info, &mnd)) ||
	    (mnd <= ORT_MAX_DIMS && (st = api->GetDimensions(info, mshape, mnd)))) {
		if (info)
			api->ReleaseTensorTypeAndShapeInfo(info);
		return ort__status(api, st);
	}
	api->ReleaseTensorTypeAndShapeInfo(info);
	if (mnd > ORT_MAX_DIMS)
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': %zu dimensions", t->name, mnd);
	if (bd && (mnd < 1 || (uint64_t)mshape[0] != total))
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': model.onnx made %lld rows "
					  "for a batch of %llu", t->name,
					  mnd ? (long long)mshape[0] : 0LL, (unsigned long long)total);
	if (ort__to_client(om, t, mshape, (int)mnd, (int64_t)rows, cshape, &cnd))
		return ferry_be_error_new(FERRY_SHAPE, "output '%s': the model's shape does not "
					  "reshape to the config's dims", t->name);
	uint64_t all = ort__elems(mshape, (int)mnd);
	uint64_t per_row = bd ? (total ? all / total : 0) : all;
	if (!t->esize)
		return ort__strings_out(api, r, c, v, (size_t)(row0 * per_row),
					(size_t)(rows * per_row), cshape, cnd);
	if ((st = api->GetTensorMutableData(v, &src)))
		return ort__status(api, st);
	void *dst;
	uint64_t cap;
	ferry_be_error *e = ferry_be_request_output_buffer(r, c, cshape, cnd, &dst, &cap);
	if (e)
		return e;
	memcpy(dst, (const char *)src + row0 * per_row * t->esize, rows * per_row * t->esize);
	return NULL;
}

/* Run the requests reqs[g[0..n)] as one ONNX Runtime Run. */
static void ort__run(ferry_be_instance *i, struct ort_inst *in, ferry_be_request **reqs,
		     const uint32_t *g, uint32_t n, uint64_t *t_in, uint64_t *t_inf)
{
	struct ort_model *om = in->om;
	const OrtApi *api = om->api;
	uint64_t total = 0;
	uint32_t nv = 0, no = 0;
	ferry_be_error *e;

	for (uint32_t k = 0; k < n; k++)
		total += ferry_be_request_batch_size(reqs[g[k]]);
	if (!(e = ort__inputs(in, reqs, g, n, total, &nv)) &&
	    !(e = ort__outputs(in, reqs, g, n, total, &no))) {
		if (!no) {
			/* nothing requested: run for the side of it */
			in->out_names[0] = om->out[0].name;
			in->out_idx[0] = 0;
			in->out_vals[0] = NULL;
			no = 1;
		}
		if (!*t_in)
			*t_in = ort__now();
		OrtStatus *st = api->Run(in->sess, om->run_opts, in->in_names,
					 (const OrtValue *const *)in->in_vals, nv, in->out_names,
					 no, in->out_vals);
		*t_inf = ort__now();
		if (st)
			e = ort__status(api, st);
	}
	if (e) {
		/* the group's requests fail together, with ONNX Runtime's word */
		for (uint32_t k = 1; k < n; k++)
			ferry_be_request_set_error(reqs[g[k]],
				ferry_be_error_new(ferry_be_error_code(e), "%s",
						   ferry_be_error_message(e)));
		ferry_be_request_set_error(reqs[g[0]], e);
	} else {
		uint64_t row0 = 0;
		for (uint32_t k = 0; k < n; k++) {
			uint64_t rows = ferry_be_request_batch_size(reqs[g[k]]);
			for (uint32_t o = 0; o < no; o++) {
				e = ort__deliver(in, reqs[g[k]], o, row0, rows, total, n == 1);
				if (e) {
					ferry_be_request_set_error(reqs[g[k]], e);
					break;
				}
			}
			row0 += rows;
		}
	}
	ort__release(api, in->in_vals, nv);
	ort__release(api, in->out_vals, no);
}

ferry_be_error *ort_execute(ferry_be_instance *i, ferry_be_request **reqs, uint32_t count)
{
	struct ort_inst *in = ferry_be_instance_state(i);
	struct ort_model *om = in->om;
	uint64_t t_in = 0, t_inf = 0;

	if (count > in->cap)
		return ferry_be_error_new(FERRY_EINVAL, "a batch of %u requests; the instance "
					  "holds %u", count, in->cap);
	for (uint32_t k = 0; k < count; k++)
		in->done[k] = false;
	for (uint32_t k = 0; k < count; k++) {
		uint32_t n = 0;

		if (in->done[k])
			continue;
		in->done[k] = true;
		in->group[n++] = k;
		/* Batch mates: same shapes, host memory (a device tensor
		 * cannot be gathered without CUDA calls of ferry's own). */
		if (om->mbs > 0 && count > 1 && ort__host_only(om, reqs[k]))
			for (uint32_t j = k + 1; j < count; j++)
				if (!in->done[j] && ort__host_only(om, reqs[j]) &&
				    ort__same_shape(om, reqs[k], reqs[j])) {
					in->done[j] = true;
					in->group[n++] = j;
				}
		ort__run(i, in, reqs, in->group, n, &t_in, &t_inf);
	}
	if (t_in && t_inf >= t_in)
		ferry_be_instance_report_compute(i, t_in, t_inf);
	return NULL;
}
