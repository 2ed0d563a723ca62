/* SPDX-License-Identifier: MIT */
/*
 * sched_model.c - creating a model version's scheduler from its config
 * (levels, instances and their threads, the backend's model and instance
 * initialisation) and destroying it.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/backend.h>
#include <ferry/errors.h>

#include "broker/gpu/gpu.h"
#include "broker/sched/be_host.h"
#include "broker/sched/sched.h"
#include "broker/sched/sched_int.h"

/* ------------------------------------------------------------------ */
/* Create / destroy                                                    */

static void sched__be_error_msg(ferry_be_error *e, char *err, size_t errlen, const char *fmt,
			       const char *a, const char *b)
{
	char head[256];

	snprintf(head, sizeof(head), fmt, a, b);
	sched__msg(err, errlen, "%s: %s", head, ferry_be_error_message(e));
	ferry_be_error_delete(e);
}

void sched_model_destroy(struct sched_model *m)
{
	if (!m)
		return;
	/* Threads must be gone (sched_model_stop); a failed create may have
	 * started some. */
	if (!m->stopping)
		sched_model_stop(m);
	const struct be_ops *ops = m->bm.backend ? &m->bm.backend->ops : NULL;
	for (uint32_t i = 0; m->inst && i < m->ninst; i++) {
		struct sched__inst *in = &m->inst[i];
		if (in->be_init && ops->instance_finalize) {
			ferry_be_error *e = ops->instance_finalize(&in->be);
			if (e) {
				fprintf(stderr, "ferryd: model '%s' instance %u finalize: %s\n",
					m->cfg->name, i, ferry_be_error_message(e));
				ferry_be_error_delete(e);
			}
		}
		free(in->batch);
		free(in->wraps);
		free(in->ptrs);
		free(in->out_bytes);
	}
	if (m->bm_init && ops->model_finalize) {
		ferry_be_error *e = ops->model_finalize(&m->bm);
		if (e) {
			fprintf(stderr, "ferryd: model '%s' finalize: %s\n", m->cfg->name,
				ferry_be_error_message(e));
			ferry_be_error_delete(e);
		}
	}
	free(m->inst);
	sched__fair_fini(m);
	free(m->levels);
	free(m->ring);
	free(m->bm.path);
	pthread_cond_destroy(&m->order_cond);
	pthread_mutex_destroy(&m->order_lock);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Check the parts of the config the scheduler relies on. */
static int sched__check_config(const struct model_config *cfg, char *err, size_t errlen)
{
	const struct modelcfg_dynbatch *db = &cfg->dynbatch;
	const int bd = cfg->max_batch_size > 0 ? 1 : 0;

	if (cfg->max_batch_size < 0) {
		sched__msg(err, errlen, "model '%s': max_batch_size %d is negative", cfg->name,
			  cfg->max_batch_size);
		return FERRY_CONFIG;
	}
	for (int io = 0; io < 2; io++) {
		const struct modelcfg_tensor *ts = io ? cfg->outputs : cfg->inputs;
		int n = io ? cfg->noutputs : cfg->ninputs;
		for (int i = 0; i < n; i++) {
			if (!ferry_dtype_name(ts[i].dtype)) {
				sched__msg(err, errlen, "model '%s': %s '%s' has no valid data type",
					  cfg->name, io ? "output" : "input", ts[i].name);
				return FERRY_CONFIG;
			}
			if (ts[i].ndims < 0 || ts[i].ndims + bd > SCHED_MAX_DIMS) {
				sched__msg(err, errlen, "model '%s': %s '%s' has %d dims; at most "
					  "%d%s", cfg->name, io ? "output" : "input",
					  ts[i].name, ts[i].ndims, SCHED_MAX_DIMS - bd,
					  bd ? " besides the batch dimension" : "");
				return FERRY_CONFIG;
			}
		}
	}
	if (!db->enabled)
		return 0;
	if (db->npreferred < 0 || db->npreferred > MODELCFG_MAX_PREFERRED)
		goto bad_pref;
	for (int i = 0; i < db->npreferred; i++) {
		int p = db->preferred[i];
		if (p < 1 || p > (cfg->max_batch_size > 0 ? cfg->max_batch_size : 1) || p >= 128) {
			sched__msg(err, errlen, "model '%s': preferred_batch_size %d is outside "
				  "1..max_batch_size (%d)", cfg->name, p, cfg->max_batch_size);
			return FERRY_CONFIG;
		}
	}
	if (db->priority_levels) {
		if (db->default_priority_level < 1 ||
		    db->default_priority_level > db->priority_levels) {
			sched__msg(err, errlen, "model '%s': default_priority_level %u is outside "
				  "1..priority_levels (%u)", cfg->name,
				  db->default_priority_level, db->priority_levels);
			return FERRY_CONFIG;
		}
		if (db->priority_levels > 1024) {
			sched__msg(err, errlen, "model '%s': %u priority levels; at most 1024",
				  cfg->name, db->priority_levels);
			return FERRY_CONFIG;
		}
	}
	for (int i = 0; i < db->nprio_policies; i++) {
		uint32_t l = db->prio_policies[i].level;
		if (l < 1 || l > db->priority_levels) {
			sched__msg(err, errlen, "model '%s': priority_queue_policy for level %u, "
				  "outside 1..priority_levels (%u)", cfg->name, l,
				  db->priority_levels);
			return FERRY_CONFIG;
		}
	}
	return 0;
bad_pref:
	sched__msg(err, errlen, "model '%s': bad preferred_batch_size list", cfg->name);
	return FERRY_CONFIG;
}

static uint64_t sched__pow2(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

int sched_model_create(const struct model_config *cfg, const char *model_dir, int64_t version,
		       struct be_registry *reg, struct sched_model **out, char *err, size_t errlen)
{
	const struct modelcfg_dynbatch *db = &cfg->dynbatch;
	struct sched_model *m = NULL;
	ferry_backend *backend;
	ferry_be_error *e;
	char note[1024];
	int rc;

	rc = sched__check_config(cfg, err, errlen);
	if (rc)
		return rc;
	rc = be_registry_resolve(reg, cfg, &backend, note, sizeof(note), err, errlen);
	if (rc)
		return rc;

	m = calloc(1, sizeof(*m));
	if (!m)
		return FERRY_ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->order_lock, NULL);
	pthread_cond_init(&m->order_cond, NULL);
	/* Deadlines are CLOCK_MONOTONIC: immune to wall-clock steps. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);

	m->cfg = cfg;
	m->bm.cfg = cfg;
	m->bm.version = version;
	m->bm.backend = backend;
	m->bm.path = strdup(model_dir ? model_dir : "");
	rc = FERRY_ENOMEM;
	if (!m->bm.path)
		goto fail;

	/* Scheduling parameters. */
	m->dynamic = db->enabled;
	m->preserve = db->enabled && db->preserve_ordering;
	m->fair = !m->preserve && sched__fair_share();
	m->cap = cfg->max_batch_size > 0 ? (uint32_t)cfg->max_batch_size : 1;
	m->delay_ns = db->enabled ? db->max_queue_delay_us * 1000u : 0;
	for (int i = 0; db->enabled && i < db->npreferred; i++)
		m->preferred_mask[db->preferred[i] / 64] |= 1ull << (db->preferred[i] % 64);
	m->nlevels = db->enabled && db->priority_levels ? db->priority_levels : 1;
	m->default_level = m->nlevels > 1 ? db->default_priority_level - 1 : 0;
	m->levels = calloc(m->nlevels, sizeof(*m->levels));
	if (!m->levels)
		goto fail;
	for (uint32_t li = 0; li < m->nlevels; li++)
		if (db->enabled)
			m->levels[li].pol = db->default_policy;
	for (int i = 0; db->enabled && m->nlevels > 1 && i < db->nprio_policies; i++)
		m->levels[db->prio_policies[i].level - 1].pol = db->prio_policies[i].policy;

	/* The backend's model. */
	e = backend->ops.model_initialize(&m->bm);
	m->bm.frozen = true;
	if (e) {
		rc = ferry_be_error_code(e);
		sched__be_error_msg(e, err, errlen, "backend '%s' refused model '%s'",
				   backend->name, cfg->name);
		/* A native executor standing in for ONNX Runtime says why. */
		if (note[0] && err && errlen) {
			size_t used = strnlen(err, errlen);
			snprintf(err + used, errlen - used, " [%s]", note);
		}
		goto fail;
	}
	m->bm_init = true;
	m->inline_mode = m->bm.light;

	/* Instances: the sum of the groups' counts (Triton's default: one). */
	uint64_t ninst = 0;
	int ndev = -1;
	for (int g = 0; g < cfg->ngroups; g++) {
		const struct modelcfg_instance_group *grp = &cfg->groups[g];
		uint64_t c = grp->count > 0 ? (uint64_t)grp->count : 1;
		rc = FERRY_CONFIG;
		if (grp->count < 0) {
			sched__msg(err, errlen, "model '%s': instance group '%s' has count %d",
				  cfg->name, grp->name ? grp->name : "", grp->count);
			goto fail;
		}
		if (grp->kind == MODELCFG_KIND_GPU) {
			if (ndev < 0)
				ndev = gpu_device_count();
			if (!ndev && !m->bm.accepts_gpu) {
				sched__msg(err, errlen, "model '%s': instance group '%s' asks for "
					  "KIND_GPU but no CUDA device is available (backend "
					  "'%s' does not run GPU instances without one); use "
					  "KIND_CPU", cfg->name, grp->name ? grp->name : "",
					  backend->name);
				goto fail;
			}
			for (int j = 0; j < grp->ngpus && !m->bm.accepts_gpu; j++) {
				if (grp->gpus[j] < 0 || grp->gpus[j] >= ndev) {
					sched__msg(err, errlen, "model '%s': instance group '%s' "
						  "names GPU %d; devices are 0..%d", cfg->name,
						  grp->name ? grp->name : "", grp->gpus[j],
						  ndev - 1);
					goto fail;
				}
			}
			/* Triton: count instances on each listed GPU (or on
			 * each visible one). */
			c *= grp->ngpus ? (uint64_t)grp->ngpus : (uint64_t)(ndev > 0 ? ndev : 1);
		}
		ninst += c;
	}
	if (!cfg->ngroups)
		ninst = 1;
	if (ninst > 4096) {
		rc = FERRY_CONFIG;
		sched__msg(err, errlen, "model '%s': %" PRIu64 " instances; at most 4096",
			  cfg->name, ninst);
		goto fail;
	}
	rc = FERRY_ENOMEM;
	m->inst = calloc(ninst, sizeof(*m->inst));
	if (!m->inst)
		goto fail;
	m->ninst = (uint32_t)ninst;
	uint32_t k = 0;
	for (int g = 0; g < (cfg->ngroups ? cfg->ngroups : 1); g++) {
		const struct modelcfg_instance_group *grp = cfg->ngroups ? &cfg->groups[g] : NULL;
		int c = grp && grp->count > 0 ? grp->count : 1;
		int ndevs = 1;
		if (grp && grp->kind == MODELCFG_KIND_GPU)
			ndevs = grp->ngpus ? grp->ngpus : (ndev > 0 ? ndev : 1);
		for (int d = 0; d < ndevs; d++) {
			for (int j = 0; j < c; j++, k++) {
				struct ferry_be_instance *bi = &m->inst[k].be;
				bi->model = &m->bm;
				bi->index = k;
				bi->group = grp && grp->name ? grp->name : "";
				bi->kind = FERRY_BE_INSTANCE_CPU;
				bi->device = -1;
				/* KIND_AUTO runs on CPU until placement lands. */
				if (grp && grp->kind == MODELCFG_KIND_MODEL)
					bi->kind = FERRY_BE_INSTANCE_MODEL;
				if (grp && grp->kind == MODELCFG_KIND_GPU) {
					bi->kind = FERRY_BE_INSTANCE_GPU;
					bi->device = grp->ngpus ? grp->gpus[d] : d;
				}
			}
		}
	}

	const uint32_t nout = (uint32_t)cfg->noutputs;
	for (uint32_t i = 0; i < m->ninst; i++) {
		struct sched__inst *in = &m->inst[i];
		in->m = m;
		in->batch = calloc(m->cap, sizeof(*in->batch));
		in->wraps = calloc(m->cap, sizeof(*in->wraps));
		in->ptrs = calloc(m->cap, sizeof(*in->ptrs));
		in->out_bytes = calloc((size_t)m->cap * (nout ? nout : 1), sizeof(uint64_t));
		if (!in->batch || !in->wraps || !in->ptrs || !in->out_bytes) {
			rc = FERRY_ENOMEM;
			goto fail;
		}
		e = backend->ops.instance_initialize(&in->be);
		if (e) {
			char idx[16];
			snprintf(idx, sizeof(idx), "%u", i);
			rc = ferry_be_error_code(e);
			sched__be_error_msg(e, err, errlen, "backend '%s' failed to initialize "
					   "instance %s", backend->name, idx);
			goto fail;
		}
		in->be_init = true;
		in->next_free = m->free_inst;
		m->free_inst = in;
	}

	if (m->preserve) {
		/* Room for every batch in flight twice over; a completion
		 * beyond it waits (sched__done_ordered). */
		uint64_t slots = sched__pow2(2ull * m->ninst * m->cap);
		rc = FERRY_ENOMEM;
		m->ring = calloc(slots, sizeof(*m->ring));
		if (!m->ring)
			goto fail;
		m->ring_mask = slots - 1;
	}

	if (!m->inline_mode) {
		for (uint32_t i = 0; i < m->ninst; i++) {
			int prc = pthread_create(&m->inst[i].thread, NULL, sched__inst_main,
						 &m->inst[i]);
			if (prc) {
				rc = -prc;
				sched__msg(err, errlen, "model '%s': cannot start instance thread: "
					  "%s", cfg->name, strerror(prc));
				goto fail;
			}
			m->inst[i].started = true;
		}
	}
	*out = m;
	return 0;

fail:
	if (rc >= 0)
		rc = FERRY_BACKEND;
	if (rc == FERRY_ENOMEM && err && errlen && !*err)
		sched__msg(err, errlen, "model '%s': out of memory", cfg->name);
	sched_model_destroy(m);
	return rc;
}

