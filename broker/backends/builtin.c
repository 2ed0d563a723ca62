/* SPDX-License-Identifier: MIT */
/*
 * builtin.c - the table of backends compiled into ferryd.
 */
#include "config.h"

#include "broker/backends/builtin.h"
#include "broker/backends/onnx/ox_backend.h"

static const struct {
	const char *name;
	const struct be_ops *ops;
} builtin__table[] = {
	{ "identity", &identity_be_ops },
	{ "add_sub", &addsub_be_ops },
	{ "onnx", &ox_be_ops },
};

int builtin_register(struct be_registry *reg, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(builtin__table) / sizeof(builtin__table[0]); i++) {
		int rc = be_registry_add_builtin(reg, builtin__table[i].name, builtin__table[i].ops,
						 err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}
