/* SPDX-License-Identifier: MIT */
/*
 * simple_client - what Triton's "simple" client example does, through
 * ferry: send two vectors of 16 INT32 to the "simple" model (add_sub),
 * print the sum and difference, check them.  Then time a thousand more
 * requests and print their latency.
 *
 *   simple_client [SOCKET]      (default: $FERRY_SOCKET or the node's broker)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ferry/ferry.h>

static int fail(const char *what, int err)
{
	fprintf(stderr, "simple_client: %s: %s (%s)\n", what, ferry_last_error(),
		ferry_errname(err));
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
	return x < y ? -1 : x > y;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	ferry_client *c;
	ferry_model *m;
	ferry_request *r;
	int32_t *in0, *in1;
	const int32_t *out0, *out1;
	int64_t dims[2] = { 1, 16 };
	int ret;

	if ((ret = ferry_connect(&c, argc > 1 ? argv[1] : NULL, NULL)))
		return fail("connect", ret);
	if ((ret = ferry_model_get(c, "simple", FERRY_LATEST, &m)))
		return fail("model 'simple'", ret);
	if ((ret = ferry_request_new(m, &r)))
		return fail("request", ret);
	/* The inputs live in the shared arena: fill them in place. */
	if ((ret = ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&in0)) ||
	    (ret = ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&in1)))
		return fail("inputs", ret);
	for (int i = 0; i < 16; i++) {
		in0[i] = i;
		in1[i] = 1;
	}
	if ((ret = ferry_infer(c, r, 5000000000LL)))
		return fail("infer", ret);
	/* The outputs are read in place too. */
	if ((ret = ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&out0, NULL)) ||
	    (ret = ferry_request_output(r, "OUTPUT1", NULL, NULL, NULL, (const void **)&out1, NULL)))
		return fail("outputs", ret);
	for (int i = 0; i < 16; i++) {
		printf("%d + %d = %d\n", in0[i], in1[i], out0[i]);
		printf("%d - %d = %d\n", in0[i], in1[i], out1[i]);
		if (out0[i] != in0[i] + in1[i] || out1[i] != in0[i] - in1[i]) {
			fprintf(stderr, "simple_client: error: incorrect result\n");
			return 1;
		}
	}

	enum { N = 1000 };
	static unsigned long long lat[N];
	for (int k = 0; k < N; k++) {
		unsigned long long t0 = now_ns();
		ferry_request_reset(r);
		if ((ret = ferry_infer(c, r, 5000000000LL)))
			return fail("infer", ret);
		lat[k] = now_ns() - t0;
	}
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	printf("PASS: simple; %d more requests: p50 %.1f us, p99 %.1f us\n", N,
	       (double)lat[N / 2] / 1e3, (double)lat[N * 99 / 100] / 1e3);
	ferry_request_free(r);
	ferry_close(c);
	return 0;
}
