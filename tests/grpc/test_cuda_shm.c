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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "proto/kserve.pb-c.h"
#include "tests/integ/harness.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define METHOD(m) "/inference.GRPCInferenceService/" m
#define REGION (1u << 20)

static struct th_broker B;
static grpc_channel *ch;

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

#ifdef HAVE_CUDA
/*
 * One blocking unary call: the gRPC status code, the response unpacked
 * with rdesc into *resp when it is OK, the status message in detail.
 */
static grpc_status_code call(const char *method, const ProtobufCMessage *req,
			     const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
			     char *detail, size_t dlen)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	grpc_slice s, details = grpc_empty_slice();
	grpc_byte_buffer *send, *recv = NULL;
	grpc_metadata_array md0, md1;
	grpc_status_code st = GRPC_STATUS_UNKNOWN;
	grpc_op ops[6];
	grpc_call *c;

	cr_assert_not_null(buf);
	protobuf_c_message_pack(req, buf);
	s = grpc_slice_new(buf, len, free);
	send = grpc_raw_byte_buffer_create(&s, 1);
	grpc_metadata_array_init(&md0);
	grpc_metadata_array_init(&md1);
	c = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
				     grpc_slice_from_static_string(method), NULL,
				     gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						  gpr_time_from_seconds(20, GPR_TIMESPAN)), NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md0;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &md1;
	ops[5].data.recv_status_on_client.status = &st;
	ops[5].data.recv_status_on_client.status_details = &details;
	cr_assert_eq(grpc_call_start_batch(c, ops, 6, c, NULL), GRPC_CALL_OK);
	grpc_completion_queue_pluck(cq, c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (detail) {
		char *d = grpc_slice_to_c_string(details);
		snprintf(detail, dlen, "%s", d);
		gpr_free(d);
	}
	if (resp)
		*resp = NULL;
	if (st == GRPC_STATUS_OK && resp && recv) {
		grpc_byte_buffer_reader rd;

		cr_assert(grpc_byte_buffer_reader_init(&rd, recv));
		grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		*resp = protobuf_c_message_unpack(rdesc, NULL, GRPC_SLICE_LENGTH(all),
						  GRPC_SLICE_START_PTR(all));
		grpc_slice_unref(all);
		cr_assert_not_null(*resp, "malformed %s", rdesc->name);
	}
	grpc_call_unref(c);
	grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_slice_unref(s);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&md0);
	grpc_metadata_array_destroy(&md1);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return st;
}

static int have_gpu(void)
{
	int n = 0;

	return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
#else
static int have_gpu(void)
{
	return 0;
}
#endif

static void start(void)
{
	char port[16], target[64];

	if (!have_gpu())
		cr_skip_test("no CUDA device");
	snprintf(port, sizeof(port), "%d", free_port());
	th_init(&B);
	th_examples(&B);
	th_start(&B, "--grpc-port", port, "--metrics-port", "0", NULL);
	grpc_init();
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	grpc_channel_credentials *cred = grpc_insecure_credentials_create();
	ch = grpc_channel_create(target, cred, NULL);
	grpc_channel_credentials_release(cred);
}

static void stop(void)
{
	int st;

	grpc_channel_destroy(ch);
	grpc_shutdown();
	st = th_stop(&B);
	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

TestSuite(cuda_shm, .init = start, .fini = stop, .timeout = 60);

#ifdef HAVE_CUDA
/* A ModelInfer of identity (FP32 [1, 256]) with input and output in
 * region `name` at the given offsets. */
static grpc_status_code infer_in_region(const char *name, uint64_t in_off, uint64_t out_off,
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

static grpc_status_code reg(const char *name, const void *handle, size_t hlen, uint64_t bytes,
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
	grpc_status_code st;

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
#endif
