/* SPDX-License-Identifier: MIT */
/*
 * hs_submit.c - inference over HTTP: the body is parsed (hs_infer.c),
 * checked against the model's config by the gRPC front end's own checks,
 * submitted to the model's scheduler queue (the queues of shared-memory
 * sessions and gRPC, so requests of all three batch together), and
 * answered from done().  An inline model runs at once on the connection's
 * thread (sched_submit_here), so its response is queued before the
 * handler returns and the connection is never suspended.
 *
 * The model table's read lock is held from the lookup to the end of
 * sched_submit_here, as in gs_submit.c.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include <ferry/errors.h>

#include "broker/frontends/grpc/gs_server.h"
#include "broker/frontends/http/hs_infer.h"
#include "broker/frontends/http/hs_int.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"

/* An inference request, from its parse until its response is destroyed
 * (its binary outputs are sent from its buffers). */
struct hs__job {
	struct hs_infer h;              /* first: h.inf.req is what done() gets */
	struct hs__conn *c;
	struct models_entry *model;     /* the record outlives us (models.h) */
	int encoding;                   /* of the response: hs__accept_encoding */
};

static void hs__job_free(void *p)
{
	struct hs__job *j = p;
	hs_infer_fini(&j->h);
	free(j);
}

/* sched_req.done: any thread, once. */
static void hs__infer_done(struct sched_req *sr, int status, const char *msg)
{
	struct hs__job *j = (struct hs__job *)sr;
	struct hs__conn *c = j->c;
	char err[1024];

	if (status == 0) {
		struct hs_buf json = { 0 };
		const void **bin;
		size_t *binlen;
		int nbin;
		status = hs_infer_response(&j->h, j->model->name, j->model->version, &json, &bin,
					   &binlen, &nbin, err, sizeof(err));
		if (status == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			atomic_store(&j->model->last_infer_ms,
				     (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
			/* The response owns the job from here. */
			struct MHD_Response *r = hs__response(&json, (const void *const *)bin, binlen,
							      nbin, j->encoding, hs__job_free, j);
			hs__answer(c, r ? 0 : FERRY_ENOMEM, "out of memory", r);
			hs__pending(-1);
			return;
		}
		hs_buf_free(&json);
		msg = err;
	}
	hs__answer(c, status, msg ? msg : ferry_strerror(status), NULL);
	hs__job_free(j);
	hs__pending(-1);
}

int hs__infer(struct hs__ctx *x)
{
	struct hs__job *j = calloc(1, sizeof(*j));
	int ret;

	if (!j)
		return hs__fail(x, FERRY_ENOMEM, "out of memory");
	j->c = x->conn;
	j->encoding = hs__accept_encoding(x->conn);
	ret = hs_infer_parse(&j->h, x->body, x->len, hs__header_length(x->conn), x->arg[0],
			     x->arg[1] ? x->arg[1] : "", x->err, sizeof(x->err));
	if (ret)
		goto fail;
	models_rdlock();
	struct models_entry *m = gs_request_model(x->arg[0], x->arg[1], &ret, x->err,
						  sizeof(x->err));
	if (!m)
		goto fail_unlock;
	j->model = m;
	if ((ret = hs_infer_prepare(&j->h, m->cfg, x->err, sizeof(x->err))))
		goto fail_unlock;
	j->h.inf.req.done = hs__infer_done;
	/* The scheduler shares a model fairly between clients: one HTTP
	 * connection is one client (it outlives its suspended requests). */
	j->h.inf.req.owner = x->mhd;
	hs__pending(1);
	ret = sched_submit_here(m->sm, &j->h.inf.req, x->err, sizeof(x->err));
	if (ret) {
		hs__pending(-1);
		goto fail_unlock;
	}
	models_unlock();
	return HS_LATER;
fail_unlock:
	models_unlock();
fail:
	hs__job_free(j);
	return ret;
}
