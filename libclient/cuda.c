/* SPDX-License-Identifier: MIT */
/*
 * cuda.c - CUDA IPC tensors: a local client shares a device buffer with
 * the broker once (CudaRegister in proto/control.proto) and then names
 * parts of it as inputs and outputs; the broker's GPU instances copy from
 * and to it on the card, with no host round trip.
 *
 * libferry does not link the CUDA runtime: ferry_cuda_register() loads it
 * with dlopen() the first time it is called, so CPU-only jobs never need
 * it.  ferry_cuda_register_handle() takes a handle the caller made and
 * needs no runtime at all.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ferry.h>

#include "libclient/client.h"
#include "proto/control.pb-c.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define FC_CUDA_HANDLE_BYTES 64   /* sizeof(cudaIpcMemHandle_t) */

/* ---------------------------------------------------------------------- */
/* The CUDA runtime, loaded on first use                                   */

#ifdef HAVE_CUDA
static struct {
	void *dl;
	const char *err;
	cudaError_t (*ipc_get)(cudaIpcMemHandle_t *, void *);
	cudaError_t (*attrs)(struct cudaPointerAttributes *, const void *);
	cudaError_t (*bus_id)(char *, int, int);
	cudaError_t (*entry)(const char *, void **, unsigned int, unsigned long long,
			     enum cudaDriverEntryPointQueryResult *);
	const char *(*errstr)(cudaError_t);
} fc__rt;
static pthread_once_t fc__rt_once = PTHREAD_ONCE_INIT;

static void fc__rt_load(void)
{
	/* the runtime the application already loaded comes first */
	static const char *const names[] = {
		"libcudart.so.13", "libcudart.so.12", "libcudart.so",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !fc__rt.dl; i++)
		fc__rt.dl = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
	if (!fc__rt.dl) {
		fc__rt.err = "the CUDA runtime (libcudart.so) cannot be loaded";
		return;
	}
	*(void **)&fc__rt.ipc_get = dlsym(fc__rt.dl, "cudaIpcGetMemHandle");
	*(void **)&fc__rt.attrs = dlsym(fc__rt.dl, "cudaPointerGetAttributes");
	*(void **)&fc__rt.bus_id = dlsym(fc__rt.dl, "cudaDeviceGetPCIBusId");
	*(void **)&fc__rt.entry = dlsym(fc__rt.dl, "cudaGetDriverEntryPointByVersion");
	*(void **)&fc__rt.errstr = dlsym(fc__rt.dl, "cudaGetErrorString");
	if (!fc__rt.ipc_get || !fc__rt.attrs || !fc__rt.bus_id || !fc__rt.entry ||
	    !fc__rt.errstr)
		fc__rt.err = "the CUDA runtime lacks cudaIpcGetMemHandle or its "
			     "companions (CUDA 12 or newer is needed)";
}

typedef int (*fc__range_fn)(unsigned long long *, size_t *, unsigned long long);
#endif

/* ---------------------------------------------------------------------- */
/* Regions                                                                 */

FERRY_API int ferry_cuda_register_handle(ferry_client *c, const void *ipc_handle,
					 size_t handle_len, const char *pci_bus_id,
					 int device, void *dev_ptr, size_t bytes,
					 ferry_cuda_region **out)
{
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__CudaRegister cr = FERRY__CONTROL__CUDA_REGISTER__INIT;
	Ferry__Control__Response *resp = NULL;
	ferry_cuda_region *reg;
	int ret;

	if (!c || !ipc_handle || !out)
		return fc_fail(FERRY_EINVAL, "ferry_cuda_register_handle: NULL argument");
	*out = NULL;
	if (c->remote)
		return fc_fail(FERRY_ENOTSUP, "CUDA tensors need a broker on this node; "
			       "this client talks gRPC to a remote one");
	if (handle_len != FC_CUDA_HANDLE_BYTES)
		return fc_fail(FERRY_EINVAL, "a CUDA IPC handle has %d bytes, not %zu",
			       FC_CUDA_HANDLE_BYTES, handle_len);
	if (bytes == 0)
		return fc_fail(FERRY_EINVAL, "a CUDA region of 0 bytes");
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return fc_fail(FERRY_ENOMEM, "out of memory");
	cr.ipc_handle.data = (uint8_t *)ipc_handle;
	cr.ipc_handle.len = handle_len;
	cr.pci_bus_id = (char *)(pci_bus_id ? pci_bus_id : "");
	cr.device = device;
	cr.byte_size = bytes;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_CUDA_REGISTER;
	req.cuda_register = &cr;
	pthread_mutex_lock(&c->ctl_lock);
	ret = fc_call(c, &req, &resp);
	if (!ret && resp->body_case != FERRY__CONTROL__RESPONSE__BODY_CUDA_REGION) {
		ferry__control__response__free_unpacked(resp, NULL);
		ret = fc_fail(FERRY_EPROTO, "unexpected answer to CudaRegister");
	}
	if (ret) {
		pthread_mutex_unlock(&c->ctl_lock);
		free(reg);
		return ret;
	}
	reg->client = c;
	reg->id = resp->cuda_region->region_id;
	reg->device = resp->cuda_region->device;
	reg->dev_ptr = dev_ptr;
	reg->bytes = bytes;
	reg->next = c->cuda_regions;
	c->cuda_regions = reg;
	pthread_mutex_unlock(&c->ctl_lock);
	ferry__control__response__free_unpacked(resp, NULL);
	if (reg->id == 0 || reg->id > FSHM_TENSOR_REGION_MAX) {
		ferry_cuda_release(reg);
		return fc_fail(FERRY_EPROTO, "the broker named a CUDA region out of range");
	}
	*out = reg;
	return 0;
}

FERRY_API int ferry_cuda_register(ferry_client *c, void *dev_ptr, size_t bytes,
				  ferry_cuda_region **out)
{
	if (!c || !dev_ptr || !out)
		return fc_fail(FERRY_EINVAL, "ferry_cuda_register: NULL argument");
	*out = NULL;
	if (c->remote)
		return fc_fail(FERRY_ENOTSUP, "CUDA tensors need a broker on this node; "
			       "this client talks gRPC to a remote one");
#ifdef HAVE_CUDA
	struct cudaPointerAttributes pa;
	cudaIpcMemHandle_t h;
	char bus[32];
	void *fn = NULL;
	enum cudaDriverEntryPointQueryResult q;
	unsigned long long base = 0;
	size_t size = 0;
	cudaError_t ce;

	pthread_once(&fc__rt_once, fc__rt_load);
	if (fc__rt.err)
		return fc_fail(FERRY_UNAVAILABLE, "%s", fc__rt.err);
	memset(&pa, 0, sizeof(pa));
	if ((ce = fc__rt.attrs(&pa, dev_ptr)) != cudaSuccess ||
	    pa.type != cudaMemoryTypeDevice)
		return fc_fail(FERRY_EINVAL, "%p is not CUDA device memory%s%s", dev_ptr,
			       ce != cudaSuccess ? ": " : "",
			       ce != cudaSuccess ? fc__rt.errstr(ce) : "");
	/* An IPC handle maps its whole allocation: only a base pointer
	 * means the same bytes on both sides, and the declared size must
	 * fit the allocation. */
	if (fc__rt.entry("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &q) !=
	    cudaSuccess || !fn || q != cudaDriverEntryPointSuccess ||
	    ((fc__range_fn)fn)(&base, &size, (unsigned long long)(uintptr_t)dev_ptr) != 0)
		return fc_fail(FERRY_UNAVAILABLE, "cannot find the allocation of %p "
			       "(cuMemGetAddressRange)", dev_ptr);
	if (base != (unsigned long long)(uintptr_t)dev_ptr)
		return fc_fail(FERRY_EINVAL, "%p lies %llu bytes inside its allocation: "
			       "share the pointer cudaMalloc returned", dev_ptr,
			       (unsigned long long)(uintptr_t)dev_ptr - base);
	if (bytes == 0 || bytes > size)
		return fc_fail(FERRY_EINVAL, "%zu bytes declared, the allocation at %p has %zu",
			       bytes, dev_ptr, size);
	if ((ce = fc__rt.ipc_get(&h, dev_ptr)) != cudaSuccess)
		return fc_fail(FERRY_EINVAL, "cudaIpcGetMemHandle: %s (memory from "
			       "cudaMallocAsync pools or VMM cannot be shared this way)",
			       fc__rt.errstr(ce));
	if (fc__rt.bus_id(bus, (int)sizeof(bus), pa.device) != cudaSuccess)
		bus[0] = '\0';
	return ferry_cuda_register_handle(c, &h, sizeof(h), bus, pa.device, dev_ptr,
					  bytes, out);
#else
	(void)bytes;
	return fc_fail(FERRY_ENOTSUP, "this libferry was built without CUDA: pass a "
		       "handle to ferry_cuda_register_handle()");
#endif
}

FERRY_API int ferry_cuda_release(ferry_cuda_region *reg)
{
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__CudaRelease cr = FERRY__CONTROL__CUDA_RELEASE__INIT;
	Ferry__Control__Response *resp = NULL;
	ferry_client *c;
	int ret = 0;

	if (!reg)
		return 0;
	c = reg->client;
	if (c) {
		pthread_mutex_lock(&c->ctl_lock);
		for (ferry_cuda_region **pp = &c->cuda_regions; *pp; pp = &(*pp)->next)
			if (*pp == reg) {
				*pp = reg->next;
				break;
			}
		cr.region_id = reg->id;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_CUDA_RELEASE;
		req.cuda_release = &cr;
		ret = fc_call(c, &req, &resp);
		pthread_mutex_unlock(&c->ctl_lock);
		if (!ret)
			ferry__control__response__free_unpacked(resp, NULL);
	}
	free(reg);
	return ret;
}

/* Called by ferry_close with ctl_lock held: the session (and with it every
 * region) is going; the handles stay valid memory for the caller to free. */
void fc_cuda_detach(ferry_client *c)
{
	for (ferry_cuda_region *r = c->cuda_regions; r; r = r->next)
		r->client = NULL;
	c->cuda_regions = NULL;
}

FERRY_API void *ferry_cuda_region_pointer(const ferry_cuda_region *reg)
{
	return reg ? reg->dev_ptr : NULL;
}
