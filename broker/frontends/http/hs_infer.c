/* SPDX-License-Identifier: MIT */
/*
 * hs_infer.c - KServe v2 inference over HTTP: the JSON body (with Triton's
 * binary tensor data extension) -> the ModelInferRequest that the gRPC
 * front end checks and converts (gs_infer_prepare) -> the JSON response,
 * with binary outputs after it where asked.  See hs_infer.h for the
 * limits.
 *
 * Every input becomes a raw_input_contents entry of the message (or a
 * shared-memory reference): binary data is pointed at where it lies in
 * the body (no copy), JSON data is converted once into the tensor's
 * little-endian bytes, in a buffer allocated only after its element count
 * matched the shape.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_shm.h"
#include "broker/frontends/http/hs_infer.h"

#define HS_MAX_ELEMENTS (1ULL << 40)

static int hs__fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int hs__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* n zeroed bytes that live until hs_infer_fini; NULL when out of memory. */
static void *hs__own(struct hs_infer *h, size_t n)
{
	if (h->nowned == h->owned_cap) {
		int cap = h->owned_cap ? h->owned_cap * 2 : 16;
		void **o = realloc(h->owned, (size_t)cap * sizeof(*o));
		if (!o)
			return NULL;
		h->owned = o;
		h->owned_cap = cap;
	}
	void *p = calloc(1, n ? n : 1);
	if (p)
		h->owned[h->nowned++] = p;
	return p;
}

/*
 * The bytes of a JSON text, scanned before json-c sees it: nesting depth
 * and a bound on the number of values (every ',', ':', '[' and '{'
 * outside strings adds at most one), so that the parse tree's size is
 * known before it is built.
 */
static int hs__scan(const char *s, size_t n, char *err, size_t errlen)
{
	int depth = 0;
	uint64_t values = 1;
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"': in_str = true; break;
		case '[': case '{':
			if (++depth > HS_JSON_MAX_DEPTH)
				return hs__fail(err, errlen, FERRY_EINVAL, "JSON nested deeper than "
						"%d levels", HS_JSON_MAX_DEPTH);
			values++;
			break;
		case ']': case '}': depth--; break;
		case ',': case ':': values++; break;
		default: break;
		}
	}
	if (values > HS_JSON_MAX_VALUES)
		return hs__fail(err, errlen, FERRY_E2BIG, "JSON with more than %u values: send "
				"large tensors as binary data (binary_data_size)",
				HS_JSON_MAX_VALUES);
	return 0;
}

int hs_infer_json(const char *s, size_t n, struct json_object **out, char *err, size_t errlen)
{
	int ret = hs__scan(s, n, err, errlen);
	if (ret)
		return ret;
	if (n > INT32_MAX)
		return hs__fail(err, errlen, FERRY_E2BIG, "JSON of %zu bytes", n);
	struct json_tokener *tok = json_tokener_new_ex(HS_JSON_MAX_DEPTH + 1);
	if (!tok)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, s, (int)n);
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		json_object_put(o);
		if (je == json_tokener_continue)
			return hs__fail(err, errlen, FERRY_EINVAL, "failed to parse the request "
					"JSON: it ends early (%zu bytes)", n);
		return hs__fail(err, errlen, FERRY_EINVAL, "failed to parse the request JSON: %s "
				"at byte %zu", json_tokener_error_desc(je), end);
	}
	for (; end < n; end++) {
		if (s[end] != ' ' && s[end] != '\t' && s[end] != '\r' && s[end] != '\n') {
			json_object_put(o);
			return hs__fail(err, errlen, FERRY_EINVAL, "failed to parse the request "
					"JSON: unexpected bytes after it at byte %zu", end);
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return hs__fail(err, errlen, FERRY_EINVAL, "the request body must be a JSON object");
	}
	*out = o;
	return 0;
}

static struct json_object *hs__get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	if (o && json_object_object_get_ex(o, key, &v))
		return v;
	return NULL;
}

/* An integer (0), absent (1), or not one (FERRY_EINVAL). */
static int hs__int(struct json_object *o, int64_t *v)
{
	if (!o)
		return 1;
	if (!json_object_is_type(o, json_type_int))
		return FERRY_EINVAL;
	*v = json_object_get_int64(o);
	return 0;
}

static int hs__param_entry(struct hs_infer *h, void **slot, const char *key,
			   const Inference__InferParameter *src)
{
	Inference__ModelInferRequest__ParametersEntry *e = hs__own(h, sizeof(*e));
	Inference__InferParameter *p = hs__own(h, sizeof(*p));
	if (!e || !p)
		return FERRY_ENOMEM;
	inference__model_infer_request__parameters_entry__init(e);
	*p = *src;
	e->key = (char *)key;
	e->value = p;
	*slot = e;
	return 0;
}

/*
 * The shared-memory parameters of a tensor (JSON "parameters") as the
 * message's parameter entries.  *n stays 0 when it names no region.
 */
static int hs__shm_params(struct hs_infer *h, struct json_object *params, const char *what,
			  const char *name, size_t *n, void ***entries, char *err, size_t errlen)
{
	static const char *const keys[3] = { "shared_memory_region", "shared_memory_byte_size",
					     "shared_memory_offset" };
	struct json_object *region = hs__get(params, keys[0]);
	*n = 0;
	if (!region)
		return 0;
	void **e = hs__own(h, 3 * sizeof(*e));
	if (!e)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	for (int k = 0; k < 3; k++) {
		struct json_object *v = hs__get(params, keys[k]);
		Inference__InferParameter p = INFERENCE__INFER_PARAMETER__INIT;
		if (!v)
			continue;
		if (k == 0) {
			if (!json_object_is_type(v, json_type_string))
				return hs__fail(err, errlen, FERRY_EINVAL, "%s '%s': "
						"shared_memory_region must be a string", what, name);
			p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
			p.string_param = (char *)json_object_get_string(v);
		} else {
			int64_t x;
			if (hs__int(v, &x) || x < 0)
				return hs__fail(err, errlen, FERRY_EINVAL, "%s '%s': %s must be a "
						"non-negative integer", what, name, keys[k]);
			p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
			p.int64_param = x;
		}
		if (hs__param_entry(h, &e[*n], keys[k], &p))
			return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
		(*n)++;
	}
	*entries = e;
	return 0;
}

/* Leaves of a (nested) JSON array, depth-first; at most `max` counted. */
static uint64_t hs__count(struct json_object *a, uint64_t max)
{
	if (!json_object_is_type(a, json_type_array))
		return 1;
	uint64_t n = 0;
	size_t len = json_object_array_length(a);
	for (size_t i = 0; i < len && n <= max; i++)
		n += hs__count(json_object_array_get_idx(a, i), max);
	return n;
}

struct hs__conv {
	ferry_dtype dt;
	uint8_t *w;             /* next element */
	const char *name;
	char *err;
	size_t errlen;
};

static int hs__leaf(struct hs__conv *c, struct json_object *v)
{
	enum json_type t = json_object_get_type(v);
	int64_t i = 0;
	uint64_t u = 0;

	switch (c->dt) {
	case FERRY_TYPE_BOOL:
		if (t != json_type_boolean)
			goto kind;
		*c->w++ = json_object_get_boolean(v) ? 1 : 0;
		return 0;
	case FERRY_TYPE_FP32: case FERRY_TYPE_FP64: {
		if (t != json_type_double && t != json_type_int)
			goto kind;
		double d = json_object_get_double(v);
		if (c->dt == FERRY_TYPE_FP32) {
			float f = (float)d;
			memcpy(c->w, &f, 4);
			c->w += 4;
		} else {
			memcpy(c->w, &d, 8);
			c->w += 8;
		}
		return 0;
	}
	case FERRY_TYPE_BYTES: {
		if (t != json_type_string)
			goto kind;
		uint32_t n = (uint32_t)json_object_get_string_len(v);
		memcpy(c->w, &n, 4);  /* little-endian hosts only (x86-64, aarch64) */
		memcpy(c->w + 4, json_object_get_string(v), n);
		c->w += 4 + n;
		return 0;
	}
	default:
		break;
	}
	/* Integers: JSON integers in the datatype's range. */
	if (t != json_type_int)
		goto kind;
	i = json_object_get_int64(v);
	u = json_object_get_uint64(v);
	bool neg = i < 0;
	int64_t lo = 0;
	uint64_t hi = 0;
	size_t es = ferry_dtype_size(c->dt);
	switch (c->dt) {
	case FERRY_TYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
	case FERRY_TYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
	case FERRY_TYPE_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
	case FERRY_TYPE_INT64: lo = INT64_MIN; hi = INT64_MAX; break;
	case FERRY_TYPE_UINT8: hi = UINT8_MAX; break;
	case FERRY_TYPE_UINT16: hi = UINT16_MAX; break;
	case FERRY_TYPE_UINT32: hi = UINT32_MAX; break;
	case FERRY_TYPE_UINT64: hi = UINT64_MAX; break;
	default:
		return hs__fail(c->err, c->errlen, FERRY_EINVAL, "input '%s': %s data cannot be "
				"sent as JSON: use binary data (binary_data_size)", c->name,
				ferry_dtype_name(c->dt) ? ferry_dtype_name(c->dt) : "this datatype's");
	}
	if (neg ? i < lo : u > hi)
		return hs__fail(c->err, c->errlen, FERRY_EINVAL, "input '%s': value %s is out of "
				"the range of %s", c->name, json_object_get_string(v),
				ferry_dtype_name(c->dt));
	/* Two's complement: the low bytes of the 64-bit value. */
	uint64_t bits = neg ? (uint64_t)i : u;
	memcpy(c->w, &bits, es);
	c->w += es;
	return 0;
kind:
	return hs__fail(c->err, c->errlen, FERRY_EINVAL, "input '%s': %s is not a %s value",
			c->name, json_object_get_string(v), ferry_dtype_name(c->dt));
}

static int hs__walk(struct hs__conv *c, struct json_object *a)
{
	if (!json_object_is_type(a, json_type_array))
		return hs__leaf(c, a);
	size_t len = json_object_array_length(a);
	for (size_t i = 0; i < len; i++) {
		int ret = hs__walk(c, json_object_array_get_idx(a, i));
		if (ret)
			return ret;
	}
	return 0;
}

/* BYTES: the bytes the 4-byte length prefixes and strings will take. */
static int hs__bytes_size(struct json_object *a, uint64_t *total, const char *name, char *err,
			  size_t errlen)
{
	if (!json_object_is_type(a, json_type_array)) {
		if (!json_object_is_type(a, json_type_string))
			return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': %s is not a BYTES "
					"value (a string)", name, json_object_get_string(a));
		*total += 4 + (uint64_t)json_object_get_string_len(a);
		return 0;
	}
	size_t len = json_object_array_length(a);
	for (size_t i = 0; i < len; i++) {
		int ret = hs__bytes_size(json_object_array_get_idx(a, i), total, name, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

/* JSON "data" of an input -> its raw bytes (*out, owned by h). */
static int hs__json_data(struct hs_infer *h, struct json_object *data, ferry_dtype dt,
			 uint64_t el, const char *name, ProtobufCBinaryData *out, char *err,
			 size_t errlen)
{
	if (dt == FERRY_TYPE_FP16 || dt == FERRY_TYPE_BF16)
		return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': %s data cannot be sent as "
				"JSON: use binary data (binary_data_size)", name, ferry_dtype_name(dt));
	uint64_t have = hs__count(data, el);
	if (have != el)
		return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': %s%" PRIu64 " elements of "
				"data, its shape holds %" PRIu64, name, have > el ? "more than " : "",
				have > el ? el : have, el);
	uint64_t bytes;
	if (dt == FERRY_TYPE_BYTES) {
		bytes = 0;
		int ret = hs__bytes_size(data, &bytes, name, err, errlen);
		if (ret)
			return ret;
	} else {
		bytes = el * ferry_dtype_size(dt);
	}
	uint8_t *p = hs__own(h, bytes);
	if (!p)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	struct hs__conv c = { .dt = dt, .w = p, .name = name, .err = err, .errlen = errlen };
	int ret = hs__walk(&c, data);
	if (ret)
		return ret;
	out->data = p;
	out->len = bytes;
	return 0;
}

static const char *hs__str(struct json_object *o, const char *key)
{
	struct json_object *v = hs__get(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* One input of the JSON: its message, and its data as raw contents. */
static int hs__input(struct hs_infer *h, struct json_object *jin, size_t i, const uint8_t *body,
		     size_t len, size_t *cursor, char *err, size_t errlen)
{
	Inference__ModelInferRequest__InferInputTensor *in = hs__own(h, sizeof(*in));
	if (!in)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	inference__model_infer_request__infer_input_tensor__init(in);
	h->msg.inputs[i] = in;
	if (!json_object_is_type(jin, json_type_object))
		return hs__fail(err, errlen, FERRY_EINVAL, "input %zu is not an object", i);
	const char *name = hs__str(jin, "name"), *datatype = hs__str(jin, "datatype");
	if (!name)
		return hs__fail(err, errlen, FERRY_EINVAL, "input %zu: no \"name\" string", i);
	if (!datatype)
		return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': no \"datatype\" string",
				name);
	in->name = (char *)name;
	in->datatype = (char *)datatype;
	struct json_object *shape = hs__get(jin, "shape");
	if (!shape || !json_object_is_type(shape, json_type_array))
		return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': no \"shape\" array", name);
	size_t nd = json_object_array_length(shape);
	if (nd > SCHED_MAX_DIMS)
		return hs__fail(err, errlen, FERRY_SHAPE, "input '%s': %zu dimensions, at most %d",
				name, nd, SCHED_MAX_DIMS);
	in->shape = hs__own(h, (nd + 1) * sizeof(int64_t));
	if (!in->shape)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	uint64_t el = 1;
	for (size_t k = 0; k < nd; k++) {
		int64_t d;
		if (hs__int(json_object_array_get_idx(shape, k), &d) || d < 0 ||
		    (uint64_t)d > HS_MAX_ELEMENTS || (d && el > HS_MAX_ELEMENTS / (uint64_t)d))
			return hs__fail(err, errlen, FERRY_SHAPE, "input '%s': invalid shape "
					"(dimension %zu)", name, k);
		in->shape[k] = d;
		el *= (uint64_t)d;
	}
	in->n_shape = nd;

	struct json_object *params = hs__get(jin, "parameters");
	if (params && !json_object_is_type(params, json_type_object))
		return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': \"parameters\" must be an "
				"object", name);
	int ret = hs__shm_params(h, params, "input", name, &in->n_parameters,
				 (void ***)&in->parameters, err, errlen);
	if (ret)
		return ret;
	struct json_object *data = hs__get(jin, "data");
	struct json_object *bsz = hs__get(params, "binary_data_size");
	int sources = (data != NULL) + (bsz != NULL) + (in->n_parameters != 0);
	if (sources != 1)
		return hs__fail(err, errlen, FERRY_EINVAL, "input '%s' must have exactly one of "
				"\"data\", binary_data_size and shared_memory_region (has %d)",
				name, sources);
	if (in->n_parameters)
		return 0;               /* shared memory: gs_infer_prepare binds it */
	ProtobufCBinaryData *raw = &h->msg.raw_input_contents[h->msg.n_raw_input_contents++];
	if (bsz) {
		int64_t n;
		if (hs__int(bsz, &n) || n < 0)
			return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': binary_data_size must "
					"be a non-negative integer", name);
		if ((uint64_t)n > len - *cursor)
			return hs__fail(err, errlen, FERRY_EINVAL, "input '%s': binary_data_size %"
					PRId64 " is past the end of the body (%zu bytes left)", name,
					n, len - *cursor);
		raw->data = (uint8_t *)body + *cursor;
		raw->len = (size_t)n;
		*cursor += (size_t)n;
		return 0;
	}
	ferry_dtype dt = gs_dtype_parse(datatype);
	if (dt == FERRY_TYPE_INVALID)
		return hs__fail(err, errlen, FERRY_DTYPE, "input '%s': invalid datatype '%s'", name,
				datatype);
	return hs__json_data(h, data, dt, el, name, raw, err, errlen);
}

static int hs__output(struct hs_infer *h, struct json_object *jo, size_t i, char *err,
		      size_t errlen)
{
	Inference__ModelInferRequest__InferRequestedOutputTensor *o = hs__own(h, sizeof(*o));
	if (!o)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	inference__model_infer_request__infer_requested_output_tensor__init(o);
	h->msg.outputs[i] = o;
	h->out_binary[i] = -1;
	if (!json_object_is_type(jo, json_type_object))
		return hs__fail(err, errlen, FERRY_EINVAL, "output %zu is not an object", i);
	const char *name = hs__str(jo, "name");
	if (!name)
		return hs__fail(err, errlen, FERRY_EINVAL, "output %zu: no \"name\" string", i);
	o->name = (char *)name;
	struct json_object *params = hs__get(jo, "parameters");
	if (params && !json_object_is_type(params, json_type_object))
		return hs__fail(err, errlen, FERRY_EINVAL, "output '%s': \"parameters\" must be an "
				"object", name);
	struct json_object *bin = hs__get(params, "binary_data");
	if (bin) {
		if (!json_object_is_type(bin, json_type_boolean))
			return hs__fail(err, errlen, FERRY_EINVAL, "output '%s': binary_data must be "
					"true or false", name);
		h->out_binary[i] = json_object_get_boolean(bin) ? 1 : 0;
	}
	int64_t cls;
	if (hs__int(hs__get(params, "classification"), &cls) != 1)
		return hs__fail(err, errlen, FERRY_ENOTSUP, "output '%s': the classification "
				"extension is not supported by ferry", name);
	return hs__shm_params(h, params, "output", name, &o->n_parameters,
			      (void ***)&o->parameters, err, errlen);
}

/* The request's own "parameters": priority, timeout, binary_data_output. */
static int hs__request_params(struct hs_infer *h, struct json_object *params, char *err,
			      size_t errlen)
{
	static const char *const keys[2] = { "priority", "timeout" };
	if (!params)
		return 0;
	if (!json_object_is_type(params, json_type_object))
		return hs__fail(err, errlen, FERRY_EINVAL, "\"parameters\" must be an object");
	struct json_object *bo = hs__get(params, "binary_data_output");
	if (bo) {
		if (!json_object_is_type(bo, json_type_boolean))
			return hs__fail(err, errlen, FERRY_EINVAL, "binary_data_output must be true "
					"or false");
		h->binary_default = json_object_get_boolean(bo);
	}
	h->msg.parameters = hs__own(h, 2 * sizeof(*h->msg.parameters));
	if (!h->msg.parameters)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	for (int k = 0; k < 2; k++) {
		struct json_object *v = hs__get(params, keys[k]);
		Inference__InferParameter p = INFERENCE__INFER_PARAMETER__INIT;
		int64_t x;
		if (!v)
			continue;
		if (hs__int(v, &x) || x < 0)
			return hs__fail(err, errlen, FERRY_EINVAL, "parameter '%s' must be a "
					"non-negative integer", keys[k]);
		p.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		p.int64_param = x;
		if (hs__param_entry(h, (void **)&h->msg.parameters[h->msg.n_parameters], keys[k], &p))
			return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
		h->msg.n_parameters++;
	}
	return 0;
}

int hs_infer_parse(struct hs_infer *h, const uint8_t *body, size_t len, size_t header_len,
		   const char *name, const char *version, char *err, size_t errlen)
{
	int ret;

	inference__model_infer_request__init(&h->msg);
	h->msg.model_name = (char *)name;
	h->msg.model_version = (char *)(version ? version : "");
	if (header_len > len)
		return hs__fail(err, errlen, FERRY_EINVAL, "Inference-Header-Content-Length %zu is "
				"more than the body's %zu bytes", header_len, len);
	size_t jlen = header_len ? header_len : len;
	if ((ret = hs_infer_json((const char *)body, jlen, &h->root, err, errlen)))
		return ret;
	struct json_object *root = h->root;
	struct json_object *id = hs__get(root, "id");
	if (id) {
		if (!json_object_is_type(id, json_type_string))
			return hs__fail(err, errlen, FERRY_EINVAL, "\"id\" must be a string");
		h->msg.id = (char *)json_object_get_string(id);
	}
	if ((ret = hs__request_params(h, hs__get(root, "parameters"), err, errlen)))
		return ret;
	struct json_object *inputs = hs__get(root, "inputs");
	if (!inputs || !json_object_is_type(inputs, json_type_array))
		return hs__fail(err, errlen, FERRY_EINVAL, "the request has no \"inputs\" array");
	size_t nin = json_object_array_length(inputs);
	struct json_object *outputs = hs__get(root, "outputs");
	if (outputs && !json_object_is_type(outputs, json_type_array))
		return hs__fail(err, errlen, FERRY_EINVAL, "\"outputs\" must be an array");
	size_t nout = outputs ? json_object_array_length(outputs) : 0;
	if (nin > HS_MAX_TENSORS || nout > HS_MAX_TENSORS)
		return hs__fail(err, errlen, FERRY_EINVAL, "%zu inputs and %zu outputs: at most %d "
				"of each", nin, nout, HS_MAX_TENSORS);
	h->msg.inputs = hs__own(h, (nin + 1) * sizeof(*h->msg.inputs));
	h->msg.raw_input_contents = hs__own(h, (nin + 1) * sizeof(*h->msg.raw_input_contents));
	h->msg.outputs = hs__own(h, (nout + 1) * sizeof(*h->msg.outputs));
	h->out_binary = hs__own(h, nout + 1);
	if (!h->msg.inputs || !h->msg.raw_input_contents || !h->msg.outputs || !h->out_binary)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	size_t cursor = header_len;
	for (size_t i = 0; i < nin; i++) {
		h->msg.n_inputs = i + 1;
		if ((ret = hs__input(h, json_object_array_get_idx(inputs, i), i, body, len, &cursor,
				     err, errlen)))
			return ret;
	}
	if (header_len && cursor != len)
		return hs__fail(err, errlen, FERRY_EINVAL, "the inputs' binary_data_size add up to "
				"%zu bytes, the body has %zu after its JSON", cursor - header_len,
				len - header_len);
	for (size_t i = 0; i < nout; i++) {
		h->msg.n_outputs = i + 1;
		if ((ret = hs__output(h, json_object_array_get_idx(outputs, i), i, err, errlen)))
			return ret;
	}
	h->has_outputs = nout > 0;
	return 0;
}

int hs_infer_prepare(struct hs_infer *h, const struct model_config *cfg, char *err,
		     size_t errlen)
{
	return gs_infer_prepare(&h->inf, &h->msg, cfg, err, errlen);
}

/* Output `o` (config index) goes back as binary data? */
static bool hs__binary(const struct hs_infer *h, int o)
{
	const char *name = h->inf.cfg->outputs[o].name;
	for (size_t i = 0; i < h->msg.n_outputs; i++)
		if (!strcmp(h->msg.outputs[i]->name, name) && h->out_binary[i] >= 0)
			return h->out_binary[i] == 1;
	return h->binary_default;
}

/* An output's elements as a flat JSON array. */
static int hs__json_out(struct hs_buf *b, const struct sched_tensor *y, ferry_dtype dt,
			const char *name, char *err, size_t errlen)
{
	const uint8_t *p = y->data;
	size_t es = ferry_dtype_size(dt);
	hs_buf_puts(b, "[");
	if (dt == FERRY_TYPE_BYTES) {
		uint64_t o = 0;
		for (bool first = true; o < y->bytes; first = false) {
			uint32_t n;
			if (y->bytes - o < 4 || (memcpy(&n, p + o, 4), n > y->bytes - o - 4))
				return hs__fail(err, errlen, FERRY_EPROTO, "output '%s': malformed "
						"BYTES", name);
			if (!first)
				hs_buf_puts(b, ",");
			hs_json_str(b, (const char *)p + o + 4, n);
			o += 4 + n;
		}
		hs_buf_puts(b, "]");
		return 0;
	}
	if (dt == FERRY_TYPE_FP16 || dt == FERRY_TYPE_BF16 || !es)
		return hs__fail(err, errlen, FERRY_EINVAL, "output '%s': %s data cannot be sent as "
				"JSON: ask for binary data (binary_data)", name,
				ferry_dtype_name(dt) ? ferry_dtype_name(dt) : "this datatype's");
	for (uint64_t i = 0; i < y->bytes / es; i++) {
		const uint8_t *q = p + i * es;
		if (i)
			hs_buf_puts(b, ",");
		switch (dt) {
		case FERRY_TYPE_BOOL: hs_buf_puts(b, *q ? "true" : "false"); break;
		case FERRY_TYPE_INT8: hs_buf_printf(b, "%d", *(const int8_t *)q); break;
		case FERRY_TYPE_UINT8: hs_buf_printf(b, "%u", *q); break;
		case FERRY_TYPE_INT16: { int16_t v; memcpy(&v, q, 2); hs_buf_printf(b, "%d", v); break; }
		case FERRY_TYPE_UINT16: { uint16_t v; memcpy(&v, q, 2); hs_buf_printf(b, "%u", v); break; }
		case FERRY_TYPE_INT32: { int32_t v; memcpy(&v, q, 4); hs_buf_printf(b, "%d", v); break; }
		case FERRY_TYPE_UINT32: { uint32_t v; memcpy(&v, q, 4); hs_buf_printf(b, "%u", v); break; }
		case FERRY_TYPE_INT64: { int64_t v; memcpy(&v, q, 8); hs_buf_printf(b, "%lld", (long long)v); break; }
		case FERRY_TYPE_UINT64: { uint64_t v; memcpy(&v, q, 8); hs_buf_printf(b, "%llu", (unsigned long long)v); break; }
		case FERRY_TYPE_FP32: { float v; memcpy(&v, q, 4); hs_json_double(b, v, true); break; }
		case FERRY_TYPE_FP64: { double v; memcpy(&v, q, 8); hs_json_double(b, v, false); break; }
		default: break;
		}
	}
	hs_buf_puts(b, "]");
	return 0;
}

int hs_infer_response(struct hs_infer *h, const char *model_name, int64_t version,
		      struct hs_buf *json, const void ***bin, size_t **binlen, int *nbin,
		      char *err, size_t errlen)
{
	struct gs_infer *inf = &h->inf;
	const struct model_config *cfg = inf->cfg;
	int ret;

	*nbin = 0;
	/* Outputs asked for in shared memory go there first (system regions
	 * under the SIGBUS guard). */
	if ((ret = gs_infer_copy_out(inf, err, errlen)))
		return ret;
	*bin = hs__own(h, ((size_t)inf->nout + 1) * sizeof(**bin));
	*binlen = hs__own(h, ((size_t)inf->nout + 1) * sizeof(**binlen));
	if (!*bin || !*binlen)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	hs_buf_puts(json, "{\"model_name\":");
	hs_json_str(json, model_name, strlen(model_name));
	hs_buf_printf(json, ",\"model_version\":\"%" PRId64 "\"", version);
	if (inf->id && *inf->id) {
		hs_buf_puts(json, ",\"id\":");
		hs_json_str(json, inf->id, strlen(inf->id));
	}
	hs_buf_puts(json, ",\"outputs\":[");
	for (int k = 0; k < inf->nout; k++) {
		int o = inf->out_order[k];
		const struct sched_tensor *y = &inf->t[cfg->ninputs + o];
		const struct gs_out_shm *os = &inf->out_shm[o];
		ferry_dtype dt = y->dtype ? y->dtype : cfg->outputs[o].dtype;
		const char *dn = ferry_dtype_name(dt) ? ferry_dtype_name(dt) : "";
		if (k)
			hs_buf_puts(json, ",");
		hs_buf_puts(json, "{\"name\":");
		hs_json_str(json, cfg->outputs[o].name, strlen(cfg->outputs[o].name));
		hs_buf_printf(json, ",\"datatype\":\"%s\",\"shape\":[", dn);
		for (int d = 0; d < y->ndims && d < SCHED_MAX_DIMS; d++)
			hs_buf_printf(json, "%s%" PRId64, d ? "," : "", y->dims[d]);
		hs_buf_puts(json, "]");
		if (os->used) {
			/* In the client's region (copied by gs_infer_copy_out
			 * above): only where it went. */
			hs_buf_puts(json, ",\"parameters\":{\"shared_memory_region\":");
			hs_json_str(json, os->region, strlen(os->region));
			hs_buf_printf(json, ",\"shared_memory_byte_size\":%" PRIu64, y->bytes);
			if (os->offset)
				hs_buf_printf(json, ",\"shared_memory_offset\":%" PRIu64, os->offset);
			hs_buf_puts(json, "}}");
			continue;
		}
		if (hs__binary(h, o)) {
			hs_buf_printf(json, ",\"parameters\":{\"binary_data_size\":%" PRIu64 "}}",
				      y->bytes);
			(*bin)[*nbin] = y->data;
			(*binlen)[*nbin] = y->bytes;
			(*nbin)++;
			continue;
		}
		hs_buf_puts(json, ",\"data\":");
		if ((ret = hs__json_out(json, y, dt, cfg->outputs[o].name, err, errlen)))
			return ret;
		hs_buf_puts(json, "}");
	}
	hs_buf_puts(json, "]}");
	if (json->oom)
		return hs__fail(err, errlen, FERRY_ENOMEM, "out of memory");
	return 0;
}

void hs_infer_fini(struct hs_infer *h)
{
	gs_infer_fini(&h->inf);
	json_object_put(h->root);
	for (int i = 0; i < h->nowned; i++)
		free(h->owned[i]);
	free(h->owned);
	memset(h, 0, sizeof(*h));
}
