/* The model repository scan: versions, errors per model, the examples. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>

#include "broker/config/repo.h"

static char root[64];
static char err[512];

static void mkpath(const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *s = p + strlen(root) + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	cr_assert(mkdir(p, 0755) == 0, "mkdir %s", p);
}

static void put(const char *rel, const char *text)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "fopen %s", p);
	fputs(text, f);
	fclose(f);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void setup(void)
{
	strcpy(root, "/tmp/ferry-repo-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void teardown(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#define IO "input { name: \"I\" data_type: TYPE_FP32 dims: [ 4 ] }\n" \
	   "output { name: \"O\" data_type: TYPE_FP32 dims: [ 4 ] }\n"

static const struct repo_model *scan_one(struct repo_tree *r, const char *name)
{
	int rc = repo_scan(root, 0, r, NULL, NULL, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	const struct repo_model *m = repo_find(r, name);
	cr_assert_not_null(m, "model %s not found", name);
	return m;
}

TestSuite(repo_scan, .init = setup, .fini = teardown);

Test(repo_scan, latest_two_of_1_3_10)
{
	struct repo_tree r;

	mkpath("m/1");
	mkpath("m/3");
	mkpath("m/10");
	mkpath("m/007");                /* leading zero: ignored, as in Triton */
	mkpath("m/0");
	mkpath("m/v2");
	put("m/20", "a file, not a version directory");
	put("m/config.pbtxt", "version_policy { latest { num_versions: 2 } }\n" IO);

	const struct repo_model *m = scan_one(&r, "m");
	cr_assert_null(m->error, "%s", m->error);
	cr_assert_eq(m->err, 0);
	cr_assert_str_eq(m->cfg.name, "m");     /* from the directory */
	cr_assert_str_eq(m->cfg.groups[0].name, "m_0");
	cr_assert_eq(m->nversions, 2);
	cr_assert_eq(m->versions[0], 3);
	cr_assert_eq(m->versions[1], 10);
	cr_assert(strstr(m->dir, "/m"));
	repo_free(&r);
	cr_assert_eq(r.nmodels, 0);
}

Test(repo_scan, default_policy_is_latest_one)
{
	struct repo_tree r;

	mkpath("m/2");
	mkpath("m/9");
	put("m/config.pbtxt", "name: \"m\"\n" IO);
	const struct repo_model *m = scan_one(&r, "m");
	cr_assert_eq(m->nversions, 1);
	cr_assert_eq(m->versions[0], 9);
	repo_free(&r);
}

Test(repo_scan, all_versions_sorted)
{
	struct repo_tree r;

	mkpath("m/10");
	mkpath("m/1");
	mkpath("m/3");
	put("m/config.pbtxt", "version_policy { all { } }\n" IO);
	const struct repo_model *m = scan_one(&r, "m");
	cr_assert_null(m->error);
	cr_assert_eq(m->nversions, 3);
	cr_assert_eq(m->versions[0], 1);
	cr_assert_eq(m->versions[1], 3);
	cr_assert_eq(m->versions[2], 10);
	repo_free(&r);
}

Test(repo_scan, specific_versions)
{
	struct repo_tree r;

	mkpath("ok/1");
	mkpath("ok/3");
	mkpath("ok/10");
	put("ok/config.pbtxt", "version_policy { specific { versions: [10, 1, 10] } }\n" IO);
	mkpath("missing/1");
	mkpath("missing/3");
	put("missing/config.pbtxt", "version_policy { specific { versions: [1, 2] } }\n" IO);

	const struct repo_model *m = scan_one(&r, "ok");
	cr_assert_null(m->error);
	cr_assert_eq(m->nversions, 2);
	cr_assert_eq(m->versions[0], 1);
	cr_assert_eq(m->versions[1], 10);

	m = repo_find(&r, "missing");
	cr_assert_not_null(m);
	cr_assert_eq(m->err, FERRY_ENOENT);
	cr_assert_not_null(m->error);
	cr_assert(strstr(m->error, "version 2 named by the specific version policy does not exist"),
		  "%s", m->error);
	cr_assert_eq(m->nversions, 0);
	cr_assert_null(m->versions);
	cr_assert_null(m->cfg.name);            /* zeroed on error */
	repo_free(&r);
}

Test(repo_scan, no_version_directory)
{
	struct repo_tree r;

	mkpath("m");
	put("m/config.pbtxt", IO);
	const struct repo_model *m = scan_one(&r, "m");
	cr_assert_eq(m->err, FERRY_ENOENT);
	cr_assert(strstr(m->error, "no version directory"), "%s", m->error);
	repo_free(&r);
}

Test(repo_scan, name_mismatch)
{
	struct repo_tree r;

	mkpath("dirname/1");
	put("dirname/config.pbtxt", "name: \"other\"\n" IO);
	const struct repo_model *m = scan_one(&r, "dirname");
	cr_assert_eq(m->err, FERRY_CONFIG);
	cr_assert(strstr(m->error, "model name 'other' does not match its directory 'dirname'"),
		  "%s", m->error);
	cr_assert(strstr(m->error, "dirname/config.pbtxt: "), "%s", m->error);
	repo_free(&r);
}

Test(repo_scan, missing_config)
{
	struct repo_tree r;

	mkpath("noconfig/1");
	const struct repo_model *m = scan_one(&r, "noconfig");
	cr_assert_eq(m->err, FERRY_CONFIG);
	cr_assert(strstr(m->error, "no config.pbtxt"), "%s", m->error);
	repo_free(&r);
}

static void count_warn(void *arg, const char *where, const char *msg)
{
	(*(int *)arg)++;
	cr_assert(strstr(where, "/warn/config.pbtxt:1:1"), "%s", where);
}

Test(repo_scan, one_bad_model_among_good_ones)
{
	struct repo_tree r;
	int nwarn = 0;

	mkpath("a/1");
	put("a/config.pbtxt", IO);
	mkpath("b/1");
	put("b/config.pbtxt", "max_batch_size: \"x\"\n" IO);
	mkpath("c/2");
	put("c/config.pbtxt", "name: \"c\" " IO);
	mkpath("warn/1");
	put("warn/config.pbtxt", "ensemble_scheduling { step [ ] x: 1 }\n" IO);
	mkpath(".hidden/1");
	put("README", "not a model");

	int rc = repo_scan(root, 0, &r, count_warn, &nwarn, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.nmodels, 4);
	cr_assert_str_eq(r.models[0].name, "a");
	cr_assert_str_eq(r.models[1].name, "b");
	cr_assert_str_eq(r.models[2].name, "c");
	cr_assert_str_eq(r.models[3].name, "warn");
	cr_assert_null(r.models[0].error);
	cr_assert_eq(r.models[1].err, FERRY_CONFIG);
	cr_assert(strstr(r.models[1].error, "/b/config.pbtxt:1:17: 'max_batch_size' expects an integer"),
		  "%s", r.models[1].error);
	cr_assert_null(r.models[2].error);
	cr_assert_eq(r.models[2].versions[0], 2);
	cr_assert_null(r.models[3].error);
	cr_assert_eq(nwarn, 1);
	cr_assert_null(repo_find(&r, ".hidden"));
	cr_assert_null(repo_find(&r, "README"));
	cr_assert_null(repo_find(&r, "zzz"));
	repo_free(&r);
}

Test(repo_scan, missing_repository)
{
	struct repo_tree r;
	char p[128];

	snprintf(p, sizeof(p), "%s/nope", root);
	cr_assert_eq(repo_scan(p, 0, &r, NULL, NULL, err, sizeof(err)), FERRY_ENOENT);
	cr_assert(strstr(err, "cannot open the model repository"), "%s", err);
	cr_assert_eq(r.nmodels, 0);
	cr_assert_null(r.models);
}

Test(repo_scan, empty_repository)
{
	struct repo_tree r;

	cr_assert_eq(repo_scan(root, 0, &r, NULL, NULL, err, sizeof(err)), 0);
	cr_assert_eq(r.nmodels, 0);
	cr_assert_null(repo_find(&r, "x"));
	repo_free(&r);
}

Test(repo_scan, scan_single_model)
{
	struct repo_model m;

	mkpath("one/4");
	put("one/config.pbtxt", IO);
	cr_assert_eq(repo_scan_model(root, "one", 0, &m, NULL, NULL), 0);
	cr_assert_null(m.error);
	cr_assert_eq(m.versions[0], 4);
	repo_model_free(&m);
	cr_assert_eq(repo_scan_model(root, "absent", 0, &m, NULL, NULL), 0);
	cr_assert_not_null(m.error);
	repo_model_free(&m);
	static const char *const names[] = { "", ".", "..", "../x", "a/b" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cr_assert_eq(repo_scan_model(root, names[i], 0, &m, NULL, NULL), 0);
		cr_assert_eq(m.err, FERRY_EINVAL, "%s", names[i]);
		cr_assert(strstr(m.error, "is not a valid model name"));
		repo_model_free(&m);
	}
}

/* A FIFO as config.pbtxt is refused, not waited on. */
Test(repo_scan, fifo_config_does_not_hang, .timeout = 10)
{
	struct repo_tree r;
	char p[512];

	mkpath("f/1");
	snprintf(p, sizeof(p), "%s/f/config.pbtxt", root);
	cr_assert_eq(mkfifo(p, 0644), 0);
	const struct repo_model *m = scan_one(&r, "f");
	cr_assert_eq(m->err, FERRY_CONFIG);
	cr_assert(strstr(m->error, "not a regular file"), "%s", m->error);
	repo_free(&r);
}

Test(repo_scan, select_versions_directly)
{
	struct modelcfg_version_policy vp = { MODELCFG_VP_LATEST, 5, 0, NULL };
	int64_t avail[] = { 7, 2, 7, 5 };
	int64_t *sel;
	int n;

	cr_assert_eq(repo_select_versions(&vp, avail, 4, &sel, &n, err, sizeof(err)), 0);
	cr_assert_eq(n, 3);           /* fewer than asked: all of them */
	cr_assert_eq(sel[0], 2);
	cr_assert_eq(sel[2], 7);
	free(sel);
	cr_assert_eq(repo_select_versions(&vp, NULL, 0, &sel, &n, err, sizeof(err)),
		     FERRY_ENOENT);
	cr_assert_null(sel);
	vp.kind = MODELCFG_VP_ALL;
	cr_assert_eq(repo_select_versions(&vp, NULL, 0, &sel, &n, NULL, 0), FERRY_ENOENT);
}

/* The quick start's repository must scan with no error and no warning. */
static void no_warn(void *arg, const char *where, const char *msg)
{
	cr_assert_fail("warning %s: %s", where, msg);
}

Test(repo_scan, examples_models_scan_cleanly)
{
	const char *top = getenv("FERRY_TOP_SRCDIR");
	char p[1024];
	struct repo_tree r;

	if (!top)
		cr_skip_test("FERRY_TOP_SRCDIR is not set (run through make check)");
	snprintf(p, sizeof(p), "%s/examples/models", top);
	cr_assert_eq(repo_scan(p, 0, &r, no_warn, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(r.nmodels, 3);
	for (int i = 0; i < r.nmodels; i++)
		cr_assert_null(r.models[i].error, "%s: %s", r.models[i].name,
			       r.models[i].error);

	const struct repo_model *m = repo_find(&r, "simple");
	cr_assert_not_null(m);
	cr_assert_str_eq(m->cfg.backend, "add_sub");
	cr_assert_eq(m->cfg.max_batch_size, 8);
	cr_assert_eq(m->cfg.ninputs, 2);
	cr_assert_eq(m->cfg.noutputs, 2);
	cr_assert_eq(m->cfg.inputs[0].dtype, FERRY_TYPE_INT32);
	cr_assert_eq(m->cfg.inputs[0].dims[0], 16);
	cr_assert_not(m->cfg.dynbatch.enabled);
	cr_assert_eq(m->nversions, 1);
	cr_assert_eq(m->versions[0], 1);

	m = repo_find(&r, "identity");
	cr_assert_not_null(m);
	cr_assert_str_eq(m->cfg.backend, "identity");
	cr_assert_eq(m->cfg.max_batch_size, 64);
	cr_assert_eq(m->cfg.inputs[0].dtype, FERRY_TYPE_FP32);
	cr_assert_eq(m->cfg.outputs[0].dims[0], 256);
	cr_assert(m->cfg.dynbatch.enabled);

	m = repo_find(&r, "identity_bytes");
	cr_assert_not_null(m);
	cr_assert_eq(m->cfg.inputs[0].dtype, FERRY_TYPE_BYTES);
	cr_assert_eq(m->cfg.max_batch_size, 8);
	repo_free(&r);
}

/* REPO_AUTOCOMPLETE: a directory holding only 1/model.onnx is a model
 * whose config auto-complete will write (Triton's default). */
Test(repo_scan, autocomplete_model_without_config)
{
	struct repo_tree r;

	mkpath("bare/1");
	put("bare/1/model.onnx", "not parsed by the scan");
	cr_assert_eq(repo_scan(root, REPO_AUTOCOMPLETE, &r, NULL, NULL, err, sizeof(err)), 0,
		     "%s", err);
	const struct repo_model *m = repo_find(&r, "bare");
	cr_assert_not_null(m);
	cr_assert_null(m->error, "%s", m->error);
	cr_assert_str_eq(m->cfg.name, "bare");
	cr_assert_str_eq(m->cfg.backend, "onnxruntime");
	cr_assert_str_eq(m->cfg.platform, "onnxruntime_onnx");
	cr_assert_eq(m->cfg.ninputs, 0);
	cr_assert_eq(m->cfg.ngroups, 1);
	cr_assert_str_eq(m->cfg.groups[0].name, "bare_0");
	cr_assert_eq(m->nversions, 1);
	cr_assert_eq(m->versions[0], 1);
	repo_free(&r);
}

/* A partial config keeps what it says; only the gaps are left. */
Test(repo_scan, autocomplete_partial_config)
{
	struct repo_tree r;

	mkpath("part/3");
	put("part/3/model.onnx", "x");
	put("part/config.pbtxt", "max_batch_size: 0\n"
	    "input [ { name: \"ids\" data_type: TYPE_INT64 } ]\n");
	cr_assert_eq(repo_scan(root, REPO_AUTOCOMPLETE, &r, NULL, NULL, err, sizeof(err)), 0);
	const struct repo_model *m = repo_find(&r, "part");
	cr_assert_null(m->error, "%s", m->error);
	cr_assert(m->cfg.has_max_batch_size);
	cr_assert_eq(m->cfg.ninputs, 1);
	cr_assert_eq(m->cfg.inputs[0].ndims, 0);
	cr_assert_eq(m->cfg.inputs[0].dtype, FERRY_TYPE_INT64);
	cr_assert_str_eq(m->cfg.backend, "onnxruntime");
	repo_free(&r);
}

/* Without the flag (--strict-model-config=true) the same tree fails, and
 * with it a directory whose model file ferry cannot serve says so. */
Test(repo_scan, strict_and_unknown_model_files)
{
	struct repo_tree r;

	mkpath("bare/1");
	put("bare/1/model.onnx", "x");
	mkpath("trt/1");
	put("trt/1/model.plan", "x");
	mkpath("empty/1");
	cr_assert_eq(repo_scan(root, 0, &r, NULL, NULL, err, sizeof(err)), 0);
	cr_assert(strstr(repo_find(&r, "bare")->error, "no config.pbtxt"));
	repo_free(&r);
	cr_assert_eq(repo_scan(root, REPO_AUTOCOMPLETE, &r, NULL, NULL, err, sizeof(err)), 0);
	const struct repo_model *t = repo_find(&r, "trt");
	cr_assert_eq(t->err, FERRY_CONFIG);
	cr_assert(strstr(t->error, "tensorrt_plan"), "%s", t->error);
	const struct repo_model *e = repo_find(&r, "empty");
	cr_assert_eq(e->err, FERRY_CONFIG);
	cr_assert(strstr(e->error, "holds no model file"), "%s", e->error);
	repo_free(&r);
}
