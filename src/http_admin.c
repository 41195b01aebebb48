/*
 * http_admin.c - what an operator scrapes, on listeners with admin="true":
 *
 *	GET /metrics		Prometheus text format (version 0.0.4)
 *	GET /health		liveness: 200 while the loop runs
 *	GET /health/ready	readiness: 200 when PostgreSQL answers a query
 *				within HEALTH_DB_MS, 503 otherwise
 */
#include "http_admin.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "component.h"
#include "db.h"
#include "histogram.h"
#include "http.h"
#include "module.h"
#include "router.h"
#include "server.h"
#include "s2s.h"
#include "session.h"
#include "stanza_id.h"
#include "stream.h"

#define HEALTH_DB_MS 2000
#define TEXT "text/plain; charset=utf-8"

static bool get_only(struct http_request *r)
{
	if (!strcmp(http_method(r), "GET") || !strcmp(http_method(r), "HEAD"))
		return true;
	http_add_header(r, "Allow", "GET, HEAD");
	http_respond(r, 405, TEXT, "GET or HEAD\n", 12);
	return false;
}

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct evbuffer *b, const char *name, const char *help,
		      const struct histogram *h)
{
	unsigned long long cum = 0;

	metric(b, name, "histogram", help);
	for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
		cum += h->counts[i];
		evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, histogram_bounds[i],
				    cum);
	}
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n",
			    name, h->count, name, h->sum, name, h->count);
}

/* ---- what modules add ---- */

struct metrics_src {
	struct module *m;
	metrics_fn fn;
	struct metrics_src *next;
};

static struct metrics_src *sources;

#define FAMILIES_MAX 128	/* distinct names modules add in one scrape */

struct metrics {
	struct evbuffer *b;
	const char *seen[FAMILIES_MAX];
	unsigned nseen;
};

int module_metrics(struct module *m, metrics_fn fn)
{
	struct metrics_src *s = calloc(1, sizeof(*s)), **pp = &sources;

	if (!s)
		return -1;
	s->m = m;
	s->fn = fn;
	while (*pp)
		pp = &(*pp)->next;
	*pp = s;
	return 0;
}

void metrics_remove(struct module *m)
{
	for (struct metrics_src **pp = &sources; *pp;) {
		struct metrics_src *s = *pp;

		if (s->m == m) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

void http_admin_shutdown(void)
{
	while (sources) {
		struct metrics_src *s = sources;

		sources = s->next;
		free(s);
	}
}

static bool name_ok(const char *n)
{
	if (!n || !*n || strlen(n) > 100)
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
			return false;
	return true;
}

void metrics_sample(struct metrics *out, const struct module *m, const char *name,
		    const char *type, const char *help, double value)
{
	unsigned i;

	if (!name_ok(name) || (strcmp(type, "counter") && strcmp(type, "gauge")))
		return;	/* a module's mistake must not break the whole scrape */
	for (i = 0; i < out->nseen && strcmp(out->seen[i], name); i++)
		;
	if (i == out->nseen) {
		if (out->nseen == FAMILIES_MAX)
			return;
		out->seen[out->nseen++] = name;
		metric(out->b, name, type, help);
	}
	/* host names are domain names: no quote or backslash to escape */
	evbuffer_add_printf(out->b, "%s{host=\"%s\"} %.17g\n", name, module_host(m), value);
}

/* Component domains are prepared domain names: no quote or backslash. */
static void component_up(const struct component_info *ci, void *arg)
{
	evbuffer_add_printf(arg, "parley_component_up{domain=\"%s\"} %d\n", ci->domain,
			    ci->connected);
}

static void component_stanzas(const struct component_info *ci, void *arg)
{
	evbuffer_add_printf(arg, "parley_component_stanzas_total{domain=\"%s\",direction="
			    "\"in\"} %llu\nparley_component_stanzas_total{domain=\"%s\","
			    "direction=\"out\"} %llu\n", ci->domain, ci->stanzas_in, ci->domain,
			    ci->stanzas_out);
}

static void component_bounced(const struct component_info *ci, void *arg)
{
	evbuffer_add_printf(arg, "parley_component_bounced_total{domain=\"%s\"} %llu\n",
			    ci->domain, ci->bounced);
}

static void metrics(struct http_request *r, void *arg)
{
	const struct router_stats *rs = router_stats();
	struct evbuffer *b = evbuffer_new();
	struct rusage ru;
	long rss = server_rss_kb();
	size_t len;

	(void)arg;
	if (!get_only(r))
		return;
	if (!b) {
		http_respond(r, 500, TEXT, "out of memory\n", 14);
		return;
	}
	getrusage(RUSAGE_SELF, &ru);
	metric(b, "parley_connections_open", "gauge", "Connections open, by kind.");
	evbuffer_add_printf(b, "parley_connections_open{kind=\"c2s\"} %u\n"
			    "parley_connections_open{kind=\"http\"} %u\n"
			    "parley_connections_open{kind=\"component\"} %u\n", stream_stats.open,
			    http_stats.open, component_streams_open());
	metric(b, "parley_connections_total", "counter", "Client streams accepted.");
	evbuffer_add_printf(b, "parley_connections_total{kind=\"c2s\"} %llu\n",
			    stream_stats.connections);
	metric(b, "parley_client_streams_open", "gauge", "Client streams open, by transport.");
	for (int i = 0; i < TRANSPORTS; i++)
		evbuffer_add_printf(b, "parley_client_streams_open{transport=\"%s\"} %u\n",
				    stream_transport_names[i], stream_stats.open_by[i]);
	metric(b, "parley_client_streams_total", "counter", "Client streams accepted, by "
	       "transport.");
	for (int i = 0; i < TRANSPORTS; i++)
		evbuffer_add_printf(b, "parley_client_streams_total{transport=\"%s\"} %llu\n",
				    stream_transport_names[i], stream_stats.connections_by[i]);
	{
		const struct s2s_stats *x = s2s_stats();

		metric(b, "parley_s2s_streams", "gauge", "Server-to-server streams open.");
		evbuffer_add_printf(b, "parley_s2s_streams{direction=\"in\"} %u\n"
				    "parley_s2s_streams{direction=\"out\"} %u\n", x->streams_in,
				    x->streams_out);
		metric(b, "parley_s2s_queued", "gauge", "Stanzas waiting for a server-to-server "
		       "stream.");
		evbuffer_add_printf(b, "parley_s2s_queued %zu\n", x->queued);
		metric(b, "parley_s2s_routes", "gauge", "Remote domains with a stream, a queue "
		       "or a verification (per local domain).");
		evbuffer_add_printf(b, "parley_s2s_routes %zu\n", x->routes);
		metric(b, "parley_s2s_stanzas_total", "counter", "Stanzas over server-to-server "
		       "streams.");
		evbuffer_add_printf(b, "parley_s2s_stanzas_total{direction=\"in\"} %llu\n"
				    "parley_s2s_stanzas_total{direction=\"out\"} %llu\n",
				    x->stanzas_in, x->stanzas_out);
		metric(b, "parley_s2s_bounced_total", "counter", "Stanzas for remote domains "
		       "answered with an error.");
		evbuffer_add_printf(b, "parley_s2s_bounced_total %llu\n", x->bounced);
		metric(b, "parley_s2s_resent_total", "counter", "Stanzas sent again after a "
		       "stream was lost unacknowledged (XEP-0198).");
		evbuffer_add_printf(b, "parley_s2s_resent_total %llu\n", x->resent);
		metric(b, "parley_s2s_auth_failures_total", "counter", "Server-to-server "
		       "authentications that failed.");
		evbuffer_add_printf(b, "parley_s2s_auth_failures_total %llu\n", x->auth_failures);
	}
	metric(b, "parley_sessions", "gauge", "Bound client sessions (resources).");
	evbuffer_add_printf(b, "parley_sessions %zu\n", sm_count());
	metric(b, "parley_streams_authenticated", "gauge", "Client streams past SASL.");
	evbuffer_add_printf(b, "parley_streams_authenticated %u\n", stream_stats.authenticated);
	metric(b, "parley_stanzas_total", "counter", "Stanzas read from and written to "
	       "client streams.");
	evbuffer_add_printf(b, "parley_stanzas_total{direction=\"in\"} %llu\n"
			    "parley_stanzas_total{direction=\"out\"} %llu\n",
			    stream_stats.stanzas_in, stream_stats.stanzas_out);
	metric(b, "parley_routed_total", "counter", "Stanzas routed.");
	evbuffer_add_printf(b, "parley_routed_total %llu\n", rs->routed);
	metric(b, "parley_routed_by_kind_total", "counter", "Stanzas routed, by kind.");
	evbuffer_add_printf(b, "parley_routed_by_kind_total{kind=\"message\"} %llu\n"
			    "parley_routed_by_kind_total{kind=\"presence\"} %llu\n"
			    "parley_routed_by_kind_total{kind=\"iq\"} %llu\n", rs->messages,
			    rs->presences, rs->iqs);
	histogram(b, "parley_routing_seconds", "Time to route a stanza (local delivery and "
		  "the handlers it runs).", &rs->latency);
	histogram(b, "parley_db_query_seconds", "From a query's submission to its answer.",
		  &db_latency);
	metric(b, "parley_routing_errors_total", "counter", "Stanzas answered with an error.");
	evbuffer_add_printf(b, "parley_routing_errors_total %llu\n", rs->errors);
	metric(b, "parley_duplicates_dropped_total", "counter", "Messages sent again with "
	       "the same origin-id, dropped.");
	evbuffer_add_printf(b, "parley_duplicates_dropped_total %llu\n", stanza_id_duplicates());
	metric(b, "parley_auth_failures_total", "counter", "Failed authentications.");
	evbuffer_add_printf(b, "parley_auth_failures_total %llu\n", stream_stats.auth_failures);
	metric(b, "parley_components_connected", "gauge", "External components (XEP-0114) "
	       "connected and authenticated.");
	evbuffer_add_printf(b, "parley_components_connected %u\n", components_connected());
	metric(b, "parley_component_up", "gauge", "Whether each configured component is "
	       "connected.");
	component_foreach(component_up, b);
	metric(b, "parley_component_stanzas_total", "counter", "Stanzas from and to each "
	       "component.");
	component_foreach(component_stanzas, b);
	metric(b, "parley_component_bounced_total", "counter", "Stanzas to a component "
	       "answered with an error because it was not connected.");
	component_foreach(component_bounced, b);
	metric(b, "parley_db_connections", "gauge", "PostgreSQL connections up.");
	evbuffer_add_printf(b, "parley_db_connections %u\n", db_connected(server.db));
	metric(b, "parley_db_pending", "gauge", "Queries waiting or running.");
	evbuffer_add_printf(b, "parley_db_pending %u\n", db_pending(server.db));
	metric(b, "parley_http_requests_total", "counter", "HTTP requests answered, by "
	       "status class.");
	for (int c = 1; c <= 5; c++)
		evbuffer_add_printf(b, "parley_http_requests_total{code=\"%dxx\"} %llu\n", c,
				    http_stats.by_class[c]);
	metric(b, "process_cpu_seconds_total", "counter", "User and system CPU time.");
	evbuffer_add_printf(b, "process_cpu_seconds_total %.3f\n",
			    ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
			    ru.ru_stime.tv_usec / 1e6);
	metric(b, "process_resident_memory_bytes", "gauge", "Resident memory.");
	evbuffer_add_printf(b, "process_resident_memory_bytes %lld\n",
			    rss < 0 ? 0LL : (long long)rss * 1024);
	metric(b, "process_start_time_seconds", "gauge", "Start time, seconds since the "
	       "epoch.");
	evbuffer_add_printf(b, "process_start_time_seconds %lld\n", (long long)server.started);
	{
		struct metrics out = { .b = b };

		for (const struct metrics_src *src = sources; src; src = src->next)
			src->fn(src->m, &out);
	}
	len = evbuffer_get_length(b);
	http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8",
		     evbuffer_pullup(b, (ev_ssize_t)len), len);
	evbuffer_free(b);
}

static void live(struct http_request *r, void *arg)
{
	(void)arg;
	if (get_only(r))
		http_respond(r, 200, TEXT, "ok\n", 3);
}

/* A readiness check in flight. The query always answers, if only when the
 * pool ends (db_free fails what waits), so it frees the check; the timer may
 * answer the client first. */
struct check {
	struct http_request *r;		/* NULL once answered */
	struct event *timer;
};

static void check_respond(struct check *c, bool ok, const char *why)
{
	char body[256];
	int n;

	if (!c->r)
		return;
	if (ok) {
		http_respond(c->r, 200, TEXT, "ready\n", 6);
	} else {
		n = snprintf(body, sizeof(body), "not ready: %s\n", why);
		http_respond(c->r, 503, TEXT, body, n > 0 ? (size_t)n : 0);
	}
	c->r = NULL;
}

static void on_check_db(void *arg, const PGresult *res, const char *err)
{
	struct check *c = arg;
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;

	check_respond(c, ok, ok ? "" : err ? err : res ? PQresultErrorMessage(res) : "?");
	event_free(c->timer);
	free(c);
}

static void on_check_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	check_respond(arg, false, "PostgreSQL did not answer within 2 s");
}

static void ready(struct http_request *r, void *arg)
{
	struct timeval tv = { HEALTH_DB_MS / 1000, (HEALTH_DB_MS % 1000) * 1000 };
	struct check *c;

	(void)arg;
	if (!get_only(r))
		return;
	if (!server.db || db_connected(server.db) == 0) {
		http_respond(r, 503, TEXT, "not ready: no PostgreSQL connection\n", 36);
		return;
	}
	if (!(c = calloc(1, sizeof(*c))) ||
	    !(c->timer = evtimer_new(server.base, on_check_timeout, c))) {
		free(c);
		http_respond(r, 500, TEXT, "out of memory\n", 14);
		return;
	}
	c->r = r;
	evtimer_add(c->timer, &tv);
	/* From here on_check_db owns c, even if it runs before db_query returns. */
	if (db_query(server.db, 0, "SELECT 1", 0, NULL, on_check_db, c) < 0) {
		check_respond(c, false, "the database queue refused the check");
		event_free(c->timer);
		free(c);
	}
}

int http_admin_init(void)
{
	if (http_route("/metrics", true, metrics, NULL) < 0 ||
	    http_route("/health", true, live, NULL) < 0 ||
	    http_route("/health/ready", true, ready, NULL) < 0)
		return -1;
	return 0;
}
