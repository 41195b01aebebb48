/*
 * s2s.c - federation's routes: one per (local domain, remote domain), with the
 * queue that waits for its outgoing stream, the back-off between attempts, and
 * the policy (<s2s enabled allow deny secure-auth insecure-domains>).
 *
 * Nothing is dropped on the floor: a stanza either goes out on an
 * authenticated stream, waits (at most <s2s queue> per route, at most
 * <s2s connect-timeout> seconds), or goes back to its sender with
 * remote-server-not-found (the domain cannot be reached: DNS, certificates,
 * dialback said no), remote-server-timeout (it did not answer in time) or
 * resource-constraint (the queue is full). What a stream sent and the peer did
 * not acknowledge (XEP-0198) comes back here and goes out again first.
 */
#include "s2s_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "db.h"
#include "dialback.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "stanza.h"
#include "util.h"
#include "vhost.h"

struct s2s_stats s2s_counters;
const char *const s2s_auth_names[] = {
	[S2S_AUTH_NONE] = "none", [S2S_AUTH_EXTERNAL] = "sasl-external",
	[S2S_AUTH_DIALBACK] = "dialback", [S2S_AUTH_CERT] = "certificate",
};

static unsigned char secret[DIALBACK_SECRET_LEN];
static bool have_secret;
/* Routes by (local, remote): chained buckets, a power of two. */
#define ROUTE_BUCKETS 1024
static struct s2s_route *buckets[ROUTE_BUCKETS];
static size_t nroutes;

#define FOREACH_ROUTE(r) \
	for (size_t b_ = 0; b_ < ROUTE_BUCKETS; b_++) \
		for (struct s2s_route *r = buckets[b_]; r; r = r->next)

static void route_timer(evutil_socket_t fd, short what, void *arg);

const struct s2s_stats *s2s_stats(void)
{
	s2s_counters.queued = 0;
	s2s_counters.routes = nroutes;
	FOREACH_ROUTE(r)
		s2s_counters.queued += r->queue.len;
	return &s2s_counters;
}

int s2s_load_secret(PGconn *conn, char *err, size_t errlen)
{
	if (db_shared_secret(conn, "dialback_secret", secret, sizeof(secret), err, errlen) < 0)
		return -1;
	have_secret = true;
	return 0;
}

const unsigned char *s2s_secret(size_t *len)
{
	*len = sizeof(secret);
	return have_secret ? secret : NULL;
}

bool s2s_is_local(const char *domain)
{
	return vhost_find(domain) || service_find(domain);
}

bool s2s_needs_cert(const char *domain)
{
	const struct config_s2s *p = &server.cfg->s2s;

	return p->secure_auth && !config_list_has(p->insecure_domains, domain);
}

/* ---- stanzas going back ---- */

void s2s_bounce(struct xml_node *st, const char *condition, const char *text)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *r = NULL;

	if (!(type && strcmp(type, "error") == 0) &&
	    !(stanza_kind(st) == STANZA_IQ && type && strcmp(type, "result") == 0) &&
	    !(stanza_kind(st) == STANZA_PRESENCE && type && strcmp(type, "unavailable") == 0))
		r = stanza_error_reply(st, NULL, condition, text);
	xml_unref(st);
	if (r) {
		s2s_counters.bounced++;
		router_route(r);
	}
}

void s2s_queue_push(struct s2s_queue *q, struct xml_node *st, time_t since)
{
	struct s2s_item *it = malloc(sizeof(*it));

	if (!it) {
		s2s_bounce(st, "resource-constraint", "the server is out of memory");
		return;
	}
	it->st = st;
	it->since = since;
	it->resends = 0;
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->len++;
}

static struct s2s_item *queue_take(struct s2s_queue *q)
{
	struct s2s_item *it = q->head;

	if (!it)
		return NULL;
	q->head = it->next;
	if (!q->head)
		q->tail = NULL;
	q->len--;
	return it;
}

struct xml_node *s2s_queue_pop(struct s2s_queue *q)
{
	struct s2s_item *it = queue_take(q);
	struct xml_node *st;

	if (!it)
		return NULL;
	st = it->st;
	free(it);
	return st;
}

void s2s_queue_bounce(struct s2s_queue *q, const char *condition, const char *text)
{
	struct xml_node *st;

	/* Bouncing routes errors, which may reach s2s again, but only as errors,
	 * which are never queued here: the loop ends. */
	while ((st = s2s_queue_pop(q)))
		s2s_bounce(st, condition, text);
}

/* ---- routes ---- */

static struct s2s_route **bucket(const char *local, const char *remote)
{
	uint32_t h = util_hash32(local, strlen(local)) ^
		     (util_hash32(remote, strlen(remote)) * 16777619u);

	return &buckets[h & (ROUTE_BUCKETS - 1)];
}

struct s2s_route *s2s_route_find(const char *local, const char *remote, bool create)
{
	struct s2s_route **b = bucket(local, remote), *r;

	for (r = *b; r; r = r->next)
		if (strcmp(r->local, local) == 0 && strcmp(r->remote, remote) == 0)
			return r;
	if (!create)
		return NULL;
	if (nroutes >= S2S_ROUTES_MAX) {
		log_warn("s2s", "%s -> %s: no route: %u remote domains are known already "
			 "(S2S_ROUTES_MAX)", local, remote, S2S_ROUTES_MAX);
		return NULL;
	}
	if (!(r = calloc(1, sizeof(*r))))
		return NULL;
	snprintf(r->local, sizeof(r->local), "%s", local);
	snprintf(r->remote, sizeof(r->remote), "%s", remote);
	if (!(r->timer = evtimer_new(server.base, route_timer, r))) {
		free(r);
		return NULL;
	}
	r->next = *b;
	*b = r;
	nroutes++;
	return r;
}

static void route_free(struct s2s_route *r)
{
	for (struct s2s_route **pp = bucket(r->local, r->remote); *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	nroutes--;
	while (r->queue.head)
		xml_unref(s2s_queue_pop(&r->queue));
	while (r->verifies) {
		struct s2s_verify *v = r->verifies;

		r->verifies = v->next;
		free(v);
	}
	event_free(r->timer);
	free(r);
}

static bool route_unused(const struct s2s_route *r)
{
	return r->state == ROUTE_IDLE && !r->out && !r->queue.head && !r->verifies;
}

static void arm(struct s2s_route *r, time_t at)
{
	time_t now = time(NULL);
	struct timeval tv = { at > now ? at - now : 0, 0 };

	evtimer_add(r->timer, &tv);
}

/* The next moment the route must look at itself: a retry, or the oldest
 * stanza's deadline. */
static void rearm(struct s2s_route *r)
{
	time_t at = 0, t = server.cfg->s2s.connect_timeout;

	if (r->state == ROUTE_WAITING)
		at = r->retry_at;
	if (r->queue.head && r->state != ROUTE_READY && (!at || r->queue.head->since + t < at))
		at = r->queue.head->since + t;
	for (const struct s2s_verify *v = r->verifies; v; v = v->next)
		if (!at || v->since + t < at)
			at = v->since + t;
	if (route_unused(r))
		at = time(NULL);	/* it holds nothing: it goes, from the loop */
	if (at)
		arm(r, at);
	else
		evtimer_del(r->timer);
}

static void connect_now(struct s2s_route *r)
{
	r->state = ROUTE_CONNECTING;
	r->out = s2s_out_start(r);
	if (!r->out) {
		r->state = ROUTE_WAITING;
		r->retry_at = time(NULL) + 1;
		snprintf(r->last_error, sizeof(r->last_error), "out of memory");
		r->last_condition = "remote-server-timeout";
	}
	rearm(r);
}

/* Verifications for incoming streams that waited longer than the connect
 * timeout (all of them with all) are answered invalid: the authoritative
 * server could not be asked. */
static void verifies_fail(struct s2s_route *r, time_t now, bool all)
{
	time_t t = server.cfg->s2s.connect_timeout;

	for (struct s2s_verify **pv = &r->verifies; *pv;) {
		struct s2s_verify *v = *pv;

		if (!all && v->since + t > now) {
			pv = &v->next;
			continue;
		}
		*pv = v->next;
		r->nverifies--;
		s2s_in_verify_result(v->in_serial, r->local, r->remote, v->id, false);
		free(v);
	}
}

/* Stanzas that waited longer than the connect timeout go back. */
static void expire(struct s2s_route *r, time_t now)
{
	unsigned t = server.cfg->s2s.connect_timeout;

	verifies_fail(r, now, false);
	while (r->queue.head && r->queue.head->since + (time_t)t <= now) {
		struct xml_node *st = s2s_queue_pop(&r->queue);
		char text[600];

		snprintf(text, sizeof(text), "%.300s did not answer within %u s%s%s", r->remote, t,
			 r->last_error[0] ? ": " : "", r->last_error);
		s2s_bounce(st, r->last_condition ? r->last_condition : "remote-server-timeout",
			   text);
	}
}

static void route_timer(evutil_socket_t fd, short what, void *arg)
{
	struct s2s_route *r = arg;
	time_t now = time(NULL);

	(void)fd, (void)what;
	if (route_unused(r)) {
		log_debug("s2s", "%s -> %s: route idle, forgotten", r->local, r->remote);
		route_free(r);
		return;
	}
	if (r->state != ROUTE_READY)
		expire(r, now);
	if (r->state == ROUTE_WAITING && now >= r->retry_at &&
	    (r->queue.head || r->verifies)) {
		log_info("s2s", "%s -> %s: trying again (attempt %u)", r->local, r->remote,
			 r->failures + 1);
		connect_now(r);
		return;
	}
	if (r->state == ROUTE_WAITING && !r->queue.head && !r->verifies && now >= r->retry_at)
		r->state = ROUTE_IDLE;
	rearm(r);
}

void s2s_route_ready(struct s2s_route *r)
{
	struct xml_node *st;

	r->state = ROUTE_READY;
	r->ready_at = time(NULL);
	r->failures = 0;
	r->last_error[0] = '\0';
	r->last_condition = NULL;
	evtimer_del(r->timer);
	/* Sending may close the stream (a peer that acknowledges nothing): then
	 * the rest waits for the next one. */
	while (r->out && s2s_out_ready(r->out) && (st = s2s_queue_pop(&r->queue)))
		s2s_out_send(r->out, st);
}

/* What the peer never acknowledged goes out again first, in order; its wait
 * for a stream (connect-timeout) starts now. One that no stream acknowledged
 * S2S_RESEND_MAX times goes back to its sender instead. */
static void requeue(struct s2s_route *r, struct s2s_queue *unacked, time_t now)
{
	struct s2s_queue again = { 0 };
	struct s2s_item *it;

	while ((it = queue_take(unacked))) {
		if (++it->resends > S2S_RESEND_MAX) {
			char text[300];

			snprintf(text, sizeof(text), "%.200s acknowledged none of %u sends",
				 r->remote, S2S_RESEND_MAX);
			s2s_bounce(it->st, "remote-server-timeout", text);
			free(it);
			continue;
		}
		it->since = now;
		it->next = NULL;
		if (again.tail)
			again.tail->next = it;
		else
			again.head = it;
		again.tail = it;
		again.len++;
	}
	if (!again.head)
		return;
	s2s_counters.resent += again.len;
	again.tail->next = r->queue.head;
	if (!r->queue.head)
		r->queue.tail = again.tail;
	r->queue.head = again.head;
	r->queue.len += again.len;
}

void s2s_route_down(struct s2s_route *r, struct s2s_queue *unacked, const char *condition,
		    const char *why, bool definitive, bool was_ready)
{
	unsigned backoff;
	time_t now = time(NULL);

	r->out = NULL;
	if (unacked)
		requeue(r, unacked, now);
	snprintf(r->last_error, sizeof(r->last_error), "%s", why ? why : "the stream ended");
	r->last_condition = condition ? condition : "remote-server-timeout";
	if (server.shutting_down) {
		r->state = ROUTE_IDLE;
		s2s_queue_bounce(&r->queue, "remote-server-timeout", "the server is shutting down");
		return;
	}
	if (definitive) {
		char text[600];

		snprintf(text, sizeof(text), "cannot reach %.200s: %s", r->remote, r->last_error);
		s2s_queue_bounce(&r->queue, r->last_condition, text);
		verifies_fail(r, now, true);
	}
	if (was_ready && !definitive && now - r->ready_at >= S2S_STABLE_SECS) {
		/* A stream that was up a while went down: reconnect at once if
		 * anything waits (the peer restarting, an idle close crossing a new
		 * stanza). One lost soon after it was made is a failed attempt:
		 * back-off, not a loop. */
		r->failures = 0;
		if (r->queue.head || r->verifies) {
			connect_now(r);
			return;
		}
		r->state = ROUTE_IDLE;
		rearm(r);
		return;
	}
	r->failures++;
	backoff = 1u << (r->failures > 10 ? 10 : r->failures - 1);
	if (backoff > server.cfg->s2s.retry_max)
		backoff = server.cfg->s2s.retry_max;
	r->state = ROUTE_WAITING;
	r->retry_at = now + backoff;
	log_info("s2s", "%s -> %s: %s; next attempt in %u s", r->local, r->remote,
		 r->last_error, backoff);
	rearm(r);
}

/* The router's remote-domain handler (router_set_remote). */
static void s2s_route(struct xml_node *st, const struct jid *from, const struct jid *to)
{
	const struct config_s2s *p = &server.cfg->s2s;
	struct s2s_route *r;
	char text[600];
	time_t now = time(NULL);

	if (!s2s_is_local(from->domain)) {
		/* Never a relay: a stanza from elsewhere to elsewhere. */
		log_debug("s2s", "dropped a stanza from %s to %s: neither is ours", from->domain,
			  to->domain);
		xml_unref(st);
		return;
	}
	if (!config_s2s_allowed(p, to->domain)) {
		snprintf(text, sizeof(text), p->enabled ? "this server does not federate with "
			 "%s" : "this server does not federate (%s)", to->domain);
		s2s_bounce(st, "remote-server-not-found", text);
		return;
	}
	if (!(r = s2s_route_find(from->domain, to->domain, true))) {
		s2s_bounce(st, "resource-constraint", "the server has no room for another route");
		return;
	}
	if (r->queue.len >= p->queue) {	/* a ready stream has none waiting */
		snprintf(text, sizeof(text), "%zu stanzas already wait for %s", r->queue.len,
			 to->domain);
		s2s_bounce(st, "resource-constraint", text);
		return;
	}
	if (r->state == ROUTE_READY && r->out) {
		s2s_out_send(r->out, st);	/* or, closing, into the queue */
		return;
	}
	/* Known to be down and not tried again before this stanza's time is up:
	 * it goes back now rather than later. */
	if (r->state == ROUTE_WAITING && r->retry_at >= now + (time_t)p->connect_timeout) {
		snprintf(text, sizeof(text), "cannot reach %.200s: %s", to->domain, r->last_error);
		s2s_bounce(st, r->last_condition ? r->last_condition : "remote-server-not-found",
			   text);
		return;
	}
	s2s_queue_push(&r->queue, st, now);
	if (r->state == ROUTE_IDLE)
		connect_now(r);
	else
		rearm(r);
}

int s2s_verify_request(const char *local, const char *remote, const char *id,
		       const char *key, uint64_t in_serial)
{
	struct s2s_route *r = s2s_route_find(local, remote, true);
	struct s2s_verify *v;

	if (!r)
		return -1;
	if (r->nverifies >= S2S_VERIFIES_MAX || !(v = calloc(1, sizeof(*v)))) {
		rearm(r);	/* a new route, unused: it goes in time */
		return -1;
	}
	snprintf(v->id, sizeof(v->id), "%s", id);
	snprintf(v->key, sizeof(v->key), "%s", key);
	v->in_serial = in_serial;
	v->since = time(NULL);
	v->next = r->verifies;
	r->verifies = v;
	r->nverifies++;
	if (r->out)
		s2s_out_verifies(r->out);
	else if (r->state == ROUTE_IDLE || (r->state == ROUTE_WAITING &&
					    time(NULL) >= r->retry_at))
		connect_now(r);
	else
		rearm(r);	/* its deadline */
	return 0;
}

/* ---- helpers for both directions ---- */

void s2s_ns_to_client(struct xml_node *n)
{
	/* Both names are 13 bytes: renamed in place. */
	if (n->type != XML_ELEMENT)
		return;
	if (n->ns && strcmp(n->ns, NS_SERVER_STREAM) == 0)
		memcpy(n->ns, NS_CLIENT, sizeof(NS_CLIENT));
	for (struct xml_node *c = n->children; c; c = c->next)
		s2s_ns_to_client(c);
}

void s2s_stream_header(char *buf, size_t len, const char *from, const char *to,
		       const char *id, bool version)
{
	snprintf(buf, len, "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER_STREAM
		 "' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='" NS_DIALBACK
		 "' from='%s'%s%s%s%s%s%s%s>", from, to ? " to='" : "", to ? to : "",
		 to ? "'" : "", id ? " id='" : "", id ? id : "", id ? "'" : "",
		 version ? " version='1.0'" : "");
}

/* ---- life ---- */

static int ctl_s2s(struct evbuffer *b, bool json, int argc, char **argv);

int s2s_init(void)
{
	if (!server.cfg->s2s.enabled)
		log_info("s2s", "federation is off (<s2s enabled=\"false\">)");
	router_set_remote(s2s_route);	/* it answers for the policy, too */
	if (ctl_register("s2s", ctl_s2s) < 0)
		return -1;
	return s2s_in_init();
}

void s2s_shutdown(void)
{
	s2s_in_close_all("system-shutdown", "the server is shutting down");
	FOREACH_ROUTE(r) {
		if (r->out)
			s2s_out_close(r->out, "system-shutdown", "the server is shutting down");
		s2s_queue_bounce(&r->queue, "remote-server-timeout", "the server is shutting down");
	}
}

void s2s_free(void)
{
	s2s_in_free_all();
	s2s_out_free_all();
	for (size_t b = 0; b < ROUTE_BUCKETS; b++)
		while (buckets[b])
			route_free(buckets[b]);
}

/* ---- parleyctl ---- */

static void ctl_list_streams(struct evbuffer *b, bool json)
{
	bool first = true;
	size_t waiting = 0;

	if (json)
		evbuffer_add_printf(b, "{\"ok\":true,\"routes\":%zu,\"streams\":[", nroutes);
	else
		evbuffer_add_printf(b, "%-3s %-28s %-28s %-13s %-8s %5s %8s %8s %s\n", "DIR",
				    "LOCAL", "REMOTE", "AUTH", "TLS", "QUEUE", "IN", "OUT",
				    "AGE");
	s2s_out_list(b, json, &first);
	s2s_in_list(b, json, &first);
	if (json) {
		evbuffer_add_printf(b, "],\"waiting\":[");
		first = true;
	}
	FOREACH_ROUTE(r) {
		if (r->state == ROUTE_READY || (r->state == ROUTE_IDLE && !r->queue.len))
			continue;
		if (json) {
			evbuffer_add_printf(b, "%s{\"local\":\"%s\",\"remote\":\"%s\",\"state\":"
					    "\"%s\",\"queue\":%zu,\"failures\":%u}",
					    first ? "" : ",", r->local, r->remote,
					    r->state == ROUTE_CONNECTING ? "connecting" :
					    r->state == ROUTE_WAITING ? "waiting" : "idle",
					    r->queue.len, r->failures);
			first = false;
		} else if (r->state != ROUTE_CONNECTING || !r->out) {
			waiting++;
			evbuffer_add_printf(b, "%-3s %-28s %-28s %-13s %-8s %5zu %8s %8s %s\n",
					    "out", r->local, r->remote,
					    r->state == ROUTE_WAITING ? "(waiting)" : "(idle)",
					    "-", r->queue.len, "-", "-", r->last_error);
		}
	}
	if (json)
		evbuffer_add_printf(b, "]}\n");
	else if (first && !waiting)
		evbuffer_add_printf(b, "(no server-to-server stream, no remote domain waiting)\n");
}

/* parleyctl s2s [list] | s2s close DOMAIN */
static int ctl_s2s(struct evbuffer *b, bool json, int argc, char **argv)
{
	if (argc == 0 || strcmp(argv[0], "list") == 0) {
		ctl_list_streams(b, json);
		return 0;
	}
	if (strcmp(argv[0], "close") == 0 && argc == 2) {
		size_t n = s2s_out_close_domain(argv[1]) + s2s_in_close_domain(argv[1]);

		if (json)
			evbuffer_add_printf(b, "{\"ok\":true,\"closed\":%zu}\n", n);
		else
			evbuffer_add_printf(b, "%zu stream%s closed\n", n, n == 1 ? "" : "s");
		return 0;
	}
	evbuffer_add_printf(b, json ? "{\"ok\":false,\"error\":\"usage: s2s [list] | "
			    "s2s close DOMAIN\"}\n" : "usage: s2s [list] | s2s close DOMAIN\n");
	return -1;
}
