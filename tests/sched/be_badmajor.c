/* SPDX-License-Identifier: MIT */
/* libferry_badmajor.so: built for the next major version of the ABI. */
#include "config.h"

#include <ferry/backend.h>

FERRY_BE_EXPORT void ferry_backend_api_version_required(uint32_t *major, uint32_t *minor)
{
	*major = FERRY_BACKEND_API_VERSION_MAJOR + 1;
	*minor = 0;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_initialize(ferry_be_model *m)
{
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
	return NULL;
}
