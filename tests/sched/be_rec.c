/* SPDX-License-Identifier: MIT */
/*
 * libferry_rec.so: a plugin built against <ferry/backend.h> whose execute
 * is the test program's hook.  Model parameter "light" = "1" marks the
 * model light (inline).
 */
#include "config.h"

#include <string.h>

#include <ferry/backend.h>

#include "rec.h"

FERRY_BACKEND_DECLARE_VERSION

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_initialize(ferry_be_model *m)
{
	const char *light = ferry_be_model_parameter_by_name(m, "light");

	if (light && strcmp(light, "1") == 0)
		return ferry_be_model_set_property(m, FERRY_BE_MODEL_PROP_LIGHT, 1);
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_initialize(ferry_be_instance *i)
{
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_execute(ferry_be_instance *i,
							       ferry_be_request **reqs,
							       uint32_t count)
{
	return ferry_test_rec_execute(i, reqs, count);
}
