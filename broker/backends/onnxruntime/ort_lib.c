/* SPDX-License-Identifier: MIT */
/*
 * ort_lib.c - loading ONNX Runtime (see ort_lib.h).
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/backends/onnxruntime/ort_lib.h"

/* FERRY_ORT_LIBRARY: configure's find (config.h), "" for none. */
const char *ort_lib_default(void)
{
	return FERRY_ORT_LIBRARY[0] ? FERRY_ORT_LIBRARY : "libonnxruntime.so.1";
}

int ort_lib_open(const char *path, struct ort_lib *lib, char *err, size_t errlen)
{
	const OrtApiBase *(*get_base)(void);
	const OrtApiBase *base;
	void *dl, *sym;

	if (!path || !*path)
		path = ort_lib_default();
	memset(lib, 0, sizeof(*lib));
	snprintf(lib->path, sizeof(lib->path), "%s", path);
	/* RTLD_LOCAL: its symbols stay out of ferryd's namespace.  A second
	 * dlopen of the same file returns the same handle. */
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(err, errlen, "cannot load ONNX Runtime: %s (install the onnxruntime "
			 "wheel, or give ferryd --backend-config=onnxruntime,library=PATH)",
			 dlerror());
		return FERRY_UNAVAILABLE;
	}
	sym = dlsym(dl, "OrtGetApiBase");
	if (!sym) {
		snprintf(err, errlen, "%s exports no OrtGetApiBase: not ONNX Runtime", path);
		return FERRY_UNAVAILABLE;
	}
	/* POSIX: a dlsym pointer converts to a function pointer. */
	memcpy(&get_base, &sym, sizeof(sym));
	base = get_base();
	lib->version = base->GetVersionString();
	lib->api = base->GetApi(ORT_LIB_API_VERSION);
	if (!lib->api) {
		snprintf(err, errlen, "%s is ONNX Runtime %s, which does not serve C API "
			 "version %d (ferry needs ONNX Runtime 1.%d or newer)", path,
			 lib->version ? lib->version : "?", ORT_LIB_API_VERSION,
			 ORT_LIB_API_VERSION);
		return FERRY_UNAVAILABLE;
	}
	/* Never dlclose (see ort_lib.h). */
	return 0;
}

static const struct {
	ONNXTensorElementDataType onnx;
	ferry_dtype ferry;
	const char *name;
} ort__types[] = {
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, FERRY_TYPE_FP32, "float32" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, FERRY_TYPE_UINT8, "uint8" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, FERRY_TYPE_INT8, "int8" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16, FERRY_TYPE_UINT16, "uint16" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16, FERRY_TYPE_INT16, "int16" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, FERRY_TYPE_INT32, "int32" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, FERRY_TYPE_INT64, "int64" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING, FERRY_TYPE_BYTES, "string" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, FERRY_TYPE_BOOL, "bool" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, FERRY_TYPE_FP16, "float16" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, FERRY_TYPE_FP64, "float64" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32, FERRY_TYPE_UINT32, "uint32" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64, FERRY_TYPE_UINT64, "uint64" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, FERRY_TYPE_BF16, "bfloat16" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64, FERRY_TYPE_INVALID, "complex64" },
	{ ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128, FERRY_TYPE_INVALID, "complex128" },
};

ferry_dtype ort_dtype_from_onnx(ONNXTensorElementDataType t)
{
	for (size_t i = 0; i < sizeof(ort__types) / sizeof(ort__types[0]); i++)
		if (ort__types[i].onnx == t)
			return ort__types[i].ferry;
	return FERRY_TYPE_INVALID;
}

ONNXTensorElementDataType ort_dtype_to_onnx(ferry_dtype dt)
{
	for (size_t i = 0; i < sizeof(ort__types) / sizeof(ort__types[0]); i++)
		if (ort__types[i].ferry == dt && dt != FERRY_TYPE_INVALID)
			return ort__types[i].onnx;
	return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

const char *ort_onnx_type_name(ONNXTensorElementDataType t)
{
	for (size_t i = 0; i < sizeof(ort__types) / sizeof(ort__types[0]); i++)
		if (ort__types[i].onnx == t)
			return ort__types[i].name;
	return "an element type ferry has no name for";
}
