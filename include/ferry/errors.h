/* SPDX-License-Identifier: MIT */
/*
 * ferry error codes: one table, shared by libferry, ferryd and backends.
 *
 * Every ferry function returns 0 on success or a negative error code.  Codes
 * that have a natural errno equivalent use it (so -ENOMEM from the arena and
 * FERRY_ENOMEM are the same number); ferry's own codes sit above 2000, out of
 * errno's range.  ferry_strerror() gives the fixed message of a code.
 *
 * The table is an X-macro so that the enum and the strings cannot drift.
 */
#ifndef FERRY_ERRORS_H
#define FERRY_ERRORS_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/*      name            value                 message */
#define FERRY_ERRNO_MAP(XX)                                                   \
	XX(EINVAL,       -EINVAL,      "invalid argument")                      \
	XX(ENOMEM,       -ENOMEM,      "out of memory")                         \
	XX(ENOENT,       -ENOENT,      "no such model, version, input or output") \
	XX(EAGAIN,       -EAGAIN,      "resource temporarily unavailable, try again") \
	XX(ETIMEDOUT,    -ETIMEDOUT,   "timed out")                             \
	XX(EPERM,        -EPERM,       "permission denied")                     \
	XX(ECONNREFUSED, -ECONNREFUSED,"no broker is listening")                \
	XX(EPIPE,        -EPIPE,       "disconnected from the broker")          \
	XX(EPROTO,       -EPROTO,      "protocol error")                        \
	XX(E2BIG,        -E2BIG,       "too large")                             \
	XX(ENOSPC,       -ENOSPC,      "ring or queue full")                    \
	XX(ECANCELED,    -ECANCELED,   "canceled")                              \
	XX(EBADMSG,      -EBADMSG,     "malformed segment or message")          \
	XX(ENOTSUP,      -ENOTSUP,     "not supported")                         \
	XX(EBUSY,        -EBUSY,       "busy")                                  \
	XX(UNAVAILABLE,  -2001,        "model not ready or broker shutting down") \
	XX(BACKEND,      -2002,        "the backend failed")                    \
	XX(REJECTED,     -2003,        "request rejected by the queue policy")  \
	XX(DTYPE,        -2004,        "data type does not match the model")    \
	XX(SHAPE,        -2005,        "shape does not match the model")        \
	XX(VERSION,      -2006,        "incompatible protocol or ABI version")  \
	XX(CONFIG,       -2007,        "invalid model configuration")

enum ferry_errno {
#define FERRY__ERR_ENUM(name, value, msg) FERRY_##name = (value),
	FERRY_ERRNO_MAP(FERRY__ERR_ENUM)
#undef FERRY__ERR_ENUM
};

/*
 * ferry_strerror - the fixed message of an error code
 *
 * Accepts any value a ferry call returned (0 included).  Never NULL; the
 * string is static.
 */
const char *ferry_strerror(int err);

/*
 * ferry_errname - the code's name ("FERRY_EINVAL"), static, never NULL.
 */
const char *ferry_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_ERRORS_H */
