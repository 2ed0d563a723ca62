/* SPDX-License-Identifier: MIT */
/*
 * ort_complete.c - auto-complete a model's config from model.onnx, as
 * Triton's onnxruntime backend does:
 *
 *   - nothing changes when the config lists inputs and outputs and every
 *     listed tensor has a data_type and dims;
 *   - otherwise every model input and output the config lacks is added,
 *     and the listed ones get the data_type and dims they lack;
 *   - max_batch_size, when config.pbtxt does not give it: the backend's
 *     default-max-batch-size (Triton's 4) when every input and output has
 *     a variable first dimension, else 0.  Where it is > 0 the first
 *     dimension is the batch and the config's dims leave it out.
 *
 * A dimension the model leaves symbolic is -1; a tensor the model declares
 * without a shape completes as a scalar, so give such a tensor its dims in
 * config.pbtxt.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend.h>

#include "broker/backends/onnxruntime/ort_int.h"

struct ort__sig {               /* one tensor of the model's signature */
	char name[256];
	ONNXTensorElementDataType type;
	int nd;
	int64_t dims[ORT_MAX_DIMS];
};

/* The model's inputs (output false) or outputs, into a new array. */
static ferry_be_error *ort__signature(const OrtApi *api, OrtSession *s, bool output,
				      struct ort__sig **out, size_t *count)
{
	const char *what = output ? "output" : "input";
	OrtAllocator *al;
	OrtStatus *st;
	size_t n;

	if ((st = api->GetAllocatorWithDefaultOptions(&al)) ||
	    (st = output ? api->SessionGetOutputCount(s, &n) : api->SessionGetInputCount(s, &n)))
		return ort_error(api, st, "model signature");
	struct ort__sig *sig = calloc(n ? n : 1, sizeof(*sig));
	if (!sig)
		return ferry_be_error_new(FERRY_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char *nm = NULL;
		OrtTypeInfo *ti = NULL;
		const OrtTensorTypeAndShapeInfo *tsi = NULL;
		size_t nd = 0;
		ferry_be_error *e = NULL;

		if ((st = output ? api->SessionGetOutputName(s, i, al, &nm)
				 : api->SessionGetInputName(s, i, al, &nm))) {
			free(sig);
			return ort_error(api, st, "%s %zu's name", what, i);
		}
		snprintf(sig[i].name, sizeof(sig[i].name), "%s", nm);
		if (strlen(nm) >= sizeof(sig[i].name))
			e = ferry_be_error_new(FERRY_CONFIG, "model.onnx %s name '%.64s...' is "
					       "longer than %zu bytes", what, nm,
					       sizeof(sig[i].name) - 1);
		ort_free(api, al, nm);
		if (!e && (st = output ? api->SessionGetOutputTypeInfo(s, i, &ti)
				       : api->SessionGetInputTypeInfo(s, i, &ti)))
			e = ort_error(api, st, "%s '%s'", what, sig[i].name);
		if (!e && (((st = api->CastTypeInfoToTensorInfo(ti, &tsi))) || !tsi))
			e = st ? ort_error(api, st, "%s '%s'", what, sig[i].name)
			       : ferry_be_error_new(FERRY_CONFIG, "model.onnx %s '%s' is not a "
						    "tensor (a sequence, map or optional): ferry "
						    "serves tensors", what, sig[i].name);
		if (!e && ((st = api->GetTensorElementType(tsi, &sig[i].type)) ||
			   (st = api->GetDimensionsCount(tsi, &nd))))
			e = ort_error(api, st, "%s '%s'", what, sig[i].name);
		if (!e && nd > ORT_MAX_DIMS)
			e = ferry_be_error_new(FERRY_CONFIG, "model.onnx %s '%s' has %zu "
					       "dimensions; at most %d", what, sig[i].name, nd,
					       ORT_MAX_DIMS);
		if (!e && (st = api->GetDimensions(tsi, sig[i].dims, nd)))
			e = ort_error(api, st, "%s '%s'", what, sig[i].name);
		if (ti)
			api->ReleaseTypeInfo(ti);
		if (e) {
			free(sig);
			return e;
		}
		sig[i].nd = (int)nd;
		/* symbolic and unknown dimensions come back as -1 (or less) */
		for (int d = 0; d < sig[i].nd; d++)
			if (sig[i].dims[d] < 0)
				sig[i].dims[d] = -1;
	}
	*out = sig;
	*count = n;
	return NULL;
}

/* Whether the config needs anything from the model. */
static bool ort__incomplete(const ferry_be_model *m)
{
	uint32_t nin = ferry_be_model_input_count(m), nout = ferry_be_model_output_count(m);

	if (!nin || !nout)
		return true;
	for (uint32_t i = 0; i < nin + nout; i++) {
		ferry_dtype dt;
		int nd;
		if (i < nin)
			ferry_be_model_input(m, i, NULL, &dt, NULL, &nd);
		else
			ferry_be_model_output(m, i - nin, NULL, &dt, NULL, &nd);
		if (dt == FERRY_TYPE_INVALID || nd == 0)
			return true;
	}
	return false;
}

static ferry_be_error *ort__complete_side(ferry_be_model *m, const struct ort__sig *sig,
					  size_t n, bool output, int mbs)
{
	const char *what = output ? "output" : "input";

	for (size_t i = 0; i < n; i++) {
		ferry_dtype dt = ort_dtype_from_onnx(sig[i].type);
		int bd = mbs > 0 ? 1 : 0;
		ferry_be_error *e;

		if (dt == FERRY_TYPE_INVALID)
			return ferry_be_error_new(FERRY_CONFIG, "model.onnx %s '%s' is %s, which "
						  "KServe v2 has no data type for", what,
						  sig[i].name, ort_onnx_type_name(sig[i].type));
		if (sig[i].nd < bd)
			return ferry_be_error_new(FERRY_CONFIG, "model.onnx %s '%s' is a scalar, "
						  "but max_batch_size %d needs a batch dimension",
						  what, sig[i].name, mbs);
		for (int d = bd; d < sig[i].nd; d++)
			if (sig[i].dims[d] == 0)
				return ferry_be_error_new(FERRY_CONFIG, "model.onnx %s '%s' has a "
							  "dimension of size 0, which a config "
							  "cannot hold", what, sig[i].name);
		e = ferry_be_model_complete_tensor(m, output, sig[i].name, dt, sig[i].dims + bd,
						   sig[i].nd - bd);
		if (e)
			return e;
	}
	return NULL;
}

ferry_be_error *ort_model_autocomplete(ferry_be_model *m)
{
	struct ort_backend *be = ferry_backend_state(ferry_be_model_backend(m));
	const OrtApi *api = be->lib.api;
	struct ort__sig *in = NULL, *out = NULL;
	size_t nin = 0, nout = 0;
	OrtSession *s = NULL;
	char path[4200];
	ferry_be_error *e;

	if (!ort__incomplete(m))
		return NULL;
	if ((e = ort_model_path(m, path, sizeof(path))) ||
	    (e = ort_session_open(be, path, NULL, &s)) ||
	    (e = ort__signature(api, s, false, &in, &nin)) ||
	    (e = ort__signature(api, s, true, &out, &nout)))
		goto out;

	/* Triton: the model batches when every tensor's first dimension is
	 * variable. */
	bool batches = nin + nout > 0;
	for (size_t i = 0; i < nin + nout; i++) {
		const struct ort__sig *t = i < nin ? &in[i] : &out[i - nin];
		if (t->nd < 1 || t->dims[0] != -1)
			batches = false;
	}
	if ((e = ferry_be_model_set_max_batch_size(m, batches ? be->default_mbs : 0)))
		goto out;
	int mbs = ferry_be_model_max_batch_size(m);
	if ((e = ort__complete_side(m, in, nin, false, mbs)) ||
	    (e = ort__complete_side(m, out, nout, true, mbs)))
		goto out;
out:
	free(in);
	free(out);
	if (s)
		api->ReleaseSession(s);
	return e;
}
