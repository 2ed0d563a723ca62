/* SPDX-License-Identifier: MIT */
/*
 * rpc.c - one unary gRPC call on gRPC's core C API (see rpc.h).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

#include <ferry/errors.h>

#include "proto/rpc.h"

gpr_timespec rpc_deadline(int64_t timeout_ns)
{
	if (timeout_ns < 0)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	if (timeout_ns == 0)
		return gpr_inf_past(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_nanos(timeout_ns, GPR_TIMESPAN));
}

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	protobuf_c_message_pack(m, buf);
	grpc_slice s = grpc_slice_new(buf, len, free);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

ProtobufCMessage *rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
	grpc_byte_buffer_reader rd;
	if (!bb || !grpc_byte_buffer_reader_init(&rd, bb))
		return NULL;
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s),
							GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	return m;
}

/* service_config: a JSON service config for the channel, or NULL. */
static grpc_channel *rpc__channel(const char *target, grpc_channel_credentials *creds,
				  const char *service_config)
{
	grpc_arg args[3];
	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = INT32_MAX;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = INT32_MAX;
	args[2].type = GRPC_ARG_STRING;
	args[2].key = GRPC_ARG_SERVICE_CONFIG;
	args[2].value.string = (char *)service_config;
	grpc_channel_args ca = { .num_args = service_config ? 3 : 2, .args = args };
	return grpc_channel_create(target, creds, &ca);
}

grpc_channel *rpc_channel(const char *target, grpc_channel_credentials *creds)
{
	return rpc__channel(target, creds, NULL);
}

grpc_channel *rpc_channel_balanced(const char *target, grpc_channel_credentials *creds)
{
	return rpc__channel(target, creds, "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}");
}

static int rpc__fail(struct rpc_result *res, grpc_status_code st, int code,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int rpc__fail(struct rpc_result *res, grpc_status_code st, int code,
		     const char *fmt, ...)
{
	va_list ap;
	if (!res)
		return code;
	res->status = st;
	res->code = code;
	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	return code;
}

int rpc_call_start(struct rpc_call *k, grpc_channel *ch, grpc_completion_queue *cq,
		   const char *method, gpr_timespec deadline, grpc_byte_buffer *send,
		   void *tag, struct rpc_result *res)
{
	grpc_op ops[6];

	memset(k, 0, sizeof(*k));
	k->send = send;
	k->status = GRPC_STATUS_UNKNOWN;
	k->details = grpc_empty_slice();
	grpc_metadata_array_init(&k->md_init);
	grpc_metadata_array_init(&k->md_trail);
	if (!send) {
		grpc_metadata_array_destroy(&k->md_init);
		grpc_metadata_array_destroy(&k->md_trail);
		return rpc__fail(res, GRPC_STATUS_RESOURCE_EXHAUSTED, FERRY_ENOMEM,
				 "out of memory for the %s message", method);
	}
	k->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
					   grpc_slice_from_static_string(method), NULL,
					   deadline, NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = k->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &k->md_init;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &k->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &k->md_trail;
	ops[5].data.recv_status_on_client.status = &k->status;
	ops[5].data.recv_status_on_client.status_details = &k->details;
	if (!k->call || grpc_call_start_batch(k->call, ops, 6, tag, NULL) != GRPC_CALL_OK) {
		if (k->call)
			grpc_call_unref(k->call);
		k->call = NULL;
		grpc_byte_buffer_destroy(k->send);
		k->send = NULL;
		grpc_metadata_array_destroy(&k->md_init);
		grpc_metadata_array_destroy(&k->md_trail);
		return rpc__fail(res, GRPC_STATUS_INTERNAL, FERRY_EPROTO,
				 "gRPC: cannot start a call of %s", method);
	}
	return 0;
}

int rpc_status_code(grpc_status_code s, const char *details)
{
	switch (s) {
	case GRPC_STATUS_OK: return 0;
	case GRPC_STATUS_NOT_FOUND: return FERRY_ENOENT;
	case GRPC_STATUS_INVALID_ARGUMENT: return FERRY_EINVAL;
	case GRPC_STATUS_UNAVAILABLE: return FERRY_UNAVAILABLE;
	case GRPC_STATUS_DEADLINE_EXCEEDED: return FERRY_ETIMEDOUT;
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
		return details && strstr(details, "larger than max") ? FERRY_E2BIG : FERRY_ENOSPC;
	case GRPC_STATUS_UNIMPLEMENTED: return FERRY_ENOTSUP;
	case GRPC_STATUS_PERMISSION_DENIED: return FERRY_EPERM;
	case GRPC_STATUS_ALREADY_EXISTS: return FERRY_EBUSY;
	case GRPC_STATUS_CANCELLED: return FERRY_ECANCELED;
	default: return FERRY_EPROTO;
	}
}

/* Codes of this build's table: a newer server's code that this client
 * cannot name falls back to the status mapping. */
static bool rpc__known(int code)
{
	switch (code) {
#define RPC__CASE(name, value, msg) case (value):
	FERRY_ERRNO_MAP(RPC__CASE)
#undef RPC__CASE
		return true;
	default:
		return false;
	}
}

int rpc_trailer_code(const grpc_metadata_array *md)
{
	for (size_t i = 0; md && i < md->count; i++) {
		const grpc_metadata *e = &md->metadata[i];
		if (grpc_slice_str_cmp(e->key, RPC_FERRY_CODE_KEY))
			continue;
		char v[16];
		size_t n = GRPC_SLICE_LENGTH(e->value);
		if (n == 0 || n >= sizeof(v))
			return 0;
		memcpy(v, GRPC_SLICE_START_PTR(e->value), n);
		v[n] = '\0';
		char *end;
		long code = strtol(v, &end, 10);
		/* the range first: a long that wraps to a known int is not one */
		return *end == '\0' && code < 0 && code > -100000 && rpc__known((int)code)
		       ? (int)code : 0;
	}
	return 0;
}

int rpc_call_end(struct rpc_call *k, const ProtobufCMessageDescriptor *rdesc,
		 ProtobufCMessage **resp, struct rpc_result *res)
{
	struct rpc_result local;
	if (!res)
		res = &local;
	res->status = k->status;
	res->code = 0;
	res->msg[0] = '\0';
	if (resp)
		*resp = NULL;
	if (k->status != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(k->details);
		int code = rpc_trailer_code(&k->md_trail);
		res->code = code ? code : rpc_status_code(k->status, d);
		snprintf(res->msg, sizeof(res->msg), "%s", d && *d ? d : "(no details)");
		gpr_free(d);
	} else if (rdesc) {
		ProtobufCMessage *m = rpc_unpack(k->recv, rdesc);
		if (!m)
			rpc__fail(res, GRPC_STATUS_OK, FERRY_EPROTO, "malformed %s", rdesc->name);
		else if (resp)
			*resp = m;
		else
			protobuf_c_message_free_unpacked(m, NULL);
	}
	grpc_call_unref(k->call);
	k->call = NULL;
	if (k->send)
		grpc_byte_buffer_destroy(k->send);
	if (k->recv)
		grpc_byte_buffer_destroy(k->recv);
	k->send = k->recv = NULL;
	grpc_slice_unref(k->details);
	k->details = grpc_empty_slice();
	grpc_metadata_array_destroy(&k->md_init);
	grpc_metadata_array_destroy(&k->md_trail);
	return res->code;
}

int rpc_unary(grpc_channel *ch, const char *method, const ProtobufCMessage *req,
	      const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp,
	      int64_t timeout_ns, struct rpc_result *res)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	struct rpc_call k;
	int ret;

	if (resp)
		*resp = NULL;
	ret = rpc_call_start(&k, ch, cq, method, rpc_deadline(timeout_ns), rpc_pack(req), &k, res);
	if (!ret) {
		grpc_completion_queue_pluck(cq, &k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		ret = rpc_call_end(&k, rdesc, resp, res);
	}
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return ret;
}
