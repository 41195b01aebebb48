/*
 * delivery_test.c - delivery guarantees against a running parleyd: XEP-0198
 * stream management (acks both ways, resumption, its timeout into offline
 * storage), what the server's <a/> means, offline flushes that wait for acks,
 * receipts and markers, origin-id de-duplication. Prints TAP lines without
 * numbers; delivery.test adds the plan. With argv[1] "crash-send" or
 * "crash-check" it plays one half of the kill -9 test instead.
 *
 * Env: PARLEY_HOST, PARLEY_PORT (a tls="none" c2s listener), PARLEY_PASS (the
 * password of every account), PARLEY_RESUME_TIMEOUT (seconds, the module's
 * resume-timeout), PARLEY_TEST_TIMEOUT_MS (slow servers: valgrind).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmpptest.h"

#define NS_SM "urn:xmpp:sm:3"
#define NS_DELAY "urn:xmpp:delay"
#define MAX_BODIES 64

static const char *host, *pass;
static int port, resume_timeout, slow_ms;

/* ---- a client that counts what it receives (XEP-0198 h) ---- */

struct sc {
	struct xt *c;
	uint32_t in;		/* stanzas received since <enable/> */
	bool sm;
	bool ack;		/* answer the server's <r/> */
	char id[128];		/* resumption id */
	char user[64];
};

static struct sc *sc_login(const char *user, const char *res)
{
	char err[256];
	struct sc *s = calloc(1, sizeof(*s));

	s->c = xt_login("127.0.0.1", port, XT_TCP, host, user, pass, NULL, res, NULL, err,
			sizeof(err));
	snprintf(s->user, sizeof(s->user), "%s", user);
	if (!s->c) {
		printf("# login %s/%s failed: %s\n", user, res, err);
		free(s);
		return NULL;
	}
	return s;
}

static void sc_free(struct sc *s)
{
	if (s) {
		xt_free(s->c);
		free(s);
	}
}

static bool is_stanza(const struct xt_node *n)
{
	return !strcmp(n->name, "message") || !strcmp(n->name, "presence") ||
	       !strcmp(n->name, "iq");
}

/* The next element; counts stanzas, answers <r/> when s->ack. */
static struct xt_node *sc_read(struct sc *s, int ms)
{
	struct xt_node *n;

	while ((n = xt_read_ms(s->c, ms))) {
		if (s->sm && xt_is(n, NS_SM, "r")) {
			if (s->ack)
				xt_sendf(s->c, "<a xmlns='" NS_SM "' h='%u'/>", s->in);
			continue;
		}
		if (s->sm && is_stanza(n))
			s->in++;
		return n;
	}
	return NULL;
}

/* <enable/> (resume: with resumption); true on <enabled/>. */
static bool sc_enable(struct sc *s, bool resume)
{
	struct xt_node *n;

	xt_sendf(s->c, "<enable xmlns='" NS_SM "'%s/>", resume ? " resume='true'" : "");
	while ((n = xt_read(s->c)) && !xt_is(n, NS_SM, "enabled"))
		;
	if (!n)
		return false;
	s->sm = true;
	s->ack = true;
	s->in = 0;
	if (xt_attr(n, "id"))
		snprintf(s->id, sizeof(s->id), "%s", xt_attr(n, "id"));
	return true;
}

static void sc_presence(struct sc *s)
{
	xt_sendf(s->c, "<presence/>");
}

static void send_chat(struct sc *s, const char *to, const char *body, const char *extra)
{
	xt_sendf(s->c, "<message to='%s@%s' type='chat'><body>%s</body>%s</message>", to, host,
		 body, extra ? extra : "");
}

/* Messages whose body starts with prefix, in arrival order, until ms of quiet. */
struct bodies {
	char b[MAX_BODIES][32];
	int n, delayed;
};

static void collect(struct sc *s, const char *prefix, int ms, struct bodies *out)
{
	struct xt_node *n;

	while ((n = sc_read(s, ms))) {
		struct xt_node *b = xt_child(n, XT_NS_CLIENT, "body");

		if (strcmp(n->name, "message") || !b || !b->text ||
		    strncmp(b->text, prefix, strlen(prefix)))
			continue;
		if (out->n < MAX_BODIES)
			snprintf(out->b[out->n], sizeof(out->b[0]), "%s", b->text);
		out->n++;
		if (xt_child(n, NS_DELAY, "delay"))
			out->delayed++;
	}
}

/* Whether out holds exactly prefix1..prefixN, in order. */
static bool exactly(const struct bodies *got, const char *prefix, int n, char *why,
		    size_t len)
{
	if (got->n != n) {
		snprintf(why, len, "%d messages, expected %d", got->n, n);
		return false;
	}
	for (int i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "%s%d", prefix, i + 1);
		if (strcmp(got->b[i], want) != 0) {
			snprintf(why, len, "message %d is %s, expected %s", i + 1, got->b[i], want);
			return false;
		}
	}
	snprintf(why, len, "ok");
	return true;
}

/* Asks for an ack and reads <a/>s until h reaches want or ms pass; returns the
 * last h seen (or -1). The server may answer low first and add more later. */
static long wait_ack(struct sc *s, uint32_t want, int ms)
{
	long h = -1;
	int waited = 0, step = 200;

	xt_sendf(s->c, "<r xmlns='" NS_SM "'/>");
	while (waited < ms) {
		struct xt_node *n = xt_read_ms(s->c, step);

		if (!n) {
			if (xt_status(s->c) != XT_TIMEOUT)
				break;
			waited += step;
			if (waited % 1000 == 0)
				xt_sendf(s->c, "<r xmlns='" NS_SM "'/>");
			continue;
		}
		if (xt_is(n, NS_SM, "r")) {
			xt_sendf(s->c, "<a xmlns='" NS_SM "' h='%u'/>", s->in);
			continue;
		}
		if (is_stanza(n))
			s->in++;
		if (xt_is(n, NS_SM, "a") && xt_attr(n, "h")) {
			h = atol(xt_attr(n, "h"));
			if ((uint32_t)h == want)
				break;
		}
	}
	return h;
}

/* Reads until a presence from `from` (a bare JID prefix) of type (NULL:
 * available) arrives; true if it did within ms. */
static bool saw_presence(struct sc *s, const char *from, const char *type, int ms)
{
	struct xt_node *n;

	while ((n = sc_read(s, ms))) {
		const char *f = xt_attr(n, "from"), *t = xt_attr(n, "type");

		if (strcmp(n->name, "presence") || !f || strncmp(f, from, strlen(from)))
			continue;
		if (type ? t && !strcmp(t, type) : !t)
			return true;
	}
	return false;
}

/* u and v subscribe to each other's presence. */
static bool make_mutual(const char *u, const char *v)
{
	struct sc *a = sc_login(u, "setup"), *b = sc_login(v, "setup");
	char ju[256], jv[256];
	struct xt_node *n;
	bool ok = a && b;

	snprintf(ju, sizeof(ju), "%s@%s", u, host);
	snprintf(jv, sizeof(jv), "%s@%s", v, host);
	if (ok) {
		xt_iq(a->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
		xt_iq(b->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
		sc_presence(a);
		sc_presence(b);
		xt_sendf(a->c, "<presence type='subscribe' to='%s'/>", jv);
		ok = saw_presence(b, ju, "subscribe", slow_ms);
		xt_sendf(b->c, "<presence type='subscribed' to='%s'/>", ju);
		xt_sendf(b->c, "<presence type='subscribe' to='%s'/>", ju);
		ok = ok && saw_presence(a, jv, "subscribe", slow_ms);
		xt_sendf(a->c, "<presence type='subscribed' to='%s'/>", jv);
		/* the roster says so once both sides are through */
		for (int i = 0; ok && i < 20; i++) {
			struct xt_node *q, *it;

			usleep(100 * 1000);
			n = xt_iq(a->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
			q = n ? xt_child(n, "jabber:iq:roster", "query") : NULL;
			it = q ? xt_child(q, "jabber:iq:roster", "item") : NULL;
			if (it && xt_attr(it, "subscription") &&
			    !strcmp(xt_attr(it, "subscription"), "both"))
				break;
			if (i == 19)
				ok = false;
		}
	}
	sc_free(a);
	sc_free(b);
	return ok;
}

/* A new stream, authenticated, not bound: for <resume/>. */
static struct xt *auth_only(const char *user)
{
	char err[256];
	struct xt *c = xt_connect("127.0.0.1", port, NULL, err, sizeof(err));

	if (!c)
		return NULL;
	if (xt_open_stream(c, host) < 0 ||
	    xt_auth(c, "SCRAM-SHA-256", host, user, pass, NULL) != 0) {
		printf("# auth %s failed: %s\n", user, xt_err(c));
		xt_free(c);
		return NULL;
	}
	return c;
}

/* ---- the tests ---- */

static void t_features(void)
{
	char err[256];
	struct xt *c = xt_connect("127.0.0.1", port, NULL, err, sizeof(err));
	struct sc *a, *b;
	bool before;

	before = c && xt_open_stream(c, host) == 0 &&
		 xt_child(xt_features(c), NS_SM, "sm") != NULL;
	xt_free(c);
	a = sc_login("d1", "feat");
	xt_report("stream features: <sm/> after authentication, not before",
		  a && !before && xt_child(xt_features(a->c), NS_SM, "sm"), "before=%d", before);
	if (!a)
		return;
	xt_report("<enable/> without resume: <enabled/> with no id",
		  sc_enable(a, false) && !a->id[0], "id=%s", a->id);
	b = sc_login("d1", "feat2");
	xt_report("<enable resume='true'/>: <enabled id resume='true'/>",
		  b && sc_enable(b, true) && b->id[0], "no id");
	sc_free(a);
	sc_free(b);
}

static void t_counting(void)
{
	struct sc *s = sc_login("d2", "count"), *t = sc_login("d3", "count");
	struct xt_node *n;
	const char *cond = NULL;
	long h;

	if (!s || !t) {
		xt_report("<r/> counts the client's stanzas", false, "login failed");
		goto out;
	}
	sc_presence(t);
	sc_enable(s, false);
	xt_sendf(s->c, "<iq type='get' id='p1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", host);
	sc_presence(s);
	send_chat(s, "d3", "count1", NULL);	/* t does not use stream management */
	h = wait_ack(s, 3, slow_ms);
	xt_report("<r/> after an IQ, a presence and a message: <a h='3'/>", h == 3, "h=%ld", h);
	/* The server counts what it sent; acking more is an error. */
	xt_sendf(s->c, "<a xmlns='" NS_SM "' h='1000'/>");
	while ((n = xt_read_ms(s->c, slow_ms))) {
		if (xt_is(n, XT_NS_STREAMS, "error")) {
			cond = xt_condition(n, XT_NS_STREAM_ERR);
			break;
		}
	}
	xt_report("<a h/> higher than what was sent: <undefined-condition/> with "
		  "<handled-count-too-high/>", cond && !strcmp(cond, "undefined-condition") &&
		  xt_child(n, NS_SM, "handled-count-too-high"), "got %s",
		  n ? xt_raw(n) : xt_status_name(xt_status(s->c)));
out:
	sc_free(s);
	sc_free(t);
}

static void t_resume(void)
{
	struct sc *w = NULL, *a = NULL, *b = NULL;
	struct xt *a2 = NULL;
	struct xt_node *n;
	struct bodies got = { 0 };
	char why[128], ja[128];
	bool unavailable, resumed = false;

	if (!make_mutual("d4", "d5")) {
		xt_report("resumption", false, "subscription set-up failed");
		return;
	}
	snprintf(ja, sizeof(ja), "d4@%s", host);
	w = sc_login("d5", "watch");
	a = sc_login("d4", "phone");
	b = sc_login("d6", "r");
	if (!w || !a || !b) {
		xt_report("resumption", false, "login failed");
		goto out;
	}
	xt_iq(w->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
	sc_presence(w);
	sc_enable(a, true);
	a->ack = false;
	sc_presence(a);
	saw_presence(w, ja, NULL, slow_ms);
	for (int i = 1; i <= 3; i++) {
		char body[16];

		snprintf(body, sizeof(body), "rs%d", i);
		send_chat(b, "d4", body, NULL);
	}
	collect(a, "rs", 500, &got);
	xt_free(a->c);		/* the connection drops; no </stream:stream> */
	a->c = NULL;
	usleep(200 * 1000);
	send_chat(b, "d4", "rs4", NULL);
	send_chat(b, "d4", "rs5", NULL);
	unavailable = saw_presence(w, ja, "unavailable", 1000);
	xt_report("a lost session with resumption: no unavailable presence at the disconnect",
		  !unavailable && got.n == 3, "unavailable=%d, received %d before", unavailable,
		  got.n);
	a2 = auth_only("d4");
	if (a2) {
		xt_sendf(a2, "<resume xmlns='" NS_SM "' previd='%s' h='0'/>", a->id);
		while ((n = xt_read(a2)) && !xt_is(n, NS_SM, "resumed") &&
		       !xt_is(n, NS_SM, "failed"))
			;
		resumed = n && xt_is(n, NS_SM, "resumed") && xt_attr(n, "previd") &&
			  !strcmp(xt_attr(n, "previd"), a->id);
		a->c = a2;
		a->ack = true;
		memset(&got, 0, sizeof(got));
		collect(a, "rs", 1000, &got);
	}
	xt_report("<resume/>: <resumed/>, then every unacked message once, in order",
		  resumed && exactly(&got, "rs", 5, why, sizeof(why)), "resumed=%d: %s", resumed,
		  why);
	xt_sendf(a->c, "<a xmlns='" NS_SM "' h='%u'/></stream:stream>", a->in);
out:
	sc_free(w);
	sc_free(a);
	sc_free(b);
}

static void t_resume_unknown(void)
{
	struct xt *c = auth_only("d7");
	struct xt_node *n = NULL;
	char jid[256];
	bool failed = false;

	if (c) {
		xt_sendf(c, "<resume xmlns='" NS_SM "' previd='0123456789abcdef0123456789abcdef'"
			 " h='0'/>");
		n = xt_read(c);
		failed = n && xt_is(n, NS_SM, "failed") &&
			 xt_child(n, XT_NS_STANZA_ERR, "item-not-found");
	}
	xt_report("<resume/> with an unknown id: <failed><item-not-found/></failed>, bind works",
		  failed && xt_bind(c, "after", jid, sizeof(jid)) == 0, "got %s",
		  n ? xt_raw(n) : "nothing");
	xt_free(c);
}

static void t_timeout(void)
{
	struct sc *w = NULL, *a = NULL, *b = NULL, *a2 = NULL;
	struct bodies got = { 0 };
	char why[128], ja[128];
	bool early, later;

	if (!make_mutual("d8", "d9")) {
		xt_report("resumption timeout", false, "subscription set-up failed");
		return;
	}
	snprintf(ja, sizeof(ja), "d8@%s", host);
	w = sc_login("d9", "watch");
	a = sc_login("d8", "phone");
	b = sc_login("d10", "r");
	if (!w || !a || !b) {
		xt_report("resumption timeout", false, "login failed");
		goto out;
	}
	xt_iq(w->c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
	sc_presence(w);
	sc_enable(a, true);
	a->ack = false;
	sc_presence(a);
	saw_presence(w, ja, NULL, slow_ms);
	send_chat(b, "d8", "to1", NULL);
	send_chat(b, "d8", "to2", NULL);
	collect(a, "to", 500, &got);
	xt_free(a->c);
	a->c = NULL;
	early = saw_presence(w, ja, "unavailable", 1000);
	later = saw_presence(w, ja, "unavailable", resume_timeout * 1000 + slow_ms);
	xt_report("resumption timeout: unavailable presence then, not at the disconnect",
		  !early && later, "at once=%d, later=%d", early, later);
	a2 = sc_login("d8", "phone2");
	memset(&got, 0, sizeof(got));
	if (a2) {
		sc_presence(a2);
		collect(a2, "to", 1500, &got);
	}
	xt_report("resumption timeout: the unacked messages come from offline storage, once, in "
		  "order, with <delay/>", exactly(&got, "to", 2, why, sizeof(why)) &&
		  got.delayed == 2, "%s, %d delayed", why, got.delayed);
out:
	sc_free(w);
	sc_free(a);
	sc_free(a2);
	sc_free(b);
}

static void t_sender_ack(void)
{
	struct sc *s = sc_login("d11", "s"), *r = sc_login("d12", "r");
	struct bodies got = { 0 };
	long h1 = -1, h2 = -1;

	if (!s || !r) {
		xt_report("the sender's ack waits for the recipient's", false, "login failed");
		goto out;
	}
	sc_enable(r, false);
	r->ack = false;
	sc_presence(r);
	sc_enable(s, false);
	for (int i = 1; i <= 3; i++) {
		char body[16];

		snprintf(body, sizeof(body), "sa%d", i);
		send_chat(s, "d12", body, NULL);
	}
	collect(r, "sa", 800, &got);
	h1 = wait_ack(s, 3, 1000);
	xt_sendf(r->c, "<a xmlns='" NS_SM "' h='%u'/>", r->in);
	h2 = wait_ack(s, 3, slow_ms);
	xt_report("the sender's <a/> counts a message to a stream-management client only once "
		  "that client acked it", got.n == 3 && h1 < 3 && h2 == 3,
		  "delivered %d, h before the ack %ld, after %ld", got.n, h1, h2);
out:
	sc_free(s);
	sc_free(r);
}

static void t_withholding(void)
{
	struct sc *s = sc_login("d13", "s"), *r = sc_login("d14", "r"), *r2 = NULL;
	struct bodies got = { 0 };
	struct xt_node *n;
	const char *cond = NULL;
	char why[128];
	long h;

	if (!s || !r) {
		xt_report("a recipient that never acks", false, "login failed");
		goto out;
	}
	sc_enable(r, false);
	r->ack = false;
	sc_presence(r);
	sc_enable(s, false);
	for (int i = 1; i <= 3; i++) {
		char body[16];

		snprintf(body, sizeof(body), "wh%d", i);
		send_chat(s, "d14", body, NULL);
	}
	h = wait_ack(s, 3, resume_timeout * 1000 + 2 * slow_ms);
	while ((n = sc_read(r, slow_ms)))
		if (xt_is(n, XT_NS_STREAMS, "error")) {
			cond = xt_condition(n, XT_NS_STREAM_ERR);
			break;
		}
	xt_report("a recipient that never acks: its stream is closed (connection-timeout) and "
		  "then the sender gets its ack", h == 3 && cond &&
		  !strcmp(cond, "connection-timeout"), "h=%ld, stream error %s", h,
		  cond ? cond : "none");
	r2 = sc_login("d14", "again");
	if (r2) {
		sc_presence(r2);
		collect(r2, "wh", 1500, &got);
	}
	xt_report("a recipient that never acks: the messages wait in offline storage, once, in "
		  "order", exactly(&got, "wh", 3, why, sizeof(why)), "%s", why);
out:
	sc_free(s);
	sc_free(r);
	sc_free(r2);
}

static void t_flush_acks(void)
{
	struct sc *b = sc_login("d15", "b"), *o = NULL;
	struct bodies got = { 0 };
	char why[128];
	long h;

	if (!b) {
		xt_report("offline flush and acks", false, "login failed");
		return;
	}
	sc_enable(b, false);
	send_chat(b, "d16", "fl1", NULL);
	send_chat(b, "d16", "fl2", NULL);
	h = wait_ack(b, 2, slow_ms);
	xt_report("a message to an offline user is acked once stored", h == 2, "h=%ld", h);
	/* Gets them, does not ack, drops: they stay stored. */
	o = sc_login("d16", "first");
	if (o) {
		sc_enable(o, false);
		o->ack = false;
		sc_presence(o);
		collect(o, "fl", 800, &got);
		sc_free(o);
	}
	xt_report("offline flush to a stream-management client: delivered", got.n == 2,
		  "%d messages", got.n);
	memset(&got, 0, sizeof(got));
	o = sc_login("d16", "second");
	if (o) {
		sc_enable(o, false);	/* acks this time */
		sc_presence(o);
		collect(o, "fl", 1500, &got);
		wait_ack(o, 1, 300);	/* makes the server ask, and our answer go out */
		xt_sendf(o->c, "<a xmlns='" NS_SM "' h='%u'/>", o->in);
		usleep(300 * 1000);
		sc_free(o);
	}
	xt_report("offline messages not acked are delivered again at the next login, once, in "
		  "order", exactly(&got, "fl", 2, why, sizeof(why)), "%s", why);
	memset(&got, 0, sizeof(got));
	o = sc_login("d16", "third");
	if (o) {
		sc_presence(o);
		collect(o, "fl", 1000, &got);
		sc_free(o);
	}
	xt_report("offline messages acked are gone from the store", got.n == 0, "%d again",
		  got.n);
	sc_free(b);
}

static void t_receipts_markers(void)
{
	struct sc *b = sc_login("d17", "b"), *o = NULL;
	struct xt_node *n;
	int request = 0, received = 0, displayed = 0;

	if (!b) {
		xt_report("receipts and markers to an offline user", false, "login failed");
		return;
	}
	send_chat(b, "d18", "rm1", "<request xmlns='urn:xmpp:receipts'/>"
		  "<markable xmlns='urn:xmpp:chat-markers:0'/>");
	xt_sendf(b->c, "<message to='d18@%s' type='chat'><received xmlns='urn:xmpp:receipts' "
		 "id='x1'/></message>", host);
	xt_sendf(b->c, "<message to='d18@%s' type='chat'><displayed "
		 "xmlns='urn:xmpp:chat-markers:0' id='x2'/></message>", host);
	usleep(500 * 1000);
	o = sc_login("d18", "o");
	if (o) {
		sc_presence(o);
		while ((n = sc_read(o, 1500))) {
			struct xt_node *x;

			if (strcmp(n->name, "message"))
				continue;
			if (xt_child(n, "urn:xmpp:receipts", "request") &&
			    xt_child(n, "urn:xmpp:chat-markers:0", "markable"))
				request++;
			if ((x = xt_child(n, "urn:xmpp:receipts", "received")) &&
			    xt_attr(x, "id") && !strcmp(xt_attr(x, "id"), "x1"))
				received++;
			if ((x = xt_child(n, "urn:xmpp:chat-markers:0", "displayed")) &&
			    xt_attr(x, "id") && !strcmp(xt_attr(x, "id"), "x2"))
				displayed++;
		}
	}
	xt_report("receipt requests, receipts and chat markers to an offline user are stored "
		  "and delivered untouched", request == 1 && received == 1 && displayed == 1,
		  "request %d, received %d, displayed %d", request, received, displayed);
	sc_free(b);
	sc_free(o);
}

static void t_origin_id(void)
{
	struct sc *a = sc_login("d19", "a"), *r = sc_login("d20", "r"), *a2 = NULL;
	struct bodies got = { 0 };
	const char *oid = "<origin-id xmlns='urn:xmpp:sid:0' id='dup-1'/>";

	if (!a || !r) {
		xt_report("origin-id de-duplication", false, "login failed");
		goto out;
	}
	sc_presence(r);
	send_chat(a, "d20", "od1", oid);
	send_chat(a, "d20", "od1", oid);	/* sent again: not delivered twice */
	sc_free(a);
	a = NULL;
	a2 = sc_login("d19", "a2");	/* and again after a reconnect */
	if (a2) {
		send_chat(a2, "d20", "od1", oid);
		send_chat(a2, "d20", "od2", "<origin-id xmlns='urn:xmpp:sid:0' id='dup-2'/>");
	}
	collect(r, "od", 1000, &got);
	xt_report("a message sent again with the same origin-id is delivered once",
		  got.n == 2 && !strcmp(got.b[0], "od1") && !strcmp(got.b[1], "od2"),
		  "%d messages", got.n);
out:
	sc_free(a);
	sc_free(a2);
	sc_free(r);
}

/* ---- kill -9: the two halves (delivery.test kills parleyd between them) ---- */

#define CRASH_N 20

static int crash_send(void)
{
	struct sc *s = sc_login("c1", "s"), *y = sc_login("c3", "y");
	long h;

	if (!s || !y) {
		printf("not ok - kill -9: set-up\n# login failed\n");
		return 1;
	}
	sc_enable(y, false);	/* online, acks nothing */
	y->ack = false;
	sc_presence(y);
	usleep(200 * 1000);
	sc_enable(s, false);
	for (int i = 1; i <= CRASH_N; i++) {
		char body[16];

		snprintf(body, sizeof(body), "cx%d", i);
		send_chat(s, "c2", body, NULL);	/* offline */
		snprintf(body, sizeof(body), "cy%d", i);
		send_chat(s, "c3", body, NULL);	/* online, never acks */
	}
	h = wait_ack(s, 2 * CRASH_N, resume_timeout * 1000 + 3 * slow_ms);
	xt_report("kill -9: every message acked before the kill", h == 2 * CRASH_N,
		  "h=%ld of %d", h, 2 * CRASH_N);
	/* The harness kills parleyd as soon as this line is out. */
	printf("# acked\n");
	fflush(stdout);
	pause();
	return 0;
}

static int crash_check(void)
{
	const char *users[] = { "c2", "c3" }, *prefix[] = { "cx", "cy" };

	for (int i = 0; i < 2; i++) {
		struct sc *r = sc_login(users[i], "after");
		struct bodies got = { 0 };
		char why[128], name[128];

		if (r) {
			sc_presence(r);
			collect(r, prefix[i], 2000, &got);
		}
		snprintf(name, sizeof(name), "kill -9 right after the acks: %s gets every "
			 "acked message once, in order (%s)", users[i],
			 i ? "online recipient that never acked" : "offline recipient");
		xt_report(name, exactly(&got, prefix[i], CRASH_N, why, sizeof(why)), "%s", why);
		sc_free(r);
	}
	return xt_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	host = getenv("PARLEY_HOST");
	pass = getenv("PARLEY_PASS");
	port = getenv("PARLEY_PORT") ? atoi(getenv("PARLEY_PORT")) : 0;
	resume_timeout = getenv("PARLEY_RESUME_TIMEOUT") ? atoi(getenv("PARLEY_RESUME_TIMEOUT"))
		: 3;
	if (!host || !pass || !port) {
		printf("not ok - environment\n# PARLEY_HOST, PARLEY_PORT, PARLEY_PASS\n");
		return 1;
	}
	slow_ms = getenv("PARLEY_TEST_TIMEOUT_MS") ? atoi(getenv("PARLEY_TEST_TIMEOUT_MS"))
		: XT_DEFAULT_TIMEOUT_MS;
	xt_set_default_timeout(slow_ms);
	if (argc > 1 && !strcmp(argv[1], "crash-send"))
		return crash_send();
	if (argc > 1 && !strcmp(argv[1], "crash-check"))
		return crash_check();
	t_features();
	t_counting();
	t_resume();
	t_resume_unknown();
	t_timeout();
	t_sender_ack();
	t_withholding();
	t_flush_acks();
	t_receipts_markers();
	t_origin_id();
	return xt_failures ? 1 : 0;
}
