/* SPDX-License-Identifier: MIT */
/*
 * Reloads under load (issue 19): 64 clients over shared memory and a few
 * over gRPC infer without pause on a model whose answer names its version
 * (version k adds k to every element: an ONNX graph written here), while
 * the test brings in version 2 by SIGHUP and version 3 by RepositoryModelLoad.
 * No request fails, every answer comes wholly from one version, a client
 * never goes back to an older version once it met a newer one, every
 * client reaches the new version, and the statistics count, version by
 * version, exactly the answers the clients saw.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/ferry.h>

#include "tests/integ/harness.h"

#define SEC 1000000000LL
#define NSHM 64                 /* clients over shared memory */
#define NGRPC 4                 /* clients over gRPC */
#define NCLIENTS (NSHM + NGRPC)
#define NELEM 16
#define MAXV 3

/* ---------------------------------------------------------------------- */
/* A minimal ONNX writer: y = x + c, c a constant of NELEM floats.         */

struct pb {
	uint8_t *b;
	size_t n, cap;
};

static void pb_bytes(struct pb *p, const void *d, size_t n)
{
	if (p->n + n > p->cap) {
		p->cap = (p->n + n) * 2 + 64;
		p->b = realloc(p->b, p->cap);
		cr_assert_not_null(p->b);
	}
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void pb_varint(struct pb *p, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;
	do {
		t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	pb_bytes(p, t, n);
}

static void pb_int(struct pb *p, int field, uint64_t v)
{
	pb_varint(p, (uint64_t)field << 3);
	pb_varint(p, v);
}

static void pb_raw(struct pb *p, int field, const void *d, size_t n)
{
	pb_varint(p, (uint64_t)field << 3 | 2);
	pb_varint(p, n);
	pb_bytes(p, d, n);
}

static void pb_str(struct pb *p, int field, const char *s)
{
	pb_raw(p, field, s, strlen(s));
}

/* Append sub as a length-delimited field and free it. */
static void pb_msg(struct pb *p, int field, struct pb *sub)
{
	pb_raw(p, field, sub->b, sub->n);
	free(sub->b);
	memset(sub, 0, sizeof(*sub));
}

/* ValueInfoProto of a float tensor [N, NELEM]. */
static void onnx_value(struct pb *graph, int field, const char *name)
{
	struct pb d0 = { 0 }, d1 = { 0 }, shape = { 0 }, tt = { 0 }, type = { 0 }, vi = { 0 };
	pb_str(&d0, 2, "N");                    /* Dimension.dim_param */
	pb_int(&d1, 1, NELEM);                  /* Dimension.dim_value */
	pb_msg(&shape, 1, &d0);                 /* TensorShapeProto.dim */
	pb_msg(&shape, 1, &d1);
	pb_int(&tt, 1, 1);                      /* Tensor.elem_type FLOAT */
	pb_msg(&tt, 2, &shape);                 /* Tensor.shape */
	pb_msg(&type, 1, &tt);                  /* TypeProto.tensor_type */
	pb_str(&vi, 1, name);                   /* ValueInfoProto.name */
	pb_msg(&vi, 2, &type);                  /* ValueInfoProto.type */
	pb_msg(graph, field, &vi);
}

static void write_onnx(const char *path, float add)
{
	struct pb node = { 0 }, init = { 0 }, graph = { 0 }, opset = { 0 }, model = { 0 };
	float c[NELEM];
	for (int i = 0; i < NELEM; i++)
		c[i] = add;
	pb_str(&node, 1, "x");                  /* NodeProto.input */
	pb_str(&node, 1, "c");
	pb_str(&node, 2, "y");                  /* NodeProto.output */
	pb_str(&node, 3, "add");                /* NodeProto.name */
	pb_str(&node, 4, "Add");                /* NodeProto.op_type */
	pb_int(&init, 1, NELEM);                /* TensorProto.dims */
	pb_int(&init, 2, 1);                    /* TensorProto.data_type FLOAT */
	pb_str(&init, 8, "c");                  /* TensorProto.name */
	pb_raw(&init, 9, c, sizeof(c));         /* TensorProto.raw_data (LE) */
	pb_msg(&graph, 1, &node);               /* GraphProto.node */
	pb_str(&graph, 2, "addv");              /* GraphProto.name */
	pb_msg(&graph, 5, &init);               /* GraphProto.initializer */
	onnx_value(&graph, 11, "x");            /* GraphProto.input */
	onnx_value(&graph, 12, "y");            /* GraphProto.output */
	pb_str(&opset, 1, "");                  /* OperatorSetIdProto.domain */
	pb_int(&opset, 2, 13);                  /* OperatorSetIdProto.version */
	pb_int(&model, 1, 8);                   /* ModelProto.ir_version */
	pb_str(&model, 2, "ferry-tests");       /* ModelProto.producer_name */
	pb_msg(&model, 7, &graph);              /* ModelProto.graph */
	pb_msg(&model, 8, &opset);              /* ModelProto.opset_import */
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(model.b, 1, model.n, f), model.n);
	cr_assert_eq(fclose(f), 0);
	free(model.b);
}

/* <repo>/addv/<v>/model.onnx adding v, made whole before it appears: the
 * version directory is renamed into place, so a rescan never sees half. */
static void add_version(struct th_broker *b, int v)
{
	char tmp[600], dir[600], file[700];
	snprintf(tmp, sizeof(tmp), "%s/.v%d", b->dir, v);
	snprintf(dir, sizeof(dir), "%s/addv/%d", b->repo, v);
	cr_assert_eq(mkdir(tmp, 0755), 0);
	snprintf(file, sizeof(file), "%s/model.onnx", tmp);
	write_onnx(file, (float)v);
	if (v == 1)
		rmdir(dir);     /* th_model's empty version 1 */
	cr_assert_eq(rename(tmp, dir), 0, "%s -> %s", tmp, dir);
}

/* ---------------------------------------------------------------------- */
/* The clients                                                             */

struct client {
	pthread_t th;
	int idx;
	const char *address;
	/* Written by the client's thread, read by the test's. */
	_Atomic uint64_t by_version[MAXV + 1];
	_Atomic uint64_t failed, mixed, backwards;
	_Atomic int newest;
	char first_error[256];
};

static struct client clients[NCLIENTS];
static atomic_bool stop;

static void *client_main(void *arg)
{
	struct client *cl = arg;
	ferry_options o = { .wait = FERRY_WAIT_BLOCK, .queue_depth = 4, .arena_bytes = 1 << 20 };
	ferry_client *c;
	ferry_model *m;
	ferry_request *r;
	int64_t dims[2] = { 1, NELEM };
	char name[32];

	snprintf(name, sizeof(name), "reload-%d", cl->idx);
	o.client_name = name;
	if (ferry_connect(&c, cl->address, &o) || ferry_model_get(c, "addv", FERRY_LATEST, &m) ||
	    ferry_request_new(m, &r)) {
		snprintf(cl->first_error, sizeof(cl->first_error), "setup: %s", ferry_last_error());
		atomic_fetch_add(&cl->failed, 1);
		return NULL;
	}
	for (uint32_t n = 0; !atomic_load(&stop); n++) {
		float *x;
		const float *y;
		size_t bytes = 0;
		int ret = ferry_request_reset(r);
		if (!ret)
			ret = ferry_request_input(r, "x", FERRY_TYPE_FP32, dims, 2, (void **)&x);
		if (!ret) {
			for (int i = 0; i < NELEM; i++)
				x[i] = (float)((cl->idx * 131 + (int)n * 7 + i) % 1000);
			ret = ferry_infer(c, r, 10 * SEC);
		}
		if (!ret)
			ret = ferry_request_output(r, "y", NULL, NULL, NULL, (const void **)&y, &bytes);
		if (!ret && bytes != sizeof(float) * NELEM) {
			ret = FERRY_EPROTO;
			snprintf(cl->first_error, sizeof(cl->first_error), "%zu bytes of output", bytes);
		}
		if (ret) {
			if (atomic_fetch_add(&cl->failed, 1) == 0 && !cl->first_error[0])
				snprintf(cl->first_error, sizeof(cl->first_error), "%s: %s",
					 ferry_strerror(ret), ferry_last_error());
			continue;
		}
		/* Every element tells the version that computed it. */
		int v = (int)(y[0] - x[0]);
		bool whole = v >= 1 && v <= MAXV;
		for (int i = 0; i < NELEM && whole; i++)
			whole = y[i] - x[i] == (float)v;
		if (!whole) {
			atomic_fetch_add(&cl->mixed, 1);
			continue;
		}
		if (v < atomic_load(&cl->newest))
			atomic_fetch_add(&cl->backwards, 1);
		else
			atomic_store(&cl->newest, v);
		atomic_fetch_add(&cl->by_version[v], 1);
	}
	ferry_request_free(r);
	ferry_close(c);
	return NULL;
}

/* Wait (10 s at most) until every client has had `least` answers from
 * version v; false on the timeout. */
static bool all_reached(int v, uint64_t least)
{
	for (int t = 0; t < 2000; t++) {
		bool all = true;
		for (int i = 0; i < NCLIENTS && all; i++)
			all = atomic_load(&clients[i].by_version[v]) >= least ||
			      atomic_load(&clients[i].failed) > 0;
		if (all)
			return true;
		usleep(5000);
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* Statistics                                                              */

struct seen_stats {
	uint64_t count[MAXV + 1];
	int versions;
};

static void on_stats(void *arg, const ferry_model_stats *s)
{
	struct seen_stats *x = arg;
	x->versions++;
	if (s->version >= 1 && s->version <= MAXV)
		x->count[s->version] = s->inference_count;
}

static const char *CONFIG =
	"name: \"addv\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
	"version_policy: { latest: { num_versions: 1 } }\n"
	"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
	"output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
	"dynamic_batching { max_queue_delay_microseconds: 100 }\n";

Test(reload, sighup_and_repository_load_under_load, .timeout = 120)
{
	struct th_broker b;
	char port[16], grpc[64];
	int p = th_free_port();

	snprintf(port, sizeof(port), "%d", p);
	snprintf(grpc, sizeof(grpc), "grpc://127.0.0.1:%d", p);
	th_init(&b);
	th_model(&b, "addv", CONFIG);
	add_version(&b, 1);
	th_start(&b, "--grpc-port", port, "--metrics-port", "0", NULL);

	for (int i = 0; i < NCLIENTS; i++) {
		clients[i].idx = i;
		clients[i].address = i < NSHM ? b.sock : grpc;
		cr_assert_eq(pthread_create(&clients[i].th, NULL, client_main, &clients[i]), 0);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect(all_reached(1, 20), "every client is served by version 1");

	/* (a) Version 2 appears; SIGHUP rescans the repository. */
	add_version(&b, 2);
	cr_assert_eq(kill(b.pid, SIGHUP), 0);
	cr_expect(all_reached(2, 20), "every client reaches version 2 after SIGHUP");

	/* (b) Version 3 appears; RepositoryModelLoad over gRPC. */
	add_version(&b, 3);
	ferry_client *admin;
	cr_assert_eq(ferry_connect(&admin, grpc, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_load(admin, "addv"), 0, "%s", ferry_last_error());
	cr_expect(all_reached(3, 20), "every client reaches version 3 after the load");

	atomic_store(&stop, true);
	for (int i = 0; i < NCLIENTS; i++)
		pthread_join(clients[i].th, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	uint64_t total[MAXV + 1] = { 0 }, shm[MAXV + 1] = { 0 };
	uint64_t failed = 0, mixed = 0, backwards = 0;
	for (int i = 0; i < NCLIENTS; i++) {
		struct client *cl = &clients[i];
		for (int v = 1; v <= MAXV; v++) {
			total[v] += cl->by_version[v];
			if (i < NSHM)
				shm[v] += cl->by_version[v];
		}
		failed += cl->failed;
		mixed += cl->mixed;
		backwards += cl->backwards;
		if (cl->failed)
			cr_log_error("client %d (%s): %llu failed, first: %s", i,
				     i < NSHM ? "shm" : "grpc", (unsigned long long)cl->failed,
				     cl->first_error);
	}
	cr_log_info("%.2f s; answers by version 1/2/3: %llu/%llu/%llu (shared memory "
		    "%llu/%llu/%llu)",
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		    (unsigned long long)total[1], (unsigned long long)total[2],
		    (unsigned long long)total[3], (unsigned long long)shm[1],
		    (unsigned long long)shm[2], (unsigned long long)shm[3]);
	cr_assert_eq(failed, 0, "no request fails across the reloads");
	cr_assert_eq(mixed, 0, "every answer comes wholly from one version");
	cr_assert_eq(backwards, 0, "no client goes back to an older version");
	for (int i = 0; i < NCLIENTS; i++)
		for (int v = 1; v <= MAXV; v++)
			cr_assert_geq(clients[i].by_version[v], 20, "client %d, version %d", i, v);

	/* The switch in the statistics: over the local socket every version
	 * the table knows, the retired ones with their final counts, which
	 * are exactly the answers the clients had from each. */
	ferry_client *c;
	struct seen_stats st = { 0 };
	cr_assert_eq(ferry_connect(&c, b.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_statistics(c, "addv", FERRY_LATEST, on_stats, &st), MAXV, "%s",
		     ferry_last_error());
	for (int v = 1; v <= MAXV; v++)
		cr_assert_eq(st.count[v], total[v], "version %d: %llu inferences counted, %llu "
			     "answers seen", v, (unsigned long long)st.count[v],
			     (unsigned long long)total[v]);
	ferry_close(c);
	/* Over gRPC (ModelStatistics), the version that serves. */
	struct seen_stats gs = { 0 };
	cr_assert_eq(ferry_model_statistics(admin, "addv", FERRY_LATEST, on_stats, &gs), 1, "%s",
		     ferry_last_error());
	cr_assert_eq(gs.count[3], total[3]);
	ferry_close(admin);

	cr_assert_eq(th_stop(&b), 0, "ferryd exits cleanly");
	th_cleanup(&b);
}

/* One request of x = 0 on m: the version it says computed it, or the
 * error. */
static int infer_version(ferry_client *c, ferry_model *m)
{
	ferry_request *r;
	float *x;
	const float *y;
	int64_t dims[2] = { 1, NELEM };
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "x", FERRY_TYPE_FP32, dims, 2, (void **)&x), 0);
	memset(x, 0, sizeof(float) * NELEM);
	int ret = ferry_infer(c, r, 10 * SEC);
	if (!ret) {
		cr_assert_eq(ferry_request_output(r, "y", NULL, NULL, NULL, (const void **)&y,
						  NULL), 0);
		ret = (int)y[0];
	}
	ferry_request_free(r);
	return ret;
}

Test(reload, a_pinned_version_that_went_fails_and_latest_follows, .timeout = 60)
{
	struct th_broker b;
	ferry_client *c, *old;
	ferry_model *latest, *v1;

	th_init(&b);
	th_model(&b, "addv", CONFIG);
	add_version(&b, 1);
	th_start(&b, "--grpc-port", "0", "--metrics-port", "0", NULL);
	cr_assert_eq(ferry_connect(&c, b.sock, NULL), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(c, "addv", FERRY_LATEST, &latest), 0);
	cr_assert_eq(ferry_model_get(c, "addv", 1, &v1), 0);
	cr_assert_eq(infer_version(c, latest), 1);
	/* A client with FERRY_F_NO_RECONNECT keeps libferry 0.1's answer. */
	ferry_options o = { .flags = FERRY_F_NO_RECONNECT };
	ferry_model *om;
	cr_assert_eq(ferry_connect(&old, b.sock, &o), 0, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_get(old, "addv", FERRY_LATEST, &om), 0);

	add_version(&b, 2);
	cr_assert_eq(ferry_model_load(c, "addv"), 0, "%s", ferry_last_error());
	/* FERRY_LATEST follows the reload by itself. */
	cr_assert_eq(infer_version(c, latest), 2, "%s", ferry_last_error());
	cr_assert_eq(ferry_model_version(latest), 2);
	/* Version 1 asked for by number is gone: its request says why. */
	cr_assert_eq(infer_version(c, v1), FERRY_UNAVAILABLE);
	cr_assert(strstr(ferry_last_error(), "replaced by a reload"), "%s", ferry_last_error());
	cr_assert_eq(infer_version(old, om), FERRY_UNAVAILABLE);
	cr_assert(strstr(ferry_last_error(), "replaced by a reload"), "%s", ferry_last_error());
	ferry_close(old);

	/* One request sent again after each of more reloads than one
	 * submission may ride through: each submission counts afresh.  A
	 * reload of the same version replaces it too (a new id). */
	ferry_request *r;
	float *x;
	int64_t dims[2] = { 1, NELEM };
	cr_assert_eq(ferry_request_new(latest, &r), 0);
	cr_assert_eq(ferry_request_input(r, "x", FERRY_TYPE_FP32, dims, 2, (void **)&x), 0);
	memset(x, 0, sizeof(float) * NELEM);
	for (int i = 0; i < 12; i++) {
		cr_assert_eq(ferry_model_load(c, "addv"), 0, "%s", ferry_last_error());
		cr_assert_eq(ferry_infer(c, r, 10 * SEC), 0, "reload %d: %s", i, ferry_last_error());
	}
	ferry_request_free(r);

	/* An unload is no reload: nothing is sent again. */
	cr_assert_eq(ferry_model_unload(c, "addv"), 0, "%s", ferry_last_error());
	cr_assert_eq(infer_version(c, latest), FERRY_UNAVAILABLE);
	cr_assert(strstr(ferry_last_error(), "not ready"), "%s", ferry_last_error());
	/* The statistics keep each version's count: one on 1, and on 2 the
	 * one of the last reload's record. */
	struct seen_stats st = { 0 };
	cr_assert_eq(ferry_model_statistics(c, "addv", FERRY_LATEST, on_stats, &st), 2, "%s",
		     ferry_last_error());
	cr_assert_eq(st.count[1], 1);
	cr_assert_eq(st.count[2], 1);
	ferry_close(c);
	cr_assert_eq(th_stop(&b), 0);
	th_cleanup(&b);
}
