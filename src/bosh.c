/*
 * bosh.c - the BOSH framing of client streams (XEP-0124, XEP-0206): a client
 * stream carried by HTTP requests, for clients that cannot keep a socket.
 *
 * A BOSH session is one struct c2s (c2s.h) whose framing is a struct bosh.
 * Each POST to <bosh path> carries a <body/> (bosh_body.c parses it) with a
 * request id; bodies are taken in rid order, their payloads go to c2s one by
 * one (c2s may pause us while it waits for an answer), and the request is then
 * held. What c2s writes is queued and handed to the oldest held request: at
 * once when there is output, after 'wait' seconds with an empty body when
 * there is none, or when more than 'hold' requests are held. Every answer is
 * kept for a repeat of its rid (a client whose connection broke asks again).
 *
 * The stream header XEP-0206 does not send is synthesized from the wrapper's
 * attributes, at creation and at each xmpp:restart. A session no request has
 * reached for 'inactivity' seconds (or the client's 'pause') is lost, as a TCP
 * connection that died: XEP-0198 may keep its session.
 *
 * Nothing here frees a session from inside a call of c2s's: fatal events (a
 * bad request, the end of the stream) mark it and a "kick" event does the rest
 * at the top of the loop, where the deferred answers go out too, so that the
 * output of several payloads goes in one response.
 */
#include "c2s.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bosh_body.h"
#include "http.h"
#include "jid.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "stanza.h"
#include "util.h"
#include "vhost.h"

#define BOSH_VER_MAJOR 1	/* XEP-0124 1.11 */
#define BOSH_VER_MINOR 11
#define SID_BYTES 16		/* 128 random bits, in hex */
#define BUCKETS 4096		/* of the sid table; sids are random, so FNV spreads them */
#define BODY_SLACK 4096		/* the wrapper around a stanza of the size limit */
#define RESPONSE_MAX (64u << 10)	/* payload bytes per answer (one element more) */
#define REPLAY_SLOTS 21		/* <bosh max-requests> is at most 20 */
#define REPLAY_MAX (1u << 20)	/* bytes of answers kept for repeats */
/* Output past this is refused and the stream closed; c2s closes a stream
 * whose client does not read at 4 MB of stanzas (pending()). */
#define OUTPUT_MAX (8u << 20)
#define MAX_AGE "86400"		/* CORS preflight cache */
#define XML_TYPE "text/xml; charset=utf-8"

/* What c2s wrote, one element (or SASL answer) each. */
struct chunk {
	struct chunk *next;
	char *data;
	size_t len;
};

/* An HTTP request of a session not answered yet: waiting for its turn (rid
 * order, c2s paused) or held, processed. */
struct req {
	struct req *next;
	struct http_request *r;
	unsigned long long rid;
	struct bosh_body body;		/* while it waits */
	uint64_t since;			/* ms (monotonic): when it came */
	bool creation, pause, empty;
};

struct replay {
	unsigned long long rid;
	char *data;
	size_t len;
};

struct bosh {
	struct c2s *c;
	struct bosh *hnext;		/* the sid table's chain */
	char sid[2 * SID_BYTES + 1];
	char peer[64];
	char *to, *lang, *version;	/* of the creation request: for restarts */
	char *content;			/* the answers' Content-Type; NULL: text/xml */
	char *authid, *from;		/* our stream's id and host (header()) */
	char *key;			/* XEP-0124 §15: what the next 'key' hashes to */
	struct event *timer, *kick;
	unsigned wait, hold, requests, inactivity, polling, maxpause;
	unsigned pause;			/* seconds of an accepted pause, until the next request */
	int ver_major, ver_minor;
	unsigned long long next_rid;	/* processed next */
	unsigned long long created_rid;
	struct req *waiting;		/* rid order */
	struct req *held, *held_tail;	/* rid order */
	unsigned nwaiting, nheld;
	struct xml_node *input;		/* a processed body: payloads c2s has not had */
	struct chunk *out, *out_tail;
	size_t out_bytes;
	struct xml_buf err;		/* the stream error's children (remote-stream-error) */
	struct replay replay[REPLAY_SLOTS];
	unsigned replay_next;
	size_t replay_bytes;
	uint64_t last_answer;		/* ms: inactivity counts from here */
	uint64_t last_empty;		/* ms: an empty request that got an empty answer */
	const char *doom_cond;		/* set: terminate at the next kick */
	const char *doom_reason;
	bool doomed;
	bool counted_ip, secure, legacy, acks;
	bool paused;			/* c2s waits for an answer */
	bool restart;			/* c2s restarted the stream: xmpp:restart expected */
	bool terminating;		/* type='terminate': c2s_end after the payloads */
	bool flush_all;			/* a pause: answer every held request now */
	bool ended;			/* c2s ended the stream */
	bool had_error;			/* ... with a stream error */
	bool overflow;
	bool pumping;
	bool last_empty_valid;
};

static struct bosh *table[BUCKETS];
static unsigned nsessions;

static void pump(struct bosh *b);
static void kick(struct bosh *b);

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the sid table ---- */

static struct bosh **bucket(const char *sid)
{
	return &table[util_hash32(sid, strlen(sid)) % BUCKETS];
}

static struct bosh *find(const char *sid)
{
	/* sids are ours, 32 hex digits: anything else is no session */
	if (strlen(sid) != 2 * SID_BYTES)
		return NULL;
	for (struct bosh *b = *bucket(sid); b; b = b->hnext)
		if (strcmp(b->sid, sid) == 0)
			return b;
	return NULL;
}

static void unlink_session(struct bosh *b)
{
	for (struct bosh **pp = bucket(b->sid); *pp; pp = &(*pp)->hnext) {
		if (*pp == b) {
			*pp = b->hnext;
			nsessions--;
			return;
		}
	}
}

/* ---- HTTP answers ---- */

/* XEP-0124 does not say; browsers need it (a web client on another origin). */
static void cors(struct http_request *r)
{
	const char *origin = http_header(r, "Origin");

	if (!server.cfg->bosh.origins) {
		http_add_header(r, "Access-Control-Allow-Origin", "*");
	} else if (origin) {
		http_add_header(r, "Access-Control-Allow-Origin", origin);
		http_add_header(r, "Vary", "Origin");
	}
	http_add_header(r, "Access-Control-Allow-Methods", "POST, OPTIONS, GET");
	http_add_header(r, "Access-Control-Allow-Headers", "Content-Type");
	http_add_header(r, "Access-Control-Max-Age", MAX_AGE);
}

static void send_body(struct bosh *b, struct http_request *r, const char *data, size_t len)
{
	cors(r);
	http_add_header(r, "Cache-Control", "no-store");
	http_respond(r, 200, b && b->content ? b->content : XML_TYPE, data, len);
}

/* XEP-0124 §17.2: legacy clients (no 'ver') know only the HTTP codes. */
static int legacy_status(const char *cond)
{
	if (!strcmp(cond, "bad-request"))
		return 400;
	if (!strcmp(cond, "policy-violation"))
		return 403;
	if (!strcmp(cond, "item-not-found"))
		return 404;
	return 0;
}

/* A terminal binding error for a request that belongs to no session (or
 * whose session ends with it). */
static void refuse(struct bosh *b, struct http_request *r, const char *cond, bool legacy)
{
	char body[200];
	int n, status = legacy ? legacy_status(cond) : 0;

	if (status) {
		cors(r);
		http_respond(r, status, "text/plain; charset=utf-8", cond, strlen(cond));
		return;
	}
	n = snprintf(body, sizeof(body), "<body xmlns='" NS_HTTPBIND "' type='terminate' "
		     "condition='%s'/>", cond);
	send_body(b, r, body, n > 0 ? (size_t)n : 0);
}

/* ---- output: what c2s writes ---- */

/* Output refused (too much, or no memory): the stream is closed at the kick. */
static void overflow(struct bosh *b)
{
	b->overflow = true;
	kick(b);
}

static void queue(struct bosh *b, char *data, size_t len)
{
	struct chunk *k;

	if (b->overflow || b->ended) {
		free(data);
		return;
	}
	if (b->out_bytes + len > OUTPUT_MAX || !(k = calloc(1, sizeof(*k)))) {
		free(data);
		overflow(b);
		return;
	}
	k->data = data;
	k->len = len;
	if (b->out_tail)
		b->out_tail->next = k;
	else
		b->out = k;
	b->out_tail = k;
	b->out_bytes += len + sizeof(*k);
	kick(b);
}

static void f_header(void *t, const char *id, const char *from)
{
	struct bosh *b = t;

	free(b->authid);
	free(b->from);
	b->authid = strdup(id);
	b->from = from ? strdup(from) : NULL;
}

static void f_raw(void *t, const char *xml, size_t len)
{
	char *d = malloc(len ? len : 1);

	if (!d) {
		overflow(t);
		return;
	}
	memcpy(d, xml, len);
	queue(t, d, len);
}

/* XEP-0206 §8: a stream error ends the session with remote-stream-error and
 * the error's children as the wrapper's. */
static void keep_error(struct bosh *b, const struct xml_node *e)
{
	const struct xml_node *k;

	b->had_error = true;
	b->err.len = 0;
	for (k = e->children; k; k = k->next)
		if (k->type == XML_ELEMENT && xml_serialize(k, NS_HTTPBIND, &b->err) < 0)
			b->err.len = 0;
}

static void f_element(void *t, const struct xml_node *n, const char *to)
{
	struct bosh *b = t;
	struct xml_buf x = { 0 };

	if (n->ns && strcmp(n->ns, NS_STREAMS) == 0 && strcmp(n->name, "error") == 0) {
		keep_error(b, n);
		return;
	}
	if (to) {
		/* The bytes shared with every stream that gets this stanza (made for
		 * TCP's jabber:client scope, so that a broadcast to both kinds of
		 * streams is serialized once), our 'to' in them, and the xmlns the
		 * wrapper's scope needs. */
		struct xml_bytes *xb = xml_bytes(n, NS_CLIENT);
		bool client = n->ns && strcmp(n->ns, NS_CLIENT) == 0;

		if (!xb || xml_buf_add(&x, xb->data, xb->head) < 0 ||
		    (client && xml_buf_add(&x, " xmlns='" NS_CLIENT "'", 8 + strlen(NS_CLIENT) + 1)
		     < 0) ||
		    xml_buf_add(&x, " to='", 5) < 0 || xml_escape(&x, to, strlen(to), true) < 0 ||
		    xml_buf_add(&x, "'", 1) < 0 ||
		    xml_buf_add(&x, xb->data + xb->head, xb->len - xb->head) < 0) {
			xml_bytes_unref(xb);
			xml_buf_free(&x);
			overflow(b);
			return;
		}
		xml_bytes_unref(xb);
	} else if (xml_serialize(n, NS_HTTPBIND, &x) < 0) {
		xml_buf_free(&x);
		overflow(b);
		return;
	}
	queue(b, x.data, x.len);
}

static void f_end(void *t)
{
	struct bosh *b = t;

	b->ended = true;
	kick(b);
}

static size_t f_pending(void *t)
{
	return ((struct bosh *)t)->out_bytes;
}

static bool f_secure(void *t)
{
	return ((struct bosh *)t)->secure;
}

/* Requests come over many connections: no channel to bind to. */
static SSL *f_ssl(void *t)
{
	(void)t;
	return NULL;
}

static void f_pause(void *t, bool paused)
{
	struct bosh *b = t;

	b->paused = paused;
	if (!paused)
		pump(b);
}

static void f_restart(void *t)
{
	((struct bosh *)t)->restart = true;
}

/* BOSH has its own liveness: 'wait' answers and the inactivity timeout. */
static void f_timeout(void *t, unsigned seconds)
{
	(void)t;
	(void)seconds;
}

static void bosh_free(struct bosh *b, const char *reason, bool lost, const char *cond);

static void f_drop(void *t)
{
	bosh_free(t, "server stopped", false, "system-shutdown");
}

static const struct c2s_framing bosh_framing = {
	.transport = TRANSPORT_BOSH,
	.header = f_header,
	.raw = f_raw,
	.element = f_element,
	.end = f_end,
	.pending = f_pending,
	.secure = f_secure,
	.ssl = f_ssl,
	.pause = f_pause,
	.restart = f_restart,
	.timeout = f_timeout,
	.starttls = NULL,	/* RFC 7395 §3.9, XEP-0206 §4: TLS is HTTP's */
	.compact = NULL,
	.drop = f_drop,
};

/* ---- answers to held requests ---- */

enum answer_kind {
	A_DATA,		/* the output queued, up to RESPONSE_MAX */
	A_EMPTY,	/* nothing (a pause, an expired wait with nothing to say) */
	A_TERM_ALL,	/* type='terminate' with what is left and the stream error */
	A_TERM,		/* a bare type='terminate' */
};

static void req_free(struct req *q)
{
	bosh_body_free(&q->body);
	free(q);
}

/* The highest rid below which every request has come (XEP-0124 §9.1). */
static unsigned long long acked(const struct bosh *b)
{
	unsigned long long a = b->next_rid - 1;

	for (const struct req *q = b->waiting; q && q->rid == a + 1; q = q->next)
		a++;
	return a;
}

static void keep_for_replay(struct bosh *b, unsigned long long rid, const char *d, size_t n)
{
	struct replay *e = &b->replay[b->replay_next];
	char *copy = malloc(n ? n : 1);

	if (!copy)
		return;	/* a repeat of this rid will get item-not-found */
	memcpy(copy, d, n);
	b->replay_bytes -= e->len;
	free(e->data);
	*e = (struct replay){ rid, copy, n };
	b->replay_bytes += n;
	b->replay_next = (b->replay_next + 1) % b->requests;
	/* bytes bounded too: the oldest go first, the newest always stays */
	for (unsigned i = 1; i < b->requests && b->replay_bytes > REPLAY_MAX; i++) {
		struct replay *o = &b->replay[(b->replay_next + i - 1) % b->requests];

		if (o == e || !o->data)
			continue;
		b->replay_bytes -= o->len;
		free(o->data);
		*o = (struct replay){ 0 };
	}
}

static int add_attr(struct xml_buf *x, const char *name, const char *value)
{
	if (xml_buf_add(x, " ", 1) < 0 || xml_buf_add(x, name, strlen(name)) < 0 ||
	    xml_buf_add(x, "='", 2) < 0 || xml_escape(x, value, strlen(value), true) < 0)
		return -1;
	return xml_buf_add(x, "'", 1);
}

static int add_uint(struct xml_buf *x, const char *name, unsigned long long v)
{
	char s[24];

	snprintf(s, sizeof(s), "%llu", v);
	return add_attr(x, name, s);
}

/* XEP-0124 §7.1, XEP-0206 §3: what the first answer says about the session. */
static int session_attrs(const struct bosh *b, struct xml_buf *x)
{
	char ver[24];
	int rc = 0;

	snprintf(ver, sizeof(ver), "%d.%d", b->ver_major, b->ver_minor);
	rc |= add_attr(x, "xmlns:xmpp", NS_XBOSH);
	rc |= add_attr(x, "sid", b->sid);
	rc |= add_uint(x, "wait", b->wait);
	rc |= add_uint(x, "hold", b->hold);
	rc |= add_uint(x, "requests", b->requests);
	rc |= add_uint(x, "inactivity", b->inactivity);
	if (b->polling)
		rc |= add_uint(x, "polling", b->polling);
	if (b->maxpause)
		rc |= add_uint(x, "maxpause", b->maxpause);
	if (!b->legacy)
		rc |= add_attr(x, "ver", ver);
	if (b->from)
		rc |= add_attr(x, "from", b->from);
	if (b->authid)
		rc |= add_attr(x, "authid", b->authid);
	rc |= add_attr(x, "secure", "true");	/* the server is the connection manager */
	rc |= add_attr(x, "xmpp:version", "1.0");
	rc |= add_attr(x, "xmpp:restartlogic", "true");
	if (b->acks)
		rc |= add_uint(x, "ack", b->created_rid);
	return rc ? -1 : 0;
}

/* Moves the queued output into pl: all of it, or up to RESPONSE_MAX (at least
 * one element). */
static int take_output(struct bosh *b, struct xml_buf *pl, bool all)
{
	int rc = 0;

	while (rc == 0 && b->out && (all || !pl->len || pl->len + b->out->len <= RESPONSE_MAX)) {
		struct chunk *k = b->out;

		rc = xml_buf_add(pl, k->data, k->len);
		b->out = k->next;
		if (!b->out)
			b->out_tail = NULL;
		b->out_bytes -= k->len + sizeof(*k);
		free(k->data);
		free(k);
	}
	return rc;
}

/* Answers q (taken off its list by the caller) and frees it. */
static void answer(struct bosh *b, struct req *q, enum answer_kind kind)
{
	static const char open[] = "<body xmlns='" NS_HTTPBIND "'";
	struct xml_buf x = { 0 }, pl = { 0 };
	bool term = kind == A_TERM_ALL || kind == A_TERM;
	int rc = 0;

	if (kind == A_DATA || kind == A_TERM_ALL)
		rc |= take_output(b, &pl, kind == A_TERM_ALL);
	if (kind == A_TERM_ALL && b->err.len)
		rc |= xml_buf_add(&pl, b->err.data, b->err.len);
	rc |= xml_buf_add(&x, open, sizeof(open) - 1);
	if (q->creation)
		rc |= session_attrs(b, &x);
	if (b->acks && !q->creation && acked(b) != q->rid)
		rc |= add_uint(&x, "ack", acked(b));
	if (term) {
		rc |= add_attr(&x, "type", "terminate");
		if (b->doom_cond)
			rc |= add_attr(&x, "condition", b->doom_cond);
		else if (b->had_error)
			rc |= add_attr(&x, "condition", "remote-stream-error");
	}
	if (pl.len) {
		/* XEP-0206 §3: the prefix of <stream:features/> bound on the wrapper */
		rc |= add_attr(&x, "xmlns:stream", NS_STREAMS);
		rc |= xml_buf_add(&x, ">", 1);
		rc |= xml_buf_add(&x, pl.data, pl.len);
		rc |= xml_buf_add(&x, "</body>", 7);
	} else {
		rc |= xml_buf_add(&x, "/>", 2);
	}
	if (rc < 0) {
		xml_buf_free(&x);
		xml_buf_free(&pl);
		refuse(b, q->r, "internal-server-error", false);
		b->doomed = true;
		b->doom_reason = "out of memory";
		kick(b);
		req_free(q);
		return;
	}
	/* XEP-0124 §14.3: kept for a repeat, but not a pause's (§10) */
	if (!q->pause)
		keep_for_replay(b, q->rid, x.data, x.len);
	/* §12: a poll that got nothing, for the next poll's interval */
	b->last_empty_valid = q->empty && !pl.len;
	b->last_empty = q->since;
	b->last_answer = now_ms();
	send_body(b, q->r, x.data, x.len);
	xml_buf_free(&x);
	xml_buf_free(&pl);
	req_free(q);
}

static struct req *take_held(struct bosh *b)
{
	struct req *q = b->held;

	if (q) {
		b->held = q->next;
		if (!b->held)
			b->held_tail = NULL;
		b->nheld--;
		q->next = NULL;
	}
	return q;
}

/* Whether the oldest held request is to be answered now. */
static bool due(const struct bosh *b, uint64_t now)
{
	const struct req *q = b->held;

	return q && (b->out || b->nheld > b->hold || b->flush_all || q->pause ||
		     now >= q->since + (uint64_t)b->wait * 1000u);
}

/* ---- life cycle ---- */

static void schedule(struct bosh *b)
{
	uint64_t now = now_ms(), at;
	struct timeval tv;

	if (b->held)
		at = b->held->since + (uint64_t)b->wait * 1000u;
	else if (b->waiting)
		at = now + 1000;	/* c2s is busy with the input: no inactivity */
	else
		at = b->last_answer + (uint64_t)(b->pause ? b->pause : b->inactivity) * 1000u;
	at = at > now ? at - now : 0;
	tv.tv_sec = (time_t)(at / 1000);
	tv.tv_usec = (suseconds_t)(at % 1000) * 1000;
	evtimer_add(b->timer, &tv);
}

/* Answers every request left with a bare terminate, ends the stream and frees. */
static void bosh_free(struct bosh *b, const char *reason, bool lost, const char *cond)
{
	struct req *q;

	if (!b->doom_cond)
		b->doom_cond = cond;
	while ((q = take_held(b)))
		answer(b, q, A_TERM);
	while ((q = b->waiting)) {
		b->waiting = q->next;
		answer(b, q, A_TERM);
	}
	unlink_session(b);
	log_info("bosh", "%s: session %.8s ended: %s", b->peer, b->sid, reason);
	c2s_gone(b->c, reason, lost);
	if (b->counted_ip)
		listener_ip_release(b->peer);
	while (b->out) {
		struct chunk *k = b->out;

		b->out = k->next;
		free(k->data);
		free(k);
	}
	for (unsigned i = 0; i < REPLAY_SLOTS; i++)
		free(b->replay[i].data);
	xml_unref(b->input);
	xml_buf_free(&b->err);
	event_free(b->timer);
	event_free(b->kick);
	free(b->to);
	free(b->lang);
	free(b->version);
	free(b->content);
	free(b->authid);
	free(b->from);
	free(b->key);
	free(b);
}

/* A fatal binding condition: answered and freed at the kick. */
static void doom(struct bosh *b, const char *cond, const char *reason)
{
	if (b->doomed)
		return;
	b->doomed = true;
	b->doom_cond = cond;
	b->doom_reason = reason;
	kick(b);
}

static void kick(struct bosh *b)
{
	event_active(b->kick, EV_TIMEOUT, 1);
}

/*
 * The answers that are due, and the end of an ended stream: its oldest
 * request gets the terminate with the last output, the others a bare one.
 * Returns true when b was freed.
 */
static bool flush(struct bosh *b)
{
	uint64_t now = now_ms();
	unsigned guard = 0;

	if (b->ended) {
		struct req *q = take_held(b);

		if (!q && (q = b->waiting)) {
			b->waiting = q->next;
			b->nwaiting--;
		}
		if (!q)
			return false;	/* the next request gets the terminate */
		answer(b, q, A_TERM_ALL);
		bosh_free(b, b->had_error ? "stream error" : "stream closed", false, NULL);
		return true;
	}
	/* each turn answers one held request: bounded by them */
	while (due(b, now) && guard++ < 64) {
		struct req *q = take_held(b);

		answer(b, q, q->pause ? A_EMPTY : A_DATA);
	}
	b->flush_all = false;
	return false;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct bosh *b = arg;

	(void)fd;
	(void)what;
	if (b->overflow && !b->ended && !b->doomed)
		c2s_error(b->c, "policy-violation", "the client does not fetch its output");
	if (b->doomed) {
		bosh_free(b, b->doom_reason ? b->doom_reason : "terminated", false,
			  b->doom_cond);
		return;
	}
	if (!flush(b))
		schedule(b);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bosh *b = arg;
	uint64_t now = now_ms();

	(void)fd;
	(void)what;
	if (b->held || b->waiting) {
		if (!flush(b))
			schedule(b);
		return;
	}
	if (now + 5 < b->last_answer + (uint64_t)(b->pause ? b->pause : b->inactivity) * 1000u) {
		schedule(b);
		return;
	}
	/* XEP-0124 §10: the client vanished; as for a TCP connection lost */
	bosh_free(b, b->ended ? "stream closed" : "BOSH session timed out", !b->ended, NULL);
}

/* ---- input ---- */

/* The stream header XEP-0206 leaves out (§3): to, version, xml:lang. */
static struct xml_node *header_of(const struct bosh *b, const struct bosh_body *body)
{
	struct xml_node *h = xml_new("stream", NS_STREAMS);
	const char *to = body->to ? body->to : b->to;
	const char *lang = body->lang ? body->lang : b->lang;
	const char *version = body->version ? body->version : b->version;

	if (!h || xml_attr_set(h, "to", to) < 0 ||
	    xml_attr_set(h, "version", version ? version : "1.0") < 0 ||
	    (lang && xml_attr_set_ns(h, XML_NS_XML, "lang", lang) < 0)) {
		xml_unref(h);
		return NULL;
	}
	return h;
}

/* XEP-0124 §15: hex(SHA-1(key)) is the previous key. */
static bool key_ok(const char *expected, const char *key)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char hex[2 * SHA_DIGEST_LENGTH + 1];

	SHA1((const unsigned char *)key, strlen(key), md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return strcasecmp(hex, expected) == 0;
}

static int set_key(struct bosh *b, const char *key)
{
	char *k = strdup(key);

	if (!k)
		return -1;
	free(b->key);
	b->key = k;
	return 0;
}

/*
 * The request whose turn it is: the wrapper's attributes act, the payloads
 * become the input, the request is held. Returns -1 when the session is
 * doomed by it (the request is answered).
 */
static int process(struct bosh *b, struct req *q)
{
	struct bosh_body *body = &q->body;
	struct xml_node *h = NULL;
	uint64_t now = now_ms();
	bool open = q->creation;

	b->waiting = q->next;
	b->nwaiting--;
	q->next = NULL;
	b->next_rid = q->rid + 1;
	if (b->key && !q->creation) {
		if (!body->key || !key_ok(b->key, body->key)) {
			refuse(b, q->r, "item-not-found", b->legacy);
			req_free(q);
			doom(b, "item-not-found", "wrong key (XEP-0124 §15)");
			return -1;
		}
		if (set_key(b, body->newkey ? body->newkey : body->key) < 0)
			goto nomem;
	} else if (body->newkey && set_key(b, body->newkey) < 0) {
		goto nomem;
	}
	q->empty = body->payloads == 0 && body->pause < 0 && !body->terminate && !body->restart;
	/* §12: a polling session (nothing held) polls no faster than 'polling';
	 * a long-polling one cannot, as its empty answers take 'wait' */
	if (q->empty && (b->hold == 0 || b->wait == 0) && b->polling && b->last_empty_valid &&
	    now < b->last_empty + (uint64_t)b->polling * 1000u && !q->creation) {
		refuse(b, q->r, "policy-violation", b->legacy);
		req_free(q);
		doom(b, "policy-violation", "polling too often (XEP-0124 §12)");
		return -1;
	}
	b->pause = 0;
	if (body->pause >= 0 && b->maxpause) {
		/* §10: held requests are answered now; the inactivity becomes the pause */
		b->pause = (unsigned)body->pause < b->maxpause ? (unsigned)body->pause : b->maxpause;
		if (b->pause < 1)
			b->pause = 1;
		q->pause = true;
		b->flush_all = true;
	}
	if (body->restart && !q->creation) {
		if (!b->restart) {
			refuse(b, q->r, "bad-request", b->legacy);
			req_free(q);
			doom(b, "bad-request", "xmpp:restart while no restart was due");
			return -1;
		}
		b->restart = false;
		open = true;
	}
	if (open && !(h = header_of(b, body)))
		goto nomem;
	b->terminating = body->terminate;
	q->since = now;
	if (b->held_tail)
		b->held_tail->next = q;
	else
		b->held = q;
	b->held_tail = q;
	b->nheld++;
	/* the payloads are the input now; the wrapper's strings go with them */
	b->input = body->root;
	body->root = NULL;
	bosh_body_free(body);
	c2s_heard(b->c);
	if (h)
		c2s_open(b->c, h, NS_CLIENT);
	return 0;
nomem:
	refuse(b, q->r, "internal-server-error", false);
	req_free(q);
	doom(b, "internal-server-error", "out of memory");
	return -1;
}

/*
 * Gives c2s the payloads in order, then the next request's, while c2s takes
 * input. Re-entered from pause(false) inside a payload: the outer loop goes
 * on. Each turn takes a payload or a request: bounded by them.
 */
static void pump(struct bosh *b)
{
	if (b->pumping)
		return;
	b->pumping = true;
	while (!b->doomed && !b->ended && !b->paused && !c2s_blocked(b->c)) {
		if (b->input && b->input->children) {
			struct xml_node *el = b->input->children;

			xml_detach(el);
			if (el->type == XML_ELEMENT)
				c2s_element(b->c, el);
			else
				xml_unref(el);
			continue;
		}
		if (b->input) {
			xml_unref(b->input);
			b->input = NULL;
			if (b->terminating) {
				b->terminating = false;
				c2s_end(b->c);	/* §13: after the payloads */
			}
			continue;
		}
		if (!b->waiting || b->waiting->rid != b->next_rid)
			break;
		process(b, b->waiting);
	}
	b->pumping = false;
	kick(b);
}

/* A request of an existing session (XEP-0124 §14). */
static void request(struct bosh *b, struct http_request *r, struct bosh_body *body)
{
	unsigned long long rid = body->rid;
	struct req *q, **pp;

	if (b->secure && !http_secure(r)) {
		/* §19: a secure session's request in the clear is refused, the
		 * session left alone (anyone could send it) */
		bosh_body_free(body);
		cors(r);
		http_respond(r, 403, "text/plain; charset=utf-8", "this session is secure\n", 23);
		return;
	}
	if (b->doomed) {
		bosh_body_free(body);
		refuse(b, r, b->doom_cond ? b->doom_cond : "undefined-condition", false);
		return;
	}
	if (rid < b->next_rid) {
		/* a repeat: a held request's connection broke, or an answer was lost */
		for (q = b->held; q; q = q->next) {
			if (q->rid == rid) {
				struct http_request *old = q->r;

				q->r = r;
				bosh_body_free(body);
				send_body(b, old, "<body xmlns='" NS_HTTPBIND "'/>",
					  16 + strlen(NS_HTTPBIND));
				return;
			}
		}
		for (unsigned i = 0; i < REPLAY_SLOTS; i++) {
			if (b->replay[i].data && b->replay[i].rid == rid) {
				log_debug("bosh", "%s: session %.8s: rid %llu again, answered from "
					  "the buffer", b->peer, b->sid, rid);
				bosh_body_free(body);
				send_body(b, r, b->replay[i].data, b->replay[i].len);
				return;
			}
		}
		bosh_body_free(body);
		refuse(b, r, "item-not-found", b->legacy);
		doom(b, "item-not-found", "a repeated rid whose answer is gone");
		return;
	}
	/* §14.2: a window of 'requests' ahead (one more for a pause or terminate) */
	if (rid > b->next_rid + b->requests || b->nwaiting + b->nheld > b->requests + 1) {
		bosh_body_free(body);
		refuse(b, r, "item-not-found", b->legacy);
		doom(b, "item-not-found", "rid outside the window");
		return;
	}
	for (pp = &b->waiting; *pp && (*pp)->rid < rid; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->rid == rid) {
		/* the same request again before its turn: the newer connection wins */
		struct http_request *old = (*pp)->r;

		bosh_body_free(&(*pp)->body);
		(*pp)->body = *body;
		(*pp)->r = r;
		send_body(b, old, "<body xmlns='" NS_HTTPBIND "'/>", 16 + strlen(NS_HTTPBIND));
		pump(b);
		return;
	}
	if (!(q = calloc(1, sizeof(*q)))) {
		bosh_body_free(body);
		refuse(b, r, "internal-server-error", false);
		return;
	}
	q->r = r;
	q->rid = rid;
	q->body = *body;
	q->since = now_ms();
	q->next = *pp;
	*pp = q;
	b->nwaiting++;
	if (b->ended) {
		kick(b);	/* the terminate */
		return;
	}
	pump(b);
}

static unsigned clamp(long want, unsigned dflt, unsigned max)
{
	if (want < 0)
		return dflt < max ? dflt : max;
	return (unsigned long)want < max ? (unsigned)want : max;
}

static void make_sid(char *sid)
{
	unsigned char rnd[SID_BYTES];
	static const char hex[] = "0123456789abcdef";

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		sid[0] = '\0';
	else {
		for (size_t i = 0; i < sizeof(rnd); i++) {
			sid[2 * i] = hex[rnd[i] >> 4];
			sid[2 * i + 1] = hex[rnd[i] & 15];
		}
		sid[2 * SID_BYTES] = '\0';
	}
}

/* XEP-0124 §7: a new session, its first request held. */
static void create(struct http_request *r, struct bosh_body *body)
{
	const struct config_web *w = &server.cfg->bosh;
	const struct config_listener *l = http_listener(r);
	bool legacy = body->ver_major < 0;
	char host[JID_PART_MAX + 1];
	const char *err = NULL, *why = "out of memory";
	struct bosh *b;
	struct req *q = NULL;

	if (!body->to || !*body->to) {
		bosh_body_free(body);
		refuse(NULL, r, "improper-addressing", false);
		return;
	}
	if (jid_nameprep(body->to, host, sizeof(host), &err) < 0 || !vhost_find(host)) {
		log_info("bosh", "%s: a session for %.100s, which is not served here",
			 http_peer(r), body->to);
		bosh_body_free(body);
		refuse(NULL, r, "host-unknown", false);
		return;
	}
	if (!l) {
		bosh_body_free(body);
		http_respond(r, 500, NULL, NULL, 0);	/* into the void */
		return;
	}
	if (!(b = calloc(1, sizeof(*b))) || !(q = calloc(1, sizeof(*q)))) {
		free(b);
		goto fail;
	}
	snprintf(b->peer, sizeof(b->peer), "%s", http_peer(r));
	do
		make_sid(b->sid);
	while (b->sid[0] && find(b->sid));
	b->hold = clamp(body->hold, 1, w->max_hold);
	b->requests = b->hold + 1 > 2 ? b->hold + 1 : 2;
	if (b->requests > w->max_requests)
		b->requests = w->max_requests;
	if (b->requests > REPLAY_SLOTS)
		b->requests = REPLAY_SLOTS;
	if (b->hold >= b->requests)
		b->hold = b->requests - 1;
	b->wait = clamp(body->wait, w->max_wait, w->max_wait);
	b->inactivity = w->max_inactivity;
	b->polling = w->polling;
	b->maxpause = w->max_pause;
	b->legacy = legacy;
	if (legacy || body->ver_major > BOSH_VER_MAJOR || (body->ver_major == BOSH_VER_MAJOR &&
	    body->ver_minor >= BOSH_VER_MINOR)) {
		b->ver_major = BOSH_VER_MAJOR;
		b->ver_minor = BOSH_VER_MINOR;
	} else {
		b->ver_major = body->ver_major;
		b->ver_minor = body->ver_minor;
	}
	b->acks = body->ack >= 0;
	b->secure = http_secure(r);
	b->next_rid = b->created_rid = body->rid;
	b->last_answer = now_ms();
	b->to = strdup(body->to);
	b->lang = body->lang ? strdup(body->lang) : NULL;
	b->version = body->version ? strdup(body->version) : NULL;
	b->content = body->content ? strdup(body->content) : NULL;
	b->timer = evtimer_new(server.base, on_timer, b);
	b->kick = event_new(server.base, -1, 0, on_kick, b);
	if (!b->sid[0] || !b->to || (body->lang && !b->lang) || (body->version && !b->version) ||
	    (body->content && !b->content) || !b->timer || !b->kick)
		goto fail_b;
	if (!listener_ip_acquire(b->peer)) {
		why = "too many connections from the address";
		goto fail_b;
	}
	b->counted_ip = true;
	if (!(b->c = c2s_new(&bosh_framing, b, l, b->peer)))
		goto fail_b;
	b->hnext = *bucket(b->sid);
	*bucket(b->sid) = b;
	nsessions++;
	log_debug("bosh", "%s: session %.8s for %s (wait %u, hold %u, requests %u; %u "
		  "sessions)", b->peer, b->sid, host, b->wait, b->hold, b->requests, nsessions);
	q->r = r;
	q->rid = body->rid;
	q->body = *body;
	q->creation = true;
	q->since = now_ms();
	b->waiting = q;
	b->nwaiting = 1;
	pump(b);
	return;
fail_b:
	if (b->counted_ip)
		listener_ip_release(b->peer);
	if (b->timer)
		event_free(b->timer);
	if (b->kick)
		event_free(b->kick);
	free(b->to);
	free(b->lang);
	free(b->version);
	free(b->content);
	free(b);
	free(q);
fail:
	log_info("bosh", "%s: no session: %s", http_peer(r), why);
	bosh_body_free(body);
	refuse(NULL, r, strcmp(why, "out of memory") ? "policy-violation" :
	       "internal-server-error", false);
}

/* ---- the route ---- */

static const char it_works[] =
	"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Parley BOSH</title></head>"
	"<body><h1>It works</h1><p>This is the BOSH endpoint (XEP-0206) of an XMPP server: "
	"point an XMPP client at this URL.</p></body></html>\n";

static void on_post(struct http_request *r)
{
	const struct config_limits *lim = &server.cfg->limits;
	struct bosh_body_limits bl = {
		.max_bytes = lim->stanza_size + BODY_SLACK,
		.max_depth = lim->depth,
		.max_attrs = lim->attributes,
	};
	struct bosh_body body;
	const char *why = NULL;
	size_t len;
	const char *data = http_body(r, &len);
	struct bosh *b;

	if (len > bl.max_bytes) {
		log_info("bosh", "%s: a body of %zu bytes, over the limit", http_peer(r), len);
		refuse(NULL, r, "policy-violation", false);
		return;
	}
	if (bosh_body_parse(data ? data : "", len, &bl, &body, &why) < 0) {
		log_info("bosh", "%s: bad request: %s", http_peer(r), why);
		refuse(NULL, r, strcmp(why, "out of memory") ? "bad-request" :
		       "internal-server-error", false);
		return;
	}
	if (!body.sid) {
		create(r, &body);
		return;
	}
	if (!(b = find(body.sid))) {
		log_debug("bosh", "%s: no session %.8s", http_peer(r), body.sid);
		bosh_body_free(&body);
		refuse(NULL, r, "item-not-found", false);
		return;
	}
	request(b, r, &body);
}

static void on_request(struct http_request *r, void *arg)
{
	const struct config_web *w = &server.cfg->bosh;
	const char *m = http_method(r), *path = http_path(r);
	size_t n = strlen(w->path);

	(void)arg;
	/* the route with a '/' after the path is a prefix: only that one path */
	if (strncmp(path, w->path, n) != 0 || (path[n] && strcmp(path + n, "/") != 0)) {
		http_respond(r, 404, "text/plain; charset=utf-8", "not found\n", 10);
		return;
	}
	if (!config_origin_allowed(w, http_header(r, "Origin"))) {
		http_respond(r, 403, "text/plain; charset=utf-8", "origin not allowed\n", 19);
		return;
	}
	if (!strcmp(m, "OPTIONS")) {
		cors(r);
		http_respond(r, 200, "text/plain; charset=utf-8", NULL, 0);
	} else if (!strcmp(m, "GET") || !strcmp(m, "HEAD")) {
		cors(r);
		http_respond(r, 200, "text/html; charset=utf-8", it_works, sizeof(it_works) - 1);
	} else if (!strcmp(m, "POST")) {
		on_post(r);
	} else {
		http_add_header(r, "Allow", "POST, OPTIONS, GET, HEAD");
		http_respond(r, 405, "text/plain; charset=utf-8", "POST, OPTIONS or GET\n", 21);
	}
}

int bosh_init(void)
{
	const struct config_web *w = &server.cfg->bosh;
	char slash[256];
	size_t n = strlen(w->path);

	if (!w->enabled)
		return 0;
	if (http_route(w->path, false, on_request, NULL) < 0) {
		log_error("bosh", "cannot serve %s: the path is taken", w->path);
		return -1;
	}
	/* clients write the URL with and without a trailing '/' */
	if (n > 1 && w->path[n - 1] != '/' && n + 2 <= sizeof(slash)) {
		snprintf(slash, sizeof(slash), "%s/", w->path);
		if (http_route(slash, false, on_request, NULL) < 0) {
			log_error("bosh", "cannot serve %s: the path is taken", slash);
			return -1;
		}
	}
	log_debug("bosh", "serving %s", w->path);
	return 0;
}
