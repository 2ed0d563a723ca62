/* SPDX-License-Identifier: MIT */
/* client.h - libferry's private structures.  Prefix fc_. */
#ifndef FERRY_CLIENT_H
#define FERRY_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <ferry/ferry.h>

#include "proto/control.pb-c.h"
#include "proto/frame.h"
#include "shm/fshm.h"

struct fc_tmeta {
	char *name;
	ferry_dtype dtype;
	int ndims;                      /* without the batch dimension */
	int64_t dims[FERRY_MAX_DIMS];
};

struct ferry_model {
	ferry_client *client;
	char *name;
	int64_t version;
	uint32_t id;
	int max_batch;
	int nin, nout;
	struct fc_tmeta *t;             /* nin inputs, then nout outputs */
	bool asked_latest;              /* found through FERRY_LATEST */
	ferry_model *next;              /* client's list; ctl_lock */
};

struct fc_tensor {
	bool set;                       /* input given / output wanted */
	uint64_t off;                   /* arena offset; UINT64_MAX = none */
	uint64_t cap;                   /* bytes allocated */
	uint64_t bytes;                 /* input bytes / output bytes written */
	uint64_t want_cap;              /* output: capacity asked (0 = computed) */
	ferry_dtype dtype;
	int ndims;                      /* batch dimension included */
	int64_t dims[FERRY_MAX_DIMS];
	/* In a CUDA region instead of the arena (cuda_id != 0): its offset
	 * there, the region's size, and the client's device address. */
	uint32_t cuda_id;
	uint64_t cuda_off, cuda_size;
	void *cuda_ptr;
};

struct ferry_cuda_region {
	ferry_client *client;           /* NULL once the client closed */
	uint32_t id;                    /* the broker's name for it */
	int device;                     /* the broker's ordinal of the card */
	void *dev_ptr;                  /* the client's address; may be NULL */
	uint64_t bytes;
	ferry_cuda_region *next;        /* the client's list; ctl_lock */
};

enum fc_state { FC_IDLE = 0, FC_INFLIGHT = 1, FC_DONE = 2 };

struct ferry_request {
	ferry_client *client;           /* NULL once the client closed */
	ferry_model *model;
	uint64_t desc_off;              /* arena offset of the descriptor */
	uint32_t desc_ntensors;         /* tensors the descriptor holds */
	struct fc_tensor *t;            /* nin inputs, then nout outputs */
	bool want_all;                  /* no ferry_request_want_output yet */
	uint32_t priority;
	uint64_t timeout_us;
	_Atomic int state;              /* enum fc_state */
	int status;
	bool freed;                     /* freed by the user while in flight */
	bool remote;                    /* tensors are malloc'd (remote.c) */
	uint32_t ntensors;              /* entries of t (the model's nin + nout) */
	ferry_request *next, *prev;     /* the client's live requests; sq_lock */
	ferry_callback cb;
	void *cb_arg;
	char errmsg[FSHM_ERRMSG_LEN];
};

struct fc_slot {
	ferry_request *r;
	uint32_t gen;
};

struct ferry_client {
	pthread_mutex_t ctl_lock;
	int sock;
	struct frame_reader rd;
	uint64_t seq;
	ferry_model *models;

	struct fshm_seg seg;
	uint64_t session_id;
	struct fshm_arena *arena;
	uint8_t *arena_base;
	uint64_t arena_bytes;
	enum fshm_wait_policy wait;
	uint64_t spin_ns;

	pthread_mutex_t sq_lock;
	ferry_request *reqs;            /* every live request, so that close can
					 * detach them (ferry_request_free may
					 * still follow); sq_lock */
	struct fshm_ring sq;            /* producer */
	struct fshm_doorbell db_broker; /* we ring it */
	uint32_t depth;
	struct fc_slot *slots;
	uint32_t *free_slots;
	uint32_t nfree;

	pthread_mutex_t reap_lock;
	struct fshm_ring cq;            /* consumer */
	struct fshm_doorbell db_client; /* we wait on it */

	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	_Atomic bool broken;            /* the broker went away */
	struct fr_client *remote;       /* gRPC transport (remote.c); NULL = local */
	ferry_cuda_region *cuda_regions; /* registered, not released; ctl_lock */
};

/* A tensor's memory: an arena offset (local), or the address of a
 * malloc'd buffer (remote transport). */
static inline void *fc_tensor_ptr(const ferry_client *c, uint64_t off)
{
	return c->remote ? (void *)(uintptr_t)off : c->arena_base + off;
}

int fc_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * fc_autostart - start a private ferryd on `repo` listening at `path`,
 * unless one is already there: one per socket (hence per user and node),
 * guarded by an flock on path + ".lock" so that jobs starting together
 * start one broker.  Waits until it accepts connections (30 s at most).
 * The broker leaves by itself after $FERRY_AUTOSTART_IDLE seconds (600)
 * with no session.
 */
int fc_autostart(const char *path, const char *repo);
void fc_model_free(ferry_model *m);
/* A control call on the local socket (ctl_lock held): 0 with *resp, or
 * the broker's error (ferry_last_error() says why). */
int fc_call(ferry_client *c, Ferry__Control__Request *req,
	    Ferry__Control__Response **resp);
/* ferry_close: detach the client's CUDA regions (ctl_lock held). */
void fc_cuda_detach(ferry_client *c);
void fc_request_destroy(ferry_request *r);
void fc_request_complete(ferry_request *r, int status, const char *msg);
/* Run the callbacks of reaped requests (freeing those freed in flight)
 * and wake the threads waiting; no lock held.  Both transports. */
void fc_run_callbacks(ferry_client *c, ferry_request **done, int n);
/* Wait while another thread reaps (at most 1 ms or slice_ns). */
void fc_wait_reaper(ferry_client *c, bool (*pred)(void *), void *arg, uint64_t slice_ns);

#endif
