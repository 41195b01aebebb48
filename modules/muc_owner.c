/*
 * muc_owner.c - what only a room's owner does: the muc#roomconfig form
 * (§10.1 creation, §10.2 configuration) and destruction (§10.9).
 *
 * A submitted form is applied to a copy of the configuration and taken only
 * if every field parses; occupants are then told what changed (104, 172,
 * 173), and a room made members-only sends its non-members out (322).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "muc.h"
#include "router.h"

/* ---- the configuration form (§10.2) ---- */

const char *const muc_allow_pm_names[] = { "anyone", "participants", "moderators", "none" };
static const char *const whois_names[] = { "moderators", "anyone" };
static const char *const broadcast_roles[] = { "moderator", "participant", "visitor" };
static const enum role broadcast_role[] = { ROLE_MODERATOR, ROLE_PARTICIPANT, ROLE_VISITOR };

static void add_value(struct xml_node *f, const char *value)
{
	struct xml_node *v = xml_add_child(f, "value", NULL);

	if (v)
		xml_add_text(v, value, strlen(value));
}

/* A field; labels and options only in the form an owner fills in. */
static struct xml_node *field(struct xml_node *x, bool submit, const char *var,
			      const char *type, const char *label, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NULL);

	if (!f)
		return NULL;
	xml_attr_set(f, "var", var);
	if (!submit) {
		xml_attr_set(f, "type", type);
		if (label)
			xml_attr_set(f, "label", label);
	}
	if (value)
		add_value(f, value);
	return f;
}

static void boolean(struct xml_node *x, bool submit, const char *var, const char *label,
		    bool value)
{
	field(x, submit, var, "boolean", label, value ? "1" : "0");
}

static void options(struct xml_node *f, bool submit, const char *const *names, unsigned n)
{
	for (unsigned i = 0; f && !submit && i < n; i++) {
		struct xml_node *o = xml_add_child(f, "option", NULL);

		if (o) {
			xml_attr_set(o, "label", names[i]);
			add_value(o, names[i]);
		}
	}
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The room's configuration as a muc#roomconfig form: type "form" for its
 * owner to fill in (§10.2), or "submit" as the owner would send it back, which
 * is how a persistent room's configuration is stored (muc_store.c).
 */
struct xml_node *muc_config_form(const struct room_config *c, bool submit)
{
	struct xml_node *x = xml_new("x", NS_XDATA), *f;
	char max[24], hist[24];

	if (!x)
		return NULL;
	snprintf(max, sizeof(max), "%lld", c->max_users);
	snprintf(hist, sizeof(hist), "%lld", c->history);
	xml_attr_set(x, "type", submit ? "submit" : "form");
	field(x, submit, "FORM_TYPE", "hidden", NULL, NS_ROOMCONFIG);
	field(x, submit, "muc#roomconfig_roomname", "text-single", "Name", c->name);
	field(x, submit, "muc#roomconfig_roomdesc", "text-single", "Description", c->desc);
	field(x, submit, "muc#roomconfig_lang", "text-single", "Language (e.g. en)", c->lang);
	boolean(x, submit, "muc#roomconfig_persistentroom", "Kept when empty, and across "
		"restarts", c->persistent);
	boolean(x, submit, "muc#roomconfig_publicroom", "Listed in the room list", c->public_room);
	boolean(x, submit, "muc#roomconfig_membersonly", "Members only", c->members_only);
	boolean(x, submit, "muc#roomconfig_moderatedroom", "Moderated (visitors have no voice)",
		c->moderated);
	boolean(x, submit, "muc#roomconfig_passwordprotectedroom", "Password protected",
		c->password);
	field(x, submit, "muc#roomconfig_roomsecret", "text-private", "Password", c->secret);
	field(x, submit, "muc#roomconfig_maxusers", "text-single", "Most occupants", max);
	f = field(x, submit, "muc#roomconfig_whois", "list-single", "Who sees real JIDs",
		  whois_names[c->whois_anyone]);
	options(f, submit, whois_names, COUNT(whois_names));
	boolean(x, submit, "muc#roomconfig_changesubject", "Occupants change the subject",
		c->change_subject);
	boolean(x, submit, "muc#roomconfig_allowinvites", "Occupants invite others",
		c->allow_invites);
	f = field(x, submit, "muc#roomconfig_allowpm", "list-single", "Who sends private "
		  "messages", muc_allow_pm_names[c->allow_pm]);
	options(f, submit, muc_allow_pm_names, COUNT(muc_allow_pm_names));
	f = field(x, submit, "muc#roomconfig_presencebroadcast", "list-multi", "Roles whose "
		  "presence is broadcast", NULL);
	for (unsigned i = 0; f && i < COUNT(broadcast_roles); i++)
		if (c->broadcast & (1u << broadcast_role[i]))
			add_value(f, broadcast_roles[i]);
	options(f, submit, broadcast_roles, COUNT(broadcast_roles));
	field(x, submit, "muc#roomconfig_historylength", "text-single", "Messages of history",
	      hist);
	boolean(x, submit, "muc#roomconfig_enablearchiving", "Keep an archive of messages",
		c->archive);
	return x;
}

void muc_owner_get(struct room *r, const struct xml_node *st)
{
	struct xml_node *q = xml_new("query", NS_MUC_OWNER), *x = muc_config_form(&r->cfg, false);

	if (!q || !x) {
		xml_unref(q);
		xml_unref(x);
		return;
	}
	xml_append(q, x);
	muc_iq_result(st, q);
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

/* One of names; its index in *out. */
static bool parse_one(const char *v, const char *const *names, unsigned n, unsigned *out)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return *out = i, true;
	return false;
}

static bool parse_broadcast(const struct xml_node *f, unsigned *out)
{
	unsigned mask = 0, i;

	for (const struct xml_node *v = xml_child(f, "value", NULL); v;
	     v = xml_next(v, "value", NULL)) {
		char *t = xml_text(v);
		bool ok = t && parse_one(t, broadcast_roles, COUNT(broadcast_roles), &i);

		free(t);
		if (!ok)
			return false;
		mask |= 1u << broadcast_role[i];
	}
	*out = mask;
	return true;
}

static bool set_text(char **dst, const char *val, size_t max)
{
	if (strlen(val) > max)
		return false;
	free(*dst);
	*dst = *val ? strdup(val) : NULL;
	return true;
}

#define TEXT_MAX 1024	/* bytes of a name, description, password or language */

/* Applies a submitted form to c (a copy: the room takes it only if it all
 * parses). NULL, or the var of the first field that does not. Fields it does
 * not know are ignored, as a XEP-0004 form processor may. */
const char *muc_config_parse(const struct muc *muc, const struct xml_node *x,
			     struct room_config *c)
{
	unsigned n = 0, i;

	for (const struct xml_node *f = xml_child(x, "field", NULL); f;
	     f = xml_next(f, "field", NULL)) {
		const char *var = xml_attr(f, "var");
		char *v = xml_child_text(f, "value", NULL);
		const char *val = v ? v : "";
		bool ok = true;

		if (++n > 64)
			ok = false;	/* no form of ours has that many */
		else if (!var || !strcmp(var, "FORM_TYPE"))
			ok = !var || !strcmp(val, NS_ROOMCONFIG);
		else if (!strcmp(var, "muc#roomconfig_roomname"))
			ok = set_text(&c->name, val, TEXT_MAX);
		else if (!strcmp(var, "muc#roomconfig_roomdesc"))
			ok = set_text(&c->desc, val, TEXT_MAX);
		else if (!strcmp(var, "muc#roomconfig_roomsecret"))
			ok = set_text(&c->secret, val, TEXT_MAX);
		else if (!strcmp(var, "muc#roomconfig_lang"))
			ok = set_text(&c->lang, val, 35);	/* RFC 5646 §4.4.1 */
		else if (!strcmp(var, "muc#roomconfig_persistentroom"))
			ok = parse_bool(val, &c->persistent);
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
		else if (!strcmp(var, "muc#roomconfig_allowinvites"))
			ok = parse_bool(val, &c->allow_invites);
		else if (!strcmp(var, "muc#roomconfig_enablearchiving"))
			ok = parse_bool(val, &c->archive);
		else if (!strcmp(var, "muc#roomconfig_maxusers"))
			ok = parse_count(val, muc->o->max_occupants, true, &c->max_users);
		else if (!strcmp(var, "muc#roomconfig_historylength"))
			ok = parse_count(val, muc->o->history_length, false, &c->history);
		else if (!strcmp(var, "muc#roomconfig_whois")) {
			ok = parse_one(val, whois_names, COUNT(whois_names), &i);
			c->whois_anyone = ok ? i == 1 : c->whois_anyone;
		} else if (!strcmp(var, "muc#roomconfig_allowpm")) {
			ok = parse_one(val, muc_allow_pm_names, COUNT(muc_allow_pm_names), &i);
			c->allow_pm = ok ? (enum allow_pm)i : c->allow_pm;
		} else if (!strcmp(var, "muc#roomconfig_presencebroadcast"))
			ok = parse_broadcast(f, &c->broadcast);
		free(v);
		if (!ok)
			return var ? var : "FORM_TYPE";
	}
	if (c->password && !c->secret)
		return "muc#roomconfig_roomsecret";
	return NULL;
}

void muc_config_free(struct room_config *c)
{
	free(c->name);
	free(c->desc);
	free(c->secret);
	free(c->lang);
}

static int config_copy(const struct room_config *from, struct room_config *to)
{
	*to = *from;
	to->name = from->name ? strdup(from->name) : NULL;
	to->desc = from->desc ? strdup(from->desc) : NULL;
	to->secret = from->secret ? strdup(from->secret) : NULL;
	to->lang = from->lang ? strdup(from->lang) : NULL;
	if ((from->name && !to->name) || (from->desc && !to->desc) ||
	    (from->secret && !to->secret) || (from->lang && !to->lang)) {
		muc_config_free(to);
		return -1;
	}
	return 0;
}

/* ---- the owner: configuration (§10.2) and destruction (§10.9) ---- */

/* §10.2.1: occupants are told the configuration changed (104), and how
 * their privacy did: 172 real JIDs now public, 173 no longer. */
static void announce_change(const struct room *r, const char *privacy, const char *logging)
{
	struct xml_node *m = xml_new("message", "jabber:client");
	struct xml_node *x = m ? xml_add_child(m, "x", NS_MUC_USER) : NULL;

	if (x) {
		muc_add_status(x, "104");
		if (privacy)
			muc_add_status(x, privacy);
		if (logging)
			muc_add_status(x, logging);
		xml_attr_set(m, "type", "groupchat");
		xml_attr_set(m, "from", r->jid->full);
		for (const struct occupant *to = r->occupants; to; to = to->next)
			muc_route_to(m, to);
	}
	xml_unref(m);
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
		muc_broadcast_presence(r, o, true, NULL, gone, NULL);
		muc_occupant_unlink(r, o);
		muc_occupant_free(o);
	}
}

/* §10.9: everyone out, told where to go, and the room gone. */
void muc_room_destroy(struct muc *muc, struct room *r, const char *venue, const char *reason,
		      const char *by)
{
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
		muc_route_to(p, o);
		xml_unref(p);
	}
	log_info("muc", "%s: destroyed by %s", r->jid->full, by);
	muc_store_destroy(muc, r);
	muc_room_remove(muc, r);
}

static void destroy(struct muc *muc, struct room *r, const struct xml_node *st,
		    const struct xml_node *d)
{
	char *reason = xml_child_text(d, "reason", NULL);

	muc_iq_result(st, NULL);
	muc_room_destroy(muc, r, xml_attr(d, "jid"), reason, "its owner");
	free(reason);
}

void muc_owner_set(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct xml_node *query)
{
	const struct xml_node *x = xml_child(query, "x", NS_XDATA);
	const struct xml_node *d = xml_child(query, "destroy", NULL);
	const char *type = x ? xml_attr(x, "type") : NULL, *bad, *privacy, *logging;
	struct room_config c;
	bool was_locked = r->locked, members_only;

	if (!o || o->affiliation != AFF_OWNER) {
		muc_reply_error(st, "auth", "forbidden", "only the room's owner does that");
		return;
	}
	if (d) {
		destroy(muc, r, st, d);
		return;
	}
	/* §10.1.2: an empty submitted form is the instant room; a cancelled
	 * form leaves the room as it is. */
	if (!type || (strcmp(type, "submit") && strcmp(type, "cancel"))) {
		muc_reply_error(st, "modify", "bad-request", "a submit or cancel data form is needed");
		return;
	}
	if (strcmp(type, "cancel") == 0) {
		muc_iq_result(st, NULL);
		return;
	}
	if (config_copy(&r->cfg, &c) < 0) {
		muc_reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	if ((bad = muc_config_parse(muc, x, &c))) {
		char why[160];

		snprintf(why, sizeof(why), "the value of %s is not acceptable", bad);
		muc_config_free(&c);
		muc_reply_error(st, "modify", "not-acceptable", why);	/* §10.1.3 */
		return;
	}
	privacy = c.whois_anyone == r->cfg.whois_anyone ? NULL : c.whois_anyone ? "172" : "173";
	/* §10.2.1: archiving turned on (170) or off (171). */
	logging = c.archive == r->cfg.archive ? NULL : c.archive ? "170" : "171";
	members_only = c.members_only && !r->cfg.members_only;
	muc_config_free(&r->cfg);
	r->cfg = c;
	if (r->locked) {
		r->locked = false;
		log_info("muc", "%s: unlocked by its owner", r->jid->full);
	}
	/* Persistent: stored now (with its affiliations); no longer: forgotten,
	 * and it ends like a temporary room when its last occupant leaves. */
	if (c.persistent)
		muc_store_room(muc, r);
	else if (r->stored)
		muc_store_forget(muc, r);
	muc_iq_result(st, NULL);
	if (!was_locked && xml_child(x, "field", NULL))
		announce_change(r, privacy, logging);
	if (members_only)
		remove_non_members(r);
}

