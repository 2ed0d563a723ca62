/* SPDX-License-Identifier: MIT */
/*
 * onnx_plugin.c - the built-in "onnx" backend packaged as a plugin
 * (libferry_onnx.so), so the broker-level tests run it through a real
 * ferryd with --backend-directory whether or not that ferryd registers the
 * built-in (when it does, the built-in wins and this is never loaded).
 * The entry points forward to the built-in's table.
 */
#include "config.h"

#include <ferry/backend.h>

#include "broker/backends/onnx/ox_backend.h"

FERRY_BACKEND_DECLARE_VERSION

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_initialize(ferry_be_model *m)
{
	return ox_be_ops.model_initialize(m);
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_model_finalize(ferry_be_model *m)
{
	return ox_be_ops.model_finalize(m);
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_initialize(ferry_be_instance *i)
{
	return ox_be_ops.instance_initialize(i);
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_finalize(ferry_be_instance *i)
{
	return ox_be_ops.instance_finalize(i);
}

FERRY_BE_EXPORT ferry_be_error *ferry_backend_instance_execute(ferry_be_instance *i,
							       ferry_be_request **reqs,
							       uint32_t count)
{
	return ox_be_ops.instance_execute(i, reqs, count);
}
