/*
 * muc_test.c - XEP-0045 multi-user chat (mod_muc) against a running parleyd:
 * service and room discovery, creating and unlocking a room, joining, nick
 * conflicts, groupchat, private messages, the subject, nick changes, XEP-0410
 * self-ping, leaving (gracefully or not) and the end of a temporary room; then
 * in a second room discussion history (§7.2.13, §7.2.14) and the subject's
 * <delay/> (§7.2.15), kicking, voice, banning, the ban list and admins (§8-§10);
 * in a third the configuration form (§10.2) and what it does: passwords,
 * members only, moderation, non-anonymity, max users, the subject (§7.2, §8.1),
 * and destroying the room (§10.9). Prints TAP lines without numbers; muc.test
 * adds the plan.
 *
 * The first use cases follow one room, room1, through its life; the later ones
 * use room2, owned by m1 as "own" throughout, then room3, m1's as "boss". Each
 * t_* first puts the occupants it needs into the room (need(), need2(),
 * need3()), so that one failure does not take every later check with it, and
 * drains what earlier cases left unread; the room3 cases also put back the
 * configuration they started from (base3).
 *
 * Env: PARLEY_HOST, PARLEY_PORT (a tls="none" c2s listener), PARLEY_PASS (the
 * password of every account m1..m8), PARLEY_MUC (the MUC service,
 * conference.HOST unless set), PARLEY_TEST_TIMEOUT_MS (how long to wait for
 * each expected stanza).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

#include "xmpptest.h"

#define NS_MUC		"http://jabber.org/protocol/muc"
#define NS_MUC_USER	NS_MUC "#user"
#define NS_MUC_OWNER	NS_MUC "#owner"
#define NS_MUC_ADMIN	NS_MUC "#admin"
#define NS_DELAY	"urn:xmpp:delay"
#define NS_DISCO_ITEMS	"http://jabber.org/protocol/disco#items"
#define NS_SID		"urn:xmpp:sid:0"
#define PING		"<ping xmlns='" XT_NS_PING "'/>"
#define ROOM		"room1"
#define ROOM2		"room2"
#define USERS		8
#define BACKLOG		32	/* stanzas an IQ wait puts aside for later reads */

static const char *host, *muc, *pass;
static int port, wait_ms = XT_DEFAULT_TIMEOUT_MS;
static struct xt *m[USERS + 1];		/* m[1] is m1@HOST/r, ...; NULL if its login failed */
static char nick_of[USERS + 1][64];	/* m[i]'s nick in room1, "" when it is not in */
static char nick2_of[USERS + 1][64];	/* ... in room2 */
static char why[4096];			/* diagnostics of the check being made */
static int nback[USERS + 1];		/* stanzas in backlog[i] (below) */

/* ---- plumbing ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void why_reset(void) { why[0] = '\0'; }

static void __attribute__((format(printf, 1, 2))) why_add(const char *fmt, ...)
{
	size_t len = strlen(why);
	va_list ap;

	if (len + 1 >= sizeof(why))
		return;
	va_start(ap, fmt);
	vsnprintf(why + len, sizeof(why) - len, fmt, ap);
	va_end(ap);
}

/* Each name, not ok with the reason: a use case whose set-up failed. */
static void __attribute__((sentinel)) fail_all(const char *reason, ...)
{
	va_list ap;
	const char *name;

	va_start(ap, reason);
	while ((name = va_arg(ap, const char *)))
		xt_report(name, false, "%s", reason);
	va_end(ap);
}

/* room@MUC (nick NULL) or room@MUC/nick; a ring of buffers, so that a few can
 * be used in one expression. */
static const char *rjr(const char *room, const char *nick)
{
	static char buf[16][320];
	static unsigned next;
	char *b = buf[next++ % 16];

	if (nick)
		snprintf(b, sizeof(buf[0]), "%s@%s/%s", room, muc, nick);
	else
		snprintf(b, sizeof(buf[0]), "%s@%s", room, muc);
	return b;
}

static const char *rj(const char *nick) { return rjr(ROOM, nick); }
static const char *r2j(const char *nick) { return rjr(ROOM2, nick); }

/* m<i>@HOST, a user's bare JID (a ring too). */
static const char *bare_jid(int i)
{
	static char buf[4][320];
	static unsigned next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]), "m%d@%s", i, host);
	return b;
}

static struct xt *online(int i)
{
	char user[16], err[256];
	struct xt *c;

	snprintf(user, sizeof(user), "m%d", i);
	c = xt_login("127.0.0.1", port, XT_TCP, host, user, pass, NULL, "r", NULL, err,
		     sizeof(err));
	if (!c) {
		printf("# login %s failed: %s\n", user, err);
		return NULL;
	}
	/* Like a real client: the roster and initial presence before any room
	 * (mod_presence then sends unavailable to the rooms when it goes). */
	xt_iq(c, "get", NULL, "<query xmlns='jabber:iq:roster'/>");
	xt_sendf(c, "<presence/>");
	return c;
}

/* Reads and throws away what the server sent each user until now: a ping
 * round trip each (what earlier use cases left unread goes with it). */
static void sync_all(void)
{
	for (int i = 1; i <= USERS; i++) {
		nback[i] = 0;
		if (m[i])
			xt_iq(m[i], "get", host, PING);
	}
}

/* ---- what came from the MUC service, copied out of the connection's node ---- */

struct ev {
	char name[16], from[320], type[16], id[64];
	bool item, jid;			/* a muc#user <item/>; with a 'jid' */
	char aff[16], role[16], ijid[320], nick[64];
	int codes[8], ncodes;		/* muc#user <status code/> */
	char cond[48];			/* the condition of a stanza error */
	bool subject, body, ping;	/* <subject/>, <body/>, an urn:xmpp:ping child */
	char subj[128], text[128];	/* their text */
	bool sid;			/* XEP-0359 <stanza-id/> by the room (the bare 'from') */
	char sid_by[320], sid_id[128];
	bool delay;			/* XEP-0203 <delay/> */
	char delay_from[320], stamp[64];
	char reason[128];		/* the <reason/> inside the muc#user <item/> */
	bool destroy;			/* a muc#user <destroy/> (§10.9) */
	char destroy_jid[320], destroy_reason[128];
	char raw[1500];
};

/* What muc_iq() read while waiting for its answer, for the next reads. */
static struct ev backlog[USERS + 1][BACKLOG];

static void cp(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}
#define CP(dst, src) cp(dst, sizeof(dst), src)

static void fill(struct ev *e, const struct xt_node *n)
{
	const struct xt_node *x = xt_child(n, NS_MUC_USER, "x");
	const struct xt_node *it = xt_child(x, NS_MUC_USER, "item");
	const struct xt_node *dx = xt_child(x, NS_MUC_USER, "destroy");
	const struct xt_node *err = xt_stanza_error(n), *s, *b, *d, *r;
	size_t bare;

	memset(e, 0, sizeof(*e));
	CP(e->name, n->name);
	CP(e->from, xt_attr(n, "from"));
	CP(e->type, xt_attr(n, "type"));
	CP(e->id, xt_attr(n, "id"));
	CP(e->raw, xt_raw(n));
	if (it) {
		e->item = true;
		CP(e->aff, xt_attr(it, "affiliation"));
		CP(e->role, xt_attr(it, "role"));
		CP(e->nick, xt_attr(it, "nick"));
		e->jid = xt_attr(it, "jid") != NULL;
		CP(e->ijid, xt_attr(it, "jid"));
		if ((r = xt_child(it, NS_MUC_USER, "reason")))
			CP(e->reason, r->text);
	}
	if (dx) {
		e->destroy = true;
		CP(e->destroy_jid, xt_attr(dx, "jid"));
		if ((r = xt_child(dx, NS_MUC_USER, "reason")))
			CP(e->destroy_reason, r->text);
	}
	for (const struct xt_node *ch = x ? x->children : NULL; ch; ch = ch->next)
		if (xt_is(ch, NS_MUC_USER, "status") && xt_attr(ch, "code") && e->ncodes < 8)
			e->codes[e->ncodes++] = atoi(xt_attr(ch, "code"));
	if (err)
		CP(e->cond, xt_condition(err, XT_NS_STANZA_ERR));
	if ((s = xt_child(n, XT_NS_CLIENT, "subject"))) {
		e->subject = true;
		CP(e->subj, s->text);
	}
	if ((b = xt_child(n, XT_NS_CLIENT, "body"))) {
		e->body = true;
		CP(e->text, b->text);
	}
	e->ping = xt_child(n, XT_NS_PING, "ping") != NULL;
	if ((d = xt_child(n, NS_DELAY, "delay"))) {
		e->delay = true;
		CP(e->delay_from, xt_attr(d, "from"));
		CP(e->stamp, xt_attr(d, "stamp"));
	}
	/* The user's server may add its own stanza-id (by the user's JID). */
	bare = strcspn(e->from, "/");
	for (const struct xt_node *ch = n->children; ch && !e->sid; ch = ch->next) {
		const char *by = xt_attr(ch, "by");

		if (xt_is(ch, NS_SID, "stanza-id") && by && strlen(by) == bare &&
		    strncmp(by, e->from, bare) == 0) {
			e->sid = true;
			CP(e->sid_by, by);
			CP(e->sid_id, xt_attr(ch, "id"));
		}
	}
}

static bool has_code(const struct ev *e, int code)
{
	for (int i = 0; i < e->ncodes; i++)
		if (e->codes[i] == code)
			return true;
	return false;
}

static bool eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* Whether a 'from' is the service, one of its rooms or an occupant. */
static bool from_muc(const char *from)
{
	const char *d = from ? strchr(from, '@') : NULL;
	size_t len = strlen(muc);

	d = d ? d + 1 : from;
	return d && strncmp(d, muc, len) == 0 && (d[len] == '\0' || d[len] == '/');
}

/* The next stanza from the MUC service on the connection within ms; the rest
 * (the user's own presence, pings answered late...) is skipped. */
static bool read_ev(struct xt *c, struct ev *e, int ms)
{
	long long end = now_ms() + ms, left;
	struct xt_node *n;

	while (c && (left = end - now_ms()) > 0 && (n = xt_read_ms(c, (int)left)))
		if (from_muc(xt_attr(n, "from"))) {
			fill(e, n);
			return true;
		}
	return false;
}

static int index_of(const struct xt *c)
{
	for (int i = 1; i <= USERS; i++)
		if (c && m[i] == c)
			return i;
	return 0;
}

/* The next stanza from the MUC service: what muc_iq() put aside first, then
 * read_ev(). */
static bool next_ev(struct xt *c, struct ev *e, int ms)
{
	int i = index_of(c);

	if (i && nback[i]) {
		*e = backlog[i][0];
		memmove(&backlog[i][0], &backlog[i][1], --nback[i] * sizeof(backlog[i][0]));
		return true;
	}
	return read_ev(c, e, ms);
}

/* The next stanza named name from the MUC, of this type (NULL: any, "": none)
 * and from this JID exactly (NULL: any), within the timeout. */
static bool wait_ev(struct xt *c, struct ev *e, const char *name, const char *type,
		    const char *from)
{
	long long end = now_ms() + wait_ms, left;

	while ((left = end - now_ms()) > 0 && next_ev(c, e, (int)left)) {
		if (strcmp(e->name, name) != 0)
			continue;
		if (type && strcmp(e->type, type) != 0)
			continue;
		if (from && strcmp(e->from, from) != 0)
			continue;
		return true;
	}
	return false;
}

/* A message of this type from this JID with this body and/or subject (NULL:
 * either, whatever it says). */
static bool wait_msg(struct xt *c, struct ev *e, const char *type, const char *from,
		     const char *body, const char *subject)
{
	long long end = now_ms() + wait_ms;

	while (now_ms() < end && wait_ev(c, e, "message", type, from))
		if ((!body || (e->body && eq(e->text, body))) &&
		    (!subject || (e->subject && eq(e->subj, subject))))
			return true;
	return false;
}

/* ---- entering and leaving ---- */

/* §7.2.1: presence to the occupant JID with a MUC <x/>, holding hist (a
 * <history/>, §7.2.14) unless it is NULL. */
static void send_join_in(const char *room, int i, const char *nick, const char *hist)
{
	if (m[i])
		xt_sendf(m[i], "<presence to='%s'><x xmlns='" NS_MUC "'>%s</x></presence>",
			 rjr(room, nick), hist ? hist : "");
}

static void send_join(int i, const char *nick) { send_join_in(ROOM, i, nick, NULL); }

/* The answer to a join as nick: the user's own presence (110) or an error,
 * both from the occupant JID. *others counts the occupants' presence before it. */
static bool await_self_in(const char *room, int i, const char *nick, struct ev *e,
			  int *others)
{
	const char *occupant = rjr(room, nick);

	if (others)
		*others = 0;
	while (m[i] && wait_ev(m[i], e, "presence", NULL, NULL)) {
		if (strcmp(e->from, occupant) == 0 && (eq(e->type, "error") || has_code(e, 110)))
			return true;
		if (others && !*e->type)
			++*others;
	}
	memset(e, 0, sizeof(*e));	/* "nothing" for the diagnostics */
	return false;
}

static bool await_self(int i, const char *nick, struct ev *e, int *others)
{
	return await_self_in(ROOM, i, nick, e, others);
}

/* §10.1.2: the owner accepts the default configuration (an instant room). */
static struct xt_node *make_instant_in(const char *room, int i)
{
	return xt_iq(m[i], "set", rjr(room, NULL), "<query xmlns='" NS_MUC_OWNER "'><x "
		     "xmlns='jabber:x:data' type='submit'/></query>");
}

static struct xt_node *make_instant(int i) { return make_instant_in(ROOM, i); }

/* §7.14: leaves the room, where m[i] is nicks[i]; true once the own
 * unavailable came back. */
static bool leave_in(const char *room, char (*nicks)[64], int i)
{
	struct ev e;
	bool ok;

	if (!m[i] || !nicks[i][0])
		return true;
	xt_sendf(m[i], "<presence type='unavailable' to='%s'/>", rjr(room, nicks[i]));
	ok = wait_ev(m[i], &e, "presence", "unavailable", rjr(room, nicks[i]));
	nicks[i][0] = '\0';
	return ok;
}

static bool leave(int i) { return leave_in(ROOM, nick_of, i); }
static bool leave2(int i) { return leave_in(ROOM2, nick2_of, i); }

/* Set-up: m[i] in the room as nick, joining (and creating the room, as an
 * instant room, when it is not there) unless it already is. */
static bool need_in(const char *room, char (*nicks)[64], int i, const char *nick)
{
	struct ev e;

	if (!m[i])
		return false;
	if (strcmp(nicks[i], nick) == 0)
		return true;
	if (nicks[i][0])
		leave_in(room, nicks, i);
	send_join_in(room, i, nick, NULL);
	if (!await_self_in(room, i, nick, &e, NULL) || eq(e.type, "error")) {
		printf("# set-up: m%d cannot enter %s: %s\n", i, rjr(room, nick),
		       e.raw[0] ? e.raw : "no answer");
		return false;
	}
	CP(nicks[i], nick);
	if (has_code(&e, 201))
		make_instant_in(room, i);
	return true;
}

static bool need(int i, const char *nick) { return need_in(ROOM, nick_of, i, nick); }

/* room2 is m1's, as "own": it goes in first. */
static bool need2(int i, const char *nick)
{
	if (i != 1 && !need_in(ROOM2, nick2_of, 1, "own"))
		return false;
	return need_in(ROOM2, nick2_of, i, nick);
}

/* ---- IQs to a room ---- */

/* An IQ from m[i] to `to`; true with its answer in *res. What else came from
 * the MUC meanwhile (presence the request caused...) is kept for next_ev(). */
static bool muc_iq(int i, const char *to, const char *type, const char *payload,
		   struct ev *res)
{
	long long end = now_ms() + wait_ms, left;
	char id[64];
	struct ev e;

	memset(res, 0, sizeof(*res));
	if (!m[i])
		return false;
	CP(id, xt_new_id(m[i]));
	xt_sendf(m[i], "<iq type='%s' id='%s' to='%s'>%s</iq>", type, id, to, payload);
	while ((left = end - now_ms()) > 0 && read_ev(m[i], &e, (int)left)) {
		if (eq(e.name, "iq") && eq(e.id, id) && (eq(e.type, "result") ||
							 eq(e.type, "error"))) {
			*res = e;
			return true;
		}
		if (nback[i] < BACKLOG)
			backlog[i][nback[i]++] = e;
	}
	return false;
}

/* A muc#admin set of one item, from m[i] to room2 (§8, §9, §10). */
static bool admin_set(int i, const char *item, struct ev *res)
{
	char q[1024];

	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_ADMIN "'>%s</query>", item);
	return muc_iq(i, r2j(NULL), "set", q, res);
}

static bool is_result(const struct ev *e) { return eq(e->name, "iq") && eq(e->type, "result"); }

static bool is_error(const struct ev *e, const char *cond)
{
	return eq(e->name, "iq") && eq(e->type, "error") && eq(e->cond, cond);
}

/* Whether m[i] got a message with this body from the MUC before the answer to
 * a ping sent now; what came before goes. */
static bool body_came(int i, const char *body)
{
	struct xt_node *n;
	bool seen = false;
	char id[64];

	if (!m[i])
		return false;
	for (int k = 0; k < nback[i]; k++)
		seen |= backlog[i][k].body && eq(backlog[i][k].text, body);
	nback[i] = 0;
	CP(id, xt_new_id(m[i]));
	xt_sendf(m[i], "<iq type='get' id='%s' to='%s'>" PING "</iq>", id, host);
	while ((n = xt_read(m[i])) && !eq(xt_attr(n, "id"), id)) {
		struct xt_node *b = xt_child(n, XT_NS_CLIENT, "body");

		seen |= from_muc(xt_attr(n, "from")) && b && eq(b->text, body);
	}
	return seen;
}

/* Whether m[i] is still in room2 as nick: XEP-0410 self-ping, answered by the room. */
static bool still_in2(int i, const char *nick)
{
	struct ev e;

	return muc_iq(i, r2j(nick), "get", PING, &e) && is_result(&e);
}

/* ---- the use cases ---- */

/* §6.1, §6.2: the service is among the server's items; its identity and feature. */
static void t_disco_service(void)
{
	struct xt_node *n, *q, *ch;
	bool listed = false, ident = false, feature = false;

	n = m[1] ? xt_iq(m[1], "get", host, "<query xmlns='" NS_DISCO_ITEMS "'/>") : NULL;
	q = xt_child(n, NS_DISCO_ITEMS, "query");
	for (ch = q ? q->children : NULL; ch; ch = ch->next)
		listed |= xt_is(ch, NS_DISCO_ITEMS, "item") && eq(xt_attr(ch, "jid"), muc);
	xt_report("disco#items of the server lists the MUC service", listed, "got: %s",
		  xt_raw(n));
	n = m[1] ? xt_iq(m[1], "get", muc, "<query xmlns='" XT_NS_DISCO_INFO "'/>") : NULL;
	q = xt_child(n, XT_NS_DISCO_INFO, "query");
	for (ch = q ? q->children : NULL; ch; ch = ch->next) {
		ident |= xt_is(ch, XT_NS_DISCO_INFO, "identity") &&
			 eq(xt_attr(ch, "category"), "conference") && eq(xt_attr(ch, "type"), "text");
		feature |= xt_is(ch, XT_NS_DISCO_INFO, "feature") && eq(xt_attr(ch, "var"), NS_MUC);
	}
	xt_report("disco#info of the MUC service: identity conference/text, feature MUC",
		  ident && feature, "got: %s", xt_raw(n));
}

/* XEP-0059 on the service's room list (§6.3): pages of max 2 by 'after'
 * cover every public room once, with <count/>; an unknown 'after' is
 * item-not-found. */
static void t_room_list_paging(void)
{
	const char *pages = "room list: pages of 2 (RSM after) list each public room once, "
			    "as many as <count/> says, pg1..pg3 among them";
	const char *unknown = "room list: after an unknown room gets item-not-found";
	static char nicks[USERS + 1][64];
	const char *names[] = { "pg1", "pg2", "pg3" };
	char seen[64][320], q[1024], after[320] = "";
	int nseen = 0, count = -1, pg = 0, rounds = 0;
	bool dup = false, more = true;
	struct xt_node *n, *set, *c;

	for (int k = 0; k < 3; k++) {
		nicks[1][0] = '\0';
		if (!need_in(names[k], nicks, 1, "lister")) {
			fail_all("set-up: m1 creates pg1..pg3", pages, unknown, NULL);
			return;
		}
	}
	why_reset();
	while (more && rounds++ < 40) {
		snprintf(q, sizeof(q), "<query xmlns='" NS_DISCO_ITEMS "'><set xmlns='"
			 "http://jabber.org/protocol/rsm'><max>2</max>%s%s%s</set></query>",
			 after[0] ? "<after>" : "", after, after[0] ? "</after>" : "");
		n = xt_iq(m[1], "get", muc, q);
		c = xt_child(n, NS_DISCO_ITEMS, "query");
		set = xt_child(c, "http://jabber.org/protocol/rsm", "set");
		more = false;
		for (struct xt_node *it = c ? c->children : NULL; it; it = it->next) {
			const char *jid = xt_attr(it, "jid");

			if (!xt_is(it, NS_DISCO_ITEMS, "item") || !jid || nseen == 64)
				continue;
			for (int k = 0; k < nseen; k++)
				dup |= eq(seen[k], jid);
			CP(seen[nseen], jid);
			nseen++;
			for (int k = 0; k < 3; k++)
				pg += eq(jid, rjr(names[k], NULL));
			CP(after, jid);
			more = true;
		}
		if (xt_child(set, "http://jabber.org/protocol/rsm", "count"))
			count = atoi(xt_child(set, "http://jabber.org/protocol/rsm", "count")->text);
		if (!set)
			why_add("no <set/> in %s; ", xt_raw(n));
	}
	xt_report(pages, !dup && pg == 3 && count == nseen, "%d listed (count %d), %d of pg1..3%s; "
		  "%s", nseen, count, pg, dup ? ", some twice" : "", why);
	n = xt_iq(m[1], "get", muc, "<query xmlns='" NS_DISCO_ITEMS "'><set xmlns='"
		  "http://jabber.org/protocol/rsm'><after>nosuch@nowhere</after></set></query>");
	xt_report(unknown, n && eq(xt_attr(n, "type"), "error") &&
		  eq(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR), "item-not-found"),
		  "got: %s", xt_raw(n));
	for (int k = 0; k < 3; k++) {
		CP(nicks[1], "lister");
		leave_in(names[k], nicks, 1);
	}
}

/* §10.1.1: the first join creates the room; the creator is its owner. */
static void t_create(void)
{
	struct ev e = { 0 };
	bool got;

	send_join(1, "alice");
	got = m[1] && await_self(1, "alice", &e, NULL) && !*e.type;
	if (got)
		CP(nick_of[1], "alice");
	xt_report("create: the creator's own presence: owner, moderator, status 110 and 201",
		  got && e.item && eq(e.aff, "owner") && eq(e.role, "moderator") &&
		  has_code(&e, 110) && has_code(&e, 201), "got: %s",
		  e.raw[0] ? e.raw : "nothing");
}

/* §7.2.10, §10.1.1: nobody else enters before the owner configures the room;
 * §10.1.2: the instant room. */
static void t_locked(void)
{
	const char *locked = "locked room: another user's join gets item-not-found";
	const char *instant = "instant room: the owner's empty submit form gets a result";
	struct xt_node *n;
	struct ev e;
	bool got;

	if (strcmp(nick_of[1], "alice") != 0) {
		fail_all("set-up: m1 did not create room1", locked, instant, NULL);
		return;
	}
	send_join(2, "bob");
	got = m[2] && await_self(2, "bob", &e, NULL);
	xt_report(locked, got && eq(e.type, "error") && eq(e.cond, "item-not-found"),
		  "got: %s", got ? e.raw : "nothing");
	if (got && !*e.type) {	/* it got in: out again, for the cases below */
		CP(nick_of[2], "bob");
		leave(2);
	}
	n = make_instant(1);
	xt_report(instant, n && eq(xt_attr(n, "type"), "result"), "got: %s", xt_raw(n));
}

/* §7.2.2, §7.2.4, §7.2.15: the others' presence first, then one's own (110),
 * then the subject (empty: none set); the full JID only to moderators. */
static void t_join(void)
{
	const char *others = "join: the occupants' presence first (alice: owner, moderator, "
			     "no jid for a non-moderator)";
	const char *own = "join: then the own presence with 110 (affiliation none, role "
			  "participant)";
	const char *subject = "join: then an empty <subject/> from the room's bare JID";
	const char *mod = "join: a moderator gets the newcomer's presence with its full JID";
	struct ev e, alice = { 0 }, self = { 0 }, subj = { 0 };
	int k = 0, ia = -1, is = -1, isub = -1;
	bool got;

	if (!need(1, "alice") || !m[2]) {
		fail_all("set-up: room1 with alice in it", others, own, subject, mod, NULL);
		return;
	}
	leave(2);
	sync_all();
	send_join(2, "bob");
	while (isub < 0 && next_ev(m[2], &e, wait_ms)) {
		if (eq(e.name, "presence") && eq(e.from, rj("alice")) && ia < 0) {
			alice = e;
			ia = k;
		} else if (eq(e.name, "presence") && eq(e.from, rj("bob"))) {
			self = e;
			is = k;
			if (eq(e.type, "error"))
				break;
		} else if (eq(e.name, "message") && e.subject && !e.body) {
			subj = e;
			isub = k;
		}
		k++;
	}
	if (is >= 0 && !*self.type)
		CP(nick_of[2], "bob");
	xt_report(others, ia >= 0 && (is < 0 || ia < is) && !*alice.type && alice.item &&
		  eq(alice.aff, "owner") && eq(alice.role, "moderator") && !alice.jid,
		  "alice's presence (#%d, own #%d): %s", ia, is, ia >= 0 ? alice.raw : "none");
	xt_report(own, is >= 0 && !*self.type && self.item && has_code(&self, 110) &&
		  eq(self.aff, "none") && eq(self.role, "participant"), "own presence: %s",
		  is >= 0 ? self.raw : "none");
	xt_report(subject, isub > is && is >= 0 && eq(subj.from, rj(NULL)) &&
		  eq(subj.type, "groupchat") && !subj.subj[0], "subject (#%d, own #%d): %s",
		  isub, is, isub >= 0 ? subj.raw : "none");
	got = wait_ev(m[1], &e, "presence", "", rj("bob"));
	xt_report(mod, got && e.item && eq(e.ijid, xt_jid(m[2])), "m1 got: %s (m2 is %s)",
		  got ? e.raw : "nothing", xt_jid(m[2]));
}

/* §7.2.8: a nick in use is a conflict; another nick then works. */
static void t_conflict(void)
{
	const char *taken = "nick in use: the join gets a presence error <conflict/>";
	const char *other = "nick in use: the same user then enters with another nick";
	struct ev e;
	bool got;

	if (!need(1, "alice") || !need(2, "bob") || !m[3]) {
		fail_all("set-up: room1 with alice and bob", taken, other, NULL);
		return;
	}
	leave(3);
	sync_all();
	send_join(3, "bob");
	got = await_self(3, "bob", &e, NULL);
	xt_report(taken, got && eq(e.type, "error") && eq(e.cond, "conflict"), "got: %s",
		  got ? e.raw : "nothing");
	if (got && !*e.type) {	/* it got in under bob's nick: out again */
		CP(nick_of[3], "bob");
		leave(3);
	}
	send_join(3, "carol");
	got = await_self(3, "carol", &e, NULL) && !*e.type;
	if (got)
		CP(nick_of[3], "carol");
	xt_report(other, got, "got: %s", e.raw[0] ? e.raw : "nothing");
}

/* §7.4: a groupchat message goes to every occupant, the sender too, from the
 * sender's occupant JID, with a stanza-id by the room (XEP-0359); from a
 * non-occupant it is refused. */
static void t_groupchat(void)
{
	const char *all = "groupchat: every occupant (the sender too) gets it from room1/bob";
	const char *sid = "groupchat: each copy has a <stanza-id/> by the room, with an id";
	const char *out = "groupchat from a non-occupant: not-acceptable, not reflected";
	bool every = true, ids = true, seen = false, got;
	struct xt_node *n;
	struct ev e;

	if (!need(1, "alice") || !need(2, "bob") || !need(3, "carol")) {
		fail_all("set-up: room1 with alice, bob and carol", all, sid, out, NULL);
		return;
	}
	sync_all();
	why_reset();
	xt_sendf(m[2], "<message to='%s' type='groupchat' id='g1'><body>hello</body></message>",
		 rj(NULL));
	for (int i = 1; i <= 3; i++) {
		if (!wait_msg(m[i], &e, "groupchat", rj("bob"), "hello", NULL)) {
			every = ids = false;
			why_add("m%d: nothing; ", i);
		} else if (!e.sid || !eq(e.sid_by, rj(NULL)) || !e.sid_id[0]) {
			ids = false;
			why_add("m%d: %s; ", i, e.raw);
		}
	}
	xt_report(all, every, "%s", why);
	xt_report(sid, ids, "%s", why);
	if (!m[4]) {
		xt_report(out, false, "m4 did not log in");
		return;
	}
	leave(4);
	xt_sendf(m[4], "<message to='%s' type='groupchat' id='g2'><body>intruder</body>"
		 "</message>", rj(NULL));
	got = wait_ev(m[4], &e, "message", "error", NULL);
	/* Reflected, it would be at m1 before the answer to a ping sent now. */
	xt_sendf(m[1], "<iq type='get' id='after-intruder' to='%s'>" PING "</iq>", host);
	while ((n = xt_read(m[1])) && !eq(xt_attr(n, "id"), "after-intruder")) {
		struct xt_node *b = xt_child(n, XT_NS_CLIENT, "body");

		seen |= b && eq(b->text, "intruder");
	}
	xt_report(out, got && eq(e.cond, "not-acceptable") && !seen, "m4 got: %s%s",
		  got ? e.raw : "nothing", seen ? "; and m1 got the message" : "");
}

/* §7.5: a private message goes to one occupant, from the sender's occupant JID;
 * to a nick nobody has it is item-not-found. */
static void t_private(void)
{
	const char *pm = "private message: delivered from room1/bob, type chat, same body";
	const char *nobody = "private message to a nick nobody has: item-not-found";
	struct ev e;
	bool got;

	if (!need(1, "alice") || !need(2, "bob")) {
		fail_all("set-up: room1 with alice and bob", pm, nobody, NULL);
		return;
	}
	sync_all();
	xt_sendf(m[2], "<message to='%s' type='chat' id='p1'><body>psst</body></message>",
		 rj("alice"));
	got = wait_msg(m[1], &e, NULL, rj("bob"), "psst", NULL);
	xt_report(pm, got && eq(e.type, "chat"), "m1 got: %s", got ? e.raw : "nothing");
	xt_sendf(m[2], "<message to='%s' type='chat' id='p2'><body>hello?</body></message>",
		 rj("nobody"));
	got = wait_ev(m[2], &e, "message", "error", NULL);
	xt_report(nobody, got && eq(e.cond, "item-not-found"), "got: %s",
		  got ? e.raw : "nothing");
}

/* §8.1: moderators change the subject, participants may not (the default);
 * §7.2.13, §7.2.15: a newcomer gets the history (bob's hello of t_groupchat;
 * no subject change, no private message), and the subject last. */
static void t_subject(void)
{
	const char *all = "subject: a moderator's change reaches every occupant from room1/alice";
	const char *denied = "subject: a participant's change gets forbidden";
	const char *later = "subject: a later joiner gets its own presence, the history (hello "
			    "from room1/bob, with <delay/>), then Topic from room1/alice";
	struct ev e, subj = { 0 };
	bool every = true, got, self = false, history = true, after = false;
	int nhist = 0;

	if (!need(1, "alice") || !need(2, "bob") || !need(3, "carol")) {
		fail_all("set-up: room1 with alice, bob and carol", all, denied, later, NULL);
		return;
	}
	sync_all();
	why_reset();
	xt_sendf(m[1], "<message to='%s' type='groupchat' id='s1'><subject>Topic</subject>"
		 "</message>", rj(NULL));
	for (int i = 1; i <= 3; i++)
		if (!wait_msg(m[i], &e, "groupchat", rj("alice"), NULL, "Topic")) {
			every = false;
			why_add("m%d: nothing; ", i);
		}
	xt_report(all, every, "%s", why);
	xt_sendf(m[2], "<message to='%s' type='groupchat' id='s2'><subject>Mine</subject>"
		 "</message>", rj(NULL));
	got = wait_ev(m[2], &e, "message", "error", NULL);
	xt_report(denied, got && eq(e.cond, "forbidden"), "got: %s", got ? e.raw : "nothing");
	if (!m[4]) {
		xt_report(later, false, "m4 did not log in");
		return;
	}
	leave(4);
	send_join(4, "dan");
	while (next_ev(m[4], &e, wait_ms)) {
		if (eq(e.name, "presence") && eq(e.from, rj("dan"))) {
			self = !*e.type && has_code(&e, 110);
			if (self)
				CP(nick_of[4], "dan");
			else
				break;
		} else if (eq(e.name, "message") && e.body) {
			history &= self && nhist == 0 && eq(e.type, "groupchat") &&
				   eq(e.from, rj("bob")) && eq(e.text, "hello") && e.delay &&
				   eq(e.delay_from, rj(NULL));
			nhist++;
			why_add("history: %s; ", e.raw);
		} else if (eq(e.name, "message") && e.subject) {
			subj = e;
			after = self;
			break;
		}
	}
	xt_report(later, self && after && history && nhist == 1 && eq(subj.from, rj("alice")) &&
		  eq(subj.type, "groupchat") && eq(subj.subj, "Topic"), "%s%d history messages; "
		  "own presence: %s; subject: %s", why, nhist, self ? "yes" : "no",
		  subj.raw[0] ? subj.raw : "none");
}

/* §7.6: unavailable from the old nick (nick='new', 303), then presence from the
 * new one; the user's own copies carry 110 as well. */
static void t_nick_change(void)
{
	const char *unav = "nick change: every occupant gets unavailable from room1/carol with "
			   "nick='dave' and 303";
	const char *next = "nick change: ... then presence from room1/dave";
	const char *self = "nick change: the user's own copies also carry 110";
	bool u_all = true, p_all = true, own = true;
	int ids[] = { 1, 2, 3, 4 };
	struct ev e;

	if (!need(1, "alice") || !need(2, "bob") || !need(3, "carol") || !need(4, "dan")) {
		fail_all("set-up: room1 with alice, bob, carol and dan", unav, next, self, NULL);
		return;
	}
	sync_all();
	xt_sendf(m[3], "<presence to='%s'/>", rj("dave"));
	why_reset();
	for (unsigned k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
		int i = ids[k];
		bool u = false, p = false;

		while (!p && next_ev(m[i], &e, wait_ms)) {
			if (!eq(e.name, "presence"))
				continue;
			if (eq(e.from, rj("carol")) && eq(e.type, "unavailable")) {
				u = e.item && eq(e.nick, "dave") && has_code(&e, 303);
				if (!u)
					why_add("m%d: %s; ", i, e.raw);
			} else if (eq(e.from, rj("dave")) && !*e.type) {
				p = true;
				p_all &= u;
			} else {
				continue;
			}
			if (i == 3 && !has_code(&e, 110)) {
				own = false;
				why_add("own copy without 110: %s; ", e.raw);
			}
		}
		u_all &= u;
		p_all &= p;
		if (!u || !p)
			why_add("m%d: unavailable from carol %s, presence from dave %s; ", i,
				u ? "ok" : "missing or wrong", p ? "came" : "missing");
		if (i == 3 && p)
			CP(nick_of[3], "dave");
	}
	xt_report(unav, u_all, "%s", why);
	xt_report(next, p_all, "%s", why);
	xt_report(self, own && u_all && p_all, "%s", why);
}

/* XEP-0410 §3.2: a ping to one's own occupant JID. A service that forwards it
 * (no muc#self-ping-optimization) has it answered here, as a client would. */
static bool self_ping(struct xt *c, const char *to, struct ev *e)
{
	char id[32];

	if (!c)
		return false;
	snprintf(id, sizeof(id), "%s", xt_new_id(c));
	xt_sendf(c, "<iq type='get' id='%s' to='%s'>" PING "</iq>", id, to);
	while (next_ev(c, e, wait_ms)) {
		if (!eq(e->name, "iq"))
			continue;
		if (eq(e->id, id) && (eq(e->type, "result") || eq(e->type, "error")))
			return true;
		if (eq(e->type, "get") && e->ping)
			xt_sendf(c, "<iq type='result' id='%s' to='%s'/>", e->id, e->from);
	}
	return false;
}

static void t_self_ping(void)
{
	const char *in = "self-ping (XEP-0410): an occupant pinging its occupant JID gets a result";
	const char *out = "self-ping (XEP-0410): a non-occupant gets not-acceptable";
	struct ev e;
	bool got;

	if (!need(2, "bob")) {
		xt_report(in, false, "set-up: room1 with bob");
	} else {
		sync_all();
		got = self_ping(m[2], rj("bob"), &e);
		xt_report(in, got && eq(e.type, "result"), "got: %s", got ? e.raw : "nothing");
	}
	leave(5);
	got = self_ping(m[5], rj("bob"), &e);
	xt_report(out, got && eq(e.type, "error") && eq(e.cond, "not-acceptable"), "got: %s",
		  got ? e.raw : "nothing");
}

/* §6.4: the room's identity and features; §6.3: the service lists its public
 * rooms. Asked by a user who is not in the room. */
static void t_room_disco(void)
{
	const char *info = "room disco#info: identity conference/text and the features of a "
			   "public temporary open unmoderated semi-anonymous room";
	const char *items = "disco#items of the MUC service lists room1";
	static const char *const want[] = { NS_MUC, "muc_public", "muc_temporary", "muc_open",
					    "muc_unmoderated", "muc_semianonymous" };
	struct xt_node *n, *q, *ch;
	bool ident = false, all = true, listed = false;

	if (!need(1, "alice") || !m[5]) {
		fail_all("set-up: room1 with alice, m5 online", info, items, NULL);
		return;
	}
	sync_all();
	why_reset();
	n = xt_iq(m[5], "get", rj(NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	q = xt_child(n, XT_NS_DISCO_INFO, "query");
	for (ch = q ? q->children : NULL; ch; ch = ch->next)
		ident |= xt_is(ch, XT_NS_DISCO_INFO, "identity") &&
			 eq(xt_attr(ch, "category"), "conference") && eq(xt_attr(ch, "type"), "text");
	for (unsigned k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		bool has = false;

		for (ch = q ? q->children : NULL; ch; ch = ch->next)
			has |= xt_is(ch, XT_NS_DISCO_INFO, "feature") &&
			       eq(xt_attr(ch, "var"), want[k]);
		if (!has) {
			all = false;
			why_add("no %s; ", want[k]);
		}
	}
	xt_report(info, ident && all, "%s%sgot: %s", why, ident ? "" : "no identity; ",
		  xt_raw(n));
	n = xt_iq(m[5], "get", muc, "<query xmlns='" NS_DISCO_ITEMS "'/>");
	q = xt_child(n, NS_DISCO_ITEMS, "query");
	for (ch = q ? q->children : NULL; ch; ch = ch->next)
		listed |= xt_is(ch, NS_DISCO_ITEMS, "item") && eq(xt_attr(ch, "jid"), rj(NULL));
	xt_report(items, listed, "got: %s", xt_raw(n));
}

/* §7.14: unavailable to the occupant JID; the leaver's copy has 110. A dropped
 * connection: the user's server sends unavailable for it (RFC 6121 §4.6). */
static void t_leave(void)
{
	const char *own = "leave: the leaver gets its own unavailable with 110";
	const char *others = "leave: the others get unavailable from room1/bob";
	const char *drop = "dropped connection: the others get unavailable from room1/dan";
	int rest[] = { 1, 3, 4 };
	bool all = true, got;
	struct ev e;

	if (!need(1, "alice") || !need(2, "bob") || !need(3, "dave") || !need(4, "dan")) {
		fail_all("set-up: room1 with alice, bob, dave and dan", own, others, drop, NULL);
		return;
	}
	sync_all();
	why_reset();
	xt_sendf(m[2], "<presence type='unavailable' to='%s'/>", rj("bob"));
	got = wait_ev(m[2], &e, "presence", "unavailable", rj("bob"));
	nick_of[2][0] = '\0';
	xt_report(own, got && has_code(&e, 110), "got: %s", got ? e.raw : "nothing");
	for (unsigned k = 0; k < sizeof(rest) / sizeof(rest[0]); k++)
		if (!wait_ev(m[rest[k]], &e, "presence", "unavailable", rj("bob"))) {
			all = false;
			why_add("m%d: nothing; ", rest[k]);
		}
	xt_report(others, all, "%s", why);
	why_reset();
	all = true;
	xt_free(m[4]);		/* the socket closes, no </stream:stream> */
	m[4] = NULL;
	nick_of[4][0] = '\0';
	for (int i = 1; i <= 3; i += 2)
		if (!wait_ev(m[i], &e, "presence", "unavailable", rj("dan"))) {
			all = false;
			why_add("m%d: nothing; ", i);
		}
	xt_report(drop, all, "%s", why);
}

/* Glossary "Temporary Room", §7.14: the room goes with its last occupant; a new
 * join then creates it afresh (§10.1.1). */
static void t_destroy(void)
{
	const char *gone = "temporary room: gone with its last occupant (disco#info: "
			   "item-not-found)";
	const char *again = "temporary room: a new join creates it afresh (201, nobody else in)";
	struct xt_node *n;
	struct ev e;
	int others = 0;
	bool left = true, got;

	why_reset();
	for (int i = 1; i <= USERS; i++)
		if (nick_of[i][0] && !leave(i)) {
			left = false;
			why_add("m%d got no unavailable back; ", i);
		}
	if (!m[5]) {
		fail_all("set-up: m5 online", gone, again, NULL);
		return;
	}
	sync_all();
	n = xt_iq(m[5], "get", rj(NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	xt_report(gone, left && n && eq(xt_attr(n, "type"), "error") &&
		  eq(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR), "item-not-found"),
		  "%sgot: %s", why, xt_raw(n));
	send_join(5, "eve");
	got = await_self(5, "eve", &e, &others) && !*e.type;
	if (got)
		CP(nick_of[5], "eve");
	xt_report(again, got && has_code(&e, 201) && has_code(&e, 110) && others == 0,
		  "%d other occupants; got: %s", others, e.raw[0] ? e.raw : "nothing");
	if (got && has_code(&e, 201))
		make_instant(5);
	leave(5);
}

/* ---- room2: discussion history (§7.2.13, §7.2.14), the subject (§7.2.15) ---- */

#define HIST_MAX 24

/* What a joiner of room2 got, up to the subject. */
struct joined {
	bool self, error, subject;	/* the own presence (110); an error; the subject */
	bool early;			/* a history message before the own presence */
	int others;			/* the occupants' presence before the own */
	int nhist;			/* messages with a body (past HIST_MAX not kept) */
	int after;			/* MUC messages after the subject (for a ping's time) */
	struct ev own, subj, hist[HIST_MAX];
};

static struct joined J, J0;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* m[i], out of room2 first, joins it as nick with hist (a <history/> or NULL)
 * and reads until the subject, then a ping round trip more. True when the own
 * presence and the subject came. */
static bool join_hist(int i, const char *nick, const char *hist, struct joined *j)
{
	struct xt_node *n;
	struct ev e;
	char id[64];

	memset(j, 0, sizeof(*j));
	if (!m[i])
		return false;
	leave2(i);
	nback[i] = 0;
	send_join_in(ROOM2, i, nick, hist);
	while (!j->subject && next_ev(m[i], &e, wait_ms)) {
		if (eq(e.name, "presence") && eq(e.from, r2j(nick))) {
			if (eq(e.type, "error")) {
				j->error = true;
				j->own = e;
				break;
			}
			if (!*e.type && has_code(&e, 110)) {
				j->self = true;
				j->own = e;
				CP(nick2_of[i], nick);
			}
		} else if (eq(e.name, "presence") && !*e.type && !j->self) {
			j->others++;
		} else if (eq(e.name, "message") && e.body) {
			j->early |= !j->self;
			if (j->nhist < HIST_MAX)
				j->hist[j->nhist] = e;
			j->nhist++;
		} else if (eq(e.name, "message") && e.subject) {
			j->subject = true;
			j->subj = e;
		}
	}
	CP(id, xt_new_id(m[i]));
	xt_sendf(m[i], "<iq type='get' id='%s' to='%s'>" PING "</iq>", id, host);
	while ((n = xt_read(m[i])) && !eq(xt_attr(n, "id"), id))
		j->after += from_muc(xt_attr(n, "from")) && xt_is(n, XT_NS_CLIENT, "message");
	return j->self && j->subject;
}

/* Whether the history is exactly these groupchat bodies (NULL-terminated). */
static bool hist_is(const struct joined *j, const char *const *want)
{
	int k = 0;

	for (; want[k]; k++)
		if (k >= j->nhist || k >= HIST_MAX || !eq(j->hist[k].type, "groupchat") ||
		    !eq(j->hist[k].text, want[k]))
			return false;
	return k == j->nhist;
}

/* For the diagnostics: what the join brought. */
static const char *joined_desc(const struct joined *j)
{
	static char buf[2048];
	size_t len;

	snprintf(buf, sizeof(buf), "own presence %s, %d occupants before it, %d history "
		 "messages%s [", j->self ? "came" : j->error ? "was an error" : "missing",
		 j->others, j->nhist, j->early ? " (some before the own presence)" : "");
	for (int k = 0; k < j->nhist && k < HIST_MAX; k++) {
		len = strlen(buf);
		snprintf(buf + len, sizeof(buf) - len, "%s%s", k ? ", " : "", j->hist[k].text);
	}
	len = strlen(buf);
	snprintf(buf + len, sizeof(buf) - len, "], subject %s, %d messages after it%s%s",
		 j->subject ? "came" : "missing", j->after, j->error ? ": " : "",
		 j->error ? j->own.raw : "");
	return buf;
}

/* A XEP-0082 UTC date-time ('Z'; fractions allowed), within ten minutes of now. */
static bool stamp_ok(const char *s)
{
	struct tm tm = { 0 };
	int used = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6 || used != 19)
		return false;
	s += used;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if (strcmp(s, "Z") != 0)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return llabs((long long)timegm(&tm) - (long long)time(NULL)) < 600;
}

/* A groupchat from m[i] (in room2 as nick) that came back to m1; false if not. */
static bool say2(int i, const char *nick, const char *body)
{
	struct ev e;

	xt_sendf(m[i], "<message to='%s' type='groupchat'><body>%s</body></message>", r2j(NULL),
		 body);
	return wait_msg(m[1], &e, "groupchat", r2j(nick), body, NULL);
}

/* §7.2.13, §7.2.14: the last messages, after the presence, before the subject;
 * <history/> limits what a joiner gets. m8 joins as late each time. */
static void t_history(void)
{
	const char *order = "history: a joiner gets the room's messages (one, two, three) after "
			    "the occupants' and its own presence, before the subject";
	const char *stamped = "history: each from room2/<the sender's nick>, with <delay xmlns='"
			      NS_DELAY "'/> from room2's bare JID and a UTC stamp";
	const char *two = "history: maxstanzas='2' gets the last two (two, three)";
	const char *zero = "history: maxstanzas='0' gets none";
	const char *nochars = "history: maxchars='0' gets none";
	const char *since = "history: since='2000-01-01T00:00:00Z' gets all of them (one, two, "
			    "three)";
	const char *secs = "history: seconds='1', 2 s after the last message, gets none";
	static const char *const all[] = { "one", "two", "three", NULL };
	static const char *const last2[] = { "two", "three", NULL };
	static const char *const none[] = { NULL };
	static const char *const nicks[] = { "kid", "own", "kid" };
	bool got, ok = true;

	if (!need2(1, "own") || !need2(2, "kid") || !m[8]) {
		fail_all("set-up: room2 with own and kid, m8 online", order, stamped, two, zero,
			 nochars, since, secs, NULL);
		return;
	}
	sync_all();
	if (!say2(2, "kid", "one") || !say2(1, "own", "two") || !say2(2, "kid", "three")) {
		fail_all("set-up: the groupchat messages one, two, three did not come back", order,
			 stamped, two, zero, nochars, since, secs, NULL);
		return;
	}
	got = join_hist(8, "late", NULL, &J);
	xt_report(order, got && !J.early && J.others >= 2 && hist_is(&J, all) && !J.after, "%s",
		  joined_desc(&J));
	why_reset();
	for (int k = 0; k < J.nhist && k < HIST_MAX; k++) {
		const struct ev *h = &J.hist[k];

		if (k >= 3 || !eq(h->from, r2j(nicks[k])) || !h->delay ||
		    !eq(h->delay_from, r2j(NULL)) || !stamp_ok(h->stamp)) {
			ok = false;
			why_add("#%d: %s; ", k, h->raw);
		}
	}
	xt_report(stamped, got && J.nhist == 3 && ok, "%d history messages; %s", J.nhist, why);
	got = join_hist(8, "late", "<history maxstanzas='2'/>", &J);
	xt_report(two, got && hist_is(&J, last2) && !J.after, "%s", joined_desc(&J));
	got = join_hist(8, "late", "<history maxstanzas='0'/>", &J);
	xt_report(zero, got && hist_is(&J, none) && !J.after, "%s", joined_desc(&J));
	got = join_hist(8, "late", "<history maxchars='0'/>", &J);
	xt_report(nochars, got && hist_is(&J, none) && !J.after, "%s", joined_desc(&J));
	got = join_hist(8, "late", "<history since='2000-01-01T00:00:00Z'/>", &J);
	xt_report(since, got && hist_is(&J, all) && !J.after, "%s", joined_desc(&J));
	sleep_ms(2100);
	got = join_hist(8, "late", "<history seconds='1'/>", &J);
	xt_report(secs, got && hist_is(&J, none) && !J.after, "%s", joined_desc(&J));
}

/* §7.2.13: subject changes are not history; §7.2.15: the subject a joiner
 * gets has a <delay/> from the room. */
static void t_subject_delay(void)
{
	const char *nohist = "subject: a change is not history (a joiner then gets the same "
			     "history, the new subject, nothing after it)";
	const char *delayed = "subject: on join, Plans (from room2/own or room2) with <delay/> "
			      "from room2's bare JID and a UTC stamp";
	struct ev e;
	bool same, got;

	if (!need2(1, "own") || !m[8]) {
		fail_all("set-up: room2 with own, m8 online", nohist, delayed, NULL);
		return;
	}
	sync_all();
	if (!join_hist(8, "late", NULL, &J0)) {
		fail_all("set-up: m8's join before the subject change", nohist, delayed, NULL);
		printf("# %s\n", joined_desc(&J0));
		return;
	}
	xt_sendf(m[1], "<message to='%s' type='groupchat'><subject>Plans</subject></message>",
		 r2j(NULL));
	if (!wait_msg(m[1], &e, "groupchat", NULL, NULL, "Plans")) {
		fail_all("set-up: the owner's subject change did not come back", nohist, delayed,
			 NULL);
		return;
	}
	got = join_hist(8, "late", NULL, &J);
	same = J.nhist == J0.nhist;
	for (int k = 0; same && k < J.nhist && k < HIST_MAX; k++)
		same = eq(J.hist[k].text, J0.hist[k].text);
	xt_report(nohist, got && same && !J.after && eq(J.subj.subj, "Plans"), "before: %d "
		  "history messages; after: %s; subject: %s", J0.nhist, joined_desc(&J),
		  J.subj.raw[0] ? J.subj.raw : "none");
	xt_report(delayed, got && eq(J.subj.subj, "Plans") && !J.subj.body &&
		  eq(J.subj.type, "groupchat") &&
		  (eq(J.subj.from, r2j("own")) || eq(J.subj.from, r2j(NULL))) && J.subj.delay &&
		  eq(J.subj.delay_from, r2j(NULL)) && stamp_ok(J.subj.stamp), "subject: %s",
		  J.subj.raw[0] ? J.subj.raw : "none");
}

/* Configuration option history-length (20 by default): only the last ones. */
static void t_history_length(void)
{
	const char *cap = "history: 20 kept (history-length's default): after c1 ... c22 a "
			  "joiner gets c3 ... c22";
	static char want_buf[20][8];
	const char *want[21];
	struct ev e;
	char body[16];
	bool got;

	if (!need2(1, "own") || !m[8]) {
		fail_all("set-up: room2 with own, m8 online", cap, NULL);
		return;
	}
	sync_all();
	for (int k = 1; k <= 22; k++) {
		snprintf(body, sizeof(body), "c%d", k);
		xt_sendf(m[1], "<message to='%s' type='groupchat'><body>%s</body></message>",
			 r2j(NULL), body);
	}
	if (!wait_msg(m[1], &e, "groupchat", r2j("own"), "c22", NULL)) {
		fail_all("set-up: c22 did not come back", cap, NULL);
		return;
	}
	for (int k = 0; k < 20; k++) {
		snprintf(want_buf[k], sizeof(want_buf[k]), "c%d", k + 3);
		want[k] = want_buf[k];
	}
	want[20] = NULL;
	got = join_hist(8, "late", NULL, &J);
	xt_report(cap, got && hist_is(&J, want) && !J.after, "%s", joined_desc(&J));
}

/* ---- room2: moderation (§8), bans (§9.1, §9.2), admins (§10.6, §10.7) ---- */

/* Whether every occupant of room2 but `except` gets a presence of this type
 * from `from` that ok() accepts; why says who did not. */
static bool all_get2(int except, const char *type, const char *from,
		     bool (*ok)(const struct ev *))
{
	bool all = true;
	struct ev e;

	for (int j = 1; j <= USERS; j++) {
		if (j == except || !nick2_of[j][0])
			continue;
		if (!wait_ev(m[j], &e, "presence", type, from)) {
			all = false;
			why_add("m%d: nothing; ", j);
		} else if (!ok(&e)) {
			all = false;
			why_add("m%d: %s; ", j, e.raw);
		}
	}
	return all;
}

static bool kicked_other(const struct ev *e) { return has_code(e, 307) && !has_code(e, 110); }
static bool banned_other(const struct ev *e) { return has_code(e, 301) && !has_code(e, 110); }
static bool is_visitor(const struct ev *e) { return e->item && eq(e->role, "visitor"); }
static bool is_participant(const struct ev *e) { return e->item && eq(e->role, "participant"); }

static bool is_admin_mod(const struct ev *e)
{
	return e->item && eq(e->aff, "admin") && eq(e->role, "moderator");
}

static bool is_none_part(const struct ev *e)
{
	return e->item && eq(e->aff, "none") && eq(e->role, "participant");
}

/* §8.2: a moderator kicks by nick (role none); only moderators may; §8.2 and
 * §8.4: the owner is not kicked. */
static void t_kick(void)
{
	const char *denied = "kick: a participant's kick gets forbidden";
	const char *done = "kick: the owner's kick of room2/kid (with a reason) gets a result";
	const char *self = "kick: the kicked gets unavailable: role none, <reason>bye</reason> in "
			   "the item, 307 and 110";
	const char *rest = "kick: the other occupants get it with 307, without 110";
	const char *owner = "kick: the owner kicking itself gets conflict (§8.2), and stays";
	struct ev e, res;
	bool got, stays;

	if (!need2(1, "own") || !need2(2, "kid") || !need2(7, "wit")) {
		fail_all("set-up: room2 with own, kid and wit", denied, done, self, rest, owner,
			 NULL);
		return;
	}
	sync_all();
	got = admin_set(7, "<item nick='kid' role='none'/>", &res);
	xt_report(denied, got && is_error(&res, "forbidden"), "got: %s",
		  got ? res.raw : "nothing");
	if (got && is_result(&res)) {	/* kid was kicked: in again, for the rest */
		nick2_of[2][0] = '\0';
		if (!need2(2, "kid")) {
			fail_all("set-up: kid back in room2", done, self, rest, owner, NULL);
			return;
		}
		sync_all();
	}
	got = admin_set(1, "<item nick='kid' role='none'><reason>bye</reason></item>", &res);
	xt_report(done, got && is_result(&res), "got: %s", got ? res.raw : "nothing");
	got = wait_ev(m[2], &e, "presence", "unavailable", r2j("kid"));
	if (got)
		nick2_of[2][0] = '\0';
	xt_report(self, got && e.item && eq(e.role, "none") && eq(e.reason, "bye") &&
		  has_code(&e, 307) && has_code(&e, 110), "got: %s", got ? e.raw : "nothing");
	why_reset();
	xt_report(rest, all_get2(2, "unavailable", r2j("kid"), kicked_other), "%s", why);
	sync_all();
	got = admin_set(1, "<item nick='own' role='none'/>", &res);
	stays = still_in2(1, "own");
	if (!stays)
		nick2_of[1][0] = '\0';
	xt_report(owner, got && is_error(&res, "conflict") && stays, "got: %s; the owner %s",
		  got ? res.raw : "nothing", stays ? "stays" : "is no longer in room2");
}

/* §8.4, §8.3: a moderator revokes voice (role visitor) and grants it again. */
static void t_voice(void)
{
	const char *mute = "voice: a moderator's role='visitor' for room2/voc gets a result";
	const char *seen = "voice: every occupant gets room2/voc's presence with role visitor";
	const char *quiet = "voice: the visitor's groupchat gets forbidden, and is not reflected";
	const char *back = "voice: role='participant' gets a result, every occupant gets "
			   "room2/voc's presence with role participant";
	const char *talk = "voice: its groupchat then reaches the others again";
	struct ev e, res;
	bool got, heard, every;

	if (!need2(1, "own") || !need2(3, "voc") || !need2(7, "wit")) {
		fail_all("set-up: room2 with own, voc and wit", mute, seen, quiet, back, talk,
			 NULL);
		return;
	}
	sync_all();
	got = admin_set(1, "<item nick='voc' role='visitor'/>", &res);
	xt_report(mute, got && is_result(&res), "got: %s", got ? res.raw : "nothing");
	why_reset();
	xt_report(seen, all_get2(0, "", r2j("voc"), is_visitor), "%s", why);
	xt_sendf(m[3], "<message to='%s' type='groupchat'><body>muted?</body></message>",
		 r2j(NULL));
	got = wait_ev(m[3], &e, "message", "error", NULL);
	heard = body_came(1, "muted?") || body_came(7, "muted?");
	xt_report(quiet, got && eq(e.cond, "forbidden") && !heard, "m3 got: %s%s",
		  got ? e.raw : "nothing", heard ? "; and it was reflected" : "");
	sync_all();
	got = admin_set(1, "<item nick='voc' role='participant'/>", &res);
	why_reset();
	every = all_get2(0, "", r2j("voc"), is_participant);
	xt_report(back, got && is_result(&res) && every, "got: %s; %s",
		  got ? res.raw : "nothing", why);
	xt_sendf(m[3], "<message to='%s' type='groupchat'><body>back again</body></message>",
		 r2j(NULL));
	why_reset();
	heard = true;
	for (int j = 1; j <= 7; j += 6)
		if (!wait_msg(m[j], &e, "groupchat", r2j("voc"), "back again", NULL)) {
			heard = false;
			why_add("m%d: nothing; ", j);
		}
	xt_report(talk, heard, "%s", why);
}

/* §9.1: an owner bans by bare JID (affiliation outcast); §7.2.7: no way back in. */
static void t_ban(void)
{
	const char *ban = "ban: the owner's affiliation='outcast' for m6 (in room2 as spam) gets "
			  "a result";
	const char *self = "ban: the banned gets unavailable: affiliation outcast, role none, "
			   "301 and 110";
	const char *rest = "ban: the other occupants get it with 301, without 110";
	const char *again = "ban: the banned user joining again gets a presence error forbidden";
	char item[512];
	struct ev e, res;
	bool got;

	if (!need2(1, "own") || !need2(6, "spam") || !need2(7, "wit")) {
		fail_all("set-up: room2 with own, spam and wit", ban, self, rest, again, NULL);
		return;
	}
	sync_all();
	snprintf(item, sizeof(item), "<item affiliation='outcast' jid='%s'><reason>spam</reason>"
		 "</item>", bare_jid(6));
	got = admin_set(1, item, &res);
	xt_report(ban, got && is_result(&res), "got: %s", got ? res.raw : "nothing");
	got = wait_ev(m[6], &e, "presence", "unavailable", r2j("spam"));
	if (got)
		nick2_of[6][0] = '\0';
	xt_report(self, got && e.item && eq(e.aff, "outcast") && eq(e.role, "none") &&
		  has_code(&e, 301) && has_code(&e, 110), "got: %s", got ? e.raw : "nothing");
	why_reset();
	xt_report(rest, all_get2(6, "unavailable", r2j("spam"), banned_other), "%s", why);
	if (nick2_of[6][0])
		leave2(6);
	send_join_in(ROOM2, 6, "spam", NULL);
	got = await_self_in(ROOM2, 6, "spam", &e, NULL);
	xt_report(again, got && eq(e.type, "error") && eq(e.cond, "forbidden"), "got: %s",
		  got ? e.raw : "nothing");
	if (got && !*e.type) {	/* it got in: out again */
		CP(nick2_of[6], "spam");
		leave2(6);
	}
}

/* §9.2: the ban list, to admins and owners only (§9 opening: forbidden). */
static void t_ban_list(void)
{
	const char *list = "ban list: the owner's get of affiliation outcast lists m6's bare JID "
			   "(affiliation outcast, jid)";
	const char *denied = "ban list: a participant's get gets forbidden";
	const char *get = "<query xmlns='" NS_MUC_ADMIN "'><item affiliation='outcast'/></query>";
	struct xt_node *n, *q, *ch;
	char item[512];
	struct ev res;
	bool listed = false;

	if (!need2(1, "own") || !need2(7, "wit")) {
		fail_all("set-up: room2 with own and wit", list, denied, NULL);
		return;
	}
	sync_all();
	/* Banned already unless t_ban failed: the same again changes nothing. */
	snprintf(item, sizeof(item), "<item affiliation='outcast' jid='%s'/>", bare_jid(6));
	if (admin_set(1, item, &res) && is_result(&res))
		nick2_of[6][0] = '\0';
	else
		printf("# set-up: banning m6 got: %s\n", res.raw[0] ? res.raw : "nothing");
	sync_all();
	n = xt_iq(m[1], "get", r2j(NULL), get);
	q = xt_child(n, NS_MUC_ADMIN, "query");
	for (ch = q ? q->children : NULL; ch; ch = ch->next)
		listed |= xt_is(ch, NS_MUC_ADMIN, "item") && eq(xt_attr(ch, "affiliation"),
								"outcast") &&
			  eq(xt_attr(ch, "jid"), bare_jid(6));
	xt_report(list, n && eq(xt_attr(n, "type"), "result") && listed, "got: %s", xt_raw(n));
	n = xt_iq(m[7], "get", r2j(NULL), get);
	xt_report(denied, n && eq(xt_attr(n, "type"), "error") &&
		  eq(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR), "forbidden"), "got: %s",
		  xt_raw(n));
}

/* §10.6, §10.7: the owner makes an occupant admin (so moderator) and takes it
 * back; an admin may not act on the owner (§8.2, §9.1: not-allowed) nor make
 * admins (§10 opening: forbidden). */
static void t_admin(void)
{
	const char *grant = "admin: the owner's affiliation='admin' for m5 gets a result, every "
			    "occupant gets room2/adm as admin, moderator";
	const char *ban_owner = "admin: an admin banning the owner gets not-allowed, the owner "
				"stays";
	const char *kick_owner = "kick: an admin kicking the owner gets not-allowed, the owner "
				 "stays";
	const char *no_grant = "admin: an admin granting admin gets forbidden";
	const char *revoke = "admin: affiliation='none' gets a result, every occupant gets "
			     "room2/adm as none, participant";
	char item[512];
	struct ev res;
	bool got, every, stays;

	if (!need2(1, "own") || !need2(5, "adm") || !need2(7, "wit")) {
		fail_all("set-up: room2 with own, adm and wit", grant, ban_owner, kick_owner,
			 no_grant, revoke, NULL);
		return;
	}
	sync_all();
	snprintf(item, sizeof(item), "<item affiliation='admin' jid='%s'/>", bare_jid(5));
	got = admin_set(1, item, &res) && is_result(&res);
	why_reset();
	every = all_get2(0, "", r2j("adm"), is_admin_mod);
	xt_report(grant, got && every, "got: %s; %s", res.raw[0] ? res.raw : "nothing", why);
	if (!got) {
		fail_all("set-up: m5 is not admin", ban_owner, kick_owner, no_grant, NULL);
	} else {
		sync_all();
		snprintf(item, sizeof(item), "<item affiliation='outcast' jid='%s'/>", bare_jid(1));
		got = admin_set(5, item, &res);
		stays = still_in2(1, "own");
		xt_report(ban_owner, got && is_error(&res, "not-allowed") && stays,
			  "got: %s; the owner %s", got ? res.raw : "nothing",
			  stays ? "stays" : "is no longer in room2");
		got = admin_set(5, "<item nick='own' role='none'/>", &res);
		stays = still_in2(1, "own");
		xt_report(kick_owner, got && is_error(&res, "not-allowed") && stays,
			  "got: %s; the owner %s", got ? res.raw : "nothing",
			  stays ? "stays" : "is no longer in room2");
		if (!stays)
			nick2_of[1][0] = '\0';
		snprintf(item, sizeof(item), "<item affiliation='admin' jid='%s'/>", bare_jid(7));
		got = admin_set(5, item, &res);
		xt_report(no_grant, got && is_error(&res, "forbidden"), "got: %s",
			  got ? res.raw : "nothing");
		if (got && is_result(&res)) {	/* undone, for the cases below */
			snprintf(item, sizeof(item), "<item affiliation='none' jid='%s'/>",
				 bare_jid(7));
			admin_set(1, item, &res);
		}
	}
	if (!need2(1, "own") || !need2(5, "adm")) {
		xt_report(revoke, false, "set-up: room2 with own and adm");
		return;
	}
	sync_all();
	snprintf(item, sizeof(item), "<item affiliation='none' jid='%s'/>", bare_jid(5));
	got = admin_set(1, item, &res);
	why_reset();
	every = all_get2(0, "", r2j("adm"), is_none_part);
	xt_report(revoke, got && is_result(&res) && every, "got: %s; %s",
		  got ? res.raw : "nothing", why);
}

/* ---- room3: configuration (§10.2), what it does to entering (§7.2), destroying (§10.9) ---- */

#define ROOM3		"room3"
#define NS_XDATA	"jabber:x:data"
#define NS_ROOMCONFIG	NS_MUC "#roomconfig"
#define CFG		"muc#roomconfig_"

static char nick3_of[USERS + 1][64];	/* m[i]'s nick in room3, "" when it is not in */

static const char *r3j(const char *nick) { return rjr(ROOM3, nick); }
static bool leave3(int i) { return leave_in(ROOM3, nick3_of, i); }
static const char *raw_or(const struct ev *e) { return e->raw[0] ? e->raw : "nothing"; }

/* room3 is m1's, as "boss": it goes in first. */
static bool need3(int i, const char *nick)
{
	if (i != 1 && !need_in(ROOM3, nick3_of, 1, "boss"))
		return false;
	return need_in(ROOM3, nick3_of, i, nick);
}

/* Everyone out of room3 but the owner and those in keep (bit i for m[i]). */
static void only_boss3(unsigned keep)
{
	for (int j = 2; j <= USERS; j++)
		if (!(keep & 1u << j))
			leave3(j);
}

/* m[i], out of room3 first, enters as nick with x inside the MUC <x/> (a
 * <password/>, or NULL); the answer (the own presence or an error) in *e.
 * True when it entered. */
static bool join3(int i, const char *nick, const char *x, struct ev *e)
{
	memset(e, 0, sizeof(*e));
	if (!m[i])
		return false;
	leave3(i);
	send_join_in(ROOM3, i, nick, x);
	if (!await_self_in(ROOM3, i, nick, e, NULL) || eq(e->type, "error"))
		return false;
	CP(nick3_of[i], nick);
	return true;
}

/* A muc#admin set of one item, from m[i] to room3. */
static bool admin_set3(int i, const char *item, struct ev *res)
{
	char q[1024];

	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_ADMIN "'>%s</query>", item);
	return muc_iq(i, r3j(NULL), "set", q, res);
}

/* Set-up: m[j]'s affiliation with room3 (its bare JID), set by the owner. */
static bool affiliate3(int j, const char *aff)
{
	char item[512];
	struct ev res;

	snprintf(item, sizeof(item), "<item affiliation='%s' jid='%s'/>", aff, bare_jid(j));
	if (admin_set3(1, item, &res) && is_result(&res))
		return true;
	printf("# set-up: affiliation %s for m%d in room3 got: %s\n", aff, j, raw_or(&res));
	return false;
}

/* What the cases below start from, as muc#roomconfig_<name> fields. */
static const char *const base3[][2] = {
	{ "publicroom", "1" }, { "membersonly", "0" }, { "moderatedroom", "0" },
	{ "passwordprotectedroom", "0" }, { "roomsecret", "" }, { "whois", "moderators" },
	{ "changesubject", "0" },
};

static void add_field(char *q, size_t size, const char *name, const char *value)
{
	size_t len = strlen(q);
	char esc[512];

	snprintf(q + len, size - len, "<field var='" CFG "%s'><value>%s</value></field>", name,
		 xt_escape(value, esc, sizeof(esc)));
}

/* §10.2: m[i] submits room3's configuration: FORM_TYPE, base3's fields when
 * base, and the (name, value) pairs from first on up to a NULL (names without
 * the muc#roomconfig_ prefix; a pair replaces base3's field of that name).
 * True with the answer in *res. */
static bool vsubmit3(int i, bool base, struct ev *res, const char *first, va_list ap)
{
	const char *over[16][2];
	const char *name = first;
	int nover = 0;
	char q[4096];
	size_t len;

	while (name && nover < 16) {
		over[nover][0] = name;
		over[nover++][1] = va_arg(ap, const char *);
		name = va_arg(ap, const char *);
	}
	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_XDATA "' "
		 "type='submit'><field var='FORM_TYPE'><value>" NS_ROOMCONFIG "</value></field>");
	for (unsigned k = 0; base && k < sizeof(base3) / sizeof(base3[0]); k++) {
		bool replaced = false;

		for (int o = 0; o < nover; o++)
			replaced |= eq(over[o][0], base3[k][0]);
		if (!replaced)
			add_field(q, sizeof(q), base3[k][0], base3[k][1]);
	}
	for (int o = 0; o < nover; o++)
		add_field(q, sizeof(q), over[o][0], over[o][1]);
	len = strlen(q);
	snprintf(q + len, sizeof(q) - len, "</x></query>");
	return muc_iq(i, r3j(NULL), "set", q, res);
}

static bool __attribute__((sentinel)) submit3(int i, bool base, struct ev *res,
					      const char *first, ...)
{
	va_list ap;
	bool got;

	va_start(ap, first);
	got = vsubmit3(i, base, res, first, ap);
	va_end(ap);
	return got;
}

/* Set-up: room3 with its owner in, configured as base3 and the pairs. */
static bool __attribute__((sentinel)) config3(const char *first, ...)
{
	struct ev res;
	va_list ap;
	bool got;

	if (!need3(1, "boss"))
		return false;
	va_start(ap, first);
	got = vsubmit3(1, true, &res, first, ap);
	va_end(ap);
	if (got && is_result(&res))
		return true;
	printf("# set-up: configuring room3 (%s...) got: %s\n", first, raw_or(&res));
	return false;
}

/* Set-up: room3 with its owner in, configured as base3. */
static bool reset3(void)
{
	struct ev res;

	if (!need3(1, "boss"))
		return false;
	if (submit3(1, true, &res, NULL, NULL) && is_result(&res))
		return true;
	printf("# set-up: configuring room3 as base3 got: %s\n", raw_or(&res));
	return false;
}

/* A jabber:x:data form as received, copied out. */
struct field3 {
	char var[80], type[24], val[160];
	char opts[160];			/* its <option/> values, " a b " */
};

struct form3 {
	bool result;			/* an IQ result with a form in it */
	char xtype[16], cond[48];	/* the form's type; the error condition */
	int n;
	struct field3 f[48];
	char raw[4000];
};

static struct form3 F;

/* §10.2: room3's configuration form, as m[i] gets it. */
static bool get_form3(int i, struct form3 *f)
{
	struct xt_node *n, *x, *v;

	memset(f, 0, sizeof(*f));
	if (!m[i])
		return false;
	n = xt_iq(m[i], "get", r3j(NULL), "<query xmlns='" NS_MUC_OWNER "'/>");
	CP(f->raw, xt_raw(n));
	if (n && eq(xt_attr(n, "type"), "error"))
		CP(f->cond, xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR));
	x = xt_child(xt_child(n, NS_MUC_OWNER, "query"), NS_XDATA, "x");
	f->result = n && eq(xt_attr(n, "type"), "result") && x;
	CP(f->xtype, xt_attr(x, "type"));
	for (struct xt_node *ch = x ? x->children : NULL; ch && f->n < 48; ch = ch->next) {
		struct field3 *fl = &f->f[f->n];

		if (!xt_is(ch, NS_XDATA, "field"))
			continue;
		f->n++;
		CP(fl->var, xt_attr(ch, "var"));
		CP(fl->type, xt_attr(ch, "type"));
		v = xt_child(ch, NS_XDATA, "value");
		CP(fl->val, v ? v->text : NULL);
		CP(fl->opts, " ");
		for (struct xt_node *o = ch->children; o; o = o->next) {
			size_t len = strlen(fl->opts);

			if (xt_is(o, NS_XDATA, "option") && (v = xt_child(o, NS_XDATA, "value")))
				snprintf(fl->opts + len, sizeof(fl->opts) - len, "%s ",
					 v->text ? v->text : "");
		}
	}
	return f->result;
}

/* The field var (muc#roomconfig_name when name has no '#' or '_'), or NULL. */
static const struct field3 *fld3(const struct form3 *f, const char *name)
{
	char var[96];

	snprintf(var, sizeof(var), "%s%s", strpbrk(name, "#_") ? "" : CFG, name);
	for (int k = 0; k < f->n; k++)
		if (eq(f->f[k].var, var))
			return &f->f[k];
	return NULL;
}

/* Its value ("" for a field with none; NULL for no such field). */
static const char *val3(const struct form3 *f, const char *name)
{
	const struct field3 *fl = fld3(f, name);

	return fl ? fl->val : NULL;
}

/* XEP-0004 §3.3 booleans. */
static bool is_true(const char *v) { return eq(v, "1") || eq(v, "true"); }
static bool is_false(const char *v) { return eq(v, "0") || eq(v, "false"); }

/* A groupchat from room3's bare JID with this muc#user status code (§10.2.1). */
static bool code_msg3(int i, int code, struct ev *e)
{
	long long end = now_ms() + wait_ms;

	while (now_ms() < end && wait_ev(m[i], e, "message", "groupchat", r3j(NULL)))
		if (has_code(e, code))
			return true;
	return false;
}

/* Whether every occupant of room3 gets it; why says who did not. */
static bool all_code3(int code)
{
	bool all = true;
	struct ev e;

	for (int j = 1; j <= USERS; j++)
		if (nick3_of[j][0] && !code_msg3(j, code, &e)) {
			all = false;
			why_add("m%d: no %d (last: %s); ", j, code, raw_or(&e));
		}
	return all;
}

static bool has_feature(const struct xt_node *q, const char *var)
{
	for (const struct xt_node *ch = q ? q->children : NULL; ch; ch = ch->next)
		if (xt_is(ch, XT_NS_DISCO_INFO, "feature") && eq(xt_attr(ch, "var"), var))
			return true;
	return false;
}

/* room3's disco#info (as m1) has each feature of yes and none of no; why says
 * what is amiss. */
static bool features3(const char *const *yes, const char *const *no)
{
	struct xt_node *n, *q;
	bool ok = true;

	n = xt_iq(m[1], "get", r3j(NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	q = xt_child(n, XT_NS_DISCO_INFO, "query");
	for (; *yes; yes++)
		if (!has_feature(q, *yes)) {
			ok = false;
			why_add("no %s; ", *yes);
		}
	for (; *no; no++)
		if (has_feature(q, *no)) {
			ok = false;
			why_add("%s too; ", *no);
		}
	if (!ok || !q)
		why_add("got: %s", xt_raw(n));
	return ok && q;
}

/* §10.2: the owner gets the configuration form; others are forbidden. */
static void t_config_form(void)
{
	const char *form = "config: the owner's muc#owner get gets a form (type form, hidden "
			   "FORM_TYPE " NS_ROOMCONFIG ")";
	const char *fields = "config: the form has roomname, roomdesc, publicroom, membersonly, "
			     "moderatedroom, passwordprotectedroom, roomsecret, maxusers, whois, "
			     "changesubject, historylength";
	const char *whois = "config: its whois field offers anyone and moderators";
	const char *denied = "config: a participant's get gets forbidden";
	static const char *const want[] = { "roomname", "roomdesc", "publicroom", "membersonly",
					    "moderatedroom", "passwordprotectedroom", "roomsecret",
					    "maxusers", "whois", "changesubject",
					    "historylength" };
	const struct field3 *ft, *w;
	bool got, all = true;

	if (!need3(1, "boss") || !need3(7, "pat")) {
		fail_all("set-up: room3 with boss and pat", form, fields, whois, denied, NULL);
		return;
	}
	sync_all();
	got = get_form3(1, &F);
	ft = fld3(&F, "FORM_TYPE");
	xt_report(form, got && eq(F.xtype, "form") && ft && eq(ft->type, "hidden") &&
		  eq(ft->val, NS_ROOMCONFIG), "got: %s", F.raw);
	why_reset();
	for (unsigned k = 0; k < sizeof(want) / sizeof(want[0]); k++)
		if (!fld3(&F, want[k])) {
			all = false;
			why_add("no " CFG "%s; ", want[k]);
		}
	xt_report(fields, got && all, "%sgot: %s", why, F.raw);
	w = fld3(&F, "whois");
	xt_report(whois, w && strstr(w->opts, " anyone ") && strstr(w->opts, " moderators "),
		  "whois field: %s", w ? w->opts : "none");
	got = get_form3(7, &F);
	xt_report(denied, !got && eq(F.cond, "forbidden"), "got: %s", F.raw);
}

/* §10.2, §10.2.1: a submitted form changes the room, the occupants are told
 * (104) and disco#info shows the name (§6.4); a bad value changes nothing. */
static void t_config_submit(void)
{
	const char *done = "config: the owner's submit of FORM_TYPE, roomname and roomdesc only "
			   "gets a result";
	const char *told = "config: every occupant gets a groupchat from room3's bare JID with "
			   "muc#user status 104";
	const char *shown = "config: a new get shows roomname 'Boss Room', roomdesc 'Where the "
			    "boss is'";
	const char *named = "config: room3's disco#info identity conference/text has "
			    "name='Boss Room'";
	const char *bad = "config: maxusers='abc' (with roomname Changed) gets bad-request or "
			  "not-acceptable";
	const char *same = "config: ... and changes nothing (roomname, maxusers as before)";
	char name[160], max[160];
	struct xt_node *n, *q, *ch;
	struct ev res;
	bool got, ident = false;

	if (!need3(1, "boss") || !need3(7, "pat")) {
		fail_all("set-up: room3 with boss and pat", done, told, shown, named, bad, same,
			 NULL);
		return;
	}
	sync_all();
	got = submit3(1, false, &res, "roomname", "Boss Room", "roomdesc", "Where the boss is",
		      NULL);
	xt_report(done, got && is_result(&res), "got: %s", raw_or(&res));
	why_reset();
	xt_report(told, all_code3(104), "%s", why);
	sync_all();
	got = get_form3(1, &F);
	xt_report(shown, got && eq(val3(&F, "roomname"), "Boss Room") &&
		  eq(val3(&F, "roomdesc"), "Where the boss is"), "got: %s", F.raw);
	CP(name, val3(&F, "roomname"));
	CP(max, val3(&F, "maxusers"));
	n = xt_iq(m[1], "get", r3j(NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	q = xt_child(n, XT_NS_DISCO_INFO, "query");
	for (ch = q ? q->children : NULL; ch; ch = ch->next)
		ident |= xt_is(ch, XT_NS_DISCO_INFO, "identity") &&
			 eq(xt_attr(ch, "category"), "conference") &&
			 eq(xt_attr(ch, "type"), "text") && eq(xt_attr(ch, "name"), "Boss Room");
	xt_report(named, ident, "got: %s", xt_raw(n));
	got = submit3(1, false, &res, "roomname", "Changed", "maxusers", "abc", NULL);
	xt_report(bad, got && (is_error(&res, "bad-request") || is_error(&res, "not-acceptable")),
		  "got: %s", raw_or(&res));
	sync_all();
	got = get_form3(1, &F);
	xt_report(same, got && eq(val3(&F, "roomname"), name) && eq(val3(&F, "maxusers"), max),
		  "before: roomname '%s', maxusers '%s'; got: %s", name, max, F.raw);
}

/* §10.2, §6.4: the settings show in the form and in the room's disco#info
 * features. Only the owner is in (members-only would remove the others). */
static void t_config_features(void)
{
	const char *closed = "config: publicroom 0, membersonly 1, moderatedroom 1, "
			     "passwordprotectedroom 1 (roomsecret s3cret), whois anyone: a result, "
			     "and a new get shows them";
	const char *on = "config: then room3's disco#info has muc_hidden, muc_membersonly, "
			 "muc_moderated, muc_passwordprotected, muc_nonanonymous, and none of "
			 "their opposites";
	const char *off = "config: back to publicroom 1, membersonly 0, moderatedroom 0, "
			  "passwordprotectedroom 0, whois moderators: muc_public, muc_open, "
			  "muc_unmoderated, muc_unsecured, muc_semianonymous, none of the others";
	static const char *const closed_f[] = { "muc_hidden", "muc_membersonly", "muc_moderated",
						"muc_passwordprotected", "muc_nonanonymous",
						NULL };
	static const char *const open_f[] = { "muc_public", "muc_open", "muc_unmoderated",
					      "muc_unsecured", "muc_semianonymous", NULL };
	struct ev res;
	bool got;

	if (!need3(1, "boss")) {
		fail_all("set-up: room3 with boss", closed, on, off, NULL);
		return;
	}
	only_boss3(0);
	sync_all();
	got = submit3(1, true, &res, "publicroom", "0", "membersonly", "1", "moderatedroom", "1",
		      "passwordprotectedroom", "1", "roomsecret", "s3cret", "whois", "anyone",
		      NULL) && is_result(&res);
	sync_all();
	xt_report(closed, got && get_form3(1, &F) && is_false(val3(&F, "publicroom")) &&
		  is_true(val3(&F, "membersonly")) && is_true(val3(&F, "moderatedroom")) &&
		  is_true(val3(&F, "passwordprotectedroom")) && eq(val3(&F, "whois"), "anyone"),
		  "submit got: %s; get got: %s", raw_or(&res), F.raw);
	why_reset();
	xt_report(on, got && features3(closed_f, open_f), "%s", why);
	got = reset3();
	sync_all();
	why_reset();
	xt_report(off, got && features3(open_f, closed_f), "%s", why);
}

/* §7.2.6: a password-protected room wants the password in the MUC <x/>;
 * §10.1.3: not a blank one. */
static void t_password(void)
{
	const char *blank = "password: passwordprotectedroom 1 with an empty roomsecret gets "
			    "not-acceptable (§10.1.3)";
	const char *none = "password: with passwordprotectedroom 1, roomsecret s3cret, a join "
			   "without <password/> gets presence error not-authorized";
	const char *wrong = "password: a join with <password>wrong</password> gets "
			    "not-authorized";
	const char *right = "password: a join with <password>s3cret</password> enters (110)";
	struct ev e, res;
	bool got;

	if (!need3(1, "boss") || !m[6]) {
		fail_all("set-up: room3 with boss, m6 online", blank, none, wrong, right, NULL);
		return;
	}
	sync_all();
	got = submit3(1, true, &res, "passwordprotectedroom", "1", "roomsecret", "", NULL);
	xt_report(blank, got && is_error(&res, "not-acceptable"), "got: %s", raw_or(&res));
	if (!config3("passwordprotectedroom", "1", "roomsecret", "s3cret", NULL)) {
		fail_all("set-up: room3 password-protected", none, wrong, right, NULL);
		return;
	}
	sync_all();
	got = join3(6, "six", NULL, &e);
	xt_report(none, !got && eq(e.type, "error") && eq(e.cond, "not-authorized"), "got: %s",
		  raw_or(&e));
	got = join3(6, "six", "<password>wrong</password>", &e);
	xt_report(wrong, !got && eq(e.type, "error") && eq(e.cond, "not-authorized"), "got: %s",
		  raw_or(&e));
	got = join3(6, "six", "<password>s3cret</password>", &e);
	xt_report(right, got && has_code(&e, 110), "got: %s", raw_or(&e));
	leave3(6);
	reset3();
}

/* §7.2.5: members only; §9.3: the owner grants membership; §10.2: switching it
 * on removes the non-members (322). */
static void t_members_only(void)
{
	const char *out = "members-only: switching it on removes the non-member room3/pat: "
			  "unavailable with 322 to it (and 110) and to the owner (§10.2)";
	const char *refused = "members-only: a non-member's join gets presence error "
			      "registration-required";
	const char *grant = "members-only: the owner's affiliation='member' for m8's bare JID "
			    "gets a result";
	const char *enters = "members-only: m8 then enters (110, affiliation member)";
	char item[512];
	struct ev e, o, res;
	bool got, got1;

	if (!need3(1, "boss") || !need3(7, "pat") || !m[8]) {
		fail_all("set-up: room3 with boss and pat, m8 online", out, refused, grant, enters,
			 NULL);
		return;
	}
	leave3(8);
	affiliate3(8, "none");
	sync_all();
	if (!config3("membersonly", "1", NULL)) {
		fail_all("set-up: room3 members-only", out, refused, grant, enters, NULL);
		return;
	}
	got = wait_ev(m[7], &e, "presence", "unavailable", r3j("pat"));
	if (got)
		nick3_of[7][0] = '\0';
	got1 = wait_ev(m[1], &o, "presence", "unavailable", r3j("pat"));
	xt_report(out, got && has_code(&e, 322) && has_code(&e, 110) && got1 &&
		  has_code(&o, 322) && !has_code(&o, 110), "m7 got: %s; m1 got: %s",
		  got ? e.raw : "nothing", got1 ? o.raw : "nothing");
	leave3(7);
	got = join3(8, "mbr", NULL, &e);
	xt_report(refused, !got && eq(e.type, "error") && eq(e.cond, "registration-required"),
		  "got: %s", raw_or(&e));
	leave3(8);
	snprintf(item, sizeof(item), "<item affiliation='member' jid='%s'/>", bare_jid(8));
	got = admin_set3(1, item, &res);
	xt_report(grant, got && is_result(&res), "got: %s", raw_or(&res));
	got = join3(8, "mbr", NULL, &e);
	xt_report(enters, got && has_code(&e, 110) && e.item && eq(e.aff, "member"), "got: %s",
		  raw_or(&e));
	leave3(8);
	affiliate3(8, "none");
	reset3();
}

/* §5.1.2 (default roles), §7.4: in a moderated room newcomers without an
 * affiliation are visitors, members participants. */
static void t_moderated(void)
{
	const char *vis = "moderated: with moderatedroom 1, a joiner without affiliation enters "
			  "as visitor";
	const char *quiet = "moderated: the visitor's groupchat gets forbidden, and is not "
			    "reflected";
	const char *part = "moderated: a member (m5) enters as participant";
	struct ev e;
	bool got, heard;

	if (!need3(1, "boss") || !m[5] || !m[6]) {
		fail_all("set-up: room3 with boss, m5 and m6 online", vis, quiet, part, NULL);
		return;
	}
	leave3(5);
	leave3(6);
	sync_all();
	if (!affiliate3(5, "member") || !config3("moderatedroom", "1", NULL)) {
		fail_all("set-up: room3 moderated, m5 a member", vis, quiet, part, NULL);
		return;
	}
	sync_all();
	got = join3(6, "vis", NULL, &e);
	xt_report(vis, got && e.item && eq(e.role, "visitor"), "got: %s", raw_or(&e));
	if (got) {
		xt_sendf(m[6], "<message to='%s' type='groupchat'><body>hush?</body></message>",
			 r3j(NULL));
		got = wait_ev(m[6], &e, "message", "error", NULL);
		heard = body_came(1, "hush?");
		xt_report(quiet, got && eq(e.cond, "forbidden") && !heard, "m6 got: %s%s",
			  got ? e.raw : "nothing", heard ? "; and it was reflected" : "");
	} else {
		xt_report(quiet, false, "set-up: m6 not in room3");
	}
	got = join3(5, "mem", NULL, &e);
	xt_report(part, got && e.item && eq(e.role, "participant"), "got: %s", raw_or(&e));
	leave3(5);
	leave3(6);
	affiliate3(5, "none");
	reset3();
}

/* §7.2.3: in a non-anonymous room (whois anyone) everyone sees the full JIDs,
 * and the joiner is warned (100); §10.2.1: the switch is announced with 172. */
static void t_whois(void)
{
	const char *told = "whois: switching to anyone sends every occupant a groupchat from "
			   "room3 with status 172 (§10.2.1)";
	const char *warn = "whois anyone: a participant's own join presence carries 100 and 110";
	const char *sees = "whois anyone: the participant gets boss's presence with m1's full JID "
			   "when joining, then a newcomer's with its full JID";
	struct ev e, boss = { 0 }, self = { 0 }, nw = { 0 };
	bool got, seen_boss = false, seen_self = false;

	if (!need3(1, "boss") || !need3(7, "pat") || !m[6]) {
		fail_all("set-up: room3 with boss and pat, m6 online", told, warn, sees, NULL);
		return;
	}
	leave3(6);
	sync_all();
	if (!config3("whois", "anyone", NULL)) {
		fail_all("set-up: room3 non-anonymous", told, warn, sees, NULL);
		return;
	}
	why_reset();
	xt_report(told, all_code3(172), "%s", why);
	leave3(7);
	sync_all();
	send_join_in(ROOM3, 7, "pat", NULL);
	while (!seen_self && next_ev(m[7], &e, wait_ms)) {
		if (!eq(e.name, "presence"))
			continue;
		if (eq(e.from, r3j("boss")) && !*e.type) {
			boss = e;
			seen_boss = true;
		} else if (eq(e.from, r3j("pat"))) {
			self = e;
			seen_self = true;
		}
	}
	if (seen_self && !*self.type)
		CP(nick3_of[7], "pat");
	xt_report(warn, seen_self && !*self.type && has_code(&self, 100) && has_code(&self, 110),
		  "got: %s", raw_or(&self));
	got = join3(6, "new", NULL, &e) && wait_ev(m[7], &nw, "presence", "", r3j("new"));
	xt_report(sees, seen_boss && eq(boss.ijid, xt_jid(m[1])) && got &&
		  eq(nw.ijid, xt_jid(m[6])), "boss's presence: %s; the newcomer's: %s (m1 is %s, "
		  "m6 %s)", raw_or(&boss), raw_or(&nw), xt_jid(m[1]), xt_jid(m[6]));
	leave3(6);
	reset3();
}

/* §8.1: with changesubject, participants may change the subject too. */
static void t_change_subject(void)
{
	const char *off = "changesubject: with it 0, a participant's subject change gets "
			  "forbidden";
	const char *on = "changesubject: with it 1, a participant's subject change reaches every "
			 "occupant from room3/pat";
	struct ev e;
	bool got, every = true;

	if (!need3(1, "boss") || !need3(7, "pat") || !reset3()) {
		fail_all("set-up: room3 with boss and pat", off, on, NULL);
		return;
	}
	sync_all();
	xt_sendf(m[7], "<message to='%s' type='groupchat'><subject>Ours?</subject></message>",
		 r3j(NULL));
	got = wait_ev(m[7], &e, "message", "error", NULL);
	xt_report(off, got && eq(e.cond, "forbidden"), "got: %s", got ? e.raw : "nothing");
	if (!config3("changesubject", "1", NULL)) {
		xt_report(on, false, "set-up: changesubject 1");
		return;
	}
	sync_all();
	why_reset();
	xt_sendf(m[7], "<message to='%s' type='groupchat'><subject>Ours</subject></message>",
		 r3j(NULL));
	for (int j = 1; j <= 7; j += 6)
		if (!wait_msg(m[j], &e, "groupchat", r3j("pat"), NULL, "Ours")) {
			every = false;
			why_add("m%d: nothing; ", j);
		}
	xt_report(on, every, "%s", why);
	reset3();
}

/* §7.2.9: a full room turns non-owners away with service-unavailable. */
static void t_max_users(void)
{
	const char *full = "max users: with maxusers 2 and two occupants (boss, pat), a third "
			   "user's join gets presence error service-unavailable";
	char max[160];
	struct ev e;
	bool got;

	if (!need3(1, "boss") || !need3(7, "pat") || !m[8]) {
		fail_all("set-up: room3 with boss and pat, m8 online", full, NULL);
		return;
	}
	only_boss3(1u << 7);
	sync_all();
	get_form3(1, &F);
	CP(max, val3(&F, "maxusers"));
	if (!config3("maxusers", "2", NULL)) {
		fail_all("set-up: room3 with maxusers 2", full, NULL);
		return;
	}
	got = join3(8, "third", NULL, &e);
	xt_report(full, !got && eq(e.type, "error") && eq(e.cond, "service-unavailable"),
		  "got: %s", raw_or(&e));
	leave3(8);
	if (max[0])
		config3("maxusers", max, NULL);
	else
		printf("# no maxusers value to restore (form: %s)\n", F.raw);
}

/* §10.9: the owner destroys the room, naming another; every occupant is told
 * in its own unavailable presence; only owners may. */
static void t_destroy_room(void)
{
	const char *denied = "destroy: a participant's destroy gets forbidden, room3 stays";
	const char *done = "destroy: the owner's destroy (jid room4, reason moving) gets a result";
	const char *each = "destroy: each occupant gets unavailable from its own occupant JID: "
			   "item affiliation none role none, <destroy jid=room4> with "
			   "<reason>moving</reason> in the muc#user <x/>";
	const char *only = "destroy: ... and no unavailable from the other occupants (§10.9 "
			   "SHOULD NOT)";
	const char *gone = "destroy: disco#info of room3 then gets item-not-found";
	char q[1024], venue[320], prefix[320];
	struct xt_node *n;
	struct ev e, res;
	bool got, all = true, alone = true, stays;

	if (!need3(1, "boss") || !need3(7, "pat") || !need3(6, "six") || !m[5]) {
		fail_all("set-up: room3 with boss, pat and six, m5 online", denied, done, each,
			 only, gone, NULL);
		return;
	}
	sync_all();
	CP(venue, rjr("room4", NULL));
	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_OWNER "'><destroy jid='%s'><reason>moving"
		 "</reason></destroy></query>", venue);
	got = muc_iq(7, r3j(NULL), "set", q, &res);
	n = xt_iq(m[5], "get", r3j(NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	stays = n && eq(xt_attr(n, "type"), "result");
	xt_report(denied, got && is_error(&res, "forbidden") && stays, "got: %s; room3 %s",
		  raw_or(&res), stays ? "stays" : "is gone");
	if (!stays) {
		memset(nick3_of, 0, sizeof(nick3_of));
		fail_all("set-up: room3 is gone", done, each, only, gone, NULL);
		return;
	}
	sync_all();
	got = muc_iq(1, r3j(NULL), "set", q, &res);
	xt_report(done, got && is_result(&res), "got: %s", raw_or(&res));
	why_reset();
	CP(prefix, r3j(""));
	for (int j = 1; j <= USERS; j++) {
		char own[320];
		bool mine = false;

		if (!nick3_of[j][0])
			continue;
		CP(own, r3j(nick3_of[j]));
		while (!mine && wait_ev(m[j], &e, "presence", "unavailable", NULL)) {
			if (eq(e.from, own)) {
				mine = true;
			} else if (strncmp(e.from, prefix, strlen(prefix)) == 0) {
				alone = false;
				why_add("m%d also got %s; ", j, e.raw);
			}
		}
		if (!mine || !e.item || !eq(e.aff, "none") || !eq(e.role, "none") || !e.destroy ||
		    !eq(e.destroy_jid, venue) || !eq(e.destroy_reason, "moving")) {
			all = false;
			why_add("m%d: %s; ", j, mine ? e.raw : "nothing from its occupant JID");
		}
		nick3_of[j][0] = '\0';
	}
	xt_report(each, all, "%s", why);
	/* What came after the own unavailable: a ping round trip each. */
	for (int j = 1; j <= USERS; j++) {
		char id[64];

		if (!m[j])
			continue;
		nback[j] = 0;
		CP(id, xt_new_id(m[j]));
		xt_sendf(m[j], "<iq type='get' id='%s' to='%s'>" PING "</iq>", id, host);
		while ((n = xt_read(m[j])) && !eq(xt_attr(n, "id"), id))
			if (xt_is(n, XT_NS_CLIENT, "presence") &&
			    eq(xt_attr(n, "type"), "unavailable") && xt_attr(n, "from") &&
			    strncmp(xt_attr(n, "from"), prefix, strlen(prefix)) == 0) {
				alone = false;
				why_add("m%d also got %s; ", j, xt_raw(n));
			}
	}
	xt_report(only, all && alone, "%s", why);
	n = xt_iq(m[5], "get", r3j(NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	xt_report(gone, n && eq(xt_attr(n, "type"), "error") &&
		  eq(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR), "item-not-found"),
		  "got: %s", xt_raw(n));
}

/* Reads c until a ping round trip ends; false if meanwhile a presence came
 * from `from` (why says which). */
static bool no_presence_from(struct xt *c, const char *from)
{
	struct xt_node *n;
	char id[64];
	bool none = true;

	CP(id, xt_new_id(c));
	xt_sendf(c, "<iq type='get' id='%s' to='%s'>" PING "</iq>", id, host);
	while ((n = xt_read(c)) && !eq(xt_attr(n, "id"), id))
		if (xt_is(n, XT_NS_CLIENT, "presence") && eq(xt_attr(n, "from"), from)) {
			none = false;
			why_add("got %s; ", xt_raw(n));
		}
	return none;
}

/* §7.2.9: two resources of one user under one nick. */
static void t_resources(void)
{
	const char *enters = "several resources: m5's second resource enters as five: its own "
			     "presence (110) and the others' come to it, and m1 sees no new "
			     "presence from five";
	const char *both = "several resources: m1's groupchat reaches both of m5's resources";
	const char *sends = "several resources: the second resource's groupchat reaches m1 from "
			    "room3/five";
	const char *pm = "several resources: a private message to room3/five reaches both";
	const char *one = "several resources: the second one leaving gets its own unavailable "
			  "(110), and m1 sees five stay";
	const char *nick = "several resources: a nick change while two are in gets "
			   "not-acceptable";
	char err[256], body[64];
	struct xt *second;
	struct ev e, e2;
	int others = 0;
	bool got, got2;

	second = m[5] && need3(1, "boss") && need3(5, "five")
		? xt_login("127.0.0.1", port, XT_TCP, host, "m5", pass, NULL, "r2", NULL, err,
			   sizeof(err)) : NULL;
	if (!second) {
		fail_all("set-up: room3 with boss and five, m5 logged in twice", enters, both,
			 sends, pm, one, nick, NULL);
		return;
	}
	xt_sendf(second, "<presence/>");
	sync_all();
	xt_sendf(second, "<presence to='%s'><x xmlns='" NS_MUC "'/></presence>", r3j("five"));
	got = false;
	while (wait_ev(second, &e, "presence", NULL, NULL)) {
		if (eq(e.from, r3j("five")) && (eq(e.type, "error") || has_code(&e, 110))) {
			got = !eq(e.type, "error");
			break;
		}
		others++;
	}
	why_reset();
	xt_report(enters, got && others >= 1 && no_presence_from(m[1], r3j("five")),
		  "own: %s; %d others; %s", got ? e.raw : "nothing", others, why);
	xt_sendf(m[1], "<message to='%s' type='groupchat'><body>to both</body></message>",
		 r3j(NULL));
	got = wait_msg(m[5], &e, "groupchat", r3j("boss"), "to both", NULL);
	got2 = wait_msg(second, &e2, "groupchat", r3j("boss"), "to both", NULL);
	xt_report(both, got && got2, "first %s, second %s", got ? "got it" : "did not",
		  got2 ? "got it" : "did not");
	snprintf(body, sizeof(body), "from r2");
	xt_sendf(second, "<message to='%s' type='groupchat'><body>%s</body></message>",
		 r3j(NULL), body);
	got = wait_msg(m[1], &e, "groupchat", r3j("five"), body, NULL);
	xt_report(sends, got, "m1 got nothing");
	xt_sendf(m[1], "<message to='%s' type='chat'><body>psst</body></message>", r3j("five"));
	got = wait_msg(m[5], &e, "chat", r3j("boss"), "psst", NULL);
	got2 = wait_msg(second, &e2, "chat", r3j("boss"), "psst", NULL);
	xt_report(pm, got && got2, "first %s, second %s", got ? "got it" : "did not",
		  got2 ? "got it" : "did not");
	xt_sendf(m[5], "<presence to='%s'/>", r3j("fifth"));
	got = wait_ev(m[5], &e, "presence", "error", NULL);
	xt_report(nick, got && eq(e.cond, "not-acceptable"), "got: %s", raw_or(&e));
	xt_sendf(second, "<presence type='unavailable' to='%s'/>", r3j("five"));
	got = wait_ev(second, &e, "presence", "unavailable", r3j("five"));
	why_reset();
	xt_report(one, got && has_code(&e, 110) && no_presence_from(m[1], r3j("five")),
		  "second got: %s; %s", got ? e.raw : "nothing", why);
	xt_sendf(second, "</stream:stream>");
	xt_free(second);
	leave3(5);
}

/* The disco#info of node x-roomuser-item from m[i]: the reserved nick, "" if
 * none, NULL on an error. */
static const char *reserved_nick(int i)
{
	static char nick[64];
	struct xt_node *n = xt_iq(m[i], "get", r3j(NULL), "<query xmlns='" XT_NS_DISCO_INFO "' "
				  "node='x-roomuser-item'/>");
	struct xt_node *q = xt_child(n, XT_NS_DISCO_INFO, "query");
	struct xt_node *id = xt_child(q, XT_NS_DISCO_INFO, "identity");

	if (!n || !eq(xt_attr(n, "type"), "result") || !q)
		return NULL;
	CP(nick, id ? xt_attr(id, "name") : "");
	return nick;
}

static bool register3(int i, const char *payload, struct ev *res)
{
	char q[1024];

	snprintf(q, sizeof(q), "<query xmlns='jabber:iq:register'>%s</query>", payload);
	return muc_iq(i, r3j(NULL), payload[0] ? "set" : "get", q, res);
}

#define REG_FORM(nick) "<x xmlns='" NS_XDATA "' type='submit'><field var='FORM_TYPE'>" \
	"<value>" NS_MUC "#register</value></field><field var='muc#register_roomnick'>" \
	"<value>" nick "</value></field></x>"

/* §7.10 registration, §7.12 reserved nicks. */
static void t_register(void)
{
	const char *form = "register: a get gets the muc#register form with "
			   "muc#register_roomnick";
	const char *done = "register: m2's submit with nick fourth gets a result, and "
			   "x-roomuser-item says fourth";
	const char *taken = "register: m6's join as fourth gets conflict (reserved)";
	const char *dup = "register: m6 registering fourth gets conflict";
	const char *enters = "register: m2 enters as fourth, a member";
	const char *removed = "register: <remove/> gets a result; x-roomuser-item is empty, and "
			      "m6 may enter as fourth";
	const char *nick;
	struct ev e;
	bool got;

	if (!need3(1, "boss") || !m[2] || !m[6]) {
		fail_all("set-up: room3 with boss, m2 and m6 online", form, done, taken, dup,
			 enters, removed, NULL);
		return;
	}
	leave3(2);
	leave3(6);
	got = register3(2, "", &e);
	xt_report(form, got && is_result(&e) && strstr(e.raw, "muc#register_roomnick") &&
		  strstr(e.raw, NS_MUC "#register"), "got: %s", raw_or(&e));
	got = register3(2, REG_FORM("fourth"), &e);
	nick = reserved_nick(2);
	xt_report(done, got && is_result(&e) && eq(nick, "fourth"), "got: %s; nick %s",
		  raw_or(&e), nick ? nick : "(error)");
	got = join3(6, "fourth", NULL, &e);
	xt_report(taken, !got && eq(e.type, "error") && eq(e.cond, "conflict"), "got: %s",
		  raw_or(&e));
	got = register3(6, REG_FORM("fourth"), &e);
	xt_report(dup, got && is_error(&e, "conflict"), "got: %s", raw_or(&e));
	got = join3(2, "fourth", NULL, &e);
	xt_report(enters, got && eq(e.aff, "member"), "got: %s", raw_or(&e));
	leave3(2);
	got = register3(2, "<remove/>", &e) && is_result(&e);
	nick = reserved_nick(2);
	got = got && eq(nick, "") && join3(6, "fourth", NULL, &e);
	xt_report(removed, got, "nick %s; m6's join: %s", nick ? nick : "(error)", raw_or(&e));
	leave3(6);
	affiliate3(2, "none");
}

/* The message m[i] gets from room3's bare JID with this muc#user child
 * (invite, decline) or a form (NULL), within the timeout. */
static bool room_note3(int i, const char *child, struct ev *e)
{
	char tag[32];
	long long end = now_ms() + wait_ms;

	snprintf(tag, sizeof(tag), "<%s ", child ? child : "x xmlns='" NS_XDATA "'");
	while (now_ms() < end && wait_ev(m[i], e, "message", NULL, r3j(NULL)))
		if (strstr(e->raw, tag))
			return true;
	return false;
}

/* §7.8.2: mediated invitations and declines. */
static void t_invite(void)
{
	const char *bad = "invite: an invitation without a valid 'to' gets jid-malformed";
	const char *sent = "invite: m8 gets the owner's invitation from room3: invite from m1's "
			   "bare JID, the reason, the password, and a jabber:x:conference "
			   "element";
	const char *declined = "decline: m8's decline reaches m1 from room3, with decline from "
			       "m8's bare JID and the reason";
	const char *again = "decline: a decline for no pending invitation gets item-not-found, "
			    "and nobody is told";
	const char *forbid = "invite: in a members-only room a participant's invitation gets "
			     "forbidden";
	const char *member = "invite: in a members-only room the owner's invitee becomes a "
			     "member and enters";
	char want[400];
	struct ev e, d;
	bool got;

	if (!need3(1, "boss") || !need3(2, "two") || !m[8] ||
	    !config3("passwordprotectedroom", "1", "roomsecret", "sesame", NULL)) {
		fail_all("set-up: room3 with boss and two, a password, m8 online", bad, sent,
			 declined, again, forbid, member, NULL);
		return;
	}
	only_boss3(1u << 2);	/* nobody else is in when members-only comes */
	xt_sendf(m[1], "<message to='%s'><x xmlns='" NS_MUC_USER "'><invite to='@@'/></x>"
		 "</message>", r3j(NULL));
	got = wait_ev(m[1], &e, "message", "error", NULL);
	xt_report(bad, got && eq(e.cond, "jid-malformed"), "got: %s", raw_or(&e));
	xt_sendf(m[1], "<message to='%s' id='inv1'><x xmlns='" NS_MUC_USER "'><invite to='%s'>"
		 "<reason>come in</reason></invite></x></message>", r3j(NULL), bare_jid(8));
	got = room_note3(8, "invite", &e);
	snprintf(want, sizeof(want), "<invite from='%s'>", bare_jid(1));
	xt_report(sent, got && strstr(e.raw, want) && strstr(e.raw, "<reason>come in</reason>") &&
		  strstr(e.raw, "<password>sesame</password>") && eq(e.id, "inv1") &&
		  strstr(e.raw, "jabber:x:conference"), "got: %s", raw_or(&e));
	xt_sendf(m[8], "<message to='%s'><x xmlns='" NS_MUC_USER "'><decline to='%s'>"
		 "<reason>busy</reason></decline></x></message>", r3j(NULL), bare_jid(1));
	got = room_note3(1, "decline", &d);
	snprintf(want, sizeof(want), "<decline from='%s'>", bare_jid(8));
	xt_report(declined, got && strstr(d.raw, want) && strstr(d.raw, "<reason>busy</reason>"),
		  "got: %s", raw_or(&d));
	xt_sendf(m[8], "<message to='%s'><x xmlns='" NS_MUC_USER "'><decline to='%s'/></x>"
		 "</message>", r3j(NULL), bare_jid(1));
	got = wait_ev(m[8], &e, "message", "error", NULL);
	sync_all();
	xt_report(again, got && eq(e.cond, "item-not-found") && !room_note3(1, "decline", &d),
		  "m8 got: %s; m1 got: %s", raw_or(&e), raw_or(&d));
	if (!affiliate3(2, "member") || !config3("membersonly", "1", NULL)) {
		fail_all("set-up: room3 members-only, m2 a member in it", forbid, member, NULL);
		reset3();
		return;
	}
	xt_sendf(m[2], "<message to='%s'><x xmlns='" NS_MUC_USER "'><invite to='%s'/></x>"
		 "</message>", r3j(NULL), bare_jid(8));
	got = wait_ev(m[2], &e, "message", "error", NULL);
	xt_report(forbid, got && eq(e.cond, "forbidden"), "got: %s", raw_or(&e));
	xt_sendf(m[1], "<message to='%s'><x xmlns='" NS_MUC_USER "'><invite to='%s'/></x>"
		 "</message>", r3j(NULL), bare_jid(8));
	got = room_note3(8, "invite", &e) && join3(8, "guest", NULL, &d);
	xt_report(member, got && eq(d.aff, "member"), "invitation: %s; join: %s", raw_or(&e),
		  raw_or(&d));
	leave3(8);
	leave3(2);
	affiliate3(8, "none");
	affiliate3(2, "none");
	reset3();
}

/* XEP-0249: a direct invitation is a message from user to user, which the
 * server passes on as it is. */
static void t_direct_invite(void)
{
	const char *ok = "direct invitation (XEP-0249): m8 gets m1's jabber:x:conference "
			 "invitation as sent, with jid, password and reason";
	char from[320];
	struct xt_node *n;
	bool got = false;

	if (!m[1] || !m[8]) {
		fail_all("set-up: m1 and m8 online", ok, NULL);
		return;
	}
	snprintf(from, sizeof(from), "%s/r", bare_jid(1));
	xt_sendf(m[1], "<message to='%s'><x xmlns='jabber:x:conference' jid='%s' "
		 "password='sesame' reason='come in'/></message>", bare_jid(8), r3j(NULL));
	while (!got && (n = xt_read(m[8])))
		got = xt_is(n, XT_NS_CLIENT, "message") && eq(xt_attr(n, "from"), from) &&
		      (n = xt_child(n, "jabber:x:conference", "x")) &&
		      eq(xt_attr(n, "jid"), r3j(NULL)) && eq(xt_attr(n, "password"), "sesame") &&
		      eq(xt_attr(n, "reason"), "come in");
	xt_report(ok, got, "m8 got no such message");
}

/* §7.13, §8.6: a visitor asks for voice; a moderator approves with the form. */
static void t_voice_request(void)
{
	const char *form = "voice request: the moderator gets the muc#request form with the "
			   "visitor's JID, nick and muc#request_allow";
	const char *granted = "voice request: the moderator's approval makes the visitor a "
			      "participant, and it is told";
	const char *twice = "voice request: asking with voice already gets not-acceptable";
	char want[400];
	struct ev e;
	bool got;

	if (!need3(1, "boss") || !m[6] || !config3("moderatedroom", "1", NULL)) {
		fail_all("set-up: room3 moderated with boss, m6 online", form, granted, twice,
			 NULL);
		return;
	}
	if (!join3(6, "asker", NULL, &e) || !eq(e.role, "visitor")) {
		fail_all("set-up: m6 in room3 as a visitor", form, granted, twice, NULL);
		reset3();
		return;
	}
	sync_all();
	xt_sendf(m[6], "<message to='%s'><x xmlns='" NS_XDATA "' type='submit'>"
		 "<field var='FORM_TYPE'><value>" NS_MUC "#request</value></field>"
		 "<field var='muc#role'><value>participant</value></field></x></message>",
		 r3j(NULL));
	got = room_note3(1, NULL, &e);
	snprintf(want, sizeof(want), "<value>%s/", bare_jid(6));
	xt_report(form, got && strstr(e.raw, want) && strstr(e.raw, "<value>asker</value>") &&
		  strstr(e.raw, "muc#request_allow") && strstr(e.raw, NS_MUC "#request"),
		  "got: %s", raw_or(&e));
	xt_sendf(m[1], "<message to='%s'><x xmlns='" NS_XDATA "' type='submit'>"
		 "<field var='FORM_TYPE'><value>" NS_MUC "#request</value></field>"
		 "<field var='muc#role'><value>participant</value></field>"
		 "<field var='muc#roomnick'><value>asker</value></field>"
		 "<field var='muc#request_allow'><value>true</value></field></x></message>",
		 r3j(NULL));
	got = wait_ev(m[6], &e, "presence", NULL, r3j("asker"));
	xt_report(granted, got && eq(e.role, "participant") && has_code(&e, 110), "got: %s",
		  raw_or(&e));
	xt_sendf(m[6], "<message to='%s'><x xmlns='" NS_XDATA "' type='submit'>"
		 "<field var='FORM_TYPE'><value>" NS_MUC "#request</value></field>"
		 "<field var='muc#role'><value>participant</value></field></x></message>",
		 r3j(NULL));
	got = wait_ev(m[6], &e, "message", "error", NULL);
	xt_report(twice, got && eq(e.cond, "not-acceptable"), "got: %s", raw_or(&e));
	leave3(6);
	reset3();
}

/* ---- IQs between occupants, through the room (§6.5) ---- */

static void t_occupant_iq(void)
{
	const char *pass_on = "occupant IQ: m5's version query to room2/own reaches m1's real "
			      "JID from room2/adm, with the room's own id";
	const char *back = "occupant IQ: m1's answer comes back to m5 from room2/own with "
			   "m5's own id and the payload";
	const char *vcard = "occupant IQ: a vcard-temp get goes to the occupant's bare JID, "
			    "whose server's answer (an error here) comes back with m5's id";
	const char *outsider = "occupant IQ: a non-occupant's IQ to an occupant JID gets "
			       "not-acceptable; one to a nick not in the room item-not-found";
	const char *forged = "occupant IQ: an answer with a forged id reaches nobody";
	char own[320], adm[320], fid[256], want[400];
	struct ev e, res;
	bool got, ok;

	if (!need2(1, "own") || !need2(5, "adm") || !m[8] || !m[3]) {
		fail_all("set-up: room2 with own and adm, m3 and m8 online", pass_on, back, vcard,
			 outsider, forged, NULL);
		return;
	}
	leave2(8);
	leave2(3);
	sync_all();
	CP(own, r2j("own"));
	CP(adm, r2j("adm"));
	xt_sendf(m[5], "<iq type='get' id='v-1' to='%s'><query xmlns='jabber:iq:version'/>"
		 "</iq>", own);
	got = wait_ev(m[1], &e, "iq", "get", adm);
	snprintf(want, sizeof(want), "to='%s/r'", bare_jid(1));
	xt_report(pass_on, got && strncmp(e.id, "mucq-", 5) == 0 && strstr(e.raw, want) &&
		  strstr(e.raw, "jabber:iq:version"), "got: %s", raw_or(&e));
	if (got) {
		CP(fid, e.id);
		xt_sendf(m[1], "<iq type='result' id='%s' to='%s'><query xmlns='jabber:iq:version'>"
			 "<name>muc-test</name></query></iq>", fid, adm);
	}
	ok = got && wait_ev(m[5], &e, "iq", "result", own);
	xt_report(back, ok && eq(e.id, "v-1") && strstr(e.raw, "<name>muc-test</name>"),
		  "got: %s", ok ? e.raw : "nothing");

	xt_sendf(m[5], "<iq type='get' id='vc-1' to='%s'><vCard xmlns='vcard-temp'/></iq>", own);
	ok = wait_ev(m[5], &e, "iq", NULL, own) && eq(e.id, "vc-1") &&
	     (eq(e.type, "error") || eq(e.type, "result"));
	/* m1's client must not have seen it: its account answers for it. */
	got = muc_iq(1, r2j(NULL), "get", "<query xmlns='" XT_NS_DISCO_INFO "'/>", &res);
	for (int k = 0; k < nback[1]; k++)
		if (eq(backlog[1][k].name, "iq") && eq(backlog[1][k].from, adm))
			ok = false;
	xt_report(vcard, ok, "got: %s", raw_or(&e));

	got = muc_iq(8, own, "get", "<query xmlns='jabber:iq:version'/>", &res);
	ok = got && is_error(&res, "not-acceptable");
	why_reset();
	why_add("outsider got: %s; ", raw_or(&res));
	got = muc_iq(5, r2j("nobody-here"), "get", "<query xmlns='jabber:iq:version'/>", &res);
	ok = ok && got && is_error(&res, "item-not-found");
	why_add("no such nick: %s", raw_or(&res));
	xt_report(outsider, ok, "%s", why);

	/* m3, not in the room, and m1, in it, answer IQs the room never sent. */
	xt_sendf(m[3], "<iq type='result' id='mucq-bTVAbXVjLmV4YW1wbGUvcgp4' to='%s'/>", adm);
	xt_sendf(m[1], "<iq type='result' id='mucq-%s' to='%s'/>", "bm90IGEgamlkCng=", adm);
	xt_sendf(m[1], "<iq type='result' id='plain-id' to='%s'/>", adm);
	got = muc_iq(5, r2j(NULL), "get", "<query xmlns='" XT_NS_DISCO_INFO "'/>", &res);
	ok = got;
	for (int k = 0; k < nback[5]; k++)
		if (eq(backlog[5][k].name, "iq")) {
			ok = false;
			CP(want, backlog[5][k].raw);
		}
	xt_report(forged, ok, "m5 got: %s", ok ? "nothing (right)" : want);
	sync_all();
}

/* ---- status codes of their own: 170/171 (archiving), 210 (nick changed by
 * the service), 321 (membership revoked), 332 (service going down) ---- */

#define LOGROOM "logroom"

static bool form_submit(int i, const char *room, const char *fields, struct ev *res)
{
	char q[1024];

	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_OWNER "'><x xmlns='jabber:x:data' "
		 "type='submit'><field var='FORM_TYPE'><value>" NS_MUC "#roomconfig</value>"
		 "</field>%s</x></query>", fields);
	return muc_iq(i, rjr(room, NULL), "set", q, res);
}

static void t_status_codes(void)
{
	const char *logged = "status 170: the own presence on entering an archived room "
			     "carries 170 (§7.2.12)";
	const char *prepped = "status 210: a nick the service changed (fullwidth letters, "
			      "resourceprep) comes back as TWO with 210 in the own presence";
	const char *unlogged = "status 171: turning archiving off tells the occupants (104 "
			       "and 171 in a groupchat message)";
	const char *revoked = "status 321: in a members-only room, revoking membership sends "
			      "the user out (321 to it, with 110, and to the others)";
	char nicks[USERS + 1][64] = { { 0 } }, own[320], q[1024];
	struct ev e, res;
	bool got, ok;

	if (!m[1] || !m[2]) {
		fail_all("set-up: m1, m2 online", logged, prepped, unlogged, revoked, NULL);
		return;
	}
	sync_all();
	send_join_in(LOGROOM, 1, "head", NULL);
	got = await_self_in(LOGROOM, 1, "head", &e, NULL) && !*e.type;
	if (got) {
		CP(nicks[1], "head");
		if (has_code(&e, 201))
			make_instant_in(LOGROOM, 1);
	}
	xt_report(logged, got && has_code(&e, 170) && has_code(&e, 110), "got: %s", raw_or(&e));
	/* U+FF34 U+FF37 U+FF2F: fullwidth T W O, which NFKC makes TWO */
	xt_sendf(m[2], "<presence to='%s/\xef\xbc\xb4\xef\xbc\xb7\xef\xbc\xaf'><x xmlns='" NS_MUC
		 "'/></presence>", rjr(LOGROOM, NULL));
	got = await_self_in(LOGROOM, 2, "TWO", &e, NULL) && !*e.type;
	if (got)
		CP(nicks[2], "TWO");
	xt_report(prepped, got && has_code(&e, 210) && has_code(&e, 110) && has_code(&e, 170),
		  "got: %s", raw_or(&e));
	if (!nicks[1][0] || !nicks[2][0]) {
		fail_all("set-up: logroom with head and TWO", unlogged, revoked, NULL);
		goto out;
	}
	sync_all();
	got = form_submit(1, LOGROOM, "<field var='muc#roomconfig_enablearchiving'><value>0"
			  "</value></field>", &res) && is_result(&res);
	ok = got && wait_msg(m[2], &e, "groupchat", rjr(LOGROOM, NULL), NULL, NULL) &&
	     has_code(&e, 104) && has_code(&e, 171);
	xt_report(unlogged, ok, "submit: %s; m2 got: %s", raw_or(&res), raw_or(&e));

	why_reset();
	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_ADMIN "'><item affiliation='member' "
		 "jid='%s'/></query>", bare_jid(2));
	ok = muc_iq(1, rjr(LOGROOM, NULL), "set", q, &res) && is_result(&res);
	why_add("member: %s; ", raw_or(&res));
	ok = ok && form_submit(1, LOGROOM, "<field var='muc#roomconfig_membersonly'><value>1"
			       "</value></field>", &res) && is_result(&res);
	why_add("members-only: %s; ", raw_or(&res));
	sync_all();
	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_ADMIN "'><item affiliation='none' "
		 "jid='%s'/></query>", bare_jid(2));
	ok = ok && muc_iq(1, rjr(LOGROOM, NULL), "set", q, &res) && is_result(&res);
	why_add("none: %s; ", raw_or(&res));
	CP(own, rjr(LOGROOM, "TWO"));
	got = wait_ev(m[2], &e, "presence", "unavailable", own);
	ok = ok && got && has_code(&e, 321) && has_code(&e, 110);
	why_add("m2 got: %s; ", raw_or(&e));
	if (got)
		nicks[2][0] = '\0';
	got = wait_ev(m[1], &e, "presence", "unavailable", own);
	ok = ok && got && has_code(&e, 321) && !has_code(&e, 110);
	why_add("m1 got: %s", raw_or(&e));
	xt_report(revoked, ok, "%s", why);
out:
	leave_in(LOGROOM, nicks, 2);
	leave_in(LOGROOM, nicks, 1);
}

/* Last: parleyd is told to stop (PARLEY_PID); occupants hear 332 first. */
static void t_shutdown(void)
{
	const char *down = "status 332: when parleyd stops, each occupant gets its own "
			   "unavailable presence with 332 and 110, then <system-shutdown/>";
	const char *pid = getenv("PARLEY_PID");
	char nicks[USERS + 1][64] = { { 0 } }, own[320];
	struct ev e;
	bool ok = true;

	why_reset();
	if (!pid || !m[1] || !m[2] || !need_in(LOGROOM, nicks, 1, "head") ||
	    !need_in(LOGROOM, nicks, 2, "two")) {
		xt_report(down, false, "set-up: PARLEY_PID, m1 and m2 in logroom");
		return;
	}
	sync_all();
	kill((pid_t)atoi(pid), SIGTERM);
	for (int i = 1; i <= 2; i++) {
		const char *cond;

		CP(own, rjr(LOGROOM, nicks[i]));
		ok = ok && wait_ev(m[i], &e, "presence", "unavailable", own) && has_code(&e, 332) &&
		     has_code(&e, 110);
		why_add("m%d got: %s; ", i, raw_or(&e));
		cond = xt_wait_stream_error(m[i], wait_ms);
		ok = ok && eq(cond, "system-shutdown");
		why_add("then %s; ", cond ? cond : "no stream error");
	}
	xt_report(down, ok, "%s", why);
}

/* ---- parleyctl muc: the administrator's view of the rooms ---- */

#define CTL_ROOM "ctlroom"
static char ctl_out[16384];

/* Runs `$PARLEY_CTL ARGS` (ARGS a shell line) with stdout and stderr in
 * ctl_out; its exit status. With json, the output must also parse as one JSON
 * object (python3), else 98. */
static int __attribute__((format(printf, 2, 3))) ctl(bool json, const char *fmt, ...)
{
	const char *tool = getenv("PARLEY_CTL");
	char args[1024], cmd[2048];
	size_t len = 0, got;
	va_list ap;
	FILE *fp;
	int st;

	ctl_out[0] = '\0';
	if (!tool)
		return -1;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if (json)
		snprintf(cmd, sizeof(cmd), "o=$(%s --json %s 2>&1); rc=$?; printf '%%s\\n' \"$o\"; "
			 "printf '%%s' \"$o\" | python3 -c 'import json,sys; "
			 "assert isinstance(json.load(sys.stdin), dict)' 2>/dev/null || exit 98; "
			 "exit $rc", tool, args);
	else
		snprintf(cmd, sizeof(cmd), "%s %s 2>&1", tool, args);
	if (!(fp = popen(cmd, "r")))
		return -1;
	while (len + 1 < sizeof(ctl_out) &&
	       (got = fread(ctl_out + len, 1, sizeof(ctl_out) - 1 - len, fp)) > 0)
		len += got;
	ctl_out[len] = '\0';
	st = pclose(fp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool out_has(const char *s) { return strstr(ctl_out, s) != NULL; }

static void t_ctl(void)
{
	const char *create = "parleyctl muc create ROOM OWNER: exit 0; the room is there at "
			     "once, unlocked (a joiner gets no 201) and the owner owner";
	const char *rooms = "parleyctl --json muc rooms: the room, persistent, with its 3 "
			    "occupants (valid JSON)";
	const char *occ = "parleyctl --json muc occupants: each nick with its role, "
			  "affiliation and real JID";
	const char *info = "parleyctl --json muc info: occupants 3, persistent, 1 owner; "
			   "text form too";
	const char *ban = "parleyctl muc affiliation ROOM JID outcast: the occupant is sent "
			  "out (301 to it and to the others) and the list shows it";
	const char *destroy = "parleyctl muc destroy ROOM REASON: each occupant gets "
			      "unavailable with <destroy><reason/>; the room is gone (info: "
			      "exit 1, no room)";
	const char *errors = "parleyctl muc: another service's room, a second create, a bad "
			     "affiliation, a bad JID: exit 1 with a message, --json ok false";
	char nicks[USERS + 1][64] = { { 0 } }, want[512], own[320];
	struct ev e;
	int rc;
	bool got, ok;

	if (!getenv("PARLEY_CTL") || !m[1] || !m[2] || !m[3]) {
		fail_all("set-up: PARLEY_CTL, m1..m3 online", create, rooms, occ, info, ban,
			 destroy, errors, NULL);
		return;
	}
	sync_all();
	rc = ctl(false, "muc create %s %s", rjr(CTL_ROOM, NULL), bare_jid(1));
	why_reset();
	why_add("exit %d: %s; ", rc, ctl_out);
	send_join_in(CTL_ROOM, 1, "chief", NULL);
	got = await_self_in(CTL_ROOM, 1, "chief", &e, NULL) && !*e.type;
	ok = rc == 0 && got && !has_code(&e, 201) && eq(e.aff, "owner");
	why_add("m1 got: %s; ", raw_or(&e));
	if (got)
		CP(nicks[1], "chief");
	send_join_in(CTL_ROOM, 2, "two", NULL);
	got = await_self_in(CTL_ROOM, 2, "two", &e, NULL) && !*e.type;
	if (got)
		CP(nicks[2], "two");
	ok = ok && got && !has_code(&e, 201);
	why_add("m2 got: %s", raw_or(&e));
	xt_report(create, ok, "%s", why);
	if (!nicks[1][0] || !nicks[2][0]) {
		fail_all("set-up: the room made by parleyctl", rooms, occ, info, ban, destroy,
			 NULL);
		return;
	}
	send_join_in(CTL_ROOM, 3, "three", NULL);
	if (await_self_in(CTL_ROOM, 3, "three", &e, NULL) && !*e.type)
		CP(nicks[3], "three");
	sync_all();

	rc = ctl(true, "muc rooms");
	snprintf(want, sizeof(want), "{\"jid\":\"%s\",\"name\":null,\"occupants\":3,"
		 "\"persistent\":true,\"public\":true", rjr(CTL_ROOM, NULL));
	xt_report(rooms, rc == 0 && out_has("{\"ok\":true,\"rooms\":[") && out_has(want),
		  "exit %d, want %s in: %s", rc, want, ctl_out);

	rc = ctl(true, "muc occupants %s", rjr(CTL_ROOM, NULL));
	snprintf(want, sizeof(want), "{\"nick\":\"two\",\"role\":\"participant\","
		 "\"affiliation\":\"none\",\"occupant_id\":\"");
	snprintf(own, sizeof(own), "\"jids\":[\"%s/r\"]", bare_jid(2));
	xt_report(occ, rc == 0 && out_has(want) && out_has(own) &&
		  out_has("{\"nick\":\"chief\",\"role\":\"moderator\",\"affiliation\":\"owner\""),
		  "exit %d: %s", rc, ctl_out);

	rc = ctl(true, "muc info %s", rjr(CTL_ROOM, NULL));
	ok = rc == 0 && out_has("\"occupants\":3,") && out_has("\"persistent\":true") &&
	     out_has("\"affiliations\":{\"owner\":1,\"admin\":0,\"member\":0,\"outcast\":0}");
	why_reset();
	why_add("json exit %d: %s; ", rc, ctl_out);
	rc = ctl(false, "muc info %s", rjr(CTL_ROOM, NULL));
	ok = ok && rc == 0 && out_has("occupants       3 (at most ") && out_has("persistent");
	why_add("text exit %d: %s", rc, ctl_out);
	xt_report(info, ok, "%s", why);

	why_reset();
	ok = nicks[3][0] != '\0';
	rc = ctl(false, "muc affiliation %s %s outcast", rjr(CTL_ROOM, NULL), bare_jid(3));
	why_add("exit %d: %s; ", rc, ctl_out);
	ok = ok && rc == 0;
	CP(own, rjr(CTL_ROOM, "three"));
	got = wait_ev(m[3], &e, "presence", "unavailable", own);
	ok = ok && got && has_code(&e, 301) && has_code(&e, 110);
	why_add("m3 got: %s; ", raw_or(&e));
	got = wait_ev(m[2], &e, "presence", "unavailable", own);
	ok = ok && got && has_code(&e, 301) && !has_code(&e, 110);
	why_add("m2 got: %s; ", raw_or(&e));
	nicks[3][0] = '\0';
	rc = ctl(false, "muc affiliation %s", rjr(CTL_ROOM, NULL));
	snprintf(want, sizeof(want), "%s", bare_jid(3));
	ok = ok && rc == 0 && out_has(want) && out_has("outcast") && out_has("owner");
	why_add("list exit %d: %s", rc, ctl_out);
	xt_report(ban, ok, "%s", why);

	why_reset();
	rc = ctl(false, "muc destroy %s 'closing time'", rjr(CTL_ROOM, NULL));
	ok = rc == 0 && out_has("destroyed");
	why_add("exit %d: %s; ", rc, ctl_out);
	for (int j = 1; j <= 2; j++) {
		CP(own, rjr(CTL_ROOM, nicks[j]));
		got = wait_ev(m[j], &e, "presence", "unavailable", own);
		ok = ok && got && e.destroy && eq(e.destroy_reason, "closing time");
		why_add("m%d got: %s; ", j, raw_or(&e));
	}
	rc = ctl(false, "muc info %s", rjr(CTL_ROOM, NULL));
	ok = ok && rc == 1 && out_has("no room");
	why_add("info after: exit %d: %s", rc, ctl_out);
	xt_report(destroy, ok, "%s", why);

	why_reset();
	ok = true;
	rc = ctl(false, "muc info room@nowhere.example");
	ok = ok && rc == 1 && out_has("no service");
	why_add("other service: exit %d: %s; ", rc, ctl_out);
	rc = ctl(false, "muc create %s", rjr("ctltwo", NULL));
	ok = ok && rc == 0;
	why_add("create: exit %d: %s; ", rc, ctl_out);
	rc = ctl(true, "muc create %s", rjr("ctltwo", NULL));
	ok = ok && rc == 1 && out_has("{\"ok\":false,\"error\":") && out_has("exists");
	why_add("again: exit %d: %s; ", rc, ctl_out);
	rc = ctl(false, "muc affiliation %s %s king", rjr("ctltwo", NULL), bare_jid(2));
	ok = ok && rc == 1 && out_has("not an affiliation");
	why_add("king: exit %d: %s; ", rc, ctl_out);
	rc = ctl(false, "muc occupants 'not a jid@@'");
	ok = ok && rc == 1 && out_has("not a room JID");
	why_add("bad jid: exit %d: %s; ", rc, ctl_out);
	rc = ctl(false, "muc destroy %s", rjr("ctltwo", NULL));
	ok = ok && rc == 0;
	why_add("destroy: exit %d: %s", rc, ctl_out);
	xt_report(errors, ok, "%s", why);
}

int main(void)
{
	host = getenv("PARLEY_HOST");
	pass = getenv("PARLEY_PASS");
	muc = getenv("PARLEY_MUC");
	port = getenv("PARLEY_PORT") ? atoi(getenv("PARLEY_PORT")) : 0;
	if (!host || !pass || !port) {
		printf("not ok - environment\n# PARLEY_HOST, PARLEY_PORT, PARLEY_PASS\n");
		return 1;
	}
	if (!muc) {
		static char def[300];

		snprintf(def, sizeof(def), "conference.%s", host);
		muc = def;
	}
	if (getenv("PARLEY_TEST_TIMEOUT_MS"))
		wait_ms = atoi(getenv("PARLEY_TEST_TIMEOUT_MS"));
	if (wait_ms <= 0)
		wait_ms = XT_DEFAULT_TIMEOUT_MS;
	xt_set_default_timeout(wait_ms);
	for (int i = 1; i <= USERS; i++)
		m[i] = online(i);
	t_disco_service();
	t_room_list_paging();
	t_create();
	t_locked();
	t_join();
	t_conflict();
	t_groupchat();
	t_private();
	t_subject();
	t_nick_change();
	t_self_ping();
	t_room_disco();
	t_leave();
	t_destroy();
	t_history();
	t_subject_delay();
	t_kick();
	t_voice();
	t_ban();
	t_ban_list();
	t_admin();
	t_history_length();
	t_config_form();
	t_config_submit();
	t_config_features();
	t_password();
	t_members_only();
	t_moderated();
	t_whois();
	t_change_subject();
	t_max_users();
	t_resources();
	t_register();
	t_invite();
	t_direct_invite();
	t_voice_request();
	t_occupant_iq();
	t_status_codes();
	t_destroy_room();
	t_ctl();
	t_shutdown();
	for (int i = 1; i <= USERS; i++) {
		if (m[i])
			xt_sendf(m[i], "</stream:stream>");
		xt_free(m[i]);
	}
	return xt_failures ? 1 : 0;
}
