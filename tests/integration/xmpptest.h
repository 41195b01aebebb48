/*
 * xmpptest.h - a small blocking XMPP client for the integration tests.
 *
 * It speaks to the server from the outside, byte for byte, so the tests can send
 * what no well-behaved client library would (bad XML, forged headers, broken
 * channel bindings) and look at exactly what came back. The SASL side is written
 * here from the RFCs on purpose: sharing the server's sasl.c would let a mistake
 * there agree with itself.
 *
 * Every call that waits has a deadline (the connection's timeout, 5 s unless
 * set otherwise), so a server that hangs makes a test fail, never the suite hang.
 * Nodes returned by xt_read() and the calls built on it belong to the connection
 * and stay valid until the next read on it.
 */
#ifndef XMPPTEST_H
#define XMPPTEST_H

#include <stdbool.h>
#include <stddef.h>

#define XT_NS_CLIENT	"jabber:client"
#define XT_NS_STREAMS	"http://etherx.jabber.org/streams"
#define XT_NS_TLS	"urn:ietf:params:xml:ns:xmpp-tls"
#define XT_NS_SASL	"urn:ietf:params:xml:ns:xmpp-sasl"
#define XT_NS_BIND	"urn:ietf:params:xml:ns:xmpp-bind"
#define XT_NS_SESSION	"urn:ietf:params:xml:ns:xmpp-session"
#define XT_NS_STREAM_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define XT_NS_STANZA_ERR "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XT_NS_PING	"urn:xmpp:ping"
#define XT_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define XT_NS_VERSION	"jabber:iq:version"
#define XT_NS_REGISTER	"jabber:iq:register"
#define XT_NS_REG_FEATURE "http://jabber.org/features/iq-register"

#define XT_DEFAULT_TIMEOUT_MS 5000

/* One element of a received stanza. */
struct xt_node {
	char *ns;		/* namespace name, "" when none */
	char *name;		/* local name */
	char **attrs;		/* name, value, ..., NULL; namespaced names as "URI local" */
	char *text;		/* the character data directly inside, concatenated */
	char *raw;		/* top-level elements only: the bytes as received */
	struct xt_node *parent, *children, *last, *next;
};

enum xt_status {
	XT_OK,
	XT_TIMEOUT,		/* the deadline passed with nothing complete */
	XT_STREAM_END,		/* the peer sent </stream:stream> */
	XT_CLOSED,		/* the TCP connection (or TLS) ended */
	XT_BAD_XML,		/* the peer sent something expat rejects */
	XT_IO_ERROR,		/* a socket or TLS error other than a close */
};

enum xt_mode {
	XT_TCP,			/* no TLS at all */
	XT_STARTTLS,		/* TLS through STARTTLS after the first features */
	XT_DIRECT,		/* TLS from the first byte (XEP-0368) */
};

/* Knobs for the SASL exchange; a zeroed struct means "behave". */
struct xt_sasl_opts {
	const char *cb_type;	/* -PLUS: "tls-exporter" (default) or "tls-server-end-point" */
	bool gs2_y;		/* non-PLUS: send "y" (we could bind but think the server can't) */
	bool corrupt_cb;	/* -PLUS: flip one bit of the channel-binding data */
	const char *authzid;	/* PLAIN and SCRAM: an authorization identity */
};

struct xt;

/* TCP connect to ip:port, bound to src_ip first when it is not NULL. NULL on failure,
 * with the reason in err. */
/* One TAP line, "ok - NAME" or "not ok - NAME" and a "# " comment from fmt;
 * failures are counted in xt_failures. */
void xt_report(const char *name, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
extern int xt_failures;

struct xt *xt_connect(const char *ip, int port, const char *src_ip, char *err,
		      size_t errlen);
void xt_free(struct xt *c);
void xt_set_timeout(struct xt *c, int ms);
/* A small receive buffer (fixed, no autotuning): the server's writes to a client
 * that does not read stop short, as they would over a slow network. */
int xt_set_rcvbuf(struct xt *c, int bytes);
/* The timeout new connections start with (slow servers: valgrind). */
void xt_set_default_timeout(int ms);
int xt_timeout(const struct xt *c);

/* The last problem seen on this connection, as a line of text for TAP diagnostics. */
const char *xt_err(const struct xt *c);
enum xt_status xt_status(const struct xt *c);
const char *xt_status_name(enum xt_status s);

/* TLS handshake on the socket (SNI = sni, no certificate check). */
int xt_tls_handshake(struct xt *c, const char *sni);
bool xt_is_tls(const struct xt *c);
const char *xt_tls_version(const struct xt *c);

/* Raw output; failures to write (the peer closed) are reported, not fatal. */
int xt_send(struct xt *c, const void *buf, size_t len);
int xt_sendf(struct xt *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The next complete top-level element, or NULL (see xt_status()). */
struct xt_node *xt_read(struct xt *c);
/* Like xt_read with a deadline of ms instead of the connection's timeout. */
struct xt_node *xt_read_ms(struct xt *c, int ms);
/* The peer's stream header: an attribute, NULL when absent or no header yet. */
const char *xt_stream_attr(const struct xt *c, const char *name);
bool xt_got_header(const struct xt *c);
/* The stream features of the latest stream (kept across reads), or NULL. */
struct xt_node *xt_features(const struct xt *c);
/* Forget the parser state: the next bytes start a new XML document. */
void xt_reset_parser(struct xt *c);

/*
 * Sends our stream header (to = host) and reads the server's header and its
 * <stream:features/>. Returns 0, or -1 with the element that came instead (a
 * stream error, say) as xt_last().
 */
int xt_open_stream(struct xt *c, const char *host);
struct xt_node *xt_last(const struct xt *c);

/* STARTTLS: <starttls/>, <proceed/>, handshake, new stream. */
int xt_starttls(struct xt *c, const char *host);

/*
 * SASL with one mechanism (PLAIN, SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-1-PLUS,
 * SCRAM-SHA-256-PLUS). 0: success, server signature checked, stream restarted
 * and new features read. 1: <failure/>, its condition in xt_sasl_failure().
 * -1: anything else (stream error, timeout, a bad server signature).
 */
int xt_auth(struct xt *c, const char *mech, const char *host, const char *user,
	    const char *pass, const struct xt_sasl_opts *opts);
const char *xt_sasl_failure(const struct xt *c);

/* Resource binding; resource may be NULL. The bound JID goes to jid. */
int xt_bind(struct xt *c, const char *resource, char *jid, size_t jidlen);

/* Sends <iq type to id>payload</iq> (to may be NULL) and returns the answer with
 * the same id, or NULL. Other stanzas meanwhile are skipped. */
struct xt_node *xt_iq(struct xt *c, const char *type, const char *to, const char *payload);
/* A fresh id for stanzas the caller builds. */
const char *xt_new_id(struct xt *c);

/*
 * After a stream error: the peer must send </stream:stream> and close TCP. Returns
 * true when both happened within the timeout; *why says what was seen otherwise.
 */
bool xt_expect_close(struct xt *c, const char **why);

/* Reads until a stream error; returns its condition or NULL (timeout, other end). */
const char *xt_wait_stream_error(struct xt *c, int ms);

/*
 * All of it: connect, TLS as mode says, SASL with mech (NULL: SCRAM-SHA-256),
 * bind resource (NULL: server's choice). NULL on failure, reason in err.
 */
struct xt *xt_login(const char *ip, int port, enum xt_mode mode, const char *host,
		    const char *user, const char *pass, const char *mech,
		    const char *resource, const char *src_ip, char *err, size_t errlen);
/* The JID bound by xt_login/xt_bind. */
const char *xt_jid(const struct xt *c);

/* ---- nodes ---- */
const char *xt_attr(const struct xt_node *n, const char *name);
bool xt_is(const struct xt_node *n, const char *ns, const char *name);
/* The first child with this name (and namespace unless ns is NULL). */
struct xt_node *xt_child(const struct xt_node *n, const char *ns, const char *name);
/* The defined condition of a stream or stanza error: the first child in ns. */
const char *xt_condition(const struct xt_node *err, const char *ns);
/* The <text/> of an error, or NULL. */
const char *xt_error_text(const struct xt_node *err, const char *ns);
/* The stanza error child of an <iq type='error'/>, or NULL. */
struct xt_node *xt_stanza_error(const struct xt_node *stanza);
/* Raw bytes of a top-level node, or a placeholder, for diagnostics. */
const char *xt_raw(const struct xt_node *n);
/* Whether the features list this SASL mechanism. */
bool xt_has_mech(const struct xt_node *features, const char *mech);

/* Base64 of len bytes, malloc'd (for SASL payloads the caller builds itself). */
char *xt_base64(const void *data, size_t len);

/* XML-escapes s into buf (for user names and passwords in stanzas). */
const char *xt_escape(const char *s, char *buf, size_t len);

#endif
