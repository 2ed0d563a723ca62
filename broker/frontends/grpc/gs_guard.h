/* SPDX-License-Identifier: MIT */
/*
 * gs_guard.h - the connection guard of the plaintext gRPC port (issue 19,
 * "HTTP/2 abuse").  Prefix gs_guard_ (used by gs_server.c only).
 *
 * gRPC core 1.51 (Debian 12) neither limits connections, nor enforces the
 * MAX_CONCURRENT_STREAMS it advertises against a client that ignores it,
 * nor mitigates rapid reset (CVE-2023-44487).  So ferryd listens on a
 * plaintext gRPC port itself: its own thread accepts, waits (up to the
 * handshake timeout) for the HTTP/2 client preface, and hands the socket
 * to gRPC core (grpc_server_add_channel_from_fd), which names that
 * connection's peer "fd:N".  Every call tells the guard which connection
 * it came on (gs_guard_call_start, from the peer name) and when it ended
 * (gs_guard_call_end), and the guard keeps, per connection:
 *
 *   - calls in flight: over max_inflight (a client that ignores
 *     MAX_CONCURRENT_STREAMS: stream flood) the connection is cut;
 *   - calls that ended cancelled (the client reset them, or they ran out
 *     of time) in the last second: over max_cancels_per_s (rapid reset)
 *     the connection is cut;
 *
 * and across connections a maximum (max_conns: at the maximum, a new
 * connection takes the slot of the one idle for longest, or is closed
 * when every connection has a call in flight) and, optionally, a maximum
 * per client IP address.  "Cut" is shutdown(SHUT_RDWR) of the guard's own
 * descriptor of the socket (it keeps one: gRPC's may be closed and its
 * number reused at any time), so gRPC sees the connection end, cancels
 * its calls and frees them.
 *
 * TLS ports stay on gRPC's own listener: gRPC 1.51 adds a socket only
 * without TLS (SECURITY.md).
 */
#ifndef FERRY_GS_GUARD_H
#define FERRY_GS_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

struct gs_guard_limits {
	int max_conns;                  /* connections at once (> 0) */
	int max_conns_per_ip;           /* 0: no limit per client address */
	int max_inflight;               /* calls in flight on one connection */
	int max_cancels_per_s;          /* cancelled calls a second, one connection */
	int preface_ms;                 /* to send the HTTP/2 client preface */
};

/*
 * gs_guard_listen - bind and listen on host:port (what gRPC's own listener
 * accepts: a numeric IPv4 or IPv6 address, with or without [], or a name;
 * every address it resolves to; "::" and "0.0.0.0" are every interface).
 * addr is the "host:port" text for messages.  0, or FERRY_EBUSY (logged)
 * when no address could be bound.  On the thread that calls gs_start.
 */
int gs_guard_listen(const char *host, int port, const struct gs_guard_limits *l,
		    const char *addr);

/* Start accepting for server (started); 0 or FERRY_ENOMEM. */
int gs_guard_run(grpc_server *server);

/*
 * Stop accepting: join the thread, close the listening sockets and the
 * connections not yet handed to gRPC.  Connections gRPC has go on until
 * it shuts them down.  Calls may still end (gs_guard_call_end) until
 * gs_guard_free.
 */
void gs_guard_stop(void);
/* Free the table, once no call is alive.  Idempotent. */
void gs_guard_free(void);

/*
 * gs_guard_call_start - call arrived: count it on its connection (cutting
 * the connection when it is over its limit).  Returns the handle to give
 * gs_guard_call_end, 0 when the call is on no guarded connection (TLS, or
 * the guard off).  Any thread; lock-free unless a connection is cut.
 */
uint64_t gs_guard_call_start(grpc_call *call);
/* The call of handle h ended; cancelled: it ended cancelled (the
 * RECV_CLOSE_ON_SERVER flag, or it never got its finishing batch). */
void gs_guard_call_end(uint64_t h, bool cancelled);

#endif
