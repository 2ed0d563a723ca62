/* SPDX-License-Identifier: MIT */
/*
 * The built-in backends through the scheduler (identity over every dtype and
 * BYTES, add_sub INT32 / FP32), submit-time validation (each refusal names
 * its tensor), backend name mapping and load-time config errors.
 */
#include "config.h"

#include "common.h"
#include "broker/gpu/gpu.h"

static struct be_registry *reg;

static void setup(void)
{
	char err[256];
	cr_assert_eq(be_registry_create(NULL, &reg), 0);
	cr_assert_eq(builtin_register(reg, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	be_registry_destroy(reg);
}

TestSuite(builtin, .init = setup, .fini = teardown, .timeout = 30);

static struct sched_model *load(struct tcfg *t)
{
	struct sched_model *m = NULL;
	char err[512] = "";
	int rc = sched_model_create(&t->cfg, "/models/x", 1, reg, &m, err, sizeof(err));
	cr_assert_eq(rc, 0, "load failed: %d %s", rc, err);
	return m;
}

static void unload(struct sched_model *m)
{
	sched_model_stop(m);
	sched_model_destroy(m);
}

Test(builtin, identity_every_fixed_dtype_with_batch)
{
	for (int dt = FERRY_TYPE_BOOL; dt < FERRY_TYPE__COUNT; dt++) {
		if (dt == FERRY_TYPE_BYTES)
			continue;
		struct tcfg t;
		tcfg_init(&t, "id", "identity", 4);
		tcfg_tensor(&t, false, "INPUT0", dt, 1, D(3));
		tcfg_tensor(&t, true, "OUTPUT0", dt, 1, D(3));
		struct sched_model *m = load(&t);
		cr_assert(sched_is_inline(m));

		size_t es = ferry_dtype_size(dt);
		uint8_t in[2 * 3 * 8], out[2 * 3 * 8 + 5];
		for (size_t i = 0; i < sizeof(in); i++)
			in[i] = (uint8_t)(i * 7 + dt);
		memset(out, 0xee, sizeof(out));
		struct treq r;
		treq_init(&r);
		treq_in(&r, 0, dt, in, 6 * es, 2, D(2, 3));
		treq_out(&r, 0, out, sizeof(out));
		char msg[256];
		cr_assert_eq(sched_submit(m, &r.r, msg, sizeof(msg)), 0, "%s: %s",
			     ferry_dtype_name(dt), msg);
		treq_wait(m, &r);
		cr_assert_eq(r.status, 0, "%s: %s", ferry_dtype_name(dt), r.msg);
		cr_assert_eq(r.out[0].bytes, 6 * es);
		cr_assert_eq(r.out[0].dtype, dt);
		cr_assert_eq(r.out[0].ndims, 2);
		cr_assert_eq(r.out[0].dims[0], 2);
		cr_assert_eq(r.out[0].dims[1], 3);
		cr_assert_eq(memcmp(in, out, 6 * es), 0);
		cr_assert_eq(out[6 * es], 0xee, "wrote past the output");
		cr_assert_eq(r.r.batch, 2);
		treq_fini(&r);
		unload(m);
	}
}

Test(builtin, identity_variable_shape_without_batching)
{
	struct tcfg t;
	tcfg_init(&t, "id", "identity", 0);
	tcfg_tensor(&t, false, "A", FERRY_TYPE_FP64, 2, D(-1, -1));
	tcfg_tensor(&t, false, "B", FERRY_TYPE_INT16, 1, D(2));
	tcfg_tensor(&t, true, "A_OUT", FERRY_TYPE_FP64, 2, D(-1, -1));
	tcfg_tensor(&t, true, "B_OUT", FERRY_TYPE_INT16, 1, D(2));
	struct sched_model *m = load(&t);

	double a[15], ao[15];
	int16_t b[2] = { -3, 9 }, bo[2];
	for (int i = 0; i < 15; i++)
		a[i] = i * 0.5;
	struct treq r;
	treq_init(&r);
	treq_in(&r, 0, FERRY_TYPE_FP64, a, sizeof(a), 2, D(5, 3));
	treq_in(&r, 1, FERRY_TYPE_INT16, b, sizeof(b), 1, D(2));
	treq_out(&r, 0, ao, sizeof(ao));   /* variable dims: checked at execute */
	treq_out(&r, 1, bo, sizeof(bo));
	char msg[256];
	cr_assert_eq(sched_submit(m, &r.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(m, &r);
	cr_assert_eq(r.status, 0, "%s", r.msg);
	cr_assert_eq(r.r.batch, 1);
	cr_assert_eq(r.out[0].ndims, 2);
	cr_assert_eq(r.out[0].dims[0], 5);
	cr_assert_eq(r.out[0].dims[1], 3);
	cr_assert_eq(memcmp(a, ao, sizeof(a)), 0);
	cr_assert_eq(memcmp(b, bo, sizeof(b)), 0);
	treq_fini(&r);
	unload(m);
}

/* Pack strings as BYTES: 4-byte little-endian length, then the bytes. */
static size_t pack(uint8_t *buf, const char *const *s, int n)
{
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		uint32_t len = (uint32_t)strlen(s[i]);
		buf[off++] = len & 0xff;
		buf[off++] = len >> 8 & 0xff;
		buf[off++] = len >> 16 & 0xff;
		buf[off++] = len >> 24;
		memcpy(buf + off, s[i], len);
		off += len;
	}
	return off;
}

Test(builtin, identity_bytes)
{
	struct tcfg t;
	tcfg_init(&t, "id", "identity", 0);
	tcfg_tensor(&t, false, "S", FERRY_TYPE_BYTES, 1, D(-1));
	tcfg_tensor(&t, true, "S_OUT", FERRY_TYPE_BYTES, 1, D(-1));
	struct sched_model *m = load(&t);

	static const char *const strs[] = { "a", "bc", "", "hello, world" };
	uint8_t in[64], out[64];
	size_t n = pack(in, strs, 4);
	struct treq r;
	treq_init(&r);
	treq_in(&r, 0, FERRY_TYPE_BYTES, in, n, 1, D(4));
	treq_out(&r, 0, out, sizeof(out));
	char msg[256];
	cr_assert_eq(sched_submit(m, &r.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(m, &r);
	cr_assert_eq(r.status, 0, "%s", r.msg);
	cr_assert_eq(r.out[0].bytes, n);
	cr_assert_eq(r.out[0].dtype, FERRY_TYPE_BYTES);
	cr_assert_eq(r.out[0].dims[0], 4);
	cr_assert_eq(memcmp(in, out, n), 0);
	treq_fini(&r);

	/* A buffer too small for the strings fails that request only, with a
	 * message, at execute time (BYTES sizes are not known before). */
	struct treq small;
	treq_init(&small);
	treq_in(&small, 0, FERRY_TYPE_BYTES, in, n, 1, D(4));
	treq_out(&small, 0, out, n - 1);
	cr_assert_eq(sched_submit(m, &small.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(m, &small);
	cr_assert_eq(small.status, FERRY_E2BIG, "%d %s", small.status, small.msg);
	cr_assert(strstr(small.msg, "bytes"), "%s", small.msg);
	treq_fini(&small);
	unload(m);
}

static void addsub_case(ferry_dtype dt)
{
	struct tcfg t;
	tcfg_init(&t, "simple", "add_sub", 8);
	/* Config order differs from the names' order on purpose. */
	tcfg_tensor(&t, false, "INPUT1", dt, 1, D(16));
	tcfg_tensor(&t, false, "INPUT0", dt, 1, D(16));
	tcfg_tensor(&t, true, "OUTPUT1", dt, 1, D(16));
	tcfg_tensor(&t, true, "OUTPUT0", dt, 1, D(16));
	struct sched_model *m = load(&t);
	cr_assert(sched_is_inline(m));

	union { int32_t i[32]; float f[32]; } a, b, sum, diff;
	for (int k = 0; k < 32; k++) {
		if (dt == FERRY_TYPE_INT32) {
			a.i[k] = k * 3 - 40;
			b.i[k] = 1000 - k;
		} else {
			a.f[k] = k * 0.25f;
			b.f[k] = 2.0f - k;
		}
	}
	a.i[5] = dt == FERRY_TYPE_INT32 ? INT32_MAX : a.i[5];  /* wraps, no UB */
	struct treq r;
	treq_init(&r);
	treq_in(&r, 0, dt, b.i, sizeof(b), 2, D(2, 16));
	treq_in(&r, 1, dt, a.i, sizeof(a), 2, D(2, 16));
	treq_out(&r, 0, diff.i, sizeof(diff));
	treq_out(&r, 1, sum.i, sizeof(sum));
	char msg[256];
	cr_assert_eq(sched_submit(m, &r.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(m, &r);
	cr_assert_eq(r.status, 0, "%s", r.msg);
	for (int k = 0; k < 32; k++) {
		if (dt == FERRY_TYPE_INT32) {
			cr_assert_eq((uint32_t)sum.i[k], (uint32_t)a.i[k] + (uint32_t)b.i[k]);
			cr_assert_eq((uint32_t)diff.i[k], (uint32_t)a.i[k] - (uint32_t)b.i[k]);
		} else {
			cr_assert_float_eq(sum.f[k], a.f[k] + b.f[k], 1e-6);
			cr_assert_float_eq(diff.f[k], a.f[k] - b.f[k], 1e-6);
		}
	}
	cr_assert_eq(r.out[0].dims[0], 2);
	cr_assert_eq(r.out[1].dims[1], 16);
	treq_fini(&r);

	/* Only OUTPUT1 (config index 0) requested. */
	struct treq r2;
	treq_init(&r2);
	treq_in(&r2, 0, dt, b.i, 16 * 4, 2, D(1, 16));
	treq_in(&r2, 1, dt, a.i, 16 * 4, 2, D(1, 16));
	memset(&diff, 0, sizeof(diff));
	treq_out(&r2, 0, diff.i, 16 * 4);
	cr_assert_eq(sched_submit(m, &r2.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(m, &r2);
	cr_assert_eq(r2.status, 0, "%s", r2.msg);
	cr_assert_eq(r2.out[1].bytes, 0);
	treq_fini(&r2);

	struct sched_stats st;
	sched_model_stats(m, &st);
	cr_assert_eq(st.success, 2);
	cr_assert_eq(st.inference_count, 3);
	cr_assert_eq(st.execution_count, 2);
	cr_assert_eq(st.batch_execs[1], 1);
	cr_assert_eq(st.batch_execs[2], 1);
	unload(m);
}

Test(builtin, add_sub_int32) { addsub_case(FERRY_TYPE_INT32); }
Test(builtin, add_sub_fp32) { addsub_case(FERRY_TYPE_FP32); }

static void expect_load_error(struct tcfg *t, int code, const char *needle)
{
	struct sched_model *m = (void *)1;
	char err[512] = "";
	int rc = sched_model_create(&t->cfg, NULL, 1, reg, &m, err, sizeof(err));
	cr_assert_eq(rc, code, "rc %d (%s), want %d", rc, err, code);
	cr_assert(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
	cr_assert_eq(m, (void *)1, "out written on failure");
}

Test(builtin, add_sub_checks_its_config)
{
	struct tcfg t;
	tcfg_init(&t, "simple", "add_sub", 8);
	tcfg_tensor(&t, false, "INPUT0", FERRY_TYPE_INT32, 1, D(16));
	tcfg_tensor(&t, false, "INPUTX", FERRY_TYPE_INT32, 1, D(16));
	tcfg_tensor(&t, true, "OUTPUT0", FERRY_TYPE_INT32, 1, D(16));
	tcfg_tensor(&t, true, "OUTPUT1", FERRY_TYPE_INT32, 1, D(16));
	expect_load_error(&t, FERRY_CONFIG, "INPUT1");

	t.in[1].name = (char *)"INPUT1";
	t.out[1].dtype = FERRY_TYPE_FP32;
	expect_load_error(&t, FERRY_CONFIG, "OUTPUT1");

	t.out[1].dtype = FERRY_TYPE_INT32;
	t.cfg.noutputs = 1;
	expect_load_error(&t, FERRY_CONFIG, "exactly");

	t.cfg.noutputs = 2;
	for (int i = 0; i < 2; i++)
		t.in[i].dtype = t.out[i].dtype = FERRY_TYPE_INT64;
	expect_load_error(&t, FERRY_CONFIG, "INT32 or FP32");
}

Test(builtin, unknown_backend_names_it_and_the_paths)
{
	struct be_registry *r2;
	cr_assert_eq(be_registry_create("/nonexistent/a:/nonexistent/b", &r2), 0);
	struct tcfg t;
	tcfg_init(&t, "m", "tensorflow", 0);
	tcfg_tensor(&t, false, "X", FERRY_TYPE_FP32, 1, D(1));
	struct sched_model *m;
	char err[1024] = "";
	int rc = sched_model_create(&t.cfg, NULL, 1, r2, &m, err, sizeof(err));
	cr_assert_eq(rc, FERRY_ENOENT, "%d %s", rc, err);
	cr_assert(strstr(err, "'tensorflow'"), "%s", err);
	cr_assert(strstr(err, "/nonexistent/a/tensorflow/libferry_tensorflow.so"), "%s", err);
	cr_assert(strstr(err, "/nonexistent/b/libferry_tensorflow.so"), "%s", err);

	/* A name from a config never leaves the backend directories. */
	t.cfg.backend = (char *)"../evil";
	rc = sched_model_create(&t.cfg, NULL, 1, r2, &m, err, sizeof(err));
	cr_assert_eq(rc, FERRY_EINVAL, "%d %s", rc, err);
	be_registry_destroy(r2);
}

/* Triton's names for ONNX name the onnxruntime plugin; where it cannot be
 * loaded (this registry has no backend directory) the native executor
 * serves, and the note says why. */
Test(builtin, triton_names_map_to_onnxruntime_with_native_fallback)
{
	struct tcfg t;
	char err[256], note[1024];
	ferry_backend *b;
	tcfg_init(&t, "m", "onnxruntime", 0);
	cr_assert_str_eq(be_backend_name(&t.cfg, err, sizeof(err)), "onnxruntime");
	cr_assert_eq(be_registry_resolve(reg, &t.cfg, &b, note, sizeof(note), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(ferry_backend_name(b), "onnx");
	cr_assert(strstr(note, "onnxruntime is not available (unknown backend 'onnxruntime'"),
		  "%s", note);
	cr_assert(strstr(note, "served by the native executor 'onnx'"), "%s", note);
	t.cfg.backend = (char *)"";
	t.cfg.platform = (char *)"onnxruntime_onnx";
	cr_assert_str_eq(be_backend_name(&t.cfg, err, sizeof(err)), "onnxruntime");
	/* another backend's absence is no cause for a fallback */
	t.cfg.backend = (char *)"tensorflow";
	cr_assert_eq(be_registry_resolve(reg, &t.cfg, &b, note, sizeof(note), err, sizeof(err)),
		     FERRY_ENOENT);
	cr_assert_str_eq(note, "");
	t.cfg.backend = (char *)"";
	t.cfg.platform = (char *)"tensorrt_plan";
	cr_assert_null(be_backend_name(&t.cfg, err, sizeof(err)));
	cr_assert(strstr(err, "tensorrt_plan"), "%s", err);
	t.cfg.platform = (char *)"";
	cr_assert_null(be_backend_name(&t.cfg, err, sizeof(err)));
	t.cfg.backend = (char *)"identity";
	cr_assert_str_eq(be_backend_name(&t.cfg, err, sizeof(err)), "identity");
}

Test(builtin, kind_gpu_without_cuda_fails_clearly)
{
	if (gpu_device_count() > 0)
		cr_skip_test("a CUDA device is present");
	struct tcfg t;
	tcfg_init(&t, "id", "identity", 0);
	tcfg_tensor(&t, false, "X", FERRY_TYPE_FP32, 1, D(1));
	tcfg_tensor(&t, true, "Y", FERRY_TYPE_FP32, 1, D(1));
	tcfg_group(&t, 1, MODELCFG_KIND_GPU);
	expect_load_error(&t, FERRY_CONFIG, "KIND_GPU");
}

Test(builtin, bad_scheduling_config)
{
	struct tcfg t;
	tcfg_init(&t, "id", "identity", 4);
	tcfg_tensor(&t, false, "X", FERRY_TYPE_FP32, 1, D(1));
	tcfg_tensor(&t, true, "Y", FERRY_TYPE_FP32, 1, D(1));
	t.cfg.dynbatch.enabled = true;
	t.cfg.dynbatch.npreferred = 1;
	t.cfg.dynbatch.preferred[0] = 8;
	expect_load_error(&t, FERRY_CONFIG, "preferred_batch_size 8");
	t.cfg.dynbatch.preferred[0] = 2;
	t.cfg.dynbatch.priority_levels = 2;
	t.cfg.dynbatch.default_priority_level = 3;
	expect_load_error(&t, FERRY_CONFIG, "default_priority_level");
	t.cfg.dynbatch.priority_levels = 0;
	t.cfg.dynbatch.default_priority_level = 0;
	tcfg_group(&t, -1, MODELCFG_KIND_CPU);
	expect_load_error(&t, FERRY_CONFIG, "count -1");
	t.grp[0].count = 1;
	tcfg_init(&t, "id", "identity", 0);
	tcfg_tensor(&t, false, "X", FERRY_TYPE_FP32, 1, D(1));
	tcfg_tensor(&t, true, "Y", FERRY_TYPE_INT8, 1, D(1));
	expect_load_error(&t, FERRY_CONFIG, "'X'");
}

/* ------------------------------------------------------------------ */
/* Validation: one refusal per case, done() never called.              */

struct vfix {
	struct tcfg t;
	struct sched_model *m;
	int32_t a[2 * 16], b[2 * 16], o[2 * 16];
	uint8_t s[64];
	struct treq r;
};

static void vfix_init(struct vfix *v)
{
	/* Two batched INT32 inputs and a BYTES input, as a validation target. */
	tcfg_init(&v->t, "v", "identity", 4);
	tcfg_tensor(&v->t, false, "IN_A", FERRY_TYPE_INT32, 1, D(16));
	tcfg_tensor(&v->t, false, "IN_B", FERRY_TYPE_INT32, 2, D(-1, 4));
	tcfg_tensor(&v->t, false, "IN_S", FERRY_TYPE_BYTES, 1, D(2));
	tcfg_tensor(&v->t, true, "OUT_A", FERRY_TYPE_INT32, 1, D(16));
	tcfg_tensor(&v->t, true, "OUT_B", FERRY_TYPE_INT32, 2, D(-1, 4));
	tcfg_tensor(&v->t, true, "OUT_S", FERRY_TYPE_BYTES, 1, D(2));
	v->m = load(&v->t);
	static const char *const strs[] = { "xy", "z" };
	size_t n = pack(v->s, strs, 2);
	treq_init(&v->r);
	treq_in(&v->r, 0, FERRY_TYPE_INT32, v->a, 2 * 16 * 4, 2, D(2, 16));
	treq_in(&v->r, 1, FERRY_TYPE_INT32, v->b, 2 * 3 * 4 * 4, 3, D(2, 3, 4));
	treq_in(&v->r, 2, FERRY_TYPE_BYTES, v->s, n * 2, 2, D(2, 2));
	/* The BYTES input holds 2 x 2 elements: pack the pair twice. */
	memcpy(v->s + n, v->s, n);
	treq_out(&v->r, 0, v->o, sizeof(v->o));
}

static void expect_refusal(struct vfix *v, int code, const char *name)
{
	char msg[256] = "";
	int rc = sched_submit(v->m, &v->r.r, msg, sizeof(msg));
	cr_assert_eq(rc, code, "rc %d (%s), want %d", rc, msg, code);
	cr_assert(strstr(msg, name), "message '%s' does not name '%s'", msg, name);
	cr_assert_eq(treq_ndone(&v->r), 0);
}

static void vfix_ok(struct vfix *v)
{
	char msg[256] = "";
	cr_assert_eq(sched_submit(v->m, &v->r.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(v->m, &v->r);
	cr_assert_eq(v->r.status, 0, "%s", v->r.msg);
}

Test(builtin, validation_accepts_the_fixture)
{
	struct vfix v;
	vfix_init(&v);
	vfix_ok(&v);
	unload(v.m);
}

Test(builtin, validation_cuda_tensor_for_a_host_only_backend)
{
	/* identity never set FERRY_BE_MODEL_PROP_CUDA_MEMORY: device memory
	 * is refused before the backend could read it */
	struct vfix v;
	vfix_init(&v);
	v.r.in[1].cuda = true;
	v.r.in[1].device = 0;
	expect_refusal(&v, FERRY_EINVAL, "'IN_B' is in CUDA device memory");
	v.r.in[1].cuda = false;
	v.r.out[0].cuda = true;
	expect_refusal(&v, FERRY_EINVAL, "host memory only");
	unload(v.m);
}

Test(builtin, validation_missing_input)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[1].present = false;
	expect_refusal(&v, FERRY_EINVAL, "'IN_B' is required");
	unload(v.m);
}

Test(builtin, validation_dtype)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[0].dtype = FERRY_TYPE_FP32;
	expect_refusal(&v, FERRY_DTYPE, "'IN_A'");
	unload(v.m);
}

Test(builtin, validation_ndims)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[0].ndims = 1;
	expect_refusal(&v, FERRY_SHAPE, "'IN_A'");
	unload(v.m);
}

Test(builtin, validation_fixed_dim)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[1].dims[2] = 5;
	expect_refusal(&v, FERRY_SHAPE, "'IN_B'");
	unload(v.m);
}

Test(builtin, validation_variable_dim_accepts_any)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[1].dims[1] = 1;
	v.r.in[1].bytes = 2 * 1 * 4 * 4;
	vfix_ok(&v);
	unload(v.m);
}

Test(builtin, validation_batch_over_max)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[0].dims[0] = 5;
	expect_refusal(&v, FERRY_SHAPE, "'IN_A'");
	v.r.in[0].dims[0] = 0;
	expect_refusal(&v, FERRY_SHAPE, "max_batch_size");
	unload(v.m);
}

Test(builtin, validation_batch_differs_across_inputs)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[1].dims[0] = 1;
	v.r.in[1].bytes /= 2;
	expect_refusal(&v, FERRY_SHAPE, "'IN_B'");
	unload(v.m);
}

Test(builtin, validation_bytes_size)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[0].bytes -= 4;
	expect_refusal(&v, FERRY_EINVAL, "'IN_A'");
	unload(v.m);
}

Test(builtin, validation_bytes_truncated_prefix)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[2].bytes -= 1;     /* the last string loses a byte: overruns */
	expect_refusal(&v, FERRY_EINVAL, "'IN_S'");
	unload(v.m);
}

Test(builtin, validation_bytes_length_overrun)
{
	struct vfix v;
	vfix_init(&v);
	v.s[0] = 200;             /* the first element claims 200 bytes */
	expect_refusal(&v, FERRY_EINVAL, "'IN_S'");
	unload(v.m);
}

Test(builtin, validation_bytes_element_count)
{
	struct vfix v;
	vfix_init(&v);
	v.r.in[2].dims[1] = 3;    /* 6 elements expected, 4 given */
	expect_refusal(&v, FERRY_SHAPE, "'IN_S'");   /* dims[1] must be 2 */
	v.r.in[2].dims[1] = 2;
	v.r.in[2].bytes /= 2;     /* 2 elements given, 4 expected */
	expect_refusal(&v, FERRY_EINVAL, "'IN_S'");
	unload(v.m);
}

Test(builtin, validation_output_capacity)
{
	struct vfix v;
	vfix_init(&v);
	v.r.out[0].bytes = 2 * 16 * 4 - 1;
	expect_refusal(&v, FERRY_E2BIG, "'OUT_A'");
	unload(v.m);
}

Test(builtin, validation_no_done_callback)
{
	struct vfix v;
	vfix_init(&v);
	v.r.r.done = NULL;
	expect_refusal(&v, FERRY_EINVAL, "callback");
	unload(v.m);
}

Test(builtin, submit_after_stop_is_unavailable)
{
	struct vfix v;
	vfix_init(&v);
	sched_model_stop(v.m);
	expect_refusal(&v, FERRY_UNAVAILABLE, "'v'");
	sched_model_destroy(v.m);
}

/* Triton's execute_delay_ms (and execute_delay_us): each execution takes
 * at least that long, on an instance thread (not inline); a value that is
 * not a number of milliseconds up to a minute is a config error. */
Test(builtin, identity_execute_delay)
{
	struct tcfg t;
	tcfg_init(&t, "id", "identity", 0);
	tcfg_tensor(&t, false, "A", FERRY_TYPE_INT32, 1, D(4));
	tcfg_tensor(&t, true, "A_OUT", FERRY_TYPE_INT32, 1, D(4));
	tcfg_param(&t, "execute_delay_ms", "20");
	struct sched_model *m = load(&t);
	cr_assert_not(sched_is_inline(m), "a delayed identity runs on instance threads");
	int32_t a[4] = { 1, 2, 3, 4 }, ao[4] = { 0 };
	struct treq r;
	treq_init(&r);
	treq_in(&r, 0, FERRY_TYPE_INT32, a, sizeof(a), 1, D(4));
	treq_out(&r, 0, ao, sizeof(ao));
	char msg[256];
	uint64_t t0 = sched_now_ns();
	cr_assert_eq(sched_submit(m, &r.r, msg, sizeof(msg)), 0, "%s", msg);
	treq_wait(m, &r);
	cr_assert_eq(r.status, 0, "%s", r.msg);
	cr_assert_geq(r.done_ns - t0, 20000000ull, "done after %llu ns",
		      (unsigned long long)(r.done_ns - t0));
	cr_assert_eq(memcmp(a, ao, sizeof(a)), 0);
	treq_fini(&r);
	unload(m);

	static const char *const bad[] = { "soon", "-1", "60001", "5ms" };
	for (int i = 0; i < 4; i++) {
		tcfg_init(&t, "id", "identity", 0);
		tcfg_tensor(&t, false, "A", FERRY_TYPE_INT32, 1, D(4));
		tcfg_tensor(&t, true, "A_OUT", FERRY_TYPE_INT32, 1, D(4));
		tcfg_param(&t, "execute_delay_ms", bad[i]);
		expect_load_error(&t, FERRY_CONFIG, "execute_delay_ms");
	}
	tcfg_init(&t, "id", "identity", 0);
	tcfg_tensor(&t, false, "A", FERRY_TYPE_INT32, 1, D(4));
	tcfg_tensor(&t, true, "A_OUT", FERRY_TYPE_INT32, 1, D(4));
	tcfg_param(&t, "execute_delay_us", "0");
	m = load(&t);
	cr_assert(sched_is_inline(m), "no delay: light as before");
	unload(m);
}
