/* SPDX-License-Identifier: MIT */
/*
 * ferryctl - look at a running ferryd through its control socket.
 *
 *   ferryctl [--socket PATH] [--json] status | models | sessions | stats [MODEL]
 *
 * Exit codes: 0 done; 1 the broker answered with an error (unknown model);
 * 2 bad usage; 3 no broker (cannot connect, or it went away).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "config.h"
#include "proto/control.pb-c.h"
#include "proto/frame.h"

enum { EX_OK = 0, EX_ERR = 1, EX_USAGE = 2, EX_NOBROKER = 3 };

static bool ferryctl__json;
static int ferryctl__sock = -1;
static struct frame_reader ferryctl__rd;

static int ferryctl__call(Ferry__Control__Request *req, Ferry__Control__Response **resp)
{
	req->seq = 1;
	if (frame_send(ferryctl__sock, &req->base, NULL, 0, 0)) {
		fprintf(stderr, "ferryctl: the broker went away\n");
		return EX_NOBROKER;
	}
	for (;;) {
		int r = frame_read(ferryctl__sock, &ferryctl__rd);
		if (r == 1)
			break;
		if (r < 0) {
			fprintf(stderr, "ferryctl: the broker went away (%s)\n", strerror(-r));
			return EX_NOBROKER;
		}
		struct pollfd p = { .fd = ferryctl__sock, .events = POLLIN };
		if (poll(&p, 1, 120000) == 0) {
			fprintf(stderr, "ferryctl: no answer in 120 s\n");
			return EX_NOBROKER;
		}
	}
	*resp = ferry__control__response__unpack(NULL, frame_payload_len(&ferryctl__rd), frame_payload(&ferryctl__rd));
	frame_reader_next(&ferryctl__rd);
	if (!*resp) {
		fprintf(stderr, "ferryctl: malformed answer\n");
		return EX_NOBROKER;
	}
	if ((*resp)->body_case == FERRY__CONTROL__RESPONSE__BODY_ERROR) {
		fprintf(stderr, "ferryctl: %s (%s)\n", (*resp)->error->message,
			ferry_errname((*resp)->error->code));
		ferry__control__response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return EX_ERR;
	}
	return EX_OK;
}

/* JSON string (names come from config files: escape them). */
static void ferryctl__jstr(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *ferryctl__wait_name(uint32_t w)
{
	return w == 0 ? "spin" : w == 1 ? "hybrid" : w == 2 ? "block" : "?";
}

static void ferryctl__print_models(Ferry__Control__ModelMeta **ms, size_t n)
{
	if (ferryctl__json) {
		printf("[");
		for (size_t i = 0; i < n; i++) {
			printf("%s{\"name\":", i ? "," : "");
			ferryctl__jstr(ms[i]->name);
			printf(",\"version\":%lld,\"state\":", (long long)ms[i]->version);
			ferryctl__jstr(ms[i]->state);
			printf(",\"backend\":");
			ferryctl__jstr(ms[i]->backend);
			printf(",\"max_batch_size\":%d,\"reason\":", ms[i]->max_batch_size);
			ferryctl__jstr(ms[i]->reason);
			printf("}");
		}
		printf("]");
		return;
	}
	printf("%-24s %-8s %-12s %-10s %-12s %s\n", "MODEL", "VERSION", "BACKEND",
	       "MAX BATCH", "STATE", "REASON");
	for (size_t i = 0; i < n; i++)
		printf("%-24s %-8lld %-12s %-10d %-12s %s\n", ms[i]->name,
		       (long long)ms[i]->version, ms[i]->backend, ms[i]->max_batch_size,
		       ms[i]->state, ms[i]->reason ? ms[i]->reason : "");
}

static void ferryctl__print_sessions(Ferry__Control__SessionInfo **ss, size_t n)
{
	if (ferryctl__json) {
		printf("[");
		for (size_t i = 0; i < n; i++) {
			printf("%s{\"id\":%llu,\"pid\":%u,\"uid\":%u,\"name\":", i ? "," : "",
			       (unsigned long long)ss[i]->id, ss[i]->pid, ss[i]->uid);
			ferryctl__jstr(ss[i]->name);
			printf(",\"arena_bytes\":%llu,\"depth\":%u,\"inflight\":%u,"
			       "\"completed\":%llu,\"failed\":%llu}",
			       (unsigned long long)ss[i]->arena_bytes, ss[i]->depth, ss[i]->inflight,
			       (unsigned long long)ss[i]->completed, (unsigned long long)ss[i]->failed);
		}
		printf("]");
		return;
	}
	printf("%-8s %-8s %-6s %-20s %12s %6s %9s %12s %8s\n", "SESSION", "PID", "UID",
	       "NAME", "ARENA", "DEPTH", "INFLIGHT", "COMPLETED", "FAILED");
	for (size_t i = 0; i < n; i++)
		printf("%-8llu %-8u %-6u %-20s %12llu %6u %9u %12llu %8llu\n",
		       (unsigned long long)ss[i]->id, ss[i]->pid, ss[i]->uid, ss[i]->name,
		       (unsigned long long)ss[i]->arena_bytes, ss[i]->depth, ss[i]->inflight,
		       (unsigned long long)ss[i]->completed, (unsigned long long)ss[i]->failed);
}

static int ferryctl__cmd_status(const char *what)
{
	Ferry__Control__GetStatus g = FERRY__CONTROL__GET_STATUS__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__Response *resp = NULL;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATUS;
	req.get_status = &g;
	int ret = ferryctl__call(&req, &resp);
	if (ret)
		return ret;
	Ferry__Control__Status *st = resp->status;
	if (!strcmp(what, "models")) {
		ferryctl__print_models(st->models, st->n_models);
		if (ferryctl__json)
			printf("\n");
	} else if (!strcmp(what, "sessions")) {
		ferryctl__print_sessions(st->sessions, st->n_sessions);
		if (ferryctl__json)
			printf("\n");
	} else if (ferryctl__json) {
		printf("{\"version\":");
		ferryctl__jstr(st->version);
		printf(",\"uptime_s\":%.3f,\"event_loop\":", (double)st->uptime_ns / 1e9);
		ferryctl__jstr(st->event_loop);
		printf(",\"wait\":\"%s\",\"sessions\":%u,\"max_sessions\":%u,\"gpus\":%u,"
		       "\"cpu_s\":%.3f,\"models\":", ferryctl__wait_name(st->wait_policy), st->nsessions,
		       st->max_sessions, st->gpus, (double)st->cpu_ns / 1e9);
		ferryctl__print_models(st->models, st->n_models);
		printf(",\"session_list\":");
		ferryctl__print_sessions(st->sessions, st->n_sessions);
		printf("}\n");
	} else {
		printf("ferryd %s, up %.1f s, event loop %s, wait %s, CPU %.2f s, GPUs %u\n",
		       st->version, (double)st->uptime_ns / 1e9, st->event_loop,
		       ferryctl__wait_name(st->wait_policy), (double)st->cpu_ns / 1e9, st->gpus);
		printf("sessions: %u of %u\n\n", st->nsessions, st->max_sessions);
		ferryctl__print_models(st->models, st->n_models);
		if (st->n_sessions) {
			printf("\n");
			ferryctl__print_sessions(st->sessions, st->n_sessions);
		}
	}
	ferry__control__response__free_unpacked(resp, NULL);
	return EX_OK;
}

static double ferryctl__ms_per(uint64_t ns, uint64_t n)
{
	return n ? (double)ns / (double)n / 1e3 : 0.0;
}

static int ferryctl__cmd_stats(const char *model)
{
	Ferry__Control__GetStats g = FERRY__CONTROL__GET_STATS__INIT;
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__Response *resp = NULL;
	g.name = (char *)(model ? model : "");
	g.version = -1;
	req.body_case = FERRY__CONTROL__REQUEST__BODY_GET_STATS;
	req.get_stats = &g;
	int ret = ferryctl__call(&req, &resp);
	if (ret)
		return ret;
	Ferry__Control__StatsList *sl = resp->stats;
	if (ferryctl__json)
		printf("[");
	else
		printf("%-24s %-8s %10s %8s %10s %10s %10s %10s %10s %10s  %s\n", "MODEL",
		       "VERSION", "SUCCESS", "FAILURE", "INFER", "EXECS", "QUEUE us",
		       "INPUT us", "INFER us", "OUTPUT us", "BATCHES size:count");
	for (size_t i = 0; i < sl->n_stats; i++) {
		Ferry__Control__ModelStats *s = sl->stats[i];
		if (ferryctl__json) {
			printf("%s{\"name\":", i ? "," : "");
			ferryctl__jstr(s->name);
			printf(",\"version\":%lld,\"success\":%llu,\"failure\":%llu,"
			       "\"inference_count\":%llu,\"execution_count\":%llu,\"queue_ns\":%llu,"
			       "\"compute_input_ns\":%llu,\"compute_infer_ns\":%llu,"
			       "\"compute_output_ns\":%llu,\"batches\":{",
			       (long long)s->version, (unsigned long long)s->success,
			       (unsigned long long)s->failure, (unsigned long long)s->inference_count,
			       (unsigned long long)s->execution_count, (unsigned long long)s->queue_ns,
			       (unsigned long long)s->compute_input_ns,
			       (unsigned long long)s->compute_infer_ns,
			       (unsigned long long)s->compute_output_ns);
			for (size_t k = 0; k < s->n_batches; k++)
				printf("%s\"%u\":%llu", k ? "," : "", s->batches[k]->batch_size,
				       (unsigned long long)s->batches[k]->count);
			printf("}}");
			continue;
		}
		/* Times per request (queue) and per execution (compute). */
		printf("%-24s %-8lld %10llu %8llu %10llu %10llu %10.1f %10.1f %10.1f %10.1f  ",
		       s->name, (long long)s->version, (unsigned long long)s->success,
		       (unsigned long long)s->failure, (unsigned long long)s->inference_count,
		       (unsigned long long)s->execution_count,
		       ferryctl__ms_per(s->queue_ns, s->success + s->failure),
		       ferryctl__ms_per(s->compute_input_ns, s->execution_count),
		       ferryctl__ms_per(s->compute_infer_ns, s->execution_count),
		       ferryctl__ms_per(s->compute_output_ns, s->execution_count));
		for (size_t k = 0; k < s->n_batches && k < 8; k++)
			printf("%s%u:%llu", k ? " " : "", s->batches[k]->batch_size,
			       (unsigned long long)s->batches[k]->count);
		printf("%s\n", s->n_batches > 8 ? " ..." : "");
	}
	if (ferryctl__json)
		printf("]\n");
	ferry__control__response__free_unpacked(resp, NULL);
	return EX_OK;
}

static int ferryctl__cmd_admin(const char *what, const char *model)
{
	Ferry__Control__Request req = FERRY__CONTROL__REQUEST__INIT;
	Ferry__Control__LoadModel l = FERRY__CONTROL__LOAD_MODEL__INIT;
	Ferry__Control__UnloadModel u = FERRY__CONTROL__UNLOAD_MODEL__INIT;
	Ferry__Control__Response *resp = NULL;

	if (!model) {
		fprintf(stderr, "ferryctl: %s needs a model name\n", what);
		return EX_USAGE;
	}
	if (!strcmp(what, "unload")) {
		u.name = (char *)model;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_UNLOAD_MODEL;
		req.unload_model = &u;
	} else {
		/* load and reload are the same request: a model that serves
		 * is replaced once its successor has loaded. */
		l.name = (char *)model;
		req.body_case = FERRY__CONTROL__REQUEST__BODY_LOAD_MODEL;
		req.load_model = &l;
	}
	int ret = ferryctl__call(&req, &resp);
	if (ret)
		return ret;
	if (ferryctl__json) {
		printf("{\"model\":");
		ferryctl__jstr(model);
		printf(",\"%s\":true}\n", what);
	} else {
		printf("%s: %sed\n", model, !strcmp(what, "unload") ? "unload" :
		       !strcmp(what, "reload") ? "reload" : "load");
	}
	ferry__control__response__free_unpacked(resp, NULL);
	return EX_OK;
}

/* ---- a remote broker (or any KServe v2 server), through libferry ---- */

struct ferryctl__rm_list {
	bool first;
};

static void ferryctl__rm_model(void *arg, const char *name, int64_t version, const char *state)
{
	struct ferryctl__rm_list *l = arg;
	if (ferryctl__json) {
		printf("%s{\"name\":", l->first ? "" : ",");
		ferryctl__jstr(name);
		printf(",\"version\":%lld,\"state\":", (long long)version);
		ferryctl__jstr(state);
		printf("}");
	} else {
		printf("%-24s %-8lld %s\n", name, (long long)version, state);
	}
	l->first = false;
}

static void ferryctl__rm_stats(void *arg, const ferry_model_stats *s)
{
	struct ferryctl__rm_list *l = arg;
	if (ferryctl__json) {
		printf("%s{\"name\":", l->first ? "" : ",");
		ferryctl__jstr(s->name);
		printf(",\"version\":%lld,\"success\":%llu,\"failure\":%llu,"
		       "\"inference_count\":%llu,\"execution_count\":%llu,\"queue_ns\":%llu,"
		       "\"compute_input_ns\":%llu,\"compute_infer_ns\":%llu,"
		       "\"compute_output_ns\":%llu}",
		       (long long)s->version, (unsigned long long)s->success,
		       (unsigned long long)s->failure, (unsigned long long)s->inference_count,
		       (unsigned long long)s->execution_count, (unsigned long long)s->queue_ns,
		       (unsigned long long)s->compute_input_ns,
		       (unsigned long long)s->compute_infer_ns,
		       (unsigned long long)s->compute_output_ns);
	} else {
		printf("%-24s %-8lld %10llu %8llu %10llu %10llu %10.1f %10.1f %10.1f %10.1f\n",
		       s->name, (long long)s->version, (unsigned long long)s->success,
		       (unsigned long long)s->failure, (unsigned long long)s->inference_count,
		       (unsigned long long)s->execution_count,
		       ferryctl__ms_per(s->queue_ns, s->success + s->failure),
		       ferryctl__ms_per(s->compute_input_ns, s->execution_count),
		       ferryctl__ms_per(s->compute_infer_ns, s->execution_count),
		       ferryctl__ms_per(s->compute_output_ns, s->execution_count));
	}
	l->first = false;
}

static int ferryctl__rm_fail(int err)
{
	fprintf(stderr, "ferryctl: %s (%s)\n", ferry_last_error(), ferry_errname(err));
	return err == FERRY_ECONNREFUSED || err == FERRY_EPIPE || err == FERRY_ETIMEDOUT ||
	       err == FERRY_UNAVAILABLE ? EX_NOBROKER : EX_ERR;
}

static int ferryctl__remote_main(const char *server, const char *cmd, const char *arg)
{
	ferry_client *c;
	struct ferryctl__rm_list l = { .first = true };
	int ret = ferry_connect(&c, server, NULL);
	if (ret)
		return ferryctl__rm_fail(ret);
	if (!strcmp(cmd, "sessions")) {
		fprintf(stderr, "ferryctl: sessions are shown over the local socket only\n");
		ret = EX_USAGE;
	} else if (!strcmp(cmd, "stats")) {
		if (ferryctl__json)
			printf("[");
		else
			printf("%-24s %-8s %10s %8s %10s %10s %10s %10s %10s %10s\n", "MODEL",
			       "VERSION", "SUCCESS", "FAILURE", "INFER", "EXECS", "QUEUE us",
			       "INPUT us", "INFER us", "OUTPUT us");
		ret = ferry_model_statistics(c, arg, FERRY_LATEST, ferryctl__rm_stats, &l);
		if (ferryctl__json)
			printf("]\n");
		ret = ret < 0 ? ferryctl__rm_fail(ret) : EX_OK;
	} else if (!strcmp(cmd, "load") || !strcmp(cmd, "reload") || !strcmp(cmd, "unload")) {
		if (!arg) {
			fprintf(stderr, "ferryctl: %s needs a model name\n", cmd);
			ret = EX_USAGE;
		} else {
			ret = !strcmp(cmd, "unload") ? ferry_model_unload(c, arg) : ferry_model_load(c, arg);
			if (ret)
				ret = ferryctl__rm_fail(ret);
			else if (ferryctl__json)
				printf("{\"model\":\"%s\",\"%s\":true}\n", arg, cmd);
			else
				printf("%s: %sed\n", arg, cmd);
		}
	} else { /* status, models */
		if (!strcmp(cmd, "status") && !ferryctl__json)
			printf("server %s\n\n", server);
		if (ferryctl__json)
			printf("[");
		else
			printf("%-24s %-8s %s\n", "MODEL", "VERSION", "STATE");
		ret = ferry_model_list(c, ferryctl__rm_model, &l);
		if (ferryctl__json)
			printf("]\n");
		ret = ret < 0 ? ferryctl__rm_fail(ret) : EX_OK;
	}
	ferry_close(c);
	return ret;
}

static void ferryctl__usage(FILE *f)
{
	fprintf(f,
"Usage: ferryctl [--socket PATH | --server grpc://HOST:PORT] [--json] COMMAND\n"
"Commands:\n"
"  status          version, uptime, models and their state, sessions, GPUs\n"
"  models          the model versions and their state\n"
"  sessions        the client sessions\n"
"  stats [MODEL]   Triton's statistics per model version\n"
"  load MODEL      load a model of the repository (reload it if it serves)\n"
"  reload MODEL    the same: the old versions serve until the new ones load\n"
"  unload MODEL    unload it once its requests in flight finish\n"
"The socket: --socket, else $FERRY_SOCKET, else the node's broker.  With\n"
"--server, a remote ferryd (or any KServe v2 server) over gRPC: models,\n"
"stats, load, reload and unload (sessions are local only).\n"
"Exit codes: 0 done, 1 the broker refused (e.g. unknown model), 2 usage,\n"
"3 no broker.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "server", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	char path[108];
	const char *spath = NULL, *server = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "s:jhV", lo, NULL)) != -1) {
		switch (c) {
		case 's': spath = optarg; break;
		case 'S': server = optarg; break;
		case 'j': ferryctl__json = true; break;
		case 'h': ferryctl__usage(stdout); return EX_OK;
		case 'V': printf("ferryctl %s\n", ferry_version()); return EX_OK;
		default: ferryctl__usage(stderr); return EX_USAGE;
		}
	}
	if (optind >= argc) {
		ferryctl__usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[optind];
	const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
	bool admin = !strcmp(cmd, "load") || !strcmp(cmd, "reload") || !strcmp(cmd, "unload");
	if (strcmp(cmd, "status") && strcmp(cmd, "models") && strcmp(cmd, "sessions") &&
	    strcmp(cmd, "stats") && !admin) {
		fprintf(stderr, "ferryctl: unknown command '%s'\n", cmd);
		ferryctl__usage(stderr);
		return EX_USAGE;
	}
	if (server)
		return ferryctl__remote_main(server, cmd, arg);
	if (!spath) {
		if (frame_default_socket_path(path, sizeof(path)))
			return EX_USAGE;
		spath = path;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(spath) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ferryctl: socket path too long\n");
		return EX_USAGE;
	}
	strcpy(sa.sun_path, spath);
	ferryctl__sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ferryctl__sock < 0 || connect(ferryctl__sock, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "ferryctl: no broker at %s: %s\n", spath, strerror(errno));
		return EX_NOBROKER;
	}
	frame_reader_init(&ferryctl__rd);
	int ret = admin ? ferryctl__cmd_admin(cmd, arg) :
		  !strcmp(cmd, "stats") ? ferryctl__cmd_stats(arg) : ferryctl__cmd_status(cmd);
	frame_reader_fini(&ferryctl__rd);
	close(ferryctl__sock);
	return ret;
}
