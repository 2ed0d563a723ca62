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

/* bu_floor_memcpy - one memcpy of bytes (warm caches): the cost of a copy
 * that a zero-copy path avoids. */
struct bu_lat bu_floor_memcpy(size_t bytes, unsigned samples);

#endif
