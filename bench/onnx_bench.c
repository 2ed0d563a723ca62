/* SPDX-License-Identifier: MIT */
/*
 * onnx_bench.c - ferry-onnx-bench: throughput of ONNX models through ferryd
 * against the same executor called in-process, and (with a GPU) against
 * a raw cuBLAS loop of the same dense layers
 *
 *   ferry-onnx-bench [--models DIR] [--ferryd PATH] [--backend-dir DIR]
 *                    [--seconds S] [--inflight N] [--csv FILE]
 *
 * --models: a directory written by tests/onnx/gen_models.py (mlp.onnx,
 * conv2d.onnx); without it the models are generated into a temporary
 * directory with $FERRY_TOP_SRCDIR/.venv/bin/python (default: the source
 * tree this binary was configured from).  --ferryd: the broker to start
 * (default: broker/ferryd beside the build tree's bench); --backend-dir:
 * where libferry_onnx.so lives for a ferryd without the built-in (default:
 * tests/onnx/.libs of the build tree).
 *
 * CPU rows.  For the MLP (16-64-32-32-5) and the 2-D convolutional net
 * (3x16x16 input) at batch sizes 1, 8, 64 and 256: items per second of
 * the executor in this process (one context, one OpenBLAS thread: what a
 * broker instance runs) and of a ferryd with ONE KIND_CPU instance, fed by
 * one client keeping --inflight requests of that batch size in flight.
 * The ferryd model has no dynamic batching, so each request runs as
 * submitted and the ratio is the broker's overhead per request (shared
 * memory rings, scheduling, completion), not a batching gain.
 *
 * GPU rows (a CUDA build on a machine with a device; else "skipped: no
 * GPU").  End-to-end items/s of the MLP through ferryd on a KIND_GPU
 * instance and through the GPU executor in-process, beside a raw loop of
 * the same four dense layers (H2D, cuBLAS sgemm x4, D2H, sync) on pinned
 * memory in the same run; and the host-to-device copy rate from a memfd
 * mapping registered with cudaHostRegister, from cudaMallocHost memory and
 * from pageable memory.
 *
 * The numbers are noisy on a shared machine: each figure is the best of
 * three runs of --seconds, and the two sides of each ratio are measured
 * back to back.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "broker/backends/onnx/ox_backend.h"
#include "broker/backends/onnx/ox_cuda.h"
#include "broker/backends/onnx/ox_exec.h"
#include "broker/gpu/gpu.h"
#ifdef HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

#define SEC 1000000000LL

static const int BATCHES[] = { 1, 8, 64, 256 };
#define NBATCH ((int)(sizeof(BATCHES) / sizeof(BATCHES[0])))
#define MAXB 256

struct net {
	const char *name;	/* gen_models.py's name */
	size_t in_row, out_row;
	int64_t dims[4];
	int nd;
	const char *dims_cfg, *out_cfg;
};

static const struct net NETS[] = {
	{ "mlp", 16, 5, { 1, 16 }, 2, "16", "5" },
	{ "conv2d", 768, 10, { 1, 3, 16, 16 }, 4, "3, 16, 16", "10" },
};

static struct {
	const char *models, *ferryd, *backend_dir, *csv;
	double seconds;
	int inflight;
} opt = { .seconds = 0.5, .inflight = 4 };

static FILE *csv;
static char tmpdir[256];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ferry-onnx-bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;
	void *buf;

	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read %s", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static struct ox_model *load(const struct net *n)
{
	char path[PATH_MAX], err[1024];
	struct ox_model *m;
	size_t len;
	void *buf;

	snprintf(path, sizeof(path), "%s/%s.onnx", opt.models, n->name);
	buf = slurp(path, &len);
	if (ox_model_load(buf, len, &m, err, sizeof(err)))
		die("%s: %s", path, err);
	free(buf);
	return m;
}

static float *random_input(size_t n)
{
	float *x = malloc(n * sizeof(float) + 1);

	if (!x)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		x[i] = (float)((double)rand() / RAND_MAX * 2.0 - 1.0);
	return x;
}

/* ------------------------------------------------------------------ */
/* in-process                                                           */

static double inproc_cpu(struct ox_model *m, const struct net *n, int B)
{
	struct ox_ctx *c;
	float *x = random_input(n->in_row * MAXB), *y = malloc(n->out_row * MAXB * 4);
	const float *in[1] = { x };
	float *out[1] = { y };
	double best = 0;

	if (ox_ctx_create(m, B, &c))
		die("context");
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now(), t;
		long iters = 0;

		do {
			ox_run(c, B, in, out);
			iters++;
		} while ((t = now() - t0) < opt.seconds);
		if ((double)iters * B / t > best)
			best = (double)iters * B / t;
	}
	ox_ctx_free(c);
	free(x);
	free(y);
	return best;
}

/* ------------------------------------------------------------------ */
/* ferryd                                                               */

static pid_t broker_pid;
static char sock[512];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		die("cannot write %s", path);
}

static void add_model(const char *repo, const char *name, const struct net *n,
		      const char *kind)
{
	char path[PATH_MAX], cfg[1024], cmd[2 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", repo, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/1", repo, name);
	mkdir(path, 0755);
	snprintf(cmd, sizeof(cmd), "cp '%s/%s.onnx' '%s/model.onnx'", opt.models, n->name, path);
	if (system(cmd))
		die("%s failed", cmd);
	/* no dynamic batching: each request runs alone (see the top) */
	snprintf(cfg, sizeof(cfg),
		 "platform: \"onnxruntime_onnx\"\nmax_batch_size: %d\n"
		 "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ %s ] } ]\n"
		 "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ %s ] } ]\n"
		 "instance_group [ { count: 1 kind: %s } ]\n", MAXB, n->dims_cfg, n->out_cfg,
		 kind);
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", repo, name);
	write_file(path, cfg);
}

static int connectable(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ok;

	if (strlen(sock) >= sizeof(sa.sun_path))
		die("socket path %s is too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void start_broker(int gpu)
{
	char repo[600], logf[600];

	snprintf(repo, sizeof(repo), "%s/repo", tmpdir);
	mkdir(repo, 0755);
	for (size_t i = 0; i < sizeof(NETS) / sizeof(NETS[0]); i++)
		add_model(repo, NETS[i].name, &NETS[i], "KIND_CPU");
	if (gpu)
		add_model(repo, "mlp_gpu", &NETS[0], "KIND_GPU");
	snprintf(sock, sizeof(sock), "%s/ferryd.sock", tmpdir);
	snprintf(logf, sizeof(logf), "%s/ferryd.log", tmpdir);
	broker_pid = fork();
	if (broker_pid < 0)
		die("fork");
	if (broker_pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0)
			dup2(fd, 2);
		execl(opt.ferryd, opt.ferryd, "--model-repository", repo, "--socket", sock,
		      "--backend-directory", opt.backend_dir, "--log-level", "warn",
		      "--exit-on-error=false", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		int st;

		if (connectable())
			return;
		if (waitpid(broker_pid, &st, WNOHANG) == broker_pid) {
			char cmd[700];

			snprintf(cmd, sizeof(cmd), "cat '%s' >&2", logf);
			(void)!system(cmd);
			die("%s exited during start-up", opt.ferryd);
		}
		usleep(10000);
	}
	die("ferryd did not listen within 10 s");
}

static void stop_broker(void)
{
	if (broker_pid > 0) {
		kill(broker_pid, SIGTERM);
		waitpid(broker_pid, NULL, 0);
		broker_pid = 0;
	}
}

/* items/s through ferryd: opt.inflight requests of B rows kept in flight */
static double via_ferryd(ferry_client *c, const char *model, const struct net *n, int B)
{
	ferry_model *m;
	ferry_request *rs[64];
	int k = opt.inflight > 64 ? 64 : opt.inflight;
	int64_t d[4];
	double best = 0;

	if (ferry_model_get(c, model, FERRY_LATEST, &m))
		die("model %s: %s", model, ferry_last_error());
	memcpy(d, n->dims, sizeof(d));
	d[0] = B;
	for (int i = 0; i < k; i++) {
		float *x;

		if (ferry_request_new(m, &rs[i]) ||
		    ferry_request_input(rs[i], "x", FERRY_TYPE_FP32, d, n->nd, (void **)&x))
			die("request: %s", ferry_last_error());
		for (size_t j = 0; j < (size_t)B * n->in_row; j++)
			x[j] = (float)((double)rand() / RAND_MAX * 2.0 - 1.0);
	}
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now(), t;
		long done = 0;

		for (int i = 0; i < k; i++)
			if (ferry_infer_async(c, rs[i], NULL, NULL))
				die("submit: %s", ferry_last_error());
		for (int i = 0;; i = (i + 1) % k) {
			if (ferry_request_wait(rs[i], 30 * SEC))
				die("%s: %s", model, ferry_last_error());
			done++;
			if ((t = now() - t0) >= opt.seconds)
				break;
			ferry_request_reset(rs[i]);
			if (ferry_infer_async(c, rs[i], NULL, NULL))
				die("submit: %s", ferry_last_error());
		}
		/* drain the rest before the next repetition */
		for (int i = 0; i < k; i++)
			if (!ferry_request_done(rs[i]))
				ferry_request_wait(rs[i], 30 * SEC);
		for (int i = 0; i < k; i++)
			ferry_request_reset(rs[i]);
		if ((double)done * B / t > best)
			best = (double)done * B / t;
	}
	for (int i = 0; i < k; i++)
		ferry_request_free(rs[i]);
	return best;
}

/* ------------------------------------------------------------------ */
/* GPU                                                                  */

#ifdef HAVE_CUDA
/* The MLP's dense layers as a raw cuBLAS loop: the floor ferry's GPU path
 * is compared with (same shapes, no bias, activation or softmax kernels). */
static double raw_cublas_mlp(int B)
{
	static const int dim[5] = { 16, 64, 32, 32, 5 };
	float *w[4], *act[5], *hx, *hy;
	cublasHandle_t h;
	cudaStream_t s;
	const float one = 1.0f, zero = 0.0f;
	double best = 0;

	cudaStreamCreate(&s);
	cublasCreate(&h);
	cublasSetStream(h, s);
	for (int l = 0; l < 4; l++)
		cudaMalloc((void **)&w[l], (size_t)dim[l] * dim[l + 1] * sizeof(float));
	for (int l = 0; l < 5; l++)
		cudaMalloc((void **)&act[l], (size_t)MAXB * dim[l] * sizeof(float));
	cudaMallocHost((void **)&hx, (size_t)MAXB * dim[0] * sizeof(float));
	cudaMallocHost((void **)&hy, (size_t)MAXB * dim[4] * sizeof(float));
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now(), t;
		long iters = 0;

		do {
			cudaMemcpyAsync(act[0], hx, (size_t)B * dim[0] * sizeof(float),
					cudaMemcpyHostToDevice, s);
			for (int l = 0; l < 4; l++)
				cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, dim[l + 1], B, dim[l],
					    &one, w[l], dim[l + 1], act[l], dim[l], &zero,
					    act[l + 1], dim[l + 1]);
			cudaMemcpyAsync(hy, act[4], (size_t)B * dim[4] * sizeof(float),
					cudaMemcpyDeviceToHost, s);
			cudaStreamSynchronize(s);
			iters++;
		} while ((t = now() - t0) < opt.seconds);
		if ((double)iters * B / t > best)
			best = (double)iters * B / t;
	}
	for (int l = 0; l < 4; l++)
		cudaFree(w[l]);
	for (int l = 0; l < 5; l++)
		cudaFree(act[l]);
	cudaFreeHost(hx);
	cudaFreeHost(hy);
	cublasDestroy(h);
	cudaStreamDestroy(s);
	return best;
}

/* The executor's CUDA module (ox_cuda.so) in this process. */
static double inproc_gpu(struct ox_model *m, const struct net *n, int B)
{
	const struct ox_cuda_ops *cu;
	struct ox_cuda_weights *w;
	struct ox_cuda_ctx *c;
	char err[640];
	float *x, *y;
	double best = 0;

	if (ox_cuda_load(&cu, err, sizeof(err)))
		die("GPU executor: %s", err);
	if (cu->weights_create(m, 0, &w, err, sizeof(err)) ||
	    cu->ctx_create(m, w, B, 1, &c, err, sizeof(err)))
		die("GPU context: %s", err);
	cudaMallocHost((void **)&x, n->in_row * MAXB * sizeof(float));
	cudaMallocHost((void **)&y, n->out_row * MAXB * sizeof(float));
	const float *in[1] = { x };
	float *out[1] = { y };
	struct ox_cuda_part p = { B, in, out };

	for (int rep = 0; rep < 3; rep++) {
		double t0 = now(), t;
		long iters = 0;

		do {
			if (cu->run(c, 1, &p, NULL, NULL, err, sizeof(err)))
				die("GPU run: %s", err);
			iters++;
		} while ((t = now() - t0) < opt.seconds);
		if ((double)iters * B / t > best)
			best = (double)iters * B / t;
	}
	cudaFreeHost(x);
	cudaFreeHost(y);
	cu->ctx_free(c);
	cu->weights_free(w);
	return best;
}

/* GB/s of 64 MiB host-to-device copies from @src, best of 10 */
static double h2d_rate(const void *src, void *dst, size_t bytes)
{
	double best = 0;

	for (int i = 0; i < 10; i++) {
		double t0 = now(), t;

		cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
		t = now() - t0;
		if ((double)bytes / t / 1e9 > best)
			best = (double)bytes / t / 1e9;
	}
	return best;
}

static void gpu_h2d(void)
{
	const size_t bytes = 64u << 20;
	void *dev, *pinned, *pageable;
	int fd = memfd_create("ferry-bench-arena", MFD_CLOEXEC);
	char *arena;

	if (fd < 0 || ftruncate(fd, (off_t)bytes))
		die("memfd");
	arena = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (arena == MAP_FAILED)
		die("mmap");
	memset(arena, 1, bytes);
	cudaMalloc(&dev, bytes);
	cudaMallocHost(&pinned, bytes);
	pageable = malloc(bytes);
	memset(pinned, 1, bytes);
	memset(pageable, 1, bytes);
	double r_page = h2d_rate(pageable, dev, bytes);
	double r_pin = h2d_rate(pinned, dev, bytes);
	double r_reg = -1;

	if (gpu_host_register(arena, bytes) == 0) {
		r_reg = h2d_rate(arena, dev, bytes);
		gpu_host_unregister(arena);
	}
	printf("\nH2D copies of 64 MiB (GB/s, best of 10)\n");
	printf("%-36s %10.1f\n", "memfd mapping, cudaHostRegister", r_reg);
	printf("%-36s %10.1f\n", "cudaMallocHost", r_pin);
	printf("%-36s %10.1f\n", "pageable malloc", r_page);
	printf("%-36s %10.2f\n", "ratio registered / cudaMallocHost", r_reg / r_pin);
	if (csv) {
		fprintf(csv, "h2d,registered_memfd,,%.3f,,\n", r_reg);
		fprintf(csv, "h2d,cudaMallocHost,,%.3f,,\n", r_pin);
		fprintf(csv, "h2d,pageable,,%.3f,,\n", r_page);
	}
	cudaFree(dev);
	cudaFreeHost(pinned);
	free(pageable);
	munmap(arena, bytes);
}
#endif

/* ------------------------------------------------------------------ */

static void usage(const char *p)
{
	fprintf(stderr, "usage: %s [--models DIR] [--ferryd PATH] [--backend-dir DIR] "
		"[--seconds S] [--inflight N] [--csv FILE]\n", p);
	exit(2);
}

static void defaults(const char *argv0)
{
	static char ferryd[PATH_MAX + 32], bdir[PATH_MAX + 32], mdir[PATH_MAX];
	const char *build = getenv("FERRY_TOP_BUILDDIR");
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	/* libtool wrappers run the binary from .libs: look one level up too */
	if (!build && n > 0) {
		self[n] = 0;
		if ((slash = strrchr(self, '/')))
			*slash = 0;
		if ((slash = strrchr(self, '/')) && !strcmp(slash, "/.libs"))
			*slash = 0;
		if ((slash = strrchr(self, '/')) && !strcmp(slash, "/bench"))
			*slash = 0;
		build = self;
	}
	if (!opt.ferryd) {
		snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", build ? build : ".");
		opt.ferryd = ferryd;
	}
	if (!opt.backend_dir) {
		snprintf(bdir, sizeof(bdir), "%s/tests/onnx/.libs", build ? build : ".");
		opt.backend_dir = bdir;
	}
	if (!opt.models) {
		const char *src = getenv("FERRY_TOP_SRCDIR");
		char cmd[3 * PATH_MAX];

		if (!src)
			src = FERRY_SRCDIR;
		snprintf(mdir, sizeof(mdir), "%s/models", tmpdir);
		snprintf(cmd, sizeof(cmd), "'%s/.venv/bin/python' '%s/tests/onnx/gen_models.py' "
			 "'%s' >/dev/null", src, src, mdir);
		if (system(cmd))
			die("generating the models failed (%s); pass --models DIR", cmd);
		opt.models = mdir;
	}
	(void)argv0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "models", required_argument, NULL, 'm' },
		{ "ferryd", required_argument, NULL, 'f' },
		{ "backend-dir", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "csv", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	double cpu_in[2][NBATCH], cpu_fd[2][NBATCH];
	ferry_client *c;
	int ch, gpus;
	char cmd[400];

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': opt.models = optarg; break;
		case 'f': opt.ferryd = optarg; break;
		case 'b': opt.backend_dir = optarg; break;
		case 's': opt.seconds = atof(optarg); break;
		case 'i': opt.inflight = atoi(optarg); break;
		case 'c': opt.csv = optarg; break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc || opt.seconds <= 0 || opt.inflight < 1)
		usage(argv[0]);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-onnx-bench-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	defaults(argv[0]);
	if (opt.csv && !(csv = fopen(opt.csv, "w")))
		die("cannot write %s", opt.csv);
	if (csv)
		fprintf(csv, "part,model,batch,inproc_items_s,ferryd_items_s,ratio\n");
	srand(1);
	char why[512];

	gpus = gpu_init(true, why, sizeof(why));

	/* Row by row, in-process then through the (idle until then) broker,
	 * so that both sides of a ratio see the same machine load. */
	start_broker(gpus > 0);
	if (ferry_connect(&c, sock, NULL))
		die("connect: %s", ferry_last_error());
	for (int k = 0; k < 2; k++) {
		struct ox_model *m = load(&NETS[k]);

		for (int b = 0; b < NBATCH; b++) {
			cpu_in[k][b] = inproc_cpu(m, &NETS[k], BATCHES[b]);
			cpu_fd[k][b] = via_ferryd(c, NETS[k].name, &NETS[k], BATCHES[b]);
		}
		ox_model_free(m);
	}

	printf("ONNX on the CPU: items/s, best of 3 x %.2f s; one OpenBLAS thread, one "
	       "instance, %d requests in flight, no dynamic batching\n", opt.seconds,
	       opt.inflight);
	printf("%-8s %6s %14s %14s %8s\n", "model", "batch", "in-process", "ferryd", "ratio");
	for (int k = 0; k < 2; k++)
		for (int b = 0; b < NBATCH; b++) {
			double r = cpu_fd[k][b] / cpu_in[k][b];

			printf("%-8s %6d %14.0f %14.0f %8.2f\n", NETS[k].name, BATCHES[b],
			       cpu_in[k][b], cpu_fd[k][b], r);
			if (csv)
				fprintf(csv, "cpu,%s,%d,%.1f,%.1f,%.4f\n", NETS[k].name,
					BATCHES[b], cpu_in[k][b], cpu_fd[k][b], r);
		}

	if (gpus < 1) {
		printf("\nGPU: skipped: %s\n", why);
	} else {
#ifdef HAVE_CUDA
		struct ox_model *m = load(&NETS[0]);

		printf("\nMLP on GPU 0: items/s, best of 3 x %.2f s (ferryd: one KIND_GPU "
		       "instance, %d requests in flight)\n", opt.seconds, opt.inflight);
		printf("%6s %14s %14s %14s %10s %10s\n", "batch", "raw cuBLAS", "in-process",
		       "ferryd", "inproc/raw", "ferryd/raw");
		for (int b = 0; b < NBATCH; b++) {
			int B = BATCHES[b];
			double raw = raw_cublas_mlp(B), ip = inproc_gpu(m, &NETS[0], B);
			double fd = via_ferryd(c, "mlp_gpu", &NETS[0], B);

			printf("%6d %14.0f %14.0f %14.0f %10.2f %10.2f\n", B, raw, ip, fd,
			       ip / raw, fd / raw);
			if (csv)
				fprintf(csv, "gpu,mlp,%d,%.1f,%.1f,%.4f\nraw_cublas,mlp,%d,%.1f,,\n",
					B, ip, fd, fd / raw, B, raw);
		}
		ox_model_free(m);
		gpu_h2d();
#endif
	}
	ferry_close(c);
	stop_broker();
	if (csv)
		fclose(csv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
	return 0;
}
