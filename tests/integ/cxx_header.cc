// The public headers compile as C++ (and link against libferry from C++).
#include <ferry/ferry.h>

#include <cstdio>

int main()
{
	ferry_client *c = nullptr;
	// No broker at this path: the call must fail cleanly, from C++.
	int ret = ferry_connect(&c, "/nonexistent/ferry.sock", nullptr);
	if (ret != FERRY_ECONNREFUSED) {
		std::printf("expected FERRY_ECONNREFUSED, got %d\n", ret);
		return 1;
	}
	std::printf("PASS: %s (%s)\n", ferry_strerror(ret), ferry_last_error());
	return ferry_dtype_size(FERRY_TYPE_FP32) == 4 ? 0 : 1;
}
