/* SPDX-License-Identifier: MIT */
/*
 * ferry data types.  The numbers are Triton's model_config.proto DataType
 * values (TYPE_BOOL = 1 ... TYPE_BF16 = 14), so they cross the shared segment,
 * the control socket and config files unchanged.
 */
#ifndef FERRY_DTYPE_H
#define FERRY_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*      name     value  bytes  KServe name  config.pbtxt name */
#define FERRY_DTYPE_MAP(XX)                        \
	XX(BOOL,   1,  1, "BOOL",   "TYPE_BOOL")    \
	XX(UINT8,  2,  1, "UINT8",  "TYPE_UINT8")   \
	XX(UINT16, 3,  2, "UINT16", "TYPE_UINT16")  \
	XX(UINT32, 4,  4, "UINT32", "TYPE_UINT32")  \
	XX(UINT64, 5,  8, "UINT64", "TYPE_UINT64")  \
	XX(INT8,   6,  1, "INT8",   "TYPE_INT8")    \
	XX(INT16,  7,  2, "INT16",  "TYPE_INT16")   \
	XX(INT32,  8,  4, "INT32",  "TYPE_INT32")   \
	XX(INT64,  9,  8, "INT64",  "TYPE_INT64")   \
	XX(FP16,   10, 2, "FP16",   "TYPE_FP16")    \
	XX(FP32,   11, 4, "FP32",   "TYPE_FP32")    \
	XX(FP64,   12, 8, "FP64",   "TYPE_FP64")    \
	XX(BYTES,  13, 0, "BYTES",  "TYPE_STRING")  \
	XX(BF16,   14, 2, "BF16",   "TYPE_BF16")

typedef enum ferry_dtype {
	FERRY_TYPE_INVALID = 0,
#define FERRY__DT_ENUM(name, val, size, kname, cname) FERRY_TYPE_##name = (val),
	FERRY_DTYPE_MAP(FERRY__DT_ENUM)
#undef FERRY__DT_ENUM
	FERRY_TYPE__COUNT
} ferry_dtype;

/*
 * ferry_dtype_size - bytes per element; 0 for BYTES (variable: each element
 * is a 4-byte little-endian length followed by that many bytes) and for
 * invalid values.
 */
static inline size_t ferry_dtype_size(int dt)
{
	switch (dt) {
#define FERRY__DT_SIZE(name, val, size, kname, cname) case val: return size;
	FERRY_DTYPE_MAP(FERRY__DT_SIZE)
#undef FERRY__DT_SIZE
	default: return 0;
	}
}

/* KServe / Triton wire name ("FP32"); NULL for an invalid value. */
static inline const char *ferry_dtype_name(int dt)
{
	switch (dt) {
#define FERRY__DT_NAME(name, val, size, kname, cname) case val: return kname;
	FERRY_DTYPE_MAP(FERRY__DT_NAME)
#undef FERRY__DT_NAME
	default: return NULL;
	}
}

#ifdef __cplusplus
}
#endif
#endif /* FERRY_DTYPE_H */
