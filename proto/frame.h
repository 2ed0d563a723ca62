/* SPDX-License-Identifier: MIT */
/*
 * frame.h - framing of ferry's control protocol (control.proto) on a
 * Unix stream socket: a 4-byte little-endian length, then the packed
 * protobuf-c message.  File descriptors ride as SCM_RIGHTS on the frame's
 * first byte.  Shared by ferryd and libferry.  Prefix frame_.
 */
#ifndef FERRY_FRAME_H
#define FERRY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define FRAME_PROTO_MAJOR  1
#define FRAME_PROTO_MINOR  1   /* 1.1: Hello.adopt_segment */
#define FRAME_MAX_LEN    (1u << 20)
#define FRAME_MAX_FDS      4

/*
 * frame_send - pack msg and send it as one frame, with nfds descriptors.
 *
 * Blocking sockets: loops until the whole frame is written.  Non-blocking
 * sockets (flags = MSG_DONTWAIT): a frame that does not fit in the socket
 * buffer at once gives -EAGAIN after a partial write, which leaves the
 * stream unusable: the caller must close it (the broker treats a client
 * that does not read its control socket as gone).
 */
int frame_send(int fd, const ProtobufCMessage *msg, const int *fds, int nfds,
	     int flags);

/* Receive state of one connection; owned by the thread that reads it. */
struct frame_reader {
	uint8_t *buf;       /* frame bytes, grown to the frame's length */
	size_t cap;
	size_t have;        /* bytes of the current frame (prefix included) */
	int fds[FRAME_MAX_FDS];
	int nfds;           /* descriptors received with the current frame */
};

void frame_reader_init(struct frame_reader *r);
/* Close any received descriptors still held and free the buffer. */
void frame_reader_fini(struct frame_reader *r);

/*
 * frame_read - read what is available, up to the end of one frame.
 *
 * Returns 1 when a complete frame is in r (payload at frame_payload(),
 * frame_payload_len() bytes; descriptors in r->fds, now owned by the caller,
 * who must take or close them), 0 when more bytes are needed (the socket
 * would block), -EPIPE at end of stream, -E2BIG for a frame over
 * FRAME_MAX_LEN, -EPROTO when more than FRAME_MAX_FDS descriptors or
 * truncated ancillary data arrive, or another -errno.  After a 1, call
 * frame_reader_next() before reading again.
 */
int frame_read(int fd, struct frame_reader *r);
void frame_reader_next(struct frame_reader *r);

static inline const uint8_t *frame_payload(const struct frame_reader *r)
{
	return r->buf + 4;
}

static inline size_t frame_payload_len(const struct frame_reader *r)
{
	return r->have - 4;
}

/*
 * frame_default_socket_path - where the node's broker listens unless told:
 * $FERRY_SOCKET, else /run/ferry/ferryd.sock for root, else
 * $XDG_RUNTIME_DIR/ferry/ferryd.sock, else /tmp/ferry-<uid>/ferryd.sock.
 * Shared by ferryd and libferry so the two always agree.  -ENAMETOOLONG
 * when buf is too small.
 */
int frame_default_socket_path(char *buf, size_t len);

#endif /* FERRY_FRAME_H */

