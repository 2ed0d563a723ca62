/* SPDX-License-Identifier: MIT */
/*
 * be_host.c - the backend registry (built-ins and plugins through one
 * entry-point table), the error objects, and the backend / model / instance
 * accessors that ferryd exports to plugins.  The request accessors are in
 * be_request.c, beside the scheduler whose requests they describe.
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ferry/backend.h>
#include <ferry/errors.h>

#include "broker/sched/be_host.h"

/* One --backend-config entry; backend NULL: for every backend. */
struct be__kv {
	char *backend, *key, *value;
};

struct be_registry {
	pthread_mutex_t lock;           /* guards list and every load */
	char *dirs;                     /* colon-separated, never NULL */
	struct ferry_backend *list;
	/* set before the first load, then read-only (backends read it) */
	struct be__kv *kv;
	uint32_t nkv;
};

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static struct ferry_be_error be__oom_error = {
	.code = FERRY_ENOMEM, .refs = 1, .is_static = true, .msg = "out of memory",
};

FERRY_BE_EXPORT ferry_be_error *ferry_be_error_new(int code, const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	/* One allocation: the message follows the struct. */
	struct ferry_be_error *e = malloc(sizeof(*e) + (size_t)len + 1);
	if (!e)
		return &be__oom_error;
	char *msg = (char *)(e + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)len + 1, fmt, ap);
	va_end(ap);
	e->code = code < 0 ? code : FERRY_BACKEND;
	atomic_init(&e->refs, 1);
	e->is_static = false;
	e->msg = msg;
	return e;
}

FERRY_BE_EXPORT int ferry_be_error_code(const ferry_be_error *err)
{
	return err ? err->code : 0;
}

FERRY_BE_EXPORT const char *ferry_be_error_message(const ferry_be_error *err)
{
	return err ? err->msg : "";
}

FERRY_BE_EXPORT void ferry_be_error_delete(ferry_be_error *err)
{
	if (!err || err->is_static)
		return;
	/* acq_rel: the last owner must see every other owner's reads done. */
	if (atomic_fetch_sub_explicit(&err->refs, 1, memory_order_acq_rel) == 1)
		free(err);
}

ferry_be_error *be_error_ref(ferry_be_error *e)
{
	/* relaxed: the caller already holds a reference, nothing to order. */
	if (e && !e->is_static)
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	return e;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_api_version(uint32_t *major, uint32_t *minor)
{
	if (major)
		*major = FERRY_BACKEND_API_VERSION_MAJOR;
	if (minor)
		*minor = FERRY_BACKEND_API_VERSION_MINOR;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Backend, model and instance accessors                                */

FERRY_BE_EXPORT const char *ferry_backend_name(const ferry_backend *b) { return b->name; }
FERRY_BE_EXPORT const char *ferry_backend_directory(const ferry_backend *b) { return b->dir; }
FERRY_BE_EXPORT void ferry_backend_set_state(ferry_backend *b, void *state) { b->state = state; }
FERRY_BE_EXPORT void *ferry_backend_state(const ferry_backend *b) { return b->state; }

/* The entries for b: its own first (those naming b), then the global
 * ones; index counts over that order. */
static const struct be__kv *be__config_at(const ferry_backend *b, uint32_t index)
{
	const struct be_registry *reg = b->reg;

	for (int pass = 0; reg && pass < 2; pass++)
		for (uint32_t i = 0; i < reg->nkv; i++) {
			const struct be__kv *e = &reg->kv[i];
			bool mine = e->backend && strcmp(e->backend, b->name) == 0;
			if ((pass == 0 ? mine : !e->backend) && index-- == 0)
				return e;
		}
	return NULL;
}

FERRY_BE_EXPORT uint32_t ferry_backend_config_count(const ferry_backend *b)
{
	uint32_t n = 0;

	while (be__config_at(b, n))
		n++;
	return n;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_config(const ferry_backend *b, uint32_t index,
						     const char **key, const char **value)
{
	const struct be__kv *e = be__config_at(b, index);

	if (!e)
		return ferry_be_error_new(FERRY_ENOENT, "backend config index %u out of range",
					  index);
	if (key)
		*key = e->key;
	if (value)
		*value = e->value;
	return NULL;
}

FERRY_BE_EXPORT const char *ferry_backend_config_by_name(const ferry_backend *b, const char *key)
{
	const struct be__kv *e;

	/* The backend's own entries come first: the first match wins. */
	for (uint32_t i = 0; (e = be__config_at(b, i)); i++)
		if (strcmp(e->key, key) == 0)
			return e->value;
	return NULL;
}

FERRY_BE_EXPORT const char *ferry_be_model_name(const ferry_be_model *m) { return m->cfg->name; }
FERRY_BE_EXPORT int64_t ferry_be_model_version(const ferry_be_model *m) { return m->version; }
FERRY_BE_EXPORT const char *ferry_be_model_repository_path(const ferry_be_model *m) { return m->path; }
FERRY_BE_EXPORT ferry_backend *ferry_be_model_backend(const ferry_be_model *m) { return m->backend; }
FERRY_BE_EXPORT int ferry_be_model_max_batch_size(const ferry_be_model *m) { return m->cfg->max_batch_size; }
FERRY_BE_EXPORT uint32_t ferry_be_model_input_count(const ferry_be_model *m) { return (uint32_t)m->cfg->ninputs; }
FERRY_BE_EXPORT uint32_t ferry_be_model_output_count(const ferry_be_model *m) { return (uint32_t)m->cfg->noutputs; }
FERRY_BE_EXPORT void ferry_be_model_set_state(ferry_be_model *m, void *state) { m->state = state; }
FERRY_BE_EXPORT void *ferry_be_model_state(const ferry_be_model *m) { return m->state; }

static ferry_be_error *be__model_tensor(const struct modelcfg_tensor *t, int n, uint32_t index,
				       const char *what, const char **name, ferry_dtype *dtype,
				       const int64_t **dims, int *ndims)
{
	if (index >= (uint32_t)n)
		return ferry_be_error_new(FERRY_ENOENT, "%s index %u out of range (%d)",
					  what, index, n);
	t += index;
	if (name)
		*name = t->name;
	if (dtype)
		*dtype = t->dtype;
	if (dims)
		*dims = t->dims;
	if (ndims)
		*ndims = t->ndims;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_input(const ferry_be_model *m, uint32_t index,
						     const char **name, ferry_dtype *dtype,
						     const int64_t **dims, int *ndims)
{
	return be__model_tensor(m->cfg->inputs, m->cfg->ninputs, index, "input",
			       name, dtype, dims, ndims);
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_output(const ferry_be_model *m, uint32_t index,
						      const char **name, ferry_dtype *dtype,
						      const int64_t **dims, int *ndims)
{
	return be__model_tensor(m->cfg->outputs, m->cfg->noutputs, index, "output",
			       name, dtype, dims, ndims);
}

static bool be__reshape(const struct modelcfg_tensor *t, int n, uint32_t index,
			const int64_t **shape, int *ndims)
{
	if (index >= (uint32_t)n || !t[index].has_reshape)
		return false;
	if (shape)
		*shape = t[index].reshape;
	if (ndims)
		*ndims = t[index].reshape_ndims;
	return true;
}

FERRY_BE_EXPORT bool ferry_be_model_input_reshape(const ferry_be_model *m, uint32_t index,
						  const int64_t **shape, int *ndims)
{
	return be__reshape(m->cfg->inputs, m->cfg->ninputs, index, shape, ndims);
}

FERRY_BE_EXPORT bool ferry_be_model_output_reshape(const ferry_be_model *m, uint32_t index,
						   const int64_t **shape, int *ndims)
{
	return be__reshape(m->cfg->outputs, m->cfg->noutputs, index, shape, ndims);
}

FERRY_BE_EXPORT bool ferry_be_model_graph_level(const ferry_be_model *m, int *level)
{
	if (!m->cfg->opt.has_graph_level)
		return false;
	if (level)
		*level = m->cfg->opt.graph_level;
	return true;
}

static const struct modelcfg_accel *be__accels(const ferry_be_model *m,
					      ferry_be_accelerator_kind kind, uint32_t *n)
{
	const struct modelcfg_optimization *o = &m->cfg->opt;

	if (kind == FERRY_BE_ACCELERATOR_GPU) {
		*n = (uint32_t)o->ngpu_accel;
		return o->gpu_accel;
	}
	if (kind == FERRY_BE_ACCELERATOR_CPU) {
		*n = (uint32_t)o->ncpu_accel;
		return o->cpu_accel;
	}
	*n = 0;
	return NULL;
}

FERRY_BE_EXPORT uint32_t ferry_be_model_accelerator_count(const ferry_be_model *m,
							  ferry_be_accelerator_kind kind)
{
	uint32_t n;

	be__accels(m, kind, &n);
	return n;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_accelerator(const ferry_be_model *m,
							   ferry_be_accelerator_kind kind,
							   uint32_t index, const char **name,
							   uint32_t *nparams)
{
	uint32_t n;
	const struct modelcfg_accel *a = be__accels(m, kind, &n);

	if (index >= n)
		return ferry_be_error_new(FERRY_ENOENT, "execution accelerator index %u out "
					  "of range (%u)", index, n);
	if (name)
		*name = a[index].name;
	if (nparams)
		*nparams = (uint32_t)a[index].nparams;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_accelerator_parameter(
	const ferry_be_model *m, ferry_be_accelerator_kind kind, uint32_t index,
	uint32_t param, const char **key, const char **value)
{
	uint32_t n;
	const struct modelcfg_accel *a = be__accels(m, kind, &n);

	if (index >= n || param >= (uint32_t)a[index].nparams)
		return ferry_be_error_new(FERRY_ENOENT, "execution accelerator %u parameter "
					  "%u out of range", index, param);
	if (key)
		*key = a[index].params[param].key;
	if (value)
		*value = a[index].params[param].value;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Auto-complete writers (inside model_autocomplete only: m->wcfg)      */

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_set_max_batch_size(ferry_be_model *m, int n)
{
	if (!m->wcfg)
		return ferry_be_error_new(FERRY_EBUSY, "model '%s': max_batch_size can only be "
					  "set in ferry_backend_model_autocomplete", m->cfg->name);
	if (n < 0)
		return ferry_be_error_new(FERRY_EINVAL, "max_batch_size %d is negative", n);
	/* What config.pbtxt says stays. */
	if (!m->wcfg->has_max_batch_size)
		m->wcfg->max_batch_size = n;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_complete_tensor(ferry_be_model *m, bool output,
							       const char *name,
							       ferry_dtype dtype,
							       const int64_t *dims, int ndims)
{
	struct model_config *cfg = m->wcfg;
	const char *what = output ? "output" : "input";

	if (!cfg)
		return ferry_be_error_new(FERRY_EBUSY, "model '%s': tensors can only be "
					  "completed in ferry_backend_model_autocomplete",
					  m->cfg->name);
	if (!name || !*name || !ferry_dtype_name(dtype))
		return ferry_be_error_new(FERRY_EINVAL, "%s '%s': no name or an invalid data "
					  "type", what, name ? name : "");
	if (ndims < 0 || ndims > MODELCFG_MAX_DIMS)
		return ferry_be_error_new(FERRY_EINVAL, "%s '%s': %d dimensions; a config "
					  "holds 0..%d", what, name, ndims, MODELCFG_MAX_DIMS);
	for (int d = 0; d < ndims; d++)
		if (dims[d] < 1 && dims[d] != -1)
			return ferry_be_error_new(FERRY_EINVAL, "%s '%s': dimension %lld; a "
						  "config holds >= 1 or -1 (variable)", what,
						  name, (long long)dims[d]);
	struct modelcfg_tensor **arr = output ? &cfg->outputs : &cfg->inputs;
	int *n = output ? &cfg->noutputs : &cfg->ninputs;
	struct modelcfg_tensor *t = NULL;
	for (int i = 0; i < *n; i++)
		if (strcmp((*arr)[i].name, name) == 0)
			t = &(*arr)[i];
	if (!t) {
		if (*n >= MODELCFG_MAX_IO)
			return ferry_be_error_new(FERRY_E2BIG, "more than %d %ss", MODELCFG_MAX_IO,
						  what);
		struct modelcfg_tensor *a = realloc(*arr, ((size_t)*n + 1) * sizeof(**arr));
		if (!a)
			return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
		*arr = a;
		t = &a[*n];
		memset(t, 0, sizeof(*t));
		if (!(t->name = strdup(name)))
			return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
		(*n)++;
	}
	if (t->dtype == FERRY_TYPE_INVALID)
		t->dtype = dtype;
	if (t->ndims == 0) {
		if (ndims == 0) {
			/* Triton's scalar: dims [1], reshaped to [] */
			t->ndims = 1;
			t->dims[0] = 1;
			if (!t->has_reshape) {
				t->has_reshape = true;
				t->reshape_ndims = 0;
			}
		} else {
			t->ndims = ndims;
			memcpy(t->dims, dims, (size_t)ndims * sizeof(int64_t));
		}
	}
	return NULL;
}

FERRY_BE_EXPORT uint32_t ferry_be_model_parameter_count(const ferry_be_model *m)
{
	return (uint32_t)m->cfg->nparams;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_parameter(const ferry_be_model *m, uint32_t index,
							 const char **key, const char **value)
{
	if (index >= (uint32_t)m->cfg->nparams)
		return ferry_be_error_new(FERRY_ENOENT, "parameter index %u out of range (%d)",
					  index, m->cfg->nparams);
	if (key)
		*key = m->cfg->params[index].key;
	if (value)
		*value = m->cfg->params[index].value;
	return NULL;
}

FERRY_BE_EXPORT const char *ferry_be_model_parameter_by_name(const ferry_be_model *m,
							     const char *key)
{
	/* Not modelcfg_param(): the scheduler must not depend on the parser. */
	for (int i = 0; i < m->cfg->nparams; i++)
		if (strcmp(m->cfg->params[i].key, key) == 0)
			return m->cfg->params[i].value;
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_be_model_set_property(ferry_be_model *m,
							    ferry_be_model_property prop,
							    int64_t value)
{
	if (m->frozen)
		return ferry_be_error_new(FERRY_EBUSY, "model '%s': properties can only be set "
					  "in ferry_backend_model_initialize", m->cfg->name);
	switch (prop) {
	case FERRY_BE_MODEL_PROP_LIGHT:
		m->light = value != 0;
		return NULL;
	case FERRY_BE_MODEL_PROP_ACCEPTS_GPU:
		m->accepts_gpu = value != 0;
		return NULL;
	case FERRY_BE_MODEL_PROP_CUDA_MEMORY:
		m->cuda_memory = value != 0;
		return NULL;
	}
	return ferry_be_error_new(FERRY_ENOTSUP, "unknown model property %d", (int)prop);
}

FERRY_BE_EXPORT ferry_be_model *ferry_be_instance_model(const ferry_be_instance *i) { return i->model; }
FERRY_BE_EXPORT ferry_be_instance_kind ferry_be_instance_kind_of(const ferry_be_instance *i) { return i->kind; }
FERRY_BE_EXPORT int ferry_be_instance_device_id(const ferry_be_instance *i) { return i->device; }
FERRY_BE_EXPORT uint32_t ferry_be_instance_index(const ferry_be_instance *i) { return i->index; }
FERRY_BE_EXPORT const char *ferry_be_instance_group_name(const ferry_be_instance *i) { return i->group; }
FERRY_BE_EXPORT void ferry_be_instance_set_state(ferry_be_instance *i, void *state) { i->state = state; }
FERRY_BE_EXPORT void *ferry_be_instance_state(const ferry_be_instance *i) { return i->state; }

FERRY_BE_EXPORT void ferry_be_instance_report_compute(ferry_be_instance *i, uint64_t input_end_ns,
						      uint64_t infer_end_ns)
{
	i->input_end_ns = input_end_ns;
	i->infer_end_ns = infer_end_ns;
}

/* ------------------------------------------------------------------ */
/* Registry                                                            */

int be_registry_create(const char *backend_dirs, struct be_registry **out)
{
	struct be_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return FERRY_ENOMEM;
	pthread_mutex_init(&reg->lock, NULL);
	reg->dirs = strdup(backend_dirs ? backend_dirs : "");
	if (!reg->dirs) {
		be_registry_destroy(reg);
		return FERRY_ENOMEM;
	}
	*out = reg;
	return 0;
}

static void be__free(struct ferry_backend *b)
{
	if (b->initialized && b->ops.finalize) {
		ferry_be_error *e = b->ops.finalize(b);
		if (e) {
			/* Nobody to return it to at teardown; say it once. */
			fprintf(stderr, "ferryd: backend '%s' finalize: %s\n", b->name,
				ferry_be_error_message(e));
			ferry_be_error_delete(e);
		}
	}
	if (b->dl)
		dlclose(b->dl);
	free(b->name);
	free(b->dir);
	free(b);
}

void be_registry_destroy(struct be_registry *reg)
{
	if (!reg)
		return;
	for (uint32_t i = 0; i < reg->nkv; i++) {
		free(reg->kv[i].backend);
		free(reg->kv[i].key);
		free(reg->kv[i].value);
	}
	free(reg->kv);
	while (reg->list) {
		struct ferry_backend *b = reg->list;
		reg->list = b->next;
		be__free(b);
	}
	free(reg->dirs);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static struct ferry_backend *be__find(struct be_registry *reg, const char *name)
{
	for (struct ferry_backend *b = reg->list; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

static struct ferry_backend *be__alloc(struct be_registry *reg, const char *name,
				       const char *dir)
{
	struct ferry_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->reg = reg;
	b->name = strdup(name);
	b->dir = strdup(dir);
	if (!b->name || !b->dir) {
		free(b->name);
		free(b->dir);
		free(b);
		return NULL;
	}
	return b;
}

int be_registry_add_builtin(struct be_registry *reg, const char *name, const struct be_ops *ops,
			    char *err, size_t errlen)
{
	int rc = 0;

	if (!ops->model_initialize || !ops->instance_initialize || !ops->instance_execute) {
		snprintf(err, errlen, "built-in backend '%s' lacks a required entry point", name);
		return FERRY_EINVAL;
	}
	pthread_mutex_lock(&reg->lock);
	if (be__find(reg, name)) {
		snprintf(err, errlen, "backend '%s' is already registered", name);
		rc = FERRY_EBUSY;
		goto out;
	}
	struct ferry_backend *b = be__alloc(reg, name, "");
	if (!b) {
		snprintf(err, errlen, "out of memory");
		rc = FERRY_ENOMEM;
		goto out;
	}
	b->ops = *ops;
	/* Built-ins initialise lazily too, like plugins, so an unused one costs
	 * nothing: initialized stays false until be_registry_get(). */
	b->next = reg->list;
	reg->list = b;
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

const char *be_backend_name(const struct model_config *cfg, char *err, size_t errlen)
{
	const char *be = cfg->backend ? cfg->backend : "";
	const char *pf = cfg->platform ? cfg->platform : "";

	if (*be)
		return be;
	if (*pf) {
		if (strcmp(pf, "onnxruntime_onnx") == 0)
			return BE_ONNXRUNTIME;
		snprintf(err, errlen, "model '%s': platform '%s' is not served by ferry "
			 "(supported: onnxruntime_onnx; or set 'backend')", cfg->name, pf);
		return NULL;
	}
	snprintf(err, errlen, "model '%s': config names neither a backend nor a platform",
		 cfg->name);
	return NULL;
}

/* Append to a bounded message without overflowing. */
static void be__append(char *buf, size_t len, const char *fmt, ...) FERRY__BE_PRINTF(3, 4);
static void be__append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* Resolve the table; b->dl is open.  Returns 0 or an error with err set. */
static int be__resolve(struct ferry_backend *b, const char *path, char *err, size_t errlen)
{
	static const struct {
		const char *sym;
		size_t off;
		bool required;
	} syms[] = {
#define S(field, req) { "ferry_backend_" #field, offsetof(struct be_ops, field), req }
		S(api_version_required, true),
		S(initialize, false),
		S(finalize, false),
		S(model_initialize, true),
		S(model_finalize, false),
		S(instance_initialize, true),
		S(instance_finalize, false),
		S(instance_execute, true),
		S(model_autocomplete, false),
#undef S
	};

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(b->dl, syms[i].sym);
		if (!p && syms[i].required) {
			snprintf(err, errlen, "backend '%s' (%s) does not export the required "
				 "entry point %s", b->name, path, syms[i].sym);
			return FERRY_BACKEND;
		}
		/* POSIX guarantees a data pointer from dlsym converts to a
		 * function pointer; memcpy says so without a cast warning. */
		memcpy((char *)&b->ops + syms[i].off, &p, sizeof(p));
		if (i > 0)
			continue;

		/* The version first: a plugin for another major may name its
		 * entry points differently, and that is the better message. */
		uint32_t maj = 0, min = 0;
		b->ops.api_version_required(&maj, &min);
		if (maj != FERRY_BACKEND_API_VERSION_MAJOR ||
		    min > FERRY_BACKEND_API_VERSION_MINOR) {
			snprintf(err, errlen, "backend '%s' (%s) needs backend API %u.%u but "
				 "ferryd provides %u.%u (majors must match, minor at most "
				 "ferryd's)", b->name, path, maj, min,
				 FERRY_BACKEND_API_VERSION_MAJOR, FERRY_BACKEND_API_VERSION_MINOR);
			return FERRY_VERSION;
		}
	}
	return 0;
}

/* Find and load the plugin; called with reg->lock held. */
static int be__load_plugin(struct be_registry *reg, const char *name, struct ferry_backend **out,
			  char *err, size_t errlen)
{
	char searched[1024] = "";
	char path[4096];
	const char *d = reg->dirs;

	while (*d) {
		const char *end = strchr(d, ':');
		size_t dl = end ? (size_t)(end - d) : strlen(d);
		for (int layout = 0; dl && layout < 2; layout++) {
			int n = layout == 0
				? snprintf(path, sizeof(path), "%.*s/%s/libferry_%s.so",
					   (int)dl, d, name, name)
				: snprintf(path, sizeof(path), "%.*s/libferry_%s.so",
					   (int)dl, d, name);
			if (n < 0 || (size_t)n >= sizeof(path))
				continue;
			be__append(searched, sizeof(searched), "%s%s", *searched ? ", " : "", path);
			if (access(path, F_OK) != 0)
				continue;

			/* RTLD_NOW: an accessor the plugin needs and ferryd lacks
			 * fails here, with dlerror naming it, not at first call. */
			void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
			if (!h) {
				snprintf(err, errlen, "backend '%s': cannot load %s: %s",
					 name, path, dlerror());
				return FERRY_BACKEND;
			}
			int dlen = (int)(strrchr(path, '/') - path);
			char dir[4096];
			snprintf(dir, sizeof(dir), "%.*s", dlen, path);
			struct ferry_backend *b = be__alloc(reg, name, dir);
			if (!b) {
				dlclose(h);
				snprintf(err, errlen, "out of memory");
				return FERRY_ENOMEM;
			}
			b->dl = h;
			int rc = be__resolve(b, path, err, errlen);
			if (rc) {
				be__free(b);
				return rc;
			}
			*out = b;
			return 0;
		}
		d += dl;
		if (*d == ':')
			d++;
	}
	snprintf(err, errlen, "unknown backend '%s': not built in (identity, add_sub, onnx) and "
		 "no plugin found; searched: %s", name,
		 *searched ? searched : "(no backend directory)");
	return FERRY_ENOENT;
}

int be_registry_get(struct be_registry *reg, const char *name, ferry_backend **out,
		    char *err, size_t errlen)
{
	int rc = 0;

	/* The name comes from a config file: keep it inside the directories. */
	if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(err, errlen, "invalid backend name '%s'", name);
		return FERRY_EINVAL;
	}
	pthread_mutex_lock(&reg->lock);
	struct ferry_backend *b = be__find(reg, name);
	if (!b) {
		rc = be__load_plugin(reg, name, &b, err, errlen);
		if (rc)
			goto out;
		b->next = reg->list;
		reg->list = b;
	}
	if (!b->initialized) {
		if (b->ops.initialize) {
			ferry_be_error *e = b->ops.initialize(b);
			if (e) {
				snprintf(err, errlen, "backend '%s' failed to initialize: %s",
					 name, ferry_be_error_message(e));
				ferry_be_error_delete(e);
				rc = FERRY_BACKEND;
				goto out;
			}
		}
		b->initialized = true;
	}
	*out = b;
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Configuration, routing and auto-complete                             */

int be_registry_add_config(struct be_registry *reg, const char *spec, char *err, size_t errlen)
{
	const char *eq = strchr(spec, '='), *comma = strchr(spec, ',');
	char *backend = NULL, *key = NULL, *value = NULL;

	/* "NAME,KEY=VALUE" or "KEY=VALUE": a comma before the '=' ends NAME */
	if (comma && eq && comma > eq)
		comma = NULL;
	if (!eq || eq == spec || (comma && (comma == spec || comma + 1 == eq))) {
		snprintf(err, errlen, "--backend-config '%s': expected NAME,KEY=VALUE or "
			 "KEY=VALUE", spec);
		return FERRY_EINVAL;
	}
	if (comma)
		backend = strndup(spec, (size_t)(comma - spec));
	key = comma ? strndup(comma + 1, (size_t)(eq - comma - 1))
		    : strndup(spec, (size_t)(eq - spec));
	value = strdup(eq + 1);
	if ((comma && !backend) || !key || !value)
		goto nomem;
	pthread_mutex_lock(&reg->lock);
	for (uint32_t i = 0; i < reg->nkv; i++) {
		struct be__kv *e = &reg->kv[i];
		if (!strcmp(e->key, key) && (e->backend ? backend && !strcmp(e->backend, backend)
							: !backend)) {
			free(e->value);
			e->value = value;
			pthread_mutex_unlock(&reg->lock);
			free(backend);
			free(key);
			return 0;
		}
	}
	struct be__kv *kv = realloc(reg->kv, ((size_t)reg->nkv + 1) * sizeof(*kv));
	if (!kv) {
		pthread_mutex_unlock(&reg->lock);
		goto nomem;
	}
	reg->kv = kv;
	kv[reg->nkv++] = (struct be__kv){ backend, key, value };
	pthread_mutex_unlock(&reg->lock);
	return 0;
nomem:
	free(backend);
	free(key);
	free(value);
	snprintf(err, errlen, "out of memory");
	return FERRY_ENOMEM;
}

int be_registry_resolve(struct be_registry *reg, const struct model_config *cfg,
			ferry_backend **out, char *note, size_t notelen, char *err, size_t errlen)
{
	const char *name = be_backend_name(cfg, err, errlen);
	char why[768];
	int rc;

	if (note && notelen)
		note[0] = '\0';
	if (!name)
		return FERRY_CONFIG;
	rc = be_registry_get(reg, name, out, err, errlen);
	if (rc == 0 || strcmp(name, BE_ONNXRUNTIME) != 0)
		return rc;
	/* Triton's names for an ONNX model: where ONNX Runtime cannot be had
	 * the native executor serves what it can, and says why it serves. */
	snprintf(why, sizeof(why), "%s", err);
	if (be_registry_get(reg, BE_NATIVE_ONNX, out, err, errlen)) {
		snprintf(err, errlen, "%s", why);
		return rc;
	}
	if (note && notelen)
		snprintf(note, notelen, "onnxruntime is not available (%s); served by the "
			 "native executor '" BE_NATIVE_ONNX "'", why);
	return 0;
}

int be_model_autocomplete(struct be_registry *reg, struct model_config *cfg, const char *dir,
			  int64_t version, char *note, size_t notelen, char *err, size_t errlen)
{
	struct ferry_be_model m;
	ferry_backend *b;
	bool had_mbs = cfg->has_max_batch_size;
	int rc = be_registry_resolve(reg, cfg, &b, note, notelen, err, errlen);

	if (rc)
		return rc;
	if (!b->ops.model_autocomplete)
		return 0;
	memset(&m, 0, sizeof(m));
	m.cfg = m.wcfg = cfg;
	m.version = version;
	m.backend = b;
	m.path = (char *)(dir ? dir : "");
	ferry_be_error *e = b->ops.model_autocomplete(&m);
	if (e) {
		rc = ferry_be_error_code(e);
		snprintf(err, errlen, "backend '%s' cannot auto-complete the config of model "
			 "'%s': %s", b->name, cfg->name, ferry_be_error_message(e));
		ferry_be_error_delete(e);
		return rc;
	}
	/* Triton: a max_batch_size the backend chose above 1, on a config
	 * that named no scheduler, gets the dynamic batcher. */
	if (!had_mbs && cfg->max_batch_size > 1 && !cfg->dynbatch.enabled)
		cfg->dynbatch.enabled = true;
	return 0;
}
