/*
 * muc_room.c - rooms and occupants in memory, and what a room sends.
 *
 * A room sends as room@service/nick to its occupants' real JIDs, through the
 * router, one copy per recipient. History is a ring of the room's last
 * groupchat messages, each kept with its <delay/>, served on join as the
 * joiner's <history/> asks (§7.2.14).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base64.h"
#include "log.h"
#include "muc.h"
#include "router.h"
#include "stanza.h"

const char *const muc_role_names[] = { "none", "visitor", "participant", "moderator" };
const char *const muc_affiliation_names[] = { "outcast", "none", "member", "admin", "owner" };

/* ---- rooms and occupants ---- */

/* FNV-1a of a room's name, seeded per service: names come from clients, so
 * which names collide is not for them to know. */
static uint32_t name_hash(const struct muc *muc, const char *name)
{
	uint32_t h = 2166136261u ^ muc->seed;

	for (; name && *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

struct room *muc_room_find(struct muc *muc, const struct jid *to)
{
	if (!muc->nbuckets || !to->local)
		return NULL;
	for (struct room *r = muc->buckets[name_hash(muc, to->local) & (muc->nbuckets - 1)]; r;
	     r = r->hnext)
		if (jid_bare_eq(r->jid, to))
			return r;
	return NULL;
}

struct occupant *muc_by_nick(const struct room *r, const char *nick)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

struct occupant *muc_by_real(const struct room *r, const struct jid *real)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		for (unsigned i = 0; i < muc_resources(o); i++)
			if (jid_eq(muc_resource(o, i), real))
				return o;
	return NULL;
}

int muc_resource_add(struct occupant *o, const struct jid *real)
{
	struct jid **more, *j;

	if (muc_resources(o) >= MUC_RESOURCES_MAX)
		return -1;
	more = realloc(o->others, (o->nothers + 1) * sizeof(*more));
	if (!more)
		return -1;
	o->others = more;
	if (!(j = jid_copy(real)))
		return -1;
	o->others[o->nothers++] = j;
	return 0;
}

bool muc_resource_remove(struct occupant *o, const struct jid *real)
{
	unsigned i;

	if (!o->nothers)
		return false;
	for (i = 0; i < muc_resources(o) && !jid_eq(muc_resource(o, i), real); i++)
		;
	if (i == muc_resources(o))
		return true;
	if (i == 0) {
		/* the next resource is the first now */
		jid_free(o->real);
		o->real = o->others[0];
		i = 1;
	} else {
		jid_free(o->others[i - 1]);
	}
	memmove(&o->others[i - 1], &o->others[i], (o->nothers - i) * sizeof(*o->others));
	o->nothers--;
	return true;
}

void muc_occupant_free(struct occupant *o)
{
	free(o->nick);
	for (unsigned i = 0; i < o->nothers; i++)
		jid_free(o->others[i]);
	free(o->others);
	jid_free(o->real);
	jid_free(o->jid);
	xml_unref(o->presence);
	free(o);
}

void muc_room_free(struct room *r)
{
	while (r->occupants) {
		struct occupant *o = r->occupants;

		r->occupants = o->next;
		muc_occupant_free(o);
	}
	while (r->affiliates) {
		struct affiliate *a = r->affiliates;

		r->affiliates = a->next;
		jid_free(a->bare);
		free(a->nick);
		free(a);
	}
	for (unsigned i = 0; r->history && i < r->hist_count; i++)
		xml_unref(r->history[i].msg);
	free(r->history);
	xml_unref(r->subject);
	muc_invitations_free(r);
	jid_free(r->jid);
	muc_config_free(&r->cfg);
	free(r);
}

void muc_room_remove(struct muc *muc, struct room *r)
{
	if (r->pprev) {
		*r->pprev = r->next;
		if (r->next)
			r->next->pprev = r->pprev;
		for (struct room **pp = &muc->buckets[name_hash(muc, r->jid->local) &
						      (muc->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
			if (*pp == r) {
				*pp = r->hnext;
				break;
			}
		}
		muc->nrooms--;
	}
	muc_room_free(r);
}

void muc_rooms_clear(struct muc *muc)
{
	while (muc->rooms)
		muc_room_remove(muc, muc->rooms);
	free(muc->buckets);
	muc->buckets = NULL;
	muc->nbuckets = 0;
}

/* The last occupant left: a temporary room ends, with its archive; a
 * persistent one stays, empty. */
void muc_room_emptied(struct muc *muc, struct room *r)
{
	if (r->count || r->cfg.persistent)
		return;
	muc_store_drop_archive(muc, r);
	log_info("muc", "%s: ended with its last occupant", r->jid->full);
	muc_room_remove(muc, r);
}

/* A room as the service's defaults make it, unlocked and not yet linked. */
struct room *muc_room_new(struct muc *muc, const struct jid *jid)
{
	struct room *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (muc->o->history_length)
		r->history = calloc((size_t)muc->o->history_length, sizeof(*r->history));
	if (!(r->jid = jid_bare(jid)) || (muc->o->history_length && !r->history) ||
	    RAND_bytes(r->salt, sizeof(r->salt)) != 1) {
		muc_room_free(r);
		return NULL;
	}
	r->cfg.public_room = true;
	r->cfg.archive = true;
	r->cfg.allow_pm = PM_ANYONE;
	r->cfg.broadcast = 1u << ROLE_MODERATOR | 1u << ROLE_PARTICIPANT | 1u << ROLE_VISITOR;
	r->cfg.max_users = muc->o->max_occupants;
	r->cfg.history = muc->o->history_length;
	return r;
}

/* The table doubles when it holds two rooms per bucket; without memory it
 * stays as it is, only slower. */
static void rooms_grow(struct muc *muc)
{
	unsigned n = muc->nbuckets ? muc->nbuckets * 2 : 64;
	struct room **b;

	if (muc->nbuckets && muc->nrooms < muc->nbuckets * 2)
		return;
	if (!muc->nbuckets && RAND_bytes((unsigned char *)&muc->seed, sizeof(muc->seed)) != 1)
		muc->seed = (uint32_t)time(NULL);
	if (!(b = calloc(n, sizeof(*b))))
		return;
	for (struct room *r = muc->rooms; r; r = r->next) {
		struct room **slot = &b[name_hash(muc, r->jid->local) & (n - 1)];

		r->hnext = *slot;
		*slot = r;
	}
	free(muc->buckets);
	muc->buckets = b;
	muc->nbuckets = n;
}

/* Returns -1 without memory (the room is not linked then). */
int muc_room_link(struct muc *muc, struct room *r)
{
	struct room **slot;

	rooms_grow(muc);
	if (!muc->nbuckets)
		return -1;
	slot = &muc->buckets[name_hash(muc, r->jid->local) & (muc->nbuckets - 1)];
	r->hnext = *slot;
	*slot = r;
	r->next = muc->rooms;
	if (r->next)
		r->next->pprev = &r->next;
	r->pprev = &muc->rooms;
	muc->rooms = r;
	muc->nrooms++;
	return 0;
}

/* XEP-0421 §4: base64 of an HMAC of the real bare JID with the room's salt,
 * the same for each of the user's resources and across the room's life. */
void muc_occupant_id(const struct room *r, const struct jid *real, char out[48])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char *bare = jid_bare_str(real);

	out[0] = '\0';
	if (bare && HMAC(EVP_sha256(), r->salt, sizeof(r->salt), (const unsigned char *)bare,
			 strlen(bare), mac, &len) && len == 32)
		base64_encode(mac, len, out);
	free(bare);
}

void muc_occupant_unlink(struct room *r, struct occupant *o)
{
	for (struct occupant **pp = &r->occupants; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			r->count--;
			return;
		}
	}
}

enum affiliation muc_affiliation_of(const struct room *r, const struct jid *j)
{
	for (const struct affiliate *a = r->affiliates; a; a = a->next)
		if (jid_bare_eq(a->bare, j))
			return a->affiliation;
	return AFF_NONE;
}

/* Records j's bare JID's affiliation (AFF_NONE forgets it). 0, or -1 without
 * memory. */
int muc_affiliation_set(struct room *r, const struct jid *j, enum affiliation aff)
{
	struct affiliate **pp, *a;

	for (pp = &r->affiliates; *pp; pp = &(*pp)->next)
		if (jid_bare_eq((*pp)->bare, j))
			break;
	if (*pp && aff == AFF_NONE) {
		a = *pp;
		*pp = a->next;
		jid_free(a->bare);
		free(a->nick);
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

unsigned muc_rooms_owned(const struct muc *muc, const struct jid *j)
{
	unsigned n = 0;

	for (const struct room *r = muc->rooms; r; r = r->next)
		n += muc_affiliation_of(r, j) == AFF_OWNER;
	return n;
}

unsigned muc_affiliation_count(const struct room *r, enum affiliation aff)
{
	unsigned n = 0;

	for (const struct affiliate *a = r->affiliates; a; a = a->next)
		n += a->affiliation == aff;
	return n;
}

/* ---- what the room sends ---- */

void muc_route_to(const struct xml_node *st, const struct occupant *to)
{
	for (unsigned i = 0; i < muc_resources(to); i++)
		router_route_shared(st, muc_resource(to, i));
}

/* An error back to the sender of st (never for an error). */
void muc_reply_error(const struct xml_node *st, const char *type, const char *cond,
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

void muc_add_status(struct xml_node *x, const char *code)
{
	struct xml_node *s = xml_add_child(x, "status", NULL);

	if (s)
		xml_attr_set(s, "code", code);
}

/* Whether `to` sees occupants' real JIDs: moderators, or anyone when whois. */
static bool sees_jid(const struct room *r, const struct occupant *to)
{
	return to->role == ROLE_MODERATOR || r->cfg.whois_anyone;
}

/*
 * The presence of occupant o as a recipient sees it: the occupant's own
 * presence content, and an <x/> with its affiliation and role, its real JID
 * when show_jid (moderators of a semi-anonymous room), status 110 for the
 * occupant itself (self).
 */
static struct xml_node *occupant_presence(const struct occupant *o, bool show_jid, bool self,
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
	xml_attr_set(item, "affiliation", muc_affiliation_names[o->affiliation]);
	xml_attr_set(item, "role", unavailable && !new_nick ? "none" : muc_role_names[o->role]);
	if (show_jid || self)
		xml_attr_set(item, "jid", o->real->full);
	if (new_nick)
		xml_attr_set(item, "nick", new_nick);
	if (reason && *reason) {
		struct xml_node *rs = xml_add_child(item, "reason", NULL);

		if (rs)
			xml_add_text(rs, reason, strlen(reason));
	}
	for (; codes && *codes; codes++)
		muc_add_status(x, *codes);
	if (self)
		muc_add_status(x, "110");
	if (o->occupant_id[0] && (item = xml_add_child(p, "occupant-id", NS_OCCUPANT_ID)))
		xml_attr_set(item, "id", o->occupant_id);	/* XEP-0421 §4 */
	return p;
}

void muc_send_presence_of(const struct occupant *o, const struct occupant *to,
			     bool unavailable, const char *new_nick, const char *const *codes,
			     const char *reason)
{
	for (unsigned i = 0; i < muc_resources(to); i++)
		muc_send_presence_to(o, to, muc_resource(to, i), unavailable, new_nick, codes,
				     reason);
}

void muc_send_presence_to(const struct occupant *o, const struct occupant *viewer,
			  const struct jid *real, bool unavailable, const char *new_nick,
			  const char *const *codes, const char *reason)
{
	struct xml_node *p = occupant_presence(o, sees_jid(o->room, viewer), viewer == o,
					       unavailable, new_nick, codes, reason);

	if (!p)
		return;
	xml_attr_set(p, "from", o->jid->full);
	xml_attr_set(p, "to", real->full);
	router_route(p);
}

/* Everyone's copy of o's presence: the occupant's own, and at most two others
 * (with and without the real JID), each serialized once (router_route_shared). */
static void broadcast(const struct room *r, const struct occupant *o, bool unavailable,
		      const char *new_nick, const char *const *codes,
		      const char *const *self_codes, const char *reason)
{
	struct xml_node *seen[2] = { NULL, NULL };
	bool shown = muc_presence_shown(r, o);

	for (const struct occupant *to = r->occupants; to; to = to->next) {
		bool j = sees_jid(r, to);

		if (to == o) {
			muc_send_presence_of(o, to, unavailable, new_nick, self_codes, reason);
			continue;
		}
		if (!shown)
			continue;
		if (!seen[j]) {
			seen[j] = occupant_presence(o, j, false, unavailable, new_nick, codes,
						    reason);
			if (!seen[j])
				continue;
			xml_attr_set(seen[j], "from", o->jid->full);
		}
		muc_route_to(seen[j], to);
	}
	xml_unref(seen[0]);
	xml_unref(seen[1]);
}

void muc_broadcast_presence(const struct room *r, const struct occupant *o,
			       bool unavailable, const char *new_nick, const char *const *codes,
			       const char *reason)
{
	broadcast(r, o, unavailable, new_nick, codes, codes, reason);
}

void muc_broadcast_join(const struct room *r, const struct occupant *o,
			const char *const *self_codes)
{
	broadcast(r, o, false, NULL, NULL, self_codes, NULL);
}

/* muc#roomconfig_presencebroadcast: whether others see o's presence. One
 * leaving (role none) is always seen. */
bool muc_presence_shown(const struct room *r, const struct occupant *o)
{
	return o->role == ROLE_NONE || (r->cfg.broadcast & (1u << o->role));
}

void muc_send_subject(const struct room *r, const struct jid *real)
{
	struct xml_node *m;

	if (r->subject) {
		/* kept without 'to': one serialization for every joiner */
		router_route_shared(r->subject, real);
		return;
	}
	/* §7.2.15: the empty subject ends the join, so clients know it is done. */
	m = xml_new("message", "jabber:client");
	if (m && xml_add_child(m, "subject", NULL)) {
		xml_attr_set(m, "type", "groupchat");
		xml_attr_set(m, "from", r->jid->full);
		xml_attr_set(m, "to", real->full);
		router_route(m);
	} else {
		xml_unref(m);
	}
}

/* ---- history (§7.2.14): what a new occupant gets before the subject ---- */

void muc_add_delay(struct xml_node *m, const struct room *r, time_t at)
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

void muc_history_add(struct muc *muc, struct room *r, const struct xml_node *m, time_t at)
{
	unsigned len = (unsigned)muc->o->history_length;
	struct xml_node *c;
	struct past *p;

	if (!len || !r->history || !(c = xml_copy(m)))
		return;
	xml_attr_set(c, "to", NULL);
	muc_add_delay(c, r, at);
	p = &r->history[r->hist_next];
	if (r->hist_count == len)
		xml_unref(p->msg);
	else
		r->hist_count++;
	p->msg = c;
	p->at = at;
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
time_t muc_parse_stamp(const char *s)
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

void muc_send_history(struct muc *muc, struct room *r, const struct jid *real,
			 const struct xml_node *join)
{
	const struct xml_node *x = xml_child(join, "x", NS_MUC);
	const struct xml_node *h = x ? xml_child(x, "history", NS_MUC) : NULL;
	long maxstanzas = history_number(h, "maxstanzas"), maxchars = history_number(h, "maxchars");
	long seconds = history_number(h, "seconds");
	time_t since = h ? muc_parse_stamp(xml_attr(h, "since")) : -1;
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

		router_route_shared(p->msg, real);	/* kept without 'to' */
	}
}

/* ---- presence: join, change, leave ---- */

/* What the room keeps of a presence: its content without the MUC <x/>s. */
struct xml_node *muc_kept_presence(const struct xml_node *st)
{
	struct xml_node *p = xml_copy(st), *c;

	if (!p)
		return NULL;
	while ((c = xml_child(p, "x", NS_MUC)) || (c = xml_child(p, "occupant-id",
								   NS_OCCUPANT_ID))) {
		xml_detach(c);
		xml_unref(c);
	}
	xml_attr_set(p, "from", NULL);
	xml_attr_set(p, "to", NULL);
	return p;
}

/* ---- IQs to rooms and occupants ---- */

void muc_iq_result(const struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *r = stanza_iq_result(st, payload);

	if (!r)
		return;
	xml_attr_set(r, "from", xml_attr(st, "to"));
	xml_attr_set(r, "to", xml_attr(st, "from"));
	router_route(r);
}

void muc_add_feature(struct xml_node *q, const char *var)
{
	struct xml_node *f = xml_add_child(q, "feature", NULL);

	if (f)
		xml_attr_set(f, "var", var);
}

