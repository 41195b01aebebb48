/*
 * fuzz_s2s.c - libFuzzer target: any bytes as a remote server's side of an
 * incoming server-to-server stream (src/s2s_in.c, compiled in): the stream
 * header, STARTTLS, SASL EXTERNAL, dialback (db:result, db:verify with the
 * real keys of src/dialback.c), XEP-0198 with acknowledgements after delivery,
 * stanzas and stream errors.
 *
 * The first byte sets the scene: direct TLS or STARTTLS on the listener,
 * whether the peer's certificate is good (for domains starting with "b"),
 * whether deliveries finish later, the secure-auth policy and stream
 * management. The second byte says where the input splits into two reads;
 * between them, and at the end, the dialback verifications asked for are
 * answered (valid when the key is "ok"); the late deliveries of the first
 * read finish after it, those of the second after the stream is gone.
 *
 * What must hold: no crash, no leak, nothing written after the close, no
 * stanza routed after it, and no stanza routed whose from-domain was not
 * proven on this stream (a good certificate or a valid dialback answer) or
 * whose to-domain is not ours.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "delivery.h"
#include "jid.h"
#include "listener.h"
#include "log.h"
#include "router.h"
#include "s2s_int.h"
#include "server.h"
#include "tls.h"

struct server server;
static struct config cfg;

/* ---- the scene ---- */

enum {
	F_DIRECT = 1,		/* the listener is direct TLS (else STARTTLS) */
	F_CERT = 2,		/* the peer's certificate is good for b* domains */
	F_LATE = 4,		/* deliveries finish after the read */
	F_SECURE = 8,		/* <s2s secure-auth="true"> */
	F_NO_SM = 16,		/* <s2s stream-management="false"> */
};
static unsigned flags;

#define PROVEN_MAX 32
static char proven[PROVEN_MAX][JID_PART_MAX + 1];	/* valid dialback answers */
static unsigned nproven;

/* ---- a stand-in connection ---- */

struct conn {
	struct evbuffer *in, *out;
	conn_cb cb;
	void *owner;
	bool tls, tls_pending, closed, paused;
};
static struct conn *the_conn;
static SSL_CTX *ctx;
static SSL *ssl;	/* never connected: only its version string is read */

struct conn *conn_new_ex(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
			 conn_tls_fn tls_new, conn_cb cb, void *owner)
{
	struct conn *c = calloc(1, sizeof(*c));

	(void)fd, (void)sa, (void)tls_new;
	if (!c)
		return NULL;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->cb = cb;
	c->owner = owner;
	c->tls = direct_tls;
	the_conn = c;
	return c;
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	if (the_conn == c)
		the_conn = NULL;
	free(c);
}

struct evbuffer *conn_input(struct conn *c) { return c->in; }
bool conn_is_tls(const struct conn *c) { return c->tls; }
SSL *conn_ssl(const struct conn *c) { return c->tls ? ssl : NULL; }
const char *conn_peer(const struct conn *c) { (void)c; return "192.0.2.7"; }
void conn_set_timeout(struct conn *c, unsigned seconds) { (void)c, (void)seconds; }
void conn_pause(struct conn *c, bool paused) { c->paused = paused; }
void conn_close(struct conn *c) { c->closed = true; }
size_t conn_output_pending(const struct conn *c) { return evbuffer_get_length(c->out); }

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->closed)
		abort();	/* nothing goes out after the close */
	if (evbuffer_get_length(c->out) > (1u << 20))
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
	return evbuffer_add(c->out, data, len);
}

int conn_write_xml(struct conn *c, const struct xml_node *node, const char *ns)
{
	struct xml_buf b = { 0 };
	int rc = xml_serialize(node, ns, &b) < 0 ? -1 : conn_write(c, b.data, b.len);

	xml_buf_free(&b);
	return rc;
}

int conn_starttls(struct conn *c)
{
	if (c->tls || c->tls_pending)
		abort();	/* TLS once */
	/* As the real one: what came after <starttls/> in plain text is dropped. */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	c->tls_pending = true;
	return 0;
}

/* ---- stand-ins for the rest of the server ---- */

static listener_accept_fn accept_fn;

int listener_register(enum listener_type type, listener_accept_fn fn)
{
	if (type == LISTEN_S2S)
		accept_fn = fn;
	return 0;
}
bool listener_ip_acquire(const char *ip) { (void)ip; return true; }
void listener_ip_release(const char *ip) { (void)ip; }

bool tls_available(void) { return true; }
SSL *tls_new_server_s2s(void) { return NULL; }

enum tls_peer tls_peer_check(SSL *s, const char *domain, char *why, size_t whylen)
{
	if (!s)
		abort();	/* asked only once TLS is up */
	if ((flags & F_CERT) && domain[0] == 'b')
		return TLS_PEER_VALID;
	if (why)
		snprintf(why, whylen, "the certificate does not name %s", domain);
	return (flags & F_CERT) ? TLS_PEER_INVALID : TLS_PEER_NONE;
}

const char *const s2s_auth_names[] = { "none", "sasl-external", "dialback", "certificate" };
struct s2s_stats s2s_counters;

bool s2s_is_local(const char *domain)
{
	return strcmp(domain, "a.test") == 0 || strcmp(domain, "conference.a.test") == 0;
}

bool s2s_needs_cert(const char *domain)
{
	return cfg.s2s.secure_auth && strcmp(domain, "insecure.test") != 0;
}

const unsigned char *s2s_secret(size_t *len)
{
	static const unsigned char secret[] = "fuzzing secret";

	*len = sizeof(secret) - 1;
	return secret;
}

void s2s_ns_to_client(struct xml_node *n) { (void)n; }

void s2s_stream_header(char *buf, size_t len, const char *from, const char *to,
		       const char *id, bool version)
{
	snprintf(buf, len, "<stream:stream from='%s' to='%s' id='%s'%s>", from,
		 to ? to : "", id ? id : "", version ? " version='1.0'" : "");
}

/* The verifications asked for, answered between reads. */
#define ASKED_MAX 32
static struct asked {
	char local[JID_PART_MAX + 1], remote[JID_PART_MAX + 1], id[80];
	uint64_t serial;
	bool valid;
} asked[ASKED_MAX];
static unsigned nasked;

int s2s_verify_request(const char *local, const char *remote, const char *id,
		       const char *key, uint64_t in_serial)
{
	struct asked *a;

	if (nasked == ASKED_MAX)
		return -1;
	a = &asked[nasked++];
	snprintf(a->local, sizeof(a->local), "%s", local);
	snprintf(a->remote, sizeof(a->remote), "%s", remote);
	snprintf(a->id, sizeof(a->id), "%s", id);
	a->serial = in_serial;
	a->valid = strcmp(key, "ok") == 0;
	return 0;
}

static void answer_verifications(void)
{
	for (unsigned k = 0; k < nasked; k++) {
		struct asked *a = &asked[k];

		if (a->valid && nproven < PROVEN_MAX)
			snprintf(proven[nproven++], sizeof(proven[0]), "%s", a->remote);
		else
			a->valid = false;
		s2s_in_verify_result(a->serial, a->local, a->remote, a->id, a->valid);
	}
	nasked = 0;
}

/* Deliveries that finish later (F_LATE). */
#define LATE_MAX 8192
static struct delivery *late[LATE_MAX];
static unsigned nlate;

static void finish_deliveries(void)
{
	for (unsigned k = 0; k < nlate; k++)
		delivery_release(late[k], k % 3 != 0);	/* some "undelivered" */
	nlate = 0;
}

static bool proven_domain(const char *domain)
{
	if ((flags & F_CERT) && domain[0] == 'b' && the_conn && the_conn->tls)
		return true;
	for (unsigned k = 0; k < nproven; k++)
		if (strcmp(proven[k], domain) == 0)
			return true;
	return false;
}

void router_route(struct xml_node *st)
{
	const char *from = xml_attr(st, "from"), *to = xml_attr(st, "to");
	struct jid *fj = from ? jid_new(from, NULL) : NULL, *tj = to ? jid_new(to, NULL) : NULL;
	struct delivery *d = delivery_current();

	if (!the_conn || the_conn->closed || !fj || !tj || !proven_domain(fj->domain) ||
	    !s2s_is_local(tj->domain))
		fprintf(stderr, "ROUTE closed=%d from=%s to=%s\n", the_conn ? the_conn->closed : -1, from, to), abort();	/* routed after the end, or unproven */
	jid_free(fj);
	jid_free(tj);
	if (d && (flags & F_LATE) && nlate < LATE_MAX)
		late[nlate++] = delivery_ref(d);
	xml_unref(st);
}

/* ---- the stream ---- */

/* After each read: TLS comes up as asked, the answers come, the close ends. */
static void settle(bool finish)
{
	struct conn *c;

	answer_verifications();
	if (finish)
		finish_deliveries();
	if ((c = the_conn) && c->tls_pending && !c->closed) {
		c->tls_pending = false;
		c->tls = true;
		c->cb(c, c->owner, CONN_TLS_UP, NULL);
	}
	if ((c = the_conn) && c->closed)
		c->cb(c, c->owner, CONN_CLOSED, NULL);
}

static void read_bytes(const uint8_t *data, size_t len, bool finish)
{
	struct conn *c = the_conn;

	if (!c || c->closed || !len)
		return;
	evbuffer_add(c->in, data, len);
	if (!c->paused)
		c->cb(c, c->owner, CONN_READ, NULL);
	settle(finish);
}

static void setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	log_open("/dev/null");
	log_set_level(LOG_DEBUG);
	ctx = SSL_CTX_new(TLS_method());
	ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl)
		abort();
	cfg.limits.stanza_size = 65536;
	cfg.limits.depth = 32;
	cfg.limits.attributes = 32;
	cfg.s2s.enabled = true;
	cfg.s2s.deny = "denied.test";
	cfg.s2s.idle_timeout = 600;
	server.cfg = &cfg;
	if (s2s_in_init() < 0 || !accept_fn)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_listener l = { .type = LISTEN_S2S };
	size_t split;

	setup();
	if (size < 2)
		return 0;
	flags = data[0];
	split = size > 2 ? data[1] % (size - 1) : 0;
	data += 2, size -= 2;
	if (split > size)
		split = size;
	nproven = nasked = nlate = 0;
	cfg.s2s.secure_auth = flags & F_SECURE;
	cfg.s2s.stream_mgmt = !(flags & F_NO_SM);
	l.tls = (flags & F_DIRECT) ? TLS_DIRECT : TLS_STARTTLS;

	accept_fn(-1, NULL, &l);
	if (!the_conn)
		return 0;
	read_bytes(data, split, true);
	read_bytes(data + split, size - split, false);
	/* The peer goes away; deliveries still running finish after the stream. */
	if (the_conn)
		the_conn->cb(the_conn, the_conn->owner, the_conn->closed ? CONN_CLOSED : CONN_EOF,
			     NULL);
	finish_deliveries();
	nasked = 0;
	s2s_in_free_all();
	return 0;
}
