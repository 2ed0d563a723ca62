/* SPDX-License-Identifier: MIT */
/*
 * test_gpu.c - broker/gpu without a GPU: what a CPU-only node answers and
 * maps, where modules are found, the IPC handle cache (driven through a
 * table of the module's shape, gpu__use), the PCI sysfs NUMA lookup and
 * thread pinning.  Each Criterion test runs in a process of its own, so
 * each starts before gpu_init().
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <numa.h>

#include <criterion/criterion.h>

#include <ferry/errors.h>

#include "broker/gpu/gpu.h"
#include "broker/gpu/gpu_int.h"

TestSuite(gpu, .timeout = 30);

/* Lines of /proc/self/maps naming a CUDA library. */
static int cuda_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[1024];
	int n = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "libcuda") || strstr(line, "libcublas") ||
		    strstr(line, "gpu_cuda.so"))
			n++;
	fclose(f);
	return n;
}

static bool have_device_node(void)
{
	return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;
}

Test(gpu, before_init_every_call_answers_no_gpu)
{
	char buf[64], err[256] = "", handle[GPU_IPC_HANDLE_BYTES] = { 0 };
	size_t used = 1, total = 1;
	void *p = NULL;

	cr_assert_eq(gpu_device_count(), 0);
	cr_assert_eq(gpu_memory(0, &used, &total), FERRY_UNAVAILABLE);
	cr_assert_eq(used + total, 0);
	cr_assert_eq(gpu_pci_bus_id(0, buf, sizeof(buf)), FERRY_UNAVAILABLE);
	cr_assert_eq(gpu_numa_node(0), FERRY_UNAVAILABLE);
	cr_assert_eq(gpu_host_register(buf, sizeof(buf)), FERRY_UNAVAILABLE);
	cr_assert_eq(gpu_host_register(NULL, 1), FERRY_EINVAL);
	cr_assert_eq(gpu_host_unregister(buf), FERRY_UNAVAILABLE);
	cr_assert_eq(gpu_ipc_open(handle, sizeof(handle), NULL, 0, 64, &p, NULL, err,
				  sizeof(err)), FERRY_UNAVAILABLE);
	cr_assert(strstr(err, "no CUDA device"), "%s", err);
	cr_assert_eq(gpu_memcpy(buf, buf + 8, 8, err, sizeof(err)), FERRY_UNAVAILABLE);
	gpu_ipc_close(NULL);
	gpu_ipc_close(buf);	/* never opened: ignored */
}

Test(gpu, off_loads_nothing)
{
	char why[256];

	cr_assert_eq(gpu_init(false, why, sizeof(why)), 0);
	cr_assert(strstr(why, "off"), "%s", why);
	cr_assert_eq(cuda_mappings(), 0);
	/* idempotent: the first answer stands */
	cr_assert_eq(gpu_init(true, why, sizeof(why)), 0);
	cr_assert(strstr(why, "off"), "%s", why);
}

Test(gpu, no_device_node_maps_no_cuda)
{
	char why[256];

	if (have_device_node())
		cr_skip_test("this machine has an NVIDIA device node");
	cr_assert_eq(gpu_init(true, why, sizeof(why)), 0);
	cr_assert(strstr(why, "no NVIDIA device node"), "%s", why);
	cr_assert_eq(cuda_mappings(), 0, "a CPU-only node mapped CUDA");
	gpu_fini();
}

Test(gpu, module_path_searches_the_list_in_order)
{
	char a[] = "/tmp/ferry-mod-a-XXXXXX", b[] = "/tmp/ferry-mod-b-XXXXXX";
	char dirs[128], path[512], want[512];
	FILE *f;

	cr_assert_not_null(mkdtemp(a));
	cr_assert_not_null(mkdtemp(b));
	snprintf(want, sizeof(want), "%s/x.so", b);
	f = fopen(want, "w");
	cr_assert_not_null(f);
	fclose(f);
	snprintf(dirs, sizeof(dirs), "%s::%s", a, b);
	setenv("FERRY_MODULE_DIR", dirs, 1);
	cr_assert_eq(gpu_module_path("x.so", path, sizeof(path)), 0);
	cr_assert_str_eq(path, want);
	/* a name the list does not hold: the directories searched, both */
	cr_assert_eq(gpu_module_path("y.so", path, sizeof(path)), FERRY_ENOENT);
	cr_assert(strstr(path, a) && strstr(path, b), "%s", path);
	cr_assert_eq(gpu_module_path("../x.so", path, sizeof(path)), FERRY_EINVAL);
	cr_assert_eq(gpu_module_path("", path, sizeof(path)), FERRY_EINVAL);
	/* $FERRY_MODULE_DIR hides the other places */
	setenv("FERRY_MODULE_DIR", a, 1);
	cr_assert_eq(gpu_module_path("x.so", path, sizeof(path)), FERRY_ENOENT);
	unlink(want);
	rmdir(a);
	rmdir(b);
}

/* Without $FERRY_MODULE_DIR, a build with CUDA finds its own module
 * (installed, or else in this build tree). */
Test(gpu, module_path_finds_the_build_tree_module)
{
	const char *top = getenv("FERRY_TOP_BUILDDIR");
	char path[1024], built[1024];

	unsetenv("FERRY_MODULE_DIR");
#ifndef HAVE_CUDA
	cr_skip_test("built without CUDA: no gpu_cuda.so");
#endif
	cr_assert_not_null(top, "FERRY_TOP_BUILDDIR is not set (run through make check)");
	if (strcmp(top, TEST_GPU_BUILDDIR))
		cr_skip_test("a copy of the build tree (configured in %s): its compiled-in "
			     "module directory is elsewhere", TEST_GPU_BUILDDIR);
	snprintf(built, sizeof(built), "%s/broker/gpu/.libs/gpu_cuda.so", top);
	cr_assert_eq(access(built, R_OK), 0, "%s was not built", built);
	cr_assert_eq(gpu_module_path("gpu_cuda.so", path, sizeof(path)), 0, "%s", path);
	cr_assert(strstr(path, "/gpu_cuda.so"), "%s", path);
}

/* ---------------------------------------------------------------------- */
/* the policy of gpu.c over a table of the module's shape */

static struct {
	int opens, closes, registers;
	char last_handle;
} fake;

static int fake_count(char *err, size_t errlen)
{
	return 2;
}

static int fake_memory(int device, size_t *used, size_t *total)
{
	*used = 1000 + (size_t)device;
	*total = 5000;
	return 0;
}

static int fake_pci(int device, char *buf, size_t len)
{
	snprintf(buf, len, "0000:%02X:00.0", device ? 0x3B : 0x05);
	return 0;
}

static int fake_by_pci(const char *busid, int *device)
{
	if (!strcmp(busid, "0000:3b:00.0")) {
		*device = 1;
		return 0;
	}
	return FERRY_ENOENT;
}

static int fake_register(void *base, size_t bytes)
{
	fake.registers++;
	return 0;
}

static int fake_unregister(void *base)
{
	fake.registers--;
	return 0;
}

/* Every handle maps 1024 bytes; the mapping's first byte records the
 * handle's, so a test can tell mappings apart. */
static int fake_ipc_open(const void *handle, int device, void **dptr, uint64_t *bytes,
			 char *err, size_t errlen)
{
	char *p = malloc(1024);

	if (!p)
		return FERRY_ENOMEM;
	p[0] = *(const char *)handle;
	fake.opens++;
	*dptr = p;
	*bytes = 1024;
	return 0;
}

static int fake_ipc_close(void *dptr, int device)
{
	fake.closes++;
	free(dptr);
	return 0;
}

static int fake_memcpy(void *dst, const void *src, size_t bytes, char *err, size_t errlen)
{
	memcpy(dst, src, bytes);
	return 0;
}

static const struct gpu__ops fake_ops = {
	.size = sizeof(struct gpu__ops),
	.device_count = fake_count,
	.memory = fake_memory,
	.pci_bus_id = fake_pci,
	.device_by_pci = fake_by_pci,
	.host_register = fake_register,
	.host_unregister = fake_unregister,
	.ipc_open = fake_ipc_open,
	.ipc_close = fake_ipc_close,
	.memcpy = fake_memcpy,
};

static void use_fake(void)
{
	char why[128];

	cr_assert_eq(gpu__use(&fake_ops, why, sizeof(why)), 2, "%s", why);
	cr_assert_eq(gpu_device_count(), 2);
}

Test(gpu, ipc_handles_are_shared_and_reference_counted)
{
	char a[GPU_IPC_HANDLE_BYTES] = { 'a' }, b[GPU_IPC_HANDLE_BYTES] = { 'b' };
	char err[256] = "";
	void *pa1, *pa2, *pb;
	int dev = -1;

	use_fake();
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 512, &pa1, &dev, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(dev, 0);
	/* a second user of the same allocation shares the mapping */
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 1024, &pa2, NULL, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(pa1, pa2);
	cr_assert_eq(fake.opens, 1);
	cr_assert_eq(gpu_ipc_open(b, sizeof(b), NULL, 0, 16, &pb, NULL, err, sizeof(err)), 0);
	cr_assert_neq(pa1, pb);
	cr_assert_eq(*(char *)pb, 'b');
	cr_assert_eq(fake.opens, 2);
	/* the last close unmaps, not the first */
	gpu_ipc_close(pa1);
	cr_assert_eq(fake.closes, 0);
	gpu_ipc_close(pa2);
	cr_assert_eq(fake.closes, 1);
	/* and a later open maps afresh */
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 8, &pa1, NULL, err, sizeof(err)), 0);
	cr_assert_eq(fake.opens, 3);
	gpu_ipc_close(pa1);
	gpu_ipc_close(pb);
	cr_assert_eq(fake.closes, 3);
}

Test(gpu, ipc_declared_size_is_checked_against_the_allocation)
{
	char a[GPU_IPC_HANDLE_BYTES] = { 'a' }, err[256] = "";
	void *p = NULL, *q = NULL;

	use_fake();
	/* a new handle too small for its claim: refused and unmapped */
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 4096, &p, NULL, err, sizeof(err)),
		     FERRY_EINVAL);
	cr_assert(strstr(err, "1024 bytes, 4096 were declared"), "%s", err);
	cr_assert_eq(fake.opens, 1);
	cr_assert_eq(fake.closes, 1);
	/* an open one too: refused, the first user keeps its mapping */
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 100, &p, NULL, err, sizeof(err)), 0);
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 2000, &q, NULL, err, sizeof(err)),
		     FERRY_EINVAL);
	cr_assert_eq(fake.closes, 1);
	gpu_ipc_close(p);
	cr_assert_eq(fake.closes, 2);
	/* bad arguments never reach the module */
	cr_assert_eq(gpu_ipc_open(a, sizeof(a) - 1, NULL, 0, 8, &p, NULL, err, sizeof(err)),
		     FERRY_EINVAL);
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 0, &p, NULL, err, sizeof(err)),
		     FERRY_EINVAL);
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 2, 8, &p, NULL, err, sizeof(err)),
		     FERRY_ENOENT);
	cr_assert_eq(fake.opens, 2);
}

Test(gpu, ipc_device_by_pci_bus_id)
{
	char a[GPU_IPC_HANDLE_BYTES] = { 'a' }, err[256] = "";
	void *p = NULL;
	int dev = -1;

	use_fake();
	/* the bus id wins over the ordinal (CUDA_VISIBLE_DEVICES differs) */
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), "0000:3b:00.0", 0, 8, &p, &dev, err,
				  sizeof(err)), 0, "%s", err);
	cr_assert_eq(dev, 1);
	gpu_ipc_close(p);
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), "0000:99:00.0", 0, 8, &p, &dev, err,
				  sizeof(err)), FERRY_ENOENT);
	cr_assert(strstr(err, "0000:99:00.0"), "%s", err);
}

Test(gpu, devices_memory_registration_and_copies_pass_through)
{
	char buf[64], src[8] = "abcdefg", dst[8] = "", err[64];
	size_t used, total;

	use_fake();
	cr_assert_eq(gpu_memory(1, &used, &total), 0);
	cr_assert_eq(used, 1001);
	cr_assert_eq(total, 5000);
	cr_assert_eq(gpu_memory(2, &used, &total), FERRY_UNAVAILABLE);
	/* sysfs spells bus ids in lower case */
	cr_assert_eq(gpu_pci_bus_id(1, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "0000:3b:00.0");
	cr_assert_eq(gpu_pci_bus_id(1, buf, 8), FERRY_EINVAL);
	cr_assert_eq(gpu_host_register(buf, sizeof(buf)), 0);
	cr_assert_eq(fake.registers, 1);
	cr_assert_eq(gpu_host_unregister(buf), 0);
	cr_assert_eq(fake.registers, 0);
	cr_assert_eq(gpu_memcpy(dst, src, sizeof(src), err, sizeof(err)), 0);
	cr_assert_str_eq(dst, "abcdefg");
}

Test(gpu, fini_closes_what_is_left_open)
{
	char a[GPU_IPC_HANDLE_BYTES] = { 'a' }, err[64];
	void *p;

	use_fake();
	cr_assert_eq(gpu_ipc_open(a, sizeof(a), NULL, 0, 8, &p, NULL, err, sizeof(err)), 0);
	gpu_fini();
	cr_assert_eq(fake.closes, 1);
	cr_assert_eq(gpu_device_count(), 0);
}

Test(gpu, an_older_module_is_refused)
{
	struct gpu__ops old = fake_ops;
	char why[256];

	old.size = sizeof(old) - sizeof(void *);
	cr_assert_eq(gpu__use(&old, why, sizeof(why)), 0);
	cr_assert(strstr(why, "older"), "%s", why);
	cr_assert_eq(gpu_device_count(), 0);
}

/* ---------------------------------------------------------------------- */
/* NUMA, with no GPU needed */

Test(gpu, pci_numa_node_on_a_fake_sysfs_tree)
{
	char root[] = "/tmp/ferry-sysfs-XXXXXX", cmd[512];

	cr_assert_not_null(mkdtemp(root));
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/bus/pci/devices/0000:3b:00.0 %s/bus/pci/devices/0000:05:00.0 && "
		 "echo 1 > %s/bus/pci/devices/0000:3b:00.0/numa_node && "
		 "echo -1 > %s/bus/pci/devices/0000:05:00.0/numa_node", root, root, root, root);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(gpu_pci_numa_node(root, "0000:3B:00.0"), 1, "upper-case bus id");
	cr_assert_eq(gpu_pci_numa_node(root, "0000:05:00.0"), FERRY_ENOENT,
		     "numa_node -1 reads as FERRY_ENOENT");
	cr_assert_eq(gpu_pci_numa_node(root, "0000:99:00.0"), FERRY_ENOENT, "no device");
	cr_assert_eq(gpu_pci_numa_node(root, "../../etc"), FERRY_EINVAL, "a '/' in the id");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
}

/* In a thread of its own: after gpu_pin_to_node(0) it may run on node 0's
 * CPUs only. */
static void *pin_thread(void *arg)
{
	struct bitmask *want = numa_allocate_cpumask(), *got = numa_allocate_cpumask();
	int *rc = arg;

	*rc = gpu_pin_to_node(0);
	if (*rc == 0 && (numa_node_to_cpus(0, want) || numa_sched_getaffinity(0, got) < 0 ||
			 !numa_bitmask_equal(want, got)))
		*rc = FERRY_EPROTO;
	numa_free_cpumask(want);
	numa_free_cpumask(got);
	return NULL;
}

Test(gpu, pin_to_node_binds_the_calling_thread)
{
	pthread_t t;
	int rc = 0;

	cr_assert_eq(gpu_pin_to_node(-1), FERRY_ENOENT);
	cr_assert_eq(gpu_pin_to_node(1 << 20), FERRY_ENOENT);
	cr_assert_eq(pthread_create(&t, NULL, pin_thread, &rc), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	if (numa_available() < 0)
		cr_skip_test("libnuma reports no NUMA support (%s)", ferry_errname(rc));
	cr_assert_eq(rc, 0, "pinned to node 0: %s", ferry_errname(rc));
}

Test(gpu, numa_setting)
{
	cr_assert(gpu_numa_enabled());
	gpu_set_numa(false);
	cr_assert(!gpu_numa_enabled());
}
