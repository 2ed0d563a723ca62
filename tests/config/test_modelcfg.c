/* config.pbtxt -> struct model_config: fields, defaults, warnings, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>

#include "broker/config/modelcfg.h"

struct warns {
	int n;
	char text[32][256];
};

static void collect(void *arg, const char *where, const char *msg)
{
	struct warns *w = arg;

	if (w->n < 32)
		snprintf(w->text[w->n], sizeof(w->text[0]), "%s: %s", where, msg);
	w->n++;
}

static bool warned(const struct warns *w, const char *needle)
{
	for (int i = 0; i < w->n && i < 32; i++)
		if (strstr(w->text[i], needle))
			return true;
	return false;
}

static char err[512];

static void parse_ok(const char *text, struct model_config *cfg, struct warns *w)
{
	memset(w, 0, sizeof(*w));
	int rc = modelcfg_parse(text, strlen(text), "config.pbtxt", cfg, collect, w,
			  err, sizeof(err));
	cr_assert_eq(rc, 0, "mc_parse: %s", err);
}

/* Parse must fail with FERRY_CONFIG and an error starting with `want`. */
static void parse_bad(const char *text, const char *want)
{
	struct model_config cfg;
	struct warns w = { 0 };

	memset(&cfg, 0x5a, sizeof(cfg));
	int rc = modelcfg_parse(text, strlen(text), "config.pbtxt", &cfg, collect, &w,
			  err, sizeof(err));
	cr_assert_eq(rc, FERRY_CONFIG, "rc %d (%s) for:\n%s", rc, err, text);
	cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
	/* a failed parse leaves the config zeroed */
	static const struct model_config zero;
	cr_assert_eq(memcmp(&cfg, &zero, sizeof(cfg)), 0);
}

#define IO "input { name: \"I\" data_type: TYPE_FP32 dims: [ 4 ] }\n" \
	   "output { name: \"O\" data_type: TYPE_FP32 dims: [ 4 ] }\n"

/* Triton's docs/examples/model_repository/simple/config.pbtxt */
static const char simple_cfg[] =
	"name: \"simple\"\n"
	"platform: \"tensorflow_graphdef\"\n"
	"max_batch_size: 8\n"
	"input [\n"
	"  {\n"
	"    name: \"INPUT0\"\n"
	"    data_type: TYPE_INT32\n"
	"    dims: [ 16 ]\n"
	"  },\n"
	"  {\n"
	"    name: \"INPUT1\"\n"
	"    data_type: TYPE_INT32\n"
	"    dims: [ 16 ]\n"
	"  }\n"
	"]\n"
	"output [\n"
	"  {\n"
	"    name: \"OUTPUT0\"\n"
	"    data_type: TYPE_INT32\n"
	"    dims: [ 16 ]\n"
	"  },\n"
	"  {\n"
	"    name: \"OUTPUT1\"\n"
	"    data_type: TYPE_INT32\n"
	"    dims: [ 16 ]\n"
	"  }\n"
	"]\n";

Test(modelcfg, triton_simple)
{
	struct model_config cfg;
	struct warns w;

	parse_ok(simple_cfg, &cfg, &w);
	cr_assert_eq(w.n, 0);
	cr_assert_str_eq(cfg.name, "simple");
	cr_assert_str_eq(cfg.platform, "tensorflow_graphdef");
	cr_assert_str_eq(cfg.backend, "");
	cr_assert_eq(cfg.max_batch_size, 8);
	cr_assert_eq(cfg.ninputs, 2);
	cr_assert_eq(cfg.noutputs, 2);
	cr_assert_str_eq(cfg.inputs[1].name, "INPUT1");
	cr_assert_eq(cfg.inputs[1].dtype, FERRY_TYPE_INT32);
	cr_assert_eq(cfg.inputs[1].ndims, 1);
	cr_assert_eq(cfg.inputs[1].dims[0], 16);
	cr_assert_not(cfg.inputs[1].has_reshape);
	cr_assert_not(cfg.inputs[1].optional);
	cr_assert_eq(modelcfg_input_index(&cfg, "INPUT1"), 1);
	cr_assert_eq(modelcfg_output_index(&cfg, "OUTPUT0"), 0);
	cr_assert_eq(modelcfg_output_index(&cfg, "INPUT0"), -1);
	/* Triton's defaults */
	cr_assert_not(cfg.dynbatch.enabled);
	cr_assert_eq(cfg.ngroups, 1);
	cr_assert_eq(cfg.groups[0].count, 1);
	cr_assert_eq(cfg.groups[0].kind, MODELCFG_KIND_AUTO);
	cr_assert_str_eq(cfg.groups[0].name, "simple_0");
	cr_assert_eq(cfg.version_policy.kind, MODELCFG_VP_LATEST);
	cr_assert_eq(cfg.version_policy.latest_num, 1);
	cr_assert_eq(cfg.nparams, 0);
	cr_assert_null(modelcfg_param(&cfg, "x"));
	modelcfg_free(&cfg);
	cr_assert_null(cfg.name);
	cr_assert_eq(cfg.ninputs, 0);
}

/* Triton's docs/examples/model_repository/densenet_onnx/config.pbtxt */
Test(modelcfg, triton_densenet_onnx)
{
	static const char text[] =
		"name: \"densenet_onnx\"\n"
		"platform: \"onnxruntime_onnx\"\n"
		"max_batch_size : 0\n"
		"input [\n"
		"  {\n"
		"    name: \"data_0\"\n"
		"    data_type: TYPE_FP32\n"
		"    format: FORMAT_NCHW\n"
		"    dims: [ 3, 224, 224 ]\n"
		"    reshape { shape: [ 1, 3, 224, 224 ] }\n"
		"  }\n"
		"]\n"
		"output [\n"
		"  {\n"
		"    name: \"fc6_1\"\n"
		"    data_type: TYPE_FP32\n"
		"    dims: [ 1000 ]\n"
		"    reshape { shape: [ 1, 1000, 1, 1 ] }\n"
		"    label_filename: \"densenet_labels.txt\"\n"
		"  }\n"
		"]\n";
	struct model_config cfg;
	struct warns w;

	parse_ok(text, &cfg, &w);
	cr_assert_eq(cfg.max_batch_size, 0);
	cr_assert_str_eq(cfg.platform, "onnxruntime_onnx");
	const struct modelcfg_tensor *in = &cfg.inputs[0];
	cr_assert_eq(in->ndims, 3);
	cr_assert_eq(in->dims[2], 224);
	cr_assert(in->has_reshape);
	cr_assert_eq(in->reshape_ndims, 4);
	cr_assert_eq(in->reshape[0], 1);
	cr_assert_eq(cfg.outputs[0].reshape_ndims, 4);
	cr_assert_eq(w.n, 2);
	cr_assert(warned(&w, "config.pbtxt:8:5: 'format' in input is not supported"),
		  "%s", w.text[0]);
	cr_assert(warned(&w, "config.pbtxt:19:5: 'label_filename' in output is not supported"),
		  "%s", w.text[1]);
	modelcfg_free(&cfg);
}

/* Triton's docs (architecture.md): an ensemble parses, with a warning. */
Test(modelcfg, triton_ensemble_warns)
{
	static const char text[] =
		"name: \"ensemble_model\"\n"
		"platform: \"ensemble\"\n"
		"max_batch_size: 1\n"
		"input [\n"
		"  {\n"
		"    name: \"IMAGE\"\n"
		"    data_type: TYPE_STRING\n"
		"    dims: [ 1 ]\n"
		"  }\n"
		"]\n"
		"output [\n"
		"  {\n"
		"    name: \"CLASSIFICATION\"\n"
		"    data_type: TYPE_FP32\n"
		"    dims: [ 1000 ]\n"
		"  },\n"
		"  {\n"
		"    name: \"SEGMENTATION\"\n"
		"    data_type: TYPE_FP32\n"
		"    dims: [ 3, 224, 224 ]\n"
		"  }\n"
		"]\n"
		"ensemble_scheduling {\n"
		"  step [\n"
		"    {\n"
		"      model_name: \"image_preprocess_model\"\n"
		"      model_version: -1\n"
		"      input_map {\n"
		"        key: \"RAW_IMAGE\"\n"
		"        value: \"IMAGE\"\n"
		"      }\n"
		"      output_map {\n"
		"        key: \"PREPROCESSED_OUTPUT\"\n"
		"        value: \"preprocessed_image\"\n"
		"      }\n"
		"    },\n"
		"    {\n"
		"      model_name: \"classification_model\"\n"
		"      model_version: -1\n"
		"      input_map {\n"
		"        key: \"FORMATTED_IMAGE\"\n"
		"        value: \"preprocessed_image\"\n"
		"      }\n"
		"      output_map {\n"
		"        key: \"CLASSIFICATION_OUTPUT\"\n"
		"        value: \"CLASSIFICATION\"\n"
		"      }\n"
		"    }\n"
		"  ]\n"
		"}\n";
	struct model_config cfg;
	struct warns w;

	parse_ok(text, &cfg, &w);
	cr_assert_eq(cfg.inputs[0].dtype, FERRY_TYPE_BYTES);
	cr_assert_eq(cfg.outputs[1].ndims, 3);
	cr_assert_eq(w.n, 1);
	cr_assert(warned(&w, "config.pbtxt:23:1: 'ensemble_scheduling' in ModelConfig is not supported by ferry"),
		  "%s", w.text[0]);
	modelcfg_free(&cfg);
}

/* Triton's docs (architecture.md, sequence batcher). */
Test(modelcfg, triton_sequence_batching_warns)
{
	static const char text[] =
		"name: \"simple_sequence\"\n"
		"backend: \"onnxruntime\"\n"
		"max_batch_size: 8\n"
		"sequence_batching {\n"
		"  max_sequence_idle_microseconds: 5000000\n"
		"  control_input [\n"
		"    {\n"
		"      name: \"START\"\n"
		"      control [\n"
		"        {\n"
		"          kind: CONTROL_SEQUENCE_START\n"
		"          fp32_false_true: [ 0, 1 ]\n"
		"        }\n"
		"      ]\n"
		"    },\n"
		"    {\n"
		"      name: \"READY\"\n"
		"      control [\n"
		"        {\n"
		"          kind: CONTROL_SEQUENCE_READY\n"
		"          fp32_false_true: [ 0, 1 ]\n"
		"        }\n"
		"      ]\n"
		"    }\n"
		"  ]\n"
		"}\n"
		"input [ { name: \"INPUT\" data_type: TYPE_INT32 dims: [ 1 ] } ]\n"
		"output [ { name: \"OUTPUT\" data_type: TYPE_INT32 dims: [ 1 ] } ]\n"
		"instance_group [ { count: 2 kind: KIND_GPU } ]\n"
		"model_transaction_policy { decoupled: true }\n";
	struct model_config cfg;
	struct warns w;

	parse_ok(text, &cfg, &w);
	cr_assert_eq(w.n, 2);
	cr_assert(warned(&w, "config.pbtxt:4:1: 'sequence_batching'"), "%s", w.text[0]);
	cr_assert(warned(&w, "sequence batcher"));
	cr_assert(warned(&w, "config.pbtxt:30:1: 'model_transaction_policy'"), "%s", w.text[1]);
	cr_assert(warned(&w, "decoupled"));
	cr_assert_eq(cfg.groups[0].count, 2);
	cr_assert_eq(cfg.groups[0].kind, MODELCFG_KIND_GPU);
	modelcfg_free(&cfg);
}

Test(modelcfg, every_field)
{
	static const char text[] =
		"name: \"full\"\n"
		"backend: \"onnxruntime\"\n"
		"max_batch_size: 32\n"
		"version_policy: { specific: { versions: [1, 3] } }\n"
		"input [\n"
		"  { name: \"A\" data_type: TYPE_FP16 dims: [ -1, 8 ] optional: true },\n"
		"  { name: \"S\" data_type: TYPE_STRING dims: [ 1 ]\n"
		"    reshape: { shape: [ ] } }\n"
		"]\n"
		"input { name: \"B\" data_type: TYPE_BF16 dims: 2 dims: 3 }\n"
		"output < name: 'Y' data_type: TYPE_BOOL dims: [1,2,3,4,5,6,7,8] >\n"
		"dynamic_batching {\n"
		"  preferred_batch_size: [ 4, 8 ]\n"
		"  preferred_batch_size: 16\n"
		"  max_queue_delay_microseconds: 100\n"
		"  preserve_ordering: true\n"
		"  priority_levels: 3\n"
		"  default_priority_level: 2\n"
		"  default_queue_policy {\n"
		"    timeout_action: DELAY\n"
		"    default_timeout_microseconds: 5000\n"
		"    allow_timeout_override: true\n"
		"    max_queue_size: 16\n"
		"  }\n"
		"  priority_queue_policy [\n"
		"    { key: 1 value: { timeout_action: REJECT max_queue_size: 4 } },\n"
		"    { key: 3 value: { default_timeout_microseconds: 100 } }\n"
		"  ]\n"
		"  priority_queue_policy { key: 2 value { allow_timeout_override: True } }\n"
		"}\n"
		"instance_group [\n"
		"  { name: \"g\" count: 2 kind: KIND_GPU gpus: [ 0, 1 ] },\n"
		"  { kind: KIND_CPU },\n"
		"  { count: 0 kind: KIND_MODEL }\n"
		"]\n"
		"parameters { key: \"k1\" value: { string_value: \"v1\" } }\n"
		"parameters: [ { key: \"k2\" value { string_value: \"\" } },\n"
		"              { key: \"k3\" } ]\n";
	struct model_config cfg;
	struct warns w;

	parse_ok(text, &cfg, &w);
	cr_assert_eq(w.n, 0, "%s", w.text[0]);
	cr_assert_str_eq(cfg.backend, "onnxruntime");
	cr_assert_eq(cfg.max_batch_size, 32);
	cr_assert_eq(cfg.version_policy.kind, MODELCFG_VP_SPECIFIC);
	cr_assert_eq(cfg.version_policy.nversions, 2);
	cr_assert_eq(cfg.version_policy.versions[1], 3);

	cr_assert_eq(cfg.ninputs, 3);
	cr_assert_eq(cfg.inputs[0].dtype, FERRY_TYPE_FP16);
	cr_assert_eq(cfg.inputs[0].dims[0], -1);
	cr_assert(cfg.inputs[0].optional);
	cr_assert_eq(cfg.inputs[1].dtype, FERRY_TYPE_BYTES);
	cr_assert(cfg.inputs[1].has_reshape);
	cr_assert_eq(cfg.inputs[1].reshape_ndims, 0);
	cr_assert_eq(cfg.inputs[2].dtype, FERRY_TYPE_BF16);
	cr_assert_eq(cfg.inputs[2].ndims, 2);
	cr_assert_eq(cfg.inputs[2].dims[1], 3);
	cr_assert_eq(cfg.outputs[0].dtype, FERRY_TYPE_BOOL);
	cr_assert_eq(cfg.outputs[0].ndims, MODELCFG_MAX_DIMS);

	const struct modelcfg_dynbatch *d = &cfg.dynbatch;
	cr_assert(d->enabled);
	cr_assert_eq(d->npreferred, 3);
	cr_assert_eq(d->preferred[2], 16);
	cr_assert_eq(d->max_queue_delay_us, 100);
	cr_assert(d->preserve_ordering);
	cr_assert_eq(d->priority_levels, 3);
	cr_assert_eq(d->default_priority_level, 2);
	cr_assert_eq(d->default_policy.timeout_action, MODELCFG_TIMEOUT_DELAY);
	cr_assert_eq(d->default_policy.default_timeout_us, 5000);
	cr_assert(d->default_policy.allow_timeout_override);
	cr_assert_eq(d->default_policy.max_queue_size, 16);
	cr_assert_eq(d->nprio_policies, 3);
	cr_assert_eq(d->prio_policies[0].level, 1);
	cr_assert_eq(d->prio_policies[0].policy.timeout_action, MODELCFG_TIMEOUT_REJECT);
	cr_assert_eq(d->prio_policies[0].policy.max_queue_size, 4);
	cr_assert_eq(d->prio_policies[1].level, 3);
	cr_assert_eq(d->prio_policies[1].policy.default_timeout_us, 100);
	cr_assert_eq(d->prio_policies[2].level, 2);
	cr_assert(d->prio_policies[2].policy.allow_timeout_override);

	cr_assert_eq(cfg.ngroups, 3);
	cr_assert_str_eq(cfg.groups[0].name, "g");
	cr_assert_eq(cfg.groups[0].count, 2);
	cr_assert_eq(cfg.groups[0].ngpus, 2);
	cr_assert_eq(cfg.groups[0].gpus[1], 1);
	cr_assert_str_eq(cfg.groups[1].name, "full_1");
	cr_assert_eq(cfg.groups[1].kind, MODELCFG_KIND_CPU);
	cr_assert_eq(cfg.groups[1].count, 1);
	cr_assert_eq(cfg.groups[2].kind, MODELCFG_KIND_MODEL);
	cr_assert_eq(cfg.groups[2].count, 1);

	cr_assert_eq(cfg.nparams, 3);
	cr_assert_str_eq(modelcfg_param(&cfg, "k1"), "v1");
	cr_assert_str_eq(modelcfg_param(&cfg, "k2"), "");
	cr_assert_str_eq(modelcfg_param(&cfg, "k3"), "");
	modelcfg_free(&cfg);
}

Test(modelcfg, version_policies)
{
	struct model_config cfg;
	struct warns w;

	parse_ok("version_policy { latest { num_versions: 2 } }\n" IO, &cfg, &w);
	cr_assert_eq(cfg.version_policy.kind, MODELCFG_VP_LATEST);
	cr_assert_eq(cfg.version_policy.latest_num, 2);
	modelcfg_free(&cfg);
	parse_ok("version_policy: { all: {} }\n" IO, &cfg, &w);
	cr_assert_eq(cfg.version_policy.kind, MODELCFG_VP_ALL);
	modelcfg_free(&cfg);
	parse_ok("version_policy { }\n" IO, &cfg, &w);
	cr_assert_eq(cfg.version_policy.kind, MODELCFG_VP_LATEST);
	cr_assert_eq(cfg.version_policy.latest_num, 1);
	modelcfg_free(&cfg);
	parse_bad("version_policy { all {} latest { num_versions: 1 } }\n" IO,
		  "config.pbtxt:1:25: version_policy takes one of latest, all or specific");
	parse_bad("version_policy { latest { } }\n" IO,
		  "config.pbtxt:1:18: latest version policy needs num_versions >= 1");
	parse_bad("version_policy { specific { } }\n" IO,
		  "config.pbtxt:1:18: specific version policy lists no versions");
	parse_bad("version_policy { specific { versions: [1, 0] } }\n" IO,
		  "config.pbtxt:1:43: 'versions' out of range: 0 not in [1,");
}

Test(modelcfg, no_name_means_empty_and_set_name_fills_groups)
{
	struct model_config cfg;
	struct warns w;

	parse_ok(IO "instance_group [ { }, { name: \"mine\" } ]", &cfg, &w);
	cr_assert_str_eq(cfg.name, "");
	cr_assert_str_eq(cfg.groups[0].name, "");
	cr_assert_eq(modelcfg_set_name(&cfg, "dir"), 0);
	cr_assert_str_eq(cfg.name, "dir");
	cr_assert_str_eq(cfg.groups[0].name, "dir_0");
	cr_assert_str_eq(cfg.groups[1].name, "mine");
	modelcfg_free(&cfg);
}

Test(modelcfg, enums_by_number_and_bool_spellings)
{
	struct model_config cfg;
	struct warns w;

	parse_ok("input { name: \"I\" data_type: 11 dims: 1 optional: t }\n"
		 "output { name: \"O\" data_type: 13 dims: 1 }\n"
		 "instance_group { kind: 2 }\n"
		 "dynamic_batching { preserve_ordering: 1 default_queue_policy { timeout_action: 1 } }\n"
		 "max_batch_size: 2", &cfg, &w);
	cr_assert_eq(cfg.inputs[0].dtype, FERRY_TYPE_FP32);
	cr_assert(cfg.inputs[0].optional);
	cr_assert_eq(cfg.outputs[0].dtype, FERRY_TYPE_BYTES);
	cr_assert_eq(cfg.groups[0].kind, MODELCFG_KIND_CPU);
	cr_assert(cfg.dynbatch.preserve_ordering);
	cr_assert_eq(cfg.dynbatch.default_policy.timeout_action, MODELCFG_TIMEOUT_DELAY);
	modelcfg_free(&cfg);
}

Test(modelcfg, unknown_fields_warn_with_location)
{
	struct model_config cfg;
	struct warns w;

	parse_ok("name: \"m\"\n"
		 "colour: \"blue\"\n"
		 "input { name: \"I\" data_type: TYPE_FP32 dims: [ 4 ]\n"
		 "        frobnicate { deep { deeper: 1 } } }\n"
		 "output { name: \"O\" data_type: TYPE_FP32 dims: [ 4 ] optional: true }\n"
		 "dynamic_batching { max_queue_delay_microseconds: 5 turbo: true }\n"
		 "instance_group { count: 1 rate_limiter { resources [ { name: \"R\" count: 1 } ] } }\n"
		 "  [some.extension] { }\n"
		 "optimization { priority: PRIORITY_MAX }\n"
		 "model_warmup [ { name: \"w\" batch_size: 1 } ]\n"
		 "default_model_filename: \"m.onnx\"\n"
		 "response_cache { enable: true }\n"
		 "max_batch_size: 4\n",
		 &cfg, &w);
	cr_assert_eq(w.n, 10, "%d warnings", w.n);
	cr_assert(warned(&w, "config.pbtxt:2:1: unknown field 'colour' in ModelConfig"));
	cr_assert(warned(&w, "config.pbtxt:4:9: unknown field 'frobnicate' in input"));
	cr_assert(warned(&w, "config.pbtxt:5:53: unknown field 'optional' in output"));
	cr_assert(warned(&w, "config.pbtxt:6:52: unknown field 'turbo' in dynamic_batching"));
	cr_assert(warned(&w, "config.pbtxt:7:27: 'rate_limiter' in instance_group"));
	cr_assert(warned(&w, "config.pbtxt:8:3: unknown field '[some.extension]'"));
	cr_assert(warned(&w, "config.pbtxt:9:16: 'priority' in optimization"));
	/* a repeated ignored field warns once per occurrence */
	cr_assert(warned(&w, "config.pbtxt:10:1: 'model_warmup'"));
	cr_assert(warned(&w, "config.pbtxt:11:1: 'default_model_filename'"));
	cr_assert(warned(&w, "config.pbtxt:12:1: 'response_cache'"));
	/* ... and the values after unknown fields still count */
	cr_assert_eq(cfg.max_batch_size, 4);
	cr_assert_eq(cfg.dynbatch.max_queue_delay_us, 5);
	modelcfg_free(&cfg);
}

Test(modelcfg, ignored_fields_at_default_do_not_warn)
{
	struct model_config cfg;
	struct warns w;

	parse_ok("input { name: \"I\" data_type: TYPE_FP32 dims: 4 format: FORMAT_NONE\n"
		 "  is_shape_tensor: false allow_ragged_batch: false }\n"
		 "output { name: \"O\" data_type: TYPE_FP32 dims: 4 label_filename: \"\" }\n"
		 "optimization { }\n", &cfg, &w);
	cr_assert_eq(w.n, 0, "%s", w.text[0]);
	modelcfg_free(&cfg);
}

Test(modelcfg, warnings_without_callback)
{
	struct model_config cfg;

	cr_assert_eq(modelcfg_parse("bogus: 1\n" IO, strlen("bogus: 1\n" IO), NULL, &cfg,
			      NULL, NULL, NULL, 0), 0);
	modelcfg_free(&cfg);
	modelcfg_free(&cfg);  /* idempotent on a zeroed config */
}

Test(modelcfg, parameter_given_twice_warns_and_last_wins)
{
	struct model_config cfg;
	struct warns w;

	parse_ok(IO "parameters { key: \"k\" value { string_value: \"1\" } }\n"
		 "parameters { key: \"k\" value { string_value: \"2\" } }\n", &cfg, &w);
	cr_assert_eq(cfg.nparams, 1);
	cr_assert_str_eq(modelcfg_param(&cfg, "k"), "2");
	cr_assert(warned(&w, "config.pbtxt:4:1: parameter 'k' given again"));
	modelcfg_free(&cfg);
}

Test(modelcfg, type_errors_name_the_value)
{
	parse_bad("max_batch_size: \"8\"\n" IO,
		  "config.pbtxt:1:17: 'max_batch_size' expects an integer, found string");
	parse_bad("max_batch_size: -1\n" IO,
		  "config.pbtxt:1:17: 'max_batch_size' out of range: -1 not in [0, 2147483647]");
	parse_bad("max_batch_size: 1.5\n" IO,
		  "config.pbtxt:1:17: 'max_batch_size' expects an integer, found float");
	parse_bad("name: simple\n" IO,
		  "config.pbtxt:1:7: 'name' expects a string, found identifier");
	parse_bad("name: \"a\\0b\"\n" IO, "config.pbtxt:1:7: 'name' contains a NUL byte");
	parse_bad("input { name: \"I\" data_type: TYPE_FLOAT dims: 1 }\n",
		  "config.pbtxt:1:30: unknown value 'TYPE_FLOAT' for 'data_type'");
	parse_bad("input { name: \"I\" data_type: 99 dims: 1 }\n",
		  "config.pbtxt:1:30: unknown value 99 for 'data_type'");
	parse_bad("input { name: \"I\" data_type: TYPE_INVALID dims: 1 }\n",
		  "config.pbtxt:1:30: data_type TYPE_INVALID is not allowed");
	parse_bad("input { name: \"I\" data_type: \"TYPE_FP32\" dims: 1 }\n",
		  "config.pbtxt:1:30: 'data_type' expects an enum value, found string");
	parse_bad("input { name: \"I\" data_type: TYPE_FP32 dims: [ 2, -2 ] }\n" IO,
		  "config.pbtxt:1:51: dimension must be >= 1, or -1 for a variable size; found -2");
	parse_bad("input { name: \"I\" data_type: TYPE_FP32 dims: [ 0 ] }\n" IO,
		  "config.pbtxt:1:48: dimension must be >= 1");
	parse_bad("input { name: \"I\" data_type: TYPE_FP32 dims: [1,2,3,4,5,6,7,8,9] }\n",
		  "config.pbtxt:1:63: more than 8 dims");
	parse_bad("input { name: \"I\" data_type: TYPE_FP32 dims: 4 optional: yes }\n" IO,
		  "config.pbtxt:1:58: 'optional' expects true or false, found 'yes'");
	parse_bad("instance_group { kind: KIND_TPU }\n" IO,
		  "config.pbtxt:1:24: unknown value 'KIND_TPU' for 'kind'");
	parse_bad("instance_group { count: -2 }\n" IO,
		  "config.pbtxt:1:25: 'count' out of range: -2 not in [0, 4096]");
	parse_bad("instance_group { gpus: -1 }\n" IO,
		  "config.pbtxt:1:24: 'gpus' out of range");
	parse_bad("instance_group { kind: KIND_CPU gpus: [ 0 ] }\n" IO,
		  "config.pbtxt:1:1: instance_group of kind KIND_CPU lists gpus");
	parse_bad("dynamic_batching { default_queue_policy { timeout_action: WAIT } }\n" IO,
		  "config.pbtxt:1:59: unknown value 'WAIT' for 'timeout_action'");
	parse_bad("dynamic_batching { max_queue_delay_microseconds: -5 }\n" IO,
		  "config.pbtxt:1:50: 'max_queue_delay_microseconds' out of range");
	parse_bad("dynamic_batching { default_queue_policy { max_queue_size: 4294967296 } }\n" IO,
		  "config.pbtxt:1:59: 'max_queue_size' out of range: 4294967296 not in [0, 4294967295]");
}

Test(modelcfg, structure_errors)
{
	parse_bad("input: 5\n" IO,
		  "config.pbtxt:1:8: 'input' expects a message { ... }, found integer");
	parse_bad("max_batch_size { }\n" IO,
		  "config.pbtxt:1:16: 'max_batch_size' expects a value, not a message");
	parse_bad("max_batch_size: 1\nmax_batch_size: 2\n" IO,
		  "config.pbtxt:2:1: 'max_batch_size' given more than once in ModelConfig");
	parse_bad("max_batch_size: [ 1 ]\n" IO,
		  "config.pbtxt:1:1: 'max_batch_size' is not a repeated field: a list is not allowed");
	parse_bad("name: \"x\"\nname: \"y\"\n" IO, "config.pbtxt:2:1: 'name' given more than once");
	parse_bad("max_batch_size: 1\ninput { name: \"I\" ", "config.pbtxt:2:7: '{' is never closed");
}

Test(modelcfg, semantic_errors)
{
	parse_bad("output { name: \"O\" data_type: TYPE_FP32 dims: [ 4 ] }\n",
		  "config.pbtxt:1:1: model has no input");
	parse_bad("input { name: \"I\" data_type: TYPE_FP32 dims: [ 4 ] }\n",
		  "config.pbtxt:1:1: model has no output");
	parse_bad("", "config.pbtxt:1:1: model has no input");
	parse_bad(IO "input {\n  name: \"I\"\n  data_type: TYPE_FP32 dims: [ 4 ] }\n",
		  "config.pbtxt:4:9: duplicate input name 'I'");
	parse_bad(IO "output [ { name: \"O\" data_type: TYPE_FP32 dims: 4 } ]\n",
		  "config.pbtxt:3:18: duplicate output name 'O'");
	parse_bad("input { data_type: TYPE_FP32 dims: [ 4 ] }\n" IO,
		  "config.pbtxt:1:1: input without a name");
	parse_bad("input { name: \"\" data_type: TYPE_FP32 dims: [ 4 ] }\n" IO,
		  "config.pbtxt:1:1: input without a name");
	parse_bad("input { name: \"X\" dims: [ 4 ] }\n" IO,
		  "config.pbtxt:1:1: input 'X' has no data_type");
	parse_bad("output { name: \"X\" data_type: TYPE_FP32 }\n" IO,
		  "config.pbtxt:1:1: output 'X' has no dims");
	parse_bad("input { name: \"X\" data_type: TYPE_FP32 dims: [ 2, 3 ]\n"
		  "        reshape { shape: [ 5 ] } }\n" IO,
		  "config.pbtxt:1:1: input 'X': dims hold 6 elements but reshape 5");
	parse_bad("max_batch_size: 4\ndynamic_batching { preferred_batch_size: [ 2, 8 ] }\n" IO,
		  "config.pbtxt:2:1: preferred_batch_size 8 is above max_batch_size 4");
	parse_bad("dynamic_batching { preferred_batch_size: 2 }\n" IO,
		  "config.pbtxt:1:1: preferred_batch_size needs max_batch_size > 0");
	parse_bad("max_batch_size: 4 dynamic_batching { preferred_batch_size: 0 }\n" IO,
		  "config.pbtxt:1:60: 'preferred_batch_size' out of range: 0 not in [1,");
}

Test(modelcfg, priority_levels_checked)
{
	parse_bad("max_batch_size: 4\ndynamic_batching {\n  priority_levels: 2\n"
		  "  default_priority_level: 3\n}\n" IO,
		  "config.pbtxt:4:27: default_priority_level must be in [1, 2] (priority_levels), found 3");
	parse_bad("max_batch_size: 4\ndynamic_batching { priority_levels: 2 }\n" IO,
		  "config.pbtxt:2:1: default_priority_level must be in [1, 2] (priority_levels), found 0");
	parse_bad("max_batch_size: 4\ndynamic_batching { default_priority_level: 1 }\n" IO,
		  "config.pbtxt:2:44: default_priority_level 1 given but priority_levels is 0");
	parse_bad("max_batch_size: 4\ndynamic_batching { priority_levels: 2 default_priority_level: 1\n"
		  "  priority_queue_policy { key: 3 value { } } }\n" IO,
		  "config.pbtxt:2:1: priority_queue_policy key 3 is above priority_levels 2");
	parse_bad("max_batch_size: 4\ndynamic_batching { priority_levels: 2 default_priority_level: 1\n"
		  "  priority_queue_policy { key: 0 value { } } }\n" IO,
		  "config.pbtxt:3:32: priority_queue_policy key 0 is not a priority level");
	parse_bad("max_batch_size: 4\ndynamic_batching { priority_levels: 2 default_priority_level: 1\n"
		  "  priority_queue_policy { value { } } }\n" IO,
		  "config.pbtxt:3:3: priority_queue_policy entry without a key");
}

Test(modelcfg, dynamic_batching_without_batching_warns)
{
	struct model_config cfg;
	struct warns w;

	parse_ok("dynamic_batching { }\n" IO, &cfg, &w);
	cr_assert(cfg.dynbatch.enabled);
	cr_assert(warned(&w, "config.pbtxt:1:1: dynamic_batching with max_batch_size 0"));
	modelcfg_free(&cfg);
}

Test(modelcfg, syntax_errors_pass_through)
{
	parse_bad("name: \"m\"\ninput [ { name: \"I\" }, ]\n",
		  "config.pbtxt:2:24: expected '{' in a list of messages, found ']'");
}

Test(modelcfg, load_file)
{
	char path[] = "/tmp/ferry-mc-XXXXXX";
	int fd = mkstemp(path);
	struct model_config cfg;
	struct warns w = { 0 };

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, simple_cfg, strlen(simple_cfg)), (ssize_t)strlen(simple_cfg));
	close(fd);
	cr_assert_eq(modelcfg_load_file(path, &cfg, collect, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg.name, "simple");
	modelcfg_free(&cfg);
	unlink(path);
	cr_assert_eq(modelcfg_load_file(path, &cfg, collect, &w, err, sizeof(err)), FERRY_ENOENT);
	cr_assert(strstr(err, path));
	cr_assert_eq(modelcfg_load_file("/tmp", &cfg, collect, &w, err, sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/* Hostile configs: bounded, no crash, a clean error. */
Test(modelcfg, hostile_inputs)
{
	struct model_config cfg;
	size_t n = 5000;
	char *s = malloc(n * 40 + 200);
	size_t len = 0;

	/* more inputs than MODELCFG_MAX_IO */
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(s + len, "input{name:\"i%zu\" data_type:1 dims:1}\n", i);
	int rc = modelcfg_parse(s, len, "h", &cfg, NULL, NULL, err, sizeof(err));
	cr_assert_eq(rc, FERRY_CONFIG);
	cr_assert(strstr(err, "h:4097:1: more than 4096 inputs"), "%s", err);

	/* deep nesting inside an unknown field */
	len = (size_t)sprintf(s, IO);
	for (size_t i = 0; i < 1000; i++) {
		s[len++] = 'x';
		s[len++] = '{';
	}
	rc = modelcfg_parse(s, len, "h", &cfg, NULL, NULL, err, sizeof(err));
	cr_assert_eq(rc, FERRY_CONFIG);
	cr_assert(strstr(err, "nested deeper than"), "%s", err);
	free(s);

	/* every prefix of a full config */
	static const char full[] =
		"name: \"m\" max_batch_size: 4\n" IO
		"dynamic_batching { preferred_batch_size: [2,4] priority_levels: 2 "
		"default_priority_level: 1 priority_queue_policy { key: 1 value { max_queue_size: 3 } } }\n"
		"instance_group [ { count: 2 kind: KIND_GPU gpus: [0] } ]\n"
		"parameters { key: \"a\" value { string_value: \"b\" } }\n"
		"version_policy { specific { versions: [1,2] } }\n";
	size_t fl = strlen(full);
	for (size_t i = 0; i <= fl; i++) {
		char *p = malloc(i ? i : 1);
		memcpy(p, full, i);
		rc = modelcfg_parse(p, i, "t", &cfg, NULL, NULL, err, sizeof(err));
		cr_assert(rc == 0 || rc == FERRY_CONFIG, "prefix %zu: %d", i, rc);
		if (rc == 0)
			modelcfg_free(&cfg);
		free(p);
	}
	rc = modelcfg_parse(full, fl, "t", &cfg, NULL, NULL, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	modelcfg_free(&cfg);
}

/* Random byte mutations of a full config: a clean result either way. */
Test(modelcfg, mutated_configs_never_crash)
{
	static const char base[] =
		"name: \"m\" max_batch_size: 4\n" IO
		"input [ { name: \"J\" data_type: TYPE_STRING dims: [ -1 ] reshape { shape: [ ] } } ]\n"
		"dynamic_batching { preferred_batch_size: [2,4] priority_levels: 2 "
		"default_priority_level: 1 priority_queue_policy { key: 1 value { max_queue_size: 3 } } "
		"default_queue_policy { timeout_action: DELAY } }\n"
		"instance_group [ { count: 2 kind: KIND_GPU gpus: [0] }, { kind: KIND_CPU } ]\n"
		"parameters { key: \"a\" value { string_value: \"b\" } }\n"
		"version_policy { latest { num_versions: 2 } }\n"
		"optimization { cuda { graphs: true } }\n";
	static const char bytes[] = "{}[]<>:,;\"'\\#-01 \nxTYPE_";
	size_t len = strlen(base);
	unsigned seed = 4242;
	char *p = malloc(len);
	struct model_config cfg;

	for (int round = 0; round < 4000; round++) {
		memcpy(p, base, len);
		int nmut = 1 + rand_r(&seed) % 4;
		for (int k = 0; k < nmut; k++) {
			int r = rand_r(&seed);
			p[(size_t)r % len] = (r >> 16) & 1 ? bytes[(r >> 17) % (sizeof(bytes) - 1)]
							   : (char)(r >> 20);
		}
		size_t l = (size_t)rand_r(&seed) % 8 == 0 ? (size_t)rand_r(&seed) % len : len;
		int rc = modelcfg_parse(p, l, "mut", &cfg, NULL, NULL, err, sizeof(err));
		cr_assert(rc == 0 || rc == FERRY_CONFIG, "round %d: %d", round, rc);
		if (rc == 0) {
			cr_assert_geq(cfg.ninputs, 1);
			cr_assert_geq(cfg.ngroups, 1);
			modelcfg_free(&cfg);
		} else {
			cr_assert(!strncmp(err, "mut:", 4), "%s", err);
		}
	}
	free(p);
}

/* optimization { graph, execution_accelerators } is read (the onnxruntime
 * backend takes it as Triton's does). */
Test(modelcfg, optimization_graph_and_accelerators)
{
	struct model_config cfg;
	struct warns w;

	parse_ok("optimization { graph { level: -1 }\n"
		 "  execution_accelerators {\n"
		 "    gpu_execution_accelerator: [ { name: \"tensorrt\"\n"
		 "      parameters { key: \"precision_mode\" value: \"FP16\" }\n"
		 "      parameters { key: \"max_workspace_size_bytes\" value: \"1073741824\" } },\n"
		 "      { name: \"cuda\" } ]\n"
		 "    cpu_execution_accelerator: [ { name: \"openvino\" } ] } }\n" IO,
		 &cfg, &w);
	cr_assert_eq(w.n, 0, "%s", w.text[0]);
	cr_assert(cfg.opt.has_graph_level);
	cr_assert_eq(cfg.opt.graph_level, -1);
	cr_assert_eq(cfg.opt.ngpu_accel, 2);
	cr_assert_str_eq(cfg.opt.gpu_accel[0].name, "tensorrt");
	cr_assert_eq(cfg.opt.gpu_accel[0].nparams, 2);
	cr_assert_str_eq(cfg.opt.gpu_accel[0].params[1].key, "max_workspace_size_bytes");
	cr_assert_str_eq(cfg.opt.gpu_accel[0].params[1].value, "1073741824");
	cr_assert_str_eq(cfg.opt.gpu_accel[1].name, "cuda");
	cr_assert_eq(cfg.opt.ncpu_accel, 1);
	cr_assert_str_eq(cfg.opt.cpu_accel[0].name, "openvino");
	cr_assert(!cfg.has_max_batch_size);
	modelcfg_free(&cfg);
	parse_bad("optimization { execution_accelerators { gpu_execution_accelerator: "
		  "[ { parameters { key: \"a\" value: \"b\" } } ] } }\n" IO,
		  "execution accelerator without a name");
}

/* MODELCFG_PARTIAL: what auto-complete fills may be missing; the strict
 * parse and modelcfg_check_io() refuse the same text. */
Test(modelcfg, partial_configs_and_check_io)
{
	static const char text[] = "max_batch_size: 0\n"
				   "input [ { name: \"a\" data_type: TYPE_BOOL } ]\n";
	struct model_config cfg;

	cr_assert_eq(modelcfg_parse_flags(text, strlen(text), "c", MODELCFG_PARTIAL, &cfg,
					  NULL, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert(cfg.has_max_batch_size);
	cr_assert_eq(cfg.ninputs, 1);
	cr_assert_eq(cfg.noutputs, 0);
	cr_assert_eq(modelcfg_check_io(&cfg, "c", err, sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "c: model has no output"), "%s", err);
	modelcfg_free(&cfg);
	parse_bad(text, "input 'a' has no dims");
	cr_assert_eq(modelcfg_parse_flags("input [ { name: \"a\" dims: [2] } ] output "
					  "[ { name: \"b\" data_type: TYPE_FP32 dims: [2] } ]",
					  strlen("input [ { name: \"a\" dims: [2] } ] output "
						 "[ { name: \"b\" data_type: TYPE_FP32 dims: [2] } ]"),
					  "c", MODELCFG_PARTIAL, &cfg, NULL, NULL, err,
					  sizeof(err)), 0);
	cr_assert_eq(modelcfg_check_io(&cfg, "c", err, sizeof(err)), FERRY_CONFIG);
	cr_assert(strstr(err, "input 'a' has no data_type"), "%s", err);
	modelcfg_free(&cfg);
	cr_assert_eq(modelcfg_init_empty(&cfg, "bare"), 0);
	cr_assert_str_eq(cfg.name, "bare");
	cr_assert_str_eq(cfg.groups[0].name, "bare_0");
	cr_assert_eq(modelcfg_check_io(&cfg, "c", err, sizeof(err)), FERRY_CONFIG);
	modelcfg_free(&cfg);
}
