/* SPDX-License-Identifier: MIT */
/*
 * harness.h - start a real ferryd for a test: a temporary directory with
 * its socket and, optionally, a model repository written by the test.
 */
#ifndef FERRY_TEST_HARNESS_H
#define FERRY_TEST_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include <ferry/ferry.h>

struct th_broker {
	pid_t pid;
	char dir[256];      /* temporary directory, removed by th_stop() */
	char sock[300];     /* socket path */
	char repo[300];     /* repository path (th_repo_*) */
	char log[300];      /* ferryd's stderr */
};

/* A fresh temporary directory with an empty repository in it. */
void th_init(struct th_broker *b);
/* Write <repo>/<name>/config.pbtxt (and an empty version 1). */
void th_model(struct th_broker *b, const char *name, const char *config);
/* Copy the example repository's models into the repository. */
void th_examples(struct th_broker *b);
/* Start ferryd on the repository with extra arguments (NULL-terminated
 * list); waits until it accepts connections.  Asserts on failure. */
void th_start(struct th_broker *b, ...);
/* SIGTERM, wait, return the exit status (or -signal). */
int th_stop(struct th_broker *b);
/* Remove the temporary directory. */
void th_cleanup(struct th_broker *b);
/* Open file descriptors and RSS (kB) of a process. */
int th_fd_count(pid_t pid);
long th_rss_kb(pid_t pid);
/* Mappings of a process (lines of /proc/PID/maps), those whose line holds
 * `what` when it is not NULL (e.g. "ferry-seg": session segments). */
int th_maps_count(pid_t pid, const char *what);
bool th_alive(pid_t pid);
/*
 * th_simple_once - one add_sub request on the example model "simple" (m),
 * inputs derived from seed: asserts the outputs (sum and difference, their
 * dtype and shape) when it succeeds; returns ferry_infer's result.
 */
int th_simple_once(ferry_client *c, ferry_model *m, int32_t seed);
/* A free TCP port on the loopback interface (racy, as any such probe). */
int th_free_port(void);
/* The whole file at path (asserts it can be read), NUL-terminated; *len
 * gets its size.  The caller frees it. */
void *th_slurp(const char *path, size_t *len);

#endif
