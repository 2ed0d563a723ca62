/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ctl - bytes a client writes on ferryd's control socket, through the
 * framing reader (frame_read, over a real socketpair, with SCM_RIGHTS
 * descriptors when the input asks) and the protobuf-c decoder of
 * control.proto, dispatched the way control.c's control__on_conn does.
 *
 * Input: byte 0 chooses how the stream is cut into writes (bits 0-5: the
 * chunk size - 1) and which descriptors ride on the first write (bit 6:
 * one eventfd, bit 7: FRAME_MAX_FDS + 1 of them, which the reader must
 * refuse).  The rest is the byte stream.
 *
 * Oracles, beyond the sanitizers: no descriptor leaks (the lowest free fd
 * is the same before and after); every frame that decodes re-encodes and
 * decodes again to the same bytes (the broker echoes fields it decoded).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/control.pb-c.h"
#include "proto/frame.h"
#include "tests/fuzz/fuzz.h"

static int fuzz_ctl__lowest_fd(void)
{
	int fd = dup(0);
	if (fd >= 0)
		close(fd);
	return fd;
}

/* Send len bytes with nfds fresh eventfds attached (closed here after
 * sending: the receiver gets its own copies). */
static void fuzz_ctl__send(int fd, const uint8_t *p, size_t len, int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * (FRAME_MAX_FDS + 1))];
		struct cmsghdr align;
	} cbuf;
	int fds[FRAME_MAX_FDS + 1];
	struct iovec iov = { (void *)p, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	for (int i = 0; i < nfds; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		FUZZ_CHECK(fds[i] >= 0);
	}
	if (nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	/* The socket buffer holds far more than one fuzz input. */
	FUZZ_CHECK(n == (ssize_t)len);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* Does msg or a message inside it hold fields its schema lacks? */
static bool fuzz_ctl__has_unknown(const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	if (msg->n_unknown_fields)
		return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)msg;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v =
				*(ProtobufCMessage *const *const *)(base + f->offset);
			for (size_t k = 0; k < n; k++)
				if (fuzz_ctl__has_unknown(v[k]))
					return true;
		} else {
			const ProtobufCMessage *sub =
				*(const ProtobufCMessage *const *)(base + f->offset);
			if (sub && fuzz_ctl__has_unknown(sub))
				return true;
		}
	}
	return false;
}

/*
 * Encode again, decode again, encode again: same bytes.  Only for messages
 * without unknown fields: protobuf-c keeps those verbatim, including ones
 * it should have refused (field number 0 in a non-canonical varint, found
 * by this target), and then cannot decode its own output.  The broker
 * never re-encodes what a client sent, so that is protobuf-c's quirk, not
 * a ferry bug.
 */
static void fuzz_ctl__roundtrip(const ProtobufCMessage *msg)
{
	if (fuzz_ctl__has_unknown(msg))
		return;
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
	FUZZ_CHECK(a && b);
	FUZZ_CHECK(protobuf_c_message_pack(msg, a) == n);
	ProtobufCMessage *again = protobuf_c_message_unpack(msg->descriptor, NULL, n, a);
	FUZZ_CHECK(again);
	FUZZ_CHECK(protobuf_c_message_get_packed_size(again) == n);
	FUZZ_CHECK(protobuf_c_message_pack(again, b) == n);
	FUZZ_CHECK(memcmp(a, b, n) == 0);
	protobuf_c_message_free_unpacked(again, NULL);
	free(a);
	free(b);
}

/* What control__on_conn does with a frame, minus the broker's state. */
static void fuzz_ctl__handle(const uint8_t *p, size_t len)
{
	char name[64];

	Ferry__Control__Request *req = ferry__control__request__unpack(NULL, len, p);
	if (req) {
		switch (req->body_case) {
		case FERRY__CONTROL__REQUEST__BODY_HELLO:
			FUZZ_CHECK(req->hello);
			snprintf(name, sizeof(name), "%s",
				 req->hello->client_name ? req->hello->client_name : "");
			break;
		case FERRY__CONTROL__REQUEST__BODY_GET_MODEL:
			FUZZ_CHECK(req->get_model && req->get_model->name);
			(void)strlen(req->get_model->name);
			break;
		default:
			break;
		}
		fuzz_ctl__roundtrip(&req->base);
		ferry__control__request__free_unpacked(req, NULL);
	}
	/* libferry decodes the broker's answers with the same framing;
	 * it trusts the broker, but a decoder must not crash on any input. */
	Ferry__Control__Response *resp = ferry__control__response__unpack(NULL, len, p);
	if (resp) {
		fuzz_ctl__roundtrip(&resp->base);
		ferry__control__response__free_unpacked(resp, NULL);
	}
}

int fuzz_ctl(const uint8_t *data, size_t size)
{
	struct frame_reader rd;
	int sv[2];

	if (size < 1)
		return 0;
	size_t chunk = (size_t)(data[0] & 63) + 1;
	int nfds = data[0] & 0x80 ? FRAME_MAX_FDS + 1 : (data[0] & 0x40 ? 1 : 0);
	data++;
	size--;

	int low = fuzz_ctl__lowest_fd();
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	frame_reader_init(&rd);
	int ret = 0, frames = 0;
	size_t off = 0;
	bool eof = false;
	while (ret >= 0) {
		if (off < size) {
			size_t n = size - off < chunk ? size - off : chunk;
			fuzz_ctl__send(sv[0], data + off, n, off == 0 ? nfds : 0);
			off += n;
		} else if (!eof) {
			shutdown(sv[0], SHUT_WR);
			eof = true;
		}
		/* Read until the reader wants more bytes, as the loop does
		 * on each readiness event. */
		while ((ret = frame_read(sv[1], &rd)) == 1) {
			FUZZ_CHECK(rd.have >= 4 && rd.have - 4 <= FRAME_MAX_LEN);
			FUZZ_CHECK(rd.nfds >= 0 && rd.nfds <= FRAME_MAX_FDS);
			fuzz_ctl__handle(frame_payload(&rd), frame_payload_len(&rd));
			/* Descriptors not taken are closed by the reader. */
			frame_reader_next(&rd);
			frames++;
		}
		FUZZ_CHECK(ret <= 0);
		/* Nothing more to read after EOF: the reader must say so. */
		FUZZ_CHECK(!(eof && ret == 0));
	}
	FUZZ_CHECK(ret == -EPIPE || ret == -E2BIG || ret == -EPROTO);
	frame_reader_fini(&rd);
	close(sv[0]);
	close(sv[1]);
	FUZZ_CHECK(fuzz_ctl__lowest_fd() == low);
	return 0;
}

FUZZ_ENTRY(fuzz_ctl)
