/*
 * ws.c - the WebSocket framing of client streams (RFC 7395 over RFC 6455).
 *
 * An Upgrade on the <websocket path> of an http listener becomes a WebSocket
 * (the handshake below), and its connection this framing's: wslay reads the
 * frames (masking, fragments, ping/pong, close, UTF-8), each text message is
 * one XMPP element, parsed by an xmlstream inside a synthetic stream header so
 * that the stanzas come out as they do from TCP, with the same limits. The
 * stream's own <open/> and <close/> are elements of the framing namespace.
 *
 * Output: data frames are written here, straight into the connection around
 * a stanza's shared bytes (xml_bytes), each element with its own xmlns as
 * RFC 7395 §3.3.3 asks; wslay writes the control frames (pong, close). It
 * never holds a frame half-written, since the connection takes every byte,
 * so the two never interleave inside a frame.
 *
 * While the client stream waits for an answer (SASL), messages wslay has
 * already read are kept in order (at most what its 4 KiB buffer held) and no
 * more is read.
 */
#include "c2s.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "base64.h"
#include "conn.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "stanza.h"
#include "xmlstream.h"

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"	/* RFC 6455 §1.3 */
#define WS_PING_SECONDS 60	/* after a ping, the pong (or anything) within this */

/* The synthetic stream each message is parsed inside. */
static const char wrapper[] = "<stream:stream xmlns='" NS_CLIENT "' xmlns:stream='"
			      NS_STREAMS "'>";

struct queued {			/* a message read while the stream waits */
	struct queued *next;
	size_t len;
	char data[];
};

struct ws {
	struct c2s *c;
	struct conn *conn;
	wslay_event_context_ptr ctx;
	struct xmlstream *xs;
	const struct config_listener *l;
	struct queued *queue, **tail;
	struct xml_node *got;		/* the element of the message being parsed */
	size_t msg_len;			/* of the message whose frames are coming */
	unsigned count;			/* elements in it */
	bool counted_ip;
	bool paused;			/* the client stream waits for an answer */
	bool wrapped;			/* the parser is inside its synthetic header */
	bool opened;			/* the client's <open/> came (since a restart) */
	bool failed;			/* a framing error: read no more */
	bool pinged;			/* a WebSocket ping is out */
	bool closing;			/* our close is out: no more data frames */
	bool reading;			/* inside ws_read(): do not re-enter it */
	bool again;			/* resumed inside ws_read(): read on */
	bool dead;			/* the connection ended inside ws_read() */
	bool dead_lost;
	char dead_why[96];
};

static void ws_read(struct ws *w);
static void take_queue(struct ws *w);

/* ---- output: data frames around the stanzas' bytes ---- */

/* An unmasked text frame's header for a payload of len bytes (RFC 6455 §5.2). */
static size_t frame_header(unsigned char *h, size_t len)
{
	h[0] = 0x81;	/* FIN, text */
	if (len < 126) {
		h[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
	return 10;
}

static bool writable(const struct ws *w)
{
	return !w->closing && !w->dead;
}

static void send_text(struct ws *w, const char *s, size_t len)
{
	unsigned char h[10];

	if (!writable(w))
		return;
	conn_write(w->conn, h, frame_header(h, len));
	conn_write(w->conn, s, len);
}

static void w_header(void *arg, const char *id, const char *from)
{
	struct ws *w = arg;
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "<open xmlns='" NS_FRAMING "' id='%s'%s%s%s "
			 "version='1.0' xml:lang='en'/>", id, from ? " from='" : "",
			 from ? from : "", from ? "'" : "");

	if (n > 0 && (size_t)n < sizeof(buf))
		send_text(w, buf, (size_t)n);
}

static void w_raw(void *arg, const char *xml, size_t len)
{
	send_text(arg, xml, len);
}

/*
 * One element, one message. Its bytes are those of the TCP streams (made
 * for a jabber:client parent, shared with them), with the xmlns in front
 * that a message needs on its own, and the 'to' of this stream.
 */
static void w_element(void *arg, const struct xml_node *n, const char *to)
{
	struct ws *w = arg;
	struct xml_bytes *b;
	struct xml_buf head = { 0 };
	unsigned char h[10];
	size_t hl;
	bool client = n->ns && strcmp(n->ns, NS_CLIENT) == 0;

	if (!writable(w) || !(b = xml_bytes(n, NS_CLIENT)))
		return;
	if (!to)
		to = xml_attr(n, "to");
	if (xml_buf_add(&head, b->data, b->head) < 0 ||
	    (client && xml_buf_add(&head, " xmlns='" NS_CLIENT "'", 8 + strlen(NS_CLIENT) + 1)
	     < 0) ||
	    (to && (xml_buf_add(&head, " to='", 5) < 0 ||
		    xml_escape(&head, to, strlen(to), true) < 0 ||
		    xml_buf_add(&head, "'", 1) < 0)))
		goto out;
	hl = frame_header(h, head.len + b->len - b->head);
	if (conn_write(w->conn, h, hl) == 0 && conn_write(w->conn, head.data, head.len) == 0)
		conn_write_ref(w->conn, b, b->head);
out:
	xml_buf_free(&head);
	xml_bytes_unref(b);
}

/* Control frames wslay has queued (pong, close) go out now. */
static void flush_control(struct ws *w)
{
	if (!w->dead && wslay_event_want_write(w->ctx))
		wslay_event_send(w->ctx);
}

/* RFC 7395 §3.6: our <close/>, then the WebSocket close; the connection ends
 * once that is written. */
static void w_end(void *arg)
{
	struct ws *w = arg;
	static const char close_el[] = "<close xmlns='" NS_FRAMING "'/>";

	send_text(w, close_el, sizeof(close_el) - 1);
	w->closing = true;
	wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
	if (!w->reading)
		flush_control(w);	/* else ws_read() does, after wslay returns */
	conn_close(w->conn);
}

static size_t w_pending(void *arg)
{
	return conn_output_pending(((struct ws *)arg)->conn);
}

static bool w_secure(void *arg)
{
	return conn_is_tls(((struct ws *)arg)->conn);
}

static SSL *w_ssl(void *arg)
{
	return conn_ssl(((struct ws *)arg)->conn);
}

static void w_pause(void *arg, bool paused)
{
	struct ws *w = arg;

	w->paused = paused;
	conn_pause(w->conn, paused);
	if (!paused)
		ws_read(w);
}

/* After SASL the client sends a new <open/> (RFC 7395 §3.5): the next
 * message is parsed by a fresh parser. */
static void w_restart(void *arg)
{
	struct ws *w = arg;

	w->wrapped = false;
	w->opened = false;
}

static void w_timeout(void *arg, unsigned seconds)
{
	conn_set_timeout(((struct ws *)arg)->conn, seconds);
}

static bool w_compact(void *arg)
{
	return xmlstream_compact(((struct ws *)arg)->xs);
}

static void ws_free(struct ws *w, const char *reason, bool lost)
{
	struct c2s *c = w->c;

	if (w->reading) {
		w->dead = true;
		w->dead_lost = lost;
		snprintf(w->dead_why, sizeof(w->dead_why), "%s", reason);
		return;
	}
	if (c)
		c2s_gone(c, reason, lost);
	while (w->queue) {
		struct queued *q = w->queue;

		w->queue = q->next;
		free(q);
	}
	xml_unref(w->got);
	if (w->counted_ip)
		listener_ip_release(conn_peer(w->conn));
	xmlstream_free(w->xs);
	wslay_event_context_free(w->ctx);
	conn_free(w->conn);
	free(w);
}

static void w_drop(void *arg)
{
	ws_free(arg, "server stopped", false);
}

static const struct c2s_framing ws_framing = {
	.transport = TRANSPORT_WEBSOCKET,
	.header = w_header,
	.raw = w_raw,
	.element = w_element,
	.end = w_end,
	.pending = w_pending,
	.secure = w_secure,
	.ssl = w_ssl,
	.pause = w_pause,
	.restart = w_restart,
	.timeout = w_timeout,
	.compact = w_compact,
	.drop = w_drop,
};

/* ---- input: one element per message ---- */

/* A framing error: the stream error, and nothing more is read. */
static void fail(struct ws *w, const char *condition, const char *text)
{
	if (w->failed)
		return;
	w->failed = true;
	c2s_error(w->c, condition, text);
}

static void on_xml_open(void *arg, struct xml_node *header, const char *default_ns)
{
	(void)arg;
	(void)default_ns;
	xml_unref(header);	/* our own synthetic header */
}

static void on_xml_element(void *arg, struct xml_node *el)
{
	struct ws *w = arg;

	if (++w->count > 1 || w->got) {
		xml_unref(el);
		return;		/* judged after the message: more than one element */
	}
	w->got = el;
}

static void on_xml_close(void *arg)
{
	fail(arg, "not-well-formed", "</stream:stream> is not RFC 7395 framing: send <close/>");
}

static void on_xml_error(void *arg, enum xmlstream_error err, const char *text)
{
	fail(arg, xmlstream_error_condition(err), text);
}

static const struct xmlstream_callbacks xml_cbs = {
	.open = on_xml_open,
	.stanza = on_xml_element,
	.close = on_xml_close,
	.error = on_xml_error,
};

/* The client's <open/> (RFC 7395 §3.4) or <close/> (§3.6). */
static void framing_element(struct ws *w, struct xml_node *el)
{
	if (strcmp(el->name, "open") == 0) {
		if (w->opened) {
			xml_unref(el);
			fail(w, "not-well-formed", "<open/> on an open stream");
			return;
		}
		w->opened = true;
		if (server.cfg->websocket.see_other_uri) {
			/* §3.6.1: the client is sent elsewhere. */
			char buf[600];
			int n = snprintf(buf, sizeof(buf), "<close xmlns='" NS_FRAMING
					 "' see-other-uri='%s'/>",
					 server.cfg->websocket.see_other_uri);

			xml_unref(el);
			log_info("ws", "%s: sent to %s", conn_peer(w->conn),
				 server.cfg->websocket.see_other_uri);
			if (n > 0 && (size_t)n < sizeof(buf))
				send_text(w, buf, (size_t)n);
			w->closing = true;
			w->failed = true;
			wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
			conn_close(w->conn);	/* ws_read() sends the close */
			return;
		}
		c2s_open(w->c, el, NS_CLIENT);
		return;
	}
	if (strcmp(el->name, "close") == 0) {
		xml_unref(el);
		c2s_end(w->c);
		return;
	}
	xml_unref(el);
	fail(w, "unsupported-stanza-type", "an element of the framing namespace that is "
	     "neither <open/> nor <close/>");
}

static void message(struct ws *w, const char *data, size_t len)
{
	struct xml_node *el;
	ssize_t used;

	if (w->failed || c2s_blocked(w->c))
		return;
	/* §3.3.3: an XML declaration is NOT RECOMMENDED, but allowed: skip it
	 * (inside the synthetic stream it would be a syntax error). */
	if (len > 5 && memcmp(data, "<?xml", 5) == 0 && strchr(" \t\r\n?", data[5])) {
		const char *end = memmem(data, len < 256 ? len : 256, "?>", 2);

		if (!end) {
			fail(w, "not-well-formed", "an XML declaration that does not end");
			return;
		}
		len -= (size_t)(end + 2 - data);
		data = end + 2;
	}
	if (!w->wrapped) {
		if (xmlstream_reset(w->xs) < 0 ||
		    xmlstream_feed(w->xs, wrapper, sizeof(wrapper) - 1) < 0) {
			fail(w, "internal-server-error", NULL);
			return;
		}
		w->wrapped = true;
	}
	w->count = 0;
	used = xmlstream_feed(w->xs, data, len);
	el = w->got;
	w->got = NULL;
	if (used < 0 || w->failed) {
		xml_unref(el);
		return;
	}
	/* §3.3.3: exactly one whole element per message (whitespace alone is
	 * let through, as a keepalive). */
	if (w->count > 1 || !xmlstream_between(w->xs)) {
		xml_unref(el);
		fail(w, "not-well-formed", w->count > 1 ? "more than one element in a "
		     "WebSocket message" : "a WebSocket message that is not a whole element");
		return;
	}
	if (!el)
		return;
	if (el->ns && strcmp(el->ns, NS_FRAMING) == 0) {
		framing_element(w, el);
		return;
	}
	if (!w->opened) {
		/* §3.3.2: a stream header in another namespace */
		bool header = strcmp(el->name, "open") == 0;

		xml_unref(el);
		if (header)
			fail(w, "invalid-namespace", "<open/> must be in " NS_FRAMING);
		else
			fail(w, "not-authorized", "open the stream first (<open xmlns='"
			     NS_FRAMING "'/>)");
		return;
	}
	c2s_element(w->c, el);
}

/* Messages that came while the client stream waited, in order. */
static void take_queue(struct ws *w)
{
	while (w->queue && !w->paused && !w->dead && !w->failed && !c2s_blocked(w->c)) {
		struct queued *q = w->queue;

		w->queue = q->next;
		if (!w->queue)
			w->tail = &w->queue;
		message(w, q->data, q->len);
		free(q);
	}
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *arg)
{
	struct ws *w = arg;
	int n;

	(void)flags;
	if (w->paused || w->failed || w->dead ||
	    (n = evbuffer_remove(conn_input(w->conn), buf, len)) <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	return n;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
		       int flags, void *arg)
{
	struct ws *w = arg;

	(void)flags;
	if (w->dead || conn_write(w->conn, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* Each frame's size is known before its payload comes: the stanza-size limit
 * holds for the message its fragments make, and a binary frame is refused
 * before it is read (RFC 7395 §3.2: text frames only). */
static void ws_frame_start(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_start_arg *a, void *arg)
{
	struct ws *w = arg;
	char why[96];

	(void)ctx;
	if (a->opcode >= 0x8)
		return;		/* control frames: wslay's (at most 125 bytes) */
	if (a->opcode == WSLAY_BINARY_FRAME) {
		fail(w, "bad-format", "a binary WebSocket frame: XMPP goes in text frames");
		wslay_event_shutdown_read(w->ctx);
		return;
	}
	w->msg_len = a->opcode == WSLAY_TEXT_FRAME ? a->payload_length
						    : w->msg_len + a->payload_length;
	if (w->msg_len > server.cfg->limits.stanza_size) {
		snprintf(why, sizeof(why), "a WebSocket message larger than %zu bytes",
			 server.cfg->limits.stanza_size);
		fail(w, "policy-violation", why);
		wslay_event_shutdown_read(w->ctx);
	}
}

static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
		   void *arg)
{
	struct ws *w = arg;

	(void)ctx;
	if (a->opcode == WSLAY_CONNECTION_CLOSE) {
		/* The client closed the WebSocket (wslay answers it): the stream
		 * ends as with <close/>, if it had not. */
		log_debug("ws", "%s: WebSocket closed by the client (%u)", conn_peer(w->conn),
			  a->status_code);
		if (!w->closing) {
			w->closing = true;
			c2s_end(w->c);
		}
		return;
	}
	if (a->opcode != WSLAY_TEXT_FRAME || w->failed)
		return;		/* pongs */
	if (w->paused || w->queue) {
		struct queued *q = malloc(sizeof(*q) + a->msg_length);

		if (!q) {
			fail(w, "internal-server-error", NULL);
			return;
		}
		q->next = NULL;
		q->len = a->msg_length;
		memcpy(q->data, a->msg, a->msg_length);
		*w->tail = q;
		w->tail = &q->next;
		return;
	}
	message(w, (const char *)a->msg, a->msg_length);
}

static const struct wslay_event_callbacks ws_cbs = {
	.recv_callback = ws_recv,
	.send_callback = ws_send,
	.on_frame_recv_start_callback = ws_frame_start,
	.on_msg_recv_callback = ws_msg,
};

static void ws_read(struct ws *w)
{
	if (w->reading) {
		w->again = true;	/* resumed from inside: the loop goes on */
		return;
	}
	w->reading = true;
	do {
		w->again = false;
		take_queue(w);
		if (!w->paused && !w->failed && !w->dead && !w->queue &&
		    evbuffer_get_length(conn_input(w->conn)) &&
		    wslay_event_recv(w->ctx) != 0 && !w->failed && !w->closing)
			/* wslay refused the frames (a protocol error, bad UTF-8, a
			 * frame past its own limit) and queued a close */
			log_info("ws", "%s: WebSocket protocol error (close %u)",
				 conn_peer(w->conn), wslay_event_get_status_code_sent(w->ctx));
		flush_control(w);
	} while (w->again && !w->paused && !w->dead && !w->failed);
	if (!w->dead && !w->closing && wslay_event_get_close_sent(w->ctx)) {
		log_info("ws", "%s: WebSocket closed (%u)", conn_peer(w->conn),
			 wslay_event_get_status_code_sent(w->ctx));
		w->closing = true;
		conn_close(w->conn);
	}
	w->reading = false;
	if (w->dead)
		ws_free(w, w->dead_why, w->dead_lost);
}

static void on_conn(struct conn *conn, void *arg, enum conn_event ev, const char *why)
{
	struct ws *w = arg;

	switch (ev) {
	case CONN_READ:
		if (w->pinged) {
			w->pinged = false;
			conn_set_timeout(conn, server.cfg->limits.idle_timeout);
		}
		c2s_heard(w->c);
		ws_read(w);
		break;
	case CONN_TLS_UP:
	case CONN_CONNECTED:	/* accepted: never */
		break;
	case CONN_TIMEOUT:
		/* RFC 7395 §3.8: keepalive by WebSocket ping; a second silence
		 * means the connection is dead. */
		if (!w->pinged && !w->closing) {
			struct wslay_event_msg ping = { WSLAY_PING, (const uint8_t *)"parley", 6 };

			w->pinged = true;
			wslay_event_queue_msg(w->ctx, &ping);
			flush_control(w);
			conn_set_timeout(conn, server.cfg->limits.idle_timeout < WS_PING_SECONDS ?
					 server.cfg->limits.idle_timeout : WS_PING_SECONDS);
			break;
		}
		c2s_error(w->c, "connection-timeout", "no traffic for too long");
		break;
	case CONN_EOF:
	case CONN_ERROR:
		ws_free(w, why ? why : "connection lost", true);
		break;
	case CONN_CLOSED:
		ws_free(w, "stream closed", false);
		break;
	}
}

/* ---- the handshake (RFC 6455 §4.2) ---- */

/* Whether the comma-separated header value list has token (no case). */
static bool has_token(const char *list, const char *token)
{
	size_t n = strlen(token);

	for (const char *p = list; p && *p;) {
		size_t k;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		k = strcspn(p, ", \t");
		if (k == n && strncasecmp(p, token, n) == 0)
			return true;
		p += k;
	}
	return false;
}

static void refuse(struct http_request *r, int status, const char *why)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "%s\n", why);

	log_info("ws", "%s: WebSocket refused (%d): %s", http_peer(r), status, why);
	http_respond(r, status, "text/plain; charset=utf-8", body, n > 0 ? (size_t)n : 0);
}

static struct ws *ws_new(void)
{
	struct ws *w = calloc(1, sizeof(*w));
	struct xmlstream_limits lim = {
		.max_stanza = server.cfg->limits.stanza_size,
		.max_depth = server.cfg->limits.depth,
		.max_attrs = server.cfg->limits.attributes,
	};

	if (!w)
		return NULL;
	w->tail = &w->queue;
	if (wslay_event_context_server_init(&w->ctx, &ws_cbs, w) != 0) {
		free(w);
		return NULL;
	}
	/* frames past twice the limit are refused by wslay before they are
	 * buffered; ws_frame_start refuses the rest with a stream error */
	wslay_event_config_set_max_recv_msg_length(w->ctx, 2 * server.cfg->limits.stanza_size);
	if (!(w->xs = xmlstream_new(&lim, &xml_cbs, w))) {
		wslay_event_context_free(w->ctx);
		free(w);
		return NULL;
	}
	return w;
}

static void on_request(struct http_request *r, void *arg)
{
	const char *key = http_header(r, "Sec-WebSocket-Key");
	const char *version = http_header(r, "Sec-WebSocket-Version");
	const char *protos = http_header(r, "Sec-WebSocket-Protocol");
	const char *origin = http_header(r, "Origin");
	unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	char accept[BASE64_ENCODED_LEN(20) + 1], buf[128];
	size_t klen = 0;
	struct ws *w;
	bool counted;

	(void)arg;
	if (!http_upgrading(r)) {
		static const char page[] = "This is Parley's XMPP over WebSocket endpoint "
					   "(RFC 7395): connect with a WebSocket client.\n";

		http_add_header(r, "Upgrade", "websocket");
		http_respond(r, 426, "text/plain; charset=utf-8", page, sizeof(page) - 1);
		return;
	}
	if (strcmp(http_method(r), "GET") != 0 || !has_token(http_header(r, "Upgrade"),
							      "websocket") ||
	    !has_token(http_header(r, "Connection"), "upgrade")) {
		refuse(r, 400, "a WebSocket opens with GET, Upgrade: websocket and "
		       "Connection: Upgrade");
		return;
	}
	if (!version || strcmp(version, "13") != 0) {
		http_add_header(r, "Sec-WebSocket-Version", "13");
		refuse(r, 426, "WebSocket version 13 only (RFC 6455)");
		return;
	}
	if (!key || base64_decode(key, strlen(key), raw, sizeof(raw), &klen) < 0 ||
	    klen != 16) {
		refuse(r, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
		return;
	}
	if (!config_origin_allowed(&server.cfg->websocket, origin)) {
		refuse(r, 403, "this Origin may not open XMPP WebSockets here");
		return;
	}
	if (!has_token(protos, "xmpp")) {
		refuse(r, 400, "the WebSocket subprotocol must be xmpp (RFC 7395 §3.1): "
		       "send Sec-WebSocket-Protocol: xmpp");
		return;
	}
	snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
	if (!EVP_Digest(buf, strlen(buf), digest, &dlen, EVP_sha1(), NULL) || dlen != 20) {
		refuse(r, 500, "cannot compute Sec-WebSocket-Accept");
		return;
	}
	base64_encode(digest, dlen, accept);
	if (!(w = ws_new())) {
		refuse(r, 503, "out of memory");
		return;
	}
	http_add_header(r, "Upgrade", "websocket");
	http_add_header(r, "Connection", "Upgrade");
	http_add_header(r, "Sec-WebSocket-Accept", accept);
	http_add_header(r, "Sec-WebSocket-Protocol", "xmpp");
	if (!(w->conn = http_take(r, on_conn, w, &counted, &w->l))) {
		xmlstream_free(w->xs);
		wslay_event_context_free(w->ctx);
		free(w);
		return;
	}
	w->counted_ip = counted;
	if (!(w->c = c2s_new(&ws_framing, w, w->l, conn_peer(w->conn)))) {
		/* nothing to tell the client in its protocol yet: just end */
		w->closing = true;
		conn_close(w->conn);
		return;
	}
	log_debug("ws", "%s: WebSocket open%s%s", conn_peer(w->conn), origin ? " from " : "",
		  origin ? origin : "");
	conn_set_timeout(w->conn, server.cfg->limits.idle_timeout);
	conn_pause(w->conn, false);
	ws_read(w);	/* frames that came with the request */
}

int ws_init(void)
{
	if (!server.cfg->websocket.enabled)
		return 0;
	return http_route_upgrade(server.cfg->websocket.path, on_request, NULL);
}
