/* SPDX-License-Identifier: MIT */
/*
 * test_regressions - replay every fuzz input that is committed through the
 * same entry points libFuzzer drives (tests/fuzz/fuzz_*.c), in the plain
 * gcc build: the seed corpora (tests/fuzz/corpus/<target>/) and every input
 * that once crashed a target (tests/fuzz/regressions/<target>/, each file
 * named after its bug; see FUZZING.md).  A target aborts on a broken
 * invariant, and Criterion runs each test in its own process, so a
 * regression is a failed test, not a dead suite.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fuzz/fuzz.h"

static const char *srcdir(void)
{
	/* make check exports it; the build's own path for a run by hand. */
	const char *d = getenv("FERRY_TOP_SRCDIR");
	return d && *d ? d : FUZZ_TOP_SRCDIR;
}

/* Read a whole (small) file; NULL with errno on failure. */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *nb = realloc(buf, cap);
			cr_assert(nb);
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Run fn over every file of <srcdir>/tests/fuzz/<kind>/<target>/; the
 * number of files run.  A missing directory counts 0 files. */
static int replay(const char *kind, const char *target,
		  int (*fn)(const uint8_t *, size_t))
{
	char dir[4096], path[4096 + 256];
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s/%s", srcdir(), kind, target);
	DIR *d = opendir(dir);
	if (!d) {
		cr_assert(errno == ENOENT, "%s: %s", dir, strerror(errno));
		return 0;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		size_t len;
		uint8_t *buf = slurp(path, &len);
		cr_assert(buf, "%s: %s", path, strerror(errno));
		/* Which file broke is on stderr if the target aborts. */
		fprintf(stderr, "%s\n", path);
		cr_assert_eq(fn(buf, len), 0, "%s", path);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

#define FUZZ_REPLAY_TESTS(target)					\
	Test(fuzz_corpus, target, .timeout = 120)			\
	{								\
		cr_assert_gt(replay("corpus", #target, fuzz_##target), 0, \
			     "no seed corpus for " #target);		\
	}								\
	Test(fuzz_regressions, target, .timeout = 120)			\
	{								\
		replay("regressions", #target, fuzz_##target);		\
	}

FUZZ_REPLAY_TESTS(pbtxt)
FUZZ_REPLAY_TESTS(onnx)
FUZZ_REPLAY_TESTS(ctl)
FUZZ_REPLAY_TESTS(submit)
FUZZ_REPLAY_TESTS(grpc)
FUZZ_REPLAY_TESTS(http)
