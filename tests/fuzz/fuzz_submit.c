/* SPDX-License-Identifier: MIT */
/*
 * fuzz_submit - the broker's trust boundary end to end: a hostile client's
 * SQEs and arena bytes through the real session code (session_poll: ring,
 * descriptor copy, index / offset / size checks), the real scheduler
 * (sched_submit: dtypes, shapes, byte counts, priorities, queue policies)
 * and the built-in identity / add_sub backends run inline, with the
 * completions drained from the CQ as a client would.  broker/core/session.c
 * and the scheduler (broker/sched/) are linked unchanged;
 * tests/fuzz/models_shim.c stands in for the model table.
 *
 * Input layout:
 *   byte 0   flags: FZS_F_* below
 *   byte 1   number of SQEs, at most FZS_MAX_SQES
 *   4 bytes  a ring index, for FZS_F_SQ_TAIL / FZS_F_CQ_HEAD
 *   64 * n   the SQEs (user_data is replaced by the SQE's number, so each
 *            completion can be matched to its submission)
 *   rest     the arena image, copied to arena offset 0 (descriptors and
 *            tensor bytes)
 *
 * Oracles, beyond the sanitizers and the leak checker: unless the input
 * scribbles a ring index, every SQE gets exactly one CQE with its
 * user_data, and nothing stays in flight; in every case the session ends
 * with no request in flight and is freed (the last reference drops).
 *
 * Two oracles stand in for the sanitizers where there are none (make
 * check's gcc build replays the corpus and the regressions through this
 * file), one per past finding:
 *  - alignment: every host tensor a backend is handed starts at a multiple
 *    of 8 (session.c promises it; backends load typed elements in place),
 *    checked by a wrapper around each backend's execute;
 *  - overlap: memcpy is never called on overlapping ranges (undefined
 *    behaviour, which x86 glibc happens to tolerate), checked by a memcpy
 *    of this program's own that aborts on overlap; with ASan, whose own
 *    memcpy checks the same, and under libFuzzer, the sanitizers' is used.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <ferry/errors.h>

#include "broker/backends/builtin.h"
#include "broker/sched/be_host.h"
#include "broker/core/log.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"
#include "broker/core/session.h"
#include "shm/fshm.h"
#include "tests/fuzz/fuzz.h"

#define FZS_MAX_SQES   64
#define FZS_ARENA      (64 * 1024)
#define FZS_DEPTH      16

#define FZS_F_SQ_TAIL  (1u << 0) /* overwrite the SQ tail before the first poll */
#define FZS_F_CQ_HEAD  (1u << 1) /* overwrite the CQ head before the first poll */
#define FZS_F_REWRITE  (1u << 2) /* rewrite the arena after submission */
#define FZS_F_NO_READ  (1u << 3) /* leave the CQ unread for a while */

#if !defined(FUZZ_LIBFUZZER) && !defined(__SANITIZE_ADDRESS__)
/*
 * The overlap oracle: every memcpy of this program (the backends under
 * test, and the libraries it links) comes here.  Overlapping ranges are a
 * finding; otherwise memmove does the copy, called through a volatile
 * pointer: a compiler that sees the ranges cannot overlap may turn a
 * direct memmove back into memcpy, this very function.
 */
static void *(*volatile fzs_memmove)(void *, const void *, size_t) = memmove;

void *memcpy(void *dst, const void *src, size_t n)
{
	uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;

	if (n && d < s + n && s < d + n) {
		fprintf(stderr, "fuzz_submit: memcpy(%p, %p, %zu) on overlapping ranges "
			"(undefined: use memmove)\n", dst, src, n);
		abort();
	}
	return fzs_memmove(dst, src, n);
}
#endif

/* The alignment oracle: the host tensors of a batch, as a backend sees
 * them, each at a multiple of 8. */
static void fzs_check_batch(ferry_be_request **reqs, uint32_t count)
{
	for (uint32_t k = 0; k < count; k++) {
		const struct sched_req *r = reqs[k]->r;
		const struct model_config *cfg = reqs[k]->cfg;

		for (int i = 0; i < cfg->ninputs + cfg->noutputs; i++) {
			const struct sched_tensor *t = i < cfg->ninputs ? &r->in[i] :
							   &r->out[i - cfg->ninputs];

			if (t->present && !t->cuda && t->bytes && ((uintptr_t)t->data & 7)) {
				fprintf(stderr, "fuzz_submit: %s %d of model %s at %p: not "
					"8-byte aligned\n", i < cfg->ninputs ? "input" : "output",
					i < cfg->ninputs ? i : i - cfg->ninputs, cfg->name, t->data);
				abort();
			}
		}
	}
}

static ferry_be_error *fzs_identity_execute(ferry_be_instance *inst, ferry_be_request **reqs,
					    uint32_t count)
{
	fzs_check_batch(reqs, count);
	return identity_be_ops.instance_execute(inst, reqs, count);
}

static ferry_be_error *fzs_addsub_execute(ferry_be_instance *inst, ferry_be_request **reqs,
					  uint32_t count)
{
	fzs_check_batch(reqs, count);
	return addsub_be_ops.instance_execute(inst, reqs, count);
}

/*
 * The models: the examples' three, a dynamically batched identity with
 * variable dims, priorities and a bounded queue, and a non-batching one.
 * Slot 5 is a model that failed to load (no scheduler model).
 */
static const char *const fzs_configs[] = {
	"name: \"identity\" backend: \"identity\" max_batch_size: 64\n"
	"input [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 256 ] } ]\n"
	"output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 256 ] } ]\n"
	"dynamic_batching { }\n",

	"name: \"identity_bytes\" backend: \"identity\" max_batch_size: 8\n"
	"input [ { name: \"INPUT0\" data_type: TYPE_STRING dims: [ 1 ] } ]\n"
	"output [ { name: \"OUTPUT0\" data_type: TYPE_STRING dims: [ 1 ] } ]\n",

	"name: \"simple\" backend: \"add_sub\" max_batch_size: 8\n"
	"input [ { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },\n"
	"        { name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
	"output [ { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },\n"
	"         { name: \"OUTPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n",

	"name: \"dyn\" backend: \"identity\" max_batch_size: 16\n"
	"input [ { name: \"IN_A\" data_type: TYPE_UINT8 dims: [ -1 ] },\n"
	"        { name: \"IN_B\" data_type: TYPE_INT64 dims: [ 2, -1 ] optional: true } ]\n"
	"output [ { name: \"OUT_A\" data_type: TYPE_UINT8 dims: [ -1 ] },\n"
	"         { name: \"OUT_B\" data_type: TYPE_INT64 dims: [ 2, -1 ] } ]\n"
	"dynamic_batching { max_queue_delay_microseconds: 100\n"
	"  preferred_batch_size: [ 2, 4 ] preserve_ordering: true\n"
	"  priority_levels: 2 default_priority_level: 2\n"
	"  default_queue_policy { max_queue_size: 8 timeout_action: DELAY\n"
	"    default_timeout_microseconds: 50 allow_timeout_override: true }\n"
	"  priority_queue_policy [ { key: 1 value: { max_queue_size: 4\n"
	"    timeout_action: REJECT allow_timeout_override: true } } ] }\n",

	"name: \"nobatch\" backend: \"identity\" max_batch_size: 0\n"
	"input [ { name: \"X\" data_type: TYPE_FP64 dims: [ -1, 3 ] } ]\n"
	"output [ { name: \"Y\" data_type: TYPE_FP64 dims: [ -1, 3 ] } ]\n",
};
#define FZS_NCFG (int)(sizeof(fzs_configs) / sizeof(fzs_configs[0]))

static struct model_config fzs_cfg[FZS_NCFG];
static struct models_entry fzs_models[FZS_NCFG + 1];
static struct session_limits fzs_lim = {
	.arena_default = FZS_ARENA,
	.arena_max = FZS_ARENA,
	.depth_default = FZS_DEPTH,
	.depth_max = FZS_DEPTH,
	.numa_node = -1,
};

static void fzs_init(void)
{
	static struct be_registry *reg;
	struct be_ops identity = identity_be_ops, addsub = addsub_be_ops;
	char err[512];

	if (reg)
		return;
	identity.instance_execute = fzs_identity_execute;
	addsub.instance_execute = fzs_addsub_execute;
	/* session.c warns about clients that corrupt their rings: expected. */
	log_threshold = LOG_ERROR;
	FUZZ_CHECK(be_registry_create(NULL, &reg) == 0);
	/* identity and add_sub only: the ONNX executor has its own target. */
	FUZZ_CHECK(be_registry_add_builtin(reg, "identity", &identity, err, sizeof(err)) == 0);
	FUZZ_CHECK(be_registry_add_builtin(reg, "add_sub", &addsub, err, sizeof(err)) == 0);
	for (int i = 0; i < FZS_NCFG; i++) {
		struct models_entry *m = &fzs_models[i];
		if (modelcfg_parse(fzs_configs[i], strlen(fzs_configs[i]), "fuzz_submit",
			     &fzs_cfg[i], NULL, NULL, err, sizeof(err)) ||
		    sched_model_create(&fzs_cfg[i], NULL, 1, reg, &m->sm, err, sizeof(err))) {
			fprintf(stderr, "fuzz_submit: model %d: %s\n", i, err);
			abort();
		}
		FUZZ_CHECK(sched_is_inline(m->sm));
		m->name = fzs_cfg[i].name;
		m->version = 1;
		m->id = 1u << 16 | (uint32_t)i;
		m->state = MODELS_READY;
		m->cfg = &fzs_cfg[i];
		m->is_inline = true;
	}
	/* A model that failed to load: known id, no scheduler model. */
	fzs_models[FZS_NCFG] = fzs_models[0];
	fzs_models[FZS_NCFG].id = 1u << 16 | FZS_NCFG;
	fzs_models[FZS_NCFG].state = MODELS_UNAVAILABLE;
	fzs_models[FZS_NCFG].sm = NULL;
	models_shim_set(fzs_models, FZS_NCFG + 1);
	/* The models live until exit, as in ferryd; their memory is
	 * reachable from the statics, so LeakSanitizer does not count it. */
}

/* Run every inline model's ready batches; true when none has work left. */
static bool fzs_run_models(void)
{
	uint64_t now = sched_now_ns(), next = UINT64_MAX;

	for (int i = 0; i < FZS_NCFG; i++) {
		uint64_t dl = UINT64_MAX;
		sched_run_inline(fzs_models[i].sm, now, &dl);
		if (dl < next)
			next = dl;
	}
	if (next == UINT64_MAX)
		return true;
	if (next > now) {
		/* Batch delays and queue timeouts are short (100 us). */
		uint64_t ns = next - now < 1000000 ? next - now : 1000000;
		struct timespec ts = { 0, (long)ns };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* FUZZ_SUBMIT_VERBOSE=1: print each completion (to check the seeds). */
static void fzs_explain(const struct session *s, const struct fshm_sqe *sqes,
			unsigned nsqe, const struct fshm_cqe *cqe)
{
	const char *msg = "";

	if (cqe->user_data < nsqe && cqe->status) {
		uint64_t off = sqes[cqe->user_data].desc_off;
		if (off < s->arena_bytes &&
		    s->arena_bytes - off >= sizeof(struct fshm_req_desc)) {
			const struct fshm_req_desc *d = (const void *)(s->arena + off);
			if (memchr(d->errmsg, '\0', sizeof(d->errmsg)))
				msg = d->errmsg;
		}
	}
	fprintf(stderr, "fuzz_submit: sqe %llu: status %d %s\n",
		(unsigned long long)cqe->user_data, cqe->status, msg);
}

int fuzz_submit(const uint8_t *data, size_t size)
{
	static int verbose = -1;
	struct fshm_sqe sqes[FZS_MAX_SQES];
	struct fshm_ring csq, ccq;   /* the client's ends */
	struct session *s;
	bool seen[FZS_MAX_SQES] = { false };
	char err[256];
	uint32_t idx;

	fzs_init();
	if (verbose < 0)
		verbose = getenv("FUZZ_SUBMIT_VERBOSE") != NULL;
	if (size < 6)
		return 0;
	unsigned flags = data[0];
	unsigned nsqe = data[1] < FZS_MAX_SQES ? data[1] : FZS_MAX_SQES;
	memcpy(&idx, data + 2, 4);
	data += 6;
	size -= 6;
	if (nsqe > size / sizeof(struct fshm_sqe))
		nsqe = (unsigned)(size / sizeof(struct fshm_sqe));
	memcpy(sqes, data, nsqe * sizeof(struct fshm_sqe));
	data += nsqe * sizeof(struct fshm_sqe);
	size -= nsqe * sizeof(struct fshm_sqe);
	for (unsigned i = 0; i < nsqe; i++)
		sqes[i].user_data = i;

	FUZZ_CHECK(session_create(&fzs_lim, 1, 1, 0, 0, &s, err, sizeof(err)) == 0);
	fshm_ring_init(&csq, s->seg.base, &s->seg.sq, true);
	fshm_ring_init(&ccq, s->seg.base, &s->seg.cq, false);
	memcpy(s->arena, data, size < s->arena_bytes ? size : s->arena_bytes);
	bool scribbled = flags & (FZS_F_SQ_TAIL | FZS_F_CQ_HEAD);
	if (flags & FZS_F_SQ_TAIL) {
		struct fshm_ring_ctl *c = (void *)((char *)s->seg.base + s->seg.sq.offset);
		atomic_store(&c->tail, idx);
	}
	if (flags & FZS_F_CQ_HEAD) {
		struct fshm_ring_ctl *c = (void *)((char *)s->seg.base + s->seg.cq.offset);
		atomic_store(&c->head, idx);
	}

	unsigned sent = 0, polled = 0, completed = 0;
	bool broken = false;
	for (int round = 0; round < 10000; round++) {
		if (sent < nsqe) {
			int n = fshm_ring_enqueue_burst(&csq, &sqes[sent], nsqe - sent);
			FUZZ_CHECK(n >= 0 || scribbled);
			if (n > 0)
				sent += (unsigned)n;
		}
		int n = session_poll(s);
		if (n < 0) {
			/* Only a client that corrupts its own ring ends its
			 * session; ferryd then closes it. */
			FUZZ_CHECK(n == -EBADMSG && scribbled);
			broken = true;
			break;
		}
		polled += (unsigned)n;
		FUZZ_CHECK(s->inflight <= s->nslots);
		if (round == 0 && (flags & FZS_F_REWRITE)) {
			/* The client rewrites descriptors and data after
			 * submitting: the broker must have copied what it
			 * checked. */
			for (uint64_t k = 0; k < s->arena_bytes; k += 8)
				s->arena[k] ^= 0xa5;
		}
		bool idle = fzs_run_models();
		if (!(flags & FZS_F_NO_READ) || round >= 4) {
			struct fshm_cqe cqe;
			int got;
			while ((got = fshm_ring_dequeue_burst(&ccq, &cqe, 1)) == 1) {
				completed++;
				if (verbose)
					fzs_explain(s, sqes, nsqe, &cqe);
				if (!scribbled) {
					FUZZ_CHECK(cqe.user_data < nsqe);
					FUZZ_CHECK(!seen[cqe.user_data]);
					seen[cqe.user_data] = true;
				}
			}
			FUZZ_CHECK(got == 0 || scribbled);
		}
		if (idle && sent == nsqe && !session_has_work(s) && s->inflight == 0 &&
		    (!(flags & FZS_F_NO_READ) || round >= 4))
			break;
	}
	/* Whatever happened, the queued requests finish (ferryd's loop
	 * keeps running inline models after closing a session). */
	for (int k = 0; k < 10000 && !fzs_run_models(); k++)
		;
	FUZZ_CHECK(s->inflight == 0);
	if (!scribbled && !broken) {
		/* Every submission answered exactly once. */
		FUZZ_CHECK(sent == nsqe && polled == nsqe);
		FUZZ_CHECK(completed == polled);
	}
	FUZZ_CHECK(atomic_load(&s->refs) == 1);
	session_kill(s);
	return 0;
}

FUZZ_ENTRY(fuzz_submit)
