/* SPDX-License-Identifier: MIT */
/*
 * test_cuda_ipc.c - CUDA IPC tensors through libferry and a real ferryd
 *
 * This process is the client; ferryd is a second process.  The client
 * shares cudaMalloc buffers (ferry_cuda_register), names parts of them as
 * the inputs and outputs of the MLP served by a KIND_GPU instance, and
 * checks the outputs, copied back from the device, against onnxruntime's
 * (gen_models.py, run through run_cuda_ipc.sh).  Refusals are checked too:
 * a model whose backend takes host memory only, a CPU instance, a pointer
 * inside an allocation, a size larger than the allocation (checked by
 * libferry and, for a handle given as is, by the broker), a bogus handle, a
 * region released or never registered, offsets outside a region.
 *
 * The suites "cuda_nogpu" run everywhere (the broker refuses handles with
 * a clear error and keeps serving); "cuda_gpu" skip where CUDA finds no
 * device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"   /* struct ferry_cuda_region, to forge one */
#include "tests/integ/harness.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define SEC 1000000000LL
#define TOL 1e-4

static struct th_broker B;

#define MLP_CFG(kind)                                                          \
	"name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"    \
	"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"         \
	"output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n"         \
	"instance_group [ { count: 1 kind: " kind " } ]\n"                    \
	"dynamic_batching { max_queue_delay_microseconds: 500 }\n"

static const char *models_dir(void)
{
	const char *d = getenv("FERRY_ONNX_MODELS");

	cr_assert_not_null(d, "FERRY_ONNX_MODELS is not set (run through run_cuda_ipc.sh)");
	return d;
}

static void add_mlp(const char *name, const char *cfg_fmt)
{
	char cfg[2048], cmd[3000];

	snprintf(cfg, sizeof(cfg), cfg_fmt, name);
	th_model(&B, name, cfg);
	snprintf(cmd, sizeof(cmd), "cp %s/mlp.onnx %s/%s/1/model.onnx", models_dir(), B.repo,
		 name);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void start_broker(void)
{
	const char *build = getenv("FERRY_TOP_BUILDDIR");
	static char plugdir[1024];

	cr_assert_not_null(build);
	snprintf(plugdir, sizeof(plugdir), "%s/tests/onnx/.libs", build);
	th_init(&B);
	th_examples(&B);
	add_mlp("mlp_gpu", MLP_CFG("KIND_GPU gpus: [ 0 ]"));
	add_mlp("mlp_cpu", MLP_CFG("KIND_CPU"));
	th_start(&B, "--log-level", "info", "--exit-on-error=false",
		 "--backend-directory", plugdir, NULL);
}

static void stop_broker(void)
{
	int st = th_stop(&B);

	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

static ferry_client *conn(void)
{
	ferry_client *c;
	int ret = ferry_connect(&c, B.sock, NULL);

	cr_assert_eq(ret, 0, "connect: %s", ferry_last_error());
	return c;
}

/* The session still serves host-memory requests correctly. */
static void identity_ok(ferry_client *c)
{
	ferry_model *m;
	ferry_request *r;
	int64_t dims[2] = { 1, 256 };
	float *x;
	const float *y;

	cr_assert_eq(ferry_model_get(c, "identity", FERRY_LATEST, &m), 0, "%s",
		     ferry_last_error());
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, dims, 2, (void **)&x), 0);
	for (int i = 0; i < 256; i++)
		x[i] = (float)i * 0.5f;
	cr_assert_eq(ferry_infer(c, r, 10 * SEC), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&y,
					  NULL), 0);
	for (int i = 0; i < 256; i++)
		cr_assert_eq(y[i], (float)i * 0.5f);
	ferry_request_free(r);
}

/* A request naming region `id` (forged: the broker never opened it). */
static int infer_forged(ferry_client *c, const char *model, uint32_t id, char *msg,
			size_t msglen)
{
	struct ferry_cuda_region fake = { .client = c, .id = id, .bytes = 1 << 20 };
	ferry_model *m;
	ferry_request *r;
	int64_t dims[2] = { 1, 16 };
	int ret;

	cr_assert_eq(ferry_model_get(c, model, FERRY_LATEST, &m), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, &fake, 0), 0,
		     "%s", ferry_last_error());
	ret = ferry_infer(c, r, 10 * SEC);
	snprintf(msg, msglen, "%s", ferry_last_error());
	ferry_request_free(r);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Everywhere                                                              */

TestSuite(cuda_nogpu, .init = start_broker, .fini = stop_broker, .timeout = 60);

Test(cuda_nogpu, bad_handles_refused_session_goes_on)
{
	ferry_client *c = conn();
	ferry_cuda_region *reg = (ferry_cuda_region *)1;
	unsigned char junk[64];
	int ret;

	memset(junk, 0x5a, sizeof(junk));
	/* libferry's own checks */
	cr_assert_eq(ferry_cuda_register_handle(c, junk, 10, NULL, 0, NULL, 4096, &reg),
		     FERRY_EINVAL);
	cr_assert_null(reg);
	cr_assert_eq(ferry_cuda_register_handle(c, junk, 64, NULL, 0, NULL, 0, &reg),
		     FERRY_EINVAL);
	/* the broker's: no CUDA there (UNAVAILABLE), or a handle CUDA cannot
	 * open (EINVAL) */
	ret = ferry_cuda_register_handle(c, junk, sizeof(junk), "0000:00:00.0", 0, NULL, 4096,
					 &reg);
	cr_assert(ret == FERRY_UNAVAILABLE || ret == FERRY_EINVAL || ret == FERRY_ENOENT,
		  "a bogus handle: %s: %s", ferry_errname(ret), ferry_last_error());
	cr_assert_null(reg);
	cr_assert(strstr(ferry_last_error(), "CUDA") || strstr(ferry_last_error(), "cuda"),
		  "message: %s", ferry_last_error());
	/* host memory is no device buffer */
	ret = ferry_cuda_register(c, junk, sizeof(junk), &reg);
	cr_assert(ret == FERRY_EINVAL || ret == FERRY_UNAVAILABLE || ret == FERRY_ENOTSUP,
		  "host memory as a CUDA buffer: %s: %s", ferry_errname(ret),
		  ferry_last_error());
	identity_ok(c);
	ferry_close(c);
}

Test(cuda_nogpu, unknown_region_refused)
{
	ferry_client *c = conn();
	char msg[256];

	cr_assert_eq(infer_forged(c, "mlp_cpu", 7, msg, sizeof(msg)), FERRY_ENOENT, "%s", msg);
	cr_assert(strstr(msg, "no CUDA region 7"), "message: %s", msg);
	/* libferry's own bounds, before anything is sent */
	{
		struct ferry_cuda_region fake = { .client = c, .id = 7, .bytes = 4096 };
		int64_t dims[2] = { 1, 16 };
		ferry_model *m;
		ferry_request *r;

		cr_assert_eq(ferry_model_get(c, "mlp_cpu", FERRY_LATEST, &m), 0);
		cr_assert_eq(ferry_request_new(m, &r), 0);
		cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, &fake,
						      4096 - 32), FERRY_EINVAL);
		cr_assert(strstr(ferry_last_error(), "outside the CUDA region"), "%s",
			  ferry_last_error());
		cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, &fake, 4),
			     FERRY_EINVAL);
		cr_assert_eq(ferry_request_output_cuda(r, "y", &fake, 4096, 64), FERRY_EINVAL);
		ferry_request_free(r);
	}
	identity_ok(c);
	ferry_close(c);
}

/* ---------------------------------------------------------------------- */
/* With a GPU                                                              */

/* Why the GPU tests cannot run here; NULL when they can. */
#ifdef HAVE_CUDA
static const char *no_gpu(void)
{
	int n = 0;

	return cudaGetDeviceCount(&n) == cudaSuccess && n > 0 ? NULL : "no CUDA device";
}
#else
static const char *no_gpu(void)
{
	return "built without CUDA (configure --with-cuda)";
}
#endif

static void gpu_init(void)
{
	const char *why = no_gpu();

	if (why)
		cr_skip_test("%s", why);
	start_broker();
}

TestSuite(cuda_gpu, .init = gpu_init, .fini = stop_broker, .timeout = 120);

#ifdef HAVE_CUDA
static float *load_floats(int batch, const char *kind, size_t want)
{
	char path[1024];
	FILE *f;
	float *p = malloc(want * sizeof(float));
	size_t n;

	snprintf(path, sizeof(path), "%s/mlp.b%d.%s0.bin", models_dir(), batch, kind);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	n = fread(p, sizeof(float), want, f);
	fclose(f);
	cr_assert_eq(n, want, "%s: %zu floats, expected %zu", path, n, want);
	return p;
}

static void check_close(const float *got, const float *want, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double tol = TOL * fmax(1.0, fabs(want[i]));

		cr_assert(fabs((double)got[i] - want[i]) <= tol,
			  "%s[%zu]: got %.8g, onnxruntime %.8g", what, i, got[i], want[i]);
	}
}

#define BUF (1u << 20)
#define OUT_AT (512u << 10)

/* One 7-row MLP request; cuda_in / cuda_out choose where x and y lie. */
static void mlp_7(ferry_client *c, const char *model, ferry_cuda_region *reg, char *dbuf,
		  bool cuda_in, bool cuda_out, size_t in_at, size_t out_at)
{
	float *in = load_floats(7, "in", 7 * 16), *ref = load_floats(7, "out", 7 * 5);
	float got[7 * 5];
	int64_t dims[2] = { 7, 16 };
	ferry_model *m;
	ferry_request *r;
	const void *y;
	size_t bytes;

	cr_assert_eq(ferry_model_get(c, model, FERRY_LATEST, &m), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_request_new(m, &r), 0);
	if (cuda_in) {
		cr_assert_eq(cudaMemcpy(dbuf + in_at, in, sizeof(float) * 7 * 16,
					cudaMemcpyHostToDevice), cudaSuccess);
		cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, reg,
						      in_at), 0, "%s", ferry_last_error());
	} else {
		float *x;

		cr_assert_eq(ferry_request_input(r, "x", FERRY_TYPE_FP32, dims, 2, (void **)&x), 0);
		memcpy(x, in, sizeof(float) * 7 * 16);
	}
	if (cuda_out) {
		cr_assert_eq(cudaMemset(dbuf + out_at, 0xff, sizeof(got)), cudaSuccess);
		cr_assert_eq(ferry_request_output_cuda(r, "y", reg, out_at, 0), 0, "%s",
			     ferry_last_error());
	}
	cr_assert_eq(ferry_infer(c, r, 20 * SEC), 0, "%s: %s", model, ferry_last_error());
	cr_assert_eq(ferry_request_output(r, "y", NULL, NULL, NULL, &y, &bytes), 0, "%s",
		     ferry_last_error());
	cr_assert_eq(bytes, sizeof(got));
	if (cuda_out) {
		cr_assert_eq(y, dbuf + out_at, "the output's address is the device buffer's");
		cr_assert_eq(cudaMemcpy(got, dbuf + out_at, sizeof(got), cudaMemcpyDeviceToHost),
			     cudaSuccess);
	} else {
		memcpy(got, y, sizeof(got));
	}
	check_close(got, ref, 7 * 5, model);
	ferry_request_free(r);
	free(in);
	free(ref);
}

Test(cuda_gpu, input_and_output_on_the_device)
{
	ferry_client *c = conn();
	ferry_cuda_region *reg;
	char *d;

	cr_assert_eq(cudaMalloc((void **)&d, BUF), cudaSuccess);
	cr_assert_eq(ferry_cuda_register(c, d, BUF, &reg), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_cuda_region_pointer(reg), d);
	mlp_7(c, "mlp_gpu", reg, d, true, true, 0, OUT_AT);
	mlp_7(c, "mlp_gpu", reg, d, true, false, 4096, 0);	/* device in, host out */
	mlp_7(c, "mlp_gpu", reg, d, false, true, 0, OUT_AT + 8);	/* host in, device out */
	/* many in flight from one region, each at its own offsets */
	{
		float *in = load_floats(1, "in", 16), *ref = load_floats(1, "out", 5);
		ferry_request *r[32];
		ferry_model *m;
		int64_t dims[2] = { 1, 16 };

		cr_assert_eq(ferry_model_get(c, "mlp_gpu", FERRY_LATEST, &m), 0);
		for (int k = 0; k < 32; k++) {
			cr_assert_eq(cudaMemcpy(d + (size_t)k * 256, in, 64, cudaMemcpyHostToDevice),
				     cudaSuccess);
			cr_assert_eq(ferry_request_new(m, &r[k]), 0);
			cr_assert_eq(ferry_request_input_cuda(r[k], "x", FERRY_TYPE_FP32, dims, 2,
							      reg, (size_t)k * 256), 0);
			cr_assert_eq(ferry_request_output_cuda(r[k], "y", reg,
							       OUT_AT + (size_t)k * 64, 0), 0);
			cr_assert_eq(ferry_infer_async(c, r[k], NULL, NULL), 0, "%s",
				     ferry_last_error());
		}
		for (int k = 0; k < 32; k++) {
			float got[5];

			cr_assert_eq(ferry_request_wait(r[k], 20 * SEC), 0, "%s", ferry_last_error());
			cr_assert_eq(cudaMemcpy(got, d + OUT_AT + (size_t)k * 64, sizeof(got),
						cudaMemcpyDeviceToHost), cudaSuccess);
			check_close(got, ref, 5, "async");
			ferry_request_free(r[k]);
		}
		free(in);
		free(ref);
	}
	cr_assert_eq(ferry_cuda_release(reg), 0, "%s", ferry_last_error());
	identity_ok(c);
	ferry_close(c);
	cudaFree(d);
}

Test(cuda_gpu, release_while_in_flight)
{
	ferry_client *c = conn();
	float *in = load_floats(7, "in", 7 * 16), *ref = load_floats(7, "out", 7 * 5);
	int64_t dims[2] = { 7, 16 };
	ferry_cuda_region *reg;
	ferry_request *r[8];
	ferry_model *m;
	uint32_t id;
	char *d, msg[256];

	cr_assert_eq(cudaMalloc((void **)&d, BUF), cudaSuccess);
	cr_assert_eq(cudaMemcpy(d, in, sizeof(float) * 7 * 16, cudaMemcpyHostToDevice),
		     cudaSuccess);
	cr_assert_eq(ferry_cuda_register(c, d, BUF, &reg), 0, "%s", ferry_last_error());
	id = reg->id;
	cr_assert_eq(ferry_model_get(c, "mlp_gpu", FERRY_LATEST, &m), 0);
	for (int k = 0; k < 8; k++) {
		cr_assert_eq(ferry_request_new(m, &r[k]), 0);
		cr_assert_eq(ferry_request_input_cuda(r[k], "x", FERRY_TYPE_FP32, dims, 2, reg, 0),
			     0);
		cr_assert_eq(ferry_infer_async(c, r[k], NULL, NULL), 0);
	}
	/* the broker closes its mapping only after these complete */
	cr_assert_eq(ferry_cuda_release(reg), 0, "%s", ferry_last_error());
	for (int k = 0; k < 8; k++) {
		const float *y;

		cr_assert_eq(ferry_request_wait(r[k], 20 * SEC), 0, "%s", ferry_last_error());
		cr_assert_eq(ferry_request_output(r[k], "y", NULL, NULL, NULL,
						  (const void **)&y, NULL), 0);
		check_close(y, ref, 7 * 5, "released region");
		ferry_request_free(r[k]);
	}
	/* and the id is gone for good */
	cr_assert_eq(infer_forged(c, "mlp_gpu", id, msg, sizeof(msg)), FERRY_ENOENT, "%s", msg);
	identity_ok(c);
	ferry_close(c);
	cudaFree(d);
	free(in);
	free(ref);
}

Test(cuda_gpu, refusals)
{
	ferry_client *c = conn();
	ferry_cuda_region *reg, *bad = NULL;
	cudaIpcMemHandle_t h;
	int64_t dims[2] = { 1, 16 }, idims[2] = { 1, 256 };
	ferry_model *m;
	ferry_request *r;
	char *d, bus[32];
	int ret;

	cr_assert_eq(cudaMalloc((void **)&d, BUF), cudaSuccess);
	/* libferry: inside an allocation, or larger than it */
	cr_assert_eq(ferry_cuda_register(c, d + 256, 4096, &bad), FERRY_EINVAL);
	cr_assert(strstr(ferry_last_error(), "inside its allocation"), "%s", ferry_last_error());
	cr_assert_eq(ferry_cuda_register(c, d, 2 * BUF, &bad), FERRY_EINVAL);
	cr_assert_null(bad);
	/* the broker: a handle given as is, with a size the allocation lacks */
	cr_assert_eq(cudaIpcGetMemHandle(&h, d), cudaSuccess);
	cr_assert_eq(cudaDeviceGetPCIBusId(bus, sizeof(bus), 0), cudaSuccess);
	ret = ferry_cuda_register_handle(c, &h, sizeof(h), bus, 0, d, 4 * (size_t)BUF, &bad);
	cr_assert_eq(ret, FERRY_EINVAL, "%s", ferry_last_error());
	cr_assert(strstr(ferry_last_error(), "declared"), "%s", ferry_last_error());
	/* the same handle with the right size works */
	cr_assert_eq(ferry_cuda_register_handle(c, &h, sizeof(h), bus, 0, d, BUF, &reg), 0,
		     "%s", ferry_last_error());
	/* libferry: outside the region */
	cr_assert_eq(ferry_model_get(c, "mlp_gpu", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, reg, BUF - 32),
		     FERRY_EINVAL);
	cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, reg, 4), FERRY_EINVAL);
	ferry_request_free(r);
	/* a backend that takes host memory only */
	cr_assert_eq(ferry_model_get(c, "identity", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input_cuda(r, "INPUT0", FERRY_TYPE_FP32, idims, 2, reg, 0), 0);
	cr_assert_eq(ferry_infer(c, r, 10 * SEC), FERRY_EINVAL);
	cr_assert(strstr(ferry_last_error(), "host memory only"), "%s", ferry_last_error());
	ferry_request_free(r);
	/* an instance on the CPU */
	cr_assert_eq(ferry_model_get(c, "mlp_cpu", FERRY_LATEST, &m), 0);
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input_cuda(r, "x", FERRY_TYPE_FP32, dims, 2, reg, 0), 0);
	cr_assert_eq(ferry_infer(c, r, 10 * SEC), FERRY_EINVAL);
	cr_assert(strstr(ferry_last_error(), "runs on the CPU"), "%s", ferry_last_error());
	ferry_request_free(r);
	cr_assert_eq(ferry_cuda_release(reg), 0);
	/*
	 * A freed allocation's handle.  CUDA may still open it (seen on the
	 * H100: the driver keeps small allocations' memory cached), so the
	 * broker cannot always tell; what must hold is that it answers
	 * either way and keeps serving, and that the mapping stays within
	 * what was declared.
	 */
	{
		char *d2;
		cudaIpcMemHandle_t h2;

		cr_assert_eq(cudaMalloc((void **)&d2, 4096), cudaSuccess);
		cr_assert_eq(cudaIpcGetMemHandle(&h2, d2), cudaSuccess);
		cr_assert_eq(cudaFree(d2), cudaSuccess);
		ret = ferry_cuda_register_handle(c, &h2, sizeof(h2), bus, 0, NULL, 4096, &bad);
		cr_assert(ret == 0 || ret == FERRY_EINVAL, "a freed allocation's handle: %s: %s",
			  ferry_errname(ret), ferry_last_error());
		if (ret == 0)
			cr_assert_eq(ferry_cuda_release(bad), 0, "%s", ferry_last_error());
	}
	identity_ok(c);
	ferry_close(c);
	cudaFree(d);
}
#else
/* Built without CUDA: the same tests, so that they are counted; gpu_init()
 * has skipped them with the reason. */
Test(cuda_gpu, input_and_output_on_the_device) {}
Test(cuda_gpu, release_while_in_flight) {}
Test(cuda_gpu, refusals) {}
#endif
