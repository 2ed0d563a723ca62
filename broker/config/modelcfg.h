/* SPDX-License-Identifier: MIT */
/*
 * modelcfg.h - a model's configuration, as read from Triton's config.pbtxt
 * (protobuf text format of inference.ModelConfig), the subset ferry serves.
 * Module prefix: modelcfg_.  Owned by the repository scan entry that holds
 * it (struct repo_model, repo.h), which the model table (broker/models/)
 * keeps while the model serves; read-only after parsing, so any thread may
 * read it.
 *
 * After modelcfg_parse succeeds: every string is non-NULL (name, backend and
 * platform are "" when absent; group names are "<model>_<index>" when not
 * given, "" while the model has no name), there is at least one input, one
 * output and one instance group, and version_policy is LATEST 1 unless the
 * config says otherwise.  (A partial parse, MODELCFG_PARTIAL, may lack
 * inputs, outputs and tensor fields: auto-complete fills them in.)
 */
#ifndef FERRY_MODELCFG_H
#define FERRY_MODELCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/dtype.h>

#define MODELCFG_MAX_DIMS      8
#define MODELCFG_MAX_PREFERRED 16
#define MODELCFG_MAX_GPUS      16
/* Bounds on a hostile config (added with modelcfg.c): beyond them modelcfg_parse
 * fails with FERRY_CONFIG instead of growing without limit. */
#define MODELCFG_MAX_IO            4096   /* inputs, and outputs */
#define MODELCFG_MAX_GROUPS        1024   /* instance groups */
#define MODELCFG_MAX_INSTANCES     4096   /* count of one instance group */
#define MODELCFG_MAX_PARAMS        4096   /* parameters entries */
#define MODELCFG_MAX_VERSIONS      4096   /* specific { versions } */
#define MODELCFG_MAX_PRIO_POLICIES 4096   /* priority_queue_policy entries */

struct modelcfg_tensor {
	char *name;
	ferry_dtype dtype;
	int ndims;                    /* without the batch dimension */
	int64_t dims[MODELCFG_MAX_DIMS];    /* -1 = variable */
	bool has_reshape;
	int reshape_ndims;
	int64_t reshape[MODELCFG_MAX_DIMS];
	bool optional;
};

enum modelcfg_timeout_action { MODELCFG_TIMEOUT_REJECT = 0, MODELCFG_TIMEOUT_DELAY = 1 };

struct modelcfg_queue_policy {
	enum modelcfg_timeout_action timeout_action;
	uint64_t default_timeout_us;    /* 0 = none */
	bool allow_timeout_override;
	uint32_t max_queue_size;        /* 0 = unbounded */
};

struct modelcfg_prio_policy {               /* priority_queue_policy map entry */
	uint32_t level;
	struct modelcfg_queue_policy policy;
};

struct modelcfg_dynbatch {
	bool enabled;                   /* a dynamic_batching block was given */
	uint64_t max_queue_delay_us;
	int npreferred;
	int preferred[MODELCFG_MAX_PREFERRED];
	bool preserve_ordering;
	uint32_t priority_levels;       /* 0 = priorities off */
	uint32_t default_priority_level;
	struct modelcfg_queue_policy default_policy;
	int nprio_policies;
	struct modelcfg_prio_policy *prio_policies;
};

enum modelcfg_kind { MODELCFG_KIND_AUTO = 0, MODELCFG_KIND_GPU = 1, MODELCFG_KIND_CPU = 2, MODELCFG_KIND_MODEL = 3 };

struct modelcfg_instance_group {
	char *name;
	int count;                      /* default 1 */
	enum modelcfg_kind kind;
	int ngpus;
	int gpus[MODELCFG_MAX_GPUS];
};

enum modelcfg_version_policy_kind { MODELCFG_VP_LATEST = 0, MODELCFG_VP_ALL = 1, MODELCFG_VP_SPECIFIC = 2 };

struct modelcfg_version_policy {
	enum modelcfg_version_policy_kind kind;
	uint32_t latest_num;            /* LATEST: how many; default 1 */
	int nversions;                  /* SPECIFIC */
	int64_t *versions;
};

struct modelcfg_param {
	char *key;
	char *value;                    /* parameters { key: "k" value: { string_value: "v" } } */
};

/* One optimization.execution_accelerators entry: { name: "tensorrt"
 * parameters { key: "precision_mode" value: "FP16" } } (a map<string,
 * string>: the value is a plain string here, not a string_value). */
struct modelcfg_accel {
	char *name;
	int nparams;
	struct modelcfg_param *params;
};

/* optimization { graph { level } execution_accelerators { ... } }: what
 * ferry reads of Triton's ModelOptimizationPolicy (the rest warns). */
struct modelcfg_optimization {
	bool has_graph_level;
	int graph_level;                /* Triton: -1, 0, 1, 2 (backend-defined) */
	int ngpu_accel, ncpu_accel;
	struct modelcfg_accel *gpu_accel, *cpu_accel;
};

struct model_config {
	char *name;                     /* "" when the config has none (see
					 * modelcfg_set_name) */
	char *backend;                  /* "" when absent */
	char *platform;                 /* "" when absent */
	int max_batch_size;             /* 0 = the model does not batch */
	bool has_max_batch_size;        /* config.pbtxt gave max_batch_size */
	int ninputs, noutputs;
	struct modelcfg_tensor *inputs, *outputs;
	struct modelcfg_dynbatch dynbatch;
	int ngroups;
	struct modelcfg_instance_group *groups;
	struct modelcfg_version_policy version_policy;
	int nparams;
	struct modelcfg_param *params;
	struct modelcfg_optimization opt;
};

/* Called for each warning (unknown field, ignored value).  `where` is
 * "file:line:col". */
typedef void (*modelcfg_warn_fn)(void *arg, const char *where, const char *msg);

/*
 * modelcfg_parse - parse config.pbtxt text into *cfg
 *
 * `file` names the source in messages.  On a syntax or type error returns
 * FERRY_CONFIG and writes "file:line:col: message" into err.  Unknown fields
 * are skipped (values and nested blocks included) and reported through
 * warn (may be NULL).  On success the caller owns *cfg: free with modelcfg_free().
 * On failure *cfg is left zeroed.
 * (The code is FERRY_CONFIG in errors.h; FERRY_ENOMEM when memory runs out.)
 */
int modelcfg_parse(const char *text, size_t len, const char *file,
	     struct model_config *cfg, modelcfg_warn_fn warn, void *warn_arg,
	     char *err, size_t errlen);

/* modelcfg_load_file - read and parse a file; same contract as modelcfg_parse. */
int modelcfg_load_file(const char *path, struct model_config *cfg,
		 modelcfg_warn_fn warn, void *warn_arg, char *err, size_t errlen);

/*
 * MODELCFG_PARTIAL - for configs that auto-complete will finish from the
 * model file (Triton's default; ferryd --strict-model-config=true turns it
 * off): inputs and outputs may be missing, and a listed tensor may lack
 * data_type or dims (left TYPE_INVALID / 0 dims).  modelcfg_check_io()
 * then checks the finished config.
 */
#define MODELCFG_PARTIAL 1u

/* modelcfg_parse / modelcfg_load_file with flags (0 or MODELCFG_PARTIAL). */
int modelcfg_parse_flags(const char *text, size_t len, const char *file, unsigned flags,
			 struct model_config *cfg, modelcfg_warn_fn warn, void *warn_arg,
			 char *err, size_t errlen);
int modelcfg_load_file_flags(const char *path, unsigned flags, struct model_config *cfg,
			     modelcfg_warn_fn warn, void *warn_arg, char *err, size_t errlen);

/*
 * modelcfg_init_empty - the config of a model directory without
 * config.pbtxt, for auto-complete to fill: named @name, backend and
 * platform "" (the caller sets them), one KIND_AUTO instance group, LATEST
 * 1.  0 or FERRY_ENOMEM (then *cfg is zeroed).
 */
int modelcfg_init_empty(struct model_config *cfg, const char *name);

/*
 * modelcfg_check_io - what a full config must have, checked after
 * auto-complete: at least one input and one output, each with a data_type
 * and dims.  0, or FERRY_CONFIG with "file: message" in err.
 */
int modelcfg_check_io(const struct model_config *cfg, const char *file, char *err,
		      size_t errlen);

/* Replace a string field (backend, platform ...) with a copy of s; 0 or
 * FERRY_ENOMEM (the old value stays). */
int modelcfg_set_string(char **field, const char *s);

/* Release everything modelcfg_parse allocated; leaves *cfg zeroed. */
void modelcfg_free(struct model_config *cfg);

/*
 * modelcfg_set_name - give the model its name (repo_scan: the directory's name,
 * when config.pbtxt has none).  Unnamed instance groups take Triton's
 * default name "<model>_<index>".  Returns 0 or FERRY_ENOMEM (the config
 * stays valid and freeable either way).
 */
int modelcfg_set_name(struct model_config *cfg, const char *name);

/* Look up a parameter's value; NULL when absent. */
const char *modelcfg_param(const struct model_config *cfg, const char *key);

/* Find an input / output by name; index or -1. */
int modelcfg_input_index(const struct model_config *cfg, const char *name);
int modelcfg_output_index(const struct model_config *cfg, const char *name);

#endif /* FERRY_MODELCFG_H */
