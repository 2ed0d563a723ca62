/* SPDX-License-Identifier: MIT */
/*
 * ferry-bench - end-to-end measurements of ferry, each beside the floor
 * it is compared with, measured in the same run.
 *
 *   ferry-bench latency     round trip of an identity request through
 *                           ferryd over shared memory (per wait policy),
 *                           over KServe v2 gRPC and over gRPC with system
 *                           shared memory, per payload, beside the
 *                           cache-line, eventfd, Unix-socket and memcpy
 *                           floors
 *   ferry-bench throughput  requests per second from several client
 *                           processes with many requests in flight
 *
 * Each mode starts its own ferryd (from the build tree, or --ferryd) on a
 * temporary repository of identity models, pinned as --cpus says.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "bench/grpc_util.h"
#include "bench/http_util.h"
#include "shm/fshm.h"

#define SEC 1000000000LL

static struct {
	const char *ferryd;
	int cpu_client, cpu_broker;
	unsigned samples;
	double seconds;
	int processes;
	int depth;
	const char *csv;
	const char *policies;
	const char *broker_wait;
	const char *client_wait;
	bool quiet;
	bool grpc;
} opt = {
	.cpu_client = 0, .cpu_broker = 1, .samples = 20000, .seconds = 3.0,
	.processes = 2, .depth = 64, .policies = "spin,hybrid,block", .grpc = true,
};

static char tmpdir[256], repo[300], sock[300];
static pid_t broker_pid;
static FILE *csv;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "ferry-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	if (broker_pid > 0)
		kill(broker_pid, SIGKILL);
	exit(1);
}

static void write_model(const char *name, const char *dtype, long dim,
			int max_batch, bool batching)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", repo, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/1", repo, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", repo, name);
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "name: \"%s\"\nbackend: \"identity\"\nmax_batch_size: %d\n"
		   "input [ { name: \"INPUT0\" data_type: %s dims: [ %ld ] } ]\n"
		   "output [ { name: \"OUTPUT0\" data_type: %s dims: [ %ld ] } ]\n%s",
		name, max_batch, dtype, dim, dtype, dim,
		batching ? "dynamic_batching { }\n" : "");
	fclose(f);
}

static void setup_repo(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-bench-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(repo, sizeof(repo), "%s/models", tmpdir);
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", tmpdir);
	mkdir(repo, 0755);
	write_model("identity_1k", "TYPE_FP32", 256, 0, false);
	write_model("identity_1m", "TYPE_FP32", 262144, 0, false);
	write_model("identity_small", "TYPE_INT32", 4, 64, true);
}

static void cleanup(void)
{
	char cmd[600];
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		(void)!system(cmd);
	}
}

static const char *find_ferryd(void)
{
	static char path[PATH_MAX + 32];
	char self[PATH_MAX];
	if (opt.ferryd)
		return opt.ferryd;
	if (getenv("FERRY_FERRYD"))
		return getenv("FERRY_FERRYD");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			/* Build tree (ferry-bench beside broker/), then the
			 * installed layout (bin/ beside sbin/). */
			snprintf(path, sizeof(path), "%s/broker/ferryd", self);
			if (access(path, X_OK) == 0)
				return path;
			/* libtool runs the real binary from .libs/ */
			snprintf(path, sizeof(path), "%s/../broker/ferryd", self);
			if (access(path, X_OK) == 0)
				return path;
			snprintf(path, sizeof(path), "%s/../sbin/ferryd", self);
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	return "ferryd";
}

static bool connectable(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* grpc_port: "0" for none, else a port to serve KServe v2 gRPC (and
 * http_port HTTP) on, with client system shared memory allowed. */
static void broker_start(const char *wait, const char *grpc_port, const char *http_port)
{
	const char *ferryd = find_ferryd();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (opt.cpu_broker >= 0)
			bu_pin(opt.cpu_broker);
		if (strcmp(grpc_port, "0"))
			execlp(ferryd, ferryd, "--model-repository", repo, "--socket", sock,
			       "--wait", wait, "--log-level", "warn", "--metrics-port", "0",
			       "--grpc-port", grpc_port, "--http-port", http_port,
			       "--allow-client-shm", (char *)NULL);
		else
			execlp(ferryd, ferryd, "--model-repository", repo, "--socket", sock,
			       "--wait", wait, "--log-level", "warn", "--metrics-port", "0",
			       "--grpc-port", "0", "--http-port", "0", (char *)NULL);
		fprintf(stderr, "ferry-bench: cannot run %s: %s\n", ferryd, strerror(errno));
		_exit(127);
	}
	broker_pid = pid;
	for (int i = 0; i < 1000; i++) {
		if (connectable())
			return;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			die("ferryd (%s) exited at start-up", ferryd);
		usleep(10000);
	}
	die("ferryd did not start in 10 s");
}

/* Stop the broker; returns its CPU time in seconds. */
static double broker_stop(void)
{
	struct rusage ru;
	int st;
	kill(broker_pid, SIGTERM);
	if (wait4(broker_pid, &st, 0, &ru) != broker_pid)
		die("wait4: %s", strerror(errno));
	broker_pid = 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static ferry_client *client(ferry_wait w, uint32_t depth)
{
	ferry_client *c;
	ferry_options o = { .struct_size = sizeof(o), .wait = w, .queue_depth = depth,
			    .arena_bytes = 16 << 20 };
	if (ferry_connect(&c, sock, &o))
		die("connect: %s", ferry_last_error());
	return c;
}

static void print_row(const char *what, const char *policy, size_t bytes,
		      struct bu_lat l, double floor_p50, const char *floor_name)
{
	char ratio[64] = "";
	if (floor_p50 > 0)
		snprintf(ratio, sizeof(ratio), "%.2fx %s", l.p50 / floor_p50, floor_name);
	printf("  %-36s %-7s %8zu %10.0f %10.0f   %s\n", what, policy, bytes, l.p50,
	       l.p99, ratio);
	if (csv)
		fprintf(csv, "latency,\"%s\",%s,%zu,%.0f,%.0f,%.0f,%.3f\n", what, policy,
			bytes, l.p50, l.p90, l.p99, floor_p50 > 0 ? l.p50 / floor_p50 : 0);
	fflush(stdout);
}

static struct bu_lat measure_rtt(ferry_client *c, const char *model, size_t bytes,
				 unsigned samples, unsigned warm)
{
	ferry_model *m;
	ferry_request *r;
	float *in;
	int64_t dims[1] = { (int64_t)(bytes / 4) };
	uint64_t *lat = calloc(samples, sizeof(*lat));

	if (ferry_model_get(c, model, FERRY_LATEST, &m) || ferry_request_new(m, &r) ||
	    ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, dims, 1, (void **)&in))
		die("%s: %s", model, ferry_last_error());
	size_t n = bytes / 4;
	for (size_t i = 0; i < n; i++)
		in[i] = (float)i;
	for (unsigned i = 0; i < warm + samples; i++) {
		/* Each round trip carries its own number at both ends of the
		 * tensor (exact in a float up to 2^24), and each answer is
		 * checked: a stale output cannot pass for a fresh one. */
		in[0] = in[n - 1] = (float)(i % (1u << 24));
		uint64_t t0 = fshm_now_ns();
		ferry_request_reset(r);
		if (ferry_infer(c, r, 10 * SEC))
			die("infer: %s", ferry_last_error());
		uint64_t t1 = fshm_now_ns();
		if (i >= warm)
			lat[i - warm] = t1 - t0;
		const float *out;
		if (ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&out, NULL) ||
		    out[0] != in[0] || out[n - 1] != in[n - 1] ||
		    ((i % 64 == 0 || i + 1 == warm + samples) && memcmp(out, in, bytes)))
			die("%s: round trip %u: wrong result", model, i);
	}
	ferry_request_free(r);
	struct bu_lat l = bu_lat_of(lat, samples);
	free(lat);
	return l;
}

/* The identity round trip over gRPC with system shared memory: input and
 * output in two registered regions, only descriptors in the messages. */
static struct bu_lat measure_grpc_shm(const char *target, const char *model, size_t bytes,
				      unsigned samples, unsigned warm)
{
	struct gu_chan *ch = gu_open(target);
	struct gu_region rin, rout;
	int64_t shape[1] = { (int64_t)(bytes / 4) };
	struct gu_tensor in = { .name = "INPUT0", .datatype = "FP32", .shape = shape,
				.ndims = 1, .region = "bench_in", .bytes = bytes };
	struct gu_tensor out = { .name = "OUTPUT0", .region = "bench_out", .bytes = bytes };
	struct gu_infer *q;
	uint64_t *lat = calloc(samples, sizeof(*lat));

	if (!ch || gu_region_create(&rin, "bench_in", bytes) ||
	    gu_region_create(&rout, "bench_out", bytes) || gu_region_register(ch, &rin) ||
	    gu_region_register(ch, &rout) || !(q = gu_infer_new(model, &in, 1, &out, 1)))
		die("grpc+shm: %s", gu_error());
	float *x = rin.base;
	const float *y = rout.base;
	size_t n = bytes / 4;
	for (size_t i = 0; i < n; i++)
		x[i] = (float)i;
	for (unsigned i = 0; i < warm + samples; i++) {
		/* as measure_rtt: each call's own number, each answer checked */
		x[0] = x[n - 1] = (float)(i % (1u << 24));
		uint64_t t0 = fshm_now_ns();
		if (gu_infer(ch, q))
			die("grpc+shm: ModelInfer: %s", gu_error());
		uint64_t t1 = fshm_now_ns();
		if (i >= warm)
			lat[i - warm] = t1 - t0;
		if (y[0] != x[0] || y[n - 1] != x[n - 1] ||
		    ((i % 64 == 0 || i + 1 == warm + samples) && memcmp(y, x, bytes)))
			die("grpc+shm: call %u: the output region does not hold its input", i);
	}
	if (gu_region_unregister(ch, NULL))
		die("grpc+shm: %s", gu_error());
	gu_infer_free(q);
	gu_close(ch);
	gu_region_destroy(&rin);
	gu_region_destroy(&rout);
	struct bu_lat l = bu_lat_of(lat, samples);
	free(lat);
	return l;
}

/* Raw gRPC ModelInfer calls of a 1 KiB FP32 tensor in the message (the
 * same client for ferryd and the bare echo). */
static struct bu_lat measure_grpc_raw(struct gu_chan *ch, struct gu_infer *q, unsigned samples,
				      unsigned warm, uint64_t *lat)
{
	for (unsigned i = 0; i < warm + samples; i++) {
		uint64_t t0 = fshm_now_ns();
		if (gu_infer(ch, q))
			die("gRPC raw ModelInfer: %s", gu_error());
		uint64_t t1 = fshm_now_ns();
		if (i >= warm)
			lat[i - warm] = t1 - t0;
	}
	return bu_lat_of(lat, samples);
}

/* HTTP/1.1 inference calls (binary tensor data) on one keep-alive
 * connection; each answer is checked for its size, every 64th for its
 * bytes. */
static struct bu_lat measure_http(struct hu_conn *h, const char *path, const uint8_t *body,
				  size_t len, size_t json_len, const void *in, size_t bytes,
				  unsigned samples, unsigned warm, uint64_t *lat)
{
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "Inference-Header-Content-Length: %zu\r\n", json_len);
	for (unsigned i = 0; i < warm + samples; i++) {
		struct hu_resp r;
		uint64_t t0 = fshm_now_ns();
		if (hu_request(h, "POST", path, hdr, body, len, &r))
			die("HTTP: %s", hu_error());
		uint64_t t1 = fshm_now_ns();
		if (r.status != 200 || !r.header_len || r.len != r.header_len + bytes ||
		    ((i % 64 == 0) && memcmp(r.body + r.header_len, in, bytes)))
			die("HTTP: call %u: status %d, %zu bytes: %.*s", i, r.status, r.len,
			    (int)(r.len < 300 ? r.len : 300), (const char *)r.body);
		if (i >= warm)
			lat[i - warm] = t1 - t0;
	}
	return bu_lat_of(lat, samples);
}

/*
 * gRPC's floor and HTTP, 1 KiB: a bare gRPC echo (bench/grpc_util.c, no
 * ferry in it, ferryd's thread layout, pinned where ferryd runs) and
 * ferryd's gRPC ModelInfer with the same raw client, alternated three
 * times, then ferryd's HTTP with binary tensor data on one keep-alive
 * connection.  The echo child is forked before this process uses gRPC.
 */
static void latency_floor(void)
{
	size_t bytes = 1024;
	int64_t shape[1] = { 256 };
	float in[256];
	uint8_t *reply;
	size_t rlen;
	char eport[16], gport[16], hport[16], target[64], etarget[64];

	for (int i = 0; i < 256; i++)
		in[i] = (float)i;
	if (gu_infer_response_bytes("identity_1k", "OUTPUT0", "FP32", shape, 1, in, bytes, &reply,
				    &rlen))
		die("%s", gu_error());
	snprintf(eport, sizeof(eport), "%d", bu_free_port());
	pid_t echo = fork();
	if (echo < 0)
		die("fork: %s", strerror(errno));
	if (echo == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (opt.cpu_broker >= 0)
			bu_pin(opt.cpu_broker);
		gu_echo_serve(atoi(eport), 4, reply, rlen);
		fprintf(stderr, "ferry-bench: echo server: %s\n", gu_error());
		_exit(1);
	}
	free(reply);
	snprintf(gport, sizeof(gport), "%d", bu_free_port());
	snprintf(hport, sizeof(hport), "%d", bu_free_port());
	broker_start("hybrid", gport, hport);
	snprintf(target, sizeof(target), "127.0.0.1:%s", gport);
	snprintf(etarget, sizeof(etarget), "127.0.0.1:%s", eport);
	struct gu_chan *ce = NULL, *cf = gu_open(target);
	for (int i = 0; i < 100 && !ce; i++)
		if (!(ce = gu_open(etarget)))
			usleep(50000);
	if (!ce || !cf)
		die("gRPC: %s", gu_error());
	struct gu_tensor ti = { .name = "INPUT0", .datatype = "FP32", .shape = shape, .ndims = 1,
				.data = in, .bytes = bytes };
	struct gu_tensor to = { .name = "OUTPUT0" };
	struct gu_infer *qe = gu_infer_new("identity_1k", &ti, 1, &to, 1);
	struct gu_infer *qf = gu_infer_new("identity_1k", &ti, 1, &to, 1);
	if (!qe || !qf)
		die("gRPC: %s", gu_error());
	unsigned n = opt.samples / 10, rounds = 3;
	uint64_t *le = calloc((size_t)n * rounds, sizeof(*le));
	uint64_t *lf = calloc((size_t)n * rounds, sizeof(*lf));
	uint64_t *lh = calloc((size_t)n * rounds, sizeof(*lh));
	if (!le || !lf || !lh)
		die("out of memory");
	for (unsigned r = 0; r < rounds; r++) {
		measure_grpc_raw(ce, qe, n, n / 10 + 10, le + (size_t)r * n);
		measure_grpc_raw(cf, qf, n, n / 10 + 10, lf + (size_t)r * n);
	}
	struct bu_lat e = bu_lat_of(le, (size_t)n * rounds);
	struct bu_lat f = bu_lat_of(lf, (size_t)n * rounds);
	print_row("gRPC bare echo (floor, no ferry)", "-", bytes, e, 0, "");
	print_row("gRPC round trip, raw calls (identity)", "hybrid", bytes, f, e.p50,
		  "gRPC bare echo");
	struct hu_conn *h = hu_open("127.0.0.1", atoi(hport));
	uint8_t *body;
	size_t blen, jlen;
	const char *nm = "INPUT0", *dt = "FP32";
	const int64_t *shp = shape;
	int nd = 1;
	const void *dp = in;
	if (!h || hu_infer_body(1, &nm, &dt, &shp, &nd, &dp, &bytes, &body, &blen, &jlen))
		die("HTTP: %s", hu_error());
	for (unsigned r = 0; r < rounds; r++)
		measure_http(h, "/v2/models/identity_1k/infer", body, blen, jlen, in, bytes, n,
			     n / 10 + 10, lh + (size_t)r * n);
	struct bu_lat hl = bu_lat_of(lh, (size_t)n * rounds);
	print_row("HTTP round trip, binary data (identity)", "hybrid", bytes, hl, f.p50,
		  "gRPC raw calls");
	printf("  1 KiB p50: ferryd's gRPC %.2fx the bare gRPC echo; ferryd's HTTP %.2fx its "
	       "gRPC\n", f.p50 / e.p50, hl.p50 / f.p50);
	free(body);
	hu_close(h);
	gu_infer_free(qe);
	gu_infer_free(qf);
	gu_close(ce);
	gu_close(cf);
	free(le);
	free(lf);
	free(lh);
	broker_stop();
	kill(echo, SIGKILL);
	waitpid(echo, NULL, 0);
}

static int cmd_latency(void)
{
	static const struct { const char *model; size_t bytes; } sizes[] = {
		{ "identity_1k", 1024 }, { "identity_1m", 1 << 20 },
	};
	printf("ferry-bench latency: client on CPU %d, ferryd on CPU %d, %u samples\n",
	       opt.cpu_client, opt.cpu_broker, opt.samples);
	printf("  %-36s %-7s %8s %10s %10s   %s\n", "what", "policy", "bytes", "p50 ns",
	       "p99 ns", "p50 / floor");

	struct bu_lat fl = bu_floor_cacheline(opt.cpu_client, opt.cpu_broker, opt.samples);
	print_row("cache-line ping-pong (floor)", "-", 64, fl, 0, "");
	struct bu_lat fe = bu_floor_eventfd(opt.cpu_client, opt.cpu_broker, opt.samples / 10);
	print_row("eventfd ping-pong (floor)", "-", 8, fe, 0, "");
	struct bu_lat fu = bu_floor_unix(opt.cpu_client, opt.cpu_broker, 64, opt.samples / 10);
	print_row("unix-socket ping-pong (floor)", "-", 64, fu, 0, "");
	struct bu_lat fup[2], fm[2];
	for (int s = 0; s < 2; s++) {
		fup[s] = bu_floor_unix(opt.cpu_client, opt.cpu_broker, sizes[s].bytes,
				       opt.samples / (s ? 100 : 10));
		print_row("unix-socket echo of the payload", "-", sizes[s].bytes, fup[s], 0, "");
	}
	for (int s = 0; s < 2; s++) {
		fm[s] = bu_floor_memcpy(sizes[s].bytes, opt.samples / (s ? 20 : 1));
		print_row("memcpy of the payload", "-", sizes[s].bytes, fm[s], 0, "");
	}
	bu_pin(opt.cpu_client);
	/* First: it forks the echo server before this process uses gRPC. */
	if (opt.grpc)
		latency_floor();

	double shm_hybrid_1k = 0;
	char pols[128];
	snprintf(pols, sizeof(pols), "%s", opt.policies);
	char *save = NULL;
	for (char *p = strtok_r(pols, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		enum fshm_wait_policy wp;
		if (fshm_wait_policy_parse(p, &wp))
			die("unknown policy '%s'", p);
		broker_start(p, "0", "0");
		ferry_client *c = client((ferry_wait)wp, 64);
		for (int s = 0; s < 2; s++) {
			unsigned n = opt.samples / (s ? 20 : 1);
			if (wp == FSHM_WAIT_BLOCK)
				n /= 4;
			struct bu_lat l = measure_rtt(c, sizes[s].model, sizes[s].bytes, n, n / 10 + 10);
			/* The floor: the hand-off (a cache line, or two eventfd
			 * wake-ups when both sides sleep) plus the one copy the
			 * identity model itself makes. */
			bool sleeps = wp == FSHM_WAIT_BLOCK;
			print_row("ferry shm round trip (identity)", p, sizes[s].bytes, l,
				  (sleeps ? fe.p50 : fl.p50) + fm[s].p50,
				  sleeps ? "eventfd+memcpy" : "cache line+memcpy");
			if (wp == FSHM_WAIT_HYBRID && s == 0)
				shm_hybrid_1k = l.p50;
		}
		ferry_close(c);
		broker_stop();
	}

	/* gRPC, to a ferryd with its default wait policy: plain KServe v2
	 * (tensors in the messages, through libferry's remote transport),
	 * then system shared memory (descriptors only, raw calls). */
	if (opt.grpc) {
		char port[16], target[64];
		snprintf(port, sizeof(port), "%d", bu_free_port());
		snprintf(target, sizeof(target), "grpc://127.0.0.1:%s", port);
		broker_start("hybrid", port, "0");
		ferry_client *c = NULL;
		for (int i = 0; i < 100 && ferry_connect(&c, target, NULL); i++)
			usleep(50000);   /* the gRPC listener comes up after the socket */
		if (!c)
			die("connect %s: %s", target, ferry_last_error());
		struct bu_lat g[2], gs[2];
		for (int s = 0; s < 2; s++) {
			unsigned n = opt.samples / (s ? 20 : 10);
			g[s] = measure_rtt(c, sizes[s].model, sizes[s].bytes, n, n / 10 + 10);
			print_row("gRPC round trip (identity)", "hybrid", sizes[s].bytes, g[s],
				  fup[s].p50, "unix-socket echo");
		}
		ferry_close(c);
		for (int s = 0; s < 2; s++) {
			unsigned n = opt.samples / 10;
			gs[s] = measure_grpc_shm(target, sizes[s].model, sizes[s].bytes, n,
						 n / 10 + 10);
			print_row("gRPC + system shm round trip", "hybrid", sizes[s].bytes, gs[s],
				  fu.p50 + fm[s].p50, "unix ping-pong+memcpy");
		}
		broker_stop();
		if (shm_hybrid_1k > 0)
			printf("  1 KiB p50: gRPC %.0fx, gRPC + system shm %.0fx the ferry shm round "
			       "trip (hybrid)\n", g[0].p50 / shm_hybrid_1k, gs[0].p50 / shm_hybrid_1k);
	}
	return 0;
}

/* ---- throughput ---------------------------------------------------- */

struct tp_shared {
	_Atomic uint64_t total;
	_Atomic uint64_t errors;
	_Atomic int ready;
	_Atomic int go;
};

struct tp_ctx {
	ferry_client *c;
	uint64_t end_ns;
	uint64_t done;
	uint64_t errors;
	int inflight;
	int32_t next;           /* the number the next submission carries */
};

/* One request of a throughput process: its input, filled in place. */
struct tp_req {
	struct tp_ctx *t;
	int32_t *in;
};

static void tp_done(ferry_request *r, int status, void *arg);

/* Give the request a number no other submission of this process has,
 * then submit it.  The identity model must echo all four values. */
static void tp_submit(struct tp_req *q, ferry_request *r)
{
	q->in[0] = 7;
	q->in[1] = q->t->next++;
	q->in[2] = ~q->in[1];
	if (ferry_infer_async(q->t->c, r, tp_done, q) == 0)
		q->t->inflight++;
	else
		q->t->errors++;
}

static void tp_done(ferry_request *r, int status, void *arg)
{
	struct tp_req *q = arg;
	struct tp_ctx *t = q->t;
	const int32_t *out;
	t->inflight--;
	if (status || ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&out, NULL) ||
	    memcmp(out, q->in, 4 * sizeof(int32_t))) {
		t->errors++;
	}
	t->done++;
	if (fshm_now_ns() < t->end_ns) {
		ferry_request_reset(r);
		tp_submit(q, r);
	}
}

static void tp_proc(struct tp_shared *sh, ferry_wait w)
{
	struct tp_ctx t = { 0 };
	ferry_model *m;
	t.c = client(w, (uint32_t)opt.depth);
	if (ferry_model_get(t.c, "identity_small", FERRY_LATEST, &m))
		die("%s", ferry_last_error());
	ferry_request **rs = calloc((size_t)opt.depth, sizeof(*rs));
	struct tp_req *qs = calloc((size_t)opt.depth, sizeof(*qs));
	int64_t dims[2] = { 1, 4 };
	for (int i = 0; i < opt.depth; i++) {
		qs[i].t = &t;
		if (ferry_request_new(m, &rs[i]) ||
		    ferry_request_input(rs[i], "INPUT0", FERRY_TYPE_INT32, dims, 2,
					(void **)&qs[i].in))
			die("%s", ferry_last_error());
		qs[i].in[3] = i;
	}
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->go))
		usleep(100);
	t.end_ns = fshm_now_ns() + (uint64_t)(opt.seconds * 1e9);
	for (int i = 0; i < opt.depth; i++)
		tp_submit(&qs[i], rs[i]);
	while (t.inflight > 0)
		if (ferry_poll(t.c, 1, SEC) < 0)
			die("poll: %s", ferry_last_error());
	atomic_fetch_add(&sh->total, t.done);
	atomic_fetch_add(&sh->errors, t.errors);
	ferry_close(t.c);
}

static int cmd_throughput(void)
{
	const char *bw = opt.broker_wait ? opt.broker_wait : "hybrid";
	const char *cw = opt.client_wait ? opt.client_wait : "hybrid";
	enum fshm_wait_policy cwp;
	if (fshm_wait_policy_parse(cw, &cwp))
		die("unknown policy '%s'", cw);
	struct tp_shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(sh, 0, sizeof(*sh));
	opt.cpu_broker = -1; /* let the scheduler place everyone */
	broker_start(bw, "0", "0");
	pid_t *pids = calloc((size_t)opt.processes, sizeof(*pids));
	for (int p = 0; p < opt.processes; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			tp_proc(sh, (ferry_wait)cwp);
			_exit(0);
		}
	}
	while (atomic_load(&sh->ready) < opt.processes)
		usleep(1000);
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	uint64_t t0 = fshm_now_ns();
	atomic_store(&sh->go, 1);
	for (int p = 0; p < opt.processes; p++)
		waitpid(pids[p], NULL, 0);
	double secs = (double)(fshm_now_ns() - t0) / 1e9;
	getrusage(RUSAGE_SELF, &r1);
	double bcpu = broker_stop();
	double rps = (double)atomic_load(&sh->total) / secs;
	printf("ferry-bench throughput: %d processes x %d in flight, identity INT32[4], "
	       "ferryd wait %s, clients %s\n", opt.processes, opt.depth, bw, cw);
	printf("  requests %llu in %.2f s: %.0f requests/s, %llu errors; ferryd CPU %.2f s "
	       "(%.0f%% of one core)\n",
	       (unsigned long long)atomic_load(&sh->total), secs, rps,
	       (unsigned long long)atomic_load(&sh->errors), bcpu, 100.0 * bcpu / secs);
	if (csv)
		fprintf(csv, "throughput,%d,%d,%s,%s,%.0f,%llu,%.3f\n", opt.processes, opt.depth,
			bw, cw, rps, (unsigned long long)atomic_load(&sh->errors), bcpu / secs);
	free(pids);
	return atomic_load(&sh->errors) ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: ferry-bench MODE [OPTIONS]\n"
"Modes:\n"
"  latency      identity round trip through ferryd, 1 KiB and 1 MiB: over shared\n"
"               memory per wait policy, over gRPC and over gRPC with system\n"
"               shared memory, beside the cache-line, eventfd, Unix-socket and\n"
"               memcpy floors; at 1 KiB, gRPC raw calls beside gRPC's own floor\n"
"               (a bare echo server on gRPC core), and HTTP/REST\n"
"  throughput   requests/s from --processes clients, --depth in flight each\n"
"Options:\n"
"  --ferryd PATH        the broker to start (default: the build tree's, then\n"
"                       ../sbin/ferryd, then ferryd on PATH; env FERRY_FERRYD)\n"
"  --cpus A,B           client CPU and ferryd CPU for latency (0,1)\n"
"  --samples N          latency samples for 1 KiB (20000; 1 MiB uses N/20)\n"
"  --policies LIST      latency: wait policies to measure (spin,hybrid,block)\n"
"  --no-grpc            latency: leave out the gRPC and HTTP rows\n"
"  --processes N        throughput: client processes (2)\n"
"  --depth N            throughput: requests in flight per process (64)\n"
"  --seconds S          throughput: duration (3)\n"
"  --broker-wait P      throughput: ferryd's policy (hybrid)\n"
"  --client-wait P      throughput: the clients' policy (hybrid)\n"
"  --csv FILE           append rows as CSV\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ferryd", required_argument, NULL, 'f' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "samples", required_argument, NULL, 'n' },
		{ "policies", required_argument, NULL, 'P' },
		{ "no-grpc", no_argument, NULL, 'G' },
		{ "processes", required_argument, NULL, 'p' },
		{ "depth", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 's' },
		{ "broker-wait", required_argument, NULL, 'B' },
		{ "client-wait", required_argument, NULL, 'C' },
		{ "csv", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	if (argc < 2 || argv[1][0] == '-') {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *mode = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'f': opt.ferryd = optarg; break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &opt.cpu_client, &opt.cpu_broker) != 2)
				die("--cpus A,B");
			break;
		case 'n': opt.samples = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'P': opt.policies = optarg; break;
		case 'G': opt.grpc = false; break;
		case 'p': opt.processes = atoi(optarg); break;
		case 'd': opt.depth = atoi(optarg); break;
		case 's': opt.seconds = atof(optarg); break;
		case 'B': opt.broker_wait = optarg; break;
		case 'C': opt.client_wait = optarg; break;
		case 'o': opt.csv = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (opt.samples < 100 || opt.processes < 1 || opt.depth < 1 || opt.seconds <= 0)
		die("bad option value");
	if (!bu_cpu_ok(opt.cpu_client) || !bu_cpu_ok(opt.cpu_broker))
		die("CPU %d or %d is not available (see --cpus)", opt.cpu_client, opt.cpu_broker);
	if (opt.csv && !(csv = fopen(opt.csv, "a")))
		die("%s: %s", opt.csv, strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	setup_repo();
	atexit(cleanup);
	int ret;
	if (!strcmp(mode, "latency"))
		ret = cmd_latency();
	else if (!strcmp(mode, "throughput"))
		ret = cmd_throughput();
	else {
		usage(stderr);
		ret = 2;
	}
	if (csv)
		fclose(csv);
	return ret;
}
