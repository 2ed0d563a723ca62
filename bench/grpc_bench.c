/* SPDX-License-Identifier: MIT */
/*
 * grpc_bench.c - ferry-grpc-bench: the round trip of `identity` over the
 * three ways a client reaches ferryd, in one run, with ratios:
 *
 *   shm        libferry's local transport (shared-memory session)
 *   grpc       libferry's remote transport (KServe v2 over gRPC, loopback)
 *   grpc+shm   gRPC with Triton's system shared memory extension: tensors in
 *              registered POSIX shm regions, only descriptors on the wire
 *              (raw gRPC calls, as tritonclient / perf_analyzer make them:
 *              bench/grpc_util.c)
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
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"
#include "bench/grpc_util.h"

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
	struct gu_chan *ch = gu_open(target);
	struct gu_region rin, rout;
	int64_t shape[1] = { (int64_t)(bytes / 4) };
	struct gu_tensor in = { .name = "IN", .datatype = "FP32", .shape = shape, .ndims = 1,
				.region = "in", .bytes = bytes };
	struct gu_tensor out = { .name = "OUT", .region = "out", .bytes = bytes };
	struct gu_infer *q;

	if (!ch)
		die("grpc+shm: %s", gu_error());
	if (gu_region_create(&rin, "in", bytes) || gu_region_create(&rout, "out", bytes) ||
	    gu_region_register(ch, &rin) || gu_region_register(ch, &rout))
		die("grpc+shm: %s", gu_error());
	float *x = rin.base, *y = rout.base;
	for (size_t i = 0; i < bytes / 4; i++)
		x[i] = (float)i;
	/* The request: descriptors only. */
	if (!(q = gu_infer_new("bench_identity", &in, 1, &out, 1)))
		die("grpc+shm: %s", gu_error());
	uint64_t *v = calloc(n, sizeof(*v));
	for (unsigned i = 0; i < n + n / 10; i++) {
		uint64_t t0 = now_ns();
		if (gu_infer(ch, q))
			die("grpc+shm: ModelInfer: %s", gu_error());
		uint64_t t1 = now_ns();
		if (i >= n / 10)
			v[i - n / 10] = t1 - t0;
	}
	if (y[bytes / 4 - 1] != (float)(bytes / 4 - 1))
		die("grpc+shm: the output region does not hold the input");
	if (gu_region_unregister(ch, NULL))
		die("grpc+shm: %s", gu_error());
	struct row row = { "grpc+shm", bytes, bu_lat_of(v, n), 0 };
	row.rps = 1e9 / row.lat.mean;
	free(v);
	gu_infer_free(q);
	gu_close(ch);
	gu_region_destroy(&rin);
	gu_region_destroy(&rout);
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
	snprintf(port, sizeof(port), "%d", bu_free_port());
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	const char *fd = find_ferryd(ferryd_path);
	pid_t pid = fork();
	if (pid == 0) {
		execlp(fd, fd, "-m", path, "-s", sock, "--grpc-port", port, "--allow-client-shm",
		       "--grpc-max-message-bytes", "64M", "--log-level", "warn", (char *)NULL);
		fprintf(stderr, "ferry-grpc-bench: cannot run %s: %s\n", fd, strerror(errno));
		_exit(127);
	}
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
	return 0;
}
