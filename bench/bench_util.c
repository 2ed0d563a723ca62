/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "shm/fshm.h"

void bu_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "cannot pin to CPU %d: %s\n", cpu, strerror(errno));
		exit(2);
	}
}

int bu_cpu_ok(int cpu)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	return cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set);
}

static int bu__cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

double bu_pct(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), bu__cmp);
	return (double)v[(size_t)(p * (double)(n - 1) + 0.5)];
}

struct bu_lat bu_lat_of(uint64_t *v, size_t n)
{
	struct bu_lat l = { 0 };
	double sum = 0;
	if (n == 0)
		return l;
	for (size_t i = 0; i < n; i++)
		sum += (double)v[i];
	l.mean = sum / (double)n;
	l.p50 = bu_pct(v, n, 0.50);
	l.p90 = bu_pct(v, n, 0.90);
	l.p99 = bu_pct(v, n, 0.99);
	return l;
}

/* The peer of a floor measurement: a child pinned to cpu that dies with
 * its parent. */
static pid_t bu__child(int cpu)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		bu_pin(cpu);
	}
	return pid;
}

#define BU_WARMUP 1000

struct bu_line {
	_Alignas(64) _Atomic uint64_t flag;
};

struct bu_lat bu_floor_cacheline(int cpu_a, int cpu_b, unsigned samples)
{
	struct bu_line *l = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t n = BU_WARMUP + (uint64_t)samples;
	uint64_t *lat = calloc(samples, sizeof(*lat));
	struct bu_lat res = { 0 };

	if (l == MAP_FAILED || !lat)
		goto out;
	atomic_store(&l->flag, 0);
	pid_t pid = bu__child(cpu_b);
	if (pid == 0) {
		/* Acquire pairs with the parent's release: its odd value. */
		for (uint64_t i = 0; i < n; i++) {
			while (atomic_load_explicit(&l->flag, memory_order_acquire) != 2 * i + 1)
				fshm_cpu_relax();
			atomic_store_explicit(&l->flag, 2 * i + 2, memory_order_release);
		}
		_exit(0);
	}
	bu_pin(cpu_a);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = fshm_now_ns();
		atomic_store_explicit(&l->flag, 2 * i + 1, memory_order_release);
		while (atomic_load_explicit(&l->flag, memory_order_acquire) != 2 * i + 2)
			fshm_cpu_relax();
		if (i >= BU_WARMUP)
			lat[i - BU_WARMUP] = fshm_now_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	res = bu_lat_of(lat, samples);
out:
	free(lat);
	if (l != MAP_FAILED)
		munmap(l, 4096);
	return res;
}

struct bu_lat bu_floor_eventfd(int cpu_a, int cpu_b, unsigned samples)
{
	int to_child = eventfd(0, EFD_CLOEXEC), to_parent = eventfd(0, EFD_CLOEXEC);
	uint64_t n = 100 + (uint64_t)samples, v = 1;
	uint64_t *lat = calloc(samples, sizeof(*lat));
	struct bu_lat res = { 0 };

	pid_t pid = bu__child(cpu_b);
	if (pid == 0) {
		for (uint64_t i = 0; i < n; i++) {
			if (read(to_child, &v, 8) != 8 || write(to_parent, &v, 8) != 8)
				_exit(1);
		}
		_exit(0);
	}
	bu_pin(cpu_a);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = fshm_now_ns();
		if (write(to_child, &v, 8) != 8 || read(to_parent, &v, 8) != 8)
			break;
		if (i >= 100)
			lat[i - 100] = fshm_now_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	res = bu_lat_of(lat, samples);
	free(lat);
	close(to_child);
	close(to_parent);
	return res;
}

/* Write or read exactly n bytes; 0, or -1 on error or end of file. */
static int bu__full(int fd, char *p, size_t n, int out)
{
	while (n) {
		ssize_t k = out ? write(fd, p, n) : read(fd, p, n);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

struct bu_lat bu_floor_unix(int cpu_a, int cpu_b, size_t bytes, unsigned samples)
{
	int sv[2];
	uint64_t n = 100 + (uint64_t)samples;
	uint64_t *lat = calloc(samples, sizeof(*lat));
	char *buf = malloc(bytes ? bytes : 1);
	struct bu_lat res = { 0 };

	if (!lat || !buf || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		goto out;
	memset(buf, 3, bytes);
	pid_t pid = bu__child(cpu_b);
	if (pid == 0) {
		close(sv[0]);
		for (uint64_t i = 0; i < n; i++)
			if (bu__full(sv[1], buf, bytes, 0) || bu__full(sv[1], buf, bytes, 1))
				_exit(1);
		_exit(0);
	}
	close(sv[1]);
	bu_pin(cpu_a);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = fshm_now_ns();
		if (bu__full(sv[0], buf, bytes, 1) || bu__full(sv[0], buf, bytes, 0))
			break;
		if (i >= 100)
			lat[i - 100] = fshm_now_ns() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	res = bu_lat_of(lat, samples);
out:
	free(lat);
	free(buf);
	return res;
}

struct bu_lat bu_floor_memcpy(size_t bytes, unsigned samples)
{
	char *a = malloc(bytes), *b = malloc(bytes);
	uint64_t *lat = calloc(samples, sizeof(*lat));
	struct bu_lat res = { 0 };
	if (!a || !b || !lat)
		goto out;
	memset(a, 1, bytes);
	memset(b, 2, bytes);
	for (unsigned i = 0; i < samples; i++) {
		uint64_t t0 = fshm_now_ns();
		memcpy(b, a, bytes);
		/* Keep the copy: the compiler may not drop it. */
		__asm__ __volatile__("" : : "r"(b) : "memory");
		lat[i] = fshm_now_ns() - t0;
	}
	res = bu_lat_of(lat, samples);
out:
	free(a);
	free(b);
	free(lat);
	return res;
}

/* ---- added for ferry-bench-load and ferry-bench-saturate ---- */

uint64_t bu_work(uint64_t iters, uint64_t x)
{
	double acc = 0;

	x |= 1;
	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		acc += (double)(x & 0xffff) * 1e-5;
	}
	return x ^ (uint64_t)acc;
}

double bu_work_calibrate(void)
{
	static volatile uint64_t sink;
	const uint64_t n = 2000000;
	double best = 1e9;

	for (int i = 0; i < 7; i++) {
		double t0 = bu_now(), t;

		sink ^= bu_work(n, (uint64_t)i + 1);
		t = bu_now() - t0;
		if (t < best)
			best = t;
	}
	return (double)n / (best * 1e6);
}

double bu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *bu_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
			errno = EIO;
		}
	}
	fclose(f);
	return buf;
}

const char *bu_build_dir(void)
{
	static char dir[4096];
	const char *b = getenv("FERRY_TOP_BUILDDIR");
	char *s;
	ssize_t n;

	if (b)
		return b;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0)
		return ".";
	dir[n] = 0;
	if ((s = strrchr(dir, '/')))
		*s = 0;
	if ((s = strrchr(dir, '/')) && !strcmp(s, "/.libs"))
		*s = 0;
	if ((s = strrchr(dir, '/')) && !strcmp(s, "/bench"))
		*s = 0;
	return dir;
}

int bu_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	if (port < 0) {
		fprintf(stderr, "no free port: %s\n", strerror(errno));
		exit(2);
	}
	return port;
}

static int bu__connectable(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ok;

	if (strlen(sock) >= sizeof(sa.sun_path))
		return 0;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

pid_t bu_ferryd_start(const char *ferryd, const char *sock, const char *logf,
		      const char *const argv[])
{
	const char *av[64];
	int n = 0, st;
	pid_t pid;

	av[n++] = ferryd;
	av[n++] = "--socket";
	av[n++] = sock;
	for (int i = 0; argv && argv[i] && n < 63; i++)
		av[n++] = argv[i];
	av[n] = NULL;
	unlink(sock);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		int fd = logf ? open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0)
			dup2(fd, 2);
		execv(ferryd, (char *const *)av);
		fprintf(stderr, "cannot run %s: %s\n", ferryd, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (bu__connectable(sock))
			return pid;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			char cmd[4200];

			fprintf(stderr, "%s exited during start-up\n", ferryd);
			if (logf) {
				snprintf(cmd, sizeof(cmd), "cat '%s' >&2", logf);
				(void)!system(cmd);
			}
			exit(2);
		}
		usleep(10000);
	}
	fprintf(stderr, "%s did not listen on %s within 10 s\n", ferryd, sock);
	kill(pid, SIGKILL);
	exit(2);
}

void bu_ferryd_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

double bu_proc_cpu_s(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* the command name may hold spaces: fields count from the last ')' */
	if (!(p = strrchr(buf, ')')))
		return -1;
	/* fields 3..13 then utime (14) and stime (15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
