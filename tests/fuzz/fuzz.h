/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - ferry's fuzz targets (tests/fuzz/fuzz_*.c).  Each target is one
 * function, fuzz_<target>(data, size), that feeds one input through the
 * code under test and returns 0; it aborts on a broken invariant, so a
 * finding is a crash under libFuzzer (scripts/fuzz.sh) and, where the
 * target checks the invariant itself rather than leaving it to a
 * sanitizer, in the plain gcc build too, where
 * tests/fuzz/test_regressions.c replays the committed corpus and every
 * past crash through the same function.  Each past finding has such an
 * explicit check (fuzz_submit.c: overlap, alignment).
 *
 * Built with -DFUZZ_LIBFUZZER (scripts/fuzz.sh) a target file also defines
 * LLVMFuzzerTestOneInput; only one target is linked per fuzzer binary.
 */
#ifndef FERRY_TESTS_FUZZ_H
#define FERRY_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int fuzz_pbtxt(const uint8_t *data, size_t size);
int fuzz_onnx(const uint8_t *data, size_t size);
int fuzz_ctl(const uint8_t *data, size_t size);
int fuzz_submit(const uint8_t *data, size_t size);
int fuzz_grpc(const uint8_t *data, size_t size);
int fuzz_http(const uint8_t *data, size_t size);

/*
 * models_shim.c: the model table session.c looks models up in, without
 * ferryd's repository scan.  models_shim_set() installs n records (not
 * copied: they must outlive every lookup); a record's id must be
 * (1 << 16) | its index, as models.c numbers the first generation.
 */
struct models_entry;
void models_shim_set(struct models_entry *models, int n);

/*
 * The two models fuzz_grpc and fuzz_http check requests against: Triton's
 * "simple" (fixed INT32 dims, batching) and a BYTES identity with
 * variable dims.  An initialiser of const char *const [2].
 */
#define FUZZ_KSERVE_CONFIGS {							\
	"name: \"simple\"\nbackend: \"add_sub\"\nmax_batch_size: 8\n"		\
	"input [ { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },"	\
	"        { name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"	\
	"output [ { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },"	\
	"         { name: \"OUTPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n",	\
	"name: \"ident\"\nbackend: \"identity\"\nmax_batch_size: 0\n"		\
	"input [ { name: \"IN\" data_type: TYPE_STRING dims: [ -1, -1 ] } ]\n"	\
	"output [ { name: \"OUT\" data_type: TYPE_STRING dims: [ -1, -1 ] } ]\n",	\
}

/* [p, p + n) inside [base, base + len)? */
static inline int fuzz_within(const void *p, uint64_t n, const void *base, size_t len)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;

	return a >= b && a - b <= len && n <= len - (a - b);
}

/* An invariant of the code under test failed: a finding, not a skip. */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n",	\
			__FILE__, __LINE__, #cond);			\
		abort();						\
	}								\
} while (0)

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#define FUZZ_ENTRY(fn)							\
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)	\
	{								\
		return fn(data, size);					\
	}
#else
#define FUZZ_ENTRY(fn)
#endif

#endif
