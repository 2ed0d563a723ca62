/* SPDX-License-Identifier: MIT */
/*
 * gs_shm.h - Triton's shared-memory extensions for the gRPC front end:
 * system shared memory (POSIX shm objects named by key) and CUDA shared
 * memory (IPC handles; built with CUDA only).  Prefix gs_shm_.
 *
 * THREADS AND LOCKS
 *
 * Every function may be called from any thread.  One mutex guards the
 * region tables; a request that uses a region holds a reference on it
 * (gs_shm_get / gs_shm_put), so an unregister during a request unmaps the
 * region only when the last request using it completes.
 *
 * TRUST
 *
 * Offsets and sizes come from the network: every one is checked against
 * the registered region (and the region against the object's size at
 * registration), with overflow-safe arithmetic.  A client that shrinks its
 * shm object after registering it could still make the broker fault on
 * access; gs_shm_get re-checks the object's size with fstat() on every
 * request to keep that window small (POSIX shm cannot be sealed).
 */
#ifndef FERRY_GS_SHM_H
#define FERRY_GS_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gs_shm_region;

/*
 * The most regions the table holds, system and CUDA together: each system
 * region keeps a file descriptor and a mapping, each CUDA region an open
 * IPC handle.  A registration past it is refused (FERRY_ENOSPC); status
 * always lists every region.
 */
#define GS_SHM_MAX_REGIONS 4096

/* Allow system shared memory (--allow-client-shm); off by default. */
void gs_shm_enable(bool on);
bool gs_shm_enabled(void);

/*
 * gs_shm_register - map byte_size bytes at offset of the POSIX shm object
 * `key` under `name`.  Returns 0; FERRY_UNAVAILABLE when disabled; FERRY_EINVAL
 * (bad name, key, size, or a range outside the object); FERRY_EBUSY (name
 * taken); FERRY_ENOENT (no such object); FERRY_ENOSPC (GS_SHM_MAX_REGIONS
 * regions registered); with a message in err.
 */
int gs_shm_register(const char *name, const char *key, uint64_t offset,
		    uint64_t byte_size, char *err, size_t errlen);

/* Unregister `name`, or every region when name is "" or NULL.  An
 * unknown name is not an error (Triton's behaviour). */
void gs_shm_unregister(const char *name);

/*
 * gs_shm_status - fn(arg, ...) for `name` (every region when "" or NULL),
 * under the table's lock (the strings are valid during the call only).
 * fn returns 0 to go on, or a negative code that stops the walk and is
 * returned.  FERRY_ENOENT when a named region does not exist.
 */
int gs_shm_status(const char *name,
		  int (*fn)(void *arg, const char *name, const char *key,
			    uint64_t offset, uint64_t byte_size),
		  void *arg, char *err, size_t errlen);

/*
 * gs_shm_get - the bytes [off, off + size) of region `name`, with a
 * reference that keeps them mapped until gs_shm_put().  FERRY_ENOENT for
 * an unknown region, FERRY_EINVAL for a range outside it.
 */
int gs_shm_get(const char *name, uint64_t off, uint64_t size,
	       struct gs_shm_region **out, uint8_t **ptr, char *err, size_t errlen);
void gs_shm_put(struct gs_shm_region *r);

/* Unmap everything (at shutdown, after the last request). */
void gs_shm_fini(void);

/* CUDA shared memory.  Without CUDA, register answers FERRY_UNAVAILABLE
 * and status / unregister see no regions.  Register counts against
 * GS_SHM_MAX_REGIONS (FERRY_ENOSPC past it); status is gs_shm_status's
 * walk over the CUDA regions. */
bool gs_cuda_available(void);
int gs_cuda_register(const char *name, const void *raw_handle, size_t handle_len,
		     int64_t device_id, uint64_t byte_size, char *err, size_t errlen);
void gs_cuda_unregister(const char *name);
/* Copy size bytes between host memory and [off, off + size) of CUDA
 * region `name` (bounds checked); FERRY_ENOENT when no such region. */
int gs_cuda_copy(const char *name, uint64_t off, void *host, uint64_t size,
		 bool to_device, char *err, size_t errlen);
int gs_cuda_status(const char *name,
		   int (*fn)(void *arg, const char *name, int64_t device_id,
			     uint64_t byte_size),
		   void *arg, char *err, size_t errlen);

#endif
