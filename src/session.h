/*
 * session.h - the session manager: who is online, with which resources.
 *
 * A session is a bound resource of a local user (RFC 6120 §7). The manager keeps
 * them by bare JID, with each one's priority and availability (RFC 6121 §4), so
 * the router can pick the resources a stanza goes to. Sessions are owned by their
 * stream (c2s); modules only look them up and send to them.
 */
#ifndef PARLEY_SESSION_H
#define PARLEY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "jid.h"
#include "xml.h"

struct session;
struct c2s;

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

/* RFC 6121 §2.2: a resource that asked for the roster gets roster pushes. */
bool session_interested(const struct session *s);
void session_set_interested(struct session *s);

/* Per-session state a module keeps (directed presence, roster interest...):
 * one pointer per module, freed with free_fn when the session ends. */
struct module;
void *session_data(const struct session *s, const struct module *m);
void session_set_data(struct session *s, const struct module *m, void *data,
		      void (*free_fn)(void *));

/* Writes the stanza to the session's stream (not consumed). */
void session_send(struct session *s, const struct xml_node *stanza);
/* Ends the session's stream with a stream error (condition, text). */
void session_close(struct session *s, const char *condition, const char *text);

/* Exact resource, or NULL. */
struct session *sm_find(const struct jid *full);
/* The sessions of a bare JID, up to max, into out; returns how many there are. */
size_t sm_user_sessions(const struct jid *bare, struct session **out, size_t max);
size_t sm_count(void);

/* ---- for the core (c2s, ctl) ---- */

/* Binds a resource for a c2s stream; a session with the same full JID is closed
 * with <conflict/> first. Returns NULL on memory failure. */
struct session *sm_bind(struct c2s *c2s, const struct jid *full);
/* Unbinds (the stream is going away); runs HOOK_SESSION_CLOSED. */
void sm_unbind(struct session *s, const char *reason);
void session_set_presence(struct session *s, struct xml_node *presence);
/* Calls fn for every session, or those of host (NULL: all); fn may not unbind. */
void sm_foreach(const char *host, void (*fn)(struct session *s, void *arg), void *arg);

#endif
