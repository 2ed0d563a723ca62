/* Built against the installed libferry with pkg-config (by
 * test_install.sh): one add_sub request to the installed ferryd. */
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

int main(int argc, char **argv)
{
	ferry_client *c;
	ferry_model *m;
	ferry_request *r;
	int32_t *a, *b;
	const int32_t *o;
	int64_t dims[2] = { 1, 16 };

	/* The installed library and the installed headers agree. */
	if (strcmp(ferry_version(), FERRY_VERSION_STRING) != 0) {
		fprintf(stderr, "libferry %s, headers %s\n", ferry_version(), FERRY_VERSION_STRING);
		return 1;
	}
	if (ferry_connect(&c, argv[1], NULL) || ferry_model_get(c, "simple", FERRY_LATEST, &m) ||
	    ferry_request_new(m, &r) ||
	    ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a) ||
	    ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b)) {
		fprintf(stderr, "%s\n", ferry_last_error());
		return 1;
	}
	for (int i = 0; i < 16; i++) {
		a[i] = i;
		b[i] = 100;
	}
	if (ferry_infer(c, r, 5000000000LL) ||
	    ferry_request_output(r, "OUTPUT0", NULL, NULL, NULL, (const void **)&o, NULL)) {
		fprintf(stderr, "%s\n", ferry_last_error());
		return 1;
	}
	for (int i = 0; i < 16; i++)
		if (o[i] != i + 100)
			return 1;
	printf("PASS (C)\n");
	ferry_request_free(r);
	ferry_close(c);
	return 0;
}
