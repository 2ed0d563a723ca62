/* SPDX-License-Identifier: MIT */
/*
 * ort_lib.h - ONNX Runtime's shared library, loaded at run time, and the
 * mapping between its element types and ferry's.  Shared by the
 * onnxruntime backend plugin and ferry-ort-bench.  Prefix ort_.
 *
 * Why dlopen and not a link: the plugin then loads on a node without the
 * library and says why it cannot serve (ferryd falls back to the native
 * executor), and one build serves the CPU wheel (onnxruntime) and the GPU
 * wheel (onnxruntime-gpu, with the CUDA and TensorRT execution providers)
 * by pointing --backend-config=onnxruntime,library=PATH at either.
 *
 * The library is never unloaded: ONNX Runtime keeps threads and static
 * state whose destructors must not run after dlclose.
 */
#ifndef FERRY_ORT_LIB_H
#define FERRY_ORT_LIB_H

#include <stdbool.h>
#include <stddef.h>

#include <ferry/dtype.h>

#include <onnxruntime_c_api.h>

/* The C API version ferry is compiled against (the vendored header,
 * third_party/onnxruntime): every library from that release on serves it. */
#define ORT_LIB_API_VERSION ORT_API_VERSION

struct ort_lib {
	const OrtApi *api;
	const char *version;    /* the library's, e.g. "1.32.0" */
	char path[4096];        /* what was opened */
};

/*
 * ort_lib_default - the library to open when no path is configured: the
 * one configure found (--with-onnxruntime, or the wheel in .venv), else
 * "libonnxruntime.so.1" through the dynamic linker's search path.
 */
const char *ort_lib_default(void);

/*
 * ort_lib_open - dlopen @path (NULL: ort_lib_default()) and take API
 * ORT_LIB_API_VERSION from its OrtGetApiBase().  Idempotent per path.
 * 0, or FERRY_UNAVAILABLE with the reason in err (dlerror's text, or the
 * two versions when the library is older than the header).
 */
int ort_lib_open(const char *path, struct ort_lib *lib, char *err, size_t errlen);

/* ferry's dtype for an ONNX element type; FERRY_TYPE_INVALID when ferry
 * has none (complex, float8, int4 ...). */
ferry_dtype ort_dtype_from_onnx(ONNXTensorElementDataType t);
/* The ONNX element type for a ferry dtype (BYTES: STRING); UNDEFINED for
 * an invalid one. */
ONNXTensorElementDataType ort_dtype_to_onnx(ferry_dtype dt);
/* "float32", "int64", ... for messages. */
const char *ort_onnx_type_name(ONNXTensorElementDataType t);

#endif /* FERRY_ORT_LIB_H */
