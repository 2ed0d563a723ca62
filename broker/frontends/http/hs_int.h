/* SPDX-License-Identifier: MIT */
/*
 * hs_int.h - what the files of the HTTP front end share and nobody else
 * sees.  Prefix hs__ (module-private).
 *
 *   hs_server.c   libmicrohttpd: threads, TLS, reading a request (its
 *                 limits, gzip / deflate), the route table and its
 *                 dispatch, error objects, compression of responses,
 *                 suspending a connection while its request is queued
 *   hs_admin.c    health, metadata, config, statistics, repository,
 *                 shared memory, trace and logging: each the gRPC
 *                 handler of the same call (gs_call_local), rendered
 *   hs_submit.c   inference: parse (hs_infer.c), submit to the scheduler,
 *                 answer from done()
 *   hs_json.c     the output: buffers, JSON, protobuf messages as JSON
 *
 * HANDLERS
 *
 * One table (hs__routes, hs_server.c) names every endpoint: its method,
 * its path pattern ("{}" takes one path segment: a model name, a version,
 * a region name) and its handler.  A handler gets the request (the
 * segments, the body, decompressed) and fills x->out (a JSON body), and
 * returns
 *
 *   0          200 with x->out (an empty body when x->out is empty)
 *   < 0        a ferry code, with the message in x->err: sent as
 *              KServe's error object {"error": "..."} with the HTTP status
 *              of the code (hs__status)
 *   HS_LATER   the request went to the scheduler (inference); its
 *              connection is answered by hs__answer
 */
#ifndef FERRY_HS_INT_H
#define FERRY_HS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/frontends/http/hs_json.h"
#include "broker/frontends/http/hs_server.h"

#define HS_LATER 1
#define HS_MAX_ARGS 2

struct MHD_Connection;
struct MHD_Response;
struct hs__conn;

/* What a handler gets (see HANDLERS). */
struct hs__ctx {
	struct hs__conn *conn;
	struct MHD_Connection *mhd;
	const char *arg[HS_MAX_ARGS];   /* the pattern's "{}" segments, or NULL */
	const uint8_t *body;            /* decompressed; valid during the call */
	size_t len;
	struct hs_buf out;              /* the JSON answer */
	int status;                     /* 0: from the code; else this status */
	char err[1400];
};

typedef int (*hs__handler)(struct hs__ctx *x);

struct hs__route {
	const char *method;             /* "GET" (HEAD too) or "POST" */
	const char *path;               /* "/v2/models/{}/versions/{}/infer" */
	hs__handler handle;
};

/* Fill x->err; returns code (for `return hs__fail(...)`). */
int hs__fail(struct hs__ctx *x, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* True once hs_stop() began (health/ready then says no). */
bool hs__stopping(void);

/*
 * hs__answer - the response of a request that went to the scheduler,
 * from any thread, once: status (a ferry code: 0 is 200) with msg on an
 * error, else resp (taken: a complete response, headers set).  Resumes
 * the connection if its thread suspended it.
 */
void hs__answer(struct hs__conn *c, int status, const char *msg, struct MHD_Response *resp);
/* Does the client accept gzip (1) or deflate (2) for the response? 0: no. */
int hs__accept_encoding(const struct hs__conn *c);
/* Inference-Header-Content-Length of the request (0: none). */
size_t hs__header_length(const struct hs__conn *c);
/* One more / one fewer request in the scheduler (hs_stop waits for 0). */
void hs__pending(long d);
/*
 * hs__response - a response of the JSON `json` (taken) followed by nbin
 * binary parts (pointers kept until free_fn(free_arg) runs, when the
 * response is destroyed), compressed with encoding (hs__accept_encoding)
 * when not 0.  NULL when out of memory (free_fn has then run).
 */
struct MHD_Response *hs__response(struct hs_buf *json, const void *const *bin,
				  const size_t *binlen, int nbin, int encoding,
				  void (*free_fn)(void *), void *free_arg);

/* Handlers (the table in hs_server.c names them). */
int hs__live(struct hs__ctx *x);
int hs__ready(struct hs__ctx *x);
int hs__server_meta(struct hs__ctx *x);
int hs__model_meta(struct hs__ctx *x);
int hs__model_ready(struct hs__ctx *x);
int hs__model_config(struct hs__ctx *x);
int hs__stats(struct hs__ctx *x);
int hs__repo_index(struct hs__ctx *x);
int hs__repo_load(struct hs__ctx *x);
int hs__repo_unload(struct hs__ctx *x);
int hs__shm_status(struct hs__ctx *x);
int hs__shm_register(struct hs__ctx *x);
int hs__shm_unregister(struct hs__ctx *x);
int hs__cuda_status(struct hs__ctx *x);
int hs__cuda_register(struct hs__ctx *x);
int hs__cuda_unregister(struct hs__ctx *x);
int hs__trace_get(struct hs__ctx *x);
int hs__trace_set(struct hs__ctx *x);
int hs__log_get(struct hs__ctx *x);
int hs__log_set(struct hs__ctx *x);
int hs__infer(struct hs__ctx *x);

#endif
