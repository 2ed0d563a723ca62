/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - one consistent copy of the model table, for whatever shows
 * it to the outside: the control socket, the gRPC front end, the metrics
 * endpoint (and the HTTP front end).  Prefix snapshot_.
 *
 * A front end takes a snapshot, renders it in its own protocol and frees
 * it; it never walks the table or takes the table's lock itself.  The
 * snapshot is taken under the table's read lock in one pass, so every
 * version in it was in the state shown at the same moment, and the
 * statistics were read in that same pass.
 *
 * LIFETIMES
 *
 * A snapshot owns its array and the copies of what can change (state,
 * reason, statistics).  Its name, backend and cfg pointers point at the
 * model records and configs themselves, which are never freed before
 * models_unload_all() (models.h): they stay valid after snapshot_free().
 *
 * THREADS
 *
 * Any thread that does not hold the table's read lock (snapshot_take
 * takes it).  A snapshot is then the caller's alone.
 */
#ifndef FERRY_SNAPSHOT_H
#define FERRY_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/models/models.h"
#include "broker/sched/sched.h"

struct snapshot_model {
	const char *name;               /* the record's (see LIFETIMES) */
	int64_t version;
	uint32_t id;                    /* what shared-memory clients submit to */
	enum models_state state;
	const char *reason;             /* why UNAVAILABLE; "" otherwise; a copy */
	const char *backend;            /* resolved backend name; "" when none */
	const struct model_config *cfg; /* NULL when the config was refused */
	bool running;                   /* has a scheduler model (serving, or
					 * draining after an unload) */
	uint32_t instances;             /* its instances; 0 when not running */
	uint64_t loaded_ns;             /* CLOCK_REALTIME when it became READY */
	uint64_t last_infer_ms;         /* CLOCK_REALTIME ms of the last success */
	struct sched_stats stats;       /* SNAPSHOT_STATS: running, the live
					 * ones; retired (a reload, an unload),
					 * the final ones; else 0 */
};

struct snapshot {
	size_t n;
	struct snapshot_model *models;  /* in table order */
};

/* snapshot_take flags */
#define SNAPSHOT_STATS 1u               /* read each running model's statistics */

#define SNAPSHOT_ALL_VERSIONS (-1)

/*
 * snapshot_take - copy the model versions named `name` (every model when
 * NULL or "") with version `version` (every version when < 0) into *out.
 * 0, or FERRY_ENOMEM (*out then empty).  Free with snapshot_free().
 */
int snapshot_take(struct snapshot *out, const char *name, int64_t version, unsigned flags);
void snapshot_free(struct snapshot *s);

/*
 * snapshot_find - the version of `name` a request for `version` means, by
 * models_find()'s rule: that version when version >= 0; else the highest
 * READY version, or, when none is ready, some version of the name (to
 * report why it cannot serve).  NULL when there is none.  Points into s.
 */
const struct snapshot_model *snapshot_find(const struct snapshot *s, const char *name,
					   int64_t version);

/* Can m serve requests now: READY, running, with a config. */
bool snapshot_serving(const struct snapshot_model *m);

#endif
