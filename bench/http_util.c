/* SPDX-License-Identifier: MIT */
/*
 * http_util.c - the benchmarks' HTTP/1.1 keep-alive client (http_util.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench/http_util.h"

struct hu_conn {
	int fd;
	char host[64];
	uint8_t *buf;
	size_t cap;
};

static _Thread_local char hu__err[256];

const char *hu_error(void)
{
	return hu__err;
}

static int hu__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int hu__fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(hu__err, sizeof(hu__err), fmt, ap);
	va_end(ap);
	return -1;
}

struct hu_conn *hu_open(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		hu__fail("%s: not an IPv4 address", host);
		return NULL;
	}
	struct hu_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		hu__fail("out of memory");
		return NULL;
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		hu__fail("connect %s:%d: %s", host, port, strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		return NULL;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(c->host, sizeof(c->host), "%s:%d", host, port);
	return c;
}

void hu_close(struct hu_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}

static int hu__reserve(struct hu_conn *c, size_t n)
{
	if (n <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 65536;
	while (cap < n)
		cap *= 2;
	uint8_t *b = realloc(c->buf, cap);
	if (!b)
		return hu__fail("out of memory");
	c->buf = b;
	c->cap = cap;
	return 0;
}

/* The value of header `name` in the head [h, e), or NULL. */
static const char *hu__header(const char *h, const char *e, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	for (const char *p = h; p < e;) {
		const char *eol = memchr(p, '\n', (size_t)(e - p));
		if (!eol)
			eol = e;
		if ((size_t)(eol - p) > nl + 1 && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < eol && *v == ' ')
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

int hu_request(struct hu_conn *c, const char *method, const char *path, const char *headers,
	       const void *body, size_t len, struct hu_resp *r)
{
	char head[2048];
	int hl = snprintf(head, sizeof(head),
			  "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n%s\r\n", method, path,
			  c->host, len, headers ? headers : "");
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return hu__fail("request head too long");
	struct iovec iov[2] = { { head, (size_t)hl }, { (void *)body, len } };
	int niov = len ? 2 : 1;
	size_t left = (size_t)hl + len;
	while (left) {
		ssize_t n = writev(c->fd, iov, niov);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return hu__fail("write: %s", strerror(errno));
		}
		left -= (size_t)n;
		for (int i = 0; i < niov && n; i++) {
			size_t k = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= (ssize_t)k;
		}
	}
	/* The head, then Content-Length bytes. */
	size_t have = 0, need = 0, hend = 0;
	for (;;) {
		if (hu__reserve(c, have + 65536))
			return -1;
		ssize_t n = read(c->fd, c->buf + have, c->cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return hu__fail("read: %s", n ? strerror(errno) : "connection closed");
		have += (size_t)n;
		if (!hend) {
			uint8_t *e = memmem(c->buf, have, "\r\n\r\n", 4);
			if (!e)
				continue;
			hend = (size_t)(e - c->buf) + 4;
			const char *h = (const char *)c->buf, *he = (const char *)e;
			if (have < 12 || strncmp(h, "HTTP/1.", 7))
				return hu__fail("not an HTTP response");
			r->status = atoi(h + 9);
			size_t vl;
			const char *v = hu__header(h, he, "Content-Length", &vl);
			if (!v)
				return hu__fail("a response without Content-Length");
			need = hend + strtoull(v, NULL, 10);
			v = hu__header(h, he, "Inference-Header-Content-Length", &vl);
			r->header_len = v ? strtoull(v, NULL, 10) : 0;
			if (hu__reserve(c, need))
				return -1;
		}
		if (have >= need)
			break;
	}
	r->body = c->buf + hend;
	r->len = need - hend;
	return 0;
}

int hu_infer_body(int nin, const char *const *names, const char *const *datatypes,
		  const int64_t *const *shapes, const int *ndims, const void *const *data,
		  const size_t *bytes, uint8_t **body, size_t *len, size_t *json_len)
{
	char json[8192];
	size_t o = 0, total = 0;
	o += (size_t)snprintf(json + o, sizeof(json) - o, "{\"inputs\":[");
	for (int i = 0; i < nin && o < sizeof(json); i++) {
		o += (size_t)snprintf(json + o, sizeof(json) - o,
				      "%s{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[", i ? "," : "",
				      names[i], datatypes[i]);
		for (int d = 0; d < ndims[i] && o < sizeof(json); d++)
			o += (size_t)snprintf(json + o, sizeof(json) - o, "%s%lld", d ? "," : "",
					      (long long)shapes[i][d]);
		if (o < sizeof(json))
			o += (size_t)snprintf(json + o, sizeof(json) - o,
					      "],\"parameters\":{\"binary_data_size\":%zu}}", bytes[i]);
		total += bytes[i];
	}
	if (o < sizeof(json))
		o += (size_t)snprintf(json + o, sizeof(json) - o,
				      "],\"parameters\":{\"binary_data_output\":true}}");
	if (o >= sizeof(json))
		return hu__fail("request header too long");
	uint8_t *b = malloc(o + total);
	if (!b)
		return hu__fail("out of memory");
	memcpy(b, json, o);
	size_t w = o;
	for (int i = 0; i < nin; i++) {
		memcpy(b + w, data[i], bytes[i]);
		w += bytes[i];
	}
	*body = b;
	*len = w;
	*json_len = o;
	return 0;
}

/* GET path as a JSON object (put it). */
static struct json_object *hu__get_json(struct hu_conn *c, const char *path)
{
	struct hu_resp r;
	if (hu_request(c, "GET", path, NULL, NULL, 0, &r))
		return NULL;
	if (r.status != 200) {
		hu__fail("GET %s: status %d: %.*s", path, r.status, (int)(r.len < 200 ? r.len : 200),
			 (const char *)r.body);
		return NULL;
	}
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = tok ? json_tokener_parse_ex(tok, (const char *)r.body,
							    (int)r.len) : NULL;
	if (tok)
		json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		hu__fail("GET %s: not a JSON object", path);
		return NULL;
	}
	return o;
}

static struct json_object *hu__member(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int hu__tensors(struct json_object *a, struct hu_tensor *t, int *n, int max)
{
	*n = 0;
	if (!a || !json_object_is_type(a, json_type_array))
		return hu__fail("metadata without its tensors");
	for (size_t i = 0; i < json_object_array_length(a) && *n < max; i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		struct json_object *shape = hu__member(e, "shape");
		struct hu_tensor *x = &t[(*n)++];
		snprintf(x->name, sizeof(x->name), "%s",
			 json_object_get_string(hu__member(e, "name")));
		snprintf(x->datatype, sizeof(x->datatype), "%s",
			 json_object_get_string(hu__member(e, "datatype")));
		x->ndims = 0;
		for (size_t d = 0; shape && d < json_object_array_length(shape) && d < 8; d++)
			x->shape[x->ndims++] = json_object_get_int64(json_object_array_get_idx(shape, d));
	}
	return 0;
}

int hu_model_metadata(struct hu_conn *c, const char *model, struct hu_tensor *in, int *nin,
		      struct hu_tensor *out, int *nout, int max)
{
	char path[300];
	snprintf(path, sizeof(path), "/v2/models/%s", model);
	struct json_object *o = hu__get_json(c, path);
	if (!o)
		return -1;
	int ret = hu__tensors(hu__member(o, "inputs"), in, nin, max);
	if (!ret)
		ret = hu__tensors(hu__member(o, "outputs"), out, nout, max);
	json_object_put(o);
	return ret;
}

static uint64_t hu__u64(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v = hu__member(o, a);
	if (b)
		v = hu__member(v, b);
	return v ? json_object_get_uint64(v) : 0;
}

int hu_model_stats(struct hu_conn *c, const char *model, struct hu_stats *s)
{
	char path[300];
	snprintf(path, sizeof(path), "/v2/models/%s/stats", model);
	struct json_object *o = hu__get_json(c, path);
	if (!o)
		return -1;
	struct json_object *a = hu__member(o, "model_stats");
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		struct json_object *m = json_object_array_get_idx(a, i);
		struct json_object *is = hu__member(m, "inference_stats");
		s->success += hu__u64(is, "success", "count");
		s->inferences += hu__u64(m, "inference_count", NULL);
		s->execs += hu__u64(m, "execution_count", NULL);
		s->queue_ns += hu__u64(is, "queue", "ns");
		s->cin_ns += hu__u64(is, "compute_input", "ns");
		s->cinf_ns += hu__u64(is, "compute_infer", "ns");
		s->cout_ns += hu__u64(is, "compute_output", "ns");
	}
	json_object_put(o);
	return 0;
}
