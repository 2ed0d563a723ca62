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
struct rescan_entry {
	char *name;
	uint64_t sig;
};

/* Guarded by rescan__lock; the entries are the rescan thread's. */
static pthread_mutex_t rescan__lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rescan__cond = PTHREAD_COND_INITIALIZER;
static bool rescan__running, rescan__again;
static char *rescan__repo;
static struct rescan_entry *rescan__ents;
static int rescan__n;

static uint64_t rescan__mix(uint64_t h, uint64_t v)
{
	/* FNV-1a over the 8 bytes of v. */
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t rescan__stat_sig(uint64_t h, const char *path)
{
	struct stat st;
	if (stat(path, &st))
		return rescan__mix(h, 0xdead);
	h = rescan__mix(h, (uint64_t)st.st_size);
	h = rescan__mix(h, (uint64_t)st.st_mtim.tv_sec);
	return rescan__mix(h, (uint64_t)st.st_mtim.tv_nsec);
}

/* The fingerprint of <repo>/<name>: config.pbtxt, and each version
 * directory with the files in it (names, sizes, times), in name order. */
static uint64_t rescan__sig(const char *name)
{
	char path[4096];
	uint64_t h = 0xcbf29ce484222325ULL;
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", rescan__repo, name);
	h = rescan__stat_sig(h, path);
	snprintf(path, sizeof(path), "%s/%s", rescan__repo, name);
	struct dirent **vs = NULL;
	int nv = scandir(path, &vs, NULL, alphasort);
	for (int i = 0; i < nv; i++) {
		const char *v = vs[i]->d_name;
		if (v[0] >= '0' && v[0] <= '9') {
			for (const char *c = v; *c; c++)
				h = rescan__mix(h, (uint64_t)(unsigned char)*c);
			char vdir[4096];
			snprintf(vdir, sizeof(vdir), "%s/%s/%s", rescan__repo, name, v);
			struct dirent **fs = NULL;
			int nf = scandir(vdir, &fs, NULL, alphasort);
			for (int k = 0; k < nf; k++) {
				if (fs[k]->d_name[0] != '.') {
					char f[8192];
					snprintf(f, sizeof(f), "%s/%s", vdir, fs[k]->d_name);
					h = rescan__stat_sig(h, f);
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
static int rescan__list(char ***out)
{
	struct dirent **ds = NULL;
	int n = scandir(rescan__repo, &ds, NULL, alphasort), k = 0;
	char **names = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof(*names));
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s/config.pbtxt", rescan__repo, ds[i]->d_name);
		if (names && ds[i]->d_name[0] != '.' && stat(path, &st) == 0)
			names[k++] = strdup(ds[i]->d_name);
		free(ds[i]);
	}
	free(ds);
	*out = names;
	return names ? k : -ENOMEM;
}

static struct rescan_entry *rescan__find(const char *name)
{
	for (int i = 0; i < rescan__n; i++)
		if (!strcmp(rescan__ents[i].name, name))
			return &rescan__ents[i];
	return NULL;
}

static void rescan__remember(const char *name, uint64_t sig)
{
	struct rescan_entry *e = rescan__find(name);
	if (e) {
		e->sig = sig;
		return;
	}
	struct rescan_entry *ne = realloc(rescan__ents, (size_t)(rescan__n + 1) * sizeof(*ne));
	if (!ne)
		return;
	rescan__ents = ne;
	rescan__ents[rescan__n].name = strdup(name);
	rescan__ents[rescan__n].sig = sig;
	rescan__n++;
}

static void rescan__forget(const char *name)
{
	for (int i = 0; i < rescan__n; i++) {
		if (!strcmp(rescan__ents[i].name, name)) {
			free(rescan__ents[i].name);
			rescan__ents[i] = rescan__ents[--rescan__n];
			return;
		}
	}
}

void rescan_init(const char *repository)
{
	char **names;
	rescan__repo = strdup(repository);
	int n = rescan__list(&names);
	for (int i = 0; i < n; i++) {
		rescan__remember(names[i], rescan__sig(names[i]));
		free(names[i]);
	}
	free(names);
}

static void rescan__once(void)
{
	char **names, err[1024];
	int n = rescan__list(&names), loaded = 0, unloaded = 0, failed = 0;
	if (n < 0) {
		log_error("rescan: cannot read %s", rescan__repo);
		return;
	}
	for (int i = 0; i < n; i++) {
		uint64_t sig = rescan__sig(names[i]);
		struct rescan_entry *e = rescan__find(names[i]);
		if (e && e->sig == sig)
			continue;
		log_info("rescan: %s model '%s'", e ? "reloading changed" : "loading new", names[i]);
		if (models_load_model(names[i], err, sizeof(err))) {
			log_error("rescan: %s", err);
			failed++;
		} else {
			loaded++;
		}
		/* Remembered even when it failed: the same broken files are
		 * not retried until they change again. */
		rescan__remember(names[i], sig);
	}
	/* Directories that went away. */
	for (int i = 0; i < rescan__n;) {
		bool present = false;
		for (int k = 0; k < n && !present; k++)
			present = !strcmp(names[k], rescan__ents[i].name);
		if (present) {
			i++;
			continue;
		}
		log_info("rescan: unloading removed model '%s'", rescan__ents[i].name);
		if (models_unload_model(rescan__ents[i].name, err, sizeof(err)) && err[0])
			log_warn("rescan: %s", err);
		unloaded++;
		rescan__forget(rescan__ents[i].name);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	log_info("rescan: done: %d loaded or reloaded, %d unloaded, %d failed", loaded,
		 unloaded, failed);
}

static void *rescan__main(void *arg)
{
	pthread_mutex_lock(&rescan__lock);
	do {
		rescan__again = false;
		pthread_mutex_unlock(&rescan__lock);
		systemd_notify("RELOADING=1");
		rescan__once();
		systemd_notify("READY=1");
		pthread_mutex_lock(&rescan__lock);
	} while (rescan__again);
	rescan__running = false;
	pthread_cond_broadcast(&rescan__cond);
	pthread_mutex_unlock(&rescan__lock);
	return NULL;
}

void rescan_request(void)
{
	pthread_mutex_lock(&rescan__lock);
	if (rescan__running) {
		rescan__again = true;
	} else if (rescan__repo) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		rescan__running = pthread_create(&t, &a, rescan__main, NULL) == 0;
		pthread_attr_destroy(&a);
		if (!rescan__running)
			log_error("rescan: cannot start its thread");
	}
	pthread_mutex_unlock(&rescan__lock);
}

void rescan_fini(void)
{
	pthread_mutex_lock(&rescan__lock);
	rescan__again = false;
	while (rescan__running)
		pthread_cond_wait(&rescan__cond, &rescan__lock);
	pthread_mutex_unlock(&rescan__lock);
	for (int i = 0; i < rescan__n; i++)
		free(rescan__ents[i].name);
	free(rescan__ents);
	rescan__ents = NULL;
	rescan__n = 0;
	free(rescan__repo);
	rescan__repo = NULL;
}
