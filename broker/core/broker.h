/* SPDX-License-Identifier: MIT */
/*
 * broker.h - ferryd's process-wide state and options.  Written by the loop
 * thread (the main thread) only, unless a field says otherwise.
 */
#ifndef FERRY_BROKER_H
#define FERRY_BROKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/core/loop.h"
#include "broker/core/session.h"
#include "shm/fshm.h"

#define BROKER_MAX_ALLOW 64

struct broker_options {
	const char *repository;
	const char *socket_path;
	const char *backend_dir;
	enum fshm_wait_policy wait;
	uint64_t spin_ns;               /* hybrid: spin this long when idle */
	int pollers;                    /* 0: one per CPU */
	int numa;                       /* -2 auto, -1 off, >= 0 a node */
	int gpu;                        /* -1 off, 0 auto, 1 on (a GPU is required) */
	bool strict;                    /* exit if a model fails to load
					 * (--exit-on-error) */
	bool autocomplete;              /* complete configs from model files
					 * (--strict-model-config=false) */
	int nbackend_config;
	const char *backend_config[64]; /* --backend-config specs */
	bool force_epoll;
	int nallow_uid, nallow_gid;
	uid_t allow_uid[BROKER_MAX_ALLOW];
	gid_t allow_gid[BROKER_MAX_ALLOW];
	uint32_t max_sessions;
	uint32_t max_sessions_per_uid;  /* 0: no per-user limit */
	const char *socket_group;       /* group of the control socket, or NULL */
	uint64_t idle_exit_ns;          /* exit after this long with no session; 0 never */
	struct session_limits limits;
};

struct broker {
	struct broker_options opt;
	struct loop *loop;
	uint64_t epoch;
	int listen_fd, listen_handle;
	int signal_fd, signal_handle;
	int kick_fd, kick_handle;       /* admin replies and corrupt sessions */
	bool stopping;
	struct session *sessions;       /* live sessions (list) */
	uint32_t nsessions;
	uint64_t next_session_id;
	bool socket_created;
};

extern struct broker g_broker;

/* control.c */
int control_listen(struct broker *b);
void control_close_listener(struct broker *b);
void control_session_close(struct broker *b, struct session *s, const char *why);
/* Loop thread: answer the load / unload requests the admin thread has
 * finished (called when the kick eventfd fires). */
void control_admin_replies(struct broker *b);
/* Shutdown: wait for a load or unload under way, drop the rest. */
void control_admin_stop(void);

#endif
