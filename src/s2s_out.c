/*
 * s2s_out.c - the streams Parley opens to other servers (RFC 6120 §3.2, §5,
 * §6; XEP-0368, XEP-0178, XEP-0220, XEP-0198).
 *
 * One stream per route, through these steps: the SRV targets (direct TLS
 * first on a tie) and each target's addresses in turn; the stream header;
 * STARTTLS unless TLS is already up; the peer's certificate checked against
 * the remote domain (required unless the policy says dialback may do);
 * SASL EXTERNAL if offered (our certificate speaks for us), else dialback
 * (our key, which the peer checks with our authoritative server); stream
 * management if offered. Then the route's queue goes out. The same stream
 * carries the <db:verify/> questions incoming streams from that domain asked.
 */
#include "s2s_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base64.h"
#include "config.h"
#include "conn.h"
#include "dialback.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "stanza.h"
#include "tls.h"
#include "xmlstream.h"

enum out_state {
	O_RESOLVING,	/* SRV, then addresses */
	O_CONNECTING,	/* TCP (and direct TLS) */
	O_OPENING,	/* our header sent, waiting for the peer's and its features */
	O_STARTTLS,	/* <starttls/> sent, waiting for <proceed/> */
	O_TLS,		/* the handshake */
	O_SASL,		/* <auth mechanism='EXTERNAL'/> sent */
	O_DIALBACK,	/* <db:result/> sent */
	O_READY,	/* authenticated */
	O_CLOSING,
};
static const char *const state_names[] = {
	"resolving", "connecting", "opening", "starttls", "tls", "sasl", "dialback", "ready",
	"closing",
};

struct s2s_out {
	struct s2s_route *route;
	enum out_state state;
	struct dns_query *q;
	struct dns_target targets[16];
	size_t ntargets, ti;
	struct sockaddr_storage addrs[DNS_ADDRS_MAX];
	size_t naddrs, ai;
	struct conn *conn;
	struct xmlstream *xs;
	struct event *timer;		/* the connect deadline, then idleness */
	struct event *ack_ev;		/* <r/> once per burst of stanzas */
	char id[80];			/* the peer's stream id */
	char why[160];			/* the first reason an attempt failed */
	const char *why_condition;
	bool direct;			/* this target is direct TLS */
	bool restart, paused, feeding, dead;
	bool version;			/* the peer's header says version 1.0 */
	bool external_failed, sasl_ok;
	bool offered_sm, offered_dialback, offered_external, offered_tls;
	bool tls_valid;			/* the peer's certificate is valid for remote */
	bool was_ready;
	bool probed;			/* idle with unacked stanzas: <r/> sent, no <a/> yet */
	bool definitive;		/* the failure is not one a retry fixes */
	enum s2s_auth auth;
	/* XEP-0198 */
	bool sm_on;
	uint32_t acked;
	struct s2s_queue unacked;
	struct s2s_verify *sent;	/* <db:verify/> waiting for the answer */
	time_t started, active;
	unsigned long long stanzas_out, stanzas_in;
	struct s2s_out *prev, *next;
};

static struct s2s_out *outs;
static const struct xmlstream_callbacks out_cbs;

static void try_next(struct s2s_out *o);
static void feed(struct s2s_out *o);
static void fail(struct s2s_out *o, const char *condition, const char *why, bool definitive);
static void note_why(struct s2s_out *o, const char *condition, const char *why);

/* ---- output ---- */

static void check_output(struct s2s_out *o);

static void write_el(struct s2s_out *o, const struct xml_node *n)
{
	if (o->conn && o->state != O_CLOSING) {
		conn_write_xml(o->conn, n, NS_CLIENT);
		check_output(o);
	}
}

static void send_header(struct s2s_out *o)
{
	char buf[S2S_HEADER_MAX];

	s2s_stream_header(buf, sizeof(buf), o->route->local, o->route->remote, NULL, true);
	conn_write(o->conn, buf, strlen(buf));
}

static void request_ack(evutil_socket_t fd, short what, void *arg)
{
	struct s2s_out *o = arg;
	struct xml_node *r;

	(void)fd, (void)what;
	if (!o->sm_on || o->state != O_READY || !(r = xml_new("r", NS_SM3)))
		return;
	write_el(o, r);
	xml_unref(r);
}

bool s2s_out_ready(const struct s2s_out *o)
{
	return o->state == O_READY;
}

void s2s_out_send(struct s2s_out *o, struct xml_node *st)
{
	if (o->state != O_READY) {
		/* Closing: the next stream takes it, after what this one did not
		 * get acknowledged. */
		s2s_queue_push(&o->route->queue, st, time(NULL));
		return;
	}
	write_el(o, st);
	o->stanzas_out++;
	s2s_counters.stanzas_out++;
	o->active = time(NULL);
	if (!o->sm_on) {
		xml_unref(st);
		return;
	}
	s2s_queue_push(&o->unacked, st, o->active);
	if (o->ack_ev)
		event_active(o->ack_ev, 0, 0);
	if (o->unacked.len >= S2S_UNACKED_MAX) {
		/* The peer acknowledges nothing: a new stream, rather than growing;
		 * what it did not acknowledge goes out again there, in order. */
		s2s_out_close(o, "resource-constraint", "you acknowledge nothing we send");
	}
}

/* After a write: a peer that reads nothing does not grow our memory. What it
 * did not acknowledge goes out again on the next stream. */
static void check_output(struct s2s_out *o)
{
	if (o->conn && o->state != O_CLOSING && conn_output_pending(o->conn) > S2S_OUTPUT_MAX) {
		note_why(o, "remote-server-timeout", "the peer reads nothing we send");
		s2s_out_close(o, "resource-constraint", "you read nothing we send");
	}
}

void s2s_out_verifies(struct s2s_out *o)
{
	struct s2s_route *r = o->route;

	/* On a stream past TLS (or that will have none) and past SASL: a key is
	 * not for plain text when TLS is coming, nor in the middle of SASL. */
	if (o->state != O_DIALBACK && o->state != O_READY)
		return;
	while (r->verifies) {
		struct s2s_verify *v = r->verifies;
		struct xml_node *el = xml_new("verify", NS_DIALBACK);

		r->verifies = v->next;
		r->nverifies--;
		if (!el || xml_attr_set(el, "from", r->local) < 0 ||
		    xml_attr_set(el, "to", r->remote) < 0 || xml_attr_set(el, "id", v->id) < 0 ||
		    xml_add_text(el, v->key, strlen(v->key)) < 0) {
			xml_unref(el);
			s2s_in_verify_result(v->in_serial, r->local, r->remote, v->id, false);
			free(v);
			continue;
		}
		write_el(o, el);
		xml_unref(el);
		v->next = o->sent;
		o->sent = v;
	}
}

/* ---- the end of a stream ---- */

static void out_free(struct s2s_out *o)
{
	struct s2s_route *r = o->route;
	bool ready = o->was_ready;

	if (o->feeding) {
		o->dead = true;
		return;
	}
	if (o->prev)
		o->prev->next = o->next;
	else
		outs = o->next;
	if (o->next)
		o->next->prev = o->prev;
	if (o->was_ready)
		s2s_counters.streams_out--;
	if (o->q)
		dns_cancel(o->q);
	while (o->sent) {
		struct s2s_verify *v = o->sent;

		o->sent = v->next;
		if (r)
			s2s_in_verify_result(v->in_serial, r->local, r->remote, v->id, false);
		free(v);
	}
	if (o->timer)
		event_free(o->timer);
	if (o->ack_ev)
		event_free(o->ack_ev);
	xmlstream_free(o->xs);
	if (o->conn)
		conn_free(o->conn);
	if (r && r->out == o)
		s2s_route_down(r, &o->unacked, o->why_condition, o->why[0] ? o->why : NULL,
			       o->definitive, ready);
	while (o->unacked.head)	/* no route any more: shutting down */
		s2s_bounce(s2s_queue_pop(&o->unacked), "remote-server-timeout",
			   "the server is shutting down");
	free(o);
}

static void note_why(struct s2s_out *o, const char *condition, const char *why)
{
	size_t n = strlen(why);

	if (o->why[0])
		return;
	if (n >= sizeof(o->why))
		n = sizeof(o->why) - 1;	/* cut: it is for a log line and an error text */
	memcpy(o->why, why, n);
	o->why[n] = '\0';
	o->why_condition = condition;
}

/* The attempt on this connection failed: the next address, or the end. */
static void fail(struct s2s_out *o, const char *condition, const char *why, bool definitive)
{
	log_info("s2s", "%s -> %s: %s", o->route->local, o->route->remote, why);
	if (o->was_ready || definitive || o->state >= O_OPENING) {
		note_why(o, condition, why);
		o->definitive = definitive;
		out_free(o);
		return;
	}
	note_why(o, condition, why);
	if (o->conn) {
		conn_free(o->conn);
		o->conn = NULL;
	}
	try_next(o);
}

static void stream_error(struct s2s_out *o, const char *condition, const char *text,
			 bool definitive)
{
	struct xml_node *e = stanza_stream_error(condition, text);
	char why[160];

	if (e && o->conn) {
		conn_write_xml(o->conn, e, NS_CLIENT);
		conn_write(o->conn, "</stream:stream>", 16);
	}
	xml_unref(e);
	snprintf(why, sizeof(why), "we closed the stream: <%s/> %s", condition,
		 text ? text : "");
	note_why(o, "remote-server-not-found", why);
	o->definitive = definitive;
	if (o->conn) {
		o->state = O_CLOSING;
		conn_close(o->conn);	/* CONN_CLOSED frees */
		xmlstream_stop(o->xs);	/* the rest of this read is not handled */
	} else {
		out_free(o);
	}
}

void s2s_out_close(struct s2s_out *o, const char *condition, const char *text)
{
	if (!o->conn || o->state == O_CLOSING) {
		if (!o->conn)
			out_free(o);
		return;
	}
	if (condition) {
		struct xml_node *e = stanza_stream_error(condition, text);

		if (e)
			conn_write_xml(o->conn, e, NS_CLIENT);
		xml_unref(e);
	}
	conn_write(o->conn, "</stream:stream>", 16);
	o->state = O_CLOSING;
	conn_close(o->conn);
	xmlstream_stop(o->xs);
}

/* ---- connecting ---- */

static void on_conn(struct conn *c, void *arg, enum conn_event ev, const char *why);

static void connect_addr(struct s2s_out *o)
{
	const struct dns_target *t = &o->targets[o->ti];
	const struct sockaddr *sa = (const struct sockaddr *)&o->addrs[o->ai];
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						   : sizeof(struct sockaddr_in);
	SSL *ssl = NULL;
	unsigned timeout = server.cfg->s2s.connect_timeout;

	o->direct = t->direct_tls;
	if (o->direct && !(ssl = tls_new_client(o->route->local, o->route->remote, true))) {
		fail(o, "remote-server-not-found", "cannot make a TLS client", false);
		return;
	}
	o->state = O_CONNECTING;
	log_debug("s2s", "%s -> %s: connecting to %s:%u%s", o->route->local, o->route->remote,
		  t->host, t->port, o->direct ? " (direct TLS)" : "");
	o->conn = conn_connect(sa, len, ssl, timeout > 10 ? 10 : timeout, on_conn, o);
	if (!o->conn)
		fail(o, "remote-server-timeout", "cannot open a socket", false);
}

static void on_addrs(void *arg, const struct sockaddr_storage *a, size_t n, const char *err)
{
	struct s2s_out *o = arg;
	char why[200];

	o->q = NULL;
	if (!n) {
		if (err)	/* it names the host */
			snprintf(why, sizeof(why), "%s", err);
		else
			snprintf(why, sizeof(why), "%s: no address", o->targets[o->ti].host);
		note_why(o, "remote-server-not-found", why);
		o->ti++;
		try_next(o);
		return;
	}
	if (n > DNS_ADDRS_MAX)
		n = DNS_ADDRS_MAX;
	memcpy(o->addrs, a, n * sizeof(*a));
	o->naddrs = n;
	o->ai = 0;
	connect_addr(o);
}

/* The next address of this target, else the next target, else failure. */
static void try_next(struct s2s_out *o)
{
	o->state = O_RESOLVING;
	if (o->naddrs && ++o->ai < o->naddrs) {
		connect_addr(o);
		return;
	}
	if (o->naddrs) {
		o->naddrs = 0;
		o->ti++;
	}
	if (o->ti >= o->ntargets) {
		/* Every place refused or did not answer: not definitive, the peer
		 * may come back. */
		note_why(o, "remote-server-not-found", "no address to connect to");
		out_free(o);
		return;
	}
	o->q = dns_addrs(o->targets[o->ti].host, o->targets[o->ti].port, on_addrs, o);
	if (!o->q)
		fail(o, "remote-server-not-found", "cannot start a DNS query", false);
}

static void on_targets(void *arg, const struct dns_target *t, size_t n, const char *err)
{
	struct s2s_out *o = arg;
	char why[200];

	o->q = NULL;
	if (!n) {
		snprintf(why, sizeof(why), "DNS: %s", err ? err : "no XMPP service");
		log_info("s2s", "%s -> %s: %s", o->route->local, o->route->remote, why);
		note_why(o, "remote-server-not-found", why);
		o->definitive = err && strstr(err, "SRV");	/* "." : decidedly none */
		out_free(o);
		return;
	}
	if (n > sizeof(o->targets) / sizeof(*o->targets))
		n = sizeof(o->targets) / sizeof(*o->targets);
	memcpy(o->targets, t, n * sizeof(*t));
	o->ntargets = n;
	o->ti = 0;
	o->naddrs = 0;
	try_next(o);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct s2s_out *o = arg;
	unsigned idle = server.cfg->s2s.idle_timeout;
	time_t now = time(NULL);

	(void)fd, (void)what;
	if (o->state != O_READY) {
		char why[120];

		snprintf(why, sizeof(why), "no authenticated stream after %u s (%s)",
			 server.cfg->s2s.connect_timeout, state_names[o->state]);
		o->state = o->state < O_OPENING ? O_OPENING : o->state;
		note_why(o, "remote-server-timeout", why);
		if (o->conn)
			stream_error(o, "connection-timeout", "authentication took too long", false);
		else
			out_free(o);
		return;
	}
	if (now - o->active >= (time_t)idle && !o->unacked.len) {
		log_info("s2s", "%s -> %s: idle for %u s, closing", o->route->local,
			 o->route->remote, idle);
		s2s_out_close(o, NULL, NULL);
		return;
	}
	if (now - o->active >= (time_t)idle) {
		/* Idle with stanzas unacknowledged: ask once; a peer that does not
		 * answer by the next tick is gone, and they go on a new stream. */
		if (o->probed) {
			log_info("s2s", "%s -> %s: %zu stanza(s) unacknowledged for %u s, "
				 "closing", o->route->local, o->route->remote, o->unacked.len,
				 idle);
			note_why(o, "remote-server-timeout", "the peer acknowledged nothing");
			s2s_out_close(o, "connection-timeout", "you acknowledged nothing");
			return;
		}
		o->probed = true;
		o->active = now;
		request_ack(-1, 0, o);
	}
	struct timeval tv = { idle - (now - o->active > (time_t)idle ? idle : now - o->active) + 1,
			      0 };
	evtimer_add(o->timer, &tv);
}

struct s2s_out *s2s_out_start(struct s2s_route *r)
{
	struct s2s_out *o = calloc(1, sizeof(*o));
	struct xmlstream_limits lim = {
		.max_stanza = server.cfg->limits.stanza_size,
		.max_depth = server.cfg->limits.depth,
		.max_attrs = server.cfg->limits.attributes,
	};
	struct timeval tv = { server.cfg->s2s.connect_timeout, 0 };

	if (!o)
		return NULL;
	o->route = r;
	o->started = o->active = time(NULL);
	o->xs = xmlstream_new(&lim, &out_cbs, o);
	o->timer = evtimer_new(server.base, on_timer, o);
	o->ack_ev = event_new(server.base, -1, 0, request_ack, o);
	if (!o->xs || !o->timer || !o->ack_ev) {
		xmlstream_free(o->xs);
		if (o->timer)
			event_free(o->timer);
		if (o->ack_ev)
			event_free(o->ack_ev);
		free(o);
		return NULL;
	}
	evtimer_add(o->timer, &tv);
	o->next = outs;
	if (outs)
		outs->prev = o;
	outs = o;
	o->state = O_RESOLVING;
	o->q = dns_s2s_targets(r->remote, on_targets, o);
	if (!o->q) {
		/* Reported from the loop, as every other failure is. */
		o->ntargets = 0;
		note_why(o, "remote-server-not-found", "cannot start a DNS query");
		o->ti = 0;
		struct timeval now = { 0, 0 };
		evtimer_add(o->timer, &now);
	}
	log_debug("s2s", "%s -> %s: looking up the servers", r->local, r->remote);
	return o;
}

/* ---- input ---- */

static void authenticated(struct s2s_out *o, enum s2s_auth how)
{
	struct timeval tv = { server.cfg->s2s.idle_timeout, 0 };

	o->auth = how;
	o->state = O_READY;
	o->was_ready = true;
	o->active = time(NULL);
	s2s_counters.streams_out++;
	s2s_counters.connected++;
	evtimer_add(o->timer, &tv);
	log_info("s2s", "%s -> %s: authenticated by %s%s%s", o->route->local, o->route->remote,
		 s2s_auth_names[how], conn_is_tls(o->conn) ? ", " : ", no TLS",
		 conn_is_tls(o->conn) ? SSL_get_version(conn_ssl(o->conn)) : "");
	if (o->offered_sm && server.cfg->s2s.stream_mgmt) {
		struct xml_node *e = xml_new("enable", NS_SM3);

		if (e) {
			write_el(o, e);
			xml_unref(e);
			o->sm_on = true;	/* the peer counts from <enable/> on */
			o->acked = 0;
		}
	}
	s2s_out_verifies(o);
	s2s_route_ready(o->route);
}

static void start_dialback(struct s2s_out *o)
{
	size_t slen;
	const unsigned char *sec = s2s_secret(&slen);
	char key[DIALBACK_KEY_LEN + 1];
	struct xml_node *el;

	if (!sec || !o->id[0]) {
		stream_error(o, "undefined-condition", "dialback needs a stream id", true);
		return;
	}
	dialback_key(sec, slen, o->route->remote, o->route->local, o->id, key);
	el = xml_new("result", NS_DIALBACK);
	if (!el || xml_attr_set(el, "from", o->route->local) < 0 ||
	    xml_attr_set(el, "to", o->route->remote) < 0 ||
	    xml_add_text(el, key, strlen(key)) < 0) {
		xml_unref(el);
		stream_error(o, "internal-server-error", NULL, false);
		return;
	}
	o->state = O_DIALBACK;
	write_el(o, el);
	xml_unref(el);
	s2s_out_verifies(o);
}

/* Dialback, where the peer takes it: XEP-0220 §2.1, a server of version 1.0
 * that does says so in its features (an older one has none to say it with). */
static void try_dialback(struct s2s_out *o)
{
	if (!o->offered_dialback && o->version) {
		note_why(o, "remote-server-not-found", o->external_failed
			 ? "the peer refused our certificate and offers no dialback"
			 : "the peer offers neither SASL EXTERNAL nor dialback");
		stream_error(o, "policy-violation", "no authentication method in common", true);
		return;
	}
	start_dialback(o);
}

/* What to do with the features the peer offers. */
static void features(struct s2s_out *o, struct xml_node *f)
{
	const char *remote = o->route->remote;
	struct xml_node *m;

	o->offered_tls = f && xml_child(f, "starttls", NS_TLS);
	o->offered_sm = f && xml_child(f, "sm", NS_SM3);
	o->offered_dialback = f && xml_child(f, "dialback", NS_DIALBACK_FEATURE);
	o->offered_external = false;
	if (f && (m = xml_child(f, "mechanisms", NS_SASL))) {
		struct xml_node *c;

		xml_foreach(c, m, "mechanism", NS_SASL) {
			char *t = xml_text(c);

			if (t && strcmp(t, "EXTERNAL") == 0)
				o->offered_external = true;
			free(t);
		}
	}
	if (o->state == O_SASL && o->sasl_ok) {	/* after SASL's restart */
		authenticated(o, S2S_AUTH_EXTERNAL);
		return;
	}
	if (o->state != O_OPENING)
		return;
	if (!conn_is_tls(o->conn)) {
		if (o->offered_tls) {	/* with our certificate, or none */
			struct xml_node *s = xml_new("starttls", NS_TLS);

			if (!s) {
				stream_error(o, "internal-server-error", NULL, false);
				return;
			}
			write_el(o, s);
			xml_unref(s);
			o->state = O_STARTTLS;
			return;
		}
		if (s2s_needs_cert(remote)) {
			note_why(o, "remote-server-not-found", "the peer offers no TLS and the "
				 "policy requires a valid certificate");
			stream_error(o, "policy-violation", "this server requires TLS", true);
			return;
		}
		try_dialback(o);
		return;
	}
	if (o->offered_external && !o->external_failed) {
		char b64[(JID_PART_MAX + 2) / 3 * 4 + 1];	/* the authzid: our domain */
		struct xml_node *a = xml_new("auth", NS_SASL);

		base64_encode(o->route->local, strlen(o->route->local), b64);
		if (!a || xml_attr_set(a, "mechanism", "EXTERNAL") < 0 ||
		    xml_add_text(a, b64, strlen(b64)) < 0) {
			xml_unref(a);
			stream_error(o, "internal-server-error", NULL, false);
			return;
		}
		write_el(o, a);
		xml_unref(a);
		o->state = O_SASL;
		s2s_out_verifies(o);
		return;
	}
	try_dialback(o);
}

/* TLS is up: whose certificate is it? */
static bool check_peer(struct s2s_out *o)
{
	char why[200];
	enum tls_peer p = tls_peer_check(conn_ssl(o->conn), o->route->remote, why, sizeof(why));

	o->tls_valid = p == TLS_PEER_VALID;
	if (o->tls_valid)
		return true;
	if (p == TLS_PEER_NONE)
		snprintf(why, sizeof(why), "the peer sent no certificate");
	if (s2s_needs_cert(o->route->remote)) {
		char text[480];

		snprintf(text, sizeof(text), "the certificate of %.200s is not valid: %s",
			 o->route->remote, why);
		note_why(o, "remote-server-not-found", text);
		s2s_counters.auth_failures++;
		stream_error(o, "policy-violation", "your certificate is not valid for this "
			     "domain", true);
		return false;
	}
	log_info("s2s", "%s -> %s: certificate not valid (%s): dialback decides",
		 o->route->local, o->route->remote, why);
	return true;
}

static void on_open(void *arg, struct xml_node *h, const char *default_ns)
{
	struct s2s_out *o = arg;
	const char *id = xml_attr(h, "id"), *ver = xml_attr(h, "version");

	if (!default_ns || strcmp(default_ns, NS_SERVER_STREAM) != 0) {
		xml_unref(h);
		stream_error(o, "invalid-namespace", "an s2s stream is in jabber:server", true);
		return;
	}
	snprintf(o->id, sizeof(o->id), "%s", id && strlen(id) < sizeof(o->id) ? id : "");
	o->version = ver && strncmp(ver, "1.", 2) == 0;
	xml_unref(h);
	if (!o->version) {
		/* A server from before RFC 3920: no features will come. */
		features(o, NULL);
	}
}

static void on_db_result(struct s2s_out *o, struct xml_node *el)
{
	const char *type = xml_attr(el, "type");

	if (o->state != O_DIALBACK)
		return;
	if (type && strcmp(type, "valid") == 0) {
		authenticated(o, S2S_AUTH_DIALBACK);
		return;
	}
	s2s_counters.auth_failures++;
	note_why(o, "remote-server-not-found", "the peer refused our dialback key");
	o->definitive = true;
	s2s_out_close(o, NULL, NULL);
}

static void on_db_verify(struct s2s_out *o, struct xml_node *el)
{
	const char *id = xml_attr(el, "id"), *type = xml_attr(el, "type");
	struct s2s_verify **pv;

	if (!id)
		return;
	for (pv = &o->sent; *pv; pv = &(*pv)->next) {
		struct s2s_verify *v = *pv;

		if (strcmp(v->id, id) != 0)
			continue;
		*pv = v->next;
		s2s_in_verify_result(v->in_serial, o->route->local, o->route->remote, v->id,
				     type && strcmp(type, "valid") == 0);
		free(v);
		return;
	}
}

static void on_ack(struct s2s_out *o, struct xml_node *el)
{
	const char *hs = xml_attr(el, "h");
	char *end;
	unsigned long h = hs ? strtoul(hs, &end, 10) : 0;
	uint32_t n;

	if (!hs || *end || h > UINT32_MAX)
		return;
	n = (uint32_t)h - o->acked;
	if (n > o->unacked.len) {
		stream_error(o, "undefined-condition", "you acknowledged more than was sent",
			     false);
		return;
	}
	o->probed = false;
	for (uint32_t i = 0; i < n; i++)
		xml_unref(s2s_queue_pop(&o->unacked));
	o->acked = (uint32_t)h;
}

static void on_element(void *arg, struct xml_node *el)
{
	struct s2s_out *o = arg;
	const char *ns = el->ns ? el->ns : "";

	o->stanzas_in++;
	if (strcmp(ns, NS_STREAMS) == 0 && strcmp(el->name, "features") == 0) {
		features(o, el);
	} else if (strcmp(ns, NS_STREAMS) == 0 && strcmp(el->name, "error") == 0) {
		struct xml_node *c = xml_child(el, NULL, NULL);
		char *text = xml_child_text(el, "text", "urn:ietf:params:xml:ns:xmpp-streams");
		char why[200];

		snprintf(why, sizeof(why), "the peer closed the stream with <%s/>%s%s",
			 c ? c->name : "?", text ? ": " : "", text ? text : "");
		free(text);
		note_why(o, "remote-server-not-found", why);
		o->definitive = !o->was_ready && c && strcmp(c->name, "system-shutdown") &&
				strcmp(c->name, "connection-timeout");
	} else if (strcmp(ns, NS_TLS) == 0 && strcmp(el->name, "proceed") == 0 &&
		   o->state == O_STARTTLS) {
		SSL *ssl = tls_new_client(o->route->local, o->route->remote, false);

		if (!ssl || conn_starttls_client(o->conn, ssl) < 0) {
			stream_error(o, "internal-server-error", "TLS failed", false);
		} else {
			o->state = O_TLS;
			o->paused = o->restart = true;
			xmlstream_stop(o->xs);
		}
	} else if (strcmp(ns, NS_TLS) == 0) {
		note_why(o, "remote-server-not-found", "the peer refused STARTTLS");
		o->definitive = true;
		s2s_out_close(o, NULL, NULL);
	} else if (strcmp(ns, NS_SASL) == 0 && o->state == O_SASL) {
		if (strcmp(el->name, "success") == 0) {
			o->restart = o->sasl_ok = true;
			xmlstream_stop(o->xs);
			send_header(o);
		} else {
			/* Our certificate did not convince it: dialback may. */
			log_info("s2s", "%s -> %s: SASL EXTERNAL refused, trying dialback",
				 o->route->local, o->route->remote);
			o->external_failed = true;
			try_dialback(o);
		}
	} else if (strcmp(ns, NS_DIALBACK) == 0 && strcmp(el->name, "result") == 0) {
		on_db_result(o, el);
	} else if (strcmp(ns, NS_DIALBACK) == 0 && strcmp(el->name, "verify") == 0) {
		on_db_verify(o, el);
	} else if (strcmp(ns, NS_SM3) == 0) {
		if (strcmp(el->name, "a") == 0)
			on_ack(o, el);
		else if (strcmp(el->name, "failed") == 0 && o->sm_on) {
			/* Not counted after all: what was sent is gone as without
			 * stream management. */
			o->sm_on = false;
			while (o->unacked.head)
				xml_unref(s2s_queue_pop(&o->unacked));
		} else if (strcmp(el->name, "r") == 0) {
			struct xml_node *a = xml_new("a", NS_SM3);

			if (a && xml_attr_set(a, "h", "0") == 0)
				write_el(o, a);
			xml_unref(a);
		}
	} else {
		log_debug("s2s", "%s -> %s: ignored <%s xmlns='%s'/> on an outgoing stream",
			  o->route->local, o->route->remote, el->name, ns);
	}
	xml_unref(el);
}

static void on_close(void *arg)
{
	struct s2s_out *o = arg;

	note_why(o, "remote-server-timeout", "the peer closed the stream");
	if (o->conn && o->state != O_CLOSING) {
		conn_write(o->conn, "</stream:stream>", 16);
		o->state = O_CLOSING;
		conn_close(o->conn);
	}
}

static void on_error(void *arg, enum xmlstream_error err, const char *text)
{
	stream_error(arg, xmlstream_error_condition(err), text, false);
}

static const struct xmlstream_callbacks out_cbs = {
	.open = on_open, .stanza = on_element, .close = on_close, .error = on_error,
};

static void feed(struct s2s_out *o)
{
	if (o->feeding)
		return;
	o->feeding = true;
	while (!o->paused && !o->dead && o->conn && o->state != O_CLOSING) {
		struct evbuffer *in = conn_input(o->conn);
		struct evbuffer_iovec v;
		ssize_t used;

		if (o->restart) {
			o->restart = false;
			if (xmlstream_reset(o->xs) < 0) {
				stream_error(o, "internal-server-error", "out of memory", false);
				break;
			}
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		used = xmlstream_feed(o->xs, v.iov_base, v.iov_len);
		if (used < 0 || o->dead)
			break;
		evbuffer_drain(in, (size_t)used);
	}
	o->feeding = false;
	if (o->dead) {
		o->dead = false;
		out_free(o);
	}
}

static void on_conn(struct conn *c, void *arg, enum conn_event ev, const char *why)
{
	struct s2s_out *o = arg;
	char text[200];

	(void)c;
	switch (ev) {
	case CONN_CONNECTED:
		if (!o->direct) {
			conn_set_timeout(o->conn, 0);	/* o->timer bounds the rest */
			o->state = O_OPENING;
			send_header(o);
		}
		break;
	case CONN_TLS_UP:
		conn_set_timeout(o->conn, 0);
		o->paused = false;
		if (!check_peer(o))
			break;
		o->state = O_OPENING;
		send_header(o);
		feed(o);
		break;
	case CONN_READ:
		feed(o);
		break;
	case CONN_TIMEOUT:	/* only before CONN_CONNECTED, or a direct TLS handshake */
		snprintf(text, sizeof(text), "%s:%u: no answer", o->targets[o->ti].host,
			 o->targets[o->ti].port);
		fail(o, "remote-server-timeout", text, false);
		break;
	case CONN_EOF:
	case CONN_ERROR:
		snprintf(text, sizeof(text), "%s:%u: %s", o->targets[o->ti].host,
			 o->targets[o->ti].port, why ? why : "connection lost");
		if (o->state <= O_CONNECTING && o->conn) {
			fail(o, "remote-server-timeout", text, false);
			break;
		}
		note_why(o, "remote-server-timeout", text);
		if (o->state == O_READY)
			log_info("s2s", "%s -> %s: stream lost (%s); %zu unacknowledged "
				 "stanza(s) go again", o->route->local, o->route->remote, text,
				 o->unacked.len);
		out_free(o);
		break;
	case CONN_CLOSED:
		out_free(o);
		break;
	}
}

/* ---- parleyctl ---- */

void s2s_out_list(struct evbuffer *b, bool json, bool *first)
{
	time_t now = time(NULL);

	for (struct s2s_out *o = outs; o; o = o->next) {
		const char *tls = o->conn && conn_is_tls(o->conn)
			? SSL_get_version(conn_ssl(o->conn)) : "-";
		const char *auth = o->state == O_READY ? s2s_auth_names[o->auth]
			: state_names[o->state];

		if (json) {
			evbuffer_add_printf(b, "%s{\"direction\":\"out\",\"local\":\"%s\","
					    "\"remote\":\"%s\",\"state\":\"%s\",\"auth\":\"%s\","
					    "\"tls\":\"%s\",\"queue\":%zu,\"unacked\":%zu,"
					    "\"stanzas_in\":%llu,\"stanzas_out\":%llu,"
					    "\"age\":%lld}", *first ? "" : ",", o->route->local,
					    o->route->remote, state_names[o->state],
					    s2s_auth_names[o->auth], tls, o->route->queue.len,
					    o->unacked.len, o->stanzas_in, o->stanzas_out,
					    (long long)(now - o->started));
		} else {
			evbuffer_add_printf(b, "%-3s %-28s %-28s %-13s %-8s %5zu %8llu %8llu "
					    "%llds\n", "out", o->route->local, o->route->remote,
					    auth, tls, o->route->queue.len + o->unacked.len,
					    o->stanzas_in, o->stanzas_out,
					    (long long)(now - o->started));
		}
		*first = false;
	}
}

size_t s2s_out_close_domain(const char *domain)
{
	size_t n = 0;

	/* A stream still resolving goes at once: its route backs off (and a new
	 * stream that starts meanwhile is at the head, not after next). */
	for (struct s2s_out *o = outs, *next; o; o = next) {
		next = o->next;
		if (strcmp(o->route->remote, domain) != 0 || o->state == O_CLOSING)
			continue;
		n++;
		note_why(o, "remote-server-timeout", "closed by the administrator");
		s2s_out_close(o, "policy-violation", "closed by the administrator");
	}
	return n;
}

void s2s_out_free_all(void)
{
	while (outs) {
		struct s2s_out *o = outs;

		o->route->out = NULL;
		o->route = NULL;
		o->feeding = false;
		/* out_free needs no route for what is left */
		if (o->prev)
			o->prev->next = o->next;
		outs = o->next;
		if (outs)
			outs->prev = NULL;
		if (o->q)
			dns_cancel(o->q);
		while (o->sent) {
			struct s2s_verify *v = o->sent;

			o->sent = v->next;
			free(v);
		}
		if (o->timer)
			event_free(o->timer);
		if (o->ack_ev)
			event_free(o->ack_ev);
		xmlstream_free(o->xs);
		if (o->conn)
			conn_free(o->conn);
		while (o->unacked.head)
			xml_unref(s2s_queue_pop(&o->unacked));
		free(o);
	}
}
