/* SPDX-License-Identifier: MIT */
/*
 * repo.c - list a Triton model repository (see repo.h).
 *
 * Every per-model failure is recorded in that model's entry and the scan
 * goes on; only a repository we cannot open, or memory running out, fails
 * the whole call.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ferry/errors.h>

#include "broker/config/repo.h"

static int repo__cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int repo__cmp_model(const void *a, const void *b)
{
	const struct repo_model *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Sort and drop duplicates in place; returns the new count. */
static int repo__sort_unique(int64_t *v, int n)
{
	int k = 0;

	if (n <= 1)
		return n;
	qsort(v, (size_t)n, sizeof(*v), repo__cmp_i64);
	for (int i = 0; i < n; i++)
		if (k == 0 || v[k - 1] != v[i])
			v[k++] = v[i];
	return k;
}

static void repo__seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void repo__seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int repo_select_versions(const struct modelcfg_version_policy *vp,
		       const int64_t *avail, int navail,
		       int64_t **sel, int *nsel, char *err, size_t errlen)
{
	int64_t *have = NULL, *out = NULL;
	int nhave, nout = 0, rc = 0;

	*sel = NULL;
	*nsel = 0;
	if (navail < 0)
		navail = 0;
	/* +1: malloc(0) may return NULL, which would read as a failure. */
	have = malloc(((size_t)navail + 1) * sizeof(*have));
	if (!have)
		return FERRY_ENOMEM;
	if (navail)
		memcpy(have, avail, (size_t)navail * sizeof(*have));
	nhave = repo__sort_unique(have, navail);

	switch (vp->kind) {
	case MODELCFG_VP_ALL:
		out = have;
		have = NULL;
		nout = nhave;
		break;
	case MODELCFG_VP_LATEST: {
		int n = vp->latest_num < (uint32_t)nhave ? (int)vp->latest_num : nhave;
		memmove(have, have + (nhave - n), (size_t)n * sizeof(*have));
		out = have;
		have = NULL;
		nout = n;
		break;
	}
	case MODELCFG_VP_SPECIFIC: {
		out = malloc(((size_t)(vp->nversions > 0 ? vp->nversions : 0) + 1) *
			     sizeof(*out));
		if (!out) {
			rc = FERRY_ENOMEM;
			goto fail;
		}
		for (int i = 0; i < vp->nversions; i++) {
			if (!bsearch(&vp->versions[i], have, (size_t)nhave,
				     sizeof(*have), repo__cmp_i64)) {
				rc = FERRY_ENOENT;
				repo__seterr(err, errlen,
				       "version %lld named by the specific version policy does not exist",
				       (long long)vp->versions[i]);
				goto fail;
			}
			out[nout++] = vp->versions[i];
		}
		nout = repo__sort_unique(out, nout);
		break;
	}
	default:
		rc = FERRY_CONFIG;
		repo__seterr(err, errlen, "unknown version policy %d", (int)vp->kind);
		goto fail;
	}
	if (nout == 0) {
		rc = FERRY_ENOENT;
		repo__seterr(err, errlen, "no version directory (<model>/<number>/) to serve");
		goto fail;
	}
	free(have);
	*sel = out;
	*nsel = nout;
	return 0;
fail:
	free(have);
	free(out);
	return rc;
}

/* A version directory name: digits, no leading zero, fits int64 (Triton
 * ignores "0", "01" and anything not numeric). */
static bool repo__parse_version(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (s[0] < '1' || s[0] > '9')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (INT64_MAX - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return true;
}

static bool repo__is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *repo__join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/* The versions found under dir; FERRY_ENOMEM or a directory error. */
static int repo__list_versions(const char *dir, int64_t **out, int *n, char *err,
			 size_t errlen)
{
	DIR *d = opendir(dir);
	int64_t *v = NULL;
	int cnt = 0, cap = 0, rc = 0;
	struct dirent *de;

	*out = NULL;
	*n = 0;
	if (!d) {
		repo__seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return errno == ENOENT ? FERRY_ENOENT : FERRY_EPERM;
	}
	while ((de = readdir(d))) {
		int64_t ver;
		if (!repo__parse_version(de->d_name, &ver))
			continue;
		char *p = repo__join(dir, de->d_name);
		if (!p) {
			rc = FERRY_ENOMEM;
			break;
		}
		bool ok = repo__is_dir(p);
		free(p);
		if (!ok)
			continue;
		if (cnt >= REPO_MAX_VERSIONS) {
			rc = FERRY_E2BIG;
			repo__seterr(err, errlen, "%s: more than %d version directories",
			       dir, REPO_MAX_VERSIONS);
			break;
		}
		if (cnt == cap) {
			int ncap = cap ? cap * 2 : 8;
			int64_t *nv = realloc(v, (size_t)ncap * sizeof(*v));
			if (!nv) {
				rc = FERRY_ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt++] = ver;
	}
	closedir(d);
	if (rc) {
		if (rc == FERRY_ENOMEM)
			repo__seterr(err, errlen, "out of memory");
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

void repo_model_free(struct repo_model *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->dir);
	modelcfg_free(&m->cfg);
	free(m->versions);
	free(m->error);
	memset(m, 0, sizeof(*m));
}

/* Record why a model cannot load; only ENOMEM here fails the scan. */
static int repo__fail_model(struct repo_model *m, int err, const char *msg)
{
	m->err = err;
	m->error = strdup(msg);
	modelcfg_free(&m->cfg);
	free(m->versions);
	m->versions = NULL;
	m->nversions = 0;
	return m->error ? 0 : FERRY_ENOMEM;
}

/*
 * Triton's rule for a config that names neither backend nor platform: the
 * model file of the newest version says which.  ferry serves ONNX only; a
 * file of another framework gets a message naming it.  0, FERRY_CONFIG
 * with msg, or FERRY_ENOMEM.
 */
static int repo__infer_backend(struct repo_model *m, char *msg, size_t msglen)
{
	static const struct {
		const char *file, *backend, *platform;
	} known[] = {
		{ "model.onnx", "onnxruntime", "onnxruntime_onnx" },
		{ "model.plan", NULL, "tensorrt_plan" },
		{ "model.pt", NULL, "pytorch_libtorch" },
		{ "model.savedmodel", NULL, "tensorflow_savedmodel" },
		{ "model.graphdef", NULL, "tensorflow_graphdef" },
		{ "model.py", NULL, "python" },
	};
	char path[4096];
	struct stat st;

	if (m->cfg.backend[0] || m->cfg.platform[0] || m->nversions == 0)
		return 0;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		snprintf(path, sizeof(path), "%s/%lld/%s", m->dir,
			 (long long)m->versions[m->nversions - 1], known[i].file);
		if (stat(path, &st) != 0)
			continue;
		if (!known[i].backend) {
			snprintf(msg, msglen, "%.700s: a %s model; ferry serves ONNX models "
				 "(model.onnx) and the backends of its backend directory, named "
				 "in config.pbtxt", path, known[i].platform);
			return FERRY_CONFIG;
		}
		if (modelcfg_set_string(&m->cfg.backend, known[i].backend) ||
		    modelcfg_set_string(&m->cfg.platform, known[i].platform))
			return FERRY_ENOMEM;
		return 0;
	}
	snprintf(msg, msglen, "%.700s: the config names neither a backend nor a platform, and "
		 "version %lld holds no model file (model.onnx) to tell which", m->dir,
		 (long long)m->versions[m->nversions - 1]);
	return FERRY_CONFIG;
}

int repo_scan_model(const char *repo_path, const char *name, unsigned flags,
		    struct repo_model *m, modelcfg_warn_fn warn, void *warn_arg)
{
	char msg[1024];
	char *cfgpath = NULL;
	int64_t *avail = NULL;
	int navail, rc;

	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	m->dir = repo__join(repo_path, name);
	if (!m->name || !m->dir)
		goto nomem;
	cfgpath = repo__join(m->dir, "config.pbtxt");
	if (!cfgpath)
		goto nomem;
	/* The name may come from a load request: it must stay one directory
	 * below the repository. */
	if (!name[0] || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, "..")) {
		snprintf(msg, sizeof(msg), "'%s' is not a valid model name", name);
		if (repo__fail_model(m, FERRY_EINVAL, msg))
			goto nomem;
		goto done;
	}

	msg[0] = '\0';
	rc = modelcfg_load_file_flags(cfgpath, flags & REPO_AUTOCOMPLETE ? MODELCFG_PARTIAL : 0,
				      &m->cfg, warn, warn_arg, msg, sizeof(msg));
	if (rc == FERRY_ENOMEM)
		goto nomem;
	struct stat lst;
	bool dangling = rc == FERRY_ENOENT && lstat(cfgpath, &lst) == 0 && S_ISLNK(lst.st_mode);
	if (rc == FERRY_ENOENT && (flags & REPO_AUTOCOMPLETE) && !dangling) {
		/* Triton: no config.pbtxt, the model file says it all. */
		rc = modelcfg_init_empty(&m->cfg, name);
		if (rc)
			goto nomem;
	}
	if (rc == FERRY_ENOENT) {
		/* A link to nowhere is there but cannot be read: say so,
		 * rather than that the directory has no config. */
		snprintf(msg, sizeof(msg), "%s: %s", cfgpath,
			 dangling ? "a dangling symbolic link" :
				    "no config.pbtxt in the model directory");
		if (repo__fail_model(m, FERRY_CONFIG, msg))
			goto nomem;
		goto done;
	}
	if (rc) {
		if (repo__fail_model(m, rc, msg))
			goto nomem;
		goto done;
	}
	if (!m->cfg.name[0]) {
		/* Triton: a config without a name takes the directory's. */
		if (modelcfg_set_name(&m->cfg, name))
			goto nomem;
	} else if (strcmp(m->cfg.name, name)) {
		snprintf(msg, sizeof(msg),
			 "%s: model name '%s' does not match its directory '%s'",
			 cfgpath, m->cfg.name, name);
		if (repo__fail_model(m, FERRY_CONFIG, msg))
			goto nomem;
		goto done;
	}

	rc = repo__list_versions(m->dir, &avail, &navail, msg, sizeof(msg));
	if (rc == FERRY_ENOMEM)
		goto nomem;
	if (!rc) {
		char vmsg[512];
		vmsg[0] = '\0';
		rc = repo_select_versions(&m->cfg.version_policy, avail, navail,
					&m->versions, &m->nversions,
					vmsg, sizeof(vmsg));
		if (rc == FERRY_ENOMEM)
			goto nomem;
		if (rc)
			snprintf(msg, sizeof(msg), "%s: %s", m->dir, vmsg);
	}
	if (!rc && (flags & REPO_AUTOCOMPLETE)) {
		rc = repo__infer_backend(m, msg, sizeof(msg));
		if (rc == FERRY_ENOMEM)
			goto nomem;
	}
	if (rc && repo__fail_model(m, rc, msg))
		goto nomem;
done:
	free(avail);
	free(cfgpath);
	return 0;
nomem:
	free(avail);
	free(cfgpath);
	repo_model_free(m);
	return FERRY_ENOMEM;
}

void repo_free(struct repo_tree *repo)
{
	if (!repo)
		return;
	for (int i = 0; i < repo->nmodels; i++)
		repo_model_free(&repo->models[i]);
	free(repo->models);
	free(repo->path);
	memset(repo, 0, sizeof(*repo));
}

int repo_scan(const char *repo_path, unsigned flags, struct repo_tree *repo,
	    modelcfg_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct dirent *de;
	DIR *d = NULL;
	int cap = 0, rc = 0;

	memset(repo, 0, sizeof(*repo));
	if (err && errlen)
		err[0] = '\0';
	d = opendir(repo_path);
	if (!d) {
		int e = errno;
		repo__seterr(err, errlen, "%s: cannot open the model repository: %s",
		       repo_path, strerror(e));
		return e == ENOENT || e == ENOTDIR ? FERRY_ENOENT :
		       e == ENOMEM ? FERRY_ENOMEM : FERRY_EPERM;
	}
	repo->path = strdup(repo_path);
	if (!repo->path)
		goto nomem;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = repo__join(repo_path, de->d_name);
		if (!p)
			goto nomem;
		bool ok = repo__is_dir(p);
		free(p);
		if (!ok)
			continue;
		if (repo->nmodels >= REPO_MAX_MODELS) {
			rc = FERRY_E2BIG;
			repo__seterr(err, errlen, "%s: more than %d model directories",
			       repo_path, REPO_MAX_MODELS);
			goto fail;
		}
		if (repo->nmodels == cap) {
			int ncap = cap ? cap * 2 : 16;
			struct repo_model *nm = realloc(repo->models,
						      (size_t)ncap * sizeof(*nm));
			if (!nm)
				goto nomem;
			repo->models = nm;
			cap = ncap;
		}
		if (repo_scan_model(repo_path, de->d_name, flags,
				    &repo->models[repo->nmodels], warn, warn_arg))
			goto nomem;
		repo->nmodels++;
	}
	closedir(d);
	if (repo->nmodels > 1)
		qsort(repo->models, (size_t)repo->nmodels, sizeof(*repo->models),
		      repo__cmp_model);
	return 0;

nomem:
	rc = FERRY_ENOMEM;
	repo__seterr(err, errlen, "%s: out of memory", repo_path);
fail:
	closedir(d);
	repo_free(repo);
	return rc;
}

const struct repo_model *repo_find(const struct repo_tree *repo, const char *name)
{
	struct repo_model key;

	if (!repo->nmodels)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.name = (char *)name;
	return bsearch(&key, repo->models, (size_t)repo->nmodels,
		       sizeof(*repo->models), repo__cmp_model);
}
