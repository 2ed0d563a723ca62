/* SPDX-License-Identifier: MIT */
/*
 * test_ort_gpu.c - the onnxruntime backend on a GPU: KIND_GPU instances
 * with the CUDA execution provider and with the TensorRT execution
 * accelerator, fed from the registered (pinned) arena and from CUDA IPC
 * regions, checked against onnxruntime's CPU outputs (gen_ort_models.py):
 *
 *     |got - want| <= 1e-4 + 1e-3 * |want|   (cuDNN and TensorRT reorder sums)
 *
 * Needs onnxruntime-gpu: $FERRY_ORT_GPU_LIBRARY names its libonnxruntime.so
 * (ferryd gets it as --backend-config=onnxruntime,library=...).  Each test
 * skips, saying why, without that variable, without a CUDA device seen by
 * ferryd, or where the library has no CUDA (or TensorRT) provider; the
 * CUDA IPC test also needs a CUDA build (configure --with-cuda).  Run by
 * run_ort_tests.sh (FERRY_ORT_PROGRAM=test_ort_gpu) and scripts/gpu-check.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "tests/integ/harness.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define SEC 1000000000LL
#define RTOL 1e-3
#define ATOL 1e-4

static struct th_broker B;
static bool started;

static const char *dir(void)
{
	const char *d = getenv("FERRY_ORT_MODELS");

	cr_assert_not_null(d, "FERRY_ORT_MODELS is not set (run through run_ort_tests.sh)");
	return d;
}

static void *tensor_file(const char *name, int batch, const char *tensor, size_t *len)
{
	char path[1200];

	snprintf(path, sizeof(path), "%.900s/%s.b%d.%s.bin", dir(), name, batch, tensor);
	return th_slurp(path, len);
}

#define CNN_IO "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3, 16, 16 ] } ]\n" \
	       "output [ { name: \"logits\" data_type: TYPE_FP32 dims: [ 10 ] } ]\n"

static const struct {
	const char *name, *file, *config;
} REPO[] = {
	{ "cnn_cuda", "cnn", "backend: \"onnxruntime\"\nmax_batch_size: 64\n" CNN_IO
	  "instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]\n"
	  "dynamic_batching { max_queue_delay_microseconds: 500 }\n" },
	{ "cnn_trt", "cnn", "backend: \"onnxruntime\"\nmax_batch_size: 64\n" CNN_IO
	  "instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]\n"
	  "optimization { execution_accelerators { gpu_execution_accelerator: [ {\n"
	  "  name: \"tensorrt\" parameters { key: \"precision_mode\" value: \"FP32\" }\n"
	  "  parameters { key: \"max_workspace_size_bytes\" value: \"1073741824\" } } ] } }\n" },
	{ "transformer_cuda", "transformer", "max_batch_size: 8\n"
	  "instance_group [ { count: 1 kind: KIND_GPU } ]\n" },
};

/* Start ferryd with the GPU library, or skip saying why. */
static void need_gpu(void)
{
	const char *lib = getenv("FERRY_ORT_GPU_LIBRARY");
	char cfg[1200], cmd[3000], path[1200];
	ferry_client *c;
	ferry_server_status *st;

	if (!lib || !*lib)
		cr_skip_test("FERRY_ORT_GPU_LIBRARY does not name onnxruntime-gpu's "
			     "libonnxruntime.so");
	if (!started) {
		th_init(&B);
		for (size_t i = 0; i < sizeof(REPO) / sizeof(REPO[0]); i++) {
			snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s/1 && cp %s/%s.onnx %s/%s/1/model.onnx",
				 B.repo, REPO[i].name, dir(), REPO[i].file, B.repo, REPO[i].name);
			cr_assert_eq(system(cmd), 0, "%s", cmd);
			snprintf(path, sizeof(path), "%s/%s/config.pbtxt", B.repo, REPO[i].name);
			FILE *f = fopen(path, "w");
			cr_assert_not_null(f);
			fputs(REPO[i].config, f);
			fclose(f);
		}
		snprintf(cfg, sizeof(cfg), "--backend-config=onnxruntime,library=%s", lib);
		th_start(&B, "--log-level", "info", "--exit-on-error=false", "--grpc-port", "0",
			 "--metrics-port", "0", cfg, NULL);
		started = true;
	}
	cr_assert_eq(ferry_connect(&c, B.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_server_status_get(c, &st), 0, "%s", ferry_last_error());
	int gpus = st->gpus;
	ferry_server_status_free(st);
	ferry_close(c);
	if (gpus <= 0)
		cr_skip_test("ferryd sees no CUDA device");
}

static void stop(void)
{
	if (started) {
		int st = th_stop(&B);
		th_cleanup(&B);
		cr_expect_eq(st, 0, "ferryd exit status %d", st);
	}
}

TestSuite(ort_gpu, .fini = stop, .timeout = 300);

/* The model, or a skip when the library lacks the provider it needs. */
static ferry_model *gpu_model(ferry_client *c, const char *name)
{
	ferry_model *m;

	if (ferry_model_get(c, name, FERRY_LATEST, &m) == 0)
		return m;
	if (strstr(ferry_last_error(), "execution provider") ||
	    strstr(ferry_last_error(), "TensorRT") || strstr(ferry_last_error(), "CUDA"))
		cr_skip_test("%s: %s", name, ferry_last_error());
	cr_assert_fail("%s: %s", name, ferry_last_error());
	return NULL;
}

static void expect_close(const float *got, const float *want, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		cr_assert(fabs((double)got[i] - want[i]) <= ATOL + RTOL * fabs(want[i]),
			  "%s[%zu]: GPU %.8g, onnxruntime on the CPU %.8g", what, i, got[i],
			  want[i]);
}

/* Host inputs from the arena (registered with CUDA where ferryd has a
 * GPU): batch 1, 7 and 64. */
static void from_arena(const char *name, const char *file, const char *in, const char *out,
		       const int64_t *row, int nd)
{
	need_gpu();
	ferry_client *c;
	cr_assert_eq(ferry_connect(&c, B.sock, NULL), 0);
	ferry_model *m = gpu_model(c, name);
	for (int b = 1; b <= 64; b++) {
		if ((b != 1 && b != 7 && b != 64) || b > ferry_model_max_batch_size(m))
			continue;
		size_t ilen, olen, bytes;
		void *x = tensor_file(file, b, in, &ilen), *dst;
		float *want = tensor_file(file, b, out, &olen);
		const float *got;
		int64_t d[8] = { b };
		ferry_request *r;
		memcpy(d + 1, row, (size_t)nd * sizeof(int64_t));
		cr_assert_eq(ferry_request_new(m, &r), 0);
		cr_assert_eq(ferry_request_input_bytes(r, in, FERRY_TYPE_FP32, d, nd + 1, ilen, &dst),
			     0, "%s", ferry_last_error());
		memcpy(dst, x, ilen);
		cr_assert_eq(ferry_infer(c, r, 120 * SEC), 0, "%s batch %d: %s", name, b,
			     ferry_last_error());
		cr_assert_eq(ferry_request_output(r, out, NULL, NULL, NULL, (const void **)&got,
						  &bytes), 0);
		cr_assert_eq(bytes, olen);
		expect_close(got, want, olen / sizeof(float), name);
		ferry_request_free(r);
		free(x);
		free(want);
	}
	ferry_close(c);
}

static const int64_t CNN_ROW[] = { 3, 16, 16 }, TR_ROW[] = { 8, 32 };

Test(ort_gpu, cuda_ep_from_the_registered_arena)
{
	from_arena("cnn_cuda", "cnn", "x", "logits", CNN_ROW, 3);
}

Test(ort_gpu, tensorrt_accelerator_from_the_registered_arena)
{
	from_arena("cnn_trt", "cnn", "x", "logits", CNN_ROW, 3);
}

Test(ort_gpu, transformer_autocompleted_on_the_gpu)
{
	from_arena("transformer_cuda", "transformer", "x", "y", TR_ROW, 2);
}

/* Inputs and outputs in a CUDA IPC region of this process: the CUDA
 * execution provider reads and writes them where they lie. */
Test(ort_gpu, cuda_ipc_inputs_and_outputs)
{
	need_gpu();
#ifndef HAVE_CUDA
	cr_skip_test("this build has no CUDA (configure --with-cuda) to make device buffers");
#else
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0)
		cr_skip_test("this process sees no CUDA device");
	ferry_client *c;
	cr_assert_eq(ferry_connect(&c, B.sock, NULL), 0);
	ferry_model *m = gpu_model(c, "cnn_cuda");
	size_t ilen, olen;
	void *x = tensor_file("cnn", 7, "x", &ilen);
	float *want = tensor_file("cnn", 7, "logits", &olen), got[7 * 10];
	const size_t out_at = 1 << 20;
	char *d;
	ferry_cuda_region *reg;
	ferry_request *r;
	int64_t dims[4] = { 7, 3, 16, 16 };

	cr_assert_eq(cudaMalloc((void **)&d, 2 << 20), cudaSuccess);
	cr_assert_eq(cudaMemcpy(d, x, ilen, cudaMemcpyHostToDevice), cudaSuccess);
	cr_assert_eq(ferry_cuda_register(c, d, 2 << 20, &reg), 0, "%s", ferry_last_error());
	for (int dev_out = 0; dev_out < 2; dev_out++) {
		const void *y;
		cr_assert_eq(ferry_request_new(m, &r), 0);
		cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 4, reg, 0), 0,
			     "%s", ferry_last_error());
		if (dev_out)
			cr_assert_eq(ferry_request_output_cuda(r, "logits", reg, out_at, 0), 0);
		cr_assert_eq(ferry_infer(c, r, 120 * SEC), 0, "%s", ferry_last_error());
		cr_assert_eq(ferry_request_output(r, "logits", NULL, NULL, NULL, &y, NULL), 0);
		if (dev_out)
			cr_assert_eq(cudaMemcpy(got, d + out_at, olen, cudaMemcpyDeviceToHost),
				     cudaSuccess);
		else
			memcpy(got, y, olen);
		expect_close(got, want, olen / sizeof(float), dev_out ? "device out" : "host out");
		ferry_request_free(r);
	}
	cr_assert_eq(ferry_cuda_release(reg), 0, "%s", ferry_last_error());
	ferry_close(c);
	cudaFree(d);
	free(x);
	free(want);
#endif
}
