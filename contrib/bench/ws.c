/*
 * ws.c - XMPP over WebSocket for the bench (see ws.h).
 *
 * Output: each element is one text frame, masked as RFC 6455 §5.3 requires of
 * a client. A message stands alone (RFC 7395 §3.3.3: no stream to inherit a
 * default namespace from), so a top-level element written without its xmlns
 * gets xmlns='jabber:client' here: the bench writes a namespaced element's
 * xmlns right after its name, so any other is a stanza. Prosody refuses a
 * stanza without it (unsupported-stanza-type). The masking key is drawn once
 * per connection, not per frame: the key is there to stop cache poisoning
 * through proxies that a loopback bench does not have, and the servers
 * cannot tell. Header and masked payload are
 * built in one buffer and go out by the session's own write, so a frame costs
 * one send() like a TCP stanza.
 *
 * Input: the server's frames are unmasked, so a whole frame in the input
 * buffer is its payload in place: an unfragmented message (all that these
 * servers send) is scanned where it lies, with no copy, by the same scanner
 * as TCP, started inside the stream (depth 1) so that <open/> and <close/>
 * come out as elements like any other. Fragments are gathered in a buffer of
 * the session's. Pings get their pong; the server's close frame is answered.
 *
 * Ending: the bench sends <close/> and waits, as on TCP, for the server to
 * close the connection (Parley answers <close/>, a close frame, then closes
 * it), so the TIME_WAIT stays on the server's side.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base64.h"
#include "options.h"
#include "scan.h"
#include "stream.h"
#include "util.h"
#include "ws.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"	/* RFC 6455 §1.3 */
#define MAX_MESSAGE	(1u << 20)	/* as scan.c's largest element */
#define MAX_RESPONSE	8192		/* the Upgrade's answer, headers included */

static const char refused[] = "refused";	/* check_response(): not a 101 */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* ---- output ---- */

/* XORs n bytes of p with the 4-byte key (in wire order) from key offset 0. */
static void mask_bytes(unsigned char *p, size_t n, uint32_t key)
{
	uint64_t k8 = (uint64_t)key << 32 | key, w;
	unsigned char k[4];
	size_t i = 0;

	memcpy(k, &key, 4);
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= k8;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= k[i % 4];
}

/* Where the name of the element at p[0, n) ends; 0 if p is no element. */
static size_t name_end(const char *p, size_t n)
{
	size_t i = 1;

	if (n < 2 || p[0] != '<')
		return 0;
	while (i < n && !is_space(p[i]) && p[i] != '/' && p[i] != '>')
		i++;
	return i;
}

/* One masked frame of opcode op at dst (room for n + WS_OVERHEAD); its
 * length. */
static size_t frame(const struct sess *s, int op, char *dst, const char *p, size_t n)
{
	static const char ns[] = " xmlns='jabber:client'";
	unsigned char *h = (unsigned char *)dst, *q;
	size_t hl, name = op == OP_TEXT ? name_end(p, n) : 0, len = n;

	if (name && (n - name < 7 || memcmp(p + name, " xmlns=", 7) != 0))
		len += sizeof(ns) - 1;
	else
		name = 0;
	h[0] = (unsigned char)(0x80 | op);	/* FIN */
	if (len < 126) {
		h[1] = (unsigned char)(0x80 | len);
		hl = 2;
	} else if (len <= 0xffff) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, &s->ws_mask, 4);
	q = h + hl + 4;
	if (name) {
		memcpy(q, p, name);
		memcpy(q + name, ns, sizeof(ns) - 1);
		memcpy(q + name + sizeof(ns) - 1, p + name, n - name);
	} else {
		memcpy(q, p, n);
	}
	mask_bytes(q, len, s->ws_mask);
	return hl + 4 + len;
}

static void send_frame(struct sess *s, int op, const char *p, size_t n)
{
	char stack[4096], *buf = stack;

	if (n + WS_OVERHEAD > sizeof(stack) && !(buf = malloc(n + WS_OVERHEAD))) {
		sess_fail(s, F_INTERNAL, "out of memory framing output");
		return;
	}
	sess_write_raw(s, buf, frame(s, op, buf, p, n));
	if (buf != stack)
		free(buf);
}

void ws_write(struct sess *s, const char *p, size_t n)
{
	send_frame(s, OP_TEXT, p, n);
}

void ws_write_each(struct sess *s, const char *p, const size_t *ends, uint32_t k)
{
	char stack[16384], *buf = stack;
	size_t len = 0, start = 0, cap;

	if (k == 0)
		return;
	cap = ends[k - 1] + (size_t)k * WS_OVERHEAD;
	if (cap > sizeof(stack) && !(buf = malloc(cap))) {
		sess_fail(s, F_INTERNAL, "out of memory framing output");
		return;
	}
	for (uint32_t i = 0; i < k; i++) {
		len += frame(s, OP_TEXT, buf + len, p + start, ends[i] - start);
		start = ends[i];
	}
	sess_write_raw(s, buf, len);
	if (buf != stack)
		free(buf);
}

void ws_send_open(struct sess *s)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "<open xmlns='" NS_FRAMING "' to='%s' version='1.0'/>",
			 opt.host);

	s->state = S_HEADER;
	ws_write(s, buf, (size_t)n);
}

/* The Sec-WebSocket-Accept that answers key (base64, 24 characters). */
static int expected_accept(const char *key, char *out)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	char buf[64];
	unsigned dl = 0;

	snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
	if (!EVP_Digest(buf, strlen(buf), digest, &dl, EVP_sha1(), NULL) || dl != 20)
		return -1;
	base64_encode(digest, dl, out);
	return 0;
}

void ws_upgrade(struct sess *s)
{
	char buf[1024], key[BASE64_ENCODED_LEN(16) + 1];
	int n;

	if (RAND_bytes(s->ws_key, sizeof(s->ws_key)) != 1 ||
	    RAND_bytes((unsigned char *)&s->ws_mask, sizeof(s->ws_mask)) != 1) {
		sess_fail(s, F_INTERNAL, "RAND_bytes failed");
		return;
	}
	base64_encode(s->ws_key, sizeof(s->ws_key), key);
	n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n%s%s%s\r\n",
		     opt.ws_path, opt.host, opt.port, key, opt.ws_origin ? "Origin: " : "",
		     opt.ws_origin ? opt.ws_origin : "", opt.ws_origin ? "\r\n" : "");
	s->state = S_UPGRADE;
	sess_write_raw(s, buf, (size_t)n);
}

/* ---- the Upgrade's answer ---- */

/* Whether the comma-separated list v[0, vl) holds token (any case). */
static bool has_token(const char *v, size_t vl, const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; i < vl;) {
		size_t k;

		while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		for (k = i; k < vl && v[k] != ',' && v[k] != ' ' && v[k] != '\t'; k++)
			;
		if (k - i == tl && strncasecmp(v + i, token, tl) == 0)
			return true;
		i = k;
	}
	return false;
}

/* The headers p[0, len) (status line first, without the blank line): NULL
 * if they accept the WebSocket, refused if the status is not 101, else why
 * not. */
static const char *check_response(const struct sess *s, const char *p, size_t len)
{
	char key[BASE64_ENCODED_LEN(16) + 1], accept[BASE64_ENCODED_LEN(20) + 1];
	const char *end = p + len, *eol = memmem(p, len, "\r\n", 2);
	bool upgrade = false, connection = false, acc = false, proto = false;

	if (!eol)
		eol = end;
	if (eol - p < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
		return "not an HTTP/1.1 answer to the Upgrade";
	if (memcmp(p + 9, "101", 3) != 0)
		return refused;		/* the caller quotes the status line */
	base64_encode(s->ws_key, sizeof(s->ws_key), key);
	if (expected_accept(key, accept) < 0)
		return "cannot compute Sec-WebSocket-Accept";
	for (const char *l = eol + 2; l < end; l = eol + 2) {
		const char *colon, *v;
		size_t nl, vl;

		eol = memmem(l, (size_t)(end - l), "\r\n", 2);
		if (!eol)
			eol = end;
		colon = memchr(l, ':', (size_t)(eol - l));
		if (!colon)
			continue;
		nl = (size_t)(colon - l);
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (vl = (size_t)(eol - v); vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'); vl--)
			;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(l, name, nl) == 0)
		if (IS("Upgrade"))
			upgrade = has_token(v, vl, "websocket");
		else if (IS("Connection"))
			connection = has_token(v, vl, "upgrade");
		else if (IS("Sec-WebSocket-Accept"))
			acc = vl == strlen(accept) && memcmp(v, accept, vl) == 0;
		else if (IS("Sec-WebSocket-Protocol"))
			proto = vl == 4 && strncasecmp(v, "xmpp", 4) == 0;
#undef IS
	}
	if (!upgrade || !connection)
		return "the 101 lacks Upgrade: websocket or Connection: Upgrade";
	if (!acc)
		return "wrong or missing Sec-WebSocket-Accept";
	if (!proto)
		return "the server did not agree to the xmpp subprotocol (RFC 7395 §3.1)";
	return NULL;
}

/* The Upgrade's answer at buf[0, len): its length once whole and good, 0
 * while incomplete, -1 when the session failed. */
static ssize_t upgraded(struct sess *s, const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *why;

	if (!end) {
		if (len <= MAX_RESPONSE)
			return 0;
		sess_fail(s, F_NEGOTIATION, "the answer to the WebSocket Upgrade is too long");
		return -1;
	}
	why = check_response(s, buf, (size_t)(end - buf));
	if (why == refused) {
		const char *eol = memmem(buf, (size_t)(end - buf), "\r\n", 2);

		sess_fail(s, F_NEGOTIATION, "WebSocket refused: %.*s",
			  (int)((eol ? eol : end) - buf), buf);
		return -1;
	}
	if (why) {
		sess_fail(s, F_NEGOTIATION, "WebSocket: %s", why);
		return -1;
	}
	ws_send_open(s);
	return end + 4 - buf;
}

/* ---- input: frames, then elements ---- */

/* One element of a message: the framing's own, or one for stream.c. */
static int element(struct sess *s, const char *p, size_t n)
{
	struct el e;
	const char *v;
	size_t vl;

	if (el_top(&e, p, n) < 0) {
		sess_fail(s, F_PROTOCOL, "malformed element from the server");
		return H_GONE;
	}
	if (e.qname_len == 4 && memcmp(e.qname, "open", 4) == 0) {
		if (!el_attr_is(&e, "xmlns", NS_FRAMING)) {
			sess_fail(s, F_PROTOCOL, "<open/> outside the framing namespace");
			return H_GONE;
		}
		return stream_element(s, SCAN_HEADER, p, n);
	}
	if (e.qname_len == 5 && memcmp(e.qname, "close", 5) == 0) {
		if (s->state == S_CLOSING)
			return H_OK;	/* the server closes the connection next */
		if (el_attr(&e, "see-other-uri", &v, &vl)) {
			sess_fail(s, F_CLOSED, "the server sent the stream to %.*s", (int)vl, v);
			return H_GONE;
		}
		return stream_element(s, SCAN_CLOSE, p, n);
	}
	return stream_element(s, SCAN_STANZA, p, n);
}

/* A whole message: each element in it (one, says RFC 7395 §3.3.3; whitespace
 * alone is a keepalive). */
static int message(struct sess *s, const char *p, size_t n)
{
	struct scan sc = { .depth = 1 };
	const char *tp;
	size_t tl;
	int rc;

	for (;;) {
		switch (scan_next(&sc, p, n, &tp, &tl)) {
		case SCAN_MORE:
			if (sc.depth == 1 && sc.pos == n)
				return H_OK;
			sess_fail(s, F_PROTOCOL, "a WebSocket message that is not whole elements");
			return H_GONE;
		case SCAN_STANZA:
			rc = element(s, tp, tl);
			if (rc == H_GONE)
				return rc;
			break;	/* H_RESTART: what follows belongs to the new stream */
		default:
			sess_fail(s, F_PROTOCOL, "malformed XML in a WebSocket message");
			return H_GONE;
		}
	}
}

/* A fragment of a message: gathered until the last one. */
static int fragment(struct sess *s, bool fin, const char *p, size_t n)
{
	size_t ml = s->ws_frag_len + n;
	char *m;
	int rc;

	if (ml > MAX_MESSAGE) {
		sess_fail(s, F_PROTOCOL, "a WebSocket message larger than %u bytes", MAX_MESSAGE);
		return H_GONE;
	}
	m = realloc(s->ws_frag, ml + 1);	/* + 1: never 0 */
	if (!m) {
		sess_fail(s, F_INTERNAL, "out of memory gathering a WebSocket message");
		return H_GONE;
	}
	memcpy(m + s->ws_frag_len, p, n);
	s->ws_frag = m;
	s->ws_frag_len = (uint32_t)ml;
	if (!fin)
		return H_OK;
	s->ws_frag = NULL;	/* the session may be gone after message() */
	s->ws_frag_len = 0;
	rc = message(s, m, ml);
	free(m);
	return rc;
}

static int close_frame(struct sess *s, const unsigned char *p, size_t n)
{
	unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;

	if (!s->ws_close_sent) {
		/* §5.5.1: answer with a close frame (its code echoed) */
		s->ws_close_sent = true;
		send_frame(s, OP_CLOSE, (const char *)p, n >= 2 ? 2 : 0);
		if (!s->bev)
			return H_GONE;
	}
	if (s->state == S_CLOSING)
		return H_OK;	/* the server closes the connection next */
	sess_fail(s, F_CLOSED, "the server closed the WebSocket (%u%s%.*s)", code,
		  n > 2 ? ": " : "", n > 2 ? (int)(n - 2) : 0, (const char *)p + 2);
	return H_GONE;
}

/* One frame: the opcode's business. */
static int on_frame(struct sess *s, unsigned op, bool fin, const char *p, size_t n)
{
	switch (op) {
	case OP_TEXT:
		if (s->ws_frag_len || s->ws_frag) {
			sess_fail(s, F_PROTOCOL, "a new WebSocket message inside a fragmented one");
			return H_GONE;
		}
		return fin ? message(s, p, n) : fragment(s, fin, p, n);
	case OP_CONT:
		if (!s->ws_frag) {
			sess_fail(s, F_PROTOCOL, "a WebSocket continuation with no message");
			return H_GONE;
		}
		return fragment(s, fin, p, n);
	case OP_PING:
		send_frame(s, OP_PONG, p, n);
		return s->bev ? H_OK : H_GONE;
	case OP_PONG:
		return H_OK;
	case OP_CLOSE:
		return close_frame(s, (const unsigned char *)p, n);
	case OP_BINARY:
		sess_fail(s, F_PROTOCOL, "a binary WebSocket frame (RFC 7395: text only)");
		return H_GONE;
	default:
		sess_fail(s, F_PROTOCOL, "WebSocket opcode %u", op);
		return H_GONE;
	}
}

/* The frame at b[0, len): its length, with its header's facts, once whole; 0
 * while incomplete; -1 when the session failed. */
static ssize_t parse_frame(struct sess *s, const unsigned char *b, size_t len, unsigned *op,
			   bool *fin, size_t *off, size_t *plen)
{
	uint64_t n;
	size_t hl = 2;

	if (len < 2)
		return 0;
	*fin = b[0] & 0x80;
	*op = b[0] & 0x0f;
	if (b[0] & 0x70 || b[1] & 0x80) {
		sess_fail(s, F_PROTOCOL, "a WebSocket frame with %s",
			  b[1] & 0x80 ? "a mask (RFC 6455 §5.1: servers do not mask)"
				      : "RSV bits and no extension");
		return -1;
	}
	n = b[1] & 0x7f;
	if (n == 126) {
		if (len < 4)
			return 0;
		n = (uint64_t)b[2] << 8 | b[3];
		hl = 4;
	} else if (n == 127) {
		if (len < 10)
			return 0;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | b[2 + i];
		hl = 10;
	}
	if ((*op >= 8 && (n > 125 || !*fin)) || n > MAX_MESSAGE) {
		sess_fail(s, F_PROTOCOL, "a WebSocket frame of %llu bytes (opcode %u)",
			  (unsigned long long)n, *op);
		return -1;
	}
	if (len - hl < n)
		return 0;
	*off = hl;
	*plen = (size_t)n;
	return (ssize_t)(hl + n);
}

void ws_read(struct sess *s, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in), pos = 0;
	const char *buf;

	if (!len)
		return;
	buf = (const char *)evbuffer_pullup(in, -1);
	if (!buf) {
		sess_fail(s, F_INTERNAL, "out of memory reading input");
		return;
	}
	if (s->state == S_UPGRADE) {
		ssize_t n = upgraded(s, buf, len);

		if (n <= 0)
			return;
		pos = (size_t)n;
	}
	while (pos < len) {
		size_t off, plen;
		unsigned op;
		bool fin;
		ssize_t n = parse_frame(s, (const unsigned char *)buf + pos, len - pos, &op, &fin,
					&off, &plen);

		if (n < 0)
			return;
		if (n == 0)
			break;
		if (on_frame(s, op, fin, buf + pos + off, plen) == H_GONE)
			return;		/* the session, and this input, are gone */
		pos += (size_t)n;
	}
	evbuffer_drain(in, pos);
}
