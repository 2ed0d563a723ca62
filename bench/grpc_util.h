/* SPDX-License-Identifier: MIT */
/*
 * grpc_util.h - raw KServe v2 gRPC calls for the benchmarks, made as
 * tritonclient and perf_analyzer make them, on gRPC's core C API: unary
 * ModelInfer calls (blocking, or asynchronous on a channel's completion
 * queue) and Triton's system shared-memory extension (tensors in
 * registered POSIX shm regions, only descriptors on the wire).  Prefix
 * gu_.  Shared by ferry-grpc-bench, ferry-bench latency and
 * ferry-bench-load; works against any KServe v2 server.
 *
 * Functions return 0 (or a count) on success and -1 on failure, with the
 * reason in gu_error() (per thread).  Not for use across fork(): open
 * channels in the process that uses them.
 */
#ifndef FERRY_BENCH_GRPC_UTIL_H
#define FERRY_BENCH_GRPC_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The message of the calling thread's last failure. */
const char *gu_error(void);

/*
 * gu_open - a channel to target ("host:port", or "grpc://host:port") with
 * its completion queue for asynchronous calls, once the server answers
 * ServerLive (5 s at most).  NULL on failure.  Close with gu_close().
 */
struct gu_chan *gu_open(const char *target);
/* Close a channel; every call started on it must have completed. */
void gu_close(struct gu_chan *c);

/*
 * gu_call - one blocking unary call of any KServe v2 method ("/inference.
 * GRPCInferenceService/Name") with request req; the response is unpacked
 * with rdesc into *resp when resp is not NULL (free it with
 * protobuf_c_message_free_unpacked).  0, or -1 with gu_error() and the
 * call's gRPC status code in gu_status() (also set on success: 0).
 */
struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;
int gu_call(struct gu_chan *c, const char *method, const struct ProtobufCMessage *req,
	    const struct ProtobufCMessageDescriptor *rdesc, struct ProtobufCMessage **resp,
	    int64_t timeout_ns);
int gu_status(void);

/* A POSIX shared-memory region this process created and mapped. */
struct gu_region {
	char name[64];      /* the name registered with the server */
	char key[96];       /* the shm_open key, "/ferry_gu_<pid>_<name>" */
	void *base;
	size_t bytes;
	int fd;
};
/* Create and map a zero-filled region; free with gu_region_destroy(). */
int gu_region_create(struct gu_region *r, const char *name, size_t bytes);
/* Unmap and unlink (the server may keep its own mapping until it
 * unregisters the region). */
void gu_region_destroy(struct gu_region *r);
/* SystemSharedMemoryRegister / Unregister (name NULL: every region). */
int gu_region_register(struct gu_chan *c, const struct gu_region *r);
int gu_region_unregister(struct gu_chan *c, const char *name);

/*
 * One tensor of a ModelInfer request.  Inputs: name, datatype, shape and
 * either region (the shm region's registered name, offset and bytes) or
 * data / bytes (sent as raw_input_contents).  Outputs: name, and region /
 * offset / bytes to have the server write it there; region NULL: returned
 * in the response.  The strings and data are copied by gu_infer_new.
 */
struct gu_tensor {
	const char *name;
	const char *datatype;
	const int64_t *shape;
	int ndims;
	const char *region;
	uint64_t offset, bytes;
	const void *data;
};

/*
 * gu_infer_new - a ModelInfer request for model, packed once (the same
 * bytes are sent by every call; with shm tensors they are a few hundred
 * bytes of descriptors).  NULL on failure; free with gu_infer_free() when
 * no call of it is in flight.  One call at a time per request.
 */
struct gu_infer *gu_infer_new(const char *model, const struct gu_tensor *in, int nin,
			      const struct gu_tensor *out, int nout);
void gu_infer_free(struct gu_infer *q);

/* One blocking call of q on its own queue (threads may each call their
 * own requests on one channel).  0 when the server answered OK. */
int gu_infer(struct gu_chan *c, struct gu_infer *q);

/* Start q on c's completion queue; tag is handed back by gu_next(). */
int gu_infer_start(struct gu_chan *c, struct gu_infer *q, void *tag);

/*
 * gu_next - wait up to timeout_ns (0: do not wait at all, < 0: forever)
 * for one asynchronous call of c to complete.  1 with *tag (the one given
 * to gu_infer_start) and *status (0, or -1 with the reason in gu_error()),
 * 0 on timeout.  gRPC's timers count whole milliseconds, so a wait that
 * no completion ends lasts up to 1 ms longer than asked; timeout 0 never
 * blocks.
 */
int gu_next(struct gu_chan *c, int64_t timeout_ns, void **tag, int *status);

/*
 * gu_echo_serve - gRPC's floor: a unary server on gRPC's core API with no
 * ferry in it, laid out as ferryd's front end is (`threads` completion
 * queues, each with its thread and 8 calls requested), that answers every
 * call of any method, without decoding it, with the message `reply` (len
 * bytes, copied).  Serves on 127.0.0.1:port until the process is killed;
 * call it in a process of its own that has not used gRPC (fork first).
 * -1 when it cannot listen.
 */
int gu_echo_serve(int port, int threads, const void *reply, size_t len);

/*
 * gu_echo_serve_methods - the same server with a reply per method: a call
 * of method ("ServerLive", the last part of the path) gets its bytes, any
 * other the reply whose method is NULL, or UNIMPLEMENTED when there is
 * none.  n is 1 to GU_ECHO_MAX_REPLIES; the bytes are copied, the names
 * are kept (they must outlive the server, which runs until killed).
 */
#define GU_ECHO_MAX_REPLIES 8
struct gu_echo_reply {
	const char *method;
	const void *bytes;
	size_t len;
};
int gu_echo_serve_methods(int port, int threads, const struct gu_echo_reply *replies, int n);

/* The packed ModelInferResponse of one output tensor (what ferryd answers
 * for an identity model): malloc'd into *out, *len. */
int gu_infer_response_bytes(const char *model, const char *output, const char *datatype,
			    const int64_t *shape, int ndims, const void *data, size_t bytes,
			    uint8_t **out, size_t *len);

#endif
