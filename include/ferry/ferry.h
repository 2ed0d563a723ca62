/* SPDX-License-Identifier: MIT */
/*
 * ferry.h - the client library of ferry, the node-local inference broker.
 *
 * A job links libferry (pkg-config ferry), connects to the node's ferryd and
 * submits inference requests through a shared-memory session: input
 * tensors are allocated in a shared arena and written in place, outputs are
 * written by the broker in place and read in place.  No copy, no system call
 * on the hot path while the broker is busy.
 *
 *   ferry_client *c;    ferry_connect(&c, NULL, NULL);
 *   ferry_model *m;     ferry_model_get(c, "simple", FERRY_LATEST, &m);
 *   ferry_request *r;   ferry_request_new(m, &r);
 *   int32_t *in0;       ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32,
 *                                           dims, 2, (void **)&in0);
 *                       ... fill in0[] in place ...
 *                       ferry_infer(c, r, timeout_ns);
 *   const int32_t *out; ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL,
 *                                            (const void **)&out, NULL);
 *                       ferry_request_free(r); ferry_close(c);
 *
 * Errors: every function that can fail returns 0 (or a count) on success and
 * a negative ferry error code (include/ferry/errors.h) on failure;
 * ferry_strerror() gives the code's fixed message and ferry_last_error() the
 * detailed message of the calling thread's last failure (for example the
 * broker's "input 'INPUT0': expected FP32, got INT32").
 *
 * Thread safety: a ferry_client may be used by any number of threads at
 * once (submission and completion each take a short internal lock).  A
 * ferry_model is immutable and may be shared.  A ferry_request belongs to one
 * thread at a time: don't touch it between submitting it and its
 * completion, except through ferry_request_wait() / ferry_request_done().
 *
 * Ownership: the client owns its models (freed by ferry_close); the caller
 * owns each request until ferry_request_free(); tensor pointers returned for
 * a request stay valid until the request is freed or reset.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <stddef.h>
#include <stdint.h>

#include <ferry/dtype.h>
#include <ferry/errors.h>
#include <ferry/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FERRY_BUILDING_LIB)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

#define FERRY_LATEST ((int64_t)-1)   /* the latest ready version */
#define FERRY_MAX_DIMS 8

typedef struct ferry_client ferry_client;
typedef struct ferry_model ferry_model;
typedef struct ferry_request ferry_request;
typedef struct ferry_cuda_region ferry_cuda_region;

/* How a thread waits for a completion. */
typedef enum ferry_wait {
	FERRY_WAIT_DEFAULT = -1, /* $FERRY_WAIT, else hybrid */
	FERRY_WAIT_SPIN = 0,     /* poll: lowest latency, burns the thread's core */
	FERRY_WAIT_HYBRID = 1,   /* poll a bounded, adaptive time, then sleep */
	FERRY_WAIT_BLOCK = 2,    /* sleep at once */
} ferry_wait;

/* Options for ferry_connect(); zero-initialise, set what you need. */
typedef struct ferry_options {
	uint32_t struct_size;    /* sizeof(ferry_options); 0 = this version's */
	uint32_t queue_depth;    /* requests in flight; 0 = 256 */
	uint64_t arena_bytes;    /* shared arena; 0 = 64 MiB */
	ferry_wait wait;         /* FERRY_WAIT_DEFAULT */
	const char *client_name; /* shown in the broker's logs; NULL = program name */
	uint32_t flags;          /* FERRY_F_*; since 0.2 */
	/* When the broker goes away (see "Reconnect and failover" below);
	 * since 0.2: */
	uint32_t max_retries;    /* times one request is sent again after being
				    lost with its broker; 0 = $FERRY_RETRIES,
				    else 3 */
	uint64_t reconnect_ms;   /* how long a request without a timeout waits
				    for a broker to answer again; 0 =
				    $FERRY_RECONNECT_MS, else 30000 */
} ferry_options;

/*
 * FERRY_F_LAZY_DOORBELL: ferry_infer_async() publishes the request on the
 * ring but does not wake a sleeping broker; the client wakes it once, when
 * it next waits (ferry_poll() with a timeout other than 0,
 * ferry_request_wait(), ferry_infer()) or calls ferry_flush().  Requests
 * submitted between two waits then reach the broker in one wake-up, which
 * runs them together (as one batch where the model batches).  For jobs
 * that submit several requests, do other work and then wait; a client that
 * submits and never waits must call ferry_flush().  Shared memory only;
 * ignored over gRPC.
 */
#define FERRY_F_LAZY_DOORBELL (1u << 0)

/*
 * FERRY_F_NO_RECONNECT: when the broker goes away, fail every request in
 * flight and every later call with FERRY_EPIPE at once, as libferry 0.1
 * did, instead of reconnecting (the application reconnects itself, with
 * ferry_connect_wait()).
 */
#define FERRY_F_NO_RECONNECT (1u << 1)

/*
 * ferry_connect - open a session with a broker
 *
 * address: NULL discovers the broker, in this order:
 *   1. the local socket: $FERRY_SOCKET, else /run/ferry/ferryd.sock for
 *      root, else $XDG_RUNTIME_DIR/ferry/ferryd.sock;
 *   2. when no local broker listens there, the remote servers named by
 *      $FERRY_SERVER, in order: a list of endpoints separated by commas
 *      ("grpc://host:port" or "host:port" each).  A list that names
 *      "local" sets where the local socket comes in it:
 *      FERRY_SERVER="grpc://a:8001,local" tries a first;
 *   3. else, when $FERRY_AUTOSTART names a model repository, a private
 *      ferryd started for this user at the local socket (one per node:
 *      jobs starting together start one), which leaves after
 *      $FERRY_AUTOSTART_IDLE seconds (600) with no session.  $FERRY_FERRYD
 *      names its binary (default: the installed one, then PATH).
 * Otherwise an explicit address, or a list of them separated by commas
 * in order of preference, used alone: "grpc://host:port" for a remote
 * ferryd or any KServe v2 / Triton gRPC server (host may be a DNS name of
 * several brokers: gRPC balances calls over them round-robin),
 * "grpcs://host:port" for the same over TLS, "local" for the node's
 * socket, or a path to a broker's Unix socket ("unix:" prefix optional).
 * In a list, each endpoint is health-checked (KServe ServerReady, or the
 * local socket's Hello) and the first that serves is used.
 * opts may be NULL.  Free with ferry_close().
 *
 * Reconnect and failover (unless FERRY_F_NO_RECONNECT): when the broker
 * goes away (it exited, was killed or restarted; a remote call fails
 * UNAVAILABLE), the requests in flight are not failed: the next call that
 * waits (ferry_poll, ferry_request_wait, ferry_infer) tries the endpoints
 * again in order, the same socket included, every 10 to 200 ms, then the
 * autostarted broker, and once one serves, gets the client's models there
 * again (handles stay valid; their ids change) and sends the requests
 * again: inference is idempotent.  Requests submitted meanwhile wait for
 * it too.  Each request is sent again at most max_retries times, within
 * its deadline (its timeout: ferry_infer's, or ferry_request_set_timeout_us);
 * a request whose deadline passes first fails with FERRY_ETIMEDOUT, one
 * without a deadline with FERRY_EPIPE after reconnect_ms, one lost more
 * than max_retries times with the error it was lost with.  Tensors in the
 * shared arena survive: the client keeps its segment's memfd and hands it
 * to the next local broker, which takes it over (its header and rings are
 * made anew, the arena's bytes kept), so every pointer into the arena
 * stays valid; after a failover to a remote endpoint the tensors are read
 * from the same arena.  CUDA regions belong to the session that went
 * away: requests that use one fail with FERRY_UNAVAILABLE; register again.
 *
 * Errors of the local socket: FERRY_ECONNREFUSED when no broker listens
 * there, FERRY_EINVAL when the path is not a socket (a directory, a
 * file), FERRY_EPERM when this user may not open it; ferry_last_error()
 * says which, and what to do (for example set $FERRY_SOCKET).
 *
 * TLS (grpcs:// only; grpc:// is always plaintext), from PEM files named
 * by the environment: $FERRY_GRPC_TLS_CA, the CA that signed the server's
 * certificate (unset: gRPC's default roots); $FERRY_GRPC_TLS_CERT and
 * $FERRY_GRPC_TLS_KEY, the client's certificate chain and private key for
 * mutual TLS (both or neither).  The server's certificate must name the
 * host of the address.  A file that cannot be read, or a certificate
 * without its key, is FERRY_EINVAL with the reason; a failed handshake is
 * FERRY_ECONNREFUSED ("cannot reach the gRPC server at host:port over
 * TLS: ...").
 *
 * Over gRPC the same calls work with these differences: tensors live in
 * the client's own memory (one copy into the request message, one out of
 * the response) instead of a shared arena; FERRY_ECONNREFUSED means the
 * server could not be reached (within 5 s); a request's timeout is also
 * its gRPC deadline; queue_depth bounds the requests in flight over the
 * one channel (default 256); the wait policy does not apply (completions
 * are waited for in gRPC's completion queue).
 */
FERRY_API int ferry_connect(ferry_client **out, const char *address,
			    const ferry_options *opts);

/*
 * ferry_connect_list - ferry_connect on endpoints[0 .. n), in order of
 * preference, each one address as ferry_connect takes it (commas
 * included: "grpc://ipv4:10.0.0.1:8001,10.0.0.2:8001" is one gRPC target
 * that balances over two brokers).  No $FERRY_SERVER, no autostart.
 * Since 0.2.
 */
FERRY_API int ferry_connect_list(ferry_client **out, const char *const *endpoints, int n,
				 const ferry_options *opts);

/*
 * ferry_connect_wait - ferry_connect, retried until a broker answers or
 * timeout_ns passes (< 0: forever): for a job that starts before its
 * broker.  A client with FERRY_F_NO_RECONNECT, after FERRY_EPIPE,
 * ferry_close()s the old client, reconnects with this, gets the models
 * again and makes new requests (the old ones, their tensors and model
 * handles belonged to the old session).  Returns 0, or
 * the last connect error (FERRY_ECONNREFUSED) when the time ran out.
 */
FERRY_API int ferry_connect_wait(ferry_client **out, const char *address,
				 const ferry_options *opts, int64_t timeout_ns);

/*
 * ferry_close - end the session: requests still in flight are abandoned
 * (the broker drops their results), every model and the arena are released.
 * Requests of this client must not be used afterwards except by
 * ferry_request_free().
 */
FERRY_API void ferry_close(ferry_client *c);

/* Detailed message of the calling thread's last failed ferry call. */
FERRY_API const char *ferry_last_error(void);

/*
 * ferry_version - the version of the libferry running ("0.1.0"): static,
 * never NULL.  FERRY_VERSION_STRING (ferry/version.h) is the version of the
 * headers a program was compiled with.
 */
FERRY_API const char *ferry_version(void);

/* ---------------------------------------------------------------------- */
/* Models                                                                  */

/*
 * ferry_model_get - look a model version up on the broker
 *
 * version: a version number or FERRY_LATEST.  The model stays valid until
 * ferry_close(); asking twice returns the same object.
 */
FERRY_API int ferry_model_get(ferry_client *c, const char *name,
			      int64_t version, ferry_model **out);

/* Names of the broker's models: calls fn once per model version. */
FERRY_API int ferry_model_list(ferry_client *c,
			       void (*fn)(void *arg, const char *name,
					  int64_t version, const char *state),
			       void *arg);

FERRY_API const char *ferry_model_name(const ferry_model *m);
FERRY_API int64_t ferry_model_version(const ferry_model *m);
/* 0 when the model does not batch (tensors have no batch dimension). */
FERRY_API int ferry_model_max_batch_size(const ferry_model *m);
FERRY_API int ferry_model_ninputs(const ferry_model *m);
FERRY_API int ferry_model_noutputs(const ferry_model *m);
/*
 * Metadata of input / output i (config order): name, dtype and dims without
 * the batch dimension (-1 = variable).  Pointers valid while the model is.
 * Any out-pointer may be NULL.
 */
FERRY_API int ferry_model_input(const ferry_model *m, int i, const char **name,
				ferry_dtype *dtype, const int64_t **dims,
				int *ndims);
FERRY_API int ferry_model_output(const ferry_model *m, int i,
				 const char **name, ferry_dtype *dtype,
				 const int64_t **dims, int *ndims);

/* Triton's statistics of one model version, cumulative since it loaded. */
typedef struct ferry_model_stats {
	const char *name;           /* valid during the callback */
	int64_t version;
	uint64_t success, failure;  /* requests */
	uint64_t inference_count;   /* inferences (a batch of n counts n) */
	uint64_t execution_count;   /* model executions (a batch counts once) */
	uint64_t queue_ns, compute_input_ns, compute_infer_ns, compute_output_ns;
	uint64_t batch_executions[65]; /* [n]: executions of batch size n;
					  [64]: 64 and above */
} ferry_model_stats;

/*
 * ferry_model_statistics - the broker's statistics of model `name` (NULL:
 * every model) and `version` (FERRY_LATEST: every version): fn once per
 * model version.  Over the local socket and over gRPC (ModelStatistics).
 * Returns the number of versions reported or a negative error.
 */
FERRY_API int ferry_model_statistics(ferry_client *c, const char *name, int64_t version,
				     void (*fn)(void *arg, const ferry_model_stats *s),
				     void *arg);

/*
 * ferry_model_load - load model `name` of the broker's repository, or
 * reload it if it serves (its old versions serve until the new ones have
 * loaded); ferry_model_unload - make it unavailable once its requests in
 * flight finish.  Both return when the broker is done.  Over gRPC:
 * RepositoryModelLoad / RepositoryModelUnload.  A reload fails no request:
 * those queued on an old version run on it; one sent on an old version
 * afterwards goes again, by itself, to the model as ferry_model_get() was
 * asked for it (FERRY_LATEST: the newest version now; over shared memory
 * ferry_model_version() then reports it), unless the client has
 * FERRY_F_NO_RECONNECT (it then fails with FERRY_UNAVAILABLE) or that
 * version is gone or its tensors changed (FERRY_UNAVAILABLE with why).
 */
FERRY_API int ferry_model_load(ferry_client *c, const char *name);
FERRY_API int ferry_model_unload(ferry_client *c, const char *name);

/* ---------------------------------------------------------------------- */
/* Administration (what ferryctl shows and does)                          */
/*
 * The structs below are filled by libferry and read by the caller; later
 * versions may add fields at their end, so never allocate one yourself.
 * Over gRPC some fields are unknown, as each says.
 */

/*
 * ferry_connect_admin - a client that looks at and administers a broker
 * without a session: no shared arena, no rings, and it does not count
 * among the broker's sessions (ferryctl uses it).  address as for
 * ferry_connect(), except that NULL means the local socket alone
 * ($FERRY_SOCKET, else the default path): no $FERRY_SERVER fallback and
 * no autostart.  The model, statistics, status and load calls work;
 * ferry_request_new() answers FERRY_ENOTSUP.  Free with ferry_close().
 */
FERRY_API int ferry_connect_admin(ferry_client **out, const char *address);

/* One model version, as ferry_model_list_info() reports it. */
typedef struct ferry_model_info {
	const char *name;
	int64_t version;            /* -1: a model of the repository that
				       has no version loaded (gRPC) */
	const char *state;          /* "READY", "UNAVAILABLE", "LOADING", ... */
	const char *reason;         /* why it is not ready; "" when it is */
	const char *backend;        /* NULL: unknown (gRPC) */
	int max_batch_size;         /* 0: no batching; -1: unknown (gRPC) */
} ferry_model_info;

/*
 * ferry_model_list_info - every model version with its state and why it
 * is not ready: fn once per version, with m valid during the call.  Over
 * the local socket and over gRPC (RepositoryIndex).  Returns the number
 * of versions or a negative error.
 */
FERRY_API int ferry_model_list_info(ferry_client *c,
				    void (*fn)(void *arg, const ferry_model_info *m),
				    void *arg);

/* The broker as ferry_server_status_get() reports it. */
typedef struct ferry_server_status {
	const char *name;           /* "ferryd", or the gRPC server's name */
	const char *version;        /* the server's version */
	const char *address;        /* the endpoint: a socket path, host:port */
	const char *transport;      /* "local" or "grpc" */
	/* Known over the local socket only (-1 / NULL over gRPC): */
	int64_t uptime_ns;          /* since the broker started */
	int64_t cpu_ns;             /* the broker's CPU time so far */
	const char *event_loop;     /* "io_uring" or "epoll" */
	int wait_policy;            /* the broker's ferry_wait */
	int sessions, max_sessions; /* client sessions now, and the limit */
	int gpus;                   /* CUDA devices the broker sees */
	/* The protocol extensions the gRPC server announces (ServerMetadata);
	 * none over the local socket. */
	int nextensions;
	const char *const *extensions;
} ferry_server_status;

/*
 * ferry_server_status_get - the broker's status (over gRPC:
 * ServerMetadata).  *out is the caller's: every string in it lives as
 * long as it does; free it with ferry_server_status_free().
 */
FERRY_API int ferry_server_status_get(ferry_client *c, ferry_server_status **out);
FERRY_API void ferry_server_status_free(ferry_server_status *s);

/* One client session of the broker. */
typedef struct ferry_session_info {
	uint64_t id;
	uint32_t pid, uid;          /* of the client process */
	const char *name;           /* ferry_options.client_name */
	uint64_t arena_bytes;
	uint32_t depth;             /* requests it may have in flight */
	uint32_t inflight;
	uint64_t completed, failed; /* requests so far */
} ferry_session_info;

/*
 * ferry_session_list - the broker's client sessions: fn once per session,
 * with s valid during the call.  Local socket only: FERRY_ENOTSUP over
 * gRPC.  Returns the number of sessions or a negative error.
 */
FERRY_API int ferry_session_list(ferry_client *c,
				 void (*fn)(void *arg, const ferry_session_info *s),
				 void *arg);

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

/* A new, empty request for model m.  Free with ferry_request_free(). */
FERRY_API int ferry_request_new(ferry_model *m, ferry_request **out);

/*
 * ferry_request_input - allocate an input tensor in the shared arena
 *
 * dims include the batch dimension when the model batches.  *data points
 * at dtype_size x elements bytes of shared memory to fill in place before
 * submitting.  For BYTES use ferry_request_input_bytes().  Calling it again
 * for the same name replaces the tensor.  -ENOMEM when the arena is full.
 */
FERRY_API int ferry_request_input(ferry_request *r, const char *name,
				  ferry_dtype dtype, const int64_t *dims,
				  int ndims, void **data);

/*
 * ferry_request_input_bytes - the same with an explicit byte size, for
 * BYTES tensors (elements serialized as a 4-byte little-endian length then
 * the bytes) or any dtype whose buffer the caller sizes.
 */
FERRY_API int ferry_request_input_bytes(ferry_request *r, const char *name,
					ferry_dtype dtype, const int64_t *dims,
					int ndims, size_t bytes, void **data);

/*
 * ferry_request_want_output - ask for output `name` only (by default every
 * output is returned), with capacity bytes of room (0 = computed from the
 * model's dims and the request's batch size; required for outputs whose
 * size cannot be computed, such as BYTES).
 */
FERRY_API int ferry_request_want_output(ferry_request *r, const char *name,
					size_t capacity);

/* Per-request options: priority (0 = the model's default level) and a
 * queue timeout in microseconds (0 = the model's default). */
FERRY_API int ferry_request_set_priority(ferry_request *r, uint32_t priority);
FERRY_API int ferry_request_set_timeout_us(ferry_request *r, uint64_t us);

/*
 * ferry_request_reset - forget outputs and status so the request can be
 * submitted again; inputs keep their buffers (refill them in place).
 */
FERRY_API int ferry_request_reset(ferry_request *r);

/*
 * ferry_request_free - release the request and its arena buffers.  A request
 * still in flight is released when its completion arrives.
 */
FERRY_API void ferry_request_free(ferry_request *r);

/* ---------------------------------------------------------------------- */
/* CUDA IPC tensors (local broker only)                                    */

/*
 * ferry_cuda_register - share a CUDA device buffer with the broker
 *
 * dev_ptr must be the start of a cudaMalloc allocation (CUDA IPC shares
 * whole allocations) of at least bytes.  libferry loads the CUDA runtime
 * (libcudart.so) the first time this is called; jobs that never call it
 * never need CUDA.  The broker opens the handle once for the session and
 * checks the allocation's size; then ferry_request_input_cuda() and
 * ferry_request_output_cuda() name parts of it, and the broker's GPU
 * instances copy from and to it on the card (no host round trip).  Only
 * models served by KIND_GPU instances of a backend that takes CUDA memory
 * (the onnx backend) accept such tensors; others answer FERRY_EINVAL.
 *
 * The buffer must stay allocated until ferry_cuda_release().  Errors:
 * FERRY_ENOTSUP (a remote client, or libferry built without CUDA),
 * FERRY_UNAVAILABLE (no CUDA runtime here, or no CUDA in the broker),
 * FERRY_EINVAL (not device memory, not the start of its allocation, a size
 * larger than the allocation, a handle the broker cannot open).
 */
FERRY_API int ferry_cuda_register(ferry_client *c, void *dev_ptr, size_t bytes,
				  ferry_cuda_region **out);

/*
 * ferry_cuda_register_handle - the same from a cudaIpcMemHandle_t the
 * caller made (handle_len 64), with no CUDA runtime in libferry: the card
 * is named by pci_bus_id (cudaDeviceGetPCIBusId; NULL = the ordinal
 * device, which must then mean the same card to the broker).  dev_ptr is
 * the caller's address of the allocation, returned by
 * ferry_request_output() for outputs in it; it may be NULL.
 */
FERRY_API int ferry_cuda_register_handle(ferry_client *c, const void *ipc_handle,
					 size_t handle_len, const char *pci_bus_id,
					 int device, void *dev_ptr, size_t bytes,
					 ferry_cuda_region **out);

/*
 * ferry_cuda_release - the broker forgets the region (it closes its
 * mapping once the requests in flight with it complete, those submitted
 * before the release included) and the handle is freed.  Call it for every region, also after ferry_close() (then it only
 * frees the handle).
 */
FERRY_API int ferry_cuda_release(ferry_cuda_region *region);

/* The device address given when the region was registered. */
FERRY_API void *ferry_cuda_region_pointer(const ferry_cuda_region *region);

/*
 * ferry_request_input_cuda - input `name` lies in region at offset (a
 * multiple of 8), its size computed from dtype and dims (fixed-size dtypes
 * only).  Fill it on the device before submitting; the broker reads it
 * during the request.
 */
FERRY_API int ferry_request_input_cuda(ferry_request *r, const char *name,
				       ferry_dtype dtype, const int64_t *dims, int ndims,
				       ferry_cuda_region *region, size_t offset);

/*
 * ferry_request_output_cuda - write output `name` into region at offset,
 * with capacity bytes of room (0 = computed as for
 * ferry_request_want_output()).  ferry_request_output() then gives the
 * device address (region pointer + offset) as its data.
 */
FERRY_API int ferry_request_output_cuda(ferry_request *r, const char *name,
					ferry_cuda_region *region, size_t offset,
					size_t capacity);

/* ---------------------------------------------------------------------- */
/* Inference                                                               */

/*
 * ferry_infer - submit r and wait for its completion.
 *
 * timeout_ns < 0 waits forever; it is also sent to the broker as the
 * request's queue timeout.  Returns 0 or the request's error (the broker's
 * message in ferry_last_error()).  -ETIMEDOUT leaves the request in flight:
 * wait again with ferry_request_wait() or free it.
 */
FERRY_API int ferry_infer(ferry_client *c, ferry_request *r, int64_t timeout_ns);

typedef void (*ferry_callback)(ferry_request *r, int status, void *arg);

/*
 * ferry_infer_async - submit r and return at once.
 *
 * cb (may be NULL) runs exactly once, on the thread that reaps the
 * completion (inside ferry_poll() or a ferry_request_wait()).  Many requests
 * may be in flight per thread, up to the queue depth: past it, -EAGAIN.
 */
FERRY_API int ferry_infer_async(ferry_client *c, ferry_request *r,
				ferry_callback cb, void *arg);

/* Wake the broker for requests a FERRY_F_LAZY_DOORBELL client submitted
 * (a no-op otherwise, and over gRPC). */
FERRY_API int ferry_flush(ferry_client *c);

/*
 * ferry_client_arena - where the session's shared arena lies in this
 * process: every tensor that ferry_request_input() hands out, and every
 * output the broker writes, is in [*base, *base + *bytes).  For bindings
 * and tests that check a buffer is shared memory, not a copy.  Valid until
 * ferry_close(), across reconnects and failovers (a client that failed
 * over to a remote endpoint keeps its arena and its tensors there).
 * FERRY_ENOTSUP for a client that never had a local broker (gRPC only)
 * and for an admin client (no arena).  Since 0.2.
 */
FERRY_API int ferry_client_arena(ferry_client *c, void **base, size_t *bytes);

/*
 * ferry_poll - reap completions, running their callbacks; waits up to
 * timeout_ns (0 = don't wait, < 0 = forever) for at least min_complete.
 * Returns the number reaped or a negative error (-EPIPE if the broker went
 * away and the client does not reconnect, FERRY_F_NO_RECONNECT: every
 * request in flight then completes with -EPIPE).  Reconnecting runs
 * inside this call and the other calls that wait.
 */
FERRY_API int ferry_poll(ferry_client *c, int min_complete, int64_t timeout_ns);

/* Wait for one submitted request; 0 or its error; -ETIMEDOUT. */
FERRY_API int ferry_request_wait(ferry_request *r, int64_t timeout_ns);

/* 1 when r has completed, 0 while in flight. */
FERRY_API int ferry_request_done(const ferry_request *r);

/* The status of a completed request (0 or its error). */
FERRY_API int ferry_request_status(const ferry_request *r);

/*
 * ferry_request_output - a completed request's output, read in place
 *
 * data points into the shared arena and stays valid until the request is
 * freed, reset or resubmitted.  Any out-pointer may be NULL.
 */
FERRY_API int ferry_request_output(const ferry_request *r, const char *name,
				   ferry_dtype *dtype, const int64_t **dims,
				   int *ndims, const void **data, size_t *bytes);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_FERRY_H */
