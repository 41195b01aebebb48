/*
 * component.c - external components (XEP-0114): the jabber:component:accept
 * stream of a component listener, its handshake, and the service that each
 * configured domain is (component.h).
 *
 * One struct component per <component> of the config, for the life of the
 * process: its domain is a service from start-up (service_add_external), and
 * its handler, deliver(), writes what the router hands it to the component's
 * stream, or bounces it while there is none. One struct cstream per TCP
 * connection:
 *
 *	OPENING -(header to= a configured domain)-> HANDSHAKE
 *	        -(<handshake> with the right digest)-> READY -> CLOSED
 *
 * Where XEP-0114 leaves a choice, compared with Prosody's mod_component:
 * - A second connection for a domain that is connected is refused with
 *   <conflict/> once its handshake is right (Prosody's default, "kick_new"):
 *   the working connection keeps working, and two instances of a gateway
 *   started by mistake do not take the domain from each other in turn. The
 *   price: a connection that died without a FIN holds the domain until the
 *   idle ping finds it dead (idle-timeout, then at most a minute).
 * - Stanzas to a component that is not connected are answered with
 *   <service-unavailable type='wait'/> (Prosody up to 0.11; 0.12 answers
 *   remote-server-timeout with its own <not-connected/>). Errors, IQ results
 *   and unavailable presence are dropped: an error about them helps no one.
 * - XEP-0114 has no acknowledgements: what was written to a connection that
 *   then died is lost with it.
 */
#include "component.h"

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ctl.h"
#include "jid.h"
#include "listener.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "stanza.h"
#include "vhost.h"
#include "xml.h"
#include "xmlstream.h"

/* Output waiting for a component that does not read: bounded as a client's is
 * (c2s.c), or a stalled gateway would hold the server's memory hostage. */
#define COMPONENT_OUTPUT_MAX (4u << 20)
#define STREAM_ID_BYTES 16
#define PING_WAIT_MAX 60	/* seconds for an answer to the idle ping */

enum cstate {
	CS_OPENING,		/* waiting for the component's stream header */
	CS_HANDSHAKE,		/* our header is out: <handshake/> expected */
	CS_READY,		/* authenticated: stanzas flow */
	CS_CLOSED,		/* closed or errored; waiting for the flush */
};

struct cstream;

struct component {
	const struct config_component *cfg;
	struct vhost *svc;
	struct cstream *stream;		/* the authenticated one, or NULL */
	time_t since;
	unsigned long long in, out, bounced;
};

struct cstream {
	struct conn *conn;
	struct xmlstream *xs;
	struct component *comp;		/* the one its header named */
	enum cstate state;
	bool counted_ip;		/* holds a slot in the per-address count */
	bool header_sent;
	bool pinged;			/* idle: a ping is out, waiting for any bytes */
	bool feeding;			/* inside feed(): do not free */
	bool dead;			/* the connection ended inside feed() */
	char dead_why[96];
	char id[2 * STREAM_ID_BYTES + 1];
	char peer[48];
	struct cstream *prev, *next;	/* every open stream */
};

static struct {
	struct component *list;		/* one per <component>, never moved */
	size_t n;
	struct cstream *streams;
	unsigned open, connected;
} reg;

static void cs_error(struct cstream *cs, const char *condition, const char *text);

/* ---- the handshake digest ---- */

void component_digest(const char *stream_id, const char *secret,
		      char out[COMPONENT_DIGEST_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
		  EVP_DigestUpdate(ctx, stream_id, strlen(stream_id)) == 1 &&
		  EVP_DigestUpdate(ctx, secret, strlen(secret)) == 1 &&
		  EVP_DigestFinal_ex(ctx, md, &len) == 1 && len * 2 == COMPONENT_DIGEST_LEN;

	EVP_MD_CTX_free(ctx);
	out[0] = '\0';		/* matches nothing: component_handshake_ok says no */
	if (!ok)
		return;
	for (unsigned i = 0; i < len; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * len] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

bool component_handshake_ok(const char *stream_id, const char *secret, const char *given)
{
	char want[COMPONENT_DIGEST_LEN + 1], got[COMPONENT_DIGEST_LEN];
	bool ok;

	/* The length is no secret: every right answer has the same. */
	if (strlen(given) != COMPONENT_DIGEST_LEN)
		return false;
	component_digest(stream_id, secret, want);
	if (strlen(want) != COMPONENT_DIGEST_LEN)
		return false;
	for (size_t i = 0; i < COMPONENT_DIGEST_LEN; i++)
		got[i] = given[i] >= 'A' && given[i] <= 'F' ? (char)(given[i] + 32) : given[i];
	ok = CRYPTO_memcmp(want, got, COMPONENT_DIGEST_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

/* ---- output ---- */

/* A stanza's own namespace (jabber:client; jabber:server from s2s) is written
 * as the stream's default, so the component reads it in
 * jabber:component:accept, as XEP-0114 has it. */
static int write_stanza(struct cstream *cs, const struct xml_node *st)
{
	if (cs->state == CS_CLOSED)
		return -1;
	return conn_write_xml(cs->conn, st, stanza_kind(st) != STANZA_OTHER ? st->ns
			      : NS_CLIENT);
}

static void send_header(struct cstream *cs)
{
	static const char hex[] = "0123456789abcdef";
	static const char head[] = "<?xml version='1.0'?><stream:stream xmlns='" NS_COMPONENT
				   "' xmlns:stream='" NS_STREAMS "' id='";
	unsigned char rnd[STREAM_ID_BYTES];
	struct xml_buf b = { 0 };
	const char *dom = cs->comp ? cs->comp->cfg->domain : NULL;
	int rc;

	cs->header_sent = true;
	/* The digest is SHA1(id + secret): an id that repeats would let a
	 * handshake overheard once be played again. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		log_error("component", "%s: no random bytes for a stream id", cs->peer);
		conn_close(cs->conn);
		cs->state = CS_CLOSED;
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		cs->id[2 * i] = hex[rnd[i] >> 4];
		cs->id[2 * i + 1] = hex[rnd[i] & 15];
	}
	cs->id[2 * sizeof(rnd)] = '\0';
	rc = xml_buf_add(&b, head, sizeof(head) - 1);
	rc |= xml_buf_add(&b, cs->id, strlen(cs->id));
	if (dom) {
		rc |= xml_buf_add(&b, "' from='", 8);
		rc |= xml_escape(&b, dom, strlen(dom), true);
	}
	rc |= xml_buf_add(&b, "'>", 2);
	if (rc < 0) {
		conn_close(cs->conn);
		cs->state = CS_CLOSED;
	} else {
		conn_write(cs->conn, b.data, b.len);
	}
	xml_buf_free(&b);
}

/* The stream no longer carries its domain: from now on what comes for it is
 * bounced. */
static void cs_detach(struct cstream *cs, const char *why)
{
	struct component *comp = cs->comp;

	if (!comp || comp->stream != cs)
		return;
	comp->stream = NULL;
	reg.connected--;
	log_info("component", "%s: component %s disconnected: %s", cs->peer, comp->cfg->domain,
		 why);
}

/* Stream error (RFC 6120 §4.9.3): our header first if it is not out, then the
 * error, the end of the stream, and the close once it is flushed. */
static void cs_error(struct cstream *cs, const char *condition, const char *text)
{
	struct xml_node *e;
	char why[64];

	if (cs->state == CS_CLOSED)
		return;
	if (!cs->header_sent)
		send_header(cs);
	log_info("component", "%s%s%s: stream error <%s/>%s%s", cs->peer, cs->comp ? " " : "",
		 cs->comp ? cs->comp->cfg->domain : "", condition, text ? ": " : "",
		 text ? text : "");
	if (cs->state != CS_CLOSED && (e = stanza_stream_error(condition, text))) {
		conn_write_xml(cs->conn, e, NS_COMPONENT);
		xml_unref(e);
	}
	snprintf(why, sizeof(why), "stream error <%s/>", condition);
	cs_detach(cs, why);
	if (cs->state != CS_CLOSED)
		conn_write(cs->conn, "</stream:stream>", 16);
	cs->state = CS_CLOSED;
	conn_close(cs->conn);
	xmlstream_stop(cs->xs);
}

/* ---- bouncing ---- */

/* An error back to whoever sent st to a component that cannot take it. */
static void bounce(struct component *comp, const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	enum stanza_kind kind = stanza_kind(st);
	struct xml_node *r;
	char text[JID_PART_MAX + 64];

	if (type && (!strcmp(type, "error") || (kind == STANZA_IQ && !strcmp(type, "result")) ||
		     (kind == STANZA_PRESENCE && !strcmp(type, "unavailable"))))
		return;
	if (kind == STANZA_OTHER || !xml_attr(st, "from"))
		return;
	snprintf(text, sizeof(text), "the component %s is not connected", comp->cfg->domain);
	if (!(r = stanza_error_reply(st, "wait", "service-unavailable", text)))
		return;
	comp->bounced++;
	log_debug("component", "%s: not connected, <%s/> from %s bounced", comp->cfg->domain,
		  st->name, xml_attr(st, "from"));
	router_route(r);
}

/* The service's handler (vhost.h): everything the router has for the domain. */
static void deliver(void *arg, struct xml_node *st, const struct jid *from, const struct jid *to)
{
	struct component *comp = arg;
	struct cstream *cs = comp->stream;

	(void)from;
	(void)to;
	/* Closing now is safe: conn_close() frees nothing before the loop turns. */
	if (cs && conn_output_pending(cs->conn) > COMPONENT_OUTPUT_MAX) {
		cs_error(cs, "policy-violation", "the component does not read its stream");
		cs = NULL;
	}
	if (!cs || write_stanza(cs, st) < 0) {
		bounce(comp, st);
		return;
	}
	comp->out++;
}

/* ---- input ---- */

/* A component's stanzas are jabber:client inside: XEP-0114's namespace only
 * names the stream. Rewritten in place before routing (the tree is fresh from
 * the parser, and the name is shorter), so the rest of the server sees what
 * it would from a client. Depth is bounded by the parser's limits. */
static void to_client_ns(struct xml_node *n)
{
	_Static_assert(sizeof(NS_CLIENT) <= sizeof(NS_COMPONENT), "the rewrite fits");

	if (n->ns && strcmp(n->ns, NS_COMPONENT) == 0)
		memcpy(n->ns, NS_CLIENT, sizeof(NS_CLIENT));
	for (struct xml_node *c = n->children; c; c = c->next)
		if (c->type == XML_ELEMENT)
			to_client_ns(c);
}

/* A stanza error straight back to the component (its stanza went nowhere). */
static void answer(struct cstream *cs, const struct xml_node *st, const char *condition,
		   const char *text)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *r;

	if (type && (!strcmp(type, "error") || (stanza_kind(st) == STANZA_IQ &&
						!strcmp(type, "result"))))
		return;
	if ((r = stanza_error_reply(st, NULL, condition, text))) {
		write_stanza(cs, r);
		xml_unref(r);
	}
}

static bool iq_valid(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	const struct xml_node *payload = xml_child(st, NULL, NULL);

	if (!xml_attr(st, "id") || !type)
		return false;
	if (!strcmp(type, "get") || !strcmp(type, "set"))
		return payload && !xml_next(payload, NULL, NULL);
	return !strcmp(type, "result") || !strcmp(type, "error");
}

/* A stanza of an authenticated component: 'from' must be at its domain and
 * 'to' valid; then it goes to the router. Returns true when st was handed on
 * (with the caller's reference). */
static bool from_component(struct cstream *cs, struct xml_node *st)
{
	const char *dom = cs->comp->cfg->domain, *to, *err = NULL;
	enum stanza_kind kind;
	struct jid *j;

	if (st->ns && strcmp(st->ns, NS_COMPONENT) == 0)
		to_client_ns(st);
	kind = stanza_kind(st);
	if (kind == STANZA_OTHER) {
		cs_error(cs, "unsupported-stanza-type", "after the handshake only message, "
			 "presence and iq");
		return false;
	}
	j = xml_attr(st, "from") ? jid_new(xml_attr(st, "from"), NULL) : NULL;
	if (!j || strcmp(j->domain, dom) != 0) {
		char text[JID_PART_MAX + 64];

		snprintf(text, sizeof(text), "the 'from' must be %s or an address at it", dom);
		jid_free(j);
		cs_error(cs, "invalid-from", text);
		return false;
	}
	xml_attr_set(st, "from", j->full);	/* the prepared form */
	jid_free(j);
	if (!(to = xml_attr(st, "to"))) {
		answer(cs, st, "bad-request", "a component's stanzas need a 'to'");
		return false;
	}
	if (!(j = jid_new(to, &err))) {
		answer(cs, st, "jid-malformed", err);
		return false;
	}
	xml_attr_set(st, "to", j->full);
	jid_free(j);
	if (kind == STANZA_IQ && !iq_valid(st)) {
		answer(cs, st, "bad-request", "an IQ needs an id and a valid type, and a get or "
		       "set exactly one child");
		return false;
	}
	cs->comp->in++;
	router_route(st);
	return true;
}

static void handshake(struct cstream *cs, const struct xml_node *el)
{
	struct component *comp = cs->comp;
	char *given, *s, *e;
	bool ok;

	if (xml_child(el, NULL, NULL)) {
		cs_error(cs, "not-authorized", "the handshake holds the digest and nothing else");
		return;
	}
	if (!(given = xml_text(el))) {
		cs_error(cs, "internal-server-error", NULL);
		return;
	}
	for (s = given; *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'; s++)
		;
	for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
					  e[-1] == '\n'); e--)
		;
	*e = '\0';
	ok = component_handshake_ok(cs->id, comp->cfg->secret, s);
	free(given);
	if (!ok) {
		cs_error(cs, "not-authorized", "the handshake does not match the secret");
		return;
	}
	if (comp->stream) {
		cs_error(cs, "conflict", "this component is connected already (from another "
			 "address or connection)");
		return;
	}
	comp->stream = cs;
	comp->since = time(NULL);
	reg.connected++;
	cs->state = CS_READY;
	conn_write(cs->conn, "<handshake/>", 12);
	log_info("component", "%s: component %s authenticated", cs->peer, comp->cfg->domain);
}

static struct component *component_find(const char *domain)
{
	for (size_t i = 0; i < reg.n; i++)
		if (strcmp(reg.list[i].cfg->domain, domain) == 0)
			return &reg.list[i];
	return NULL;
}

static void on_open(void *arg, struct xml_node *header, const char *default_ns)
{
	struct cstream *cs = arg;
	const char *to = xml_attr(header, "to");
	char dom[JID_PART_MAX + 1];

	if (to && jid_nameprep(to, dom, sizeof(dom), NULL) == 0)
		cs->comp = component_find(dom);
	if (!default_ns || strcmp(default_ns, NS_COMPONENT) != 0) {
		cs_error(cs, "invalid-namespace", "the stream's default namespace must be "
			 NS_COMPONENT);
	} else if (!cs->comp) {
		cs_error(cs, "host-unknown", to ? "no component of this server has that domain"
			 : "the stream header has no 'to'");
	} else {
		cs->state = CS_HANDSHAKE;
		send_header(cs);
		log_info("component", "%s: component %s connected (%s), handshake next", cs->peer,
			 cs->comp->cfg->domain, conn_is_tls(cs->conn) ? "TLS" : "plain");
	}
	xml_unref(header);
}

/* The end of our stream, answering the component's end (or its stream error). */
static void cs_end(struct cstream *cs, const char *why)
{
	if (cs->state == CS_CLOSED)
		return;
	cs_detach(cs, why);
	conn_write(cs->conn, "</stream:stream>", 16);
	cs->state = CS_CLOSED;
	conn_close(cs->conn);
	xmlstream_stop(cs->xs);
}

static void on_element(void *arg, struct xml_node *el)
{
	struct cstream *cs = arg;

	if (el->ns && !strcmp(el->ns, NS_STREAMS) && !strcmp(el->name, "error") &&
	    cs->state != CS_CLOSED) {
		const struct xml_node *c = xml_child(el, NULL, NS_STREAM_ERRORS);
		char why[96];

		snprintf(why, sizeof(why), "it sent a stream error <%.40s/>", c ? c->name : "");
		log_info("component", "%s%s%s: %s", cs->peer, cs->comp ? " " : "",
			 cs->comp ? cs->comp->cfg->domain : "", why);
		cs_end(cs, why);
		xml_unref(el);
		return;
	}
	switch (cs->state) {
	case CS_HANDSHAKE:
		if (el->ns && !strcmp(el->ns, NS_COMPONENT) && !strcmp(el->name, "handshake"))
			handshake(cs, el);
		else
			cs_error(cs, "not-authorized", "the <handshake/> comes first");
		break;
	case CS_READY:
		if (from_component(cs, el))
			return;
		break;
	case CS_OPENING:
		cs_error(cs, "not-authorized", "open the stream first");
		break;
	case CS_CLOSED:
		break;
	}
	xml_unref(el);
}

static void on_close(void *arg)
{
	cs_end(arg, "it closed its stream");
}

static void on_stream_error(void *arg, enum xmlstream_error err, const char *text)
{
	cs_error(arg, xmlstream_error_condition(err), text);
}

static const struct xmlstream_callbacks stream_cbs = {
	.open = on_open,
	.stanza = on_element,
	.close = on_close,
	.error = on_stream_error,
};

/* ---- the connection ---- */

/* The connection is gone. Inside feed() the parser is still running: the end
 * of feed() frees. */
static void cs_free(struct cstream *cs, const char *why)
{
	if (cs->feeding) {
		cs->dead = true;
		snprintf(cs->dead_why, sizeof(cs->dead_why), "%s", why);
		return;
	}
	cs_detach(cs, why);
	if (cs->prev)
		cs->prev->next = cs->next;
	else
		reg.streams = cs->next;
	if (cs->next)
		cs->next->prev = cs->prev;
	reg.open--;
	if (cs->counted_ip)
		listener_ip_release(cs->peer);
	log_debug("component", "%s: connection closed (%s)", cs->peer, why);
	xmlstream_free(cs->xs);
	conn_free(cs->conn);
	free(cs);
}

static void feed(struct cstream *cs)
{
	if (cs->feeding)
		return;
	cs->feeding = true;
	/* Each turn consumes bytes, or the stream closed and the loop ends. */
	while (!cs->dead && cs->state != CS_CLOSED) {
		struct evbuffer *in = conn_input(cs->conn);
		struct evbuffer_iovec v;
		ssize_t used;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		used = xmlstream_feed(cs->xs, v.iov_base, v.iov_len);
		if (used < 0 || cs->dead)
			break;
		evbuffer_drain(in, (size_t)used);
	}
	cs->feeding = false;
	if (cs->dead)
		cs_free(cs, cs->dead_why);
}

/* A silent component may just be idle: ask once (XEP-0199), as c2s asks a
 * client; any bytes back (a whitespace ping too) reset this. A second
 * silence means the connection is dead. */
static void cs_idle(struct cstream *cs)
{
	unsigned idle = server.cfg->limits.idle_timeout;
	struct xml_node *iq;

	if (cs->state != CS_READY || cs->pinged) {
		cs_error(cs, "connection-timeout", "no traffic for too long");
		return;
	}
	cs->pinged = true;
	iq = xml_new("iq", NS_CLIENT);
	if (iq && xml_add_child(iq, "ping", "urn:xmpp:ping")) {
		const struct vhost *host = cs->comp->svc->host ? cs->comp->svc->host : vhost_at(0);

		xml_attr_set(iq, "type", "get");
		xml_attr_set(iq, "id", "parley-ping");
		if (host)
			xml_attr_set(iq, "from", vhost_name(host));
		xml_attr_set(iq, "to", cs->comp->cfg->domain);
		write_stanza(cs, iq);
	}
	xml_unref(iq);
	conn_set_timeout(cs->conn, idle < PING_WAIT_MAX ? idle : PING_WAIT_MAX);
	/* A TLS connection's bufferevent stops reading at a timeout: read on. */
	conn_pause(cs->conn, false);
}

static void on_conn(struct conn *conn, void *arg, enum conn_event ev, const char *why)
{
	struct cstream *cs = arg;

	switch (ev) {
	case CONN_READ:
		if (cs->pinged) {
			cs->pinged = false;
			conn_set_timeout(conn, server.cfg->limits.idle_timeout);
		}
		feed(cs);
		break;
	case CONN_TLS_UP:
		log_debug("component", "%s: TLS up (%s)", cs->peer,
			  SSL_get_version(conn_ssl(conn)));
		break;
	case CONN_TIMEOUT:
		cs_idle(cs);
		break;
	case CONN_EOF:
	case CONN_ERROR:
		cs_free(cs, why ? why : "connection lost");
		break;
	case CONN_CONNECTED:	/* outgoing connections only */
		break;
	case CONN_CLOSED:
		cs_free(cs, "stream closed");
		break;
	}
}

static void cs_accept(evutil_socket_t fd, const struct sockaddr *sa,
		      const struct config_listener *l)
{
	struct cstream *cs = calloc(1, sizeof(*cs));
	struct xmlstream_limits lim = {
		.max_stanza = server.cfg->limits.stanza_size,
		.max_depth = server.cfg->limits.depth,
		.max_attrs = server.cfg->limits.attributes,
	};

	if (!cs) {
		evutil_closesocket(fd);
		return;
	}
	if (!(cs->conn = conn_new(fd, sa, l->tls == TLS_DIRECT, on_conn, cs))) {
		free(cs);
		return;
	}
	snprintf(cs->peer, sizeof(cs->peer), "%s", conn_peer(cs->conn));
	cs->next = reg.streams;
	if (reg.streams)
		reg.streams->prev = cs;
	reg.streams = cs;
	reg.open++;
	if (!(cs->xs = xmlstream_new(&lim, &stream_cbs, cs))) {
		cs_error(cs, "internal-server-error", NULL);
		return;
	}
	conn_set_timeout(cs->conn, server.cfg->limits.idle_timeout);
	if (!listener_ip_acquire(cs->peer)) {
		cs_error(cs, "policy-violation", "too many connections from your address");
		return;
	}
	cs->counted_ip = true;
	log_debug("component", "%s: connected (%s)", cs->peer,
		  l->tls == TLS_DIRECT ? "direct TLS" : "plain");
}

/* ---- start and stop ---- */

static int ctl_components(struct evbuffer *b, bool json, int argc, char **argv);

int components_init(const struct config *cfg, bool check_only, struct config_errors *errs)
{
	bool listening = false;
	int rc = 0;

	reg.list = calloc(cfg->ncomponents ? cfg->ncomponents : 1, sizeof(*reg.list));
	if (!reg.list)
		return -1;
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct config_component *cc = &cfg->components[i];
		const struct vhost *taken = service_find(cc->domain);
		struct component *comp = &reg.list[reg.n];
		struct vhost *host = vhost_parent(cc->domain);

		/* config.c refused a component that is a <host>; a module's
		 * service is known only once the modules are in. */
		if (vhost_find(cc->domain) || taken) {
			config_error(errs, cfg->path, cc->line, "<component domain=\"%s\">: that "
				     "domain is %s%s", cc->domain, taken && taken->service ?
				     "served by the module " : "a host or another component",
				     taken && taken->service ? module_name(taken->service) : "");
			rc = -1;
			continue;
		}
		comp->cfg = cc;
		comp->svc = service_add_external(cc->domain, host, deliver, comp);
		if (!comp->svc) {
			config_error(errs, cfg->path, cc->line, "<component domain=\"%s\">: out of "
				     "memory", cc->domain);
			rc = -1;
			continue;
		}
		reg.n++;
		if (!check_only)
			log_info("component", "%s: external component%s%s", cc->domain,
				 host ? " of " : " (standing alone)",
				 host ? vhost_name(host) : "");
	}
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].type == LISTEN_COMPONENT)
			listening = true;
	if (!check_only && ctl_register("components", ctl_components) < 0)
		rc = -1;
	if (check_only)
		return rc;
	if (listener_register(LISTEN_COMPONENT, cs_accept) < 0)
		rc = -1;
	if (listening && !cfg->ncomponents)
		log_warn("component", "a component listener but no <component domain secret/>: "
			 "every component will be refused (host-unknown)");
	if (!listening && cfg->ncomponents)
		log_warn("component", "<component> without a <listen type=\"component\">: no "
			 "component can connect, and stanzas to them are bounced");
	return rc;
}

void components_shutdown(void)
{
	for (struct cstream *cs = reg.streams; cs; cs = cs->next)
		cs_error(cs, "system-shutdown", "the server is shutting down");
}

void components_free(void)
{
	while (reg.streams) {
		struct cstream *cs = reg.streams;

		cs->feeding = false;	/* the loop is gone: nothing is parsing */
		cs_free(cs, "server stopped");
	}
	for (size_t i = 0; i < reg.n; i++)
		service_remove(reg.list[i].svc);
	free(reg.list);
	memset(&reg, 0, sizeof(reg));
}

/* ---- what ctl and /metrics read ---- */

void component_foreach(void (*fn)(const struct component_info *ci, void *arg), void *arg)
{
	for (size_t i = 0; i < reg.n; i++) {
		const struct component *c = &reg.list[i];
		struct component_info ci = {
			.domain = c->cfg->domain,
			.connected = c->stream != NULL,
			.address = c->stream ? c->stream->peer : "",
			.since = c->stream ? c->since : 0,
			.stanzas_in = c->in,
			.stanzas_out = c->out,
			.bounced = c->bounced,
		};

		fn(&ci, arg);
	}
}

unsigned components_connected(void) { return reg.connected; }

/* parleyctl components: every configured component, connected or not;
 * counters since start. */
static int ctl_components(struct evbuffer *b, bool json, int argc, char **argv)
{
	time_t now = time(NULL);

	(void)argc, (void)argv;
	if (json)
		evbuffer_add_printf(b, "{\"ok\":true,\"components\":[");
	else
		evbuffer_add_printf(b, "%-32s %-9s %-20s %-9s %10s %10s\n", "DOMAIN",
				    "CONNECTED", "ADDRESS", "AGE", "STANZAS IN", "OUT");
	for (size_t i = 0; i < reg.n; i++) {
		const struct component *c = &reg.list[i];
		long age = c->stream ? (long)(now - c->since) : -1;

		if (json) {
			evbuffer_add_printf(b, "%s{\"domain\":", i ? "," : "");
			ctl_json_str(b, c->cfg->domain);
			evbuffer_add_printf(b, ",\"connected\":%s,\"address\":",
					    c->stream ? "true" : "false");
			if (c->stream) {
				ctl_json_str(b, c->stream->peer);
				evbuffer_add_printf(b, ",\"seconds\":%ld", age);
			} else {
				evbuffer_add_printf(b, "null,\"seconds\":null");
			}
			evbuffer_add_printf(b, ",\"stanzas_in\":%llu,\"stanzas_out\":%llu,"
					    "\"bounced\":%llu}", c->in, c->out, c->bounced);
		} else {
			char agebuf[24] = "-";

			if (c->stream)
				snprintf(agebuf, sizeof(agebuf), "%lds", age);
			evbuffer_add_printf(b, "%-32s %-9s %-20s %-9s %10llu %10llu\n",
					    c->cfg->domain, c->stream ? "yes" : "no",
					    c->stream ? c->stream->peer : "-", agebuf, c->in, c->out);
		}
	}
	if (json)
		evbuffer_add_printf(b, "],\"connected\":%u}\n", reg.connected);
	return 0;
}
unsigned component_streams_open(void) { return reg.open; }
