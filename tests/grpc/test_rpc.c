/* SPDX-License-Identifier: MIT */
/*
 * proto/rpc.c's reading of a failed call: the server's "ferry-code"
 * trailer wins over the gRPC status when it names a code this build knows.
 */
#include <criterion/criterion.h>

#include <ferry/errors.h>

#include "proto/rpc.h"

static int trailer(const char *key, const char *value)
{
	grpc_metadata md[2];
	grpc_metadata_array a = { .count = 2, .capacity = 2, .metadata = md };
	md[0].key = grpc_slice_from_static_string("x-other");
	md[0].value = grpc_slice_from_static_string("-2005");
	md[1].key = grpc_slice_from_static_string(key);
	md[1].value = grpc_slice_from_static_string(value);
	return rpc_trailer_code(&a);
}

Test(rpc, ferry_code_trailer_is_read)
{
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-2004"), FERRY_DTYPE);
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-2005"), FERRY_SHAPE);
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-22"), FERRY_EINVAL);
}

Test(rpc, a_trailer_that_names_no_known_code_is_ignored)
{
	cr_assert_eq(trailer("ferry-codes", "-2004"), 0, "another key");
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, ""), 0);
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-2004x"), 0);
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "2004"), 0, "codes are negative");
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-1999"), 0, "not in the table");
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-99999999999999999999"), 0);
	cr_assert_eq(trailer(RPC_FERRY_CODE_KEY, "-4294967318"), 0, "-22 once wrapped");
	cr_assert_eq(rpc_trailer_code(NULL), 0);
}

Test(rpc, statuses_map_without_a_trailer)
{
	cr_assert_eq(rpc_status_code(GRPC_STATUS_OK, NULL), 0);
	cr_assert_eq(rpc_status_code(GRPC_STATUS_INVALID_ARGUMENT, "x"), FERRY_EINVAL);
	cr_assert_eq(rpc_status_code(GRPC_STATUS_NOT_FOUND, NULL), FERRY_ENOENT);
	cr_assert_eq(rpc_status_code(GRPC_STATUS_DEADLINE_EXCEEDED, NULL), FERRY_ETIMEDOUT);
	cr_assert_eq(rpc_status_code(GRPC_STATUS_RESOURCE_EXHAUSTED,
				     "Received message larger than max (5 vs. 4)"), FERRY_E2BIG);
	cr_assert_eq(rpc_status_code(GRPC_STATUS_RESOURCE_EXHAUSTED, "queue full"), FERRY_ENOSPC);
	cr_assert_eq(rpc_status_code(GRPC_STATUS_DATA_LOSS, NULL), FERRY_EPROTO);
}
