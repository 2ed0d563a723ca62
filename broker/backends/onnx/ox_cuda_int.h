/* SPDX-License-Identifier: MIT */
/*
 * ox_cuda_int.h - between the two files of the ONNX executor's CUDA module
 * (prefix ox__): ox_cuda_kernels.cu holds the kernels and their launchers,
 * ox_cuda.cu the weights, contexts, steps and the graph runner.  Every
 * launcher enqueues one kernel on @st and returns at once; errors show at
 * the next cudaGetLastError() of the caller.
 */
#ifndef FERRY_OX_CUDA_INT_H
#define FERRY_OX_CUDA_INT_H

#include <stdint.h>

#include <cuda_runtime.h>

#include "ox_exec.h"

/* Threads per block of every kernel. */
#define OXG_THREADS 256

/* Index arithmetic of a strided (broadcast or permuted) element-wise op. */
struct ox__kstr {
	int r;
	int64_t n[OX_MAX_RANK];		/* output dims */
	int64_t sa[OX_MAX_RANK];	/* strides of the first source */
	int64_t sb[OX_MAX_RANK];	/* strides of the second source */
};

/* Convolution / pooling window of one kernel launch. */
struct ox__kwin {
	int64_t C, H, W, oH, oW;	/* C: the group's channels for im2col */
	int64_t Ctot;			/* the input's channels */
	int64_t c0;			/* first channel of the group */
	int64_t k[2], s[2], d[2], pb[2], pe[2];
	int cip, mx;
};

/* y = a op b (Add, Sub, Mul, Div) with @k's broadcast strides, n outputs */
void ox__gk_binary(cudaStream_t st, int op, const float *a, const float *b, float *y,
		   int64_t n, const struct ox__kstr *k);
/* y = f(x) for Relu, LeakyRelu (alpha @al), Elu (@al), Sigmoid, Tanh */
void ox__gk_unary(cudaStream_t st, int op, const float *x, float *y, int64_t n, float al);
/* y[M, N] = beta * C broadcast (C is [c0, c1], each 1 or the full size) */
void ox__gk_bcast_c(cudaStream_t st, const float *c, float *y, int64_t M, int64_t N,
		    int64_t c0, int64_t c1, float beta);
/* y[i] = x[permuted i] (Transpose) */
void ox__gk_gather(cudaStream_t st, const float *x, float *y, int64_t n,
		   const struct ox__kstr *k);
/* (Log)Softmax over the middle axis of [outer, n, inner] */
void ox__gk_softmax(cudaStream_t st, const float *x, float *y, int64_t outer, int64_t n,
		    int64_t inner, int lg);
/* y = x * a[c] + b[c] (folded BatchNorm; ab = a then b, C each) */
void ox__gk_affine(cudaStream_t st, const float *x, float *y, const float *ab, int64_t n,
		   int64_t C, int64_t inner);
/* y[n, m, p] += bias[m] */
void ox__gk_bias(cudaStream_t st, float *y, const float *bias, int64_t n, int64_t M,
		 int64_t P);
/* im2col of one group (@w->c0, @w->C channels) for every image of the batch */
void ox__gk_im2col(cudaStream_t st, const float *x, float *col, int64_t N,
		   const struct ox__kwin *w);
/* MaxPool (w->mx) or AveragePool over NC planes */
void ox__gk_pool(cudaStream_t st, const float *x, float *y, int64_t NC,
		 const struct ox__kwin *w);
/* GlobalAveragePool: the mean of each of NC planes of @inner elements */
void ox__gk_gap(cudaStream_t st, const float *x, float *y, int64_t NC, int64_t inner);

#endif /* FERRY_OX_CUDA_INT_H */
