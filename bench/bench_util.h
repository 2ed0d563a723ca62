/* SPDX-License-Identifier: MIT */
/*
 * bench_util.h - what ferry's benchmarks share: CPU pinning, percentiles,
 * and the floors every measurement is compared with in the same run.
 * Prefix bu_.
 */
#ifndef FERRY_BENCH_UTIL_H
#define FERRY_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Pin the calling thread to cpu; exits with a message if not allowed. */
void bu_pin(int cpu);
/* True when the process may run on cpu. */
int bu_cpu_ok(int cpu);
/* Sort v and return its p-quantile (0 <= p <= 1). */
double bu_pct(uint64_t *v, size_t n, double p);

struct bu_lat {
	double p50, p90, p99, mean;   /* ns */
};
/* Quantiles of n samples (sorted in place). */
struct bu_lat bu_lat_of(uint64_t *v, size_t n);

/*
 * bu_floor_cacheline - round trip of one cache line between two
 * processes pinned to cpu_a (the caller's side) and cpu_b: the least a
 * shared-memory round trip can cost on this machine.
 */
struct bu_lat bu_floor_cacheline(int cpu_a, int cpu_b, unsigned samples);

/* bu_floor_eventfd - round trip of two eventfd wake-ups between two
 * processes: the floor of any design that sleeps on both sides. */
struct bu_lat bu_floor_eventfd(int cpu_a, int cpu_b, unsigned samples);

/* bu_floor_unix - round trip of bytes over a Unix stream socket between
 * two processes (written, read back whole by the peer, written back): the
 * floor of any transport that moves the payload through the kernel. */
struct bu_lat bu_floor_unix(int cpu_a, int cpu_b, size_t bytes, unsigned samples);

/* bu_floor_memcpy - one memcpy of bytes (warm caches): the cost of a copy
 * that a zero-copy path avoids. */
struct bu_lat bu_floor_memcpy(size_t bytes, unsigned samples);

/* ---- added for ferry-bench-load and ferry-bench-saturate ---- */

/* CLOCK_MONOTONIC in seconds. */
double bu_now(void);

/* The whole file at path, NUL-terminated, size in *len: the caller frees
 * it.  NULL (errno set) when it cannot be read. */
void *bu_slurp(const char *path, size_t *len);

/* The build tree this program runs from: $FERRY_TOP_BUILDDIR, else the
 * directory of /proc/self/exe less a trailing /.libs and /bench. */
const char *bu_build_dir(void);

/* A free TCP port on the loopback interface (racy, as any such probe). */
int bu_free_port(void);

/*
 * bu_ferryd_start - fork and exec `ferryd --socket sock ARGS...` (argv:
 * NULL-terminated extra arguments), stderr to logf (may be NULL), the
 * child killed with its parent; returns once the socket accepts a
 * connection (10 s at most; exits with the log on failure).
 */
pid_t bu_ferryd_start(const char *ferryd, const char *sock, const char *logf,
		      const char *const argv[]);
/* SIGTERM and reap. */
void bu_ferryd_stop(pid_t pid);

/* CPU seconds (user + system, every thread) process pid has used; -1 if
 * it cannot be read. */
double bu_proc_cpu_s(pid_t pid);

/*
 * bu_work - the synthetic events' CPU work (ferry-bench-saturate,
 * ferry-bench-distance): a deterministic xorshift chain of iters steps
 * from seed x; returns its result (keep it, so the compiler keeps the
 * work).  bu_work_calibrate - iterations per microsecond on this CPU,
 * the best of 7 timed runs (a descheduled one does not shrink the work).
 */
uint64_t bu_work(uint64_t iters, uint64_t x);
double bu_work_calibrate(void);

#endif
