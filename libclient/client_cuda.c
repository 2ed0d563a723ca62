/* SPDX-License-Identifier: MIT */
/*
 * client_cuda.c - CUDA IPC tensors: a local client shares a device buffer with
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

#include "libclient/client_int.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define CLIENT__CUDA_HANDLE_BYTES 64   /* sizeof(cudaIpcMemHandle_t) */

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
} client__rt;
static pthread_once_t client__rt_once = PTHREAD_ONCE_INIT;

static void client__rt_load(void)
{
	/* the runtime the application already loaded comes first */
	static const char *const names[] = {
		"libcudart.so.13", "libcudart.so.12", "libcudart.so",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !client__rt.dl; i++)
		client__rt.dl = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
	if (!client__rt.dl) {
		client__rt.err = "the CUDA runtime (libcudart.so) cannot be loaded";
		return;
	}
	*(void **)&client__rt.ipc_get = dlsym(client__rt.dl, "cudaIpcGetMemHandle");
	*(void **)&client__rt.attrs = dlsym(client__rt.dl, "cudaPointerGetAttributes");
	*(void **)&client__rt.bus_id = dlsym(client__rt.dl, "cudaDeviceGetPCIBusId");
	*(void **)&client__rt.entry = dlsym(client__rt.dl, "cudaGetDriverEntryPointByVersion");
	*(void **)&client__rt.errstr = dlsym(client__rt.dl, "cudaGetErrorString");
	if (!client__rt.ipc_get || !client__rt.attrs || !client__rt.bus_id || !client__rt.entry ||
	    !client__rt.errstr)
		client__rt.err = "the CUDA runtime lacks cudaIpcGetMemHandle or its "
			     "companions (CUDA 12 or newer is needed)";
}

typedef int (*client__range_fn)(unsigned long long *, size_t *, unsigned long long);
#endif

/* ---------------------------------------------------------------------- */
/* Regions                                                                 */

/* CUDA regions belong to a session on this node's broker. */
static int client__cuda_usable(ferry_client *c)
{
	struct client__tp *t = client__tp_get(c);
	int ret = t->ops->cuda_register ? 0 :
		client__fail(FERRY_ENOTSUP, "CUDA tensors need a broker on this node; "
			     "this client talks %s to %s", t->ops->name, t->address);
	client__tp_put(c);
	if (ret)
		return ret;
	if (c->admin)
		return client__fail(FERRY_ENOTSUP, "CUDA regions belong to a session; this "
				    "client has none (ferry_connect_admin)");
	return 0;
}

FERRY_API int ferry_cuda_register_handle(ferry_client *c, const void *ipc_handle,
					 size_t handle_len, const char *pci_bus_id,
					 int device, void *dev_ptr, size_t bytes,
					 ferry_cuda_region **out)
{
	ferry_cuda_region *reg;
	int ret;

	if (!c || !ipc_handle || !out)
		return client__fail(FERRY_EINVAL, "ferry_cuda_register_handle: NULL argument");
	*out = NULL;
	if ((ret = client__cuda_usable(c)))
		return ret;
	if (handle_len != CLIENT__CUDA_HANDLE_BYTES)
		return client__fail(FERRY_EINVAL, "a CUDA IPC handle has %d bytes, not %zu",
				    CLIENT__CUDA_HANDLE_BYTES, handle_len);
	if (bytes == 0)
		return client__fail(FERRY_EINVAL, "a CUDA region of 0 bytes");
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return client__fail(FERRY_ENOMEM, "out of memory");
	struct client__tp *t = client__tp_get(c);
	pthread_mutex_lock(&c->ctl_lock);
	/* The endpoint may have changed since the check above. */
	ret = t->ops->cuda_register ? t->ops->cuda_register(t, ipc_handle, handle_len,
							    pci_bus_id, device, bytes,
							    &reg->id, &reg->device)
				    : client__fail(FERRY_ENOTSUP, "CUDA tensors need a broker "
						   "on this node");
	if (ret) {
		pthread_mutex_unlock(&c->ctl_lock);
		client__tp_put(c);
		free(reg);
		return ret;
	}
	reg->client = c;
	reg->dev_ptr = dev_ptr;
	reg->bytes = bytes;
	reg->next = c->cuda_regions;
	c->cuda_regions = reg;
	pthread_mutex_unlock(&c->ctl_lock);
	client__tp_put(c);
	if (reg->id == 0 || reg->id > FSHM_TENSOR_REGION_MAX) {
		ferry_cuda_release(reg);
		return client__fail(FERRY_EPROTO, "the broker named a CUDA region out of range");
	}
	*out = reg;
	return 0;
}

FERRY_API int ferry_cuda_register(ferry_client *c, void *dev_ptr, size_t bytes,
				  ferry_cuda_region **out)
{
	if (!c || !dev_ptr || !out)
		return client__fail(FERRY_EINVAL, "ferry_cuda_register: NULL argument");
	*out = NULL;
	int ret = client__cuda_usable(c);
	if (ret)
		return ret;
#ifdef HAVE_CUDA
	struct cudaPointerAttributes pa;
	cudaIpcMemHandle_t h;
	char bus[32];
	void *fn = NULL;
	enum cudaDriverEntryPointQueryResult q;
	unsigned long long base = 0;
	size_t size = 0;
	cudaError_t ce;

	pthread_once(&client__rt_once, client__rt_load);
	if (client__rt.err)
		return client__fail(FERRY_UNAVAILABLE, "%s", client__rt.err);
	memset(&pa, 0, sizeof(pa));
	if ((ce = client__rt.attrs(&pa, dev_ptr)) != cudaSuccess ||
	    pa.type != cudaMemoryTypeDevice)
		return client__fail(FERRY_EINVAL, "%p is not CUDA device memory%s%s", dev_ptr,
				    ce != cudaSuccess ? ": " : "",
				    ce != cudaSuccess ? client__rt.errstr(ce) : "");
	/* An IPC handle maps its whole allocation: only a base pointer
	 * means the same bytes on both sides, and the declared size must
	 * fit the allocation. */
	if (client__rt.entry("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &q) !=
	    cudaSuccess || !fn || q != cudaDriverEntryPointSuccess ||
	    ((client__range_fn)fn)(&base, &size, (unsigned long long)(uintptr_t)dev_ptr) != 0)
		return client__fail(FERRY_UNAVAILABLE, "cannot find the allocation of %p "
				    "(cuMemGetAddressRange)", dev_ptr);
	if (base != (unsigned long long)(uintptr_t)dev_ptr)
		return client__fail(FERRY_EINVAL, "%p lies %llu bytes inside its allocation: "
				    "share the pointer cudaMalloc returned", dev_ptr,
				    (unsigned long long)(uintptr_t)dev_ptr - base);
	if (bytes == 0 || bytes > size)
		return client__fail(FERRY_EINVAL, "%zu bytes declared, the allocation at %p has %zu",
				    bytes, dev_ptr, size);
	if ((ce = client__rt.ipc_get(&h, dev_ptr)) != cudaSuccess)
		return client__fail(FERRY_EINVAL, "cudaIpcGetMemHandle: %s (memory from "
				    "cudaMallocAsync pools or VMM cannot be shared this way)",
				    client__rt.errstr(ce));
	if (client__rt.bus_id(bus, (int)sizeof(bus), pa.device) != cudaSuccess)
		bus[0] = '\0';
	return ferry_cuda_register_handle(c, &h, sizeof(h), bus, pa.device, dev_ptr,
					  bytes, out);
#else
	(void)bytes;
	return client__fail(FERRY_ENOTSUP, "this libferry was built without CUDA: pass a "
			    "handle to ferry_cuda_register_handle()");
#endif
}

FERRY_API int ferry_cuda_release(ferry_cuda_region *reg)
{
	ferry_client *c;
	int ret = 0;

	if (!reg)
		return 0;
	c = reg->client;
	if (c) {
		struct client__tp *t = client__tp_get(c);
		pthread_mutex_lock(&c->ctl_lock);
		/* A reconnect detached it (reg->client NULL) under the same
		 * locks: read it again. */
		if (reg->client) {
			for (ferry_cuda_region **pp = &c->cuda_regions; *pp; pp = &(*pp)->next)
				if (*pp == reg) {
					*pp = reg->next;
					break;
				}
			ret = t->ops->cuda_release(t, reg->id);
		}
		pthread_mutex_unlock(&c->ctl_lock);
		client__tp_put(c);
	}
	free(reg);
	return ret;
}

/* Called by ferry_close with ctl_lock held: the session (and with it every
 * region) is going; the handles stay valid memory for the caller to free. */
void client__cuda_detach(ferry_client *c)
{
	for (ferry_cuda_region *r = c->cuda_regions; r; r = r->next)
		r->client = NULL;
	c->cuda_regions = NULL;
}

FERRY_API void *ferry_cuda_region_pointer(const ferry_cuda_region *reg)
{
	return reg ? reg->dev_ptr : NULL;
}
