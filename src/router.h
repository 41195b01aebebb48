/*
 * router.h - where a stanza goes (RFC 6120 §10, RFC 6121 §8).
 *
 * router_route() takes a stanza whose from and to are set (and trusted: the
 * transport stamps from) and delivers it: to a local session, to the host's
 * handlers, to the service that serves the domain (conference.HOST), or answers
 * an error. A domain that is neither goes to the remote-domain handler a
 * transport installed (s2s does, at start), which answers what it cannot
 * deliver; without one the router answers remote-server-not-found.
 */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include "histogram.h"
#include "xml.h"

struct jid;

/* Consumes the caller's reference to stanza. Messages to a local account get
 * a XEP-0359 <stanza-id/> (one a sender forged with our 'by' is removed). */
void router_route(struct xml_node *stanza);
/* A stanza many get (a room's broadcast), to one of them: st (not consumed)
 * has no 'to'. A local session gets st itself, shared: its stream writes the
 * bytes serialized once (xml_bytes) with the session's JID as 'to'. Anyone
 * else gets a copy with 'to' set, routed as router_route does. */
void router_route_shared(const struct xml_node *st, const struct jid *to);

/* Who takes stanzas for domains not served here: fn consumes st (from and to
 * are the router's, valid for the call). NULL removes it. */
typedef void (*router_remote_fn)(struct xml_node *st, const struct jid *from,
				 const struct jid *to);
void router_set_remote(router_remote_fn fn);

/* Stanzas routed, and those answered with an error. */
struct router_stats {
	unsigned long long routed, errors;
	unsigned long long messages, presences, iqs;	/* routed, by kind */
	struct histogram latency;	/* of router_route, outermost calls */
};
const struct router_stats *router_stats(void);

#endif
