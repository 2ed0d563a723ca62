/* SPDX-License-Identifier: MIT */
/*
 * ox_ops.c - the operators of the ONNX executor at load time (see
 * ox_load.h): the table of supported operators and, for each, its shape
 * inference, attribute checks and plan (window geometry, folded
 * BatchNorm, constant Reshape/Squeeze/Unsqueeze shapes).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "ox_load.h"

/* ---------------------------------------------------------------------- */
/* operators */

static const struct ox__opdef ox__opdefs[] = {
	{ "Gemm", OX__OP_GEMM, 2, 3 },
	{ "MatMul", OX__OP_MATMUL, 2, 2 },
	{ "Add", OX__OP_ADD, 2, 2 },
	{ "Sub", OX__OP_SUB, 2, 2 },
	{ "Mul", OX__OP_MUL, 2, 2 },
	{ "Div", OX__OP_DIV, 2, 2 },
	{ "Relu", OX__OP_RELU, 1, 1 },
	{ "LeakyRelu", OX__OP_LEAKYRELU, 1, 1 },
	{ "Elu", OX__OP_ELU, 1, 1 },
	{ "Sigmoid", OX__OP_SIGMOID, 1, 1 },
	{ "Tanh", OX__OP_TANH, 1, 1 },
	{ "Softmax", OX__OP_SOFTMAX, 1, 1 },
	{ "LogSoftmax", OX__OP_LOGSOFTMAX, 1, 1 },
	{ "Flatten", OX__OP_COPY, 1, 1 },
	{ "Reshape", OX__OP_COPY, 2, 2 },
	{ "Transpose", OX__OP_TRANSPOSE, 1, 1 },
	{ "Concat", OX__OP_CONCAT, 1, -1 },
	{ "Squeeze", OX__OP_COPY, 1, 2 },
	{ "Unsqueeze", OX__OP_COPY, 2, 2 },
	{ "Identity", OX__OP_COPY, 1, 1 },
	{ "Constant", OX__OP_COPY, 0, 0 },
	{ "BatchNormalization", OX__OP_BATCHNORM, 5, 5 },
	{ "Conv", OX__OP_CONV, 2, 3 },
	{ "MaxPool", OX__OP_MAXPOOL, 1, 1 },
	{ "AveragePool", OX__OP_AVGPOOL, 1, 1 },
	{ "GlobalAveragePool", OX__OP_GLOBALAVGPOOL, 1, 1 },
};

const struct ox__opdef *ox__opdef_find(const Onnx__NodeProto *n)
{
	const char *dom = ox__nz(n->domain);

	if (!n->op_type || (dom[0] && strcmp(dom, "ai.onnx") != 0))
		return NULL;
	for (size_t i = 0; i < sizeof(ox__opdefs) / sizeof(ox__opdefs[0]); i++)
		if (strcmp(ox__opdefs[i].name, n->op_type) == 0)
			return &ox__opdefs[i];
	return NULL;
}

/* The float tensor behind input @i of the node, or a negative code. */
static int ox__in_float(struct ox__ld *ld, const struct ox__step *s, int i)
{
	const struct ox__tensor *t;

	if (i >= s->nin || s->in[i] < 0)
		return ox__node_err(ld, FERRY_EBADMSG, "input %d is missing", i);
	t = &ld->m->tensors[s->in[i]];
	if (t->kind == OX__T_INT || t->kind == OX__T_OTHER)
		return ox__node_err(ld, FERRY_ENOTSUP,
				"input %d ('%s') is not float32", i,
				ox__nz(ld->node->input[i]));
	return s->in[i];
}

/* The int64 constant behind input @i, or a negative code. */
static int ox__in_ints(struct ox__ld *ld, const struct ox__step *s, int i,
		   const int64_t **v, size_t *n)
{
	const struct ox__tensor *t;

	if (i >= s->nin || s->in[i] < 0)
		return ox__node_err(ld, FERRY_EBADMSG, "input %d is missing", i);
	t = &ld->m->tensors[s->in[i]];
	if (t->kind != OX__T_INT || t->rank > 1)
		return ox__node_err(ld, FERRY_ENOTSUP,
				"input %d ('%s') must be a 1-D int64 constant",
				i, ox__nz(ld->node->input[i]));
	*v = t->idata;
	*n = t->icount;
	return 0;
}

/* numpy broadcasting of two shapes into @o */
static int ox__bcast(struct ox__ld *ld, const struct ox__tensor *a,
		 const struct ox__tensor *b, struct ox__tensor *o)
{
	int r = a->rank > b->rank ? a->rank : b->rank;
	char sa[96], sb[96];

	o->rank = r;
	for (int i = 0; i < r; i++) {
		int ia = i - (r - a->rank), ib = i - (r - b->rank);
		struct ox__dim da = ia >= 0 ? a->dims[ia] : (struct ox__dim){ 1, 0 };
		struct ox__dim db = ib >= 0 ? b->dims[ib] : (struct ox__dim){ 1, 0 };

		if (ox__dim_eq(da, db) || ox__dim_one(db)) {
			o->dims[i] = da;
		} else if (ox__dim_one(da)) {
			o->dims[i] = db;
		} else {
			ox__fmt_shape(a, sa, sizeof(sa));
			ox__fmt_shape(b, sb, sizeof(sb));
			return ox__node_err(ld, FERRY_ENOTSUP,
					"shapes %s and %s do not broadcast", sa,
					sb);
		}
	}
	return 0;
}

/*
 * Window geometry of Conv / MaxPool / AveragePool for a [N, C, spatial]
 * input; fills s->win and the spatial output dims.
 */
static int ox__plan_window(struct ox__ld *ld, struct ox__step *s,
		       const struct ox__tensor *x, const int64_t *wk,
		       struct ox__tensor *o)
{
	struct ox__win *w = &s->win;
	int nsp = x->rank - 2;
	int64_t v[8];
	int n;
	char autopad[32];
	int rc;
	bool is_pool = s->op != OX__OP_CONV;

	if (nsp < 1 || nsp > 2)
		return ox__node_err(ld, FERRY_ENOTSUP,
				"only 1-D and 2-D inputs are supported (rank %d)",
				x->rank);
	for (int i = 1; i < x->rank; i++)
		if (x->dims[i].b)
			return ox__node_err(ld, FERRY_ENOTSUP,
					"the batch dimension may only be the first");
	for (int i = 0; i < 2; i++) {
		w->k[i] = 1;
		w->s[i] = 1;
		w->d[i] = 1;
		w->pb[i] = 0;
		w->pe[i] = 0;
	}
	/* 1-D works as 2-D with H = 1: the spatial axis is index 1 */
	int off = 2 - nsp;

	rc = ox__attr_ints(ld, "kernel_shape", v, nsp, &n);
	if (rc)
		return rc;
	if (n >= 0 && n != nsp)
		return ox__node_err(ld, FERRY_EBADMSG, "kernel_shape has %d values",
				n);
	if (wk) {
		for (int i = 0; i < nsp; i++) {
			if (n >= 0 && v[i] != wk[i])
				return ox__node_err(ld, FERRY_EBADMSG,
						"kernel_shape does not match the weights");
			w->k[off + i] = wk[i];
		}
	} else {
		if (n < 0)
			return ox__node_err(ld, FERRY_EBADMSG,
					"kernel_shape is required");
		for (int i = 0; i < nsp; i++)
			w->k[off + i] = v[i];
	}
	rc = ox__attr_ints(ld, "strides", v, nsp, &n);
	if (rc)
		return rc;
	if (n >= 0 && n != nsp)
		return ox__node_err(ld, FERRY_EBADMSG, "strides has %d values", n);
	for (int i = 0; i < n; i++)
		w->s[off + i] = v[i];
	rc = ox__attr_ints(ld, "dilations", v, nsp, &n);
	if (rc)
		return rc;
	if (n >= 0 && n != nsp)
		return ox__node_err(ld, FERRY_EBADMSG, "dilations has %d values",
				n);
	for (int i = 0; i < n; i++)
		w->d[off + i] = v[i];
	rc = ox__attr_ints(ld, "pads", v, 2 * nsp, &n);
	if (rc)
		return rc;
	if (n >= 0 && n != 2 * nsp)
		return ox__node_err(ld, FERRY_EBADMSG, "pads has %d values", n);
	for (int i = 0; i < n / 2; i++) {
		w->pb[off + i] = v[i];
		w->pe[off + i] = v[nsp + i];
	}
	for (int i = 0; i < 2; i++) {
		if (w->k[i] < 1 || w->k[i] > 65536 || w->s[i] < 1 ||
		    w->s[i] > 65536 || w->d[i] < 1 || w->d[i] > 65536 ||
		    w->pb[i] < 0 || w->pb[i] > 65536 || w->pe[i] < 0 ||
		    w->pe[i] > 65536)
			return ox__node_err(ld, FERRY_EBADMSG,
					"kernel, stride, dilation or pad out of range");
	}
	if (s->op == OX__OP_AVGPOOL || s->op == OX__OP_MAXPOOL) {
		int64_t cm, cip;

		rc = ox__attr_int(ld, "ceil_mode", 0, &cm);
		if (!rc)
			rc = ox__attr_int(ld, "count_include_pad", 0, &cip);
		if (rc)
			return rc;
		w->ceil_mode = cm != 0;
		w->count_include_pad = cip != 0;
	}
	rc = ox__attr_str(ld, "auto_pad", "NOTSET", autopad, sizeof(autopad));
	if (rc)
		return rc;
	o->rank = x->rank;
	o->dims[0] = x->dims[0];
	for (int i = 0; i < nsp; i++) {
		int j = off + i;
		int64_t in = x->dims[2 + i].c, ext, out;

		ext = w->d[j] * (w->k[j] - 1) + 1;
		if (strcmp(autopad, "SAME_UPPER") == 0 ||
		    strcmp(autopad, "SAME_LOWER") == 0) {
			int64_t tot;

			out = (in + w->s[j] - 1) / w->s[j];
			tot = (out - 1) * w->s[j] + ext - in;
			if (tot < 0)
				tot = 0;
			if (autopad[5] == 'U') {
				w->pb[j] = tot / 2;
				w->pe[j] = tot - tot / 2;
			} else {
				w->pe[j] = tot / 2;
				w->pb[j] = tot - tot / 2;
			}
		} else if (strcmp(autopad, "VALID") == 0) {
			w->pb[j] = w->pe[j] = 0;
			out = in >= ext ? (in - ext) / w->s[j] + 1 : 0;
		} else if (strcmp(autopad, "NOTSET") == 0) {
			int64_t span = in + w->pb[j] + w->pe[j] - ext;

			if (span < 0) {
				out = 0;
			} else if (w->ceil_mode) {
				out = (span + w->s[j] - 1) / w->s[j] + 1;
				/* the last window must start inside the
				 * input or its leading pad (ONNX >= 19,
				 * onnxruntime, PyTorch) */
				if ((out - 1) * w->s[j] >= in + w->pb[j])
					out--;
			} else {
				out = span / w->s[j] + 1;
			}
		} else {
			return ox__node_err(ld, FERRY_EBADMSG,
					"unknown auto_pad '%s'", autopad);
		}
		if (out < 1)
			return ox__node_err(ld, FERRY_ENOTSUP,
					"the window does not fit the input");
		if (is_pool && (w->pb[j] >= ext || w->pe[j] >= ext))
			return ox__node_err(ld, FERRY_ENOTSUP,
					"pads must be smaller than the window");
		o->dims[2 + i] = (struct ox__dim){ out, 0 };
	}
	return 0;
}

static int ox__plan_conv(struct ox__ld *ld, struct ox__step *s,
		     struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	int ix = ox__in_float(ld, s, 0), iw, rc;
	int64_t g, wk[2];
	const struct ox__tensor *x, *w;

	if (ix < 0)
		return ix;
	iw = ox__in_float(ld, s, 1);
	if (iw < 0)
		return iw;
	x = &m->tensors[ix];
	w = &m->tensors[iw];
	if (x->rank < 3 || x->rank > 4 || w->rank != x->rank)
		return ox__node_err(ld, FERRY_ENOTSUP,
				"only 1-D and 2-D convolutions are supported");
	for (int i = 0; i < w->rank; i++)
		if (w->dims[i].b)
			return ox__node_err(ld, FERRY_ENOTSUP,
					"the weights depend on the batch");
	rc = ox__attr_int(ld, "group", 1, &g);
	if (rc)
		return rc;
	if (g < 1 || x->dims[1].c % g || w->dims[0].c % g ||
	    w->dims[1].c * g != x->dims[1].c)
		return ox__node_err(ld, FERRY_EBADMSG,
				"channels (%lld in, weights [%lld,%lld]) do not match group %lld",
				(long long)x->dims[1].c,
				(long long)w->dims[0].c,
				(long long)w->dims[1].c, (long long)g);
	for (int i = 2; i < w->rank; i++)
		wk[i - 2] = w->dims[i].c;
	rc = ox__plan_window(ld, s, x, wk, o);
	if (rc)
		return rc;
	s->win.group = g;
	o->dims[1] = w->dims[0];
	if (s->nin > 2 && s->in[2] >= 0) {
		int ib = ox__in_float(ld, s, 2);

		if (ib < 0)
			return ib;
		if (m->tensors[ib].rank != 1 ||
		    !ox__dim_eq(m->tensors[ib].dims[0], w->dims[0]))
			return ox__node_err(ld, FERRY_EBADMSG,
					"the bias must have one value per output channel");
	}
	return 0;
}

static int ox__plan_pool(struct ox__ld *ld, struct ox__step *s,
		     struct ox__tensor *o)
{
	int ix = ox__in_float(ld, s, 0), rc;
	const struct ox__tensor *x;

	if (ix < 0)
		return ix;
	x = &ld->m->tensors[ix];
	if (s->op == OX__OP_GLOBALAVGPOOL) {
		if (x->rank < 3)
			return ox__node_err(ld, FERRY_EBADMSG,
					"the input needs spatial dimensions");
		*o = *x;
		for (int i = 1; i < x->rank; i++)
			if (x->dims[i].b)
				return ox__node_err(ld, FERRY_ENOTSUP,
						"the batch dimension may only be the first");
		for (int i = 2; i < x->rank; i++)
			o->dims[i] = (struct ox__dim){ 1, 0 };
		return 0;
	}
	if (s->op == OX__OP_MAXPOOL) {
		int64_t so;

		rc = ox__attr_int(ld, "storage_order", 0, &so);
		if (rc)
			return rc;
	}
	rc = ox__plan_window(ld, s, x, NULL, o);
	if (rc)
		return rc;
	o->dims[1] = x->dims[1];
	return 0;
}

static int ox__plan_gemm(struct ox__ld *ld, struct ox__step *s,
		     struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	int ia = ox__in_float(ld, s, 0), ib, rc;
	int64_t ta, tb;
	const struct ox__tensor *a, *b;

	if (ia < 0)
		return ia;
	ib = ox__in_float(ld, s, 1);
	if (ib < 0)
		return ib;
	a = &m->tensors[ia];
	b = &m->tensors[ib];
	rc = ox__attr_float(ld, "alpha", 1.0f, &s->alpha);
	if (!rc)
		rc = ox__attr_float(ld, "beta", 1.0f, &s->beta);
	if (!rc)
		rc = ox__attr_int(ld, "transA", 0, &ta);
	if (!rc)
		rc = ox__attr_int(ld, "transB", 0, &tb);
	if (rc)
		return rc;
	s->trans_a = ta != 0;
	s->trans_b = tb != 0;
	if (a->rank != 2 || b->rank != 2)
		return ox__node_err(ld, FERRY_EBADMSG, "A and B must be 2-D");
	if (!ox__dim_eq(a->dims[s->trans_a ? 0 : 1], b->dims[s->trans_b ? 1 : 0]))
		return ox__node_err(ld, FERRY_EBADMSG,
				"inner dimensions do not match");
	o->rank = 2;
	o->dims[0] = a->dims[s->trans_a ? 1 : 0];
	o->dims[1] = b->dims[s->trans_b ? 0 : 1];
	if (s->nin > 2 && s->in[2] >= 0) {
		int ic = ox__in_float(ld, s, 2);
		struct ox__tensor y;

		if (ic < 0)
			return ic;
		if (m->tensors[ic].rank > 2)
			return ox__node_err(ld, FERRY_EBADMSG, "C has rank > 2");
		/* C broadcasts one way: to Y's shape and nothing bigger */
		rc = ox__bcast(ld, o, &m->tensors[ic], &y);
		if (rc)
			return rc;
		if (!ox__dim_eq(y.dims[0], o->dims[0]) ||
		    !ox__dim_eq(y.dims[1], o->dims[1]))
			return ox__node_err(ld, FERRY_EBADMSG,
					"C does not broadcast to [M, N]");
	}
	return 0;
}

static int ox__plan_matmul(struct ox__ld *ld, struct ox__step *s,
		       struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	int ia = ox__in_float(ld, s, 0), ib, rc;
	struct ox__tensor a, b, ba, bb, bo;

	if (ia < 0)
		return ia;
	ib = ox__in_float(ld, s, 1);
	if (ib < 0)
		return ib;
	a = m->tensors[ia];
	b = m->tensors[ib];
	if (a.rank < 1 || b.rank < 1)
		return ox__node_err(ld, FERRY_EBADMSG, "MatMul of a scalar");
	/* numpy: a 1-D A is a row, a 1-D B a column, dropped afterwards */
	bool drop_m = a.rank == 1, drop_n = b.rank == 1;

	if (drop_m) {
		a.dims[1] = a.dims[0];
		a.dims[0] = (struct ox__dim){ 1, 0 };
		a.rank = 2;
	}
	if (drop_n) {
		b.dims[1] = (struct ox__dim){ 1, 0 };
		b.rank = 2;
	}
	if (!ox__dim_eq(a.dims[a.rank - 1], b.dims[b.rank - 2]))
		return ox__node_err(ld, FERRY_EBADMSG,
				"inner dimensions do not match");
	ba.rank = a.rank - 2;
	memcpy(ba.dims, a.dims, sizeof(a.dims[0]) * (size_t)ba.rank);
	bb.rank = b.rank - 2;
	memcpy(bb.dims, b.dims, sizeof(b.dims[0]) * (size_t)bb.rank);
	rc = ox__bcast(ld, &ba, &bb, &bo);
	if (rc)
		return rc;
	*o = bo;
	if (o->rank + 2 > OX_MAX_RANK)
		return ox__node_err(ld, FERRY_ENOTSUP, "rank too large");
	if (!drop_m)
		o->dims[o->rank++] = a.dims[a.rank - 2];
	if (!drop_n)
		o->dims[o->rank++] = b.dims[b.rank - 1];
	return 0;
}

static int ox__plan_reshape(struct ox__ld *ld, struct ox__step *s,
			const struct ox__tensor *x, struct ox__tensor *o)
{
	const int64_t *v;
	size_t n;
	int64_t allowzero, ci, ck;
	int pi, pk, neg = -1, rc;

	rc = ox__in_ints(ld, s, 1, &v, &n);
	if (rc)
		return rc;
	rc = ox__attr_int(ld, "allowzero", 0, &allowzero);
	if (rc)
		return rc;
	if (n > OX_MAX_RANK)
		return ox__node_err(ld, FERRY_ENOTSUP, "rank %zu is too large", n);
	o->rank = (int)n;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == -1) {
			if (neg >= 0)
				return ox__node_err(ld, FERRY_EBADMSG,
						"more than one -1 in the shape");
			neg = (int)i;
			o->dims[i] = (struct ox__dim){ 1, 0 };
		} else if (v[i] == 0 && !allowzero) {
			if ((int)i >= x->rank)
				return ox__node_err(ld, FERRY_EBADMSG,
						"0 copies a dimension the input lacks");
			o->dims[i] = x->dims[i];
		} else if (v[i] <= 0 || v[i] > OX__MAX_ELEMS) {
			return ox__node_err(ld, FERRY_ENOTSUP,
					"shape value %lld is not supported",
					(long long)v[i]);
		} else {
			o->dims[i] = (struct ox__dim){ v[i], 0 };
		}
	}
	if (!ox__dims_prod(x->dims, 0, x->rank, &ci, &pi) ||
	    !ox__dims_prod(o->dims, 0, o->rank, &ck, &pk))
		return ox__node_err(ld, FERRY_E2BIG, "shape product overflows");
	if (neg >= 0) {
		if (ci % ck || pi - pk < 0 || pi - pk > 1)
			return ox__node_err(ld, FERRY_ENOTSUP,
					"cannot infer the -1 dimension for every batch size");
		o->dims[neg] = (struct ox__dim){ ci / ck, pi - pk };
	} else if (ci != ck || pi != pk) {
		return ox__node_err(ld, FERRY_ENOTSUP,
				"the element count does not match for every batch size");
	}
	return 0;
}

static int ox__plan_copy(struct ox__ld *ld, struct ox__step *s,
		     struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	const char *op = ld->node->op_type;
	int ix = ox__in_float(ld, s, 0), rc;
	const struct ox__tensor *x;

	if (ix < 0)
		return ix;
	x = &m->tensors[ix];
	if (strcmp(op, "Identity") == 0) {
		*o = *x;
		return 0;
	}
	if (strcmp(op, "Reshape") == 0)
		return ox__plan_reshape(ld, s, x, o);
	if (strcmp(op, "Flatten") == 0) {
		int64_t ax, c0, c1;
		int axis, p0, p1;

		rc = ox__attr_int(ld, "axis", 1, &ax);
		if (rc)
			return rc;
		if (!ox__norm_axis(ax, x->rank, 1, &axis))
			return ox__node_err(ld, FERRY_EBADMSG, "axis %lld out of range",
					(long long)ax);
		if (!ox__dims_prod(x->dims, 0, axis, &c0, &p0) ||
		    !ox__dims_prod(x->dims, axis, x->rank, &c1, &p1))
			return ox__node_err(ld, FERRY_E2BIG, "shape product overflows");
		if (p0 > 1 || p1 > 1)
			return ox__node_err(ld, FERRY_ENOTSUP, "batch appears twice");
		o->rank = 2;
		o->dims[0] = (struct ox__dim){ c0, p0 };
		o->dims[1] = (struct ox__dim){ c1, p1 };
		return 0;
	}
	if (strcmp(op, "Squeeze") == 0) {
		bool sq[OX_MAX_RANK] = { false };

		if (s->nin > 1 && s->in[1] >= 0) {
			const int64_t *v;
			size_t n;

			rc = ox__in_ints(ld, s, 1, &v, &n);
			if (rc)
				return rc;
			for (size_t i = 0; i < n; i++) {
				int a;

				if (!ox__norm_axis(v[i], x->rank, 0, &a) || sq[a])
					return ox__node_err(ld, FERRY_EBADMSG,
							"bad axis %lld", (long long)v[i]);
				if (!ox__dim_one(x->dims[a]))
					return ox__node_err(ld, FERRY_EBADMSG,
							"axis %d is not of size 1", a);
				sq[a] = true;
			}
		} else {
			/* without axes: every dimension known to be 1 */
			for (int i = 0; i < x->rank; i++)
				sq[i] = ox__dim_one(x->dims[i]);
		}
		o->rank = 0;
		for (int i = 0; i < x->rank; i++)
			if (!sq[i])
				o->dims[o->rank++] = x->dims[i];
		return 0;
	}
	if (strcmp(op, "Unsqueeze") == 0) {
		bool un[OX_MAX_RANK] = { false };
		const int64_t *v;
		size_t n;
		int r, k = 0;

		rc = ox__in_ints(ld, s, 1, &v, &n);
		if (rc)
			return rc;
		if (n + (size_t)x->rank > OX_MAX_RANK)
			return ox__node_err(ld, FERRY_ENOTSUP, "rank too large");
		r = x->rank + (int)n;
		for (size_t i = 0; i < n; i++) {
			int a;

			if (!ox__norm_axis(v[i], r, 0, &a) || un[a])
				return ox__node_err(ld, FERRY_EBADMSG, "bad axis %lld",
						(long long)v[i]);
			un[a] = true;
		}
		o->rank = r;
		for (int i = 0; i < r; i++)
			o->dims[i] = un[i] ? (struct ox__dim){ 1, 0 } :
					     x->dims[k++];
		return 0;
	}
	return ox__node_err(ld, FERRY_ENOTSUP, "internal: unknown copy op");
}

static int ox__plan_concat(struct ox__ld *ld, struct ox__step *s,
		       struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	int64_t ax;
	int axis, rc, i0 = ox__in_float(ld, s, 0);

	if (i0 < 0)
		return i0;
	rc = ox__attr_int(ld, "axis", INT64_MIN, &ax);
	if (rc)
		return rc;
	*o = m->tensors[i0];
	if (!ox__norm_axis(ax, o->rank, 0, &axis))
		return ox__node_err(ld, FERRY_EBADMSG, "axis missing or out of range");
	s->axis = axis;
	for (int i = 1; i < s->nin; i++) {
		int ii = ox__in_float(ld, s, i);
		const struct ox__tensor *t;

		if (ii < 0)
			return ii;
		t = &m->tensors[ii];
		if (t->rank != o->rank)
			return ox__node_err(ld, FERRY_EBADMSG, "ranks differ");
		for (int d = 0; d < o->rank; d++) {
			if (d == axis)
				continue;
			if (!ox__dim_eq(t->dims[d], o->dims[d]))
				return ox__node_err(ld, FERRY_EBADMSG,
						"dimension %d differs", d);
		}
		if (t->dims[axis].b != o->dims[axis].b)
			return ox__node_err(ld, FERRY_ENOTSUP,
					"concatenating batched and static sizes");
		if (!ox__mul_ok(1, o->dims[axis].c + t->dims[axis].c,
			    &o->dims[axis].c))
			return ox__node_err(ld, FERRY_E2BIG, "too large");
	}
	return 0;
}

static int ox__plan_bn(struct ox__ld *ld, struct ox__step *s,
		   struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	int ix = ox__in_float(ld, s, 0), rc;
	int64_t c, tm;
	float eps;
	const float *p[4];

	if (ix < 0)
		return ix;
	rc = ox__attr_float(ld, "epsilon", 1e-5f, &eps);
	if (!rc)
		rc = ox__attr_int(ld, "training_mode", 0, &tm);
	if (rc)
		return rc;
	if (tm)
		return ox__node_err(ld, FERRY_ENOTSUP, "training mode");
	*o = m->tensors[ix];
	if (o->rank < 2 || o->dims[1].b)
		return ox__node_err(ld, FERRY_EBADMSG, "the input needs a static channel dimension");
	c = o->dims[1].c;
	for (int i = 1; i < 5; i++) {
		int it = ox__in_float(ld, s, i);
		const struct ox__tensor *t;

		if (it < 0)
			return it;
		t = &m->tensors[it];
		if (t->kind != OX__T_CONST)
			return ox__node_err(ld, FERRY_ENOTSUP,
					"scale, B, mean and var must be constants");
		if (t->rank != 1 || t->dims[0].c != c)
			return ox__node_err(ld, FERRY_EBADMSG,
					"parameter %d does not have %lld values", i,
					(long long)c);
		p[i - 1] = t->cdata;
	}
	s->bn = malloc(2 * (size_t)c * sizeof(float));
	if (!s->bn)
		return FERRY_ENOMEM;
	/* fold once: y = (x - mean) * scale / sqrt(var + eps) + B */
	for (int64_t i = 0; i < c; i++) {
		float a = p[0][i] / sqrtf(p[3][i] + eps);

		s->bn[i] = a;
		s->bn[c + i] = p[1][i] - p[2][i] * a;
	}
	return 0;
}

/* Constant: becomes a constant tensor; no step runs. */
int ox__plan_constant(struct ox__ld *ld, int id)
{
	const Onnx__NodeProto *n = ld->node;
	struct ox__tensor *t = &ld->m->tensors[id];
	const Onnx__AttributeProto *a;
	char what[160];

	if (n->n_attribute != 1)
		return ox__node_err(ld, FERRY_EBADMSG, "needs exactly one attribute");
	a = n->attribute[0];
	snprintf(what, sizeof(what), "node '%s' (Constant)", ox__nz(n->name));
	if (a->name && strcmp(a->name, "value") == 0) {
		if (!a->t)
			return ox__node_err(ld, FERRY_EBADMSG, "value is not a tensor");
		return ox__load_tensor(ld, a->t, id, what);
	}
	if (a->name && strcmp(a->name, "value_float") == 0 && a->has_f) {
		float *d = malloc(sizeof(float));

		if (!d)
			return FERRY_ENOMEM;
		*d = a->f;
		t->kind = OX__T_CONST;
		t->cdata = d;
		t->rank = 0;
		return 0;
	}
	if (a->name && strcmp(a->name, "value_floats") == 0) {
		float *d;

		if (a->n_floats == 0 || a->n_floats > (size_t)OX__MAX_ELEMS)
			return ox__node_err(ld, FERRY_ENOTSUP, "empty value_floats");
		d = malloc(a->n_floats * sizeof(float));
		if (!d)
			return FERRY_ENOMEM;
		memcpy(d, a->floats, a->n_floats * sizeof(float));
		t->kind = OX__T_CONST;
		t->cdata = d;
		t->rank = 1;
		t->dims[0] = (struct ox__dim){ (int64_t)a->n_floats, 0 };
		return 0;
	}
	if (a->name && (strcmp(a->name, "value_int") == 0 ||
			strcmp(a->name, "value_ints") == 0)) {
		bool one = a->name[9] == 0;
		size_t cnt = one ? 1 : a->n_ints;
		int64_t *d;

		if (one && !a->has_i)
			return ox__node_err(ld, FERRY_EBADMSG, "value_int is not set");
		if (cnt > 4096) {
			t->kind = OX__T_OTHER;
			return 0;
		}
		d = malloc((cnt ? cnt : 1) * sizeof(int64_t));
		if (!d)
			return FERRY_ENOMEM;
		if (one)
			d[0] = a->i;
		else if (cnt)
			memcpy(d, a->ints, cnt * sizeof(int64_t));
		t->kind = OX__T_INT;
		t->idata = d;
		t->icount = cnt;
		t->rank = one ? 0 : 1;
		t->dims[0] = (struct ox__dim){ (int64_t)cnt, 0 };
		return 0;
	}
	return ox__node_err(ld, FERRY_ENOTSUP, "attribute '%s' is not supported",
			ox__nz(a->name));
}

/* Shape inference and attributes of one node; s->in is filled. */
int ox__plan_node(struct ox__ld *ld, const struct ox__opdef *od,
		     struct ox__step *s, struct ox__tensor *o)
{
	struct ox_model *m = ld->m;
	int rc, ix;
	int64_t ax;

	switch (od->op) {
	case OX__OP_COPY:
		return ox__plan_copy(ld, s, o);
	case OX__OP_GEMM:
		return ox__plan_gemm(ld, s, o);
	case OX__OP_MATMUL:
		return ox__plan_matmul(ld, s, o);
	case OX__OP_ADD:
	case OX__OP_SUB:
	case OX__OP_MUL:
	case OX__OP_DIV: {
		int ib;

		ix = ox__in_float(ld, s, 0);
		if (ix < 0)
			return ix;
		ib = ox__in_float(ld, s, 1);
		if (ib < 0)
			return ib;
		return ox__bcast(ld, &m->tensors[ix], &m->tensors[ib], o);
	}
	case OX__OP_LEAKYRELU:
	case OX__OP_ELU:
		rc = ox__attr_float(ld, "alpha", od->op == OX__OP_ELU ? 1.0f : 0.01f,
				&s->alpha);
		if (rc)
			return rc;
		/* fall through */
	case OX__OP_RELU:
	case OX__OP_SIGMOID:
	case OX__OP_TANH:
		ix = ox__in_float(ld, s, 0);
		if (ix < 0)
			return ix;
		*o = m->tensors[ix];
		return 0;
	case OX__OP_SOFTMAX:
	case OX__OP_LOGSOFTMAX:
		ix = ox__in_float(ld, s, 0);
		if (ix < 0)
			return ix;
		*o = m->tensors[ix];
		rc = ox__attr_int(ld, "axis", -1, &ax);
		if (rc)
			return rc;
		if (!ox__norm_axis(ax, o->rank, 0, &s->axis))
			return ox__node_err(ld, FERRY_EBADMSG, "axis %lld out of range",
					(long long)ax);
		return 0;
	case OX__OP_TRANSPOSE: {
		int64_t v[OX_MAX_RANK];
		bool seen[OX_MAX_RANK] = { false };
		int n;

		ix = ox__in_float(ld, s, 0);
		if (ix < 0)
			return ix;
		rc = ox__attr_ints(ld, "perm", v, OX_MAX_RANK, &n);
		if (rc)
			return rc;
		const struct ox__tensor *x = &m->tensors[ix];

		if (n < 0) {
			n = x->rank;
			for (int i = 0; i < n; i++)
				v[i] = n - 1 - i;
		}
		if (n != x->rank)
			return ox__node_err(ld, FERRY_EBADMSG, "perm has %d values for rank %d",
					n, x->rank);
		o->rank = n;
		for (int i = 0; i < n; i++) {
			if (v[i] < 0 || v[i] >= n || seen[v[i]])
				return ox__node_err(ld, FERRY_EBADMSG,
						"perm is not a permutation");
			seen[v[i]] = true;
			s->perm[i] = (int)v[i];
			o->dims[i] = x->dims[v[i]];
		}
		return 0;
	}
	case OX__OP_CONCAT:
		return ox__plan_concat(ld, s, o);
	case OX__OP_BATCHNORM:
		return ox__plan_bn(ld, s, o);
	case OX__OP_CONV:
		return ox__plan_conv(ld, s, o);
	case OX__OP_MAXPOOL:
	case OX__OP_AVGPOOL:
	case OX__OP_GLOBALAVGPOOL:
		return ox__plan_pool(ld, s, o);
	}
	return ox__node_err(ld, FERRY_ENOTSUP, "internal: unknown op");
}
