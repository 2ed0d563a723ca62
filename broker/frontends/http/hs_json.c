/* SPDX-License-Identifier: MIT */
/*
 * hs_json.c - the HTTP front end's output: a growing buffer, JSON scalars,
 * and protobuf-c messages as Triton's HTTP endpoint writes them (see
 * hs_json.h).  The gRPC handlers fill KServe's messages from the model
 * snapshot; this renders the same messages, so both protocols say the
 * same thing from the same code.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "broker/frontends/http/hs_json.h"

bool hs_buf_reserve(struct hs_buf *b, size_t n)
{
	if (b->oom)
		return false;
	if (n <= b->cap - b->len)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void hs_buf_put(struct hs_buf *b, const void *s, size_t n)
{
	if (n && hs_buf_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

void hs_buf_puts(struct hs_buf *b, const char *s)
{
	hs_buf_put(b, s, strlen(s));
}

void hs_buf_printf(struct hs_buf *b, const char *fmt, ...)
{
	va_list ap;
	for (int tries = 0; tries < 2; tries++) {
		if (!hs_buf_reserve(b, 64))
			return;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		if (!hs_buf_reserve(b, (size_t)n + 1))
			return;
	}
}

void hs_buf_free(struct hs_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void hs_json_str(struct hs_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* Worst case: every byte as \u00XX. */
	if (n > (SIZE_MAX - 2) / 6 || !hs_buf_reserve(b, n * 6 + 2))
		return;
	char *w = b->p + b->len;
	*w++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			*w++ = '\\';
			*w++ = (char)ch;
		} else if (ch == '\n') {
			*w++ = '\\';
			*w++ = 'n';
		} else if (ch < 0x20 || ch == 0x7f) {
			*w++ = '\\';
			*w++ = 'u';
			*w++ = '0';
			*w++ = '0';
			*w++ = hex[ch >> 4];
			*w++ = hex[ch & 15];
		} else {
			*w++ = (char)ch;
		}
	}
	*w++ = '"';
	b->len = (size_t)(w - b->p);
}

void hs_json_double(struct hs_buf *b, double v, bool single)
{
	if (isnan(v))
		hs_buf_puts(b, "NaN");
	else if (isinf(v))
		hs_buf_puts(b, v > 0 ? "Infinity" : "-Infinity");
	else
		/* As many digits as round-trip the value's own type. */
		hs_buf_printf(b, single ? "%.9g" : "%.17g", v);
}

/* ---------------------------------------------------------------------- */
/* protobuf-c messages                                                     */

static void hs__value(struct hs_buf *b, const ProtobufCFieldDescriptor *f, const void *p);

/* A generated map<K, V> entry: a message named ...Entry with key and value. */
static bool hs__is_map(const ProtobufCFieldDescriptor *f)
{
	if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
		return false;
	const ProtobufCMessageDescriptor *d = f->descriptor;
	size_t l = strlen(d->short_name);
	return d->n_fields == 2 && l > 5 && !strcmp(d->short_name + l - 5, "Entry") &&
	       !strcmp(d->fields[0].name, "key") && !strcmp(d->fields[1].name, "value");
}

static size_t hs__elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	default: return sizeof(void *);
	}
}

static void hs__base64(struct hs_buf *b, const uint8_t *d, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	hs_buf_puts(b, "\"");
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
			     (i + 2 < n ? d[i + 2] : 0);
		char q[4] = { a[v >> 18], a[(v >> 12) & 63], i + 1 < n ? a[(v >> 6) & 63] : '=',
			      i + 2 < n ? a[v & 63] : '=' };
		hs_buf_put(b, q, 4);
	}
	hs_buf_puts(b, "\"");
}

/* One element of field f's type at p. */
static void hs__value(struct hs_buf *b, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
		hs_buf_printf(b, "%d", *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		hs_buf_printf(b, "%u", *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		hs_buf_printf(b, "%lld", (long long)*(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		hs_buf_printf(b, "%llu", (unsigned long long)*(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		hs_json_double(b, *(const float *)p, true);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		hs_json_double(b, *(const double *)p, false);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		hs_buf_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
		if (v)
			hs_json_str(b, v->name, strlen(v->name));
		else
			hs_buf_printf(b, "%d", *(const int *)p);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		s = s ? s : "";
		hs_json_str(b, s, strlen(s));
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *d = p;
		hs__base64(b, d->data, d->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		if (m)
			hs_json_message(b, m);
		else
			hs_buf_puts(b, "{}");
		break;
	}
	}
}

/* A map entry as `"key": value` (keys are strings in JSON). */
static void hs__map_entry(struct hs_buf *b, const ProtobufCMessage *e)
{
	const ProtobufCMessageDescriptor *d = e->descriptor;
	const uint8_t *base = (const uint8_t *)e;
	const ProtobufCFieldDescriptor *k = &d->fields[0], *v = &d->fields[1];
	if (k->type == PROTOBUF_C_TYPE_STRING) {
		hs__value(b, k, base + k->offset);
	} else {
		struct hs_buf t = { 0 };
		hs__value(&t, k, base + k->offset);
		hs_json_str(b, t.p ? t.p : "", t.len);
		hs_buf_free(&t);
	}
	hs_buf_puts(b, ":");
	hs__value(b, v, base + v->offset);
}

/* Field f of message base: NULL when it is not written (an unset message
 * or oneof member). */
static bool hs__present(const ProtobufCFieldDescriptor *f, const uint8_t *base)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return true;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(void *const *)(base + f->offset) != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	    f->type != PROTOBUF_C_TYPE_STRING)
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	return true;
}

static void hs__field(struct hs_buf *b, const ProtobufCFieldDescriptor *f, const uint8_t *base,
		      bool values_only)
{
	if (f->label != PROTOBUF_C_LABEL_REPEATED) {
		hs__value(b, f, base + f->offset);
		return;
	}
	size_t n = *(const size_t *)(base + f->quantifier_offset);
	const uint8_t *arr = *(const uint8_t *const *)(base + f->offset);
	bool map = hs__is_map(f) && !values_only;
	size_t es = hs__elem_size(f);
	hs_buf_puts(b, map ? "{" : "[");
	for (size_t i = 0; i < n && arr; i++) {
		if (i)
			hs_buf_puts(b, ",");
		if (hs__is_map(f)) {
			const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[i];
			if (map) {
				hs__map_entry(b, e);
			} else {
				const ProtobufCFieldDescriptor *v = &e->descriptor->fields[1];
				hs__value(b, v, (const uint8_t *)e + v->offset);
			}
		} else {
			hs__value(b, f, arr + i * es);
		}
	}
	hs_buf_puts(b, map ? "}" : "]");
}

void hs_json_message(struct hs_buf *b, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const uint8_t *base = (const uint8_t *)m;
	bool first = true;
	hs_buf_puts(b, "{");
	/* In the order of the .proto (fields[] is sorted by number). */
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (!hs__present(f, base))
			continue;
		if (!first)
			hs_buf_puts(b, ",");
		first = false;
		hs_json_str(b, f->name, strlen(f->name));
		hs_buf_puts(b, ":");
		hs__field(b, f, base, false);
	}
	hs_buf_puts(b, "}");
}

void hs_json_values(struct hs_buf *b, const ProtobufCMessage *m, const char *field)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, field);
	if (!f || f->label != PROTOBUF_C_LABEL_REPEATED) {
		hs_buf_puts(b, "[]");
		return;
	}
	hs__field(b, f, (const uint8_t *)m, true);
}
