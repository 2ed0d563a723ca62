/* SPDX-License-Identifier: MIT */
/*
 * ox_proto.c - reading an ONNX protobuf for the loader (see ox_load.h):
 * error messages, the name table, attributes, constant tensors and the
 * graph's declared inputs and outputs.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "ox_load.h"

void ox__ld_msg(struct ox__ld *ld, const char *fmt, ...)
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

int ox__node_err(struct ox__ld *ld, int code, const char *fmt, ...)
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

int ox__name_find(const struct ox__ld *ld, const char *name)
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
int ox__tensor_new(struct ox__ld *ld, const char *name, enum ox__tkind kind)
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

void ox__fmt_shape(const struct ox__tensor *t, char *buf, size_t len)
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
int ox__attr_int(struct ox__ld *ld, const char *name, int64_t def,
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

int ox__attr_float(struct ox__ld *ld, const char *name, float def, float *v)
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
int ox__attr_ints(struct ox__ld *ld, const char *name, int64_t *v, int max,
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
int ox__attr_str(struct ox__ld *ld, const char *name, const char *def,
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

int ox__load_tensor(struct ox__ld *ld, const Onnx__TensorProto *tp, int id,
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
/* graph inputs and outputs */

int ox__check_value_info(struct ox__ld *ld, const Onnx__ValueInfoProto *vi,
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
int ox__io_info(struct ox__ld *ld, struct ox__io *io, const struct ox__tensor *t,
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
