/* SPDX-License-Identifier: MIT */
/*
 * gpu.c - the GPU services of ferryd (see gpu.h), without CUDA: the device
 * node probe, the module loader, the IPC handle cache and the NUMA
 * lookups.  Every CUDA call goes through the table of gpu_cuda.so.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <numa.h>

#include <ferry/errors.h>

#include "broker/gpu/gpu.h"
#include "broker/gpu/gpu_int.h"

#ifndef GPU_MODULE_DIR_INSTALL
#define GPU_MODULE_DIR_INSTALL ""
#endif
#ifndef GPU_MODULE_DIR_BUILD
#define GPU_MODULE_DIR_BUILD ""
#endif

/*
 * Written by gpu_init() / gpu__use() on the main thread before any other
 * thread exists (or by gpu_fini() after they are gone); read-only in
 * between, so the other calls read them without a lock.
 */
static bool gpu__inited;
static void *gpu__dl;			/* dlopen() handle of the module */
static const struct gpu__ops *gpu__ops;	/* NULL: no GPU */
static int gpu__ndev;
static char gpu__why[512];

static atomic_bool gpu__numa = true;

/*
 * One open IPC handle; gpu__ipc_lock guards the list and every field.
 * Keyed by the handle's bytes and the device it was opened on: CUDA maps
 * one allocation once per process and device, so a second user must share
 * the first one's mapping.
 */
struct gpu__ipc {
	unsigned char handle[GPU_IPC_HANDLE_BYTES];
	int device;
	void *dptr;
	uint64_t bytes;			/* the whole allocation */
	unsigned refs;
	struct gpu__ipc *next;
};
static pthread_mutex_t gpu__ipc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gpu__ipc *gpu__ipc_list;	/* gpu__ipc_lock */

/*
 * The CUDA runtime may change the calling thread's signal mask on first
 * use (seen with cudart 12 and no driver: ferryd then died of the SIGTERM
 * it handles through signalfd).  Every module call runs with the caller's
 * mask put back afterwards.
 */
#define GPU__CALL(expr)                                                       \
	({                                                                    \
		sigset_t gpu__saved;                                          \
		pthread_sigmask(SIG_SETMASK, NULL, &gpu__saved);              \
		__typeof__(expr) gpu__r = (expr);                             \
		pthread_sigmask(SIG_SETMASK, &gpu__saved, NULL);              \
		gpu__r;                                                       \
	})

/* ---------------------------------------------------------------------- */
/* modules */

/* Try each directory of the ':'-separated @dirs; 0 when @name is there. */
static int gpu__search(const char *dirs, const char *name, char *buf, size_t len,
		       char *tried, size_t triedlen)
{
	while (dirs && *dirs) {
		const char *end = strchr(dirs, ':');
		size_t n = end ? (size_t)(end - dirs) : strlen(dirs);

		if (n) {
			size_t at = strlen(tried);

			if ((size_t)snprintf(buf, len, "%.*s/%s", (int)n, dirs, name) < len &&
			    access(buf, R_OK) == 0)
				return 0;
			snprintf(tried + at, triedlen - at, "%s%.*s", at ? ", " : "", (int)n,
				 dirs);
		}
		dirs = end ? end + 1 : NULL;
	}
	return FERRY_ENOENT;
}

int gpu_module_path(const char *name, char *buf, size_t len)
{
	char tried[1024] = "";
	const char *env = getenv("FERRY_MODULE_DIR");

	if (!name || !*name || strchr(name, '/') || !buf || len < 2)
		return FERRY_EINVAL;
	/* $FERRY_MODULE_DIR, when set, is the only place searched: it must
	 * be able to hide an installed copy */
	if (env && *env) {
		if (gpu__search(env, name, buf, len, tried, sizeof(tried)) == 0)
			return 0;
	} else if (gpu__search(GPU_MODULE_DIR_INSTALL, name, buf, len, tried,
			       sizeof(tried)) == 0 ||
		   gpu__search(GPU_MODULE_DIR_BUILD, name, buf, len, tried,
			       sizeof(tried)) == 0) {
		return 0;
	}
	snprintf(buf, len, "%s", tried[0] ? tried : "(no module directory)");
	return FERRY_ENOENT;
}

/* ---------------------------------------------------------------------- */
/* loading */

static bool gpu__device_node(void)
{
	return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;
}

int gpu__use(const struct gpu__ops *ops, char *why, size_t whylen)
{
	char err[200] = "";
	int n;

	gpu__inited = true;
	gpu__ops = NULL;
	gpu__ndev = 0;
	if (!ops) {
		snprintf(gpu__why, sizeof(gpu__why), "no CUDA module");
		goto out;
	}
	if (ops->size < sizeof(*ops)) {
		snprintf(gpu__why, sizeof(gpu__why), "%s is older than this ferryd "
			 "(table of %zu bytes, %zu expected)", GPU__MODULE, ops->size,
			 sizeof(*ops));
		goto out;
	}
	n = GPU__CALL(ops->device_count(err, sizeof(err)));
	if (n < 0) {
		snprintf(gpu__why, sizeof(gpu__why), "CUDA finds no usable device: %s",
			 err[0] ? err : ferry_strerror(n));
		goto out;
	}
	if (n == 0) {
		snprintf(gpu__why, sizeof(gpu__why), "CUDA finds no device");
		goto out;
	}
	gpu__ops = ops;
	gpu__ndev = n;
	snprintf(gpu__why, sizeof(gpu__why), "%d CUDA device(s)", n);
out:
	if (why && whylen)
		snprintf(why, whylen, "%s", gpu__why);
	return gpu__ndev;
}

int gpu_init(bool want, char *why, size_t whylen)
{
	char path[1024];
	const struct gpu__ops *ops;
	void *sym;

	if (gpu__inited)
		goto out;
	gpu__inited = true;
	if (!want) {
		snprintf(gpu__why, sizeof(gpu__why), "GPU support turned off (--gpu off)");
		goto out;
	}
	/* No device node, no driver: then CUDA is not even opened. */
	if (!gpu__device_node()) {
		snprintf(gpu__why, sizeof(gpu__why), "no NVIDIA device node "
			 "(/dev/nvidiactl): CUDA not loaded");
		goto out;
	}
	if (gpu_module_path(GPU__MODULE, path, sizeof(path))) {
#ifdef HAVE_CUDA
		snprintf(gpu__why, sizeof(gpu__why), "%s not found (searched %.400s; "
			 "set FERRY_MODULE_DIR)", GPU__MODULE, path);
#else
		snprintf(gpu__why, sizeof(gpu__why), "this ferryd was built without CUDA");
#endif
		goto out;
	}
	gpu__dl = GPU__CALL(dlopen(path, RTLD_NOW | RTLD_LOCAL));
	if (!gpu__dl) {
		snprintf(gpu__why, sizeof(gpu__why), "%.300s: %.200s", path, dlerror());
		goto out;
	}
	sym = dlsym(gpu__dl, GPU__OPS_SYMBOL);
	if (!sym) {
		snprintf(gpu__why, sizeof(gpu__why), "%.400s has no %s", path, GPU__OPS_SYMBOL);
		goto out;
	}
	ops = sym;
	/* The module stays loaded even without a device: unloading the CUDA
	 * runtime after it has initialised is not safe. */
	gpu__use(ops, NULL, 0);
out:
	if (why && whylen)
		snprintf(why, whylen, "%s", gpu__why);
	return gpu__ndev;
}

void gpu_fini(void)
{
	pthread_mutex_lock(&gpu__ipc_lock);
	while (gpu__ipc_list) {
		struct gpu__ipc *e = gpu__ipc_list;

		gpu__ipc_list = e->next;
		if (gpu__ops)
			GPU__CALL(gpu__ops->ipc_close(e->dptr, e->device));
		free(e);
	}
	pthread_mutex_unlock(&gpu__ipc_lock);
	/* the module itself stays mapped (see gpu_init) */
	gpu__ops = NULL;
	gpu__ndev = 0;
	gpu__inited = false;
}

int gpu_device_count(void)
{
	return gpu__ndev;
}

/* ---------------------------------------------------------------------- */
/* devices */

static bool gpu__dev_ok(int device)
{
	return gpu__ops && device >= 0 && device < gpu__ndev;
}

int gpu_memory(int device, size_t *used, size_t *total)
{
	if (!used || !total)
		return FERRY_EINVAL;
	*used = *total = 0;
	if (!gpu__dev_ok(device))
		return FERRY_UNAVAILABLE;
	return GPU__CALL(gpu__ops->memory(device, used, total));
}

int gpu_pci_bus_id(int device, char *buf, size_t len)
{
	if (!buf || len < 16)
		return FERRY_EINVAL;
	if (!gpu__dev_ok(device))
		return FERRY_UNAVAILABLE;
	int rc = GPU__CALL(gpu__ops->pci_bus_id(device, buf, len));

	if (rc)
		return rc;
	/* sysfs spells the hex digits in lower case */
	for (char *p = buf; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

int gpu_pci_numa_node(const char *sysfs_root, const char *busid)
{
	char id[64], path[4200], line[32];
	size_t n;
	FILE *f;
	long v;

	if (!sysfs_root || !busid || !*busid || (n = strlen(busid)) >= sizeof(id))
		return FERRY_EINVAL;
	/* the id becomes a path component: hex digits, ':' and '.' only */
	for (size_t k = 0; k <= n; k++) {
		if (busid[k] && !isxdigit((unsigned char)busid[k]) && busid[k] != ':' &&
		    busid[k] != '.')
			return FERRY_EINVAL;
		id[k] = (char)tolower((unsigned char)busid[k]);
	}
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/numa_node", sysfs_root, id);
	f = fopen(path, "re");
	if (!f)
		return FERRY_ENOENT;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return FERRY_ENOENT;
	}
	fclose(f);
	v = strtol(line, NULL, 10);
	/* -1: the platform has no NUMA information (one node) */
	return v >= 0 && v < 4096 ? (int)v : FERRY_ENOENT;
}

int gpu_numa_node(int device)
{
	char id[64];
	int rc = gpu_pci_bus_id(device, id, sizeof(id));

	return rc ? rc : gpu_pci_numa_node("/sys", id);
}

int gpu_pin_to_node(int node)
{
	struct bitmask *cpus;
	int rc;

	if (node < 0 || numa_available() < 0 || node > numa_max_node())
		return FERRY_ENOENT;
	cpus = numa_allocate_cpumask();
	if (!cpus)
		return FERRY_ENOMEM;
	if (numa_node_to_cpus(node, cpus) || numa_bitmask_weight(cpus) == 0) {
		numa_free_cpumask(cpus);
		return FERRY_ENOENT;
	}
	/* pid 0: the calling thread alone */
	rc = numa_sched_setaffinity(0, cpus);
	numa_free_cpumask(cpus);
	return rc ? FERRY_EINVAL : 0;
}

void gpu_set_numa(bool on)
{
	atomic_store_explicit(&gpu__numa, on, memory_order_relaxed);
}

bool gpu_numa_enabled(void)
{
	/* relaxed: a setting, read by instance threads started after it */
	return atomic_load_explicit(&gpu__numa, memory_order_relaxed);
}

/* ---------------------------------------------------------------------- */
/* host memory */

int gpu_host_register(void *base, size_t bytes)
{
	if (!base || !bytes)
		return FERRY_EINVAL;
	if (!gpu__ops)
		return FERRY_UNAVAILABLE;
	return GPU__CALL(gpu__ops->host_register(base, bytes));
}

int gpu_host_unregister(void *base)
{
	if (!base)
		return FERRY_EINVAL;
	if (!gpu__ops)
		return FERRY_UNAVAILABLE;
	return GPU__CALL(gpu__ops->host_unregister(base));
}

int gpu_memcpy(void *dst, const void *src, size_t bytes, char *err, size_t errlen)
{
	if (!gpu__ops) {
		snprintf(err, errlen, "this ferryd sees no CUDA device");
		return FERRY_UNAVAILABLE;
	}
	if (!bytes)
		return 0;
	if (!dst || !src) {
		snprintf(err, errlen, "NULL argument");
		return FERRY_EINVAL;
	}
	return gpu__ops->memcpy(dst, src, bytes, err, errlen);
}

/* ---------------------------------------------------------------------- */
/* IPC handles */

/* The device a client named: by PCI bus id (its ordinal may not be ours:
 * CUDA_VISIBLE_DEVICES differs between processes), else by ordinal. */
static int gpu__ipc_device(const char *pci_bus_id, int device, int *dev, char *err,
			   size_t errlen)
{
	if (pci_bus_id && *pci_bus_id) {
		if (GPU__CALL(gpu__ops->device_by_pci(pci_bus_id, dev)) || !gpu__dev_ok(*dev)) {
			snprintf(err, errlen, "no CUDA device at PCI bus id %.32s visible to "
				 "ferryd", pci_bus_id);
			return FERRY_ENOENT;
		}
		return 0;
	}
	if (!gpu__dev_ok(device)) {
		snprintf(err, errlen, "no CUDA device %d (ferryd sees %d)", device, gpu__ndev);
		return FERRY_ENOENT;
	}
	*dev = device;
	return 0;
}

int gpu_ipc_open(const void *handle, size_t handle_len, const char *pci_bus_id,
		 int device, uint64_t bytes, void **dptr, int *device_out,
		 char *err, size_t errlen)
{
	struct gpu__ipc *e;
	int dev = -1, rc;

	if (!handle || !dptr) {
		snprintf(err, errlen, "NULL argument");
		return FERRY_EINVAL;
	}
	if (handle_len != GPU_IPC_HANDLE_BYTES) {
		snprintf(err, errlen, "a CUDA IPC handle has %d bytes, not %zu",
			 GPU_IPC_HANDLE_BYTES, handle_len);
		return FERRY_EINVAL;
	}
	if (bytes == 0) {
		snprintf(err, errlen, "a CUDA region of 0 bytes");
		return FERRY_EINVAL;
	}
	if (!gpu__ops) {
		snprintf(err, errlen, "this ferryd sees no CUDA device");
		return FERRY_UNAVAILABLE;
	}
	if ((rc = gpu__ipc_device(pci_bus_id, device, &dev, err, errlen)))
		return rc;
	/* Held across the open: two users of one new handle must not both
	 * open it (CUDA refuses the second).  Opens are rare (registration). */
	pthread_mutex_lock(&gpu__ipc_lock);
	for (e = gpu__ipc_list; e; e = e->next)
		if (e->device == dev && !memcmp(e->handle, handle, GPU_IPC_HANDLE_BYTES))
			break;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			rc = FERRY_ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		rc = GPU__CALL(gpu__ops->ipc_open(handle, dev, &e->dptr, &e->bytes, err,
						  errlen));
		if (rc) {
			free(e);
			goto out;
		}
		memcpy(e->handle, handle, GPU_IPC_HANDLE_BYTES);
		e->device = dev;
		e->next = gpu__ipc_list;
		gpu__ipc_list = e;
	}
	/* The mapping covers the whole allocation the handle was made from;
	 * its size must hold what this user declared. */
	if (e->bytes < bytes) {
		rc = FERRY_EINVAL;
		snprintf(err, errlen, "the shared allocation has %llu bytes, %llu were "
			 "declared", (unsigned long long)e->bytes, (unsigned long long)bytes);
		if (!e->refs) {
			gpu__ipc_list = e->next;
			GPU__CALL(gpu__ops->ipc_close(e->dptr, e->device));
			free(e);
		}
		goto out;
	}
	e->refs++;
	*dptr = e->dptr;
	if (device_out)
		*device_out = dev;
out:
	pthread_mutex_unlock(&gpu__ipc_lock);
	return rc;
}

void gpu_ipc_close(void *dptr)
{
	struct gpu__ipc **pp, *e = NULL;

	if (!dptr)
		return;
	pthread_mutex_lock(&gpu__ipc_lock);
	for (pp = &gpu__ipc_list; *pp; pp = &(*pp)->next)
		if ((*pp)->dptr == dptr) {
			e = *pp;
			break;
		}
	if (e && --e->refs == 0) {
		*pp = e->next;
		if (gpu__ops)
			GPU__CALL(gpu__ops->ipc_close(e->dptr, e->device));
		free(e);
	}
	pthread_mutex_unlock(&gpu__ipc_lock);
}
