/* SPDX-License-Identifier: MIT */
/*
 * test_onnx_gpu.c - the ONNX executor on CUDA, against the CPU executor
 * and onnxruntime (run by run_onnx_gpu.sh on gen_models.py's output)
 *
 * A plain program, not a Criterion suite, so that it can exit 77 (skipped,
 * with gpu_init()'s reason) where the process finds no CUDA device: no
 * NVIDIA device node, a build without CUDA, or no device behind the
 * driver.  The executor's GPU half is reached as ferryd reaches it: the
 * module ox_cuda.so, through ox_cuda_load().  (The NUMA lookups and the
 * pinning that need no GPU are tests/gpu/test_gpu.c's.)
 *
 * With a device, for every "case" line of the MANIFEST:
 *   - one part of BATCH rows, with graphs on (first run captures, second
 *     replays) and off: GPU == onnxruntime within 1e-4 (relative above 1)
 *     and GPU == CPU within the same bound;
 *   - BATCH one-row parts in one run (the gather/scatter path);
 * then arena registration (a memfd mapping registered, inputs and outputs
 * in it, unregistered, a second unregister refused) and the NUMA node of
 * device 0.  Prints one line per failure and a summary; exit 1 on any.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ferry/errors.h>

#include "broker/backends/onnx/ox_cuda.h"
#include "broker/backends/onnx/ox_exec.h"
#include "broker/gpu/gpu.h"

#define TOL 1e-4

static int failures, checks;

#define FAIL(...)                                                              \
	do {                                                                   \
		failures++;                                                    \
		fprintf(stderr, "FAIL: " __VA_ARGS__);                         \
		fputc('\n', stderr);                                           \
	} while (0)

/* The executor's CUDA module, once loaded. */
static const struct ox_cuda_ops *cu;

static const char *dir;

static void *slurp(const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	void *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

static int compare(const char *what, const char *name, int out, const float *got,
		   const float *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]);

		if (isnan(got[i]) != isnan(want[i]) ||
		    (!isnan(want[i]) && d > TOL * fmax(1.0, fabs(want[i])))) {
			FAIL("%s: %s output %d [%zu]: got %.8g, want %.8g", name, what, out,
			     i, got[i], want[i]);
			return -1;
		}
	}
	return 0;
}

#define MAXIO 8

/* One manifest case on the GPU (@dev) and the CPU. */
static void run_case(char *line, int dev)
{
	char *w[64], err[1024] = "";
	int nw = 0, batch, nin, nout;
	struct ox_model *m = NULL;
	struct ox_ctx *cpu = NULL;
	struct ox_cuda_weights *gw = NULL;
	struct ox_cuda_ctx *g1 = NULL, *g0 = NULL;
	float *in[MAXIO] = { 0 }, *ref[MAXIO] = { 0 }, *cout[MAXIO] = { 0 };
	float *gout[MAXIO] = { 0 };
	size_t nel_in[MAXIO], nel_out[MAXIO], len;
	void *buf;
	int rc;

	for (char *t = strtok(line, " "); t && nw < 64; t = strtok(NULL, " "))
		w[nw++] = t;
	if (nw < 6)
		return;
	batch = atoi(w[3]);
	nin = atoi(w[4]);
	if (nin > MAXIO || nw < 6 + nin)
		return;
	nout = atoi(w[5 + nin]);
	if (nout > MAXIO || nw < 6 + nin + nout)
		return;
	buf = slurp(w[2], &len);
	if (!buf || ox_model_load(buf, len, &m, err, sizeof(err))) {
		FAIL("%s: load: %s", w[1], err);
		free(buf);
		return;
	}
	free(buf);
	for (int i = 0; i < nin; i++) {
		in[i] = slurp(w[5 + i], &len);
		nel_in[i] = len / sizeof(float);
	}
	for (int i = 0; i < nout; i++) {
		ref[i] = slurp(w[6 + nin + i], &len);
		nel_out[i] = len / sizeof(float);
		cout[i] = calloc(nel_out[i] + 1, sizeof(float));
		gout[i] = calloc(nel_out[i] + 1, sizeof(float));
	}
	checks++;
	if ((rc = ox_ctx_create(m, batch, &cpu)) ||
	    (rc = ox_run(cpu, batch, (const float *const *)in, cout))) {
		FAIL("%s: CPU run: %s", w[1], ferry_strerror(rc));
		goto out;
	}
	if ((rc = cu->weights_create(m, dev, &gw, err, sizeof(err))) ||
	    (rc = cu->ctx_create(m, gw, batch, 1, &g1, err, sizeof(err))) ||
	    (rc = cu->ctx_create(m, gw, batch, 0, &g0, err, sizeof(err)))) {
		FAIL("%s: GPU setup: %s", w[1], err);
		goto out;
	}
	/* graphs on: capture, then replay; graphs off */
	for (int pass = 0; pass < 3; pass++) {
		struct ox_cuda_part p = { batch, (const float *const *)in, gout };
		const char *what = pass == 0 ? "graph capture" : pass == 1 ? "graph replay" :
			"no graph";

		for (int i = 0; i < nout; i++)
			memset(gout[i], 0xff, nel_out[i] * sizeof(float));
		rc = cu->run(pass < 2 ? g1 : g0, 1, &p, NULL, NULL, err, sizeof(err));
		if (rc) {
			FAIL("%s: GPU run (%s): %s", w[1], what, err);
			goto out;
		}
		for (int i = 0; i < nout; i++)
			if (compare(what, w[1], i, gout[i], ref[i], nel_out[i]) ||
			    compare("GPU vs CPU", w[1], i, gout[i], cout[i], nel_out[i]))
				goto out;
	}
	if (cu->ctx_graphs(g1) != 1)
		FAIL("%s: %d CUDA graphs captured, expected 1", w[1], cu->ctx_graphs(g1));
	/* one-row parts, gathered by the copies (batched models only) */
	if (batch > 1) {
		struct ox_tensor_info ti;
		struct ox_cuda_part parts[16];
		const float *pin[16][MAXIO];
		float *pout[16][MAXIO];
		bool batched = true;

		for (int i = 0; i < nin; i++)
			if (ox_model_input(m, i, &ti) || !ti.batched)
				batched = false;
		for (int i = 0; i < nout; i++)
			if (ox_model_output(m, i, &ti) || !ti.batched)
				batched = false;
		if (!batched || batch > 16)
			goto out;
		for (int i = 0; i < nout; i++)
			memset(gout[i], 0xff, nel_out[i] * sizeof(float));
		for (int b = 0; b < batch; b++) {
			for (int i = 0; i < nin; i++)
				pin[b][i] = in[i] + nel_in[i] / (size_t)batch * (size_t)b;
			for (int i = 0; i < nout; i++)
				pout[b][i] = gout[i] + nel_out[i] / (size_t)batch * (size_t)b;
			parts[b] = (struct ox_cuda_part){ 1, pin[b], pout[b] };
		}
		checks++;
		rc = cu->run(g1, batch, parts, NULL, NULL, err, sizeof(err));
		if (rc) {
			FAIL("%s: GPU parts run: %s", w[1], err);
			goto out;
		}
		for (int i = 0; i < nout; i++)
			if (compare("one-row parts", w[1], i, gout[i], ref[i], nel_out[i]))
				goto out;
	}
out:
	if (g1)
		cu->ctx_free(g1);
	if (g0)
		cu->ctx_free(g0);
	if (gw)
		cu->weights_free(gw);
	ox_ctx_free(cpu);
	ox_model_free(m);
	for (int i = 0; i < MAXIO; i++) {
		free(in[i]);
		free(ref[i]);
		free(cout[i]);
		free(gout[i]);
	}
}

/* A client arena: a memfd mapping, registered, used for a run's I/O. */
static void check_arena(int dev)
{
	const size_t bytes = 64u << 20;
	char *line = NULL, err[512] = "";
	size_t cap = 0, len;
	int fd = memfd_create("ferry-test-arena", MFD_CLOEXEC);
	char *base;
	FILE *f;
	char path[4096];

	checks++;
	if (fd < 0 || ftruncate(fd, (off_t)bytes)) {
		FAIL("memfd");
		return;
	}
	base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED) {
		FAIL("mmap");
		return;
	}
	if (gpu_host_register(base, bytes)) {
		FAIL("gpu_host_register refused a memfd mapping");
		munmap(base, bytes);
		return;
	}
	/* the MLP at batch 7 with its input and output inside the arena */
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	f = fopen(path, "r");
	while (f && getline(&line, &cap, f) > 0) {
		struct ox_model *m = NULL;
		struct ox_cuda_weights *gw = NULL;
		struct ox_cuda_ctx *g = NULL;
		float *x, *ref;
		size_t xlen = 0, rlen = 0;
		void *buf;

		if (strncmp(line, "case mlp mlp.onnx 7 ", 20))
			continue;
		buf = slurp("mlp.onnx", &len);
		x = slurp("mlp.b7.in0.bin", &xlen);
		ref = slurp("mlp.b7.out0.bin", &rlen);
		if (!buf || !x || !ref || xlen < 7 * 16 * sizeof(float) ||
		    rlen < 7 * 5 * sizeof(float) ||
		    ox_model_load(buf, len, &m, err, sizeof(err)) ||
		    cu->weights_create(m, dev, &gw, err, sizeof(err)) ||
		    cu->ctx_create(m, gw, 7, 1, &g, err, sizeof(err))) {
			FAIL("arena: MLP setup: %s", err);
		} else {
			float *ax = (float *)(base + 4096), *ay = (float *)(base + (1u << 20));
			float *outs[1] = { ay };
			const float *ins[1] = { ax };
			struct ox_cuda_part p = { 7, ins, outs };

			memcpy(ax, x, 7 * 16 * sizeof(float));
			if (cu->run(g, 1, &p, NULL, NULL, err, sizeof(err)))
				FAIL("arena: run: %s", err);
			else
				compare("registered arena", "mlp", 0, ay, ref, 7 * 5);
		}
		if (g)
			cu->ctx_free(g);
		if (gw)
			cu->weights_free(gw);
		ox_model_free(m);
		free(buf);
		free(x);
		free(ref);
		break;
	}
	if (f)
		fclose(f);
	free(line);
	if (gpu_host_unregister(base))
		FAIL("gpu_host_unregister failed");
	if (gpu_host_unregister(base) == 0)
		FAIL("a second unregister must fail");
	munmap(base, bytes);
}

static int gpu_main(void)
{
	char path[4096], line[4096];
	FILE *f;
	int n = 0, node;

	dir = getenv("FERRY_ONNX_MODELS");
	if (!dir) {
		fprintf(stderr, "FERRY_ONNX_MODELS is not set (run run_onnx_gpu.sh)\n");
		return 99;
	}
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 99;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, "case ", 5) == 0) {
			run_case(line, 0);
			n++;
		}
	}
	fclose(f);
	check_arena(0);
	checks++;
	node = gpu_numa_node(0);
	if (node < 0 && node != FERRY_ENOENT)
		FAIL("gpu_numa_node(0): %s", ferry_strerror(node));
	printf("GPU 0: NUMA node %d%s\n", node, node == FERRY_ENOENT ? " (none reported)" : "");
	printf("%d manifest cases on the GPU\n", n);
	return 0;
}

int main(void)
{
	char why[512], err[640];
	int rc;

	if (gpu_init(true, why, sizeof(why)) < 1) {
		printf("SKIP: no CUDA device: %s\n", why);
		return 77;
	}
	printf("GPU: %s\n", why);
	if ((rc = ox_cuda_load(&cu, err, sizeof(err)))) {
		fprintf(stderr, "FAIL: the executor's CUDA module: %s\n", err);
		return 1;
	}
	rc = gpu_main();
	if (rc)
		return rc;
	printf("%d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
