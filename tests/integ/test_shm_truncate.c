/* SPDX-License-Identifier: MIT */
/*
 * test_shm_truncate.c - clients that shrink their own shared memory under
 * the broker (issue 19).
 *
 * Triton's system shared memory lets a gRPC or HTTP client register a
 * POSIX shm object; ferryd maps it and cannot seal it.  Here clients infer
 * "simple" (add_sub) with both inputs and both outputs in their regions,
 * over gRPC and over HTTP, while a truncator shrinks each object (to
 * nothing, or to its first page, where the inputs live) and grows it back
 * in a loop.  Every request either succeeds with the right sums (checked
 * whenever no truncation overlapped it) or fails with INVALID_ARGUMENT /
 * 400 and a message saying the object was truncated; the client then
 * registers its region again and goes on.  ferryd lives through all of it
 * (without the SIGBUS guard it died at the first fault) and a neighbour
 * sending its tensors in the messages is served right throughout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include <ferry/errors.h>

#include "proto/kserve.pb-c.h"
#include "proto/rpc.h"
#include "shm/fshm.h"
#include "tests/integ/harness.h"

#define SEC 1000000000LL
#define PAGE 4096
#define OBJ_BYTES (2 * PAGE)
/* Where each tensor lies in a client's object: inputs in the first page,
 * outputs in the second, so that shrinking to one page hits outputs only. */
#define OFF_IN0 0
#define OFF_IN1 64
#define OFF_OUT0 PAGE
#define OFF_OUT1 (PAGE + 64)

enum { NCLIENT = 4 };                   /* 0, 1: gRPC; 2, 3: HTTP */

static struct th_broker B;
static grpc_channel *CH;
static int HTTP_PORT;

struct client {
	int idx;
	bool http;
	char key[64], name[32];
	int fd;                          /* the test's own descriptor and map */
	uint8_t *map;
	_Atomic uint64_t epoch;          /* odd while the truncator has it shrunk */
	/* outcomes */
	int verified, unverified, truncated, other;
	char other_msg[1200];
};

static struct client C[NCLIENT];
static _Atomic bool stop;

static void start(void)
{
	char gport[16], hport[16], target[64];

	snprintf(gport, sizeof(gport), "%d", th_free_port());
	HTTP_PORT = th_free_port();
	snprintf(hport, sizeof(hport), "%d", HTTP_PORT);
	th_init(&B);
	th_examples(&B);
	th_start(&B, "--grpc-port", gport, "--http-port", hport, "--metrics-port", "0",
		 "--allow-client-shm", "--log-level", "error", NULL);
	grpc_init();
	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	snprintf(target, sizeof(target), "127.0.0.1:%s", gport);
	CH = rpc_channel(target, cr);
	grpc_channel_credentials_release(cr);
	cr_assert_not_null(CH);
	Inference__ServerLiveRequest live = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	struct rpc_result res;
	int ret = -1;
	for (int i = 0; i < 100 && ret; i++)
		if ((ret = rpc_unary(CH, RPC_KSERVE("ServerLive"), &live.base,
				     &inference__server_live_response__descriptor, NULL, SEC, &res)))
			usleep(50000);
	cr_assert_eq(ret, 0, "ServerLive: %s", res.msg);
}

static void stop_broker(void)
{
	for (int i = 0; i < NCLIENT; i++) {
		if (C[i].map && C[i].map != MAP_FAILED)
			munmap(C[i].map, OBJ_BYTES);
		if (C[i].fd > 0)
			close(C[i].fd);
		if (C[i].key[0])
			shm_unlink(C[i].key);
	}
	grpc_channel_destroy(CH);
	grpc_shutdown();
	cr_expect(th_alive(B.pid), "ferryd is alive");
	int st = th_stop(&B);
	th_cleanup(&B);
	cr_expect_eq(st, 0, "ferryd exit status %d", st);
}

TestSuite(truncate, .init = start, .fini = stop_broker, .timeout = 180);

/* ---------------------------------------------------------------------- */
/* HTTP/1.1, just enough: one keep-alive connection per client           */

static int http_connect(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)HTTP_PORT) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(fd, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return fd;
		}
		close(fd);
		usleep(50000);
	}
	cr_assert_fail("cannot connect to the HTTP port %d", HTTP_PORT);
	return -1;
}

/* POST body to path on *fd (reconnecting when the server closed it);
 * the status code, and the body (NUL-terminated) in out. */
static int http_post(int *fd, const char *path, const char *body, char *out, size_t cap)
{
	char req[4096];
	for (int attempt = 0; attempt < 2; attempt++) {
		if (*fd < 0)
			*fd = http_connect();
		int n = snprintf(req, sizeof(req),
				 "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
				 "application/json\r\nContent-Length: %zu\r\n\r\n%s",
				 path, strlen(body), body);
		cr_assert_lt((size_t)n, sizeof(req));
		if (send(*fd, req, (size_t)n, MSG_NOSIGNAL) != n)
			goto again;
		/* Headers, then Content-Length bytes. */
		char buf[16384];
		size_t have = 0;
		char *eoh = NULL;
		while (!eoh) {
			ssize_t r = recv(*fd, buf + have, sizeof(buf) - 1 - have, 0);
			if (r <= 0)
				goto again;
			have += (size_t)r;
			buf[have] = 0;
			eoh = strstr(buf, "\r\n\r\n");
			cr_assert(eoh || have < sizeof(buf) - 1, "headers too long");
		}
		int status = 0;
		cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1, "%s", buf);
		const char *cl = strcasestr(buf, "content-length:");
		cr_assert_not_null(cl, "%s", buf);
		size_t len = strtoul(cl + 15, NULL, 10), hdr = (size_t)(eoh + 4 - buf);
		cr_assert_lt(hdr + len, sizeof(buf), "response too long");
		while (have < hdr + len) {
			ssize_t r = recv(*fd, buf + have, sizeof(buf) - 1 - have, 0);
			if (r <= 0)
				goto again;
			have += (size_t)r;
		}
		size_t m = len < cap - 1 ? len : cap - 1;
		memcpy(out, buf + hdr, m);
		out[m] = 0;
		return status;
again:
		close(*fd);
		*fd = -1;
	}
	cr_assert_fail("HTTP %s: the connection keeps closing", path);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Regions                                                                 */

/* (Re)register the client's region over its own transport; false while
 * the truncator has the object too small for it (the broker refuses). */
static bool region_register(struct client *c, int *hfd)
{
	char msg[1024], path[128], body[256];
	if (c->http) {
		snprintf(path, sizeof(path), "/v2/systemsharedmemory/region/%s/unregister", c->name);
		http_post(hfd, path, "", msg, sizeof(msg));
		snprintf(path, sizeof(path), "/v2/systemsharedmemory/region/%s/register", c->name);
		snprintf(body, sizeof(body), "{\"key\":\"%s\",\"offset\":0,\"byte_size\":%d}", c->key,
			 OBJ_BYTES);
		return http_post(hfd, path, body, msg, sizeof(msg)) == 200;
	}
	struct rpc_result res;
	Inference__SystemSharedMemoryUnregisterRequest u =
		INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
	u.name = c->name;
	rpc_unary(CH, RPC_KSERVE("SystemSharedMemoryUnregister"), &u.base,
		  &inference__system_shared_memory_unregister_response__descriptor, NULL, 10 * SEC,
		  &res);
	Inference__SystemSharedMemoryRegisterRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_REQUEST__INIT;
	q.name = c->name;
	q.key = c->key;
	q.byte_size = OBJ_BYTES;
	return rpc_unary(CH, RPC_KSERVE("SystemSharedMemoryRegister"), &q.base,
			 &inference__system_shared_memory_register_response__descriptor, NULL,
			 10 * SEC, &res) == 0;
}

static void region_create(struct client *c, int i)
{
	c->idx = i;
	c->http = i >= 2;
	snprintf(c->key, sizeof(c->key), "/ferry_trunc_%d_%d", (int)getpid(), i);
	snprintf(c->name, sizeof(c->name), "trunc%d", i);
	c->fd = shm_open(c->key, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(c->fd, 0, "shm_open %s: %s", c->key, strerror(errno));
	cr_assert_eq(ftruncate(c->fd, OBJ_BYTES), 0);
	c->map = mmap(NULL, OBJ_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	cr_assert_neq(c->map, MAP_FAILED);
}

/* ---------------------------------------------------------------------- */
/* One inference with every tensor in the region                           */

struct result {
	bool ok;
	char msg[1024];
	int status;                     /* gRPC status or HTTP code */
};

static void shm_param(Inference__ModelInferRequest__ParametersEntry *e,
		      Inference__InferParameter *v, const char *key, const char *s, int64_t n)
{
	inference__model_infer_request__parameters_entry__init(e);
	inference__infer_parameter__init(v);
	e->key = (char *)key;
	e->value = v;
	if (s) {
		v->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
		v->string_param = (char *)s;
	} else {
		v->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		v->int64_param = n;
	}
}

static void infer_grpc(struct client *c, struct result *out)
{
	static const char *const IN[2] = { "INPUT0", "INPUT1" }, *const OUT[2] = { "OUTPUT0",
										 "OUTPUT1" };
	static const int64_t OFF[4] = { OFF_IN0, OFF_IN1, OFF_OUT0, OFF_OUT1 };
	Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest__InferInputTensor in[2], *inp[2];
	Inference__ModelInferRequest__InferRequestedOutputTensor o[2], *op[2];
	Inference__ModelInferRequest__ParametersEntry pe[4][3], *pp[4][3];
	Inference__InferParameter pv[4][3];
	int64_t shape[2] = { 1, 16 };

	for (int t = 0; t < 4; t++) {
		shm_param(&pe[t][0], &pv[t][0], "shared_memory_region", c->name, 0);
		shm_param(&pe[t][1], &pv[t][1], "shared_memory_byte_size", NULL, 64);
		shm_param(&pe[t][2], &pv[t][2], "shared_memory_offset", NULL, OFF[t]);
		for (int k = 0; k < 3; k++)
			pp[t][k] = &pe[t][k];
	}
	for (int i = 0; i < 2; i++) {
		inference__model_infer_request__infer_input_tensor__init(&in[i]);
		in[i].name = (char *)IN[i];
		in[i].datatype = "INT32";
		in[i].n_shape = 2;
		in[i].shape = shape;
		in[i].n_parameters = 3;
		in[i].parameters = (void *)pp[i];
		inp[i] = &in[i];
		inference__model_infer_request__infer_requested_output_tensor__init(&o[i]);
		o[i].name = (char *)OUT[i];
		o[i].n_parameters = 3;
		o[i].parameters = (void *)pp[2 + i];
		op[i] = &o[i];
	}
	req.model_name = "simple";
	req.n_inputs = 2;
	req.inputs = inp;
	req.n_outputs = 2;
	req.outputs = op;
	struct rpc_result res;
	int ret = rpc_unary(CH, RPC_KSERVE("ModelInfer"), &req.base,
			    &inference__model_infer_response__descriptor, NULL, 20 * SEC, &res);
	out->ok = ret == 0;
	out->status = (int)res.status;
	snprintf(out->msg, sizeof(out->msg), "%s", res.msg);
}

static void infer_http(struct client *c, int *hfd, struct result *out)
{
	char body[2048], path[64];
	snprintf(body, sizeof(body),
		 "{\"inputs\":["
		 "{\"name\":\"INPUT0\",\"datatype\":\"INT32\",\"shape\":[1,16],\"parameters\":"
		 "{\"shared_memory_region\":\"%s\",\"shared_memory_byte_size\":64,"
		 "\"shared_memory_offset\":%d}},"
		 "{\"name\":\"INPUT1\",\"datatype\":\"INT32\",\"shape\":[1,16],\"parameters\":"
		 "{\"shared_memory_region\":\"%s\",\"shared_memory_byte_size\":64,"
		 "\"shared_memory_offset\":%d}}],"
		 "\"outputs\":["
		 "{\"name\":\"OUTPUT0\",\"parameters\":{\"shared_memory_region\":\"%s\","
		 "\"shared_memory_byte_size\":64,\"shared_memory_offset\":%d}},"
		 "{\"name\":\"OUTPUT1\",\"parameters\":{\"shared_memory_region\":\"%s\","
		 "\"shared_memory_byte_size\":64,\"shared_memory_offset\":%d}}]}",
		 c->name, OFF_IN0, c->name, OFF_IN1, c->name, OFF_OUT0, c->name, OFF_OUT1);
	snprintf(path, sizeof(path), "/v2/models/simple/infer");
	out->status = http_post(hfd, path, body, out->msg, sizeof(out->msg));
	out->ok = out->status == 200;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	int hfd = -1;
	int32_t in[32], got[32];
	unsigned seed = (unsigned)c->idx * 7919u + 1;

	while (!region_register(c, &hfd))
		usleep(1000);
	while (!atomic_load(&stop)) {
		uint64_t e0 = atomic_load(&c->epoch);
		int32_t v = (int32_t)(rand_r(&seed) % 100000);
		for (int k = 0; k < 16; k++) {
			in[k] = v + k;
			in[16 + k] = 3 * v - k;
		}
		/* The test's own mapping faults too while the object is
		 * short: its copies go through the same guard. */
		int32_t poison[32];
		for (int k = 0; k < 32; k++)
			poison[k] = INT32_MIN;
		bool wrote = fshm_guard_copy(c->map + OFF_IN0, in, sizeof(in)) == 0 &&
			     fshm_guard_copy(c->map + OFF_OUT0, poison, 64) == 0 &&
			     fshm_guard_copy(c->map + OFF_OUT1, poison, 64) == 0;
		struct result r;
		if (c->http)
			infer_http(c, &hfd, &r);
		else
			infer_grpc(c, &r);
		bool read = fshm_guard_copy(got, c->map + OFF_OUT0, 64) == 0 &&
			    fshm_guard_copy(got + 16, c->map + OFF_OUT1, 64) == 0;
		uint64_t e1 = atomic_load(&c->epoch);
		if (r.ok) {
			if (wrote && read && e0 == e1 && !(e0 & 1)) {
				/* Nothing overlapped: the sums must be right. */
				for (int k = 0; k < 16; k++) {
					if (got[k] != in[k] + in[16 + k] ||
					    got[16 + k] != in[k] - in[16 + k]) {
						c->other++;
						snprintf(c->other_msg, sizeof(c->other_msg),
							 "wrong result at %d: %d %d for %d %d", k,
							 got[k], got[16 + k], in[k], in[16 + k]);
						break;
					}
				}
				c->verified++;
			} else {
				c->unverified++;
			}
			continue;
		}
		bool invalid = c->http ? r.status == 400 : r.status == GRPC_STATUS_INVALID_ARGUMENT;
		if (invalid && strstr(r.msg, "truncated")) {
			c->truncated++;
			while (!atomic_load(&stop) && !region_register(c, &hfd))
				usleep(500);
		} else {
			c->other++;
			snprintf(c->other_msg, sizeof(c->other_msg), "status %d: %s", r.status, r.msg);
		}
	}
	if (hfd >= 0)
		close(hfd);
	return NULL;
}

/* The neighbour: tensors in the messages, every result checked. */
static _Atomic int nb_ok, nb_bad;

static void *neighbour(void *arg)
{
	(void)arg;
	for (int32_t v = 0; !atomic_load(&stop); v++) {
		Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
		Inference__ModelInferRequest__InferInputTensor in[2], *inp[2];
		int64_t shape[2] = { 1, 16 };
		int32_t a[16], b[16];
		ProtobufCBinaryData raw[2] = { { 64, (uint8_t *)a }, { 64, (uint8_t *)b } };
		for (int k = 0; k < 16; k++) {
			a[k] = v + k;
			b[k] = v * 5 - k;
		}
		for (int i = 0; i < 2; i++) {
			inference__model_infer_request__infer_input_tensor__init(&in[i]);
			in[i].name = i ? "INPUT1" : "INPUT0";
			in[i].datatype = "INT32";
			in[i].n_shape = 2;
			in[i].shape = shape;
			inp[i] = &in[i];
		}
		req.model_name = "simple";
		req.n_inputs = 2;
		req.inputs = inp;
		req.n_raw_input_contents = 2;
		req.raw_input_contents = raw;
		ProtobufCMessage *resp = NULL;
		struct rpc_result res;
		if (rpc_unary(CH, RPC_KSERVE("ModelInfer"), &req.base,
			      &inference__model_infer_response__descriptor, &resp, 20 * SEC, &res)) {
			atomic_fetch_add(&nb_bad, 1);
			continue;
		}
		Inference__ModelInferResponse *r = (Inference__ModelInferResponse *)resp;
		bool good = r->n_raw_output_contents == 2 && r->raw_output_contents[0].len == 64 &&
			    r->raw_output_contents[1].len == 64;
		for (int k = 0; good && k < 16; k++) {
			int32_t s, d;
			memcpy(&s, r->raw_output_contents[0].data + 4 * k, 4);
			memcpy(&d, r->raw_output_contents[1].data + 4 * k, 4);
			good = s == a[k] + b[k] && d == a[k] - b[k];
		}
		atomic_fetch_add(good ? &nb_ok : &nb_bad, 1);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	return NULL;
}

Test(truncate, clients_that_truncate_their_regions_in_a_loop_fail_only_their_own_requests)
{
	pthread_t t[NCLIENT], nb;
	for (int i = 0; i < NCLIENT; i++)
		region_create(&C[i], i);
	atomic_store(&stop, false);
	for (int i = 0; i < NCLIENT; i++)
		pthread_create(&t[i], NULL, client_main, &C[i]);
	pthread_create(&nb, NULL, neighbour, NULL);

	/* The truncator: each object in turn shrunk to nothing or to its
	 * first page for a moment, then grown back; until every client has
	 * seen both outcomes (at least 20 s on a busy machine, at most 60). */
	unsigned seed = 42;
	uint64_t t0 = fshm_now_ns();
	for (int round = 0;; round++) {
		bool enough = true;
		for (int i = 0; i < NCLIENT; i++)
			enough = enough && C[i].truncated >= 20 && C[i].verified >= 20;
		uint64_t el = fshm_now_ns() - t0;
		if ((enough && el > 3 * SEC) || el > 60 * SEC)
			break;
		struct client *c = &C[round % NCLIENT];
		atomic_fetch_add(&c->epoch, 1);
		cr_assert_eq(ftruncate(c->fd, rand_r(&seed) % 2 ? PAGE : 0), 0);
		usleep(200 + rand_r(&seed) % 800);
		cr_assert_eq(ftruncate(c->fd, OBJ_BYTES), 0);
		atomic_fetch_add(&c->epoch, 1);
		usleep(500 + rand_r(&seed) % 2000);
		cr_assert(th_alive(B.pid), "ferryd died (round %d)", round);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < NCLIENT; i++)
		pthread_join(t[i], NULL);
	pthread_join(nb, NULL);

	for (int i = 0; i < NCLIENT; i++) {
		struct client *c = &C[i];
		cr_log_info("%s client %d: %d right (checked), %d served during a truncation, "
			    "%d failed for the truncation, %d otherwise", c->http ? "HTTP" : "gRPC", i,
			    c->verified, c->unverified, c->truncated, c->other);
		cr_expect_eq(c->other, 0, "client %d: %s", i, c->other_msg);
		cr_expect_gt(c->truncated, 0, "client %d: a truncation failed a request", i);
		cr_expect_gt(c->verified, 0, "client %d: requests were served right", i);
	}
	cr_log_info("neighbour: %d right, %d wrong or failed", atomic_load(&nb_ok),
		    atomic_load(&nb_bad));
	cr_expect_eq(atomic_load(&nb_bad), 0, "the neighbour was served right");
	cr_expect_gt(atomic_load(&nb_ok), 0, "the neighbour was served");
	cr_assert(th_alive(B.pid), "ferryd is alive");

	/* Registered again, every region serves. */
	for (int i = 0; i < NCLIENT; i++) {
		int hfd = -1;
		struct result r;
		cr_assert(region_register(&C[i], &hfd));
		int32_t in[32], got[32];
		for (int k = 0; k < 32; k++)
			in[k] = 1000 * i + k;
		memcpy(C[i].map + OFF_IN0, in, sizeof(in));
		if (C[i].http)
			infer_http(&C[i], &hfd, &r);
		else
			infer_grpc(&C[i], &r);
		cr_assert(r.ok, "client %d after the storm: %d %s", i, r.status, r.msg);
		memcpy(got, C[i].map + OFF_OUT0, 64);
		memcpy(got + 16, C[i].map + OFF_OUT1, 64);
		for (int k = 0; k < 16; k++) {
			cr_assert_eq(got[k], in[k] + in[16 + k]);
			cr_assert_eq(got[16 + k], in[k] - in[16 + k]);
		}
		if (hfd >= 0)
			close(hfd);
	}
}
