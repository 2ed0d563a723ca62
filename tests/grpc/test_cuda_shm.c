/* SPDX-License-Identifier: MIT */
/*
 * test_cuda_shm.c - Triton's CUDA shared-memory extension end to end
 *
 * As tritonclient.utils.cuda_shared_memory does it: this process allocates
 * device memory, registers its raw CUDA IPC handle with a real ferryd over
 * gRPC (CudaSharedMemoryRegister), and runs ModelInfer with the input and
 * the output named by shared_memory_region / _offset / _byte_size.  The
 * output is read back from the device.  Then the status, the checks
 * (outside the region, a bogus handle, a name taken twice, a region used
 * after unregistering) and unregistering.  Skips (Criterion) where CUDA
 * finds no device; built wherever gRPC is, so CI keeps it compiling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <grpc/status.h>

#include "bench/grpc_util.h"
#include "proto/kserve.pb-c.h"
#include "tests/integ/harness.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define METHOD(m) "/inference.GRPCInferenceService/" m
#define REGION (1u << 20)

static struct th_broker B;
static struct gu_chan *ch;

#ifdef HAVE_CUDA
/* One blocking unary call: the gRPC status code (detail: its message);
 * the response, when OK and resp is given, unpacked with rdesc. */
static int call(const char *method, const ProtobufCMessage *req,
		const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
		char *detail, size_t dlen)
{
	int ret = gu_call(ch, method, req, rdesc, resp, 20000000000LL);

	snprintf(detail, dlen, "%s", ret ? gu_error() : "");
	return gu_status();
}

/* Why the GPU test cannot run here; NULL when it can. */
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

static void start(void)
{
	char port[16], target[64];
	const char *why = no_gpu();

	if (why)
		cr_skip_test("%s", why);
	snprintf(port, sizeof(port), "%d", th_free_port());
	th_init(&B);
	th_examples(&B);
	th_start(&B, "--grpc-port", port, "--metrics-port", "0", NULL);
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	ch = gu_open(target);
	cr_assert_not_null(ch, "%s", gu_error());
}

static void stop(void)
{
	int st;

	gu_close(ch);
	st = th_stop(&B);
	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

TestSuite(cuda_shm, .init = start, .fini = stop, .timeout = 60);

#ifdef HAVE_CUDA
/* A ModelInfer of identity (FP32 [1, 256]) with input and output in
 * region `name` at the given offsets. */
static int infer_in_region(const char *name, uint64_t in_off, uint64_t out_off,
					char *detail, size_t dlen,
					Inference__ModelInferResponse **resp)
{
	Inference__InferParameter p[6];
	Inference__ModelInferRequest__InferInputTensor__ParametersEntry ie[3], *iep[3];
	Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry oe[3], *oep[3];
	Inference__ModelInferRequest__InferInputTensor in =
		INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *inp = &in;
	Inference__ModelInferRequest__InferRequestedOutputTensor out =
		INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT, *outp = &out;
	Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
	static const char *keys[3] = { "shared_memory_region", "shared_memory_offset",
				       "shared_memory_byte_size" };
	int64_t shape[2] = { 1, 256 };

	for (int k = 0; k < 6; k++) {
		Inference__InferParameter init = INFERENCE__INFER_PARAMETER__INIT;
		p[k] = init;
	}
	for (int side = 0; side < 2; side++) {
		Inference__InferParameter *q = &p[side * 3];

		q[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
		q[0].string_param = (char *)name;
		q[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		q[1].int64_param = (int64_t)(side ? out_off : in_off);
		q[2].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		q[2].int64_param = 1024;
	}
	for (int k = 0; k < 3; k++) {
		Inference__ModelInferRequest__InferInputTensor__ParametersEntry i0 =
			INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__PARAMETERS_ENTRY__INIT;
		Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry o0 =
			INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__PARAMETERS_ENTRY__INIT;
		ie[k] = i0;
		ie[k].key = (char *)keys[k];
		ie[k].value = &p[k];
		iep[k] = &ie[k];
		oe[k] = o0;
		oe[k].key = (char *)keys[k];
		oe[k].value = &p[3 + k];
		oep[k] = &oe[k];
	}
	in.name = "INPUT0";
	in.datatype = "FP32";
	in.n_shape = 2;
	in.shape = shape;
	in.n_parameters = 3;
	in.parameters = iep;
	out.name = "OUTPUT0";
	out.n_parameters = 3;
	out.parameters = oep;
	req.model_name = "identity";
	req.id = "cuda-shm-1";
	req.n_inputs = 1;
	req.inputs = &inp;
	req.n_outputs = 1;
	req.outputs = &outp;
	return call(METHOD("ModelInfer"), &req.base, &inference__model_infer_response__descriptor,
		    (ProtobufCMessage **)resp, detail, dlen);
}

static int reg(const char *name, const void *handle, size_t hlen, uint64_t bytes,
			    char *detail, size_t dlen)
{
	Inference__CudaSharedMemoryRegisterRequest r =
		INFERENCE__CUDA_SHARED_MEMORY_REGISTER_REQUEST__INIT;

	r.name = (char *)name;
	r.raw_handle.data = (uint8_t *)handle;
	r.raw_handle.len = hlen;
	r.device_id = 0;
	r.byte_size = bytes;
	return call(METHOD("CudaSharedMemoryRegister"), &r.base,
		    &inference__cuda_shared_memory_register_response__descriptor, NULL, detail,
		    dlen);
}

Test(cuda_shm, register_infer_status_unregister)
{
	cudaIpcMemHandle_t h;
	char detail[512], *d;
	float x[256], y[256];
	Inference__ModelInferResponse *resp;
	int st;

	for (int i = 0; i < 256; i++)
		x[i] = (float)i * 0.25f - 7.0f;
	cr_assert_eq(cudaMalloc((void **)&d, REGION), cudaSuccess);
	cr_assert_eq(cudaMemcpy(d + 8192, x, sizeof(x), cudaMemcpyHostToDevice), cudaSuccess);
	cr_assert_eq(cudaMemset(d + 65536, 0, sizeof(y)), cudaSuccess);
	cr_assert_eq(cudaIpcGetMemHandle(&h, d), cudaSuccess);

	st = reg("io", &h, sizeof(h), REGION, detail, sizeof(detail));
	cr_assert_eq(st, GRPC_STATUS_OK, "register: %d %s", st, detail);
	/* the same name again */
	st = reg("io", &h, sizeof(h), REGION, detail, sizeof(detail));
	cr_assert_neq(st, GRPC_STATUS_OK, "a name registered twice");

	/* status: the region, its device and size */
	{
		Inference__CudaSharedMemoryStatusRequest q =
			INFERENCE__CUDA_SHARED_MEMORY_STATUS_REQUEST__INIT;
		Inference__CudaSharedMemoryStatusResponse *sr;

		st = call(METHOD("CudaSharedMemoryStatus"), &q.base,
			  &inference__cuda_shared_memory_status_response__descriptor,
			  (ProtobufCMessage **)&sr, detail, sizeof(detail));
		cr_assert_eq(st, GRPC_STATUS_OK, "status: %s", detail);
		cr_assert_eq(sr->n_regions, 1);
		cr_assert_str_eq(sr->regions[0]->key, "io");
		cr_assert_eq(sr->regions[0]->value->byte_size, REGION);
		cr_assert_eq(sr->regions[0]->value->device_id, 0);
		protobuf_c_message_free_unpacked(&sr->base, NULL);
	}

	/* infer: in at 8192, out at 65536, both on the device */
	st = infer_in_region("io", 8192, 65536, detail, sizeof(detail), &resp);
	cr_assert_eq(st, GRPC_STATUS_OK, "infer: %d %s", st, detail);
	cr_assert_str_eq(resp->id, "cuda-shm-1");
	cr_assert_eq(resp->n_outputs, 1);
	for (size_t k = 0; k < resp->n_raw_output_contents; k++)
		cr_assert_eq(resp->raw_output_contents[k].len, 0,
			     "an output in shared memory travels in the response");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	cr_assert_eq(cudaMemcpy(y, d + 65536, sizeof(y), cudaMemcpyDeviceToHost), cudaSuccess);
	cr_assert_eq(memcmp(x, y, sizeof(x)), 0, "the output in device memory differs");

	/* every offset is checked against the region */
	st = infer_in_region("io", 8192, REGION - 512, detail, sizeof(detail), &resp);
	cr_assert_eq(st, GRPC_STATUS_INVALID_ARGUMENT, "output outside: %d %s", st, detail);
	st = infer_in_region("io", UINT64_MAX - 100, 0, detail, sizeof(detail), &resp);
	cr_assert_neq(st, GRPC_STATUS_OK, "input at a wrapping offset: %s", detail);

	/* a bogus handle */
	{
		unsigned char junk[sizeof(h)];

		memset(junk, 0xa5, sizeof(junk));
		st = reg("junk", junk, sizeof(junk), 4096, detail, sizeof(detail));
		cr_assert_neq(st, GRPC_STATUS_OK, "a bogus handle was accepted");
		st = reg("short", junk, 10, 4096, detail, sizeof(detail));
		cr_assert_eq(st, GRPC_STATUS_INVALID_ARGUMENT, "a 10-byte handle: %d %s", st,
			     detail);
	}

	/* unregister; then the region is unknown */
	{
		Inference__CudaSharedMemoryUnregisterRequest u =
			INFERENCE__CUDA_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
		Inference__CudaSharedMemoryStatusRequest q =
			INFERENCE__CUDA_SHARED_MEMORY_STATUS_REQUEST__INIT;

		u.name = "io";
		st = call(METHOD("CudaSharedMemoryUnregister"), &u.base,
			  &inference__cuda_shared_memory_unregister_response__descriptor, NULL,
			  detail, sizeof(detail));
		cr_assert_eq(st, GRPC_STATUS_OK, "unregister: %s", detail);
		q.name = "io";
		st = call(METHOD("CudaSharedMemoryStatus"), &q.base,
			  &inference__cuda_shared_memory_status_response__descriptor, NULL, detail,
			  sizeof(detail));
		cr_assert_eq(st, GRPC_STATUS_NOT_FOUND, "status after unregister: %d %s", st,
			     detail);
	}
	st = infer_in_region("io", 8192, 65536, detail, sizeof(detail), &resp);
	cr_assert_neq(st, GRPC_STATUS_OK, "a region used after unregistering");
	cudaFree(d);
}
#else
/* Built without CUDA: the same test, so that it is counted; start() has
 * skipped it with the reason. */
Test(cuda_shm, register_infer_status_unregister) {}
#endif
