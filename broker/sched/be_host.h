/* SPDX-License-Identifier: MIT */
/*
 * be_host.h - ferryd's side of the backend plugin ABI: the registry of
 * backends (built-in and dlopen'ed plugins, one entry-point table for both),
 * Triton's name mapping, and the objects behind the ABI's opaque handles.
 * Module prefix: be_.
 *
 * THREADS AND LOCKS
 *
 * be_registry.lock guards the list of backends and their loading; a backend
 * once loaded is immutable (its state pointer belongs to the plugin) until
 * be_registry_destroy(), which must run after every model using the
 * registry is destroyed.  ferry_be_model and ferry_be_instance are written by
 * the scheduler's control path (sched_model_create / destroy) and by the
 * backend inside its initialize calls, then only read.  A ferry_be_request
 * belongs to the thread executing its batch.
 */
#ifndef FERRY_BE_HOST_H
#define FERRY_BE_HOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/backend.h>

#include "broker/config/modelcfg.h"

struct sched_req;
struct be_registry;

/* The ONNX Runtime plugin (broker/backends/onnxruntime/) and the native
 * executor built into ferryd (broker/backends/onnx/). */
#define BE_ONNXRUNTIME "onnxruntime"
#define BE_NATIVE_ONNX "onnx"

/*
 * The entry-point table.  Plugins get it filled by dlsym, built-ins fill it
 * statically; every call goes through it.  NULL = optional entry point
 * absent.  api_version_required may be NULL only for built-ins (they are
 * compiled against this very header).
 */
struct be_ops {
	void (*api_version_required)(uint32_t *major, uint32_t *minor);
	ferry_be_error *(*initialize)(ferry_backend *b);
	ferry_be_error *(*finalize)(ferry_backend *b);
	ferry_be_error *(*model_initialize)(ferry_be_model *m);
	ferry_be_error *(*model_finalize)(ferry_be_model *m);
	ferry_be_error *(*instance_initialize)(ferry_be_instance *i);
	ferry_be_error *(*instance_finalize)(ferry_be_instance *i);
	ferry_be_error *(*instance_execute)(ferry_be_instance *i, ferry_be_request **reqs,
					    uint32_t count);
	ferry_be_error *(*model_autocomplete)(ferry_be_model *m);    /* API 1.2 */
};

struct ferry_be_error {
	int code;
	atomic_int refs;        /* a batch-wide error is shared by its requests */
	bool is_static;         /* the out-of-memory error: never freed */
	const char *msg;
};

struct ferry_backend {          /* immutable once loaded; see top */
	struct be_registry *reg;        /* its --backend-config entries */
	char *name;
	char *dir;              /* "" for built-ins */
	struct be_ops ops;
	void *dl;               /* dlopen handle; NULL for built-ins */
	void *state;            /* the plugin's */
	bool initialized;       /* ferry_backend_initialize succeeded */
	struct ferry_backend *next;
};

struct ferry_be_model {         /* control path, then read-only */
	const struct model_config *cfg;
	struct model_config *wcfg;      /* == cfg inside model_autocomplete only */
	char *path;             /* model directory; never NULL */
	int64_t version;
	ferry_backend *backend;
	void *state;
	bool light;             /* FERRY_BE_MODEL_PROP_LIGHT */
	bool accepts_gpu;       /* FERRY_BE_MODEL_PROP_ACCEPTS_GPU */
	bool cuda_memory;       /* FERRY_BE_MODEL_PROP_CUDA_MEMORY */
	bool frozen;            /* model_initialize returned: no more properties */
};

struct ferry_be_instance {      /* control path; timing fields: its thread */
	ferry_be_model *model;
	ferry_be_instance_kind kind;
	int device;
	uint32_t index;
	const char *group;      /* the config's group name, or "" */
	void *state;
	uint64_t input_end_ns, infer_end_ns;   /* ferry_be_instance_report_compute */
};

struct ferry_be_request {       /* owned by the executing instance's thread */
	struct sched_req *r;
	const struct model_config *cfg;
	ferry_be_error *err;    /* set_error */
	uint64_t *out_bytes;    /* [noutputs]; UINT64_MAX: not written */
};

/*
 * be_registry_create - an empty registry (builtin_register() adds the
 * built-ins) that loads plugins on demand from backend_dirs, a
 * colon-separated list of directories (NULL or "": built-ins only).
 * Free with be_registry_destroy().  0 or FERRY_ENOMEM.
 */
int be_registry_create(const char *backend_dirs, struct be_registry **out);

/* Finalise and unload every backend.  After every model using reg is
 * destroyed.  NULL is a no-op. */
void be_registry_destroy(struct be_registry *reg);

/*
 * be_registry_add_config - one --backend-config argument: "NAME,KEY=VALUE"
 * for backend NAME, or "KEY=VALUE" for every backend.  Before the first
 * be_registry_get(); a later entry for the same key replaces the earlier.
 * 0, FERRY_EINVAL (err says why) or FERRY_ENOMEM.
 */
int be_registry_add_config(struct be_registry *reg, const char *spec, char *err, size_t errlen);

/*
 * be_registry_add_builtin - register a backend compiled into ferryd under
 * name.  ops is copied.  FERRY_EBUSY when the name exists, FERRY_EINVAL when
 * a required entry point is NULL.
 */
int be_registry_add_builtin(struct be_registry *reg, const char *name, const struct be_ops *ops,
			    char *err, size_t errlen);

/*
 * be_backend_name - the ferry backend a config asks for, after Triton's
 * names: backend "onnxruntime" and platform "onnxruntime_onnx" name the
 * ONNX Runtime plugin "onnxruntime" (be_registry_resolve() falls back to
 * the native executor "onnx" where that plugin cannot load).  A non-empty
 * backend field wins over platform.  Returns a static string or the
 * config's own (valid as long as cfg), or NULL with err filled.
 */
const char *be_backend_name(const struct model_config *cfg, char *err, size_t errlen);

/*
 * be_registry_resolve - the backend that serves cfg: be_backend_name(),
 * then be_registry_get().  Where the config names ONNX Runtime by Triton's
 * names and the onnxruntime plugin cannot be had (no plugin, no library),
 * the native executor "onnx" serves instead and note (may be NULL) says
 * why ("onnxruntime is not available (...); served by the native
 * executor 'onnx'"), for the log and for the model's error should the
 * native executor refuse it too; otherwise note is "".  Errors as
 * be_registry_get(), or FERRY_CONFIG when the config names no backend.
 */
int be_registry_resolve(struct be_registry *reg, const struct model_config *cfg,
			ferry_backend **out, char *note, size_t notelen, char *err, size_t errlen);

/*
 * be_model_autocomplete - auto-complete cfg (owned by the caller, not yet
 * shared with any reader) through its backend's optional
 * model_autocomplete entry point, for model directory dir and version;
 * then apply Triton's rule (dynamic batching for an auto-completed
 * max_batch_size > 1).  The caller checks the result (modelcfg_check_io).
 * A backend without the entry point leaves cfg as it is.  note as in
 * be_registry_resolve().  0, or an error with err filled.
 */
int be_model_autocomplete(struct be_registry *reg, struct model_config *cfg, const char *dir,
			  int64_t version, char *note, size_t notelen, char *err, size_t errlen);

/*
 * be_registry_get - the backend called name, loading the plugin and calling
 * its ferry_backend_initialize on first use.  The backend stays loaded until
 * be_registry_destroy().  Errors (err filled): FERRY_ENOENT not found (the
 * message names the paths searched), FERRY_VERSION incompatible major or
 * newer minor, FERRY_BACKEND missing required symbol, dlopen failure or an
 * initialize error, FERRY_EINVAL a name that is not a plain word.
 */
int be_registry_get(struct be_registry *reg, const char *name, ferry_backend **out,
		    char *err, size_t errlen);

/* Take another reference to an error (shared by a batch's requests); drop
 * each with ferry_be_error_delete(). */
ferry_be_error *be_error_ref(ferry_be_error *e);

#endif /* FERRY_BE_HOST_H */
