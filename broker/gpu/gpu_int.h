/* SPDX-License-Identifier: MIT */
/*
 * gpu_int.h - between gpu.c (in ferryd, no CUDA) and the module it opens,
 * gpu_cuda.so (gpu_cuda.c, linked against libcudart).  Private to
 * broker/gpu/ and its tests.
 *
 * The module exports one symbol, GPU__OPS_SYMBOL: a const struct gpu__ops.
 * Its name carries the table's version; a module whose table is smaller
 * than this build's (size) is refused.  Each entry is a thin wrapper over
 * one CUDA runtime call: the policy (the IPC cache, argument checks, the
 * "no GPU" answers) lives in gpu.c.  Every entry returns 0 or a negative
 * ferry code.
 */
#ifndef FERRY_GPU_INT_H
#define FERRY_GPU_INT_H

#include <stddef.h>
#include <stdint.h>

#define GPU__OPS_SYMBOL "gpu__cuda_ops_v1"
#define GPU__MODULE "gpu_cuda.so"

struct gpu__ops {
	size_t size;		/* sizeof(struct gpu__ops) in the module's build */
	/* devices the runtime sees (>= 0), or a ferry code with CUDA's reason */
	int (*device_count)(char *err, size_t errlen);
	int (*memory)(int device, size_t *used, size_t *total);
	int (*pci_bus_id)(int device, char *buf, size_t len);
	/* the ordinal of the device at PCI bus id @busid */
	int (*device_by_pci)(const char *busid, int *device);
	int (*host_register)(void *base, size_t bytes);
	int (*host_unregister)(void *base);
	/* open @handle (GPU_IPC_HANDLE_BYTES) on @device; *@alloc_bytes: the
	 * size of the allocation, which must start at *@dptr */
	int (*ipc_open)(const void *handle, int device, void **dptr,
			uint64_t *alloc_bytes, char *err, size_t errlen);
	int (*ipc_close)(void *dptr, int device);
	int (*memcpy)(void *dst, const void *src, size_t bytes, char *err,
		      size_t errlen);
};

/*
 * gpu__use - tests: take @ops as the loaded module (NULL: none), as
 * gpu_init() would after a successful dlopen(); returns the device count
 * it reports.  Only before gpu_init() or after gpu_fini().
 */
int gpu__use(const struct gpu__ops *ops, char *why, size_t whylen);

#endif /* FERRY_GPU_INT_H */
