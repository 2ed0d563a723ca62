/* SPDX-License-Identifier: MIT */
/*
 * hs_admin.c - the HTTP front end's health, metadata, configuration,
 * statistics, repository and shared-memory endpoints, and the logging
 * settings.  Each builds the KServe request message of the same gRPC
 * call from the path and body, runs the gRPC front end's handler for it
 * (gs_call_local: one snapshot of the model table, the same checks and
 * the same messages), and renders the reply as Triton's HTTP endpoint
 * writes it (hs_json.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include <ferry/errors.h>

#include "broker/core/log.h"
#include "broker/frontends/grpc/gs_server.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "broker/frontends/http/hs_infer.h"
#include "broker/frontends/http/hs_int.h"
#include "broker/frontends/metrics.h"
#include "proto/kserve.pb-c.h"

/* How a reply is rendered. */
enum hs__form {
	HS_WHOLE,               /* the message as an object */
	HS_CONFIG,              /* its "config" field alone (ModelConfig) */
	HS_LIST_MODELS,         /* its "models" list as an array (index) */
	HS_LIST_REGIONS,        /* its "regions" map's values as an array */
	HS_NONE,                /* nothing: 200 with an empty body */
};

struct hs__render {
	struct hs__ctx *x;
	enum hs__form form;
};

static int hs__emit(void *arg, const ProtobufCMessage *reply)
{
	struct hs__render *r = arg;
	struct hs_buf *b = &r->x->out;
	switch (r->form) {
	case HS_WHOLE:
		hs_json_message(b, reply);
		break;
	case HS_CONFIG: {
		const Inference__ModelConfigResponse *c = (const Inference__ModelConfigResponse *)reply;
		if (c->config)
			hs_json_message(b, &c->config->base);
		else
			hs_buf_puts(b, "{}");
		break;
	}
	case HS_LIST_MODELS:
		hs_json_values(b, reply, "models");
		break;
	case HS_LIST_REGIONS:
		hs_json_values(b, reply, "regions");
		break;
	case HS_NONE:
		break;
	}
	return b->oom ? FERRY_ENOMEM : 0;
}

/* Run gRPC's `method` on req and render its reply into x->out. */
static int hs__call(struct hs__ctx *x, const char *method, const ProtobufCMessage *req,
		    enum hs__form form)
{
	struct hs__render r = { x, form };
	return gs_call_local(method, req, hs__emit, &r, x->err, sizeof(x->err));
}

/* The body as a JSON object (NULL for an empty body); FERRY_EINVAL when
 * it is something else. */
static int hs__body(struct hs__ctx *x, struct json_object **out)
{
	*out = NULL;
	if (x->len == 0)
		return 0;
	if (x->len > (1u << 20))
		return hs__fail(x, FERRY_E2BIG, "a request body of %zu bytes for this endpoint",
				x->len);
	return hs_infer_json((const char *)x->body, x->len, out, x->err, sizeof(x->err));
}

static struct json_object *hs__get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	if (o && json_object_object_get_ex(o, key, &v))
		return v;
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Health and metadata                                                     */

int hs__live(struct hs__ctx *x)
{
	(void)x;
	return 0;
}

int hs__ready(struct hs__ctx *x)
{
	/* KServe: 200 when ready, 400 otherwise, with no body. */
	if (hs__stopping() || !atomic_load(&metrics_gauges.ready))
		x->status = MHD_HTTP_BAD_REQUEST;
	return 0;
}

int hs__server_meta(struct hs__ctx *x)
{
	Inference__ServerMetadataRequest q = INFERENCE__SERVER_METADATA_REQUEST__INIT;
	return hs__call(x, "ServerMetadata", &q.base, HS_WHOLE);
}

int hs__model_meta(struct hs__ctx *x)
{
	Inference__ModelMetadataRequest q = INFERENCE__MODEL_METADATA_REQUEST__INIT;
	q.name = (char *)x->arg[0];
	q.version = (char *)(x->arg[1] ? x->arg[1] : "");
	return hs__call(x, "ModelMetadata", &q.base, HS_WHOLE);
}

static int hs__ready_emit(void *arg, const ProtobufCMessage *reply)
{
	*(bool *)arg = ((const Inference__ModelReadyResponse *)reply)->ready;
	return 0;
}

int hs__model_ready(struct hs__ctx *x)
{
	Inference__ModelReadyRequest q = INFERENCE__MODEL_READY_REQUEST__INIT;
	bool ready = false;
	q.name = (char *)x->arg[0];
	q.version = (char *)(x->arg[1] ? x->arg[1] : "");
	int ret = gs_call_local("ModelReady", &q.base, hs__ready_emit, &ready, x->err,
				sizeof(x->err));
	if (ret)
		return ret;
	if (!ready)
		x->status = MHD_HTTP_BAD_REQUEST;
	return 0;
}

int hs__model_config(struct hs__ctx *x)
{
	Inference__ModelConfigRequest q = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
	q.name = (char *)x->arg[0];
	q.version = (char *)(x->arg[1] ? x->arg[1] : "");
	return hs__call(x, "ModelConfig", &q.base, HS_CONFIG);
}

int hs__stats(struct hs__ctx *x)
{
	Inference__ModelStatisticsRequest q = INFERENCE__MODEL_STATISTICS_REQUEST__INIT;
	q.name = (char *)(x->arg[0] ? x->arg[0] : "");
	q.version = (char *)(x->arg[1] ? x->arg[1] : "");
	return hs__call(x, "ModelStatistics", &q.base, HS_WHOLE);
}

/* ---------------------------------------------------------------------- */
/* Repository                                                              */

int hs__repo_index(struct hs__ctx *x)
{
	Inference__RepositoryIndexRequest q = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
	struct json_object *b;
	int ret = hs__body(x, &b);
	if (ret)
		return ret;
	struct json_object *ready = hs__get(b, "ready");
	if (ready && !json_object_is_type(ready, json_type_boolean))
		ret = hs__fail(x, FERRY_EINVAL, "\"ready\" must be true or false");
	else
		q.ready = ready && json_object_get_boolean(ready);
	json_object_put(b);
	return ret ? ret : hs__call(x, "RepositoryIndex", &q.base, HS_LIST_MODELS);
}

int hs__repo_load(struct hs__ctx *x)
{
	Inference__RepositoryModelLoadRequest q = INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
	struct json_object *b;
	int ret = hs__body(x, &b);
	if (ret)
		return ret;
	struct json_object *p = hs__get(b, "parameters");
	json_object_put(b);
	/* A config override or model files: not ferry's (gRPC says so too). */
	if (p && (!json_object_is_type(p, json_type_object) || json_object_object_length(p)))
		return hs__fail(x, FERRY_ENOTSUP, "load parameters (config override, files) are "
				"not supported by ferry");
	q.model_name = (char *)x->arg[0];
	return hs__call(x, "RepositoryModelLoad", &q.base, HS_NONE);
}

int hs__repo_unload(struct hs__ctx *x)
{
	Inference__RepositoryModelUnloadRequest q = INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
	struct json_object *b;
	int ret = hs__body(x, &b);
	if (ret)
		return ret;
	json_object_put(b);     /* unload_dependents: ferry's models have none */
	q.model_name = (char *)x->arg[0];
	return hs__call(x, "RepositoryModelUnload", &q.base, HS_NONE);
}

/* ---------------------------------------------------------------------- */
/* Shared memory                                                           */

int hs__shm_status(struct hs__ctx *x)
{
	Inference__SystemSharedMemoryStatusRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_STATUS_REQUEST__INIT;
	q.name = (char *)(x->arg[0] ? x->arg[0] : "");
	return hs__call(x, "SystemSharedMemoryStatus", &q.base, HS_LIST_REGIONS);
}

/* A non-negative integer member of o: 0, or FERRY_EINVAL with x->err. */
static int hs__u64(struct hs__ctx *x, struct json_object *o, const char *key, bool required,
		   uint64_t *v)
{
	struct json_object *m = hs__get(o, key);
	if (!m) {
		if (required)
			return hs__fail(x, FERRY_EINVAL, "\"%s\" is required", key);
		*v = 0;
		return 0;
	}
	if (!json_object_is_type(m, json_type_int) || json_object_get_int64(m) < 0)
		return hs__fail(x, FERRY_EINVAL, "\"%s\" must be a non-negative integer", key);
	*v = json_object_get_uint64(m);
	return 0;
}

int hs__shm_register(struct hs__ctx *x)
{
	Inference__SystemSharedMemoryRegisterRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_REQUEST__INIT;
	struct json_object *b;
	int ret = hs__body(x, &b);
	if (ret)
		return ret;
	struct json_object *key = hs__get(b, "key");
	if (!key || !json_object_is_type(key, json_type_string))
		ret = hs__fail(x, FERRY_EINVAL, "\"key\" must be a string");
	if (!ret)
		ret = hs__u64(x, b, "offset", false, &q.offset);
	if (!ret)
		ret = hs__u64(x, b, "byte_size", true, &q.byte_size);
	if (!ret) {
		q.name = (char *)x->arg[0];
		q.key = (char *)json_object_get_string(key);
		ret = hs__call(x, "SystemSharedMemoryRegister", &q.base, HS_NONE);
	}
	json_object_put(b);
	return ret;
}

int hs__shm_unregister(struct hs__ctx *x)
{
	Inference__SystemSharedMemoryUnregisterRequest q =
		INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
	q.name = (char *)(x->arg[0] ? x->arg[0] : "");
	return hs__call(x, "SystemSharedMemoryUnregister", &q.base, HS_NONE);
}

int hs__cuda_status(struct hs__ctx *x)
{
	Inference__CudaSharedMemoryStatusRequest q = INFERENCE__CUDA_SHARED_MEMORY_STATUS_REQUEST__INIT;
	q.name = (char *)(x->arg[0] ? x->arg[0] : "");
	return hs__call(x, "CudaSharedMemoryStatus", &q.base, HS_LIST_REGIONS);
}

/* Standard base64 (RFC 4648, padding optional): the CUDA IPC handle. */
static int hs__unbase64(const char *s, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	uint32_t acc = 0;
	int bits = 0;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int v;
		if (c >= 'A' && c <= 'Z') v = c - 'A';
		else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
		else if (c >= '0' && c <= '9') v = c - '0' + 52;
		else if (c == '+') v = 62;
		else if (c == '/') v = 63;
		else if (c == '=') break;
		else return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (*len >= cap)
				return -1;
			out[(*len)++] = (uint8_t)(acc >> bits);
		}
	}
	return 0;
}

int hs__cuda_register(struct hs__ctx *x)
{
	Inference__CudaSharedMemoryRegisterRequest q =
		INFERENCE__CUDA_SHARED_MEMORY_REGISTER_REQUEST__INIT;
	uint8_t handle[256];
	size_t hlen = 0;
	struct json_object *b;
	int ret = hs__body(x, &b);
	if (ret)
		return ret;
	struct json_object *rh = hs__get(hs__get(b, "raw_handle"), "b64");
	uint64_t dev = 0;
	if (!rh || !json_object_is_type(rh, json_type_string) ||
	    hs__unbase64(json_object_get_string(rh), (size_t)json_object_get_string_len(rh),
			 handle, sizeof(handle), &hlen))
		ret = hs__fail(x, FERRY_EINVAL, "\"raw_handle\" must be {\"b64\": the handle in "
			       "base64}");
	if (!ret)
		ret = hs__u64(x, b, "device_id", false, &dev);
	if (!ret)
		ret = hs__u64(x, b, "byte_size", true, &q.byte_size);
	if (!ret && dev > INT32_MAX)
		ret = hs__fail(x, FERRY_EINVAL, "\"device_id\" %llu", (unsigned long long)dev);
	if (!ret) {
		q.name = (char *)x->arg[0];
		q.raw_handle.data = handle;
		q.raw_handle.len = hlen;
		q.device_id = (int64_t)dev;
		ret = hs__call(x, "CudaSharedMemoryRegister", &q.base, HS_NONE);
	}
	json_object_put(b);
	return ret;
}

int hs__cuda_unregister(struct hs__ctx *x)
{
	Inference__CudaSharedMemoryUnregisterRequest q =
		INFERENCE__CUDA_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
	q.name = (char *)(x->arg[0] ? x->arg[0] : "");
	return hs__call(x, "CudaSharedMemoryUnregister", &q.base, HS_NONE);
}

/* ---------------------------------------------------------------------- */
/* Trace and logging                                                       */

int hs__trace_get(struct hs__ctx *x)
{
	return hs__fail(x, FERRY_ENOTSUP, "ferry has no request tracing (the trace extension)");
}

int hs__trace_set(struct hs__ctx *x)
{
	return hs__trace_get(x);
}

/*
 * Triton's logging settings over ferry's one threshold: log_error,
 * log_warning and log_info switch error / warn / info on, and a
 * log_verbose_level of 1 or more is debug (2 and more: trace).  ferry
 * logs to stderr in its own format, so log_file and log_format take only
 * those values.
 */
static void hs__log_render(struct hs__ctx *x)
{
	enum log_level t = log_threshold;
	hs_buf_printf(&x->out, "{\"log_file\":\"\",\"log_info\":%s,\"log_warning\":%s,"
		      "\"log_error\":true,\"log_verbose_level\":%d,\"log_format\":\"default\"}",
		      t >= LOG_INFO ? "true" : "false", t >= LOG_WARN ? "true" : "false",
		      t >= LOG_TRACE ? 2 : t >= LOG_DEBUG ? 1 : 0);
}

int hs__log_get(struct hs__ctx *x)
{
	hs__log_render(x);
	return 0;
}

int hs__log_set(struct hs__ctx *x)
{
	struct json_object *b;
	int ret = hs__body(x, &b);
	if (ret)
		return ret;
	enum log_level t = log_threshold;
	bool info = t >= LOG_INFO, warn = t >= LOG_WARN;
	int verbose = t >= LOG_TRACE ? 2 : t >= LOG_DEBUG ? 1 : 0;
	struct json_object *none = b ? NULL : json_object_new_object();
	struct json_object *o = b ? b : none;
	if (!o)
		return hs__fail(x, FERRY_ENOMEM, "out of memory");
	struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
	for (; !ret && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *k = json_object_iter_peek_name(&it);
		struct json_object *v = json_object_iter_peek_value(&it);
		bool is_bool = json_object_is_type(v, json_type_boolean);
		if (!strcmp(k, "log_info") && is_bool)
			info = json_object_get_boolean(v);
		else if (!strcmp(k, "log_warning") && is_bool)
			warn = json_object_get_boolean(v);
		else if (!strcmp(k, "log_error") && is_bool) {
			if (!json_object_get_boolean(v))
				ret = hs__fail(x, FERRY_ENOTSUP, "ferry always logs errors");
		} else if (!strcmp(k, "log_verbose_level") && json_object_is_type(v, json_type_int) &&
			   json_object_get_int64(v) >= 0) {
			int64_t l = json_object_get_int64(v);
			verbose = l > 2 ? 2 : (int)l;
		} else if (!strcmp(k, "log_file") && json_object_is_type(v, json_type_string)) {
			if (json_object_get_string_len(v))
				ret = hs__fail(x, FERRY_ENOTSUP, "ferry logs to its standard error "
					       "(journald): log_file must be \"\"");
		} else if (!strcmp(k, "log_format") && json_object_is_type(v, json_type_string)) {
			if (strcmp(json_object_get_string(v), "default"))
				ret = hs__fail(x, FERRY_ENOTSUP, "ferry has one log format: "
					       "\"default\"");
		} else {
			ret = hs__fail(x, FERRY_EINVAL, "unknown or malformed logging setting '%s'",
				       k);
		}
	}
	json_object_put(o);
	if (ret)
		return ret;
	log_threshold = verbose >= 2 ? LOG_TRACE : verbose == 1 ? LOG_DEBUG
		      : info ? LOG_INFO : warn ? LOG_WARN : LOG_ERROR;
	log_info("HTTP: log level set to %d (0 error .. 4 trace)", (int)log_threshold);
	hs__log_render(x);
	return 0;
}
