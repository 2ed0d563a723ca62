/* SPDX-License-Identifier: MIT */
/*
 * gs_shm_rpc.c - Triton's shared-memory RPCs (system and CUDA: status,
 * register, unregister) over the region table of gs_shm.c, which owns the
 * regions and their limit.  A status lists every region registered: the
 * table's limit bounds the list, nothing here does.
 */
#include <stdio.h>
#include <string.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_int.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "proto/kserve.pb-c.h"

/* Regions listed by a status call, newest first, in memory of x. */
struct gs__region {
	Inference__SystemSharedMemoryStatusResponse__RegionStatus sys;
	Inference__CudaSharedMemoryStatusResponse__RegionStatus cuda;
	char *name, *key;
	struct gs__region *next;
};

struct gs__region_list {
	struct gs__ctx *x;
	struct gs__region *head;
	size_t n;
};

static char *gs__strdup(struct gs__ctx *x, const char *s)
{
	size_t l = strlen(s) + 1;
	char *d = gs__alloc(x, 1, l);
	if (d)
		memcpy(d, s, l);
	return d;
}

/* Copies: the table's own strings may go as soon as its lock is dropped. */
static struct gs__region *gs__region_add(struct gs__region_list *l, const char *name,
					 const char *key)
{
	struct gs__region *r = gs__alloc(l->x, 1, sizeof(*r));
	if (!r || !(r->name = gs__strdup(l->x, name)) || !(r->key = gs__strdup(l->x, key)))
		return NULL;
	r->next = l->head;
	l->head = r;
	l->n++;
	return r;
}

static int gs__shm_add(void *arg, const char *name, const char *key, uint64_t off,
		       uint64_t size)
{
	struct gs__region *r = gs__region_add(arg, name, key);
	if (!r)
		return FERRY_ENOMEM;
	inference__system_shared_memory_status_response__region_status__init(&r->sys);
	r->sys.name = r->name;
	r->sys.key = r->key;
	r->sys.offset = off;
	r->sys.byte_size = size;
	return 0;
}

static int gs__cuda_add(void *arg, const char *name, int64_t dev, uint64_t size)
{
	struct gs__region *r = gs__region_add(arg, name, "");
	if (!r)
		return FERRY_ENOMEM;
	inference__cuda_shared_memory_status_response__region_status__init(&r->cuda);
	r->cuda.name = r->name;
	r->cuda.device_id = (uint64_t)dev;
	r->cuda.byte_size = size;
	return 0;
}

/*
 * The regions as a status reply's map<string, RegionStatus>: entries of d
 * (field 1 the name, field 2 the status), in the table's order, in memory
 * of x.  NULL when out of memory.
 */
static void **gs__region_map(struct gs__ctx *x, const struct gs__region_list *l,
			     const ProtobufCMessageDescriptor *d, bool cuda)
{
	const ProtobufCFieldDescriptor *fk = protobuf_c_message_descriptor_get_field(d, 1);
	const ProtobufCFieldDescriptor *fv = protobuf_c_message_descriptor_get_field(d, 2);
	void **ep = gs__alloc(x, l->n + 1, sizeof(*ep));
	size_t i = l->n;
	if (!ep || !fk || !fv)
		return NULL;
	for (struct gs__region *g = l->head; g; g = g->next) {
		uint8_t *e = gs__alloc(x, 1, d->sizeof_message);
		if (!e)
			return NULL;
		d->message_init((ProtobufCMessage *)e);
		*(char **)(e + fk->offset) = g->name;
		*(void **)(e + fv->offset) = cuda ? (void *)&g->cuda : (void *)&g->sys;
		ep[--i] = e;    /* the list is newest first */
	}
	return ep;
}

int gs__shm_status(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__SystemSharedMemoryStatusRequest *q = (Inference__SystemSharedMemoryStatusRequest *)req;
	Inference__SystemSharedMemoryStatusResponse *r = (Inference__SystemSharedMemoryStatusResponse *)reply;
	struct gs__region_list l = { .x = x };
	int ret = gs_shm_status(q->name, gs__shm_add, &l, x->err, sizeof(x->err));
	if (ret == FERRY_ENOMEM)
		return gs__fail(x, ret, "out of memory");
	if (ret)
		return ret;
	r->regions = (Inference__SystemSharedMemoryStatusResponse__RegionsEntry **)gs__region_map(
		x, &l, &inference__system_shared_memory_status_response__regions_entry__descriptor,
		false);
	if (!r->regions)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	r->n_regions = l.n;
	return 0;
}

int gs__shm_register(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__SystemSharedMemoryRegisterRequest *q = (Inference__SystemSharedMemoryRegisterRequest *)req;
	return gs_shm_register(q->name, q->key, q->offset, q->byte_size, x->err, sizeof(x->err));
}

int gs__shm_unregister(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__SystemSharedMemoryUnregisterRequest *q = (Inference__SystemSharedMemoryUnregisterRequest *)req;
	gs_shm_unregister(q->name);
	return 0;
}

int gs__cuda_status(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__CudaSharedMemoryStatusRequest *q = (Inference__CudaSharedMemoryStatusRequest *)req;
	Inference__CudaSharedMemoryStatusResponse *r = (Inference__CudaSharedMemoryStatusResponse *)reply;
	struct gs__region_list l = { .x = x };
	if (!gs_cuda_available())
		return gs__fail(x, FERRY_UNAVAILABLE, "CUDA shared memory is not available: this "
				"ferryd has no CUDA device");
	int ret = gs_cuda_status(q->name, gs__cuda_add, &l, x->err, sizeof(x->err));
	if (ret == FERRY_ENOMEM)
		return gs__fail(x, ret, "out of memory");
	if (ret)
		return ret;
	r->regions = (Inference__CudaSharedMemoryStatusResponse__RegionsEntry **)gs__region_map(
		x, &l, &inference__cuda_shared_memory_status_response__regions_entry__descriptor, true);
	if (!r->regions)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	r->n_regions = l.n;
	return 0;
}

int gs__cuda_register(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__CudaSharedMemoryRegisterRequest *q = (Inference__CudaSharedMemoryRegisterRequest *)req;
	return gs_cuda_register(q->name, q->raw_handle.data, q->raw_handle.len, q->device_id,
				q->byte_size, x->err, sizeof(x->err));
}

int gs__cuda_unregister(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__CudaSharedMemoryUnregisterRequest *q = (Inference__CudaSharedMemoryUnregisterRequest *)req;
	/* Succeeds without CUDA too: perf_analyzer calls it on every run. */
	gs_cuda_unregister(q->name);
	return 0;
}
