/*
 * ws.h - XMPP over WebSocket (RFC 7395) for the bench's sessions (--ws PATH):
 * the HTTP Upgrade (RFC 6455 §4), masked frames out, the server's frames in,
 * one element a message. The stream's header is <open/> and its end
 * <close/>, both in the framing namespace; everything between is what TCP
 * carries, so stream.c and receive.c read it unchanged.
 *
 * session.c calls in at four points: the connection is up (ws_upgrade), a
 * write (ws_write), input (ws_read), and the stream's header and end
 * (ws_send_open, WS_CLOSE). Nothing here runs on a TCP session.
 */
#ifndef BENCH_WS_H
#define BENCH_WS_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

#define NS_FRAMING	"urn:ietf:params:xml:ns:xmpp-framing"
#define WS_CLOSE	"<close xmlns='" NS_FRAMING "'/>"
/* What framing adds to an element at most: the header, the mask, and
 * xmlns='jabber:client' if the element has no xmlns of its own. */
#define WS_OVERHEAD	(14 + 22)

struct evbuffer;

/* The connection (and TLS, with --tls direct) is up: sends the Upgrade
 * request; the stream begins once the server has accepted it. */
void ws_upgrade(struct sess *s);
/* Sends <open/>: at the start and after SASL. */
void ws_send_open(struct sess *s);
/* p[0, n) is one element: one masked text frame (with xmlns='jabber:client'
 * added when the element has none right after its name). */
void ws_write(struct sess *s, const char *p, size_t n);
/* k elements back to back in p, the i-th ending at ends[i]: k frames, one
 * write. */
void ws_write_each(struct sess *s, const char *p, const size_t *ends, uint32_t k);
/* The session's input: the Upgrade's answer, then frames. The session may
 * be gone when it returns. */
void ws_read(struct sess *s, struct evbuffer *in);

#endif
