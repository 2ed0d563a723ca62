/* SPDX-License-Identifier: MIT */
/*
 * ferr.c - the one table of ferry error codes and messages.  It lives with
 * the shared-memory library because status codes cross the segment in
 * completions; both ferryd and libferry link it.
 */
#include <stdio.h>

#include <ferry/errors.h>

#define FERRY_EXPORT __attribute__((visibility("default")))

FERRY_EXPORT const char *ferry_strerror(int err)
{
	if (err == 0)
		return "success";
	switch (err) {
#define FERRY__ERR_STR(name, value, msg) case (value): return msg;
	FERRY_ERRNO_MAP(FERRY__ERR_STR)
#undef FERRY__ERR_STR
	default:
		return "unknown error";
	}
}

FERRY_EXPORT const char *ferry_errname(int err)
{
	if (err == 0)
		return "FERRY_OK";
	switch (err) {
#define FERRY__ERR_NAME(name, value, msg) case (value): return "FERRY_" #name;
	FERRY_ERRNO_MAP(FERRY__ERR_NAME)
#undef FERRY__ERR_NAME
	default:
		return "FERRY_EUNKNOWN";
	}
}
