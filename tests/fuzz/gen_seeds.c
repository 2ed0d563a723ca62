/* SPDX-License-Identifier: MIT */
/*
 * gen_seeds - write the seed inputs of fuzz_ctl and fuzz_submit that are
 * binary (valid control frames, valid submissions for every model of
 * fuzz_submit.c) into tests/fuzz/corpus/{ctl,submit}/.  Built and run by
 * `FUZZ_GEN_SEEDS=1 scripts/fuzz.sh`; the output is committed, so this
 * only needs to run again when the wire formats change.
 *
 *   gen_seeds CORPUS_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/dtype.h>

#include "proto/control.pb-c.h"
#include "shm/fshm_wire.h"

static const char *dir;

static void put(const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* ---- control frames ------------------------------------------------- */

static size_t frame(uint8_t *out, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	out[0] = (uint8_t)n;
	out[1] = (uint8_t)(n >> 8);
	out[2] = (uint8_t)(n >> 16);
	out[3] = (uint8_t)(n >> 24);
	protobuf_c_message_pack(m, out + 4);
	return n + 4;
}

static void gen_ctl(void)
{
	uint8_t buf[4096];
	size_t n;
	Ferry__Control__Request rq = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__Hello h = FERRY__CONTROL__HELLO__INIT;
	Ferry__Control__ListModels lm = FERRY__CONTROL__LIST_MODELS__INIT;
	Ferry__Control__GetModel gm = FERRY__CONTROL__GET_MODEL__INIT;
	Ferry__Control__GetStatus gs = FERRY__CONTROL__GET_STATUS__INIT;
	Ferry__Control__GetStats st = FERRY__CONTROL__GET_STATS__INIT;

	h.proto_major = 1;
	h.client_name = "seed-client";
	h.arena_bytes = 1 << 20;
	h.queue_depth = 64;
	rq.seq = 1;
	rq.body_case = FERRY__CONTROL__REQUEST__BODY_HELLO;
	rq.hello = &h;
	/* byte 0: chunk size 64, no descriptors (see fuzz_ctl.c) */
	buf[0] = 63;
	n = 1 + frame(buf + 1, &rq.base);
	put("ctl", "hello", buf, n);
	buf[0] = 0x40 | 3;          /* 4-byte writes, one eventfd attached */
	put("ctl", "hello_fd_small_writes", buf, n);

	rq.seq = 2;
	rq.body_case = FERRY__CONTROL__REQUEST__BODY_LIST_MODELS;
	rq.list_models = &lm;
	size_t m = frame(buf + n, &rq.base);
	n += m;
	rq.seq = 3;
	rq.body_case = FERRY__CONTROL__REQUEST__BODY_GET_MODEL;
	gm.name = "simple";
	gm.version = -1;
	rq.get_model = &gm;
	n += frame(buf + n, &rq.base);
	rq.seq = 4;
	rq.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATUS;
	rq.get_status = &gs;
	n += frame(buf + n, &rq.base);
	rq.seq = 5;
	rq.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATS;
	st.name = "";
	st.version = -1;
	rq.get_stats = &st;
	n += frame(buf + n, &rq.base);
	buf[0] = 63;
	put("ctl", "session", buf, n);

	/* A Response, as libferry decodes them. */
	Ferry__Control__Response rs = FERRY__CONTROL__RESPONSE__INIT;
	Ferry__Control__Error e = FERRY__CONTROL__ERROR__INIT;
	e.code = -22;
	e.message = "malformed control message";
	rs.seq = 9;
	rs.body_case = FERRY__CONTROL__RESPONSE__BODY_ERROR;
	rs.error = &e;
	n = 1 + frame(buf + 1, &rs.base);
	put("ctl", "error_response", buf, n);

	/* An announced frame over the limit. */
	const uint8_t big[] = { 63, 0x01, 0x00, 0x10, 0x00, 0x08, 0x01 };
	put("ctl", "oversized", big, sizeof(big));
}

/* ---- submissions ---------------------------------------------------- */

/* The models of fuzz_submit.c, by slot. */
enum { M_IDENTITY, M_BYTES, M_SIMPLE, M_DYN, M_NOBATCH, M_UNAVAILABLE };
#define MODEL_ID(slot) (1u << 16 | (slot))

struct sub {
	uint8_t flags;
	int nsqe;
	struct fshm_sqe sqe[64];
	uint8_t arena[12288];
	uint64_t used;
};

static uint64_t sub_alloc(struct sub *s, uint64_t bytes)
{
	uint64_t off = s->used;
	s->used = (off + bytes + 63) & ~63ull;
	if (s->used > sizeof(s->arena)) {
		fprintf(stderr, "gen_seeds: arena image too small\n");
		exit(1);
	}
	return off;
}

struct tdef {
	uint32_t index, dtype, ndims;
	int64_t dims[4];
	uint64_t bytes;
	const void *data;
};

static void sub_req(struct sub *s, uint32_t model, int nin, const struct tdef *in,
		    int nout, const struct tdef *out, uint32_t priority)
{
	uint64_t db = fshm_req_desc_bytes((uint32_t)(nin + nout));
	uint64_t doff = sub_alloc(s, db);
	struct fshm_req_desc *d = (struct fshm_req_desc *)(s->arena + doff);
	d->ninputs = (uint32_t)nin;
	d->noutputs = (uint32_t)nout;
	for (int k = 0; k < nin + nout; k++) {
		const struct tdef *t = k < nin ? &in[k] : &out[k - nin];
		struct fshm_tensor *w = &d->t[k];
		/* d may move only if the arena did: it does not (static). */
		w->index = t->index;
		w->dtype = t->dtype;
		w->ndims = t->ndims;
		memcpy(w->dims, t->dims, sizeof(t->dims));
		w->bytes = t->bytes;
		w->offset = sub_alloc(s, t->bytes);
		if (t->data)
			memcpy(s->arena + w->offset, t->data, t->bytes);
	}
	struct fshm_sqe *q = &s->sqe[s->nsqe++];
	memset(q, 0, sizeof(*q));
	q->opcode = FSHM_OP_INFER;
	q->model_id = model;
	q->desc_off = doff;
	q->desc_bytes = (uint32_t)db;
	q->priority = priority;
}

static void sub_put(const struct sub *s, const char *name)
{
	static uint8_t buf[6 + sizeof(s->sqe) + sizeof(s->arena)];
	size_t n = 0;
	buf[n++] = s->flags;
	buf[n++] = (uint8_t)s->nsqe;
	memset(buf + n, 0xff, 4);
	n += 4;
	memcpy(buf + n, s->sqe, (size_t)s->nsqe * sizeof(s->sqe[0]));
	n += (size_t)s->nsqe * sizeof(s->sqe[0]);
	memcpy(buf + n, s->arena, s->used);
	n += s->used;
	put("submit", name, buf, n);
}

static void req_identity(struct sub *s)
{
	static float x[256];
	for (int i = 0; i < 256; i++)
		x[i] = (float)i;
	struct tdef in = { 0, FERRY_TYPE_FP32, 2, { 1, 256 }, sizeof(x), x };
	struct tdef out = { 0, 0, 0, { 0 }, sizeof(x), NULL };
	sub_req(s, MODEL_ID(M_IDENTITY), 1, &in, 1, &out, 0);
}

static void req_bytes(struct sub *s)
{
	static const uint8_t x[] = { 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o' };
	struct tdef in = { 0, FERRY_TYPE_BYTES, 2, { 1, 1 }, sizeof(x), x };
	struct tdef out = { 0, 0, 0, { 0 }, 64, NULL };
	sub_req(s, MODEL_ID(M_BYTES), 1, &in, 1, &out, 0);
}

static void req_simple(struct sub *s)
{
	static int32_t a[16], b[16];
	for (int i = 0; i < 16; i++) {
		a[i] = i;
		b[i] = 1;
	}
	struct tdef in[2] = {
		{ 0, FERRY_TYPE_INT32, 2, { 1, 16 }, sizeof(a), a },
		{ 1, FERRY_TYPE_INT32, 2, { 1, 16 }, sizeof(b), b },
	};
	struct tdef out[2] = {
		{ 0, 0, 0, { 0 }, sizeof(a), NULL },
		{ 1, 0, 0, { 0 }, sizeof(b), NULL },
	};
	sub_req(s, MODEL_ID(M_SIMPLE), 2, in, 2, out, 0);
}

static void req_dyn(struct sub *s, uint32_t prio)
{
	static const uint8_t a[5] = { 1, 2, 3, 4, 5 };
	static const int64_t b[2 * 3] = { 1, 2, 3, 4, 5, 6 };
	struct tdef in[2] = {
		{ 0, FERRY_TYPE_UINT8, 2, { 1, 5 }, sizeof(a), a },
		{ 1, FERRY_TYPE_INT64, 3, { 1, 2, 3 }, sizeof(b), b },
	};
	struct tdef out[2] = {
		{ 0, 0, 0, { 0 }, 64, NULL },
		{ 1, 0, 0, { 0 }, 64, NULL },
	};
	sub_req(s, MODEL_ID(M_DYN), prio == 2 ? 1 : 2, in, 2, out, prio);
}

static void req_nobatch(struct sub *s)
{
	static const double x[6] = { 1, 2, 3, 4, 5, 6 };
	struct tdef in = { 0, FERRY_TYPE_FP64, 2, { 2, 3 }, sizeof(x), x };
	struct tdef out = { 0, 0, 0, { 0 }, sizeof(x), NULL };
	sub_req(s, MODEL_ID(M_NOBATCH), 1, &in, 1, &out, 0);
}

/* An output placed over its own input: the client's own memory, so
 * allowed, and 8-byte aligned, so session.c passes it on: the identity
 * backend must copy with memmove.  (The finding in FUZZING.md reached it at
 * a misaligned offset, which session.c now refuses before any backend.) */
static void req_identity_overlap(struct sub *s)
{
	req_identity(s);
	struct fshm_req_desc *d = (struct fshm_req_desc *)(s->arena + s->sqe[s->nsqe - 1].desc_off);
	d->t[1].offset = d->t[0].offset + 512;
}

static void gen_submit(void)
{
	static struct sub s;

	memset(&s, 0, sizeof(s)); req_identity(&s); sub_put(&s, "identity");
	memset(&s, 0, sizeof(s)); req_bytes(&s); sub_put(&s, "identity_bytes");
	memset(&s, 0, sizeof(s)); req_simple(&s); sub_put(&s, "simple");
	memset(&s, 0, sizeof(s)); req_dyn(&s, 1); req_dyn(&s, 2); req_dyn(&s, 0);
	sub_put(&s, "dyn_priorities");
	memset(&s, 0, sizeof(s)); req_nobatch(&s); sub_put(&s, "nobatch");
	memset(&s, 0, sizeof(s)); req_identity_overlap(&s); sub_put(&s, "identity_output_over_input");
	memset(&s, 0, sizeof(s));
	req_identity(&s); req_simple(&s); req_bytes(&s); req_dyn(&s, 0); req_nobatch(&s);
	s.sqe[s.nsqe++] = (struct fshm_sqe){ .opcode = FSHM_OP_NOP };
	s.sqe[s.nsqe] = s.sqe[0];
	s.sqe[s.nsqe++].model_id = MODEL_ID(M_UNAVAILABLE);
	sub_put(&s, "mixed");
	/* More submissions than the ring holds, CQ unread for a while. */
	memset(&s, 0, sizeof(s));
	req_simple(&s);
	for (int i = 1; i < 40; i++)
		s.sqe[s.nsqe++] = s.sqe[0];
	s.flags = 1u << 3;
	sub_put(&s, "flood_simple");
	/* The client rewrites its arena after submitting. */
	memset(&s, 0, sizeof(s)); req_identity(&s); req_simple(&s); s.flags = 1u << 2;
	sub_put(&s, "rewrite");
	/* Corrupt ring indices. */
	memset(&s, 0, sizeof(s)); req_simple(&s); s.flags = 1u << 0;
	sub_put(&s, "bad_sq_tail");
	s.flags = 1u << 1;
	sub_put(&s, "bad_cq_head");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n");
		return 2;
	}
	dir = argv[1];
	gen_ctl();
	gen_submit();
	return 0;
}
