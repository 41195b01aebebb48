/*
 * mod_muc - XEP-0045 Multi-User Chat: rooms on the host's conference service.
 *
 * The module serves conference.HOST (the core's service facility): the
 * service's own disco answers, and every stanza to room@conference.HOST[/nick]
 * comes to on_stanza(). A room lives in memory while it has occupants
 * (temporary rooms, the default), created by the first join, locked until its
 * owner accepts the default configuration (§10.1.2, the instant room).
 *
 * What occupants see: each occupant has a nick and a real full JID; the room
 * sends as room@service/nick, to real JIDs, through the router. Rooms are
 * semi-anonymous (real JIDs go only to moderators), open, unmoderated and
 * public; only moderators change the subject. A joiner gets the recent
 * messages it asks for (§7.2.14) and the subject; moderators kick and give or
 * take voice, admins and owners ban and set affiliations (muc#admin, §8-§10).
 * Persistence, the configuration form, invitations and the archive come with
 * the rest of the group-chat work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jid.h"
#include "log.h"
#include "module.h"
#include "router.h"
#include "stanza.h"
#include "stanza_id.h"
#include "xml.h"

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER NS_MUC "#user"
#define NS_MUC_OWNER NS_MUC "#owner"
#define NS_MUC_ADMIN NS_MUC "#admin"
#define NS_DELAY "urn:xmpp:delay"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_XDATA "jabber:x:data"
#define NS_PING "urn:xmpp:ping"
#define NS_SID "urn:xmpp:sid:0"

struct options {
	long long max_occupants, max_nick_length, max_rooms, history_length;
	const char *name;
};

#define AT(f) MODULE_OPTION_AT(struct options, f)
static const struct module_option options[] = {
	{ "max-occupants", OPT_INT, "1024", 1, 100000, AT(max_occupants),
	  "occupants one room may hold; past it a join gets service-unavailable" },
	{ "max-nick-length", OPT_INT, "64", 1, 1023, AT(max_nick_length),
	  "bytes of an occupant's nick" },
	{ "max-rooms", OPT_INT, "10000", 1, 10000000, AT(max_rooms),
	  "rooms the service holds at once; past it a new room is refused" },
	{ "history-length", OPT_INT, "20", 0, 1000, AT(history_length),
	  "groupchat messages a room keeps for those who join later" },
	{ "name", OPT_STRING, "Chatrooms", 0, 0, AT(name), "the service's name in disco" },
	{ NULL },
};

enum role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };
/* In order of rank: a comparison says who may act on whom. */
enum affiliation { AFF_OUTCAST, AFF_NONE, AFF_MEMBER, AFF_ADMIN, AFF_OWNER, AFF_COUNT };

static const char *const role_names[] = { "none", "visitor", "participant", "moderator" };
static const char *const affiliation_names[] = { "outcast", "none", "member", "admin",
						 "owner" };

struct room;

struct occupant {
	const struct room *room;
	char *nick;
	struct jid *real;		/* the occupant's full JID */
	struct jid *jid;		/* room@service/nick */
	enum role role;
	enum affiliation affiliation;
	struct xml_node *presence;	/* the last one it sent, as the room shows it */
	struct occupant *next;
};

/* A bare JID's standing in the room (§5.2), kept when it is not in it. */
struct affiliate {
	struct jid *bare;
	enum affiliation affiliation;
	struct affiliate *next;
};

/* A groupchat message as a later joiner gets it: with its <delay/>. */
struct past {
	struct xml_node *msg;
	time_t at;
	size_t chars;
};

/* What the owner's muc#roomconfig form sets (§10.2). */
struct room_config {
	char *name, *desc, *secret;	/* NULL: none */
	bool public_room, members_only, moderated, password, whois_anyone, change_subject;
	long long max_users, history;	/* at most the service's options */
};

struct room {
	struct jid *jid;		/* room@service */
	struct room_config cfg;
	struct occupant *occupants;	/* in join order */
	unsigned count;
	bool locked;			/* created, not yet configured by its owner */
	struct xml_node *subject;	/* the message that set it (with <delay/>), or NULL */
	struct affiliate *affiliates;
	struct past *history;		/* a ring of history_length */
	unsigned hist_next, hist_count;
	struct room *next;
};

struct muc {
	struct module *m;
	const struct options *o;
	struct room *rooms;
	unsigned nrooms;
};

/* ---- rooms and occupants ---- */

static struct room *room_find(struct muc *muc, const struct jid *to)
{
	for (struct room *r = muc->rooms; r; r = r->next)
		if (jid_bare_eq(r->jid, to))
			return r;
	return NULL;
}

static struct occupant *by_nick(const struct room *r, const char *nick)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

static struct occupant *by_real(const struct room *r, const struct jid *real)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (jid_eq(o->real, real))
			return o;
	return NULL;
}

static void occupant_free(struct occupant *o)
{
	free(o->nick);
	jid_free(o->real);
	jid_free(o->jid);
	xml_unref(o->presence);
	free(o);
}

static void room_free(struct room *r)
{
	while (r->occupants) {
		struct occupant *o = r->occupants;

		r->occupants = o->next;
		occupant_free(o);
	}
	while (r->affiliates) {
		struct affiliate *a = r->affiliates;

		r->affiliates = a->next;
		jid_free(a->bare);
		free(a);
	}
	for (unsigned i = 0; r->history && i < r->hist_count; i++)
		xml_unref(r->history[i].msg);
	free(r->history);
	xml_unref(r->subject);
	jid_free(r->jid);
	free(r->cfg.name);
	free(r->cfg.desc);
	free(r->cfg.secret);
	free(r);
}

static void room_remove(struct muc *muc, struct room *r)
{
	for (struct room **pp = &muc->rooms; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			muc->nrooms--;
			break;
		}
	}
	log_info("muc", "%s: destroyed with its last occupant", r->jid->full);
	room_free(r);
}

static void occupant_unlink(struct room *r, struct occupant *o)
{
	for (struct occupant **pp = &r->occupants; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			r->count--;
			return;
		}
	}
}

static enum affiliation affiliation_of(const struct room *r, const struct jid *j)
{
	for (const struct affiliate *a = r->affiliates; a; a = a->next)
		if (jid_bare_eq(a->bare, j))
			return a->affiliation;
	return AFF_NONE;
}

/* Records j's bare JID's affiliation (AFF_NONE forgets it). 0, or -1 without
 * memory. */
static int affiliation_set(struct room *r, const struct jid *j, enum affiliation aff)
{
	struct affiliate **pp, *a;

	for (pp = &r->affiliates; *pp; pp = &(*pp)->next)
		if (jid_bare_eq((*pp)->bare, j))
			break;
	if (*pp && aff == AFF_NONE) {
		a = *pp;
		*pp = a->next;
		jid_free(a->bare);
		free(a);
		return 0;
	}
	if (*pp) {
		(*pp)->affiliation = aff;
		return 0;
	}
	if (aff == AFF_NONE)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->bare = jid_bare(j))) {
		free(a);
		return -1;
	}
	a->affiliation = aff;
	*pp = a;
	return 0;
}

static unsigned owners(const struct room *r)
{
	unsigned n = 0;

	for (const struct affiliate *a = r->affiliates; a; a = a->next)
		n += a->affiliation == AFF_OWNER;
	return n;
}

/* ---- what the room sends ---- */

/* Sends a copy of st from `from` to `to` (each recipient's own tree: queues
 * such as XEP-0198's keep what they are given). */
static void send_to(const struct xml_node *st, const char *from, const struct jid *to)
{
	struct xml_node *c = xml_copy(st);

	if (!c)
		return;
	xml_attr_set(c, "from", from);
	xml_attr_set(c, "to", to->full);
	router_route(c);
}

/* An error back to the sender of st (never for an error). */
static void reply_error(const struct xml_node *st, const char *type, const char *cond,
			const char *text)
{
	const char *t = xml_attr(st, "type");
	struct xml_node *e;

	if (t && strcmp(t, "error") == 0)
		return;
	e = stanza_error_reply(st, type, cond, text);
	if (e)
		router_route(e);
}

static void add_status(struct xml_node *x, const char *code)
{
	struct xml_node *s = xml_add_child(x, "status", NULL);

	if (s)
		xml_attr_set(s, "code", code);
}

/*
 * The presence of occupant o as recipient `to` sees it: the occupant's own
 * presence content, and an <x/> with its affiliation and role, its real JID
 * for moderators (semi-anonymous), status 110 for the occupant itself.
 */
static struct xml_node *occupant_presence(const struct occupant *o, const struct occupant *to,
					  bool unavailable, const char *new_nick,
					  const char *const *codes, const char *reason)
{
	struct xml_node *p = o->presence && !unavailable ? xml_copy(o->presence)
		: xml_new("presence", "jabber:client");
	struct xml_node *x, *item;

	if (!p)
		return NULL;
	for (struct xml_node *c = xml_child(p, "x", NS_MUC_USER); c;
	     c = xml_child(p, "x", NS_MUC_USER)) {
		xml_detach(c);
		xml_unref(c);
	}
	xml_attr_set(p, "type", unavailable ? "unavailable" : NULL);
	xml_attr_set(p, "id", NULL);
	x = xml_add_child(p, "x", NS_MUC_USER);
	item = x ? xml_add_child(x, "item", NULL) : NULL;
	if (!item) {
		xml_unref(p);
		return NULL;
	}
	xml_attr_set(item, "affiliation", affiliation_names[o->affiliation]);
	xml_attr_set(item, "role", unavailable && !new_nick ? "none" : role_names[o->role]);
	if (to->role == ROLE_MODERATOR || to == o || o->room->cfg.whois_anyone)
		xml_attr_set(item, "jid", o->real->full);
	if (new_nick)
		xml_attr_set(item, "nick", new_nick);
	if (reason && *reason) {
		struct xml_node *rs = xml_add_child(item, "reason", NULL);

		if (rs)
			xml_add_text(rs, reason, strlen(reason));
	}
	for (; codes && *codes; codes++)
		add_status(x, *codes);
	if (to == o)
		add_status(x, "110");
	return p;
}

static void send_presence_of(const struct occupant *o, const struct occupant *to,
			     bool unavailable, const char *new_nick, const char *const *codes,
			     const char *reason)
{
	struct xml_node *p = occupant_presence(o, to, unavailable, new_nick, codes, reason);

	if (!p)
		return;
	xml_attr_set(p, "from", o->jid->full);
	xml_attr_set(p, "to", to->real->full);
	router_route(p);
}

static void broadcast_presence(const struct room *r, const struct occupant *o,
			       bool unavailable, const char *new_nick, const char *const *codes,
			       const char *reason)
{
	for (const struct occupant *to = r->occupants; to; to = to->next)
		send_presence_of(o, to, unavailable, new_nick, codes, reason);
}

static void send_subject(const struct room *r, const struct occupant *to)
{
	struct xml_node *m;

	if (r->subject) {
		send_to(r->subject, xml_attr(r->subject, "from"), to->real);
		return;
	}
	/* §7.2.15: the empty subject ends the join, so clients know it is done. */
	m = xml_new("message", "jabber:client");
	if (m && xml_add_child(m, "subject", NULL)) {
		xml_attr_set(m, "type", "groupchat");
		xml_attr_set(m, "from", r->jid->full);
		xml_attr_set(m, "to", to->real->full);
		router_route(m);
	} else {
		xml_unref(m);
	}
}

/* ---- history (§7.2.14): what a new occupant gets before the subject ---- */

static void add_delay(struct xml_node *m, const struct room *r, time_t at)
{
	struct xml_node *d = xml_add_child(m, "delay", NS_DELAY);
	char stamp[32];
	struct tm tm;

	if (!d)
		return;
	gmtime_r(&at, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	xml_attr_set(d, "from", r->jid->full);
	xml_attr_set(d, "stamp", stamp);
}

static void history_add(struct muc *muc, struct room *r, const struct xml_node *m)
{
	unsigned len = (unsigned)muc->o->history_length;
	struct xml_node *c;
	struct past *p;

	if (!len || !r->history || !(c = xml_copy(m)))
		return;
	xml_attr_set(c, "to", NULL);
	add_delay(c, r, time(NULL));
	p = &r->history[r->hist_next];
	if (r->hist_count == len)
		xml_unref(p->msg);
	else
		r->hist_count++;
	p->msg = c;
	p->at = time(NULL);
	p->chars = 0;	/* measured when a join asks for maxchars */
	r->hist_next = (r->hist_next + 1) % len;
}

/* A non-negative number attribute of the <history/> request, or -1. */
static long history_number(const struct xml_node *h, const char *name)
{
	const char *v = h ? xml_attr(h, name) : NULL;
	char *end;
	long n;

	if (!v || !*v)
		return -1;
	n = strtol(v, &end, 10);
	return *end || n < 0 ? -1 : n;
}

/* XEP-0082 date-time, UTC or with an offset; fractions ignored. -1 if bad. */
static time_t parse_stamp(const char *s)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, used = 0;
	const char *z;
	time_t t;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
		return -1;
	z = s + used;
	if (*z == '.')
		for (z++; *z >= '0' && *z <= '9'; z++)
			;
	if ((*z == '+' || *z == '-') && sscanf(z + 1, "%2d:%2d", &oh, &om) == 2) {
		if (*z == '-')
			oh = -oh, om = -om;
	} else if (*z != 'Z') {
		return -1;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	return t == (time_t)-1 ? -1 : t - (oh * 3600 + om * 60);
}

static void send_history(struct muc *muc, struct room *r, const struct occupant *to,
			 const struct xml_node *join)
{
	const struct xml_node *x = xml_child(join, "x", NS_MUC);
	const struct xml_node *h = x ? xml_child(x, "history", NS_MUC) : NULL;
	long maxstanzas = history_number(h, "maxstanzas"), maxchars = history_number(h, "maxchars");
	long seconds = history_number(h, "seconds");
	time_t since = h ? parse_stamp(xml_attr(h, "since")) : -1;
	unsigned len = (unsigned)muc->o->history_length, n = 0;
	size_t chars = 0;

	if (maxstanzas < 0 || maxstanzas > r->cfg.history)
		maxstanzas = (long)r->cfg.history;
	if (seconds >= 0 && (since < 0 || time(NULL) - seconds > since))
		since = time(NULL) - seconds;
	/* Newest first, until a limit says stop; then sent oldest first. */
	for (; n < r->hist_count; n++) {
		struct past *p = &r->history[(r->hist_next + len - 1 - n) % len];

		if (maxstanzas >= 0 && n >= (unsigned long)maxstanzas)
			break;
		if (since >= 0 && p->at < since)
			break;
		if (maxchars >= 0) {
			if (!p->chars) {
				char *text = xml_to_string(p->msg, &p->chars);

				free(text);
			}
			if (chars + p->chars > (unsigned long)maxchars)
				break;
			chars += p->chars;
		}
	}
	while (n-- > 0) {
		struct past *p = &r->history[(r->hist_next + len - 1 - n) % len];

		send_to(p->msg, xml_attr(p->msg, "from"), to->real);
	}
}

/* ---- presence: join, change, leave ---- */

/* What the room keeps of a presence: its content without the MUC <x/>s. */
static struct xml_node *kept_presence(const struct xml_node *st)
{
	struct xml_node *p = xml_copy(st), *c;

	if (!p)
		return NULL;
	while ((c = xml_child(p, "x", NS_MUC))) {
		xml_detach(c);
		xml_unref(c);
	}
	xml_attr_set(p, "from", NULL);
	xml_attr_set(p, "to", NULL);
	return p;
}

static bool nick_ok(struct muc *muc, const char *nick)
{
	return nick && *nick && (long long)strlen(nick) <= muc->o->max_nick_length;
}

static void join(struct muc *muc, struct room *r, struct xml_node *st, const struct jid *from,
		 const struct jid *to)
{
	static const char *const created[] = { "201", NULL }, *const open_jids[] = { "100", NULL };
	const struct xml_node *x = xml_child(st, "x", NS_MUC);
	struct occupant *o, **pp;
	bool fresh = r == NULL;
	enum affiliation aff = r ? affiliation_of(r, from) : AFF_OWNER;

	if (!nick_ok(muc, to->resource)) {
		reply_error(st, "modify", "jid-malformed", "a nick is needed, and not that long");
		return;
	}
	if (r && r->locked) {
		/* §10.1.1: nobody but the owner enters before it is configured. */
		reply_error(st, "cancel", "item-not-found", "the room is not configured yet");
		return;
	}
	if (aff == AFF_OUTCAST) {
		reply_error(st, "auth", "forbidden", "you are banned from this room");	/* §7.2.7 */
		return;
	}
	if (r && r->cfg.password && aff < AFF_OWNER) {
		char *given = x ? xml_child_text(x, "password", NULL) : NULL;
		bool ok = given && r->cfg.secret && strcmp(given, r->cfg.secret) == 0;

		free(given);
		if (!ok) {	/* §7.2.6 */
			reply_error(st, "auth", "not-authorized", "a password is required");
			return;
		}
	}
	if (r && r->cfg.members_only && aff < AFF_MEMBER) {
		reply_error(st, "auth", "registration-required", "this room is for members");
		return;	/* §7.2.5 */
	}
	/* One resource per nick for now (§7.2.9); several resources of one user
	 * under one nick come with the rest of the group-chat work. */
	if (r && by_nick(r, to->resource)) {
		reply_error(st, "cancel", "conflict", "that nick is in use in this room");
		return;
	}
	if (r && aff < AFF_ADMIN && r->count >= (unsigned)r->cfg.max_users) {
		reply_error(st, "wait", "service-unavailable", "the room is full");
		return;
	}
	if (fresh) {
		if (muc->nrooms >= (unsigned)muc->o->max_rooms) {
			reply_error(st, "wait", "resource-constraint", "too many rooms");
			return;
		}
		r = calloc(1, sizeof(*r));
		if (r && muc->o->history_length)
			r->history = calloc((size_t)muc->o->history_length, sizeof(*r->history));
		if (!r || !(r->jid = jid_bare(to)) ||
		    (muc->o->history_length && !r->history) ||
		    affiliation_set(r, from, AFF_OWNER) < 0) {
			if (r)
				room_free(r);
			reply_error(st, "wait", "internal-server-error", NULL);
			return;
		}
		r->locked = true;
		r->cfg.public_room = true;
		r->cfg.max_users = muc->o->max_occupants;
		r->cfg.history = muc->o->history_length;
		r->next = muc->rooms;
		muc->rooms = r;
		muc->nrooms++;
		log_info("muc", "%s: created by %s", r->jid->full, from->full);
	}
	o = calloc(1, sizeof(*o));
	if (o) {
		o->room = r;
		o->nick = strdup(to->resource);
		o->real = jid_copy(from);
		o->jid = jid_copy(to);
		o->presence = kept_presence(st);
	}
	if (!o || !o->nick || !o->real || !o->jid || !o->presence) {
		if (o)
			occupant_free(o);
		reply_error(st, "wait", "internal-server-error", NULL);
		if (fresh)
			room_remove(muc, r);
		return;
	}
	o->affiliation = aff;
	/* §7.1.2: a moderated room gives voice to members and above only. */
	o->role = aff >= AFF_ADMIN ? ROLE_MODERATOR : r->cfg.moderated && aff < AFF_MEMBER
		? ROLE_VISITOR : ROLE_PARTICIPANT;
	/* §7.2.3: the others' presence first, then the new one to everyone. */
	for (const struct occupant *y = r->occupants; y; y = y->next)
		send_presence_of(y, o, false, NULL, NULL, NULL);
	for (pp = &r->occupants; *pp; pp = &(*pp)->next)
		;
	*pp = o;
	r->count++;
	/* A new room has its creator alone, told that the room is new (201). */
	if (fresh)
		send_presence_of(o, o, false, NULL, created, NULL);
	else
		for (const struct occupant *y = r->occupants; y; y = y->next)
			send_presence_of(o, y, false, NULL, y == o && r->cfg.whois_anyone ?
					 open_jids : NULL, NULL);
	send_history(muc, r, o, st);
	send_subject(r, o);
}

static void leave(struct muc *muc, struct room *r, struct occupant *o, const struct xml_node *st)
{
	struct xml_node *status = st ? xml_child(st, "status", NULL) : NULL;

	if (status) {
		/* §7.14: the leaving occupant's status goes with its unavailable. */
		xml_unref(o->presence);
		o->presence = kept_presence(st);
	}
	broadcast_presence(r, o, true, NULL, NULL, NULL);
	occupant_unlink(r, o);
	occupant_free(o);
	if (!r->count)
		room_remove(muc, r);
}

static void change_nick(struct muc *muc, struct room *r, struct occupant *o,
			struct xml_node *st, const struct jid *to)
{
	static const char *const changed[] = { "303", NULL };
	struct occupant *taken = by_nick(r, to->resource);
	char *nick;
	struct jid *jid;

	if (!nick_ok(muc, to->resource)) {
		reply_error(st, "modify", "jid-malformed", "a nick is needed, and not that long");
		return;
	}
	if (taken) {
		reply_error(st, "cancel", "conflict", "that nick is in use in this room");
		return;
	}
	nick = strdup(to->resource);
	jid = jid_copy(to);
	if (!nick || !jid) {
		free(nick);
		jid_free(jid);
		reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	/* §7.6: unavailable from the old nick with 303 and the new one, then
	 * the presence from the new nick. */
	broadcast_presence(r, o, true, nick, changed, NULL);
	free(o->nick);
	jid_free(o->jid);
	o->nick = nick;
	o->jid = jid;
	broadcast_presence(r, o, false, NULL, NULL, NULL);
}

static void on_presence(struct muc *muc, struct xml_node *st, const struct jid *from,
			const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct room *r = room_find(muc, to);
	struct occupant *o = r ? by_real(r, from) : NULL;
	struct xml_node *kept;

	if (type && strcmp(type, "unavailable") == 0) {
		if (o)
			leave(muc, r, o, st);
		return;
	}
	if (type)
		return;	/* errors, subscriptions: nothing for a room to do */
	if (!to->resource) {
		reply_error(st, "modify", "jid-malformed", "join with room@service/nick");
		return;
	}
	if (!o) {
		join(muc, r, st, from, to);
		return;
	}
	if (strcmp(o->nick, to->resource) != 0) {
		change_nick(muc, r, o, st, to);
		return;
	}
	/* §7.7: a presence update goes to everyone. */
	if ((kept = kept_presence(st))) {
		xml_unref(o->presence);
		o->presence = kept;
	}
	broadcast_presence(r, o, false, NULL, NULL, NULL);
}

/* ---- messages ---- */

static void groupchat(struct muc *muc, struct room *r, struct occupant *o, struct xml_node *st)
{
	struct xml_node *m, *c, *next, *sid;
	char id[STANZA_ID_LEN + 1];
	bool subject = xml_child(st, "subject", NULL) && !xml_child(st, "body", NULL);

	if (o->role < ROLE_PARTICIPANT) {
		reply_error(st, "auth", "forbidden", "visitors have no voice in this room");
		return;
	}
	if (!(m = xml_copy(st)))
		return;
	if (subject && o->role != ROLE_MODERATOR && !r->cfg.change_subject) {
		xml_unref(m);
		reply_error(st, "auth", "forbidden", "only moderators change the subject");
		return;
	}
	/* XEP-0359 §3.1: our stanza-id by the room; a forged one goes. */
	for (c = xml_child(m, "stanza-id", NS_SID); c; c = next) {
		next = xml_next(c, "stanza-id", NS_SID);
		if (xml_attr(c, "by") && strcmp(xml_attr(c, "by"), r->jid->full) == 0) {
			xml_detach(c);
			xml_unref(c);
		}
	}
	if (!subject && (sid = xml_add_child(m, "stanza-id", NS_SID))) {
		stanza_id_new(id);
		xml_attr_set(sid, "id", id);
		xml_attr_set(sid, "by", r->jid->full);
	}
	xml_attr_set(m, "from", o->jid->full);
	for (const struct occupant *to = r->occupants; to; to = to->next)
		send_to(m, o->jid->full, to->real);
	if (subject) {
		/* Kept for joiners, with when it was set (§7.2.15). */
		add_delay(m, r, time(NULL));
		xml_unref(r->subject);
		r->subject = xml_ref(m);
	} else {
		history_add(muc, r, m);
	}
	xml_unref(m);
}

static void on_message(struct muc *muc, struct xml_node *st, const struct jid *from,
		       const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct room *r = room_find(muc, to);
	struct occupant *o = r ? by_real(r, from) : NULL, *target;

	if (type && strcmp(type, "error") == 0)
		return;
	if (!o) {
		reply_error(st, "modify", "not-acceptable", "only occupants may send to the room");
		return;
	}
	if (!to->resource) {
		if (type && strcmp(type, "groupchat") == 0)
			groupchat(muc, r, o, st);
		else
			reply_error(st, "modify", "bad-request", "messages to the room are "
				    "type groupchat");
		return;
	}
	/* §7.5: a private message, from the sender's occupant JID. */
	target = by_nick(r, to->resource);
	if (!target) {
		reply_error(st, "cancel", "item-not-found", "no such occupant");
		return;
	}
	if (type && strcmp(type, "groupchat") == 0) {
		reply_error(st, "modify", "bad-request", "a private message is not groupchat");
		return;
	}
	send_to(st, o->jid->full, target->real);
}

/* ---- IQs to rooms and occupants ---- */

static void iq_result(const struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *r = stanza_iq_result(st, payload);

	if (!r)
		return;
	xml_attr_set(r, "from", xml_attr(st, "to"));
	xml_attr_set(r, "to", xml_attr(st, "from"));
	router_route(r);
}

static void add_feature(struct xml_node *q, const char *var)
{
	struct xml_node *f = xml_add_child(q, "feature", NULL);

	if (f)
		xml_attr_set(f, "var", var);
}

/* §6.4: what a room is. */
static void room_info(const struct room *r, const struct xml_node *st)
{
	const struct room_config *c = &r->cfg;
	const char *const features[] = {
		NS_MUC, c->public_room ? "muc_public" : "muc_hidden", "muc_temporary",
		c->members_only ? "muc_membersonly" : "muc_open",
		c->moderated ? "muc_moderated" : "muc_unmoderated",
		c->whois_anyone ? "muc_nonanonymous" : "muc_semianonymous",
		c->password ? "muc_passwordprotected" : "muc_unsecured", NS_DISCO_INFO,
		NS_DISCO_ITEMS, NS_SID,
		/* XEP-0410 §4: the room answers self-pings itself */
		NS_MUC "#self-ping-optimization", NULL,
	};
	struct xml_node *q = xml_new("query", NS_DISCO_INFO), *id;

	if (!q)
		return;
	id = xml_add_child(q, "identity", NULL);
	if (id) {
		xml_attr_set(id, "category", "conference");
		xml_attr_set(id, "type", "text");
		xml_attr_set(id, "name", c->name ? c->name : r->jid->local);
	}
	for (const char *const *f = features; *f; f++)
		add_feature(q, *f);
	iq_result(st, q);
}

/* ---- moderation (§8, §9, §10): muc#admin ---- */

static int role_parse(const char *s)
{
	for (int i = 0; s && i <= ROLE_MODERATOR; i++)
		if (strcmp(s, role_names[i]) == 0)
			return i;
	return -1;
}

static int affiliation_parse(const char *s)
{
	for (int i = 0; s && i < AFF_COUNT; i++)
		if (strcmp(s, affiliation_names[i]) == 0)
			return i;
	return -1;
}

/* One <item/> of a muc#admin set, checked: who, what, and whether the actor
 * may (§8.2-§8.6 roles by nick, §9-§10 affiliations by JID). */
struct change {
	const char *nick;		/* a role change: whose (looked up when applied) */
	struct jid *jid;		/* an affiliation change (bare) */
	int role, affiliation;
	char *reason;
};

static const char *change_check(const struct room *r, const struct occupant *actor,
				const struct xml_node *item, struct change *c,
				const char **cond)
{
	const char *nick = xml_attr(item, "nick"), *jid = xml_attr(item, "jid");
	const struct occupant *target;
	struct jid *full;

	c->role = role_parse(xml_attr(item, "role"));
	c->affiliation = affiliation_parse(xml_attr(item, "affiliation"));
	*cond = "bad-request";
	if ((c->role < 0) == (c->affiliation < 0))
		return "an item changes a role or an affiliation";
	*cond = "forbidden";
	if (c->role >= 0) {
		if (!nick)
			return (*cond = "bad-request"), "a role change names a nick";
		if (actor->role != ROLE_MODERATOR)
			return "only moderators change roles";
		if (!(target = by_nick(r, nick)))
			return (*cond = "item-not-found"), "no such occupant";
		c->nick = nick;
		/* §8.2, §8.4: nobody is kicked or muted by a moderator of lower
		 * affiliation; an admin or owner is not made a visitor or kicked by a
		 * participant. Kicking oneself is refused (§8.2 allows conflict). */
		if (c->role == ROLE_NONE && target == actor)
			return (*cond = "conflict"), "you cannot kick yourself";
		if (c->role < ROLE_PARTICIPANT && (target->affiliation > actor->affiliation ||
		    (target->affiliation >= AFF_ADMIN && actor->affiliation < AFF_ADMIN)))
			return (*cond = "not-allowed"), "that occupant's affiliation is above yours";
		if ((c->role == ROLE_MODERATOR || target->role == ROLE_MODERATOR) &&
		    actor->affiliation < AFF_ADMIN)
			return "only admins and owners grant or revoke moderation";
		return NULL;
	}
	if (!jid || !(full = jid_new(jid, NULL)))
		return (*cond = "jid-malformed"), "an affiliation change names a JID";
	c->jid = jid_bare(full);
	jid_free(full);
	if (!c->jid)
		return (*cond = "internal-server-error"), "out of memory";
	if (actor->affiliation < AFF_ADMIN)
		return "only admins and owners change affiliations";
	{
		enum affiliation now = affiliation_of(r, c->jid);

		/* §9, §10: owners alone make or unmake admins and owners. */
		/* Banning one's better is not-allowed (§9.1); changing the admin
		 * or owner lists is for owners, forbidden to others (§10.5, §10.8). */
		if (actor->affiliation < AFF_OWNER && now >= AFF_ADMIN &&
		    c->affiliation == AFF_OUTCAST)
			return (*cond = "not-allowed"), "an admin cannot ban an admin or owner";
		if (actor->affiliation < AFF_OWNER && (now >= AFF_ADMIN ||
						       c->affiliation >= AFF_ADMIN))
			return "only owners change admins and owners";
		if (now == AFF_OWNER && c->affiliation != AFF_OWNER && owners(r) == 1)
			return (*cond = "conflict"), "the room's only owner stays owner";
	}
	return NULL;
}

static void change_apply(struct room *r, struct change *c)
{
	static const char *const kicked[] = { "307", NULL }, *const banned[] = { "301", NULL };

	if (c->nick) {
		/* Looked up now: an earlier item of the batch may have kicked it. */
		struct occupant *o = by_nick(r, c->nick);

		if (!o)
			return;
		if (c->role == ROLE_NONE) {
			/* §8.2: kicked, told why, and gone. */
			o->role = ROLE_NONE;
			broadcast_presence(r, o, true, NULL, kicked, c->reason);
			occupant_unlink(r, o);
			occupant_free(o);
			return;
		}
		o->role = (enum role)c->role;
		broadcast_presence(r, o, false, NULL, NULL, c->reason);
		return;
	}
	if (affiliation_set(r, c->jid, (enum affiliation)c->affiliation) < 0)
		return;
	for (struct occupant *o = r->occupants, *next; o; o = next) {
		next = o->next;
		if (!jid_bare_eq(o->real, c->jid))
			continue;
		o->affiliation = (enum affiliation)c->affiliation;
		if (o->affiliation == AFF_OUTCAST) {
			/* §9.1: banned, and out. */
			o->role = ROLE_NONE;
			broadcast_presence(r, o, true, NULL, banned, c->reason);
			occupant_unlink(r, o);
			occupant_free(o);
			continue;
		}
		o->role = o->affiliation >= AFF_ADMIN ? ROLE_MODERATOR
			: o->role == ROLE_MODERATOR ? ROLE_PARTICIPANT : o->role;
		broadcast_presence(r, o, false, NULL, NULL, c->reason);
	}
}

#define ADMIN_ITEMS_MAX 64	/* items in one muc#admin set */

static void admin_set(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct xml_node *query)
{
	struct change c[ADMIN_ITEMS_MAX] = { { 0 } };
	const char *why = NULL, *cond = "bad-request";
	unsigned n = 0;

	if (!o) {
		reply_error(st, "auth", "forbidden", "you are not in this room");
		return;
	}
	/* Every item is checked before any is applied (§9.5: a batch). */
	for (const struct xml_node *it = xml_child(query, "item", NULL); it && !why;
	     it = xml_next(it, "item", NULL)) {
		if (n == ADMIN_ITEMS_MAX) {
			why = "too many items at once";
			cond = "policy-violation";
			break;
		}
		why = change_check(r, o, it, &c[n], &cond);
		c[n].reason = xml_child_text(it, "reason", NULL);
		n++;
	}
	if (!why && !n)
		why = "no item";
	if (why)
		reply_error(st, NULL, cond, why);
	else
		iq_result(st, NULL);
	for (unsigned i = 0; i < n; i++) {
		if (!why)
			change_apply(r, &c[i]);
		jid_free(c[i].jid);
		free(c[i].reason);
	}
	if (!r->count)
		room_remove(muc, r);	/* a moderator who kicked itself was the last */
}

static void admin_get(struct room *r, struct occupant *o, const struct xml_node *st,
		      const struct xml_node *query)
{
	const struct xml_node *it = xml_child(query, "item", NULL);
	int aff = it ? affiliation_parse(xml_attr(it, "affiliation")) : -1;
	int role = it ? role_parse(xml_attr(it, "role")) : -1;
	struct xml_node *q;

	if ((aff < 0) == (role < 0)) {
		reply_error(st, "modify", "bad-request", "ask for one affiliation or one role");
		return;
	}
	/* §9.5, §8.5: lists are for admins and owners, roles for moderators. */
	if (!o || (aff >= 0 && o->affiliation < AFF_ADMIN) ||
	    (role >= 0 && o->role != ROLE_MODERATOR)) {
		reply_error(st, "auth", "forbidden", "you may not see that list");
		return;
	}
	if (!(q = xml_new("query", NS_MUC_ADMIN)))
		return;
	if (aff >= 0) {
		for (const struct affiliate *a = r->affiliates; a; a = a->next) {
			struct xml_node *i;

			if ((int)a->affiliation != aff || !(i = xml_add_child(q, "item", NULL)))
				continue;
			xml_attr_set(i, "affiliation", affiliation_names[a->affiliation]);
			xml_attr_set(i, "jid", a->bare->full);
		}
	} else {
		for (const struct occupant *x = r->occupants; x; x = x->next) {
			struct xml_node *i;

			if ((int)x->role != role || !(i = xml_add_child(q, "item", NULL)))
				continue;
			xml_attr_set(i, "affiliation", affiliation_names[x->affiliation]);
			xml_attr_set(i, "role", role_names[x->role]);
			xml_attr_set(i, "nick", x->nick);
			xml_attr_set(i, "jid", x->real->full);
		}
	}
	iq_result(st, q);
}

/* ---- the owner: configuration (§10.2) and destruction (§10.9) ---- */

#define NS_ROOMCONFIG NS_MUC "#roomconfig"

static void form_field(struct xml_node *x, const char *var, const char *type,
		       const char *label, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NULL), *v;

	if (!f)
		return;
	xml_attr_set(f, "var", var);
	xml_attr_set(f, "type", type);
	if (label)
		xml_attr_set(f, "label", label);
	if (value && (v = xml_add_child(f, "value", NULL)))
		xml_add_text(v, value, strlen(value));
}

static void whois_options(struct xml_node *x)
{
	struct xml_node *f = xml_child(x, "field", NULL);

	for (; f; f = xml_next(f, "field", NULL)) {
		if (strcmp(xml_attr(f, "var") ? xml_attr(f, "var") : "",
			   "muc#roomconfig_whois") != 0)
			continue;
		for (int i = 0; i < 2; i++) {
			static const char *const v[] = { "moderators", "anyone" };
			struct xml_node *o = xml_add_child(f, "option", NULL), *val;

			if (o && (val = xml_add_child(o, "value", NULL)))
				xml_add_text(val, v[i], strlen(v[i]));
		}
	}
}

static void owner_get(struct room *r, const struct xml_node *st)
{
	const struct room_config *c = &r->cfg;
	struct xml_node *q = xml_new("query", NS_MUC_OWNER), *x;
	char max[24], hist[24];

	x = q ? xml_add_child(q, "x", NS_XDATA) : NULL;
	if (!x) {
		xml_unref(q);
		return;
	}
	snprintf(max, sizeof(max), "%lld", c->max_users);
	snprintf(hist, sizeof(hist), "%lld", c->history);
	xml_attr_set(x, "type", "form");
	form_field(x, "FORM_TYPE", "hidden", NULL, NS_ROOMCONFIG);
	form_field(x, "muc#roomconfig_roomname", "text-single", "Name", c->name);
	form_field(x, "muc#roomconfig_roomdesc", "text-single", "Description", c->desc);
	form_field(x, "muc#roomconfig_publicroom", "boolean", "Listed in the room list",
		   c->public_room ? "1" : "0");
	form_field(x, "muc#roomconfig_membersonly", "boolean", "Members only",
		   c->members_only ? "1" : "0");
	form_field(x, "muc#roomconfig_moderatedroom", "boolean", "Moderated",
		   c->moderated ? "1" : "0");
	form_field(x, "muc#roomconfig_passwordprotectedroom", "boolean", "Password protected",
		   c->password ? "1" : "0");
	form_field(x, "muc#roomconfig_roomsecret", "text-private", "Password", c->secret);
	form_field(x, "muc#roomconfig_maxusers", "text-single", "Most occupants", max);
	form_field(x, "muc#roomconfig_whois", "list-single", "Who sees real JIDs",
		   c->whois_anyone ? "anyone" : "moderators");
	whois_options(x);
	form_field(x, "muc#roomconfig_changesubject", "boolean", "Occupants change the subject",
		   c->change_subject ? "1" : "0");
	form_field(x, "muc#roomconfig_historylength", "text-single", "Messages of history",
		   hist);
	iq_result(st, q);
}

static bool parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "1") || !strcmp(v, "true"))
		return *out = true, true;
	if (!strcmp(v, "0") || !strcmp(v, "false"))
		return *out = false, true;
	return false;
}

/* A count up to max; 0 means max when zero_is_max (maxusers: no limit). */
static bool parse_count(const char *v, long long max, bool zero_is_max, long long *out)
{
	char *end;
	long long n = strtoll(v, &end, 10);

	if (!*v || *end || n < 0)
		return false;
	*out = n > max || (n == 0 && zero_is_max) ? max : n;
	return true;
}

static bool parse_whois(const char *v, bool *anyone)
{
	if (strcmp(v, "anyone") && strcmp(v, "moderators"))
		return false;
	*anyone = strcmp(v, "anyone") == 0;
	return true;
}

/* Applies a submitted form to a copy; the room takes it only if it all parses. */
static const char *config_parse(struct muc *muc, const struct xml_node *x,
				struct room_config *c)
{
	for (const struct xml_node *f = xml_child(x, "field", NULL); f;
	     f = xml_next(f, "field", NULL)) {
		const char *var = xml_attr(f, "var");
		char *v = xml_child_text(f, "value", NULL);
		const char *val = v ? v : "";
		bool ok = true;

		if (!var || !strcmp(var, "FORM_TYPE"))
			ok = !var || !strcmp(val, NS_ROOMCONFIG);
		else if (!strcmp(var, "muc#roomconfig_roomname"))
			free(c->name), c->name = *val ? strdup(val) : NULL;
		else if (!strcmp(var, "muc#roomconfig_roomdesc"))
			free(c->desc), c->desc = *val ? strdup(val) : NULL;
		else if (!strcmp(var, "muc#roomconfig_roomsecret"))
			free(c->secret), c->secret = *val ? strdup(val) : NULL;
		else if (!strcmp(var, "muc#roomconfig_publicroom"))
			ok = parse_bool(val, &c->public_room);
		else if (!strcmp(var, "muc#roomconfig_membersonly"))
			ok = parse_bool(val, &c->members_only);
		else if (!strcmp(var, "muc#roomconfig_moderatedroom"))
			ok = parse_bool(val, &c->moderated);
		else if (!strcmp(var, "muc#roomconfig_passwordprotectedroom"))
			ok = parse_bool(val, &c->password);
		else if (!strcmp(var, "muc#roomconfig_changesubject"))
			ok = parse_bool(val, &c->change_subject);
		else if (!strcmp(var, "muc#roomconfig_maxusers"))
			ok = parse_count(val, muc->o->max_occupants, true, &c->max_users);
		else if (!strcmp(var, "muc#roomconfig_historylength"))
			ok = parse_count(val, muc->o->history_length, false, &c->history);
		else if (!strcmp(var, "muc#roomconfig_whois"))
			ok = parse_whois(val, &c->whois_anyone);
		/* Other fields (persistence, languages...) are not offered yet:
		 * ignored, as a XEP-0004 form processor may. */
		free(v);
		if (!ok)
			return var ? var : "FORM_TYPE";
	}
	if (c->password && !c->secret)
		return "muc#roomconfig_roomsecret";
	return NULL;
}

static void config_free(struct room_config *c)
{
	free(c->name);
	free(c->desc);
	free(c->secret);
}

static int config_copy(const struct room_config *from, struct room_config *to)
{
	*to = *from;
	to->name = from->name ? strdup(from->name) : NULL;
	to->desc = from->desc ? strdup(from->desc) : NULL;
	to->secret = from->secret ? strdup(from->secret) : NULL;
	if ((from->name && !to->name) || (from->desc && !to->desc) ||
	    (from->secret && !to->secret)) {
		config_free(to);
		return -1;
	}
	return 0;
}

/* §10.2.1: occupants are told the configuration changed (104), and how
 * their privacy did: 172 real JIDs now public, 173 no longer. */
static void announce_change(const struct room *r, const char *privacy)
{
	for (const struct occupant *to = r->occupants; to; to = to->next) {
		struct xml_node *m = xml_new("message", "jabber:client");
		struct xml_node *x = m ? xml_add_child(m, "x", NS_MUC_USER) : NULL;

		if (!x) {
			xml_unref(m);
			return;
		}
		add_status(x, "104");
		if (privacy)
			add_status(x, privacy);
		xml_attr_set(m, "type", "groupchat");
		xml_attr_set(m, "from", r->jid->full);
		xml_attr_set(m, "to", to->real->full);
		router_route(m);
	}
}

/* §10.2: a room made members-only sends its non-members out (322). */
static void remove_non_members(struct room *r)
{
	static const char *const gone[] = { "322", NULL };

	for (struct occupant *o = r->occupants, *next; o; o = next) {
		next = o->next;
		if (o->affiliation >= AFF_MEMBER)
			continue;
		o->role = ROLE_NONE;
		broadcast_presence(r, o, true, NULL, gone, NULL);
		occupant_unlink(r, o);
		occupant_free(o);
	}
}

/* §10.9: everyone out, told where to go, and the room gone. */
static void destroy(struct muc *muc, struct room *r, const struct xml_node *st,
		    const struct xml_node *d)
{
	const char *venue = xml_attr(d, "jid");
	char *reason = xml_child_text(d, "reason", NULL);

	iq_result(st, NULL);
	for (const struct occupant *o = r->occupants; o; o = o->next) {
		struct xml_node *p = xml_new("presence", "jabber:client");
		struct xml_node *x = p ? xml_add_child(p, "x", NS_MUC_USER) : NULL;
		struct xml_node *item = x ? xml_add_child(x, "item", NULL) : NULL;
		struct xml_node *dd = item ? xml_add_child(x, "destroy", NULL) : NULL, *rs;

		if (!dd) {
			xml_unref(p);
			continue;
		}
		xml_attr_set(item, "affiliation", "none");
		xml_attr_set(item, "role", "none");
		if (venue)
			xml_attr_set(dd, "jid", venue);
		if (reason && (rs = xml_add_child(dd, "reason", NULL)))
			xml_add_text(rs, reason, strlen(reason));
		xml_attr_set(p, "type", "unavailable");
		xml_attr_set(p, "from", o->jid->full);
		xml_attr_set(p, "to", o->real->full);
		router_route(p);
	}
	free(reason);
	log_info("muc", "%s: destroyed by its owner", r->jid->full);
	room_remove(muc, r);
}

static void owner_set(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct xml_node *query)
{
	const struct xml_node *x = xml_child(query, "x", NS_XDATA);
	const struct xml_node *d = xml_child(query, "destroy", NULL);
	const char *type = x ? xml_attr(x, "type") : NULL, *bad, *privacy;
	struct room_config c;
	bool was_locked = r->locked, members_only;

	if (!o || o->affiliation != AFF_OWNER) {
		reply_error(st, "auth", "forbidden", "only the room's owner does that");
		return;
	}
	if (d) {
		destroy(muc, r, st, d);
		return;
	}
	/* §10.1.2: an empty submitted form is the instant room; a cancelled
	 * form leaves the room as it is. */
	if (!type || (strcmp(type, "submit") && strcmp(type, "cancel"))) {
		reply_error(st, "modify", "bad-request", "a submit or cancel data form is needed");
		return;
	}
	if (strcmp(type, "cancel") == 0) {
		iq_result(st, NULL);
		return;
	}
	if (config_copy(&r->cfg, &c) < 0) {
		reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	if ((bad = config_parse(muc, x, &c))) {
		char why[160];

		snprintf(why, sizeof(why), "the value of %s is not acceptable", bad);
		config_free(&c);
		reply_error(st, "modify", "not-acceptable", why);	/* §10.1.3 */
		return;
	}
	privacy = c.whois_anyone == r->cfg.whois_anyone ? NULL : c.whois_anyone ? "172" : "173";
	members_only = c.members_only && !r->cfg.members_only;
	config_free(&r->cfg);
	r->cfg = c;
	if (r->locked) {
		r->locked = false;
		log_info("muc", "%s: unlocked by its owner", r->jid->full);
	}
	iq_result(st, NULL);
	if (!was_locked && xml_child(x, "field", NULL))
		announce_change(r, privacy);
	if (members_only)
		remove_non_members(r);
}

static void on_iq(struct muc *muc, struct xml_node *st, const struct jid *from,
		  const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *payload = xml_child(st, NULL, NULL);
	struct room *r = room_find(muc, to);
	struct occupant *o = r ? by_real(r, from) : NULL;

	if (!type || !strcmp(type, "result") || !strcmp(type, "error"))
		return;
	if (!r) {
		reply_error(st, "cancel", "item-not-found", "no such room");
		return;
	}
	if (to->resource) {
		/* XEP-0410: an occupant asks whether it is still in the room. */
		if (payload && payload->ns && !strcmp(payload->ns, NS_PING) && o &&
		    !strcmp(o->nick, to->resource)) {
			iq_result(st, NULL);
			return;
		}
		reply_error(st, "modify", "not-acceptable", o ? "IQs to other occupants are "
			    "not passed on yet" : "you are not an occupant of this room");
		return;
	}
	if (!payload || !payload->ns)
		goto unavailable;
	if (!strcmp(type, "get") && !strcmp(payload->ns, NS_DISCO_INFO) &&
	    !xml_attr(payload, "node")) {
		room_info(r, st);
		return;
	}
	if (!strcmp(type, "get") && !strcmp(payload->ns, NS_DISCO_ITEMS)) {
		/* §6.5: occupants are not listed to outsiders (semi-anonymous). */
		iq_result(st, xml_new("query", NS_DISCO_ITEMS));
		return;
	}
	if (!strcmp(payload->ns, NS_MUC_OWNER)) {
		if (!strcmp(type, "set"))
			owner_set(muc, r, o, st, payload);
		else if (o && o->affiliation == AFF_OWNER)
			owner_get(r, st);
		else
			reply_error(st, "auth", "forbidden", "only the room's owner configures it");
		return;
	}
	if (!strcmp(payload->ns, NS_MUC_ADMIN)) {
		if (!strcmp(type, "set"))
			admin_set(muc, r, o, st, payload);
		else
			admin_get(r, o, st, payload);
		return;
	}
unavailable:
	reply_error(st, "cancel", "service-unavailable", "the room does not do that");
}

static int on_stanza(struct module *m, struct xml_node *st, const struct jid *from,
		     const struct jid *to)
{
	struct muc *muc = module_data(m);

	if (!to->local)
		return HOOK_PASS;	/* the service itself: its IQs are handled apart */
	switch (stanza_kind(st)) {
	case STANZA_PRESENCE:
		on_presence(muc, st, from, to);
		break;
	case STANZA_MESSAGE:
		on_message(muc, st, from, to);
		break;
	case STANZA_IQ:
		on_iq(muc, st, from, to);
		break;
	default:
		break;
	}
	return HOOK_STOP;
}

/* ---- the service ---- */

/* §6.3: the public rooms (every room is public for now), unlocked ones. */
static int service_items(struct iq *iq)
{
	struct muc *muc = module_data(iq->m);
	struct xml_node *q = xml_new("query", NS_DISCO_ITEMS);

	if (!q)
		return -1;
	for (struct room *r = muc->rooms; r; r = r->next) {
		struct xml_node *item;

		if (r->locked || !r->cfg.public_room || !(item = xml_add_child(q, "item", NULL)))
			continue;
		xml_attr_set(item, "jid", r->jid->full);
		xml_attr_set(item, "name", r->jid->local);
	}
	return iq_reply(iq, q);
}

static void muc_free(void *p)
{
	struct muc *muc = p;

	while (muc->rooms) {
		struct room *r = muc->rooms;

		muc->rooms = r->next;
		room_free(r);
	}
	free(muc);
}

static int load(struct module *m)
{
	struct muc *muc = calloc(1, sizeof(*muc));

	if (!muc)
		return -1;
	muc->m = m;
	muc->o = module_options(m);
	module_set_data(m, muc, muc_free);
	module_identity(m, "conference", "text", muc->o->name);
	module_feature(m, NS_MUC);
	module_iq(m, IQ_GET, NS_DISCO_ITEMS, service_items);
	module_stanza(m, on_stanza);
	return 0;
}

PARLEY_MODULE(muc,
	.description = "XEP-0045: multi-user chat rooms on conference.HOST",
	.options = options,
	.options_size = sizeof(struct options),
	.service = "conference",
	.load = load);
