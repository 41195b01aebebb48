/*
 * muc_ctl.c - the service's rooms for the administrator, on the control socket:
 *
 *	parleyctl muc rooms [SERVICE]			every room (of one service)
 *	parleyctl muc info ROOM				its configuration and counts
 *	parleyctl muc create ROOM [OWNER]		a persistent room, open at once
 *	parleyctl muc destroy ROOM [REASON]		occupants told, room and archive gone
 *	parleyctl muc occupants ROOM			who is in it, under which nick
 *	parleyctl muc affiliation ROOM [JID AFFILIATION]  the list, or one change
 *
 * Each instance of mod_muc answers for its own service (module.h: CTL_PASS
 * hands the request to the next), from what it holds in memory: every
 * persistent room is read back at start, so the answer needs no query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "muc.h"

#define BY_ADMIN "the administrator"

static const char *yes(bool b)
{
	return b ? "true" : "false";
}

static void room_item(struct ctl_reply *r, const struct room *room)
{
	const struct room_config *c = &room->cfg;

	ctl_item(r);
	if (ctl_json(r)) {
		ctl_printf(r, "{\"jid\":");
		ctl_str(r, room->jid->full);
		ctl_printf(r, ",\"name\":");
		ctl_str(r, c->name);
		ctl_printf(r, ",\"occupants\":%u,\"persistent\":%s,\"public\":%s,"
			   "\"members_only\":%s,\"password\":%s,\"moderated\":%s,\"locked\":%s}",
			   room->count, yes(c->persistent), yes(c->public_room),
			   yes(c->members_only), yes(c->password), yes(c->moderated),
			   yes(room->locked));
		return;
	}
	ctl_printf(r, "%-44s %9u  %-24.24s %s,%s%s%s%s%s\n", room->jid->full, room->count,
		   c->name ? c->name : "-", c->persistent ? "persistent" : "temporary",
		   c->public_room ? "public" : "hidden", c->members_only ? ",members-only" : "",
		   c->password ? ",password" : "", c->moderated ? ",moderated" : "",
		   room->locked ? ",locked" : "");
}

static int by_jid(const void *a, const void *b)
{
	return strcmp((*(const struct room *const *)a)->jid->full,
		      (*(const struct room *const *)b)->jid->full);
}

static int rooms(struct muc *muc, struct ctl_reply *r, int argc, char **argv)
{
	const char *service = module_domain(muc->m);
	const struct room **sorted;
	unsigned n = 0;

	if (argc > 2)
		return ctl_fail(r, "usage: parleyctl muc rooms [SERVICE]");
	if (argc == 2 && strcmp(argv[1], service) != 0)
		return CTL_PASS;
	ctl_list(r, "rooms", "ROOM                                         OCCUPANTS  NAME"
		 "                     KIND");
	/* By name; without memory for the sort, as they are kept (newest first). */
	if (muc->nrooms && (sorted = malloc(muc->nrooms * sizeof(*sorted)))) {
		for (const struct room *room = muc->rooms; room && n < muc->nrooms;
		     room = room->next)
			sorted[n++] = room;
		qsort(sorted, n, sizeof(*sorted), by_jid);
		for (unsigned i = 0; i < n; i++)
			room_item(r, sorted[i]);
		free(sorted);
	} else {
		for (const struct room *room = muc->rooms; room; room = room->next)
			room_item(r, room);
	}
	return argc == 2 ? 0 : CTL_PASS;	/* every service lists its rooms */
}

static int info(struct muc *muc, struct ctl_reply *r, struct room *room)
{
	const struct room_config *c = &room->cfg;
	char *subject = room->subject ? xml_child_text(room->subject, "subject", NULL) : NULL;
	unsigned owners = muc_affiliation_count(room, AFF_OWNER);
	unsigned admins = muc_affiliation_count(room, AFF_ADMIN);
	unsigned members = muc_affiliation_count(room, AFF_MEMBER);
	unsigned outcasts = muc_affiliation_count(room, AFF_OUTCAST);

	(void)muc;
	if (ctl_json(r)) {
		ctl_printf(r, ",\"room\":{\"jid\":");
		ctl_str(r, room->jid->full);
		ctl_printf(r, ",\"name\":");
		ctl_str(r, c->name);
		ctl_printf(r, ",\"description\":");
		ctl_str(r, c->desc);
		ctl_printf(r, ",\"language\":");
		ctl_str(r, c->lang);
		ctl_printf(r, ",\"subject\":");
		ctl_str(r, subject);
		ctl_printf(r, ",\"occupants\":%u,\"max_users\":%lld,\"persistent\":%s,"
			   "\"public\":%s,\"members_only\":%s,\"moderated\":%s,\"password\":%s,"
			   "\"whois\":\"%s\",\"allow_pm\":\"%s\",\"allow_invites\":%s,"
			   "\"change_subject\":%s,\"archive\":%s,\"history_length\":%lld,"
			   "\"history_kept\":%u,\"locked\":%s,\"affiliations\":{\"owner\":%u,"
			   "\"admin\":%u,\"member\":%u,\"outcast\":%u}}",
			   room->count, c->max_users, yes(c->persistent), yes(c->public_room),
			   yes(c->members_only), yes(c->moderated), yes(c->password),
			   c->whois_anyone ? "anyone" : "moderators", muc_allow_pm_names[c->allow_pm],
			   yes(c->allow_invites), yes(c->change_subject), yes(c->archive),
			   c->history, room->hist_count, yes(room->locked), owners, admins,
			   members, outcasts);
	} else {
		ctl_printf(r, "room            %s\n"
			   "name            %s\n"
			   "description     %s\n"
			   "subject         %s\n"
			   "occupants       %u (at most %lld)\n"
			   "kind            %s, %s%s%s%s%s\n"
			   "real JIDs       shown to %s\n"
			   "private msgs    %s\n"
			   "history         %u kept of %lld, archive %s\n"
			   "affiliations    %u owner%s, %u admin%s, %u member%s, %u outcast%s\n",
			   room->jid->full, c->name ? c->name : "-", c->desc ? c->desc : "-",
			   subject ? subject : "-", room->count, c->max_users,
			   c->persistent ? "persistent" : "temporary",
			   c->public_room ? "public" : "hidden",
			   c->members_only ? ", members-only" : "", c->moderated ? ", moderated" : "",
			   c->password ? ", password" : "", room->locked ? ", locked (not yet "
			   "configured)" : "", c->whois_anyone ? "anyone" : "moderators",
			   muc_allow_pm_names[c->allow_pm], room->hist_count, c->history,
			   c->archive ? "on" : "off", owners, owners == 1 ? "" : "s", admins,
			   admins == 1 ? "" : "s", members, members == 1 ? "" : "s", outcasts,
			   outcasts == 1 ? "" : "s");
	}
	free(subject);
	return 0;
}

static int occupants(struct ctl_reply *r, const struct room *room)
{
	ctl_list(r, "occupants", "NICK                     ROLE         AFFILIATION  JID");
	for (const struct occupant *o = room->occupants; o; o = o->next) {
		ctl_item(r);
		if (ctl_json(r)) {
			ctl_printf(r, "{\"nick\":");
			ctl_str(r, o->nick);
			ctl_printf(r, ",\"role\":\"%s\",\"affiliation\":\"%s\",\"occupant_id\":",
				   muc_role_names[o->role], muc_affiliation_names[o->affiliation]);
			ctl_str(r, o->occupant_id);
			ctl_printf(r, ",\"jids\":[");
			for (unsigned i = 0; i < muc_resources(o); i++) {
				ctl_printf(r, i ? "," : "");
				ctl_str(r, muc_resource(o, i)->full);
			}
			ctl_printf(r, "]}");
			continue;
		}
		ctl_printf(r, "%-24s %-12s %-12s", o->nick, muc_role_names[o->role],
			   muc_affiliation_names[o->affiliation]);
		for (unsigned i = 0; i < muc_resources(o); i++)
			ctl_printf(r, " %s", muc_resource(o, i)->full);
		ctl_printf(r, "\n");
	}
	return 0;
}

static int affiliation(struct muc *muc, struct ctl_reply *r, struct room *room, int argc,
		       char **argv)
{
	struct jid *full, *bare;
	int aff;

	if (argc == 2) {
		ctl_list(r, "affiliations", "JID                                      AFFILIATION  "
			 "NICK");
		for (int rank = AFF_OWNER; rank >= AFF_OUTCAST; rank--) {
			for (const struct affiliate *a = room->affiliates; a; a = a->next) {
				if ((int)a->affiliation != rank)
					continue;
				ctl_item(r);
				if (ctl_json(r)) {
					ctl_printf(r, "{\"jid\":");
					ctl_str(r, a->bare->full);
					ctl_printf(r, ",\"affiliation\":\"%s\",\"nick\":",
						   muc_affiliation_names[a->affiliation]);
					ctl_str(r, a->nick);
					ctl_printf(r, "}");
				} else {
					ctl_printf(r, "%-40s %-12s %s\n", a->bare->full,
						   muc_affiliation_names[a->affiliation],
						   a->nick ? a->nick : "");
				}
			}
		}
		return 0;
	}
	if (argc != 4)
		return ctl_fail(r, "usage: parleyctl muc affiliation ROOM [JID AFFILIATION]");
	if ((aff = muc_affiliation_parse(argv[3])) < 0)
		return ctl_fail(r, "%s is not an affiliation (owner, admin, member, outcast, none)",
				argv[3]);
	if (!(full = jid_new(argv[2], NULL)))
		return ctl_fail(r, "%s is not a valid JID", argv[2]);
	bare = jid_bare(full);
	jid_free(full);
	if (!bare)
		return ctl_fail(r, "out of memory");
	muc_affiliation_change(muc, room, bare, (enum affiliation)aff, NULL);
	log_info("muc", "%s: %s made %s by " BY_ADMIN, room->jid->full, bare->full,
		 muc_affiliation_names[aff]);
	if (ctl_json(r)) {
		ctl_printf(r, ",\"jid\":");
		ctl_str(r, bare->full);
		ctl_printf(r, ",\"affiliation\":\"%s\"", muc_affiliation_names[aff]);
	} else {
		ctl_printf(r, "%s is now %s of %s\n", bare->full, muc_affiliation_names[aff],
			   room->jid->full);
	}
	jid_free(bare);
	muc_room_emptied(muc, room);	/* a temporary room whose last occupant was banned */
	return 0;
}

static int create(struct muc *muc, struct ctl_reply *r, const struct jid *j, int argc,
		  char **argv)
{
	struct jid *owner = NULL;
	struct room *room;

	if (argc > 3)
		return ctl_fail(r, "usage: parleyctl muc create ROOM [OWNER]");
	if (muc_room_find(muc, j))
		return ctl_fail(r, "%s exists already", j->full);
	if (muc->nrooms >= (unsigned)muc->o->max_rooms)
		return ctl_fail(r, "%s has as many rooms as its max-rooms (%lld)",
				module_domain(muc->m), muc->o->max_rooms);
	if (argc == 3) {
		struct jid *full = jid_new(argv[2], NULL);

		owner = full ? jid_bare(full) : NULL;
		jid_free(full);
		if (!owner)
			return ctl_fail(r, "%s is not a valid JID", argv[2]);
	}
	if (!(room = muc_room_new(muc, j)) ||
	    (owner && muc_affiliation_set(room, owner, AFF_OWNER) < 0) ||
	    muc_room_link(muc, room) < 0) {
		if (room)
			muc_room_free(room);
		jid_free(owner);
		return ctl_fail(r, "out of memory");
	}
	room->cfg.persistent = true;	/* what an administrator makes, stays */
	muc_store_room(muc, room);
	log_info("muc", "%s: created by " BY_ADMIN "%s%s", room->jid->full,
		 owner ? ", owned by " : "", owner ? owner->full : "");
	if (ctl_json(r)) {
		ctl_printf(r, ",\"jid\":");
		ctl_str(r, room->jid->full);
	} else {
		ctl_printf(r, "created %s (persistent%s%s)\n", room->jid->full,
			   owner ? ", owner " : "", owner ? owner->full : ", no owner yet");
	}
	jid_free(owner);
	return 0;
}

static int destroy(struct muc *muc, struct ctl_reply *r, struct room *room, int argc,
		   char **argv)
{
	char *jid = strdup(room->jid->full);
	unsigned n = room->count;

	if (argc > 3) {
		free(jid);
		return ctl_fail(r, "usage: parleyctl muc destroy ROOM [REASON]");
	}
	if (!jid)
		return ctl_fail(r, "out of memory");
	muc_room_destroy(muc, room, NULL, argc == 3 ? argv[2] : NULL, BY_ADMIN);
	if (ctl_json(r)) {
		ctl_printf(r, ",\"jid\":");
		ctl_str(r, jid);
		ctl_printf(r, ",\"occupants\":%u", n);
	} else {
		ctl_printf(r, "destroyed %s (%u occupant%s told)\n", jid, n, n == 1 ? "" : "s");
	}
	free(jid);
	return 0;
}

static int command(struct module *m, struct ctl_reply *r, int argc, char **argv)
{
	static const char usage[] = "usage: parleyctl muc rooms|info|create|destroy|occupants|"
				    "affiliation ... (see parleyctl help)";
	struct muc *muc = module_data(m);
	struct room *room;
	struct jid *j;
	int rc;

	if (argc < 1)
		return ctl_fail(r, "%s", usage);
	if (strcmp(argv[0], "rooms") == 0)
		return muc->loading ? ctl_fail(r, "%s: the rooms are still being read from the "
					       "database; try again", module_domain(m))
			: rooms(muc, r, argc, argv);
	if (strcmp(argv[0], "info") && strcmp(argv[0], "create") && strcmp(argv[0], "destroy") &&
	    strcmp(argv[0], "occupants") && strcmp(argv[0], "affiliation"))
		return ctl_fail(r, "%s", usage);
	if (argc < 2)
		return ctl_fail(r, "usage: parleyctl muc %s ROOM ...", argv[0]);
	if (!(j = jid_new(argv[1], NULL)) || !j->local || j->resource) {
		jid_free(j);
		return ctl_fail(r, "%s is not a room JID (room@service)", argv[1]);
	}
	if (strcmp(j->domain, module_domain(m)) != 0) {
		jid_free(j);
		return CTL_PASS;	/* another host's service, or none */
	}
	if (muc->loading) {
		jid_free(j);
		return ctl_fail(r, "%s: the rooms are still being read from the database; try "
				"again", module_domain(m));
	}
	room = muc_room_find(muc, j);
	if (strcmp(argv[0], "create") == 0)
		rc = create(muc, r, j, argc, argv);
	else if (!room)
		rc = ctl_fail(r, "no room %s", j->full);
	else if (strcmp(argv[0], "info") == 0)
		rc = argc == 2 ? info(muc, r, room) : ctl_fail(r, "usage: parleyctl muc info ROOM");
	else if (strcmp(argv[0], "occupants") == 0)
		rc = argc == 2 ? occupants(r, room)
			: ctl_fail(r, "usage: parleyctl muc occupants ROOM");
	else if (strcmp(argv[0], "destroy") == 0)
		rc = destroy(muc, r, room, argc, argv);
	else
		rc = affiliation(muc, r, room, argc, argv);
	jid_free(j);
	return rc;
}

int muc_ctl_init(struct muc *muc)
{
	return module_command(muc->m, "muc", command);
}
