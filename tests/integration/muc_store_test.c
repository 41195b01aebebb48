/*
 * muc_store_test.c - what a room keeps: persistent rooms across a restart of
 * parleyd, the room archive (XEP-0313 with XEP-0059 paging), XEP-0421
 * occupant ids, and the service's limits. Run twice by muc_store.test:
 *
 *   PARLEY_PHASE=before  s1 makes "keep" persistent (named, history 10,
 *                        archived), gives s2 member, s3 admin, s4 outcast,
 *                        sets a subject and says m1..m12; the archive is
 *                        paged forwards and backwards and filtered; a
 *                        temporary room's archive goes with the room; a
 *                        XEP-0198 ack waits for the archive's commit; the
 *                        message rate limit holds.
 *   (parleyd restarts)
 *   PARLEY_PHASE=after   "keep" is there, empty, with its name, form,
 *                        affiliations, subject, history and archive; s2's
 *                        occupant id is the same; the temporary room is not;
 *                        destroying "keep" takes its archive with it.
 *
 * Prints TAP lines without numbers; muc_store.test adds the plan. Env:
 * PARLEY_HOST, PARLEY_PORT (tls="none"), PARLEY_PASS (of s1..s4), PARLEY_MUC,
 * PARLEY_PHASE, PARLEY_STATE (a file the phases share), PARLEY_TEST_DB (the
 * database's conninfo, for psql to lock the archive).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xmpptest.h"

#define NS_MUC		"http://jabber.org/protocol/muc"
#define NS_MUC_USER	NS_MUC "#user"
#define NS_MUC_OWNER	NS_MUC "#owner"
#define NS_MUC_ADMIN	NS_MUC "#admin"
#define NS_MAM		"urn:xmpp:mam:2"
#define NS_RSM		"http://jabber.org/protocol/rsm"
#define NS_FORWARD	"urn:xmpp:forward:0"
#define NS_DELAY	"urn:xmpp:delay"
#define NS_SID		"urn:xmpp:sid:0"
#define NS_OID		"urn:xmpp:occupant-id:0"
#define NS_XDATA	"jabber:x:data"
#define USERS		4
#define MSGS		12
#define PAGE_MAX	64

static const char *host, *muc, *pass, *state;
static int port;
static struct xt *s[USERS + 1];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* room@service, or room@service/nick. */
static const char *rj(const char *room, const char *nick)
{
	static char buf[4][320];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s@%s%s%s", room, muc, nick ? "/" : "",
		 nick ? nick : "");
	return buf[k];
}

static struct xt *online(int i)
{
	char user[16], err[256];
	struct xt *c;

	snprintf(user, sizeof(user), "s%d", i);
	c = xt_login("127.0.0.1", port, XT_TCP, host, user, pass, NULL, "r", NULL, err,
		     sizeof(err));
	if (!c) {
		printf("# login %s failed: %s\n", user, err);
		return NULL;
	}
	xt_sendf(c, "<presence/>");
	return c;
}

/* The next stanza from `from` (exactly, or its bare JID when bare) named name,
 * within the timeout; NULL if none. */
static struct xt_node *next_from(struct xt *c, const char *name, const char *from)
{
	long long end = now_ms() + xt_timeout(c), left;
	struct xt_node *n;

	while (c && (left = end - now_ms()) > 0 && (n = xt_read_ms(c, (int)left)))
		if (eq(n->name, name) && (!from || eq(xt_attr(n, "from"), from)))
			return n;
	return NULL;
}

static bool has_status(const struct xt_node *n, const char *code)
{
	const struct xt_node *x = xt_child(n, NS_MUC_USER, "x");

	for (const struct xt_node *c = x ? x->children : NULL; c; c = c->next)
		if (xt_is(c, NS_MUC_USER, "status") && eq(xt_attr(c, "code"), code))
			return true;
	return false;
}

/* A join as nick; the own presence (110) or error, copied into out (raw). */
struct joined {
	bool ok, created, error;
	char cond[48], aff[16], oid[64], subject[128], raw[1500];
	int nhist;
	char hist[MSGS + 4][32];
	bool hist_delay;
};

static void join(int i, const char *room, const char *nick, struct joined *j)
{
	struct xt_node *n;
	const char *me = rj(room, nick);

	memset(j, 0, sizeof(*j));
	j->hist_delay = true;
	xt_sendf(s[i], "<presence to='%s'><x xmlns='" NS_MUC "'/></presence>", me);
	while ((n = xt_read(s[i]))) {
		const char *from = xt_attr(n, "from");

		if (xt_is(n, XT_NS_CLIENT, "presence") && eq(from, me)) {
			const struct xt_node *x = xt_child(n, NS_MUC_USER, "x");
			const struct xt_node *it = xt_child(x, NS_MUC_USER, "item");
			const struct xt_node *oid = xt_child(n, NS_OID, "occupant-id");

			snprintf(j->raw, sizeof(j->raw), "%s", xt_raw(n));
			if (eq(xt_attr(n, "type"), "error")) {
				const struct xt_node *e = xt_stanza_error(n);

				j->error = true;
				snprintf(j->cond, sizeof(j->cond), "%s",
					 e ? xt_condition(e, XT_NS_STANZA_ERR) : "?");
				return;
			}
			if (!has_status(n, "110"))
				continue;
			j->ok = true;
			j->created = has_status(n, "201");
			snprintf(j->aff, sizeof(j->aff), "%s", it ? xt_attr(it, "affiliation") : "");
			snprintf(j->oid, sizeof(j->oid), "%s", oid ? xt_attr(oid, "id") : "");
			if (j->created)
				return;	/* a new room sends no subject until configured */
		} else if (xt_is(n, XT_NS_CLIENT, "message") && from &&
			   strncmp(from, rj(room, NULL), strlen(rj(room, NULL))) == 0) {
			const struct xt_node *b = xt_child(n, XT_NS_CLIENT, "body");
			const struct xt_node *sub = xt_child(n, XT_NS_CLIENT, "subject");

			if (b && j->nhist < MSGS + 4) {
				snprintf(j->hist[j->nhist++], sizeof(j->hist[0]), "%s", b->text);
				j->hist_delay &= xt_child(n, NS_DELAY, "delay") != NULL;
			} else if (sub) {
				snprintf(j->subject, sizeof(j->subject), "%s", sub->text);
				return;	/* the subject ends the join (§7.2.15) */
			}
		}
	}
}

static bool leave(int i, const char *room, const char *nick)
{
	xt_sendf(s[i], "<presence type='unavailable' to='%s'/>", rj(room, nick));
	return next_from(s[i], "presence", rj(room, nick)) != NULL;
}

/* An IQ to to; true if the answer is a result, the raw answer in why. */
static bool iq_ok(int i, const char *to, const char *type, const char *payload, char *why,
		  size_t len)
{
	struct xt_node *n = xt_iq(s[i], type, to, payload);

	snprintf(why, len, "%s", n ? xt_raw(n) : "no answer");
	return n && eq(xt_attr(n, "type"), "result");
}

static const char *iq_error(int i, const char *to, const char *type, const char *payload,
			    char *why, size_t len)
{
	struct xt_node *n = xt_iq(s[i], type, to, payload);
	const struct xt_node *e = n ? xt_stanza_error(n) : NULL;
	static char cond[48];

	snprintf(why, len, "%s", n ? xt_raw(n) : "no answer");
	snprintf(cond, sizeof(cond), "%s", e ? xt_condition(e, XT_NS_STANZA_ERR) : "");
	return cond;
}

/* ---- the archive: one query and its page ---- */

struct page {
	bool answered, error, complete;
	char cond[48];
	int n;
	char body[PAGE_MAX][32], id[PAGE_MAX][80], oid[PAGE_MAX][64];
	bool delay[PAGE_MAX], from_ok[PAGE_MAX];
	char first[80], last[80];
	char raw[1500];
};

static void mam(int i, const char *room, const char *form, const char *rsm, struct page *p)
{
	static int qn;
	char qid[32], id[64];
	struct xt_node *n;

	memset(p, 0, sizeof(*p));
	snprintf(qid, sizeof(qid), "q%d", ++qn);
	snprintf(id, sizeof(id), "%s", xt_new_id(s[i]));
	xt_sendf(s[i], "<iq type='set' id='%s' to='%s'><query xmlns='" NS_MAM "' queryid='%s'>"
		 "%s%s%s%s</query></iq>", id, rj(room, NULL), qid,
		 form ? "<x xmlns='" NS_XDATA "' type='submit'><field var='FORM_TYPE' "
		 "type='hidden'><value>" NS_MAM "</value></field>" : "", form ? form : "",
		 form ? "</x>" : "", rsm ? rsm : "");
	while ((n = xt_read(s[i]))) {
		const struct xt_node *r = xt_child(n, NS_MAM, "result");

		if (xt_is(n, XT_NS_CLIENT, "message") && r && eq(xt_attr(r, "queryid"), qid)) {
			const struct xt_node *fw = xt_child(r, NS_FORWARD, "forwarded");
			const struct xt_node *m = xt_child(fw, XT_NS_CLIENT, "message");
			const struct xt_node *b = xt_child(m, XT_NS_CLIENT, "body");
			const struct xt_node *o = xt_child(m, NS_OID, "occupant-id");
			int k = p->n++;

			if (k >= PAGE_MAX)
				continue;
			snprintf(p->body[k], sizeof(p->body[k]), "%s", b ? b->text : "");
			snprintf(p->id[k], sizeof(p->id[k]), "%s", xt_attr(r, "id"));
			snprintf(p->oid[k], sizeof(p->oid[k]), "%s", o ? xt_attr(o, "id") : "");
			p->delay[k] = xt_child(fw, NS_DELAY, "delay") &&
				      xt_attr(xt_child(fw, NS_DELAY, "delay"), "stamp");
			p->from_ok[k] = eq(xt_attr(n, "from"), rj(room, NULL)) && m &&
					xt_attr(m, "from") &&
					strncmp(xt_attr(m, "from"), rj(room, "x"),
						strlen(rj(room, NULL)) + 1) == 0;
			continue;
		}
		if (!xt_is(n, XT_NS_CLIENT, "iq") || !eq(xt_attr(n, "id"), id))
			continue;
		p->answered = true;
		snprintf(p->raw, sizeof(p->raw), "%s", xt_raw(n));
		if (eq(xt_attr(n, "type"), "error")) {
			const struct xt_node *e = xt_stanza_error(n);

			p->error = true;
			snprintf(p->cond, sizeof(p->cond), "%s",
				 e ? xt_condition(e, XT_NS_STANZA_ERR) : "");
		} else {
			const struct xt_node *fin = xt_child(n, NS_MAM, "fin");
			const struct xt_node *set = xt_child(fin, NS_RSM, "set");
			const struct xt_node *f = xt_child(set, NS_RSM, "first");
			const struct xt_node *l = xt_child(set, NS_RSM, "last");

			p->complete = eq(xt_attr(fin, "complete"), "true");
			snprintf(p->first, sizeof(p->first), "%s", f ? f->text : "");
			snprintf(p->last, sizeof(p->last), "%s", l ? l->text : "");
		}
		return;
	}
}

/* Whether the page holds exactly bodies want[0..n), in order. */
static bool page_is(const struct page *p, const char *const *want, int n)
{
	if (!p->answered || p->error || p->n != n)
		return false;
	for (int k = 0; k < n; k++)
		if (!eq(p->body[k], want[k]) || !p->delay[k] || !p->from_ok[k])
			return false;
	return p->n == 0 || (eq(p->first, p->id[0]) && eq(p->last, p->id[p->n - 1]));
}

static const char *page_desc(const struct page *p)
{
	static char buf[2048];
	size_t len;

	snprintf(buf, sizeof(buf), "%s%s%d results%s [", p->answered ? "" : "no answer; ",
		 p->error ? "error; " : "", p->n, p->complete ? " (complete)" : "");
	for (int k = 0; k < p->n && k < PAGE_MAX; k++) {
		len = strlen(buf);
		snprintf(buf + len, sizeof(buf) - len, "%s%s", k ? " " : "", p->body[k]);
	}
	len = strlen(buf);
	snprintf(buf + len, sizeof(buf) - len, "] first %s last %s; %s", p->first, p->last,
		 p->error ? p->raw : "");
	return buf;
}

static const char *msg_names[MSGS] = { "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9",
				       "m10", "m11", "m12" };

/* ---- phase before ---- */

static char sid_of[MSGS][80];	/* the stanza-id the room gave each message */

static const char *keep_form =
	"<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
	"<field var='muc#roomconfig_roomname'><value>Kept</value></field>"
	"<field var='muc#roomconfig_historylength'><value>10</value></field>"
	"<field var='muc#roomconfig_enablearchiving'><value>1</value></field>";

static void t_create_persistent(void)
{
	char q[2048], why[2048];
	struct joined j;
	struct xt_node *n;
	bool ok;

	join(1, "keep", "boss", &j);
	xt_report("persistent: s1 creates keep (201)", j.ok && j.created, "%s", j.raw);
	snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_XDATA "' "
		 "type='submit'><field var='FORM_TYPE'><value>" NS_MUC "#roomconfig</value>"
		 "</field>%s</x></query>", keep_form);
	ok = iq_ok(1, rj("keep", NULL), "set", q, why, sizeof(why));
	xt_report("persistent: the form with persistentroom 1, roomname Kept, historylength 10, "
		  "enablearchiving 1 gets a result", ok, "%s", why);
	n = xt_iq(s[1], "get", rj("keep", NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	ok = n && strstr(xt_raw(n), "var='muc_persistent'") &&
	     strstr(xt_raw(n), "var='" NS_MAM "'") && strstr(xt_raw(n), "var='" NS_OID "'") &&
	     strstr(xt_raw(n), NS_MUC "#roominfo") && strstr(xt_raw(n), "<value>Kept</value>");
	xt_report("persistent: keep's disco#info has muc_persistent, " NS_MAM ", " NS_OID
		  " and the muc#roominfo form with the name", ok, "%s", n ? xt_raw(n) : "none");
}

static void t_affiliations(void)
{
	static const char *const items[] = {
		"<item affiliation='member' jid='s2@%s'/>", "<item affiliation='admin' "
		"jid='s3@%s'/>", "<item affiliation='outcast' jid='s4@%s'/>",
	};
	char item[256], q[512], why[2048];
	bool ok = true;

	for (int k = 0; k < 3 && ok; k++) {
		snprintf(item, sizeof(item), items[k], host);
		snprintf(q, sizeof(q), "<query xmlns='" NS_MUC_ADMIN "'>%s</query>", item);
		ok = iq_ok(1, rj("keep", NULL), "set", q, why, sizeof(why));
	}
	xt_report("persistent: s2 member, s3 admin, s4 outcast: results", ok, "%s", why);
	xt_sendf(s[1], "<message to='%s' type='groupchat'><subject>kept subject</subject>"
		 "</message>", rj("keep", NULL));
	ok = next_from(s[1], "message", rj("keep", "boss")) != NULL;
	xt_report("persistent: the owner's subject comes back", ok, " ");
}

static void t_messages(void)
{
	struct joined j;
	struct xt_node *n;
	char oid1[64] = "", oid1_seen[64] = "";
	bool ok = true, oid_ok = true;
	FILE *f;

	join(2, "keep", "mem", &j);
	xt_report("occupant-id: s2's own presence carries an occupant-id (XEP-0421)",
		  j.ok && j.oid[0], "%s", j.raw);
	n = next_from(s[1], "presence", rj("keep", "mem"));
	xt_report("occupant-id: s1 sees s2 with the same occupant-id", n &&
		  xt_child(n, NS_OID, "occupant-id") &&
		  eq(xt_attr(xt_child(n, NS_OID, "occupant-id"), "id"), j.oid), "%s vs %s",
		  n ? xt_raw(n) : "none", j.oid);
	if ((f = state ? fopen(state, "w") : NULL)) {
		fprintf(f, "%s\n", j.oid);
		fclose(f);
	}
	for (int k = 0; k < MSGS; k++) {
		const struct xt_node *sid, *oid;

		/* A forged occupant-id and stanza-id by the room go (§4, §3.1). */
		xt_sendf(s[1], "<message to='%s' type='groupchat'><body>%s</body>"
			 "<occupant-id xmlns='" NS_OID "' id='forged'/><stanza-id xmlns='"
			 NS_SID "' by='%s' id='forged'/></message>", rj("keep", NULL),
			 msg_names[k], rj("keep", NULL));
		n = next_from(s[2], "message", rj("keep", "boss"));
		sid = n ? xt_child(n, NS_SID, "stanza-id") : NULL;
		oid = n ? xt_child(n, NS_OID, "occupant-id") : NULL;
		ok &= n && eq(xt_child(n, XT_NS_CLIENT, "body")->text, msg_names[k]) && sid &&
		      eq(xt_attr(sid, "by"), rj("keep", NULL)) && !eq(xt_attr(sid, "id"), "forged");
		snprintf(sid_of[k], sizeof(sid_of[k]), "%s", sid ? xt_attr(sid, "id") : "");
		if (k == 0 && oid)
			snprintf(oid1, sizeof(oid1), "%s", xt_attr(oid, "id"));
		int noid = 0;

		for (const struct xt_node *c = n ? n->children : NULL; c; c = c->next)
			noid += xt_is(c, NS_OID, "occupant-id");
		oid_ok &= oid && noid == 1 && !eq(xt_attr(oid, "id"), "forged") &&
			  eq(xt_attr(oid, "id"), oid1);
		if (!n)
			break;
	}
	xt_report("archive: s1's m1..m12 reach s2, each with a stanza-id by the room (the "
		  "forged one gone)", ok, " ");
	n = next_from(s[1], "message", rj("keep", "boss"));	/* s1's own m1 */
	if (n && xt_child(n, NS_OID, "occupant-id"))
		snprintf(oid1_seen, sizeof(oid1_seen), "%s",
			 xt_attr(xt_child(n, NS_OID, "occupant-id"), "id"));
	xt_report("occupant-id: each of s1's messages has s1's one occupant-id, the forged one "
		  "gone, the same in s1's own echo", oid_ok && oid1[0] && eq(oid1, oid1_seen),
		  "%s / %s", oid1, oid1_seen);
}

static void t_paging(void)
{
	struct page p;
	char rsm[256], form[512];
	int n = 0;

	mam(2, "keep", NULL, "<set xmlns='" NS_RSM "'><max>5</max></set>", &p);
	xt_report("archive: a query with max 5 gets m1..m5, not complete, first and last the "
		  "room's stanza-ids", page_is(&p, msg_names, 5) && !p.complete &&
		  eq(p.id[0], sid_of[0]) && eq(p.id[4], sid_of[4]), "%s", page_desc(&p));
	snprintf(rsm, sizeof(rsm), "<set xmlns='" NS_RSM "'><max>5</max><after>%s</after></set>",
		 p.last);
	mam(2, "keep", NULL, rsm, &p);
	xt_report("archive: after the last of it, m6..m10, not complete",
		  page_is(&p, msg_names + 5, 5) && !p.complete, "%s", page_desc(&p));
	snprintf(rsm, sizeof(rsm), "<set xmlns='" NS_RSM "'><max>5</max><after>%s</after></set>",
		 p.last);
	mam(2, "keep", NULL, rsm, &p);
	xt_report("archive: and then m11, m12, complete", page_is(&p, msg_names + 10, 2) &&
		  p.complete, "%s", page_desc(&p));
	mam(2, "keep", NULL, "<set xmlns='" NS_RSM "'><max>3</max><before/></set>", &p);
	xt_report("archive: <before/> with max 3 is the last page, m10..m12 in order, not "
		  "complete", page_is(&p, msg_names + 9, 3) && !p.complete, "%s", page_desc(&p));
	snprintf(rsm, sizeof(rsm), "<set xmlns='" NS_RSM "'><max>20</max><before>%s</before>"
		 "</set>", p.first);
	mam(2, "keep", NULL, rsm, &p);
	xt_report("archive: before m10, max 20: m1..m9, complete", page_is(&p, msg_names, 9) &&
		  p.complete, "%s", page_desc(&p));
	snprintf(form, sizeof(form), "<field var='with'><value>%s</value></field>",
		 rj("keep", "boss"));
	mam(2, "keep", form, NULL, &p);
	xt_report("archive: with=keep/boss gets all twelve, complete",
		  page_is(&p, msg_names, MSGS) && p.complete, "%s", page_desc(&p));
	snprintf(form, sizeof(form), "<field var='with'><value>%s</value></field>",
		 rj("keep", "nobody"));
	mam(2, "keep", form, NULL, &p);
	xt_report("archive: with=keep/nobody gets none, complete", page_is(&p, NULL, 0) &&
		  p.complete, "%s", page_desc(&p));
	snprintf(form, sizeof(form), "<field var='after-id'><value>%s</value></field>"
		 "<field var='before-id'><value>%s</value></field>", sid_of[2], sid_of[6]);
	mam(2, "keep", form, NULL, &p);
	xt_report("archive: after-id m3, before-id m7 (urn:xmpp:mam:2#extended): m4..m6",
		  page_is(&p, msg_names + 3, 3) && p.complete, "%s", page_desc(&p));
	mam(2, "keep", "<field var='start'><value>2000-01-01T00:00:00Z</value></field><field "
	    "var='end'><value>2001-01-01T00:00:00Z</value></field>", NULL, &p);
	xt_report("archive: start and end in 2000 get none", page_is(&p, NULL, 0), "%s",
		  page_desc(&p));
	mam(2, "keep", "<field var='start'><value>2000-01-01T00:00:00Z</value></field>", NULL, &p);
	xt_report("archive: start in 2000 gets all twelve", page_is(&p, msg_names, MSGS), "%s",
		  page_desc(&p));
	mam(2, "keep", NULL, "<set xmlns='" NS_RSM "'><after>no-such-id</after></set>", &p);
	xt_report("archive: after an unknown id gets item-not-found", p.error &&
		  eq(p.cond, "item-not-found"), "%s", p.raw);
	mam(2, "keep", "<field var='start'><value>yesterday</value></field>", NULL, &p);
	xt_report("archive: a start that is no date gets bad-request", p.error &&
		  eq(p.cond, "bad-request"), "%s", p.raw);
	mam(4, "keep", NULL, NULL, &p);
	xt_report("archive: the outcast s4 gets forbidden", p.error && eq(p.cond, "forbidden"),
		  "%s", p.raw);
	mam(3, "keep", NULL, "<set xmlns='" NS_RSM "'><max>0</max></set>", &p);
	n = p.n;
	xt_report("archive: max 0 gets no message, not complete", p.answered && !p.error &&
		  n == 0 && !p.complete, "%s", page_desc(&p));
}

static void t_temporary(void)
{
	static const char *const t1[] = { "t1" };
	struct joined j;
	struct page p;
	char why[2048];
	const char *cond;

	join(3, "temp", "t", &j);
	iq_ok(3, rj("temp", NULL), "set", "<query xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_XDATA
	      "' type='submit'/></query>", why, sizeof(why));
	xt_sendf(s[3], "<message to='%s' type='groupchat'><body>t1</body></message>",
		 rj("temp", NULL));
	next_from(s[3], "message", rj("temp", "t"));
	mam(3, "temp", NULL, NULL, &p);
	xt_report("temporary: an instant room archives too (t1)", page_is(&p, t1, 1), "%s",
		  page_desc(&p));
	leave(3, "temp", "t");
	cond = iq_error(3, rj("temp", NULL), "get", "<query xmlns='" XT_NS_DISCO_INFO "'/>", why,
			sizeof(why));
	xt_report("temporary: it ends with its last occupant (item-not-found)",
		  eq(cond, "item-not-found"), "%s", why);
	join(3, "temp", "t", &j);
	iq_ok(3, rj("temp", NULL), "set", "<query xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_XDATA
	      "' type='submit'/></query>", why, sizeof(why));
	mam(3, "temp", NULL, NULL, &p);
	xt_report("temporary: a new room of that name has an empty archive (the old one went "
		  "with the room)", j.created && page_is(&p, NULL, 0), "%s", page_desc(&p));
	leave(3, "temp", "t");
}

/* The service runs with message-rate 1 and message-burst 13 (muc_store.test):
 * the subject and m1..m12 of t_messages fit. */
static void t_rate(void)
{
	struct joined j;
	struct xt_node *n;
	char why[2048];
	int echoed = 0, refused = 0;
	long long end;

	join(3, "fast", "f", &j);
	iq_ok(3, rj("fast", NULL), "set", "<query xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_XDATA
	      "' type='submit'/></query>", why, sizeof(why));
	for (int k = 0; k < 16; k++)
		xt_sendf(s[3], "<message to='%s' type='groupchat' id='f%d'><body>fast</body>"
			 "</message>", rj("fast", NULL), k);
	end = now_ms() + xt_timeout(s[3]);
	while (echoed + refused < 16 && now_ms() < end && (n = xt_read(s[3]))) {
		if (!xt_is(n, XT_NS_CLIENT, "message"))
			continue;
		if (eq(xt_attr(n, "type"), "error") && xt_stanza_error(n) &&
		    eq(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR), "resource-constraint"))
			refused++;
		else if (eq(xt_attr(n, "from"), rj("fast", "f")))
			echoed++;
	}
	/* A slow run may earn a token or two meanwhile. */
	xt_report("limits: 16 messages at once with message-burst 13: 13 go out, the rest "
		  "get resource-constraint (wait)", echoed >= 13 && echoed <= 15 &&
		  echoed + refused == 16, "%d echoed, %d refused", echoed, refused);
	leave(3, "fast", "f");
}

/* ---- phase after ---- */

static void t_back(void)
{
	static const char *const last10[] = { "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10",
					      "m11", "m12" };
	char why[4096], oid[64] = "";
	struct joined j;
	struct xt_node *n;
	struct page p;
	const char *cond;
	bool hist = true;
	FILE *f;

	n = xt_iq(s[3], "get", rj("keep", NULL), "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	xt_report("restart: keep is back, empty, named Kept, muc_persistent",
		  n && eq(xt_attr(n, "type"), "result") && strstr(xt_raw(n), "name='Kept'") &&
		  strstr(xt_raw(n), "var='muc_persistent'") &&
		  strstr(xt_raw(n), "<value>0</value>"), "%s", n ? xt_raw(n) : "none");
	join(2, "keep", "mem", &j);
	for (int k = 0; k < 10; k++)
		hist &= k < j.nhist && eq(j.hist[k], last10[k]);
	xt_report("restart: s2 joins as a member (its affiliation kept)", j.ok && !j.created &&
		  eq(j.aff, "member"), "%s", j.raw);
	xt_report("restart: s2 gets the last 10 messages (historylength 10) with <delay/>, "
		  "then the subject", hist && j.nhist == 10 && j.hist_delay &&
		  eq(j.subject, "kept subject"), "%d history, subject '%s'", j.nhist, j.subject);
	if ((f = state ? fopen(state, "r") : NULL)) {
		if (!fgets(oid, sizeof(oid), f))
			oid[0] = '\0';
		oid[strcspn(oid, "\n")] = '\0';
		fclose(f);
	}
	xt_report("restart: s2's occupant-id is the one it had", oid[0] && eq(j.oid, oid),
		  "%s vs %s", j.oid, oid);
	join(4, "keep", "out", &j);
	xt_report("restart: the outcast s4 still gets forbidden", j.error &&
		  eq(j.cond, "forbidden"), "%s", j.raw);
	join(1, "keep", "boss", &j);
	n = j.ok ? xt_iq(s[1], "get", rj("keep", NULL), "<query xmlns='" NS_MUC_OWNER "'/>") : NULL;
	xt_report("restart: s1 is still owner: its form has persistentroom 1 and historylength "
		  "10", n && strstr(xt_raw(n), "var='muc#roomconfig_historylength'") &&
		  strstr(xt_raw(n), "<value>10</value>") && eq(xt_attr(n, "type"), "result"),
		  "%s", n ? xt_raw(n) : j.raw);
	mam(2, "keep", NULL, NULL, &p);
	xt_report("restart: the archive still has m1..m12, complete",
		  page_is(&p, msg_names, MSGS) && p.complete, "%s", page_desc(&p));
	cond = iq_error(3, rj("temp", NULL), "get", "<query xmlns='" XT_NS_DISCO_INFO "'/>", why,
			sizeof(why));
	xt_report("restart: the temporary room is not back", eq(cond, "item-not-found"), "%s",
		  why);
	xt_report("restart: destroying keep gets a result", iq_ok(1, rj("keep", NULL), "set",
		  "<query xmlns='" NS_MUC_OWNER "'><destroy/></query>", why, sizeof(why)), "%s",
		  why);
	leave(2, "keep", "mem");
	join(1, "keep", "boss", &j);
	iq_ok(1, rj("keep", NULL), "set", "<query xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_XDATA
	      "' type='submit'/></query>", why, sizeof(why));
	mam(1, "keep", NULL, NULL, &p);
	xt_report("restart: a new keep is a new room (201) with an empty archive", j.created &&
		  page_is(&p, NULL, 0), "%s", page_desc(&p));
	leave(1, "keep", "boss");
}

/* ---- XEP-0198: the sender's ack means the room has the message ---- */

#define NS_SM "urn:xmpp:sm:3"
#define LOCK_S 3		/* how long the test holds the archive locked */

/* The highest h of the <a/> elements read within ms (-1: none). */
static long read_acks(struct xt *c, int ms)
{
	long long end = now_ms() + ms, left;
	struct xt_node *n;
	long h = -1;

	while ((left = end - now_ms()) > 0 && (n = xt_read_ms(c, (int)left)))
		if (xt_is(n, NS_SM, "a") && xt_attr(n, "h") && atol(xt_attr(n, "h")) > h)
			h = atol(xt_attr(n, "h"));
	return h;
}

static void t_sm_ack(void)
{
	const char *held = "XEP-0198: while the archive table is locked, the sender's <a/> "
			   "does not cover its groupchat message (the room has not stored it)";
	const char *after = "XEP-0198: once the lock goes, <a/> covers it";
	const char *db = getenv("PARLEY_TEST_DB");
	char err[256], sql[512], marker[512], cmd[1600];
	struct xt *c;
	struct xt_node *n;
	long h_held, h_after = -1;
	bool locked = false;
	FILE *f;

	if (!db || !state) {
		xt_report(held, false, "set-up: PARLEY_TEST_DB, PARLEY_STATE");
		xt_report(after, false, "set-up failed");
		return;
	}
	c = xt_login("127.0.0.1", port, XT_TCP, host, "s3", pass, NULL, "sm", NULL, err,
		     sizeof(err));
	if (c) {
		xt_sendf(c, "<enable xmlns='" NS_SM "'/>");
		while ((n = xt_read(c)) && !xt_is(n, NS_SM, "enabled") && !xt_is(n, NS_SM, "failed"))
			;
		if (!n || !xt_is(n, NS_SM, "enabled")) {
			xt_free(c);
			c = NULL;
			snprintf(err, sizeof(err), "no <enabled/>");
		}
	}
	if (c) {	/* stanzas 1 and 2 of the count: the join of a new room, its form */
		xt_sendf(c, "<presence to='%s'><x xmlns='" NS_MUC "'/></presence>",
			 rj("acks", "acker"));
		n = next_from(c, "presence", rj("acks", "acker"));
		if (!n || !has_status(n, "201"))
			snprintf(err, sizeof(err), "no 201 for the new room acks: %s",
				 n ? xt_raw(n) : "nothing");
		n = n ? xt_iq(c, "set", rj("acks", NULL), "<query xmlns='" NS_MUC_OWNER "'><x "
			      "xmlns='" NS_XDATA "' type='submit'/></query>") : NULL;
		if (!n || !eq(xt_attr(n, "type"), "result")) {
			snprintf(err, sizeof(err), "instant room: %s", n ? xt_raw(n) : "nothing");
			xt_free(c);
			c = NULL;
		}
	}
	/* A psql in the background takes the lock, says so, holds it LOCK_S s. */
	snprintf(sql, sizeof(sql), "%s.lock.sql", state);
	snprintf(marker, sizeof(marker), "%s.locked", state);
	remove(marker);
	if (c && (f = fopen(sql, "w"))) {
		fprintf(f, "BEGIN;\nLOCK TABLE muc_archive IN EXCLUSIVE MODE;\n\\! touch '%s'\n"
			"SELECT pg_sleep(%d);\nCOMMIT;\n", marker, LOCK_S);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "psql '%s' -qAt -f '%s' >/dev/null 2>&1 &", db, sql);
		if (system(cmd) == 0)
			for (int i = 0; i < 100 && !locked; i++) {
				struct timespec ts = { 0, 50 * 1000000L };

				locked = access(marker, F_OK) == 0;
				if (!locked)
					nanosleep(&ts, NULL);
			}
	}
	if (!c || !locked) {
		xt_report(held, false, "set-up: %s", c ? "psql did not take the lock" : err);
		xt_report(after, false, "set-up failed");
		xt_free(c);
		return;
	}
	/* stanza 3: the message; then ask for an ack, and again a second later */
	xt_sendf(c, "<message to='%s' type='groupchat'><body>acked</body></message>"
		 "<r xmlns='" NS_SM "'/>", rj("acks", NULL));
	h_held = read_acks(c, 1000);
	xt_sendf(c, "<r xmlns='" NS_SM "'/>");
	{
		long h = read_acks(c, 500);

		if (h > h_held)
			h_held = h;
	}
	xt_report(held, h_held < 3, "h=%ld while locked (3 would cover the message)", h_held);
	for (int i = 0; i < 2 * LOCK_S + 10 && h_after < 3; i++) {
		long h;

		xt_sendf(c, "<r xmlns='" NS_SM "'/>");
		if ((h = read_acks(c, 1000)) > h_after)
			h_after = h;
	}
	xt_report(after, h_after >= 3, "h=%ld after the lock", h_after);
	remove(sql);
	remove(marker);
	xt_sendf(c, "</stream:stream>");
	xt_free(c);
}

int main(void)
{
	const char *phase = getenv("PARLEY_PHASE");

	host = getenv("PARLEY_HOST");
	pass = getenv("PARLEY_PASS");
	muc = getenv("PARLEY_MUC");
	state = getenv("PARLEY_STATE");
	port = getenv("PARLEY_PORT") ? atoi(getenv("PARLEY_PORT")) : 0;
	if (!host || !pass || !port || !muc || !phase) {
		printf("not ok - environment\n# PARLEY_HOST, PARLEY_PORT, PARLEY_PASS, PARLEY_MUC, "
		       "PARLEY_PHASE\n");
		return 1;
	}
	if (getenv("PARLEY_TEST_TIMEOUT_MS"))
		xt_set_default_timeout(atoi(getenv("PARLEY_TEST_TIMEOUT_MS")));
	for (int i = 1; i <= USERS; i++)
		if (!(s[i] = online(i))) {
			printf("not ok - s%d logs in\n", i);
			return 1;
		}
	if (strcmp(phase, "before") == 0) {
		t_create_persistent();
		t_affiliations();
		t_messages();
		t_paging();
		t_sm_ack();
		t_temporary();
		t_rate();
	} else {
		t_back();
	}
	for (int i = 1; i <= USERS; i++) {
		xt_sendf(s[i], "</stream:stream>");
		xt_free(s[i]);
	}
	return xt_failures ? 1 : 0;
}
