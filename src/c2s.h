/*
 * c2s.h - client streams (RFC 6120): stream header, features, STARTTLS, SASL,
 * resource binding, then stanzas to the router, whatever carries them.
 *
 * c2s.c is the client stream itself, the same for every transport. What
 * carries its elements is a framing: TCP (c2s_tcp.c: a byte stream parsed by
 * xmlstream), WebSocket (ws.c, RFC 7395: one element per message) and BOSH
 * (bosh.c, XEP-0206: elements wrapped in HTTP bodies). A framing turns its
 * input into the calls below (c2s_open, c2s_element, c2s_end, ...) and gives
 * c2s a struct c2s_framing to write through, the way jabberd2's sx keeps the
 * XMPP logic apart from its plugins for TLS and compression.
 *
 * Sessions reach a client stream through its struct stream_ops (stream.h);
 * parleyd.c through c2s_init() and the shutdown calls.
 */
#ifndef PARLEY_C2S_H
#define PARLEY_C2S_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "config.h"
#include "stream.h"
#include "xml.h"

struct c2s;

/* What a client stream writes through; t is the framing's own state. */
struct c2s_framing {
	enum stream_transport transport;
	/* Our stream header, answering the client's (RFC 6120 §4.2.2). */
	void (*header)(void *t, const char *id, const char *from);
	/* One complete element, already serialized (SASL's answers). */
	void (*raw)(void *t, const char *xml, size_t len);
	/* One element; with to, the root is written with this 'to' around
	 * bytes serialized once for every stream (xml_bytes). */
	void (*element)(void *t, const struct xml_node *n, const char *to);
	/* The end of our stream; the framing closes once its output is out and
	 * then calls c2s_gone(). */
	void (*end)(void *t);
	size_t (*pending)(void *t);		/* output not written yet */
	bool (*secure)(void *t);		/* the client's bytes come over TLS */
	SSL *(*ssl)(void *t);			/* for channel binding; NULL if none */
	/* Stops giving input (an answer is awaited) or goes on. Going on may
	 * give input at once, inside the call. */
	void (*pause)(void *t, bool paused);
	/* The next input starts a new stream (after SASL success). */
	void (*restart)(void *t);
	void (*timeout)(void *t, unsigned seconds);	/* the idle timeout */
	/* <proceed/> is out: restart inside TLS, then c2s_tls_up(). NULL where
	 * STARTTLS is not offered (WebSocket and BOSH, RFC 7395 §3.9). */
	int (*starttls)(void *t);
	/* Gives an idle stream's parser memory back; NULL if nothing to give. */
	bool (*compact)(void *t);
	/* At exit: frees the framing now, flushed or not (it calls c2s_gone). */
	void (*drop)(void *t);
};

/* A new client stream on framing f; l is the listener it came in on, peer its
 * address. The framing holds the reference returned until c2s_gone(). */
struct c2s *c2s_new(const struct c2s_framing *f, void *t, const struct config_listener *l,
		    const char *peer);

/* Input. c2s_open and c2s_element take the tree. */
void c2s_open(struct c2s *c, struct xml_node *header, const char *default_ns);
void c2s_element(struct c2s *c, struct xml_node *el);
void c2s_end(struct c2s *c);		/* the client ended its stream */
/* A stream error of the framing's (RFC 6120 §4.9.3 condition); then closing. */
void c2s_error(struct c2s *c, const char *condition, const char *text);
void c2s_tls_up(struct c2s *c);		/* after starttls(): read on */
void c2s_heard(struct c2s *c);		/* bytes came: the client is alive */
/* The idle timeout passed: a ping first (XEP-0199), then <connection-timeout/>. */
void c2s_idle(struct c2s *c);
/* Whether input must wait (an answer is outstanding, or the stream closed). */
bool c2s_blocked(const struct c2s *c);
/* The framing is gone; lost: not the client's choice (a dead connection, an
 * inactive BOSH session), so a module may keep the session for resumption.
 * Drops the framing's reference: c may be freed. */
void c2s_gone(struct c2s *c, const char *reason, bool lost);

/* Registers the accept handler of <listen type="c2s">, WebSocket and BOSH
 * routes. 0, or -1. */
int c2s_init(void);
/* Closes every stream with <system-shutdown/> (SIGTERM). */
void c2s_shutdown_all(void);
/* Frees every stream, flushed or not (after the loop has stopped). */
void c2s_free_all(void);

/* The framings: TCP (c2s_tcp.c), WebSocket (ws.c), BOSH (bosh.c). */
int c2s_tcp_init(void);
int ws_init(void);
int bosh_init(void);

#endif
