/* SPDX-License-Identifier: MIT */
/*
 * ferry backend plugin ABI.
 *
 * A backend is a shared object that ferryd loads with dlopen(RTLD_NOW) from
 *
 *	<backend-directory>/<name>/libferry_<name>.so, or
 *	<backend-directory>/libferry_<name>.so
 *
 * and whose entry points it resolves with dlsym.  Built-in backends fill the
 * same entry-point table statically, so both kinds behave alike.
 *
 * Only opaque handles cross the boundary.  The accessors below live in ferryd
 * (which is linked with --export-dynamic); a plugin links with them left
 * unresolved and the dynamic linker binds them at dlopen.
 *
 * VERSIONING
 *
 * FERRY_BACKEND_API_VERSION_MAJOR / _MINOR describe this header.  The rule:
 *   - adding a function, an enum value or a property bumps MINOR;
 *   - changing the signature or the behaviour of anything that exists, or
 *     removing it, bumps MAJOR and resets MINOR to 0.
 * A plugin declares the version it was built against by exporting
 * ferry_backend_api_version_required() (write FERRY_BACKEND_DECLARE_VERSION;
 * in one source file).  ferryd loads it only if the majors are equal and the
 * plugin's minor is <= ferryd's minor; otherwise the model load fails with a
 * message naming both versions.  A plugin that wants to use a newer optional
 * function can also ask ferryd at run time with ferry_backend_api_version().
 *
 * ENTRY POINTS (the plugin exports them; R = required, O = optional)
 *
 *   R ferry_backend_api_version_required  the version check, called first
 *   O ferry_backend_initialize            once, when the backend is loaded
 *   O ferry_backend_finalize              once, when ferryd unloads it
 *   R ferry_backend_model_initialize      once per model version loaded
 *   O ferry_backend_model_finalize        when that model version unloads
 *   R ferry_backend_instance_initialize   once per model instance
 *   O ferry_backend_instance_finalize     when that instance goes away
 *   R ferry_backend_instance_execute      run a batch of requests
 *   O ferry_backend_model_autocomplete    (API 1.2) fill in the config from
 *                                         the model file, before
 *                                         ferry_backend_model_initialize
 *
 * A plugin missing a required entry point is refused with a message naming
 * the symbol.  Each entry point returns NULL on success or an error object
 * (ownership passes to ferryd).
 *
 * THREADS
 *
 * initialize/finalize calls for one object never overlap each other or an
 * execute on that object.  execute is called for one instance by one thread
 * at a time; different instances of one model execute concurrently, so model
 * state shared by instances must be thread-safe or read-only after
 * ferry_backend_model_initialize.  For a model marked light
 * (FERRY_BE_MODEL_PROP_LIGHT) execute runs on the broker's polling thread:
 * it must not block.
 *
 * All accessors are safe to call from the thread that holds the handle in an
 * entry point; none of them blocks.
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/dtype.h>
#include <ferry/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_BACKEND_API_VERSION_MAJOR 1
#define FERRY_BACKEND_API_VERSION_MINOR 2

/* Default visibility for the symbols that cross the plugin boundary: the
 * build uses -fvisibility=hidden everywhere else. */
#define FERRY_BE_EXPORT __attribute__((visibility("default")))

#if defined(__GNUC__)
#define FERRY__BE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FERRY__BE_PRINTF(a, b)
#endif

typedef struct ferry_backend ferry_backend;         /* a loaded backend */
typedef struct ferry_be_model ferry_be_model;       /* one model version */
typedef struct ferry_be_instance ferry_be_instance; /* one model instance */
typedef struct ferry_be_request ferry_be_request;   /* one request in a batch */
typedef struct ferry_be_error ferry_be_error;       /* NULL = success */

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/*
 * ferry_be_error_new - an error carrying a code (a negative ferry code from
 * <ferry/errors.h>; 0 or positive values become FERRY_BACKEND) and a
 * printf-formatted message.  The caller owns the result: return it from an
 * entry point or pass it to ferry_be_request_set_error() (both take
 * ownership), or free it with ferry_be_error_delete().  Never returns NULL:
 * when memory is short it returns a static "out of memory" error, which
 * ferry_be_error_delete() accepts.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_be_error_new(int code, const char *fmt, ...)
	FERRY__BE_PRINTF(2, 3);
/* The code; 0 for NULL. */
FERRY_BE_EXPORT int ferry_be_error_code(const ferry_be_error *err);
/* The message; valid until the error is deleted.  "" for NULL. */
FERRY_BE_EXPORT const char *ferry_be_error_message(const ferry_be_error *err);
/* Free an error; NULL is a no-op. */
FERRY_BE_EXPORT void ferry_be_error_delete(ferry_be_error *err);

/* ------------------------------------------------------------------ */
/* Version                                                             */

/* The backend API version ferryd implements.  Never fails (returns NULL). */
FERRY_BE_EXPORT ferry_be_error *ferry_backend_api_version(uint32_t *major, uint32_t *minor);

/* Put this in exactly one source file of a plugin. */
#define FERRY_BACKEND_DECLARE_VERSION                                         \
	FERRY_BE_EXPORT void ferry_backend_api_version_required(uint32_t *major, \
								uint32_t *minor) \
	{                                                                     \
		*major = FERRY_BACKEND_API_VERSION_MAJOR;                     \
		*minor = FERRY_BACKEND_API_VERSION_MINOR;                     \
	}

/* ------------------------------------------------------------------ */
/* Backend accessors (handle valid from ferry_backend_initialize until    */
/* ferry_backend_finalize returns)                                       */

/* The backend's name ("identity", "onnx"); valid as long as the backend. */
FERRY_BE_EXPORT const char *ferry_backend_name(const ferry_backend *b);
/* The directory the plugin was loaded from; "" for a built-in.  Valid as
 * long as the backend. */
FERRY_BE_EXPORT const char *ferry_backend_directory(const ferry_backend *b);
/* Opaque per-backend state for the plugin; NULL until set.  ferryd never
 * looks at it: free it in ferry_backend_finalize. */
FERRY_BE_EXPORT void ferry_backend_set_state(ferry_backend *b, void *state);
FERRY_BE_EXPORT void *ferry_backend_state(const ferry_backend *b);
/*
 * Backend configuration (API 1.2): ferryd's --backend-config=NAME,KEY=VALUE
 * entries for this backend, then the global ones (--backend-config=
 * KEY=VALUE, e.g. default-max-batch-size), as Triton's --backend-config.
 * ferry_backend_config_by_name() prefers the backend's own entry; NULL when
 * neither exists.  Strings are valid as long as the backend.
 */
FERRY_BE_EXPORT uint32_t ferry_backend_config_count(const ferry_backend *b);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_config(const ferry_backend *b, uint32_t index,
						     const char **key, const char **value);
FERRY_BE_EXPORT const char *ferry_backend_config_by_name(const ferry_backend *b,
							 const char *key);

/* ------------------------------------------------------------------ */
/* Model accessors (handle valid from ferry_backend_model_initialize     */
/* until ferry_backend_model_finalize returns; every string and array    */
/* they return is valid as long as the model)                            */

FERRY_BE_EXPORT const char *ferry_be_model_name(const ferry_be_model *m);
FERRY_BE_EXPORT int64_t ferry_be_model_version(const ferry_be_model *m);
/* The model's directory in the repository (holds config.pbtxt and the
 * numbered version folders); "" when the model has none. */
FERRY_BE_EXPORT const char *ferry_be_model_repository_path(const ferry_be_model *m);
FERRY_BE_EXPORT ferry_backend *ferry_be_model_backend(const ferry_be_model *m);
/* 0: requests carry no batch dimension. */
FERRY_BE_EXPORT int ferry_be_model_max_batch_size(const ferry_be_model *m);
FERRY_BE_EXPORT uint32_t ferry_be_model_input_count(const ferry_be_model *m);
FERRY_BE_EXPORT uint32_t ferry_be_model_output_count(const ferry_be_model *m);
/*
 * ferry_be_model_input / _output - the config's tensor at `index` (config
 * order).  dims exclude the batch dimension; -1 = variable.  Any out
 * pointer may be NULL.  FERRY_ENOENT for an index out of range.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_input(const ferry_be_model *m, uint32_t index,
						     const char **name, ferry_dtype *dtype,
						     const int64_t **dims, int *ndims);
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_output(const ferry_be_model *m, uint32_t index,
						      const char **name, ferry_dtype *dtype,
						      const int64_t **dims, int *ndims);
/* Config parameters ({ key, string_value }).  by_name: NULL when absent. */
FERRY_BE_EXPORT uint32_t ferry_be_model_parameter_count(const ferry_be_model *m);
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_parameter(const ferry_be_model *m, uint32_t index,
							 const char **key, const char **value);
FERRY_BE_EXPORT const char *ferry_be_model_parameter_by_name(const ferry_be_model *m,
							     const char *key);
/*
 * ferry_be_model_input_reshape / _output_reshape (API 1.2) - the config's
 * reshape { shape } of tensor `index`: the shape the model itself takes,
 * without the batch dimension, while clients send `dims`.  false (and
 * nothing set) when the tensor has none or the index is out of range.
 */
FERRY_BE_EXPORT bool ferry_be_model_input_reshape(const ferry_be_model *m, uint32_t index,
						  const int64_t **shape, int *ndims);
FERRY_BE_EXPORT bool ferry_be_model_output_reshape(const ferry_be_model *m, uint32_t index,
						   const int64_t **shape, int *ndims);
/*
 * The config's optimization block (API 1.2), as Triton's backends read it.
 * ferry_be_model_graph_level: optimization { graph { level } }; false when
 * absent.  Execution accelerators: optimization { execution_accelerators
 * { gpu_execution_accelerator [ { name parameters { key value } } ]
 * cpu_execution_accelerator [ ... ] } }, in config order; the backend
 * decides what the names and parameters mean and refuses what it does not
 * know.  FERRY_ENOENT for an index out of range.
 */
typedef enum ferry_be_accelerator_kind {
	FERRY_BE_ACCELERATOR_GPU = 0,
	FERRY_BE_ACCELERATOR_CPU = 1,
} ferry_be_accelerator_kind;
FERRY_BE_EXPORT bool ferry_be_model_graph_level(const ferry_be_model *m, int *level);
FERRY_BE_EXPORT uint32_t ferry_be_model_accelerator_count(const ferry_be_model *m,
							  ferry_be_accelerator_kind kind);
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_accelerator(const ferry_be_model *m,
							   ferry_be_accelerator_kind kind,
							   uint32_t index, const char **name,
							   uint32_t *nparams);
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_accelerator_parameter(
	const ferry_be_model *m, ferry_be_accelerator_kind kind, uint32_t index,
	uint32_t param, const char **key, const char **value);

/*
 * AUTO-COMPLETE (API 1.2)
 *
 * Where auto-complete is on (ferryd's default, as Triton's; off with
 * --strict-model-config=true or --disable-auto-complete-config), ferryd
 * calls the optional ferry_backend_model_autocomplete(m) once per model,
 * before any ferry_backend_model_initialize, with the model's newest
 * selected version.  The config may then lack inputs, outputs, a tensor's
 * data_type or dims, or max_batch_size; the accessors above show what it
 * has.  The backend reads the model file and fills the gaps with the two
 * calls below, which work only inside that entry point (FERRY_EBUSY
 * elsewhere).  Returning an error fails the model with that message.
 * Afterwards ferryd checks that every input and output has a data_type
 * and dims, and where the backend set max_batch_size > 1 on a config
 * without a scheduling block it turns on dynamic batching (Triton's
 * rule).  Every front end then shows the completed config.  The handle
 * lives for this call only: free whatever the call allocated before it
 * returns, and set no model state (ferry_backend_model_initialize starts
 * afresh, on a handle of its own).
 *
 * ferry_be_model_set_max_batch_size - the model's max_batch_size, unless
 * config.pbtxt gave one (then the config's value stays and this is not an
 * error: read ferry_be_model_max_batch_size() for the value in force).
 *
 * ferry_be_model_complete_tensor - tensor `name` of the inputs (output
 * false) or outputs: appended when the config lacks it; when the config
 * lists it, its missing data_type and dims are filled and what the config
 * gives stays.  dims exclude the batch dimension when max_batch_size > 0;
 * -1 is variable; ndims 0 (a scalar) becomes dims [1] with reshape { shape:
 * [] }, Triton's spelling.  FERRY_EINVAL for a dtype or dims the config
 * cannot hold.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_set_max_batch_size(ferry_be_model *m, int n);
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_complete_tensor(ferry_be_model *m, bool output,
							       const char *name,
							       ferry_dtype dtype,
							       const int64_t *dims, int ndims);

/* Opaque per-model state; free it in ferry_backend_model_finalize. */
FERRY_BE_EXPORT void ferry_be_model_set_state(ferry_be_model *m, void *state);
FERRY_BE_EXPORT void *ferry_be_model_state(const ferry_be_model *m);

/*
 * Model properties the backend sets in ferry_backend_model_initialize (later
 * calls return FERRY_EBUSY: the scheduler has already been built).  An
 * unknown property gives FERRY_ENOTSUP, so a plugin can probe for newer ones.
 */
typedef enum ferry_be_model_property {
	/* value != 0: execute is cheap enough to run on the broker's polling
	 * thread (no blocking, microseconds).  No instance threads are made. */
	FERRY_BE_MODEL_PROP_LIGHT = 1,
	/* value != 0: the backend runs KIND_GPU instances itself, even where
	 * ferryd sees no CUDA device (otherwise such a load fails). */
	FERRY_BE_MODEL_PROP_ACCEPTS_GPU = 2,
	/* value != 0 (API 1.1): requests may carry tensors in CUDA device
	 * memory (a local client's CUDA IPC region; see
	 * ferry_be_request_input_memory).  Without it ferryd refuses such
	 * requests before they reach the backend. */
	FERRY_BE_MODEL_PROP_CUDA_MEMORY = 3,
} ferry_be_model_property;
FERRY_BE_EXPORT ferry_be_error *ferry_be_model_set_property(ferry_be_model *m,
							    ferry_be_model_property prop,
							    int64_t value);

/* ------------------------------------------------------------------ */
/* Instance accessors (handle valid from ferry_backend_instance_initialize */
/* until ferry_backend_instance_finalize returns)                          */

typedef enum ferry_be_instance_kind {
	FERRY_BE_INSTANCE_CPU = 0,
	FERRY_BE_INSTANCE_GPU = 1,
	FERRY_BE_INSTANCE_MODEL = 2,   /* the backend decides placement */
} ferry_be_instance_kind;

FERRY_BE_EXPORT ferry_be_model *ferry_be_instance_model(const ferry_be_instance *i);
FERRY_BE_EXPORT ferry_be_instance_kind ferry_be_instance_kind_of(const ferry_be_instance *i);
/* CUDA device ordinal for GPU instances; -1 otherwise. */
FERRY_BE_EXPORT int ferry_be_instance_device_id(const ferry_be_instance *i);
/* 0 .. (instances of the model) - 1, unique within the model version. */
FERRY_BE_EXPORT uint32_t ferry_be_instance_index(const ferry_be_instance *i);
/* The instance group's name; valid as long as the instance. */
FERRY_BE_EXPORT const char *ferry_be_instance_group_name(const ferry_be_instance *i);
FERRY_BE_EXPORT void ferry_be_instance_set_state(ferry_be_instance *i, void *state);
FERRY_BE_EXPORT void *ferry_be_instance_state(const ferry_be_instance *i);
/*
 * ferry_be_instance_report_compute - optional, inside execute: the
 * CLOCK_MONOTONIC times (ns) at which input preparation ended and inference
 * ended, so the model statistics split the execution into compute_input /
 * compute_infer / compute_output.  Without it the whole execute counts as
 * compute_infer.
 */
FERRY_BE_EXPORT void ferry_be_instance_report_compute(ferry_be_instance *i,
						      uint64_t input_end_ns,
						      uint64_t infer_end_ns);

/* ------------------------------------------------------------------ */
/* Request accessors.  A request handle, and every pointer an accessor    */
/* returns for it (names, shapes, input data, output buffers), is valid  */
/* only until the ferry_backend_instance_execute call that received it   */
/* returns.  ferryd owns requests: the backend never frees them.         */

/* Inputs in config order: index i is the model's input i. */
FERRY_BE_EXPORT uint32_t ferry_be_request_input_count(const ferry_be_request *r);
/* The request's batch size: its shape's first dimension when the model
 * batches, else 1. */
FERRY_BE_EXPORT uint32_t ferry_be_request_batch_size(const ferry_be_request *r);
/*
 * ferry_be_request_input - input `index` (config order): name, dtype, shape
 * (batch dimension first when the model batches), the data and its size in
 * bytes.  The data lies in the client's memory: read it, never write it.
 * FERRY_ENOENT when the index is out of range or an optional input was not
 * given.  Any out pointer may be NULL.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input(const ferry_be_request *r, uint32_t index,
						       const char **name, ferry_dtype *dtype,
						       const int64_t **shape, int *ndims,
						       const void **data, uint64_t *bytes);
/* Same, by name. */
FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input_by_name(const ferry_be_request *r,
							       const char *name, ferry_dtype *dtype,
							       const int64_t **shape, int *ndims,
							       const void **data, uint64_t *bytes);
/* Where a tensor's data lies (API 1.1). */
typedef enum ferry_be_memory {
	FERRY_BE_MEMORY_CPU = 0,   /* host memory: a client arena or a buffer */
	FERRY_BE_MEMORY_GPU = 1,   /* CUDA device memory, mapped in ferryd */
} ferry_be_memory;
/*
 * ferry_be_request_input_memory / _output_memory (API 1.1) - where input or
 * output `index` (config order) lies, and for FERRY_BE_MEMORY_GPU the CUDA
 * device ordinal (ferryd's numbering).  Only models that set
 * FERRY_BE_MODEL_PROP_CUDA_MEMORY ever see FERRY_BE_MEMORY_GPU; the pointers
 * the other accessors return are then device pointers (use them with
 * cudaMemcpy*(..., cudaMemcpyDefault) or in kernels).  FERRY_ENOENT when the
 * index is out of range or the tensor absent.  Any out pointer may be NULL.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_be_request_input_memory(const ferry_be_request *r,
							      uint32_t index,
							      ferry_be_memory *type,
							      int *device);
FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_memory(const ferry_be_request *r,
							       uint32_t index,
							       ferry_be_memory *type,
							       int *device);
/* Outputs in config order. */
FERRY_BE_EXPORT uint32_t ferry_be_request_output_count(const ferry_be_request *r);
/* Whether the client asked for output `index`; false when out of range. */
FERRY_BE_EXPORT bool ferry_be_request_output_requested(const ferry_be_request *r, uint32_t index);
/*
 * ferry_be_request_output_buffer - where to write output `index`, given the
 * shape it will have (batch dimension first when the model batches; the
 * dtype is the config's).  *data points into the client's memory and
 * *capacity is its size.  For fixed-size dtypes the output's size is set to
 * elements x dtype size, and FERRY_E2BIG is returned (nothing set) when the
 * capacity is smaller; for BYTES the backend writes at most *capacity bytes
 * and then calls ferry_be_request_output_set_bytes().  FERRY_ENOENT when the
 * output was not requested, FERRY_ESHAPE for a bad shape.  May be called
 * again for the same output; the last call wins.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_buffer(ferry_be_request *r, uint32_t index,
							       const int64_t *shape, int ndims,
							       void **data, uint64_t *capacity);
/* BYTES outputs: how many bytes were written (<= capacity, else
 * FERRY_E2BIG).  For fixed-size dtypes it must equal the computed size. */
FERRY_BE_EXPORT ferry_be_error *ferry_be_request_output_set_bytes(ferry_be_request *r,
								  uint32_t index, uint64_t bytes);
/*
 * ferry_be_request_set_error - fail this request only (its batch-mates are
 * not affected).  Takes ownership of err; a second call replaces the first.
 * NULL clears an earlier error.
 */
FERRY_BE_EXPORT void ferry_be_request_set_error(ferry_be_request *r, ferry_be_error *err);

/* ------------------------------------------------------------------ */
/* Entry points a plugin defines (see the table at the top).             */

FERRY_BE_EXPORT void ferry_backend_api_version_required(uint32_t *major, uint32_t *minor);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_initialize(ferry_backend *b);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_finalize(ferry_backend *b);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_autocomplete(ferry_be_model *m);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_initialize(ferry_be_model *m);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_finalize(ferry_be_model *m);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_initialize(ferry_be_instance *i);
FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_finalize(ferry_be_instance *i);
/*
 * ferry_backend_instance_execute - run `count` requests (1 ..
 * max(max_batch_size, 1) of them, from possibly different clients) as one
 * batch.  For each request, write each requested output through
 * ferry_be_request_output_buffer(), or fail that request alone with
 * ferry_be_request_set_error().  Returning an error fails every request of
 * the batch with its message.  A requested output left unwritten fails its
 * request.
 */
FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_execute(ferry_be_instance *i,
							       ferry_be_request **requests,
							       uint32_t count);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_BACKEND_H */
