/* SPDX-License-Identifier: MIT */
/*
 * rescan.h - SIGHUP: bring the served models in line with the repository.
 * New model directories load, removed ones unload (their requests in
 * flight finish first), changed ones reload (config.pbtxt, the version
 * directories or their files changed).  Runs on a thread of its own,
 * because a reload drains retired models that the loop thread may have to
 * run.  Prefix rescan_.
 */
#ifndef FERRY_RESCAN_H
#define FERRY_RESCAN_H

/* Record what the repository looks like now (after the start-up load). */
void rescan_init(const char *repository);

/* Loop thread: start a rescan, or, if one runs, ask it to go again. */
void rescan_request(void);

/* Wait for a running rescan (shutdown). */
void rescan_fini(void);

#endif
