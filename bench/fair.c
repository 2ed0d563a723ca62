/* SPDX-License-Identifier: MIT */
/*
 * fair.c - ferry-bench-fair: a well-behaved client beside a flooder on the
 * same model, with ferryd's fair share on and off (issue 19).
 *
 *   ferry-bench-fair [--seconds S] [--rounds R] [--depth D] [--flooders F]
 *                    [--flood-transport shm|grpc] [--good-transport shm|grpc]
 *                    [--model simple|delay] [--delay-us N] [--batch N]
 *                    [--mode both|on|off] [--ferryd PATH] [--csv FILE]
 *
 * The model: `simple` (add_sub, INT32 [1,16] twice, run inline on the
 * pollers: each request costs about a microsecond) or `delay` (identity
 * on INT32 [1,16] whose every execution sleeps --delay-us, 200 by default,
 * on one instance thread, max_batch_size --batch (8; 0: no batching)
 * with dynamic batching: a model whose queue, not the CPU, decides the
 * wait).  For each mode (--fair-share=false, then true: a fresh ferryd
 * each) and R rounds, three phases of S seconds each:
 *   alone   the good client alone: synchronous round trips, one in
 *           flight, every result checked;
 *   flood   the same beside F flooders, each keeping D requests of the same
 *           model in flight for as long as the phase lasts (a greedy but
 *           correct client: it reads its completions and sends again);
 *   solo    the flooders alone: their throughput without the good client.
 * The phases of a round follow each other at once, so the load of the
 * rest of the machine falls on all three alike.
 *
 * Reported per mode: the good client's p50 / p99 / p99.9 alone and under
 * the flood, and p99 flood / p99 alone (the goal: at most 2); the good
 * client's and the flooders' requests/s in the flood phase, and the
 * flooders' requests/s alone: with fair share the flooders still get what
 * the good client leaves them.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench/bench_util.h"

#ifndef FERRY_SRCDIR
#define FERRY_SRCDIR "."
#endif

#define FAIR_MAX_SAMPLES (1u << 21)     /* per column and mode */
#define FAIR_MAX_DEPTH 256

enum { PH_IDLE, PH_ALONE, PH_FLOOD, PH_SOLO, PH_EXIT };

/* Shared between the parent and its children (MAP_SHARED). */
struct fair_shm {
	_Atomic int phase;
	_Atomic int ready;                /* children connected */
	_Atomic uint64_t good_done, good_bad, flood_done, flood_bad;
	_Atomic uint32_t nalone, nflood;  /* samples taken */
	uint64_t alone[FAIR_MAX_SAMPLES], flood[FAIR_MAX_SAMPLES];
};

static struct fair_shm *S;
static const char *addr_shm, *addr_grpc;

static int fair_connect(const char *addr, ferry_client **c, ferry_model **m, const char *model)
{
	ferry_options o = { 0 };
	o.arena_bytes = 16 << 20;
	o.queue_depth = FAIR_MAX_DEPTH;
	int ret = -1;
	for (int i = 0; i < 100 && ret; i++) {
		ret = ferry_connect(c, addr, &o);
		if (ret)
			usleep(50000);
	}
	if (ret || ferry_model_get(*c, model, FERRY_LATEST, m)) {
		fprintf(stderr, "ferry-bench-fair: %s: %s\n", addr, ferry_last_error());
		return -1;
	}
	return 0;
}

static bool fair_simple = true;         /* else the delayed identity */
static int fair_batch = 8;              /* the delayed identity's max_batch_size */

/* The request's inputs from v (simple: two, identity: one). */
static void fair_fill(ferry_request *r, int32_t v)
{
	int64_t dims[2] = { 1, 16 };
	int nd = fair_simple || fair_batch > 0 ? 2 : 1;
	int32_t *a, *b;
	ferry_request_reset(r);
	ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, nd == 2 ? dims : dims + 1, nd,
			    (void **)&a);
	for (int k = 0; k < 16; k++)
		a[k] = v + k;
	if (!fair_simple)
		return;
	ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b);
	for (int k = 0; k < 16; k++)
		b[k] = 3 * v - k;
}

/* 0 when the outputs are right for v. */
static int fair_check(ferry_request *r, int32_t v)
{
	const int32_t *o0, *o1;
	if (ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&o0, NULL))
		return -1;
	if (!fair_simple) {
		for (int k = 0; k < 16; k++)
			if (o0[k] != v + k)
				return -1;
		return 0;
	}
	if (ferry_request_output(r, "OUTPUT1", NULL, NULL, NULL, (const void **)&o1, NULL))
		return -1;
	for (int k = 0; k < 16; k++)
		if (o0[k] != 4 * v || o1[k] != 2 * k - 2 * v)
			return -1;
	return 0;
}

/* The repository: simple (as in examples/models) and identity_delay. */
static int fair_repo(const char *dir, uint64_t delay_us)
{
	static const char *const simple =
		"name: \"simple\"\nbackend: \"add_sub\"\nmax_batch_size: 8\n"
		"input [ { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },\n"
		"        { name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
		"output [ { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },\n"
		"         { name: \"OUTPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n";
	char path[512];
	const char *names[2] = { "simple", "identity_delay" };
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (mkdir(path, 0700))
			return -1;
		snprintf(path, sizeof(path), "%s/%s/1", dir, names[i]);
		if (mkdir(path, 0700))
			return -1;
		snprintf(path, sizeof(path), "%s/%s/config.pbtxt", dir, names[i]);
		FILE *f = fopen(path, "w");
		if (!f)
			return -1;
		if (i == 0)
			fputs(simple, f);
		else
			fprintf(f, "name: \"identity_delay\"\nbackend: \"identity\"\n"
				"max_batch_size: %d\n"
				"input [ { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
				"output [ { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
				"%s"
				"instance_group [ { count: 1 kind: KIND_CPU } ]\n"
				"parameters [ { key: \"execute_delay_us\" value: { string_value: "
				"\"%llu\" } } ]\n", fair_batch,
				fair_batch > 0 ? "dynamic_batching { }\n" : "",
				(unsigned long long)delay_us);
		fclose(f);
	}
	return 0;
}

static void fair_good(const char *addr, const char *model)
{
	ferry_client *c;
	ferry_model *m;
	ferry_request *r;
	if (fair_connect(addr, &c, &m, model) || ferry_request_new(m, &r))
		_exit(1);
	atomic_fetch_add(&S->ready, 1);
	for (int32_t v = 0;; v++) {
		int ph = atomic_load(&S->phase);
		if (ph == PH_EXIT)
			break;
		if (ph != PH_ALONE && ph != PH_FLOOD) {
			usleep(200);
			continue;
		}
		fair_fill(r, v & 0xfffff);
		uint64_t t0 = (uint64_t)(bu_now() * 1e9);
		int ret = ferry_infer(c, r, 10000000000LL);
		uint64_t t1 = (uint64_t)(bu_now() * 1e9);
		if (ret || fair_check(r, v & 0xfffff)) {
			atomic_fetch_add(&S->good_bad, 1);
			continue;
		}
		/* A phase may have ended during the round trip: count it
		 * where it began. */
		if (ph == PH_ALONE) {
			uint32_t i = atomic_fetch_add(&S->nalone, 1);
			if (i < FAIR_MAX_SAMPLES)
				S->alone[i] = t1 - t0;
		} else {
			uint32_t i = atomic_fetch_add(&S->nflood, 1);
			if (i < FAIR_MAX_SAMPLES)
				S->flood[i] = t1 - t0;
			atomic_fetch_add(&S->good_done, 1);
		}
	}
	ferry_request_free(r);
	ferry_close(c);
	_exit(0);
}

static void fair_flooder(const char *addr, const char *model, int depth)
{
	ferry_client *c;
	ferry_model *m;
	ferry_request *r[FAIR_MAX_DEPTH];
	int32_t val[FAIR_MAX_DEPTH];
	bool busy[FAIR_MAX_DEPTH] = { false };
	if (fair_connect(addr, &c, &m, model))
		_exit(1);
	for (int i = 0; i < depth; i++)
		if (ferry_request_new(m, &r[i]))
			_exit(1);
	atomic_fetch_add(&S->ready, 1);
	int32_t v = 1 << 20;
	int nbusy = 0;
	for (;;) {
		int ph = atomic_load(&S->phase);
		if (ph == PH_EXIT)
			break;
		bool on = ph == PH_FLOOD || ph == PH_SOLO;
		/* Keep `depth` in flight while on. */
		for (int i = 0; on && i < depth; i++) {
			if (busy[i])
				continue;
			val[i] = v++ & 0xfffff;
			fair_fill(r[i], val[i]);
			if (ferry_infer_async(c, r[i], NULL, NULL) == 0) {
				busy[i] = true;
				nbusy++;
			} else {
				atomic_fetch_add(&S->flood_bad, 1);
			}
		}
		if (!nbusy) {
			usleep(200);
			continue;
		}
		/* At least one completion (or 10 ms), then every one there is. */
		ferry_poll(c, 1, 10000000LL);
		for (int i = 0; i < depth; i++) {
			if (!busy[i] || !ferry_request_done(r[i]))
				continue;
			busy[i] = false;
			nbusy--;
			if (ferry_request_wait(r[i], 0) || fair_check(r[i], val[i]))
				atomic_fetch_add(&S->flood_bad, 1);
			else if (on && atomic_load(&S->phase) == ph)
				atomic_fetch_add(&S->flood_done, 1);
		}
	}
	for (int i = 0; i < depth; i++) {
		if (busy[i])
			ferry_request_wait(r[i], 10000000000LL);
		ferry_request_free(r[i]);
	}
	ferry_close(c);
	_exit(0);
}

static void fair_phase(int ph, double secs)
{
	atomic_store(&S->phase, ph);
	struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void usage(void)
{
	fprintf(stderr, "usage: ferry-bench-fair [--seconds S] [--rounds R] [--depth D] "
		"[--flooders F] [--flood-transport shm|grpc] [--good-transport shm|grpc] "
		"[--model simple|delay] [--delay-us N] [--batch N] [--mode both|on|off] "
		"[--ferryd PATH] [--csv FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' }, { "rounds", required_argument, NULL, 'r' },
		{ "depth", required_argument, NULL, 'd' }, { "flooders", required_argument, NULL, 'f' },
		{ "flood-transport", required_argument, NULL, 'T' },
		{ "good-transport", required_argument, NULL, 'G' },
		{ "model", required_argument, NULL, 'm' }, { "mode", required_argument, NULL, 'M' },
		{ "ferryd", required_argument, NULL, 'F' }, { "delay-us", required_argument, NULL, 'D' },
		{ "batch", required_argument, NULL, 'B' },
		{ "csv", required_argument, NULL, 'c' }, { 0 }
	};
	double secs = 2;
	int rounds = 3, depth = 64, nflood = 1, opt;
	const char *ftr = "shm", *gtr = "shm", *model = "simple", *mode = "both";
	const char *ferryd = NULL, *csv = NULL;
	uint64_t delay_us = 200;
	char fbuf[4096];

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 's': secs = atof(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'd': depth = atoi(optarg); break;
		case 'f': nflood = atoi(optarg); break;
		case 'T': ftr = optarg; break;
		case 'G': gtr = optarg; break;
		case 'm': model = optarg; break;
		case 'M': mode = optarg; break;
		case 'F': ferryd = optarg; break;
		case 'D': delay_us = strtoull(optarg, NULL, 10); break;
		case 'B': fair_batch = atoi(optarg); break;
		case 'c': csv = optarg; break;
		default: usage();
		}
	}
	if (secs <= 0 || rounds < 1 || depth < 1 || depth > FAIR_MAX_DEPTH || nflood < 1 ||
	    nflood > 64 || (strcmp(ftr, "shm") && strcmp(ftr, "grpc")) ||
	    (strcmp(gtr, "shm") && strcmp(gtr, "grpc")) ||
	    (strcmp(mode, "both") && strcmp(mode, "on") && strcmp(mode, "off")) ||
	    (strcmp(model, "simple") && strcmp(model, "delay")) || fair_batch < 0 ||
	    fair_batch > 1024 || delay_us > 1000000)
		usage();
	fair_simple = !strcmp(model, "simple");
	const char *mname = fair_simple ? "simple" : "identity_delay";
	if (!ferryd) {
		snprintf(fbuf, sizeof(fbuf), "%s/broker/ferryd", bu_build_dir());
		ferryd = fbuf;
	}
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (S == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	FILE *out = csv ? fopen(csv, "w") : NULL;
	if (out)
		fprintf(out, "fair_share,round_samples,alone_p50_us,alone_p99_us,alone_p999_us,"
			"flood_p50_us,flood_p99_us,flood_p999_us,p99_ratio,good_rps_flood,"
			"flood_rps_with_good,flood_rps_solo,errors\n");
	printf("ferry-bench-fair: good client (%s, sync) beside %d flooder(s) (%s, %d in flight "
	       "each) on '%s'", gtr, nflood, ftr, depth, mname);
	if (!fair_simple)
		printf(" (%llu us an execution, max_batch_size %d)", (unsigned long long)delay_us,
		       fair_batch);
	printf("; %d rounds of 3 x %.1f s\n", rounds, secs);
	printf("%-10s %9s %9s %9s | %9s %9s %9s | %6s | %9s %11s %11s\n", "fair share",
	       "p50 alone", "p99", "p99.9", "p50 flood", "p99", "p99.9", "p99 x", "good/s",
	       "flood/s", "flood solo/s");
	int status = 0;
	for (int pass = 0; pass < 2; pass++) {
		bool fair = pass == 1;
		if ((fair && !strcmp(mode, "off")) || (!fair && !strcmp(mode, "on")))
			continue;
		char dir[] = "/tmp/ferry-fair-XXXXXX", sock[64], logf[64], gport[16], gaddr[64];
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 2;
		}
		char models[64];
		snprintf(models, sizeof(models), "%s/models", dir);
		if (mkdir(models, 0700) || fair_repo(models, delay_us)) {
			fprintf(stderr, "ferry-bench-fair: cannot write the repository in %s\n", dir);
			return 2;
		}
		snprintf(sock, sizeof(sock), "%s/ferryd.sock", dir);
		snprintf(logf, sizeof(logf), "%s/ferryd.log", dir);
		snprintf(gport, sizeof(gport), "%d", bu_free_port());
		snprintf(gaddr, sizeof(gaddr), "grpc://127.0.0.1:%s", gport);
		const char *av[] = { "-m", models, "--grpc-port", gport, "--http-port", "0",
				     "--metrics-port", "0", "--log-level", "warn", "--fair-share",
				     fair ? "true" : "false", NULL };
		pid_t fp = bu_ferryd_start(ferryd, sock, logf, av);
		addr_shm = sock;
		addr_grpc = gaddr;
		memset(S, 0, offsetof(struct fair_shm, alone));
		pid_t kids[65];
		int nk = 0;
		if ((kids[nk] = fork()) == 0)
			fair_good(!strcmp(gtr, "grpc") ? addr_grpc : addr_shm, mname);
		nk++;
		for (int i = 0; i < nflood; i++) {
			if ((kids[nk] = fork()) == 0)
				fair_flooder(!strcmp(ftr, "grpc") ? addr_grpc : addr_shm, mname, depth);
			nk++;
		}
		for (int i = 0; i < 600 && atomic_load(&S->ready) < nk; i++)
			usleep(50000);
		if (atomic_load(&S->ready) < nk) {
			fprintf(stderr, "ferry-bench-fair: clients did not connect\n");
			return 2;
		}
		uint64_t good_flood = 0, flood_with = 0, flood_solo = 0;
		double t_flood = 0, t_solo = 0;
		fair_phase(PH_ALONE, 0.3);      /* warm-up, dropped */
		atomic_store(&S->nalone, 0);
		for (int r = 0; r < rounds; r++) {
			fair_phase(PH_ALONE, secs);
			uint64_t g0 = atomic_load(&S->good_done), f0 = atomic_load(&S->flood_done);
			double t0 = bu_now();
			fair_phase(PH_FLOOD, secs);
			double t1 = bu_now();
			uint64_t g1 = atomic_load(&S->good_done), f1 = atomic_load(&S->flood_done);
			fair_phase(PH_SOLO, secs);
			double t2 = bu_now();
			uint64_t f2 = atomic_load(&S->flood_done);
			good_flood += g1 - g0;
			flood_with += f1 - f0;
			flood_solo += f2 - f1;
			t_flood += t1 - t0;
			t_solo += t2 - t1;
		}
		fair_phase(PH_EXIT, 0);
		for (int i = 0; i < nk; i++)
			waitpid(kids[i], NULL, 0);
		bu_ferryd_stop(fp);
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "ferry-bench-fair: could not remove %s\n", dir);
		uint32_t na = atomic_load(&S->nalone), nf = atomic_load(&S->nflood);
		if (na > FAIR_MAX_SAMPLES)
			na = FAIR_MAX_SAMPLES;
		if (nf > FAIR_MAX_SAMPLES)
			nf = FAIR_MAX_SAMPLES;
		if (!na || !nf) {
			fprintf(stderr, "ferry-bench-fair: no samples\n");
			return 2;
		}
		double a50 = bu_pct(S->alone, na, 0.5) / 1e3, a99 = bu_pct(S->alone, na, 0.99) / 1e3,
		       a999 = bu_pct(S->alone, na, 0.999) / 1e3;
		double b50 = bu_pct(S->flood, nf, 0.5) / 1e3, b99 = bu_pct(S->flood, nf, 0.99) / 1e3,
		       b999 = bu_pct(S->flood, nf, 0.999) / 1e3;
		uint64_t errors = atomic_load(&S->good_bad) + atomic_load(&S->flood_bad);
		printf("%-10s %9.1f %9.1f %9.1f | %9.1f %9.1f %9.1f | %6.2f | %9.0f %11.0f %11.0f%s\n",
		       fair ? "on" : "off", a50, a99, a999, b50, b99, b999, b99 / a99,
		       (double)good_flood / t_flood, (double)flood_with / t_flood,
		       (double)flood_solo / t_solo, errors ? "  ERRORS" : "");
		if (out)
			fprintf(out, "%s,%u/%u,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.3f,%.0f,%.0f,%.0f,%llu\n",
				fair ? "on" : "off", na, nf, a50, a99, a999, b50, b99, b999, b99 / a99,
				(double)good_flood / t_flood, (double)flood_with / t_flood,
				(double)flood_solo / t_solo, (unsigned long long)errors);
		if (errors) {
			fprintf(stderr, "ferry-bench-fair: %llu wrong or failed requests\n",
				(unsigned long long)errors);
			status = 1;
		}
	}
	if (out)
		fclose(out);
	return status;
}
