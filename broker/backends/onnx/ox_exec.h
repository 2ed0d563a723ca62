/* SPDX-License-Identifier: MIT */
/*
 * ox_exec.h - ferry's native ONNX executor on the CPU (module prefix ox_)
 *
 * A small inference engine for dense and convolutional float32 graphs.  It
 * reads an ONNX ModelProto (the schema is the system's onnx.proto), checks
 * every operator, data type and shape once, plans the whole graph at load
 * (topological order, symbolic shapes with a dynamic batch dimension, a
 * liveness-based arena) and then runs it with no allocation per call.
 *
 * Objects and their lifetimes
 *
 *   struct ox_model  the checked, planned graph and its weights.  Immutable
 *                    after ox_model_load(): any number of threads may share
 *                    one model (query it, create contexts on it).  Free it
 *                    with ox_model_free() after every context on it is gone.
 *   struct ox_ctx    one execution instance: the arena and scratch buffers
 *                    for the largest batch it will run, allocated once by
 *                    ox_ctx_create().  A context is used by one thread at a
 *                    time (a model instance in Triton's sense); contexts on
 *                    the same model share its weights.
 *
 * Shapes.  The first dimension of a graph input is the batch dimension when
 * the model declares it symbolic (dim_param) or as -1 / 0; every other
 * dimension must be a static positive number.  An input whose first
 * dimension is a positive number is a static tensor.  Graph outputs either
 * are static or carry the batch dimension first.
 *
 * Operators (ai.onnx, opsets 13 to OX_MAX_OPSET, float32 only): Gemm, MatMul,
 * Add, Sub, Mul, Div, Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softmax,
 * LogSoftmax, Flatten, Reshape, Transpose, Concat, Squeeze, Unsqueeze,
 * Identity, Constant, BatchNormalization (inference), Conv, MaxPool,
 * AveragePool (1-D and 2-D) and GlobalAveragePool.  Integer tensors are
 * accepted only where they are shape arguments known at load (Reshape's
 * shape, Squeeze's and Unsqueeze's axes).
 *
 * Semantics worth knowing.  Squeeze without axes removes the dimensions
 * that are statically 1, never the batch dimension (onnxruntime would
 * squeeze it at batch 1).  Pool pads must be smaller than the window.
 * ceil_mode drops a last window that would start in the trailing pad (as
 * ONNX >= 19, onnxruntime and PyTorch do).  Graph outputs that are graph
 * inputs or constants are copied; all others are written in place.
 *
 * Limits.  Rank <= OX_MAX_RANK; every tensor at most INT_MAX elements at
 * the context's max_batch (OpenBLAS takes int sizes): FERRY_E2BIG beyond.
 * Weights in external data files: FERRY_ENOTSUP (sparse initializers
 * are ignored, so a node that reads one finds its input undefined).
 *
 * Threads.  Matrix products go through OpenBLAS.  The first ox_ctx_create()
 * sets OpenBLAS to ONE thread for the whole process (unless
 * ox_set_blas_threads() was called before): the broker runs one context per
 * model instance, each on its own thread, so instances x BLAS threads never
 * exceed the cores.  Call ox_set_blas_threads() to choose otherwise.
 *
 * Errors.  Every function returns 0 or a negative ferry error code
 * (include/ferry/errors.h): FERRY_EBADMSG for a malformed model file,
 * FERRY_ENOTSUP for a valid model that uses something the executor lacks,
 * FERRY_EINVAL for bad arguments, FERRY_ENOMEM, FERRY_E2BIG when a size
 * overflows.
 */
#ifndef FERRY_OX_EXEC_H
#define FERRY_OX_EXEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest tensor rank the executor handles. */
#define OX_MAX_RANK 8
/* The opset range of the default (ai.onnx) domain that is accepted. */
#define OX_MIN_OPSET 13
#define OX_MAX_OPSET 28

/* Element types (the values are ONNX's TensorProto.DataType). */
enum ox_dtype {
	OX_FLOAT32 = 1,
};

struct ox_model;
struct ox_ctx;

/*
 * struct ox_tensor_info - name, type and shape of a graph input or output
 *
 * @name points into the model and lives as long as it.  dims[0] is -1 when
 * the tensor has the batch dimension (then @batched is 1); every other
 * entry is a static size >= 0.
 */
struct ox_tensor_info {
	const char *name;
	int dtype;
	int rank;
	int batched;
	int64_t dims[OX_MAX_RANK];
};

/*
 * ox_model_load - parse, check and plan an ONNX model
 * @buf, @len:  the serialized ModelProto; not referenced after the call
 * @out:        receives the model; free with ox_model_free()
 * @err:        receives a message on failure (may be NULL); a model that
 *              uses unsupported operators gets one that names each such
 *              node by name and op type
 *
 * The bytes are untrusted: every size, index and count is checked.
 * Returns 0, FERRY_EBADMSG, FERRY_ENOTSUP, FERRY_E2BIG or FERRY_ENOMEM.
 */
int ox_model_load(const void *buf, size_t len, struct ox_model **out,
		  char *err, size_t errlen);

/* ox_model_free - free a model; every context on it must be freed first. */
void ox_model_free(struct ox_model *model);

int ox_model_num_inputs(const struct ox_model *model);
int ox_model_num_outputs(const struct ox_model *model);

/*
 * ox_model_input / ox_model_output - describe input or output @i
 *
 * Returns 0 or FERRY_EINVAL for an index out of range.
 */
int ox_model_input(const struct ox_model *model, int i,
		   struct ox_tensor_info *info);
int ox_model_output(const struct ox_model *model, int i,
		    struct ox_tensor_info *info);

/*
 * ox_model_opset - the ai.onnx opset the model declares
 */
int ox_model_opset(const struct ox_model *model);

/*
 * ox_tensor_numel - number of elements of a described tensor at @batch
 * (the batch dimension counts as @batch); 0 for an overflow.
 */
size_t ox_tensor_numel(const struct ox_tensor_info *info, int batch);

/*
 * ox_ctx_create - a context that runs batches of 1 to @max_batch
 * @out: receives the context; free with ox_ctx_free() before the model
 *
 * Allocates everything a run needs (the arena of intermediate tensors and
 * the scratch space of the convolutions) for @max_batch, once.  For a model
 * without a batch dimension @max_batch is ignored.
 * Returns 0, FERRY_EINVAL, FERRY_E2BIG or FERRY_ENOMEM.
 */
int ox_ctx_create(const struct ox_model *model, int max_batch,
		  struct ox_ctx **out);

void ox_ctx_free(struct ox_ctx *ctx);

/* ox_ctx_arena_bytes - bytes the context holds for tensors and scratch */
size_t ox_ctx_arena_bytes(const struct ox_ctx *ctx);

/*
 * ox_run - run the graph on @batch items (1 <= @batch <= max_batch)
 * @inputs:  one pointer per graph input, in ox_model_input() order, each to
 *           ox_tensor_numel(info, batch) floats, read only during the call
 * @outputs: one pointer per graph output, in ox_model_output() order, each
 *           to ox_tensor_numel(info, batch) floats, written by the call;
 *           outputs must not overlap inputs or each other
 *
 * For a model without a batch dimension @batch must be 1.  Allocates
 * nothing.  Returns 0 or FERRY_EINVAL.
 */
int ox_run(struct ox_ctx *ctx, int batch, const float *const inputs[],
	   float *const outputs[]);

/*
 * ox_set_blas_threads - set OpenBLAS's thread count for the whole process
 *
 * Overrides the default of one thread that the first ox_ctx_create() would
 * otherwise set.
 */
void ox_set_blas_threads(int n);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_OX_EXEC_H */
