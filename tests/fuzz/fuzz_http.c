/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http - an inference request body off the wire, parsed and checked
 * as ferryd's HTTP front end does (hs_infer_parse: the JSON with json-c
 * and the binary tensor data after it; then hs_infer_prepare against a
 * model config, which is gs_infer_prepare), and when it is accepted, its
 * response built (hs_infer_response), for two models: Triton's "simple"
 * (fixed INT32 dims, batching) and a BYTES identity with variable dims.
 *
 * Input: a body, or 'B', a 16-bit little-endian Inference-Header-Content-
 * Length, then the body (JSON header, then binary data).
 *
 * Oracles, beyond the sanitizers and the leak checker (libFuzzer builds):
 * in the plain build too, every tensor handed to the scheduler lies
 * wholly inside the body or a buffer the request owns (bounded by
 * malloc_usable_size), and every byte of it is read; a response's JSON is
 * one JSON object json-c reads back, and its binary parts lie inside
 * output buffers.  No shared-memory region is registered here.
 */
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "broker/config/modelcfg.h"
#include "broker/frontends/http/hs_infer.h"
#include "tests/fuzz/fuzz.h"

static const char *const fzh_configs[2] = FUZZ_KSERVE_CONFIGS;
static struct model_config fzh_cfgs[2];

/* Inside the body, or a buffer of the request (its own or gs_infer's)? */
static int fzh_owned(const struct hs_infer *h, const void *p, uint64_t n, const uint8_t *body,
		     size_t len)
{
	if (fuzz_within(p, n, body, len))
		return 1;
	for (int j = 0; j < h->nowned; j++)
		if (fuzz_within(p, n, h->owned[j], malloc_usable_size(h->owned[j])))
			return 1;
	for (int j = 0; j < h->inf.nowned; j++)
		if (fuzz_within(p, n, h->inf.owned[j], malloc_usable_size(h->inf.owned[j])))
			return 1;
	return 0;
}

static void fzh_check(struct hs_infer *h, const struct model_config *cfg, const uint8_t *body,
		      size_t len)
{
	volatile uint8_t sink = 0;
	char err[1024];

	for (int k = 0; k < cfg->ninputs + cfg->noutputs; k++) {
		struct sched_tensor *t = &h->inf.t[k];
		if (!t->present || !t->bytes)
			continue;
		FUZZ_CHECK(t->data != NULL);
		if (!fzh_owned(h, t->data, t->bytes, body, len))
			fprintf(stderr, "fuzz_http: model %s: tensor %d (%llu bytes) lies outside "
				"every buffer of the request\n", cfg->name, k,
				(unsigned long long)t->bytes);
		FUZZ_CHECK(fzh_owned(h, t->data, t->bytes, body, len));
		for (uint64_t i = 0; i < t->bytes; i++)
			sink ^= ((const uint8_t *)t->data)[i];
		/* As if the model wrote its outputs: zeros (BYTES: empty). */
		if (k >= cfg->ninputs)
			memset(t->data, 0, t->bytes);
	}
	(void)sink;
	struct hs_buf json = { 0 };
	const void **bin;
	size_t *binlen;
	int nbin;
	if (hs_infer_response(h, "m", 1, &json, &bin, &binlen, &nbin, err, sizeof(err)) == 0) {
		FUZZ_CHECK(!json.oom && json.p != NULL);
		/* hs_buf is not NUL-terminated: parse a copy. */
		char *s = malloc(json.len + 1);
		FUZZ_CHECK(s != NULL);
		memcpy(s, json.p, json.len);
		s[json.len] = '\0';
		struct json_object *o = json_tokener_parse(s);
		free(s);
		FUZZ_CHECK(o != NULL && json_object_is_type(o, json_type_object));
		json_object_put(o);
		for (int i = 0; i < nbin; i++)
			FUZZ_CHECK(fzh_owned(h, bin[i], binlen[i], body, len));
	}
	hs_buf_free(&json);
}

int fuzz_http(const uint8_t *data, size_t size)
{
	static int ready;
	char err[1024];
	size_t header_len = 0;

	if (!ready) {
		for (int i = 0; i < 2; i++)
			if (modelcfg_parse(fzh_configs[i], strlen(fzh_configs[i]), "fuzz",
					   &fzh_cfgs[i], NULL, NULL, err, sizeof(err))) {
				fprintf(stderr, "fuzz_http: model %d: %s\n", i, err);
				abort();
			}
		ready = 1;
	}
	if (size >= 3 && data[0] == 'B') {
		header_len = (size_t)data[1] | (size_t)data[2] << 8;
		data += 3;
		size -= 3;
	}
	/* The body in a buffer of its own size, as the server reads it, so
	 * ASan sees any read past its end. */
	uint8_t *body = malloc(size ? size : 1);
	FUZZ_CHECK(body != NULL);
	if (size)
		memcpy(body, data, size);
	for (int i = 0; i < 2; i++) {
		struct hs_infer h;

		memset(&h, 0, sizeof(h));
		if (hs_infer_parse(&h, body, size, header_len, fzh_cfgs[i].name, "", err,
				   sizeof(err)) == 0 &&
		    hs_infer_prepare(&h, &fzh_cfgs[i], err, sizeof(err)) == 0)
			fzh_check(&h, &fzh_cfgs[i], body, size);
		hs_infer_fini(&h);
	}
	free(body);
	return 0;
}

FUZZ_ENTRY(fuzz_http)
