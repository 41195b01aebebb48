/*
 * muc_admin.c - moderation: roles by nick and affiliations by JID, the
 * muc#admin protocol (§8 moderators, §9 admins, §10 owners).
 *
 * A set is a batch: every item is checked against the actor's rank before any
 * is applied, so a batch with one forbidden item changes nothing (§9.5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc.h"

/* ---- moderation (§8, §9, §10): muc#admin ---- */

int muc_role_parse(const char *s)
{
	for (int i = 0; s && i <= ROLE_MODERATOR; i++)
		if (strcmp(s, muc_role_names[i]) == 0)
			return i;
	return -1;
}

int muc_affiliation_parse(const char *s)
{
	for (int i = 0; s && i < AFF_COUNT; i++)
		if (strcmp(s, muc_affiliation_names[i]) == 0)
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

	c->role = muc_role_parse(xml_attr(item, "role"));
	c->affiliation = muc_affiliation_parse(xml_attr(item, "affiliation"));
	*cond = "bad-request";
	if ((c->role < 0) == (c->affiliation < 0))
		return "an item changes a role or an affiliation";
	*cond = "forbidden";
	if (c->role >= 0) {
		if (!nick)
			return (*cond = "bad-request"), "a role change names a nick";
		if (actor->role != ROLE_MODERATOR)
			return "only moderators change roles";
		if (!(target = muc_by_nick(r, nick)))
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
		enum affiliation now = muc_affiliation_of(r, c->jid);

		/* §9, §10: owners alone make or unmake admins and owners. */
		/* Banning one's better is not-allowed (§9.1); changing the admin
		 * or owner lists is for owners, forbidden to others (§10.5, §10.8). */
		if (actor->affiliation < AFF_OWNER && now >= AFF_ADMIN &&
		    c->affiliation == AFF_OUTCAST)
			return (*cond = "not-allowed"), "an admin cannot ban an admin or owner";
		if (actor->affiliation < AFF_OWNER && (now >= AFF_ADMIN ||
						       c->affiliation >= AFF_ADMIN))
			return "only owners change admins and owners";
		if (now == AFF_OWNER && c->affiliation != AFF_OWNER && muc_affiliation_count(r, AFF_OWNER) == 1)
			return (*cond = "conflict"), "the room's only owner stays owner";
	}
	return NULL;
}

void muc_affiliation_change(struct muc *muc, struct room *r, const struct jid *bare,
			    enum affiliation aff, const char *reason)
{
	static const char *const banned[] = { "301", NULL }, *const unmembered[] = { "321", NULL };

	if (muc_affiliation_set(r, bare, aff) < 0)
		return;
	if (r->stored)
		muc_store_affiliation(muc, r, bare);
	for (struct occupant *o = r->occupants, *next; o; o = next) {
		next = o->next;
		if (!jid_bare_eq(o->real, bare))
			continue;
		o->affiliation = aff;
		/* §9.1: banned, and out; §9.4: no longer a member of a members-only
		 * room, out too. */
		if (aff == AFF_OUTCAST || (aff == AFF_NONE && r->cfg.members_only)) {
			o->role = ROLE_NONE;
			muc_broadcast_presence(r, o, true, NULL, aff == AFF_OUTCAST ? banned
					       : unmembered, reason);
			muc_occupant_unlink(r, o);
			muc_occupant_free(o);
			continue;
		}
		o->role = o->affiliation >= AFF_ADMIN ? ROLE_MODERATOR
			: o->role == ROLE_MODERATOR ? ROLE_PARTICIPANT : o->role;
		muc_broadcast_presence(r, o, false, NULL, NULL, reason);
	}
}

static void change_apply(struct muc *muc, struct room *r, struct change *c)
{
	static const char *const kicked[] = { "307", NULL };

	if (c->nick) {
		/* Looked up now: an earlier item of the batch may have kicked it. */
		struct occupant *o = muc_by_nick(r, c->nick);

		if (!o)
			return;
		if (c->role == ROLE_NONE) {
			/* §8.2: kicked, told why, and gone. */
			o->role = ROLE_NONE;
			muc_broadcast_presence(r, o, true, NULL, kicked, c->reason);
			muc_occupant_unlink(r, o);
			muc_occupant_free(o);
			return;
		}
		o->role = (enum role)c->role;
		muc_broadcast_presence(r, o, false, NULL, NULL, c->reason);
		return;
	}
	muc_affiliation_change(muc, r, c->jid, (enum affiliation)c->affiliation, c->reason);
}

#define ADMIN_ITEMS_MAX 64	/* items in one muc#admin set */

void muc_admin_set(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct xml_node *query)
{
	struct change c[ADMIN_ITEMS_MAX] = { { 0 } };
	const char *why = NULL, *cond = "bad-request";
	unsigned n = 0;

	if (!o) {
		muc_reply_error(st, "auth", "forbidden", "you are not in this room");
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
		muc_reply_error(st, NULL, cond, why);
	else
		muc_iq_result(st, NULL);
	for (unsigned i = 0; i < n; i++) {
		if (!why)
			change_apply(muc, r, &c[i]);
		jid_free(c[i].jid);
		free(c[i].reason);
	}
	muc_room_emptied(muc, r);	/* a moderator who kicked itself was the last */
}

void muc_admin_get(struct room *r, struct occupant *o, const struct xml_node *st,
		      const struct xml_node *query)
{
	const struct xml_node *it = xml_child(query, "item", NULL);
	int aff = it ? muc_affiliation_parse(xml_attr(it, "affiliation")) : -1;
	int role = it ? muc_role_parse(xml_attr(it, "role")) : -1;
	struct xml_node *q;

	if ((aff < 0) == (role < 0)) {
		muc_reply_error(st, "modify", "bad-request", "ask for one affiliation or one role");
		return;
	}
	/* §9.5, §8.5: lists are for admins and owners, roles for moderators. */
	if (!o || (aff >= 0 && o->affiliation < AFF_ADMIN) ||
	    (role >= 0 && o->role != ROLE_MODERATOR)) {
		muc_reply_error(st, "auth", "forbidden", "you may not see that list");
		return;
	}
	if (!(q = xml_new("query", NS_MUC_ADMIN)))
		return;
	if (aff >= 0) {
		for (const struct affiliate *a = r->affiliates; a; a = a->next) {
			struct xml_node *i;

			if ((int)a->affiliation != aff || !(i = xml_add_child(q, "item", NULL)))
				continue;
			xml_attr_set(i, "affiliation", muc_affiliation_names[a->affiliation]);
			xml_attr_set(i, "jid", a->bare->full);
		}
	} else {
		for (const struct occupant *x = r->occupants; x; x = x->next) {
			struct xml_node *i;

			if ((int)x->role != role || !(i = xml_add_child(q, "item", NULL)))
				continue;
			xml_attr_set(i, "affiliation", muc_affiliation_names[x->affiliation]);
			xml_attr_set(i, "role", muc_role_names[x->role]);
			xml_attr_set(i, "nick", x->nick);
			xml_attr_set(i, "jid", x->real->full);
		}
	}
	muc_iq_result(st, q);
}
