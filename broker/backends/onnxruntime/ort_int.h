/* SPDX-License-Identifier: MIT */
/*
 * ort_int.h - the onnxruntime backend's private state, shared by its files:
 *
 *   ort_backend.c   entry points: backend, model and instance lifetimes,
 *                   session options from the config's parameters and
 *                   optimization block (Triton's names), sessions
 *   ort_complete.c  config auto-complete from the model file
 *   ort_exec.c      execute: requests to OrtValues and back
 *   ort_lib.c       loading the library; element types
 *
 * Prefix ort_ (module), ort__ (private names).
 */
#ifndef FERRY_ORT_INT_H
#define FERRY_ORT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ferry/backend.h>

#include "broker/backends/onnxruntime/ort_lib.h"

#define ORT_MAX_DIMS 16

/* Per backend: immutable after ferry_backend_initialize. */
struct ort_backend {
	struct ort_lib lib;
	OrtEnv *env;
	int default_mbs;        /* auto-complete's max_batch_size (Triton: 4) */
	bool has_cuda_ep;       /* the library carries the CUDA EP */
	bool has_trt_ep;        /* ... and TensorRT's */
};

/* One config tensor as the session takes it.  Immutable after
 * ferry_backend_model_initialize. */
struct ort_tensor {
	const char *name;               /* the config's string */
	ferry_dtype dtype;
	ONNXTensorElementDataType type;
	size_t esize;                   /* bytes per element; 0: BYTES */
	int ndims;                      /* config dims (without batch) */
	const int64_t *dims;
	bool reshape;                   /* the model takes rshape instead */
	int rndims;
	const int64_t *rshape;
	bool fixed;                     /* every dim known: outputs can be
					 * allocated before the run */
	uint64_t row_elems;             /* elements per batch row when fixed */
};

/* The GPU execution accelerators of the config (Triton's), checked at
 * model initialisation. */
struct ort_accel {
	bool trt;                       /* gpu_execution_accelerator "tensorrt" */
	int ntrt;
	const char *trt_keys[64], *trt_vals[64];
	int ncuda;                      /* "cuda" parameters + Triton's model
					 * parameters for the CUDA EP */
	const char *cuda_keys[64], *cuda_vals[64];
};

/* A session shared by instances (share_session_between_instances). */
struct ort_shared {
	int kind, device;
	OrtSession *sess;
	int refs;
};

/* Per model version: immutable after ferry_backend_model_initialize except
 * the shared sessions (lock). */
struct ort_model {
	struct ort_backend *be;
	const OrtApi *api;
	char path[4200];                /* <repo>/<model>/<version>/model.onnx */
	OrtSessionOptions *opts;        /* cloned for each session */
	OrtRunOptions *run_opts;        /* NULL: defaults */
	int mbs;                        /* max_batch_size */
	uint32_t nin, nout;
	struct ort_tensor *in, *out;
	bool inline_run;                /* ferry_inline: the polling thread */
	bool share;                     /* share_session_between_instances */
	struct ort_accel accel;
	OrtSession *spare;              /* the CPU session made to check the
					 * config, for the first CPU instance */
	pthread_mutex_t lock;           /* spare, shared[] */
	struct ort_shared shared[16];
	int nshared;
};

/* Per instance: used by the one thread executing it. */
struct ort_inst {
	struct ort_model *om;
	OrtSession *sess;
	bool shared;                    /* sess belongs to om->shared[] */
	bool gpu;
	int device;
	OrtMemoryInfo *cpu_mem, *gpu_mem;
	OrtAllocator *alloc;            /* ORT's default CPU allocator */
	/* per run, sized for nin / nout */
	const char **in_names, **out_names;
	OrtValue **in_vals, **out_vals;
	int *out_idx;                   /* config index of each Run output */
	/* batches of several requests: staging, grown on demand */
	void **gather;
	size_t *gather_cap;
	void **stage;
	size_t *stage_cap;
	uint32_t *group;                /* request indices of one run */
	bool *done;                     /* per request of the batch */
	uint32_t cap;                   /* requests a batch holds */
};

/* An error from an OrtStatus (released here): "<what>: <ORT's message>". */
ferry_be_error *ort_error(const OrtApi *api, OrtStatus *st, const char *fmt, ...)
	FERRY__BE_PRINTF(3, 4);

/* <repository>/<version>/model.onnx, or the model.onnx inside it when
 * that is a directory (Triton's layout for external data). */
ferry_be_error *ort_model_path(const ferry_be_model *m, char *buf, size_t len);

/* AllocatorFree for what an allocator returned (a name). */
void ort_free(const OrtApi *api, OrtAllocator *al, void *p);

/* ort_complete.c */
ferry_be_error *ort_model_autocomplete(ferry_be_model *m);

/* ort_backend.c: a session on the CPU with the model's options (for
 * auto-complete: opts may be NULL for the library's defaults). */
ferry_be_error *ort_session_open(struct ort_backend *be, const char *path,
				 const OrtSessionOptions *opts, OrtSession **out);

/* ort_exec.c */
ferry_be_error *ort_execute(ferry_be_instance *i, ferry_be_request **reqs, uint32_t count);

#endif /* FERRY_ORT_INT_H */
