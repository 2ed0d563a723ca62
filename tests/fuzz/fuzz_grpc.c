/* SPDX-License-Identifier: MIT */
/*
 * fuzz_grpc - a ModelInferRequest off the wire, decoded and validated as
 * ferryd's gRPC front end does (protobuf-c unpack, then gs_infer_prepare
 * against a model config), and when it is accepted, its response built
 * (gs_infer_response), for two models: Triton's "simple" (fixed INT32
 * dims, batching) and a BYTES identity with variable dims.
 *
 * Oracles, beyond the sanitizers and the leak checker (libFuzzer builds):
 * in the plain build too, every tensor gs_infer_prepare hands the
 * scheduler lies wholly inside memory it may be read from or written to:
 * one of the message's raw_input_contents, or a buffer the request owns
 * (bounded by malloc_usable_size).  No shared-memory region is registered
 * here, so none may be named.  Every byte of those tensors is read.
 */
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config/modelcfg.h"
#include "broker/frontends/grpc/gs_infer.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "tests/fuzz/fuzz.h"

static const char *const fzg_configs[2] = FUZZ_KSERVE_CONFIGS;
static struct model_config fzg_cfgs[2];

/* The bounds oracle for one accepted request. */
static void fzg_check_tensors(const struct gs_infer *inf, const Inference__ModelInferRequest *msg,
			      const struct model_config *cfg)
{
	volatile uint8_t sink = 0;

	for (int k = 0; k < cfg->ninputs + cfg->noutputs; k++) {
		const struct sched_tensor *t = &inf->t[k];
		int ok = 0;

		if (!t->present || !t->bytes)
			continue;
		FUZZ_CHECK(t->data != NULL);
		for (size_t j = 0; j < msg->n_raw_input_contents && !ok; j++)
			ok = fuzz_within(t->data, t->bytes, msg->raw_input_contents[j].data,
					msg->raw_input_contents[j].len);
		for (int j = 0; j < inf->nowned && !ok; j++)
			ok = fuzz_within(t->data, t->bytes, inf->owned[j],
					malloc_usable_size(inf->owned[j]));
		if (!ok)
			fprintf(stderr, "fuzz_grpc: model %s: tensor %d (%llu bytes at %p) lies "
				"outside every buffer of the request\n", cfg->name, k,
				(unsigned long long)t->bytes, t->data);
		FUZZ_CHECK(ok);
		for (uint64_t i = 0; i < t->bytes; i++)
			sink ^= ((const uint8_t *)t->data)[i];
	}
	(void)sink;
}

int fuzz_grpc(const uint8_t *data, size_t size)
{
	static int ready;
	char err[1024];

	if (!ready) {
		for (int i = 0; i < 2; i++)
			if (modelcfg_parse(fzg_configs[i], strlen(fzg_configs[i]), "fuzz",
					   &fzg_cfgs[i], NULL, NULL, err, sizeof(err))) {
				fprintf(stderr, "fuzz_grpc: model %d: %s\n", i, err);
				abort();
			}
		ready = 1;
	}
	Inference__ModelInferRequest *msg = inference__model_infer_request__unpack(NULL, size, data);
	if (!msg)
		return 0;
	for (int i = 0; i < 2; i++) {
		struct gs_infer inf;

		memset(&inf, 0, sizeof(inf));
		if (gs_infer_prepare(&inf, msg, &fzg_cfgs[i], err, sizeof(err)) == 0) {
			fzg_check_tensors(&inf, msg, &fzg_cfgs[i]);
			uint8_t *buf;
			size_t len;
			if (gs_infer_response(&inf, "m", 1, &buf, &len, err, sizeof(err)) == 0)
				free(buf);
		}
		gs_infer_fini(&inf);
	}
	inference__model_infer_request__free_unpacked(msg, NULL);
	return 0;
}

FUZZ_ENTRY(fuzz_grpc)
