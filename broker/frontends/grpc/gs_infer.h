/* SPDX-License-Identifier: MIT */
/*
 * gs_infer.h - ModelInfer for the gRPC front end: a decoded
 * ModelInferRequest turned into a scheduler request (validated against
 * the model's config, typed contents converted, shared-memory references
 * resolved), and the ModelInferResponse built from the completed request.
 * Prefix gs_infer_.  Pure functions of their inputs and the shm table, so
 * the fuzz target drives them without a server.
 */
#ifndef FERRY_GS_INFER_H
#define FERRY_GS_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/config/modelcfg.h"
#include "broker/sched/sched.h"
#include "proto/kserve.pb-c.h"

struct gs_shm_region;

/* Where an output goes when the request names a shared-memory region. */
struct gs_out_shm {
	bool used;
	bool cuda;                      /* copy to the CUDA region at the end */
	struct gs_shm_region *sys;      /* else the system region (a reference
					 * in gs_infer.regions) */
	char *region;                   /* points into the request message */
	uint64_t offset, byte_size;
};

/*
 * One ModelInfer request from decoding to its response.  Owns what it
 * allocated (converted inputs, output buffers, region references); the
 * request message stays the caller's and must outlive it.
 */
struct gs_infer {
	struct sched_req req;           /* first: done() gets &req */
	const struct model_config *cfg;
	struct sched_tensor *t;         /* ninputs, then noutputs */
	void **owned;                   /* malloc'd buffers to free */
	int nowned, owned_cap;
	struct gs_shm_region **regions; /* references to drop */
	int nregions, regions_cap;
	int *out_order;                 /* outputs to return, in request order */
	int nout;
	struct gs_out_shm *out_shm;     /* by config output index */
	const char *id;                 /* the request's id, echoed */
};

/*
 * gs_infer_prepare - fill inf (zeroed by the caller) from msg for the model
 * whose configuration is cfg.  Checks names, datatypes, shapes (each
 * input against the config with the scheduler's sched_check_input, before
 * its data, so a wrong dtype or shape gets the code shared memory gives),
 * sizes, the raw / typed contents and every shared-memory reference;
 * sched_submit() checks the rest against the config.  Returns 0, or a
 * negative ferry code with err filled (FERRY_EINVAL, FERRY_DTYPE,
 * FERRY_SHAPE, FERRY_ENOENT for an unknown shm region, FERRY_ENOMEM).
 * Free with gs_infer_fini() either way.
 */
int gs_infer_prepare(struct gs_infer *inf, const Inference__ModelInferRequest *msg,
		     const struct model_config *cfg, char *err, size_t errlen);

/*
 * gs_infer_response - pack the ModelInferResponse of a completed, successful
 * request into a malloc'd buffer (*buf, *len; the caller frees it).  Outputs
 * bound for shared-memory regions are copied there first
 * (gs_infer_copy_out).  Returns 0 or a negative
 * code with err filled.
 */
int gs_infer_response(struct gs_infer *inf, const char *model_name, int64_t version,
		      uint8_t **buf, size_t *len, char *err, size_t errlen);

/*
 * gs_infer_copy_out - copy the outputs of a completed, successful request
 * that the client asked for in shared memory (system or CUDA regions)
 * into their regions; the backend wrote them into buffers of ours.  A
 * front end calls it once before it answers (gs_infer_response does).
 * Returns 0, or a negative code with err filled: FERRY_EINVAL when a
 * system region was truncated under the copy (the region is then marked
 * bad, see gs_shm_copy).
 */
int gs_infer_copy_out(struct gs_infer *inf, char *err, size_t errlen);

/* Release everything inf holds; leaves it zeroed. */
void gs_infer_fini(struct gs_infer *inf);

/* The KServe datatype name's ferry dtype; FERRY_TYPE_INVALID if unknown. */
ferry_dtype gs_dtype_parse(const char *name);

#endif
