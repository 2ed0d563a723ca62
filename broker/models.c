/* SPDX-License-Identifier: MIT */
/*
 * models.c - the table of model versions ferryd serves: built from the
 * repository scan at start-up, looked up by id on every submission.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/backend.h"
#include "broker/log.h"
#include "broker/models.h"
#include "broker/repo_scan.h"
#include "broker/sched.h"

/* Loop thread only (see models.h). */
static struct fmodel *fm__slots[FM_MAX_MODELS];
static uint16_t fm__gen[FM_MAX_MODELS];
static int fm__nslots;
static struct rs_repo fm__repo;
static struct be_registry *fm__reg;
static struct fmodel *fm__inline[FM_MAX_MODELS];
static int fm__ninline;

const char *fm_state_name(enum fm_state s)
{
	switch (s) {
	case FM_LOADING: return "LOADING";
	case FM_READY: return "READY";
	default: return "UNAVAILABLE";
	}
}

struct fmodel *fm_by_id(uint32_t id)
{
	uint32_t slot = id & 0xffff;
	if (slot >= (uint32_t)fm__nslots)
		return NULL;
	struct fmodel *m = fm__slots[slot];
	if (!m || m->id != id)
		return NULL;
	return m;
}

struct fmodel *fm_find(const char *name, int64_t version)
{
	struct fmodel *best = NULL;
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (!m || strcmp(m->name, name))
			continue;
		if (version >= 0) {
			if (m->version == version)
				return m;
		} else if (m->state == FM_READY && (!best || m->version > best->version)) {
			best = m;
		}
	}
	if (!best && version < 0) {
		/* No ready version: report one that failed, with its reason. */
		for (int i = 0; i < fm__nslots; i++)
			if (fm__slots[i] && !strcmp(fm__slots[i]->name, name))
				return fm__slots[i];
	}
	return best;
}

struct fmodel *fm_next(struct fmodel *prev)
{
	int i = 0;
	if (prev)
		i = (int)(prev->id & 0xffff) + 1;
	for (; i < fm__nslots; i++)
		if (fm__slots[i])
			return fm__slots[i];
	return NULL;
}

static struct fmodel *fm__add(const char *name, int64_t version)
{
	if (fm__nslots >= FM_MAX_MODELS)
		return NULL;
	struct fmodel *m = calloc(1, sizeof(*m));
	if (!m || !(m->name = strdup(name))) {
		free(m);
		return NULL;
	}
	int slot = fm__nslots++;
	m->version = version;
	m->id = (uint32_t)(++fm__gen[slot]) << 16 | (uint32_t)slot;
	m->state = FM_LOADING;
	fm__slots[slot] = m;
	return m;
}

static void fm__warn(void *arg, const char *where, const char *msg)
{
	log_warn("%s: %s", where, msg);
}

int fm_load_all(const struct fm_options *opt)
{
	char err[900];
	int failed = 0, ret;

	ret = be_registry_create(opt->backend_dir, &fm__reg);
	if (ret) {
		log_error("backend registry: %s", ferry_strerror(ret));
		return ret;
	}
	ret = rs_scan(opt->repository, &fm__repo, fm__warn, NULL, err, sizeof(err));
	if (ret) {
		log_error("model repository %s: %s", opt->repository, err);
		return ret;
	}
	if (fm__repo.nmodels == 0)
		log_warn("model repository %s holds no models", opt->repository);

	for (int i = 0; i < fm__repo.nmodels; i++) {
		struct rs_model *rm = &fm__repo.models[i];
		if (rm->err) {
			struct fmodel *m = fm__add(rm->name, -1);
			if (!m)
				return FERRY_ENOMEM;
			m->state = FM_UNAVAILABLE;
			snprintf(m->reason, sizeof(m->reason), "%s",
				 rm->error ? rm->error : ferry_strerror(rm->err));
			log_error("model '%s': %s", rm->name, m->reason);
			failed++;
			continue;
		}
		for (int v = 0; v < rm->nversions; v++) {
			struct fmodel *m = fm__add(rm->name, rm->versions[v]);
			if (!m)
				return FERRY_ENOMEM;
			m->cfg = &rm->cfg;
			const char *be = be_backend_name(&rm->cfg, err, sizeof(err));
			m->backend = strdup(be ? be : "?");
			ret = sched_model_create(&rm->cfg, rm->dir, rm->versions[v], fm__reg,
						 &m->sm, err, sizeof(err));
			if (ret) {
				m->sm = NULL;
				m->state = FM_UNAVAILABLE;
				snprintf(m->reason, sizeof(m->reason), "%s", err);
				log_error("model '%s' version %lld failed to load: %s",
					  m->name, (long long)m->version, err);
				failed++;
				continue;
			}
			m->state = FM_READY;
			m->is_inline = sched_is_inline(m->sm);
			if (m->is_inline) {
				fm__inline[fm__ninline++] = m;
				sched_set_kick(m->sm, opt->kick, opt->kick_arg);
			}
		}
	}
	if (failed && opt->strict)
		return FERRY_CONFIG;
	return 0;
}

void fm_log_table(void)
{
	log_info("%-24s %-8s %-12s %-10s %-12s %s", "MODEL", "VERSION", "BACKEND",
		 "INSTANCES", "STATE", "REASON");
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (!m)
			continue;
		char inst[32] = "-";
		if (m->cfg) {
			int n = 0;
			for (int g = 0; g < m->cfg->ngroups; g++)
				n += m->cfg->groups[g].count;
			if (m->is_inline)
				snprintf(inst, sizeof(inst), "inline");
			else
				snprintf(inst, sizeof(inst), "%d", n ? n : 1);
		}
		char ver[24];
		if (m->version < 0)
			snprintf(ver, sizeof(ver), "-");
		else
			snprintf(ver, sizeof(ver), "%lld", (long long)m->version);
		log_info("%-24s %-8s %-12s %-10s %-12s %s", m->name, ver,
			 m->backend ? m->backend : "-", inst, fm_state_name(m->state),
			 m->reason);
	}
}

int fm_run_inline(uint64_t now_ns, uint64_t *deadline_ns)
{
	int done = 0;
	for (int i = 0; i < fm__ninline; i++) {
		uint64_t d = UINT64_MAX;
		int n = sched_run_inline(fm__inline[i]->sm, now_ns, &d);
		if (n > 0)
			done += n;
		if (d < *deadline_ns)
			*deadline_ns = d;
	}
	return done;
}

void fm_stop_all(void)
{
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (m && m->sm)
			sched_model_stop(m->sm);
	}
}

void fm_unload_all(void)
{
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (!m)
			continue;
		if (m->sm) {
			sched_model_stop(m->sm);
			sched_model_destroy(m->sm);
		}
		free(m->backend);
		free(m->name);
		free(m);
		fm__slots[i] = NULL;
	}
	fm__nslots = 0;
	fm__ninline = 0;
	be_registry_destroy(fm__reg);
	fm__reg = NULL;
	rs_free(&fm__repo);
}
