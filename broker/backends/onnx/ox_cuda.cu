/* SPDX-License-Identifier: MIT */
/*
 * ox_cuda.cu - the ONNX executor on CUDA (see ox_cuda.h): the module
 * ox_cuda.so's weights, contexts, steps and graph runner; the kernels are
 * in ox_cuda_kernels.cu
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
#include "ox_cuda_int.h"

#define OXG_ALIGN 256
/* cuBLAS's recommended workspace on Hopper; set so that it never
 * allocates inside a graph capture. */
#define OXG_CUBLAS_WS (32u << 20)

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

/* CUDA devices the runtime sees; 0 without a driver or a device. */
static int ox__device_count(void)
{
	int n = 0;

	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	return n;
}

static size_t ox__align_up(size_t n)
{
	return (n + OXG_ALIGN - 1) & ~(size_t)(OXG_ALIGN - 1);
}

/* ---------------------------------------------------------------------- */
/* weights */

static void ox__weights_free(struct ox_cuda_weights *w)
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

static int ox__weights_create(const struct ox_model *m, int device,
				  struct ox_cuda_weights **out, char *err,
				  size_t errlen)
{
	struct ox_cuda_weights *w;
	size_t total = 0, off;
	char *host = NULL;
	int rc = FERRY_ENOMEM;

	*out = NULL;
	if (device < 0 || device >= ox__device_count()) {
		ox__msg(err, errlen, "no CUDA device %d (the runtime sees %d)",
		    device, ox__device_count());
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
	ox__weights_free(w);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* steps */

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
		ox__gk_bcast_c(c->stream, ptr[s->in[2]], ptr[s->out], yd[0], yd[1], c0, c1,
			       s->beta);
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
	ox__gk_binary(c->stream, (int)s->op, c->ptr[s->in[0]], c->ptr[s->in[1]],
		      c->ptr[s->out], ox__prod(k.n, 0, ro), &k);
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
	ox__gk_gather(c->stream, c->ptr[s->in[0]], c->ptr[s->out], ox__prod(k.n, 0, r), &k);
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

/* Scratch of a convolution on the GPU: the im2col of one group (the CPU's
 * scratch for one image, ox__scratch_floats) for every image of the
 * batch, so one strided-batched GEMM covers them all. */
static size_t ox__conv_scratch(const struct ox_model *m, const struct ox__step *s,
			   int64_t B)
{
	size_t one = ox__scratch_floats(m, s, B);
	int64_t xd[4];

	if (!one || one == SIZE_MAX)
		return one;
	ox__nchw(&m->tensors[s->in[0]], B, xd);
	return (size_t)xd[0] * one;
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
			ox__gk_im2col(c->stream, x, c->scratch, N, &kw);
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
		ox__gk_bias(c->stream, y, bias, N * M * P, M, P);
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
		ox__gk_unary(c->stream, (int)s->op, ptr[s->in[0]], ptr[s->out], n, s->alpha);
		break;
	case OX__OP_SOFTMAX:
	case OX__OP_LOGSOFTMAX: {
		int64_t d[OX_MAX_RANK] = { 0 };
		int r = ox__shape(&m->tensors[s->out], B, d);
		int64_t outer = ox__prod(d, 0, s->axis), inner = ox__prod(d, s->axis + 1, r);

		ox__gk_softmax(c->stream, ptr[s->in[0]], ptr[s->out], outer, d[s->axis], inner,
			       s->op == OX__OP_LOGSOFTMAX);
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

		ox__gk_affine(c->stream, ptr[s->in[0]], ptr[s->out], c->w->bn[si], n, d[1],
			      ox__prod(d, 2, r));
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
		ox__gk_pool(c->stream, ptr[s->in[0]], ptr[s->out], xd[0] * xd[1], &kw);
		break;
	}
	case OX__OP_GLOBALAVGPOOL: {
		int64_t d[OX_MAX_RANK] = { 0 };
		int r = ox__shape(&m->tensors[s->in[0]], B, d);

		ox__gk_gap(c->stream, ptr[s->in[0]], ptr[s->out], d[0] * d[1],
			   ox__prod(d, 2, r));
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

static void ox__ctx_free(struct ox_cuda_ctx *c)
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

static int ox__ctx_create(const struct ox_model *m, struct ox_cuda_weights *w,
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
	ox__ctx_free(c);
	return rc;
}

static size_t ox__ctx_device_bytes(const struct ox_cuda_ctx *c)
{
	return c ? c->bytes + OXG_CUBLAS_WS : 0;
}

static int ox__ctx_graphs(const struct ox_cuda_ctx *c)
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

static int ox__run_batch(struct ox_cuda_ctx *c, int nparts,
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
/* the module's one exported symbol (OX_CUDA_OPS_SYMBOL) */

extern "C" __attribute__((visibility("default"))) const struct ox_cuda_ops ox_cuda_ops_v1;
const struct ox_cuda_ops ox_cuda_ops_v1 = {
	sizeof(struct ox_cuda_ops),
	ox__weights_create,
	ox__weights_free,
	ox__ctx_create,
	ox__ctx_free,
	ox__ctx_device_bytes,
	ox__ctx_graphs,
	ox__run_batch,
};
