/*
 * mod_roster - RFC 6121 §2: roster get, set and remove, roster pushes, and
 * roster versioning (XEP-0237).
 *
 * The roster itself (storage, cache, subscription states) is the core's
 * (roster.h), because mod_presence works on the same one. This module keeps
 * a user's roster loaded while the user has a session, and speaks the IQ
 * protocol.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "module.h"
#include "roster.h"
#include "router.h"
#include "session.h"
#include "stanza.h"

struct options {
	long long max_items, max_name_length, max_group_length;
};

#define AT(f) MODULE_OPTION_AT(struct options, f)
static const struct module_option options[] = {
	{ "max-items", OPT_INT, "1000", 1, 100000, AT(max_items), "items one roster may hold" },
	{ "max-name-length", OPT_INT, "256", 1, 1023, AT(max_name_length),
	  "bytes of an item's name" },
	{ "max-group-length", OPT_INT, "256", 1, 1023, AT(max_group_length),
	  "bytes of a group name" },
	{ NULL },
};

static const struct options *opts(const struct module *m) { return module_options(m); }

/* ---- keeping the roster of online users loaded ---- */

static void unref_roster(void *r)
{
	roster_unref(r);
}

struct bind_req {
	struct module *m;
	struct jid *jid;
};

static void on_bound_roster(void *arg, struct roster *r, bool exists)
{
	struct bind_req *b = arg;
	struct session *s = sm_find(b->jid);

	if (r && s && !session_data(s, b->m))
		session_set_data(s, b->m, r, unref_roster);
	else if (r)
		roster_unref(r);
	jid_free(b->jid);
	free(b);
}

static int on_bound(struct module *m, struct hook_args *a)
{
	struct bind_req *b = calloc(1, sizeof(*b));
	const struct jid *j = session_jid(a->sess);

	if (!b)
		return HOOK_PASS;
	b->m = m;
	b->jid = jid_copy(j);
	if (!b->jid || roster_load(j->domain, j->local, on_bound_roster, b) < 0) {
		jid_free(b->jid);
		free(b);
	}
	return HOOK_PASS;
}

static int on_features(struct module *m, struct hook_args *a)
{
	if (!a->preauth)
		xml_add_child(a->result, "ver", "urn:xmpp:features:rosterver");
	return HOOK_PASS;
}

/* ---- get ---- */

static void on_get_roster(void *arg, struct roster *r, bool exists)
{
	struct iq *iq = arg;
	const char *ver = xml_attr(iq->payload, "ver");
	char cur[24];
	struct xml_node *q;

	if (!r) {
		iq_error(iq, "internal-server-error", "the roster is not available");
		return;
	}
	snprintf(cur, sizeof(cur), "%llu", (unsigned long long)roster_version(r));
	/* XEP-0237: the client's copy is current: an empty result, pushes follow. */
	if (ver && strcmp(ver, cur) == 0) {
		roster_unref(r);
		iq_reply(iq, NULL);
		return;
	}
	q = xml_new("query", NS_ROSTER);
	if (!q) {
		roster_unref(r);
		iq_error(iq, "internal-server-error", NULL);
		return;
	}
	xml_attr_set(q, "ver", cur);
	for (struct roster_item *it = roster_items(r); it; it = it->next) {
		struct xml_node *x;

		if (!it->in_roster)
			continue;
		x = roster_item_xml(it, NULL, false);
		if (x)
			xml_append(q, x);
	}
	roster_unref(r);
	iq_reply(iq, q);
}

static int own_roster_only(struct iq *iq)
{
	if (!jid_bare_eq(iq->from, iq->to)) {
		iq_error(iq, "forbidden", "a roster is only for its owner");
		return -1;
	}
	return 0;
}

static int on_get(struct iq *iq)
{
	struct session *s;

	if (own_roster_only(iq) < 0)
		return 0;
	s = sm_find(iq->from);
	if (s)
		session_set_interested(s);
	if (roster_load(iq->to->domain, iq->to->local, on_get_roster, iq) < 0)
		return -1;
	return 0;
}

/* ---- set ---- */

struct set_req {
	struct iq *iq;
	struct jid *contact;
	char *name;
	char *groups[ROSTER_GROUPS_MAX];
	unsigned ngroups;
	bool remove;
};

static void set_req_free(struct set_req *q)
{
	jid_free(q->contact);
	free(q->name);
	for (unsigned i = 0; i < q->ngroups; i++)
		free(q->groups[i]);
	free(q);
}

/* §2.5.2: removing an item cancels the subscriptions both ways. */
static void cancel_subscriptions(const struct roster *r, const struct roster_item *it)
{
	char from[2100];

	snprintf(from, sizeof(from), "%s@%s", roster_user(r), roster_host(r));
	for (int i = 0; i < 2; i++) {
		bool send = i == 0 ? (roster_sub_to(it->sub) || it->ask_out)
			: (roster_sub_from(it->sub) || it->pending_in);
		struct xml_node *p;

		if (!send || !(p = xml_new("presence", NS_CLIENT)))
			continue;
		xml_attr_set(p, "type", i == 0 ? "unsubscribe" : "unsubscribed");
		xml_attr_set(p, "from", from);
		xml_attr_set(p, "to", it->contact);
		router_route(p);
	}
}

static void on_set_roster(void *arg, struct roster *r, bool exists)
{
	struct set_req *q = arg;
	struct iq *iq = q->iq;
	struct roster_item *it;

	if (!r) {
		iq_error(iq, "internal-server-error", "the roster is not available");
		set_req_free(q);
		return;
	}
	it = roster_find(r, q->contact->full);
	if (q->remove) {
		if (!it || !it->in_roster) {
			iq_error(iq, "item-not-found", "no such item in the roster");
			goto out;
		}
		cancel_subscriptions(r, it);
		roster_delete(r, q->contact->full, NULL, NULL);
		iq_reply(iq, NULL);
		roster_push(r, NULL, q->contact->full, true);
		goto out;
	}
	if ((!it || !it->in_roster) &&
	    roster_count(r) >= (unsigned)opts(iq->m)->max_items) {
		iq_error(iq, "not-allowed", "the roster is full");
		goto out;
	}
	it = roster_touch(r, q->contact->full);
	if (!it) {
		iq_error(iq, "internal-server-error", NULL);
		goto out;
	}
	it->in_roster = true;
	free(it->name);
	it->name = q->name;
	q->name = NULL;
	for (unsigned i = 0; i < it->ngroups; i++)
		free(it->groups[i]);
	memcpy(it->groups, q->groups, sizeof(q->groups));
	it->ngroups = q->ngroups;
	q->ngroups = 0;
	if (roster_save(r, it, true, NULL, NULL) < 0) {
		iq_error(iq, "internal-server-error", NULL);
		goto out;
	}
	iq_reply(iq, NULL);
	roster_push(r, it, NULL, false);
out:
	roster_unref(r);
	set_req_free(q);
}

static int on_set(struct iq *iq)
{
	struct xml_node *item = xml_child(iq->payload, "item", NS_ROSTER), *g;
	const char *jid = item ? xml_attr(item, "jid") : NULL;
	const char *sub = item ? xml_attr(item, "subscription") : NULL;
	const char *name = item ? xml_attr(item, "name") : NULL;
	struct set_req *q;
	const char *err = NULL;

	if (own_roster_only(iq) < 0)
		return 0;
	/* §2.3.3 */
	if (!item || xml_next(item, NULL, NULL) || !jid)
		return iq_error(iq, "bad-request", "a roster set holds exactly one item "
				"with a jid");
	if (name && (long long)strlen(name) > opts(iq->m)->max_name_length)
		return iq_error(iq, "not-acceptable", "the name is too long");
	q = calloc(1, sizeof(*q));
	if (!q)
		return -1;
	q->iq = iq;
	q->contact = jid_new(jid, &err);
	if (!q->contact || q->contact->resource) {
		set_req_free(q);
		return iq_error(iq, "jid-malformed", err ? err : "a roster item is a bare JID");
	}
	q->remove = sub && strcmp(sub, "remove") == 0;
	if (name && *name)
		q->name = strdup(name);
	xml_foreach(g, item, "group", NS_ROSTER) {
		char *text = xml_text(g);
		bool dup = false;

		if (!text)
			continue;
		if (!*text || (long long)strlen(text) > opts(iq->m)->max_group_length) {
			free(text);
			set_req_free(q);
			return iq_error(iq, "not-acceptable", "a group name is empty or too long");
		}
		for (unsigned i = 0; i < q->ngroups; i++)
			dup |= strcmp(q->groups[i], text) == 0;
		if (dup || q->ngroups >= ROSTER_GROUPS_MAX) {
			free(text);
			set_req_free(q);
			return iq_error(iq, dup ? "bad-request" : "not-acceptable",
					dup ? "a group appears twice" : "too many groups");
		}
		q->groups[q->ngroups++] = text;
	}
	if (roster_load(iq->to->domain, iq->to->local, on_set_roster, q) < 0) {
		set_req_free(q);
		return -1;
	}
	return 0;
}

static int load(struct module *m)
{
	module_account_feature(m, NS_ROSTER);
	module_account_iq(m, IQ_GET, NS_ROSTER, on_get);
	module_account_iq(m, IQ_SET, NS_ROSTER, on_set);
	module_hook(m, HOOK_SESSION_BOUND, 100, on_bound);
	module_hook(m, HOOK_STREAM_FEATURES, 0, on_features);
	return 0;
}

PARLEY_MODULE(roster,
	.description = "RFC 6121 rosters with versioning (XEP-0237)",
	.options = options,
	.options_size = sizeof(struct options),
	.load = load);
