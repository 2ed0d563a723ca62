/* SPDX-License-Identifier: MIT */
/*
 * ox_cuda.h - the ONNX executor on CUDA (module prefix ox_cuda_)
 *
 * The GPU twin of ox_exec.h: it runs the graph that ox_model_load()
 * checked and planned, with the same steps, the same shapes and the same
 * arena layout (ox__plan), on cuBLAS and small CUDA kernels.  Compiled only
 * when configure finds CUDA (HAVE_CUDA); every function is safe to call on
 * a machine without a driver or a device: they return FERRY_UNAVAILABLE.
 *
 * Objects and their lifetimes
 *
 *   struct ox_cuda_weights  a model's constants (and folded BatchNorms) on one
 *                       device, uploaded once.  Immutable after creation;
 *                       shared by every context on that device.  Free it
 *                       after those contexts, before the ox_model.
 *   struct ox_cuda_ctx      one GPU model instance: its stream, cuBLAS handle,
 *                       device input, output and arena buffers for the
 *                       largest batch (allocated once) and one CUDA graph
 *                       per batch size it has run (captured on first use).
 *                       Used by one thread at a time.
 *
 * Transfers.  ox_cuda_run() copies each part's inputs from host memory straight
 * into the device input buffers at the part's row offset (so the batch is
 * gathered by the DMA engine, not by the CPU) and each output back into the
 * part's own buffer.  From memory registered with ox_cuda_host_register() (the
 * clients' arenas) those copies run at pinned speed and asynchronously.
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

/* CUDA devices the runtime sees; 0 without a driver or a device. */
int ox_cuda_device_count(void);

/* Device memory in use and in all on @device (cudaMemGetInfo).  Creates
 * the device's primary context if nothing has yet. */
int ox_cuda_mem_info(int device, size_t *used, size_t *total);

/*
 * ox_cuda_weights_create - upload @m's constants to @device
 * @out: receives the weights; free with ox_cuda_weights_free()
 */
int ox_cuda_weights_create(const struct ox_model *m, int device,
		       struct ox_cuda_weights **out, char *err, size_t errlen);
void ox_cuda_weights_free(struct ox_cuda_weights *w);

/*
 * ox_cuda_ctx_create - a GPU context for batches of 1 to @max_batch on the
 * weights' device
 * @graphs: nonzero to capture each batch size's forward pass in a CUDA
 *          graph the first time it runs, and replay it afterwards
 * @out:    receives the context; free with ox_cuda_ctx_free() before @w
 *
 * Creates the stream and the cuBLAS handle (with a fixed workspace, so
 * that cuBLAS allocates nothing while a graph is captured) and allocates
 * every device buffer.
 */
int ox_cuda_ctx_create(const struct ox_model *m, struct ox_cuda_weights *w,
		   int max_batch, int graphs, struct ox_cuda_ctx **out,
		   char *err, size_t errlen);
void ox_cuda_ctx_free(struct ox_cuda_ctx *c);

/* Device bytes a context holds (inputs, outputs, arena, scratch). */
size_t ox_cuda_ctx_device_bytes(const struct ox_cuda_ctx *c);
/* CUDA graphs captured so far. */
int ox_cuda_ctx_graphs(const struct ox_cuda_ctx *c);

/*
 * struct ox_cuda_part - one request's share of a batch
 * @batch: its rows (1 for a model without a batch dimension)
 * @in:    one pointer per graph input (host memory, or device memory such
 *         as a client's CUDA IPC region: copies use unified addressing) (ox_model_input order), each to
 *         ox_tensor_numel(info, batch) floats; read during the call
 * @out:   one host pointer per graph output, each to that many floats, or
 *         NULL for an output nobody wants; written by the call
 */
struct ox_cuda_part {
	int batch;
	const float *const *in;
	float *const *out;
};

/*
 * ox_cuda_run - run @nparts parts as one batch (their rows add up to at most
 * max_batch), synchronously
 * @input_end_ns, @infer_end_ns: receive the CLOCK_MONOTONIC times at which
 *         the input copies and the forward pass ended (from CUDA events);
 *         may be NULL
 */
int ox_cuda_run(struct ox_cuda_ctx *c, int nparts, const struct ox_cuda_part *parts,
	    uint64_t *input_end_ns, uint64_t *infer_end_ns,
	    char *err, size_t errlen);

/*
 * ox_cuda_host_register - page-lock [base, base + bytes) for every device
 * (cudaHostRegister, portable), so copies from and to it run at pinned
 * speed.  Pair with ox_cuda_host_unregister() before the memory is unmapped.
 */
int ox_cuda_host_register(void *base, size_t bytes);
int ox_cuda_host_unregister(void *base);

/* ox_cuda_pci_bus_id - the device's PCI bus id ("0000:3b:00.0", lower case). */
int ox_cuda_pci_bus_id(int device, char *buf, size_t len);

/*
 * ox_cuda_ipc_open - open a client's CUDA IPC memory handle (cudaIpcMemHandle_t,
 * @handle_len bytes) on the device named by @pci_bus_id (else ordinal
 * @device), and check that the allocation it maps starts at the returned
 * pointer and holds at least @bytes.  *@dptr: the mapping in this process;
 * *@device_out: the device it was opened on (for ox_cuda_ipc_close).  0, or a
 * ferry code with the reason in @err.
 */
int ox_cuda_ipc_open(const void *handle, size_t handle_len, const char *pci_bus_id,
		 int device, uint64_t bytes, void **dptr, int *device_out,
		 char *err, size_t errlen);
int ox_cuda_ipc_close(void *dptr, int device);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_OX_CUDA_H */
