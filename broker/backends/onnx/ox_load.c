/* SPDX-License-Identifier: MIT */
/*
 * ox_load.c - parse, check and plan an ONNX model: the graph (see
 * ox_load.h for the loader's other files)
 *
 * The plan is made once: the steps in topological order, every tensor's
 * shape as a function of the batch size, and each tensor's lifetime for
 * the arena that ox__plan() lays out (ox_shape.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/errors.h>

#include "ox_load.h"

/* ---------------------------------------------------------------------- */

void ox_model_free(struct ox_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->ntensors; i++) {
		free((void *)m->tensors[i].cdata);
		free(m->tensors[i].idata);
	}
	for (int i = 0; i < m->nsteps; i++) {
		free(m->steps[i].in);
		free(m->steps[i].bn);
	}
	for (int i = 0; i < m->ninputs; i++)
		free(m->inputs[i].name);
	for (int i = 0; i < m->noutputs; i++)
		free(m->outputs[i].name);
	free(m->tensors);
	free(m->steps);
	free(m->inputs);
	free(m->outputs);
	free(m);
}

static int ox__find_opset(struct ox__ld *ld, const Onnx__ModelProto *mp)
{
	int64_t v = -1;

	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const char *d = ox__nz(mp->opset_import[i]->domain);

		if ((d[0] == 0 || strcmp(d, "ai.onnx") == 0) &&
		    mp->opset_import[i]->has_version)
			v = mp->opset_import[i]->version;
	}
	if (v < 0) {
		ox__ld_msg(ld, "the model imports no ai.onnx opset");
		return FERRY_EBADMSG;
	}
	if (v < OX_MIN_OPSET || v > OX_MAX_OPSET) {
		ox__ld_msg(ld, "opset %lld is not supported (%d to %d are)",
		       (long long)v, OX_MIN_OPSET, OX_MAX_OPSET);
		return FERRY_ENOTSUP;
	}
	ld->m->opset = (int)v;
	return 0;
}

/* Every node names a known operator; list each one that does not. */
static int ox__check_ops(struct ox__ld *ld, const Onnx__GraphProto *g)
{
	int bad = 0;

	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		const struct ox__opdef *od = ox__opdef_find(n);

		if (!od) {
			if (!bad)
				ox__ld_msg(ld, "unsupported operators:");
			ox__ld_msg(ld, "node '%s' (%s%s%s)", ox__nz(n->name),
			       n->domain && n->domain[0] ? n->domain : "",
			       n->domain && n->domain[0] ? "." : "",
			       ox__nz(n->op_type));
			bad++;
			continue;
		}
		/* extra outputs (BatchNormalization's running statistics,
		 * MaxPool's indices) exist only outside inference */
		bool extra = false;

		for (size_t k = 1; k < n->n_output; k++)
			if (n->output[k] && n->output[k][0])
				extra = true;
		if (n->n_output < 1 || !n->output[0] || !n->output[0][0] ||
		    extra) {
			if (!bad)
				ox__ld_msg(ld, "unsupported operators:");
			ox__ld_msg(ld, "node '%s' (%s) needs exactly one output",
			       ox__nz(n->name), ox__nz(n->op_type));
			bad++;
			continue;
		}
		if (n->n_input < (size_t)od->min_in ||
		    (od->max_in >= 0 && n->n_input > (size_t)od->max_in) ||
		    n->n_input > OX__MAX_INPUTS) {
			if (!bad)
				ox__ld_msg(ld, "unsupported operators:");
			ox__ld_msg(ld, "node '%s' (%s) has %zu inputs", ox__nz(n->name),
			       ox__nz(n->op_type), n->n_input);
			bad++;
		}
	}
	return bad ? FERRY_ENOTSUP : 0;
}

/*
 * Kahn's algorithm over the nodes; @order receives node indices.  The
 * edges (producer -> consumer) are gathered once into a CSR table so the
 * sort stays linear in the size of the graph, whatever a file holds.
 */
static int ox__topo_sort(struct ox__ld *ld, const Onnx__GraphProto *g,
		     const int *producer, int *order)
{
	size_t nn = g->n_node, nedges = 0, head = 0, tail = 0;
	int *indeg = calloc(nn + 1, sizeof(int));
	size_t *start = calloc(nn + 2, sizeof(size_t));
	int *adj = NULL;
	int rc = 0;

	if (!indeg || !start) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nn; i++) {
		const Onnx__NodeProto *n = g->node[i];

		for (size_t k = 0; k < n->n_input; k++) {
			const char *nm = ox__nz(n->input[k]);
			int t;

			if (!nm[0])
				continue;
			t = ox__name_find(ld, nm);
			if (t < 0) {
				ox__ld_msg(ld, "node '%s' (%s): input '%s' is not defined",
				       ox__nz(n->name), ox__nz(n->op_type), nm);
				rc = FERRY_EBADMSG;
				continue;
			}
			if (producer[t] >= 0) {
				indeg[i]++;
				start[producer[t] + 1]++;
				nedges++;
			}
		}
	}
	if (rc)
		goto out;
	for (size_t i = 0; i < nn; i++)
		start[i + 1] += start[i];
	adj = malloc((nedges ? nedges : 1) * sizeof(int));
	if (!adj) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	/* start[p] is the fill cursor of producer p; it ends at start[p+1]
	 * and is moved back afterwards */
	for (size_t i = 0; i < nn; i++) {
		const Onnx__NodeProto *n = g->node[i];

		for (size_t k = 0; k < n->n_input; k++) {
			const char *nm = ox__nz(n->input[k]);
			int t;

			if (!nm[0])
				continue;
			t = ox__name_find(ld, nm);
			if (producer[t] >= 0)
				adj[start[producer[t]]++] = (int)i;
		}
	}
	for (size_t i = nn; i > 0; i--)
		start[i] = start[i - 1];
	start[0] = 0;
	for (size_t i = 0; i < nn; i++)
		if (indeg[i] == 0)
			order[tail++] = (int)i;
	while (head < tail) {
		int p = order[head++];

		for (size_t e = start[p]; e < start[p + 1]; e++)
			if (--indeg[adj[e]] == 0)
				order[tail++] = adj[e];
	}
	if (tail != nn) {
		ox__ld_msg(ld, "the graph has a cycle");
		rc = FERRY_EBADMSG;
	}
out:
	free(indeg);
	free(start);
	free(adj);
	return rc;
}

static int ox__load_graph(struct ox__ld *ld, const Onnx__GraphProto *g)
{
	struct ox_model *m = ld->m;
	size_t names = g->n_input + g->n_initializer, i;
	int *producer = NULL, *order = NULL, *node_of_step = NULL;
	int rc;

	for (i = 0; i < g->n_node; i++) {
		if (g->node[i]->n_output > SIZE_MAX / 4 - names)
			return FERRY_E2BIG;
		names += g->node[i]->n_output;
	}
	if (names > INT32_MAX / 4)
		return FERRY_E2BIG;
	rc = ox__check_ops(ld, g);
	if (rc)
		return rc;
	for (ld->hcap = 16; ld->hcap < 2 * names; ld->hcap *= 2)
		;
	ld->hkeys = calloc(ld->hcap, sizeof(*ld->hkeys));
	ld->hvals = calloc(ld->hcap, sizeof(*ld->hvals));
	ld->tcap = (int)names;
	m->tensors = calloc(names ? names : 1, sizeof(*m->tensors));
	m->steps = calloc(g->n_node ? g->n_node : 1, sizeof(*m->steps));
	m->inputs = calloc(g->n_input ? g->n_input : 1, sizeof(*m->inputs));
	m->outputs = calloc(g->n_output ? g->n_output : 1, sizeof(*m->outputs));
	producer = malloc((names ? names : 1) * sizeof(int));
	order = malloc((g->n_node ? g->n_node : 1) * sizeof(int));
	node_of_step = malloc((g->n_node ? g->n_node : 1) * sizeof(int));
	if (!ld->hkeys || !ld->hvals || !m->tensors || !m->steps ||
	    !m->inputs || !m->outputs || !producer || !order || !node_of_step) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	for (i = 0; i < names; i++)
		producer[i] = -1;

	/* initializers first: a graph input that has one is a constant */
	for (i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *tp = g->initializer[i];
		char what[160];
		int id = ox__tensor_new(ld, ox__nz(tp->name), OX__T_CONST);

		if (id < 0) {
			rc = id;
			goto out;
		}
		snprintf(what, sizeof(what), "initializer '%s'", ox__nz(tp->name));
		rc = ox__load_tensor(ld, tp, id, what);
		if (rc)
			goto out;
	}
	/* graph inputs: check all, report all */
	int bad = 0;

	for (i = 0; i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		struct ox__io *io;
		int id;

		if (!vi->name || !vi->name[0]) {
			ox__ld_msg(ld, "graph input %zu has no name", i);
			rc = FERRY_EBADMSG;
			goto out;
		}
		if (ox__name_find(ld, vi->name) >= 0)
			continue;
		id = ox__tensor_new(ld, vi->name, OX__T_INPUT);
		if (id < 0) {
			rc = id;
			goto out;
		}
		rc = ox__check_value_info(ld, vi, &m->tensors[id], "input");
		if (rc) {
			if (rc != FERRY_ENOTSUP)
				goto out;
			bad = rc;
			continue;
		}
		io = &m->inputs[m->ninputs];
		io->name = strdup(vi->name);
		if (!io->name) {
			rc = FERRY_ENOMEM;
			goto out;
		}
		io->tensor = id;
		m->tensors[id].graph_in = m->ninputs++;
		rc = ox__io_info(ld, io, &m->tensors[id], "input");
		if (rc)
			goto out;
	}
	for (i = 0; i < g->n_output; i++) {
		rc = ox__check_value_info(ld, g->output[i], NULL, "output");
		if (rc) {
			if (rc != FERRY_ENOTSUP)
				goto out;
			bad = rc;
		}
	}
	if (bad) {
		/* name each node that reads a rejected graph input */
		for (i = 0; i < g->n_node; i++) {
			const Onnx__NodeProto *n = g->node[i];

			for (size_t k = 0; k < n->n_input; k++) {
				int id = ox__name_find(ld, ox__nz(n->input[k]));

				if (id >= 0 && m->tensors[id].kind == OX__T_INPUT &&
				    m->tensors[id].graph_in < 0)
					ox__ld_msg(ld, "node '%s' (%s) reads input '%s'",
					       ox__nz(n->name), ox__nz(n->op_type),
					       n->input[k]);
			}
		}
		rc = bad;
		goto out;
	}
	/* node outputs */
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		int id = ox__tensor_new(ld, n->output[0], OX__T_VALUE);

		if (id < 0) {
			rc = id;
			goto out;
		}
		producer[id] = (int)i;
	}
	rc = ox__topo_sort(ld, g, producer, order);
	if (rc)
		goto out;

	/* plan each node in order */
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[order[i]];
		const struct ox__opdef *od = ox__opdef_find(n);
		int out = ox__name_find(ld, n->output[0]);
		struct ox__step *s = &m->steps[m->nsteps];
		struct ox__tensor o;

		ld->node = n;
		if (strcmp(n->op_type, "Constant") == 0) {
			rc = ox__plan_constant(ld, out);
			if (rc)
				goto out;
			continue;
		}
		memset(s, 0, sizeof(*s));
		s->op = od->op;
		s->out = out;
		s->nin = (int)n->n_input;
		s->in = malloc((n->n_input ? n->n_input : 1) * sizeof(int));
		if (!s->in) {
			rc = FERRY_ENOMEM;
			goto out;
		}
		/* counted now so that ox_model_free() frees s->in */
		m->nsteps++;
		for (size_t k = 0; k < n->n_input; k++) {
			const char *nm = ox__nz(n->input[k]);

			s->in[k] = nm[0] ? ox__name_find(ld, nm) : -1;
		}
		memset(&o, 0, sizeof(o));
		rc = ox__plan_node(ld, od, s, &o);
		if (rc)
			goto out;
		for (int d = 0; d < o.rank; d++) {
			if (o.dims[d].c < 1) {
				rc = ox__node_err(ld, FERRY_ENOTSUP,
					      "the output has an empty dimension");
				goto out;
			}
		}
		int64_t tc;
		int tp;

		if (!ox__dims_prod(o.dims, 0, o.rank, &tc, &tp)) {
			rc = ox__node_err(ld, FERRY_E2BIG, "the output is too large");
			goto out;
		}
		m->tensors[out].rank = o.rank;
		memcpy(m->tensors[out].dims, o.dims, sizeof(o.dims));
		if (tp)
			m->batched = 1;
		m->tensors[out].def = m->nsteps - 1;
		for (int k = 0; k < s->nin; k++)
			if (s->in[k] >= 0)
				m->tensors[s->in[k]].last = m->nsteps - 1;
		node_of_step[m->nsteps - 1] = order[i];
	}
	ld->node = NULL;

	/* graph outputs */
	for (i = 0; i < g->n_output; i++) {
		const char *nm = ox__nz(g->output[i]->name);
		int id = ox__name_find(ld, nm);
		struct ox__io *io = &m->outputs[m->noutputs];
		struct ox__tensor *t;

		if (id < 0) {
			ox__ld_msg(ld, "output '%s' is not computed by the graph", nm);
			rc = FERRY_EBADMSG;
			goto out;
		}
		t = &m->tensors[id];
		if (t->kind == OX__T_INT || t->kind == OX__T_OTHER) {
			ox__ld_msg(ld, "output '%s' is not float32", nm);
			rc = FERRY_ENOTSUP;
			goto out;
		}
		io->name = strdup(nm);
		if (!io->name) {
			rc = FERRY_ENOMEM;
			goto out;
		}
		io->tensor = id;
		m->noutputs++;
		/* a computed output is written straight into the caller's
		 * buffer; inputs, constants and repeats are copied */
		if (t->kind == OX__T_VALUE && t->graph_out < 0)
			t->graph_out = m->noutputs - 1;
		rc = ox__io_info(ld, io, t, "output");
		if (rc)
			goto out;
	}
	for (i = 0; i < (size_t)m->ninputs; i++)
		if (m->inputs[i].info.batched)
			m->batched = 1;
	rc = 0;
out:
	free(producer);
	free(order);
	free(node_of_step);
	return rc;
}

int ox_model_load(const void *buf, size_t len, struct ox_model **out,
		  char *err, size_t errlen)
{
	struct ox__ld ld = { .err = err, .errlen = errlen };
	Onnx__ModelProto *mp;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!out || (!buf && len))
		return FERRY_EINVAL;
	*out = NULL;
	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp) {
		ox__ld_msg(&ld, "not an ONNX model: the protobuf does not parse");
		return FERRY_EBADMSG;
	}
	if (!mp->graph) {
		ox__ld_msg(&ld, "not an ONNX model: no graph");
		rc = FERRY_EBADMSG;
		goto out;
	}
	ld.m = calloc(1, sizeof(*ld.m));
	if (!ld.m) {
		rc = FERRY_ENOMEM;
		goto out;
	}
	rc = ox__find_opset(&ld, mp);
	if (!rc)
		rc = ox__load_graph(&ld, mp->graph);
	if (!rc && (ld.m->ninputs == 0 || ld.m->noutputs == 0)) {
		ox__ld_msg(&ld, "the graph has no inputs or no outputs");
		rc = FERRY_ENOTSUP;
	}
	if (rc) {
		if (rc == FERRY_ENOMEM)
			ox__ld_msg(&ld, "out of memory");
		ox_model_free(ld.m);
		goto out;
	}
	*out = ld.m;
out:
	free(ld.hkeys);
	free(ld.hvals);
	onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}
