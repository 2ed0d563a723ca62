/* SPDX-License-Identifier: MIT */
/*
 * models.h - ferryd's table of loaded model versions.  Each has a 32-bit
 * id that clients name in submissions: low 16 bits a slot, high 16 bits a
 * generation, so an id never silently names a different model after an
 * unload.  Prefix models_.
 *
 * THREADS AND LOCKS
 *
 * The table is read by the loop thread (sessions, the control socket,
 * inline models) and by the gRPC threads, and written at run time by
 * models_load_model() / models_unload_model() (RepositoryModelLoad / Unload, from a
 * gRPC thread).
 *   - models_rdlock() / models_unlock() (a writer-preferring rwlock) guard the slot
 *     table, the inline list and each record's state, sm and reason.  Hold
 *     the read lock from a lookup (models_by_id, models_find, models_next) until the
 *     last use of m->sm: a model is destroyed only under the write lock,
 *     after it was marked UNAVAILABLE and drained.  Never take it twice in
 *     one thread (a waiting writer would deadlock the second read lock).
 *   - Loads and unloads are serialised with each other by a mutex of their
 *     own, so at most one writer rebuilds a model at a time.
 *   - A record (struct models_entry) and its cfg are never freed before
 *     models_unload_all(): a caller that found one may keep reading its name and
 *     cfg after dropping the lock (a request in flight, the control socket).
 *     A reload adds new records and retires the old ones to a graveyard.
 *   - sched_model_stop() of a retired model runs with no table lock held:
 *     the done() callbacks of its queued requests must not take fm locks.
 */
#ifndef FERRY_MODELS_H
#define FERRY_MODELS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/config/modelcfg.h"
#include "broker/sched/sched.h"

struct be_registry;

enum models_state { MODELS_LOADING = 0, MODELS_READY, MODELS_UNAVAILABLE };

struct models_entry {
	char *name;
	int64_t version;
	uint32_t id;
	enum models_state state;
	char reason[1024];              /* why UNAVAILABLE */
	const struct model_config *cfg; /* the repository scan's; NULL if bad */
	struct sched_model *sm;         /* NULL unless READY */
	bool is_inline;                 /* run by the polling thread */
	char *backend;                  /* resolved backend name, for the log */
	uint64_t loaded_ns;             /* CLOCK_REALTIME when it became READY */
	_Atomic uint64_t last_infer_ms; /* CLOCK_REALTIME ms of the last success */
	bool replaced;                  /* retired by a reload (not an unload):
					 * requests on its id resolve the model
					 * again (models_replaced) */
	bool has_final;                 /* final: its statistics when its
					 * scheduler model was destroyed */
	struct sched_stats final;
};

#define MODELS_MAX_MODELS 4096

struct models_options {
	const char *repository;
	const char *backend_dir;        /* colon-separated plugin directories */
	const char *const *backend_config;  /* --backend-config specs */
	int nbackend_config;
	bool autocomplete;              /* complete configs from the model files */
	bool strict;                    /* fail start-up if a model fails */
	void (*kick)(void *arg);        /* inline models: wake the loop thread */
	void *kick_arg;
};

/* Scan the repository and load every model version.  Returns 0, or
 * FERRY_CONFIG when strict and some model failed (all are reported). */
int models_load_all(const struct models_options *opt);
/* Stop every model: no new requests; queued ones run to completion. */
void models_stop_all(void);
void models_unload_all(void);

/* Run the inline models' ready batches on the calling (loop) thread;
 * *deadline gets the earliest pending batch deadline.  Returns requests
 * completed. */
int models_run_inline(uint64_t now_ns, uint64_t *deadline_ns);
void models_log_table(void);

/* The table's read lock (see THREADS AND LOCKS). */
void models_rdlock(void);
void models_unlock(void);

/*
 * models_load_model - (re)load model `name` from the repository at run time:
 * rescan <repo>/<name>, create the new versions' scheduler models, then
 * swap them in and retire the old versions (their queued requests finish
 * first).  A failed reload leaves the old versions serving.
 *
 * The swap is one write-locked step: a lookup by name finds the old
 * versions READY or the new ones, never neither, so a request by name
 * (gRPC, HTTP) never fails for the reload.  A request already queued on an
 * old version is run by it; one sent on an old version's id afterwards
 * is refused as replaced (models_replaced), and libferry resolves the
 * model again and resubmits it.  An old version that the new set does not
 * hold again stays in the table, UNAVAILABLE ("replaced by a reload"),
 * with its final statistics; one it does hold is replaced by the new
 * record.  Returns 0, or
 * FERRY_ENOENT (no such directory), FERRY_CONFIG (bad config), the error
 * of the backend that refused, ...: with a message in err.  Any thread
 * but the loop thread (a retired inline model may need it to drain); not
 * with the read lock held.
 */
int models_load_model(const char *name, char *err, size_t errlen);

/*
 * models_unload_model - mark every version of `name` UNAVAILABLE ("unloaded"),
 * let its in-flight requests finish, then destroy it.  The records stay in
 * the table (RepositoryIndex lists them, as Triton does).  FERRY_ENOENT
 * for an unknown name.  Same threading rule as models_load_model().
 */
int models_unload_model(const char *name, char *err, size_t errlen);

struct models_entry *models_by_id(uint32_t id);
/* Was id the handle of a version that a reload replaced (retired, or gone
 * from the table), so that a request sent on it should find the model's
 * current version by name?  Read lock held. */
bool models_replaced(uint32_t id);
/* version < 0: the highest READY version. */
struct models_entry *models_find(const char *name, int64_t version);
/* Iterate: returns the model after `prev` (NULL = first) or NULL. */
struct models_entry *models_next(struct models_entry *prev);
const char *models_state_name(enum models_state s);

#endif
