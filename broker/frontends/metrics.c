/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "broker/sched/be_host.h"
#include "broker/core/broker.h"
#include "broker/core/log.h"
#include "broker/frontends/metrics.h"
#include "broker/gpu/gpu.h"
#include "broker/models/models.h"
#include "broker/models/snapshot.h"
#include "broker/sched/sched.h"

struct metrics_gauges metrics_gauges;
uint64_t (*metrics_grpc_inflight)(void);

static struct MHD_Daemon *metrics__d;

/* A growing text buffer for one scrape. */
struct metrics_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void metrics__printf(struct metrics_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void metrics__printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 4096;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* Label values come from config files: escape \, " and newlines. */
static const char *metrics__esc(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *s && o + 3 < outlen; s++) {
		if (*s == '\\' || *s == '"') {
			out[o++] = '\\';
			out[o++] = *s;
		} else if (*s == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
	return out;
}

struct metrics_metric {
	const char *name, *type, *help;
};

/* Triton's per-model metrics, in the order written. */
static const struct metrics_metric metrics__model[] = {
	{ "nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes" },
	{ "nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes" },
	{ "nv_inference_count", "counter", "Number of inferences performed (a batch of n counts n)" },
	{ "nv_inference_exec_count", "counter", "Number of model executions performed (a batch counts once)" },
	{ "nv_inference_request_duration_us", "counter", "Cumulative inference request duration in microseconds (queue and compute)" },
	{ "nv_inference_queue_duration_us", "counter", "Cumulative inference queuing duration in microseconds" },
	{ "nv_inference_compute_input_duration_us", "counter", "Cumulative compute input duration in microseconds" },
	{ "nv_inference_compute_infer_duration_us", "counter", "Cumulative compute inference duration in microseconds" },
	{ "nv_inference_compute_output_duration_us", "counter", "Cumulative compute output duration in microseconds" },
};

static uint64_t metrics__value(int k, const struct sched_stats *s)
{
	switch (k) {
	case 0: return s->success;
	case 1: return s->failure;
	case 2: return s->inference_count;
	case 3: return s->execution_count;
	case 4: return (s->queue_ns + s->compute_input_ns + s->compute_infer_ns +
			s->compute_output_ns) / 1000;
	case 5: return s->queue_ns / 1000;
	case 6: return s->compute_input_ns / 1000;
	case 7: return s->compute_infer_ns / 1000;
	default: return s->compute_output_ns / 1000;
	}
}

static void metrics__models(struct metrics_buf *b)
{
	enum { K = sizeof(metrics__model) / sizeof(metrics__model[0]) };
	char name[256];
	struct snapshot s;

	if (snapshot_take(&s, NULL, SNAPSHOT_ALL_VERSIONS, SNAPSHOT_STATS)) {
		b->oom = true;
		return;
	}
	/* Versions with a scheduler model (serving or draining). */
	for (int k = 0; k < K; k++) {
		metrics__printf(b, "# HELP %s %s\n# TYPE %s %s\n", metrics__model[k].name,
			   metrics__model[k].help, metrics__model[k].name, metrics__model[k].type);
		for (size_t j = 0; j < s.n; j++) {
			const struct snapshot_model *m = &s.models[j];
			if (!m->running || m->version < 0)
				continue;
			metrics__printf(b, "%s{model=\"%s\",version=\"%lld\"} %llu\n", metrics__model[k].name,
				   metrics__esc(m->name, name, sizeof(name)), (long long)m->version,
				   (unsigned long long)metrics__value(k, &m->stats));
		}
	}
	metrics__printf(b, "# HELP ferry_batch_executions_total Model executions by batch size\n"
		      "# TYPE ferry_batch_executions_total counter\n");
	for (size_t j = 0; j < s.n; j++) {
		const struct snapshot_model *m = &s.models[j];
		if (!m->running || m->version < 0)
			continue;
		for (int bs = 1; bs < 65; bs++)
			if (m->stats.batch_execs[bs])
				metrics__printf(b, "ferry_batch_executions_total{model=\"%s\",version=\"%lld\",batch_size=\"%d\"} %llu\n",
					   metrics__esc(m->name, name, sizeof(name)),
					   (long long)m->version, bs,
					   (unsigned long long)m->stats.batch_execs[bs]);
	}
	snapshot_free(&s);
}

static void metrics__gauge(struct metrics_buf *b, const char *name, const char *type,
		      const char *help, const char *labels, double v)
{
	metrics__printf(b, "# HELP %s %s\n# TYPE %s %s\n%s%s %.17g\n", name, help, name, type, name,
		   labels, v);
}

static void metrics__ferry(struct metrics_buf *b)
{
	struct timespec cpu;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	metrics__gauge(b, "ferry_sessions", "gauge", "Client sessions open over shared memory", "",
		  atomic_load(&metrics_gauges.sessions));
	metrics__printf(b, "# HELP ferry_requests_inflight Requests accepted and not yet completed, by transport\n"
		      "# TYPE ferry_requests_inflight gauge\n"
		      "ferry_requests_inflight{transport=\"shm\"} %llu\n",
		   (unsigned long long)atomic_load(&metrics_gauges.shm_inflight));
	if (metrics_grpc_inflight)
		metrics__printf(b, "ferry_requests_inflight{transport=\"grpc\"} %llu\n",
			   (unsigned long long)metrics_grpc_inflight());
	metrics__printf(b, "# HELP ferry_ring_entries Entries waiting in the session rings\n"
		      "# TYPE ferry_ring_entries gauge\n"
		      "ferry_ring_entries{ring=\"sq\"} %llu\nferry_ring_entries{ring=\"cq\"} %llu\n",
		   (unsigned long long)atomic_load(&metrics_gauges.sq_pending),
		   (unsigned long long)atomic_load(&metrics_gauges.cq_pending));
	metrics__printf(b, "# HELP ferry_doorbell_wakeups_total Eventfd wake-ups made (client: broker woke a sleeping client; broker: the loop thread slept and was woken)\n"
		      "# TYPE ferry_doorbell_wakeups_total counter\n"
		      "ferry_doorbell_wakeups_total{side=\"client\"} %llu\n"
		      "ferry_doorbell_wakeups_total{side=\"broker\"} %llu\n",
		   (unsigned long long)(atomic_load(&metrics_gauges.client_wakeups) +
					atomic_load(&metrics_gauges.closed_wakeups)),
		   (unsigned long long)atomic_load(&metrics_gauges.loop_sleeps));
	metrics__gauge(b, "ferry_broker_cpu_seconds_total", "counter",
		  "CPU time used by ferryd, all threads", "",
		  (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
	int gpus = gpu_device_count();
	metrics__gauge(b, "ferry_gpus", "gauge", "CUDA devices ferryd sees", "", gpus > 0 ? gpus : 0);
	if (gpus > 0)
		metrics__printf(b, "# HELP ferry_gpu_memory_used_bytes Device memory in use (all processes)\n"
			      "# TYPE ferry_gpu_memory_used_bytes gauge\n");
	for (int d = 0; d < gpus; d++) {
		size_t used, total;
		if (gpu_memory(d, &used, &total) == 0)
			metrics__printf(b, "ferry_gpu_memory_used_bytes{gpu=\"%d\"} %zu\n"
				      "ferry_gpu_memory_total_bytes{gpu=\"%d\"} %zu\n",
				   d, used, d, total);
	}
}

static enum MHD_Result metrics__reply(struct MHD_Connection *conn, unsigned code,
				 const char *type, char *body, size_t len, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result metrics__handler(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version,
				   const char *upload_data, size_t *upload_size, void **state)
{
	static char empty[] = "";
	static char notfound[] = "not found\n";
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return metrics__reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", empty, 0, false);
	if (!strcmp(url, "/v2/health/live"))
		return metrics__reply(conn, MHD_HTTP_OK, "text/plain", empty, 0, false);
	if (!strcmp(url, "/v2/health/ready"))
		/* KServe: 200 when ready, 400 otherwise, empty body. */
		return metrics__reply(conn, atomic_load(&metrics_gauges.ready) ? MHD_HTTP_OK : MHD_HTTP_BAD_REQUEST,
				 "text/plain", empty, 0, false);
	if (strcmp(url, "/metrics"))
		return metrics__reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", notfound,
				 sizeof(notfound) - 1, false);
	struct metrics_buf b = { 0 };
	b.cap = 16384;
	b.p = malloc(b.cap);
	if (!b.p)
		return MHD_NO;
	metrics__models(&b);
	metrics__ferry(&b);
	if (b.oom) {
		free(b.p);
		return MHD_NO;
	}
	return metrics__reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", b.p, b.len, true);
}

int metrics_start(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (port == 0)
		return 0;
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		log_error("--metrics-address %s: not an IPv4 address", addr);
		return -EINVAL;
	}
	metrics__d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
				 metrics__handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
				 MHD_OPTION_CONNECTION_LIMIT, 64U,
				 MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
	if (!metrics__d)
		return -EADDRINUSE;
	log_info("metrics: http://%s:%d/metrics, health /v2/health/live and /ready", addr, port);
	return 0;
}

void metrics_stop(void)
{
	if (metrics__d) {
		MHD_stop_daemon(metrics__d);
		metrics__d = NULL;
	}
}

void metrics_snapshot(struct broker *b)
{
	uint64_t sq = 0, cq = 0, wake = 0;
	for (struct session *s = b->sessions; s; s = s->next) {
		int n = fshm_ring_count(&s->sq);
		if (n > 0)
			sq += (uint64_t)n;
		pthread_mutex_lock(&s->lock);
		n = fshm_ring_count(&s->cq);
		if (n >= 0)
			cq += s->seg.cq.entries - (uint64_t)n;
		pthread_mutex_unlock(&s->lock);
		wake += atomic_load_explicit(&s->db_client.rings, memory_order_relaxed);
	}
	atomic_store(&metrics_gauges.sessions, b->nsessions);
	atomic_store(&metrics_gauges.sq_pending, sq);
	atomic_store(&metrics_gauges.cq_pending, cq);
	atomic_store(&metrics_gauges.client_wakeups, wake);
}
