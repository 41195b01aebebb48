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

void muc_owner_get(struct room *r, const struct xml_node *st)
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
		muc_add_status(x, "104");
		if (privacy)
			muc_add_status(x, privacy);
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
		muc_broadcast_presence(r, o, true, NULL, gone, NULL);
		muc_occupant_unlink(r, o);
		muc_occupant_free(o);
	}
}

/* §10.9: everyone out, told where to go, and the room gone. */
static void destroy(struct muc *muc, struct room *r, const struct xml_node *st,
		    const struct xml_node *d)
{
	const char *venue = xml_attr(d, "jid");
	char *reason = xml_child_text(d, "reason", NULL);

	muc_iq_result(st, NULL);
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
	muc_room_remove(muc, r);
}

void muc_owner_set(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct xml_node *query)
{
	const struct xml_node *x = xml_child(query, "x", NS_XDATA);
	const struct xml_node *d = xml_child(query, "destroy", NULL);
	const char *type = x ? xml_attr(x, "type") : NULL, *bad, *privacy;
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
	if ((bad = config_parse(muc, x, &c))) {
		char why[160];

		snprintf(why, sizeof(why), "the value of %s is not acceptable", bad);
		config_free(&c);
		muc_reply_error(st, "modify", "not-acceptable", why);	/* §10.1.3 */
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
	muc_iq_result(st, NULL);
	if (!was_locked && xml_child(x, "field", NULL))
		announce_change(r, privacy);
	if (members_only)
		remove_non_members(r);
}

