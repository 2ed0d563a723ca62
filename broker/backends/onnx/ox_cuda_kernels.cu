/* SPDX-License-Identifier: MIT */
/*
 * ox_cuda_kernels.cu - the CUDA kernels of the ONNX executor and their
 * launchers (see ox_cuda_int.h)
 *
 * One output element per thread in grid-stride loops; each kernel mirrors
 * ox_run.c's loop for the same operator, so the two executors agree to
 * rounding.
 */
#include <math.h>
#include <stdint.h>

extern "C" {
#include "ox_int.h"
}
#include "ox_cuda_int.h"

static __device__ void koffs(const struct ox__kstr &k, int64_t i, int64_t *oa,
			     int64_t *ob)
{
	int64_t a = 0, b = 0;

	for (int d = k.r - 1; d >= 0; d--) {
		int64_t q = i % k.n[d];

		i /= k.n[d];
		a += q * k.sa[d];
		b += q * k.sb[d];
	}
	*oa = a;
	*ob = b;
}

#define GRID_LOOP(i, n)                                                       \
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;      \
	     i < (n); i += (int64_t)gridDim.x * blockDim.x)

static __global__ void k_binary(int op, const float *a, const float *b,
				float *y, int64_t n, struct ox__kstr k)
{
	GRID_LOOP(i, n) {
		int64_t oa, ob;

		koffs(k, i, &oa, &ob);
		float x = a[oa], z = b[ob];

		switch (op) {
		case OX__OP_ADD: y[i] = x + z; break;
		case OX__OP_SUB: y[i] = x - z; break;
		case OX__OP_MUL: y[i] = x * z; break;
		default: y[i] = x / z; break;
		}
	}
}

static __global__ void k_unary(int op, const float *x, float *y, int64_t n,
			       float al)
{
	GRID_LOOP(i, n) {
		float v = x[i];

		switch (op) {
		case OX__OP_RELU:
			y[i] = v > 0.0f ? v : 0.0f;
			break;
		case OX__OP_LEAKYRELU:
			y[i] = v >= 0.0f ? v : al * v;
			break;
		case OX__OP_ELU:
			y[i] = v >= 0.0f ? v : al * expm1f(v);
			break;
		case OX__OP_SIGMOID:
			if (v >= 0.0f) {
				y[i] = 1.0f / (1.0f + expf(-v));
			} else {
				float e = expf(v);

				y[i] = e / (1.0f + e);
			}
			break;
		default:
			y[i] = tanhf(v);
			break;
		}
	}
}

/* y[i, j] = beta * C broadcast over [M, N] (C is [c0, c1], c0 and c1 each
 * 1 or the full size) */
static __global__ void k_bcast_c(const float *c, float *y, int64_t M,
				 int64_t N, int64_t c0, int64_t c1, float beta)
{
	GRID_LOOP(i, M * N) {
		int64_t r = i / N, j = i % N;

		y[i] = beta * c[(c0 == 1 ? 0 : r) * c1 + (c1 == 1 ? 0 : j)];
	}
}

static __global__ void k_gather(const float *x, float *y, int64_t n,
				struct ox__kstr k)
{
	GRID_LOOP(i, n) {
		int64_t oa, ob;

		koffs(k, i, &oa, &ob);
		y[i] = x[oa];
	}
}

static __global__ void k_softmax(const float *x, float *y, int64_t outer,
				 int64_t n, int64_t inner, int lg)
{
	GRID_LOOP(t, outer * inner) {
		int64_t o = t / inner, in = t % inner;
		const float *xs = x + o * n * inner + in;
		float *ys = y + o * n * inner + in;
		float mx = -INFINITY, sum = 0.0f;

		for (int64_t i = 0; i < n; i++)
			mx = xs[i * inner] > mx ? xs[i * inner] : mx;
		for (int64_t i = 0; i < n; i++)
			sum += expf(xs[i * inner] - mx);
		if (lg) {
			float ls = logf(sum);

			for (int64_t i = 0; i < n; i++)
				ys[i * inner] = xs[i * inner] - mx - ls;
		} else {
			float inv = 1.0f / sum;

			for (int64_t i = 0; i < n; i++)
				ys[i * inner] = expf(xs[i * inner] - mx) * inv;
		}
	}
}

static __global__ void k_affine(const float *x, float *y, const float *ab,
				int64_t n, int64_t C, int64_t inner)
{
	GRID_LOOP(i, n) {
		int64_t c = (i / inner) % C;

		y[i] = x[i] * ab[c] + ab[C + c];
	}
}

static __global__ void k_bias(float *y, const float *bias, int64_t n,
			      int64_t M, int64_t P)
{
	GRID_LOOP(i, n)
		y[i] += bias[(i / P) % M];
}

/* col[n][(c, kh, kw)][(oh, ow)] for one group, every image of the batch */
static __global__ void k_im2col(const float *x, float *col, int64_t N,
				struct ox__kwin w)
{
	int64_t P = w.oH * w.oW, Kc = w.C * w.k[0] * w.k[1];

	GRID_LOOP(i, N * Kc * P) {
		int64_t p = i % P, row = (i / P) % Kc, n = i / (P * Kc);
		int64_t kw = row % w.k[1], kh = (row / w.k[1]) % w.k[0];
		int64_t c = row / (w.k[0] * w.k[1]);
		int64_t ih = (p / w.oW) * w.s[0] - w.pb[0] + kh * w.d[0];
		int64_t iw = (p % w.oW) * w.s[1] - w.pb[1] + kw * w.d[1];

		col[i] = ih < 0 || ih >= w.H || iw < 0 || iw >= w.W ? 0.0f :
			 x[((n * w.Ctot + w.c0 + c) * w.H + ih) * w.W + iw];
	}
}

static __global__ void k_pool(const float *x, float *y, int64_t NC,
			      struct ox__kwin w)
{
	GRID_LOOP(i, NC * w.oH * w.oW) {
		int64_t ow = i % w.oW, oh = (i / w.oW) % w.oH;
		int64_t nc = i / (w.oW * w.oH);
		const float *xc = x + nc * w.H * w.W;
		int64_t h0 = oh * w.s[0] - w.pb[0], w0 = ow * w.s[1] - w.pb[1];
		float acc = w.mx ? -INFINITY : 0.0f;
		int64_t cnt = 0, ch = 0, cw = 0;

		for (int64_t kh = 0; kh < w.k[0]; kh++) {
			int64_t ih = h0 + kh * w.d[0];

			if (ih < w.H + w.pe[0])
				ch++;
			if (ih < 0 || ih >= w.H)
				continue;
			for (int64_t kw = 0; kw < w.k[1]; kw++) {
				int64_t iw = w0 + kw * w.d[1];

				if (iw < 0 || iw >= w.W)
					continue;
				float v = xc[ih * w.W + iw];

				acc = w.mx ? (v > acc ? v : acc) : acc + v;
				cnt++;
			}
		}
		if (!w.mx) {
			for (int64_t kw = 0; kw < w.k[1]; kw++)
				if (w0 + kw * w.d[1] < w.W + w.pe[1])
					cw++;
			if (w.cip)
				cnt = ch * cw;
			acc = cnt ? acc / (float)cnt : 0.0f;
		}
		y[i] = acc;
	}
}

static __global__ void k_gap(const float *x, float *y, int64_t NC,
			     int64_t inner)
{
	GRID_LOOP(nc, NC) {
		float acc = 0.0f;

		for (int64_t i = 0; i < inner; i++)
			acc += x[nc * inner + i];
		y[nc] = acc / (float)inner;
	}
}

static unsigned ox__grid_for(int64_t n)
{
	int64_t b = (n + OXG_THREADS - 1) / OXG_THREADS;

	/* grid-stride loops cover the rest */
	return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

/* ---------------------------------------------------------------------- */
/* launchers */

#define OX__LAUNCH(kern, n, ...)                                              \
	kern<<<ox__grid_for(n), OXG_THREADS, 0, st>>>(__VA_ARGS__)

void ox__gk_binary(cudaStream_t st, int op, const float *a, const float *b, float *y,
		   int64_t n, const struct ox__kstr *k)
{
	OX__LAUNCH(k_binary, n, op, a, b, y, n, *k);
}

void ox__gk_unary(cudaStream_t st, int op, const float *x, float *y, int64_t n, float al)
{
	OX__LAUNCH(k_unary, n, op, x, y, n, al);
}

void ox__gk_bcast_c(cudaStream_t st, const float *c, float *y, int64_t M, int64_t N,
		    int64_t c0, int64_t c1, float beta)
{
	OX__LAUNCH(k_bcast_c, M * N, c, y, M, N, c0, c1, beta);
}

void ox__gk_gather(cudaStream_t st, const float *x, float *y, int64_t n,
		   const struct ox__kstr *k)
{
	OX__LAUNCH(k_gather, n, x, y, n, *k);
}

void ox__gk_softmax(cudaStream_t st, const float *x, float *y, int64_t outer, int64_t n,
		    int64_t inner, int lg)
{
	OX__LAUNCH(k_softmax, outer * inner, x, y, outer, n, inner, lg);
}

void ox__gk_affine(cudaStream_t st, const float *x, float *y, const float *ab, int64_t n,
		   int64_t C, int64_t inner)
{
	OX__LAUNCH(k_affine, n, x, y, ab, n, C, inner);
}

void ox__gk_bias(cudaStream_t st, float *y, const float *bias, int64_t n, int64_t M,
		 int64_t P)
{
	OX__LAUNCH(k_bias, n, y, bias, n, M, P);
}

void ox__gk_im2col(cudaStream_t st, const float *x, float *col, int64_t N,
		   const struct ox__kwin *w)
{
	OX__LAUNCH(k_im2col, N * w->C * w->k[0] * w->k[1] * w->oH * w->oW, x, col, N, *w);
}

void ox__gk_pool(cudaStream_t st, const float *x, float *y, int64_t NC,
		 const struct ox__kwin *w)
{
	OX__LAUNCH(k_pool, NC * w->oH * w->oW, x, y, NC, *w);
}

void ox__gk_gap(cudaStream_t st, const float *x, float *y, int64_t NC, int64_t inner)
{
	OX__LAUNCH(k_gap, NC, x, y, NC, inner);
}
