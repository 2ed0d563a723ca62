/* SPDX-License-Identifier: MIT */
/*
 * ferryd - the node-local inference broker.
 *
 * One thread (this one) runs the event loop and polls every session's
 * submission ring; light models (identity, add_sub) run right here, so a
 * request costs no thread hand-off; other models run on their instances'
 * threads.  The loop thread's wait policy decides what it does when there
 * is no work: spin (lowest latency, burns a core), hybrid (spin for
 * --spin-us, then sleep on the doorbells) or block.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <numa.h>

#include <ferry/errors.h>
#include <ferry/version.h>

#include "config.h"
#include "broker/core/broker.h"
#include "broker/frontends/grpc/gs_server.h"
#include "broker/frontends/http/hs_server.h"
#include "broker/core/log.h"
#include "broker/core/poller.h"
#include "broker/core/session.h"
#include "broker/frontends/metrics.h"
#include "broker/gpu/gpu.h"
#include "broker/models/rescan.h"
#include "broker/core/systemd.h"
#include "broker/models/models.h"
#include "broker/sched/sched.h"
#include "proto/frame.h"

struct broker g_broker;

static char ferryd__socket_buf[PATH_MAX];

/* Prometheus / health endpoint; explicit: --metrics-port was given, so a
 * port in use is fatal rather than a warning. */
static int ferryd__metrics_port = 8002;
static const char *ferryd__metrics_address = "127.0.0.1";
static bool ferryd__metrics_explicit;
/* gRPC front end options; grpc_explicit: --grpc-port was given, so a port
 * that cannot be bound is fatal (the default one only warns). */
static const char *ferryd__grpc_args[GS_MAX_ARGS];   /* --grpc-arg */
static struct gs_options ferryd__grpc = {
	.address = "127.0.0.1", .port = 8001, .threads = 4,
	.max_message_bytes = 1LL << 30, .max_connections = GS_MAX_CONNECTIONS,
	.max_cancels_per_s = GS_MAX_CANCELS,
};
static bool ferryd__grpc_explicit;
/* HTTP/REST front end options (TLS: the gRPC certificate options); the
 * same rule for an explicit port. */
static struct hs_options ferryd__http = {
	.address = "127.0.0.1", .port = 8000, .threads = 2, .max_body_bytes = 1ULL << 30,
	.max_connections_per_ip = HS_MAX_CONNECTIONS_PER_IP,
};
static bool ferryd__http_explicit;
/* --strict-model-config=false in its old meaning; said once started. */
static bool ferryd__old_strict_false;

/* More pollers than this would be more threads than any node has cores. */
#define FERRYD__MAX_POLLERS 4096

static void ferryd__usage(FILE *f)
{
	fprintf(f,
"Usage: ferryd [OPTIONS]\n"
"The node-local inference broker: serves the models of a Triton-style model\n"
"repository to local jobs over shared memory.\n"
"\n"
"  -m, --model-repository DIR   models to serve (env FERRY_MODEL_REPOSITORY)\n"
"  -s, --socket PATH            control socket (env FERRY_SOCKET; default\n"
"                               /run/ferry/ferryd.sock for root, else\n"
"                               $XDG_RUNTIME_DIR/ferry/ferryd.sock)\n"
"      --backend-directory DIRS backend plugins, colon-separated (env\n"
"                               FERRY_BACKEND_DIR; default " FERRY_BACKEND_DIRS ")\n"
"      --backend-config=NAME,KEY=VALUE  a setting for backend NAME (repeatable;\n"
"                               KEY=VALUE alone: for every backend), e.g.\n"
"                               onnxruntime,library=PATH of libonnxruntime.so\n"
"      --wait spin|hybrid|block what the polling threads do when idle\n"
"                               (env FERRY_WAIT; default hybrid)\n"
"      --pollers N              threads serving the session rings, one pinned\n"
"                               per CPU (env FERRY_POLLERS; default 0: one per\n"
"                               CPU ferryd may use)\n"
"      --spin-us N              hybrid: spin N microseconds before sleeping (50)\n"
"      --numa auto|off|N        NUMA node for session arenas (default auto)\n"
"      --gpu auto|on|off        load CUDA where an NVIDIA device exists (auto),\n"
"                               require a GPU (on) or never load it (off)\n"
"                               (env FERRY_GPU)\n"
"      --log-level LEVEL        error, warn, info, debug, trace (env FERRY_LOG_LEVEL)\n"
"      --allow-uid LIST         uids allowed to connect (comma-separated names\n"
"                               or numbers; repeatable); with no allow-list the\n"
"                               socket's mode (0660) is the only gate\n"
"      --allow-gid LIST         gids allowed to connect\n"
"      --max-sessions N         sessions at once (1024)\n"
"      --max-sessions-per-uid N sessions one user may hold (0: no limit)\n"
"      --socket-group GROUP     group of the control socket (mode 0660)\n"
"      --max-arena-bytes N      largest arena a session may ask for (1 GiB)\n"
"      --arena-bytes N          arena of a session that asks for none (64 MiB)\n"
"      --max-inflight N         requests in flight per session (4096)\n"
"      --exit-on-error=true|false  exit if a model fails to load (default\n"
"                               true); false serves the models that load\n"
"      --strict-model-config=true|false\n"
"                               true: every model needs a full config.pbtxt;\n"
"                               false (default): complete configs from the\n"
"                               model files, as Triton does\n"
"      --disable-auto-complete-config  the same as --strict-model-config=true\n"
"      --event-loop io_uring|epoll  (default io_uring, epoll if refused)\n"
"      --grpc-port N            KServe v2 gRPC port (8001; 0 turns gRPC off)\n"
"      --grpc-address ADDR      gRPC listen address (127.0.0.1: loopback only;\n"
"                               0.0.0.0 serves every interface)\n"
"      --grpc-threads N         gRPC completion-queue threads (4)\n"
"      --grpc-max-message-bytes N  largest gRPC message (1 GiB); larger ones\n"
"                               get RESOURCE_EXHAUSTED\n"
"      --http-port N            KServe v2 HTTP/REST port (8000; 0 turns HTTP off)\n"
"      --http-address ADDR      HTTP listen address (127.0.0.1: loopback only)\n"
"      --http-threads N         HTTP connection threads (2)\n"
"      --http-max-body-bytes N  largest HTTP request body (1 GiB); larger: 413\n"
"      --http-max-connections-per-ip N  HTTP connections one client address may\n"
"                               hold (256 of 1024; 0: no limit)\n"
"      --grpc-max-connections N  plaintext gRPC connections at once (1024); at\n"
"                               the limit a new one replaces the longest idle\n"
"      --grpc-max-connections-per-ip N  plaintext gRPC connections one client\n"
"                               address may hold (0: no limit)\n"
"      --grpc-max-cancels-per-s N  cancelled calls a second that cut a plaintext\n"
"                               gRPC connection (rapid reset) (1000)\n"
"      --allow-client-shm       let gRPC and HTTP clients register system shared\n"
"                               memory\n"
"      --grpc-arg NAME=VALUE    a gRPC core channel argument (repeatable), e.g.\n"
"                               grpc.max_concurrent_streams=100; replaces the\n"
"                               hardening defaults (SECURITY.md)\n"
"      --fair-share=true|false  share each model fairly between its clients\n"
"                               (sessions, gRPC and HTTP connections) (true);\n"
"                               false: one queue in arrival order\n"
"      --grpc-tls-cert PEM, --grpc-tls-key PEM\n"
"                               serve gRPC and HTTP over TLS with this\n"
"                               certificate chain\n"
"      --grpc-tls-ca PEM        and require client certificates signed by this\n"
"                               CA (mutual TLS)\n"
"      --idle-exit SECONDS      exit after SECONDS with no client session (the\n"
"                               private broker libferry starts; default 0: never)\n"
"      --metrics-port N         Prometheus metrics and HTTP health (/metrics,\n"
"                               /v2/health/live, /v2/health/ready) (8002; 0: off)\n"
"      --metrics-address ADDR   metrics listen address (127.0.0.1)\n"
"  -h, --help                   this text\n"
"  -V, --version                the version\n");
}

static int ferryd__parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	/* Accept K, M, G suffixes (powers of two); a value the suffix
	 * would carry past 64 bits is refused, not wrapped. */
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (v > (ULLONG_MAX >> shift))
		return -1;
	v <<= shift;
	if (*end && strcmp(end, "iB") && strcmp(end, "B"))
		return -1;
	*out = v;
	return 0;
}

/* A number option's value, from lo to hi inclusive (K, M, G suffixes as
 * ferryd__parse_u64 reads them); anything else is a usage error that
 * names the option and says what it takes (range). */
static int ferryd__number(const char *arg, uint64_t lo, uint64_t hi, const char *opt,
			  const char *range, uint64_t *v)
{
	if (ferryd__parse_u64(arg, v) == 0 && *v >= lo && *v <= hi)
		return 0;
	fprintf(stderr, "ferryd: %s: %s\n", opt, range);
	return -1;
}

/* true|1 or false|0; -1 with a message naming the option otherwise. */
static int ferryd__parse_bool(const char *opt, const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "1"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "0"))
		*out = false;
	else {
		fprintf(stderr, "ferryd: %s: true or false\n", opt);
		return -1;
	}
	return 0;
}

static int ferryd__parse_ids(const char *list, bool gid, struct broker_options *o)
{
	char *dup = strdup(list), *save = NULL;
	int ret = 0;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(tok, &end, 10);
		if (*end) {
			if (gid) {
				struct group *g = getgrnam(tok);
				if (!g) { fprintf(stderr, "ferryd: unknown group '%s'\n", tok); ret = -1; break; }
				v = g->gr_gid;
			} else {
				struct passwd *p = getpwnam(tok);
				if (!p) { fprintf(stderr, "ferryd: unknown user '%s'\n", tok); ret = -1; break; }
				v = p->pw_uid;
			}
		}
		int *n = gid ? &o->nallow_gid : &o->nallow_uid;
		if (*n >= BROKER_MAX_ALLOW) { fprintf(stderr, "ferryd: too many ids\n"); ret = -1; break; }
		if (gid)
			o->allow_gid[(*n)++] = (gid_t)v;
		else
			o->allow_uid[(*n)++] = (uid_t)v;
	}
	free(dup);
	return ret;
}

static int ferryd__parse_gpu(const char *s, int *gpu)
{
	if (!strcmp(s, "auto"))
		*gpu = 0;
	else if (!strcmp(s, "on"))
		*gpu = 1;
	else if (!strcmp(s, "off"))
		*gpu = -1;
	else
		return -1;
	return 0;
}

enum {
	OPT_BACKEND_DIR = 256, OPT_WAIT, OPT_SPIN_US, OPT_POLLERS, OPT_NUMA, OPT_GPU, OPT_LOG_LEVEL,
	OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_MAX_SESSIONS, OPT_MAX_ARENA, OPT_ARENA,
	OPT_MAX_INFLIGHT, OPT_STRICT, OPT_EVENT_LOOP,
	OPT_GRPC_PORT, OPT_GRPC_ADDRESS, OPT_GRPC_THREADS, OPT_GRPC_MAX_MSG, OPT_ALLOW_CLIENT_SHM,
	OPT_METRICS_PORT, OPT_METRICS_ADDRESS, OPT_IDLE_EXIT, OPT_MAX_PER_UID, OPT_SOCKET_GROUP, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA,
	OPT_EXIT_ON_ERROR, OPT_NO_AUTOCOMPLETE, OPT_BACKEND_CONFIG,
	OPT_HTTP_PORT, OPT_HTTP_ADDRESS, OPT_HTTP_THREADS, OPT_HTTP_MAX_BODY,
	OPT_GRPC_ARG, OPT_FAIR_SHARE, OPT_GRPC_MAX_CONNS, OPT_GRPC_MAX_CONNS_IP,
	OPT_GRPC_MAX_CANCELS, OPT_HTTP_MAX_CONNS_IP,
};

static int ferryd__parse_options(int argc, char **argv, struct broker_options *o)
{
	static const struct option longopts[] = {
		{ "model-repository", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 's' },
		{ "backend-directory", required_argument, NULL, OPT_BACKEND_DIR },
		{ "wait", required_argument, NULL, OPT_WAIT },
		{ "spin-us", required_argument, NULL, OPT_SPIN_US },
		{ "pollers", required_argument, NULL, OPT_POLLERS },
		{ "numa", required_argument, NULL, OPT_NUMA },
		{ "gpu", required_argument, NULL, OPT_GPU },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
		{ "allow-gid", required_argument, NULL, OPT_ALLOW_GID },
		{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
		{ "max-arena-bytes", required_argument, NULL, OPT_MAX_ARENA },
		{ "arena-bytes", required_argument, NULL, OPT_ARENA },
		{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
		{ "strict-model-config", required_argument, NULL, OPT_STRICT },
		{ "exit-on-error", required_argument, NULL, OPT_EXIT_ON_ERROR },
		{ "disable-auto-complete-config", no_argument, NULL, OPT_NO_AUTOCOMPLETE },
		{ "backend-config", required_argument, NULL, OPT_BACKEND_CONFIG },
		{ "event-loop", required_argument, NULL, OPT_EVENT_LOOP },
		{ "grpc-port", required_argument, NULL, OPT_GRPC_PORT },
		{ "grpc-address", required_argument, NULL, OPT_GRPC_ADDRESS },
		{ "grpc-threads", required_argument, NULL, OPT_GRPC_THREADS },
		{ "grpc-max-message-bytes", required_argument, NULL, OPT_GRPC_MAX_MSG },
		{ "allow-client-shm", no_argument, NULL, OPT_ALLOW_CLIENT_SHM },
		{ "grpc-arg", required_argument, NULL, OPT_GRPC_ARG },
		{ "grpc-max-connections", required_argument, NULL, OPT_GRPC_MAX_CONNS },
		{ "grpc-max-connections-per-ip", required_argument, NULL, OPT_GRPC_MAX_CONNS_IP },
		{ "grpc-max-cancels-per-s", required_argument, NULL, OPT_GRPC_MAX_CANCELS },
		{ "http-max-connections-per-ip", required_argument, NULL, OPT_HTTP_MAX_CONNS_IP },
		{ "fair-share", required_argument, NULL, OPT_FAIR_SHARE },
		{ "http-port", required_argument, NULL, OPT_HTTP_PORT },
		{ "http-address", required_argument, NULL, OPT_HTTP_ADDRESS },
		{ "http-threads", required_argument, NULL, OPT_HTTP_THREADS },
		{ "http-max-body-bytes", required_argument, NULL, OPT_HTTP_MAX_BODY },
		{ "idle-exit", required_argument, NULL, OPT_IDLE_EXIT },
		{ "max-sessions-per-uid", required_argument, NULL, OPT_MAX_PER_UID },
		{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
		{ "grpc-tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "grpc-tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "grpc-tls-ca", required_argument, NULL, OPT_TLS_CA },
		{ "metrics-port", required_argument, NULL, OPT_METRICS_PORT },
		{ "metrics-address", required_argument, NULL, OPT_METRICS_ADDRESS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	const char *env;
	uint64_t v;
	bool exit_on_error_given = false, b;

	/* Defaults, then the environment, then the command line. */
	o->wait = FSHM_WAIT_HYBRID;
	o->spin_ns = 50000;
	o->numa = -2;
	o->strict = true;
	o->autocomplete = true;
	o->max_sessions = 1024;
	o->limits.arena_default = 64ULL << 20;
	o->limits.arena_max = 1ULL << 30;
	o->limits.depth_default = 256;
	o->limits.depth_max = 4096;
	o->limits.numa_node = -1;
	o->repository = getenv("FERRY_MODEL_REPOSITORY");
	o->backend_dir = getenv("FERRY_BACKEND_DIR");
	if ((env = getenv("FERRY_WAIT")) && fshm_wait_policy_parse(env, &o->wait)) {
		fprintf(stderr, "ferryd: FERRY_WAIT: unknown policy '%s'\n", env);
		return -1;
	}
	if ((env = getenv("FERRY_GPU")) && ferryd__parse_gpu(env, &o->gpu)) {
		fprintf(stderr, "ferryd: FERRY_GPU: auto, on or off, not '%s'\n", env);
		return -1;
	}
	if ((env = getenv("FERRY_POLLERS")) &&
	    (ferryd__parse_u64(env, &v) || v > FERRYD__MAX_POLLERS)) {
		fprintf(stderr, "ferryd: FERRY_POLLERS: 0 to %d, not '%s'\n", FERRYD__MAX_POLLERS, env);
		return -1;
	} else if (env) {
		o->pollers = (int)v;
	}
	if ((env = getenv("FERRY_LOG_LEVEL")) && log_level_parse(env, &log_threshold)) {
		fprintf(stderr, "ferryd: FERRY_LOG_LEVEL: unknown level '%s'\n", env);
		return -1;
	}

	int c;
	while ((c = getopt_long(argc, argv, "m:s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->repository = optarg; break;
		case 's': o->socket_path = optarg; break;
		case OPT_BACKEND_DIR: o->backend_dir = optarg; break;
		case OPT_WAIT:
			if (fshm_wait_policy_parse(optarg, &o->wait)) {
				fprintf(stderr, "ferryd: --wait: spin, hybrid or block, not '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_SPIN_US:
			if (ferryd__number(optarg, 0, 10000000, "--spin-us",
					   "a number of microseconds up to 10000000", &v))
				return -1;
			o->spin_ns = v * 1000;
			break;
		case OPT_POLLERS:
			if (ferryd__parse_u64(optarg, &v) || v > FERRYD__MAX_POLLERS) {
				fprintf(stderr, "ferryd: --pollers: 0 (one per CPU) to %d\n",
					FERRYD__MAX_POLLERS);
				return -1;
			}
			o->pollers = (int)v;
			break;
		case OPT_NUMA:
			if (!strcmp(optarg, "auto"))
				o->numa = -2;
			else if (!strcmp(optarg, "off"))
				o->numa = -1;
			else if (ferryd__parse_u64(optarg, &v) == 0 && v < 1024)
				o->numa = (int)v;
			else {
				fprintf(stderr, "ferryd: --numa: auto, off or a node number\n");
				return -1;
			}
			break;
		case OPT_GPU:
			if (ferryd__parse_gpu(optarg, &o->gpu)) {
				fprintf(stderr, "ferryd: --gpu: auto, on or off, not '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_LOG_LEVEL:
			if (log_level_parse(optarg, &log_threshold)) {
				fprintf(stderr, "ferryd: --log-level: error, warn, info, debug or trace\n");
				return -1;
			}
			break;
		case OPT_ALLOW_UID:
			if (ferryd__parse_ids(optarg, false, o))
				return -1;
			break;
		case OPT_ALLOW_GID:
			if (ferryd__parse_ids(optarg, true, o))
				return -1;
			break;
		case OPT_MAX_SESSIONS:
			if (ferryd__number(optarg, 1, 1000000, "--max-sessions",
					   "1 to 1000000", &v))
				return -1;
			o->max_sessions = (uint32_t)v;
			break;
		case OPT_MAX_ARENA:
		case OPT_ARENA:
			if (ferryd__parse_u64(optarg, &v) || v < 4096 || v > FSHM_SEG_MAX_BYTES / 2) {
				fprintf(stderr, "ferryd: %s: a size from 4096 bytes to 512 GiB\n",
					c == OPT_ARENA ? "--arena-bytes" : "--max-arena-bytes");
				return -1;
			}
			if (c == OPT_ARENA)
				o->limits.arena_default = v;
			else
				o->limits.arena_max = v;
			break;
		case OPT_MAX_INFLIGHT:
			if (ferryd__parse_u64(optarg, &v) || v < 2 || v > FSHM_RING_MAX_ENTRIES) {
				fprintf(stderr, "ferryd: --max-inflight: 2 to %u\n", FSHM_RING_MAX_ENTRIES);
				return -1;
			}
			o->limits.depth_max = (uint32_t)v;
			if (o->limits.depth_default > v)
				o->limits.depth_default = (uint32_t)v;
			break;
		case OPT_STRICT:
			/* Triton's meaning: true turns auto-complete off.  ferryd
			 * once read false as "serve the models that load"; that
			 * spelling keeps doing so (with a warning) unless
			 * --exit-on-error says otherwise. */
			if (ferryd__parse_bool("--strict-model-config", optarg, &b))
				return -1;
			o->autocomplete = !b;
			if (!b && !exit_on_error_given)
				o->strict = false;
			ferryd__old_strict_false = !b && !exit_on_error_given;
			break;
		case OPT_EXIT_ON_ERROR:
			if (ferryd__parse_bool("--exit-on-error", optarg, &o->strict))
				return -1;
			exit_on_error_given = true;
			ferryd__old_strict_false = false;
			break;
		case OPT_NO_AUTOCOMPLETE:
			o->autocomplete = false;
			break;
		case OPT_BACKEND_CONFIG:
			if (o->nbackend_config >= (int)(sizeof(o->backend_config) /
							sizeof(o->backend_config[0]))) {
				fprintf(stderr, "ferryd: --backend-config: at most %d\n",
					(int)(sizeof(o->backend_config) /
					      sizeof(o->backend_config[0])));
				return -1;
			}
			o->backend_config[o->nbackend_config++] = optarg;
			break;
		case OPT_EVENT_LOOP:
			if (!strcmp(optarg, "epoll"))
				o->force_epoll = true;
			else if (!strcmp(optarg, "io_uring"))
				o->force_epoll = false;
			else {
				fprintf(stderr, "ferryd: --event-loop: io_uring or epoll\n");
				return -1;
			}
			break;
		case OPT_MAX_PER_UID:
			if (ferryd__number(optarg, 0, 1000000, "--max-sessions-per-uid",
					   "0 (no limit) to 1000000", &v))
				return -1;
			o->max_sessions_per_uid = (uint32_t)v;
			break;
		/* TLS asked for and not available is fatal, as an explicit
		 * port is: never fall back to plaintext. */
		case OPT_TLS_CERT: ferryd__grpc.tls_cert = optarg; ferryd__grpc_explicit = true; break;
		case OPT_TLS_KEY: ferryd__grpc.tls_key = optarg; ferryd__grpc_explicit = true; break;
		case OPT_TLS_CA: ferryd__grpc.tls_ca = optarg; ferryd__grpc_explicit = true; break;
		case OPT_SOCKET_GROUP:
			o->socket_group = optarg;
			break;
		case OPT_IDLE_EXIT:
			if (ferryd__number(optarg, 0, 86400 * 365, "--idle-exit",
					   "seconds, 0 for never", &v))
				return -1;
			o->idle_exit_ns = v * 1000000000ULL;
			break;
		case OPT_METRICS_PORT:
			if (ferryd__number(optarg, 0, 65535, "--metrics-port",
					   "0 to 65535", &v))
				return -1;
			ferryd__metrics_port = (int)v;
			ferryd__metrics_explicit = true;
			break;
		case OPT_METRICS_ADDRESS:
			ferryd__metrics_address = optarg;
			break;
		case OPT_GRPC_PORT:
			if (ferryd__number(optarg, 0, 65535, "--grpc-port", "0 to 65535", &v))
				return -1;
			ferryd__grpc.port = (int)v;
			ferryd__grpc_explicit = true;
			break;
		case OPT_GRPC_ADDRESS:
			ferryd__grpc.address = optarg;
			break;
		case OPT_GRPC_THREADS:
			if (ferryd__number(optarg, 1, 64, "--grpc-threads", "1 to 64", &v))
				return -1;
			ferryd__grpc.threads = (int)v;
			break;
		case OPT_GRPC_MAX_MSG:
			if (ferryd__number(optarg, 4096, INT32_MAX, "--grpc-max-message-bytes",
					   "4096 to 2147483647", &v))
				return -1;
			ferryd__grpc.max_message_bytes = (int64_t)v;
			break;
		case OPT_ALLOW_CLIENT_SHM:
			ferryd__grpc.allow_client_shm = true;
			ferryd__http.allow_client_shm = true;
			break;
		case OPT_GRPC_ARG: {
			char why[300];
			if (gs_arg_check(optarg, why, sizeof(why))) {
				fprintf(stderr, "ferryd: --grpc-arg %s\n", why);
				return -1;
			}
			if (ferryd__grpc.nargs == GS_MAX_ARGS) {
				fprintf(stderr, "ferryd: --grpc-arg: at most %d\n", GS_MAX_ARGS);
				return -1;
			}
			ferryd__grpc_args[ferryd__grpc.nargs++] = optarg;
			ferryd__grpc.args = ferryd__grpc_args;
			break;
		}
		case OPT_FAIR_SHARE:
			if (ferryd__parse_bool("--fair-share", optarg, &b))
				return -1;
			sched_set_fair_share(b);
			break;
		case OPT_HTTP_PORT:
			if (ferryd__number(optarg, 0, 65535, "--http-port", "0 to 65535", &v))
				return -1;
			ferryd__http.port = (int)v;
			ferryd__http_explicit = true;
			break;
		case OPT_HTTP_ADDRESS:
			ferryd__http.address = optarg;
			break;
		case OPT_HTTP_THREADS:
			if (ferryd__number(optarg, 1, 64, "--http-threads", "1 to 64", &v))
				return -1;
			ferryd__http.threads = (int)v;
			break;
		case OPT_HTTP_MAX_BODY:
			if (ferryd__number(optarg, 4096, (1ULL << 40), "--http-max-body-bytes",
					   "4096 to 1T", &v))
				return -1;
			ferryd__http.max_body_bytes = v;
			break;
		case OPT_GRPC_MAX_CONNS:
			if (ferryd__number(optarg, 1, 1000000, "--grpc-max-connections",
					   "1 to 1000000", &v))
				return -1;
			ferryd__grpc.max_connections = (int)v;
			break;
		case OPT_GRPC_MAX_CONNS_IP:
			if (ferryd__number(optarg, 0, 1000000, "--grpc-max-connections-per-ip",
					   "0 to 1000000", &v))
				return -1;
			ferryd__grpc.max_connections_per_ip = (int)v;
			break;
		case OPT_GRPC_MAX_CANCELS:
			if (ferryd__number(optarg, 1, 60000, "--grpc-max-cancels-per-s",
					   "1 to 60000", &v))
				return -1;
			ferryd__grpc.max_cancels_per_s = (int)v;
			break;
		case OPT_HTTP_MAX_CONNS_IP:
			if (ferryd__number(optarg, 0, 1024, "--http-max-connections-per-ip",
					   "0 to 1024", &v))
				return -1;
			ferryd__http.max_connections_per_ip = (int)v;
			break;
		case 'h':
			ferryd__usage(stdout);
			exit(0);
		case 'V':
			printf("ferryd %s\n", FERRY_VERSION_STRING);
			exit(0);
		default:
			ferryd__usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferryd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	/* The installed plugins, then the build tree's (configure's choice:
	 * see FERRY_BACKEND_DIRS in broker/core/core.mk). */
	if (!o->backend_dir || !*o->backend_dir)
		o->backend_dir = FERRY_BACKEND_DIRS;
	if (o->limits.arena_default > o->limits.arena_max)
		o->limits.arena_default = o->limits.arena_max;
	if (!o->repository) {
		fprintf(stderr, "ferryd: no model repository: give --model-repository DIR "
				"or set FERRY_MODEL_REPOSITORY\n");
		return -1;
	}
	if (!o->socket_path) {
		if (frame_default_socket_path(ferryd__socket_buf, sizeof(ferryd__socket_buf))) {
			fprintf(stderr, "ferryd: socket path too long\n");
			return -1;
		}
		o->socket_path = ferryd__socket_buf;
	}
	return 0;
}

static void ferryd__numa_setup(struct broker_options *o)
{
	/* GPU instances pin their threads to their card's node unless off */
	gpu_set_numa(o->numa != -1);
	if (o->numa == -1)
		return;
	if (numa_available() < 0) {
		if (o->numa >= 0)
			log_warn("--numa %d: libnuma reports no NUMA support; not binding", o->numa);
		else
			log_info("NUMA: not available on this machine; arenas are not bound");
		o->limits.numa_node = -1;
		return;
	}
	int nodes = numa_max_node() + 1;
	if (o->numa >= 0) {
		if (o->numa >= nodes) {
			log_warn("--numa %d: the machine has %d node(s); not binding", o->numa, nodes);
			o->limits.numa_node = -1;
		} else {
			o->limits.numa_node = o->numa;
			log_info("NUMA: session arenas bound to node %d", o->numa);
		}
		return;
	}
	/* auto: beside GPU 0 when there is one (its PCI device's node);
	 * on CPUs alone, the kernel's first-touch policy places each arena. */
	if (gpu_device_count() > 0) {
		int node = gpu_numa_node(0);
		if (node >= 0 && node < nodes) {
			o->limits.numa_node = node;
			log_info("NUMA: session arenas bound to node %d (GPU 0's)", node);
			return;
		}
	}
	if (nodes == 1)
		log_info("NUMA: one node; placement is a no-op");
	else
		log_info("NUMA: %d nodes, no GPU: arenas follow first touch", nodes);
	o->limits.numa_node = -1;
}

static void ferryd__on_signal(void *arg, uint32_t events)
{
	struct broker *b = arg;
	unsigned char sig[64];
	ssize_t n;
	while ((n = read(b->signal_fd, sig, sizeof(sig))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			switch (sig[i]) {
			case SIGTERM:
			case SIGINT:
				log_info("signal %d: shutting down", (int)sig[i]);
				b->stopping = true;
				break;
			case SIGHUP:
				log_info("SIGHUP: rescanning the model repository");
				rescan_request();
				break;
			default:
				break;
			}
		}
	}
}

/* Sessions a poller found corrupt, for the loop thread to close; each
 * holds a reference.  Guarded by ferryd__corrupt_lock. */
static pthread_mutex_t ferryd__corrupt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session **ferryd__corrupt;
static uint32_t ferryd__ncorrupt, ferryd__capcorrupt;

static void ferryd__on_kick(void *arg, uint32_t events)
{
	struct broker *b = arg;
	uint64_t v;
	ssize_t n = read(b->kick_fd, &v, sizeof(v));
	(void)n;
	control_admin_replies(b);
	pthread_mutex_lock(&ferryd__corrupt_lock);
	struct session **list = ferryd__corrupt;
	uint32_t nlist = ferryd__ncorrupt;
	ferryd__corrupt = NULL;
	ferryd__ncorrupt = ferryd__capcorrupt = 0;
	pthread_mutex_unlock(&ferryd__corrupt_lock);
	for (uint32_t i = 0; i < nlist; i++) {
		/* A no-op when the client has gone meanwhile. */
		control_session_close(b, list[i], "corrupt ring");
		session_unref(list[i]);
	}
	free(list);
}

/* A poller found a session's ring corrupt: the loop thread closes it. */
static void ferryd__corrupt_session(struct session *s, void *arg)
{
	struct broker *b = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&ferryd__corrupt_lock);
	if (ferryd__ncorrupt == ferryd__capcorrupt) {
		uint32_t cap = ferryd__capcorrupt ? ferryd__capcorrupt * 2 : 8;
		struct session **l = realloc(ferryd__corrupt, cap * sizeof(*l));
		if (!l) {
			/* Its poller has let it go already: the client is no
			 * longer served, and its socket closes it later. */
			pthread_mutex_unlock(&ferryd__corrupt_lock);
			return;
		}
		ferryd__corrupt = l;
		ferryd__capcorrupt = cap;
	}
	session_ref(s);
	ferryd__corrupt[ferryd__ncorrupt++] = s;
	pthread_mutex_unlock(&ferryd__corrupt_lock);
	ssize_t n = write(b->kick_fd, &one, sizeof(one));
	(void)n;
}

/* sched kick: an inline model got work from a thread that is not a
 * poller (gRPC): a poller must run it. */
static void ferryd__broker_kick(void *arg)
{
	poller_kick();
}

/*
 * The loop thread: control connections, signals, admin replies, and the
 * gauges.  The session rings are the pollers' (poller.c).
 */
static void ferryd__run(struct broker *b)
{
	uint64_t last_snapshot = 0;
	uint32_t snapshot_sessions = 0; /* sessions open at the last snapshot */
	uint64_t idle_from = 0;         /* since when no session (--idle-exit) */

	while (!b->stopping) {
		uint64_t now = fshm_now_ns();
		uint64_t deadline = UINT64_MAX;
		bool again = false;

		/* Publish the gauges only the loop may read, ten times a second
		 * while sessions are open. */
		if (now - last_snapshot >= 100000000) {
			metrics_snapshot(b);
			last_snapshot = now;
			snapshot_sessions = b->nsessions;
		}
		/* Until a snapshot has seen the last session go. */
		if (b->nsessions || snapshot_sessions)
			deadline = last_snapshot + 100000000;
		if (b->opt.idle_exit_ns) {
			/* A private broker leaves when nobody has used it for
			 * --idle-exit: wake up in time to notice. */
			if (b->nsessions)
				idle_from = 0;
			else if (!idle_from)
				idle_from = now;
			else if (now - idle_from >= b->opt.idle_exit_ns) {
				log_info("idle for %llu s with no session: exiting (--idle-exit)",
					 (unsigned long long)(b->opt.idle_exit_ns / 1000000000ULL));
				b->stopping = true;
				again = true;
			}
			if (b->nsessions == 0 && idle_from &&
			    idle_from + b->opt.idle_exit_ns < deadline)
				deadline = idle_from + b->opt.idle_exit_ns;
		}
		if (!again) {
			int64_t timeout = -1;
			if (deadline != UINT64_MAX)
				timeout = deadline > now ? (int64_t)(deadline - now) : 0;
			loop_wait(b->loop, timeout);
		}
	}
}

/* The write end of the self-pipe, for the handler. */
static int ferryd__sigpipe = -1;

static void ferryd__on_signal_handler(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	ssize_t n = write(ferryd__sigpipe, &c, 1);
	(void)n;
	errno = saved;
}

/*
 * Signals reach the loop through a self-pipe written by a handler, not a
 * signalfd: a signalfd needs the signal blocked in every thread, and
 * libraries start threads of their own before main() (OpenBLAS's pool, in
 * its constructor) which keep the default mask, so a SIGTERM delivered to
 * one of them would kill the process instead of stopping it cleanly.
 */
static int ferryd__setup_signals(struct broker *b)
{
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	b->signal_fd = fds[0];
	ferryd__sigpipe = fds[1];
	struct sigaction sa = { .sa_handler = ferryd__on_signal_handler, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) ||
	    sigaction(SIGHUP, &sa, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	b->signal_handle = loop_add(b->loop, b->signal_fd, ferryd__on_signal, b);
	return b->signal_handle < 0 ? b->signal_handle : 0;
}

/*
 * Each session holds four descriptors (its socket, the segment's memfd,
 * two eventfds) and each system shared-memory region of a gRPC client one
 * more: the soft limit's usual 1024 would refuse sessions long before
 * --max-sessions.  Raise it to the hard limit, and say what it allows.
 */
static void ferryd__raise_nofile(const struct broker *b)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 4ULL * b->opt.max_sessions + 64)
		log_warn("open files limited to %llu: fewer than --max-sessions %u sessions "
			 "(4 descriptors each) will fit; raise LimitNOFILE / ulimit -n",
			 (unsigned long long)rl.rlim_cur, b->opt.max_sessions);
}

int main(int argc, char **argv)
{
	struct broker *b = &g_broker;
	struct timespec ts;
	int ret;

	b->listen_fd = b->signal_fd = b->kick_fd = -1;
	if (ferryd__parse_options(argc, argv, &b->opt))
		return 2;
	clock_gettime(CLOCK_REALTIME, &ts);
	b->epoch = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	log_info("ferryd %s starting: repository %s, socket %s, wait %s",
		 PACKAGE_VERSION, b->opt.repository, b->opt.socket_path,
		 fshm_wait_policy_name(b->opt.wait));

	ferryd__raise_nofile(b);
	/* valgrind holds its big lock across io_uring_enter, which it takes
	 * for a non-blocking call: the loop thread's wait would then stop
	 * every other thread (the pollers) until a control event comes. */
	const char *pre = getenv("LD_PRELOAD");
	if (!b->opt.force_epoll && pre && strstr(pre, "vgpreload")) {
		log_info("running under valgrind: event loop on epoll (valgrind serialises "
			 "threads across io_uring waits)");
		b->opt.force_epoll = true;
	}
	ret = loop_create(&b->loop, b->opt.force_epoll);
	if (ret) {
		log_error("cannot create the event loop: %s", strerror(-ret));
		return 1;
	}
	log_info("event loop: %s", loop_engine(b->loop));
	if ((ret = ferryd__setup_signals(b))) {
		log_error("signals: %s", strerror(-ret));
		return 1;
	}
	/* Before any thread exists (gpu.h); a CPU-only node loads no CUDA. */
	char why[256];
	int ngpu = gpu_init(b->opt.gpu >= 0, why, sizeof(why));
	if (!ngpu && b->opt.gpu > 0) {
		log_error("GPU: --gpu on, but none is usable: %s", why);
		return 1;
	}
	log_info("GPU: %s", why);
	ferryd__numa_setup(&b->opt);
	b->opt.limits.gpu_pin = ngpu > 0;
	if (b->opt.limits.gpu_pin)
		log_info("GPU: %d device(s); session arenas are pinned (cudaHostRegister)",
			 ngpu);

	b->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->kick_fd < 0 || (b->kick_handle = loop_add(b->loop, b->kick_fd, ferryd__on_kick, b)) < 0) {
		log_error("kick eventfd: %s", strerror(errno));
		return 1;
	}
	struct models_options fo = {
		.repository = b->opt.repository,
		.backend_dir = b->opt.backend_dir,
		.backend_config = b->opt.backend_config,
		.nbackend_config = b->opt.nbackend_config,
		.autocomplete = b->opt.autocomplete,
		.strict = b->opt.strict,
		.kick = ferryd__broker_kick,
		.kick_arg = b,
	};
	if (ferryd__old_strict_false)
		log_warn("--strict-model-config=false: auto-complete is on by default (Triton's "
			 "meaning of the flag); ferryd used to read it as --exit-on-error=false "
			 "and still does for now: write --exit-on-error=false");
	log_info("model configs: %s; backend directories %s",
		 b->opt.autocomplete ? "auto-completed from the model files"
				     : "as written (--strict-model-config=true)",
		 b->opt.backend_dir);
	ret = models_load_all(&fo);
	models_log_table();
	if (ret == FERRY_CONFIG) {
		log_error("model repository %s: some models failed to load (see above); exiting "
			  "(--exit-on-error=false serves the others)", b->opt.repository);
		models_unload_all();
		return 1;
	} else if (ret) {
		/* The repository itself (or memory) failed: nothing to serve,
		 * whatever --exit-on-error says. */
		log_error("model repository %s: cannot be read (see above); exiting",
			  b->opt.repository);
		models_unload_all();
		return 1;
	}
	if ((ret = metrics_start(ferryd__metrics_address, ferryd__metrics_port)) &&
	    ferryd__metrics_explicit) {
		log_error("metrics: cannot listen on %s:%d", ferryd__metrics_address,
			  ferryd__metrics_port);
		models_stop_all();
		models_unload_all();
		return 1;
	} else if (ret) {
		log_warn("metrics: the default port %d is not available; serving without "
			 "metrics (--metrics-port picks another, 0 turns it off)",
			 ferryd__metrics_port);
	}
	struct poller_options po = {
		.count = b->opt.pollers,
		.wait = b->opt.wait,
		.spin_ns = b->opt.spin_ns,
		.corrupt = ferryd__corrupt_session,
		.corrupt_arg = b,
	};
	char perr[256];
	if ((ret = poller_start(&po, perr, sizeof(perr)))) {
		log_error("pollers: %s", perr);
		metrics_stop();
		models_stop_all();
		models_unload_all();
		return 1;
	}
	log_info("pollers: %d%s", poller_count(),
		 poller_pinned() ? ", one pinned per CPU" : " (not pinned)");
	if ((ret = control_listen(b))) {
		poller_stop();
		metrics_stop();
		models_stop_all();
		models_unload_all();
		return 1;
	}
	if ((ret = gs_start(&ferryd__grpc)) && ferryd__grpc_explicit) {
		poller_stop();
		metrics_stop();
		control_close_listener(b);
		models_stop_all();
		models_unload_all();
		return 1;
	} else if (ret) {
		log_warn("gRPC: the default port %d is not available; serving without gRPC "
			 "(--grpc-port picks another, 0 turns it off)", ferryd__grpc.port);
	}
	ferryd__http.tls_cert = ferryd__grpc.tls_cert;
	ferryd__http.tls_key = ferryd__grpc.tls_key;
	ferryd__http.tls_ca = ferryd__grpc.tls_ca;
	if ((ret = hs_start(&ferryd__http)) &&
	    (ferryd__http_explicit || ret == FERRY_CONFIG)) {
		gs_stop();
		poller_stop();
		metrics_stop();
		control_close_listener(b);
		models_stop_all();
		models_unload_all();
		return 1;
	} else if (ret) {
		log_warn("HTTP: the default port %d is not available; serving without HTTP "
			 "(--http-port picks another, 0 turns it off)", ferryd__http.port);
	}
	rescan_init(b->opt.repository);
	atomic_store(&metrics_gauges.ready, true);
	log_info("ready: listening on %s", b->opt.socket_path);
	systemd_notify("READY=1");

	ferryd__run(b);
	atomic_store(&metrics_gauges.ready, false);
	systemd_notify("STOPPING=1");

	/* Shutdown: no new clients; queued requests run to completion and
	 * their results reach clients still connected; then sessions go. */
	log_info("stopping: finishing queued requests");
	/* The rings first: nothing new is taken from them.  Queued requests
	 * still complete into the sessions, which stay mapped. */
	poller_stop();
	if (b->listen_fd >= 0) {
		loop_del(b->loop, b->listen_handle);
		close(b->listen_fd);
		b->listen_fd = -1;
	}
	hs_stop();
	gs_stop();
	rescan_fini();
	control_admin_stop();
	models_stop_all();
	control_close_listener(b);
	metrics_stop();
	models_unload_all();
	loop_del(b->loop, b->signal_handle);
	close(b->signal_fd);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	close(ferryd__sigpipe);
	loop_del(b->loop, b->kick_handle);
	close(b->kick_fd);
	loop_destroy(b->loop);
	gpu_fini();
	log_info("stopped");
	return 0;
}
