/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/integ/harness.h"

static void th__write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

void th_init(struct th_broker *b)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "/tmp/ferry-test-XXXXXX");
	cr_assert_not_null(mkdtemp(b->dir));
	snprintf(b->sock, sizeof(b->sock), "%s/ferryd.sock", b->dir);
	snprintf(b->repo, sizeof(b->repo), "%s/models", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/ferryd.log", b->dir);
	cr_assert_eq(mkdir(b->repo, 0755), 0);
}

void th_model(struct th_broker *b, const char *name, const char *config)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", b->repo, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/1", b->repo, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/config.pbtxt", b->repo, name);
	th__write(path, config);
}

void th_examples(struct th_broker *b)
{
	const char *top = getenv("FERRY_TOP_SRCDIR");
	char cmd[1024];
	cr_assert_not_null(top, "FERRY_TOP_SRCDIR is not set (run through make check)");
	snprintf(cmd, sizeof(cmd), "cp -r %s/examples/models/simple %s/examples/models/identity %s/",
		 top, top, b->repo);
	cr_assert_eq(system(cmd), 0);
}

static bool th__connectable(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

void th_start(struct th_broker *b, ...)
{
	const char *builddir = getenv("FERRY_TOP_BUILDDIR");
	char ferryd[512];
	const char *argv[64];
	int argc = 0;
	va_list ap;

	cr_assert_not_null(builddir, "FERRY_TOP_BUILDDIR is not set (run through make check)");
	snprintf(ferryd, sizeof(ferryd), "%s/broker/ferryd", builddir);
	argv[argc++] = ferryd;
	argv[argc++] = "--model-repository";
	argv[argc++] = b->repo;
	argv[argc++] = "--socket";
	argv[argc++] = b->sock;
	va_start(ap, b);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 62;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Die with the test worker, even when an assertion ends it
		 * before th_stop(). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(ferryd, (char *const *)argv);
		_exit(127);
	}
	b->pid = pid;
	for (int i = 0; i < 1000; i++) {
		if (th__connectable(b->sock))
			return;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			b->pid = 0;
			char cmd[600];
			snprintf(cmd, sizeof(cmd), "cat %s >&2", b->log);
			(void)!system(cmd);
			cr_assert_fail("ferryd exited during start-up (status 0x%x)", st);
		}
		usleep(10000);
	}
	cr_assert_fail("ferryd did not start listening in 10 s");
}

int th_stop(struct th_broker *b)
{
	int st = 0;
	if (b->pid <= 0)
		return 0;
	kill(b->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			b->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
		}
		usleep(10000);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
	return -SIGKILL;
}

void th_cleanup(struct th_broker *b)
{
	if (b->pid > 0)
		th_stop(b);
	if (b->dir[0]) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", b->dir);
		(void)!system(cmd);
	}
}

int th_fd_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

long th_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int th_maps_count(pid_t pid, const char *what)
{
	char path[64], line[512];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!what || strstr(line, what))
			n++;
	fclose(f);
	return n;
}

bool th_alive(pid_t pid)
{
	return pid > 0 && kill(pid, 0) == 0;
}

void *th_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;
	char *buf;

	cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

int th_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

int th_simple_once(ferry_client *c, ferry_model *m, int32_t seed)
{
	ferry_request *r;
	int32_t *a, *b;
	int64_t dims[2] = { 1, 16 };
	cr_assert_eq(ferry_request_new(m, &r), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT0", FERRY_TYPE_INT32, dims, 2, (void **)&a), 0);
	cr_assert_eq(ferry_request_input(r, "INPUT1", FERRY_TYPE_INT32, dims, 2, (void **)&b), 0);
	for (int i = 0; i < 16; i++) {
		a[i] = seed + i;
		b[i] = 2 * i - seed;
	}
	int ret = ferry_infer(c, r, 10000000000LL);
	if (ret == 0) {
		const int32_t *o0, *o1;
		size_t bytes;
		const int64_t *od;
		int ond;
		ferry_dtype dt;
		cr_assert_eq(ferry_request_output(r, "OUTPUT0", &dt, &od, &ond, (const void **)&o0,
						  &bytes), 0, "%s", ferry_last_error());
		cr_assert_eq(bytes, 64);
		cr_assert_eq(dt, FERRY_TYPE_INT32);
		cr_assert_eq(ond, 2);
		cr_assert_eq(od[0], 1);
		cr_assert_eq(od[1], 16);
		cr_assert_eq(ferry_request_output(r, "OUTPUT1", NULL, NULL, NULL, (const void **)&o1,
						  NULL), 0);
		for (int i = 0; i < 16; i++) {
			cr_assert_eq(o0[i], (seed + i) + (2 * i - seed));
			cr_assert_eq(o1[i], (seed + i) - (2 * i - seed));
		}
	}
	ferry_request_free(r);
	return ret;
}
