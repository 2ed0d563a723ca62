/* SPDX-License-Identifier: MIT */
/*
 * ox_backend.c - the built-in "onnx" backend (see ox_backend.h)
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ferry/backend.h>

#include "broker/backends/onnx/ox_backend.h"
#include "broker/backends/onnx/ox_cuda.h"
#include "broker/backends/onnx/ox_exec.h"
#include "broker/gpu/gpu.h"

/* model.onnx files above this size are refused before reading */
#define ONNX_MAX_FILE (2048ull << 20)
/* devices whose weights a model keeps (ordinals 0 .. ONNX_MAX_DEV - 1) */
#define ONNX_MAX_DEV 64

/*
 * Per model version; written by model_initialize, then read-only except
 * gpu[], which instance_initialize fills under lock.
 */
struct ox__model {
	struct ox_model *ox;
	int rows;		/* rows a context must hold: max_batch_size,
				 * or the fixed first dimension when 0 */
	int batching;		/* max_batch_size > 0 */
	int nin, nout;		/* graph inputs / outputs */
	int *in_cfg;		/* per graph input: config input index */
	int *out_cfg;		/* per graph output: config index or -1 */
	size_t *in_row;		/* per graph input: floats per row */
	size_t *out_row;	/* per graph output: floats per row */
	int graphs;		/* capture CUDA graphs */
	int inline_run;		/* parameter ferry_inline: executed by the
				 * broker's polling thread */
	pthread_mutex_t lock;	/* guards gpu[] */
	struct ox_cuda_weights *gpu[ONNX_MAX_DEV];	/* per device */
};

/*
 * The CUDA half (ox_cuda.so), opened by ox_cuda_load() on the first
 * KIND_GPU instance; ox__cuda_once guards the open, after which the
 * fields are read-only.  A model's gpu[] or an instance's gctx is never
 * set unless ox__cuda is.
 */
static pthread_once_t ox__cuda_once = PTHREAD_ONCE_INIT;
static const struct ox_cuda_ops *ox__cuda;
static int ox__cuda_rc;
static char ox__cuda_err[600];

/* Per instance; used by its own thread only. */
struct ox__inst {
	struct ox_ctx *ctx;	/* CPU */
	struct ox_cuda_ctx *gctx;	/* GPU */
	float **gin;		/* CPU: per input, rows x in_row (gather) */
	float **gout;		/* CPU: per output, rows x out_row */
	const float **inp;	/* CPU: ox_run's input table */
	float **outp;		/* CPU: ox_run's output table */
	uint32_t *row0;		/* CPU: each request's first row */
	/* GPU: the parts of a batch and their pointer tables */
	struct ox_cuda_part *parts;	/* [rows] */
	const float **pin;	/* [rows * nin] */
	float **pout;		/* [rows * nout] */
	int pinned;		/* GPU: the NUMA placement was tried */
};

static uint64_t ox__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *ox__dims_str(char *buf, size_t len, const int64_t *d,
				 int n)
{
	size_t at = 0;

	at += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%lld",
				       i ? ", " : "", (long long)d[i]);
	if (at < len)
		snprintf(buf + at, len - at, "]");
	return buf;
}

/* ---------------------------------------------------------------------- */
/* model */

static void ox__model_free(struct ox__model *om)
{
	if (!om)
		return;
	for (int d = 0; d < ONNX_MAX_DEV; d++)
		if (om->gpu[d])
			ox__cuda->weights_free(om->gpu[d]);
	ox_model_free(om->ox);
	free(om->in_cfg);
	free(om->out_cfg);
	free(om->in_row);
	free(om->out_row);
	pthread_mutex_destroy(&om->lock);
	free(om);
}

static ferry_be_error *ox__read(const char *path, void **buf, size_t *len)
{
	/* O_NONBLOCK: a FIFO in the repository must not hang the load; only
	 * a regular file is read, by the size fstat gives */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	size_t got = 0;

	if (fd < 0)
		return ferry_be_error_new(FERRY_ENOENT, "cannot open %s: %s", path,
					  strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return ferry_be_error_new(FERRY_EINVAL, "%s is not a regular file", path);
	}
	if ((unsigned long long)st.st_size > ONNX_MAX_FILE) {
		close(fd);
		return ferry_be_error_new(FERRY_E2BIG, "%s holds %lld bytes; at most %llu",
					  path, (long long)st.st_size, ONNX_MAX_FILE);
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	if (!*buf) {
		close(fd);
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory reading %s", path);
	}
	while (got < *len) {
		ssize_t n = read(fd, (char *)*buf + got, *len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(*buf);
			close(fd);
			return ferry_be_error_new(FERRY_EINVAL, "short read on %s: %s", path,
						  n < 0 ? strerror(errno) : "the file shrank");
		}
		got += (size_t)n;
	}
	close(fd);
	return NULL;
}

/*
 * Check one config tensor against the model's.  @fixed is the config's
 * fixed batch (max_batch_size 0 with a batched model): updated from the
 * first tensor, then every tensor must agree.
 */
static ferry_be_error *ox__check_tensor(const ferry_be_model *m, const char *kind,
					 const char *name, ferry_dtype dt,
					 const int64_t *dims, int nd,
					 const struct ox_tensor_info *t, int *fixed)
{
	int batching = ferry_be_model_max_batch_size(m) > 0;
	int64_t want[OX_MAX_RANK];
	char s1[160], s2[160];
	int nw = 0;

	if (dt != FERRY_TYPE_FP32)
		return ferry_be_error_new(FERRY_CONFIG, "%s '%s' is %s in "
					  "config.pbtxt; the onnx backend runs TYPE_FP32 "
					  "tensors only (model.onnx has float32)", kind,
					  name, ferry_dtype_name(dt));
	if (batching && !t->batched)
		return ferry_be_error_new(FERRY_CONFIG, "%s '%s' has no batch "
					  "dimension in model.onnx (shape %s); max_batch_size "
					  "%d needs one (a symbolic first dimension)", kind, name,
					  ox__dims_str(s1, sizeof(s1), t->dims, t->rank),
					  ferry_be_model_max_batch_size(m));
	for (int i = batching ? 1 : 0; i < t->rank; i++)
		want[nw++] = t->dims[i];
	if (!batching && t->batched) {
		/* the config names the batch as a fixed first dimension */
		if (nd < 1 || dims[0] < 1)
			return ferry_be_error_new(FERRY_CONFIG, "%s '%s': "
						  "model.onnx has a batch dimension; with "
						  "max_batch_size 0 give it a fixed size as "
						  "the first of dims, or set max_batch_size", kind, name);
		if (*fixed && dims[0] != *fixed)
			return ferry_be_error_new(FERRY_CONFIG, "%s '%s': "
						  "first dimension %lld, other tensors "
						  "have %d", kind, name,
						  (long long)dims[0], *fixed);
		if (dims[0] > 1 << 20)
			return ferry_be_error_new(FERRY_CONFIG, "%s '%s': "
						  "first dimension %lld is too large", kind, name, (long long)dims[0]);
		*fixed = (int)dims[0];
		want[0] = dims[0];
	}
	if (nd != nw || memcmp(dims, want, (size_t)nw * sizeof(int64_t)))
		return ferry_be_error_new(FERRY_CONFIG, "%s '%s' has dims %s "
					  "in config.pbtxt, model.onnx has %s%s", kind,
					  name, ox__dims_str(s1, sizeof(s1), dims, nd),
					  ox__dims_str(s2, sizeof(s2), want, nw),
					  batching ? " (without the batch dimension)" : "");
	return NULL;
}

static ferry_be_error *ox__check_io(ferry_be_model *m, struct ox__model *om)
{
	const struct ox_model *ox = om->ox;
	uint32_t cin = ferry_be_model_input_count(m);
	uint32_t cout = ferry_be_model_output_count(m);
	int fixed = 0;
	ferry_be_error *e;

	for (int g = 0; g < om->nin; g++)
		om->in_cfg[g] = -1;
	for (int g = 0; g < om->nout; g++)
		om->out_cfg[g] = -1;
	for (uint32_t c = 0; c < cin + cout; c++) {
		int out = c >= cin;
		uint32_t ci = out ? c - cin : c;
		const char *name, *kind = out ? "output" : "input";
		ferry_dtype dt;
		const int64_t *dims;
		int nd, g, n = out ? om->nout : om->nin;
		struct ox_tensor_info t;

		if (out)
			ferry_be_model_output(m, ci, &name, &dt, &dims, &nd);
		else
			ferry_be_model_input(m, ci, &name, &dt, &dims, &nd);
		for (g = 0; g < n; g++) {
			if (out)
				ox_model_output(ox, g, &t);
			else
				ox_model_input(ox, g, &t);
			if (strcmp(t.name, name) == 0)
				break;
		}
		if (g == n) {
			char list[512] = "";
			size_t at = 0;

			for (int k = 0; k < n && at < sizeof(list); k++) {
				if (out)
					ox_model_output(ox, k, &t);
				else
					ox_model_input(ox, k, &t);
				at += (size_t)snprintf(list + at, sizeof(list) - at,
						       "%s'%s'", k ? ", " : "", t.name);
			}
			return ferry_be_error_new(FERRY_CONFIG, "config %s '%s' "
						  "is not an %s of model.onnx (it has %s)", kind, name, kind, list);
		}
		e = ox__check_tensor(m, kind, name, dt, dims, nd, &t, &fixed);
		if (e)
			return e;
		if (out) {
			om->out_cfg[g] = (int)ci;
			om->out_row[g] = ox_tensor_numel(&t, 1);
		} else {
			om->in_cfg[g] = (int)ci;
			om->in_row[g] = ox_tensor_numel(&t, 1);
		}
	}
	for (int g = 0; g < om->nin; g++) {
		struct ox_tensor_info t;

		if (om->in_cfg[g] >= 0)
			continue;
		ox_model_input(ox, g, &t);
		return ferry_be_error_new(FERRY_CONFIG, "model.onnx input '%s' "
					  "is missing from config.pbtxt", t.name);
	}
	for (int g = 0; g < om->nout; g++) {
		struct ox_tensor_info t;

		ox_model_output(ox, g, &t);
		if (om->out_cfg[g] < 0)
			om->out_row[g] = ox_tensor_numel(&t, 1);
		if (!t.batched && ox_model_num_inputs(ox) && om->batching)
			return ferry_be_error_new(FERRY_CONFIG, "model.onnx "
						  "output '%s' has no batch dimension; "
						  "max_batch_size > 0 needs one", t.name);
	}
	om->rows = om->batching ? ferry_be_model_max_batch_size(m) : fixed ? fixed : 1;
	return NULL;
}

static ferry_be_error *ox__params(ferry_be_model *m, struct ox__model *om)
{
	const char *v = ferry_be_model_parameter_by_name(m, "intra_op_thread_count");

	if (v) {
		char *end;
		long n = strtol(v, &end, 10);

		if (*v == '\0' || *end || n < 0 || n > 1024)
			return ferry_be_error_new(FERRY_CONFIG, "parameter "
						  "intra_op_thread_count '%s' is not a "
						  "count of 0..1024", v);
		/* 0 keeps the default (Triton: let the runtime choose) */
		if (n > 0)
			ox_set_blas_threads((int)n);
	}
	/*
	 * ferry_inline: "true" runs the model on the broker's polling thread
	 * (the light-backend path) instead of instance threads.  For small
	 * CPU models this saves the two thread wake-ups per request that
	 * cost more than the model itself; the polling thread is busy for
	 * the length of each execution, so keep it to models of tens of
	 * microseconds.
	 */
	v = ferry_be_model_parameter_by_name(m, "ferry_inline");
	if (v) {
		if (!strcmp(v, "true") || !strcmp(v, "1"))
			om->inline_run = 1;
		else if (strcmp(v, "false") && strcmp(v, "0"))
			return ferry_be_error_new(FERRY_CONFIG, "parameter "
						  "ferry_inline '%s': true or false", v);
	}
	om->graphs = 1;
	v = ferry_be_model_parameter_by_name(m, "cuda_graphs");
	if (v) {
		if (!strcmp(v, "false") || !strcmp(v, "0"))
			om->graphs = 0;
		else if (strcmp(v, "true") && strcmp(v, "1"))
			return ferry_be_error_new(FERRY_CONFIG, "parameter "
						  "cuda_graphs '%s': true or false", v);
	}
	return NULL;
}

static ferry_be_error *ox__model_init(ferry_be_model *m)
{
	char path[4096], err[2048];
	void *buf = NULL;
	size_t len = 0;
	struct ox__model *om;
	ferry_be_error *e;
	int rc;

	snprintf(path, sizeof(path), "%s/%lld/model.onnx",
		 ferry_be_model_repository_path(m), (long long)ferry_be_model_version(m));
	om = calloc(1, sizeof(*om));
	if (!om)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	pthread_mutex_init(&om->lock, NULL);
	om->batching = ferry_be_model_max_batch_size(m) > 0;
	if ((e = ox__read(path, &buf, &len)))
		goto fail;
	err[0] = '\0';
	rc = ox_model_load(buf, len, &om->ox, err, sizeof(err));
	free(buf);
	if (rc) {
		e = ferry_be_error_new(rc, "%s: %s", path, err[0] ? err : ferry_strerror(rc));
		goto fail;
	}
	om->nin = ox_model_num_inputs(om->ox);
	om->nout = ox_model_num_outputs(om->ox);
	om->in_cfg = calloc((size_t)om->nin + 1, sizeof(int));
	om->out_cfg = calloc((size_t)om->nout + 1, sizeof(int));
	om->in_row = calloc((size_t)om->nin + 1, sizeof(size_t));
	om->out_row = calloc((size_t)om->nout + 1, sizeof(size_t));
	if (!om->in_cfg || !om->out_cfg || !om->in_row || !om->out_row) {
		e = ferry_be_error_new(FERRY_ENOMEM, "out of memory");
		goto fail;
	}
	if ((e = ox__check_io(m, om)) || (e = ox__params(m, om)))
		goto fail;
	if (om->inline_run &&
	    (e = ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_LIGHT, 1)))
		goto fail;
#ifdef HAVE_CUDA
	/* GPU instances take clients' CUDA IPC tensors straight (CPU ones
	 * refuse them per request, with a message) */
	if (!om->inline_run &&
	    (e = ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_CUDA_MEMORY, 1)))
		goto fail;
#endif
	ferry_be_model_set_state(m, om);
	return NULL;
fail:
	ox__model_free(om);
	return e;
}

static ferry_be_error *ox__model_fini(ferry_be_model *m)
{
	ox__model_free(ferry_be_model_state(m));
	ferry_be_model_set_state(m, NULL);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* instances */

static void ox__inst_free(const struct ox__model *om, struct ox__inst *in)
{
	if (!in)
		return;
	ox_ctx_free(in->ctx);
	if (in->gctx)
		ox__cuda->ctx_free(in->gctx);
	for (int g = 0; in->gin && g < om->nin; g++)
		free(in->gin[g]);
	for (int g = 0; in->gout && g < om->nout; g++)
		free(in->gout[g]);
	free(in->gin);
	free(in->gout);
	free(in->inp);
	free(in->outp);
	free(in->row0);
	free(in->parts);
	free(in->pin);
	free(in->pout);
	free(in);
}

static ferry_be_error *ox__inst_gpu(ferry_be_instance *i, struct ox__model *om,
				     struct ox__inst *in)
{
	int dev = ferry_be_instance_device_id(i);
	const struct ox_cuda_ops *cu;
	char err[640] = "";
	int rc, rows = om->rows;

	if (dev < 0 || dev >= ONNX_MAX_DEV)
		return ferry_be_error_new(FERRY_CONFIG, "model '%s': GPU %d is outside "
					  "0..%d", ferry_be_model_name(ferry_be_instance_model(i)),
					  dev, ONNX_MAX_DEV - 1);
	rc = ox_cuda_load(&cu, err, sizeof(err));
	if (rc)
		return ferry_be_error_new(rc, "model '%s': KIND_GPU instance on GPU %d: %s",
					  ferry_be_model_name(ferry_be_instance_model(i)), dev,
					  err);
	/* weights once per device, shared by that device's instances */
	pthread_mutex_lock(&om->lock);
	rc = om->gpu[dev] ? 0 : cu->weights_create(om->ox, dev, &om->gpu[dev], err,
						    sizeof(err));
	pthread_mutex_unlock(&om->lock);
	if (!rc)
		rc = cu->ctx_create(om->ox, om->gpu[dev], rows, om->graphs,
				    &in->gctx, err, sizeof(err));
	if (rc)
		return ferry_be_error_new(rc, "model '%s': GPU %d: %s",
					  ferry_be_model_name(ferry_be_instance_model(i)),
					  dev, err[0] ? err : ferry_strerror(rc));
	in->parts = calloc((size_t)rows, sizeof(struct ox_cuda_part));
	in->pin = calloc((size_t)rows * (size_t)(om->nin + 1), sizeof(*in->pin));
	in->pout = calloc((size_t)rows * (size_t)(om->nout + 1), sizeof(*in->pout));
	if (!in->parts || !in->pin || !in->pout)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	return NULL;
}

static ferry_be_error *ox__inst_cpu(ferry_be_instance *i, struct ox__model *om,
				     struct ox__inst *in)
{
	int rc = ox_ctx_create(om->ox, om->rows, &in->ctx);
	size_t rows = (size_t)om->rows;

	if (rc)
		return ferry_be_error_new(rc, "model '%s': executor context for %d rows: %s",
					  ferry_be_model_name(ferry_be_instance_model(i)),
					  om->rows, ferry_strerror(rc));
	in->gin = calloc((size_t)om->nin + 1, sizeof(*in->gin));
	in->gout = calloc((size_t)om->nout + 1, sizeof(*in->gout));
	in->inp = calloc((size_t)om->nin + 1, sizeof(*in->inp));
	in->outp = calloc((size_t)om->nout + 1, sizeof(*in->outp));
	in->row0 = calloc(rows + 1, sizeof(*in->row0));
	if (!in->gin || !in->gout || !in->inp || !in->outp || !in->row0)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	/* gather buffers only where batches of several requests form;
	 * output buffers always (they take outputs nobody asked for) */
	for (int g = 0; g < om->nin && rows > 1; g++)
		if (!(in->gin[g] = malloc(rows * om->in_row[g] * sizeof(float) + 1)))
			return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	for (int g = 0; g < om->nout; g++)
		if (!(in->gout[g] = malloc(rows * om->out_row[g] * sizeof(float) + 1)))
			return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	return NULL;
}

static ferry_be_error *ox__inst_init(ferry_be_instance *i)
{
	struct ox__model *om = ferry_be_model_state(ferry_be_instance_model(i));
	struct ox__inst *in = calloc(1, sizeof(*in));
	ferry_be_error *e;

	if (!in)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	if (ferry_be_instance_kind_of(i) == FERRY_BE_INSTANCE_GPU && om->inline_run)
		e = ferry_be_error_new(FERRY_CONFIG, "parameter ferry_inline runs the model "
				       "on the polling thread: KIND_CPU instances only");
	else if (ferry_be_instance_kind_of(i) == FERRY_BE_INSTANCE_GPU)
		e = ox__inst_gpu(i, om, in);
	else
		e = ox__inst_cpu(i, om, in);
	if (e) {
		ox__inst_free(om, in);
		return e;
	}
	ferry_be_instance_set_state(i, in);
	return NULL;
}

static ferry_be_error *ox__inst_fini(ferry_be_instance *i)
{
	struct ox__model *om = ferry_be_model_state(ferry_be_instance_model(i));

	ox__inst_free(om, ferry_be_instance_state(i));
	ferry_be_instance_set_state(i, NULL);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* execute */

/*
 * Fetch request r's inputs into in[] (graph order), checking sizes; its
 * row count into *rows.  The scheduler has checked shapes against the
 * config, which ox__check_io matched to the model; the sizes are checked
 * again because the bytes come from a client.
 */
/* Where the client's tensor lies: CUDA memory only for GPU instances. */
static ferry_be_error *ox__where(ferry_be_request *r, bool input, uint32_t ci,
				  const char *name, bool gpu)
{
	ferry_be_memory mt = FERRY_BE_MEMORY_CPU;
	ferry_be_error *e = input ? ferry_be_request_input_memory(r, ci, &mt, NULL)
				  : ferry_be_request_output_memory(r, ci, &mt, NULL);

	if (e)
		return e;
	if (mt == FERRY_BE_MEMORY_GPU && !gpu)
		return ferry_be_error_new(FERRY_EINVAL, "%s '%s' is in CUDA memory and this "
					  "instance runs on the CPU: send it to a model with "
					  "KIND_GPU instances", input ? "input" : "output", name);
	return NULL;
}

static ferry_be_error *ox__inputs(const struct ox__model *om, ferry_be_request *r,
				   const float **in, uint32_t *rows, bool gpu)
{
	uint32_t b = om->batching ? ferry_be_request_batch_size(r) : (uint32_t)om->rows;

	if (b < 1 || b > (uint32_t)om->rows)
		return ferry_be_error_new(FERRY_SHAPE, "batch size %u is outside 1..%d", b,
					  om->rows);
	for (int g = 0; g < om->nin; g++) {
		const char *name;
		const void *data;
		uint64_t bytes;
		ferry_be_error *e = ferry_be_request_input(r, (uint32_t)om->in_cfg[g], &name,
							   NULL, NULL, NULL, &data, &bytes);

		if (e || (e = ox__where(r, true, (uint32_t)om->in_cfg[g], name, gpu)))
			return e;
		if (bytes != (uint64_t)b * om->in_row[g] * sizeof(float))
			return ferry_be_error_new(FERRY_SHAPE, "input '%s' holds %llu bytes, "
						  "%u rows of %zu floats need %llu", name,
						  (unsigned long long)bytes, b, om->in_row[g],
						  (unsigned long long)b * om->in_row[g] *
						  sizeof(float));
		in[g] = data;
	}
	*rows = b;
	return NULL;
}

/*
 * Where request r's output g goes: the client's buffer when it asked for
 * it (shaped for @rows), else NULL.
 */
static ferry_be_error *ox__output(const ferry_be_model *m, const struct ox__model *om,
				   ferry_be_request *r, int g, uint32_t rows, float **dst,
				   bool gpu)
{
	const char *name;
	const int64_t *dims;
	int64_t shape[OX_MAX_RANK + 1];
	int nd, bd = om->batching ? 1 : 0;
	uint32_t ci;
	void *data;
	uint64_t cap;
	ferry_be_error *e;

	*dst = NULL;
	if (om->out_cfg[g] < 0)
		return NULL;
	ci = (uint32_t)om->out_cfg[g];
	if (!ferry_be_request_output_requested(r, ci))
		return NULL;
	if ((e = ferry_be_model_output(m, ci, &name, NULL, &dims, &nd)) ||
	    (e = ox__where(r, false, ci, name, gpu)))
		return e;
	if (nd > OX_MAX_RANK)
		return ferry_be_error_new(FERRY_SHAPE, "output %u has %d dims", ci, nd);
	shape[0] = rows;
	memcpy(shape + bd, dims, (size_t)nd * sizeof(int64_t));
	if ((e = ferry_be_request_output_buffer(r, ci, shape, nd + bd, &data, &cap)))
		return e;
	*dst = data;
	return NULL;
}

/* One request, in place: inputs and outputs are the client's buffers. */
static ferry_be_error *ox__exec_one(ferry_be_instance *i, const struct ox__model *om,
				     struct ox__inst *in, ferry_be_request *r)
{
	const ferry_be_model *m = ferry_be_instance_model(i);
	uint32_t rows;
	ferry_be_error *e;
	uint64_t t_in;
	int rc;

	if ((e = ox__inputs(om, r, in->inp, &rows, false)))
		return e;
	for (int g = 0; g < om->nout; g++) {
		if ((e = ox__output(m, om, r, g, rows, &in->outp[g], false)))
			return e;
		if (!in->outp[g])
			in->outp[g] = in->gout[g];
	}
	t_in = ox__now();
	rc = ox_run(in->ctx, (int)rows, in->inp, in->outp);
	if (rc)
		return ferry_be_error_new(rc, "executor: %s", ferry_strerror(rc));
	ferry_be_instance_report_compute(i, t_in, ox__now());
	return NULL;
}

/* Several requests: gather, one run, scatter. */
static ferry_be_error *ox__exec_cpu(ferry_be_instance *i, const struct ox__model *om,
				     struct ox__inst *in, ferry_be_request **reqs,
				     uint32_t count)
{
	const ferry_be_model *m = ferry_be_instance_model(i);
	const float **src = in->inp;
	uint32_t total = 0, rows;
	uint64_t t_in, t_run;
	ferry_be_error *e;
	int rc;

	if (count == 1)
		return ox__exec_one(i, om, in, reqs[0]);
	for (uint32_t k = 0; k < count; k++) {
		in->row0[k] = UINT32_MAX;
		if ((e = ox__inputs(om, reqs[k], src, &rows, false))) {
			ferry_be_request_set_error(reqs[k], e);
			continue;
		}
		if (total + rows > (uint32_t)om->rows) {
			ferry_be_request_set_error(reqs[k], ferry_be_error_new(
				FERRY_SHAPE, "the batch holds more than %d rows", om->rows));
			continue;
		}
		for (int g = 0; g < om->nin; g++)
			memcpy(in->gin[g] + (size_t)total * om->in_row[g], src[g],
			       (size_t)rows * om->in_row[g] * sizeof(float));
		in->row0[k] = total;
		total += rows;
	}
	if (!total)
		return NULL;
	for (int g = 0; g < om->nin; g++)
		in->inp[g] = in->gin[g];
	for (int g = 0; g < om->nout; g++)
		in->outp[g] = in->gout[g];
	t_in = ox__now();
	rc = ox_run(in->ctx, (int)total, in->inp, in->outp);
	if (rc)
		return ferry_be_error_new(rc, "executor: %s", ferry_strerror(rc));
	t_run = ox__now();
	for (uint32_t k = 0; k < count; k++) {
		uint32_t next = total;

		if (in->row0[k] == UINT32_MAX)
			continue;
		for (uint32_t j = k + 1; j < count; j++)
			if (in->row0[j] != UINT32_MAX) {
				next = in->row0[j];
				break;
			}
		rows = next - in->row0[k];
		for (int g = 0; g < om->nout; g++) {
			float *dst;

			if ((e = ox__output(m, om, reqs[k], g, rows, &dst, false))) {
				ferry_be_request_set_error(reqs[k], e);
				break;
			}
			if (dst)
				memcpy(dst, in->gout[g] + (size_t)in->row0[k] * om->out_row[g],
				       (size_t)rows * om->out_row[g] * sizeof(float));
		}
	}
	ferry_be_instance_report_compute(i, t_in, t_run);
	return NULL;
}

/*
 * On its first batch, a GPU instance's thread moves to the CPUs of its
 * GPU's NUMA node, where the copies to and from the card are shortest
 * (the session arenas are bound to that node too: ferryd's --numa).
 */
static void ox__gpu_place(ferry_be_instance *i)
{
	static _Atomic int told;
	const char *name = ferry_be_model_name(ferry_be_instance_model(i));
	int dev = ferry_be_instance_device_id(i), node, rc;

	if (!gpu_numa_enabled())
		return;
	node = gpu_numa_node(dev);
	if (node < 0) {
		/* one node, or a platform that reports none: a no-op, said once */
		if (!atomic_exchange(&told, 1))
			fprintf(stderr, "ferryd: onnx: GPU %d reports no NUMA node: GPU "
				"instance threads are not pinned\n", dev);
		return;
	}
	rc = gpu_pin_to_node(node);
	if (rc)
		fprintf(stderr, "ferryd: onnx: model '%s' instance %u: cannot pin to NUMA "
			"node %d (GPU %d's): %s\n", name, ferry_be_instance_index(i), node, dev,
			ferry_strerror(rc));
}

/* GPU: every request is a part; the copies gather and scatter. */
static ferry_be_error *ox__exec_gpu(ferry_be_instance *i, const struct ox__model *om,
				     struct ox__inst *in, ferry_be_request **reqs,
				     uint32_t count)
{
	const ferry_be_model *m = ferry_be_instance_model(i);
	struct ox_cuda_part *parts = in->parts;
	uint32_t total = 0, rows;
	uint64_t t_in = 0, t_run = 0;
	ferry_be_error *e;
	char err[512] = "";
	int np = 0, rc;

	if (!in->pinned) {
		in->pinned = 1;
		ox__gpu_place(i);
	}
	for (uint32_t k = 0; k < count && np < om->rows; k++) {
		const float **pin = in->pin + (size_t)np * (size_t)om->nin;
		float **pout = in->pout + (size_t)np * (size_t)om->nout;

		if ((e = ox__inputs(om, reqs[k], pin, &rows, true)))
			goto bad;
		if (total + rows > (uint32_t)om->rows) {
			e = ferry_be_error_new(FERRY_SHAPE, "the batch holds more than %d rows",
					       om->rows);
			goto bad;
		}
		for (int g = 0; g < om->nout; g++)
			if ((e = ox__output(m, om, reqs[k], g, rows, &pout[g], true)))
				goto bad;
		parts[np].batch = (int)rows;
		parts[np].in = pin;
		parts[np].out = pout;
		np++;
		total += rows;
		continue;
bad:
		ferry_be_request_set_error(reqs[k], e);
	}
	if (!np)
		return NULL;
	rc = ox__cuda->run(in->gctx, np, parts, &t_in, &t_run, err, sizeof(err));
	if (rc)
		return ferry_be_error_new(rc, "GPU %d: %s", ferry_be_instance_device_id(i),
					  err[0] ? err : ferry_strerror(rc));
	ferry_be_instance_report_compute(i, t_in, t_run);
	return NULL;
}

static ferry_be_error *ox__execute(ferry_be_instance *i, ferry_be_request **reqs,
				    uint32_t count)
{
	const struct ox__model *om = ferry_be_model_state(ferry_be_instance_model(i));
	struct ox__inst *in = ferry_be_instance_state(i);

	if (in->gctx)
		return ox__exec_gpu(i, om, in, reqs, count);
	return ox__exec_cpu(i, om, in, reqs, count);
}

const struct be_ops ox_be_ops = {
	.model_initialize = ox__model_init,
	.model_finalize = ox__model_fini,
	.instance_initialize = ox__inst_init,
	.instance_finalize = ox__inst_fini,
	.instance_execute = ox__execute,
};

/* ---------------------------------------------------------------------- */
/* the CUDA module */

static void ox__cuda_open(void)
{
	char path[1024];
	void *dl, *sym;
	const struct ox_cuda_ops *ops;

	ox__cuda_rc = FERRY_ENOENT;
	if (gpu_module_path(OX_CUDA_MODULE, path, sizeof(path))) {
#ifdef HAVE_CUDA
		snprintf(ox__cuda_err, sizeof(ox__cuda_err), "%s not found (searched "
			 "%.400s; set FERRY_MODULE_DIR)", OX_CUDA_MODULE, path);
#else
		snprintf(ox__cuda_err, sizeof(ox__cuda_err), "this ferryd was built "
			 "without CUDA");
#endif
		return;
	}
	ox__cuda_rc = FERRY_BACKEND;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(ox__cuda_err, sizeof(ox__cuda_err), "%.300s", dlerror());
		return;
	}
	sym = dlsym(dl, OX_CUDA_OPS_SYMBOL);
	if (!sym) {
		snprintf(ox__cuda_err, sizeof(ox__cuda_err), "%.400s has no %s", path,
			 OX_CUDA_OPS_SYMBOL);
		dlclose(dl);
		return;
	}
	ops = sym;
	if (ops->size < sizeof(*ops)) {
		ox__cuda_rc = FERRY_VERSION;
		snprintf(ox__cuda_err, sizeof(ox__cuda_err), "%.400s is older than this "
			 "ferryd", path);
		dlclose(dl);
		return;
	}
	/* never closed: weights and contexts live until their models go */
	ox__cuda = ops;
	ox__cuda_rc = 0;
}

int ox_cuda_load(const struct ox_cuda_ops **ops, char *err, size_t errlen)
{
	*ops = NULL;
	/* Asked again later (a GPU may be probed after a first refusal):
	 * the "no device" answer is not remembered. */
	if (gpu_device_count() < 1) {
		snprintf(err, errlen, "this process sees no CUDA device");
		return FERRY_UNAVAILABLE;
	}
	pthread_once(&ox__cuda_once, ox__cuda_open);
	if (ox__cuda_rc) {
		snprintf(err, errlen, "%s", ox__cuda_err);
		return ox__cuda_rc;
	}
	*ops = ox__cuda;
	return 0;
}
