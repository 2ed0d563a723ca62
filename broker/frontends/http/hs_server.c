/* SPDX-License-Identifier: MIT */
/*
 * hs_server.c - the KServe v2 HTTP/REST front end on libmicrohttpd: its
 * threads, TLS, reading a request within its limits, the route table and
 * its dispatch, KServe's error objects, compressed bodies both ways, and
 * connections suspended while their request waits in a model's queue.
 * The handlers live in hs_admin.c and hs_submit.c (see hs_int.h).
 *
 * libmicrohttpd calls hs__access several times per request: once when the
 * headers are in (hs__begin: route, limits, encodings; a body that is too
 * large is refused here, before any of it is read or stored), once per
 * piece of the body (appended, within the limit), and once at the end
 * (hs__dispatch).  A request handed to the scheduler that was not
 * answered on the spot suspends its connection; hs__answer, from the
 * thread that completed it, stores the response and resumes it, and the
 * last call queues the response.  hs__conn.lock orders the two: the
 * connection is resumed only after it was suspended.
 *
 * libmicrohttpd speaks HTTP/1.0 and HTTP/1.1 (keep-alive, pipelining,
 * chunked bodies), not HTTP/2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <zlib.h>

#include <ferry/errors.h>

#include "broker/core/log.h"
#include "broker/frontends/grpc/gs_server.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "broker/frontends/http/hs_int.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"

/* Request line and headers together: larger ones get 431. */
#define HS_MAX_HEADER_BYTES (16u << 10)
#define HS_MAX_CONNECTIONS 1024u
#define HS_IDLE_TIMEOUT_S 120u
/* A request's line and headers must be in within this of the connection's
 * start or of the request line (slowloris: libmicrohttpd's own timeout is
 * for silence, and one byte a second resets it). */
#define HS_HEADER_TIMEOUT_S 10u
#define HS_MAX_THREADS 64

/*
 * The endpoints: KServe v2's, and the Triton extensions its clients call.
 * First match wins: literal paths come before the patterns that would
 * also match them ("/v2/models/stats" before "/v2/models/{}").
 */
static const struct hs__route hs__routes[] = {
	{ "GET", "/v2/health/live", hs__live },
	{ "GET", "/v2/health/ready", hs__ready },
	{ "GET", "/v2", hs__server_meta },
	{ "GET", "/v2/models/stats", hs__stats },
	{ "GET", "/v2/models/{}/stats", hs__stats },
	{ "GET", "/v2/models/{}/versions/{}/stats", hs__stats },
	{ "GET", "/v2/models/{}", hs__model_meta },
	{ "GET", "/v2/models/{}/versions/{}", hs__model_meta },
	{ "GET", "/v2/models/{}/ready", hs__model_ready },
	{ "GET", "/v2/models/{}/versions/{}/ready", hs__model_ready },
	{ "GET", "/v2/models/{}/config", hs__model_config },
	{ "GET", "/v2/models/{}/versions/{}/config", hs__model_config },
	{ "POST", "/v2/models/{}/infer", hs__infer },
	{ "POST", "/v2/models/{}/versions/{}/infer", hs__infer },
	{ "POST", "/v2/repository/index", hs__repo_index },
	{ "POST", "/v2/repository/models/{}/load", hs__repo_load },
	{ "POST", "/v2/repository/models/{}/unload", hs__repo_unload },
	{ "GET", "/v2/systemsharedmemory/status", hs__shm_status },
	{ "GET", "/v2/systemsharedmemory/region/{}/status", hs__shm_status },
	{ "POST", "/v2/systemsharedmemory/region/{}/register", hs__shm_register },
	{ "POST", "/v2/systemsharedmemory/unregister", hs__shm_unregister },
	{ "POST", "/v2/systemsharedmemory/region/{}/unregister", hs__shm_unregister },
	{ "GET", "/v2/cudasharedmemory/status", hs__cuda_status },
	{ "GET", "/v2/cudasharedmemory/region/{}/status", hs__cuda_status },
	{ "POST", "/v2/cudasharedmemory/region/{}/register", hs__cuda_register },
	{ "POST", "/v2/cudasharedmemory/unregister", hs__cuda_unregister },
	{ "POST", "/v2/cudasharedmemory/region/{}/unregister", hs__cuda_unregister },
	{ "GET", "/v2/trace/setting", hs__trace_get },
	{ "POST", "/v2/trace/setting", hs__trace_set },
	{ "GET", "/v2/models/{}/trace/setting", hs__trace_get },
	{ "POST", "/v2/models/{}/trace/setting", hs__trace_set },
	{ "GET", "/v2/logging", hs__log_get },
	{ "POST", "/v2/logging", hs__log_set },
};

static struct {
	struct MHD_Daemon *d;
	_Atomic bool stopping;
	bool running;
	bool mutual;                    /* clients need a certificate */
	uint64_t max_body;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long pending;                   /* requests in the scheduler; lock */
	/* Header deadlines (hs__sock): the open connections, and the thread
	 * that enforces the deadlines; slock guards them and `reaping`. */
	pthread_mutex_t slock;
	pthread_cond_t scond;
	struct hs__sock *socks;
	pthread_t reaper;
	bool reaping;
} hs__s = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
	    .slock = PTHREAD_MUTEX_INITIALIZER };

/*
 * One connection, for the header deadline: libmicrohttpd tells when it
 * opens and closes (hs__notify), when a request line came (hs__uri_log),
 * when the headers were in (hs__access's first call) and when a request
 * was done (hs__completed).  The reaper shuts down a connection whose
 * headers are late, or that has sent no complete request line for
 * HS_IDLE_TIMEOUT_S since its last request, however slowly it trickles
 * bytes; libmicrohttpd then closes it (hs__notify unlinks it under slock
 * before the socket is closed, so the reaper never touches a closed fd).
 */
enum hs__phase { HS_P_HEADERS, HS_P_BUSY, HS_P_IDLE, HS_P_CUT };
struct hs__sock {                       /* hs__s.slock */
	struct hs__sock *prev, *next;
	int fd;
	enum hs__phase phase;
	time_t since;                   /* CLOCK_MONOTONIC seconds */
};

/*
 * One request, from its headers to its completion.  The connection's
 * thread owns it; while the request is in the scheduler, `lock` guards
 * done, suspended, resp and resp_status between that thread and done().
 */
struct hs__conn {
	struct MHD_Connection *mhd;
	const struct hs__route *route;  /* NULL: early says why */
	char args[HS_MAX_ARGS][256];
	int nargs;
	int early;                      /* a ferry code decided from the headers */
	unsigned early_status;          /* its HTTP status, when not hs__status's */
	char early_msg[300];
	uint8_t *body;
	size_t len, cap;
	int enc_in;                     /* Content-Encoding: 1 gzip, 2 deflate */
	int enc_out;                    /* Accept-Encoding: the same */
	size_t header_len;              /* Inference-Header-Content-Length */
	bool later;                     /* went to the scheduler */
	pthread_mutex_t lock;
	bool done, suspended;
	struct MHD_Response *resp;
	unsigned resp_status;
};

int hs__fail(struct hs__ctx *x, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
	return code;
}

bool hs__stopping(void)
{
	return atomic_load(&hs__s.stopping);
}

void hs__pending(long d)
{
	pthread_mutex_lock(&hs__s.lock);
	hs__s.pending += d;
	if (hs__s.pending == 0)
		pthread_cond_broadcast(&hs__s.cond);
	pthread_mutex_unlock(&hs__s.lock);
}

int hs__accept_encoding(const struct hs__conn *c)
{
	return c->enc_out;
}

size_t hs__header_length(const struct hs__conn *c)
{
	return c->header_len;
}

/* Triton's statuses for its error codes (ALREADY_EXISTS and CANCELLED are
 * 400 there too). */
static unsigned hs__status(int ferr)
{
	switch (ferr) {
	case 0: return MHD_HTTP_OK;
	case FERRY_ENOENT: return MHD_HTTP_NOT_FOUND;
	case FERRY_UNAVAILABLE: case FERRY_ENOSPC: case FERRY_ETIMEDOUT: case FERRY_REJECTED:
	case FERRY_EPIPE: case FERRY_ECONNREFUSED: case FERRY_EAGAIN:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case FERRY_ENOTSUP: return MHD_HTTP_NOT_IMPLEMENTED;
	case FERRY_EPERM: return MHD_HTTP_FORBIDDEN;
	case FERRY_ENOMEM: return MHD_HTTP_INTERNAL_SERVER_ERROR;
	case FERRY_EINVAL: case FERRY_DTYPE: case FERRY_SHAPE: case FERRY_E2BIG:
	case FERRY_EPROTO: case FERRY_EBADMSG: case FERRY_CONFIG: case FERRY_EBUSY:
	case FERRY_ECANCELED:
		return MHD_HTTP_BAD_REQUEST;
	default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

/* ---------------------------------------------------------------------- */
/* Responses                                                               */

/* KServe's error object {"error": msg}. */
static struct MHD_Response *hs__error_response(const char *msg)
{
	struct hs_buf b = { 0 };
	hs_buf_puts(&b, "{\"error\":");
	hs_json_str(&b, msg, strlen(msg));
	hs_buf_puts(&b, "}");
	if (b.oom) {
		hs_buf_free(&b);
		return NULL;
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		hs_buf_free(&b);
		return NULL;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return r;
}

static enum MHD_Result hs__queue(struct MHD_Connection *mhd, unsigned status,
				 struct MHD_Response *r)
{
	if (!r)
		return MHD_NO;          /* out of memory: close the connection */
	enum MHD_Result ret = MHD_queue_response(mhd, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result hs__send_error(struct MHD_Connection *mhd, int code, unsigned status,
				      const char *msg)
{
	log_debug("HTTP: %s (%s)", msg, ferry_errname(code));
	return hs__queue(mhd, status ? status : hs__status(code), hs__error_response(msg));
}

/* Compress the parts with zlib into out: gzip (1), or deflate (2), which
 * in HTTP means the zlib format. */
static int hs__deflate(const struct iovec *iov, int n, int enc, struct hs_buf *out)
{
	z_stream z;
	size_t total = 0;
	int ret = 0;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, enc == 1 ? 15 + 16 : 15, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return FERRY_ENOMEM;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (!hs_buf_reserve(out, deflateBound(&z, total > ULONG_MAX ? ULONG_MAX : total) + 64))
		ret = FERRY_ENOMEM;
	for (int i = 0; i < n && !ret; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		int zr = Z_OK;
		for (;;) {
			uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
			z.next_in = (Bytef *)p;
			z.avail_in = chunk;
			p += chunk;
			left -= chunk;
			int flush = i == n - 1 && !left ? Z_FINISH : Z_NO_FLUSH;
			do {
				if (out->cap - out->len < 64 && !hs_buf_reserve(out, out->cap)) {
					ret = FERRY_ENOMEM;
					break;
				}
				size_t room = out->cap - out->len;
				z.next_out = (Bytef *)out->p + out->len;
				z.avail_out = (uInt)(room > (1u << 30) ? (1u << 30) : room);
				uInt before = z.avail_out;
				zr = deflate(&z, flush);
				out->len += before - z.avail_out;
			} while (zr == Z_OK && (z.avail_in || (flush == Z_FINISH)));
			if (ret || zr == Z_STREAM_END || !left)
				break;
		}
		if (!ret && zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			ret = FERRY_EPROTO;
	}
	deflateEnd(&z);
	return ret;
}

/* Responses up to this size are copied into one buffer (see hs__response). */
#define HS_COPY_BYTES (256u << 10)

static size_t hs__tail(const struct iovec *iov, int n)
{
	size_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

struct hs__parts {
	char *json;
	void (*free_fn)(void *);
	void *free_arg;
};

static void hs__parts_free(void *p)
{
	struct hs__parts *s = p;
	free(s->json);
	if (s->free_fn)
		s->free_fn(s->free_arg);
	free(s);
}

struct MHD_Response *hs__response(struct hs_buf *json, const void *const *bin,
				  const size_t *binlen, int nbin, int encoding,
				  void (*free_fn)(void *), void *free_arg)
{
	struct MHD_Response *r = NULL;
	size_t jlen = json->len;
	int n = 0;
	/* On the heap: done() may run on a thread with a small stack. */
	struct iovec *iov = calloc((size_t)nbin + 1, sizeof(*iov));
	struct MHD_IoVec *mv = calloc((size_t)nbin + 1, sizeof(*mv));

	if (!iov || !mv || json->oom)
		goto fail;
	iov[n++] = (struct iovec){ json->p, json->len };
	for (int i = 0; i < nbin; i++)
		if (binlen[i])
			iov[n++] = (struct iovec){ (void *)bin[i], binlen[i] };
	if (encoding) {
		struct hs_buf z = { 0 };
		if (hs__deflate(iov, n, encoding, &z)) {
			hs_buf_free(&z);
			goto fail;
		}
		r = MHD_create_response_from_buffer(z.len, z.p, MHD_RESPMEM_MUST_FREE);
		if (!r) {
			hs_buf_free(&z);
			goto fail;
		}
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING,
					encoding == 1 ? "gzip" : "deflate");
		hs_buf_free(json);
		if (free_fn)
			free_fn(free_arg);
	} else if (n == 1 || jlen + hs__tail(iov + 1, n - 1) <= HS_COPY_BYTES) {
		/* Small: one buffer, which libmicrohttpd sends with the head in
		 * one system call (an iovec response goes out in two, and two
		 * TCP segments). */
		for (int i = 1; i < n; i++)
			hs_buf_put(json, iov[i].iov_base, iov[i].iov_len);
		if (json->oom)
			goto fail;
		r = MHD_create_response_from_buffer(json->len, json->p, MHD_RESPMEM_MUST_FREE);
		if (!r)
			goto fail;
		json->p = NULL;
		hs_buf_free(json);
		if (free_fn)
			free_fn(free_arg);
	} else {
		/* The outputs are sent from where the model wrote them. */
		struct hs__parts *s = calloc(1, sizeof(*s));
		if (!s)
			goto fail;
		s->json = json->p;
		s->free_fn = free_fn;
		s->free_arg = free_arg;
		json->p = NULL;
		hs_buf_free(json);
		for (int i = 0; i < n; i++)
			mv[i] = (struct MHD_IoVec){ iov[i].iov_base, iov[i].iov_len };
		r = MHD_create_response_from_iovec(mv, (unsigned)n, hs__parts_free, s);
		if (!r) {
			hs__parts_free(s);
			free(iov);
			free(mv);
			return NULL;
		}
	}
	free(iov);
	free(mv);
	if (nbin) {
		char v[24];
		snprintf(v, sizeof(v), "%zu", jlen);
		MHD_add_response_header(r, "Inference-Header-Content-Length", v);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	} else {
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	}
	return r;
fail:
	free(iov);
	free(mv);
	hs_buf_free(json);
	if (free_fn)
		free_fn(free_arg);
	return NULL;
}

void hs__answer(struct hs__conn *c, int status, const char *msg, struct MHD_Response *resp)
{
	if (status) {
		if (resp)
			MHD_destroy_response(resp);
		log_debug("HTTP infer: %s (%s)", msg ? msg : "", ferry_errname(status));
		resp = hs__error_response(msg ? msg : ferry_strerror(status));
	}
	pthread_mutex_lock(&c->lock);
	c->resp = resp;
	c->resp_status = hs__status(status);
	c->done = true;
	if (c->suspended)
		MHD_resume_connection(c->mhd);
	pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

/* Match path against pattern; the "{}" segments go to c->args. */
static bool hs__match(const char *pattern, const char *path, struct hs__conn *c)
{
	int na = 0;
	const char *p = pattern, *u = path;
	while (*p && *u) {
		if (p[0] == '{' && p[1] == '}') {
			const char *e = strchr(u, '/');
			size_t l = e ? (size_t)(e - u) : strlen(u);
			if (l == 0 || l >= sizeof(c->args[0]) || na >= HS_MAX_ARGS)
				return false;
			if (c) {
				memcpy(c->args[na], u, l);
				c->args[na][l] = '\0';
			}
			na++;
			u += l;
			p += 2;
			continue;
		}
		if (*p != *u)
			return false;
		p++;
		u++;
	}
	if (*p || *u)
		return false;
	if (c)
		c->nargs = na;
	return true;
}

static void hs__early(struct hs__conn *c, int code, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void hs__early(struct hs__conn *c, int code, unsigned status, const char *fmt, ...)
{
	va_list ap;
	if (c->early)
		return;
	c->early = code;
	c->early_status = status;
	va_start(ap, fmt);
	vsnprintf(c->early_msg, sizeof(c->early_msg), fmt, ap);
	va_end(ap);
}

/* A size header: digits only.  false when malformed. */
static bool hs__size(const char *s, uint64_t *v)
{
	*v = 0;
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || *v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(*s - '0');
	}
	return true;
}

/* "gzip" 1, "deflate" 2, identity / none 0, anything else -1. */
static int hs__encoding(const char *s)
{
	if (!s || !*s || !strcasecmp(s, "identity"))
		return 0;
	if (!strcasecmp(s, "gzip") || !strcasecmp(s, "x-gzip"))
		return 1;
	if (!strcasecmp(s, "deflate"))
		return 2;
	return -1;
}

/* Accept-Encoding: the first of gzip or deflate it lists without q=0. */
static int hs__accepts(const char *s)
{
	while (s && *s) {
		while (*s == ' ' || *s == ',')
			s++;
		size_t l = strcspn(s, ",");
		char tok[64];
		snprintf(tok, sizeof(tok), "%.*s", (int)(l < 63 ? l : 63), s);
		char *q = strchr(tok, ';');
		bool zero = false;
		if (q) {
			*q = '\0';
			const char *qv = strstr(q + 1, "q=");
			zero = qv && strtod(qv + 2, NULL) == 0.0;
		}
		for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';)
			*--e = '\0';
		int enc = hs__encoding(tok);
		if (enc > 0 && !zero)
			return enc;
		s += l;
	}
	return 0;
}

/* Mutual TLS: does the client hold a certificate our CA signed? */
static bool hs__client_verified(struct MHD_Connection *mhd)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return false;
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	unsigned int status = 0, n = 0;
	if (!gnutls_certificate_get_peers(s, &n) || n == 0)
		return false;
	return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

/* The headers are in: route, limits, encodings. */
static void hs__begin(struct hs__conn *c, const char *url, const char *method)
{
	bool head = !strcmp(method, "HEAD");
	bool path_known = false;
	for (size_t i = 0; i < sizeof(hs__routes) / sizeof(hs__routes[0]); i++) {
		const struct hs__route *r = &hs__routes[i];
		if (!hs__match(r->path, url, NULL))
			continue;
		path_known = true;
		if (strcmp(r->method, method) && !(head && !strcmp(r->method, "GET")))
			continue;
		hs__match(r->path, url, c);
		c->route = r;
		break;
	}
	if (!c->route) {
		if (path_known)
			hs__early(c, FERRY_ENOTSUP, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method %s is not allowed for %s", method, url);
		else
			hs__early(c, FERRY_ENOENT, MHD_HTTP_NOT_FOUND, "Not Found: %s", url);
		return;
	}
	if (hs__s.mutual && !hs__client_verified(c->mhd)) {
		hs__early(c, FERRY_EPERM, MHD_HTTP_FORBIDDEN, "a client certificate signed by the "
			  "server's CA is required");
		return;
	}
	uint64_t v;
	const char *cl = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		if (!hs__size(cl, &v)) {
			hs__early(c, FERRY_EINVAL, 0, "malformed Content-Length");
			return;
		}
		if (v > hs__s.max_body) {
			hs__early(c, FERRY_E2BIG, MHD_HTTP_CONTENT_TOO_LARGE,
				  "request body of %llu bytes: the largest this server takes is "
				  "%llu (--http-max-body-bytes)", (unsigned long long)v,
				  (unsigned long long)hs__s.max_body);
			return;
		}
		if (v && !(c->body = malloc((size_t)v))) {
			hs__early(c, FERRY_ENOMEM, 0, "out of memory");
			return;
		}
		c->cap = (size_t)v;
	}
	const char *ih = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
						     "Inference-Header-Content-Length");
	if (ih) {
		if (!hs__size(ih, &v) || v > hs__s.max_body) {
			hs__early(c, FERRY_EINVAL, 0, "malformed Inference-Header-Content-Length");
			return;
		}
		c->header_len = (size_t)v;
	}
	c->enc_in = hs__encoding(MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_ENCODING));
	if (c->enc_in < 0) {
		hs__early(c, FERRY_ENOTSUP, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			  "unsupported Content-Encoding: gzip and deflate are supported");
		return;
	}
	c->enc_out = hs__accepts(MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_ACCEPT_ENCODING));
}

/* A piece of the body. */
static void hs__append(struct hs__conn *c, const char *data, size_t n)
{
	if (c->early)
		return;
	if (n > hs__s.max_body - c->len) {
		hs__early(c, FERRY_E2BIG, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than "
			  "%llu bytes (--http-max-body-bytes)", (unsigned long long)hs__s.max_body);
		return;
	}
	if (c->len + n > c->cap) {
		if (c->cap && c->body && c->len + n > c->cap &&
		    MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_CONTENT_LENGTH)) {
			hs__early(c, FERRY_EINVAL, 0, "body longer than its Content-Length");
			return;
		}
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n)
			cap = cap > hs__s.max_body / 2 ? (size_t)hs__s.max_body : cap * 2;
		uint8_t *b = realloc(c->body, cap);
		if (!b) {
			hs__early(c, FERRY_ENOMEM, 0, "out of memory");
			return;
		}
		c->body = b;
		c->cap = cap;
	}
	memcpy(c->body + c->len, data, n);
	c->len += n;
}

/* Inflate a gzip or deflate body, at most --http-max-body-bytes out (a
 * small body may hold a huge one). */
static int hs__inflate(struct hs__conn *c, struct hs__ctx *x)
{
	z_stream z;
	struct hs_buf out = { 0 };
	int zr = Z_OK, ret = 0;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, c->enc_in == 1 ? 15 + 16 : 15) != Z_OK)
		return hs__fail(x, FERRY_ENOMEM, "out of memory");
	z.next_in = c->body;
	z.avail_in = (uInt)c->len;
	while (zr != Z_STREAM_END) {
		if (out.len > hs__s.max_body) {
			ret = hs__fail(x, FERRY_E2BIG, "the decompressed body is larger than %llu "
				       "bytes (--http-max-body-bytes)",
				       (unsigned long long)hs__s.max_body);
			break;
		}
		if (out.cap - out.len < 4096 &&
		    !hs_buf_reserve(&out, out.cap ? out.cap : c->len * 4 + 4096)) {
			ret = hs__fail(x, FERRY_ENOMEM, "out of memory");
			break;
		}
		size_t room = out.cap - out.len;
		z.next_out = (Bytef *)out.p + out.len;
		z.avail_out = (uInt)(room > (1u << 30) ? (1u << 30) : room);
		uInt before = z.avail_out;
		zr = inflate(&z, Z_NO_FLUSH);
		out.len += before - z.avail_out;
		if (zr == Z_STREAM_END)
			break;
		if (zr != Z_OK || (z.avail_in == 0 && before == z.avail_out)) {
			ret = hs__fail(x, FERRY_EINVAL, "the body is not valid %s data",
				       c->enc_in == 1 ? "gzip" : "deflate");
			break;
		}
	}
	inflateEnd(&z);
	if (!ret && out.len > hs__s.max_body)
		ret = hs__fail(x, FERRY_E2BIG, "the decompressed body is larger than %llu bytes "
			       "(--http-max-body-bytes)", (unsigned long long)hs__s.max_body);
	if (ret) {
		hs_buf_free(&out);
		return ret;
	}
	free(c->body);
	c->body = (uint8_t *)out.p;
	c->len = c->cap = out.len;
	return 0;
}

static enum MHD_Result hs__dispatch(struct hs__conn *c)
{
	struct hs__ctx x = { .conn = c, .mhd = c->mhd };
	int ret = 0;

	if (c->enc_in)
		ret = hs__inflate(c, &x);
	x.body = c->body ? c->body : (const uint8_t *)"";
	x.len = c->len;
	for (int i = 0; i < c->nargs; i++)
		x.arg[i] = c->args[i];
	if (!ret)
		ret = c->route->handle(&x);
	if (ret == HS_LATER) {
		c->later = true;
		hs_buf_free(&x.out);
		pthread_mutex_lock(&c->lock);
		if (!c->done) {
			/* Answered later, from done(): park the connection. */
			MHD_suspend_connection(c->mhd);
			c->suspended = true;
			pthread_mutex_unlock(&c->lock);
			return MHD_YES;
		}
		struct MHD_Response *r = c->resp;
		c->resp = NULL;
		pthread_mutex_unlock(&c->lock);
		return hs__queue(c->mhd, c->resp_status, r);
	}
	if (ret) {
		hs_buf_free(&x.out);
		return hs__send_error(c->mhd, ret, (unsigned)x.status, x.err);
	}
	unsigned status = x.status ? (unsigned)x.status : MHD_HTTP_OK;
	if (x.out.oom) {
		hs_buf_free(&x.out);
		return hs__send_error(c->mhd, FERRY_ENOMEM, 0, "out of memory");
	}
	struct MHD_Response *r;
	if (x.out.len) {
		r = hs__response(&x.out, NULL, NULL, 0, 0, NULL, NULL);
	} else {
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		hs_buf_free(&x.out);
	}
	return hs__queue(c->mhd, status, r);
}

/* ---------------------------------------------------------------------- */
/* Header deadlines                                                        */

static time_t hs__mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

static void hs__notify(void *cls, struct MHD_Connection *mhd, void **ctx,
		       enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct hs__sock *k = ci ? calloc(1, sizeof(*k)) : NULL;
		if (!k)
			return;         /* not tracked: the idle timeout still holds */
		k->fd = ci->connect_fd;
		k->phase = HS_P_HEADERS;
		k->since = hs__mono_s();
		pthread_mutex_lock(&hs__s.slock);
		k->next = hs__s.socks;
		if (k->next)
			k->next->prev = k;
		hs__s.socks = k;
		pthread_mutex_unlock(&hs__s.slock);
		*ctx = k;
		return;
	}
	struct hs__sock *k = *ctx;
	if (!k)
		return;
	pthread_mutex_lock(&hs__s.slock);
	if (k->prev)
		k->prev->next = k->next;
	else
		hs__s.socks = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&hs__s.slock);
	free(k);
	*ctx = NULL;
}

/* The connection's phase is now p (from `from` only, when from >= 0). */
static void hs__phase(struct MHD_Connection *mhd, enum hs__phase p, int from)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct hs__sock *k = ci ? ci->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&hs__s.slock);
	if (k->phase != HS_P_CUT && (from < 0 || k->phase == (enum hs__phase)from)) {
		k->phase = p;
		k->since = hs__mono_s();
	}
	pthread_mutex_unlock(&hs__s.slock);
}

/* A request line came: its headers are due (a fresh connection's since
 * its start).  Returns the request's first context: none. */
static void *hs__uri_log(void *cls, const char *uri, struct MHD_Connection *mhd)
{
	(void)cls;
	(void)uri;
	hs__phase(mhd, HS_P_HEADERS, HS_P_IDLE);
	return NULL;
}

static void *hs__reaper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hs__s.slock);
	while (hs__s.reaping) {
		time_t now = hs__mono_s();
		unsigned long late = 0;
		for (struct hs__sock *k = hs__s.socks; k; k = k->next) {
			if ((k->phase == HS_P_HEADERS && now - k->since >= (time_t)HS_HEADER_TIMEOUT_S) ||
			    (k->phase == HS_P_IDLE && now - k->since >= (time_t)HS_IDLE_TIMEOUT_S)) {
				shutdown(k->fd, SHUT_RDWR);
				k->phase = HS_P_CUT;
				late++;
			}
		}
		if (late)
			log_warn("HTTP: %lu connections closed: no complete request headers within "
				 "%u s (or no request for %u s)", late, HS_HEADER_TIMEOUT_S,
				 HS_IDLE_TIMEOUT_S);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec++;
		pthread_cond_timedwait(&hs__s.scond, &hs__s.slock, &ts);
	}
	pthread_mutex_unlock(&hs__s.slock);
	return NULL;
}

static enum MHD_Result hs__access(void *cls, struct MHD_Connection *mhd, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **ptr)
{
	struct hs__conn *c = *ptr;
	(void)cls;
	(void)version;

	if (!c) {
		if (!(c = calloc(1, sizeof(*c))))
			return MHD_NO;
		pthread_mutex_init(&c->lock, NULL);
		c->mhd = mhd;
		*ptr = c;
		hs__phase(mhd, HS_P_BUSY, -1);  /* the headers are in */
		hs__begin(c, url, method);
		/* Refused from its headers: answer now, read none of the body
		 * (libmicrohttpd then closes the connection). */
		if (c->early == FERRY_E2BIG || c->early == FERRY_EPERM)
			return hs__send_error(mhd, c->early, c->early_status, c->early_msg);
		return MHD_YES;
	}
	if (*upload_size) {
		hs__append(c, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (c->later) {
		/* Resumed: done() left the response. */
		pthread_mutex_lock(&c->lock);
		struct MHD_Response *r = c->resp;
		c->resp = NULL;
		pthread_mutex_unlock(&c->lock);
		return hs__queue(mhd, c->resp_status, r);
	}
	if (c->early)
		return hs__send_error(mhd, c->early, c->early_status, c->early_msg);
	return hs__dispatch(c);
}

/* Also for requests whose connection broke. */
static void hs__completed(void *cls, struct MHD_Connection *mhd, void **ptr,
			  enum MHD_RequestTerminationCode toe)
{
	struct hs__conn *c = *ptr;
	(void)cls;
	(void)toe;
	hs__phase(mhd, HS_P_IDLE, -1);  /* the next request line is due */
	if (!c)
		return;
	if (c->resp)
		MHD_destroy_response(c->resp);
	pthread_mutex_destroy(&c->lock);
	free(c->body);
	free(c);
	*ptr = NULL;
}

/* ---------------------------------------------------------------------- */
/* Start / stop                                                            */

static void hs__mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t l = strlen(msg);
	while (l && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
		msg[--l] = '\0';
	log_debug("HTTP (libmicrohttpd): %s", msg);
}

static char *hs__read_pem(const char *what, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		log_error("HTTP TLS: %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	char *buf = calloc(1, 1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (!buf || n == 0 || !strstr(buf, "-----BEGIN")) {
		log_error("HTTP TLS: %s %s: not a PEM file", what, path);
		free(buf);
		return NULL;
	}
	return buf;
}

int hs_start(const struct hs_options *o)
{
	struct sockaddr_in sa4;
	struct sockaddr_in6 sa6;
	struct sockaddr *sa;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	char *cert = NULL, *key = NULL, *ca = NULL;
	int ret = 0;

	if (o->port <= 0)
		return 0;
	const char *host = o->address && *o->address ? o->address : "127.0.0.1";
	memset(&sa4, 0, sizeof(sa4));
	memset(&sa6, 0, sizeof(sa6));
	if (inet_pton(AF_INET, host, &sa4.sin_addr) == 1) {
		sa4.sin_family = AF_INET;
		sa4.sin_port = htons((uint16_t)o->port);
		sa = (struct sockaddr *)&sa4;
	} else if (inet_pton(AF_INET6, host, &sa6.sin6_addr) == 1) {
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons((uint16_t)o->port);
		sa = (struct sockaddr *)&sa6;
		flags |= MHD_USE_IPv6;
	} else {
		log_error("HTTP: --http-address %s: not an IPv4 or IPv6 address", host);
		return FERRY_CONFIG;
	}
	if (o->tls_cert || o->tls_key || o->tls_ca) {
		if (!o->tls_cert || !o->tls_key) {
			log_error("HTTP TLS needs both --grpc-tls-cert and --grpc-tls-key");
			return FERRY_CONFIG;
		}
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			log_error("HTTP TLS: this libmicrohttpd was built without TLS");
			return FERRY_CONFIG;
		}
		cert = hs__read_pem("certificate", o->tls_cert);
		key = cert ? hs__read_pem("key", o->tls_key) : NULL;
		ca = key && o->tls_ca ? hs__read_pem("CA", o->tls_ca) : NULL;
		if (!cert || !key || (o->tls_ca && !ca)) {
			ret = FERRY_CONFIG;
			goto out;
		}
		flags |= MHD_USE_TLS;
	}
	hs__s.max_body = o->max_body_bytes ? o->max_body_bytes : (1ULL << 30);
	hs__s.mutual = ca != NULL;
	unsigned threads = o->threads > 0 ? (unsigned)(o->threads > HS_MAX_THREADS ?
						       HS_MAX_THREADS : o->threads) : 2;
	gs_shm_enable(o->allow_client_shm);
	atomic_store(&hs__s.stopping, false);
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_SOCK_ADDR, 0, sa },
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, HS_MAX_HEADER_BYTES, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, HS_MAX_CONNECTIONS, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, HS_IDLE_TIMEOUT_S, NULL },
		{ o->max_connections_per_ip > 0 ? MHD_OPTION_PER_IP_CONNECTION_LIMIT : MHD_OPTION_END,
		  o->max_connections_per_ip, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)hs__completed, NULL },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)hs__notify, NULL },
		{ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)hs__uri_log, NULL },
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)hs__mhd_log, NULL },
		{ threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL },
		{ cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
		{ key ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, key },
		{ ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, ca },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* Compact the list: an MHD_OPTION_END ends it. */
	struct MHD_OptionItem list[sizeof(opts) / sizeof(opts[0])];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i].option != MHD_OPTION_END)
			list[n++] = opts[i];
	list[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	hs__s.d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, hs__access, NULL,
				   MHD_OPTION_ARRAY, list, MHD_OPTION_END);
	if (!hs__s.d) {
		log_error("HTTP: cannot listen on %s port %d (address in use or not local?)", host,
			  o->port);
		ret = FERRY_EBUSY;
		goto out;
	}
	hs__s.running = true;
	pthread_cond_init(&hs__s.scond, NULL);
	hs__s.reaping = true;
	if (pthread_create(&hs__s.reaper, NULL, hs__reaper, NULL)) {
		hs__s.reaping = false;
		log_warn("HTTP: no header deadline (cannot start its thread)");
	}
	log_info("HTTP: KServe v2 endpoint on %s port %d (%u threads, bodies up to %llu bytes, "
		 "TLS %s, system shared memory %s, %d connections per client address)", host,
		 o->port, threads, (unsigned long long)hs__s.max_body,
		 ca ? "mutual" : cert ? "on" : "off", o->allow_client_shm ? "allowed" : "off",
		 o->max_connections_per_ip);
out:
	/* libmicrohttpd copied the certificates. */
	free(cert);
	free(key);
	free(ca);
	return ret;
}

void hs_stop(void)
{
	if (!hs__s.running)
		return;
	hs__s.running = false;
	atomic_store(&hs__s.stopping, true);
	/* No new connections; open ones still finish their requests. */
	MHD_socket fd = MHD_quiesce_daemon(hs__s.d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	/* libmicrohttpd refuses to stop with suspended connections: wait
	 * for every request in a model's queue to complete, running inline
	 * models meanwhile, as gs_stop does. */
	gs_drain(&hs__s.lock, &hs__s.cond, &hs__s.pending, "HTTP");
	pthread_mutex_lock(&hs__s.slock);
	bool reaping = hs__s.reaping;
	hs__s.reaping = false;
	pthread_cond_broadcast(&hs__s.scond);
	pthread_mutex_unlock(&hs__s.slock);
	if (reaping)
		pthread_join(hs__s.reaper, NULL);
	pthread_cond_destroy(&hs__s.scond);
	MHD_stop_daemon(hs__s.d);
	hs__s.d = NULL;
	log_info("HTTP: stopped");
}
