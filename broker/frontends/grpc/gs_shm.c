/* SPDX-License-Identifier: MIT */
/*
 * gs_shm.c - system and CUDA shared-memory regions registered by gRPC
 * clients (Triton's shared-memory extensions).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_shm.h"
#include "broker/gpu/gpu.h"
#include "broker/core/log.h"
#include "shm/fshm.h"

#define GS_SHM_NAME_MAX 256

struct gs_shm_region {
	char name[GS_SHM_NAME_MAX];
	char key[GS_SHM_NAME_MAX];
	uint64_t offset, byte_size;
	int fd;
	void *map;                      /* the mapping, page aligned */
	size_t map_len;
	uint8_t *base;                  /* map + (offset % page) */
	_Atomic int refs;               /* the table's + one per request */
	/* Set when a copy met the object truncated under it (SIGBUS caught
	 * by fshm_guard_copy): every later request on the region fails at
	 * once, until the client registers it again. */
	_Atomic bool bad;
	struct gs_shm_region *next;     /* table list; gs__shm__lock */
};

static pthread_mutex_t gs__shm__lock = PTHREAD_MUTEX_INITIALIZER;
static struct gs_shm_region *gs__shm__list;   /* gs__shm__lock */
static int gs__shm__n;          /* regions of both kinds; gs__shm__lock */
static _Atomic bool gs__shm__on;

void gs_shm_enable(bool on)
{
	/* The SIGBUS guard is in place before the first region is mapped. */
	int ret = on ? fshm_guard_init() : 0;
	if (ret) {
		log_error("system shared memory stays off: cannot install the SIGBUS guard: %s",
			  strerror(-ret));
		on = false;
	}
	atomic_store(&gs__shm__on, on);
}

bool gs_shm_enabled(void)
{
	return atomic_load(&gs__shm__on);
}

static void gs__shm__free(struct gs_shm_region *r)
{
	if (r->map && r->map != MAP_FAILED)
		munmap(r->map, r->map_len);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* The one message for a region whose object shrank under a copy. */
static void gs__shm__bad_msg(const struct gs_shm_region *r, char *err, size_t errlen)
{
	snprintf(err, errlen, "shared memory region '%s': the object '%s' was truncated below "
		 "the registered %llu bytes at offset %llu while in use; unregister the region "
		 "and register it again", r->name, r->key, (unsigned long long)r->byte_size,
		 (unsigned long long)r->offset);
}

void gs_shm_put(struct gs_shm_region *r)
{
	/* acq_rel: the last dropper sees every access of the others (their
	 * reads and writes of the mapping) before unmapping. */
	if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
		gs__shm__free(r);
}

/* Lock held: can one more region of either kind be registered? */
static int gs__shm__room(const char *what, const char *name, char *err, size_t errlen)
{
	if (gs__shm__n < GS_SHM_MAX_REGIONS)
		return 0;
	snprintf(err, errlen, "%s region '%s': %d shared memory regions are registered, the "
		 "most this server holds (system and CUDA together); unregister some first",
		 what, name, GS_SHM_MAX_REGIONS);
	return FERRY_ENOSPC;
}

static struct gs_shm_region *gs__shm__find(const char *name)
{
	for (struct gs_shm_region *r = gs__shm__list; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;
	return NULL;
}

int gs_shm_register(const char *name, const char *key, uint64_t offset,
		    uint64_t byte_size, char *err, size_t errlen)
{
	struct stat st;
	int ret;

	if (!gs_shm_enabled()) {
		snprintf(err, errlen, "system shared memory is disabled on this server "
			 "(ferryd --allow-client-shm enables it)");
		return FERRY_UNAVAILABLE;
	}
	if (!name || !*name || strlen(name) >= GS_SHM_NAME_MAX) {
		snprintf(err, errlen, "a region name of 1 to %d bytes is required",
			 GS_SHM_NAME_MAX - 1);
		return FERRY_EINVAL;
	}
	/* A POSIX shm name: one component, no path tricks. */
	if (!key || !*key || strlen(key) >= GS_SHM_NAME_MAX ||
	    strchr(key + (key[0] == '/'), '/') || !strcmp(key, "/") ||
	    !strcmp(key + (key[0] == '/'), ".") || !strcmp(key + (key[0] == '/'), "..")) {
		snprintf(err, errlen, "'%s' is not a valid shared memory key",
			 key ? key : "");
		return FERRY_EINVAL;
	}
	if (byte_size == 0 || byte_size > (1ULL << 40) || offset > (1ULL << 40)) {
		snprintf(err, errlen, "region '%s': offset %llu and byte size %llu are out of range",
			 name, (unsigned long long)offset, (unsigned long long)byte_size);
		return FERRY_EINVAL;
	}
	struct gs_shm_region *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ENOMEM;
	}
	r->fd = -1;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->offset = offset;
	r->byte_size = byte_size;
	atomic_init(&r->refs, 1);
	atomic_init(&r->bad, false);

	r->fd = shm_open(key, O_RDWR | O_CLOEXEC, 0);
	if (r->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "unable to open shared memory region '%s' (key '%s'): %s",
			 name, key, strerror(e));
		ret = e == ENOENT ? FERRY_EINVAL : e == EACCES ? FERRY_EPERM : -e;
		goto fail;
	}
	if (fstat(r->fd, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < offset || (uint64_t)st.st_size - offset < byte_size) {
		snprintf(err, errlen, "shared memory region '%s': %llu bytes at offset %llu do "
			 "not fit the object '%s' (%lld bytes)", name,
			 (unsigned long long)byte_size, (unsigned long long)offset, key,
			 (long long)st.st_size);
		ret = FERRY_EINVAL;
		goto fail;
	}
	long page = sysconf(_SC_PAGESIZE);
	uint64_t map_off = offset - offset % (uint64_t)page;
	r->map_len = (size_t)(byte_size + (offset - map_off));
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)map_off);
	if (r->map == MAP_FAILED) {
		snprintf(err, errlen, "unable to map shared memory region '%s': %s", name,
			 strerror(errno));
		ret = FERRY_ENOMEM;
		goto fail;
	}
	r->base = (uint8_t *)r->map + (offset - map_off);

	pthread_mutex_lock(&gs__shm__lock);
	if (gs__shm__find(name)) {
		pthread_mutex_unlock(&gs__shm__lock);
		snprintf(err, errlen, "shared memory region '%s' already in manager", name);
		ret = FERRY_EBUSY;
		goto fail;
	}
	if ((ret = gs__shm__room("shared memory", name, err, errlen))) {
		pthread_mutex_unlock(&gs__shm__lock);
		goto fail;
	}
	r->next = gs__shm__list;
	gs__shm__list = r;
	gs__shm__n++;
	pthread_mutex_unlock(&gs__shm__lock);
	log_debug("shm region '%s': key %s, %llu bytes at %llu", name, key,
		  (unsigned long long)byte_size, (unsigned long long)offset);
	return 0;
fail:
	gs__shm__free(r);
	return ret;
}

void gs_shm_unregister(const char *name)
{
	struct gs_shm_region *drop = NULL;

	pthread_mutex_lock(&gs__shm__lock);
	struct gs_shm_region **pp = &gs__shm__list;
	while (*pp) {
		struct gs_shm_region *r = *pp;
		if (!name || !*name || !strcmp(r->name, name)) {
			*pp = r->next;
			r->next = drop;
			drop = r;
			gs__shm__n--;
		} else {
			pp = &r->next;
		}
	}
	pthread_mutex_unlock(&gs__shm__lock);
	while (drop) {
		struct gs_shm_region *n = drop->next;
		gs_shm_put(drop);
		drop = n;
	}
}

int gs_shm_status(const char *name,
		  int (*fn)(void *arg, const char *name, const char *key,
			    uint64_t offset, uint64_t byte_size),
		  void *arg, char *err, size_t errlen)
{
	int found = 0, ret = 0;
	pthread_mutex_lock(&gs__shm__lock);
	for (struct gs_shm_region *r = gs__shm__list; r && !ret; r = r->next) {
		if (name && *name && strcmp(r->name, name))
			continue;
		ret = fn(arg, r->name, r->key, r->offset, r->byte_size);
		found++;
	}
	pthread_mutex_unlock(&gs__shm__lock);
	if (ret)
		return ret;
	if (name && *name && !found) {
		snprintf(err, errlen, "Unable to find system shared memory region: '%s'", name);
		return FERRY_ENOENT;
	}
	return 0;
}

int gs_shm_get(const char *name, uint64_t off, uint64_t size,
	       struct gs_shm_region **out, char *err, size_t errlen)
{
	pthread_mutex_lock(&gs__shm__lock);
	struct gs_shm_region *r = name ? gs__shm__find(name) : NULL;
	if (r)
		atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&gs__shm__lock);
	if (!r) {
		snprintf(err, errlen, "Unable to find shared memory region: '%s'",
			 name ? name : "");
		return FERRY_ENOENT;
	}
	if (off > r->byte_size || size > r->byte_size - off) {
		snprintf(err, errlen, "shared memory region '%s': %llu bytes at offset %llu "
			 "lie outside the region (%llu bytes)", name,
			 (unsigned long long)size, (unsigned long long)off,
			 (unsigned long long)r->byte_size);
		gs_shm_put(r);
		return FERRY_EINVAL;
	}
	if (atomic_load_explicit(&r->bad, memory_order_relaxed)) {
		gs__shm__bad_msg(r, err, errlen);
		gs_shm_put(r);
		return FERRY_EINVAL;
	}
	*out = r;
	return 0;
}

int gs_shm_copy(struct gs_shm_region *r, uint64_t off, void *host, uint64_t size,
		bool to_region, char *err, size_t errlen)
{
	if (off > r->byte_size || size > r->byte_size - off) {
		snprintf(err, errlen, "shared memory region '%s': %llu bytes at offset %llu "
			 "lie outside the region (%llu bytes)", r->name,
			 (unsigned long long)size, (unsigned long long)off,
			 (unsigned long long)r->byte_size);
		return FERRY_EINVAL;
	}
	if (atomic_load_explicit(&r->bad, memory_order_relaxed)) {
		gs__shm__bad_msg(r, err, errlen);
		return FERRY_EINVAL;
	}
	uint8_t *p = r->base + off;
	int ret = to_region ? fshm_guard_copy(p, host, (size_t)size)
			    : fshm_guard_copy(host, p, (size_t)size);
	if (ret == -EFAULT) {
		if (!atomic_exchange(&r->bad, true))
			log_warn("shared memory region '%s' (key '%s'): the object was truncated "
				 "while ferryd %s it; the region is marked bad until it is "
				 "registered again", r->name, r->key,
				 to_region ? "wrote an output into" : "read an input from");
		gs__shm__bad_msg(r, err, errlen);
		return FERRY_EINVAL;
	}
	if (ret) {
		snprintf(err, errlen, "shared memory region '%s': %s", r->name, strerror(-ret));
		return FERRY_EINVAL;
	}
	return 0;
}

void gs_shm_fini(void)
{
	gs_shm_unregister(NULL);
	gs_cuda_unregister(NULL);
}

/* ---------------------------------------------------------------------- */
/* CUDA shared memory                                                      */

/* An IPC handle is opened once at registration (gpu_ipc_open, which
 * shares one mapping with any other user of the allocation) and kept here
 * until unregistered: opening it per request costs milliseconds. */
struct gs__cuda_region {
	char name[GS_SHM_NAME_MAX];
	int64_t device_id;
	uint64_t byte_size;
	void *dptr;
	struct gs__cuda_region *next;
};
static struct gs__cuda_region *gs__cuda__list;  /* gs__shm__lock */

bool gs_cuda_available(void)
{
	return gpu_device_count() > 0;
}

int gs_cuda_register(const char *name, const void *raw_handle, size_t handle_len,
		     int64_t device_id, uint64_t byte_size, char *err, size_t errlen)
{
	char why[256];

	if (!gs_cuda_available()) {
		snprintf(err, errlen, "CUDA shared memory is not available: this ferryd has no "
			 "CUDA device");
		return FERRY_UNAVAILABLE;
	}
	if (!name || !*name || strlen(name) >= GS_SHM_NAME_MAX) {
		snprintf(err, errlen, "a region name of 1 to %d bytes is required",
			 GS_SHM_NAME_MAX - 1);
		return FERRY_EINVAL;
	}
	if (handle_len != GPU_IPC_HANDLE_BYTES) {
		snprintf(err, errlen, "raw_handle of %zu bytes, a CUDA IPC handle has %d",
			 handle_len, GPU_IPC_HANDLE_BYTES);
		return FERRY_EINVAL;
	}
	if (device_id < 0 || device_id >= gpu_device_count()) {
		snprintf(err, errlen, "no CUDA device %lld", (long long)device_id);
		return FERRY_EINVAL;
	}
	struct gs__cuda_region *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ENOMEM;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->device_id = device_id;
	r->byte_size = byte_size;
	int ret = gpu_ipc_open(raw_handle, handle_len, NULL, (int)device_id, byte_size,
			       &r->dptr, NULL, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "failed to open CUDA IPC handle of region '%s': %s", name,
			 why);
		free(r);
		return ret;
	}
	pthread_mutex_lock(&gs__shm__lock);
	for (struct gs__cuda_region *o = gs__cuda__list; o; o = o->next) {
		if (!strcmp(o->name, name)) {
			pthread_mutex_unlock(&gs__shm__lock);
			gpu_ipc_close(r->dptr);
			free(r);
			snprintf(err, errlen, "shared memory region '%s' already in manager", name);
			return FERRY_EBUSY;
		}
	}
	int full = gs__shm__room("cuda shared memory", name, err, errlen);
	if (full) {
		pthread_mutex_unlock(&gs__shm__lock);
		gpu_ipc_close(r->dptr);
		free(r);
		return full;
	}
	r->next = gs__cuda__list;
	gs__cuda__list = r;
	gs__shm__n++;
	pthread_mutex_unlock(&gs__shm__lock);
	return 0;
}

void gs_cuda_unregister(const char *name)
{
	pthread_mutex_lock(&gs__shm__lock);
	struct gs__cuda_region **pp = &gs__cuda__list;
	while (*pp) {
		struct gs__cuda_region *r = *pp;
		if (!name || !*name || !strcmp(r->name, name)) {
			*pp = r->next;
			gpu_ipc_close(r->dptr);
			free(r);
			gs__shm__n--;
		} else {
			pp = &r->next;
		}
	}
	pthread_mutex_unlock(&gs__shm__lock);
}

int gs_cuda_copy(const char *name, uint64_t off, void *host, uint64_t size,
		 bool to_device, char *err, size_t errlen)
{
	int ret = 0;
	pthread_mutex_lock(&gs__shm__lock);
	struct gs__cuda_region *r = gs__cuda__list;
	while (r && strcmp(r->name, name))
		r = r->next;
	if (!r) {
		ret = FERRY_ENOENT;
		snprintf(err, errlen, "Unable to find shared memory region: '%s'", name);
	} else if (off > r->byte_size || size > r->byte_size - off) {
		ret = FERRY_EINVAL;
		snprintf(err, errlen, "cuda shared memory region '%s': %llu bytes at offset %llu "
			 "lie outside the region (%llu bytes)", name, (unsigned long long)size,
			 (unsigned long long)off, (unsigned long long)r->byte_size);
	} else {
		/* Under the lock: an unregister cannot close the handle
		 * during the copy. */
		char *d = (char *)r->dptr + off, why[256];
		if (gpu_memcpy(to_device ? d : host, to_device ? host : d, size, why,
			       sizeof(why))) {
			ret = FERRY_EINVAL;
			snprintf(err, errlen, "cuda shared memory region '%s': %s", name, why);
		}
	}
	pthread_mutex_unlock(&gs__shm__lock);
	return ret;
}

int gs_cuda_status(const char *name,
		   int (*fn)(void *arg, const char *name, int64_t device_id,
			     uint64_t byte_size),
		   void *arg, char *err, size_t errlen)
{
	int found = 0, ret = 0;
	pthread_mutex_lock(&gs__shm__lock);
	for (struct gs__cuda_region *r = gs__cuda__list; r && !ret; r = r->next) {
		if (name && *name && strcmp(r->name, name))
			continue;
		ret = fn(arg, r->name, r->device_id, r->byte_size);
		found++;
	}
	pthread_mutex_unlock(&gs__shm__lock);
	if (ret)
		return ret;
	if (name && *name && !found) {
		snprintf(err, errlen, "Unable to find cuda shared memory region: '%s'", name);
		return FERRY_ENOENT;
	}
	return 0;
}
