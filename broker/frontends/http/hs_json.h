/* SPDX-License-Identifier: MIT */
/*
 * hs_json.h - what the HTTP front end writes: a growing byte buffer, JSON
 * strings and numbers, and protobuf-c messages rendered as the JSON that
 * Triton's HTTP endpoint sends for the same answer.  Prefix hs_buf_ /
 * hs_json_.  Reading JSON is json-c's (hs_infer.c, hs_admin.c); only
 * writing is done here, where the output's shape is ours.
 *
 * A buffer that fails to grow is marked oom and ignores every later write:
 * the caller checks b->oom once at the end.
 */
#ifndef FERRY_HS_JSON_H
#define FERRY_HS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ProtobufCMessage;

/* A growing buffer; zero-initialise.  p is malloc'd: the owner frees it
 * (hs_buf_free) or takes it (p, len). */
struct hs_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Room for n more bytes (p + len .. p + cap); false (and oom) if not. */
bool hs_buf_reserve(struct hs_buf *b, size_t n);
void hs_buf_put(struct hs_buf *b, const void *s, size_t n);
void hs_buf_puts(struct hs_buf *b, const char *s);
void hs_buf_printf(struct hs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hs_buf_free(struct hs_buf *b);

/* A JSON string of n bytes: quoted, with ", \ and control bytes escaped. */
void hs_json_str(struct hs_buf *b, const char *s, size_t n);
/* Numbers as JSON writes them; NaN and the infinities as the literals
 * NaN, Infinity, -Infinity (which Python's json and rapidjson read). */
void hs_json_double(struct hs_buf *b, double v, bool single);

/*
 * hs_json_message - m as a JSON object the way Triton's HTTP endpoint
 * writes the same message: field names as in the .proto, every scalar
 * field (defaults too), 64-bit integers as numbers, enums by name,
 * repeated fields as arrays, maps as objects, unset messages and oneof
 * members left out.
 */
void hs_json_message(struct hs_buf *b, const struct ProtobufCMessage *m);
/*
 * hs_json_values - the repeated or map field `field` of m alone, as a JSON
 * array of its elements (a map's values, in order): the HTTP form of the
 * repository index and the shared-memory status lists.
 */
void hs_json_values(struct hs_buf *b, const struct ProtobufCMessage *m, const char *field);

#endif
