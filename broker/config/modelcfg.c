/* SPDX-License-Identifier: MIT */
/*
 * modelcfg.c - Triton's config.pbtxt (inference.ModelConfig in protobuf
 * text format) into struct model_config.
 *
 * pbtxt.c gives a schema-less tree; this file is the schema.  Each message
 * type is a table of fields: a handler for what ferry acts on, NULL for a
 * field Triton knows but ferry ignores (a warning, unless the value is the
 * default and so cannot be misread), and anything not in the table is an
 * unknown field (a warning).  Type and range errors stop the parse with
 * "file:line:col: message" pointing at the offending value.
 *
 * Where proto3 cannot tell "absent" from "zero" we do what Triton does after
 * its own normalisation (count 0 means 1, no version_policy means latest 1,
 * no instance_group means one group of KIND_AUTO).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ferry/errors.h>

#include "broker/config/modelcfg.h"
#include "broker/config/pbtxt.h"

struct ctx {
	const char *file;
	struct model_config *cfg;
	modelcfg_warn_fn warn;
	void *warn_arg;
	char *err;
	size_t errlen;
	int rc;
	unsigned flags;                 /* MODELCFG_PARTIAL */
	unsigned name_line, name_col;   /* last tensor `name` value seen */
	unsigned dl_line, dl_col;       /* default_priority_level value */
	unsigned db_line, db_col;       /* the dynamic_batching field */
};

static int modelcfg__cerr(struct ctx *c, unsigned line, unsigned col,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int modelcfg__cerr(struct ctx *c, unsigned line, unsigned col, const char *fmt, ...)
{
	if (c->rc)
		return c->rc;
	c->rc = FERRY_CONFIG;
	if (c->err && c->errlen) {
		int n = snprintf(c->err, c->errlen, "%s:%u:%u: ", c->file, line, col);
		if (n >= 0 && (size_t)n < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - n, fmt, ap);
			va_end(ap);
		}
	}
	return c->rc;
}

static int modelcfg__cnomem(struct ctx *c)
{
	if (!c->rc) {
		c->rc = FERRY_ENOMEM;
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "%s: out of memory", c->file);
	}
	return c->rc;
}

static void modelcfg__cwarn(struct ctx *c, unsigned line, unsigned col,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void modelcfg__cwarn(struct ctx *c, unsigned line, unsigned col, const char *fmt, ...)
{
	char where[512], msg[512];
	va_list ap;

	if (!c->warn)
		return;
	snprintf(where, sizeof(where), "%s:%u:%u", c->file, line, col);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->warn(c->warn_arg, where, msg);
}

/* ------------------------------------------------------------------ */
/* scalar readers: each checks the kind and the range, at the value */

static int modelcfg__want_kind_err(struct ctx *c, const struct pbtxt_node *n, const char *want)
{
	return modelcfg__cerr(c, n->vline, n->vcol, "'%s' expects %s, found %s",
		    n->name, want, pbtxt_kind_name(n->kind));
}

static int modelcfg__get_str(struct ctx *c, const struct pbtxt_node *n, char **dst)
{
	if (n->kind != PBTXT_STRING)
		return modelcfg__want_kind_err(c, n, "a string");
	if (memchr(n->str, '\0', n->len))
		return modelcfg__cerr(c, n->vline, n->vcol, "'%s' contains a NUL byte", n->name);
	char *s = strdup(n->str);
	if (!s)
		return modelcfg__cnomem(c);
	free(*dst);
	*dst = s;
	return 0;
}

static int modelcfg__get_i64(struct ctx *c, const struct pbtxt_node *n, int64_t min,
		   int64_t max, int64_t *out)
{
	int64_t v;

	if (n->kind != PBTXT_INT)
		return modelcfg__want_kind_err(c, n, "an integer");
	if (pbtxt_get_i64(n, &v) || v < min || v > max)
		return modelcfg__cerr(c, n->vline, n->vcol,
			    "'%s' out of range: %s%s not in [%lld, %lld]",
			    n->name, n->neg ? "-" : "", n->str,
			    (long long)min, (long long)max);
	*out = v;
	return 0;
}

static int modelcfg__get_u64(struct ctx *c, const struct pbtxt_node *n, uint64_t max,
		   uint64_t *out)
{
	uint64_t v;

	if (n->kind != PBTXT_INT)
		return modelcfg__want_kind_err(c, n, "an integer");
	if (pbtxt_get_u64(n, &v) || v > max)
		return modelcfg__cerr(c, n->vline, n->vcol,
			    "'%s' out of range: %s%s not in [0, %llu]",
			    n->name, n->neg ? "-" : "", n->str,
			    (unsigned long long)max);
	*out = v;
	return 0;
}

static int modelcfg__get_bool(struct ctx *c, const struct pbtxt_node *n, bool *out)
{
	/* The spellings protobuf's text parser accepts. */
	if (n->kind == PBTXT_IDENT) {
		if (!strcmp(n->str, "true") || !strcmp(n->str, "True") ||
		    !strcmp(n->str, "t")) {
			*out = true;
			return 0;
		}
		if (!strcmp(n->str, "false") || !strcmp(n->str, "False") ||
		    !strcmp(n->str, "f")) {
			*out = false;
			return 0;
		}
		return modelcfg__cerr(c, n->vline, n->vcol,
			    "'%s' expects true or false, found '%s'", n->name, n->str);
	}
	if (n->kind == PBTXT_INT && !n->neg && n->mag <= 1) {
		*out = n->mag == 1;
		return 0;
	}
	return modelcfg__want_kind_err(c, n, "true or false");
}

struct modelcfg__enum_val {
	const char *name;
	int value;
};

/* Enums accept their name or, as protobuf does, their number. */
static int modelcfg__get_enum(struct ctx *c, const struct pbtxt_node *n,
		    const struct modelcfg__enum_val *tab, int *out)
{
	if (n->kind == PBTXT_IDENT) {
		for (const struct modelcfg__enum_val *e = tab; e->name; e++)
			if (!strcmp(e->name, n->str)) {
				*out = e->value;
				return 0;
			}
		return modelcfg__cerr(c, n->vline, n->vcol, "unknown value '%s' for '%s'",
			    n->str, n->name);
	}
	if (n->kind == PBTXT_INT) {
		for (const struct modelcfg__enum_val *e = tab; e->name; e++)
			if (!n->neg && n->mag == (uint64_t)e->value) {
				*out = e->value;
				return 0;
			}
		return modelcfg__cerr(c, n->vline, n->vcol, "unknown value %s%s for '%s'",
			    n->neg ? "-" : "", n->str, n->name);
	}
	return modelcfg__want_kind_err(c, n, "an enum value");
}

/* ------------------------------------------------------------------ */
/* table-driven walk over one message */

typedef int (*field_fn)(struct ctx *c, const struct pbtxt_node *n, void *obj);

#define F_REPEATED 1u   /* may appear many times or as a list */
#define F_MSG      2u   /* value is a message */

struct field {
	const char *name;
	field_fn fn;            /* NULL: known to Triton, ignored by ferry */
	unsigned flags;
	const char *why;        /* ignored fields: appended to the warning */
};

/* An ignored field set to its default value cannot be misread: no noise. */
static bool modelcfg__is_default_value(const struct pbtxt_node *n)
{
	switch (n->kind) {
	case PBTXT_MSG:
		return n->nchildren == 0;
	case PBTXT_INT:
		return n->mag == 0;
	case PBTXT_FLOAT:
		return n->f == 0.0;
	case PBTXT_STRING:
		return n->len == 0;
	case PBTXT_IDENT:
		return !strcmp(n->str, "false") || !strcmp(n->str, "FORMAT_NONE");
	}
	return false;
}

static int modelcfg__walk(struct ctx *c, const struct pbtxt_node *msg,
		const struct field *tab, void *obj, const char *what)
{
	uint64_t seen = 0;

	for (const struct pbtxt_node *n = msg->child; n; n = n->next) {
		int i;
		for (i = 0; tab[i].name; i++)
			if (!strcmp(tab[i].name, n->name))
				break;
		const struct field *f = &tab[i];
		if (!f->name) {
			modelcfg__cwarn(c, n->line, n->col,
			      "unknown field '%s' in %s; ignored", n->name, what);
			continue;
		}
		if (!f->fn) {
			if (!modelcfg__is_default_value(n))
				modelcfg__cwarn(c, n->line, n->col,
				      "'%s' in %s is not supported by ferry and is ignored%s",
				      n->name, what, f->why ? f->why : "");
			continue;
		}
		if (!(f->flags & F_REPEATED)) {
			if (n->in_list)
				return modelcfg__cerr(c, n->line, n->col,
					    "'%s' is not a repeated field: a list is not allowed",
					    n->name);
			if (seen & (1ull << i))
				return modelcfg__cerr(c, n->line, n->col,
					    "'%s' given more than once in %s",
					    n->name, what);
			seen |= 1ull << i;
		}
		if ((f->flags & F_MSG) && n->kind != PBTXT_MSG)
			return modelcfg__cerr(c, n->vline, n->vcol,
				    "'%s' expects a message { ... }, found %s",
				    n->name, pbtxt_kind_name(n->kind));
		if (!(f->flags & F_MSG) && n->kind == PBTXT_MSG)
			return modelcfg__cerr(c, n->vline, n->vcol,
				    "'%s' expects a value, not a message", n->name);
		if (f->fn(c, n, obj))
			return c->rc;
	}
	return 0;
}

/*
 * Grow a counted array by one zeroed element; returns it or NULL.  arrp is
 * the address of the array pointer (any pointer type: copied with memcpy,
 * so no type punning).
 */
static void *modelcfg__push(struct ctx *c, void *arrp, int *n, size_t elsize, int max,
		  const struct pbtxt_node *at, const char *what)
{
	char *arr;

	memcpy(&arr, arrp, sizeof(arr));
	if (*n >= max) {
		modelcfg__cerr(c, at->line, at->col, "more than %d %s", max, what);
		return NULL;
	}
	/* Doubling, in element counts that are powers of two. */
	if ((*n & (*n - 1)) == 0) {
		size_t cap = *n ? (size_t)*n * 2 : 1;
		char *a = realloc(arr, cap * elsize);
		if (!a) {
			modelcfg__cnomem(c);
			return NULL;
		}
		arr = a;
		memcpy(arrp, &arr, sizeof(arr));
	}
	void *e = arr + (size_t)*n * elsize;
	memset(e, 0, elsize);
	(*n)++;
	return e;
}

/* ------------------------------------------------------------------ */
/* inputs and outputs */

static int modelcfg__t_name(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_tensor *t = obj;

	c->name_line = n->vline;
	c->name_col = n->vcol;
	return modelcfg__get_str(c, n, &t->name);
}

static const struct modelcfg__enum_val modelcfg__dtype_vals[] = {
#define DT(name, val, size, kname, cname) { cname, val },
	FERRY_DTYPE_MAP(DT)
#undef DT
	{ "TYPE_INVALID", 0 },
	{ NULL, 0 }
};

static int modelcfg__t_dtype(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_tensor *t = obj;
	int v;

	if (modelcfg__get_enum(c, n, modelcfg__dtype_vals, &v))
		return c->rc;
	if (v == FERRY_TYPE_INVALID)
		return modelcfg__cerr(c, n->vline, n->vcol, "data_type TYPE_INVALID is not allowed");
	t->dtype = (ferry_dtype)v;
	return 0;
}

static int modelcfg__read_dim(struct ctx *c, const struct pbtxt_node *n, int *nd, int64_t *dims)
{
	int64_t v;

	if (*nd >= MODELCFG_MAX_DIMS)
		return modelcfg__cerr(c, n->vline, n->vcol, "more than %d dims", MODELCFG_MAX_DIMS);
	if (modelcfg__get_i64(c, n, INT64_MIN, INT64_MAX, &v))
		return c->rc;
	if (v < 1 && v != -1)
		return modelcfg__cerr(c, n->vline, n->vcol,
			    "dimension must be >= 1, or -1 for a variable size; found %lld",
			    (long long)v);
	dims[(*nd)++] = v;
	return 0;
}

static int modelcfg__t_dims(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_tensor *t = obj;

	return modelcfg__read_dim(c, n, &t->ndims, t->dims);
}

static int modelcfg__t_optional(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_tensor *t = obj;

	return modelcfg__get_bool(c, n, &t->optional);
}

static int modelcfg__r_shape(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_tensor *t = obj;

	return modelcfg__read_dim(c, n, &t->reshape_ndims, t->reshape);
}

static const struct field modelcfg__reshape_fields[] = {
	{ "shape", modelcfg__r_shape, F_REPEATED, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__t_reshape(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_tensor *t = obj;

	t->has_reshape = true;
	t->reshape_ndims = 0;
	return modelcfg__walk(c, n, modelcfg__reshape_fields, t, "reshape");
}

static const struct field modelcfg__input_fields[] = {
	{ "name", modelcfg__t_name, 0, NULL },
	{ "data_type", modelcfg__t_dtype, 0, NULL },
	{ "dims", modelcfg__t_dims, F_REPEATED, NULL },
	{ "reshape", modelcfg__t_reshape, F_MSG, NULL },
	{ "optional", modelcfg__t_optional, 0, NULL },
	{ "format", NULL, 0, " (ferry does not transpose image formats)" },
	{ "is_shape_tensor", NULL, 0, " (ferry has no shape tensors)" },
	{ "allow_ragged_batch", NULL, 0, " (ferry batches only equal shapes)" },
	{ "is_non_linear_format_io", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static const struct field modelcfg__output_fields[] = {
	{ "name", modelcfg__t_name, 0, NULL },
	{ "data_type", modelcfg__t_dtype, 0, NULL },
	{ "dims", modelcfg__t_dims, F_REPEATED, NULL },
	{ "reshape", modelcfg__t_reshape, F_MSG, NULL },
	{ "label_filename", NULL, 0, " (ferry returns no classification labels)" },
	{ "is_shape_tensor", NULL, 0, " (ferry has no shape tensors)" },
	{ "is_non_linear_format_io", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

/* Elements of a shape without -1, or -1 when variable; -2 on overflow. */
static int64_t modelcfg__shape_elems(const int64_t *dims, int nd)
{
	int64_t e = 1;

	for (int i = 0; i < nd; i++) {
		if (dims[i] < 0)
			return -1;
		if (__builtin_mul_overflow(e, dims[i], &e))
			return -2;
	}
	return e;
}

static int modelcfg__read_tensor(struct ctx *c, const struct pbtxt_node *n,
		       struct modelcfg_tensor **arr, int *count, bool input)
{
	const char *what = input ? "input" : "output";
	struct modelcfg_tensor *t = modelcfg__push(c, arr, count, sizeof(**arr),
				   MODELCFG_MAX_IO, n, input ? "inputs" : "outputs");

	if (!t)
		return c->rc;
	c->name_line = n->line;
	c->name_col = n->col;
	if (modelcfg__walk(c, n, input ? modelcfg__input_fields : modelcfg__output_fields, t, what))
		return c->rc;
	if (!t->name || !t->name[0])
		return modelcfg__cerr(c, n->line, n->col, "%s without a name", what);
	for (int i = 0; i < *count - 1; i++)
		if (!strcmp((*arr)[i].name, t->name))
			return modelcfg__cerr(c, c->name_line, c->name_col,
				    "duplicate %s name '%s'", what, t->name);
	/* A partial config leaves these to auto-complete (modelcfg_check_io
	 * checks the result). */
	if (t->dtype == FERRY_TYPE_INVALID && !(c->flags & MODELCFG_PARTIAL))
		return modelcfg__cerr(c, n->line, n->col, "%s '%s' has no data_type",
			    what, t->name);
	if (t->ndims == 0 && !(c->flags & MODELCFG_PARTIAL))
		return modelcfg__cerr(c, n->line, n->col,
			    "%s '%s' has no dims (a scalar is dims: [1] with reshape: { shape: [] })",
			    what, t->name);
	if (t->has_reshape) {
		int64_t a = modelcfg__shape_elems(t->dims, t->ndims);
		int64_t b = modelcfg__shape_elems(t->reshape, t->reshape_ndims);
		if (a == -2 || b == -2)
			return modelcfg__cerr(c, n->line, n->col, "%s '%s': shape too large",
				    what, t->name);
		if (a >= 0 && b >= 0 && a != b)
			return modelcfg__cerr(c, n->line, n->col,
				    "%s '%s': dims hold %lld elements but reshape %lld",
				    what, t->name, (long long)a, (long long)b);
	}
	return 0;
}

static int modelcfg__m_input(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__read_tensor(c, n, &c->cfg->inputs, &c->cfg->ninputs, true);
}

static int modelcfg__m_output(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__read_tensor(c, n, &c->cfg->outputs, &c->cfg->noutputs, false);
}

/* ------------------------------------------------------------------ */
/* dynamic batching */

static const struct modelcfg__enum_val modelcfg__timeout_vals[] = {
	{ "REJECT", MODELCFG_TIMEOUT_REJECT },
	{ "DELAY", MODELCFG_TIMEOUT_DELAY },
	{ NULL, 0 }
};

static int modelcfg__q_action(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_queue_policy *q = obj;
	int v;

	if (modelcfg__get_enum(c, n, modelcfg__timeout_vals, &v))
		return c->rc;
	q->timeout_action = (enum modelcfg_timeout_action)v;
	return 0;
}

static int modelcfg__q_timeout(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_queue_policy *q = obj;

	return modelcfg__get_u64(c, n, UINT64_MAX, &q->default_timeout_us);
}

static int modelcfg__q_override(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_queue_policy *q = obj;

	return modelcfg__get_bool(c, n, &q->allow_timeout_override);
}

static int modelcfg__q_size(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_queue_policy *q = obj;
	uint64_t v;

	if (modelcfg__get_u64(c, n, UINT32_MAX, &v))
		return c->rc;
	q->max_queue_size = (uint32_t)v;
	return 0;
}

static const struct field modelcfg__queue_fields[] = {
	{ "timeout_action", modelcfg__q_action, 0, NULL },
	{ "default_timeout_microseconds", modelcfg__q_timeout, 0, NULL },
	{ "allow_timeout_override", modelcfg__q_override, 0, NULL },
	{ "max_queue_size", modelcfg__q_size, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__d_preferred(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;
	int64_t v;

	if (d->npreferred >= MODELCFG_MAX_PREFERRED)
		return modelcfg__cerr(c, n->vline, n->vcol,
			    "more than %d preferred_batch_size values", MODELCFG_MAX_PREFERRED);
	if (modelcfg__get_i64(c, n, 1, INT32_MAX, &v))
		return c->rc;
	d->preferred[d->npreferred++] = (int)v;
	return 0;
}

static int modelcfg__d_delay(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;

	return modelcfg__get_u64(c, n, UINT64_MAX, &d->max_queue_delay_us);
}

static int modelcfg__d_order(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;

	return modelcfg__get_bool(c, n, &d->preserve_ordering);
}

static int modelcfg__d_levels(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;
	uint64_t v;

	if (modelcfg__get_u64(c, n, UINT32_MAX, &v))
		return c->rc;
	d->priority_levels = (uint32_t)v;
	return 0;
}

static int modelcfg__d_deflevel(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;
	uint64_t v;

	if (modelcfg__get_u64(c, n, UINT32_MAX, &v))
		return c->rc;
	d->default_priority_level = (uint32_t)v;
	c->dl_line = n->vline;          /* checked once the block is read */
	c->dl_col = n->vcol;
	return 0;
}

static int modelcfg__d_defpolicy(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;

	memset(&d->default_policy, 0, sizeof(d->default_policy));
	return modelcfg__walk(c, n, modelcfg__queue_fields, &d->default_policy, "default_queue_policy");
}

struct modelcfg__prio_entry {
	bool has_key;
	uint64_t key;
	const struct pbtxt_node *key_node;
	struct modelcfg_queue_policy policy;
};

static int modelcfg__pe_key(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__prio_entry *e = obj;

	e->has_key = true;
	e->key_node = n;
	return modelcfg__get_u64(c, n, UINT64_MAX, &e->key);
}

static int modelcfg__pe_value(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__prio_entry *e = obj;

	return modelcfg__walk(c, n, modelcfg__queue_fields, &e->policy, "priority_queue_policy value");
}

static const struct field modelcfg__prio_entry_fields[] = {
	{ "key", modelcfg__pe_key, 0, NULL },
	{ "value", modelcfg__pe_value, F_MSG, NULL },
	{ NULL, NULL, 0, NULL }
};

/*
 * A map entry; the range of its key is checked against priority_levels
 * after the whole block, since priority_levels may come later.  A repeated
 * key replaces the earlier entry, as protobuf maps do, with a warning.
 */
static int modelcfg__d_prio_policy(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = obj;
	struct modelcfg__prio_entry e;

	memset(&e, 0, sizeof(e));
	if (modelcfg__walk(c, n, modelcfg__prio_entry_fields, &e, "priority_queue_policy"))
		return c->rc;
	if (!e.has_key)
		return modelcfg__cerr(c, n->line, n->col, "priority_queue_policy entry without a key");
	if (e.key < 1 || e.key > UINT32_MAX)
		return modelcfg__cerr(c, e.key_node->vline, e.key_node->vcol,
			    "priority_queue_policy key %llu is not a priority level",
			    (unsigned long long)e.key);
	for (int i = 0; i < d->nprio_policies; i++)
		if (d->prio_policies[i].level == e.key) {
			modelcfg__cwarn(c, n->line, n->col,
			      "priority_queue_policy for level %llu given again; the last one wins",
			      (unsigned long long)e.key);
			d->prio_policies[i].policy = e.policy;
			return 0;
		}
	struct modelcfg_prio_policy *p = modelcfg__push(c, &d->prio_policies,
					&d->nprio_policies, sizeof(*p),
					MODELCFG_MAX_PRIO_POLICIES, n,
					"priority_queue_policy entries");
	if (!p)
		return c->rc;
	p->level = (uint32_t)e.key;
	p->policy = e.policy;
	return 0;
}

static const struct field modelcfg__dynbatch_fields[] = {
	{ "preferred_batch_size", modelcfg__d_preferred, F_REPEATED, NULL },
	{ "max_queue_delay_microseconds", modelcfg__d_delay, 0, NULL },
	{ "preserve_ordering", modelcfg__d_order, 0, NULL },
	{ "priority_levels", modelcfg__d_levels, 0, NULL },
	{ "default_priority_level", modelcfg__d_deflevel, 0, NULL },
	{ "default_queue_policy", modelcfg__d_defpolicy, F_MSG, NULL },
	{ "priority_queue_policy", modelcfg__d_prio_policy, F_REPEATED | F_MSG, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__m_dynbatch(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_dynbatch *d = &c->cfg->dynbatch;

	d->enabled = true;
	c->db_line = c->dl_line = n->line;
	c->db_col = c->dl_col = n->col;
	if (modelcfg__walk(c, n, modelcfg__dynbatch_fields, d, "dynamic_batching"))
		return c->rc;
	if (d->priority_levels == 0) {
		if (d->default_priority_level != 0)
			return modelcfg__cerr(c, c->dl_line, c->dl_col,
				    "default_priority_level %u given but priority_levels is 0",
				    d->default_priority_level);
		if (d->nprio_policies)
			return modelcfg__cerr(c, n->line, n->col,
				    "priority_queue_policy given but priority_levels is 0");
		return 0;
	}
	if (d->default_priority_level < 1 ||
	    d->default_priority_level > d->priority_levels)
		return modelcfg__cerr(c, c->dl_line, c->dl_col,
			    "default_priority_level must be in [1, %u] (priority_levels), found %u",
			    d->priority_levels, d->default_priority_level);
	for (int i = 0; i < d->nprio_policies; i++)
		if (d->prio_policies[i].level > d->priority_levels)
			return modelcfg__cerr(c, n->line, n->col,
				    "priority_queue_policy key %u is above priority_levels %u",
				    d->prio_policies[i].level, d->priority_levels);
	return 0;
}

/* ------------------------------------------------------------------ */
/* instance groups */

static int modelcfg__g_name(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_instance_group *g = obj;

	return modelcfg__get_str(c, n, &g->name);
}

static int modelcfg__g_count(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_instance_group *g = obj;
	int64_t v;

	if (modelcfg__get_i64(c, n, 0, MODELCFG_MAX_INSTANCES, &v))
		return c->rc;
	g->count = v ? (int)v : 1;     /* proto3: 0 is "absent"; Triton makes it 1 */
	return 0;
}

static const struct modelcfg__enum_val modelcfg__kind_vals[] = {
	{ "KIND_AUTO", MODELCFG_KIND_AUTO },
	{ "KIND_GPU", MODELCFG_KIND_GPU },
	{ "KIND_CPU", MODELCFG_KIND_CPU },
	{ "KIND_MODEL", MODELCFG_KIND_MODEL },
	{ NULL, 0 }
};

static int modelcfg__g_kind(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_instance_group *g = obj;
	int v;

	if (modelcfg__get_enum(c, n, modelcfg__kind_vals, &v))
		return c->rc;
	g->kind = (enum modelcfg_kind)v;
	return 0;
}

static int modelcfg__g_gpus(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_instance_group *g = obj;
	int64_t v;

	if (g->ngpus >= MODELCFG_MAX_GPUS)
		return modelcfg__cerr(c, n->vline, n->vcol, "more than %d gpus", MODELCFG_MAX_GPUS);
	if (modelcfg__get_i64(c, n, 0, INT32_MAX, &v))
		return c->rc;
	g->gpus[g->ngpus++] = (int)v;
	return 0;
}

static const struct field modelcfg__group_fields[] = {
	{ "name", modelcfg__g_name, 0, NULL },
	{ "count", modelcfg__g_count, 0, NULL },
	{ "kind", modelcfg__g_kind, 0, NULL },
	{ "gpus", modelcfg__g_gpus, F_REPEATED, NULL },
	{ "rate_limiter", NULL, 0, " (ferry has no rate limiter)" },
	{ "secondary_devices", NULL, 0, NULL },
	{ "profile", NULL, 0, NULL },
	{ "passive", NULL, 0, NULL },
	{ "host_policy", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__m_group(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct model_config *cfg = c->cfg;
	struct modelcfg_instance_group *g = modelcfg__push(c, &cfg->groups, &cfg->ngroups,
					   sizeof(*g), MODELCFG_MAX_GROUPS, n,
					   "instance groups");
	if (!g)
		return c->rc;
	g->count = 1;
	g->kind = MODELCFG_KIND_AUTO;
	if (modelcfg__walk(c, n, modelcfg__group_fields, g, "instance_group"))
		return c->rc;
	if ((g->kind == MODELCFG_KIND_CPU || g->kind == MODELCFG_KIND_MODEL) && g->ngpus)
		return modelcfg__cerr(c, n->line, n->col,
			    "instance_group of kind %s lists gpus",
			    g->kind == MODELCFG_KIND_CPU ? "KIND_CPU" : "KIND_MODEL");
	return 0;
}

/* ------------------------------------------------------------------ */
/* version policy */

static int modelcfg__vl_num(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_version_policy *vp = obj;
	uint64_t v;

	if (modelcfg__get_u64(c, n, UINT32_MAX, &v))
		return c->rc;
	vp->latest_num = (uint32_t)v;
	return 0;
}

static const struct field modelcfg__latest_fields[] = {
	{ "num_versions", modelcfg__vl_num, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static const struct field modelcfg__all_fields[] = {
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__vs_version(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_version_policy *vp = obj;
	int64_t v;

	if (modelcfg__get_i64(c, n, 1, INT64_MAX, &v))
		return c->rc;
	int64_t *p = modelcfg__push(c, &vp->versions, &vp->nversions, sizeof(*p),
			  MODELCFG_MAX_VERSIONS, n, "specific versions");
	if (!p)
		return c->rc;
	*p = v;
	return 0;
}

static const struct field modelcfg__specific_fields[] = {
	{ "versions", modelcfg__vs_version, F_REPEATED, NULL },
	{ NULL, NULL, 0, NULL }
};

struct modelcfg__vp_state {
	struct modelcfg_version_policy *vp;
	int nset;
};

static int modelcfg__vp_oneof(struct ctx *c, const struct pbtxt_node *n, struct modelcfg__vp_state *s)
{
	if (s->nset++)
		return modelcfg__cerr(c, n->line, n->col,
			    "version_policy takes one of latest, all or specific");
	return 0;
}

static int modelcfg__vp_latest(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__vp_state *s = obj;

	if (modelcfg__vp_oneof(c, n, s))
		return c->rc;
	s->vp->kind = MODELCFG_VP_LATEST;
	s->vp->latest_num = 0;
	if (modelcfg__walk(c, n, modelcfg__latest_fields, s->vp, "latest"))
		return c->rc;
	if (s->vp->latest_num == 0)
		return modelcfg__cerr(c, n->line, n->col, "latest version policy needs num_versions >= 1");
	return 0;
}

static int modelcfg__vp_all(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__vp_state *s = obj;

	if (modelcfg__vp_oneof(c, n, s))
		return c->rc;
	s->vp->kind = MODELCFG_VP_ALL;
	return modelcfg__walk(c, n, modelcfg__all_fields, s->vp, "all");
}

static int modelcfg__vp_specific(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__vp_state *s = obj;

	if (modelcfg__vp_oneof(c, n, s))
		return c->rc;
	s->vp->kind = MODELCFG_VP_SPECIFIC;
	if (modelcfg__walk(c, n, modelcfg__specific_fields, s->vp, "specific"))
		return c->rc;
	if (s->vp->nversions == 0)
		return modelcfg__cerr(c, n->line, n->col, "specific version policy lists no versions");
	return 0;
}

static const struct field modelcfg__vp_fields[] = {
	{ "latest", modelcfg__vp_latest, F_MSG, NULL },
	{ "all", modelcfg__vp_all, F_MSG, NULL },
	{ "specific", modelcfg__vp_specific, F_MSG, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__m_version_policy(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__vp_state s = { &c->cfg->version_policy, 0 };

	if (modelcfg__walk(c, n, modelcfg__vp_fields, &s, "version_policy"))
		return c->rc;
	if (s.nset == 0) {      /* version_policy {}: Triton's default */
		s.vp->kind = MODELCFG_VP_LATEST;
		s.vp->latest_num = 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* parameters */

struct modelcfg__param_entry {
	char *key;
	char *value;
	bool has_value;
};

static int modelcfg__pv_string(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__param_entry *e = obj;

	return modelcfg__get_str(c, n, &e->value);
}

static const struct field modelcfg__param_value_fields[] = {
	{ "string_value", modelcfg__pv_string, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__pe_pkey(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__param_entry *e = obj;

	return modelcfg__get_str(c, n, &e->key);
}

static int modelcfg__pe_pvalue(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg__param_entry *e = obj;

	e->has_value = true;
	return modelcfg__walk(c, n, modelcfg__param_value_fields, e, "parameters value");
}

static const struct field modelcfg__param_fields[] = {
	{ "key", modelcfg__pe_pkey, 0, NULL },
	{ "value", modelcfg__pe_pvalue, F_MSG, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__m_param(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct model_config *cfg = c->cfg;
	struct modelcfg__param_entry e = { NULL, NULL, false };
	int rc = 0;

	if (modelcfg__walk(c, n, modelcfg__param_fields, &e, "parameters"))
		goto out;
	if (!e.key) {
		rc = modelcfg__cerr(c, n->line, n->col, "parameters entry without a key");
		goto out;
	}
	if (!e.value && !(e.value = strdup(""))) {
		rc = modelcfg__cnomem(c);
		goto out;
	}
	for (int i = 0; i < cfg->nparams; i++)
		if (!strcmp(cfg->params[i].key, e.key)) {
			/* protobuf maps keep the last; say so. */
			modelcfg__cwarn(c, n->line, n->col,
			      "parameter '%s' given again; the last value wins", e.key);
			free(cfg->params[i].value);
			cfg->params[i].value = e.value;
			e.value = NULL;
			goto out;
		}
	struct modelcfg_param *p = modelcfg__push(c, &cfg->params, &cfg->nparams,
				  sizeof(*p), MODELCFG_MAX_PARAMS, n, "parameters");
	if (!p)
		goto out;
	p->key = e.key;
	p->value = e.value;
	e.key = e.value = NULL;
out:
	free(e.key);
	free(e.value);
	return rc ? rc : c->rc;
}

/* ------------------------------------------------------------------ */
/* optimization (Triton's ModelOptimizationPolicy): the graph level and
 * the execution accelerators, which backends read (onnxruntime) */

static int modelcfg__gr_level(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_optimization *o = obj;
	int64_t v;

	if (modelcfg__get_i64(c, n, INT32_MIN, INT32_MAX, &v))
		return c->rc;
	o->graph_level = (int)v;
	o->has_graph_level = true;
	return 0;
}

static const struct field modelcfg__graph_fields[] = {
	{ "level", modelcfg__gr_level, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__o_graph(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__walk(c, n, modelcfg__graph_fields, obj, "graph");
}

/* An accelerator's parameters: map<string, string> entries. */
static int modelcfg__ap_key(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_param *p = obj;

	return modelcfg__get_str(c, n, &p->key);
}

static int modelcfg__ap_value(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_param *p = obj;

	return modelcfg__get_str(c, n, &p->value);
}

static const struct field modelcfg__accel_param_fields[] = {
	{ "key", modelcfg__ap_key, 0, NULL },
	{ "value", modelcfg__ap_value, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__a_name(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_accel *a = obj;

	return modelcfg__get_str(c, n, &a->name);
}

static int modelcfg__a_param(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_accel *a = obj;
	struct modelcfg_param e = { NULL, NULL };
	int rc = 0;

	if (modelcfg__walk(c, n, modelcfg__accel_param_fields, &e, "accelerator parameters"))
		goto out;
	if (!e.key) {
		rc = modelcfg__cerr(c, n->line, n->col, "accelerator parameter without a key");
		goto out;
	}
	if (!e.value && !(e.value = strdup(""))) {
		rc = modelcfg__cnomem(c);
		goto out;
	}
	for (int i = 0; i < a->nparams; i++)
		if (!strcmp(a->params[i].key, e.key)) {
			modelcfg__cwarn(c, n->line, n->col,
			      "accelerator parameter '%s' given again; the last value wins", e.key);
			free(a->params[i].value);
			a->params[i].value = e.value;
			e.value = NULL;
			goto out;
		}
	struct modelcfg_param *p = modelcfg__push(c, &a->params, &a->nparams, sizeof(*p),
						  MODELCFG_MAX_PARAMS, n, "accelerator parameters");
	if (!p)
		goto out;
	*p = e;
	e.key = e.value = NULL;
out:
	free(e.key);
	free(e.value);
	return rc ? rc : c->rc;
}

static const struct field modelcfg__accel_fields[] = {
	{ "name", modelcfg__a_name, 0, NULL },
	{ "parameters", modelcfg__a_param, F_REPEATED | F_MSG, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__read_accel(struct ctx *c, const struct pbtxt_node *n,
				struct modelcfg_accel **arr, int *count)
{
	struct modelcfg_accel *a = modelcfg__push(c, arr, count, sizeof(**arr),
						  MODELCFG_MAX_PARAMS, n, "execution accelerators");

	if (!a)
		return c->rc;
	if (modelcfg__walk(c, n, modelcfg__accel_fields, a, "execution accelerator"))
		return c->rc;
	if (!a->name || !a->name[0])
		return modelcfg__cerr(c, n->line, n->col, "execution accelerator without a name");
	return 0;
}

static int modelcfg__ea_gpu(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_optimization *o = obj;

	return modelcfg__read_accel(c, n, &o->gpu_accel, &o->ngpu_accel);
}

static int modelcfg__ea_cpu(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	struct modelcfg_optimization *o = obj;

	return modelcfg__read_accel(c, n, &o->cpu_accel, &o->ncpu_accel);
}

static const struct field modelcfg__ea_fields[] = {
	{ "gpu_execution_accelerator", modelcfg__ea_gpu, F_REPEATED | F_MSG, NULL },
	{ "cpu_execution_accelerator", modelcfg__ea_cpu, F_REPEATED | F_MSG, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__o_accels(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__walk(c, n, modelcfg__ea_fields, obj, "execution_accelerators");
}

static const struct field modelcfg__opt_fields[] = {
	{ "graph", modelcfg__o_graph, F_MSG, NULL },
	{ "execution_accelerators", modelcfg__o_accels, F_MSG, NULL },
	{ "priority", NULL, 0, NULL },
	{ "cuda", NULL, 0, " (the backend decides about CUDA graphs)" },
	{ "input_pinned_memory", NULL, 0, " (client arenas are pinned already)" },
	{ "output_pinned_memory", NULL, 0, " (client arenas are pinned already)" },
	{ "gather_kernel_buffer_threshold", NULL, 0, NULL },
	{ "eager_batching", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL }
};

static int modelcfg__m_optimization(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__walk(c, n, modelcfg__opt_fields, &c->cfg->opt, "optimization");
}

/* ------------------------------------------------------------------ */
/* top level */

static int modelcfg__m_name(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__get_str(c, n, &c->cfg->name);
}

static int modelcfg__m_backend(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__get_str(c, n, &c->cfg->backend);
}

static int modelcfg__m_platform(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	return modelcfg__get_str(c, n, &c->cfg->platform);
}

static int modelcfg__m_mbs(struct ctx *c, const struct pbtxt_node *n, void *obj)
{
	int64_t v;

	if (modelcfg__get_i64(c, n, 0, INT32_MAX, &v))
		return c->rc;
	c->cfg->max_batch_size = (int)v;
	c->cfg->has_max_batch_size = true;
	return 0;
}

static const struct field modelcfg__model_fields[] = {
	{ "name", modelcfg__m_name, 0, NULL },
	{ "platform", modelcfg__m_platform, 0, NULL },
	{ "backend", modelcfg__m_backend, 0, NULL },
	{ "version_policy", modelcfg__m_version_policy, F_MSG, NULL },
	{ "max_batch_size", modelcfg__m_mbs, 0, NULL },
	{ "input", modelcfg__m_input, F_REPEATED | F_MSG, NULL },
	{ "output", modelcfg__m_output, F_REPEATED | F_MSG, NULL },
	{ "dynamic_batching", modelcfg__m_dynbatch, F_MSG, NULL },
	{ "instance_group", modelcfg__m_group, F_REPEATED | F_MSG, NULL },
	{ "parameters", modelcfg__m_param, F_REPEATED | F_MSG, NULL },
	{ "runtime", NULL, 0, NULL },
	{ "batch_input", NULL, 0, NULL },
	{ "batch_output", NULL, 0, NULL },
	{ "optimization", modelcfg__m_optimization, F_MSG, NULL },
	{ "sequence_batching", NULL, 0,
	  " (ferry has no sequence batcher: requests are scheduled independently)" },
	{ "ensemble_scheduling", NULL, 0,
	  " (ferry does not run ensembles)" },
	{ "default_model_filename", NULL, 0, NULL },
	{ "cc_model_filenames", NULL, 0, NULL },
	{ "metric_tags", NULL, 0, NULL },
	{ "model_warmup", NULL, 0, " (no warm-up requests are sent)" },
	{ "model_operations", NULL, 0, NULL },
	{ "model_transaction_policy", NULL, 0,
	  " (ferry serves one response per request: decoupled models are not supported)" },
	{ "model_repository_agents", NULL, 0, NULL },
	{ "response_cache", NULL, 0, " (ferry has no response cache)" },
	{ NULL, NULL, 0, NULL }
};

/* Triton names unnamed groups "<model>_<index>". */
static int modelcfg__name_groups(struct model_config *cfg)
{
	for (int i = 0; i < cfg->ngroups; i++) {
		struct modelcfg_instance_group *g = &cfg->groups[i];
		if (g->name && g->name[0])
			continue;
		if (!cfg->name[0]) {
			/* No model name yet: "" until modelcfg_set_name(). */
			if (!g->name && !(g->name = strdup("")))
				return FERRY_ENOMEM;
			continue;
		}
		size_t n = strlen(cfg->name) + 16;
		char *s = malloc(n);
		if (!s)
			return FERRY_ENOMEM;
		snprintf(s, n, "%s_%d", cfg->name, i);
		free(g->name);
		g->name = s;
	}
	return 0;
}

static int modelcfg__finish(struct ctx *c)
{
	struct model_config *cfg = c->cfg;
	struct modelcfg_dynbatch *d = &cfg->dynbatch;

	if (!cfg->backend && !(cfg->backend = strdup("")))
		return modelcfg__cnomem(c);
	if (!cfg->platform && !(cfg->platform = strdup("")))
		return modelcfg__cnomem(c);
	if (!cfg->name && !(cfg->name = strdup("")))
		return modelcfg__cnomem(c);
	/* A partial config gets its tensors from auto-complete. */
	if (cfg->ninputs == 0 && !(c->flags & MODELCFG_PARTIAL))
		return modelcfg__cerr(c, 1, 1, "model has no input");
	if (cfg->noutputs == 0 && !(c->flags & MODELCFG_PARTIAL))
		return modelcfg__cerr(c, 1, 1, "model has no output");
	if (d->enabled && d->npreferred && cfg->max_batch_size == 0)
		return modelcfg__cerr(c, c->db_line, c->db_col,
			    "preferred_batch_size needs max_batch_size > 0");
	for (int i = 0; i < d->npreferred; i++)
		if (d->preferred[i] > cfg->max_batch_size)
			return modelcfg__cerr(c, c->db_line, c->db_col,
				    "preferred_batch_size %d is above max_batch_size %d",
				    d->preferred[i], cfg->max_batch_size);
	if (d->enabled && cfg->max_batch_size == 0)
		modelcfg__cwarn(c, c->db_line, c->db_col, "dynamic_batching with max_batch_size 0: requests are never batched");
	if (cfg->ngroups == 0) {
		struct modelcfg_instance_group *g = calloc(1, sizeof(*g));
		if (!g)
			return modelcfg__cnomem(c);
		g->count = 1;
		g->kind = MODELCFG_KIND_AUTO;
		cfg->groups = g;
		cfg->ngroups = 1;
	}
	if (modelcfg__name_groups(cfg))
		return modelcfg__cnomem(c);
	return 0;
}

int modelcfg_parse(const char *text, size_t len, const char *file,
	     struct model_config *cfg, modelcfg_warn_fn warn, void *warn_arg,
	     char *err, size_t errlen)
{
	return modelcfg_parse_flags(text, len, file, 0, cfg, warn, warn_arg, err, errlen);
}

int modelcfg_parse_flags(const char *text, size_t len, const char *file, unsigned flags,
			 struct model_config *cfg, modelcfg_warn_fn warn, void *warn_arg,
			 char *err, size_t errlen)
{
	struct pbtxt_doc *doc = NULL;
	struct ctx c;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (err && errlen)
		err[0] = '\0';
	if (!file)
		file = "<config>";
	memset(&c, 0, sizeof(c));
	c.file = file;
	c.cfg = cfg;
	c.warn = warn;
	c.warn_arg = warn_arg;
	c.err = err;
	c.errlen = errlen;
	c.flags = flags;

	rc = pbtxt_parse(text, len, file, NULL, &doc, err, errlen);
	if (rc)
		return rc;
	cfg->version_policy.kind = MODELCFG_VP_LATEST;
	cfg->version_policy.latest_num = 1;
	if (modelcfg__walk(&c, pbtxt_root(doc), modelcfg__model_fields, NULL, "ModelConfig") ||
	    modelcfg__finish(&c)) {
		rc = c.rc;
		modelcfg_free(cfg);
	}
	pbtxt_free(doc);
	return rc;
}

static int modelcfg__errno_to_ferry(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return FERRY_ENOENT;
	case EACCES:
	case EPERM:
		return FERRY_EPERM;
	case ENOMEM:
		return FERRY_ENOMEM;
	default:
		return FERRY_CONFIG;
	}
}

int modelcfg_load_file(const char *path, struct model_config *cfg,
		 modelcfg_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	return modelcfg_load_file_flags(path, 0, cfg, warn, warn_arg, err, errlen);
}

int modelcfg_load_file_flags(const char *path, unsigned flags, struct model_config *cfg,
			     modelcfg_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc;

	memset(cfg, 0, sizeof(*cfg));
	/* O_NONBLOCK: a FIFO planted as config.pbtxt must not hang the scan;
	 * it is refused below as not a regular file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = modelcfg__errno_to_ferry(errno);
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = FERRY_CONFIG;
		if (err && errlen)
			snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > PBTXT_DEFAULT_MAX_INPUT) {
		rc = FERRY_CONFIG;
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than %u bytes", path,
				 PBTXT_DEFAULT_MAX_INPUT);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = FERRY_ENOMEM;
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	/* Read what fstat promised; a file that changes meanwhile is read
	 * up to that size, never past the buffer. */
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = modelcfg__errno_to_ferry(errno);
			if (err && errlen)
				snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	rc = modelcfg_parse_flags(buf, got, path, flags, cfg, warn, warn_arg, err, errlen);
out:
	free(buf);
	close(fd);
	return rc;
}

static void modelcfg__free_params(struct modelcfg_param *p, int n)
{
	for (int i = 0; i < n; i++) {
		free(p[i].key);
		free(p[i].value);
	}
	free(p);
}

static void modelcfg__free_accels(struct modelcfg_accel *a, int n)
{
	for (int i = 0; i < n; i++) {
		free(a[i].name);
		modelcfg__free_params(a[i].params, a[i].nparams);
	}
	free(a);
}

void modelcfg_free(struct model_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->name);
	free(cfg->backend);
	free(cfg->platform);
	for (int i = 0; i < cfg->ninputs; i++)
		free(cfg->inputs[i].name);
	free(cfg->inputs);
	for (int i = 0; i < cfg->noutputs; i++)
		free(cfg->outputs[i].name);
	free(cfg->outputs);
	free(cfg->dynbatch.prio_policies);
	for (int i = 0; i < cfg->ngroups; i++)
		free(cfg->groups[i].name);
	free(cfg->groups);
	free(cfg->version_policy.versions);
	modelcfg__free_params(cfg->params, cfg->nparams);
	modelcfg__free_accels(cfg->opt.gpu_accel, cfg->opt.ngpu_accel);
	modelcfg__free_accels(cfg->opt.cpu_accel, cfg->opt.ncpu_accel);
	memset(cfg, 0, sizeof(*cfg));
}

int modelcfg_init_empty(struct model_config *cfg, const char *name)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->version_policy.kind = MODELCFG_VP_LATEST;
	cfg->version_policy.latest_num = 1;
	cfg->groups = calloc(1, sizeof(*cfg->groups));
	cfg->name = strdup("");
	cfg->backend = strdup("");
	cfg->platform = strdup("");
	if (!cfg->groups || !cfg->name || !cfg->backend || !cfg->platform)
		goto nomem;
	cfg->ngroups = 1;
	cfg->groups[0].count = 1;
	cfg->groups[0].kind = MODELCFG_KIND_AUTO;
	if (modelcfg_set_name(cfg, name))
		goto nomem;
	return 0;
nomem:
	modelcfg_free(cfg);
	return FERRY_ENOMEM;
}

int modelcfg_check_io(const struct model_config *cfg, const char *file, char *err,
		      size_t errlen)
{
	const char *what = NULL, *tname = "";

	if (cfg->ninputs == 0)
		what = "model has no input (and auto-complete found none)";
	else if (cfg->noutputs == 0)
		what = "model has no output (and auto-complete found none)";
	for (int io = 0; io < 2 && !what; io++) {
		const struct modelcfg_tensor *t = io ? cfg->outputs : cfg->inputs;
		for (int i = 0; i < (io ? cfg->noutputs : cfg->ninputs) && !what; i++) {
			tname = t[i].name;
			if (t[i].dtype == FERRY_TYPE_INVALID)
				what = io ? "output '%s' has no data_type" : "input '%s' has no data_type";
			else if (t[i].ndims == 0)
				what = io ? "output '%s' has no dims" : "input '%s' has no dims";
		}
	}
	if (!what)
		return 0;
	if (err && errlen) {
		int n = snprintf(err, errlen, "%s: ", file ? file : "<config>");
		if (n >= 0 && (size_t)n < errlen)
			snprintf(err + n, errlen - (size_t)n, what, tname);
	}
	return FERRY_CONFIG;
}

int modelcfg_set_string(char **field, const char *s)
{
	char *d = strdup(s);

	if (!d)
		return FERRY_ENOMEM;
	free(*field);
	*field = d;
	return 0;
}

int modelcfg_set_name(struct model_config *cfg, const char *name)
{
	char *s = strdup(name);

	if (!s)
		return FERRY_ENOMEM;
	free(cfg->name);
	cfg->name = s;
	/* Groups named after the old (or no) name keep their names: only
	 * unnamed ones take the default; a failure here leaves them unnamed. */
	return modelcfg__name_groups(cfg);
}

const char *modelcfg_param(const struct model_config *cfg, const char *key)
{
	for (int i = 0; i < cfg->nparams; i++)
		if (!strcmp(cfg->params[i].key, key))
			return cfg->params[i].value;
	return NULL;
}

static int modelcfg__find_tensor(const struct modelcfg_tensor *t, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return i;
	return -1;
}

int modelcfg_input_index(const struct model_config *cfg, const char *name)
{
	return modelcfg__find_tensor(cfg->inputs, cfg->ninputs, name);
}

int modelcfg_output_index(const struct model_config *cfg, const char *name)
{
	return modelcfg__find_tensor(cfg->outputs, cfg->noutputs, name);
}
