/*
 * fuzz_ws.c - libFuzzer target: any bytes as a client's side of an XMPP
 * WebSocket (src/ws.c itself, compiled into this file): wslay's frames, the
 * stanza-size check on fragments, one element per message, <open/> and
 * <close/>, the queue of messages read while the client stream waits.
 *
 * The first byte picks when the stand-in client stream pauses and resumes,
 * the second where the input is split into two reads. What must hold: no
 * crash, no leak, no element delivered after a framing error or the end,
 * every delivered element whole, nothing delivered while paused.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "c2s.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "listener.h"
#include "server.h"
#include "stanza.h"

struct server server;
static struct config cfg;
static struct evbuffer *input;

/* ---- a stand-in client stream: it records and sometimes waits ---- */

struct c2s {
	struct ws *w;
	bool closed, paused;
	unsigned pattern, seen;
};
static struct c2s the_c2s;

static void ws_pause_cb(void *t, bool paused);

struct c2s *c2s_new(const struct c2s_framing *f, void *t, const struct config_listener *l,
		    const char *peer)
{
	(void)f, (void)l, (void)peer;
	the_c2s.w = t;
	return &the_c2s;
}

static void delivered(struct c2s *c)
{
	if (c->closed || c->paused)
		abort();	/* nothing may come after the end or while waiting */
	/* every third element (as the pattern says) waits for an "answer",
	 * which comes at once every other time: nested resume */
	if ((c->pattern >> (c->seen++ % 8)) & 1) {
		ws_pause_cb(c->w, true);
		if (c->seen & 1)
			ws_pause_cb(c->w, false);
	}
}

void c2s_open(struct c2s *c, struct xml_node *header, const char *default_ns)
{
	if (!header || strcmp(default_ns, NS_CLIENT) != 0)
		abort();
	xml_unref(header);
	delivered(c);
}

void c2s_element(struct c2s *c, struct xml_node *el)
{
	if (!el || !el->name)
		abort();
	xml_unref(el);
	delivered(c);
}

void c2s_end(struct c2s *c)
{
	c->closed = true;
}

void c2s_error(struct c2s *c, const char *condition, const char *text)
{
	(void)condition, (void)text;
	c->closed = true;
}

void c2s_heard(struct c2s *c) { (void)c; }
bool c2s_blocked(const struct c2s *c) { return c->closed || c->paused; }
void c2s_gone(struct c2s *c, const char *reason, bool lost) { (void)c, (void)reason, (void)lost; }

/* ---- stand-ins for the connection and HTTP: no socket in a fuzz run ---- */

struct conn { int dummy; };
static struct conn the_conn;

struct evbuffer *conn_input(struct conn *c) { (void)c; return input; }
int conn_write(struct conn *c, const void *d, size_t n) { (void)c, (void)d, (void)n; return 0; }
int conn_write_ref(struct conn *c, struct xml_bytes *b, size_t off)
{
	(void)c, (void)b, (void)off;
	return 0;
}
void conn_close(struct conn *c) { (void)c; }
void conn_free(struct conn *c) { (void)c; }
void conn_pause(struct conn *c, bool p) { (void)c, (void)p; }
void conn_set_timeout(struct conn *c, unsigned s) { (void)c, (void)s; }
bool conn_is_tls(const struct conn *c) { (void)c; return false; }
SSL *conn_ssl(const struct conn *c) { (void)c; return NULL; }
const char *conn_peer(const struct conn *c) { (void)c; return "192.0.2.1"; }
size_t conn_output_pending(const struct conn *c) { (void)c; return 0; }
void listener_ip_release(const char *ip) { (void)ip; }
int http_route_upgrade(const char *p, http_fn fn, void *a) { (void)p, (void)fn, (void)a; return 0; }
bool http_upgrading(const struct http_request *r) { (void)r; return true; }
struct conn *http_take(struct http_request *r, conn_cb cb, void *o, bool *ip,
		       const struct config_listener **l)
{
	(void)r, (void)cb, (void)o, (void)ip, (void)l;
	return &the_conn;
}
const char *http_method(const struct http_request *r) { (void)r; return "GET"; }
const char *http_header(const struct http_request *r, const char *n) { (void)r, (void)n; return NULL; }
const char *http_peer(const struct http_request *r) { (void)r; return "192.0.2.1"; }
void http_add_header(struct http_request *r, const char *n, const char *v) { (void)r, (void)n, (void)v; }
void http_respond(struct http_request *r, int s, const char *t, const void *b, size_t n)
{
	(void)r, (void)s, (void)t, (void)b, (void)n;
}

#include "../../src/ws.c"

static void ws_pause_cb(void *t, bool paused)
{
	the_c2s.paused = paused;
	w_pause(t, paused);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws *w;
	size_t split;

	if (size < 2)
		return 0;
	if (!server.cfg) {
		cfg.limits.stanza_size = 4096;
		cfg.limits.depth = 16;
		cfg.limits.attributes = 16;
		cfg.limits.idle_timeout = 300;
		server.cfg = &cfg;
		log_set_level(LOG_ERROR + 1);
	}
	memset(&the_c2s, 0, sizeof(the_c2s));
	the_c2s.pattern = data[0];
	split = size > 2 ? 2 + data[1] % (size - 2) : 2;
	if (!(input = evbuffer_new()) || !(w = ws_new()))
		abort();
	w->conn = &the_conn;
	w->c = c2s_new(&ws_framing, w, NULL, "192.0.2.1");
	evbuffer_add(input, data + 2, split - 2);
	ws_read(w);
	evbuffer_add(input, data + split, size - split);
	ws_read(w);
	/* the answer the stream waited for comes */
	if (the_c2s.paused && !the_c2s.closed)
		ws_pause_cb(w, false);
	ws_free(w, "done", false);
	evbuffer_free(input);
	return 0;
}
