/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/core/log.h"
#include "broker/models/models.h"
#include "broker/models/rescan.h"
#include "broker/core/systemd.h"

/* A model directory's fingerprint: what a change to it changes. */
struct rsc_entry {
	char *name;
	uint64_t sig;
};

/* Guarded by rsc__lock; the entries are the rescan thread's. */
static pthread_mutex_t rsc__lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rsc__cond = PTHREAD_COND_INITIALIZER;
static bool rsc__running, rsc__again;
static char *rsc__repo;
static struct rsc_entry *rsc__ents;
static int rsc__n;

static uint64_t rsc__mix(uint64_t h, uint64_t v)
{
	/* FNV-1a over the 8 bytes of v. */
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t rsc__stat_sig(uint64_t h, const char *path)
{
	struct stat st;
	if (stat(path, &st))
		return rsc__mix(h, 0xdead);
	h = rsc__mix(h, (uint64_t)st.st_size);
	h = rsc__mix(h, (uint64_t)st.st_mtim.tv_sec);
	return rsc__mix(h, (uint64_t)st.st_mtim.tv_nsec);
}

/* The fingerprint of <repo>/<name>: config.pbtxt, and each version
 * directory with the files in it (names, sizes, times), in name order. */
static uint64_t rsc__sig(const char *name)
{
	char path[4096];
	uint64_t h = 0xcbf29ce484222325ULL;
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", rsc__repo, name);
	h = rsc__stat_sig(h, path);
	snprintf(path, sizeof(path), "%s/%s", rsc__repo, name);
	struct dirent **vs = NULL;
	int nv = scandir(path, &vs, NULL, alphasort);
	for (int i = 0; i < nv; i++) {
		const char *v = vs[i]->d_name;
		if (v[0] >= '0' && v[0] <= '9') {
			for (const char *c = v; *c; c++)
				h = rsc__mix(h, (uint64_t)(unsigned char)*c);
			char vdir[4096];
			snprintf(vdir, sizeof(vdir), "%s/%s/%s", rsc__repo, name, v);
			struct dirent **fs = NULL;
			int nf = scandir(vdir, &fs, NULL, alphasort);
			for (int k = 0; k < nf; k++) {
				if (fs[k]->d_name[0] != '.') {
					char f[8192];
					snprintf(f, sizeof(f), "%s/%s", vdir, fs[k]->d_name);
					h = rsc__stat_sig(h, f);
				}
				free(fs[k]);
			}
			free(fs);
		}
		free(vs[i]);
	}
	free(vs);
	return h;
}

/* Names of the model directories (those with a config.pbtxt). */
static int rsc__list(char ***out)
{
	struct dirent **ds = NULL;
	int n = scandir(rsc__repo, &ds, NULL, alphasort), k = 0;
	char **names = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof(*names));
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s/config.pbtxt", rsc__repo, ds[i]->d_name);
		if (names && ds[i]->d_name[0] != '.' && stat(path, &st) == 0)
			names[k++] = strdup(ds[i]->d_name);
		free(ds[i]);
	}
	free(ds);
	*out = names;
	return names ? k : -ENOMEM;
}

static struct rsc_entry *rsc__find(const char *name)
{
	for (int i = 0; i < rsc__n; i++)
		if (!strcmp(rsc__ents[i].name, name))
			return &rsc__ents[i];
	return NULL;
}

static void rsc__remember(const char *name, uint64_t sig)
{
	struct rsc_entry *e = rsc__find(name);
	if (e) {
		e->sig = sig;
		return;
	}
	struct rsc_entry *ne = realloc(rsc__ents, (size_t)(rsc__n + 1) * sizeof(*ne));
	if (!ne)
		return;
	rsc__ents = ne;
	rsc__ents[rsc__n].name = strdup(name);
	rsc__ents[rsc__n].sig = sig;
	rsc__n++;
}

static void rsc__forget(const char *name)
{
	for (int i = 0; i < rsc__n; i++) {
		if (!strcmp(rsc__ents[i].name, name)) {
			free(rsc__ents[i].name);
			rsc__ents[i] = rsc__ents[--rsc__n];
			return;
		}
	}
}

void rsc_init(const char *repository)
{
	char **names;
	rsc__repo = strdup(repository);
	int n = rsc__list(&names);
	for (int i = 0; i < n; i++) {
		rsc__remember(names[i], rsc__sig(names[i]));
		free(names[i]);
	}
	free(names);
}

static void rsc__once(void)
{
	char **names, err[1024];
	int n = rsc__list(&names), loaded = 0, unloaded = 0, failed = 0;
	if (n < 0) {
		log_error("rescan: cannot read %s", rsc__repo);
		return;
	}
	for (int i = 0; i < n; i++) {
		uint64_t sig = rsc__sig(names[i]);
		struct rsc_entry *e = rsc__find(names[i]);
		if (e && e->sig == sig)
			continue;
		log_info("rescan: %s model '%s'", e ? "reloading changed" : "loading new", names[i]);
		if (fm_load_model(names[i], err, sizeof(err))) {
			log_error("rescan: %s", err);
			failed++;
		} else {
			loaded++;
		}
		/* Remembered even when it failed: the same broken files are
		 * not retried until they change again. */
		rsc__remember(names[i], sig);
	}
	/* Directories that went away. */
	for (int i = 0; i < rsc__n;) {
		bool present = false;
		for (int k = 0; k < n && !present; k++)
			present = !strcmp(names[k], rsc__ents[i].name);
		if (present) {
			i++;
			continue;
		}
		log_info("rescan: unloading removed model '%s'", rsc__ents[i].name);
		if (fm_unload_model(rsc__ents[i].name, err, sizeof(err)) && err[0])
			log_warn("rescan: %s", err);
		unloaded++;
		rsc__forget(rsc__ents[i].name);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	log_info("rescan: done: %d loaded or reloaded, %d unloaded, %d failed", loaded,
		 unloaded, failed);
}

static void *rsc__main(void *arg)
{
	pthread_mutex_lock(&rsc__lock);
	do {
		rsc__again = false;
		pthread_mutex_unlock(&rsc__lock);
		svc_notify("RELOADING=1");
		rsc__once();
		svc_notify("READY=1");
		pthread_mutex_lock(&rsc__lock);
	} while (rsc__again);
	rsc__running = false;
	pthread_cond_broadcast(&rsc__cond);
	pthread_mutex_unlock(&rsc__lock);
	return NULL;
}

void rsc_request(void)
{
	pthread_mutex_lock(&rsc__lock);
	if (rsc__running) {
		rsc__again = true;
	} else if (rsc__repo) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		rsc__running = pthread_create(&t, &a, rsc__main, NULL) == 0;
		pthread_attr_destroy(&a);
		if (!rsc__running)
			log_error("rescan: cannot start its thread");
	}
	pthread_mutex_unlock(&rsc__lock);
}

void rsc_fini(void)
{
	pthread_mutex_lock(&rsc__lock);
	rsc__again = false;
	while (rsc__running)
		pthread_cond_wait(&rsc__cond, &rsc__lock);
	pthread_mutex_unlock(&rsc__lock);
	for (int i = 0; i < rsc__n; i++)
		free(rsc__ents[i].name);
	free(rsc__ents);
	rsc__ents = NULL;
	rsc__n = 0;
	free(rsc__repo);
	rsc__repo = NULL;
}
