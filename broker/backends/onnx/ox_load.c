/* SPDX-License-Identifier: MIT */
/*
 * ox_load.c - parse, check and plan an ONNX model
 *
 * The model file is untrusted input: protobuf-c checks the wire format, and
 * this file checks everything the schema cannot say (sizes against data
 * lengths, indices, attribute types and counts, overflow in shape
 * products).  The plan is made once: the steps in topological order, every
 * tensor's shape as a function of the batch size, and each tensor's
 * lifetime for the arena that ox_ctx_create() lays out.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "onnx/onnx.pb-c.h"
#include "ox_int.h"

/* Caps that keep a hostile file from asking for absurd plans. */
#define OX__MAX_ELEMS	(INT64_C(1) << 40)	/* elements of one tensor */
#define OX__MAX_INPUTS	4096			/* inputs of one node */

struct ox__ld {
	char *err;
	size_t errlen;
	size_t used;
	/* name -> tensor id, open addressing; names point into the proto */
	const char **hkeys;
	int *hvals;
	size_t hcap;
	struct ox_model *m;
	int tcap;
	const Onnx__NodeProto *node;	/* node being planned, for messages */
};

static void ox__ld_msg(struct ox__ld *ld, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append to the error message, "; "-separated, truncating quietly. */
static void ox__ld_msg(struct ox__ld *ld, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ld->err || ld->errlen == 0 || ld->used + 1 >= ld->errlen)
		return;
	if (ld->used) {
		/* a message ending in ':' introduces a list */
		n = snprintf(ld->err + ld->used, ld->errlen - ld->used, "%s",
			     ld->err[ld->used - 1] == ':' ? " " : "; ");
		if (n > 0)
			ld->used += (size_t)n;
		if (ld->used >= ld->errlen) {
			ld->used = ld->errlen - 1;
			return;
		}
	}
	va_start(ap, fmt);
	n = vsnprintf(ld->err + ld->used, ld->errlen - ld->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		ld->used += (size_t)n;
	if (ld->used >= ld->errlen)
		ld->used = ld->errlen - 1;
}

static const char *ox__nz(const char *s)
{
	return s ? s : "";
}

static const char *ox__dtype_name(int dt)
{
	static const char *const names[] = {
		[0] = "undefined", [1] = "float32", [2] = "uint8", [3] = "int8",
		[4] = "uint16", [5] = "int16", [6] = "int32", [7] = "int64",
		[8] = "string", [9] = "bool", [10] = "float16", [11] = "double",
		[12] = "uint32", [13] = "uint64", [16] = "bfloat16",
	};

	if (dt >= 0 && (size_t)dt < sizeof(names) / sizeof(names[0]) &&
	    names[dt])
		return names[dt];
	return "another type";
}

/* An error about the node being planned: "node 'n' (Op): ..." */
static int ox__node_err(struct ox__ld *ld, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ox__node_err(struct ox__ld *ld, int code, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ox__ld_msg(ld, "node '%s' (%s): %s", ox__nz(ld->node->name),
	       ox__nz(ld->node->op_type), buf);
	return code;
}

/* ---------------------------------------------------------------------- */
/* names */

static uint64_t ox__hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static int ox__name_find(const struct ox__ld *ld, const char *name)
{
	size_t i = ox__hash_str(name) & (ld->hcap - 1);

	while (ld->hkeys[i]) {
		if (strcmp(ld->hkeys[i], name) == 0)
			return ld->hvals[i];
		i = (i + 1) & (ld->hcap - 1);
	}
	return -1;
}

/* A new tensor under @name; FERRY_EBADMSG if the name is taken. */
static int ox__tensor_new(struct ox__ld *ld, const char *name, enum ox__tkind kind)
{
	struct ox_model *m = ld->m;
	struct ox__tensor *t;
	size_t i = ox__hash_str(name) & (ld->hcap - 1);

	while (ld->hkeys[i]) {
		if (strcmp(ld->hkeys[i], name) == 0) {
			ox__ld_msg(ld, "tensor '%s' is defined twice", name);
			return FERRY_EBADMSG;
		}
		i = (i + 1) & (ld->hcap - 1);
	}
	/* hcap holds twice the names the graph can define: never full */
	if (m->ntensors >= ld->tcap)
		return FERRY_EBADMSG;
	ld->hkeys[i] = name;
	ld->hvals[i] = m->ntensors;
	t = &m->tensors[m->ntensors];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->def = -1;
	t->last = -1;
	t->graph_out = -1;
	t->graph_in = -1;
	return m->ntensors++;
}

/* ---------------------------------------------------------------------- */
/* shapes */

static bool ox__mul_ok(int64_t a, int64_t b, int64_t *r)
{
	if (__builtin_mul_overflow(a, b, r) || *r > OX__MAX_ELEMS)
		return false;
	return true;
}

/* Product of dims [from, to) as c * B^p. */
static bool ox__dims_prod(const struct ox__dim *d, int from, int to, int64_t *c,
		      int *p)
{
	*c = 1;
	*p = 0;
	for (int i = from; i < to; i++) {
		if (!ox__mul_ok(*c, d[i].c, c))
			return false;
		*p += d[i].b;
	}
	return true;
}

static bool ox__dim_eq(struct ox__dim a, struct ox__dim b)
{
	return a.c == b.c && a.b == b.b;
}

static bool ox__dim_one(struct ox__dim a)
{
	return a.c == 1 && !a.b;
}

static void ox__fmt_shape(const struct ox__tensor *t, char *buf, size_t len)
{
	size_t u = 0;
	int n;

	n = snprintf(buf, len, "[");
	u = n > 0 ? (size_t)n : 0;
	for (int i = 0; i < t->rank && u < len; i++) {
		if (t->dims[i].b && t->dims[i].c == 1)
			n = snprintf(buf + u, len - u, "%sN", i ? "," : "");
		else if (t->dims[i].b)
			n = snprintf(buf + u, len - u, "%s%lldN", i ? "," : "",
				     (long long)t->dims[i].c);
		else
			n = snprintf(buf + u, len - u, "%s%lld", i ? "," : "",
				     (long long)t->dims[i].c);
		u += n > 0 ? (size_t)n : 0;
	}
	if (u < len)
		snprintf(buf + u, len - u, "]");
}

/* Normalize an axis in [-rank, rank) (or [-rank, rank] if @incl). */
static bool ox__norm_axis(int64_t ax, int rank, int incl, int *out)
{
	if (ax < -(int64_t)rank || ax >= (int64_t)rank + incl)
		return false;
	*out = (int)(ax < 0 ? ax + rank : ax);
	return true;
}

/* ---------------------------------------------------------------------- */
/* attributes */

static const Onnx__AttributeProto *ox__attr_get(const Onnx__NodeProto *n,
					    const char *name)
{
	for (size_t i = 0; i < n->n_attribute; i++) {
		const Onnx__AttributeProto *a = n->attribute[i];

		if (a->name && strcmp(a->name, name) == 0)
			return a;
	}
	return NULL;
}

/*
 * Typed attribute readers: 0 with the default when absent, 0 with the
 * value when present and of the right type, FERRY_EBADMSG otherwise.
 * Files written by old exporters leave the type unset; the value fields
 * still tell.
 */
static int ox__attr_int(struct ox__ld *ld, const char *name, int64_t def,
		    int64_t *v)
{
	const Onnx__AttributeProto *a = ox__attr_get(ld->node, name);

	*v = def;
	if (!a)
		return 0;
	if ((a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) ||
	    !a->has_i)
		return ox__node_err(ld, FERRY_EBADMSG,
				"attribute '%s' is not an int", name);
	*v = a->i;
	return 0;
}

static int ox__attr_float(struct ox__ld *ld, const char *name, float def, float *v)
{
	const Onnx__AttributeProto *a = ox__attr_get(ld->node, name);

	*v = def;
	if (!a)
		return 0;
	if ((a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) ||
	    !a->has_f)
		return ox__node_err(ld, FERRY_EBADMSG,
				"attribute '%s' is not a float", name);
	*v = a->f;
	return 0;
}

/* Up to @max ints; *n = -1 when absent. */
static int ox__attr_ints(struct ox__ld *ld, const char *name, int64_t *v, int max,
		     int *n)
{
	const Onnx__AttributeProto *a = ox__attr_get(ld->node, name);

	*n = -1;
	if (!a)
		return 0;
	if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
		return ox__node_err(ld, FERRY_EBADMSG,
				"attribute '%s' is not a list of ints", name);
	if (a->n_ints > (size_t)max)
		return ox__node_err(ld, FERRY_ENOTSUP,
				"attribute '%s' has %zu values (at most %d)",
				name, a->n_ints, max);
	for (size_t i = 0; i < a->n_ints; i++)
		v[i] = a->ints[i];
	*n = (int)a->n_ints;
	return 0;
}

/* A string attribute; NULL def when absent.  @v is NUL-terminated. */
static int ox__attr_str(struct ox__ld *ld, const char *name, const char *def,
		    char *v, size_t vlen)
{
	const Onnx__AttributeProto *a = ox__attr_get(ld->node, name);

	snprintf(v, vlen, "%s", def);
	if (!a)
		return 0;
	if ((a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING) ||
	    !a->has_s || a->s.len >= vlen)
		return ox__node_err(ld, FERRY_EBADMSG,
				"attribute '%s' is not a short string", name);
	memcpy(v, a->s.data, a->s.len);
	v[a->s.len] = 0;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* constant tensors */

/*
 * Copy the data of a TensorProto into a new constant tensor @id.  Float and
 * int64 tensors are kept; any other type becomes OX__T_OTHER, an error only
 * where it is used.  @what names the tensor's origin in messages.
 */
/* The tensor's data (raw bytes, or the typed list of `typed` values)
 * holds exactly `count` elements of esz bytes. */
static int ox__check_count(struct ox__ld *ld, const Onnx__TensorProto *tp, const char *what,
		       int64_t count, size_t esz, size_t typed, const char *tname)
{
	if (tp->has_raw_data) {
		if (tp->raw_data.len / esz != (size_t)count || tp->raw_data.len % esz) {
			ox__ld_msg(ld, "%s: raw data holds %zu bytes, the shape needs %lld",
			       what, tp->raw_data.len, (long long)count * (long long)esz);
			return FERRY_EBADMSG;
		}
	} else if (typed != (size_t)count) {
		ox__ld_msg(ld, "%s: %zu %s values, the shape needs %lld", what, typed, tname,
		       (long long)count);
		return FERRY_EBADMSG;
	}
	return 0;
}

static int ox__load_tensor(struct ox__ld *ld, const Onnx__TensorProto *tp, int id,
		       const char *what)
{
	struct ox__tensor *t = &ld->m->tensors[id];
	int64_t count = 1;
	int ret;
	size_t esz;
	int dt = tp->has_data_type ? tp->data_type : 0;

	if (tp->has_data_location &&
	    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
		ox__ld_msg(ld, "%s: external data is not supported", what);
		return FERRY_ENOTSUP;
	}
	if (tp->segment) {
		ox__ld_msg(ld, "%s: segmented tensors are not supported", what);
		return FERRY_ENOTSUP;
	}
	if (tp->n_dims > OX_MAX_RANK) {
		ox__ld_msg(ld, "%s: rank %zu is above %d", what, tp->n_dims,
		       OX_MAX_RANK);
		return FERRY_ENOTSUP;
	}
	t->rank = (int)tp->n_dims;
	for (size_t i = 0; i < tp->n_dims; i++) {
		if (tp->dims[i] < 0 || !ox__mul_ok(count, tp->dims[i], &count)) {
			ox__ld_msg(ld, "%s: bad dimension %lld", what,
			       (long long)tp->dims[i]);
			return FERRY_EBADMSG;
		}
		t->dims[i].c = tp->dims[i];
		t->dims[i].b = 0;
	}
	if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
		float *d;

		if (count == 0) {
			ox__ld_msg(ld, "%s: empty float tensors are not supported",
			       what);
			return FERRY_ENOTSUP;
		}
		esz = sizeof(float);
		if ((ret = ox__check_count(ld, tp, what, count, esz, tp->n_float_data, "float")))
			return ret;
		d = malloc((size_t)count * esz);
		if (!d)
			return FERRY_ENOMEM;
		/* raw_data is little-endian, as is every host ferry runs on */
		memcpy(d, tp->has_raw_data ? (const void *)tp->raw_data.data :
			  (const void *)tp->float_data, (size_t)count * esz);
		t->kind = OX__T_CONST;
		t->cdata = d;
		return 0;
	}
	if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
		int64_t *d;

		esz = sizeof(int64_t);
		if ((ret = ox__check_count(ld, tp, what, count, esz, tp->n_int64_data, "int64")))
			return ret;
		/* shape arguments are tiny; a big int tensor is never one */
		if (count > 4096) {
			t->kind = OX__T_OTHER;
			return 0;
		}
		d = malloc((size_t)(count ? count : 1) * esz);
		if (!d)
			return FERRY_ENOMEM;
		if (count)
			memcpy(d, tp->has_raw_data ?
				  (const void *)tp->raw_data.data :
				  (const void *)tp->int64_data,
			       (size_t)count * esz);
		t->kind = OX__T_INT;
		t->idata = d;
		t->icount = (size_t)count;
		return 0;
	}
	t->kind = OX__T_OTHER;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* operators */

struct ox__opdef {
	const char *name;
	enum ox__op op;
	int min_in, max_in;	/* max_in -1: variadic */
};

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

static const struct ox__opdef *ox__opdef_find(const Onnx__NodeProto *n)
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
static int ox__plan_constant(struct ox__ld *ld, int id)
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
static int ox__plan_node(struct ox__ld *ld, const struct ox__opdef *od,
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

/* ---------------------------------------------------------------------- */
/* graph inputs and outputs */

static int ox__check_value_info(struct ox__ld *ld, const Onnx__ValueInfoProto *vi,
			    struct ox__tensor *t, const char *what)
{
	const Onnx__TypeProto__Tensor *tt;
	const Onnx__TensorShapeProto *sh;
	const char *name = ox__nz(vi->name);

	if (!vi->type || vi->type->value_case !=
	    ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type) {
		ox__ld_msg(ld, "%s '%s' is not a tensor", what, name);
		return FERRY_ENOTSUP;
	}
	tt = vi->type->tensor_type;
	if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
		ox__ld_msg(ld, "%s '%s' has data type %s, only float32 is supported",
		       what, name, ox__dtype_name(tt->has_elem_type ? tt->elem_type : 0));
		return FERRY_ENOTSUP;
	}
	if (!t)
		return 0;
	sh = tt->shape;
	if (!sh) {
		ox__ld_msg(ld, "%s '%s' has no shape", what, name);
		return FERRY_ENOTSUP;
	}
	if (sh->n_dim > OX_MAX_RANK) {
		ox__ld_msg(ld, "%s '%s' has rank %zu (at most %d)", what, name,
		       sh->n_dim, OX_MAX_RANK);
		return FERRY_ENOTSUP;
	}
	t->rank = (int)sh->n_dim;
	for (size_t i = 0; i < sh->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
		bool dyn = d->value_case !=
			   ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
			   d->dim_value <= 0;

		if (i == 0 && dyn) {
			t->dims[0] = (struct ox__dim){ 1, 1 };
			continue;
		}
		if (dyn) {
			ox__ld_msg(ld, "%s '%s' has dynamic dimension %zu (only the first, batch, dimension may be dynamic)",
			       what, name, i);
			return FERRY_ENOTSUP;
		}
		if (d->dim_value > OX__MAX_ELEMS) {
			ox__ld_msg(ld, "%s '%s': dimension %zu is too large", what,
			       name, i);
			return FERRY_E2BIG;
		}
		t->dims[i] = (struct ox__dim){ d->dim_value, 0 };
	}
	int64_t c;
	int p;

	if (!ox__dims_prod(t->dims, 0, t->rank, &c, &p)) {
		ox__ld_msg(ld, "%s '%s' is too large", what, name);
		return FERRY_E2BIG;
	}
	return 0;
}

/* Fill the public description of a tensor used as graph input/output. */
static int ox__io_info(struct ox__ld *ld, struct ox__io *io, const struct ox__tensor *t,
		   const char *what)
{
	io->info.name = io->name;
	io->info.dtype = OX_FLOAT32;
	io->info.rank = t->rank;
	io->info.batched = 0;
	for (int i = 0; i < t->rank; i++) {
		if (t->dims[i].b && (i != 0 || t->dims[i].c != 1)) {
			char sh[96];

			ox__fmt_shape(t, sh, sizeof(sh));
			ox__ld_msg(ld, "%s '%s' has shape %s: the batch dimension must come first",
			       what, io->name, sh);
			return FERRY_ENOTSUP;
		}
		io->info.dims[i] = t->dims[i].b ? -1 : t->dims[i].c;
		if (t->dims[i].b)
			io->info.batched = 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */

void ox_model_free(struct ox_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->ntensors; i++) {
		free((void *)m->tensors[i].cdata);
		free(m->tensors[i].idata);
	}
	for (int i = 0; i < m->nsteps; i++) {
		free(m->steps[i].in);
		free(m->steps[i].bn);
	}
	for (int i = 0; i < m->ninputs; i++)
		free(m->inputs[i].name);
	for (int i = 0; i < m->noutputs; i++)
		free(m->outputs[i].name);
	free(m->tensors);
	free(m->steps);
	free(m->inputs);
	free(m->outputs);
	free(m);
}

static int ox__find_opset(struct ox__ld *ld, const Onnx__ModelProto *mp)
{
	int64_t v = -1;

	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const char *d = ox__nz(mp->opset_import[i]->domain);

		if ((d[0] == 0 || strcmp(d, "ai.onnx") == 0) &&
		    mp->opset_import[i]->has_version)
			v = mp->opset_import[i]->version;
	}
	if (v < 0) {
		ox__ld_msg(ld, "the model imports no ai.onnx opset");
		return FERRY_EBADMSG;
	}
	if (v < OX_MIN_OPSET || v > OX_MAX_OPSET) {
		ox__ld_msg(ld, "opset %lld is not supported (%d to %d are)",
		       (long long)v, OX_MIN_OPSET, OX_MAX_OPSET);
		return FERRY_ENOTSUP;
	}
	ld->m->opset = (int)v;
	return 0;
}

/* Every node names a known operator; list each one that does not. */
static int ox__check_ops(struct ox__ld *ld, const Onnx__GraphProto *g)
{
	int bad = 0;

	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		const struct ox__opdef *od = ox__opdef_find(n);

		if (!od) {
			if (!bad)
				ox__ld_msg(ld, "unsupported operators:");
			ox__ld_msg(ld, "node '%s' (%s%s%s)", ox__nz(n->name),
			       n->domain && n->domain[0] ? n->domain : "",
			       n->domain && n->domain[0] ? "." : "",
			       ox__nz(n->op_type));
			bad++;
			continue;
		}
		/* extra outputs (BatchNormalization's running statistics,
		 * MaxPool's indices) exist only outside inference */
		bool extra = false;

		for (size_t k = 1; k < n->n_output; k++)
			if (n->output[k] && n->output[k][0])
				extra = true;
		if (n->n_output < 1 || !n->output[0] || !n->output[0][0] ||
		    extra) {
			if (!bad)
				ox__ld_msg(ld, "unsupported operators:");
			ox__ld_msg(ld, "node '%s' (%s) needs exactly one output",
			       ox__nz(n->name), ox__nz(n->op_type));
			bad++;
			continue;
		}
		if (n->n_input < (size_t)od->min_in ||
		    (od->max_in >= 0 && n->n_input > (size_t)od->max_in) ||
		    n->n_input > OX__MAX_INPUTS) {
			if (!bad)
				ox__ld_msg(ld, "unsupported operators:");
			ox__ld_msg(ld, "node '%s' (%s) has %zu inputs", ox__nz(n->name),
			       ox__nz(n->op_type), n->n_input);
			bad++;
		}
	}
	return bad ? FERRY_ENOTSUP : 0;
}

/*
 * Kahn's algorithm over the nodes; @order receives node indices.  The
 * edges (producer -> consumer) are gathered once into a CSR table so the
 * sort stays linear in the size of the graph, whatever a file holds.
 */
static int ox__topo_sort(struct ox__ld *ld, const Onnx__GraphProto *g,
		     const int *producer, int *order)
{
	size_t nn = g->n_node, nedges = 0, head = 0, tail = 0;
	int *indeg = calloc(nn + 1, sizeof(int));
	size_t *start = calloc(nn + 2, sizeof(size_t));
	int *adj = NULL;
	int rc = 0;

	if (!indeg || !start) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nn; i++) {
		const Onnx__NodeProto *n = g->node[i];

		for (size_t k = 0; k < n->n_input; k++) {
			const char *nm = ox__nz(n->input[k]);
			int t;

			if (!nm[0])
				continue;
			t = ox__name_find(ld, nm);
			if (t < 0) {
				ox__ld_msg(ld, "node '%s' (%s): input '%s' is not defined",
				       ox__nz(n->name), ox__nz(n->op_type), nm);
				rc = FERRY_EBADMSG;
				continue;
			}
			if (producer[t] >= 0) {
				indeg[i]++;
				start[producer[t] + 1]++;
				nedges++;
			}
		}
	}
	if (rc)
		goto out;
	for (size_t i = 0; i < nn; i++)
		start[i + 1] += start[i];
	adj = malloc((nedges ? nedges : 1) * sizeof(int));
	if (!adj) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	/* start[p] is the fill cursor of producer p; it ends at start[p+1]
	 * and is moved back afterwards */
	for (size_t i = 0; i < nn; i++) {
		const Onnx__NodeProto *n = g->node[i];

		for (size_t k = 0; k < n->n_input; k++) {
			const char *nm = ox__nz(n->input[k]);
			int t;

			if (!nm[0])
				continue;
			t = ox__name_find(ld, nm);
			if (producer[t] >= 0)
				adj[start[producer[t]]++] = (int)i;
		}
	}
	for (size_t i = nn; i > 0; i--)
		start[i] = start[i - 1];
	start[0] = 0;
	for (size_t i = 0; i < nn; i++)
		if (indeg[i] == 0)
			order[tail++] = (int)i;
	while (head < tail) {
		int p = order[head++];

		for (size_t e = start[p]; e < start[p + 1]; e++)
			if (--indeg[adj[e]] == 0)
				order[tail++] = adj[e];
	}
	if (tail != nn) {
		ox__ld_msg(ld, "the graph has a cycle");
		rc = FERRY_EBADMSG;
	}
out:
	free(indeg);
	free(start);
	free(adj);
	return rc;
}

static int ox__load_graph(struct ox__ld *ld, const Onnx__GraphProto *g)
{
	struct ox_model *m = ld->m;
	size_t names = g->n_input + g->n_initializer, i;
	int *producer = NULL, *order = NULL, *node_of_step = NULL;
	int rc;

	for (i = 0; i < g->n_node; i++) {
		if (g->node[i]->n_output > SIZE_MAX / 4 - names)
			return FERRY_E2BIG;
		names += g->node[i]->n_output;
	}
	if (names > INT32_MAX / 4)
		return FERRY_E2BIG;
	rc = ox__check_ops(ld, g);
	if (rc)
		return rc;
	for (ld->hcap = 16; ld->hcap < 2 * names; ld->hcap *= 2)
		;
	ld->hkeys = calloc(ld->hcap, sizeof(*ld->hkeys));
	ld->hvals = calloc(ld->hcap, sizeof(*ld->hvals));
	ld->tcap = (int)names;
	m->tensors = calloc(names ? names : 1, sizeof(*m->tensors));
	m->steps = calloc(g->n_node ? g->n_node : 1, sizeof(*m->steps));
	m->inputs = calloc(g->n_input ? g->n_input : 1, sizeof(*m->inputs));
	m->outputs = calloc(g->n_output ? g->n_output : 1, sizeof(*m->outputs));
	producer = malloc((names ? names : 1) * sizeof(int));
	order = malloc((g->n_node ? g->n_node : 1) * sizeof(int));
	node_of_step = malloc((g->n_node ? g->n_node : 1) * sizeof(int));
	if (!ld->hkeys || !ld->hvals || !m->tensors || !m->steps ||
	    !m->inputs || !m->outputs || !producer || !order || !node_of_step) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	for (i = 0; i < names; i++)
		producer[i] = -1;

	/* initializers first: a graph input that has one is a constant */
	for (i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *tp = g->initializer[i];
		char what[160];
		int id = ox__tensor_new(ld, ox__nz(tp->name), OX__T_CONST);

		if (id < 0) {
			rc = id;
			goto out;
		}
		snprintf(what, sizeof(what), "initializer '%s'", ox__nz(tp->name));
		rc = ox__load_tensor(ld, tp, id, what);
		if (rc)
			goto out;
	}
	/* graph inputs: check all, report all */
	int bad = 0;

	for (i = 0; i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		struct ox__io *io;
		int id;

		if (!vi->name || !vi->name[0]) {
			ox__ld_msg(ld, "graph input %zu has no name", i);
			rc = FERRY_EBADMSG;
			goto out;
		}
		if (ox__name_find(ld, vi->name) >= 0)
			continue;
		id = ox__tensor_new(ld, vi->name, OX__T_INPUT);
		if (id < 0) {
			rc = id;
			goto out;
		}
		rc = ox__check_value_info(ld, vi, &m->tensors[id], "input");
		if (rc) {
			if (rc != FERRY_ENOTSUP)
				goto out;
			bad = rc;
			continue;
		}
		io = &m->inputs[m->ninputs];
		io->name = strdup(vi->name);
		if (!io->name) {
			rc = FERRY_ENOMEM;
			goto out;
		}
		io->tensor = id;
		m->tensors[id].graph_in = m->ninputs++;
		rc = ox__io_info(ld, io, &m->tensors[id], "input");
		if (rc)
			goto out;
	}
	for (i = 0; i < g->n_output; i++) {
		rc = ox__check_value_info(ld, g->output[i], NULL, "output");
		if (rc) {
			if (rc != FERRY_ENOTSUP)
				goto out;
			bad = rc;
		}
	}
	if (bad) {
		/* name each node that reads a rejected graph input */
		for (i = 0; i < g->n_node; i++) {
			const Onnx__NodeProto *n = g->node[i];

			for (size_t k = 0; k < n->n_input; k++) {
				int id = ox__name_find(ld, ox__nz(n->input[k]));

				if (id >= 0 && m->tensors[id].kind == OX__T_INPUT &&
				    m->tensors[id].graph_in < 0)
					ox__ld_msg(ld, "node '%s' (%s) reads input '%s'",
					       ox__nz(n->name), ox__nz(n->op_type),
					       n->input[k]);
			}
		}
		rc = bad;
		goto out;
	}
	/* node outputs */
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		int id = ox__tensor_new(ld, n->output[0], OX__T_VALUE);

		if (id < 0) {
			rc = id;
			goto out;
		}
		producer[id] = (int)i;
	}
	rc = ox__topo_sort(ld, g, producer, order);
	if (rc)
		goto out;

	/* plan each node in order */
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[order[i]];
		const struct ox__opdef *od = ox__opdef_find(n);
		int out = ox__name_find(ld, n->output[0]);
		struct ox__step *s = &m->steps[m->nsteps];
		struct ox__tensor o;

		ld->node = n;
		if (strcmp(n->op_type, "Constant") == 0) {
			rc = ox__plan_constant(ld, out);
			if (rc)
				goto out;
			continue;
		}
		memset(s, 0, sizeof(*s));
		s->op = od->op;
		s->out = out;
		s->nin = (int)n->n_input;
		s->in = malloc((n->n_input ? n->n_input : 1) * sizeof(int));
		if (!s->in) {
			rc = FERRY_ENOMEM;
			goto out;
		}
		/* counted now so that ox_model_free() frees s->in */
		m->nsteps++;
		for (size_t k = 0; k < n->n_input; k++) {
			const char *nm = ox__nz(n->input[k]);

			s->in[k] = nm[0] ? ox__name_find(ld, nm) : -1;
		}
		memset(&o, 0, sizeof(o));
		rc = ox__plan_node(ld, od, s, &o);
		if (rc)
			goto out;
		for (int d = 0; d < o.rank; d++) {
			if (o.dims[d].c < 1) {
				rc = ox__node_err(ld, FERRY_ENOTSUP,
					      "the output has an empty dimension");
				goto out;
			}
		}
		int64_t tc;
		int tp;

		if (!ox__dims_prod(o.dims, 0, o.rank, &tc, &tp)) {
			rc = ox__node_err(ld, FERRY_E2BIG, "the output is too large");
			goto out;
		}
		m->tensors[out].rank = o.rank;
		memcpy(m->tensors[out].dims, o.dims, sizeof(o.dims));
		if (tp)
			m->batched = 1;
		m->tensors[out].def = m->nsteps - 1;
		for (int k = 0; k < s->nin; k++)
			if (s->in[k] >= 0)
				m->tensors[s->in[k]].last = m->nsteps - 1;
		node_of_step[m->nsteps - 1] = order[i];
	}
	ld->node = NULL;

	/* graph outputs */
	for (i = 0; i < g->n_output; i++) {
		const char *nm = ox__nz(g->output[i]->name);
		int id = ox__name_find(ld, nm);
		struct ox__io *io = &m->outputs[m->noutputs];
		struct ox__tensor *t;

		if (id < 0) {
			ox__ld_msg(ld, "output '%s' is not computed by the graph", nm);
			rc = FERRY_EBADMSG;
			goto out;
		}
		t = &m->tensors[id];
		if (t->kind == OX__T_INT || t->kind == OX__T_OTHER) {
			ox__ld_msg(ld, "output '%s' is not float32", nm);
			rc = FERRY_ENOTSUP;
			goto out;
		}
		io->name = strdup(nm);
		if (!io->name) {
			rc = FERRY_ENOMEM;
			goto out;
		}
		io->tensor = id;
		m->noutputs++;
		/* a computed output is written straight into the caller's
		 * buffer; inputs, constants and repeats are copied */
		if (t->kind == OX__T_VALUE && t->graph_out < 0)
			t->graph_out = m->noutputs - 1;
		rc = ox__io_info(ld, io, t, "output");
		if (rc)
			goto out;
	}
	for (i = 0; i < (size_t)m->ninputs; i++)
		if (m->inputs[i].info.batched)
			m->batched = 1;
	rc = 0;
out:
	free(producer);
	free(order);
	free(node_of_step);
	return rc;
}

int ox_model_load(const void *buf, size_t len, struct ox_model **out,
		  char *err, size_t errlen)
{
	struct ox__ld ld = { .err = err, .errlen = errlen };
	Onnx__ModelProto *mp;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!out || (!buf && len))
		return FERRY_EINVAL;
	*out = NULL;
	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp) {
		ox__ld_msg(&ld, "not an ONNX model: the protobuf does not parse");
		return FERRY_EBADMSG;
	}
	if (!mp->graph) {
		ox__ld_msg(&ld, "not an ONNX model: no graph");
		rc = FERRY_EBADMSG;
		goto out;
	}
	ld.m = calloc(1, sizeof(*ld.m));
	if (!ld.m) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	rc = ox__find_opset(&ld, mp);
	if (!rc)
		rc = ox__load_graph(&ld, mp->graph);
	if (!rc && (ld.m->ninputs == 0 || ld.m->noutputs == 0)) {
		ox__ld_msg(&ld, "the graph has no inputs or no outputs");
		rc = FERRY_ENOTSUP;
	}
	if (rc) {
		if (rc == FERRY_ENOMEM)
			ox__ld_msg(&ld, "out of memory");
		ox_model_free(ld.m);
		goto out;
	}
	*out = ld.m;
out:
	free(ld.hkeys);
	free(ld.hvals);
	onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}
