/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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
