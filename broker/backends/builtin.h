/* SPDX-License-Identifier: MIT */
/*
 * builtin.h - the backends compiled into ferryd, registered through the
 * same entry-point table as plugins: "identity", "add_sub" and "onnx" (the
 * native executor).  Backends that ship as plugins (onnxruntime) are found
 * by the registry in its backend directories instead.  Prefix builtin_.
 */
#ifndef FERRY_BUILTIN_H
#define FERRY_BUILTIN_H

#include <stddef.h>

#include "broker/sched/be_host.h"

/* The entry-point tables (identity.c, addsub.c). */
extern const struct be_ops identity_be_ops;
extern const struct be_ops addsub_be_ops;

/*
 * builtin_register - add every built-in backend to @reg; call once after
 * be_registry_create().  0, or be_registry_add_builtin()'s error with
 * @err filled.
 */
int builtin_register(struct be_registry *reg, char *err, size_t errlen);

#endif /* FERRY_BUILTIN_H */
