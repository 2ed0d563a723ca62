/* SPDX-License-Identifier: MIT */
/*
 * models.h - ferryd's table of loaded model versions.  Each has a 32-bit
 * id that clients name in submissions: low 16 bits a slot, high 16 bits a
 * generation, so an id never silently names a different model after an
 * unload.  The table is written only by the loop thread (load, unload);
 * lookups by id from the loop thread need no lock.  Prefix fm_.
 */
#ifndef FERRY_MODELS_H
#define FERRY_MODELS_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/modelcfg.h"

struct sched_model;
struct be_registry;

enum fm_state { FM_LOADING = 0, FM_READY, FM_UNAVAILABLE };

struct fmodel {
	char *name;
	int64_t version;
	uint32_t id;
	enum fm_state state;
	char reason[1024];              /* why UNAVAILABLE */
	const struct model_config *cfg; /* the repository scan's; NULL if bad */
	struct sched_model *sm;         /* NULL unless READY */
	bool is_inline;                 /* run by the polling thread */
	char *backend;                  /* resolved backend name, for the log */
};

#define FM_MAX_MODELS 4096

struct fm_options {
	const char *repository;
	const char *backend_dir;
	bool strict;                    /* fail start-up if a model fails */
	void (*kick)(void *arg);        /* inline models: wake the loop thread */
	void *kick_arg;
};

/* Scan the repository and load every model version.  Returns 0, or
 * FERRY_CONFIG when strict and some model failed (all are reported). */
int fm_load_all(const struct fm_options *opt);
/* Stop every model: no new requests; queued ones run to completion. */
void fm_stop_all(void);
void fm_unload_all(void);

/* Run the inline models' ready batches on the calling (loop) thread;
 * *deadline gets the earliest pending batch deadline.  Returns requests
 * completed. */
int fm_run_inline(uint64_t now_ns, uint64_t *deadline_ns);
void fm_log_table(void);

struct fmodel *fm_by_id(uint32_t id);
/* version < 0: the highest READY version. */
struct fmodel *fm_find(const char *name, int64_t version);
/* Iterate: returns the model after `prev` (NULL = first) or NULL. */
struct fmodel *fm_next(struct fmodel *prev);
const char *fm_state_name(enum fm_state s);

#endif
