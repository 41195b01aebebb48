/*
 * mod_presence - RFC 6121 §3-4: subscriptions, presence broadcast and probes,
 * directed presence, and unavailable presence when a session ends.
 *
 * Outbound stanzas (from a local client) come through HOOK_USER_SEND, inbound
 * ones (to a local account's bare JID, from anyone) through HOOK_PRESENCE_IN;
 * between two local users the same stanza passes both, exactly as it would
 * across servers. Subscription states follow RFC 6121 Appendix A: a request
 * that changes nothing is not routed and makes no roster push.
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

#define DIRECTED_MAX 256	/* JIDs one session may send directed presence to */

/* Per session: where directed presence went, to undo it at logout (§4.6). */
struct directed {
	unsigned n;
	char *jids[DIRECTED_MAX];
};

static void directed_free(void *p)
{
	struct directed *d = p;

	for (unsigned i = 0; d && i < d->n; i++)
		free(d->jids[i]);
	free(d);
}

static struct directed *directed_of(struct module *m, struct session *s)
{
	struct directed *d = session_data(s, m);

	if (!d) {
		d = calloc(1, sizeof(*d));
		if (d)
			session_set_data(s, m, d, directed_free);
	}
	return d;
}

static void directed_add(struct module *m, struct session *s, const char *jid)
{
	struct directed *d = directed_of(m, s);

	if (!d)
		return;
	for (unsigned i = 0; i < d->n; i++)
		if (strcmp(d->jids[i], jid) == 0)
			return;
	if (d->n < DIRECTED_MAX && (d->jids[d->n] = strdup(jid)))
		d->n++;
}

static void directed_remove(struct module *m, struct session *s, const char *jid)
{
	struct directed *d = session_data(s, m);

	for (unsigned i = 0; d && i < d->n; i++) {
		if (strcmp(d->jids[i], jid) == 0) {
			free(d->jids[i]);
			d->jids[i] = d->jids[--d->n];
			return;
		}
	}
}

/* ---- small helpers ---- */

static struct xml_node *presence_new(const char *type, const char *from, const char *to)
{
	struct xml_node *p = xml_new("presence", NS_CLIENT);

	if (!p)
		return NULL;
	if (type)
		xml_attr_set(p, "type", type);
	xml_attr_set(p, "from", from);
	xml_attr_set(p, "to", to);
	return p;
}

static void route_presence(const char *type, const char *from, const char *to)
{
	struct xml_node *p = presence_new(type, from, to);

	if (p)
		router_route(p);
}

/* Sends a copy of st with new addresses through the router. */
static void route_copy(const struct xml_node *st, const char *from, const char *to)
{
	struct xml_node *c = xml_copy(st);

	if (!c)
		return;
	xml_attr_set(c, "from", from);
	xml_attr_set(c, "to", to);
	router_route(c);
}

static size_t available_sessions(const struct jid *bare, struct session **out)
{
	struct session *all[SESSION_RESOURCES_MAX];
	size_t n = sm_user_sessions(bare, all, SESSION_RESOURCES_MAX), k = 0;

	for (size_t i = 0; i < n && i < SESSION_RESOURCES_MAX; i++)
		if (session_available(all[i]))
			out[k++] = all[i];
	return k;
}

/* Delivers st to every available resource of bare (a local account). */
static void deliver_available(const struct jid *bare, const struct xml_node *st)
{
	struct session *av[SESSION_RESOURCES_MAX];
	size_t n = available_sessions(bare, av);

	for (size_t i = 0; i < n; i++)
		session_send(av[i], st);
}

/* ---- outbound: from a local client ---- */

struct out_req {
	struct module *m;
	struct jid *user;		/* the sender's full JID */
	struct jid *contact;		/* bare */
	struct xml_node *st;
	enum { OUT_SUBSCRIBE, OUT_SUBSCRIBED, OUT_UNSUBSCRIBE, OUT_UNSUBSCRIBED,
	       OUT_BROADCAST } kind;
	bool initial;
};

static void out_req_free(struct out_req *q)
{
	jid_free(q->user);
	jid_free(q->contact);
	xml_unref(q->st);
	free(q);
}

/* Sends the current presence of each of the user's available resources to to. */
static void send_current_presence(const struct jid *user_bare, const char *to)
{
	struct session *av[SESSION_RESOURCES_MAX];
	size_t n = available_sessions(user_bare, av);

	for (size_t i = 0; i < n; i++)
		if (session_presence(av[i]))
			route_copy(session_presence(av[i]), session_jid(av[i])->full, to);
}

static void send_unavailable_from_all(const struct jid *user_bare, const char *to)
{
	struct session *av[SESSION_RESOURCES_MAX];
	size_t n = available_sessions(user_bare, av);

	for (size_t i = 0; i < n; i++)
		route_presence("unavailable", session_jid(av[i])->full, to);
}

static void subscription_out(struct out_req *q, struct roster *r)
{
	struct roster_item *it = roster_touch(r, q->contact->full);
	char bare[2100];
	bool changed = false, route = true;
	struct jid *ubare = jid_bare(q->user);

	if (!it || !ubare) {
		jid_free(ubare);
		return;
	}
	snprintf(bare, sizeof(bare), "%s", ubare->full);
	switch (q->kind) {
	case OUT_SUBSCRIBE:
		/* Appendix A.2.1: None/From (not pending) -> Pending Out. */
		if (!roster_sub_to(it->sub) && !it->ask_out) {
			it->ask_out = true;
			changed = true;
		}
		if (!it->in_roster) {
			it->in_roster = true;
			changed = true;
		}
		break;
	case OUT_SUBSCRIBED:
		if (it->pending_in) {
			it->sub = it->sub == ROSTER_TO ? ROSTER_BOTH : ROSTER_FROM;
			free(it->pending_in);
			it->pending_in = NULL;
			it->in_roster = true;
			changed = true;
		} else if (!roster_sub_from(it->sub) && !it->approved) {
			/* §3.4: pre-approval; nothing is sent to the contact now. */
			it->approved = true;
			it->in_roster = true;
			changed = true;
			route = false;
		} else {
			route = false;	/* already subscribed: nothing to say */
		}
		break;
	case OUT_UNSUBSCRIBE:
		if (roster_sub_to(it->sub) || it->ask_out) {
			it->sub = it->sub == ROSTER_BOTH ? ROSTER_FROM : it->sub == ROSTER_TO
				? ROSTER_NONE : it->sub;
			it->ask_out = false;
			changed = true;
		} else {
			route = false;
		}
		break;
	case OUT_UNSUBSCRIBED:
		if (roster_sub_from(it->sub) || it->pending_in || it->approved) {
			bool had_from = roster_sub_from(it->sub) || it->pending_in;

			it->sub = it->sub == ROSTER_BOTH ? ROSTER_TO : it->sub == ROSTER_FROM
				? ROSTER_NONE : it->sub;
			free(it->pending_in);
			it->pending_in = NULL;
			it->approved = false;
			changed = true;
			route = had_from;
		} else {
			route = false;
		}
		break;
	default:
		break;
	}
	if (changed) {
		roster_save(r, it, it->in_roster, NULL, NULL);
		if (it->in_roster)
			roster_push(r, it, NULL, false);
	}
	if (route) {
		/* §3.1.2: outbound subscription stanzas carry the bare JID. */
		route_copy(q->st, bare, q->contact->full);
		if (q->kind == OUT_SUBSCRIBED)
			send_current_presence(ubare, q->contact->full);
		else if (q->kind == OUT_UNSUBSCRIBED)
			send_unavailable_from_all(ubare, q->contact->full);
	}
	jid_free(ubare);
}

/* §4.2 and §4.4: a presence without 'to' goes to every contact with a
 * subscription from us, and to the user's other available resources. */
static void broadcast(struct out_req *q, struct roster *r)
{
	struct session *s = sm_find(q->user);
	struct jid *ubare = jid_bare(q->user);
	const char *type = xml_attr(q->st, "type");
	bool unavailable = type && strcmp(type, "unavailable") == 0;

	if (!ubare)
		return;
	for (struct roster_item *it = r ? roster_items(r) : NULL; it; it = it->next) {
		if (roster_sub_from(it->sub))
			route_copy(q->st, q->user->full, it->contact);
		/* §4.2.2: the initial presence probes those we are subscribed to. */
		if (q->initial && roster_sub_to(it->sub))
			route_presence("probe", ubare->full, it->contact);
	}
	/* §4.2.2, §4.4.2: the user's available resources see it, the one that
	 * sent it included (a user is subscribed to itself); a new resource sees
	 * the others'. */
	struct session *av[SESSION_RESOURCES_MAX];
	size_t n = available_sessions(ubare, av);
	for (size_t i = 0; i < n; i++) {
		struct xml_node *c = xml_copy(q->st);

		if (c) {
			xml_attr_set(c, "to", session_jid(av[i])->full);
			session_send(av[i], c);
			xml_unref(c);
		}
		if (av[i] == s)
			continue;
		if (q->initial && s && session_presence(av[i])) {
			c = xml_copy(session_presence(av[i]));
			if (c) {
				xml_attr_set(c, "from", session_jid(av[i])->full);
				xml_attr_set(c, "to", q->user->full);
				session_send(s, c);
				xml_unref(c);
			}
		}
	}
	/* §3.1.3: requests that waited while the user was away are shown now. */
	for (struct roster_item *it = r && q->initial ? roster_items(r) : NULL; it && s;
	     it = it->next) {
		char err[64];
		struct xml_node *p;

		if (!it->pending_in)
			continue;
		p = xml_parse(it->pending_in, strlen(it->pending_in), err, sizeof(err));
		if (p) {
			xml_attr_set(p, "to", ubare->full);
			session_send(s, p);
			xml_unref(p);
		}
	}
	if (unavailable && s) {
		struct directed *d = session_data(s, q->m);

		for (unsigned i = 0; d && i < d->n; i++)
			route_copy(q->st, q->user->full, d->jids[i]);
		session_set_data(s, q->m, NULL, NULL);	/* frees the list */
	}
	jid_free(ubare);
}

static void on_out_roster(void *arg, struct roster *r, bool exists)
{
	struct out_req *q = arg;

	if (q->kind == OUT_BROADCAST)
		broadcast(q, r);
	else if (r)
		subscription_out(q, r);
	roster_unref(r);
	out_req_free(q);
}

static int on_user_send(struct module *m, struct hook_args *a)
{
	struct xml_node *st = a->stanza;
	const char *type = xml_attr(st, "type");
	struct out_req *q;

	if (stanza_kind(st) != STANZA_PRESENCE || !a->sess)
		return HOOK_PASS;
	q = calloc(1, sizeof(*q));
	if (!q)
		return HOOK_STOP;
	q->m = m;
	if (!a->to) {
		/* Broadcast presence: only available or unavailable (§4.7.1). */
		if (type && strcmp(type, "unavailable") != 0) {
			free(q);
			return HOOK_STOP;
		}
		q->kind = OUT_BROADCAST;
		q->initial = !type && !session_available(a->sess);
		session_set_presence(a->sess, xml_ref(st));
	} else if (!type || strcmp(type, "unavailable") == 0) {
		/* Directed presence (§4.6): route it and remember the target. */
		if (type)
			directed_remove(m, a->sess, a->to->full);
		else
			directed_add(m, a->sess, a->to->full);
		free(q);
		return HOOK_PASS;
	} else if (!strcmp(type, "subscribe") || !strcmp(type, "subscribed") ||
		   !strcmp(type, "unsubscribe") || !strcmp(type, "unsubscribed")) {
		q->kind = !strcmp(type, "subscribe") ? OUT_SUBSCRIBE : !strcmp(type, "subscribed")
			? OUT_SUBSCRIBED : !strcmp(type, "unsubscribe") ? OUT_UNSUBSCRIBE
			: OUT_UNSUBSCRIBED;
		q->contact = jid_bare(a->to);
		if (!q->contact) {
			free(q);
			return HOOK_STOP;
		}
	} else {
		free(q);	/* probes and errors from clients are not routed */
		return HOOK_STOP;
	}
	q->user = jid_copy(a->from);
	q->st = xml_ref(st);
	if (!q->user || roster_load(a->from->domain, a->from->local, on_out_roster, q) < 0)
		out_req_free(q);
	return HOOK_STOP;
}

/* ---- inbound: to a local account's bare JID ---- */

struct in_req {
	struct jid *to;			/* the local account, bare */
	struct jid *from;		/* the sender as given (full or bare) */
	struct jid *from_bare;
	struct xml_node *st;
};

static void in_req_free(struct in_req *q)
{
	jid_free(q->to);
	jid_free(q->from);
	jid_free(q->from_bare);
	xml_unref(q->st);
	free(q);
}

static void answer_probe(struct in_req *q, struct roster *r)
{
	struct roster_item *it = roster_find(r, q->from_bare->full);
	struct session *av[SESSION_RESOURCES_MAX];
	size_t n;

	if (!it || !roster_sub_from(it->sub)) {
		/* §4.3.2: no subscription: say so rather than reveal anything. */
		route_presence("unsubscribed", q->to->full, q->from->full);
		return;
	}
	n = available_sessions(q->to, av);
	for (size_t i = 0; i < n; i++)
		if (session_presence(av[i]))
			route_copy(session_presence(av[i]), session_jid(av[i])->full,
				   q->from->full);
	if (n == 0)
		route_presence("unavailable", q->to->full, q->from->full);
}

static void subscription_in(struct in_req *q, struct roster *r, const char *type)
{
	struct roster_item *it = roster_find(r, q->from_bare->full);
	bool changed = false, deliver = false;

	if (!strcmp(type, "subscribe")) {
		if (it && roster_sub_from(it->sub)) {
			/* §3.1.3: already subscribed: answer for the user. */
			route_presence("subscribed", q->to->full, q->from_bare->full);
			return;
		}
		it = it ? it : roster_touch(r, q->from_bare->full);
		if (!it)
			return;
		if (it->approved) {
			it->sub = it->sub == ROSTER_TO ? ROSTER_BOTH : ROSTER_FROM;
			it->approved = false;
			roster_save(r, it, true, NULL, NULL);
			roster_push(r, it, NULL, false);
			route_presence("subscribed", q->to->full, q->from_bare->full);
			send_current_presence(q->to, q->from_bare->full);
			return;
		}
		if (!it->pending_in) {
			char *text = xml_to_string(q->st, NULL);

			it->pending_in = text;
			changed = true;
		}
		deliver = true;	/* shown again, even if already pending */
	} else if (!strcmp(type, "subscribed")) {
		if (it && it->ask_out) {
			it->sub = it->sub == ROSTER_FROM ? ROSTER_BOTH : ROSTER_TO;
			it->ask_out = false;
			changed = deliver = true;
		}
	} else if (!strcmp(type, "unsubscribe")) {
		if (it && (roster_sub_from(it->sub) || it->pending_in)) {
			it->sub = it->sub == ROSTER_BOTH ? ROSTER_TO : it->sub == ROSTER_FROM
				? ROSTER_NONE : it->sub;
			free(it->pending_in);
			it->pending_in = NULL;
			changed = deliver = true;
			send_unavailable_from_all(q->to, q->from_bare->full);
		}
	} else if (!strcmp(type, "unsubscribed")) {
		if (it && (roster_sub_to(it->sub) || it->ask_out)) {
			it->sub = it->sub == ROSTER_BOTH ? ROSTER_FROM : it->sub == ROSTER_TO
				? ROSTER_NONE : it->sub;
			it->ask_out = false;
			changed = deliver = true;
		}
	}
	if (changed) {
		roster_save(r, it, it->in_roster, NULL, NULL);
		if (it->in_roster && strcmp(type, "subscribe") != 0)
			roster_push(r, it, NULL, false);
	}
	if (deliver) {
		struct xml_node *c = xml_copy(q->st);

		if (c) {
			xml_attr_set(c, "from", q->from_bare->full);
			deliver_available(q->to, c);
			xml_unref(c);
		}
	}
}

static void on_in_roster(void *arg, struct roster *r, bool exists)
{
	struct in_req *q = arg;
	const char *type = xml_attr(q->st, "type");

	if (!r) {
		/* No such account: subscription stanzas are dropped (§3.1.3). */
		in_req_free(q);
		return;
	}
	if (type && !strcmp(type, "probe"))
		answer_probe(q, r);
	else if (type)
		subscription_in(q, r, type);
	roster_unref(r);
	in_req_free(q);
}

static int on_presence_in(struct module *m, struct hook_args *a)
{
	const char *type = xml_attr(a->stanza, "type");
	struct in_req *q;

	if (!type || !strcmp(type, "unavailable") || !strcmp(type, "error")) {
		/* §4.4.3: presence to a bare JID goes to every available resource. */
		deliver_available(a->to, a->stanza);
		return HOOK_STOP;
	}
	if (strcmp(type, "probe") && strcmp(type, "subscribe") && strcmp(type, "subscribed") &&
	    strcmp(type, "unsubscribe") && strcmp(type, "unsubscribed"))
		return HOOK_STOP;	/* an unknown type: dropped */
	q = calloc(1, sizeof(*q));
	if (!q)
		return HOOK_STOP;
	q->to = jid_bare(a->to);
	q->from = jid_copy(a->from);
	q->from_bare = jid_bare(a->from);
	q->st = xml_ref(a->stanza);
	if (!q->to || !q->from || !q->from_bare ||
	    roster_load(a->to->domain, a->to->local, on_in_roster, q) < 0)
		in_req_free(q);
	return HOOK_STOP;
}

/* ---- the end of a session, however it ends ---- */

static int on_closed(struct module *m, struct hook_args *a)
{
	struct out_req *q;
	const struct xml_node *last;
	struct xml_node *st;

	if (!session_available(a->sess)) {
		/* Never broadcast, but it may have sent directed presence (a room
		 * joined before initial presence): §4.6.3, those learn it is gone. */
		struct directed *d = session_data(a->sess, m);

		if (d && d->n && (st = presence_new("unavailable", session_jid(a->sess)->full,
						    NULL))) {
			for (unsigned i = 0; i < d->n; i++)
				route_copy(st, session_jid(a->sess)->full, d->jids[i]);
			xml_unref(st);
		}
		return HOOK_PASS;
	}
	/* §4.5.2: unavailable, with the status the session last had. */
	st = presence_new("unavailable", session_jid(a->sess)->full, NULL);
	last = session_presence(a->sess);
	if (st && last) {
		char *status = xml_child_text(last, "status", NULL);

		if (status) {
			struct xml_node *sn = xml_add_child(st, "status", NULL);

			if (sn)
				xml_add_text(sn, status, strlen(status));
			free(status);
		}
	}
	q = st ? calloc(1, sizeof(*q)) : NULL;
	if (!q) {
		xml_unref(st);
		return HOOK_PASS;
	}
	q->m = m;
	q->kind = OUT_BROADCAST;
	q->user = jid_copy(session_jid(a->sess));
	q->st = st;
	/* The session is going away now: send to directed targets from here. */
	struct directed *d = session_data(a->sess, m);
	for (unsigned i = 0; d && i < d->n; i++)
		route_copy(st, q->user->full, d->jids[i]);
	session_set_presence(a->sess, xml_ref(st));
	if (!q->user || roster_load(q->user->domain, q->user->local, on_out_roster, q) < 0)
		out_req_free(q);
	return HOOK_PASS;
}

static int load(struct module *m)
{
	module_hook(m, HOOK_USER_SEND, 50, on_user_send);
	module_hook(m, HOOK_PRESENCE_IN, 50, on_presence_in);
	module_hook(m, HOOK_SESSION_CLOSED, 50, on_closed);
	return 0;
}

static const char *const depends[] = { "roster", NULL };

PARLEY_MODULE(presence,
	.description = "RFC 6121 presence: subscriptions, broadcast, probes",
	.depends = depends,
	.load = load);
