/* SPDX-License-Identifier: MIT */
/*
 * version.c - ferry_version(): the version this libferry was built as,
 * from configure's AC_INIT (through ferry/version.h).
 */
#include <ferry/ferry.h>

FERRY_API const char *ferry_version(void)
{
	return FERRY_VERSION_STRING;
}
