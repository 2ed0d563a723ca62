/* SPDX-License-Identifier: MIT */
/*
 * rpc.h - one unary gRPC call, written once, on gRPC's core C API: a
 * protobuf-c message packed into a byte buffer, the six operations of a
 * unary call, and its outcome read back (status, details, and the ferry
 * error code a ferry server puts in the trailing metadata "ferry-code").
 * Shared by libferry's remote transport (libclient/client_grpc.c), the
 * benchmarks' raw KServe calls (bench/grpc_util.c) and, through those, the
 * tests.  Prefix rpc_.
 *
 * A convenience library (proto/libfrpc.la): linked into libferry it stays
 * private (libferry exports only ferry_*).
 */
#ifndef FERRY_RPC_H
#define FERRY_RPC_H

#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>

/* A KServe v2 method's full name. */
#define RPC_KSERVE(m) "/inference.GRPCInferenceService/" m

/*
 * The trailing metadata key under which a ferry server sends, with every
 * error status, the ferry code (decimal, e.g. "-2004") of the error, so
 * that a client gets the same code over gRPC as over shared memory
 * (gRPC's status codes are coarser: FERRY_DTYPE and FERRY_SHAPE are both
 * INVALID_ARGUMENT).
 */
#define RPC_FERRY_CODE_KEY "ferry-code"

/*
 * One unary call in flight.  Filled by rpc_call_start(), read and released
 * by rpc_call_end(); owned by the thread that started it until its
 * completion is taken from the queue, then by the one that took it.
 */
struct rpc_call {
	grpc_call *call;
	grpc_byte_buffer *send;         /* the request; rpc_call_end destroys it */
	grpc_byte_buffer *recv;         /* the response, when one came */
	grpc_metadata_array md_init, md_trail;
	grpc_status_code status;
	grpc_slice details;
};

/* The outcome of a finished call. */
struct rpc_result {
	grpc_status_code status;        /* the call's gRPC status */
	int code;                       /* 0, or a negative ferry code */
	char msg[512];                  /* why it failed ("" on success) */
};

/* A deadline timeout_ns from now: < 0 never; 0 already past (a wait
 * polls once without blocking: "now + 0" would be rounded up to the next
 * millisecond by gRPC's timers and block until then). */
gpr_timespec rpc_deadline(int64_t timeout_ns);

/* m packed into a new byte buffer (free with grpc_byte_buffer_destroy);
 * NULL when out of memory. */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m);

/* bb unpacked with d (free with protobuf_c_message_free_unpacked); NULL
 * when bb is NULL or malformed. */
ProtobufCMessage *rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d);

/* A channel to target ("host:port") with creds (not consumed) and no limit
 * on message sizes either way (tensors are large).  Destroy with
 * grpc_channel_destroy. */
grpc_channel *rpc_channel(const char *target, grpc_channel_credentials *creds);
/* The same, balancing calls round-robin over every address target
 * resolves to (a DNS name of several brokers, or "ipv4:a:p,b:q"): gRPC's
 * round_robin policy, through the channel's service config.  Calls skip
 * the addresses that do not answer. */
grpc_channel *rpc_channel_balanced(const char *target, grpc_channel_credentials *creds);

/*
 * rpc_call_start - start a unary call of method on ch, whose completion
 * (tag) is delivered to cq, with deadline.  The call takes send (also on
 * failure).  0, or a ferry code with the reason in res (may be NULL).
 */
int rpc_call_start(struct rpc_call *k, grpc_channel *ch, grpc_completion_queue *cq,
		   const char *method, gpr_timespec deadline, grpc_byte_buffer *send,
		   void *tag, struct rpc_result *res);

/*
 * rpc_call_end - after the call's completion: its outcome in res and, when
 * it succeeded and rdesc is given, the response unpacked into *resp (NULL
 * resp: unpacked to check it, then freed).  Releases everything the call
 * held.  Returns res->code: 0, the server's ferry code, or one mapped from
 * the gRPC status; FERRY_EPROTO for a response that does not unpack.
 */
int rpc_call_end(struct rpc_call *k, const ProtobufCMessageDescriptor *rdesc,
		 ProtobufCMessage **resp, struct rpc_result *res);

/*
 * rpc_unary - one blocking unary call on its own queue: rpc_call_start,
 * wait, rpc_call_end.  timeout_ns < 0: no deadline.  Threads may call it
 * at once on one channel.
 */
int rpc_unary(grpc_channel *ch, const char *method, const ProtobufCMessage *req,
	      const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
	      int64_t timeout_ns, struct rpc_result *res);

/* The ferry code for a gRPC status without "ferry-code" (details picks
 * between codes that share a status). */
int rpc_status_code(grpc_status_code s, const char *details);

/* The "ferry-code" of trailing metadata when it names a code this build
 * knows, else 0. */
int rpc_trailer_code(const grpc_metadata_array *md);

#endif /* FERRY_RPC_H */
