/* SPDX-License-Identifier: MIT */
/* libferry_noexec.so: lacks the required ferry_backend_instance_execute. */
#include "config.h"

#include <ferry/backend.h>

FERRY_BACKEND_DECLARE_VERSION

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_initialize(ferry_be_model *m)
{
	return NULL;
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_initialize(ferry_be_instance *i)
{
	return NULL;
}
