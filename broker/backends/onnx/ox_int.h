/* SPDX-License-Identifier: MIT */
/*
 * ox_int.h - private structures of the ONNX executor (prefix ox__)
 *
 * The loader (ox_load.c with ox_proto.c and ox_ops.c; see ox_load.h)
 * turns a ModelProto into a struct ox_model: a table of tensors with
 * symbolic shapes and a list of steps in execution order.  ox_shape.c
 * evaluates shapes for a batch and plans a context's arena; the runner
 * (ox_run.c) runs each step's kernel on the CPU, the CUDA module
 * (ox_cuda.cu, ox_cuda_kernels.cu) on a GPU.  Nothing here is shared with
 * other modules.
 */
#ifndef FERRY_OX_INT_H
#define FERRY_OX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ox_exec.h"

/*
 * A dimension is c * B^b, B being the batch size of the call and b 0 or 1.
 * Reshape and Flatten can fold the batch into a larger dimension (c > 1,
 * b = 1); shapes never need anything richer than that.
 */
struct ox__dim {
	int64_t c;
	int b;
};

enum ox__tkind {
	OX__T_INPUT,	/* graph input: bound to the caller's pointer per call */
	OX__T_CONST,	/* float constant: model memory, shared by contexts */
	OX__T_INT,	/* int64 constant, only used at plan time */
	OX__T_VALUE,	/* computed by a step */
	OX__T_OTHER,	/* a constant of another type: an error where used */
};

struct ox__tensor {
	enum ox__tkind kind;
	int rank;
	struct ox__dim dims[OX_MAX_RANK];
	const float *cdata;	/* OX__T_CONST */
	int64_t *idata;		/* OX__T_INT, icount values */
	size_t icount;
	int def;		/* step that writes it, -1 for none */
	int last;		/* last step that reads it, -1 for none */
	int graph_out;		/* >= 0: written straight to that output */
	int graph_in;		/* >= 0: that graph input */
};

enum ox__op {
	OX__OP_COPY,		/* Identity, Reshape, Flatten, Squeeze, Unsqueeze */
	OX__OP_GEMM,
	OX__OP_MATMUL,
	OX__OP_ADD,
	OX__OP_SUB,
	OX__OP_MUL,
	OX__OP_DIV,
	OX__OP_RELU,
	OX__OP_LEAKYRELU,
	OX__OP_ELU,
	OX__OP_SIGMOID,
	OX__OP_TANH,
	OX__OP_SOFTMAX,
	OX__OP_LOGSOFTMAX,
	OX__OP_TRANSPOSE,
	OX__OP_CONCAT,
	OX__OP_BATCHNORM,
	OX__OP_CONV,
	OX__OP_MAXPOOL,
	OX__OP_AVGPOOL,
	OX__OP_GLOBALAVGPOOL,
};

/* Convolution and pooling geometry, always as 2-D (1-D has H = 1). */
struct ox__win {
	int64_t k[2], s[2], d[2];
	int64_t pb[2], pe[2];	/* padding at the beginning / end */
	int64_t group;
	int ceil_mode, count_include_pad;
};

struct ox__step {
	enum ox__op op;
	int nin;
	int *in;		/* tensor ids, -1 for an absent optional input */
	int out;
	float alpha, beta;	/* Gemm, LeakyRelu, Elu */
	int trans_a, trans_b;	/* Gemm */
	int axis;		/* Softmax, LogSoftmax, Concat (normalized) */
	int perm[OX_MAX_RANK];	/* Transpose */
	struct ox__win win;	/* Conv, pools */
	float *bn;		/* BatchNormalization folded, owned: y = x*a + b
				 * with a = bn[0..C), b = bn[C..2C) */
};

struct ox__io {
	char *name;
	int tensor;
	struct ox_tensor_info info;
};

struct ox_model {
	int opset;
	int batched;		/* some tensor depends on the batch size */
	int ntensors;
	struct ox__tensor *tensors;
	int nsteps;
	struct ox__step *steps;
	int ninputs, noutputs;
	struct ox__io *inputs, *outputs;
	float *consts;		/* every float constant, one block */
	size_t nconsts;
	int64_t *ints;		/* every int64 constant, one block */
};

/* Evaluate a symbolic dimension for batch @B (no overflow: checked at ctx). */
static inline int64_t ox__dimv(struct ox__dim d, int64_t B)
{
	return d.b ? d.c * B : d.c;
}

/* Alignment of every tensor in a context's arena (CPU and GPU alike). */
#define OX__ALIGN 64

/* ox_shape.c: tensor @t's dims at batch @B into @dims; returns its rank */
int ox__shape(const struct ox__tensor *t, int64_t B, int64_t *dims);
int64_t ox__numel(const struct ox__tensor *t, int64_t B);
/* product of d[from .. to) */
int64_t ox__prod(const int64_t *d, int from, int to);
/* [N, C, H, W] view of a 1-D or 2-D image tensor (H = 1 for 1-D) */
void ox__nchw(const struct ox__tensor *t, int64_t B, int64_t *d);
/* a 1x1, stride 1, unpadded convolution: a plain GEMM, no im2col */
bool ox__conv_direct(const struct ox__win *w);
/* floats of the CPU convolution scratch step @s needs at batch @B */
size_t ox__scratch_floats(const struct ox_model *m, const struct ox__step *s,
			  int64_t B);
/*
 * ox__plan - the arena layout of a context for @max_batch: off[t] is the
 * byte offset of VALUE tensor t in the arena (SIZE_MAX for tensors that
 * live elsewhere: inputs, constants, graph outputs); *arena_bytes the arena
 * size and *scratch_floats the CPU convolutions' scratch.  @off has
 * m->ntensors entries.  Shared by the CPU context and the GPU one
 * (ox_cuda.cu), so both reuse memory the same way.
 * Returns 0, FERRY_E2BIG (a tensor above INT_MAX elements) or FERRY_ENOMEM.
 */
int ox__plan(const struct ox_model *m, int max_batch, size_t *off,
	     size_t *arena_bytes, size_t *scratch_floats);
void ox__exec_step(const struct ox_model *m, const struct ox__step *s,
		   float *const *ptr, int64_t B, float *scratch);

#endif /* FERRY_OX_INT_H */
