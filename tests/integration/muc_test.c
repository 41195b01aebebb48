/*
 * muc_test.c - XEP-0045 multi-user chat (mod_muc) against a running parleyd:
 * service and room discovery, creating and unlocking a room, joining, nick
 * conflicts, groupchat, private messages, the subject, nick changes, XEP-0410
 * self-ping, leaving (gracefully or not) and the end of a temporary room; then
 * in a second room discussion history (§7.2.13, §7.2.14) and the subject's
 * <delay/> (§7.2.15), kicking, voice, banning, the ban list and admins (§8-§10).
 * Prints TAP lines without numbers; muc.test adds the plan.
 *
 * The first use cases follow one room, room1, through its life; the later ones
 * use room2, owned by m1 as "own" throughout. Each t_* first puts the occupants
 * it needs into the room (need(), need2()), so that one failure does not take
 * every later check with it, and drains what earlier cases left unread.
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
	for (int i = 1; i <= USERS; i++) {
		if (m[i])
			xt_sendf(m[i], "</stream:stream>");
		xt_free(m[i]);
	}
	return xt_failures ? 1 : 0;
}
