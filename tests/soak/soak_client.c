/* SPDX-License-Identifier: MIT */
/*
 * soak_client - one of scripts/soak.sh's clients: sends requests with
 * unique payloads of mixed sizes to the soak repository's models for a
 * set time, verifies every result and prints its counts.
 *
 *   soak_client ADDRESS ID SECONDS
 *
 * ADDRESS is what ferry_connect() takes: a Unix socket path for the
 * shared-memory transport, or grpc://host:port for the gRPC one; or
 * http://host:port, KServe v2 over HTTP/1.1 with binary tensor data,
 * spoken here directly (libferry has no HTTP transport).
 *
 * The broker may be restarted under the client (soak.sh does it every few
 * minutes).  A request that fails because the broker went away (the
 * connection closed or refused, the model not there yet) is counted apart,
 * as lost at a restart, and the client connects again until a broker
 * answers.  With a libferry that rides through restarts by itself those
 * failures never reach the client and that count stays 0.  Over HTTP the
 * client does what libferry does for its own transports: an inference is
 * idempotent, so a request the restart took down is sent again, whole, to
 * the broker that answers next, until its deadline (SOAK_TIMEOUT_NS from
 * its first sending); only one that misses it counts as lost at a restart,
 * and the sendings again are counted (resent).
 *
 * Every payload starts with a 64-bit tag (client ID << 32 | request
 * number) and continues with bytes drawn from that tag, so a result is
 * classified exactly: ok (all bytes right), dup (a complete earlier
 * result of this client: a response delivered twice or to the wrong
 * request), bad (anything else), lost (an error or a timeout instead of
 * a result).  The last line on stdout is
 *
 *   soak_client ID sent N ok N bad N dup N lost N restart_lost N reconnects N resent N
 *
 * where lost excludes restart_lost, and the exit status is 0 only when
 * ok + restart_lost == sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#define SOAK_TIMEOUT_NS   (30LL * 1000000000LL)  /* a result later than this is lost */
#define SOAK_PIPELINE     4                      /* requests in flight, async rounds */
#define SOAK_DYN_MAX      32768                  /* identity_dyn: FP32 elements */
#define SOAK_BYTES_MAX    16384                  /* identity_bytes: bytes per element */

enum { M_IDENTITY, M_DYN, M_BYTES, M_SIMPLE, M__COUNT };
static const char *const soak_model_names[M__COUNT] = {
	"identity", "identity_dyn", "identity_bytes", "simple",
};

struct soak_counts {
	uint64_t sent, ok, bad, dup, lost, restart_lost, reconnects;
	uint64_t resent;	/* HTTP: sent again after a restart */
};

/* splitmix64: the payload stream of a tag, and the client's choices. */
static uint64_t soak_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double soak_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fill n bytes: the tag, then the tag's stream. */
static void soak_fill(uint8_t *p, size_t n, uint64_t tag)
{
	uint64_t s = tag;
	size_t k = 0;

	memcpy(p, &tag, n < 8 ? n : 8);
	for (k = 8; k < n; k += 8) {
		uint64_t v = soak_mix(&s);
		memcpy(p + k, &v, n - k < 8 ? n - k : 8);
	}
}

/* One request in flight and what it must come back as. */
struct soak_req {
	ferry_request *r;       /* libferry's transports */
	uint8_t *in;            /* HTTP: the input payload (malloc'd) */
	int model;
	uint64_t tag;
	size_t bytes;           /* payload bytes (identity models) */
	int32_t a[4 * 16], b[4 * 16];  /* simple's inputs, batch up to 4 */
	int batch;
	int64_t n;              /* identity_dyn: elements */
};

static int soak_fail(const char *what, int err)
{
	fprintf(stderr, "soak_client: %s: %s (%s)\n", what, ferry_last_error(),
		ferry_errname(err));
	return err;
}

/* Draw request q's shape and payload for model q->model with tag q->tag
 * (the same for every transport). */
static void soak_draw(struct soak_req *q, uint64_t *rng)
{
	switch (q->model) {
	case M_IDENTITY:
		/* FP32 [batch, 256], batch 1 to 4. */
		q->batch = 1 + (int)(soak_mix(rng) % 4);
		q->bytes = (size_t)q->batch * 256 * 4;
		break;
	case M_DYN:
		/* FP32 [1, n]: 8 bytes to 128 KiB, log-uniform-ish. */
		q->n = 2 + (int64_t)(soak_mix(rng) % (uint64_t)(2 << (soak_mix(rng) % 15)));
		if (q->n > SOAK_DYN_MAX)
			q->n = SOAK_DYN_MAX;
		q->bytes = (size_t)q->n * 4;
		break;
	case M_BYTES: {
		/* One BYTES element: a 4-byte length, then 8 to 16 KiB. */
		uint32_t len = 8 + (uint32_t)(soak_mix(rng) % (SOAK_BYTES_MAX - 7));
		q->bytes = 4 + (size_t)len;
		break;
	}
	case M_SIMPLE: {
		/* INT32 [batch, 16] twice: sum and difference come back. */
		q->batch = 1 + (int)(soak_mix(rng) % 4);
		uint64_t s = q->tag;
		for (int i = 0; i < q->batch * 16; i++) {
			/* Small values: the sum never overflows. */
			q->a[i] = (int32_t)(soak_mix(&s) % 2000001) - 1000000;
			q->b[i] = (int32_t)(soak_mix(&s) % 2000001) - 1000000;
		}
		/* The tag in the first element, so a swapped result shows. */
		q->a[0] = (int32_t)(q->tag & 0x3fffffff);
		break;
	}
	}
}

/* The identity models' payload into p (q->bytes bytes). */
static void soak_payload(const struct soak_req *q, uint8_t *p)
{
	if (q->model == M_BYTES) {
		uint32_t len = (uint32_t)(q->bytes - 4);
		memcpy(p, &len, 4);
		soak_fill(p + 4, len, q->tag);
	} else {
		soak_fill(p, q->bytes, q->tag);
	}
}

/* Build request q on libferry's transports; 0 or an error. */
static int soak_build(struct soak_req *q, ferry_model *m)
{
	void *p, *pb;
	int ret;

	if ((ret = ferry_request_new(m, &q->r)))
		return soak_fail("request", ret);
	switch (q->model) {
	case M_IDENTITY: {
		int64_t dims[2] = { q->batch, 256 };
		ret = ferry_request_input(q->r, "INPUT0", FERRY_TYPE_FP32, dims, 2, &p);
		if (!ret)
			soak_payload(q, p);
		break;
	}
	case M_DYN: {
		int64_t dims[2] = { 1, q->n };
		ret = ferry_request_input(q->r, "INPUT0", FERRY_TYPE_FP32, dims, 2, &p);
		if (!ret) {
			soak_payload(q, p);
			ret = ferry_request_want_output(q->r, "OUTPUT0", q->bytes);
		}
		break;
	}
	case M_BYTES: {
		int64_t dims[2] = { 1, 1 };
		ret = ferry_request_input_bytes(q->r, "INPUT0", FERRY_TYPE_BYTES, dims, 2,
						q->bytes, &p);
		if (!ret) {
			soak_payload(q, p);
			ret = ferry_request_want_output(q->r, "OUTPUT0", q->bytes);
		}
		break;
	}
	case M_SIMPLE: {
		int64_t dims[2] = { q->batch, 16 };
		ret = ferry_request_input(q->r, "INPUT0", FERRY_TYPE_INT32, dims, 2, &p);
		if (!ret)
			ret = ferry_request_input(q->r, "INPUT1", FERRY_TYPE_INT32, dims, 2, &pb);
		if (!ret) {
			memcpy(p, q->a, (size_t)q->batch * 16 * 4);
			memcpy(pb, q->b, (size_t)q->batch * 16 * 4);
		}
		break;
	}
	}
	if (ret)
		return soak_fail("input", ret);
	return 0;
}

/* Classify the outputs of a completed request: out[0] (and out[1] for
 * simple) with their byte counts. */
static void soak_verify(struct soak_req *q, const uint8_t *const out[2], const size_t bytes[2],
			uint32_t id, uint64_t seq, struct soak_counts *c)
{
	int bad = 0;

	if (q->model == M_SIMPLE) {
		if (!out[0] || !out[1] || bytes[0] != (size_t)q->batch * 64 || bytes[1] != bytes[0]) {
			c->bad++;
			return;
		}
		for (int i = 0; i < q->batch * 16; i++) {
			int32_t s, d;
			memcpy(&s, out[0] + 4 * i, 4);
			memcpy(&d, out[1] + 4 * i, 4);
			if (s != q->a[i] + q->b[i] || d != q->a[i] - q->b[i])
				bad = 1;
		}
		if (bad)
			c->bad++;
		else
			c->ok++;
		return;
	}
	if (!out[0] || bytes[0] != q->bytes) {
		c->bad++;
		return;
	}
	const uint8_t *p = out[0];
	size_t n = bytes[0];
	if (q->model == M_BYTES) {
		uint32_t len;
		memcpy(&len, p, 4);
		if (len != q->bytes - 4) {
			c->bad++;
			return;
		}
		p += 4;
		n -= 4;
	}
	/* Regenerate and compare; on a mismatch, see whose tag it carries. */
	uint8_t *want = malloc(n ? n : 1);
	if (!want) {
		c->bad++;
		return;
	}
	soak_fill(want, n, q->tag);
	if (memcmp(want, p, n) == 0) {
		c->ok++;
	} else {
		uint64_t got = 0;
		memcpy(&got, p, n < 8 ? n : 8);
		if (n >= 8 && got >> 32 == id && (got & 0xffffffff) < seq)
			c->dup++;
		else
			c->bad++;
		fprintf(stderr, "soak_client %u: request %" PRIu64 ": wrong result (tag %#" PRIx64 ")\n",
			id, q->tag & 0xffffffff, got);
	}
	free(want);
}

/* A failure that says the broker went away or is not back yet: the
 * connection broke or was refused, or the model is not there (yet). */
static bool soak_restart_error(int err)
{
	return err == FERRY_EPIPE || err == FERRY_ECONNREFUSED || err == FERRY_UNAVAILABLE ||
	       err == FERRY_ECANCELED || err == FERRY_ENOENT || err == FERRY_EBADMSG;
}

/* A completed libferry request (status from ferry_infer / wait). */
static void soak_check(struct soak_req *q, int status, uint32_t id, uint64_t seq,
		       struct soak_counts *c, bool *broken)
{
	const uint8_t *out[2] = { NULL, NULL };
	size_t bytes[2] = { 0, 0 };

	if (status) {
		if (soak_restart_error(status)) {
			c->restart_lost++;
			*broken = true;
			return;
		}
		fprintf(stderr, "soak_client %u: request %" PRIu64 " failed: %s (%s)\n",
			id, q->tag & 0xffffffff, ferry_last_error(), ferry_errname(status));
		c->lost++;
		return;
	}
	ferry_request_output(q->r, "OUTPUT0", NULL, NULL, NULL, (const void **)&out[0], &bytes[0]);
	if (q->model == M_SIMPLE)
		ferry_request_output(q->r, "OUTPUT1", NULL, NULL, NULL, (const void **)&out[1],
				     &bytes[1]);
	soak_verify(q, out, bytes, id, seq, c);
}

/* ---------------------------------------------------------------------- */
/* HTTP/1.1 with Triton's binary tensor data, one keep-alive connection    */

struct soak_http {
	struct sockaddr_storage addr;
	socklen_t alen;
	int fd;
	uint8_t *buf;                   /* the response */
	size_t cap;
};

static int soak_http_parse(struct soak_http *h, const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return -1;
	memcpy(&h->addr, ai->ai_addr, ai->ai_addrlen);
	h->alen = ai->ai_addrlen;
	freeaddrinfo(ai);
	h->fd = -1;
	return 0;
}

static int soak_http_connect(struct soak_http *h)
{
	h->fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -1;
	if (connect(h->fd, (struct sockaddr *)&h->addr, h->alen)) {
		close(h->fd);
		h->fd = -1;
		return -1;
	}
	int one = 1;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static void soak_http_close(struct soak_http *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

static int soak_send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until buf holds at least `need` bytes; -1 on a closed connection. */
static int soak_recv_until(struct soak_http *h, size_t *have, size_t need)
{
	if (need + 1 > h->cap) {
		size_t cap = need + 65536;
		uint8_t *b = realloc(h->buf, cap);
		if (!b)
			return -1;
		h->buf = b;
		h->cap = cap;
	}
	while (*have < need) {
		ssize_t r = recv(h->fd, h->buf + *have, h->cap - 1 - *have, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		*have += (size_t)r;
	}
	return 0;
}

/* The value of header `name` in the NUL-terminated header block hdr. */
static const char *soak_header(const char *hdr, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = strstr(hdr, "\r\n"); l; l = strstr(l + 2, "\r\n"))
		if (!strncasecmp(l + 2, name, n) && l[2 + n] == ':')
			return l + 3 + n;
	return NULL;
}

/*
 * One request over HTTP.  Returns 0 with the outputs filled (pointing
 * into h->buf), 1 when the connection failed (the broker is away), or an
 * HTTP status >= 300 (the reason on stderr).
 */
static int soak_http_infer(struct soak_http *h, struct soak_req *q, const uint8_t *out[2],
			   size_t bytes[2], uint32_t id)
{
	char json[1024], head[512];
	size_t in_bytes[2] = { q->bytes, 0 };
	const void *in_data[2] = { q->in, NULL };
	int nin = 1, nout = 1;

	switch (q->model) {
	case M_IDENTITY:
		snprintf(json, sizeof(json), "{\"inputs\":[{\"name\":\"INPUT0\",\"datatype\":\"FP32\","
			 "\"shape\":[%d,256],\"parameters\":{\"binary_data_size\":%zu}}],"
			 "\"outputs\":[{\"name\":\"OUTPUT0\",\"parameters\":{\"binary_data\":true}}]}",
			 q->batch, q->bytes);
		break;
	case M_DYN:
		snprintf(json, sizeof(json), "{\"inputs\":[{\"name\":\"INPUT0\",\"datatype\":\"FP32\","
			 "\"shape\":[1,%" PRId64 "],\"parameters\":{\"binary_data_size\":%zu}}],"
			 "\"outputs\":[{\"name\":\"OUTPUT0\",\"parameters\":{\"binary_data\":true}}]}",
			 q->n, q->bytes);
		break;
	case M_BYTES:
		snprintf(json, sizeof(json), "{\"inputs\":[{\"name\":\"INPUT0\",\"datatype\":\"BYTES\","
			 "\"shape\":[1,1],\"parameters\":{\"binary_data_size\":%zu}}],"
			 "\"outputs\":[{\"name\":\"OUTPUT0\",\"parameters\":{\"binary_data\":true}}]}",
			 q->bytes);
		break;
	case M_SIMPLE:
		in_bytes[0] = in_bytes[1] = (size_t)q->batch * 64;
		in_data[0] = q->a;
		in_data[1] = q->b;
		nin = nout = 2;
		snprintf(json, sizeof(json), "{\"inputs\":["
			 "{\"name\":\"INPUT0\",\"datatype\":\"INT32\",\"shape\":[%d,16],"
			 "\"parameters\":{\"binary_data_size\":%zu}},"
			 "{\"name\":\"INPUT1\",\"datatype\":\"INT32\",\"shape\":[%d,16],"
			 "\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":["
			 "{\"name\":\"OUTPUT0\",\"parameters\":{\"binary_data\":true}},"
			 "{\"name\":\"OUTPUT1\",\"parameters\":{\"binary_data\":true}}]}",
			 q->batch, in_bytes[0], q->batch, in_bytes[1]);
		break;
	}
	size_t jl = strlen(json), body = jl + in_bytes[0] + in_bytes[1];
	int hl = snprintf(head, sizeof(head),
			  "POST /v2/models/%s/infer HTTP/1.1\r\nHost: soak\r\n"
			  "Content-Type: application/octet-stream\r\n"
			  "Inference-Header-Content-Length: %zu\r\nContent-Length: %zu\r\n\r\n",
			  soak_model_names[q->model], jl, body);
	if (h->fd < 0 && soak_http_connect(h))
		return 1;
	if (soak_send_all(h->fd, head, (size_t)hl) || soak_send_all(h->fd, json, jl))
		goto broken;
	for (int i = 0; i < nin; i++)
		if (soak_send_all(h->fd, in_data[i], in_bytes[i]))
			goto broken;

	/* The response: headers, then Content-Length bytes. */
	size_t have = 0, eoh = 0;
	for (;;) {
		if (soak_recv_until(h, &have, have + 1))
			goto broken;
		h->buf[have] = 0;
		char *e = strstr((char *)h->buf, "\r\n\r\n");
		if (e) {
			eoh = (size_t)(e - (char *)h->buf) + 4;
			break;
		}
		if (have > 65536)
			goto broken;
	}
	int status = 0;
	const char *cl = soak_header((char *)h->buf, "Content-Length");
	const char *ihl = soak_header((char *)h->buf, "Inference-Header-Content-Length");
	if (sscanf((char *)h->buf, "HTTP/1.1 %d", &status) != 1 || !cl)
		goto broken;
	size_t len = strtoul(cl, NULL, 10);
	size_t jlen = ihl ? strtoul(ihl, NULL, 10) : len;
	if (jlen > len || soak_recv_until(h, &have, eoh + len))
		goto broken;
	if (soak_header((char *)h->buf, "Connection") &&
	    strstr(soak_header((char *)h->buf, "Connection"), "close"))
		soak_http_close(h);
	if (status != 200) {
		fprintf(stderr, "soak_client %u: request %" PRIu64 ": HTTP %d: %.*s\n", id,
			q->tag & 0xffffffff, status, (int)(len < 300 ? len : 300),
			(char *)h->buf + eoh);
		return status;
	}
	/* Outputs in the order asked, each binary_data_size bytes after the
	 * JSON; the JSON names them in that order. */
	char *js = (char *)h->buf + eoh;
	char saved = js[jlen];
	js[jlen] = 0;
	const uint8_t *bin = h->buf + eoh + jlen;
	size_t left = len - jlen;
	const char *at = strstr(js, "\"outputs\"");
	for (int i = 0; i < nout; i++) {
		const char *bs = at ? strstr(at, "\"binary_data_size\":") : NULL;
		size_t n = bs ? strtoul(bs + 19, NULL, 10) : SIZE_MAX;
		if (n > left) {
			js[jlen] = saved;
			out[0] = out[1] = NULL;
			return 0;       /* counted bad by soak_verify */
		}
		out[i] = bin;
		bytes[i] = n;
		bin += n;
		left -= n;
		at = bs + 19;
	}
	js[jlen] = saved;
	return 0;
broken:
	soak_http_close(h);
	return 1;
}

/* ---------------------------------------------------------------------- */

/* Connect and resolve the models; retried until `end` while the broker is
 * away.  0, or an error when the time is up. */
static int soak_open(const char *addr, ferry_client **c, ferry_model **models, double end)
{
	ferry_options opt = { 0 };
	int ret;

	/* 64 clients: a small arena each, and blocking waits so that 64
	 * processes on a few cores do not spin against ferryd. */
	opt.arena_bytes = 8 << 20;
	opt.queue_depth = 16;
	opt.wait = FERRY_WAIT_BLOCK;
	opt.client_name = "soak_client";
	for (;;) {
		ret = ferry_connect(c, addr, &opt);
		for (int i = 0; !ret && i < M__COUNT; i++)
			ret = ferry_model_get(*c, soak_model_names[i], FERRY_LATEST, &models[i]);
		if (!ret)
			return 0;
		if (*c)
			ferry_close(*c);
		*c = NULL;
		if (soak_now() >= end || !soak_restart_error(ret))
			return soak_fail("connect", ret);
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

static int soak_run_http(const char *hostport, uint32_t id, double end, struct soak_counts *cnt)
{
	struct soak_http h = { 0 };
	uint64_t rng = 0x5eed0000ULL + id, seq = 0;
	bool away = false;

	if (soak_http_parse(&h, hostport)) {
		fprintf(stderr, "soak_client: cannot resolve %s\n", hostport);
		return 1;
	}
	while (soak_now() < end) {
		struct soak_req q = { 0 };
		const uint8_t *out[2] = { NULL, NULL };
		size_t bytes[2] = { 0, 0 };
		q.model = (int)(soak_mix(&rng) % M__COUNT);
		q.tag = (uint64_t)id << 32 | ++seq;
		soak_draw(&q, &rng);
		if (q.model != M_SIMPLE) {
			if (!(q.in = malloc(q.bytes))) {
				cnt->sent++;
				cnt->lost++;
				continue;
			}
			soak_payload(&q, q.in);
		}
		if (soak_now() >= end) {
			free(q.in);
			break;
		}
		cnt->sent++;
		/* Sent again while the broker is away or restarting, within
		 * the request's deadline. */
		double deadline = soak_now() + SOAK_TIMEOUT_NS / 1e9;
		for (bool first = true;; first = false) {
			/* While the broker is away, wait for it to listen
			 * again before sending: a refused connection loses
			 * nothing. */
			while (away && soak_now() < deadline && soak_http_connect(&h)) {
				struct timespec ts = { 0, 50 * 1000000 };
				nanosleep(&ts, NULL);
			}
			if (away && h.fd >= 0)
				cnt->reconnects++;
			away = false;
			if (!first) {
				if (soak_now() >= deadline) {
					cnt->restart_lost++;
					break;
				}
				cnt->resent++;
			}
			int st = soak_http_infer(&h, &q, out, bytes, id);
			if (st == 1) {
				away = true;
				continue;
			}
			if (st == 503) {
				/* The model not loaded yet after a restart. */
				struct timespec ts = { 0, 20 * 1000000 };
				nanosleep(&ts, NULL);
				continue;
			}
			if (st)
				cnt->lost++;
			else
				soak_verify(&q, out, bytes, id, seq, cnt);
			break;
		}
		free(q.in);
	}
	soak_http_close(&h);
	free(h.buf);
	return 0;
}

int main(int argc, char **argv)
{
	ferry_client *c = NULL;
	ferry_model *models[M__COUNT];
	struct soak_req q[SOAK_PIPELINE];
	struct soak_counts cnt = { 0 };

	if (argc != 4) {
		fprintf(stderr, "usage: soak_client ADDRESS ID SECONDS\n");
		return 2;
	}
	uint32_t id = (uint32_t)strtoul(argv[2], NULL, 10);
	double end = soak_now() + strtod(argv[3], NULL);
	uint64_t rng = 0x5eed0000ULL + id, seq = 0;

	if (!strncmp(argv[1], "http://", 7)) {
		if (soak_run_http(argv[1] + 7, id, end, &cnt))
			return 1;
		goto done;
	}
	if (soak_open(argv[1], &c, models, end))
		return 1;

	while (soak_now() < end) {
		bool broken = false;
		/* Alternate single synchronous requests with rounds of
		 * SOAK_PIPELINE requests in flight at once. */
		int ret, k = soak_mix(&rng) % 2 ? 1 : SOAK_PIPELINE;
		for (int i = 0; i < k; i++) {
			q[i].model = (int)(soak_mix(&rng) % M__COUNT);
			q[i].tag = (uint64_t)id << 32 | ++seq;
			soak_draw(&q[i], &rng);
			cnt.sent++;
			if (broken || soak_build(&q[i], models[q[i].model])) {
				if (broken)
					cnt.restart_lost++;
				else
					cnt.lost++;
				q[i].r = NULL;
				continue;
			}
			if (k == 1) {
				ret = ferry_infer(c, q[i].r, SOAK_TIMEOUT_NS);
				soak_check(&q[i], ret, id, seq, &cnt, &broken);
				ferry_request_free(q[i].r);
				q[i].r = NULL;
			} else if ((ret = ferry_infer_async(c, q[i].r, NULL, NULL))) {
				soak_check(&q[i], ret, id, seq, &cnt, &broken);
				ferry_request_free(q[i].r);
				q[i].r = NULL;
			}
		}
		for (int i = 0; k > 1 && i < k; i++) {
			if (!q[i].r)
				continue;
			ret = ferry_request_wait(q[i].r, SOAK_TIMEOUT_NS);
			soak_check(&q[i], ret, id, seq, &cnt, &broken);
			ferry_request_free(q[i].r);
		}
		if (broken) {
			/* The broker went away: connect again once one answers. */
			ferry_close(c);
			c = NULL;
			if (soak_now() < end && soak_open(argv[1], &c, models, end) == 0)
				cnt.reconnects++;
			if (!c)
				break;
		}
	}
	if (c)
		ferry_close(c);
done:
	printf("soak_client %u sent %" PRIu64 " ok %" PRIu64 " bad %" PRIu64
	       " dup %" PRIu64 " lost %" PRIu64 " restart_lost %" PRIu64 " reconnects %" PRIu64
	       " resent %" PRIu64 "\n", id, cnt.sent, cnt.ok, cnt.bad, cnt.dup, cnt.lost,
	       cnt.restart_lost, cnt.reconnects, cnt.resent);
	return cnt.ok + cnt.restart_lost == cnt.sent ? 0 : 1;
}
