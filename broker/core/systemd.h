/* SPDX-License-Identifier: MIT */
/*
 * systemd.h - running under systemd without linking libsystemd: the
 * readiness notification protocol (sd_notify: one datagram to
 * $NOTIFY_SOCKET) and socket activation (LISTEN_PID / LISTEN_FDS, the
 * socket at fd 3).  Both are small, stable, documented protocols.
 * Prefix systemd_.
 */
#ifndef FERRY_SYSTEMD_H
#define FERRY_SYSTEMD_H

/* Send a state ("READY=1", "STOPPING=1", "STATUS=...") to the service
 * manager; a no-op (returning 0) when not started by one. */
int systemd_notify(const char *state);

/*
 * systemd_listen_fd - the listening Unix stream socket passed by socket
 * activation, made non-blocking and close-on-exec; -1 when there is none.
 * Clears LISTEN_* from the environment so children do not inherit them.
 */
int systemd_listen_fd(void);

#endif
