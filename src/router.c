/*
 * router.c - where a stanza goes (RFC 6120 §10, RFC 6121 §8).
 *
 * The decisions, in order: a remote domain (the remote handler); a service
 * (its module's handlers, or the one handler of a service no module serves,
 * which takes everything); the host itself (its IQ handlers); a
 * local account's bare JID (account IQ handlers, presence hooks, message
 * delivery by type and priority); a full JID (that session, or the rules for
 * a gone resource). Each rule names its section of RFC 6121 §8.5.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "jid.h"
#include "log.h"
#include "module.h"
#include "session.h"
#include "stanza.h"
#include "stanza_id.h"
#include "vhost.h"

static struct router_stats stats;

const struct router_stats *router_stats(void) { return &stats; }

static bool type_is(const struct xml_node *st, const char *t)
{
	const char *type = xml_attr(st, "type");

	return type && strcmp(type, t) == 0;
}

/* A message without a type is a normal one (RFC 6121 §5.2.2). */
static bool message_is(const struct xml_node *st, const char *t)
{
	const char *type = xml_attr(st, "type");

	return type ? strcmp(type, t) == 0 : strcmp(t, "normal") == 0;
}

static router_remote_fn remote;	/* router_set_remote */

void router_set_remote(router_remote_fn fn)
{
	remote = fn;
}

/* Sends an error back to the sender, unless the stanza is an error itself. */
static void bounce(struct xml_node *st, const char *condition, const char *text)
{
	struct xml_node *r;

	if (type_is(st, "error") || !xml_attr(st, "from"))
		return;
	if (stanza_kind(st) == STANZA_IQ && type_is(st, "result"))
		return;
	r = stanza_error_reply(st, NULL, condition, text);
	stats.errors++;
	if (r)
		router_route(r);
}

/* RFC 6121 §8.5.2.1.1: the available resources with the highest non-negative
 * priority, all of them on a tie; with all_of, every available resource of
 * non-negative priority (headline). */
static size_t pick_sessions(const struct jid *to, bool all_of, struct session **out)
{
	struct session *all[SESSION_RESOURCES_MAX];
	size_t n = sm_user_sessions(to, all, SESSION_RESOURCES_MAX), k = 0;
	int best = -1;

	if (n > SESSION_RESOURCES_MAX)
		n = SESSION_RESOURCES_MAX;
	for (size_t i = 0; i < n; i++)
		if (session_available(all[i]) && session_priority(all[i]) > best)
			best = session_priority(all[i]);
	if (best < 0)
		return 0;	/* only negative priorities: none gets bare-JID stanzas */
	for (size_t i = 0; i < n; i++)
		if (session_available(all[i]) && session_priority(all[i]) >= 0 &&
		    (all_of || session_priority(all[i]) == best))
			out[k++] = all[i];
	return k;
}

static void to_service(struct vhost *svc, struct xml_node *st, const struct jid *from,
		       const struct jid *to)
{
	if (svc->handler) {
		svc->handler(svc->handler_arg, st, from, to);
		return;
	}
	if (!to->local && !to->resource && stanza_kind(st) == STANZA_IQ) {
		if (type_is(st, "result") || type_is(st, "error"))
			return;
		if (iq_dispatch(svc, false, st, from, to) == 0 ||
		    disco_service_iq(svc, st, from, to) == 0)
			return;
		bounce(st, "service-unavailable", "the service does not handle this request");
		return;
	}
	if (svc->stanza && svc->stanza(svc->service, st, from, to) == HOOK_STOP)
		return;
	if (stanza_kind(st) != STANZA_PRESENCE)
		bounce(st, "service-unavailable", "the service does not handle this");
}

static void to_host(struct vhost *vh, struct xml_node *st, const struct jid *from,
		    const struct jid *to)
{
	if (stanza_kind(st) != STANZA_IQ)
		return;	/* messages and presence to the server itself: nothing yet */
	if (type_is(st, "result") || type_is(st, "error"))
		return;
	if (iq_dispatch(vh, false, st, from, to) < 0)
		bounce(st, "service-unavailable", "the server does not handle this request");
}

static void message_to_bare(struct xml_node *st, const struct jid *from,
			    const struct jid *to)
{
	struct session *picked[SESSION_RESOURCES_MAX];
	bool headline = message_is(st, "headline");
	size_t n;

	/* §8.5.2.1.1: an error to a bare JID is silently dropped, and groupchat to an account is never delivered (a room's
	 * messages go to occupants' full JIDs). */
	if (message_is(st, "error"))
		return;
	if (message_is(st, "groupchat")) {
		bounce(st, "service-unavailable", "groupchat messages go to a room, not an "
		       "account");
		return;
	}
	n = pick_sessions(to, headline, picked);
	if (n) {
		/* chat and normal may go to one or all of the best; we deliver to
		 * all of them, which is what clients expect with carbons absent. */
		for (size_t i = 0; i < n; i++)
			session_send(picked[i], st);
		return;
	}
	struct hook_args a = { .stanza = st, .from = from, .to = to };
	if (hooks_run(to->domain, HOOK_OFFLINE_MESSAGE, &a) == HOOK_STOP)
		return;
	/* §8.5.2.2: nobody to take it and no offline store; a headline is
	 * silently dropped. */
	if (headline)
		return;
	bounce(st, "service-unavailable", "the recipient is not available");
}

static void to_bare(struct vhost *vh, struct xml_node *st, const struct jid *from,
		    const struct jid *to)
{
	switch (stanza_kind(st)) {
	case STANZA_IQ:
		if (type_is(st, "result") || type_is(st, "error"))
			return;
		if (iq_dispatch(vh, true, st, from, to) < 0)
			bounce(st, "service-unavailable", "no handler for this request to an "
			       "account");
		return;
	case STANZA_MESSAGE:
		message_to_bare(st, from, to);
		return;
	case STANZA_PRESENCE: {
		struct hook_args a = { .stanza = st, .from = from, .to = to };

		if (hooks_run(to->domain, HOOK_PRESENCE_IN, &a) == HOOK_STOP)
			return;
		/* Without mod_presence: directed presence goes to every resource. */
		struct session *all[SESSION_RESOURCES_MAX];
		size_t n = sm_user_sessions(to, all, SESSION_RESOURCES_MAX);

		for (size_t i = 0; i < n && i < SESSION_RESOURCES_MAX; i++)
			if (session_available(all[i]))
				session_send(all[i], st);
		return;
	}
	default:
		return;
	}
}

static void to_full(struct vhost *vh, struct xml_node *st, const struct jid *from,
		    const struct jid *to)
{
	struct session *s = sm_find(to);
	struct jid *bare;

	if (s) {
		session_send(s, st);
		return;
	}
	switch (stanza_kind(st)) {
	case STANZA_IQ:
		/* §8.5.3.2.2 */
		bounce(st, "service-unavailable", "that resource is not online");
		return;
	case STANZA_MESSAGE:
		/* §8.5.3.2.1: chat goes to the bare JID; normal and groupchat are
		 * answered with an error, headline and error dropped. */
		if (message_is(st, "chat")) {
			bare = jid_bare(to);
			if (bare)
				message_to_bare(st, from, bare);
			jid_free(bare);
		} else if (message_is(st, "normal") || message_is(st, "groupchat")) {
			bounce(st, "service-unavailable", "that resource is not online");
		}
		return;
	case STANZA_PRESENCE:
		/* §8.5.3.2.3: presence to a gone resource is dropped, except
		 * subscription types, which are processed as for the bare JID. */
		if (type_is(st, "subscribe") || type_is(st, "subscribed") ||
		    type_is(st, "unsubscribe") || type_is(st, "unsubscribed")) {
			bare = jid_bare(to);
			if (bare)
				to_bare(vh, st, from, bare);
			jid_free(bare);
		}
		return;
	default:
		return;
	}
}

void router_route_shared(const struct xml_node *st, const struct jid *to)
{
	struct session *s = to->local && to->resource && vhost_find(to->domain)
		? sm_find(to) : NULL;
	struct xml_node *c;

	if (s) {
		stats.routed++;
		session_send(s, st);
		return;
	}
	if (!(c = xml_copy(st)))
		return;
	xml_attr_set(c, "to", to->full);
	router_route(c);
}

void router_route(struct xml_node *st)
{
	static unsigned depth;
	const char *froms = xml_attr(st, "from"), *tos = xml_attr(st, "to");
	struct jid *from = froms ? jid_new(froms, NULL) : NULL;
	struct jid *to = tos ? jid_new(tos, NULL) : NULL;
	struct delivery *outer = NULL;
	struct vhost *vh;
	struct timespec start;

	/* What routing produces on its own (an error back, say) is not part of
	 * the delivery of the stanza that caused it. */
	if (depth++)
		outer = delivery_enter(NULL);
	else
		clock_gettime(CLOCK_MONOTONIC, &start);
	stats.routed++;
	switch (stanza_kind(st)) {
	case STANZA_MESSAGE: stats.messages++; break;
	case STANZA_PRESENCE: stats.presences++; break;
	case STANZA_IQ: stats.iqs++; break;
	default: break;
	}
	if (!from || !to) {
		log_debug("router", "dropped a stanza without valid from/to");
		goto out;
	}
	if (stanza_kind(st) == STANZA_MESSAGE && stanza_id_duplicate(st, from, to))
		goto out;
	vh = vhost_find(to->domain);
	if (!vh) {
		if ((vh = service_find(to->domain)))
			to_service(vh, st, from, to);
		else if (remote) {
			remote(st, from, to);	/* it answers what it cannot send */
			st = NULL;
		} else {
			bounce(st, "remote-server-not-found", "this server does not "
			       "federate");
		}
		goto out;
	}
	/* The account's archive id; not on what another archive vouches for
	 * (a room's groupchat, XEP-0313 results). */
	if (to->local && stanza_kind(st) == STANZA_MESSAGE && !type_is(st, "error") &&
	    !type_is(st, "groupchat") && !xml_child(st, "result", "urn:xmpp:mam:2"))
		st = stanza_id_stamp(st, to);
	if (!to->local)
		to_host(vh, st, from, to);
	else if (!to->resource)
		to_bare(vh, st, from, to);
	else
		to_full(vh, st, from, to);
out:
	if (--depth)
		delivery_leave(outer);
	else
		histogram_add(&stats.latency, histogram_since(&start));
	jid_free(from);
	jid_free(to);
	xml_unref(st);
}
