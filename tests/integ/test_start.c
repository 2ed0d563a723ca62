/* SPDX-License-Identifier: MIT */
/*
 * Disk-less and memory-tight starts: a real ferryd started on a missing
 * repository, on files that cannot be read, with a client whose arena is
 * full, and with an address-space limit that makes a session's allocation
 * fail.  Each ends with a clear message (the tests check its text), no
 * crash, and, where the broker keeps running, the other models served.
 *
 * The tests run as root in CI, where chmod 000 does not stop a read: the
 * unreadable files are made unreadable for everyone instead (a directory
 * in place of the file, a dangling symbolic link, a FIFO), and the chmod
 * case runs its ferryd as `nobody` when the test runs as root.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "tests/integ/harness.h"

#define SEC 1000000000LL

TestSuite(start, .timeout = 60);

/* Run ferryd on b's repository until it exits (at most 10 s); its exit
 * status, its log in b->log. */
static int run_until_exit(struct th_broker *b, const char *extra)
{
	char cmd[1400];
	snprintf(cmd, sizeof(cmd),
		 "timeout -s KILL 10 %s/broker/ferryd --model-repository %s --socket %s "
		 "--grpc-port 0 --metrics-port 0 %s 2>>%s",
		 getenv("FERRY_TOP_BUILDDIR"), b->repo, b->sock, extra, b->log);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Does the log hold this text? */
static bool log_has(const struct th_broker *b, const char *text)
{
	static char buf[1 << 20];
	FILE *f = fopen(b->log, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void dump_log(const struct th_broker *b)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "cat %s >&2", b->log);
	(void)!system(cmd);
}

/* One add_sub round trip on "simple"; 0 when the sums are right. */
static int add_sub_once(ferry_client *c)
{
	ferry_model *m;
	ferry_request *r;
	int32_t *a, *b;
	const int32_t *o0, *o1;
	int64_t dims[2] = { 1, 16 };
	int ret;
	if ((ret = ferry_model_get(c, "simple", FERRY_LATEST, &m)) || (ret = ferry_request_new(m, &r)))
		return ret;
	if ((ret = ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a)) ||
	    (ret = ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b)))
		goto out;
	for (int i = 0; i < 16; i++) {
		a[i] = i * 7;
		b[i] = 3 - i;
	}
	if ((ret = ferry_infer(c, r, 10 * SEC)) ||
	    (ret = ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&o0, NULL)) ||
	    (ret = ferry_request_output(r, "OUTPUT1", NULL, NULL, NULL, (const void **)&o1, NULL)))
		goto out;
	for (int i = 0; i < 16; i++)
		if (o0[i] != a[i] + b[i] || o1[i] != a[i] - b[i])
			ret = -1000;
out:
	ferry_request_free(r);
	return ret;
}

/* The neighbour a lenient broker still serves: one identity round trip. */
static int identity_once(ferry_client *c)
{
	ferry_model *m;
	ferry_request *r;
	float *in;
	const float *out;
	int64_t dims[2] = { 1, 256 };
	int ret;
	if ((ret = ferry_model_get(c, "identity", FERRY_LATEST, &m)) || (ret = ferry_request_new(m, &r)))
		return ret;
	if ((ret = ferry_request_input(r, "INPUT0", FERRY_TYPE_FP32, dims, 2, (void **)&in)))
		goto out;
	for (int i = 0; i < 256; i++)
		in[i] = (float)i * 0.5f;
	if ((ret = ferry_infer(c, r, 10 * SEC)) ||
	    (ret = ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&out, NULL)))
		goto out;
	for (int i = 0; i < 256; i++)
		if (out[i] != (float)i * 0.5f)
			ret = -1000;
out:
	ferry_request_free(r);
	return ret;
}

Test(start, missing_repository_exits_with_a_clear_error)
{
	struct th_broker b;
	th_init(&b);
	char gone[400];
	snprintf(gone, sizeof(gone), "%s", b.repo);
	cr_assert_eq(rmdir(b.repo), 0);

	for (int lenient = 0; lenient < 2; lenient++) {
		int rc = run_until_exit(&b, lenient ? "--exit-on-error=false" : "");
		if (rc == 0 || rc == 137) /* 137: still running after 10 s */
			dump_log(&b);
		cr_assert(rc != 0 && rc != 137, "ferryd exits non-zero, without hanging (rc %d)", rc);
		char want[600];
		snprintf(want, sizeof(want), "%s: cannot open the model repository: No such file or directory",
			 gone);
		cr_assert(log_has(&b, want), "the log names the repository and why");
		/* The hint about lenient loading does not apply: there are no
		 * models to serve. */
		cr_assert_not(log_has(&b, "serves the others"), "no misleading hint");
		cr_assert(log_has(&b, "cannot be read (see above); exiting"));
		cr_assert_eq(access(b.sock, F_OK), -1, "no socket left behind");
	}
	/* A regular file where the repository should be: the same. */
	FILE *f = fopen(b.repo, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_neq(run_until_exit(&b, ""), 0);
	cr_assert(log_has(&b, "cannot open the model repository: Not a directory"));
	th_cleanup(&b);
}

/* Put something unreadable in place of "simple"'s config.pbtxt; a
 * strict broker stops with @why in its log; a lenient one serves the
 * other models and names @why for "simple". */
static void unreadable_config(void (*plant)(const char *path), const char *why)
{
	struct th_broker b;
	char path[600];
	th_init(&b);
	th_examples(&b);
	snprintf(path, sizeof(path), "%s/simple/config.pbtxt", b.repo);
	cr_assert_eq(unlink(path), 0);
	plant(path);

	cr_assert_neq(run_until_exit(&b, ""), 0, "strict: ferryd exits");
	char want[800];
	snprintf(want, sizeof(want), "model 'simple': %s: %s", path, why);
	if (!log_has(&b, want))
		dump_log(&b);
	cr_assert(log_has(&b, want), "the log says: %s", want);

	th_start(&b, "--exit-on-error=false", "--grpc-port", "0", "--metrics-port", "0", NULL);
	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "simple", FERRY_LATEST, &m), FERRY_UNAVAILABLE);
	cr_assert(strstr(ferry_last_error(), why), "the client is told why: %s", ferry_last_error());
	cr_assert_eq(identity_once(c), 0, "the other models serve: %s", ferry_last_error());
	ferry_close(c);
	cr_assert(th_alive(b.pid));
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}

static void plant_dir(const char *path) { cr_assert_eq(mkdir(path, 0755), 0); }
static void plant_fifo(const char *path) { cr_assert_eq(mkfifo(path, 0644), 0); }
static void plant_dangling(const char *path)
{
	cr_assert_eq(symlink("/nonexistent/ferry-test-config.pbtxt", path), 0);
}

Test(start, config_that_is_a_directory)
{
	unreadable_config(plant_dir, "not a regular file");
}

Test(start, config_that_is_a_fifo)
{
	/* Opened without blocking: a FIFO must not hang the scan. */
	unreadable_config(plant_fifo, "not a regular file");
}

Test(start, config_that_is_a_dangling_symlink)
{
	unreadable_config(plant_dangling, "a dangling symbolic link");
}

/*
 * run_until_exit() as an unprivileged user when the test runs as root (as
 * CI does): root reads a file whatever its mode, so a child process gives
 * the test's directory to `nobody` (65534), drops its groups, gid and uid
 * (setuid from root clears every capability), and only then runs ferryd.
 * The child asserts nothing: it hands ferryd's exit status back (or 126
 * when it could not drop its privileges).
 */
#define START_NOBODY 65534
static int run_until_exit_unprivileged(struct th_broker *b, const char *extra)
{
	if (geteuid() != 0)
		return run_until_exit(b, extra);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "chown -R %d:%d %s", START_NOBODY, START_NOBODY, b->dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(START_NOBODY) || setuid(START_NOBODY) ||
		    setuid(0) == 0)
			_exit(126);
		_exit(run_until_exit(b, extra));
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 126,
		  "the child could not drop its privileges (status %#x)", st);
	return WEXITSTATUS(st);
}

Test(start, config_without_read_permission)
{
	struct th_broker b;
	char path[600];
	th_init(&b);
	th_examples(&b);
	snprintf(path, sizeof(path), "%s/simple/config.pbtxt", b.repo);
	cr_assert_eq(chmod(path, 0), 0);
	cr_assert_neq(run_until_exit_unprivileged(&b, ""), 0);
	char want[800];
	snprintf(want, sizeof(want), "%s: Permission denied", path);
	cr_assert(log_has(&b, want), "the log says: %s", want);
	th_cleanup(&b);
}

/* An ONNX model whose model file cannot be read; the rest of the
 * repository serves. */
static void unreadable_model_file(void (*plant)(const char *path), const char *why)
{
	struct th_broker b;
	char path[600];
	th_init(&b);
	th_examples(&b);
	th_model(&b, "ox",
		 "name: \"ox\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 0\n"
		 "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
		 "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n");
	snprintf(path, sizeof(path), "%s/ox/1/model.onnx", b.repo);
	if (plant)
		plant(path);

	cr_assert_neq(run_until_exit(&b, ""), 0, "strict: ferryd exits");
	char want[800];
	snprintf(want, sizeof(want), "model 'ox' version 1 failed to load: ");
	cr_assert(log_has(&b, want), "the log names the model");
	if (!log_has(&b, why))
		dump_log(&b);
	cr_assert(log_has(&b, why), "the log says why: %s", why);

	th_start(&b, "--exit-on-error=false", "--grpc-port", "0", "--metrics-port", "0", NULL);
	ferry_client *c;
	ferry_model *m;
	cr_assert_eq(ferry_connect(&c, b.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "ox", FERRY_LATEST, &m), FERRY_UNAVAILABLE);
	cr_assert(strstr(ferry_last_error(), why), "the client is told why: %s", ferry_last_error());
	cr_assert_eq(add_sub_once(c), 0, "the other models serve: %s", ferry_last_error());
	cr_assert_eq(identity_once(c), 0, "%s", ferry_last_error());
	ferry_close(c);
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}

Test(start, model_file_missing)
{
	unreadable_model_file(NULL, "model.onnx: No such file or directory");
}

Test(start, model_file_that_is_a_dangling_symlink)
{
	unreadable_model_file(plant_dangling, "model.onnx: No such file or directory");
}

/* onnx_read() opens the model file with O_NONBLOCK and reads only a
 * regular file (a FIFO used to hang the start-up, a directory to report
 * "holds 9223372036854775807 bytes"). */
Test(start, model_file_that_is_a_directory)
{
	unreadable_model_file(plant_dir, "not a regular file");
}

Test(start, model_file_that_is_a_fifo)
{
	unreadable_model_file(plant_fifo, "not a regular file");
}

Test(start, a_full_arena_fails_the_allocation_and_recovers)
{
	struct th_broker b;
	th_init(&b);
	th_examples(&b);
	th_start(&b, "--grpc-port", "0", "--metrics-port", "0", NULL);
	ferry_client *c;
	ferry_model *m;
	ferry_options o = { .struct_size = sizeof(o), .arena_bytes = 1 << 20 };
	cr_assert_eq(ferry_connect(&c, b.sock, &o), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "identity", FERRY_LATEST, &m), 0);

	/* 64 KiB inputs until the 1 MiB arena holds no more. */
	enum { MAX = 64 };
	ferry_request *r[MAX];
	int64_t dims[2] = { 64, 256 }; /* 64 KiB */
	int n = 0, ret = 0;
	for (; n < MAX; n++) {
		void *p;
		cr_assert_eq(ferry_request_new(m, &r[n]), 0);
		ret = ferry_request_input(r[n], "INPUT0", FERRY_TYPE_FP32, dims, 2, &p);
		if (ret)
			break;
		memset(p, 0, 65536);
	}
	cr_assert_lt(n, MAX, "the arena filled up");
	cr_assert_gt(n, 4, "and held a few requests first");
	cr_assert_eq(ret, FERRY_ENOMEM, "%d", ret);
	cr_assert(strstr(ferry_last_error(), "the shared arena (1048576 bytes) has no room for 65536 more bytes"),
		  "a clear message: %s", ferry_last_error());
	ferry_request_free(r[n]);

	/* A request already holding its input still runs?  Not while the
	 * outputs find no room: a clear error, no hang. */
	ret = ferry_infer(c, r[0], 10 * SEC);
	cr_assert(ret == FERRY_ENOMEM, "outputs without room: %d %s", ret, ferry_last_error());
	cr_assert(strstr(ferry_last_error(), "no room"), "%s", ferry_last_error());

	/* Freeing two requests makes room; the session carries on. */
	ferry_request_free(r[n - 1]);
	ferry_request_free(r[n - 2]);
	const float *out;
	float *in;
	cr_assert_eq(ferry_request_reset(r[0]), 0);
	cr_assert_eq(ferry_request_input(r[0], "INPUT0", FERRY_TYPE_FP32, dims, 2, (void **)&in), 0,
		     "%s", ferry_last_error());
	for (int i = 0; i < 16384; i++)
		in[i] = (float)i;
	cr_assert_eq(ferry_infer(c, r[0], 10 * SEC), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_request_output(r[0], "OUTPUT0", NULL, NULL, NULL, (const void **)&out, NULL), 0);
	for (int i = 0; i < 16384; i++)
		cr_assert_eq(out[i], (float)i);
	for (int i = 0; i < n - 2; i++)
		ferry_request_free(r[i]);
	cr_assert_eq(identity_once(c), 0, "%s", ferry_last_error());
	ferry_close(c);
	cr_assert(th_alive(b.pid));
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}

static long vm_size_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

Test(start, a_failed_session_allocation_is_refused_and_others_carry_on)
{
	/* ferryd with little address space left (RLIMIT_AS): a session
	 * whose arena cannot be mapped is refused with the reason; the
	 * broker stays up and serves sessions that fit. */
	struct th_broker b;
	th_init(&b);
	th_examples(&b);
	th_start(&b, "--grpc-port", "0", "--metrics-port", "0", "--max-arena-bytes", "4G", NULL);
	long vm = vm_size_kb(b.pid);
	cr_assert_gt(vm, 0);
	struct rlimit rl = { .rlim_cur = (rlim_t)(vm + 256 * 1024) * 1024,
			     .rlim_max = (rlim_t)(vm + 256 * 1024) * 1024 };
	cr_assert_eq(prlimit(b.pid, RLIMIT_AS, &rl, NULL), 0, "prlimit: %s", strerror(errno));

	ferry_client *c, *small;
	ferry_options big = { .struct_size = sizeof(big), .arena_bytes = 1ULL << 30 };
	ferry_options fits = { .struct_size = sizeof(fits), .arena_bytes = 4 << 20 };
	for (int i = 0; i < 3; i++) {
		int ret = ferry_connect(&c, b.sock, &big);
		if (ret == 0)
			ferry_close(c);
		cr_assert_eq(ret, FERRY_ENOMEM, "a 1 GiB arena over a 256 MiB margin: %d %s", ret,
			     ferry_last_error());
		cr_assert(strstr(ferry_last_error(), "cannot create the session segment"),
			  "%s", ferry_last_error());
		cr_assert(strstr(ferry_last_error(), "Cannot allocate memory"), "%s", ferry_last_error());
	}
	cr_assert(th_alive(b.pid), "the broker lives");
	cr_assert_eq(ferry_connect(&small, b.sock, &fits), 0, "%s", ferry_last_error());
	for (int i = 0; i < 100; i++)
		cr_assert_eq(add_sub_once(small), 0, "%s", ferry_last_error());
	cr_assert_eq(identity_once(small), 0, "%s", ferry_last_error());
	ferry_close(small);
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}

Test(start, a_default_arena_larger_than_memory)
{
	/* --arena-bytes at its limit, 512 GiB, beyond this machine's
	 * memory: the arena is a sparse memfd, so a session that asks for
	 * the default is served and ferryd's RSS does not grow by it (only
	 * the pages the client touches are memory).  Once the mapping cannot
	 * be made (RLIMIT_AS), the same request is refused with the reason
	 * and sessions that choose a smaller arena carry on. */
	struct th_broker b;
	th_init(&b);
	th_examples(&b);
	th_start(&b, "--grpc-port", "0", "--metrics-port", "0", "--arena-bytes", "512G",
		 "--max-arena-bytes", "512G", NULL);
	ferry_client *c;
	long rss0 = th_rss_kb(b.pid);
	/* the address space before the session (a sanitizer build reserves
	 * terabytes of shadow memory, so only the difference means anything) */
	long vm0 = vm_size_kb(b.pid);
	cr_assert_eq(ferry_connect(&c, b.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(add_sub_once(c), 0, "%s", ferry_last_error());
	long rss1 = th_rss_kb(b.pid);
	cr_assert_lt(rss1 - rss0, 64 * 1024, "RSS %ld -> %ld kB", rss0, rss1);
	ferry_close(c);

	/* The broker unmaps the closed session's segment soon after. */
	long vm = vm_size_kb(b.pid);
	for (int i = 0; i < 500 && vm > vm0 + 64L * 1024 * 1024; i++) {
		usleep(10000);
		vm = vm_size_kb(b.pid);
	}
	cr_assert_lt(vm, vm0 + 64L * 1024 * 1024,
		     "the 512 GiB segment was unmapped (VmSize %ld kB, %ld before)", vm, vm0);
	struct rlimit rl = { .rlim_cur = (rlim_t)(vm + 256 * 1024) * 1024,
			     .rlim_max = (rlim_t)(vm + 256 * 1024) * 1024 };
	cr_assert_eq(prlimit(b.pid, RLIMIT_AS, &rl, NULL), 0, "prlimit: %s", strerror(errno));
	int ret = ferry_connect(&c, b.sock, NULL);
	if (ret == 0)
		ferry_close(c);
	cr_assert_eq(ret, FERRY_ENOMEM, "refused: %d %s", ret, ferry_last_error());
	cr_assert(strstr(ferry_last_error(), "cannot create the session segment: Cannot allocate memory"),
		  "%s", ferry_last_error());
	ferry_options fits = { .struct_size = sizeof(fits), .arena_bytes = 4 << 20 };
	cr_assert_eq(ferry_connect(&c, b.sock, &fits), 0, "%s", ferry_last_error());
	cr_assert_eq(add_sub_once(c), 0, "%s", ferry_last_error());
	ferry_close(c);
	cr_assert(th_alive(b.pid));
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}

Test(start, an_arena_size_past_64_bits_is_refused_not_wrapped)
{
	/* 2^34 + 1 GiB: shifted into bytes it wraps to 1 GiB, which a
	 * careless parser would take. */
	struct th_broker b;
	th_init(&b);
	th_examples(&b);
	cr_assert_eq(run_until_exit(&b, "--arena-bytes 17179869185G"), 2, "a usage error");
	cr_assert(log_has(&b, "--arena-bytes: a size from 4096 bytes to 512 GiB"));
	cr_assert_eq(run_until_exit(&b, "--max-arena-bytes 18014398509481985K"), 2);
	cr_assert(log_has(&b, "--max-arena-bytes: a size from"));
	th_cleanup(&b);
}

/*
 * Issue 12: a CPU-only node loads no CUDA, and an idle ferryd serving
 * examples/models (all three models, gRPC and metrics on) stays under
 * 24 MiB resident.  Where an NVIDIA device node exists ferryd loads its
 * GPU module by design: the numbers are logged there, not checked.
 */
Test(start, idle_on_the_examples_maps_no_cuda_and_stays_small)
{
	const char *top = getenv("FERRY_TOP_SRCDIR");
	struct th_broker b;
	char cmd[1024], grpc[16], metrics[16];

	cr_assert_not_null(top, "FERRY_TOP_SRCDIR is not set (run through make check)");
	th_init(&b);
	snprintf(cmd, sizeof(cmd), "cp -r %s/examples/models/simple %s/examples/models/identity "
		 "%s/examples/models/identity_bytes %s/", top, top, top, b.repo);
	cr_assert_eq(system(cmd), 0);
	snprintf(grpc, sizeof(grpc), "%d", th_free_port());
	snprintf(metrics, sizeof(metrics), "%d", th_free_port());
	th_start(&b, "--grpc-port", grpc, "--metrics-port", metrics, NULL);
	/* idle: what start-up left behind, once the threads have settled */
	usleep(500 * 1000);
	long rss = th_rss_kb(b.pid);
	int cuda = th_maps_count(b.pid, "libcuda") + th_maps_count(b.pid, "libcublas") +
		   th_maps_count(b.pid, "gpu_cuda.so") + th_maps_count(b.pid, "ox_cuda.so");
	bool gpu = access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;

	cr_log_info("idle ferryd on examples/models: VmRSS %ld kB, %d CUDA mapping(s)%s",
		    rss, cuda, gpu ? " (this machine has an NVIDIA device node)" : "");
	cr_assert_gt(rss, 0);
	if (!gpu) {
		cr_assert_eq(cuda, 0, "a CPU-only node mapped %d CUDA region(s)", cuda);
		cr_assert_lt(rss, 24 * 1024, "idle VmRSS %ld kB, the budget is 24 MiB", rss);
		cr_assert(log_has(&b, "GPU: no NVIDIA device node"), "the start-up line says why");
	}
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}
