/* SPDX-License-Identifier: MIT */
/*
 * ferryctl - look at and administer a running ferryd, through libferry's
 * public API alone: its control socket (ferry_connect_admin: no session),
 * or a remote ferryd / any KServe v2 server over gRPC (--server).
 *
 *   ferryctl [--socket PATH | --server grpc://HOST:PORT] [--json]
 *            status | models | sessions | stats [MODEL] | load | reload | unload MODEL
 *
 * Exit codes: 0 done; 1 the broker answered with an error (unknown model);
 * 2 bad usage; 3 no broker (cannot connect, or it went away).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ferry.h>

enum { EX_OK = 0, EX_ERR = 1, EX_USAGE = 2, EX_NOBROKER = 3 };

static bool ferryctl__json;
static bool ferryctl__remote;   /* --server: gRPC */

/* A failed libferry call: say why, and pick the exit code. */
static int ferryctl__fail(int err)
{
	fprintf(stderr, "ferryctl: %s (%s)\n", ferry_last_error(), ferry_errname(err));
	/* Over gRPC, UNAVAILABLE is the server not answering. */
	return err == FERRY_ECONNREFUSED || err == FERRY_EPIPE || err == FERRY_ETIMEDOUT ||
	       (ferryctl__remote && err == FERRY_UNAVAILABLE) ? EX_NOBROKER : EX_ERR;
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

static const char *ferryctl__wait_name(int w)
{
	return w == 0 ? "spin" : w == 1 ? "hybrid" : w == 2 ? "block" : "?";
}

/* A list printed by callbacks: the header (or "[") before the first item,
 * and when there is none, the header only if `always`. */
struct ferryctl__list {
	void (*header)(void);
	bool always;
	int n;
};

static void ferryctl__list_item(struct ferryctl__list *l)
{
	if (l->n++ == 0) {
		if (ferryctl__json)
			printf("[");
		else
			l->header();
	} else if (ferryctl__json) {
		printf(",");
	}
}

static void ferryctl__list_end(struct ferryctl__list *l)
{
	if (l->n == 0) {
		if (ferryctl__json)
			printf("[");
		else if (l->always)
			l->header();
	}
	if (ferryctl__json)
		printf("]");
}

/* ---- models ---- */

static void ferryctl__models_header(void)
{
	printf("%-24s %-8s %-12s %-10s %-12s %s\n", "MODEL", "VERSION", "BACKEND",
	       "MAX BATCH", "STATE", "REASON");
}

static void ferryctl__model(void *arg, const ferry_model_info *m)
{
	ferryctl__list_item(arg);
	if (ferryctl__json) {
		printf("{\"name\":");
		ferryctl__jstr(m->name);
		printf(",\"version\":%lld,\"state\":", (long long)m->version);
		ferryctl__jstr(m->state);
		/* unknown over gRPC: left out rather than made up */
		if (m->backend) {
			printf(",\"backend\":");
			ferryctl__jstr(m->backend);
		}
		if (m->max_batch_size >= 0)
			printf(",\"max_batch_size\":%d", m->max_batch_size);
		printf(",\"reason\":");
		ferryctl__jstr(m->reason);
		printf("}");
		return;
	}
	char mbs[16] = "-";
	if (m->max_batch_size >= 0)
		snprintf(mbs, sizeof(mbs), "%d", m->max_batch_size);
	printf("%-24s %-8lld %-12s %-10s %-12s %s\n", m->name, (long long)m->version,
	       m->backend ? m->backend : "-", mbs, m->state, m->reason);
}

static int ferryctl__models(ferry_client *c)
{
	struct ferryctl__list l = { ferryctl__models_header, true, 0 };
	int ret = ferry_model_list_info(c, ferryctl__model, &l);
	if (ret < 0)
		return ret;
	ferryctl__list_end(&l);
	return 0;
}

/* ---- sessions ---- */

static void ferryctl__sessions_header(void)
{
	printf("%-8s %-8s %-6s %-20s %12s %6s %9s %12s %8s\n", "SESSION", "PID", "UID",
	       "NAME", "ARENA", "DEPTH", "INFLIGHT", "COMPLETED", "FAILED");
}

static void ferryctl__session(void *arg, const ferry_session_info *s)
{
	ferryctl__list_item(arg);
	if (ferryctl__json) {
		printf("{\"id\":%llu,\"pid\":%u,\"uid\":%u,\"name\":",
		       (unsigned long long)s->id, s->pid, s->uid);
		ferryctl__jstr(s->name);
		printf(",\"arena_bytes\":%llu,\"depth\":%u,\"inflight\":%u,"
		       "\"completed\":%llu,\"failed\":%llu}",
		       (unsigned long long)s->arena_bytes, s->depth, s->inflight,
		       (unsigned long long)s->completed, (unsigned long long)s->failed);
		return;
	}
	printf("%-8llu %-8u %-6u %-20s %12llu %6u %9u %12llu %8llu\n",
	       (unsigned long long)s->id, s->pid, s->uid, s->name,
	       (unsigned long long)s->arena_bytes, s->depth, s->inflight,
	       (unsigned long long)s->completed, (unsigned long long)s->failed);
}

/* Under the status: a blank line first, and nothing when there is none. */
static void ferryctl__sessions_header_status(void)
{
	printf("\n");
	ferryctl__sessions_header();
}

static int ferryctl__sessions(ferry_client *c, bool in_status)
{
	struct ferryctl__list l = { ferryctl__sessions_header, true, 0 };
	if (in_status)
		l = (struct ferryctl__list){ ferryctl__sessions_header_status, false, 0 };
	int ret = ferry_session_list(c, ferryctl__session, &l);
	if (ret < 0)
		return ret;
	ferryctl__list_end(&l);
	return 0;
}

/* ---- status ---- */

static int ferryctl__status(ferry_client *c)
{
	ferry_server_status *st;
	int ret = ferry_server_status_get(c, &st);
	if (ret)
		return ret;
	if (ferryctl__json) {
		printf("{\"version\":");
		ferryctl__jstr(st->version);
		if (!strcmp(st->transport, "local")) {
			printf(",\"uptime_s\":%.3f,\"event_loop\":", (double)st->uptime_ns / 1e9);
			ferryctl__jstr(st->event_loop);
			printf(",\"wait\":\"%s\",\"sessions\":%d,\"max_sessions\":%d,\"gpus\":%d,"
			       "\"cpu_s\":%.3f", ferryctl__wait_name(st->wait_policy), st->sessions,
			       st->max_sessions, st->gpus, (double)st->cpu_ns / 1e9);
		} else {
			printf(",\"server\":");
			ferryctl__jstr(st->name);
			printf(",\"address\":");
			ferryctl__jstr(st->address);
			printf(",\"extensions\":[");
			for (int i = 0; i < st->nextensions; i++) {
				printf("%s", i ? "," : "");
				ferryctl__jstr(st->extensions[i]);
			}
			printf("]");
		}
		printf(",\"models\":");
	} else if (!strcmp(st->transport, "local")) {
		printf("%s %s, up %.1f s, event loop %s, wait %s, CPU %.2f s, GPUs %d\n",
		       st->name, st->version, (double)st->uptime_ns / 1e9, st->event_loop,
		       ferryctl__wait_name(st->wait_policy), (double)st->cpu_ns / 1e9, st->gpus);
		printf("sessions: %d of %d\n\n", st->sessions, st->max_sessions);
	} else {
		printf("%s %s at %s over gRPC\n", st->name, st->version, st->address);
		printf("extensions:");
		for (int i = 0; i < st->nextensions; i++)
			printf(" %s", st->extensions[i]);
		printf("\n\n");
	}
	bool local = !strcmp(st->transport, "local");
	ferry_server_status_free(st);
	if ((ret = ferryctl__models(c)))
		return ret;
	if (local) {
		if (ferryctl__json)
			printf(",\"session_list\":");
		if ((ret = ferryctl__sessions(c, true)))
			return ret;
	}
	if (ferryctl__json)
		printf("}");
	return 0;
}

/* ---- stats ---- */

static double ferryctl__us_per(uint64_t ns, uint64_t n)
{
	return n ? (double)ns / (double)n / 1e3 : 0.0;
}

static void ferryctl__stats_header(void)
{
	printf("%-24s %-8s %10s %8s %10s %10s %10s %10s %10s %10s  %s\n", "MODEL",
	       "VERSION", "SUCCESS", "FAILURE", "INFER", "EXECS", "QUEUE us",
	       "INPUT us", "INFER us", "OUTPUT us", "BATCHES size:count");
}

static void ferryctl__stat(void *arg, const ferry_model_stats *s)
{
	ferryctl__list_item(arg);
	if (ferryctl__json) {
		printf("{\"name\":");
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
		for (int k = 1, n = 0; k <= 64; k++)
			if (s->batch_executions[k])
				printf("%s\"%d\":%llu", n++ ? "," : "", k,
				       (unsigned long long)s->batch_executions[k]);
		printf("}}");
		return;
	}
	/* Times per request (queue) and per execution (compute). */
	printf("%-24s %-8lld %10llu %8llu %10llu %10llu %10.1f %10.1f %10.1f %10.1f  ",
	       s->name, (long long)s->version, (unsigned long long)s->success,
	       (unsigned long long)s->failure, (unsigned long long)s->inference_count,
	       (unsigned long long)s->execution_count,
	       ferryctl__us_per(s->queue_ns, s->success + s->failure),
	       ferryctl__us_per(s->compute_input_ns, s->execution_count),
	       ferryctl__us_per(s->compute_infer_ns, s->execution_count),
	       ferryctl__us_per(s->compute_output_ns, s->execution_count));
	int n = 0;
	for (int k = 1; k <= 64; k++) {
		if (!s->batch_executions[k])
			continue;
		if (n++ < 8)
			printf("%s%d:%llu", n > 1 ? " " : "", k,
			       (unsigned long long)s->batch_executions[k]);
	}
	printf("%s\n", n > 8 ? " ..." : "");
}

static int ferryctl__stats(ferry_client *c, const char *model)
{
	struct ferryctl__list l = { ferryctl__stats_header, true, 0 };
	/* Nothing on standard output before the answer: an unknown model
	 * prints only the error. */
	fflush(stdout);
	int ret = ferry_model_statistics(c, model, FERRY_LATEST, ferryctl__stat, &l);
	if (ret < 0)
		return ret;
	ferryctl__list_end(&l);
	return 0;
}

/* ---- load, reload, unload ---- */

static int ferryctl__admin(ferry_client *c, const char *what, const char *model)
{
	/* load and reload are the same request: a model that serves is
	 * replaced once its successor has loaded. */
	int ret = !strcmp(what, "unload") ? ferry_model_unload(c, model)
					  : ferry_model_load(c, model);
	if (ret)
		return ret;
	if (ferryctl__json) {
		printf("{\"model\":");
		ferryctl__jstr(model);
		printf(",\"%s\":true}", what);
	} else {
		printf("%s: %sed\n", model, what);
	}
	return 0;
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
"--server, a remote ferryd (or any KServe v2 server) over gRPC: status,\n"
"models, stats, load, reload and unload (sessions are local only).\n"
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
	const char *spath = NULL, *server = NULL;
	ferry_client *c;
	int o, ret;

	while ((o = getopt_long(argc, argv, "s:jhV", lo, NULL)) != -1) {
		switch (o) {
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
	if (admin && !arg) {
		fprintf(stderr, "ferryctl: %s needs a model name\n", cmd);
		return EX_USAGE;
	}
	if (server && spath) {
		fprintf(stderr, "ferryctl: --socket and --server name two brokers; give one\n");
		return EX_USAGE;
	}
	if (server && strncmp(server, "grpc://", 7) && strncmp(server, "grpcs://", 8)) {
		static char url[512];
		snprintf(url, sizeof(url), "grpc://%s", server);
		server = url;
	}
	ferryctl__remote = server != NULL;
	ret = ferry_connect_admin(&c, server ? server : spath);
	if (ret) {
		fprintf(stderr, "ferryctl: %s\n", ferry_last_error());
		if (!server)
			fprintf(stderr, "ferryctl: point ferryctl at a broker with --socket PATH "
				"(or $FERRY_SOCKET), or at a remote one with --server "
				"grpc://HOST:PORT\n");
		return EX_NOBROKER;
	}
	if (!strcmp(cmd, "status"))
		ret = ferryctl__status(c);
	else if (!strcmp(cmd, "models"))
		ret = ferryctl__models(c);
	else if (!strcmp(cmd, "sessions"))
		ret = ferryctl__sessions(c, false);
	else if (!strcmp(cmd, "stats"))
		ret = ferryctl__stats(c, arg);
	else
		ret = ferryctl__admin(c, cmd, arg);
	if (ret == 0 && ferryctl__json)
		printf("\n");
	int ex = EX_OK;
	if (ret == FERRY_ENOTSUP && !strcmp(cmd, "sessions")) {
		fprintf(stderr, "ferryctl: %s\n", ferry_last_error());
		ex = EX_USAGE;
	} else if (ret) {
		fflush(stdout);
		ex = ferryctl__fail(ret);
	}
	ferry_close(c);
	return ex;
}
