/* SPDX-License-Identifier: MIT */
/*
 * hs_infer.h - an inference request over HTTP: the KServe v2 JSON body,
 * with Triton's binary tensor data extension (a JSON header of
 * Inference-Header-Content-Length bytes, then the tensors' bytes in the
 * order of the inputs that carry `binary_data_size`), turned into the
 * ModelInferRequest the gRPC front end validates (gs_infer_prepare: the
 * same checks and the same codes as gRPC and shared memory), and the
 * completed request turned into the JSON (and binary) response.  Prefix
 * hs_infer_.  Pure functions of their inputs and the shm region table, so
 * the fuzz target drives them without a server.
 *
 * LIMITS, all checked before the memory they bound is allocated
 *
 *   - the body: the server refuses one over --http-max-body-bytes (413)
 *     before reading it; the JSON header must lie inside the body;
 *   - the JSON: at most HS_JSON_MAX_DEPTH levels of nesting and
 *     HS_JSON_MAX_VALUES values, counted by a scan of its bytes before
 *     json-c builds anything (json-c's parse tree costs ~70 bytes a
 *     value: a body of "0,0,0,..." would otherwise grow 35-fold);
 *   - at most HS_MAX_TENSORS inputs and as many outputs;
 *   - a shape of at most 8 dimensions, none negative, whose element count
 *     fits in 2^40; JSON data must hold exactly that many elements of the
 *     datatype's kind before its buffer is allocated; binary data must be
 *     exactly elements x the datatype's size (gs_infer_prepare), and the
 *     binary sizes must add up to the rest of the body exactly.
 */
#ifndef FERRY_HS_INFER_H
#define FERRY_HS_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/frontends/grpc/gs_infer.h"
#include "broker/frontends/http/hs_json.h"

#define HS_JSON_MAX_DEPTH 32
#define HS_JSON_MAX_VALUES (1u << 22)
#define HS_MAX_TENSORS 1024

struct json_object;

/*
 * One request from its body to its response.  Owns the parse tree, the
 * request message built from it (whose strings point into the tree and
 * whose raw contents point into the body or into buffers it owns) and the
 * gs_infer; the body stays the caller's and must outlive it.
 */
struct hs_infer {
	struct gs_infer inf;            /* first: inf.req is what done() gets */
	Inference__ModelInferRequest msg;
	struct json_object *root;
	void **owned;                   /* malloc'd: freed by hs_infer_fini */
	int nowned, owned_cap;
	bool binary_default;            /* parameters.binary_data_output */
	/* The requested outputs' binary_data (-1: not given), in msg order. */
	signed char *out_binary;
	bool has_outputs;               /* msg->n_outputs from "outputs" */
};

/*
 * hs_infer_parse - parse body (len bytes; the first header_len of them
 * are the JSON, the rest binary tensor data; header_len 0: all JSON) for
 * model `name` version `version` ("" for the latest) into h (zeroed by
 * the caller).  Checks everything the request says about itself (see
 * LIMITS); the model's config is gs_infer_prepare's.  0, or a negative
 * ferry code with err filled (FERRY_EINVAL, FERRY_E2BIG, FERRY_ENOMEM).
 * Free with hs_infer_fini() either way.
 */
int hs_infer_parse(struct hs_infer *h, const uint8_t *body, size_t len, size_t header_len,
		   const char *name, const char *version, char *err, size_t errlen);

/* hs_infer_prepare - gs_infer_prepare of the parsed request against cfg. */
int hs_infer_prepare(struct hs_infer *h, const struct model_config *cfg, char *err,
		     size_t errlen);

/*
 * hs_infer_response - the response of a completed, successful request:
 * the JSON header in *json (taken by the caller), then *nbin binary parts
 * (*bin[i], *binlen[i]: pointers into h's output buffers, valid until
 * hs_infer_fini; the arrays are h's) to send after it in that order.
 * Outputs bound for CUDA regions are copied there first.  0 or a negative
 * code with err filled.
 */
int hs_infer_response(struct hs_infer *h, const char *model_name, int64_t version,
		      struct hs_buf *json, const void ***bin, size_t **binlen, int *nbin,
		      char *err, size_t errlen);

void hs_infer_fini(struct hs_infer *h);

/*
 * hs_infer_json - n bytes of JSON text, which must be one object, parsed
 * within the limits above (depth and value count scanned first) into *out
 * (json_object_put it).  0, or FERRY_EINVAL / FERRY_E2BIG / FERRY_ENOMEM
 * with err filled.  Every HTTP body the front end reads goes through it.
 */
int hs_infer_json(const char *s, size_t n, struct json_object **out, char *err, size_t errlen);

#endif
