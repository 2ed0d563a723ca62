/* SPDX-License-Identifier: MIT */
/*
 * service.h - running under systemd without linking libsystemd: the
 * readiness notification protocol (sd_notify: one datagram to
 * $NOTIFY_SOCKET) and socket activation (LISTEN_PID / LISTEN_FDS, the
 * socket at fd 3).  Both are small, stable, documented protocols.
 * Prefix svc_.
 */
#ifndef FERRY_SERVICE_H
#define FERRY_SERVICE_H

/* Send a state ("READY=1", "STOPPING=1", "STATUS=...") to the service
 * manager; a no-op (returning 0) when not started by one. */
int svc_notify(const char *state);

/*
 * svc_listen_fd - the listening Unix stream socket passed by socket
 * activation, made non-blocking and close-on-exec; -1 when there is none.
 * Clears LISTEN_* from the environment so children do not inherit them.
 */
int svc_listen_fd(void);

#endif
