/* SPDX-License-Identifier: MIT */
/*
 * gpu_cuda.c - the module gpu_cuda.so: the CUDA runtime calls behind
 * gpu.h, one thin wrapper each (see gpu_int.h).  Built only where
 * configure found CUDA; linked against libcudart; opened by gpu_init()
 * only on a node with an NVIDIA device node.
 */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include <ferry/errors.h>

#include "broker/gpu/gpu.h"
#include "broker/gpu/gpu_int.h"

_Static_assert(sizeof(cudaIpcMemHandle_t) == GPU_IPC_HANDLE_BYTES,
	       "GPU_IPC_HANDLE_BYTES is not CUDA's handle size");

/* cuMemGetAddressRange of the driver API (CUresult is an int, 0 success);
 * fetched through the runtime, so the module links libcudart alone. */
typedef int (*gpu__addr_range_fn)(unsigned long long *base, size_t *size,
				       unsigned long long dptr);

static int gpu__device_count(char *err, size_t errlen)
{
	int n = 0;
	cudaError_t ce = cudaGetDeviceCount(&n);

	/* Without a driver this fails (cudaErrorInsufficientDriver or
	 * cudaErrorNoDevice): that simply means no GPU. */
	if (ce != cudaSuccess) {
		(void)cudaGetLastError();
		snprintf(err, errlen, "cudaGetDeviceCount: %s", cudaGetErrorString(ce));
		return FERRY_UNAVAILABLE;
	}
	return n;
}

static int gpu__memory(int device, size_t *used, size_t *total)
{
	size_t fr = 0, tot = 0;
	int prev = 0;

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

static int gpu__pci_bus_id(int device, char *buf, size_t len)
{
	if (cudaDeviceGetPCIBusId(buf, (int)len, device) != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_BACKEND;
	}
	return 0;
}

static int gpu__device_by_pci(const char *busid, int *device)
{
	if (cudaDeviceGetByPCIBusId(device, busid) != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_ENOENT;
	}
	return 0;
}

static int gpu__host_register(void *base, size_t bytes)
{
	if (cudaHostRegister(base, bytes, cudaHostRegisterPortable) != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_BACKEND;
	}
	return 0;
}

static int gpu__host_unregister(void *base)
{
	if (cudaHostUnregister(base) != cudaSuccess) {
		(void)cudaGetLastError();
		return FERRY_EINVAL;
	}
	return 0;
}

/* The size of the allocation that starts at @p; FERRY_EINVAL when @p is
 * not its start. */
static int gpu__alloc_size(void *p, uint64_t *bytes, char *err, size_t errlen)
{
	void *fn = NULL;
	enum cudaDriverEntryPointQueryResult q;
	unsigned long long base = 0;
	size_t size = 0;
	gpu__addr_range_fn range;

	if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000,
					     cudaEnableDefault, &q) != cudaSuccess ||
	    !fn || q != cudaDriverEntryPointSuccess) {
		(void)cudaGetLastError();
		snprintf(err, errlen, "cannot check the size of the shared allocation "
			 "(cuMemGetAddressRange unavailable)");
		return FERRY_BACKEND;
	}
	memcpy(&range, &fn, sizeof(range));
	if (range(&base, &size, (unsigned long long)(uintptr_t)p) != 0) {
		snprintf(err, errlen, "cuMemGetAddressRange failed on the shared allocation");
		return FERRY_BACKEND;
	}
	if (base != (unsigned long long)(uintptr_t)p) {
		snprintf(err, errlen, "the IPC handle does not map the start of its allocation");
		return FERRY_EINVAL;
	}
	*bytes = size;
	return 0;
}

static int gpu__ipc_open(const void *handle, int device, void **dptr,
			      uint64_t *alloc_bytes, char *err, size_t errlen)
{
	cudaIpcMemHandle_t h;
	cudaError_t ce;
	void *p = NULL;
	int prev = 0, rc;

	memcpy(&h, handle, sizeof(h));
	cudaGetDevice(&prev);
	if (cudaSetDevice(device) != cudaSuccess) {
		(void)cudaGetLastError();
		snprintf(err, errlen, "cannot use CUDA device %d", device);
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
	rc = gpu__alloc_size(p, alloc_bytes, err, errlen);
	if (rc)
		cudaIpcCloseMemHandle(p);
	cudaSetDevice(prev);
	if (!rc)
		*dptr = p;
	return rc;
}

static int gpu__ipc_close(void *dptr, int device)
{
	int prev = 0;
	cudaError_t ce;

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

static int gpu__memcpy(void *dst, const void *src, size_t bytes, char *err,
			    size_t errlen)
{
	cudaError_t ce = cudaMemcpy(dst, src, bytes, cudaMemcpyDefault);

	if (ce != cudaSuccess) {
		(void)cudaGetLastError();
		snprintf(err, errlen, "cudaMemcpy: %s", cudaGetErrorString(ce));
		return FERRY_BACKEND;
	}
	return 0;
}

/* The module's one exported symbol (GPU__OPS_SYMBOL). */
GPU_EXPORT extern const struct gpu__ops gpu__cuda_ops_v1;
const struct gpu__ops gpu__cuda_ops_v1 = {
	.size = sizeof(struct gpu__ops),
	.device_count = gpu__device_count,
	.memory = gpu__memory,
	.pci_bus_id = gpu__pci_bus_id,
	.device_by_pci = gpu__device_by_pci,
	.host_register = gpu__host_register,
	.host_unregister = gpu__host_unregister,
	.ipc_open = gpu__ipc_open,
	.ipc_close = gpu__ipc_close,
	.memcpy = gpu__memcpy,
};
