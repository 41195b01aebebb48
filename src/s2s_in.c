/*
 * s2s_in.c - the streams other servers open to Parley (RFC 6120 §4, §5, §6,
 * §13; XEP-0178, XEP-0220, XEP-0198).
 *
 * A peer opens a stream to one of our domains, upgrades it to TLS, and
 * authenticates the domain it speaks for: SASL EXTERNAL when its certificate
 * is valid for that domain, or dialback (<db:result/>), which we check with
 * the peer's authoritative server over our own outgoing stream, or at once
 * when the stream's certificate already proves the domain (XEP-0344 §2.4).
 * Each (remote, local) pair is authenticated on its own; a stanza travels
 * only on a pair that is. We also answer <db:verify/> for our own domains:
 * any node can, the secret is the cluster's.
 *
 * With stream management the peer's stanzas are acknowledged once handled:
 * a message once it is delivered or stored (delivery.h), in order.
 */
#include "s2s_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "config.h"
#include "conn.h"
#include "delivery.h"
#include "dialback.h"
#include "listener.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "stanza.h"
#include "tls.h"
#include "xmlstream.h"

#define PENDING_MAX 4096	/* messages in flight before reading stops */

struct pair {
	char remote[JID_PART_MAX + 1], local[JID_PART_MAX + 1];
	enum s2s_auth how;
	bool pending;		/* dialback verification under way */
};

/* A stanza whose ack waits (XEP-0198): messages until delivered. */
struct pend {
	struct s2s_in *in;	/* NULL once the stream is gone */
	uint32_t seq;
	bool done;
	struct pend *next;
};

struct s2s_in {
	struct conn *conn;
	struct xmlstream *xs;
	const struct config_listener *l;
	uint64_t serial;
	char id[40];
	char local[JID_PART_MAX + 1];	/* the header's to */
	char from[JID_PART_MAX + 1];	/* the header's from, "" when none */
	bool opened, closing, restart, paused, feeding, dead, counted_ip;
	bool overflowed;		/* over S2S_OUTPUT_MAX: closing */
	bool stopping;			/* shutting down: closes once what it took is delivered */
	bool version, sasl_done;
	struct pair pairs[S2S_PAIRS_MAX];
	unsigned npairs;
	/* XEP-0198 */
	bool sm_on;
	uint32_t received, h;
	struct pend *ph, *pt;
	unsigned npend;
	time_t started;
	unsigned long long stanzas_in;
	struct s2s_in *prev, *next;
};

static struct s2s_in *ins;
static uint64_t serials;
static const struct xmlstream_callbacks in_cbs;

static void feed(struct s2s_in *i);

/* ---- output ---- */

static void stream_error(struct s2s_in *i, const char *condition, const char *text);

/* A peer that asks (<db:verify/>, <r/>) and reads nothing does not grow our
 * memory: over S2S_OUTPUT_MAX, the stream ends. */
static void write_el(struct s2s_in *i, const struct xml_node *n)
{
	if (!i->conn || i->closing)
		return;
	conn_write_xml(i->conn, n, NS_CLIENT);
	if (!i->overflowed && conn_output_pending(i->conn) > S2S_OUTPUT_MAX) {
		i->overflowed = true;
		stream_error(i, "resource-constraint", "you read nothing we send");
	}
}

static void send_ack(struct s2s_in *i)
{
	struct xml_node *a = xml_new("a", NS_SM3);
	char h[16];

	snprintf(h, sizeof(h), "%u", i->h);
	if (a && xml_attr_set(a, "h", h) == 0)
		write_el(i, a);
	xml_unref(a);
}

static void in_free(struct s2s_in *i)
{
	if (i->feeding) {
		i->dead = true;
		return;
	}
	if (i->prev)
		i->prev->next = i->next;
	else
		ins = i->next;
	if (i->next)
		i->next->prev = i->prev;
	s2s_counters.streams_in--;
	while (i->ph) {
		struct pend *p = i->ph;

		i->ph = p->next;
		if (p->done)
			free(p);
		else
			p->in = NULL;	/* its delivery frees it */
	}
	if (i->counted_ip)
		listener_ip_release(conn_peer(i->conn));
	xmlstream_free(i->xs);
	conn_free(i->conn);
	free(i);
}

static void end_stream(struct s2s_in *i)
{
	if (i->closing)
		return;
	if (i->sm_on)
		send_ack(i);
	conn_write(i->conn, "</stream:stream>", 16);
	i->closing = true;
	conn_close(i->conn);
	xmlstream_stop(i->xs);	/* what follows in this read is not handled */
}

static void send_header(struct s2s_in *i)
{
	char buf[S2S_HEADER_MAX];

	s2s_stream_header(buf, sizeof(buf), i->local[0] ? i->local : "", i->from[0] ? i->from
			  : NULL, i->id, i->version);
	conn_write(i->conn, buf, strlen(buf));
	i->opened = true;
}

static void stream_error(struct s2s_in *i, const char *condition, const char *text)
{
	struct xml_node *e;

	if (i->closing)
		return;
	if (!i->opened) {
		snprintf(i->id, sizeof(i->id), "-");
		send_header(i);
	}
	log_info("s2s", "%s%s%s: stream error <%s/>%s%s", conn_peer(i->conn),
		 i->from[0] ? " " : "", i->from, condition, text ? ": " : "", text ? text : "");
	if ((e = stanza_stream_error(condition, text))) {
		write_el(i, e);
		xml_unref(e);
	}
	end_stream(i);
}

/* ---- pairs ---- */

static struct pair *pair_find(struct s2s_in *i, const char *remote, const char *local)
{
	for (unsigned k = 0; k < i->npairs; k++)
		if (strcmp(i->pairs[k].remote, remote) == 0 &&
		    (!local || strcmp(i->pairs[k].local, local) == 0))
			return &i->pairs[k];
	return NULL;
}

static struct pair *pair_add(struct s2s_in *i, const char *remote, const char *local,
			     enum s2s_auth how, bool pending)
{
	struct pair *p = pair_find(i, remote, local);

	if (!p) {
		if (i->npairs >= S2S_PAIRS_MAX)
			return NULL;
		p = &i->pairs[i->npairs++];
		snprintf(p->remote, sizeof(p->remote), "%s", remote);
		snprintf(p->local, sizeof(p->local), "%s", local);
	}
	p->how = how;
	p->pending = pending;
	if (!pending)
		log_info("s2s", "%s -> %s: incoming stream from %s authenticated by %s%s", remote,
			 local, conn_peer(i->conn), s2s_auth_names[how],
			 conn_is_tls(i->conn) ? "" : ", no TLS");
	return p;
}

static void pair_drop(struct s2s_in *i, struct pair *p)
{
	*p = i->pairs[--i->npairs];
}

/* ---- features ---- */

static bool tls_offered(const struct s2s_in *i)
{
	return !conn_is_tls(i->conn) && i->l->tls != TLS_NONE && tls_available();
}

static void send_features(struct s2s_in *i)
{
	struct xml_node *f = xml_new("features", NS_STREAMS), *c;
	bool authed = false;

	if (!f)
		return;
	for (unsigned k = 0; k < i->npairs; k++)
		authed |= !i->pairs[k].pending;
	if (tls_offered(i)) {
		c = xml_add_child(f, "starttls", NS_TLS);
		/* Required when our policy wants certificates from everyone. */
		if (c && server.cfg->s2s.secure_auth && !server.cfg->s2s.insecure_domains)
			xml_add_child(c, "required", NS_TLS);
	} else {
		if (!i->sasl_done && conn_is_tls(i->conn) && i->from[0] &&
		    tls_peer_check(conn_ssl(i->conn), i->from, NULL, 0) == TLS_PEER_VALID &&
		    (c = xml_add_child(f, "mechanisms", NS_SASL))) {
			struct xml_node *m = xml_add_child(c, "mechanism", NS_SASL);

			if (m)
				xml_add_text(m, "EXTERNAL", 8);
		}
		if ((c = xml_add_child(f, "dialback", NS_DIALBACK_FEATURE)))
			xml_add_child(c, "errors", NULL);
		if (authed && server.cfg->s2s.stream_mgmt && !i->sm_on)
			xml_add_child(f, "sm", NS_SM3);
	}
	write_el(i, f);
	xml_unref(f);
}

static void on_open(void *arg, struct xml_node *h, const char *default_ns)
{
	struct s2s_in *i = arg;
	const char *to = xml_attr(h, "to"), *from = xml_attr(h, "from");
	const char *ver = xml_attr(h, "version");
	char prepped[JID_PART_MAX + 1];
	const char *err = NULL;
	unsigned char rnd[12];

	i->version = ver && strncmp(ver, "1.", 2) == 0;
	RAND_bytes(rnd, sizeof(rnd));
	for (size_t k = 0; k < sizeof(rnd); k++)
		snprintf(i->id + 2 * k, 3, "%02x", rnd[k]);
	if (!default_ns || strcmp(default_ns, NS_SERVER_STREAM) != 0) {
		xml_unref(h);
		stream_error(i, "invalid-namespace", "a server-to-server stream is in "
			     "jabber:server");
		return;
	}
	if (!to || jid_nameprep(to, prepped, sizeof(prepped), &err) < 0 ||
	    !s2s_is_local(prepped)) {
		xml_unref(h);
		stream_error(i, "host-unknown", "this server does not serve that domain");
		return;
	}
	if (i->local[0] && strcmp(i->local, prepped) != 0) {
		xml_unref(h);
		stream_error(i, "host-unknown", "the domain changed at the stream restart");
		return;
	}
	snprintf(i->local, sizeof(i->local), "%s", prepped);
	if (from) {
		if (jid_nameprep(from, prepped, sizeof(prepped), &err) < 0 || strchr(from, '@')) {
			xml_unref(h);
			stream_error(i, "invalid-from", "the from of the stream header is not a "
				     "domain");
			return;
		}
		snprintf(i->from, sizeof(i->from), "%s", prepped);
	}
	xml_unref(h);
	if (!server.cfg->s2s.enabled || (i->from[0] &&
					 !config_s2s_allowed(&server.cfg->s2s, i->from))) {
		stream_error(i, "policy-violation", "this server does not federate with yours");
		return;
	}
	send_header(i);
	if (i->version)
		send_features(i);
}

/* ---- authentication ---- */

static void sasl_fail(struct s2s_in *i, const char *condition, const char *text)
{
	struct xml_node *f = xml_new("failure", NS_SASL), *t;

	s2s_counters.auth_failures++;
	if (f) {
		xml_add_child(f, condition, NS_SASL);
		if ((t = xml_add_child(f, "text", NS_SASL)))
			xml_add_text(t, text, strlen(text));
		write_el(i, f);
		xml_unref(f);
	}
	log_info("s2s", "%s: SASL EXTERNAL for %s refused: %s", conn_peer(i->conn),
		 i->from[0] ? i->from : "?", text);
}

static void on_auth(struct s2s_in *i, struct xml_node *el)
{
	const char *mech = xml_attr(el, "mechanism");
	char *text = xml_text(el);
	char authz[JID_PART_MAX + 1] = "", why[200];
	size_t len = 0;

	if (!mech || strcmp(mech, "EXTERNAL") != 0 || !conn_is_tls(i->conn) || i->sasl_done) {
		sasl_fail(i, "invalid-mechanism", "only EXTERNAL, over TLS, once");
		goto out;
	}
	/* RFC 6120 §6.4.2: "=" is an empty response; an authzid is the domain. */
	if (text && *text && strcmp(text, "=") != 0) {
		unsigned char raw[JID_PART_MAX + 1];

		if (base64_decode(text, strlen(text), raw, sizeof(raw) - 1, &len) < 0) {
			sasl_fail(i, "incorrect-encoding", "the response is not base64");
			goto out;
		}
		raw[len] = '\0';
		if (jid_nameprep((char *)raw, authz, sizeof(authz), NULL) < 0 ||
		    (i->from[0] && strcmp(authz, i->from) != 0)) {
			sasl_fail(i, "invalid-authzid", "the identity is not the stream's domain");
			goto out;
		}
	} else if (i->from[0]) {
		snprintf(authz, sizeof(authz), "%s", i->from);
	}
	if (!authz[0]) {
		sasl_fail(i, "invalid-authzid", "no identity: send a from in the stream header");
		goto out;
	}
	if (!config_s2s_allowed(&server.cfg->s2s, authz)) {
		sasl_fail(i, "not-authorized", "federation with that domain is not allowed");
		goto out;
	}
	if (tls_peer_check(conn_ssl(i->conn), authz, why, sizeof(why)) != TLS_PEER_VALID) {
		sasl_fail(i, "not-authorized", why);
		goto out;
	}
	if (!pair_add(i, authz, i->local, S2S_AUTH_EXTERNAL, false)) {
		sasl_fail(i, "temporary-auth-failure", "too many domains on this stream");
		goto out;
	}
	s2s_counters.external_ok++;
	i->sasl_done = true;
	snprintf(i->from, sizeof(i->from), "%s", authz);
	{
		struct xml_node *s = xml_new("success", NS_SASL);

		if (s) {
			write_el(i, s);
			xml_unref(s);
		}
	}
	i->restart = true;
	i->opened = false;
	xmlstream_stop(i->xs);
out:
	free(text);
}

static void db_answer(struct s2s_in *i, const char *name, const char *from, const char *to,
		      const char *id, const char *type, const char *condition)
{
	struct xml_node *r = xml_new(name, NS_DIALBACK), *e;

	if (!r || xml_attr_set(r, "from", from) < 0 || xml_attr_set(r, "to", to) < 0 ||
	    (id && xml_attr_set(r, "id", id) < 0) || xml_attr_set(r, "type", type) < 0) {
		xml_unref(r);
		return;
	}
	/* XEP-0220 §2.4: the <error/> of a stanza, in the stream's namespace. */
	if (condition && (e = xml_add_child(r, "error", NS_CLIENT))) {
		xml_attr_set(e, "type", stanza_error_type(condition));
		xml_add_child(e, condition, "urn:ietf:params:xml:ns:xmpp-stanzas");
	}
	write_el(i, r);
	xml_unref(r);
}

/* <db:result from=REMOTE to=LOCAL>KEY</db:result>: the peer says it is REMOTE. */
static void on_db_result(struct s2s_in *i, struct xml_node *el)
{
	const char *from = xml_attr(el, "from"), *to = xml_attr(el, "to");
	char remote[JID_PART_MAX + 1], local[JID_PART_MAX + 1], *key;

	if (!from || !to || jid_nameprep(from, remote, sizeof(remote), NULL) < 0 ||
	    jid_nameprep(to, local, sizeof(local), NULL) < 0) {
		stream_error(i, "improper-addressing", "db:result needs a from and a to");
		return;
	}
	if (!s2s_is_local(local)) {
		db_answer(i, "result", local, remote, NULL, "error", "item-not-found");
		return;
	}
	if (s2s_is_local(remote)) {	/* we are not our own peer */
		db_answer(i, "result", local, remote, NULL, "error", "not-authorized");
		return;
	}
	if (!config_s2s_allowed(&server.cfg->s2s, remote)) {
		db_answer(i, "result", local, remote, NULL, "error", "policy-violation");
		return;
	}
	if (conn_is_tls(i->conn) &&
	    tls_peer_check(conn_ssl(i->conn), remote, NULL, 0) == TLS_PEER_VALID) {
		/* The certificate already proves the domain (XEP-0344 §2.4). */
		if (!pair_add(i, remote, local, S2S_AUTH_CERT, false)) {
			db_answer(i, "result", local, remote, NULL, "error",
				  "resource-constraint");
			return;
		}
		db_answer(i, "result", local, remote, NULL, "valid", NULL);
		return;
	}
	if (s2s_needs_cert(remote)) {
		s2s_counters.auth_failures++;
		log_info("s2s", "%s: dialback for %s refused: no valid certificate, and the "
			 "policy requires one", conn_peer(i->conn), remote);
		db_answer(i, "result", local, remote, NULL, "error", "not-authorized");
		return;
	}
	key = xml_text(el);
	if (!key || !*key || strlen(key) > 70 || !pair_add(i, remote, local, S2S_AUTH_DIALBACK,
							    true) ||
	    s2s_verify_request(local, remote, i->id, key, i->serial) < 0) {
		struct pair *p = pair_find(i, remote, local);

		if (p && p->pending)
			pair_drop(i, p);
		db_answer(i, "result", local, remote, NULL, "error", "resource-constraint");
	}
	free(key);
}

void s2s_in_verify_result(uint64_t serial, const char *local, const char *remote,
			  const char *id, bool valid)
{
	struct s2s_in *i;
	struct pair *p;

	(void)id;
	for (i = ins; i && i->serial != serial; i = i->next)
		;
	if (!i || i->closing || !(p = pair_find(i, remote, local)) || !p->pending)
		return;
	if (valid) {
		s2s_counters.dialback_verified++;
		pair_add(i, remote, local, S2S_AUTH_DIALBACK, false);
		db_answer(i, "result", local, remote, NULL, "valid", NULL);
		return;
	}
	s2s_counters.auth_failures++;
	log_info("s2s", "%s: dialback for %s failed: its authoritative server said invalid "
		 "(or did not answer)", conn_peer(i->conn), remote);
	pair_drop(i, p);
	db_answer(i, "result", local, remote, NULL, "invalid", NULL);
}

/* <db:verify/>: we are the authoritative server for LOCAL; is the key ours? */
static void on_db_verify(struct s2s_in *i, struct xml_node *el)
{
	const char *from = xml_attr(el, "from"), *to = xml_attr(el, "to");
	const char *id = xml_attr(el, "id");
	size_t slen;
	const unsigned char *sec = s2s_secret(&slen);
	char *key = xml_text(el);
	bool valid;

	if (!from || !to || !id) {
		free(key);
		stream_error(i, "improper-addressing", "db:verify needs from, to and id");
		return;
	}
	valid = sec && s2s_is_local(to) && dialback_check(sec, slen, from, to, id, key);
	free(key);
	db_answer(i, "verify", to, from, id, valid ? "valid" : "invalid", NULL);
	log_debug("s2s", "%s: answered db:verify for %s -> %s: %s", conn_peer(i->conn), to,
		  from, valid ? "valid" : "invalid");
}

/* ---- stanzas ---- */

static void advance(struct s2s_in *i)
{
	while (i->ph && i->ph->done) {
		struct pend *p = i->ph;

		i->h = p->seq;
		i->ph = p->next;
		if (!i->ph)
			i->pt = NULL;
		i->npend--;
		free(p);
	}
	if (i->stopping && !i->ph) {
		stream_error(i, "system-shutdown", "the server is shutting down");
		return;
	}
	if (i->paused && !i->stopping && i->npend < PENDING_MAX / 2) {
		i->paused = false;
		conn_pause(i->conn, false);
		feed(i);
	}
}

static void on_delivered(void *arg, bool ok)
{
	struct pend *p = arg;

	(void)ok;	/* undelivered means answered with an error: handled too */
	p->done = true;
	if (!p->in) {
		free(p);
		return;
	}
	advance(p->in);
}

static struct pend *pend_add(struct s2s_in *i, uint32_t seq, bool done)
{
	struct pend *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->in = i;
	p->seq = seq;
	p->done = done;
	if (i->pt)
		i->pt->next = p;
	else
		i->ph = p;
	i->pt = p;
	i->npend++;
	return p;
}

static void on_stanza(struct s2s_in *i, struct xml_node *st)
{
	const char *from = xml_attr(st, "from"), *to = xml_attr(st, "to");
	struct jid *fj = from ? jid_new(from, NULL) : NULL, *tj = to ? jid_new(to, NULL) : NULL;
	struct pair *p;
	uint32_t seq;

	if (!fj || !tj) {
		jid_free(fj);
		jid_free(tj);
		xml_unref(st);
		stream_error(i, from && to ? "invalid-from" : "improper-addressing",
			     "a stanza between servers has a valid from and to");
		return;
	}
	p = pair_find(i, fj->domain, tj->domain);
	if (!p || p->pending) {
		const char *cond = !pair_find(i, fj->domain, NULL) ? "invalid-from" :
				   "host-unknown";

		jid_free(fj);
		jid_free(tj);
		xml_unref(st);
		stream_error(i, i->npairs ? cond : "not-authorized",
			     "that domain pair is not authenticated on this stream");
		return;
	}
	jid_free(fj);
	jid_free(tj);
	i->stanzas_in++;
	s2s_counters.stanzas_in++;
	s2s_ns_to_client(st);
	seq = ++i->received;
	if (i->sm_on && stanza_kind(st) == STANZA_MESSAGE) {
		struct pend *pe = pend_add(i, seq, false);
		struct delivery *d = pe ? delivery_new(false, on_delivered, pe) : NULL, *prev;

		prev = delivery_enter(d);
		router_route(st);
		delivery_leave(prev);
		if (d)
			delivery_release(d, true);
		else if (pe)
			pe->done = true, advance(i);
		if (i->npend >= PENDING_MAX && !i->paused) {
			i->paused = true;	/* the recipients are slow: so are we */
			conn_pause(i->conn, true);
			xmlstream_stop(i->xs);
		}
		return;
	}
	router_route(st);
	if (!i->ph)
		i->h = seq;
	else if (!pend_add(i, seq, true))
		stream_error(i, "resource-constraint", "out of memory");
}

static void on_element(void *arg, struct xml_node *el)
{
	struct s2s_in *i = arg;
	const char *ns = el->ns ? el->ns : "";

	if (strcmp(ns, NS_TLS) == 0 && strcmp(el->name, "starttls") == 0 && tls_offered(i)) {
		struct xml_node *p = xml_new("proceed", NS_TLS);

		if (p) {
			write_el(i, p);
			xml_unref(p);
		}
		i->restart = i->paused = true;
		i->opened = false;
		xmlstream_stop(i->xs);
		if (conn_starttls(i->conn) < 0)
			stream_error(i, "internal-server-error", "TLS failed");
	} else if (strcmp(ns, NS_SASL) == 0 && strcmp(el->name, "auth") == 0) {
		on_auth(i, el);
	} else if (strcmp(ns, NS_DIALBACK) == 0 && strcmp(el->name, "result") == 0) {
		if (tls_offered(i) && server.cfg->s2s.secure_auth &&
		    !server.cfg->s2s.insecure_domains)
			stream_error(i, "policy-violation", "STARTTLS first");
		else
			on_db_result(i, el);
	} else if (strcmp(ns, NS_DIALBACK) == 0 && strcmp(el->name, "verify") == 0) {
		on_db_verify(i, el);
	} else if (strcmp(ns, NS_SM3) == 0) {
		if (strcmp(el->name, "enable") == 0 && i->npairs && !i->sm_on &&
		    server.cfg->s2s.stream_mgmt) {
			struct xml_node *e = xml_new("enabled", NS_SM3);

			i->sm_on = true;
			i->received = i->h = 0;
			if (e) {
				write_el(i, e);
				xml_unref(e);
			}
		} else if (strcmp(el->name, "r") == 0 && i->sm_on) {
			send_ack(i);
		} else if (strcmp(el->name, "enable") == 0) {
			struct xml_node *f = xml_new("failed", NS_SM3);

			if (f) {
				xml_add_child(f, "unexpected-request",
					      "urn:ietf:params:xml:ns:xmpp-stanzas");
				write_el(i, f);
				xml_unref(f);
			}
		}
	} else if (strcmp(ns, NS_STREAMS) == 0 && strcmp(el->name, "error") == 0) {
		struct xml_node *c = xml_child(el, NULL, "urn:ietf:params:xml:ns:xmpp-streams");

		log_info("s2s", "%s%s%s: the peer ended the stream with <%s/>", conn_peer(i->conn),
			 i->from[0] ? " " : "", i->from, c ? c->name : "?");
		end_stream(i);
	} else if (stanza_kind(el) != STANZA_OTHER && strcmp(ns, NS_SERVER_STREAM) == 0) {
		on_stanza(i, el);
		return;
	} else {
		char text[160];

		snprintf(text, sizeof(text), "<%.40s xmlns='%.80s'/> is not something a server "
			 "sends", el->name, ns);
		stream_error(i, "unsupported-stanza-type", text);
	}
	xml_unref(el);
}

static void on_close(void *arg)
{
	end_stream(arg);
}

static void on_error(void *arg, enum xmlstream_error err, const char *text)
{
	stream_error(arg, xmlstream_error_condition(err), text);
}

static const struct xmlstream_callbacks in_cbs = {
	.open = on_open, .stanza = on_element, .close = on_close, .error = on_error,
};

static void feed(struct s2s_in *i)
{
	if (i->feeding)
		return;
	i->feeding = true;
	while (!i->paused && !i->dead && !i->closing) {
		struct evbuffer *in = conn_input(i->conn);
		struct evbuffer_iovec v;
		ssize_t used;

		if (i->restart) {
			i->restart = false;
			if (xmlstream_reset(i->xs) < 0) {
				stream_error(i, "internal-server-error", "out of memory");
				break;
			}
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		used = xmlstream_feed(i->xs, v.iov_base, v.iov_len);
		if (used < 0 || i->dead)
			break;
		evbuffer_drain(in, (size_t)used);
	}
	i->feeding = false;
	if (i->dead) {
		i->dead = false;
		in_free(i);
	}
}

static void on_conn(struct conn *c, void *arg, enum conn_event ev, const char *why)
{
	struct s2s_in *i = arg;

	(void)c;
	switch (ev) {
	case CONN_READ:
		feed(i);
		break;
	case CONN_TLS_UP:
		log_debug("s2s", "%s: TLS up (%s)", conn_peer(i->conn),
			  SSL_get_version(conn_ssl(i->conn)));
		i->paused = false;
		feed(i);
		break;
	case CONN_TIMEOUT:
		stream_error(i, "connection-timeout", "idle for too long");
		break;
	case CONN_CONNECTED:
		break;
	case CONN_EOF:
	case CONN_ERROR:
		log_info("s2s", "%s%s%s: connection lost (%s)", conn_peer(i->conn),
			 i->from[0] ? " " : "", i->from, why ? why : "closed");
		in_free(i);
		break;
	case CONN_CLOSED:
		in_free(i);
		break;
	}
}

static void in_accept(evutil_socket_t fd, const struct sockaddr *sa,
		      const struct config_listener *l)
{
	struct s2s_in *i = calloc(1, sizeof(*i));
	struct xmlstream_limits lim = {
		.max_stanza = server.cfg->limits.stanza_size,
		.max_depth = server.cfg->limits.depth,
		.max_attrs = server.cfg->limits.attributes,
	};

	if (!i) {
		evutil_closesocket(fd);
		return;
	}
	i->conn = conn_new_ex(fd, sa, l->tls == TLS_DIRECT, tls_new_server_s2s, on_conn, i);
	if (!i->conn) {
		free(i);
		return;
	}
	i->l = l;
	i->serial = ++serials;
	i->started = time(NULL);
	i->next = ins;
	if (ins)
		ins->prev = i;
	ins = i;
	s2s_counters.streams_in++;
	s2s_counters.accepted++;
	if (!(i->xs = xmlstream_new(&lim, &in_cbs, i))) {
		stream_error(i, "internal-server-error", NULL);
		return;
	}
	conn_set_timeout(i->conn, server.cfg->s2s.idle_timeout);
	if (!server.cfg->s2s.enabled) {
		stream_error(i, "policy-violation", "this server does not federate");
		return;
	}
	if (!listener_ip_acquire(conn_peer(i->conn))) {
		stream_error(i, "policy-violation", "too many connections from your address");
		return;
	}
	i->counted_ip = true;
	log_debug("s2s", "%s: incoming stream (%s)", conn_peer(i->conn),
		  l->tls == TLS_DIRECT ? "direct TLS" : "plain");
}

int s2s_in_init(void)
{
	return listener_register(LISTEN_S2S, in_accept);
}

/* ---- administration ---- */

void s2s_in_close_all(const char *condition, const char *text)
{
	for (struct s2s_in *i = ins; i; i = i->next) {
		if (i->ph && !i->closing) {
			/* Stanzas on their way to storage: the acknowledgement at the
			 * close counts them, so the peer does not send them again. */
			i->stopping = true;
			i->paused = true;
			conn_pause(i->conn, true);
			continue;
		}
		stream_error(i, condition, text);
	}
}

size_t s2s_in_close_domain(const char *domain)
{
	size_t n = 0;

	for (struct s2s_in *i = ins; i; i = i->next) {
		if (i->closing || (strcmp(i->from, domain) != 0 && !pair_find(i, domain, NULL)))
			continue;
		n++;
		stream_error(i, "policy-violation", "closed by the administrator");
	}
	return n;
}

void s2s_in_list(struct evbuffer *b, bool json, bool *first)
{
	time_t now = time(NULL);

	for (struct s2s_in *i = ins; i; i = i->next) {
		const char *tls = conn_is_tls(i->conn) ? SSL_get_version(conn_ssl(i->conn)) : "-";
		unsigned n = i->npairs ? i->npairs : 1;

		for (unsigned k = 0; k < n; k++) {
			const struct pair *p = i->npairs ? &i->pairs[k] : NULL;
			const char *remote = p ? p->remote : i->from[0] ? i->from : "?";
			const char *auth = !p ? "none" : p->pending ? "(verifying)"
					   : s2s_auth_names[p->how];

			if (json)
				evbuffer_add_printf(b, "%s{\"direction\":\"in\",\"local\":\"%s\","
						    "\"remote\":\"%s\",\"auth\":\"%s\",\"tls\":"
						    "\"%s\",\"address\":\"%s\",\"stanzas_in\":%llu,"
						    "\"sm\":%s,\"age\":%lld}", *first ? "" : ",",
						    p ? p->local : i->local, remote, auth, tls,
						    conn_peer(i->conn), i->stanzas_in,
						    i->sm_on ? "true" : "false",
						    (long long)(now - i->started));
			else
				evbuffer_add_printf(b, "%-3s %-28s %-28s %-13s %-8s %5s %8llu %8s "
						    "%llds\n", "in", p ? p->local : i->local,
						    remote, auth, tls, "-", i->stanzas_in, "-",
						    (long long)(now - i->started));
			*first = false;
		}
	}
}

void s2s_in_free_all(void)
{
	while (ins) {
		ins->feeding = false;
		in_free(ins);
	}
}
