/* SPDX-License-Identifier: MIT */
/*
 * ctl_frame.h - framing of ferry's control protocol (control.proto) on a
 * Unix stream socket: a 4-byte little-endian length, then the packed
 * protobuf-c message.  File descriptors ride as SCM_RIGHTS on the frame's
 * first byte.  Shared by ferryd and libferry.  Prefix ctl_.
 */
#ifndef FERRY_CTL_FRAME_H
#define FERRY_CTL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define CTL_PROTO_MAJOR  1
#define CTL_PROTO_MINOR  0
#define CTL_MAX_FRAME    (1u << 20)
#define CTL_MAX_FDS      4

/*
 * ctl_send - pack msg and send it as one frame, with nfds descriptors.
 *
 * Blocking sockets: loops until the whole frame is written.  Non-blocking
 * sockets (flags = MSG_DONTWAIT): a frame that does not fit in the socket
 * buffer at once gives -EAGAIN after a partial write, which leaves the
 * stream unusable: the caller must close it (the broker treats a client
 * that does not read its control socket as gone).
 */
int ctl_send(int fd, const ProtobufCMessage *msg, const int *fds, int nfds,
	     int flags);

/* Receive state of one connection; owned by the thread that reads it. */
struct ctl_reader {
	uint8_t *buf;       /* frame bytes, grown to the frame's length */
	size_t cap;
	size_t have;        /* bytes of the current frame (prefix included) */
	int fds[CTL_MAX_FDS];
	int nfds;           /* descriptors received with the current frame */
};

void ctl_reader_init(struct ctl_reader *r);
/* Close any received descriptors still held and free the buffer. */
void ctl_reader_fini(struct ctl_reader *r);

/*
 * ctl_read - read what is available, up to the end of one frame.
 *
 * Returns 1 when a complete frame is in r (payload at ctl_payload(),
 * ctl_payload_len() bytes; descriptors in r->fds, now owned by the caller,
 * who must take or close them), 0 when more bytes are needed (the socket
 * would block), -EPIPE at end of stream, -E2BIG for a frame over
 * CTL_MAX_FRAME, -EPROTO when more than CTL_MAX_FDS descriptors or
 * truncated ancillary data arrive, or another -errno.  After a 1, call
 * ctl_reader_next() before reading again.
 */
int ctl_read(int fd, struct ctl_reader *r);
void ctl_reader_next(struct ctl_reader *r);

static inline const uint8_t *ctl_payload(const struct ctl_reader *r)
{
	return r->buf + 4;
}

static inline size_t ctl_payload_len(const struct ctl_reader *r)
{
	return r->have - 4;
}

/*
 * ctl_default_socket_path - where the node's broker listens unless told:
 * $FERRY_SOCKET, else /run/ferry/ferryd.sock for root, else
 * $XDG_RUNTIME_DIR/ferry/ferryd.sock, else /tmp/ferry-<uid>/ferryd.sock.
 * Shared by ferryd and libferry so the two always agree.  -ENAMETOOLONG
 * when buf is too small.
 */
int ctl_default_socket_path(char *buf, size_t len);

#endif /* FERRY_CTL_FRAME_H */

