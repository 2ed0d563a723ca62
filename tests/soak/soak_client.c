/* SPDX-License-Identifier: MIT */
/*
 * soak_client - one of scripts/soak.sh's clients: sends requests with
 * unique payloads of mixed sizes to the soak repository's models for a
 * set time, verifies every result and prints its counts.
 *
 *   soak_client ADDRESS ID SECONDS
 *
 * ADDRESS is what ferry_connect() takes: a Unix socket path for the
 * shared-memory transport, or grpc://host:port for the gRPC one (the
 * soak script's hook for the second transport).
 *
 * Every payload starts with a 64-bit tag (client ID << 32 | request
 * number) and continues with bytes drawn from that tag, so a result is
 * classified exactly: ok (all bytes right), dup (a complete earlier
 * result of this client: a response delivered twice or to the wrong
 * request), bad (anything else), lost (an error or a timeout instead of
 * a result).  The last line on stdout is
 *
 *   soak_client ID sent N ok N bad N dup N lost N
 *
 * and the exit status is 0 only when ok == sent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/ferry.h>

#define SOAK_TIMEOUT_NS   (30LL * 1000000000LL)  /* a result later than this is lost */
#define SOAK_PIPELINE     4                      /* requests in flight, async rounds */
#define SOAK_DYN_MAX      32768                  /* identity_dyn: FP32 elements */
#define SOAK_BYTES_MAX    16384                  /* identity_bytes: bytes per element */

enum { M_IDENTITY, M_DYN, M_BYTES, M_SIMPLE, M__COUNT };
static const char *const soak_model_names[M__COUNT] = {
	"identity", "identity_dyn", "identity_bytes", "simple",
};

struct soak_counts {
	uint64_t sent, ok, bad, dup, lost;
};

/* splitmix64: the payload stream of a tag, and the client's choices. */
static uint64_t soak_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double soak_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fill n bytes: the tag, then the tag's stream. */
static void soak_fill(uint8_t *p, size_t n, uint64_t tag)
{
	uint64_t s = tag;
	size_t k = 0;

	memcpy(p, &tag, n < 8 ? n : 8);
	for (k = 8; k < n; k += 8) {
		uint64_t v = soak_mix(&s);
		memcpy(p + k, &v, n - k < 8 ? n - k : 8);
	}
}

/* One request in flight and what it must come back as. */
struct soak_req {
	ferry_request *r;
	int model;
	uint64_t tag;
	size_t bytes;           /* payload bytes (identity models) */
	int32_t a[4 * 16], b[4 * 16];  /* simple's inputs, batch up to 4 */
	int batch;
};

static int soak_fail(const char *what, int err)
{
	fprintf(stderr, "soak_client: %s: %s (%s)\n", what, ferry_last_error(),
		ferry_errname(err));
	return err;
}

/* Build request q for model q->model with tag q->tag; 0 or an error. */
static int soak_build(struct soak_req *q, ferry_model *m, uint64_t *rng)
{
	void *p;
	int ret;

	if ((ret = ferry_request_new(m, &q->r)))
		return soak_fail("request", ret);
	switch (q->model) {
	case M_IDENTITY: {
		/* FP32 [batch, 256], batch 1 to 4. */
		q->batch = 1 + (int)(soak_mix(rng) % 4);
		int64_t dims[2] = { q->batch, 256 };
		q->bytes = (size_t)q->batch * 256 * 4;
		ret = ferry_request_input(q->r, "INPUT0", FERRY_TYPE_FP32, dims, 2, &p);
		if (!ret)
			soak_fill(p, q->bytes, q->tag);
		break;
	}
	case M_DYN: {
		/* FP32 [1, n]: 8 bytes to 128 KiB, log-uniform-ish. */
		int64_t n = 2 + (int64_t)(soak_mix(rng) % (uint64_t)(2 << (soak_mix(rng) % 15)));
		if (n > SOAK_DYN_MAX)
			n = SOAK_DYN_MAX;
		int64_t dims[2] = { 1, n };
		q->bytes = (size_t)n * 4;
		ret = ferry_request_input(q->r, "INPUT0", FERRY_TYPE_FP32, dims, 2, &p);
		if (!ret) {
			soak_fill(p, q->bytes, q->tag);
			ret = ferry_request_want_output(q->r, "OUTPUT0", q->bytes);
		}
		break;
	}
	case M_BYTES: {
		/* One BYTES element: a 4-byte length, then 8 to 16 KiB. */
		uint32_t len = 8 + (uint32_t)(soak_mix(rng) % (SOAK_BYTES_MAX - 7));
		int64_t dims[2] = { 1, 1 };
		q->bytes = 4 + (size_t)len;
		ret = ferry_request_input_bytes(q->r, "INPUT0", FERRY_TYPE_BYTES, dims, 2,
						q->bytes, &p);
		if (!ret) {
			memcpy(p, &len, 4);
			soak_fill((uint8_t *)p + 4, len, q->tag);
			ret = ferry_request_want_output(q->r, "OUTPUT0", q->bytes);
		}
		break;
	}
	case M_SIMPLE: {
		/* INT32 [batch, 16] twice: sum and difference come back. */
		q->batch = 1 + (int)(soak_mix(rng) % 4);
		int64_t dims[2] = { q->batch, 16 };
		void *pb;
		uint64_t s = q->tag;
		for (int i = 0; i < q->batch * 16; i++) {
			/* Small values: the sum never overflows. */
			q->a[i] = (int32_t)(soak_mix(&s) % 2000001) - 1000000;
			q->b[i] = (int32_t)(soak_mix(&s) % 2000001) - 1000000;
		}
		/* The tag in the first element, so a swapped result shows. */
		q->a[0] = (int32_t)(q->tag & 0x3fffffff);
		ret = ferry_request_input(q->r, "INPUT0", FERRY_TYPE_INT32, dims, 2, &p);
		if (!ret)
			ret = ferry_request_input(q->r, "INPUT1", FERRY_TYPE_INT32, dims, 2, &pb);
		if (!ret) {
			memcpy(p, q->a, (size_t)q->batch * 16 * 4);
			memcpy(pb, q->b, (size_t)q->batch * 16 * 4);
		}
		break;
	}
	}
	if (ret)
		return soak_fail("input", ret);
	return 0;
}

/* Classify a completed request. */
static void soak_check(struct soak_req *q, int status, uint32_t id, uint64_t seq,
		       struct soak_counts *c)
{
	const void *out;
	size_t bytes;
	int bad = 0;

	if (status) {
		fprintf(stderr, "soak_client %u: request %" PRIu64 " failed: %s (%s)\n",
			id, q->tag & 0xffffffff, ferry_last_error(), ferry_errname(status));
		c->lost++;
		return;
	}
	if (q->model == M_SIMPLE) {
		const int32_t *o0, *o1;
		size_t b0, b1;
		if (ferry_request_output(q->r, "OUTPUT0", NULL, NULL, NULL, (const void **)&o0, &b0) ||
		    ferry_request_output(q->r, "OUTPUT1", NULL, NULL, NULL, (const void **)&o1, &b1) ||
		    b0 != (size_t)q->batch * 64 || b1 != b0) {
			c->bad++;
			return;
		}
		for (int i = 0; i < q->batch * 16; i++)
			if (o0[i] != q->a[i] + q->b[i] || o1[i] != q->a[i] - q->b[i])
				bad = 1;
		if (bad)
			c->bad++;
		else
			c->ok++;
		return;
	}
	if (ferry_request_output(q->r, "OUTPUT0", NULL, NULL, NULL, &out, &bytes) ||
	    bytes != q->bytes) {
		c->bad++;
		return;
	}
	const uint8_t *p = out;
	if (q->model == M_BYTES) {
		uint32_t len;
		memcpy(&len, p, 4);
		if (len != q->bytes - 4) {
			c->bad++;
			return;
		}
		p += 4;
		bytes -= 4;
	}
	/* Regenerate and compare; on a mismatch, see whose tag it carries. */
	uint8_t *want = malloc(bytes);
	if (!want) {
		c->bad++;
		return;
	}
	soak_fill(want, bytes, q->tag);
	if (memcmp(want, p, bytes) == 0) {
		c->ok++;
	} else {
		uint64_t got;
		memcpy(&got, p, bytes < 8 ? bytes : 8);
		if (bytes >= 8 && got >> 32 == id && (got & 0xffffffff) < seq)
			c->dup++;
		else
			c->bad++;
		fprintf(stderr, "soak_client %u: request %" PRIu64 ": wrong result (tag %#" PRIx64 ")\n",
			id, q->tag & 0xffffffff, got);
	}
	free(want);
}

int main(int argc, char **argv)
{
	ferry_options opt = { 0 };
	ferry_client *c;
	ferry_model *models[M__COUNT];
	struct soak_req q[SOAK_PIPELINE];
	struct soak_counts cnt = { 0 };
	int ret;

	if (argc != 4) {
		fprintf(stderr, "usage: soak_client ADDRESS ID SECONDS\n");
		return 2;
	}
	uint32_t id = (uint32_t)strtoul(argv[2], NULL, 10);
	double end = soak_now() + strtod(argv[3], NULL);
	uint64_t rng = 0x5eed0000ULL + id, seq = 0;

	/* 64 clients: a small arena each, and blocking waits so that 64
	 * processes on a few cores do not spin against ferryd. */
	opt.arena_bytes = 8 << 20;
	opt.queue_depth = 16;
	opt.wait = FERRY_WAIT_BLOCK;
	opt.client_name = "soak_client";
	if ((ret = ferry_connect(&c, argv[1], &opt))) {
		soak_fail("connect", ret);
		return 1;
	}
	for (int i = 0; i < M__COUNT; i++) {
		if ((ret = ferry_model_get(c, soak_model_names[i], FERRY_LATEST, &models[i]))) {
			soak_fail(soak_model_names[i], ret);
			return 1;
		}
	}

	while (soak_now() < end) {
		/* Alternate single synchronous requests with rounds of
		 * SOAK_PIPELINE requests in flight at once. */
		int k = soak_mix(&rng) % 2 ? 1 : SOAK_PIPELINE;
		for (int i = 0; i < k; i++) {
			q[i].model = (int)(soak_mix(&rng) % M__COUNT);
			q[i].tag = (uint64_t)id << 32 | ++seq;
			if (soak_build(&q[i], models[q[i].model], &rng)) {
				cnt.lost++;
				cnt.sent++;
				q[i].r = NULL;
				continue;
			}
			cnt.sent++;
			if (k == 1) {
				ret = ferry_infer(c, q[i].r, SOAK_TIMEOUT_NS);
				soak_check(&q[i], ret, id, seq, &cnt);
				ferry_request_free(q[i].r);
				q[i].r = NULL;
			} else if ((ret = ferry_infer_async(c, q[i].r, NULL, NULL))) {
				soak_check(&q[i], ret, id, seq, &cnt);
				ferry_request_free(q[i].r);
				q[i].r = NULL;
			}
		}
		for (int i = 0; k > 1 && i < k; i++) {
			if (!q[i].r)
				continue;
			ret = ferry_request_wait(q[i].r, SOAK_TIMEOUT_NS);
			soak_check(&q[i], ret, id, seq, &cnt);
			ferry_request_free(q[i].r);
		}
	}
	ferry_close(c);
	printf("soak_client %u sent %" PRIu64 " ok %" PRIu64 " bad %" PRIu64
	       " dup %" PRIu64 " lost %" PRIu64 "\n",
	       id, cnt.sent, cnt.ok, cnt.bad, cnt.dup, cnt.lost);
	return cnt.ok == cnt.sent ? 0 : 1;
}
