/* SPDX-License-Identifier: MIT */
/*
 * ox_cuda.cu - the ONNX executor on CUDA (see ox_cuda.h)
 *
 * Each step of the planned graph becomes cuBLAS calls and small kernels on
 * the context's stream; the kernels mirror ox_run.c's loops one output
 * element per thread, so the two executors agree to rounding.  Tensors
 * live where the CPU context keeps them: VALUE tensors at ox__plan's
 * offsets in one device arena, graph inputs and outputs in their own
 * device buffers, constants in the per-device weights.
 *
 * CUDA graphs.  A forward pass at batch B launches the same kernels on the
 * same pointers every time, so it is captured once per B (on first use)
 * and replayed with one cudaGraphLaunch: one launch instead of one or more
 * per step, which is what small batches pay for.  Graphs are per exact
 * batch size, not padded buckets: Softmax over axis 0 and Reshapes that
 * fold the batch make padded rows change real ones.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include <ferry/errors.h>
#include "ox_int.h"
}
#include "ox_cuda.h"

#define OXG_ALIGN 256
/* cuBLAS's recommended workspace on Hopper; set so that it never
 * allocates inside a graph capture. */
#define OXG_CUBLAS_WS (32u << 20)
#define OXG_THREADS 256

struct ox_cuda_weights {
	int device;
	int ntensors;
	float **tptr;		/* per tensor: its constant on the device */
	float **bn;		/* per step: its folded BatchNorm */
	void *block;
	size_t bytes;
};

struct ox_cuda_ctx {
	const struct ox_model *m;
	struct ox_cuda_weights *w;
	int device, max_batch, use_graphs;
	cudaStream_t stream;
	cublasHandle_t blas;
	void *ws;
	float **ptr;		/* per tensor: device address */
	float **din;		/* per graph input: device buffer */
	float **dout;		/* per graph output: device buffer or NULL */
	void *arena;
	float *scratch;
	size_t bytes;
	cudaGraphExec_t *graphs;	/* [max_batch + 1], NULL until captured */
	int ngraphs;
	cudaEvent_t ev_start, ev_in, ev_fwd, ev_end;
};

static void ox__msg(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

#define CK(call)                                                              \
	do {                                                                  \
		cudaError_t e_ = (call);                                      \
		if (e_ != cudaSuccess) {                                      \
			ox__msg(err, errlen, "%s: %s", #call,                     \
			    cudaGetErrorString(e_));                          \
			rc = FERRY_BACKEND;                                   \
			goto fail;                                            \
		}                                                             \
	} while (0)

#define CKB(call)                                                             \
	do {                                                                  \
		cublasStatus_t s_ = (call);                                   \
		if (s_ != CUBLAS_STATUS_SUCCESS) {                            \
			ox__msg(err, errlen, "%s: cuBLAS status %d", #call,       \
			    (int)s_);                                         \
			rc = FERRY_BACKEND;                                   \
			goto fail;                                            \
		}                                                             \
	} while (0)

static uint64_t ox__mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t ox__align_up(size_t n)
{
	return (n + OXG_ALIGN - 1) & ~(size_t)(OXG_ALIGN - 1);
}

extern "C" int ox_cuda_device_count(void)
{
	int n = 0;

	/* Without a driver this fails (cudaErrorInsufficientDriver or
	 * cudaErrorNoDevice): that simply means no GPU. */
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	return n;
}

extern "C" int ox_cuda_mem_info(int device, size_t *used, size_t *total)
{
	size_t fr = 0, tot = 0;
	int prev = 0;

	if (device < 0 || device >= ox_cuda_device_count())
		return FERRY_UNAVAILABLE;
	cudaGetDevice(&prev);
	if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
		(void)cudaGetLastError();
		cudaSetDevice(prev);
		return FERRY_BACKEND;
	}
	cudaSetDevice(prev);
	*used = tot - fr;
	*total = tot;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* weights */

extern "C" void ox_cuda_weights_free(struct ox_cuda_weights *w)
{
	if (!w)
		return;
	if (w->block) {
		cudaSetDevice(w->device);
		cudaFree(w->block);
	}
	free(w->tptr);
	free(w->bn);
	free(w);
}

/* Folded BatchNorm of a step: 2 * C floats, C the output's channels. */
static size_t ox__bn_floats(const struct ox_model *m, const struct ox__step *s)
{
	return s->bn ? 2 * (size_t)m->tensors[s->out].dims[1].c : 0;
}

extern "C" int ox_cuda_weights_create(const struct ox_model *m, int device,
				  struct ox_cuda_weights **out, char *err,
				  size_t errlen)
{
	struct ox_cuda_weights *w;
	size_t total = 0, off;
	char *host = NULL;
	int rc = FERRY_ENOMEM;

	*out = NULL;
	if (device < 0 || device >= ox_cuda_device_count()) {
		ox__msg(err, errlen, "no CUDA device %d (the runtime sees %d)",
		    device, ox_cuda_device_count());
		return FERRY_UNAVAILABLE;
	}
	w = (struct ox_cuda_weights *)calloc(1, sizeof(*w));
	if (!w)
		return FERRY_ENOMEM;
	w->device = device;
	w->ntensors = m->ntensors;
	w->tptr = (float **)calloc((size_t)m->ntensors + 1, sizeof(float *));
	w->bn = (float **)calloc((size_t)m->nsteps + 1, sizeof(float *));
	if (!w->tptr || !w->bn)
		goto fail;
	/* one block: every constant, then every folded BatchNorm */
	for (int i = 0; i < m->ntensors; i++)
		if (m->tensors[i].kind == OX__T_CONST)
			total += ox__align_up((size_t)ox__numel(&m->tensors[i], 1) *
					  sizeof(float));
	for (int i = 0; i < m->nsteps; i++)
		total += ox__align_up(ox__bn_floats(m, &m->steps[i]) * sizeof(float));
	w->bytes = total;
	if (!total) {
		*out = w;
		return 0;
	}
	host = (char *)calloc(1, total);
	if (!host)
		goto fail;
	CK(cudaSetDevice(device));
	CK(cudaMalloc(&w->block, total));
	off = 0;
	for (int i = 0; i < m->ntensors; i++) {
		const struct ox__tensor *t = &m->tensors[i];
		size_t b;

		if (t->kind != OX__T_CONST)
			continue;
		b = (size_t)ox__numel(t, 1) * sizeof(float);
		memcpy(host + off, t->cdata, b);
		w->tptr[i] = (float *)((char *)w->block + off);
		off += ox__align_up(b);
	}
	for (int i = 0; i < m->nsteps; i++) {
		size_t b = ox__bn_floats(m, &m->steps[i]) * sizeof(float);

		if (!b)
			continue;
		memcpy(host + off, m->steps[i].bn, b);
		w->bn[i] = (float *)((char *)w->block + off);
		off += ox__align_up(b);
	}
	CK(cudaMemcpy(w->block, host, total, cudaMemcpyHostToDevice));
	free(host);
	*out = w;
	return 0;
fail:
	free(host);
	ox_cuda_weights_free(w);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* kernels: one output element per thread, grid-stride loops */

struct ox__kstr {
	int r;
	int64_t n[OX_MAX_RANK];		/* output dims */
	int64_t sa[OX_MAX_RANK];	/* strides of the first source */
	int64_t sb[OX_MAX_RANK];	/* strides of the second source */
};

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

struct ox__kwin {
	int64_t C, H, W, oH, oW;	/* C: the group's channels for im2col */
	int64_t Ctot;			/* the input's channels */
	int64_t c0;			/* first channel of the group */
	int64_t k[2], s[2], d[2], pb[2], pe[2];
	int cip, mx;
};

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

#define LAUNCH(kern, n, ...)                                                  \
	kern<<<ox__grid_for(n), OXG_THREADS, 0, c->stream>>>(__VA_ARGS__)

/* ---------------------------------------------------------------------- */
/* steps */

static int64_t ox__prod(const int64_t *d, int from, int to)
{
	int64_t n = 1;

	for (int i = from; i < to; i++)
		n *= d[i];
	return n;
}

static void ox__nchw(const struct ox__tensor *t, int64_t B, int64_t *d)
{
	int64_t v[OX_MAX_RANK] = { 0 };
	int r = ox__shape(t, B, v);

	d[0] = v[0];
	d[1] = v[1];
	d[2] = r == 4 ? v[2] : 1;
	d[3] = v[r - 1];
}

/* Row-major C[M, N] = alpha op(A) op(B) + beta C, as cuBLAS's column-major
 * C^T = op(B)^T op(A)^T. */
static cublasStatus_t ox__rm_gemm(cublasHandle_t h, int ta, int tb, int64_t M,
			      int64_t N, int64_t K, float alpha,
			      const float *A, int64_t lda, const float *B,
			      int64_t ldb, float beta, float *C, int64_t ldc)
{
	return cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
			   ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M,
			   (int)K, &alpha, B, (int)ldb, A, (int)lda, &beta, C,
			   (int)ldc);
}

static cublasStatus_t ox__s_gemm(struct ox_cuda_ctx *c, const struct ox__step *s,
			     int64_t B)
{
	const struct ox_model *m = c->m;
	float *const *ptr = c->ptr;
	int64_t ad[2], bd[2], yd[2];
	float beta = 0.0f;

	ox__shape(&m->tensors[s->in[0]], B, ad);
	ox__shape(&m->tensors[s->in[1]], B, bd);
	ox__shape(&m->tensors[s->out], B, yd);
	if (s->nin > 2 && s->in[2] >= 0 && s->beta != 0.0f) {
		const struct ox__tensor *ct = &m->tensors[s->in[2]];
		int64_t c0 = 1, c1 = 1;

		if (ct->rank == 2) {
			c0 = ox__dimv(ct->dims[0], B);
			c1 = ox__dimv(ct->dims[1], B);
		} else if (ct->rank == 1) {
			c1 = ox__dimv(ct->dims[0], B);
		}
		LAUNCH(k_bcast_c, yd[0] * yd[1], ptr[s->in[2]], ptr[s->out],
		       yd[0], yd[1], c0, c1, s->beta);
		beta = 1.0f;
	}
	return ox__rm_gemm(c->blas, s->trans_a, s->trans_b, yd[0], yd[1],
		       s->trans_a ? ad[0] : ad[1], s->alpha, ptr[s->in[0]],
		       ad[1], ptr[s->in[1]], bd[1], beta, ptr[s->out], yd[1]);
}

static cublasStatus_t ox__s_matmul(struct ox_cuda_ctx *c, const struct ox__step *s,
			       int64_t B)
{
	const struct ox_model *m = c->m;
	int64_t ad[OX_MAX_RANK] = { 0 }, bd[OX_MAX_RANK] = { 0 };
	int ra = ox__shape(&m->tensors[s->in[0]], B, ad);
	int rb = ox__shape(&m->tensors[s->in[1]], B, bd);
	const float *a = c->ptr[s->in[0]], *b = c->ptr[s->in[1]];
	float *y = c->ptr[s->out];
	int64_t M = ra >= 2 ? ad[ra - 2] : 1, K = ad[ra - 1];
	int64_t N = rb >= 2 ? bd[rb - 1] : 1;
	int nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
	int nbo = nba > nbb ? nba : nbb;
	int64_t od[OX_MAX_RANK], sa[OX_MAX_RANK], sb[OX_MAX_RANK];
	int64_t idx[OX_MAX_RANK] = { 0 }, total = 1;
	int64_t stra = M * K, strb = K * N;
	const float one = 1.0f, zero = 0.0f;
	cublasStatus_t st = CUBLAS_STATUS_SUCCESS;

	if (nbb == 0)
		return ox__rm_gemm(c->blas, 0, 0, ox__prod(ad, 0, nba) * M, N, K, 1.0f,
			       a, K, b, N, 0.0f, y, N);
	for (int i = nbo - 1; i >= 0; i--) {
		int ia = i - (nbo - nba), ib = i - (nbo - nbb);
		int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;

		od[i] = da > db ? da : db;
		sa[i] = da == 1 ? 0 : stra;
		sb[i] = db == 1 ? 0 : strb;
		stra *= da;
		strb *= db;
		total *= od[i];
	}
	if (nbo == 1)
		return cublasSgemmStridedBatched(
			c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M,
			(int)K, &one, b, (int)N, sb[0], a, (int)K, sa[0],
			&zero, y, (int)N, M * N, (int)total);
	for (int64_t it = 0; it < total && st == CUBLAS_STATUS_SUCCESS; it++) {
		int64_t oa = 0, ob = 0;

		for (int i = 0; i < nbo; i++) {
			oa += idx[i] * sa[i];
			ob += idx[i] * sb[i];
		}
		st = ox__rm_gemm(c->blas, 0, 0, M, N, K, 1.0f, a + oa, K, b + ob,
			     N, 0.0f, y + it * M * N, N);
		for (int i = nbo - 1; i >= 0; i--) {
			if (++idx[i] < od[i])
				break;
			idx[i] = 0;
		}
	}
	return st;
}

static void ox__s_binary(struct ox_cuda_ctx *c, const struct ox__step *s, int64_t B)
{
	const struct ox_model *m = c->m;
	int64_t ad[OX_MAX_RANK] = { 0 }, bd[OX_MAX_RANK] = { 0 };
	struct ox__kstr k;
	int ra = ox__shape(&m->tensors[s->in[0]], B, ad);
	int rb = ox__shape(&m->tensors[s->in[1]], B, bd);
	int ro = ox__shape(&m->tensors[s->out], B, k.n);
	int64_t stra = 1, strb = 1;

	for (int i = ro - 1; i >= 0; i--) {
		int ia = i - (ro - ra), ib = i - (ro - rb);
		int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;

		k.sa[i] = da == 1 ? 0 : stra;
		k.sb[i] = db == 1 ? 0 : strb;
		stra *= da;
		strb *= db;
	}
	k.r = ro;
	LAUNCH(k_binary, ox__prod(k.n, 0, ro), (int)s->op, c->ptr[s->in[0]],
	       c->ptr[s->in[1]], c->ptr[s->out], ox__prod(k.n, 0, ro), k);
}

static void ox__s_transpose(struct ox_cuda_ctx *c, const struct ox__step *s,
			int64_t B)
{
	const struct ox_model *m = c->m;
	int64_t xd[OX_MAX_RANK] = { 0 }, xs[OX_MAX_RANK];
	struct ox__kstr k;
	int r = ox__shape(&m->tensors[s->in[0]], B, xd);

	ox__shape(&m->tensors[s->out], B, k.n);
	k.r = r;
	if (r > 0) {
		xs[r - 1] = 1;
		for (int i = r - 2; i >= 0; i--)
			xs[i] = xs[i + 1] * xd[i + 1];
	}
	for (int i = 0; i < r; i++) {
		k.sa[i] = xs[s->perm[i]];
		k.sb[i] = 0;
	}
	LAUNCH(k_gather, ox__prod(k.n, 0, r), c->ptr[s->in[0]], c->ptr[s->out],
	       ox__prod(k.n, 0, r), k);
}

static cudaError_t ox__s_concat(struct ox_cuda_ctx *c, const struct ox__step *s,
			    int64_t B)
{
	const struct ox_model *m = c->m;
	int64_t od[OX_MAX_RANK] = { 0 };
	int r = ox__shape(&m->tensors[s->out], B, od);
	int64_t outer = ox__prod(od, 0, s->axis), inner = ox__prod(od, s->axis + 1, r);
	int64_t rowo = od[s->axis] * inner, off = 0;
	cudaError_t e = cudaSuccess;

	for (int k = 0; k < s->nin && e == cudaSuccess; k++) {
		int64_t rowk = ox__dimv(m->tensors[s->in[k]].dims[s->axis], B) *
			       inner;

		if (rowk && outer)
			e = cudaMemcpy2DAsync(c->ptr[s->out] + off,
					      (size_t)rowo * sizeof(float),
					      c->ptr[s->in[k]],
					      (size_t)rowk * sizeof(float),
					      (size_t)rowk * sizeof(float),
					      (size_t)outer,
					      cudaMemcpyDeviceToDevice,
					      c->stream);
		off += rowk;
	}
	return e;
}

static struct ox__kwin ox__make_win(const struct ox__win *w, const int64_t *xd,
			    const int64_t *yd)
{
	struct ox__kwin k;

	memset(&k, 0, sizeof(k));
	k.C = xd[1];
	k.Ctot = xd[1];
	k.H = xd[2];
	k.W = xd[3];
	k.oH = yd[2];
	k.oW = yd[3];
	for (int i = 0; i < 2; i++) {
		k.k[i] = w->k[i];
		k.s[i] = w->s[i];
		k.d[i] = w->d[i];
		k.pb[i] = w->pb[i];
		k.pe[i] = w->pe[i];
	}
	k.cip = w->count_include_pad;
	return k;
}

static int ox__conv_direct(const struct ox__win *w)
{
	return w->k[0] == 1 && w->k[1] == 1 && w->s[0] == 1 && w->s[1] == 1 &&
	       w->pb[0] == 0 && w->pb[1] == 0 && w->pe[0] == 0 &&
	       w->pe[1] == 0;
}

/* Scratch of a convolution on the GPU: the im2col of one group for the
 * whole batch, so one strided-batched GEMM covers every image. */
static size_t ox__conv_scratch(const struct ox_model *m, const struct ox__step *s,
			   int64_t B)
{
	int64_t xd[4], yd[4];

	if (s->op != OX__OP_CONV || ox__conv_direct(&s->win))
		return 0;
	ox__nchw(&m->tensors[s->in[0]], B, xd);
	ox__nchw(&m->tensors[s->out], B, yd);
	return (size_t)xd[0] * (size_t)(xd[1] / s->win.group) *
	       (size_t)(s->win.k[0] * s->win.k[1]) * (size_t)(yd[2] * yd[3]);
}

static cublasStatus_t ox__s_conv(struct ox_cuda_ctx *c, const struct ox__step *s,
			     int64_t B)
{
	const struct ox_model *m = c->m;
	const struct ox__win *w = &s->win;
	int64_t xd[4], yd[4];
	const float *x = c->ptr[s->in[0]], *wt = c->ptr[s->in[1]];
	const float *bias = s->nin > 2 && s->in[2] >= 0 ? c->ptr[s->in[2]] :
							   NULL;
	float *y = c->ptr[s->out];
	const float one = 1.0f, zero = 0.0f;
	cublasStatus_t st = CUBLAS_STATUS_SUCCESS;

	ox__nchw(&m->tensors[s->in[0]], B, xd);
	ox__nchw(&m->tensors[s->out], B, yd);

	int64_t N = xd[0], C = xd[1], M = yd[1], P = yd[2] * yd[3];
	int64_t g = w->group, Cg = C / g, Mg = M / g;
	int64_t Kc = Cg * w->k[0] * w->k[1];
	struct ox__kwin kw = ox__make_win(w, xd, yd);

	kw.C = Cg;
	for (int64_t gi = 0; gi < g && st == CUBLAS_STATUS_SUCCESS; gi++) {
		const float *src = x + gi * Cg * xd[2] * xd[3];
		int64_t sstride = C * xd[2] * xd[3];

		if (!ox__conv_direct(w)) {
			kw.c0 = gi * Cg;
			LAUNCH(k_im2col, N * Kc * P, x, c->scratch, N, kw);
			src = c->scratch;
			sstride = Kc * P;
		}
		/* per image n: Y_n[Mg, P] = W_g[Mg, Kc] col_n[Kc, P] */
		st = cublasSgemmStridedBatched(
			c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)P, (int)Mg,
			(int)Kc, &one, src, (int)P, sstride,
			wt + gi * Mg * Kc, (int)Kc, 0, &zero, y + gi * Mg * P,
			(int)P, M * P, (int)N);
	}
	if (bias && st == CUBLAS_STATUS_SUCCESS)
		LAUNCH(k_bias, N * M * P, y, bias, N * M * P, M, P);
	return st;
}

static int ox__run_step(struct ox_cuda_ctx *c, int si, int64_t B, char *err,
		    size_t errlen)
{
	const struct ox_model *m = c->m;
	const struct ox__step *s = &m->steps[si];
	float *const *ptr = c->ptr;
	int64_t n = ox__numel(&m->tensors[s->out], B);
	cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
	cudaError_t ce = cudaSuccess;

	switch (s->op) {
	case OX__OP_COPY:
		ce = cudaMemcpyAsync(ptr[s->out], ptr[s->in[0]],
				     (size_t)n * sizeof(float),
				     cudaMemcpyDeviceToDevice, c->stream);
		break;
	case OX__OP_GEMM:
		bs = ox__s_gemm(c, s, B);
		break;
	case OX__OP_MATMUL:
		bs = ox__s_matmul(c, s, B);
		break;
	case OX__OP_ADD:
	case OX__OP_SUB:
	case OX__OP_MUL:
	case OX__OP_DIV:
		ox__s_binary(c, s, B);
		break;
	case OX__OP_RELU:
	case OX__OP_LEAKYRELU:
	case OX__OP_ELU:
	case OX__OP_SIGMOID:
	case OX__OP_TANH:
		LAUNCH(k_unary, n, (int)s->op, ptr[s->in[0]], ptr[s->out], n,
		       s->alpha);
		break;
	case OX__OP_SOFTMAX:
	case OX__OP_LOGSOFTMAX: {
		int64_t d[OX_MAX_RANK] = { 0 };
		int r = ox__shape(&m->tensors[s->out], B, d);
		int64_t outer = ox__prod(d, 0, s->axis), inner = ox__prod(d, s->axis + 1, r);

		LAUNCH(k_softmax, outer * inner, ptr[s->in[0]], ptr[s->out],
		       outer, d[s->axis], inner, s->op == OX__OP_LOGSOFTMAX);
		break;
	}
	case OX__OP_TRANSPOSE:
		ox__s_transpose(c, s, B);
		break;
	case OX__OP_CONCAT:
		ce = ox__s_concat(c, s, B);
		break;
	case OX__OP_BATCHNORM: {
		int64_t d[OX_MAX_RANK] = { 0 };
		int r = ox__shape(&m->tensors[s->out], B, d);

		LAUNCH(k_affine, n, ptr[s->in[0]], ptr[s->out], c->w->bn[si], n,
		       d[1], ox__prod(d, 2, r));
		break;
	}
	case OX__OP_CONV:
		bs = ox__s_conv(c, s, B);
		break;
	case OX__OP_MAXPOOL:
	case OX__OP_AVGPOOL: {
		int64_t xd[4], yd[4];

		ox__nchw(&m->tensors[s->in[0]], B, xd);
		ox__nchw(&m->tensors[s->out], B, yd);
		struct ox__kwin kw = ox__make_win(&s->win, xd, yd);

		kw.mx = s->op == OX__OP_MAXPOOL;
		LAUNCH(k_pool, n, ptr[s->in[0]], ptr[s->out], xd[0] * xd[1], kw);
		break;
	}
	case OX__OP_GLOBALAVGPOOL: {
		int64_t d[OX_MAX_RANK] = { 0 };
		int r = ox__shape(&m->tensors[s->in[0]], B, d);

		LAUNCH(k_gap, d[0] * d[1], ptr[s->in[0]], ptr[s->out],
		       d[0] * d[1], ox__prod(d, 2, r));
		break;
	}
	}
	if (bs != CUBLAS_STATUS_SUCCESS) {
		ox__msg(err, errlen, "cuBLAS failed in step %d: status %d", si,
		    (int)bs);
		return FERRY_BACKEND;
	}
	if (ce == cudaSuccess)
		ce = cudaGetLastError();
	if (ce != cudaSuccess) {
		ox__msg(err, errlen, "CUDA failed in step %d: %s", si,
		    cudaGetErrorString(ce));
		return FERRY_BACKEND;
	}
	return 0;
}

/* The forward pass at batch B, enqueued on the stream; copies outputs that
 * are not written in place (inputs, constants, repeats) too. */
static int ox__forward(struct ox_cuda_ctx *c, int64_t B, char *err, size_t errlen)
{
	const struct ox_model *m = c->m;
	int rc;

	for (int i = 0; i < m->nsteps; i++)
		if ((rc = ox__run_step(c, i, B, err, errlen)))
			return rc;
	for (int i = 0; i < m->noutputs; i++) {
		int t = m->outputs[i].tensor;
		cudaError_t e;

		if (m->tensors[t].graph_out == i)
			continue;
		e = cudaMemcpyAsync(c->dout[i], c->ptr[t],
				    (size_t)ox__numel(&m->tensors[t], B) *
				    sizeof(float), cudaMemcpyDeviceToDevice,
				    c->stream);
		if (e != cudaSuccess) {
			ox__msg(err, errlen, "output copy: %s", cudaGetErrorString(e));
			return FERRY_BACKEND;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* contexts */

extern "C" void ox_cuda_ctx_free(struct ox_cuda_ctx *c)
{
	if (!c)
		return;
	cudaSetDevice(c->device);
	if (c->stream)
		cudaStreamSynchronize(c->stream);
	if (c->graphs)
		for (int b = 0; b <= c->max_batch; b++)
			if (c->graphs[b])
				cudaGraphExecDestroy(c->graphs[b]);
	if (c->blas)
		cublasDestroy(c->blas);
	if (c->ev_start)
		cudaEventDestroy(c->ev_start);
	if (c->ev_in)
		cudaEventDestroy(c->ev_in);
	if (c->ev_fwd)
		cudaEventDestroy(c->ev_fwd);
	if (c->ev_end)
		cudaEventDestroy(c->ev_end);
	if (c->stream)
		cudaStreamDestroy(c->stream);
	cudaFree(c->arena);
	cudaFree(c->ws);
	free(c->graphs);
	free(c->ptr);
	free(c->din);
	free(c->dout);
	free(c);
}

extern "C" int ox_cuda_ctx_create(const struct ox_model *m, struct ox_cuda_weights *w,
			      int max_batch, int graphs, struct ox_cuda_ctx **out,
			      char *err, size_t errlen)
{
	struct ox_cuda_ctx *c;
	size_t *off = NULL, arena = 0, cpu_scratch = 0, scratch = 0, total;
	size_t in_off, out_off;
	int rc = FERRY_ENOMEM;

	*out = NULL;
	if (!m || !w || max_batch < 1)
		return FERRY_EINVAL;
	if (!ox_model_num_inputs(m) || max_batch > 1 << 20)
		return FERRY_EINVAL;
	/* ox_ctx_create's rule: no batch dimension, one row */
	if (!m->batched)
		max_batch = 1;
	c = (struct ox_cuda_ctx *)calloc(1, sizeof(*c));
	if (!c)
		return FERRY_ENOMEM;
	c->m = m;
	c->w = w;
	c->device = w->device;
	c->max_batch = max_batch;
	c->use_graphs = graphs;
	c->ptr = (float **)calloc((size_t)m->ntensors + 1, sizeof(float *));
	c->din = (float **)calloc((size_t)m->ninputs + 1, sizeof(float *));
	c->dout = (float **)calloc((size_t)m->noutputs + 1, sizeof(float *));
	c->graphs = (cudaGraphExec_t *)calloc((size_t)max_batch + 1,
					      sizeof(cudaGraphExec_t));
	off = (size_t *)calloc((size_t)m->ntensors + 1, sizeof(size_t));
	if (!c->ptr || !c->din || !c->dout || !c->graphs || !off)
		goto fail;
	rc = ox__plan(m, max_batch, off, &arena, &cpu_scratch);
	if (rc) {
		ox__msg(err, errlen, "a tensor exceeds INT_MAX elements at batch %d",
		    max_batch);
		goto fail;
	}
	rc = FERRY_E2BIG;
	for (int i = 0; i < m->nsteps; i++) {
		size_t n = ox__conv_scratch(m, &m->steps[i], max_batch);

		scratch = n > scratch ? n : scratch;
	}
	/* layout: arena | scratch | inputs | outputs */
	total = ox__align_up(arena) + ox__align_up(scratch * sizeof(float));
	in_off = total;
	for (int i = 0; i < m->ninputs; i++)
		total += ox__align_up(ox_tensor_numel(&m->inputs[i].info, max_batch) *
				  sizeof(float));
	out_off = total;
	for (int i = 0; i < m->noutputs; i++)
		total += ox__align_up(ox_tensor_numel(&m->outputs[i].info, max_batch) *
				  sizeof(float));
	c->bytes = total;
	CK(cudaSetDevice(c->device));
	CK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
	CK(cudaEventCreate(&c->ev_start));
	CK(cudaEventCreate(&c->ev_in));
	CK(cudaEventCreate(&c->ev_fwd));
	CK(cudaEventCreate(&c->ev_end));
	CK(cudaMalloc(&c->arena, total ? total : OXG_ALIGN));
	CK(cudaMalloc(&c->ws, OXG_CUBLAS_WS));
	CKB(cublasCreate(&c->blas));
	CKB(cublasSetStream(c->blas, c->stream));
	CKB(cublasSetWorkspace(c->blas, c->ws, OXG_CUBLAS_WS));
	/* the CPU's order of summation, not TF32: outputs must match */
	CKB(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
	c->scratch = (float *)((char *)c->arena + ox__align_up(arena));
	for (int i = 0; i < m->ninputs; i++) {
		c->din[i] = (float *)((char *)c->arena + in_off);
		c->ptr[m->inputs[i].tensor] = c->din[i];
		in_off += ox__align_up(ox_tensor_numel(&m->inputs[i].info,
						   max_batch) * sizeof(float));
	}
	for (int i = 0; i < m->noutputs; i++) {
		int t = m->outputs[i].tensor;

		c->dout[i] = (float *)((char *)c->arena + out_off);
		if (m->tensors[t].graph_out == i)
			c->ptr[t] = c->dout[i];
		out_off += ox__align_up(ox_tensor_numel(&m->outputs[i].info,
						    max_batch) * sizeof(float));
	}
	for (int i = 0; i < m->ntensors; i++) {
		if (off[i] != SIZE_MAX)
			c->ptr[i] = (float *)((char *)c->arena + off[i]);
		else if (m->tensors[i].kind == OX__T_CONST)
			c->ptr[i] = w->tptr[i];
	}
	free(off);
	*out = c;
	return 0;
fail:
	free(off);
	ox_cuda_ctx_free(c);
	return rc;
}

extern "C" size_t ox_cuda_ctx_device_bytes(const struct ox_cuda_ctx *c)
{
	return c ? c->bytes + OXG_CUBLAS_WS : 0;
}

extern "C" int ox_cuda_ctx_graphs(const struct ox_cuda_ctx *c)
{
	return c ? c->ngraphs : 0;
}

/* Replay batch B's graph, capturing it first; falls back to a plain
 * forward pass where capture fails (and stops trying). */
static int ox__launch(struct ox_cuda_ctx *c, int B, char *err, size_t errlen)
{
	cudaGraph_t g = NULL;
	int rc;

	if (!c->use_graphs)
		return ox__forward(c, B, err, errlen);
	if (c->graphs[B])
		goto replay;
	if (cudaStreamBeginCapture(c->stream,
				   cudaStreamCaptureModeThreadLocal) !=
	    cudaSuccess)
		goto give_up;
	rc = ox__forward(c, B, err, errlen);
	if (cudaStreamEndCapture(c->stream, &g) != cudaSuccess || rc || !g)
		goto give_up;
	if (cudaGraphInstantiate(&c->graphs[B], g, 0) != cudaSuccess) {
		c->graphs[B] = NULL;
		goto give_up;
	}
	cudaGraphDestroy(g);
	c->ngraphs++;
replay:
	if (cudaGraphLaunch(c->graphs[B], c->stream) != cudaSuccess) {
		ox__msg(err, errlen, "cudaGraphLaunch: %s",
		    cudaGetErrorString(cudaGetLastError()));
		return FERRY_BACKEND;
	}
	return 0;
give_up:
	if (g)
		cudaGraphDestroy(g);
	(void)cudaGetLastError();
	c->use_graphs = 0;
	return ox__forward(c, B, err, errlen);
}

extern "C" int ox_cuda_run(struct ox_cuda_ctx *c, int nparts,
		       const struct ox_cuda_part *parts, uint64_t *input_end_ns,
		       uint64_t *infer_end_ns, char *err, size_t errlen)
{
	const struct ox_model *m;
	int B = 0, rc = 0;
	float ms_in = 0, ms_fwd = 0;
	uint64_t end;

	if (!c || nparts < 1 || !parts)
		return FERRY_EINVAL;
	m = c->m;
	for (int p = 0; p < nparts; p++) {
		if (parts[p].batch < 1 || !parts[p].in || !parts[p].out)
			return FERRY_EINVAL;
		B += parts[p].batch;
	}
	if (B > c->max_batch || (!m->batched && nparts != 1))
		return FERRY_EINVAL;
	CK(cudaSetDevice(c->device));
	CK(cudaEventRecord(c->ev_start, c->stream));
	/* gather: each part's rows land at its offset in the device buffer */
	for (int i = 0; i < m->ninputs; i++) {
		size_t row = ox_tensor_numel(&m->inputs[i].info, 1) *
			     sizeof(float);
		size_t at = 0;

		for (int p = 0; p < nparts; p++) {
			size_t b = row * (size_t)parts[p].batch;

			/* Default: host memory (a registered arena) or
			 * device memory (a client's CUDA IPC region) alike,
			 * told apart by unified addressing */
			CK(cudaMemcpyAsync((char *)c->din[i] + at, parts[p].in[i],
					   b, cudaMemcpyDefault, c->stream));
			at += b;
		}
	}
	CK(cudaEventRecord(c->ev_in, c->stream));
	if ((rc = ox__launch(c, B, err, errlen)))
		goto fail;
	CK(cudaEventRecord(c->ev_fwd, c->stream));
	for (int i = 0; i < m->noutputs; i++) {
		size_t row = ox_tensor_numel(&m->outputs[i].info, 1) *
			     sizeof(float);
		size_t at = 0;

		for (int p = 0; p < nparts; p++) {
			size_t b = row * (size_t)parts[p].batch;

			if (parts[p].out[i])
				CK(cudaMemcpyAsync(parts[p].out[i],
						   (char *)c->dout[i] + at, b,
						   cudaMemcpyDefault, c->stream));
			at += b;
		}
	}
	CK(cudaEventRecord(c->ev_end, c->stream));
	CK(cudaStreamSynchronize(c->stream));
	end = ox__mono_ns();
	/* map the device timeline onto the host clock from the end */
	if (cudaEventElapsedTime(&ms_in, c->ev_in, c->ev_end) != cudaSuccess ||
	    cudaEventElapsedTime(&ms_fwd, c->ev_fwd, c->ev_end) != cudaSuccess)
		ms_in = ms_fwd = 0;
	if (input_end_ns)
		*input_end_ns = end - (uint64_t)((double)ms_in * 1e6);
	if (infer_end_ns)
		*infer_end_ns = end - (uint64_t)((double)ms_fwd * 1e6);
	return 0;
fail:
	/* leave the stream idle for the next call */
	cudaStreamSynchronize(c->stream);
	(void)cudaGetLastError();
	return rc ? rc : FERRY_BACKEND;
}

/* ---------------------------------------------------------------------- */
/* host memory and devices */

extern "C" int ox_cuda_host_register(void *base, size_t bytes)
{
	if (!base || !bytes)
		return FERRY_EINVAL;
	if (ox_cuda_device_count() < 1)
		return FERRY_UNAVAILABLE;
	if (cudaHostRegister(base, bytes, cudaHostRegisterPortable) !=
	    cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_BACKEND;
	}
	return 0;
}

extern "C" int ox_cuda_host_unregister(void *base)
{
	if (!base)
		return FERRY_EINVAL;
	if (ox_cuda_device_count() < 1)
		return FERRY_UNAVAILABLE;
	if (cudaHostUnregister(base) != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_EINVAL;
	}
	return 0;
}

extern "C" int ox_cuda_pci_bus_id(int device, char *buf, size_t len)
{
	if (!buf || len < 16)
		return FERRY_EINVAL;
	if (device < 0 || device >= ox_cuda_device_count())
		return FERRY_UNAVAILABLE;
	if (cudaDeviceGetPCIBusId(buf, (int)len, device) != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_BACKEND;
	}
	/* sysfs spells the hex digits in lower case */
	for (char *p = buf; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

/* ---------------------------------------------------------------------- */
/* CUDA IPC regions of local clients */

typedef int (*ox_cuda_addr_range_fn)(unsigned long long *base, size_t *size,
					unsigned long long dptr);

extern "C" int ox_cuda_ipc_open(const void *handle, size_t handle_len,
			    const char *pci_bus_id, int device, uint64_t bytes,
			    void **dptr, int *device_out, char *err, size_t errlen)
{
	cudaIpcMemHandle_t h;
	cudaError_t ce;
	int dev = device, prev = 0;
	void *p = NULL;

	if (!handle || !dptr || !device_out) {
		snprintf(err, errlen, "NULL argument");
		return FERRY_EINVAL;
	}
	if (handle_len != sizeof(h)) {
		snprintf(err, errlen, "a CUDA IPC handle has %zu bytes, not %zu",
			 sizeof(h), handle_len);
		return FERRY_EINVAL;
	}
	if (bytes == 0) {
		snprintf(err, errlen, "a CUDA region of 0 bytes");
		return FERRY_EINVAL;
	}
	if (ox_cuda_device_count() < 1) {
		snprintf(err, errlen, "this ferryd sees no CUDA device");
		return FERRY_UNAVAILABLE;
	}
	/* The client's device ordinal may not be ours (CUDA_VISIBLE_DEVICES
	 * differs between processes): the PCI bus id names the card. */
	if (pci_bus_id && *pci_bus_id) {
		if (cudaDeviceGetByPCIBusId(&dev, pci_bus_id) != cudaSuccess) {
			(void)cudaGetLastError();
			snprintf(err, errlen, "no CUDA device at PCI bus id %.32s visible to ferryd",
				 pci_bus_id);
			return FERRY_ENOENT;
		}
	} else if (dev < 0 || dev >= ox_cuda_device_count()) {
		snprintf(err, errlen, "no CUDA device %d", dev);
		return FERRY_ENOENT;
	}
	memcpy(&h, handle, sizeof(h));
	cudaGetDevice(&prev);
	if (cudaSetDevice(dev) != cudaSuccess) {
		(void)cudaGetLastError();
		snprintf(err, errlen, "cannot use CUDA device %d", dev);
		return FERRY_BACKEND;
	}
	ce = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
	if (ce != cudaSuccess) {
		(void)cudaGetLastError();
		cudaSetDevice(prev);
		snprintf(err, errlen, "cudaIpcOpenMemHandle: %s (a bogus, freed or "
			 "already-closed handle, or one from this process)",
			 cudaGetErrorString(ce));
		return FERRY_EINVAL;
	}
	/* The mapping covers the whole allocation the handle was made from;
	 * its size must hold what the client declared. */
	{
		void *fn = NULL;
		cudaDriverEntryPointQueryResult q;
		unsigned long long base = 0;
		size_t size = 0;

		if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000,
						     cudaEnableDefault, &q) == cudaSuccess &&
		    fn && q == cudaDriverEntryPointSuccess &&
		    ((ox_cuda_addr_range_fn)fn)(&base, &size, (unsigned long long)(uintptr_t)p) == 0) {
			if (base != (unsigned long long)(uintptr_t)p || size < bytes) {
				cudaIpcCloseMemHandle(p);
				cudaSetDevice(prev);
				snprintf(err, errlen, "the shared allocation has %zu bytes, "
					 "%llu were declared", size, (unsigned long long)bytes);
				return FERRY_EINVAL;
			}
		} else {
			(void)cudaGetLastError();
			cudaIpcCloseMemHandle(p);
			cudaSetDevice(prev);
			snprintf(err, errlen, "cannot check the size of the shared allocation "
				 "(cuMemGetAddressRange unavailable)");
			return FERRY_BACKEND;
		}
	}
	cudaSetDevice(prev);
	*dptr = p;
	*device_out = dev;
	return 0;
}

extern "C" int ox_cuda_ipc_close(void *dptr, int device)
{
	int prev = 0;
	cudaError_t ce;

	if (!dptr)
		return FERRY_EINVAL;
	cudaGetDevice(&prev);
	cudaSetDevice(device);
	ce = cudaIpcCloseMemHandle(dptr);
	cudaSetDevice(prev);
	if (ce != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_EINVAL;
	}
	return 0;
}
