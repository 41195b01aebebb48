/*
 * c2s.h - client-to-server streams (RFC 6120): stream header, features,
 * STARTTLS, SASL, resource binding, then stanzas to the router.
 */
#ifndef PARLEY_C2S_H
#define PARLEY_C2S_H

#include <stdbool.h>
#include <event2/util.h>

#include "config.h"
#include "xml.h"

struct c2s;
struct sockaddr;

/* A new connection on a c2s listener. */
void c2s_accept(evutil_socket_t fd, const struct sockaddr *sa,
		const struct config_listener *l);

/* Writes a stanza to the client (HOOK_USER_RECV has run). */
void c2s_send(struct c2s *c, const struct xml_node *stanza);
/* Stream error and close: condition from RFC 6120 §4.9.3, text for humans. */
void c2s_error(struct c2s *c, const char *condition, const char *text);
/* The same with an application-specific condition element (copied) after it. */
void c2s_error_extra(struct c2s *c, const char *condition, const char *text,
		     const struct xml_node *extra);

/* session.c, for resumption: the stream lets go of its session without ending
 * it; another stream takes a session over (and is then bound). */
struct session;
void c2s_release_session(struct c2s *c);
void c2s_attach_session(struct c2s *c, struct session *s);

const char *c2s_peer(const struct c2s *c);
bool c2s_tls(const struct c2s *c);

/* Closes every stream with <system-shutdown/> (SIGTERM). */
void c2s_shutdown_all(void);
/* Frees every stream, flushed or not (after the loop has stopped). */
void c2s_free_all(void);

struct c2s_stats {
	unsigned long long connections, stanzas_in, stanzas_out, auth_failures;
	unsigned open, authenticated;
};
const struct c2s_stats *c2s_stats(void);

#endif
