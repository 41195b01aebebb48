/*
 * muc_request.c - what a room relays that is not groupchat: mediated
 * invitations and their declines (§7.8.2), voice requests and their approval
 * (§7.13, §8.6).
 *
 * A room relays a decline only to someone who invited the decliner lately: the
 * room keeps its last INVITES_KEPT invitations, so that it cannot be used to
 * send anyone a message from its JID.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "muc.h"
#include "router.h"

#define NS_CONFERENCE "jabber:x:conference"
#define NS_REQUEST NS_MUC "#request"
#define INVITES_PER_MESSAGE 20	/* <invite/>s one message may carry */

struct invitation {
	struct jid *invitee;	/* bare */
	struct jid *inviter;	/* full */
};

void muc_invitations_free(struct room *r)
{
	for (unsigned i = 0; r->invites && i < INVITES_KEPT; i++) {
		jid_free(r->invites[i].invitee);
		jid_free(r->invites[i].inviter);
	}
	free(r->invites);
	r->invites = NULL;
}

static void remember(struct room *r, const struct jid *invitee, const struct jid *inviter)
{
	struct invitation *v;

	if (!r->invites && !(r->invites = calloc(INVITES_KEPT, sizeof(*r->invites))))
		return;
	v = &r->invites[r->inv_next];
	r->inv_next = (r->inv_next + 1) % INVITES_KEPT;
	jid_free(v->invitee);
	jid_free(v->inviter);
	v->invitee = jid_bare(invitee);
	v->inviter = jid_copy(inviter);
}

/* The inviter of a decliner, forgotten once found (one decline per invite). */
static struct jid *inviter_of(struct room *r, const struct jid *decliner, const char *to)
{
	struct jid *want = to ? jid_new(to, NULL) : NULL, *found = NULL;

	for (unsigned i = 0; want && r->invites && i < INVITES_KEPT; i++) {
		struct invitation *v = &r->invites[i];

		if (!v->invitee || !jid_bare_eq(decliner, v->invitee) ||
		    !(jid_bare_eq(v->inviter, want) || jid_eq(v->inviter, want)))
			continue;
		found = v->inviter;
		v->inviter = NULL;
		jid_free(v->invitee);
		v->invitee = NULL;
		break;
	}
	jid_free(want);
	return found;
}

static void add_text_child(struct xml_node *parent, const char *name, const char *ns,
			   const char *text)
{
	struct xml_node *c = text ? xml_add_child(parent, name, ns) : NULL;

	if (c)
		xml_add_text(c, text, strlen(text));
}

/* §7.8.2: may o invite? In a members-only room admins, or anyone the owner
 * allows (muc#roomconfig_allowinvites); anyone may in an open room, which
 * anyone may join anyway. */
static bool may_invite(const struct room *r, const struct occupant *o)
{
	return !r->cfg.members_only || r->cfg.allow_invites || o->affiliation >= AFF_ADMIN;
}

/* One invitation, as the invitee gets it from the room. */
static void invite_one(struct muc *muc, struct room *r, const struct occupant *o,
		       const struct xml_node *st, const struct xml_node *inv,
		       const struct jid *invitee)
{
	struct xml_node *m = xml_new("message", "jabber:client"), *x, *i, *k;
	const struct xml_node *c;
	struct jid *bare = jid_bare(o->real);
	char *reason = xml_child_text(inv, "reason", NULL), body[1024];

	if (!m || !bare || !(x = xml_add_child(m, "x", NS_MUC_USER)) ||
	    !(i = xml_add_child(x, "invite", NULL)))
		goto out;
	xml_attr_set(m, "from", r->jid->full);
	xml_attr_set(m, "to", invitee->full);
	xml_attr_set(m, "id", xml_attr(st, "id"));
	xml_attr_set(i, "from", bare->full);
	add_text_child(i, "reason", NULL, reason);
	if ((c = xml_child(inv, "continue", NULL)) && (k = xml_add_child(i, "continue", NULL)) &&
	    xml_attr(c, "thread"))
		xml_attr_set(k, "thread", xml_attr(c, "thread"));
	if (r->cfg.password)
		add_text_child(x, "password", NULL, r->cfg.secret);
	/* For clients that know only XEP-0249's element, and a line for those
	 * that know neither. */
	if ((x = xml_add_child(m, "x", NS_CONFERENCE))) {
		xml_attr_set(x, "jid", r->jid->full);
		if (reason)
			xml_attr_set(x, "reason", reason);
		if (r->cfg.password)
			xml_attr_set(x, "password", r->cfg.secret);
	}
	snprintf(body, sizeof(body), "%s invites you to the room %s%s%s%s", bare->full,
		 r->jid->full, reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
	add_text_child(m, "body", NULL, body);
	remember(r, invitee, o->real);
	/* §7.8.2: a members-only room makes the invitee a member. */
	if (r->cfg.members_only && muc_affiliation_of(r, invitee) == AFF_NONE &&
	    muc_affiliation_set(r, invitee, AFF_MEMBER) == 0 && r->stored)
		muc_store_affiliation(muc, r, invitee);
	log_info("muc", "%s: %s invites %s", r->jid->full, o->real->full, invitee->full);
	router_route(m);
	m = NULL;
out:
	xml_unref(m);
	jid_free(bare);
	free(reason);
}

static void invite(struct muc *muc, struct room *r, struct occupant *o,
		   const struct xml_node *st, const struct xml_node *x)
{
	unsigned n = 0;

	if (!may_invite(r, o)) {
		muc_reply_error(st, "auth", "forbidden", "only admins invite to this room");
		return;
	}
	if (!muc_rate_ok(muc, o)) {
		muc_reply_error(st, "wait", "resource-constraint", "you send faster than this "
				"room allows; wait a moment");
		return;
	}
	/* Each checked before any goes: a bad one sends none. */
	for (const struct xml_node *i = xml_child(x, "invite", NULL); i;
	     i = xml_next(i, "invite", NULL)) {
		struct jid *to = xml_attr(i, "to") ? jid_new(xml_attr(i, "to"), NULL) : NULL;
		bool ok = to != NULL;

		jid_free(to);
		if (!ok) {
			muc_reply_error(st, "modify", "jid-malformed", "an invitation names "
					"whom it is for in 'to'");
			return;
		}
		if (++n > INVITES_PER_MESSAGE) {
			muc_reply_error(st, "modify", "policy-violation", "too many invitations "
					"in one message");
			return;
		}
	}
	for (const struct xml_node *i = xml_child(x, "invite", NULL); i;
	     i = xml_next(i, "invite", NULL)) {
		struct jid *to = jid_new(xml_attr(i, "to"), NULL);

		if (to)
			invite_one(muc, r, o, st, i, to);
		jid_free(to);
	}
}

/* §7.8.2: the invitee declines; the room tells the one who invited it. */
static void decline(struct room *r, const struct xml_node *st, const struct jid *from,
		    const struct xml_node *d)
{
	struct jid *inviter = inviter_of(r, from, xml_attr(d, "to")), *bare = jid_bare(from);
	struct xml_node *m = NULL, *x, *e;
	char *reason = xml_child_text(d, "reason", NULL);

	if (!inviter) {
		muc_reply_error(st, "cancel", "item-not-found", "nobody invited you to this "
				"room lately");
		goto out;
	}
	if (!bare || !(m = xml_new("message", "jabber:client")) ||
	    !(x = xml_add_child(m, "x", NS_MUC_USER)) || !(e = xml_add_child(x, "decline", NULL)))
		goto out;
	xml_attr_set(m, "from", r->jid->full);
	xml_attr_set(m, "to", inviter->full);
	xml_attr_set(m, "id", xml_attr(st, "id"));
	xml_attr_set(e, "from", bare->full);
	add_text_child(e, "reason", NULL, reason);
	router_route(m);
	m = NULL;
out:
	xml_unref(m);
	jid_free(inviter);
	jid_free(bare);
	free(reason);
}

/* ---- voice requests (§7.13) and their approval (§8.6) ---- */

char *muc_form_value(const struct xml_node *x, const char *var)
{
	unsigned n = 0;

	for (const struct xml_node *f = xml_child(x, "field", NULL); f && n < 64;
	     f = xml_next(f, "field", NULL), n++) {
		const char *v = xml_attr(f, "var");

		if (v && strcmp(v, var) == 0)
			return xml_child_text(f, "value", NULL);
	}
	return NULL;
}

static bool form_is(const struct xml_node *x, const char *type, const char *form_type)
{
	char *ft = muc_form_value(x, "FORM_TYPE");
	const char *t = xml_attr(x, "type");
	bool yes = ft && strcmp(ft, form_type) == 0 && t && strcmp(t, type) == 0;

	free(ft);
	return yes;
}

static void form_field(struct xml_node *x, const char *var, const char *type,
		       const char *label, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NULL);

	if (!f)
		return;
	xml_attr_set(f, "var", var);
	xml_attr_set(f, "type", type);
	if (label)
		xml_attr_set(f, "label", label);
	add_text_child(f, "value", NULL, value);
}

/* The approval form for o's request, to each moderator's resources. */
static void request_voice(struct muc *muc, struct room *r, struct occupant *o,
			  const struct xml_node *st)
{
	struct xml_node *m, *x;
	unsigned sent = 0;

	if (o->role != ROLE_VISITOR) {
		muc_reply_error(st, "modify", "not-acceptable", "you have voice already");
		return;
	}
	if (!muc_rate_ok(muc, o)) {
		muc_reply_error(st, "wait", "resource-constraint", "you ask too often; wait "
				"a moment");
		return;
	}
	if (!(m = xml_new("message", "jabber:client")) || !(x = xml_add_child(m, "x", NS_XDATA))) {
		xml_unref(m);
		return;
	}
	xml_attr_set(m, "from", r->jid->full);
	xml_attr_set(x, "type", "form");
	add_text_child(x, "title", NULL, "Voice request");
	add_text_child(x, "instructions", NULL, "To give this occupant voice, check \"Grant "
		       "voice to this person?\" and submit the form.");
	form_field(x, "FORM_TYPE", "hidden", NULL, NS_REQUEST);
	form_field(x, "muc#role", "list-single", "Requested role", "participant");
	form_field(x, "muc#jid", "jid-single", "User ID", o->real->full);
	form_field(x, "muc#roomnick", "text-single", "Room Nickname", o->nick);
	form_field(x, "muc#request_allow", "boolean", "Grant voice to this person?", "false");
	for (const struct occupant *to = r->occupants; to; to = to->next)
		if (to->role == ROLE_MODERATOR) {
			muc_route_to(m, to);
			sent++;
		}
	xml_unref(m);
	log_info("muc", "%s: %s asks for voice (%u moderator%s told)", r->jid->full,
		 o->jid->full, sent, sent == 1 ? "" : "s");
	if (!sent)
		muc_reply_error(st, "wait", "service-unavailable", "no moderator is in the "
				"room to give you voice");
}

static void approve_voice(struct room *r, struct occupant *o, const struct xml_node *st,
			  const struct xml_node *x)
{
	char *allow = muc_form_value(x, "muc#request_allow");
	char *nick = muc_form_value(x, "muc#roomnick");
	struct occupant *target = nick ? muc_by_nick(r, nick) : NULL;
	bool yes = allow && (strcmp(allow, "1") == 0 || strcmp(allow, "true") == 0);

	if (o->role != ROLE_MODERATOR) {
		muc_reply_error(st, "auth", "forbidden", "only moderators give voice");
	} else if (!target) {
		muc_reply_error(st, "cancel", "item-not-found", "no such occupant");
	} else if (yes && target->role == ROLE_VISITOR) {
		/* §8.3, as if the moderator had set the role */
		target->role = ROLE_PARTICIPANT;
		muc_broadcast_presence(r, target, false, NULL, NULL, NULL);
		log_info("muc", "%s: %s gives %s voice", r->jid->full, o->jid->full,
			 target->jid->full);
	}
	free(allow);
	free(nick);
}

bool muc_room_request(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct jid *from)
{
	const struct xml_node *x = xml_child(st, "x", NS_MUC_USER), *d;
	const struct xml_node *form = xml_child(st, "x", NS_XDATA);

	if (x && (d = xml_child(x, "decline", NULL))) {
		decline(r, st, from, d);	/* from the invitee: no occupant */
		return true;
	}
	if (x && xml_child(x, "invite", NULL)) {
		if (!o)
			muc_reply_error(st, "modify", "not-acceptable", "only occupants invite "
					"to the room");
		else
			invite(muc, r, o, st, x);
		return true;
	}
	if (o && form && form_is(form, "submit", NS_REQUEST)) {
		char *allow = muc_form_value(form, "muc#request_allow");

		if (allow)
			approve_voice(r, o, st, form);
		else
			request_voice(muc, r, o, st);
		free(allow);
		return true;
	}
	return false;
}
