/* SPDX-License-Identifier: MIT */
/*
 * ox_run.c - contexts and kernels of the ONNX executor
 *
 * A context owns one block of memory: the arena where intermediate tensors
 * live (laid out once for the largest batch from the tensors' lifetimes)
 * and the scratch space of the convolutions.  A run binds the caller's
 * input and output buffers, evaluates each step's shapes for the batch and
 * calls its kernel; nothing is allocated.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include <ferry/errors.h>

#include "ox_int.h"

struct ox_ctx {
	const struct ox_model *m;
	int max_batch;
	float **ptr;		/* per tensor: where its data is this run */
	void *block;		/* arena + scratch */
	size_t bytes;
	float *scratch;
};

/* ---------------------------------------------------------------------- */
/* threads */

static atomic_int ox__blas_threads_set;
static pthread_once_t ox__blas_once = PTHREAD_ONCE_INIT;

static void ox__blas_default(void)
{
	if (!atomic_load(&ox__blas_threads_set))
		openblas_set_num_threads(1);
}

void ox_set_blas_threads(int n)
{
	atomic_store(&ox__blas_threads_set, 1);
	openblas_set_num_threads(n > 0 ? n : 1);
}

/* ---------------------------------------------------------------------- */
/* kernels */

static void ox__k_gemm(const struct ox_model *m, const struct ox__step *s,
		   float *const *ptr, int64_t B)
{
	int64_t ad[2], bd[2], yd[2], cd[2] = { 1, 1 };
	const float *a = ptr[s->in[0]], *b = ptr[s->in[1]];
	float *y = ptr[s->out], beta = 0.0f;
	int64_t M, N, K;

	ox__shape(&m->tensors[s->in[0]], B, ad);
	ox__shape(&m->tensors[s->in[1]], B, bd);
	ox__shape(&m->tensors[s->out], B, yd);
	M = yd[0];
	N = yd[1];
	K = s->trans_a ? ad[0] : ad[1];
	if (s->nin > 2 && s->in[2] >= 0 && s->beta != 0.0f) {
		const struct ox__tensor *ct = &m->tensors[s->in[2]];
		const float *c = ptr[s->in[2]];
		int64_t c1;

		if (ct->rank == 2) {
			cd[0] = ox__dimv(ct->dims[0], B);
			cd[1] = ox__dimv(ct->dims[1], B);
		} else if (ct->rank == 1) {
			cd[1] = ox__dimv(ct->dims[0], B);
		}
		/* Y starts as beta * broadcast(C); sgemm then adds to it.
		 * The row cases are split out so the inner loops vectorize. */
		for (int64_t i = 0; i < M; i++) {
			const float *cr = c + (cd[0] == 1 ? 0 : i) * cd[1];
			float *yr = y + i * N;

			if (cd[1] == 1) {
				c1 = 0;
				for (int64_t j = 0; j < N; j++)
					yr[j] = s->beta * cr[c1];
			} else if (s->beta == 1.0f) {
				memcpy(yr, cr, (size_t)N * sizeof(float));
			} else {
				for (int64_t j = 0; j < N; j++)
					yr[j] = s->beta * cr[j];
			}
		}
		beta = 1.0f;
	}
	cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
		    s->trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N,
		    (int)K, s->alpha, a, (int)ad[1], b, (int)bd[1], beta, y,
		    (int)N);
}

static void ox__k_matmul(const struct ox_model *m, const struct ox__step *s,
		     float *const *ptr, int64_t B)
{
	const struct ox__tensor *ta = &m->tensors[s->in[0]];
	const struct ox__tensor *tb = &m->tensors[s->in[1]];
	int64_t ad[OX_MAX_RANK] = { 0 }, bd[OX_MAX_RANK] = { 0 };
	int ra = ox__shape(ta, B, ad), rb = ox__shape(tb, B, bd);
	const float *a = ptr[s->in[0]], *b = ptr[s->in[1]];
	float *y = ptr[s->out];
	int64_t M = ra >= 2 ? ad[ra - 2] : 1, K = ad[ra - 1];
	int64_t N = rb >= 2 ? bd[rb - 1] : 1;
	int nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
	int nbo = nba > nbb ? nba : nbb;
	int64_t od[OX_MAX_RANK], sa[OX_MAX_RANK], sb[OX_MAX_RANK];
	int64_t idx[OX_MAX_RANK] = { 0 }, total = 1;
	int64_t stra = M * K, strb = K * N;

	if (nbb == 0) {
		/* weights without batch dims: one product over all rows */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
			    (int)(ox__prod(ad, 0, nba) * M), (int)N, (int)K, 1.0f,
			    a, (int)K, b, (int)N, 0.0f, y, (int)N);
		return;
	}
	/* broadcast batch dims, right-aligned; strides 0 where broadcast */
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
	for (int64_t it = 0; it < total; it++) {
		int64_t oa = 0, ob = 0;

		for (int i = 0; i < nbo; i++) {
			oa += idx[i] * sa[i];
			ob += idx[i] * sb[i];
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M,
			    (int)N, (int)K, 1.0f, a + oa, (int)K, b + ob,
			    (int)N, 0.0f, y + it * M * N, (int)N);
		for (int i = nbo - 1; i >= 0; i--) {
			if (++idx[i] < od[i])
				break;
			idx[i] = 0;
		}
	}
}

#define BIN_LOOP(EXPR)                                                        \
	for (int64_t i = 0; i < n; i++) {                                     \
		float x = a[i * sa], z = b[i * sb];                            \
		y[i] = (EXPR);                                                \
	}

static void ox__bin_inner(enum ox__op op, const float *a, int64_t sa,
		      const float *b, int64_t sb, float *y, int64_t n)
{
	switch (op) {
	case OX__OP_ADD:
		BIN_LOOP(x + z);
		break;
	case OX__OP_SUB:
		BIN_LOOP(x - z);
		break;
	case OX__OP_MUL:
		BIN_LOOP(x * z);
		break;
	default:
		BIN_LOOP(x / z);
		break;
	}
}

static void ox__k_binary(const struct ox_model *m, const struct ox__step *s,
		     float *const *ptr, int64_t B)
{
	const struct ox__tensor *ta = &m->tensors[s->in[0]];
	const struct ox__tensor *tb = &m->tensors[s->in[1]];
	const struct ox__tensor *to = &m->tensors[s->out];
	int64_t ad[OX_MAX_RANK] = { 0 }, bd[OX_MAX_RANK] = { 0 };
	int64_t od[OX_MAX_RANK] = { 0 };
	int ra = ox__shape(ta, B, ad), rb = ox__shape(tb, B, bd);
	int ro = ox__shape(to, B, od);
	/* per-dimension size and strides, then merged where contiguous */
	int64_t n[OX_MAX_RANK], sa[OX_MAX_RANK], sb[OX_MAX_RANK];
	int64_t idx[OX_MAX_RANK] = { 0 }, outer = 1;
	int64_t stra = 1, strb = 1;
	int r = 0;
	const float *a = ptr[s->in[0]], *b = ptr[s->in[1]];
	float *y = ptr[s->out];

	for (int i = ro - 1; i >= 0; i--) {
		int ia = i - (ro - ra), ib = i - (ro - rb);
		int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
		int64_t xa = da == 1 ? 0 : stra, xb = db == 1 ? 0 : strb;

		stra *= da;
		strb *= db;
		if (od[i] == 1)
			continue;
		/* merge into the inner neighbour when both sides stay
		 * contiguous across the two dimensions */
		if (r > 0 && xa == sa[r - 1] * n[r - 1] &&
		    xb == sb[r - 1] * n[r - 1]) {
			n[r - 1] *= od[i];
			continue;
		}
		n[r] = od[i];
		sa[r] = xa;
		sb[r] = xb;
		r++;
	}
	if (r == 0) {
		ox__bin_inner(s->op, a, 0, b, 0, y, 1);
		return;
	}
	/* dims are now innermost first: n[0] is the inner loop */
	for (int i = 1; i < r; i++)
		outer *= n[i];
	for (int64_t it = 0; it < outer; it++) {
		int64_t oa = 0, ob = 0;

		for (int i = 1; i < r; i++) {
			oa += idx[i] * sa[i];
			ob += idx[i] * sb[i];
		}
		ox__bin_inner(s->op, a + oa, sa[0], b + ob, sb[0], y + it * n[0],
			  n[0]);
		for (int i = 1; i < r; i++) {
			if (++idx[i] < n[i])
				break;
			idx[i] = 0;
		}
	}
}

static void ox__k_unary(const struct ox_model *m, const struct ox__step *s,
		    float *const *ptr, int64_t B)
{
	int64_t n = ox__numel(&m->tensors[s->out], B);
	const float *x = ptr[s->in[0]];
	float *y = ptr[s->out], al = s->alpha;

	switch (s->op) {
	case OX__OP_RELU:
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] > 0.0f ? x[i] : 0.0f;
		break;
	case OX__OP_LEAKYRELU:
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] >= 0.0f ? x[i] : al * x[i];
		break;
	case OX__OP_ELU:
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] >= 0.0f ? x[i] : al * expm1f(x[i]);
		break;
	case OX__OP_SIGMOID:
		/* split by sign so that exp never overflows */
		for (int64_t i = 0; i < n; i++) {
			if (x[i] >= 0.0f) {
				y[i] = 1.0f / (1.0f + expf(-x[i]));
			} else {
				float e = expf(x[i]);

				y[i] = e / (1.0f + e);
			}
		}
		break;
	case OX__OP_TANH:
		for (int64_t i = 0; i < n; i++)
			y[i] = tanhf(x[i]);
		break;
	default:
		break;
	}
}

static void ox__k_softmax(const struct ox_model *m, const struct ox__step *s,
		      float *const *ptr, int64_t B)
{
	int64_t d[OX_MAX_RANK] = { 0 };
	int r = ox__shape(&m->tensors[s->out], B, d);
	int64_t outer = ox__prod(d, 0, s->axis), n = d[s->axis];
	int64_t inner = ox__prod(d, s->axis + 1, r);
	const float *x = ptr[s->in[0]];
	float *y = ptr[s->out];
	bool lg = s->op == OX__OP_LOGSOFTMAX;

	for (int64_t o = 0; o < outer; o++) {
		for (int64_t in = 0; in < inner; in++) {
			const float *xs = x + o * n * inner + in;
			float *ys = y + o * n * inner + in;
			float mx = -INFINITY, sum = 0.0f;

			for (int64_t i = 0; i < n; i++)
				if (xs[i * inner] > mx)
					mx = xs[i * inner];
			for (int64_t i = 0; i < n; i++) {
				float e = expf(xs[i * inner] - mx);

				if (!lg)
					ys[i * inner] = e;
				sum += e;
			}
			if (lg) {
				float ls = logf(sum);

				for (int64_t i = 0; i < n; i++)
					ys[i * inner] = xs[i * inner] - mx - ls;
			} else {
				float inv = 1.0f / sum;

				for (int64_t i = 0; i < n; i++)
					ys[i * inner] *= inv;
			}
		}
	}
}

static void ox__k_transpose(const struct ox_model *m, const struct ox__step *s,
			float *const *ptr, int64_t B)
{
	int64_t xd[OX_MAX_RANK] = { 0 }, od[OX_MAX_RANK] = { 0 }, xs[OX_MAX_RANK];
	int64_t st[OX_MAX_RANK], idx[OX_MAX_RANK] = { 0 }, outer;
	int r = ox__shape(&m->tensors[s->in[0]], B, xd);
	const float *x = ptr[s->in[0]];
	float *y = ptr[s->out];

	ox__shape(&m->tensors[s->out], B, od);
	if (r == 0) {
		y[0] = x[0];
		return;
	}
	xs[r - 1] = 1;
	for (int i = r - 2; i >= 0; i--)
		xs[i] = xs[i + 1] * xd[i + 1];
	for (int i = 0; i < r; i++)
		st[i] = xs[s->perm[i]];
	outer = ox__prod(od, 0, r - 1);
	for (int64_t it = 0; it < outer; it++) {
		int64_t off = 0, n = od[r - 1], sl = st[r - 1];
		float *yo = y + it * n;

		for (int i = 0; i < r - 1; i++)
			off += idx[i] * st[i];
		for (int64_t j = 0; j < n; j++)
			yo[j] = x[off + j * sl];
		for (int i = r - 2; i >= 0; i--) {
			if (++idx[i] < od[i])
				break;
			idx[i] = 0;
		}
	}
}

static void ox__k_concat(const struct ox_model *m, const struct ox__step *s,
		     float *const *ptr, int64_t B)
{
	int64_t od[OX_MAX_RANK] = { 0 };
	int r = ox__shape(&m->tensors[s->out], B, od);
	int64_t outer = ox__prod(od, 0, s->axis), inner = ox__prod(od, s->axis + 1, r);
	int64_t rowo = od[s->axis] * inner, off = 0;
	float *y = ptr[s->out];

	for (int k = 0; k < s->nin; k++) {
		int64_t rowk = ox__dimv(m->tensors[s->in[k]].dims[s->axis], B) *
			       inner;
		const float *x = ptr[s->in[k]];

		for (int64_t o = 0; o < outer; o++)
			memcpy(y + o * rowo + off, x + o * rowk,
			       (size_t)rowk * sizeof(float));
		off += rowk;
	}
}

static void ox__k_batchnorm(const struct ox_model *m, const struct ox__step *s,
			float *const *ptr, int64_t B)
{
	int64_t d[OX_MAX_RANK] = { 0 };
	int r = ox__shape(&m->tensors[s->out], B, d);
	int64_t C = d[1], inner = ox__prod(d, 2, r);
	const float *x = ptr[s->in[0]];
	float *y = ptr[s->out];

	if (inner == 1) {
		/* [N, C] after a Gemm: run along C so the loop vectorizes */
		for (int64_t n = 0; n < d[0]; n++)
			for (int64_t c = 0; c < C; c++)
				y[n * C + c] = x[n * C + c] * s->bn[c] +
					       s->bn[C + c];
		return;
	}
	for (int64_t n = 0; n < d[0]; n++) {
		for (int64_t c = 0; c < C; c++) {
			float a = s->bn[c], b = s->bn[C + c];
			int64_t o = (n * C + c) * inner;

			for (int64_t i = 0; i < inner; i++)
				y[o + i] = x[o + i] * a + b;
		}
	}
}

static int64_t ox__ceil_div(int64_t a, int64_t b)
{
	return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/*
 * One im2col row segment: ro[ow] = x[ow * st + off] inside [0, W), zero
 * outside.  The inside range is computed once so the copy is a memcpy at
 * stride 1 and a tight loop otherwise.
 */
static void ox__im2col_row(float *ro, const float *x, int64_t W, int64_t oW,
		       int64_t off, int64_t st)
{
	int64_t lo = ox__ceil_div(-off, st), hi = ox__ceil_div(W - off, st);

	lo = lo < 0 ? 0 : lo > oW ? oW : lo;
	hi = hi < lo ? lo : hi > oW ? oW : hi;
	if (lo > 0)
		memset(ro, 0, (size_t)lo * sizeof(float));
	if (st == 1) {
		memcpy(ro + lo, x + lo + off, (size_t)(hi - lo) * sizeof(float));
	} else {
		for (int64_t ow = lo; ow < hi; ow++)
			ro[ow] = x[ow * st + off];
	}
	if (hi < oW)
		memset(ro + hi, 0, (size_t)(oW - hi) * sizeof(float));
}

static void ox__k_conv(const struct ox_model *m, const struct ox__step *s,
		   float *const *ptr, int64_t B, float *col)
{
	const struct ox__win *w = &s->win;
	int64_t xd[4], yd[4];
	const float *x = ptr[s->in[0]], *wt = ptr[s->in[1]];
	const float *bias = s->nin > 2 && s->in[2] >= 0 ? ptr[s->in[2]] : NULL;
	float *y = ptr[s->out];

	ox__nchw(&m->tensors[s->in[0]], B, xd);
	ox__nchw(&m->tensors[s->out], B, yd);

	int64_t C = xd[1], H = xd[2], W = xd[3], M = yd[1];
	int64_t oH = yd[2], oW = yd[3], P = oH * oW, g = w->group;
	int64_t Cg = C / g, Mg = M / g, Kc = Cg * w->k[0] * w->k[1];
	bool direct = ox__conv_direct(w);

	for (int64_t n = 0; n < xd[0]; n++) {
		for (int64_t gi = 0; gi < g; gi++) {
			const float *xg = x + (n * C + gi * Cg) * H * W;
			const float *src = xg;

			if (!direct) {
				/* im2col: row (c, kh, kw), column (oh, ow) */
				for (int64_t c = 0; c < Cg; c++)
				for (int64_t kh = 0; kh < w->k[0]; kh++)
				for (int64_t kw = 0; kw < w->k[1]; kw++) {
					float *row = col + ((c * w->k[0] + kh) *
							    w->k[1] + kw) * P;
					const float *xc = xg + c * H * W;

					for (int64_t oh = 0; oh < oH; oh++) {
						int64_t ih = oh * w->s[0] - w->pb[0] +
							     kh * w->d[0];
						float *ro = row + oh * oW;

						if (ih < 0 || ih >= H) {
							memset(ro, 0, (size_t)oW * sizeof(float));
							continue;
						}
						ox__im2col_row(ro, xc + ih * W, W, oW,
							   kw * w->d[1] - w->pb[1],
							   w->s[1]);
					}
				}
				src = col;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
				    (int)Mg, (int)P, (int)Kc, 1.0f,
				    wt + gi * Mg * Kc, (int)Kc, src, (int)P,
				    0.0f, y + (n * M + gi * Mg) * P, (int)P);
		}
		if (bias) {
			for (int64_t mo = 0; mo < M; mo++) {
				float *yo = y + (n * M + mo) * P;

				for (int64_t p = 0; p < P; p++)
					yo[p] += bias[mo];
			}
		}
	}
}

/* Window positions of one output index along one axis: count of taps that
 * fall inside [lo, hi). */
static void ox__k_pool(const struct ox_model *m, const struct ox__step *s,
		   float *const *ptr, int64_t B)
{
	const struct ox__win *w = &s->win;
	int64_t xd[4], yd[4];
	const float *x = ptr[s->in[0]];
	float *y = ptr[s->out];
	bool mx = s->op == OX__OP_MAXPOOL;

	ox__nchw(&m->tensors[s->in[0]], B, xd);
	ox__nchw(&m->tensors[s->out], B, yd);

	int64_t H = xd[2], W = xd[3], oH = yd[2], oW = yd[3];

	for (int64_t nc = 0; nc < xd[0] * xd[1]; nc++) {
		const float *xc = x + nc * H * W;
		float *yc = y + nc * oH * oW;

		for (int64_t oh = 0; oh < oH; oh++) {
			int64_t h0 = oh * w->s[0] - w->pb[0];

			for (int64_t ow = 0; ow < oW; ow++) {
				int64_t w0 = ow * w->s[1] - w->pb[1];
				float acc = mx ? -INFINITY : 0.0f;
				int64_t cnt = 0, ch = 0, cw = 0;

				for (int64_t kh = 0; kh < w->k[0]; kh++) {
					int64_t ih = h0 + kh * w->d[0];

					/* taps in the padded extent count
					 * for count_include_pad */
					if (ih < H + w->pe[0])
						ch++;
					if (ih < 0 || ih >= H)
						continue;
					for (int64_t kw = 0; kw < w->k[1]; kw++) {
						int64_t iw = w0 + kw * w->d[1];
						float v;

						if (iw < 0 || iw >= W)
							continue;
						v = xc[ih * W + iw];
						if (mx)
							acc = v > acc ? v : acc;
						else
							acc += v;
						cnt++;
					}
				}
				if (!mx) {
					for (int64_t kw = 0; kw < w->k[1]; kw++)
						if (w0 + kw * w->d[1] < W + w->pe[1])
							cw++;
					if (w->count_include_pad)
						cnt = ch * cw;
					acc = cnt ? acc / (float)cnt : 0.0f;
				}
				yc[oh * oW + ow] = acc;
			}
		}
	}
}

static void ox__k_gap(const struct ox_model *m, const struct ox__step *s,
		  float *const *ptr, int64_t B)
{
	int64_t d[OX_MAX_RANK] = { 0 };
	int r = ox__shape(&m->tensors[s->in[0]], B, d);
	int64_t inner = ox__prod(d, 2, r);
	const float *x = ptr[s->in[0]];
	float *y = ptr[s->out];

	for (int64_t nc = 0; nc < d[0] * d[1]; nc++) {
		float acc = 0.0f;

		for (int64_t i = 0; i < inner; i++)
			acc += x[nc * inner + i];
		y[nc] = acc / (float)inner;
	}
}

void ox__exec_step(const struct ox_model *m, const struct ox__step *s,
		   float *const *ptr, int64_t B, float *scratch)
{
	switch (s->op) {
	case OX__OP_COPY:
		memcpy(ptr[s->out], ptr[s->in[0]],
		       (size_t)ox__numel(&m->tensors[s->out], B) * sizeof(float));
		break;
	case OX__OP_GEMM:
		ox__k_gemm(m, s, ptr, B);
		break;
	case OX__OP_MATMUL:
		ox__k_matmul(m, s, ptr, B);
		break;
	case OX__OP_ADD:
	case OX__OP_SUB:
	case OX__OP_MUL:
	case OX__OP_DIV:
		ox__k_binary(m, s, ptr, B);
		break;
	case OX__OP_RELU:
	case OX__OP_LEAKYRELU:
	case OX__OP_ELU:
	case OX__OP_SIGMOID:
	case OX__OP_TANH:
		ox__k_unary(m, s, ptr, B);
		break;
	case OX__OP_SOFTMAX:
	case OX__OP_LOGSOFTMAX:
		ox__k_softmax(m, s, ptr, B);
		break;
	case OX__OP_TRANSPOSE:
		ox__k_transpose(m, s, ptr, B);
		break;
	case OX__OP_CONCAT:
		ox__k_concat(m, s, ptr, B);
		break;
	case OX__OP_BATCHNORM:
		ox__k_batchnorm(m, s, ptr, B);
		break;
	case OX__OP_CONV:
		ox__k_conv(m, s, ptr, B, scratch);
		break;
	case OX__OP_MAXPOOL:
	case OX__OP_AVGPOOL:
		ox__k_pool(m, s, ptr, B);
		break;
	case OX__OP_GLOBALAVGPOOL:
		ox__k_gap(m, s, ptr, B);
		break;
	}
}

/* ---------------------------------------------------------------------- */
/* contexts */

int ox_ctx_create(const struct ox_model *m, int max_batch, struct ox_ctx **out)
{
	struct ox_ctx *c;
	size_t arena = 0, scratch = 0, *off = NULL;
	int rc = FERRY_ENOMEM;

	if (!m || !out || max_batch < 1)
		return FERRY_EINVAL;
	*out = NULL;
	pthread_once(&ox__blas_once, ox__blas_default);
	if (!m->batched)
		max_batch = 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return FERRY_ENOMEM;
	c->m = m;
	c->max_batch = max_batch;
	c->ptr = calloc((size_t)m->ntensors + 1, sizeof(*c->ptr));
	off = calloc((size_t)m->ntensors + 1, sizeof(*off));
	if (!c->ptr || !off)
		goto fail;
	rc = ox__plan(m, max_batch, off, &arena, &scratch);
	if (rc)
		goto fail;
	rc = FERRY_ENOMEM;
	c->bytes = arena + scratch * sizeof(float);
	c->block = aligned_alloc(OX__ALIGN, c->bytes ? (c->bytes + OX__ALIGN - 1) &
				 ~(size_t)(OX__ALIGN - 1) : OX__ALIGN);
	if (!c->block)
		goto fail;
	c->scratch = (float *)((char *)c->block + arena);
	for (int i = 0; i < m->ntensors; i++) {
		if (off[i] != SIZE_MAX)
			c->ptr[i] = (float *)((char *)c->block + off[i]);
		else if (m->tensors[i].kind == OX__T_CONST)
			c->ptr[i] = (float *)m->tensors[i].cdata;
	}
	free(off);
	*out = c;
	return 0;
fail:
	free(off);
	ox_ctx_free(c);
	return rc;
}

void ox_ctx_free(struct ox_ctx *c)
{
	if (!c)
		return;
	free(c->block);
	free(c->ptr);
	free(c);
}

size_t ox_ctx_arena_bytes(const struct ox_ctx *c)
{
	return c ? c->bytes : 0;
}

int ox_run(struct ox_ctx *c, int batch, const float *const inputs[],
	   float *const outputs[])
{
	const struct ox_model *m;

	if (!c || !inputs || !outputs || batch < 1 || batch > c->max_batch)
		return FERRY_EINVAL;
	m = c->m;
	for (int i = 0; i < m->ninputs; i++) {
		if (!inputs[i])
			return FERRY_EINVAL;
		/* read only: kernels never write an input tensor */
		c->ptr[m->inputs[i].tensor] = (float *)inputs[i];
	}
	for (int i = 0; i < m->noutputs; i++) {
		const struct ox__tensor *t = &m->tensors[m->outputs[i].tensor];

		if (!outputs[i])
			return FERRY_EINVAL;
		if (t->graph_out == i)
			c->ptr[m->outputs[i].tensor] = outputs[i];
	}
	for (int i = 0; i < m->nsteps; i++)
		ox__exec_step(m, &m->steps[i], c->ptr, batch, c->scratch);
	/* outputs that are inputs, constants or repeats are copied */
	for (int i = 0; i < m->noutputs; i++) {
		int t = m->outputs[i].tensor;

		if (m->tensors[t].graph_out != i)
			memcpy(outputs[i], c->ptr[t],
			       (size_t)ox__numel(&m->tensors[t], batch) *
			       sizeof(float));
	}
	return 0;
}
