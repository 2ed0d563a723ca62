/* SPDX-License-Identifier: MIT */
/*
 * ferry-ring-bench - what the shm rings cost, next to the floors that
 * physics and the kernel set, measured in the same run.
 *
 * Two processes over one session segment, pinned to two CPUs:
 *   1. floors: a bare cache line bounced between the CPUs (the best any
 *      shared-memory protocol can do), and an eventfd ping-pong (the best
 *      a blocking wake-up can do);
 *   2. the ring round trip: a request on the SQ, the response on the CQ,
 *      in each wait policy, with doorbells exactly as ferry uses them;
 *   3. one-way throughput, producer batches of several sizes.
 * Latencies are round trips, timed per sample with CLOCK_MONOTONIC (the
 * clock read is in every row, floors included), reported as p50 / p99 and
 * as ratios to the floor.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/fshm.h"

#define WARMUP 2000u
#define MAX_BATCHES 8
#define TP_CONSUMER_BURST 256u

struct opts {
	int cpu[2];
	unsigned samples;       /* spin / hybrid / cache-line round trips */
	unsigned block_samples; /* block / eventfd round trips */
	uint64_t tp_entries;    /* per throughput row */
	unsigned batches[MAX_BATCHES];
	unsigned nbatches;
	uint32_t ring_entries;
	const char *csv;
};

/*
 * The bench's own control block, in the arena (shared by fork).  `go`
 * starts a phase, `done` ends it; the child writes `result` / `errors`.
 * Each field group on its own cache line so that the floor's flag shares a
 * line with nothing.
 */
struct ctl {
	_Alignas(64) _Atomic uint64_t flag;   /* the floor's ping-pong line */
	_Alignas(64) _Atomic uint32_t go;
	_Alignas(64) _Atomic uint32_t done;
	uint64_t errors;
};

struct bench {
	struct opts o;
	struct fshm_seg seg;
	struct ctl *ctl;
	int efd_child, efd_parent;      /* doorbells: child waits, parent waits */
	struct fshm_ring sq, cq;        /* the parent's handles */
	struct fshm_doorbell ring_child, wait_parent;
	FILE *csv;
	double floor_p50, efd_p50;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "ferry-ring-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity (see --cpus)", errno);
}

/* Refuse a CPU we may not run on before forking anything. */
static void check_cpu(int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		die("sched_getaffinity", errno);
	if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set)) {
		fprintf(stderr, "ferry-ring-bench: CPU %d is not available "
			"(see --cpus)\n", cpu);
		exit(2);
	}
}

static void on_alarm(int sig)
{
	static const char msg[] =
		"ferry-ring-bench: watchdog: a phase took over 300 s\n";

	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return (double)v[i];
}

/* Fork the peer, pinned to the second CPU; it runs fn and exits. */
static pid_t spawn(struct bench *b, void (*fn)(struct bench *, void *),
		   void *arg)
{
	pid_t pid;

	atomic_store(&b->ctl->go, 0);
	atomic_store(&b->ctl->done, 0);
	b->ctl->errors = 0;
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin(b->o.cpu[1]);
		while (!atomic_load_explicit(&b->ctl->go, memory_order_acquire))
			fshm_cpu_relax();
		fn(b, arg);
		atomic_store_explicit(&b->ctl->done, 1, memory_order_release);
		_exit(0);
	}
	return pid;
}

static void join(struct bench *b, pid_t pid, const char *what)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "ferry-ring-bench: %s: peer failed\n", what);
		exit(1);
	}
	if (b->ctl->errors) {
		fprintf(stderr, "ferry-ring-bench: %s: %llu bad entries\n",
			what, (unsigned long long)b->ctl->errors);
		exit(1);
	}
}

static void row(struct bench *b, const char *name, const char *policy,
		uint64_t *lat, size_t n, double floor)
{
	double p50, p99;

	qsort(lat, n, sizeof(*lat), cmp_u64);
	p50 = pct(lat, n, 0.50);
	p99 = pct(lat, n, 0.99);
	if (floor > 0)
		printf("  %-30s %9zu %10.0f %10.0f %9.2fx\n", name, n, p50, p99,
		       p50 / floor);
	else
		printf("  %-30s %9zu %10.0f %10.0f %10s\n", name, n, p50, p99,
		       "1.00x");
	if (b->csv)
		fprintf(b->csv, "roundtrip,\"%s\",%s,,%zu,%.0f,%.0f,%.3f,\n", name,
			policy, n, p50, p99, floor > 0 ? p50 / floor : 1.0);
	if (!floor && !strcmp(policy, "floor"))
		b->floor_p50 = p50;
}

/* ---- floor 1: a bare cache line --------------------------------------- */

/* Child: answer every odd value with the next even one. */
static void floor_child(struct bench *b, void *arg)
{
	uint64_t n = *(uint64_t *)arg;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t want = 2 * i + 1;

		while (atomic_load_explicit(&b->ctl->flag,
					    memory_order_acquire) != want)
			fshm_cpu_relax();
		atomic_store_explicit(&b->ctl->flag, want + 1,
				      memory_order_release);
	}
}

static void bench_floor(struct bench *b)
{
	uint64_t n = WARMUP + b->o.samples;
	uint64_t *lat = calloc(b->o.samples, sizeof(*lat));
	pid_t pid;

	atomic_store(&b->ctl->flag, 0);
	pid = spawn(b, floor_child, &n);
	atomic_store_explicit(&b->ctl->go, 1, memory_order_release);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = fshm_now_ns();

		atomic_store_explicit(&b->ctl->flag, 2 * i + 1,
				      memory_order_release);
		while (atomic_load_explicit(&b->ctl->flag,
					    memory_order_acquire) != 2 * i + 2)
			fshm_cpu_relax();
		if (i >= WARMUP)
			lat[i - WARMUP] = fshm_now_ns() - t0;
	}
	join(b, pid, "cache-line floor");
	row(b, "cache-line ping-pong (floor)", "floor", lat, b->o.samples, 0);
	free(lat);
}

/* ---- floor 2: eventfd ping-pong --------------------------------------- */

static int efd_wait(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v;

	for (;;) {
		if (read(efd, &v, sizeof(v)) == sizeof(v))
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (poll(&p, 1, 10000) == 0)
			return -ETIMEDOUT;
	}
}

static void efd_post(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) != sizeof(one))
		abort();
}

static void efd_child(struct bench *b, void *arg)
{
	uint64_t n = *(uint64_t *)arg;

	for (uint64_t i = 0; i < n; i++) {
		if (efd_wait(b->efd_child))
			_exit(2);
		efd_post(b->efd_parent);
	}
}

static void bench_efd(struct bench *b)
{
	uint64_t n = WARMUP / 4 + b->o.block_samples;
	uint64_t *lat = calloc(b->o.block_samples, sizeof(*lat));
	pid_t pid;

	pid = spawn(b, efd_child, &n);
	atomic_store_explicit(&b->ctl->go, 1, memory_order_release);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = fshm_now_ns();

		efd_post(b->efd_child);
		if (efd_wait(b->efd_parent))
			die("eventfd floor", ETIMEDOUT);
		if (i >= WARMUP / 4)
			lat[i - WARMUP / 4] = fshm_now_ns() - t0;
	}
	join(b, pid, "eventfd floor");
	qsort(lat, b->o.block_samples, sizeof(*lat), cmp_u64);
	b->efd_p50 = pct(lat, b->o.block_samples, 0.5);
	row(b, "eventfd ping-pong", "eventfd", lat, b->o.block_samples,
	    b->floor_p50);
	free(lat);
}

/* ---- ring round trip --------------------------------------------------- */

struct rt_arg {
	enum fshm_wait_policy policy;
	uint64_t n;
};

/* Child: the "broker": SQE in, CQE out with the same user_data. */
static void rt_child(struct bench *b, void *arg)
{
	struct rt_arg *a = arg;
	struct fshm_ring sq, cq;
	struct fshm_doorbell wait_me, ring_parent;
	struct fshm_sqe sqe;
	struct fshm_cqe cqe;

	memset(&cqe, 0, sizeof(cqe));
	fshm_ring_init(&sq, b->seg.base, &b->seg.sq, false);
	fshm_ring_init(&cq, b->seg.base, &b->seg.cq, true);
	fshm_doorbell_init(&wait_me, b->efd_child,
			   &b->seg.hdr->broker_wake.sleeping);
	fshm_doorbell_init(&ring_parent, b->efd_parent,
			   &b->seg.hdr->client_wake.sleeping);
	for (uint64_t i = 0; i < a->n; i++) {
		if (fshm_doorbell_wait(&wait_me, a->policy, fshm_ring_ready,
				       &sq, 10000000000ll, 0))
			_exit(3);
		if (fshm_ring_dequeue_burst(&sq, &sqe, 1) != 1)
			_exit(4);
		cqe.user_data = sqe.user_data;
		if (fshm_ring_enqueue_burst(&cq, &cqe, 1) != 1)
			_exit(5);
		fshm_doorbell_ring(&ring_parent);
	}
}

static void bench_rt(struct bench *b, enum fshm_wait_policy policy)
{
	unsigned samples = policy == FSHM_WAIT_BLOCK ? b->o.block_samples
						     : b->o.samples;
	unsigned warm = policy == FSHM_WAIT_BLOCK ? WARMUP / 4 : WARMUP;
	struct rt_arg a = { policy, (uint64_t)warm + samples };
	uint64_t *lat = calloc(samples, sizeof(*lat));
	struct fshm_sqe sqe;
	struct fshm_cqe cqe;
	char name[64];
	pid_t pid;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = FSHM_OP_NOP;
	pid = spawn(b, rt_child, &a);
	atomic_store_explicit(&b->ctl->go, 1, memory_order_release);
	for (uint64_t i = 0; i < a.n; i++) {
		uint64_t t0 = fshm_now_ns();

		sqe.user_data = i;
		if (fshm_ring_enqueue_burst(&b->sq, &sqe, 1) != 1)
			die("ring round trip: SQ full", ENOSPC);
		fshm_doorbell_ring(&b->ring_child);
		if (fshm_doorbell_wait(&b->wait_parent, policy, fshm_ring_ready,
				       &b->cq, 10000000000ll, 0))
			die("ring round trip: no completion", ETIMEDOUT);
		if (fshm_ring_dequeue_burst(&b->cq, &cqe, 1) != 1 ||
		    cqe.user_data != i)
			die("ring round trip: bad completion", EBADMSG);
		if (i >= warm)
			lat[i - warm] = fshm_now_ns() - t0;
	}
	join(b, pid, "ring round trip");
	snprintf(name, sizeof(name), "ring round trip, %s",
		 fshm_wait_policy_name(policy));
	row(b, name, fshm_wait_policy_name(policy), lat, samples,
	    b->floor_p50);
	if (policy == FSHM_WAIT_BLOCK)
		printf("  %-30s %9s %10s %10s %9.2fx\n",
		       "  (block vs eventfd ping-pong)", "", "", "",
		       pct(lat, samples, 0.5) / b->efd_p50);
	free(lat);
}

/* ---- one-way throughput ------------------------------------------------ */

static void tp_child(struct bench *b, void *arg)
{
	uint64_t n = *(uint64_t *)arg, seq = 0;
	struct fshm_ring sq;
	struct fshm_sqe buf[TP_CONSUMER_BURST];

	fshm_ring_init(&sq, b->seg.base, &b->seg.sq, false);
	while (seq < n) {
		int k = fshm_ring_dequeue_burst(&sq, buf, TP_CONSUMER_BURST);

		if (k < 0)
			_exit(6);
		if (!k) {
			fshm_cpu_relax();
			continue;
		}
		for (int i = 0; i < k; i++)
			if (buf[i].user_data != seq + (uint64_t)i)
				b->ctl->errors++;
		seq += (uint64_t)k;
	}
}

static void bench_tp(struct bench *b, unsigned batch)
{
	uint64_t n = b->o.tp_entries, seq = 0, t0, dt;
	struct fshm_sqe *buf = calloc(batch, sizeof(*buf));
	double rate;
	pid_t pid;

	pid = spawn(b, tp_child, &n);
	atomic_store_explicit(&b->ctl->go, 1, memory_order_release);
	t0 = fshm_now_ns();
	while (seq < n) {
		unsigned want = n - seq < batch ? (unsigned)(n - seq) : batch;
		int k;

		for (unsigned i = 0; i < want; i++)
			buf[i].user_data = seq + i;
		k = fshm_ring_enqueue_burst(&b->sq, buf, want);
		if (k < 0)
			die("throughput", EBADMSG);
		if (!k)
			fshm_cpu_relax();
		seq += (uint64_t)k;
	}
	while (!atomic_load_explicit(&b->ctl->done, memory_order_acquire))
		fshm_cpu_relax();
	dt = fshm_now_ns() - t0;
	join(b, pid, "throughput");
	rate = (double)n / ((double)dt / 1e9);
	printf("  %-30s %9u %10llu %10.1f %10.2f %9.2f\n", "", batch,
	       (unsigned long long)n, rate / 1e6, (double)dt / (double)n,
	       rate * sizeof(struct fshm_sqe) / 1e9);
	if (b->csv)
		fprintf(b->csv, "throughput,\"one-way\",spin,%u,%llu,,,,%.0f\n",
			batch, (unsigned long long)n, rate);
	free(buf);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: ferry-ring-bench [options]\n"
"  --cpus A,B            CPUs of the two processes (default 0,1)\n"
"  --samples N           round trips for floor / spin / hybrid (200000)\n"
"  --block-samples N     round trips for eventfd / block (30000)\n"
"  --entries N           entries per throughput row (10000000)\n"
"  --batches L           producer batch sizes, comma list (1,8,32,128)\n"
"  --ring-entries N      SQ / CQ capacity, power of two (1024)\n"
"  --csv FILE            also write the results as CSV\n"
"  --help\n");
}

static unsigned parse_list(const char *s, unsigned *out, unsigned max)
{
	unsigned n = 0;
	char *end;

	while (*s && n < max) {
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || !v || v > 65536)
			return 0;
		out[n++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return 0;
	}
	return n;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "samples", required_argument, NULL, 's' },
		{ "block-samples", required_argument, NULL, 'k' },
		{ "entries", required_argument, NULL, 'n' },
		{ "batches", required_argument, NULL, 'b' },
		{ "ring-entries", required_argument, NULL, 'r' },
		{ "csv", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b;
	struct fshm_seg_params p;
	unsigned cpus[2];
	int c, ret;

	memset(&b, 0, sizeof(b));
	b.o = (struct opts){
		.cpu = { 0, 1 },
		.samples = 200000,
		.block_samples = 30000,
		.tp_entries = 10000000,
		.batches = { 1, 8, 32, 128 },
		.nbatches = 4,
		.ring_entries = 1024,
	};
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (sscanf(optarg, "%u,%u", &cpus[0], &cpus[1]) != 2) {
				usage(stderr);
				return 2;
			}
			b.o.cpu[0] = (int)cpus[0];
			b.o.cpu[1] = (int)cpus[1];
			break;
		case 's':
			b.o.samples = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			b.o.block_samples = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			b.o.tp_entries = strtoull(optarg, NULL, 10);
			break;
		case 'b':
			b.o.nbatches = parse_list(optarg, b.o.batches,
						  MAX_BATCHES);
			if (!b.o.nbatches) {
				usage(stderr);
				return 2;
			}
			break;
		case 'r':
			b.o.ring_entries = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			b.o.csv = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!b.o.samples || !b.o.block_samples || !b.o.tp_entries) {
		usage(stderr);
		return 2;
	}

	p = (struct fshm_seg_params){
		.sq_entries = b.o.ring_entries,
		.cq_entries = b.o.ring_entries,
		.arena_bytes = 4096,
		.numa_node = -1,
		.flags = FSHM_SEG_PREFAULT,
	};
	ret = fshm_seg_create(&p, &b.seg);
	if (ret)
		die("fshm_seg_create (--ring-entries?)", -ret);
	b.ctl = fshm_seg_arena(&b.seg);
	b.efd_child = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	b.efd_parent = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b.efd_child < 0 || b.efd_parent < 0)
		die("eventfd", errno);
	fshm_ring_init(&b.sq, b.seg.base, &b.seg.sq, true);
	fshm_ring_init(&b.cq, b.seg.base, &b.seg.cq, false);
	fshm_doorbell_init(&b.ring_child, b.efd_child,
			   &b.seg.hdr->broker_wake.sleeping);
	fshm_doorbell_init(&b.wait_parent, b.efd_parent,
			   &b.seg.hdr->client_wake.sleeping);
	if (b.o.csv) {
		b.csv = fopen(b.o.csv, "w");
		if (!b.csv)
			die(b.o.csv, errno);
		fprintf(b.csv, "kind,name,policy,batch,samples,p50_ns,p99_ns,"
			"ratio_p50,entries_per_s\n");
	}
	check_cpu(b.o.cpu[0]);
	check_cpu(b.o.cpu[1]);
	pin(b.o.cpu[0]);
	/* Every phase is bounded; a peer that dies mid-phase would leave
	 * the parent spinning, so a watchdog ends the run instead. */
	signal(SIGALRM, on_alarm);
	alarm(300);

	printf("ferry-ring-bench: CPUs %d and %d, rings of %u entries "
	       "(SQE 64 B, CQE 32 B)\n\n", b.o.cpu[0], b.o.cpu[1],
	       b.o.ring_entries);
	printf("  %-30s %9s %10s %10s %10s\n", "round trip", "samples",
	       "p50 ns", "p99 ns", "p50/floor");
	bench_floor(&b);
	bench_efd(&b);
	bench_rt(&b, FSHM_WAIT_SPIN);
	bench_rt(&b, FSHM_WAIT_HYBRID);
	bench_rt(&b, FSHM_WAIT_BLOCK);

	printf("\n  %-30s %9s %10s %10s %10s %9s\n", "one-way throughput (spin)",
	       "batch", "entries", "M entr/s", "ns/entry", "GB/s");
	for (unsigned i = 0; i < b.o.nbatches; i++)
		bench_tp(&b, b.o.batches[i]);

	if (b.csv)
		fclose(b.csv);
	fshm_doorbell_close(&b.ring_child);
	fshm_doorbell_close(&b.wait_parent);
	fshm_seg_close(&b.seg);
	return 0;
}
