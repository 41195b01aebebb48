/*
 * im_core_test.c - RFC 6121 against a running parleyd: rosters, subscriptions,
 * presence, delivery rules, ordering, spoofing, last activity. Prints TAP lines
 * without numbers; im_core.test adds the plan.
 *
 * Env: PARLEY_HOST, PARLEY_PORT (a tls="none" c2s listener), PARLEY_PASS (the
 * password of every account u1..u23).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpptest.h"

static const char *host, *pass, *offhost;
static int port;

static struct xt *login(const char *user, const char *res)
{
	char err[256];
	struct xt *c = xt_login("127.0.0.1", port, XT_TCP, host, user, pass, NULL, res, NULL,
				err, sizeof(err));

	if (!c)
		printf("# login %s/%s failed: %s\n", user, res, err);
	return c;
}

static void bare(char *out, size_t len, const char *user)
{
	snprintf(out, len, "%s@%s", user, host);
}

/* Reads until a stanza named name (and type, when not NULL; "" = no type)
 * from a JID starting with from (when not NULL) arrives; NULL after ms. */
static struct xt_node *wait_for(struct xt *c, const char *name, const char *type,
				const char *from, int ms)
{
	struct xt_node *n;

	while ((n = xt_read_ms(c, ms))) {
		const char *t = xt_attr(n, "type"), *f = xt_attr(n, "from");

		if (strcmp(n->name, name) != 0)
			continue;
		if (type && (*type ? !t || strcmp(t, type) != 0 : t != NULL))
			continue;
		if (from && (!f || strncmp(f, from, strlen(from)) != 0))
			continue;
		return n;
	}
	return NULL;
}

/* Whether nothing matching arrives within ms. */
static bool nothing(struct xt *c, const char *name, const char *type, int ms)
{
	return wait_for(c, name, type, NULL, ms) == NULL;
}

static void presence(struct xt *c, const char *type, const char *to, const char *inner)
{
	xt_sendf(c, "<presence%s%s%s%s%s%s>%s</presence>", type ? " type='" : "",
		 type ? type : "", type ? "'" : "", to ? " to='" : "", to ? to : "",
		 to ? "'" : "", inner ? inner : "");
}

/* A roster push for contact; returns the <item/> or NULL. */
static struct xt_node *wait_push(struct xt *c, const char *contact, int ms)
{
	struct xt_node *n;

	while ((n = wait_for(c, "iq", "set", NULL, ms))) {
		struct xt_node *q = xt_child(n, "jabber:iq:roster", "query");
		struct xt_node *it = q ? xt_child(q, "jabber:iq:roster", "item") : NULL;

		if (it && strcmp(xt_attr(it, "jid"), contact) == 0) {
			xt_sendf(c, "<iq type='result' id='%s'/>", xt_attr(n, "id"));
			return it;
		}
	}
	return NULL;
}

static bool attr_is(const struct xt_node *n, const char *a, const char *v)
{
	const char *x = n ? xt_attr(n, a) : NULL;

	return v ? x && strcmp(x, v) == 0 : x == NULL;
}

static struct xt *online(const char *user, const char *res)
{
	struct xt *c = login(user, res);

	if (c) {
		xt_iq(c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
		presence(c, NULL, NULL, NULL);
	}
	return c;
}

/* ---- subscriptions ---- */

static void t_handshake(void)
{
	struct xt *a = online("u1", "r"), *b = online("u2", "r");
	char ja[256], jb[256];
	struct xt_node *n, *it;
	bool ok;

	bare(ja, sizeof(ja), "u1");
	bare(jb, sizeof(jb), "u2");
	if (!a || !b) {
		xt_report("subscription handshake", false, "login failed");
		goto out;
	}
	presence(a, "subscribe", jb, NULL);
	it = wait_push(a, jb, 3000);
	xt_report("subscribe: the sender's roster push has ask='subscribe'",
		  attr_is(it, "ask", "subscribe") && attr_is(it, "subscription", "none"),
		  "push: %s", it ? xt_raw(it->parent->parent) : "none");
	n = wait_for(b, "presence", "subscribe", NULL, 3000);
	xt_report("subscribe: the contact gets it from the bare JID",
		  n && attr_is(n, "from", ja), "got: %s", n ? xt_raw(n) : "nothing");
	presence(b, "subscribed", ja, NULL);
	it = wait_push(a, jb, 3000);
	xt_report("subscribed: the requester's item becomes 'to'",
		  attr_is(it, "subscription", "to") && attr_is(it, "ask", NULL),
		  "push: %s", it ? xt_raw(it->parent->parent) : "none");
	n = wait_for(a, "presence", "", jb, 3000);
	xt_report("subscribed: the requester receives the contact's presence", n != NULL,
		  "no available presence from %s", jb);
	it = wait_push(b, ja, 3000);
	xt_report("subscribed: the contact's item becomes 'from'",
		  attr_is(it, "subscription", "from"), "push: %s",
		  it ? xt_raw(it->parent->parent) : "none");
	/* And the other way: both. */
	presence(b, "subscribe", ja, NULL);
	n = wait_for(a, "presence", "subscribe", jb, 3000);
	presence(a, "subscribed", jb, NULL);
	it = wait_push(a, jb, 3000);
	ok = n && attr_is(it, "subscription", "both");
	/* b first sees its own request (from + ask), then the approval. */
	do
		it = wait_push(b, ja, 3000);
	while (it && !attr_is(it, "subscription", "both"));
	xt_report("mutual subscription: both items become 'both'",
		  ok && attr_is(it, "subscription", "both"), "second push: %s",
		  it ? xt_raw(it->parent->parent) : "none");
	/* Already subscribed: the server answers for the contact (§3.1.3). */
	presence(b, "subscribe", ja, NULL);
	n = wait_for(b, "presence", "subscribed", ja, 3000);
	xt_report("a repeated subscribe is answered by the server", n != NULL,
		  "no subscribed back");
out:
	xt_free(a);
	xt_free(b);
}

static void t_offline_request(void)
{
	struct xt *a = online("u3", "r"), *c;
	char ja[256], jc[256];
	struct xt_node *n;

	bare(ja, sizeof(ja), "u3");
	bare(jc, sizeof(jc), "u4");
	if (!a) {
		xt_report("a request to an offline user waits", false, "login failed");
		return;
	}
	presence(a, "subscribe", jc, NULL);
	wait_push(a, jc, 3000);
	c = login("u4", "r");
	if (!c) {
		xt_report("a request to an offline user waits", false, "login failed");
		xt_free(a);
		return;
	}
	/* Not before initial presence (§3.1.3: sent to available resources). */
	xt_report("a pending request is not shown before initial presence",
		  nothing(c, "presence", "subscribe", 500), "it came early");
	presence(c, NULL, NULL, NULL);
	n = wait_for(c, "presence", "subscribe", ja, 3000);
	xt_report("a request to an offline user is delivered at its next login", n != NULL,
		  "no subscribe from %s", ja);
	xt_free(a);
	xt_free(c);
}

static void t_preapproval(void)
{
	struct xt *d = online("u5", "r"), *e = online("u6", "r");
	char jd[256], je[256];
	struct xt_node *it, *n;

	bare(jd, sizeof(jd), "u5");
	bare(je, sizeof(je), "u6");
	if (!d || !e) {
		xt_report("pre-approval", false, "login failed");
		goto out;
	}
	presence(d, "subscribed", je, NULL);
	it = wait_push(d, je, 3000);
	xt_report("pre-approval: the item says approved='true'", attr_is(it, "approved", "true"),
		  "push: %s", it ? xt_raw(it->parent->parent) : "none");
	presence(e, "subscribe", jd, NULL);
	n = wait_for(e, "presence", "subscribed", jd, 3000);
	xt_report("pre-approval: a later subscribe is approved at once", n != NULL,
		  "no subscribed from %s", jd);
	xt_report("pre-approval: the approver is not asked",
		  nothing(d, "presence", "subscribe", 500), "it was asked");
out:
	xt_free(d);
	xt_free(e);
}

/* u7 and u8 subscribe to each other, then the presence cases. */
static bool make_mutual(const char *u, const char *v)
{
	struct xt *a = online(u, "setup"), *b = online(v, "setup");
	char ja[256], jb[256];
	bool ok = a && b;

	bare(ja, sizeof(ja), u);
	bare(jb, sizeof(jb), v);
	if (ok) {
		presence(a, "subscribe", jb, NULL);
		ok = wait_for(b, "presence", "subscribe", ja, 3000) != NULL;
		presence(b, "subscribed", ja, NULL);
		presence(b, "subscribe", ja, NULL);
		ok = ok && wait_for(a, "presence", "subscribe", jb, 3000) != NULL;
		presence(a, "subscribed", jb, NULL);
		ok = ok && wait_push(a, jb, 3000) != NULL;
	}
	xt_free(a);
	xt_free(b);
	return ok;
}

static void t_presence(void)
{
	struct xt *a, *b, *x;
	char ja[256], jb[256], jx[256];
	struct xt_node *n;

	bare(ja, sizeof(ja), "u7");
	bare(jb, sizeof(jb), "u8");
	bare(jx, sizeof(jx), "u9");
	if (!make_mutual("u7", "u8")) {
		xt_report("presence: set-up", false, "mutual subscription failed");
		return;
	}
	a = online("u7", "home");
	b = login("u8", "work");
	x = online("u9", "x");
	if (!a || !b || !x) {
		xt_report("presence", false, "login failed");
		goto out;
	}
	presence(b, NULL, NULL, "<status>at work</status>");
	n = wait_for(b, "presence", "", ja, 3000);
	xt_report("initial presence probes: a contact's presence arrives", n != NULL,
		  "no presence from %s", ja);
	n = wait_for(a, "presence", "", jb, 3000);
	xt_report("initial presence is broadcast to contacts", n != NULL,
		  "no presence from %s", jb);
	presence(b, NULL, NULL, "<show>away</show>");
	n = wait_for(a, "presence", "", jb, 3000);
	xt_report("a presence update is broadcast", n && xt_child(n, NULL, "show"),
		  "got: %s", n ? xt_raw(n) : "nothing");
	/* Directed presence to a stranger, then an abrupt end. */
	presence(a, NULL, jx, NULL);
	n = wait_for(x, "presence", "", ja, 3000);
	xt_report("directed presence reaches a non-contact", n != NULL, "nothing came");
	presence(b, NULL, NULL, "<status>gone fishing</status>");
	wait_for(a, "presence", "", jb, 1000);
	xt_free(a);	/* the socket closes without </stream:stream> */
	a = NULL;
	n = wait_for(b, "presence", "unavailable", ja, 3000);
	xt_report("an abrupt disconnect sends unavailable to contacts", n != NULL,
		  "nothing came");
	n = wait_for(x, "presence", "unavailable", ja, 3000);
	xt_report("... and to the directed-presence target", n != NULL, "nothing came");
	xt_sendf(b, "</stream:stream>");
	xt_free(b);
	b = NULL;
out:
	xt_free(a);
	xt_free(b);
	xt_free(x);
}

/* RFC 6121 §4.2.2: initial presence goes to all of the user's available
 * resources, the one that sent it included; a new resource gets the others'. */
static void t_self_presence(void)
{
	struct xt *one = login("u21", "one"), *two = NULL;
	char j1[256], j2[300];
	struct xt_node *n;

	bare(j1, sizeof(j1) - 8, "u21");
	snprintf(j2, sizeof(j2), "%s/two", j1);
	strncat(j1, "/one", sizeof(j1) - strlen(j1) - 1);
	if (!one) {
		xt_report("own presence", false, "login failed");
		return;
	}
	presence(one, NULL, NULL, "<status>first</status>");
	n = wait_for(one, "presence", "", j1, 3000);
	xt_report("initial presence comes back to the resource that sent it", n != NULL,
		  "nothing from %s", j1);
	two = login("u21", "two");
	if (!two) {
		xt_report("own presence: second resource", false, "login failed");
		goto out;
	}
	presence(two, NULL, NULL, "<status>second</status>");
	n = wait_for(one, "presence", "", j2, 3000);
	xt_report("... and goes to the user's other available resources", n != NULL,
		  "nothing from %s", j2);
	n = wait_for(two, "presence", "", j1, 3000);
	xt_report("... and a new resource gets the presence of the others", n != NULL,
		  "nothing from %s", j1);
out:
	xt_free(one);
	xt_free(two);
}

static void t_unavailable_status(void)
{
	struct xt *a = online("u7", "watch"), *b;
	char jb[256];
	struct xt_node *n;

	bare(jb, sizeof(jb), "u8");
	b = online("u8", "w2");
	if (!a || !b) {
		xt_report("logout: unavailable carries the last status", false, "login failed");
		goto out;
	}
	presence(b, NULL, NULL, "<status>brb</status>");
	wait_for(a, "presence", "", jb, 2000);
	xt_sendf(b, "</stream:stream>");
	n = wait_for(a, "presence", "unavailable", jb, 3000);
	{
		struct xt_node *st = n ? xt_child(n, NULL, "status") : NULL;

		xt_report("logout: unavailable carries the last status",
			  st && st->text && strcmp(st->text, "brb") == 0, "got: %s",
			  n ? xt_raw(n) : "nothing");
	}
out:
	xt_free(a);
	xt_free(b);
}

/* ---- delivery rules ---- */

static bool got_body(struct xt *c, const char *body, int ms)
{
	struct xt_node *n;

	while ((n = wait_for(c, "message", NULL, NULL, ms))) {
		struct xt_node *b = xt_child(n, NULL, "body");

		if (b && b->text && strcmp(b->text, body) == 0)
			return true;
	}
	return false;
}

static void t_priority(void)
{
	struct xt *r1 = login("u10", "r1"), *r2 = login("u10", "r2"), *r3 = login("u10", "r3");
	struct xt *s = online("u11", "s");
	char j[256];
	struct xt_node *n;

	bare(j, sizeof(j), "u10");
	if (!r1 || !r2 || !r3 || !s) {
		xt_report("priority routing", false, "login failed");
		goto out;
	}
	presence(r1, NULL, NULL, "<priority>5</priority>");
	presence(r2, NULL, NULL, "<priority>5</priority>");
	presence(r3, NULL, NULL, "<priority>-1</priority>");
	xt_iq(r1, "get", host, "<ping xmlns='urn:xmpp:ping'/>");	/* settle */
	xt_sendf(s, "<message to='%s' type='chat'><body>tie</body></message>", j);
	xt_report("bare JID: both resources of the top priority get it",
		  got_body(r1, "tie", 2000) && got_body(r2, "tie", 2000), "one missed it");
	xt_report("bare JID: a negative-priority resource gets nothing",
		  !got_body(r3, "tie", 500), "it got the message");
	presence(r2, NULL, NULL, "<priority>3</priority>");
	xt_iq(r2, "get", host, "<ping xmlns='urn:xmpp:ping'/>");
	xt_sendf(s, "<message to='%s' type='chat'><body>top</body></message>", j);
	xt_report("bare JID: only the highest priority gets it",
		  got_body(r1, "top", 2000) && !got_body(r2, "top", 500), "wrong resources");
	xt_sendf(s, "<message to='%s/gone' type='chat'><body>gone</body></message>", j);
	xt_report("full JID of a gone resource: chat goes as to the bare JID",
		  got_body(r1, "gone", 2000), "r1 did not get it");
	xt_sendf(s, "<iq type='get' id='q1' to='%s/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
		 j);
	n = wait_for(s, "iq", "error", NULL, 3000);
	xt_report("IQ to a gone resource: service-unavailable",
		  n && strcmp(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "",
			   "service-unavailable") == 0, "got: %s", n ? xt_raw(n) : "nothing");
	/* Only a negative priority left: nobody takes bare-JID messages. */
	xt_sendf(r1, "</stream:stream>");
	xt_sendf(r2, "</stream:stream>");
	/* The server's </stream:stream> back means it has ended the session. */
	while (xt_read(r1))
		;
	while (xt_read(r2))
		;
	xt_free(r1);
	xt_free(r2);
	r1 = r2 = NULL;
	xt_iq(s, "get", host, "<ping xmlns='urn:xmpp:ping'/>");
	xt_sendf(s, "<message to='%s' type='chat' id='m9'><body>neg</body></message>", j);
	n = wait_for(s, "message", "error", NULL, 3000);
	xt_report("bare JID with only negative priority: service-unavailable (no offline store)",
		  n && !got_body(r3, "neg", 300), "got: %s", n ? xt_raw(n) : "nothing");
out:
	xt_free(r1);
	xt_free(r2);
	xt_free(r3);
	xt_free(s);
}

/* A recipient that does not read: the server's writes to it stop short and wait
 * for the socket (libevent's write event), the loop serves others meanwhile, and
 * once it reads everything arrives, in order. */
static void t_slow_reader(void)
{
	enum { N = 250, PAD = 8000 };	/* 2 MB: under the 4 MiB output limit */
	struct xt *slow = online("u22", "slow"), *fast = NULL;
	static char pad[PAD + 1];
	char js[256];
	int next = 0, other = 0;
	bool pong = false;
	struct xt_node *n;

	bare(js, sizeof(js), "u22");
	if (!slow || xt_set_rcvbuf(slow, 4096) < 0 || !(fast = online("u23", "fast"))) {
		xt_report("a recipient that does not read", false, "login or setsockopt failed");
		goto out;
	}
	memset(pad, 'x', PAD);
	for (int i = 0; i < N; i++)
		xt_sendf(fast, "<message to='%s' type='chat'><body>%d %s</body></message>", js, i,
			 pad);
	n = xt_iq(fast, "get", host, "<ping xmlns='urn:xmpp:ping'/>");
	pong = n && attr_is(n, "type", "result");
	while (next < N && (n = wait_for(slow, "message", "chat", NULL, 5000))) {
		struct xt_node *body = xt_child(n, NULL, "body");

		if (body && body->text && atoi(body->text) == next &&
		    strlen(body->text) > PAD)
			next++;
		else
			other++;
	}
	xt_report("a recipient that does not read holds up nobody, then gets 2 MB of messages "
		  "in order", pong && next == N && !other,
		  "ping answered while it did not read: %d; in order %d of %d, other %d", pong,
		  next, N, other);
out:
	xt_free(slow);
	xt_free(fast);
}

static void t_order(void)
{
	struct xt *a = online("u12", "a"), *b = online("u13", "b");
	char jb[256];
	int next = 0, dup = 0, bad = 0;
	struct xt_node *n;

	bare(jb, sizeof(jb), "u13");
	if (!a || !b) {
		xt_report("1,000 messages in order", false, "login failed");
		goto out;
	}
	for (int i = 0; i < 1000; i++)
		xt_sendf(a, "<message to='%s' type='chat'><body>%d</body></message>", jb, i);
	while (next < 1000 && (n = wait_for(b, "message", "chat", NULL, 5000))) {
		struct xt_node *body = xt_child(n, NULL, "body");
		int v = body && body->text ? atoi(body->text) : -1;

		if (v == next)
			next++;
		else if (v < next)
			dup++;
		else
			bad++;
	}
	xt_report("1,000 messages arrive in order, none lost or duplicated",
		  next == 1000 && !dup && !bad, "in order %d, duplicates %d, out of order %d",
		  next, dup, bad);
out:
	xt_free(a);
	xt_free(b);
}

static void t_spoof(void)
{
	struct xt *a = online("u14", "a"), *b = online("u15", "b");
	char ja[256], jb[256];
	struct xt_node *n;
	const char *cond;

	bare(ja, sizeof(ja), "u14");
	bare(jb, sizeof(jb), "u15");
	if (!a || !b) {
		xt_report("spoofed from", false, "login failed");
		goto out;
	}
	xt_sendf(a, "<message from='%s' to='%s' type='chat'><body>own</body></message>", ja,
		 jb);
	n = wait_for(b, "message", "chat", NULL, 3000);
	xt_report("a 'from' of one's own bare JID is stamped with the full JID",
		  n && attr_is(n, "from", xt_jid(a)), "got: %s", n ? xt_raw(n) : "nothing");
	xt_sendf(a, "<message from='%s/x' to='%s' type='chat'><body>spoof</body></message>",
		 jb, jb);
	cond = xt_wait_stream_error(a, 3000);
	xt_report("a spoofed 'from' is <invalid-from/>", cond && !strcmp(cond, "invalid-from"),
		  "got: %s", cond ? cond : "no stream error");
	xt_report("... and the spoofed message is not delivered", !got_body(b, "spoof", 500),
		  "it was delivered");
out:
	xt_free(a);
	xt_free(b);
}

static void t_nonexistent(void)
{
	struct xt *a = online("u14", "n");
	char to[256];
	struct xt_node *n;

	snprintf(to, sizeof(to), "nobody@%s", host);
	if (!a) {
		xt_report("a message to a non-existent local user", false, "login failed");
		return;
	}
	xt_sendf(a, "<message to='%s' type='chat' id='nx'><body>hi</body></message>", to);
	n = wait_for(a, "message", "error", NULL, 3000);
	xt_report("a message to a non-existent local user: service-unavailable",
		  n && !strcmp(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "",
			    "service-unavailable"), "got: %s", n ? xt_raw(n) : "nothing");
	n = xt_iq(a, "get", to, "<query xmlns='jabber:iq:last'/>");
	xt_report("an IQ to a non-existent local user: service-unavailable",
		  n && !strcmp(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "",
			    "service-unavailable"), "got: %s", n ? xt_raw(n) : "nothing");
	presence(a, "subscribe", to, NULL);
	xt_report("a subscription request to a non-existent user is dropped",
		  nothing(a, "presence", NULL, 500), "something came back");
	xt_free(a);
}

/* ---- rosters ---- */

static void t_roster(void)
{
	struct xt *a = login("u16", "a1"), *a2 = login("u16", "a2");
	struct xt_node *n, *q, *it;
	char ver[64] = "";

	if (!a || !a2) {
		xt_report("roster", false, "login failed");
		goto out;
	}
	xt_iq(a2, "get", NULL, "<query xmlns='jabber:iq:roster'/>");	/* interested */
	n = xt_iq(a, "set", NULL, "<query xmlns='jabber:iq:roster'><item jid='friend@ex"
		  "ample.net' name='Friend'><group>Pals</group></item></query>");
	xt_report("roster set: result", n && attr_is(n, "type", "result"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	it = wait_push(a2, "friend@example.net", 3000);
	xt_report("roster set: pushed to the other interested resource",
		  attr_is(it, "name", "Friend") && attr_is(it, "subscription", "none") &&
		  xt_child(it, NULL, "group"), "push: %s",
		  it ? xt_raw(it->parent->parent) : "none");
	if (it && xt_attr(it->parent, "ver"))
		snprintf(ver, sizeof(ver), "%s", xt_attr(it->parent, "ver"));
	n = xt_iq(a, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
	q = n ? xt_child(n, "jabber:iq:roster", "query") : NULL;
	it = q ? xt_child(q, "jabber:iq:roster", "item") : NULL;
	xt_report("roster get lists the item with a version", it && xt_attr(q, "ver"),
		  "got: %s", n ? xt_raw(n) : "nothing");
	{
		char p[160];

		snprintf(p, sizeof(p), "<query xmlns='jabber:iq:roster' ver='%s'/>", ver);
		n = xt_iq(a, "get", NULL, p);
		xt_report("roster get with the current version: empty result",
			  n && attr_is(n, "type", "result") && !n->children, "got: %s",
			  n ? xt_raw(n) : "nothing");
	}
	n = xt_iq(a, "set", NULL, "<query xmlns='jabber:iq:roster'><item jid='a@example.net'"
		  "/><item jid='b@example.net'/></query>");
	xt_report("roster set with two items: bad-request", n && !strcmp(xt_condition(
		  xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "", "bad-request"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	n = xt_iq(a, "set", NULL, "<query xmlns='jabber:iq:roster'><item jid='c@example.net'>"
		  "<group>G</group><group>G</group></item></query>");
	xt_report("duplicate group: bad-request", n && !strcmp(xt_condition(
		  xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "", "bad-request"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	n = xt_iq(a, "set", NULL, "<query xmlns='jabber:iq:roster'><item jid='c@example.net'>"
		  "<group></group></item></query>");
	xt_report("empty group: not-acceptable", n && !strcmp(xt_condition(
		  xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "", "not-acceptable"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	{
		char to[256];

		bare(to, sizeof(to), "u17");
		n = xt_iq(a, "get", to, "<query xmlns='jabber:iq:roster'/>");
		xt_report("another user's roster: forbidden", n && !strcmp(xt_condition(
			  xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "", "forbidden"), "got: %s",
			  n ? xt_raw(n) : "nothing");
	}
	n = xt_iq(a, "set", NULL, "<query xmlns='jabber:iq:roster'><item jid='friend@example"
		  ".net' subscription='remove'/></query>");
	it = wait_push(a2, "friend@example.net", 3000);
	xt_report("roster remove: result and a push with subscription='remove'",
		  n && attr_is(n, "type", "result") && attr_is(it, "subscription", "remove"),
		  "push: %s", it ? xt_raw(it->parent->parent) : "none");
out:
	xt_free(a);
	xt_free(a2);
}

/* ---- last activity ---- */

static void t_last(void)
{
	struct xt *a, *b, *s;
	char ja[256], jb[256];
	struct xt_node *n, *q;

	bare(ja, sizeof(ja), "u18");
	bare(jb, sizeof(jb), "u19");
	if (!make_mutual("u18", "u19")) {
		xt_report("last activity: set-up", false, "mutual subscription failed");
		return;
	}
	b = online("u19", "b");
	if (b) {
		presence(b, NULL, NULL, "<status>off to bed</status>");
		xt_iq(b, "get", host, "<ping xmlns='urn:xmpp:ping'/>");
		xt_sendf(b, "</stream:stream>");
		xt_read_ms(b, 1000);
		xt_free(b);
	}
	a = online("u18", "a");
	s = online("u20", "s");
	if (!a || !s) {
		xt_report("last activity", false, "login failed");
		goto out;
	}
	n = xt_iq(a, "get", host, "<query xmlns='jabber:iq:last'/>");
	q = n ? xt_child(n, "jabber:iq:last", "query") : NULL;
	xt_report("last activity of the server: its uptime in seconds",
		  q && xt_attr(q, "seconds"), "got: %s", n ? xt_raw(n) : "nothing");
	n = xt_iq(a, "get", jb, "<query xmlns='jabber:iq:last'/>");
	q = n ? xt_child(n, "jabber:iq:last", "query") : NULL;
	xt_report("last activity of a contact: seconds and the last status",
		  q && xt_attr(q, "seconds") && q->text && !strcmp(q->text, "off to bed"),
		  "got: %s", n ? xt_raw(n) : "nothing");
	n = xt_iq(s, "get", jb, "<query xmlns='jabber:iq:last'/>");
	xt_report("last activity for a stranger: forbidden", n && !strcmp(xt_condition(
		  xt_stanza_error(n), XT_NS_STANZA_ERR) ?: "", "forbidden"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	n = xt_iq(s, "get", ja, "<query xmlns='jabber:iq:last'/>");
	xt_report("... also when the user is online", n && attr_is(n, "type", "error"),
		  "got: %s", n ? xt_raw(n) : "nothing");
	b = online("u19", "b2");
	n = b ? xt_iq(a, "get", jb, "<query xmlns='jabber:iq:last'/>") : NULL;
	q = n ? xt_child(n, "jabber:iq:last", "query") : NULL;
	xt_report("last activity of an online contact: 0", q && attr_is(q, "seconds", "0"),
		  "got: %s", n ? xt_raw(n) : "nothing");
	xt_free(b);
out:
	xt_free(a);
	xt_free(s);
}

/* ---- offline storage and stanza ids (a second host with mod_offline) ---- */

static struct xt *login_off(const char *user, const char *res)
{
	char err[256];
	struct xt *c = xt_login("127.0.0.1", port, XT_TCP, offhost, user, pass, NULL, res,
				NULL, err, sizeof(err));

	if (!c)
		printf("# login %s@%s failed: %s\n", user, offhost, err);
	return c;
}

static void t_offline(void)
{
	struct xt *a = login_off("o1", "a"), *b = NULL, *b2 = NULL;
	char jb[256], jc[256], jd[256];
	struct xt_node *n;
	int next = 0, delayed = 0, sid = 0, other = 0;

	snprintf(jb, sizeof(jb), "o2@%s", offhost);
	snprintf(jc, sizeof(jc), "o3@%s", offhost);
	snprintf(jd, sizeof(jd), "o4@%s", offhost);
	if (!a) {
		xt_report("offline storage", false, "login failed");
		return;
	}
	for (int i = 0; i < 3; i++)
		xt_sendf(a, "<message to='%s' type='chat'><body>%d</body></message>", jb, i);
	xt_sendf(a, "<message to='%s' type='headline'><body>news</body></message>", jb);
	xt_sendf(a, "<message to='%s' type='chat'><composing xmlns='http://jabber.org/"
		 "protocol/chatstates'/></message>", jb);
	/* Queue limit (offline-queue=5): the sixth message bounces. */
	for (int i = 0; i < 6; i++)
		xt_sendf(a, "<message to='%s' type='chat' id='q%d'><body>q%d</body></message>", jc,
			 i, i);
	n = wait_for(a, "message", "error", NULL, 3000);
	xt_report("offline: past the per-account limit the sender gets resource-constraint",
		  n && attr_is(n, "id", "q5") && !strcmp(xt_condition(xt_stanza_error(n),
		  XT_NS_STANZA_ERR) ?: "", "resource-constraint"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	/* A receipt to an offline sender is kept like a message (XEP-0184). */
	xt_sendf(a, "<message to='%s'><received xmlns='urn:xmpp:receipts' id='r1'/></message>",
		 jd);
	xt_iq(a, "get", offhost, "<ping xmlns='urn:xmpp:ping'/>");
	b = login_off("o2", "b");
	if (!b) {
		xt_report("offline storage", false, "login failed");
		goto out;
	}
	presence(b, NULL, NULL, NULL);
	while (next + other < 4 && (n = wait_for(b, "message", NULL, NULL, 2000))) {
		struct xt_node *body = xt_child(n, NULL, "body");
		char want[8];

		snprintf(want, sizeof(want), "%d", next);
		if (body && body->text && !strcmp(body->text, want) &&
		    attr_is(n, "type", "chat")) {
			next++;
			delayed += xt_child(n, "urn:xmpp:delay", "delay") != NULL;
			sid += xt_child(n, "urn:xmpp:sid:0", "stanza-id") != NULL;
		} else {
			other++;
			printf("# unexpected: %s\n", xt_raw(n));
		}
	}
	xt_report("offline: stored messages arrive at initial presence, in order",
		  next == 3, "%d of 3 in order", next);
	xt_report("offline: each with a <delay/> and a <stanza-id/>", delayed == 3 && sid == 3,
		  "delay %d, stanza-id %d", delayed, sid);
	xt_report("offline: headlines and bare chat states are not stored", other == 0,
		  "%d other messages", other);
	b2 = login_off("o2", "b2");
	if (b2)
		presence(b2, NULL, NULL, NULL);
	xt_report("offline: a second login gets none of them again",
		  b2 && nothing(b2, "message", "chat", 1000), "it got messages");
	{
		struct xt *d = login_off("o4", "d");

		if (d)
			presence(d, NULL, NULL, NULL);
		n = d ? wait_for(d, "message", NULL, NULL, 3000) : NULL;
		xt_report("offline: a receipt for an offline user is stored and delivered",
			  n && xt_child(n, "urn:xmpp:receipts", "received"), "got: %s",
			  n ? xt_raw(n) : "nothing");
		xt_free(d);
	}
	/* XEP-0359: a stanza-id the sender forged with the recipient's 'by' goes. */
	xt_sendf(a, "<message to='%s' type='chat'><body>sid</body><stanza-id xmlns='urn:xm"
		 "pp:sid:0' by='%s' id='forged'/></message>", jb, jb);
	n = wait_for(b, "message", "chat", NULL, 3000);
	{
		struct xt_node *x = n ? xt_child(n, "urn:xmpp:sid:0", "stanza-id") : NULL;
		int count = 0;

		for (struct xt_node *c = n ? n->children : NULL; c; c = c->next)
			count += !strcmp(c->name, "stanza-id");
		xt_report("stanza-id: a forged one is replaced by the server's", x && count == 1
			  && !attr_is(x, "id", "forged") && attr_is(x, "by", jb), "got: %s",
			  n ? xt_raw(n) : "nothing");
	}
out:
	xt_free(a);
	xt_free(b);
	xt_free(b2);
}

/* XEP-0160 §3: a resource of negative priority gets no messages for the bare
 * JID, so stored ones wait for a presence with a non-negative priority. */
static void t_offline_priority(void)
{
	struct xt *a = login_off("o1", "p"), *e = NULL;
	char je[256];
	struct xt_node *n;

	snprintf(je, sizeof(je), "o5@%s", offhost);
	if (!a) {
		xt_report("offline and negative priority", false, "login failed");
		return;
	}
	xt_sendf(a, "<message to='%s' type='chat'><body>later</body></message>", je);
	xt_iq(a, "get", offhost, "<ping xmlns='urn:xmpp:ping'/>");	/* stored by now */
	e = login_off("o5", "neg");
	if (!e) {
		xt_report("offline and negative priority", false, "login failed");
		goto out;
	}
	presence(e, NULL, NULL, "<priority>-1</priority>");
	xt_report("offline: nothing is flushed to a resource of negative priority",
		  nothing(e, "message", "chat", 1000), "it got the stored message");
	presence(e, NULL, NULL, "<priority>0</priority>");
	n = wait_for(e, "message", "chat", NULL, 3000);
	xt_report("offline: ... they come with its first non-negative priority",
		  n && xt_child(n, NULL, "body") && !strcmp(xt_child(n, NULL, "body")->text,
		  "later"), "got: %s", n ? xt_raw(n) : "nothing");
out:
	xt_free(a);
	xt_free(e);
}

/* im_core.test makes every DELETE of o7's stored messages fail: the messages
 * are delivered once, and a second login does not get them again. */
static void t_delete_fails(void)
{
	struct xt *a = login_off("o1", "del"), *g = NULL;
	char jg[256];
	struct xt_node *n;

	snprintf(jg, sizeof(jg), "o7@%s", offhost);
	if (!a) {
		xt_report("offline and a failed delete", false, "login failed");
		return;
	}
	xt_sendf(a, "<message to='%s' type='chat'><body>once</body></message>", jg);
	xt_iq(a, "get", offhost, "<ping xmlns='urn:xmpp:ping'/>");
	g = login_off("o7", "first");
	if (g)
		presence(g, NULL, NULL, NULL);
	n = g ? wait_for(g, "message", "chat", NULL, 3000) : NULL;
	xt_report("offline: a stored message is delivered (its DELETE will fail)", n != NULL,
		  "nothing came");
	/* The flush deletes once the client has the message: a round trip. */
	if (g)
		xt_iq(g, "get", offhost, "<ping xmlns='urn:xmpp:ping'/>");
	xt_free(g);
	g = login_off("o7", "second");
	if (g)
		presence(g, NULL, NULL, NULL);
	xt_report("offline: ... and not again at the next login, though still in the table",
		  g && nothing(g, "message", "chat", 1500), "it came again");
	xt_free(g);
	xt_free(a);
}

/* What o6 leaves behind for im_core.test to find gone once it deletes the
 * account: a roster item, a last activity, a stored message. */
static void t_leave_rows(void)
{
	struct xt *f = login_off("o6", "r"), *a = NULL;
	char jf[256], ja[256];
	struct xt_node *n;

	snprintf(jf, sizeof(jf), "o6@%s", offhost);
	snprintf(ja, sizeof(ja), "o1@%s", offhost);
	if (!f) {
		xt_report("rows of an account", false, "login failed");
		return;
	}
	{
		char q[512];

		snprintf(q, sizeof(q), "<query xmlns='jabber:iq:roster'><item jid='%s'/></query>",
			 ja);
		n = xt_iq(f, "set", NULL, q);
	}
	xt_report("o6 adds a roster item", n && attr_is(n, "type", "result"), "got: %s",
		  n ? xt_raw(n) : "nothing");
	presence(f, NULL, NULL, NULL);
	xt_sendf(f, "</stream:stream>");
	xt_free(f);
	a = login_off("o1", "rows");
	if (a) {
		xt_sendf(a, "<message to='%s' type='chat'><body>kept</body></message>", jf);
		n = xt_iq(a, "get", offhost, "<ping xmlns='urn:xmpp:ping'/>");
	}
	xt_report("an account with a roster, a last activity and a stored message",
		  a && n && attr_is(n, "type", "result"), "got: %s", n ? xt_raw(n) : "nothing");
	xt_free(a);
}

int main(void)
{
	host = getenv("PARLEY_HOST");
	pass = getenv("PARLEY_PASS");
	offhost = getenv("PARLEY_OFF_HOST");
	port = getenv("PARLEY_PORT") ? atoi(getenv("PARLEY_PORT")) : 0;
	if (!host || !pass || !port || !offhost) {
		printf("not ok - environment\n# PARLEY_HOST, PARLEY_PORT, PARLEY_PASS\n");
		return 1;
	}
	if (getenv("PARLEY_TEST_TIMEOUT_MS"))
		xt_set_default_timeout(atoi(getenv("PARLEY_TEST_TIMEOUT_MS")));
	t_handshake();
	t_offline_request();
	t_preapproval();
	t_presence();
	t_self_presence();
	t_unavailable_status();
	t_priority();
	t_order();
	t_slow_reader();
	t_spoof();
	t_nonexistent();
	t_roster();
	t_last();
	t_offline();
	t_offline_priority();
	t_delete_fails();
	t_leave_rows();
	return xt_failures ? 1 : 0;
}
