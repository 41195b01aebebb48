/*
 * router.h - where a stanza goes (RFC 6120 §10, RFC 6121 §8).
 *
 * router_route() takes a stanza whose from and to are set (and trusted: the c2s
 * layer stamps from) and delivers it: to a local session, to the host's handlers,
 * or answers an error. Remote domains go to s2s once it exists; until then they
 * get remote-server-not-found.
 */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include "xml.h"

#define ROUTER_ID_LEN 22

/* A new unique, time-ordered id (XEP-0359 stanza-id). */
void router_new_id(char out[ROUTER_ID_LEN + 1]);

/* Consumes the caller's reference to stanza. Messages to a local account get
 * a XEP-0359 <stanza-id/> (one a sender forged with our 'by' is removed). */
void router_route(struct xml_node *stanza);

/* Messages routed, and IQs answered with an error because no one handled them. */
struct router_stats {
	unsigned long long routed, errors, duplicates;
};
const struct router_stats *router_stats(void);
/* Frees the router's memory (at exit). */
void router_free(void);

#endif
