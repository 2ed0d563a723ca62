/* SPDX-License-Identifier: MIT */
/*
 * onnx_bench.c - in-process throughput of the ONNX executor
 *
 *     onnx_bench MODEL.onnx [BATCH...]
 *
 * Runs each batch size for about half a second on one context (one
 * OpenBLAS thread, as the broker runs it) and prints items per second.  A
 * probe, not a benchmark: the real ones live in bench/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ferry/errors.h>

#include "broker/backends/onnx/ox_exec.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static const int def_batches[] = { 1, 16, 256 };
	char err[1024];
	struct ox_model *m;
	FILE *f;
	long len;
	void *buf;
	int rc, nb = argc > 2 ? argc - 2 : 3;

	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL.onnx [BATCH...]\n", argv[0]);
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc((size_t)len);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "%s: read failed\n", argv[1]);
		return 1;
	}
	fclose(f);
	rc = ox_model_load(buf, (size_t)len, &m, err, sizeof(err));
	free(buf);
	if (rc) {
		fprintf(stderr, "%s: %s: %s\n", argv[1], ferry_errname(rc), err);
		return 1;
	}
	for (int b = 0; b < nb; b++) {
		int batch = argc > 2 ? atoi(argv[2 + b]) : def_batches[b];
		int ni = ox_model_num_inputs(m), no = ox_model_num_outputs(m);
		const float *in[16];
		float *out[16];
		struct ox_ctx *ctx;
		double t0, t;
		long iters = 0;

		if (batch < 1 || ni > 16 || no > 16 ||
		    ox_ctx_create(m, batch, &ctx))
			return 1;
		for (int i = 0; i < ni; i++) {
			struct ox_tensor_info ti;
			float *x;
			size_t n;

			ox_model_input(m, i, &ti);
			n = ox_tensor_numel(&ti, batch);
			x = malloc(n * sizeof(float));
			for (size_t k = 0; k < n; k++)
				x[k] = (float)((k * 2654435761u) % 1000) / 1000.0f - 0.5f;
			in[i] = x;
		}
		for (int i = 0; i < no; i++) {
			struct ox_tensor_info ti;

			ox_model_output(m, i, &ti);
			out[i] = malloc(ox_tensor_numel(&ti, batch) * sizeof(float));
		}
		ox_run(ctx, batch, in, out);	/* warm up */
		t0 = now();
		do {
			ox_run(ctx, batch, in, out);
			iters++;
			t = now() - t0;
		} while (t < 0.5);
		printf("%s batch %4d: %10.0f items/s  (%8.1f us per call, arena %zu bytes)\n",
		       argv[1], batch, (double)iters * batch / t, 1e6 * t / (double)iters,
		       ox_ctx_arena_bytes(ctx));
		for (int i = 0; i < ni; i++)
			free((void *)in[i]);
		for (int i = 0; i < no; i++)
			free(out[i]);
		ox_ctx_free(ctx);
	}
	ox_model_free(m);
	return 0;
}
