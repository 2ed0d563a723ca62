/* SPDX-License-Identifier: MIT */
/*
 * test_grpc_wire.c - ferryd's gRPC front end as the wire shows it, with
 * raw KServe calls (proto/rpc.c, the one unary-call helper):
 *   - every error status carries the ferry code in the trailing metadata
 *     "ferry-code" (decimal), the one the shared-memory path gives for the
 *     same mistake: a wrong dtype -2004, a wrong shape -2005;
 *   - system shared-memory regions: the region table's limit refuses the
 *     next registration clearly, and a status lists every region;
 *   - a second ferryd on a taken default gRPC port says so in ferry's own
 *     words only, without gRPC core's raw error log before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include <ferry/errors.h>

#include "proto/kserve.pb-c.h"
#include "proto/rpc.h"
#include "tests/integ/harness.h"

#define SEC 1000000000LL
/* The region table's limit (broker/frontends/grpc/gs_shm.h). */
#define MAX_REGIONS 4096

static struct th_broker B;
static grpc_channel *CH;
static bool MANY_FDS;           /* ferryd may open MAX_REGIONS descriptors */

static void start(void)
{
	char port[16], target[64];
	struct rlimit rl;

	/* Each registered system region keeps a descriptor open in ferryd,
	 * which inherits this limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= MAX_REGIONS + 256)) {
		rl.rlim_cur = rl.rlim_max;
		MANY_FDS = setrlimit(RLIMIT_NOFILE, &rl) == 0;
	}
	snprintf(port, sizeof(port), "%d", th_free_port());
	th_init(&B);
	th_examples(&B);
	th_start(&B, "--grpc-port", port, "--metrics-port", "0", "--allow-client-shm",
		 "--log-level", "warn", NULL);
	grpc_init();
	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	CH = rpc_channel(target, cr);
	grpc_channel_credentials_release(cr);
	cr_assert_not_null(CH);
	/* The control socket answers a moment before gRPC listens. */
	Inference__ServerLiveRequest live = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	struct rpc_result res;
	int ret = -1;
	for (int i = 0; i < 100 && ret; i++)
		if ((ret = rpc_unary(CH, RPC_KSERVE("ServerLive"), &live.base,
				     &inference__server_live_response__descriptor, NULL, SEC, &res)))
			usleep(50000);
	cr_assert_eq(ret, 0, "ServerLive: %s", res.msg);
}

static void stop(void)
{
	grpc_channel_destroy(CH);
	grpc_shutdown();
	int st = th_stop(&B);
	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

TestSuite(wire, .init = start, .fini = stop, .timeout = 120);

/* The outcome of one call as the wire carried it. */
struct outcome {
	struct rpc_result res;
	char trailer[32];               /* the ferry-code value; "" when none */
	ProtobufCMessage *resp;         /* when OK and rdesc was given */
};

/* One unary call; waits for it (the server answers every call the tests
 * make well within 20 s, or the call fails with DEADLINE_EXCEEDED). */
static void call(const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *rdesc, struct outcome *o)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	struct rpc_call k;

	memset(o, 0, sizeof(*o));
	int ret = rpc_call_start(&k, CH, cq, method, rpc_deadline(20 * SEC), rpc_pack(req), &k,
				 &o->res);
	cr_assert_eq(ret, 0, "%s: %s", method, o->res.msg);
	grpc_completion_queue_pluck(cq, &k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	for (size_t i = 0; i < k.md_trail.count; i++) {
		const grpc_metadata *md = &k.md_trail.metadata[i];
		if (grpc_slice_str_cmp(md->key, RPC_FERRY_CODE_KEY))
			continue;
		size_t n = GRPC_SLICE_LENGTH(md->value);
		cr_assert_lt(n, sizeof(o->trailer), "an overlong ferry-code");
		memcpy(o->trailer, GRPC_SLICE_START_PTR(md->value), n);
		o->trailer[n] = '\0';
	}
	rpc_call_end(&k, rdesc, rdesc ? &o->resp : NULL, &o->res);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
}

static void outcome_free(struct outcome *o)
{
	if (o->resp)
		protobuf_c_message_free_unpacked(o->resp, NULL);
	o->resp = NULL;
}

static void expect_code(const struct outcome *o, grpc_status_code status, int code,
			const char *what)
{
	char want[32];
	snprintf(want, sizeof(want), "%d", code);
	cr_expect_eq(o->res.status, status, "%s: status %d (%s)", what, (int)o->res.status,
		     o->res.msg);
	cr_expect_str_eq(o->trailer, want, "%s: ferry-code '%s', want %s (%s)", what, o->trailer,
			 want, o->res.msg);
}

/* A ModelInfer of "simple" (INT32 [batch, 16] twice) with INPUT0 given as
 * dtype / shape instead, its raw bytes matching what it declares. */
static void infer_simple(const char *dtype, int64_t batch, int64_t width, size_t esize,
			 struct outcome *o)
{
	Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest__InferInputTensor in[2], *inp[2];
	int64_t shape0[2] = { batch, width }, shape1[2] = { batch, 16 };
	ProtobufCBinaryData raw[2];
	static uint8_t zeros[64 * 16 * 8];

	for (int i = 0; i < 2; i++) {
		inference__model_infer_request__infer_input_tensor__init(&in[i]);
		inp[i] = &in[i];
	}
	in[0].name = "INPUT0";
	in[0].datatype = (char *)dtype;
	in[0].n_shape = 2;
	in[0].shape = shape0;
	in[1].name = "INPUT1";
	in[1].datatype = "INT32";
	in[1].n_shape = 2;
	in[1].shape = shape1;
	raw[0].data = zeros;
	raw[0].len = (size_t)(batch * width) * esize;
	raw[1].data = zeros;
	raw[1].len = (size_t)batch * 16 * 4;
	req.model_name = "simple";
	req.n_inputs = 2;
	req.inputs = inp;
	req.n_raw_input_contents = 2;
	req.raw_input_contents = raw;
	call(RPC_KSERVE("ModelInfer"), &req.base, &inference__model_infer_response__descriptor, o);
}

Test(wire, a_good_request_has_no_ferry_code)
{
	struct outcome o;
	infer_simple("INT32", 1, 16, 4, &o);
	cr_assert_eq(o.res.status, GRPC_STATUS_OK, "%s", o.res.msg);
	cr_assert_str_eq(o.trailer, "");
	cr_assert_not_null(o.resp);
	outcome_free(&o);
}

Test(wire, a_wrong_dtype_is_ferry_dtype)
{
	struct outcome o;
	/* Same element size as the model's INT32 ... */
	infer_simple("FP32", 1, 16, 4, &o);
	expect_code(&o, GRPC_STATUS_INVALID_ARGUMENT, FERRY_DTYPE, "FP32 for INT32");
	cr_expect(strstr(o.res.msg, "INPUT0"), "%s", o.res.msg);
	/* ... or another: the dtype is checked before the byte count. */
	infer_simple("FP64", 1, 16, 8, &o);
	expect_code(&o, GRPC_STATUS_INVALID_ARGUMENT, FERRY_DTYPE, "FP64 for INT32");
	infer_simple("NOT_A_TYPE", 1, 16, 4, &o);
	expect_code(&o, GRPC_STATUS_INVALID_ARGUMENT, FERRY_DTYPE, "an unknown datatype");
}

Test(wire, a_wrong_shape_is_ferry_shape)
{
	struct outcome o;
	infer_simple("INT32", 1, 15, 4, &o);
	expect_code(&o, GRPC_STATUS_INVALID_ARGUMENT, FERRY_SHAPE, "[1,15] for [-1,16]");
	cr_expect(strstr(o.res.msg, "INPUT0"), "%s", o.res.msg);
	infer_simple("INT32", 9, 16, 4, &o);
	expect_code(&o, GRPC_STATUS_INVALID_ARGUMENT, FERRY_SHAPE, "batch 9, max_batch_size 8");
}

Test(wire, every_error_status_carries_its_code)
{
	struct outcome o;
	Inference__ModelConfigRequest mc = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
	mc.name = "nope";
	call(RPC_KSERVE("ModelConfig"), &mc.base, &inference__model_config_response__descriptor, &o);
	expect_code(&o, GRPC_STATUS_NOT_FOUND, FERRY_ENOENT, "an unknown model");
	mc.name = "simple";
	mc.version = "x1";
	call(RPC_KSERVE("ModelConfig"), &mc.base, &inference__model_config_response__descriptor, &o);
	expect_code(&o, GRPC_STATUS_INVALID_ARGUMENT, FERRY_EINVAL, "a version that is no number");
	Inference__ServerLiveRequest live = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	call(RPC_KSERVE("NoSuchMethod"), &live.base, NULL, &o);
	expect_code(&o, GRPC_STATUS_UNIMPLEMENTED, FERRY_ENOTSUP, "an unknown method");
	call(RPC_KSERVE("ServerLive"), &live.base, &inference__server_live_response__descriptor, &o);
	cr_assert_eq(o.res.status, GRPC_STATUS_OK, "%s", o.res.msg);
	cr_assert_str_eq(o.trailer, "");
	outcome_free(&o);
}

/* ---------------------------------------------------------------------- */
/* System shared memory: the limit and the status list                     */

static void shm_register(const char *name, const char *key, struct outcome *o)
{
	Inference__SystemSharedMemoryRegisterRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_REQUEST__INIT;
	q.name = (char *)name;
	q.key = (char *)key;
	q.byte_size = 64;
	call(RPC_KSERVE("SystemSharedMemoryRegister"), &q.base,
	     &inference__system_shared_memory_register_response__descriptor, o);
	outcome_free(o);
}

static size_t shm_status_count(void)
{
	Inference__SystemSharedMemoryStatusRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_STATUS_REQUEST__INIT;
	struct outcome o;
	call(RPC_KSERVE("SystemSharedMemoryStatus"), &q.base,
	     &inference__system_shared_memory_status_response__descriptor, &o);
	cr_assert_eq(o.res.status, GRPC_STATUS_OK, "%s", o.res.msg);
	size_t n = ((Inference__SystemSharedMemoryStatusResponse *)o.resp)->n_regions;
	outcome_free(&o);
	return n;
}

Test(wire, the_region_limit_refuses_clearly_and_status_lists_every_region)
{
	char key[64], name[32];
	struct outcome o;

	if (!MANY_FDS)
		cr_skip_test("RLIMIT_NOFILE's hard limit is below %d descriptors", MAX_REGIONS + 256);
	snprintf(key, sizeof(key), "/ferry_test_wire_%d", (int)getpid());
	int fd = shm_open(key, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "shm_open: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, 64), 0);
	close(fd);
	for (int i = 0; i < MAX_REGIONS; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		shm_register(name, key, &o);
		cr_assert_eq(o.res.status, GRPC_STATUS_OK, "region %d: %s", i, o.res.msg);
	}
	shm_register("one_more", key, &o);
	expect_code(&o, GRPC_STATUS_RESOURCE_EXHAUSTED, FERRY_ENOSPC, "one region too many");
	cr_expect(strstr(o.res.msg, "one_more") && strstr(o.res.msg, "unregister"), "%s",
		  o.res.msg);
	/* Every region, more than the 256 a status list once stopped at. */
	cr_assert_eq(shm_status_count(), MAX_REGIONS);

	Inference__SystemSharedMemoryUnregisterRequest u =
		INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
	call(RPC_KSERVE("SystemSharedMemoryUnregister"), &u.base,
	     &inference__system_shared_memory_unregister_response__descriptor, &o);
	outcome_free(&o);
	shm_unlink(key);
	cr_assert_eq(o.res.status, GRPC_STATUS_OK, "%s", o.res.msg);
	cr_assert_eq(shm_status_count(), 0);
}

/* ---------------------------------------------------------------------- */
/* A second ferryd                                                         */

/* Is this line one of ferry's ("2026-12-03T08:37:37.859792Z ferryd[12089]
 * info  ...")?  gRPC core's own look like "E1203 08:37:37.862952801 ...". */
static bool ferry_line(const char *l)
{
	return strlen(l) > 28 && l[4] == '-' && l[10] == 'T' && strstr(l, " ferryd[");
}

Test(wire, a_second_ferryd_on_a_taken_port_prints_only_ferrys_warning)
{
	struct th_broker b2;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(8001) };
	char line[4096];
	bool warned = false;

	/* ferryd's default gRPC port, taken: by this socket, or by whatever
	 * holds it already (then our bind fails, which is as good). */
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		cr_assert_eq(listen(s, 1), 0);
	else
		cr_assert_eq(errno, EADDRINUSE, "bind 127.0.0.1:8001: %s", strerror(errno));
	th_init(&b2);
	th_examples(&b2);
	th_start(&b2, "--metrics-port", "0", NULL);
	/* The warning comes once gRPC's bind failed, after the socket. */
	for (int i = 0; i < 100 && !warned; i++) {
		FILE *f = fopen(b2.log, "r");
		cr_assert_not_null(f);
		while (fgets(line, sizeof(line), f)) {
			cr_expect(ferry_line(line), "not a line of ferry's log: %s", line);
			if (strstr(line, "gRPC: the default port 8001 is not available")) {
				warned = true;
				break;
			}
		}
		fclose(f);
		if (!warned)
			usleep(50000);
	}
	close(s);
	cr_expect(warned, "no warning about the taken port in %s", b2.log);
	int st = th_stop(&b2);
	th_cleanup(&b2);
	cr_expect_eq(st, 0, "the second ferryd's exit status %d", st);
}
