/* SPDX-License-Identifier: MIT */
/*
 * ox_load.h - the ONNX loader's private interface (prefix ox__), shared by
 * its three files and by nothing else:
 *
 *   ox_proto.c  reading the protobuf: messages, the name table, attributes,
 *               constant tensors, graph inputs and outputs
 *   ox_ops.c    the operator table and each operator's planning (shape
 *               inference, attributes, constant folding of BatchNorm)
 *   ox_load.c   the graph: opset, operator check, topological order,
 *               tensor lifetimes, ox_model_load() / ox_model_free()
 *
 * The model file is untrusted input: protobuf-c checks the wire format;
 * these files check everything the schema cannot say (sizes against data
 * lengths, indices, attribute types and counts, overflow in shape
 * products).
 */
#ifndef FERRY_OX_LOAD_H
#define FERRY_OX_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx/onnx.pb-c.h"
#include "ox_int.h"

/* Caps that keep a hostile file from asking for absurd plans. */
#define OX__MAX_ELEMS	(INT64_C(1) << 40)	/* elements of one tensor */
#define OX__MAX_INPUTS	4096			/* inputs of one node */

/* One load in progress; owned by ox_model_load()'s caller thread. */
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

/* An operator the executor knows (ox_ops.c's table). */
struct ox__opdef {
	const char *name;
	enum ox__op op;
	int min_in, max_in;	/* max_in -1: variadic */
};

/* ---------------------------------------------------------------------- */
/* ox_proto.c */

/* Append to the error message, "; "-separated, truncating quietly. */
void ox__ld_msg(struct ox__ld *ld, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An error about the node being planned: "node 'n' (Op): ..."; returns @code. */
int ox__node_err(struct ox__ld *ld, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The tensor id of @name, or -1. */
int ox__name_find(const struct ox__ld *ld, const char *name);
/* A new tensor under @name (which must outlive the load: it points into
 * the proto); its id, or FERRY_EBADMSG if the name is taken. */
int ox__tensor_new(struct ox__ld *ld, const char *name, enum ox__tkind kind);
/* "[N,3,224,224]" */
void ox__fmt_shape(const struct ox__tensor *t, char *buf, size_t len);

/*
 * Typed attribute readers of the node being planned: 0 with the default
 * when absent, 0 with the value when present and of the right type,
 * FERRY_EBADMSG otherwise.  ox__attr_ints reads up to @max ints, *n = -1
 * when absent; ox__attr_str NUL-terminates @v.
 */
int ox__attr_int(struct ox__ld *ld, const char *name, int64_t def, int64_t *v);
int ox__attr_float(struct ox__ld *ld, const char *name, float def, float *v);
int ox__attr_ints(struct ox__ld *ld, const char *name, int64_t *v, int max, int *n);
int ox__attr_str(struct ox__ld *ld, const char *name, const char *def, char *v,
		 size_t vlen);

/*
 * ox__load_tensor - copy the data of a TensorProto into constant tensor
 * @id (float and int64 are kept; any other type becomes OX__T_OTHER, an
 * error only where it is used).  @what names its origin in messages.
 */
int ox__load_tensor(struct ox__ld *ld, const Onnx__TensorProto *tp, int id,
		    const char *what);
/* A graph input's or output's declared type and shape into @t (NULL:
 * check the type only). */
int ox__check_value_info(struct ox__ld *ld, const Onnx__ValueInfoProto *vi,
			 struct ox__tensor *t, const char *what);
/* The public description (struct ox_tensor_info) of a graph input/output. */
int ox__io_info(struct ox__ld *ld, struct ox__io *io, const struct ox__tensor *t,
		const char *what);

/* ---------------------------------------------------------------------- */
/* ox_ops.c */

/* The operator of @n, or NULL when the executor lacks it. */
const struct ox__opdef *ox__opdef_find(const Onnx__NodeProto *n);
/* Constant: tensor @id becomes a constant; no step runs. */
int ox__plan_constant(struct ox__ld *ld, int id);
/* Shape inference and attributes of one node (ld->node); s->in is filled,
 * *o receives the output's shape. */
int ox__plan_node(struct ox__ld *ld, const struct ox__opdef *od,
		  struct ox__step *s, struct ox__tensor *o);

/* ---------------------------------------------------------------------- */
/* shape arithmetic */

static inline const char *ox__nz(const char *s)
{
	return s ? s : "";
}

static inline bool ox__mul_ok(int64_t a, int64_t b, int64_t *r)
{
	if (__builtin_mul_overflow(a, b, r) || *r > OX__MAX_ELEMS)
		return false;
	return true;
}

/* Product of dims [from, to) as c * B^p. */
static inline bool ox__dims_prod(const struct ox__dim *d, int from, int to, int64_t *c,
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

static inline bool ox__dim_eq(struct ox__dim a, struct ox__dim b)
{
	return a.c == b.c && a.b == b.b;
}

static inline bool ox__dim_one(struct ox__dim a)
{
	return a.c == 1 && !a.b;
}

/* Normalize an axis in [-rank, rank) (or [-rank, rank] if @incl). */
static inline bool ox__norm_axis(int64_t ax, int rank, int incl, int *out)
{
	if (ax < -(int64_t)rank || ax >= (int64_t)rank + incl)
		return false;
	*out = (int)(ax < 0 ? ax + rank : ax);
	return true;
}

#endif /* FERRY_OX_LOAD_H */
