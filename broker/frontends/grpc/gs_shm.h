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
 * registration), with overflow-safe arithmetic.  A POSIX shm object cannot
 * be sealed: its owner can shrink it at any time, and touching a page past
 * its new end raises SIGBUS.  So ferryd never hands a region's memory to a
 * backend: inputs are copied out of it and outputs into it by
 * gs_shm_copy(), under the SIGBUS guard (shm/fshm_guard.c).  A copy that
 * meets a truncated object fails its request with FERRY_EINVAL and a
 * message, and marks the region bad: every later request on it fails the
 * same way until the client registers the region again.
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
 * gs_shm_get - a reference on region `name` that keeps it mapped until
 * gs_shm_put(), after checking that [off, off + size) lies inside it.
 * FERRY_ENOENT for an unknown region, FERRY_EINVAL for a range outside it
 * or a region marked bad.
 */
int gs_shm_get(const char *name, uint64_t off, uint64_t size,
	       struct gs_shm_region **out, char *err, size_t errlen);
void gs_shm_put(struct gs_shm_region *r);

/*
 * gs_shm_copy - copy size bytes between host memory and [off, off + size)
 * of a region the caller holds (gs_shm_get): into the region when
 * to_region, else out of it.  Under the SIGBUS guard: when the client
 * truncated its object, the region is marked bad and FERRY_EINVAL comes
 * back with a message saying so (host may then hold part of the bytes).
 * The one way ferryd touches a region's memory: the HTTP and gRPC front
 * ends both go through it (gs_infer_prepare for inputs,
 * gs_infer_copy_out for outputs).
 */
int gs_shm_copy(struct gs_shm_region *r, uint64_t off, void *host, uint64_t size,
		bool to_region, char *err, size_t errlen);

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
