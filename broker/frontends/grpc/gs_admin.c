/* SPDX-License-Identifier: MIT */
/*
 * gs_admin.c - the gRPC front end's health, metadata, configuration,
 * statistics and repository RPCs.  Each handler fills its reply from one
 * snapshot of the model table (models/snapshot.h), kept until the reply
 * is packed; none walks the table itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "config.h"
#include "broker/frontends/grpc/gs_int.h"
#include "broker/frontends/grpc/gs_shm.h"
#include "broker/models/models.h"
#include "broker/models/snapshot.h"
#include "proto/kserve.pb-c.h"

int64_t gs__version(const char *v)
{
	if (!v || !*v)
		return -1;
	int64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9' || n > (INT64_MAX - 9) / 10)
			return -2;
		n = n * 10 + (*p - '0');
	}
	return n;
}

int gs__model_version(struct gs__ctx *x, const char *name, const char *version, int64_t *v)
{
	*v = gs__version(version);
	if (*v == -2)
		return gs__fail(x, FERRY_EINVAL, "invalid model version '%s' for model '%s'",
				version, name);
	return 0;
}

int gs__unservable(const char *name, int64_t v, bool found, bool other,
		   const char *reason, char *msg, size_t msglen)
{
	const char *sep = reason && *reason ? ": " : "";
	reason = reason ? reason : "";
	if (!found) {
		if (v >= 0 && other)
			snprintf(msg, msglen, "Request for unknown model: '%s' version %" PRId64
				 " is not found", name, v);
		else
			snprintf(msg, msglen, "Request for unknown model: '%s' is not found", name);
		return FERRY_ENOENT;
	}
	if (v >= 0)
		snprintf(msg, msglen, "Request for unknown model: '%s' version %" PRId64
			 " is not at ready state%s%s", name, v, sep, reason);
	else
		snprintf(msg, msglen, "Request for unknown model: '%s' has no available "
			 "versions%s%s", name, sep, reason);
	return FERRY_UNAVAILABLE;
}

static void gs__snapshot_free(void *s)
{
	snapshot_free(s);
	free(s);
}

/* A snapshot that lives until the reply is packed; NULL (x->err set)
 * when out of memory. */
static struct snapshot *gs__snapshot(struct gs__ctx *x, const char *name, int64_t version,
				     unsigned flags)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s || snapshot_take(s, name, version, flags)) {
		free(s);
		gs__fail(x, FERRY_ENOMEM, "out of memory");
		return NULL;
	}
	if (gs__defer(x, gs__snapshot_free, s)) {
		gs__fail(x, FERRY_ENOMEM, "out of memory");
		return NULL;
	}
	return s;
}

/*
 * The model version a request names, when it can serve: from a snapshot of
 * every version of `name` (*snap, kept until the reply is packed).  NULL
 * with *code and x->err in Triton's words otherwise.
 */
static const struct snapshot_model *gs__serving(struct gs__ctx *x, const char *name,
						const char *version, struct snapshot **snap,
						int *code)
{
	int64_t v;
	name = name ? name : "";
	if ((*code = gs__model_version(x, name, version, &v)))
		return NULL;
	struct snapshot *s = gs__snapshot(x, name, SNAPSHOT_ALL_VERSIONS, 0);
	if (!s) {
		*code = FERRY_ENOMEM;
		return NULL;
	}
	const struct snapshot_model *m = snapshot_find(s, name, v);
	if (!m || !snapshot_serving(m)) {
		*code = gs__unservable(name, v, m != NULL, s->n > 0, m ? m->reason : NULL,
				       x->err, sizeof(x->err));
		return NULL;
	}
	*snap = s;
	return m;
}

/* ---------------------------------------------------------------------- */
/* Health and metadata                                                     */

int gs__server_live(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *reply)
{
	Inference__ServerLiveResponse *r = (Inference__ServerLiveResponse *)reply;
	r->live = 1;
	return 0;
}

int gs__server_ready(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *reply)
{
	Inference__ServerReadyResponse *r = (Inference__ServerReadyResponse *)reply;
	r->ready = !gs__stopping();
	return 0;
}

int gs__model_ready(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__ModelReadyRequest *q = (Inference__ModelReadyRequest *)req;
	Inference__ModelReadyResponse *r = (Inference__ModelReadyResponse *)reply;
	struct snapshot *s;
	int code;

	r->ready = gs__serving(x, q->name, q->version, &s, &code) != NULL;
	/* Not ready is an answer, not an error; running out of memory is. */
	return !r->ready && code == FERRY_ENOMEM ? code : 0;
}

int gs__server_meta(struct gs__ctx *x, ProtobufCMessage *q, ProtobufCMessage *reply)
{
	Inference__ServerMetadataResponse *r = (Inference__ServerMetadataResponse *)reply;
	char **ext = gs__alloc(x, 8, sizeof(*ext));
	size_t n = 0;
	if (!ext)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	ext[n++] = "model_repository";
	ext[n++] = "model_configuration";
	ext[n++] = "schedule_policy";
	ext[n++] = "system_shared_memory";
	ext[n++] = "statistics";
	ext[n++] = "parameters";
	if (gs_cuda_available())
		ext[n++] = "cuda_shared_memory";
	r->name = "ferry";
	r->version = PACKAGE_VERSION;
	r->n_extensions = n;
	r->extensions = ext;
	return 0;
}

/* The shape a client sees: the batch dimension (-1) first when the model
 * batches. */
static int64_t *gs__meta_shape(const struct model_config *cfg, const struct modelcfg_tensor *t,
			       size_t *n, int64_t *buf)
{
	size_t k = 0;
	if (cfg->max_batch_size > 0)
		buf[k++] = -1;
	for (int d = 0; d < t->ndims; d++)
		buf[k++] = t->dims[d];
	*n = k;
	return buf;
}

/* A version number as the string KServe sends, in memory of x. */
static char *gs__version_str(struct gs__ctx *x, int64_t v)
{
	char *s = gs__alloc(x, 1, 24);
	if (s && v >= 0)
		snprintf(s, 24, "%" PRId64, v);
	return s;
}

int gs__model_meta(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__ModelMetadataRequest *q = (Inference__ModelMetadataRequest *)req;
	Inference__ModelMetadataResponse *r = (Inference__ModelMetadataResponse *)reply;
	struct snapshot *s;
	int code;
	const struct snapshot_model *m = gs__serving(x, q->name, q->version, &s, &code);
	if (!m)
		return code;
	const struct model_config *cfg = m->cfg;
	const int nt = cfg->ninputs + cfg->noutputs;
	Inference__ModelMetadataResponse__TensorMetadata *tm = gs__alloc(x, (size_t)nt + 1, sizeof(*tm));
	Inference__ModelMetadataResponse__TensorMetadata **tp = gs__alloc(x, (size_t)nt + 1, sizeof(*tp));
	int64_t (*shapes)[MODELCFG_MAX_DIMS + 1] = gs__alloc(x, (size_t)nt + 1, sizeof(*shapes));
	char **vp = gs__alloc(x, s->n + 1, sizeof(*vp));
	if (!tm || !tp || !shapes || !vp)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");

	r->name = (char *)m->name;
	r->platform = (char *)(cfg->platform[0] ? cfg->platform : cfg->backend);
	/* A named version answers for itself; "latest" lists every ready one. */
	for (size_t i = 0; i < s->n; i++) {
		const struct snapshot_model *o = &s->models[i];
		if (gs__version(q->version) >= 0 ? o != m
		    : o->state != MODELS_READY || o->version < 0)
			continue;
		if (!(vp[r->n_versions] = gs__version_str(x, o->version)))
			return gs__fail(x, FERRY_ENOMEM, "out of memory");
		r->n_versions++;
	}
	r->versions = vp;
	for (int i = 0; i < nt; i++) {
		const struct modelcfg_tensor *t = i < cfg->ninputs ? &cfg->inputs[i]
							     : &cfg->outputs[i - cfg->ninputs];
		inference__model_metadata_response__tensor_metadata__init(&tm[i]);
		tm[i].name = (char *)t->name;
		tm[i].datatype = (char *)ferry_dtype_name(t->dtype);
		tm[i].shape = gs__meta_shape(cfg, t, &tm[i].n_shape, shapes[i]);
		tp[i] = &tm[i];
	}
	r->n_inputs = (size_t)cfg->ninputs;
	r->inputs = tp;
	r->n_outputs = (size_t)cfg->noutputs;
	r->outputs = tp + cfg->ninputs;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* ModelConfig: ferry's model_config in Triton's message layout            */

static void gs__queue_policy(Inference__ModelQueuePolicy *q, const struct modelcfg_queue_policy *p)
{
	inference__model_queue_policy__init(q);
	q->timeout_action = p->timeout_action == MODELCFG_TIMEOUT_DELAY ?
		INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__DELAY :
		INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__REJECT;
	q->default_timeout_microseconds = p->default_timeout_us;
	q->allow_timeout_override = p->allow_timeout_override;
	q->max_queue_size = p->max_queue_size;
}

static int gs__cfg_version_policy(struct gs__ctx *x, Inference__ModelConfig *mc,
				  const struct model_config *cfg)
{
	Inference__ModelVersionPolicy *vp = gs__alloc(x, 1, sizeof(*vp));
	if (!vp)
		return FERRY_ENOMEM;
	inference__model_version_policy__init(vp);
	switch (cfg->version_policy.kind) {
	case MODELCFG_VP_ALL: {
		Inference__ModelVersionPolicy__All *a = gs__alloc(x, 1, sizeof(*a));
		if (!a)
			return FERRY_ENOMEM;
		inference__model_version_policy__all__init(a);
		vp->policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_ALL;
		vp->all = a;
		break;
	}
	case MODELCFG_VP_SPECIFIC: {
		Inference__ModelVersionPolicy__Specific *s = gs__alloc(x, 1, sizeof(*s));
		if (!s)
			return FERRY_ENOMEM;
		inference__model_version_policy__specific__init(s);
		s->n_versions = (size_t)cfg->version_policy.nversions;
		s->versions = (int64_t *)cfg->version_policy.versions;
		vp->policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC;
		vp->specific = s;
		break;
	}
	default: {
		Inference__ModelVersionPolicy__Latest *l = gs__alloc(x, 1, sizeof(*l));
		if (!l)
			return FERRY_ENOMEM;
		inference__model_version_policy__latest__init(l);
		l->num_versions = cfg->version_policy.latest_num;
		vp->policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST;
		vp->latest = l;
		break;
	}
	}
	mc->version_policy = vp;
	return 0;
}

static Inference__ModelTensorReshape *gs__cfg_reshape(struct gs__ctx *x,
						      const struct modelcfg_tensor *t, bool *oom)
{
	if (!t->has_reshape)
		return NULL;
	Inference__ModelTensorReshape *rs = gs__alloc(x, 1, sizeof(*rs));
	if (!rs) {
		*oom = true;
		return NULL;
	}
	inference__model_tensor_reshape__init(rs);
	rs->n_shape = (size_t)t->reshape_ndims;
	rs->shape = (int64_t *)t->reshape;
	return rs;
}

static int gs__cfg_tensors(struct gs__ctx *x, Inference__ModelConfig *mc,
			   const struct model_config *cfg)
{
	const int ni = cfg->ninputs, no = cfg->noutputs;
	Inference__ModelInput *in = gs__alloc(x, (size_t)ni + 1, sizeof(*in));
	Inference__ModelInput **inp = gs__alloc(x, (size_t)ni + 1, sizeof(*inp));
	Inference__ModelOutput *out = gs__alloc(x, (size_t)no + 1, sizeof(*out));
	Inference__ModelOutput **outp = gs__alloc(x, (size_t)no + 1, sizeof(*outp));
	bool oom = !in || !inp || !out || !outp;

	for (int i = 0; i < ni && !oom; i++) {
		const struct modelcfg_tensor *t = &cfg->inputs[i];
		inference__model_input__init(&in[i]);
		in[i].name = (char *)t->name;
		in[i].data_type = (Inference__DataType)t->dtype;
		in[i].n_dims = (size_t)t->ndims;
		in[i].dims = (int64_t *)t->dims;
		in[i].optional = t->optional;
		in[i].reshape = gs__cfg_reshape(x, t, &oom);
		inp[i] = &in[i];
	}
	for (int i = 0; i < no && !oom; i++) {
		const struct modelcfg_tensor *t = &cfg->outputs[i];
		inference__model_output__init(&out[i]);
		out[i].name = (char *)t->name;
		out[i].data_type = (Inference__DataType)t->dtype;
		out[i].n_dims = (size_t)t->ndims;
		out[i].dims = (int64_t *)t->dims;
		out[i].reshape = gs__cfg_reshape(x, t, &oom);
		outp[i] = &out[i];
	}
	if (oom)
		return FERRY_ENOMEM;
	mc->n_input = (size_t)ni;
	mc->input = inp;
	mc->n_output = (size_t)no;
	mc->output = outp;
	return 0;
}

static int gs__cfg_groups(struct gs__ctx *x, Inference__ModelConfig *mc,
			  const struct model_config *cfg)
{
	const int ng = cfg->ngroups;
	Inference__ModelInstanceGroup *ig = gs__alloc(x, (size_t)ng + 1, sizeof(*ig));
	Inference__ModelInstanceGroup **igp = gs__alloc(x, (size_t)ng + 1, sizeof(*igp));
	if (!ig || !igp)
		return FERRY_ENOMEM;
	for (int g = 0; g < ng; g++) {
		const struct modelcfg_instance_group *c = &cfg->groups[g];
		inference__model_instance_group__init(&ig[g]);
		ig[g].name = (char *)c->name;
		ig[g].count = c->count;
		ig[g].kind = (Inference__ModelInstanceGroup__Kind)c->kind;
		ig[g].n_gpus = (size_t)c->ngpus;
		ig[g].gpus = (int32_t *)c->gpus;
		igp[g] = &ig[g];
	}
	mc->n_instance_group = (size_t)ng;
	mc->instance_group = igp;
	return 0;
}

static int gs__cfg_batching(struct gs__ctx *x, Inference__ModelConfig *mc,
			    const struct model_config *cfg)
{
	const struct modelcfg_dynbatch *d = &cfg->dynbatch;
	if (!d->enabled)
		return 0;
	Inference__ModelDynamicBatching *db = gs__alloc(x, 1, sizeof(*db));
	int32_t *pref = gs__alloc(x, (size_t)d->npreferred + 1, sizeof(*pref));
	Inference__ModelQueuePolicy *dqp = gs__alloc(x, 1, sizeof(*dqp));
	Inference__ModelQueuePolicy *pqp = gs__alloc(x, (size_t)d->nprio_policies + 1, sizeof(*pqp));
	Inference__ModelDynamicBatching__PriorityQueuePolicyEntry *pqe =
		gs__alloc(x, (size_t)d->nprio_policies + 1, sizeof(*pqe));
	Inference__ModelDynamicBatching__PriorityQueuePolicyEntry **pqep =
		gs__alloc(x, (size_t)d->nprio_policies + 1, sizeof(*pqep));
	if (!db || !pref || !dqp || !pqp || !pqe || !pqep)
		return FERRY_ENOMEM;
	inference__model_dynamic_batching__init(db);
	for (int i = 0; i < d->npreferred; i++)
		pref[i] = d->preferred[i];
	db->n_preferred_batch_size = (size_t)d->npreferred;
	db->preferred_batch_size = pref;
	db->max_queue_delay_microseconds = d->max_queue_delay_us;
	db->preserve_ordering = d->preserve_ordering;
	db->priority_levels = d->priority_levels;
	db->default_priority_level = d->default_priority_level;
	gs__queue_policy(dqp, &d->default_policy);
	db->default_queue_policy = dqp;
	for (int i = 0; i < d->nprio_policies; i++) {
		inference__model_dynamic_batching__priority_queue_policy_entry__init(&pqe[i]);
		pqe[i].key = d->prio_policies[i].level;
		gs__queue_policy(&pqp[i], &d->prio_policies[i].policy);
		pqe[i].value = &pqp[i];
		pqep[i] = &pqe[i];
	}
	db->n_priority_queue_policy = (size_t)d->nprio_policies;
	db->priority_queue_policy = pqep;
	mc->scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING;
	mc->dynamic_batching = db;
	return 0;
}

static int gs__cfg_params(struct gs__ctx *x, Inference__ModelConfig *mc,
			  const struct model_config *cfg)
{
	const size_t np = (size_t)cfg->nparams;
	Inference__ModelConfig__ParametersEntry *pe = gs__alloc(x, np + 1, sizeof(*pe));
	Inference__ModelConfig__ParametersEntry **pep = gs__alloc(x, np + 1, sizeof(*pep));
	Inference__ModelParameter *pv = gs__alloc(x, np + 1, sizeof(*pv));
	if (!pe || !pep || !pv)
		return FERRY_ENOMEM;
	for (size_t i = 0; i < np; i++) {
		inference__model_config__parameters_entry__init(&pe[i]);
		inference__model_parameter__init(&pv[i]);
		pv[i].string_value = (char *)cfg->params[i].value;
		pe[i].key = (char *)cfg->params[i].key;
		pe[i].value = &pv[i];
		pep[i] = &pe[i];
	}
	mc->n_parameters = np;
	mc->parameters = pep;
	return 0;
}

int gs__model_config(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__ModelConfigRequest *q = (Inference__ModelConfigRequest *)req;
	Inference__ModelConfigResponse *r = (Inference__ModelConfigResponse *)reply;
	struct snapshot *s;
	int code;
	const struct snapshot_model *m = gs__serving(x, q->name, q->version, &s, &code);
	if (!m)
		return code;
	const struct model_config *cfg = m->cfg;
	Inference__ModelConfig *mc = gs__alloc(x, 1, sizeof(*mc));
	if (!mc)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	inference__model_config__init(mc);
	mc->name = (char *)cfg->name;
	mc->platform = (char *)cfg->platform;
	mc->backend = (char *)cfg->backend;
	mc->max_batch_size = cfg->max_batch_size;
	if (gs__cfg_version_policy(x, mc, cfg) || gs__cfg_tensors(x, mc, cfg) ||
	    gs__cfg_groups(x, mc, cfg) || gs__cfg_batching(x, mc, cfg) ||
	    gs__cfg_params(x, mc, cfg))
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	r->config = mc;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Statistics and repository                                               */

/* One model version's statistics in KServe's messages. */
struct gs__stat {
	Inference__ModelStatistics ms;
	Inference__InferStatistics is;
	Inference__StatisticDuration d[6];
	Inference__InferBatchStatistics bs[65];
	Inference__InferBatchStatistics *bsp[65];
	Inference__StatisticDuration bd[65];
	char ver[24];
};

static void gs__stat_fill(struct gs__stat *s, const struct snapshot_model *m)
{
	const struct sched_stats *ss = &m->stats;
	inference__model_statistics__init(&s->ms);
	inference__infer_statistics__init(&s->is);
	for (int k = 0; k < 6; k++)
		inference__statistic_duration__init(&s->d[k]);
	snprintf(s->ver, sizeof(s->ver), "%" PRId64, m->version);
	s->ms.name = (char *)m->name;
	s->ms.version = s->ver;
	s->ms.last_inference = m->last_infer_ms;
	s->ms.inference_count = ss->inference_count;
	s->ms.execution_count = ss->execution_count;
	s->d[0].count = ss->success;
	s->d[0].ns = ss->queue_ns + ss->compute_input_ns + ss->compute_infer_ns +
		     ss->compute_output_ns;
	s->d[1].count = ss->failure;
	s->d[2].count = ss->success;
	s->d[2].ns = ss->queue_ns;
	s->d[3].count = ss->success;
	s->d[3].ns = ss->compute_input_ns;
	s->d[4].count = ss->success;
	s->d[4].ns = ss->compute_infer_ns;
	s->d[5].count = ss->success;
	s->d[5].ns = ss->compute_output_ns;
	s->is.success = &s->d[0];
	s->is.fail = &s->d[1];
	s->is.queue = &s->d[2];
	s->is.compute_input = &s->d[3];
	s->is.compute_infer = &s->d[4];
	s->is.compute_output = &s->d[5];
	s->ms.inference_stats = &s->is;
	size_t nb = 0;
	for (int b = 1; b <= 64; b++) {
		if (!ss->batch_execs[b])
			continue;
		inference__infer_batch_statistics__init(&s->bs[nb]);
		inference__statistic_duration__init(&s->bd[nb]);
		s->bs[nb].batch_size = (uint64_t)b;
		s->bd[nb].count = ss->batch_execs[b];
		s->bs[nb].compute_infer = &s->bd[nb];
		s->bsp[nb] = &s->bs[nb];
		nb++;
	}
	s->ms.n_batch_stats = nb;
	s->ms.batch_stats = s->bsp;
}

int gs__stats(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__ModelStatisticsRequest *q = (Inference__ModelStatisticsRequest *)req;
	Inference__ModelStatisticsResponse *r = (Inference__ModelStatisticsResponse *)reply;
	const char *name = q->name ? q->name : "";
	int64_t v = gs__version(q->version);

	if (v == -2)
		return gs__fail(x, FERRY_EINVAL, "invalid model version '%s'", q->version);
	struct snapshot *s = gs__snapshot(x, name, v, SNAPSHOT_STATS);
	if (!s)
		return FERRY_ENOMEM;
	if (*name && s->n == 0) {
		if (v >= 0)
			return gs__fail(x, FERRY_ENOENT, "requested model '%s' version %" PRId64
					" is not found", name, v);
		return gs__fail(x, FERRY_ENOENT, "requested model '%s' is not found", name);
	}
	struct gs__stat *st = gs__alloc(x, s->n + 1, sizeof(*st));
	Inference__ModelStatistics **msp = gs__alloc(x, s->n + 1, sizeof(*msp));
	if (!st || !msp)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	/* Versions that serve; a known one that does not has no statistics. */
	for (size_t i = 0; i < s->n; i++) {
		const struct snapshot_model *m = &s->models[i];
		if (m->state != MODELS_READY || !m->running)
			continue;
		gs__stat_fill(&st[r->n_model_stats], m);
		msp[r->n_model_stats] = &st[r->n_model_stats].ms;
		r->n_model_stats++;
	}
	r->model_stats = msp;
	return 0;
}

int gs__repo_index(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__RepositoryIndexRequest *q = (Inference__RepositoryIndexRequest *)req;
	Inference__RepositoryIndexResponse *r = (Inference__RepositoryIndexResponse *)reply;
	struct snapshot *s = gs__snapshot(x, NULL, SNAPSHOT_ALL_VERSIONS, 0);
	if (!s)
		return FERRY_ENOMEM;
	Inference__RepositoryIndexResponse__ModelIndex *ix = gs__alloc(x, s->n + 1, sizeof(*ix));
	Inference__RepositoryIndexResponse__ModelIndex **ixp = gs__alloc(x, s->n + 1, sizeof(*ixp));
	if (!ix || !ixp)
		return gs__fail(x, FERRY_ENOMEM, "out of memory");
	for (size_t i = 0; i < s->n; i++) {
		const struct snapshot_model *m = &s->models[i];
		if (q->ready && m->state != MODELS_READY)
			continue;
		Inference__RepositoryIndexResponse__ModelIndex *mi = &ix[r->n_models];
		inference__repository_index_response__model_index__init(mi);
		mi->name = (char *)m->name;
		if (!(mi->version = gs__version_str(x, m->version)))
			return gs__fail(x, FERRY_ENOMEM, "out of memory");
		mi->state = (char *)models_state_name(m->state);
		mi->reason = (char *)m->reason;
		ixp[r->n_models++] = mi;
	}
	r->models = ixp;
	return 0;
}

int gs__repo_load(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__RepositoryModelLoadRequest *q = (Inference__RepositoryModelLoadRequest *)req;
	if (q->n_parameters)
		return gs__fail(x, FERRY_ENOTSUP, "load parameters (config override, files) are "
				"not supported by ferry");
	return models_load_model(q->model_name, x->err, sizeof(x->err));
}

int gs__repo_unload(struct gs__ctx *x, ProtobufCMessage *req, ProtobufCMessage *reply)
{
	Inference__RepositoryModelUnloadRequest *q = (Inference__RepositoryModelUnloadRequest *)req;
	return models_unload_model(q->model_name, x->err, sizeof(x->err));
}
