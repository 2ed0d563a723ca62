/* SPDX-License-Identifier: MIT */
/*
 * modelcfg.h - a model's configuration, as read from Triton's config.pbtxt
 * (protobuf text format of inference.ModelConfig), the subset ferry serves.
 * Module prefix: mc_.  Owned by the repository (repo.c); read-only after
 * parsing, so any thread may read it.
 *
 * After mc_parse succeeds: every string is non-NULL (name, backend and
 * platform are "" when absent; group names are "<model>_<index>" when not
 * given, "" while the model has no name), there is at least one input, one
 * output and one instance group, and version_policy is LATEST 1 unless the
 * config says otherwise.
 */
#ifndef FERRY_MODELCFG_H
#define FERRY_MODELCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/dtype.h>

#define MC_MAX_DIMS      8
#define MC_MAX_PREFERRED 16
#define MC_MAX_GPUS      16
/* Bounds on a hostile config (added with modelcfg.c): beyond them mc_parse
 * fails with FERRY_CONFIG instead of growing without limit. */
#define MC_MAX_IO            4096   /* inputs, and outputs */
#define MC_MAX_GROUPS        1024   /* instance groups */
#define MC_MAX_INSTANCES     4096   /* count of one instance group */
#define MC_MAX_PARAMS        4096   /* parameters entries */
#define MC_MAX_VERSIONS      4096   /* specific { versions } */
#define MC_MAX_PRIO_POLICIES 4096   /* priority_queue_policy entries */

struct mc_tensor {
	char *name;
	ferry_dtype dtype;
	int ndims;                    /* without the batch dimension */
	int64_t dims[MC_MAX_DIMS];    /* -1 = variable */
	bool has_reshape;
	int reshape_ndims;
	int64_t reshape[MC_MAX_DIMS];
	bool optional;
};

enum mc_timeout_action { MC_TIMEOUT_REJECT = 0, MC_TIMEOUT_DELAY = 1 };

struct mc_queue_policy {
	enum mc_timeout_action timeout_action;
	uint64_t default_timeout_us;    /* 0 = none */
	bool allow_timeout_override;
	uint32_t max_queue_size;        /* 0 = unbounded */
};

struct mc_prio_policy {               /* priority_queue_policy map entry */
	uint32_t level;
	struct mc_queue_policy policy;
};

struct mc_dynbatch {
	bool enabled;                   /* a dynamic_batching block was given */
	uint64_t max_queue_delay_us;
	int npreferred;
	int preferred[MC_MAX_PREFERRED];
	bool preserve_ordering;
	uint32_t priority_levels;       /* 0 = priorities off */
	uint32_t default_priority_level;
	struct mc_queue_policy default_policy;
	int nprio_policies;
	struct mc_prio_policy *prio_policies;
};

enum mc_kind { MC_KIND_AUTO = 0, MC_KIND_GPU = 1, MC_KIND_CPU = 2, MC_KIND_MODEL = 3 };

struct mc_instance_group {
	char *name;
	int count;                      /* default 1 */
	enum mc_kind kind;
	int ngpus;
	int gpus[MC_MAX_GPUS];
};

enum mc_version_policy_kind { MC_VP_LATEST = 0, MC_VP_ALL = 1, MC_VP_SPECIFIC = 2 };

struct mc_version_policy {
	enum mc_version_policy_kind kind;
	uint32_t latest_num;            /* LATEST: how many; default 1 */
	int nversions;                  /* SPECIFIC */
	int64_t *versions;
};

struct mc_param {
	char *key;
	char *value;                    /* parameters { key: "k" value: { string_value: "v" } } */
};

struct model_config {
	char *name;                     /* "" when the config has none (see
					 * mc_set_name) */
	char *backend;                  /* "" when absent */
	char *platform;                 /* "" when absent */
	int max_batch_size;             /* 0 = the model does not batch */
	int ninputs, noutputs;
	struct mc_tensor *inputs, *outputs;
	struct mc_dynbatch dynbatch;
	int ngroups;
	struct mc_instance_group *groups;
	struct mc_version_policy version_policy;
	int nparams;
	struct mc_param *params;
};

/* Called for each warning (unknown field, ignored value).  `where` is
 * "file:line:col". */
typedef void (*mc_warn_fn)(void *arg, const char *where, const char *msg);

/*
 * mc_parse - parse config.pbtxt text into *cfg
 *
 * `file` names the source in messages.  On a syntax or type error returns
 * FERRY_CONFIG and writes "file:line:col: message" into err.  Unknown fields
 * are skipped (values and nested blocks included) and reported through
 * warn (may be NULL).  On success the caller owns *cfg: free with mc_free().
 * On failure *cfg is left zeroed.
 * (The code is FERRY_CONFIG in errors.h; FERRY_ENOMEM when memory runs out.)
 */
int mc_parse(const char *text, size_t len, const char *file,
	     struct model_config *cfg, mc_warn_fn warn, void *warn_arg,
	     char *err, size_t errlen);

/* mc_load_file - read and parse a file; same contract as mc_parse. */
int mc_load_file(const char *path, struct model_config *cfg,
		 mc_warn_fn warn, void *warn_arg, char *err, size_t errlen);

/* Release everything mc_parse allocated; leaves *cfg zeroed. */
void mc_free(struct model_config *cfg);

/*
 * mc_set_name - give the model its name (repo_scan: the directory's name,
 * when config.pbtxt has none).  Unnamed instance groups take Triton's
 * default name "<model>_<index>".  Returns 0 or FERRY_ENOMEM (the config
 * stays valid and freeable either way).
 */
int mc_set_name(struct model_config *cfg, const char *name);

/* Look up a parameter's value; NULL when absent. */
const char *mc_param(const struct model_config *cfg, const char *key);

/* Find an input / output by name; index or -1. */
int mc_input_index(const struct model_config *cfg, const char *name);
int mc_output_index(const struct model_config *cfg, const char *name);

#endif /* FERRY_MODELCFG_H */
