/* SPDX-License-Identifier: MIT */
/*
 * grpc_bench.c - ferry-grpc-bench: the round trip of `identity` over the
 * three ways a client reaches ferryd, in one run, with ratios:
 *
 *   shm        libferry's local transport (shared-memory session)
 *   grpc       libferry's remote transport (KServe v2 over gRPC, loopback)
 *   grpc+shm   gRPC with Triton's system shared memory extension: tensors in
 *              registered POSIX shm regions, only descriptors on the wire
 *              (raw gRPC calls, as tritonclient / perf_analyzer make them)
 *
 * for 1 KiB and 1 MiB FP32 tensors: p50 / p99 round trip (one request in
 * flight) and the throughput that gives; the floor printed beside them is
 * one memcpy of the tensor.  It starts its own ferryd (from the build tree
 * or --ferryd) with --allow-client-shm on a free loopback port.
 *
 *   ferry-grpc-bench [--ferryd PATH] [--samples N] [--csv FILE]
 *
 * ferryd and the local client both take their wait policy from $FERRY_WAIT
 * (hybrid by default): FERRY_WAIT=spin measures the shared-memory path
 * without wake-ups, on a machine with a core to spare for each side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "proto/kserve.pb-c.h"

static const char *CFG =
	"name: \"bench_identity\"\nbackend: \"identity\"\nmax_batch_size: 0\n"
	"input [ { name: \"IN\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n"
	"output [ { name: \"OUT\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "ferry-grpc-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		die("no free port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}

static const char *find_ferryd(const char *given)
{
	static char path[4200];
	const char *b = getenv("FERRY_TOP_BUILDDIR");
	if (given)
		return given;
	if (b) {
		snprintf(path, sizeof(path), "%s/broker/ferryd", b);
		return path;
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *s = strrchr(self, '/');
		if (s)
			*s = '\0';
		snprintf(path, sizeof(path), "%s/broker/ferryd", self);
		if (access(path, X_OK) == 0)
			return path;
	}
	return "ferryd";
}

/* ---------------------------------------------------------------------- */
/* Raw gRPC unary calls (the grpc+shm mode)                                */

struct raw {
	grpc_channel *ch;
	grpc_completion_queue *cq;
};

static void *raw_call(struct raw *r, const char *method, const ProtobufCMessage *req,
		      const ProtobufCMessageDescriptor *rd)
{
	grpc_slice m = grpc_slice_from_static_string(method);
	grpc_call *call = grpc_channel_create_call(r->ch, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq, m,
						   NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	protobuf_c_message_pack(req, buf);
	grpc_slice s = grpc_slice_new(buf, len, free);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1), *recv = NULL;
	grpc_slice_unref(s);
	grpc_metadata_array mi, mt;
	grpc_metadata_array_init(&mi);
	grpc_metadata_array_init(&mt);
	grpc_status_code st;
	grpc_slice det;
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &mi;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &mt;
	ops[5].data.recv_status_on_client.status = &st;
	ops[5].data.recv_status_on_client.status_details = &det;
	if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK)
		die("%s: cannot start the call", method);
	grpc_completion_queue_pluck(r->cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (st != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(det);
		die("%s: status %d: %s", method, (int)st, d);
	}
	grpc_byte_buffer_reader rdr;
	grpc_byte_buffer_reader_init(&rdr, recv);
	grpc_slice all = grpc_byte_buffer_reader_readall(&rdr);
	grpc_byte_buffer_reader_destroy(&rdr);
	void *out = protobuf_c_message_unpack(rd, NULL, GRPC_SLICE_LENGTH(all),
					      GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	grpc_byte_buffer_destroy(send);
	grpc_byte_buffer_destroy(recv);
	grpc_slice_unref(det);
	grpc_metadata_array_destroy(&mi);
	grpc_metadata_array_destroy(&mt);
	grpc_call_unref(call);
	if (!out)
		die("%s: malformed response", method);
	return out;
}

/* ---------------------------------------------------------------------- */

struct row {
	const char *mode;
	size_t bytes;
	struct bu_lat lat;
	double rps;
};

static unsigned samples_for(size_t bytes, unsigned base)
{
	return bytes >= (1u << 20) ? (base / 10 > 50 ? base / 10 : 50) : base;
}

static struct row run_libferry(const char *mode, const char *addr, size_t bytes, unsigned n)
{
	ferry_client *c;
	ferry_model *m;
	ferry_request *r;
	float *x;
	int64_t dims[1] = { (int64_t)(bytes / 4) };
	if (ferry_connect(&c, addr, NULL))
		die("%s: connect %s: %s", mode, addr, ferry_last_error());
	if (ferry_model_get(c, "bench_identity", FERRY_LATEST, &m) ||
	    ferry_request_new(m, &r) ||
	    ferry_request_input(r, "IN", FERRY_TYPE_FP32, dims, 1, (void **)&x) ||
	    ferry_request_want_output(r, "OUT", bytes))
		die("%s: %s", mode, ferry_last_error());
	for (size_t i = 0; i < bytes / 4; i++)
		x[i] = (float)i;
	uint64_t *v = calloc(n, sizeof(*v));
	for (unsigned i = 0; i < n + n / 10; i++) {
		uint64_t t0 = now_ns();
		if (ferry_infer(c, r, -1))
			die("%s: infer: %s", mode, ferry_last_error());
		uint64_t t1 = now_ns();
		if (i >= n / 10)
			v[i - n / 10] = t1 - t0;   /* first 10%: warm-up */
		ferry_request_reset(r);
	}
	struct row row = { mode, bytes, bu_lat_of(v, n), 0 };
	row.rps = 1e9 / row.lat.mean;
	free(v);
	ferry_request_free(r);
	ferry_close(c);
	return row;
}

static struct row run_grpc_shm(const char *target, size_t bytes, unsigned n)
{
	struct raw rw;
	char kin[64], kout[64];
	snprintf(kin, sizeof(kin), "/ferry_gb_in_%d", (int)getpid());
	snprintf(kout, sizeof(kout), "/ferry_gb_out_%d", (int)getpid());
	int fi = shm_open(kin, O_CREAT | O_RDWR, 0600), fo = shm_open(kout, O_CREAT | O_RDWR, 0600);
	if (fi < 0 || fo < 0 || ftruncate(fi, (off_t)bytes) || ftruncate(fo, (off_t)bytes))
		die("shm: %s", strerror(errno));
	float *in = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fi, 0);
	float *out = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fo, 0);
	if (in == MAP_FAILED || out == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (size_t i = 0; i < bytes / 4; i++)
		in[i] = (float)i;

	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	rw.ch = grpc_channel_create(target, cr, NULL);
	grpc_channel_credentials_release(cr);
	rw.cq = grpc_completion_queue_create_for_pluck(NULL);
#define M(x) "/inference.GRPCInferenceService/" x
	Inference__SystemSharedMemoryRegisterRequest rq = INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_REQUEST__INIT;
	rq.name = "in";
	rq.key = kin;
	rq.byte_size = bytes;
	protobuf_c_message_free_unpacked(raw_call(&rw, M("SystemSharedMemoryRegister"), &rq.base,
				&inference__system_shared_memory_register_response__descriptor), NULL);
	rq.name = "out";
	rq.key = kout;
	protobuf_c_message_free_unpacked(raw_call(&rw, M("SystemSharedMemoryRegister"), &rq.base,
				&inference__system_shared_memory_register_response__descriptor), NULL);

	/* The request: descriptors only. */
	Inference__InferParameter preg[2], psz[2];
	Inference__ModelInferRequest__InferInputTensor__ParametersEntry ie[2], *iep[2];
	Inference__ModelInferRequest__InferRequestedOutputTensor__ParametersEntry oe[2], *oep[2];
	for (int k = 0; k < 2; k++) {
		inference__infer_parameter__init(&preg[k]);
		preg[k].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
		preg[k].string_param = k ? "out" : "in";
		inference__infer_parameter__init(&psz[k]);
		psz[k].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		psz[k].int64_param = (int64_t)bytes;
	}
	inference__model_infer_request__infer_input_tensor__parameters_entry__init(&ie[0]);
	ie[0].key = "shared_memory_region";
	ie[0].value = &preg[0];
	inference__model_infer_request__infer_input_tensor__parameters_entry__init(&ie[1]);
	ie[1].key = "shared_memory_byte_size";
	ie[1].value = &psz[0];
	iep[0] = &ie[0];
	iep[1] = &ie[1];
	inference__model_infer_request__infer_requested_output_tensor__parameters_entry__init(&oe[0]);
	oe[0].key = "shared_memory_region";
	oe[0].value = &preg[1];
	inference__model_infer_request__infer_requested_output_tensor__parameters_entry__init(&oe[1]);
	oe[1].key = "shared_memory_byte_size";
	oe[1].value = &psz[1];
	oep[0] = &oe[0];
	oep[1] = &oe[1];
	int64_t shape[1] = { (int64_t)(bytes / 4) };
	Inference__ModelInferRequest__InferInputTensor it = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
	it.name = "IN";
	it.datatype = "FP32";
	it.n_shape = 1;
	it.shape = shape;
	it.n_parameters = 2;
	it.parameters = iep;
	Inference__ModelInferRequest__InferInputTensor *itp = &it;
	Inference__ModelInferRequest__InferRequestedOutputTensor ot =
		INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
	ot.name = "OUT";
	ot.n_parameters = 2;
	ot.parameters = oep;
	Inference__ModelInferRequest__InferRequestedOutputTensor *otp = &ot;
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = "bench_identity";
	q.n_inputs = 1;
	q.inputs = &itp;
	q.n_outputs = 1;
	q.outputs = &otp;

	uint64_t *v = calloc(n, sizeof(*v));
	for (unsigned i = 0; i < n + n / 10; i++) {
		uint64_t t0 = now_ns();
		protobuf_c_message_free_unpacked(raw_call(&rw, M("ModelInfer"), &q.base,
					&inference__model_infer_response__descriptor), NULL);
		uint64_t t1 = now_ns();
		if (i >= n / 10)
			v[i - n / 10] = t1 - t0;
	}
	if (out[bytes / 4 - 1] != (float)(bytes / 4 - 1))
		die("grpc+shm: the output region does not hold the input");
	Inference__SystemSharedMemoryUnregisterRequest uq = INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
	protobuf_c_message_free_unpacked(raw_call(&rw, M("SystemSharedMemoryUnregister"), &uq.base,
				&inference__system_shared_memory_unregister_response__descriptor), NULL);
#undef M
	struct row row = { "grpc+shm", bytes, bu_lat_of(v, n), 0 };
	row.rps = 1e9 / row.lat.mean;
	free(v);
	grpc_channel_destroy(rw.ch);
	grpc_completion_queue_shutdown(rw.cq);
	grpc_completion_queue_destroy(rw.cq);
	munmap(in, bytes);
	munmap(out, bytes);
	close(fi);
	close(fo);
	shm_unlink(kin);
	shm_unlink(kout);
	return row;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ferryd", required_argument, NULL, 'f' },
		{ "samples", required_argument, NULL, 'n' },
		{ "csv", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *ferryd_path = NULL, *csv = NULL;
	unsigned samples = 2000;
	int o;
	while ((o = getopt_long(argc, argv, "f:n:c:h", lo, NULL)) != -1) {
		switch (o) {
		case 'f': ferryd_path = optarg; break;
		case 'n': samples = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'c': csv = optarg; break;
		default:
			printf("usage: ferry-grpc-bench [--ferryd PATH] [--samples N] [--csv FILE]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (samples < 20)
		samples = 20;

	char dir[] = "/tmp/ferry-grpc-bench-XXXXXX", path[512], sock[512], port[16], target[64];
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/repo/bench_identity/1", dir);
	char cmd[1100];
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", path);
	if (system(cmd))
		die("cannot make the repository");
	snprintf(path, sizeof(path), "%s/repo/bench_identity/config.pbtxt", dir);
	FILE *f = fopen(path, "w");
	if (!f || fputs(CFG, f) < 0 || fclose(f))
		die("cannot write %s", path);
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", dir);
	snprintf(path, sizeof(path), "%s/repo", dir);
	snprintf(port, sizeof(port), "%d", free_port());
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	const char *fd = find_ferryd(ferryd_path);
	pid_t pid = fork();
	if (pid == 0) {
		execlp(fd, fd, "-m", path, "-s", sock, "--grpc-port", port, "--allow-client-shm",
		       "--grpc-max-message-bytes", "64M", "--log-level", "warn", (char *)NULL);
		fprintf(stderr, "ferry-grpc-bench: cannot run %s: %s\n", fd, strerror(errno));
		_exit(127);
	}
	grpc_init();
	char gaddr[80];
	snprintf(gaddr, sizeof(gaddr), "grpc://%s", target);
	ferry_client *probe = NULL;
	for (int i = 0; i < 200; i++) {
		if (!ferry_connect(&probe, gaddr, NULL))
			break;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			die("ferryd (%s) exited at start-up", fd);
		usleep(50000);
	}
	if (!probe)
		die("ferryd did not start: %s", ferry_last_error());
	ferry_close(probe);

	size_t sizes[2] = { 1024, 1u << 20 };
	struct row rows[6];
	int nr = 0;
	for (int s = 0; s < 2; s++) {
		unsigned n = samples_for(sizes[s], samples);
		rows[nr++] = run_libferry("shm", sock, sizes[s], n);
		rows[nr++] = run_libferry("grpc", gaddr, sizes[s], n);
		rows[nr++] = run_grpc_shm(target, sizes[s], n);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "ferry-grpc-bench: could not remove %s\n", dir);

	printf("ferry-grpc-bench: identity round trip, one request in flight, %u samples "
	       "(1 MiB: %u)\n", samples, samples_for(1u << 20, samples));
	printf("%-9s %8s %10s %10s %12s %10s %14s\n", "mode", "size", "p50 us", "p99 us",
	       "req/s", "MB/s", "p50 vs shm");
	FILE *cf = csv ? fopen(csv, "w") : NULL;
	if (cf)
		fprintf(cf, "mode,bytes,p50_ns,p99_ns,mean_ns,req_per_s\n");
	for (int s = 0; s < 2; s++) {
		struct bu_lat mc = bu_floor_memcpy(sizes[s], 200);
		const struct row *base = &rows[s * 3];
		for (int k = 0; k < 3; k++) {
			const struct row *r = &rows[s * 3 + k];
			printf("%-9s %7zuK %10.1f %10.1f %12.0f %10.1f %13.1fx\n", r->mode,
			       r->bytes / 1024, r->lat.p50 / 1e3, r->lat.p99 / 1e3, r->rps,
			       r->rps * (double)r->bytes / 1e6, r->lat.p50 / base->lat.p50);
			if (cf)
				fprintf(cf, "%s,%zu,%.0f,%.0f,%.0f,%.1f\n", r->mode, r->bytes, r->lat.p50,
					r->lat.p99, r->lat.mean, r->rps);
		}
		printf("%-9s %7zuK %10.2f %10.2f   (floor: one memcpy of the tensor)\n", "memcpy",
		       sizes[s] / 1024, mc.p50 / 1e3, mc.p99 / 1e3);
	}
	if (cf)
		fclose(cf);
	double ratio = rows[1].lat.p50 / rows[0].lat.p50;
	printf("gRPC / shm p50 at 1 KiB: %.1fx (expected >= 50x)\n", ratio);
	grpc_shutdown();
	return 0;
}
