/*
 * session.h - the session manager: who is online, with which resources.
 *
 * A session is a bound resource of a local user (RFC 6120 §7). The manager keeps
 * them by bare JID, with each one's priority and availability (RFC 6121 §4), so
 * the router can pick the resources a stanza goes to. Sessions are owned by their
 * stream (stream.h: any transport); modules only look them up and send to them.
 */
#ifndef PARLEY_SESSION_H
#define PARLEY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "jid.h"
#include "xml.h"

struct session;
struct stream;

/* Resources one account may bind at once: a list of an account's sessions
 * (struct session *list[SESSION_RESOURCES_MAX]) always holds them all. */
#define SESSION_RESOURCES_MAX 64

const struct jid *session_jid(const struct session *s);
/* The priority of the last available presence (RFC 6121 §4.7.2.3), 0 before. */
int session_priority(const struct session *s);
/* Has sent available presence (and no unavailable since). */
bool session_available(const struct session *s);
/* The last presence broadcast by the session (NULL before initial presence). */
const struct xml_node *session_presence(const struct session *s);
time_t session_started(const struct session *s);
const char *session_address(const struct session *s);	/* the peer's IP */
bool session_tls(const struct session *s);
/* "tcp", "websocket", "bosh"; "-" while detached (XEP-0198). */
const char *session_transport(const struct session *s);

/* RFC 6121 §2.2: a resource that asked for the roster gets roster pushes. */
bool session_interested(const struct session *s);
void session_set_interested(struct session *s);

/* Per-session state a module keeps (directed presence, roster interest...):
 * one pointer per module, freed with free_fn when the session ends. */
struct module;
void *session_data(const struct session *s, const struct module *m);
void session_set_data(struct session *s, const struct module *m, void *data,
		      void (*free_fn)(void *));

/* Delivers the stanza to the session (not consumed): HOOK_USER_RECV, then the
 * stream. */
void session_send(struct session *s, const struct xml_node *stanza);
/* Writes an element to the session's stream as it is, without hooks (nothing
 * while detached): for modules that own the output, such as XEP-0198's. */
void session_write(struct session *s, const struct xml_node *n);
/* Ends the session's stream with a stream error (condition, text); a detached
 * session just ends. */
void session_close(struct session *s, const char *condition, const char *text);
/* The same with an application-specific condition element (copied). */
void session_close_extra(struct session *s, const char *condition, const char *text,
			 const struct xml_node *extra);

/* ---- stream management (XEP-0198): see mod_stream_mgmt ---- */

/* Stanzas received from the client since the session began, mod 2^32. */
uint32_t session_received(const struct session *s);
/* How many of those are settled (mod 2^32): a message is settled once each
 * recipient session that keeps it until an ack has its ack, and each store has
 * committed it; every other stanza when it has been routed. HOOK_SESSION_SETTLED
 * runs when this grows after the fact. */
uint32_t session_settled(const struct session *s);
/* The connection is gone but the session stays (HOOK_SESSION_LOST kept it). */
bool session_detached(const struct session *s);
/* Moves a session onto another authenticated stream (resumption); a stream it
 * still has is closed with <conflict/>. */
int session_resume(struct session *s, struct stream *stream);

/* Exact resource, or NULL. */
struct session *sm_find(const struct jid *full);
/* The sessions of a bare JID, up to max, into out; returns how many there are. */
size_t sm_user_sessions(const struct jid *bare, struct session **out, size_t max);
size_t sm_count(void);

/* ---- for the core (transports, ctl) ---- */

/* Binds a resource for a stream; a session with the same full JID is closed
 * with <conflict/> first. Returns NULL on memory failure or too many resources. */
struct session *sm_bind(struct stream *stream, const struct jid *full);
/* Unbinds (the stream is going away); runs HOOK_SESSION_CLOSED. */
void sm_unbind(struct session *s, const char *reason);
/* Unbinds every session left (detached ones at shutdown). */
void sm_unbind_all(const char *reason);
/* The stream lost its connection and a module keeps the session for later. */
void session_detach(struct session *s);
/* c2s: a stanza from the client; track: a message, whose delivery (returned, to
 * be made current while it is routed) may be held up. End it after routing. */
struct delivery;
struct delivery *session_inbound_begin(struct session *s, bool track);
void session_inbound_end(struct session *s, struct delivery *d);
/* As if n more stanzas came and settled (nothing unsettled): tests of the 2^32
 * wrap use it. */
void session_inbound_skip(struct session *s, uint32_t n);
void session_set_presence(struct session *s, struct xml_node *presence);
/* Calls fn for every session, or those of host (NULL: all); fn may not unbind. */
void sm_foreach(const char *host, void (*fn)(struct session *s, void *arg), void *arg);

#endif
