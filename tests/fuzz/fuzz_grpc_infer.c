/* SPDX-License-Identifier: MIT */
/*
 * fuzz_grpc_infer.c - libFuzzer target: a ModelInferRequest off the wire,
 * decoded and validated as ferryd's gRPC front end does (protobuf-c
 * unpack, then gs_infer_prepare against a model config), for two models:
 * Triton's "simple" (fixed INT32 dims, batching) and a BYTES identity with
 * variable dims.  Nothing may crash, leak or read out of bounds; run it
 * with tests/fuzz/run_grpc_fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/frontends/grpc/gs_infer.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "broker/config/modelcfg.h"

static const char *const CFGS[2] = {
	"name: \"simple\"\nbackend: \"add_sub\"\nmax_batch_size: 8\n"
	"input [ { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },"
	"        { name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
	"output [ { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },"
	"         { name: \"OUTPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n",
	"name: \"ident\"\nbackend: \"identity\"\nmax_batch_size: 0\n"
	"input [ { name: \"IN\" data_type: TYPE_STRING dims: [ -1, -1 ] } ]\n"
	"output [ { name: \"OUT\" data_type: TYPE_STRING dims: [ -1, -1 ] } ]\n",
};
static struct model_config cfgs[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[1024];

	if (!ready) {
		for (int i = 0; i < 2; i++)
			if (modelcfg_parse(CFGS[i], strlen(CFGS[i]), "fuzz", &cfgs[i], NULL, NULL, err,
				     sizeof(err)))
				abort();
		ready = 1;
	}
	Inference__ModelInferRequest *msg = inference__model_infer_request__unpack(NULL, size, data);
	if (!msg)
		return 0;
	for (int i = 0; i < 2; i++) {
		struct gs_infer inf;
		memset(&inf, 0, sizeof(inf));
		if (gs_infer_prepare(&inf, msg, &cfgs[i], err, sizeof(err)) == 0) {
			/* Touch every buffer the scheduler would read or write. */
			volatile uint8_t sink = 0;
			for (int k = 0; k < cfgs[i].ninputs + cfgs[i].noutputs; k++) {
				const struct sched_tensor *t = &inf.t[k];
				if (t->present && t->bytes)
					sink ^= ((const uint8_t *)t->data)[t->bytes - 1];
			}
			(void)sink;
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
