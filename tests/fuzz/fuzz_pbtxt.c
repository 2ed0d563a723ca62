/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pbtxt - config.pbtxt text through the protobuf text-format parser
 * (pbtxt.c) and Triton's config reader (modelcfg.c), as the repository
 * scan feeds every model's file.  A config that parses must also satisfy
 * what modelcfg.h promises its readers (the scheduler and the backends
 * trust it), so the target checks those promises too.
 */
#include <string.h>

#include <ferry/errors.h>

#include "broker/config/modelcfg.h"
#include "tests/fuzz/fuzz.h"

static void fuzz_pbtxt__warn(void *arg, const char *where, const char *msg)
{
	/* Touch both strings: a dangling pointer shows up under ASan. */
	(*(size_t *)arg) += strlen(where) + strlen(msg);
}

static void fuzz_pbtxt__check_tensor(const struct modelcfg_tensor *t)
{
	FUZZ_CHECK(t->name);
	(void)strlen(t->name);
	FUZZ_CHECK(t->ndims >= 0 && t->ndims <= MODELCFG_MAX_DIMS);
	FUZZ_CHECK(!t->has_reshape ||
		   (t->reshape_ndims >= 0 && t->reshape_ndims <= MODELCFG_MAX_DIMS));
}

int fuzz_pbtxt(const uint8_t *data, size_t size)
{
	struct model_config cfg;
	char err[512];
	size_t warned = 0;

	err[0] = '\0';
	int ret = modelcfg_parse((const char *)data, size, "fuzz/config.pbtxt", &cfg,
			   fuzz_pbtxt__warn, &warned, err, sizeof(err));
	if (ret) {
		/* Errors are FERRY_CONFIG (or ENOMEM) with a located message. */
		FUZZ_CHECK(ret == FERRY_CONFIG || ret == FERRY_ENOMEM);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)));
		FUZZ_CHECK(ret == FERRY_ENOMEM || err[0]);
		/* "On failure *cfg is left zeroed": modelcfg_free must be a no-op. */
		modelcfg_free(&cfg);
		return 0;
	}
	/* The promises of modelcfg.h, which the scheduler relies on. */
	FUZZ_CHECK(cfg.name && cfg.backend && cfg.platform);
	FUZZ_CHECK(cfg.ninputs >= 1 && cfg.ninputs <= MODELCFG_MAX_IO);
	FUZZ_CHECK(cfg.noutputs >= 1 && cfg.noutputs <= MODELCFG_MAX_IO);
	FUZZ_CHECK(cfg.ngroups >= 1 && cfg.ngroups <= MODELCFG_MAX_GROUPS);
	FUZZ_CHECK(cfg.max_batch_size >= 0);
	for (int i = 0; i < cfg.ninputs; i++)
		fuzz_pbtxt__check_tensor(&cfg.inputs[i]);
	for (int i = 0; i < cfg.noutputs; i++)
		fuzz_pbtxt__check_tensor(&cfg.outputs[i]);
	for (int i = 0; i < cfg.ngroups; i++) {
		FUZZ_CHECK(cfg.groups[i].name);
		FUZZ_CHECK(cfg.groups[i].ngpus >= 0 && cfg.groups[i].ngpus <= MODELCFG_MAX_GPUS);
	}
	FUZZ_CHECK(cfg.dynbatch.npreferred >= 0 &&
		   cfg.dynbatch.npreferred <= MODELCFG_MAX_PREFERRED);
	FUZZ_CHECK(cfg.dynbatch.nprio_policies >= 0 &&
		   cfg.dynbatch.nprio_policies <= MODELCFG_MAX_PRIO_POLICIES);
	FUZZ_CHECK(cfg.version_policy.nversions >= 0 &&
		   cfg.version_policy.nversions <= MODELCFG_MAX_VERSIONS);
	for (int i = 0; i < cfg.nparams; i++)
		FUZZ_CHECK(cfg.params[i].key && cfg.params[i].value);
	/* What the repository scan does next. */
	if (!cfg.name[0] && modelcfg_set_name(&cfg, "fuzzed") == 0)
		for (int i = 0; i < cfg.ngroups; i++)
			FUZZ_CHECK(cfg.groups[i].name && cfg.groups[i].name[0]);
	if (cfg.ninputs)
		FUZZ_CHECK(modelcfg_input_index(&cfg, cfg.inputs[0].name) >= 0);
	if (cfg.noutputs)
		FUZZ_CHECK(modelcfg_output_index(&cfg, cfg.outputs[0].name) >= 0);
	(void)modelcfg_param(&cfg, "k");
	modelcfg_free(&cfg);
	return 0;
}

FUZZ_ENTRY(fuzz_pbtxt)
