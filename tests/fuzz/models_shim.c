/* SPDX-License-Identifier: MIT */
/*
 * models_shim.c - a stand-in for broker/models/models.c in the submission fuzz target
 * and its regression test: session.c needs only models_by_id(),
 * models_replaced() and the table's read lock, and models.c would drag in the repository scan, the
 * plugin loader and ferryd's globals.  Single-threaded users only (the
 * lock is a no-op: the fuzz target has one thread and inline models).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ferry/errors.h>

#include "broker/frontends/metrics.h"
#include "broker/models/models.h"
#include "tests/fuzz/fuzz.h"

/*
 * What else session.c links against, stubbed: the metrics endpoint's
 * gauges (broker/frontends/metrics.c needs libmicrohttpd and ferryd's
 * globals).  Weak, so a program that links the real ones gets those.  The
 * GPU calls (arena pinning, CUDA regions) are broker/gpu's real ones:
 * without gpu_init() they answer "no GPU", as on a broker without one.
 */
__attribute__((weak)) struct metrics_gauges metrics_gauges;

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

/* models.c's rule: a retired record marked replaced, or an id whose
 * slot holds another record (only a reload takes one out). */
bool models_replaced(uint32_t id)
{
	uint32_t slot = id & 0xffff;

	if (slot >= (uint32_t)models_shim__n || (id >> 16) == 0)
		return false;
	const struct models_entry *m = &models_shim__tab[slot];
	if (m->id == id)
		return m->replaced && m->state != MODELS_READY;
	return true;
}

void models_rdlock(void)
{
}

void models_unlock(void)
{
}
