/*
 * c2s.c - client streams (RFC 6120), whatever framing carries them (c2s.h).
 *
 * One struct c2s per client stream, driven by two inputs: elements from its
 * framing (TCP, WebSocket, BOSH) and answers from the database or a worker
 * thread (SASL). The stream moves through
 *
 *	OPENING -> FEATURES (STARTTLS, SASL) -> restart -> BIND -> SESSION
 *
 * While an answer is outstanding the framing stops giving input, so the next
 * stanza keeps its place in the stream's order. The struct is refcounted: the
 * framing holds a reference, and so does an outstanding query, so a client
 * that leaves meanwhile does not leave a dangling pointer behind.
 */
#include "c2s.h"

#include <event2/event.h>
#include <openssl/rand.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "delivery.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "stanza.h"
#include "stream.h"
#include "tls.h"
#include "vhost.h"

enum c2s_state {
	C2S_OPENING,		/* waiting for the client's stream header */
	C2S_NEGOTIATING,	/* features sent: STARTTLS or SASL expected */
	C2S_AUTHENTICATING,	/* a SASL exchange is under way */
	C2S_BINDING,		/* authenticated, restarted: bind expected */
	C2S_SESSION,		/* a resource is bound: stanzas flow */
	C2S_CLOSED,		/* stream closed or errored; waiting for the flush */
};

struct c2s {
	struct stream st;		/* first: a struct stream * is a struct c2s * */
	int refs;
	enum c2s_state state;
	const struct c2s_framing *f;
	void *t;			/* the framing's state; NULL once it is gone */
	const struct config_listener *lcfg;
	struct vhost *vh;		/* the host the client asked for */
	char *user;			/* localpart once authenticated */
	struct session *sess;		/* once bound */
	struct auth *auth;		/* the SASL exchange under way */
	bool authenticated;
	bool waiting;			/* input paused for an answer */
	bool pinged;			/* idle: a ping is out, waiting for any bytes */
	bool header_sent;		/* our stream header is out (reset on restart) */
	bool active;			/* input came since the last compaction sweep */
	bool overflowing;		/* output over C2S_OUTPUT_MAX: closing next turn */
	char id[24];			/* stream id */
	char peer[48];			/* the client's address, for logs */
	struct c2s *prev, *next;	/* every open stream, for shutdown */
};

static struct c2s *all;
static struct event *sweep;

/* Streams quiet for a whole interval (10-20 s) give their parser's memory back
 * (the framing's compact): most of an idle session's footprint. A per-read
 * compaction would cost a parser per message on busy streams. */
#define C2S_COMPACT_INTERVAL 10

static void c2s_unref(struct c2s *c);
static void bounce(struct c2s *c, struct xml_node *st, const char *cond, const char *text);
static void resume_input(struct c2s *c);
static void c2s_lost(struct c2s *c, const char *reason);

/* ---- output ---- */

static bool can_write(const struct c2s *c)
{
	return c->t && c->state != C2S_CLOSED;
}

static void send_raw(struct c2s *c, const char *s)
{
	if (can_write(c))
		c->f->raw(c->t, s, strlen(s));
}

static void send_xml(struct c2s *c, const struct xml_node *n)
{
	if (can_write(c))
		c->f->element(c->t, n, NULL);
}

static void c2s_error_extra(struct c2s *c, const char *condition, const char *text,
			    const struct xml_node *extra);

/* Output waiting for a client that does not read: bounded, or a stalled
 * reader would hold the server's memory hostage. */
#define C2S_OUTPUT_MAX (4u << 20)

static void on_overflow(evutil_socket_t fd, short what, void *arg)
{
	struct c2s *c = arg;

	(void)fd;
	(void)what;
	if (can_write(c))
		c2s_error(c, "policy-violation", "the client does not read its stream");
	c2s_unref(c);
}

/*
 * A stanza for the bound session. A client that does not read gets its stream
 * closed, but on the next turn of the loop: the caller may be walking a list
 * of sessions or a XEP-0198 queue that the close would free under it. Until
 * then what comes is not written, and the delivery it belongs to fails, so an
 * offline message stays stored.
 */
static void c2s_send(struct c2s *c, const struct xml_node *stanza)
{
	struct timeval now = { 0, 0 };

	if (c->state != C2S_SESSION || !c->t)
		return;
	if (!c->overflowing && c->f->pending(c->t) > C2S_OUTPUT_MAX) {
		c->overflowing = true;
		c->refs++;
		if (event_base_once(server.base, -1, EV_TIMEOUT, on_overflow, c, &now) < 0) {
			c->refs--;
			log_error("c2s", "%s: cannot schedule the close of a stalled stream",
				  c->peer);
		}
	}
	if (c->overflowing) {
		struct delivery *d = delivery_current();

		if (d)
			delivery_release(delivery_ref(d), false);
		return;
	}
	stream_stats.stanzas_out++;
	/* A stanza without 'to' is one many get (a room's broadcast): its bytes
	 * are shared, and this stream's 'to' is the session's JID. */
	if (!xml_attr(stanza, "to") && c->sess)
		c->f->element(c->t, stanza, session_jid(c->sess)->full);
	else
		send_xml(c, stanza);
}

/* A stanza of the server's own to the client: through the session once there
 * is one, so it is counted and kept like any other (XEP-0198). */
static void send_stanza(struct c2s *c, const struct xml_node *st)
{
	if (c->sess)
		session_send(c->sess, st);
	else
		send_xml(c, st);
}

static void send_header(struct c2s *c, const char *from)
{
	unsigned char rnd[9];
	static const char hex[] = "0123456789abcdef";

	RAND_bytes(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++) {
		c->id[2 * i] = hex[rnd[i] >> 4];
		c->id[2 * i + 1] = hex[rnd[i] & 15];
	}
	c->id[2 * sizeof(rnd)] = '\0';
	c->header_sent = true;
	if (can_write(c))
		c->f->header(c->t, c->id, from);
}

/* The end of our stream; the framing closes once it is written. */
static void end_stream(struct c2s *c)
{
	if (!can_write(c))
		return;
	c->state = C2S_CLOSED;
	c->f->end(c->t);
}

/*
 * A stream error closes the stream (RFC 6120 §4.9): if our header is not out
 * yet it goes first, then the error, then the end of the stream.
 */
void c2s_error(struct c2s *c, const char *condition, const char *text)
{
	c2s_error_extra(c, condition, text, NULL);
}

static void c2s_error_extra(struct c2s *c, const char *condition, const char *text,
			    const struct xml_node *extra)
{
	struct xml_node *e;

	if (c->state == C2S_CLOSED)
		return;
	if (!c->header_sent)
		send_header(c, c->vh ? vhost_name(c->vh) : NULL);
	log_info("c2s", "%s%s%s: stream error <%s/>%s%s", c->peer,
		 c->sess ? " " : "", c->sess ? session_jid(c->sess)->full : "", condition,
		 text ? ": " : "", text ? text : "");
	e = stanza_stream_error(condition, text);
	if (e && extra) {
		struct xml_node *x = xml_copy(extra);

		if (x)
			xml_append(e, x);
	}
	if (e) {
		send_xml(c, e);
		xml_unref(e);
	}
	if (strcmp(condition, "connection-timeout") == 0)
		c2s_lost(c, "connection timed out");
	end_stream(c);
	c->state = C2S_CLOSED;
	/* The session ends with the stream, not when the last byte is flushed:
	 * a replacing login must find the resource free. */
	if (c->sess) {
		sm_unbind(c->sess, condition);
		c->sess = NULL;
	}
}

/* A dead connection (not a client's choice): a module may keep the session for
 * the client to resume (XEP-0198) instead of ending it. */
static void c2s_lost(struct c2s *c, const char *reason)
{
	struct hook_args a = { .sess = c->sess, .reason = reason };

	if (!c->sess)
		return;
	a.from = session_jid(c->sess);
	if (hooks_run(vhost_name(c->vh), HOOK_SESSION_LOST, &a) != HOOK_STOP)
		return;
	log_info("c2s", "%s %s: detached, kept for resumption (%s)", c->peer,
		 session_jid(c->sess)->full, reason);
	session_detach(c->sess);
	c->sess = NULL;
}

/* ---- the stream interface (stream.h) ---- */

static struct c2s *of(const struct stream *st)
{
	return (struct c2s *)st;
}

static void op_send(struct stream *st, const struct xml_node *n) { c2s_send(of(st), n); }
static void op_write(struct stream *st, const struct xml_node *n) { send_xml(of(st), n); }

static void op_close(struct stream *st, const char *condition, const char *text,
		     const struct xml_node *extra)
{
	c2s_error_extra(of(st), condition, text, extra);
}

static const char *op_peer(const struct stream *st)
{
	return of(st)->t ? of(st)->peer : "";
}

static bool op_secure(const struct stream *st)
{
	return of(st)->t && of(st)->f->secure(of(st)->t);
}

static SSL *ssl_of(const struct c2s *c)
{
	return c->t ? c->f->ssl(c->t) : NULL;
}

static size_t op_channel_binding(const struct stream *st, const char *type,
				 unsigned char *out, size_t max)
{
	SSL *ssl = ssl_of(of(st));

	if (!ssl)
		return 0;
	if (strcmp(type, "tls-exporter") == 0)
		return tls_cb_exporter(ssl, out, max);
	if (strcmp(type, "tls-server-end-point") == 0)
		return tls_cb_server_end_point(ssl, out, max);
	if (strcmp(type, "tls-unique") == 0)
		return tls_cb_unique(ssl, out, max);
	return 0;
}

static void op_release(struct stream *st)
{
	of(st)->sess = NULL;
}

static void op_attach(struct stream *st, struct session *s)
{
	struct c2s *c = of(st);

	c->sess = s;
	c->state = C2S_SESSION;
	log_info("c2s", "%s: resumed %s over %s", c->peer, session_jid(s)->full,
		 stream_transport_names[c->f->transport]);
}

static enum stream_transport op_transport(const struct stream *st)
{
	return of(st)->f->transport;
}

static const struct stream_ops c2s_ops = {
	.name = "c2s",
	.send = op_send,
	.write = op_write,
	.close = op_close,
	.peer = op_peer,
	.secure = op_secure,
	.channel_binding = op_channel_binding,
	.release = op_release,
	.attach = op_attach,
	.transport = op_transport,
};

/* ---- life cycle ---- */

static void c2s_unref(struct c2s *c)
{
	if (--c->refs > 0)
		return;
	free(c);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	unsigned n = 0;

	(void)fd;
	(void)what;
	(void)arg;
	for (struct c2s *c = all; c; c = c->next) {
		if (!c->active && can_write(c) && !c->waiting && c->f->compact &&
		    c->f->compact(c->t))
			n++;
		c->active = false;
	}
	if (n)
		log_debug("c2s", "%u idle stream%s compacted", n, n == 1 ? "" : "s");
#ifdef __GLIBC__
	/* The parsers were freed between other allocations of the same streams:
	 * glibc keeps such holes unless asked to give the pages back. */
	if (n >= 32)
		malloc_trim(0);
#endif
}

static void start_sweep(void)
{
	struct timeval every = { C2S_COMPACT_INTERVAL, 0 };

	if (sweep)
		return;
	sweep = event_new(server.base, -1, EV_PERSIST, on_sweep, NULL);
	if (sweep && event_add(sweep, &every) < 0) {
		event_free(sweep);
		sweep = NULL;
	}
}

struct c2s *c2s_new(const struct c2s_framing *f, void *t, const struct config_listener *l,
		    const char *peer)
{
	struct c2s *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	start_sweep();
	c->st.ops = &c2s_ops;
	c->refs = 1;
	c->active = true;
	c->f = f;
	c->t = t;
	c->lcfg = l;
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "");
	c->next = all;
	if (all)
		all->prev = c;
	all = c;
	stream_stats.open++;
	stream_stats.connections++;
	stream_stats.open_by[f->transport]++;
	stream_stats.connections_by[f->transport]++;
	return c;
}

/* The framing is gone: unlink, release, drop its reference. */
void c2s_gone(struct c2s *c, const char *reason, bool lost)
{
	if (!c->t)
		return;
	c->t = NULL;	/* from here on nothing is written: the framing is gone */
	if (lost) {
		log_info("c2s", "%s%s%s: connection lost: %s", c->peer, c->sess ? " " : "",
			 c->sess ? session_jid(c->sess)->full : "", reason);
		c2s_lost(c, reason);
	}
	if (c->sess) {
		sm_unbind(c->sess, reason);
		c->sess = NULL;
	}
	if (c->prev)
		c->prev->next = c->next;
	else if (all == c)
		all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	stream_stats.open--;
	stream_stats.open_by[c->f->transport]--;
	if (c->authenticated)
		stream_stats.authenticated--;
	auth_free(c->auth);
	c->auth = NULL;
	free(c->user);
	c->user = NULL;
	c->state = C2S_CLOSED;
	c2s_unref(c);
}

void c2s_heard(struct c2s *c)
{
	c->active = true;
	if (c->pinged && c->t) {
		c->pinged = false;
		c->f->timeout(c->t, server.cfg->limits.idle_timeout);
	}
}

/* A silent client may just be idle: ask once (XEP-0199); any bytes back reset
 * this. A second silence means the connection is dead. */
void c2s_idle(struct c2s *c)
{
	if (c->state == C2S_SESSION && !c->pinged && c->t) {
		struct xml_node *iq = xml_new("iq", NS_CLIENT);

		c->pinged = true;
		if (iq && xml_add_child(iq, "ping", "urn:xmpp:ping")) {
			xml_attr_set(iq, "type", "get");
			xml_attr_set(iq, "id", "parley-ping");
			xml_attr_set(iq, "from", vhost_name(c->vh));
			xml_attr_set(iq, "to", session_jid(c->sess)->full);
			send_stanza(c, iq);
		}
		xml_unref(iq);
		if (c->t)
			c->f->timeout(c->t, server.cfg->limits.idle_timeout < 60 ?
				      server.cfg->limits.idle_timeout : 60);
		return;
	}
	c2s_error(c, "connection-timeout", "no traffic for too long");
}

bool c2s_blocked(const struct c2s *c)
{
	return c->waiting || !can_write(c);
}

void c2s_tls_up(struct c2s *c)
{
	resume_input(c);
}

int c2s_init(void)
{
	return c2s_tcp_init() < 0 || ws_init() < 0 || bosh_init() < 0 ? -1 : 0;
}

void c2s_shutdown_all(void)
{
	for (struct c2s *c = all; c; c = c->next)
		c2s_error(c, "system-shutdown", "the server is shutting down");
}

void c2s_free_all(void)
{
	if (sweep) {
		event_free(sweep);
		sweep = NULL;
	}
	while (all) {
		struct c2s *c = all;

		c->refs = 1;	/* the loop is gone: nothing else will drop its ref */
		c->f->drop(c->t);
		if (all == c)	/* a framing that did not let go */
			c2s_gone(c, "server stopped", false);
	}
}

/* ---- input ---- */

static void wait_for_answer(struct c2s *c)
{
	c->waiting = true;
	if (c->t)
		c->f->pause(c->t, true);
}

/* The answer is in: read on. Inside the framing's input loop (a synchronous
 * answer) the loop there simply continues. */
static void resume_input(struct c2s *c)
{
	c->waiting = false;
	if (can_write(c))
		c->f->pause(c->t, false);
}

void c2s_end(struct c2s *c)
{
	log_debug("c2s", "%s: the client closed the stream", c->peer);
	if (c->state == C2S_CLOSED)
		return;
	end_stream(c);
	/* From now on stanzas for this resource follow the rules for a gone one,
	 * rather than being written to a stream that is closing. */
	if (c->sess) {
		sm_unbind(c->sess, "logged out");
		c->sess = NULL;
	}
}

/* ---- features ---- */

static bool tls_required(const struct c2s *c)
{
	return c->lcfg->tls == TLS_STARTTLS && !c->f->secure(c->t);
}

static void send_features(struct c2s *c)
{
	struct xml_node *f = xml_new("features", NS_STREAMS), *n;

	if (!f) {
		c2s_error(c, "internal-server-error", NULL);
		return;
	}
	if (!c->authenticated) {
		if (c->f->starttls && !c->f->secure(c->t) && tls_available() &&
		    (c->lcfg->tls == TLS_STARTTLS || c->lcfg->tls == TLS_OPTIONAL)) {
			n = xml_add_child(f, "starttls", NS_TLS);
			if (n && c->lcfg->tls == TLS_STARTTLS)
				xml_add_child(n, "required", NULL);
		}
		/* With STARTTLS required, SASL is offered only after it (§5.3.1). */
		if (!tls_required(c)) {
			struct hook_args a = { .result = f, .preauth = true };

			auth_add_mechanisms(f, ssl_of(c), c->lcfg->tls);
			hooks_run(vhost_name(c->vh), HOOK_STREAM_FEATURES, &a);
		}
	} else {
		xml_add_child(f, "bind", NS_BIND);
		n = xml_add_child(f, "session", NS_SESSION);
		if (n)
			xml_add_child(n, "optional", NULL);
		struct hook_args a = { .result = f };
		hooks_run(vhost_name(c->vh), HOOK_STREAM_FEATURES, &a);
	}
	send_xml(c, f);
	xml_unref(f);
}

void c2s_open(struct c2s *c, struct xml_node *header, const char *default_ns)
{
	const char *to = xml_attr(header, "to");
	const char *version = xml_attr(header, "version");
	char host[JID_PART_MAX + 1];
	const char *err = NULL;
	struct vhost *vh = NULL;

	if (to && jid_nameprep(to, host, sizeof(host), &err) == 0)
		vh = vhost_find(host);
	if (!c->vh)
		c->vh = vh;
	if (!default_ns || strcmp(default_ns, NS_CLIENT) != 0) {
		c2s_error(c, "invalid-namespace", "the stream's default namespace must be "
			  NS_CLIENT);
		goto out;
	}
	if (!vh || vh != c->vh) {
		c->vh = NULL;
		c2s_error(c, "host-unknown", to ? "this server does not serve that host"
			  : "the stream header has no 'to'");
		goto out;
	}
	send_header(c, vhost_name(c->vh));
	/* RFC 6120 §4.7.5: major version 1 or the stream cannot continue. */
	if (!version || strncmp(version, "1.", 2) != 0) {
		c2s_error(c, "unsupported-version", "this server speaks XMPP 1.0");
		goto out;
	}
	c->state = c->authenticated ? C2S_BINDING : C2S_NEGOTIATING;
	send_features(c);
out:
	xml_unref(header);
}

/* ---- negotiation: STARTTLS and SASL ---- */

static void handle_starttls(struct c2s *c, struct xml_node *st)
{
	(void)st;
	if (!c->f->starttls || c->f->secure(c->t) || c->lcfg->tls == TLS_NONE ||
	    !tls_available()) {
		send_raw(c, "<failure xmlns='" NS_TLS "'/>");
		end_stream(c);
		return;
	}
	send_raw(c, "<proceed xmlns='" NS_TLS "'/>");
	/* The client starts the handshake now: a new stream follows inside TLS.
	 * Nothing more is parsed until then; plaintext after <starttls/> is dropped
	 * by the connection. */
	c->state = C2S_OPENING;
	c->header_sent = false;
	if (c->f->starttls(c->t) < 0)
		c2s_error(c, "internal-server-error", "cannot start TLS");
}

/* auth.c calls back here with the outcome of each SASL step. */
static void on_auth(void *arg, enum auth_result r, const char *payload_xml,
		    const char *user)
{
	struct c2s *c = arg;

	/* The auth belongs to this stream and is freed with it, so c is alive. */
	switch (r) {
	case AUTH_CONTINUE:
		send_raw(c, payload_xml);
		break;
	case AUTH_SUCCESS:
		send_raw(c, payload_xml);
		c->user = strdup(user);	/* user points into the auth freed below */
		c->authenticated = true;
		stream_stats.authenticated++;
		log_info("c2s", "%s: authenticated as %s@%s", c->peer, user,
			 vhost_name(c->vh));
		auth_free(c->auth);
		c->auth = NULL;
		if (!c->user) {
			c2s_error(c, "internal-server-error", NULL);
			break;
		}
		/* RFC 6120 §6.4.6: the client restarts the stream now. */
		c->state = C2S_OPENING;
		c->header_sent = false;
		if (c->t)
			c->f->restart(c->t);
		break;
	case AUTH_FAILURE:
		stream_stats.auth_failures++;
		send_raw(c, payload_xml);
		auth_free(c->auth);
		c->auth = NULL;
		c->state = C2S_NEGOTIATING;
		break;
	case AUTH_REFUSED:
		stream_stats.auth_failures++;
		send_raw(c, payload_xml);
		auth_free(c->auth);
		c->auth = NULL;
		c2s_error(c, "policy-violation", "too many failed authentication attempts "
			  "from your address");
		break;
	}
	resume_input(c);
}

static void handle_sasl(struct c2s *c, struct xml_node *st)
{
	int rc;

	if (tls_required(c)) {
		send_raw(c, "<failure xmlns='" NS_SASL "'><encryption-required/></failure>");
		return;
	}
	if (strcmp(st->name, "auth") == 0) {
		if (c->auth) {
			/* RFC 6120 §6.4.3: a new <auth/> while one is under way aborts it. */
			auth_free(c->auth);
			c->auth = NULL;
		}
		c->auth = auth_new(vhost_name(c->vh), c->peer, ssl_of(c), c->lcfg->tls);
		if (!c->auth) {
			c2s_error(c, "internal-server-error", NULL);
			return;
		}
		c->state = C2S_AUTHENTICATING;
	} else if (!c->auth) {
		send_raw(c, "<failure xmlns='" NS_SASL "'><malformed-request/>"
			 "<text xml:lang='en'>no authentication is under way</text></failure>");
		return;
	}
	wait_for_answer(c);
	rc = auth_step(c->auth, st, on_auth, c);
	if (rc < 0) {
		c->waiting = false;
		if (c->t)
			c->f->pause(c->t, false);
		c2s_error(c, "internal-server-error", NULL);
	}
}

/* ---- in-band registration before authentication (XEP-0077) ---- */

static void unbound_send(void *ctx, struct xml_node *answer)
{
	struct c2s *c = ctx;

	if (!c->authenticated)
		send_xml(c, answer);
	xml_unref(answer);
}

static void unbound_release(void *ctx)
{
	c2s_unref(ctx);
}

static void handle_unbound_iq(struct c2s *c, struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	struct iq_origin origin = {
		.send = unbound_send, .release = unbound_release, .ctx = c,
		.address = c->peer,
	};
	struct jid *host = jid_make(NULL, vhost_name(c->vh), NULL, NULL);

	if (!host || !type || (strcmp(type, "get") && strcmp(type, "set"))) {
		jid_free(host);
		return;	/* results and errors from an unbound client: nothing to do */
	}
	c->refs++;	/* held by the IQ until it is answered */
	if (iq_dispatch_unbound(c->vh, st, host, &origin) < 0) {
		c->refs--;
		bounce(c, st, "service-unavailable", "in-band registration is not enabled");
	}
	jid_free(host);
}

/* ---- binding ---- */

static void handle_bind(struct c2s *c, struct xml_node *iq, struct xml_node *bind)
{
	char *res = xml_child_text(bind, "resource", NS_BIND);
	char rnd[17];
	struct jid *full;
	const char *err = NULL;
	struct xml_node *reply, *b, *j;

	if (!res || !*res) {
		unsigned char r[8];

		free(res);
		RAND_bytes(r, sizeof(r));
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(rnd + 2 * i, 3, "%02x", r[i]);
		res = strdup(rnd);
	}
	full = res ? jid_make(c->user, vhost_name(c->vh), res, &err) : NULL;
	free(res);
	if (!full) {
		reply = stanza_error_reply(iq, "modify", "bad-request",
					   err ? err : "the resource is not valid");
		if (reply) {
			xml_attr_set(reply, "from", NULL);
			send_xml(c, reply);
			xml_unref(reply);
		}
		return;
	}
	c->sess = sm_bind(&c->st, full);
	if (!c->sess) {
		jid_free(full);
		c2s_error(c, "internal-server-error", NULL);
		return;
	}
	c->state = C2S_SESSION;
	reply = xml_new("iq", NS_CLIENT);
	b = reply ? xml_add_child(reply, "bind", NS_BIND) : NULL;
	j = b ? xml_add_child(b, "jid", NULL) : NULL;
	if (j) {
		xml_attr_set(reply, "type", "result");
		xml_attr_set(reply, "id", xml_attr(iq, "id"));
		xml_add_text(j, full->full, strlen(full->full));
		send_xml(c, reply);
	}
	xml_unref(reply);
	log_info("c2s", "%s: bound %s over %s", c->peer, full->full,
		 stream_transport_names[c->f->transport]);
	jid_free(full);
	struct hook_args a = { .sess = c->sess, .from = session_jid(c->sess) };
	hooks_run(vhost_name(c->vh), HOOK_SESSION_BOUND, &a);
}

/* ---- stanzas of a bound session ---- */

/* RFC 6120 §8.1.2.1: the server stamps 'from'; a client may give its own full
 * or bare JID, anything else is <invalid-from/>. */
static int stamp_from(struct c2s *c, struct xml_node *st)
{
	const struct jid *me = session_jid(c->sess);
	const char *from = xml_attr(st, "from");

	if (from) {
		struct jid *j = jid_new(from, NULL);
		bool ok = j && jid_bare_eq(j, me) && (!j->resource || jid_eq(j, me));

		jid_free(j);
		if (!ok) {
			c2s_error(c, "invalid-from", "the 'from' is not your address");
			return -1;
		}
	}
	xml_attr_set(st, "from", me->full);
	return 0;
}

static void bounce(struct c2s *c, struct xml_node *st, const char *cond, const char *text)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *r;

	if (type && strcmp(type, "error") == 0)
		return;	/* never answer an error with an error */
	r = stanza_error_reply(st, NULL, cond, text);
	if (r) {
		send_stanza(c, r);
		xml_unref(r);
	}
}

static bool route_session_stanza(struct c2s *c, struct xml_node *st);

/*
 * Every stanza counts for XEP-0198; a message gets a delivery that whoever
 * keeps it on the way holds (session.h): the client's ack waits for them.
 * Returns true when st was handed on (the caller's reference with it).
 */
static bool handle_session_stanza(struct c2s *c, struct xml_node *st)
{
	enum stanza_kind kind = stanza_kind(st);
	struct session *s = c->sess;
	struct delivery *d, *prev;
	bool handed;

	if (kind == STANZA_OTHER)
		return route_session_stanza(c, st);
	d = session_inbound_begin(s, kind == STANZA_MESSAGE);
	prev = delivery_enter(d);
	handed = route_session_stanza(c, st);
	delivery_leave(prev);
	if (c->sess == s)
		session_inbound_end(s, d);
	else
		delivery_release(d, true);	/* the session ended meanwhile */
	return handed;
}

static bool route_session_stanza(struct c2s *c, struct xml_node *st)
{
	enum stanza_kind kind = stanza_kind(st);
	const struct jid *me = session_jid(c->sess);
	const char *to = xml_attr(st, "to");
	struct jid *toj = NULL;
	const char *err = NULL, *slash;

	if (kind == STANZA_OTHER) {
		struct hook_args a = { .sess = c->sess, .stanza = st, .from = me };

		if (hooks_run(vhost_name(c->vh), HOOK_C2S_ELEMENT, &a) != HOOK_STOP)
			c2s_error(c, "unsupported-stanza-type", "this element is not a stanza "
				  "the server knows");
		return false;
	}
	if (stamp_from(c, st) < 0)
		return false;
	if (to) {
		toj = jid_new(to, &err);
		if (!toj) {
			bounce(c, st, "jid-malformed", err);
			return false;
		}
		slash = strchr(to, '/');
		st->to_resource_changed = slash && toj->resource &&
					  strcmp(slash + 1, toj->resource) != 0;
		xml_attr_set(st, "to", toj->full);	/* the prepared form */
	}
	if (kind == STANZA_IQ) {
		const char *type = xml_attr(st, "type");
		struct xml_node *payload = xml_child(st, NULL, NULL);

		if (!xml_attr(st, "id") || !type || (strcmp(type, "get") && strcmp(type, "set")
		    && strcmp(type, "result") && strcmp(type, "error"))) {
			bounce(c, st, "bad-request", "an IQ needs an id and a valid type");
			goto out;
		}
		if ((!strcmp(type, "get") || !strcmp(type, "set")) && (!payload ||
		    xml_next(payload, NULL, NULL))) {
			bounce(c, st, "bad-request", "an IQ get or set has exactly one child");
			goto out;
		}
		if (payload && !toj && !strcmp(type, "set") && payload->ns &&
		    !strcmp(payload->ns, NS_SESSION)) {
			/* RFC 3921 legacy session establishment: a no-op today. */
			struct xml_node *r = stanza_iq_result(st, NULL);

			if (r) {
				xml_attr_set(r, "from", NULL);
				send_stanza(c, r);
				xml_unref(r);
			}
			goto out;
		}
	}
	stream_stats.stanzas_in++;
	struct hook_args a = { .sess = c->sess, .stanza = st, .from = me, .to = toj };
	if (hooks_run(vhost_name(c->vh), HOOK_USER_SEND, &a) == HOOK_STOP)
		goto out;
	if (!toj) {
		if (kind == STANZA_PRESENCE) {
			/* Broadcast presence: the session's state; mod_presence fans out. */
			session_set_presence(c->sess, xml_ref(st));
			goto out;
		}
		/* RFC 6120 §10.3: no 'to' means the account itself. */
		char *bare = jid_bare_str(me);
		xml_attr_set(st, "to", bare);
		free(bare);
	}
	jid_free(toj);
	/* Our reference goes with it: the router may then change the tree in
	 * place (stanza-id) instead of copying it. */
	router_route(st);
	return true;
out:
	jid_free(toj);
	return false;
}

void c2s_element(struct c2s *c, struct xml_node *st)
{
	bool is_client = st->ns && strcmp(st->ns, NS_CLIENT) == 0;

	switch (c->state) {
	case C2S_NEGOTIATING:
	case C2S_AUTHENTICATING:
		if (st->ns && strcmp(st->ns, NS_TLS) == 0 && strcmp(st->name, "starttls") == 0
		    && c->state == C2S_NEGOTIATING)
			handle_starttls(c, st);
		else if (st->ns && strcmp(st->ns, NS_SASL) == 0)
			handle_sasl(c, st);
		else if (is_client && c->state == C2S_NEGOTIATING && !tls_required(c) &&
			 stanza_kind(st) == STANZA_IQ && xml_child(st, "query", NS_REGISTER))
			handle_unbound_iq(c, st);
		else
			c2s_error(c, "not-authorized", "authenticate first");
		break;
	case C2S_BINDING:
		if (is_client && stanza_kind(st) == STANZA_IQ) {
			struct xml_node *b = xml_child(st, "bind", NS_BIND);
			const char *type = xml_attr(st, "type");

			if (b && type && strcmp(type, "set") == 0) {
				handle_bind(c, st, b);
				break;
			}
			bounce(c, st, "not-allowed", "bind a resource first");
			break;
		}
		if (!is_client) {
			struct hook_args a = { .stanza = st, .user = c->user, .stream = &c->st };

			if (hooks_run(vhost_name(c->vh), HOOK_C2S_PREBIND, &a) == HOOK_STOP)
				break;
		}
		c2s_error(c, "not-authorized", "bind a resource first");
		break;
	case C2S_SESSION:
		/* Stanzas, and extension elements such as XEP-0198's for the hooks;
		 * an unknown element in jabber:client is an error. */
		if (is_client && stanza_kind(st) == STANZA_OTHER) {
			c2s_error(c, "unsupported-stanza-type", NULL);
			break;
		}
		if (handle_session_stanza(c, st))
			return;
		break;
	case C2S_OPENING:
		c2s_error(c, "not-authorized", "open the stream first");
		break;
	case C2S_CLOSED:
		break;
	}
	xml_unref(st);
}
