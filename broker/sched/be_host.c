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

struct be_registry {
	pthread_mutex_t lock;           /* guards list and every load */
	char *dirs;                     /* colon-separated, never NULL */
	struct ferry_backend *list;
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

static struct ferry_backend *be__alloc(const char *name, const char *dir)
{
	struct ferry_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
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
	struct ferry_backend *b = be__alloc(name, "");
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

	if (*be) {
		if (strcmp(be, "onnxruntime") == 0)
			return "onnx";
		return be;
	}
	if (*pf) {
		if (strcmp(pf, "onnxruntime_onnx") == 0)
			return "onnx";
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
			struct ferry_backend *b = be__alloc(name, dir);
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
	snprintf(err, errlen, "unknown backend '%s': not built in (identity, add_sub) and no "
		 "plugin found; searched: %s", name, *searched ? searched : "(no backend directory)");
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
