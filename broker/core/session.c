/* SPDX-License-Identifier: MIT */
/*
 * session.c - the broker's side of a shared-memory session: trust
 * boundary, submission, completion.
 *
 * Every byte of the segment is hostile.  A submission is handled as:
 *   1. the SQE is copied out of the ring (fshm_ring_dequeue_burst copies);
 *   2. its descriptor block is bounds-checked against the arena and copied
 *      once into private memory (a client rewriting it afterwards changes
 *      nothing the broker believes);
 *   3. every tensor's index, rank, offset and size is checked against the
 *      arena and the model, then turned into a pointer;
 *   4. the scheduler checks dtypes, shapes and byte counts against the
 *      model's configuration (sched_submit).
 * A failure at any step completes that request with an error code and a
 * message in its descriptor; only a corrupt ring index ends the session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ferry/errors.h>

#include "broker/core/log.h"
#include "broker/frontends/metrics.h"
#include "broker/gpu/gpu.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"
#include "broker/core/session.h"

_Atomic uint64_t session_total_sessions;

/* One request in flight.  Owned by the loop thread from slot allocation
 * until sched_submit(); then by the scheduler until done(). */
struct session_slot {
	struct sched_req req;
	struct session *s;
	uint64_t user_data;
	uint64_t desc_off;          /* validated: the descriptor fits the arena */
	struct models_entry *model;
	struct sched_tensor *t;     /* ninputs + noutputs of the model */
	uint32_t tcap;
	/* Position of each output in the client's descriptor, by output
	 * index; UINT8_MAX when not requested. */
	uint8_t out_pos[FSHM_MAX_TENSORS];
	/* CUDA regions its tensors use, one reference each; s->lock */
	struct session_cuda *cuda[FSHM_MAX_TENSORS];
	uint8_t ncuda;
};

/* The polling thread's scratch copy of a descriptor block (one per
 * thread: several pollers poll sessions at once). */
static __thread union {
	struct fshm_req_desc d;
	uint8_t bytes[sizeof(struct fshm_req_desc) +
		      FSHM_MAX_TENSORS * sizeof(struct fshm_tensor)];
} session__desc;

static void session__cuda_close(struct session_cuda *r)
{
	gpu_ipc_close(r->dptr);
	free(r);
}

static void session__free(struct session *s)
{
	/* No request is in flight any more: every region is unused. */
	while (s->cuda) {
		struct session_cuda *r = s->cuda;
		s->cuda = r->next;
		session__cuda_close(r);
	}
	for (uint32_t i = 0; i < s->nslots; i++)
		free(s->slots[i].t);
	free(s->slots);
	free(s->free_slots);
	if (s->db_broker.efd >= 0)
		close(s->db_broker.efd);
	if (s->db_client.efd >= 0)
		close(s->db_client.efd);
	if (s->gpu_pinned)
		gpu_host_unregister(s->seg.base);
	fshm_seg_close(&s->seg);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->sq_lock);
	free(s);
}

void session_ref(struct session *s)
{
	/* Relaxed: the caller already holds a reference. */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void session_unref(struct session *s)
{
	/* acq_rel: the last dropper must see every write of the others
	 * (completions writing into the arena) before unmapping. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		session__free(s);
}

/* A session holding nothing yet (its locks, one reference). */
static struct session *session__alloc(uint64_t id, char *err, size_t errlen)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->id = id;
	s->db_broker.efd = s->db_client.efd = -1;
	s->seg.fd = -1;
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->sq_lock, NULL);
	return s;
}

/* The rest of a session around its mapped segment (s->seg): pinning,
 * ring handles, doorbells, slots as deep as the rings.  Frees s on
 * failure. */
static int session__finish(const struct session_limits *lim, struct session *s,
			   struct session **out, char *err, size_t errlen)
{
	uint32_t ring = s->seg.sq.entries;
	int ret;

	s->arena = fshm_seg_arena(&s->seg);
	s->arena_bytes = s->seg.arena.bytes;
	/* Pinned once per session, so every batch is copied to the GPU at
	 * pinned speed straight from the client's memory. */
	if (lim->gpu_pin) {
		int rc = gpu_host_register(s->seg.base, s->seg.size);
		if (rc)
			log_warn("session %llu: cudaHostRegister of the arena failed (%s); GPU "
				 "copies run from pageable memory", (unsigned long long)s->id,
				 ferry_strerror(rc));
		else
			s->gpu_pinned = true;
	}
	fshm_ring_init(&s->sq, s->seg.base, &s->seg.sq, false);
	fshm_ring_init(&s->cq, s->seg.base, &s->seg.cq, true);

	s->db_broker.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->db_client.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->db_broker.efd < 0 || s->db_client.efd < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	s->db_broker.flag = &s->seg.hdr->broker_wake.sleeping;
	s->db_client.flag = &s->seg.hdr->client_wake.sleeping;

	s->nslots = ring;
	s->slots = calloc(ring, sizeof(*s->slots));
	s->free_slots = calloc(ring, sizeof(*s->free_slots));
	if (!s->slots || !s->free_slots) {
		ret = FERRY_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < ring; i++) {
		s->slots[i].s = s;
		s->free_slots[i] = ring - 1 - i;
	}
	s->nfree = ring;
	atomic_fetch_add(&session_total_sessions, 1);
	*out = s;
	return 0;
fail:
	session__free(s);
	return ret;
}

/* Rings are powers of two; the CQ is as deep as the queue depth so a
 * completion always finds room (see session_poll's admission rule). */
static uint32_t session__ring(uint32_t depth)
{
	uint32_t ring = 2;
	while (ring < depth)
		ring <<= 1;
	return ring;
}

int session_create(const struct session_limits *lim, uint64_t id, uint64_t epoch,
		uint64_t arena_bytes, uint32_t depth, struct session **out,
		char *err, size_t errlen)
{
	struct session *s;
	int ret;

	if (arena_bytes == 0)
		arena_bytes = lim->arena_default;
	if (arena_bytes > lim->arena_max) {
		snprintf(err, errlen, "arena of %llu bytes asked, the limit is %llu",
			 (unsigned long long)arena_bytes,
			 (unsigned long long)lim->arena_max);
		return FERRY_E2BIG;
	}
	if (depth == 0)
		depth = lim->depth_default;
	if (depth > lim->depth_max)
		depth = lim->depth_max;
	uint32_t ring = session__ring(depth);

	if (!(s = session__alloc(id, err, errlen)))
		return FERRY_ENOMEM;
	struct fshm_seg_params p = {
		.sq_entries = ring,
		.cq_entries = ring,
		.arena_bytes = arena_bytes,
		.arena_align = 64,
		.numa_node = lim->numa_node,
		.flags = lim->prefault ? FSHM_SEG_PREFAULT : 0,
		.epoch = epoch,
		.session_id = id,
	};
	ret = fshm_seg_create(&p, &s->seg);
	if (ret) {
		snprintf(err, errlen, "cannot create the session segment: %s",
			 strerror(-ret));
		session__free(s);
		return ret;
	}
	return session__finish(lim, s, out, err, errlen);
}

int session_adopt(const struct session_limits *lim, uint64_t id, uint64_t epoch, int fd,
		  struct session **out, char *err, size_t errlen)
{
	struct session *s;
	int ret;

	if (!(s = session__alloc(id, err, errlen)))
		return FERRY_ENOMEM;
	/* The same limits as a segment made here: rings for at most
	 * depth_max requests, an arena of at most arena_max. */
	ret = fshm_seg_adopt(fd, session__ring(lim->depth_max), lim->arena_max, epoch, id,
			     &s->seg);
	if (ret) {
		snprintf(err, errlen, "the segment handed back cannot be taken over: %s",
			 ret == -ENOTSUP ? "not a sealable memfd" :
			 ret == -EPERM ? "a seal is missing" :
			 ret == -E2BIG ? "larger than this broker's limits" :
			 ret == -EBADMSG ? "its header or size does not validate" :
			 ret == -EPROTO ? "another segment ABI" : strerror(-ret));
		session__free(s);
		return ret == -E2BIG ? FERRY_E2BIG : FERRY_EINVAL;
	}
	return session__finish(lim, s, out, err, errlen);
}

void session_kill(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->dead = true;
	pthread_mutex_unlock(&s->lock);
	session_unref(s);
}

void session_arm(struct session *s)
{
	/* Only the flag: the full fence that must follow it is issued once
	 * for all sessions by the caller (fshm_doorbell_arm would fence per
	 * session). */
	atomic_store_explicit(s->db_broker.flag, 1, memory_order_relaxed);
}

void session_disarm(struct session *s)
{
	atomic_store_explicit(s->db_broker.flag, 0, memory_order_relaxed);
}

bool session_has_work(struct session *s)
{
	return fshm_ring_count(&s->sq) != 0;
}

int session_client_cpu(const struct session *s)
{
	/* Relaxed: a hint the client may rewrite at any time; any value is
	 * safe (the caller bounds it). */
	uint32_t v = atomic_load_explicit(&s->seg.hdr->client_wake.cpu, memory_order_relaxed);
	return v ? (int)(v - 1) : -1;
}

/* Post a completion (flags: more FSHM_CQE_F_*); called with s->lock
 * held.  The slot goes back to the free list here: its CQE is the last
 * thing the broker does with it. */
static void session__post(struct session *s, struct session_slot *sl, int status,
			  uint32_t flags)
{
	struct fshm_cqe cqe = {
		.user_data = sl->user_data,
		.status = status,
		.flags = (status ? FSHM_CQE_F_MSG : 0) | flags,
	};
	if (!s->dead) {
		int n = fshm_ring_enqueue_burst(&s->cq, &cqe, 1);
		if (n != 1) {
			/* Impossible unless the client moved its CQ head
			 * backwards: admission guarantees room. */
			log_warn("session %llu: CQ corrupt or full, dropping completions",
				 (unsigned long long)s->id);
			s->dead = true;
		}
	}
	for (uint8_t i = 0; i < sl->ncuda; i++) {
		struct session_cuda *r = sl->cuda[i];
		if (--r->users == 0 && r->released)
			session__cuda_close(r);
	}
	sl->ncuda = 0;
	s->inflight--;
	atomic_fetch_sub_explicit(&metrics_gauges.shm_inflight, 1, memory_order_relaxed);
	s->free_slots[s->nfree++] = (uint32_t)(sl - s->slots);
	if (status)
		s->failed++;
	else
		s->completed++;
}

static void session__write_status(struct session *s, struct session_slot *sl,
			       int status, const char *msg)
{
	if (sl->desc_off == UINT64_MAX)
		return;
	struct fshm_req_desc *d = (struct fshm_req_desc *)(s->arena + sl->desc_off);
	d->status = status;
	if (status) {
		/* The client may scribble here concurrently; we only write. */
		size_t n = msg ? strnlen(msg, FSHM_ERRMSG_LEN - 1) : 0;
		if (n)
			memcpy(d->errmsg, msg, n);
		d->errmsg[n] = '\0';
	}
}

/* Fail a request that never reached the scheduler (loop thread), with
 * flags (FSHM_CQE_F_*) in its completion. */
static int session__fail_flags(struct session *s, struct session_slot *sl, int status,
			       uint32_t flags, const char *msg)
{
	log_debug("session %llu: request failed: %s", (unsigned long long)s->id, msg);
	session__write_status(s, sl, status, msg);
	pthread_mutex_lock(&s->lock);
	session__post(s, sl, status, flags);
	pthread_mutex_unlock(&s->lock);
	fshm_doorbell_ring(&s->db_client);
	return 0;
}

static int session__fail(struct session *s, struct session_slot *sl, int status,
			 const char *msg)
{
	return session__fail_flags(s, sl, status, 0, msg);
}

/* sched_req.done: any thread, exactly once per submitted request. */
static void session__done(struct sched_req *r, int status, const char *msg)
{
	struct session_slot *sl = (struct session_slot *)r;
	struct session *s = sl->s;
	bool dead;

	log_trace("session %llu: request %#llx done: %s%s%s", (unsigned long long)s->id,
		  (unsigned long long)sl->user_data, ferry_errname(status),
		  msg ? ": " : "", msg ? msg : "");

	pthread_mutex_lock(&s->lock);
	dead = s->dead;
	pthread_mutex_unlock(&s->lock);

	if (!dead) {
		const struct model_config *cfg = sl->model->cfg;
		struct fshm_req_desc *d =
			(struct fshm_req_desc *)(s->arena + sl->desc_off);
		if (status == 0) {
			for (int i = 0; i < cfg->noutputs; i++) {
				uint8_t pos = sl->out_pos[i];
				const struct sched_tensor *o = &r->out[i];
				if (pos == UINT8_MAX)
					continue;
				struct fshm_tensor *t = &d->t[pos];
				t->dtype = (uint32_t)o->dtype;
				t->ndims = (uint32_t)o->ndims;
				for (int k = 0; k < o->ndims && k < FSHM_MAX_DIMS; k++)
					t->dims[k] = o->dims[k];
				t->bytes = o->bytes;
			}
		}
		session__write_status(s, sl, status, msg);
	}
	pthread_mutex_lock(&s->lock);
	session__post(s, sl, status, 0);
	dead = s->dead;
	pthread_mutex_unlock(&s->lock);
	if (!dead)
		fshm_doorbell_ring(&s->db_client);
	session_unref(s);
}

static bool session__in_arena(const struct session *s, uint64_t off, uint64_t len)
{
	return off <= s->arena_bytes && len <= s->arena_bytes - off;
}

/* Look region id up and take a reference for slot sl (loop thread). */
static struct session_cuda *session__cuda_use(struct session *s, struct session_slot *sl, uint32_t id)
{
	struct session_cuda *r;

	pthread_mutex_lock(&s->lock);
	for (r = s->cuda; r && r->id != id; r = r->next)
		;
	if (r) {
		r->users++;
		sl->cuda[sl->ncuda++] = r;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int session_cuda_register(struct session *s, const void *handle, size_t handle_len,
		       const char *pci_bus_id, int device, uint64_t bytes,
		       uint32_t *id, int *device_out, char *err, size_t errlen)
{
	struct session_cuda *r;
	int ret;

	if (s->ncuda >= SESSION_MAX_CUDA_REGIONS) {
		snprintf(err, errlen, "the session holds %d CUDA regions, the most it may: "
			 "release one first", SESSION_MAX_CUDA_REGIONS);
		return FERRY_ENOSPC;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ENOMEM;
	}
	ret = gpu_ipc_open(handle, handle_len, pci_bus_id, device, bytes, &r->dptr,
			   &r->device, err, errlen);
	if (ret) {
		free(r);
		return ret;
	}
	/* ids are never reused within a session: a stale id cannot name a
	 * newer region */
	if (s->cuda_next_id >= FSHM_TENSOR_REGION_MAX) {
		session__cuda_close(r);
		snprintf(err, errlen, "the session has used up its CUDA region ids");
		return FERRY_ENOSPC;
	}
	r->id = ++s->cuda_next_id;
	r->bytes = bytes;
	pthread_mutex_lock(&s->lock);
	r->next = s->cuda;
	s->cuda = r;
	s->ncuda++;
	pthread_mutex_unlock(&s->lock);
	*id = r->id;
	*device_out = r->device;
	log_debug("session %llu: CUDA region %u: %llu bytes on GPU %d",
		  (unsigned long long)s->id, r->id, (unsigned long long)bytes, r->device);
	return 0;
}

int session_cuda_release(struct session *s, uint32_t id, char *err, size_t errlen)
{
	struct session_cuda **pp, *r = NULL;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->cuda; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			r = *pp;
			*pp = r->next;
			s->ncuda--;
			r->released = true;
			if (r->users == 0)
				session__cuda_close(r);
			break;
		}
	pthread_mutex_unlock(&s->lock);
	if (!r) {
		snprintf(err, errlen, "no CUDA region %u in this session", id);
		return FERRY_ENOENT;
	}
	return 0;
}

/*
 * Validate one submission and hand it to the scheduler.  On failure the
 * request is completed with an error here; nothing is trusted from the
 * segment beyond what was copied.
 */
static int session__submit(struct session *s, const struct fshm_sqe *sqe)
{
	char msg[FSHM_ERRMSG_LEN];
	struct session_slot *sl;
	int ret;

	pthread_mutex_lock(&s->lock);
	/* Admission (session_poll) guaranteed a free slot. */
	sl = &s->slots[s->free_slots[--s->nfree]];
	s->inflight++;
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add_explicit(&metrics_gauges.shm_inflight, 1, memory_order_relaxed);

	sl->user_data = sqe->user_data;
	sl->desc_off = UINT64_MAX;
	sl->model = NULL;
	sl->ncuda = 0;

	if (sqe->opcode == FSHM_OP_NOP) {
		pthread_mutex_lock(&s->lock);
		session__post(s, sl, 0, 0);
		pthread_mutex_unlock(&s->lock);
		fshm_doorbell_ring(&s->db_client);
		return 0;
	}
	/* The descriptor: bounds first, then one copy into private memory. */
	if (sqe->desc_bytes < sizeof(struct fshm_req_desc) ||
	    sqe->desc_bytes > sizeof(session__desc) ||
	    (sqe->desc_off & 7) ||
	    !session__in_arena(s, sqe->desc_off, sqe->desc_bytes)) {
		snprintf(msg, sizeof(msg),
			 "descriptor at arena offset %llu, %u bytes: outside the arena or malformed",
			 (unsigned long long)sqe->desc_off, sqe->desc_bytes);
		return session__fail(s, sl, FERRY_EINVAL, msg);
	}
	sl->desc_off = sqe->desc_off;
	if (sqe->opcode != FSHM_OP_INFER) {
		snprintf(msg, sizeof(msg), "unknown opcode %u", sqe->opcode);
		return session__fail(s, sl, FERRY_EINVAL, msg);
	}
	memcpy(session__desc.bytes, s->arena + sqe->desc_off, sqe->desc_bytes);
	const struct fshm_req_desc *d = &session__desc.d;
	uint32_t nin = d->ninputs, nout = d->noutputs;
	if (nin > FSHM_MAX_TENSORS || nout > FSHM_MAX_TENSORS ||
	    nin + nout > FSHM_MAX_TENSORS ||
	    fshm_req_desc_bytes(nin + nout) != sqe->desc_bytes) {
		snprintf(msg, sizeof(msg),
			 "descriptor claims %u inputs and %u outputs in %u bytes",
			 nin, nout, sqe->desc_bytes);
		return session__fail(s, sl, FERRY_EINVAL, msg);
	}

	/* A version a reload replaced: the client finds the model's
	 * current version and sends the request again (it did not run). */
	struct models_entry *m = models_by_id(sqe->model_id);
	if ((!m || m->state != MODELS_READY) && models_replaced(sqe->model_id)) {
		if (m)
			snprintf(msg, sizeof(msg), "model '%s' version %lld was replaced by a "
				 "reload: get the model again", m->name, (long long)m->version);
		else
			snprintf(msg, sizeof(msg), "model id 0x%x names a version a reload "
				 "replaced: get the model again", sqe->model_id);
		return session__fail_flags(s, sl, FERRY_UNAVAILABLE, FSHM_CQE_F_STALE, msg);
	}
	if (!m) {
		snprintf(msg, sizeof(msg), "unknown model id 0x%x", sqe->model_id);
		return session__fail(s, sl, FERRY_ENOENT, msg);
	}
	if (m->state != MODELS_READY || !m->sm) {
		snprintf(msg, sizeof(msg), "model '%s' version %lld is not ready",
			 m->name, (long long)m->version);
		return session__fail(s, sl, FERRY_UNAVAILABLE, msg);
	}
	const struct model_config *cfg = m->cfg;
	uint32_t need = (uint32_t)(cfg->ninputs + cfg->noutputs);
	if (sl->tcap < need) {
		struct sched_tensor *t = realloc(sl->t, need * sizeof(*t));
		if (!t)
			return session__fail(s, sl, FERRY_ENOMEM, "out of memory");
		sl->t = t;
		sl->tcap = need;
	}
	memset(sl->t, 0, need * sizeof(*sl->t));
	memset(sl->out_pos, UINT8_MAX, sizeof(sl->out_pos));
	struct sched_tensor *in = sl->t, *out = sl->t + cfg->ninputs;

	for (uint32_t k = 0; k < nin + nout; k++) {
		const struct fshm_tensor *t = &d->t[k];
		bool is_in = k < nin;
		int lim = is_in ? cfg->ninputs : cfg->noutputs;
		const char *what = is_in ? "input" : "output";
		if (t->index >= (uint32_t)lim) {
			snprintf(msg, sizeof(msg), "%s index %u: the model has %d %ss",
				 what, t->index, lim, what);
			return session__fail(s, sl, FERRY_ENOENT, msg);
		}
		const char *name = is_in ? cfg->inputs[t->index].name
					 : cfg->outputs[t->index].name;
		struct sched_tensor *st = is_in ? &in[t->index] : &out[t->index];
		if (st->present) {
			snprintf(msg, sizeof(msg), "%s '%s' given twice", what, name);
			return session__fail(s, sl, FERRY_EINVAL, msg);
		}
		if (t->flags & ~(FSHM_TENSOR_CUDA | FSHM_TENSOR_REGION_MAX << FSHM_TENSOR_REGION_SHIFT)) {
			snprintf(msg, sizeof(msg), "%s '%s': unknown flags %#x", what, name,
				 t->flags);
			return session__fail(s, sl, FERRY_EINVAL, msg);
		}
		if (t->flags & FSHM_TENSOR_CUDA) {
			struct session_cuda *r = session__cuda_use(s, sl, t->flags >> FSHM_TENSOR_REGION_SHIFT);
			if (!r) {
				snprintf(msg, sizeof(msg), "%s '%s': no CUDA region %u in this session",
					 what, name, t->flags >> FSHM_TENSOR_REGION_SHIFT);
				return session__fail(s, sl, FERRY_ENOENT, msg);
			}
			if (t->offset > r->bytes || t->bytes > r->bytes - t->offset) {
				snprintf(msg, sizeof(msg),
					 "%s '%s': %llu bytes at offset %llu lie outside CUDA region %u (%llu bytes)",
					 what, name, (unsigned long long)t->bytes,
					 (unsigned long long)t->offset, r->id,
					 (unsigned long long)r->bytes);
				return session__fail(s, sl, FERRY_EINVAL, msg);
			}
			st->cuda = true;
			st->device = r->device;
			st->data = (uint8_t *)r->dptr + t->offset;
		} else if (!session__in_arena(s, t->offset, t->bytes)) {
			snprintf(msg, sizeof(msg),
				 "%s '%s': %llu bytes at arena offset %llu lie outside the arena (%llu bytes)",
				 what, name, (unsigned long long)t->bytes,
				 (unsigned long long)t->offset,
				 (unsigned long long)s->arena_bytes);
			return session__fail(s, sl, FERRY_EINVAL, msg);
		} else {
			st->data = s->arena + t->offset;
		}
		/* Backends read and write typed elements in place: 8 covers
		 * every dtype's alignment (found by fuzz_submit: add_sub's
		 * int32 loads at an odd offset). */
		if (t->offset & 7) {
			snprintf(msg, sizeof(msg), "%s '%s': arena offset %llu is not a multiple of 8",
				 what, name, (unsigned long long)t->offset);
			return session__fail(s, sl, FERRY_EINVAL, msg);
		}
		st->present = true;
		st->bytes = t->bytes;
		if (is_in) {
			if (t->ndims > FSHM_MAX_DIMS) {
				snprintf(msg, sizeof(msg), "input '%s': %u dimensions, at most %d",
					 name, t->ndims, FSHM_MAX_DIMS);
				return session__fail(s, sl, FERRY_SHAPE, msg);
			}
			st->dtype = (ferry_dtype)t->dtype;
			st->ndims = (int)t->ndims;
			memcpy(st->dims, t->dims, sizeof(int64_t) * t->ndims);
		} else {
			sl->out_pos[t->index] = (uint8_t)k;
		}
	}

	sl->model = m;
	sl->req.in = in;
	sl->req.out = out;
	sl->req.priority = sqe->priority;
	sl->req.timeout_us = sqe->timeout_us;
	sl->req.done = session__done;
	sl->req.owner = s;
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	ret = sched_submit(m->sm, &sl->req, msg, sizeof(msg));
	if (ret) {
		atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
		return session__fail(s, sl, ret, msg);
	}
	s->submitted++;
	log_trace("session %llu: request %#llx queued on '%s' version %lld",
		  (unsigned long long)s->id, (unsigned long long)sl->user_data, m->name,
		  (long long)m->version);
	return 0;
}

int session_poll(struct session *s)
{
	struct fshm_sqe sqes[32];
	int budget, n;

	pthread_mutex_lock(&s->sq_lock);

	/*
	 * Admission: a submission is taken only when its completion is sure
	 * to find room in the CQ, counting the CQEs the client has not read
	 * yet and the requests in flight.  A client that stops reading its
	 * CQ therefore stops being served; nobody else notices.
	 */
	pthread_mutex_lock(&s->lock);
	budget = fshm_ring_count(&s->cq);
	if (budget >= 0)
		budget -= (int)s->inflight;
	pthread_mutex_unlock(&s->lock);
	if (budget <= 0) {
		pthread_mutex_unlock(&s->sq_lock);
		return budget < 0 ? -EBADMSG : 0;
	}
	if (budget > 32)
		budget = 32;
	n = fshm_ring_dequeue_burst(&s->sq, sqes, (unsigned)budget);
	if (n > 0) {
		/* The model table's read lock from lookup to sched_submit: a
		 * model unloaded from a gRPC thread is not destroyed under us. */
		models_rdlock();
		for (int i = 0; i < n; i++)
			session__submit(s, &sqes[i]);
		models_unlock();
	}
	pthread_mutex_unlock(&s->sq_lock);
	return n;
}
