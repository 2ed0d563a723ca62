/* SPDX-License-Identifier: MIT */
/*
 * remote.h - libferry's remote transport: the same ferry.h calls over the
 * KServe v2 gRPC protocol (ferryd's front end or any Triton-compatible
 * server).  Private to libclient; prefix fr_.  client.c and request.c call
 * these when ferry_client.remote is set.
 *
 * Memory: a remote request's tensors live in the client's own memory
 * (malloc); fc_tensor.off holds the buffer's address (fc_tensor_ptr).
 * Inputs are copied once into the gRPC message; outputs once out of it.
 *
 * Threads: many requests fly over one channel; completions arrive on one
 * completion queue that whichever thread waits (ferry_poll,
 * ferry_request_wait) drains, one at a time (reap_lock), like the local
 * transport's CQ.
 */
#ifndef FERRY_REMOTE_H
#define FERRY_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include <ferry/ferry.h>

/* address: "grpc://host:port" or "host:port". */
int fr_connect(ferry_client **out, const char *address, const ferry_options *o);
void fr_close(ferry_client *c);
int fr_model_get(ferry_client *c, const char *name, int64_t version, ferry_model **out);
/* RepositoryModelLoad / RepositoryModelUnload. */
int fr_model_admin(ferry_client *c, const char *name, bool unload);
/* ModelStatistics over gRPC, reported as ferry_model_statistics does. */
int fr_model_statistics(ferry_client *c, const char *name, int64_t version,
			void (*fn)(void *arg, const ferry_model_stats *s), void *arg);
int fr_model_list(ferry_client *c,
		  void (*fn)(void *arg, const char *name, int64_t version, const char *state),
		  void *arg);
/* After the common checks of ferry_infer_async (inputs set, not busy). */
int fr_infer_async(ferry_client *c, ferry_request *r, ferry_callback cb, void *arg);
/* Wait until pred(arg) or the timeout, reaping completions meanwhile. */
int fr_wait(ferry_client *c, bool (*pred)(void *), void *arg, int64_t timeout_ns);
int fr_poll(ferry_client *c, int min_complete, int64_t timeout_ns);

#endif
