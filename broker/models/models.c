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
#include "broker/backends/builtin.h"
#include "broker/config/repo.h"
#include "broker/sched/sched.h"

/* A model directory scanned at run time: owns the config its records
 * point at; kept until models_unload_all() (records are never freed early). */
struct models__scan {
	struct repo_model rm;
	struct models__scan *next;
};

/* models__lock guards these (see models.h). */
static pthread_rwlock_t models__lock;
static struct models_entry *models__slots[MODELS_MAX_MODELS];
static uint16_t models__gen[MODELS_MAX_MODELS];
static int models__nslots;
static struct models_entry *models__inline[MODELS_MAX_MODELS];
static int models__ninline;
/* Set once by models_load_all, read-only afterwards. */
static struct repo_tree models__repo;
static struct be_registry *models__reg;
static struct models_options models__opt;
static char *models__repo_path;
/* models__ctl serialises load / unload; it guards the two lists below. */
static pthread_mutex_t models__ctl = PTHREAD_MUTEX_INITIALIZER;
static struct models__scan *models__scans;
static struct models_entry *models__graveyard[MODELS_MAX_MODELS * 4];
static int models__ngrave;

void models_rdlock(void)
{
	pthread_rwlock_rdlock(&models__lock);
}

void models_unlock(void)
{
	pthread_rwlock_unlock(&models__lock);
}

static void models__wrlock(void)
{
	pthread_rwlock_wrlock(&models__lock);
}

static void models__init_lock(void)
{
	/* Writer-preferring: the loop thread takes the read lock on every
	 * poll, and a reader-preferring lock would starve a reload. */
	pthread_rwlockattr_t a;
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&models__lock, &a);
	pthread_rwlockattr_destroy(&a);
}

static uint64_t models__realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *models_state_name(enum models_state s)
{
	switch (s) {
	case MODELS_LOADING: return "LOADING";
	case MODELS_READY: return "READY";
	default: return "UNAVAILABLE";
	}
}

struct models_entry *models_by_id(uint32_t id)
{
	uint32_t slot = id & 0xffff;
	if (slot >= (uint32_t)models__nslots)
		return NULL;
	struct models_entry *m = models__slots[slot];
	if (!m || m->id != id)
		return NULL;
	return m;
}

bool models_replaced(uint32_t id)
{
	uint32_t slot = id & 0xffff, gen = id >> 16;
	if (slot >= (uint32_t)models__nslots || gen == 0)
		return false;
	struct models_entry *m = models__slots[slot];
	if (m && m->id == id)
		return m->replaced && m->state != MODELS_READY;
	/* Gone from its slot: only a reload takes a record out of the table
	 * (an unload keeps it), and a client holds only ids of versions that
	 * were READY.  A forged id is told the same: resolving the model
	 * again is all it leads to. */
	return true;
}

struct models_entry *models_find(const char *name, int64_t version)
{
	struct models_entry *best = NULL;
	for (int i = 0; i < models__nslots; i++) {
		struct models_entry *m = models__slots[i];
		if (!m || strcmp(m->name, name))
			continue;
		if (version >= 0) {
			if (m->version == version)
				return m;
		} else if (m->state == MODELS_READY && (!best || m->version > best->version)) {
			best = m;
		}
	}
	if (!best && version < 0) {
		/* No ready version: report one that failed, with its reason. */
		for (int i = 0; i < models__nslots; i++)
			if (models__slots[i] && !strcmp(models__slots[i]->name, name))
				return models__slots[i];
	}
	return best;
}

struct models_entry *models_next(struct models_entry *prev)
{
	int i = 0;
	if (prev)
		i = (int)(prev->id & 0xffff) + 1;
	for (; i < models__nslots; i++)
		if (models__slots[i])
			return models__slots[i];
	return NULL;
}

/* A new record in a free slot; write lock held (or start-up). */
static struct models_entry *models__add(const char *name, int64_t version)
{
	int slot = -1;
	for (int i = 0; i < models__nslots; i++) {
		if (!models__slots[i]) {
			slot = i;
			break;
		}
	}
	if (slot < 0 && models__nslots >= MODELS_MAX_MODELS)
		return NULL;
	struct models_entry *m = calloc(1, sizeof(*m));
	if (!m || !(m->name = strdup(name))) {
		free(m);
		return NULL;
	}
	if (slot < 0)
		slot = models__nslots++;
	m->version = version;
	m->id = (uint32_t)(++models__gen[slot]) << 16 | (uint32_t)slot;
	m->state = MODELS_LOADING;
	models__slots[slot] = m;
	return m;
}

static void models__warn(void *arg, const char *where, const char *msg)
{
	log_warn("%s: %s", where, msg);
}

/*
 * The backend name the table shows: the one serving the model (the native
 * executor where ONNX Runtime is missing), else the one its config names.
 * Write lock held or start-up.
 */
static void models__name_backend(struct models_entry *m, const struct model_config *cfg)
{
	char err[256];
	const char *be = m->sm ? sched_model_backend_name(m->sm)
			       : be_backend_name(cfg, err, sizeof(err));
	char *s = strdup(be ? be : "?");

	if (!s)
		return;         /* keep the old name: the table only shows it */
	free(m->backend);
	m->backend = s;
}

/*
 * Auto-complete rm's config from its newest version's model file (Triton's
 * default; off with --strict-model-config=true) and check what a full
 * config needs.  Failures go into rm, like the scan's own: the model is
 * then reported UNAVAILABLE with the reason.  rm is not yet visible to any
 * reader.
 */
static void models__complete(struct repo_model *rm)
{
	char err[1024], note[1024] = "";
	ferry_backend *b;
	int rc = 0;

	if (models__opt.autocomplete && rm->nversions > 0)
		rc = be_model_autocomplete(models__reg, &rm->cfg, rm->dir,
					   rm->versions[rm->nversions - 1], note, sizeof(note),
					   err, sizeof(err));
	else if (be_registry_resolve(models__reg, &rm->cfg, &b, note, sizeof(note), err,
				     sizeof(err)))
		note[0] = '\0';        /* sched_model_create says why it cannot load */
	if (note[0])
		log_warn("model '%s': %s", rm->name, note);
	if (rc == 0) {
		char file[4200];
		snprintf(file, sizeof(file), "%s/config.pbtxt", rm->dir);
		rc = modelcfg_check_io(&rm->cfg, file, err, sizeof(err));
		/* a config the native executor could not complete: say why */
		if (rc && note[0]) {
			size_t used = strnlen(err, sizeof(err));
			snprintf(err + used, sizeof(err) - used, " [%s]", note);
		}
	}
	if (rc == 0)
		return;
	rm->err = rc;
	free(rm->error);
	rm->error = strdup(err);
}

int models_load_all(const struct models_options *opt)
{
	char err[900];
	int failed = 0, ret;

	models__init_lock();
	models__opt = *opt;
	models__repo_path = strdup(opt->repository);
	if (!models__repo_path)
		return FERRY_ENOMEM;
	ret = be_registry_create(opt->backend_dir, &models__reg);
	if (ret) {
		log_error("backend registry: %s", ferry_strerror(ret));
		return ret;
	}
	for (int i = 0; i < opt->nbackend_config; i++) {
		ret = be_registry_add_config(models__reg, opt->backend_config[i], err,
					     sizeof(err));
		if (ret) {
			log_error("%s", err);
			return ret;
		}
	}
	/* The built-ins go through the same entry points as plugins. */
	ret = builtin_register(models__reg, err, sizeof(err));
	if (ret) {
		log_error("built-in backends: %s", err);
		return ret;
	}
	ret = repo_scan(opt->repository, opt->autocomplete ? REPO_AUTOCOMPLETE : 0, &models__repo,
			models__warn, NULL, err, sizeof(err));
	if (ret) {
		log_error("model repository %s: %s", opt->repository, err);
		return ret;
	}
	if (models__repo.nmodels == 0)
		log_warn("model repository %s holds no models", opt->repository);

	for (int i = 0; i < models__repo.nmodels; i++) {
		struct repo_model *rm = &models__repo.models[i];
		if (!rm->err)
			models__complete(rm);
		if (rm->err) {
			struct models_entry *m = models__add(rm->name, -1);
			if (!m)
				return FERRY_ENOMEM;
			m->state = MODELS_UNAVAILABLE;
			snprintf(m->reason, sizeof(m->reason), "%s",
				 rm->error ? rm->error : ferry_strerror(rm->err));
			log_error("model '%s': %s", rm->name, m->reason);
			failed++;
			continue;
		}
		for (int v = 0; v < rm->nversions; v++) {
			struct models_entry *m = models__add(rm->name, rm->versions[v]);
			if (!m)
				return FERRY_ENOMEM;
			m->cfg = &rm->cfg;
			models__name_backend(m, &rm->cfg);
			ret = sched_model_create(&rm->cfg, rm->dir, rm->versions[v], models__reg,
						 &m->sm, err, sizeof(err));
			if (ret) {
				m->sm = NULL;
				m->state = MODELS_UNAVAILABLE;
				snprintf(m->reason, sizeof(m->reason), "%s", err);
				log_error("model '%s' version %lld failed to load: %s",
					  m->name, (long long)m->version, err);
				failed++;
				continue;
			}
			m->state = MODELS_READY;
			m->loaded_ns = models__realtime_ns();
			models__name_backend(m, &rm->cfg);
			m->is_inline = sched_is_inline(m->sm);
			if (m->is_inline) {
				models__inline[models__ninline++] = m;
				sched_set_kick(m->sm, opt->kick, opt->kick_arg);
			}
		}
	}
	if (failed && opt->strict)
		return FERRY_CONFIG;
	return 0;
}

void models_log_table(void)
{
	log_info("%-24s %-8s %-12s %-10s %-12s %s", "MODEL", "VERSION", "BACKEND",
		 "INSTANCES", "STATE", "REASON");
	for (int i = 0; i < models__nslots; i++) {
		struct models_entry *m = models__slots[i];
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
			 m->backend ? m->backend : "-", inst, models_state_name(m->state),
			 m->reason);
	}
}

int models_run_inline(uint64_t now_ns, uint64_t *deadline_ns)
{
	int done = 0;
	/* The read lock keeps a model that is being unloaded from being
	 * destroyed under us: the unloader takes it out of models__inline under
	 * the write lock before it stops the model. */
	models_rdlock();
	for (int i = 0; i < models__ninline; i++) {
		uint64_t d = UINT64_MAX;
		int n = sched_run_inline(models__inline[i]->sm, now_ns, &d);
		if (n > 0)
			done += n;
		if (d < *deadline_ns)
			*deadline_ns = d;
	}
	models_unlock();
	return done;
}

void models_stop_all(void)
{
	/* No table lock: sched_model_stop runs done() callbacks, and gRPC
	 * is stopped first anyway; models__ctl waits out a load in progress. */
	pthread_mutex_lock(&models__ctl);
	for (int i = 0; i < models__nslots; i++) {
		struct models_entry *m = models__slots[i];
		if (m && m->sm)
			sched_model_stop(m->sm);
	}
	pthread_mutex_unlock(&models__ctl);
}

void models_unload_all(void)
{
	for (int i = 0; i < models__nslots; i++) {
		struct models_entry *m = models__slots[i];
		if (!m)
			continue;
		if (m->sm) {
			sched_model_stop(m->sm);
			sched_model_destroy(m->sm);
		}
		free(m->backend);
		free(m->name);
		free(m);
		models__slots[i] = NULL;
	}
	models__nslots = 0;
	models__ninline = 0;
	for (int i = 0; i < models__ngrave; i++) {
		struct models_entry *m = models__graveyard[i];
		free(m->backend);
		free(m->name);
		free(m);
	}
	models__ngrave = 0;
	while (models__scans) {
		struct models__scan *n = models__scans->next;
		repo_model_free(&models__scans->rm);
		free(models__scans);
		models__scans = n;
	}
	be_registry_destroy(models__reg);
	models__reg = NULL;
	repo_free(&models__repo);
	free(models__repo_path);
	models__repo_path = NULL;
}

/* ---------------------------------------------------------------------- */
/* Run-time load and unload (models__ctl held)                                 */

/* Take m out of service: write lock held.  replaced: by a reload, so
 * requests on its id are told to resolve the model again. */
static void models__retire_locked(struct models_entry *m, const char *why, bool replaced)
{
	m->state = MODELS_UNAVAILABLE;
	m->replaced = replaced;
	snprintf(m->reason, sizeof(m->reason), "%s", why);
	for (int i = 0; i < models__ninline; i++) {
		if (models__inline[i] == m) {
			models__inline[i] = models__inline[--models__ninline];
			break;
		}
	}
}

/* Drain and destroy a retired model's scheduler: no table lock held on
 * entry (its queued requests complete here or on its threads). */
static void models__drain(struct models_entry *m)
{
	struct sched_model *sm;

	pthread_rwlock_rdlock(&models__lock);
	sm = m->sm;
	pthread_rwlock_unlock(&models__lock);
	if (!sm)
		return;
	sched_model_stop(sm);
	/* Readers look at m->sm only under the read lock, after checking
	 * the state we set under the write lock: none can hold it now.  Its
	 * requests are all done: its statistics are final. */
	models__wrlock();
	sched_model_stats(sm, &m->final);
	m->has_final = true;
	m->sm = NULL;
	models_unlock();
	sched_model_destroy(sm);
}

/* Remove a record from the slot table into the graveyard: write lock. */
static void models__bury_locked(struct models_entry *m)
{
	uint32_t slot = m->id & 0xffff;
	if (slot < (uint32_t)models__nslots && models__slots[slot] == m)
		models__slots[slot] = NULL;
	if (models__ngrave < (int)(sizeof(models__graveyard) / sizeof(models__graveyard[0])))
		models__graveyard[models__ngrave++] = m;
	/* else: leak it; a record must outlive every reader, and 16384
	 * reloads in one run is far past any real use. */
}

int models_unload_model(const char *name, char *err, size_t errlen)
{
	struct models_entry *victims[MODELS_MAX_MODELS];
	int n = 0;

	if (!name || !*name) {
		snprintf(err, errlen, "no model name given");
		return FERRY_EINVAL;
	}
	pthread_mutex_lock(&models__ctl);
	models__wrlock();
	for (int i = 0; i < models__nslots; i++) {
		struct models_entry *m = models__slots[i];
		if (m && !strcmp(m->name, name)) {
			models__retire_locked(m, "unloaded", false);
			victims[n++] = m;
		}
	}
	models_unlock();
	if (n == 0) {
		pthread_mutex_unlock(&models__ctl);
		snprintf(err, errlen, "failed to unload '%s': no such model", name);
		return FERRY_ENOENT;
	}
	for (int i = 0; i < n; i++)
		models__drain(victims[i]);
	pthread_mutex_unlock(&models__ctl);
	log_info("model '%s' unloaded", name);
	return 0;
}

/* Does the new scan rm hold m's version again (or is m the record of a
 * model that failed to load, which the new versions replace)? */
static bool models__again(const struct models_entry *m, const struct repo_model *rm)
{
	if (m->version < 0)
		return true;
	for (int v = 0; v < rm->nversions; v++)
		if (rm->versions[v] == m->version)
			return true;
	return false;
}

int models_load_model(const char *name, char *err, size_t errlen)
{
	struct sched_model *sms[64] = { 0 };
	struct models_entry *old[MODELS_MAX_MODELS];
	int nold = 0, ret;
	char msg[1024], bemsg[900];

	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
		snprintf(err, errlen, "'%s' is not a model name", name ? name : "");
		return FERRY_EINVAL;
	}
	struct models__scan *sc = calloc(1, sizeof(*sc));
	if (!sc) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ENOMEM;
	}
	/* repo_scan_model reports a missing directory as a bad config; a load
	 * request for a name the repository lacks is "not found". */
	char dir[4096];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/%s", models__repo_path ? models__repo_path : ".", name);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		free(sc);
		snprintf(err, errlen, "failed to load '%s': no such model directory in the "
			 "repository", name);
		return FERRY_ENOENT;
	}
	pthread_mutex_lock(&models__ctl);
	ret = repo_scan_model(models__repo_path, name,
			      models__opt.autocomplete ? REPO_AUTOCOMPLETE : 0, &sc->rm,
			      models__warn, NULL);
	if (ret) {
		free(sc);
		pthread_mutex_unlock(&models__ctl);
		snprintf(err, errlen, "failed to load '%s': %s", name, ferry_strerror(ret));
		return ret;
	}
	/* Kept whatever happens: a record made below may point at it. */
	sc->next = models__scans;
	models__scans = sc;
	struct repo_model *rm = &sc->rm;

	if (!rm->err)
		models__complete(rm);
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
		ret = sched_model_create(&rm->cfg, rm->dir, rm->versions[v], models__reg, &sms[v],
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

	/* Swap, in one write-locked step: the old versions leave service,
	 * the new ones enter it.  An old record goes from the table (now, or
	 * once drained) when the new set holds its version again; else it
	 * stays, UNAVAILABLE, with its final statistics (models.h). */
	models__wrlock();
	int free_slots = MODELS_MAX_MODELS - models__nslots;
	for (int i = 0; i < models__nslots; i++) {
		struct models_entry *m = models__slots[i];
		if (!m) {
			free_slots++;
		} else if (!strcmp(m->name, name)) {
			old[nold++] = m;
			if (!m->sm && models__again(m, rm))
				free_slots++;
		}
	}
	if (free_slots < rm->nversions) {
		models_unlock();
		for (int v = 0; v < rm->nversions; v++) {
			sched_model_stop(sms[v]);
			sched_model_destroy(sms[v]);
		}
		pthread_mutex_unlock(&models__ctl);
		snprintf(err, errlen, "failed to load '%s': the model table is full", name);
		return FERRY_ENOSPC;
	}
	for (int i = 0; i < nold; i++) {
		if (old[i]->sm)
			models__retire_locked(old[i], "replaced by a reload", true);
		else if (models__again(old[i], rm))
			models__bury_locked(old[i]);  /* nothing to drain */
	}
	for (int v = 0; v < rm->nversions; v++) {
		struct models_entry *m = models__add(name, rm->versions[v]);
		if (!m) {
			/* Out of memory: this version is lost; say so. */
			sched_model_stop(sms[v]);
			sched_model_destroy(sms[v]);
			log_error("model '%s' version %lld: out of memory", name,
				  (long long)rm->versions[v]);
			continue;
		}
		m->cfg = &rm->cfg;
		m->sm = sms[v];
		models__name_backend(m, &rm->cfg);
		m->state = MODELS_READY;
		m->loaded_ns = models__realtime_ns();
		m->is_inline = sched_is_inline(m->sm);
		if (m->is_inline) {
			models__inline[models__ninline++] = m;
			sched_set_kick(m->sm, models__opt.kick, models__opt.kick_arg);
		}
	}
	models_unlock();

	/* The old versions finish what they hold, then go. */
	int retired = 0;
	for (int i = 0; i < nold; i++) {
		if (!old[i]->sm)
			continue;
		retired++;
		models__drain(old[i]);
		if (models__again(old[i], rm)) {
			models__wrlock();
			models__bury_locked(old[i]);
			models_unlock();
		}
	}
	pthread_mutex_unlock(&models__ctl);
	log_info("model '%s' loaded: %d version(s)%s", name, rm->nversions,
		 retired ? ", old versions retired" : "");
	return 0;

failed:
	log_error("model '%s' failed to load: %s", name, msg);
	/* A model that never loaded gets a record with the reason, so
	 * RepositoryIndex shows why (as Triton does); one still serving
	 * keeps serving. */
	if (ret != FERRY_ENOENT) {
		bool serving = false;
		models__wrlock();
		for (int i = 0; i < models__nslots; i++) {
			struct models_entry *m = models__slots[i];
			if (m && !strcmp(m->name, name) && m->state == MODELS_READY)
				serving = true;
		}
		if (!serving) {
			struct models_entry *m = NULL;
			for (int i = 0; i < models__nslots && !m; i++)
				if (models__slots[i] && !strcmp(models__slots[i]->name, name) &&
				    models__slots[i]->version < 0)
					m = models__slots[i];
			if (!m)
				m = models__add(name, -1);
			if (m) {
				m->state = MODELS_UNAVAILABLE;
				snprintf(m->reason, sizeof(m->reason), "%s", msg);
			}
		}
		models_unlock();
	}
	pthread_mutex_unlock(&models__ctl);
	snprintf(err, errlen, "failed to load '%s': %s", name, msg);
	return ret;
}
