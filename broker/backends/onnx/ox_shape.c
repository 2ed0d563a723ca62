/* SPDX-License-Identifier: MIT */
/*
 * ox_shape.c - shapes at a batch size, the model's queries and the arena
 * plan of the ONNX executor
 *
 * Pure arithmetic on a loaded struct ox_model, with no BLAS and no
 * protobuf: the CPU runner (ox_run.c) and the CUDA module (ox_cuda.so,
 * which is built from this file too) share it, so both lay their arenas
 * out the same way.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <ferry/errors.h>

#include "ox_int.h"

/* ---------------------------------------------------------------------- */
/* shapes */

int ox__shape(const struct ox__tensor *t, int64_t B, int64_t *dims)
{
	for (int i = 0; i < t->rank; i++)
		dims[i] = ox__dimv(t->dims[i], B);
	return t->rank;
}

int64_t ox__numel(const struct ox__tensor *t, int64_t B)
{
	int64_t n = 1;

	for (int i = 0; i < t->rank; i++)
		n *= ox__dimv(t->dims[i], B);
	return n;
}

/*
 * Element count at @B with overflow checks; false on overflow or above
 * INT_MAX elements: BLAS takes int sizes and leading dimensions, and every
 * one of them is bounded by some tensor's element count.
 */
static bool ox__numel_checked(const struct ox__tensor *t, int64_t B, size_t *out)
{
	int64_t n = 1, d;

	for (int i = 0; i < t->rank; i++) {
		if (__builtin_mul_overflow(t->dims[i].c, t->dims[i].b ? B : 1,
					   &d) ||
		    __builtin_mul_overflow(n, d, &n))
			return false;
	}
	if (n > INT_MAX)
		return false;
	*out = (size_t)n;
	return true;
}

int64_t ox__prod(const int64_t *d, int from, int to)
{
	int64_t n = 1;

	for (int i = from; i < to; i++)
		n *= d[i];
	return n;
}

/* [N, C, H, W] view of a 1-D or 2-D tensor */
void ox__nchw(const struct ox__tensor *t, int64_t B, int64_t *d)
{
	int64_t v[OX_MAX_RANK] = { 0 };
	int r = ox__shape(t, B, v);

	d[0] = v[0];
	d[1] = v[1];
	d[2] = r == 4 ? v[2] : 1;
	d[3] = v[r - 1];
}

bool ox__conv_direct(const struct ox__win *w)
{
	return w->k[0] == 1 && w->k[1] == 1 && w->s[0] == 1 && w->s[1] == 1 &&
	       w->pb[0] == 0 && w->pb[1] == 0 && w->pe[0] == 0 &&
	       w->pe[1] == 0;
}

size_t ox__scratch_floats(const struct ox_model *m, const struct ox__step *s,
			  int64_t B)
{
	int64_t xd[4], yd[4];

	if (s->op != OX__OP_CONV || ox__conv_direct(&s->win))
		return 0;
	ox__nchw(&m->tensors[s->in[0]], B, xd);
	ox__nchw(&m->tensors[s->out], B, yd);
	/* each factor is bounded by a tensor's size, the product is not */
	size_t n = (size_t)(xd[1] / s->win.group);

	if (__builtin_mul_overflow(n, (size_t)(s->win.k[0] * s->win.k[1]), &n) ||
	    __builtin_mul_overflow(n, (size_t)(yd[2] * yd[3]), &n))
		return SIZE_MAX;
	return n;
}

/* ---------------------------------------------------------------------- */
/* model queries */

int ox_model_num_inputs(const struct ox_model *m)
{
	return m ? m->ninputs : 0;
}

int ox_model_num_outputs(const struct ox_model *m)
{
	return m ? m->noutputs : 0;
}

int ox_model_input(const struct ox_model *m, int i, struct ox_tensor_info *info)
{
	if (!m || !info || i < 0 || i >= m->ninputs)
		return FERRY_EINVAL;
	*info = m->inputs[i].info;
	return 0;
}

int ox_model_output(const struct ox_model *m, int i,
		    struct ox_tensor_info *info)
{
	if (!m || !info || i < 0 || i >= m->noutputs)
		return FERRY_EINVAL;
	*info = m->outputs[i].info;
	return 0;
}

int ox_model_opset(const struct ox_model *m)
{
	return m ? m->opset : 0;
}

size_t ox_tensor_numel(const struct ox_tensor_info *info, int batch)
{
	size_t n = 1;

	if (!info || batch < 0)
		return 0;
	for (int i = 0; i < info->rank; i++) {
		size_t d = info->dims[i] < 0 ? (size_t)batch :
					       (size_t)info->dims[i];

		if (__builtin_mul_overflow(n, d, &n))
			return 0;
	}
	return n;
}

/* ---------------------------------------------------------------------- */
/* the arena */

struct ox__slot {
	int t;
	size_t off, size;
};

static int ox__cmp_size_desc(const void *a, const void *b)
{
	const struct ox__slot *x = a, *y = b;

	if (x->size != y->size)
		return x->size < y->size ? 1 : -1;
	return x->t - y->t;
}

static int ox__cmp_off(const void *a, const void *b)
{
	const struct ox__slot *x = *(const struct ox__slot *const *)a;
	const struct ox__slot *y = *(const struct ox__slot *const *)b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static bool ox__live_overlap(const struct ox__tensor *a, const struct ox__tensor *b)
{
	int ae = a->last > a->def ? a->last : a->def;
	int be = b->last > b->def ? b->last : b->def;

	return a->def <= be && b->def <= ae;
}

/*
 * Arena layout: greedy by size.  The largest tensors are placed first, each
 * at the lowest offset that does not overlap a placed tensor whose lifetime
 * (from the step that writes it to the last step that reads it) overlaps
 * its own.  A step's output never shares memory with its inputs because
 * their lifetimes meet at that step.  Returns the arena size.
 */
static size_t ox__arena_layout(const struct ox_model *m, struct ox__slot *sl,
			   int n, const struct ox__slot **tmp)
{
	size_t total = 0;

	qsort(sl, (size_t)n, sizeof(*sl), ox__cmp_size_desc);
	for (int i = 0; i < n; i++) {
		const struct ox__tensor *ti = &m->tensors[sl[i].t];
		int k = 0;
		size_t off = 0;

		for (int j = 0; j < i; j++)
			if (ox__live_overlap(ti, &m->tensors[sl[j].t]))
				tmp[k++] = &sl[j];
		qsort(tmp, (size_t)k, sizeof(*tmp), ox__cmp_off);
		for (int j = 0; j < k; j++) {
			if (tmp[j]->off >= off + sl[i].size)
				break;
			if (tmp[j]->off + tmp[j]->size > off)
				off = tmp[j]->off + tmp[j]->size;
		}
		sl[i].off = off;
		if (off + sl[i].size > total)
			total = off + sl[i].size;
	}
	return total;
}

int ox__plan(const struct ox_model *m, int max_batch, size_t *off,
	     size_t *arena_bytes, size_t *scratch_floats)
{
	struct ox__slot *sl;
	const struct ox__slot **tmp;
	size_t arena, scratch = 0;
	int n = 0, rc = FERRY_E2BIG;

	sl = calloc((size_t)m->ntensors + 1, sizeof(*sl));
	tmp = calloc((size_t)m->ntensors + 1, sizeof(*tmp));
	if (!sl || !tmp) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	for (int i = 0; i < m->ntensors; i++) {
		const struct ox__tensor *t = &m->tensors[i];
		size_t ne = 0;

		off[i] = SIZE_MAX;
		/* every float tensor (inputs, weights, outputs) within bounds */
		if (t->kind != OX__T_INT && t->kind != OX__T_OTHER &&
		    !ox__numel_checked(t, max_batch, &ne))
			goto out;
		if (t->kind != OX__T_VALUE || t->def < 0 || t->graph_out >= 0)
			continue;
		sl[n].t = i;
		sl[n].size = (ne * sizeof(float) + OX__ALIGN - 1) &
			     ~(size_t)(OX__ALIGN - 1);
		n++;
	}
	for (int i = 0; i < m->nsteps; i++) {
		size_t ne = ox__scratch_floats(m, &m->steps[i], max_batch);

		if (ne > scratch)
			scratch = ne;
	}
	arena = ox__arena_layout(m, sl, n, tmp);
	if (scratch > (SIZE_MAX >> 4) ||
	    arena > SIZE_MAX / 2 - scratch * sizeof(float) - OX__ALIGN)
		goto out;
	for (int i = 0; i < n; i++)
		off[sl[i].t] = sl[i].off;
	*arena_bytes = arena;
	*scratch_floats = scratch;
	rc = 0;
out:
	free(sl);
	free(tmp);
	return rc;
}
