/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/frame.h"

int frame_send(int fd, const ProtobufCMessage *msg, const int *fds, int nfds,
	     int flags)
{
	uint8_t stackbuf[4096];
	size_t len = protobuf_c_message_get_packed_size(msg);
	size_t total = len + 4;
	uint8_t *buf = stackbuf;
	int ret = 0;

	if (len > FRAME_MAX_LEN)
		return -E2BIG;
	if (nfds < 0 || nfds > FRAME_MAX_FDS)
		return -EINVAL;
	if (total > sizeof(stackbuf)) {
		buf = malloc(total);
		if (!buf)
			return -ENOMEM;
	}
	buf[0] = len & 0xff;
	buf[1] = (len >> 8) & 0xff;
	buf[2] = (len >> 16) & 0xff;
	buf[3] = (len >> 24) & 0xff;
	protobuf_c_message_pack(msg, buf + 4);

	size_t off = 0;
	while (off < total) {
		union {
			char b[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
			struct cmsghdr align;
		} cbuf;
		struct iovec iov = { buf + off, total - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (off == 0 && nfds > 0) {
			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.b;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		off += (size_t)n;
		if (off < total && (flags & MSG_DONTWAIT)) {
			ret = -EAGAIN;
			break;
		}
	}
	if (buf != stackbuf)
		free(buf);
	return ret;
}

void frame_reader_init(struct frame_reader *r)
{
	memset(r, 0, sizeof(*r));
}

static void frame__control__close_fds(struct frame_reader *r)
{
	for (int i = 0; i < r->nfds; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	r->nfds = 0;
}

void frame_reader_fini(struct frame_reader *r)
{
	frame__control__close_fds(r);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

void frame_reader_next(struct frame_reader *r)
{
	/* Descriptors the caller did not take are closed, never leaked. */
	frame__control__close_fds(r);
	r->have = 0;
}

static size_t frame__control__need(const struct frame_reader *r)
{
	if (r->have < 4)
		return 4;
	return 4 + ((size_t)r->buf[0] | (size_t)r->buf[1] << 8 |
		    (size_t)r->buf[2] << 16 | (size_t)r->buf[3] << 24);
}

int frame_read(int fd, struct frame_reader *r)
{
	for (;;) {
		size_t need = frame__control__need(r);
		if (r->have >= 4 && need - 4 > FRAME_MAX_LEN)
			return -E2BIG;
		if (r->have == need && r->have >= 4)
			return 1;
		if (r->cap < need) {
			size_t cap = need < 256 ? 256 : need;
			uint8_t *nb = realloc(r->buf, cap);
			if (!nb)
				return -ENOMEM;
			r->buf = nb;
			r->cap = cap;
		}
		union {
			char b[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
			struct cmsghdr align;
		} cbuf;
		struct iovec iov = { r->buf + r->have, need - r->have };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
		};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		int proto_err = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			int *in = (int *)CMSG_DATA(c);
			for (int i = 0; i < cnt; i++) {
				if (r->nfds < FRAME_MAX_FDS) {
					r->fds[r->nfds++] = in[i];
				} else {
					close(in[i]);
					proto_err = -EPROTO;
				}
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			proto_err = -EPROTO;
		if (proto_err)
			return proto_err;
		if (n == 0)
			return -EPIPE;
		r->have += (size_t)n;
	}
}

int frame_default_socket_path(char *buf, size_t len)
{
	const char *env = getenv("FERRY_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/ferry/ferryd.sock");
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/ferry/ferryd.sock", xdg);
	else
		n = snprintf(buf, len, "/tmp/ferry-%u/ferryd.sock", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}
