/* SPDX-License-Identifier: MIT */
/*
 * models.c - the table of model versions ferryd serves: built from the
 * repository scan at start-up, looked up by id on every submission,
 * reloaded and unloaded at run time (see models.h for the locking).
 */
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/sched/be_host.h"
#include "broker/core/log.h"
#include "broker/models/models.h"
#include "broker/backends/onnx/ox_backend.h"
#include "broker/config/repo.h"
#include "broker/sched/sched.h"

/* A model directory scanned at run time: owns the config its records
 * point at; kept until fm_unload_all() (records are never freed early). */
struct fm__scan {
	struct rs_model rm;
	struct fm__scan *next;
};

/* fm__lock guards these (see models.h). */
static pthread_rwlock_t fm__lock;
static struct fmodel *fm__slots[FM_MAX_MODELS];
static uint16_t fm__gen[FM_MAX_MODELS];
static int fm__nslots;
static struct fmodel *fm__inline[FM_MAX_MODELS];
static int fm__ninline;
/* Set once by fm_load_all, read-only afterwards. */
static struct rs_repo fm__repo;
static struct be_registry *fm__reg;
static struct fm_options fm__opt;
static char *fm__repo_path;
/* fm__ctl serialises load / unload; it guards the two lists below. */
static pthread_mutex_t fm__ctl = PTHREAD_MUTEX_INITIALIZER;
static struct fm__scan *fm__scans;
static struct fmodel *fm__graveyard[FM_MAX_MODELS * 4];
static int fm__ngrave;

void fm_rdlock(void)
{
	pthread_rwlock_rdlock(&fm__lock);
}

void fm_unlock(void)
{
	pthread_rwlock_unlock(&fm__lock);
}

static void fm__wrlock(void)
{
	pthread_rwlock_wrlock(&fm__lock);
}

static void fm__init_lock(void)
{
	/* Writer-preferring: the loop thread takes the read lock on every
	 * poll, and a reader-preferring lock would starve a reload. */
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fm__lock, &a);
	pthread_rwlockattr_destroy(&a);
}

static uint64_t fm__realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

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

/* A new record in a free slot; write lock held (or start-up). */
static struct fmodel *fm__add(const char *name, int64_t version)
{
	int slot = -1;
	for (int i = 0; i < fm__nslots; i++) {
		if (!fm__slots[i]) {
			slot = i;
			break;
		}
	}
	if (slot < 0 && fm__nslots >= FM_MAX_MODELS)
		return NULL;
	struct fmodel *m = calloc(1, sizeof(*m));
	if (!m || !(m->name = strdup(name))) {
		free(m);
		return NULL;
	}
	if (slot < 0)
		slot = fm__nslots++;
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

	fm__init_lock();
	fm__opt = *opt;
	fm__repo_path = strdup(opt->repository);
	if (!fm__repo_path)
		return FERRY_ENOMEM;
	ret = be_registry_create(opt->backend_dir, &fm__reg);
	if (ret) {
		log_error("backend registry: %s", ferry_strerror(ret));
		return ret;
	}
	/* The ONNX executor is built in, registered through the same entry
	 * points as a plugin. */
	ret = onnx_backend_register(fm__reg, err, sizeof(err));
	if (ret) {
		log_error("onnx backend: %s", err);
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
			m->loaded_ns = fm__realtime_ns();
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
	/* The read lock keeps a model that is being unloaded from being
	 * destroyed under us: the unloader takes it out of fm__inline under
	 * the write lock before it stops the model. */
	fm_rdlock();
	for (int i = 0; i < fm__ninline; i++) {
		uint64_t d = UINT64_MAX;
		int n = sched_run_inline(fm__inline[i]->sm, now_ns, &d);
		if (n > 0)
			done += n;
		if (d < *deadline_ns)
			*deadline_ns = d;
	}
	fm_unlock();
	return done;
}

void fm_stop_all(void)
{
	/* No table lock: sched_model_stop runs done() callbacks, and gRPC
	 * is stopped first anyway; fm__ctl waits out a load in progress. */
	pthread_mutex_lock(&fm__ctl);
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (m && m->sm)
			sched_model_stop(m->sm);
	}
	pthread_mutex_unlock(&fm__ctl);
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
	for (int i = 0; i < fm__ngrave; i++) {
		struct fmodel *m = fm__graveyard[i];
		free(m->backend);
		free(m->name);
		free(m);
	}
	fm__ngrave = 0;
	while (fm__scans) {
		struct fm__scan *n = fm__scans->next;
		rs_model_free(&fm__scans->rm);
		free(fm__scans);
		fm__scans = n;
	}
	be_registry_destroy(fm__reg);
	fm__reg = NULL;
	rs_free(&fm__repo);
	free(fm__repo_path);
	fm__repo_path = NULL;
}

/* ---------------------------------------------------------------------- */
/* Run-time load and unload (fm__ctl held)                                 */

/* Take m out of service: write lock held. */
static void fm__retire_locked(struct fmodel *m, const char *why)
{
	m->state = FM_UNAVAILABLE;
	snprintf(m->reason, sizeof(m->reason), "%s", why);
	for (int i = 0; i < fm__ninline; i++) {
		if (fm__inline[i] == m) {
			fm__inline[i] = fm__inline[--fm__ninline];
			break;
		}
	}
}

/* Drain and destroy a retired model's scheduler: no table lock held on
 * entry (its queued requests complete here or on its threads). */
static void fm__drain(struct fmodel *m)
{
	struct sched_model *sm;

	pthread_rwlock_rdlock(&fm__lock);
	sm = m->sm;
	pthread_rwlock_unlock(&fm__lock);
	if (!sm)
		return;
	sched_model_stop(sm);
	/* Readers look at m->sm only under the read lock, after checking
	 * the state we set under the write lock: none can hold it now. */
	fm__wrlock();
	m->sm = NULL;
	fm_unlock();
	sched_model_destroy(sm);
}

/* Remove a record from the slot table into the graveyard: write lock. */
static void fm__bury_locked(struct fmodel *m)
{
	uint32_t slot = m->id & 0xffff;
	if (slot < (uint32_t)fm__nslots && fm__slots[slot] == m)
		fm__slots[slot] = NULL;
	if (fm__ngrave < (int)(sizeof(fm__graveyard) / sizeof(fm__graveyard[0])))
		fm__graveyard[fm__ngrave++] = m;
	/* else: leak it; a record must outlive every reader, and 16384
	 * reloads in one run is far past any real use. */
}

int fm_unload_model(const char *name, char *err, size_t errlen)
{
	struct fmodel *victims[FM_MAX_MODELS];
	int n = 0;

	if (!name || !*name) {
		snprintf(err, errlen, "no model name given");
		return FERRY_EINVAL;
	}
	pthread_mutex_lock(&fm__ctl);
	fm__wrlock();
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (m && !strcmp(m->name, name)) {
			fm__retire_locked(m, "unloaded");
			victims[n++] = m;
		}
	}
	fm_unlock();
	if (n == 0) {
		pthread_mutex_unlock(&fm__ctl);
		snprintf(err, errlen, "failed to unload '%s': no such model", name);
		return FERRY_ENOENT;
	}
	for (int i = 0; i < n; i++)
		fm__drain(victims[i]);
	pthread_mutex_unlock(&fm__ctl);
	log_info("model '%s' unloaded", name);
	return 0;
}

int fm_load_model(const char *name, char *err, size_t errlen)
{
	struct sched_model *sms[64] = { 0 };
	struct fmodel *old[FM_MAX_MODELS];
	int nold = 0, ret;
	char msg[1024], bemsg[900];

	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
		snprintf(err, errlen, "'%s' is not a model name", name ? name : "");
		return FERRY_EINVAL;
	}
	struct fm__scan *sc = calloc(1, sizeof(*sc));
	if (!sc) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ENOMEM;
	}
	/* rs_scan_model reports a missing directory as a bad config; a load
	 * request for a name the repository lacks is "not found". */
	char dir[4096];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/%s", fm__repo_path ? fm__repo_path : ".", name);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		free(sc);
		snprintf(err, errlen, "failed to load '%s': no such model directory in the "
			 "repository", name);
		return FERRY_ENOENT;
	}
	pthread_mutex_lock(&fm__ctl);
	ret = rs_scan_model(fm__repo_path, name, &sc->rm, fm__warn, NULL);
	if (ret) {
		free(sc);
		pthread_mutex_unlock(&fm__ctl);
		snprintf(err, errlen, "failed to load '%s': %s", name, ferry_strerror(ret));
		return ret;
	}
	/* Kept whatever happens: a record made below may point at it. */
	sc->next = fm__scans;
	fm__scans = sc;
	struct rs_model *rm = &sc->rm;

	if (rm->err) {
		ret = rm->err;
		snprintf(msg, sizeof(msg), "%s", rm->error ? rm->error : ferry_strerror(ret));
		goto failed;
	}
	if (rm->nversions > (int)(sizeof(sms) / sizeof(sms[0]))) {
		ret = FERRY_E2BIG;
		snprintf(msg, sizeof(msg), "%d versions selected, at most %d load at run time",
			 rm->nversions, (int)(sizeof(sms) / sizeof(sms[0])));
		goto failed;
	}
	/* Build every new version first, outside the table lock: a reload
	 * that fails must leave the old versions serving. */
	for (int v = 0; v < rm->nversions; v++) {
		ret = sched_model_create(&rm->cfg, rm->dir, rm->versions[v], fm__reg, &sms[v],
					 bemsg, sizeof(bemsg));
		if (ret) {
			snprintf(msg, sizeof(msg), "version %lld: %s", (long long)rm->versions[v],
				 bemsg);
			for (int k = 0; k < v; k++) {
				sched_model_stop(sms[k]);
				sched_model_destroy(sms[k]);
			}
			goto failed;
		}
	}

	/* Swap: the old records leave the table, the new ones enter it. */
	fm__wrlock();
	for (int i = 0; i < fm__nslots; i++) {
		struct fmodel *m = fm__slots[i];
		if (m && !strcmp(m->name, name)) {
			fm__retire_locked(m, "replaced by a reload");
			old[nold++] = m;
		}
	}
	int free_slots = FM_MAX_MODELS - fm__nslots + nold;
	for (int i = 0; i < fm__nslots; i++)
		if (!fm__slots[i])
			free_slots++;
	if (free_slots < rm->nversions) {
		/* Undo: the old ones go back into service. */
		for (int i = 0; i < nold; i++) {
			old[i]->state = old[i]->sm ? FM_READY : FM_UNAVAILABLE;
			old[i]->reason[0] = '\0';
			if (old[i]->sm && old[i]->is_inline)
				fm__inline[fm__ninline++] = old[i];
		}
		fm_unlock();
		for (int v = 0; v < rm->nversions; v++) {
			sched_model_stop(sms[v]);
			sched_model_destroy(sms[v]);
		}
		pthread_mutex_unlock(&fm__ctl);
		snprintf(err, errlen, "failed to load '%s': the model table is full", name);
		return FERRY_ENOSPC;
	}
	for (int i = 0; i < nold; i++)
		if (!old[i]->sm)
			fm__bury_locked(old[i]);  /* nothing to drain */
	for (int v = 0; v < rm->nversions; v++) {
		struct fmodel *m = fm__add(name, rm->versions[v]);
		if (!m) {
			/* Out of memory: this version is lost; say so. */
			sched_model_stop(sms[v]);
			sched_model_destroy(sms[v]);
			log_error("model '%s' version %lld: out of memory", name,
				  (long long)rm->versions[v]);
			continue;
		}
		m->cfg = &rm->cfg;
		const char *be = be_backend_name(&rm->cfg, bemsg, sizeof(bemsg));
		m->backend = strdup(be ? be : "?");
		m->sm = sms[v];
		m->state = FM_READY;
		m->loaded_ns = fm__realtime_ns();
		m->is_inline = sched_is_inline(m->sm);
		if (m->is_inline) {
			fm__inline[fm__ninline++] = m;
			sched_set_kick(m->sm, fm__opt.kick, fm__opt.kick_arg);
		}
	}
	fm_unlock();

	/* The old versions finish what they hold, then go. */
	for (int i = 0; i < nold; i++) {
		if (!old[i]->sm)
			continue;
		fm__drain(old[i]);
		fm__wrlock();
		fm__bury_locked(old[i]);
		fm_unlock();
	}
	pthread_mutex_unlock(&fm__ctl);
	log_info("model '%s' loaded: %d version(s)%s", name, rm->nversions,
		 nold ? ", old versions retired" : "");
	return 0;

failed:
	log_error("model '%s' failed to load: %s", name, msg);
	/* A model that never loaded gets a record with the reason, so
	 * RepositoryIndex shows why (as Triton does); one still serving
	 * keeps serving. */
	if (ret != FERRY_ENOENT) {
		bool serving = false;
		fm__wrlock();
		for (int i = 0; i < fm__nslots; i++) {
			struct fmodel *m = fm__slots[i];
			if (m && !strcmp(m->name, name) && m->state == FM_READY)
				serving = true;
		}
		if (!serving) {
			struct fmodel *m = NULL;
			for (int i = 0; i < fm__nslots && !m; i++)
				if (fm__slots[i] && !strcmp(fm__slots[i]->name, name) &&
				    fm__slots[i]->version < 0)
					m = fm__slots[i];
			if (!m)
				m = fm__add(name, -1);
			if (m) {
				m->state = FM_UNAVAILABLE;
				snprintf(m->reason, sizeof(m->reason), "%s", msg);
			}
		}
		fm_unlock();
	}
	pthread_mutex_unlock(&fm__ctl);
	snprintf(err, errlen, "failed to load '%s': %s", name, msg);
	return ret;
}
