/* SPDX-License-Identifier: MIT */
/*
 * gpu.h - ferryd's one door to CUDA.  The core (session arenas, CUDA IPC
 * regions of shm sessions), the gRPC front end (CUDA shared-memory
 * regions), metrics, the scheduler and every backend take their GPU
 * services from here; nothing else in the broker calls the CUDA runtime
 * for them (a backend's own kernels and streams are its business).
 * Prefix gpu_.
 *
 * Loading.  ferryd links no CUDA library.  gpu_init() looks for an NVIDIA
 * device node first (/dev/nvidiactl, /dev/nvidia0); only where one exists
 * does it dlopen() the module gpu_cuda.so (broker/gpu/gpu_cuda.c, the only
 * file of this module linked against libcudart), so a CPU-only node maps
 * no CUDA at all.  Without the module, or without a device, every call
 * below answers "no GPU": gpu_device_count() is 0 and the rest return
 * FERRY_UNAVAILABLE.
 *
 * Modules.  Modules are searched in $FERRY_MODULE_DIR, else in the
 * directory configure installs them to ($(pkglibdir)), else in the build
 * tree's module directories; each of the three may be a ':'-separated
 * list.  gpu_module_path() finds any module there (the ONNX executor's
 * CUDA half, ox_cuda.so, is one too).
 *
 * Plugins.  The calls below have default visibility: a backend plugin
 * that links this module and is loaded into ferryd (which exports its
 * symbols) binds to ferryd's copy, so there is one device table and one
 * IPC cache per process.
 *
 * Threads.  gpu_init() runs once, on the main thread, before any other
 * thread exists; everything else is safe from any thread.
 */
#ifndef FERRY_GPU_H
#define FERRY_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GPU_EXPORT __attribute__((visibility("default")))

/* Bytes of a CUDA IPC memory handle (cudaIpcMemHandle_t, CU_IPC_HANDLE_SIZE). */
#define GPU_IPC_HANDLE_BYTES 64

/*
 * gpu_init - probe for a GPU and load the CUDA module where there is one
 * @want: false (ferryd --gpu off) loads nothing
 * @why:  receives one line saying what was found or why nothing was
 *        loaded ("no NVIDIA device node", "gpu_cuda.so: <dlerror>",
 *        "2 CUDA device(s)"), for the start-up log; may be NULL
 * Returns the number of usable devices (0 when none).  Idempotent: a
 * second call returns the first one's answer and line.
 */
GPU_EXPORT int gpu_init(bool want, char *why, size_t whylen);

/* Release the module (after every user of the calls below is gone). */
GPU_EXPORT void gpu_fini(void);

/* Devices usable by this process; 0 before gpu_init() or without one. */
GPU_EXPORT int gpu_device_count(void);

/* Memory in use and in all on @device (cudaMemGetInfo). */
GPU_EXPORT int gpu_memory(int device, size_t *used, size_t *total);

/* The device's PCI bus id ("0000:3b:00.0", lower case) into @buf (>= 16 bytes). */
GPU_EXPORT int gpu_pci_bus_id(int device, char *buf, size_t len);

/*
 * gpu_numa_node - the NUMA node of @device from PCI sysfs.  Returns the
 * node (>= 0), FERRY_ENOENT when the kernel reports none (-1: a one-node
 * machine), or FERRY_UNAVAILABLE without such a device.
 * gpu_pci_numa_node does the lookup for any bus id under @sysfs_root
 * ("/sys"; tests pass their own), matched in lower case; FERRY_EINVAL for
 * a bus id with characters outside [0-9a-fA-F:.].  Neither needs CUDA.
 */
GPU_EXPORT int gpu_numa_node(int device);
GPU_EXPORT int gpu_pci_numa_node(const char *sysfs_root, const char *busid);

/* Pin the calling thread to the CPUs of NUMA node @node (libnuma); 0,
 * FERRY_ENOENT (no such node, or one without CPUs) or FERRY_EINVAL. */
GPU_EXPORT int gpu_pin_to_node(int node);

/* Whether GPU work pins its threads to its device's node (ferryd --numa;
 * on by default). */
GPU_EXPORT void gpu_set_numa(bool on);
GPU_EXPORT bool gpu_numa_enabled(void);

/*
 * gpu_host_register - page-lock [base, base + bytes) for every device
 * (cudaHostRegister, portable), so copies from and to it run at pinned
 * speed.  Pair with gpu_host_unregister() before the memory is unmapped.
 * 0, FERRY_EINVAL, FERRY_UNAVAILABLE (no GPU: nothing to do) or
 * FERRY_BACKEND when CUDA refuses the range.
 */
GPU_EXPORT int gpu_host_register(void *base, size_t bytes);
GPU_EXPORT int gpu_host_unregister(void *base);

/*
 * gpu_ipc_open - open a CUDA IPC memory handle (GPU_IPC_HANDLE_BYTES =
 * @handle_len bytes) on the device named by @pci_bus_id (NULL or "":
 * ordinal @device), and check that the allocation it maps starts at the
 * returned pointer and holds at least @bytes (> 0).  Handles are cached:
 * a handle already open on that device is shared and reference counted,
 * so two users of one allocation (two sessions, or a session and a gRPC
 * region) each get the same mapping.  *@dptr: the mapping, valid until
 * the matching gpu_ipc_close(); *@device_out: its device (may be NULL).
 * 0, or a ferry code with the reason in @err.
 */
GPU_EXPORT int gpu_ipc_open(const void *handle, size_t handle_len, const char *pci_bus_id,
			    int device, uint64_t bytes, void **dptr, int *device_out,
			    char *err, size_t errlen);
/* Drop one reference taken by gpu_ipc_open(); the last one unmaps. */
GPU_EXPORT void gpu_ipc_close(void *dptr);

/*
 * gpu_memcpy - copy @bytes between host and device memory (either side
 * may be either: unified addressing), synchronously.  0, FERRY_UNAVAILABLE
 * without a GPU, or FERRY_BACKEND with CUDA's message in @err.
 */
GPU_EXPORT int gpu_memcpy(void *dst, const void *src, size_t bytes, char *err,
			  size_t errlen);

/*
 * gpu_module_path - "<module dir>/<name>" in @buf (see Modules above) for
 * the first directory that holds @name (a file name, no '/'); 0, or
 * FERRY_ENOENT when none does (@buf then holds the directories searched,
 * for the error message), FERRY_EINVAL for a bad name or a short @buf.
 */
GPU_EXPORT int gpu_module_path(const char *name, char *buf, size_t len);

#endif /* FERRY_GPU_H */
