/* The error table: every code has a distinct message and name. */
#include <string.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>
#include <ferry/dtype.h>

Test(errors, success_has_a_message)
{
	cr_assert_str_eq(ferry_strerror(0), "success");
}

Test(errors, codes_are_negative_and_distinct)
{
	static const int codes[] = {
#define C(name, value, msg) value,
		FERRY_ERRNO_MAP(C)
#undef C
	};
	size_t n = sizeof(codes) / sizeof(codes[0]);
	for (size_t i = 0; i < n; i++) {
		cr_assert_lt(codes[i], 0);
		cr_assert_str_neq(ferry_strerror(codes[i]), "unknown error");
		for (size_t j = i + 1; j < n; j++)
			cr_assert_neq(codes[i], codes[j]);
	}
}

Test(errors, unknown_code)
{
	cr_assert_str_eq(ferry_strerror(-99999), "unknown error");
	cr_assert_str_eq(ferry_errname(FERRY_EINVAL), "FERRY_EINVAL");
}

Test(dtype, sizes_match_triton)
{
	cr_assert_eq(ferry_dtype_size(FERRY_TYPE_FP32), 4);
	cr_assert_eq(ferry_dtype_size(FERRY_TYPE_BYTES), 0);
	cr_assert_eq(FERRY_TYPE_BF16, 14);
	cr_assert_str_eq(ferry_dtype_name(FERRY_TYPE_INT64), "INT64");
	cr_assert_null(ferry_dtype_name(0));
}
