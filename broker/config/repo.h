/* SPDX-License-Identifier: MIT */
/*
 * repo.h - read a Triton-style model repository from disk.
 * Module prefix: repo_.
 *
 *   <repo>/<model>/config.pbtxt
 *   <repo>/<model>/<version>/...      version: digits, no leading zero
 *
 * The scan only reads: it parses each config, lists the version
 * directories and applies the version policy.  Loading backends is the
 * model table's job (broker/models/models.c).  One bad model never stops the scan: it
 * becomes an entry with `error` set, so the broker can report it through
 * RepositoryIndex while serving the others.
 */
#ifndef FERRY_REPO_H
#define FERRY_REPO_H

#include <stdint.h>

#include "broker/config/modelcfg.h"

/* Bounds on what one directory may hold, so a hostile tree stays cheap. */
#define REPO_MAX_MODELS   65536
#define REPO_MAX_VERSIONS 65536   /* version directories of one model */

struct repo_model {
	char *name;                     /* directory name */
	char *dir;                      /* <repo>/<name> */
	struct model_config cfg;        /* zeroed when the config failed */
	int nversions;
	int64_t *versions;              /* selected, ascending, no duplicates */
	int err;                        /* 0, or why it cannot load */
	char *error;                    /* NULL, or a message ("file:line:col:
					 * ..." for a bad config) */
};

struct repo_tree {
	char *path;
	int nmodels;
	struct repo_model *models;        /* sorted by name */
};

/*
 * REPO_AUTOCOMPLETE - the scan leaves the rest to auto-complete (Triton's
 * default; ferryd --strict-model-config=true turns it off): a model
 * directory without config.pbtxt gets an empty config named after it, a
 * config may lack inputs and outputs (MODELCFG_PARTIAL), and a config that
 * names neither backend nor platform gets them from the model file of its
 * newest version (model.onnx: backend "onnxruntime", platform
 * "onnxruntime_onnx", as Triton does).  Without it every model needs a
 * full config.pbtxt.
 */
#define REPO_AUTOCOMPLETE 1u

/*
 * repo_scan - scan every model directory of a repository
 *
 * Subdirectories whose names start with '.' are skipped; plain files at the
 * top are ignored.  Warnings (unknown config fields ...) go to warn, which
 * may be NULL.  Returns 0 with *repo filled (free with repo_free()) even when
 * some models have errors; a negative code (FERRY_ENOENT, FERRY_EPERM,
 * FERRY_ENOMEM, FERRY_E2BIG) with a message in err when the repository
 * itself cannot be read, and then *repo is zeroed.
 */
int repo_scan(const char *repo_path, unsigned flags, struct repo_tree *repo,
	    modelcfg_warn_fn warn, void *warn_arg, char *err, size_t errlen);

/*
 * repo_scan_model - scan one model directory <repo_path>/<name> into *m
 * (flags as repo_scan's)
 *
 * For a load request of a single model.  Returns 0 when *m was filled,
 * whether or not the model has an error (see m->err); FERRY_ENOMEM
 * otherwise, with *m zeroed.  Free with repo_model_free().
 */
int repo_scan_model(const char *repo_path, const char *name, unsigned flags,
		    struct repo_model *m, modelcfg_warn_fn warn, void *warn_arg);

/* Release one entry; leaves it zeroed. */
void repo_model_free(struct repo_model *m);

/* Release everything repo_scan() filled; leaves *repo zeroed. */
void repo_free(struct repo_tree *repo);

/* The entry of a model by name, or NULL. */
const struct repo_model *repo_find(const struct repo_tree *repo, const char *name);

/*
 * repo_select_versions - apply a version policy to the available versions
 *
 * `avail` need not be sorted and may hold duplicates.  On success *sel
 * (malloc'd, ascending, free with free()) and *nsel.  LATEST n takes the n
 * highest (all of them when fewer exist); ALL takes every one; SPECIFIC
 * takes the listed ones and fails with FERRY_ENOENT naming the first that
 * does not exist.  No version selected at all is FERRY_ENOENT too (Triton
 * refuses such a model).  Other errors: FERRY_ENOMEM.  err may be NULL.
 */
int repo_select_versions(const struct modelcfg_version_policy *vp,
		       const int64_t *avail, int navail,
		       int64_t **sel, int *nsel, char *err, size_t errlen);

#endif /* FERRY_REPO_H */
