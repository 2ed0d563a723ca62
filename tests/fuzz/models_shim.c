/* SPDX-License-Identifier: MIT */
/*
 * models_shim.c - a stand-in for broker/models/models.c in the submission fuzz target
 * and its regression test: session.c needs only models_by_id() and the
 * table's read lock, and models.c would drag in the repository scan, the
 * plugin loader and ferryd's globals.  Single-threaded users only (the
 * lock is a no-op: the fuzz target has one thread and inline models).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ferry/errors.h>

#include "broker/frontends/metrics.h"
#include "broker/models/models.h"
#include "broker/backends/onnx/ox_backend.h"
#include "tests/fuzz/fuzz.h"

/*
 * What else session.c links against, stubbed: the metrics endpoint's
 * gauges (broker/frontends/metrics.c needs libmicrohttpd and ferryd's globals) and
 * the GPU pinning of arenas and CUDA regions (broker/backends/onnx/ox_backend.c;
 * never called here, session_limits.gpu_pin being false).  Weak, so a program that links
 * the real ones gets those.
 */
__attribute__((weak)) struct metrics_gauges metrics_gauges;

__attribute__((weak)) int ox_gpu_register_arena(void *base, size_t bytes)
{
	return FERRY_UNAVAILABLE;
}

__attribute__((weak)) int ox_gpu_unregister_arena(void *base)
{
	return FERRY_UNAVAILABLE;
}

/* CUDA regions: never opened here (no CUDA), so a submission naming one
 * finds none, as on a broker without a GPU. */
__attribute__((weak)) int ox_gpu_ipc_open(const void *handle, size_t handle_len,
					    const char *pci_bus_id, int device, uint64_t bytes,
					    void **dptr, int *device_out, char *err, size_t errlen)
{
	snprintf(err, errlen, "no CUDA in this program");
	return FERRY_UNAVAILABLE;
}

__attribute__((weak)) void ox_gpu_ipc_close(void *dptr, int device)
{
}

static struct models_entry *models_shim__tab;
static int models_shim__n;

void models_shim_set(struct models_entry *models, int n)
{
	models_shim__tab = models;
	models_shim__n = n;
}

/* Same numbering as models.c: low 16 bits the slot, high 16 bits its
 * generation, so a stale or forged id finds nothing. */
struct models_entry *models_by_id(uint32_t id)
{
	uint32_t slot = id & 0xffff;

	if (slot >= (uint32_t)models_shim__n || models_shim__tab[slot].id != id)
		return NULL;
	return &models_shim__tab[slot];
}

void models_rdlock(void)
{
}

void models_unlock(void)
{
}
