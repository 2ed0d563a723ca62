// The same from C++, against the installed headers and library.
#include <cstdio>
#include <vector>

#include <ferry/ferry.h>

int main(int argc, char **argv)
{
	ferry_client *c = nullptr;
	ferry_model *m = nullptr;
	ferry_request *r = nullptr;
	int32_t *a = nullptr, *b = nullptr;
	const void *o = nullptr;
	std::vector<int64_t> dims{1, 16};

	if (ferry_connect(&c, argv[1], nullptr) || ferry_model_get(c, "simple", FERRY_LATEST, &m) ||
	    ferry_request_new(m, &r) ||
	    ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims.data(), 2, reinterpret_cast<void **>(&a)) ||
	    ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims.data(), 2, reinterpret_cast<void **>(&b))) {
		std::fprintf(stderr, "%s\n", ferry_last_error());
		return 1;
	}
	for (int i = 0; i < 16; i++) {
		a[i] = i;
		b[i] = 1;
	}
	if (ferry_infer(c, r, 5000000000LL) ||
	    ferry_request_output(r, "OUTPUT1", nullptr, nullptr, nullptr, &o, nullptr)) {
		std::fprintf(stderr, "%s\n", ferry_last_error());
		return 1;
	}
	const int32_t *d = static_cast<const int32_t *>(o);
	for (int i = 0; i < 16; i++)
		if (d[i] != i - 1)
			return 1;
	std::printf("PASS (C++)\n");
	ferry_request_free(r);
	ferry_close(c);
	return 0;
}
