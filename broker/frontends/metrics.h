/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - the Prometheus endpoint (libmicrohttpd, its own thread):
 * Triton's metric names per model and version, ferry's own under ferry_,
 * and KServe's HTTP health endpoints on the same port.  Prefix metrics_.
 *
 * The loop thread publishes what only it may read (sessions, rings) into
 * atomic gauges every 100 ms with metrics_snapshot(); the HTTP thread reads
 * those and the scheduler's statistics (under the model table's read
 * lock), never the loop's structures.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct broker;

struct metrics_gauges {
	_Atomic uint32_t sessions;
	_Atomic uint64_t shm_inflight;     /* requests of shm sessions in flight */
	_Atomic uint64_t sq_pending;       /* submissions waiting in SQ rings */
	_Atomic uint64_t cq_pending;       /* completions clients have not read */
	_Atomic uint64_t client_wakeups;   /* eventfd writes to sleeping clients */
	_Atomic uint64_t closed_wakeups;   /* the same, of closed sessions */
	_Atomic uint64_t loop_sleeps;      /* times the loop thread slept */
	_Atomic bool ready;                /* listening, not stopping */
};

extern struct metrics_gauges metrics_gauges;

/* Start serving on addr:port (port 0: off).  -errno when it cannot bind. */
int metrics_start(const char *addr, int port);
void metrics_stop(void);
/* Loop thread: refresh the gauges (cheap; call every ~100 ms). */
void metrics_snapshot(struct broker *b);

/* The in-flight count of another transport (the gRPC front end), or
 * NULL; set before metrics_start. */
extern uint64_t (*metrics_grpc_inflight)(void);

#endif
