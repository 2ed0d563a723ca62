/* SPDX-License-Identifier: MIT */
/*
 * ort_backend.c - the "onnxruntime" backend plugin (libferry_onnxruntime.so):
 * ONNX Runtime's C API behind ferry's backend ABI, read the way Triton's
 * onnxruntime backend reads a model config.
 *
 * SETTINGS (config.pbtxt)
 *
 *   parameters (string values), Triton's names:
 *     intra_op_thread_count   threads inside one operator; ferry's default
 *                             is 1 per instance (Triton's, 0, lets ONNX
 *                             Runtime take every core: saturated CPU jobs
 *                             beside the broker would pay for it)
 *     inter_op_thread_count   threads across operators (default 1)
 *     execution_mode          0 sequential (default), 1 parallel
 *     enable_mem_arena, enable_mem_pattern        true / false
 *     memory.enable_memory_arena_shrinkage        a run option, e.g. "cpu:0"
 *     share_session_between_instances             true: one session per
 *                             device for all of the model's instances
 *     cudnn_conv_algo_search (0 exhaustive, 1 heuristic, 2 default),
 *     gpu_mem_limit, arena_extend_strategy (0, 1), do_copy_in_default_stream
 *                             the CUDA execution provider's options
 *     session.*               any ONNX Runtime session config entry, passed
 *                             as is (e.g. session.intra_op.allow_spinning)
 *     ferry_inline            true: run on the broker's polling thread
 *                             (ferry's; for models of a few microseconds)
 *   optimization { graph { level } }: -1 basic, 1 extended, 2 none, other
 *     or absent: all (ORT_ENABLE_ALL), as Triton maps it.
 *   optimization { execution_accelerators { gpu_execution_accelerator [
 *     { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" }
 *       parameters { key: "max_workspace_size_bytes" value: "..." } ... },
 *     { name: "cuda" parameters { key: <a CUDA EP option> value: ... } } ] } }
 *     on KIND_GPU instances.  No CPU accelerator is available.
 *
 * Spinning: ONNX Runtime's pools spin while they wait for work, which burns
 * the cores of jobs running beside the broker; ferry sets
 * session.intra_op.allow_spinning and session.inter_op.allow_spinning to
 * "0" unless a session.* parameter says otherwise.
 *
 * Backend configuration (ferryd --backend-config=onnxruntime,KEY=VALUE):
 *   library=PATH            libonnxruntime.so to load (default: the one
 *                           configure found, else libonnxruntime.so.1)
 *   default-max-batch-size  auto-complete's max_batch_size for models that
 *                           batch (Triton's name and default, 4)
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ferry/backend.h>

#include "broker/backends/onnxruntime/ort_int.h"

FERRY_BACKEND_DECLARE_VERSION

ferry_be_error *ort_error(const OrtApi *api, OrtStatus *st, const char *fmt, ...)
{
	char head[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	ferry_be_error *e = ferry_be_error_new(FERRY_BACKEND, "%s: %s", head,
					       st ? api->GetErrorMessage(st) : "(no status)");
	if (st)
		api->ReleaseStatus(st);
	return e;
}

void ort_free(const OrtApi *api, OrtAllocator *al, void *p)
{
	OrtStatus *st = api->AllocatorFree(al, p);

	/* freeing what the allocator gave cannot fail; nothing to report */
	if (st)
		api->ReleaseStatus(st);
}

ferry_be_error *ort_model_path(const ferry_be_model *m, char *buf, size_t len)
{
	struct stat sb;
	int n = snprintf(buf, len, "%s/%lld/model.onnx", ferry_be_model_repository_path(m),
			 (long long)ferry_be_model_version(m));

	if (n < 0 || (size_t)n + sizeof("/model.onnx") > len)
		return ferry_be_error_new(FERRY_E2BIG, "the model's path is too long");
	/* Triton: model.onnx may be a directory holding model.onnx (with the
	 * external data files beside it). */
	if (stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		strcat(buf, "/model.onnx");
		if (stat(buf, &sb) != 0) {
			buf[n] = '\0';
			return ferry_be_error_new(FERRY_EINVAL, "%s is not a regular file (a "
						  "directory without a model.onnx in it)", buf);
		}
	}
	return NULL;
}

/* ONNX Runtime's log lines join ferryd's stderr, marked as its. */
static void ort__log(void *param, OrtLoggingLevel severity, const char *category,
		     const char *logid, const char *code_location, const char *message)
{
	static const char sev[] = "VIWEF";

	fprintf(stderr, "ferryd: onnxruntime [%c] %s\n",
		severity >= 0 && severity <= ORT_LOGGING_LEVEL_FATAL ? sev[severity] : '?',
		message);
}

/* ------------------------------------------------------------------ */
/* Backend                                                             */

FERRY_BE_EXPORT ferry_be_error *ferry_backend_initialize(ferry_backend *b)
{
	struct ort_backend *be = calloc(1, sizeof(*be));
	char err[1024];
	const char *v;
	OrtStatus *st;
	char **prov = NULL;
	int nprov = 0;

	if (!be)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	if (ort_lib_open(ferry_backend_config_by_name(b, "library"), &be->lib, err,
			 sizeof(err))) {
		free(be);
		return ferry_be_error_new(FERRY_UNAVAILABLE, "%s", err);
	}
	const OrtApi *api = be->lib.api;
	st = api->CreateEnvWithCustomLogger(ort__log, NULL, ORT_LOGGING_LEVEL_WARNING, "ferryd",
					    &be->env);
	if (st) {
		ferry_be_error *e = ort_error(api, st, "ONNX Runtime %s: cannot create its "
					      "environment", be->lib.version);
		free(be);
		return e;
	}
	st = api->DisableTelemetryEvents(be->env);
	if (st)
		api->ReleaseStatus(st);
	be->default_mbs = 4;
	v = ferry_backend_config_by_name(b, "default-max-batch-size");
	if (v) {
		char *end;
		long n = strtol(v, &end, 10);
		if (!*v || *end || n < 0 || n > 1 << 20) {
			api->ReleaseEnv(be->env);
			free(be);
			return ferry_be_error_new(FERRY_CONFIG, "--backend-config "
						  "default-max-batch-size=%s: a count of 0..%d", v,
						  1 << 20);
		}
		be->default_mbs = (int)n;
	}
	st = api->GetAvailableProviders(&prov, &nprov);
	if (!st) {
		for (int i = 0; i < nprov; i++) {
			be->has_cuda_ep |= !strcmp(prov[i], "CUDAExecutionProvider");
			be->has_trt_ep |= !strcmp(prov[i], "TensorrtExecutionProvider");
		}
		st = api->ReleaseAvailableProviders(prov, nprov);
	}
	if (st)
		api->ReleaseStatus(st);
	fprintf(stderr, "ferryd: onnxruntime: ONNX Runtime %s (%s), C API %d%s%s\n",
		be->lib.version, be->lib.path, ORT_LIB_API_VERSION,
		be->has_cuda_ep ? ", CUDA" : ", CPU only", be->has_trt_ep ? " and TensorRT" : "");
	ferry_backend_set_state(b, be);
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_finalize(ferry_backend *b)
{
	struct ort_backend *be = ferry_backend_state(b);

	if (be) {
		be->lib.api->ReleaseEnv(be->env);
		free(be);
	}
	ferry_backend_set_state(b, NULL);
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_autocomplete(ferry_be_model *m)
{
	return ort_model_autocomplete(m);
}

/* ------------------------------------------------------------------ */
/* Parameters                                                          */

/* Triton's boolean spellings. */
static int ort__bool(const char *v, bool *out)
{
	static const char *const yes[] = { "true", "1", "on", "yes" };
	static const char *const no[] = { "false", "0", "off", "no" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int ort__int(const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

#define ORT__TRY(call, ...)                                                \
	do {                                                               \
		OrtStatus *st_ = (call);                                   \
		if (st_)                                                   \
			return ort_error(api, st_, __VA_ARGS__);           \
	} while (0)

/* An integer parameter within [lo, hi]; *out unchanged when absent. */
static ferry_be_error *ort__param_int(const ferry_be_model *m, const char *key, long lo,
				      long hi, long *out)
{
	const char *v = ferry_be_model_parameter_by_name(m, key);

	if (v && ort__int(v, lo, hi, out))
		return ferry_be_error_new(FERRY_CONFIG, "parameter %s '%s': an integer in "
					  "%ld..%ld", key, v, lo, hi);
	return NULL;
}

static ferry_be_error *ort__param_bool(const ferry_be_model *m, const char *key, bool *set,
				       bool *out)
{
	const char *v = ferry_be_model_parameter_by_name(m, key);

	*set = v != NULL;
	if (v && ort__bool(v, out))
		return ferry_be_error_new(FERRY_CONFIG, "parameter %s '%s': true or false",
					  key, v);
	return NULL;
}

/* The session options of the model's parameters and graph level. */
static ferry_be_error *ort__options(ferry_be_model *m, struct ort_model *om)
{
	const OrtApi *api = om->api;
	OrtSessionOptions *so;
	ferry_be_error *e;
	long intra = 1, inter = 1, mode = 0;
	bool set, on, spin_intra = false, spin_inter = false;
	int level;

	ORT__TRY(api->CreateSessionOptions(&so), "cannot create session options");
	om->opts = so;
	if ((e = ort__param_int(m, "intra_op_thread_count", 0, 4096, &intra)) ||
	    (e = ort__param_int(m, "inter_op_thread_count", 0, 4096, &inter)) ||
	    (e = ort__param_int(m, "execution_mode", 0, 1, &mode)))
		return e;
	/* 0 lets ONNX Runtime choose (every core), as in Triton. */
	ORT__TRY(api->SetIntraOpNumThreads(so, (int)intra), "intra_op_thread_count");
	ORT__TRY(api->SetInterOpNumThreads(so, (int)inter), "inter_op_thread_count");
	ORT__TRY(api->SetSessionExecutionMode(so, mode ? ORT_PARALLEL : ORT_SEQUENTIAL),
		 "execution_mode");
	GraphOptimizationLevel gl = ORT_ENABLE_ALL;
	if (ferry_be_model_graph_level(m, &level))
		gl = level == -1 ? ORT_ENABLE_BASIC : level == 1 ? ORT_ENABLE_EXTENDED
			: level == 2 ? ORT_DISABLE_ALL : ORT_ENABLE_ALL;
	ORT__TRY(api->SetSessionGraphOptimizationLevel(so, gl), "graph optimization level");
	if ((e = ort__param_bool(m, "enable_mem_arena", &set, &on)))
		return e;
	if (set)
		ORT__TRY(on ? api->EnableCpuMemArena(so) : api->DisableCpuMemArena(so),
			 "enable_mem_arena");
	if ((e = ort__param_bool(m, "enable_mem_pattern", &set, &on)))
		return e;
	if (set)
		ORT__TRY(on ? api->EnableMemPattern(so) : api->DisableMemPattern(so),
			 "enable_mem_pattern");
	if ((e = ort__param_bool(m, "share_session_between_instances", &set, &om->share)))
		return e;
	if ((e = ort__param_bool(m, "ferry_inline", &set, &om->inline_run)))
		return e;
	/* session.*: ONNX Runtime's own session config entries. */
	for (uint32_t i = 0; i < ferry_be_model_parameter_count(m); i++) {
		const char *k, *v;
		ferry_be_model_parameter(m, i, &k, &v);
		if (strncmp(k, "session.", 8) != 0)
			continue;
		spin_intra |= !strcmp(k, "session.intra_op.allow_spinning");
		spin_inter |= !strcmp(k, "session.inter_op.allow_spinning");
		ORT__TRY(api->AddSessionConfigEntry(so, k, v), "parameter %s '%s'", k, v);
	}
	if (!spin_intra)
		ORT__TRY(api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "0"),
			 "session.intra_op.allow_spinning");
	if (!spin_inter)
		ORT__TRY(api->AddSessionConfigEntry(so, "session.inter_op.allow_spinning", "0"),
			 "session.inter_op.allow_spinning");
	const char *shrink = ferry_be_model_parameter_by_name(m, "memory.enable_memory_arena_shrinkage");
	if (shrink) {
		ORT__TRY(api->CreateRunOptions(&om->run_opts), "run options");
		ORT__TRY(api->AddRunConfigEntry(om->run_opts, "memory.enable_memory_arena_shrinkage",
						shrink), "memory.enable_memory_arena_shrinkage '%s'",
			 shrink);
	}
	return NULL;
}

/* Triton's names for the TensorRT EP's options; other trt_* keys pass
 * through to ONNX Runtime, which refuses what it does not know. */
static ferry_be_error *ort__trt_param(struct ort_accel *a, const char *k, const char *v)
{
	static const struct {
		const char *triton, *ort;
	} names[] = {
		{ "max_workspace_size_bytes", "trt_max_workspace_size" },
		{ "int8_calibration_table_name", "trt_int8_calibration_table_name" },
		{ "int8_use_native_calibration_table", "trt_int8_use_native_calibration_table" },
	};
	const char *key = NULL;

	if (a->ntrt >= 60)
		return ferry_be_error_new(FERRY_CONFIG, "too many tensorrt parameters");
	if (!strcmp(k, "precision_mode")) {
		if (!strcmp(v, "FP32"))
			return NULL;
		key = !strcmp(v, "FP16") ? "trt_fp16_enable" : !strcmp(v, "BF16")
			? "trt_bf16_enable" : !strcmp(v, "INT8") ? "trt_int8_enable" : NULL;
		if (!key)
			return ferry_be_error_new(FERRY_CONFIG, "tensorrt precision_mode '%s': "
						  "FP32, FP16, BF16 or INT8", v);
		v = "1";
	}
	for (size_t i = 0; !key && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(k, names[i].triton))
			key = names[i].ort;
	if (!key && !strncmp(k, "trt_", 4))
		key = k;
	if (!key)
		return ferry_be_error_new(FERRY_CONFIG, "unknown parameter '%s' for the TensorRT "
					  "execution accelerator", k);
	a->trt_keys[a->ntrt] = key;
	a->trt_vals[a->ntrt++] = v;
	return NULL;
}

static ferry_be_error *ort__cuda_param(struct ort_accel *a, const char *k, const char *v)
{
	for (int i = 0; i < a->ncuda; i++)
		if (!strcmp(a->cuda_keys[i], k)) {
			a->cuda_vals[i] = v;
			return NULL;
		}
	if (a->ncuda >= 60)
		return ferry_be_error_new(FERRY_CONFIG, "too many cuda parameters");
	a->cuda_keys[a->ncuda] = k;
	a->cuda_vals[a->ncuda++] = v;
	return NULL;
}

/* The execution accelerators, and Triton's CUDA EP model parameters. */
static ferry_be_error *ort__accelerators(ferry_be_model *m, struct ort_model *om)
{
	static const char *const algo[] = { "EXHAUSTIVE", "HEURISTIC", "DEFAULT" };
	static const char *const extend[] = { "kNextPowerOfTwo", "kSameAsRequested" };
	struct ort_accel *a = &om->accel;
	ferry_be_error *e;
	const char *name, *k, *v;
	uint32_t np;
	long n;

	if (ferry_be_model_accelerator_count(m, FERRY_BE_ACCELERATOR_CPU)) {
		ferry_be_model_accelerator(m, FERRY_BE_ACCELERATOR_CPU, 0, &name, NULL);
		return ferry_be_error_new(FERRY_CONFIG, "unknown CPU execution accelerator "
					  "'%s': ferry's onnxruntime backend runs ONNX Runtime's "
					  "own CPU provider", name);
	}
	n = -1;
	if ((e = ort__param_int(m, "cudnn_conv_algo_search", 0, 2, &n)))
		return e;
	if (n >= 0 && (e = ort__cuda_param(a, "cudnn_conv_algo_search", algo[n])))
		return e;
	n = -1;
	if ((e = ort__param_int(m, "arena_extend_strategy", 0, 1, &n)))
		return e;
	if (n >= 0 && (e = ort__cuda_param(a, "arena_extend_strategy", extend[n])))
		return e;
	if ((v = ferry_be_model_parameter_by_name(m, "gpu_mem_limit")) &&
	    (e = ort__cuda_param(a, "gpu_mem_limit", v)))
		return e;
	if ((v = ferry_be_model_parameter_by_name(m, "do_copy_in_default_stream")) &&
	    (e = ort__cuda_param(a, "do_copy_in_default_stream", v)))
		return e;
	for (uint32_t i = 0; i < ferry_be_model_accelerator_count(m, FERRY_BE_ACCELERATOR_GPU);
	     i++) {
		ferry_be_model_accelerator(m, FERRY_BE_ACCELERATOR_GPU, i, &name, &np);
		bool trt = !strcmp(name, "tensorrt");
		if (!trt && strcmp(name, "cuda"))
			return ferry_be_error_new(FERRY_CONFIG, "unknown GPU execution accelerator "
						  "'%s' (tensorrt or cuda)", name);
		a->trt |= trt;
		for (uint32_t p = 0; p < np; p++) {
			ferry_be_model_accelerator_parameter(m, FERRY_BE_ACCELERATOR_GPU, i, p,
							     &k, &v);
			if ((e = trt ? ort__trt_param(a, k, v) : ort__cuda_param(a, k, v)))
				return e;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

ferry_be_error *ort_session_open(struct ort_backend *be, const char *path,
				 const OrtSessionOptions *opts, OrtSession **out)
{
	const OrtApi *api = be->lib.api;
	OrtSessionOptions *own = NULL;
	struct stat sb;
	OrtStatus *st;

	if (stat(path, &sb) != 0)
		return ferry_be_error_new(FERRY_ENOENT, "%s: %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return ferry_be_error_new(FERRY_EINVAL, "%s is not a regular file", path);
	if (!opts) {
		/* Reading the model's signature: no optimisation, no pool. */
		if ((st = api->CreateSessionOptions(&own)) ||
		    (st = api->SetIntraOpNumThreads(own, 1)) ||
		    (st = api->SetSessionGraphOptimizationLevel(own, ORT_DISABLE_ALL))) {
			api->ReleaseSessionOptions(own);
			return ort_error(api, st, "session options");
		}
		opts = own;
	}
	st = api->CreateSession(be->env, path, opts, out);
	api->ReleaseSessionOptions(own);
	if (st)
		return ort_error(api, st, "onnxruntime cannot load %s", path);
	return NULL;
}

/* A GPU session: the TensorRT EP first where asked, then CUDA's. */
static ferry_be_error *ort__gpu_session(struct ort_model *om, int device, OrtSession **out)
{
	const OrtApi *api = om->api;
	const struct ort_accel *a = &om->accel;
	OrtSessionOptions *so = NULL;
	OrtTensorRTProviderOptionsV2 *trt = NULL;
	OrtCUDAProviderOptionsV2 *cuda = NULL;
	const char *keys[70], *vals[70];
	char dev[16];
	ferry_be_error *e = NULL;
	OrtStatus *st;
	int n;

	snprintf(dev, sizeof(dev), "%d", device);
	if ((st = api->CloneSessionOptions(om->opts, &so)))
		return ort_error(api, st, "session options");
	if (a->trt) {
		n = 0;
		for (int i = 0; i < a->ntrt; i++, n++) {
			keys[n] = a->trt_keys[i];
			vals[n] = a->trt_vals[i];
		}
		keys[n] = "device_id";
		vals[n++] = dev;
		if ((st = api->CreateTensorRTProviderOptions(&trt)) ||
		    (st = api->UpdateTensorRTProviderOptions(trt, keys, vals, (size_t)n)) ||
		    (st = api->SessionOptionsAppendExecutionProvider_TensorRT_V2(so, trt))) {
			e = ort_error(api, st, "TensorRT execution accelerator on GPU %d", device);
			goto out;
		}
	}
	n = 0;
	for (int i = 0; i < a->ncuda; i++, n++) {
		keys[n] = a->cuda_keys[i];
		vals[n] = a->cuda_vals[i];
	}
	keys[n] = "device_id";
	vals[n++] = dev;
	if ((st = api->CreateCUDAProviderOptions(&cuda)) ||
	    (st = api->UpdateCUDAProviderOptions(cuda, keys, vals, (size_t)n)) ||
	    (st = api->SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda))) {
		e = ort_error(api, st, "CUDA execution provider on GPU %d", device);
		goto out;
	}
	if ((st = api->CreateSession(om->be->env, om->path, so, out)))
		e = ort_error(api, st, "onnxruntime cannot load %s on GPU %d", om->path, device);
out:
	if (trt)
		api->ReleaseTensorRTProviderOptions(trt);
	if (cuda)
		api->ReleaseCUDAProviderOptions(cuda);
	api->ReleaseSessionOptions(so);
	return e;
}

/* ------------------------------------------------------------------ */
/* Model                                                               */

static void ort__model_free(struct ort_model *om)
{
	if (!om)
		return;
	const OrtApi *api = om->api;
	if (api) {
		if (om->spare)
			api->ReleaseSession(om->spare);
		for (int i = 0; i < om->nshared; i++)
			if (om->shared[i].sess)
				api->ReleaseSession(om->shared[i].sess);
		if (om->opts)
			api->ReleaseSessionOptions(om->opts);
		if (om->run_opts)
			api->ReleaseRunOptions(om->run_opts);
	}
	free(om->in);
	free(om->out);
	pthread_mutex_destroy(&om->lock);
	free(om);
}

/* The config's tensors. */
static ferry_be_error *ort__tensors(ferry_be_model *m, struct ort_model *om, bool output)
{
	uint32_t n = output ? ferry_be_model_output_count(m) : ferry_be_model_input_count(m);
	struct ort_tensor *t = calloc(n ? n : 1, sizeof(*t));

	if (!t)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	if (output) {
		om->out = t;
		om->nout = n;
	} else {
		om->in = t;
		om->nin = n;
	}
	for (uint32_t i = 0; i < n; i++, t++) {
		if (output) {
			ferry_be_model_output(m, i, &t->name, &t->dtype, &t->dims, &t->ndims);
			t->reshape = ferry_be_model_output_reshape(m, i, &t->rshape, &t->rndims);
		} else {
			ferry_be_model_input(m, i, &t->name, &t->dtype, &t->dims, &t->ndims);
			t->reshape = ferry_be_model_input_reshape(m, i, &t->rshape, &t->rndims);
		}
		t->type = ort_dtype_to_onnx(t->dtype);
		t->esize = ferry_dtype_size(t->dtype);
		t->fixed = t->esize > 0;
		t->row_elems = 1;
		for (int d = 0; d < t->ndims; d++) {
			if (t->dims[d] < 0)
				t->fixed = false;
			else
				t->row_elems *= (uint64_t)t->dims[d];
		}
	}
	return NULL;
}

static const char *ort__dims(char *buf, size_t len, const int64_t *d, int n)
{
	size_t at = (size_t)snprintf(buf, len, "[");

	for (int i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)d[i]);
	if (at < len)
		snprintf(buf + at, len - at, "]");
	return buf;
}

/*
 * Check one config tensor against the session's signature: name, element
 * type, rank and every dimension both know.  Triton's errors, with both
 * sides named.
 */
static ferry_be_error *ort__check_tensor(struct ort_model *om, OrtSession *s, bool output,
					 const struct ort_tensor *t)
{
	const OrtApi *api = om->api;
	const char *what = output ? "output" : "input";
	OrtAllocator *al;
	size_t n;
	char names[512] = "";
	size_t at = 0;
	ferry_be_error *e = NULL;

	ORT__TRY(api->GetAllocatorWithDefaultOptions(&al), "allocator");
	ORT__TRY(output ? api->SessionGetOutputCount(s, &n) : api->SessionGetInputCount(s, &n),
		 "%s count", what);
	for (size_t i = 0; i < n; i++) {
		char *nm = NULL;
		OrtTypeInfo *ti = NULL;
		const OrtTensorTypeAndShapeInfo *tsi = NULL;
		ONNXTensorElementDataType type;
		int64_t dims[ORT_MAX_DIMS];
		size_t nd = 0;
		OrtStatus *st;

		if ((st = output ? api->SessionGetOutputName(s, i, al, &nm)
				 : api->SessionGetInputName(s, i, al, &nm)))
			return ort_error(api, st, "%s %zu's name", what, i);
		bool match = !strcmp(nm, t->name);
		if (!match && at < sizeof(names))
			at += (size_t)snprintf(names + at, sizeof(names) - at, "%s'%s'",
					       at ? ", " : "", nm);
		ort_free(api, al, nm);
		if (!match)
			continue;
		if ((st = output ? api->SessionGetOutputTypeInfo(s, i, &ti)
				 : api->SessionGetInputTypeInfo(s, i, &ti)))
			return ort_error(api, st, "%s '%s'", what, t->name);
		if ((st = api->CastTypeInfoToTensorInfo(ti, &tsi)) || !tsi) {
			if (st)
				api->ReleaseStatus(st);
			api->ReleaseTypeInfo(ti);
			return ferry_be_error_new(FERRY_CONFIG, "model.onnx %s '%s' is not a "
						  "tensor (a sequence, map or optional): ferry "
						  "serves tensors", what, t->name);
		}
		if ((st = api->GetTensorElementType(tsi, &type)) ||
		    (st = api->GetDimensionsCount(tsi, &nd)) ||
		    (nd <= ORT_MAX_DIMS && (st = api->GetDimensions(tsi, dims, nd)))) {
			api->ReleaseTypeInfo(ti);
			return ort_error(api, st, "%s '%s'", what, t->name);
		}
		api->ReleaseTypeInfo(ti);
		if (type != t->type)
			return ferry_be_error_new(FERRY_CONFIG, "%s '%s' is %s in config.pbtxt, "
						  "model.onnx has %s", what, t->name,
						  ferry_dtype_name(t->dtype), ort_onnx_type_name(type));
		if (nd > ORT_MAX_DIMS)
			return ferry_be_error_new(FERRY_CONFIG, "%s '%s' has %zu dimensions; at "
						  "most %d", what, t->name, nd, ORT_MAX_DIMS);
		/* The shape the model takes per request, as the config says it. */
		int bd = om->mbs > 0 ? 1 : 0;
		const int64_t *cd = t->reshape ? t->rshape : t->dims;
		int cn = t->reshape ? t->rndims : t->ndims;
		char s1[160], s2[160];
		if ((size_t)(cn + bd) != nd) {
			e = ferry_be_error_new(FERRY_CONFIG, "%s '%s' has %d dimensions in "
					       "config.pbtxt%s (%s), model.onnx has %zu (%s)", what,
					       t->name, cn + bd, bd ? " with the batch dimension" : "",
					       ort__dims(s1, sizeof(s1), cd, cn), nd,
					       ort__dims(s2, sizeof(s2), dims, (int)nd));
			return e;
		}
		if (bd && dims[0] >= 0)
			return ferry_be_error_new(FERRY_CONFIG, "%s '%s': max_batch_size %d needs "
						  "a variable first dimension, model.onnx has %s; "
						  "set max_batch_size: 0", what, t->name, om->mbs,
						  ort__dims(s2, sizeof(s2), dims, (int)nd));
		for (int d = 0; d < cn; d++)
			if (cd[d] >= 0 && dims[d + bd] >= 0 && cd[d] != dims[d + bd])
				return ferry_be_error_new(FERRY_CONFIG, "%s '%s' has dims %s in "
							  "config.pbtxt, model.onnx has %s%s", what,
							  t->name, ort__dims(s1, sizeof(s1), cd, cn),
							  ort__dims(s2, sizeof(s2), dims, (int)nd),
							  bd ? " (with the batch dimension)" : "");
		return NULL;
	}
	return ferry_be_error_new(FERRY_CONFIG, "config %s '%s' is not an %s of model.onnx "
				  "(it has %s)", what, t->name, what, names);
}

/* Every model input must be fed: the config must list them all. */
static ferry_be_error *ort__check_inputs_listed(struct ort_model *om, OrtSession *s)
{
	const OrtApi *api = om->api;
	OrtAllocator *al;
	size_t n;

	ORT__TRY(api->GetAllocatorWithDefaultOptions(&al), "allocator");
	ORT__TRY(api->SessionGetInputCount(s, &n), "input count");
	for (size_t i = 0; i < n; i++) {
		char *nm = NULL;
		bool listed = false;
		ORT__TRY(api->SessionGetInputName(s, i, al, &nm), "input %zu's name", i);
		for (uint32_t k = 0; k < om->nin; k++)
			listed |= !strcmp(om->in[k].name, nm);
		if (!listed) {
			ferry_be_error *e = ferry_be_error_new(FERRY_CONFIG, "model.onnx input "
							       "'%s' is missing from config.pbtxt",
							       nm);
			ort_free(api, al, nm);
			return e;
		}
		ort_free(api, al, nm);
	}
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_initialize(ferry_be_model *m)
{
	struct ort_backend *be = ferry_backend_state(ferry_be_model_backend(m));
	struct ort_model *om = calloc(1, sizeof(*om));
	ferry_be_error *e;

	if (!om)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	pthread_mutex_init(&om->lock, NULL);
	om->be = be;
	om->api = be->lib.api;
	om->mbs = ferry_be_model_max_batch_size(m);
	if ((e = ort_model_path(m, om->path, sizeof(om->path))) ||
	    (e = ort__tensors(m, om, false)) || (e = ort__tensors(m, om, true)) ||
	    (e = ort__options(m, om)) || (e = ort__accelerators(m, om)))
		goto fail;
	for (uint32_t i = 0; i < om->nin + om->nout; i++) {
		const struct ort_tensor *t = i < om->nin ? &om->in[i] : &om->out[i - om->nin];
		if (t->type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED) {
			e = ferry_be_error_new(FERRY_CONFIG, "tensor '%s': data type %s has no "
					       "ONNX equivalent", t->name, ferry_dtype_name(t->dtype));
			goto fail;
		}
	}
	/* A CPU session with the model's options: ONNX Runtime's verdict on
	 * the file and the signature to check the config against.  The
	 * first CPU instance adopts it. */
	if ((e = ort_session_open(be, om->path, om->opts, &om->spare)))
		goto fail;
	for (uint32_t i = 0; i < om->nin; i++)
		if ((e = ort__check_tensor(om, om->spare, false, &om->in[i])))
			goto fail;
	for (uint32_t i = 0; i < om->nout; i++)
		if ((e = ort__check_tensor(om, om->spare, true, &om->out[i])))
			goto fail;
	if ((e = ort__check_inputs_listed(om, om->spare)))
		goto fail;
	if (om->inline_run &&
	    (e = ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_LIGHT, 1)))
		goto fail;
	/* GPU instances take clients' CUDA IPC tensors as they are. */
	if (be->has_cuda_ep && !om->inline_run &&
	    (e = ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_CUDA_MEMORY, 1)))
		goto fail;
	ferry_be_model_set_state(m, om);
	return NULL;
fail:
	ort__model_free(om);
	return e;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_finalize(ferry_be_model *m)
{
	ort__model_free(ferry_be_model_state(m));
	ferry_be_model_set_state(m, NULL);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Instances                                                           */

static void ort__inst_free(struct ort_inst *in)
{
	if (!in)
		return;
	struct ort_model *om = in->om;
	const OrtApi *api = om->api;

	if (in->sess && in->shared) {
		pthread_mutex_lock(&om->lock);
		for (int i = 0; i < om->nshared; i++)
			if (om->shared[i].sess == in->sess && --om->shared[i].refs == 0) {
				api->ReleaseSession(om->shared[i].sess);
				om->shared[i].sess = NULL;
			}
		pthread_mutex_unlock(&om->lock);
	} else if (in->sess) {
		api->ReleaseSession(in->sess);
	}
	if (in->cpu_mem)
		api->ReleaseMemoryInfo(in->cpu_mem);
	if (in->gpu_mem)
		api->ReleaseMemoryInfo(in->gpu_mem);
	for (uint32_t k = 0; in->gather && k < om->nin; k++)
		free(in->gather[k]);
	for (uint32_t k = 0; in->stage && k < om->nout; k++)
		free(in->stage[k]);
	free(in->gather);
	free(in->gather_cap);
	free(in->stage);
	free(in->stage_cap);
	free(in->in_names);
	free(in->out_names);
	free(in->in_vals);
	free(in->out_vals);
	free(in->out_idx);
	free(in->group);
	free(in->done);
	free(in);
}

/* The instance's session: shared, the spare, or a new one. */
static ferry_be_error *ort__inst_session(struct ort_inst *in, int kind)
{
	struct ort_model *om = in->om;
	ferry_be_error *e = NULL;

	pthread_mutex_lock(&om->lock);
	if (om->share) {
		for (int i = 0; i < om->nshared; i++)
			if (om->shared[i].sess && om->shared[i].kind == kind &&
			    om->shared[i].device == in->device) {
				om->shared[i].refs++;
				in->sess = om->shared[i].sess;
				in->shared = true;
				goto out;
			}
	}
	if (!in->gpu && om->spare) {
		in->sess = om->spare;
		om->spare = NULL;
	} else if (in->gpu) {
		e = ort__gpu_session(om, in->device, &in->sess);
	} else {
		e = ort_session_open(om->be, om->path, om->opts, &in->sess);
	}
	if (!e && om->share && om->nshared < (int)(sizeof(om->shared) / sizeof(om->shared[0]))) {
		om->shared[om->nshared++] = (struct ort_shared){ kind, in->device, in->sess, 1 };
		in->shared = true;
	}
out:
	pthread_mutex_unlock(&om->lock);
	return e;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_initialize(ferry_be_instance *i)
{
	ferry_be_model *m = ferry_be_instance_model(i);
	struct ort_model *om = ferry_be_model_state(m);
	const OrtApi *api = om->api;
	struct ort_inst *in = calloc(1, sizeof(*in));
	int kind = ferry_be_instance_kind_of(i);
	ferry_be_error *e = NULL;
	OrtStatus *st;

	if (!in)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	in->om = om;
	in->gpu = kind == FERRY_BE_INSTANCE_GPU;
	in->device = in->gpu ? ferry_be_instance_device_id(i) : -1;
	in->cap = om->mbs > 0 ? (uint32_t)om->mbs : 1;
	if (in->gpu && om->inline_run) {
		e = ferry_be_error_new(FERRY_CONFIG, "parameter ferry_inline runs the model on "
				       "the polling thread: KIND_CPU instances only");
		goto fail;
	}
	if (in->gpu && !om->be->has_cuda_ep) {
		e = ferry_be_error_new(FERRY_UNAVAILABLE, "KIND_GPU instance on GPU %d: ONNX "
				       "Runtime %s (%s) has no CUDA execution provider; install "
				       "onnxruntime-gpu and give ferryd "
				       "--backend-config=onnxruntime,library=<its "
				       "libonnxruntime.so>", in->device, om->be->lib.version,
				       om->be->lib.path);
		goto fail;
	}
	if ((e = ort__inst_session(in, kind)))
		goto fail;
	if ((st = api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &in->cpu_mem)) ||
	    (in->gpu && (st = api->CreateMemoryInfo("Cuda", OrtDeviceAllocator, in->device,
						    OrtMemTypeDefault, &in->gpu_mem))) ||
	    (st = api->GetAllocatorWithDefaultOptions(&in->alloc))) {
		e = ort_error(api, st, "memory info");
		goto fail;
	}
	size_t nin = om->nin + 1, nout = om->nout + 1;
	in->in_names = calloc(nin, sizeof(*in->in_names));
	in->in_vals = calloc(nin, sizeof(*in->in_vals));
	in->out_names = calloc(nout, sizeof(*in->out_names));
	in->out_vals = calloc(nout, sizeof(*in->out_vals));
	in->out_idx = calloc(nout, sizeof(*in->out_idx));
	in->gather = calloc(nin, sizeof(*in->gather));
	in->gather_cap = calloc(nin, sizeof(*in->gather_cap));
	in->stage = calloc(nout, sizeof(*in->stage));
	in->stage_cap = calloc(nout, sizeof(*in->stage_cap));
	in->group = calloc(in->cap, sizeof(*in->group));
	in->done = calloc(in->cap, sizeof(*in->done));
	if (!in->in_names || !in->in_vals || !in->out_names || !in->out_vals || !in->out_idx ||
	    !in->gather || !in->gather_cap || !in->stage || !in->stage_cap || !in->group ||
	    !in->done) {
		e = ferry_be_error_new(FERRY_ENOMEM, "out of memory");
		goto fail;
	}
	ferry_be_instance_set_state(i, in);
	return NULL;
fail:
	ort__inst_free(in);
	return e;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_finalize(ferry_be_instance *i)
{
	ort__inst_free(ferry_be_instance_state(i));
	ferry_be_instance_set_state(i, NULL);
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_execute(ferry_be_instance *i,
							       ferry_be_request **reqs,
							       uint32_t count)
{
	return ort_execute(i, reqs, count);
}
