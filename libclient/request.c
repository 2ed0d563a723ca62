/* SPDX-License-Identifier: MIT */
/*
 * request.c - libferry requests: tensors in the shared arena, submission on
 * the SQ, completions from the CQ, waiting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ferry/ferry.h>

#include "libclient/client.h"
#include "libclient/remote.h"

#define FC_NONE UINT64_MAX

static int fc__find(const ferry_model *m, const char *name, bool input)
{
	int base = input ? 0 : m->nin, n = input ? m->nin : m->nout;
	for (int i = 0; i < n; i++)
		if (!strcmp(m->t[base + i].name, name))
			return i;
	return -1;
}

FERRY_API int ferry_request_new(ferry_model *m, ferry_request **out)
{
	if (!m || !out)
		return fc_fail(FERRY_EINVAL, "ferry_request_new: NULL argument");
	ferry_request *r = calloc(1, sizeof(*r));
	if (!r)
		return fc_fail(FERRY_ENOMEM, "out of memory");
	r->t = calloc((size_t)(m->nin + m->nout) + 1, sizeof(*r->t));
	if (!r->t) {
		free(r);
		return fc_fail(FERRY_ENOMEM, "out of memory");
	}
	for (int i = 0; i < m->nin + m->nout; i++)
		r->t[i].off = FC_NONE;
	r->client = m->client;
	r->remote = m->client->remote != NULL;
	r->model = m;
	r->ntensors = (uint32_t)(m->nin + m->nout);
	r->desc_off = FC_NONE;
	r->want_all = true;
	pthread_mutex_lock(&r->client->sq_lock);
	r->next = r->client->reqs;
	if (r->next)
		r->next->prev = r;
	r->client->reqs = r;
	pthread_mutex_unlock(&r->client->sq_lock);
	*out = r;
	return 0;
}

static void fc__release(ferry_request *r, uint64_t *off)
{
	if (*off != FC_NONE && r->remote)
		free((void *)(uintptr_t)*off);
	else if (*off != FC_NONE && r->client)
		fshm_arena_free(r->client->arena, *off);
	*off = FC_NONE;
}

void fc_request_destroy(ferry_request *r)
{
	ferry_client *c = r->client;
	if (c) {
		pthread_mutex_lock(&c->sq_lock);
		if (r->prev)
			r->prev->next = r->next;
		else if (c->reqs == r)
			c->reqs = r->next;
		if (r->next)
			r->next->prev = r->prev;
		pthread_mutex_unlock(&c->sq_lock);
	}
	for (uint32_t i = 0; i < r->ntensors; i++)
		fc__release(r, &r->t[i].off);
	fc__release(r, &r->desc_off);
	free(r->t);
	free(r);
}

FERRY_API void ferry_request_free(ferry_request *r)
{
	if (!r)
		return;
	ferry_client *c = r->client;
	if (c) {
		/* In flight: the reaper frees it when the completion comes. */
		pthread_mutex_lock(&c->sq_lock);
		if (atomic_load_explicit(&r->state, memory_order_acquire) == FC_INFLIGHT) {
			r->freed = true;
			pthread_mutex_unlock(&c->sq_lock);
			return;
		}
		pthread_mutex_unlock(&c->sq_lock);
	}
	fc_request_destroy(r);
}

static int fc__busy(const ferry_request *r)
{
	if (atomic_load_explicit(&r->state, memory_order_acquire) == FC_INFLIGHT)
		return fc_fail(FERRY_EBUSY, "the request is in flight");
	if (!r->client)
		return fc_fail(FERRY_EPIPE, "the request's client is closed");
	return 0;
}

/* (Re)allocate a tensor's buffer when it must grow. */
static int fc__alloc(ferry_request *r, struct fc_tensor *t, uint64_t bytes)
{
	if (t->off != FC_NONE && t->cap >= bytes && bytes > 0)
		return 0;
	fc__release(r, &t->off);
	if (r->remote) {
		void *p = malloc(bytes ? bytes : 1);
		if (!p)
			return fc_fail(FERRY_ENOMEM, "out of memory for %llu bytes",
				       (unsigned long long)bytes);
		t->off = (uint64_t)(uintptr_t)p;
		t->cap = bytes;
		return 0;
	}
	uint64_t off;
	int ret = fshm_arena_alloc(r->client->arena, bytes ? bytes : 1, &off);
	if (ret)
		return fc_fail(FERRY_ENOMEM,
			       "the shared arena (%llu bytes) has no room for %llu more bytes",
			       (unsigned long long)r->client->arena_bytes,
			       (unsigned long long)bytes);
	t->off = off;
	t->cap = bytes;
	return 0;
}

FERRY_API int ferry_request_input_bytes(ferry_request *r, const char *name,
					ferry_dtype dtype, const int64_t *dims,
					int ndims, size_t bytes, void **data)
{
	int ret;
	if (!r || !name || (ndims && !dims) || !data)
		return fc_fail(FERRY_EINVAL, "ferry_request_input: NULL argument");
	if ((ret = fc__busy(r)))
		return ret;
	int i = fc__find(r->model, name, true);
	if (i < 0)
		return fc_fail(FERRY_ENOENT, "model '%s' has no input '%s'",
			       r->model->name, name);
	if (ndims < 0 || ndims > FERRY_MAX_DIMS)
		return fc_fail(FERRY_SHAPE, "input '%s': %d dimensions, at most %d",
			       name, ndims, FERRY_MAX_DIMS);
	struct fc_tensor *t = &r->t[i];
	t->cuda_id = 0;
	if ((ret = fc__alloc(r, t, bytes)))
		return ret;
	t->set = true;
	t->bytes = bytes;
	t->dtype = dtype;
	t->ndims = ndims;
	memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndims);
	*data = fc_tensor_ptr(r->client, t->off);
	return 0;
}

/* The bytes of a fixed-size tensor of esz-byte elements shaped dims. */
static int fc__shape_bytes(const char *name, size_t esz, const int64_t *dims, int ndims,
			   uint64_t *bytes)
{
	uint64_t n = 1;

	if (ndims < 0 || ndims > FERRY_MAX_DIMS)
		return fc_fail(FERRY_SHAPE, "input '%s': %d dimensions, at most %d",
			       name, ndims, FERRY_MAX_DIMS);
	for (int k = 0; k < ndims && dims; k++) {
		if (dims[k] < 0 || (dims[k] && n > UINT64_MAX / 2 / (uint64_t)dims[k]))
			return fc_fail(FERRY_SHAPE, "input '%s': bad dimension %lld",
				       name, (long long)dims[k]);
		n *= (uint64_t)dims[k];
	}
	if (n > UINT64_MAX / 2 / esz)
		return fc_fail(FERRY_E2BIG, "input '%s' too large", name);
	*bytes = n * esz;
	return 0;
}

FERRY_API int ferry_request_input(ferry_request *r, const char *name,
				  ferry_dtype dtype, const int64_t *dims,
				  int ndims, void **data)
{
	size_t esz = ferry_dtype_size(dtype);
	uint64_t bytes;
	int ret;

	if (!esz)
		return fc_fail(FERRY_DTYPE,
			       "input '%s': use ferry_request_input_bytes for %s",
			       name ? name : "?", ferry_dtype_name(dtype) ? ferry_dtype_name(dtype) : "this dtype");
	if ((ret = fc__shape_bytes(name ? name : "?", esz, dims, ndims, &bytes)))
		return ret;
	return ferry_request_input_bytes(r, name, dtype, dims, ndims, bytes, data);
}

FERRY_API int ferry_request_want_output(ferry_request *r, const char *name,
					size_t capacity)
{
	int ret;
	if (!r || !name)
		return fc_fail(FERRY_EINVAL, "ferry_request_want_output: NULL argument");
	if ((ret = fc__busy(r)))
		return ret;
	int i = fc__find(r->model, name, false);
	if (i < 0)
		return fc_fail(FERRY_ENOENT, "model '%s' has no output '%s'",
			       r->model->name, name);
	if (r->want_all) {
		r->want_all = false;
		for (int k = 0; k < r->model->nout; k++)
			r->t[r->model->nin + k].set = false;
	}
	r->t[r->model->nin + i].set = true;
	r->t[r->model->nin + i].want_cap = capacity;
	r->t[r->model->nin + i].cuda_id = 0;
	return 0;
}

/* A region a request of r's client may use, and [off, off + bytes) in it. */
static int fc__cuda_check(const ferry_request *r, const ferry_cuda_region *reg,
			  const char *name, size_t off, uint64_t bytes)
{
	if (r->remote)
		return fc_fail(FERRY_ENOTSUP, "'%s': CUDA tensors need a broker on this "
			       "node; this client talks gRPC to a remote one", name);
	if (reg->client != r->client)
		return fc_fail(FERRY_EINVAL, "'%s': the CUDA region belongs to another "
			       "client, or its client closed", name);
	if (off & 7)
		return fc_fail(FERRY_EINVAL, "'%s': offset %zu in the CUDA region is not a "
			       "multiple of 8", name, off);
	if (off > reg->bytes || bytes > reg->bytes - off)
		return fc_fail(FERRY_EINVAL, "'%s': %llu bytes at offset %zu lie outside the "
			       "CUDA region (%llu bytes)", name, (unsigned long long)bytes,
			       off, (unsigned long long)reg->bytes);
	return 0;
}

FERRY_API int ferry_request_input_cuda(ferry_request *r, const char *name,
				       ferry_dtype dtype, const int64_t *dims, int ndims,
				       ferry_cuda_region *reg, size_t offset)
{
	size_t esz = ferry_dtype_size(dtype);
	uint64_t bytes;
	int ret;

	if (!r || !name || (ndims && !dims) || !reg)
		return fc_fail(FERRY_EINVAL, "ferry_request_input_cuda: NULL argument");
	if ((ret = fc__busy(r)))
		return ret;
	int i = fc__find(r->model, name, true);
	if (i < 0)
		return fc_fail(FERRY_ENOENT, "model '%s' has no input '%s'",
			       r->model->name, name);
	if (!esz)
		return fc_fail(FERRY_DTYPE, "input '%s': %s tensors cannot live in CUDA "
			       "memory", name, ferry_dtype_name(dtype) ? ferry_dtype_name(dtype)
			       : "this dtype's");
	if ((ret = fc__shape_bytes(name, esz, dims, ndims, &bytes)) ||
	    (ret = fc__cuda_check(r, reg, name, offset, bytes)))
		return ret;
	struct fc_tensor *t = &r->t[i];
	fc__release(r, &t->off);
	t->set = true;
	t->bytes = t->cap = bytes;
	t->dtype = dtype;
	t->ndims = ndims;
	memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndims);
	t->cuda_id = reg->id;
	t->cuda_off = offset;
	t->cuda_size = reg->bytes;
	t->cuda_ptr = reg->dev_ptr ? (uint8_t *)reg->dev_ptr + offset : NULL;
	return 0;
}

FERRY_API int ferry_request_output_cuda(ferry_request *r, const char *name,
					ferry_cuda_region *reg, size_t offset,
					size_t capacity)
{
	int ret;

	if (!r || !name || !reg)
		return fc_fail(FERRY_EINVAL, "ferry_request_output_cuda: NULL argument");
	if ((ret = fc__cuda_check(r, reg, name, offset, capacity)))
		return ret;
	if ((ret = ferry_request_want_output(r, name, capacity)))
		return ret;
	struct fc_tensor *t = &r->t[r->model->nin + fc__find(r->model, name, false)];
	fc__release(r, &t->off);
	t->cuda_id = reg->id;
	t->cuda_off = offset;
	t->cuda_size = reg->bytes;
	t->cuda_ptr = reg->dev_ptr ? (uint8_t *)reg->dev_ptr + offset : NULL;
	return 0;
}

FERRY_API int ferry_request_set_priority(ferry_request *r, uint32_t priority)
{
	if (!r)
		return fc_fail(FERRY_EINVAL, "NULL request");
	r->priority = priority;
	return 0;
}

FERRY_API int ferry_request_set_timeout_us(ferry_request *r, uint64_t us)
{
	if (!r)
		return fc_fail(FERRY_EINVAL, "NULL request");
	r->timeout_us = us;
	return 0;
}

FERRY_API int ferry_request_reset(ferry_request *r)
{
	int ret;
	if (!r)
		return fc_fail(FERRY_EINVAL, "NULL request");
	if ((ret = fc__busy(r)))
		return ret;
	atomic_store_explicit(&r->state, FC_IDLE, memory_order_relaxed);
	r->status = 0;
	r->errmsg[0] = '\0';
	return 0;
}

/* Output capacity from the model's dims and the batch size, or 0 when it
 * cannot be computed (variable dims, BYTES). */
static uint64_t fc__out_size(const ferry_model *m, int o, int64_t batch)
{
	const struct fc_tmeta *t = &m->t[m->nin + o];
	uint64_t n = (uint64_t)batch, esz = ferry_dtype_size(t->dtype);
	if (!esz)
		return 0;
	for (int k = 0; k < t->ndims; k++) {
		if (t->dims[k] < 0)
			return 0;
		n *= (uint64_t)t->dims[k];
	}
	return n * esz;
}

/* Lay the request out in the arena: outputs sized, descriptor written. */
static int fc__prepare(ferry_request *r)
{
	ferry_model *m = r->model;
	ferry_client *c = r->client;
	int64_t batch = 1;
	uint32_t nin = 0, nout = 0;
	int ret;

	for (int i = 0; i < m->nin; i++) {
		if (!r->t[i].set)
			continue;
		nin++;
		if (m->max_batch > 0 && r->t[i].ndims > 0)
			batch = r->t[i].dims[0];
	}
	for (int o = 0; o < m->nout; o++) {
		struct fc_tensor *t = &r->t[m->nin + o];
		if (r->want_all)
			t->set = true;
		if (!t->set)
			continue;
		nout++;
		uint64_t need = t->want_cap ? t->want_cap : fc__out_size(m, o, batch);
		if (!need)
			return fc_fail(FERRY_EINVAL,
				       "output '%s': its size depends on the data; give a capacity "
				       "with ferry_request_want_output", m->t[m->nin + o].name);
		if (t->cuda_id) {
			if (need > t->cuda_size - t->cuda_off)
				return fc_fail(FERRY_E2BIG, "output '%s': %llu bytes do not fit "
					       "at offset %llu of its CUDA region (%llu bytes)",
					       m->t[m->nin + o].name, (unsigned long long)need,
					       (unsigned long long)t->cuda_off,
					       (unsigned long long)t->cuda_size);
			t->cap = need;
		} else if ((ret = fc__alloc(r, t, need))) {
			return ret;
		}
	}
	uint32_t nt = nin + nout;
	if (r->desc_off == FC_NONE || r->desc_ntensors < nt) {
		fc__release(r, &r->desc_off);
		uint64_t off;
		if (fshm_arena_alloc(c->arena, fshm_req_desc_bytes(nt), &off))
			return fc_fail(FERRY_ENOMEM, "the shared arena is full");
		r->desc_off = off;
		r->desc_ntensors = nt;
	}
	struct fshm_req_desc *d = (struct fshm_req_desc *)(c->arena_base + r->desc_off);
	d->ninputs = nin;
	d->noutputs = nout;
	d->status = 0;
	d->errmsg[0] = '\0';
	uint32_t k = 0;
	for (int i = 0; i < m->nin + m->nout; i++) {
		struct fc_tensor *t = &r->t[i];
		if (!t->set)
			continue;
		struct fshm_tensor *w = &d->t[k++];
		memset(w, 0, sizeof(*w));
		w->index = (uint32_t)(i < m->nin ? i : i - m->nin);
		w->offset = t->cuda_id ? t->cuda_off : t->off;
		w->flags = t->cuda_id ? FSHM_TENSOR_CUDA | t->cuda_id << FSHM_TENSOR_REGION_SHIFT : 0;
		if (i < m->nin) {
			w->dtype = (uint32_t)t->dtype;
			w->ndims = (uint32_t)t->ndims;
			memcpy(w->dims, t->dims, sizeof(int64_t) * (size_t)t->ndims);
			w->bytes = t->bytes;
		} else {
			w->bytes = t->cap;
		}
	}
	return 0;
}

FERRY_API int ferry_infer_async(ferry_client *c, ferry_request *r,
				ferry_callback cb, void *arg)
{
	int ret;

	if (!c || !r || r->client != c)
		return fc_fail(FERRY_EINVAL, "ferry_infer_async: bad client or request");
	if ((ret = fc__busy(r)))
		return ret;
	if (atomic_load_explicit(&c->broken, memory_order_acquire))
		return fc_fail(FERRY_EPIPE, "disconnected from the broker");
	for (int i = 0; i < r->model->nin; i++)
		if (!r->t[i].set)
			return fc_fail(FERRY_EINVAL, "input '%s' not given",
				       r->model->t[i].name);
	if (c->remote)
		return fr_infer_async(c, r, cb, arg);
	if ((ret = fc__prepare(r)))
		return ret;
	r->cb = cb;
	r->cb_arg = arg;
	r->status = 0;
	r->errmsg[0] = '\0';

	pthread_mutex_lock(&c->sq_lock);
	if (c->nfree == 0) {
		pthread_mutex_unlock(&c->sq_lock);
		return fc_fail(FERRY_EAGAIN, "%u requests in flight: the queue depth",
			       c->depth);
	}
	uint32_t slot = c->free_slots[--c->nfree];
	c->slots[slot].r = r;
	c->slots[slot].gen++;
	atomic_store_explicit(&r->state, FC_INFLIGHT, memory_order_relaxed);
	struct fshm_sqe sqe = {
		.user_data = (uint64_t)c->slots[slot].gen << 32 | slot,
		.opcode = FSHM_OP_INFER,
		.model_id = r->model->id,
		.desc_off = r->desc_off,
		.desc_bytes = (uint32_t)fshm_req_desc_bytes(r->desc_ntensors),
		.priority = r->priority,
		.timeout_us = r->timeout_us,
	};
	/* desc_bytes must match the tensors actually written. */
	struct fshm_req_desc *d = (struct fshm_req_desc *)(c->arena_base + r->desc_off);
	sqe.desc_bytes = (uint32_t)fshm_req_desc_bytes(d->ninputs + d->noutputs);
	/* The SQ is as deep as the slot table, so a free slot means room. */
	ret = fshm_ring_enqueue_burst(&c->sq, &sqe, 1);
	if (ret != 1) {
		c->slots[slot].r = NULL;
		c->free_slots[c->nfree++] = slot;
		atomic_store_explicit(&r->state, FC_IDLE, memory_order_relaxed);
		pthread_mutex_unlock(&c->sq_lock);
		return fc_fail(ret < 0 ? FERRY_EBADMSG : FERRY_EAGAIN,
			       "submission ring %s", ret < 0 ? "corrupt" : "full");
	}
	pthread_mutex_unlock(&c->sq_lock);
	fshm_doorbell_ring(&c->db_broker);
	return 0;
}

/* Called with sq_lock held or by the only owner. */
void fc_request_complete(ferry_request *r, int status, const char *msg)
{
	r->status = status;
	if (status && msg)
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	/* Release: pairs with the acquire in ferry_request_done() and the
	 * waiters, who then read status and outputs. */
	atomic_store_explicit(&r->state, FC_DONE, memory_order_release);
}

/* Read a completion's results out of the descriptor (trusting the broker,
 * but checking every size against what was allocated). */
static void fc__finish(ferry_client *c, ferry_request *r, const struct fshm_cqe *cqe)
{
	ferry_model *m = r->model;
	const struct fshm_req_desc *d =
		(const struct fshm_req_desc *)(c->arena_base + r->desc_off);
	int status = cqe->status;
	char msg[FSHM_ERRMSG_LEN];

	msg[0] = '\0';
	if (status) {
		if (cqe->flags & FSHM_CQE_F_MSG) {
			memcpy(msg, d->errmsg, sizeof(msg));
			msg[sizeof(msg) - 1] = '\0';
		}
		if (!msg[0])
			snprintf(msg, sizeof(msg), "%s", ferry_strerror(status));
	} else {
		uint32_t k = d->ninputs;
		for (int o = 0; o < m->nout && k < r->desc_ntensors; o++) {
			struct fc_tensor *t = &r->t[m->nin + o];
			if (!t->set)
				continue;
			const struct fshm_tensor *w = &d->t[k++];
			if (w->bytes > t->cap || w->ndims > FERRY_MAX_DIMS) {
				status = FERRY_EPROTO;
				snprintf(msg, sizeof(msg), "output '%s': the broker reported %llu bytes in %llu",
					 m->t[m->nin + o].name, (unsigned long long)w->bytes,
					 (unsigned long long)t->cap);
				break;
			}
			t->bytes = w->bytes;
			t->dtype = (ferry_dtype)w->dtype;
			t->ndims = (int)w->ndims;
			memcpy(t->dims, w->dims, sizeof(int64_t) * w->ndims);
		}
	}
	fc_request_complete(r, status, msg);
}

/* Reap every completion available; reap_lock held.  Callbacks are
 * collected and run after the lock is dropped by the caller. */
static int fc__reap(ferry_client *c, ferry_request **done, int max)
{
	struct fshm_cqe cqes[32];
	int total = 0;

	while (total < max) {
		int want = max - total < 32 ? max - total : 32;
		int n = fshm_ring_dequeue_burst(&c->cq, cqes, (unsigned)want);
		if (n <= 0)
			break;
		pthread_mutex_lock(&c->sq_lock);
		for (int i = 0; i < n; i++) {
			uint32_t slot = (uint32_t)cqes[i].user_data;
			uint32_t gen = (uint32_t)(cqes[i].user_data >> 32);
			if (slot >= c->depth || !c->slots[slot].r || c->slots[slot].gen != gen)
				continue; /* not ours: ignore rather than crash */
			ferry_request *r = c->slots[slot].r;
			c->slots[slot].r = NULL;
			c->free_slots[c->nfree++] = slot;
			fc__finish(c, r, &cqes[i]);
			done[total++] = r;
		}
		pthread_mutex_unlock(&c->sq_lock);
	}
	return total;
}

void fc_run_callbacks(ferry_client *c, ferry_request **done, int n)
{
	for (int i = 0; i < n; i++) {
		ferry_request *r = done[i];
		if (r->freed) {
			fc_request_destroy(r);
			continue;
		}
		if (r->cb)
			r->cb(r, r->status, r->cb_arg);
	}
	if (n > 0) {
		pthread_mutex_lock(&c->wait_lock);
		pthread_cond_broadcast(&c->wait_cond);
		pthread_mutex_unlock(&c->wait_lock);
	}
}

static bool fc__cq_ready(void *arg)
{
	ferry_client *c = arg;
	return fshm_ring_count(&c->cq) != 0 ||
	       atomic_load_explicit(&c->broken, memory_order_relaxed);
}

/* Is the broker still there?  A closed control socket says no. */
static bool fc__check_alive(ferry_client *c)
{
	char b;
	ssize_t n = recv(c->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		atomic_store(&c->broken, true);
		return false;
	}
	return true;
}

/* Every request in flight fails with -EPIPE (reap_lock held). */
static int fc__fail_all(ferry_client *c, ferry_request **done, int max)
{
	int n = 0;
	pthread_mutex_lock(&c->sq_lock);
	for (uint32_t i = 0; i < c->depth && n < max; i++) {
		ferry_request *r = c->slots[i].r;
		if (!r)
			continue;
		c->slots[i].r = NULL;
		c->free_slots[c->nfree++] = i;
		fc_request_complete(r, FERRY_EPIPE, "disconnected from the broker");
		done[n++] = r;
	}
	pthread_mutex_unlock(&c->sq_lock);
	return n;
}

/* A thread that is not the reaper: sleep until the reaper has run
 * callbacks (wait_cond) or 1 ms, whichever first.  Both transports. */
void fc_wait_reaper(ferry_client *c, bool (*pred)(void *), void *arg, uint64_t slice_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (slice_ns < 1000000 ? slice_ns : 1000000);
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	pthread_mutex_lock(&c->wait_lock);
	if (!pred(arg))
		pthread_cond_timedwait(&c->wait_cond, &c->wait_lock, &ts);
	pthread_mutex_unlock(&c->wait_lock);
}

/*
 * Wait until pred(arg) or the timeout.  One thread at a time reaps (and
 * sleeps on the doorbell); the others sleep on wait_cond and are woken
 * after each reap.  Sleeps are sliced (20 ms) so a broker that died is
 * noticed through its control socket.
 */
static int fc__wait(ferry_client *c, bool (*pred)(void *), void *arg,
		    int64_t timeout_ns, int *reaped)
{
	uint64_t start = fshm_now_ns();
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
	ferry_request *done[64];

	for (;;) {
		if (pred(arg))
			return 0;
		uint64_t now = fshm_now_ns();
		if (now >= deadline)
			return FERRY_ETIMEDOUT;
		/* Sliced, so that a broker that died is noticed (through its
		 * control socket) within ~20 ms: ferry promises a clear
		 * disconnected error within 100 ms. */
		uint64_t slice = deadline - now;
		if (slice > 20000000)
			slice = 20000000;
		if (pthread_mutex_trylock(&c->reap_lock) == 0) {
			int n = fc__reap(c, done, 64);
			if (n == 0 && !pred(arg)) {
				int w = fshm_doorbell_wait(&c->db_client, c->wait, fc__cq_ready, c,
							   (int64_t)slice, c->spin_ns);
				if (w == FERRY_ETIMEDOUT || w == -ETIMEDOUT)
					fc__check_alive(c);
				n = fc__reap(c, done, 64);
				if (n == 0 && atomic_load(&c->broken))
					n = fc__fail_all(c, done, 64);
			}
			pthread_mutex_unlock(&c->reap_lock);
			if (reaped)
				*reaped += n;
			fc_run_callbacks(c, done, n);
		} else {
			fc_wait_reaper(c, pred, arg, slice);
		}
	}
}

static bool fc__req_done(void *arg)
{
	ferry_request *r = arg;
	return atomic_load_explicit(&r->state, memory_order_acquire) == FC_DONE;
}

FERRY_API int ferry_request_done(const ferry_request *r)
{
	return r && atomic_load_explicit(&r->state, memory_order_acquire) == FC_DONE;
}

FERRY_API int ferry_request_status(const ferry_request *r)
{
	return r ? r->status : FERRY_EINVAL;
}

FERRY_API int ferry_request_wait(ferry_request *r, int64_t timeout_ns)
{
	if (!r)
		return fc_fail(FERRY_EINVAL, "NULL request");
	int st = atomic_load_explicit(&r->state, memory_order_acquire);
	if (st == FC_IDLE)
		return fc_fail(FERRY_EINVAL, "the request was not submitted");
	if (st == FC_INFLIGHT) {
		if (!r->client)
			return fc_fail(FERRY_EPIPE, "the client is closed");
		int ret = r->client->remote ? fr_wait(r->client, fc__req_done, r, timeout_ns)
					    : fc__wait(r->client, fc__req_done, r, timeout_ns, NULL);
		if (ret)
			return fc_fail(ret, "request still in flight after the timeout");
	}
	if (r->status)
		return fc_fail(r->status, "%s", r->errmsg);
	return 0;
}

FERRY_API int ferry_infer(ferry_client *c, ferry_request *r, int64_t timeout_ns)
{
	if (r && timeout_ns > 0 && !r->timeout_us)
		r->timeout_us = (uint64_t)(timeout_ns + 999) / 1000;
	int ret = ferry_infer_async(c, r, NULL, NULL);
	if (ret)
		return ret;
	return ferry_request_wait(r, timeout_ns);
}

struct fc__poll_arg {
	int *reaped;
	int min;
};

static bool fc__poll_pred(void *arg)
{
	struct fc__poll_arg *p = arg;
	return *p->reaped >= p->min;
}

FERRY_API int ferry_poll(ferry_client *c, int min_complete, int64_t timeout_ns)
{
	int reaped = 0;
	ferry_request *done[64];

	if (!c)
		return fc_fail(FERRY_EINVAL, "NULL client");
	if (c->remote)
		return fr_poll(c, min_complete, timeout_ns);
	/* Whatever is there now, without waiting. */
	if (pthread_mutex_trylock(&c->reap_lock) == 0) {
		int n = fc__reap(c, done, 64);
		pthread_mutex_unlock(&c->reap_lock);
		reaped += n;
		fc_run_callbacks(c, done, n);
	}
	if (reaped >= min_complete || timeout_ns == 0) {
		if (reaped == 0 && atomic_load(&c->broken))
			return fc_fail(FERRY_EPIPE, "disconnected from the broker");
		return reaped;
	}
	struct fc__poll_arg pa = { &reaped, min_complete };
	int ret = fc__wait(c, fc__poll_pred, &pa, timeout_ns, &reaped);
	if (ret && reaped == 0)
		return fc_fail(atomic_load(&c->broken) ? FERRY_EPIPE : ret, "%s",
			       atomic_load(&c->broken) ? "disconnected from the broker"
						       : "no completion before the timeout");
	return reaped;
}

FERRY_API int ferry_request_output(const ferry_request *r, const char *name,
				   ferry_dtype *dtype, const int64_t **dims,
				   int *ndims, const void **data, size_t *bytes)
{
	if (!r || !name)
		return fc_fail(FERRY_EINVAL, "ferry_request_output: NULL argument");
	if (atomic_load_explicit(&r->state, memory_order_acquire) != FC_DONE)
		return fc_fail(FERRY_EBUSY, "the request has not completed");
	if (!r->client)
		return fc_fail(FERRY_EPIPE, "the client is closed");
	if (r->status)
		return fc_fail(r->status, "%s", r->errmsg);
	int i = fc__find(r->model, name, false);
	if (i < 0)
		return fc_fail(FERRY_ENOENT, "model '%s' has no output '%s'",
			       r->model->name, name);
	const struct fc_tensor *t = &r->t[r->model->nin + i];
	if (!t->set || (t->off == FC_NONE && !t->cuda_id))
		return fc_fail(FERRY_ENOENT, "output '%s' was not requested", name);
	if (!r->client)
		return fc_fail(FERRY_EPIPE, "the client is closed");
	if (dtype) *dtype = t->dtype;
	if (dims) *dims = t->dims;
	if (ndims) *ndims = t->ndims;
	if (data) *data = t->cuda_id ? t->cuda_ptr : fc_tensor_ptr(r->client, t->off);
	if (bytes) *bytes = t->bytes;
	return 0;
}
