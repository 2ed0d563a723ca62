/* SPDX-License-Identifier: MIT */
/*
 * http_util.h - a small HTTP/1.1 keep-alive client for the benchmarks: one
 * request at a time per connection, the request's head and body written
 * with one writev(2), the response read into a buffer the connection
 * reuses.  Enough for KServe v2 over HTTP (ferryd, Triton): Content-Length
 * bodies and Triton's Inference-Header-Content-Length.  Prefix hu_.
 *
 * Why not libcurl: what is measured is the server, and a client that
 * costs a few microseconds a request (no URL parsing, header callbacks or
 * connection cache) keeps the client's share of a 2-core machine small
 * and the same for every server it is pointed at; libcurl's own cost per
 * request would be part of every number.
 *
 * Functions return 0 on success and -1 on failure with the reason in
 * hu_error() (per thread).  A connection is used by one thread at a time.
 */
#ifndef FERRY_BENCH_HTTP_UTIL_H
#define FERRY_BENCH_HTTP_UTIL_H

#include <stddef.h>
#include <stdint.h>

const char *hu_error(void);

/* Connect to host (IPv4 dotted or "localhost") : port, TCP_NODELAY. */
struct hu_conn *hu_open(const char *host, int port);
void hu_close(struct hu_conn *c);

/* A response; body points into the connection's buffer, valid until the
 * next request on it. */
struct hu_resp {
	int status;
	const uint8_t *body;
	size_t len;
	size_t header_len;      /* Inference-Header-Content-Length; 0: none */
};

/*
 * hu_request - one request: method, path, extra header lines (each ending
 * in "\r\n"; may be NULL) and a body of len bytes (may be NULL when 0);
 * waits for the whole response.  0 with *r, whatever its status.
 */
int hu_request(struct hu_conn *c, const char *method, const char *path, const char *headers,
	       const void *body, size_t len, struct hu_resp *r);

/*
 * hu_infer_body - a KServe v2 inference request with every input in
 * binary form: the JSON header (inputs with binary_data_size; outputs
 * asked for in binary) followed by the tensors' bytes, in one malloc'd
 * buffer (*body, *len; free it), and its header length for the
 * Inference-Header-Content-Length header (*json_len).  names, datatypes,
 * shapes (ndims[i] dims each) and data / bytes per input.
 */
int hu_infer_body(int nin, const char *const *names, const char *const *datatypes,
		  const int64_t *const *shapes, const int *ndims, const void *const *data,
		  const size_t *bytes, uint8_t **body, size_t *len, size_t *json_len);

/* A tensor of a model's metadata (GET /v2/models/NAME). */
struct hu_tensor {
	char name[128];
	char datatype[16];
	int ndims;
	int64_t shape[8];               /* -1: variable */
};

/* The model's inputs and outputs (at most max of each).  0 or -1. */
int hu_model_metadata(struct hu_conn *c, const char *model, struct hu_tensor *in, int *nin,
		      struct hu_tensor *out, int *nout, int max);

/* The model's statistics summed over its versions (GET .../stats). */
struct hu_stats {
	uint64_t success, inferences, execs, queue_ns, cin_ns, cinf_ns, cout_ns;
};
int hu_model_stats(struct hu_conn *c, const char *model, struct hu_stats *s);

#endif
