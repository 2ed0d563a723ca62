/* SPDX-License-Identifier: MIT */
/*
 * grpc_echo.c - ferry-grpc-echo: gRPC's floor as a server of its own, for
 * floods from an outside client (bench/flood.sh): a bare unary server on
 * gRPC core with no ferry in it (gu_echo_serve_methods: ferryd's thread
 * and completion-queue layout, nothing decoded) that answers
 *
 *   ServerLive   a packed ServerLiveResponse {live: true}, as ferryd does
 *   ModelInfer   the packed ModelInferResponse ferryd gives for bench/
 *                flood.sh's identity request: model "identity" version
 *                "1", OUTPUT0 FP32 [1, 16], 64 bytes of raw output
 *
 * so a flood of each carries the same bytes both ways as against ferryd.
 *
 *   ferry-grpc-echo PORT [THREADS]     # THREADS: 4, ferryd's default
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench/grpc_util.h"
#include "proto/kserve.pb-c.h"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: ferry-grpc-echo PORT [THREADS]\n");
		return 2;
	}
	int port = atoi(argv[1]), threads = argc > 2 ? atoi(argv[2]) : 4;
	if (port <= 0 || port > 65535 || threads < 1 || threads > 64) {
		fprintf(stderr, "ferry-grpc-echo: PORT 1-65535, THREADS 1-64\n");
		return 2;
	}

	Inference__ServerLiveResponse live = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
	live.live = 1;
	uint8_t lbuf[16];
	size_t llen = inference__server_live_response__pack(&live, lbuf);

	float out[16];
	for (int i = 0; i < 16; i++)
		out[i] = (float)i;
	int64_t shape[2] = { 1, 16 };
	uint8_t *ibuf;
	size_t ilen;
	if (gu_infer_response_bytes("identity", "OUTPUT0", "FP32", shape, 2, out, sizeof(out),
				    &ibuf, &ilen)) {
		fprintf(stderr, "ferry-grpc-echo: %s\n", gu_error());
		return 1;
	}
	struct gu_echo_reply r[2] = {
		{ "ServerLive", lbuf, llen },
		{ "ModelInfer", ibuf, ilen },
	};
	gu_echo_serve_methods(port, threads, r, 2);
	fprintf(stderr, "ferry-grpc-echo: %s\n", gu_error());
	return 1;
}
