/* SPDX-License-Identifier: MIT */
/*
 * session.h - one client's shared-memory session in ferryd.
 *
 * A session owns a sealed segment (header, SQ ring, CQ ring, arena), two
 * eventfds (the broker's doorbell, which the client rings, and the
 * client's, which the broker rings) and its control connection.  The loop
 * thread polls the SQ, copies each submission once into private memory,
 * validates it and hands it to the scheduler; completions come back on any
 * thread (instance threads, or the loop thread for inline models), which
 * write the outputs' descriptors and post a CQE.
 *
 * Locking: `lock` guards the CQ producer handle, `dead`, the slot free
 * list and `inflight`.  Everything else is the loop thread's.  The segment
 * stays mapped until the last reference goes: the loop holds one, and each
 * request in flight holds one, so an instance thread never writes into a
 * mapping that is gone.  Prefix session_.
 */
#ifndef FERRY_SESSION_H
#define FERRY_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/fshm.h"

struct session_slot;

/* A client's CUDA IPC region, opened in ferryd (CudaRegister). */
struct session_cuda {
	uint32_t id;
	int device;               /* ferryd's ordinal */
	void *dptr;               /* the mapping in ferryd */
	uint64_t bytes;
	uint32_t users;           /* requests in flight using it; s->lock */
	bool released;            /* the client let go: closed at users == 0 */
	struct session_cuda *next;
};

#define SESSION_MAX_CUDA_REGIONS 256

struct session_limits {
	uint64_t arena_default;   /* bytes when the client asks for 0 */
	uint64_t arena_max;       /* bytes a client may ask for */
	uint32_t depth_default;   /* requests in flight */
	uint32_t depth_max;
	int numa_node;            /* -1: no binding */
	bool prefault;
	bool gpu_pin;             /* cudaHostRegister each arena (a GPU is there) */
};

struct session {
	uint64_t id;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char name[64];

	/* Loop thread only. */
	struct session *next, *prev;

	/* The SQ's consumer side, guarded by sq_lock: the poller that owns
	 * the session takes it to poll, the loop thread to take what the ring
	 * holds before a CudaRelease. */
	pthread_mutex_t sq_lock;
	struct fshm_ring sq;
	uint64_t submitted;

	/* Pollers (poller.c): the owner's private fields, and what others
	 * may set.  Ownership moves only through the target's adopt list. */
	_Atomic bool closing;     /* the loop thread closed it: owner lets go */
	struct session *pnext;    /* owner: its active list / adopt list */
	bool active;              /* owner: on the active list */
	uint32_t hint, hint_runs; /* owner: client CPU hint seen, times in a row */
	bool rescan_mark;         /* owner: idle with work at the last rescan, */
	uint32_t rescan_head;     /* its SQ head then (poller__rescan) */

	struct fshm_seg seg;
	bool gpu_pinned;          /* the segment is registered with CUDA */
	uint8_t *arena;
	uint64_t arena_bytes;
	struct fshm_doorbell db_broker;  /* we wait on it; flag = hdr->broker_wake */
	struct fshm_doorbell db_client;  /* we ring it; flag = hdr->client_wake */

	/* Guarded by lock. */
	pthread_mutex_t lock;
	struct fshm_ring cq;      /* producer side */
	bool dead;
	uint32_t inflight;
	uint32_t nslots;
	struct session_slot *slots;
	uint32_t *free_slots;
	uint32_t nfree;
	uint64_t completed, failed;
	struct session_cuda *cuda;   /* registered regions, not released */
	uint32_t ncuda, cuda_next_id;

	_Atomic int refs;
};

/* Create the segment and doorbells for a client that said Hello. */
int session_create(const struct session_limits *lim, uint64_t id, uint64_t epoch,
		uint64_t arena_bytes, uint32_t depth, struct session **out,
		char *err, size_t errlen);

/*
 * session_adopt - a session on the segment a client hands back (fd, from
 * its Hello after a broker restart): checked like any peer's segment and
 * against the limits, then the header and rings re-initialised and the
 * arena's bytes kept (fshm_seg_adopt).  Takes fd on success only.  0, or
 * FERRY_EINVAL / FERRY_E2BIG / FERRY_ENOMEM with the reason in err.
 */
int session_adopt(const struct session_limits *lim, uint64_t id, uint64_t epoch, int fd,
		  struct session **out, char *err, size_t errlen);

/*
 * session_poll - drain the SQ: validate each submission and submit it.
 * Any thread (takes sq_lock).  Returns the number of submissions handled,
 * or -EBADMSG when the client corrupted its ring (the caller closes it).
 */
int session_poll(struct session *s);

/* Mark dead (later completions are dropped) and drop the loop's
 * reference.  The last reference frees everything.  Loop thread. */
void session_kill(struct session *s);

/* Take / drop a reference (a poller owning the session holds one). */
void session_ref(struct session *s);
void session_unref(struct session *s);

/* The CPU the client last slept on waiting (its hint), or -1 unknown. */
int session_client_cpu(const struct session *s);

/*
 * session_cuda_register - open a client's CUDA IPC handle (see CudaRegister in
 * proto/control.proto) for the session's tensors; *id names it in tensor
 * flags.  session_cuda_release - forget it: no new request may use it, and
 * it is closed when the requests in flight with it complete (the caller
 * first takes what the ring holds: those were submitted before).  Loop
 * thread.  0, or a ferry code with the reason in err.
 */
int session_cuda_register(struct session *s, const void *handle, size_t handle_len,
		       const char *pci_bus_id, int device, uint64_t bytes,
		       uint32_t *id, int *device_out, char *err, size_t errlen);
int session_cuda_release(struct session *s, uint32_t id, char *err, size_t errlen);

/* The broker going to sleep / waking: set or clear its flag in s. */
void session_arm(struct session *s);
void session_disarm(struct session *s);
/* SQ entries waiting (for the re-check after arming). */
bool session_has_work(struct session *s);

/* Counters for statistics. */
extern _Atomic uint64_t session_total_sessions;

#endif
