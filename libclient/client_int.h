/* SPDX-License-Identifier: MIT */
/*
 * client_int.h - what libferry's files share and nothing outside
 * libclient/ may use (tests that forge or poke at its state excepted):
 * the client, model and request structs, the transport table, and the
 * helpers named client__.  Prefix client_.
 *
 *   client.c            connect / close, errors, models, administration:
 *                       the public calls, dispatched through the table
 *   client_request.c    requests, submission, waiting and polling
 *   client_cuda.c       CUDA IPC regions (ferry_cuda_*)
 *   client_autostart.c  the fallback broker ($FERRY_AUTOSTART)
 *   client_local.c      the local transport: shared memory with ferryd
 *   client_grpc.c       the remote transport: KServe v2 over gRPC
 *
 * The transport table.  A client reaches one endpoint through one
 * transport instance (struct client__tp: its ops and its own state).  The
 * public calls do the checks common to both transports, then call through
 * c->tp->ops once; nothing else asks which transport it is.  An endpoint
 * list with failover holds one instance per endpoint.
 *
 * Locks of a client (each guards only what is listed; never two at once
 * except reap_lock -> wait_lock):
 *   ctl_lock   the model list, the CUDA regions, and the transport's
 *              control channel (the local control socket)
 *   sq_lock    the list of live requests, each request's state while in
 *              flight, and the transport's submission state
 *   reap_lock  the transport's completion side; whoever holds it reaps
 *              for every thread
 *   wait_lock  + wait_cond: threads waiting while another one reaps
 */
#ifndef FERRY_CLIENT_INT_H
#define FERRY_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <ferry/ferry.h>

#include "proto/control.pb-c.h"
#include "proto/frame.h"
#include "shm/fshm.h"

struct client__tp;

/* Metadata of one tensor of a model (immutable once the model is made). */
struct client__tmeta {
	char *name;
	ferry_dtype dtype;
	int ndims;                      /* without the batch dimension */
	int64_t dims[FERRY_MAX_DIMS];
};

/* Immutable once made; owned by its client (freed by ferry_close). */
struct ferry_model {
	ferry_client *client;
	char *name;
	int64_t version;
	uint32_t id;                    /* the local broker's handle */
	int max_batch;
	int nin, nout;
	struct client__tmeta *t;        /* nin inputs, then nout outputs */
	bool asked_latest;              /* found through FERRY_LATEST */
	ferry_model *next;              /* client's list; ctl_lock */
};

/*
 * A tensor's host memory.  Transport memory (heap false: the local
 * arena, off its offset there) is freed through the transport and simply
 * forgotten once the client closed; heap memory (malloc, for transports
 * without buf_alloc) belongs to the request and is freed with free().
 */
struct client__buf {
	void *ptr;                      /* the caller's address; NULL = none */
	uint64_t off;                   /* the transport's handle (arena offset) */
	uint64_t cap;                   /* bytes allocated */
	bool heap;
};

struct client__tensor {
	bool set;                       /* input given / output wanted */
	struct client__buf buf;
	uint64_t bytes;                 /* input bytes / output bytes written */
	uint64_t want_cap;              /* output: capacity asked (0 = computed) */
	ferry_dtype dtype;
	int ndims;                      /* batch dimension included */
	int64_t dims[FERRY_MAX_DIMS];
	/* In a CUDA region instead of host memory (cuda_id != 0): its offset
	 * there, the region's size, an output's room, and the client's device
	 * address. */
	uint32_t cuda_id;
	uint64_t cuda_off, cuda_size;
	uint64_t cuda_cap;              /* output: its room in the region */
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

enum client__state { CLIENT__IDLE = 0, CLIENT__INFLIGHT = 1, CLIENT__DONE = 2 };

/* Owned by the caller from ferry_request_new to ferry_request_free; while
 * in flight, by the transport (fields below state: sq_lock). */
struct ferry_request {
	ferry_client *client;           /* NULL once the client closed */
	ferry_model *model;
	struct client__buf desc;        /* the transport's descriptor (local) */
	uint32_t desc_ntensors;         /* tensors the descriptor holds */
	struct client__tensor *t;       /* nin inputs, then nout outputs */
	bool want_all;                  /* no ferry_request_want_output yet */
	uint32_t priority;
	uint64_t timeout_us;
	_Atomic int state;              /* enum client__state */
	int status;
	bool freed;                     /* freed by the user while in flight */
	uint32_t ntensors;              /* entries of t (the model's nin + nout) */
	ferry_request *next, *prev;     /* the client's live requests; sq_lock */
	ferry_callback cb;
	void *cb_arg;
	char errmsg[FSHM_ERRMSG_LEN];
};

struct ferry_client {
	struct client__tp *tp;          /* the endpoint's transport instance */
	bool admin;                     /* ferry_connect_admin: no session */

	pthread_mutex_t ctl_lock;
	ferry_model *models;            /* ctl_lock */
	ferry_cuda_region *cuda_regions; /* registered, not released; ctl_lock */

	pthread_mutex_t sq_lock;
	ferry_request *reqs;            /* every live request, so that close can
					 * detach them (ferry_request_free may
					 * still follow); sq_lock */
	pthread_mutex_t reap_lock;
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	_Atomic bool broken;            /* the endpoint went away */
};

/*
 * The operations of a transport.  Unless marked, no lock is held when
 * they are called and they take what they need.  Each returns 0 (or a
 * count) or a negative ferry code with the reason set by client__fail().
 */
struct client__tp_ops {
	const char *name;               /* "local", "grpc" */
	/* An instance for c at address (the transport's syntax); c->admin
	 * asks for no session.  Its base's ops and c are set here. */
	int (*open)(ferry_client *c, const char *address, const ferry_options *o,
		    struct client__tp **out);
	/* Requests in flight complete with FERRY_EPIPE (or are destroyed when
	 * freed in flight, with client NULL); then the instance is freed.  The
	 * requests not in flight were detached already. */
	void (*close)(struct client__tp *t);
	/* A new model from the endpoint's metadata (ctl_lock held: the caller
	 * looks it up in and adds it to the client's list). */
	int (*model_get)(struct client__tp *t, const char *name, int64_t version,
			 ferry_model **out);
	int (*model_list)(struct client__tp *t,
			  void (*fn)(void *arg, const ferry_model_info *m), void *arg);
	int (*statistics)(struct client__tp *t, const char *name, int64_t version,
			  void (*fn)(void *arg, const ferry_model_stats *s), void *arg);
	/* Load (or reload) / unload a model of the repository. */
	int (*model_admin)(struct client__tp *t, const char *name, bool unload);
	/* *out from client__status_new(), filled. */
	int (*server_status)(struct client__tp *t, ferry_server_status **out);
	/* NULL: sessions are not shown over this transport. */
	int (*session_list)(struct client__tp *t,
			    void (*fn)(void *arg, const ferry_session_info *s), void *arg);
	/* A tensor's memory in the transport's own space; NULL: on the heap. */
	int (*buf_alloc)(struct client__tp *t, uint64_t bytes, struct client__buf *b);
	void (*buf_free)(struct client__tp *t, struct client__buf *b);
	/* Send r (checked: not busy, every input set, callback recorded). */
	int (*submit)(struct client__tp *t, ferry_request *r);
	/* reap_lock held: the completions there are (up to max) into done[],
	 * finished (client__request_complete).  wait_ns > 0: the caller just
	 * found none, so wait up to wait_ns for some first.  The caller runs
	 * the callbacks. */
	int (*reap)(struct client__tp *t, ferry_request **done, int max, int64_t wait_ns);
	/* Deliver what submit left to be delivered at the next wait (the
	 * lazy doorbell); any thread.  NULL: submit delivers everything. */
	void (*flush)(struct client__tp *t);
	/* ctl_lock held.  NULL: no CUDA tensors over this transport. */
	int (*cuda_register)(struct client__tp *t, const void *handle, size_t len,
			     const char *pci_bus_id, int device, uint64_t bytes,
			     uint32_t *id, int *broker_device);
	int (*cuda_release)(struct client__tp *t, uint32_t id);
};

/* The base of every transport instance. */
struct client__tp {
	const struct client__tp_ops *ops;
	ferry_client *c;
	char address[256];              /* the endpoint, for messages */
};

extern const struct client__tp_ops client__local_ops;
extern const struct client__tp_ops client__grpc_ops;

/*
 * The local transport's instance (client_local.c): a session's segment,
 * rings and doorbells, and the control socket.  Here rather than in
 * client_local.c so that tests/integ/test_hostile.c can play a hostile
 * client on a real session.
 */
struct client__slot {
	ferry_request *r;
	uint32_t gen;
};

struct client__local {
	struct client__tp tp;
	int sock;                       /* control socket; ctl_lock */
	struct frame_reader rd;         /* ctl_lock */
	uint64_t seq;                   /* ctl_lock */

	/* The session (none for an admin client): immutable after open,
	 * except as marked. */
	struct fshm_seg seg;
	uint64_t session_id;
	struct fshm_arena *arena;       /* its own lock */
	uint8_t *arena_base;
	uint64_t arena_bytes;
	enum fshm_wait_policy wait;
	uint64_t spin_ns;
	struct fshm_ring sq;            /* producer; sq_lock */
	struct fshm_doorbell db_broker; /* we ring it */
	uint32_t depth;
	struct client__slot *slots;     /* sq_lock */
	uint32_t *free_slots;           /* sq_lock */
	uint32_t nfree;                 /* sq_lock */
	struct fshm_ring cq;            /* consumer; reap_lock */
	struct fshm_doorbell db_client; /* we wait on it */
	bool lazy;                      /* FERRY_F_LAZY_DOORBELL; immutable */
	_Atomic bool ring_pending;      /* lazy: published, broker not rung */
};

/* c's local instance; only for a client of the local transport. */
static inline struct client__local *client__local_of(ferry_client *c)
{
	return (struct client__local *)c->tp;
}

/* Record the calling thread's failure message (ferry_last_error) and
 * return code. */
int client__fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append to the message of the last failure. */
void client__fail_more(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * client__autostart - start a private ferryd on `repo` listening at `path`,
 * unless one is already there: one per socket (hence per user and node),
 * guarded by an flock on path + ".lock" so that jobs starting together
 * start one broker.  Waits until it accepts connections (30 s at most).
 * The broker leaves by itself after $FERRY_AUTOSTART_IDLE seconds (600)
 * with no session.
 */
int client__autostart(const char *path, const char *repo);

/* A model with room for nin + nout tensors (names NULL), for a transport
 * to fill; free with client__model_free. */
ferry_model *client__model_new(ferry_client *c, const char *name, int nin, int nout);
void client__model_free(ferry_model *m);
/* The index of input / output `name` of m, or -1. */
int client__find(const ferry_model *m, const char *name, bool input);

/* A ferry_server_status with room for nstr strings of at most strbytes in
 * all, set to "unknown" everywhere; client__status_str copies s into it
 * (NULL when full).  Freed by ferry_server_status_free. */
ferry_server_status *client__status_new(size_t strbytes, int nextensions);
const char *client__status_str(ferry_server_status *st, const char *s);

/* A tensor's host memory of at least bytes (kept when it is large
 * enough), from the transport or the heap; release it again. */
int client__buf_alloc(ferry_request *r, struct client__buf *b, uint64_t bytes);
void client__buf_release(ferry_request *r, struct client__buf *b);

void client__request_destroy(ferry_request *r);
/* Called with sq_lock held or by the only owner. */
void client__request_complete(ferry_request *r, int status, const char *msg);
/* Run the callbacks of reaped requests (freeing those freed in flight)
 * and wake the threads waiting; no lock held. */
void client__run_callbacks(ferry_client *c, ferry_request **done, int n);
/* ferry_close: detach the client's CUDA regions (ctl_lock held). */
void client__cuda_detach(ferry_client *c);

#endif /* FERRY_CLIENT_INT_H */
