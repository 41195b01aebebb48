/*
 * stanza.h - helpers for the three XMPP stanzas (RFC 6120 §8) on top of xml trees.
 *
 * A stanza is an xml_node whose name is message, presence or iq in jabber:client
 * (or jabber:server). Errors are built as the RFC says: the original stanza's
 * addresses swapped, type="error", the original children kept, and an <error/>
 * with the condition and a human-readable <text/>.
 */
#ifndef PARLEY_STANZA_H
#define PARLEY_STANZA_H

#include <stdbool.h>

#include "xml.h"

#define NS_CLIENT   "jabber:client"
#define NS_SERVER   "jabber:server"
#define NS_STREAMS  "http://etherx.jabber.org/streams"
#define NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZAS  "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_TLS      "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL     "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND     "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION  "urn:ietf:params:xml:ns:xmpp-session"
#define NS_REGISTER "jabber:iq:register"
#define NS_ROSTER   "jabber:iq:roster"
#define NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"

enum stanza_kind { STANZA_OTHER, STANZA_MESSAGE, STANZA_PRESENCE, STANZA_IQ };

enum stanza_kind stanza_kind(const struct xml_node *st);

/*
 * A new stanza: the error reply to st (which is not changed). type is the RFC
 * 6120 §8.3.2 error type ("cancel", "modify", "auth", "wait", "continue"),
 * condition a §8.3.3 condition name, text NULL or a sentence for humans.
 */
struct xml_node *stanza_error_reply(const struct xml_node *st, const char *type,
				    const char *condition, const char *text);
/* An <iq type='result'/> answering iq, with payload (owned, may be NULL). */
struct xml_node *stanza_iq_result(const struct xml_node *iq, struct xml_node *payload);
/* The <priority/> of a presence (RFC 6121 §4.7.2.3): -128..127, 0 when absent
 * or out of range. */
int stanza_presence_priority(const struct xml_node *presence);

/* A generic sentence for a condition, used when the caller gives no text. */
const char *stanza_default_text(const char *condition);

/* The default error type for each defined condition. */
const char *stanza_error_type(const char *condition);

/* <stream:error><condition/><text>...</text></stream:error> as bytes. */
struct xml_node *stanza_stream_error(const char *condition, const char *text);

#endif
