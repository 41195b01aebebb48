/*
 * stream_mgmt_test.c - XEP-0198 stream management against a running parleyd
 * (mod_stream_mgmt): the feature, <enable/>, acks both ways and what the
 * server's h means (settled: delivered and acked, or committed to offline
 * storage), resumption and its timeout, a recipient that withholds acks,
 * offline flushes that are deleted only once acked, receipts and markers kept
 * offline untouched, origin-id de-duplication. Prints TAP lines without
 * numbers; stream_mgmt.test adds the plan. With argv[1] "crash-send" or
 * "crash-check" it plays one half of the kill -9 test instead.
 *
 * Env: PARLEY_HOST, PARLEY_PORT (a tls="none" c2s listener), PARLEY_PASS (the
 * password of every account u1..u27, c1..c3), PARLEY_RESUME_TIMEOUT (seconds,
 * the module's resume-timeout), PARLEY_TEST_TIMEOUT_MS (slow servers: valgrind),
 * PARLEY_TEST_TRACE (non-empty: every element read, as TAP comments). argv[1]
 * may name one test to run alone (see tests[]).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xmpptest.h"

#define NS_SM		"urn:xmpp:sm:3"
#define NS_DELAY	"urn:xmpp:delay"
#define NS_SID		"urn:xmpp:sid:0"
#define NS_RECEIPTS	"urn:xmpp:receipts"
#define NS_MARKERS	"urn:xmpp:chat-markers:0"
#define MAX_MSGS	64

static const char *host, *pass;
static int port, resume_s, slow_ms, slowf;
static bool trace;		/* PARLEY_TEST_TRACE: what each client reads, as comments */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

static bool attr_is(const struct xt_node *n, const char *a, const char *v)
{
	const char *x = n ? xt_attr(n, a) : NULL;

	return v ? x && strcmp(x, v) == 0 : x == NULL;
}

/* ---- a client that keeps the XEP-0198 counts ---- */

struct sc {
	struct xt *c;
	char user[64], bare[128];
	bool sm;		/* <enabled/> seen */
	bool ack;		/* answer the server's <r/> */
	uint32_t in;		/* stanzas received since <enable/> */
	uint32_t out;		/* stanzas sent since <enable/> */
	long srv_h;		/* highest h of the server's <a/>, -1: none yet */
	int acks;		/* <a/> elements received */
	int rs;			/* <r/> elements received */
	bool h_down;		/* an <a h/> lower than an earlier one */
	bool h_over;		/* an <a h/> above what we sent */
	char err[64];		/* the condition of a stream error we got */
	char id[256];		/* resumption id */
};

static struct sc *sc_new(const char *user)
{
	struct sc *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->bare, sizeof(s->bare), "%s@%s", user, host);
	s->srv_h = -1;
	return s;
}

static struct sc *sc_login(const char *user, const char *res)
{
	char err[256];
	struct sc *s = sc_new(user);

	s->c = xt_login("127.0.0.1", port, XT_TCP, host, user, pass, NULL, res, NULL, err,
			sizeof(err));
	if (!s->c) {
		printf("# login %s/%s failed: %s\n", user, res, err);
		free(s);
		return NULL;
	}
	return s;
}

/* Drops the TCP connection without </stream:stream> (a lost connection). */
static void sc_drop(struct sc *s)
{
	if (s) {
		xt_free(s->c);
		s->c = NULL;
	}
}

static void sc_free(struct sc *s)
{
	if (s) {
		xt_free(s->c);
		free(s);
	}
}

/* Everything an sc client writes goes through here (traced). */
static void sc_sendf(struct sc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sc_sendf(struct sc *s, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (trace)
		printf("# %s -> %s\n", s->user, buf);
	if (s->c)
		xt_send(s->c, buf, strlen(buf));
}

static bool is_stanza(const struct xt_node *n)
{
	return xt_is(n, XT_NS_CLIENT, "message") || xt_is(n, XT_NS_CLIENT, "presence") ||
	       xt_is(n, XT_NS_CLIENT, "iq");
}

static void sc_answer(struct sc *s)
{
	sc_sendf(s, "<a xmlns='" NS_SM "' h='%u'/>", s->in);
}

/*
 * The next element within ms, or NULL. Counts the stanzas, answers <r/> when
 * s->ack, keeps the highest h of the server's <a/>, notes stream errors.
 */
static struct xt_node *sc_read(struct sc *s, int ms)
{
	struct xt_node *n;

	if (!s || !s->c || !(n = xt_read_ms(s->c, ms > 0 ? ms : 0)))
		return NULL;
	if (trace)
		printf("# %s <- %.300s\n", s->user, xt_raw(n));
	if (s->sm && xt_is(n, NS_SM, "r")) {
		s->rs++;
		if (s->ack)
			sc_answer(s);
	} else if (s->sm && xt_is(n, NS_SM, "a")) {
		const char *h = xt_attr(n, "h");
		long v = h ? strtol(h, NULL, 10) : -1;

		s->acks++;
		if (v < s->srv_h)
			s->h_down = true;
		if (v > (long)s->out)
			s->h_over = true;
		if (v > s->srv_h)
			s->srv_h = v;
	} else if (xt_is(n, XT_NS_STREAMS, "error")) {
		const char *cond = xt_condition(n, XT_NS_STREAM_ERR);

		snprintf(s->err, sizeof(s->err), "%s", cond ? cond : "(none)");
	} else if (s->sm && is_stanza(n)) {
		s->in++;
	}
	return n;
}

/* Whether the connection can still give us something. */
static bool sc_alive(const struct sc *s)
{
	return s && s->c && (xt_status(s->c) == XT_OK || xt_status(s->c) == XT_TIMEOUT);
}

/* Reads (and counts, and acks as configured) everything for ms. */
static void sc_drain(struct sc *s, int ms)
{
	long long deadline = now_ms() + ms;

	while (sc_alive(s) && now_ms() < deadline)
		sc_read(s, (int)(deadline - now_ms()));
}

/* <enable/>; true on <enabled/>, whose element is left in *enabled_raw. */
static bool sc_enable(struct sc *s, bool resume, char *raw, size_t rawlen)
{
	struct xt_node *n;

	sc_sendf(s, "<enable xmlns='" NS_SM "'%s/>", resume ? " resume='true'" : "");
	while ((n = xt_read(s->c)) && !xt_is(n, NS_SM, "enabled") && !xt_is(n, NS_SM, "failed") &&
	       !xt_is(n, XT_NS_STREAMS, "error"))
		;
	if (raw)
		snprintf(raw, rawlen, "%s", n ? xt_raw(n) : xt_status_name(xt_status(s->c)));
	if (!n || !xt_is(n, NS_SM, "enabled")) {
		printf("# %s: no <enabled/>: %s\n", s->user, n ? xt_raw(n) : xt_err(s->c));
		return false;
	}
	s->sm = true;
	s->ack = true;
	s->in = s->out = 0;
	s->srv_h = -1;
	if (xt_attr(n, "id"))
		snprintf(s->id, sizeof(s->id), "%s", xt_attr(n, "id"));
	return true;
}

/* Stanzas we send: counted for the server's h. */
static void sc_presence(struct sc *s)
{
	sc_sendf(s, "<presence/>");
	s->out++;
}

static void sc_stanza(struct sc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sc_stanza(struct sc *s, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sc_sendf(s, "%s", buf);
	s->out++;
}

static void send_chat(struct sc *s, const char *to, const char *body, const char *extra)
{
	sc_stanza(s, "<message to='%s@%s' type='chat'><body>%s</body>%s</message>", to, host,
		  body, extra ? extra : "");
}

/* n numbered chat messages prefix1..prefixN. */
static void send_numbered(struct sc *s, const char *to, const char *prefix, int n)
{
	for (int i = 1; i <= n; i++) {
		char body[32];

		snprintf(body, sizeof(body), "%s%d", prefix, i);
		send_chat(s, to, body, NULL);
	}
}

/* An IQ through sc_read (xt_iq would skip, and not count, what comes between). */
static struct xt_node *sc_iq(struct sc *s, const char *type, const char *to,
			     const char *payload)
{
	char id[32];
	long long deadline = now_ms() + slow_ms;
	struct xt_node *n;

	snprintf(id, sizeof(id), "%s", xt_new_id(s->c));
	sc_stanza(s, "<iq type='%s' id='%s'%s%s%s>%s</iq>", type, id, to ? " to='" : "",
		  to ? to : "", to ? "'" : "", payload);
	while (sc_alive(s) && now_ms() < deadline)
		if ((n = sc_read(s, (int)(deadline - now_ms()))) && xt_is(n, XT_NS_CLIENT, "iq") &&
		    attr_is(n, "id", id))
			return n;
	return NULL;
}

/*
 * Sends <r/> and reads until the server's h reaches want or ms pass (another
 * <r/> every second); the server may answer low first and send more later.
 * Returns the highest h seen, -1 for none.
 */
static long wait_ack(struct sc *s, uint32_t want, int ms)
{
	long long deadline = now_ms() + ms, next_r = now_ms() + 1000;

	if (!s || !s->c)
		return -1;
	sc_sendf(s, "<r xmlns='" NS_SM "'/>");
	while (sc_alive(s) && s->srv_h < (long)want && now_ms() < deadline) {
		long long stop = deadline < next_r ? deadline : next_r;

		sc_read(s, (int)(stop - now_ms()));
		if (now_ms() >= next_r) {
			sc_sendf(s, "<r xmlns='" NS_SM "'/>");
			next_r = now_ms() + 1000;
		}
	}
	return s->srv_h;
}

/* Reads until a presence from the bare JID `from` of type (NULL: available)
 * arrives; true if it did within ms. */
static bool saw_presence(struct sc *s, const char *from, const char *type, int ms)
{
	long long deadline = now_ms() + ms;
	struct xt_node *n;

	while (sc_alive(s) && now_ms() < deadline) {
		const char *f;
		size_t len = strlen(from);

		if (!(n = sc_read(s, (int)(deadline - now_ms()))) ||
		    !xt_is(n, XT_NS_CLIENT, "presence"))
			continue;
		f = xt_attr(n, "from");
		if (!f || strncmp(f, from, len) || (f[len] && f[len] != '/'))
			continue;
		if (type ? attr_is(n, "type", type) : attr_is(n, "type", NULL))
			return true;
	}
	return false;
}

/* ---- what arrives ---- */

struct msgs {
	int n;			/* messages whose body has the prefix */
	int other;		/* other messages with a body */
	int delayed;		/* with <delay/> */
	int sid;		/* with <stanza-id by='our bare JID' id/> */
	char body[MAX_MSGS][32];
	char sid_id[MAX_MSGS][128];
};

/*
 * Collects messages with a body until want with the prefix have arrived (or ms
 * pass), then for quiet ms more so that a duplicate would show.
 */
static void collect(struct sc *s, const char *prefix, int want, int ms, int quiet,
		    struct msgs *m)
{
	long long deadline = now_ms() + ms;
	bool extra = false;

	memset(m, 0, sizeof(*m));
	while (sc_alive(s)) {
		struct xt_node *n, *b, *sid;

		if (!extra && m->n >= want) {
			extra = true;
			deadline = now_ms() + quiet;
		}
		if (now_ms() >= deadline)
			break;
		n = sc_read(s, (int)(deadline - now_ms()));
		if (!n || !xt_is(n, XT_NS_CLIENT, "message"))
			continue;
		b = xt_child(n, XT_NS_CLIENT, "body");
		if (!b || !b->text)
			continue;
		if (strncmp(b->text, prefix, strlen(prefix)) != 0) {
			m->other++;
			continue;
		}
		sid = xt_child(n, NS_SID, "stanza-id");
		if (m->n < MAX_MSGS) {
			snprintf(m->body[m->n], sizeof(m->body[0]), "%s", b->text);
			if (sid && xt_attr(sid, "id"))
				snprintf(m->sid_id[m->n], sizeof(m->sid_id[0]), "%s",
					 xt_attr(sid, "id"));
		}
		m->n++;
		if (xt_child(n, NS_DELAY, "delay"))
			m->delayed++;
		if (sid && attr_is(sid, "by", s->bare) && xt_attr(sid, "id") &&
		    *xt_attr(sid, "id"))
			m->sid++;
	}
}

/* Whether m holds exactly prefix1..prefixN, in order (and nothing else). */
static bool exactly(const struct msgs *m, const char *prefix, int n, char *why, size_t len)
{
	if (m->n != n || m->other) {
		snprintf(why, len, "%d messages, expected %d (and %d others)", m->n, n, m->other);
		return false;
	}
	for (int i = 0; i < n && i < MAX_MSGS; i++) {
		char want[32];

		snprintf(want, sizeof(want), "%s%d", prefix, i + 1);
		if (strcmp(m->body[i], want) != 0) {
			snprintf(why, len, "message %d is %s, expected %s", i + 1, m->body[i], want);
			return false;
		}
	}
	snprintf(why, len, "ok");
	return true;
}

/* u and v subscribe to each other's presence (plain connections). */
static bool make_mutual(const char *u, const char *v)
{
	struct sc *a = sc_login(u, "setup"), *b = sc_login(v, "setup");
	struct xt_node *n;
	bool ok = a && b;

	if (ok) {
		xt_iq(a->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
		xt_iq(b->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
		sc_presence(a);
		sc_presence(b);
		sc_sendf(a, "<presence type='subscribe' to='%s'/>", b->bare);
		ok = saw_presence(b, a->bare, "subscribe", slow_ms);
		sc_sendf(b, "<presence type='subscribed' to='%s'/>", a->bare);
		sc_sendf(b, "<presence type='subscribe' to='%s'/>", a->bare);
		ok = ok && saw_presence(a, b->bare, "subscribe", slow_ms);
		sc_sendf(a, "<presence type='subscribed' to='%s'/>", b->bare);
		/* the roster says so once both sides are through */
		for (int i = 0; ok; i++) {
			struct xt_node *q, *it;

			if (i == 10 * slowf * 2) {
				ok = false;
				break;
			}
			sleep_ms(100);
			n = xt_iq(a->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
			q = n ? xt_child(n, "jabber:iq:roster", "query") : NULL;
			it = q ? xt_child(q, "jabber:iq:roster", "item") : NULL;
			if (attr_is(it, "subscription", "both"))
				break;
		}
	}
	if (!ok)
		printf("# mutual subscription of %s and %s failed\n", u, v);
	sc_free(a);
	sc_free(b);
	return ok;
}

/* An online, presence-sending watcher of user's presence (a plain connection). */
static struct sc *watcher(const char *user)
{
	struct sc *w = sc_login(user, "watch");

	if (w) {
		xt_iq(w->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
		sc_presence(w);
	}
	return w;
}

/* A new stream, authenticated, not bound: for <resume/>. */
static struct xt *auth_only(const char *user)
{
	char err[256];
	struct xt *c = xt_connect("127.0.0.1", port, NULL, err, sizeof(err));

	if (!c) {
		printf("# connect failed: %s\n", err);
		return NULL;
	}
	if (xt_open_stream(c, host) < 0 ||
	    xt_auth(c, "SCRAM-SHA-256", host, user, pass, NULL) != 0) {
		printf("# auth %s failed: %s\n", user, xt_err(c));
		xt_free(c);
		return NULL;
	}
	return c;
}

/* A clean end: </stream:stream>, then wait for the server's. */
static void sc_close(struct sc *s)
{
	long long deadline = now_ms() + slow_ms;

	if (!s || !s->c)
		return;
	sc_sendf(s, "</stream:stream>");
	while (sc_alive(s) && now_ms() < deadline)
		sc_read(s, (int)(deadline - now_ms()));
}

/* ---- 1, 2: the feature and <enable/> ---- */

static void t_features(void)
{
	char err[256];
	struct xt *c = xt_connect("127.0.0.1", port, NULL, err, sizeof(err));
	bool before = true, after = false, opened = false;

	if (c && xt_open_stream(c, host) == 0) {
		opened = true;
		before = xt_child(xt_features(c), NS_SM, "sm") != NULL;
		if (xt_auth(c, "SCRAM-SHA-256", host, "u1", pass, NULL) == 0)
			after = xt_child(xt_features(c), NS_SM, "sm") != NULL;
	}
	xt_report("stream features: <sm xmlns='urn:xmpp:sm:3'/> after SASL, not before",
		  opened && !before && after, "before auth %d, after auth %d (%s)", before, after,
		  c ? xt_raw(xt_features(c)) : err);
	xt_free(c);
}

static void t_enable(void)
{
	struct sc *a = sc_login("u1", "plain"), *b = sc_login("u1", "resumable");
	char ra[1024] = "login failed", rb[1024] = "login failed";
	bool ea = a && sc_enable(a, false, ra, sizeof(ra));
	bool eb = b && sc_enable(b, true, rb, sizeof(rb));
	char max[16];

	snprintf(max, sizeof(max), "%d", resume_s);
	xt_report("<enable/> gets <enabled/> without an id; <enable resume='true'/> gets "
		  "<enabled id resume='true' max='resume-timeout'/>",
		  ea && !a->id[0] && !attr_is(a->c ? xt_last(a->c) : NULL, "resume", "true") &&
		  eb && b->id[0] && attr_is(xt_last(b->c), "resume", "true") &&
		  attr_is(xt_last(b->c), "max", max), "plain: %s; resume: %s", ra, rb);
	sc_free(a);
	sc_free(b);
}

/* ---- 3: the client's stanzas that settle at once ---- */

static void t_counting(void)
{
	const char *name = "<r/> after an IQ ping to the server, a presence and a message to a "
			   "plain client: <a h='3'/> (they settle at once)";
	struct sc *s = sc_login("u2", "count"), *t = sc_login("u3", "plain");
	struct msgs got = { 0 };
	long h = -1;

	if (!s || !t) {
		xt_report(name, false, "login failed");
		goto out;
	}
	sc_presence(t);		/* online, no stream management */
	sc_drain(t, 100 * slowf);
	if (!sc_enable(s, false, NULL, 0)) {
		xt_report(name, false, "no <enabled/>");
		goto out;
	}
	sc_stanza(s, "<iq type='get' id='p1' to='%s'><ping xmlns='" XT_NS_PING "'/></iq>", host);
	sc_presence(s);
	send_chat(s, "u3", "count1", NULL);
	/* one <r/>; nothing waits for anyone here, so no long wait either */
	h = wait_ack(s, 3, 1000 * slowf);
	collect(t, "count", 1, slow_ms, 0, &got);
	xt_report(name, h == 3 && !s->h_over && !s->h_down && got.n == 1,
		  "h=%ld after %d <a/>%s%s; the plain client got %d", h, s->acks,
		  s->h_over ? ", one above 3" : "", s->h_down ? ", h went down" : "", got.n);
out:
	sc_free(s);
	sc_free(t);
}

/* ---- 4: the server counts what it sends ---- */

static void t_too_high(void)
{
	const char *name = "the server asks with <r/> after its stanzas; an <a h/> above what it "
			   "sent gets <undefined-condition/> with <handled-count-too-high/>, then "
			   "the close";
	struct sc *s = sc_login("u4", "count");
	struct xt_node *n = NULL, *x = NULL;
	char raw[1024] = "nothing", cond[64] = "", hv[16], sv[16];
	const char *why = NULL;
	bool got_r = false, closed = false, attrs_ok = true, too_high = false;
	long long deadline;
	uint32_t sent_h;

	if (!s || !sc_enable(s, false, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		sc_free(s);
		return;
	}
	s->ack = false;
	sc_presence(s);
	sc_iq(s, "get", host, "<ping xmlns='" XT_NS_PING "'/>");	/* the result: a stanza */
	deadline = now_ms() + slow_ms;
	while (sc_alive(s) && !s->rs && now_ms() < deadline)
		sc_read(s, (int)(deadline - now_ms()));
	got_r = s->rs > 0;
	sc_answer(s);		/* the right count is accepted */
	sc_iq(s, "get", host, "<ping xmlns='" XT_NS_PING "'/>");
	sent_h = s->in + 5;
	sc_sendf(s, "<a xmlns='" NS_SM "' h='%u'/>", sent_h);
	deadline = now_ms() + slow_ms;
	while (now_ms() < deadline && (n = xt_read_ms(s->c, (int)(deadline - now_ms()))))
		if (xt_is(n, XT_NS_STREAMS, "error"))
			break;
		else if (is_stanza(n))
			s->in++;
	if (n) {
		const char *c = xt_condition(n, XT_NS_STREAM_ERR);

		snprintf(raw, sizeof(raw), "%s", xt_raw(n));
		snprintf(cond, sizeof(cond), "%s", c ? c : "");
		x = xt_child(n, NS_SM, "handled-count-too-high");
		too_high = x != NULL;
		snprintf(hv, sizeof(hv), "%u", sent_h);
		snprintf(sv, sizeof(sv), "%u", s->in);
		/* XEP-0198 §4: h is what we claimed, send-count what it sent */
		if (x && xt_attr(x, "h") && !attr_is(x, "h", hv))
			attrs_ok = false;
		if (x && xt_attr(x, "send-count") && !attr_is(x, "send-count", sv))
			attrs_ok = false;
		closed = xt_expect_close(s->c, &why);
	}
	xt_report(name, got_r && !strcmp(cond, "undefined-condition") && too_high && attrs_ok &&
		  closed,
		  "<r/> seen %d; sent h=%u, we counted %u; got %s; close: %s", got_r, sent_h, s->in,
		  raw, why ? why : "ok");
	sc_free(s);
}

/* ---- 5, 6: resumption ---- */

/* On a new stream: <resume/>; the <resumed/> or <failed/> goes to raw. */
static bool resume(struct sc *s, struct xt *c, uint32_t h, long *srv_h, char *raw,
		   size_t len)
{
	struct xt_node *n;

	xt_sendf(c, "<resume xmlns='" NS_SM "' previd='%s' h='%u'/>", s->id, h);
	while ((n = xt_read(c)) && !xt_is(n, NS_SM, "resumed") && !xt_is(n, NS_SM, "failed") &&
	       !xt_is(n, XT_NS_STREAMS, "error"))
		;
	snprintf(raw, len, "%s", n ? xt_raw(n) : xt_status_name(xt_status(c)));
	if (!n || !xt_is(n, NS_SM, "resumed"))
		return false;
	*srv_h = xt_attr(n, "h") ? strtol(xt_attr(n, "h"), NULL, 10) : -1;
	return attr_is(n, "previd", s->id);
}

/*
 * A new stream for user that tries <resume previd/> and expects
 * <failed><item-not-found/></failed>; then binds. Returns the bound client
 * (whatever the answer was, if bind worked) and sets *failed; the answer goes
 * to raw.
 */
static struct sc *resume_fails(const char *user, const char *previd, bool *failed, char *raw,
			       size_t len)
{
	struct sc *s = sc_new(user);
	struct xt_node *n;
	char jid[256];

	*failed = false;
	snprintf(raw, len, "no connection");
	if (!(s->c = auth_only(user))) {
		free(s);
		return NULL;
	}
	xt_sendf(s->c, "<resume xmlns='" NS_SM "' previd='%s' h='0'/>", previd);
	n = xt_read(s->c);
	snprintf(raw, len, "%s", n ? xt_raw(n) : xt_err(s->c));
	*failed = n && xt_is(n, NS_SM, "failed") && xt_child(n, XT_NS_STANZA_ERR, "item-not-found");
	if (!*failed || xt_bind(s->c, "again", jid, sizeof(jid)) != 0) {
		if (*failed)
			snprintf(raw, len, "bind after <failed/>: %s", xt_err(s->c));
		*failed = false;
		sc_free(s);
		return NULL;
	}
	return s;
}

static void t_resume(void)
{
	struct sc *w = NULL, *a = NULL, *b = NULL;
	struct xt *c2 = NULL;
	struct msgs before = { 0 }, got = { 0 };
	char why[128] = "not resumed", raw[1024] = "no connection";
	const char *name = "resumption: <resumed previd h/>, then every message sent after the "
			   "client's h once, in order; the contact saw no unavailable presence";
	const char *name2 = "resumption again with h = all but the last stanza received: only "
			    "that last message comes again";
	bool resumed = false, seen, unavailable = true, accepted = false, resumed2 = false;
	long srv_h = -1, srv_h2 = -1;
	uint32_t out;
	struct msgs again = { 0 }, again2 = { 0 };
	char why2[128] = "not resumed", raw2[1024] = "no connection";

	if (!make_mutual("u5", "u6")) {
		xt_report(name, false, "subscription set-up failed");
		xt_report(name2, false, "subscription set-up failed");
		return;
	}
	w = watcher("u6");
	a = sc_login("u5", "phone");
	b = sc_login("u7", "r");
	if (!w || !a || !b || !sc_enable(a, true, NULL, 0) || !a->id[0]) {
		xt_report(name, false, "login or enable failed");
		xt_report(name2, false, "login or enable failed");
		goto out;
	}
	a->ack = false;
	sc_presence(a);
	seen = saw_presence(w, a->bare, NULL, slow_ms);
	send_numbered(b, "u5", "rs", 3);
	collect(a, "rs", 3, slow_ms, 200, &before);
	out = a->out;
	sc_drop(a);		/* no </stream:stream>: the connection is lost */
	sleep_ms(200);
	sc_stanza(b, "<message to='u5@%s' type='chat'><body>rs4</body></message>", host);
	sc_stanza(b, "<message to='u5@%s' type='chat'><body>rs5</body></message>", host);
	sleep_ms(100);
	c2 = auth_only("u5");
	if (c2) {
		resumed = resume(a, c2, 0, &srv_h, raw, sizeof(raw));
		a->c = c2;
		a->in = 0;	/* we said h=0: the count starts over from there */
		a->ack = true;
		collect(a, "rs", 5, slow_ms, 700 * slowf, &got);
		exactly(&got, "rs", 5, why, sizeof(why));
		/* our count of the replay agrees with the server's: no error */
		sc_answer(a);
		wait_ack(a, out, 500 * slowf);
		accepted = sc_alive(a) && !a->err[0];
	}
	/* The watcher: available before, and no unavailable at any time since. */
	unavailable = saw_presence(w, a->bare, "unavailable", 300 * slowf);
	xt_report(name, seen && before.n == 3 && resumed && srv_h == (long)out &&
		  !strcmp(why, "ok") && accepted && !unavailable,
		  "available seen %d, %d before the drop; %s (our stanzas: %u); replay: %s; our "
		  "<a/> accepted %d (%s); unavailable seen %d", seen, before.n, raw, out, why,
		  accepted, a->err, unavailable);
	/* Twice more, received but not acked, then a drop; <resume h/> acks all but
	 * the last of them: only the last one is due again. */
	a->ack = false;
	send_numbered(b, "u5", "rt", 2);
	collect(a, "rt", 2, slow_ms, 200, &again);
	out = a->out;
	sc_drop(a);
	sleep_ms(200);
	c2 = again.n == 2 ? auth_only("u5") : NULL;
	if (c2) {
		resumed2 = resume(a, c2, a->in - 1, &srv_h2, raw2, sizeof(raw2));
		a->c = c2;
		a->in--;
		a->ack = true;
		collect(a, "rt", 1, slow_ms, 700 * slowf, &again2);
		snprintf(why2, sizeof(why2), "%d messages, the first %s", again2.n,
			 again2.n ? again2.body[0] : "-");
	}
	xt_report(name2, again.n == 2 && resumed2 && srv_h2 == (long)out && again2.n == 1 &&
		  !strcmp(again2.body[0], "rt2"), "%d before the drop; %s; replay: %s", again.n,
		  raw2, why2);
	sc_close(a);
out:
	sc_free(w);
	sc_free(a);
	sc_free(b);
}

static void t_resume_unknown(void)
{
	char raw[1024];
	bool failed;
	struct sc *c = resume_fails("u8", "bogus-0123456789abcdef", &failed, raw, sizeof(raw));

	xt_report("<resume/> with an unknown previd: <failed><item-not-found/></failed> without h, "
		  "then bind works", c && failed && !strstr(raw, " h="), "%s", raw);
	sc_free(c);
}

/* ---- a clean close: no resumption ---- */

static void t_clean_close(void)
{
	struct sc *w = NULL, *a = NULL, *b = NULL, *a2 = NULL;
	struct msgs before = { 0 }, got = { 0 };
	char why[128] = "no login", raw[1024] = "no connection";
	const char *name = "a clean close (</stream:stream>) of a resumable session ends it at "
			   "once: the contact sees unavailable, <resume/> fails with h (its one "
			   "stanza, handled), the unacked messages are offline, once, in order";
	bool unavailable = false, failed = false;

	if (!make_mutual("u25", "u26")) {
		xt_report(name, false, "subscription set-up failed");
		return;
	}
	w = watcher("u26");
	a = sc_login("u25", "phone");
	b = sc_login("u27", "r");
	if (!w || !a || !b || !sc_enable(a, true, NULL, 0) || !a->id[0]) {
		xt_report(name, false, "login or enable failed");
		goto out;
	}
	a->ack = false;
	sc_presence(a);
	saw_presence(w, a->bare, NULL, slow_ms);
	send_numbered(b, "u25", "cc", 2);
	collect(a, "cc", 2, slow_ms, 200, &before);
	sc_close(a);		/* unacked, but closed on purpose */
	/* well within resume-timeout, so a session kept for resumption would show */
	unavailable = saw_presence(w, a->bare, "unavailable", resume_s * 1000 * 2 / 3);
	a2 = resume_fails("u25", a->id, &failed, raw, sizeof(raw));
	if (a2) {
		sc_presence(a2);
		collect(a2, "cc", 2, slow_ms, 1000, &got);
		exactly(&got, "cc", 2, why, sizeof(why));
	}
	xt_report(name, before.n == 2 && unavailable && failed && strstr(raw, " h='1'") &&
		  !strcmp(why, "ok") && got.delayed == 2, "%d before the close; unavailable "
		  "seen %d; resume: %s; again: %s, %d with <delay/>", before.n, unavailable, raw,
		  why, got.delayed);
out:
	sc_free(w);
	sc_free(a);
	sc_free(a2);
	sc_free(b);
}

/* ---- 7: the resumption timeout ---- */

static void t_timeout(void)
{
	struct sc *w = NULL, *a = NULL, *b = NULL, *a2 = NULL;
	struct msgs before = { 0 }, got = { 0 };
	char why[128] = "no login", raw[1024] = "no connection";
	const char *name = "resumption timeout: the contact sees unavailable after resume-timeout "
			   "(not at the drop), <resume/> then fails; the unacked messages come back "
			   "from offline storage with <delay/>, once, in order";
	bool early = true, later = false, failed = false;
	long long t0, took = -1;

	if (!make_mutual("u9", "u10")) {
		xt_report(name, false, "subscription set-up failed");
		return;
	}
	w = watcher("u10");
	a = sc_login("u9", "phone");
	b = sc_login("u11", "r");
	if (!w || !a || !b || !sc_enable(a, true, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		goto out;
	}
	a->ack = false;
	sc_presence(a);
	saw_presence(w, a->bare, NULL, slow_ms);
	send_numbered(b, "u9", "to", 2);
	collect(a, "to", 2, slow_ms, 200, &before);
	sc_drop(a);
	t0 = now_ms();
	early = saw_presence(w, a->bare, "unavailable", 1000);
	if (!early) {
		later = saw_presence(w, a->bare, "unavailable", resume_s * 1000 + 2 * slow_ms);
		took = now_ms() - t0;
	}
	a2 = resume_fails("u9", a->id, &failed, raw, sizeof(raw));
	if (a2) {
		sc_presence(a2);
		collect(a2, "to", 2, slow_ms, 1000, &got);
		exactly(&got, "to", 2, why, sizeof(why));
	}
	xt_report(name, before.n == 2 && !early && later && took >= resume_s * 1000 - 500 &&
		  failed && !strcmp(why, "ok") && got.delayed == 2,
		  "%d before the drop; unavailable within 1 s %d, later %d after %lld ms; resume: "
		  "%s; again: %s, %d with <delay/>", before.n, early, later, took, raw, why,
		  got.delayed);
out:
	sc_free(w);
	sc_free(a);
	sc_free(a2);
	sc_free(b);
}

/* ---- 8, 9: what the sender's ack waits for ---- */

static void t_sender_ack(void)
{
	struct sc *s = sc_login("u12", "s"), *r = sc_login("u13", "r");
	struct msgs got = { 0 };
	const char *name = "a message to a stream-management client is acked to the sender only "
			   "once the recipient acked it";
	long h1 = -1, h2 = -1;

	if (!s || !r || !sc_enable(r, false, NULL, 0) || !sc_enable(s, false, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		goto out;
	}
	sc_presence(r);
	sc_drain(r, 200 * slowf);
	sc_answer(r);		/* acks its own presence (RFC 6121 4.2.2) */
	r->ack = false;
	send_numbered(s, "u13", "sa", 3);
	collect(r, "sa", 3, slow_ms, 100, &got);
	h1 = wait_ack(s, 3, 1000);
	sc_answer(r);		/* every stanza r got, the three messages among them */
	h2 = wait_ack(s, 3, slow_ms);
	xt_report(name, got.n == 3 && h1 < 3 && h2 == 3 && !s->h_down && !s->h_over,
		  "delivered %d; h before the recipient's ack %ld, after %ld%s%s", got.n, h1, h2,
		  s->h_down ? ", h went down" : "", s->h_over ? ", h above 3" : "");
out:
	sc_free(s);
	sc_free(r);
}

static void t_withholding(void)
{
	struct sc *s = sc_login("u14", "s"), *r = sc_login("u15", "r"), *r2 = NULL;
	struct msgs got = { 0 };
	const char *name = "a recipient that never acks: its stream is closed with "
			   "connection-timeout, then the sender gets its full ack and the "
			   "messages wait offline, once, in order";
	char why[128] = "no login";
	long long t0, deadline;
	long h1 = -1, h = -1;
	int shut = -1;

	if (!s || !r || !sc_enable(r, false, NULL, 0) || !sc_enable(s, false, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		goto out;
	}
	sc_presence(r);
	sc_drain(r, 200 * slowf);
	sc_answer(r);		/* acks its own presence (RFC 6121 4.2.2) */
	r->ack = false;
	t0 = now_ms();
	send_numbered(s, "u15", "wh", 3);
	h1 = wait_ack(s, 3, 1000);
	deadline = now_ms() + resume_s * 1000 + 2 * slow_ms;
	while (sc_alive(r) && !r->err[0] && now_ms() < deadline)
		sc_read(r, (int)(deadline - now_ms()));
	shut = (int)(now_ms() - t0);
	h = wait_ack(s, 3, slow_ms);
	r2 = sc_login("u15", "again");
	if (r2) {
		sc_presence(r2);
		collect(r2, "wh", 3, slow_ms, 1000, &got);
		exactly(&got, "wh", 3, why, sizeof(why));
	}
	xt_report(name, h1 < 3 && !strcmp(r->err, "connection-timeout") &&
		  shut >= resume_s * 1000 - 500 && h == 3 && !strcmp(why, "ok"),
		  "h at first %ld; stream error '%s' after %d ms; then h=%ld; again: %s", h1,
		  r->err, shut, h, why);
out:
	sc_free(s);
	sc_free(r);
	sc_free(r2);
}

/* ---- 10, 11: offline storage and acks ---- */

/* Fills user's offline store with prefix1..2 from sender (acked = committed). */
static bool store_two(const char *sender, const char *user, const char *prefix, long *h)
{
	struct sc *b = sc_login(sender, "b");
	bool ok = b && sc_enable(b, false, NULL, 0);

	if (ok) {
		send_numbered(b, user, prefix, 2);
		*h = wait_ack(b, 2, slow_ms);
		ok = *h == 2;
		sc_close(b);
	}
	sc_free(b);
	return ok;
}

static void flush_case(const char *user, bool resumable, const char *prefix)
{
	struct sc *o;
	struct msgs first = { 0 }, second = { 0 }, third = { 0 };
	char name[300], why[128] = "no login";
	long h = -1;

	snprintf(name, sizeof(name), "offline messages flushed to a stream-management client "
		 "(%s) that drops without acking come again at the next login, once; acked, "
		 "they are gone", resumable ? "resumable, after resume-timeout" : "no resumption");
	if (!store_two("u16", user, prefix, &h)) {
		xt_report(name, false, "storing failed: h=%ld", h);
		return;
	}
	/* Stream management before the initial presence that flushes the store. */
	o = sc_login(user, "first");
	if (o && sc_enable(o, resumable, NULL, 0)) {
		o->ack = false;
		sc_presence(o);
		collect(o, prefix, 2, slow_ms, 300, &first);
	}
	sc_drop(o);
	sc_free(o);
	sleep_ms(resumable ? resume_s * 1000 + 1000 * slowf : 300 * slowf);
	o = sc_login(user, "second");
	if (o && sc_enable(o, false, NULL, 0)) {
		sc_presence(o);
		collect(o, prefix, 2, slow_ms, 1000, &second);
		exactly(&second, prefix, 2, why, sizeof(why));
		sc_answer(o);	/* acks everything, then a clean close */
		sc_close(o);
	}
	sc_free(o);
	o = sc_login(user, "third");
	if (o) {
		sc_presence(o);
		collect(o, prefix, 1, 1500 * slowf, 0, &third);
	}
	sc_free(o);
	xt_report(name, first.n == 2 && !strcmp(why, "ok") && third.n == 0,
		  "first login %d; second: %s; third login %d", first.n, why, third.n);
}

static void t_flush(void)
{
	flush_case("u17", true, "fr");
	flush_case("u18", false, "fp");
}

static void t_offline_ack(void)
{
	struct sc *s = sc_login("u19", "s"), *x = NULL;
	struct msgs got = { 0 };
	const char *name = "messages to an offline user are acked once stored (h reaches 2), and "
			   "are there at its login";
	char why[128] = "no login";
	long h = -1;

	if (!s || !sc_enable(s, false, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		sc_free(s);
		return;
	}
	send_numbered(s, "u20", "of", 2);
	h = wait_ack(s, 2, slow_ms);
	x = sc_login("u20", "x");
	if (x) {
		sc_presence(x);
		collect(x, "of", 2, slow_ms, 500, &got);
		exactly(&got, "of", 2, why, sizeof(why));
	}
	xt_report(name, h == 2 && !s->h_over && !strcmp(why, "ok") && got.delayed == 2,
		  "h=%ld%s; at login: %s, %d with <delay/>", h, s->h_over ? " (above 2)" : "", why,
		  got.delayed);
	sc_free(s);
	sc_free(x);
}

/* ---- 12: receipts and markers kept untouched ---- */

/* The child elements of what we sent, to compare with what comes out. */
struct want_child {
	const char *ns, *name, *attr, *value, *text;
};

static const struct want_child rm_children[3][3] = {
	{ { XT_NS_CLIENT, "body", NULL, NULL, "rm1" }, { NS_RECEIPTS, "request", NULL, NULL, NULL },
	  { NS_MARKERS, "markable", NULL, NULL, NULL } },
	{ { NS_RECEIPTS, "received", "id", "x1", NULL } },
	{ { NS_MARKERS, "displayed", "id", "x2", NULL } },
};


/* Whether got has every child we sent (same attribute, same text) and nothing
 * more than stanza-id and delay. */
static bool same_children(int i, const struct xt_node *got, char *why, size_t len)
{
	const struct xt_node *b;
	int k;

	for (k = 0; k < 3 && rm_children[i][k].name; k++) {
		const struct want_child *w = &rm_children[i][k];

		b = xt_child(got, w->ns, w->name);
		if (!b || (w->attr && !attr_is(b, w->attr, w->value)) ||
		    strcmp(b->text ? b->text : "", w->text ? w->text : "") != 0) {
			snprintf(why, len, "rm%d: <%s xmlns='%s'/> missing or changed: %s; ", i + 1,
				 w->name, w->ns, xt_raw(got));
			return false;
		}
	}
	for (b = got->children; b; b = b->next) {
		if (!strcmp(b->ns, NS_SID) || !strcmp(b->ns, NS_DELAY))
			continue;
		for (k = 0; k < 3 && rm_children[i][k].name; k++)
			if (!strcmp(rm_children[i][k].ns, b->ns) &&
			    !strcmp(rm_children[i][k].name, b->name))
				break;
		if (k == 3 || !rm_children[i][k].name) {
			snprintf(why, len, "rm%d: <%s xmlns='%s'/> added; ", i + 1, b->name, b->ns);
			return false;
		}
	}
	return true;
}

static void t_receipts_markers(void)
{
	const char *name = "a receipt request, a receipt and a chat marker to an offline user are "
			   "stored and delivered at login, once each, with the same child elements";
	struct sc *s = sc_login("u21", "s"), *o = NULL;
	char why[1024] = "", one[400];
	int seen[3] = { 0 };
	long h = -1;
	bool ok = true;

	if (!s || !sc_enable(s, false, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		sc_free(s);
		return;
	}
	sc_stanza(s, "<message to='u22@%s' type='chat' id='rm1'><body>rm1</body><request xmlns='"
		  NS_RECEIPTS "'/><markable xmlns='" NS_MARKERS "'/></message>", host);
	sc_stanza(s, "<message to='u22@%s' type='chat' id='rm2'><received xmlns='" NS_RECEIPTS
		  "' id='x1'/></message>", host);
	sc_stanza(s, "<message to='u22@%s' id='rm3'><displayed xmlns='" NS_MARKERS "' id='x2'/>"
		  "</message>", host);
	h = wait_ack(s, 3, slow_ms);	/* all three committed */
	o = sc_login("u22", "o");
	if (o) {
		long long deadline = now_ms() + slow_ms;
		struct xt_node *n;

		sc_presence(o);
		while (sc_alive(o) && now_ms() < deadline) {
			const char *from;
			int i;

			if (!(n = sc_read(o, (int)(deadline - now_ms()))) ||
			    !xt_is(n, XT_NS_CLIENT, "message"))
				continue;
			for (i = 0; i < 3; i++) {
				char id[8];

				snprintf(id, sizeof(id), "rm%d", i + 1);
				if (attr_is(n, "id", id))
					break;
			}
			if (i == 3)
				continue;
			if (seen[i]++ == 0) {
				from = xt_attr(n, "from");
				if (!from || strncmp(from, s->bare, strlen(s->bare)) != 0) {
					snprintf(one, sizeof(one), "rm%d from %s; ", i + 1,
						 from ? from : "nobody");
					strncat(why, one, sizeof(why) - strlen(why) - 1);
					ok = false;
				}
				if (!same_children(i, n, one, sizeof(one))) {
					strncat(why, one, sizeof(why) - strlen(why) - 1);
					ok = false;
				}
			}
			if (seen[0] && seen[1] && seen[2] && deadline > now_ms() + 1000)
				deadline = now_ms() + 1000;	/* and no second copy */
		}
	}
	xt_report(name, h == 3 && ok && seen[0] == 1 && seen[1] == 1 && seen[2] == 1,
		  "sender h=%ld; rm1..rm3 seen %d, %d, %d times; %s", h, seen[0], seen[1], seen[2],
		  why);
	sc_free(s);
	sc_free(o);
}

/* ---- 13: origin-id ---- */

static void t_origin_id(void)
{
	struct sc *a = sc_login("u23", "a"), *r = sc_login("u24", "r"), *a2 = NULL;
	struct msgs got = { 0 };
	const char *oid1 = "<origin-id xmlns='" NS_SID "' id='dup-1'/>";
	const char *oid2 = "<origin-id xmlns='" NS_SID "' id='dup-2'/>";
	const char *name = "a message sent again with the same origin-id (also after a reconnect) "
			   "is delivered once, and still acked";
	const char *sid_name = "messages to a local account carry <stanza-id by='the recipient's "
			       "bare JID' id/>, a different id each";
	long h1 = -1, h2 = -1;

	if (!a || !r || !sc_enable(a, false, NULL, 0)) {
		xt_report(name, false, "login or enable failed");
		xt_report(sid_name, false, "login or enable failed");
		goto out;
	}
	sc_presence(r);
	sc_drain(r, 200 * slowf);
	send_chat(a, "u24", "od1", oid1);
	send_chat(a, "u24", "od1", oid1);	/* a client's retry: not delivered twice */
	h1 = wait_ack(a, 2, slow_ms);
	sc_close(a);
	a2 = sc_login("u23", "a2");		/* and again from a new connection */
	if (a2 && sc_enable(a2, false, NULL, 0)) {
		send_chat(a2, "u24", "od1", oid1);
		send_chat(a2, "u24", "od2", oid2);
		h2 = wait_ack(a2, 2, slow_ms);
	}
	collect(r, "od", 2, slow_ms, 1000, &got);
	xt_report(name, got.n == 2 && !got.other && !strcmp(got.body[0], "od1") &&
		  !strcmp(got.body[1], "od2") && h1 == 2 && h2 == 2,
		  "%d messages (%s, %s); h %ld then %ld", got.n, got.n > 0 ? got.body[0] : "-",
		  got.n > 1 ? got.body[1] : "-", h1, h2);
	xt_report(sid_name, got.sid == got.n && got.n == 2 &&
		  strcmp(got.sid_id[0], got.sid_id[1]) != 0, "%d of %d with our stanza-id (%s, %s)",
		  got.sid, got.n, got.sid_id[0], got.sid_id[1]);
out:
	sc_free(a);
	sc_free(a2);
	sc_free(r);
}

/* ---- kill -9: the two halves (stream_mgmt.test kills parleyd in between) ---- */

#define CRASH_N 20

static int crash_send(void)
{
	struct sc *s = sc_login("c1", "s"), *y = sc_login("c3", "y");
	long h = -1;

	if (s && y && sc_enable(y, false, NULL, 0) && sc_enable(s, false, NULL, 0)) {
		sc_presence(y);
		sc_drain(y, 200 * slowf);
		sc_answer(y);	/* acks its own presence */
		y->ack = false;	/* online, acks nothing more, stays connected */
		for (int i = 1; i <= CRASH_N; i++) {
			char body[32];

			snprintf(body, sizeof(body), "cx%d", i);
			send_chat(s, "c2", body, NULL);		/* offline */
			snprintf(body, sizeof(body), "cy%d", i);
			send_chat(s, "c3", body, NULL);		/* online, never acks */
		}
		h = wait_ack(s, 2 * CRASH_N, resume_s * 1000 + 3 * slow_ms);
	}
	xt_report("kill -9: the sender has <a h/> for all 40 messages (20 to an offline user, "
		  "20 to a client that never acks)", h == 2 * CRASH_N, "h=%ld", h);
	/* The harness kills parleyd as soon as this line is out, then us. */
	printf("# acked\n");
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}

static int crash_check(void)
{
	const char *users[] = { "c2", "c3" }, *prefix[] = { "cx", "cy" };

	for (int i = 0; i < 2; i++) {
		struct sc *r = sc_login(users[i], "after");
		struct msgs got = { 0 };
		char why[128] = "no login", name[200];

		if (r) {
			sc_presence(r);
			collect(r, prefix[i], CRASH_N, slow_ms, 1000 * slowf, &got);
			exactly(&got, prefix[i], CRASH_N, why, sizeof(why));
		}
		snprintf(name, sizeof(name), "kill -9 right after the acks, restart: %s gets its "
			 "%d acked messages once, in order", i ? "the recipient that never acked" :
			 "the offline recipient", CRASH_N);
		xt_report(name, !strcmp(why, "ok"), "%s", why);
		sc_free(r);
	}
	return xt_failures ? 1 : 0;
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "features", t_features }, { "enable", t_enable }, { "counting", t_counting },
	{ "too-high", t_too_high }, { "resume", t_resume }, { "resume-unknown", t_resume_unknown },
	{ "clean-close", t_clean_close }, { "timeout", t_timeout }, { "sender-ack", t_sender_ack },
	{ "withholding", t_withholding }, { "flush", t_flush }, { "offline-ack", t_offline_ack },
	{ "receipts", t_receipts_markers }, { "origin-id", t_origin_id },
};

int main(int argc, char **argv)
{
	host = getenv("PARLEY_HOST");
	pass = getenv("PARLEY_PASS");
	port = getenv("PARLEY_PORT") ? atoi(getenv("PARLEY_PORT")) : 0;
	resume_s = getenv("PARLEY_RESUME_TIMEOUT") ? atoi(getenv("PARLEY_RESUME_TIMEOUT")) : 3;
	if (!host || !pass || !port) {
		printf("not ok - environment\n# PARLEY_HOST, PARLEY_PORT, PARLEY_PASS\n");
		return 1;
	}
	slow_ms = getenv("PARLEY_TEST_TIMEOUT_MS") ? atoi(getenv("PARLEY_TEST_TIMEOUT_MS")) : 0;
	if (slow_ms <= 0)
		slow_ms = XT_DEFAULT_TIMEOUT_MS;
	slowf = slow_ms > XT_DEFAULT_TIMEOUT_MS ? slow_ms / XT_DEFAULT_TIMEOUT_MS : 1;
	xt_set_default_timeout(slow_ms);
	trace = getenv("PARLEY_TEST_TRACE") && *getenv("PARLEY_TEST_TRACE");
	if (argc > 1 && !strcmp(argv[1], "crash-send"))
		return crash_send();
	if (argc > 1 && !strcmp(argv[1], "crash-check"))
		return crash_check();
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (argc < 2 || !strcmp(argv[1], tests[i].name))	/* one, by name */
			tests[i].fn();
	return xt_failures ? 1 : 0;
}
