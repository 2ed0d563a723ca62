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
