/*
 * muc_register.c - registering with a room (§7.10) and reserved nicks (§7.12).
 *
 * Registering makes a user a member of the room with a nick of its own, which
 * nobody else may then take (§7.12: conflict). It is XEP-0077 on the room
 * JID with the muc#register form; <remove/> cancels it. Anyone who may enter
 * may register, except in a members-only room, where only those on its lists
 * may (to reserve their nick). A persistent room keeps the nick with the
 * affiliation.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "muc.h"

#define NS_REGISTER "jabber:iq:register"
#define NS_MUC_REGISTER NS_MUC "#register"
#define NODE_ROOMUSER "x-roomuser-item"

static struct affiliate *affiliate_of(const struct room *r, const struct jid *j)
{
	for (struct affiliate *a = r->affiliates; a; a = a->next)
		if (jid_bare_eq(a->bare, j))
			return a;
	return NULL;
}

bool muc_nick_reserved(const struct room *r, const char *nick, const struct jid *from)
{
	for (const struct affiliate *a = r->affiliates; a; a = a->next)
		if (a->nick && strcmp(a->nick, nick) == 0 && !jid_bare_eq(a->bare, from))
			return true;
	return false;
}

static void text_child(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *c = xml_add_child(parent, name, NULL);

	if (c && text)
		xml_add_text(c, text, strlen(text));
}

/* §7.12: the user's reserved nick, as disco#info of node x-roomuser-item. */
void muc_reserved_nick(const struct room *r, const struct xml_node *st, const struct jid *from)
{
	const struct affiliate *a = affiliate_of(r, from);
	struct xml_node *q = xml_new("query", NS_DISCO_INFO), *id;

	if (!q)
		return;
	xml_attr_set(q, "node", NODE_ROOMUSER);
	if (a && a->nick && (id = xml_add_child(q, "identity", NULL))) {
		xml_attr_set(id, "category", "conference");
		xml_attr_set(id, "type", "text");
		xml_attr_set(id, "name", a->nick);
	}
	muc_iq_result(st, q);
}

static bool may_register(const struct room *r, const struct jid *from)
{
	enum affiliation aff = muc_affiliation_of(r, from);

	return aff != AFF_OUTCAST && (!r->cfg.members_only || aff >= AFF_MEMBER);
}

/* §7.10: the form, or <registered/> with the nick for one who has it. */
static void register_get(const struct room *r, const struct xml_node *st,
			 const struct jid *from)
{
	const struct affiliate *a = affiliate_of(r, from);
	struct xml_node *q, *x, *f;

	if (!may_register(r, from)) {
		muc_reply_error(st, "cancel", "not-allowed", "you may not register with this room");
		return;
	}
	if (!(q = xml_new("query", NS_REGISTER)))
		return;
	if (a && a->nick) {
		xml_add_child(q, "registered", NULL);
		text_child(q, "username", a->nick);
	}
	text_child(q, "instructions", "Reserve a nick in this room: fill in the form.");
	if ((x = xml_add_child(q, "x", NS_XDATA))) {
		xml_attr_set(x, "type", "form");
		text_child(x, "title", "Registration");
		if ((f = xml_add_child(x, "field", NULL))) {
			xml_attr_set(f, "var", "FORM_TYPE");
			xml_attr_set(f, "type", "hidden");
			text_child(f, "value", NS_MUC_REGISTER);
		}
		if ((f = xml_add_child(x, "field", NULL))) {
			xml_attr_set(f, "var", "muc#register_roomnick");
			xml_attr_set(f, "type", "text-single");
			xml_attr_set(f, "label", "Desired nickname");
			xml_add_child(f, "required", NULL);
			if (a && a->nick)
				text_child(f, "value", a->nick);
		}
	}
	muc_iq_result(st, q);
}

/* The nick is set on the affiliate (a member if it was none). */
static int reserve(struct room *r, const struct jid *from, const char *nick)
{
	struct affiliate *a = affiliate_of(r, from);
	char *copy = nick ? strdup(nick) : NULL;

	if (nick && !copy)
		return -1;
	if (!a && (muc_affiliation_set(r, from, AFF_MEMBER) < 0 || !(a = affiliate_of(r, from)))) {
		free(copy);
		return -1;
	}
	free(a->nick);
	a->nick = copy;
	return 0;
}

/* The user's occupants in the room see their new affiliation (§9.3). */
static void affiliation_changed(struct room *r, const struct jid *from)
{
	enum affiliation aff = muc_affiliation_of(r, from);

	for (struct occupant *o = r->occupants; o; o = o->next) {
		if (!jid_bare_eq(o->real, from) || o->affiliation == aff)
			continue;
		o->affiliation = aff;
		if (o->role == ROLE_VISITOR && aff >= AFF_MEMBER)
			o->role = ROLE_PARTICIPANT;	/* §7.1.2: members have voice */
		muc_broadcast_presence(r, o, false, NULL, NULL, NULL);
	}
}

static void register_set(struct muc *muc, struct room *r, const struct xml_node *st,
			 const struct xml_node *q, const struct jid *from)
{
	const struct xml_node *x = xml_child(q, "x", NS_XDATA);
	struct affiliate *a = affiliate_of(r, from);
	char *ft = x ? muc_form_value(x, "FORM_TYPE") : NULL;
	char *nick = x ? muc_form_value(x, "muc#register_roomnick") : NULL;

	if (!may_register(r, from)) {
		muc_reply_error(st, "cancel", "not-allowed", "you may not register with this room");
	} else if (xml_child(q, "remove", NULL)) {
		/* XEP-0077 §3.2: cancelled. A member of an open room is no longer
		 * one; anyone else only loses the nick (a members-only room's
		 * member stays on its list). */
		if (a && a->affiliation == AFF_MEMBER && !r->cfg.members_only)
			muc_affiliation_set(r, from, AFF_NONE);
		else if (a) {
			free(a->nick);
			a->nick = NULL;
		}
		if (r->stored)
			muc_store_affiliation(muc, r, from);
		muc_iq_result(st, NULL);
		affiliation_changed(r, from);
	} else if (!x || !ft || strcmp(ft, NS_MUC_REGISTER) != 0) {
		muc_reply_error(st, "modify", "bad-request", "submit the muc#register form");
	} else if (!nick || !*nick || (long long)strlen(nick) > muc->o->max_nick_length) {
		muc_reply_error(st, "modify", "not-acceptable", "a nick is needed, and not that long");
	} else if (muc_nick_reserved(r, nick, from)) {
		muc_reply_error(st, "cancel", "conflict", "that nick is someone else's in this room");
	} else if (reserve(r, from, nick) < 0) {
		muc_reply_error(st, "wait", "internal-server-error", NULL);
	} else {
		if (r->stored)
			muc_store_affiliation(muc, r, from);
		log_info("muc", "%s: %s registers as %s", r->jid->full, from->full, nick);
		muc_iq_result(st, NULL);
		affiliation_changed(r, from);
	}
	free(ft);
	free(nick);
}

void muc_register(struct muc *muc, struct room *r, const struct xml_node *st,
		  const struct xml_node *q, const struct jid *from)
{
	const char *type = xml_attr(st, "type");

	if (type && strcmp(type, "set") == 0)
		register_set(muc, r, st, q, from);
	else
		register_get(r, st, from);
}
