/*
 * stream.h - what a session speaks through, whatever the transport.
 *
 * A stream is a client's connection as the session manager, the router and the
 * modules see it: something that takes stanzas, closes with a stream error, has
 * a peer address and TLS facts, and can hand its session over to another stream
 * (XEP-0198 resumption). Each transport (c2s over TCP today; WebSocket, BOSH
 * later) embeds a struct stream as the first member of its own connection
 * struct and fills in a struct stream_ops, the way redis's connections carry a
 * ConnectionType and Prosody's sessions a send function. Nothing outside the
 * transport knows which one it is.
 *
 * The counters are the transports' together (parleyctl stats).
 */
#ifndef PARLEY_STREAM_H
#define PARLEY_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "xml.h"

struct stream;
struct session;

/* What carries a client stream (parleyctl sessions, /metrics). */
enum stream_transport {
	TRANSPORT_TCP,
	TRANSPORT_WEBSOCKET,
	TRANSPORT_BOSH,
	TRANSPORTS
};
extern const char *const stream_transport_names[TRANSPORTS];	/* "tcp", ... */

struct stream_ops {
	const char *name;	/* "c2s", for logs and parleyctl */
	/* A stanza for the bound session (hooks have run): counted, and refused
	 * with a stream error when the peer does not read its output. */
	void (*send)(struct stream *st, const struct xml_node *stanza);
	/* Any element as it is (stream management's <a/>, <failed/>), bound or
	 * not; nothing once the stream is closing. */
	void (*write)(struct stream *st, const struct xml_node *el);
	/* Stream error (RFC 6120 §4.9.3 condition, text for humans, an optional
	 * application-specific condition copied after it), then close. The bound
	 * session is unbound before this returns. */
	void (*close)(struct stream *st, const char *condition, const char *text,
		      const struct xml_node *extra);
	const char *(*peer)(const struct stream *st);	/* the peer's IP, "" if gone */
	bool (*secure)(const struct stream *st);	/* TLS is up */
	/* Channel-binding data of the given type ("tls-exporter",
	 * "tls-server-end-point", "tls-unique") into out; the length, or 0 when
	 * the stream has no such binding (no TLS, or not that version). */
	size_t (*channel_binding)(const struct stream *st, const char *type,
				  unsigned char *out, size_t max);
	/* Resumption: release lets go of the session without ending it; attach
	 * makes s this stream's bound session. */
	void (*release)(struct stream *st);
	void (*attach)(struct stream *st, struct session *s);
	enum stream_transport (*transport)(const struct stream *st);
};

struct stream {
	const struct stream_ops *ops;
};

static inline void stream_send(struct stream *st, const struct xml_node *n)
{
	st->ops->send(st, n);
}
static inline void stream_write(struct stream *st, const struct xml_node *n)
{
	st->ops->write(st, n);
}
static inline void stream_close(struct stream *st, const char *condition, const char *text,
				const struct xml_node *extra)
{
	st->ops->close(st, condition, text, extra);
}
static inline const char *stream_peer(const struct stream *st) { return st->ops->peer(st); }
static inline bool stream_secure(const struct stream *st) { return st->ops->secure(st); }
static inline enum stream_transport stream_transport(const struct stream *st)
{
	return st->ops->transport(st);
}

/* Counters of every transport together. */
struct stream_stats {
	unsigned long long connections, stanzas_in, stanzas_out, auth_failures;
	unsigned open, authenticated;
	unsigned open_by[TRANSPORTS];			/* open streams by transport */
	unsigned long long connections_by[TRANSPORTS];
};
extern struct stream_stats stream_stats;

#endif
