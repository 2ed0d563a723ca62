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
 *   client_failover.c   the endpoint list, connecting through it, and
 *                       recovery: reconnecting, failing over, resubmitting
 *   client_local.c      the local transport: shared memory with ferryd
 *   client_grpc.c       the remote transport: KServe v2 over gRPC
 *
 * The transport table.  A client reaches one endpoint through one
 * transport instance (struct client__tp: its ops and its own state).  The
 * public calls do the checks common to both transports, then call through
 * c->tp->ops once; nothing else asks which transport it is.  An endpoint
 * list with failover holds one instance per endpoint: the one in use is
 * c->tp; the others are opened when it goes away (client_failover.c).
 *
 * Locks of a client, in the order they nest (each guards only what is
 * listed; a thread takes them in this order and never tp_lock twice):
 *   reap_lock  the transport's completion side and recovery; whoever
 *              holds it reaps and recovers for every thread
 *   tp_lock    (rwlock, writers preferred) read: using c->tp; write:
 *              replacing it and the models' ids (client_failover.c),
 *              which happens with reap_lock held too: the reaper uses
 *              c->tp without tp_lock
 *   ctl_lock   the model list, the CUDA regions, and the transport's
 *              control channel (the local control socket)
 *   sq_lock    the list of live requests, each request's state while in
 *              flight, the pending list, and the transport's submission
 *              state
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

/* Immutable once made, except the broker's handles, rewritten when the
 * client reconnects (tp_lock held for writing); owned by its client
 * (freed by ferry_close). */
struct ferry_model {
	ferry_client *client;
	char *name;
	int64_t version;                /* tp_lock */
	uint32_t id;                    /* the local broker's handle; tp_lock */
	int lost;                       /* not served where the client reconnected:
					 * the error its requests get; tp_lock */
	int max_batch;
	int nin, nout;
	struct client__tmeta *t;        /* nin inputs, then nout outputs */
	bool asked_latest;              /* found through FERRY_LATEST */
	ferry_model *next;              /* client's list; ctl_lock */
	/* The broker refused a request on id because a reload replaced that
	 * version (local): recovery resolves the model again
	 * (client_failover.c); refresh_err says how that went.  reap_lock. */
	bool stale;
	int refresh_err;
};

/*
 * A tensor's host memory.  Arena memory (heap false: in the client's
 * segment, off its offset there) is freed into the segment's allocator
 * and simply forgotten once the client closed; heap memory (malloc, while
 * the client has no segment: a remote client) belongs to the request and
 * is freed with free().
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
	/* An input on the heap sent over shared memory (the client reached
	 * a local broker only after the request was made): its copy in the
	 * arena, refreshed at each submission. */
	struct client__buf stage;
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
 * in flight, by the transport or the pending list (fields below state:
 * sq_lock). */
struct ferry_request {
	ferry_client *client;           /* NULL once the client closed */
	ferry_model *model;
	struct client__buf desc;        /* the transport's descriptor (local) */
	/* Set at ferry_infer_async, for resubmissions (client_failover.c). */
	uint64_t deadline_ns;           /* fshm_now_ns() clock; 0: none */
	uint64_t lost_ns;               /* first lost (no deadline): when */
	uint32_t attempts;              /* resubmissions so far */
	uint64_t wire_timeout_us;       /* the timeout the transport sends */
	uint32_t sent_id;               /* the model id it went with (local) */
	bool stale;                     /* pending because a reload replaced
					 * the version sent_id names */
	uint32_t reloads;               /* times sent again for a reload */
	ferry_request *pnext;           /* the pending list; sq_lock */
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

/* One endpoint of the list: a transport and its address. */
struct client__ep {
	const struct client__tp_ops *ops;
	char address[256];              /* in the transport's syntax */
	int origin;                     /* local: where the path came from
					 * (client.c's enum client__origin) */
};

/*
 * The session's segment (header, rings, arena) and the arena's
 * allocator.  Made from the first local broker's Welcome; kept by the
 * client when that broker goes away, and handed back to the next local
 * broker in its Hello (adopt_segment), so that every tensor in the arena
 * and every pointer the application holds into it outlive a restart.
 * Freed by ferry_close.
 */
struct client__seg {
	struct fshm_seg seg;            /* the mapping and the memfd */
	struct fshm_arena *arena;       /* its own lock */
	uint8_t *base;                  /* the arena's first byte */
	uint64_t bytes;
};

/* What recovery may do (client_failover.c); immutable after connect. */
struct client__retry {
	bool on;                        /* reconnect and resubmit at all */
	uint32_t max;                   /* resubmissions of one request */
	uint64_t window_ns;             /* a request without a deadline waits
					 * this long for a broker to come back */
	char *autostart;                /* $FERRY_AUTOSTART: the repository of
					 * the last resort, or NULL */
	char autostart_path[108];       /* its socket */
};

struct ferry_client {
	struct client__tp *tp;          /* the endpoint in use; tp_lock, or
					 * reap_lock to read */
	bool admin;                     /* ferry_connect_admin: no session */
	pthread_rwlock_t tp_lock;
	struct client__ep *eps;         /* in order of preference; immutable */
	int neps;
	int cur;                        /* eps[cur] is c->tp's; -1: the
					 * autostarted broker; tp_lock */
	_Atomic(struct client__seg *) seg; /* set once (tp_lock held for
					 * writing), then until ferry_close */
	struct client__retry retry;
	ferry_options opts;             /* as connect was given them (client_name
					 * points at name) */
	char name[64];
	int64_t probe_ns;               /* a remote endpoint's connect check */

	/* Recovery (reap_lock). */
	uint64_t down_ns;               /* when c->tp was found gone; 0 */
	uint64_t next_try_ns;           /* no reconnect attempt before */
	uint64_t backoff_ns;
	ferry_request *pending, **pending_tail; /* lost or submitted while the
					 * endpoint was gone, or refused for a
					 * reload; sq_lock */
	bool stale;                     /* some model is (reap_lock) */
	_Atomic uint32_t npending;
	_Atomic uint64_t reconnects, resubmits; /* statistics */

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
	/* reap_lock held.  Requests in flight: with requeue, handed to
	 * client__request_lost (the client resubmits them elsewhere);
	 * without, they complete with FERRY_EPIPE (or are destroyed when
	 * freed in flight, with client NULL).  Then the instance is freed.
	 * The requests not in flight were detached already. */
	void (*close)(struct client__tp *t, bool requeue);
	/* Is the endpoint ready to serve (KServe ServerReady)?  0, or why
	 * not.  NULL: an instance that went down is not revived (the local
	 * transport opens a new session instead). */
	int (*check)(struct client__tp *t);
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
	/* Send r (checked: not busy, every input set, callback recorded;
	 * tp_lock held for reading). */
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
	/* The endpoint went away (or a call found it unreachable): new
	 * submissions wait in the pending list until recovery revives it
	 * or replaces it.  Set by the transport, cleared by recovery. */
	_Atomic bool down;
	/* A segment this instance made (the client's first local session):
	 * the client takes it when it starts using the instance. */
	struct client__seg *seg_made;
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
	 * except as marked.  Its segment is the client's (struct
	 * client__seg, or tp.seg_made until the client takes it); seg and
	 * the arena fields below are a view of it, never closed here. */
	struct client__seg *cs;
	struct fshm_seg seg;
	bool adopted;                   /* the broker took over the segment */
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
	uint64_t checked_ns;            /* last look at the socket; reap_lock */
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
 * enough), in the client's arena when it has one, else on the heap;
 * release it again.  No lock held (the arena has its own). */
int client__buf_alloc(ferry_request *r, struct client__buf *b, uint64_t bytes);
void client__buf_release(ferry_request *r, struct client__buf *b);

/* The transport in use, for one call through it: tp_lock held for
 * reading until client__tp_put. */
static inline struct client__tp *client__tp_get(ferry_client *c)
{
	pthread_rwlock_rdlock(&c->tp_lock);
	return c->tp;
}

static inline void client__tp_put(ferry_client *c)
{
	pthread_rwlock_unlock(&c->tp_lock);
}

/* client_failover.c. */
/* The endpoints for address (a list: "local,grpc://a:8001,..."), or for
 * discovery (NULL): the local socket, then $FERRY_SERVER's.  Fills
 * c->eps, c->neps and c->retry's autostart; 0 or FERRY_EINVAL. */
int client__endpoints(ferry_client *c, const char *address, bool admin);
/* The same from an array of single addresses (ferry_connect_list). */
int client__endpoints_list(ferry_client *c, const char *const *addr, int n);
/* Connect: the first endpoint, in order, that answers (then the
 * autostarted broker); c->tp set.  0 or the reasons of every failure. */
int client__connect_first(ferry_client *c);
/* Transports: r could not be finished (its endpoint went away); sq_lock
 * held.  Parks it on the pending list for recovery to resubmit (true),
 * or completes it with status, or FERRY_ETIMEDOUT past its deadline,
 * when it may not be resubmitted (false: the caller hands it out as
 * done). */
bool client__request_lost(ferry_request *r, int status, const char *msg);
/* Transports: the broker refused r, sent on model id sent_id, because a
 * reload replaced that version (it did not run); reap_lock and sq_lock
 * held.  Parks it for recovery to resolve the model again and resubmit
 * it (true), or completes it with status and msg (false) as
 * client__request_lost does. */
bool client__request_stale(ferry_request *r, uint32_t sent_id, int status, const char *msg);
/* Send r now, or park it when the endpoint is down (tp_lock held for
 * reading). */
int client__submit(ferry_client *c, struct client__tp *t, ferry_request *r);
/* reap_lock held, no other lock: expire pending requests past their
 * deadline, reconnect or fail over when c->tp went down, resubmit the
 * pending.  Requests completed here go to done[] (at most max). */
int client__recover(ferry_client *c, ferry_request **done, int max);
/* Is there anything for client__recover to do (reap_lock held)?  The
 * reaper's fast path: two relaxed-cost loads while all is well. */
static inline bool client__recover_due(ferry_client *c)
{
	return c->retry.on && (atomic_load_explicit(&c->tp->down, memory_order_acquire) ||
			       atomic_load_explicit(&c->npending, memory_order_acquire));
}
/* ferry_close: every pending request completes with FERRY_EPIPE (or is
 * destroyed when freed); sq_lock held. */
void client__pending_close(ferry_client *c);
/* The client's segment, freed (ferry_close). */
void client__seg_free(struct client__seg *s);

void client__request_destroy(ferry_request *r);
/* Called with sq_lock held or by the only owner. */
void client__request_complete(ferry_request *r, int status, const char *msg);
/* Run the callbacks of reaped requests (freeing those freed in flight)
 * and wake the threads waiting; no lock held. */
void client__run_callbacks(ferry_client *c, ferry_request **done, int n);
/* ferry_close: detach the client's CUDA regions (ctl_lock held). */
void client__cuda_detach(ferry_client *c);

#endif /* FERRY_CLIENT_INT_H */
