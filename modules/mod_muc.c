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
 * Persistent rooms (muc#roomconfig_persistentroom) stay when empty and come
 * back after a restart, and rooms archive their messages for XEP-0313
 * queries on the room's JID (muc_store.c, muc_mam.c); while the stored rooms
 * are read back at start, stanzas to rooms wait (hold(), muc_loaded()).
 * Invitations and voice requests come with the rest of the group-chat work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "log.h"
#include "muc.h"
#include "router.h"
#include "stanza.h"
#include "stanza_id.h"

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
	{ "rooms-per-user", OPT_INT, "100", 1, 1000000, AT(rooms_per_user),
	  "rooms one user may own; past it creating one gets resource-constraint" },
	{ "message-rate", OPT_INT, "10", 1, 100000, AT(message_rate),
	  "groupchat messages per second an occupant may send (a token bucket)" },
	{ "message-burst", OPT_INT, "30", 1, 100000, AT(message_burst),
	  "messages an occupant may send at once before message-rate applies" },
	{ "max-subject-length", OPT_INT, "1024", 1, 65536, AT(max_subject_length),
	  "bytes of a room's subject" },
	{ "archive-max-messages", OPT_INT, "100000", 0, 100000000, AT(archive_max),
	  "messages a persistent room's archive keeps (the oldest go, hourly)" },
	{ "archive-page", OPT_INT, "100", 1, 1000, AT(archive_page),
	  "most messages one XEP-0313 archive query returns" },
	{ "name", OPT_STRING, "Chatrooms", 0, 0, AT(name), "the service's name in disco" },
	{ NULL },
};

/* ---- presence: join, change, leave ---- */

static bool nick_ok(struct muc *muc, const char *nick)
{
	return nick && *nick && (long long)strlen(nick) <= muc->o->max_nick_length;
}

/* §7.2.9: one more resource of o's user enters under its nick. It gets what a
 * joiner gets; the others see no change. */
static void join_resource(struct muc *muc, struct room *r, struct occupant *o,
			  const struct xml_node *st, const struct jid *from)
{
	if (muc_resource_add(o, from) < 0) {
		muc_reply_error(st, "wait", "resource-constraint", "too many of your resources "
				"are in this room under that nick");
		return;
	}
	for (const struct occupant *y = r->occupants; y; y = y->next)
		if (y != o && muc_presence_shown(r, y))
			muc_send_presence_to(y, o, from, false, NULL, NULL, NULL);
	muc_send_presence_to(o, o, from, false, NULL, NULL, NULL);
	muc_send_history(muc, r, from, st);
	muc_send_subject(r, from);
}

static void join(struct muc *muc, struct room *r, struct xml_node *st, const struct jid *from,
		 const struct jid *to)
{
	static const char *const created[] = { "201", NULL }, *const open_jids[] = { "100", NULL };
	const struct xml_node *x = xml_child(st, "x", NS_MUC);
	struct occupant *o, **pp;
	bool fresh = r == NULL;
	enum affiliation aff = r ? muc_affiliation_of(r, from) : AFF_OWNER;

	if (!nick_ok(muc, to->resource)) {
		muc_reply_error(st, "modify", "jid-malformed", "a nick is needed, and not that long");
		return;
	}
	if (r && r->locked) {
		/* §10.1.1: nobody but the owner enters before it is configured. */
		muc_reply_error(st, "cancel", "item-not-found", "the room is not configured yet");
		return;
	}
	if (aff == AFF_OUTCAST) {
		muc_reply_error(st, "auth", "forbidden", "you are banned from this room");	/* §7.2.7 */
		return;
	}
	if (r && r->cfg.password && aff < AFF_OWNER) {
		char *given = x ? xml_child_text(x, "password", NULL) : NULL;
		bool ok = given && r->cfg.secret && strcmp(given, r->cfg.secret) == 0;

		free(given);
		if (!ok) {	/* §7.2.6 */
			muc_reply_error(st, "auth", "not-authorized", "a password is required");
			return;
		}
	}
	if (r && r->cfg.members_only && aff < AFF_MEMBER) {
		muc_reply_error(st, "auth", "registration-required", "this room is for members");
		return;	/* §7.2.5 */
	}
	if (r && muc_nick_reserved(r, to->resource, from)) {
		muc_reply_error(st, "cancel", "conflict", "that nick is reserved in this room");
		return;	/* §7.12 */
	}
	/* §7.2.9: the nick is taken, unless by the same user from another
	 * resource, which then shares it. */
	if (r && (o = muc_by_nick(r, to->resource))) {
		if (jid_bare_eq(o->real, from))
			join_resource(muc, r, o, st, from);
		else
			muc_reply_error(st, "cancel", "conflict", "that nick is in use in this room");
		return;
	}
	if (r && aff < AFF_ADMIN && r->count >= (unsigned)r->cfg.max_users) {
		muc_reply_error(st, "wait", "service-unavailable", "the room is full");
		return;
	}
	if (fresh) {
		if (muc->nrooms >= (unsigned)muc->o->max_rooms) {
			muc_reply_error(st, "wait", "resource-constraint", "too many rooms");
			return;
		}
		if (muc_rooms_owned(muc, from) >= (unsigned)muc->o->rooms_per_user) {
			muc_reply_error(st, "wait", "resource-constraint", "you own as many rooms "
				    "as you may; destroy one first");
			return;
		}
		if (!(r = muc_room_new(muc, to)) || muc_affiliation_set(r, from, AFF_OWNER) < 0 ||
		    muc_room_link(muc, r) < 0) {
			if (r)
				muc_room_free(r);
			muc_reply_error(st, "wait", "internal-server-error", NULL);
			return;
		}
		r->locked = true;
		log_info("muc", "%s: created by %s", r->jid->full, from->full);
	}
	o = calloc(1, sizeof(*o));
	if (o) {
		o->room = r;
		o->nick = strdup(to->resource);
		o->real = jid_copy(from);
		o->jid = jid_copy(to);
		o->presence = muc_kept_presence(st);
	}
	if (!o || !o->nick || !o->real || !o->jid || !o->presence) {
		if (o)
			muc_occupant_free(o);
		muc_reply_error(st, "wait", "internal-server-error", NULL);
		if (fresh)
			muc_room_remove(muc, r);
		return;
	}
	muc_occupant_id(r, from, o->occupant_id);
	o->affiliation = aff;
	/* §7.1.2: a moderated room gives voice to members and above only. */
	o->role = aff >= AFF_ADMIN ? ROLE_MODERATOR : r->cfg.moderated && aff < AFF_MEMBER
		? ROLE_VISITOR : ROLE_PARTICIPANT;
	/* §7.2.3: the others' presence first, then the new one to everyone. */
	for (const struct occupant *y = r->occupants; y; y = y->next)
		if (muc_presence_shown(r, y))
			muc_send_presence_of(y, o, false, NULL, NULL, NULL);
	for (pp = &r->occupants; *pp; pp = &(*pp)->next)
		;
	*pp = o;
	r->count++;
	/* The own presence's codes: 201 a new room (its creator alone), 100 real
	 * JIDs shown to all, 170 the room archived (§7.2.12), 210 the nick as the
	 * server prepared it, not as sent (resourceprep of the JID, §7.2.1). */
	{
		const char *self[5];
		unsigned n = 0;

		if (fresh)
			self[n++] = created[0];
		if (r->cfg.whois_anyone)
			self[n++] = open_jids[0];
		if (r->cfg.archive)
			self[n++] = "170";
		if (st->to_resource_changed)
			self[n++] = "210";
		self[n] = NULL;
		if (fresh)
			muc_send_presence_of(o, o, false, NULL, self, NULL);
		else
			muc_broadcast_join(r, o, self);
	}
	muc_send_history(muc, r, o->real, st);
	muc_send_subject(r, o->real);
}

static void leave(struct muc *muc, struct room *r, struct occupant *o, const struct xml_node *st,
		  const struct jid *from)
{
	struct xml_node *status = st ? xml_child(st, "status", NULL) : NULL;

	/* One of several resources under the nick: only it is told (110). */
	if (muc_resource_remove(o, from)) {
		muc_send_presence_to(o, o, from, true, NULL, NULL, NULL);
		return;
	}
	if (status) {
		/* §7.14: the leaving occupant's status goes with its unavailable. */
		xml_unref(o->presence);
		o->presence = muc_kept_presence(st);
	}
	muc_broadcast_presence(r, o, true, NULL, NULL, NULL);
	muc_occupant_unlink(r, o);
	muc_occupant_free(o);
	muc_room_emptied(muc, r);
}

static void change_nick(struct muc *muc, struct room *r, struct occupant *o,
			struct xml_node *st, const struct jid *to)
{
	static const char *const changed[] = { "303", NULL };
	struct occupant *taken = muc_by_nick(r, to->resource);
	char *nick;
	struct jid *jid;

	if (!nick_ok(muc, to->resource)) {
		muc_reply_error(st, "modify", "jid-malformed", "a nick is needed, and not that long");
		return;
	}
	if (taken || muc_nick_reserved(r, to->resource, o->real)) {
		muc_reply_error(st, "cancel", "conflict", taken ? "that nick is in use in this "
				"room" : "that nick is reserved in this room");
		return;
	}
	if (o->nothers) {
		muc_reply_error(st, "modify", "not-acceptable", "your other resources in the room "
				"use this nick; change it when they have left");
		return;
	}
	nick = strdup(to->resource);
	jid = jid_copy(to);
	if (!nick || !jid) {
		free(nick);
		jid_free(jid);
		muc_reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	/* §7.6: unavailable from the old nick with 303 and the new one, then
	 * the presence from the new nick. */
	muc_broadcast_presence(r, o, true, nick, changed, NULL);
	free(o->nick);
	jid_free(o->jid);
	o->nick = nick;
	o->jid = jid;
	muc_broadcast_presence(r, o, false, NULL, NULL, NULL);
}

static void on_presence(struct muc *muc, struct xml_node *st, const struct jid *from,
			const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct room *r = muc_room_find(muc, to);
	struct occupant *o = r ? muc_by_real(r, from) : NULL;
	struct xml_node *kept;

	if (type && strcmp(type, "unavailable") == 0) {
		if (o)
			leave(muc, r, o, st, from);
		return;
	}
	if (type)
		return;	/* errors, subscriptions: nothing for a room to do */
	if (!to->resource) {
		muc_reply_error(st, "modify", "jid-malformed", "join with room@service/nick");
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
	if ((kept = muc_kept_presence(st))) {
		xml_unref(o->presence);
		o->presence = kept;
	}
	muc_broadcast_presence(r, o, false, NULL, NULL, NULL);
}

/* ---- messages ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The occupant's token bucket: false when it sends faster than the room's
 * message-rate allows. */
bool muc_rate_ok(struct muc *muc, struct occupant *o)
{
	long long now = now_ms();
	double burst = (double)muc->o->message_burst;

	if (!o->tokens_at)
		o->tokens = burst;
	else
		o->tokens += (double)(now - o->tokens_at) * (double)muc->o->message_rate / 1000.0;
	if (o->tokens > burst)
		o->tokens = burst;
	o->tokens_at = now;
	if (o->tokens < 1.0)
		return false;
	o->tokens -= 1.0;
	return true;
}

/* Removes the children (name, ns) a sender may not set: the room vouches for
 * them (XEP-0359 §3.1 stanza ids by the room, XEP-0421 §4 occupant ids). */
static void strip(struct xml_node *m, const char *name, const char *ns, const char *by)
{
	for (struct xml_node *c = xml_child(m, name, ns), *next; c; c = next) {
		next = xml_next(c, name, ns);
		if (!by || (xml_attr(c, "by") && strcmp(xml_attr(c, "by"), by) == 0)) {
			xml_detach(c);
			xml_unref(c);
		}
	}
}

static void add_occupant_id(struct xml_node *st, const struct occupant *o)
{
	struct xml_node *c;

	strip(st, "occupant-id", NS_OCCUPANT_ID, NULL);
	if (o->occupant_id[0] && (c = xml_add_child(st, "occupant-id", NS_OCCUPANT_ID)))
		xml_attr_set(c, "id", o->occupant_id);
}

/*
 * §7.4: a message to everyone. The sender's XEP-0198 ack means the room has
 * it: the occupants' own queues do not hold it up (the broadcast is no part of
 * the sender's delivery), the archive's commit does (muc_archive_add).
 */
static void groupchat(struct muc *muc, struct room *r, struct occupant *o, struct xml_node *st)
{
	struct xml_node *m, *sid;
	struct delivery *sender;
	char id[STANZA_ID_LEN + 1];
	char *text = xml_child_text(st, "subject", NULL);
	bool subject = text && !xml_child(st, "body", NULL);
	size_t subject_len = text ? strlen(text) : 0;

	free(text);
	if (o->role < ROLE_PARTICIPANT) {
		muc_reply_error(st, "auth", "forbidden", "visitors have no voice in this room");
		return;
	}
	if (subject && o->role != ROLE_MODERATOR && !r->cfg.change_subject) {
		muc_reply_error(st, "auth", "forbidden", "only moderators change the subject");
		return;
	}
	if (subject && (long long)subject_len > muc->o->max_subject_length) {
		muc_reply_error(st, "modify", "not-acceptable", "the subject is too long");
		return;
	}
	if (!muc_rate_ok(muc, o)) {
		muc_reply_error(st, "wait", "resource-constraint", "you send messages faster "
			    "than this room allows; wait a moment");
		return;
	}
	if (!(m = xml_copy(st)))
		return;
	strip(m, "stanza-id", NS_SID, r->jid->full);
	add_occupant_id(m, o);
	if (!subject && (sid = xml_add_child(m, "stanza-id", NS_SID))) {
		stanza_id_new(id);
		xml_attr_set(sid, "id", id);
		xml_attr_set(sid, "by", r->jid->full);
	}
	xml_attr_set(m, "from", o->jid->full);
	xml_attr_set(m, "to", NULL);
	if (!subject && r->cfg.archive && xml_child(m, "body", NULL))
		muc_archive_add(muc, r, o, m, id);
	/* One tree and one serialization for every occupant (router_route_shared). */
	sender = delivery_enter(NULL);
	for (const struct occupant *to = r->occupants; to; to = to->next)
		muc_route_to(m, to);
	delivery_leave(sender);
	if (subject) {
		/* Kept for joiners, with when it was set (§7.2.15); occupants'
		 * queues may hold m itself, so a copy. */
		struct xml_node *kept = xml_copy(m);

		if (kept) {
			muc_add_delay(kept, r, time(NULL));
			xml_unref(r->subject);
			r->subject = kept;
		}
		if (r->stored)
			muc_store_room(muc, r);
	} else {
		muc_history_add(muc, r, m, time(NULL));
	}
	xml_unref(m);
}

/* muc#roomconfig_allowpm: who may send private messages. */
static bool pm_allowed(const struct room *r, const struct occupant *o)
{
	switch (r->cfg.allow_pm) {
	case PM_ANYONE:
		return true;
	case PM_PARTICIPANTS:
		return o->role >= ROLE_PARTICIPANT;
	case PM_MODERATORS:
		return o->role == ROLE_MODERATOR;
	default:
		return false;
	}
}

static void on_message(struct muc *muc, struct xml_node *st, const struct jid *from,
		       const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct room *r = muc_room_find(muc, to);
	struct occupant *o = r ? muc_by_real(r, from) : NULL, *target;
	struct xml_node *m;

	if (type && strcmp(type, "error") == 0)
		return;
	/* Invitations, declines and voice requests are type normal (§7.8.2). */
	if (r && !to->resource && (!type || strcmp(type, "normal") == 0) &&
	    muc_room_request(muc, r, o, st, from))
		return;
	if (!o) {
		muc_reply_error(st, "modify", "not-acceptable", "only occupants may send to the room");
		return;
	}
	if (!to->resource) {
		if (type && strcmp(type, "groupchat") == 0)
			groupchat(muc, r, o, st);
		else
			muc_reply_error(st, "modify", "bad-request", "messages to the room are "
				    "type groupchat");
		return;
	}
	/* §7.5: a private message, from the sender's occupant JID. */
	target = muc_by_nick(r, to->resource);
	if (!target) {
		muc_reply_error(st, "cancel", "item-not-found", "no such occupant");
		return;
	}
	if (type && strcmp(type, "groupchat") == 0) {
		muc_reply_error(st, "modify", "bad-request", "a private message is not groupchat");
		return;
	}
	if (!pm_allowed(r, o)) {
		muc_reply_error(st, "cancel", "not-allowed", "private messages are not allowed "
			    "in this room, or not for your role");
		return;
	}
	if (!(m = xml_copy(st)))
		return;
	/* §7.2.9: to each of the target's resources (RECOMMENDED) */
	add_occupant_id(m, o);
	xml_attr_set(m, "from", o->jid->full);
	xml_attr_set(m, "to", NULL);
	muc_route_to(m, target);
	xml_unref(m);
}

static void info_field(struct xml_node *x, const char *var, const char *label,
		       const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NULL), *v;

	if (!f)
		return;
	xml_attr_set(f, "var", var);
	if (label)
		xml_attr_set(f, "label", label);
	if ((v = xml_add_child(f, "value", NULL)))
		xml_add_text(v, value, strlen(value));
}

/* §6.4: what a room is, with the muc#roominfo form (§15.5.4). */
static void room_info(const struct room *r, const struct xml_node *st)
{
	const struct room_config *c = &r->cfg;
	const char *const features[] = {
		NS_MUC, c->public_room ? "muc_public" : "muc_hidden",
		c->persistent ? "muc_persistent" : "muc_temporary",
		c->members_only ? "muc_membersonly" : "muc_open",
		c->moderated ? "muc_moderated" : "muc_unmoderated",
		c->whois_anyone ? "muc_nonanonymous" : "muc_semianonymous",
		c->password ? "muc_passwordprotected" : "muc_unsecured", NS_DISCO_INFO,
		NS_DISCO_ITEMS, NS_SID, NS_OCCUPANT_ID, "jabber:iq:register",
		/* XEP-0410 §4: the room answers self-pings itself */
		NS_MUC "#self-ping-optimization",
		c->archive ? NS_MAM : NULL, NULL,
	};
	struct xml_node *q = xml_new("query", NS_DISCO_INFO), *id, *x;
	char count[16], *subject = r->subject ? xml_child_text(r->subject, "subject", NULL)
		: NULL;

	if (!q) {
		free(subject);
		return;
	}
	id = xml_add_child(q, "identity", NULL);
	if (id) {
		xml_attr_set(id, "category", "conference");
		xml_attr_set(id, "type", "text");
		xml_attr_set(id, "name", c->name ? c->name : r->jid->local);
	}
	for (const char *const *f = features; *f; f++)
		muc_add_feature(q, *f);
	if (c->archive)
		muc_add_feature(q, NS_MAM "#extended");
	if ((x = xml_add_child(q, "x", NS_XDATA))) {
		snprintf(count, sizeof(count), "%u", r->count);
		xml_attr_set(x, "type", "result");
		info_field(x, "FORM_TYPE", NULL, NS_MUC "#roominfo");
		info_field(x, "muc#roomconfig_roomname", "Name", c->name ? c->name : "");
		info_field(x, "muc#roominfo_description", "Description", c->desc ? c->desc : "");
		info_field(x, "muc#roominfo_subject", "Subject", subject ? subject : "");
		info_field(x, "muc#roominfo_occupants", "Occupants", count);
		info_field(x, "muc#roominfo_lang", "Language", c->lang ? c->lang : "");
		info_field(x, "muc#roomconfig_changesubject", "Occupants change the subject",
			   c->change_subject ? "1" : "0");
		info_field(x, "muc#roomconfig_allowinvites", "Occupants invite others",
			   c->allow_invites ? "1" : "0");
	}
	free(subject);
	muc_iq_result(st, q);
}

static void on_iq(struct muc *muc, struct xml_node *st, const struct jid *from,
		  const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *payload = xml_child(st, NULL, NULL);
	struct room *r = muc_room_find(muc, to);
	struct occupant *o = r ? muc_by_real(r, from) : NULL;

	if (!type)
		return;
	if (!strcmp(type, "result") || !strcmp(type, "error")) {
		if (r && to->resource)
			muc_iq_answer(r, st, from, to);
		return;
	}
	if (!r) {
		muc_reply_error(st, "cancel", "item-not-found", "no such room");
		return;
	}
	if (to->resource) {
		/* XEP-0410: an occupant asks whether it is still in the room. */
		if (payload && payload->ns && !strcmp(payload->ns, NS_PING) && o &&
		    !strcmp(o->nick, to->resource)) {
			muc_iq_result(st, NULL);
			return;
		}
		if (o)
			muc_iq_forward(r, o, st, from, to);
		else
			muc_reply_error(st, "modify", "not-acceptable", "you are not an occupant "
				    "of this room");
		return;
	}
	if (!payload || !payload->ns)
		goto unavailable;
	if (!strcmp(type, "get") && !strcmp(payload->ns, NS_DISCO_INFO) &&
	    !xml_attr(payload, "node")) {
		room_info(r, st);
		return;
	}
	if (!strcmp(type, "get") && !strcmp(payload->ns, NS_DISCO_INFO) &&
	    xml_attr(payload, "node") && !strcmp(xml_attr(payload, "node"), "x-roomuser-item")) {
		muc_reserved_nick(r, st, from);
		return;
	}
	if (!strcmp(payload->ns, "jabber:iq:register") && !strcmp(payload->name, "query")) {
		muc_register(muc, r, st, payload, from);
		return;
	}
	if (!strcmp(type, "get") && !strcmp(payload->ns, NS_DISCO_ITEMS)) {
		/* §6.5: occupants are not listed to outsiders (semi-anonymous). */
		muc_iq_result(st, xml_new("query", NS_DISCO_ITEMS));
		return;
	}
	if (!strcmp(payload->ns, NS_MUC_OWNER)) {
		if (!strcmp(type, "set"))
			muc_owner_set(muc, r, o, st, payload);
		else if (o && o->affiliation == AFF_OWNER)
			muc_owner_get(r, st);
		else
			muc_reply_error(st, "auth", "forbidden", "only the room's owner configures it");
		return;
	}
	if (!strcmp(payload->ns, NS_MAM) && !strcmp(payload->name, "query")) {
		if (!strcmp(type, "set"))
			muc_mam_query(muc, r, st, payload);
		else
			muc_mam_fields(st);
		return;
	}
	if (!strcmp(payload->ns, NS_MUC_ADMIN)) {
		if (!strcmp(type, "set"))
			muc_admin_set(muc, r, o, st, payload);
		else
			muc_admin_get(r, o, st, payload);
		return;
	}
unavailable:
	muc_reply_error(st, "cancel", "service-unavailable", "the room does not do that");
}

static void dispatch(struct muc *muc, struct xml_node *st, const struct jid *from,
		     const struct jid *to)
{
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
}

/* ---- while the persistent rooms are read back at start ---- */

#define HELD_MAX 10000	/* stanzas that wait for the rooms; past it: wait, later */

struct held {
	struct xml_node *st;
	struct jid *from, *to;
	struct delivery *d;	/* the sender's: its ack waits for the room */
	struct held *next;
};

/* handled: the room took it (its own references hold what it keeps). */
static void held_free(struct held *h, bool handled)
{
	xml_unref(h->st);
	jid_free(h->from);
	jid_free(h->to);
	delivery_release(h->d, handled);
	free(h);
}

static void hold(struct muc *muc, struct xml_node *st, const struct jid *from,
		 const struct jid *to)
{
	struct held *h = muc->nheld < HELD_MAX ? calloc(1, sizeof(*h)) : NULL;

	if (!h || !(h->from = jid_copy(from)) || !(h->to = jid_copy(to))) {
		if (h)
			held_free(h, false);
		muc_reply_error(st, "wait", "resource-constraint", "the rooms are being loaded; "
			    "try again in a moment");
		return;
	}
	h->st = xml_ref(st);
	h->d = delivery_ref(delivery_current());
	if (!muc->held_tail)
		muc->held_tail = &muc->held;
	*muc->held_tail = h;
	muc->held_tail = &h->next;
	muc->nheld++;
}

void muc_loaded(struct muc *muc)
{
	muc->loading = false;
	while (muc->held) {
		struct held *h = muc->held;
		struct delivery *prev;

		muc->held = h->next;
		muc->nheld--;
		prev = delivery_enter(h->d);
		dispatch(muc, h->st, h->from, h->to);
		delivery_leave(prev);
		held_free(h, true);
	}
	muc->held_tail = NULL;
}

static int on_stanza(struct module *m, struct xml_node *st, const struct jid *from,
		     const struct jid *to)
{
	struct muc *muc = module_data(m);

	if (!to->local)
		return HOOK_PASS;	/* the service itself: its IQs are handled apart */
	if (muc->loading)
		hold(muc, st, from, to);
	else
		dispatch(muc, st, from, to);
	return HOOK_STOP;
}

/* ---- the service ---- */

/* The room list's page when the client asks for none, and the most it may. */
#define ROOMS_PAGE 100
#define ROOMS_PAGE_MAX 1000

static bool listed(const struct room *r) { return !r->locked && r->cfg.public_room; }

static void rsm_text(struct xml_node *set, const char *name, const char *text)
{
	struct xml_node *c = xml_add_child(set, name, NULL);

	if (c)
		xml_add_text(c, text, strlen(text));
}

/* §6.3: the public, unlocked rooms, paged with XEP-0059 (max, after by room
 * JID, an empty <before/> for the last page); a list longer than a page is
 * paged even when the client did not ask (XEP-0059 §2.6). */
static int service_items(struct iq *iq)
{
	struct muc *muc = module_data(iq->m);
	const struct xml_node *set = xml_child(iq->payload, "set", NS_RSM);
	char *maxs = set ? xml_child_text(set, "max", NULL) : NULL;
	char *after = set ? xml_child_text(set, "after", NULL) : NULL;
	bool last_page = set && xml_child(set, "before", NULL);
	long max = maxs ? strtol(maxs, NULL, 10) : ROOMS_PAGE;
	unsigned total = 0, index = 0, shown = 0, skip = 0;
	const struct room *first = NULL, *last = NULL, *r;
	struct xml_node *q = xml_new("query", NS_DISCO_ITEMS), *rs;
	char num[16];

	free(maxs);
	if (max < 0 || max > ROOMS_PAGE_MAX)
		max = ROOMS_PAGE_MAX;
	for (r = muc->rooms; r; r = r->next)
		total += listed(r);
	if (after) {
		for (r = muc->rooms; r && !(listed(r) && strcmp(r->jid->full, after) == 0);
		     r = r->next)
			index += listed(r);
		free(after);
		if (!r) {
			xml_unref(q);
			return iq_error(iq, "item-not-found", "no such room to page after");
		}
		index++;
	} else if (last_page && total > (unsigned long)max) {
		index = total - (unsigned)max;
	}
	if (!q)
		return -1;
	for (r = muc->rooms; r && shown < (unsigned long)max; r = r->next) {
		struct xml_node *item;

		if (!listed(r) || skip++ < index)
			continue;
		if (!(item = xml_add_child(q, "item", NULL)))
			break;
		xml_attr_set(item, "jid", r->jid->full);
		xml_attr_set(item, "name", r->cfg.name ? r->cfg.name : r->jid->local);
		if (!first)
			first = r;
		last = r;
		shown++;
	}
	if ((set || total > shown) && (rs = xml_add_child(q, "set", NS_RSM))) {
		if (first && (rs = xml_add_child(rs, "first", NULL))) {
			snprintf(num, sizeof(num), "%u", index);
			xml_attr_set(rs, "index", num);
			xml_add_text(rs, first->jid->full, strlen(first->jid->full));
			rs = rs->parent;
		}
		if (last)
			rsm_text(rs, "last", last->jid->full);
		snprintf(num, sizeof(num), "%u", total);
		rsm_text(rs, "count", num);
	}
	return iq_reply(iq, q);
}

/* The server stops: each occupant is told it is out of the room because the
 * service goes down (332), in its own unavailable presence only: the others
 * leave at the same moment, so nobody is told of everyone (N² presences). */
static int on_stopping(struct module *m, struct hook_args *a)
{
	static const char *const shutdown[] = { "332", NULL };
	struct muc *muc = module_data(m);

	(void)a;
	for (struct room *r = muc->rooms; r; r = r->next)
		for (struct occupant *o = r->occupants; o; o = o->next) {
			o->role = ROLE_NONE;
			muc_send_presence_of(o, o, true, NULL, shutdown, NULL);
		}
	return HOOK_PASS;
}

static void muc_free(void *p)
{
	struct muc *muc = p;

	while (muc->held) {
		struct held *h = muc->held;

		muc->held = h->next;
		held_free(h, false);	/* the server stops before the rooms came */
	}
	muc_store_free(muc);
	muc_rooms_clear(muc);
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
	if (muc_store_init(muc) < 0 || muc_mam_init(muc) < 0 || muc_ctl_init(muc) < 0)
		return -1;
	muc_store_load(muc);
	module_identity(m, "conference", "text", muc->o->name);
	module_feature(m, NS_MUC);
	module_iq(m, IQ_GET, NS_DISCO_ITEMS, service_items);
	module_stanza(m, on_stanza);
	module_hook(m, HOOK_SERVER_STOPPING, 0, on_stopping);
	return 0;
}

PARLEY_MODULE(muc,
	.description = "XEP-0045: multi-user chat rooms on conference.HOST",
	.options = options,
	.options_size = sizeof(struct options),
	.service = "conference",
	.load = load);
