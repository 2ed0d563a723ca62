/* SPDX-License-Identifier: MIT */
/*
 * client_autostart.c - the fallback server: with no broker on the node and
 * $FERRY_AUTOSTART naming a model repository, libferry starts a private
 * ferryd for this user and connects to it, as SONIC's clients start a
 * local server when none is reachable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "libclient/client_int.h"

#ifndef FERRY_SBINDIR
#define FERRY_SBINDIR "/usr/local/sbin"
#endif

static bool client__alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void client__sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int client__mkdirs(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(dir, 0700);
		*p = '/';
	}
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* The broker's binary: $FERRY_FERRYD, else the installed one, else PATH. */
static const char *client__ferryd(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("FERRY_FERRYD");
	if (env && *env)
		return env;
	snprintf(path, sizeof(path), "%s/ferryd", FERRY_SBINDIR);
	return access(path, X_OK) == 0 ? path : "ferryd";
}

int client__autostart(const char *path, const char *repo)
{
	char lockpath[PATH_MAX], logpath[PATH_MAX], idle[32];
	const char *idle_env = getenv("FERRY_AUTOSTART_IDLE");
	int ret;

	if ((ret = client__mkdirs(path)))
		return client__fail(ret, "autostart: cannot create the directory of %s: %s", path,
				    strerror(-ret));
	snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
	snprintf(logpath, sizeof(logpath), "%s.log", path);
	snprintf(idle, sizeof(idle), "%ld",
		 idle_env && *idle_env ? strtol(idle_env, NULL, 10) : 600L);
	int lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return client__fail(-errno, "autostart: %s: %s", lockpath, strerror(errno));
	/* One starter at a time; the others wait here, then find it up. */
	int waited = 0;
	while (flock(lfd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK || waited >= 60000) {
			close(lfd);
			return client__fail(FERRY_ETIMEDOUT, "autostart: %s stays locked", lockpath);
		}
		client__sleep_ms(20);
		waited += 20;
	}
	if (client__alive(path)) {
		close(lfd); /* releases the lock */
		return 0;
	}
	const char *ferryd = client__ferryd();
	pid_t pid = fork();
	if (pid < 0) {
		close(lfd);
		return client__fail(-errno, "autostart: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* Detach twice: the broker outlives this job and is nobody's
		 * zombie. */
		setsid();
		if (fork() != 0)
			_exit(0);
		int nul = open("/dev/null", O_RDONLY);
		int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (nul >= 0)
			dup2(nul, 0);
		if (log >= 0) {
			dup2(log, 1);
			dup2(log, 2);
		}
		/* Everything else the job had open stays with the job. */
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		signal(SIGPIPE, SIG_DFL);
		execlp(ferryd, ferryd, "--model-repository", repo, "--socket", path,
		       "--idle-exit", idle, "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0",
		       "--exit-on-error=false", (char *)NULL);
		fprintf(stderr, "libferry autostart: cannot run %s: %s\n", ferryd, strerror(errno));
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	/* The broker loads every model before it listens. */
	for (int ms = 0; ms < 30000; ms += 20) {
		if (client__alive(path)) {
			close(lfd);
			return 0;
		}
		client__sleep_ms(20);
	}
	close(lfd);
	return client__fail(FERRY_ECONNREFUSED,
			    "autostart: %s did not come up on %s within 30 s (see %s)", ferryd, path,
			    logpath);
}
