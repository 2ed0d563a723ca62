/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - one consistent copy of the model table (see snapshot.h).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/models/snapshot.h"

static bool snapshot__match(const struct models_entry *m, const char *name, int64_t version)
{
	return (!name || !*name || !strcmp(m->name, name)) && (version < 0 || m->version == version);
}

int snapshot_take(struct snapshot *out, const char *name, int64_t version, unsigned flags)
{
	size_t n = 0, text = 0;

	out->n = 0;
	out->models = NULL;
	models_rdlock();
	/* Two passes under one read lock: nothing changes between them. */
	for (struct models_entry *m = models_next(NULL); m; m = models_next(m)) {
		if (!snapshot__match(m, name, version))
			continue;
		n++;
		text += strlen(m->reason) + 1;
	}
	/* One block: the array, then the reasons' copies. */
	struct snapshot_model *a = calloc(1, n * sizeof(*a) + text + 1);
	if (!a) {
		models_unlock();
		return FERRY_ENOMEM;
	}
	char *pool = (char *)(a + n);
	size_t i = 0;
	for (struct models_entry *m = models_next(NULL); m && i < n; m = models_next(m)) {
		if (!snapshot__match(m, name, version))
			continue;
		struct snapshot_model *s = &a[i++];
		size_t rl = strlen(m->reason) + 1;
		memcpy(pool, m->reason, rl);
		s->reason = pool;
		pool += rl;
		s->name = m->name;
		s->version = m->version;
		s->id = m->id;
		s->state = m->state;
		s->backend = m->backend ? m->backend : "";
		s->cfg = m->cfg;
		s->running = m->sm != NULL;
		s->loaded_ns = m->loaded_ns;
		s->last_infer_ms = atomic_load(&m->last_infer_ms);
		if (m->sm) {
			s->instances = sched_model_instance_count(m->sm);
			if (flags & SNAPSHOT_STATS)
				sched_model_stats(m->sm, &s->stats);
		} else if ((flags & SNAPSHOT_STATS) && m->has_final) {
			s->stats = m->final;
		}
	}
	models_unlock();
	out->n = i;
	out->models = a;
	return 0;
}

void snapshot_free(struct snapshot *s)
{
	free(s->models);
	s->models = NULL;
	s->n = 0;
}

const struct snapshot_model *snapshot_find(const struct snapshot *s, const char *name,
					   int64_t version)
{
	const struct snapshot_model *best = NULL, *any = NULL;

	for (size_t i = 0; i < s->n; i++) {
		const struct snapshot_model *m = &s->models[i];
		if (strcmp(m->name, name))
			continue;
		if (version >= 0) {
			if (m->version == version)
				return m;
			continue;
		}
		if (!any)
			any = m;
		if (m->state == MODELS_READY && (!best || m->version > best->version))
			best = m;
	}
	return best ? best : any;
}

bool snapshot_serving(const struct snapshot_model *m)
{
	return m->state == MODELS_READY && m->running && m->cfg;
}
