/* SPDX-License-Identifier: MIT */
/*
 * client_request.c - libferry's requests: their tensors, submission,
 * waiting and polling, the same over every transport; the transport sends
 * a request and reaps its completion (client_int.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"

/* A waiter sleeps at most this long at once, so that a broker that died
 * is noticed (the local transport checks its control socket after each
 * slice): ferry promises a clear disconnected error within 100 ms. */
#define CLIENT__SLICE_NS 20000000ULL

FERRY_API int ferry_request_new(ferry_model *m, ferry_request **out)
{
	if (!m || !out)
		return client__fail(FERRY_EINVAL, "ferry_request_new: NULL argument");
	if (m->client->admin)
		return client__fail(FERRY_ENOTSUP, "this client has no session to send "
				    "requests on (it was opened by ferry_connect_admin)");
	ferry_request *r = calloc(1, sizeof(*r));
	if (!r)
		return client__fail(FERRY_ENOMEM, "out of memory");
	r->t = calloc((size_t)(m->nin + m->nout) + 1, sizeof(*r->t));
	if (!r->t) {
		free(r);
		return client__fail(FERRY_ENOMEM, "out of memory");
	}
	r->client = m->client;
	r->model = m;
	r->ntensors = (uint32_t)(m->nin + m->nout);
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

int client__buf_alloc(ferry_request *r, struct client__buf *b, uint64_t bytes)
{
	if (b->ptr && b->cap >= bytes && bytes > 0)
		return 0;
	client__buf_release(r, b);
	/* Acquire: pairs with the release that published the segment. */
	struct client__seg *s = atomic_load_explicit(&r->client->seg, memory_order_acquire);
	if (s) {
		uint64_t off;
		if (fshm_arena_alloc(s->arena, bytes ? bytes : 1, &off))
			return client__fail(FERRY_ENOMEM, "the shared arena (%llu bytes) has no "
					    "room for %llu more bytes",
					    (unsigned long long)s->bytes, (unsigned long long)bytes);
		b->ptr = s->base + off;
		b->off = off;
		b->cap = bytes;
		b->heap = false;
		return 0;
	}
	void *p = malloc(bytes ? bytes : 1);
	if (!p)
		return client__fail(FERRY_ENOMEM, "out of memory for %llu bytes",
				    (unsigned long long)bytes);
	b->ptr = p;
	b->off = 0;
	b->cap = bytes;
	b->heap = true;
	return 0;
}

void client__buf_release(ferry_request *r, struct client__buf *b)
{
	if (b->ptr && b->heap)
		free(b->ptr);
	else if (b->ptr && r->client)
		fshm_arena_free(atomic_load_explicit(&r->client->seg, memory_order_acquire)->arena,
				b->off);
	memset(b, 0, sizeof(*b));
}

void client__request_destroy(ferry_request *r)
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
	for (uint32_t i = 0; i < r->ntensors; i++) {
		client__buf_release(r, &r->t[i].buf);
		client__buf_release(r, &r->t[i].stage);
	}
	client__buf_release(r, &r->desc);
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
		if (atomic_load_explicit(&r->state, memory_order_acquire) == CLIENT__INFLIGHT) {
			r->freed = true;
			pthread_mutex_unlock(&c->sq_lock);
			return;
		}
		pthread_mutex_unlock(&c->sq_lock);
	}
	client__request_destroy(r);
}

static int client__busy(const ferry_request *r)
{
	if (atomic_load_explicit(&r->state, memory_order_acquire) == CLIENT__INFLIGHT)
		return client__fail(FERRY_EBUSY, "the request is in flight");
	if (!r->client)
		return client__fail(FERRY_EPIPE, "the request's client is closed");
	return 0;
}

/* The checks of every call that sets an input: r idle and open, and name
 * one of its model's inputs.  Its index, or a negative code. */
static int client__input_index(const ferry_request *r, const char *name)
{
	int ret = client__busy(r);
	if (ret)
		return ret;
	int i = client__find(r->model, name, true);
	if (i < 0)
		return client__fail(FERRY_ENOENT, "model '%s' has no input '%s'",
				    r->model->name, name);
	return i;
}

FERRY_API int ferry_request_input_bytes(ferry_request *r, const char *name,
					ferry_dtype dtype, const int64_t *dims,
					int ndims, size_t bytes, void **data)
{
	int ret;
	if (!r || !name || (ndims && !dims) || !data)
		return client__fail(FERRY_EINVAL, "ferry_request_input: NULL argument");
	int i = client__input_index(r, name);
	if (i < 0)
		return i;
	if (ndims < 0 || ndims > FERRY_MAX_DIMS)
		return client__fail(FERRY_SHAPE, "input '%s': %d dimensions, at most %d",
				    name, ndims, FERRY_MAX_DIMS);
	struct client__tensor *t = &r->t[i];
	t->cuda_id = 0;
	if ((ret = client__buf_alloc(r, &t->buf, bytes)))
		return ret;
	t->set = true;
	t->bytes = bytes;
	t->dtype = dtype;
	t->ndims = ndims;
	memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndims);
	*data = t->buf.ptr;
	return 0;
}

/* The bytes of a fixed-size tensor of esz-byte elements shaped dims. */
static int client__shape_bytes(const char *name, size_t esz, const int64_t *dims, int ndims,
			       uint64_t *bytes)
{
	uint64_t n = 1;

	if (ndims < 0 || ndims > FERRY_MAX_DIMS)
		return client__fail(FERRY_SHAPE, "input '%s': %d dimensions, at most %d",
				    name, ndims, FERRY_MAX_DIMS);
	for (int k = 0; k < ndims && dims; k++) {
		if (dims[k] < 0 || (dims[k] && n > UINT64_MAX / 2 / (uint64_t)dims[k]))
			return client__fail(FERRY_SHAPE, "input '%s': bad dimension %lld",
					    name, (long long)dims[k]);
		n *= (uint64_t)dims[k];
	}
	if (n > UINT64_MAX / 2 / esz)
		return client__fail(FERRY_E2BIG, "input '%s' too large", name);
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
		return client__fail(FERRY_DTYPE,
				    "input '%s': use ferry_request_input_bytes for %s",
				    name ? name : "?", ferry_dtype_name(dtype) ?
				    ferry_dtype_name(dtype) : "this dtype");
	if ((ret = client__shape_bytes(name ? name : "?", esz, dims, ndims, &bytes)))
		return ret;
	return ferry_request_input_bytes(r, name, dtype, dims, ndims, bytes, data);
}

FERRY_API int ferry_request_want_output(ferry_request *r, const char *name,
					size_t capacity)
{
	int ret;
	if (!r || !name)
		return client__fail(FERRY_EINVAL, "ferry_request_want_output: NULL argument");
	if ((ret = client__busy(r)))
		return ret;
	int i = client__find(r->model, name, false);
	if (i < 0)
		return client__fail(FERRY_ENOENT, "model '%s' has no output '%s'",
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
static int client__cuda_check(const ferry_request *r, const ferry_cuda_region *reg,
			      const char *name, size_t off, uint64_t bytes)
{
	if (r->client) {
		struct client__tp *t = client__tp_get(r->client);
		int ret = t->ops->cuda_register ? 0 :
			client__fail(FERRY_ENOTSUP, "'%s': CUDA tensors need a broker on this "
				     "node; this client talks %s to %s", name, t->ops->name,
				     t->address);
		client__tp_put(r->client);
		if (ret)
			return ret;
	}
	if (reg->client != r->client)
		return client__fail(FERRY_EINVAL, "'%s': the CUDA region belongs to another "
				    "client, or its client closed", name);
	if (off & 7)
		return client__fail(FERRY_EINVAL, "'%s': offset %zu in the CUDA region is not a "
				    "multiple of 8", name, off);
	if (off > reg->bytes || bytes > reg->bytes - off)
		return client__fail(FERRY_EINVAL, "'%s': %llu bytes at offset %zu lie outside the "
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
		return client__fail(FERRY_EINVAL, "ferry_request_input_cuda: NULL argument");
	int i = client__input_index(r, name);
	if (i < 0)
		return i;
	if (!esz)
		return client__fail(FERRY_DTYPE, "input '%s': %s tensors cannot live in CUDA "
				    "memory", name, ferry_dtype_name(dtype) ?
				    ferry_dtype_name(dtype) : "this dtype's");
	if ((ret = client__shape_bytes(name, esz, dims, ndims, &bytes)) ||
	    (ret = client__cuda_check(r, reg, name, offset, bytes)))
		return ret;
	struct client__tensor *t = &r->t[i];
	client__buf_release(r, &t->buf);
	t->set = true;
	t->bytes = bytes;
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
		return client__fail(FERRY_EINVAL, "ferry_request_output_cuda: NULL argument");
	if ((ret = client__cuda_check(r, reg, name, offset, capacity)))
		return ret;
	if ((ret = ferry_request_want_output(r, name, capacity)))
		return ret;
	struct client__tensor *t = &r->t[r->model->nin + client__find(r->model, name, false)];
	client__buf_release(r, &t->buf);
	t->cuda_id = reg->id;
	t->cuda_off = offset;
	t->cuda_size = reg->bytes;
	t->cuda_ptr = reg->dev_ptr ? (uint8_t *)reg->dev_ptr + offset : NULL;
	return 0;
}

FERRY_API int ferry_request_set_priority(ferry_request *r, uint32_t priority)
{
	if (!r)
		return client__fail(FERRY_EINVAL, "NULL request");
	r->priority = priority;
	return 0;
}

FERRY_API int ferry_request_set_timeout_us(ferry_request *r, uint64_t us)
{
	if (!r)
		return client__fail(FERRY_EINVAL, "NULL request");
	r->timeout_us = us;
	return 0;
}

FERRY_API int ferry_request_reset(ferry_request *r)
{
	int ret;
	if (!r)
		return client__fail(FERRY_EINVAL, "NULL request");
	if ((ret = client__busy(r)))
		return ret;
	atomic_store_explicit(&r->state, CLIENT__IDLE, memory_order_relaxed);
	r->status = 0;
	r->errmsg[0] = '\0';
	return 0;
}

FERRY_API int ferry_infer_async(ferry_client *c, ferry_request *r,
				ferry_callback cb, void *arg)
{
	int ret;

	if (!c || !r || r->client != c)
		return client__fail(FERRY_EINVAL, "ferry_infer_async: bad client or request");
	if ((ret = client__busy(r)))
		return ret;
	for (int i = 0; i < r->model->nin; i++)
		if (!r->t[i].set)
			return client__fail(FERRY_EINVAL, "input '%s' not given",
					    r->model->t[i].name);
	r->cb = cb;
	r->cb_arg = arg;
	r->status = 0;
	r->errmsg[0] = '\0';
	/* Its deadline, should it have to be sent again (a reconnect). */
	r->deadline_ns = r->timeout_us ? fshm_now_ns() + r->timeout_us * 1000 : 0;
	r->lost_ns = 0;
	r->attempts = 0;
	r->reloads = 0;
	r->stale = false;
	r->wire_timeout_us = r->timeout_us;
	struct client__tp *t = client__tp_get(c);
	ret = client__submit(c, t, r);
	client__tp_put(c);
	return ret;
}

void client__request_complete(ferry_request *r, int status, const char *msg)
{
	r->status = status;
	if (status && msg)
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	/* Release: pairs with the acquire in ferry_request_done() and the
	 * waiters, who then read status and outputs. */
	atomic_store_explicit(&r->state, CLIENT__DONE, memory_order_release);
}

void client__run_callbacks(ferry_client *c, ferry_request **done, int n)
{
	for (int i = 0; i < n; i++) {
		ferry_request *r = done[i];
		if (r->freed) {
			client__request_destroy(r);
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

/* A thread that is not the reaper: sleep until the reaper has run
 * callbacks (wait_cond) or 1 ms, whichever first. */
static void client__wait_reaper(ferry_client *c, bool (*pred)(void *), void *arg,
				uint64_t slice_ns)
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

/* Deliver what a lazy client submitted (the transport's flush). */
static void client__flush(ferry_client *c)
{
	if (!(c->opts.flags & FERRY_F_LAZY_DOORBELL))
		return;                 /* submit delivered everything */
	struct client__tp *t = client__tp_get(c);
	if (t->ops->flush)
		t->ops->flush(t);
	client__tp_put(c);
}

/*
 * One turn of the reaper (reap_lock held): recovery first (a no-op while
 * the endpoint serves and nothing waits for a resubmission), then the
 * completions there are, then, when there were none, up to slice_ns for
 * some unless the endpoint is gone.  *down: it is.  No tp_lock: c->tp is
 * replaced, and the old instance closed, only with reap_lock held.
 */
static int client__reap_turn(ferry_client *c, ferry_request **done, int max,
			     bool (*pred)(void *), void *arg, uint64_t slice_ns, bool *down)
{
	int n = client__recover_due(c) ? client__recover(c, done, max) : 0;
	struct client__tp *t = c->tp;
	if (n < max)
		n += t->ops->reap(t, done + n, max - n, 0);
	*down = atomic_load_explicit(&t->down, memory_order_acquire);
	/* Requests the broker refused for a reload (parked by the reap
	 * above) go again now, before anyone sleeps on them. */
	if (n < max && !*down && atomic_load_explicit(&c->npending, memory_order_acquire))
		n += client__recover(c, done + n, max - n);
	if (n == 0 && slice_ns && !*down && !(pred && pred(arg)))
		n = t->ops->reap(t, done, max, (int64_t)slice_ns);
	return n;
}

/*
 * Wait until pred(arg) or the timeout.  One thread at a time reaps (and
 * sleeps in the transport); the others sleep on wait_cond and are woken
 * after each reap.  Sleeps are sliced (CLIENT__SLICE_NS).  While the
 * endpoint is gone the reaper naps instead, between reconnect attempts.
 */
static int client__wait(ferry_client *c, bool (*pred)(void *), void *arg,
			int64_t timeout_ns, int *reaped)
{
	uint64_t start = fshm_now_ns();
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
	ferry_request *done[64];

	/* A lazy client's requests reach the broker now, before anyone
	 * sleeps on them. */
	client__flush(c);
	for (;;) {
		if (pred(arg))
			return 0;
		uint64_t now = fshm_now_ns();
		if (now >= deadline)
			return FERRY_ETIMEDOUT;
		uint64_t slice = deadline - now;
		if (slice > CLIENT__SLICE_NS)
			slice = CLIENT__SLICE_NS;
		if (pthread_mutex_trylock(&c->reap_lock) == 0) {
			bool down;
			int n = client__reap_turn(c, done, 64, pred, arg, slice, &down);
			pthread_mutex_unlock(&c->reap_lock);
			if (reaped)
				*reaped += n;
			client__run_callbacks(c, done, n);
			if (n == 0 && down)
				client__wait_reaper(c, pred, arg, slice);
		} else {
			client__wait_reaper(c, pred, arg, slice);
		}
	}
}

static bool client__req_done(void *arg)
{
	ferry_request *r = arg;
	return atomic_load_explicit(&r->state, memory_order_acquire) == CLIENT__DONE;
}

FERRY_API int ferry_request_done(const ferry_request *r)
{
	return r && atomic_load_explicit(&r->state, memory_order_acquire) == CLIENT__DONE;
}

FERRY_API int ferry_request_status(const ferry_request *r)
{
	return r ? r->status : FERRY_EINVAL;
}

FERRY_API int ferry_request_wait(ferry_request *r, int64_t timeout_ns)
{
	if (!r)
		return client__fail(FERRY_EINVAL, "NULL request");
	int st = atomic_load_explicit(&r->state, memory_order_acquire);
	if (st == CLIENT__IDLE)
		return client__fail(FERRY_EINVAL, "the request was not submitted");
	if (st == CLIENT__INFLIGHT) {
		if (!r->client)
			return client__fail(FERRY_EPIPE, "the client is closed");
		int ret = client__wait(r->client, client__req_done, r, timeout_ns, NULL);
		if (ret)
			return client__fail(ret, "request still in flight after the timeout");
	}
	if (r->status)
		return client__fail(r->status, "%s", r->errmsg);
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

struct client__poll_arg {
	int *reaped;
	int min;
};

static bool client__poll_pred(void *arg)
{
	struct client__poll_arg *p = arg;
	return *p->reaped >= p->min;
}

FERRY_API int ferry_flush(ferry_client *c)
{
	if (!c)
		return client__fail(FERRY_EINVAL, "NULL client");
	if (!c->admin)
		client__flush(c);
	return 0;
}

FERRY_API int ferry_poll(ferry_client *c, int min_complete, int64_t timeout_ns)
{
	int reaped = 0;
	ferry_request *done[64];

	if (!c)
		return client__fail(FERRY_EINVAL, "NULL client");
	if (c->admin)
		return client__fail(FERRY_ENOTSUP, "this client has no session to poll (it was "
				    "opened by ferry_connect_admin)");
	/* A poll that may wait delivers a lazy client's requests first. */
	if (timeout_ns != 0)
		client__flush(c);
	/* Whatever is there now, without waiting. */
	bool down = false;
	if (pthread_mutex_trylock(&c->reap_lock) == 0) {
		int n = client__reap_turn(c, done, 64, NULL, NULL, 0, &down);
		pthread_mutex_unlock(&c->reap_lock);
		reaped += n;
		client__run_callbacks(c, done, n);
	}
	/* Gone for good: a client that does not reconnect. */
	bool gone = down && !c->retry.on;
	if (reaped >= min_complete || timeout_ns == 0) {
		if (reaped == 0 && gone)
			return client__fail(FERRY_EPIPE, "disconnected from the broker");
		return reaped;
	}
	struct client__poll_arg pa = { &reaped, min_complete };
	int ret = client__wait(c, client__poll_pred, &pa, timeout_ns, &reaped);
	if (ret && reaped == 0) {
		struct client__tp *t = client__tp_get(c);
		gone = atomic_load(&t->down) && !c->retry.on;
		client__tp_put(c);
		return client__fail(gone ? FERRY_EPIPE : ret, "%s",
				    gone ? "disconnected from the broker"
					 : "no completion before the timeout");
	}
	return reaped;
}

FERRY_API int ferry_request_output(const ferry_request *r, const char *name,
				   ferry_dtype *dtype, const int64_t **dims,
				   int *ndims, const void **data, size_t *bytes)
{
	if (!r || !name)
		return client__fail(FERRY_EINVAL, "ferry_request_output: NULL argument");
	if (atomic_load_explicit(&r->state, memory_order_acquire) != CLIENT__DONE)
		return client__fail(FERRY_EBUSY, "the request has not completed");
	if (!r->client)
		return client__fail(FERRY_EPIPE, "the client is closed");
	if (r->status)
		return client__fail(r->status, "%s", r->errmsg);
	int i = client__find(r->model, name, false);
	if (i < 0)
		return client__fail(FERRY_ENOENT, "model '%s' has no output '%s'",
				    r->model->name, name);
	const struct client__tensor *t = &r->t[r->model->nin + i];
	if (!t->set || (!t->buf.ptr && !t->cuda_id))
		return client__fail(FERRY_ENOENT, "output '%s' was not requested", name);
	if (dtype) *dtype = t->dtype;
	if (dims) *dims = t->dims;
	if (ndims) *ndims = t->ndims;
	if (data) *data = t->cuda_id ? t->cuda_ptr : t->buf.ptr;
	if (bytes) *bytes = t->bytes;
	return 0;
}
