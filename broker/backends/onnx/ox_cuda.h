/* SPDX-License-Identifier: MIT */
/*
 * ox_cuda.h - the ONNX executor on CUDA: the module ox_cuda.so
 *
 * The GPU twin of ox_exec.h: it runs the graph that ox_model_load()
 * checked and planned, with the same steps, the same shapes and the same
 * arena layout (ox__plan), on cuBLAS and small CUDA kernels.  It is a
 * module of its own (ox_cuda.cu, ox_cuda_kernels.cu, linked against
 * libcudart and cuBLAS), built only where configure finds CUDA, and
 * dlopen()ed by ox_cuda_load() the first time a KIND_GPU instance is
 * created on a node where gpu_device_count() > 0: a CPU-only node never
 * maps cuBLAS.  Its calls are reached through one table, struct
 * ox_cuda_ops.  Device services (host registration, IPC, device count,
 * NUMA) are not here: they are broker/gpu's (gpu.h).
 *
 * Objects and their lifetimes
 *
 *   struct ox_cuda_weights  a model's constants (and folded BatchNorms) on
 *                       one device, uploaded once.  Immutable after
 *                       creation; shared by every context on that device.
 *                       Free it after those contexts, before the ox_model.
 *   struct ox_cuda_ctx  one GPU model instance: its stream, cuBLAS handle,
 *                       device input, output and arena buffers for the
 *                       largest batch (allocated once) and one CUDA graph
 *                       per batch size it has run (captured on first use).
 *                       Used by one thread at a time.
 *
 * Transfers.  run() copies each part's inputs from host memory straight
 * into the device input buffers at the part's row offset (so the batch is
 * gathered by the DMA engine, not by the CPU) and each output back into
 * the part's own buffer.  From memory registered with gpu_host_register()
 * (the clients' arenas) those copies run at pinned speed and
 * asynchronously.
 *
 * Errors.  0 or a negative ferry code; FERRY_BACKEND for a CUDA or cuBLAS
 * failure (the message names the call and CUDA's error string),
 * FERRY_UNAVAILABLE when there is no usable device.
 */
#ifndef FERRY_OX_CUDA_H
#define FERRY_OX_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "ox_exec.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ox_cuda_weights;
struct ox_cuda_ctx;

/*
 * struct ox_cuda_part - one request's share of a batch
 * @batch: its rows (1 for a model without a batch dimension)
 * @in:    one pointer per graph input (ox_model_input order), each to
 *         ox_tensor_numel(info, batch) floats; host memory, or device
 *         memory such as a client's CUDA IPC region (copies use unified
 *         addressing); read during the call
 * @out:   one pointer per graph output, each to that many floats, or NULL
 *         for an output nobody wants; written by the call
 */
struct ox_cuda_part {
	int batch;
	const float *const *in;
	float *const *out;
};

#define OX_CUDA_MODULE "ox_cuda.so"
/* The module's one exported symbol: a const struct ox_cuda_ops.  Its name
 * carries the table's version; a smaller table (size) is refused. */
#define OX_CUDA_OPS_SYMBOL "ox_cuda_ops_v1"

struct ox_cuda_ops {
	size_t size;		/* sizeof(struct ox_cuda_ops) in the module's build */
	/*
	 * weights_create - upload @m's constants to @device
	 * @out: receives the weights; free with weights_free()
	 */
	int (*weights_create)(const struct ox_model *m, int device,
			      struct ox_cuda_weights **out, char *err, size_t errlen);
	void (*weights_free)(struct ox_cuda_weights *w);
	/*
	 * ctx_create - a GPU context for batches of 1 to @max_batch on the
	 * weights' device
	 * @graphs: nonzero to capture each batch size's forward pass in a
	 *          CUDA graph the first time it runs, and replay it afterwards
	 * @out:    receives the context; free with ctx_free() before @w
	 *
	 * Creates the stream and the cuBLAS handle (with a fixed workspace,
	 * so that cuBLAS allocates nothing while a graph is captured) and
	 * allocates every device buffer.
	 */
	int (*ctx_create)(const struct ox_model *m, struct ox_cuda_weights *w,
			  int max_batch, int graphs, struct ox_cuda_ctx **out,
			  char *err, size_t errlen);
	void (*ctx_free)(struct ox_cuda_ctx *c);
	/* Device bytes a context holds (inputs, outputs, arena, scratch). */
	size_t (*ctx_device_bytes)(const struct ox_cuda_ctx *c);
	/* CUDA graphs captured so far. */
	int (*ctx_graphs)(const struct ox_cuda_ctx *c);
	/*
	 * run - run @nparts parts as one batch (their rows add up to at most
	 * max_batch), synchronously
	 * @input_end_ns, @infer_end_ns: receive the CLOCK_MONOTONIC times at
	 *         which the input copies and the forward pass ended (from
	 *         CUDA events); may be NULL
	 */
	int (*run)(struct ox_cuda_ctx *c, int nparts, const struct ox_cuda_part *parts,
		   uint64_t *input_end_ns, uint64_t *infer_end_ns, char *err,
		   size_t errlen);
};

/*
 * ox_cuda_load - the CUDA half of the executor (ox_backend.c)
 * @ops: receives the module's table, valid until the process exits
 *
 * Opens ox_cuda.so (found with gpu_module_path()) once, the first time it
 * is asked for while gpu_device_count() > 0.  0, FERRY_UNAVAILABLE (no
 * GPU: nothing is loaded), or FERRY_ENOENT / FERRY_BACKEND / FERRY_VERSION
 * with the reason in @err when the module cannot be used.  Thread-safe.
 */
int ox_cuda_load(const struct ox_cuda_ops **ops, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_OX_CUDA_H */
